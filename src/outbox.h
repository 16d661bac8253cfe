/*-------------------------------------------------------------------------
 *
 * outbox.h
 *	  The SQL the worker runs against sms_outbox.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SMS_OUTBOX_H
#define SMS_OUTBOX_H

#include "job.h"

/* the outcome of one job, as the write-back records it */
typedef struct SmsWriteBack
{
	int64		id;
	const char *expected_state;
	int32		expected_attempts;
	const char *new_state;
	int32		new_attempts;
	TimestampTz next_attempt_at;	/* 0 keeps the row's */
	const char *error_message;	/* for this write-back only (see outcome.c) */
	const SmsJob *job;			/* sid, status, error code ... */
} SmsWriteBack;

extern bool sms_outbox_begin(void);
extern Oid	sms_outbox_extension_oid(void);
extern XLogRecPtr sms_outbox_commit(void);
extern int	sms_outbox_recover_inflight(int worker, int nworkers,
										const int64 *held, int nheld);
extern SmsJob *sms_outbox_claim(int limit, int worker, int *nclaimed);
extern SmsJob *sms_outbox_claim_unknown(int limit, int lease_ms,
										TimestampTz alone_before, int *nclaimed);
extern int	sms_outbox_write_back(SmsWriteBack *wb, int n);
extern void sms_outbox_next_due(TimestampTz *pending_due, TimestampTz *unknown_due);
extern int	sms_outbox_purge(int retention_s);

/* outbox_status.c */
struct SmsPoll;
extern bool sms_outbox_has_polls(void);
extern SmsJob *sms_outbox_claim_poll(int limit, int lease_ms,
									 const char **senders, int nsenders);
extern TimestampTz sms_outbox_next_poll_due(void);
extern TimestampTz sms_outbox_write_poll(const struct SmsPoll *poll, TimestampTz now);

#endif							/* SMS_OUTBOX_H */
