/*-------------------------------------------------------------------------
 *
 * twilio_json.c
 *	  Reading Twilio's JSON replies with PostgreSQL's JSON parser.
 *
 *	  Only scalar fields of the top-level object, and of the objects in a
 *	  list reply's "messages" array, are kept; everything else is skipped.
 *	  A reply is untrusted input: parsing never raises an error, it only
 *	  reports failure, and nesting is bounded before the recursive-descent
 *	  parser sees the text, so no reply can exhaust the worker's stack.
 *
 *-------------------------------------------------------------------------
 */
#ifdef FRONTEND
#include "postgres_fe.h"
#else
#include "postgres.h"
#endif

#include "twilio_json.h"
#include "compat.h"

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"

#define MAX_NESTING 32

typedef struct ParseState
{
	TwilioReply *reply;
	int			depth;			/* objects and arrays we are inside */
	bool		in_messages;	/* inside the top-level "messages" array */
	bool		next_is_messages;	/* the field just named was "messages" */
	int			max_messages;
	TwilioMessage *current;		/* message object being read, or NULL */
	char	  **target;			/* where the next scalar goes, or NULL */
} ParseState;

static char **
field_slot(TwilioMessage *m, const char *name)
{
	switch (name[0])
	{
		case 'b':
			if (strcmp(name, "body") == 0)
				return &m->body;
			break;
		case 'c':
			if (strcmp(name, "code") == 0)
				return &m->code;
			break;
		case 'd':
			if (strcmp(name, "date_created") == 0)
				return &m->date_created;
			if (strcmp(name, "date_sent") == 0)
				return &m->date_sent;
			break;
		case 'e':
			if (strcmp(name, "error_code") == 0)
				return &m->error_code;
			if (strcmp(name, "error_message") == 0)
				return &m->error_message;
			break;
		case 'f':
			if (strcmp(name, "from") == 0)
				return &m->from;
			break;
		case 'm':
			if (strcmp(name, "message") == 0)
				return &m->message;
			if (strcmp(name, "messaging_service_sid") == 0)
				return &m->messaging_service_sid;
			break;
		case 'n':
			if (strcmp(name, "num_segments") == 0)
				return &m->num_segments;
			break;
		case 'p':
			if (strcmp(name, "price") == 0)
				return &m->price;
			if (strcmp(name, "price_unit") == 0)
				return &m->price_unit;
			break;
		case 's':
			if (strcmp(name, "sid") == 0)
				return &m->sid;
			if (strcmp(name, "status") == 0)
				return &m->status;
			break;
		case 't':
			if (strcmp(name, "to") == 0)
				return &m->to;
			break;
	}
	return NULL;
}

static SMS_JSON_CALLBACK
on_object_start(void *arg)
{
	ParseState *st = (ParseState *) arg;

	st->depth++;
	st->target = NULL;
	if (st->in_messages && st->depth == 3)
	{
		TwilioReply *r = st->reply;

		if (r->nmessages == st->max_messages)
		{
			st->max_messages *= 2;
			r->messages = repalloc(r->messages, sizeof(TwilioMessage) * st->max_messages);
		}
		st->current = &r->messages[r->nmessages++];
		memset(st->current, 0, sizeof(TwilioMessage));
	}
	SMS_JSON_CALLBACK_DONE;
}

static SMS_JSON_CALLBACK
on_object_end(void *arg)
{
	ParseState *st = (ParseState *) arg;

	if (st->in_messages && st->depth == 3)
		st->current = NULL;
	st->depth--;
	SMS_JSON_CALLBACK_DONE;
}

static SMS_JSON_CALLBACK
on_array_start(void *arg)
{
	ParseState *st = (ParseState *) arg;

	st->depth++;
	st->target = NULL;
	if (st->depth == 2 && st->next_is_messages)
		st->in_messages = true;
	st->next_is_messages = false;
	SMS_JSON_CALLBACK_DONE;
}

static SMS_JSON_CALLBACK
on_array_end(void *arg)
{
	ParseState *st = (ParseState *) arg;

	if (st->depth == 2)
		st->in_messages = false;
	st->depth--;
	SMS_JSON_CALLBACK_DONE;
}

static SMS_JSON_CALLBACK
on_field_start(void *arg, char *fname, bool isnull)
{
	ParseState *st = (ParseState *) arg;

	st->target = NULL;
	st->next_is_messages = false;
	if (st->depth == 1)
	{
		if (strcmp(fname, "messages") == 0)
			st->next_is_messages = true;
		else if (strcmp(fname, "next_page_uri") == 0)
			st->target = &st->reply->next_page_uri;
		else
			st->target = field_slot(&st->reply->top, fname);
	}
	else if (st->depth == 3 && st->current != NULL)
		st->target = field_slot(st->current, fname);
	SMS_JSON_CALLBACK_DONE;
}

static SMS_JSON_CALLBACK
on_scalar(void *arg, char *token, JsonTokenType tokentype)
{
	ParseState *st = (ParseState *) arg;

	if (st->target != NULL && tokentype != JSON_TOKEN_NULL)
		*st->target = token;
	st->target = NULL;
	SMS_JSON_CALLBACK_DONE;
}

/* Deeper than MAX_NESTING?  Counts brackets outside strings. */
static bool
too_deep(const char *json, int len)
{
	int			depth = 0;
	bool		in_string = false;
	int			i;

	for (i = 0; i < len; i++)
	{
		char		c = json[i];

		if (in_string)
		{
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		}
		else if (c == '"')
			in_string = true;
		else if (c == '{' || c == '[')
		{
			if (++depth > MAX_NESTING)
				return true;
		}
		else if (c == '}' || c == ']')
			depth--;
	}
	return false;
}

/*
 * Parse a reply into *reply (allocated in the current memory context).
 * Returns false if it is not a JSON object we can read.
 */
bool
sms_twilio_parse_reply(const char *json, int len, TwilioReply *reply)
{
	JsonLexContext *lex;
	JsonSemAction sem;
	ParseState	st;
	char	   *copy;

	memset(reply, 0, sizeof(TwilioReply));
	if (len <= 0 || too_deep(json, len))
		return false;

	/* the lexer wants a NUL-terminated buffer it may keep pointers into */
	copy = palloc(len + 1);
	memcpy(copy, json, len);
	copy[len] = '\0';

	memset(&st, 0, sizeof(st));
	st.reply = reply;
	st.max_messages = 16;
	reply->messages = palloc(sizeof(TwilioMessage) * st.max_messages);

	memset(&sem, 0, sizeof(sem));
	sem.semstate = &st;
	sem.object_start = on_object_start;
	sem.object_end = on_object_end;
	sem.array_start = on_array_start;
	sem.array_end = on_array_end;
	sem.object_field_start = on_field_start;
	sem.scalar = on_scalar;

	lex = sms_make_json_lexer(copy, len, PG_UTF8, true);
	if (pg_parse_json(lex, &sem) != JSON_SUCCESS)
		return false;

	/* a bare scalar or array is not a reply */
	return copy[strspn(copy, " \t\r\n")] == '{';
}
