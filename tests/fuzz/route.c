/*
 * Fuzz target: route_parse under a fixed key and owner (an accepted route rebuilds to the same
 * bytes), and route_build from fuzz-chosen ids (parse(build(x)) == x, other owners refused).
 */
#include <stdint.h>
#include <string.h>

#include "proto/announce.h"
#include "proto/jobid.h"
#include "proto/route.h"

/* The key is bytes 0x00..0x1f, as in the unit tests, so their known routes seed the corpus. */
#define FUZZ_OWNER	 "alice"
#define FUZZ_OTHER_OWNER "bob"

static void check(int ok)
{
	if (!ok)
		__builtin_trap();
}

static void key_fill(unsigned char key[32])
{
	for (size_t i = 0; i < 32; i++)
		key[i] = (unsigned char)i;
}

static void fuzz_parse(const unsigned char *key, const char *in, size_t len)
{
	char sid[SERVER_ID_MAX + 1], jid[JOBID_LEN + 1], out[ROUTE_MAX_LEN + 1];
	enum proto_err rc;

	memset(sid, 'x', sizeof(sid));
	memset(jid, 'x', sizeof(jid));
	rc = route_parse(key, 32, FUZZ_OWNER, strlen(FUZZ_OWNER), in, len, sid, jid);
	if (rc) {
		check(rc == PROTO_E_ROUTE_SYNTAX || rc == PROTO_E_ROUTE_TAG ||
		      rc == PROTO_E_NOMEM || rc == PROTO_E_CRYPTO);
		check(sid[0] == 'x' && jid[0] == 'x');
		return;
	}
	check(memchr(sid, '\0', sizeof(sid)) != NULL && memchr(jid, '\0', sizeof(jid)) != NULL);
	check(announce_server_id_check(sid, strlen(sid)) == PROTO_OK);
	check(jobid_check(jid, strlen(jid)) == PROTO_OK);
	check(route_build(key, 32, FUZZ_OWNER, strlen(FUZZ_OWNER), sid, jid, out, sizeof(out)) ==
	      PROTO_OK);
	check(strlen(out) == len && memcmp(out, in, len) == 0);
	check(route_parse(key, 32, FUZZ_OTHER_OWNER, strlen(FUZZ_OTHER_OWNER), in, len, sid, jid) ==
	      PROTO_E_ROUTE_TAG);
}

/* Reads the input as "server-id.job-id[.anything]" and, when both ids are valid, builds. */
static void fuzz_build(const unsigned char *key, const char *in, size_t len)
{
	char sid_in[SERVER_ID_MAX + 1], jid_in[JOBID_LEN + 1];
	char sid[SERVER_ID_MAX + 1], jid[JOBID_LEN + 1], out[ROUTE_MAX_LEN + 1];
	const char *dot1, *dot2, *jid_start;
	size_t sid_len, jid_len;
	enum proto_err rc;

	dot1 = memchr(in, '.', len);
	if (!dot1)
		return;
	jid_start = dot1 + 1;
	dot2 = memchr(jid_start, '.', len - (size_t)(jid_start - in));
	sid_len = (size_t)(dot1 - in);
	jid_len = (size_t)((dot2 ? dot2 : in + len) - jid_start);
	if (announce_server_id_check(in, sid_len) || jobid_check(jid_start, jid_len))
		return;
	memcpy(sid_in, in, sid_len);
	sid_in[sid_len] = '\0';
	memcpy(jid_in, jid_start, jid_len);
	jid_in[jid_len] = '\0';
	rc = route_build(key, 32, FUZZ_OWNER, strlen(FUZZ_OWNER), sid_in, jid_in, out, sizeof(out));
	check(rc == PROTO_OK);
	check(strlen(out) == sid_len + 1 + JOBID_LEN + 1 + ROUTE_TAG_LEN);
	check(memcmp(out, in, sid_len + 1 + jid_len) == 0 && out[sid_len + 1 + jid_len] == '.');
	check(route_parse(key, 32, FUZZ_OWNER, strlen(FUZZ_OWNER), out, strlen(out), sid, jid) ==
	      PROTO_OK);
	check(strcmp(sid, sid_in) == 0 && strcmp(jid, jid_in) == 0);
	check(route_parse(key, 32, FUZZ_OTHER_OWNER, strlen(FUZZ_OTHER_OWNER), out, strlen(out),
			  sid, jid) == PROTO_E_ROUTE_TAG);
	/* One byte short of room is refused. */
	check(route_build(key, 32, FUZZ_OWNER, strlen(FUZZ_OWNER), sid_in, jid_in, out,
			  strlen(out)) == PROTO_E_BUFFER);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	unsigned char key[32];

	key_fill(key);
	fuzz_parse(key, in, size);
	if (size)
		fuzz_build(key, in, size);
	return 0;
}
