/*-------------------------------------------------------------------------
 *
 * worker_requests.c
 *	  The worker's requests: starting claimed jobs within the free request
 *	  slots and the rate, collecting what curl finished, and the pause that
 *	  a failure every message would meet puts the queue in.
 *
 *	  A finished job is decided by the provider (its outcome) and waits in
 *	  the done queue for the next turn of the database to write it back.
 *	  What a finished job tells about the queue as a whole (a message was
 *	  accepted; the account or the network fails every message) is applied
 *	  here, by note_news(), and nowhere else.
 *
 *-------------------------------------------------------------------------
 */
#include "worker.h"

#include "http.h"
#include "poll.h"
#include "standby.h"

#include "utils/memutils.h"
#include "utils/timestamp.h"

/* sockets served between two looks for finished requests, and rounds */
#define SOCKETS_PER_ROUND 16
#define MAX_SOCKET_ROUNDS 8

/*
 * While paused, try one message this often to see if the cause is gone;
 * after a network failure, first after sms.retry_base and then at doubling
 * intervals up to this.
 */
#define PAUSE_PROBE_MS 30000

/* claim what the requests finish in this long, beyond the free slots */
#define CLAIM_AHEAD_MS 40

/* what a finished job tells about the queue as a whole */
typedef enum JobNews
{
	NEWS_NONE,
	NEWS_ACCEPTED,				/* a message was accepted: a pause is over */
	NEWS_REFUSED_ALL,			/* the provider refuses every message */
	NEWS_UNREACHABLE			/* no request can reach the provider */
} JobNews;

void
sms_queue_push(JobQueue *q, SmsJob *job)
{
	job->next = NULL;
	if (q->tail)
		q->tail->next = job;
	else
		q->head = job;
	q->tail = job;
	q->n++;
}

SmsJob *
sms_queue_pop(JobQueue *q)
{
	SmsJob	   *job = q->head;

	if (job)
	{
		q->head = job->next;
		if (q->head == NULL)
			q->tail = NULL;
		q->n--;
		job->next = NULL;
	}
	return job;
}

/*
 * Merge a list of claimed jobs (most urgent first) into the ready queue:
 * by priority, first come first served within one priority, so a message
 * of higher priority does not wait behind rows claimed before it.
 */
void
sms_queue_merge_by_priority(JobQueue *q, SmsJob *jobs)
{
	SmsJob	   *merged = NULL;
	SmsJob	  **tail = &merged;
	SmsJob	   *a = q->head;
	SmsJob	   *b = jobs;
	int			n = q->n;

	for (SmsJob *j = jobs; j; j = j->next)
		n++;
	while (a && b)
	{
		if (b->priority > a->priority)
		{
			*tail = b;
			b = b->next;
		}
		else
		{
			*tail = a;
			a = a->next;
		}
		tail = &(*tail)->next;
	}
	*tail = a ? a : b;
	q->head = merged;
	q->tail = NULL;
	for (SmsJob *j = merged; j; j = j->next)
		q->tail = j;
	q->n = n;
}

void
sms_push_done(Worker *w, SmsJob *job)
{
	if (w->done.n == 0)
		w->done_since = GetCurrentTimestamp();
	sms_queue_push(&w->done, job);
}

/*
 * A finished lookup, and the rows of its batch with it.  A row the batch
 * could not list back to is looked up alone from now on, as is every row
 * whose attempt began no later than it.
 */
void
sms_push_lookup_done(Worker *w, SmsJob *job)
{
	for (int i = 0; i <= job->nbatch; i++)
	{
		SmsJob	   *row = sms_lookup_row(job, i);

		if (row->lookup_alone && row->last_attempt_at >= w->lookup_alone_before)
			w->lookup_alone_before = row->last_attempt_at + 1;
	}
	for (int i = 0; i < job->nbatch; i++)
		sms_push_done(w, job->batch[i]);
	job->nbatch = 0;
	sms_push_done(w, job);
}

/*
 * Refill a bucket for the time since it was last looked at and return the
 * whole tokens in it; a rate of 0 or less means no limit.
 */
int
sms_bucket_available(TokenBucket *b, int rate, TimestampTz now)
{
	if (rate <= 0)
		return INT_MAX;
	if (b->at == 0)
		b->tokens = 1;
	else if (now > b->at)
		b->tokens += (now - b->at) / 1e6 * rate;
	b->tokens = Min(b->tokens, (double) rate);
	b->at = now;
	return (int) b->tokens;
}

void
sms_bucket_spend(TokenBucket *b, int rate, int n)
{
	if (rate > 0)
		b->tokens -= n;
}

/* When the bucket next holds a whole token. */
TimestampTz
sms_bucket_next_token_at(const TokenBucket *b, int rate, TimestampTz now)
{
	double		missing_tokens = 1.0 - b->tokens;

	if (rate <= 0 || missing_tokens <= 0)
		return now;
	return now + (TimestampTz) (missing_tokens * 1e6 / rate) + 1;
}

int
sms_free_slots(const Worker *w)
{
	return Max(w->concurrency - sms_http_in_flight(), 0);
}

/*
 * Rows to keep claimed, in flight or waiting for a free request slot: the
 * slots, and what the requests finish in CLAIM_AHEAD_MS at the recent rate,
 * so that each turn of the database (at least every WRITE_BACK_DELAY_MS
 * under load) claims a batch, not a few rows.  No more: every claimed row a
 * worker holds when its server dies becomes 'unknown' on the new primary
 * and waits to be looked up, sent or not.
 */
int
sms_claim_target(Worker *w)
{
	TimestampTz now = GetCurrentTimestamp();
	int			target;

	/* a worker with no share could never send what it claimed */
	if (w->concurrency == 0)
		return 0;

	if (w->rate_since == 0 || now - w->rate_since >= 100 * 1000)
	{
		if (w->rate_since != 0)
			w->send_rate = (w->send_rate +
							w->sends_finished * 1e6 / (now - w->rate_since)) / 2;
		w->sends_finished = 0;
		w->rate_since = now;
	}
	target = w->concurrency + (int) (w->send_rate * CLAIM_AHEAD_MS / 1000);
	target = Min(Max(target, 2 * w->concurrency), 8 * w->concurrency);
	/* under a rate limit, claim no more than about a second's worth */
	if (w->rate > 0)
		target = Min(target, w->rate);
	return Max(target, 1);
}

/* Hand a job's request to curl. */
void
sms_start_job(Worker *w, SmsJob *job)
{
	MemoryContext old = MemoryContextSwitchTo(job->cxt);

	sms_http_easy_for(job);
	if (job->kind == JOB_SEND)
		w->provider->prepare_send(job);
	else if (job->kind == JOB_LOOKUP)
		w->provider->prepare_lookup(job);
	else
		w->provider->prepare_poll(job);
	sms_http_start(job);
	MemoryContextSwitchTo(old);

	if (job->kind == JOB_LOOKUP)
		w->lookups_in_flight++;
	else if (job->kind == JOB_POLL)
		w->polls_in_flight++;
}

/* curl's last question before a request's first byte leaves */
bool
sms_send_guard(const SmsJob *job)
{
	return job->kind != JOB_SEND || sms_may_send(job->claim_lsn);
}

/*
 * The commit that claimed rows returned without the synchronous standby's
 * word (its wait was canceled or ended by the postmaster's death): until the
 * standby has the claim, nothing is sent, since a standby promoted without
 * it would send these rows again.
 */
void
sms_hold_claims(Worker *w, XLogRecPtr lsn)
{
	if (XLogRecPtrIsInvalid(w->unreplicated_claim))
	{
		ereport(LOG,
				(errmsg("sms: claimed messages are held until the synchronous standby has the claim"),
				 errdetail("The claim committed on this server, but no synchronous standby has confirmed it: its wait was cut short, or synchronous replication was turned on after it committed.")));
		pg_atomic_write_u64(&sms_shared->workers[sms_worker_slot].claims_held_since,
							(uint64) GetCurrentTimestamp());
	}
	if (lsn > w->unreplicated_claim)
		w->unreplicated_claim = lsn;
}

/*
 * Has the synchronous standby got every claim of ours?  Until it has, no
 * claimed row goes out (see standby.c).
 */
bool
sms_release_held_claims(Worker *w)
{
	if (XLogRecPtrIsInvalid(w->unreplicated_claim))
		return true;
	if (!sms_claims_replicated(w->unreplicated_claim))
		return false;
	ereport(LOG,
			(errmsg("sms: held messages go back to pending: a synchronous standby has their claim, or synchronous replication is off")));
	w->unreplicated_claim = InvalidXLogRecPtr;
	pg_atomic_write_u64(&sms_shared->workers[sms_worker_slot].claims_held_since, 0);

	/*
	 * They are claimed afresh, so that a claim's time stays close to its
	 * request's: a row left 'sending' is looked up by that time.
	 */
	sms_abandon_ready(w);
	return true;
}

/*
 * Start claimed messages while there are free slots and the rate allows;
 * returns how many were started.
 */
int
sms_start_ready(Worker *w, TimestampTz now)
{
	int			n;
	int			started = sms_start_polls(w, now);

	if (w->ready.n == 0 || !sms_release_held_claims(w))
		return started;
	n = Min(sms_free_slots(w), sms_bucket_available(&w->send_bucket, w->rate, now));
	/* paused, only the one probing message goes, and alone */
	if (w->mode == WORKER_PAUSED)
		n = (sms_http_in_flight() == 0) ? Min(n, 1) : 0;
	while (n-- > 0 && w->ready.n > 0)
	{
		sms_start_job(w, sms_queue_pop(&w->ready));
		sms_bucket_spend(&w->send_bucket, w->rate, 1);
		started++;
	}
	return started;
}

/*
 * Claimed rows not sent yet go back to 'pending' with their attempt given
 * back (at a pause, when the standby lacks their claim, and at shutdown).
 */
void
sms_abandon_ready(Worker *w)
{
	SmsJob	   *job;

	while ((job = sms_queue_pop(&w->ready)) != NULL)
	{
		job->outcome = OUTCOME_ABANDONED;
		sms_push_done(w, job);
	}
}

/*
 * Decide a finished job's outcome; returns what it tells about the queue
 * as a whole (NEWS_NONE, with *another_page, when a lookup goes on).
 */
static JobNews
finish_job(Worker *w, SmsJob *job, bool *another_page)
{
	MemoryContext old = MemoryContextSwitchTo(job->cxt);

	*another_page = false;
	if (job->kind == JOB_SEND)
	{
		if (job->http->held_back)
			job->outcome = OUTCOME_ABANDONED;	/* not a byte left */
		else
		{
			w->sends_finished++;	/* for sms_claim_target()'s rate */
			w->provider->finish_send(job);
		}
	}
	else if (job->kind == JOB_LOOKUP)
	{
		w->lookups_in_flight--;
		*another_page = w->provider->finish_lookup(job);
	}
	else
	{
		w->polls_in_flight--;
		*another_page = w->provider->finish_poll(job);
	}
	MemoryContextSwitchTo(old);

	if (*another_page)
		return NEWS_NONE;
	if (job->kind == JOB_SEND && job->outcome == OUTCOME_SENT)
		return NEWS_ACCEPTED;
	if (job->outcome == OUTCOME_PAUSE ||
		(job->kind == JOB_LOOKUP && job->pause_reason))
		return job->pause_network ? NEWS_UNREACHABLE : NEWS_REFUSED_ALL;
	return NEWS_NONE;
}

/* Apply what a finished job told about the queue as a whole. */
static void
note_news(Worker *w, JobNews news, const SmsJob *job)
{
	switch (news)
	{
		case NEWS_NONE:
			break;
		case NEWS_ACCEPTED:
			sms_leave_pause(w, "a message was accepted");
			break;
		case NEWS_REFUSED_ALL:
		case NEWS_UNREACHABLE:
			sms_enter_pause(w, job->pause_reason, news == NEWS_UNREACHABLE);
			break;
	}
}

/* Collect what curl finished: each job to the done queue, or its next page. */
static void
collect_finished(Worker *w)
{
	SmsJob	   *job;

	while ((job = sms_http_next_done()) != NULL)
	{
		bool		another_page;
		JobNews		news = finish_job(w, job, &another_page);

		/* (a poll's next request waits for sms.status_poll_rate's token) */
		if (job->kind == JOB_POLL)
		{
			sms_poll_finished(w, job, another_page);
			continue;
		}
		if (another_page)
		{
			sms_start_job(w, job);
			continue;
		}
		if (job->kind == JOB_LOOKUP)
			sms_push_lookup_done(w, job);
		else
			sms_push_done(w, job);
		note_news(w, news, job);
	}
}

/*
 * Let curl work and collect what it finished, a few sockets at a time: the
 * replies of a burst come together, and each freed slot gets its next
 * request as soon as its reply is in rather than after the whole burst.
 * It goes on while sockets are ready or new requests wait to leave, for a
 * bounded number of rounds so that the loop's other work is not starved.
 */
void
sms_drive_requests(Worker *w)
{
	bool		more = true;

	for (int round = 0; more && round < MAX_SOCKET_ROUNDS; round++)
	{
		more = sms_http_perform(SOCKETS_PER_ROUND);
		collect_finished(w);
		/* requests just started leave on the next round's curl timer */
		if (sms_start_ready(w, GetCurrentTimestamp()) > 0)
			more = true;
	}
}

/*
 * Pause for a reason every message would meet.  A failure to reach the
 * provider (network) may pass in a moment, so the first probe comes soon;
 * a refusal by the provider (the account, the credentials) will not, and
 * probing it often would only add refused requests.  A new reason while
 * paused is logged too, but keeps the probes' schedule.
 */
void
sms_enter_pause(Worker *w, const char *reason, bool network)
{
	bool		was_paused = w->mode == WORKER_PAUSED;

	if (w->mode != WORKER_RUNNING && w->mode != WORKER_PAUSED)
		return;
	if (was_paused && strcmp(reason, w->pause_reason) == 0)
		return;
	if (w->pause_reason)
		pfree(w->pause_reason);
	w->pause_reason = MemoryContextStrdup(TopMemoryContext, reason);
	if (!was_paused)
	{
		w->probe_interval_ms = network ?
			Min(sms_retry_base_ms, PAUSE_PROBE_MS) : PAUSE_PROBE_MS;
		w->probe_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												  w->probe_interval_ms);
	}
	sms_abandon_ready(w);
	ereport(LOG,
			(errmsg("sms: sending paused: %s", reason),
			 errdetail("A request failed for a reason that applies to every message, so no message is failed for it and no attempt is counted."),
			 network ?
			 errhint("Fix the cause (\"sms.api_url\", \"sms.ca_file\" or the network), then reload the configuration; meanwhile the worker tries one message after \"sms.retry_base\", then at doubling intervals up to every %d seconds.",
					 PAUSE_PROBE_MS / 1000) :
			 errhint("Fix the account or the settings \"sms.account_sid\", \"sms.auth_token\", \"sms.api_key_sid\", \"sms.api_key_secret\" and \"sms.api_url\", then reload the configuration; meanwhile the worker tries one message every %d seconds.",
					 PAUSE_PROBE_MS / 1000)));
	sms_worker_set_mode(w, WORKER_PAUSED);
}

/* Each probe of a pause comes later than the last, up to PAUSE_PROBE_MS. */
void
sms_schedule_probe(Worker *w, TimestampTz now)
{
	w->probe_interval_ms = Min(w->probe_interval_ms * 2, PAUSE_PROBE_MS);
	w->probe_at = TimestampTzPlusMilliseconds(now, w->probe_interval_ms);
}

void
sms_leave_pause(Worker *w, const char *why)
{
	if (w->mode != WORKER_PAUSED)
		return;
	w->more_pending = true;
	ereport(LOG, (errmsg("sms: sending resumed: %s", why)));
	sms_worker_set_mode(w, WORKER_RUNNING);
}

/*
 * At shutdown, give up the requests still in flight: a send that may have
 * reached the provider is 'unknown', one that cannot have is 'pending'; a
 * lookup's rows not settled yet are looked up again.
 */
void
sms_abort_in_flight(Worker *w)
{
	SmsJob	   *job;

	while ((job = sms_http_any_in_flight()) != NULL)
	{
		bool		request_sent = sms_http_abort(job);

		if (job->kind == JOB_SEND)
		{
			if (request_sent)
			{
				job->outcome = OUTCOME_UNKNOWN;
				job->error_message = "the worker stopped while the request was in flight";
			}
			else
				job->outcome = OUTCOME_ABANDONED;
			sms_push_done(w, job);
			continue;
		}
		if (job->kind == JOB_POLL)
		{
			/* what it learnt is written back; its other rows wait */
			w->polls_in_flight--;
			job->poll->failed = true;
			sms_push_done(w, job);
			continue;
		}
		w->lookups_in_flight--;
		for (int i = 0; i <= job->nbatch; i++)
		{
			SmsJob	   *row = sms_lookup_row(job, i);

			if (row->outcome != OUTCOME_NONE)
				continue;
			row->outcome = OUTCOME_LOOKUP_AGAIN;
			row->error_message = "the worker stopped while looking this message up";
		}
		sms_push_lookup_done(w, job);
	}
}
