/*-------------------------------------------------------------------------
 *
 * callback.c
 *	  When a message's status callbacks are due, and what they say.
 *
 *	  Twilio POSTs to a message's StatusCallback on every status change
 *	  after the first (none for the status the create reply showed).  A
 *	  message's plan (progress.c) says when each status begins, so one
 *	  scheduler thread keeps a min-heap of the next due step of each
 *	  message that has a callback URL, on the progression clock, and
 *	  sleeps until the earliest; while the clock is frozen it sends what
 *	  fell due before the freeze and then sleeps until it thaws.  While an
 *	  inbox page is open (events.c), each new message's steps enter the heap
 *	  as well, so the page is told of each status as it begins.  Messages
 *	  without a callback URL created while no page is open never enter the
 *	  heap, so a benchmark that passes none pays nothing here.
 *
 *	  A due step becomes a CallbackJob: the parameters Twilio sends,
 *	  form-encoded, and their X-Twilio-Signature, signed with the account's
 *	  auth token (or callback_token when a test wants a wrong or rotated
 *	  one).  Jobs go to the sender (sender.c), which delivers them over HTTP
 *	  on its own thread, so neither this thread nor a server thread ever
 *	  waits on a receiver.
 *
 *	  Twilio's callbacks may arrive out of order.  With callback_order
 *	  shuffle (or reverse) a message's callbacks are held until its last
 *	  status and then handed over together in a shuffled (never the
 *	  original) or reversed order; the sender keeps a message's callbacks
 *	  in the order it was given them.  callback_drop_percent drops that
 *	  share of callbacks, as a lost request would; a dropped callback is
 *	  logged but never sent.
 *
 *	  The heap, and each message's progress through its callbacks, are
 *	  guarded by store_lock: the scheduler reads messages under it anyway,
 *	  and a reset clears the messages and the heap together.
 *
 *-------------------------------------------------------------------------
 */
#include "emulator.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef struct Due
{
	int64_t		due_v;			/* on the progression clock */
	int64_t		serial;			/* the message */
	int			step;			/* the plan step that becomes due */
	bool		page;			/* for the inbox page (events.c), not a
								 * callback */
} Due;

static Due *heap;
static size_t nheap;
static size_t capheap;
static pthread_cond_t sched_cond;
static pthread_t sched_thread;
static bool sched_stopping;
static bool sched_running;
static uint64_t shuffle_rng = 0x9E3779B97F4A7C15ULL;

static const char *const order_names[] = {
	[ORDER_INORDER] = "inorder",
	[ORDER_SHUFFLE] = "shuffle",
	[ORDER_REVERSE] = "reverse",
};

bool
callback_order_parse(const char *s, size_t n, int *order)
{
	int			i;

	for (i = 0; i < (int) lengthof(order_names); i++)
		if (field_eq(s, n, order_names[i]))
		{
			*order = i;
			return true;
		}
	return false;
}

const char *
callback_order_name(int order)
{
	if (order < 0 || order >= (int) lengthof(order_names))
		return "inorder";
	return order_names[order];
}

/*
 * Twilio's 21609 check: an http or https URL with a host, at most 4000
 * characters, no underscore in the host.  Whether the emulator will call
 * it is decided later, when a callback is due (sender.c): only loopback
 * receivers are ever called.
 */
bool
callback_url_valid(const char *url, size_t len)
{
	CURLU	   *h;
	char	   *copy,
			   *scheme = NULL,
			   *host = NULL;
	bool		ok = false;
	size_t		i;

	if (len == 0 || len > 4000)
		return false;
	for (i = 0; i < len; i++)
		if ((unsigned char) url[i] <= ' ' || url[i] == 0x7f)
			return false;
	copy = strndup(url, len);
	/* libcurl reads "http:///x" as host x; Twilio sees no host */
	if (copy && strstr(copy, ":///") != NULL)
	{
		free(copy);
		return false;
	}
	h = curl_url();
	if (copy == NULL || h == NULL)
		abort();
	if (curl_url_set(h, CURLUPART_URL, copy, 0) == CURLUE_OK &&
		curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
		curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK)
		ok = (strcasecmp(scheme, "http") == 0 ||
			  strcasecmp(scheme, "https") == 0) &&
			host[0] != '\0' && strchr(host, '_') == NULL;
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(h);
	free(copy);
	return ok;
}

/* ---------------------------------------------------------------------- */

static void
heap_push(Due d)
{
	size_t		i;

	if (nheap == capheap)
	{
		capheap = capheap ? capheap * 2 : 1024;
		heap = realloc(heap, sizeof(Due) * capheap);
		if (heap == NULL)
			abort();
	}
	i = nheap++;
	while (i > 0 && heap[(i - 1) / 2].due_v > d.due_v)
	{
		heap[i] = heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	heap[i] = d;
	/* only a new earliest entry changes how long the scheduler sleeps */
	if (i == 0 && sched_running)
		pthread_cond_signal(&sched_cond);
}

static Due
heap_pop(void)
{
	Due			top = heap[0];
	Due			last = heap[--nheap];
	size_t		i = 0;

	for (;;)
	{
		size_t		c = 2 * i + 1;

		if (c >= nheap)
			break;
		if (c + 1 < nheap && heap[c + 1].due_v < heap[c].due_v)
			c++;
		if (heap[c].due_v >= last.due_v)
			break;
		heap[i] = heap[c];
		i = c;
	}
	if (nheap > 0)
		heap[i] = last;
	return top;
}

static void
file_step(const Message *m, int step, bool page)
{
	Due			d;

	d.due_v = m->created_v + (int64_t) m->plan.at_ms[step] * 1000;
	d.serial = m->serial;
	d.step = step;
	d.page = page;
	heap_push(d);
}

/*
 * File a new message's first callback; store_lock held.  In order, that
 * is its second status; shuffled or reversed, its last, when all of its
 * callbacks go out together.
 */
void
callback_schedule(Message *m)
{
	const Plan *p = &m->plan;

	if (p->nsteps < 2)
		return;
	/* an open inbox page is told each change as it happens */
	if (events_listening())
		file_step(m, 1, true);
	if (m->callback_url == NULL)
		return;
	m->cb_order = (uint8_t) atomic_load(&cfg.callback_order);
	m->cb_next = 1;
	file_step(m, m->cb_order == ORDER_INORDER ? 1 : p->nsteps - 1, false);
}

void
callback_wake(void)
{
	if (sched_running)
		pthread_cond_signal(&sched_cond);
}

void
callback_reset_locked(void)
{
	nheap = 0;
}

int64_t
callback_scheduled(void)
{
	int64_t		n;

	pthread_mutex_lock(&store_lock);
	n = (int64_t) nheap;
	pthread_mutex_unlock(&store_lock);
	return n;
}

/* ---------------------------------------------------------------------- */

static void
param(FormBuilder *fb, const char *key, const char *val)
{
	form_add(fb, key, strlen(key), val, strlen(val));
}

/* Twilio's RawDlrDoneDate: the carrier's receipt time, YYMMDDhhmm (UTC). */
static void
dlr_date(char *out, size_t size, int64_t us)
{
	time_t		t = (time_t) (us / 1000000);
	struct tm	tm;

	gmtime_r(&t, &tm);
	snprintf(out, size, "%02d%02d%02d%02d%02d", tm.tm_year % 100,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min);
}

/*
 * The callback telling that m reached status at t_us.  The parameters
 * are sent in an order of their own, not sorted, so that a receiver which
 * forgets to sort before checking the signature fails at once.
 */
static CallbackJob *
build_job(const Message *m, int status, int64_t t_us, int error_code,
		  const char *token)
{
	CallbackJob *j = calloc(1, sizeof(CallbackJob));
	FormBuilder fb;
	char		code[16];
	char		dlr[64];
	Buf			body = {0};
	const char *name = status_name(status);

	if (j == NULL)
		abort();
	form_begin(&fb);
	param(&fb, "MessageSid", m->sid);
	param(&fb, "MessageStatus", name);
	param(&fb, "SmsSid", m->sid);
	param(&fb, "SmsStatus", name);
	param(&fb, "To", m->to);
	if (m->from)
		param(&fb, "From", m->from);
	if (m->service_sid)
		param(&fb, "MessagingServiceSid", m->service_sid);
	param(&fb, "AccountSid", cfg.account_sid);
	param(&fb, "ApiVersion", "2010-04-01");
	if (error_code)
	{
		snprintf(code, sizeof(code), "%d", error_code);
		param(&fb, "ErrorCode", code);
	}
	if (status == ST_DELIVERED || status == ST_UNDELIVERED)
	{
		dlr_date(dlr, sizeof(dlr), t_us);
		param(&fb, "RawDlrDoneDate", dlr);
	}
	form_finish(&fb, &j->params);

	buf_grow(&body, 512);
	form_encode(&body, &j->params);
	twilio_signature(token, strlen(token), m->callback_url, j->params.f,
					 j->params.n, j->signature);

	j->seq = callback_next_seq();
	j->t_us = t_us;
	j->serial = m->serial;
	memcpy(j->sid, m->sid, sizeof(j->sid));
	j->status = (uint8_t) status;
	j->url = strdup(m->callback_url);
	if (j->url == NULL)
		abort();
	j->body = buf_steal(&body, &j->body_len);
	return j;
}

static unsigned
draw_below(unsigned n)
{
	shuffle_rng ^= shuffle_rng >> 12;
	shuffle_rng ^= shuffle_rng << 25;
	shuffle_rng ^= shuffle_rng >> 27;
	return (unsigned) (((shuffle_rng * 0x2545F4914F6CDD1DULL) >> 33) % n);
}

/*
 * Hand over the callbacks of steps cb_next..upto, and a canceled one when
 * canceled; store_lock held.  Out of order, all of them at once in a
 * shuffled or reversed order.
 */
static void
emit(Message *m, int upto, bool canceled)
{
	CallbackJob *jobs[MAX_STEPS + 1];
	int			n = 0,
				k;
	char	   *token;

	pthread_mutex_lock(&cfg.lock);
	token = strdup(cfg.callback_token ? cfg.callback_token :
				   cfg.auth_token ? cfg.auth_token : "");
	pthread_mutex_unlock(&cfg.lock);
	if (token == NULL)
		abort();

	for (k = m->cb_next; k <= upto && k < m->plan.nsteps; k++)
		jobs[n++] = build_job(m, m->plan.status[k], step_real_us(m, k),
							  k == m->plan.nsteps - 1 ? m->plan.error_code : 0,
							  token);
	if (k > m->cb_next)
		m->cb_next = (uint8_t) k;
	if (canceled)
		jobs[n++] = build_job(m, ST_CANCELED, m->canceled_us, 0, token);
	free(token);

	if (n > 1 && m->cb_order == ORDER_REVERSE)
	{
		for (k = 0; k < n / 2; k++)
		{
			CallbackJob *t = jobs[k];

			jobs[k] = jobs[n - 1 - k];
			jobs[n - 1 - k] = t;
		}
	}
	else if (n > 1 && m->cb_order == ORDER_SHUFFLE)
	{
		bool		moved = false;

		/* Fisher-Yates; an order that came out unchanged is not shuffled */
		for (k = n - 1; k > 0; k--)
		{
			int			r = (int) draw_below((unsigned) k + 1);
			CallbackJob *t = jobs[k];

			jobs[k] = jobs[r];
			jobs[r] = t;
		}
		for (k = 1; k < n && !moved; k++)
			moved = jobs[k - 1]->seq > jobs[k]->seq;
		if (!moved)
		{
			CallbackJob *t = jobs[0];

			jobs[0] = jobs[1];
			jobs[1] = t;
		}
	}

	for (k = 0; k < n; k++)
	{
		int			drop = atomic_load(&cfg.callback_drop_percent);

		if (drop > 0 && (int) percent_draw() < drop)
			jobs[k]->result = CB_DROPPED;
		sender_enqueue(jobs[k]);
	}
}

/*
 * The message was just canceled (store_lock held): Twilio tells that too.
 * Any status it reached whose callback is not out yet goes first.
 */
void
callback_canceled(Message *m)
{
	int64_t		age;
	int			k = 0;

	if (m->callback_url == NULL)
		return;
	age = clock_virtual(m->canceled_us) - m->created_v;
	while (k + 1 < m->plan.nsteps && (int64_t) m->plan.at_ms[k + 1] * 1000 <= age)
		k++;
	emit(m, k, true);
}

/* ---------------------------------------------------------------------- */

static void *
sched_main(void *arg)
{
	(void) arg;
	pthread_mutex_lock(&store_lock);
	while (!sched_stopping)
	{
		int64_t		vnow;
		Due			d;
		Message    *m;

		if (nheap == 0)
		{
			pthread_cond_wait(&sched_cond, &store_lock);
			continue;
		}
		vnow = clock_virtual(now_us());
		if (heap[0].due_v > vnow && clock_frozen())
		{
			/* what fell due before the freeze went out; the rest waits */
			pthread_cond_wait(&sched_cond, &store_lock);
			continue;
		}
		if (heap[0].due_v > vnow)
		{
			/* the clock runs at wall speed until someone freezes it */
			int64_t		wake = mono_us() + (heap[0].due_v - vnow);
			struct timespec ts;

			ts.tv_sec = wake / 1000000;
			ts.tv_nsec = (wake % 1000000) * 1000;
			pthread_cond_timedwait(&sched_cond, &store_lock, &ts);
			continue;
		}
		d = heap_pop();
		m = store_by_serial(d.serial);
		/* deleted or canceled messages move on no further */
		if (m == NULL || m->deleted || m->canceled_us)
			continue;
		if (d.page)
		{
			events_publish_message(m->serial);
			if (d.step + 1 < m->plan.nsteps)
				file_step(m, d.step + 1, true);
			continue;
		}
		emit(m, d.step, false);
		if (m->cb_order == ORDER_INORDER && d.step + 1 < m->plan.nsteps)
			file_step(m, d.step + 1, false);
	}
	pthread_mutex_unlock(&store_lock);
	return NULL;
}

void
scheduler_start(void)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&sched_cond, &attr);
	pthread_condattr_destroy(&attr);
	sched_running = true;
	if (pthread_create(&sched_thread, NULL, sched_main, NULL) != 0)
	{
		fprintf(stderr, "twilio-emulator: could not start callback scheduler\n");
		exit(1);
	}
}

void
scheduler_stop(void)
{
	pthread_mutex_lock(&store_lock);
	sched_stopping = true;
	pthread_cond_signal(&sched_cond);
	pthread_mutex_unlock(&store_lock);
	pthread_join(sched_thread, NULL);
	pthread_mutex_lock(&store_lock);
	sched_running = false;
	free(heap);
	heap = NULL;
	nheap = capheap = 0;
	pthread_mutex_unlock(&store_lock);
}
