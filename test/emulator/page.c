/*-------------------------------------------------------------------------
 *
 * page.c
 *	  The inbox page at /: one HTML file, a style sheet and a script
 *	  (page/), compiled into the binary (page_assets.c, made by embed.sh),
 *	  so that an installed sms-emulator needs nothing beside it.
 *
 *	  Every response forbids inline script and anything from elsewhere
 *	  (Content-Security-Policy): a message body that is HTML cannot run
 *	  even if some day a bug put it on the page as markup.
 *
 *-------------------------------------------------------------------------
 */
#include "emulator.h"

#include <microhttpd.h>
#include <string.h>

extern const unsigned char page_html[];
extern const size_t page_html_len;
extern const unsigned char page_css[];
extern const size_t page_css_len;
extern const unsigned char page_js[];
extern const size_t page_js_len;

#define CSP "default-src 'none'; script-src 'self'; style-src 'self'; " \
	"connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; " \
	"frame-ancestors 'none'"

/* The response for a GET of the page or one of its files; NULL if none. */
struct MHD_Response *
page_response(const char *url)
{
	const unsigned char *data;
	size_t		len;
	const char *type;
	struct MHD_Response *resp;

	if (strcmp(url, "/") == 0)
	{
		data = page_html;
		len = page_html_len;
		type = "text/html; charset=utf-8";
	}
	else if (strcmp(url, "/inbox.css") == 0)
	{
		data = page_css;
		len = page_css_len;
		type = "text/css; charset=utf-8";
	}
	else if (strcmp(url, "/inbox.js") == 0)
	{
		data = page_js;
		len = page_js_len;
		type = "text/javascript; charset=utf-8";
	}
	else
		return NULL;
	resp = MHD_create_response_from_buffer(len, (void *) data, MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(resp, "Content-Security-Policy", CSP);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	return resp;
}
