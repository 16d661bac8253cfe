/*-------------------------------------------------------------------------
 *
 * events.c
 *	  What the inbox page is told as it happens, as Server-Sent Events at
 *	  GET /_emulator/events: the numbers whose conversations changed (a
 *	  message created, its status moved on, it was canceled, redacted or
 *	  deleted), and whether the inbox was cleared.  The page then fetches
 *	  what it shows (inbox.c).
 *
 *	  A developer keeps the page open while a load test runs, and the
 *	  emulator must serve nearly as fast with the page open as without: so
 *	  publishing costs a request next to nothing, and the page's work does
 *	  not grow with the message rate.  An event is only a number in a ring
 *	  (the message's serial), written under a short lock; the listener's own
 *	  connection reads every event since its last read at once and sends
 *	  one line naming the numbers they touched.  The page is never sent a
 *	  message it would not show.
 *
 *	  Listeners are woken at most every FLUSH_MS, not on every event: a
 *	  listener with nothing new is suspended (MHD_suspend_connection from its
 *	  content reader, the pattern libmicrohttpd prescribes for "no data
 *	  yet"), and one thread resumes the suspended ones FLUSH_MS after the
 *	  first event that finds them asleep.  Under load that is one wake per
 *	  listener per FLUSH_MS, each reading many events at once, instead of
 *	  one per event; an idle page costs no thread and no polling.  The same
 *	  thread sends a comment line every KEEPALIVE_MS, so a closed page is
 *	  noticed and its connection freed.  A listener that fell more than a
 *	  ring behind is told to load everything again (event "reset").
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

#define EVENT_RING 65536		/* events kept: serials, 16 bytes each */
#define FLUSH_MS 50				/* the longest an event waits for the page */
#define KEEPALIVE_MS 15000
#define CHANGED_MAX 32			/* numbers an event names, beyond: "many" */

#define EVENT_CLEARED (-1)		/* the serial of "the inbox was cleared" */

typedef struct Event
{
	int64_t		seq;
	int64_t		serial;			/* the message, or EVENT_CLEARED */
} Event;

typedef struct Listener
{
	struct MHD_Connection *conn;
	int64_t		last;			/* the last event made into out */
	bool		suspended;
	bool		keepalive;		/* a comment line is due */
	Buf			out;			/* made, not yet handed to libmicrohttpd */
	size_t		out_sent;
	struct Listener *prev;
	struct Listener *next;
} Listener;

static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static Event ring[EVENT_RING];
static int64_t next_seq = 1;
static Listener *listeners;
static atomic_int nlisteners;
static bool flush_due;			/* a listener sleeps through a new event */
static pthread_t flusher_thread;
static bool flusher_running;
static bool flusher_stopping;
static bool closing;			/* shutting down: every stream ends */
static pthread_cond_t flusher_cond;

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
	flush_due = false;
}

static void
publish(int64_t serial)
{
	Event	   *e;

	if (!events_listening())
		return;
	pthread_mutex_lock(&ev_lock);
	e = &ring[next_seq % EVENT_RING];
	e->seq = next_seq++;
	e->serial = serial;
	if (!flush_due)
	{
		flush_due = true;
		pthread_cond_signal(&flusher_cond);
	}
	pthread_mutex_unlock(&ev_lock);
}

/* A message was created or changed (store_lock may be held). */
void
events_publish_message(int64_t serial)
{
	publish(serial);
}

/* The inbox was cleared. */
void
events_publish_cleared(void)
{
	publish(EVENT_CLEARED);
}

/*
 * Make the events after l->last into one SSE event in l->out, which says
 * which numbers' conversations changed (at most CHANGED_MAX, or null:
 * many) and whether the inbox was cleared; the page then asks for what
 * it shows (inbox.c).  The serials are copied under ev_lock and looked up
 * under store_lock alone (the store's lock comes first wherever both are
 * taken).  False when there is nothing new.
 */
static bool
make_events(Listener *l)
{
	int64_t    *serial;
	int64_t		first,
				oldest,
				n;
	bool		fell_behind = false,
				cleared = false,
				many = false;
	const char *changed[CHANGED_MAX];
	int			nchanged = 0;

	pthread_mutex_lock(&ev_lock);
	oldest = next_seq > EVENT_RING ? next_seq - EVENT_RING : 1;
	if (l->last + 1 < oldest)
	{
		fell_behind = true;
		l->last = oldest - 1;
	}
	first = l->last + 1;
	n = next_seq - first;
	serial = malloc(sizeof(int64_t) * (n + 1));
	if (serial == NULL)
		abort();
	for (int64_t i = 0; i < n; i++)
		serial[i] = ring[(first + i) % EVENT_RING].serial;
	pthread_mutex_unlock(&ev_lock);

	l->out.len = 0;
	l->out_sent = 0;
	if (fell_behind)
		buf_puts(&l->out, "event: reset\ndata: {}\n\n");
	if (n > 0)
	{
		pthread_mutex_lock(&store_lock);
		for (int64_t i = 0; i < n; i++)
		{
			const Message *m;
			int			k;

			if (serial[i] == EVENT_CLEARED)
			{
				cleared = true;
				nchanged = 0;
				many = false;
				continue;
			}
			m = store_by_serial(serial[i]);
			if (m == NULL || many)
				continue;		/* cleared since, or already "many" */
			for (k = 0; k < nchanged && strcmp(changed[k], m->to) != 0; k++)
				;
			if (k < nchanged)
				continue;
			if (nchanged == CHANGED_MAX)
				many = true;
			else
				changed[nchanged++] = m->to;
		}
		buf_printf(&l->out, "id: %lld\ndata: {\"type\": \"changed\", \"cleared\": %s, \"numbers\": ",
				   (long long) (first + n - 1), cleared ? "true" : "false");
		if (many)
			buf_puts(&l->out, "null");
		else
		{
			buf_putc(&l->out, '[');
			for (int k = 0; k < nchanged; k++)
			{
				if (k > 0)
					buf_puts(&l->out, ", ");
				buf_json_text(&l->out, changed[k]);
			}
			buf_putc(&l->out, ']');
		}
		pthread_mutex_unlock(&store_lock);
		buf_puts(&l->out, "}\n\n");
	}
	free(serial);
	l->last = first + n - 1;
	return l->out.len > 0;
}

static ssize_t
sse_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	Listener   *l = cls;
	size_t		n;

	(void) pos;
	if (l->out_sent == l->out.len)
	{
		bool		closed;

		pthread_mutex_lock(&ev_lock);
		closed = closing;
		pthread_mutex_unlock(&ev_lock);
		if (closed)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (!make_events(l))
		{
			pthread_mutex_lock(&ev_lock);
			if (l->keepalive && max >= 3)
			{
				l->keepalive = false;
				pthread_mutex_unlock(&ev_lock);
				memcpy(buf, ":\n\n", 3);
				return 3;
			}
			/* nothing new: sleep until the next flush (unless one came) */
			if (l->last + 1 == next_seq && !closing)
			{
				l->suspended = true;
				MHD_suspend_connection(l->conn);
			}
			pthread_mutex_unlock(&ev_lock);
			return 0;
		}
	}
	n = l->out.len - l->out_sent;
	if (n > max)
		n = max;
	memcpy(buf, l->out.data + l->out_sent, n);
	l->out_sent += n;
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
	buf_free(&l->out);
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
	buf_grow(&l->out, 16384);
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

	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 65536,
											 sse_reader, l, sse_free);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	return resp;
}

static struct timespec
mono_after(int64_t ms)
{
	int64_t		t = mono_us() + ms * 1000;
	struct timespec ts;

	ts.tv_sec = t / 1000000;
	ts.tv_nsec = (t % 1000000) * 1000;
	return ts;
}

/*
 * The flusher: FLUSH_MS after an event finds listeners asleep, wake them;
 * every KEEPALIVE_MS, a comment line to each.
 */
static void *
flusher_main(void *arg)
{
	int64_t		keepalive_at = mono_us() + KEEPALIVE_MS * 1000;

	(void) arg;
	pthread_mutex_lock(&ev_lock);
	while (!flusher_stopping)
	{
		struct timespec ts;

		if (flush_due)
		{
			/* let more events gather, then wake the listeners once */
			ts = mono_after(FLUSH_MS);
			while (!flusher_stopping &&
				   pthread_cond_timedwait(&flusher_cond, &ev_lock, &ts) == 0)
				;
			wake_listeners();
		}
		if (mono_us() >= keepalive_at)
		{
			for (Listener *l = listeners; l; l = l->next)
				l->keepalive = true;
			wake_listeners();
			keepalive_at = mono_us() + KEEPALIVE_MS * 1000;
		}
		if (!flush_due && !flusher_stopping)
		{
			ts = mono_after((keepalive_at - mono_us()) / 1000 + 1);
			pthread_cond_timedwait(&flusher_cond, &ev_lock, &ts);
		}
	}
	pthread_mutex_unlock(&ev_lock);
	return NULL;
}

void
events_start(void)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&flusher_cond, &attr);
	pthread_condattr_destroy(&attr);
	flusher_running = pthread_create(&flusher_thread, NULL, flusher_main, NULL) == 0;
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
	flusher_stopping = true;
	wake_listeners();
	pthread_cond_signal(&flusher_cond);
	pthread_mutex_unlock(&ev_lock);
	if (flusher_running)
		pthread_join(flusher_thread, NULL);
	for (int i = 0; i < 200 && events_listening(); i++)
	{
		struct timespec ts = {0, 10 * 1000 * 1000};

		nanosleep(&ts, NULL);
	}
}
