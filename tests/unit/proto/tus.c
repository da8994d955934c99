/* Tests proto/tus.c: tus header values and the IMF-fixdate of Upload-Expires. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "proto/tus.h"

struct str_case {
	const char *s;
	size_t len;
	enum proto_err rc;
};

#define S(s, rc)                                                                                   \
	{                                                                                          \
		s, sizeof(s) - 1, rc                                                               \
	}

/* ---- Tus-Resumable ---- */

static const struct str_case resumable_cases[] = {
	S("1.0.0", PROTO_OK),
	S("", PROTO_E_EMPTY),
	S("1.0", PROTO_E_TUS_VERSION),
	S("1.0.1", PROTO_E_TUS_VERSION),
	S("0.2.2", PROTO_E_TUS_VERSION),
	S("1.0.00", PROTO_E_TUS_VERSION),
	S("01.0.0", PROTO_E_TUS_VERSION),
	S("1.0.0 ", PROTO_E_TUS_VERSION),
	S(" 1.0.0", PROTO_E_TUS_VERSION),
	S("1.0.0\r\n", PROTO_E_TUS_VERSION),
	S("1.0.0\0", PROTO_E_TUS_VERSION),
	S("1\0.0.0", PROTO_E_TUS_VERSION),
	S("1.0.0,0.2.2", PROTO_E_TUS_VERSION),
	S("1,0,0", PROTO_E_TUS_VERSION),
	S("\xb1.0.0", PROTO_E_TUS_VERSION),
};

Test(tus_resumable_check, table)
{
	for (size_t i = 0; i < sizeof(resumable_cases) / sizeof(resumable_cases[0]); i++) {
		const struct str_case *c = &resumable_cases[i];

		cr_expect_eq(tus_resumable_check(c->s, c->len), c->rc, "case %zu", i);
	}
	/* the length bounds the read */
	cr_expect_eq(tus_resumable_check("1.0.0", 4), PROTO_E_TUS_VERSION);
	cr_expect_eq(tus_resumable_check("1.0.00", 5), PROTO_OK);
}

/* ---- Upload-Offset and Upload-Length ---- */

struct size_case {
	const char *s;
	size_t len;
	uint64_t max; /* for tus_length_parse */
	enum proto_err rc;
	uint64_t want;
};

#define Z(s, max, rc, want)                                                                        \
	{                                                                                          \
		s, sizeof(s) - 1, max, rc, want                                                    \
	}

static const struct size_case offset_cases[] = {
	Z("0", 0, PROTO_OK, 0),
	Z("1", 0, PROTO_OK, 1),
	Z("1048576", 0, PROTO_OK, 1048576),
	Z("9007199254740991", 0, PROTO_OK, TUS_SIZE_LIMIT),
	Z("9007199254740992", 0, PROTO_E_RANGE, 0),
	Z("18446744073709551615", 0, PROTO_E_RANGE, 0),
	Z("18446744073709551616", 0, PROTO_E_RANGE, 0),
	Z("", 0, PROTO_E_EMPTY, 0),
	Z("00", 0, PROTO_E_LEADING_ZERO, 0),
	Z("01", 0, PROTO_E_LEADING_ZERO, 0),
	Z("-1", 0, PROTO_E_NOT_NUMBER, 0),
	Z("+1", 0, PROTO_E_NOT_NUMBER, 0),
	Z("1 ", 0, PROTO_E_NOT_NUMBER, 0),
	Z("1\0", 0, PROTO_E_NOT_NUMBER, 0),
	Z("1, 1", 0, PROTO_E_NOT_NUMBER, 0),
	Z("0x0", 0, PROTO_E_NOT_NUMBER, 0),
};

Test(tus_offset_parse, table)
{
	for (size_t i = 0; i < sizeof(offset_cases) / sizeof(offset_cases[0]); i++) {
		const struct size_case *c = &offset_cases[i];
		uint64_t out = 42;

		cr_expect_eq(tus_offset_parse(c->s, c->len, &out), c->rc, "case %zu", i);
		cr_expect_eq(out, c->rc ? 42 : c->want, "case %zu: got %" PRIu64, i, out);
	}
}

static const struct size_case length_cases[] = {
	Z("0", 0, PROTO_OK, 0),
	Z("1", 0, PROTO_E_RANGE, 0),
	Z("100", 100, PROTO_OK, 100),
	Z("101", 100, PROTO_E_RANGE, 0),
	Z("0", 100, PROTO_OK, 0),
	Z("9007199254740991", TUS_SIZE_LIMIT, PROTO_OK, TUS_SIZE_LIMIT),
	Z("9007199254740992", TUS_SIZE_LIMIT, PROTO_E_RANGE, 0),
	/* a max above the protocol's limit does not lift it */
	Z("9007199254740991", UINT64_MAX, PROTO_OK, TUS_SIZE_LIMIT),
	Z("9007199254740992", UINT64_MAX, PROTO_E_RANGE, 0),
	Z("18446744073709551615", UINT64_MAX, PROTO_E_RANGE, 0),
	Z("9007199254740992", TUS_SIZE_LIMIT + 1, PROTO_E_RANGE, 0),
	Z("", 100, PROTO_E_EMPTY, 0),
	Z("010", 100, PROTO_E_LEADING_ZERO, 0),
	Z("1e2", 100, PROTO_E_NOT_NUMBER, 0),
	Z("-0", 100, PROTO_E_NOT_NUMBER, 0),
	Z(" 5", 100, PROTO_E_NOT_NUMBER, 0),
};

Test(tus_length_parse, table)
{
	for (size_t i = 0; i < sizeof(length_cases) / sizeof(length_cases[0]); i++) {
		const struct size_case *c = &length_cases[i];
		uint64_t out = 42;

		cr_expect_eq(tus_length_parse(c->s, c->len, c->max, &out), c->rc, "case %zu", i);
		cr_expect_eq(out, c->rc ? 42 : c->want, "case %zu: got %" PRIu64, i, out);
	}
}

/* ---- Content-Type of PATCH ---- */

static const struct str_case content_type_cases[] = {
	S("application/offset+octet-stream", PROTO_OK),
	S("APPLICATION/OFFSET+OCTET-STREAM", PROTO_OK),
	S("Application/Offset+Octet-Stream", PROTO_OK),
	S("", PROTO_E_EMPTY),
	S("application/offset+octet-stream; charset=utf-8", PROTO_E_TUS_CONTENT_TYPE),
	S("application/offset+octet-stream;", PROTO_E_TUS_CONTENT_TYPE),
	S("application/offset+octet-stream ", PROTO_E_TUS_CONTENT_TYPE),
	S(" application/offset+octet-stream", PROTO_E_TUS_CONTENT_TYPE),
	S("application/offset+octet-stream\0", PROTO_E_TUS_CONTENT_TYPE),
	S("application/offset+octet-stream\r\n", PROTO_E_TUS_CONTENT_TYPE),
	S("application/offset+octet-strea", PROTO_E_TUS_CONTENT_TYPE),
	S("application/offset+octet-streams", PROTO_E_TUS_CONTENT_TYPE),
	S("application/octet-stream", PROTO_E_TUS_CONTENT_TYPE),
	S("application/offset octet-stream", PROTO_E_TUS_CONTENT_TYPE),
	S("application/offset+octet-stream, text/plain", PROTO_E_TUS_CONTENT_TYPE),
	S("text/plain", PROTO_E_TUS_CONTENT_TYPE),
	S("\xc1pplication/offset+octet-stream", PROTO_E_TUS_CONTENT_TYPE),
	S("application/offset+octet\rstream", PROTO_E_TUS_CONTENT_TYPE),
};

Test(tus_content_type_check, table)
{
	for (size_t i = 0; i < sizeof(content_type_cases) / sizeof(content_type_cases[0]); i++) {
		const struct str_case *c = &content_type_cases[i];

		cr_expect_eq(tus_content_type_check(c->s, c->len), c->rc, "case %zu (%s)", i, c->s);
	}
}

/* ---- Upload-Expires: IMF-fixdate ---- */

struct date_case {
	time_t t;
	const char *text;
};

static const struct date_case date_cases[] = {
	{0, "Thu, 01 Jan 1970 00:00:00 GMT"},
	{59, "Thu, 01 Jan 1970 00:00:59 GMT"},
	{86399, "Thu, 01 Jan 1970 23:59:59 GMT"},
	{784111777, "Sun, 06 Nov 1994 08:49:37 GMT"},
	{68169600, "Tue, 29 Feb 1972 00:00:00 GMT"},
	{951782400, "Tue, 29 Feb 2000 00:00:00 GMT"},
	{1709208000, "Thu, 29 Feb 2024 12:00:00 GMT"},
	{2147483647, "Tue, 19 Jan 2038 03:14:07 GMT"},
	{2147483648, "Tue, 19 Jan 2038 03:14:08 GMT"},
	{4107542400, "Mon, 01 Mar 2100 00:00:00 GMT"},
	{13574563200, "Tue, 29 Feb 2400 00:00:00 GMT"},
	{253402300799, "Fri, 31 Dec 9999 23:59:59 GMT"},
};

Test(tus_date, format_and_parse_known_values)
{
	for (size_t i = 0; i < sizeof(date_cases) / sizeof(date_cases[0]); i++) {
		const struct date_case *c = &date_cases[i];
		char buf[TUS_HTTP_DATE_LEN + 1];
		time_t t = 12345;

		cr_expect_eq(strlen(c->text), TUS_HTTP_DATE_LEN);
		cr_expect_eq(tus_date_format(c->t, buf, sizeof(buf)), PROTO_OK, "case %zu", i);
		cr_expect_str_eq(buf, c->text, "case %zu", i);
		cr_expect_eq(tus_date_parse(c->text, strlen(c->text), &t), PROTO_OK, "%s", c->text);
		cr_expect_eq(t, c->t, "%s: got %lld", c->text, (long long)t);
	}
}

Test(tus_date, format_limits)
{
	char buf[64];

	memset(buf, 'x', sizeof(buf));
	cr_expect_eq(tus_date_format(0, buf, TUS_HTTP_DATE_LEN), PROTO_E_BUFFER);
	cr_expect_eq(tus_date_format(0, buf, 0), PROTO_E_BUFFER);
	cr_expect_eq(tus_date_format(-1, buf, sizeof(buf)), PROTO_E_RANGE);
	cr_expect_eq(tus_date_format(253402300800, buf, sizeof(buf)), PROTO_E_RANGE);
	cr_expect_eq(tus_date_format(INT64_MAX, buf, sizeof(buf)), PROTO_E_RANGE);
	cr_expect_eq(tus_date_format(INT64_MIN, buf, sizeof(buf)), PROTO_E_RANGE);
	/* the buffer is untouched on every error */
	for (size_t i = 0; i < sizeof(buf); i++)
		cr_expect_eq(buf[i], 'x', "byte %zu written", i);
	/* exactly TUS_HTTP_DATE_LEN + 1 is enough, and nothing is written after the NUL */
	cr_expect_eq(tus_date_format(784111777, buf, TUS_HTTP_DATE_LEN + 1), PROTO_OK);
	cr_expect_eq(buf[TUS_HTTP_DATE_LEN], '\0');
	cr_expect_eq(buf[TUS_HTTP_DATE_LEN + 1], 'x');
	cr_expect_str_eq(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
}

/* Locale must not leak into the wire format. */
Test(tus_date, ignores_locale)
{
	char buf[TUS_HTTP_DATE_LEN + 1];

	/* any of these may be missing on the test machine; C is always there */
	if (!setlocale(LC_TIME, "de_DE.UTF-8"))
		setlocale(LC_TIME, "fr_FR.UTF-8");
	cr_expect_eq(tus_date_format(784111777, buf, sizeof(buf)), PROTO_OK);
	cr_expect_str_eq(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
	setlocale(LC_TIME, "C");
}

/* A walk over 1970..9999 in odd steps: every format parses back to the same second. */
Test(tus_date, round_trip_walk)
{
	const time_t step = 86400 * 29 + 3600 * 7 + 60 * 13 + 17;
	int count = 0;

	for (time_t t = 0; t <= 253402300799; t += step) {
		char buf[TUS_HTTP_DATE_LEN + 1];
		time_t back = -1;

		cr_assert_eq(tus_date_format(t, buf, sizeof(buf)), PROTO_OK, "%lld", (long long)t);
		cr_assert_eq(tus_date_parse(buf, TUS_HTTP_DATE_LEN, &back), PROTO_OK, "%s", buf);
		cr_assert_eq(back, t, "%s", buf);
		count++;
	}
	cr_expect_gt(count, 90000);
}

#define D(s)                                                                                       \
	{                                                                                          \
		s, sizeof(s) - 1, PROTO_E_HTTP_DATE                                                \
	}

static const struct str_case bad_dates[] = {
	/* other RFC 9110 forms: the protocol sends only IMF-fixdate */
	D("Sunday, 06-Nov-94 08:49:37 GMT"),
	D("Sun Nov  6 08:49:37 1994"),
	D("1994-11-06T08:49:37Z"),
	D("784111777"),
	D(""),
	/* length */
	D("Sun, 6 Nov 1994 08:49:37 GMT"),
	D("Sun, 06 Nov 1994 08:49:37 GM"),
	D("Sun, 06 Nov 1994 08:49:37 GMT "),
	D("Sun, 06 Nov 1994 08:49:37 GMT\r\n"),
	D("Sun, 06 Nov 1994 08:49:37 GMT\0"),
	D(" Sun, 06 Nov 1994 08:49:37 GMT"),
	D("Sun, 06 Nov 1994 8:49:37 GMT"),
	D("Sun, 06 Nov 01994 08:49:37 GMT"),
	/* names: case-sensitive, from the fixed tables */
	D("sun, 06 Nov 1994 08:49:37 GMT"),
	D("SUN, 06 Nov 1994 08:49:37 GMT"),
	D("Sun, 06 nov 1994 08:49:37 GMT"),
	D("Sun, 06 NOV 1994 08:49:37 GMT"),
	D("Sun, 06 Nov 1994 08:49:37 gmt"),
	D("Sun, 06 Nov 1994 08:49:37 UTC"),
	D("Sun, 06 Nov 1994 08:49:37 +00"),
	D("Son, 06 Nov 1994 08:49:37 GMT"),
	D("Sun, 06 Nvb 1994 08:49:37 GMT"),
	D("S\xfcn, 06 Nov 1994 08:49:37 GMT"),
	D("Sun, 06 Nov 1994 08:49:37 G\0T"),
	/* day name that disagrees with the date */
	D("Mon, 06 Nov 1994 08:49:37 GMT"),
	D("Sat, 06 Nov 1994 08:49:37 GMT"),
	D("Wed, 29 Feb 2000 00:00:00 GMT"),
	D("Fri, 01 Jan 1970 00:00:00 GMT"),
	/* separators */
	D("Sun; 06 Nov 1994 08:49:37 GMT"),
	D("Sun,,06 Nov 1994 08:49:37 GMT"),
	D("Sun, 06-Nov-1994 08:49:37 GMT"),
	D("Sun, 06 Nov 1994T08:49:37 GMT"),
	D("Sun, 06 Nov 1994 08.49.37 GMT"),
	D("Sun, 06 Nov 1994 08:49:37\tGMT"),
	D("Sun,\t06 Nov 1994 08:49:37 GMT"),
	/* digits */
	D("Sun, 0a Nov 1994 08:49:37 GMT"),
	D("Sun,  6 Nov 1994 08:49:37 GMT"),
	D("Sun, -6 Nov 1994 08:49:37 GMT"),
	D("Sun, +6 Nov 1994 08:49:37 GMT"),
	D("Sun, 06 Nov +994 08:49:37 GMT"),
	D("Sun, 06 Nov 1994 0x:49:37 GMT"),
	D("Sun, 06 Nov 1994 08:4\0:37 GMT"),
	D("Sun, 06 Nov 1994 08:49:3/ GMT"),
	D("Sun, 06 Nov 1994 08:49:3: GMT"),
	D("Sun, 06 Nov 19\xb9\xb4 08:49:37 GMT"),
	/* calendar */
	D("Thu, 00 Jan 1970 00:00:00 GMT"),
	D("Sun, 32 Jan 2023 00:00:00 GMT"),
	D("Sat, 31 Apr 2023 00:00:00 GMT"),
	D("Sat, 31 Jun 2023 00:00:00 GMT"),
	D("Sat, 31 Sep 2023 00:00:00 GMT"),
	D("Fri, 31 Nov 2023 00:00:00 GMT"),
	D("Wed, 30 Feb 2000 00:00:00 GMT"),
	D("Sat, 29 Feb 1997 00:00:00 GMT"),
	D("Sun, 29 Feb 1998 00:00:00 GMT"),
	D("Mon, 29 Feb 2100 00:00:00 GMT"),
	D("Sun, 29 Feb 2100 00:00:00 GMT"),
	D("Fri, 29 Feb 2023 00:00:00 GMT"),
	/* time of day */
	D("Sun, 06 Nov 1994 24:00:00 GMT"),
	D("Sun, 06 Nov 1994 23:60:00 GMT"),
	D("Sun, 06 Nov 1994 23:59:60 GMT"),
	D("Sun, 06 Nov 1994 99:99:99 GMT"),
	/* years outside 1970..9999 */
	D("Wed, 31 Dec 1969 23:59:59 GMT"),
	D("Sat, 01 Jan 0000 00:00:00 GMT"),
	D("Mon, 01 Jan 1900 00:00:00 GMT"),
	/* hostile bytes */
	D("\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"),
	D("Sun, 06 Nov 1994 08:49:37 GMT\r\nSet-Cookie: x"),
	D("Sun, 06 Nov 1994\r08:49:37 GMT"),
};

Test(tus_date, parse_rejects)
{
	for (size_t i = 0; i < sizeof(bad_dates) / sizeof(bad_dates[0]); i++) {
		const struct str_case *c = &bad_dates[i];
		time_t t = 4242;

		cr_expect_eq(tus_date_parse(c->s, c->len, &t), c->rc, "case %zu (%.*s)", i,
			     (int)c->len, c->s);
		cr_expect_eq(t, 4242, "case %zu: out written", i);
	}
}

/* Valid dates that sit on the calendar's edges. */
static const struct str_case good_dates[] = {
	S("Tue, 29 Feb 2000 00:00:00 GMT", PROTO_OK),
	S("Sun, 29 Feb 2004 00:00:00 GMT", PROTO_OK),
	S("Wed, 31 Dec 1980 23:59:59 GMT", PROTO_OK),
	S("Sat, 30 Apr 2022 00:00:00 GMT", PROTO_OK),
	S("Sun, 28 Feb 2100 12:30:45 GMT", PROTO_OK),
	S("Fri, 31 Dec 9999 23:59:59 GMT", PROTO_OK),
	S("Wed, 01 Jan 2025 00:00:00 GMT", PROTO_OK),
	S("Mon, 01 Jun 2026 00:00:00 GMT", PROTO_OK),
	S("Sat, 01 Aug 2026 00:00:00 GMT", PROTO_OK),
	S("Thu, 01 Oct 2026 00:00:00 GMT", PROTO_OK),
};

Test(tus_date, parse_accepts_edges)
{
	for (size_t i = 0; i < sizeof(good_dates) / sizeof(good_dates[0]); i++) {
		const struct str_case *c = &good_dates[i];
		char buf[TUS_HTTP_DATE_LEN + 1];
		time_t t = -1;

		cr_expect_eq(tus_date_parse(c->s, c->len, &t), PROTO_OK, "%s", c->s);
		/* the only accepted spelling is the one the formatter writes */
		cr_expect_eq(tus_date_format(t, buf, sizeof(buf)), PROTO_OK, "%s", c->s);
		cr_expect_str_eq(buf, c->s);
	}
}

/*
 * Every single-byte change of a valid date is either refused or is itself a valid date, which
 * then formats back to exactly the changed text: no byte position goes unchecked.
 */
Test(tus_date, single_byte_mutations)
{
	static const char base[] = "Sun, 06 Nov 1994 08:49:37 GMT";
	int accepted = 0;

	for (size_t i = 0; i < TUS_HTTP_DATE_LEN; i++) {
		for (int b = 0; b < 256; b++) {
			char v[TUS_HTTP_DATE_LEN + 1], buf[TUS_HTTP_DATE_LEN + 1];
			time_t t = 0;

			if ((char)b == base[i])
				continue;
			memcpy(v, base, sizeof(v));
			v[i] = (char)b;
			if (tus_date_parse(v, TUS_HTTP_DATE_LEN, &t) != PROTO_OK)
				continue;
			accepted++;
			cr_expect_eq(tus_date_format(t, buf, sizeof(buf)), PROTO_OK, "%s", v);
			cr_expect_eq(memcmp(buf, v, TUS_HTTP_DATE_LEN), 0, "%s became %s", v, buf);
		}
	}
	/*
	 * What stays valid: hour 18 or 0x (1 + 9), minute x9 or 4x (5 + 9), second x7 or 3x
	 * (5 + 9), and years whose 6 Nov is also a Sunday: 3994, 5994, 7994, 9994 (4).
	 */
	cr_expect_eq(accepted, 42);
}
