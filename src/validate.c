/*-------------------------------------------------------------------------
 *
 * validate.c
 *	  The rules a message must follow before it is queued.  sms_send() and
 *	  the outbox's insert trigger share them, so a row inserted by an ORM or
 *	  COPY is refused exactly as a bad sms_send() call is.
 *
 *	  Numbers and SIDs end up in URLs and form fields, so they are checked
 *	  character by character here, before they can reach the provider.
 *
 *-------------------------------------------------------------------------
 */
#include "sms.h"

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "url.h"

#define MAX_BODY_CHARS 1600
#define MAX_MEDIA_URLS 10
#define MAX_MEDIA_URL_LEN 2048
#define MAX_IDEMPOTENCY_KEY_CHARS 255

/*
 * A short, printable excerpt of user input for an error message: long values
 * are clipped and control characters replaced, so a hostile value can
 * neither flood nor forge lines of the server log.
 */
static char *
excerpt(const char *s)
{
	StringInfoData buf;
	int			len = strlen(s);
	int			cut = pg_mbcliplen(s, len, 40);
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < cut; i++)
	{
		unsigned char c = (unsigned char) s[i];

		appendStringInfoChar(&buf, (c < 0x20 || c == 0x7f) ? '?' : (char) c);
	}
	if (cut < len)
		appendStringInfoString(&buf, "...");
	return buf.data;
}

static bool
all_digits(const char *s, int minlen, int maxlen)
{
	int			n = 0;

	for (; *s; s++, n++)
		if (*s < '0' || *s > '9')
			return false;
	return n >= minlen && n <= maxlen;
}

/* "+" followed by 8 to 15 digits, the first not 0 */
static bool
is_e164(const char *s)
{
	return s[0] == '+' && s[1] >= '1' && s[1] <= '9' && all_digits(s + 1, 8, 15);
}

static bool
looks_like_formatted_number(const char *s)
{
	bool		has_digit = false;

	for (; *s; s++)
	{
		if (*s >= '0' && *s <= '9')
			has_digit = true;
		else if (!strchr("+ -().", *s))
			return false;
	}
	return has_digit;
}

/*
 * Is s a Twilio SID of the kind prefix names ("AC" an account, "SK" an API
 * key, "MG" a Messaging Service): the prefix, then 32 hexadecimal digits?
 */
bool
sms_is_sid(const char *s, const char *prefix)
{
	size_t		plen = strlen(prefix);

	if (strncmp(s, prefix, plen) != 0 || strlen(s) != plen + 32)
		return false;
	for (s += plen; *s; s++)
		if (!isxdigit((unsigned char) *s))
			return false;
	return true;
}

bool
sms_is_messaging_service_sid(const char *s)
{
	return sms_is_sid(s, "MG");
}

/* 1 to 11 ASCII letters, digits or spaces, at least one letter */
static bool
is_alphanumeric_sender(const char *s)
{
	int			n = 0;
	bool		letter = false;

	for (; *s; s++, n++)
	{
		unsigned char c = (unsigned char) *s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))
			letter = true;
		else if (!(c >= '0' && c <= '9') && c != ' ')
			return false;
	}
	return letter && n >= 1 && n <= 11;
}

void
sms_validate_to(const char *to_number)
{
	if (to_number == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("to_number must not be null"),
				 errhint("Pass an E.164 number such as '+15558675310'.")));

	if (!is_e164(to_number))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid to_number \"%s\"", excerpt(to_number)),
				 errdetail("A destination must be an E.164 number: \"+\" followed by 8 to 15 digits, the first of which is not 0."),
				 looks_like_formatted_number(to_number) ?
				 errhint("Remove spaces and punctuation and add the country code, as in '+15558675310'.") :
				 errhint("For example '+15558675310'.")));
}

void
sms_validate_from(const char *from_number)
{
	if (from_number == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("from_number must not be null"),
				 errhint("Pass one of your numbers such as '+15017122661', a short code, an alphanumeric sender ID or a Messaging Service SID.")));

	if (!is_e164(from_number) &&
		!all_digits(from_number, 3, 8) &&
		!is_alphanumeric_sender(from_number) &&
		!sms_is_messaging_service_sid(from_number))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid from_number \"%s\"", excerpt(from_number)),
				 errdetail("A sender must be an E.164 number, a short code of 3 to 8 digits, an alphanumeric sender ID of 1 to 11 letters, digits or spaces with at least one letter, or a Messaging Service SID (\"MG\" followed by 32 hexadecimal digits)."),
				 errhint("For example '+15017122661', '12345', 'ACME' or 'MG9752274e9e519418a7406176694466fa'.")));
}

/*
 * An absolute http or https URL with a host, judged on the parts libcurl
 * finds in it: "https://?" or "http:///x" have no host, whatever their text
 * begins with.
 */
static void
validate_media_url(const char *url)
{
	bool		ok = strlen(url) <= MAX_MEDIA_URL_LEN;
	const char *p;

	/* non-ASCII must be percent-encoded; no spaces or controls */
	for (p = url; ok && *p; p++)
	{
		unsigned char c = (unsigned char) *p;

		if (c <= 0x20 || c >= 0x7f)
			ok = false;
	}

	if (ok)
	{
		SmsUrl		u;

		ok = sms_url_parse(url, &u) == CURLUE_OK &&
			(strcmp(u.scheme, "https") == 0 || strcmp(u.scheme, "http") == 0) &&
			u.host != NULL && u.host[0] != '\0';
		sms_url_free(&u);
	}

	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid URL in media_urls: \"%s\"", excerpt(url)),
				 errdetail("Each media URL must be an absolute http or https URL with a host name, of at most %d characters, without spaces or control characters.",
						   MAX_MEDIA_URL_LEN),
				 errhint("For example 'https://example.com/image.png'.")));
}

static int
validate_media_urls(ArrayType *media_urls)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;

	if (media_urls == NULL)
		return 0;

	if (ARR_NDIM(media_urls) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("media_urls must be a one-dimensional array"),
				 errhint("For example ARRAY['https://example.com/image.png'].")));

	deconstruct_array(media_urls, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);

	if (n < 1 || n > MAX_MEDIA_URLS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("media_urls must have 1 to %d elements, not %d",
						MAX_MEDIA_URLS, n),
				 errhint("Pass NULL for a message without media.")));

	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("media_urls must not contain nulls"),
					 errhint("For example ARRAY['https://example.com/image.png'].")));
		validate_media_url(TextDatumGetCString(elems[i]));
	}
	return n;
}

void
sms_validate_content(text *body, ArrayType *media_urls)
{
	int			nmedia = validate_media_urls(media_urls);
	int			nchars;

	if (body == NULL)
	{
		if (nmedia == 0)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("body must not be null unless media_urls is given"),
					 errhint("Pass the text of the message, such as 'Your code is 4821'.")));
		return;
	}

	nchars = pg_mbstrlen_with_len(VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body));

	if (nchars == 0 && nmedia == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("body must not be empty unless media_urls is given"),
				 errhint("Pass the text of the message, such as 'Your code is 4821'.")));

	if (nchars > MAX_BODY_CHARS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("body is too long (%d characters)", nchars),
				 errdetail("A message body may have at most %d characters.",
						   MAX_BODY_CHARS),
				 errhint("Split the text into several messages.")));
}

void
sms_validate_idempotency_key(const char *key)
{
	int			nchars;

	if (key == NULL)
		return;
	nchars = pg_mbstrlen(key);
	if (nchars < 1 || nchars > MAX_IDEMPOTENCY_KEY_CHARS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("idempotency_key must have 1 to %d characters, not %d",
						MAX_IDEMPOTENCY_KEY_CHARS, nchars),
				 errhint("Use a short unique key such as 'order-1234-shipped', or NULL.")));
}

void
sms_validate_send_at(TimestampTz send_at)
{
	if (TIMESTAMP_IS_NOEND(send_at))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("send_at must not be infinity"),
				 errdetail("A message scheduled for infinity would never be sent."),
				 errhint("Pass a time such as now() + interval '1 hour', or NULL to send at once.")));
}
