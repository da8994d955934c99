/* Tests proto/jobid.c: client UUID parsing and minting, server job id checking and minting. */
#include <criterion/criterion.h>
#include <string.h>

#include "proto/jobid.h"

struct ucase {
	const char *name;
	const char *in;
	size_t len;
	enum proto_err rc;
	const char *want; /* normalized id on PROTO_OK */
};

#define C(name, lit, rc, want)                                                                     \
	{                                                                                          \
		name, lit, sizeof(lit) - 1, rc, want                                               \
	}

#define RFC_UUID "f81d4fae-7dec-11d0-a765-00a0c91e6bf6"

static const struct ucase uuid_cases[] = {
	C("rfc-example", RFC_UUID, PROTO_OK, RFC_UUID),
	C("uppercase", "F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6", PROTO_OK, RFC_UUID),
	C("mixed-case", "f81D4Fae-7dEc-11d0-A765-00a0C91e6BF6", PROTO_OK, RFC_UUID),
	C("v4", "919108f7-52d1-4320-9bac-f847db4148a8", PROTO_OK,
	  "919108f7-52d1-4320-9bac-f847db4148a8"),
	C("v7", "017F22E2-79B0-7CC3-98C4-DC0C0C07398F", PROTO_OK,
	  "017f22e2-79b0-7cc3-98c4-dc0c0c07398f"),
	C("almost-nil", "00000000-0000-0000-0000-000000000001", PROTO_OK,
	  "00000000-0000-0000-0000-000000000001"),
	C("almost-max", "ffffffff-ffff-ffff-ffff-fffffffffffe", PROTO_OK,
	  "ffffffff-ffff-ffff-ffff-fffffffffffe"),
	C("almost-max-upper", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFF0", PROTO_OK,
	  "ffffffff-ffff-ffff-ffff-fffffffffff0"),
	C("empty", "", PROTO_E_EMPTY, NULL),
	C("nil", "00000000-0000-0000-0000-000000000000", PROTO_E_UUID, NULL),
	C("max", "ffffffff-ffff-ffff-ffff-ffffffffffff", PROTO_E_UUID, NULL),
	C("max-upper", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", PROTO_E_UUID, NULL),
	C("max-mixed", "ffffffff-FFFF-ffff-FFFF-ffffffffffff", PROTO_E_UUID, NULL),
	C("short-35", "f81d4fae-7dec-11d0-a765-00a0c91e6bf", PROTO_E_UUID, NULL),
	C("long-37", RFC_UUID "0", PROTO_E_UUID, NULL),
	C("no-hyphens", "f81d4fae7dec11d0a76500a0c91e6bf6", PROTO_E_UUID, NULL),
	C("braces", "{" RFC_UUID "}", PROTO_E_UUID, NULL),
	C("urn", "urn:uuid:" RFC_UUID, PROTO_E_UUID, NULL),
	C("hyphen-moved", "f81d4fa-e7dec-11d0-a765-00a0c91e6bf6", PROTO_E_UUID, NULL),
	C("hyphen-as-hex", "f81d4fae-7dec-11d0-a765-00a0c91e6bf-", PROTO_E_UUID, NULL),
	C("underscore-sep", "f81d4fae_7dec_11d0_a765_00a0c91e6bf6", PROTO_E_UUID, NULL),
	C("not-hex-g", "g81d4fae-7dec-11d0-a765-00a0c91e6bf6", PROTO_E_UUID, NULL),
	C("not-hex-G", "f81d4fae-7dec-11d0-a765-00a0c91e6bfG", PROTO_E_UUID, NULL),
	C("sign", "+81d4fae-7dec-11d0-a765-00a0c91e6bf6", PROTO_E_UUID, NULL),
	C("nul-inside", "f81d4fae-7dec-11d0-a765-00a0c91e\0bf6", PROTO_E_UUID, NULL),
	C("nul-hyphen", "f81d4fae\0007dec-11d0-a765-00a0c91e6bf6", PROTO_E_UUID, NULL),
	C("space", " f81d4fae-7dec-11d0-a765-00a0c91e6bf", PROTO_E_UUID, NULL),
	C("crlf", "f81d4fae-7dec-11d0-a765-00a0c91e6b\r\n", PROTO_E_UUID, NULL),
	C("non-ascii", "f81d4fae-7dec-11d0-a765-00a0c91e6b\xc3\xa9", PROTO_E_UUID, NULL),
	C("high-bit", "\34681d4fae-7dec-11d0-a765-00a0c91e6bf6", PROTO_E_UUID, NULL),
	C("fullwidth-digit", "\357\274\221d4fae-7dec-11d0-a765-00a0c91e6bf6", PROTO_E_UUID, NULL),
};

Test(jobid_client, table)
{
	for (size_t i = 0; i < sizeof(uuid_cases) / sizeof(uuid_cases[0]); i++) {
		const struct ucase *c = &uuid_cases[i];
		char out[UUID_LEN + 1], again[UUID_LEN + 1];
		enum proto_err rc;

		memset(out, 'x', sizeof(out));
		rc = jobid_client_parse(c->in, c->len, out);
		cr_expect_eq(rc, c->rc, "%s: got %d (%s), want %d", c->name, rc, proto_strerror(rc),
			     c->rc);
		if (rc == PROTO_OK && c->rc == PROTO_OK) {
			cr_expect_str_eq(out, c->want, "%s", c->name);
			/* The normalized form parses to itself. */
			cr_expect_eq(jobid_client_parse(out, strlen(out), again), PROTO_OK);
			cr_expect_str_eq(again, out, "%s", c->name);
		} else if (rc != PROTO_OK) {
			for (size_t j = 0; j < sizeof(out); j++)
				cr_expect_eq(out[j], 'x', "%s: out written on failure", c->name);
		}
	}
}

Test(jobid_client, stops_at_len)
{
	char out[UUID_LEN + 1];
	const char buf[] = RFC_UUID "ffff";

	/* A valid id followed by more bytes outside len is accepted as the first 36. */
	cr_expect_eq(jobid_client_parse(buf, UUID_LEN, out), PROTO_OK);
	cr_expect_str_eq(out, RFC_UUID);
	for (size_t n = 1; n < UUID_LEN; n++)
		cr_expect_eq(jobid_client_parse(buf, n, out), PROTO_E_UUID, "prefix %zu", n);
}

Test(jobid_client, generate)
{
	char prev[UUID_LEN + 1] = "", id[UUID_LEN + 1], out[UUID_LEN + 1];

	for (int i = 0; i < 2000; i++) {
		cr_assert_eq(jobid_client_generate(id), PROTO_OK);
		cr_assert_eq(strlen(id), UUID_LEN);
		cr_assert_eq(jobid_client_parse(id, UUID_LEN, out), PROTO_OK, "%s", id);
		cr_assert_str_eq(out, id, "generated id not lowercase: %s", id);
		cr_assert_eq(id[14], '4', "version: %s", id);
		cr_assert(strchr("89ab", id[19]) != NULL, "variant: %s", id);
		cr_assert_str_neq(id, prev);
		memcpy(prev, id, sizeof(id));
	}
}

struct jcase {
	const char *name;
	const char *in;
	size_t len;
	enum proto_err rc;
};

#define J(name, lit, rc)                                                                           \
	{                                                                                          \
		name, lit, sizeof(lit) - 1, rc                                                     \
	}

static const struct jcase job_cases[] = {
	J("bytes-0-15", "AAECAwQFBgcICQoLDA0ODw", PROTO_OK),
	J("all-zero", "AAAAAAAAAAAAAAAAAAAAAA", PROTO_OK),
	J("all-ones", "_____________________w", PROTO_OK),
	J("url-chars", "-_-_-_-_-_-_-_-_-_-_-Q", PROTO_OK),
	J("last-g", "abcdefghijklmnopqrstug", PROTO_OK),
	J("empty", "", PROTO_E_JOB_ID),
	J("short-21", "AAECAwQFBgcICQoLDA0OD", PROTO_E_JOB_ID),
	J("long-23", "AAECAwQFBgcICQoLDA0ODwA", PROTO_E_JOB_ID),
	J("padded-24", "AAECAwQFBgcICQoLDA0ODw==", PROTO_E_JOB_ID),
	J("pad-in-22", "AAECAwQFBgcICQoLDA0O==", PROTO_E_JOB_ID),
	J("noncanonical", "AAECAwQFBgcICQoLDA0ODx", PROTO_E_JOB_ID),
	J("noncanonical-last-B", "AAAAAAAAAAAAAAAAAAAAAB", PROTO_E_JOB_ID),
	J("std-plus", "+AECAwQFBgcICQoLDA0ODw", PROTO_E_JOB_ID),
	J("std-slash", "/AECAwQFBgcICQoLDA0ODw", PROTO_E_JOB_ID),
	J("dot", "AAECAwQFBgcICQoL.A0ODw", PROTO_E_JOB_ID),
	J("space", "AAECAwQFBgcICQoL A0ODw", PROTO_E_JOB_ID),
	J("nul", "AAECAwQFBgcICQoL\0A0ODw", PROTO_E_JOB_ID),
	J("crlf", "AAECAwQFBgcICQoLDA0O\r\n", PROTO_E_JOB_ID),
	J("non-ascii", "AAECAwQFBgcICQoLDA0\xc3\xa9w", PROTO_E_JOB_ID),
	J("uuid", RFC_UUID, PROTO_E_JOB_ID),
};

Test(jobid_server, table)
{
	for (size_t i = 0; i < sizeof(job_cases) / sizeof(job_cases[0]); i++) {
		const struct jcase *c = &job_cases[i];
		enum proto_err rc = jobid_check(c->in, c->len);

		cr_expect_eq(rc, c->rc, "%s: got %d (%s), want %d", c->name, rc, proto_strerror(rc),
			     c->rc);
	}
}

Test(jobid_server, every_final_char)
{
	char id[JOBID_LEN + 1] = "AAAAAAAAAAAAAAAAAAAAAA";
	const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

	/* 16 bytes leave 4 unused bits in the last character: only A, Q, g, w are canonical. */
	for (const char *p = alphabet; *p; p++) {
		id[JOBID_LEN - 1] = *p;
		cr_expect_eq(jobid_check(id, JOBID_LEN),
			     strchr("AQgw", *p) ? PROTO_OK : PROTO_E_JOB_ID, "last char %c", *p);
	}
}

Test(jobid_server, generate)
{
	char prev[JOBID_LEN + 1] = "", id[JOBID_LEN + 1];

	for (int i = 0; i < 2000; i++) {
		memset(id, 'x', sizeof(id));
		cr_assert_eq(jobid_generate(id), PROTO_OK);
		cr_assert_eq(id[JOBID_LEN], '\0');
		cr_assert_eq(strlen(id), JOBID_LEN);
		cr_assert_eq(jobid_check(id, JOBID_LEN), PROTO_OK, "%s", id);
		cr_assert_str_neq(id, prev);
		memcpy(prev, id, sizeof(id));
	}
}
