/* Fuzz target: Upload-Checksum and Repr-Digest parsers; accepted digests re-format and re-parse. */
#include <stdint.h>
#include <string.h>

#include "proto/base64.h"
#include "proto/digest.h"

static void check(int ok)
{
	if (!ok)
		__builtin_trap();
}

static int base64_err(enum proto_err rc)
{
	return rc == PROTO_E_BASE64 || rc == PROTO_E_BASE64_PADDING ||
	       rc == PROTO_E_BASE64_NONCANON || rc == PROTO_E_NOMEM;
}

static void fuzz_checksum(const char *in, size_t len)
{
	unsigned char d[DIGEST_SHA256_LEN], again[DIGEST_SHA256_LEN];
	char buf[DIGEST_CHECKSUM_LEN];
	enum proto_err rc;

	memset(d, 0xa5, sizeof(d));
	rc = digest_checksum_parse(in, len, d);
	if (rc) {
		check(rc == PROTO_E_EMPTY || rc == PROTO_E_TOO_LONG ||
		      rc == PROTO_E_CHECKSUM_SYNTAX || rc == PROTO_E_CHECKSUM_ALGORITHM ||
		      rc == PROTO_E_HASH_LENGTH || base64_err(rc));
		check((rc == PROTO_E_EMPTY) == (len == 0));
		for (size_t i = 0; i < sizeof(d); i++)
			check(d[i] == 0xa5);
		return;
	}
	/* One spelling per value: what was accepted is exactly what the formatter writes. */
	check(digest_checksum_format(d, buf, sizeof(buf)) == PROTO_OK);
	check(strlen(buf) == len && memcmp(buf, in, len) == 0);
	check(digest_checksum_parse(buf, strlen(buf), again) == PROTO_OK);
	check(memcmp(again, d, sizeof(d)) == 0);
	check(digest_checksum_format(d, buf, sizeof(buf) - 1) == PROTO_E_BUFFER);
}

static void fuzz_repr(const char *in, size_t len)
{
	unsigned char d[DIGEST_SHA256_LEN], again[DIGEST_SHA256_LEN];
	char buf[DIGEST_REPR_LEN];
	enum proto_err rc;

	memset(d, 0xa5, sizeof(d));
	rc = digest_repr_parse(in, len, d);
	if (rc) {
		check(rc == PROTO_E_EMPTY || rc == PROTO_E_TOO_LONG ||
		      rc == PROTO_E_DIGEST_SYNTAX || rc == PROTO_E_DIGEST_DUP ||
		      rc == PROTO_E_DIGEST_NO_SHA256 || rc == PROTO_E_HASH_LENGTH ||
		      base64_err(rc));
		for (size_t i = 0; i < sizeof(d); i++)
			check(d[i] == 0xa5);
		return;
	}
	check(len <= DIGEST_HEADER_MAX);
	check(digest_repr_format(d, buf, sizeof(buf)) == PROTO_OK);
	check(strlen(buf) + 1 == DIGEST_REPR_LEN);
	/* The sha-256 member that was used appears verbatim in the input. */
	check(memmem(in, len, buf, strlen(buf)) != NULL);
	check(digest_repr_parse(buf, strlen(buf), again) == PROTO_OK);
	check(memcmp(again, d, sizeof(d)) == 0);
	check(digest_repr_format(d, buf, sizeof(buf) - 1) == PROTO_E_BUFFER);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;

	fuzz_checksum(in, size);
	fuzz_repr(in, size);
	return 0;
}
