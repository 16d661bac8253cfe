/*-------------------------------------------------------------------------
 *
 * status.c
 *	  The provider's delivery status of a message, and applying news of it
 *	  to the outbox.
 *
 *	  After the create reply a message moves queued -> sending -> sent ->
 *	  delivered | undelivered, or failed (a Messaging Service's accepted and
 *	  scheduled come first; canceled ends a scheduled one; read may follow
 *	  delivered).  News of it comes out of order (callbacks race, a poll
 *	  answers late), so a status is applied only if it ranks above the
 *	  row's: the status never goes backwards.  The row's state stays the
 *	  outbox's own ('sent' means the provider has the message).
 *
 *-------------------------------------------------------------------------
 */
#include "status.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "identity.h"

typedef struct StatusRank
{
	const char *status;
	int			rank;
	bool		final;
} StatusRank;

/* Twilio's message statuses, by how far along they are */
static const StatusRank ranks[] = {
	{"accepted", 1, false},
	{"scheduled", 1, false},
	{"queued", 1, false},
	{"sending", 2, false},
	{"sent", 3, false},
	{"delivered", 4, true},
	{"undelivered", 4, true},
	{"failed", 4, true},
	{"canceled", 4, true},
	{"read", 5, true},
};

/* The status's rank; 0 for a status that is none of Twilio's. */
int
sms_status_rank(const char *status)
{
	for (int i = 0; i < (int) lengthof(ranks); i++)
		if (strcmp(ranks[i].status, status) == 0)
			return ranks[i].rank;
	return 0;
}

/* The table's own string for a status of Twilio's; NULL for any other. */
const char *
sms_status_known(const char *status)
{
	for (int i = 0; i < (int) lengthof(ranks); i++)
		if (strcmp(ranks[i].status, status) == 0)
			return ranks[i].status;
	return NULL;
}

/*
 * The rank of a text expression in SQL, from the same table: the worker's
 * write-back compares ranks in its UPDATE, under the row's lock, since a
 * callback may have moved the row on since the poll was claimed.
 */
char *
sms_status_rank_sql(const char *expr)
{
	StringInfoData buf;

	/* (a searched CASE: a simple one would look "=" up by search_path) */
	initStringInfo(&buf);
	appendStringInfoString(&buf, "CASE");
	for (int i = 0; i < (int) lengthof(ranks); i++)
		appendStringInfo(&buf, " WHEN %s OPERATOR(pg_catalog.=) '%s' THEN %d",
						 expr, ranks[i].status, ranks[i].rank);
	appendStringInfoString(&buf, " ELSE 0 END");
	return buf.data;
}

/* The final statuses, as a SQL array of text. */
char *
sms_status_finals_sql(void)
{
	StringInfoData buf;
	bool		first = true;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "'{");
	for (int i = 0; i < (int) lengthof(ranks); i++)
		if (ranks[i].final)
		{
			appendStringInfo(&buf, "%s%s", first ? "" : ",", ranks[i].status);
			first = false;
		}
	appendStringInfoString(&buf, "}'::pg_catalog.text[]");
	return buf.data;
}

/*
 * When to look at a message's status next, in multiples of
 * sms.status_poll_interval after it was sent: 1, 5, 30 and 60 (with the
 * default of a minute: 1, 5 and 30 minutes, an hour), then every 60 up to
 * 720 (hourly to 12 hours), then 1440, 2880 and 4320 (24, 48 and 72
 * hours); never later than 72 hours after the send.  A carrier that sends
 * no receipt leaves a message 'sent' for good: it gets 18 looks in all.
 * Returns 0 when no look is left.
 */
#define STATUS_POLL_END_S (72 * 3600)

TimestampTz
sms_next_status_poll(TimestampTz sent_at, TimestampTz now, int interval_s)
{
	static const int early[] = {1, 5, 30, 60};
	static const int late[] = {1440, 2880, 4320};
	/* (half an interval ahead: a late look does not bring the next at once) */
	int64		age_s = (now - sent_at) / USECS_PER_SEC + interval_s / 2;
	int64		next_s = 0;

	for (int i = 0; i < (int) lengthof(early) && next_s == 0; i++)
		if ((int64) early[i] * interval_s > age_s)
			next_s = (int64) early[i] * interval_s;
	if (next_s == 0 && age_s < (int64) 720 * interval_s)
		next_s = (age_s / (60L * interval_s) + 1) * 60L * interval_s;
	for (int i = 0; i < (int) lengthof(late) && next_s == 0; i++)
		if ((int64) late[i] * interval_s > age_s)
			next_s = (int64) late[i] * interval_s;
	if (next_s == 0 || next_s > STATUS_POLL_END_S)
		next_s = STATUS_POLL_END_S;
	if (next_s <= age_s)
		return 0;
	return sent_at + next_s * USECS_PER_SEC;
}

/* Will the status change no more (bar 'read')? */
bool
sms_status_is_final(const char *status)
{
	for (int i = 0; i < (int) lengthof(ranks); i++)
		if (strcmp(ranks[i].status, status) == 0)
			return ranks[i].final;
	return false;
}

/* Twilio's words for the delivery errors a callback gives by code alone. */
const char *
sms_delivery_error_text(int code)
{
	switch (code)
	{
		case 30001:
			return "Queue overflow";
		case 30002:
			return "Account suspended";
		case 30003:
			return "Unreachable destination handset";
		case 30004:
			return "Message blocked";
		case 30005:
			return "Unknown destination handset";
		case 30006:
			return "Landline or unreachable carrier";
		case 30007:
			return "Message filtered";
		case 30008:
			return "Unknown error";
		case 30009:
			return "Missing segment";
		case 30010:
			return "Message price exceeds max price";
	}
	return NULL;
}

/* The row's status and SID, locked; false if there is no such row. */
static bool
lock_row(const char *table, int64 id, char **status, char **sid)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(id)};
	bool		isnull;
	Datum		d;

	if (SPI_execute_with_args(psprintf("SELECT status, sid FROM %s"
									   " WHERE id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
									   table),
							  1, argtypes, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read sms_outbox row " INT64_FORMAT, id);
	if (SPI_processed != 1)
		return false;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	*status = isnull ? NULL : TextDatumGetCString(d);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	*sid = isnull ? NULL : TextDatumGetCString(d);
	return true;
}

static void
update_row(const char *table, const SmsDeliveryNews *news)
{
	Oid			argtypes[5] = {INT8OID, TEXTOID, INT4OID, TEXTOID, BOOLOID};
	Datum		args[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	const char *message = news->error_message ? news->error_message :
		sms_delivery_error_text(news->error_code);

	args[0] = Int64GetDatum(news->id);
	args[1] = CStringGetTextDatum(news->status);
	args[2] = Int32GetDatum(news->error_code);
	if (news->error_code == 0)
		nulls[2] = 'n';
	if (message)
		args[3] = CStringGetTextDatum(message);
	else
		nulls[3] = 'n';
	/* a final status ends the polling */
	args[4] = BoolGetDatum(sms_status_is_final(news->status));

	if (SPI_execute_with_args(psprintf("UPDATE %s SET status = $2,"
									   " status_changed_at = pg_catalog.now(),"
									   " delivered_at = CASE WHEN $2 OPERATOR(pg_catalog.=) 'delivered'"
									   " THEN pg_catalog.now() ELSE delivered_at END,"
									   " error_code = coalesce($3, error_code),"
									   " error_message = CASE WHEN $3 IS NULL THEN error_message"
									   " ELSE coalesce($4, 'error ' OPERATOR(pg_catalog.||) $3::pg_catalog.text) END,"
									   " status_poll_at = CASE WHEN $5 THEN NULL ELSE status_poll_at END,"
									   " updated_at = pg_catalog.now()"
									   " WHERE id OPERATOR(pg_catalog.=) $1", table),
							  5, argtypes, args, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update sms_outbox row " INT64_FORMAT, news->id);
}

/*
 * Apply news of a message's delivery to its row, as the outbox's owner, if
 * it ranks above what the row has.
 */
SmsNewsResult
sms_apply_delivery_news(const SmsDeliveryNews *news)
{
	const SmsOutbox *outbox = sms_outbox(false);
	char	   *table = sms_outbox_table_name(outbox);
	SmsCaller	caller;
	SmsNewsResult result;
	char	   *status;
	char	   *sid;

	sms_become_owner(outbox->owner, &caller);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!lock_row(table, news->id, &status, &sid) ||
		sid == NULL || strcmp(sid, news->sid) != 0)
		result = NEWS_NO_SUCH_MESSAGE;
	else if (status != NULL &&
			 sms_status_rank(news->status) <= sms_status_rank(status))
		result = NEWS_OLDER;
	else
	{
		update_row(table, news);
		result = NEWS_APPLIED;
	}
	SPI_finish();
	sms_restore_caller(&caller);
	return result;
}
