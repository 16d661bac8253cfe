/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The background worker: one event loop that claims due messages, keeps
 *	  up to sms.max_concurrency requests in flight, and writes outcomes back.
 *
 *	  Each turn of the loop waits in WaitEventSetWait for the latch (set by
 *	  committing backends, SIGHUP and SIGTERM), postmaster death and curl's
 *	  sockets; collects finished requests; and then, in one short
 *	  transaction, writes back their outcomes and claims as many due rows as
 *	  there are free slots.  The transaction commits before any of the new
 *	  requests goes out, so a row is durably 'sending' before the provider
 *	  can have seen it.
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

/* with nothing known to be due, look anyway this often (prepared xacts) */
#define IDLE_RECHECK_MS 60000
/* while paused, try one message this often to see if the cause is gone */
#define PAUSE_PROBE_MS 30000
/* lookups in flight at most: reconciliation must not flood the provider */
#define MAX_LOOKUPS_IN_FLIGHT 4
/* how often retention runs */
#define RETENTION_INTERVAL_MS 60000

static const SmsProvider *provider = &sms_twilio_provider;

/* finished jobs waiting for the write-back */
static SmsJob *done_head = NULL;
static SmsJob *done_tail = NULL;
static int	n_done = 0;

/* jobs whose requests are in flight */
static int	sends_in_flight = 0;
static int	lookups_in_flight = 0;

/* what the loop knows about the outbox */
static bool extension_present = false;
static bool more_due = true;	/* the last claim filled every free slot */
static TimestampTz next_due = 0;	/* earliest known future due time */

/* pause on account-wide errors */
static bool paused = false;
static char *pause_reason = NULL;
static TimestampTz probe_at = 0;
static const char *missing = NULL;	/* settings the provider lacks */

/* sms.rate_limit's token bucket */
static double tokens = 0;
static TimestampTz tokens_at = 0;

static TimestampTz next_retention = 0;

static void
worker_shmem_exit(int code, Datum arg)
{
	if (sms_shared == NULL)
		return;
	SpinLockAcquire(&sms_shared->mutex);
	sms_shared->worker_latch = NULL;
	sms_shared->worker_pid = 0;
	SpinLockRelease(&sms_shared->mutex);
	sms_set_condition("not running");
}

static void
update_condition(void)
{
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

static void
enter_pause(const char *reason)
{
	if (paused && strcmp(reason, pause_reason) == 0)
		return;
	if (pause_reason)
		pfree(pause_reason);
	pause_reason = MemoryContextStrdup(TopMemoryContext, reason);
	paused = true;
	probe_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), PAUSE_PROBE_MS);
	ereport(LOG,
			(errmsg("sms: sending paused: %s", reason),
			 errdetail("The provider refused a request for a reason that applies to every message, so no message is failed for it."),
			 errhint("Fix the account or the settings (sms.account_sid, sms.auth_token, sms.api_key_sid, sms.api_key_secret), then reload the configuration; the worker also retries one message every %d seconds.",
					 PAUSE_PROBE_MS / 1000)));
	update_condition();
}

static void
leave_pause(const char *why)
{
	if (!paused)
		return;
	paused = false;
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

static void
push_done(SmsJob *job)
{
	job->next = NULL;
	if (done_tail)
		done_tail->next = job;
	else
		done_head = job;
	done_tail = job;
	n_done++;
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
			provider->finish_send(job);
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

		if (job->outcome == OUTCOME_SENT && job->kind == JOB_SEND)
			leave_pause("a message was accepted");
		if (job->outcome == OUTCOME_PAUSE ||
			(job->kind == JOB_LOOKUP && job->pause_reason))
			enter_pause(job->pause_reason);
		push_done(job);
	}
}

/* The row's next state and schedule, from a finished job's outcome. */
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
				job->error_message = psprintf("gave up after %d attempts: %s",
											  job->attempts, job->error_message);
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
			break;
		case OUTCOME_RESEND:
			if (exhausted)
			{
				wb->new_state = "failed";
				job->error_message = psprintf("gave up after %d attempts: the provider has no such message",
											  job->attempts);
			}
			else
			{
				wb->new_state = "pending";
				wb->next_attempt_at = now;
			}
			break;
		case OUTCOME_LOOKUP_AGAIN:
		case OUTCOME_NONE:
			wb->new_state = "unknown";
			wb->next_attempt_at = backoff_until(job);
			break;
	}

	if (wb->next_attempt_at != 0 && (next_due == 0 || wb->next_attempt_at < next_due))
		next_due = wb->next_attempt_at;
}

static void
write_back_done(void)
{
	SmsWriteBack *wb;
	SmsJob	   *job;
	int			i = 0;

	if (n_done == 0)
		return;
	wb = palloc(sizeof(SmsWriteBack) * n_done);
	for (job = done_head; job; job = job->next)
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
	while (done_head)
	{
		SmsJob	   *next = done_head->next;

		sms_job_free(done_head);
		done_head = next;
	}
	done_tail = NULL;
	n_done = 0;
}

/* How many sends may start now under sms.rate_limit. */
static int
rate_allowance(int wanted, TimestampTz now)
{
	long		secs;
	int			usecs;

	if (sms_rate_limit <= 0)
		return wanted;
	if (tokens_at == 0)
		tokens = 1;
	else
	{
		TimestampDifference(tokens_at, now, &secs, &usecs);
		tokens += (secs + usecs / 1e6) * sms_rate_limit;
	}
	tokens = Min(tokens, (double) Max(sms_rate_limit, 1));
	tokens_at = now;
	return Min(wanted, (int) tokens);
}

/* Milliseconds until t, at least 0. */
static long
ms_until(TimestampTz t, TimestampTz now)
{
	if (t <= now)
		return 0;
	return (long) ((t - now + 999) / 1000);
}

/*
 * One transaction: write back what finished, then claim what can start.
 * Returns the jobs to start once it has committed.
 */
static SmsJob *
write_back_and_claim(bool claim, int send_slots, int lookup_slots)
{
	SmsJob	   *sends = NULL;
	SmsJob	   *lookups = NULL;
	SmsJob	   *tail;
	int			nsends = 0;
	int			nlookups = 0;

	if (!sms_outbox_begin())
	{
		/* no extension: nothing to write back to, nothing to claim */
		if (extension_present)
		{
			extension_present = false;
			update_condition();
		}
		free_done();
		return NULL;
	}
	if (!extension_present)
	{
		extension_present = true;
		more_due = true;
		sms_outbox_recover_inflight();
		update_condition();
	}

	write_back_done();

	if (claim)
	{
		TimestampTz now = GetCurrentTimestamp();

		if (send_slots > 0)
			sends = sms_outbox_claim(send_slots, &nsends);
		if (lookup_slots > 0)
			lookups = sms_outbox_claim_unknown(lookup_slots,
											   2 * sms_request_timeout_ms + sms_reconcile_grace_ms,
											   &nlookups);
		more_due = (send_slots > 0 && nsends == send_slots) ||
			(lookup_slots > 0 && nlookups == lookup_slots);
		if (!more_due)
		{
			TimestampTz due = sms_outbox_next_due();

			if (due != 0 && (next_due == 0 || due < next_due))
				next_due = due;
			/* due but not claimed (locked by someone): look again soon */
			if (next_due != 0 && next_due <= now)
				next_due = TimestampTzPlusMilliseconds(now, 100);
		}
		if (nsends > 0 && sms_rate_limit > 0)
			tokens -= nsends;
	}

	sms_outbox_commit();
	free_done();

	/* one list: sends first */
	if (sends == NULL)
		return lookups;
	for (tail = sends; tail->next; tail = tail->next)
		;
	tail->next = lookups;
	return sends;
}

static void
run_retention(TimestampTz now)
{
	int			batches = 0;
	int			n;

	if (sms_retention_s <= 0 || now < next_retention || !extension_present)
		return;
	next_retention = TimestampTzPlusMilliseconds(now, RETENTION_INTERVAL_MS);
	do
	{
		if (!sms_outbox_begin())
			return;
		n = sms_outbox_purge(sms_retention_s);
		sms_outbox_commit();
	} while (n > 0 && ++batches < 100);
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

	HOLD_INTERRUPTS();
	sms_set_condition("stopping");

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   Min(sms_request_timeout_ms, 2000));
	while (sms_http_in_flight() > 0)
	{
		TimestampTz now = GetCurrentTimestamp();
		long		timeout = ms_until(deadline, now);
		long		curl_timeout = sms_http_timeout_ms();

		if (timeout == 0)
			break;
		if (curl_timeout >= 0)
			timeout = Min(timeout, curl_timeout);
		(void) WaitEventSetWait(set, timeout, &ev, 1, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		sms_http_perform();
		collect_finished();
	}

	/* abandon the rest */
	{
		SmsJob	   *job;

		while ((job = sms_http_any_in_flight()) != NULL)
		{
			sms_http_abort(job);
			if (job->kind == JOB_SEND)
			{
				sends_in_flight--;
				if (job->request_sent)
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
				job->outcome = OUTCOME_LOOKUP_AGAIN;
			}
			push_done(job);
		}
	}

	if (extension_present && n_done > 0)
	{
		if (sms_outbox_begin())
		{
			write_back_done();
			sms_outbox_commit();
		}
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
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(sms_database, NULL, 0);
	sms_in_worker = true;

	SpinLockAcquire(&sms_shared->mutex);
	sms_shared->worker_latch = MyLatch;
	sms_shared->worker_pid = MyProcPid;
	SpinLockRelease(&sms_shared->mutex);
	before_shmem_exit(worker_shmem_exit, (Datum) 0);
	sms_set_condition("starting");

	/* anything committed before we registered our latch is claimed below */
	pg_atomic_write_u32(&sms_shared->wakeup_requested, 0);

	sms_http_init();
	missing = provider->missing_settings();

	set = CreateWaitEventSet(TopMemoryContext, 3);
	AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	AddWaitEventToSet(set, WL_SOCKET_READABLE, sms_http_socket(), NULL, NULL);

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "sms worker loop",
									 ALLOCSET_DEFAULT_SIZES);

	ereport(LOG,
			(errmsg("sms worker started for database \"%s\"", sms_database)));

	/* first turn: look at the outbox at once */
	extension_present = false;
	more_due = true;
	update_condition();

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		int			send_slots;
		int			lookup_slots;
		bool		claim;
		bool		woken;
		long		timeout;
		long		curl_timeout;
		SmsJob	   *jobs;
		SmsJob	   *next;
		bool		probing = false;

		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);

		/* how much can start now */
		send_slots = sms_max_concurrency - sends_in_flight - lookups_in_flight;
		send_slots = Max(send_slots, 0);
		lookup_slots = Min(send_slots, MAX_LOOKUPS_IN_FLIGHT - lookups_in_flight);
		lookup_slots = Max(lookup_slots, 0);
		if (missing)
			send_slots = lookup_slots = 0;
		else if (paused)
		{
			lookup_slots = 0;
			if (now >= probe_at && sms_http_in_flight() == 0)
			{
				send_slots = Min(send_slots, 1);
				probing = true;
			}
			else
				send_slots = 0;
		}
		send_slots = rate_allowance(send_slots, now);

		woken = false;
		if (send_slots + lookup_slots > 0 || !extension_present)
			woken = pg_atomic_exchange_u32(&sms_shared->wakeup_requested, 0) != 0;

		claim = (send_slots + lookup_slots > 0) &&
			(woken || more_due || (next_due != 0 && now >= next_due));
		if (!extension_present && woken)
			claim = true;

		if (claim || n_done > 0)
		{
			elog(DEBUG2, "sms worker: claim %d (woken %d, more_due %d), %d to write back, %d slots",
				 claim, woken, more_due, n_done, send_slots);
			if (claim)
				next_due = 0;
			if (probing)
				probe_at = TimestampTzPlusMilliseconds(now, PAUSE_PROBE_MS);
			jobs = write_back_and_claim(claim, send_slots, lookup_slots);
			for (; jobs; jobs = next)
			{
				next = jobs->next;
				jobs->next = NULL;
				start_job(jobs);
			}
			/* a reply may already be complete: collect it before sleeping */
			sms_http_perform();
			collect_finished();
		}

		run_retention(now);

		/* how long to sleep */
		now = GetCurrentTimestamp();
		timeout = IDLE_RECHECK_MS;
		if (!extension_present)
			timeout = IDLE_RECHECK_MS;
		else if (missing)
			timeout = IDLE_RECHECK_MS;
		else if (paused)
			timeout = ms_until(probe_at, now);
		else if (more_due && sms_max_concurrency > sms_http_in_flight())
			timeout = (sms_rate_limit > 0) ? Max(1000 / sms_rate_limit, 1) : 0;
		else if (next_due != 0)
			timeout = Min(timeout, ms_until(next_due, now));
		curl_timeout = sms_http_timeout_ms();
		if (curl_timeout >= 0)
			timeout = Min(timeout, curl_timeout);
		if (sms_retention_s > 0)
			timeout = Min(timeout, ms_until(next_retention, now));
		if (n_done > 0)
			timeout = 0;

		elog(DEBUG2, "sms worker: sleeping %ld ms (in flight %d, more_due %d, next_due in %ld ms)",
			 timeout, sms_http_in_flight(), more_due, next_due ? ms_until(next_due, now) : -1);
		pgstat_report_activity(STATE_IDLE, NULL);
		(void) WaitEventSetWait(set, timeout, events, lengthof(events),
								PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);

		if (ProcDiePending)
			shut_down(set);
		CHECK_FOR_INTERRUPTS();

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			sms_http_configure();
			missing = provider->missing_settings();
			/* the cause of a pause may have been fixed: try at once */
			if (paused)
				leave_pause("the configuration was reloaded");
			more_due = true;
			update_condition();
		}

		sms_http_perform();
		collect_finished();
	}
}
