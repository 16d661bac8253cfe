/*-------------------------------------------------------------------------
 *
 * twilio_auth.c
 *	  The headers of every request to Twilio, with the Basic credentials
 *	  (the account SID and auth token, or an API key and its secret).
 *
 *	  The header list is built once per value of the settings rather than
 *	  by libcurl for every request.  A reload that changes the credentials
 *	  retires the list; libcurl reads a list while it sends, so a retired
 *	  list is zeroed and freed once no request in flight was set up with it
 *	  (each request records the generation of the list it uses), whatever
 *	  the load, when the next request is prepared: the old secret does not
 *	  stay in memory while the worker sends.
 *
 *-------------------------------------------------------------------------
 */
#include "twilio_auth.h"

#include "common/base64.h"
#include "http.h"
#include "nodes/pg_list.h"
#include "utils/memutils.h"

/*
 * Header lists replaced since, with the generation each served: libcurl
 * reads a list as it sends, so a list is freed (its credentials zeroed
 * first) once no request in flight was set up with it.
 */
typedef struct RetiredHeaders
{
	struct curl_slist *list;
	uint32		generation;
} RetiredHeaders;

static List *retired_headers = NIL;

/* Zero every line of a header list (the credentials), then free it. */
static void
free_headers(struct curl_slist *list)
{
	for (struct curl_slist *n = list; n; n = n->next)
		explicit_bzero(n->data, strlen(n->data));
	curl_slist_free_all(list);
}

/* Free the retired lists that no request in flight uses any more. */
static void
free_retired_headers(void)
{
	uint32		oldest = PG_UINT32_MAX;
	List	   *keep = NIL;
	ListCell   *lc;

	for (int i = 0; i < sms_http_in_flight(); i++)
		oldest = Min(oldest, sms_http_in_flight_job(i)->http->headers_generation);
	foreach(lc, retired_headers)
	{
		RetiredHeaders *r = lfirst(lc);

		if (r->generation < oldest)
		{
			free_headers(r->list);
			pfree(r);
		}
		else
			keep = lappend(keep, r);
	}
	list_free(retired_headers);
	retired_headers = keep;
}

/*
 * The request headers for job, with Basic credentials built once per value
 * of the settings rather than by libcurl for every request.
 */
struct curl_slist *
sms_twilio_request_headers(SmsJob *job)
{
	static struct curl_slist *headers = NULL;
	static uint32 generation = 0;
	static char *for_user = NULL;
	static char *for_secret = NULL;
	bool		api_key = sms_api_key_sid && sms_api_key_sid[0] != '\0';
	const char *user = api_key ? sms_api_key_sid : sms_account_sid;
	const char *secret = api_key ? sms_api_key_secret : sms_auth_token;
	MemoryContext old;
	char	   *pair;
	char	   *encoded;
	int			len;
	char	   *line;

	if (retired_headers != NIL)
	{
		old = MemoryContextSwitchTo(TopMemoryContext);
		free_retired_headers();
		MemoryContextSwitchTo(old);
	}

	if (headers != NULL && strcmp(for_user, user) == 0 &&
		strcmp(for_secret, secret) == 0)
	{
		job->http->headers_generation = generation;
		return headers;
	}

	old = MemoryContextSwitchTo(TopMemoryContext);
	if (headers != NULL)
	{
		RetiredHeaders *r = palloc(sizeof(RetiredHeaders));

		r->list = headers;
		r->generation = generation;
		retired_headers = lappend(retired_headers, r);
		explicit_bzero(for_secret, strlen(for_secret));
		pfree(for_user);
		pfree(for_secret);
	}
	for_user = pstrdup(user);
	for_secret = pstrdup(secret);
	MemoryContextSwitchTo(old);

	pair = psprintf("%s:%s", user, secret);
	encoded = palloc(pg_b64_enc_len(strlen(pair)) + 1);
	len = sms_b64_encode(pair, strlen(pair), encoded, pg_b64_enc_len(strlen(pair)));
	if (len < 0)
		elog(ERROR, "could not encode the credentials");
	encoded[len] = '\0';
	line = psprintf("Authorization: Basic %s", encoded);

	headers = curl_slist_append(NULL, "Accept: application/json");
	/* no 100-continue round trip before a large body */
	headers = curl_slist_append(headers, "Expect:");
	/* a fixed line, where CURLOPT_USERAGENT would be formatted per request */
	headers = curl_slist_append(headers, "User-Agent: " SMS_USER_AGENT);
	headers = curl_slist_append(headers, line);
	if (headers == NULL)
		elog(ERROR, "out of memory building request headers");
	generation++;
	job->http->headers_generation = generation;

	explicit_bzero(pair, strlen(pair));
	explicit_bzero(encoded, len);
	explicit_bzero(line, strlen(line));
	pfree(pair);
	pfree(encoded);
	pfree(line);
	return headers;
}
