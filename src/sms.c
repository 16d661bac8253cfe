/*-------------------------------------------------------------------------
 *
 * sms.c
 *	  Module start-up: settings, the shared memory request (see shared.c)
 *	  and the background workers' registration, plus the small SQL
 *	  functions about the module itself.
 *
 *-------------------------------------------------------------------------
 */
#include "sms.h"
#include "settings_check.h"

#include <ctype.h>

#include "access/htup_details.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

PG_MODULE_MAGIC;

char	   *sms_database = NULL;
int			sms_provider = SMS_PROVIDER_TWILIO;
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
bool		sms_status_poll = true;
int			sms_status_poll_interval_s = 60;
int			sms_status_poll_rate = 5;
char	   *sms_status_callback_url = NULL;

static emit_log_hook_type prev_emit_log_hook = NULL;

void		_PG_init(void);

PG_FUNCTION_INFO_V1(sms_check_install);

static bool
check_sid_setting(char **newval, const char *prefix, const char *what)
{
	if (*newval == NULL || **newval == '\0' || sms_is_sid(*newval, prefix))
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

/* the providers a module exists for (provider.h) */
static const struct config_enum_entry provider_options[] = {
	{"twilio", SMS_PROVIDER_TWILIO, false},
	{NULL, 0, false}
};

/* Where and as whom the worker sends: the provider and its account. */
static void
define_provider_settings(void)
{
	DefineCustomStringVariable("sms.database",
							   "Database whose sms_outbox the background worker serves.",
							   NULL,
							   &sms_database,
							   "postgres",
							   PGC_POSTMASTER,
							   0,
							   NULL, NULL, NULL);

	DefineCustomEnumVariable("sms.provider",
							 "Provider whose API the worker sends to.",
							 NULL,
							 &sms_provider,
							 SMS_PROVIDER_TWILIO,
							 provider_options,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

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

	DefineCustomStringVariable("sms.ca_file",
							   "File of CA certificates to verify the provider with, instead of the system's.",
							   NULL,
							   &sms_ca_file,
							   "",
							   PGC_SIGHUP,
							   0,
							   sms_check_ca_file, NULL, NULL);
}

/* How the workers send: their number, their pace, and retries. */
static void
define_sending_settings(void)
{
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
}

/* What the workers keep and how many run. */
static void
define_worker_settings(void)
{
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
}

/* How the delivery status of sent messages is followed (version 1.1). */
static void
define_delivery_settings(void)
{
	DefineCustomBoolVariable("sms.status_poll",
							 "Asks the provider for the delivery status of sent messages not final yet.",
							 NULL,
							 &sms_status_poll,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("sms.status_poll_interval",
							"The first look at a message's delivery status after it was sent; later looks come further apart.",
							NULL,
							&sms_status_poll_interval_s,
							60, 1, 86400,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sms.status_poll_rate",
							"Requests per second at most when polling delivery statuses, beside sms.rate_limit's sends.",
							"Each request (a page of up to 1000 listed messages, or one message) counts once.",
							&sms_status_poll_rate,
							5, 1, 1000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomStringVariable("sms.status_callback_url",
							   "URL the provider POSTs status changes to (StatusCallback); empty for none.",
							   NULL,
							   &sms_status_callback_url,
							   "",
							   PGC_SIGHUP,
							   0,
							   sms_check_status_callback_url, NULL, NULL);
}

static void
define_settings(void)
{
	define_provider_settings();
	define_sending_settings();
	define_worker_settings();
	define_delivery_settings();
	MarkGUCPrefixReserved("sms");
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

	sms_shared_request(sms_workers);

	register_workers();
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
