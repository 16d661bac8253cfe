/*-------------------------------------------------------------------------
 *
 * segments.c
 *	  How many SMS segments a body takes, as Twilio reports num_segments.
 *
 *	  This is deliberately not a copy of the extension's src/encoding.c:
 *	  the emulator is what the extension is tested against, so a shared
 *	  mistake would pass unnoticed.  It is written from the specification
 *	  instead, 3GPP TS 23.038 (formerly GSM 03.38) section 6.2.1, and the
 *	  check in check_segments.c holds both to numbers worked out by hand.
 *
 *	  The alphabet is data, not code: gsm_default[] is the spec's default
 *	  alphabet table, indexed by septet value, and gsm_extension[] its
 *	  extension table (6.2.1.1), reached by the escape septet 0x1B, so each
 *	  of its characters costs two septets.  At first use both are turned
 *	  into one array of code points sorted for bsearch(), plus a direct
 *	  table for U+0000..U+00FF, where nearly every body's characters are.
 *
 *	  Segment sizes come from the 140 octets of TP-User-Data (3GPP TS
 *	  23.040, 9.2.3.24).  GSM-7 packs 160 septets into them; once a body
 *	  is split, each part carries a 6-octet user data header for
 *	  concatenation (48 bits, padded to 7 septets), leaving 153.  A body
 *	  with any character outside both tables goes as UCS-2, counted in
 *	  UTF-16 units (a character beyond the BMP takes two): 70 units, or
 *	  (140 - 6) / 2 = 67 per part.
 *
 *	  Each part is decoded on its own by the handset, so an escape septet
 *	  separated from its character, or half a surrogate pair, would be
 *	  garbage: a character that does not fit whole in the current part
 *	  starts the next one, as Twilio does.  That is why the count is a
 *	  simulated packing and not total / 153 rounded up.
 *
 *-------------------------------------------------------------------------
 */
#include "emulator.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define GSM7_SINGLE		160		/* septets in an unsplit message */
#define GSM7_PART		153		/* septets per part of a split one */
#define UCS2_SINGLE		70		/* UTF-16 units in an unsplit message */
#define UCS2_PART		67		/* UTF-16 units per part of a split one */

/*
 * The escape septet has no character of its own (Unicode's GSM0338.TXT
 * shows it as a no-break space, but a sender cannot put U+00A0 there), so
 * its slot holds a value no decoded character can have.
 */
#define GSM_ESCAPE		0x1B
#define NOT_A_CHAR		UINT32_MAX

/*
 * 3GPP TS 23.038, 6.2.1: the GSM 7 bit default alphabet.  Index is the
 * septet; value is the Unicode code point.  0x09 is the capital C with
 * cedilla of the current table (early editions showed a small one).
 */
static const uint32_t gsm_default[] = {
	/* 0x00 */ 0x0040, 0x00A3, 0x0024, 0x00A5, 0x00E8, 0x00E9, 0x00F9, 0x00EC,
	/* 0x08 */ 0x00F2, 0x00C7, 0x000A, 0x00D8, 0x00F8, 0x000D, 0x00C5, 0x00E5,
	/* 0x10 */ 0x0394, 0x005F, 0x03A6, 0x0393, 0x039B, 0x03A9, 0x03A0, 0x03A8,
	/* 0x18 */ 0x03A3, 0x0398, 0x039E, NOT_A_CHAR, 0x00C6, 0x00E6, 0x00DF, 0x00C9,
	/* 0x20 */ 0x0020, 0x0021, 0x0022, 0x0023, 0x00A4, 0x0025, 0x0026, 0x0027,
	/* 0x28 */ 0x0028, 0x0029, 0x002A, 0x002B, 0x002C, 0x002D, 0x002E, 0x002F,
	/* 0x30 */ 0x0030, 0x0031, 0x0032, 0x0033, 0x0034, 0x0035, 0x0036, 0x0037,
	/* 0x38 */ 0x0038, 0x0039, 0x003A, 0x003B, 0x003C, 0x003D, 0x003E, 0x003F,
	/* 0x40 */ 0x00A1, 0x0041, 0x0042, 0x0043, 0x0044, 0x0045, 0x0046, 0x0047,
	/* 0x48 */ 0x0048, 0x0049, 0x004A, 0x004B, 0x004C, 0x004D, 0x004E, 0x004F,
	/* 0x50 */ 0x0050, 0x0051, 0x0052, 0x0053, 0x0054, 0x0055, 0x0056, 0x0057,
	/* 0x58 */ 0x0058, 0x0059, 0x005A, 0x00C4, 0x00D6, 0x00D1, 0x00DC, 0x00A7,
	/* 0x60 */ 0x00BF, 0x0061, 0x0062, 0x0063, 0x0064, 0x0065, 0x0066, 0x0067,
	/* 0x68 */ 0x0068, 0x0069, 0x006A, 0x006B, 0x006C, 0x006D, 0x006E, 0x006F,
	/* 0x70 */ 0x0070, 0x0071, 0x0072, 0x0073, 0x0074, 0x0075, 0x0076, 0x0077,
	/* 0x78 */ 0x0078, 0x0079, 0x007A, 0x00E4, 0x00F6, 0x00F1, 0x00FC, 0x00E0
};

/* a row left out above would shift every later septet */
_Static_assert(lengthof(gsm_default) == 128,
			   "the default alphabet has 128 septets");

/*
 * 3GPP TS 23.038, 6.2.1.1: the extension table, as the septet that follows
 * the escape and the character it stands for.  Its other positions are
 * unassigned or reserved (0x1B escapes to a national table, which Twilio
 * does not use), so they carry nothing a body could contain.
 */
typedef struct GsmExtension
{
	uint8_t		septet;
	uint32_t	code_point;
} GsmExtension;

static const GsmExtension gsm_extension[] = {
	{0x0A, 0x000C},				/* form feed (page break) */
	{0x14, 0x005E},				/* ^ */
	{0x28, 0x007B},				/* { */
	{0x29, 0x007D},				/* } */
	{0x2F, 0x005C},				/* \ */
	{0x3C, 0x005B},				/* [ */
	{0x3D, 0x007E},				/* ~ */
	{0x3E, 0x005D},				/* ] */
	{0x40, 0x007C},				/* | */
	{0x65, 0x20AC}				/* euro sign */
};

/* One character GSM-7 can carry and the septets it costs (1 or 2). */
typedef struct GsmCost
{
	uint32_t	code_point;
	int			septets;
} GsmCost;

/* built once by build_lookup(); read-only afterwards, so threads share it */
static GsmCost gsm_lookup[lengthof(gsm_default) + lengthof(gsm_extension)];
static size_t gsm_lookup_len;
static uint8_t low_cost[0x100];	/* septets for U+0000..U+00FF, 0: none */
static pthread_once_t lookup_once = PTHREAD_ONCE_INIT;

static int
cmp_cost(const void *a, const void *b)
{
	uint32_t	x = ((const GsmCost *) a)->code_point;
	uint32_t	y = ((const GsmCost *) b)->code_point;

	return (x > y) - (x < y);
}

/* Septets c costs in GSM-7 by binary search, 0 if GSM-7 cannot carry it. */
static int
search_cost(uint32_t c)
{
	GsmCost		key = {c, 0};
	const GsmCost *hit;

	hit = bsearch(&key, gsm_lookup, gsm_lookup_len, sizeof(GsmCost), cmp_cost);
	return hit ? hit->septets : 0;
}

static void
build_lookup(void)
{
	size_t		n = 0;
	size_t		i;

	for (i = 0; i < lengthof(gsm_default); i++)
	{
		if (i == GSM_ESCAPE)
			continue;
		gsm_lookup[n].code_point = gsm_default[i];
		gsm_lookup[n].septets = 1;
		n++;
	}
	for (i = 0; i < lengthof(gsm_extension); i++)
	{
		gsm_lookup[n].code_point = gsm_extension[i].code_point;
		gsm_lookup[n].septets = 2;
		n++;
	}
	qsort(gsm_lookup, n, sizeof(GsmCost), cmp_cost);

	/*
	 * The spec gives every character one encoding; a code point twice would
	 * be a typo in the tables above, and bsearch() would pick either cost.
	 */
	for (i = 1; i < n; i++)
		if (gsm_lookup[i].code_point == gsm_lookup[i - 1].code_point)
		{
			fprintf(stderr, "segments.c: U+%04X is in the GSM tables twice\n",
					(unsigned) gsm_lookup[i].code_point);
			abort();
		}
	gsm_lookup_len = n;

	for (i = 0; i < lengthof(low_cost); i++)
		low_cost[i] = (uint8_t) search_cost((uint32_t) i);
}

/* Septets c costs in GSM-7: 1, 2 (escape and character), 0 if none. */
static int
gsm_cost(uint32_t c)
{
	if (c < lengthof(low_cost))
		return low_cost[c];
	return search_cost(c);
}

/*
 * Decode the UTF-8 character at s[*pos] and step past it.
 *
 * Bodies come from the form as raw bytes, so they may not be UTF-8.  A byte
 * that does not start a complete sequence (a stray continuation byte, 0xF8
 * and above, a sequence cut short by the end of the body or by a byte that
 * does not continue it) decodes alone as U+FFFD, which GSM-7 cannot carry:
 * garbage makes a body UCS-2 and can neither crash nor loop.  Overlong
 * forms, surrogates and values past U+10FFFF are taken at their bits'
 * value, as this emulator always has; the extension never sends them,
 * since PostgreSQL only stores valid UTF-8.
 */
static uint32_t
utf8_next(const unsigned char *s, size_t len, size_t *pos)
{
	unsigned char lead = s[*pos];
	size_t		follow;			/* continuation bytes the lead announces */
	uint32_t	c;
	size_t		i;

	if (lead < 0x80)
	{
		(*pos)++;
		return lead;
	}
	if (lead >= 0xC0 && lead <= 0xDF)
	{
		follow = 1;
		c = lead & 0x1F;
	}
	else if (lead >= 0xE0 && lead <= 0xEF)
	{
		follow = 2;
		c = lead & 0x0F;
	}
	else if (lead >= 0xF0 && lead <= 0xF7)
	{
		follow = 3;
		c = lead & 0x07;
	}
	else
	{
		(*pos)++;
		return 0xFFFD;
	}

	if (len - *pos <= follow)
	{
		(*pos)++;
		return 0xFFFD;
	}
	for (i = 1; i <= follow; i++)
	{
		unsigned char b = s[*pos + i];

		if ((b & 0xC0) != 0x80)
		{
			(*pos)++;
			return 0xFFFD;
		}
		c = (c << 6) | (b & 0x3F);
	}
	*pos += follow + 1;
	return c;
}

/*
 * A body laid out in parts of a fixed size, one character at a time.  The
 * total decides whether it needs splitting at all; if it does, the parts
 * counted here are the answer.
 */
typedef struct Packing
{
	int			units;			/* septets or UTF-16 units in the body */
	int			parts;			/* parts it takes if split */
	int			fill;			/* units in the last of those parts */
} Packing;

static void
pack(Packing *p, int units, int part_size)
{
	p->units += units;
	/* a character never straddles two parts: it opens a new one */
	if (p->fill + units > part_size)
	{
		p->parts++;
		p->fill = 0;
	}
	p->fill += units;
}

/*
 * Segments for a body, in one pass that lays it out both ways at once,
 * since which encoding applies is only known at the end.  An empty body
 * (media only) counts one, as Twilio reports for MMS; the extension's
 * sms_segments('') says 0, because it counts SMS text only.  ucs2_out,
 * unless NULL, says which encoding it is.
 */
int
body_segments(const char *str, size_t len, bool *ucs2_out)
{
	const unsigned char *s = (const unsigned char *) str;
	Packing		gsm = {0, 1, 0};
	Packing		ucs2 = {0, 1, 0};
	bool		all_gsm = true;
	size_t		pos = 0;

	pthread_once(&lookup_once, build_lookup);

	while (pos < len)
	{
		uint32_t	c = utf8_next(s, len, &pos);
		int			septets = gsm_cost(c);

		if (septets == 0)
			all_gsm = false;
		else if (all_gsm)
			pack(&gsm, septets, GSM7_PART);
		pack(&ucs2, c > 0xFFFF ? 2 : 1, UCS2_PART);
	}

	if (ucs2_out)
		*ucs2_out = !all_gsm;
	if (all_gsm)
		return gsm.units <= GSM7_SINGLE ? 1 : gsm.parts;
	return ucs2.units <= UCS2_SINGLE ? 1 : ucs2.parts;
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
