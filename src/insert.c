/*-------------------------------------------------------------------------
 *
 * insert.c
 *	  Inserting one message into the outbox for sms_send(), as an INSERT
 *	  statement would, without planning and starting one.
 *
 *	  A planned INSERT of one row, even from a saved plan, builds on every
 *	  call a projection of all the outbox's 24 columns, a ModifyTable node
 *	  and a RETURNING list: a fifth of sms_send()'s instructions, and on a
 *	  busy machine the difference between 0.85 and 0.90 of a plain INSERT's
 *	  rate (see the README's "How sms_send() inserts").  This does for the
 *	  one row what ModifyTable does, through the executor's own routines, as
 *	  logical replication's apply worker does: the other columns' defaults,
 *	  BEFORE and AFTER triggers for each row and for the statement,
 *	  constraints, index entries.  The outbox's own trigger validates the
 *	  row like any other.  Where it could not do all an INSERT would
 *	  (row-level security, rules, transition tables, a column whose type
 *	  differs from what sms_send() passes, a table that is not a plain one),
 *	  it declines and the caller runs its saved plan.  The executor's
 *	  interfaces that changed between majors are in compat.h.
 *
 *-------------------------------------------------------------------------
 */
#include "sms.h"
#include "insert.h"

#include "access/sysattr.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "parser/parse_relation.h"
#include "rewrite/rewriteHandler.h"
#include "storage/lmgr.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

const char *const sms_send_columns[SMS_SEND_NCOLUMNS] = {
	"to_number", "from_number", "body", "media_urls", "send_at",
	"priority", "idempotency_key", "created_by", "next_attempt_at"
};

const Oid	sms_send_column_types[SMS_SEND_NCOLUMNS] = {
	TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID, TIMESTAMPTZOID,
	INT4OID, TEXTOID, NAMEOID, TIMESTAMPTZOID
};

/*
 * What an insert into the outbox needs besides the values given: where they
 * and the id go, and the default of every other column, planned (a
 * constant one as its value).  Building it reads the defaults' stored
 * expressions, so it is kept across calls and transactions, until the
 * outbox's relcache entry, a function or a type is invalidated.
 */
typedef struct InsertShape
{
	bool		supported;		/* the columns are as sms_send() fills them */
	AttrNumber	given[SMS_SEND_NCOLUMNS];
	AttrNumber	id;
	int			ndefaults;
	AttrNumber *default_attnums;
	Expr	  **default_exprs;	/* NULL for a constant ... */
	Datum	   *default_values; /* ... with this value */
	bool	   *default_isnull;
} InsertShape;

static InsertShape *shape = NULL;
static MemoryContext shape_cxt = NULL;

/*
 * Cleared by the invalidation callbacks, which may run in the middle of an
 * insert or of building the shape (whenever a lock is taken).
 */
static bool shape_valid = false;
static Oid	shape_relid = InvalidOid;
static bool callbacks_registered = false;

static void
shape_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == shape_relid)
		shape_valid = false;
}

static void
shape_syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	/* a default may call a function, inlined when it was planned */
	shape_valid = false;
}

/*
 * The default of a column the INSERT does not name, as the rewriter and
 * planner would supply it; NULL when the column just stays null.
 */
static Expr *
column_default(Relation rel, Form_pg_attribute att)
{
	Node	   *expr = build_column_default(rel, att->attnum);

	if (expr == NULL)
	{
		/* a null must still pass a domain's constraints */
		if (get_typtype(att->atttypid) != TYPTYPE_DOMAIN)
			return NULL;
		expr = (Node *) makeNullConst(att->atttypid, att->atttypmod,
									  att->attcollation);
		expr = coerce_to_domain(expr, InvalidOid, -1, att->atttypid,
								COERCION_IMPLICIT, COERCE_IMPLICIT_CAST,
								-1, false);
	}
	return expression_planner((Expr *) expr);
}

/*
 * Can sms_send()'s values go into this column as they are?  A column whose
 * type an ALTER TABLE changed (or made a domain, or generated) needs the
 * coercions and checks of a planned INSERT.
 */
static bool
column_takes(Form_pg_attribute att, Oid type)
{
	return att->atttypid == type && att->atttypmod < 0 &&
		!att->attgenerated && !att->attidentity;
}

static void
build_shape(InsertShape *s, Relation rel)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);

	s->supported = true;
	for (int i = 0; i < SMS_SEND_NCOLUMNS; i++)
	{
		s->given[i] = attnameAttNum(rel, sms_send_columns[i], false);
		if (s->given[i] <= 0 ||
			!column_takes(TupleDescAttr(tupdesc, s->given[i] - 1),
						  sms_send_column_types[i]))
			s->supported = false;
	}
	s->id = attnameAttNum(rel, "id", false);
	if (s->id <= 0 || TupleDescAttr(tupdesc, s->id - 1)->atttypid != INT8OID)
		s->supported = false;
	if (!s->supported)
		return;

	s->default_attnums = palloc(tupdesc->natts * sizeof(AttrNumber));
	s->default_exprs = palloc(tupdesc->natts * sizeof(Expr *));
	s->default_values = palloc(tupdesc->natts * sizeof(Datum));
	s->default_isnull = palloc(tupdesc->natts * sizeof(bool));

	for (int i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		bool		given = false;
		Expr	   *expr;

		/* generated columns are computed at the insert itself */
		if (att->attisdropped || att->attgenerated)
			continue;
		for (int j = 0; j < SMS_SEND_NCOLUMNS; j++)
			given |= (s->given[j] == att->attnum);
		if (given || (expr = column_default(rel, att)) == NULL)
			continue;

		s->default_attnums[s->ndefaults] = att->attnum;
		if (IsA(expr, Const))
		{
			Const	   *c = (Const *) expr;

			s->default_exprs[s->ndefaults] = NULL;
			s->default_values[s->ndefaults] = c->constvalue;
			s->default_isnull[s->ndefaults] = c->constisnull;
		}
		else
			s->default_exprs[s->ndefaults] = expr;
		s->ndefaults++;
	}
}

static InsertShape *
insert_shape(Relation rel)
{
	MemoryContext oldcxt;
	InsertShape *s;

	if (shape != NULL && shape_valid && shape_relid == RelationGetRelid(rel))
		return shape;

	if (!callbacks_registered)
	{
		CacheRegisterRelcacheCallback(shape_relcache_callback, (Datum) 0);
		CacheRegisterSyscacheCallback(PROCOID, shape_syscache_callback, (Datum) 0);
		CacheRegisterSyscacheCallback(TYPEOID, shape_syscache_callback, (Datum) 0);
		callbacks_registered = true;
	}

	/*
	 * An sms_send() further up the stack (a trigger's caller) may still be
	 * using the old shape: it goes when the transaction ends.  So does one
	 * left half-built by an error.
	 */
	if (shape_cxt != NULL)
		MemoryContextSetParent(shape_cxt, TopTransactionContext);
	shape = NULL;
	shape_cxt = AllocSetContextCreate(CacheMemoryContext, "sms_send insert",
									  ALLOCSET_SMALL_SIZES);

	/* an invalidation while it is built applies to the next call */
	shape_relid = RelationGetRelid(rel);
	shape_valid = true;

	oldcxt = MemoryContextSwitchTo(shape_cxt);
	s = palloc0(sizeof(InsertShape));
	build_shape(s, rel);
	MemoryContextSwitchTo(oldcxt);

	shape = s;
	return s;
}

/* Can this insert do all that an INSERT statement would here? */
static bool
insert_supported(Relation rel, InsertShape *s)
{
	TriggerDesc *trigdesc = rel->trigdesc;

	return s->supported &&
		rel->rd_rel->relkind == RELKIND_RELATION &&
		!rel->rd_rel->relispartition &&
		!(rel->rd_rules && rel->rd_rules->numLocks > 0) &&
		!rel->rd_rel->relrowsecurity &&
		!(trigdesc && trigdesc->trig_insert_new_table);
}

/*
 * The row: the values given, and the defaults of the other columns,
 * evaluated after the statement triggers as a plan's would be.  The
 * slot is the table's own kind, so the row is formed once; it is
 * materialized, so that nothing in it points into the shape, which a
 * trigger calling sms_send() may rebuild.
 */
static TupleTableSlot *
form_row(EState *estate, Relation rel, InsertShape *s,
		 const Datum *values, const bool *isnull)
{
	TupleTableSlot *slot = table_slot_create(rel, &estate->es_tupleTable);
	ExprContext *econtext;

	memset(slot->tts_isnull, true, slot->tts_tupleDescriptor->natts * sizeof(bool));
	econtext = GetPerTupleExprContext(estate);
	for (int i = 0; i < s->ndefaults; i++)
	{
		AttrNumber	attnum = s->default_attnums[i];

		if (s->default_exprs[i] == NULL)
		{
			slot->tts_values[attnum - 1] = s->default_values[i];
			slot->tts_isnull[attnum - 1] = s->default_isnull[i];
		}
		else
			slot->tts_values[attnum - 1] =
				ExecEvalExprSwitchContext(ExecInitExpr(s->default_exprs[i], NULL),
										  econtext,
										  &slot->tts_isnull[attnum - 1]);
	}
	for (int i = 0; i < SMS_SEND_NCOLUMNS; i++)
	{
		slot->tts_values[s->given[i] - 1] = values[i];
		slot->tts_isnull[s->given[i] - 1] = isnull[i];
	}
	ExecStoreVirtualTuple(slot);
	ExecMaterializeSlot(slot);
	return slot;
}

/*
 * What ModifyTable's ExecInsert does for the row; false if a BEFORE ROW
 * trigger skipped it.
 */
static bool
insert_row(EState *estate, ResultRelInfo *rri, InsertShape *s,
		   TupleTableSlot *slot, int64 *id)
{
	Relation	rel = rri->ri_RelationDesc;
	List	   *recheck_indexes = NIL;
	bool		id_isnull;

	if (rri->ri_TrigDesc && rri->ri_TrigDesc->trig_insert_before_row &&
		!ExecBRInsertTriggers(estate, rri, slot))
		return false;

	/* constraints and generated columns may read tableoid */
	slot->tts_tableOid = RelationGetRelid(rel);
	if (rel->rd_att->constr && rel->rd_att->constr->has_generated_stored)
		ExecComputeStoredGenerated(rri, estate, slot, CMD_INSERT);
	if (rel->rd_att->constr)
		ExecConstraints(rri, slot, estate);

	table_tuple_insert(rel, slot, estate->es_output_cid, 0, NULL);
	if (rri->ri_NumIndices > 0)
		recheck_indexes = sms_insert_index_tuples(rri, slot, estate);
	ExecARInsertTriggers(estate, rri, slot, recheck_indexes, NULL);
	list_free(recheck_indexes);

	/* the primary key: not null */
	*id = DatumGetInt64(slot_getattr(slot, s->id, &id_isnull));
	Assert(!id_isnull);
	return true;
}

/*
 * Insert one row into the outbox (relid): values/isnull give sms_send()'s
 * columns in the order of sms_send_columns, every other column takes its
 * default.  Sets *inserted, and *id to the new row's id; *inserted is false
 * if a BEFORE trigger skipped the row.  Returns false, having done nothing,
 * where a planned INSERT must be run instead.
 *
 * The steps are those of ExecutorStart, ModifyTable's ExecInsert and
 * ExecutorFinish/End for one row; the executor hooks (ExecutorStart_hook
 * and the others) are not called, as there is no plan to show them.
 */
bool
sms_insert_message(Oid relid, const Datum *values, const bool *isnull,
				   bool *inserted, int64 *id)
{
	EState	   *estate;
	MemoryContext oldcxt;
	RangeTblEntry *rte;
	List	   *perminfos = NIL;
	SmsInsertPerms *perms;
	ResultRelInfo *rri;
	Relation	rel;
	InsertShape *s;
	TupleTableSlot *slot;

	/* what the executor checks before it starts an INSERT */
	PreventCommandIfReadOnly("INSERT");
	PreventCommandIfParallelMode("INSERT");

	LockRelationOid(relid, RowExclusiveLock);

	estate = CreateExecutorState();
	oldcxt = MemoryContextSwitchTo(estate->es_query_cxt);

	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = relid;
	rte->relkind = RELKIND_RELATION;
	rte->rellockmode = RowExclusiveLock;
	perms = sms_insert_perms(rte, &perminfos);
	perms->requiredPerms = ACL_INSERT;
	sms_init_range_table(estate, list_make1(rte), perminfos);
	rri = makeNode(ResultRelInfo);
	ExecInitResultRelation(estate, rri, 1);
	rel = rri->ri_RelationDesc;
	s = insert_shape(rel);

	if (!insert_supported(rel, s))
	{
		ExecCloseResultRelations(estate);
		ExecCloseRangeTableRelations(estate);
		MemoryContextSwitchTo(oldcxt);
		FreeExecutorState(estate);
		return false;
	}

	/* the INSERT privilege on the columns given, as the current user */
	for (int i = 0; i < SMS_SEND_NCOLUMNS; i++)
		perms->insertedCols = bms_add_member(perms->insertedCols,
											 s->given[i] - FirstLowInvalidHeapAttributeNumber);
	sms_check_permissions(estate->es_range_table, perminfos);

	sms_check_insert_target(rri);
	estate->es_output_cid = GetCurrentCommandId(true);
	ExecOpenIndices(rri, false);

	AfterTriggerBeginQuery();
	ExecBSInsertTriggers(estate, rri);

	slot = form_row(estate, rel, s, values, isnull);
	*inserted = insert_row(estate, rri, s, slot, id);

	ExecASInsertTriggers(estate, rri, NULL);
	AfterTriggerEndQuery(estate);

	ExecResetTupleTable(estate->es_tupleTable, false);
	ExecCloseResultRelations(estate);
	ExecCloseRangeTableRelations(estate);
	MemoryContextSwitchTo(oldcxt);
	FreeExecutorState(estate);

	return true;
}
