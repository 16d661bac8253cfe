/*-------------------------------------------------------------------------
 *
 * check_signature.c
 *	  Holds twilio_signature() to vectors computed elsewhere
 *	  (make check-signature).
 *
 *	  The first two vectors are Twilio's own, from its SDKs' tests (the
 *	  second shows that the URL is signed exactly as written: adding the
 *	  default port changes the signature).  The rest were computed with an
 *	  independent implementation, Python's hmac, hashlib and base64:
 *
 *		base64.b64encode(hmac.new(token, url + "".join(k + v for k, v in
 *			sorted(params, key=lambda p: (p[0].encode(), p[1].encode()))),
 *			hashlib.sha1).digest())
 *
 *	  They cover what a hand-written signer gets wrong: no parameters,
 *	  repeated names (ordered by value), names that sort differently in
 *	  byte order than in a locale ("B" < "a"), a name that is a prefix of
 *	  another ("To" < "ToCountry"), an empty value, and UTF-8 in values and
 *	  in the token.  Each case is also signed with its parameters reversed,
 *	  since the order they are sent in must not matter.  Every expected
 *	  signature is a literal, never computed by the code under test.
 *
 *-------------------------------------------------------------------------
 */
#include "emulator.h"

#include <stdio.h>
#include <string.h>

typedef struct Case
{
	const char *what;
	const char *token;
	const char *url;
	const char *params[12][2];	/* ends at the first NULL name */
	const char *expected;
} Case;

static const Case cases[] = {
	{"Twilio SDK vector", "12345",
		"https://mycompany.com/myapp.php?foo=1&bar=2",
		{{"CallSid", "CA1234567890ABCDE"}, {"Caller", "+14158675309"},
		{"Digits", "1234"}, {"From", "+14158675309"}, {"To", "+18005551212"}},
	"RSOYDt4T1cUTdK1PDd93/VVr8B8="},
	{"Twilio SDK vector, URL with :443", "12345",
		"https://mycompany.com:443/myapp.php?foo=1&bar=2",
		{{"CallSid", "CA1234567890ABCDE"}, {"Caller", "+14158675309"},
		{"Digits", "1234"}, {"From", "+14158675309"}, {"To", "+18005551212"}},
	"kvajT1Ptam85bY51eRf/AJRuM3w="},
	{"no parameters", "emulator-token", "http://127.0.0.1:8080/cb?id=42",
		{{NULL, NULL}},
	"jFowb87WP4wM4Ww1vb+2uyY6xnU="},
	{"repeated names sorted by value", "emulator-token",
		"http://127.0.0.1:8080/cb?id=42",
		{{"MediaUrl", "https://b/2.png"}, {"MediaUrl", "https://a/1.png"},
		{"Body", "x"}},
	"94s1C2oDmYvKlVykFaATKwtuHBc="},
	{"UTF-8 value, empty value", "emulator-token", "http://localhost/status",
		{{"Body", "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"},
		{"To", "+15551234567"}, {"ErrorCode", ""}},
	"4GlsX31TrvHIkliV9MgXyNCE4Cs="},
	{"byte order, prefixes, UTF-8 token", "s3cr\xc3\xa9t", "http://[::1]:9/x",
		{{"b", "1"}, {"B", "2"}, {"a", "3"}, {"To", "x"}, {"ToCountry", "US"}},
	"6OI/aGmq7IWLjGRe2hehnuxG9qw="},
	{"a status callback as the emulator sends it", "emulator-token",
		"http://127.0.0.1:5000/twilio/status?outbox_id=17",
		{{"MessageSid", "SM0123456789abcdef0123456789abcdef"},
		{"MessageStatus", "undelivered"}, {"ErrorCode", "30003"},
		{"AccountSid", "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
		{"From", "+15557654321"}, {"To", "+15005553003"},
		{"ApiVersion", "2010-04-01"},
		{"SmsSid", "SM0123456789abcdef0123456789abcdef"},
		{"SmsStatus", "undelivered"}, {"RawDlrDoneDate", "2605071530"}},
	"jtNjBLVjdunuy/EGuotAFDxI7iQ="},
};

static int	failures;
static int	checks;

static void
expect(const Case *c, const char *order, const FormField *f, int n)
{
	char		sig[SIGNATURE_LEN + 1];

	twilio_signature(c->token, strlen(c->token), c->url, f, n, sig);
	checks++;
	if (strcmp(sig, c->expected) != 0)
	{
		failures++;
		printf("FAIL %s (%s): got %s, expected %s\n", c->what, order, sig,
			   c->expected);
	}
}

int
main(void)
{
	size_t		i;

	for (i = 0; i < lengthof(cases); i++)
	{
		const Case *c = &cases[i];
		FormField	f[12],
					rev[12];
		int			n,
					k;

		for (n = 0; n < (int) lengthof(c->params) && c->params[n][0]; n++)
		{
			f[n].key = c->params[n][0];
			f[n].klen = strlen(c->params[n][0]);
			f[n].val = c->params[n][1];
			f[n].vlen = strlen(c->params[n][1]);
		}
		for (k = 0; k < n; k++)
			rev[k] = f[n - 1 - k];
		expect(c, "as listed", f, n);
		expect(c, "reversed", rev, n);
	}

	if (failures)
	{
		printf("check-signature: %d of %d checks failed\n", failures, checks);
		return 1;
	}
	printf("check-signature: all %d checks passed\n", checks);
	return 0;
}
