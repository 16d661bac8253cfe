/*-------------------------------------------------------------------------
 *
 * json.c
 *	  Growable buffer, JSON and URL writing, Twilio's date formats.
 *
 *	  JSON is written by hand: the emulator only ever produces a handful of
 *	  fixed shapes, and a library would cost more than the escaping below.
 *	  Strings are passed through byte for byte except for the characters
 *	  JSON requires escaped, so UTF-8 (valid or not) comes back unchanged.
 *
 *-------------------------------------------------------------------------
 */
#include "emulator.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void
oom(void)
{
	fprintf(stderr, "twilio-emulator: out of memory\n");
	abort();
}

void
buf_init(Buf *b, size_t cap)
{
	b->len = 0;
	b->cap = cap ? cap : 64;
	b->data = malloc(b->cap);
	if (b->data == NULL)
		oom();
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

/*
 * Write s as a JSON string.  Runs of ordinary bytes are copied in one go;
 * only '"', '\\' and control characters need anything else.
 */
void
json_str(Buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *) s;
	size_t		i,
				run = 0;

	buf_grow(b, n + 2);
	buf_putc(b, '"');
	for (i = 0; i < n; i++)
	{
		unsigned char c = p[i];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		buf_put(b, s + run, i - run);
		run = i + 1;
		if (c == '"' || c == '\\')
		{
			buf_putc(b, '\\');
			buf_putc(b, (char) c);
		}
		else
		{
			char		esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

			buf_put(b, esc, 6);
		}
	}
	buf_put(b, s + run, n - run);
	buf_putc(b, '"');
}

/* A C string as JSON, or null. */
void
json_cstr(Buf *b, const char *s)
{
	if (s == NULL)
		buf_put(b, "null", 4);
	else
		json_str(b, s, strlen(s));
}

/*
 * A timestamp as Twilio writes it, RFC 2822 in UTC:
 * "Thu, 26 Nov 2026 22:20:53 +0000".  Written without strftime so that
 * the locale can never change the day and month names.  0 means null.
 */
void
json_date(Buf *b, int64_t us)
{
	static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t		t;
	struct tm	tm;
	char		out[40];
	char	   *p = out;

	if (us == 0)
	{
		buf_put(b, "null", 4);
		return;
	}
	t = (time_t) (us / 1000000);
	gmtime_r(&t, &tm);
	/* formatted by hand: snprintf showed up in profiles of the create path */
	*p++ = '"';
	memcpy(p, days[tm.tm_wday], 3);
	p += 3;
	*p++ = ',';
	*p++ = ' ';
	*p++ = '0' + tm.tm_mday / 10;
	*p++ = '0' + tm.tm_mday % 10;
	*p++ = ' ';
	memcpy(p, months[tm.tm_mon], 3);
	p += 3;
	*p++ = ' ';
	{
		int			y = (tm.tm_year + 1900) % 10000;

		*p++ = '0' + y / 1000;
		*p++ = '0' + y / 100 % 10;
		*p++ = '0' + y / 10 % 10;
		*p++ = '0' + y % 10;
	}
	*p++ = ' ';
	*p++ = '0' + tm.tm_hour / 10;
	*p++ = '0' + tm.tm_hour % 10;
	*p++ = ':';
	*p++ = '0' + tm.tm_min / 10;
	*p++ = '0' + tm.tm_min % 10;
	*p++ = ':';
	*p++ = '0' + tm.tm_sec / 10;
	*p++ = '0' + tm.tm_sec % 10;
	memcpy(p, " +0000\"", 7);
	p += 7;
	buf_put(b, out, p - out);
}

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t		era;
	int64_t		yoe,
				doy,
				doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static bool
digits(const char *s, int n, int *out)
{
	int			i,
				v = 0;

	for (i = 0; i < n; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* "YYYY-MM-DD" (anything after the date is ignored) as a day number. */
bool
parse_day(const char *s, size_t n, int64_t *day)
{
	int			y,
				m,
				d;

	if (n < 10 || s[4] != '-' || s[7] != '-' || !digits(s, 4, &y) ||
		!digits(s + 5, 2, &m) || !digits(s + 8, 2, &d) ||
		m < 1 || m > 12 || d < 1 || d > 31)
		return false;
	*day = days_from_civil(y, m, d);
	return true;
}

/*
 * Twilio's SendAt, "YYYY-MM-DDTHH:MM:SSZ" in UTC (fractions of a second
 * before the Z are accepted and dropped), as microseconds since 1970.
 */
bool
parse_iso_utc(const char *s, size_t n, int64_t *us)
{
	int64_t		day;
	int			h,
				mi,
				se;
	size_t		i = 19;

	if (n < 20 || !parse_day(s, n, &day) || s[10] != 'T' || s[13] != ':' ||
		s[16] != ':' || !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) ||
		!digits(s + 17, 2, &se) || h > 23 || mi > 59 || se > 60)
		return false;
	if (s[i] == '.')
		for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			;
	if (i + 1 != n || s[i] != 'Z')
		return false;
	*us = ((day * 86400) + h * 3600 + mi * 60 + se) * INT64_C(1000000);
	return true;
}

int64_t
day_of(int64_t us)
{
	int64_t		s = us / 1000000;

	return (s >= 0 ? s : s - 86399) / 86400;
}

/* Twilio's error shape, exactly: code, message, more_info, status. */
void
json_error(Buf *b, int code, const char *message, int status)
{
	buf_puts(b, "{\"code\": ");
	buf_put_int(b, code);
	buf_puts(b, ", \"message\": ");
	json_cstr(b, message);
	buf_puts(b, ", \"more_info\": \"https://www.twilio.com/docs/errors/");
	buf_put_int(b, code);
	buf_puts(b, "\", \"status\": ");
	buf_put_int(b, status);
	buf_putc(b, '}');
}

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

int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
