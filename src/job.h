/*-------------------------------------------------------------------------
 *
 * job.h
 *	  One unit of the worker's network work: a message being sent, or a
 *	  message whose earlier outcome is being looked up at the provider.
 *
 *	  A job lives in its own small memory context, from the claim that
 *	  creates it to the write-back that records its outcome, so that nothing
 *	  a request allocates outlives it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SMS_JOB_H
#define SMS_JOB_H

#include "sms.h"

#include "access/xlogdefs.h"
#include "lib/stringinfo.h"

typedef enum SmsJobKind
{
	JOB_SEND,					/* create the message at the provider */
	JOB_LOOKUP,					/* find out whether an earlier attempt did */
	JOB_POLL					/* ask for sent messages' delivery status */
} SmsJobKind;

/* What a finished job does to its row. */
typedef enum SmsOutcome
{
	OUTCOME_NONE,
	OUTCOME_SENT,				/* the provider has the message: sent */
	OUTCOME_RETRY,				/* never reached the provider: pending, backoff */
	OUTCOME_FAILED,				/* the provider refused this message: failed */
	OUTCOME_UNKNOWN,			/* may or may not exist: unknown, reconcile */
	OUTCOME_PAUSE,				/* every message would fail alike (the account,
								 * the settings): pending, queue paused */
	OUTCOME_RESEND,				/* lookup found nothing: pending, send again */
	OUTCOME_LOOKUP_AGAIN,		/* lookup itself failed: stay unknown */
	OUTCOME_ABANDONED			/* stopped before any byte was sent: pending */
} SmsOutcome;

#define SMS_NUM_OUTCOMES (OUTCOME_ABANDONED + 1)

typedef struct SmsJob
{
	MemoryContext cxt;
	SmsJobKind	kind;
	struct SmsJob *next;		/* in the worker's lists */

	/* the row as claimed, from the outbox of this incarnation of the extension */
	Oid			extension_oid;
	int64		id;
	int32		attempts;		/* attempts counted when claimed */
	int32		priority;
	TimestampTz due;
	TimestampTz last_attempt_at;
	char	   *to_number;
	char	   *from_number;
	char	   *body;			/* UTF-8, or NULL */
	char	  **media_urls;
	int			nmedia;
	XLogRecPtr	claim_lsn;		/* the claim's commit, for sms_may_send() */

	/* the provider's request */
	struct SmsTransfer *http;	/* libcurl's side of it (http.h) */
	char	   *post_fields;
	char	   *url;			/* a lookup's current page */
	int			pages;			/* lookup pages fetched so far */
	struct SmsJob **batch;		/* a lookup's other rows (the same sender) */
	int			nbatch;
	TimestampTz listed_back_to; /* the oldest message a lookup has listed */
	bool		lookup_alone;	/* a batch could not reach back to this row */
	struct SmsPoll *poll;		/* a poll's rows and news (poll.h) */

	/* the outcome, written back */
	SmsOutcome	outcome;
	char	   *sid;
	char	   *status;
	int			num_segments;	/* -1 if not given */
	char	   *price;			/* validated numeric text, or NULL */
	char	   *price_unit;
	int			error_code;		/* 0 if none */
	char	   *error_message;
	char	   *pause_reason;	/* for OUTCOME_PAUSE */
	bool		pause_network;	/* ... a failure to reach the provider */
	int			retry_after_s;	/* the provider's Retry-After, or -1 */
} SmsJob;

extern SmsJob *sms_job_create(SmsJobKind kind);
extern void sms_job_free(SmsJob *job);

/*
 * The i-th of the rows a lookup answers for, 0 <= i <= job->nbatch: the
 * job's own, then its batch's.
 */
static inline SmsJob *
sms_lookup_row(SmsJob *job, int i)
{
	return i == 0 ? job : job->batch[i - 1];
}

#endif							/* SMS_JOB_H */
