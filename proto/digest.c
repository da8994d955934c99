/* digest: strict parsers and formatters for tus Upload-Checksum and RFC 9530 Repr-Digest. */
#include "proto/digest.h"

#include <stdint.h>
#include <string.h>

#include "proto/ascii.h"
#include "proto/base64.h"

#define DIGEST_SHA512_LEN 64

/*
 * The shortest Repr-Digest member is "a=::" and members are at least "," apart, so a value
 * within DIGEST_HEADER_MAX never holds more members than this.
 */
#define REPR_MEMBERS_MAX (DIGEST_HEADER_MAX / 5 + 1)

/* Offsets fit 16 bits because values are capped first; keeps the member table at 1.6 KiB. */
_Static_assert(DIGEST_HEADER_MAX <= UINT16_MAX, "member offsets are 16-bit");

struct repr_member {
	uint16_t key_off;
	uint16_t key_len;
	uint16_t val_off;
	uint16_t val_len;
};

/* The RFC 8941 base64 alphabet with '='; the strict decoder rules on padding placement. */
static int is_b64_char(char c)
{
	return ascii_is_alnum(c) || c == '+' || c == '/' || c == '=';
}

/* tus names checksum algorithms by lowercase tokens such as "sha256", "md5", "crc32". */
static int is_algorithm_char(char c)
{
	return ascii_is_lower(c) || ascii_is_digit(c) || c == '-';
}

/* RFC 8941 key characters after the first. */
static int is_key_char(char c)
{
	return ascii_is_lower(c) || ascii_is_digit(c) || c == '_' || c == '-' || c == '.' ||
	       c == '*';
}

enum proto_err digest_checksum_parse(const char *v, size_t len,
				     unsigned char out[DIGEST_SHA256_LEN])
{
	unsigned char raw[BASE64_DECODED_MAX(DIGEST_HEADER_MAX)];
	size_t i = 0, alg_len, n;
	enum proto_err rc;

	if (len == 0)
		return PROTO_E_EMPTY;
	if (len > DIGEST_HEADER_MAX)
		return PROTO_E_TOO_LONG;
	while (i < len && is_algorithm_char(v[i]))
		i++;
	if (i == 0 || i == len || v[i] != ' ')
		return PROTO_E_CHECKSUM_SYNTAX;
	alg_len = i++;
	if (i == len)
		return PROTO_E_CHECKSUM_SYNTAX;
	/* The shape is settled before the algorithm, so "unsupported" means well-formed. */
	for (size_t j = i; j < len; j++)
		if (!is_b64_char(v[j]))
			return PROTO_E_CHECKSUM_SYNTAX;
	if (alg_len != 6 || memcmp(v, "sha256", 6) != 0)
		return PROTO_E_CHECKSUM_ALGORITHM;
	rc = base64_decode(v + i, len - i, raw, sizeof(raw), &n);
	if (rc)
		return rc;
	if (n != DIGEST_SHA256_LEN)
		return PROTO_E_HASH_LENGTH;
	memcpy(out, raw, DIGEST_SHA256_LEN);
	return PROTO_OK;
}

/*
 * Parses one dictionary member at v[*pos]: key "=" ":" *base64-char ":". A bare key (boolean
 * true), a token, number, string or inner list value all fail here, as RFC 9530 only allows
 * byte sequences. Parameters are caught by the caller, which wants OWS or "," next.
 */
static enum proto_err repr_member_parse(const char *v, size_t len, size_t *pos,
					struct repr_member *m)
{
	size_t i = *pos, key, val;

	if (i >= len || !(ascii_is_lower(v[i]) || v[i] == '*'))
		return PROTO_E_DIGEST_SYNTAX;
	key = i++;
	while (i < len && is_key_char(v[i]))
		i++;
	if (i + 1 >= len || v[i] != '=' || v[i + 1] != ':')
		return PROTO_E_DIGEST_SYNTAX;
	m->key_off = (uint16_t)key;
	m->key_len = (uint16_t)(i - key);
	i += 2;
	val = i;
	while (i < len && is_b64_char(v[i]))
		i++;
	if (i >= len || v[i] != ':')
		return PROTO_E_DIGEST_SYNTAX;
	m->val_off = (uint16_t)val;
	m->val_len = (uint16_t)(i - val);
	*pos = i + 1;
	return PROTO_OK;
}

static int repr_key_is(const char *v, const struct repr_member *m, const char *name)
{
	size_t n = strlen(name);

	return m->key_len == n && memcmp(v + m->key_off, name, n) == 0;
}

/*
 * Decodes every member strictly (one spelling per value, even for ignored algorithms) and
 * checks the lengths of the two algorithms RFC 9530 lists as active.
 */
static enum proto_err repr_values_check(const char *v, const struct repr_member *m, size_t count,
					unsigned char sha256[DIGEST_SHA256_LEN], int *have)
{
	unsigned char raw[BASE64_DECODED_MAX(DIGEST_HEADER_MAX)];
	enum proto_err rc;
	size_t n;

	for (size_t i = 0; i < count; i++) {
		rc = base64_decode(v + m[i].val_off, m[i].val_len, raw, sizeof(raw), &n);
		if (rc)
			return rc;
		if (repr_key_is(v, &m[i], "sha-256")) {
			if (n != DIGEST_SHA256_LEN)
				return PROTO_E_HASH_LENGTH;
			memcpy(sha256, raw, DIGEST_SHA256_LEN);
			*have = 1;
		} else if (repr_key_is(v, &m[i], "sha-512") && n != DIGEST_SHA512_LEN) {
			return PROTO_E_HASH_LENGTH;
		}
	}
	return PROTO_OK;
}

/*
 * Follows RFC 8941 section 4.2: leading SP, members separated by OWS "," OWS, trailing OWS.
 * Errors are ranked, not first-come: syntax anywhere, then a duplicate key, then a bad value,
 * then a missing sha-256, so one input always gives one answer.
 */
enum proto_err digest_repr_parse(const char *v, size_t len, unsigned char out[DIGEST_SHA256_LEN])
{
	struct repr_member m[REPR_MEMBERS_MAX];
	unsigned char sha256[DIGEST_SHA256_LEN];
	size_t i = 0, count = 0;
	int dup = 0, have = 0;
	enum proto_err rc;

	if (len == 0)
		return PROTO_E_EMPTY;
	if (len > DIGEST_HEADER_MAX)
		return PROTO_E_TOO_LONG;
	while (i < len && v[i] == ' ')
		i++;
	/* Only spaces: RFC 8941 reads an empty dictionary, i.e. the field is absent. */
	if (i == len)
		return PROTO_E_EMPTY;
	for (;;) {
		if (count == REPR_MEMBERS_MAX)
			return PROTO_E_DIGEST_SYNTAX;
		rc = repr_member_parse(v, len, &i, &m[count]);
		if (rc)
			return rc;
		/* RFC 8941 lets the last duplicate win; a digest must not be ambiguous. */
		for (size_t j = 0; j < count; j++)
			if (m[j].key_len == m[count].key_len &&
			    memcmp(v + m[j].key_off, v + m[count].key_off, m[j].key_len) == 0)
				dup = 1;
		count++;
		while (i < len && ascii_is_ows(v[i]))
			i++;
		if (i == len)
			break;
		if (v[i] != ',')
			return PROTO_E_DIGEST_SYNTAX;
		i++;
		while (i < len && ascii_is_ows(v[i]))
			i++;
		if (i == len)
			return PROTO_E_DIGEST_SYNTAX;
	}
	if (dup)
		return PROTO_E_DIGEST_DUP;
	rc = repr_values_check(v, m, count, sha256, &have);
	if (rc)
		return rc;
	if (!have)
		return PROTO_E_DIGEST_NO_SHA256;
	memcpy(out, sha256, DIGEST_SHA256_LEN);
	return PROTO_OK;
}

/* Writes prefix, the base64 of d and suffix into buf when the whole fits with its NUL. */
static enum proto_err digest_format(const char *prefix, const char *suffix,
				    const unsigned char d[DIGEST_SHA256_LEN], char *buf, size_t cap)
{
	char b64[BASE64_ENCODED_LEN(DIGEST_SHA256_LEN) + 1];
	size_t plen = strlen(prefix), slen = strlen(suffix), n;
	enum proto_err rc;

	rc = base64_encode(d, DIGEST_SHA256_LEN, b64, sizeof(b64), &n);
	if (rc)
		return rc;
	if (cap < plen + n + slen + 1)
		return PROTO_E_BUFFER;
	memcpy(buf, prefix, plen);
	memcpy(buf + plen, b64, n);
	memcpy(buf + plen + n, suffix, slen + 1);
	return PROTO_OK;
}

enum proto_err digest_repr_format(const unsigned char d[DIGEST_SHA256_LEN], char *buf, size_t cap)
{
	return digest_format("sha-256=:", ":", d, buf, cap);
}

enum proto_err digest_checksum_format(const unsigned char d[DIGEST_SHA256_LEN], char *buf,
				      size_t cap)
{
	return digest_format("sha256 ", "", d, buf, cap);
}
