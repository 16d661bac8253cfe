/*-------------------------------------------------------------------------
 *
 * status.h
 *	  The provider's delivery status of a message, and applying news of it
 *	  to the outbox by rank (status.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SMS_STATUS_H
#define SMS_STATUS_H

#include "sms.h"

#include "datatype/timestamp.h"

/* news of one message's delivery: a callback's, or a poll's */
typedef struct SmsDeliveryNews
{
	int64		id;				/* the outbox row */
	const char *sid;			/* which must hold this message */
	const char *status;
	int			error_code;		/* 0 if none */
	const char *error_message;	/* NULL: Twilio's words for the code */
} SmsDeliveryNews;

typedef enum SmsNewsResult
{
	NEWS_APPLIED,
	NEWS_OLDER,					/* the row's status ranks as high or higher */
	NEWS_NO_SUCH_MESSAGE		/* no such row, or it holds another SID */
} SmsNewsResult;

extern int	sms_status_rank(const char *status);
extern bool sms_status_is_final(const char *status);
extern const char *sms_status_known(const char *status);
extern char *sms_status_rank_sql(const char *expr);
extern char *sms_status_finals_sql(void);
extern TimestampTz sms_next_status_poll(TimestampTz sent_at, TimestampTz now,
										int interval_s);
extern const char *sms_delivery_error_text(int code);
extern SmsNewsResult sms_apply_delivery_news(const SmsDeliveryNews *news);

#endif							/* SMS_STATUS_H */
