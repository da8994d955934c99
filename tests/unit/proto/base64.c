/* Tests proto/base64.c: RFC 4648 vectors, every rejection code, limits, and round trips. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/base64.h"

/* A string literal and its length, NUL bytes inside included. */
#define S(lit) lit, sizeof(lit) - 1

struct vector {
	const char *plain;
	size_t plain_len;
	const char *std;
	const char *url;
};

/* RFC 4648 section 10, plus bytes that exercise '+' '/' vs '-' '_' and NUL. */
static const struct vector vectors[] = {
	{S(""), "", ""},
	{S("f"), "Zg==", "Zg"},
	{S("fo"), "Zm8=", "Zm8"},
	{S("foo"), "Zm9v", "Zm9v"},
	{S("foob"), "Zm9vYg==", "Zm9vYg"},
	{S("fooba"), "Zm9vYmE=", "Zm9vYmE"},
	{S("foobar"), "Zm9vYmFy", "Zm9vYmFy"},
	{S("\xfb\xff\xbf"), "+/+/", "-_-_"},
	{S("\x00"), "AA==", "AA"},
	{S("\x00\x00\x00"), "AAAA", "AAAA"},
	{S("\xff\xfe"), "//4=", "__4"},
};

Test(base64, vectors_decode_and_encode_both_variants)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const struct vector *v = &vectors[i];
		unsigned char out[16];
		char enc[32];
		size_t n = 99;

		cr_expect_eq(base64_decode(v->std, strlen(v->std), out, sizeof(out), &n), PROTO_OK,
			     "std decode \"%s\"", v->std);
		cr_expect_eq(n, v->plain_len, "std decode \"%s\" length", v->std);
		cr_expect_eq(memcmp(out, v->plain, v->plain_len), 0, "std decode \"%s\"", v->std);

		n = 99;
		cr_expect_eq(base64url_decode(v->url, strlen(v->url), out, sizeof(out), &n),
			     PROTO_OK, "url decode \"%s\"", v->url);
		cr_expect_eq(n, v->plain_len, "url decode \"%s\" length", v->url);
		cr_expect_eq(memcmp(out, v->plain, v->plain_len), 0, "url decode \"%s\"", v->url);

		n = 99;
		memset(enc, 'x', sizeof(enc));
		cr_expect_eq(base64_encode((const unsigned char *)v->plain, v->plain_len, enc,
					   sizeof(enc), &n),
			     PROTO_OK);
		cr_expect_str_eq(enc, v->std);
		cr_expect_eq(n, strlen(v->std));
		cr_expect_eq(BASE64_ENCODED_LEN(v->plain_len), strlen(v->std));

		n = 99;
		memset(enc, 'x', sizeof(enc));
		cr_expect_eq(base64url_encode((const unsigned char *)v->plain, v->plain_len, enc,
					      sizeof(enc), &n),
			     PROTO_OK);
		cr_expect_str_eq(enc, v->url);
		cr_expect_eq(n, strlen(v->url));
		cr_expect_eq(BASE64URL_ENCODED_LEN(v->plain_len), strlen(v->url));
	}
}

struct reject {
	const char *in;
	size_t len;
	enum proto_err rc;
};

static const struct reject std_rejects[] = {
	/* characters outside the alphabet */
	{S("Zm9v!A=="), PROTO_E_BASE64},
	{S("Zm9-"), PROTO_E_BASE64},       /* url alphabet in std */
	{S("Zm9_"), PROTO_E_BASE64},
	{S("Zm9\xc3\xa9"), PROTO_E_BASE64}, /* non-ASCII */
	{S("Zm9v\0AAA"), PROTO_E_BASE64},   /* NUL inside len */
	/* whitespace anywhere, even where OpenSSL would skip it */
	{S(" Zm9v"), PROTO_E_BASE64},
	{S("Zm9v "), PROTO_E_BASE64},
	{S("Zm\n9v"), PROTO_E_BASE64},
	{S("Zm9v\r\n"), PROTO_E_BASE64},
	{S("Zg=\t"), PROTO_E_BASE64},
	{S("Zm9v\tYg=="), PROTO_E_BASE64},
	/* a foreign byte outranks a padding fault */
	{S("Z=!="), PROTO_E_BASE64},
	/* length: a lone trailing sextet can never be completed */
	{S("Z"), PROTO_E_BASE64},
	{S("Zm9vY"), PROTO_E_BASE64},
	{S("Z==="), PROTO_E_BASE64},
	/* '=' in the middle */
	{S("Zg==Zg=="), PROTO_E_BASE64_PADDING},
	{S("Z=g="), PROTO_E_BASE64_PADDING},
	{S("=Zg="), PROTO_E_BASE64_PADDING},
	{S("Zm9v=AAA"), PROTO_E_BASE64_PADDING},
	/* too much padding */
	{S("Zg==="), PROTO_E_BASE64_PADDING},
	{S("Zm9v="), PROTO_E_BASE64_PADDING},
	{S("Zm9v===="), PROTO_E_BASE64_PADDING},
	{S("===="), PROTO_E_BASE64_PADDING},
	{S("="), PROTO_E_BASE64_PADDING},
	{S("Zm8=="), PROTO_E_BASE64_PADDING},
	/* missing or short padding */
	{S("Zg"), PROTO_E_BASE64_PADDING},
	{S("Zg="), PROTO_E_BASE64_PADDING},
	{S("Zm8"), PROTO_E_BASE64_PADDING},
	{S("Zm9vYg"), PROTO_E_BASE64_PADDING},
	/* non-zero unused bits: a second spelling of the same bytes */
	{S("Zh=="), PROTO_E_BASE64_NONCANON},
	{S("Zm9="), PROTO_E_BASE64_NONCANON},
	{S("Zm9vYh=="), PROTO_E_BASE64_NONCANON},
	{S("//5="), PROTO_E_BASE64_NONCANON},
};

static const struct reject url_rejects[] = {
	{S("Zg=="), PROTO_E_BASE64_PADDING}, /* padding forbidden */
	{S("Zm8="), PROTO_E_BASE64_PADDING},
	{S("Zm9v="), PROTO_E_BASE64},        /* length 5 is checked first */
	{S("Z=g"), PROTO_E_BASE64_PADDING},
	{S("+/+/"), PROTO_E_BASE64},         /* std alphabet in url */
	{S("Zm9+"), PROTO_E_BASE64},
	{S("Zm9/"), PROTO_E_BASE64},
	{S("Zm=+"), PROTO_E_BASE64},         /* foreign byte outranks '=' */
	{S("Z"), PROTO_E_BASE64},            /* len % 4 == 1 */
	{S("Zm9vY"), PROTO_E_BASE64},
	{S("Zm9vYmFyY"), PROTO_E_BASE64},
	{S("Zm 9"), PROTO_E_BASE64},
	{S("Zm9v\n"), PROTO_E_BASE64},
	{S("Zg\0"), PROTO_E_BASE64},
	{S("Zm9\xff"), PROTO_E_BASE64},
	{S("Zh"), PROTO_E_BASE64_NONCANON},
	{S("Zm9"), PROTO_E_BASE64_NONCANON},
	{S("__5"), PROTO_E_BASE64_NONCANON},
};

Test(base64, std_rejects_each_with_its_code)
{
	for (size_t i = 0; i < sizeof(std_rejects) / sizeof(std_rejects[0]); i++) {
		const struct reject *r = &std_rejects[i];
		unsigned char out[16];
		size_t n = 12345;

		cr_expect_eq(base64_decode(r->in, r->len, out, sizeof(out), &n), r->rc,
			     "std case %zu", i);
		cr_expect_eq(n, 12345, "std case %zu wrote *out_len on failure", i);
	}
}

Test(base64, url_rejects_each_with_its_code)
{
	for (size_t i = 0; i < sizeof(url_rejects) / sizeof(url_rejects[0]); i++) {
		const struct reject *r = &url_rejects[i];
		unsigned char out[16];
		size_t n = 12345;

		cr_expect_eq(base64url_decode(r->in, r->len, out, sizeof(out), &n), r->rc,
			     "url case %zu", i);
		cr_expect_eq(n, 12345, "url case %zu wrote *out_len on failure", i);
	}
}

Test(base64, decode_buffer_exact_and_one_short)
{
	unsigned char out[6];
	size_t n = 0;

	cr_expect_eq(base64_decode(S("Zm9vYmFy"), out, 6, &n), PROTO_OK);
	cr_expect_eq(n, 6);
	n = 77;
	cr_expect_eq(base64_decode(S("Zm9vYmFy"), out, 5, &n), PROTO_E_BUFFER);
	cr_expect_eq(n, 77);
	cr_expect_eq(base64_decode(S("Zm9vYmE="), out, 5, &n), PROTO_OK);
	cr_expect_eq(n, 5);
	cr_expect_eq(base64url_decode(S("Zm9vYmE"), out, 4, &n), PROTO_E_BUFFER);
	cr_expect_eq(base64url_decode(S("Zm9vYmE"), out, 5, &n), PROTO_OK);
	cr_expect_eq(base64_decode(S(""), NULL, 0, &n), PROTO_OK);
	cr_expect_eq(n, 0);
}

Test(base64, encode_buffer_counts_the_nul)
{
	char out[9];
	size_t n = 0;

	cr_expect_eq(base64_encode((const unsigned char *)"foobar", 6, out, 9, &n), PROTO_OK);
	cr_expect_str_eq(out, "Zm9vYmFy");
	cr_expect_eq(base64_encode((const unsigned char *)"foobar", 6, out, 8, &n),
		     PROTO_E_BUFFER);
	cr_expect_eq(base64url_encode((const unsigned char *)"fooba", 5, out, 8, &n), PROTO_OK);
	cr_expect_str_eq(out, "Zm9vYmE");
	cr_expect_eq(base64url_encode((const unsigned char *)"fooba", 5, out, 7, &n),
		     PROTO_E_BUFFER);
	cr_expect_eq(base64_encode((const unsigned char *)"", 0, out, 1, NULL), PROTO_OK);
	cr_expect_str_eq(out, "");
	cr_expect_eq(base64_encode((const unsigned char *)"", 0, out, 0, NULL), PROTO_E_BUFFER);
}

/* BASE64_INPUT_MAX characters are accepted, one more is refused before any decoding. */
Test(base64, input_limit_exact_and_plus_one)
{
	size_t cap = BASE64_DECODED_MAX(BASE64_INPUT_MAX + 4);
	char *in = malloc(BASE64_INPUT_MAX + 4);
	unsigned char *out = malloc(cap);
	size_t n = 0;

	cr_assert(in && out);
	memset(in, 'A', BASE64_INPUT_MAX + 4);
	cr_expect_eq(base64_decode(in, BASE64_INPUT_MAX, out, cap, &n), PROTO_OK);
	cr_expect_eq(n, BASE64_INPUT_MAX / 4 * 3);
	cr_expect_eq(base64_decode(in, BASE64_INPUT_MAX + 4, out, cap, &n), PROTO_E_TOO_LONG);
	cr_expect_eq(base64url_decode(in, BASE64_INPUT_MAX, out, cap, &n), PROTO_OK);
	cr_expect_eq(base64url_decode(in, BASE64_INPUT_MAX + 1, out, cap, &n),
		     PROTO_E_TOO_LONG);
	cr_expect_eq(base64url_decode(in, BASE64_INPUT_MAX + 2, out, cap, &n),
		     PROTO_E_TOO_LONG);
	/* the size cap is checked before the characters */
	in[0] = '!';
	cr_expect_eq(base64_decode(in, BASE64_INPUT_MAX + 4, out, cap, &n), PROTO_E_TOO_LONG);
	cr_expect_eq(base64_decode(in, BASE64_INPUT_MAX, out, cap, &n), PROTO_E_BASE64);
	free(in);
	free(out);
}

Test(base64, encode_limit)
{
	size_t len = (size_t)BASE64_INPUT_MAX * 3;
	unsigned char *in = calloc(1, len + 1);
	size_t cap = BASE64_ENCODED_LEN(len + 1) + 1;
	char *out = malloc(cap);
	size_t n = 0;

	cr_assert(in && out);
	cr_expect_eq(base64_encode(in, len, out, cap, &n), PROTO_OK);
	cr_expect_eq(n, BASE64_ENCODED_LEN(len));
	cr_expect_eq(base64_encode(in, len + 1, out, cap, &n), PROTO_E_TOO_LONG);
	free(in);
	free(out);
}

Test(base64, url_encode_limit)
{
	size_t len = (size_t)BASE64_INPUT_MAX * 3;
	unsigned char *in = calloc(1, len + 1);
	size_t cap = BASE64URL_ENCODED_LEN(len + 1) + 1;
	char *out = malloc(cap);
	size_t n = 0;

	cr_assert(in && out);
	cr_expect_eq(base64url_encode(in, len, out, cap, &n), PROTO_OK);
	cr_expect_eq(n, BASE64URL_ENCODED_LEN(len));
	cr_expect_eq(base64url_encode(in, len + 1, out, cap, &n), PROTO_E_TOO_LONG);
	/*
	 * Lengths whose size computations wrap around: refused for their length before any
	 * arithmetic or allocation (the input is never read, so a short buffer stands in).
	 */
	cr_expect_eq(base64url_encode(in, SIZE_MAX / 4 + 1, out, cap, &n), PROTO_E_TOO_LONG);
	cr_expect_eq(base64url_encode(in, SIZE_MAX - 1, out, cap, &n), PROTO_E_TOO_LONG);
	cr_expect_eq(base64_encode(in, SIZE_MAX - 1, out, cap, &n), PROTO_E_TOO_LONG);
	free(in);
	free(out);
}

/* Every byte value and every length 0..64 survives both encoders and decoders unchanged. */
Test(base64, round_trip_all_bytes_and_lengths)
{
	unsigned char plain[256], back[256];
	char enc[BASE64_ENCODED_LEN(256) + 1];

	for (size_t i = 0; i < sizeof(plain); i++)
		plain[i] = (unsigned char)(i * 167 + 13);
	for (size_t len = 0; len <= 64; len++) {
		for (size_t off = 0; off + len <= sizeof(plain); off += 61) {
			size_t n = 0, m = 0;

			cr_assert_eq(base64_encode(plain + off, len, enc, sizeof(enc), &n),
				     PROTO_OK);
			cr_assert_eq(base64_decode(enc, n, back, sizeof(back), &m), PROTO_OK,
				     "len %zu", len);
			cr_assert_eq(m, len);
			cr_assert_eq(memcmp(back, plain + off, len), 0);
			cr_assert_eq(base64url_encode(plain + off, len, enc, sizeof(enc), &n),
				     PROTO_OK);
			cr_assert_eq(strchr(enc, '='), NULL);
			cr_assert_eq(base64url_decode(enc, n, back, sizeof(back), &m), PROTO_OK,
				     "len %zu", len);
			cr_assert_eq(m, len);
			cr_assert_eq(memcmp(back, plain + off, len), 0);
		}
	}
}
