/*-------------------------------------------------------------------------
 *
 * encoding.c
 *	  Which SMS alphabet a body needs and how many segments it takes.
 *
 *	  A body whose characters are all in the GSM 03.38 default alphabet (or
 *	  its extension table, where each character costs two septets: an escape
 *	  and the character) is sent as GSM-7: 160 septets in a single segment,
 *	  153 per segment once it must be split, because the user data header
 *	  takes the rest.  Anything else is sent as UCS-2: 70 UTF-16 code units
 *	  in one segment, 67 per segment when split.  Neither an escape pair nor
 *	  a surrogate pair is split across two segments.
 *
 *-------------------------------------------------------------------------
 */
#include "sms.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(sms_segments);
PG_FUNCTION_INFO_V1(sms_encoding);

/* non-ASCII code points of the GSM 03.38 default alphabet */
static const pg_wchar gsm7_basic_non_ascii[] = {
	0x00A1, 0x00A3, 0x00A4, 0x00A5, 0x00A7, 0x00BF, 0x00C4, 0x00C5,
	0x00C6, 0x00C7, 0x00C9, 0x00D1, 0x00D6, 0x00D8, 0x00DC, 0x00DF,
	0x00E0, 0x00E4, 0x00E5, 0x00E6, 0x00E8, 0x00E9, 0x00EC, 0x00F1,
	0x00F2, 0x00F6, 0x00F8, 0x00F9, 0x00FC, 0x0393, 0x0394, 0x0398,
	0x039B, 0x039E, 0x03A0, 0x03A3, 0x03A6, 0x03A8, 0x03A9
};

/*
 * Septets a code point takes in GSM-7: 1 in the default alphabet, 2 in the
 * extension table, 0 if GSM-7 cannot carry it.
 */
static int
gsm7_septets(pg_wchar c)
{
	int			lo,
				hi;

	switch (c)
	{
		case '\n':
		case '\r':
			return 1;
		case '\f':
		case '^':
		case '{':
		case '}':
		case '\\':
		case '[':
		case ']':
		case '~':
		case '|':
		case 0x20AC:			/* euro sign */
			return 2;
		case '`':
			return 0;
	}
	if (c >= 0x20 && c <= 0x7E)
		return 1;

	lo = 0;
	hi = lengthof(gsm7_basic_non_ascii) - 1;
	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (gsm7_basic_non_ascii[mid] == c)
			return 1;
		if (gsm7_basic_non_ascii[mid] < c)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return 0;
}

/* Decode the next UTF-8 character of s; advances *pos. */
static pg_wchar
next_char(const char *s, int len, int *pos)
{
	const unsigned char *p = (const unsigned char *) s + *pos;
	int			clen = pg_utf_mblen(p);

	if (clen > len - *pos)
		clen = len - *pos;
	*pos += clen;
	return utf8_to_unicode(p);
}

SmsEncoding
sms_body_encoding(const char *utf8, int len)
{
	int			pos = 0;

	while (pos < len)
		if (gsm7_septets(next_char(utf8, len, &pos)) == 0)
			return SMS_UCS2;
	return SMS_GSM7;
}

/*
 * Segments a body takes: fill each segment with whole characters, as a
 * handset or the provider does.
 */
int
sms_body_segments(const char *utf8, int len)
{
	SmsEncoding enc = sms_body_encoding(utf8, len);
	int			single = (enc == SMS_GSM7) ? 160 : 70;
	int			part = (enc == SMS_GSM7) ? 153 : 67;
	int			total = 0;
	int			segments = 1;
	int			fill = 0;
	int			pos;

	if (len == 0)
		return 0;

	/* first pass: does it fit in one segment? */
	pos = 0;
	while (pos < len)
	{
		pg_wchar	c = next_char(utf8, len, &pos);

		total += (enc == SMS_GSM7) ? gsm7_septets(c) : (c > 0xFFFF ? 2 : 1);
	}
	if (total <= single)
		return 1;

	pos = 0;
	while (pos < len)
	{
		pg_wchar	c = next_char(utf8, len, &pos);
		int			units = (enc == SMS_GSM7) ? gsm7_septets(c) : (c > 0xFFFF ? 2 : 1);

		if (fill + units > part)
		{
			segments++;
			fill = 0;
		}
		fill += units;
	}
	return segments;
}

/* The body as UTF-8, whatever the database encoding is. */
static char *
body_as_utf8(text *body, int *len)
{
	char	   *s = text_to_cstring(body);
	char	   *u = pg_server_to_any(s, strlen(s), PG_UTF8);

	*len = strlen(u);
	return u;
}

Datum
sms_segments(PG_FUNCTION_ARGS)
{
	int			len;
	char	   *s = body_as_utf8(PG_GETARG_TEXT_PP(0), &len);

	PG_RETURN_INT32(sms_body_segments(s, len));
}

Datum
sms_encoding(PG_FUNCTION_ARGS)
{
	int			len;
	char	   *s = body_as_utf8(PG_GETARG_TEXT_PP(0), &len);

	PG_RETURN_TEXT_P(cstring_to_text(sms_body_encoding(s, len) == SMS_GSM7 ?
									 "GSM-7" : "UCS-2"));
}
