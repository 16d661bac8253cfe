/*-------------------------------------------------------------------------
 *
 * worker_poll.c
 *	  The worker's polls of delivery status: the first worker asks the
 *	  provider, on a schedule, about sent messages whose status is not final
 *	  (see poll.h for what one poll does, status.c for the schedule).
 *
 *	  Polls have a rate of their own, sms.status_poll_rate requests per
 *	  second, and at most MAX_POLLS_IN_FLIGHT of them are in flight: each
 *	  request of a poll (a page of the list, a GET) waits for a token, so a
 *	  long walk or many GETs cannot crowd out sends or lookups, and sends
 *	  keep every request slot but those few.  A 429 holds the polls for the
 *	  provider's Retry-After.  A failed poll changes no row's state; its rows
 *	  are looked at again later.
 *
 *-------------------------------------------------------------------------
 */
#include "worker.h"

#include "http.h"
#include "outbox.h"
#include "poll.h"

#include "access/xact.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

/* polls in flight or waiting for a token, at most */
#define MAX_POLLS_IN_FLIGHT 2
/* rows of one sender that one poll claims */
#define POLL_BATCH_ROWS 1000
/* after a 429 without Retry-After, polls wait this long */
#define POLL_HOLD_MS 10000
/*
 * A poll's lease on its rows: its requests (a walk's pages and a GET per
 * row), the polls in flight sharing the rate, and a margin.  A poll that
 * outlives it anyway writes no schedule over the next claim's (see
 * outbox_status.c).
 */
#define POLL_LEASE_MARGIN_MS 120000
#define POLL_MAX_REQUESTS (100 + POLL_BATCH_ROWS)

/* Is polling for this worker to do now? */
static bool
polling(const Worker *w)
{
	return sms_worker_slot == 0 && sms_status_poll && w->mode == WORKER_RUNNING;
}

/* A poll to claim, when one is due and the rate allows. */
void
sms_plan_polls(Worker *w, TimestampTz now, TurnPlan *plan)
{
	TimestampTz at;

	if (!polling(w) || w->poll_due == 0 ||
		w->polls_in_flight + w->polls_waiting.n >= MAX_POLLS_IN_FLIGHT)
		return;
	at = Max(w->poll_due, w->poll_hold_until);
	if (sms_bucket_available(&w->poll_bucket, sms_status_poll_rate, now) < 1)
		at = Max(at, sms_bucket_next_token_at(&w->poll_bucket,
											  sms_status_poll_rate, now));
	if (now >= at)
		plan->poll_limit = MAX_POLLS_IN_FLIGHT - w->polls_in_flight - w->polls_waiting.n;
	else
		deadline_consider(&plan->later, at, "delivery statuses fall due");
}

/* The senders of the polls under way (at most MAX_POLLS_IN_FLIGHT). */
static int
senders_polled(Worker *w, const char **senders)
{
	int			n = 0;

	for (SmsJob *job = w->polls_waiting.head; job && n < MAX_POLLS_IN_FLIGHT; job = job->next)
		senders[n++] = job->from_number;
	for (SmsJob *job = w->turn_polls; job && n < MAX_POLLS_IN_FLIGHT; job = job->next)
		senders[n++] = job->from_number;
	for (int i = 0; i < sms_http_in_flight() && n < MAX_POLLS_IN_FLIGHT; i++)
	{
		SmsJob	   *job = sms_http_in_flight_job(i);

		if (job->kind == JOB_POLL)
			senders[n++] = job->from_number;
	}
	return n;
}

/*
 * In a turn: claim up to limit polls, each the due rows of one sender that
 * no other poll is walking.
 */
void
sms_claim_polls(Worker *w, int limit, TimestampTz now)
{
	int			lease_ms = POLL_LEASE_MARGIN_MS +
		(int) ((int64) POLL_MAX_REQUESTS * MAX_POLLS_IN_FLIGHT * 1000 / sms_status_poll_rate);
	const char *senders[MAX_POLLS_IN_FLIGHT];
	int			claimed = 0;

	for (int i = 0; i < limit; i++)
	{
		int			nsenders = senders_polled(w, senders);
		SmsJob	   *job;

		if (nsenders >= MAX_POLLS_IN_FLIGHT)
			break;
		job = sms_outbox_claim_poll(POLL_BATCH_ROWS, lease_ms, senders, nsenders);
		if (job == NULL)
			break;
		job->next = w->turn_polls;
		w->turn_polls = job;
		claimed++;
	}
	/* (the turn then looks when the next poll is due: see find_next_due) */
	w->polls_claimed_short = claimed < limit;
}

/* After the turn committed: its polls wait for their tokens. */
void
sms_hand_on_polls(Worker *w)
{
	SmsJob	   *job;

	while ((job = w->turn_polls) != NULL)
	{
		w->turn_polls = job->next;
		sms_queue_push(&w->polls_waiting, job);
	}
}

/* Start waiting polls' next requests as the rate allows; returns how many. */
int
sms_start_polls(Worker *w, TimestampTz now)
{
	int			started = 0;

	/* (stopping, a poll's next request never leaves: see shut_down) */
	if (w->polls_waiting.n == 0 || now < w->poll_hold_until ||
		w->mode == WORKER_STOPPING)
		return 0;
	/* a free request slot too: sends take what polls leave, never less */
	while (w->polls_waiting.n > 0 && sms_free_slots(w) > 0 &&
		   sms_bucket_available(&w->poll_bucket, sms_status_poll_rate, now) >= 1)
	{
		sms_start_job(w, sms_queue_pop(&w->polls_waiting));
		sms_bucket_spend(&w->poll_bucket, sms_status_poll_rate, 1);
		started++;
	}
	return started;
}

/*
 * A poll's request finished (the provider's finish_poll has read it): it
 * waits for its next request, or is done.  A failure is logged when polls
 * begin to fail, and again when they work again, not for every poll.
 */
void
sms_poll_finished(Worker *w, SmsJob *job, bool another_request)
{
	SmsTransfer *t = job->http;

	if (t->http_status == 429)
	{
		int			hold_ms = job->retry_after_s > 0 ?
			job->retry_after_s * 1000 : POLL_HOLD_MS;

		w->poll_hold_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), hold_ms);
	}
	if (another_request)
	{
		sms_queue_push(&w->polls_waiting, job);
		return;
	}
	if (job->poll->failed && !w->poll_failing)
		ereport(LOG,
				(errmsg("sms: %s", job->error_message),
				 errdetail("No message's state changes; the %d messages of this poll are looked at again later.",
						   job->poll->unanswered)));
	else if (!job->poll->failed && w->poll_failing)
		ereport(LOG, (errmsg("sms: status polls succeed again")));
	w->poll_failing = job->poll->failed;
	sms_push_done(w, job);
}

/*
 * At shutdown: polls that wait for a token end here; what they learnt is
 * written back, and their other rows are looked at again later.
 */
void
sms_end_waiting_polls(Worker *w)
{
	SmsJob	   *job;

	while ((job = sms_queue_pop(&w->polls_waiting)) != NULL)
		sms_push_done(w, job);
}

/*
 * Write back one poll in a subtransaction of the turn: a trigger of the
 * user's on status that fails must not keep the turn from writing back the
 * sends and claiming the next ones, again at every turn.  The poll's news
 * is then lost and its rows are looked at when their lease ends.
 */
static TimestampTz
write_back_poll(SmsJob *job, TimestampTz now)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile TimestampTz first = 0;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		first = sms_outbox_write_poll(job->poll, now);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		ereport(LOG,
				(errmsg("sms: could not write back a status poll: %s", edata->message),
				 errdetail("The delivery statuses it brought for %d messages are dropped; they are looked at again later.",
						   job->poll->nrows)));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return first;
}

/*
 * In a turn: write back the finished polls among the done jobs; returns the
 * earliest next look they set, 0 if none.
 */
TimestampTz
sms_write_back_polls(Worker *w, TimestampTz now)
{
	TimestampTz first = 0;

	for (SmsJob *job = w->done.head; job; job = job->next)
		if (job->kind == JOB_POLL && job->extension_oid == sms_outbox_extension_oid())
			first = earliest(first, write_back_poll(job, now));
	return first;
}
