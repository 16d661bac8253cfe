/*-------------------------------------------------------------------------
 *
 * segments.c
 *	  How many SMS segments a body takes, as Twilio reports num_segments.
 *
 *	  A body that fits the GSM 03.38 default alphabet (extension table
 *	  characters cost two septets: escape plus character) is GSM-7: 160
 *	  septets in one segment, 153 per segment once split, the rest going to
 *	  the user data header.  Anything else is UCS-2: 70 UTF-16 code units,
 *	  67 when split.  Segments are filled with whole characters, so neither
 *	  an escape pair nor a surrogate pair straddles two segments; this is
 *	  what handsets do and what the extension's encoding.c computes.
 *
 *-------------------------------------------------------------------------
 */
#include "emulator.h"

/* non-ASCII code points of the default alphabet, sorted */
static const uint32_t gsm_basic_non_ascii[] = {
	0x00A1, 0x00A3, 0x00A4, 0x00A5, 0x00A7, 0x00BF, 0x00C4, 0x00C5,
	0x00C6, 0x00C7, 0x00C9, 0x00D1, 0x00D6, 0x00D8, 0x00DC, 0x00DF,
	0x00E0, 0x00E4, 0x00E5, 0x00E6, 0x00E8, 0x00E9, 0x00EC, 0x00F1,
	0x00F2, 0x00F6, 0x00F8, 0x00F9, 0x00FC, 0x0393, 0x0394, 0x0398,
	0x039B, 0x039E, 0x03A0, 0x03A3, 0x03A6, 0x03A8, 0x03A9
};

/* Septets c takes in GSM-7: 1, 2 (extension table) or 0 (not GSM-7). */
static int
gsm_septets(uint32_t c)
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
	hi = (int) lengthof(gsm_basic_non_ascii) - 1;
	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (gsm_basic_non_ascii[mid] == c)
			return 1;
		if (gsm_basic_non_ascii[mid] < c)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return 0;
}

/*
 * Decode one UTF-8 character at s[*pos]; advances *pos.  A malformed byte
 * decodes as itself, a character GSM-7 cannot carry, so garbage makes the
 * body UCS-2 rather than crashing or looping.
 */
static uint32_t
next_char(const unsigned char *s, size_t len, size_t *pos)
{
	unsigned char c = s[*pos];
	int			n;
	uint32_t	cp;
	int			i;

	if (c < 0x80)
	{
		(*pos)++;
		return c;
	}
	if ((c & 0xE0) == 0xC0)
		n = 1, cp = c & 0x1F;
	else if ((c & 0xF0) == 0xE0)
		n = 2, cp = c & 0x0F;
	else if ((c & 0xF8) == 0xF0)
		n = 3, cp = c & 0x07;
	else
	{
		(*pos)++;
		return 0xFFFD;
	}
	if (*pos + n >= len)
	{
		(*pos)++;
		return 0xFFFD;
	}
	for (i = 1; i <= n; i++)
	{
		if ((s[*pos + i] & 0xC0) != 0x80)
		{
			(*pos)++;
			return 0xFFFD;
		}
		cp = (cp << 6) | (s[*pos + i] & 0x3F);
	}
	*pos += n + 1;
	return cp;
}

static int
units_of(uint32_t c, bool gsm)
{
	if (gsm)
		return gsm_septets(c);
	return c > 0xFFFF ? 2 : 1;
}

/* Segments for a body; an empty body (media only) still counts one. */
int
body_segments(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *) str;
	bool		gsm = true;
	size_t		pos = 0;
	int			total = 0,
				segments = 1,
				fill = 0;
	int			single,
				part;

	while (pos < len)
		if (gsm_septets(next_char(s, len, &pos)) == 0)
		{
			gsm = false;
			break;
		}
	single = gsm ? 160 : 70;
	part = gsm ? 153 : 67;

	for (pos = 0; pos < len;)
		total += units_of(next_char(s, len, &pos), gsm);
	if (total <= single)
		return 1;

	for (pos = 0; pos < len;)
	{
		int			u = units_of(next_char(s, len, &pos), gsm);

		if (fill + u > part)
		{
			segments++;
			fill = 0;
		}
		fill += u;
	}
	return segments;
}

/* Characters (code points) in UTF-8 text: bytes that do not continue one. */
size_t
utf8_chars(const char *s, size_t len)
{
	size_t		i,
				n = 0;

	for (i = 0; i < len; i++)
		if (((unsigned char) s[i] & 0xC0) != 0x80)
			n++;
	return n;
}
