/*-------------------------------------------------------------------------
 *
 * outbox_sql.h
 *	  How the worker's statements on the outbox name what they use
 *	  (outbox.c, outbox_status.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SMS_OUTBOX_SQL_H
#define SMS_OUTBOX_SQL_H

#include "identity.h"

#include "executor/spi.h"

/*
 * The worker runs as a superuser, so nothing its statements name may resolve
 * to an object another role created.  Its search_path is pinned to
 * pg_catalog when it connects (see pin_session_settings in worker.c), and
 * every operator and function here is written with its schema as well: a
 * database owner may create objects in public, and a role with CREATE on
 * the database a schema
 * named after the worker's role, and sms_state has no "=" of its own, so an
 * exact "=(sms_state, sms_state)" there would otherwise win over
 * pg_catalog's "anyenum = anyenum".  Keywords (coalesce, IS NULL, a
 * searched CASE) and ORDER BY (the type's default btree operator class)
 * involve no lookup; a simple "CASE x WHEN" looks up "=" and is not used.
 * (Operators written as OPERATOR() all bind alike, left to right: mixed
 * ones need parentheses.)
 */
#define EQ "OPERATOR(pg_catalog.=)"
#define LT "OPERATOR(pg_catalog.<)"
#define LE "OPERATOR(pg_catalog.<=)"
#define GE "OPERATOR(pg_catalog.>=)"
#define GT "OPERATOR(pg_catalog.>)"
#define NE "OPERATOR(pg_catalog.<>)"
#define PLUS "OPERATOR(pg_catalog.+)"
#define MINUS "OPERATOR(pg_catalog.-)"
#define NOW "pg_catalog.now()"
/* an interval of the given milliseconds (an integer parameter) */
#define MS_INTERVAL(param) \
	"pg_catalog.make_interval(secs => " param "::pg_catalog.float8" \
	" OPERATOR(pg_catalog./) 1000::pg_catalog.float8)"

extern Datum sms_provider_text(const char *s, bool *isnull);
extern SPIPlanPtr sms_prepare_plan(const char *sql, int nargs, Oid *argtypes,
								   int cursor_options);

/* outbox_status.c's plans, prepared with outbox.c's for each outbox */
extern void sms_outbox_status_prepare(const SmsOutbox *outbox, const char *schema);

#endif							/* SMS_OUTBOX_SQL_H */
