/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  The background worker's state, shared by the files of the worker:
 *	  worker.c (the loop and its modes), worker_requests.c (requests in
 *	  flight, the rate, the pause) and worker_turn.c (the short transactions
 *	  on the outbox).  See worker.c for the vocabulary.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SMS_WORKER_H
#define SMS_WORKER_H

#include "job.h"
#include "provider.h"

#include "access/xlogdefs.h"

/*
 * With nothing known to be due, look at the outbox anyway this often: a
 * prepared transaction that queued messages wakes no one when it commits.
 */
#define WORKER_IDLE_MS 60000

/*
 * What the worker is doing, as sms_stats shows it.  Rows finished before a
 * change of mode are written back in every mode but the first.
 */
typedef enum WorkerMode
{
	WORKER_NO_EXTENSION,		/* no sms in sms.database: looks now and then */
	WORKER_SETTINGS_MISSING,	/* the provider lacks settings: claims nothing */
	WORKER_RUNNING,
	WORKER_PAUSED,				/* a failure every message would meet: one
								 * probing message now and then */
	WORKER_STOPPING				/* SIGTERM: finishing what is in flight */
} WorkerMode;

/* a FIFO of jobs */
typedef struct JobQueue
{
	SmsJob	   *head;
	SmsJob	   *tail;
	int			n;
} JobQueue;

/* a token bucket holding at most one second's worth of its rate */
typedef struct TokenBucket
{
	double		tokens;
	TimestampTz at;				/* when last refilled; 0 for never */
} TokenBucket;

/* when the worker must wake next, and why (for the debug log) */
typedef struct Deadline
{
	TimestampTz at;				/* 0: nothing known */
	const char *why;
} Deadline;

/* what a turn of the database is to do (see sms_plan_turn) */
typedef struct TurnPlan
{
	bool		write_back;		/* outcomes to write, or the outbox to look at */
	int			send_limit;		/* rows to claim for sending */
	int			lookup_limit;	/* lookups to claim */
	int			poll_limit;		/* polls of delivery status to claim */
	Deadline	later;			/* if nothing now: when there will be */
} TurnPlan;

typedef struct Worker
{
	WorkerMode	mode;
	const SmsProvider *provider;
	const char *missing;		/* in SETTINGS_MISSING: which setting */
	char	   *pause_reason;	/* in PAUSED */
	TimestampTz probe_at;		/* in PAUSED: when one message goes out */
	int			probe_interval_ms;

	/* this worker's shares of sms.max_concurrency and sms.rate_limit */
	int			concurrency;
	int			rate;			/* 0: no limit */

	/* jobs, from the claim to the write-back */
	JobQueue	ready;			/* claimed for sending, not started yet */
	JobQueue	done;			/* finished, waiting for the write-back */
	TimestampTz done_since;		/* when the oldest in done finished */
	int			lookups_in_flight;	/* (the rest in flight are sends) */
	SmsJob	   *turn_sends;		/* claimed by the turn under way */
	SmsJob	   *turn_lookups;
	TimestampTz lookup_alone_before;	/* older attempts: no batch */

	/* polls of delivery status (worker_poll.c; the first worker's) */
	SmsJob	   *turn_polls;		/* claimed by the turn under way */
	JobQueue	polls_waiting;	/* for sms.status_poll_rate's next token */
	int			polls_in_flight;
	TokenBucket poll_bucket;
	TimestampTz poll_due;		/* the next look due, 0 if none known */
	TimestampTz poll_hold_until;	/* after the provider's 429 */
	bool		poll_failing;	/* the last poll failed (logged once) */
	bool		polls_claimed_short;	/* the turn's claim found fewer due */

	/* rates */
	TokenBucket send_bucket;	/* sms.rate_limit's */
	TokenBucket lookup_bucket;	/* sms.reconcile_rate's */
	double		send_rate;		/* sends finished per second, smoothed */
	int			sends_finished;
	TimestampTz rate_since;

	/* what the worker knows of the outbox */
	bool		more_pending;	/* the last claim got all it asked for */
	TimestampTz pending_due;	/* earliest known due time, 0 if none */
	TimestampTz unknown_due;
	bool		recheck_due;	/* another worker left rows unknown */
	bool		recovery_pending;	/* rows in 'sending' to take back */
	TimestampTz next_sweep;		/* when to look for such rows again */
	TimestampTz idle_check_at;	/* look at the outbox by then anyway */
	TimestampTz next_retention;
	TimestampTz turn_error_backoff_until;
	XLogRecPtr	unreplicated_claim; /* nothing goes out until a standby has it */
} Worker;

/* worker.c */
extern void sms_worker_set_mode(Worker *w, WorkerMode mode);

/* worker_requests.c */
extern void sms_queue_push(JobQueue *q, SmsJob *job);
extern SmsJob *sms_queue_pop(JobQueue *q);
extern void sms_queue_merge_by_priority(JobQueue *q, SmsJob *jobs);
extern void sms_push_done(Worker *w, SmsJob *job);
extern void sms_push_lookup_done(Worker *w, SmsJob *job);
extern int	sms_bucket_available(TokenBucket *b, int rate, TimestampTz now);
extern void sms_bucket_spend(TokenBucket *b, int rate, int n);
extern TimestampTz sms_bucket_next_token_at(const TokenBucket *b, int rate,
										TimestampTz now);
extern int	sms_free_slots(const Worker *w);
extern int	sms_claim_target(Worker *w);
extern void sms_start_job(Worker *w, SmsJob *job);
extern int	sms_start_ready(Worker *w, TimestampTz now);
extern void sms_drive_requests(Worker *w);
extern void sms_abandon_ready(Worker *w);
extern void sms_enter_pause(Worker *w, const char *reason, bool network);
extern void sms_leave_pause(Worker *w, const char *why);
extern void sms_schedule_probe(Worker *w, TimestampTz now);
extern bool sms_send_guard(const SmsJob *job);
extern bool sms_release_held_claims(Worker *w);
extern void sms_hold_claims(Worker *w, XLogRecPtr lsn);
extern void sms_abort_in_flight(Worker *w);

/* worker_turn.c */
extern void sms_plan_turn(Worker *w, TimestampTz now, bool woken, TurnPlan *plan);
extern void sms_database_turn(Worker *w, const TurnPlan *plan);
extern void sms_write_back_at_exit(Worker *w);
extern void sms_run_retention(Worker *w, TimestampTz now);
extern void sms_free_done(Worker *w);

/* worker_poll.c */
extern void sms_plan_polls(Worker *w, TimestampTz now, TurnPlan *plan);
extern void sms_claim_polls(Worker *w, int limit, TimestampTz now);
extern void sms_hand_on_polls(Worker *w);
extern int	sms_start_polls(Worker *w, TimestampTz now);
extern void sms_poll_finished(Worker *w, SmsJob *job, bool another_request);
extern TimestampTz sms_write_back_polls(Worker *w, TimestampTz now);
extern void sms_end_waiting_polls(Worker *w);

/* Earlier of two times, where 0 means never. */
static inline TimestampTz
earliest(TimestampTz a, TimestampTz b)
{
	if (a == 0)
		return b;
	if (b == 0)
		return a;
	return Min(a, b);
}

/* Milliseconds until t, at least 0. */
static inline long
ms_until(TimestampTz t, TimestampTz now)
{
	if (t <= now)
		return 0;
	return (long) ((t - now + 999) / 1000);
}

/* Make d the earlier of itself and (at, why); at 0 means never. */
static inline void
deadline_consider(Deadline *d, TimestampTz at, const char *why)
{
	if (at != 0 && (d->at == 0 || at < d->at))
	{
		d->at = at;
		d->why = why;
	}
}

#endif							/* SMS_WORKER_H */
