/* Tests proto/owner.c: owner identity check, Fs-Owner encoding, and the owner hash. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "proto/base64.h"
#include "proto/owner.h"

/* A string literal and its length, NUL bytes inside included. */
#define S(lit) lit, sizeof(lit) - 1

struct check_case {
	const char *in;
	size_t len;
	enum proto_err rc;
};

static const struct check_case checks[] = {
	{S("alice"), PROTO_OK},
	{S("user@example.com"), PROTO_OK},
	{S("auth0|5f7c8ec7c33c6c004bbafe82"), PROTO_OK},
	{S("a b"), PROTO_OK},                           /* SP is not a control */
	{S("\xc3\xa9l\xc3\xa8ve"), PROTO_OK},
	{S("\xe6\x96\x87\xf0\x9f\x98\x80"), PROTO_OK},
	{S("\xc2\xa0"), PROTO_OK},                      /* U+00A0, just past C1 */
	{S("~"), PROTO_OK},                             /* U+007E, just before DEL */
	{S(""), PROTO_E_EMPTY},
	{S("a\0b"), PROTO_E_OWNER},
	{S("\0"), PROTO_E_OWNER},
	{S("alice\n"), PROTO_E_OWNER},
	{S("alice\r\nX-Admin: 1"), PROTO_E_OWNER},
	{S("a\tb"), PROTO_E_OWNER},
	{S("\x1f"), PROTO_E_OWNER},
	{S("\x7f"), PROTO_E_OWNER},
	{S("\xc2\x80"), PROTO_E_OWNER},
	{S("\xc2\x9f"), PROTO_E_OWNER},
	{S("\xc0\x80"), PROTO_E_OWNER},                 /* overlong NUL */
	{S("\xed\xbf\xbf"), PROTO_E_OWNER},             /* surrogate */
	{S("\xf4\x90\x80\x80"), PROTO_E_OWNER},
	{S("\xf8\x88\x80\x80\x80"), PROTO_E_OWNER},     /* 5-byte form */
	{S("caf\xe9"), PROTO_E_OWNER},                  /* Latin-1 */
	{S("\xe2\x82"), PROTO_E_OWNER},                 /* truncated at the end */
	{S("\xe2\x82z"), PROTO_E_OWNER},
	{S("\xbf"), PROTO_E_OWNER},
};

Test(owner_check, table)
{
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++)
		cr_expect_eq(owner_check(checks[i].in, checks[i].len), checks[i].rc, "case %zu", i);
}

Test(owner_check, length_limit_counts_bytes)
{
	char buf[OWNER_MAX + 2];

	memset(buf, 'a', sizeof(buf));
	cr_expect_eq(owner_check(buf, OWNER_MAX), PROTO_OK);
	cr_expect_eq(owner_check(buf, OWNER_MAX + 1), PROTO_E_TOO_LONG);
	/* 128 two-byte characters are OWNER_MAX bytes; one more byte is too many */
	for (size_t i = 0; i + 1 < OWNER_MAX; i += 2) {
		buf[i] = '\xc3';
		buf[i + 1] = '\xa9';
	}
	cr_expect_eq(owner_check(buf, OWNER_MAX), PROTO_OK);
	cr_expect_eq(owner_check(buf, OWNER_MAX + 1), PROTO_E_TOO_LONG);
	/* the length is judged before the content */
	buf[0] = '\n';
	cr_expect_eq(owner_check(buf, OWNER_MAX + 1), PROTO_E_TOO_LONG);
	cr_expect_eq(owner_check(buf, OWNER_MAX), PROTO_E_OWNER);
}

struct codec_case {
	const char *plain;
	size_t len;
	const char *enc;
	const char *hash;
};

static const struct codec_case codecs[] = {
	{S("alice"), "YWxpY2U", "2bd806c97f0e00af1a1fc3328fa763a9"},
	{S("user@example.com"), "dXNlckBleGFtcGxlLmNvbQ", "b4c9a289323b21a01c3e940f150eb9b8"},
	{S("\xc3\xa9"), "w6k", "4a99557e4033c3539de2eb65472017ca"},
	{S("auth0|5f7c8ec7c33c6c004bbafe82"), "YXV0aDB8NWY3YzhlYzdjMzNjNmMwMDRiYmFmZTgy",
	 "41aa487887e3c45c19b2448b2f036552"},
};

Test(owner_codec, encode_decode_hash_exact)
{
	for (size_t i = 0; i < sizeof(codecs) / sizeof(codecs[0]); i++) {
		const struct codec_case *c = &codecs[i];
		char enc[OWNER_HEADER_MAX + 1], dec[OWNER_MAX + 1], hash[OWNER_HASH_LEN + 1];
		size_t n = 0;

		cr_expect_eq(owner_encode(c->plain, c->len, enc, sizeof(enc)), PROTO_OK);
		cr_expect_str_eq(enc, c->enc, "case %zu", i);
		cr_expect_eq(owner_decode(c->enc, strlen(c->enc), dec, sizeof(dec), &n), PROTO_OK);
		cr_expect_eq(n, c->len);
		cr_expect_str_eq(dec, c->plain, "case %zu", i);
		cr_expect_eq(owner_hash(c->plain, c->len, hash, sizeof(hash)), PROTO_OK);
		cr_expect_str_eq(hash, c->hash, "case %zu", i);
	}
}

struct decode_case {
	const char *in;
	size_t len;
	enum proto_err rc;
};

static const struct decode_case decodes[] = {
	{S(""), PROTO_E_EMPTY},
	{S("YWxpY2U="), PROTO_E_BASE64_PADDING},  /* padded */
	{S("YWxp+2U"), PROTO_E_BASE64},           /* std alphabet */
	{S("YWxp/2U"), PROTO_E_BASE64},
	{S("YWxpY2U "), PROTO_E_BASE64},
	{S("YWxpY2U\n"), PROTO_E_BASE64},
	{S("YWxpY2U\0"), PROTO_E_BASE64},
	{S("YWxpY"), PROTO_E_BASE64},             /* length % 4 == 1 */
	{S("YWxpY2V"), PROTO_E_BASE64_NONCANON},  /* "alice" with a set unused bit */
	{S("AA"), PROTO_E_OWNER},                 /* decodes to NUL */
	{S("YQo"), PROTO_E_OWNER},                /* "a\n" */
	{S("wqA"), PROTO_OK},                     /* U+00A0 */
	{S("woU"), PROTO_E_OWNER},                /* U+0085 */
	{S("_w"), PROTO_E_OWNER},                 /* 0xff */
	{S("7aCA"), PROTO_E_OWNER},               /* surrogate */
};

Test(owner_decode, rejects_each_with_its_code)
{
	for (size_t i = 0; i < sizeof(decodes) / sizeof(decodes[0]); i++) {
		const struct decode_case *d = &decodes[i];
		char out[OWNER_MAX + 1];
		size_t n = 999;

		memset(out, '#', sizeof(out));
		cr_expect_eq(owner_decode(d->in, d->len, out, sizeof(out), &n), d->rc, "case %zu",
			     i);
		if (d->rc) {
			cr_expect_eq(n, 999, "case %zu wrote *out_len", i);
			cr_expect_eq(out[0], '#', "case %zu wrote out", i);
		}
	}
}

/* OWNER_MAX bytes encode to exactly OWNER_HEADER_MAX characters; more is refused both ways. */
Test(owner_codec, limits)
{
	char plain[OWNER_MAX + 3], enc[OWNER_HEADER_MAX + 8], dec[OWNER_MAX + 1];
	unsigned char raw[OWNER_MAX + 3];
	size_t n = 0;

	memset(plain, 'a', sizeof(plain));
	cr_assert_eq(owner_encode(plain, OWNER_MAX, enc, OWNER_HEADER_MAX + 1), PROTO_OK);
	cr_expect_eq(strlen(enc), OWNER_HEADER_MAX);
	cr_expect_eq(BASE64URL_ENCODED_LEN(OWNER_MAX), OWNER_HEADER_MAX);
	cr_expect_eq(owner_encode(plain, OWNER_MAX, enc, OWNER_HEADER_MAX), PROTO_E_BUFFER);
	cr_expect_eq(owner_encode(plain, OWNER_MAX + 1, enc, sizeof(enc)), PROTO_E_TOO_LONG);
	cr_expect_eq(owner_encode("", 0, enc, sizeof(enc)), PROTO_E_EMPTY);
	cr_expect_eq(owner_encode(S("a\n"), enc, sizeof(enc)), PROTO_E_OWNER);

	cr_assert_eq(owner_encode(plain, OWNER_MAX, enc, sizeof(enc)), PROTO_OK);
	cr_expect_eq(owner_decode(enc, OWNER_HEADER_MAX, dec, sizeof(dec), &n), PROTO_OK);
	cr_expect_eq(n, OWNER_MAX);
	cr_expect_eq(dec[OWNER_MAX], '\0');
	/* the output buffer must hold the NUL too */
	cr_expect_eq(owner_decode(enc, OWNER_HEADER_MAX, dec, OWNER_MAX, &n), PROTO_E_BUFFER);

	/* 257 and 258 bytes: valid base64url texts longer than the cap */
	memset(raw, 'a', sizeof(raw));
	cr_assert_eq(base64url_encode(raw, OWNER_MAX + 1, enc, sizeof(enc), &n), PROTO_OK);
	cr_assert_eq(n, OWNER_HEADER_MAX + 1);
	cr_expect_eq(owner_decode(enc, n, dec, sizeof(dec), &n), PROTO_E_TOO_LONG);
	cr_assert_eq(base64url_encode(raw, OWNER_MAX + 2, enc, sizeof(enc), &n), PROTO_OK);
	cr_assert_eq(n, OWNER_HEADER_MAX + 2);
	cr_expect_eq(owner_decode(enc, n, dec, sizeof(dec), &n), PROTO_E_TOO_LONG);
}

Test(owner_hash, errors_and_properties)
{
	char hash[OWNER_HASH_LEN + 1], other[OWNER_HASH_LEN + 1];

	cr_expect_eq(owner_hash("alice", 5, hash, OWNER_HASH_LEN), PROTO_E_BUFFER);
	cr_expect_eq(owner_hash("", 0, hash, sizeof(hash)), PROTO_E_EMPTY);
	cr_expect_eq(owner_hash(S("al\nice"), hash, sizeof(hash)), PROTO_E_OWNER);
	/* the whole input counts, not just up to a NUL or to the hashed prefix */
	cr_assert_eq(owner_hash("alice", 5, hash, sizeof(hash)), PROTO_OK);
	cr_assert_eq(owner_hash("alicf", 5, other, sizeof(other)), PROTO_OK);
	cr_expect_str_neq(hash, other);
	cr_assert_eq(owner_hash("alic", 4, other, sizeof(other)), PROTO_OK);
	cr_expect_str_neq(hash, other);
	cr_expect_eq(strlen(hash), OWNER_HASH_LEN);
	cr_expect_eq(strspn(hash, "0123456789abcdef"), OWNER_HASH_LEN);
}
