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

#include <curl/curl.h>

/*
 * One job's request as libcurl carries it out: the handle, what came back,
 * and whether any of the request left.  Made by sms_http_easy_for(), in the
 * job's memory; http.c writes it, the provider reads it.
 */
typedef struct SmsTransfer
{
	SmsJob	   *job;
	CURL	   *easy;			/* while in flight */
	uint32		easy_generation;	/* of the settings it was set up under */
	uint32		headers_generation; /* of the provider's header list it uses */
	int			in_flight_index;	/* in http.c's array of jobs in flight */

	/* the outcome of the transfer */
	CURLcode	result;
	long		http_status;
	StringInfoData response;
	bool		response_too_large;
	int			retry_after_s;	/* from a Retry-After header, or -1 */
	char		error[CURL_ERROR_SIZE];
	long		os_errno;		/* the system's error of a failed connect */

	/* did any of the request leave? */
	bool		request_sent;
	int			prereq_calls;	/* requests curl was about to make */
	bool		retry_refused;	/* we stopped curl from silently resending */
	bool		held_back;		/* the send guard stopped it before any byte */
} SmsTransfer;

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
extern bool sms_http_abort(SmsJob *job);
extern char *sms_http_setting_failure(const SmsTransfer *t, const char *base_url);

#endif							/* SMS_HTTP_H */
