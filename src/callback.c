/*-------------------------------------------------------------------------
 *
 * callback.c
 *	  sms_status_callback(): a status callback of the provider's, verified
 *	  by its signature and applied to its row by rank.
 *
 *	  Twilio POSTs each status change of a message to the StatusCallback URL
 *	  the create request gave (sms.status_callback_url, with the outbox id
 *	  appended as sms_id, so that the row is found without a scan).  Whatever
 *	  receives that request (PostgREST, an Edge Function, a web application)
 *	  calls this function with the URL as Twilio called it, the raw form
 *	  body and the X-Twilio-Signature header.  The signature is
 *	  Base64(HMAC-SHA1(auth token, URL + every parameter sorted by name,
 *	  each name followed by its value)); it is compared in constant time,
 *	  over every parameter received (Twilio adds parameters without notice),
 *	  and with the URL as given or with its scheme's default port added or
 *	  removed, as Twilio's own libraries accept.  The caller never sees the
 *	  token.
 *
 *	  Callbacks may come out of order: a status is applied only if it ranks
 *	  above the row's (sms_status_rank), so a late 'sent' never overwrites
 *	  'delivered'.  The update runs as the outbox's owner (the caller needs
 *	  EXECUTE on this function only), touches the delivery columns alone,
 *	  and fires the user's triggers (AFTER UPDATE OF status sees it).
 *
 *-------------------------------------------------------------------------
 */
#include "identity.h"

#include <curl/curl.h>

#include "catalog/pg_type.h"
#include "common/base64.h"
#include "common/hmac.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "status.h"

PG_FUNCTION_INFO_V1(sms_status_callback);

/* a form body larger than this is no callback of Twilio's */
#define MAX_CALLBACK_BODY 16384
#define SHA1_LEN 20

typedef struct FormParam
{
	char	   *name;
	char	   *value;
} FormParam;

/* "+" is a space in a form; then %XX, as libcurl decodes it */
static char *
form_decode(const char *s, int len)
{
	char	   *plus = pnstrdup(s, len);
	char	   *decoded;
	int			outlen;
	char	   *result;

	for (char *p = plus; *p; p++)
		if (*p == '+')
			*p = ' ';
	decoded = curl_easy_unescape(NULL, plus, 0, &outlen);
	if (decoded == NULL)
		elog(ERROR, "out of memory decoding a form field");
	if ((int) strlen(decoded) != outlen)
	{
		curl_free(decoded);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("status callback body has a NUL byte in a field")));
	}
	result = pstrdup(decoded);
	curl_free(decoded);
	return result;
}

static int
compare_params(const void *a, const void *b)
{
	const FormParam *pa = a;
	const FormParam *pb = b;
	int			c = strcmp(pa->name, pb->name);

	/* Twilio's libraries sort a repeated name's values too */
	return c != 0 ? c : strcmp(pa->value, pb->value);
}

/* The parameters of an application/x-www-form-urlencoded body, sorted. */
static FormParam *
parse_form(const char *body, int *nparams)
{
	int			max = 1;
	FormParam  *params;
	int			n = 0;
	const char *p = body;

	for (const char *q = body; *q; q++)
		if (*q == '&')
			max++;
	params = palloc(sizeof(FormParam) * max);
	while (*p)
	{
		const char *end = strchr(p, '&');
		const char *eq;
		int			len = end ? end - p : (int) strlen(p);

		eq = memchr(p, '=', len);
		if (len > 0)
		{
			if (eq == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("malformed status callback body"),
						 errdetail("A field has no \"=\".")));
			params[n].name = form_decode(p, eq - p);
			params[n].value = form_decode(eq + 1, len - (eq + 1 - p));
			n++;
		}
		p += len;
		if (*p == '&')
			p++;
	}
	qsort(params, n, sizeof(FormParam), compare_params);
	*nparams = n;
	return params;
}

static const char *
param(const FormParam *params, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(params[i].name, name) == 0)
			return params[i].value;
	return NULL;
}

/* Base64(HMAC-SHA1(token, url + name1 value1 name2 value2 ...)) */
static char *
signature_for(const char *url, const FormParam *params, int n, const char *token)
{
	pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA1);
	uint8		mac[SHA1_LEN];
	char	   *b64 = palloc(pg_b64_enc_len(SHA1_LEN) + 1);
	int			len;

	if (ctx == NULL)
		elog(ERROR, "out of memory computing a signature");
	if (pg_hmac_init(ctx, (const uint8 *) token, strlen(token)) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) url, strlen(url)) < 0)
		elog(ERROR, "could not compute a signature: %s", pg_hmac_error(ctx));
	for (int i = 0; i < n; i++)
	{
		if (pg_hmac_update(ctx, (const uint8 *) params[i].name, strlen(params[i].name)) < 0 ||
			pg_hmac_update(ctx, (const uint8 *) params[i].value, strlen(params[i].value)) < 0)
			elog(ERROR, "could not compute a signature: %s", pg_hmac_error(ctx));
	}
	if (pg_hmac_final(ctx, mac, sizeof(mac)) < 0)
		elog(ERROR, "could not compute a signature: %s", pg_hmac_error(ctx));
	pg_hmac_free(ctx);
	len = sms_b64_encode((const char *) mac, SHA1_LEN, b64, pg_b64_enc_len(SHA1_LEN));
	if (len < 0)
		elog(ERROR, "could not encode a signature");
	b64[len] = '\0';
	return b64;
}

/*
 * The URL with its scheme's default port added (if it had none) or removed
 * (if it had it); NULL if neither applies.
 */
static char *
url_other_port_form(const char *url)
{
	const char *scheme_end = strstr(url, "://");
	const char *host;
	const char *host_end;
	const char *port = NULL;
	int			default_port;

	if (scheme_end == NULL)
		return NULL;
	if (pg_strncasecmp(url, "https://", 8) == 0)
		default_port = 443;
	else if (pg_strncasecmp(url, "http://", 7) == 0)
		default_port = 80;
	else
		return NULL;
	host = scheme_end + 3;
	host_end = host + strcspn(host, "/?#");
	/* the port follows the last ":" after any "]" of an IPv6 host */
	for (const char *p = host_end - 1; p >= host && *p != ']'; p--)
		if (*p == ':')
		{
			port = p;
			break;
		}
	if (port == NULL)
		return psprintf("%.*s:%d%s", (int) (host_end - url), url, default_port, host_end);
	if (atoi(port + 1) == default_port && host_end - port - 1 == (default_port == 443 ? 3 : 2))
		return psprintf("%.*s%s", (int) (port - url), url, host_end);
	return NULL;
}

static bool
signature_matches(const char *url, const FormParam *params, int n,
				  const char *token, const char *given)
{
	char	   *other = url_other_port_form(url);
	char	   *expected = signature_for(url, params, n, token);
	bool		ok = strlen(given) == strlen(expected) &&
		timingsafe_bcmp(given, expected, strlen(expected)) == 0;

	if (!ok && other != NULL)
	{
		expected = signature_for(other, params, n, token);
		ok = strlen(given) == strlen(expected) &&
			timingsafe_bcmp(given, expected, strlen(expected)) == 0;
	}
	return ok;
}

/* The sms_id the worker put in the callback URL's query; -1 if none. */
static int64
outbox_id_in(const char *url)
{
	const char *q = strchr(url, '?');

	while (q != NULL)
	{
		q++;
		if (strncmp(q, "sms_id=", 7) == 0)
		{
			char	   *end;
			long long	v;

			errno = 0;
			v = strtoll(q + 7, &end, 10);
			if (errno == 0 && end != q + 7 && (*end == '\0' || *end == '&' || *end == '#') && v > 0)
				return (int64) v;
			return -1;
		}
		q = strchr(q, '&');
	}
	return -1;
}

/* a callback refused for what it says (ereport: the compiler knows it ends) */
#define refuse(message, detail) \
	ereport(ERROR, \
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE), \
			 errmsg("%s", (message)), \
			 (detail) ? errdetail("%s", (const char *) (detail)) : 0))

/*
 * sms_status_callback(url text, form_body text, signature text) returns boolean
 */
Datum
sms_status_callback(PG_FUNCTION_ARGS)
{
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(0));
	text	   *body_text = PG_GETARG_TEXT_PP(1);
	char	   *signature = text_to_cstring(PG_GETARG_TEXT_PP(2));
	char	   *body;
	FormParam  *params;
	int			n;
	const char *sid;
	const char *status;
	const char *account;
	int64		id;
	SmsDeliveryNews news;

	if (sms_auth_token == NULL || sms_auth_token[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot verify a status callback: sms.auth_token is not set"),
				 errdetail("Twilio signs callbacks with the account's auth token, also when requests use an API key."),
				 errhint("Set sms.auth_token in postgresql.conf and reload.")));
	if (VARSIZE_ANY_EXHDR(body_text) > MAX_CALLBACK_BODY)
		refuse("status callback body too large", NULL);
	body = text_to_cstring(body_text);
	params = parse_form(body, &n);

	if (!signature_matches(url, params, n, sms_auth_token, signature))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("invalid status callback signature"),
				 errdetail("X-Twilio-Signature does not match the URL and the body under the account's auth token."),
				 errhint("Pass the URL exactly as Twilio called it, with its query string, and the raw body.")));

	sid = param(params, n, "MessageSid");
	status = param(params, n, "MessageStatus");
	account = param(params, n, "AccountSid");
	if (sid == NULL || status == NULL)
		refuse("malformed status callback body",
			   "MessageSid and MessageStatus are required.");
	if (account == NULL || sms_account_sid == NULL || strcmp(account, sms_account_sid) != 0)
		refuse("status callback is for another account", NULL);
	if (sms_status_rank(status) == 0)
		refuse(psprintf("unknown message status \"%s\"", status), NULL);
	id = outbox_id_in(url);
	if (id < 0)
		refuse("status callback URL has no sms_id",
			   "The worker passes sms.status_callback_url with sms_id=<the outbox id> appended.");

	news.id = id;
	news.sid = sid;
	news.status = status;
	news.error_code = param(params, n, "ErrorCode") ?
		pg_strtoint32(param(params, n, "ErrorCode")) : 0;
	news.error_message = NULL;

	switch (sms_apply_delivery_news(&news))
	{
		case NEWS_APPLIED:
			PG_RETURN_BOOL(true);
		case NEWS_OLDER:
			PG_RETURN_BOOL(false);
		case NEWS_NO_SUCH_MESSAGE:
			break;
	}
	ereport(ERROR,
			(errcode(ERRCODE_NO_DATA_FOUND),
			 errmsg("no message %s in sms_outbox", sid),
			 errdetail("The row sms_id " INT64_FORMAT " does not hold that message SID.", id)));
	PG_RETURN_BOOL(false);
}
