/* Fuzz target: problem_parse on peer bytes, and problem_build output read back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proto/problem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A parsed problem must honour every promise of problem.h. */
static void problem_sane(const struct problem *p)
{
	const char *nul = memchr(p->detail, '\0', sizeof(p->detail));

	if (p->status < 400 || p->status > 599)
		__builtin_trap();
	if ((unsigned)p->type >= PROBLEM__COUNT || (unsigned)p->retry > PROBLEM_RETRY_NEW_UPLOAD)
		__builtin_trap();
	if (p->type != PROBLEM_UNKNOWN && problem_info(p->type)->status != p->status)
		__builtin_trap();
	if (!nul || (size_t)(nul - p->detail) > PROBLEM_DETAIL_MAX)
		__builtin_trap();
}

/*
 * problem_build(t, detail) parses back to t with detail cut at most to PROBLEM_DETAIL_MAX.
 * exact: detail came out of problem_parse (valid UTF-8, short enough), so the build must
 * succeed and give it back unchanged.
 */
static void build_check(enum problem_type t, const char *detail, int exact)
{
	const struct problem_info *info = problem_info(t);
	size_t len, dlen = strlen(detail), kept;
	int ascii = 1;
	struct problem p;
	char *body;

	for (size_t i = 0; i < dlen; i++)
		ascii &= (unsigned char)detail[i] < 0x80;
	body = problem_build(t, detail, &len);
	if (!info) {
		if (body)
			__builtin_trap();
		return;
	}
	if (!body) {
		json_t *s;

		if (ascii || exact) /* only non-UTF-8 detail may fail */
			__builtin_trap();
		s = json_string(detail);
		if (s) /* valid UTF-8 by jansson's own check */
			__builtin_trap();
		return;
	}
	if (len != strlen(body) || problem_parse(body, len, &p) != PROTO_OK)
		__builtin_trap();
	problem_sane(&p);
	kept = strlen(p.detail);
	if (p.type != t || p.status != info->status || p.retry != info->retry)
		__builtin_trap();
	if (kept > dlen || memcmp(p.detail, detail, kept) != 0)
		__builtin_trap();
	if (kept < dlen && kept + 4 <= PROBLEM_DETAIL_MAX)
		__builtin_trap();
	if ((ascii || exact) && kept != (dlen < PROBLEM_DETAIL_MAX ? dlen : PROBLEM_DETAIL_MAX))
		__builtin_trap();
	free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct problem p;
	enum proto_err rc;
	char *detail;

	rc = problem_parse((const char *)data, size, &p);
	if (rc == PROTO_OK) {
		problem_sane(&p);
		/* what a peer said about one of our types, rebuilt, reads the same */
		if (p.type != PROBLEM_UNKNOWN)
			build_check(p.type, p.detail, 1);
	} else if (rc != PROTO_E_TOO_LONG && rc != PROTO_E_JSON && rc != PROTO_E_PROBLEM_SHAPE &&
		   rc != PROTO_E_PROBLEM_STATUS) {
		__builtin_trap();
	}
	if (size == 0)
		return 0;
	detail = malloc(size);
	if (!detail)
		return 0;
	memcpy(detail, data + 1, size - 1);
	detail[size - 1] = '\0';
	build_check((enum problem_type)(data[0] % (PROBLEM__COUNT + 2)), detail, 0);
	free(detail);
	return 0;
}
