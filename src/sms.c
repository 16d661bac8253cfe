/*-------------------------------------------------------------------------
 *
 * sms.c
 *	  Module start-up: settings, shared memory and the background worker's
 *	  registration, plus the small SQL functions about the module itself.
 *
 *-------------------------------------------------------------------------
 */
#include "sms.h"
#include "settings_check.h"

#include <ctype.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

PG_MODULE_MAGIC;

char	   *sms_database = NULL;
char	   *sms_provider = NULL;
char	   *sms_api_url = NULL;
char	   *sms_account_sid = NULL;
char	   *sms_auth_token = NULL;
char	   *sms_api_key_sid = NULL;
char	   *sms_api_key_secret = NULL;
int			sms_max_concurrency = 32;
int			sms_rate_limit = 0;
int			sms_request_timeout_ms = 10000;
int			sms_max_attempts = 10;
int			sms_retry_base_ms = 1000;
int			sms_retry_max_ms = 600000;
int			sms_reconcile_grace_ms = 5000;
int			sms_reconcile_rate = 10;
char	   *sms_ca_file = NULL;
int			sms_retention_s = 0;
int			sms_workers = 1;

SmsShared  *sms_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static emit_log_hook_type prev_emit_log_hook = NULL;

void		_PG_init(void);

PG_FUNCTION_INFO_V1(sms_check_install);
PG_FUNCTION_INFO_V1(sms_worker_condition);

/* True if s is prefix followed by exactly 32 hexadecimal digits. */
static bool
is_twilio_sid(const char *s, const char *prefix)
{
	size_t		plen = strlen(prefix);

	if (strncmp(s, prefix, plen) != 0 || strlen(s) != plen + 32)
		return false;
	for (s += plen; *s; s++)
		if (!isxdigit((unsigned char) *s))
			return false;
	return true;
}

static bool
check_sid_setting(char **newval, const char *prefix, const char *what)
{
	if (*newval == NULL || **newval == '\0' || is_twilio_sid(*newval, prefix))
		return true;
	GUC_check_errdetail("%s must be \"%s\" followed by 32 hexadecimal digits.",
						what, prefix);
	return false;
}

static bool
check_account_sid(char **newval, void **extra, GucSource source)
{
	return check_sid_setting(newval, "AC", "An account SID");
}

static bool
check_api_key_sid(char **newval, void **extra, GucSource source)
{
	return check_sid_setting(newval, "SK", "An API key SID");
}

static bool
check_provider(char **newval, void **extra, GucSource source)
{
	if (*newval != NULL && strcmp(*newval, "twilio") == 0)
		return true;
	GUC_check_errdetail("The only provider supported is \"twilio\".");
	return false;
}

static void
define_settings(void)
{
	DefineCustomStringVariable("sms.database",
							   "Database whose sms_outbox the background worker serves.",
							   NULL,
							   &sms_database,
							   "postgres",
							   PGC_POSTMASTER,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("sms.provider",
							   "Provider whose API the worker sends to.",
							   NULL,
							   &sms_provider,
							   "twilio",
							   PGC_SIGHUP,
							   0,
							   check_provider, NULL, NULL);

	DefineCustomStringVariable("sms.api_url",
							   "Base URL of the provider's REST API.",
							   NULL,
							   &sms_api_url,
							   "https://api.twilio.com",
							   PGC_SIGHUP,
							   0,
							   sms_check_api_url, NULL, NULL);

	DefineCustomStringVariable("sms.account_sid",
							   "Provider account SID (AC followed by 32 hex digits).",
							   NULL,
							   &sms_account_sid,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   check_account_sid, NULL, NULL);

	/*
	 * Secrets: GUC_SUPERUSER_ONLY hides them from SHOW and pg_settings for
	 * everybody but superusers, and they have no check hook, so no error
	 * message can ever quote them.
	 */
	DefineCustomStringVariable("sms.auth_token",
							   "Provider auth token.",
							   NULL,
							   &sms_auth_token,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("sms.api_key_sid",
							   "Provider API key SID (SK followed by 32 hex digits), used instead of the auth token when set.",
							   NULL,
							   &sms_api_key_sid,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   check_api_key_sid, NULL, NULL);

	DefineCustomStringVariable("sms.api_key_secret",
							   "Provider API key secret.",
							   NULL,
							   &sms_api_key_secret,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("sms.max_concurrency",
							"Requests the worker keeps in flight at once.",
							NULL,
							&sms_max_concurrency,
							32, 1, 1024,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sms.rate_limit",
							"Messages sent per second at most; 0 for no limit.",
							NULL,
							&sms_rate_limit,
							0, 0, 1000000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sms.request_timeout",
							"Time allowed for one request to the provider.",
							NULL,
							&sms_request_timeout_ms,
							10000, 100, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sms.max_attempts",
							"Requests made for one message before it is failed.",
							NULL,
							&sms_max_attempts,
							10, 1, 1000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sms.retry_base",
							"Smallest backoff between attempts.",
							NULL,
							&sms_retry_base_ms,
							1000, 1, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sms.retry_max",
							"Largest backoff between attempts.",
							NULL,
							&sms_retry_max_ms,
							600000, 1, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sms.reconcile_grace",
							"Time to wait before asking the provider about a message whose outcome is unknown.",
							NULL,
							&sms_reconcile_grace_ms,
							5000, 0, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sms.reconcile_rate",
							"Lookups per second at most when reconciling messages whose outcome is unknown.",
							NULL,
							&sms_reconcile_rate,
							10, 1, 10000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomStringVariable("sms.ca_file",
							   "File of CA certificates to verify the provider with, instead of the system's.",
							   NULL,
							   &sms_ca_file,
							   "",
							   PGC_SIGHUP,
							   0,
							   sms_check_ca_file, NULL, NULL);

	DefineCustomIntVariable("sms.retention",
							"Age after which finished messages are deleted; 0 keeps them.",
							NULL,
							&sms_retention_s,
							0, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sms.workers",
							"Background workers that send, each with its share of the requests in flight and of the rate.",
							NULL,
							&sms_workers,
							1, 1, SMS_MAX_WORKERS,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("sms");
}

static Size
shared_size(void)
{
	return add_size(offsetof(SmsShared, workers),
					mul_size(sms_workers, sizeof(SmsWorkerSlot)));
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
		sms_shared->nworkers = sms_workers;
		pg_atomic_init_u32(&sms_shared->unknown_rows_added, 0);
		for (int i = 0; i < sms_workers; i++)
		{
			pg_atomic_init_u32(&sms_shared->workers[i].wakeup_requested, 0);
			pg_atomic_init_u64(&sms_shared->workers[i].standby_wait_since, 0);
			pg_atomic_init_u64(&sms_shared->workers[i].claims_held_since, 0);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

static void
register_workers(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	/* never on a standby: the outbox is read-only there */
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	strlcpy(worker.bgw_library_name, "sms", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "sms_worker_main", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "sms worker", BGW_MAXLEN);
	for (int i = 0; i < sms_workers; i++)
	{
		/* the first keeps the plain name that a single worker has */
		if (i == 0)
			strlcpy(worker.bgw_name, "sms worker", BGW_MAXLEN);
		else
			snprintf(worker.bgw_name, BGW_MAXLEN, "sms worker %d", i + 1);
		worker.bgw_main_arg = Int32GetDatum(i);
		RegisterBackgroundWorker(&worker);
	}
}

/*
 * Keep the values of secret settings out of the server log (redact.c),
 * before any other hook sees the report.
 */
static void
sms_emit_log_hook(ErrorData *edata)
{
	sms_redact_log_event(edata);

	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

void
_PG_init(void)
{
	/*
	 * The worker, its shared memory and its settings exist only when the
	 * server loads the library at start-up; loaded any other way (CREATE
	 * EXTENSION, LOAD), say what to do instead of half-working.
	 */
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("sms must be loaded via shared_preload_libraries"),
				 errdetail("The background worker that sends messages starts only when the server loads the library at start-up."),
				 errhint("Add sms to shared_preload_libraries in postgresql.conf and restart the server.")));

	define_settings();

	/*
	 * PostgreSQL only logs a background worker it has no slot for; a worker
	 * that silently never starts would keep its share of the sending.
	 */
	if (sms_workers > max_worker_processes)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sms.workers (%d) is more than max_worker_processes (%d)",
						sms_workers, max_worker_processes),
				 errhint("Lower sms.workers, or raise max_worker_processes, which parallel queries and other extensions' workers also use.")));

	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = sms_emit_log_hook;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = sms_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = sms_shmem_startup;

	register_workers();
}

/*
 * The schema an extension was created in (PostgreSQL 15 keeps its own
 * get_extension_schema() private).
 */
Oid
sms_extension_schema(Oid extoid)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	Oid			nspid = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(extoid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		nspid = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	if (!OidIsValid(nspid))
		elog(ERROR, "could not find the schema of extension %u", extoid);
	return nspid;
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
 * Called by the install script: fail early, with a hint that says what to
 * set, where the worker could never deliver what this database queues.
 */
Datum
sms_check_install(PG_FUNCTION_ARGS)
{
	const char *dbname = get_database_name(MyDatabaseId);

	/* (loaded any other way than at start-up, _PG_init has refused already) */
	if (dbname == NULL || strcmp(dbname, sms_database) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension sms can only be created in database \"%s\"",
						sms_database),
				 errdetail("The background worker serves only the database named by sms.database."),
				 errhint("Create the extension in database \"%s\", or set sms.database = '%s' in postgresql.conf and restart the server.",
						 sms_database, dbname ? dbname : "")));

	/* the worker starts serving this database when CREATE EXTENSION commits */
	sms_wake_worker_at_commit();

	PG_RETURN_VOID();
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
