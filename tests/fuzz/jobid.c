/* Fuzz target: client UUID and server job id parsers; accepted ids are canonical and re-parse. */
#include <stdint.h>
#include <string.h>

#include "proto/base64.h"
#include "proto/jobid.h"

static void check(int ok)
{
	if (!ok)
		__builtin_trap();
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static void fuzz_client(const char *in, size_t len)
{
	char out[UUID_LEN + 1], again[UUID_LEN + 1];
	enum proto_err rc;

	memset(out, 'x', sizeof(out));
	rc = jobid_client_parse(in, len, out);
	if (rc) {
		check(rc == (len == 0 ? PROTO_E_EMPTY : PROTO_E_UUID));
		for (size_t i = 0; i < sizeof(out); i++)
			check(out[i] == 'x');
		return;
	}
	check(len == UUID_LEN && out[UUID_LEN] == '\0');
	for (size_t i = 0; i < UUID_LEN; i++) {
		int hyphen = i == 8 || i == 13 || i == 18 || i == 23;

		check(out[i] == lower(in[i]));
		check(hyphen ? out[i] == '-'
			     : (out[i] >= '0' && out[i] <= '9') ||
				       (out[i] >= 'a' && out[i] <= 'f'));
	}
	check(strcmp(out, "00000000-0000-0000-0000-000000000000") != 0);
	check(strcmp(out, "ffffffff-ffff-ffff-ffff-ffffffffffff") != 0);
	check(jobid_client_parse(out, UUID_LEN, again) == PROTO_OK);
	check(memcmp(again, out, sizeof(out)) == 0);
}

static void fuzz_server(const char *in, size_t len)
{
	unsigned char raw[JOBID_BYTES];
	char again[JOBID_LEN + 1];
	enum proto_err rc;
	size_t n = 0;

	rc = jobid_check(in, len);
	if (rc) {
		check(rc == PROTO_E_JOB_ID || rc == PROTO_E_NOMEM);
		return;
	}
	/* Canonical: decoding and encoding again gives back the very same characters. */
	check(len == JOBID_LEN);
	check(base64url_decode(in, len, raw, sizeof(raw), &n) == PROTO_OK && n == JOBID_BYTES);
	check(base64url_encode(raw, n, again, sizeof(again), NULL) == PROTO_OK);
	check(memcmp(again, in, len) == 0);
	check(jobid_check(again, JOBID_LEN) == PROTO_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;

	fuzz_client(in, size);
	fuzz_server(in, size);
	return 0;
}
