/*-------------------------------------------------------------------------
 *
 * provider.h
 *	  What the worker needs from a provider module: build a request for a
 *	  job, and decide the job's outcome from the reply.  sms.provider picks
 *	  the module; each knows its own API and nothing of the worker's.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SMS_PROVIDER_H
#define SMS_PROVIDER_H

#include "job.h"

typedef struct SmsProvider
{
	const char *name;

	/* NULL if the provider can be used with the current settings, else why not */
	const char *(*missing_settings) (void);

	/* set the provider's options (URL, method, body, auth) on job->http->easy */
	void		(*prepare_send) (SmsJob *job);
	void		(*prepare_lookup) (SmsJob *job);

	/* set job->outcome and the fields to write back from the reply */
	void		(*finish_send) (SmsJob *job);

	/*
	 * Set job->outcome from a lookup reply; returns true if another page has
	 * to be fetched first (prepare_lookup is then called again).
	 */
	bool		(*finish_lookup) (SmsJob *job);

	/*
	 * A poll of delivery statuses (poll.h): set the next request's options,
	 * then read its reply into job->poll; returns true if another request
	 * is needed (prepare_poll is then called again).
	 */
	void		(*prepare_poll) (SmsJob *job);
	bool		(*finish_poll) (SmsJob *job);
} SmsProvider;

/* the module sms.provider names */
extern const SmsProvider *sms_chosen_provider(void);

extern const SmsProvider sms_twilio_provider;

#endif							/* SMS_PROVIDER_H */
