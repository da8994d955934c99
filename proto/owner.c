/* owner: checks, encodes for the Fs-Owner header, and hashes the identity a job belongs to. */
#include "proto/owner.h"

#include <string.h>

#include <openssl/evp.h>

#include "proto/ascii.h"
#include "proto/base64.h"
#include "proto/utf8.h"

enum proto_err owner_check(const char *s, size_t len)
{
	enum proto_err rc;

	if (len == 0)
		return PROTO_E_EMPTY;
	if (len > OWNER_MAX)
		return PROTO_E_TOO_LONG;
	rc = utf8_check_text(s, len);
	if (rc)
		return rc == PROTO_E_BAD_CHAR ? PROTO_E_OWNER : rc;
	return PROTO_OK;
}

enum proto_err owner_encode(const char *s, size_t len, char *out, size_t cap)
{
	enum proto_err rc;

	rc = owner_check(s, len);
	if (rc)
		return rc;
	return base64url_encode((const unsigned char *)s, len, out, cap, NULL);
}

enum proto_err owner_decode(const char *v, size_t len, char *out, size_t cap, size_t *out_len)
{
	unsigned char raw[BASE64_DECODED_MAX(OWNER_HEADER_MAX)];
	size_t n = 0;
	enum proto_err rc;

	/* Anything longer decodes to more than OWNER_MAX bytes. */
	if (len > OWNER_HEADER_MAX)
		return PROTO_E_TOO_LONG;
	rc = base64url_decode(v, len, raw, sizeof(raw), &n);
	if (rc)
		return rc;
	rc = owner_check((const char *)raw, n);
	if (rc)
		return rc;
	if (cap < n + 1)
		return PROTO_E_BUFFER;
	memcpy(out, raw, n);
	out[n] = '\0';
	*out_len = n;
	return PROTO_OK;
}

enum proto_err owner_hash(const char *s, size_t len, char *out, size_t cap)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	enum proto_err rc;

	rc = owner_check(s, len);
	if (rc)
		return rc;
	if (cap < OWNER_HASH_LEN + 1)
		return PROTO_E_BUFFER;
	if (!EVP_Digest(s, len, md, &md_len, EVP_sha256(), NULL) || md_len < OWNER_HASH_LEN / 2)
		return PROTO_E_CRYPTO;
	for (size_t i = 0; i < OWNER_HASH_LEN / 2; i++) {
		out[2 * i] = ascii_hex_digit(md[i] >> 4);
		out[2 * i + 1] = ascii_hex_digit(md[i]);
	}
	out[OWNER_HASH_LEN] = '\0';
	return PROTO_OK;
}
