/*-------------------------------------------------------------------------
 *
 * form.c
 *	  Parse application/x-www-form-urlencoded data (bodies and queries).
 *
 *	  Keys may repeat (MediaUrl=a&MediaUrl=b), so the result is a list, not
 *	  a map.  '+' is a space and %XX a byte; everything else, raw UTF-8
 *	  included, is taken as it is.  Values keep their length because %00
 *	  is legal and a message body must come back byte for byte.
 *
 *-------------------------------------------------------------------------
 */
#include "emulator.h"

#include <stdlib.h>
#include <string.h>

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Decode src[0..n) into dst, which may be src itself (decoding never
 * lengthens).  A '%' not followed by two hex digits is kept literally,
 * as browsers and most servers do.  Returns the decoded length.
 */
static size_t
decode(char *dst, const char *src, size_t n)
{
	size_t		i,
				o = 0;

	for (i = 0; i < n; i++)
	{
		char		c = src[i];

		if (c == '+')
			dst[o++] = ' ';
		else if (c == '%' && i + 2 < n &&
				 hexval(src[i + 1]) >= 0 && hexval(src[i + 2]) >= 0)
		{
			dst[o++] = (char) (hexval(src[i + 1]) * 16 + hexval(src[i + 2]));
			i += 2;
		}
		else
			dst[o++] = c;
	}
	return o;
}

static void
form_push(Form *form, const char *key, size_t klen, const char *val, size_t vlen)
{
	if (form->n == form->cap)
	{
		int			cap = form->cap * 2;
		FormField  *f;

		if (form->f == form->small)
		{
			f = malloc(sizeof(FormField) * cap);
			if (f)
				memcpy(f, form->small, sizeof(form->small));
		}
		else
			f = realloc(form->f, sizeof(FormField) * cap);
		if (f == NULL)
			abort();
		form->f = f;
		form->cap = cap;
	}
	form->f[form->n].key = key;
	form->f[form->n].klen = klen;
	form->f[form->n].val = val;
	form->f[form->n].vlen = vlen;
	form->n++;
}

/*
 * Parse data[0..len).  The decoded keys and values live in one private
 * copy, NUL-terminated each so that callers may also treat them as C
 * strings when a NUL inside cannot matter (numbers, SIDs).
 */
void
form_parse(Form *form, const char *data, size_t len)
{
	size_t		pos = 0;
	char	   *out;

	form->f = form->small;
	form->cap = lengthof(form->small);
	form->n = 0;
	form->store = NULL;
	if (data == NULL || len == 0)
		return;

	/*
	 * Each non-empty pair gains two NULs and there are at most (len + 1) / 2
	 * of them, so twice the input is always enough.
	 */
	form->store = malloc(len * 2 + 2);
	if (form->store == NULL)
		abort();
	out = form->store;

	while (pos < len)
	{
		const char *pair = data + pos;
		const char *amp = memchr(pair, '&', len - pos);
		size_t		plen = amp ? (size_t) (amp - pair) : len - pos;
		const char *eq = memchr(pair, '=', plen);
		size_t		klen_raw = eq ? (size_t) (eq - pair) : plen;
		char	   *key,
				   *val;
		size_t		klen,
					vlen;

		pos += plen + 1;
		if (plen == 0)
			continue;			/* "a=1&&b=2" */

		key = out;
		klen = decode(key, pair, klen_raw);
		key[klen] = '\0';
		out += klen + 1;
		val = out;
		vlen = eq ? decode(val, eq + 1, plen - klen_raw - 1) : 0;
		val[vlen] = '\0';
		out += vlen + 1;
		form_push(form, key, klen, val, vlen);
	}
}

void
form_free(Form *form)
{
	if (form->f != form->small)
		free(form->f);
	free(form->store);
	form->f = form->small;
	form->store = NULL;
	form->n = 0;
}

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
