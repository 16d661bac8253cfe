/*-------------------------------------------------------------------------
 *
 * twilio.c
 *	  The Messages API: create, list, fetch, cancel or redact, delete.
 *
 *	  Paths, validation order, error codes and JSON shapes follow Twilio's
 *	  2010-04-01 API closely enough that a client written against Twilio
 *	  cannot tell the difference in the cases tests care about.  Status
 *	  moves on with time, queued -> sending -> sent -> delivered (or an
 *	  error), as the message's plan says (progress.c); it is worked out
 *	  when a message is read instead of by a background task, and only a
 *	  message with a StatusCallback is also filed for callbacks
 *	  (callback.c).
 *
 *-------------------------------------------------------------------------
 */
#include "emulator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define API_PREFIX "/2010-04-01/Accounts/"

void
reply_error(Reply *r, int status, int code, const char *message)
{
	r->status = status;
	r->body.len = 0;
	buf_json(&r->body, jv_error(code, message, status));
}

/* ---------------------------------------------------------------------- */

#define PATH_LEN 256

/* The path of a message's resource: API_PREFIX AC.../Messages/SM...tail */
static const char *
message_path(char out[PATH_LEN], const char *sid, const char *tail)
{
	snprintf(out, PATH_LEN, API_PREFIX "%s/Messages/%s%s",
			 cfg.account_sid, sid, tail);
	return out;
}

static pthread_once_t account_once = PTHREAD_ONCE_INIT;
static Buf	account_json;

/* "/2010-04-01/Accounts/AC... as JSON, the string left open */
static void
init_account_json(void)
{
	char		path[PATH_LEN];

	snprintf(path, sizeof(path), API_PREFIX "%s", cfg.account_sid);
	buf_json_text(&account_json, path);
	account_json.len--;			/* the closing quote */
}

/*
 * Open a JSON string with the account's path, written once: the rest of
 * a resource's path (SIDs, filters encoded for a URL) needs no escaping.
 */
static void
account_uri_json(Buf *b)
{
	pthread_once(&account_once, init_account_json);
	buf_put(b, account_json.data, account_json.len);
}

/* A message's resource path as JSON */
static void
message_uri_json(Buf *b, const char *sid, const char *tail)
{
	account_uri_json(b);
	buf_puts(b, "/Messages/");
	buf_puts(b, sid);
	buf_puts(b, tail);
	buf_putc(b, '"');
}

/*
 * A message as Twilio shows it.  Written by hand, not with jansson: it is
 * what creates, fetches and lists return, the requests the benchmarks
 * drive (json.c says what jansson cost here).
 */
static void
message_json(Buf *b, const Message *m, const MsgView *v)
{
	buf_puts(b, "{\"account_sid\": ");
	buf_json_text(b, cfg.account_sid);
	buf_puts(b, ", \"api_version\": \"2010-04-01\", \"body\": ");
	buf_json_str(b, m->body, m->body_len);
	buf_puts(b, ", \"date_created\": ");
	buf_json_date(b, m->created_us);
	buf_puts(b, ", \"date_sent\": ");
	buf_json_date(b, v->sent_us);
	buf_puts(b, ", \"date_updated\": ");
	buf_json_date(b, v->updated_us);
	buf_puts(b, ", \"direction\": \"outbound-api\", \"error_code\": ");
	if (v->error_code)
		buf_put_int(b, v->error_code);
	else
		buf_puts(b, "null");
	buf_puts(b, ", \"error_message\": ");
	buf_json_text(b, v->error_code ? delivery_error_message(v->error_code) : NULL);
	buf_puts(b, ", \"from\": ");
	buf_json_text(b, m->from);
	buf_puts(b, ", \"messaging_service_sid\": ");
	buf_json_text(b, m->service_sid);
	buf_puts(b, ", \"num_media\": \"");
	buf_put_int(b, m->num_media);
	buf_puts(b, "\", \"num_segments\": \"");
	buf_put_int(b, m->num_segments);
	buf_puts(b, "\", \"price\": null, \"price_unit\": \"USD\", \"sid\": \"");
	buf_puts(b, m->sid);
	buf_puts(b, "\", \"status\": \"");
	buf_puts(b, v->status);
	buf_puts(b, "\", \"subresource_uris\": {\"media\": ");
	message_uri_json(b, m->sid, "/Media.json");
	buf_puts(b, "}, \"to\": ");
	buf_json_text(b, m->to);
	buf_puts(b, ", \"uri\": ");
	message_uri_json(b, m->sid, ".json");
	buf_putc(b, '}');
}

/* ---------------------------------------------------------------------- */

/* E.164: '+', then 8 to 15 digits, the first not zero. */
static bool
is_e164(const char *s, size_t n)
{
	size_t		i;

	if (n < 9 || n > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9')
		return false;
	for (i = 2; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static bool
present(const FormField *f)
{
	return f != NULL && f->vlen > 0;
}

static void
error_with_number(Reply *r, int code, const char *fmt, const FormField *num)
{
	Buf			msg = {0};

	buf_printf(&msg, fmt, num->val);
	reply_error(r, 400, code, msg.data);
	buf_free(&msg);
}

/*
 * Twilio's test credentials' magic numbers, plus one of our own (21608)
 * for trial-account tests.  Returns true if the request was answered.
 */
static bool
magic_numbers(const FormField *from, const FormField *to, Reply *r)
{
	if (from != NULL)
	{
		if (field_eq(from->val, from->vlen, "+15005550001"))
		{
			error_with_number(r, 21212, "The 'From' number %s is not a valid phone number, shortcode, or alphanumeric sender ID.", from);
			return true;
		}
		if (field_eq(from->val, from->vlen, "+15005550007"))
		{
			error_with_number(r, 21606, "The From phone number %s is not a valid, SMS-capable inbound phone number or short code for your account.", from);
			return true;
		}
		if (field_eq(from->val, from->vlen, "+15005550008"))
		{
			reply_error(r, 400, 21611, "This 'From' number has exceeded the maximum number of queued messages.");
			return true;
		}
		if (field_eq(from->val, from->vlen, "+15005550010"))
		{
			reply_error(r, 400, 21608, "The number is unverified. Trial accounts cannot send messages to unverified numbers.");
			return true;
		}
	}
	if (field_eq(to->val, to->vlen, "+15005550001"))
	{
		error_with_number(r, 21211, "The 'To' number %s is not a valid phone number.", to);
		return true;
	}
	if (field_eq(to->val, to->vlen, "+15005550002"))
	{
		reply_error(r, 400, 21612, "The 'To' phone number is not currently reachable via SMS.");
		return true;
	}
	if (field_eq(to->val, to->vlen, "+15005550003"))
	{
		reply_error(r, 400, 21408, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number.");
		return true;
	}
	if (field_eq(to->val, to->vlen, "+15005550004"))
	{
		reply_error(r, 400, 21610, "Attempt to send to unsubscribed recipient");
		return true;
	}
	if (field_eq(to->val, to->vlen, "+15005550009"))
	{
		reply_error(r, 400, 21614, "'To' number is not a valid mobile number");
		return true;
	}
	return false;
}

/*
 * POST Messages.json.  Validation comes first, in Twilio's order; fault
 * rules are only consulted for a request Twilio would have accepted, so a
 * rule's count is spent on creates, never on a test's malformed request.
 */
static void
create_message(const ApiRequest *req, Reply *r)
{
	const Form *f = req->form;
	const FormField *to,
			   *from,
			   *service,
			   *body,
			   *callback,
			   *schedule,
			   *send_at;
	const FormField *media_small[16];
	const FormField **media = media_small;
	int			num_media;
	FaultHit	hit = {FAULT_NONE, 0, 0, 0};
	NewMessage	nm;
	Message    *m;
	MsgView		v;
	int64_t		scheduled_ms = -1;
	int			i,
				k;

	to = form_get(f, "To");
	from = form_get(f, "From");
	service = form_get(f, "MessagingServiceSid");
	body = form_get(f, "Body");
	callback = form_get(f, "StatusCallback");
	schedule = form_get(f, "ScheduleType");
	send_at = form_get(f, "SendAt");
	num_media = form_count(f, "MediaUrl");

	if (!present(to))
	{
		reply_error(r, 400, 21604, "A 'To' phone number is required.");
		return;
	}
	if (!present(from) && !present(service))
	{
		reply_error(r, 400, 21603, "A 'From' phone number is required.");
		return;
	}
	if (!present(body) && num_media == 0)
	{
		reply_error(r, 400, 21602, "Message body is required.");
		return;
	}
	if (body && utf8_chars(body->val, body->vlen) > 1600)
	{
		reply_error(r, 400, 21617, "The concatenated message body exceeds the 1600 character limit.");
		return;
	}
	if (!is_e164(to->val, to->vlen))
	{
		error_with_number(r, 21211, "The 'To' number %s is not a valid phone number.", to);
		return;
	}
	if (present(callback) && !callback_url_valid(callback->val, callback->vlen))
	{
		error_with_number(r, 21609, "The StatusCallback URL %s is not a valid URL.", callback);
		return;
	}
	/* without a Messaging Service, Twilio ignores scheduling */
	if (present(service) && present(schedule))
	{
		int64_t		at,
					ahead;

		if (!field_eq(schedule->val, schedule->vlen, "fixed"))
		{
			reply_error(r, 400, 35126, "The ScheduleType value provided is not supported for this channel");
			return;
		}
		if (!present(send_at))
		{
			reply_error(r, 400, 35111, "SendAt timestamp is missing");
			return;
		}
		ahead = parse_iso_utc(send_at->val, send_at->vlen, &at) ?
			at - now_us() : -1;
		if (ahead < INT64_C(300000000) || ahead > INT64_C(3024000000000))
		{
			reply_error(r, 400, 35114, "SendAt time must be between 300 seconds and 35 days (3024000 seconds) in the future, inclusive.");
			return;
		}
		scheduled_ms = ahead / 1000;
	}
	if (magic_numbers(present(from) ? from : NULL, to, r))
		return;

	if (fault_match(to->val, to->vlen, &hit))
	{
		r->fault = hit.action;
		switch (hit.action)
		{
			case FAULT_500_BEFORE:
				reply_error(r, 500, 20500, "Internal Server Error");
				return;
			case FAULT_429:
			case FAULT_429_RETRY_AFTER:
				reply_error(r, 429, 20429, "Too Many Requests");
				if (hit.action == FAULT_429_RETRY_AFTER)
					r->retry_after = hit.retry_after;
				return;
			case FAULT_DROP_BEFORE:
				r->status = 0;
				return;
			case FAULT_AUTH_FAIL:
				reply_error(r, 401, 20003, "Authenticate");
				r->www_authenticate = true;
				return;
			default:
				break;			/* the rest create the message first */
		}
	}

	if (num_media > (int) lengthof(media_small))
		media = malloc(sizeof(FormField *) * num_media);
	for (i = 0, k = 0; i < f->n; i++)
		if (field_eq(f->f[i].key, f->f[i].klen, "MediaUrl"))
			media[k++] = &f->f[i];

	memset(&nm, 0, sizeof(nm));
	nm.to = to->val;
	nm.to_len = to->vlen;
	if (present(from))
	{
		nm.from = from->val;
		nm.from_len = from->vlen;
	}
	if (present(service))
	{
		nm.service_sid = service->val;
		nm.service_len = service->vlen;
	}
	if (body)
	{
		nm.body = body->val;
		nm.body_len = body->vlen;
	}
	nm.num_media = num_media;
	nm.media = media;
	nm.num_segments = body_segments(nm.body, nm.body_len, &nm.ucs2);
	if (present(callback))
	{
		nm.callback_url = callback->val;
		nm.callback_len = callback->vlen;
	}
	progress_plan(to->val, to->vlen, present(service), scheduled_ms, &nm.plan);

	/* written under the lock: a concurrent reset may free the message */
	buf_grow(&r->body, 1024 + nm.body_len);
	pthread_mutex_lock(&store_lock);
	m = store_add(&nm, now_us());
	callback_schedule(m);
	message_view(m, m->created_us, true, &v);
	message_json(&r->body, m, &v);
	events_publish_message(m->serial);
	pthread_mutex_unlock(&store_lock);
	r->status = 201;
	if (media != media_small)
		free(media);

	switch (hit.action)
	{
		case FAULT_500_AFTER:
			reply_error(r, 500, 20500, "Internal Server Error");
			break;
		case FAULT_503_AFTER:
			reply_error(r, 503, 20503, "Service Unavailable");
			break;
		case FAULT_DROP_AFTER:
			r->status = 0;
			r->body.len = 0;
			break;
		case FAULT_DELAY:
			r->delay_ms = hit.delay_ms;
			break;
		default:
			break;
	}
}

/* ---------------------------------------------------------------------- */

static void
page_uri(Buf *b, const Buf *filters, int64_t page_size, int64_t page,
		 const char *token)
{
	account_uri_json(b);
	buf_puts(b, "/Messages.json?");
	buf_put(b, filters->data, filters->len);
	buf_puts(b, "PageSize=");
	buf_put_int(b, page_size);
	buf_puts(b, "&Page=");
	buf_put_int(b, page);
	if (token)
	{
		/* a token is only ever PA or PB and a SID, checked before */
		buf_puts(b, "&PageToken=");
		buf_puts(b, token);
	}
	buf_putc(b, '"');
}

static void
add_filter(Buf *filters, const char *key, const FormField *f)
{
	if (f == NULL)
		return;
	url_encode(filters, key, strlen(key));
	buf_putc(filters, '=');
	url_encode(filters, f->val, f->vlen);
	buf_putc(filters, '&');
}

/*
 * GET Messages.json, newest first.  A PageToken ("PA" + the sid of the
 * previous page's last message) resumes right after that message, so
 * paging stays stable while new messages arrive; without one, Page counts
 * pages from the newest.
 */
static void
list_messages(const ApiRequest *req, Reply *r)
{
	const Form *q = req->query;
	const FormField *to,
			   *from,
			   *exact,
			   *after,
			   *before,
			   *fsize,
			   *fpage,
			   *token;
	int64_t		day_eq = 0,
				day_ge = 0,
				day_le = 0;
	int64_t		page_size = 50,
				page = 0,
				skip,
				collected = 0;
	int64_t		start_idx;
	bool		has_more = false,
				backward = false,
				older,
				newer;
	Buf			filters = {0};
	const Message **picked;
	int64_t		now = now_us();
	int64_t		i;
	char		last_sid[37] = "",
				first_sid[37] = "";
	char		token_copy[40] = "";

	to = form_get(q, "To");
	from = form_get(q, "From");
	exact = form_get(q, "DateSent");
	after = form_get(q, "DateSent>");
	if (after == NULL)
		after = form_get(q, "DateSent>=");
	before = form_get(q, "DateSent<");
	if (before == NULL)
		before = form_get(q, "DateSent<=");
	fsize = form_get(q, "PageSize");
	fpage = form_get(q, "Page");
	token = form_get(q, "PageToken");
	if (token && token->vlen < sizeof(token_copy))
		memcpy(token_copy, token->val, token->vlen);

	if ((exact && !parse_day(exact->val, exact->vlen, &day_eq)) ||
		(after && !parse_day(after->val, after->vlen, &day_ge)) ||
		(before && !parse_day(before->val, before->vlen, &day_le)))
	{
		reply_error(r, 400, 20001, "DateSent must be a date in the form YYYY-MM-DD");
		return;
	}
	if (fsize && (!parse_int(fsize->val, fsize->vlen, &page_size) || page_size < 1))
	{
		reply_error(r, 400, 20001, "PageSize must be a positive integer");
		return;
	}
	if (page_size > 1000)
		page_size = 1000;
	if (fpage && (!parse_int(fpage->val, fpage->vlen, &page) || page < 0))
	{
		reply_error(r, 400, 20001, "Page must be a non-negative integer");
		return;
	}

	add_filter(&filters, "To", to);
	add_filter(&filters, "From", from);
	add_filter(&filters, "DateSent", exact);
	add_filter(&filters, "DateSent>", after);
	add_filter(&filters, "DateSent<", before);

	buf_grow(&r->body, 4096);
	pthread_mutex_lock(&store_lock);
	start_idx = (int64_t) store_count() - 1;
	skip = page * page_size;
	if (token)
	{
		Message    *tm = NULL;

		if (token->vlen > 2 && token->val[0] == 'P' &&
			(token->val[1] == 'A' || token->val[1] == 'B'))
			tm = store_find(token->val + 2, token->vlen - 2);
		if (tm == NULL)
		{
			pthread_mutex_unlock(&store_lock);
			reply_error(r, 400, 20001, "Invalid PageToken");
			buf_free(&filters);
			return;
		}
		backward = token->val[1] == 'B';
		/* PA: the messages older than it; PB: the page newer than it */
		start_idx = (int64_t) store_index_of(tm) + (backward ? 1 : -1);
		skip = 0;
	}

	/* the page's messages, newest first (PB collects them oldest first) */
	picked = malloc(sizeof(const Message *) * (size_t) (page_size + 1));
	if (picked == NULL)
		abort();
	for (i = start_idx; backward ? i < (int64_t) store_count() : i >= 0; i += backward ? 1 : -1)
	{
		const Message *m = store_at((size_t) i);
		MsgView		v;
		int64_t		day;

		if (m->deleted)
			continue;
		if (to && !field_eq(to->val, to->vlen, m->to))
			continue;
		if (from && (m->from == NULL || !field_eq(from->val, from->vlen, m->from)))
			continue;
		message_view(m, now, false, &v);
		if (exact || after || before)
		{
			/* Twilio filters on date_sent: an unsent message has none */
			if (v.sent_us == 0)
				continue;
			day = day_of(v.sent_us);
			if ((exact && day != day_eq) || (after && day < day_ge) ||
				(before && day > day_le))
				continue;
		}
		if (skip > 0)
		{
			skip--;
			continue;
		}
		if (collected == page_size)
		{
			has_more = true;
			break;
		}
		picked[collected++] = m;
	}
	if (backward)
	{
		for (i = 0; i < collected / 2; i++)
		{
			const Message *t = picked[i];

			picked[i] = picked[collected - 1 - i];
			picked[collected - 1 - i] = t;
		}
	}
	/* the list page is the message's hot path too: by hand as well */
	buf_puts(&r->body, "{\"messages\": [");
	for (i = 0; i < collected; i++)
	{
		MsgView		v;

		if (i > 0)
			buf_puts(&r->body, ", ");
		message_view(picked[i], now, false, &v);
		message_json(&r->body, picked[i], &v);
	}
	if (collected > 0)
	{
		last_sid[0] = 'P';
		last_sid[1] = 'A';
		memcpy(last_sid + 2, picked[collected - 1]->sid, 35);
		first_sid[0] = 'P';
		first_sid[1] = 'B';
		memcpy(first_sid + 2, picked[0]->sid, 35);
	}
	/* older ones past a PB page are known to exist: the token's message */
	older = backward ? collected > 0 : has_more;
	newer = backward ? has_more : (token != NULL || page > 0) && collected > 0;
	free(picked);
	pthread_mutex_unlock(&store_lock);

	buf_puts(&r->body, "], \"end\": ");
	buf_put_int(&r->body, page * page_size + (collected ? collected - 1 : 0));
	buf_puts(&r->body, ", \"first_page_uri\": ");
	page_uri(&r->body, &filters, page_size, 0, NULL);
	buf_puts(&r->body, ", \"next_page_uri\": ");
	if (older)
		page_uri(&r->body, &filters, page_size, page + 1, last_sid);
	else
		buf_puts(&r->body, "null");
	buf_puts(&r->body, ", \"page\": ");
	buf_put_int(&r->body, page);
	buf_puts(&r->body, ", \"page_size\": ");
	buf_put_int(&r->body, page_size);
	/* PB<first sid>: the page before, however many arrived since */
	buf_puts(&r->body, ", \"previous_page_uri\": ");
	if (newer)
		page_uri(&r->body, &filters, page_size, page > 0 ? page - 1 : 0, first_sid);
	else
		buf_puts(&r->body, "null");
	buf_puts(&r->body, ", \"start\": ");
	buf_put_int(&r->body, page * page_size);
	buf_puts(&r->body, ", \"uri\": ");
	page_uri(&r->body, &filters, page_size, page, token_copy[0] ? token_copy : NULL);
	buf_putc(&r->body, '}');
	r->status = 200;
	buf_free(&filters);
}

/* ---------------------------------------------------------------------- */

static void
not_found(const ApiRequest *req, Reply *r)
{
	Buf			msg = {0};

	buf_printf(&msg, "The requested resource %s was not found", req->path);
	reply_error(r, 404, 20404, msg.data);
	buf_free(&msg);
}

/* GET, POST (cancel or redact) and DELETE of Messages/{Sid}.json */
static void
message_instance(const ApiRequest *req, const char *sid, size_t sid_len,
				 Reply *r)
{
	Message    *m;
	MsgView		v;
	bool		is_post = strcmp(req->method, "POST") == 0;
	bool		is_delete = strcmp(req->method, "DELETE") == 0;
	const FormField *status = NULL,
			   *body = NULL;

	if (!is_post && !is_delete && strcmp(req->method, "GET") != 0)
	{
		reply_error(r, 405, 20004, "Method not allowed");
		return;
	}
	r->kind = is_post ? KIND_UPDATE : is_delete ? KIND_DELETE : KIND_FETCH;
	if (is_post)
	{
		status = form_get(req->form, "Status");
		body = form_get(req->form, "Body");
		if (status && !field_eq(status->val, status->vlen, "canceled"))
		{
			reply_error(r, 400, 20001, "Status can only be set to 'canceled'");
			return;
		}
		if (body && body->vlen > 0)
		{
			reply_error(r, 400, 20001, "Body can only be redacted (set to an empty string)");
			return;
		}
	}

	pthread_mutex_lock(&store_lock);
	m = store_find(sid, sid_len);
	if (m == NULL || m->deleted)
	{
		pthread_mutex_unlock(&store_lock);
		not_found(req, r);
		return;
	}
	message_view(m, now_us(), false, &v);
	if (is_delete)
	{
		/*
		 * Twilio refuses to delete a message before its course is over
		 * (20009): an application that deletes right after sending must
		 * wait for the final status.  Its page gives the code but not the
		 * HTTP status; 400 is what this API answers for a request refused
		 * for the resource's state (30409 too).  Over means the plan's last
		 * step, "sent" included for a number without receipts, or canceled.
		 */
		if (v.step >= 0 && v.step < m->plan.nsteps - 1)
		{
			pthread_mutex_unlock(&store_lock);
			reply_error(r, 400, 20009, "Cannot delete this resource before it is complete");
			return;
		}
		m->deleted = true;
		store_changed(m);
		pthread_mutex_unlock(&store_lock);
		r->status = 204;
		return;
	}
	if (status)
	{
		/*
		 * Only while it is scheduled: Twilio's page for 30409 says a
		 * message can be canceled at that point and no other, so one
		 * accepted or queued (a Messaging Service's included) is already
		 * on its way and answers 30409 as a delivered one does.
		 */
		if (strcmp(v.status, "scheduled") != 0)
		{
			pthread_mutex_unlock(&store_lock);
			reply_error(r, 400, 30409, "This message cannot be canceled");
			return;
		}
		m->canceled_us = now_us();
		callback_canceled(m);
	}
	if (body)
	{
		m->body_len = 0;
		m->redacted_us = now_us();
	}
	if (status || body)
	{
		message_view(m, now_us(), false, &v);
		store_changed(m);
	}
	buf_grow(&r->body, 1024 + m->body_len);
	message_json(&r->body, m, &v);
	pthread_mutex_unlock(&store_lock);
	r->status = 200;
}

/* A media URL's type, from its extension, as Twilio would have fetched it. */
static const char *
media_type(const char *url)
{
	static const char *const types[][2] = {
		{".png", "image/png"}, {".jpg", "image/jpeg"}, {".jpeg", "image/jpeg"},
		{".gif", "image/gif"}, {".webp", "image/webp"}, {".mp4", "video/mp4"},
		{".pdf", "application/pdf"}, {".vcf", "text/vcard"},
	};
	size_t		len = strcspn(url, "?#");

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
	{
		size_t		n = strlen(types[i][0]);

		if (len > n && strncasecmp(url + len - n, types[i][0], n) == 0)
			return types[i][1];
	}
	return "application/octet-stream";
}

/* The media's SID: ME and 32 hex digits, from its message and place. */
static void
media_sid(char *out, const Message *m, int i)
{
	snprintf(out, 35, "ME%.16s%016x", m->sid + 2, (unsigned) i + 1);
}

static json_t *
media_json(const Message *m, int i)
{
	json_t	   *o = json_object();
	char		sid[35];
	char		tail[48];
	char		path[PATH_LEN];

	media_sid(sid, m, i);
	snprintf(tail, sizeof(tail), "/Media/%s.json", sid);
	jv_set(o, "account_sid", jv_text(cfg.account_sid));
	jv_set(o, "content_type", jv_ascii(media_type(m->media[i])));
	jv_set(o, "date_created", jv_date(m->created_us));
	jv_set(o, "date_updated", jv_date(m->created_us));
	jv_set(o, "parent_sid", jv_ascii(m->sid));
	jv_set(o, "sid", jv_ascii(sid));
	jv_set(o, "uri", jv_text(message_path(path, m->sid, tail)));
	return o;
}

/*
 * GET .../Messages/{Sid}/Media.json, the list of a message's media, and
 * GET or DELETE .../Messages/{Sid}/Media/{MEsid}.json, one of them.  (The
 * media's content itself is not kept: Twilio's would be the fetched file.)
 */
static void
media_request(const ApiRequest *req, const char *sid, size_t sid_len,
			  const char *media, Reply *r)
{
	Message    *m;
	bool		list = strcmp(media, "Media.json") == 0 || strcmp(media, "Media") == 0;
	bool		is_delete = strcmp(req->method, "DELETE") == 0;
	bool		found = false;
	json_t	   *reply = NULL;

	if (strcmp(req->method, "GET") != 0 && !(is_delete && !list))
	{
		reply_error(r, 405, 20004, "Method not allowed");
		return;
	}
	pthread_mutex_lock(&store_lock);
	m = store_find(sid, sid_len);
	if (m == NULL || m->deleted)
	{
		pthread_mutex_unlock(&store_lock);
		not_found(req, r);
		return;
	}
	if (list)
	{
		json_t	   *items = json_array();
		Buf			uri = {0};

		for (int i = 0; i < m->num_media; i++)
			if (!m->media_deleted[i])
				json_array_append_new(items, media_json(m, i));
		buf_printf(&uri, "%s?PageSize=50&Page=0", req->path);
		reply = json_object();
		jv_set(reply, "media_list", items);
		jv_set(reply, "end", json_integer(json_array_size(items) > 0 ?
										  (json_int_t) json_array_size(items) - 1 : 0));
		jv_set(reply, "first_page_uri", jv_bytes(uri.data, uri.len));
		jv_set(reply, "next_page_uri", json_null());
		jv_set(reply, "page", json_integer(0));
		jv_set(reply, "page_size", json_integer(50));
		jv_set(reply, "previous_page_uri", json_null());
		jv_set(reply, "start", json_integer(0));
		jv_set(reply, "uri", jv_bytes(uri.data, uri.len));
		buf_free(&uri);
		found = true;
	}
	else
	{
		size_t		len = strcspn(media + 6, ".");

		for (int i = 0; i < m->num_media && !found; i++)
		{
			char		me[35];

			media_sid(me, m, i);
			if (m->media_deleted[i] || strncmp(media, "Media/", 6) != 0 ||
				len != 34 || strncmp(media + 6, me, 34) != 0)
				continue;
			found = true;
			if (is_delete)
			{
				/*
				 * Twilio's Media delete: gone from the list and from fetch.
				 * The URL stays in /_emulator/messages, which tells what
				 * was sent.
				 */
				m->media_deleted[i] = true;
				store_changed(m);
			}
			else
				reply = media_json(m, i);
		}
	}
	pthread_mutex_unlock(&store_lock);
	if (!found)
	{
		not_found(req, r);
		return;
	}
	if (reply == NULL)
	{
		r->status = 204;
		return;
	}
	buf_json(&r->body, reply);
	r->status = 200;
}

/*
 * Entry point for everything under /2010-04-01/.  Credentials are checked
 * before the path, as Twilio does: an unauthenticated client learns
 * nothing about which resources exist.
 */
void
twilio_handle(const ApiRequest *req, Reply *r)
{
	const char *acct,
			   *slash,
			   *rest;
	size_t		acct_len,
				rest_len;

	if (strncmp(req->path, API_PREFIX, strlen(API_PREFIX)) != 0)
	{
		not_found(req, r);
		return;
	}
	acct = req->path + strlen(API_PREFIX);
	slash = strchr(acct, '/');
	acct_len = slash ? (size_t) (slash - acct) : strlen(acct);

	if (req->auth_user == NULL ||
		!config_check_auth(req->auth_user, req->auth_user_len,
						   req->auth_pass, req->auth_pass_len) ||
		!(field_eq(acct, acct_len, cfg.account_sid) ||
		  (!cfg.check_credentials && acct_len == 34 && strncmp(acct, "AC", 2) == 0)))
	{
		reply_error(r, 401, 20003, "Authenticate");
		r->www_authenticate = true;
		return;
	}
	if (slash == NULL)
	{
		not_found(req, r);
		return;
	}

	rest = slash + 1;
	rest_len = strlen(rest);
	if (field_eq(rest, rest_len, "Messages.json") ||
		field_eq(rest, rest_len, "Messages"))
	{
		if (strcmp(req->method, "POST") == 0)
		{
			r->kind = KIND_CREATE;
			create_message(req, r);
		}
		else if (strcmp(req->method, "GET") == 0)
		{
			r->kind = KIND_LIST;
			list_messages(req, r);
		}
		else
			reply_error(r, 405, 20004, "Method not allowed");
		return;
	}
	if (rest_len > 9 && strncmp(rest, "Messages/", 9) == 0 &&
		strchr(rest + 9, '/') != NULL)
	{
		const char *sid = rest + 9;
		const char *media = strchr(sid, '/') + 1;

		if (strncmp(media, "Media", 5) == 0)
		{
			media_request(req, sid, media - 1 - sid, media, r);
			return;
		}
	}
	if (rest_len > 9 && strncmp(rest, "Messages/", 9) == 0 &&
		strchr(rest + 9, '/') == NULL)
	{
		const char *sid = rest + 9;
		size_t		sid_len = rest_len - 9;

		if (sid_len > 5 && strcmp(sid + sid_len - 5, ".json") == 0)
			sid_len -= 5;
		message_instance(req, sid, sid_len, r);
		return;
	}
	not_found(req, r);
}
