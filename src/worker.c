/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  A background worker: one event loop that claims due messages, keeps
 *	  its share of sms.max_concurrency requests in flight, and writes
 *	  outcomes back.
 *
 *	  Each turn of the loop waits in WaitEventSetWait for the latch (set by
 *	  committing backends, SIGHUP and SIGTERM), postmaster death and curl's
 *	  sockets; collects finished requests; refills free request slots from a
 *	  small queue of claimed rows; and, when enough outcomes wait or the queue
 *	  runs low, runs one short transaction that writes back outcomes and
 *	  claims the next rows.  That transaction commits before any of the rows
 *	  it claims is sent, so a row is durably 'sending' before the provider
 *	  can have seen it.  Claiming ahead of the free slots keeps the network
 *	  busy while the database does its part in batches.
 *
 *	  With sms.workers above 1, each worker runs this loop with its share of
 *	  the requests in flight and of the rate; SKIP LOCKED keeps their claims
 *	  apart, and each row records which worker claimed it, so that a
 *	  restarted worker takes back only its own rows.  The first worker also
 *	  reconciles, deletes past sms.retention and reports the condition.
 *
 *-------------------------------------------------------------------------
 */
#include "sms.h"

#include "access/xact.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "http.h"
#include "outbox.h"
#include "provider.h"
#include "standby.h"

/* with nothing known to be due, look anyway this often (prepared xacts) */
#define IDLE_RECHECK_MS 60000
/* write back at once when this many outcomes wait ... */
#define WRITE_BACK_BATCH 512
/* ... or when the oldest has waited this long */
#define WRITE_BACK_DELAY_MS 20

/* sockets served between two looks for finished requests, and rounds */
#define SOCKETS_PER_ROUND 16
#define MAX_SOCKET_ROUNDS 8
/*
 * While paused, try one message this often to see if the cause is gone;
 * after a network failure, first after sms.retry_base and then at doubling
 * intervals up to this.
 */
#define PAUSE_PROBE_MS 30000
/* lookups in flight at most: reconciliation must not flood the provider */
#define MAX_LOOKUPS_IN_FLIGHT 4
/* rows of one sender that one lookup answers for (a page of Twilio's list) */
#define LOOKUP_BATCH_ROWS 1000
/* how often retention runs */
#define RETENTION_INTERVAL_MS 60000
/* how often a worker looks for rows in 'sending' that it holds no job for */
#define SWEEP_INTERVAL_MS 10000
/* how often a worker holding claims looks whether the standby has them */
#define STANDBY_POLL_MS 100
/* claim what the requests finish in this long, beyond the free slots */
#define CLAIM_AHEAD_MS 40

static const SmsProvider *provider = NULL;

/* a FIFO of jobs */
typedef struct JobQueue
{
	SmsJob	   *head;
	SmsJob	   *tail;
	int			n;
} JobQueue;

static JobQueue ready;			/* claimed for sending, not started yet */
static JobQueue done;			/* finished, waiting for the write-back */
static TimestampTz done_since = 0;	/* when the oldest in done finished */

/* jobs whose requests are in flight */
static int	sends_in_flight = 0;
static int	lookups_in_flight = 0;

/* this worker's shares of the settings (sms_worker_slot says which it is) */
static int	my_concurrency = 1;
static int	my_rate = 0;		/* 0: no limit */

/* sends finished per second, smoothed over 100 ms steps (claim_target) */
static double send_rate = 0;
static int	sends_finished = 0;
static TimestampTz rate_since = 0;

/* what the loop knows about the outbox */
static bool extension_present = false;
static bool recovery_pending = false;	/* our rows left 'sending' to take back */
static TimestampTz next_sweep = 0;	/* when to look for such rows again */
static bool made_unknown = false;	/* this turn leaves rows 'unknown' */
static bool handed_back = false;	/* ... or hands claimed rows back */
static bool recheck_due = false;	/* another worker did: look again */
static bool more_pending = true;	/* the last claim got all it asked for */
static TimestampTz pending_due = 0; /* earliest known due time, 0 if none */
static TimestampTz unknown_due = 0;

/* pause on account-wide errors */
static bool paused = false;
static char *pause_reason = NULL;
static TimestampTz probe_at = 0;
static int	probe_interval_ms = PAUSE_PROBE_MS;
static const char *missing = NULL;	/* settings the provider lacks */

/* a token bucket holding at most one second's worth of its rate */
typedef struct TokenBucket
{
	double		tokens;
	TimestampTz at;				/* when last refilled; 0 for never */
} TokenBucket;

/* sms.rate_limit's bucket for sends, sms.reconcile_rate's for lookups (a
 * storm of unknown rows must not flood the provider) */
static TokenBucket send_bucket;
static TokenBucket lookup_bucket;

static TimestampTz next_retention = 0;

/* after a failed turn of the database, wait a little before the next */
static TimestampTz turn_error_backoff_until = 0;

/* look at the outbox by this time even if nothing woke us (prepared xacts) */
static TimestampTz idle_check_at = 0;

/*
 * The latest claim whose commit did not reach the synchronous standby (its
 * wait was cut short): nothing is sent until the standby has it.
 */
static XLogRecPtr unreplicated_claim = InvalidXLogRecPtr;

/* rows claimed by the turn under way and not yet handed on */
static SmsJob *turn_sends = NULL;
static SmsJob *turn_lookups = NULL;

/* unknown rows whose attempt began before this are looked up one by one */
static TimestampTz lookup_alone_before = DT_NOBEGIN;

static void
queue_push(JobQueue *q, SmsJob *job)
{
	job->next = NULL;
	if (q->tail)
		q->tail->next = job;
	else
		q->head = job;
	q->tail = job;
	q->n++;
}

/*
 * Merge a list of claimed jobs (most urgent first) into the ready queue:
 * by priority, first come first served within one priority, so a message
 * of higher priority does not wait behind rows claimed before it.
 */
static void
queue_merge_by_priority(JobQueue *q, SmsJob *jobs)
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

static SmsJob *
queue_pop(JobQueue *q)
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

static void
push_done(SmsJob *job)
{
	if (done.n == 0)
		done_since = GetCurrentTimestamp();
	queue_push(&done, job);
}

/* A finished lookup, and the rows of its batch with it. */
static void
push_lookup_done(SmsJob *job)
{
	for (int i = 0; i <= job->nbatch; i++)
	{
		SmsJob	   *row = sms_lookup_row(job, i);

		if (row->lookup_alone && row->last_attempt_at >= lookup_alone_before)
			lookup_alone_before = row->last_attempt_at + 1;
	}
	for (int i = 0; i < job->nbatch; i++)
		push_done(job->batch[i]);
	job->nbatch = 0;
	push_done(job);
}

/* Earlier of two times, where 0 means never. */
static TimestampTz
earliest(TimestampTz a, TimestampTz b)
{
	if (a == 0)
		return b;
	if (b == 0)
		return a;
	return Min(a, b);
}

/* Milliseconds until t, at least 0. */
static long
ms_until(TimestampTz t, TimestampTz now)
{
	if (t <= now)
		return 0;
	return (long) ((t - now + 999) / 1000);
}

/* This worker's share of a total divided among the workers. */
static int
share_of(int total)
{
	return total / sms_workers + (sms_worker_slot < total % sms_workers ? 1 : 0);
}

/*
 * The requests in flight and the rate are divided among the workers.  A
 * worker whose share is nothing (more workers than sms.max_concurrency or
 * sms.rate_limit) claims nothing.
 */
static void
compute_shares(void)
{
	my_concurrency = share_of(sms_max_concurrency);
	my_rate = 0;
	if (sms_rate_limit > 0)
	{
		my_rate = share_of(sms_rate_limit);
		if (my_rate == 0)
			my_concurrency = 0;
	}
}

/* The condition sms_stats shows is the first worker's. */
static void
set_condition(const char *condition)
{
	if (sms_worker_slot == 0)
		sms_set_condition("%s", condition);
}

static void
worker_shmem_exit(int code, Datum arg)
{
	if (sms_shared == NULL)
		return;
	SpinLockAcquire(&sms_shared->mutex);
	sms_shared->workers[sms_worker_slot].latch = NULL;
	sms_shared->workers[sms_worker_slot].pid = 0;
	SpinLockRelease(&sms_shared->mutex);
	pg_atomic_write_u64(&sms_shared->workers[sms_worker_slot].standby_wait_since, 0);
	pg_atomic_write_u64(&sms_shared->workers[sms_worker_slot].claims_held_since, 0);
	pg_atomic_write_u64(&sms_shared->workers[sms_worker_slot].settings_applied_at, 0);
	set_condition("not running");
}

static void
update_condition(void)
{
	if (sms_worker_slot != 0)
		return;
	if (!extension_present)
		sms_set_condition("waiting for CREATE EXTENSION sms in database \"%s\"",
						  sms_database);
	else if (missing)
		sms_set_condition("paused: %s", missing);
	else if (paused)
		sms_set_condition("paused: %s", pause_reason);
	else
		sms_set_condition("running");
}

/*
 * Claimed rows not sent yet go back to 'pending' with their attempt given
 * back (at pause and at shutdown).
 */
static void
abandon_ready(void)
{
	SmsJob	   *job;

	while ((job = queue_pop(&ready)) != NULL)
	{
		job->outcome = OUTCOME_ABANDONED;
		push_done(job);
	}
}

/*
 * Pause for a reason every message would meet.  A failure to reach the
 * provider (transport) may pass in a moment, so the first probe comes soon;
 * a refusal by the provider (the account, the credentials) will not, and
 * probing it often would only add refused requests.  A new reason while
 * paused is logged too, but keeps the probes' schedule.
 */
static void
enter_pause(const char *reason, bool transport)
{
	if (paused && strcmp(reason, pause_reason) == 0)
		return;
	if (pause_reason)
		pfree(pause_reason);
	pause_reason = MemoryContextStrdup(TopMemoryContext, reason);
	if (!paused)
	{
		probe_interval_ms = transport ?
			Min(sms_retry_base_ms, PAUSE_PROBE_MS) : PAUSE_PROBE_MS;
		probe_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											   probe_interval_ms);
	}
	paused = true;
	abandon_ready();
	ereport(LOG,
			(errmsg("sms: sending paused: %s", reason),
			 errdetail("A request failed for a reason that applies to every message, so no message is failed for it and no attempt is counted."),
			 transport ?
			 errhint("Fix the cause (\"sms.api_url\", \"sms.ca_file\" or the network), then reload the configuration; meanwhile the worker tries one message after \"sms.retry_base\", then at doubling intervals up to every %d seconds.",
					 PAUSE_PROBE_MS / 1000) :
			 errhint("Fix the account or the settings \"sms.account_sid\", \"sms.auth_token\", \"sms.api_key_sid\", \"sms.api_key_secret\" and \"sms.api_url\", then reload the configuration; meanwhile the worker tries one message every %d seconds.",
					 PAUSE_PROBE_MS / 1000)));
	update_condition();
}

/* Each probe of a pause comes later than the last, up to PAUSE_PROBE_MS. */
static void
schedule_probe(TimestampTz now)
{
	probe_interval_ms = Min(probe_interval_ms * 2, PAUSE_PROBE_MS);
	probe_at = TimestampTzPlusMilliseconds(now, probe_interval_ms);
}

static void
leave_pause(const char *why)
{
	if (!paused)
		return;
	paused = false;
	more_pending = true;
	ereport(LOG, (errmsg("sms: sending resumed: %s", why)));
	update_condition();
}

/* Full-jitter exponential backoff for the attempt just made. */
static TimestampTz
backoff_until(SmsJob *job)
{
	double		cap = sms_retry_base_ms;
	int			i;
	double		delay_ms;

	if (job->retry_after_s >= 0)
		delay_ms = job->retry_after_s * 1000.0;
	else
	{
		for (i = 1; i < job->attempts && cap < sms_retry_max_ms; i++)
			cap *= 2;
		cap = Min(cap, (double) sms_retry_max_ms);
		delay_ms = pg_prng_double(&pg_global_prng_state) * cap;
	}
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), (int64) delay_ms);
}

/* Hand a job's request to curl. */
static void
start_job(SmsJob *job)
{
	MemoryContext old = MemoryContextSwitchTo(job->cxt);

	sms_http_easy_for(job);
	if (job->kind == JOB_SEND)
		provider->prepare_send(job);
	else
		provider->prepare_lookup(job);
	sms_http_start(job);
	MemoryContextSwitchTo(old);

	if (job->kind == JOB_SEND)
		sends_in_flight++;
	else
		lookups_in_flight++;
}

/*
 * Refill a bucket for the time since it was last looked at and return the
 * whole tokens in it; a rate of 0 or less means no limit.
 */
static int
bucket_available(TokenBucket *b, int rate, TimestampTz now)
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

static void
bucket_spend(TokenBucket *b, int rate, int n)
{
	if (rate > 0)
		b->tokens -= n;
}

/* When the bucket next holds a whole token. */
static TimestampTz
bucket_next_token_at(const TokenBucket *b, int rate, TimestampTz now)
{
	double		missing_tokens = 1.0 - b->tokens;

	if (rate <= 0 || missing_tokens <= 0)
		return now;
	return now + (TimestampTz) (missing_tokens * 1e6 / rate) + 1;
}

/*
 * Has the synchronous standby got every claim of ours?  Until it has, no
 * claimed row goes out (see standby.c).
 */
static bool
claims_replicated(void)
{
	if (XLogRecPtrIsInvalid(unreplicated_claim))
		return true;
	if (!sms_claims_replicated(unreplicated_claim))
		return false;
	ereport(LOG,
			(errmsg("sms: held messages go back to pending: a synchronous standby has their claim, or synchronous replication is off")));
	unreplicated_claim = InvalidXLogRecPtr;
	pg_atomic_write_u64(&sms_shared->workers[sms_worker_slot].claims_held_since, 0);

	/*
	 * They are claimed afresh, so that a claim's time stays close to its
	 * request's: a row left 'sending' is looked up by that time.
	 */
	abandon_ready();
	return true;
}

/* curl's last question before a request's first byte leaves */
static bool
send_guard(const SmsJob *job)
{
	return job->kind != JOB_SEND || sms_may_send(job->claim_lsn);
}

static int
free_slots(void)
{
	return Max(my_concurrency - sends_in_flight - lookups_in_flight, 0);
}

/*
 * Start claimed messages while there are free slots and the rate allows;
 * returns how many were started.
 */
static int
start_ready(TimestampTz now)
{
	int			n;
	int			started = 0;

	if (ready.n == 0 || !claims_replicated())
		return 0;
	n = Min(free_slots(), bucket_available(&send_bucket, my_rate, now));
	/* paused, only the one probing message goes, and alone */
	if (paused)
		n = (sms_http_in_flight() == 0) ? Min(n, 1) : 0;
	while (n-- > 0 && ready.n > 0)
	{
		start_job(queue_pop(&ready));
		bucket_spend(&send_bucket, my_rate, 1);
		started++;
	}
	return started;
}

/* Collect what curl finished and decide each job's outcome. */
static void
collect_finished(void)
{
	SmsJob	   *job;

	while ((job = sms_http_next_done()) != NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(job->cxt);

		if (job->kind == JOB_SEND)
		{
			sends_in_flight--;
			if (job->http->held_back)
				job->outcome = OUTCOME_ABANDONED;	/* not a byte left */
			else
			{
				sends_finished++;	/* for claim_target()'s rate */
				provider->finish_send(job);
			}
		}
		else
		{
			lookups_in_flight--;
			if (provider->finish_lookup(job))
			{
				/* another page */
				MemoryContextSwitchTo(old);
				start_job(job);
				continue;
			}
		}
		MemoryContextSwitchTo(old);

		if (job->kind == JOB_LOOKUP)
			push_lookup_done(job);
		else
			push_done(job);
		if (job->outcome == OUTCOME_SENT && job->kind == JOB_SEND)
			leave_pause("a message was accepted");
		if (job->outcome == OUTCOME_PAUSE ||
			(job->kind == JOB_LOOKUP && job->pause_reason))
			enter_pause(job->pause_reason, job->pause_network);
	}
}

/*
 * Let curl work and collect what it finished, a few sockets at a time: the
 * replies of a burst come together, and each freed slot gets its next
 * request as soon as its reply is in rather than after the whole burst.
 * It goes on while sockets are ready or new requests wait to leave, for a
 * bounded number of rounds so that the loop's other work is not starved.
 */
static void
drive_requests(void)
{
	bool		more = true;

	for (int round = 0; more && round < MAX_SOCKET_ROUNDS; round++)
	{
		more = sms_http_perform(SOCKETS_PER_ROUND);
		collect_finished();
		/* requests just started leave on the next round's curl timer */
		if (start_ready(GetCurrentTimestamp()) > 0)
			more = true;
	}
}

/* The error of a message whose attempts are used up by this one. */
static const char *
gave_up(const SmsJob *job, const char *why)
{
	return psprintf("gave up after %d attempts: %s", job->attempts, why);
}

/*
 * The row's next state and schedule, from a finished job's outcome.  The job
 * is left as it is: a turn that fails (a row lock past lock_timeout) plans
 * the same write-back again in the next, and what it allocates here lives
 * in the turn's memory.
 */
static void
plan_write_back(SmsJob *job, SmsWriteBack *wb)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		exhausted = job->attempts >= sms_max_attempts;

	wb->id = job->id;
	wb->expected_state = job->kind == JOB_SEND ? "sending" : "unknown";
	wb->expected_attempts = job->attempts;
	wb->new_attempts = job->attempts;
	wb->next_attempt_at = 0;
	wb->error_message = job->error_message;
	wb->job = job;

	switch (job->outcome)
	{
		case OUTCOME_SENT:
			wb->new_state = "sent";
			break;
		case OUTCOME_FAILED:
			wb->new_state = "failed";
			break;
		case OUTCOME_RETRY:
			if (exhausted)
			{
				wb->new_state = "failed";
				wb->error_message = gave_up(job, job->error_message);
			}
			else
			{
				wb->new_state = "pending";
				wb->next_attempt_at = backoff_until(job);
			}
			break;
		case OUTCOME_UNKNOWN:
			wb->new_state = "unknown";
			wb->next_attempt_at = TimestampTzPlusMilliseconds(now, sms_reconcile_grace_ms);
			break;
		case OUTCOME_PAUSE:
		case OUTCOME_ABANDONED:
			/* not the message's fault: give the attempt back */
			wb->new_state = "pending";
			wb->new_attempts = job->attempts - 1;
			wb->next_attempt_at = now;
			handed_back = true;
			break;
		case OUTCOME_RESEND:
			if (exhausted)
			{
				wb->new_state = "failed";
				wb->error_message = gave_up(job, "the provider has no such message");
			}
			else
			{
				wb->new_state = "pending";
				wb->next_attempt_at = now;
			}
			break;
		case OUTCOME_LOOKUP_AGAIN:
		case OUTCOME_NONE:
			/* the lookup failed: ask again, but not in a tight loop */
			wb->new_state = "unknown";
			wb->next_attempt_at = Max(backoff_until(job),
									  TimestampTzPlusMilliseconds(now, Max(sms_reconcile_grace_ms, 5000)));
			break;
	}

	if (wb->next_attempt_at != 0)
	{
		if (strcmp(wb->new_state, "pending") == 0)
			pending_due = earliest(pending_due, wb->next_attempt_at);
		else
		{
			unknown_due = earliest(unknown_due, wb->next_attempt_at);
			made_unknown = true;
		}
	}
}

/* Add the ids of a queue's send jobs to ids[*n]. */
static void
add_send_ids(const JobQueue *q, int64 *ids, int *n)
{
	for (SmsJob *job = q->head; job; job = job->next)
		if (job->kind == JOB_SEND)
			ids[(*n)++] = job->id;
}

/*
 * Take back this worker's rows left in 'sending' that it holds no job for:
 * every such row at start-up, and later any that a restore with the
 * outbox's triggers disabled brought back in that state.  The rows it holds
 * (claimed, in flight, or finished and not yet written back) are its own.
 */
static int
recover_rows_not_held(void)
{
	int			nin = sms_http_in_flight();
	int64	   *ids = palloc(sizeof(int64) * (ready.n + done.n + nin + 1));
	int			n = 0;

	add_send_ids(&ready, ids, &n);
	add_send_ids(&done, ids, &n);
	for (int i = 0; i < nin; i++)
	{
		SmsJob	   *job = sms_http_in_flight_job(i);

		if (job->kind == JOB_SEND)
			ids[n++] = job->id;
	}
	n = sms_outbox_recover_inflight(sms_worker_slot, sms_workers, ids, n);
	pfree(ids);
	if (n > 0)
		ereport(LOG,
				(errmsg_plural("sms: %d message was in state sending with no request in flight",
							   "sms: %d messages were in state sending with no request in flight",
							   n, n),
				 errdetail("A worker stopped while sending them, or they were restored in that state; each is looked up at the provider before it is sent again.")));
	return n;
}

static void
write_back_done(void)
{
	SmsWriteBack *wb;
	SmsJob	   *job;
	int			i = 0;

	if (done.n == 0)
		return;
	wb = palloc(sizeof(SmsWriteBack) * done.n);
	for (job = done.head; job; job = job->next)
	{
		/*
		 * A row claimed before DROP EXTENSION is gone; its id may name
		 * another message in a recreated outbox.
		 */
		if (job->extension_oid == sms_outbox_extension_oid())
			plan_write_back(job, &wb[i++]);
	}
	sms_outbox_write_back(wb, i);
	pfree(wb);
}

static void
free_done(void)
{
	SmsJob	   *job;

	while ((job = queue_pop(&done)) != NULL)
		sms_job_free(job);
	done_since = 0;
}

/*
 * Rows to keep claimed, in flight or waiting for a free request slot: the
 * slots, and what the requests finish in CLAIM_AHEAD_MS at the recent rate,
 * so that each turn of the database (at least every WRITE_BACK_DELAY_MS
 * under load) claims a batch, not a few rows.  No more: every claimed row a
 * worker holds when its server dies becomes 'unknown' on the new primary
 * and waits to be looked up, sent or not.
 */
static int
claim_target(void)
{
	TimestampTz now = GetCurrentTimestamp();
	int			target;

	/* a worker with no share could never send what it claimed */
	if (my_concurrency == 0)
		return 0;

	if (rate_since == 0 || now - rate_since >= 100 * 1000)
	{
		if (rate_since != 0)
			send_rate = (send_rate + sends_finished * 1e6 / (now - rate_since)) / 2;
		sends_finished = 0;
		rate_since = now;
	}
	target = my_concurrency + (int) (send_rate * CLAIM_AHEAD_MS / 1000);
	target = Min(Max(target, 2 * my_concurrency), 8 * my_concurrency);
	/* under a rate limit, claim no more than about a second's worth */
	if (my_rate > 0)
		target = Min(target, my_rate);
	return Max(target, 1);
}

/* Can new messages be claimed for sending at all? */
static bool
sending_allowed(void)
{
	return extension_present && !missing && !paused;
}

/*
 * What a turn of the database would do now: write back, claim sends, claim
 * lookups.  Returns true if there is anything to do; otherwise *wake_at is
 * when there will be (0 for nothing known).
 */
static bool
turn_wanted(TimestampTz now, bool woken, bool *write_back,
			int *send_limit, int *lookup_limit, TimestampTz *wake_at)
{
	bool		low = ready.n < my_concurrency;

	*write_back = false;
	*send_limit = 0;
	*lookup_limit = 0;
	*wake_at = 0;

	if (now < turn_error_backoff_until)
	{
		*wake_at = turn_error_backoff_until;
		return false;
	}

	if (done.n > 0)
	{
		TimestampTz flush_at = TimestampTzPlusMilliseconds(done_since,
														   WRITE_BACK_DELAY_MS);

		if (done.n >= WRITE_BACK_BATCH || sms_http_in_flight() == 0 ||
			now >= flush_at)
			*write_back = true;
		else
			*wake_at = flush_at;
	}

	if (!extension_present)
	{
		*wake_at = earliest(*wake_at, idle_check_at);
		return *write_back || woken || now >= idle_check_at;
	}
	if (recheck_due || recovery_pending)
		*write_back = true;		/* a turn, if only to look at the outbox */

	if (sending_allowed() && low)
	{
		if (woken || more_pending || now >= idle_check_at ||
			(pending_due != 0 && now >= pending_due))
			*send_limit = claim_target() - ready.n;
		else
			*wake_at = earliest(*wake_at, earliest(pending_due, idle_check_at));
	}
	else if (!missing && paused && my_concurrency > 0 && ready.n == 0 &&
			 sms_http_in_flight() == 0)
	{
		/*
		 * One message now and then (see schedule_probe) tells whether the
		 * cause of a pause is gone.  (With requests in flight, their
		 * completion wakes us.)
		 */
		if (now >= probe_at)
			*send_limit = 1;
		else
			*wake_at = earliest(*wake_at, probe_at);
	}

	/* the first worker reconciles */
	if (sms_worker_slot == 0 && sending_allowed() &&
		lookups_in_flight < MAX_LOOKUPS_IN_FLIGHT)
	{
		int			allowed = bucket_available(&lookup_bucket, sms_reconcile_rate, now);

		if (unknown_due != 0 && now >= unknown_due && allowed > 0)
			*lookup_limit = Min(Min(MAX_LOOKUPS_IN_FLIGHT - lookups_in_flight,
									Max(free_slots(), 1)), allowed);
		else if (unknown_due != 0)
			*wake_at = earliest(*wake_at,
								Max(unknown_due,
									bucket_next_token_at(&lookup_bucket, sms_reconcile_rate, now)));
	}

	return *write_back || *send_limit > 0 || *lookup_limit > 0;
}

/*
 * The commit that claimed rows returned without the synchronous standby's
 * word (its wait was canceled or ended by the postmaster's death): until the
 * standby has the claim, nothing is sent, since a standby promoted without
 * it would send these rows again.
 */
static void
hold_claims(XLogRecPtr lsn)
{
	if (XLogRecPtrIsInvalid(unreplicated_claim))
	{
		ereport(LOG,
				(errmsg("sms: claimed messages are held until the synchronous standby has the claim"),
				 errdetail("The claim committed on this server, but no synchronous standby has confirmed it: its wait was cut short, or synchronous replication was turned on after it committed.")));
		pg_atomic_write_u64(&sms_shared->workers[sms_worker_slot].claims_held_since,
							(uint64) GetCurrentTimestamp());
	}
	if (lsn > unreplicated_claim)
		unreplicated_claim = lsn;
}

/*
 * Claim the most urgent 'unknown' rows of one sender for one lookup, which
 * answers for them all; NULL if none is due.
 */
static SmsJob *
claim_lookup(void)
{
	int			n;
	SmsJob	   *rows = sms_outbox_claim_unknown(LOOKUP_BATCH_ROWS,
												2 * sms_request_timeout_ms + sms_reconcile_grace_ms,
												lookup_alone_before, &n);
	SmsJob	   *row;
	int			i = 0;

	if (rows == NULL)
		return NULL;
	rows->nbatch = n - 1;
	rows->batch = MemoryContextAlloc(rows->cxt, sizeof(SmsJob *) * Max(n - 1, 1));
	for (row = rows->next; row; row = row->next)
		rows->batch[i++] = row;
	for (i = 0; i < rows->nbatch; i++)
		rows->batch[i]->next = NULL;
	rows->next = NULL;
	return rows;
}

/*
 * Only the first worker reconciles: tell it that rows of ours became
 * 'unknown', so that it looks for the time they are due rather than finding
 * them at its next idle check.
 */
static void
tell_first_worker(void)
{
	pg_atomic_write_u32(&sms_shared->unknown_rows_added, 1);
	sms_set_worker_latch(0);
}

/*
 * One transaction: write back what finished, then claim what comes next.
 * It commits before any claimed row is sent.
 */
static void
database_turn_once(int send_limit, int lookup_limit)
{
	SmsJob	   *job;
	int			n;
	bool		query_due = false;
	TimestampTz now = GetCurrentTimestamp();
	XLogRecPtr	lsn;

	idle_check_at = TimestampTzPlusMilliseconds(now, IDLE_RECHECK_MS);
	if (!sms_outbox_begin())
	{
		/* no extension: nothing to write back to, nothing to claim */
		if (extension_present)
		{
			extension_present = false;
			update_condition();
		}
		while ((job = queue_pop(&ready)) != NULL)
			sms_job_free(job);
		free_done();
		return;
	}
	if (!extension_present)
	{
		extension_present = true;
		recovery_pending = true;
		more_pending = true;
		query_due = true;
		update_condition();
		if (send_limit == 0 && sending_allowed())
			send_limit = claim_target();
	}

	/* until a turn that took our rows back has committed, take them again */
	if (recovery_pending && recover_rows_not_held() > 0)
		made_unknown = true;
	/* (a sweep also finds rows restored with the triggers disabled) */
	if (recheck_due || recovery_pending)
		query_due = true;

	write_back_done();

	if (send_limit > 0)
	{
		if (paused)
			schedule_probe(now);
		turn_sends = sms_outbox_claim(send_limit, sms_worker_slot, &n);
		more_pending = (n == send_limit);
		if (!more_pending)
			query_due = true;
	}
	for (int i = 0; i < lookup_limit; i++)
	{
		job = claim_lookup();
		if (job == NULL)
			break;
		job->next = turn_lookups;
		turn_lookups = job;
		bucket_spend(&lookup_bucket, sms_reconcile_rate, 1);
	}
	if (lookup_limit > 0)
		query_due = true;
	if (query_due)
	{
		elog(DEBUG2, "sms worker: next due query (claimed %d of %d)", send_limit > 0 ? n : -1, send_limit);
		sms_outbox_next_due(&pending_due, &unknown_due);
		/* due yet not claimed (locked by a writer): look again soon */
		if (pending_due != 0 && pending_due <= now && !more_pending)
			pending_due = TimestampTzPlusMilliseconds(now, 100);
		if (unknown_due != 0 && unknown_due <= now)
			unknown_due = TimestampTzPlusMilliseconds(now, 100);
	}

	lsn = sms_outbox_commit();
	recovery_pending = false;
	recheck_due = false;
	if (made_unknown && sms_worker_slot != 0)
		tell_first_worker();
	made_unknown = false;
	/* rows we could not send (paused, say) are for the other workers now */
	if (handed_back)
		sms_wake_workers();
	handed_back = false;

	/* only now are the claims durable: the rows may go out ... */
	free_done();
	for (job = turn_sends; job; job = job->next)
		job->claim_lsn = lsn;
	/* ... once the synchronous standby has them too */
	if (turn_sends && !sms_claims_replicated(lsn))
		hold_claims(lsn);
	queue_merge_by_priority(&ready, turn_sends);
	turn_sends = NULL;
	while ((job = turn_lookups) != NULL)
	{
		SmsJob	   *next = job->next;

		job->next = NULL;
		start_job(job);
		turn_lookups = next;
	}
}

/* Free the jobs of a list (and of each lookup's batch). */
static void
free_jobs(SmsJob *list)
{
	while (list)
	{
		SmsJob	   *next = list->next;

		for (int i = 0; i < list->nbatch; i++)
			sms_job_free(list->batch[i]);
		sms_job_free(list);
		list = next;
	}
}

/*
 * In a PG_CATCH of the loop's own: log the error, roll back, and carry on
 * in the caller's memory context, as PostgresMain recovers from an error:
 * with interrupts held while the transaction is aborted.
 */
static void
recover_from_error(MemoryContext cxt)
{
	HOLD_INTERRUPTS();
	MemoryContextSwitchTo(cxt);
	EmitErrorReport();
	FlushErrorState();
	AbortCurrentTransaction();
	pgstat_report_activity(STATE_IDLE, NULL);
	RESUME_INTERRUPTS();
}

/*
 * A turn of the database that fails (a lock timeout, a cancel, a conflict
 * with DROP EXTENSION, ...) must not take the requests in flight down with
 * the worker: roll back, keep the outcomes for the next turn, and go on.
 * Interrupts are not held: lock_timeout and pg_cancel_backend() work through
 * them.  SIGTERM only sets a flag (see sms_worker_main), so it is acted on
 * between turns, where every row can be left truthful.
 */
static void
database_turn(int send_limit, int lookup_limit)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		database_turn_once(send_limit, lookup_limit);
	}
	PG_CATCH();
	{
		recover_from_error(cxt);
		/* what the turn claimed was rolled back, or waits for its lease */
		free_jobs(turn_sends);
		free_jobs(turn_lookups);
		turn_sends = turn_lookups = NULL;
		turn_error_backoff_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 1000);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
}

/*
 * Delete one batch of finished rows past sms.retention; a full batch brings
 * the next one soon, so a backlog is worked off without stalling the loop.
 */
static void
run_retention(TimestampTz now)
{
	volatile int n = 0;
	MemoryContext cxt = CurrentMemoryContext;

	if (sms_worker_slot != 0 || sms_retention_s <= 0 || now < next_retention ||
		!extension_present)
		return;
	/* a short retention is kept to within about a quarter of itself */
	next_retention = TimestampTzPlusMilliseconds(now,
												 Min(RETENTION_INTERVAL_MS,
													 Max(1000, sms_retention_s * 250L)));
	PG_TRY();
	{
		if (sms_outbox_begin())
		{
			n = sms_outbox_purge(sms_retention_s);
			sms_outbox_commit();
		}
	}
	PG_CATCH();
	{
		recover_from_error(cxt);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	if (n > 0)
		next_retention = TimestampTzPlusMilliseconds(now, 10);
}

/*
 * SIGTERM: take no new work, give the requests in flight a moment to
 * finish, and record every row truthfully: what finished as it finished,
 * what may have reached the provider as 'unknown', what cannot have as
 * 'pending'.
 */
static void
shut_down(WaitEventSet *set)
{
	TimestampTz deadline;
	WaitEvent	ev;
	SmsJob	   *job;

	HOLD_INTERRUPTS();
	set_condition("stopping");
	abandon_ready();
	/* a standby that does not answer must not keep us from stopping */
	sms_commit_locally();

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   Min(sms_request_timeout_ms, 2000));
	while (sms_http_in_flight() > 0)
	{
		long		timeout = ms_until(deadline, GetCurrentTimestamp());
		long		curl_timeout = sms_http_timeout_ms();

		if (timeout == 0)
			break;
		if (curl_timeout >= 0)
			timeout = Min(timeout, curl_timeout);
		(void) WaitEventSetWait(set, timeout, &ev, 1, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		drive_requests();
		abandon_ready();		/* a lookup's outcome may have paused us */
	}

	/* abandon the rest */
	while ((job = sms_http_any_in_flight()) != NULL)
	{
		bool		request_sent = sms_http_abort(job);

		if (job->kind == JOB_SEND)
		{
			sends_in_flight--;
			if (request_sent)
			{
				job->outcome = OUTCOME_UNKNOWN;
				job->error_message = "the worker stopped while the request was in flight";
			}
			else
				job->outcome = OUTCOME_ABANDONED;
		}
		else
		{
			lookups_in_flight--;
			/* its rows not settled yet are looked up again */
			for (int i = 0; i <= job->nbatch; i++)
			{
				SmsJob	   *row = sms_lookup_row(job, i);

				if (row->outcome != OUTCOME_NONE)
					continue;
				row->outcome = OUTCOME_LOOKUP_AGAIN;
				row->error_message = "the worker stopped while looking this message up";
			}
			push_lookup_done(job);
			continue;
		}
		push_done(job);
	}

	/*
	 * The last write-back may wait for a row lock: let lock_timeout end the
	 * wait.  What it could not write stays 'sending' and is taken back at
	 * the next start.
	 */
	RESUME_INTERRUPTS();
	if (extension_present && done.n > 0)
	{
		MemoryContext cxt = CurrentMemoryContext;

		PG_TRY();
		{
			if (sms_outbox_begin())
			{
				write_back_done();
				sms_outbox_commit();
				if (made_unknown && sms_worker_slot != 0)
					tell_first_worker();
				if (handed_back)
					sms_wake_workers();
			}
		}
		PG_CATCH();
		{
			recover_from_error(cxt);
		}
		PG_END_TRY();
	}
	free_done();
	proc_exit(1);
}

void
sms_worker_main(Datum main_arg)
{
	WaitEventSet *set;
	WaitEvent	events[4];
	MemoryContext loop_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);

	/*
	 * SIGTERM sets a flag: the loop stops between turns (see shut_down); a
	 * commit waiting for a synchronous standby ends at once (see standby.c)
	 */
	pqsignal(SIGTERM, sms_standby_sigterm);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(sms_database, NULL, 0);
	sms_worker_slot = DatumGetInt32(main_arg);

	/*
	 * Whatever postgresql.conf or ALTER DATABASE say: the claim must be
	 * durable (on a synchronous standby too) before a message goes out; the
	 * worker's short transactions are read committed and read-write; and a
	 * row lock held by an application stalls the loop for one second at
	 * most (the turn is retried), never until every request has timed out.
	 */
	SetConfigOption("synchronous_commit", "on", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * The worker runs as the bootstrap superuser: no name in its statements
	 * may resolve to an object another role could create, whatever ALTER
	 * DATABASE ... SET search_path says (a database owner may set it) and
	 * whatever schema is named after this role ("$user").  Its statements
	 * name the outbox with its schema and everything else in pg_catalog.
	 */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_read_only", "off", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("statement_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("lock_timeout", "1s", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("idle_in_transaction_session_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	/* the claim's LIMIT decides its plan: let each execution plan for it */
	SetConfigOption("plan_cache_mode", "auto", PGC_SUSET, PGC_S_OVERRIDE);

	compute_shares();
	SpinLockAcquire(&sms_shared->mutex);
	sms_shared->workers[sms_worker_slot].latch = MyLatch;
	sms_shared->workers[sms_worker_slot].pid = MyProcPid;
	SpinLockRelease(&sms_shared->mutex);
	before_shmem_exit(worker_shmem_exit, (Datum) 0);
	set_condition("starting");

	/* anything committed before we registered our latch is claimed below */
	pg_atomic_write_u32(&sms_shared->workers[sms_worker_slot].wakeup_requested, 0);

	sms_http_init(my_concurrency, send_guard);
	provider = sms_chosen_provider();
	missing = provider->missing_settings();

	set = sms_create_wait_event_set(3);
	AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	AddWaitEventToSet(set, WL_SOCKET_READABLE, sms_http_socket(), NULL, NULL);

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "sms worker loop",
									 ALLOCSET_DEFAULT_SIZES);

	ereport(LOG,
			(errmsg("sms worker started for database \"%s\"", sms_database)));

	/* the first turn looks at the outbox at once */
	update_condition();
	sms_settings_applied();
	database_turn(0, 0);
	start_ready(GetCurrentTimestamp());
	drive_requests();

	for (;;)
	{
		TimestampTz now;
		TimestampTz wake_at;
		bool		woken = false;
		bool		write_back;
		int			send_limit;
		int			lookup_limit;
		long		timeout;
		long		curl_timeout;

		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);

		now = GetCurrentTimestamp();
		start_ready(now);

		if (sms_worker_slot == 0 &&
			pg_atomic_read_u32(&sms_shared->unknown_rows_added) != 0)
		{
			pg_atomic_write_u32(&sms_shared->unknown_rows_added, 0);
			recheck_due = true;
		}

		if (extension_present && now >= next_sweep)
		{
			recovery_pending = true;
			next_sweep = TimestampTzPlusMilliseconds(now, SWEEP_INTERVAL_MS);
		}

		/*
		 * Take the wake-up flag only when it can be acted on now; else it
		 * stays set and is seen once the queue has room again.
		 */
		if (!extension_present || (sending_allowed() && ready.n < my_concurrency))
			woken = pg_atomic_exchange_u32(&sms_shared->workers[sms_worker_slot].wakeup_requested, 0) != 0;

		if (turn_wanted(now, woken, &write_back, &send_limit, &lookup_limit, &wake_at))
		{
			elog(DEBUG2, "sms worker: turn: %d to write back, claim %d + %d lookups",
				 done.n, send_limit, lookup_limit);
			database_turn(send_limit, lookup_limit);
			start_ready(GetCurrentTimestamp());
			/* replies may already have come: collect them before sleeping */
			drive_requests();
		}

		run_retention(now);

		/* sleep until there is something to do */
		now = GetCurrentTimestamp();
		if (turn_wanted(now, false, &write_back, &send_limit, &lookup_limit, &wake_at))
			timeout = 0;
		else
		{
			timeout = wake_at ? ms_until(wake_at, now) : IDLE_RECHECK_MS;
			timeout = Min(timeout, IDLE_RECHECK_MS);
		}
		if (ready.n > 0 && !paused && free_slots() > 0)
			timeout = Min(timeout,
						  ms_until(bucket_next_token_at(&send_bucket, my_rate, now), now));
		curl_timeout = sms_http_timeout_ms();
		if (curl_timeout >= 0)
			timeout = Min(timeout, curl_timeout);
		if (sms_retention_s > 0 && extension_present)
			timeout = Min(timeout, ms_until(next_retention, now));
		if (extension_present)
			timeout = Min(timeout, ms_until(next_sweep, now));
		/* no one wakes us when the standby catches up: look now and then */
		if (!XLogRecPtrIsInvalid(unreplicated_claim))
			timeout = Min(timeout, STANDBY_POLL_MS);

		pgstat_report_activity(STATE_IDLE, NULL);
		(void) WaitEventSetWait(set, timeout, events, lengthof(events),
								PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);

		if (ShutdownRequestPending || ProcDiePending)
			shut_down(set);
		/* a cancel between turns has no statement to cancel */
		QueryCancelPending = false;
		CHECK_FOR_INTERRUPTS();

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			compute_shares();
			sms_http_configure(my_concurrency);
			/* a worker left with no share cannot send what it holds */
			if (my_concurrency == 0)
				abandon_ready();
			provider = sms_chosen_provider();
			missing = provider->missing_settings();
			/* the cause of a pause may have been fixed: try at once */
			if (paused)
				leave_pause("the configuration was reloaded");
			more_pending = true;
			update_condition();
			sms_settings_applied();
		}

		drive_requests();
	}
}
