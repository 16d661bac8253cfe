/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The background worker: one event loop that claims due messages, keeps
 *	  its share of sms.max_concurrency requests in flight, and writes
 *	  outcomes back.
 *
 *	  The worker's words, used throughout worker*.c:
 *
 *	  job		one row's network work (job.h): a send, which creates the
 *				message at the provider, or a lookup, which asks the
 *				provider whether an earlier attempt whose outcome is unknown
 *				created it.  One lookup answers for a batch of rows of one
 *				sender.
 *	  claim		a turn's UPDATE that takes due rows for this worker: a send
 *				claim moves a row to 'sending' and counts an attempt; a
 *				lookup claim leases an 'unknown' row for a while.
 *	  turn		one short transaction on the outbox (worker_turn.c): write
 *				back what finished, then claim what comes next.  It commits
 *				before any row it claimed is sent, so a row is durably
 *				'sending' before the provider can have seen it.
 *	  ready		claimed sends waiting for a free request slot and the rate;
 *	  done		finished jobs waiting for the next turn's write-back.
 *	  outcome	what a finished job means for its row (outcome.c has the
 *				table from outcome to state).
 *	  hand back	return a claimed row to 'pending' with its attempt given
 *				back, because it was never sent (a pause, a shutdown, a
 *				standby that lacks the claim).
 *	  pause		a failure every message would meet (the account, the
 *				network, the settings): nothing is failed for it, and one
 *				probing message now and then tells when it is over.
 *	  mode		WorkerMode (worker.h): no extension, settings missing,
 *				running, paused, stopping; sms_stats shows it.
 *
 *	  Each pass of the loop waits in WaitEventSetWait for the latch (set by
 *	  committing backends, SIGHUP and SIGTERM), postmaster death and curl's
 *	  sockets, until next_deadline(); lets curl work and collects finished
 *	  requests (worker_requests.c); starts ready jobs; and, when sms_plan_turn()
 *	  finds outcomes to write or rows to claim, runs a turn.  Claiming ahead
 *	  of the free slots keeps the network busy while the database does its
 *	  part in batches.
 *
 *	  With sms.workers above 1, each worker runs this loop with its share of
 *	  the requests in flight and of the rate; SKIP LOCKED keeps their claims
 *	  apart, and each row records which worker claimed it, so that a
 *	  restarted worker takes back only its own rows.  The first worker also
 *	  reconciles, deletes past sms.retention and reports the condition.
 *
 *	  The worker's whole state is one Worker (worker.h), passed to every
 *	  function that reads or changes it.
 *
 *-------------------------------------------------------------------------
 */
#include "worker.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "http.h"
#include "standby.h"

/* how often a worker looks for rows in 'sending' that it holds no job for */
#define SWEEP_INTERVAL_MS 10000
/* how often a worker holding claims looks whether the standby has them */
#define STANDBY_POLL_MS 100
/* at shutdown, requests in flight get this long to finish */
#define SHUTDOWN_GRACE_MS 2000

static Worker worker;

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
compute_shares(Worker *w)
{
	w->concurrency = share_of(sms_max_concurrency);
	w->rate = 0;
	if (sms_rate_limit > 0)
	{
		w->rate = share_of(sms_rate_limit);
		if (w->rate == 0)
			w->concurrency = 0;
	}
}

/* The condition sms_stats shows: the first worker's mode. */
static void
show_mode(const Worker *w)
{
	if (sms_worker_slot != 0)
		return;
	switch (w->mode)
	{
		case WORKER_NO_EXTENSION:
			sms_set_condition("waiting for CREATE EXTENSION sms in database \"%s\"",
							  sms_database);
			break;
		case WORKER_SETTINGS_MISSING:
			sms_set_condition("paused: %s", w->missing);
			break;
		case WORKER_RUNNING:
			sms_set_condition("running");
			break;
		case WORKER_PAUSED:
			sms_set_condition("paused: %s", w->pause_reason);
			break;
		case WORKER_STOPPING:
			sms_set_condition("stopping");
			break;
	}
}

void
sms_worker_set_mode(Worker *w, WorkerMode mode)
{
	w->mode = mode;
	show_mode(w);
}

static void
worker_shmem_exit(int code, Datum arg)
{
	SmsWorkerSlot *slot;

	if (sms_shared == NULL)
		return;
	slot = &sms_shared->workers[sms_worker_slot];
	SpinLockAcquire(&sms_shared->mutex);
	slot->latch = NULL;
	slot->pid = 0;
	SpinLockRelease(&sms_shared->mutex);
	pg_atomic_write_u64(&slot->standby_wait_since, 0);
	pg_atomic_write_u64(&slot->claims_held_since, 0);
	pg_atomic_write_u64(&slot->settings_applied_at, 0);
	if (sms_worker_slot == 0)
		sms_set_condition("not running");
}

/*
 * The mode the settings call for, once the extension is there: the cause
 * of a pause may have been fixed, so a reload ends it.
 */
static void
apply_settings(Worker *w)
{
	w->provider = sms_chosen_provider();
	w->missing = w->provider->missing_settings();
	compute_shares(w);
	if (w->mode == WORKER_NO_EXTENSION)
		return;
	if (w->missing)
		sms_worker_set_mode(w, WORKER_SETTINGS_MISSING);
	else if (w->mode == WORKER_PAUSED)
		sms_leave_pause(w, "the configuration was reloaded");
	else
		sms_worker_set_mode(w, WORKER_RUNNING);
}

/* SIGHUP: the new settings, in every part of the worker that uses them. */
static void
reload_settings(Worker *w)
{
	/* what was in the file by this time is in effect once we are done */
	TimestampTz read_at = GetCurrentTimestamp();

	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	apply_settings(w);
	sms_http_configure(w->concurrency);
	/* held claims a worker left with no share, or no settings, cannot send */
	if (w->concurrency == 0 || w->mode != WORKER_RUNNING)
		sms_abandon_ready(w);
	w->more_pending = true;
	sms_settings_applied(read_at);
}

/*
 * When the loop must wake next, whatever else wakes it (the latch, curl's
 * sockets): a turn that sms_plan_turn() will want, the rate's next token for a
 * ready job, curl's timer, retention, the sweep, a standby we wait for.
 */
static Deadline
next_deadline(Worker *w, TimestampTz now)
{
	TurnPlan	plan;
	Deadline	d = {0, NULL};
	long		curl_ms = sms_http_timeout_ms();

	sms_plan_turn(w, now, false, &plan);
	if (plan.write_back || plan.send_limit > 0 || plan.lookup_limit > 0 ||
		plan.poll_limit > 0)
		return (Deadline) {now, "a turn of the database"};
	d = plan.later;
	deadline_consider(&d, TimestampTzPlusMilliseconds(now, WORKER_IDLE_MS), "the idle wait");
	if (w->ready.n > 0 && w->mode == WORKER_RUNNING && sms_free_slots(w) > 0)
		deadline_consider(&d, sms_bucket_next_token_at(&w->send_bucket, w->rate, now),
						  "sms.rate_limit's next token");
	if (w->polls_waiting.n > 0)
		deadline_consider(&d, Max(w->poll_hold_until,
								  sms_bucket_next_token_at(&w->poll_bucket,
														   sms_status_poll_rate, now)),
						  "sms.status_poll_rate's next token");
	if (curl_ms >= 0)
		deadline_consider(&d, TimestampTzPlusMilliseconds(now, curl_ms), "curl's timer");
	if (w->mode != WORKER_NO_EXTENSION)
	{
		if (sms_worker_slot == 0 && sms_retention_s > 0)
			deadline_consider(&d, w->next_retention, "retention");
		deadline_consider(&d, w->next_sweep, "the sweep for rows left in sending");
	}
	/* no one wakes us when the standby catches up: look now and then */
	if (!XLogRecPtrIsInvalid(w->unreplicated_claim))
		deadline_consider(&d, TimestampTzPlusMilliseconds(now, STANDBY_POLL_MS),
						  "the synchronous standby");
	return d;
}

/*
 * SIGTERM: take no new work, give the requests in flight a moment to
 * finish, and record every row truthfully: what finished as it finished,
 * what may have reached the provider as 'unknown', what cannot have as
 * 'pending'.
 */
static void
shut_down(Worker *w, WaitEventSet *set)
{
	TimestampTz deadline;
	WaitEvent	ev;
	bool		have_outbox = w->mode != WORKER_NO_EXTENSION;

	HOLD_INTERRUPTS();
	sms_worker_set_mode(w, WORKER_STOPPING);
	sms_abandon_ready(w);
	sms_end_waiting_polls(w);
	/* a standby that does not answer must not keep us from stopping */
	sms_commit_locally();

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   Min(sms_request_timeout_ms, SHUTDOWN_GRACE_MS));
	while (sms_http_in_flight() > 0 && GetCurrentTimestamp() < deadline)
	{
		TimestampTz now = GetCurrentTimestamp();
		Deadline	d = {deadline, "the end of the shutdown's grace"};
		long		curl_ms = sms_http_timeout_ms();

		if (curl_ms >= 0)
			deadline_consider(&d, TimestampTzPlusMilliseconds(now, curl_ms), "curl's timer");
		(void) WaitEventSetWait(set, ms_until(d.at, now), &ev, 1, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		sms_standby_new_pass();
		sms_drive_requests(w);
	}
	sms_abort_in_flight(w);
	/* polls whose requests finished in the grace wait no longer */
	sms_end_waiting_polls(w);

	/* the last write-back may wait for a row lock, until lock_timeout */
	RESUME_INTERRUPTS();
	if (have_outbox)
		sms_write_back_at_exit(w);
	proc_exit(1);
}

/*
 * Whatever postgresql.conf or ALTER DATABASE say: the claim must be durable
 * (on a synchronous standby too) before a message goes out; the worker's
 * short transactions are read committed and read-write; and a row lock held
 * by an application stalls the loop for one second at most (the turn is
 * retried), never until every request has timed out.
 */
static void
pin_session_settings(void)
{
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
}

/* Take this worker's slot in shared memory, where backends find its latch. */
static void
register_slot(void)
{
	SmsWorkerSlot *slot = &sms_shared->workers[sms_worker_slot];

	SpinLockAcquire(&sms_shared->mutex);
	slot->latch = MyLatch;
	slot->pid = MyProcPid;
	SpinLockRelease(&sms_shared->mutex);
	before_shmem_exit(worker_shmem_exit, (Datum) 0);
	/* anything committed before we registered our latch is claimed below */
	pg_atomic_write_u32(&slot->wakeup_requested, 0);
}

/*
 * Signals and shared state, at the start of one pass of the loop: another
 * worker's rows to look up, the sweep, and the wake-up of a committing
 * backend, taken only when it can be acted on now (else it stays set and is
 * seen once the queue has room again).  Returns whether we were woken.
 */
static bool
take_wakeups(Worker *w, TimestampTz now)
{
	SmsWorkerSlot *slot = &sms_shared->workers[sms_worker_slot];

	if (sms_worker_slot == 0 &&
		pg_atomic_read_u32(&sms_shared->unknown_rows_added) != 0)
	{
		pg_atomic_write_u32(&sms_shared->unknown_rows_added, 0);
		w->recheck_due = true;
	}
	if (w->mode != WORKER_NO_EXTENSION && now >= w->next_sweep)
	{
		w->recovery_pending = true;
		w->next_sweep = TimestampTzPlusMilliseconds(now, SWEEP_INTERVAL_MS);
	}
	if (w->mode == WORKER_NO_EXTENSION ||
		(w->mode == WORKER_RUNNING && w->ready.n < w->concurrency))
		return pg_atomic_exchange_u32(&slot->wakeup_requested, 0) != 0;
	return false;
}

/* A turn of the database if one is wanted, and the requests it started. */
static void
maybe_turn(Worker *w, TimestampTz now, bool woken)
{
	TurnPlan	plan;

	sms_plan_turn(w, now, woken, &plan);
	if (!plan.write_back && plan.send_limit == 0 && plan.lookup_limit == 0 &&
		plan.poll_limit == 0)
		return;
	elog(DEBUG2, "sms worker: turn: %d to write back, claim %d + %d lookups + %d polls",
		 w->done.n, plan.send_limit, plan.lookup_limit, plan.poll_limit);
	sms_database_turn(w, &plan);
	sms_start_ready(w, GetCurrentTimestamp());
	/* replies may already have come: collect them before sleeping */
	sms_drive_requests(w);
}

/* Sleep until next_deadline() or an event, then act on the signals. */
static void
wait_for_work(Worker *w, WaitEventSet *set)
{
	TimestampTz now = GetCurrentTimestamp();
	Deadline	d = next_deadline(w, now);
	long		timeout = ms_until(d.at, now);
	WaitEvent	events[4];

	elog(DEBUG3, "sms worker: sleeping %ld ms until %s", timeout, d.why);
	pgstat_report_activity(STATE_IDLE, NULL);
	(void) WaitEventSetWait(set, timeout, events, lengthof(events),
							PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	sms_standby_new_pass();

	if (ShutdownRequestPending || ProcDiePending)
		shut_down(w, set);
	/* a cancel between turns has no statement to cancel */
	QueryCancelPending = false;
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
		reload_settings(w);
}

void
sms_worker_main(Datum main_arg)
{
	Worker	   *w = &worker;
	WaitEventSet *set;
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
	pin_session_settings();

	w->mode = WORKER_NO_EXTENSION;
	w->lookup_alone_before = DT_NOBEGIN;
	w->more_pending = true;
	apply_settings(w);
	register_slot();
	sms_http_init(w->concurrency, sms_send_guard);

	set = sms_create_wait_event_set(3);
	AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	AddWaitEventToSet(set, WL_SOCKET_READABLE, sms_http_socket(), NULL, NULL);

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "sms worker loop",
									 ALLOCSET_DEFAULT_SIZES);

	ereport(LOG,
			(errmsg("sms worker started for database \"%s\"", sms_database)));
	show_mode(w);
	sms_settings_applied(MyStartTimestamp);

	/* the first turn looks at the outbox at once */
	{
		TurnPlan	first = {0};

		sms_database_turn(w, &first);
	}
	sms_start_ready(w, GetCurrentTimestamp());
	sms_drive_requests(w);

	for (;;)
	{
		TimestampTz now;

		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);

		now = GetCurrentTimestamp();
		sms_start_ready(w, now);
		maybe_turn(w, now, take_wakeups(w, now));
		sms_run_retention(w, now);
		wait_for_work(w, set);
		sms_drive_requests(w);
	}
}
