/*-------------------------------------------------------------------------
 *
 * outbox_status.c
 *	  The worker's statements for polling delivery statuses (version 1.1):
 *	  claim the due rows of one sender, write back what a poll learnt, and
 *	  find when the next poll falls due.
 *
 *	  A row is due while status_poll_at (partial index) is past.  A claim
 *	  leases the rows it takes by moving status_poll_at ahead, as a lookup's
 *	  claim does with next_attempt_at; the write-back sets the next look, or
 *	  NULL when the status is final or no look is left, unless another claim
 *	  took the row since (a poll that outlived its lease).  Statuses are
 *	  applied by rank in the UPDATE itself, under the row's lock: a callback
 *	  may have moved the row on since the poll began.  Rows someone else
 *	  holds locked are skipped, never waited for: the worker's turn must not
 *	  stall on an application's transaction.  Nothing here changes a row's
 *	  state.
 *
 *-------------------------------------------------------------------------
 */
#include "outbox.h"
#include "outbox_sql.h"
#include "poll.h"
#include "status.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

/* NULL while the outbox lacks version 1.1's columns */
static SPIPlanPtr claim_poll_plan;
static SPIPlanPtr news_plan;
static SPIPlanPtr schedule_plan;
static SPIPlanPtr poll_due_plan;

/* the rows a poll may answer for: sent, with a SID, a look scheduled */
#define TRACKED(alias) \
	alias "status_poll_at IS NOT NULL AND " alias "state " EQ " 'sent'" \
	" AND " alias "sid IS NOT NULL"

static void
prepare_claim_poll_plan(const char *s)
{
	Oid			args[3] = {INT4OID, INT4OID, TEXTARRAYOID};

	/*
	 * The row whose look is most overdue, and the due rows of its sender,
	 * most overdue first: one walk of the sender's list answers for them
	 * all.  A sender another poll is walking already ($3) waits for it: two
	 * walks would list the same pages.  SKIP LOCKED: a row an application
	 * or a callback holds is taken next time.
	 */
	claim_poll_plan = sms_prepare_plan(psprintf(
												"WITH f AS ("
												" SELECT from_number FROM %s.sms_outbox"
												" WHERE " TRACKED("") " AND status_poll_at " LE " " NOW
												" AND NOT from_number " EQ " ANY ($3)"
												" ORDER BY status_poll_at LIMIT 1 FOR UPDATE SKIP LOCKED),"
												" c AS ("
												" SELECT o.id FROM %s.sms_outbox o, f"
												" WHERE " TRACKED("o.") " AND o.status_poll_at " LE " " NOW
												" AND o.from_number " EQ " f.from_number"
												" ORDER BY o.status_poll_at LIMIT $1 FOR UPDATE OF o SKIP LOCKED)"
												" UPDATE %s.sms_outbox o"
												" SET status_poll_at = " NOW " " PLUS " " MS_INTERVAL("$2")
												" FROM c WHERE o.id " EQ " c.id"
												" RETURNING o.id, o.sid, o.from_number,"
												" coalesce(o.sent_at, o.updated_at), o.status_poll_at", s, s, s),
									   3, args, 0);
}

static void
prepare_write_back_plans(const char *s)
{
	Oid			news_args[6] = {TEXTARRAYOID, TEXTARRAYOID, INT4ARRAYOID,
	TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
	Oid			schedule_args[3] = {INT8ARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZOID};
	char	   *rank_n = sms_status_rank_sql("n.status");
	char	   *rank_o = sms_status_rank_sql("o.status");

	/*
	 * News, by SID: a walk lists the sender's other messages too, and each
	 * that a tracked row holds is news for it.  Only a status that ranks
	 * above the row's is applied; a final one ends the row's looks.
	 */
	news_plan = sms_prepare_plan(psprintf(
										  "WITH n AS (SELECT * FROM ROWS FROM (pg_catalog.unnest($1),"
										  " pg_catalog.unnest($2), pg_catalog.unnest($3),"
										  " pg_catalog.unnest($4), pg_catalog.unnest($5),"
										  " pg_catalog.unnest($6))"
										  " AS n(sid, status, error_code, error_message, price, price_unit)),"
										  " t AS (SELECT o.id, n.* FROM %s.sms_outbox o, n"
										  " WHERE o.sid " EQ " n.sid AND " TRACKED("o.")
										  " AND %s " GT " %s FOR UPDATE OF o SKIP LOCKED)"
										  " UPDATE %s.sms_outbox o SET status = n.status,"
										  " status_changed_at = " NOW ","
										  " delivered_at = CASE WHEN n.status " EQ " 'delivered'"
										  " THEN " NOW " ELSE o.delivered_at END,"
										  " error_code = coalesce(n.error_code, o.error_code),"
										  " error_message = CASE WHEN n.error_code IS NULL"
										  " THEN o.error_message ELSE n.error_message END,"
										  " price = coalesce(n.price::pg_catalog.numeric, o.price),"
										  " price_unit = coalesce(n.price_unit, o.price_unit),"
										  " status_poll_at = CASE WHEN n.status " EQ " ANY (%s)"
										  " THEN NULL ELSE o.status_poll_at END,"
										  " updated_at = " NOW
										  " FROM t AS n WHERE o.id " EQ " n.id AND %s " GT " %s",
										  s, rank_n, rank_o, s, sms_status_finals_sql(),
										  rank_n, rank_o),
								 6, news_args, CURSOR_OPT_GENERIC_PLAN);

	/*
	 * The next look at each claimed row still tracked (NULL: none left),
	 * unless another claim has taken the row since ($3, this claim's lease,
	 * is no longer the row's) or someone holds it (it is looked at when the
	 * lease ends).
	 */
	schedule_plan = sms_prepare_plan(psprintf(
											  "WITH t AS (SELECT o.id, r.next_look FROM %s.sms_outbox o,"
											  " ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2))"
											  " AS r(id, next_look)"
											  " WHERE o.id " EQ " r.id AND o.status_poll_at " EQ " $3"
											  " FOR UPDATE OF o SKIP LOCKED)"
											  " UPDATE %s.sms_outbox o SET status_poll_at = t.next_look"
											  " FROM t WHERE o.id " EQ " t.id", s, s),
									 3, schedule_args, CURSOR_OPT_GENERIC_PLAN);
}

void
sms_outbox_status_prepare(const SmsOutbox *outbox, const char *s)
{
	if (claim_poll_plan)
	{
		SPI_freeplan(claim_poll_plan);
		SPI_freeplan(news_plan);
		SPI_freeplan(schedule_plan);
		SPI_freeplan(poll_due_plan);
	}
	claim_poll_plan = news_plan = schedule_plan = poll_due_plan = NULL;
	if (!outbox->delivery_columns)
		return;
	prepare_claim_poll_plan(s);
	prepare_write_back_plans(s);
	poll_due_plan = sms_prepare_plan(psprintf(
											  "SELECT status_poll_at FROM %s.sms_outbox"
											  " WHERE " TRACKED("")
											  " ORDER BY status_poll_at LIMIT 1", s),
									 0, NULL, 0);
}

/* Can this outbox's delivery status be polled (version 1.1)? */
bool
sms_outbox_has_polls(void)
{
	return claim_poll_plan != NULL;
}

/*
 * Claim up to limit due rows of one sender, none of senders[n], for a poll,
 * leased for lease_ms; NULL if none is due.
 */
SmsJob *
sms_outbox_claim_poll(int limit, int lease_ms, const char **senders, int nsenders)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(nsenders, 1));
	Datum		args[3];
	TupleDesc	desc;
	SmsPollRow *rows;
	SmsJob	   *job;
	TimestampTz lease;
	bool		isnull;
	int			n;

	if (claim_poll_plan == NULL)
		return NULL;
	for (int i = 0; i < nsenders; i++)
		elems[i] = CStringGetTextDatum(senders[i]);
	args[0] = Int32GetDatum(limit);
	args[1] = Int32GetDatum(lease_ms);
	args[2] = PointerGetDatum(construct_array(elems, nsenders, TEXTOID, -1, false,
											  TYPALIGN_INT));
	if (SPI_execute_plan(claim_poll_plan, args, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not claim messages to poll");
	n = (int) SPI_processed;
	if (n == 0)
		return NULL;

	desc = SPI_tuptable->tupdesc;
	job = sms_job_create(JOB_POLL);
	job->extension_oid = sms_outbox_extension_oid();
	rows = MemoryContextAllocZero(job->cxt, sizeof(SmsPollRow) * n);
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		char	   *sid = SPI_getvalue(tup, desc, 2);

		rows[i].id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		strlcpy(rows[i].sid, sid, sizeof(rows[i].sid));
		rows[i].sent_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 4, &isnull));
	}
	/* one UPDATE set every row's lease alike */
	lease = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], desc, 5, &isnull));
	job->from_number = MemoryContextStrdup(job->cxt,
										   SPI_getvalue(SPI_tuptable->vals[0], desc, 3));
	sms_poll_init(job, job->from_number, rows, n);
	job->poll->lease = lease;
	return job;
}

/* When the next poll falls due; 0 for none. */
TimestampTz
sms_outbox_next_poll_due(void)
{
	bool		isnull;
	Datum		d;

	if (poll_due_plan == NULL)
		return 0;
	if (SPI_execute_plan(poll_due_plan, NULL, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		return 0;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetTimestampTz(d);
}

static Datum
text_array(Datum *elems, bool *nulls, int n)
{
	int			dims[1] = {n};
	int			lbs[1] = {1};

	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs, TEXTOID,
											  -1, false, TYPALIGN_INT));
}

/* Apply a poll's news, by SID and by rank. */
static void
write_news(const SmsPoll *poll)
{
	int			n = poll->nnews;
	Datum	   *cols[6];
	bool	   *nulls[6];
	Datum		args[6];
	int			dims[1] = {n};
	int			lbs[1] = {1};

	if (n == 0)
		return;
	for (int c = 0; c < 6; c++)
	{
		cols[c] = palloc(sizeof(Datum) * n);
		nulls[c] = palloc0(sizeof(bool) * n);
	}
	for (int i = 0; i < n; i++)
	{
		const SmsStatusNews *news = &poll->news[i];
		const char *message = news->error_message;

		if (news->error_code != 0 && message == NULL)
			message = sms_delivery_error_text(news->error_code);
		if (news->error_code != 0 && message == NULL)
			message = psprintf("error %d", news->error_code);
		cols[0][i] = CStringGetTextDatum(news->sid);
		cols[1][i] = CStringGetTextDatum(news->status);
		cols[2][i] = Int32GetDatum(news->error_code);
		nulls[2][i] = news->error_code == 0;
		cols[3][i] = sms_provider_text(news->error_code ? message : NULL, &nulls[3][i]);
		cols[4][i] = sms_provider_text(news->price, &nulls[4][i]);
		cols[5][i] = sms_provider_text(news->price_unit, &nulls[5][i]);
	}
	for (int c = 0; c < 6; c++)
		args[c] = c == 2 ?
			PointerGetDatum(construct_md_array(cols[c], nulls[c], 1, dims, lbs,
											   INT4OID, 4, true, TYPALIGN_INT)) :
			text_array(cols[c], nulls[c], n);
	if (SPI_execute_plan(news_plan, args, NULL, false, 0) < 0)
		elog(ERROR, "could not write back delivery statuses");
}

/*
 * Write back what a poll learnt, and each claimed row's next look: the
 * next on the schedule, or none for a message the provider no longer has.
 * Returns the earliest next look it set, 0 if none.
 */
TimestampTz
sms_outbox_write_poll(const SmsPoll *poll, TimestampTz now)
{
	TimestampTz first = 0;
	Datum	   *ids = palloc(sizeof(Datum) * Max(poll->nrows, 1));
	Datum	   *next = palloc(sizeof(Datum) * Max(poll->nrows, 1));
	bool	   *next_null = palloc0(sizeof(bool) * Max(poll->nrows, 1));
	Datum		args[3];
	int			dims[1] = {poll->nrows};
	int			lbs[1] = {1};

	if (news_plan == NULL)
		return 0;
	write_news(poll);
	for (int i = 0; i < poll->nrows; i++)
	{
		const SmsPollRow *row = &poll->rows[i];
		TimestampTz at = row->gone ? 0 :
			sms_next_status_poll(row->sent_at, now, sms_status_poll_interval_s);

		/* a row a failed poll did not answer for: again after an interval */
		if (!row->answered && at != 0)
			at = Min(at, TimestampTzPlusMilliseconds(now,
													 sms_status_poll_interval_s * 1000L));

		if (at != 0 && (first == 0 || at < first))
			first = at;
		ids[i] = Int64GetDatum(row->id);
		next[i] = TimestampTzGetDatum(at);
		next_null[i] = (at == 0);
	}
	args[0] = PointerGetDatum(construct_md_array(ids, NULL, 1, dims, lbs, INT8OID,
												 sizeof(int64), FLOAT8PASSBYVAL,
												 TYPALIGN_DOUBLE));
	args[1] = PointerGetDatum(construct_md_array(next, next_null, 1, dims, lbs,
												 TIMESTAMPTZOID, sizeof(int64),
												 FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[2] = TimestampTzGetDatum(poll->lease);
	if (SPI_execute_plan(schedule_plan, args, NULL, false, 0) < 0)
		elog(ERROR, "could not schedule the next looks at delivery statuses");
	return first;
}
