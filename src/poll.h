/*-------------------------------------------------------------------------
 *
 * poll.h
 *	  A poll: the worker asking the provider for the delivery status of
 *	  sent messages whose status is not final yet (see worker_poll.c).
 *
 *	  One poll serves the due rows of one sender.  It first walks the
 *	  provider's list of that sender's messages, newest first, back to the
 *	  oldest due row: every listed message is news, for the rows it claimed
 *	  and for any other row of the outbox that holds its SID (matched by SID
 *	  when written back), so at steady state one page of a thousand messages
 *	  answers for about a thousand rows.  The rows the list did not answer
 *	  for (still queued at the provider, so not listed by date sent; or past
 *	  what the walk may page through) are then asked about one GET each.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SMS_POLL_H
#define SMS_POLL_H

#include "job.h"

/* a Twilio message SID: two letters and 32 hex digits */
#define SMS_SID_LEN 34

/* one row a poll claimed */
typedef struct SmsPollRow
{
	char		sid[SMS_SID_LEN + 1];	/* sorted by this, for bsearch */
	int64		id;
	TimestampTz sent_at;
	bool		answered;		/* listed, or answered by its own GET */
	bool		gone;			/* the provider has no such message */
} SmsPollRow;

/* one message's status as the provider told it */
typedef struct SmsStatusNews
{
	char		sid[SMS_SID_LEN + 1];
	const char *status;			/* status.c's own string for it */
	int			error_code;		/* 0 if none */
	char	   *error_message;	/* or NULL */
	char	   *price;			/* validated numeric text, or NULL */
	char	   *price_unit;
} SmsStatusNews;

typedef struct SmsPoll
{
	char	   *sender;			/* the rows' from_number */
	SmsPollRow *rows;
	int			nrows;
	int			unanswered;
	TimestampTz walk_floor;		/* a listed message sent before it is none of
								 * the rows' (the oldest row, less a slack) */
	bool		walking;		/* still paging through the list */
	int			walk_pages;
	int			next_get;		/* the next row to GET, once the walk ended */
	SmsStatusNews *news;
	int			nnews;
	int			maxnews;
	bool		failed;			/* a request failed: the rest wait for their
								 * next look */
	TimestampTz lease;			/* the claim's status_poll_at on its rows */
} SmsPoll;

extern void sms_poll_init(SmsJob *job, const char *sender, SmsPollRow *rows, int n);
extern SmsPollRow *sms_poll_find_row(SmsPoll *poll, const char *sid);
extern SmsStatusNews *sms_poll_add_news(SmsJob *job, const char *sid,
										const char *status);

#endif							/* SMS_POLL_H */
