/*-------------------------------------------------------------------------
 *
 * inbox.c
 *	  A message as the inbox page shows it: what the application sent
 *	  (numbers, the body byte for byte, media URLs, segments and their
 *	  encoding), the status with the time each one began, and what became
 *	  of it (canceled, redacted, deleted).
 *
 *	  The page is a view of the emulator's memory, not a copy of it: it
 *	  asks for the conversations (one line per number: how many messages,
 *	  the last one) and for the thread it shows (the last messages to one
 *	  number), each narrowed by its search, and asks again when the event
 *	  stream (events.c) says a number's messages changed.  A load test may
 *	  leave hundreds of thousands of messages here: the page only ever
 *	  fetches and lays out what fits on it, and these lists are made in C
 *	  under the store's lock, a few milliseconds for the largest.
 *
 *	  The same shape of message serves GET /_emulator/messages, which the
 *	  tests read whole.  Twilio's own resource (twilio.c) has no place for
 *	  the history or the encoding, and holds media behind a subresource;
 *	  this is the emulator's view.
 *
 *-------------------------------------------------------------------------
 */
#include "emulator.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* One entry of "history": a status and the wall time it began. */
static json_t *
history_entry(const char *status, int64_t at_us)
{
	return json_pack("{s:s, s:I}", "status", status, "at_us", (json_int_t) at_us);
}

/* The plan steps a message reached, and when; store_lock held. */
static json_t *
history_json(const Message *m, const MsgView *v)
{
	json_t	   *h = json_array();
	int			reached = v->step;

	if (m->canceled_us)
	{
		/* the steps it reached before it was canceled */
		int64_t		age = clock_virtual(m->canceled_us) - m->created_v;

		reached = 0;
		while (reached + 1 < m->plan.nsteps &&
			   (int64_t) m->plan.at_ms[reached + 1] * 1000 <= age)
			reached++;
	}
	for (int k = 0; k <= reached; k++)
		json_array_append_new(h, history_entry(status_name(m->plan.status[k]),
											   step_real_us(m, k)));
	if (m->canceled_us)
		json_array_append_new(h, history_entry("canceled", m->canceled_us));
	return h;
}

/* The message as of now (wall time), as a JSON object; store_lock held. */
json_t *
inbox_message_json(const Message *m, int64_t now)
{
	json_t	   *o = json_object();
	json_t	   *media = json_array();
	MsgView		v;

	message_view(m, now, false, &v);
	for (int j = 0; j < m->num_media; j++)
		json_array_append_new(media, jv_text(m->media[j]));
	jv_set(o, "sid", jv_ascii(m->sid));
	jv_set(o, "to", jv_text(m->to));
	jv_set(o, "from", jv_text(m->from));
	jv_set(o, "messaging_service_sid", jv_text(m->service_sid));
	jv_set(o, "body", jv_bytes(m->body, m->body_len));
	jv_set(o, "media_urls", media);
	jv_set(o, "status", jv_ascii(v.status));
	jv_set(o, "error_code", jv_code(v.error_code));
	jv_set(o, "history", history_json(m, &v));
	jv_set(o, "status_callback", jv_text(m->callback_url));
	jv_set(o, "deleted", json_boolean(m->deleted));
	jv_set(o, "redacted", json_boolean(m->redacted_us != 0));
	jv_set(o, "num_segments", json_integer(m->num_segments));
	jv_set(o, "encoding", jv_ascii(m->ucs2 ? "UCS-2" : "GSM-7"));
	jv_set(o, "date_created", jv_date(m->created_us));
	jv_set(o, "date_sent", jv_date(v.sent_us));
	jv_set(o, "date_updated", jv_date(v.updated_us));
	jv_set(o, "created_us", json_integer(m->created_us));
	return o;
}

/* Does s[0..n) contain the lower-case ASCII needle q, ignoring ASCII case? */
static bool
contains(const char *s, size_t n, const char *q, size_t qlen)
{
	if (s == NULL)
		return false;
	for (size_t i = 0; i + qlen <= n; i++)
	{
		size_t		j = 0;

		while (j < qlen && tolower((unsigned char) s[i + j]) == q[j])
			j++;
		if (j == qlen)
			return true;
	}
	return false;
}

static bool
cstr_contains(const char *s, const char *q, size_t qlen)
{
	return s && contains(s, strlen(s), q, qlen);
}

/* Is m shown under the search q (lower case; NULL or "": everything)? */
static bool
matches(const Message *m, const char *q)
{
	size_t		qlen = q ? strlen(q) : 0;

	if (qlen == 0)
		return true;
	return cstr_contains(m->to, q, qlen) ||
		cstr_contains(m->from, q, qlen) ||
		cstr_contains(m->service_sid, q, qlen) ||
		cstr_contains(m->sid, q, qlen) ||
		(!m->redacted_us && contains(m->body, m->body_len, q, qlen));
}

/*
 * The last limit messages (0: all) to the number to (NULL: any) that match
 * q, oldest first, as a JSON array.
 */
void
inbox_messages_json(Buf *b, const char *to, const char *q, int64_t limit)
{
	int64_t		now = now_us();
	size_t		n,
				first,
				picked = 0;

	pthread_mutex_lock(&store_lock);
	n = store_count();
	/* from the newest back, until enough are found */
	first = n;
	while (first > 0 && (limit == 0 || (int64_t) picked < limit))
	{
		const Message *m = store_at(first - 1);

		first--;
		if ((to == NULL || strcmp(m->to, to) == 0) && matches(m, q))
			picked++;
	}
	buf_grow(b, picked * 400 + 4);
	buf_putc(b, '[');
	picked = 0;
	for (size_t i = first; i < n; i++)
	{
		const Message *m = store_at(i);

		if ((to != NULL && strcmp(m->to, to) != 0) || !matches(m, q))
			continue;
		/* one at a time: a long store never becomes one big tree */
		if (picked++ > 0)
			buf_puts(b, ",\n");
		buf_json(b, inbox_message_json(m, now));
	}
	buf_puts(b, "]\n");
	pthread_mutex_unlock(&store_lock);
}

/*
 * The conversations, kept as messages are created: an open-addressing hash
 * table from a number to its count and last message, so that listing them
 * costs the numbers, not the messages.  Guarded by store_lock; the keys
 * are the messages' own strings, which live until a reset, which empties
 * the table too.
 */
typedef struct Conversation
{
	const char *number;			/* NULL: a free slot */
	const Message *last;
	int64_t		count;
} Conversation;

static Conversation *conv_table;
static size_t conv_cap;			/* a power of two, or 0 */
static size_t conv_used;

static size_t
number_hash(const char *s)
{
	size_t		h = 14695981039346656037ULL;	/* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char) *s) * 1099511628211ULL;
	return h;
}

static Conversation *
conv_slot(Conversation *table, size_t cap, const char *number)
{
	size_t		i = number_hash(number) & (cap - 1);

	while (table[i].number && strcmp(table[i].number, number) != 0)
		i = (i + 1) & (cap - 1);
	return &table[i];
}

/* A message was created; store_lock held. */
void
inbox_note(const Message *m)
{
	Conversation *c;

	if (2 * (conv_used + 1) > conv_cap)
	{
		size_t		cap = conv_cap ? conv_cap * 2 : 256;
		Conversation *table = calloc(cap, sizeof(Conversation));

		if (table == NULL)
			abort();
		for (size_t i = 0; i < conv_cap; i++)
			if (conv_table[i].number)
				*conv_slot(table, cap, conv_table[i].number) = conv_table[i];
		free(conv_table);
		conv_table = table;
		conv_cap = cap;
	}
	c = conv_slot(conv_table, conv_cap, m->to);
	if (c->number == NULL)
	{
		c->number = m->to;
		conv_used++;
	}
	c->last = m;
	c->count++;
}

/* Every message is gone; store_lock held. */
void
inbox_forget(void)
{
	free(conv_table);
	conv_table = NULL;
	conv_cap = conv_used = 0;
}

static int
by_last_desc(const void *a, const void *b)
{
	int64_t		sa = ((const Conversation *) a)->last->serial;
	int64_t		sb = ((const Conversation *) b)->last->serial;

	return sa < sb ? 1 : sa > sb ? -1 : 0;
}

/*
 * The numbers messages were sent to, those with the latest message first:
 * {"numbers": N, "conversations": [{"number", "count", "last"}, ...]},
 * at most limit of them (0: all), counting only the messages that match q.
 * Without a search, from the table; with one, from every message.
 */
void
inbox_conversations_json(Buf *b, const char *q, int64_t limit)
{
	int64_t		now = now_us();
	Conversation *conv;
	size_t		nconv = 0;

	pthread_mutex_lock(&store_lock);
	if (q == NULL || *q == '\0')
	{
		conv = malloc(sizeof(Conversation) * (conv_used + 1));
		if (conv == NULL)
			abort();
		for (size_t i = 0; i < conv_cap; i++)
			if (conv_table[i].number)
				conv[nconv++] = conv_table[i];
	}
	else
	{
		size_t		cap = 256;
		size_t		n = store_count();

		conv = calloc(cap, sizeof(Conversation));
		for (size_t i = 0; conv && i < n; i++)
		{
			const Message *m = store_at(i);
			Conversation *c;

			if (!matches(m, q))
				continue;
			if (2 * (nconv + 1) > cap)
			{
				Conversation *t = calloc(cap * 2, sizeof(Conversation));

				if (t == NULL)
					abort();
				for (size_t j = 0; j < cap; j++)
					if (conv[j].number)
						*conv_slot(t, cap * 2, conv[j].number) = conv[j];
				free(conv);
				conv = t;
				cap *= 2;
			}
			c = conv_slot(conv, cap, m->to);
			if (c->number == NULL)
			{
				c->number = m->to;
				nconv++;
			}
			c->last = m;
			c->count++;
		}
		if (conv == NULL)
			abort();
		/* pack the used slots to the front */
		nconv = 0;
		for (size_t i = 0; i < cap; i++)
			if (conv[i].number)
				conv[nconv++] = conv[i];
	}
	qsort(conv, nconv, sizeof(*conv), by_last_desc);
	buf_puts(b, "{\"numbers\": ");
	buf_put_int(b, (int64_t) nconv);
	buf_puts(b, ", \"conversations\": [");
	for (size_t i = 0; i < nconv && (limit == 0 || (int64_t) i < limit); i++)
	{
		if (i > 0)
			buf_puts(b, ",\n");
		buf_json(b, json_pack("{s:o, s:I, s:o}",
							  "number", jv_text(conv[i].number),
							  "count", (json_int_t) conv[i].count,
							  "last", inbox_message_json(conv[i].last, now)));
	}
	buf_puts(b, "]}\n");
	pthread_mutex_unlock(&store_lock);
	free(conv);
}
