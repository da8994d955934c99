/* Tests proto/problem.c: the type table, exact bodies, every rejection, limits, round trips. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/problem.h"

/* A string literal and its length, NUL bytes inside included. */
#define S(lit) lit, sizeof(lit) - 1
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define TYPE(slug) "\"type\":\"" PROBLEM_TYPE_PREFIX slug "\""

/* ---- the table ---- */

struct expected_info {
	enum problem_type t;
	int status;
	const char *slug;
	enum problem_retry retry;
};

/* The protocol's contract: a changed slug, status or retry breaks deployed clients. */
static const struct expected_info infos[] = {
	{PROBLEM_MALFORMED_REQUEST, 400, "malformed-request", PROBLEM_RETRY_NEVER},
	{PROBLEM_AMBIGUOUS_FRAMING, 400, "ambiguous-framing", PROBLEM_RETRY_NEVER},
	{PROBLEM_INVALID_HEADER, 400, "invalid-header", PROBLEM_RETRY_NEVER},
	{PROBLEM_INVALID_METADATA, 400, "invalid-metadata", PROBLEM_RETRY_NEVER},
	{PROBLEM_INVALID_CHECKSUM, 400, "invalid-checksum", PROBLEM_RETRY_NEVER},
	{PROBLEM_CHECKSUM_ALGORITHM, 400, "unsupported-checksum-algorithm", PROBLEM_RETRY_NEVER},
	{PROBLEM_INVALID_JOB_ID, 400, "invalid-job-id", PROBLEM_RETRY_NEVER},
	{PROBLEM_UNAUTHORIZED, 401, "unauthorized", PROBLEM_RETRY_NEVER},
	{PROBLEM_CLIENT_CERTIFICATE, 403, "client-certificate-required", PROBLEM_RETRY_NEVER},
	{PROBLEM_FORBIDDEN, 403, "forbidden", PROBLEM_RETRY_NEVER},
	{PROBLEM_NOT_FOUND, 404, "not-found", PROBLEM_RETRY_NEVER},
	{PROBLEM_METHOD_NOT_ALLOWED, 405, "method-not-allowed", PROBLEM_RETRY_NEVER},
	{PROBLEM_REQUEST_TIMEOUT, 408, "request-timeout", PROBLEM_RETRY_RESYNC},
	{PROBLEM_OFFSET_MISMATCH, 409, "offset-mismatch", PROBLEM_RETRY_RESYNC},
	{PROBLEM_JOB_CONFLICT, 409, "job-id-conflict", PROBLEM_RETRY_NEVER},
	{PROBLEM_NOT_COMMITTED, 409, "not-committed", PROBLEM_RETRY_NEVER},
	{PROBLEM_UPLOAD_EXPIRED, 410, "upload-expired", PROBLEM_RETRY_NEW_UPLOAD},
	{PROBLEM_LENGTH_REQUIRED, 411, "length-required", PROBLEM_RETRY_NEVER},
	{PROBLEM_UNSUPPORTED_VERSION, 412, "unsupported-version", PROBLEM_RETRY_NEVER},
	{PROBLEM_TOO_LARGE, 413, "too-large", PROBLEM_RETRY_NEVER},
	{PROBLEM_URI_TOO_LONG, 414, "uri-too-long", PROBLEM_RETRY_NEVER},
	{PROBLEM_UNSUPPORTED_MEDIA_TYPE, 415, "unsupported-media-type", PROBLEM_RETRY_NEVER},
	{PROBLEM_TOO_MANY_REQUESTS, 429, "too-many-requests", PROBLEM_RETRY_DELAY},
	{PROBLEM_HEADERS_TOO_LARGE, 431, "headers-too-large", PROBLEM_RETRY_NEVER},
	{PROBLEM_CHECKSUM_MISMATCH, 460, "checksum-mismatch", PROBLEM_RETRY_RESYNC},
	{PROBLEM_DIGEST_MISMATCH, 460, "digest-mismatch", PROBLEM_RETRY_NEW_UPLOAD},
	{PROBLEM_INTERNAL, 500, "internal-error", PROBLEM_RETRY_DELAY},
	{PROBLEM_UPSTREAM_FAILED, 502, "upstream-failed", PROBLEM_RETRY_RESYNC},
	{PROBLEM_NO_SERVER, 503, "no-server-available", PROBLEM_RETRY_DELAY},
	{PROBLEM_DRAINING, 503, "draining", PROBLEM_RETRY_DELAY},
	{PROBLEM_UPSTREAM_TIMEOUT, 504, "upstream-timeout", PROBLEM_RETRY_RESYNC},
	{PROBLEM_INSUFFICIENT_STORAGE, 507, "insufficient-storage", PROBLEM_RETRY_DELAY},
};

Test(problem, table_matches_the_protocol)
{
	cr_assert_eq(COUNT(infos), PROBLEM__COUNT - 1, "every type listed once");
	for (size_t i = 0; i < COUNT(infos); i++) {
		const struct problem_info *info = problem_info(infos[i].t);

		cr_assert_not_null(info, "type %d", infos[i].t);
		cr_expect_eq(info->status, infos[i].status, "%s", infos[i].slug);
		cr_expect_str_eq(info->slug, infos[i].slug);
		cr_expect_eq(info->retry, infos[i].retry, "%s", infos[i].slug);
		cr_expect_not_null(info->title);
		cr_expect_gt(strlen(info->title), 0);
	}
}

Test(problem, slugs_are_unique_kebab_case)
{
	for (int t = 1; t < PROBLEM__COUNT; t++) {
		const char *slug = problem_info(t)->slug;
		size_t n = strlen(slug);

		cr_assert_gt(n, 0);
		cr_expect_neq(slug[0], '-', "%s", slug);
		cr_expect_neq(slug[n - 1], '-', "%s", slug);
		cr_expect_null(strstr(slug, "--"), "%s", slug);
		for (size_t i = 0; i < n; i++)
			cr_expect((slug[i] >= 'a' && slug[i] <= 'z') || slug[i] == '-', "%s", slug);
		for (int u = t + 1; u < PROBLEM__COUNT; u++)
			cr_expect_str_neq(slug, problem_info(u)->slug);
	}
}

Test(problem, info_and_retry_name_bounds)
{
	cr_expect_null(problem_info(PROBLEM_UNKNOWN));
	cr_expect_null(problem_info(PROBLEM__COUNT));
	cr_expect_null(problem_info((enum problem_type)-1));
	cr_expect_null(problem_info((enum problem_type)1000));
	cr_expect_str_eq(problem_retry_name(PROBLEM_RETRY_NEVER), "never");
	cr_expect_str_eq(problem_retry_name(PROBLEM_RETRY_DELAY), "delay");
	cr_expect_str_eq(problem_retry_name(PROBLEM_RETRY_RESYNC), "resync");
	cr_expect_str_eq(problem_retry_name(PROBLEM_RETRY_NEW_UPLOAD), "new-upload");
	cr_expect_null(problem_retry_name((enum problem_retry)4));
	cr_expect_null(problem_retry_name((enum problem_retry)-1));
}

/* ---- problem_build ---- */

struct build_case {
	enum problem_type t;
	const char *detail;
	const char *body; /* NULL: build must fail */
};

static const struct build_case builds[] = {
	{PROBLEM_OFFSET_MISMATCH, NULL,
	 "{" TYPE("offset-mismatch") ",\"title\":\"Upload offset mismatch\",\"status\":409,"
	 "\"retry\":\"resync\"}"},
	{PROBLEM_NOT_FOUND, "no such job",
	 "{" TYPE("not-found") ",\"title\":\"Job not found\",\"status\":404,\"retry\":\"never\","
	 "\"detail\":\"no such job\"}"},
	{PROBLEM_DIGEST_MISMATCH, "",
	 "{" TYPE("digest-mismatch") ",\"title\":\"Digest mismatch\",\"status\":460,"
	 "\"retry\":\"new-upload\",\"detail\":\"\"}"},
	/* quotes, backslash and control characters are escaped, UTF-8 passes through */
	{PROBLEM_INTERNAL, "a\"b\\c\n\x01 \xc3\xa9",
	 "{" TYPE("internal-error") ",\"title\":\"Internal error\",\"status\":500,"
	 "\"retry\":\"delay\",\"detail\":\"a\\\"b\\\\c\\n\\u0001 \xc3\xa9\"}"},
	{PROBLEM_UNKNOWN, NULL, NULL},
	{PROBLEM_UNKNOWN, "x", NULL},
	{PROBLEM__COUNT, NULL, NULL},
	{(enum problem_type)-1, NULL, NULL},
	/* not UTF-8: a lone continuation byte, an overlong NUL, a surrogate, a cut sequence */
	{PROBLEM_INTERNAL, "\x80", NULL},
	{PROBLEM_INTERNAL, "\xc0\x80", NULL},
	{PROBLEM_INTERNAL, "\xed\xa0\x80", NULL},
	{PROBLEM_INTERNAL, "ab\xe2\x82", NULL},
};

Test(problem, build_exact_bodies)
{
	for (size_t i = 0; i < COUNT(builds); i++) {
		size_t len = 12345;
		char *body = problem_build(builds[i].t, builds[i].detail, &len);

		if (!builds[i].body) {
			cr_expect_null(body, "case %zu", i);
			cr_expect_eq(len, 12345, "case %zu: len untouched", i);
			free(body);
			continue;
		}
		cr_assert_not_null(body, "case %zu", i);
		cr_expect_str_eq(body, builds[i].body, "case %zu", i);
		cr_expect_eq(len, strlen(builds[i].body), "case %zu", i);
		free(body);
	}
	cr_expect_null(problem_build(PROBLEM__COUNT, NULL, NULL));
}

Test(problem, build_then_parse_every_type)
{
	for (enum problem_type t = 1; t < PROBLEM__COUNT; t++) {
		for (int with_detail = 0; with_detail < 2; with_detail++) {
			const char *detail = with_detail ? "d\xc3\xa9tail \xf0\x9f\x96\xa8" : NULL;
			struct problem p;
			size_t len;
			char *body = problem_build(t, detail, &len);

			cr_assert_not_null(body);
			cr_assert_eq(problem_parse(body, len, &p), PROTO_OK, "%s", body);
			cr_expect_eq(p.type, t);
			cr_expect_eq(p.status, problem_info(t)->status);
			cr_expect_eq(p.retry, problem_info(t)->retry);
			cr_expect_str_eq(p.detail, detail ? detail : "");
			free(body);
		}
	}
}

/* A long detail is cut at PROBLEM_DETAIL_MAX bytes, never inside a UTF-8 sequence. */
static void detail_cut_check(size_t ascii_before, const char *tail, size_t want_len)
{
	char detail[PROBLEM_DETAIL_MAX + 64];
	struct problem p;
	size_t len;
	char *body;

	memset(detail, 'a', ascii_before);
	strcpy(detail + ascii_before, tail);
	body = problem_build(PROBLEM_FORBIDDEN, detail, &len);
	cr_assert_not_null(body);
	cr_assert_eq(problem_parse(body, len, &p), PROTO_OK);
	cr_expect_eq(strlen(p.detail), want_len, "prefix %zu + \"%s\"", ascii_before, tail);
	cr_expect_eq(memcmp(p.detail, detail, want_len), 0);
	free(body);
}

Test(problem, build_cuts_detail_at_utf8_boundary)
{
	const char *euro = "\xe2\x82\xac"; /* 3 bytes */
	const char *printer = "\xf0\x9f\x96\xa8"; /* 4 bytes */

	detail_cut_check(PROBLEM_DETAIL_MAX, "", PROBLEM_DETAIL_MAX);
	detail_cut_check(PROBLEM_DETAIL_MAX, "b", PROBLEM_DETAIL_MAX);
	detail_cut_check(PROBLEM_DETAIL_MAX - 3, euro, PROBLEM_DETAIL_MAX);
	detail_cut_check(PROBLEM_DETAIL_MAX - 2, euro, PROBLEM_DETAIL_MAX - 2);
	detail_cut_check(PROBLEM_DETAIL_MAX - 1, euro, PROBLEM_DETAIL_MAX - 1);
	detail_cut_check(PROBLEM_DETAIL_MAX - 3, printer, PROBLEM_DETAIL_MAX - 3);
	detail_cut_check(PROBLEM_DETAIL_MAX - 4, printer, PROBLEM_DETAIL_MAX);
	detail_cut_check(PROBLEM_DETAIL_MAX - 1, "\xc3\xa9", PROBLEM_DETAIL_MAX - 1);
}

/* Invalid UTF-8 anywhere refuses the build, also where the cut would have dropped it. */
Test(problem, build_refuses_non_utf8_past_the_cut)
{
	static const struct {
		size_t ascii;
		const char *tail;
	} cases[] = {
		{600, "\xa9"},                  /* lone continuation far past the cut */
		{509, "\xa9\xa9\xa9" "bbbb"}, /* orphans straddling the cut */
		{500, "\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9"},
		{510, "\xf0\x9f\x96"},           /* sequence cut short by the end */
		{700, "\xc0\x80"},               /* overlong NUL */
	};

	for (size_t i = 0; i < COUNT(cases); i++) {
		char detail[1024];

		memset(detail, 'a', cases[i].ascii);
		strcpy(detail + cases[i].ascii, cases[i].tail);
		cr_expect_null(problem_build(PROBLEM_INTERNAL, detail, NULL), "case %zu", i);
	}
}

/* ---- problem_parse ---- */

struct parse_case {
	const char *name;
	const char *body;
	size_t len;
	enum proto_err rc;
	enum problem_type type; /* the rest only when rc == PROTO_OK */
	int status;
	enum problem_retry retry;
	const char *detail;
};

#define OK(name, body, t, st, r, d) {name, S(body), PROTO_OK, t, st, r, d}
#define BAD(name, body, rc) {name, S(body), rc, 0, 0, 0, NULL}

static const struct parse_case parses[] = {
	OK("minimal foreign", "{\"status\":400}", PROBLEM_UNKNOWN, 400, PROBLEM_RETRY_NEVER, ""),
	OK("ours", "{" TYPE("offset-mismatch") ",\"status\":409}", PROBLEM_OFFSET_MISMATCH, 409,
	   PROBLEM_RETRY_RESYNC, ""),
	OK("member order free", "{\"status\":507,\"detail\":\"full\"," TYPE("insufficient-storage")
	   "}", PROBLEM_INSUFFICIENT_STORAGE, 507, PROBLEM_RETRY_DELAY, "full"),
	OK("whitespace", " \r\n\t{ \"status\" : 404 ,\n" TYPE("not-found") " } \n",
	   PROBLEM_NOT_FOUND, 404, PROBLEM_RETRY_NEVER, ""),
	OK("all members", "{" TYPE("forbidden") ",\"title\":\"t\",\"status\":403,\"detail\":\"d\","
	   "\"instance\":\"/x\",\"retry\":\"never\"}", PROBLEM_FORBIDDEN, 403,
	   PROBLEM_RETRY_NEVER, "d"),
	OK("about:blank", "{\"type\":\"about:blank\",\"status\":503}", PROBLEM_UNKNOWN, 503,
	   PROBLEM_RETRY_DELAY, ""),
	OK("foreign type", "{\"type\":\"https://example.com/p/out-of-credit\",\"status\":403}",
	   PROBLEM_UNKNOWN, 403, PROBLEM_RETRY_NEVER, ""),
	OK("prefix alone", "{\"type\":\"" PROBLEM_TYPE_PREFIX "\",\"status\":400}",
	   PROBLEM_UNKNOWN, 400, PROBLEM_RETRY_NEVER, ""),
	OK("slug case differs", "{\"type\":\"" PROBLEM_TYPE_PREFIX "Not-Found\",\"status\":404}",
	   PROBLEM_UNKNOWN, 404, PROBLEM_RETRY_NEVER, ""),
	OK("prefix case differs", "{\"type\":\"URN:fs-gateway:problem:not-found\",\"status\":404}",
	   PROBLEM_UNKNOWN, 404, PROBLEM_RETRY_NEVER, ""),
	OK("slug with suffix", "{\"type\":\"" PROBLEM_TYPE_PREFIX "not-found-x\",\"status\":404}",
	   PROBLEM_UNKNOWN, 404, PROBLEM_RETRY_NEVER, ""),
	OK("slug prefix only", "{\"type\":\"" PROBLEM_TYPE_PREFIX "not-foun\",\"status\":404}",
	   PROBLEM_UNKNOWN, 404, PROBLEM_RETRY_NEVER, ""),
	OK("escaped slug is the same string", "{\"type\":\"" PROBLEM_TYPE_PREFIX
	   "not\\u002dfound\",\"status\":404}", PROBLEM_NOT_FOUND, 404, PROBLEM_RETRY_NEVER, ""),
	/* retry: body wins when known, else the type, else by status */
	OK("retry from body", "{" TYPE("not-found") ",\"status\":404,\"retry\":\"delay\"}",
	   PROBLEM_NOT_FOUND, 404, PROBLEM_RETRY_DELAY, ""),
	OK("retry new-upload", "{\"status\":400,\"retry\":\"new-upload\"}", PROBLEM_UNKNOWN, 400,
	   PROBLEM_RETRY_NEW_UPLOAD, ""),
	OK("unknown retry -> type", "{" TYPE("upload-expired") ",\"status\":410,\"retry\":\"x\"}",
	   PROBLEM_UPLOAD_EXPIRED, 410, PROBLEM_RETRY_NEW_UPLOAD, ""),
	OK("retry case differs", "{\"status\":400,\"retry\":\"Delay\"}", PROBLEM_UNKNOWN, 400,
	   PROBLEM_RETRY_NEVER, ""),
	OK("retry prefix", "{\"status\":400,\"retry\":\"del\"}", PROBLEM_UNKNOWN, 400,
	   PROBLEM_RETRY_NEVER, ""),
	OK("foreign 429 delays", "{\"status\":429}", PROBLEM_UNKNOWN, 429, PROBLEM_RETRY_DELAY, ""),
	OK("foreign 500 delays", "{\"status\":500}", PROBLEM_UNKNOWN, 500, PROBLEM_RETRY_DELAY, ""),
	OK("foreign 599 delays", "{\"status\":599}", PROBLEM_UNKNOWN, 599, PROBLEM_RETRY_DELAY, ""),
	OK("foreign 499 never", "{\"status\":499}", PROBLEM_UNKNOWN, 499, PROBLEM_RETRY_NEVER, ""),
	/* other members, of any type, are ignored */
	OK("extensions", "{\"status\":400,\"x\":[1,{\"a\":null}],\"y\":true,\"title2\":1}",
	   PROBLEM_UNKNOWN, 400, PROBLEM_RETRY_NEVER, ""),
	OK("detail escapes", "{\"status\":400,\"detail\":\"a\\nb\\u00e9\\ud83d\\udda8\"}",
	   PROBLEM_UNKNOWN, 400, PROBLEM_RETRY_NEVER, "a\nb\xc3\xa9\xf0\x9f\x96\xa8"),
	OK("detail raw utf-8", "{\"status\":400,\"detail\":\"\xe2\x82\xac\"}", PROBLEM_UNKNOWN, 400,
	   PROBLEM_RETRY_NEVER, "\xe2\x82\xac"),
	OK("empty detail", "{\"status\":400,\"detail\":\"\"}", PROBLEM_UNKNOWN, 400,
	   PROBLEM_RETRY_NEVER, ""),

	BAD("empty", "", PROTO_E_JSON),
	BAD("spaces", "   ", PROTO_E_JSON),
	BAD("truncated", "{\"status\":400", PROTO_E_JSON),
	BAD("trailing garbage", "{\"status\":400}x", PROTO_E_JSON),
	BAD("two objects", "{\"status\":400}{\"status\":400}", PROTO_E_JSON),
	BAD("trailing comma", "{\"status\":400,}", PROTO_E_JSON),
	BAD("single quotes", "{'status':400}", PROTO_E_JSON),
	BAD("comment", "{\"status\":400/**/}", PROTO_E_JSON),
	BAD("NaN", "{\"status\":NaN}", PROTO_E_JSON),
	BAD("huge integer", "{\"status\":99999999999999999999}", PROTO_E_JSON),
	BAD("huge real", "{\"status\":1e999}", PROTO_E_JSON),
	/* two readers could each take a different copy of a repeated member */
	BAD("duplicate status", "{\"status\":400,\"status\":500}", PROTO_E_JSON),
	BAD("duplicate type", "{" TYPE("forbidden") "," TYPE("not-found") ",\"status\":403}",
	    PROTO_E_JSON),
	BAD("duplicate via escape", "{\"status\":400,\"st\\u0061tus\":500}", PROTO_E_JSON),
	BAD("duplicate nested", "{\"status\":400,\"x\":{\"a\":1,\"a\":2}}", PROTO_E_JSON),
	/* NUL: escaped, raw in a string, raw outside, in a member name */
	BAD("escaped NUL in detail", "{\"status\":400,\"detail\":\"ab\\u0000cd\"}", PROTO_E_JSON),
	BAD("escaped NUL in type", "{\"type\":\"" PROBLEM_TYPE_PREFIX "not-found\\u0000x\","
	    "\"status\":404}", PROTO_E_JSON),
	BAD("escaped NUL in name", "{\"status\\u0000x\":1,\"status\":400}", PROTO_E_JSON),
	BAD("raw NUL in detail", "{\"status\":400,\"detail\":\"a\0b\"}", PROTO_E_JSON),
	BAD("raw NUL after", "{\"status\":400}\0", PROTO_E_JSON),
	BAD("raw newline in string", "{\"status\":400,\"detail\":\"a\nb\"}", PROTO_E_JSON),
	/* not UTF-8 */
	BAD("bad utf-8", "{\"status\":400,\"detail\":\"\xff\"}", PROTO_E_JSON),
	BAD("overlong utf-8", "{\"status\":400,\"detail\":\"\xc0\xaf\"}", PROTO_E_JSON),
	BAD("utf-8 surrogate", "{\"status\":400,\"detail\":\"\xed\xa0\x80\"}", PROTO_E_JSON),
	BAD("lone escaped surrogate", "{\"status\":400,\"detail\":\"\\ud800\"}", PROTO_E_JSON),
	BAD("BOM", "\xef\xbb\xbf{\"status\":400}", PROTO_E_JSON),

	BAD("array", "[{\"status\":400}]", PROTO_E_PROBLEM_SHAPE),
	BAD("string", "\"status\"", PROTO_E_PROBLEM_SHAPE),
	BAD("number", "400", PROTO_E_PROBLEM_SHAPE),
	BAD("null", "null", PROTO_E_PROBLEM_SHAPE),
	BAD("type number", "{\"type\":1,\"status\":400}", PROTO_E_PROBLEM_SHAPE),
	BAD("type null", "{\"type\":null,\"status\":400}", PROTO_E_PROBLEM_SHAPE),
	BAD("title object", "{\"title\":{},\"status\":400}", PROTO_E_PROBLEM_SHAPE),
	BAD("detail array", "{\"detail\":[\"x\"],\"status\":400}", PROTO_E_PROBLEM_SHAPE),
	BAD("instance bool", "{\"instance\":true,\"status\":400}", PROTO_E_PROBLEM_SHAPE),
	BAD("retry number", "{\"retry\":1,\"status\":400}", PROTO_E_PROBLEM_SHAPE),
	BAD("status string", "{\"status\":\"400\"}", PROTO_E_PROBLEM_SHAPE),
	BAD("status real", "{\"status\":400.0}", PROTO_E_PROBLEM_SHAPE),
	BAD("status exponent", "{\"status\":4e2}", PROTO_E_PROBLEM_SHAPE),
	BAD("status null", "{\"status\":null}", PROTO_E_PROBLEM_SHAPE),
	BAD("status bool", "{\"status\":true}", PROTO_E_PROBLEM_SHAPE),
	BAD("shape before status", "{\"detail\":1}", PROTO_E_PROBLEM_SHAPE),

	BAD("no status", "{" TYPE("not-found") "}", PROTO_E_PROBLEM_STATUS),
	BAD("empty object", "{}", PROTO_E_PROBLEM_STATUS),
	BAD("status 399", "{\"status\":399}", PROTO_E_PROBLEM_STATUS),
	BAD("status 600", "{\"status\":600}", PROTO_E_PROBLEM_STATUS),
	BAD("status 200", "{\"status\":200}", PROTO_E_PROBLEM_STATUS),
	BAD("status 0", "{\"status\":0}", PROTO_E_PROBLEM_STATUS),
	BAD("status -404", "{\"status\":-404}", PROTO_E_PROBLEM_STATUS),
	BAD("status 2^32+404", "{\"status\":4294967700}", PROTO_E_PROBLEM_STATUS),
	BAD("status wrong for type", "{" TYPE("not-found") ",\"status\":500}",
	    PROTO_E_PROBLEM_STATUS),
	BAD("460 type at 409", "{" TYPE("checksum-mismatch") ",\"status\":409}",
	    PROTO_E_PROBLEM_STATUS),
};

static void parse_case_check(const struct parse_case *c)
{
	struct problem p;
	enum proto_err rc;

	memset(&p, 0x5a, sizeof(p));
	rc = problem_parse(c->body, c->len, &p);
	cr_expect_eq(rc, c->rc, "%s: got %d (%s), want %d", c->name, rc, proto_strerror(rc), c->rc);
	if (rc != PROTO_OK || c->rc != PROTO_OK) {
		cr_expect_eq(p.status, 0x5a5a5a5a, "%s: out untouched on error", c->name);
		return;
	}
	cr_expect_eq(p.type, c->type, "%s", c->name);
	cr_expect_eq(p.status, c->status, "%s", c->name);
	cr_expect_eq(p.retry, c->retry, "%s", c->name);
	cr_expect_str_eq(p.detail, c->detail, "%s", c->name);
}

Test(problem, parse_table)
{
	for (size_t i = 0; i < COUNT(parses); i++)
		parse_case_check(&parses[i]);
}

Test(problem, body_size_limit)
{
	static char body[PROBLEM_BODY_MAX + 2];
	const char *head = "{\"status\":400,\"detail\":\"";
	size_t hl = strlen(head);
	struct problem p;

	/* exactly PROBLEM_BODY_MAX bytes: accepted, detail cut */
	memcpy(body, head, hl);
	memset(body + hl, 'x', PROBLEM_BODY_MAX - hl - 2);
	memcpy(body + PROBLEM_BODY_MAX - 2, "\"}", 2);
	cr_assert_eq(problem_parse(body, PROBLEM_BODY_MAX, &p), PROTO_OK);
	cr_expect_eq(strlen(p.detail), PROBLEM_DETAIL_MAX);
	cr_expect_eq(p.detail[0], 'x');
	/* one byte more, even trailing whitespace, is refused before parsing */
	body[PROBLEM_BODY_MAX] = ' ';
	cr_expect_eq(problem_parse(body, PROBLEM_BODY_MAX + 1, &p), PROTO_E_TOO_LONG);
	cr_expect_eq(problem_parse(body, (size_t)-1, &p), PROTO_E_TOO_LONG);
}

Test(problem, parse_cuts_detail_at_utf8_boundary)
{
	/* the euro sign straddles byte PROBLEM_DETAIL_MAX at each offset in turn */
	for (size_t before = PROBLEM_DETAIL_MAX - 4; before <= PROBLEM_DETAIL_MAX; before++) {
		char body[PROBLEM_DETAIL_MAX + 64];
		struct problem p;
		size_t n = 0, want;

		n += (size_t)sprintf(body, "{\"status\":400,\"detail\":\"");
		memset(body + n, 'a', before);
		n += before;
		n += (size_t)sprintf(body + n, "\xe2\x82\xac" "bb\"}");
		cr_assert_eq(problem_parse(body, n, &p), PROTO_OK);
		/* the 'b's after the euro sign are ASCII: a cut there keeps PROBLEM_DETAIL_MAX */
		want = before + 3 <= PROBLEM_DETAIL_MAX ? PROBLEM_DETAIL_MAX : before;
		cr_expect_eq(strlen(p.detail), want, "before %zu", before);
		cr_expect_eq(p.detail[PROBLEM_DETAIL_MAX], '\0');
	}
}

/* Builds {"status":400,"x":[[...]]} nested depth levels deep, the object itself counting one. */
static size_t nested(char *buf, int depth)
{
	size_t n = (size_t)sprintf(buf, "{\"status\":400,\"x\":");

	for (int i = 1; i < depth; i++)
		buf[n++] = '[';
	for (int i = 1; i < depth; i++)
		buf[n++] = ']';
	buf[n++] = '}';
	return n;
}

Test(problem, nesting_limit)
{
	static char buf[PROBLEM_BODY_MAX];
	struct problem p;
	size_t n;

	/* brackets inside strings do not count */
	cr_expect_eq(problem_parse(S("{\"status\":400,\"detail\":\"[[[[[[[[[[[[[[[[[[[["
				     "\\\"{{{{{{{{{{{{{{{{{{{{{{\"}"),
				   &p),
		     PROTO_OK);
	cr_expect_str_eq(p.detail, "[[[[[[[[[[[[[[[[[[[[\"{{{{{{{{{{{{{{{{{{{{{{");
	n = nested(buf, 2);
	cr_expect_eq(problem_parse(buf, n, &p), PROTO_OK, "%.*s", (int)n, buf);
	n = nested(buf, PROBLEM_DEPTH_MAX);
	cr_expect_eq(problem_parse(buf, n, &p), PROTO_OK, "%.*s", (int)n, buf);
	n = nested(buf, PROBLEM_DEPTH_MAX + 1);
	cr_expect_eq(problem_parse(buf, n, &p), PROTO_E_JSON, "%.*s", (int)n, buf);
	/* far deeper than jansson's own limit, still within the size cap */
	n = 0;
	buf[n++] = '{';
	memcpy(buf + n, "\"x\":", 4);
	n += 4;
	while (n < sizeof(buf) - 1)
		buf[n++] = '[';
	cr_expect_eq(problem_parse(buf, n, &p), PROTO_E_JSON);
}

Test(problem, out_untouched_and_input_not_read_past_len)
{
	/* a valid body followed by bytes outside len that would change it */
	const char body[] = "{\"status\":400}{\"status\":500}";
	struct problem p;

	cr_expect_eq(problem_parse(body, 14, &p), PROTO_OK);
	cr_expect_eq(p.status, 400);
	cr_expect_eq(problem_parse(body, 13, &p), PROTO_E_JSON);
}
