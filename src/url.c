/*-------------------------------------------------------------------------
 *
 * url.c
 *	  Splitting a URL into its parts with libcurl's URL API.
 *
 *	  A URL is judged on the parts libcurl finds in it, not on how its text
 *	  begins: in "http://127.0.0.1:x@example.com/" the host is example.com,
 *	  and "127.0.0.1:x" is a user name and password.  Where libcurl is more
 *	  forgiving than a check may be (slashes after the scheme, an empty
 *	  query or fragment it drops), this file says so.
 *
 *-------------------------------------------------------------------------
 */
#include "url.h"

/* A part as a palloc'd string; NULL if the URL has none. */
static char *
get_part(CURLU *u, CURLUPart what)
{
	char	   *s = NULL;
	char	   *copy = NULL;

	if (curl_url_get(u, what, &s, 0) == CURLUE_OK && s != NULL)
		copy = pstrdup(s);
	curl_free(s);
	return copy;
}

/* Does the URL have this part, even an empty one ("user:@host")? */
static bool
has_part(CURLU *u, CURLUPart what)
{
	char	   *s = NULL;
	CURLUcode	rc = curl_url_get(u, what, &s, 0);

	curl_free(s);
	return rc == CURLUE_OK;
}

/*
 * Split url into *parts; returns CURLUE_OK, or libcurl's reason why it is
 * no URL (curl_url_strerror tells it).  Only schemes libcurl supports are
 * accepted (CURLU_NON_SUPPORT_SCHEME is not given).
 */
CURLUcode
sms_url_parse(const char *url, SmsUrl *parts)
{
	CURLU	   *u = curl_url();
	CURLUcode	rc;
	size_t		len;

	memset(parts, 0, sizeof(*parts));
	if (u == NULL)
		return CURLUE_OUT_OF_MEMORY;

	/*
	 * The path as written: libcurl would make "/" of "/a/..", and a check
	 * of the path must see what the text says.
	 */
	rc = curl_url_set(u, CURLUPART_URL, url, CURLU_PATH_AS_IS);
	if (rc == CURLUE_OK)
	{
		parts->scheme = get_part(u, CURLUPART_SCHEME);
		parts->host = get_part(u, CURLUPART_HOST);
		parts->port = get_part(u, CURLUPART_PORT);
		parts->path = get_part(u, CURLUPART_PATH);
		parts->query = get_part(u, CURLUPART_QUERY);
		parts->fragment = get_part(u, CURLUPART_FRAGMENT);
		parts->userinfo = has_part(u, CURLUPART_USER) ||
			has_part(u, CURLUPART_PASSWORD) ||
			has_part(u, CURLUPART_OPTIONS);
	}
	curl_url_cleanup(u);
	if (rc != CURLUE_OK)
		return rc;
	if (parts->scheme == NULL)
	{
		sms_url_free(parts);
		return CURLUE_BAD_SCHEME;
	}

	/*
	 * libcurl forgives one slash too few or too many after the scheme and
	 * takes what follows for the host ("http:/x" and "http:///x" both name
	 * host x).  Such a URL has no authority of its own: no host.
	 */
	len = strlen(parts->scheme);
	if (parts->host != NULL &&
		(pg_strncasecmp(url, parts->scheme, len) != 0 ||
		 strncmp(url + len, "://", 3) != 0 || url[len + 3] == '/'))
	{
		pfree(parts->host);
		parts->host = NULL;
	}

	/*
	 * libcurl drops an empty fragment ("https://host#"), and some versions
	 * an empty query too.  Everything after the first "#" is the fragment,
	 * and everything after a "?" before it the query, so either character
	 * means the URL has one.
	 */
	if (parts->fragment == NULL && strchr(url, '#') != NULL)
		parts->fragment = pstrdup("");
	if (parts->query == NULL && parts->fragment == NULL && strchr(url, '?') != NULL)
		parts->query = pstrdup("");
	return CURLUE_OK;
}

void
sms_url_free(SmsUrl *parts)
{
	char	   *all[] = {parts->scheme, parts->host, parts->port, parts->path,
	parts->query, parts->fragment};

	for (size_t i = 0; i < lengthof(all); i++)
		if (all[i] != NULL)
			pfree(all[i]);
	memset(parts, 0, sizeof(*parts));
}
