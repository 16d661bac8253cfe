/*-------------------------------------------------------------------------
 *
 * twilio.h
 *	  What twilio.c (sending, reconciling) shares with twilio_status.c
 *	  (polling the delivery status): the API's URLs and its formats.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SMS_TWILIO_H
#define SMS_TWILIO_H

#include "job.h"

#include <curl/curl.h>

#include "lib/stringinfo.h"

extern int	sms_twilio_base_len(void);
extern const char *sms_twilio_messages_url(void);
extern void sms_twilio_append_param(StringInfo buf, CURL *easy,
									const char *name, const char *value);
extern int	sms_twilio_int(const char *s);
extern char *sms_twilio_price(const char *s);
extern TimestampTz sms_twilio_date(const char *s);
extern bool sms_twilio_read_page(SmsJob *job, bool (*read_page) (SmsJob *job));

/* the provider's module functions for polling (twilio_status.c) */
extern void sms_twilio_prepare_poll(SmsJob *job);
extern bool sms_twilio_finish_poll(SmsJob *job);

#endif							/* SMS_TWILIO_H */
