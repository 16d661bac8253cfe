/*-------------------------------------------------------------------------
 *
 * dates.c
 *	  Clocks, and the date formats Twilio writes and reads.
 *
 *	  Both are fixed layouts, written and read by hand: the date is on
 *	  every message a reply shows, so it is formatted without snprintf
 *	  (which showed up in profiles of the create path) and without
 *	  strftime (whose names follow the locale).
 *
 *-------------------------------------------------------------------------
 */
#include "emulator.h"

#include <string.h>
#include <time.h>

/*
 * A timestamp as Twilio writes it, RFC 2822 in UTC:
 * "Thu, 26 Nov 2026 22:20:53 +0000", into out (NUL-terminated); returns
 * its length.  Written without strftime so that the locale can never
 * change the day and month names.
 */
size_t
format_date(char out[DATE_LEN + 1], int64_t us)
{
	static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t		t;
	struct tm	tm;
	char	   *p = out;

	t = (time_t) (us / 1000000);
	gmtime_r(&t, &tm);
	/* formatted by hand: snprintf showed up in profiles of the create path */
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
	memcpy(p, " +0000", 7);
	p += 6;
	return (size_t) (p - out);
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
