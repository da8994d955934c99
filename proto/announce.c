/* announce: a data-center server's entry in the Redis pool, as written and as read back. */
#include "proto/announce.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "proto/ascii.h"
#include "proto/num.h"

#define DNS_NAME_MAX 253
#define DNS_LABEL_MAX 63
#define HEARTBEAT_MAX 9007199254740991ULL /* 2^53 - 1: exact in a double, in Lua and JSON */

enum proto_err announce_server_id_check(const char *s, size_t len)
{
	if (len == 0)
		return PROTO_E_EMPTY;
	if (len > SERVER_ID_MAX)
		return PROTO_E_TOO_LONG;
	if (s[0] == '-' || s[len - 1] == '-')
		return PROTO_E_SERVER_ID;
	for (size_t i = 0; i < len; i++)
		if (!ascii_is_lower(s[i]) && !ascii_is_digit(s[i]) && s[i] != '-')
			return PROTO_E_SERVER_ID;
	return PROTO_OK;
}

/* inet_pton wants a C string: a NUL inside would hide the rest of the text from it. */
static int address_ok(int af, const char *s, size_t len)
{
	char buf[INET6_ADDRSTRLEN];
	unsigned char addr[sizeof(struct in6_addr)];

	if (len == 0 || len >= sizeof(buf) || memchr(s, '\0', len))
		return 0;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return inet_pton(af, buf, addr) == 1;
}

/*
 * A name whose last label is all digits, or 0x and hex digits, is read as an IPv4 address by
 * inet_aton and getaddrinfo ("127.1", "0x7f.1", "2130706433"). Such a host must be a plain
 * dotted quad, so one URL never names two different hosts depending on who resolves it.
 */
static int looks_numeric(const char *label, size_t len)
{
	size_t i = 0;

	if (len >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X'))
		for (i = 2; i < len; i++)
			if (!ascii_is_hex(label[i]))
				return 0;
	for (; i < len; i++)
		if (!ascii_is_digit(label[i]))
			return 0;
	return 1;
}

static int dns_name_ok(const char *s, size_t len)
{
	size_t start = 0;

	if (len == 0 || len > DNS_NAME_MAX)
		return 0;
	for (size_t i = 0; i <= len; i++) {
		size_t n;

		if (i < len && s[i] != '.') {
			if (!ascii_is_alnum(s[i]) && s[i] != '-')
				return 0;
			continue;
		}
		n = i - start;
		if (n == 0 || n > DNS_LABEL_MAX || s[start] == '-' || s[i - 1] == '-')
			return 0;
		if (i == len && looks_numeric(s + start, n))
			return address_ok(AF_INET, s, len);
		start = i + 1;
	}
	return 1;
}

static int is_unreserved(char c)
{
	return ascii_is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* "/seg/seg": unreserved segments, none empty, "." or "..", no trailing '/'. */
static int path_ok(const char *s, size_t len)
{
	size_t start;

	if (len == 0)
		return 1;
	if (s[0] != '/')
		return 0;
	start = 1;
	for (size_t i = 1; i <= len; i++) {
		size_t n;

		if (i < len && s[i] != '/') {
			if (!is_unreserved(s[i]))
				return 0;
			continue;
		}
		n = i - start;
		if (n == 0 || (n == 1 && s[start] == '.') ||
		    (n == 2 && s[start] == '.' && s[start + 1] == '.'))
			return 0;
		start = i + 1;
	}
	return 1;
}

static int has_prefix(const char *s, size_t len, const char *lit)
{
	size_t n = strlen(lit);

	return len >= n && memcmp(s, lit, n) == 0;
}

enum proto_err announce_url_check(const char *s, size_t len)
{
	const char *p, *end = s + len, *host, *port;
	size_t host_len;
	uint64_t port_num;

	if (len > ANNOUNCE_URL_MAX)
		return PROTO_E_TOO_LONG;
	if (has_prefix(s, len, "http://"))
		p = s + 7;
	else if (has_prefix(s, len, "https://"))
		p = s + 8;
	else
		return PROTO_E_ANNOUNCE_URL;
	if (p < end && *p == '[') {
		const char *close = memchr(p, ']', (size_t)(end - p));

		if (!close || !address_ok(AF_INET6, p + 1, (size_t)(close - p - 1)))
			return PROTO_E_ANNOUNCE_URL;
		p = close + 1;
	} else {
		host = p;
		while (p < end && *p != ':')
			p++;
		host_len = (size_t)(p - host);
		if (!dns_name_ok(host, host_len))
			return PROTO_E_ANNOUNCE_URL;
	}
	if (p == end || *p != ':')
		return PROTO_E_ANNOUNCE_URL;
	port = ++p;
	while (p < end && *p != '/')
		p++;
	if (num_parse_u64(port, (size_t)(p - port), 65535, &port_num) || port_num == 0)
		return PROTO_E_ANNOUNCE_URL;
	if (!path_ok(p, (size_t)(end - p)))
		return PROTO_E_ANNOUNCE_URL;
	return PROTO_OK;
}

enum field_index {
	F_ID,
	F_URL,
	F_CAPACITY,
	F_ACTIVE,
	F_FREE,
	F_DRAINING,
	F_HEARTBEAT,
	F_PROTO,
};

static const char *const field_names[ANNOUNCE_FIELDS] = {
	[F_ID] = ANNOUNCE_F_ID,
	[F_URL] = ANNOUNCE_F_URL,
	[F_CAPACITY] = ANNOUNCE_F_CAPACITY,
	[F_ACTIVE] = ANNOUNCE_F_ACTIVE,
	[F_FREE] = ANNOUNCE_F_FREE,
	[F_DRAINING] = ANNOUNCE_F_DRAINING,
	[F_HEARTBEAT] = ANNOUNCE_F_HEARTBEAT,
	[F_PROTO] = ANNOUNCE_F_PROTO,
};

/* Index of the field called name, or -1 for one we do not know (and ignore). */
static int field_lookup(const char *name, size_t len)
{
	for (int i = 0; i < ANNOUNCE_FIELDS; i++)
		if (strlen(field_names[i]) == len && memcmp(field_names[i], name, len) == 0)
			return i;
	return -1;
}

static enum proto_err number(const char *s, size_t len, uint64_t min, uint64_t max,
			     uint64_t *out)
{
	uint64_t v;

	if (num_parse_u64(s, len, max, &v) || v < min)
		return PROTO_E_ANNOUNCE_VALUE;
	*out = v;
	return PROTO_OK;
}

static enum proto_err field_parse(int i, const char *v, size_t len, struct announce *a)
{
	uint64_t n = 0;
	enum proto_err rc = PROTO_OK;

	switch (i) {
	case F_ID:
		if (announce_server_id_check(v, len))
			return PROTO_E_SERVER_ID;
		memcpy(a->id, v, len);
		a->id[len] = '\0';
		break;
	case F_URL:
		if (announce_url_check(v, len))
			return PROTO_E_ANNOUNCE_URL;
		memcpy(a->url, v, len);
		a->url[len] = '\0';
		break;
	case F_CAPACITY:
		rc = number(v, len, 1, ANNOUNCE_CAPACITY_MAX, &n);
		a->capacity = (uint32_t)n;
		break;
	case F_ACTIVE:
		/* Not bounded by capacity: a server may briefly run above it. */
		rc = number(v, len, 0, UINT32_MAX, &n);
		a->active = (uint32_t)n;
		break;
	case F_FREE:
		rc = number(v, len, 0, UINT64_MAX, &a->free_bytes);
		break;
	case F_DRAINING:
		rc = number(v, len, 0, 1, &n);
		a->draining = (int)n;
		break;
	case F_HEARTBEAT:
		rc = number(v, len, 0, HEARTBEAT_MAX, &a->heartbeat_ms);
		break;
	case F_PROTO:
		if (len != strlen(ANNOUNCE_PROTO) || memcmp(v, ANNOUNCE_PROTO, len) != 0)
			return PROTO_E_ANNOUNCE_VALUE;
		break;
	}
	return rc;
}

enum proto_err announce_parse(const struct proto_field *fields, size_t n, struct announce *out)
{
	unsigned seen = 0;
	struct announce a;
	enum proto_err rc;

	memset(&a, 0, sizeof(a));
	for (size_t k = 0; k < n; k++) {
		int i = field_lookup(fields[k].name, fields[k].name_len);

		if (i < 0)
			continue;
		if (seen & (1u << i))
			return PROTO_E_ANNOUNCE_DUP;
		seen |= 1u << i;
		rc = field_parse(i, fields[k].value, fields[k].value_len, &a);
		if (rc)
			return rc;
	}
	if (seen != (1u << ANNOUNCE_FIELDS) - 1)
		return PROTO_E_ANNOUNCE_MISSING;
	*out = a;
	return PROTO_OK;
}

static void field_set(struct proto_field *f, const char *name, const char *value)
{
	f->name = name;
	f->name_len = strlen(name);
	f->value = value;
	f->value_len = strlen(value);
}

enum proto_err announce_fields(const struct announce *a, struct announce_text *text,
			       struct proto_field out[ANNOUNCE_FIELDS])
{
	size_t id_len = strnlen(a->id, sizeof(a->id)), url_len = strnlen(a->url, sizeof(a->url));

	if (id_len == sizeof(a->id) || announce_server_id_check(a->id, id_len))
		return PROTO_E_SERVER_ID;
	if (url_len == sizeof(a->url) || announce_url_check(a->url, url_len))
		return PROTO_E_ANNOUNCE_URL;
	if (a->capacity < 1 || a->capacity > ANNOUNCE_CAPACITY_MAX ||
	    (a->draining != 0 && a->draining != 1) || a->heartbeat_ms > HEARTBEAT_MAX)
		return PROTO_E_ANNOUNCE_VALUE;
	snprintf(text->capacity, sizeof(text->capacity), "%u", (unsigned)a->capacity);
	snprintf(text->active, sizeof(text->active), "%u", (unsigned)a->active);
	snprintf(text->free_bytes, sizeof(text->free_bytes), "%llu",
		 (unsigned long long)a->free_bytes);
	snprintf(text->draining, sizeof(text->draining), "%d", a->draining);
	snprintf(text->heartbeat_ms, sizeof(text->heartbeat_ms), "%llu",
		 (unsigned long long)a->heartbeat_ms);
	field_set(&out[F_ID], ANNOUNCE_F_ID, a->id);
	field_set(&out[F_URL], ANNOUNCE_F_URL, a->url);
	field_set(&out[F_CAPACITY], ANNOUNCE_F_CAPACITY, text->capacity);
	field_set(&out[F_ACTIVE], ANNOUNCE_F_ACTIVE, text->active);
	field_set(&out[F_FREE], ANNOUNCE_F_FREE, text->free_bytes);
	field_set(&out[F_DRAINING], ANNOUNCE_F_DRAINING, text->draining);
	field_set(&out[F_HEARTBEAT], ANNOUNCE_F_HEARTBEAT, text->heartbeat_ms);
	field_set(&out[F_PROTO], ANNOUNCE_F_PROTO, ANNOUNCE_PROTO);
	return PROTO_OK;
}
