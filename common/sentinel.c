/* sentinel: Redis Sentinel addresses and replies, read alike by the gateway and the server. */
#include "common/sentinel.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#define PORT_DIGITS_MAX 5

const char *sentinel_strerror(enum sentinel_err rc)
{
	switch (rc) {
	case SENTINEL_OK: return "no error";
	case SENTINEL_E_EMPTY: return "empty entry";
	case SENTINEL_E_TOO_MANY: return "too many sentinels";
	case SENTINEL_E_HOST: return "host is not an IP address (nor an allowed host name)";
	case SENTINEL_E_PORT: return "port missing or not in 1..65535";
	}
	return "unknown error";
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Decimal 1..65535 without sign or leading zero. */
static enum sentinel_err port_parse(const char *s, size_t len, int *out)
{
	long v = 0;

	if (len == 0 || len > PORT_DIGITS_MAX || s[0] == '0')
		return SENTINEL_E_PORT;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return SENTINEL_E_PORT;
		v = v * 10 + (s[i] - '0');
	}
	if (v > 65535)
		return SENTINEL_E_PORT;
	*out = (int)v;
	return SENTINEL_OK;
}

/* inet_pton wants a NUL-terminated string: the literal is copied to out first. */
static int ip_literal(const char *s, size_t len, int family, char *out)
{
	unsigned char addr[sizeof(struct in6_addr)];

	if (len == 0 || len >= INET6_ADDRSTRLEN || memchr(s, '\0', len))
		return 0;
	memcpy(out, s, len);
	out[len] = '\0';
	return inet_pton(family, out, addr) == 1;
}

/* Letters, digits, '-' and '.', in labels that neither start nor end with '-' or '.'. */
static int host_name(const char *s, size_t len)
{
	if (len == 0 || len > SENTINEL_HOST_MAX || !is_alnum(s[0]) || !is_alnum(s[len - 1]))
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (is_alnum(s[i]))
			continue;
		if (s[i] != '-' && s[i] != '.')
			return 0;
		if (s[i] == '.' && (!is_alnum(s[i - 1]) || !is_alnum(s[i + 1])))
			return 0;
	}
	return 1;
}

/* An unbracketed host: IPv4, IPv6, or (when allowed) a name. */
static enum sentinel_err host_parse(const char *s, size_t len, enum sentinel_hosts hosts,
				    char out[SENTINEL_HOST_MAX + 1])
{
	if (ip_literal(s, len, AF_INET, out) || ip_literal(s, len, AF_INET6, out))
		return SENTINEL_OK;
	/* a name never holds ':', so a bad IPv6 literal is not taken for one */
	if (hosts != SENTINEL_NAMES_OK || memchr(s, ':', len) || !host_name(s, len))
		return SENTINEL_E_HOST;
	memcpy(out, s, len);
	out[len] = '\0';
	return SENTINEL_OK;
}

/* One list entry, blanks already trimmed: "host:port" or "[ipv6]:port". */
static enum sentinel_err entry_parse(const char *s, size_t len, enum sentinel_hosts hosts,
				     struct sentinel_addr *out)
{
	const char *colon;
	enum sentinel_err rc;

	if (len == 0)
		return SENTINEL_E_EMPTY;
	if (s[0] == '[') {
		const char *close = memchr(s, ']', len);

		if (!close || !ip_literal(s + 1, (size_t)(close - s - 1), AF_INET6, out->host))
			return SENTINEL_E_HOST;
		if ((size_t)(close - s) + 1 >= len || close[1] != ':')
			return SENTINEL_E_PORT;
		colon = close + 1;
	} else {
		colon = memrchr(s, ':', len);
		if (!colon)
			return SENTINEL_E_PORT;
		/* an IPv6 address goes in brackets: "::1:26379" is ambiguous */
		if (memchr(s, ':', (size_t)(colon - s)))
			return SENTINEL_E_HOST;
		rc = host_parse(s, (size_t)(colon - s), hosts, out->host);
		if (rc)
			return rc;
	}
	return port_parse(colon + 1, len - (size_t)(colon + 1 - s), &out->port);
}

enum sentinel_err sentinel_list_parse(const char *text, enum sentinel_hosts hosts,
				      struct sentinel_addr *out, size_t cap, size_t *n)
{
	const char *p = text ? text : "";
	size_t count = 0;

	while (is_blank(*p))
		p++;
	if (!*p) {
		*n = 0;
		return SENTINEL_OK;
	}
	for (;;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		enum sentinel_err rc;

		while (len && is_blank(*p)) {
			p++;
			len--;
		}
		while (len && is_blank(p[len - 1]))
			len--;
		if (count == cap)
			return len ? SENTINEL_E_TOO_MANY : SENTINEL_E_EMPTY;
		rc = entry_parse(p, len, hosts, &out[count]);
		if (rc)
			return rc;
		count++;
		if (!end)
			break;
		p = end + 1;
	}
	*n = count;
	return SENTINEL_OK;
}

enum sentinel_err sentinel_addr_parse(const char *host, size_t host_len, const char *port,
				      size_t port_len, enum sentinel_hosts hosts,
				      struct sentinel_addr *out)
{
	struct sentinel_addr a;
	enum sentinel_err rc;

	if (!host || !port)
		return !host ? SENTINEL_E_HOST : SENTINEL_E_PORT;
	rc = host_parse(host, host_len, hosts, a.host);
	if (!rc)
		rc = port_parse(port, port_len, &a.port);
	if (!rc)
		*out = a;
	return rc;
}

int sentinel_role_is_master(const char *role, size_t len)
{
	return role && len == 6 && memcmp(role, "master", 6) == 0;
}

int sentinel_error_is_readonly(const char *str, size_t len)
{
	/* "READONLY You can't write against a read only replica." */
	return str && len >= 8 && strncmp(str, "READONLY", 8) == 0 && (len == 8 || str[8] == ' ');
}
