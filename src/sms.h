/*-------------------------------------------------------------------------
 *
 * sms.h
 *	  Declarations shared by the parts of the sms extension.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SMS_H
#define SMS_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/array.h"

#include "compat.h"

#define SMS_VERSION "1.1"
#define SMS_USER_AGENT "pg-sms/" SMS_VERSION " (PostgreSQL extension)"

/* settings (sms.c) */
extern char *sms_database;
extern int	sms_provider;		/* SmsProviderId */
extern char *sms_api_url;
extern char *sms_account_sid;
extern char *sms_auth_token;
extern char *sms_api_key_sid;
extern char *sms_api_key_secret;
extern int	sms_max_concurrency;
extern int	sms_rate_limit;
extern int	sms_request_timeout_ms;
extern int	sms_max_attempts;
extern int	sms_retry_base_ms;
extern int	sms_retry_max_ms;
extern int	sms_reconcile_grace_ms;
extern int	sms_reconcile_rate;
extern char *sms_ca_file;
extern int	sms_retention_s;
extern int	sms_workers;
extern bool sms_status_poll;
extern int	sms_status_poll_interval_s;
extern int	sms_status_poll_rate;
extern char *sms_status_callback_url;

#define SMS_MAX_WORKERS 16

/* the values of sms.provider (see sms_chosen_provider) */
typedef enum SmsProviderId
{
	SMS_PROVIDER_TWILIO
} SmsProviderId;

#include "shared.h"


/* who called, while sms_send() or sms_cancel() acts as the outbox's owner */
typedef struct SmsCaller
{
	Oid			userid;
	int			sec_context;
	int			guc_nestlevel;
} SmsCaller;
extern void sms_become_owner(Oid owner, SmsCaller *caller);
extern void sms_restore_caller(const SmsCaller *caller);

/* validate.c */
extern void sms_validate_to(const char *to_number);
extern void sms_validate_from(const char *from_number);
extern void sms_validate_content(text *body, ArrayType *media_urls);
extern void sms_validate_idempotency_key(const char *key);
extern void sms_validate_send_at(TimestampTz send_at);
extern bool sms_is_sid(const char *s, const char *prefix);
extern bool sms_is_messaging_service_sid(const char *from_number);

/* encoding.c */
typedef enum SmsEncoding
{
	SMS_GSM7,
	SMS_UCS2
} SmsEncoding;

extern SmsEncoding sms_body_encoding(const char *utf8, int len);
extern int	sms_body_segments(const char *utf8, int len);

/* redact.c */
extern void sms_redact_log_event(ErrorData *edata);

/* worker.c */
extern PGDLLEXPORT void sms_worker_main(Datum main_arg);

#endif							/* SMS_H */
