/*-------------------------------------------------------------------------
 *
 * url.h
 *	  A URL split into its parts by libcurl's URL API, so that what the
 *	  extension judges is what libcurl will connect to.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SMS_URL_H
#define SMS_URL_H

#include "sms.h"

#include <curl/curl.h>

/* each part palloc'd, or NULL where the URL has none */
typedef struct SmsUrl
{
	char	   *scheme;			/* lower case */
	char	   *host;			/* NULL if the URL has no authority */
	char	   *port;
	char	   *path;			/* as written: "." and ".." are kept */
	char	   *query;			/* "" for a bare "?" */
	char	   *fragment;		/* "" for a bare "#" */
	bool		userinfo;		/* a user name, password or login options */
} SmsUrl;

extern CURLUcode sms_url_parse(const char *url, SmsUrl *parts);
extern void sms_url_free(SmsUrl *parts);

#endif							/* SMS_URL_H */
