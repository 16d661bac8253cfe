/*-------------------------------------------------------------------------
 *
 * insert.h
 *	  Inserting one message into the outbox for sms_send().
 *
 *-------------------------------------------------------------------------
 */
#ifndef SMS_INSERT_H
#define SMS_INSERT_H

#define SMS_SEND_NCOLUMNS 9
#define SMS_SEND_NARGS 7

extern bool sms_insert_message(Oid relid, const Datum *values,
							   const bool *isnull, bool *inserted, int64 *id);

#endif							/* SMS_INSERT_H */
