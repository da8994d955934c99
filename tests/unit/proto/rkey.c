/* Tests proto/rkey.c: key builders and their input checks, then the schema on a real Redis. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "proto/announce.h"
#include "proto/jobid.h"
#include "proto/rkey.h"
#include "tests/lib/redis_server.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

#define OH "0123456789abcdef0123456789abcdef"
#define UUID "123e4567-e89b-12d3-a456-426614174000"
#define JID "AAECAwQFBgcICQoLDA0ODw" /* bytes 0..15 */

/* ---- builders ---- */

enum builder { SERVER, DOWN, JOB, SEQ, HELD, IDEM, ADDR, OWNER };

struct key_case {
	enum builder b;
	const char *in;
	const char *in2; /* IDEM's client job id */
	enum proto_err rc;
	const char *key; /* when rc == PROTO_OK */
};

static enum proto_err build(enum builder b, const char *in, const char *in2, char *buf,
			    size_t cap)
{
	switch (b) {
	case SERVER: return rkey_server(in, buf, cap);
	case DOWN: return rkey_down(in, buf, cap);
	case JOB: return rkey_job(in, buf, cap);
	case SEQ: return rkey_seq(in, buf, cap);
	case HELD: return rkey_held(in, buf, cap);
	case IDEM: return rkey_idem(in, in2, buf, cap);
	case ADDR: return rkey_authfail_addr(in, buf, cap);
	case OWNER: return rkey_authfail_owner(in, buf, cap);
	}
	return PROTO_E_BUFFER;
}

#define K(b, in, key) {b, in, NULL, PROTO_OK, key}
#define X(b, in, rc) {b, in, NULL, rc, NULL}

static const struct key_case keys[] = {
	K(SERVER, "dc1-print-01", "fsg:server:dc1-print-01"),
	K(SERVER, "abcdefghijklmnopqrstuvwxyz012345",
	  "fsg:server:abcdefghijklmnopqrstuvwxyz012345"),
	K(DOWN, "a", "fsg:down:a"),
	K(JOB, JID, "fsg:job:" JID),
	K(JOB, "AAAAAAAAAAAAAAAAAAAAAA", "fsg:job:AAAAAAAAAAAAAAAAAAAAAA"),
	K(JOB, "_____________________w", "fsg:job:_____________________w"),
	K(SEQ, OH, "fsg:seq:" OH),
	K(HELD, OH, "fsg:held:" OH),
	{IDEM, OH, UUID, PROTO_OK, "fsg:idem:" OH ":" UUID},
	K(OWNER, OH, "fsg:authfail:owner:" OH),
	K(ADDR, "127.0.0.1", "fsg:authfail:addr:127.0.0.1"),
	K(ADDR, "0.0.0.0", "fsg:authfail:addr:0.0.0.0"),
	K(ADDR, "255.255.255.255", "fsg:authfail:addr:255.255.255.255"),
	K(ADDR, "::1", "fsg:authfail:addr:::1"),
	K(ADDR, "::", "fsg:authfail:addr:::"),
	K(ADDR, "2001:db8::1", "fsg:authfail:addr:2001:db8::1"),
	K(ADDR, "fe80::1:2:3:4", "fsg:authfail:addr:fe80::1:2:3:4"),
	K(ADDR, "1:2:3:4:5:6:7:8", "fsg:authfail:addr:1:2:3:4:5:6:7:8"),
	K(ADDR, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	  "fsg:authfail:addr:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),

	/* server ids */
	X(SERVER, "", PROTO_E_EMPTY),
	X(SERVER, NULL, PROTO_E_EMPTY),
	X(SERVER, "abcdefghijklmnopqrstuvwxyz0123456", PROTO_E_TOO_LONG),
	X(SERVER, "Dc1", PROTO_E_SERVER_ID),
	X(SERVER, "a:b", PROTO_E_SERVER_ID),
	X(SERVER, "a*", PROTO_E_SERVER_ID),
	X(SERVER, "a{b}", PROTO_E_SERVER_ID),
	X(DOWN, "-a", PROTO_E_SERVER_ID),
	X(DOWN, "a b", PROTO_E_SERVER_ID),
	/* server job ids */
	X(JOB, "", PROTO_E_JOB_ID),
	X(JOB, NULL, PROTO_E_JOB_ID),
	X(JOB, "AAECAwQFBgcICQoLDA0OD", PROTO_E_JOB_ID),
	X(JOB, "AAECAwQFBgcICQoLDA0ODwA", PROTO_E_JOB_ID),
	X(JOB, "AAECAwQFBgcICQoLDA0ODx", PROTO_E_JOB_ID), /* non-zero unused bits */
	X(JOB, "AAECAwQFBgcICQoLDA0OD+", PROTO_E_JOB_ID),
	X(JOB, "AAECAwQFBgcICQoLDA0O:*", PROTO_E_JOB_ID),
	X(JOB, "AAECAwQFBgcICQoLDA0OD=", PROTO_E_JOB_ID),
	/* owner hashes */
	X(SEQ, "", PROTO_E_EMPTY),
	X(SEQ, NULL, PROTO_E_EMPTY),
	X(SEQ, "0123456789abcdef0123456789abcde", PROTO_E_OWNER),
	X(SEQ, "0123456789abcdef0123456789abcdef0", PROTO_E_OWNER),
	X(SEQ, "0123456789ABCDEF0123456789ABCDEF", PROTO_E_OWNER),
	X(HELD, "0123456789abcdef0123456789abcdeg", PROTO_E_OWNER),
	X(HELD, "0123456789abcdef0123456789abcde ", PROTO_E_OWNER),
	X(OWNER, "0123456789abcdef0123456789abcde:", PROTO_E_OWNER),
	X(OWNER, "*", PROTO_E_OWNER),
	{IDEM, "0123456789abcdef0123456789abcdeF", UUID, PROTO_E_OWNER, NULL},
	/* client job ids: only the canonical lowercase form */
	{IDEM, OH, "123E4567-E89B-12D3-A456-426614174000", PROTO_E_UUID, NULL},
	{IDEM, OH, "123e4567-e89b-12d3-a456-42661417400A", PROTO_E_UUID, NULL},
	{IDEM, OH, "123e4567e89b12d3a456426614174000", PROTO_E_UUID, NULL},
	{IDEM, OH, "{123e4567-e89b-12d3-a456-426614174000}", PROTO_E_UUID, NULL},
	{IDEM, OH, "123e4567-e89b-12d3-a456-426614174000 ", PROTO_E_UUID, NULL},
	{IDEM, OH, "00000000-0000-0000-0000-000000000000", PROTO_E_UUID, NULL},
	{IDEM, OH, "", PROTO_E_EMPTY, NULL},
	{IDEM, OH, NULL, PROTO_E_EMPTY, NULL},
	/* addresses: one spelling per address */
	X(ADDR, "", PROTO_E_EMPTY),
	X(ADDR, NULL, PROTO_E_EMPTY),
	X(ADDR, "127.1", PROTO_E_ADDRESS),
	X(ADDR, "127.0.0.01", PROTO_E_ADDRESS),
	X(ADDR, "0x7f.0.0.1", PROTO_E_ADDRESS),
	X(ADDR, "2130706433", PROTO_E_ADDRESS),
	X(ADDR, "256.0.0.1", PROTO_E_ADDRESS),
	X(ADDR, " 127.0.0.1", PROTO_E_ADDRESS),
	X(ADDR, "127.0.0.1 ", PROTO_E_ADDRESS),
	X(ADDR, "127.0.0.1:80", PROTO_E_ADDRESS),
	X(ADDR, "0::1", PROTO_E_ADDRESS),
	X(ADDR, "::0:1", PROTO_E_ADDRESS),
	X(ADDR, "0:0:0:0:0:0:0:1", PROTO_E_ADDRESS),
	X(ADDR, "2001:DB8::1", PROTO_E_ADDRESS),
	X(ADDR, "2001:0db8::1", PROTO_E_ADDRESS),
	X(ADDR, "2001:db8:0:0:1:0:0:1", PROTO_E_ADDRESS), /* canonical: 2001:db8::1:0:0:1 */
	X(ADDR, "::ffff:127.0.0.1", PROTO_E_ADDRESS),
	X(ADDR, "::ffff:7f00:1", PROTO_E_ADDRESS),
	X(ADDR, "[::1]", PROTO_E_ADDRESS),
	X(ADDR, "fe80::1%eth0", PROTO_E_ADDRESS),
	X(ADDR, "localhost", PROTO_E_ADDRESS),
	X(ADDR, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", PROTO_E_ADDRESS),
	X(ADDR, "0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000", PROTO_E_TOO_LONG),
};

Test(rkey, builders_table)
{
	for (size_t i = 0; i < COUNT(keys); i++) {
		const struct key_case *c = &keys[i];
		char buf[RKEY_MAX + 1];
		enum proto_err rc;

		memset(buf, '#', sizeof(buf));
		rc = build(c->b, c->in, c->in2, buf, sizeof(buf));
		cr_expect_eq(rc, c->rc, "case %zu \"%s\": got %d (%s)", i, c->in ? c->in : "(null)",
			     rc, proto_strerror(rc));
		if (c->rc != PROTO_OK || rc != PROTO_OK) {
			cr_expect_eq(buf[0], '#', "case %zu: buf untouched", i);
			continue;
		}
		cr_expect_str_eq(buf, c->key, "case %zu", i);
		cr_expect_eq(strncmp(buf, RKEY_PREFIX, strlen(RKEY_PREFIX)), 0);
		cr_expect_leq(strlen(buf), RKEY_MAX);
	}
}

Test(rkey, buffer_exact_fit)
{
	for (size_t i = 0; i < COUNT(keys); i++) {
		const struct key_case *c = &keys[i];
		size_t need;
		char buf[RKEY_MAX + 1];

		if (c->rc != PROTO_OK)
			continue;
		need = strlen(c->key) + 1;
		memset(buf, '#', sizeof(buf));
		cr_expect_eq(build(c->b, c->in, c->in2, buf, need - 1), PROTO_E_BUFFER, "%s",
			     c->key);
		cr_expect_eq(buf[0], '#', "%s: untouched", c->key);
		cr_expect_eq(build(c->b, c->in, c->in2, buf, 0), PROTO_E_BUFFER, "%s", c->key);
		cr_expect_eq(build(c->b, c->in, c->in2, NULL, 0), PROTO_E_BUFFER, "%s", c->key);
		cr_expect_eq(build(c->b, c->in, c->in2, buf, need), PROTO_OK, "%s", c->key);
		cr_expect_str_eq(buf, c->key);
		cr_expect_eq(buf[need], '#', "%s: nothing written past the NUL", c->key);
	}
}

Test(rkey, generated_ids_make_keys)
{
	for (int i = 0; i < 64; i++) {
		char jid[JOBID_LEN + 1], uuid[UUID_LEN + 1], buf[RKEY_MAX + 1];

		cr_assert_eq(jobid_generate(jid), PROTO_OK);
		cr_assert_eq(jobid_client_generate(uuid), PROTO_OK);
		cr_expect_eq(rkey_job(jid, buf, sizeof(buf)), PROTO_OK, "%s", jid);
		cr_expect_eq(rkey_idem(OH, uuid, buf, sizeof(buf)), PROTO_OK, "%s", uuid);
	}
}

Test(rkey, long_input_is_not_scanned_to_the_end)
{
	/* a very long C string is refused after RKEY_MAX + 1 bytes; ASan checks the bound */
	size_t n = 1 << 20;
	char *big = malloc(n + 1), buf[RKEY_MAX + 1];

	cr_assert_not_null(big);
	memset(big, 'a', n);
	big[n] = '\0';
	cr_expect_eq(rkey_server(big, buf, sizeof(buf)), PROTO_E_TOO_LONG);
	cr_expect_eq(rkey_seq(big, buf, sizeof(buf)), PROTO_E_OWNER);
	cr_expect_eq(rkey_job(big, buf, sizeof(buf)), PROTO_E_JOB_ID);
	cr_expect_eq(rkey_idem(OH, big, buf, sizeof(buf)), PROTO_E_UUID);
	cr_expect_eq(rkey_authfail_addr(big, buf, sizeof(buf)), PROTO_E_TOO_LONG);
	free(big);
}

/* ---- the schema on a real redis-server ---- */

static struct redis_server *server;
static redisContext *conn;

static void redis_up(void)
{
	struct timeval tv = {5, 0};

	server = redis_server_start();
	cr_assert_not_null(server, "redis-server did not start");
	conn = redisConnectWithTimeout("127.0.0.1", redis_server_port(server), tv);
	cr_assert(conn && !conn->err, "connect: %s", conn ? conn->errstr : "no memory");
	cr_assert_eq(redisSetTimeout(conn, tv), REDIS_OK);
}

static void redis_down(void)
{
	redisFree(conn);
	conn = NULL;
	cr_expect_eq(redis_server_stop(server), 0, "redis-server should exit cleanly");
	server = NULL;
}

/* EVAL RKEY_SEQ_NEXT_LUA 1 key clock; the reply is the caller's to free. */
static redisReply *seq_next(const char *key, const char *clock)
{
	const char *argv[] = {"EVAL", RKEY_SEQ_NEXT_LUA, "1", key, clock};
	redisReply *r = redisCommandArgv(conn, 5, argv, NULL);

	cr_assert_not_null(r, "EVAL: %s", conn->errstr);
	return r;
}

static long long seq_ok(const char *key, const char *clock)
{
	redisReply *r = seq_next(key, clock);
	long long v;

	cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "clock \"%s\": type %d %s", clock, r->type,
		     r->type == REDIS_REPLY_ERROR ? r->str : "");
	v = r->integer;
	freeReplyObject(r);
	return v;
}

static void seq_error(const char *key, const char *clock, const char *msg)
{
	redisReply *r = seq_next(key, clock);

	cr_expect_eq(r->type, REDIS_REPLY_ERROR, "clock \"%s\" should fail", clock);
	if (r->type == REDIS_REPLY_ERROR)
		cr_expect_not_null(strstr(r->str, msg), "clock \"%s\": %s", clock, r->str);
	freeReplyObject(r);
}

static void expect_stored(const char *key, const char *want)
{
	redisReply *r = redisCommand(conn, "GET %s", key);

	cr_assert_not_null(r);
	cr_assert_eq(r->type, REDIS_REPLY_STRING, "GET %s", key);
	cr_expect_str_eq(r->str, want, "GET %s", key);
	freeReplyObject(r);
}

static void command_ok(const char *fmt, ...)
{
	redisReply *r;
	va_list ap;

	va_start(ap, fmt);
	r = redisvCommand(conn, fmt, ap);
	va_end(ap);

	cr_assert_not_null(r);
	cr_assert_neq(r->type, REDIS_REPLY_ERROR, "%s", r->str);
	freeReplyObject(r);
}

Test(rkey_redis, seq_is_strictly_increasing, .init = redis_up, .fini = redis_down)
{
	char key[RKEY_MAX + 1];

	cr_assert_eq(rkey_seq(OH, key, sizeof(key)), PROTO_OK);
	/* a fresh key follows the clock, which is never below 1 */
	cr_expect_eq(seq_ok(key, "0"), 1);
	cr_expect_eq(seq_ok(key, "1732492800000000"), 1732492800000000LL);
	cr_expect_eq(seq_ok(key, "1732492800000005"), 1732492800000005LL);
	expect_stored(key, "1732492800000005");
	/* a gateway whose clock is behind (or equal) still moves the sequence forward */
	cr_expect_eq(seq_ok(key, "1732492800000005"), 1732492800000006LL);
	cr_expect_eq(seq_ok(key, "1732492700000000"), 1732492800000007LL);
	cr_expect_eq(seq_ok(key, "0"), 1732492800000008LL);
	expect_stored(key, "1732492800000008");
	/* and a gateway ahead pulls it forward */
	cr_expect_eq(seq_ok(key, "1732492900000000"), 1732492900000000LL);
	expect_stored(key, "1732492900000000");
}

Test(rkey_redis, seq_refuses_bad_clocks, .init = redis_up, .fini = redis_down)
{
	static const char *const bad[] = {
		"", "-1", "abc", "nan", "NaN", "inf", "-inf", " 5", "5 ", "+5", "0x10", "1e3",
		"5.5", "01", "9007199254740992", "99999999999999999999", "1\n",
	};
	char key[RKEY_MAX + 1];

	cr_assert_eq(rkey_seq(OH, key, sizeof(key)), PROTO_OK);
	cr_expect_eq(seq_ok(key, "1000"), 1000);
	for (size_t i = 0; i < COUNT(bad); i++)
		seq_error(key, bad[i], "bad clock");
	/* nothing stored by the failures */
	expect_stored(key, "1000");
	cr_expect_eq(seq_ok(key, "9007199254740991"), 9007199254740991LL);
	expect_stored(key, "9007199254740991");
	/* past 2^53 - 1 doubles stop counting by one: exhausted, not repeated */
	seq_error(key, "1", "bad sequence");
	expect_stored(key, "9007199254740991");
}

Test(rkey_redis, seq_refuses_a_corrupt_stored_value, .init = redis_up, .fini = redis_down)
{
	static const char *const corrupt[] = {"abc", "nan", "-5", "1.5", "0x10", ""};
	char key[RKEY_MAX + 1];

	cr_assert_eq(rkey_seq(OH, key, sizeof(key)), PROTO_OK);
	for (size_t i = 0; i < COUNT(corrupt); i++) {
		command_ok("SET %s %s", key, corrupt[i]);
		seq_error(key, "1000", "bad sequence");
	}
}

Test(rkey_redis, seq_by_evalsha, .init = redis_up, .fini = redis_down)
{
	const char *load[] = {"SCRIPT", "LOAD", RKEY_SEQ_NEXT_LUA};
	char key[RKEY_MAX + 1], sha[41];
	redisReply *r;

	cr_assert_eq(rkey_seq(OH, key, sizeof(key)), PROTO_OK);
	r = redisCommandArgv(conn, 3, load, NULL);
	cr_assert_not_null(r);
	cr_assert_eq(r->type, REDIS_REPLY_STRING, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "");
	cr_assert_eq(r->len, 40);
	memcpy(sha, r->str, 41);
	freeReplyObject(r);
	for (long long want = 5; want < 10; want++) {
		r = redisCommand(conn, "EVALSHA %s 1 %s 5", sha, key);
		cr_assert_not_null(r);
		cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
		cr_expect_eq(r->integer, want);
		freeReplyObject(r);
	}
}

static struct announce sample(void)
{
	struct announce a;

	memset(&a, 0, sizeof(a));
	strcpy(a.id, "dc1-print-01");
	strcpy(a.url, "https://[2001:db8::7]:8443/fsg");
	a.capacity = ANNOUNCE_CAPACITY_MAX;
	a.active = 1000001; /* above capacity: allowed */
	a.free_bytes = UINT64_MAX;
	a.draining = 1;
	a.heartbeat_ms = 9007199254740991ULL;
	return a;
}

/* HSET key f1 v1 ... from announce_fields, in argv form so values are never reparsed. */
static void hset_announce(const char *key, const struct announce *a)
{
	struct announce_text text;
	struct proto_field f[ANNOUNCE_FIELDS];
	const char *argv[2 + 2 * ANNOUNCE_FIELDS];
	size_t lens[2 + 2 * ANNOUNCE_FIELDS];
	redisReply *r;

	cr_assert_eq(announce_fields(a, &text, f), PROTO_OK);
	argv[0] = "HSET";
	lens[0] = 4;
	argv[1] = key;
	lens[1] = strlen(key);
	for (size_t i = 0; i < ANNOUNCE_FIELDS; i++) {
		argv[2 + 2 * i] = f[i].name;
		lens[2 + 2 * i] = f[i].name_len;
		argv[3 + 2 * i] = f[i].value;
		lens[3 + 2 * i] = f[i].value_len;
	}
	r = redisCommandArgv(conn, 2 + 2 * ANNOUNCE_FIELDS, argv, lens);
	cr_assert_not_null(r);
	cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "%s",
		     r->type == REDIS_REPLY_ERROR ? r->str : "");
	freeReplyObject(r);
}

/* HGETALL key, then announce_parse over the pairs; returns its code. */
static enum proto_err hgetall_announce(const char *key, struct announce *out)
{
	struct proto_field f[64];
	redisReply *r = redisCommand(conn, "HGETALL %s", key);
	enum proto_err rc;
	size_t n = 0;

	cr_assert_not_null(r);
	cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
	cr_assert_eq(r->elements % 2, 0);
	cr_assert_leq(r->elements / 2, COUNT(f));
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		f[n].name = r->element[i]->str;
		f[n].name_len = r->element[i]->len;
		f[n].value = r->element[i + 1]->str;
		f[n].value_len = r->element[i + 1]->len;
		n++;
	}
	rc = announce_parse(f, n, out);
	freeReplyObject(r);
	return rc;
}

static void expect_same(const struct announce *a, const struct announce *b)
{
	cr_expect_str_eq(a->id, b->id);
	cr_expect_str_eq(a->url, b->url);
	cr_expect_eq(a->capacity, b->capacity);
	cr_expect_eq(a->active, b->active);
	cr_expect_eq(a->free_bytes, b->free_bytes);
	cr_expect_eq(a->draining, b->draining);
	cr_expect_eq(a->heartbeat_ms, b->heartbeat_ms);
}

Test(rkey_redis, announce_round_trip_through_hash, .init = redis_up, .fini = redis_down)
{
	struct announce a = sample(), b;
	char key[RKEY_MAX + 1];

	cr_assert_eq(rkey_server(a.id, key, sizeof(key)), PROTO_OK);
	hset_announce(key, &a);
	memset(&b, 0x5a, sizeof(b));
	cr_assert_eq(hgetall_announce(key, &b), PROTO_OK);
	expect_same(&a, &b);

	/* a newer server's extra field is ignored */
	command_ok("HSET %s zone %s", key, "eu-west");
	cr_assert_eq(hgetall_announce(key, &b), PROTO_OK);
	expect_same(&a, &b);

	/* a heartbeat update rewrites the numbers in place */
	a.active = 0;
	a.draining = 0;
	a.free_bytes = 0;
	a.heartbeat_ms = 1732492800123ULL;
	hset_announce(key, &a);
	cr_assert_eq(hgetall_announce(key, &b), PROTO_OK);
	expect_same(&a, &b);

	/* what another writer may have left behind is refused precisely */
	command_ok("HSET %s capacity %s", key, "0");
	cr_expect_eq(hgetall_announce(key, &b), PROTO_E_ANNOUNCE_VALUE);
	command_ok("HSET %s capacity %s", key, "10");
	command_ok("HSET %s url %s", key, "http://127.1:80");
	cr_expect_eq(hgetall_announce(key, &b), PROTO_E_ANNOUNCE_URL);
	command_ok("HDEL %s %s", key, "url");
	cr_expect_eq(hgetall_announce(key, &b), PROTO_E_ANNOUNCE_MISSING);
	command_ok("DEL %s", key);
	cr_expect_eq(hgetall_announce(key, &b), PROTO_E_ANNOUNCE_MISSING);
}
