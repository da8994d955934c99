/* jobid: parsing and minting of the client's UUID job id and the server's random job id. */
#include "proto/jobid.h"

#include <string.h>

#include <openssl/rand.h>

#include "proto/ascii.h"
#include "proto/base64.h"

static int uuid_is_hyphen_at(size_t i)
{
	return i == 8 || i == 13 || i == 18 || i == 23;
}

enum proto_err jobid_client_parse(const char *s, size_t len, char out[UUID_LEN + 1])
{
	char low[UUID_LEN + 1];
	int nil = 1, max = 1;

	if (len == 0)
		return PROTO_E_EMPTY;
	if (len != UUID_LEN)
		return PROTO_E_UUID;
	for (size_t i = 0; i < UUID_LEN; i++) {
		char c = s[i];

		if (uuid_is_hyphen_at(i)) {
			if (c != '-')
				return PROTO_E_UUID;
			low[i] = c;
			continue;
		}
		if (!ascii_is_hex(c))
			return PROTO_E_UUID;
		c = ascii_lower(c);
		low[i] = c;
		nil &= c == '0';
		max &= c == 'f';
	}
	/* Nil and max are sentinels, never minted ids: a client sending one has a bug. */
	if (nil || max)
		return PROTO_E_UUID;
	low[UUID_LEN] = '\0';
	memcpy(out, low, sizeof(low));
	return PROTO_OK;
}

enum proto_err jobid_client_generate(char out[UUID_LEN + 1])
{
	unsigned char b[16];
	size_t j = 0;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return PROTO_E_RANDOM;
	/* RFC 9562 section 5.4: version 4 in the high nibble of byte 6, variant 10 in byte 8. */
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	for (size_t i = 0; i < sizeof(b); i++) {
		if (uuid_is_hyphen_at(j))
			out[j++] = '-';
		out[j++] = ascii_hex_digit(b[i] >> 4);
		out[j++] = ascii_hex_digit(b[i]);
	}
	out[j] = '\0';
	return PROTO_OK;
}

enum proto_err jobid_check(const char *s, size_t len)
{
	unsigned char raw[JOBID_BYTES];
	enum proto_err rc;
	size_t n;

	if (len != JOBID_LEN)
		return PROTO_E_JOB_ID;
	/* The decoder refuses '=', other alphabets and non-zero unused bits: one spelling each. */
	rc = base64url_decode(s, len, raw, sizeof(raw), &n);
	if (rc == PROTO_E_NOMEM)
		return rc;
	if (rc || n != JOBID_BYTES)
		return PROTO_E_JOB_ID;
	return PROTO_OK;
}

enum proto_err jobid_generate(char out[JOBID_LEN + 1])
{
	unsigned char b[JOBID_BYTES];
	char txt[JOBID_LEN + 1];
	enum proto_err rc;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return PROTO_E_RANDOM;
	rc = base64url_encode(b, sizeof(b), txt, sizeof(txt), NULL);
	if (rc)
		return rc;
	memcpy(out, txt, sizeof(txt));
	return PROTO_OK;
}
