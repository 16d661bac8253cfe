/*-------------------------------------------------------------------------
 *
 * emulator.c
 *	  twilio-emulator: options, the libmicrohttpd server and dispatch.
 *
 *	  The server listens on 127.0.0.1 only, with a pool of threads each
 *	  running its own epoll loop.  Each request gets a small context from
 *	  the URI callback (which sees the raw URI, query included, and stamps
 *	  the arrival time), collects its body, and is answered from the final
 *	  access-handler call, where libmicrohttpd parses the body and the
 *	  query string into forms (form.c).  Delayed replies are prepared at
 *	  once and sent from a suspended connection later (delay.c), so a
 *	  delay never blocks a server thread.  Two more threads serve status
 *	  callbacks: one decides when they are due (callback.c), one sends
 *	  them (sender.c).
 *
 *-------------------------------------------------------------------------
 */
#include "emulator.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#define MAX_BODY (1024 * 1024)

Config		cfg;

typedef struct Req
{
	int64_t		t_us;
	int64_t		seq;
	char	   *uri;			/* raw path?query */
	size_t		path_len;
	bool		control;
	bool		started;
	bool		too_large;
	bool		prepared;		/* reply ready, connection was suspended */
	bool		drop;
	unsigned	status;
	Buf			body;			/* raw, as it arrives */
	Form		form;			/* the body's parameters */
	Form		query;			/* the query string's */
	const char *content_type;	/* as sent, for the log */
	struct MHD_Response *resp;
} Req;

/* ---------------------------------------------------------------------- */

void
config_set_str(char **field, const char *val, size_t len)
{
	char	   *s = NULL;

	if (len > 0)
	{
		s = malloc(len + 1);
		if (s == NULL)
			abort();
		memcpy(s, val, len);
		s[len] = '\0';
	}
	free(*field);
	*field = s;
}

/* Account sid + auth token, or API key sid + secret. */
bool
config_check_auth(const char *user, size_t ulen, const char *pass, size_t plen)
{
	bool		ok = false;

	pthread_mutex_lock(&cfg.lock);
	if (!cfg.check_credentials)
		ok = ulen > 0;			/* a developer's own account, whatever it is */
	else if (field_eq(user, ulen, cfg.account_sid))
		ok = cfg.auth_token && field_eq(pass, plen, cfg.auth_token);
	else if (cfg.api_key_sid && cfg.api_key_secret &&
			 field_eq(user, ulen, cfg.api_key_sid))
		ok = field_eq(pass, plen, cfg.api_key_secret);
	pthread_mutex_unlock(&cfg.lock);
	return ok;
}

/* ---------------------------------------------------------------------- */

static int
b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/*
 * Decode "Basic <base64(user:pass)>" into out (NUL-terminated); returns
 * the decoded length or -1.  Done here rather than with MHD's helper to
 * spare two allocations per request.
 */
static int
decode_basic(const char *hdr, char *out, size_t outsz)
{
	const char *p;
	size_t		o = 0;
	uint32_t	acc = 0;
	int			bits = 0;

	if (hdr == NULL || strncasecmp(hdr, "Basic ", 6) != 0)
		return -1;
	for (p = hdr + 6; *p == ' '; p++)
		;
	for (; *p && *p != '='; p++)
	{
		int			v = b64val((unsigned char) *p);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t) v;
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			if (o + 1 >= outsz)
				return -1;
			out[o++] = (char) ((acc >> bits) & 0xFF);
		}
	}
	out[o] = '\0';
	return (int) o;
}

/* ---------------------------------------------------------------------- */

static void *
on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	Req		   *r = calloc(1, sizeof(Req));

	(void) cls;
	(void) conn;
	if (r == NULL)
		abort();
	r->t_us = now_us();
	r->uri = strdup(uri);
	if (r->uri == NULL)
		abort();
	r->path_len = strcspn(uri, "?");
	r->control = strncmp(uri, "/_emulator/", 11) == 0;
	if (!r->control)
		r->seq = log_next_seq();
	return r;
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	Req		   *r = *con_cls;

	(void) cls;
	(void) conn;
	(void) toe;
	if (r == NULL)
		return;
	if (r->resp)
		MHD_destroy_response(r->resp);
	free(r->uri);
	buf_free(&r->body);
	form_free(&r->form);
	form_free(&r->query);
	free(r);
	*con_cls = NULL;
}

static struct MHD_Response *
make_response(Reply *rep)
{
	struct MHD_Response *resp;

	if (rep->body.len > 0)
	{
		size_t		len;
		char	   *data = buf_steal(&rep->body, &len);

		resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
								"application/json");
	}
	else
		resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
	if (rep->retry_after > 0)
	{
		char		val[16];

		snprintf(val, sizeof(val), "%d", rep->retry_after);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, val);
	}
	if (rep->www_authenticate)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
								"Basic realm=\"Twilio API\"");
	return resp;
}

/* A Twilio API request (anything not under /_emulator/): answer and log. */
static void
api_request(struct MHD_Connection *conn, Req *r, const char *url,
			const char *method, Reply *rep)
{
	ApiRequest	req;
	LogInput	in;
	char		cred[512];
	int			clen;
	const char *colon = NULL;
	const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
												   MHD_HTTP_HEADER_AUTHORIZATION);

	memset(&req, 0, sizeof(req));
	req.method = method;
	req.path = url;
	req.query = &r->query;
	req.form = &r->form;

	clen = decode_basic(auth, cred, sizeof(cred));
	if (clen >= 0 && (colon = memchr(cred, ':', clen)) != NULL)
	{
		req.auth_user = cred;
		req.auth_user_len = colon - cred;
		req.auth_pass = colon + 1;
		req.auth_pass_len = clen - (colon - cred) - 1;
	}

	if (r->too_large)
		reply_error(rep, 413, 20001, "Request body too large");
	else if (strncmp(url, "/2010-04-01/", 12) == 0)
		twilio_handle(&req, rep);
	else
	{
		Buf			msg = {0};

		buf_printf(&msg, "The requested resource %s was not found", url);
		reply_error(rep, 404, 20404, msg.data);
		buf_free(&msg);
	}

	memset(&in, 0, sizeof(in));
	in.seq = r->seq;
	in.t_us = r->t_us;
	in.method = method;
	in.uri = r->uri;
	in.path_len = r->path_len;
	in.form = r->form;
	if (clen >= 0)
	{
		/* the user part, or all of it when there is no colon */
		in.auth_user = cred;
		in.auth_user_len = colon ? (size_t) (colon - cred) : (size_t) clen;
	}
	in.user_agent = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
												MHD_HTTP_HEADER_USER_AGENT);
	in.content_type = r->content_type;
	in.accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
											MHD_HTTP_HEADER_ACCEPT);
	in.status = rep->status;
	in.fault = rep->fault;
	in.kind = rep->kind;
	/* the log takes over the raw URI and the form: no copies */
	log_append(&in);
	r->uri = NULL;
	r->form.f = NULL;
	r->form.n = 0;
}

/*
 * The page and the control API have no login: only this machine may use
 * them.  A web page the developer visits elsewhere could still make the
 * browser send them requests (a form posted to 127.0.0.1, or a name of
 * its own that resolves to 127.0.0.1 once the page is loaded): refuse a
 * request whose Origin is another site's, or whose Host is not the
 * address the emulator was reached at by this machine.
 */
static bool
from_elsewhere(struct MHD_Connection *conn)
{
	const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
												   MHD_HTTP_HEADER_HOST);
	const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
													 "Origin");
	size_t		hlen;

	if (host == NULL)
		return false;			/* HTTP/1.0 tools: curl -0, scripts */
	hlen = strcspn(host, ":");
	if (!((hlen == 9 && strncmp(host, "localhost", 9) == 0) ||
		  strncmp(host, "127.", 4) == 0 || strncmp(host, "[::1]", 5) == 0 ||
		  (strncmp(host, cfg.bind_addr, hlen) == 0 && cfg.bind_addr[hlen] == '\0')))
		return true;
	if (origin == NULL)
		return false;
	/* the page's own requests: Origin is http(s)://<the same Host> */
	if (strncmp(origin, "http://", 7) == 0)
		origin += 7;
	else if (strncmp(origin, "https://", 8) == 0)
		origin += 8;
	else
		return true;
	return strcmp(origin, host) != 0;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
		   const char *method, const char *version, const char *upload_data,
		   size_t *upload_data_size, void **con_cls)
{
	Req		   *r = *con_cls;
	Reply		rep;
	int			delay;
	enum MHD_Result ret;

	(void) cls;
	(void) version;
	if (r == NULL)				/* cannot happen: on_uri always runs */
		return MHD_NO;

	if (!r->started)
	{
		r->started = true;
		return MHD_YES;
	}
	if (*upload_data_size > 0)
	{
		if (r->body.len + *upload_data_size > MAX_BODY)
			r->too_large = true;
		else
			buf_put(&r->body, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}

	/* back from suspension: send what was prepared, or hang up */
	if (r->prepared)
	{
		if (r->drop)
			return MHD_NO;
		ret = MHD_queue_response(conn, r->status, r->resp);
		MHD_destroy_response(r->resp);
		r->resp = NULL;
		return ret;
	}

	memset(&rep, 0, sizeof(rep));
	rep.delay_ms = -1;
	/* looked up first: reading a body without one adds the header */
	r->content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
												  MHD_HTTP_HEADER_CONTENT_TYPE);

	if ((r->control || strcmp(url, "/") == 0) && from_elsewhere(conn))
	{
		struct MHD_Response *resp;

		reply_error(&rep, 403, 20403, "The emulator's page and control API answer this machine only");
		resp = make_response(&rep);
		ret = MHD_queue_response(conn, 403, resp);
		MHD_destroy_response(resp);
		buf_free(&rep.body);
		return ret;
	}

	/* the inbox page, and its event stream (open until the page goes) */
	if (!r->control && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0))
	{
		struct MHD_Response *page = page_response(url);

		if (page)
		{
			ret = MHD_queue_response(conn, MHD_HTTP_OK, page);
			MHD_destroy_response(page);
			return ret;
		}
	}
	if (r->control && strcmp(url, "/_emulator/events") == 0 &&
		strcmp(method, "GET") == 0)
	{
		struct MHD_Response *resp = events_response(conn);

		ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	form_read_body(conn, &r->body, &r->form);
	if (r->uri[r->path_len] == '?')
		form_read_query(conn, &r->query);
	if (r->control)
	{
		control_handle(method, url, &r->query, &r->form, &rep);
		delay = 0;
	}
	else
	{
		api_request(conn, r, url, method, &rep);
		delay = rep.delay_ms >= 0 ? rep.delay_ms : atomic_load(&cfg.delay_ms);
	}

	if (delay > 0)
	{
		r->prepared = true;
		r->drop = (rep.status == 0);
		r->status = rep.status;
		if (!r->drop)
			r->resp = make_response(&rep);
		buf_free(&rep.body);
		MHD_suspend_connection(conn);
		delay_add(conn, mono_us() + (int64_t) delay * 1000);
		return MHD_YES;
	}
	if (rep.status == 0)
	{
		buf_free(&rep.body);
		return MHD_NO;			/* close without a reply */
	}
	{
		struct MHD_Response *resp = make_response(&rep);

		ret = MHD_queue_response(conn, rep.status, resp);
		MHD_destroy_response(resp);
	}
	buf_free(&rep.body);
	return ret;
}

/* ---------------------------------------------------------------------- */

static char *
read_file(const char *path)
{
	FILE	   *f = fopen(path, "rb");
	Buf			b = {0};
	char		chunk[4096];
	size_t		n;

	if (f == NULL)
	{
		fprintf(stderr, "twilio-emulator: could not open \"%s\": %s\n",
				path, strerror(errno));
		exit(1);
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_put(&b, chunk, n);
	fclose(f);
	return buf_steal(&b, NULL);
}

static void
usage(FILE *out)
{
	fprintf(out,
			"Usage: sms-emulator [options]   (in the source tree: twilio-emulator)\n"
			"  --port N                 TCP port (default 8099; 0: pick a free one)\n"
			"  --bind ADDR              IPv4 address to listen on (default 127.0.0.1);\n"
			"                           the control API and the page have no login:\n"
			"                           keep it on a loopback address\n"
			"  --threads N              server threads (default 2)\n"
			"  --tls-cert FILE          serve HTTPS with this PEM certificate ...\n"
			"  --tls-key FILE           ... and this PEM private key\n"
			"  --check-credentials      refuse (401) any account and token but these:\n"
			"  --account-sid AC...      account sid (default ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa)\n"
			"  --auth-token TOKEN       auth token (default emulator-token)\n"
			"  --api-key-sid SK...      also accept this API key sid ...\n"
			"  --api-key-secret S       ... with this secret\n"
			"                           (each of the four turns the check on; without\n"
			"                           them any account and token are accepted)\n"
			"  --progress-ms MS         sent MS after queued, delivered MS later\n"
			"                           (default 100; -1: frozen, never progress)\n"
			"  --delay-ms MS            delay every API reply by MS (default 0)\n"
			"  --inbox-file FILE        keep the inbox in FILE (made if need be), so a\n"
			"                           restart keeps every message and its sid\n"
			"                           (default: in memory only)\n"
			"  --quiet                  no messages on stderr\n");
}

static long
int_arg(const char *opt, const char *val, long min, long max)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(val, &end, 10);
	if (errno != 0 || *end != '\0' || end == val || v < min || v > max)
	{
		fprintf(stderr, "twilio-emulator: invalid value for --%s: \"%s\"\n",
				opt, val);
		exit(2);
	}
	return v;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"port", required_argument, NULL, 'p'},
		{"threads", required_argument, NULL, 't'},
		{"tls-cert", required_argument, NULL, 'c'},
		{"tls-key", required_argument, NULL, 'k'},
		{"account-sid", required_argument, NULL, 'a'},
		{"auth-token", required_argument, NULL, 'T'},
		{"api-key-sid", required_argument, NULL, 's'},
		{"api-key-secret", required_argument, NULL, 'S'},
		{"progress-ms", required_argument, NULL, 'P'},
		{"delay-ms", required_argument, NULL, 'd'},
		{"quiet", no_argument, NULL, 'q'},
		{"bind", required_argument, NULL, 'b'},
		{"check-credentials", no_argument, NULL, 'C'},
		{"inbox-file", required_argument, NULL, 'I'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	long		port = 8099;
	const char *bind_addr = "127.0.0.1";
	const char *inbox_path = NULL;
	long		threads = 2;
	const char *cert_file = NULL;
	const char *key_file = NULL;
	char	   *cert = NULL;
	char	   *key = NULL;
	struct sockaddr_in addr;
	struct MHD_Daemon *daemon;
	const union MHD_DaemonInfo *info;
	unsigned int flags;
	sigset_t	sigs;
	struct rlimit rl;
	int			c,
				sig;
	bool		tls;
	bool		freeze = false;

	strcpy(cfg.account_sid, "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	cfg.bind_addr = "127.0.0.1";
	pthread_mutex_init(&cfg.lock, NULL);
	config_set_str(&cfg.auth_token, "emulator-token", strlen("emulator-token"));
	atomic_init(&cfg.delay_ms, 0);
	/* short and fixed, so tests see every status without waiting long */
	atomic_init(&cfg.accepted_ms, 50);
	atomic_init(&cfg.queued_ms, 50);
	atomic_init(&cfg.sending_ms, 50);
	atomic_init(&cfg.sent_ms, 100);
	atomic_init(&cfg.callback_order, ORDER_INORDER);
	atomic_init(&cfg.callback_drop_percent, 0);
	atomic_init(&cfg.callback_timeout_ms, 5000);

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'p':
				port = int_arg("port", optarg, 0, 65535);
				break;
			case 't':
				threads = int_arg("threads", optarg, 1, 256);
				break;
			case 'c':
				cert_file = optarg;
				break;
			case 'k':
				key_file = optarg;
				break;
			case 'a':
				if (strlen(optarg) >= sizeof(cfg.account_sid) || optarg[0] == '\0')
				{
					fprintf(stderr, "twilio-emulator: invalid --account-sid\n");
					exit(2);
				}
				strcpy(cfg.account_sid, optarg);
				cfg.check_credentials = true;
				break;
			case 'T':
				config_set_str(&cfg.auth_token, optarg, strlen(optarg));
				cfg.check_credentials = true;
				break;
			case 's':
				config_set_str(&cfg.api_key_sid, optarg, strlen(optarg));
				cfg.check_credentials = true;
				break;
			case 'S':
				config_set_str(&cfg.api_key_secret, optarg, strlen(optarg));
				cfg.check_credentials = true;
				break;
			case 'C':
				cfg.check_credentials = true;
				break;
			case 'b':
				bind_addr = optarg;
				cfg.bind_addr = optarg;
				break;
			case 'P':
				{
					int			ms = (int) int_arg("progress-ms", optarg, -1, 86400000);

					if (ms < 0)
						freeze = true;
					else
					{
						atomic_store(&cfg.queued_ms, ms / 2);
						atomic_store(&cfg.sending_ms, ms - ms / 2);
						atomic_store(&cfg.sent_ms, ms);
					}
				}
				break;
			case 'd':
				atomic_store(&cfg.delay_ms,
							 (int) int_arg("delay-ms", optarg, 0, 3600000));
				break;
			case 'q':
				cfg.quiet = true;
				break;
			case 'I':
				inbox_path = optarg;
				break;
			case 'h':
				usage(stdout);
				return 0;
			default:
				usage(stderr);
				return 2;
		}
	}
	if (optind < argc)
	{
		usage(stderr);
		return 2;
	}
	if ((cert_file == NULL) != (key_file == NULL))
	{
		fprintf(stderr, "twilio-emulator: --tls-cert and --tls-key go together\n");
		return 2;
	}
	if ((cfg.api_key_sid == NULL) != (cfg.api_key_secret == NULL))
	{
		fprintf(stderr, "twilio-emulator: --api-key-sid and --api-key-secret go together\n");
		return 2;
	}
	if (cfg.auth_token == NULL)
	{
		fprintf(stderr, "twilio-emulator: --auth-token must not be empty\n");
		return 2;
	}
	tls = (cert_file != NULL);
	if (tls)
	{
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
		{
			fprintf(stderr, "twilio-emulator: this libmicrohttpd has no TLS support\n");
			return 1;
		}
		cert = read_file(cert_file);
		key = read_file(key_file);
	}

	/* thousands of keep-alive connections need more than 1024 descriptors */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
	{
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	/* signals are taken by sigwait() below, never by a server thread */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	/* jansson seeds its hash function once, before any thread builds JSON */
	json_object_seed(0);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
	{
		fprintf(stderr, "twilio-emulator: could not initialize libcurl\n");
		return 1;
	}
	if (freeze)
		clock_set_frozen(true);
	/* the messages kept from the last run, before anyone can ask */
	if (inbox_path)
		inbox_file_open(inbox_path);
	delay_start();
	events_start();
	sender_start();
	scheduler_start();

	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t) port);
	if (inet_pton(AF_INET, bind_addr, &addr.sin_addr) != 1)
	{
		fprintf(stderr, "twilio-emulator: --bind takes an IPv4 address, not \"%s\"\n", bind_addr);
		return 2;
	}
	/* 127.0.0.0/8 is this machine; anything else lets others drive it */
	if ((ntohl(addr.sin_addr.s_addr) >> 24) != 127)
		fprintf(stderr, "twilio-emulator: WARNING: listening on %s: anyone who reaches it "
				"can read every message and change its settings (no login)\n", bind_addr);

	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO |
		MHD_ALLOW_SUSPEND_RESUME;
	if (!cfg.quiet)
		flags |= MHD_USE_ERROR_LOG;
	if (tls)
		flags |= MHD_USE_TLS;

	daemon = MHD_start_daemon(flags, (uint16_t) port, NULL, NULL,
							  on_request, NULL,
							  MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &addr,
							  MHD_OPTION_THREAD_POOL_SIZE, (unsigned int) (threads > 1 ? threads : 0),
							  MHD_OPTION_CONNECTION_LIMIT, (unsigned int) 10000,
							  /* MHD zeroes the pool per request: keep it small */
							  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) 16384,
							  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) 300,
							  MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int) 1024,
							  MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL,
							  MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
							  tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, cert,
							  MHD_OPTION_HTTPS_MEM_KEY, key,
							  MHD_OPTION_END);
	if (daemon == NULL)
	{
		fprintf(stderr, "twilio-emulator: could not listen on %s:%ld\n", bind_addr, port);
		delay_stop();
		scheduler_stop();
		sender_stop();
		return 1;
	}
	info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
	if (info != NULL && info->port != 0)
		port = info->port;
	printf("twilio-emulator listening on %s:%ld (%s)\n", bind_addr, port,
		   tls ? "https" : "http");
	fflush(stdout);

	do
	{
		if (sigwait(&sigs, &sig) != 0)
			sig = SIGTERM;
	} while (sig != SIGTERM && sig != SIGINT);

	if (!cfg.quiet)
		fprintf(stderr, "twilio-emulator: shutting down\n");
	delay_stop();
	events_stop();
	MHD_stop_daemon(daemon);
	scheduler_stop();
	sender_stop();
	inbox_file_close();
	store_shutdown();
	fault_clear();
	outcome_clear();
	curl_global_cleanup();
	free(cert);
	free(key);
	free(cfg.auth_token);
	free(cfg.api_key_sid);
	free(cfg.api_key_secret);
	free(cfg.callback_token);
	free(cfg.callback_ca_file);
	return 0;
}
