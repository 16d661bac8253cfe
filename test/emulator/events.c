/*-------------------------------------------------------------------------
 *
 * events.c
 *	  What the inbox page is told as it happens, as Server-Sent Events at
 *	  GET /_emulator/events: a message created, a message's status changed,
 *	  the inbox cleared.
 *
 *	  Events go into a ring of the last EVENT_RING, numbered; each listener
 *	  remembers the last it was sent.  A listener with nothing new is
 *	  suspended (MHD_suspend_connection from its content reader, the pattern
 *	  libmicrohttpd prescribes for "no data yet"), and every publish resumes
 *	  the suspended ones, so an idle page costs no thread and no polling.  A
 *	  listener that fell more than a ring behind is told to load everything
 *	  again (event "reset").  Every KEEPALIVE_MS a comment line is sent to
 *	  each listener, so a closed page is noticed and its connection freed.
 *
 *	  With no listener connected, publishing is one atomic read.
 *
 *-------------------------------------------------------------------------
 */
#include "emulator.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EVENT_RING 4096
#define KEEPALIVE_MS 15000

typedef struct Event
{
	int64_t		seq;
	char	   *data;			/* "id: N\ndata: {...}\n\n" */
	size_t		len;
} Event;

typedef struct Listener
{
	struct MHD_Connection *conn;
	int64_t		last;			/* the last event it was sent */
	bool		suspended;
	bool		keepalive;		/* a comment line is due */
	struct Listener *prev;
	struct Listener *next;
} Listener;

static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static Event ring[EVENT_RING];
static int64_t next_seq = 1;
static Listener *listeners;
static atomic_int nlisteners;
static pthread_t keepalive_thread;
static bool keepalive_running;
static bool keepalive_stopping;
static bool closing;			/* shutting down: every stream ends */
static pthread_cond_t keepalive_cond = PTHREAD_COND_INITIALIZER;

bool
events_listening(void)
{
	return atomic_load(&nlisteners) > 0;
}

/* Wake every suspended listener; ev_lock held. */
static void
wake_listeners(void)
{
	for (Listener *l = listeners; l; l = l->next)
		if (l->suspended)
		{
			l->suspended = false;
			MHD_resume_connection(l->conn);
		}
}

/*
 * Publish one event, and let go of it.  Its JSON is one line (jansson
 * escapes line breaks in strings), as an SSE data field must be.
 */
void
events_publish(json_t *event)
{
	Buf			json = {0};

	if (!events_listening())
	{
		json_decref(event);
		return;
	}
	buf_json(&json, event);
	events_publish_text(json.data, json.len);
	buf_free(&json);
}

/* Publish one event whose data is the one-line JSON json[0..len). */
void
events_publish_text(const char *json, size_t len)
{
	Event	   *e;
	Buf			b = {0};

	if (!events_listening())
		return;
	pthread_mutex_lock(&ev_lock);
	e = &ring[next_seq % EVENT_RING];
	free(e->data);
	buf_grow(&b, len + 32);
	buf_printf(&b, "id: %lld\ndata: ", (long long) next_seq);
	buf_put(&b, json, len);
	buf_puts(&b, "\n\n");
	e->seq = next_seq++;
	e->data = buf_steal(&b, &e->len);
	wake_listeners();
	pthread_mutex_unlock(&ev_lock);
}

static ssize_t
sse_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	Listener   *l = cls;
	size_t		n = 0;
	int64_t		oldest;

	(void) pos;
	pthread_mutex_lock(&ev_lock);
	if (closing)
	{
		pthread_mutex_unlock(&ev_lock);
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	oldest = next_seq > EVENT_RING ? next_seq - EVENT_RING : 1;
	if (l->last + 1 < oldest)
	{
		static const char reset[] = "event: reset\ndata: {}\n\n";

		if (max < sizeof(reset))
		{
			pthread_mutex_unlock(&ev_lock);
			return 0;
		}
		memcpy(buf, reset, sizeof(reset) - 1);
		n = sizeof(reset) - 1;
		l->last = oldest - 1;
	}
	while (l->last + 1 < next_seq)
	{
		const Event *e = &ring[(l->last + 1) % EVENT_RING];

		if (n + e->len > max)
			break;
		memcpy(buf + n, e->data, e->len);
		n += e->len;
		l->last++;
	}
	if (n == 0 && l->keepalive && max >= 3)
	{
		memcpy(buf, ":\n\n", 3);
		n = 3;
	}
	l->keepalive = false;
	if (n == 0)
	{
		l->suspended = true;
		MHD_suspend_connection(l->conn);
	}
	pthread_mutex_unlock(&ev_lock);
	return (ssize_t) n;
}

static void
sse_free(void *cls)
{
	Listener   *l = cls;

	pthread_mutex_lock(&ev_lock);
	if (l->prev)
		l->prev->next = l->next;
	else
		listeners = l->next;
	if (l->next)
		l->next->prev = l->prev;
	atomic_fetch_sub(&nlisteners, 1);
	pthread_mutex_unlock(&ev_lock);
	free(l);
}

/*
 * The response for GET /_emulator/events: the events from now on (or,
 * with a Last-Event-ID header, after that one).
 */
struct MHD_Response *
events_response(struct MHD_Connection *conn)
{
	Listener   *l = calloc(1, sizeof(Listener));
	struct MHD_Response *resp;
	const char *last_id = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
													  "Last-Event-ID");

	if (l == NULL)
		abort();
	l->conn = conn;
	pthread_mutex_lock(&ev_lock);
	l->last = next_seq - 1;
	if (last_id)
	{
		long long	id = strtoll(last_id, NULL, 10);

		if (id >= 0 && id < next_seq)
			l->last = id;
	}
	l->next = listeners;
	if (listeners)
		listeners->prev = l;
	listeners = l;
	atomic_fetch_add(&nlisteners, 1);
	pthread_mutex_unlock(&ev_lock);

	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384,
											 sse_reader, l, sse_free);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	return resp;
}

static void *
keepalive_main(void *arg)
{
	(void) arg;
	pthread_mutex_lock(&ev_lock);
	while (!keepalive_stopping)
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += KEEPALIVE_MS / 1000;
		pthread_cond_timedwait(&keepalive_cond, &ev_lock, &ts);
		for (Listener *l = listeners; l; l = l->next)
			l->keepalive = true;
		wake_listeners();
	}
	pthread_mutex_unlock(&ev_lock);
	return NULL;
}

void
events_start(void)
{
	keepalive_running = pthread_create(&keepalive_thread, NULL, keepalive_main, NULL) == 0;
}

/*
 * Before the daemon stops: end every stream (libmicrohttpd refuses to stop
 * with connections suspended) and wait, briefly, until they are gone.
 */
void
events_stop(void)
{
	pthread_mutex_lock(&ev_lock);
	closing = true;
	keepalive_stopping = true;
	wake_listeners();
	pthread_cond_signal(&keepalive_cond);
	pthread_mutex_unlock(&ev_lock);
	if (keepalive_running)
		pthread_join(keepalive_thread, NULL);
	for (int i = 0; i < 200 && events_listening(); i++)
	{
		struct timespec ts = {0, 10 * 1000 * 1000};

		nanosleep(&ts, NULL);
	}
}
