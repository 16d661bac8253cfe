/*-------------------------------------------------------------------------
 *
 * control.c
 *	  The control API under /_emulator/: faults, outcomes, reset, config
 *	  and reports.
 *
 *	  It needs no credentials (the emulator only listens on 127.0.0.1) and
 *	  is neither logged nor delayed, so tests can inspect the emulator
 *	  without disturbing what they measure.  Parameters are read from the
 *	  form body or, failing that, from the query string.
 *
 *-------------------------------------------------------------------------
 */
#include "emulator.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Params
{
	const Form *body;
	const Form *query;
} Params;

static const FormField *
param(const Params *p, const char *key)
{
	const FormField *f = form_get(p->body, key);

	return f ? f : form_get(p->query, key);
}

/* Control replies end with a newline, for people reading them in a shell. */
static void
answer(Reply *r, int status, json_t *value)
{
	r->status = status;
	r->body.len = 0;
	buf_json(&r->body, value);
	buf_putc(&r->body, '\n');
}

/* A list of rules, one per line (buf_json_lines) */
static void
lines(Reply *r, json_t *array)
{
	r->status = 200;
	buf_json_lines(&r->body, array);
	buf_putc(&r->body, '\n');
}

static void
control_error(Reply *r, int status, const char *message)
{
	answer(r, status, json_pack("{s:o}", "error", jv_text(message)));
}

/* An integer parameter within [min, max]; false (and a 400) if malformed. */
static bool
int_param(const Params *p, const char *key, int64_t min, int64_t max,
		  int64_t *out, Reply *r)
{
	const FormField *f = param(p, key);
	char		msg[128];

	if (f == NULL)
		return true;
	if (!parse_int(f->val, f->vlen, out) || *out < min || *out > max)
	{
		snprintf(msg, sizeof(msg), "%s must be an integer between %lld and %lld",
				 key, (long long) min, (long long) max);
		control_error(r, 400, msg);
		return false;
	}
	return true;
}

static void
add_fault(const Params *p, Reply *r)
{
	const FormField *action_f = param(p, "action");
	const FormField *to = param(p, "to");
	FaultAction action;
	int64_t		count = -1,
				percent = 100,
				delay_ms = 1000,
				retry_after = 1;
	int			id;

	if (action_f == NULL ||
		(action = fault_parse(action_f->val, action_f->vlen)) == FAULT_NONE)
	{
		control_error(r, 400, "action must be one of 500_before, 500_after, 503_after, 429, 429_retry_after, delay, drop_after, drop_before, auth_fail");
		return;
	}
	if (!int_param(p, "count", -1, INT64_C(1000000000000), &count, r) ||
		!int_param(p, "percent", 0, 100, &percent, r) ||
		!int_param(p, "delay_ms", 0, 3600000, &delay_ms, r) ||
		!int_param(p, "retry_after", 0, 86400, &retry_after, r))
		return;
	if (to && to->vlen == 0)
		to = NULL;
	id = fault_add(action, to ? to->val : NULL, to ? to->vlen : 0, count,
				   (int) percent, (int) delay_ms, (int) retry_after);
	if (!cfg.quiet)
		fprintf(stderr, "twilio-emulator: fault rule %d: %s\n", id,
				fault_name(action));
	answer(r, 200, json_pack("{s:i}", "id", id));
}

static json_t *
config_json(void)
{
	json_t	   *o = json_object();
	bool		frozen;

	pthread_mutex_lock(&store_lock);
	frozen = clock_frozen();
	pthread_mutex_unlock(&store_lock);

	pthread_mutex_lock(&cfg.lock);
	jv_set(o, "account_sid", jv_text(cfg.account_sid));
	jv_set(o, "check_credentials", json_boolean(cfg.check_credentials));
	jv_set(o, "auth_token", jv_text(cfg.auth_token));
	jv_set(o, "api_key_sid", jv_text(cfg.api_key_sid));
	jv_set(o, "callback_token", jv_text(cfg.callback_token));
	jv_set(o, "callback_ca_file", jv_text(cfg.callback_ca_file));
	pthread_mutex_unlock(&cfg.lock);
	jv_set(o, "delay_ms", json_integer(atomic_load(&cfg.delay_ms)));
	/* the old single knob, as far as it still describes things */
	jv_set(o, "progress_ms", json_integer(frozen ? -1 :
										  atomic_load(&cfg.queued_ms) +
										  atomic_load(&cfg.sending_ms)));
	jv_set(o, "accepted_ms", json_integer(atomic_load(&cfg.accepted_ms)));
	jv_set(o, "queued_ms", json_integer(atomic_load(&cfg.queued_ms)));
	jv_set(o, "sending_ms", json_integer(atomic_load(&cfg.sending_ms)));
	jv_set(o, "sent_ms", json_integer(atomic_load(&cfg.sent_ms)));
	jv_set(o, "frozen", json_boolean(frozen));
	jv_set(o, "callback_order",
		   jv_ascii(callback_order_name(atomic_load(&cfg.callback_order))));
	jv_set(o, "callback_drop_percent",
		   json_integer(atomic_load(&cfg.callback_drop_percent)));
	jv_set(o, "callback_timeout_ms",
		   json_integer(atomic_load(&cfg.callback_timeout_ms)));
	return o;
}

/* 1/0 or true/false; false (and a 400) if malformed. */
static bool
bool_param(const Params *p, const char *key, int *out, Reply *r)
{
	const FormField *f = param(p, key);
	char		msg[128];

	if (f == NULL)
		return true;
	if (field_eq(f->val, f->vlen, "1") || field_eq(f->val, f->vlen, "true"))
		*out = 1;
	else if (field_eq(f->val, f->vlen, "0") || field_eq(f->val, f->vlen, "false"))
		*out = 0;
	else
	{
		snprintf(msg, sizeof(msg), "%s must be true or false (or 1 or 0)", key);
		control_error(r, 400, msg);
		return false;
	}
	return true;
}

/* Everything is checked before anything changes: a 400 changes nothing. */
static void
set_config(const Params *p, Reply *r)
{
	const FormField *token = param(p, "auth_token");
	const FormField *key_sid = param(p, "api_key_sid");
	const FormField *key_secret = param(p, "api_key_secret");
	const FormField *cb_token = param(p, "callback_token");
	const FormField *cb_ca = param(p, "callback_ca_file");
	const FormField *order_f = param(p, "callback_order");
	int64_t		delay_ms = -2,
				progress_ms = -2,
				accepted_ms = -1,
				queued_ms = -1,
				sending_ms = -1,
				sent_ms = -1,
				drop = -1,
				timeout_ms = -1;
	int			frozen = -1,
				order = -1,
				check = -1;

	if (!int_param(p, "delay_ms", 0, 3600000, &delay_ms, r) ||
		!int_param(p, "progress_ms", -1, 86400000, &progress_ms, r) ||
		!int_param(p, "accepted_ms", 0, 86400000, &accepted_ms, r) ||
		!int_param(p, "queued_ms", 0, 86400000, &queued_ms, r) ||
		!int_param(p, "sending_ms", 0, 86400000, &sending_ms, r) ||
		!int_param(p, "sent_ms", 0, 86400000, &sent_ms, r) ||
		!int_param(p, "callback_drop_percent", 0, 100, &drop, r) ||
		!int_param(p, "callback_timeout_ms", 1, 600000, &timeout_ms, r) ||
		!bool_param(p, "frozen", &frozen, r) ||
		!bool_param(p, "check_credentials", &check, r))
		return;
	if (token && token->vlen == 0)
	{
		control_error(r, 400, "auth_token must not be empty");
		return;
	}
	if (order_f && !callback_order_parse(order_f->val, order_f->vlen, &order))
	{
		control_error(r, 400, "callback_order must be one of inorder, shuffle, reverse");
		return;
	}
	pthread_mutex_lock(&cfg.lock);
	/* credentials set here are checked from now on */
	if (token || key_sid)
		cfg.check_credentials = true;
	if (check >= 0)
		cfg.check_credentials = (check == 1);
	if (token)
		config_set_str(&cfg.auth_token, token->val, token->vlen);
	/* an empty api_key_sid removes the API key */
	if (key_sid)
		config_set_str(&cfg.api_key_sid, key_sid->val, key_sid->vlen);
	if (key_secret)
		config_set_str(&cfg.api_key_secret, key_secret->val, key_secret->vlen);
	/* empty: sign with the auth token again; use the system's CAs again */
	if (cb_token)
		config_set_str(&cfg.callback_token, cb_token->val, cb_token->vlen);
	if (cb_ca)
		config_set_str(&cfg.callback_ca_file, cb_ca->val, cb_ca->vlen);
	pthread_mutex_unlock(&cfg.lock);
	if (delay_ms >= 0)
		atomic_store(&cfg.delay_ms, (int) delay_ms);

	/*
	 * progress_ms, the old single knob: sent after P (half of it queued,
	 * half sending), the receipt P later; -1 freezes.  The finer keys
	 * below override it.
	 */
	if (progress_ms >= 0)
	{
		atomic_store(&cfg.queued_ms, (int) (progress_ms / 2));
		atomic_store(&cfg.sending_ms, (int) (progress_ms - progress_ms / 2));
		atomic_store(&cfg.sent_ms, (int) progress_ms);
		if (frozen < 0)
			frozen = 0;
	}
	else if (progress_ms == -1 && frozen < 0)
		frozen = 1;
	if (accepted_ms >= 0)
		atomic_store(&cfg.accepted_ms, (int) accepted_ms);
	if (queued_ms >= 0)
		atomic_store(&cfg.queued_ms, (int) queued_ms);
	if (sending_ms >= 0)
		atomic_store(&cfg.sending_ms, (int) sending_ms);
	if (sent_ms >= 0)
		atomic_store(&cfg.sent_ms, (int) sent_ms);
	if (order >= 0)
		atomic_store(&cfg.callback_order, order);
	if (drop >= 0)
		atomic_store(&cfg.callback_drop_percent, (int) drop);
	if (timeout_ms >= 0)
		atomic_store(&cfg.callback_timeout_ms, (int) timeout_ms);
	if (frozen >= 0)
		clock_set_frozen(frozen == 1);
	if (!cfg.quiet)
		fprintf(stderr, "twilio-emulator: config changed\n");
	answer(r, 200, config_json());
}

static void
add_outcome(const Params *p, Reply *r)
{
	const FormField *status_f = param(p, "status");
	const FormField *to = param(p, "to");
	int			status;
	int64_t		count = -1,
				percent = 100,
				error_code = 0;
	int			id;

	if (status_f == NULL || !outcome_parse(status_f->val, status_f->vlen, &status))
	{
		control_error(r, 400, "status must be one of delivered, undelivered, failed, sent");
		return;
	}
	if (!int_param(p, "count", -1, INT64_C(1000000000000), &count, r) ||
		!int_param(p, "percent", 0, 100, &percent, r) ||
		!int_param(p, "error_code", 1, 99999, &error_code, r))
		return;
	if (error_code && status != ST_UNDELIVERED && status != ST_FAILED)
	{
		control_error(r, 400, "error_code goes only with undelivered or failed");
		return;
	}
	if (error_code == 0)
		error_code = status == ST_FAILED ? 30001 :
			status == ST_UNDELIVERED ? 30003 : 0;
	if (to && to->vlen == 0)
		to = NULL;
	id = outcome_add(status, (int) error_code, to ? to->val : NULL,
					 to ? to->vlen : 0, count, (int) percent);
	if (!cfg.quiet)
		fprintf(stderr, "twilio-emulator: outcome rule %d: %s\n", id,
				status_name(status));
	answer(r, 200, json_pack("{s:i}", "id", id));
}

/*
 * A text parameter as a C string (lower-cased for a search); NULL when
 * absent.  Freed by the caller.
 */
static char *
text_param(const Params *p, const char *key, bool lower)
{
	const FormField *f = param(p, key);
	char	   *s;

	if (f == NULL)
		return NULL;
	s = strndup(f->val, f->vlen);
	if (s == NULL)
		abort();
	for (char *c = s; lower && *c; c++)
		*c = (char) tolower((unsigned char) *c);
	return s;
}

void
control_handle(const char *method, const char *path, const Form *query,
			   const Form *form, Reply *r)
{
	Params		p = {form, query};
	const char *what = path + strlen("/_emulator/");
	bool		get = strcmp(method, "GET") == 0;
	bool		post = strcmp(method, "POST") == 0;
	bool		del = strcmp(method, "DELETE") == 0;
	int64_t		since = 0;

	if (strcmp(what, "faults") == 0 && post)
		add_fault(&p, r);
	else if (strcmp(what, "faults") == 0 && del)
		answer(r, 200, json_pack("{s:i}", "cleared", fault_clear()));
	else if (strcmp(what, "faults") == 0 && get)
		lines(r, fault_list_json());
	else if (strcmp(what, "outcomes") == 0 && post)
		add_outcome(&p, r);
	else if (strcmp(what, "outcomes") == 0 && del)
		answer(r, 200, json_pack("{s:i}", "cleared", outcome_clear()));
	else if (strcmp(what, "outcomes") == 0 && get)
		lines(r, outcome_list_json());
	else if (strcmp(what, "reset") == 0 && post)
	{
		fault_clear();
		outcome_clear();
		/* the messages, the callbacks still to come and their log */
		store_reset();
		log_reset();
		/* every open page empties too */
		events_publish_cleared();
		if (!cfg.quiet)
			fprintf(stderr, "twilio-emulator: reset\n");
		answer(r, 200, json_pack("{s:b}", "reset", 1));
	}
	else if (strcmp(what, "config") == 0 && post)
		set_config(&p, r);
	else if (strcmp(what, "config") == 0 && get)
		answer(r, 200, config_json());
	else if (strcmp(what, "requests") == 0 && get)
	{
		if (int_param(&p, "since", INT64_MIN / 2, INT64_MAX / 2, &since, r))
		{
			r->status = 200;
			log_requests_json(&r->body, since);
			buf_putc(&r->body, '\n');
		}
	}
	else if (strcmp(what, "callbacks") == 0 && get)
	{
		if (int_param(&p, "since", INT64_MIN / 2, INT64_MAX / 2, &since, r))
		{
			r->status = 200;
			callbacks_json(&r->body, since);
			buf_putc(&r->body, '\n');
		}
	}
	else if ((strcmp(what, "messages") == 0 ||
			  strcmp(what, "conversations") == 0) && get)
	{
		/* the inbox page's views (inbox.c); no parameter: every message */
		int64_t		limit = 0;
		char	   *to = text_param(&p, "to", false);
		char	   *q = text_param(&p, "q", true);

		if (int_param(&p, "limit", 0, INT64_MAX / 2, &limit, r))
		{
			r->status = 200;
			if (what[0] == 'm')
				inbox_messages_json(&r->body, to, q, limit);
			else
				inbox_conversations_json(&r->body, q, limit);
		}
		free(to);
		free(q);
	}
	else if (strcmp(what, "summary") == 0 && get)
		answer(r, 200, log_summary_json());
	else if (strcmp(what, "health") == 0 && get)
		answer(r, 200, json_pack("{s:b}", "ok", 1));
	else
		control_error(r, 404, "no such control endpoint or method");
}
