/* Fuzz target: the Fs-Owner header decoder and owner identity check, with round trips. */
#include <stdint.h>
#include <string.h>

#include "proto/owner.h"

static void check(int ok)
{
	if (!ok)
		__builtin_trap();
}

static int is_hex_lower(const char *s, size_t len)
{
	return strspn(s, "0123456789abcdef") == len && s[len] == '\0';
}

/* The header as received: decode, then it must encode back to the same characters. */
static void fuzz_decode(const char *v, size_t len)
{
	char out[OWNER_MAX + 1], enc[OWNER_HEADER_MAX + 1], hash[OWNER_HASH_LEN + 1];
	size_t n = 0;
	enum proto_err rc;

	rc = owner_decode(v, len, out, sizeof(out), &n);
	if (rc) {
		check(rc == PROTO_E_BASE64 || rc == PROTO_E_BASE64_PADDING ||
		      rc == PROTO_E_BASE64_NONCANON || rc == PROTO_E_TOO_LONG ||
		      rc == PROTO_E_EMPTY || rc == PROTO_E_OWNER);
		return;
	}
	check(n >= 1 && n <= OWNER_MAX && out[n] == '\0');
	check(owner_check(out, n) == PROTO_OK);
	check(owner_encode(out, n, enc, sizeof(enc)) == PROTO_OK);
	check(strlen(enc) == len && memcmp(enc, v, len) == 0);
	check(owner_hash(out, n, hash, sizeof(hash)) == PROTO_OK);
	check(is_hex_lower(hash, OWNER_HASH_LEN));
}

/* The identity as taken from a token claim: if checked, it survives the header both ways. */
static void fuzz_identity(const char *s, size_t len)
{
	char enc[OWNER_HEADER_MAX + 1], out[OWNER_MAX + 1], hash[OWNER_HASH_LEN + 1];
	size_t n = 0;
	enum proto_err rc;

	rc = owner_check(s, len);
	if (rc) {
		check(rc == PROTO_E_EMPTY || rc == PROTO_E_TOO_LONG || rc == PROTO_E_OWNER);
		check(owner_encode(s, len, enc, sizeof(enc)) == rc);
		check(owner_hash(s, len, hash, sizeof(hash)) == rc);
		return;
	}
	check(owner_encode(s, len, enc, sizeof(enc)) == PROTO_OK);
	check(strlen(enc) <= OWNER_HEADER_MAX);
	check(owner_decode(enc, strlen(enc), out, sizeof(out), &n) == PROTO_OK);
	check(n == len && memcmp(out, s, len) == 0);
	check(owner_hash(s, len, hash, sizeof(hash)) == PROTO_OK);
	check(is_hex_lower(hash, OWNER_HASH_LEN));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_decode((const char *)data, size);
	fuzz_identity((const char *)data, size);
	return 0;
}
