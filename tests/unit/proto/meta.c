/* Tests proto/meta.c: Upload-Metadata parsing, canonical encoding, media types and timestamps. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/base64.h"
#include "proto/meta.h"

/* A string literal and its length, NUL bytes inside included. */
#define S(lit) lit, sizeof(lit) - 1

#define JID "0f8fad5b-d9cb-469f-a165-70867728950e"
/* job-id pair with the value base64-encoded by expand() */
#define J "job-id {" JID "}"

#define BIG 16384

/*
 * Test headers are written as templates: text between braces is replaced by its padded base64,
 * so the tables stay readable. A few literal headers below check the encoding independently.
 */
static size_t expand(const char *t, size_t tlen, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < tlen; i++) {
		size_t start, n = 0;

		if (t[i] != '{') {
			cr_assert_lt(o + 1, cap);
			out[o++] = t[i];
			continue;
		}
		start = ++i;
		while (i < tlen && t[i] != '}')
			i++;
		cr_assert_lt(i, tlen, "unterminated template");
		cr_assert_eq(base64_encode((const unsigned char *)t + start, i - start, out + o,
					   cap - o, &n),
			     PROTO_OK);
		o += n;
	}
	cr_assert_lt(o, cap);
	out[o] = '\0';
	return o;
}

static enum proto_err parse_template(const char *t, size_t tlen, struct job_meta *m)
{
	static char buf[BIG];
	size_t n = expand(t, tlen, buf, sizeof(buf));

	return meta_parse(buf, n, m);
}

struct accept {
	const char *tmpl;
	size_t len;
	const char *job_id;
	const char *name;
	const char *format;
	unsigned copies;
	int64_t ms;
};

#define OCTET "application/octet-stream"

static const struct accept accepts[] = {
	{S(J), JID, "", OCTET, 1, -1},
	{S(J ",name {report.pdf},format {application/pdf},copies {3},"
	     "submitted-at {2026-11-24T22:29:24.123Z},encoding {identity}"),
	 JID, "report.pdf", "application/pdf", 3, 1795559364123},
	/* aliases used by tus-js-client and Uppy */
	{S(J ",filename {a.txt},filetype {text/plain; charset=utf-8}"), JID, "a.txt", "text/plain",
	 1, -1},
	/* order does not matter */
	{S("copies {2},name {x}," J), JID, "x", OCTET, 2, -1},
	/* uppercase UUID is stored lowercase */
	{S("job-id {0F8FAD5B-D9CB-469F-A165-70867728950E}"), JID, "", OCTET, 1, -1},
	/* OWS around commas */
	{S(J " , name {x}\t,\tcopies {2} ,\t \tformat {image/urf}"), JID, "x", "image/urf", 2,
	 -1},
	/* a key alone is an empty value */
	{S(J ",name"), JID, "", OCTET, 1, -1},
	{S("is-confidential," J ",x"), JID, "", OCTET, 1, -1},
	/* unknown keys: any bytes, only the base64 matters */
	{S(J ",x-thing {\xff\x00\x01\n},0-9"), JID, "", OCTET, 1, -1},
	/* tus allows any key without SP and ','; only the recognized keys, exactly spelt, count */
	{S(J ",relativePath {dir/a.pdf},Name {x},na_me {x},na.me {x},name=x,x;y {v}"), JID, "",
	 OCTET, 1, -1},
	/* key of exactly META_KEY_MAX characters */
	{S(J ",abcdefghijklmnopqrstuvwxyz-01234 {v}"), JID, "", OCTET, 1, -1},
	/* clean non-ASCII text, NBSP (U+00A0) right after the C1 range, U+10FFFF */
	{S(J ",name {Gr\xc3\xbc\xc3\x9f" "e \xe6\x96\x87\xe6\x9b\xb8 \xf0\x9f\x98\x80}"), JID,
	 "Gr\xc3\xbc\xc3\x9f" "e \xe6\x96\x87\xe6\x9b\xb8 \xf0\x9f\x98\x80", OCTET, 1, -1},
	{S(J ",name {\xc2\xa0\xf4\x8f\xbf\xbf}"), JID, "\xc2\xa0\xf4\x8f\xbf\xbf", OCTET, 1, -1},
	/* copies bounds */
	{S(J ",copies {1}"), JID, "", OCTET, 1, -1},
	{S(J ",copies {999}"), JID, "", OCTET, 999, -1},
	/* media types: case folded, parameters dropped */
	{S(J ",format {Application/PDF}"), JID, "", "application/pdf", 1, -1},
	{S(J ",format {application/vnd.hp-pcl ;x=\"a,b\"}"), JID, "", "application/vnd.hp-pcl", 1,
	 -1},
	{S(J ",format {image/pwg-raster;}"), JID, "", "image/pwg-raster", 1, -1},
	{S(J ",format {application/postscript}"), JID, "", "application/postscript", 1, -1},
	{S(J ",format {application/octet-stream}"), JID, "", OCTET, 1, -1},
	/* timestamps */
	{S(J ",submitted-at {1970-01-01T00:00:00Z}"), JID, "", OCTET, 1, 0},
	{S(J ",submitted-at {2024-02-29T12:00:00.5Z}"), JID, "", OCTET, 1, 1709208000500},
	{S(J ",encoding {identity}"), JID, "", OCTET, 1, -1},
	/* an empty type (browsers: file.type of an unknown file) keeps the default */
	{S(J ",filetype"), JID, "", OCTET, 1, -1},
	{S(J ",format"), JID, "", OCTET, 1, -1},
};

Test(meta_parse, accepts_with_exact_fields)
{
	for (size_t i = 0; i < sizeof(accepts) / sizeof(accepts[0]); i++) {
		const struct accept *a = &accepts[i];
		struct job_meta m;

		memset(&m, 0x5a, sizeof(m));
		cr_assert_eq(parse_template(a->tmpl, a->len, &m), PROTO_OK, "case %zu: %s", i,
			     a->tmpl);
		cr_expect_str_eq(m.job_id, a->job_id, "case %zu", i);
		cr_expect_str_eq(m.name, a->name, "case %zu", i);
		cr_expect_str_eq(m.format, a->format, "case %zu", i);
		cr_expect_eq(m.copies, a->copies, "case %zu", i);
		cr_expect_eq(m.submitted_at_ms, a->ms, "case %zu", i);
		cr_expect_eq(m.encoding, META_ENCODING_IDENTITY, "case %zu", i);
		cr_expect_eq(m.size, -1, "case %zu", i);
	}
}

/* Compressed jobs: encoding zstd with the decoded document's size. */
static const struct {
	const char *tmpl;
	size_t len;
	const char *name;
	int64_t size;
} zstd_accepts[] = {
	{S(J ",encoding {zstd},size {1048576}"), "", 1048576},
	/* in any order */
	{S("size {0},name {a.pdf},encoding {zstd}," J), "a.pdf", 0},
	/* the largest size, 2^53-1 */
	{S(J ",encoding {zstd},size {9007199254740991}"), "", 9007199254740991},
	{S(J ",name {r.pdf},format {application/pdf},copies {2},"
	     "submitted-at {2024-02-29T12:00:00.5Z},encoding {zstd},size {77}"),
	 "r.pdf", 77},
};

Test(meta_parse, accepts_zstd_with_its_size)
{
	for (size_t i = 0; i < sizeof(zstd_accepts) / sizeof(zstd_accepts[0]); i++) {
		struct job_meta m;

		memset(&m, 0x5a, sizeof(m));
		cr_assert_eq(parse_template(zstd_accepts[i].tmpl, zstd_accepts[i].len, &m),
			     PROTO_OK, "case %zu: %s", i, zstd_accepts[i].tmpl);
		cr_expect_str_eq(m.job_id, JID, "case %zu", i);
		cr_expect_str_eq(m.name, zstd_accepts[i].name, "case %zu", i);
		cr_expect_eq(m.encoding, META_ENCODING_ZSTD, "case %zu", i);
		cr_expect_eq(m.size, zstd_accepts[i].size, "case %zu", i);
	}
}

/* Literal headers, so that a fault in expand() or in the encoder cannot hide one in the parser. */
Test(meta_parse, literal_header)
{
	static const char h[] = "job-id MGY4ZmFkNWItZDljYi00NjlmLWExNjUtNzA4Njc3Mjg5NTBl,"
				"filename cmVwb3J0LnBkZg==,copies Mw==";
	struct job_meta m;

	cr_assert_eq(meta_parse(h, sizeof(h) - 1, &m), PROTO_OK);
	cr_expect_str_eq(m.job_id, JID);
	cr_expect_str_eq(m.name, "report.pdf");
	cr_expect_eq(m.copies, 3);
	/* the same header cut one byte short has an unpadded value */
	cr_expect_eq(meta_parse(h, sizeof(h) - 2, &m), PROTO_E_BASE64_PADDING);
}

struct reject {
	const char *tmpl;
	size_t len;
	enum proto_err rc;
};

static const struct reject rejects[] = {
	/* job-id required */
	{S(""), PROTO_E_META_JOB_ID},
	{S("name {x}"), PROTO_E_META_JOB_ID},
	{S("job-id-x {" JID "}"), PROTO_E_META_JOB_ID},
	/* pair structure */
	{S(J ","), PROTO_E_META_PAIR},
	{S("," J), PROTO_E_META_PAIR},
	{S(J ",,name {x}"), PROTO_E_META_PAIR},
	{S(J ", ,name {x}"), PROTO_E_META_PAIR},
	{S(J ",\t"), PROTO_E_META_PAIR},
	{S(J " "), PROTO_E_META_PAIR},          /* OWS only around commas */
	{S(J ",name {x}\t"), PROTO_E_META_PAIR},
	{S("job-id  {" JID "}"), PROTO_E_META_PAIR}, /* exactly one SP */
	{S("job-id\t{" JID "}"), PROTO_E_META_PAIR},
	{S(J ",name {x} {y}"), PROTO_E_META_PAIR},
	{S(J ",name {x}\t{y}"), PROTO_E_META_PAIR},
	{S(J ",name "), PROTO_E_META_PAIR},    /* SP then nothing */
	/* keys */
	{S(" " J), PROTO_E_META_KEY},
	{S(J ",na\0me {x}"), PROTO_E_META_KEY},
	{S(J ",na\rme {x}"), PROTO_E_META_KEY},
	{S(J ",na\x7fme {x}"), PROTO_E_META_KEY},
	{S(J ",n\xc3\xa4me {x}"), PROTO_E_META_KEY},
	{S(J ",abcdefghijklmnopqrstuvwxyz-012345 {v}"), PROTO_E_META_KEY}, /* 33 */
	/* duplicates, aliases included, unknown keys included */
	{S(J ",name {a},name {b}"), PROTO_E_META_DUP_KEY},
	{S(J ",name {a},filename {b}"), PROTO_E_META_DUP_KEY},
	{S(J ",filename {a},name {a}"), PROTO_E_META_DUP_KEY},
	{S(J ",filetype {text/plain},format {text/plain}"), PROTO_E_META_DUP_KEY},
	{S(J ",x {a},x {b}"), PROTO_E_META_DUP_KEY},
	{S(J ",x,x"), PROTO_E_META_DUP_KEY},
	{S(J "," J), PROTO_E_META_DUP_KEY},
	{S(J ",job-id"), PROTO_E_META_DUP_KEY},
	{S(J ",copies {1},copies {1}"), PROTO_E_META_DUP_KEY},
	/* base64 of known and unknown keys */
	{S(J ",name Zh=="), PROTO_E_BASE64_NONCANON},
	{S(J ",x-y Zh=="), PROTO_E_BASE64_NONCANON},
	{S(J ",name Zg"), PROTO_E_BASE64_PADDING},
	{S(J ",x-y Zg==Zg=="), PROTO_E_BASE64_PADDING},
	{S(J ",name Z!=="), PROTO_E_BASE64},
	{S(J ",name Zm9-"), PROTO_E_BASE64},  /* base64url is not accepted */
	{S(J ",name Zm9v\r\n"), PROTO_E_BASE64},
	/* job-id */
	{S("job-id {not-a-uuid}"), PROTO_E_UUID},
	{S("job-id"), PROTO_E_UUID},
	{S("job-id {00000000-0000-0000-0000-000000000000}"), PROTO_E_UUID},
	{S("job-id {ffffffff-ffff-ffff-ffff-ffffffffffff}"), PROTO_E_UUID},
	{S("job-id {0f8fad5bd9cb469fa16570867728950e}"), PROTO_E_UUID},
	{S("job-id {{0f8fad5b-d9cb-469f-a165-70867728950}"), PROTO_E_UUID},
	{S("job-id {" JID "\n}"), PROTO_E_META_TEXT},
	{S("job-id {" JID "\0}"), PROTO_E_META_TEXT},
	{S("job-id {\xff" "f8fad5b-d9cb-469f-a165-70867728950e}"), PROTO_E_META_TEXT},
	/* text values: controls and malformed UTF-8 */
	{S(J ",name {a\nb}"), PROTO_E_META_TEXT},
	{S(J ",name {\r\nX-Evil: 1}"), PROTO_E_META_TEXT},
	{S(J ",name {a\0b}"), PROTO_E_META_TEXT},
	{S(J ",name {\x1b[31mred}"), PROTO_E_META_TEXT},
	{S(J ",name {tab\there}"), PROTO_E_META_TEXT},
	{S(J ",name {\x7f}"), PROTO_E_META_TEXT},
	{S(J ",name {\xc2\x80}"), PROTO_E_META_TEXT},   /* C1 first */
	{S(J ",name {\xc2\x85}"), PROTO_E_META_TEXT},   /* NEL */
	{S(J ",name {\xc2\x9f}"), PROTO_E_META_TEXT},   /* C1 last */
	{S(J ",name {\xc0\xaf}"), PROTO_E_META_TEXT},   /* overlong '/' */
	{S(J ",name {\xe0\x80\xaf}"), PROTO_E_META_TEXT},
	{S(J ",name {\xed\xa0\x80}"), PROTO_E_META_TEXT}, /* surrogate */
	{S(J ",name {\xf4\x90\x80\x80}"), PROTO_E_META_TEXT}, /* above U+10FFFF */
	{S(J ",name {\xe2\x82}"), PROTO_E_META_TEXT},   /* truncated */
	{S(J ",name {\x80}"), PROTO_E_META_TEXT},       /* lone continuation */
	{S(J ",name {\xfe\xff}"), PROTO_E_META_TEXT},
	{S(J ",filename {caf\xe9}"), PROTO_E_META_TEXT}, /* Latin-1 */
	{S(J ",format {text/plain\n}"), PROTO_E_META_TEXT},
	{S(J ",copies {1\0}"), PROTO_E_META_TEXT},
	{S(J ",encoding {identity\xc2\x85}"), PROTO_E_META_TEXT},
	{S(J ",submitted-at {1970-01-01T00:00:00Z\r}"), PROTO_E_META_TEXT},
	/* format */
	{S(J ",format {application/x-sh}"), PROTO_E_META_FORMAT},
	{S(J ",filetype {text/*}"), PROTO_E_META_FORMAT},
	{S(J ",format { application/pdf}"), PROTO_E_META_FORMAT},
	{S(J ",format {application/pdf }"), PROTO_E_META_FORMAT},
	{S(J ",format {application/pdfx}"), PROTO_E_META_FORMAT},
	{S(J ",format {application/pd}"), PROTO_E_META_FORMAT},
	{S(J ",format {;application/pdf}"), PROTO_E_META_FORMAT},
	{S(J ",format {application/p\xc3\xa4" "f}"), PROTO_E_META_FORMAT},
	/* copies */
	{S(J ",copies {0}"), PROTO_E_META_COPIES},
	{S(J ",copies {1000}"), PROTO_E_META_COPIES},
	{S(J ",copies {01}"), PROTO_E_META_COPIES},
	{S(J ",copies {00}"), PROTO_E_META_COPIES},
	{S(J ",copies {+1}"), PROTO_E_META_COPIES},
	{S(J ",copies {-1}"), PROTO_E_META_COPIES},
	{S(J ",copies { 1}"), PROTO_E_META_COPIES},
	{S(J ",copies {1.0}"), PROTO_E_META_COPIES},
	{S(J ",copies {1e2}"), PROTO_E_META_COPIES},
	{S(J ",copies {0x10}"), PROTO_E_META_COPIES},
	{S(J ",copies {18446744073709551617}"), PROTO_E_META_COPIES},
	{S(J ",copies {4294967297}"), PROTO_E_META_COPIES},
	{S(J ",copies"), PROTO_E_META_COPIES},
	/* submitted-at (details in meta_time tests) */
	{S(J ",submitted-at {2026-11-24T22:29:24+00:00}"), PROTO_E_META_TIME},
	{S(J ",submitted-at"), PROTO_E_META_TIME},
	/* encoding */
	{S(J ",encoding {gzip}"), PROTO_E_META_ENCODING},
	{S(J ",encoding {Identity}"), PROTO_E_META_ENCODING},
	{S(J ",encoding {identity }"), PROTO_E_META_ENCODING},
	{S(J ",encoding"), PROTO_E_META_ENCODING},
	{S(J ",encoding {Zstd},size {1}"), PROTO_E_META_ENCODING},
	{S(J ",encoding {zstd },size {1}"), PROTO_E_META_ENCODING},
	{S(J ",encoding {zst},size {1}"), PROTO_E_META_ENCODING},
	{S(J ",encoding {zstd,gzip},size {1}"), PROTO_E_META_ENCODING},
	/* size: required with zstd, refused without it, strict decimal 0..2^53-1 */
	{S(J ",encoding {zstd}"), PROTO_E_META_SIZE},
	{S(J ",size {100}"), PROTO_E_META_SIZE},
	{S(J ",encoding {identity},size {100}"), PROTO_E_META_SIZE},
	{S(J ",encoding {zstd},size"), PROTO_E_META_SIZE},
	{S(J ",encoding {zstd},size {0100}"), PROTO_E_META_SIZE},
	{S(J ",encoding {zstd},size {00}"), PROTO_E_META_SIZE},
	{S(J ",encoding {zstd},size {-1}"), PROTO_E_META_SIZE},
	{S(J ",encoding {zstd},size {+1}"), PROTO_E_META_SIZE},
	{S(J ",encoding {zstd},size { 1}"), PROTO_E_META_SIZE},
	{S(J ",encoding {zstd},size {1e6}"), PROTO_E_META_SIZE},
	{S(J ",encoding {zstd},size {9007199254740992}"), PROTO_E_META_SIZE},
	{S(J ",encoding {zstd},size {18446744073709551617}"), PROTO_E_META_SIZE},
	{S(J ",encoding {zstd},size {1\0}"), PROTO_E_META_TEXT},
	{S(J ",encoding {zstd},size {1},size {1}"), PROTO_E_META_DUP_KEY},
	/* a bad pair comes before the missing size; a missing job-id before both */
	{S(J ",encoding {zstd},copies {0}"), PROTO_E_META_COPIES},
	{S("encoding {zstd}"), PROTO_E_META_JOB_ID},
	{S("size {1}"), PROTO_E_META_JOB_ID},
	/* the first bad pair decides */
	{S(J ",copies {0},format {x/y}"), PROTO_E_META_COPIES},
	{S(J ",format {x/y},copies {0}"), PROTO_E_META_FORMAT},
	{S("name {a\n}"), PROTO_E_META_TEXT},
};

Test(meta_parse, rejects_each_with_its_code)
{
	for (size_t i = 0; i < sizeof(rejects) / sizeof(rejects[0]); i++) {
		const struct reject *r = &rejects[i];
		struct job_meta m, before;

		memset(&m, 0x5a, sizeof(m));
		before = m;
		cr_expect_eq(parse_template(r->tmpl, r->len, &m), r->rc, "case %zu: %s", i,
			     r->tmpl);
		cr_expect_eq(memcmp(&m, &before, sizeof(m)), 0, "case %zu wrote *out", i);
	}
}

/* Builds J followed by ",name {name of n bytes}". */
static size_t header_with_name(char *buf, size_t cap, size_t n, char fill)
{
	char *t = malloc(n + 64);
	size_t len;

	cr_assert_not_null(t);
	len = (size_t)sprintf(t, "%s,name {", J);
	memset(t + len, fill, n);
	len += n;
	t[len++] = '}';
	len = expand(t, len, buf, cap);
	free(t);
	return len;
}

Test(meta_parse, name_limit_exact_and_plus_one)
{
	static char buf[BIG];
	struct job_meta m;
	size_t n;

	n = header_with_name(buf, sizeof(buf), META_NAME_MAX, 'a');
	cr_assert_eq(meta_parse(buf, n, &m), PROTO_OK);
	cr_expect_eq(strlen(m.name), META_NAME_MAX);
	n = header_with_name(buf, sizeof(buf), META_NAME_MAX + 1, 'a');
	cr_expect_eq(meta_parse(buf, n, &m), PROTO_E_TOO_LONG);
	/* the limit counts bytes, not characters: 128 two-byte characters are 256 bytes */
	{
		char t[600];
		size_t len = (size_t)sprintf(t, "%s,name {", J);

		for (int i = 0; i < 128; i++) {
			t[len++] = '\xc3';
			t[len++] = '\xa9';
		}
		t[len++] = '}';
		n = expand(t, len, buf, sizeof(buf));
		cr_expect_eq(meta_parse(buf, n, &m), PROTO_E_TOO_LONG);
		/* 127 of them plus one ASCII byte are 255 */
		memmove(t + len - 3, "a}", 2);
		n = expand(t, len - 1, buf, sizeof(buf));
		cr_expect_eq(meta_parse(buf, n, &m), PROTO_OK);
		cr_expect_eq(strlen(m.name), 255);
	}
}

/* A header of exactly len bytes: J, then one unknown pair padded to fit. */
static size_t header_of_len(char *buf, size_t len)
{
	size_t j, n;

	n = j = expand(S(J), buf, BIG);
	cr_assert_eq(n, strlen(J) - 2 - UUID_LEN + BASE64_ENCODED_LEN(UUID_LEN));
	/* ",x " and as many "AAAA" as fit */
	cr_assert_geq(len, j + 3 + 4);
	memcpy(buf + n, ",x ", 3);
	n += 3;
	while (n + 4 <= len) {
		memcpy(buf + n, "AAAA", 4);
		n += 4;
	}
	/* 0..3 bytes left: widen the first separator with OWS before its comma */
	while (n < len) {
		memmove(buf + j + 1, buf + j, n - j);
		buf[j] = ' ';
		n++;
	}
	return n;
}

Test(meta_parse, header_limit_exact_and_plus_one)
{
	static char buf[BIG];
	struct job_meta m;
	size_t n;

	n = header_of_len(buf, META_HEADER_MAX);
	cr_assert_eq(n, META_HEADER_MAX);
	cr_expect_eq(meta_parse(buf, n, &m), PROTO_OK);
	cr_expect_str_eq(m.job_id, JID);
	n = header_of_len(buf, META_HEADER_MAX + 1);
	cr_expect_eq(meta_parse(buf, n, &m), PROTO_E_TOO_LONG);
	n = header_of_len(buf, META_HEADER_MAX - 1);
	cr_expect_eq(meta_parse(buf, n, &m), PROTO_OK);
}

/* J plus (count - 1) distinct unknown keys. */
static size_t header_with_pairs(char *buf, size_t cap, int count)
{
	size_t n = expand(S(J), buf, cap);

	for (int i = 1; i < count; i++)
		n += (size_t)snprintf(buf + n, cap - n, ",k%d", i);
	return n;
}

Test(meta_parse, pair_limit_exact_and_plus_one)
{
	static char buf[BIG];
	struct job_meta m;
	size_t n;

	n = header_with_pairs(buf, sizeof(buf), META_PAIRS_MAX);
	cr_expect_eq(meta_parse(buf, n, &m), PROTO_OK);
	n = header_with_pairs(buf, sizeof(buf), META_PAIRS_MAX + 1);
	cr_expect_eq(meta_parse(buf, n, &m), PROTO_E_META_TOO_MANY);
	/* a thousand commas are refused without reading past the limit */
	memset(buf, ',', 1000);
	cr_expect_eq(meta_parse(buf, 1000, &m), PROTO_E_META_PAIR);
	n = header_with_pairs(buf, sizeof(buf), 200);
	cr_expect_eq(meta_parse(buf, n, &m), PROTO_E_META_TOO_MANY);
}

/* The parser never reads past len: a header cut inside a value is judged as cut. */
Test(meta_parse, respects_len)
{
	static char buf[BIG];
	struct job_meta m;
	size_t n = expand(S(J ",name {report.pdf}"), buf, sizeof(buf));
	char *exact;

	/* cut inside "cmVwb3J0LnBkZg==" */
	cr_expect_eq(meta_parse(buf, n - 2, &m), PROTO_E_BASE64_PADDING);
	cr_expect_eq(meta_parse(buf, n - 3, &m), PROTO_E_BASE64);
	/* cut after "name" */
	cr_expect_eq(meta_parse(buf, n - 17, &m), PROTO_OK);
	/* exact-size heap copy: ASan would catch a read beyond it */
	exact = malloc(n);
	cr_assert_not_null(exact);
	memcpy(exact, buf, n);
	cr_expect_eq(meta_parse(exact, n, &m), PROTO_OK);
	cr_expect_str_eq(m.name, "report.pdf");
	free(exact);
}

Test(meta_encode, canonical_form_exact)
{
	struct job_meta m;
	char buf[1024];
	size_t n = 0;

	meta_init(&m, JID);
	cr_assert_eq(meta_encode(&m, buf, sizeof(buf), &n), PROTO_OK);
	cr_expect_str_eq(buf, "job-id MGY4ZmFkNWItZDljYi00NjlmLWExNjUtNzA4Njc3Mjg5NTBl,"
			      "format YXBwbGljYXRpb24vb2N0ZXQtc3RyZWFt,copies MQ==");
	cr_expect_eq(n, strlen(buf));

	strcpy(m.name, "report.pdf");
	strcpy(m.format, "application/pdf");
	m.copies = 3;
	m.submitted_at_ms = 1795559364123;
	cr_assert_eq(meta_encode(&m, buf, sizeof(buf), &n), PROTO_OK);
	cr_expect_str_eq(buf, "job-id MGY4ZmFkNWItZDljYi00NjlmLWExNjUtNzA4Njc3Mjg5NTBl,"
			      "name cmVwb3J0LnBkZg==,format YXBwbGljYXRpb24vcGRm,copies Mw==,"
			      "submitted-at MjAyNi0xMS0yNFQyMjoyOToyNC4xMjNa");
	cr_expect_eq(n, strlen(buf));

	/* out_len may be NULL */
	cr_expect_eq(meta_encode(&m, buf, sizeof(buf), NULL), PROTO_OK);

	/* zstd names its encoding and the decoded size, last */
	m.encoding = META_ENCODING_ZSTD;
	m.size = 1048576;
	cr_assert_eq(meta_encode(&m, buf, sizeof(buf), &n), PROTO_OK);
	cr_expect_str_eq(buf, "job-id MGY4ZmFkNWItZDljYi00NjlmLWExNjUtNzA4Njc3Mjg5NTBl,"
			      "name cmVwb3J0LnBkZg==,format YXBwbGljYXRpb24vcGRm,copies Mw==,"
			      "submitted-at MjAyNi0xMS0yNFQyMjoyOToyNC4xMjNa,"
			      "encoding enN0ZA==,size MTA0ODU3Ng==");
	cr_expect_eq(n, strlen(buf));
	m.size = 0;
	m.submitted_at_ms = -1;
	m.name[0] = '\0';
	cr_assert_eq(meta_encode(&m, buf, sizeof(buf), &n), PROTO_OK);
	cr_expect_str_eq(buf, "job-id MGY4ZmFkNWItZDljYi00NjlmLWExNjUtNzA4Njc3Mjg5NTBl,"
			      "format YXBwbGljYXRpb24vcGRm,copies Mw==,"
			      "encoding enN0ZA==,size MA==");
}

/* encoding and size go together; the encoder refuses a struct meta_parse never makes */
Test(meta_encode, rejects_inconsistent_encoding_and_size)
{
	struct job_meta m;
	char buf[1024] = "untouched";
	size_t n = 4242;

	meta_init(&m, JID);
	m.size = 10;
	cr_expect_eq(meta_encode(&m, buf, sizeof(buf), &n), PROTO_E_META_SIZE);
	m.encoding = META_ENCODING_ZSTD;
	m.size = -1;
	cr_expect_eq(meta_encode(&m, buf, sizeof(buf), &n), PROTO_E_META_SIZE);
	m.size = META_SIZE_MAX + 1;
	cr_expect_eq(meta_encode(&m, buf, sizeof(buf), &n), PROTO_E_META_SIZE);
	m.size = META_SIZE_MAX;
	m.encoding = (enum meta_encoding)7;
	cr_expect_eq(meta_encode(&m, buf, sizeof(buf), &n), PROTO_E_META_ENCODING);
	cr_expect_str_eq(buf, "untouched");
	cr_expect_eq(n, 4242);
	m.encoding = META_ENCODING_ZSTD;
	cr_expect_eq(meta_encode(&m, buf, sizeof(buf), &n), PROTO_OK);
	cr_expect_eq(n, strlen(buf));
}

Test(meta_encode, buffer_exact_and_one_short)
{
	struct job_meta m;
	char buf[1024], small[1024];
	size_t n = 0, n2 = 0;

	meta_init(&m, JID);
	strcpy(m.name, "x");
	cr_assert_eq(meta_encode(&m, buf, sizeof(buf), &n), PROTO_OK);
	memset(small, '#', sizeof(small));
	cr_expect_eq(meta_encode(&m, small, n + 1, &n2), PROTO_OK);
	cr_expect_str_eq(small, buf);
	memset(small, '#', sizeof(small));
	n2 = 4242;
	cr_expect_eq(meta_encode(&m, small, n, &n2), PROTO_E_BUFFER);
	cr_expect_eq(n2, 4242);
	cr_expect_eq(small[0], '#', "buffer written on failure");
	cr_expect_eq(meta_encode(&m, small, 0, &n2), PROTO_E_BUFFER);
}

Test(meta_encode, rejects_time_out_of_range)
{
	struct job_meta m;
	char buf[1024];

	meta_init(&m, JID);
	m.submitted_at_ms = -2;
	cr_expect_eq(meta_encode(&m, buf, sizeof(buf), NULL), PROTO_E_META_TIME);
	m.submitted_at_ms = 253402300800000;
	cr_expect_eq(meta_encode(&m, buf, sizeof(buf), NULL), PROTO_E_META_TIME);
}

/* Everything meta_parse accepts re-encodes into a header that parses to the same struct. */
Test(meta_encode, round_trips_through_parse)
{
	static char buf[BIG];
	static char enc[2048];

	for (size_t i = 0; i < sizeof(accepts) / sizeof(accepts[0]); i++) {
		struct job_meta a, b;
		size_t n = 0;

		cr_assert_eq(parse_template(accepts[i].tmpl, accepts[i].len, &a), PROTO_OK);
		cr_assert_eq(meta_encode(&a, enc, sizeof(enc), &n), PROTO_OK, "case %zu", i);
		cr_assert_eq(strlen(enc), n);
		cr_assert_eq(meta_parse(enc, n, &b), PROTO_OK, "case %zu: %s", i, enc);
		cr_expect_str_eq(a.job_id, b.job_id);
		cr_expect_str_eq(a.name, b.name);
		cr_expect_str_eq(a.format, b.format);
		cr_expect_eq(a.copies, b.copies);
		cr_expect_eq(a.submitted_at_ms, b.submitted_at_ms);
		cr_expect_eq(a.encoding, b.encoding);
		cr_expect_eq(a.size, b.size);
	}
	for (size_t i = 0; i < sizeof(zstd_accepts) / sizeof(zstd_accepts[0]); i++) {
		struct job_meta a, b;
		size_t n = 0;

		cr_assert_eq(parse_template(zstd_accepts[i].tmpl, zstd_accepts[i].len, &a),
			     PROTO_OK);
		cr_assert_eq(meta_encode(&a, enc, sizeof(enc), &n), PROTO_OK, "zstd case %zu", i);
		cr_assert_eq(meta_parse(enc, n, &b), PROTO_OK, "zstd case %zu: %s", i, enc);
		cr_expect_eq(b.encoding, META_ENCODING_ZSTD);
		cr_expect_eq(b.size, a.size);
		cr_expect_str_eq(b.name, a.name);
	}
	/* the largest struct fits the encoder */
	{
		struct job_meta a, b;
		size_t n = header_with_name(buf, sizeof(buf), META_NAME_MAX, 'z');

		cr_assert_eq(meta_parse(buf, n, &a), PROTO_OK);
		strcpy(a.format, "application/octet-stream");
		a.copies = 999;
		a.submitted_at_ms = 253402300799999;
		a.encoding = META_ENCODING_ZSTD;
		a.size = META_SIZE_MAX;
		cr_assert_eq(meta_encode(&a, enc, sizeof(enc), &n), PROTO_OK);
		cr_assert_eq(meta_parse(enc, n, &b), PROTO_OK);
		cr_expect_str_eq(a.name, b.name);
		cr_expect_eq(b.submitted_at_ms, 253402300799999);
		cr_expect_eq(b.encoding, META_ENCODING_ZSTD);
		cr_expect_eq(b.size, META_SIZE_MAX);
	}
}

Test(meta_init, sets_defaults)
{
	struct job_meta m;

	memset(&m, 0x5a, sizeof(m));
	meta_init(&m, JID);
	cr_expect_str_eq(m.job_id, JID);
	cr_expect_str_eq(m.name, "");
	cr_expect_str_eq(m.format, "application/octet-stream");
	cr_expect_eq(m.copies, 1);
	cr_expect_eq(m.submitted_at_ms, -1);
	cr_expect_eq(m.encoding, META_ENCODING_IDENTITY);
	cr_expect_eq(m.size, -1);
}

struct format_case {
	const char *in;
	size_t len;
	enum proto_err rc;
	const char *out;
};

static const struct format_case formats[] = {
	{S("application/pdf"), PROTO_OK, "application/pdf"},
	{S("application/postscript"), PROTO_OK, "application/postscript"},
	{S("application/vnd.hp-pcl"), PROTO_OK, "application/vnd.hp-pcl"},
	{S("image/pwg-raster"), PROTO_OK, "image/pwg-raster"},
	{S("image/urf"), PROTO_OK, "image/urf"},
	{S("text/plain"), PROTO_OK, "text/plain"},
	{S("application/octet-stream"), PROTO_OK, "application/octet-stream"},
	{S("TEXT/PLAIN"), PROTO_OK, "text/plain"},
	{S("Image/URF"), PROTO_OK, "image/urf"},
	{S("text/plain;charset=utf-8"), PROTO_OK, "text/plain"},
	{S("text/plain ; charset=utf-8"), PROTO_OK, "text/plain"},
	{S("text/plain\t \t;"), PROTO_OK, "text/plain"},
	{S("text/plain;\0\r\n"), PROTO_OK, "text/plain"},
	{S(""), PROTO_E_META_FORMAT, NULL},
	{S(";"), PROTO_E_META_FORMAT, NULL},
	{S(" ;"), PROTO_E_META_FORMAT, NULL},
	{S("text/plain "), PROTO_E_META_FORMAT, NULL},
	{S(" text/plain"), PROTO_E_META_FORMAT, NULL},
	{S("text/plain\0"), PROTO_E_META_FORMAT, NULL},
	{S("text/plai"), PROTO_E_META_FORMAT, NULL},
	{S("text/plainx"), PROTO_E_META_FORMAT, NULL},
	{S("text/html"), PROTO_E_META_FORMAT, NULL},
	{S("text"), PROTO_E_META_FORMAT, NULL},
	{S("text/ plain"), PROTO_E_META_FORMAT, NULL},
	{S("text/plain,text/html"), PROTO_E_META_FORMAT, NULL},
	{S("t\xc3\xa9xt/plain"), PROTO_E_META_FORMAT, NULL},
	{S("application/octet-stream-and-a-lot-more-characters-to-pass-63xx"), PROTO_E_META_FORMAT,
	 NULL},
};

Test(meta_format_parse, table)
{
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		const struct format_case *f = &formats[i];
		char out[META_FORMAT_MAX + 1] = "untouched";

		cr_expect_eq(meta_format_parse(f->in, f->len, out, sizeof(out)), f->rc,
			     "case %zu: %s", i, f->in);
		cr_expect_str_eq(out, f->out ? f->out : "untouched", "case %zu", i);
	}
}

Test(meta_format_parse, buffer)
{
	char out[16];

	cr_expect_eq(meta_format_parse(S("text/plain"), out, 11), PROTO_OK);
	cr_expect_str_eq(out, "text/plain");
	cr_expect_eq(meta_format_parse(S("text/plain"), out, 10), PROTO_E_BUFFER);
}

struct time_case {
	const char *in;
	size_t len;
	enum proto_err rc;
	int64_t ms;
};

static const struct time_case times[] = {
	{S("1970-01-01T00:00:00Z"), PROTO_OK, 0},
	{S("1970-01-01T00:00:00.001Z"), PROTO_OK, 1},
	{S("1970-01-01T00:00:00.1Z"), PROTO_OK, 100},
	{S("1970-01-01T00:00:00.12Z"), PROTO_OK, 120},
	{S("1970-01-01T00:00:00.000Z"), PROTO_OK, 0},
	{S("2000-02-29T00:00:00Z"), PROTO_OK, 951782400000},
	{S("2024-02-29T23:59:59.999Z"), PROTO_OK, 1709251199999},
	{S("2026-11-24T22:29:24.123Z"), PROTO_OK, 1795559364123},
	{S("2038-01-19T03:14:08Z"), PROTO_OK, 2147483648000},
	{S("9999-12-31T23:59:59.999Z"), PROTO_OK, 253402300799999},
	{S(""), PROTO_E_META_TIME, 0},
	{S("1969-12-31T23:59:59Z"), PROTO_E_META_TIME, 0},
	{S("0000-01-01T00:00:00Z"), PROTO_E_META_TIME, 0},
	{S("2023-02-29T00:00:00Z"), PROTO_E_META_TIME, 0},
	{S("2100-02-29T00:00:00Z"), PROTO_E_META_TIME, 0}, /* not a leap year */
	{S("2024-02-30T00:00:00Z"), PROTO_E_META_TIME, 0},
	{S("2024-04-31T00:00:00Z"), PROTO_E_META_TIME, 0},
	{S("2024-13-01T00:00:00Z"), PROTO_E_META_TIME, 0},
	{S("2024-00-10T00:00:00Z"), PROTO_E_META_TIME, 0},
	{S("2024-01-00T00:00:00Z"), PROTO_E_META_TIME, 0},
	{S("2024-01-32T00:00:00Z"), PROTO_E_META_TIME, 0},
	{S("2024-01-01T24:00:00Z"), PROTO_E_META_TIME, 0},
	{S("2024-01-01T23:60:00Z"), PROTO_E_META_TIME, 0},
	{S("2016-12-31T23:59:60Z"), PROTO_E_META_TIME, 0}, /* leap second */
	{S("2024-01-01T00:00:00.Z"), PROTO_E_META_TIME, 0},
	{S("2024-01-01T00:00:00.1234Z"), PROTO_E_META_TIME, 0},
	{S("2024-01-01T00:00:00.12aZ"), PROTO_E_META_TIME, 0},
	{S("2024-01-01T00:00:00"), PROTO_E_META_TIME, 0},
	{S("2024-01-01T00:00:00+00:00"), PROTO_E_META_TIME, 0},
	{S("2024-01-01T00:00:00-00:00"), PROTO_E_META_TIME, 0},
	{S("2024-01-01t00:00:00Z"), PROTO_E_META_TIME, 0},
	{S("2024-01-01T00:00:00z"), PROTO_E_META_TIME, 0},
	{S("2024-01-01 00:00:00Z"), PROTO_E_META_TIME, 0},
	{S("2024-1-01T00:00:00Z"), PROTO_E_META_TIME, 0},
	{S("2024-01-01T0:00:00Z"), PROTO_E_META_TIME, 0},
	{S("+2024-01-01T00:00:00Z"), PROTO_E_META_TIME, 0},
	{S("12024-01-01T00:00:00Z"), PROTO_E_META_TIME, 0},
	{S("2024-01-01T00:00:00Z "), PROTO_E_META_TIME, 0},
	{S(" 2024-01-01T00:00:00Z"), PROTO_E_META_TIME, 0},
	{S("2024-01-01T00:00:00ZZ"), PROTO_E_META_TIME, 0},
	{S("2024-01-01T00:00:00.5ZZ"), PROTO_E_META_TIME, 0},
	{S("2024-01-01T00:00:00Z\0"), PROTO_E_META_TIME, 0},
	{S("2024-01-01T00:00:0\0Z"), PROTO_E_META_TIME, 0},
	{S("2024-+1-01T00:00:00Z"), PROTO_E_META_TIME, 0},
	{S("2024-01--1T00:00:00Z"), PROTO_E_META_TIME, 0},
	{S("2024/01/01T00:00:00Z"), PROTO_E_META_TIME, 0},
	{S("2024-01-01T00-00-00Z"), PROTO_E_META_TIME, 0},
	{S("\xef\xbc\x92" "024-01-01T00:00:00Z"), PROTO_E_META_TIME, 0}, /* fullwidth 2 */
	{S("1735689600"), PROTO_E_META_TIME, 0},
};

Test(meta_time_parse, table)
{
	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		const struct time_case *t = &times[i];
		int64_t ms = 777;

		cr_expect_eq(meta_time_parse(t->in, t->len, &ms), t->rc, "case %zu: %s", i,
			     t->in);
		cr_expect_eq(ms, t->rc ? 777 : t->ms, "case %zu: %s", i, t->in);
	}
}

Test(meta_time_format, canonical_and_limits)
{
	char buf[META_TIME_LEN + 1];
	int64_t back = 0;

	cr_expect_eq(meta_time_format(0, buf, sizeof(buf)), PROTO_OK);
	cr_expect_str_eq(buf, "1970-01-01T00:00:00.000Z");
	cr_expect_eq(meta_time_format(1709251199999, buf, sizeof(buf)), PROTO_OK);
	cr_expect_str_eq(buf, "2024-02-29T23:59:59.999Z");
	cr_expect_eq(meta_time_format(253402300799999, buf, sizeof(buf)), PROTO_OK);
	cr_expect_str_eq(buf, "9999-12-31T23:59:59.999Z");
	cr_expect_eq(meta_time_format(253402300800000, buf, sizeof(buf)), PROTO_E_META_TIME);
	cr_expect_eq(meta_time_format(-1, buf, sizeof(buf)), PROTO_E_META_TIME);
	cr_expect_eq(meta_time_format(INT64_MIN, buf, sizeof(buf)), PROTO_E_META_TIME);
	cr_expect_eq(meta_time_format(INT64_MAX, buf, sizeof(buf)), PROTO_E_META_TIME);
	cr_expect_eq(meta_time_format(0, buf, META_TIME_LEN), PROTO_E_BUFFER);
	/* every accepted time formats to something that parses back to it */
	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		if (times[i].rc)
			continue;
		cr_assert_eq(meta_time_format(times[i].ms, buf, sizeof(buf)), PROTO_OK);
		cr_assert_eq(strlen(buf), META_TIME_LEN);
		cr_assert_eq(meta_time_parse(buf, strlen(buf), &back), PROTO_OK);
		cr_expect_eq(back, times[i].ms);
	}
}

/* The one-shot PUT names the client job id in its path. */
Test(meta_parse_for, path_job_id)
{
	static const char other[] = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
	static char buf[BIG];
	struct job_meta m;
	size_t n;

	memset(&m, 0x5a, sizeof(m));
	cr_assert_eq(meta_parse_for("", 0, JID, &m), PROTO_OK);
	cr_expect_str_eq(m.job_id, JID);
	cr_expect_str_eq(m.format, OCTET);
	cr_expect_eq(m.copies, 1);

	n = expand(S("name {a.pdf},copies {2}"), buf, sizeof(buf));
	cr_assert_eq(meta_parse_for(buf, n, JID, &m), PROTO_OK);
	cr_expect_str_eq(m.job_id, JID);
	cr_expect_str_eq(m.name, "a.pdf");
	cr_expect_eq(m.copies, 2);

	/* the same id in the header is fine, in either case */
	n = expand(S("job-id {0F8FAD5B-D9CB-469F-A165-70867728950E}"), buf, sizeof(buf));
	cr_assert_eq(meta_parse_for(buf, n, JID, &m), PROTO_OK);
	cr_expect_str_eq(m.job_id, JID);

	/* a different one is refused and leaves m alone */
	memset(&m, 0x5a, sizeof(m));
	n = expand(S(J ",name {b}"), buf, sizeof(buf));
	cr_assert_eq(meta_parse_for(buf, n, other, &m), PROTO_E_META_JOB_ID_MISMATCH);
	cr_expect_eq((unsigned char)m.name[0], 0x5a);

	/* without a path id it is meta_parse */
	cr_expect_eq(meta_parse_for("", 0, NULL, &m), PROTO_E_META_JOB_ID);
	n = expand(S("name {a.pdf}"), buf, sizeof(buf));
	cr_expect_eq(meta_parse_for(buf, n, NULL, &m), PROTO_E_META_JOB_ID);
	/* other errors still come first */
	n = expand(S("copies {0}"), buf, sizeof(buf));
	cr_expect_eq(meta_parse_for(buf, n, JID, &m), PROTO_E_META_COPIES);

	/* a one-shot PUT may carry a compressed job too; its size rule is the same */
	n = expand(S("encoding {zstd},size {4096}"), buf, sizeof(buf));
	cr_assert_eq(meta_parse_for(buf, n, JID, &m), PROTO_OK);
	cr_expect_eq(m.encoding, META_ENCODING_ZSTD);
	cr_expect_eq(m.size, 4096);
	n = expand(S("encoding {zstd}"), buf, sizeof(buf));
	cr_expect_eq(meta_parse_for(buf, n, JID, &m), PROTO_E_META_SIZE);
	/* ...after the path's job id is checked */
	n = expand(S(J ",encoding {zstd}"), buf, sizeof(buf));
	cr_expect_eq(meta_parse_for(buf, n, other, &m), PROTO_E_META_JOB_ID_MISMATCH);
}
