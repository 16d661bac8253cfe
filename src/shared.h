/*-------------------------------------------------------------------------
 *
 * shared.h
 *	  What the workers and the backends that queue messages share (shared.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SMS_SHARED_H
#define SMS_SHARED_H

#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/spin.h"

#define SMS_CONDITION_LEN 200

typedef struct SmsWorkerSlot
{
	/* set by a committing backend, cleared by the worker before it claims */
	pg_atomic_uint32 wakeup_requested;
	Latch	   *latch;			/* NULL while the worker is not running */
	int			pid;
	/* when its commit began to wait for a standby (TimestampTz), or 0 */
	pg_atomic_uint64 standby_wait_since;
	/* since when it holds claims the standby lacks (see standby.c), or 0 */
	pg_atomic_uint64 claims_held_since;
	/* when it last applied the configuration (at start and after SIGHUP) */
	pg_atomic_uint64 settings_applied_at;
} SmsWorkerSlot;

typedef struct SmsShared
{
	slock_t		mutex;			/* protects the fields below */
	TimestampTz condition_since;
	char		condition[SMS_CONDITION_LEN];	/* the first worker's */
	/* set by a worker whose rows became 'unknown'; the first reconciles */
	pg_atomic_uint32 unknown_rows_added;
	int			nworkers;
	SmsWorkerSlot workers[FLEXIBLE_ARRAY_MEMBER];
} SmsShared;

extern SmsShared *sms_shared;

/* the worker's own slot (0 for the first), -1 in other processes */
extern int	sms_worker_slot;

extern void sms_shared_request(int nworkers);
extern void sms_wake_workers(void);
extern void sms_set_worker_latch(int i);
extern void sms_wake_worker_at_commit(void);
extern void sms_set_condition(const char *fmt,...) pg_attribute_printf(1, 2);
extern void sms_settings_applied(TimestampTz read_at);

#endif							/* SMS_SHARED_H */
