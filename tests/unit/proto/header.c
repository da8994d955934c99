/* Tests proto/header.c: field syntax, and every request-smuggling shape framing must refuse. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/header.h"

/* A field from two literals; sizeof keeps NUL bytes inside the lengths. */
#define F(n, v)                                                                                    \
	{                                                                                          \
		n, sizeof(n) - 1, v, sizeof(v) - 1                                                 \
	}
#define HOST F("Host", "example.org")
#define FIELDS_MAX 8

/* ---- header_name_check ---- */

struct name_case {
	const char *name;
	size_t len;
	enum proto_err rc;
};

#define N(s, rc)                                                                                   \
	{                                                                                          \
		s, sizeof(s) - 1, rc                                                               \
	}

static const struct name_case name_cases[] = {
	N("Host", PROTO_OK),
	N("Content-Length", PROTO_OK),
	N("x", PROTO_OK),
	N("!#$%&'*+-.^_`|~09azAZ", PROTO_OK),
	N("", PROTO_E_EMPTY),
	/* `Transfer-Encoding : chunked` smuggling, as libmicrohttpd 0.9.75 hands the name over */
	N("Transfer-Encoding ", PROTO_E_HEADER_NAME),
	N(" Transfer-Encoding", PROTO_E_HEADER_NAME),
	N("Transfer-Encoding\t", PROTO_E_HEADER_NAME),
	N("Transfer Encoding", PROTO_E_HEADER_NAME),
	N("Host:", PROTO_E_HEADER_NAME),
	N("Host\r", PROTO_E_HEADER_NAME),
	N("Host\n", PROTO_E_HEADER_NAME),
	N("Ho\0st", PROTO_E_HEADER_NAME),
	N("Host\0", PROTO_E_HEADER_NAME),
	N("Host\x7f", PROTO_E_HEADER_NAME),
	N("H\xc3\xb6st", PROTO_E_HEADER_NAME),
	N("\xc8ost", PROTO_E_HEADER_NAME),
	N("(x)", PROTO_E_HEADER_NAME),
	N("x@y", PROTO_E_HEADER_NAME),
	N("a,b", PROTO_E_HEADER_NAME),
	N("a;b", PROTO_E_HEADER_NAME),
	N("a/b", PROTO_E_HEADER_NAME),
	N("\"a\"", PROTO_E_HEADER_NAME),
	N("a{b}", PROTO_E_HEADER_NAME),
	N("a[b]", PROTO_E_HEADER_NAME),
	N("a=b", PROTO_E_HEADER_NAME),
	N("a?b", PROTO_E_HEADER_NAME),
	N("a\\b", PROTO_E_HEADER_NAME),
	N("a<b>", PROTO_E_HEADER_NAME),
};

Test(header_name, table)
{
	for (size_t i = 0; i < sizeof(name_cases) / sizeof(name_cases[0]); i++) {
		const struct name_case *c = &name_cases[i];

		cr_expect_eq(header_name_check(c->name, c->len), c->rc, "case %zu (%s)", i,
			     c->name);
	}
}

/* Every single byte: accepted exactly when it is one of RFC 9110's tchar. */
Test(header_name, every_byte)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~0123456789"
				    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
	int accepted = 0;

	for (int b = 0; b < 256; b++) {
		char c = (char)b;
		int is_t = b != 0 && memchr(tchar, b, sizeof(tchar) - 1) != NULL;

		cr_expect_eq(header_name_check(&c, 1), is_t ? PROTO_OK : PROTO_E_HEADER_NAME,
			     "byte 0x%02x", b);
		accepted += is_t;
	}
	cr_expect_eq(accepted, 15 + 10 + 52);
}

Test(header_name, length_limits)
{
	char name[HEADER_NAME_MAX + 2];

	memset(name, 'a', sizeof(name));
	cr_expect_eq(header_name_check(name, HEADER_NAME_MAX), PROTO_OK);
	cr_expect_eq(header_name_check(name, HEADER_NAME_MAX + 1), PROTO_E_TOO_LONG);
	/* the length cap wins over a bad character */
	name[0] = ' ';
	cr_expect_eq(header_name_check(name, HEADER_NAME_MAX + 1), PROTO_E_TOO_LONG);
	cr_expect_eq(header_name_check(name, HEADER_NAME_MAX), PROTO_E_HEADER_NAME);
	cr_expect_eq(header_name_check(NULL, 0), PROTO_E_EMPTY);
}

/* ---- header_value_check ---- */

static const struct name_case value_cases[] = {
	N("", PROTO_OK),
	N("x", PROTO_OK),
	N("example.org:8443", PROTO_OK),
	N("a b\tc", PROTO_OK),
	N("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", PROTO_OK),
	/* obs-text is allowed: RFC 9110 keeps it for old clients, the field stays one value */
	N("\x80", PROTO_OK),
	N("\xff", PROTO_OK),
	N("caf\xc3\xa9", PROTO_OK),
	N("\xc0\xaf not UTF-8 \xfe", PROTO_OK),
	/* outer whitespace: the parser strips OWS, so it only comes from a broken client */
	N(" x", PROTO_E_HEADER_VALUE),
	N("x ", PROTO_E_HEADER_VALUE),
	N("\tx", PROTO_E_HEADER_VALUE),
	N("x\t", PROTO_E_HEADER_VALUE),
	N(" ", PROTO_E_HEADER_VALUE),
	N("\t", PROTO_E_HEADER_VALUE),
	/* control characters: CR and LF forge fields or log lines, NUL truncates C strings */
	N("a\rb", PROTO_E_HEADER_VALUE),
	N("a\nb", PROTO_E_HEADER_VALUE),
	N("a\r\nX-Injected: 1", PROTO_E_HEADER_VALUE),
	N("chunked\r\n", PROTO_E_HEADER_VALUE),
	N("a\0b", PROTO_E_HEADER_VALUE),
	N("\0", PROTO_E_HEADER_VALUE),
	N("x\0", PROTO_E_HEADER_VALUE),
	N("a\x7f", PROTO_E_HEADER_VALUE),
	N("a\x01", PROTO_E_HEADER_VALUE),
	N("a\x1b[31mred", PROTO_E_HEADER_VALUE),
	N("a\x1f", PROTO_E_HEADER_VALUE),
	N("a\x0b", PROTO_E_HEADER_VALUE),
	N("a\x0c", PROTO_E_HEADER_VALUE),
	N("a\x08", PROTO_E_HEADER_VALUE),
};

Test(header_value, table)
{
	for (size_t i = 0; i < sizeof(value_cases) / sizeof(value_cases[0]); i++) {
		const struct name_case *c = &value_cases[i];

		cr_expect_eq(header_value_check(c->name, c->len), c->rc, "case %zu", i);
	}
}

/* Every byte in the middle of a value: only the CTLs other than HTAB, and DEL, are refused. */
Test(header_value, every_byte)
{
	int refused = 0;

	for (int b = 0; b < 256; b++) {
		char v[3] = {'a', (char)b, 'z'};
		int ctl = (b < 0x20 && b != '\t') || b == 0x7f;

		cr_expect_eq(header_value_check(v, 3), ctl ? PROTO_E_HEADER_VALUE : PROTO_OK,
			     "byte 0x%02x", b);
		refused += ctl;
	}
	cr_expect_eq(refused, 32);
}

Test(header_value, length_limits)
{
	char *v = malloc(HEADER_VALUE_MAX + 1);

	cr_assert_not_null(v);
	memset(v, 'v', HEADER_VALUE_MAX + 1);
	cr_expect_eq(header_value_check(v, HEADER_VALUE_MAX), PROTO_OK);
	cr_expect_eq(header_value_check(v, HEADER_VALUE_MAX + 1), PROTO_E_TOO_LONG);
	v[HEADER_VALUE_MAX / 2] = '\r';
	cr_expect_eq(header_value_check(v, HEADER_VALUE_MAX), PROTO_E_HEADER_VALUE);
	cr_expect_eq(header_value_check(NULL, 0), PROTO_OK);
	free(v);
}

/* ---- header_equals ---- */

struct equals_case {
	const char *s;
	size_t len;
	const char *lit;
	int eq;
};

#define E(s, lit, eq)                                                                              \
	{                                                                                          \
		s, sizeof(s) - 1, lit, eq                                                          \
	}

static const struct equals_case equals_cases[] = {
	E("host", "host", 1),
	E("HOST", "host", 1),
	E("Host", "HOST", 1),
	E("Content-Length", "content-length", 1),
	E("", "", 1),
	E("", "host", 0),
	E("host", "", 0),
	E("hos", "host", 0),
	E("hostt", "host", 0),
	E("host\0", "host", 0),
	E("ho\0t", "host", 0),
	E("hosu", "host", 0),
	/* folding only A-Z: a sloppy `c | 0x20` would make these equal */
	E("@", "`", 0),
	E("[", "{", 0),
	E("\\", "|", 0),
	E("^", "~", 0),
	E("\xc8ost", "host", 0),
	E("\xe8ost", "host", 0),
	/* Kelvin sign and dotless i are not ASCII letters */
	E("chun\xe2\x84\xaa" "ed", "chunked", 0),
	E("\xc4\xb1" "dentity", "identity", 0),
};

Test(header_equals, table)
{
	for (size_t i = 0; i < sizeof(equals_cases) / sizeof(equals_cases[0]); i++) {
		const struct equals_case *c = &equals_cases[i];

		cr_expect_eq(header_equals(c->s, c->len, c->lit), c->eq, "case %zu (%s)", i,
			     c->lit);
	}
	/* the length bounds the read: the bytes after len do not count */
	cr_expect_eq(header_equals("hostile", 4, "host"), 1);
	cr_expect_eq(header_equals(NULL, 0, ""), 1);
}

/* ---- header_framing_check ---- */

struct framing_case {
	const char *what;
	int http10;
	struct proto_field fields[FIELDS_MAX]; /* ends at the first NULL name */
	enum proto_err rc;
	int has_length;
	uint64_t content_length;
	int chunked;
};

#define OK_NONE PROTO_OK, 0, 0, 0
#define OK_LEN(n) PROTO_OK, 1, n, 0
#define OK_CHUNKED PROTO_OK, 0, 0, 1
#define ERR(rc) rc, 0, 0, 0

static const struct framing_case framing_cases[] = {
	/* accepted */
	{"host only", 0, {HOST}, OK_NONE},
	{"no fields on HTTP/1.0", 1, {{0}}, OK_NONE},
	{"HTTP/1.0 host only", 1, {HOST}, OK_NONE},
	{"HTTP/1.0 content-length, no host", 1, {F("Content-Length", "7")}, OK_LEN(7)},
	{"content-length", 0, {HOST, F("Content-Length", "5")}, OK_LEN(5)},
	{"content-length zero", 0, {HOST, F("Content-Length", "0")}, OK_LEN(0)},
	{"content-length max", 0, {HOST, F("Content-Length", "9007199254740991")},
	 OK_LEN(HEADER_CL_MAX)},
	{"content-length lower case", 0, {F("content-length", "12"), F("host", "h")}, OK_LEN(12)},
	{"content-length upper case", 0, {F("CONTENT-LENGTH", "12"), F("HOST", "h")}, OK_LEN(12)},
	{"chunked", 0, {HOST, F("Transfer-Encoding", "chunked")}, OK_CHUNKED},
	{"chunked upper case", 0, {HOST, F("TRANSFER-ENCODING", "CHUNKED")}, OK_CHUNKED},
	{"chunked mixed case", 0, {F("transfer-encoding", "Chunked"), F("hOsT", "h")}, OK_CHUNKED},
	{"empty host", 0, {F("Host", "")}, OK_NONE},
	{"other fields", 0,
	 {F("Accept", "*/*"), HOST, F("X-Obs", "caf\xc3\xa9 \xff"), F("Tus-Resumable", "1.0.0"),
	  F("Upload-Length", "10"), F("Content-Length", "10"), F("Empty", "")},
	 OK_LEN(10)},
	{"look-alike names are not framing", 0,
	 {HOST, F("Content-Lengths", "x"), F("Transfer-Encodin", "gzip"), F("X-Host", "h"),
	  F("Content-Length-", "1, 1")},
	 OK_NONE},

	/* CL.TE / TE.CL smuggling */
	{"content-length and chunked", 0,
	 {HOST, F("Content-Length", "5"), F("Transfer-Encoding", "chunked")},
	 ERR(PROTO_E_FRAMING_CL_TE)},
	{"chunked and content-length", 0,
	 {HOST, F("Transfer-Encoding", "chunked"), F("Content-Length", "5")},
	 ERR(PROTO_E_FRAMING_CL_TE)},
	{"content-length and identity", 0,
	 {HOST, F("Content-Length", "5"), F("Transfer-Encoding", "identity")},
	 ERR(PROTO_E_FRAMING_CL_TE)},
	{"content-length zero and chunked", 0,
	 {HOST, F("content-length", "0"), F("transfer-encoding", "chunked")},
	 ERR(PROTO_E_FRAMING_CL_TE)},
	{"bad content-length and chunked", 0,
	 {HOST, F("Content-Length", "x"), F("Transfer-Encoding", "chunked")},
	 ERR(PROTO_E_FRAMING_CL_TE)},
	/* `Transfer-Encoding : chunked`: the space stays in the name; it must not be ignored */
	{"space before colon", 0,
	 {HOST, F("Content-Length", "5"), F("Transfer-Encoding ", "chunked")},
	 ERR(PROTO_E_HEADER_NAME)},
	{"space before colon alone", 0, {HOST, F("Transfer-Encoding ", "chunked")},
	 ERR(PROTO_E_HEADER_NAME)},
	{"tab before colon", 0, {HOST, F("Transfer-Encoding\t", "chunked")},
	 ERR(PROTO_E_HEADER_NAME)},
	{"space before colon on content-length", 0,
	 {HOST, F("Content-Length ", "5"), F("Transfer-Encoding", "chunked")},
	 ERR(PROTO_E_HEADER_NAME)},
	{"obs-fold leading space in name", 0, {HOST, F(" Transfer-Encoding", "chunked")},
	 ERR(PROTO_E_HEADER_NAME)},
	{"empty name", 0, {HOST, F("", "chunked")}, ERR(PROTO_E_EMPTY)},

	/* Transfer-Encoding other than exactly chunked */
	{"identity", 0, {HOST, F("Transfer-Encoding", "identity")}, ERR(PROTO_E_FRAMING_TE)},
	{"chunked, identity", 0, {HOST, F("Transfer-Encoding", "chunked, identity")},
	 ERR(PROTO_E_FRAMING_TE)},
	{"identity, chunked", 0, {HOST, F("Transfer-Encoding", "identity, chunked")},
	 ERR(PROTO_E_FRAMING_TE)},
	{"gzip, chunked", 0, {HOST, F("Transfer-Encoding", "gzip, chunked")},
	 ERR(PROTO_E_FRAMING_TE)},
	{"chunked, chunked", 0, {HOST, F("Transfer-Encoding", "chunked, chunked")},
	 ERR(PROTO_E_FRAMING_TE)},
	{"chunked,chunked", 0, {HOST, F("Transfer-Encoding", "chunked,chunked")},
	 ERR(PROTO_E_FRAMING_TE)},
	{"chunked with parameter", 0, {HOST, F("Transfer-Encoding", "chunked;q=1")},
	 ERR(PROTO_E_FRAMING_TE)},
	{"chunked with comma", 0, {HOST, F("Transfer-Encoding", "chunked,")},
	 ERR(PROTO_E_FRAMING_TE)},
	{"comma chunked", 0, {HOST, F("Transfer-Encoding", ",chunked")}, ERR(PROTO_E_FRAMING_TE)},
	{"chunke", 0, {HOST, F("Transfer-Encoding", "chunke")}, ERR(PROTO_E_FRAMING_TE)},
	{"chunkedx", 0, {HOST, F("Transfer-Encoding", "chunkedx")}, ERR(PROTO_E_FRAMING_TE)},
	{"xchunked", 0, {HOST, F("Transfer-Encoding", "xchunked")}, ERR(PROTO_E_FRAMING_TE)},
	{"chunked in quotes", 0, {HOST, F("Transfer-Encoding", "\"chunked\"")},
	 ERR(PROTO_E_FRAMING_TE)},
	{"empty transfer-encoding", 0, {HOST, F("Transfer-Encoding", "")}, ERR(PROTO_E_FRAMING_TE)},
	{"gzip", 0, {HOST, F("Transfer-Encoding", "gzip")}, ERR(PROTO_E_FRAMING_TE)},
	{"chunked Kelvin sign", 0, {HOST, F("Transfer-Encoding", "chun\xe2\x84\xaa" "ed")},
	 ERR(PROTO_E_FRAMING_TE)},
	{"chunked with obs-text", 0, {HOST, F("Transfer-Encoding", "chunked\xa0")},
	 ERR(PROTO_E_FRAMING_TE)},
	{"chunked with trailing space", 0, {HOST, F("Transfer-Encoding", "chunked ")},
	 ERR(PROTO_E_HEADER_VALUE)},
	{"chunked with leading tab", 0, {HOST, F("Transfer-Encoding", "\tchunked")},
	 ERR(PROTO_E_HEADER_VALUE)},
	{"chunked with NUL", 0, {HOST, F("Transfer-Encoding", "chunked\0")},
	 ERR(PROTO_E_HEADER_VALUE)},
	{"chunked with CR", 0, {HOST, F("Transfer-Encoding", "chunked\r")},
	 ERR(PROTO_E_HEADER_VALUE)},
	{"chunked vertical tab", 0, {HOST, F("Transfer-Encoding", "\x0b" "chunked")},
	 ERR(PROTO_E_HEADER_VALUE)},

	/* repeated Transfer-Encoding */
	{"chunked twice", 0,
	 {HOST, F("Transfer-Encoding", "chunked"), F("Transfer-Encoding", "chunked")},
	 ERR(PROTO_E_FRAMING_DUP_TE)},
	{"chunked then identity", 0,
	 {HOST, F("Transfer-Encoding", "chunked"), F("transfer-encoding", "identity")},
	 ERR(PROTO_E_FRAMING_DUP_TE)},
	{"identity then chunked", 0,
	 {HOST, F("Transfer-Encoding", "identity"), F("TRANSFER-ENCODING", "chunked")},
	 ERR(PROTO_E_FRAMING_DUP_TE)},

	/* Transfer-Encoding on HTTP/1.0 */
	{"HTTP/1.0 chunked", 1, {HOST, F("Transfer-Encoding", "chunked")},
	 ERR(PROTO_E_FRAMING_TE_HTTP10)},
	{"HTTP/1.0 chunked without host", 1, {F("Transfer-Encoding", "chunked")},
	 ERR(PROTO_E_FRAMING_TE_HTTP10)},
	{"HTTP/1.0 identity", 1, {F("Transfer-Encoding", "identity")},
	 ERR(PROTO_E_FRAMING_TE_HTTP10)},
	{"HTTP/1.0 chunked and content-length", 1,
	 {F("Content-Length", "5"), F("Transfer-Encoding", "chunked")},
	 ERR(PROTO_E_FRAMING_TE_HTTP10)},

	/* repeated or conflicting Content-Length */
	{"content-length twice equal", 0,
	 {HOST, F("Content-Length", "5"), F("Content-Length", "5")},
	 ERR(PROTO_E_FRAMING_DUP_CL)},
	{"content-length twice conflicting", 0,
	 {HOST, F("Content-Length", "5"), F("content-length", "50")},
	 ERR(PROTO_E_FRAMING_DUP_CL)},
	{"content-length twice, second bad", 0,
	 {HOST, F("Content-Length", "5"), F("Content-Length", "x")},
	 ERR(PROTO_E_FRAMING_DUP_CL)},
	{"content-length list with space", 0, {HOST, F("Content-Length", "5, 5")},
	 ERR(PROTO_E_FRAMING_DUP_CL)},
	{"content-length list", 0, {HOST, F("Content-Length", "5,5")}, ERR(PROTO_E_FRAMING_DUP_CL)},
	{"content-length conflicting list", 0, {HOST, F("Content-Length", "5,6")},
	 ERR(PROTO_E_FRAMING_DUP_CL)},
	{"content-length list with tabs", 0, {HOST, F("Content-Length", "5\t,\t5")},
	 ERR(PROTO_E_FRAMING_DUP_CL)},
	{"content-length list of three", 0, {HOST, F("Content-Length", "0, 0, 0")},
	 ERR(PROTO_E_FRAMING_DUP_CL)},
	{"HTTP/1.0 content-length twice", 1,
	 {F("Content-Length", "1"), F("Content-Length", "1")},
	 ERR(PROTO_E_FRAMING_DUP_CL)},

	/* malformed Content-Length */
	{"content-length empty", 0, {HOST, F("Content-Length", "")}, ERR(PROTO_E_FRAMING_CL)},
	{"content-length letters", 0, {HOST, F("Content-Length", "five")}, ERR(PROTO_E_FRAMING_CL)},
	{"content-length plus", 0, {HOST, F("Content-Length", "+5")}, ERR(PROTO_E_FRAMING_CL)},
	{"content-length minus", 0, {HOST, F("Content-Length", "-1")}, ERR(PROTO_E_FRAMING_CL)},
	{"content-length leading zero", 0, {HOST, F("Content-Length", "05")},
	 ERR(PROTO_E_FRAMING_CL)},
	{"content-length double zero", 0, {HOST, F("Content-Length", "00")},
	 ERR(PROTO_E_FRAMING_CL)},
	{"content-length hex", 0, {HOST, F("Content-Length", "0x10")}, ERR(PROTO_E_FRAMING_CL)},
	{"content-length decimal point", 0, {HOST, F("Content-Length", "5.0")},
	 ERR(PROTO_E_FRAMING_CL)},
	{"content-length exponent", 0, {HOST, F("Content-Length", "1e3")}, ERR(PROTO_E_FRAMING_CL)},
	{"content-length inner space", 0, {HOST, F("Content-Length", "5 5")},
	 ERR(PROTO_E_FRAMING_CL)},
	{"content-length max + 1", 0, {HOST, F("Content-Length", "9007199254740992")},
	 ERR(PROTO_E_FRAMING_CL)},
	{"content-length 2^64", 0, {HOST, F("Content-Length", "18446744073709551616")},
	 ERR(PROTO_E_FRAMING_CL)},
	{"content-length 2^64 - 1", 0, {HOST, F("Content-Length", "18446744073709551615")},
	 ERR(PROTO_E_FRAMING_CL)},
	{"content-length wraps to 5", 0, {HOST, F("Content-Length", "18446744073709551621")},
	 ERR(PROTO_E_FRAMING_CL)},
	{"content-length list trailing comma", 0, {HOST, F("Content-Length", "5,")},
	 ERR(PROTO_E_FRAMING_CL)},
	{"content-length list leading comma", 0, {HOST, F("Content-Length", ",5")},
	 ERR(PROTO_E_FRAMING_CL)},
	{"content-length list empty member", 0, {HOST, F("Content-Length", "5,,5")},
	 ERR(PROTO_E_FRAMING_CL)},
	{"content-length comma only", 0, {HOST, F("Content-Length", ",")}, ERR(PROTO_E_FRAMING_CL)},
	{"content-length list bad member", 0, {HOST, F("Content-Length", "5, x")},
	 ERR(PROTO_E_FRAMING_CL)},
	{"content-length list leading zero", 0, {HOST, F("Content-Length", "5, 05")},
	 ERR(PROTO_E_FRAMING_CL)},
	{"content-length list too large", 0, {HOST, F("Content-Length", "5, 9007199254740992")},
	 ERR(PROTO_E_FRAMING_CL)},
	{"content-length full-width digit", 0, {HOST, F("Content-Length", "\xef\xbc\x95")},
	 ERR(PROTO_E_FRAMING_CL)},
	{"content-length with NUL", 0, {HOST, F("Content-Length", "5\0")},
	 ERR(PROTO_E_HEADER_VALUE)},
	{"content-length trailing space", 0, {HOST, F("Content-Length", "5 ")},
	 ERR(PROTO_E_HEADER_VALUE)},
	{"content-length CRLF inside", 0, {HOST, F("Content-Length", "5\r\n\r\nGET / HTTP/1.1")},
	 ERR(PROTO_E_HEADER_VALUE)},

	/* Host */
	{"HTTP/1.1 without host", 0, {F("Content-Length", "5")}, ERR(PROTO_E_FRAMING_HOST)},
	{"HTTP/1.1 without any field", 0, {{0}}, ERR(PROTO_E_FRAMING_HOST)},
	{"two hosts", 0, {HOST, F("Host", "evil.example")}, ERR(PROTO_E_FRAMING_HOST)},
	{"two equal hosts", 0, {HOST, HOST}, ERR(PROTO_E_FRAMING_HOST)},
	{"two hosts differing in case", 0, {F("Host", "a"), F("hOST", "a")},
	 ERR(PROTO_E_FRAMING_HOST)},
	{"HTTP/1.0 two hosts", 1, {HOST, F("host", "b")}, ERR(PROTO_E_FRAMING_HOST)},
	{"host with space before colon", 0, {F("Host ", "a")}, ERR(PROTO_E_HEADER_NAME)},
	{"host value with CR", 0, {F("Host", "a\rb")}, ERR(PROTO_E_HEADER_VALUE)},
	/* RFC 9112 3.2: Host = uri-host [ ":" port ]; any other value answers 400 */
	{"host with port", 0, {F("Host", "print.example.com:8443")}, OK_NONE},
	{"host IPv4 with port", 0, {F("Host", "127.0.0.1:80")}, OK_NONE},
	{"host IPv6", 0, {F("Host", "[2001:db8::7]")}, OK_NONE},
	{"host IPv6 with port", 0, {F("Host", "[::1]:443")}, OK_NONE},
	{"host IPv6 with IPv4 tail", 0, {F("Host", "[::ffff:192.0.2.1]:80")}, OK_NONE},
	{"host IPvFuture", 0, {F("Host", "[v1.fe80::a+en1]")}, OK_NONE},
	{"host sub-delims and pct-encoded", 0, {F("Host", "a-b_c~d!$&'()*+,;=%41.x")}, OK_NONE},
	{"host empty port", 0, {F("Host", "h:")}, OK_NONE},
	{"host space inside", 0, {F("Host", "a b")}, ERR(PROTO_E_FRAMING_HOST)},
	{"host tab inside", 0, {F("Host", "a\tb")}, ERR(PROTO_E_FRAMING_HOST)},
	{"host with path", 0, {F("Host", "evil.example/x")}, ERR(PROTO_E_FRAMING_HOST)},
	{"host with userinfo", 0, {F("Host", "user@evil.example")}, ERR(PROTO_E_FRAMING_HOST)},
	{"host with query", 0, {F("Host", "h?x")}, ERR(PROTO_E_FRAMING_HOST)},
	{"host with fragment", 0, {F("Host", "h#x")}, ERR(PROTO_E_FRAMING_HOST)},
	{"host with backslash", 0, {F("Host", "h\\x")}, ERR(PROTO_E_FRAMING_HOST)},
	{"host quoted", 0, {F("Host", "\"h\"")}, ERR(PROTO_E_FRAMING_HOST)},
	{"host obs-text", 0, {F("Host", "caf\xc3\xa9.example")}, ERR(PROTO_E_FRAMING_HOST)},
	{"host two ports", 0, {F("Host", "h:80:90")}, ERR(PROTO_E_FRAMING_HOST)},
	{"host port not digits", 0, {F("Host", "h:8a")}, ERR(PROTO_E_FRAMING_HOST)},
	{"host pct-encoding cut", 0, {F("Host", "h%4")}, ERR(PROTO_E_FRAMING_HOST)},
	{"host pct-encoding not hex", 0, {F("Host", "h%zz")}, ERR(PROTO_E_FRAMING_HOST)},
	{"host list of two", 0, {F("Host", "a, b")}, ERR(PROTO_E_FRAMING_HOST)},
	{"host IPv6 unclosed", 0, {F("Host", "[::1")}, ERR(PROTO_E_FRAMING_HOST)},
	{"host IPv6 empty", 0, {F("Host", "[]")}, ERR(PROTO_E_FRAMING_HOST)},
	{"host IPv6 malformed", 0, {F("Host", "[1:::2]")}, ERR(PROTO_E_FRAMING_HOST)},
	{"host IPv6 not hex", 0, {F("Host", "[zz::1]")}, ERR(PROTO_E_FRAMING_HOST)},
	{"host IPv6 zone id", 0, {F("Host", "[fe80::1%25eth0]")}, ERR(PROTO_E_FRAMING_HOST)},
	{"host IPv6 junk after", 0, {F("Host", "[::1]x")}, ERR(PROTO_E_FRAMING_HOST)},
	{"host IPv6 bad port", 0, {F("Host", "[::1]:8a")}, ERR(PROTO_E_FRAMING_HOST)},
	{"host IPvFuture without address", 0, {F("Host", "[v1.]")}, ERR(PROTO_E_FRAMING_HOST)},
	{"host bracket inside reg-name", 0, {F("Host", "a[::1]")}, ERR(PROTO_E_FRAMING_HOST)},
	{"HTTP/1.0 malformed host", 1, {F("Host", "a b")}, ERR(PROTO_E_FRAMING_HOST)},

	/* bad names and values anywhere, not only on framing fields */
	{"name with colon", 0, {HOST, F("X:Y", "1")}, ERR(PROTO_E_HEADER_NAME)},
	{"name with NUL", 0, {HOST, F("X\0Y", "1")}, ERR(PROTO_E_HEADER_NAME)},
	{"name with LF", 0, {HOST, F("X\nY", "1")}, ERR(PROTO_E_HEADER_NAME)},
	{"name non-ASCII", 0, {HOST, F("X-Caf\xc3\xa9", "1")}, ERR(PROTO_E_HEADER_NAME)},
	{"name too long", 0,
	 {HOST, F("X-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "1")},
	 ERR(PROTO_E_TOO_LONG)},
	{"name at the limit", 0,
	 {HOST, F("X-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "1")},
	 OK_NONE},
	{"value with CR", 0, {HOST, F("X-A", "a\rb")}, ERR(PROTO_E_HEADER_VALUE)},
	{"value with LF", 0, {HOST, F("X-A", "a\nb")}, ERR(PROTO_E_HEADER_VALUE)},
	{"value with NUL", 0, {HOST, F("X-A", "a\0b")}, ERR(PROTO_E_HEADER_VALUE)},
	{"value with DEL", 0, {HOST, F("X-A", "a\x7f")}, ERR(PROTO_E_HEADER_VALUE)},
	{"value with BEL", 0, {HOST, F("X-A", "\x07")}, ERR(PROTO_E_HEADER_VALUE)},
	{"value with ESC", 0, {HOST, F("X-A", "\x1b[2J")}, ERR(PROTO_E_HEADER_VALUE)},
	{"value with obs-text", 0, {HOST, F("X-A", "\x80\x9f\xa0\xff")}, OK_NONE},
	{"value with inner tab", 0, {HOST, F("X-A", "a\tb")}, OK_NONE},
};

static size_t fields_count(const struct proto_field *f)
{
	size_t n = 0;

	while (n < FIELDS_MAX && f[n].name)
		n++;
	return n;
}

static void framing_expect(const struct framing_case *c, const struct proto_field *fields,
			   size_t n, const char *order)
{
	struct header_framing out, sentinel;
	enum proto_err rc;

	memset(&out, 0x5a, sizeof(out));
	memset(&sentinel, 0x5a, sizeof(sentinel));
	rc = header_framing_check(fields, n, c->http10, &out);
	cr_expect_eq(rc, c->rc, "%s (%s): got %d, want %d", c->what, order, rc, c->rc);
	if (c->rc) {
		cr_expect_eq(memcmp(&out, &sentinel, sizeof(out)), 0, "%s: out written on error",
			     c->what);
		return;
	}
	cr_expect_eq(out.has_length, c->has_length, "%s (%s)", c->what, order);
	cr_expect_eq(out.content_length, c->content_length, "%s (%s)", c->what, order);
	cr_expect_eq(out.chunked, c->chunked, "%s (%s)", c->what, order);
}

Test(header_framing, table)
{
	for (size_t i = 0; i < sizeof(framing_cases) / sizeof(framing_cases[0]); i++) {
		const struct framing_case *c = &framing_cases[i];

		framing_expect(c, c->fields, fields_count(c->fields), "as written");
	}
}

/* Each table case has at most one bad field, so the answer must not depend on field order. */
Test(header_framing, order_does_not_matter)
{
	for (size_t i = 0; i < sizeof(framing_cases) / sizeof(framing_cases[0]); i++) {
		const struct framing_case *c = &framing_cases[i];
		struct proto_field rev[FIELDS_MAX];
		size_t n = fields_count(c->fields);

		for (size_t j = 0; j < n; j++)
			rev[j] = c->fields[n - 1 - j];
		framing_expect(c, rev, n, "reversed");
	}
}

/* Several problems at once: the documented precedence decides. */
static const struct framing_case precedence_cases[] = {
	{"bad value before bad name", 0, {F("X-A", "\r"), F("X B", "1")},
	 ERR(PROTO_E_HEADER_VALUE)},
	{"bad name before bad value", 0, {F("X B", "1"), F("X-A", "\r")}, ERR(PROTO_E_HEADER_NAME)},
	{"bad name and bad value in one field", 0, {F("X B", "\r")}, ERR(PROTO_E_HEADER_NAME)},
	{"syntax before CL+TE", 0,
	 {F("Content-Length", "5"), F("Transfer-Encoding", "chunked"), F("X", "\n")},
	 ERR(PROTO_E_HEADER_VALUE)},
	{"HTTP/1.0 TE before CL+TE and dup TE", 1,
	 {F("Transfer-Encoding", "x"), F("Content-Length", "5"), F("Transfer-Encoding", "y")},
	 ERR(PROTO_E_FRAMING_TE_HTTP10)},
	{"CL+TE before dup TE and dup CL", 0,
	 {HOST, F("Transfer-Encoding", "chunked"), F("Transfer-Encoding", "chunked"),
	  F("Content-Length", "1"), F("Content-Length", "2")},
	 ERR(PROTO_E_FRAMING_CL_TE)},
	{"dup TE before bad TE", 0,
	 {HOST, F("Transfer-Encoding", "identity"), F("Transfer-Encoding", "gzip")},
	 ERR(PROTO_E_FRAMING_DUP_TE)},
	{"dup CL before bad CL", 0, {HOST, F("Content-Length", "x"), F("Content-Length", "y")},
	 ERR(PROTO_E_FRAMING_DUP_CL)},
	{"bad TE before missing host", 0, {F("Transfer-Encoding", "identity")},
	 ERR(PROTO_E_FRAMING_TE)},
	{"bad CL before missing host", 0, {F("Content-Length", "-1")}, ERR(PROTO_E_FRAMING_CL)},
	{"dup CL before two hosts", 0,
	 {HOST, HOST, F("Content-Length", "1"), F("Content-Length", "1")},
	 ERR(PROTO_E_FRAMING_DUP_CL)},
	{"bad CL before malformed host", 0, {F("Host", "a b"), F("Content-Length", "x")},
	 ERR(PROTO_E_FRAMING_CL)},
};

Test(header_framing, precedence)
{
	for (size_t i = 0; i < sizeof(precedence_cases) / sizeof(precedence_cases[0]); i++) {
		const struct framing_case *c = &precedence_cases[i];

		framing_expect(c, c->fields, fields_count(c->fields), "as written");
	}
}

/* Fills n fields: a Host, then distinct harmless names. */
static struct proto_field *many_fields(size_t n, char (*names)[16])
{
	struct proto_field *f = calloc(n, sizeof(*f));

	cr_assert_not_null(f);
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "X-F%zu", i);
		f[i].name = i == 0 ? "Host" : names[i];
		f[i].name_len = strlen(f[i].name);
		f[i].value = "v";
		f[i].value_len = 1;
	}
	return f;
}

Test(header_framing, count_limit)
{
	char(*names)[16] = calloc(HEADER_COUNT_MAX + 2, sizeof(*names));
	struct proto_field *f;
	struct header_framing out;

	cr_assert_not_null(names);
	f = many_fields(HEADER_COUNT_MAX + 1, names);
	cr_expect_eq(header_framing_check(f, HEADER_COUNT_MAX, 0, &out), PROTO_OK);
	cr_expect_eq(header_framing_check(f, HEADER_COUNT_MAX + 1, 0, &out),
		     PROTO_E_HEADER_COUNT);
	/* the count is checked before any field is looked at */
	f[HEADER_COUNT_MAX].name = "bad name";
	f[HEADER_COUNT_MAX].name_len = 8;
	cr_expect_eq(header_framing_check(f, HEADER_COUNT_MAX + 1, 0, &out),
		     PROTO_E_HEADER_COUNT);
	cr_expect_eq(header_framing_check(f, SIZE_MAX, 0, &out), PROTO_E_HEADER_COUNT);
	free(f);
	free(names);
}

Test(header_framing, long_values)
{
	char *v = malloc(HEADER_VALUE_MAX + 1);
	struct proto_field f[2] = {HOST, {"X-Long", 6, NULL, 0}};
	struct header_framing out;

	cr_assert_not_null(v);
	memset(v, 'v', HEADER_VALUE_MAX + 1);
	f[1].value = v;
	f[1].value_len = HEADER_VALUE_MAX;
	cr_expect_eq(header_framing_check(f, 2, 0, &out), PROTO_OK);
	f[1].value_len = HEADER_VALUE_MAX + 1;
	cr_expect_eq(header_framing_check(f, 2, 0, &out), PROTO_E_TOO_LONG);
	/* a long run of digits is a malformed length, not an overflow into something small */
	memset(v, '9', HEADER_VALUE_MAX);
	f[1].name = "Content-Length";
	f[1].name_len = 14;
	f[1].value_len = HEADER_VALUE_MAX;
	cr_expect_eq(header_framing_check(f, 2, 0, &out), PROTO_E_FRAMING_CL);
	free(v);
}

Test(header_framing, null_fields_when_empty)
{
	struct header_framing out = {1, 99, 1};

	cr_expect_eq(header_framing_check(NULL, 0, 1, &out), PROTO_OK);
	cr_expect_eq(out.has_length, 0);
	cr_expect_eq(out.content_length, 0);
	cr_expect_eq(out.chunked, 0);
	cr_expect_eq(header_framing_check(NULL, 0, 0, &out), PROTO_E_FRAMING_HOST);
}

/* A protocol header given twice is refused; other fields may repeat. */
Test(header_repeat_check, protocol_fields_at_most_once)
{
	static const struct {
		struct proto_field f[3];
		size_t n;
		enum proto_err rc;
	} cases[] = {
		{{{"Upload-Offset", 13, "0", 1}, {"upload-offset", 13, "5", 1}}, 2, PROTO_E_HEADER_REPEATED},
		{{{"Authorization", 13, "Bearer a", 8}, {"AUTHORIZATION", 13, "Bearer b", 8}}, 2, PROTO_E_HEADER_REPEATED},
		{{{"Fs-Owner", 8, "YQ", 2}, {"Accept", 6, "*/*", 3}, {"fs-owner", 8, "Yg", 2}}, 3, PROTO_E_HEADER_REPEATED},
		{{{"Repr-Digest", 11, "x", 1}, {"Repr-Digest", 11, "x", 1}}, 2, PROTO_E_HEADER_REPEATED},
		{{{"Accept", 6, "a", 1}, {"Accept", 6, "b", 1}}, 2, PROTO_OK},
		{{{"Upload-Offset", 13, "0", 1}, {"Upload-Length", 13, "5", 1}}, 2, PROTO_OK},
		{{{"Upload-Offset-X", 15, "0", 1}, {"Upload-Offset", 13, "5", 1}}, 2, PROTO_OK},
		{{{0}}, 0, PROTO_OK},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_expect_eq(header_repeat_check(cases[i].f, cases[i].n), cases[i].rc, "case %zu", i);
}
