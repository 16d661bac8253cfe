/*-------------------------------------------------------------------------
 *
 * shared.c
 *	  What the workers and the backends that queue messages share: the
 *	  workers' slots in shared memory, the wake-up at commit, and the first
 *	  worker's condition as sms_stats shows it.
 *
 *	  A backend whose transaction queued a message sets each worker's latch
 *	  when it commits; a flag per worker coalesces the wake-ups of many
 *	  committing backends into one, and the worker clears it just before it
 *	  claims.  The condition is written by the first worker on transitions;
 *	  what a commit waiting for a synchronous standby adds to it is computed
 *	  when it is read.
 *
 *-------------------------------------------------------------------------
 */
#include "sms.h"

#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

PG_FUNCTION_INFO_V1(sms_worker_condition);
PG_FUNCTION_INFO_V1(sms_settings_applied_at);

SmsShared  *sms_shared = NULL;

/* set in a worker to its slot (0 for the first): its updates wake nobody */
int			sms_worker_slot = -1;

/* the slots to make (sms.workers, read once at start-up) */
static int	shared_workers = 0;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* wake the workers when the current transaction commits */
static bool wake_at_commit = false;
static bool xact_callback_registered = false;

static Size
shared_size(void)
{
	return add_size(offsetof(SmsShared, workers),
					mul_size(shared_workers, sizeof(SmsWorkerSlot)));
}

static void
sms_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(shared_size()));
}

static void
sms_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	sms_shared = ShmemInitStruct("sms", shared_size(), &found);
	if (!found)
	{
		memset(sms_shared, 0, shared_size());
		SpinLockInit(&sms_shared->mutex);
		strlcpy(sms_shared->condition, "not running", SMS_CONDITION_LEN);
		sms_shared->nworkers = shared_workers;
		pg_atomic_init_u32(&sms_shared->unknown_rows_added, 0);
		for (int i = 0; i < shared_workers; i++)
		{
			pg_atomic_init_u32(&sms_shared->workers[i].wakeup_requested, 0);
			pg_atomic_init_u64(&sms_shared->workers[i].standby_wait_since, 0);
			pg_atomic_init_u64(&sms_shared->workers[i].claims_held_since, 0);
			pg_atomic_init_u64(&sms_shared->workers[i].settings_applied_at, 0);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/* From _PG_init: ask for the shared memory of nworkers workers. */
void
sms_shared_request(int nworkers)
{
	shared_workers = nworkers;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = sms_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = sms_shmem_startup;
}

/*
 * Set each worker's latch, unless a wake-up is already on its way to it: the
 * flag coalesces the wake-ups of many committing backends into one, and the
 * worker clears it just before it claims.  Called in a worker, it wakes the
 * others.
 */
void
sms_wake_workers(void)
{
	if (sms_shared == NULL)
		return;

	for (int i = 0; i < sms_shared->nworkers; i++)
	{
		SmsWorkerSlot *slot = &sms_shared->workers[i];

		if (i == sms_worker_slot)
			continue;
		if (pg_atomic_exchange_u32(&slot->wakeup_requested, 1) != 0)
			continue;
		sms_set_worker_latch(i);
	}
}

/* Set the latch of the worker in slot i, if it runs. */
void
sms_set_worker_latch(int i)
{
	Latch	   *latch;

	SpinLockAcquire(&sms_shared->mutex);
	latch = sms_shared->workers[i].latch;
	SpinLockRelease(&sms_shared->mutex);

	if (latch != NULL)
		SetLatch(latch);
}

static void
sms_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (wake_at_commit)
				sms_wake_workers();
			wake_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			/* a prepared transaction is found by the worker's idle check */
			wake_at_commit = false;
			break;
		default:
			break;
	}
}

void
sms_wake_worker_at_commit(void)
{
	if (sms_worker_slot >= 0 || wake_at_commit)
		return;
	if (!xact_callback_registered)
	{
		RegisterXactCallback(sms_xact_callback, NULL);
		xact_callback_registered = true;
	}
	wake_at_commit = true;
}

/*
 * Record what the worker is doing, for sms_stats.  The condition only
 * changes on transitions, so the time it last changed is kept too.
 */
void
sms_set_condition(const char *fmt,...)
{
	char		buf[SMS_CONDITION_LEN];
	va_list		ap;

	if (sms_shared == NULL)
		return;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);

	SpinLockAcquire(&sms_shared->mutex);
	if (strcmp(buf, sms_shared->condition) != 0)
	{
		strlcpy(sms_shared->condition, buf, SMS_CONDITION_LEN);
		sms_shared->condition_since = GetCurrentTimestamp();
	}
	SpinLockRelease(&sms_shared->mutex);
}

/*
 * Since when a worker has waited for a synchronous standby, if it has for a
 * while; 0 if none has.  A worker waits while it holds claims the standby
 * lacks, or while its commit waits in SyncRep: every commit waits a moment
 * (for the disk, for a healthy standby), so only a wait of a second or more
 * is worth reporting.
 */
static TimestampTz
standby_wait_since(void)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz oldest = 0;

	for (int i = 0; i < sms_shared->nworkers; i++)
	{
		SmsWorkerSlot *slot = &sms_shared->workers[i];
		TimestampTz since = (TimestampTz) pg_atomic_read_u64(&slot->standby_wait_since);
		TimestampTz held = (TimestampTz) pg_atomic_read_u64(&slot->claims_held_since);
		int			pid = slot->pid;
		PGPROC	   *proc;

		if (pid == 0)
			continue;
		if (since == 0 || now - since < USECS_PER_SEC ||
			(proc = BackendPidGetProc(pid)) == NULL ||
			proc->wait_event_info != WAIT_EVENT_SYNC_REP)
			since = 0;
		if (held != 0 && (since == 0 || held < since))
			since = held;
		if (since == 0)
			continue;
		if (oldest == 0 || since < oldest)
			oldest = since;
	}
	return oldest;
}

/*
 * The worker's process id and condition, as sms_stats shows them.
 */
Datum
sms_worker_condition(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	char		condition[SMS_CONDITION_LEN];
	int			pid;
	TimestampTz since;
	TimestampTz waiting_since;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	SpinLockAcquire(&sms_shared->mutex);
	strlcpy(condition, sms_shared->condition, sizeof(condition));
	pid = sms_shared->workers[0].pid;
	since = sms_shared->condition_since;
	SpinLockRelease(&sms_shared->mutex);

	waiting_since = standby_wait_since();
	if (waiting_since != 0)
	{
		strlcpy(condition, "waiting for synchronous standby", sizeof(condition));
		since = waiting_since;
	}

	if (pid != 0)
		values[0] = Int32GetDatum(pid);
	else
		nulls[0] = true;
	values[1] = CStringGetTextDatum(condition);
	if (since != 0)
		values[2] = TimestampTzGetDatum(since);
	else
		nulls[2] = true;

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * The worker has applied the configuration as it was at read_at (when it
 * began to read it: a change saved later may have been missed), at start
 * and after each SIGHUP, once everything that depends on the settings
 * follows them.
 */
void
sms_settings_applied(TimestampTz read_at)
{
	pg_atomic_write_u64(&sms_shared->workers[sms_worker_slot].settings_applied_at,
						(uint64) read_at);
}

/*
 * When every running worker had last applied the configuration, NULL if no
 * worker runs: a reload signaled before that time is in effect in all of
 * them, so whoever reloads can wait until it is.
 */
Datum
sms_settings_applied_at(PG_FUNCTION_ARGS)
{
	TimestampTz oldest = 0;

	for (int i = 0; i < sms_shared->nworkers; i++)
	{
		SmsWorkerSlot *slot = &sms_shared->workers[i];
		TimestampTz at = (TimestampTz) pg_atomic_read_u64(&slot->settings_applied_at);

		if (slot->pid == 0 || at == 0)
			continue;
		if (oldest == 0 || at < oldest)
			oldest = at;
	}
	if (oldest == 0)
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(oldest);
}
