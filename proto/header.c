/* header: HTTP field-name/value validation and request-framing checks (RFC 9110/9112). */
#include "proto/header.h"

#include <arpa/inet.h>
#include <string.h>

#include "proto/ascii.h"
#include "proto/num.h"

/* RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" /
 * "_" / "`" / "|" / "~" / DIGIT / ALPHA. */
static int is_tchar(char c)
{
	static const char punct[] = "!#$%&'*+-.^_`|~";

	/* the explicit length keeps the literal's NUL out of the set */
	return ascii_is_alnum(c) || memchr(punct, (unsigned char)c, sizeof(punct) - 1) != NULL;
}

/* VCHAR, obs-text, SP, HTAB: everything but the CTLs (0x00-0x1F except HTAB, and DEL). */
static int is_field_char(unsigned char c)
{
	return (c >= 0x20 && c != 0x7f) || c == '\t';
}

enum proto_err header_name_check(const char *name, size_t len)
{
	if (len == 0)
		return PROTO_E_EMPTY;
	if (len > HEADER_NAME_MAX)
		return PROTO_E_TOO_LONG;
	for (size_t i = 0; i < len; i++)
		if (!is_tchar(name[i]))
			return PROTO_E_HEADER_NAME;
	return PROTO_OK;
}

enum proto_err header_value_check(const char *value, size_t len)
{
	if (len > HEADER_VALUE_MAX)
		return PROTO_E_TOO_LONG;
	if (len == 0)
		return PROTO_OK;
	if (ascii_is_ows(value[0]) || ascii_is_ows(value[len - 1]))
		return PROTO_E_HEADER_VALUE;
	for (size_t i = 0; i < len; i++)
		if (!is_field_char((unsigned char)value[i]))
			return PROTO_E_HEADER_VALUE;
	return PROTO_OK;
}

int header_equals(const char *s, size_t len, const char *lit)
{
	size_t i;

	/* Stop at lit's NUL before comparing, so a NUL inside s never matches lit's end. */
	for (i = 0; i < len; i++)
		if (lit[i] == '\0' || ascii_lower(s[i]) != ascii_lower(lit[i]))
			return 0;
	return lit[i] == '\0';
}

/* RFC 3986 unreserved / sub-delims: what a reg-name holds besides pct-encoded octets. */
static int is_reg_name_char(char c)
{
	static const char punct[] = "-._~!$&'()*+,;=";

	return ascii_is_alnum(c) || memchr(punct, (unsigned char)c, sizeof(punct) - 1) != NULL;
}

/*
 * RFC 3986 IP-literal without its brackets: IPv6address (as inet_pton reads it, so no zone id)
 * or IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ).
 */
static int ip_literal_ok(const char *s, size_t len)
{
	char buf[INET6_ADDRSTRLEN];
	struct in6_addr addr;
	size_t i = 1;

	if (len > 0 && (s[0] == 'v' || s[0] == 'V')) {
		while (i < len && ascii_is_hex(s[i]))
			i++;
		if (i == 1 || i == len || s[i] != '.' || ++i == len)
			return 0;
		for (; i < len; i++)
			if (!is_reg_name_char(s[i]) && s[i] != ':')
				return 0;
		return 1;
	}
	/* inet_pton wants a C string: copy it, refusing a NUL that would hide the rest. */
	if (len == 0 || len >= sizeof(buf) || memchr(s, '\0', len))
		return 0;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return inet_pton(AF_INET6, buf, &addr) == 1;
}

/*
 * RFC 9112 3.2: Host = uri-host [ ":" port ], uri-host = IP-literal / IPv4address / reg-name,
 * port = *DIGIT (RFC 3986). An empty value is valid (a target without authority). Anything else
 * (a space, '/', '@', a second port, non-ASCII) must be answered 400.
 */
static int host_value_ok(const char *v, size_t len)
{
	size_t i = 0;

	if (len > 0 && v[0] == '[') {
		const char *close = memchr(v, ']', len);

		if (!close || !ip_literal_ok(v + 1, (size_t)(close - v) - 1))
			return 0;
		i = (size_t)(close - v) + 1;
	} else {
		while (i < len && v[i] != ':') {
			if (v[i] == '%') {
				if (i + 2 >= len || !ascii_is_hex(v[i + 1]) ||
				    !ascii_is_hex(v[i + 2]))
					return 0;
				i += 3;
				continue;
			}
			if (!is_reg_name_char(v[i]))
				return 0;
			i++;
		}
	}
	if (i == len)
		return 1;
	if (v[i] != ':')
		return 0;
	for (i++; i < len; i++)
		if (!ascii_is_digit(v[i]))
			return 0;
	return 1;
}

/*
 * Parses one Content-Length value. Some clients and proxies fold repeated fields into a list
 * ("5, 5"); RFC 9112 6.3 lets a recipient accept identical members, but we refuse every list
 * as a duplicate: one request, one length, no room for two parsers to disagree.
 */
static enum proto_err content_length_parse(const char *v, size_t len, uint64_t *out)
{
	size_t start = 0;

	if (num_parse_u64(v, len, HEADER_CL_MAX, out) == PROTO_OK)
		return PROTO_OK;
	if (len == 0 || !memchr(v, ',', len))
		return PROTO_E_FRAMING_CL;
	/* A list: a duplicate if every member is a number, malformed otherwise. */
	while (start <= len) {
		size_t end = start, a, b;
		uint64_t ignored;

		while (end < len && v[end] != ',')
			end++;
		a = start;
		b = end;
		while (a < b && ascii_is_ows(v[a]))
			a++;
		while (b > a && ascii_is_ows(v[b - 1]))
			b--;
		if (num_parse_u64(v + a, b - a, HEADER_CL_MAX, &ignored) != PROTO_OK)
			return PROTO_E_FRAMING_CL;
		start = end + 1;
	}
	return PROTO_E_FRAMING_DUP_CL;
}

/* Names compared lowercase; the list of header_repeat_check. */
static const char *const single_fields[] = {
	"authorization", "content-type", "content-encoding", "tus-resumable", "upload-offset",
	"upload-length", "upload-metadata", "upload-checksum", "upload-defer-length",
	"upload-concat", "repr-digest", "fs-owner", "fs-sequence",
};

enum proto_err header_repeat_check(const struct proto_field *fields, size_t n)
{
	for (size_t k = 0; k < sizeof(single_fields) / sizeof(single_fields[0]); k++) {
		unsigned seen = 0;

		for (size_t i = 0; i < n; i++)
			if (header_equals(fields[i].name, fields[i].name_len, single_fields[k]) &&
			    ++seen > 1)
				return PROTO_E_HEADER_REPEATED;
	}
	return PROTO_OK;
}

enum proto_err header_framing_check(const struct proto_field *fields, size_t n, int http10,
				    struct header_framing *out)
{
	const struct proto_field *cl = NULL, *te = NULL, *host = NULL;
	size_t n_cl = 0, n_te = 0, n_host = 0;
	uint64_t length = 0;
	enum proto_err rc;

	if (n > HEADER_COUNT_MAX)
		return PROTO_E_HEADER_COUNT;
	for (size_t i = 0; i < n; i++) {
		const struct proto_field *f = &fields[i];

		rc = header_name_check(f->name, f->name_len);
		if (rc)
			return rc;
		rc = header_value_check(f->value, f->value_len);
		if (rc)
			return rc;
		if (header_equals(f->name, f->name_len, "content-length")) {
			if (!cl)
				cl = f;
			n_cl++;
		} else if (header_equals(f->name, f->name_len, "transfer-encoding")) {
			if (!te)
				te = f;
			n_te++;
		} else if (header_equals(f->name, f->name_len, "host")) {
			host = f;
			n_host++;
		}
	}
	/* A fixed precedence, so that reordering the fields never changes the answer. */
	if (te && http10)
		return PROTO_E_FRAMING_TE_HTTP10;
	if (cl && te)
		return PROTO_E_FRAMING_CL_TE;
	if (n_te > 1)
		return PROTO_E_FRAMING_DUP_TE;
	if (te && !header_equals(te->value, te->value_len, "chunked"))
		return PROTO_E_FRAMING_TE;
	if (n_cl > 1)
		return PROTO_E_FRAMING_DUP_CL;
	if (cl) {
		rc = content_length_parse(cl->value, cl->value_len, &length);
		if (rc)
			return rc;
	}
	/* HTTP/1.0 has no Host requirement, but two Hosts are ambiguous in any version. */
	if (n_host > 1 || (!http10 && n_host == 0))
		return PROTO_E_FRAMING_HOST;
	if (host && !host_value_ok(host->value, host->value_len))
		return PROTO_E_FRAMING_HOST;
	out->has_length = cl != NULL;
	out->content_length = length;
	out->chunked = te != NULL;
	return PROTO_OK;
}
