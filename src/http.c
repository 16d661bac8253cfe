/*-------------------------------------------------------------------------
 *
 * http.c
 *	  Requests to the provider through libcurl's multi interface, waited on
 *	  by the worker's WaitEventSet.
 *
 *	  PostgreSQL 15's WaitEventSet cannot drop a socket once added, while
 *	  curl opens and closes sockets as it pleases.  So curl's sockets go into
 *	  one epoll descriptor of our own, kept up to date by curl's socket
 *	  callback, and only that descriptor is in the WaitEventSet: it becomes
 *	  readable whenever one of curl's sockets is ready.  The waiting itself
 *	  stays in WaitEventSetWait, so latches, postmaster death and wait-event
 *	  reporting behave as in any other PostgreSQL process.
 *
 *	  Easy handles are kept and reused, and the multi handle's connection
 *	  cache keeps connections alive between requests (HTTP/2 multiplexing
 *	  where the server offers it).  TLS verification is never turned off.
 *
 *-------------------------------------------------------------------------
 */
#include "http.h"

#include <sys/epoll.h>
#include <unistd.h>

#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

/* a reply larger than this is no reply of the provider's */
#define MAX_RESPONSE_BYTES (8 * 1024 * 1024)

static CURLM *multi = NULL;
static int	epoll_fd = -1;
static int	in_flight = 0;

/* the jobs in flight, so that shutdown can account for each of them */
static SmsJob **in_flight_jobs = NULL;
static int	max_in_flight_jobs = 0;

/* when curl wants to be called for its timeouts; 0 for never */
static TimestampTz curl_deadline = 0;

/*
 * Easy handles not in use, still set up with the settings they were made
 * under, so that reusing one costs only the options that point at the job
 * (a reset and the full set of options cost several allocations per
 * request).  A handle made under earlier settings is not reused.
 */
static CURL **idle_handles = NULL;
static int	n_idle = 0;
static int	max_idle = 0;
static uint32 settings_generation = 1;

static int
socket_callback(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.data.fd = s;

	if (what == CURL_POLL_REMOVE)
	{
		/* curl may already have closed it; then the kernel dropped it too */
		(void) epoll_ctl(epoll_fd, EPOLL_CTL_DEL, s, NULL);
		curl_multi_assign(multi, s, NULL);
		return 0;
	}

	if (what & CURL_POLL_IN)
		ev.events |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		ev.events |= EPOLLOUT;

	if (socketp == NULL)
	{
		if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, s, &ev) != 0 && errno == EEXIST)
			(void) epoll_ctl(epoll_fd, EPOLL_CTL_MOD, s, &ev);
		curl_multi_assign(multi, s, (void *) 1);
	}
	else if (epoll_ctl(epoll_fd, EPOLL_CTL_MOD, s, &ev) != 0 && errno == ENOENT)
		(void) epoll_ctl(epoll_fd, EPOLL_CTL_ADD, s, &ev);
	return 0;
}

static int
timer_callback(CURLM *m, long timeout_ms, void *userp)
{
	if (timeout_ms < 0)
		curl_deadline = 0;
	else
		curl_deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													timeout_ms);
	return 0;
}

static size_t
write_callback(char *data, size_t size, size_t nmemb, void *userp)
{
	SmsTransfer *t = (SmsTransfer *) userp;
	size_t		n = size * nmemb;

	if (t->response.len + n > MAX_RESPONSE_BYTES)
	{
		t->response_too_large = true;
		return 0;				/* makes curl fail the transfer */
	}
	appendBinaryStringInfo(&t->response, data, (int) n);
	return n;
}

static size_t
header_callback(char *data, size_t size, size_t nmemb, void *userp)
{
	SmsTransfer *t = (SmsTransfer *) userp;
	size_t		n = size * nmemb;
	static const char name[] = "retry-after:";

	if (n > sizeof(name) && pg_strncasecmp(data, name, sizeof(name) - 1) == 0)
	{
		const char *p = data + sizeof(name) - 1;
		long		secs = 0;
		bool		digits = false;

		while (p < data + n && (*p == ' ' || *p == '\t'))
			p++;
		while (p < data + n && *p >= '0' && *p <= '9' && secs < 86400)
		{
			secs = secs * 10 + (*p++ - '0');
			digits = true;
		}
		/* an HTTP-date is left to the backoff */
		if (digits)
			t->retry_after_s = (int) Min(secs, 86400);
	}
	return n;
}

/* the worker's last word on each request (see prereq_callback) */
static SmsSendGuard send_guard = NULL;

/*
 * Called after the connection is made and before the first byte of a
 * request leaves.
 *
 * libcurl silently sends a request again on a fresh connection when a reused
 * connection died before any reply came.  That is harmless for the idle
 * connection a server closed before reading the request, but a duplicate
 * message when the server did read and act on it.  We cannot tell the two
 * apart, so the second try is refused here and the attempt is recorded as
 * one whose outcome is unknown: reconciliation decides, not a blind resend.
 *
 * Then the worker's send guard decides whether the request may leave at
 * all; one it refuses leaves nothing and is marked held_back.
 */
static int
prereq_callback(void *userp, char *primary_ip, char *local_ip,
				int primary_port, int local_port)
{
	SmsTransfer *t = (SmsTransfer *) userp;

	if (++t->prereq_calls > 1)
	{
		t->retry_refused = true;
		return CURL_PREREQFUNC_ABORT;
	}
	if (send_guard && !send_guard(t->job))
	{
		t->held_back = true;
		return CURL_PREREQFUNC_ABORT;
	}
	return CURL_PREREQFUNC_OK;
}

void
sms_http_init(int max_connections, SmsSendGuard guard)
{
	send_guard = guard;

	if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
		elog(ERROR, "could not initialize libcurl");

	epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (epoll_fd < 0)
		elog(ERROR, "epoll_create1 failed: %m");

	multi = curl_multi_init();
	if (multi == NULL)
		elog(ERROR, "could not create a libcurl multi handle");
	curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_callback);
	curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_callback);
	curl_multi_setopt(multi, CURLMOPT_PIPELINING, (long) CURLPIPE_MULTIPLEX);

	sms_http_configure(max_connections);
}

/*
 * Apply the settings (again after SIGHUP); max_connections is this worker's
 * share of sms.max_concurrency.
 */
void
sms_http_configure(int max_connections)
{
	/* idle handles carry the old settings: drop them */
	settings_generation++;
	while (n_idle > 0)
		curl_easy_cleanup(idle_handles[--n_idle]);

	max_connections = Max(max_connections, 1);
	curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long) max_connections);
	curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long) max_connections);
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long) max_connections);

	if (max_idle < max_connections)
	{
		if (idle_handles == NULL)
			idle_handles = MemoryContextAlloc(TopMemoryContext,
											  sizeof(CURL *) * max_connections);
		else
			idle_handles = repalloc(idle_handles, sizeof(CURL *) * max_connections);
		max_idle = max_connections;
	}
}

pgsocket
sms_http_socket(void)
{
	return epoll_fd;
}

/* Milliseconds until curl wants its timer served; -1 if it does not. */
long
sms_http_timeout_ms(void)
{
	long		secs;
	int			usecs;

	if (curl_deadline == 0)
		return -1;
	TimestampDifference(GetCurrentTimestamp(), curl_deadline, &secs, &usecs);
	return secs * 1000 + (usecs + 999) / 1000;
}

/*
 * Let curl do what is ready: its timer if it has expired (a request just
 * added waits for it), and up to max_sockets of the sockets the epoll
 * descriptor reports.  Returns true if more sockets may be ready.
 */
bool
sms_http_perform(int max_sockets)
{
	struct epoll_event events[64];
	int			max = Min(max_sockets, (int) lengthof(events));
	int			running;
	int			n;
	int			i;

	if (curl_deadline != 0 && GetCurrentTimestamp() >= curl_deadline)
	{
		curl_deadline = 0;
		curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}

	n = epoll_wait(epoll_fd, events, max, 0);
	if (n < 0 && errno != EINTR)
		elog(ERROR, "epoll_wait failed: %m");
	for (i = 0; i < n; i++)
	{
		int			flags = 0;

		if (events[i].events & (EPOLLIN | EPOLLHUP))
			flags |= CURL_CSELECT_IN;
		if (events[i].events & EPOLLOUT)
			flags |= CURL_CSELECT_OUT;
		if (events[i].events & EPOLLERR)
			flags |= CURL_CSELECT_ERR;
		curl_multi_socket_action(multi, events[i].data.fd, flags, &running);
	}
	return n == max;
}

/* Options that depend on the settings only, not on the job. */
static void
set_common_options(CURL *easy)
{
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_callback);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, header_callback);
	curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, prereq_callback);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) sms_request_timeout_ms);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long) sms_request_timeout_ms);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_2TLS);
	/*
	 * Waiting for a connection to tell whether it multiplexes pays only over
	 * TLS (HTTP/2 is negotiated there); over plain HTTP it held every
	 * request of a burst back until the first reply came.
	 */
	curl_easy_setopt(easy, CURLOPT_PIPEWAIT,
					 (long) (pg_strncasecmp(sms_api_url, "https:", 6) == 0));
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (sms_ca_file && sms_ca_file[0] != '\0')
		curl_easy_setopt(easy, CURLOPT_CAINFO, sms_ca_file);
}

/*
 * An easy handle for the job, with every option that is not the provider's
 * business set from the current settings, and a fresh transfer (in the
 * job's memory) for what comes back.  The provider sets the method, URL,
 * body and headers (credentials among them) of every request it makes.
 */
CURL *
sms_http_easy_for(SmsJob *job)
{
	CURL	   *easy;
	SmsTransfer *t;
	MemoryContext old;

	if (n_idle > 0)
		easy = idle_handles[--n_idle];
	else
	{
		easy = curl_easy_init();
		if (easy == NULL)
			elog(ERROR, "could not create a libcurl easy handle");
		set_common_options(easy);
	}

	/* a lookup's next page reuses its last page's transfer, not its reply */
	if (job->http == NULL)
		job->http = MemoryContextAllocZero(job->cxt, sizeof(SmsTransfer));
	t = job->http;
	if (t->response.data != NULL)
		pfree(t->response.data);
	memset(t, 0, sizeof(SmsTransfer));
	t->job = job;
	t->easy = easy;
	t->easy_generation = settings_generation;
	t->retry_after_s = -1;
	old = MemoryContextSwitchTo(job->cxt);
	initStringInfo(&t->response);
	MemoryContextSwitchTo(old);

	curl_easy_setopt(easy, CURLOPT_PRIVATE, t);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t->error);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(easy, CURLOPT_PREREQDATA, t);
	return easy;
}

void
sms_http_start(SmsJob *job)
{
	CURLMcode	rc = curl_multi_add_handle(multi, job->http->easy);

	if (rc != CURLM_OK)
		elog(ERROR, "could not start a request: %s", curl_multi_strerror(rc));
	if (in_flight == max_in_flight_jobs)
	{
		max_in_flight_jobs = Max(64, max_in_flight_jobs * 2);
		if (in_flight_jobs == NULL)
			in_flight_jobs = MemoryContextAlloc(TopMemoryContext,
												sizeof(SmsJob *) * max_in_flight_jobs);
		else
			in_flight_jobs = repalloc(in_flight_jobs,
									  sizeof(SmsJob *) * max_in_flight_jobs);
	}
	job->http->in_flight_index = in_flight;
	in_flight_jobs[in_flight++] = job;
}

/*
 * Did any of the request leave?  A request curl wanted to resend on a fresh
 * connection had left on the one that died.  Before curl was about to send
 * (the pre-request callback), a reused handle still reports the size of its
 * previous job's request.
 */
static void
note_request_sent(SmsTransfer *t)
{
	long		request_size = 0;

	curl_easy_getinfo(t->easy, CURLINFO_REQUEST_SIZE, &request_size);
	t->request_sent = !t->held_back &&
		((t->prereq_calls > 0 && request_size > 0) || t->retry_refused);
}

static void
release_easy(SmsTransfer *t)
{
	SmsJob	   *last;

	curl_multi_remove_handle(multi, t->easy);
	if (n_idle < max_idle && t->easy_generation == settings_generation)
		idle_handles[n_idle++] = t->easy;
	else
		curl_easy_cleanup(t->easy);
	t->easy = NULL;

	/* swap the last job in flight into this one's place */
	last = in_flight_jobs[--in_flight];
	in_flight_jobs[t->in_flight_index] = last;
	last->http->in_flight_index = t->in_flight_index;
}

/* The next finished request, with its result filled in; NULL if none. */
SmsJob *
sms_http_next_done(void)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(multi, &left)) != NULL)
	{
		SmsTransfer *t;

		if (msg->msg != CURLMSG_DONE)
			continue;

		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &t);
		t->result = msg->data.result;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &t->http_status);
		curl_easy_getinfo(msg->easy_handle, CURLINFO_OS_ERRNO, &t->os_errno);
		note_request_sent(t);
		release_easy(t);
		return t->job;
	}
	return NULL;
}

int
sms_http_in_flight(void)
{
	return in_flight;
}

/* The i-th of the jobs in flight, for 0 <= i < sms_http_in_flight(). */
SmsJob *
sms_http_in_flight_job(int i)
{
	Assert(i >= 0 && i < in_flight);
	return in_flight_jobs[i];
}

SmsJob *
sms_http_any_in_flight(void)
{
	return in_flight > 0 ? in_flight_jobs[in_flight - 1] : NULL;
}

/*
 * Give up a request still in flight (at shutdown); returns whether any of
 * it had been sent.
 */
bool
sms_http_abort(SmsJob *job)
{
	note_request_sent(job->http);
	release_easy(job->http);
	return job->http->request_sent;
}

/*
 * A failure before any byte of the request left, that no message caused and
 * that every request would meet alike: the settings (sms.api_url,
 * sms.ca_file), the TLS set-up or handshake, name resolution, or no server
 * to connect to.  Returns why, for the pause, naming the server as base_url
 * (sms.api_url, which holds no credentials); NULL for a failure that may be
 * this request's alone.  The reason stays the same from one failure to the
 * next (no timings in it), so a pause is logged once, not at every probe.
 */
char *
sms_http_setting_failure(const SmsTransfer *t, const char *base_url)
{
	char	   *what;
	int			len;

	if (t->request_sent)
		return NULL;

	/* curl's text, without the trailing space some of its messages have */
	what = pstrdup(t->error[0] ? t->error : curl_easy_strerror(t->result));
	len = strlen(what);
	while (len > 0 && isspace((unsigned char) what[len - 1]))
		what[--len] = '\0';

	switch (t->result)
	{
		case CURLE_UNSUPPORTED_PROTOCOL:
		case CURLE_URL_MALFORMAT:
		case CURLE_NOT_BUILT_IN:
			return psprintf("libcurl cannot send to %s: %s", base_url, what);
		case CURLE_COULDNT_RESOLVE_PROXY:
			return psprintf("cannot resolve the host name of the proxy for %s", base_url);
		case CURLE_COULDNT_RESOLVE_HOST:
			return psprintf("cannot resolve the host name of %s", base_url);
		case CURLE_COULDNT_CONNECT:
			/* curl's own text has the time it took; the system's does not */
			if (t->os_errno != 0)
				return psprintf("cannot connect to %s: %s", base_url,
								strerror((int) t->os_errno));
			return psprintf("cannot connect to %s", base_url);
		case CURLE_OPERATION_TIMEDOUT:
			return psprintf("cannot connect to %s: timed out before the request could be sent",
							base_url);
		case CURLE_SSL_CONNECT_ERROR:
			return psprintf("TLS handshake with %s failed: %s", base_url, what);
		case CURLE_PEER_FAILED_VERIFICATION:
			return psprintf("cannot verify the certificate of %s: %s", base_url, what);
		case CURLE_SSL_CACERT_BADFILE:
			if (sms_ca_file == NULL || sms_ca_file[0] == '\0')
				return psprintf("cannot load the system's CA certificates: %s", what);
			if (access(sms_ca_file, R_OK) != 0)
			{
				int			save_errno = errno;

				return psprintf("cannot load sms.ca_file \"%s\": %s", sms_ca_file,
								strerror(save_errno));
			}
			return psprintf("cannot load sms.ca_file \"%s\": no PEM certificates could be read from it",
							sms_ca_file);
		case CURLE_SSL_CERTPROBLEM:
		case CURLE_SSL_CIPHER:
		case CURLE_SSL_ENGINE_NOTFOUND:
		case CURLE_SSL_ENGINE_SETFAILED:
		case CURLE_SSL_ENGINE_INITFAILED:
		case CURLE_SSL_CRL_BADFILE:
		case CURLE_SSL_ISSUER_ERROR:
		case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		case CURLE_SSL_INVALIDCERTSTATUS:
		case CURLE_SSL_CLIENTCERT:
			return psprintf("TLS set-up for %s failed: %s", base_url, what);
		default:
			return NULL;
	}
}
