/* Fuzz target for proto/num.c: strict decimals checked against a slow reference and re-printing. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proto/num.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
	if (!ok)
		__builtin_trap();
}

/*
 * The error the header documents, computed another way: classify the whole input first, then
 * compare its digits with max as strings (no arithmetic that could overflow the same way).
 */
static enum proto_err reference(const char *s, size_t len, uint64_t max)
{
	char m[24];
	size_t mlen;

	if (len == 0)
		return PROTO_E_EMPTY;
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return PROTO_E_NOT_NUMBER;
	if (len > 1 && s[0] == '0')
		return PROTO_E_LEADING_ZERO;
	mlen = (size_t)snprintf(m, sizeof(m), "%llu", (unsigned long long)max);
	if (len != mlen)
		return len > mlen ? PROTO_E_RANGE : PROTO_OK;
	return memcmp(s, m, len) > 0 ? PROTO_E_RANGE : PROTO_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t maxes[] = {0, 1, 9, 10, 999, UINT32_MAX, UINT64_C(9007199254740991),
					 UINT64_MAX / 10, UINT64_MAX - 1, UINT64_MAX};
	const char *s = (const char *)data;

	for (size_t i = 0; i < sizeof(maxes) / sizeof(maxes[0]); i++) {
		uint64_t v = UINT64_C(0xdeadbeefdeadbeef);
		enum proto_err rc = num_parse_u64(s, size, maxes[i], &v);
		char buf[24];
		int n;

		check(rc == reference(s, size, maxes[i]));
		if (rc != PROTO_OK) {
			check(v == UINT64_C(0xdeadbeefdeadbeef));
			continue;
		}
		check(v <= maxes[i]);
		/* canonical form: the value prints back to exactly the input bytes */
		n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
		check(n > 0 && (size_t)n == size && memcmp(buf, s, size) == 0);
	}
	return 0;
}
