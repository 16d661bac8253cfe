/*-------------------------------------------------------------------------
 *
 * outcome.h
 *	  From a finished job's outcome to its row's next state (outcome.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SMS_OUTCOME_H
#define SMS_OUTCOME_H

#include "outbox.h"

extern bool sms_attempts_exhausted(const SmsJob *job);
extern void sms_plan_write_back(const SmsJob *job, TimestampTz now,
								SmsWriteBack *wb);
extern bool sms_write_back_gives_back(const SmsWriteBack *wb);

#endif							/* SMS_OUTCOME_H */
