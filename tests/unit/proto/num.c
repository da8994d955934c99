/* Tests proto/num.c: strict decimals, their limits, and the spellings they refuse. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/num.h"

struct num_case {
	const char *s;
	size_t len;
	uint64_t max;
	enum proto_err rc;
	uint64_t want;
};

#define C(s, max, rc, want)                                                                        \
	{                                                                                          \
		s, sizeof(s) - 1, max, rc, want                                                    \
	}
#define OK(s, max, want) C(s, max, PROTO_OK, want)
#define BAD(s, max, rc) C(s, max, rc, 0)

static const struct num_case cases[] = {
	OK("0", UINT64_MAX, 0),
	OK("1", UINT64_MAX, 1),
	OK("9", UINT64_MAX, 9),
	OK("10", UINT64_MAX, 10),
	OK("1234567890", UINT64_MAX, 1234567890),
	OK("4294967296", UINT64_MAX, UINT64_C(4294967296)),
	OK("9007199254740991", UINT64_MAX, UINT64_C(9007199254740991)),
	OK("18446744073709551614", UINT64_MAX, UINT64_MAX - 1),
	OK("18446744073709551615", UINT64_MAX, UINT64_MAX),

	/* max is inclusive */
	OK("0", 0, 0),
	BAD("1", 0, PROTO_E_RANGE),
	OK("999", 999, 999),
	BAD("1000", 999, PROTO_E_RANGE),
	OK("9007199254740991", UINT64_C(9007199254740991), UINT64_C(9007199254740991)),
	BAD("9007199254740992", UINT64_C(9007199254740991), PROTO_E_RANGE),

	/* overflow: never wrap around into a small value */
	BAD("18446744073709551616", UINT64_MAX, PROTO_E_RANGE),
	BAD("18446744073709551617", UINT64_MAX, PROTO_E_RANGE),
	BAD("18446744073709551621", 100, PROTO_E_RANGE),
	BAD("18446744073709551620", UINT64_MAX, PROTO_E_RANGE),
	BAD("18446744073709551625", UINT64_MAX, PROTO_E_RANGE),
	BAD("19000000000000000000", UINT64_MAX, PROTO_E_RANGE),
	BAD("99999999999999999999", UINT64_MAX, PROTO_E_RANGE),
	BAD("184467440737095516150", UINT64_MAX, PROTO_E_RANGE),
	BAD("100000000000000000000000000000", UINT64_MAX, PROTO_E_RANGE),

	BAD("", UINT64_MAX, PROTO_E_EMPTY),

	BAD("00", UINT64_MAX, PROTO_E_LEADING_ZERO),
	BAD("01", UINT64_MAX, PROTO_E_LEADING_ZERO),
	BAD("0123", UINT64_MAX, PROTO_E_LEADING_ZERO),
	BAD("000000000000000000000000000001", UINT64_MAX, PROTO_E_LEADING_ZERO),
	BAD("018446744073709551616", UINT64_MAX, PROTO_E_LEADING_ZERO),

	/* a non-digit anywhere wins over every other complaint */
	BAD("+1", UINT64_MAX, PROTO_E_NOT_NUMBER),
	BAD("-1", UINT64_MAX, PROTO_E_NOT_NUMBER),
	BAD("-0", UINT64_MAX, PROTO_E_NOT_NUMBER),
	BAD(" 1", UINT64_MAX, PROTO_E_NOT_NUMBER),
	BAD("1 ", UINT64_MAX, PROTO_E_NOT_NUMBER),
	BAD("\t1", UINT64_MAX, PROTO_E_NOT_NUMBER),
	BAD("1\r\n", UINT64_MAX, PROTO_E_NOT_NUMBER),
	BAD("1\0", UINT64_MAX, PROTO_E_NOT_NUMBER),
	BAD("\0" "1", UINT64_MAX, PROTO_E_NOT_NUMBER),
	BAD("\0", UINT64_MAX, PROTO_E_NOT_NUMBER),
	BAD("1a", UINT64_MAX, PROTO_E_NOT_NUMBER),
	BAD("a", UINT64_MAX, PROTO_E_NOT_NUMBER),
	BAD("0a", UINT64_MAX, PROTO_E_NOT_NUMBER),
	BAD("0x10", UINT64_MAX, PROTO_E_NOT_NUMBER),
	BAD("1.0", UINT64_MAX, PROTO_E_NOT_NUMBER),
	BAD("1,000", UINT64_MAX, PROTO_E_NOT_NUMBER),
	BAD("1_000", UINT64_MAX, PROTO_E_NOT_NUMBER),
	BAD("1e3", UINT64_MAX, PROTO_E_NOT_NUMBER),
	BAD("5, 5", UINT64_MAX, PROTO_E_NOT_NUMBER),
	BAD("99999999999999999999x", UINT64_MAX, PROTO_E_NOT_NUMBER),
	BAD("/", UINT64_MAX, PROTO_E_NOT_NUMBER), /* '0' - 1 */
	BAD(":", UINT64_MAX, PROTO_E_NOT_NUMBER), /* '9' + 1 */
	BAD("\xb0", UINT64_MAX, PROTO_E_NOT_NUMBER), /* '0' | 0x80 */
	BAD("\xd9\xa1", UINT64_MAX, PROTO_E_NOT_NUMBER), /* ARABIC-INDIC DIGIT ONE */
	BAD("\xef\xbc\x91", UINT64_MAX, PROTO_E_NOT_NUMBER), /* FULLWIDTH DIGIT ONE */
	BAD("\xc2\xb9", UINT64_MAX, PROTO_E_NOT_NUMBER), /* SUPERSCRIPT ONE */
};

Test(num_parse_u64, table)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct num_case *c = &cases[i];
		uint64_t out = UINT64_C(0x5a5a5a5a5a5a5a5a);
		enum proto_err rc = num_parse_u64(c->s, c->len, c->max, &out);

		cr_expect_eq(rc, c->rc, "case %zu: got %d, want %d", i, rc, c->rc);
		if (c->rc == PROTO_OK)
			cr_expect_eq(out, c->want, "case %zu: got %" PRIu64, i, out);
		else
			cr_expect_eq(out, UINT64_C(0x5a5a5a5a5a5a5a5a), "case %zu: out written", i);
	}
}

/* The length bounds the read: a digit right after len must not be taken. */
Test(num_parse_u64, honours_length)
{
	uint64_t out = 0;

	cr_expect_eq(num_parse_u64("12345", 3, UINT64_MAX, &out), PROTO_OK);
	cr_expect_eq(out, 123);
	cr_expect_eq(num_parse_u64("0123", 1, UINT64_MAX, &out), PROTO_OK);
	cr_expect_eq(out, 0);
	cr_expect_eq(num_parse_u64("1x", 1, UINT64_MAX, &out), PROTO_OK);
	cr_expect_eq(out, 1);
	cr_expect_eq(num_parse_u64(NULL, 0, UINT64_MAX, &out), PROTO_E_EMPTY);
}

Test(num_parse_u64, very_long_inputs)
{
	size_t n = 100000;
	char *s = malloc(n);
	uint64_t out = 7;

	cr_assert_not_null(s);
	memset(s, '9', n);
	cr_expect_eq(num_parse_u64(s, n, UINT64_MAX, &out), PROTO_E_RANGE);
	memset(s, '0', n);
	cr_expect_eq(num_parse_u64(s, n, UINT64_MAX, &out), PROTO_E_LEADING_ZERO);
	s[n - 1] = 'x';
	cr_expect_eq(num_parse_u64(s, n, UINT64_MAX, &out), PROTO_E_NOT_NUMBER);
	cr_expect_eq(out, 7);
	free(s);
}

/* Printing a value and parsing it back gives the value; that spelling is the only one. */
Test(num_parse_u64, round_trip)
{
	static const uint64_t values[] = {
		0, 1, 9, 10, 99, 100, 255, 256, 65535, 65536, UINT32_MAX, UINT64_C(4294967296),
		UINT64_C(9007199254740991), UINT64_C(1844674407370955161),
		UINT64_C(1844674407370955162), UINT64_MAX / 10 * 10, UINT64_MAX - 1, UINT64_MAX,
	};

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char buf[32];
		uint64_t out = 0;
		int n = snprintf(buf, sizeof(buf), "%" PRIu64, values[i]);

		cr_assert_gt(n, 0);
		cr_expect_eq(num_parse_u64(buf, (size_t)n, UINT64_MAX, &out), PROTO_OK, "%s", buf);
		cr_expect_eq(out, values[i], "%s", buf);
		cr_expect_eq(num_parse_u64(buf, (size_t)n, values[i], &out), PROTO_OK, "%s", buf);
		if (values[i] > 0)
			cr_expect_eq(num_parse_u64(buf, (size_t)n, values[i] - 1, &out),
				     PROTO_E_RANGE, "%s", buf);
		/* a leading zero is a second spelling of the same value: refused */
		if (n < (int)sizeof(buf) - 1) {
			char z[33];

			z[0] = '0';
			memcpy(z + 1, buf, (size_t)n);
			cr_expect_eq(num_parse_u64(z, (size_t)n + 1, UINT64_MAX, &out),
				     PROTO_E_LEADING_ZERO, "0%s", buf);
		}
	}
}
