/*-------------------------------------------------------------------------
 *
 * signature.c
 *	  X-Twilio-Signature for the status callbacks the emulator sends.
 *
 *	  Twilio signs a callback with Base64(HMAC-SHA1(auth token, URL +
 *	  every POST parameter sorted by name, each name followed by its value,
 *	  no delimiters)).  The URL is taken exactly as the client gave it, and
 *	  repeated names are ordered by value as Twilio's SDKs do when they
 *	  check, so a receiver that follows the SDKs accepts what this signs.
 *	  Sorting compares bytes, never the locale: Twilio's order is byte
 *	  order, and UTF-8 keeps code point order in byte order.
 *
 *	  HMAC-SHA1 and Base64 come from nettle, which GnuTLS (and so
 *	  libmicrohttpd-dev) already depends on: no cryptography by hand.
 *
 *-------------------------------------------------------------------------
 */
#include "emulator.h"

#include <nettle/base64.h>
#include <nettle/hmac.h>
#include <stdlib.h>
#include <string.h>

static int
cmp_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
	int			c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return (alen > blen) - (alen < blen);
}

static int
cmp_param(const void *x, const void *y)
{
	const FormField *a = *(const FormField *const *) x;
	const FormField *b = *(const FormField *const *) y;
	int			c = cmp_bytes(a->key, a->klen, b->key, b->klen);

	return c != 0 ? c : cmp_bytes(a->val, a->vlen, b->val, b->vlen);
}

/*
 * Sign url plus params with token; out gets the 28 characters of Base64
 * and a NUL.  The params are not reordered in place: the caller sends
 * them in its own order, which a receiver must not depend on.
 */
void
twilio_signature(const char *token, size_t token_len, const char *url,
				 const FormField *params, int n, char out[SIGNATURE_LEN + 1])
{
	struct hmac_sha1_ctx ctx;
	uint8_t		digest[SHA1_DIGEST_SIZE];
	const FormField *small[32];
	const FormField **sorted = small;
	int			i;

	if (n > (int) lengthof(small))
	{
		sorted = malloc(sizeof(FormField *) * n);
		if (sorted == NULL)
			abort();
	}
	for (i = 0; i < n; i++)
		sorted[i] = &params[i];
	qsort(sorted, n, sizeof(FormField *), cmp_param);

	hmac_sha1_set_key(&ctx, token_len, (const uint8_t *) token);
	hmac_sha1_update(&ctx, strlen(url), (const uint8_t *) url);
	for (i = 0; i < n; i++)
	{
		hmac_sha1_update(&ctx, sorted[i]->klen, (const uint8_t *) sorted[i]->key);
		hmac_sha1_update(&ctx, sorted[i]->vlen, (const uint8_t *) sorted[i]->val);
	}
	hmac_sha1_digest(&ctx, SHA1_DIGEST_SIZE, digest);
	base64_encode_raw(out, SHA1_DIGEST_SIZE, digest);
	out[SIGNATURE_LEN] = '\0';
	if (sorted != small)
		free(sorted);
}
