/*-------------------------------------------------------------------------
 *
 * worker_turn.c
 *	  The worker's turns of the database: one short transaction that
 *	  writes back what finished and claims what comes next, and commits
 *	  before any row it claimed is sent.  Also when a turn is wanted at all,
 *	  the recovery of rows left in 'sending', and retention.
 *
 *	  A turn that fails (a lock timeout, a cancel, a conflict with DROP
 *	  EXTENSION) rolls back and keeps its outcomes for the next turn; the
 *	  requests in flight go on.
 *
 *-------------------------------------------------------------------------
 */
#include "worker.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "http.h"
#include "outbox.h"
#include "outcome.h"
#include "standby.h"

/* write back at once when this many outcomes wait ... */
#define WRITE_BACK_BATCH 512
/* ... or when the oldest has waited this long */
#define WRITE_BACK_DELAY_MS 20
/* lookups in flight at most: reconciliation must not flood the provider */
#define MAX_LOOKUPS_IN_FLIGHT 4
/* rows of one sender that one lookup answers for (a page of Twilio's list) */
#define LOOKUP_BATCH_ROWS 1000
/* how often retention runs */
#define RETENTION_INTERVAL_MS 60000
/* after a failed turn, wait this long before the next */
#define TURN_ERROR_BACKOFF_MS 1000

/* what a turn's write-back changed beyond its rows */
typedef struct WriteBackEffects
{
	bool		handed_back;	/* rows any worker may claim at once */
	bool		made_unknown;	/* rows the first worker must look up */
	TimestampTz pending_due;	/* earliest due time it set, 0 if none */
	TimestampTz unknown_due;
	TimestampTz poll_due;		/* the first look at rows it made sent */
} WriteBackEffects;

/* The probe of a pause, when one is due: one message now and then. */
static void
plan_probe(Worker *w, TimestampTz now, TurnPlan *plan)
{
	/* (with requests in flight, their completion wakes us) */
	if (w->concurrency == 0 || w->ready.n > 0 || sms_http_in_flight() > 0)
		return;
	if (now >= w->probe_at)
		plan->send_limit = 1;
	else
		deadline_consider(&plan->later, w->probe_at, "the next probe of the pause");
}

/* Lookups, when rows are due and the lookup rate allows (first worker). */
static void
plan_lookups(Worker *w, TimestampTz now, TurnPlan *plan)
{
	int			allowed;

	if (sms_worker_slot != 0 || w->mode != WORKER_RUNNING ||
		w->lookups_in_flight >= MAX_LOOKUPS_IN_FLIGHT || w->unknown_due == 0)
		return;
	allowed = sms_bucket_available(&w->lookup_bucket, sms_reconcile_rate, now);
	if (now >= w->unknown_due && allowed > 0)
		plan->lookup_limit = Min(Min(MAX_LOOKUPS_IN_FLIGHT - w->lookups_in_flight,
									 Max(sms_free_slots(w), 1)), allowed);
	else
		deadline_consider(&plan->later,
						  Max(w->unknown_due,
							  sms_bucket_next_token_at(&w->lookup_bucket,
												   sms_reconcile_rate, now)),
						  "unknown rows fall due");
}

/*
 * What a turn of the database would do now: write back, claim sends, claim
 * lookups.  If nothing, plan->later says when there will be something.
 */
void
sms_plan_turn(Worker *w, TimestampTz now, bool woken, TurnPlan *plan)
{
	memset(plan, 0, sizeof(TurnPlan));

	if (now < w->turn_error_backoff_until)
	{
		deadline_consider(&plan->later, w->turn_error_backoff_until,
						  "the backoff after a failed turn");
		return;
	}

	if (w->done.n > 0)
	{
		TimestampTz flush_at = TimestampTzPlusMilliseconds(w->done_since,
														   WRITE_BACK_DELAY_MS);

		if (w->done.n >= WRITE_BACK_BATCH || sms_http_in_flight() == 0 ||
			now >= flush_at)
			plan->write_back = true;
		else
			deadline_consider(&plan->later, flush_at, "outcomes to write back");
	}

	if (w->mode == WORKER_NO_EXTENSION)
	{
		if (woken || now >= w->idle_check_at)
			plan->write_back = true;	/* a turn, to look for the extension */
		deadline_consider(&plan->later, w->idle_check_at, "the idle check");
		return;
	}
	if (w->recheck_due || w->recovery_pending)
		plan->write_back = true;	/* a turn, if only to look at the outbox */

	if (w->mode == WORKER_RUNNING && w->ready.n < w->concurrency)
	{
		if (woken || w->more_pending || now >= w->idle_check_at ||
			(w->pending_due != 0 && now >= w->pending_due))
			plan->send_limit = sms_claim_target(w) - w->ready.n;
		else
		{
			deadline_consider(&plan->later, w->pending_due, "pending rows fall due");
			deadline_consider(&plan->later, w->idle_check_at, "the idle check");
		}
	}
	else if (w->mode == WORKER_PAUSED)
		plan_probe(w, now, plan);

	plan_lookups(w, now, plan);
	sms_plan_polls(w, now, plan);
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
recover_rows_not_held(Worker *w)
{
	int			nin = sms_http_in_flight();
	int64	   *ids = palloc(sizeof(int64) * (w->ready.n + w->done.n + nin + 1));
	int			n = 0;
	int			nrecovered;

	add_send_ids(&w->ready, ids, &n);
	add_send_ids(&w->done, ids, &n);
	for (int i = 0; i < nin; i++)
	{
		SmsJob	   *job = sms_http_in_flight_job(i);

		if (job->kind == JOB_SEND)
			ids[n++] = job->id;
	}
	nrecovered = sms_outbox_recover_inflight(sms_worker_slot, sms_workers, ids, n);
	pfree(ids);
	if (nrecovered > 0)
		ereport(LOG,
				(errmsg_plural("sms: %d message was in state sending with no request in flight",
							   "sms: %d messages were in state sending with no request in flight",
							   nrecovered, nrecovered),
				 errdetail("A worker stopped while sending them, or they were restored in that state; each is looked up at the provider before it is sent again.")));
	return nrecovered;
}

/*
 * Write back what finished, in one statement; returns what that changed
 * beyond the rows themselves.
 */
static WriteBackEffects
write_back_done(Worker *w)
{
	WriteBackEffects fx = {0};
	TimestampTz now = GetCurrentTimestamp();
	SmsWriteBack *wb;
	int			n = 0;

	if (w->done.n == 0)
		return fx;
	wb = palloc(sizeof(SmsWriteBack) * w->done.n);
	for (SmsJob *job = w->done.head; job; job = job->next)
	{
		/*
		 * A row claimed before DROP EXTENSION is gone; its id may name
		 * another message in a recreated outbox.  (Polls are written back
		 * by sms_write_back_polls.)
		 */
		if (job->extension_oid != sms_outbox_extension_oid() || job->kind == JOB_POLL)
			continue;
		sms_plan_write_back(job, now, &wb[n]);
		fx.handed_back |= sms_write_back_gives_back(&wb[n]);
		if (wb[n].next_attempt_at != 0 && strcmp(wb[n].new_state, "pending") == 0)
			fx.pending_due = earliest(fx.pending_due, wb[n].next_attempt_at);
		else if (wb[n].next_attempt_at != 0)
		{
			fx.unknown_due = earliest(fx.unknown_due, wb[n].next_attempt_at);
			fx.made_unknown = true;
		}
		if (strcmp(wb[n].new_state, "sent") == 0 && sms_status_poll &&
			sms_outbox_has_polls())
			fx.poll_due = earliest(fx.poll_due,
								   TimestampTzPlusMilliseconds(now, sms_status_poll_interval_s * 1000L));
		n++;
	}
	sms_outbox_write_back(wb, n);
	fx.poll_due = earliest(fx.poll_due, sms_write_back_polls(w, now));
	pfree(wb);
	return fx;
}

void
sms_free_done(Worker *w)
{
	SmsJob	   *job;

	while ((job = sms_queue_pop(&w->done)) != NULL)
		sms_job_free(job);
	w->done_since = 0;
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
 * Claim the most urgent 'unknown' rows of one sender for one lookup, which
 * answers for them all; NULL if none is due.
 */
static SmsJob *
claim_lookup(Worker *w)
{
	int			n;
	SmsJob	   *rows = sms_outbox_claim_unknown(LOOKUP_BATCH_ROWS,
												2 * sms_request_timeout_ms + sms_reconcile_grace_ms,
												w->lookup_alone_before, &n);
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
 * Tell the others what a committed turn changed: only the first worker
 * reconciles, so rows of ours that became 'unknown' are its to look up (it
 * looks for the time they are due rather than finding them at its next idle
 * check); rows handed back (a pause, say) are for the other workers now.
 */
static void
tell_other_workers(WriteBackEffects fx)
{
	if (fx.made_unknown && sms_worker_slot != 0)
	{
		pg_atomic_write_u32(&sms_shared->unknown_rows_added, 1);
		sms_set_worker_latch(0);
	}
	if (fx.handed_back)
		sms_wake_workers();
}

/* No extension: nothing to write back to, nothing to claim. */
static void
lose_extension(Worker *w)
{
	SmsJob	   *job;

	sms_worker_set_mode(w, WORKER_NO_EXTENSION);
	while ((job = sms_queue_pop(&w->ready)) != NULL)
		sms_job_free(job);
	/* polls of the outbox that is gone ask no more (those in flight end) */
	while ((job = sms_queue_pop(&w->polls_waiting)) != NULL)
		sms_job_free(job);
	sms_free_done(w);
}

/* Claim the next rows for sending, lookups and polls, into the turn's lists. */
static void
claim(Worker *w, const TurnPlan *plan, TimestampTz now)
{
	int			send_limit = plan->send_limit;
	int			lookup_limit = plan->lookup_limit;
	int			n = 0;

	if (send_limit > 0)
	{
		if (w->mode == WORKER_PAUSED)
			sms_schedule_probe(w, now);
		w->turn_sends = sms_outbox_claim(send_limit, sms_worker_slot, &n);
		w->more_pending = (n == send_limit);
	}
	for (int i = 0; i < lookup_limit; i++)
	{
		SmsJob	   *job = claim_lookup(w);

		if (job == NULL)
			break;
		job->next = w->turn_lookups;
		w->turn_lookups = job;
		sms_bucket_spend(&w->lookup_bucket, sms_reconcile_rate, 1);
	}
	if (plan->poll_limit > 0)
		sms_claim_polls(w, plan->poll_limit, now);
}

/* When the next rows fall due, for the loop to sleep until then. */
static void
find_next_due(Worker *w, TimestampTz now)
{
	sms_outbox_next_due(&w->pending_due, &w->unknown_due);
	if (sms_worker_slot == 0)
	{
		w->poll_due = sms_outbox_next_poll_due();
		/* due yet not claimed this turn (locked): look again in a moment */
		if (w->poll_due != 0 && w->poll_due <= now && w->polls_claimed_short)
			w->poll_due = TimestampTzPlusMilliseconds(now, 1000);
	}
	/* due yet not claimed (locked by a writer): look again soon */
	if (w->pending_due != 0 && w->pending_due <= now && !w->more_pending)
		w->pending_due = TimestampTzPlusMilliseconds(now, 100);
	if (w->unknown_due != 0 && w->unknown_due <= now)
		w->unknown_due = TimestampTzPlusMilliseconds(now, 100);
}

/*
 * Only now are the claims durable: the rows may go out, once the
 * synchronous standby has them too; lookups start at once (they change
 * nothing at the provider).
 */
static void
hand_on_claims(Worker *w, XLogRecPtr lsn)
{
	SmsJob	   *job;

	for (job = w->turn_sends; job; job = job->next)
		job->claim_lsn = lsn;
	if (w->turn_sends && !sms_claims_replicated(lsn))
		sms_hold_claims(w, lsn);
	sms_queue_merge_by_priority(&w->ready, w->turn_sends);
	w->turn_sends = NULL;
	/* (each stays in the turn's list, freed if the turn fails, until started) */
	while ((job = w->turn_lookups) != NULL)
	{
		SmsJob	   *next = job->next;

		job->next = NULL;
		sms_start_job(w, job);
		w->turn_lookups = next;
	}
	sms_hand_on_polls(w);
}

/*
 * One transaction: write back what finished, then claim what comes next.
 * It commits before any claimed row is sent.
 */
static void
database_turn_once(Worker *w, const TurnPlan *plan)
{
	TurnPlan	claims = *plan;
	TimestampTz now = GetCurrentTimestamp();
	bool		query_due;
	bool		recovered;
	WriteBackEffects fx;
	XLogRecPtr	lsn;

	w->idle_check_at = TimestampTzPlusMilliseconds(now, WORKER_IDLE_MS);
	if (!sms_outbox_begin())
	{
		lose_extension(w);
		return;
	}
	if (w->mode == WORKER_NO_EXTENSION)
	{
		/* found: take back what a stopped worker left, and claim at once */
		w->recovery_pending = true;
		w->more_pending = true;
		sms_worker_set_mode(w, w->missing ? WORKER_SETTINGS_MISSING : WORKER_RUNNING);
		if (claims.send_limit == 0 && w->mode == WORKER_RUNNING)
			claims.send_limit = sms_claim_target(w);
	}
	w->polls_claimed_short = false;
	/* (a sweep also finds rows restored with the triggers disabled) */
	query_due = w->recheck_due || w->recovery_pending || plan->lookup_limit > 0 ||
		plan->poll_limit > 0;

	/* until a turn that took our rows back has committed, take them again */
	recovered = w->recovery_pending && recover_rows_not_held(w) > 0;
	fx = write_back_done(w);
	fx.made_unknown |= recovered;
	claim(w, &claims, now);
	if (claims.send_limit > 0 && !w->more_pending)
		query_due = true;
	if (query_due)
		find_next_due(w, now);
	else
	{
		w->pending_due = earliest(w->pending_due, fx.pending_due);
		w->unknown_due = earliest(w->unknown_due, fx.unknown_due);
		w->poll_due = earliest(w->poll_due, fx.poll_due);
	}

	lsn = sms_outbox_commit();
	w->recovery_pending = false;
	w->recheck_due = false;
	tell_other_workers(fx);
	sms_free_done(w);
	hand_on_claims(w, lsn);
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
 * A turn of the database that fails must not take the requests in flight
 * down with the worker: roll back, keep the outcomes for the next turn, and
 * go on.  Interrupts are not held: lock_timeout and pg_cancel_backend()
 * work through them.  SIGTERM only sets a flag (see sms_worker_main), so it
 * is acted on between turns, where every row can be left truthful.
 */
void
sms_database_turn(Worker *w, const TurnPlan *plan)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		database_turn_once(w, plan);
	}
	PG_CATCH();
	{
		recover_from_error(cxt);
		/* what the turn claimed was rolled back, or waits for its lease */
		free_jobs(w->turn_sends);
		free_jobs(w->turn_lookups);
		free_jobs(w->turn_polls);
		w->turn_sends = w->turn_lookups = w->turn_polls = NULL;
		w->turn_error_backoff_until =
			TimestampTzPlusMilliseconds(GetCurrentTimestamp(), TURN_ERROR_BACKOFF_MS);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
}

/*
 * The last write-back, at shutdown.  It may wait for a row lock: let
 * lock_timeout end the wait.  What it could not write stays 'sending' and
 * is taken back at the next start.
 */
void
sms_write_back_at_exit(Worker *w)
{
	MemoryContext cxt = CurrentMemoryContext;

	if (w->done.n == 0)
		return;
	PG_TRY();
	{
		if (sms_outbox_begin())
		{
			WriteBackEffects fx = write_back_done(w);

			sms_outbox_commit();
			tell_other_workers(fx);
		}
	}
	PG_CATCH();
	{
		recover_from_error(cxt);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	sms_free_done(w);
}

/*
 * Delete one batch of finished rows past sms.retention; a full batch brings
 * the next one soon, so a backlog is worked off without stalling the loop.
 */
void
sms_run_retention(Worker *w, TimestampTz now)
{
	volatile int n = 0;
	MemoryContext cxt = CurrentMemoryContext;

	if (sms_worker_slot != 0 || sms_retention_s <= 0 || now < w->next_retention ||
		w->mode == WORKER_NO_EXTENSION)
		return;
	/* a short retention is kept to within about a quarter of itself */
	w->next_retention = TimestampTzPlusMilliseconds(now,
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
		w->next_retention = TimestampTzPlusMilliseconds(now, 10);
}
