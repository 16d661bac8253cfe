/*-------------------------------------------------------------------------
 *
 * poll.c
 *	  A poll's rows and the news it gathers (see poll.h).
 *
 *-------------------------------------------------------------------------
 */
#include "poll.h"

#include "utils/memutils.h"
#include "utils/timestamp.h"

/*
 * A listed message sent this long before the oldest row's send can be no
 * row's: it covers the provider's clock running behind ours.
 */
#define WALK_SLACK_SECS 5

static int
compare_rows(const void *a, const void *b)
{
	return strcmp(((const SmsPollRow *) a)->sid, ((const SmsPollRow *) b)->sid);
}

/*
 * Make job a poll of its claimed rows (rows[n], in the job's memory):
 * sorted by SID for matching, walking the list back to the oldest send.
 */
void
sms_poll_init(SmsJob *job, const char *sender, SmsPollRow *rows, int n)
{
	SmsPoll    *poll = MemoryContextAllocZero(job->cxt, sizeof(SmsPoll));
	TimestampTz oldest = 0;

	for (int i = 0; i < n; i++)
		if (i == 0 || rows[i].sent_at < oldest)
			oldest = rows[i].sent_at;
	qsort(rows, n, sizeof(SmsPollRow), compare_rows);
	poll->sender = MemoryContextStrdup(job->cxt, sender);
	poll->rows = rows;
	poll->nrows = n;
	poll->unanswered = n;
	/* a row with no finite send time (set by hand) is asked about alone */
	poll->walking = !TIMESTAMP_NOT_FINITE(oldest);
	if (poll->walking)
		poll->walk_floor = oldest - (int64) WALK_SLACK_SECS * USECS_PER_SEC;
	job->poll = poll;
}

/* The poll's own row with this SID, or NULL. */
SmsPollRow *
sms_poll_find_row(SmsPoll *poll, const char *sid)
{
	SmsPollRow	key;

	if (strlen(sid) > SMS_SID_LEN)
		return NULL;
	strcpy(key.sid, sid);
	return bsearch(&key, poll->rows, poll->nrows, sizeof(SmsPollRow), compare_rows);
}

/* A new, zeroed piece of news for a SID, in the job's memory. */
SmsStatusNews *
sms_poll_add_news(SmsJob *job, const char *sid, const char *status)
{
	SmsPoll    *poll = job->poll;
	SmsStatusNews *news;

	if (poll->nnews == poll->maxnews)
	{
		poll->maxnews = Max(64, poll->maxnews * 2);
		poll->news = poll->news ?
			repalloc(poll->news, sizeof(SmsStatusNews) * poll->maxnews) :
			MemoryContextAlloc(job->cxt, sizeof(SmsStatusNews) * poll->maxnews);
	}
	news = &poll->news[poll->nnews++];
	memset(news, 0, sizeof(SmsStatusNews));
	strlcpy(news->sid, sid, sizeof(news->sid));
	news->status = status;
	return news;
}
