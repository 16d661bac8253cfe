/*-------------------------------------------------------------------------
 *
 * outbox.c
 *	  The worker's statements on sms_outbox: claim, guarded write-back,
 *	  start-up recovery, reconciliation claims and retention.
 *
 *	  Each statement handles a whole batch (one UPDATE over unnest() of
 *	  arrays for the write-back), runs through a plan prepared once per
 *	  incarnation of the extension, and names its objects with their schema.
 *	  A transaction here never spans network I/O: the worker opens one,
 *	  writes back and claims, and commits before any request goes out.
 *
 *-------------------------------------------------------------------------
 */
#include "identity.h"
#include "outbox.h"
#include "outbox_sql.h"
#include "status.h"
#include "standby.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

/* the plans below serve this outbox (identity.c) */
static Oid	plans_extension_oid = InvalidOid;
static uint32 plans_generation = 0;
static SPIPlanPtr claim_plan;
static SPIPlanPtr claim_unknown_plan;
static SPIPlanPtr write_back_plan;
static SPIPlanPtr recover_plan;
static SPIPlanPtr next_due_plan;
static SPIPlanPtr purge_plan;

SPIPlanPtr
sms_prepare_plan(const char *sql, int nargs, Oid *argtypes, int cursor_options)
{
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, cursor_options);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s",
			 sql, SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

static SPIPlanPtr
prepare(const char *sql, int nargs, Oid *argtypes)
{
	return sms_prepare_plan(sql, nargs, argtypes, 0);
}

#define CLAIMED_COLUMNS \
	"o.id, o.attempts, o.priority, o.next_attempt_at, o.last_attempt_at, " \
	"o.to_number, o.from_number, o.body, o.media_urls"

/*
 * Claim the most urgent due rows for sending, and 'unknown' rows for a
 * lookup.  (Two statements: a send claim counts an attempt and moves the
 * row to 'sending'; a lookup claim only leases the row.  Both return the
 * same columns, turned into jobs by jobs_from_result().)
 */
static void
prepare_claim_plans(const char *s)
{
	Oid			claim_args[2] = {INT4OID, INT2OID};
	Oid			unknown_args[3] = {INT4OID, INT4OID, TIMESTAMPTZOID};

	/*
	 * Claim the most urgent due rows.  SKIP LOCKED lets sms_cancel(), the
	 * application's own updates and the other workers go on without waiting
	 * for us.  claimed_by names the worker, whose next start-up alone may
	 * take the row for one that went out.
	 */
	claim_plan = prepare(psprintf(
								  "WITH c AS ("
								  " SELECT id FROM %s.sms_outbox"
								  " WHERE state " EQ " 'pending' AND next_attempt_at " LE " " NOW
								  " ORDER BY priority DESC, next_attempt_at, id"
								  " LIMIT $1 FOR UPDATE SKIP LOCKED)"
								  " UPDATE %s.sms_outbox o"
								  " SET state = 'sending', attempts = o.attempts " PLUS " 1,"
								  " last_attempt_at = " NOW ", updated_at = " NOW ","
								  " claimed_by = $2"
								  " FROM c WHERE o.id " EQ " c.id"
								  " RETURNING " CLAIMED_COLUMNS, s, s),
						 2, claim_args);

	/*
	 * Rows whose outcome is unknown are leased for a while (next_attempt_at
	 * moves ahead), so a lookup in flight is not started twice; their state
	 * and attempts stay as they are.  One lookup lists one sender's
	 * messages: it takes the most urgent due row, and the due rows of its
	 * sender in the claim index's order; rows whose attempt began before $3
	 * are looked up alone (a batch could not list back to them).
	 */
	claim_unknown_plan = prepare(psprintf(
										  "WITH s AS ("
										  " SELECT id, from_number,"
										  " coalesce(last_attempt_at, '-infinity') " GE " $3 AS batched"
										  " FROM %s.sms_outbox"
										  " WHERE state " EQ " 'unknown' AND next_attempt_at " LE " " NOW
										  " ORDER BY priority DESC, next_attempt_at, id LIMIT 1),"
										  " c AS ("
										  " SELECT o.id FROM %s.sms_outbox o, s"
										  " WHERE o.state " EQ " 'unknown' AND o.next_attempt_at " LE " " NOW
										  " AND (o.id " EQ " s.id OR (s.batched"
										  " AND o.from_number " EQ " s.from_number"
										  " AND coalesce(o.last_attempt_at, '-infinity') " GE " $3))"
										  " ORDER BY o.priority DESC, o.next_attempt_at, o.id"
										  " LIMIT $1 FOR UPDATE OF o SKIP LOCKED)"
										  " UPDATE %s.sms_outbox o"
										  " SET next_attempt_at = " NOW " " PLUS " " MS_INTERVAL("$2")
										  " FROM c WHERE o.id " EQ " c.id"
										  " RETURNING " CLAIMED_COLUMNS, s, s, s),
								 3, unknown_args);
}

static void
prepare_write_back_plan(const char *s, bool delivery_columns)
{
	/*
	 * Version 1.1: when the provider's status last changed, and the first
	 * look at the delivery status of a message just sent, unless its status
	 * is final already or polling is off ($14: sms.status_poll_interval in
	 * seconds, 0 when off).
	 */
	const char *delivery_status = psprintf(
										   " status_changed_at = CASE WHEN r.status IS NOT NULL AND (o.status IS NULL"
										   " OR r.status " NE " o.status)"
										   " THEN " NOW " ELSE o.status_changed_at END,"
										   " status_poll_at = CASE WHEN $14 " GT " 0"
										   " AND r.new_state " EQ " 'sent' AND o.state " NE " 'sent'"
										   " AND (coalesce(r.status, o.status) " EQ " ANY (%s)) IS NOT TRUE"
										   " THEN " NOW " " PLUS " pg_catalog.make_interval(secs => $14)"
										   " ELSE o.status_poll_at END,",
										   sms_status_finals_sql());
	Oid			wb_args[14] = {INT8ARRAYOID, TEXTARRAYOID, INT4ARRAYOID,
		TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT4ARRAYOID,
		TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	TIMESTAMPTZARRAYOID, INT4OID};

	/*
	 * Every write-back is guarded by the state and attempt it expects: a late
	 * or repeated result can never overwrite a newer one.  Its plan (a
	 * primary key probe per element) is the same for any batch: always the
	 * generic one, rather than planning each batch's arrays anew.
	 */
	write_back_plan = sms_prepare_plan(psprintf(
									   "UPDATE %s.sms_outbox o SET"
									   " state = r.new_state::%s.sms_state,"
									   " attempts = r.new_attempts,"
									   " sid = coalesce(r.sid, o.sid),"
									   " status = coalesce(r.status, o.status),"
									   "%s"
									   " error_code = r.error_code,"
									   " error_message = r.error_message,"
									   " num_segments = coalesce(r.num_segments, o.num_segments),"
									   " price = coalesce(r.price::pg_catalog.numeric, o.price),"
									   " price_unit = coalesce(r.price_unit, o.price_unit),"
									   " next_attempt_at = coalesce(r.next_attempt_at, o.next_attempt_at),"
									   " sent_at = CASE WHEN r.new_state " EQ " 'sent'"
									   " THEN coalesce(o.sent_at, " NOW ") ELSE o.sent_at END,"
									   " updated_at = " NOW
									   " FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
									   " pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5),"
									   " pg_catalog.unnest($6), pg_catalog.unnest($7), pg_catalog.unnest($8),"
									   " pg_catalog.unnest($9), pg_catalog.unnest($10), pg_catalog.unnest($11),"
									   " pg_catalog.unnest($12), pg_catalog.unnest($13))"
									   " AS r(id, expected_state, expected_attempts, new_state,"
									   " new_attempts, sid, status, error_code, error_message,"
									   " num_segments, price, price_unit, next_attempt_at)"
									   " WHERE o.id " EQ " r.id"
									   " AND o.state " EQ " r.expected_state::%s.sms_state"
									   " AND o.attempts " EQ " r.expected_attempts", s, s,
									   delivery_columns ? delivery_status : "", s),
								   14, wb_args, CURSOR_OPT_GENERIC_PLAN);
}

static void
prepare_recover_plan(const char *s)
{
	Oid			recover_args[4] = {INT4OID, INT2OID, INT2OID, INT8ARRAYOID};

	/*
	 * A row in 'sending' that no request of ours is for may have gone out:
	 * it is 'unknown' until the provider is asked.  At start-up that is every
	 * row a worker left behind when it stopped; later, a row restored as it
	 * was dumped with the outbox's triggers disabled.  A worker takes only
	 * its own rows, less the ones it holds ($4): the other workers' are in
	 * flight.  The first also takes the rows of workers that no longer exist
	 * (after sms.workers was lowered: that needed a restart, so none of them
	 * runs) and rows of no worker.  A row is looked up once its attempt
	 * cannot be in flight any more, as a lookup's lease reckons it ($1:
	 * twice sms.request_timeout after the claim, which covers the moment a
	 * claimed row waits for a free request slot, and sms.reconcile_grace for
	 * the provider's list to show it): after a failover that took longer, at
	 * once.  (Claims held for the standby are claimed again when released,
	 * see worker_requests.c, so that no request leaves long after its claim.)
	 */
	recover_plan = prepare(psprintf(
									"UPDATE %s.sms_outbox SET state = 'unknown',"
									" next_attempt_at = GREATEST(" NOW ", coalesce(last_attempt_at, " NOW ")"
									" " PLUS " " MS_INTERVAL("$1") "),"
									" error_message = 'no request was in flight for this message: the worker"
									" stopped while sending it, or the row was restored in this state',"
									" updated_at = " NOW
									" WHERE state " EQ " 'sending'"
									" AND (claimed_by " EQ " $2 OR ($2 " EQ " 0 AND"
									" (claimed_by IS NULL OR claimed_by " GE " $3)))"
									" AND NOT id " EQ " ANY ($4)", s),
						   4, recover_args);
}

/* When rows fall due next, and retention. */
static void
prepare_due_and_purge_plans(const char *s)
{
	Oid			purge_args[1] = {INT4OID};

	/*
	 * The earliest due time of a pending or unknown row.  The claim index is
	 * ordered by priority first, so min() over it would read every pending
	 * row; instead skip from one priority to the next, taking the earliest
	 * row of each (a loose index scan), and there are few priorities.  The
	 * unknown rows are few: min() reads them all.
	 */
	next_due_plan = prepare(psprintf(
									 "WITH RECURSIVE p AS ("
									 " (SELECT priority, next_attempt_at FROM %s.sms_outbox"
									 " WHERE state " EQ " 'pending'"
									 " ORDER BY priority DESC, next_attempt_at LIMIT 1)"
									 " UNION ALL"
									 " SELECT x.priority, x.next_attempt_at FROM p,"
									 " LATERAL (SELECT priority, next_attempt_at FROM %s.sms_outbox"
									 " WHERE state " EQ " 'pending' AND priority " LT " p.priority"
									 " ORDER BY priority DESC, next_attempt_at LIMIT 1) x)"
									 " SELECT (SELECT pg_catalog.min(next_attempt_at) FROM p),"
									 " (SELECT pg_catalog.min(next_attempt_at) FROM %s.sms_outbox"
									 " WHERE state " EQ " 'unknown')", s, s, s),
							0, NULL);

	purge_plan = prepare(psprintf(
								  "DELETE FROM %s.sms_outbox o USING ("
								  " SELECT id FROM %s.sms_outbox"
								  " WHERE state " EQ " ANY ('{sent,failed,canceled}'::%s.sms_state[])"
								  " AND updated_at " LT " (" NOW " " MINUS
								  " pg_catalog.make_interval(secs => $1::pg_catalog.float8))"
								  " LIMIT 10000) f WHERE o.id " EQ " f.id", s, s, s),
						 1, purge_args);
}

static void
prepare_plans(const SmsOutbox *outbox)
{
	const char *s = quote_identifier(outbox->nspname);

	if (claim_plan)
	{
		SPI_freeplan(claim_plan);
		SPI_freeplan(claim_unknown_plan);
		SPI_freeplan(write_back_plan);
		SPI_freeplan(recover_plan);
		SPI_freeplan(next_due_plan);
		SPI_freeplan(purge_plan);
	}
	/* (one that fails to prepare leaves none to free twice) */
	claim_plan = claim_unknown_plan = write_back_plan = NULL;
	recover_plan = next_due_plan = purge_plan = NULL;
	plans_generation = 0;
	prepare_claim_plans(s);
	prepare_write_back_plan(s, outbox->delivery_columns);
	prepare_recover_plan(s);
	prepare_due_and_purge_plans(s);
	sms_outbox_status_prepare(outbox, s);
	plans_extension_oid = outbox->extoid;
	plans_generation = outbox->generation;
}

/*
 * Start a transaction for the worker's statements.  Returns false, with no
 * transaction open, if the extension does not exist (yet, or any more) in
 * this database.
 */
bool
sms_outbox_begin(void)
{
	const SmsOutbox *outbox;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());

	outbox = sms_outbox(true);
	if (outbox == NULL)
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
		return false;
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (outbox->generation != plans_generation)
		prepare_plans(outbox);

	pgstat_report_activity(STATE_RUNNING, "sms: claiming and writing back");
	return true;
}

/* The extension whose outbox the current plans serve. */
Oid
sms_outbox_extension_oid(void)
{
	return plans_extension_oid;
}

/*
 * Commit the worker's transaction; returns where its commit record ends (see
 * standby.c: the rows it claimed go out once a synchronous standby has it).
 */
XLogRecPtr
sms_outbox_commit(void)
{
	XLogRecPtr	lsn;

	SPI_finish();
	PopActiveSnapshot();
	lsn = sms_commit_claims();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return lsn;
}

/*
 * Make this worker's rows in 'sending' that it holds no job for (held: the
 * ids of the rows it claimed and has not written back) 'unknown'.
 */
int
sms_outbox_recover_inflight(int worker, int nworkers, const int64 *held, int nheld)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(nheld, 1));
	Datum		args[4];

	for (int i = 0; i < nheld; i++)
		elems[i] = Int64GetDatum(held[i]);
	args[0] = Int32GetDatum(2 * sms_request_timeout_ms + sms_reconcile_grace_ms);
	args[1] = Int16GetDatum(worker);
	args[2] = Int16GetDatum(nworkers);
	args[3] = PointerGetDatum(construct_array(elems, nheld, INT8OID, sizeof(int64),
											  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (SPI_execute_plan(recover_plan, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not recover rows left in sending");
	return (int) SPI_processed;
}

static char *
text_column(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);
	char	   *s;

	if (isnull)
		return NULL;
	s = TextDatumGetCString(d);
	/* the provider speaks UTF-8 whatever the database encoding */
	return pg_server_to_any(s, strlen(s), PG_UTF8);
}

static int
compare_jobs(const void *a, const void *b)
{
	const SmsJob *ja = *(SmsJob *const *) a;
	const SmsJob *jb = *(SmsJob *const *) b;

	if (ja->priority != jb->priority)
		return ja->priority > jb->priority ? -1 : 1;
	if (ja->due != jb->due)
		return ja->due < jb->due ? -1 : 1;
	return ja->id < jb->id ? -1 : (ja->id > jb->id);
}

/*
 * Turn the rows a claim returned into jobs, most urgent first (RETURNING
 * does not keep the claim's order).
 */
static SmsJob *
jobs_from_result(SmsJobKind kind, int *nclaimed)
{
	int			n = (int) SPI_processed;
	TupleDesc	desc = SPI_tuptable->tupdesc;
	SmsJob	  **arr;
	SmsJob	   *head = NULL;
	int			i;

	*nclaimed = n;
	if (n == 0)
		return NULL;

	arr = palloc(n * sizeof(SmsJob *));
	for (i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		SmsJob	   *job = sms_job_create(kind);
		MemoryContext old = MemoryContextSwitchTo(job->cxt);
		bool		isnull;
		Datum		d;

		job->extension_oid = plans_extension_oid;
		job->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		job->attempts = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
		job->priority = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
		job->due = DatumGetTimestampTz(SPI_getbinval(tup, desc, 4, &isnull));
		d = SPI_getbinval(tup, desc, 5, &isnull);
		job->last_attempt_at = isnull ? 0 : DatumGetTimestampTz(d);
		job->to_number = text_column(tup, desc, 6);
		job->from_number = text_column(tup, desc, 7);
		job->body = text_column(tup, desc, 8);

		d = SPI_getbinval(tup, desc, 9, &isnull);
		if (!isnull)
		{
			Datum	   *elems;
			bool	   *nulls;
			int			j;

			deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false,
							  TYPALIGN_INT, &elems, &nulls, &job->nmedia);
			job->media_urls = palloc(sizeof(char *) * Max(job->nmedia, 1));
			for (j = 0; j < job->nmedia; j++)
				job->media_urls[j] = nulls[j] ? "" : TextDatumGetCString(elems[j]);
		}
		MemoryContextSwitchTo(old);
		arr[i] = job;
	}

	qsort(arr, n, sizeof(SmsJob *), compare_jobs);
	for (i = n - 1; i >= 0; i--)
	{
		arr[i]->next = head;
		head = arr[i];
	}
	pfree(arr);
	return head;
}

SmsJob *
sms_outbox_claim(int limit, int worker, int *nclaimed)
{
	Datum		args[2] = {Int32GetDatum(limit), Int16GetDatum(worker)};

	if (SPI_execute_plan(claim_plan, args, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not claim messages");
	return jobs_from_result(JOB_SEND, nclaimed);
}

SmsJob *
sms_outbox_claim_unknown(int limit, int lease_ms, TimestampTz alone_before,
						 int *nclaimed)
{
	Datum		args[3] = {Int32GetDatum(limit), Int32GetDatum(lease_ms),
	TimestampTzGetDatum(alone_before)};

	if (SPI_execute_plan(claim_unknown_plan, args, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not claim messages to reconcile");
	return jobs_from_result(JOB_LOOKUP, nclaimed);
}

/* text Datum for a UTF-8 string from the provider, or NULL */
Datum
sms_provider_text(const char *s, bool *isnull)
{
	char	   *conv;

	*isnull = (s == NULL);
	if (s == NULL)
		return (Datum) 0;
	if (!pg_verify_mbstr(PG_UTF8, s, strlen(s), true))
		s = "(the provider's reply was not valid UTF-8)";
	conv = pg_any_to_server(s, strlen(s), PG_UTF8);
	return CStringGetTextDatum(conv);
}

/*
 * Record the outcomes of a batch of jobs in one UPDATE.  Returns the number
 * of rows changed; a row whose state or attempts moved on meanwhile is left
 * alone.
 */
int
sms_outbox_write_back(SmsWriteBack *wb, int n)
{
	Datum	   *cols[13];
	bool	   *nulls[13];
	Oid			elemtypes[13] = {INT8OID, TEXTOID, INT4OID, TEXTOID, INT4OID,
		TEXTOID, TEXTOID, INT4OID, TEXTOID, INT4OID, TEXTOID, TEXTOID,
	TIMESTAMPTZOID};
	Datum		args[14];
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int			c,
				i;

	if (n == 0)
		return 0;

	for (c = 0; c < 13; c++)
	{
		cols[c] = palloc(n * sizeof(Datum));
		nulls[c] = palloc0(n * sizeof(bool));
	}

	for (i = 0; i < n; i++)
	{
		const SmsJob *job = wb[i].job;

		cols[0][i] = Int64GetDatum(wb[i].id);
		cols[1][i] = CStringGetTextDatum(wb[i].expected_state);
		cols[2][i] = Int32GetDatum(wb[i].expected_attempts);
		cols[3][i] = CStringGetTextDatum(wb[i].new_state);
		cols[4][i] = Int32GetDatum(wb[i].new_attempts);
		cols[5][i] = sms_provider_text(job->sid, &nulls[5][i]);
		cols[6][i] = sms_provider_text(job->status, &nulls[6][i]);
		cols[7][i] = Int32GetDatum(job->error_code);
		nulls[7][i] = (job->error_code == 0);
		cols[8][i] = sms_provider_text(wb[i].error_message, &nulls[8][i]);
		cols[9][i] = Int32GetDatum(job->num_segments);
		nulls[9][i] = (job->num_segments < 0);
		cols[10][i] = sms_provider_text(job->price, &nulls[10][i]);
		cols[11][i] = sms_provider_text(job->price_unit, &nulls[11][i]);
		cols[12][i] = TimestampTzGetDatum(wb[i].next_attempt_at);
		nulls[12][i] = (wb[i].next_attempt_at == 0);
	}

	for (c = 0; c < 13; c++)
	{
		int16		typlen;
		bool		typbyval;
		char		typalign;

		get_typlenbyvalalign(elemtypes[c], &typlen, &typbyval, &typalign);
		args[c] = PointerGetDatum(construct_md_array(cols[c], nulls[c], 1,
													 dims, lbs, elemtypes[c],
													 typlen, typbyval, typalign));
	}

	args[13] = Int32GetDatum(sms_status_poll ? sms_status_poll_interval_s : 0);
	if (SPI_execute_plan(write_back_plan, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not write back message outcomes");
	return (int) SPI_processed;
}

/*
 * When the next pending row and the next unknown row fall due; 0 for none.
 */
void
sms_outbox_next_due(TimestampTz *pending_due, TimestampTz *unknown_due)
{
	bool		isnull;
	Datum		d;

	*pending_due = *unknown_due = 0;
	/* not read-only: it must see this transaction's own write-back */
	if (SPI_execute_plan(next_due_plan, NULL, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		return;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
		*pending_due = DatumGetTimestampTz(d);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	if (!isnull)
		*unknown_due = DatumGetTimestampTz(d);
}

/* Delete up to one batch of finished rows older than the retention. */
int
sms_outbox_purge(int retention_s)
{
	Datum		arg = Int32GetDatum(retention_s);

	if (SPI_execute_plan(purge_plan, &arg, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete finished messages");
	return (int) SPI_processed;
}
