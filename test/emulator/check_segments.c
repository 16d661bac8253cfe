/*-------------------------------------------------------------------------
 *
 * check_segments.c
 *	  Holds the emulator's body_segments() to segment counts worked out by
 *	  hand (make check-segments).
 *
 *	  The extension's src/encoding.c and the emulator's segments.c are
 *	  written independently; this program and the extension's
 *	  sql/encoding.sql hold each to the same expected numbers, so the two
 *	  agree only if both follow 3GPP TS 23.038.  Every expected count is a
 *	  literal, with its arithmetic beside it, never computed by the code
 *	  under test.  Limits: GSM-7 160 septets, 153 per part once split (an
 *	  escape pair never straddles two parts); UCS-2 70 UTF-16 units, 67 per
 *	  part (nor does a surrogate pair).
 *
 *-------------------------------------------------------------------------
 */
#include "emulator.h"

#include <stdio.h>
#include <string.h>

/* text repeated times times; a case's body is its pieces in order */
typedef struct Piece
{
	const char *text;
	int			times;
} Piece;

typedef struct Case
{
	const char *what;
	int			expected;
	Piece		body[4];		/* ends at the first NULL text */
} Case;

static const Case cases[] = {
	/*
	 * sql/encoding.sql, sms_encoding(): each body sized so that GSM-7 and
	 * UCS-2 would give different counts
	 */
	{"the default alphabet sample (82 chars, 82 septets; UCS-2 would be 2)", 1,
	{{"Hello @ £$¥ èéùìòÇ ØøÅå ΔΦΓΛΩΠΨΣΘΞ ÆæßÉ !\"#¤%&'()*+,-./ 0-9 :;<=>? ¡ ÄÖÑÜ§ ¿ äöñüà", 1}}},
	{"extension sample x5 (20 chars, 29 septets each: 145)", 1,
	{{"extension: ^{}\\[~]|€", 5}}},
	{"extension sample x6 (174 septets)", 2,
	{{"extension: ^{}\\[~]|€", 6}}},
	{"form feed sample x5 (28 chars, 29 septets each: 145)", 1,
	{{"form feed \f and newlines \n \r", 5}}},
	{"form feed sample x6 (174 septets)", 2,
	{{"form feed \f and newlines \n \r", 6}}},
	{"backtick sample x7 (70 units)", 1, {{"backtick `", 7}}},
	{"backtick sample x8 (80 units; GSM-7 would be 1)", 2, {{"backtick `", 8}}},
	{"a-acute sample x5 (70 units)", 1, {{"á is not GSM-7", 5}}},
	{"a-acute sample x6 (84 units)", 2, {{"á is not GSM-7", 6}}},
	{"Cyrillic sample x11 (66 units)", 1, {{"Привет", 11}}},
	{"Cyrillic sample x12 (72 units)", 2, {{"Привет", 12}}},
	{"emoji sample x8 (8 units each: 64)", 1, {{"emoji 😀", 8}}},
	{"emoji sample x9 (72 units)", 2, {{"emoji 😀", 9}}},
	/* the extension says 0 here; Twilio counts a media-only message as 1 */
	{"empty body", 1, {{"", 1}}},

	/* sql/encoding.sql, GSM-7 edges */
	{"a x1", 1, {{"a", 1}}},
	{"a x160", 1, {{"a", 160}}},
	{"a x161", 2, {{"a", 161}}},
	{"a x306 (153 * 2)", 2, {{"a", 306}}},
	{"a x307", 3, {{"a", 307}}},
	{"a x459 (153 * 3)", 3, {{"a", 459}}},
	{"a x460", 4, {{"a", 460}}},
	{"a x1600 (10 parts of 153, 70 left)", 11, {{"a", 1600}}},
	{"euro x80 (160 septets)", 1, {{"€", 80}}},
	{"euro x81 (162 septets)", 2, {{"€", 81}}},
	{"a x159, euro (161 septets)", 2, {{"a", 159}, {"€", 1}}},
	{"a x158, euro (160 septets)", 1, {{"a", 158}, {"€", 1}}},
	{"a x152, euro, a x152 (306: euro cannot take septets 153-154)", 3,
	{{"a", 152}, {"€", 1}, {"a", 152}}},
	{"a x151, euro, a x153 (306: 151 + 2 fill part 1)", 2,
	{{"a", 151}, {"€", 1}, {"a", 153}}},

	/* sql/encoding.sql, UCS-2 edges */
	{"zhe x1", 1, {{"ж", 1}}},
	{"zhe x70", 1, {{"ж", 70}}},
	{"zhe x71", 2, {{"ж", 71}}},
	{"zhe x134 (67 * 2)", 2, {{"ж", 134}}},
	{"zhe x135", 3, {{"ж", 135}}},
	{"zhe x1600 (23 parts of 67, 59 left)", 24, {{"ж", 1600}}},
	{"emoji x35 (70 units)", 1, {{"😀", 35}}},
	{"emoji x36 (72 units)", 2, {{"😀", 36}}},
	{"emoji x67 (33 pairs per part: 33 + 33 + 1)", 3, {{"😀", 67}}},
	{"zhe x66, emoji, zhe x66 (134: pair cannot take units 67-68)", 3,
	{{"ж", 66}, {"😀", 1}, {"ж", 66}}},
	{"zhe x65, emoji, zhe x67 (134: 65 + 2 fill part 1)", 2,
	{{"ж", 65}, {"😀", 1}, {"ж", 67}}},
	{"a x70", 1, {{"a", 70}}},
	{"a x69, zhe (70 units)", 1, {{"a", 69}, {"ж", 1}}},
	{"a x70, zhe (71 units)", 2, {{"a", 70}, {"ж", 1}}},

	/* more GSM-7 edges */
	{"a x152, euro (154 septets: fits one message, nothing split)", 1,
	{{"a", 152}, {"€", 1}}},
	{"a x153, euro, a x151 (306: euro opens part 2, which is full)", 2,
	{{"a", 153}, {"€", 1}, {"a", 151}}},
	{"a x304, euro (306: 153 + 151 + 2)", 2, {{"a", 304}, {"€", 1}}},
	{"a x305, euro (307: euro cannot take septets 306-307)", 3,
	{{"a", 305}, {"€", 1}}},
	{"a x152, [, a x152 (306 septets)", 3,
	{{"a", 152}, {"[", 1}, {"a", 152}}},
	{"a x152, ], a x152 (306 septets)", 3,
	{{"a", 152}, {"]", 1}, {"a", 152}}},
	{"a x158, ] (160 septets)", 1, {{"a", 158}, {"]", 1}}},
	{"a x159, [ (161 septets)", 2, {{"a", 159}, {"[", 1}}},
	{"[] x40 (160 septets)", 1, {{"[]", 40}}},
	{"[] x41 (164 septets)", 2, {{"[]", 41}}},
	{"euro x1600 (76 pairs per part: 21 parts + 4; not 3200/153 = 21)", 22,
	{{"€", 1600}}},
	{"a x159, backtick (UCS-2, 160 units: 67 + 67 + 26)", 3,
	{{"a", 159}, {"`", 1}}},

	/* more UCS-2 edges */
	{"zhe x68, emoji (70 units)", 1, {{"ж", 68}, {"😀", 1}}},
	{"zhe x69, emoji (71 units)", 2, {{"ж", 69}, {"😀", 1}}},
	{"emoji x800 (33 pairs per part: 24 parts + 8; not 1600/67 = 24)", 25,
	{{"😀", 800}}},

	/*
	 * Malformed UTF-8, as the emulator has always counted it: a byte that
	 * does not start a complete sequence is one U+FFFD (UCS-2, 1 unit);
	 * other sequences count as their bits decode, checked or not.
	 */
	{"stray continuation byte x70 (70 units)", 1, {{"\x80", 70}}},
	{"stray continuation byte x71 (71 units)", 2, {{"\x80", 71}}},
	{"0xFF x71 (71 units)", 2, {{"\xFF", 71}}},
	{"a x68, truncated euro (E2 82: two bytes, 70 units)", 1,
	{{"a", 68}, {"\xE2\x82", 1}}},
	{"a x69, truncated euro (71 units)", 2, {{"a", 69}, {"\xE2\x82", 1}}},
	{"E2 82 then a, x23 (3 units each: 69)", 1, {{"\xE2\x82" "a", 23}}},
	{"E2 82 then a, x24 (72 units)", 2, {{"\xE2\x82" "a", 24}}},
	{"overlong A (C1 81) x160 (GSM-7, 160 septets)", 1, {{"\xC1\x81", 160}}},
	{"overlong A (C1 81) x161", 2, {{"\xC1\x81", 161}}},
	{"lone surrogate (ED A0 80) x70", 1, {{"\xED\xA0\x80", 70}}},
	{"lone surrogate (ED A0 80) x71", 2, {{"\xED\xA0\x80", 71}}},
	{"past U+10FFFF (F7 BF BF BF) x35 (2 units each: 70)", 1,
	{{"\xF7\xBF\xBF\xBF", 35}}},
	{"past U+10FFFF (F7 BF BF BF) x36 (72 units)", 2,
	{{"\xF7\xBF\xBF\xBF", 36}}},
};

/*
 * Characters by class, each checked at its class's exact limit: a character
 * costing one septet fits 160 times and not 161; two septets, 80 and not
 * 81; one UTF-16 unit, 70 and not 71; two units, 35 and not 36.  A
 * character in the wrong class fails at least one of its two checks.
 */
typedef struct CharClass
{
	const char *name;
	const char *chars;			/* UTF-8, one character after another */
	int			count;			/* characters in chars */
	int			fits;			/* times a single segment holds one */
} CharClass;

static const CharClass classes[] = {
	/* TS 23.038 6.2.1, septets 0x00 to 0x7F less the escape 0x1B */
	{"default alphabet",
		"@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà",
	127, 160},
	/* TS 23.038 6.2.1.1 */
	{"extension table", "\f^{}\\[~]|€", 10, 80},
	/*
	 * Near misses: ASCII the default alphabet lacks (backtick, tab, DEL and
	 * the escape itself), Latin-1 it lacks (no-break space, which
	 * GSM0338.TXT shows for the escape; small c cedilla, which early
	 * editions had at 0x09), and typical smart-punctuation culprits.
	 */
	{"UCS-2, one unit",
		"`\t\x7F\x1B" "\xC2\xA0" "çáÿ¢жП’“—…" "\xEF\xBF\xBD", 16, 70},
	{"UCS-2, surrogate pair", "😀𝄞" "\xF4\x8F\xBF\xBF", 3, 35},
};

static int	failures;
static int	checks;

/* 1600 characters of at most 4 bytes, the largest body here */
static char buf[1600 * 4 + 64];

/* Append text repeated times times to buf at offset at; returns the end. */
static size_t
repeat(size_t at, const char *text, int times)
{
	size_t		n = strlen(text);
	int			i;

	for (i = 0; i < times; i++, at += n)
		memcpy(buf + at, text, n);
	return at;
}

static void
expect(const char *what, size_t len, int expected)
{
	int			got = body_segments(buf, len, NULL);

	checks++;
	if (got != expected)
	{
		failures++;
		printf("FAIL %s: %d segments, expected %d\n", what, got, expected);
	}
}

/* the character ch (n bytes) of class cl, times times, in expected segments */
static void
expect_char(const CharClass *cl, const char *ch, size_t n, int times,
			int expected)
{
	char		what[128];

	if (n == 1)
		snprintf(what, sizeof(what), "%s byte 0x%02X x%d",
				 cl->name, (unsigned char) ch[0], times);
	else
		snprintf(what, sizeof(what), "%s \"%.*s\" x%d",
				 cl->name, (int) n, ch, times);
	expect(what, repeat(0, ch, times), expected);
}

static size_t
utf8_len(unsigned char lead)
{
	if (lead >= 0xF0)
		return 4;
	if (lead >= 0xE0)
		return 3;
	if (lead >= 0xC0)
		return 2;
	return 1;
}

int
main(void)
{
	size_t		i;

	for (i = 0; i < lengthof(cases); i++)
	{
		const Case *c = &cases[i];
		size_t		len = 0;
		size_t		k;

		for (k = 0; k < lengthof(c->body) && c->body[k].text; k++)
			len = repeat(len, c->body[k].text, c->body[k].times);
		expect(c->what, len, c->expected);
	}

	for (i = 0; i < lengthof(classes); i++)
	{
		const CharClass *cl = &classes[i];
		const char *p;
		int			seen = 0;

		for (p = cl->chars; *p; p += utf8_len((unsigned char) *p), seen++)
		{
			char		ch[8];
			size_t		n = utf8_len((unsigned char) *p);

			memcpy(ch, p, n);
			ch[n] = '\0';
			expect_char(cl, ch, n, cl->fits, 1);
			expect_char(cl, ch, n, cl->fits + 1, 2);
		}

		/* a typo in the lists above would check less than they claim */
		checks++;
		if (seen != cl->count)
		{
			failures++;
			printf("FAIL %s: %d characters listed, expected %d\n",
				   cl->name, seen, cl->count);
		}
	}

	if (failures)
	{
		printf("check-segments: %d of %d checks failed\n", failures, checks);
		return 1;
	}
	printf("check-segments: all %d checks passed\n", checks);
	return 0;
}
