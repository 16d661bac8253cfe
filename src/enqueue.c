/*-------------------------------------------------------------------------
 *
 * enqueue.c
 *	  Queuing messages: sms_send() and the outbox's triggers, which have
 *	  the workers woken when the queuing transaction commits (shared.c).
 *
 *	  sms_send() inserts as the outbox's owner, through the executor's
 *	  routines (insert.c) or, where those decline, a saved SPI plan, so a
 *	  role needs only EXECUTE on sms_send to queue, not rights on the table;
 *	  created_by still records the calling role.  Every row, sms_send()'s
 *	  and those of direct INSERTs (which run as the inserting role), goes
 *	  through the same validation in a trigger.
 *
 *-------------------------------------------------------------------------
 */
#include "sms.h"
#include "identity.h"
#include "insert.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(sms_send);
PG_FUNCTION_INFO_V1(sms_outbox_validate);
PG_FUNCTION_INFO_V1(sms_outbox_wake);

#define SMS_SEND_DUE_COLUMN 8

/* sms_send()'s saved plans, for one generation of the outbox (identity.c) */
static uint32 plans_generation = 0;
static SPIPlanPtr insert_plan = NULL;
static SPIPlanPtr insert_keyed_plan = NULL;
static SPIPlanPtr lookup_key_plan = NULL;

/*
 * Prepare sms_send()'s statements, once per backend and extension
 * incarnation.  Names are schema-qualified, so the plans do not depend on
 * the caller's search_path.
 */
static void
prepare_plans(const SmsOutbox *outbox)
{
	char	   *table;
	StringInfoData insert;
	char	   *sql;
	Oid		   *argtypes = unconstify(Oid *, &sms_send_column_types[0]);
	SPIPlanPtr	plain;
	SPIPlanPtr	keyed;
	SPIPlanPtr	lookup;

	if (insert_plan != NULL && plans_generation == outbox->generation)
		return;
	if (insert_plan)
	{
		SPI_freeplan(insert_plan);
		SPI_freeplan(insert_keyed_plan);
		SPI_freeplan(lookup_key_plan);
		insert_plan = insert_keyed_plan = lookup_key_plan = NULL;
	}

	table = sms_outbox_table_name(outbox);

	initStringInfo(&insert);
	appendStringInfo(&insert, "INSERT INTO %s (", table);
	for (int i = 0; i < SMS_SEND_NCOLUMNS; i++)
		appendStringInfo(&insert, "%s%s", i > 0 ? ", " : "", sms_send_columns[i]);
	appendStringInfoString(&insert, ") VALUES (");
	for (int i = 0; i < SMS_SEND_NCOLUMNS; i++)
		appendStringInfo(&insert, "%s$%d", i > 0 ? ", " : "", i + 1);
	appendStringInfoChar(&insert, ')');

	sql = psprintf("%s RETURNING id", insert.data);
	plain = SPI_prepare(sql, SMS_SEND_NCOLUMNS, argtypes);
	if (plain == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));

	/* ON CONFLICT costs a speculative insertion: only when a key is given */
	/* a key belongs to the role that used it: see sms_outbox_idempotency_key_idx */
	sql = psprintf("%s ON CONFLICT (created_by, idempotency_key)"
				   " WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING id",
				   insert.data);
	keyed = SPI_prepare(sql, SMS_SEND_NCOLUMNS, argtypes);
	if (keyed == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));

	/* (the key and created_by are next to each other in the values) */
	StaticAssertStmt(SMS_SEND_CREATED_BY_COLUMN == SMS_SEND_KEY_COLUMN + 1,
					 "created_by follows idempotency_key");
	sql = psprintf("SELECT id FROM %s WHERE idempotency_key OPERATOR(pg_catalog.=) $1"
				   " AND created_by OPERATOR(pg_catalog.=) $2"
				   " AND idempotency_key IS NOT NULL", table);
	lookup = SPI_prepare(sql, 2, argtypes + SMS_SEND_KEY_COLUMN);
	if (lookup == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));

	/*
	 * Kept only once all three are made: one that failed (its index dropped,
	 * say) is prepared again at the next call, with the others.  (Plans not
	 * kept go with SPI's memory.)
	 */
	SPI_keepplan(plain);
	SPI_keepplan(keyed);
	SPI_keepplan(lookup);
	insert_plan = plain;
	insert_keyed_plan = keyed;
	lookup_key_plan = lookup;
	plans_generation = outbox->generation;
}

static int64
first_id(void)
{
	bool		isnull;
	Datum		d;

	if (SPI_processed != 1)
		return -1;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? -1 : DatumGetInt64(d);
}

/*
 * Insert the message through the saved plans: for a message with an
 * idempotency key (ON CONFLICT needs the planner's speculative insertion),
 * or where sms_insert_message() declines.  Returns false if nothing was
 * queued and, with a key, no message with it was found: a BEFORE trigger
 * skipped the row, or the earlier message with the key was deleted between
 * the two statements.
 */
static bool
insert_message(const SmsOutbox *outbox, Datum *values, const bool *isnull,
			   const char *key, int64 *id)
{
	char		nulls[SMS_SEND_NCOLUMNS];

	for (int i = 0; i < SMS_SEND_NCOLUMNS; i++)
		nulls[i] = isnull[i] ? 'n' : ' ';

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/*
	 * Every name in the plans is schema-qualified, and they run under the
	 * search_path sms_become_owner() sets: a caller's path changes nothing
	 * they resolve.
	 */
	prepare_plans(outbox);
	if (SPI_execute_plan(key == NULL ? insert_plan : insert_keyed_plan,
						 values, nulls, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not insert into sms_outbox");
	*id = first_id();
	if (*id < 0 && key != NULL)
	{
		/* the key was used before: return that message */
		if (SPI_execute_plan(lookup_key_plan, values + SMS_SEND_KEY_COLUMN,
							 nulls + SMS_SEND_KEY_COLUMN, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not look up idempotency_key");
		*id = first_id();
	}

	SPI_finish();

	return *id >= 0;
}

/*
 * Act as the outbox's owner, with a search_path of pg_catalog and pg_temp
 * and in a restricted operation, as a SECURITY DEFINER function with SET
 * search_path would (see fmgr_security_definer): nothing a caller created
 * can run with the owner's rights, in the statement or in a trigger on the
 * outbox, and a trigger may still SET its own search_path.  On an error,
 * the (sub)transaction's abort restores the caller's user and settings.
 */
void
sms_become_owner(Oid owner, SmsCaller *caller)
{
	GetUserIdAndSecContext(&caller->userid, &caller->sec_context);
	SetUserIdAndSecContext(owner, caller->sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	caller->guc_nestlevel = NewGUCNestLevel();
	sms_restrict_search_path();
}

void
sms_restore_caller(const SmsCaller *caller)
{
	AtEOXact_GUC(true, caller->guc_nestlevel);
	SetUserIdAndSecContext(caller->userid, caller->sec_context);
}

/*
 * sms_send(to_number, from_number, body, media_urls, send_at, priority,
 *			idempotency_key) returns bigint
 *
 * Returns the new message's id, that of the earlier message with the same
 * idempotency_key, or null if nothing was queued (see insert_message).
 *
 * The arguments are checked here, so that a mistake is reported as the
 * caller's and not from inside an INSERT; the outbox's trigger checks the
 * row again, as it checks every row however it is inserted.
 */
Datum
sms_send(PG_FUNCTION_ARGS)
{
	Datum		values[SMS_SEND_NCOLUMNS];
	bool		isnull[SMS_SEND_NCOLUMNS];
	char	   *to = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *from = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	text	   *body = PG_ARGISNULL(2) ? NULL : PG_GETARG_TEXT_PP(2);
	ArrayType  *media = PG_ARGISNULL(3) ? NULL : PG_GETARG_ARRAYTYPE_P(3);
	char	   *key = PG_ARGISNULL(6) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(6));
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	SmsCaller	caller;
	const SmsOutbox *outbox;
	bool		inserted = false;
	int64		id = -1;

	sms_validate_to(to);
	sms_validate_from(from);
	sms_validate_content(body, media);
	if (!PG_ARGISNULL(4))
		sms_validate_send_at(PG_GETARG_TIMESTAMPTZ(4));
	if (PG_ARGISNULL(5))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("priority must not be null"),
				 errhint("Pass 0 for normal priority; higher values are sent first.")));
	sms_validate_idempotency_key(key);

	/* the arguments, in sms_send_columns' order ... */
	for (int i = 0; i < SMS_SEND_NARGS; i++)
	{
		values[i] = PG_GETARG_DATUM(i);
		isnull[i] = PG_ARGISNULL(i);
	}

	/* ... then created_by and next_attempt_at */
	values[SMS_SEND_CREATED_BY_COLUMN] =
		DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(GetUserId(), false)));
	isnull[SMS_SEND_CREATED_BY_COLUMN] = false;
	/* the row is due at send_at, or now: one index column orders the claim */
	values[SMS_SEND_DUE_COLUMN] = TimestampTzGetDatum(PG_ARGISNULL(4) ? now :
													  Max(now, PG_GETARG_TIMESTAMPTZ(4)));
	isnull[SMS_SEND_DUE_COLUMN] = false;

	outbox = sms_outbox(false);

	sms_become_owner(outbox->owner, &caller);
	/* (ON CONFLICT for a key needs the planner's speculative insertion) */
	if (key != NULL ||
		!sms_insert_message(outbox->relid, values, isnull, &inserted, &id))
		inserted = insert_message(outbox, values, isnull, key, &id);
	sms_restore_caller(&caller);

	if (!inserted)
		PG_RETURN_NULL();
	PG_RETURN_INT64(id);
}

/* the columns only the worker sets, empty in a new row */
static const char *const worker_columns[] = {
	"last_attempt_at", "claimed_by", "sid", "status", "error_code",
	"error_message", "num_segments", "price", "price_unit", "sent_at"
};

/*
 * What the trigger needs of the outbox, looked up by name once per backend
 * and outbox, not per row.
 */
typedef struct OutboxShape
{
	Oid			relid;
	/* the columns a sender gives, validated */
	int			to_number;
	int			from_number;
	int			body;
	int			media_urls;
	int			send_at;
	int			idempotency_key;
	/* the columns the outbox keeps for itself */
	int			id;
	int			state;
	int			attempts;
	int			next_attempt_at;
	int			created_at;
	int			updated_at;
	int			created_by;
	int			worker[lengthof(worker_columns)];
	Oid			id_sequence;	/* the identity sequence of id */
	Datum		pending;		/* sms_state values */
	Datum		sending;
	Datum		unknown;
} OutboxShape;

static OutboxShape shape;		/* relid InvalidOid: not read yet */

static int
attnum_of(TupleDesc tupdesc, const char *name)
{
	int			attnum = SPI_fnumber(tupdesc, name);

	if (attnum <= 0)
		elog(ERROR, "sms_outbox has no column \"%s\"", name);
	return attnum;
}

/*
 * The attribute number of a column the trigger writes, which must still
 * have the type the trigger writes (the owner may have altered it): a value
 * of another type would be stored as garbage.
 */
static int
typed_attnum_of(TupleDesc tupdesc, const char *name, Oid type)
{
	int			attnum = attnum_of(tupdesc, name);
	Oid			actual = TupleDescAttr(tupdesc, attnum - 1)->atttypid;

	if (actual != type)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of sms_outbox has type %s, not %s",
						name, format_type_be(actual), format_type_be(type)),
				 errhint("Change the column back to type %s: the extension sets it.",
						 format_type_be(type))));
	return attnum;
}

static Datum
state_value(TupleDesc tupdesc, const char *label)
{
	return DirectFunctionCall2(enum_in, CStringGetDatum(label),
							   ObjectIdGetDatum(TupleDescAttr(tupdesc, shape.state - 1)->atttypid));
}

/*
 * Any change to the outbox's definition (ALTER TABLE by its owner) may move
 * or retype a column: read the shape again.
 */
static void
forget_shape(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == shape.relid)
		shape.relid = InvalidOid;
}

static void
read_shape(Relation rel)
{
	static bool callback_registered = false;
	TupleDesc	tupdesc = RelationGetDescr(rel);

	if (RelationGetRelid(rel) == shape.relid)
		return;
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(forget_shape, (Datum) 0);
		callback_registered = true;
	}
	shape.relid = InvalidOid;
	shape.to_number = attnum_of(tupdesc, "to_number");
	shape.from_number = attnum_of(tupdesc, "from_number");
	shape.body = attnum_of(tupdesc, "body");
	shape.media_urls = attnum_of(tupdesc, "media_urls");
	shape.send_at = attnum_of(tupdesc, "send_at");
	shape.idempotency_key = attnum_of(tupdesc, "idempotency_key");
	shape.id = typed_attnum_of(tupdesc, "id", INT8OID);
	shape.state = attnum_of(tupdesc, "state");
	shape.attempts = typed_attnum_of(tupdesc, "attempts", INT4OID);
	shape.next_attempt_at = typed_attnum_of(tupdesc, "next_attempt_at", TIMESTAMPTZOID);
	shape.created_at = typed_attnum_of(tupdesc, "created_at", TIMESTAMPTZOID);
	shape.updated_at = typed_attnum_of(tupdesc, "updated_at", TIMESTAMPTZOID);
	shape.created_by = typed_attnum_of(tupdesc, "created_by", NAMEOID);
	for (size_t i = 0; i < lengthof(worker_columns); i++)
		shape.worker[i] = attnum_of(tupdesc, worker_columns[i]);
	shape.id_sequence = sms_identity_sequence(rel, shape.id);
	shape.pending = state_value(tupdesc, "pending");
	shape.sending = state_value(tupdesc, "sending");
	shape.unknown = state_value(tupdesc, "unknown");
	shape.relid = RelationGetRelid(rel);
}

static char *
cstring_attr(HeapTuple tuple, TupleDesc tupdesc, int attnum)
{
	bool		isnull;
	Datum		d = heap_getattr(tuple, attnum, tupdesc, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* The columns a trigger sets in a row, and their values. */
typedef struct RowChanges
{
	int			n;
	int			attnums[16 + lengthof(worker_columns)];
	Datum		values[16 + lengthof(worker_columns)];
	bool		nulls[16 + lengthof(worker_columns)];
} RowChanges;

static void
set_column(RowChanges *c, int attnum, Datum value, bool isnull)
{
	Assert(c->n < lengthof(c->attnums));
	c->attnums[c->n] = attnum;
	c->values[c->n] = value;
	c->nulls[c->n] = isnull;
	c->n++;
}

/*
 * A row inserted by a role that is not the outbox's owner: whatever the
 * statement said, it is a new message of that role, with a new id, waiting
 * to be sent.  Such a role could otherwise insert a 'sent' row with a
 * forged SID, an 'unknown' one that reconciliation would match to another
 * message, a row in another role's name, or ids ahead of the identity
 * sequence that make every later sms_send() fail.  (The id the column's
 * default drew is not used: a trigger cannot tell it from one the statement
 * chose.)
 */
static void
fresh_row(RowChanges *c, TimestampTz now, TimestampTz due)
{
	set_column(c, shape.id, Int64GetDatum(nextval_internal(shape.id_sequence, false)), false);
	set_column(c, shape.state, shape.pending, false);
	set_column(c, shape.attempts, Int32GetDatum(0), false);
	set_column(c, shape.next_attempt_at, TimestampTzGetDatum(due), false);
	set_column(c, shape.created_at, TimestampTzGetDatum(now), false);
	set_column(c, shape.updated_at, TimestampTzGetDatum(now), false);
	set_column(c, shape.created_by,
			   DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(GetUserId(), false))),
			   false);
	for (size_t i = 0; i < lengthof(worker_columns); i++)
		set_column(c, shape.worker[i], (Datum) 0, true);
}

/*
 * BEFORE INSERT OR UPDATE trigger on sms_outbox: validate the row as
 * sms_send() validates its arguments, and make next_attempt_at respect
 * send_at.  A row inserted by a role that is not the outbox's owner becomes
 * a fresh pending message of that role (see fresh_row); one inserted by the
 * owner (a restore, or a superuser's maintenance) keeps the values given,
 * sender and state included.
 */
Datum
sms_outbox_validate(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	TupleDesc	tupdesc;
	HeapTuple	tuple;
	bool		inserting;
	bool		isnull;
	Datum		d;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	TimestampTz due = now;
	RowChanges	changes;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		elog(ERROR, "sms_outbox_validate must be fired BEFORE, FOR EACH ROW");

	inserting = TRIGGER_FIRED_BY_INSERT(trigdata->tg_event);
	tuple = inserting ? trigdata->tg_trigtuple : trigdata->tg_newtuple;

	/* every inserted row wakes the worker at commit, however it came */
	if (inserting)
		sms_wake_worker_at_commit();

	rel = trigdata->tg_relation;
	tupdesc = RelationGetDescr(rel);
	read_shape(rel);
	changes.n = 0;

	sms_validate_to(cstring_attr(tuple, tupdesc, shape.to_number));
	sms_validate_from(cstring_attr(tuple, tupdesc, shape.from_number));
	{
		Datum		bd = heap_getattr(tuple, shape.body, tupdesc, &isnull);
		text	   *body = isnull ? NULL : DatumGetTextPP(bd);
		Datum		md = heap_getattr(tuple, shape.media_urls, tupdesc, &isnull);
		ArrayType  *media = isnull ? NULL : DatumGetArrayTypeP(md);

		sms_validate_content(body, media);
	}
	sms_validate_idempotency_key(cstring_attr(tuple, tupdesc, shape.idempotency_key));

	d = heap_getattr(tuple, shape.send_at, tupdesc, &isnull);
	if (!isnull)
	{
		TimestampTz send_at = DatumGetTimestampTz(d);

		sms_validate_send_at(send_at);
		due = Max(now, send_at);
	}

	if (inserting && !has_privs_of_role(GetUserId(), rel->rd_rel->relowner))
		fresh_row(&changes, now, due);
	else
	{
		bool		nisnull;
		Datum		nd = heap_getattr(tuple, shape.next_attempt_at, tupdesc, &nisnull);

		/* not due before send_at */
		if (nisnull || (due > now && DatumGetTimestampTz(nd) < due))
			set_column(&changes, shape.next_attempt_at, TimestampTzGetDatum(due), false);

		/*
		 * A row arriving as 'sending' (a restored dump, say) may have gone
		 * out: it is 'unknown' until the provider is asked.
		 */
		d = heap_getattr(tuple, shape.state, tupdesc, &isnull);
		if (inserting && !isnull && DatumGetObjectId(d) == DatumGetObjectId(shape.sending))
			set_column(&changes, shape.state, shape.unknown, false);
	}

	if (changes.n > 0)
		tuple = heap_modify_tuple_by_cols(tuple, tupdesc, changes.n,
										  changes.attnums, changes.values,
										  changes.nulls);

	return PointerGetDatum(tuple);
}

/*
 * AFTER INSERT OR UPDATE ... FOR EACH STATEMENT trigger on sms_outbox: the
 * worker is woken when the transaction commits, however the rows came.
 */
Datum
sms_outbox_wake(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "sms_outbox_wake must be fired as a trigger");

	sms_wake_worker_at_commit();

	return PointerGetDatum(NULL);
}
