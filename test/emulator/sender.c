/*-------------------------------------------------------------------------
 *
 * sender.c
 *	  Deliver status callbacks over HTTP, and keep a log of each attempt.
 *
 *	  One thread runs a libcurl multi handle, so callbacks to a slow
 *	  receiver never hold a server thread or the scheduler.  Callbacks go
 *	  out on a few lanes, picked by message: each lane sends one callback
 *	  at a time, so a message's callbacks arrive in the order the scheduler
 *	  handed them over (in order, or shuffled on purpose), while callbacks
 *	  of different messages overlap.  Connections are kept alive by
 *	  libcurl's connection cache.
 *
 *	  Like Twilio by default, a callback is tried once: an answer of any
 *	  status, 5xx included, ends it, and so does a failure to connect or a
 *	  timeout.  Every attempt is logged with its URL, parameters, signature
 *	  and outcome, for /_emulator/callbacks.
 *
 *	  The emulator must never send traffic off the machine, so a callback
 *	  is only sent to a loopback receiver: the URL's host must be
 *	  localhost, 127.0.0.0/8 or [::1], judged on the URL as libcurl parses
 *	  it, and the address libcurl then connects to is checked again before
 *	  the socket is opened.  Proxies from the environment are ignored and
 *	  redirects are not followed.  Anything else is logged as refused.
 *
 *-------------------------------------------------------------------------
 */
#include "emulator.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define NLANES 8

typedef struct Lane
{
	CallbackJob *head;			/* waiting, in order */
	CallbackJob *tail;
	CallbackJob *inflight;
	CURL	   *easy;
	struct curl_slist *headers;
	char		errbuf[CURL_ERROR_SIZE];
	bool		refused_address;	/* the socket check said no */
} Lane;

static pthread_mutex_t send_lock = PTHREAD_MUTEX_INITIALIZER;
static Lane lanes[NLANES];
static CURLM *multi;
static pthread_t send_thread;
static bool stopping;
static uint64_t generation;		/* bumped by a reset */
static atomic_llong cb_seq = 1;

/* the log of finished attempts, and counts by result */
static CallbackJob **done;
static size_t ndone;
static size_t capdone;
static int64_t pending;
static int64_t count_result[CB_REFUSED + 1];

static const char *const result_names[] = {
	[CB_PENDING] = "pending",
	[CB_ANSWERED] = "answered",
	[CB_FAILED] = "failed",
	[CB_DROPPED] = "dropped",
	[CB_REFUSED] = "refused",
};

int64_t
callback_next_seq(void)
{
	return atomic_fetch_add(&cb_seq, 1);
}

static void
job_free(CallbackJob *j)
{
	free(j->url);
	form_free(&j->params);
	free(j->body);
	free(j->error);
	free(j);
}

/* Log a finished attempt; send_lock held. */
static void
record(CallbackJob *j, int result, int http_status, const char *error)
{
	j->result = (uint8_t) result;
	j->http_status = http_status;
	j->done_us = now_us();
	/* the log shows params; the encoded copy was only for sending */
	free(j->body);
	j->body = NULL;
	if (error && error[0])
	{
		j->error = strdup(error);
		if (j->error == NULL)
			abort();
	}
	if (ndone == capdone)
	{
		capdone = capdone ? capdone * 2 : 1024;
		done = realloc(done, sizeof(CallbackJob *) * capdone);
		if (done == NULL)
			abort();
	}
	done[ndone++] = j;
	count_result[result]++;
}

/* ---------------------------------------------------------------------- */

static bool
loopback_v4(const struct in_addr *a)
{
	return (ntohl(a->s_addr) >> 24) == 127;
}

static bool
loopback_v6(const struct in6_addr *a)
{
	if (IN6_IS_ADDR_LOOPBACK(a))
		return true;
	if (IN6_IS_ADDR_V4MAPPED(a))
		return a->s6_addr[12] == 127;
	return false;
}

/*
 * Is the URL's host a loopback name or address?  Names other than
 * localhost are refused rather than resolved: no lookup leaves the machine
 * either.
 */
static bool
loopback_url(const char *url)
{
	CURLU	   *h = curl_url();
	char	   *host = NULL;
	bool		ok = false;

	if (h == NULL)
		abort();
	if (curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK)
	{
		size_t		len = strlen(host);
		struct in_addr a4;
		struct in6_addr a6;

		if (strcasecmp(host, "localhost") == 0)
			ok = true;
		else if (inet_pton(AF_INET, host, &a4) == 1)
			ok = loopback_v4(&a4);
		else if (len > 2 && host[0] == '[' && host[len - 1] == ']')
		{
			host[len - 1] = '\0';
			ok = inet_pton(AF_INET6, host + 1, &a6) == 1 && loopback_v6(&a6);
		}
	}
	curl_free(host);
	curl_url_cleanup(h);
	return ok;
}

/* The last word before connect(): only a loopback address gets a socket. */
static curl_socket_t
open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
	Lane	   *lane = clientp;
	bool		ok = false;

	(void) purpose;
	if (addr->family == AF_INET)
		ok = loopback_v4(&((struct sockaddr_in *) &addr->addr)->sin_addr);
	else if (addr->family == AF_INET6)
		ok = loopback_v6(&((struct sockaddr_in6 *) &addr->addr)->sin6_addr);
	if (!ok)
	{
		lane->refused_address = true;
		return CURL_SOCKET_BAD;
	}
	return socket(addr->family, addr->socktype, addr->protocol);
}

static size_t
discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	(void) ptr;
	(void) userdata;
	return size * nmemb;
}

/* Start lane's next callback; send_lock held. */
static void
start(Lane *lane, CallbackJob *j)
{
	CURL	   *e = lane->easy;
	char		sig[64];

	curl_easy_reset(e);
	curl_slist_free_all(lane->headers);
	snprintf(sig, sizeof(sig), "X-Twilio-Signature: %s", j->signature);
	lane->headers = curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded");
	lane->headers = curl_slist_append(lane->headers, sig);
	/* no 100-continue round trip: Twilio sends the body at once */
	lane->headers = curl_slist_append(lane->headers, "Expect:");
	lane->errbuf[0] = '\0';
	lane->refused_address = false;
	lane->inflight = j;

	curl_easy_setopt(e, CURLOPT_URL, j->url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "TwilioProxy/1.1");
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, lane->headers);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long) j->body_len);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
					 (long) atomic_load(&cfg.callback_timeout_ms));
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, lane);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, lane->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, lane);
	pthread_mutex_lock(&cfg.lock);
	if (cfg.callback_ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, cfg.callback_ca_file);
	pthread_mutex_unlock(&cfg.lock);
	curl_multi_add_handle(multi, e);
}

/* Start what the idle lanes have waiting; send_lock held. */
static void
start_waiting(void)
{
	int			i;

	for (i = 0; i < NLANES; i++)
	{
		Lane	   *lane = &lanes[i];

		while (lane->inflight == NULL && lane->head != NULL)
		{
			CallbackJob *j = lane->head;

			lane->head = j->next;
			if (lane->head == NULL)
				lane->tail = NULL;
			j->next = NULL;
			if (!loopback_url(j->url))
			{
				pending--;
				record(j, CB_REFUSED, 0, "not a loopback URL: the emulator only calls back to localhost, 127.0.0.0/8 or [::1]");
				continue;
			}
			start(lane, j);
		}
	}
}

/* A transfer ended: log it unless a reset came in between. */
static void
finish(CURLMsg *msg)
{
	Lane	   *lane = NULL;
	CallbackJob *j;
	long		code = 0;

	curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &lane);
	curl_multi_remove_handle(multi, msg->easy_handle);
	pthread_mutex_lock(&send_lock);
	j = lane->inflight;
	lane->inflight = NULL;
	if (j->generation != generation)
		job_free(j);
	else
	{
		pending--;
		if (msg->data.result == CURLE_OK)
		{
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
			record(j, CB_ANSWERED, (int) code, NULL);
		}
		else if (lane->refused_address)
			record(j, CB_REFUSED, 0, "resolved to an address that is not loopback");
		else
			record(j, CB_FAILED, 0, lane->errbuf[0] ? lane->errbuf :
				   curl_easy_strerror(msg->data.result));
	}
	pthread_mutex_unlock(&send_lock);
}

static void *
sender_main(void *arg)
{
	(void) arg;
	for (;;)
	{
		CURLMsg    *msg;
		int			running,
					left;
		bool		finished = false;

		pthread_mutex_lock(&send_lock);
		if (stopping)
		{
			pthread_mutex_unlock(&send_lock);
			break;
		}
		start_waiting();
		pthread_mutex_unlock(&send_lock);

		curl_multi_perform(multi, &running);
		while ((msg = curl_multi_info_read(multi, &left)) != NULL)
			if (msg->msg == CURLMSG_DONE)
			{
				finish(msg);
				finished = true;
			}

		/*
		 * A lane just came free: start its next callback before waiting.
		 * Otherwise wait for a socket, or for a new callback or a stop to
		 * wake us.
		 */
		if (!finished)
			curl_multi_poll(multi, NULL, 0, 1000, NULL);
	}
	return NULL;
}

/* ---------------------------------------------------------------------- */

/* Take over a job from the scheduler (which may hold store_lock). */
void
sender_enqueue(CallbackJob *j)
{
	pthread_mutex_lock(&send_lock);
	j->generation = generation;
	j->queued_us = now_us();
	if (j->result == CB_DROPPED)
		record(j, CB_DROPPED, 0, NULL);
	else
	{
		Lane	   *lane = &lanes[(uint64_t) j->serial % NLANES];

		if (lane->tail)
			lane->tail->next = j;
		else
			lane->head = j;
		lane->tail = j;
		pending++;
	}
	pthread_mutex_unlock(&send_lock);
	if (multi)
		curl_multi_wakeup(multi);
}

/* Forget waiting callbacks and the log; ones in flight are not logged. */
void
sender_reset(void)
{
	size_t		i;

	pthread_mutex_lock(&send_lock);
	generation++;
	for (i = 0; i < NLANES; i++)
	{
		while (lanes[i].head)
		{
			CallbackJob *j = lanes[i].head;

			lanes[i].head = j->next;
			job_free(j);
		}
		lanes[i].tail = NULL;
	}
	for (i = 0; i < ndone; i++)
		job_free(done[i]);
	ndone = 0;
	pending = 0;
	memset(count_result, 0, sizeof(count_result));
	pthread_mutex_unlock(&send_lock);
}

void
sender_start(void)
{
	int			i;

	multi = curl_multi_init();
	if (multi == NULL)
	{
		fprintf(stderr, "twilio-emulator: could not initialize libcurl\n");
		exit(1);
	}
	for (i = 0; i < NLANES; i++)
	{
		lanes[i].easy = curl_easy_init();
		if (lanes[i].easy == NULL)
			abort();
	}
	if (pthread_create(&send_thread, NULL, sender_main, NULL) != 0)
	{
		fprintf(stderr, "twilio-emulator: could not start callback sender\n");
		exit(1);
	}
}

/* Stop at once: callbacks in flight or waiting are abandoned. */
void
sender_stop(void)
{
	int			i;

	pthread_mutex_lock(&send_lock);
	stopping = true;
	pthread_mutex_unlock(&send_lock);
	curl_multi_wakeup(multi);
	pthread_join(send_thread, NULL);

	sender_reset();
	for (i = 0; i < NLANES; i++)
	{
		if (lanes[i].inflight)
		{
			curl_multi_remove_handle(multi, lanes[i].easy);
			job_free(lanes[i].inflight);
			lanes[i].inflight = NULL;
		}
		curl_easy_cleanup(lanes[i].easy);
		curl_slist_free_all(lanes[i].headers);
	}
	curl_multi_cleanup(multi);
	multi = NULL;
	free(done);
	done = NULL;
	capdone = 0;
}

/* ---------------------------------------------------------------------- */

static int
cmp_seq(const void *a, const void *b)
{
	const CallbackJob *x = *(const CallbackJob *const *) a;
	const CallbackJob *y = *(const CallbackJob *const *) b;

	return (x->seq > y->seq) - (x->seq < y->seq);
}

/*
 * Every finished attempt with seq > since, by seq: the order in which the
 * scheduler made them, which for a message is the order they were sent.
 */
void
callbacks_json(Buf *b, int64_t since)
{
	CallbackJob **sel;
	size_t		n = 0,
				i;

	pthread_mutex_lock(&send_lock);
	sel = malloc(sizeof(CallbackJob *) * (ndone + 1));
	if (sel == NULL)
		abort();
	for (i = 0; i < ndone; i++)
		if (done[i]->seq > since)
			sel[n++] = done[i];
	qsort(sel, n, sizeof(CallbackJob *), cmp_seq);

	/* one entry at a time: a long log never becomes one big tree */
	buf_grow(b, n * 600 + 4);
	buf_putc(b, '[');
	for (i = 0; i < n; i++)
	{
		CallbackJob *j = sel[i];
		json_t	   *e = json_object();

		if (i > 0)
			buf_puts(b, ",\n");
		jv_set(e, "seq", json_integer(j->seq));
		jv_set(e, "sid", jv_ascii(j->sid));
		jv_set(e, "message_status", jv_ascii(status_name(j->status)));
		jv_set(e, "url", jv_text(j->url));
		jv_set(e, "params", jv_form(&j->params));
		jv_set(e, "signature", jv_ascii(j->signature));
		jv_set(e, "result", jv_ascii(result_names[j->result]));
		jv_set(e, "response_status", j->result == CB_ANSWERED ?
			   json_integer(j->http_status) : json_null());
		jv_set(e, "error", jv_text(j->error));
		jv_set(e, "status_us", json_integer(j->t_us));
		jv_set(e, "queued_us", json_integer(j->queued_us));
		jv_set(e, "done_us", json_integer(j->done_us));
		buf_json(b, e);
	}
	buf_putc(b, ']');
	pthread_mutex_unlock(&send_lock);
	free(sel);
}

json_t *
callbacks_summary_json(void)
{
	json_t	   *o = json_object();
	int64_t		scheduled = callback_scheduled();
	int			i;

	pthread_mutex_lock(&send_lock);
	jv_set(o, "scheduled", json_integer(scheduled));
	jv_set(o, "pending", json_integer(pending));
	for (i = CB_ANSWERED; i <= CB_REFUSED; i++)
		jv_set(o, result_names[i], json_integer(count_result[i]));
	pthread_mutex_unlock(&send_lock);
	return o;
}
