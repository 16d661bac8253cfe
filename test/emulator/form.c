/*-------------------------------------------------------------------------
 *
 * form.c
 *	  Form parameters: read by libmicrohttpd, kept as lists, and written.
 *
 *	  Request bodies go through libmicrohttpd's post processor and query
 *	  strings through its own argument parsing; neither is decoded here.
 *	  Keys may repeat (MediaUrl=a&MediaUrl=b), so a Form is a list in the
 *	  order sent, not a map, and values keep their length because %00 is
 *	  legal and a message body must come back byte for byte.  A Form is
 *	  one allocation, so the request log can keep it as it is.
 *
 *	  Writing is the other way round: the status callbacks' bodies, and
 *	  the filters in a list's page URIs, percent-encoded.
 *
 *-------------------------------------------------------------------------
 */
#include "emulator.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The post processor's buffer: a longer value comes in parts. */
#define POST_BUFFER 1024

void
form_begin(FormBuilder *fb)
{
	memset(fb, 0, sizeof(*fb));
	fb->span = fb->small;
	fb->cap = lengthof(fb->small);
}

/* More of the last field's value. */
static void
form_extend(FormBuilder *fb, const char *val, size_t vlen)
{
	buf_put(&fb->bytes, val, vlen);
	fb->span[fb->n - 1].vlen += vlen;
}

/* A field with the first part of its value (the rest: form_extend). */
void
form_add(FormBuilder *fb, const char *key, size_t klen,
		 const char *val, size_t vlen)
{
	FormSpan   *s;

	if (fb->n == fb->cap)
	{
		FormSpan   *grown = malloc(sizeof(FormSpan) * fb->cap * 2);

		if (grown == NULL)
			abort();
		memcpy(grown, fb->span, sizeof(FormSpan) * fb->n);
		if (fb->span != fb->small)
			free(fb->span);
		fb->span = grown;
		fb->cap *= 2;
	}
	/* keys and values are NUL-terminated too, for C-string callers */
	if (fb->n > 0)
		buf_putc(&fb->bytes, '\0');
	s = &fb->span[fb->n++];
	s->key = fb->bytes.len;
	s->klen = klen;
	buf_put(&fb->bytes, key, klen);
	buf_putc(&fb->bytes, '\0');
	s->val = fb->bytes.len;
	s->vlen = 0;
	form_extend(fb, val, vlen);
}

/* The fields, as one allocation: the FormField array, then the bytes. */
void
form_finish(FormBuilder *fb, Form *form)
{
	char	   *bytes;
	int			i;

	form->f = NULL;
	form->n = fb->n;
	if (fb->n > 0)
	{
		buf_putc(&fb->bytes, '\0');
		form->f = malloc(sizeof(FormField) * fb->n + fb->bytes.len);
		if (form->f == NULL)
			abort();
		bytes = (char *) (form->f + fb->n);
		memcpy(bytes, fb->bytes.data, fb->bytes.len);
		for (i = 0; i < fb->n; i++)
		{
			form->f[i].key = bytes + fb->span[i].key;
			form->f[i].klen = fb->span[i].klen;
			form->f[i].val = bytes + fb->span[i].val;
			form->f[i].vlen = fb->span[i].vlen;
		}
	}
	buf_free(&fb->bytes);
	if (fb->span != fb->small)
		free(fb->span);
	fb->span = NULL;
}

void
form_free(Form *form)
{
	free(form->f);
	form->f = NULL;
	form->n = 0;
}

/* ---------------------------------------------------------------------- */

static bool
is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		(c >= 'A' && c <= 'F');
}

/*
 * libmicrohttpd 0.9.75 (Debian 12) reads a canonical form body exactly as
 * the form encoding says: checked against the emulator's former parser
 * with random bodies of escapes, '+', %00, raw and percent-encoded UTF-8
 * and values longer than its buffer.  Four things a sloppy client may
 * send go wrong, though:
 *
 *	- a '=' inside a value ("Body=1+1=2") stops the parse, and every field
 *	  from there on is lost; so does a pair with no name ("=x");
 *	- a '%' cut short by a '&' or the end is carried into the next field
 *	  ("Body=100%&To=%2B1555" gives the To "%+1555");
 *	- a raw NUL byte ends its value;
 *	- a last pair without '=' ("To=...&Body") is dropped.
 *
 * So it is given the body in canonical form: a value's '=' as %3D, a '%'
 * that is not followed by two hex digits as %25 (a literal '%', as
 * browsers read it), a NUL as %00, no pairs without a name, and a '&'
 * after each pair.  The fields are the same; only the spelling changes.
 */
static void
mend(const Buf *in, Buf *out)
{
	const char *s = in->data;
	size_t		n = in->len,
				i = 0;

	buf_grow(out, n + 16);
	while (i < n)
	{
		const char *amp = memchr(s + i, '&', n - i);
		size_t		end = amp ? (size_t) (amp - s) : n;
		bool		named = false;
		size_t		k;

		if (end > i && s[i] != '=')
		{
			for (k = i; k < end; k++)
			{
				if (s[k] == '%' &&
					!(k + 2 < end && is_hex(s[k + 1]) && is_hex(s[k + 2])))
					buf_put(out, "%25", 3);
				else if (s[k] == '=' && named)
					buf_put(out, "%3D", 3);
				else if (s[k] == '\0')
					buf_put(out, "%00", 3);
				else
					buf_putc(out, s[k]);
				named |= s[k] == '=';
			}
			buf_putc(out, '&');
		}
		i = end + 1;
	}
}

/*
 * The post processor hands a long value over in parts; off > 0 continues
 * the last one.  (Only when it is given the body in one piece: fed part
 * by part, 0.9.75 reports a value whose first %XX escape is split
 * between two parts as two fields at offset 0.)
 */
static enum MHD_Result
on_post_field(void *cls, enum MHD_ValueKind kind, const char *key,
			  const char *filename, const char *content_type,
			  const char *transfer_encoding, const char *data,
			  uint64_t off, size_t size)
{
	FormBuilder *fb = cls;

	(void) kind;
	(void) filename;
	(void) content_type;
	(void) transfer_encoding;
	if (off > 0 && fb->n > 0)
		form_extend(fb, data, size);
	else
		form_add(fb, key, strlen(key), data, size);
	return MHD_YES;
}

/*
 * The request's body as a form.  Twilio reads form bodies only, so a body
 * of another Content-Type has no fields (a JSON body gets 21604, as from
 * Twilio); a body without one is read as a form, as the emulator always
 * has, which the post processor only does once the header is there.
 */
void
form_read_body(struct MHD_Connection *conn, const Buf *body, Form *form)
{
	static const char urlencoded[] = MHD_HTTP_POST_ENCODING_FORM_URLENCODED;
	const char *type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
												   MHD_HTTP_HEADER_CONTENT_TYPE);
	struct MHD_PostProcessor *pp;
	FormBuilder fb;
	Buf			mended = {0};

	form_begin(&fb);
	if (body->len > 0 &&
		(type == NULL || strncasecmp(type, urlencoded, strlen(urlencoded)) == 0))
	{
		if (type == NULL)
			MHD_set_connection_value(conn, MHD_HEADER_KIND,
									 MHD_HTTP_HEADER_CONTENT_TYPE, urlencoded);
		mend(body, &mended);
		pp = MHD_create_post_processor(conn, POST_BUFFER, on_post_field, &fb);
		if (pp != NULL)
		{
			MHD_post_process(pp, mended.data, mended.len);
			MHD_destroy_post_processor(pp);
		}
		buf_free(&mended);
	}
	form_finish(&fb, form);
}

static enum MHD_Result
on_query_field(void *cls, enum MHD_ValueKind kind, const char *key,
			   size_t klen, const char *val, size_t vlen)
{
	(void) kind;
	/* "a=1&&b=2": libmicrohttpd reports the empty pair; it is nothing */
	if (klen == 0 && val == NULL)
		return MHD_YES;
	form_add(cls, key, klen, val ? val : "", val ? vlen : 0);
	return MHD_YES;
}

/* The request's query string as a form, as libmicrohttpd parsed it. */
void
form_read_query(struct MHD_Connection *conn, Form *form)
{
	FormBuilder fb;

	form_begin(&fb);
	MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, on_query_field, &fb);
	form_finish(&fb, form);
}

/* ---------------------------------------------------------------------- */

bool
field_eq(const char *s, size_t n, const char *cstr)
{
	size_t		l = strlen(cstr);

	return n == l && memcmp(s, cstr, n) == 0;
}

/* First field with this key, or NULL. */
const FormField *
form_get(const Form *form, const char *key)
{
	int			i;

	for (i = 0; i < form->n; i++)
		if (field_eq(form->f[i].key, form->f[i].klen, key))
			return &form->f[i];
	return NULL;
}

int
form_count(const Form *form, const char *key)
{
	int			i,
				c = 0;

	for (i = 0; i < form->n; i++)
		if (field_eq(form->f[i].key, form->f[i].klen, key))
			c++;
	return c;
}

/* Strict decimal integer (optional sign); false on anything else. */
bool
parse_int(const char *s, size_t n, int64_t *out)
{
	size_t		i = 0;
	bool		neg = false;
	int64_t		v = 0;

	if (n > 0 && (s[0] == '-' || s[0] == '+'))
	{
		neg = (s[0] == '-');
		i = 1;
	}
	if (i == n || n - i > 18)
		return false;
	for (; i < n; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = neg ? -v : v;
	return true;
}

/* ---------------------------------------------------------------------- */

/* Percent-encode for a query string value (RFC 3986 unreserved kept). */
void
url_encode(Buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t		i;

	for (i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
			c == '~')
			buf_putc(b, (char) c);
		else
		{
			char		esc[3] = {'%', hex[c >> 4], hex[c & 15]};

			buf_put(b, esc, 3);
		}
	}
}

/* The fields as a form body: key=value&..., in their order. */
void
form_encode(Buf *b, const Form *form)
{
	int			i;

	for (i = 0; i < form->n; i++)
	{
		if (i > 0)
			buf_putc(b, '&');
		url_encode(b, form->f[i].key, form->f[i].klen);
		buf_putc(b, '=');
		url_encode(b, form->f[i].val, form->f[i].vlen);
	}
}
