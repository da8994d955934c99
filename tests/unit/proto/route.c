/* Tests proto/route.c: building, parsing and verifying the HMAC-tagged public job id. */
#include <criterion/criterion.h>
#include <string.h>

#include "proto/jobid.h"
#include "proto/route.h"

/*
 * Known answers computed independently (Python hmac) with key bytes 0x00..0x1f:
 * base64url(HMAC-SHA256(key, "fsg-route-v1" NUL owner NUL sid NUL jid)[0..16)).
 */
#define JID	  "AAECAwQFBgcICQoLDA0ODw"
#define JID2	  "AAAAAAAAAAAAAAAAAAAAAA"
#define TAG_ALICE "_1t_ClT19f3qv0KIzE0HDA"
#define TAG_BOB	  "mdW4wozcCwUtjpbOnlBecg"
#define R_ALICE	  "dc1-a." JID "." TAG_ALICE
#define R_BOB	  "dc1-a." JID "." TAG_BOB
#define SID32	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define OWNER_ZOE "zo\xc3\xab@example.org"
#define R_ZOE	  SID32 "._____________________w.o1yhuR_JFGE2MRlsDF_VnA"

static unsigned char key[32];

static void key_init(void)
{
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)i;
}

TestSuite(route, .init = key_init);

struct rcase {
	const char *name;
	const char *owner;
	const char *in;
	size_t len;
	enum proto_err rc;
	const char *sid; /* expected on PROTO_OK */
	const char *jid;
};

#define C(name, owner, lit, rc, sid, jid)                                                          \
	{                                                                                          \
		name, owner, lit, sizeof(lit) - 1, rc, sid, jid                                    \
	}
#define BAD(name, lit) C(name, "alice", lit, PROTO_E_ROUTE_SYNTAX, NULL, NULL)

static const struct rcase parse_cases[] = {
	C("valid-alice", "alice", R_ALICE, PROTO_OK, "dc1-a", JID),
	C("valid-bob", "bob", R_BOB, PROTO_OK, "dc1-a", JID),
	C("valid-max-len-utf8-owner", OWNER_ZOE, R_ZOE, PROTO_OK, SID32, "_____________________w"),
	C("other-owner", "bob", R_ALICE, PROTO_E_ROUTE_TAG, NULL, NULL),
	C("owner-prefix", "alic", R_ALICE, PROTO_E_ROUTE_TAG, NULL, NULL),
	C("owner-longer", "alice2", R_ALICE, PROTO_E_ROUTE_TAG, NULL, NULL),
	C("owner-case", "Alice", R_ALICE, PROTO_E_ROUTE_TAG, NULL, NULL),
	C("tag-of-other-owner", "alice", R_BOB, PROTO_E_ROUTE_TAG, NULL, NULL),
	C("tag-first-char-flipped", "alice", "dc1-a." JID ".A1t_ClT19f3qv0KIzE0HDA",
	  PROTO_E_ROUTE_TAG, NULL, NULL),
	C("tag-middle-char-flipped", "alice", "dc1-a." JID "._1t_ClT19f3qX0KIzE0HDA",
	  PROTO_E_ROUTE_TAG, NULL, NULL),
	C("tag-last-char-canonical-change", "alice", "dc1-a." JID "._1t_ClT19f3qv0KIzE0HDQ",
	  PROTO_E_ROUTE_TAG, NULL, NULL),
	C("other-server", "alice", "dc1-b." JID "." TAG_ALICE, PROTO_E_ROUTE_TAG, NULL, NULL),
	C("other-job", "alice", "dc1-a." JID2 "." TAG_ALICE, PROTO_E_ROUTE_TAG, NULL, NULL),
	C("all-zero-tag", "alice", "dc1-a." JID ".AAAAAAAAAAAAAAAAAAAAAA", PROTO_E_ROUTE_TAG, NULL,
	  NULL),
	BAD("empty", ""),
	BAD("one-dot", "."),
	BAD("two-dots", ".."),
	BAD("missing-tag", "dc1-a." JID),
	BAD("missing-tag-dot", "dc1-a." JID "."),
	BAD("missing-server", "." JID "." TAG_ALICE),
	BAD("missing-job", "dc1-a.." TAG_ALICE),
	BAD("extra-dot-end", R_ALICE "."),
	BAD("extra-dot-start", "." R_ALICE),
	BAD("extra-part", R_ALICE ".x"),
	BAD("four-parts-inner", "dc1.a." JID "." TAG_ALICE),
	BAD("server-upper", "DC1-A." JID "." TAG_ALICE),
	BAD("server-leading-hyphen", "-dc1-a." JID "." TAG_ALICE),
	BAD("server-trailing-hyphen", "dc1-a-." JID "." TAG_ALICE),
	BAD("server-underscore", "dc1_a." JID "." TAG_ALICE),
	BAD("server-33", SID32 "a." JID "." TAG_ALICE),
	BAD("job-21", "dc1-a.AAECAwQFBgcICQoLDA0OD." TAG_ALICE),
	BAD("job-23", "dc1-a." JID "A." TAG_ALICE),
	BAD("job-noncanonical", "dc1-a.AAECAwQFBgcICQoLDA0ODx." TAG_ALICE),
	BAD("job-padded", "dc1-a." JID "==." TAG_ALICE),
	BAD("job-std-alphabet", "dc1-a.+AECAwQFBgcICQoLDA0ODw." TAG_ALICE),
	BAD("tag-21", "dc1-a." JID "._1t_ClT19f3qv0KIzE0HD"),
	BAD("tag-23", "dc1-a." JID "." TAG_ALICE "A"),
	BAD("tag-padded", "dc1-a." JID "." TAG_ALICE "=="),
	BAD("tag-std-alphabet", "dc1-a." JID "./1t/ClT19f3qv0KIzE0HDA"),
	BAD("tag-noncanonical", "dc1-a." JID "._1t_ClT19f3qv0KIzE0HDB"),
	BAD("swapped-parts", JID ".dc1-a." TAG_ALICE),
	BAD("nul-in-server", "dc1\0a." JID "." TAG_ALICE),
	BAD("nul-after", R_ALICE "\0"),
	BAD("crlf", R_ALICE "\r\n"),
	BAD("space-before", " " R_ALICE),
	BAD("space-after", R_ALICE " "),
	BAD("non-ascii", "dc1-\xc3\xa1." JID "." TAG_ALICE),
	BAD("overlong", SID32 "._____________________w.o1yhuR_JFGE2MRlsDF_VnAA"),
	C("owner-empty", "", R_ALICE, PROTO_E_OWNER, NULL, NULL),
	C("owner-control", "ali\nce", R_ALICE, PROTO_E_OWNER, NULL, NULL),
	C("owner-bad-utf8", "ali\xc3", R_ALICE, PROTO_E_OWNER, NULL, NULL),
};

Test(route, parse_table)
{
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct rcase *c = &parse_cases[i];
		char sid[SERVER_ID_MAX + 1], jid[JOBID_LEN + 1];
		enum proto_err rc;

		memset(sid, 'x', sizeof(sid));
		memset(jid, 'x', sizeof(jid));
		rc = route_parse(key, sizeof(key), c->owner, strlen(c->owner), c->in, c->len, sid,
				 jid);
		cr_expect_eq(rc, c->rc, "%s: got %d (%s), want %d", c->name, rc, proto_strerror(rc),
			     c->rc);
		if (rc == PROTO_OK && c->rc == PROTO_OK) {
			cr_expect_str_eq(sid, c->sid, "%s", c->name);
			cr_expect_str_eq(jid, c->jid, "%s", c->name);
		} else if (rc != PROTO_OK) {
			cr_expect_eq(sid[0], 'x', "%s: server id written on failure", c->name);
			cr_expect_eq(jid[0], 'x', "%s: job id written on failure", c->name);
		}
	}
}

Test(route, known_answers)
{
	char out[ROUTE_MAX_LEN + 1];

	cr_assert_eq(route_build(key, sizeof(key), "alice", 5, "dc1-a", JID, out, sizeof(out)),
		     PROTO_OK);
	cr_expect_str_eq(out, R_ALICE);
	cr_assert_eq(route_build(key, sizeof(key), "bob", 3, "dc1-a", JID, out, sizeof(out)),
		     PROTO_OK);
	cr_expect_str_eq(out, R_BOB);
	cr_assert_eq(route_build(key, sizeof(key), OWNER_ZOE, strlen(OWNER_ZOE), SID32,
				 "_____________________w", out, sizeof(out)),
		     PROTO_OK);
	cr_expect_str_eq(out, R_ZOE);
	cr_expect_eq(strlen(out), ROUTE_MAX_LEN);
}

Test(route, other_key_does_not_verify)
{
	unsigned char other[32], longer[64];
	char sid[SERVER_ID_MAX + 1], jid[JOBID_LEN + 1];

	memcpy(other, key, sizeof(key));
	other[31] ^= 1;
	cr_expect_eq(
		route_parse(other, sizeof(other), "alice", 5, R_ALICE, strlen(R_ALICE), sid, jid),
		PROTO_E_ROUTE_TAG);
	/*
	 * A key that extends the right one by a non-zero byte is a different HMAC key. (HMAC
	 * zero-pads short keys, so an extension by NUL bytes would verify: keys are configured
	 * as fixed-length random bytes, never as C strings.)
	 */
	memset(longer, 0, sizeof(longer));
	memcpy(longer, key, sizeof(key));
	longer[32] = 0x20;
	cr_expect_eq(route_parse(longer, 33, "alice", 5, R_ALICE, strlen(R_ALICE), sid, jid),
		     PROTO_E_ROUTE_TAG);
	/* Rotation: the caller retries with the previous key, which verifies. */
	cr_expect_eq(route_parse(key, sizeof(key), "alice", 5, R_ALICE, strlen(R_ALICE), sid, jid),
		     PROTO_OK);
}

Test(route, key_length)
{
	char out[ROUTE_MAX_LEN + 1], sid[SERVER_ID_MAX + 1], jid[JOBID_LEN + 1];
	unsigned char big[ROUTE_KEY_MIN * 4];

	memset(big, 7, sizeof(big));
	cr_expect_eq(
		route_build(key, ROUTE_KEY_MIN - 1, "alice", 5, "dc1-a", JID, out, sizeof(out)),
		PROTO_E_ROUTE_KEY);
	cr_expect_eq(route_build(key, 0, "alice", 5, "dc1-a", JID, out, sizeof(out)),
		     PROTO_E_ROUTE_KEY);
	cr_expect_eq(route_build(NULL, 32, "alice", 5, "dc1-a", JID, out, sizeof(out)),
		     PROTO_E_ROUTE_KEY);
	cr_expect_eq(
		route_parse(key, ROUTE_KEY_MIN - 1, "alice", 5, R_ALICE, strlen(R_ALICE), sid, jid),
		PROTO_E_ROUTE_KEY);
	cr_expect_eq(route_parse(NULL, 32, "alice", 5, R_ALICE, strlen(R_ALICE), sid, jid),
		     PROTO_E_ROUTE_KEY);
	/* The key is checked before anything else, even a malformed route. */
	cr_expect_eq(route_parse(key, 1, "alice", 5, "", 0, sid, jid), PROTO_E_ROUTE_KEY);
	/* Exactly the minimum and a long key both work (HMAC hashes long keys first). */
	cr_expect_eq(route_build(big, ROUTE_KEY_MIN, "alice", 5, "dc1-a", JID, out, sizeof(out)),
		     PROTO_OK);
	cr_expect_eq(route_parse(big, ROUTE_KEY_MIN, "alice", 5, out, strlen(out), sid, jid),
		     PROTO_OK);
	cr_expect_eq(route_build(big, sizeof(big), "alice", 5, "dc1-a", JID, out, sizeof(out)),
		     PROTO_OK);
	cr_expect_eq(route_parse(big, sizeof(big), "alice", 5, out, strlen(out), sid, jid),
		     PROTO_OK);
}

struct bcase {
	const char *name;
	const char *owner;
	size_t owner_len;
	const char *sid;
	const char *jid;
	enum proto_err rc;
};

#define B(name, owner, sid, jid, rc)                                                               \
	{                                                                                          \
		name, owner, sizeof(owner) - 1, sid, jid, rc                                       \
	}

static const struct bcase build_cases[] = {
	B("valid", "alice", "dc1-a", JID, PROTO_OK),
	B("one-char-server", "alice", "a", JID, PROTO_OK),
	B("owner-empty", "", "dc1-a", JID, PROTO_E_OWNER),
	B("owner-nul", "al\0ce", "dc1-a", JID, PROTO_E_OWNER),
	B("owner-del", "al\177ce", "dc1-a", JID, PROTO_E_OWNER),
	B("server-empty", "alice", "", JID, PROTO_E_SERVER_ID),
	B("server-33", "alice", SID32 "a", JID, PROTO_E_SERVER_ID),
	B("server-upper", "alice", "Dc1", JID, PROTO_E_SERVER_ID),
	B("server-dot", "alice", "dc1.a", JID, PROTO_E_SERVER_ID),
	B("server-hyphen-end", "alice", "dc1-", JID, PROTO_E_SERVER_ID),
	B("job-empty", "alice", "dc1-a", "", PROTO_E_JOB_ID),
	B("job-21", "alice", "dc1-a", "AAECAwQFBgcICQoLDA0OD", PROTO_E_JOB_ID),
	B("job-23", "alice", "dc1-a", JID "A", PROTO_E_JOB_ID),
	B("job-noncanonical", "alice", "dc1-a", "AAECAwQFBgcICQoLDA0ODx", PROTO_E_JOB_ID),
	B("job-dot", "alice", "dc1-a", "AAECAwQFBgcICQoLDA0O.w", PROTO_E_JOB_ID),
};

Test(route, build_table)
{
	for (size_t i = 0; i < sizeof(build_cases) / sizeof(build_cases[0]); i++) {
		const struct bcase *c = &build_cases[i];
		char out[ROUTE_MAX_LEN + 1];
		enum proto_err rc;

		memset(out, 'x', sizeof(out));
		rc = route_build(key, sizeof(key), c->owner, c->owner_len, c->sid, c->jid, out,
				 sizeof(out));
		cr_expect_eq(rc, c->rc, "%s: got %d (%s), want %d", c->name, rc, proto_strerror(rc),
			     c->rc);
		if (rc != PROTO_OK)
			cr_expect_eq(out[0], 'x', "%s: out written on failure", c->name);
	}
	{
		char out[8];

		cr_expect_eq(route_build(key, sizeof(key), "alice", 5, NULL, JID, out, sizeof(out)),
			     PROTO_E_SERVER_ID);
		cr_expect_eq(route_build(key, sizeof(key), "alice", 5, "a", NULL, out, sizeof(out)),
			     PROTO_E_JOB_ID);
	}
}

Test(route, build_buffer_boundary)
{
	char out[ROUTE_MAX_LEN + 1];
	size_t need = strlen(R_ALICE) + 1;

	memset(out, 'x', sizeof(out));
	cr_expect_eq(route_build(key, sizeof(key), "alice", 5, "dc1-a", JID, out, need - 1),
		     PROTO_E_BUFFER);
	cr_expect_eq(out[0], 'x', "out written on failure");
	cr_expect_eq(route_build(key, sizeof(key), "alice", 5, "dc1-a", JID, out, 0),
		     PROTO_E_BUFFER);
	cr_assert_eq(route_build(key, sizeof(key), "alice", 5, "dc1-a", JID, out, need), PROTO_OK);
	cr_expect_str_eq(out, R_ALICE);
}

Test(route, round_trip)
{
	static const char *const servers[] = {"a",     "0",   "dc1-a",
					      "a-b-c", SID32, "0123456789abcdefghijklmnopqrstuv"};
	char out[ROUTE_MAX_LEN + 1], sid[SERVER_ID_MAX + 1], jid[JOBID_LEN + 1], job[JOBID_LEN + 1];

	for (int i = 0; i < 300; i++) {
		const char *server = servers[i % (sizeof(servers) / sizeof(servers[0]))];

		cr_assert_eq(jobid_generate(job), PROTO_OK);
		cr_assert_eq(route_build(key, sizeof(key), OWNER_ZOE, strlen(OWNER_ZOE), server,
					 job, out, sizeof(out)),
			     PROTO_OK);
		cr_assert_leq(strlen(out), ROUTE_MAX_LEN);
		cr_assert_eq(route_parse(key, sizeof(key), OWNER_ZOE, strlen(OWNER_ZOE), out,
					 strlen(out), sid, jid),
			     PROTO_OK, "%s", out);
		cr_assert_str_eq(sid, server);
		cr_assert_str_eq(jid, job);
		/* The same route never verifies for another owner. */
		cr_assert_eq(route_parse(key, sizeof(key), "zoe@example.org", 15, out, strlen(out),
					 sid, jid),
			     PROTO_E_ROUTE_TAG, "%s", out);
	}
}

Test(route, every_tag_byte_matters)
{
	char buf[sizeof(R_ALICE)], sid[SERVER_ID_MAX + 1], jid[JOBID_LEN + 1];
	const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t tag_off = sizeof(R_ALICE) - 1 - ROUTE_TAG_LEN;

	/* Changing any of the first 21 tag characters to any other character is refused. */
	for (size_t pos = tag_off; pos < tag_off + ROUTE_TAG_LEN - 1; pos++) {
		for (const char *p = alphabet; *p; p++) {
			if (*p == R_ALICE[pos])
				continue;
			memcpy(buf, R_ALICE, sizeof(buf));
			buf[pos] = *p;
			cr_expect_eq(route_parse(key, sizeof(key), "alice", 5, buf, strlen(buf),
						 sid, jid),
				     PROTO_E_ROUTE_TAG, "%s", buf);
		}
	}
}
