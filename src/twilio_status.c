/*-------------------------------------------------------------------------
 *
 * twilio_status.c
 *	  Twilio's side of a poll of delivery statuses (see poll.h).
 *
 *	  The walk: GET {api_url}/2010-04-01/Accounts/{AccountSid}/Messages.json
 *	  ?From={sender}&DateSent>={day}&PageSize=1000, newest first, through
 *	  next_page_uri.  Twilio's DateSent filter takes a day, not a time, so
 *	  the walk itself stops at the first message sent before the oldest
 *	  row's send (less a slack for the clocks).  A Messaging Service picks
 *	  the sending number itself: its rows are walked without From.
 *
 *	  Then one GET .../Messages/{Sid}.json for each row the walk did not
 *	  answer for: a message still queued has no date sent and is not listed,
 *	  and one that failed while queued (30001) never gets one.
 *
 *	  A failed request ends the poll: what it learnt so far is kept, and the
 *	  rows not answered for wait for their next look.  Nothing here changes
 *	  a row's state.
 *
 *-------------------------------------------------------------------------
 */
#include "poll.h"
#include "status.h"
#include "twilio.h"
#include "twilio_auth.h"
#include "twilio_json.h"

#include "http.h"
#include "utils/datetime.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

/* pages one walk may fetch at most */
#define MAX_WALK_PAGES 100
#define WALK_PAGE_SIZE 1000

static void
prepare_walk(SmsJob *job)
{
	SmsPoll    *poll = job->poll;
	CURL	   *easy = job->http->easy;
	StringInfoData q;
	struct pg_tm tm;
	fsec_t		fsec;

	if (poll->walk_pages > 0)
		return;					/* job->url is the next page's */
	initStringInfo(&q);
	if (!sms_is_messaging_service_sid(poll->sender))
		sms_twilio_append_param(&q, easy, "From", poll->sender);
	/* the key is "DateSent>", as Twilio's SDKs send it (sms_poll_init made the floor finite) */
	if (timestamp2tm(poll->walk_floor, NULL, &tm, &fsec, NULL, NULL) == 0)
		appendStringInfo(&q, "%sDateSent%%3E=%04d-%02d-%02d",
						 q.len > 0 ? "&" : "", tm.tm_year, tm.tm_mon, tm.tm_mday);
	appendStringInfo(&q, "%sPageSize=%d", q.len > 0 ? "&" : "", WALK_PAGE_SIZE);
	job->url = psprintf("%s?%s", sms_twilio_messages_url(), q.data);
}

void
sms_twilio_prepare_poll(SmsJob *job)
{
	SmsPoll    *poll = job->poll;
	CURL	   *easy = job->http->easy;

	if (poll->walking)
		prepare_walk(job);
	else
	{
		const char *list = sms_twilio_messages_url();

		/* .../Messages.json -> .../Messages/{Sid}.json */
		job->url = psprintf("%.*s/%s.json", (int) strlen(list) - 5, list,
							poll->rows[poll->next_get].sid);
	}
	curl_easy_setopt(easy, CURLOPT_URL, job->url);
	curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, sms_twilio_request_headers(job));
}

/*
 * One listed (or fetched) message: news for whichever row holds its SID.
 * Returns the row of the poll's own that it answers for, or NULL.
 */
static SmsPollRow *
take_news(SmsJob *job, const TwilioMessage *m)
{
	SmsPoll    *poll = job->poll;
	SmsStatusNews *news;
	SmsPollRow *row;
	MemoryContext old;

	if (m->sid == NULL || m->status == NULL ||
		!(sms_is_sid(m->sid, "SM") || sms_is_sid(m->sid, "MM")))
		return NULL;
	row = sms_poll_find_row(poll, m->sid);
	if (row && !row->answered)
	{
		row->answered = true;
		poll->unanswered--;
	}
	/* a status of no rank (a new one of Twilio's): answered, no news */
	if (sms_status_known(m->status) == NULL)
		return row;
	old = MemoryContextSwitchTo(job->cxt);
	news = sms_poll_add_news(job, m->sid, sms_status_known(m->status));
	news->error_code = sms_twilio_int(m->error_code);
	if (news->error_code != 0 && m->error_message)
		news->error_message = pstrdup(m->error_message);
	news->price = sms_twilio_price(m->price);
	if (news->price && m->price_unit)
		news->price_unit = pstrdup(m->price_unit);
	MemoryContextSwitchTo(old);
	return row;
}

/* End the poll on a failed request; the job's error_message says why. */
static bool
poll_failed(SmsJob *job, const char *fmt, const char *detail)
{
	job->poll->failed = true;
	job->error_message = MemoryContextStrdup(job->cxt, psprintf(fmt, detail));
	return false;
}

/* One page of the walk; returns whether to fetch the next. */
static bool
walk_page(SmsJob *job, const TwilioReply *reply)
{
	SmsPoll    *poll = job->poll;
	bool		reached_floor = false;

	poll->walk_pages++;
	for (int i = 0; i < reply->nmessages && !reached_floor; i++)
	{
		const TwilioMessage *m = &reply->messages[i];
		TimestampTz sent = sms_twilio_date(m->date_sent);

		take_news(job, m);
		/* newest first: past the floor, no row of ours can be listed */
		reached_floor = sent != 0 && sent < poll->walk_floor;
	}
	/* more pages than rows left: a GET each is cheaper */
	if (reached_floor || poll->unanswered == 0 ||
		reply->next_page_uri == NULL || reply->next_page_uri[0] != '/' ||
		poll->walk_pages >= Min(MAX_WALK_PAGES, poll->unanswered))
		return false;
	job->url = MemoryContextStrdup(job->cxt,
								   psprintf("%.*s%s", sms_twilio_base_len(), sms_api_url,
											reply->next_page_uri));
	return true;
}

/* Move poll->next_get to the next row not answered for; false if none. */
static bool
next_get(SmsPoll *poll, bool first)
{
	int			i = first ? 0 : poll->next_get + 1;

	while (i < poll->nrows && poll->rows[i].answered)
		i++;
	poll->next_get = i;
	return i < poll->nrows;
}

static bool
finish_poll_request(SmsJob *job)
{
	SmsPoll    *poll = job->poll;
	SmsTransfer *t = job->http;
	TwilioReply reply;
	bool		parsed;

	job->retry_after_s = t->retry_after_s;
	if (t->result != CURLE_OK)
		return poll_failed(job, "status poll failed: %s",
						   t->error[0] ? t->error : curl_easy_strerror(t->result));
	parsed = sms_twilio_parse_reply(t->response.data, t->response.len, &reply);

	if (poll->walking)
	{
		if (t->http_status != 200 || !parsed)
			return poll_failed(job, "status poll failed: %s",
							   psprintf("HTTP %ld listing messages", t->http_status));
		if (walk_page(job, &reply))
			return true;
		poll->walking = false;
		return next_get(poll, true);
	}

	if (t->http_status == 404 && parsed && sms_twilio_int(reply.top.code) == 20404)
	{
		/* deleted at the provider: nothing more will be known */
		poll->rows[poll->next_get].gone = true;
		poll->rows[poll->next_get].answered = true;
		poll->unanswered--;
	}
	else if (t->http_status == 200 && parsed && reply.top.sid &&
			 strcmp(reply.top.sid, poll->rows[poll->next_get].sid) == 0)
		take_news(job, &reply.top);
	else
		return poll_failed(job, "status poll failed: %s",
						   psprintf("HTTP %ld fetching a message", t->http_status));
	return next_get(poll, false);
}

bool
sms_twilio_finish_poll(SmsJob *job)
{
	return sms_twilio_read_page(job, finish_poll_request);
}
