/*-------------------------------------------------------------------------
 *
 * twilio_auth.h
 *	  The headers, credentials among them, of requests to Twilio.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SMS_TWILIO_AUTH_H
#define SMS_TWILIO_AUTH_H

#include "job.h"

struct curl_slist;

extern struct curl_slist *sms_twilio_request_headers(SmsJob *job);

#endif							/* SMS_TWILIO_AUTH_H */
