/*-------------------------------------------------------------------------
 *
 * standby.h
 *	  The worker's commits and the synchronous standby: may a claimed row
 *	  go out yet, and commits whose wait SIGTERM ends.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SMS_STANDBY_H
#define SMS_STANDBY_H

#include "sms.h"

#include "access/xlogdefs.h"

extern void sms_standby_sigterm(SIGNAL_ARGS);
extern XLogRecPtr sms_commit_claims(void);
extern bool sms_claims_replicated(XLogRecPtr lsn);
extern bool sms_may_send(XLogRecPtr claim_lsn);
extern void sms_standby_new_pass(void);
extern void sms_commit_locally(void);

#endif							/* SMS_STANDBY_H */
