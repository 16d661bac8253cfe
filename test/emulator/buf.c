/*-------------------------------------------------------------------------
 *
 * buf.c
 *	  A growable byte buffer: request bodies, replies, callback bodies.
 *
 *	  Replies are written into one of these and handed to libmicrohttpd
 *	  without a copy (buf_steal), so the buffer, not a library's string,
 *	  is what every reply and event ends up in.
 *
 *-------------------------------------------------------------------------
 */
#include "emulator.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
oom(void)
{
	fprintf(stderr, "twilio-emulator: out of memory\n");
	abort();
}

void
buf_free(Buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* Make room for extra more bytes; doubling keeps appends amortized O(1). */
void
buf_grow(Buf *b, size_t extra)
{
	size_t		need = b->len + extra;
	size_t		cap = b->cap ? b->cap : 64;

	if (need <= b->cap && b->data != NULL)
		return;
	while (cap < need)
		cap *= 2;
	b->data = realloc(b->data, cap);
	if (b->data == NULL)
		oom();
	b->cap = cap;
}

void
buf_put(Buf *b, const char *s, size_t n)
{
	if (n == 0)
		return;
	if (b->len + n > b->cap)
		buf_grow(b, n);
	memcpy(b->data + b->len, s, n);
	b->len += n;
}

void
buf_puts(Buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

void
buf_printf(Buf *b, const char *fmt,...)
{
	va_list		ap;
	int			n;

	buf_grow(b, 64);
	va_start(ap, fmt);
	n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t) n >= b->cap - b->len)
	{
		buf_grow(b, (size_t) n + 1);
		va_start(ap, fmt);
		vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += n;
}

/* Written by hand: snprintf showed up in profiles of the create path. */
void
buf_put_int(Buf *b, int64_t v)
{
	char		tmp[24];
	char	   *p = tmp + sizeof(tmp);
	uint64_t	u = (v < 0) ? (uint64_t) 0 - (uint64_t) v : (uint64_t) v;

	do
	{
		*--p = '0' + (u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		*--p = '-';
	buf_put(b, p, tmp + sizeof(tmp) - p);
}

/* Hand the buffer's memory to the caller (NUL-terminated). */
char *
buf_steal(Buf *b, size_t *len)
{
	char	   *d;

	buf_putc(b, '\0');
	b->len--;
	d = b->data;
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return d;
}
