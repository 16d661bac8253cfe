/*-------------------------------------------------------------------------
 *
 * redact.c
 *	  Keeping the values of secret settings out of the server log.
 *
 * sms.auth_token and sms.api_key_secret are superuser-only settings, but a
 * statement that sets one (SET, set_config(), ALTER SYSTEM) carries the
 * value, and PostgreSQL writes statements to the log in many ways: the
 * STATEMENT line of an error, log_statement and log_min_duration_statement
 * (with the extended protocol's parse, bind and execute, and the bind
 * parameters in DETAIL), the CONTEXT of an error inside a function, a
 * syntax error quoting the rest of an unterminated string, and the
 * postmaster announcing a reloaded setting's new value.  All of them pass
 * through emit_log_hook, which sms_redact_log_event() serves.
 *
 * Rather than recognising each of these messages by its wording (which is
 * translated, and differs between PostgreSQL versions), an event is judged
 * as a whole: it is sensitive when the statement being run
 * (debug_query_string) or the report's message, detail, detail_log,
 * context or internal query names a secret setting.  In a sensitive event:
 *	- the statement is not appended (hide_stmt);
 *	- the statement's text, where the message quotes it (statement logging,
 *	  auto_explain), is replaced by a fixed marker, keeping the message's
 *	  own words ("execute <unnamed>: ", "duration: 0.1 ms  statement: ");
 *	- every quoted fragment of the message and the hint that is not exactly
 *	  the name of a setting becomes "...", which covers the values quoted by
 *	  "at or near", "changed to" and their translations; a text that still
 *	  names a secret after that is replaced whole;
 *	- detail, detail_log, context and internal query are dropped: they can
 *	  hold bind parameters or the statements of a function.
 * A hint only makes an event sensitive if it names a secret other than as
 * a quoted setting name: hints are advice (the worker's own names these
 * settings), never statement text.
 *
 * Whether a text names a secret is decided by a scan that reads it roughly
 * as SQL's lexer would: it skips comments, decodes quoted identifiers and
 * every kind of string constant (E'' escapes, U&'' and U&"" with UESCAPE,
 * dollar quotes), lowercases, and keeps only the characters [a-z0-9_.] of
 * what it read, concatenated.  SET "SMS" . "AUTH_TOKEN" with a comment
 * before the dot, set_config('sms.' || 'auth_token', ...) and
 * set_config(E'sms.\x61uth_token', ...) all read as "...sms.auth_token...".
 * Only the qualified names count: applications have columns named
 * auth_token of their own.  The scan never fails: what it does not
 * understand it reads as text, and an unterminated construct runs to the
 * end.  Where a text could be read two ways (a backslash in a plain string,
 * which standard_conforming_strings decides; text inside what looks like a
 * comment), it is read both ways, so that doubt leads to redaction.
 *
 * A text with no 'k', backslash or ampersand is let through after one
 * strpbrk(): both names contain a 'k', and SQL can spell a character other
 * than as itself only with a backslash or in a U&'' constant.  (A test for
 * the substring "auth_token" would miss 'sms.auth_' || 'token'.)  Other
 * texts cost a scan or two, one pass each and no allocation.
 *
 * The markers are plain ASCII ("..." rather than an ellipsis): they go out
 * in the server's encoding, whichever it is.
 *
 * What cannot be recognised is a name the statement does not spell: one it
 * computes (chr(), format(), a table) or one inside a function it calls,
 * until an error about the setting names it.  The README says so, and that
 * the configuration file is where secrets belong.
 *
 * The hook runs while an error is being reported, so nothing here may raise
 * one: the scans only read, and the new texts are allocated in ErrorContext,
 * which PostgreSQL keeps for this.  The texts replaced are not freed (another
 * hook may still point at them); ErrorContext is reset after the next error.
 * The report changed is also what the client receives.
 *
 *-------------------------------------------------------------------------
 */
#include "sms.h"

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"

/*
 * The secret settings as the scan reads them.  Both contain the letter 'k',
 * which the quick test below relies on.
 */
static const char *const secret_names[] = {"sms.auth_token", "sms.api_key_secret"};

#define LONGEST_SECRET_NAME 18	/* strlen("sms.api_key_secret") */

/*
 * What replaces the statement's text, a quoted value, and a text that
 * names a secret otherwise.
 */
#define HIDDEN_STATEMENT "(statement hidden: it names a secret setting)"
#define HIDDEN_QUOTED "..."
#define HIDDEN_TEXT "(text hidden: it names a secret setting)"

/*
 * The tail of what the scan has read so far, normalized, and whether a
 * secret's name has appeared in it.
 */
typedef struct NameMatcher
{
	int			len;
	bool		found;
	char		tail[64];
} NameMatcher;

/* How the content of a quoted construct is decoded. */
typedef enum LiteralKind
{
	LIT_PLAIN,					/* 'it''s', "quoted ""identifier""" */
	LIT_BACKSLASH,				/* E'...': \n, \x41, \101, \u0041, \\, \' */
	LIT_UNICODE					/* U&'...', U&"...": \0041, \+000041 */
} LiteralKind;

/* Take one character of what was read (a byte, or a decoded code point). */
static inline void
feed(NameMatcher *m, pg_wchar c)
{
	if (c >= 'A' && c <= 'Z')
		c += 'a' - 'A';
	else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			   c == '_' || c == '.'))
		return;

	if (m->len == sizeof(m->tail))
	{
		/* keep what could still be the start of a name */
		memmove(m->tail, m->tail + m->len - (LONGEST_SECRET_NAME - 1),
				LONGEST_SECRET_NAME - 1);
		m->len = LONGEST_SECRET_NAME - 1;
	}
	m->tail[m->len++] = (char) c;

	/* a name can only end here: sms.auth_token ends in 'n', the other in 't' */
	if (c == 'n' || c == 't')
	{
		for (size_t i = 0; i < lengthof(secret_names); i++)
		{
			size_t		nlen = strlen(secret_names[i]);

			if ((size_t) m->len >= nlen &&
				memcmp(m->tail + m->len - nlen, secret_names[i], nlen) == 0)
				m->found = true;
		}
	}
}

static inline int
hex_value(char c)
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
 * The value of exactly n hexadecimal digits at p (before end), or -1.
 */
static long
hex_digits(const char *p, const char *end, int n)
{
	long		v = 0;

	if (end - p < n)
		return -1;
	for (int i = 0; i < n; i++)
	{
		int			h = hex_value(p[i]);

		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

static inline bool
is_ident_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		c >= 0x80;
}

static inline bool
is_ident_char(unsigned char c)
{
	return is_ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

/* Past a -- or nested slash-star comment that starts at p. */
static const char *
skip_comment(const char *p, const char *end)
{
	int			depth = 1;

	if (p[1] == '-')
	{
		while (p < end && *p != '\n' && *p != '\r')
			p++;
		return p;
	}
	p += 2;
	while (p < end)
	{
		if (p[0] == '/' && p + 1 < end && p[1] == '*')
		{
			depth++;
			p += 2;
		}
		else if (p[0] == '*' && p + 1 < end && p[1] == '/')
		{
			p += 2;
			if (--depth == 0)
				break;
		}
		else
			p++;
	}
	return p;
}

static inline bool
at_comment(const char *p, const char *end)
{
	return p + 1 < end &&
		((p[0] == '-' && p[1] == '-') || (p[0] == '/' && p[1] == '*'));
}

/* Past white space and comments. */
static const char *
skip_space(const char *p, const char *end)
{
	while (p < end)
	{
		if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' ||
			*p == '\v')
			p++;
		else if (at_comment(p, end))
			p = skip_comment(p, end);
		else
			break;
	}
	return p;
}

/*
 * The closing quote of a quoted construct whose content starts at p, where
 * a doubled quote stands for itself, or end.
 */
static const char *
literal_end(const char *p, const char *end, char quote)
{
	while (p < end)
	{
		if (*p == quote)
		{
			if (p + 1 < end && p[1] == quote)
				p += 2;
			else
				return p;
		}
		else
			p++;
	}
	return end;
}

/*
 * Feed the decoded content of a quoted construct, from p to its closing
 * quote (or end); returns the position after the closing quote.
 */
static const char *
decode_literal(NameMatcher *m, const char *p, const char *end, char quote,
			   LiteralKind kind, char uescape)
{
	while (p < end)
	{
		char		c = *p;

		if (c == quote)
		{
			if (p + 1 < end && p[1] == quote)
			{
				p += 2;			/* a quote, which feed() would drop */
				continue;
			}
			return p + 1;
		}

		if (kind == LIT_BACKSLASH && c == '\\' && p + 1 < end)
		{
			char		e = p[1];
			long		v;

			p += 2;
			if (e >= '0' && e <= '7')
			{
				/* \o, \oo, \ooo: a byte */
				v = e - '0';
				for (int i = 0; i < 2 && p < end && *p >= '0' && *p <= '7'; i++)
					v = v * 8 + (*p++ - '0');
				feed(m, (pg_wchar) (v & 0xFF));
			}
			else if (e == 'x' && p < end && hex_value(*p) >= 0)
			{
				/* \xh, \xhh: a byte */
				v = hex_value(*p++);
				if (p < end && hex_value(*p) >= 0)
					v = v * 16 + hex_value(*p++);
				feed(m, (pg_wchar) v);
			}
			else if (e == 'u' && (v = hex_digits(p, end, 4)) >= 0)
			{
				feed(m, (pg_wchar) v);
				p += 4;
			}
			else if (e == 'U' && (v = hex_digits(p, end, 8)) >= 0)
			{
				feed(m, (pg_wchar) v);
				p += 8;
			}
			else if (e != 'b' && e != 'f' && e != 'n' && e != 'r' && e != 't')
				feed(m, (unsigned char) e);	/* \' \\ \a ...: the character */
			continue;
		}

		if (kind == LIT_UNICODE && c == uescape && p + 1 < end)
		{
			long		v;

			if (p[1] == uescape)
			{
				feed(m, (unsigned char) uescape);
				p += 2;
			}
			else if (p[1] == '+' && (v = hex_digits(p + 2, end, 6)) >= 0)
			{
				feed(m, (pg_wchar) v);
				p += 8;
			}
			else if ((v = hex_digits(p + 1, end, 4)) >= 0)
			{
				feed(m, (pg_wchar) v);
				p += 5;
			}
			else
				p++;			/* invalid: PostgreSQL would refuse it */
			continue;
		}

		feed(m, (unsigned char) c);
		p++;
	}
	return end;
}

/*
 * A U&'...' or U&"..." whose quote is at p: find its end, then whether a
 * UESCAPE clause follows, which changes what its content means.
 */
static const char *
scan_unicode(NameMatcher *m, const char *p, const char *end)
{
	char		quote = *p;
	const char *start = p + 1;
	const char *close = literal_end(start, end, quote);
	const char *after = close < end ? close + 1 : end;
	const char *q = skip_space(after, end);
	char		uescape = '\\';

	if (end - q >= 7 && pg_strncasecmp(q, "uescape", 7) == 0 &&
		(q + 7 == end || !is_ident_char((unsigned char) q[7])))
	{
		q = skip_space(q + 7, end);
		if (q < end && *q == '\'')
		{
			const char *eclose = literal_end(q + 1, end, '\'');

			if (eclose > q + 1)
				uescape = q[1];
			after = eclose < end ? eclose + 1 : end;
		}
	}
	decode_literal(m, start, close, quote, LIT_UNICODE, uescape);
	return after;
}

/*
 * A dollar sign at p: a dollar-quoted string ($$...$$, $tag$...$tag$), whose
 * content is fed as it is, or else a parameter ($1) or a stray dollar sign.
 */
static const char *
scan_dollar(NameMatcher *m, const char *p, const char *end)
{
	const char *q = p + 1;
	size_t		taglen;
	const char *body;

	if (q < end && is_ident_start((unsigned char) *q))
		while (q < end && is_ident_char((unsigned char) *q) && *q != '$')
			q++;
	if (q >= end || *q != '$')
		return p + 1;

	taglen = q + 1 - p;
	for (body = q + 1; body < end; body++)
	{
		if (*body == '$' && (size_t) (end - body) >= taglen &&
			strncmp(body, p, taglen) == 0)
			return body + taglen;
		feed(m, (unsigned char) *body);
	}
	return end;
}

/*
 * A word (identifier or keyword) at p, or the one-letter prefix of a string
 * constant: E'', U&'', U&"", N'', B'', X''.
 */
static const char *
scan_word(NameMatcher *m, const char *p, const char *end, bool backslash_quote)
{
	const char *q = p;

	while (q < end && is_ident_char((unsigned char) *q))
		q++;

	if (q - p == 1 && q < end)
	{
		char		c = *p;

		if ((c == 'e' || c == 'E') && *q == '\'')
			return decode_literal(m, q + 1, end, '\'', LIT_BACKSLASH, 0);
		if ((c == 'u' || c == 'U') && *q == '&' && q + 1 < end &&
			(q[1] == '\'' || q[1] == '"'))
			return scan_unicode(m, q + 1, end);
		if ((c == 'n' || c == 'N' || c == 'b' || c == 'B' || c == 'x' || c == 'X') &&
			*q == '\'')
			return decode_literal(m, q + 1, end, '\'',
								  backslash_quote ? LIT_BACKSLASH : LIT_PLAIN, 0);
	}

	for (; p < q; p++)
		feed(m, (unsigned char) *p);
	return q;
}

/*
 * One reading of text: with or without comments skipped, with or without
 * backslash escapes in plain strings.
 */
static bool
scan_names_secret(const char *text, const char *end, bool skip_comments,
				  bool backslash_quote)
{
	NameMatcher m;
	const char *p = text;

	m.len = 0;
	m.found = false;

	while (p < end && !m.found)
	{
		unsigned char c = *p;

		if (skip_comments && at_comment(p, end))
			p = skip_comment(p, end);
		else if (c == '\'')
			p = decode_literal(&m, p + 1, end, '\'',
							   backslash_quote ? LIT_BACKSLASH : LIT_PLAIN, 0);
		else if (c == '"')
			p = decode_literal(&m, p + 1, end, '"', LIT_PLAIN, 0);
		else if (c == '$')
			p = scan_dollar(&m, p, end);
		else if (is_ident_start(c))
			p = scan_word(&m, p, end, backslash_quote);
		else
		{
			feed(&m, c);
			p++;
		}
	}
	return m.found;
}

/*
 * Does text name a secret setting, in any way SQL could spell it?
 */
static bool
names_secret(const char *text)
{
	const char *end;
	bool		backslash;
	bool		comment;

	if (text == NULL)
		return false;

	/* the quick test (see the top of the file) */
	if (strpbrk(text, "kK\\&") == NULL)
		return false;

	end = text + strlen(text);
	backslash = memchr(text, '\\', end - text) != NULL;
	comment = strstr(text, "--") != NULL || strstr(text, "/*") != NULL;

	if (scan_names_secret(text, end, true, false))
		return true;
	if (backslash && scan_names_secret(text, end, true, true))
		return true;
	if (comment && scan_names_secret(text, end, false, false))
		return true;
	if (comment && backslash && scan_names_secret(text, end, false, true))
		return true;
	return false;
}

/*
 * Is the quoted fragment p[0..len) exactly the name of a setting?  Such a
 * fragment is kept: it tells what a message is about, and holds no value.
 */
static bool
is_setting_name(const char *p, size_t len)
{
	char		name[NAMEDATALEN * 2];

	/* French puts spaces inside its quotes: « sms.auth_token » */
	while (len > 0 && *p == ' ')
	{
		p++;
		len--;
	}
	while (len > 0 && p[len - 1] == ' ')
		len--;
	if (len == 0 || len >= sizeof(name))
		return false;
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = p[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '_' || c == '$' || c == '.'))
			return false;
	}
	for (size_t i = 0; i < lengthof(secret_names); i++)
		if (len == strlen(secret_names[i]) &&
			pg_strncasecmp(p, secret_names[i], len) == 0)
			return true;

	/* any other setting the server knows; this raises no error */
	memcpy(name, p, len);
	name[len] = '\0';
	return GetConfigOption(name, true, false) != NULL;
}

/*
 * The quotes that PostgreSQL's messages and their translations put around
 * a value.
 */
typedef struct QuoteStyle
{
	const char *open;
	const char *close;
} QuoteStyle;

static const QuoteStyle utf8_quotes[] = {
	{"\"", "\""},
	{"\xC2\xAB", "\xC2\xBB"},	/* «...» */
	{"\xC2\xBB", "\xC2\xAB"},	/* »...« */
	{"\xE2\x80\x9E", "\xE2\x80\x9C"},	/* „...“ */
	{"\xE2\x80\x9C", "\xE2\x80\x9D"},	/* “...” */
};

/* the same guillemets in LATIN1, LATIN9 and WIN1252 and others */
static const QuoteStyle byte_quotes[] = {
	{"\xAB", "\xBB"},
	{"\xBB", "\xAB"},
};

static const QuoteStyle *
quote_at(const char *p, bool single_byte)
{
	for (size_t i = 0; i < lengthof(utf8_quotes); i++)
		if (strncmp(p, utf8_quotes[i].open, strlen(utf8_quotes[i].open)) == 0)
			return &utf8_quotes[i];
	if (single_byte)
		for (size_t i = 0; i < lengthof(byte_quotes); i++)
			if (*p == byte_quotes[i].open[0])
				return &byte_quotes[i];
	return NULL;
}

/* The last occurrence of s in text, or NULL. */
static const char *
last_occurrence(const char *text, const char *s)
{
	const char *last = NULL;
	const char *at;

	while ((at = strstr(text, s)) != NULL)
	{
		last = at;
		text = at + 1;
	}
	return last;
}

/*
 * The text of a message or hint in a sensitive event: the statement's text
 * replaced by the marker, every quoted fragment but a setting's name by
 * "...", or the whole replaced if it names a secret otherwise.  Allocated in
 * the current memory context.
 */
static char *
redact_text(const char *text)
{
	StringInfoData out;
	StringInfoData check;
	StringInfoData unstated;
	const char *p;
	bool		single_byte;

	/* the statement's text, where the message quotes it */
	initStringInfo(&unstated);
	if (debug_query_string != NULL && debug_query_string[0] != '\0')
	{
		size_t		qlen = strlen(debug_query_string);
		const char *at;

		p = text;
		while ((at = strstr(p, debug_query_string)) != NULL)
		{
			appendBinaryStringInfo(&unstated, p, at - p);
			appendStringInfoString(&unstated, HIDDEN_STATEMENT);
			p = at + qlen;
		}
		appendStringInfoString(&unstated, p);
	}
	else
		appendStringInfoString(&unstated, text);

	/*
	 * Quoted fragments.  A value may itself contain a quote, so a fragment
	 * that is not a setting's name runs to the last closing quote of its
	 * kind: nothing between can be told apart from the value.  "check" is
	 * the text with the names hidden too: what remains that names a secret
	 * is not a name quoted by a message.
	 */
	single_byte = pg_database_encoding_max_length() == 1 &&
		GetDatabaseEncoding() != PG_SQL_ASCII;
	initStringInfo(&out);
	initStringInfo(&check);
	p = unstated.data;
	while (*p)
	{
		const QuoteStyle *q = quote_at(p, single_byte);
		const char *content;
		const char *close;

		if (q == NULL)
		{
			appendStringInfoChar(&out, *p);
			appendStringInfoChar(&check, *p);
			p++;
			continue;
		}

		content = p + strlen(q->open);
		close = strstr(content, q->close);
		if (close != NULL && is_setting_name(content, close - content))
		{
			close += strlen(q->close);
			appendBinaryStringInfo(&out, p, close - p);
			appendStringInfo(&check, "%s%s%s", q->open, HIDDEN_QUOTED, q->close);
			p = close;
			continue;
		}

		close = last_occurrence(content, q->close);
		appendStringInfo(&out, "%s%s%s", q->open, HIDDEN_QUOTED, q->close);
		appendStringInfo(&check, "%s%s%s", q->open, HIDDEN_QUOTED, q->close);
		p = close ? close + strlen(q->close) : content + strlen(content);
	}

	pfree(unstated.data);
	if (names_secret(check.data))
	{
		pfree(out.data);
		out.data = pstrdup(HIDDEN_TEXT);
	}
	pfree(check.data);
	return out.data;
}

/*
 * Does a hint name a secret other than as a quoted setting name?
 */
static bool
hint_names_secret(const char *hint)
{
	char	   *redacted;
	bool		result;

	if (!names_secret(hint))
		return false;
	redacted = redact_text(hint);
	result = strcmp(redacted, HIDDEN_TEXT) == 0;
	pfree(redacted);
	return result;
}

/*
 * emit_log_hook's work: make a report that concerns a secret setting safe
 * to log.
 */
void
sms_redact_log_event(ErrorData *edata)
{
	MemoryContext old = MemoryContextSwitchTo(ErrorContext);

	if (!names_secret(debug_query_string) &&
		!names_secret(edata->message) &&
		!names_secret(edata->detail) &&
		!names_secret(edata->detail_log) &&
		!names_secret(edata->context) &&
		!names_secret(edata->internalquery) &&
		!(edata->hint != NULL && hint_names_secret(edata->hint)))
	{
		MemoryContextSwitchTo(old);
		return;
	}

	edata->hide_stmt = true;
	if (edata->message)
		edata->message = redact_text(edata->message);
	if (edata->hint)
		edata->hint = redact_text(edata->hint);
	edata->detail = NULL;
	edata->detail_log = NULL;
	edata->context = NULL;
	edata->hide_ctx = true;
	edata->internalquery = NULL;
	edata->internalpos = 0;

	MemoryContextSwitchTo(old);
}
