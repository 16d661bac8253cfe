/*-------------------------------------------------------------------------
 *
 * twilio.c
 *	  Twilio's Messages API: building requests and deciding outcomes.
 *
 *	  Send:   POST {api_url}/2010-04-01/Accounts/{AccountSid}/Messages.json
 *	  Lookup: GET  the same URL filtered by From (and To, for one row),
 *			  paging through next_page_uri, to find out whether attempts whose
 *			  outcome is unknown created their messages after all (Twilio has
 *			  no idempotency key).  One lookup answers for up to a page's
 *			  worth of rows of one sender: after a failover, the hundreds of
 *			  rows that were in flight cost one request, not one each.
 *
 *-------------------------------------------------------------------------
 */
#include "provider.h"

#include <time.h>

#include "http.h"
#include "twilio.h"
#include "twilio_auth.h"
#include "twilio_json.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

/* a lookup gives up (and tries again later) after this many pages */
#define MAX_LOOKUP_PAGES 50
/* Twilio's largest page; a lookup for one row filters by To as well */
#define LOOKUP_PAGE_SIZE 1000
#define SINGLE_LOOKUP_PAGE_SIZE 100

/*
 * A message created this long before our attempt started cannot be ours;
 * the slack covers clock skew between this server and the provider's.
 */
#define MATCH_SLACK_SECS 30

static const char *
twilio_missing_settings(void)
{
	if (sms_account_sid == NULL || sms_account_sid[0] == '\0')
		return "sms.account_sid is not set";
	if ((sms_api_key_sid == NULL || sms_api_key_sid[0] == '\0') &&
		(sms_auth_token == NULL || sms_auth_token[0] == '\0'))
		return "sms.auth_token (or sms.api_key_sid and sms.api_key_secret) is not set";
	if (sms_api_key_sid && sms_api_key_sid[0] != '\0' &&
		(sms_api_key_secret == NULL || sms_api_key_secret[0] == '\0'))
		return "sms.api_key_secret is not set";
	return NULL;
}

/* Length of sms.api_url without trailing slashes, to append paths to. */
int
sms_twilio_base_len(void)
{
	int			len = strlen(sms_api_url);

	while (len > 0 && sms_api_url[len - 1] == '/')
		len--;
	return len;
}

/*
 * {api_url}/2010-04-01/Accounts/{AccountSid}/Messages.json, built once per
 * value of the settings rather than for every message (libcurl copies it).
 */
const char *
sms_twilio_messages_url(void)
{
	static char *url = NULL;
	static char *for_api_url = NULL;
	static char *for_account_sid = NULL;

	if (url == NULL || strcmp(for_api_url, sms_api_url) != 0 ||
		strcmp(for_account_sid, sms_account_sid) != 0)
	{
		MemoryContext old;

		if (url)
		{
			pfree(url);
			pfree(for_api_url);
			pfree(for_account_sid);
		}
		old = MemoryContextSwitchTo(TopMemoryContext);

		url = psprintf("%.*s/2010-04-01/Accounts/%s/Messages.json",
					   sms_twilio_base_len(), sms_api_url, sms_account_sid);
		MemoryContextSwitchTo(old);
		for_api_url = MemoryContextStrdup(TopMemoryContext, sms_api_url);
		for_account_sid = MemoryContextStrdup(TopMemoryContext, sms_account_sid);
	}
	return url;
}

void
sms_twilio_append_param(StringInfo buf, CURL *easy, const char *name, const char *value)
{
	char	   *esc = curl_easy_escape(easy, value, 0);

	if (esc == NULL)
		elog(ERROR, "out of memory escaping a form field");
	if (buf->len > 0)
		appendStringInfoChar(buf, '&');
	appendStringInfo(buf, "%s=%s", name, esc);
	curl_free(esc);
}

static void
twilio_prepare_send(SmsJob *job)
{
	CURL	   *easy = job->http->easy;
	StringInfoData form;
	int			i;

	initStringInfo(&form);
	sms_twilio_append_param(&form, easy, "To", job->to_number);
	if (sms_is_messaging_service_sid(job->from_number))
		sms_twilio_append_param(&form, easy, "MessagingServiceSid", job->from_number);
	else
		sms_twilio_append_param(&form, easy, "From", job->from_number);
	if (job->body != NULL && job->body[0] != '\0')
		sms_twilio_append_param(&form, easy, "Body", job->body);
	/* repeated, as Twilio and its SDKs send it */
	for (i = 0; i < job->nmedia; i++)
		sms_twilio_append_param(&form, easy, "MediaUrl", job->media_urls[i]);
	/* the outbox id in the URL finds the row of each callback (callback.c) */
	if (sms_status_callback_url && sms_status_callback_url[0] != '\0')
		sms_twilio_append_param(&form, easy, "StatusCallback",
					 psprintf("%s%csms_id=" INT64_FORMAT, sms_status_callback_url,
							  strchr(sms_status_callback_url, '?') ? '&' : '?',
							  job->id));

	job->post_fields = form.data;
	job->url = (char *) sms_twilio_messages_url();

	curl_easy_setopt(easy, CURLOPT_URL, job->url);
	curl_easy_setopt(easy, CURLOPT_POST, 1L);
	curl_easy_setopt(easy, CURLOPT_POSTFIELDS, job->post_fields);
	curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long) form.len);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, sms_twilio_request_headers(job));
}

static void
twilio_prepare_lookup(SmsJob *job)
{
	CURL	   *easy = job->http->easy;

	if (job->pages == 0)
	{
		StringInfoData q;

		/*
		 * No DateSent filter: Twilio filters on date_sent, which is empty
		 * while a message is still queued, exactly when a slow provider made
		 * the attempt time out.  The list comes newest first; paging stops
		 * at messages created before the attempt (see finish_lookup).
		 */
		initStringInfo(&q);
		if (job->nbatch == 0)
			sms_twilio_append_param(&q, easy, "To", job->to_number);
		/* with a Messaging Service the sending number is the provider's pick */
		if (!sms_is_messaging_service_sid(job->from_number))
			sms_twilio_append_param(&q, easy, "From", job->from_number);
		appendStringInfo(&q, "%sPageSize=%d", q.len > 0 ? "&" : "",
						 job->nbatch == 0 ? SINGLE_LOOKUP_PAGE_SIZE : LOOKUP_PAGE_SIZE);
		job->url = psprintf("%s?%s", sms_twilio_messages_url(), q.data);
	}

	curl_easy_setopt(easy, CURLOPT_URL, job->url);
	curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, sms_twilio_request_headers(job));
}

static void
set_error(SmsJob *job, int code, const char *fmt,...) pg_attribute_printf(3, 4);

static void
set_error(SmsJob *job, int code, const char *fmt,...)
{
	va_list		ap;
	StringInfoData buf;

	initStringInfo(&buf);
	for (;;)
	{
		int			needed;

		va_start(ap, fmt);
		needed = appendStringInfoVA(&buf, fmt, ap);
		va_end(ap);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	job->error_code = code;
	job->error_message = buf.data;
}

/*
 * A transport failure.  A request that left may have created the message:
 * unknown, to be looked up.  One that did not leave, for a reason every
 * request would meet (the settings, TLS, name resolution, no server), is
 * no message's fault: the queue pauses and the attempt is given back.
 * Anything else before the request left is retried after the backoff.
 */
static void
transport_failure(SmsJob *job)
{
	SmsTransfer *t = job->http;
	const char *what = t->error[0] ? t->error : curl_easy_strerror(t->result);

	if (t->response_too_large)
		what = "the reply was larger than any reply of the provider's";
	else if (t->retry_refused)
		what = "the connection closed without a reply";
	set_error(job, 0, "%s: %s",
			  t->request_sent ? "transport error after the request was sent" :
			  "transport error before the request was sent", what);
	if (t->request_sent)
	{
		job->outcome = OUTCOME_UNKNOWN;
		return;
	}
	job->pause_reason = sms_http_setting_failure(t,
												 psprintf("%.*s", sms_twilio_base_len(), sms_api_url));
	job->pause_network = job->pause_reason != NULL;
	job->outcome = job->pause_reason ? OUTCOME_PAUSE : OUTCOME_RETRY;
}

int
sms_twilio_int(const char *s)
{
	long		v;
	char	   *end;

	if (s == NULL)
		return 0;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0 || v > INT_MAX)
		return 0;
	return (int) v;
}

/* Twilio sends prices as strings such as "-0.00750"; keep only numbers. */
char *
sms_twilio_price(const char *s)
{
	const char *p = s;

	if (s == NULL)
		return NULL;
	if (*p == '-' || *p == '+')
		p++;
	{
		int			digits = 0;

		while (isdigit((unsigned char) *p))
			p++, digits++;
		if (*p == '.')
			p++;
		while (isdigit((unsigned char) *p))
			p++, digits++;
		/* numeric input must accept it: at least one digit, nothing else */
		return (*p == '\0' && digits > 0 && p - s < 40) ? pstrdup(s) : NULL;
	}
}

static void
take_message(SmsJob *job, TwilioMessage *m)
{
	/* a lookup's page may answer for rows of other jobs than its own */
	MemoryContext old = MemoryContextSwitchTo(job->cxt);

	job->sid = m->sid ? pstrdup(m->sid) : NULL;
	job->status = m->status ? pstrdup(m->status) : NULL;
	job->num_segments = m->num_segments ? sms_twilio_int(m->num_segments) : -1;
	if (job->num_segments == 0)
		job->num_segments = -1;
	job->price = sms_twilio_price(m->price);
	job->price_unit = m->price_unit ? pstrdup(m->price_unit) : NULL;
	job->error_code = 0;
	job->error_message = NULL;
	MemoryContextSwitchTo(old);
}

/*
 * Errors about the account, not the message: retrying other messages
 * would fail the same way, so the queue pauses instead of burning them.
 */
static const char *
account_wide_reason(long http_status, int code)
{
	switch (code)
	{
		case 20003:
			return "authentication failed (20003)";
		case 20005:
			return "account not active (20005)";
		case 21606:
			return "sender not owned by the account (21606)";
		case 21608:
			return "trial account cannot send to unverified numbers (21608)";
		case 20404:
			if (http_status == 404)
				return "account not found (20404)";
			break;
	}
	if (http_status == 401 || http_status == 403)
		return psprintf("credentials refused (HTTP %ld)", http_status);
	return NULL;
}

static void
twilio_finish_send(SmsJob *job)
{
	SmsTransfer *t = job->http;
	TwilioReply reply;
	bool		parsed;
	long		http = t->http_status;
	int			code;
	const char *reason;

	job->retry_after_s = t->retry_after_s;
	if (t->result != CURLE_OK)
	{
		transport_failure(job);
		return;
	}

	parsed = sms_twilio_parse_reply(t->response.data, t->response.len, &reply);

	if (http == 200 || http == 201)
	{
		if (parsed && reply.top.sid != NULL)
		{
			take_message(job, &reply.top);
			job->outcome = OUTCOME_SENT;
		}
		else
		{
			/* accepted, but we cannot tell the SID: find it later */
			set_error(job, 0, "HTTP %ld with a reply that has no message SID", http);
			job->outcome = OUTCOME_UNKNOWN;
		}
		return;
	}

	code = parsed ? sms_twilio_int(reply.top.code) : 0;
	if (parsed && reply.top.message)
		set_error(job, code, "%s", reply.top.message);
	else
		set_error(job, code, "HTTP %ld from the provider", http);

	if (http == 429 || http == 408 || code == 21611)
		job->outcome = OUTCOME_RETRY;	/* not processed: try again later */
	else if ((reason = account_wide_reason(http, code)) != NULL)
	{
		job->outcome = OUTCOME_PAUSE;
		job->pause_reason = pstrdup(reason);
	}
	else if (http >= 400 && http < 500 && code == 0)
	{
		/*
		 * A 4xx that is no Twilio error (an HTML 404 from a wrong
		 * sms.api_url, a proxy's 407) says nothing about this message:
		 * failing every message for it would be wrong.
		 */
		job->outcome = OUTCOME_PAUSE;
		job->pause_reason = psprintf("unexpected HTTP %ld from sms.api_url, not a provider error", http);
	}
	else if (http >= 400 && http < 500)
		job->outcome = OUTCOME_FAILED;
	else
		job->outcome = OUTCOME_UNKNOWN; /* 5xx, or nonsense: it may exist */
}

/* 1 to 12 for "Jan" to "Dec" (PostgreSQL's own table of names); 0 if none */
static int
month_number(const char *mon)
{
	int			i;

	for (i = 0; i < MONTHS_PER_YEAR; i++)
		if (strncmp(mon, months[i], 3) == 0)
			return i + 1;
	return 0;
}

/* Twilio's RFC 2822 dates: "Thu, 26 Nov 2026 22:20:53 +0000"; 0 if not one. */
TimestampTz
sms_twilio_date(const char *s)
{
	int			day,
				year,
				hh,
				mm,
				ss,
				mon;
	char		monname[4];
	char		zone[6];
	int64		secs;
	int			off = 0;

	if (s == NULL ||
		sscanf(s, "%*3s, %d %3s %d %d:%d:%d %5s", &day, monname, &year,
			   &hh, &mm, &ss, zone) != 7 ||
		(mon = month_number(monname)) == 0 ||
		day < 1 || day > 31 || year < 1970 || year > 9999 ||
		hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60)
		return 0;
	if ((zone[0] == '+' || zone[0] == '-') && strlen(zone) == 5)
	{
		off = ((zone[1] - '0') * 10 + (zone[2] - '0')) * 3600 +
			((zone[3] - '0') * 10 + (zone[4] - '0')) * 60;
		if (zone[0] == '-')
			off = -off;
	}
	secs = (int64) (date2j(year, mon, day) - UNIX_EPOCH_JDATE) * SECS_PER_DAY +
		hh * 3600 + mm * 60 + ss - off;
	return time_t_to_timestamptz((pg_time_t) secs);
}

/* Trial accounts prepend this to every body they send. */
#define TRIAL_PREFIX "Sent from your Twilio trial account - "

static bool
same_text(const char *a, const char *b)
{
	if (a == NULL || a[0] == '\0')
		return b == NULL || b[0] == '\0';
	return b != NULL && strcmp(a, b) == 0;
}

/*
 * Is this listed message, created at created (0 if its date is not one), the
 * one our attempt may have created?
 */
static bool
matches(SmsJob *job, TwilioMessage *m, TimestampTz created)
{
	if (!same_text(job->to_number, m->to))
		return false;
	if (!same_text(job->body, m->body) &&
		!(m->body && strncmp(m->body, TRIAL_PREFIX, strlen(TRIAL_PREFIX)) == 0 &&
		  same_text(job->body, m->body + strlen(TRIAL_PREFIX))))
		return false;
	if (sms_is_messaging_service_sid(job->from_number))
	{
		if (!same_text(job->from_number, m->messaging_service_sid))
			return false;
	}
	else if (!same_text(job->from_number, m->from))
		return false;
	return created != 0 &&
		created >= job->last_attempt_at - (int64) MATCH_SLACK_SECS * USECS_PER_SEC;
}

/*
 * Settle every row of the lookup not settled yet alike; the rows a page
 * already found keep what it found.
 */
static void
settle_rest(SmsJob *job, SmsOutcome outcome, int code, const char *message)
{
	for (int i = 0; i <= job->nbatch; i++)
	{
		SmsJob	   *row = sms_lookup_row(job, i);

		if (row->outcome == OUTCOME_SENT)
		{
			row->error_code = 0;
			row->error_message = NULL;
			continue;
		}
		row->outcome = outcome;
		row->error_code = code;
		row->error_message = MemoryContextStrdup(row->cxt, message);
	}
}

/*
 * The attempt of the oldest row still unsettled: a listed message created
 * before it (less the slack) can be no unsettled row's.  False if every row
 * is settled.
 */
static bool
oldest_unsettled_attempt(SmsJob *job, TimestampTz *oldest)
{
	bool		any = false;

	for (int i = 0; i <= job->nbatch; i++)
	{
		SmsJob	   *row = sms_lookup_row(job, i);

		if (row->outcome == OUTCOME_NONE &&
			(!any || row->last_attempt_at < *oldest))
			*oldest = row->last_attempt_at;
		any |= row->outcome == OUTCOME_NONE;
	}
	return any;
}

/*
 * Match one page of the list against the rows.  Each listed message settles
 * one row at most (two rows may say the same to the same number): of the
 * rows it matches, the one whose attempt began last, since the list comes
 * newest first and an older message may still match an earlier attempt but
 * never a later one.  Returns false once every row is settled or the page
 * reached messages older than any unsettled attempt.
 */
static bool
match_page(SmsJob *job, TwilioReply *reply)
{
	TimestampTz oldest = 0;
	bool		unsettled = oldest_unsettled_attempt(job, &oldest);

	for (int m = 0; m < reply->nmessages && unsettled; m++)
	{
		TwilioMessage *msg = &reply->messages[m];
		TimestampTz created = sms_twilio_date(msg->date_created);
		SmsJob	   *best = NULL;

		for (int i = 0; i <= job->nbatch; i++)
		{
			SmsJob	   *row = sms_lookup_row(job, i);

			if (row->outcome == OUTCOME_NONE && matches(row, msg, created) &&
				(best == NULL || row->last_attempt_at > best->last_attempt_at))
				best = row;
		}
		if (best)
		{
			take_message(best, msg);
			best->outcome = OUTCOME_SENT;
			unsettled = oldest_unsettled_attempt(job, &oldest);
		}
		if (created != 0)
			job->listed_back_to = created;
		/* newest first: past the oldest attempt, nothing older can be one */
		if (unsettled && created != 0 &&
			created < oldest - (int64) MATCH_SLACK_SECS * USECS_PER_SEC)
			return false;
	}
	return unsettled;
}

/*
 * The list is longer than a lookup may page through.  A row whose attempt
 * began after the oldest message listed (less the slack) had every message
 * it could be listed: none was its own.  The others are looked up again,
 * each alone, filtered by its number as well (see claim_lookup in
 * worker_turn.c):
 * a batch would page through the same messages again.
 */
static void
give_up_lookup(SmsJob *job)
{
	for (int i = 0; i <= job->nbatch; i++)
	{
		SmsJob	   *row = sms_lookup_row(job, i);

		if (row->outcome != OUTCOME_NONE || job->listed_back_to == 0 ||
			row->last_attempt_at - (int64) MATCH_SLACK_SECS * USECS_PER_SEC <=
			job->listed_back_to)
			continue;
		row->outcome = OUTCOME_RESEND;
		row->error_code = 0;
		row->error_message = MemoryContextStrdup(row->cxt,
												 "the provider has no such message: sending again");
	}
	for (int i = 0; i <= job->nbatch && job->nbatch > 0; i++)
	{
		SmsJob	   *row = sms_lookup_row(job, i);

		if (row->outcome == OUTCOME_NONE)
			row->lookup_alone = true;
	}
	settle_rest(job, OUTCOME_LOOKUP_AGAIN, 0,
				psprintf("lookup gave up after %d pages", job->pages));
}

/*
 * One page of a lookup's list, parsed and matched in the current memory
 * context (a page's; see twilio_finish_lookup): what outlives the page is
 * copied into the jobs' own contexts.
 */
static bool
finish_lookup_page(SmsJob *job)
{
	SmsTransfer *t = job->http;
	TwilioReply reply;
	const char *reason;
	int			code;

	job->retry_after_s = t->retry_after_s;
	if (t->result != CURLE_OK)
	{
		SmsOutcome	own = job->outcome;
		MemoryContext old = MemoryContextSwitchTo(job->cxt);

		/* (its outcome is for a send: only its words and pause are kept) */
		transport_failure(job);
		MemoryContextSwitchTo(old);
		job->outcome = own;
		settle_rest(job, OUTCOME_LOOKUP_AGAIN, 0,
					psprintf("lookup failed: %s", job->error_message));
		return false;
	}

	if (!sms_twilio_parse_reply(t->response.data, t->response.len, &reply))
	{
		settle_rest(job, OUTCOME_LOOKUP_AGAIN, 0,
					psprintf("lookup failed: HTTP %ld with a reply that is not JSON",
							 t->http_status));
		return false;
	}

	if (t->http_status != 200)
	{
		code = sms_twilio_int(reply.top.code);
		if ((reason = account_wide_reason(t->http_status, code)) != NULL)
			job->pause_reason = MemoryContextStrdup(job->cxt, reason);
		settle_rest(job, OUTCOME_LOOKUP_AGAIN, code,
					psprintf("lookup failed: %s",
							 reply.top.message ? reply.top.message : "unexpected HTTP status"));
		return false;
	}

	if (match_page(job, &reply) &&
		reply.next_page_uri != NULL && reply.next_page_uri[0] == '/')
	{
		if (job->pages >= MAX_LOOKUP_PAGES)
		{
			give_up_lookup(job);
			return false;
		}
		job->url = MemoryContextStrdup(job->cxt,
									   psprintf("%.*s%s", sms_twilio_base_len(), sms_api_url,
												reply.next_page_uri));
		return true;
	}

	/* what no listed message answered for was never created */
	settle_rest(job, OUTCOME_RESEND, 0,
				"the provider has no such message: sending again");
	return false;
}

/*
 * A page of a list is up to a thousand messages: read_page() parses and
 * reads it in a context of its own, gone once the page is read, so that a
 * lookup or a poll of many pages holds one page at a time (what outlives
 * the page is copied into the job's context).  Returns read_page()'s answer:
 * whether another request is needed.
 */
bool
sms_twilio_read_page(SmsJob *job, bool (*read_page) (SmsJob *job))
{
	MemoryContext page_cxt = AllocSetContextCreate(job->cxt, "sms reply page",
												   ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(page_cxt);
	bool		another;

	job->pages++;
	another = read_page(job);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(page_cxt);
	return another;
}

static bool
twilio_finish_lookup(SmsJob *job)
{
	return sms_twilio_read_page(job, finish_lookup_page);
}

const SmsProvider sms_twilio_provider = {
	.name = "twilio",
	.missing_settings = twilio_missing_settings,
	.prepare_send = twilio_prepare_send,
	.prepare_lookup = twilio_prepare_lookup,
	.finish_send = twilio_finish_send,
	.finish_lookup = twilio_finish_lookup,
	.prepare_poll = sms_twilio_prepare_poll,
	.finish_poll = sms_twilio_finish_poll,
};
