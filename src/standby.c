/*-------------------------------------------------------------------------
 *
 * standby.c
 *	  The worker's commits and the synchronous standby.
 *
 *	  A claim (pending -> sending) commits before its message goes out, so
 *	  that a promoted standby knows of every message the old primary may
 *	  have sent.  That holds only if the standby has the claim: PostgreSQL
 *	  ends a commit's wait for the synchronous standby early when the
 *	  postmaster dies, on a cancel and on die(), and the commit then returns
 *	  as committed locally only.  A message sent after such a commit could be
 *	  sent again by a standby promoted without the claim.  So the worker asks
 *	  sms_may_send() at the last moment, in curl's pre-request callback just
 *	  before a request's first byte: the postmaster is alive, no shutdown is
 *	  under way, and the claim's commit record has reached a synchronous
 *	  standby (or no commit waits for one: synchronous replication is off,
 *	  as after Patroni took a dead replica out of synchronous_standby_names).
 *	  A claim committed locally only is held back until the standby has it.
 *
 *	  A commit waiting for a standby listens to die() alone, not to the flag
 *	  that the worker's SIGTERM handler sets for an orderly stop; so while
 *	  one waits, sms_standby_sigterm() raises die() as well, the wait ends,
 *	  and the flag is put back for the worker's own shutdown.  Commits after
 *	  a SIGTERM do not wait at all (sms_commit_locally): what they record is
 *	  truthful whether or not the standby gets it, since a row the standby
 *	  has in 'sending' is looked up before it is sent again.
 *
 *	  The decision whether a commit waits mirrors SyncRepWaitForLSN's: the
 *	  worker commits with synchronous_commit = on, so it waits for the
 *	  standby's flush.
 *
 *-------------------------------------------------------------------------
 */
#include "standby.h"

#include <signal.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "replication/syncrep.h"
#include "replication/walsender.h"
#include "replication/walsender_private.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/pmsignal.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

/* a commit that may wait for the standby is under way */
static volatile sig_atomic_t waiting_for_standby = false;
/* ... and SIGTERM raised die() to end it */
static volatile sig_atomic_t die_raised = false;

/* the latest claim a synchronous standby is known to have */
static XLogRecPtr confirmed_lsn = InvalidXLogRecPtr;

/*
 * This pass of the worker's loop found that no commit waits for a standby
 * (synchronous replication is off): asked before each request, the answer
 * is kept for the pass rather than read under SyncRepLock every time.  A
 * pass ends wherever the worker may wait (its sleep, a commit): a reload
 * that turns synchronous replication on is seen before the next request.
 */
static bool no_standby_this_pass = false;

void
sms_standby_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	ShutdownRequestPending = true;
	if (waiting_for_standby)
	{
		die_raised = true;
		ProcDiePending = true;
		InterruptPending = true;
	}
	SetLatch(MyLatch);
	errno = save_errno;
}

/* sms_stats shows a wait that lasts (see sms_worker_condition) */
static void
enter_wait(void)
{
	pg_atomic_write_u64(&sms_shared->workers[sms_worker_slot].standby_wait_since,
						(uint64) GetCurrentTimestamp());
	waiting_for_standby = true;
}

static void
leave_wait(void)
{
	waiting_for_standby = false;
	pg_atomic_write_u64(&sms_shared->workers[sms_worker_slot].standby_wait_since, 0);
	/* the worker stops in its own way, between turns */
	if (die_raised)
	{
		die_raised = false;
		ProcDiePending = false;
	}
}

/*
 * Once a SIGTERM came, commits do not wait for a standby that may never
 * answer: the worker is about to exit (see the header comment).
 */
void
sms_commit_locally(void)
{
	SetConfigOption("synchronous_commit", "local", PGC_SUSET, PGC_S_OVERRIDE);
}

/*
 * Commit the worker's transaction; returns the commit record's end, to be
 * passed to sms_may_send() for the rows it claimed.
 */
XLogRecPtr
sms_commit_claims(void)
{
	sms_standby_new_pass();
	enter_wait();
	PG_TRY();
	{
		/* a SIGTERM before the flag was up is seen here */
		if (ShutdownRequestPending)
			sms_commit_locally();
		CommitTransactionCommand();
	}
	PG_FINALLY();
	{
		/* (a deferred trigger of the user's can fail the commit) */
		leave_wait();
	}
	PG_END_TRY();
	return XactLastCommitEnd;
}

/*
 * Does the running server keep WalSndCtl's sync_standbys_status (see
 * compat.h)?  Its version, not the one this was built against, decides.
 */
static bool
server_has_status(void)
{
	static int	version_num = 0;

	if (version_num == 0)
		version_num = atoi(GetConfigOption("server_version_num", false, false));
	return sms_server_has_sync_standbys_status(version_num);
}

/*
 * May the rows claimed by the commit at lsn go out, as far as the standby
 * goes?  Yes if a synchronous standby has confirmed it, or if no commit
 * waits for one now (as SyncRepWaitForLSN decides).
 */
bool
sms_claims_replicated(XLogRecPtr lsn)
{
	bool		replicated;
	uint8		status;

	if (XLogRecPtrIsInvalid(lsn) || lsn <= confirmed_lsn || no_standby_this_pass)
		return true;
	if (!SyncRepRequested())
		return true;

	LWLockAcquire(SyncRepLock, LW_SHARED);
	status = sms_sync_standbys_byte(WalSndCtl);
	if (lsn <= WalSndCtl->lsn[SYNC_REP_WAIT_FLUSH])
	{
		confirmed_lsn = lsn;
		replicated = true;
	}
	else
	{
		if (!server_has_status())
			replicated = status == 0;	/* the bool sync_standbys_defined */
		else if (status & SMS_SYNC_STANDBY_INIT)
			replicated = (status & SMS_SYNC_STANDBY_DEFINED) == 0;
		else
			replicated = SyncRepStandbyNames == NULL || SyncRepStandbyNames[0] == '\0';
		no_standby_this_pass = replicated;
	}
	LWLockRelease(SyncRepLock);
	return replicated;
}

/* A new pass of the worker's loop, after a wait: look at the standbys afresh. */
void
sms_standby_new_pass(void)
{
	no_standby_this_pass = false;
}

/*
 * May a request for a row claimed by the commit at claim_lsn leave now?
 * Called just before its first byte does.
 */
bool
sms_may_send(XLogRecPtr claim_lsn)
{
	return !ShutdownRequestPending && !ProcDiePending && PostmasterIsAlive() &&
		sms_claims_replicated(claim_lsn);
}
