/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  Every difference between the PostgreSQL majors sms builds on, 15 to 18,
 *	  in one place.
 *
 *	  The code calls the names below, never a version-specific API, so that a
 *	  new major means a change here and nowhere else.  Each entry names the
 *	  release that changed the interface.  This header is also compiled into
 *	  the frontend fuzzer (twilio_json.c with FRONTEND), so the JSON entries
 *	  use nothing of the backend.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SMS_COMPAT_H
#define SMS_COMPAT_H

#if PG_VERSION_NUM < 150000
#error "sms needs PostgreSQL 15 or later"
#endif

/*
 * JSON parser callbacks (common/jsonapi.h): 16 made them return a
 * JsonParseErrorType, so that a callback can stop the parse.  Ours never do:
 * declare them SMS_JSON_CALLBACK and end them with SMS_JSON_CALLBACK_DONE.
 */
#if PG_VERSION_NUM >= 160000
#define SMS_JSON_CALLBACK JsonParseErrorType
#define SMS_JSON_CALLBACK_DONE return JSON_SUCCESS
#else
#define SMS_JSON_CALLBACK void
#define SMS_JSON_CALLBACK_DONE return
#endif

/*
 * A lexer over a counted, NUL-terminated string: 17 added a leading
 * argument, a context to fill in, or NULL to have one allocated.
 */
#if PG_VERSION_NUM >= 170000
#define sms_make_json_lexer(json, len, encoding, need_escapes) \
	makeJsonLexContextCstringLen(NULL, (json), (len), (encoding), (need_escapes))
#else
#define sms_make_json_lexer(json, len, encoding, need_escapes) \
	makeJsonLexContextCstringLen((json), (len), (encoding), (need_escapes))
#endif

#ifndef FRONTEND

/*
 * A wait event set that lives as long as the worker: before 17 it is
 * allocated in a memory context given, since 17 in TopMemoryContext and
 * tracked by the resource owner given (none: the worker frees it, or exits).
 */
#if PG_VERSION_NUM >= 170000
#define sms_create_wait_event_set(nevents) CreateWaitEventSet(NULL, (nevents))
#else
#define sms_create_wait_event_set(nevents) CreateWaitEventSet(TopMemoryContext, (nevents))
#endif

/*
 * The identity sequence of a column: 17 takes the open relation, not its
 * OID.
 */
#if PG_VERSION_NUM >= 170000
#define sms_identity_sequence(rel, attnum) \
	getIdentitySequence((rel), (attnum), false)
#else
#define sms_identity_sequence(rel, attnum) \
	getIdentitySequence(RelationGetRelid(rel), (attnum), false)
#endif

/*
 * Base64 of bytes: 18 declares the input const uint8 *, before it was
 * const char *.
 */
#if PG_VERSION_NUM >= 180000
#define sms_b64_encode(src, len, dst, dstlen) \
	pg_b64_encode((const uint8 *) (src), (len), (dst), (dstlen))
#else
#define sms_b64_encode(src, len, dst, dstlen) \
	pg_b64_encode((const char *) (src), (len), (dst), (dstlen))
#endif

/*
 * A search_path of pg_catalog and pg_temp for the current GUC nest level, as
 * a SECURITY DEFINER function with SET search_path has it: 17 has a
 * function for it, the same set_config_option() call.
 */
#if PG_VERSION_NUM >= 170000
#define sms_restrict_search_path() RestrictSearchPath()
#else
#define sms_restrict_search_path() \
	((void) set_config_option("search_path", "pg_catalog, pg_temp", \
							  PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, \
							  true, 0, false))
#endif

/*
 * sms_send()'s one-row insert through the executor (insert.c).  16 moved
 * the privileges to check out of the RangeTblEntry into an
 * RTEPermissionInfo, which ExecInitRangeTable and ExecCheckPermissions
 * (before: ExecCheckRTPerms) take, and gave ExecInsertIndexTuples
 * onlySummarizing; 17 gave CheckValidResultRel the MERGE actions, and 18
 * the ON CONFLICT action too; 18 has ExecInitRangeTable take the relations
 * that partition pruning left (here the one).  SmsInsertPerms is where the
 * privileges go: sms_insert_perms() returns it for a relation's entry.
 */
#if PG_VERSION_NUM >= 160000
#define SmsInsertPerms RTEPermissionInfo
#define sms_insert_perms(rte, perminfos) addRTEPermissionInfo((perminfos), (rte))
#define sms_check_permissions(rtable, perminfos) \
	ExecCheckPermissions((rtable), (perminfos), true)
#define sms_insert_index_tuples(rri, slot, estate) \
	ExecInsertIndexTuples((rri), (slot), (estate), false, false, NULL, NIL, false)
#else
#define SmsInsertPerms RangeTblEntry
#define sms_insert_perms(rte, perminfos) ((void) (perminfos), (rte))
#define sms_check_permissions(rtable, perminfos) ExecCheckRTPerms((rtable), true)
#define sms_insert_index_tuples(rri, slot, estate) \
	ExecInsertIndexTuples((rri), (slot), (estate), false, false, NULL, NIL)
#endif

#if PG_VERSION_NUM >= 180000
#define sms_init_range_table(estate, rtable, perminfos) \
	ExecInitRangeTable((estate), (rtable), (perminfos), bms_make_singleton(1))
#elif PG_VERSION_NUM >= 160000
#define sms_init_range_table(estate, rtable, perminfos) \
	ExecInitRangeTable((estate), (rtable), (perminfos))
#else
#define sms_init_range_table(estate, rtable, perminfos) \
	ExecInitRangeTable((estate), (rtable))
#endif

#if PG_VERSION_NUM >= 180000
#define sms_check_insert_target(rri) \
	CheckValidResultRel((rri), CMD_INSERT, ONCONFLICT_NONE, NIL)
#elif PG_VERSION_NUM >= 170000
#define sms_check_insert_target(rri) CheckValidResultRel((rri), CMD_INSERT, NIL)
#else
#define sms_check_insert_target(rri) CheckValidResultRel((rri), CMD_INSERT)
#endif

/*
 * Whether a commit waits for a synchronous standby at all.  15.13, 16.9,
 * 17.5 and 18 replaced WalSndCtl's bool sync_standbys_defined with the byte
 * sync_standbys_status, whose flags also say whether the checkpointer has
 * read synchronous_standby_names yet (until it has, a commit goes by the
 * setting itself).  Both are one byte in the same place, but the meaning is
 * the running server's, which a minor upgrade changes without a rebuild of
 * the extension: so the byte is read here and interpreted by the server's
 * version (see standby.c).
 */
#if PG_VERSION_NUM >= 170005 || \
	(PG_VERSION_NUM >= 160009 && PG_VERSION_NUM < 170000) || \
	(PG_VERSION_NUM >= 150013 && PG_VERSION_NUM < 160000)
#define sms_sync_standbys_byte(ctl) ((uint8) (ctl)->sync_standbys_status)
#else
#define sms_sync_standbys_byte(ctl) ((uint8) (ctl)->sync_standbys_defined)
#endif
#define sms_server_has_sync_standbys_status(version_num) \
	((version_num) >= 170005 || \
	 ((version_num) >= 160009 && (version_num) < 170000) || \
	 ((version_num) >= 150013 && (version_num) < 160000))
/* its flags there: SYNC_STANDBY_INIT and SYNC_STANDBY_DEFINED */
#define SMS_SYNC_STANDBY_INIT 0x01
#define SMS_SYNC_STANDBY_DEFINED 0x02

#endif							/* !FRONTEND */

#endif							/* SMS_COMPAT_H */
