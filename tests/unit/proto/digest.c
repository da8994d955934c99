/* Tests proto/digest.c: Upload-Checksum and Repr-Digest parsing, formatting and round trips. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "proto/base64.h"
#include "proto/digest.h"

/* SHA-256 and SHA-512 of "" and "abc" (FIPS 180-2 vectors), base64 and hex. */
#define E256 "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
#define A256 "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
#define E512                                                                                       \
	"z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="
#define A512                                                                                       \
	"3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/uu9RU1EI2Q86A4qmslPpUyknw=="
#define H_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define H_ABC	"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/* 31 and 33 bytes, canonical base64. */
#define B31 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg=="
#define B33 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g"
/* E256 with non-zero unused bits, without padding, with padding inside. */
#define E256_NONCANON "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV="
#define E256_NOPAD    "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
#define E256_URL      "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU="
#define MD5_EMPTY     "1B2M2Y8AsgTpgAmY7PhCfg=="

struct dcase {
	const char *name;
	const char *in;
	size_t len;
	enum proto_err rc;
	const char *hex; /* expected digest on PROTO_OK */
};

/* sizeof keeps NUL bytes inside the literal part of the input. */
#define C(name, lit, rc, hex)                                                                      \
	{                                                                                          \
		name, lit, sizeof(lit) - 1, rc, hex                                                \
	}

static void hex_to_bytes(const char *hex, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned int b;

		cr_assert_eq(sscanf(hex + 2 * i, "%2x", &b), 1);
		out[i] = (unsigned char)b;
	}
}

static void check_case(const struct dcase *c,
		       enum proto_err (*parse)(const char *, size_t, unsigned char *))
{
	unsigned char out[DIGEST_SHA256_LEN], want[DIGEST_SHA256_LEN], canary[DIGEST_SHA256_LEN];
	enum proto_err rc;

	memset(out, 0xa5, sizeof(out));
	memset(canary, 0xa5, sizeof(canary));
	rc = parse(c->in, c->len, out);
	cr_expect_eq(rc, c->rc, "%s: got %d (%s), want %d (%s)", c->name, rc, proto_strerror(rc),
		     c->rc, proto_strerror(c->rc));
	if (c->rc == PROTO_OK && rc == PROTO_OK) {
		hex_to_bytes(c->hex, want, sizeof(want));
		cr_expect_arr_eq(out, want, sizeof(want), "%s: wrong digest", c->name);
	} else if (rc != PROTO_OK) {
		cr_expect_arr_eq(out, canary, sizeof(out), "%s: out written on failure", c->name);
	}
}

static const struct dcase checksum_cases[] = {
	C("valid-empty", "sha256 " E256, PROTO_OK, H_EMPTY),
	C("valid-abc", "sha256 " A256, PROTO_OK, H_ABC),
	C("empty", "", PROTO_E_EMPTY, NULL),
	C("only-sp", " ", PROTO_E_CHECKSUM_SYNTAX, NULL),
	C("alg-only", "sha256", PROTO_E_CHECKSUM_SYNTAX, NULL),
	C("alg-sp-nothing", "sha256 ", PROTO_E_CHECKSUM_SYNTAX, NULL),
	C("no-alg", " " E256, PROTO_E_CHECKSUM_SYNTAX, NULL),
	C("leading-sp", " sha256 " E256, PROTO_E_CHECKSUM_SYNTAX, NULL),
	C("trailing-sp", "sha256 " E256 " ", PROTO_E_CHECKSUM_SYNTAX, NULL),
	C("two-sp", "sha256  " E256, PROTO_E_CHECKSUM_SYNTAX, NULL),
	C("htab", "sha256\t" E256, PROTO_E_CHECKSUM_SYNTAX, NULL),
	C("three-parts", "sha256 " E256 " " A256, PROTO_E_CHECKSUM_SYNTAX, NULL),
	C("uppercase-alg", "SHA256 " E256, PROTO_E_CHECKSUM_SYNTAX, NULL),
	C("mixed-case-alg", "Sha256 " E256, PROTO_E_CHECKSUM_SYNTAX, NULL),
	C("alg-underscore", "sha_256 " E256, PROTO_E_CHECKSUM_SYNTAX, NULL),
	C("nul-in-value", "sha256 " E256 "\0", PROTO_E_CHECKSUM_SYNTAX, NULL),
	C("nul-in-alg", "sha\0256 " E256, PROTO_E_CHECKSUM_SYNTAX, NULL),
	C("crlf", "sha256 " E256 "\r\n", PROTO_E_CHECKSUM_SYNTAX, NULL),
	C("base64url-alphabet", "sha256 " E256_URL, PROTO_E_CHECKSUM_SYNTAX, NULL),
	C("non-ascii-value", "sha256 \xc3\xa9" E256, PROTO_E_CHECKSUM_SYNTAX, NULL),
	C("non-ascii-alg", "sh\303\241256 " E256, PROTO_E_CHECKSUM_SYNTAX, NULL),
	C("colon-value", "sha256 :" E256 ":", PROTO_E_CHECKSUM_SYNTAX, NULL),
	C("repr-form", "sha-256=:" E256 ":", PROTO_E_CHECKSUM_SYNTAX, NULL),
	C("md5", "md5 " MD5_EMPTY, PROTO_E_CHECKSUM_ALGORITHM, NULL),
	C("sha1", "sha1 2jmj7l5rSw0yVb/vlWAYkK/YBwk=", PROTO_E_CHECKSUM_ALGORITHM, NULL),
	C("sha-256-hyphen", "sha-256 " E256, PROTO_E_CHECKSUM_ALGORITHM, NULL),
	C("sha512", "sha512 " E512, PROTO_E_CHECKSUM_ALGORITHM, NULL),
	C("crc32", "crc32 AAAAAA==", PROTO_E_CHECKSUM_ALGORITHM, NULL),
	C("sha2560", "sha2560 " E256, PROTO_E_CHECKSUM_ALGORITHM, NULL),
	C("sha25", "sha25 " E256, PROTO_E_CHECKSUM_ALGORITHM, NULL),
	C("short-31", "sha256 " B31, PROTO_E_HASH_LENGTH, NULL),
	C("long-33", "sha256 " B33, PROTO_E_HASH_LENGTH, NULL),
	C("sha512-bytes", "sha256 " E512, PROTO_E_HASH_LENGTH, NULL),
	C("no-padding", "sha256 " E256_NOPAD, PROTO_E_BASE64_PADDING, NULL),
	C("noncanonical", "sha256 " E256_NONCANON, PROTO_E_BASE64_NONCANON, NULL),
	C("padding-inside",
	  "sha256 47DE=pj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", PROTO_E_BASE64_PADDING, NULL),
	C("only-padding", "sha256 ====", PROTO_E_BASE64_PADDING, NULL),
	C("extra-padding", "sha256 " E256 "=", PROTO_E_BASE64_PADDING, NULL),
};

Test(digest_checksum, table)
{
	for (size_t i = 0; i < sizeof(checksum_cases) / sizeof(checksum_cases[0]); i++)
		check_case(&checksum_cases[i], digest_checksum_parse);
}

static const struct dcase repr_cases[] = {
	C("valid-empty", "sha-256=:" E256 ":", PROTO_OK, H_EMPTY),
	C("valid-abc", "sha-256=:" A256 ":", PROTO_OK, H_ABC),
	C("with-sha512", "sha-256=:" A256 ":, sha-512=:" A512 ":", PROTO_OK, H_ABC),
	C("reversed", "sha-512=:" A512 ":, sha-256=:" A256 ":", PROTO_OK, H_ABC),
	C("no-space", "sha-256=:" A256 ":,sha-512=:" A512 ":", PROTO_OK, H_ABC),
	C("ows-around-comma", "sha-512=:" E512 ": \t ,\t  sha-256=:" E256 ":", PROTO_OK, H_EMPTY),
	C("leading-sp", "   sha-256=:" E256 ":", PROTO_OK, H_EMPTY),
	C("trailing-sp", "sha-256=:" E256 ":  ", PROTO_OK, H_EMPTY),
	C("trailing-htab", "sha-256=:" E256 ":\t", PROTO_OK, H_EMPTY),
	C("unknown-keys-ignored", "md5=:" MD5_EMPTY ":, unixsum=:MTIz:, sha-256=:" E256 ":",
	  PROTO_OK, H_EMPTY),
	C("star-key", "*x.y_z-1=::, sha-256=:" E256 ":", PROTO_OK, H_EMPTY),
	C("empty-bytes-other-key", "sha-256=:" E256 ":, md5=::", PROTO_OK, H_EMPTY),
	C("sha-256-prefix-key", "sha-2560=::, sha-256=:" E256 ":", PROTO_OK, H_EMPTY),
	C("empty", "", PROTO_E_EMPTY, NULL),
	C("only-sp", "    ", PROTO_E_EMPTY, NULL),
	C("only-htab", "\t", PROTO_E_DIGEST_SYNTAX, NULL),
	C("leading-htab", "\tsha-256=:" E256 ":", PROTO_E_DIGEST_SYNTAX, NULL),
	C("bare-key", "sha-256", PROTO_E_DIGEST_SYNTAX, NULL),
	C("bare-key-then-member", "sha-512, sha-256=:" E256 ":", PROTO_E_DIGEST_SYNTAX, NULL),
	C("key-eq-nothing", "sha-256=", PROTO_E_DIGEST_SYNTAX, NULL),
	C("params", "sha-256=:" E256 ":;p=1", PROTO_E_DIGEST_SYNTAX, NULL),
	C("param-bare", "sha-256=:" E256 ":;a", PROTO_E_DIGEST_SYNTAX, NULL),
	C("param-on-other", "sha-512=:" E512 ";x, sha-256=:" E256 ":", PROTO_E_DIGEST_SYNTAX, NULL),
	C("token-value", "sha-256=abc", PROTO_E_DIGEST_SYNTAX, NULL),
	C("token-b64-value", "sha-256=" E256, PROTO_E_DIGEST_SYNTAX, NULL),
	C("string-value", "sha-256=\"" E256 "\"", PROTO_E_DIGEST_SYNTAX, NULL),
	C("integer-value", "sha-256=1", PROTO_E_DIGEST_SYNTAX, NULL),
	C("inner-list", "sha-256=(:" E256 ":)", PROTO_E_DIGEST_SYNTAX, NULL),
	C("boolean-value", "sha-256=?1", PROTO_E_DIGEST_SYNTAX, NULL),
	C("uppercase-key", "SHA-256=:" E256 ":", PROTO_E_DIGEST_SYNTAX, NULL),
	C("mixed-case-key", "Sha-256=:" E256 ":", PROTO_E_DIGEST_SYNTAX, NULL),
	C("digit-first-key", "256=:" E256 ":", PROTO_E_DIGEST_SYNTAX, NULL),
	C("non-ascii-key", "sh\xc3\xa1-256=:" E256 ":", PROTO_E_DIGEST_SYNTAX, NULL),
	C("missing-colons", "sha-256=" E256, PROTO_E_DIGEST_SYNTAX, NULL),
	C("missing-close", "sha-256=:" E256, PROTO_E_DIGEST_SYNTAX, NULL),
	C("missing-open", "sha-256=" E256 ":", PROTO_E_DIGEST_SYNTAX, NULL),
	C("sp-around-eq", "sha-256 = :" E256 ":", PROTO_E_DIGEST_SYNTAX, NULL),
	C("sp-inside-bytes", "sha-256=: " E256 ":", PROTO_E_DIGEST_SYNTAX, NULL),
	C("base64url-inside", "sha-256=:" E256_URL ":", PROTO_E_DIGEST_SYNTAX, NULL),
	C("trailing-comma", "sha-256=:" E256 ":,", PROTO_E_DIGEST_SYNTAX, NULL),
	C("trailing-comma-sp", "sha-256=:" E256 ":, ", PROTO_E_DIGEST_SYNTAX, NULL),
	C("leading-comma", ",sha-256=:" E256 ":", PROTO_E_DIGEST_SYNTAX, NULL),
	C("empty-member", "sha-256=:" E256 ":, ,sha-512=:" E512 ":", PROTO_E_DIGEST_SYNTAX, NULL),
	C("double-comma", "sha-256=:" E256 ":,,sha-512=:" E512 ":", PROTO_E_DIGEST_SYNTAX, NULL),
	C("missing-comma", "sha-256=:" E256 ": sha-512=:" E512 ":", PROTO_E_DIGEST_SYNTAX, NULL),
	C("semicolon-separator", "sha-256=:" E256 ":;sha-512=:" E512 ":", PROTO_E_DIGEST_SYNTAX,
	  NULL),
	C("crlf", "sha-256=:" E256 ":\r\n", PROTO_E_DIGEST_SYNTAX, NULL),
	C("obs-fold", "sha-256=:" E256 ":,\r\n sha-512=:" E512 ":", PROTO_E_DIGEST_SYNTAX, NULL),
	C("nul-after", "sha-256=:" E256 ":\0", PROTO_E_DIGEST_SYNTAX, NULL),
	C("nul-in-bytes",
	  "sha-256=:47DEQpj8\0Sa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:", PROTO_E_DIGEST_SYNTAX, NULL),
	C("syntax-beats-dup", "sha-256=:" E256 ":, sha-256=:" E256 ":, x", PROTO_E_DIGEST_SYNTAX,
	  NULL),
	C("syntax-beats-length", "sha-256=::, ;", PROTO_E_DIGEST_SYNTAX, NULL),
	C("dup-same", "sha-256=:" E256 ":, sha-256=:" E256 ":", PROTO_E_DIGEST_DUP, NULL),
	C("dup-different", "sha-256=:" E256 ":, sha-256=:" A256 ":", PROTO_E_DIGEST_DUP, NULL),
	C("dup-sha512", "sha-512=:" E512 ":, sha-256=:" E256 ":,sha-512=:" A512 ":",
	  PROTO_E_DIGEST_DUP, NULL),
	C("dup-unknown", "md5=::, sha-256=:" E256 ":, md5=::", PROTO_E_DIGEST_DUP, NULL),
	C("dup-beats-length", "sha-256=::, sha-256=:" E256 ":", PROTO_E_DIGEST_DUP, NULL),
	C("only-sha512", "sha-512=:" E512 ":", PROTO_E_DIGEST_NO_SHA256, NULL),
	C("only-md5", "md5=:" MD5_EMPTY ":", PROTO_E_DIGEST_NO_SHA256, NULL),
	C("sha256-without-hyphen", "sha256=:" E256 ":", PROTO_E_DIGEST_NO_SHA256, NULL),
	C("sha-256-longer-key", "sha-256x=:" E256 ":", PROTO_E_DIGEST_NO_SHA256, NULL),
	C("empty-bytes", "sha-256=::", PROTO_E_HASH_LENGTH, NULL),
	C("short-31", "sha-256=:" B31 ":", PROTO_E_HASH_LENGTH, NULL),
	C("long-33", "sha-256=:" B33 ":", PROTO_E_HASH_LENGTH, NULL),
	C("sha256-given-512-bytes", "sha-256=:" E512 ":", PROTO_E_HASH_LENGTH, NULL),
	C("sha512-given-256-bytes", "sha-256=:" E256 ":, sha-512=:" E256 ":", PROTO_E_HASH_LENGTH,
	  NULL),
	C("sha512-empty", "sha-512=::, sha-256=:" E256 ":", PROTO_E_HASH_LENGTH, NULL),
	C("no-padding", "sha-256=:" E256_NOPAD ":", PROTO_E_BASE64_PADDING, NULL),
	C("noncanonical", "sha-256=:" E256_NONCANON ":", PROTO_E_BASE64_NONCANON, NULL),
	C("padding-inside",
	  "sha-256=:47DE=pj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:", PROTO_E_BASE64_PADDING, NULL),
	C("unknown-key-bad-base64", "md5=:abcde:, sha-256=:" E256 ":", PROTO_E_BASE64, NULL),
};

Test(digest_repr, table)
{
	for (size_t i = 0; i < sizeof(repr_cases) / sizeof(repr_cases[0]); i++)
		check_case(&repr_cases[i], digest_repr_parse);
}

/* Builds prefix padded with fill up to total bytes, then body; returns total. */
static size_t pad_value(char *buf, size_t total, char fill, const char *body)
{
	size_t blen = strlen(body);

	cr_assert_geq(total, blen);
	memset(buf, fill, total - blen);
	memcpy(buf + total - blen, body, blen);
	return total;
}

Test(digest_repr, size_cap_boundary)
{
	char buf[DIGEST_HEADER_MAX + 2];
	unsigned char out[DIGEST_SHA256_LEN];

	/* Leading SP is legal RFC 8941, so it pads a valid value to the exact cap. */
	pad_value(buf, DIGEST_HEADER_MAX, ' ', "sha-256=:" E256 ":");
	cr_expect_eq(digest_repr_parse(buf, DIGEST_HEADER_MAX, out), PROTO_OK);
	pad_value(buf, DIGEST_HEADER_MAX + 1, ' ', "sha-256=:" E256 ":");
	cr_expect_eq(digest_repr_parse(buf, DIGEST_HEADER_MAX + 1, out), PROTO_E_TOO_LONG);
	cr_expect_eq(digest_repr_parse(buf, (size_t)-1, out), PROTO_E_TOO_LONG);
}

Test(digest_checksum, size_cap_boundary)
{
	char buf[DIGEST_HEADER_MAX + 2];
	unsigned char out[DIGEST_SHA256_LEN];

	/* "md5 " then 1020 'A': well-formed, so at the cap the algorithm is what fails. */
	memcpy(buf, "md5 ", 4);
	memset(buf + 4, 'A', sizeof(buf) - 4);
	cr_expect_eq(digest_checksum_parse(buf, DIGEST_HEADER_MAX, out),
		     PROTO_E_CHECKSUM_ALGORITHM);
	cr_expect_eq(digest_checksum_parse(buf, DIGEST_HEADER_MAX + 1, out), PROTO_E_TOO_LONG);
	memcpy(buf, "sha256 ", 7);
	cr_expect_eq(digest_checksum_parse(buf, DIGEST_HEADER_MAX, out), PROTO_E_BASE64);
}

Test(digest_repr, most_members_fit)
{
	char buf[DIGEST_HEADER_MAX + 1];
	unsigned char out[DIGEST_SHA256_LEN];
	size_t n = 0, members = 0;

	/* 205 shortest members "a=::" joined by "," fill the cap exactly. */
	while (n + 4 <= DIGEST_HEADER_MAX) {
		if (n)
			buf[n++] = ',';
		memcpy(buf + n, "a=::", 4);
		n += 4;
		members++;
	}
	cr_assert_eq(n, DIGEST_HEADER_MAX);
	cr_assert_eq(members, 205);
	cr_expect_eq(digest_repr_parse(buf, n, out), PROTO_E_DIGEST_DUP);
}

Test(digest_repr, many_distinct_members)
{
	char buf[DIGEST_HEADER_MAX + 1];
	unsigned char out[DIGEST_SHA256_LEN], want[DIGEST_SHA256_LEN];
	size_t n = 0;
	int k = 0;
	const char *tail = "sha-256=:" A256 ":";

	while (n + 8 + strlen(tail) <= DIGEST_HEADER_MAX) {
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "k%03d=::,", k++);
	}
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s", tail);
	cr_assert_gt(k, 100);
	memset(out, 0, sizeof(out));
	cr_expect_eq(digest_repr_parse(buf, n, out), PROTO_OK);
	hex_to_bytes(H_ABC, want, sizeof(want));
	cr_expect_arr_eq(out, want, sizeof(want));
	/* The same list with one key repeated at the far end. */
	memcpy(buf + n - strlen(tail), "k000=::,", 8);
	n = n - strlen(tail) + 8;
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s", "a=::");
	cr_expect_eq(digest_repr_parse(buf, n, out), PROTO_E_DIGEST_DUP);
}

Test(digest_format, exact_output_and_buffer)
{
	unsigned char d[DIGEST_SHA256_LEN];
	char buf[DIGEST_REPR_LEN + 8];

	hex_to_bytes(H_EMPTY, d, sizeof(d));
	cr_assert_eq(digest_repr_format(d, buf, DIGEST_REPR_LEN), PROTO_OK);
	cr_expect_str_eq(buf, "sha-256=:" E256 ":");
	cr_expect_eq(strlen(buf) + 1, DIGEST_REPR_LEN);
	memset(buf, 'x', sizeof(buf));
	cr_expect_eq(digest_repr_format(d, buf, DIGEST_REPR_LEN - 1), PROTO_E_BUFFER);
	cr_expect_eq(buf[0], 'x', "buffer written on failure");
	cr_expect_eq(digest_repr_format(d, buf, 0), PROTO_E_BUFFER);

	hex_to_bytes(H_ABC, d, sizeof(d));
	cr_assert_eq(digest_checksum_format(d, buf, DIGEST_CHECKSUM_LEN), PROTO_OK);
	cr_expect_str_eq(buf, "sha256 " A256);
	cr_expect_eq(strlen(buf) + 1, DIGEST_CHECKSUM_LEN);
	memset(buf, 'x', sizeof(buf));
	cr_expect_eq(digest_checksum_format(d, buf, DIGEST_CHECKSUM_LEN - 1), PROTO_E_BUFFER);
	cr_expect_eq(buf[0], 'x', "buffer written on failure");
}

Test(digest_format, round_trip)
{
	unsigned char d[DIGEST_SHA256_LEN], out[DIGEST_SHA256_LEN];
	char buf[DIGEST_REPR_LEN];

	/* Patterns that hit every base64 character position and both extremes. */
	for (unsigned int seed = 0; seed < 512; seed++) {
		for (size_t i = 0; i < sizeof(d); i++)
			d[i] = (unsigned char)(seed < 256 ? seed : (seed * 31 + i * 17) & 0xff);
		cr_assert_eq(digest_repr_format(d, buf, sizeof(buf)), PROTO_OK);
		memset(out, 0, sizeof(out));
		cr_assert_eq(digest_repr_parse(buf, strlen(buf), out), PROTO_OK, "%s", buf);
		cr_assert_arr_eq(out, d, sizeof(d));
		cr_assert_eq(digest_checksum_format(d, buf, sizeof(buf)), PROTO_OK);
		memset(out, 0, sizeof(out));
		cr_assert_eq(digest_checksum_parse(buf, strlen(buf), out), PROTO_OK, "%s", buf);
		cr_assert_arr_eq(out, d, sizeof(d));
	}
}

Test(digest_repr, never_reads_past_len)
{
	unsigned char out[DIGEST_SHA256_LEN];
	const char full[] = "sha-256=:" E256 ":";

	/* Every proper prefix of a valid value must fail: the parser stops at len. */
	for (size_t n = 1; n < sizeof(full) - 1; n++)
		cr_expect_neq(digest_repr_parse(full, n, out), PROTO_OK, "prefix %zu", n);
	for (size_t n = 1; n < sizeof("sha256 " E256) - 1; n++)
		cr_expect_neq(digest_checksum_parse("sha256 " E256, n, out), PROTO_OK, "prefix %zu",
			      n);
}
