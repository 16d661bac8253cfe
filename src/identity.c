/*-------------------------------------------------------------------------
 *
 * identity.c
 *	  Which copy of the extension, and of its outbox, this is: answered
 *	  here for sms_send(), sms_cancel() and the worker alike.
 *
 *	  sms_send() and the worker keep statements that name the outbox by
 *	  schema and table (sms_cancel() names it the same way), and PostgreSQL parses a saved statement again from those names
 *	  whenever it is invalidated: after DROP EXTENSION and CREATE EXTENSION,
 *	  a renamed table or schema, the names could lead to another table, or
 *	  to none.  So the outbox found last is checked with syscache probes
 *	  (its row in pg_class: still there, still named sms_outbox in the same
 *	  schema; the schema still of the same name) before each use, which is
 *	  cheap, and looked up afresh from pg_extension when any of that
 *	  changed, which is not.  A new lookup gets a new generation, and the
 *	  callers prepare their statements again for it.
 *
 *	  A table named sms_outbox that is not a member of the extension is
 *	  never taken for the outbox.
 *
 *-------------------------------------------------------------------------
 */
#include "identity.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "commands/extension.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

static SmsOutbox current;		/* relid InvalidOid: none found yet */

/* Has the outbox version 1.1's delivery columns? */
static bool
has_delivery_columns(Oid relid)
{
	return get_attnum(relid, "delivered_at") != InvalidAttrNumber;
}

/*
 * The schema an extension was created in (PostgreSQL 15 keeps its own
 * get_extension_schema() private).
 */
static Oid
extension_schema(Oid extoid)
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
 * Is the outbox found last time still where its name leads, and who owns
 * it now?
 */
static bool
outbox_unchanged(void)
{
	HeapTuple	tup;
	Form_pg_class cls;
	bool		same;

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(current.relid));
	if (!HeapTupleIsValid(tup))
		return false;
	cls = (Form_pg_class) GETSTRUCT(tup);
	same = cls->relnamespace == current.nspid &&
		strcmp(NameStr(cls->relname), "sms_outbox") == 0;
	current.owner = cls->relowner;
	ReleaseSysCache(tup);
	if (!same)
		return false;

	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(current.nspid));
	if (!HeapTupleIsValid(tup))
		return false;
	same = strcmp(NameStr(((Form_pg_namespace) GETSTRUCT(tup))->nspname),
				  current.nspname) == 0;
	ReleaseSysCache(tup);

	/*
	 * ALTER EXTENSION sms UPDATE adds columns to the same table: statements
	 * for the older outbox must be prepared again for the newer.
	 */
	return same &&
		has_delivery_columns(current.relid) == current.delivery_columns;
}

/*
 * The outbox of the extension as it is now, and its owner as of now.  NULL
 * if the extension does not exist and missing_ok; else that is an error,
 * as is an extension whose sms_outbox is gone or renamed.
 */
const SmsOutbox *
sms_outbox(bool missing_ok)
{
	Oid			extoid;
	Oid			nspid;
	Oid			relid;

	/*
	 * Looking the extension up by name scans pg_extension; while the outbox
	 * found last time still exists (syscache probes), so does its extension.
	 */
	if (OidIsValid(current.relid) && outbox_unchanged())
		return &current;

	current.relid = InvalidOid;
	extoid = get_extension_oid("sms", missing_ok);
	if (!OidIsValid(extoid))
		return NULL;
	nspid = extension_schema(extoid);
	relid = get_relname_relid("sms_outbox", nspid);
	/* (a table of that name that is not the extension's is not the outbox) */
	if (!OidIsValid(relid) ||
		getExtensionOfObject(RelationRelationId, relid) != extoid)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table sms_outbox of extension sms does not exist"),
				 errhint("The extension's table must keep its name, in the extension's schema.")));

	current.extoid = extoid;
	current.nspid = nspid;
	strlcpy(current.nspname, get_namespace_name(nspid), NAMEDATALEN);
	current.relid = relid;
	current.delivery_columns = has_delivery_columns(relid);
	current.generation++;
	if (!outbox_unchanged())
		elog(ERROR, "cache lookup failed for relation %u", relid);
	return &current;
}

/* The outbox's name, schema-qualified and quoted, for a statement. */
char *
sms_outbox_table_name(const SmsOutbox *outbox)
{
	return quote_qualified_identifier(outbox->nspname, "sms_outbox");
}
