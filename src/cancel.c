/*-------------------------------------------------------------------------
 *
 * cancel.c
 *	  sms_cancel(): a role cancels its own pending messages.
 *
 *	  A role granted EXECUTE on sms_cancel needs no right to write the
 *	  outbox: the update runs as the outbox's owner and can only move a
 *	  pending row to canceled.  Which rows it may touch depends on who calls:
 *	  a role cancels the messages it queued (created_by), and only a role
 *	  that could rewrite any row anyway (the outbox's owner, a superuser, or
 *	  one granted UPDATE on sms_outbox: the operators) cancels other roles'.
 *	  A SECURITY DEFINER function in SQL could not tell its caller from its
 *	  owner, hence C.
 *
 *	  As in any SECURITY DEFINER function, the owner's rights come with a
 *	  search_path of pg_catalog and pg_temp and a restricted operation
 *	  (sms_become_owner), so nothing the caller created can run with them,
 *	  in the statement or in a trigger on the outbox.
 *
 *-------------------------------------------------------------------------
 */
#include "identity.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

PG_FUNCTION_INFO_V1(sms_cancel);

/*
 * sms_cancel(id bigint) returns boolean
 *
 * True if the message was pending and is now canceled; false if there is no
 * such message, it is no longer pending, or it is another role's and the
 * caller may not cancel other roles' messages (which is not told apart, so
 * that ids of other roles' messages cannot be probed).
 */
Datum
sms_cancel(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	Oid			caller = GetUserId();
	const SmsOutbox *found = sms_outbox(false);
	Oid			owner = found->owner;
	char	   *outbox = sms_outbox_table_name(found);
	bool		any_role = pg_class_aclcheck(found->relid, caller, ACL_UPDATE) == ACLCHECK_OK;
	Oid			argtypes[3] = {INT8OID, BOOLOID, NAMEOID};
	Datum		args[3];
	SmsCaller	saved;
	int			ret;

	args[0] = Int64GetDatum(id);
	args[1] = BoolGetDatum(any_role);
	args[2] = DirectFunctionCall1(namein,
								  CStringGetDatum(GetUserNameFromId(caller, false)));

	sms_become_owner(owner, &saved);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute_with_args(psprintf("UPDATE %s SET state = 'canceled',"
										 " updated_at = pg_catalog.now()"
										 " WHERE id OPERATOR(pg_catalog.=) $1"
										 " AND state OPERATOR(pg_catalog.=) 'pending'"
										 " AND ($2 OR created_by OPERATOR(pg_catalog.=) $3)",
										 outbox),
								3, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "could not cancel message " INT64_FORMAT ": %s",
			 id, SPI_result_code_string(ret));
	ret = (int) SPI_processed;
	SPI_finish();

	sms_restore_caller(&saved);

	PG_RETURN_BOOL(ret > 0);
}
