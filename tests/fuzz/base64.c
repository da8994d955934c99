/* Fuzz target: both base64 decoders; whatever they accept re-encodes to the very same text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/base64.h"

static void check(int ok)
{
	if (!ok)
		__builtin_trap();
}

typedef enum proto_err (*decode_fn)(const char *, size_t, unsigned char *, size_t, size_t *);
typedef enum proto_err (*encode_fn)(const unsigned char *, size_t, char *, size_t, size_t *);

static void round_trip(const char *in, size_t len, decode_fn decode, encode_fn encode)
{
	size_t cap = BASE64_DECODED_MAX(len), n = 0, m = 0, k = 7;
	/* exact-size heap buffers so that ASan sees any write past cap */
	unsigned char *out = malloc(cap ? cap : 1);
	char *again = NULL;
	enum proto_err rc;

	check(out != NULL);
	rc = decode(in, len, out, cap, &n);
	if (rc) {
		check(rc == PROTO_E_BASE64 || rc == PROTO_E_BASE64_PADDING ||
		      rc == PROTO_E_BASE64_NONCANON || rc == PROTO_E_TOO_LONG);
		check(len > 0);
		goto out;
	}
	check(len <= BASE64_INPUT_MAX && n <= cap);
	/* one byte short of the decoded size is refused, without touching *out_len */
	if (n > 0) {
		check(decode(in, len, out, n - 1, &k) == PROTO_E_BUFFER);
		check(k == 7);
	}
	again = malloc(len + 1);
	check(again != NULL);
	check(encode(out, n, again, len + 1, &m) == PROTO_OK);
	check(m == len && again[len] == '\0' && memcmp(again, in, len) == 0);
	if (len > 0)
		check(encode(out, n, again, len, &m) == PROTO_E_BUFFER);
out:
	free(out);
	free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;

	round_trip(in, size, base64_decode, base64_encode);
	round_trip(in, size, base64url_decode, base64url_encode);
	return 0;
}
