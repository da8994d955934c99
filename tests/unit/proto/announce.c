/* Tests proto/announce.c: server ids, base URLs, and the pool hash as written and read back. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/announce.h"

/* A string literal and its length, NUL bytes inside included. */
#define S(lit) lit, sizeof(lit) - 1
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

struct check_case {
	const char *in;
	size_t len;
	enum proto_err rc;
};

#define C(lit, rc) {S(lit), rc}

/* ---- announce_server_id_check ---- */

static const struct check_case ids[] = {
	C("a", PROTO_OK),
	C("0", PROTO_OK),
	C("dc1-print-01", PROTO_OK),
	C("a--b", PROTO_OK),
	C("abcdefghijklmnopqrstuvwxyz012345", PROTO_OK), /* 32 */
	C("abcdefghijklmnopqrstuvwxyz0123456", PROTO_E_TOO_LONG), /* 33 */
	C("", PROTO_E_EMPTY),
	C("-", PROTO_E_SERVER_ID),
	C("-a", PROTO_E_SERVER_ID),
	C("a-", PROTO_E_SERVER_ID),
	C("A", PROTO_E_SERVER_ID),
	C("srv-A1", PROTO_E_SERVER_ID),
	C("a_b", PROTO_E_SERVER_ID),
	C("a.b", PROTO_E_SERVER_ID),
	C("a:b", PROTO_E_SERVER_ID),
	C("a b", PROTO_E_SERVER_ID),
	C("a\0b", PROTO_E_SERVER_ID),
	C("a\n", PROTO_E_SERVER_ID),
	C("\xc3\xa9", PROTO_E_SERVER_ID),
	C("{a}", PROTO_E_SERVER_ID),
	C("a*", PROTO_E_SERVER_ID),
};

Test(announce, server_id_check)
{
	for (size_t i = 0; i < COUNT(ids); i++)
		cr_expect_eq(announce_server_id_check(ids[i].in, ids[i].len), ids[i].rc,
			     "case %zu \"%.*s\"", i, (int)ids[i].len, ids[i].in);
}

Test(announce, server_id_not_read_past_len)
{
	cr_expect_eq(announce_server_id_check("ab-", 2), PROTO_OK);
	cr_expect_eq(announce_server_id_check("a", 0), PROTO_E_EMPTY);
}

/* ---- announce_url_check ---- */

#define L63 "abcdefghij0123456789abcdefghij0123456789abcdefghij0123456789abc"

static const struct check_case urls[] = {
	C("http://a:1", PROTO_OK),
	C("https://a:65535", PROTO_OK),
	C("https://print-01.dc1.example.com:8443", PROTO_OK),
	C("http://Print.EXAMPLE.com:80", PROTO_OK),
	C("http://localhost:8080", PROTO_OK),
	C("http://" L63 ".example:80", PROTO_OK),
	C("http://10.0.0.1:80", PROTO_OK),
	C("http://255.255.255.255:80", PROTO_OK),
	C("http://0.0.0.0:80", PROTO_OK),
	C("http://[::1]:8080", PROTO_OK),
	C("http://[2001:db8::1]:443/base", PROTO_OK),
	C("http://[::ffff:10.0.0.1]:443", PROTO_OK),
	C("http://[2001:DB8:0:0:0:0:0:1]:1", PROTO_OK),
	C("https://a:1/fsg", PROTO_OK),
	C("https://a:1/a/b/c", PROTO_OK),
	C("https://a:1/a.b_c~d-e/AZaz09", PROTO_OK),
	C("https://a:1/...", PROTO_OK),
	C("https://a:1/.well-known", PROTO_OK),
	C("https://a:1/a..b", PROTO_OK),
	C("https://example.1a:1", PROTO_OK),
	C("https://0xg.example:1", PROTO_OK),

	/* scheme */
	C("", PROTO_E_ANNOUNCE_URL),
	C("HTTP://a:1", PROTO_E_ANNOUNCE_URL),
	C("Https://a:1", PROTO_E_ANNOUNCE_URL),
	C("ftp://a:1", PROTO_E_ANNOUNCE_URL),
	C("http:/a:1", PROTO_E_ANNOUNCE_URL),
	C("http:a:1", PROTO_E_ANNOUNCE_URL),
	C("//a:1", PROTO_E_ANNOUNCE_URL),
	C("a:1", PROTO_E_ANNOUNCE_URL),
	C("http://", PROTO_E_ANNOUNCE_URL),
	C("https:/", PROTO_E_ANNOUNCE_URL),
	C(" http://a:1", PROTO_E_ANNOUNCE_URL),
	/* port */
	C("http://a", PROTO_E_ANNOUNCE_URL),
	C("http://a/", PROTO_E_ANNOUNCE_URL),
	C("http://a/x", PROTO_E_ANNOUNCE_URL),
	C("http://a:", PROTO_E_ANNOUNCE_URL),
	C("http://a:/x", PROTO_E_ANNOUNCE_URL),
	C("http://a:0", PROTO_E_ANNOUNCE_URL),
	C("http://a:65536", PROTO_E_ANNOUNCE_URL),
	C("http://a:99999999999999999999999", PROTO_E_ANNOUNCE_URL),
	C("http://a:080", PROTO_E_ANNOUNCE_URL),
	C("http://a:+80", PROTO_E_ANNOUNCE_URL),
	C("http://a:-80", PROTO_E_ANNOUNCE_URL),
	C("http://a: 80", PROTO_E_ANNOUNCE_URL),
	C("http://a:80 ", PROTO_E_ANNOUNCE_URL),
	C("http://a:80a", PROTO_E_ANNOUNCE_URL),
	C("http://a:80:81", PROTO_E_ANNOUNCE_URL),
	C("http://a:8\x00", PROTO_E_ANNOUNCE_URL),
	/* userinfo, query, fragment, encoding */
	C("http://u@a:1", PROTO_E_ANNOUNCE_URL),
	C("http://u:p@a:1", PROTO_E_ANNOUNCE_URL),
	C("http://a:1@b:2", PROTO_E_ANNOUNCE_URL),
	C("http://a:1?x", PROTO_E_ANNOUNCE_URL),
	C("http://a:1/p?x=1", PROTO_E_ANNOUNCE_URL),
	C("http://a:1#f", PROTO_E_ANNOUNCE_URL),
	C("http://a:1/p#f", PROTO_E_ANNOUNCE_URL),
	C("http://a:1/%2e", PROTO_E_ANNOUNCE_URL),
	C("http://a%2eb:1", PROTO_E_ANNOUNCE_URL),
	/* path shape */
	C("http://a:1/", PROTO_E_ANNOUNCE_URL),
	C("http://a:1/p/", PROTO_E_ANNOUNCE_URL),
	C("http://a:1//p", PROTO_E_ANNOUNCE_URL),
	C("http://a:1/p//q", PROTO_E_ANNOUNCE_URL),
	C("http://a:1/.", PROTO_E_ANNOUNCE_URL),
	C("http://a:1/..", PROTO_E_ANNOUNCE_URL),
	C("http://a:1/./p", PROTO_E_ANNOUNCE_URL),
	C("http://a:1/p/../q", PROTO_E_ANNOUNCE_URL),
	C("http://a:1/p/.", PROTO_E_ANNOUNCE_URL),
	C("http://a:1/p q", PROTO_E_ANNOUNCE_URL),
	C("http://a:1/p\\q", PROTO_E_ANNOUNCE_URL),
	C("http://a:1/p;q", PROTO_E_ANNOUNCE_URL),
	C("http://a:1/p\r\nHost: x", PROTO_E_ANNOUNCE_URL),
	C("http://a:1/p\0", PROTO_E_ANNOUNCE_URL),
	C("http://a:1/\xc3\xa9", PROTO_E_ANNOUNCE_URL),
	/* DNS names */
	C("http://:80", PROTO_E_ANNOUNCE_URL),
	C("http://.a:80", PROTO_E_ANNOUNCE_URL),
	C("http://a.:80", PROTO_E_ANNOUNCE_URL),
	C("http://a..b:80", PROTO_E_ANNOUNCE_URL),
	C("http://-a:80", PROTO_E_ANNOUNCE_URL),
	C("http://a-:80", PROTO_E_ANNOUNCE_URL),
	C("http://a.-b.c:80", PROTO_E_ANNOUNCE_URL),
	C("http://a_b:80", PROTO_E_ANNOUNCE_URL),
	C("http://a b:80", PROTO_E_ANNOUNCE_URL),
	C("http://a\0b:80", PROTO_E_ANNOUNCE_URL),
	C("http://a\n:80", PROTO_E_ANNOUNCE_URL),
	C("http://\xc3\xa9.example:80", PROTO_E_ANNOUNCE_URL),
	C("http://" L63 "d.example:80", PROTO_E_ANNOUNCE_URL), /* label of 64 */
	/* numbers that resolvers read as IPv4 in other spellings */
	C("http://127.1:80", PROTO_E_ANNOUNCE_URL),
	C("http://2130706433:80", PROTO_E_ANNOUNCE_URL),
	C("http://0x7f000001:80", PROTO_E_ANNOUNCE_URL),
	C("http://0x7f.0.0.1:80", PROTO_E_ANNOUNCE_URL),
	C("http://127.0.0.0x1:80", PROTO_E_ANNOUNCE_URL),
	C("http://0177.0.0.1:80", PROTO_E_ANNOUNCE_URL),
	C("http://10.0.0.01:80", PROTO_E_ANNOUNCE_URL),
	C("http://256.0.0.1:80", PROTO_E_ANNOUNCE_URL),
	C("http://1.2.3.4.5:80", PROTO_E_ANNOUNCE_URL),
	C("http://1.2.3:80", PROTO_E_ANNOUNCE_URL),
	C("http://example.123:80", PROTO_E_ANNOUNCE_URL),
	C("http://example.0x1F:80", PROTO_E_ANNOUNCE_URL),
	C("http://0x:80", PROTO_E_ANNOUNCE_URL),
	/* IPv6 */
	C("http://[::1]", PROTO_E_ANNOUNCE_URL),
	C("http://[::1]80", PROTO_E_ANNOUNCE_URL),
	C("http://[::1]:", PROTO_E_ANNOUNCE_URL),
	C("http://[::1:80", PROTO_E_ANNOUNCE_URL),
	C("http://[]:80", PROTO_E_ANNOUNCE_URL),
	C("http://[::g]:80", PROTO_E_ANNOUNCE_URL),
	C("http://[1.2.3.4]:80", PROTO_E_ANNOUNCE_URL),
	C("http://[fe80::1%eth0]:80", PROTO_E_ANNOUNCE_URL),
	C("http://[fe80::1%25eth0]:80", PROTO_E_ANNOUNCE_URL),
	C("http://[ ::1]:80", PROTO_E_ANNOUNCE_URL),
	C("http://[::1]x:80", PROTO_E_ANNOUNCE_URL),
	C("http://[[::1]]:80", PROTO_E_ANNOUNCE_URL),
	C("http://::1:80", PROTO_E_ANNOUNCE_URL),
	C("http://[1:2:3:4:5:6:7:8:9]:80", PROTO_E_ANNOUNCE_URL),
	/* inet_pton would stop at the NUL and accept what came before (found by fuzzing) */
	C("http://[12::\0" "8::7]:80", PROTO_E_ANNOUNCE_URL),
	C("http://[::1\0]:80", PROTO_E_ANNOUNCE_URL),
	C("http://10.0.0.1\0:80", PROTO_E_ANNOUNCE_URL),
	C("http://[0000:0000:0000:0000:0000:0000:0000:0000:0000]:80", PROTO_E_ANNOUNCE_URL),
};

Test(announce, url_check)
{
	for (size_t i = 0; i < COUNT(urls); i++)
		cr_expect_eq(announce_url_check(urls[i].in, urls[i].len), urls[i].rc,
			     "case %zu \"%.*s\"", i, (int)urls[i].len, urls[i].in);
}

/* "http://" + host of n bytes (labels of 'a', dot-separated) + ":1" */
static size_t long_url(char *buf, size_t host_len)
{
	size_t n = (size_t)sprintf(buf, "http://");

	for (size_t i = 0; i < host_len; i++)
		buf[n++] = (i % 50 == 49 && i + 1 < host_len) ? '.' : 'a';
	n += (size_t)sprintf(buf + n, ":1");
	return n;
}

Test(announce, url_length_limit)
{
	char buf[ANNOUNCE_URL_MAX + 16];
	size_t n;

	n = long_url(buf, ANNOUNCE_URL_MAX - 9);
	cr_assert_eq(n, ANNOUNCE_URL_MAX);
	cr_expect_eq(announce_url_check(buf, n), PROTO_OK);
	n = long_url(buf, ANNOUNCE_URL_MAX - 8);
	cr_expect_eq(announce_url_check(buf, n), PROTO_E_TOO_LONG);
	/* a path brings it to the limit as well */
	n = (size_t)sprintf(buf, "http://a:1/");
	memset(buf + n, 'p', ANNOUNCE_URL_MAX - n);
	cr_expect_eq(announce_url_check(buf, ANNOUNCE_URL_MAX), PROTO_OK);
	buf[ANNOUNCE_URL_MAX] = 'p';
	cr_expect_eq(announce_url_check(buf, ANNOUNCE_URL_MAX + 1), PROTO_E_TOO_LONG);
}

Test(announce, url_not_read_past_len)
{
	cr_expect_eq(announce_url_check("http://a:1/p/", 12), PROTO_OK);
	cr_expect_eq(announce_url_check("http://a:1/", 10), PROTO_OK);
	cr_expect_eq(announce_url_check("http://[::1]:1", 12), PROTO_E_ANNOUNCE_URL);
	cr_expect_eq(announce_url_check("http://[::1]:1", 11), PROTO_E_ANNOUNCE_URL);
	cr_expect_eq(announce_url_check("https://a:1", 7), PROTO_E_ANNOUNCE_URL);
}

/* ---- announce_parse ---- */

#define F(n, v) {n, sizeof(n) - 1, v, sizeof(v) - 1}
#define FIELDS_MAX 16

static const struct proto_field base[ANNOUNCE_FIELDS] = {
	F("id", "dc1-print-01"),
	F("url", "https://print-01.dc1.example.com:8443/fsg"),
	F("capacity", "64"),
	F("active", "3"),
	F("free_bytes", "1073741824"),
	F("draining", "0"),
	F("heartbeat_ms", "1732492800123"),
	F("proto", "1"),
};

enum op { SET, DEL, ADD };

struct parse_case {
	const char *name;
	enum op op;
	struct proto_field f; /* SET: f.name's value becomes f.value; DEL: f.name goes; ADD: f */
	enum proto_err rc;
};

#define SETV(name, v, rc) {name "=" v, SET, F(name, v), rc}

static const struct parse_case parses[] = {
	{"base", SET, F("id", "dc1-print-01"), PROTO_OK},
	{"unknown field", ADD, F("zone", "eu-1"), PROTO_OK},
	{"unknown field empty", ADD, F("", ""), PROTO_OK},
	{"name with NUL is unknown", ADD, F("id\0", "x"), PROTO_OK},
	{"name case differs is unknown", ADD, F("ID", "x"), PROTO_OK},
	{"name with space is unknown", ADD, F("id ", "x"), PROTO_OK},
	SETV("capacity", "1", PROTO_OK),
	SETV("capacity", "1000000", PROTO_OK),
	SETV("active", "0", PROTO_OK),
	SETV("active", "65", PROTO_OK), /* above capacity: allowed */
	SETV("active", "4294967295", PROTO_OK),
	SETV("free_bytes", "0", PROTO_OK),
	SETV("free_bytes", "18446744073709551615", PROTO_OK),
	SETV("draining", "1", PROTO_OK),
	SETV("heartbeat_ms", "0", PROTO_OK),
	SETV("heartbeat_ms", "9007199254740991", PROTO_OK),
	SETV("id", "abcdefghijklmnopqrstuvwxyz012345", PROTO_OK),
	SETV("url", "http://[::1]:1", PROTO_OK),

	{"missing id", DEL, F("id", ""), PROTO_E_ANNOUNCE_MISSING},
	{"missing url", DEL, F("url", ""), PROTO_E_ANNOUNCE_MISSING},
	{"missing capacity", DEL, F("capacity", ""), PROTO_E_ANNOUNCE_MISSING},
	{"missing active", DEL, F("active", ""), PROTO_E_ANNOUNCE_MISSING},
	{"missing free_bytes", DEL, F("free_bytes", ""), PROTO_E_ANNOUNCE_MISSING},
	{"missing draining", DEL, F("draining", ""), PROTO_E_ANNOUNCE_MISSING},
	{"missing heartbeat_ms", DEL, F("heartbeat_ms", ""), PROTO_E_ANNOUNCE_MISSING},
	{"missing proto", DEL, F("proto", ""), PROTO_E_ANNOUNCE_MISSING},
	{"dup id same value", ADD, F("id", "dc1-print-01"), PROTO_E_ANNOUNCE_DUP},
	{"dup id", ADD, F("id", "other"), PROTO_E_ANNOUNCE_DUP},
	{"dup url", ADD, F("url", "http://a:1"), PROTO_E_ANNOUNCE_DUP},
	{"dup capacity", ADD, F("capacity", "1"), PROTO_E_ANNOUNCE_DUP},
	{"dup active", ADD, F("active", "1"), PROTO_E_ANNOUNCE_DUP},
	{"dup free_bytes", ADD, F("free_bytes", "1"), PROTO_E_ANNOUNCE_DUP},
	{"dup draining", ADD, F("draining", "1"), PROTO_E_ANNOUNCE_DUP},
	{"dup heartbeat_ms", ADD, F("heartbeat_ms", "1"), PROTO_E_ANNOUNCE_DUP},
	{"dup proto", ADD, F("proto", "1"), PROTO_E_ANNOUNCE_DUP},
	{"dup invalid value", ADD, F("capacity", "x"), PROTO_E_ANNOUNCE_DUP},

	SETV("id", "", PROTO_E_SERVER_ID),
	SETV("id", "Dc1", PROTO_E_SERVER_ID),
	SETV("id", "-a", PROTO_E_SERVER_ID),
	SETV("id", "abcdefghijklmnopqrstuvwxyz0123456", PROTO_E_SERVER_ID),
	SETV("id", "a\0", PROTO_E_SERVER_ID),
	SETV("url", "", PROTO_E_ANNOUNCE_URL),
	SETV("url", "http://a:1/", PROTO_E_ANNOUNCE_URL),
	SETV("url", "http://127.1:1", PROTO_E_ANNOUNCE_URL),
	SETV("url", "http://a:1\0", PROTO_E_ANNOUNCE_URL),
	SETV("url", "http://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaa"
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:1",
	     PROTO_E_ANNOUNCE_URL), /* 256 bytes: PROTO_E_TOO_LONG from the check */
	SETV("capacity", "0", PROTO_E_ANNOUNCE_VALUE),
	SETV("capacity", "1000001", PROTO_E_ANNOUNCE_VALUE),
	SETV("capacity", "", PROTO_E_ANNOUNCE_VALUE),
	SETV("capacity", "01", PROTO_E_ANNOUNCE_VALUE),
	SETV("capacity", "+1", PROTO_E_ANNOUNCE_VALUE),
	SETV("capacity", "-1", PROTO_E_ANNOUNCE_VALUE),
	SETV("capacity", " 1", PROTO_E_ANNOUNCE_VALUE),
	SETV("capacity", "1 ", PROTO_E_ANNOUNCE_VALUE),
	SETV("capacity", "1.0", PROTO_E_ANNOUNCE_VALUE),
	SETV("capacity", "1e3", PROTO_E_ANNOUNCE_VALUE),
	SETV("capacity", "0x10", PROTO_E_ANNOUNCE_VALUE),
	SETV("capacity", "4294967361", PROTO_E_ANNOUNCE_VALUE), /* 2^32 + 65 */
	SETV("capacity", "1\0", PROTO_E_ANNOUNCE_VALUE),
	SETV("active", "4294967296", PROTO_E_ANNOUNCE_VALUE),
	SETV("active", "-0", PROTO_E_ANNOUNCE_VALUE),
	SETV("active", "", PROTO_E_ANNOUNCE_VALUE),
	SETV("free_bytes", "18446744073709551616", PROTO_E_ANNOUNCE_VALUE),
	SETV("free_bytes", "99999999999999999999999999", PROTO_E_ANNOUNCE_VALUE),
	SETV("free_bytes", "1\n", PROTO_E_ANNOUNCE_VALUE),
	SETV("draining", "2", PROTO_E_ANNOUNCE_VALUE),
	SETV("draining", "00", PROTO_E_ANNOUNCE_VALUE),
	SETV("draining", "true", PROTO_E_ANNOUNCE_VALUE),
	SETV("draining", "", PROTO_E_ANNOUNCE_VALUE),
	SETV("heartbeat_ms", "9007199254740992", PROTO_E_ANNOUNCE_VALUE),
	SETV("heartbeat_ms", "18446744073709551615", PROTO_E_ANNOUNCE_VALUE),
	SETV("proto", "2", PROTO_E_ANNOUNCE_VALUE),
	SETV("proto", "01", PROTO_E_ANNOUNCE_VALUE),
	SETV("proto", "1 ", PROTO_E_ANNOUNCE_VALUE),
	SETV("proto", "1.0", PROTO_E_ANNOUNCE_VALUE),
	SETV("proto", "", PROTO_E_ANNOUNCE_VALUE),
};

static int name_is(const struct proto_field *f, const struct proto_field *g)
{
	return f->name_len == g->name_len && memcmp(f->name, g->name, f->name_len) == 0;
}

static size_t case_fields(const struct parse_case *c, struct proto_field *out)
{
	size_t n = 0;

	for (size_t i = 0; i < ANNOUNCE_FIELDS; i++) {
		if (name_is(&base[i], &c->f) && c->op == DEL)
			continue;
		out[n] = base[i];
		if (name_is(&base[i], &c->f) && c->op == SET)
			out[n] = c->f;
		n++;
	}
	if (c->op == ADD)
		out[n++] = c->f;
	return n;
}

Test(announce, parse_table)
{
	for (size_t i = 0; i < COUNT(parses); i++) {
		const struct parse_case *c = &parses[i];
		struct proto_field f[FIELDS_MAX];
		size_t n = case_fields(c, f);
		struct announce a;
		enum proto_err rc;

		memset(&a, 0x5a, sizeof(a));
		rc = announce_parse(f, n, &a);
		cr_expect_eq(rc, c->rc, "%s: got %d (%s)", c->name, rc, proto_strerror(rc));
		if (c->rc != PROTO_OK)
			cr_expect_eq(a.capacity, 0x5a5a5a5a, "%s: out untouched", c->name);
	}
}

Test(announce, parse_exact_values_any_order)
{
	struct proto_field f[ANNOUNCE_FIELDS];
	struct announce a;

	/* reversed, as a hash may return them in any order */
	for (size_t i = 0; i < ANNOUNCE_FIELDS; i++)
		f[i] = base[ANNOUNCE_FIELDS - 1 - i];
	cr_assert_eq(announce_parse(f, ANNOUNCE_FIELDS, &a), PROTO_OK);
	cr_expect_str_eq(a.id, "dc1-print-01");
	cr_expect_str_eq(a.url, "https://print-01.dc1.example.com:8443/fsg");
	cr_expect_eq(a.capacity, 64);
	cr_expect_eq(a.active, 3);
	cr_expect_eq(a.free_bytes, 1073741824ULL);
	cr_expect_eq(a.draining, 0);
	cr_expect_eq(a.heartbeat_ms, 1732492800123ULL);

	cr_expect_eq(announce_parse(f, 0, &a), PROTO_E_ANNOUNCE_MISSING);
	cr_expect_eq(announce_parse(NULL, 0, &a), PROTO_E_ANNOUNCE_MISSING);
}

Test(announce, parse_errors_in_field_order)
{
	struct proto_field f[ANNOUNCE_FIELDS + 2];
	struct announce a;

	memcpy(f, base, sizeof(base));
	f[2] = (struct proto_field)F("capacity", "0");
	f[ANNOUNCE_FIELDS] = (struct proto_field)F("capacity", "1");
	cr_expect_eq(announce_parse(f, ANNOUNCE_FIELDS + 1, &a), PROTO_E_ANNOUNCE_VALUE);
	f[2] = base[2];
	f[ANNOUNCE_FIELDS + 1] = (struct proto_field)F("url", "bad");
	cr_expect_eq(announce_parse(f, ANNOUNCE_FIELDS + 2, &a), PROTO_E_ANNOUNCE_DUP);
}

/* ---- announce_fields ---- */

static struct announce valid(void)
{
	struct announce a;

	memset(&a, 0, sizeof(a));
	strcpy(a.id, "dc1-print-01");
	strcpy(a.url, "https://print-01.dc1.example.com:8443/fsg");
	a.capacity = 64;
	a.active = 3;
	a.free_bytes = 1073741824ULL;
	a.draining = 1;
	a.heartbeat_ms = 1732492800123ULL;
	return a;
}

static void expect_field(const struct proto_field *f, const char *name, const char *value)
{
	cr_expect_eq(f->name_len, strlen(name), "%s", name);
	cr_expect_eq(memcmp(f->name, name, f->name_len), 0, "%s", name);
	cr_expect_eq(f->value_len, strlen(value), "%s", name);
	cr_expect_eq(memcmp(f->value, value, f->value_len), 0, "%s: %.*s", name,
		     (int)f->value_len, f->value);
}

Test(announce, fields_exact_text)
{
	struct announce a = valid();
	struct announce_text t;
	struct proto_field f[ANNOUNCE_FIELDS];

	cr_assert_eq(announce_fields(&a, &t, f), PROTO_OK);
	expect_field(&f[0], "id", "dc1-print-01");
	expect_field(&f[1], "url", "https://print-01.dc1.example.com:8443/fsg");
	expect_field(&f[2], "capacity", "64");
	expect_field(&f[3], "active", "3");
	expect_field(&f[4], "free_bytes", "1073741824");
	expect_field(&f[5], "draining", "1");
	expect_field(&f[6], "heartbeat_ms", "1732492800123");
	expect_field(&f[7], "proto", ANNOUNCE_PROTO);
}

struct fields_case {
	const char *name;
	void (*mutate)(struct announce *a);
	enum proto_err rc;
};

static void m_none(struct announce *a) { (void)a; }
static void m_limits(struct announce *a)
{
	memset(a->id, 'z', SERVER_ID_MAX);
	a->id[SERVER_ID_MAX] = '\0';
	a->capacity = ANNOUNCE_CAPACITY_MAX;
	a->active = UINT32_MAX;
	a->free_bytes = UINT64_MAX;
	a->heartbeat_ms = 9007199254740991ULL;
}
static void m_zeroes(struct announce *a)
{
	a->capacity = 1;
	a->active = 0;
	a->free_bytes = 0;
	a->draining = 0;
	a->heartbeat_ms = 0;
}
static void m_id_empty(struct announce *a) { a->id[0] = '\0'; }
static void m_id_bad(struct announce *a) { strcpy(a->id, "Dc1"); }
static void m_id_unterminated(struct announce *a) { memset(a->id, 'a', sizeof(a->id)); }
static void m_url_bad(struct announce *a) { strcpy(a->url, "http://a:1/"); }
static void m_url_empty(struct announce *a) { a->url[0] = '\0'; }
static void m_url_unterminated(struct announce *a) { memset(a->url, 'a', sizeof(a->url)); }
static void m_capacity_0(struct announce *a) { a->capacity = 0; }
static void m_capacity_big(struct announce *a) { a->capacity = ANNOUNCE_CAPACITY_MAX + 1; }
static void m_draining_2(struct announce *a) { a->draining = 2; }
static void m_draining_neg(struct announce *a) { a->draining = -1; }
static void m_heartbeat_big(struct announce *a) { a->heartbeat_ms = 9007199254740992ULL; }

static const struct fields_case fields_cases[] = {
	{"valid", m_none, PROTO_OK},
	{"limits", m_limits, PROTO_OK},
	{"zeroes", m_zeroes, PROTO_OK},
	{"id empty", m_id_empty, PROTO_E_SERVER_ID},
	{"id bad", m_id_bad, PROTO_E_SERVER_ID},
	{"id unterminated", m_id_unterminated, PROTO_E_SERVER_ID},
	{"url bad", m_url_bad, PROTO_E_ANNOUNCE_URL},
	{"url empty", m_url_empty, PROTO_E_ANNOUNCE_URL},
	{"url unterminated", m_url_unterminated, PROTO_E_ANNOUNCE_URL},
	{"capacity 0", m_capacity_0, PROTO_E_ANNOUNCE_VALUE},
	{"capacity max+1", m_capacity_big, PROTO_E_ANNOUNCE_VALUE},
	{"draining 2", m_draining_2, PROTO_E_ANNOUNCE_VALUE},
	{"draining -1", m_draining_neg, PROTO_E_ANNOUNCE_VALUE},
	{"heartbeat 2^53", m_heartbeat_big, PROTO_E_ANNOUNCE_VALUE},
};

Test(announce, fields_check_and_round_trip)
{
	for (size_t i = 0; i < COUNT(fields_cases); i++) {
		const struct fields_case *c = &fields_cases[i];
		struct announce a = valid(), b;
		struct announce_text t;
		struct proto_field f[ANNOUNCE_FIELDS];

		c->mutate(&a);
		cr_expect_eq(announce_fields(&a, &t, f), c->rc, "%s", c->name);
		if (c->rc != PROTO_OK)
			continue;
		memset(&b, 0x5a, sizeof(b));
		cr_assert_eq(announce_parse(f, ANNOUNCE_FIELDS, &b), PROTO_OK, "%s", c->name);
		cr_expect_str_eq(b.id, a.id, "%s", c->name);
		cr_expect_str_eq(b.url, a.url, "%s", c->name);
		cr_expect_eq(b.capacity, a.capacity, "%s", c->name);
		cr_expect_eq(b.active, a.active, "%s", c->name);
		cr_expect_eq(b.free_bytes, a.free_bytes, "%s", c->name);
		cr_expect_eq(b.draining, a.draining, "%s", c->name);
		cr_expect_eq(b.heartbeat_ms, a.heartbeat_ms, "%s", c->name);
	}
}
