/*-------------------------------------------------------------------------
 *
 * provider.c
 *	  Which provider module sms.provider names.
 *
 *	  A provider module is a table of functions (provider.h); adding one is
 *	  a new file, a value of SmsProviderId and of sms.provider, and a line
 *	  here.
 *
 *-------------------------------------------------------------------------
 */
#include "provider.h"

static const SmsProvider *const providers[] = {
	[SMS_PROVIDER_TWILIO] = &sms_twilio_provider,
};

const SmsProvider *
sms_chosen_provider(void)
{
	if (sms_provider < 0 || sms_provider >= (int) lengthof(providers) ||
		providers[sms_provider] == NULL)
		elog(ERROR, "no provider module for sms.provider %d", sms_provider);
	return providers[sms_provider];
}
