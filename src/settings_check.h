/*-------------------------------------------------------------------------
 *
 * settings_check.h
 *	  Check hooks of sms.api_url and sms.ca_file.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SMS_SETTINGS_CHECK_H
#define SMS_SETTINGS_CHECK_H

#include "utils/guc.h"

extern bool sms_check_api_url(char **newval, void **extra, GucSource source);
extern bool sms_check_ca_file(char **newval, void **extra, GucSource source);
extern bool sms_check_status_callback_url(char **newval, void **extra,
										 GucSource source);

#endif							/* SMS_SETTINGS_CHECK_H */
