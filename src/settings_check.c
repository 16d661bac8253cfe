/*-------------------------------------------------------------------------
 *
 * settings_check.c
 *	  Check hooks of the settings that say where requests go and how the
 *	  provider is trusted: sms.api_url and sms.ca_file.
 *
 *	  A mistake caught here is refused where it is made (ALTER SYSTEM, or
 *	  the server log at a reload, which then keeps the old value), instead
 *	  of surfacing later as requests that all fail alike.
 *
 *-------------------------------------------------------------------------
 */
#include "sms.h"
#include "settings_check.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "url.h"

/* every refusal of sms.api_url ends with the same example */
#define API_URL_EXAMPLE "'https://api.twilio.com'"

#define CA_FILE_HINT "Name a readable file of PEM certificates, such as '/etc/ssl/certs/ca-certificates.crt', or set sms.ca_file to '' to verify with the system's certificates."

static bool
is_loopback_host(const char *host)
{
	return strcmp(host, "127.0.0.1") == 0 ||
		pg_strcasecmp(host, "localhost") == 0 ||
		strcmp(host, "[::1]") == 0;
}

/* a URL libcurl can parse, without spaces or control characters */
static bool
api_url_parses(const char *url, SmsUrl *u)
{
	CURLUcode	rc;

	/* nothing to free for the refusals before the URL is parsed */
	memset(u, 0, sizeof(*u));

	if (url[0] == '\0')
	{
		GUC_check_errdetail("The API URL is empty.");
		GUC_check_errhint("For example " API_URL_EXAMPLE ".");
		return false;
	}

	/* libcurl refuses most of these itself, but not everywhere alike */
	for (const char *p = url; *p; p++)
	{
		if ((unsigned char) *p <= 0x20 || *p == 0x7f)
		{
			GUC_check_errdetail("The API URL contains a space or a control character.");
			GUC_check_errhint("Write the URL without spaces, as in " API_URL_EXAMPLE ".");
			return false;
		}
	}

	rc = sms_url_parse(url, u);
	if (rc == CURLUE_NO_HOST)
	{
		GUC_check_errdetail("The API URL has no host name.");
		GUC_check_errhint("For example " API_URL_EXAMPLE ".");
		return false;
	}
	if (rc == CURLUE_BAD_SCHEME || rc == CURLUE_UNSUPPORTED_SCHEME)
	{
		GUC_check_errdetail("The API URL must start with \"https://\".");
		GUC_check_errhint("For example " API_URL_EXAMPLE ".");
		return false;
	}
	if (rc != CURLUE_OK)
	{
		GUC_check_errdetail("The API URL cannot be parsed: %s.", curl_url_strerror(rc));
		GUC_check_errhint("For example " API_URL_EXAMPLE ".");
		return false;
	}
	return true;
}

/* https (or http to this machine), a host, no userinfo, a valid port */
static bool
api_url_scheme_and_host_acceptable(const SmsUrl *u)
{
	if (strcmp(u->scheme, "https") != 0 && strcmp(u->scheme, "http") != 0)
	{
		GUC_check_errdetail("The API URL must start with \"https://\", not \"%s://\".",
							u->scheme);
		GUC_check_errhint("For example " API_URL_EXAMPLE ".");
		return false;
	}
	if (u->host == NULL || u->host[0] == '\0')
	{
		GUC_check_errdetail("The API URL has no host name.");
		GUC_check_errhint("Write two slashes and the host after the scheme, as in " API_URL_EXAMPLE ".");
		return false;
	}

	/*
	 * Userinfo would be sent to the host, and every role can read the
	 * setting (SHOW) and the server log records it at a reload.  It is also
	 * how a URL hides its real host: the detail names that host, never the
	 * userinfo.
	 */
	if (u->userinfo)
	{
		GUC_check_errdetail("The API URL must not contain a user name or password (the part before \"@\"; the host here is \"%s\"): every role can read this setting, and the server log records it.",
							u->host);
		GUC_check_errhint("Put the credentials in \"sms.account_sid\" and \"sms.auth_token\", and only the scheme, host and port here, as in " API_URL_EXAMPLE ".");
		return false;
	}
	if (strcmp(u->scheme, "http") == 0 && !is_loopback_host(u->host))
	{
		GUC_check_errdetail("Credentials are never sent unencrypted: \"http://\" is accepted only for a test server on this machine (127.0.0.1, localhost or [::1]), and the host here is \"%s\".",
							u->host);
		GUC_check_errhint("Use \"https://\", as in " API_URL_EXAMPLE ", or a loopback host, as in 'http://127.0.0.1:8099'.");
		return false;
	}
	if (u->port != NULL && atoi(u->port) == 0)
	{
		GUC_check_errdetail("The API URL's port must be 1 to 65535, not %s.", u->port);
		GUC_check_errhint("Leave the port out for the scheme's own, as in " API_URL_EXAMPLE ".");
		return false;
	}
	return true;
}

/* the scheme, host and port only: the worker appends each request's path */
static bool
api_url_is_base(const SmsUrl *u)
{
	if (u->query != NULL)
	{
		GUC_check_errdetail("The API URL must not have a query string (\"?...\"): the worker appends the path of each request to the URL, and a query would swallow it.");
		GUC_check_errhint("Give only the scheme, host and port, as in " API_URL_EXAMPLE ".");
		return false;
	}
	if (u->fragment != NULL)
	{
		GUC_check_errdetail("The API URL must not have a fragment (\"#...\"): the worker appends the path of each request to the URL, and a fragment would swallow it.");
		GUC_check_errhint("Give only the scheme, host and port, as in " API_URL_EXAMPLE ".");
		return false;
	}
	if (u->path != NULL && strcmp(u->path, "/") != 0)
	{
		GUC_check_errdetail("The API URL must not have a path (\"%s\"): the API lives at the root of its host, and the worker appends the path of each request (/2010-04-01/...).",
							u->path);
		GUC_check_errhint("Give only the scheme, host and port, as in " API_URL_EXAMPLE ".");
		return false;
	}
	return true;
}

/*
 * The first thing wrong with an API URL, as GUC_check_errdetail and
 * GUC_check_errhint; false if there is one.
 */
static bool
api_url_acceptable(const char *url, SmsUrl *u)
{
	return api_url_parses(url, u) && api_url_scheme_and_host_acceptable(u) &&
		api_url_is_base(u);
}

/*
 * sms.api_url: https to any host, or http to this machine only, judged on
 * the URL as libcurl parses it; nothing but the scheme, host and port.
 */
bool
sms_check_api_url(char **newval, void **extra, GucSource source)
{
	SmsUrl		u;
	bool		ok;

	if (*newval == NULL)
		return true;
	ok = api_url_acceptable(*newval, &u);
	sms_url_free(&u);
	return ok;
}

/*
 * sms.status_callback_url: where the provider POSTs status changes.  Empty
 * for none.  https (http only to this machine, for tests), a host, no user
 * name or password (every role can read the setting), no fragment; a path
 * and a query are the receiver's business (sms_id is appended).
 */
bool
sms_check_status_callback_url(char **newval, void **extra, GucSource source)
{
	SmsUrl		u;
	bool		ok = false;
	const char *example = "'https://example.com/sms/status'";

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	for (const char *p = *newval; *p; p++)
		if ((unsigned char) *p <= 0x20 || *p == 0x7f)
		{
			GUC_check_errdetail("The status callback URL contains a space or a control character.");
			return false;
		}
	if (sms_url_parse(*newval, &u) != CURLUE_OK || u.host == NULL || u.host[0] == '\0')
		GUC_check_errdetail("The status callback URL must be an absolute URL with a host.");
	else if (strcmp(u.scheme, "https") != 0 &&
			 !(strcmp(u.scheme, "http") == 0 && is_loopback_host(u.host)))
		GUC_check_errdetail("The status callback URL must start with \"https://\" (\"http://\" only for 127.0.0.1, localhost or [::1]).");
	else if (u.userinfo)
		GUC_check_errdetail("The status callback URL must not contain a user name or password: every role can read this setting.");
	else if (u.fragment)
		GUC_check_errdetail("The status callback URL must not have a fragment (\"#...\").");
	else
		ok = true;
	if (!ok)
		GUC_check_errhint("For example %s.", example);
	sms_url_free(&u);
	return ok;
}

/*
 * sms.ca_file: a file the server can read.  What is in it is left to
 * libcurl, and a file removed later pauses the queue with the reason; but
 * a name that leads nowhere is caught here.
 */
bool
sms_check_ca_file(char **newval, void **extra, GucSource source)
{
	int			fd;
	struct stat st;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;

	/* not blocked by a FIFO, whose open would wait for a writer */
	fd = open(*newval, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
	{
		GUC_check_errdetail("Cannot open \"%s\": %m.", *newval);
		GUC_check_errhint(CA_FILE_HINT);
		return false;
	}
	if (fstat(fd, &st) != 0)
		GUC_check_errdetail("Cannot read \"%s\": %m.", *newval);
	else if (S_ISDIR(st.st_mode))
		GUC_check_errdetail("\"%s\" is a directory.", *newval);
	else if (!S_ISREG(st.st_mode))
		GUC_check_errdetail("\"%s\" is not a regular file.", *newval);
	else
	{
		close(fd);
		return true;
	}
	close(fd);
	GUC_check_errhint(CA_FILE_HINT);
	return false;
}
