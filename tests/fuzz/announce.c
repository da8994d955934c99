/* Fuzz target: announce_parse on "name=value" lines, round trip, and announce_url_check. */
#include <stdint.h>
#include <string.h>

#include "proto/announce.h"

#define FIELDS_MAX 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const struct announce *a, const struct announce *b)
{
	return strcmp(a->id, b->id) == 0 && strcmp(a->url, b->url) == 0 &&
	       a->capacity == b->capacity && a->active == b->active &&
	       a->free_bytes == b->free_bytes && a->draining == b->draining &&
	       a->heartbeat_ms == b->heartbeat_ms;
}

/* Splits data into fields on '\n', each into name and value on its first '='. */
static size_t split(const char *s, size_t size, struct proto_field *f)
{
	size_t n = 0, start = 0;

	for (size_t i = 0; i <= size && n < FIELDS_MAX; i++) {
		const char *line = s + start, *eq;
		size_t len;

		if (i < size && s[i] != '\n')
			continue;
		len = i - start;
		eq = memchr(line, '=', len);
		f[n].name = line;
		f[n].name_len = eq ? (size_t)(eq - line) : len;
		f[n].value = eq ? eq + 1 : line + len;
		f[n].value_len = eq ? len - f[n].name_len - 1 : 0;
		n++;
		start = i + 1;
	}
	return n;
}

static void parsed_sane(const struct announce *a)
{
	size_t id_len = strnlen(a->id, sizeof(a->id)), url_len = strnlen(a->url, sizeof(a->url));
	struct announce_text text;
	struct proto_field f[ANNOUNCE_FIELDS];
	struct announce b;

	if (id_len == sizeof(a->id) || url_len == sizeof(a->url))
		__builtin_trap();
	if (announce_server_id_check(a->id, id_len) || announce_url_check(a->url, url_len))
		__builtin_trap();
	if (a->capacity < 1 || a->capacity > ANNOUNCE_CAPACITY_MAX ||
	    (a->draining != 0 && a->draining != 1) || a->heartbeat_ms > 9007199254740991ULL)
		__builtin_trap();
	if (announce_fields(a, &text, f) != PROTO_OK)
		__builtin_trap();
	if (announce_parse(f, ANNOUNCE_FIELDS, &b) != PROTO_OK || !same(a, &b))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct proto_field f[FIELDS_MAX];
	struct announce a;
	enum proto_err rc;
	size_t n = split(s, size, f);

	rc = announce_parse(f, n, &a);
	if (rc == PROTO_OK)
		parsed_sane(&a);
	else if (rc != PROTO_E_ANNOUNCE_MISSING && rc != PROTO_E_ANNOUNCE_DUP &&
		 rc != PROTO_E_ANNOUNCE_URL && rc != PROTO_E_ANNOUNCE_VALUE &&
		 rc != PROTO_E_SERVER_ID)
		__builtin_trap();

	rc = announce_url_check(s, size);
	if ((rc == PROTO_OK && size > ANNOUNCE_URL_MAX) ||
	    (rc != PROTO_OK && rc != PROTO_E_ANNOUNCE_URL && rc != PROTO_E_TOO_LONG))
		__builtin_trap();
	rc = announce_server_id_check(s, size);
	if ((rc == PROTO_OK && (size == 0 || size > SERVER_ID_MAX)) ||
	    (rc != PROTO_OK && rc != PROTO_E_EMPTY && rc != PROTO_E_TOO_LONG &&
	     rc != PROTO_E_SERVER_ID))
		__builtin_trap();
	return 0;
}
