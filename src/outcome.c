/*-------------------------------------------------------------------------
 *
 * outcome.c
 *	  The rules from a finished job's outcome to its row's next state, in
 *	  one table; README.md's state diagram is drawn from it.
 *
 *	  Who decides what: http.c tells whether any byte of a request left; the
 *	  provider (twilio.c) turns that and the reply into an outcome, and the
 *	  worker decides the outcomes no reply gave (a request the send guard
 *	  held back, claims handed back at a pause, requests cut off at
 *	  shutdown); this table turns the outcome into the row's state,
 *	  attempts and due time;
 *	  outbox.c writes it, guarded by the state and attempt the job claimed,
 *	  so that a late or repeated outcome never overwrites a newer one.
 *
 *	  A send claimed its row in 'sending' and counted an attempt; a lookup
 *	  leased its row in 'unknown'.
 *
 *-------------------------------------------------------------------------
 */
#include "outcome.h"

#include "common/pg_prng.h"
#include "utils/timestamp.h"

/* a failed lookup asks again after its backoff, and not sooner than this */
#define LOOKUP_AGAIN_MIN_MS 5000

/* when the row falls due next */
typedef enum NextAttempt
{
	NEXT_KEEP,					/* as it is (a final state) */
	NEXT_NOW,					/* at once */
	NEXT_BACKOFF,				/* after the provider's Retry-After, or the
								 * jittered exponential backoff */
	NEXT_GRACE,					/* after sms.reconcile_grace: looked up then */
	NEXT_LOOKUP_BACKOFF			/* the backoff, at least max(grace, 5 s) */
} NextAttempt;

typedef struct Transition
{
	const char *state;			/* the row's next state */
	/* ... or, when the attempt was the last (sms.max_attempts), 'failed' */
	bool		fails_when_exhausted;
	const char *exhausted_why;	/* the error then; NULL: the job's own */
	bool		gives_attempt_back; /* not the message's fault */
	NextAttempt next;
} Transition;

static const Transition transitions[] = {
	/* the provider has the message */
	[OUTCOME_SENT] = {"sent", false, NULL, false, NEXT_KEEP},
	/* the provider refused this message (a 400-class error about it) */
	[OUTCOME_FAILED] = {"failed", false, NULL, false, NEXT_KEEP},
	/* it never reached the provider, or the provider did not process it */
	[OUTCOME_RETRY] = {"pending", true, NULL, false, NEXT_BACKOFF},
	/* it may exist: a timeout or 5xx after the request left */
	[OUTCOME_UNKNOWN] = {"unknown", false, NULL, false, NEXT_GRACE},
	/* every message would fail alike: the queue pauses */
	[OUTCOME_PAUSE] = {"pending", false, NULL, true, NEXT_NOW},
	/* stopped before any byte left (shutdown, a pause, the standby) */
	[OUTCOME_ABANDONED] = {"pending", false, NULL, true, NEXT_NOW},
	/* the lookup found no such message: send it again */
	[OUTCOME_RESEND] = {"pending", true, "the provider has no such message", false, NEXT_NOW},
	/* the lookup itself failed: ask again later */
	[OUTCOME_LOOKUP_AGAIN] = {"unknown", false, NULL, false, NEXT_LOOKUP_BACKOFF},
	/* none decided (no path leaves one; kept safe): look it up again */
	[OUTCOME_NONE] = {"unknown", false, NULL, false, NEXT_LOOKUP_BACKOFF},
};

StaticAssertDecl(lengthof(transitions) == SMS_NUM_OUTCOMES,
				 "every outcome has a transition");

/* Has this attempt used up sms.max_attempts? */
bool
sms_attempts_exhausted(const SmsJob *job)
{
	return job->attempts >= sms_max_attempts;
}

/* Full-jitter exponential backoff after the job's attempt. */
static TimestampTz
backoff_until(const SmsJob *job, TimestampTz now)
{
	double		cap = sms_retry_base_ms;
	double		delay_ms;

	if (job->retry_after_s >= 0)
		delay_ms = job->retry_after_s * 1000.0;
	else
	{
		for (int i = 1; i < job->attempts && cap < sms_retry_max_ms; i++)
			cap *= 2;
		cap = Min(cap, (double) sms_retry_max_ms);
		delay_ms = pg_prng_double(&pg_global_prng_state) * cap;
	}
	return TimestampTzPlusMilliseconds(now, (int64) delay_ms);
}

static TimestampTz
next_attempt_at(NextAttempt next, const SmsJob *job, TimestampTz now)
{
	switch (next)
	{
		case NEXT_KEEP:
			return 0;
		case NEXT_NOW:
			return now;
		case NEXT_BACKOFF:
			return backoff_until(job, now);
		case NEXT_GRACE:
			return TimestampTzPlusMilliseconds(now, sms_reconcile_grace_ms);
		case NEXT_LOOKUP_BACKOFF:
			return Max(backoff_until(job, now),
					   TimestampTzPlusMilliseconds(now,
												   Max(sms_reconcile_grace_ms,
													   LOOKUP_AGAIN_MIN_MS)));
	}
	return 0;
}

/*
 * The write-back of a finished job.  The job is left as it is: a turn that
 * fails (a row lock past lock_timeout) plans the same write-back again in
 * the next, and what is allocated here lives in the turn's memory.
 */
void
sms_plan_write_back(const SmsJob *job, TimestampTz now, SmsWriteBack *wb)
{
	const Transition *t = &transitions[job->outcome];

	wb->id = job->id;
	wb->expected_state = job->kind == JOB_SEND ? "sending" : "unknown";
	wb->expected_attempts = job->attempts;
	wb->job = job;
	wb->error_message = job->error_message;

	if (t->fails_when_exhausted && sms_attempts_exhausted(job))
	{
		wb->new_state = "failed";
		wb->new_attempts = job->attempts;
		wb->next_attempt_at = 0;
		wb->error_message = psprintf("gave up after %d attempts: %s", job->attempts,
									 t->exhausted_why ? t->exhausted_why :
									 job->error_message);
		return;
	}
	wb->new_state = t->state;
	wb->new_attempts = job->attempts - (t->gives_attempt_back ? 1 : 0);
	wb->next_attempt_at = next_attempt_at(t->next, job, now);
}

/* Does this write-back hand its row back for any worker to claim at once? */
bool
sms_write_back_gives_back(const SmsWriteBack *wb)
{
	return wb->new_attempts < wb->expected_attempts;
}
