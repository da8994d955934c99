/* Fuzz target for proto/tus.c: every tus header parser on the same bytes, dates round-tripped. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "proto/tus.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
	if (!ok)
		__builtin_trap();
}

/* An accepted size is printed back to exactly the input: one spelling per value. */
static void check_canonical(const char *s, size_t len, uint64_t v)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%" PRIu64, v);

	check(n > 0 && (size_t)n == len && memcmp(buf, s, len) == 0);
}

static int is_number_error(enum proto_err rc)
{
	return rc == PROTO_E_EMPTY || rc == PROTO_E_NOT_NUMBER || rc == PROTO_E_LEADING_ZERO ||
	       rc == PROTO_E_RANGE;
}

static void fuzz_sizes(const char *s, size_t len)
{
	static const uint64_t maxes[] = {
		0, 1, 1000, UINT64_C(1) << 32, TUS_SIZE_LIMIT, TUS_SIZE_LIMIT + 1, UINT64_MAX};
	uint64_t v = 7, at_limit = 0;
	enum proto_err rc, rc_limit;

	rc = tus_offset_parse(s, len, &v);
	check(rc == PROTO_OK || is_number_error(rc));
	if (rc == PROTO_OK) {
		check(v <= TUS_SIZE_LIMIT);
		check_canonical(s, len, v);
	} else {
		check(v == 7);
	}
	rc_limit = rc;
	at_limit = v;

	for (size_t i = 0; i < sizeof(maxes) / sizeof(maxes[0]); i++) {
		uint64_t l = 9;

		rc = tus_length_parse(s, len, maxes[i], &l);
		check(rc == PROTO_OK || is_number_error(rc));
		if (rc == PROTO_OK) {
			check(l <= maxes[i] && l <= TUS_SIZE_LIMIT);
			check(rc_limit == PROTO_OK && l == at_limit);
		} else {
			check(l == 9);
			/* with a max at or above the limit, length and offset agree */
			if (maxes[i] >= TUS_SIZE_LIMIT)
				check(rc == rc_limit);
			else
				check(rc == rc_limit ||
				      (rc == PROTO_E_RANGE && rc_limit == PROTO_OK &&
				       at_limit > maxes[i]));
		}
	}
}

static void fuzz_date(const char *s, size_t len)
{
	time_t t = 77, again = 88;
	char buf[TUS_HTTP_DATE_LEN + 1];
	enum proto_err rc = tus_date_parse(s, len, &t);

	check(rc == PROTO_OK || rc == PROTO_E_HTTP_DATE);
	if (rc != PROTO_OK) {
		check(t == 77);
		return;
	}
	check(len == TUS_HTTP_DATE_LEN);
	check(t >= 0 && t <= (time_t)253402300799);
	check(tus_date_format(t, buf, sizeof(buf)) == PROTO_OK);
	check(buf[TUS_HTTP_DATE_LEN] == '\0' && strlen(buf) == TUS_HTTP_DATE_LEN);
	/* parsing is strict enough that the formatter writes back the very same bytes */
	check(memcmp(buf, s, len) == 0);
	check(tus_date_parse(buf, TUS_HTTP_DATE_LEN, &again) == PROTO_OK && again == t);
}

/* The first eight bytes as a time: formatting either works and parses back, or is refused. */
static void fuzz_format(const uint8_t *data, size_t size)
{
	char buf[TUS_HTTP_DATE_LEN + 8];
	int64_t raw = 0;
	time_t t, back = -1;
	enum proto_err rc;

	memcpy(&raw, data, size < sizeof(raw) ? size : sizeof(raw));
	/* fold most inputs into the interesting range, keep a few wild ones */
	t = (time_t)(raw < 0 ? raw : raw % (time_t)253402400000);
	memset(buf, 'x', sizeof(buf));
	rc = tus_date_format(t, buf, sizeof(buf));
	if (t < 0 || t > (time_t)253402300799) {
		check(rc == PROTO_E_RANGE);
		check(buf[0] == 'x');
		return;
	}
	check(rc == PROTO_OK);
	check(strlen(buf) == TUS_HTTP_DATE_LEN && buf[TUS_HTTP_DATE_LEN + 1] == 'x');
	check(tus_date_parse(buf, TUS_HTTP_DATE_LEN, &back) == PROTO_OK && back == t);
	check(tus_date_format(t, buf, TUS_HTTP_DATE_LEN) == PROTO_E_BUFFER);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	enum proto_err rc;

	rc = tus_resumable_check(s, size);
	check(rc == PROTO_OK || rc == PROTO_E_EMPTY || rc == PROTO_E_TUS_VERSION);
	check((rc == PROTO_OK) == (size == 5 && memcmp(s, "1.0.0", 5) == 0));
	check((rc == PROTO_E_EMPTY) == (size == 0));

	rc = tus_content_type_check(s, size);
	check(rc == PROTO_OK || rc == PROTO_E_EMPTY || rc == PROTO_E_TUS_CONTENT_TYPE);
	check(rc != PROTO_OK || size == sizeof(TUS_CONTENT_TYPE) - 1);
	check((rc == PROTO_E_EMPTY) == (size == 0));

	fuzz_sizes(s, size);
	fuzz_date(s, size);
	fuzz_format(data, size);
	return 0;
}
