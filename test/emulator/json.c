/*-------------------------------------------------------------------------
 *
 * json.c
 *	  The JSON the emulator writes, built as jansson values.
 *
 *	  Replies, reports and events are jansson objects, dumped into a Buf:
 *	  jansson does the escaping and the structure, and its default layout
 *	  (", " and ": ", members in the order set) is the one Twilio's replies
 *	  and the emulator's own have always had.  What is left here is what
 *	  jansson cannot know: which strings may hold anything a client sent,
 *	  Twilio's error shape, and a form's repeated keys.  The exception is
 *	  the message resource, which a figure showed must stay hand-written
 *	  (buf_json_str below says why).
 *
 *	  jansson writes only valid UTF-8.  json_stringn() refuses anything
 *	  else, and a string made with json_stringn_nocheck() does not help:
 *	  the dump of the whole document then fails.  The extension only ever
 *	  sends UTF-8, but a hand-made request may not, and the request log
 *	  must show it all the same, so what is not UTF-8 becomes U+FFFD, as
 *	  a browser reads such text.  Valid text, emoji, RTL and line breaks
 *	  included, comes back byte for byte.
 *
 *-------------------------------------------------------------------------
 */
#include "emulator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The well-formed UTF-8 sequence at s[0..n): its length, or 0 when there
 * is none, with *bad the bytes to replace by one U+FFFD (the lead and any
 * continuation bytes that could still have made a sequence: Unicode's
 * "maximal subpart", which browsers and Python follow).  Well-formed is
 * RFC 3629, what jansson checks: no overlong forms, no surrogates,
 * nothing past U+10FFFF.
 */
static size_t
utf8_sequence(const unsigned char *s, size_t n, size_t *bad)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80,
				hi = 0xBF;
	size_t		len,
				i;

	*bad = 1;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		len = 2;
	else if (c >= 0xE0 && c <= 0xEF)
	{
		len = 3;
		lo = c == 0xE0 ? 0xA0 : 0x80;
		hi = c == 0xED ? 0x9F : 0xBF;
	}
	else if (c >= 0xF0 && c <= 0xF4)
	{
		len = 4;
		lo = c == 0xF0 ? 0x90 : 0x80;
		hi = c == 0xF4 ? 0x8F : 0xBF;
	}
	else
		return 0;
	for (i = 1; i < len; i++, lo = 0x80, hi = 0xBF)
	{
		if (i >= n || s[i] < lo || s[i] > hi)
		{
			*bad = i;
			return 0;
		}
	}
	return len;
}

/* Any bytes as a JSON string; see the header comment for invalid UTF-8. */
json_t *
jv_bytes(const char *s, size_t n)
{
	json_t	   *v = json_stringn(s, n);
	Buf			b = {0};
	size_t		i = 0;

	if (v != NULL)
		return v;
	buf_grow(&b, n + 16);
	while (i < n)
	{
		size_t		bad;
		size_t		len = utf8_sequence((const unsigned char *) s + i, n - i, &bad);

		if (len > 0)
			buf_put(&b, s + i, len);
		else
			buf_put(&b, "\xEF\xBF\xBD", 3);
		i += len > 0 ? len : bad;
	}
	v = json_stringn_nocheck(b.data, b.len);
	buf_free(&b);
	return v;
}

/*
 * The one piece of JSON still written by hand: the message resource, on
 * the paths a benchmark drives (create, fetch, list; twilio.c).  Built
 * with jansson it cost too much (test/bench/emulator_libs.sh, 5 pairs of
 * wrk -t2 -c32 -d5s against the hand-written emulator, 2026-11-28, on
 * the 2 shared cores): a create took 2.3 times the CPU (32 us, median,
 * against 14.5; the worker spends 56 to 77 us on a message, on the
 * same cores during make bench) at 0.69 of the requests a second, and a
 * list of 50 messages 13 times (506 us against 41) at 0.13 of them.
 * jansson allocates every member and value, and its dump walks strings a
 * character at a time.  Written by hand again, with everything else
 * still from jansson, the emulator made 0.92 of the creates a second
 * (1.11 times the CPU: libmicrohttpd's form parsing, and a log that
 * keeps the parsed form) and as many lists (1.01).
 *
 * This is the escaping it needs, the same as jansson's in effect: '"',
 * '\\' and control characters escaped, valid UTF-8 copied as it is, and
 * what is not UTF-8 replaced as jv_bytes() does.  Runs of ordinary bytes
 * are copied in one go.
 */
void
buf_json_str(Buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *) s;
	size_t		i = 0,
				run = 0;

	buf_grow(b, n + 2);
	buf_putc(b, '"');
	while (i < n)
	{
		unsigned char c = p[i];
		size_t		len,
					bad;

		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\')
		{
			i++;
			continue;
		}
		if (c >= 0x80 && (len = utf8_sequence(p + i, n - i, &bad)) > 0)
		{
			i += len;
			continue;
		}
		buf_put(b, s + run, i - run);
		if (c >= 0x80)
		{
			buf_put(b, "\xEF\xBF\xBD", 3);
			i += bad;
		}
		else if (c == '"' || c == '\\')
		{
			buf_putc(b, '\\');
			buf_putc(b, (char) c);
			i++;
		}
		else
		{
			char		esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

			buf_put(b, esc, 6);
			i++;
		}
		run = i;
	}
	buf_put(b, s + run, n - run);
	buf_putc(b, '"');
}

/* A C string as JSON, or null. */
void
buf_json_text(Buf *b, const char *s)
{
	if (s == NULL)
		buf_put(b, "null", 4);
	else
		buf_json_str(b, s, strlen(s));
}

/* A timestamp as JSON, Twilio's way, or null for 0. */
void
buf_json_date(Buf *b, int64_t us)
{
	char		out[DATE_LEN + 1];

	if (us == 0)
	{
		buf_put(b, "null", 4);
		return;
	}
	buf_putc(b, '"');
	buf_put(b, out, format_date(out, us));
	buf_putc(b, '"');
}

/* A C string, or null. */
json_t *
jv_text(const char *s)
{
	return s ? jv_bytes(s, strlen(s)) : json_null();
}

/* A string of the emulator's own, ASCII by construction: not checked. */
json_t *
jv_ascii(const char *s)
{
	return json_string_nocheck(s);
}

/* A timestamp as Twilio writes it, or null for 0 (never happened). */
json_t *
jv_date(int64_t us)
{
	char		out[DATE_LEN + 1];

	if (us == 0)
		return json_null();
	return json_stringn_nocheck(out, format_date(out, us));
}

/* An error or result code, or null for 0 (none). */
json_t *
jv_code(int64_t code)
{
	return code ? json_integer(code) : json_null();
}

/* Keys are the emulator's own literals: not checked. */
void
jv_set(json_t *object, const char *key, json_t *value)
{
	json_object_set_new_nocheck(object, key, value);
}

/* Twilio's error shape, exactly: code, message, more_info, status. */
json_t *
jv_error(int code, const char *message, int status)
{
	json_t	   *e = json_object();
	char		more[64];

	snprintf(more, sizeof(more), "https://www.twilio.com/docs/errors/%d", code);
	jv_set(e, "code", json_integer(code));
	jv_set(e, "message", jv_text(message));
	jv_set(e, "more_info", jv_ascii(more));
	jv_set(e, "status", json_integer(status));
	return e;
}

/*
 * A form as an object, keys in the order first sent; a repeated key
 * becomes an array of its values in order (MediaUrl).
 */
json_t *
jv_form(const Form *form)
{
	json_t	   *o = json_object();
	int			i;

	for (i = 0; i < form->n; i++)
	{
		const FormField *f = &form->f[i];
		json_t	   *key = jv_bytes(f->key, f->klen);
		const char *k = json_string_value(key);
		json_t	   *val = jv_bytes(f->val, f->vlen);
		json_t	   *seen = json_object_get(o, k);

		if (seen == NULL)
			json_object_set_new(o, k, val);
		else if (json_is_array(seen))
			json_array_append_new(seen, val);
		else
			json_object_set_new(o, k, json_pack("[O, o]", seen, val));
		json_decref(key);
	}
	return o;
}

static int
put_piece(const char *piece, size_t size, void *data)
{
	buf_put(data, piece, size);
	return 0;
}

/* Write value onto b and let go of it. */
void
buf_json(Buf *b, json_t *value)
{
	if (value == NULL ||
		json_dump_callback(value, put_piece, b, JSON_ENCODE_ANY) != 0)
	{
		fprintf(stderr, "twilio-emulator: out of memory\n");
		abort();
	}
	json_decref(value);
}

/*
 * An array with one element per line, as the control API's reports have
 * always been written, so that line-based tools can read them (the
 * benchmarks' perl does).  The logs, which can grow long, write theirs
 * the same way one element at a time, never as one big tree.
 */
void
buf_json_lines(Buf *b, json_t *array)
{
	size_t		i;

	buf_putc(b, '[');
	for (i = 0; i < json_array_size(array); i++)
	{
		if (i > 0)
			buf_puts(b, ",\n");
		buf_json(b, json_incref(json_array_get(array, i)));
	}
	buf_putc(b, ']');
	json_decref(array);
}
