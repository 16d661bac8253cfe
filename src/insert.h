/*-------------------------------------------------------------------------
 *
 * insert.h
 *	  Inserting one message into the outbox for sms_send().
 *
 *-------------------------------------------------------------------------
 */
#ifndef SMS_INSERT_H
#define SMS_INSERT_H

/*
 * The outbox columns sms_send() sets, in the order of its values: its
 * arguments first, idempotency_key among them, then two it computes.
 */
#define SMS_SEND_NCOLUMNS 9
#define SMS_SEND_NARGS 7
#define SMS_SEND_KEY_COLUMN 6
#define SMS_SEND_CREATED_BY_COLUMN 7
extern const char *const sms_send_columns[SMS_SEND_NCOLUMNS];
extern const Oid sms_send_column_types[SMS_SEND_NCOLUMNS];

extern bool sms_insert_message(Oid relid, const Datum *values,
							   const bool *isnull, bool *inserted, int64 *id);

#endif							/* SMS_INSERT_H */
