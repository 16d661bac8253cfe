/*-------------------------------------------------------------------------
 *
 * http.h
 *	  libcurl's multi interface, driven from the worker's WaitEventSet.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SMS_HTTP_H
#define SMS_HTTP_H

#include "job.h"

/* may this job's request leave now? asked just before its first byte */
typedef bool (*SmsSendGuard) (const SmsJob *job);

extern void sms_http_init(int max_connections, SmsSendGuard guard);
extern void sms_http_configure(int max_connections);
extern pgsocket sms_http_socket(void);
extern long sms_http_timeout_ms(void);
extern bool sms_http_perform(int max_sockets);
extern CURL *sms_http_easy_for(SmsJob *job);
extern void sms_http_start(SmsJob *job);
extern SmsJob *sms_http_next_done(void);
extern int	sms_http_in_flight(void);
extern SmsJob *sms_http_in_flight_job(int i);
extern SmsJob *sms_http_any_in_flight(void);
extern void sms_http_abort(SmsJob *job);
extern char *sms_http_setting_failure(const SmsJob *job, const char *base_url);

#endif							/* SMS_HTTP_H */
