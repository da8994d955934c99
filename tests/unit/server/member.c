/* Tests the server's pool membership (server/member.c) against a real redis-server. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "common/clock.h"
#include "common/log.h"
#include "proto/announce.h"
#include "proto/jobid.h"
#include "proto/meta.h"
#include "proto/owner.h"
#include "proto/rkey.h"
#include "server/member.h"
#include "server/spool.h"
#include "tests/lib/proc.h"
#include "tests/lib/redis_server.h"

#define SERVER_ID "srv-1"
#define SERVER_URL "http://127.0.0.1:8443"
#define INTERVAL_MS 100
#define WAIT_MS 5000 /* bound on every wait */

static struct redis_server *redis;
static char *dir;
static struct spool *spool;
static int log_fd = -1;
static char log_path[4096];
/* a redis-server a test started itself (on a chosen port), stopped in teardown */
static pid_t own_redis = -1;
static char *own_dir;
static const char *client_password;
/* a replica and a sentinel some tests start, stopped in teardown */
static struct redis_server *replica, *sentinel;

/* Polls cond every 10 ms until it holds or ms pass; ok is its last value. */
#define WAIT_FOR(ok, cond, ms)                                                                 \
	do {                                                                                   \
		int64_t end_ = clock_mono_ms() + (ms);                                               \
		while (!((ok) = (cond)) && clock_mono_ms() < end_)                                   \
			clock_sleep_ms(10);                                                          \
	} while (0)

/* One command on a fresh connection (so it works across Redis restarts); NULL if down. */
static redisReply *cmd(int port, const char *fmt, ...)
{
	struct timeval tv = {1, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	redisReply *r = NULL;
	va_list ap;

	if (!c || c->err || redisSetTimeout(c, tv) != REDIS_OK)
		goto out;
	if (client_password) {
		r = redisCommand(c, "AUTH %s", client_password);
		freeReplyObject(r);
		r = NULL;
	}
	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
out:
	redisFree(c);
	return r;
}

static long long cmd_int(int port, const char *fmt, const char *a, const char *b)
{
	redisReply *r = cmd(port, fmt, a, b);
	long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;

	freeReplyObject(r);
	return v;
}

/* Reads fsg:server:{id} and parses it as a gateway would. */
static enum proto_err announce_read(int port, struct announce *out)
{
	struct proto_field f[32];
	enum proto_err rc = PROTO_E_ANNOUNCE_MISSING;
	redisReply *r = cmd(port, "HGETALL fsg:server:%s", SERVER_ID);

	if (r && r->type == REDIS_REPLY_ARRAY && r->elements / 2 <= 32 && r->elements > 0) {
		for (size_t i = 0; i + 1 < r->elements; i += 2) {
			f[i / 2].name = r->element[i]->str;
			f[i / 2].name_len = r->element[i]->len;
			f[i / 2].value = r->element[i + 1]->str;
			f[i / 2].value_len = r->element[i + 1]->len;
		}
		cr_assert_eq(r->elements, 2 * ANNOUNCE_FIELDS, "exactly the eight fields");
		rc = announce_parse(f, r->elements / 2, out);
	}
	freeReplyObject(r);
	return rc;
}

static int registered(int port)
{
	struct announce a;

	return announce_read(port, &a) == PROTO_OK;
}

/* The score of "srv-1.<job-id>" in fsg:held:{owner-hash}, or -1 when absent. */
static double held_score(int port, const char *owner, const char *job_id)
{
	char oh[OWNER_HASH_LEN + 1], key[RKEY_MAX + 1];
	redisReply *r;
	double v = -1;

	cr_assert_eq(owner_hash(owner, strlen(owner), oh, sizeof(oh)), PROTO_OK);
	cr_assert_eq(rkey_held(oh, key, sizeof(key)), PROTO_OK);
	r = cmd(port, "ZSCORE %s %s.%s", key, SERVER_ID, job_id);
	if (r && r->type == REDIS_REPLY_STRING)
		v = strtod(r->str, NULL);
	freeReplyObject(r);
	return v;
}

/* Commits a job of owner with the given bytes; returns its description. */
static struct spool_job commit(const char *owner, uint64_t seq, const char *data)
{
	struct spool_job job;
	struct spool_write *w;
	struct job_meta meta;
	char uuid[UUID_LEN + 1];
	int existed = 1;

	cr_assert_eq(jobid_client_generate(uuid), PROTO_OK);
	meta_init(&meta, uuid);
	cr_assert_eq(spool_create(spool, owner, &meta, strlen(data), NULL, seq, &job, &existed),
		     SPOOL_OK);
	cr_assert_eq(existed, 0);
	cr_assert_eq(spool_write_begin(spool, owner, job.id, 0, NULL, &w, NULL), SPOOL_OK);
	cr_assert_eq(spool_write(w, data, strlen(data)), SPOOL_OK);
	cr_assert_eq(spool_write_end(w, &job), SPOOL_OK);
	cr_assert_eq(job.state, SPOOL_COMMITTED);
	return job;
}

static struct member_config config(int port)
{
	struct member_config cfg = {
		.redis_host = "127.0.0.1",
		.redis_port = port,
		.redis_timeout_ms = 200,
		.server_id = SERVER_ID,
		.url = SERVER_URL,
		.capacity = 8,
		.interval_ms = INTERVAL_MS,
	};

	return cfg;
}

/* Starts redis-server on port (with requirepass when pass is set) and waits for it. */
static pid_t redis_on(int port, const char *pass)
{
	char p[16], log[4096];
	char *argv[] = {"redis-server", "--port", p, "--bind", "127.0.0.1", "--dir", NULL,
			"--save", "", "--appendonly", "no", "--daemonize", "no",
			pass ? "--requirepass" : NULL, (char *)pass, NULL};
	pid_t pid;
	int up = 0;

	if (!own_dir)
		own_dir = proc_tempdir("member-redis");
	cr_assert_not_null(own_dir);
	argv[6] = own_dir;
	snprintf(p, sizeof(p), "%d", port);
	snprintf(log, sizeof(log), "%s/redis.log", own_dir);
	pid = proc_start(argv, log);
	cr_assert_gt(pid, 0);
	for (int64_t end = clock_mono_ms() + WAIT_MS; !up && clock_mono_ms() < end;) {
		redisReply *r = cmd(port, "PING");

		up = r != NULL; /* PONG, or NOAUTH: it answers */
		freeReplyObject(r);
		if (!up)
			clock_sleep_ms(20);
	}
	cr_assert(up, "redis-server on port %d did not come up", port);
	return pid;
}

/* Lines of the log that name event. */
static int log_count(const char *event)
{
	char needle[128], line[8192];
	FILE *f = fopen(log_path, "r");
	int n = 0;

	cr_assert_not_null(f);
	snprintf(needle, sizeof(needle), "\"event\":\"%s\"", event);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

static int log_contains(const char *s)
{
	char line[8192];
	FILE *f = fopen(log_path, "r");
	int found = 0;

	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		found |= strstr(line, s) != NULL;
	fclose(f);
	return found;
}

static void setup(void)
{
	struct spool_config sc = {
		.upload_expiry_ms = 24LL * 3600 * 1000,
		.retention_ms = 7LL * 24 * 3600 * 1000,
	};
	enum spool_err err = SPOOL_OK;
	char path[4096];

	dir = proc_tempdir("member");
	cr_assert_not_null(dir);
	snprintf(log_path, sizeof(log_path), "%s/log", dir);
	log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	cr_assert_neq(log_fd, -1);
	log_init(LOG_DEBUG, log_fd);
	snprintf(path, sizeof(path), "%s/spool", dir);
	sc.dir = path;
	spool = spool_open(&sc, &err);
	cr_assert_not_null(spool, "spool_open: %s", spool_strerror(err));
	redis = redis_server_start();
	cr_assert_not_null(redis);
}

static void teardown(void)
{
	if (own_redis > 0) {
		kill(own_redis, SIGCONT);
		proc_stop(own_redis, 2000);
	}
	if (own_dir) {
		proc_rmtree(own_dir);
		free(own_dir);
	}
	redis_server_stop(sentinel);
	redis_server_stop(replica);
	redis_server_stop(redis);
	spool_free(spool);
	log_init(LOG_INFO, 2);
	if (log_fd != -1)
		close(log_fd);
	if (dir) {
		proc_rmtree(dir);
		free(dir);
	}
}

TestSuite(member, .init = setup, .fini = teardown, .timeout = 60);

Test(member, announces_every_field)
{
	struct member_config cfg = config(redis_server_port(redis));
	int port = redis_server_port(redis), ok;
	struct member *m = member_start(&cfg, spool);
	struct announce a;
	long long pttl;
	redisReply *r;

	cr_assert_not_null(m);
	WAIT_FOR(ok, registered(port), WAIT_MS);
	cr_assert(ok, "the announcement should appear and parse");
	cr_assert_eq(announce_read(port, &a), PROTO_OK);
	cr_assert_str_eq(a.id, SERVER_ID);
	cr_assert_str_eq(a.url, SERVER_URL);
	cr_assert_eq(a.capacity, 8);
	cr_assert_eq(a.active, 0);
	cr_assert_gt(a.free_bytes, 0);
	cr_assert_eq(a.draining, 0);
	cr_assert_geq((int64_t)a.heartbeat_ms, clock_unix_ms() - 2000);
	cr_assert_leq((int64_t)a.heartbeat_ms, clock_unix_ms() + 10);

	r = cmd(port, "HGET fsg:server:%s proto", SERVER_ID);
	cr_assert(r && r->type == REDIS_REPLY_STRING);
	cr_assert_str_eq(r->str, "1");
	freeReplyObject(r);

	/* TTL three intervals, refreshed each one */
	pttl = cmd_int(port, "PTTL fsg:server:%s", SERVER_ID, NULL);
	cr_assert_gt(pttl, 3 * INTERVAL_MS - 2 * INTERVAL_MS, "pttl %lld", pttl);
	cr_assert_leq(pttl, 3 * INTERVAL_MS, "pttl %lld", pttl);
	clock_sleep_ms(4 * INTERVAL_MS);
	cr_assert_gt(cmd_int(port, "PTTL fsg:server:%s", SERVER_ID, NULL), 0,
		     "still there after the first TTL: refreshed");

	/* the pool entry, scored by the heartbeat */
	r = cmd(port, "ZSCORE %s %s", RKEY_POOL, SERVER_ID);
	cr_assert(r && r->type == REDIS_REPLY_STRING);
	cr_assert_geq(strtoll(r->str, NULL, 10), clock_unix_ms() - 2000);
	cr_assert_leq(strtoll(r->str, NULL, 10), clock_unix_ms() + 10);
	freeReplyObject(r);
	cr_assert_eq(cmd_int(port, "ZCARD %s", RKEY_POOL, NULL), 1);
	cr_assert(member_connected(m));
	member_stop(m);
}

Test(member, heartbeat_advances_and_counts_active_uploads)
{
	struct member_config cfg = config(redis_server_port(redis));
	int port = redis_server_port(redis), ok;
	struct member *m = member_start(&cfg, spool);
	struct announce a, b;
	struct spool_write *w;
	struct spool_job job;
	struct job_meta meta;
	char uuid[UUID_LEN + 1];
	int existed;

	cr_assert_not_null(m);
	WAIT_FOR(ok, registered(port), WAIT_MS);
	cr_assert(ok);
	cr_assert_eq(announce_read(port, &a), PROTO_OK);
	WAIT_FOR(ok, announce_read(port, &b) == PROTO_OK && b.heartbeat_ms > a.heartbeat_ms,
		 1000);
	cr_assert(ok, "heartbeat_ms should advance within 1 s");

	/* an upload being written counts as active in the next heartbeat */
	cr_assert_eq(jobid_client_generate(uuid), PROTO_OK);
	meta_init(&meta, uuid);
	cr_assert_eq(spool_create(spool, "alice", &meta, 10, NULL, 1, &job, &existed), SPOOL_OK);
	cr_assert_eq(spool_write_begin(spool, "alice", job.id, 0, NULL, &w, NULL), SPOOL_OK);
	WAIT_FOR(ok, announce_read(port, &b) == PROTO_OK && b.active == 1, 1000);
	cr_assert(ok, "active should be 1 while a writer is open");
	spool_write_abort(w);
	WAIT_FOR(ok, announce_read(port, &b) == PROTO_OK && b.active == 0, 1000);
	cr_assert(ok, "active should fall back to 0");
	member_stop(m);
}

Test(member, draining_is_sent_at_once)
{
	struct member_config cfg = config(redis_server_port(redis));
	int port = redis_server_port(redis), ok;
	struct member *m;
	struct announce a;
	int64_t t;

	cfg.interval_ms = 3000; /* far longer than the wait below: only the wake-up can do it */
	m = member_start(&cfg, spool);
	cr_assert_not_null(m);
	WAIT_FOR(ok, registered(port), WAIT_MS);
	cr_assert(ok);
	cr_assert_eq(announce_read(port, &a), PROTO_OK);
	cr_assert_eq(a.draining, 0);
	t = clock_mono_ms();
	member_set_draining(m);
	WAIT_FOR(ok, announce_read(port, &a) == PROTO_OK && a.draining == 1, 1000);
	cr_assert(ok, "draining=1 should reach Redis within 1 s");
	cr_assert_lt(clock_mono_ms() - t, 1000);
	member_stop(m);
}

Test(member, stop_deregisters)
{
	struct member_config cfg = config(redis_server_port(redis));
	int port = redis_server_port(redis), ok;
	struct member *m = member_start(&cfg, spool);
	redisReply *r;

	cr_assert_not_null(m);
	WAIT_FOR(ok, registered(port), WAIT_MS);
	cr_assert(ok);
	member_stop(m);
	cr_assert_eq(cmd_int(port, "EXISTS fsg:server:%s", SERVER_ID, NULL), 0);
	r = cmd(port, "ZSCORE %s %s", RKEY_POOL, SERVER_ID);
	cr_assert(r && r->type == REDIS_REPLY_NIL, "the pool entry should be gone");
	freeReplyObject(r);
	cr_assert_eq(log_count("member.deregistered"), 1);
	member_stop(NULL);
}

Test(member, held_jobs_added_and_removed)
{
	struct member_config cfg = config(redis_server_port(redis));
	int port = redis_server_port(redis), ok;
	struct spool_job before = commit("alice", 1000, "first"), other = commit("bob", 7, "x");
	struct spool_job after, released;
	struct member *m;

	cfg.interval_ms = 3000; /* held changes must wake the thread, not wait for a heartbeat */
	m = member_start(&cfg, spool);
	cr_assert_not_null(m);
	/* committed before the start: re-added on connection */
	WAIT_FOR(ok, held_score(port, "alice", before.id) == 1000, WAIT_MS);
	cr_assert(ok, "a job committed before the start should be re-added");
	cr_assert_eq(held_score(port, "bob", other.id), 7);

	after = commit("alice", 9007199254740991ULL, "second"); /* the largest sequence */
	member_held_add(m, &after);
	WAIT_FOR(ok, held_score(port, "alice", after.id) == 9007199254740991.0, 1000);
	cr_assert(ok, "member_held_add should reach fsg:held within 1 s");

	cr_assert_eq(spool_release(spool, before.id, &released), SPOOL_OK);
	member_held_remove(m, &released);
	WAIT_FOR(ok, held_score(port, "alice", before.id) == -1, 1000);
	cr_assert(ok, "member_held_remove should reach fsg:held within 1 s");
	cr_assert_eq(held_score(port, "alice", after.id), 9007199254740991.0);
	cr_assert_eq(held_score(port, "bob", other.id), 7);
	member_stop(m);
	/* leaving the pool keeps the held index: the jobs are still held at this server */
	cr_assert_eq(held_score(port, "bob", other.id), 7);
	member_held_add(NULL, &after);
	member_held_remove(NULL, &after);
}

Test(member, redis_down_at_start)
{
	int port = proc_free_port(), ok;
	struct member_config cfg = config(port);
	struct spool_job held = commit("alice", 5, "held"), late, gone;
	struct member *m;
	int64_t t = clock_mono_ms();

	cr_assert_gt(port, 0);
	m = member_start(&cfg, spool);
	cr_assert_not_null(m);
	cr_assert_lt(clock_mono_ms() - t, 500, "member_start never waits for Redis");
	clock_sleep_ms(8 * INTERVAL_MS);
	cr_assert_not(member_connected(m));
	cr_assert_eq(log_count("redis.down"), 1, "one log line per outage, not one per retry");

	/* queued while Redis is away */
	late = commit("carol", 6, "late");
	member_held_add(m, &late);
	gone = commit("carol", 3, "gone");
	member_held_add(m, &gone);
	cr_assert_eq(spool_release(spool, gone.id, &gone), SPOOL_OK);
	member_held_remove(m, &gone);

	own_redis = redis_on(port, NULL);
	t = clock_mono_ms();
	WAIT_FOR(ok, registered(port) && member_connected(m), WAIT_MS);
	cr_assert(ok, "should register once Redis is up");
	cr_assert_lt(clock_mono_ms() - t, 2000, "registers within 2 s of Redis coming up");
	WAIT_FOR(ok, held_score(port, "carol", late.id) == 6, 1000);
	cr_assert(ok, "the queued add should be delivered");
	cr_assert_eq(held_score(port, "alice", held.id), 5, "committed jobs re-added");
	cr_assert_eq(held_score(port, "carol", gone.id), -1, "add then remove: not held");
	cr_assert_eq(log_count("redis.down"), 1);
	WAIT_FOR(ok, log_count("redis.up") == 1, 1000);
	cr_assert(ok);
	member_stop(m);
}

Test(member, reregisters_after_redis_restart)
{
	int port = redis_server_port(redis), ok;
	struct member_config cfg = config(port);
	struct spool_job a = commit("alice", 11, "a"), b = commit("bob", 12, "b");
	struct member *m = member_start(&cfg, spool);

	cr_assert_not_null(m);
	WAIT_FOR(ok, registered(port) && held_score(port, "bob", b.id) == 12, WAIT_MS);
	cr_assert(ok);
	redis_server_stop(redis); /* its data goes with it: no persistence */
	redis = NULL;
	WAIT_FOR(ok, !member_connected(m), WAIT_MS);
	cr_assert(ok, "member_connected should drop while Redis is gone");
	own_redis = redis_on(port, NULL);
	cr_assert_not(registered(port), "a fresh Redis is empty");
	WAIT_FOR(ok, registered(port), 2000);
	cr_assert(ok, "should re-register within 2 s");
	WAIT_FOR(ok, held_score(port, "alice", a.id) == 11 && held_score(port, "bob", b.id) == 12,
		 1000);
	cr_assert(ok, "held jobs should be re-added to the new Redis");
	cr_assert(member_connected(m));
	member_stop(m);
}

Test(member, lost_hash_triggers_readd)
{
	int port = redis_server_port(redis), ok;
	struct member_config cfg = config(port);
	struct spool_job a = commit("alice", 21, "a");
	struct member *m = member_start(&cfg, spool);

	cr_assert_not_null(m);
	WAIT_FOR(ok, registered(port) && held_score(port, "alice", a.id) == 21, WAIT_MS);
	cr_assert(ok);
	/* Redis lost everything (a failover to an empty replica) but the connection lives */
	freeReplyObject(cmd(port, "FLUSHALL"));
	WAIT_FOR(ok, registered(port) && held_score(port, "alice", a.id) == 21, 2000);
	cr_assert(ok, "a new hash means a new Redis: held jobs re-added");
	member_stop(m);
}

Test(member, overflow_keeps_newest_and_cleans_dropped_removals)
{
	int port = proc_free_port(), ok;
	struct member_config cfg = config(port);
	struct spool_job kept = commit("alice", 31, "kept"), stale = {0}, late, fake = {0};
	char oh[OWNER_HASH_LEN + 1], key[RKEY_MAX + 1];
	struct member *m;

	own_redis = redis_on(port, NULL);
	m = member_start(&cfg, spool);
	cr_assert_not_null(m);
	WAIT_FOR(ok, registered(port) && held_score(port, "alice", kept.id) == 31, WAIT_MS);
	cr_assert(ok);
	/* an entry of this server for a job that is gone, e.g. left by an earlier run */
	cr_assert_eq(jobid_generate(stale.id), PROTO_OK);
	strcpy(stale.owner, "bob");
	stale.sequence = 7;
	cr_assert_eq(owner_hash("bob", 3, oh, sizeof(oh)), PROTO_OK);
	cr_assert_eq(rkey_held(oh, key, sizeof(key)), PROTO_OK);
	freeReplyObject(cmd(port, "ZADD %s 7 %s.%s", key, SERVER_ID, stale.id));
	freeReplyObject(cmd(port, "ZADD %s 8 other-server.%s", key, stale.id));
	cr_assert_eq(held_score(port, "bob", stale.id), 7);

	/* Redis hangs: commands time out, the changes queue up past the bound (16384) */
	cr_assert_eq(kill(own_redis, SIGSTOP), 0);
	WAIT_FOR(ok, !member_connected(m), WAIT_MS);
	cr_assert(ok);
	member_held_remove(m, &stale); /* the oldest: dropped, its owner cleaned at resync */
	strcpy(fake.owner, "carol");
	for (int i = 0; i < 20000; i++) {
		cr_assert_eq(jobid_generate(fake.id), PROTO_OK);
		member_held_remove(m, &fake);
	}
	late = commit("alice", 32, "late");
	member_held_add(m, &late); /* the newest: kept */
	cr_assert_eq(kill(own_redis, SIGCONT), 0);

	WAIT_FOR(ok, held_score(port, "bob", stale.id) == -1, WAIT_MS);
	cr_assert(ok, "the dropped removal's owner should be cleaned");
	WAIT_FOR(ok, held_score(port, "alice", late.id) == 32, WAIT_MS);
	cr_assert(ok, "the newest change should be delivered");
	cr_assert_eq(held_score(port, "alice", kept.id), 31, "live jobs survive the cleanup");
	cr_assert_eq(cmd_int(port, "ZCARD %s", key, NULL), 1, "another server's entry stays");
	cr_assert_eq(log_count("held.overflow"), 1, "logged once");
	member_stop(m);
}

Test(member, authenticates_and_never_logs_the_password)
{
	int port = proc_free_port(), ok;
	struct member_config cfg = config(port);
	struct member *m;

	own_redis = redis_on(port, "s3cret-pass-42");
	cfg.redis_password = "wrong-pass-17";
	m = member_start(&cfg, spool);
	cr_assert_not_null(m);
	WAIT_FOR(ok, log_count("redis.down") == 1, WAIT_MS);
	cr_assert(ok, "a refused AUTH is an outage");
	clock_sleep_ms(3 * INTERVAL_MS);
	cr_assert_not(member_connected(m));
	member_stop(m);

	client_password = "s3cret-pass-42";
	cr_assert_not(registered(port));
	cfg.redis_password = "s3cret-pass-42";
	m = member_start(&cfg, spool);
	cr_assert_not_null(m);
	WAIT_FOR(ok, registered(port), WAIT_MS);
	cr_assert(ok, "registers with the right password");
	member_stop(m);
	cr_assert_not(registered(port));
	cr_assert_not(log_contains("s3cret-pass-42"));
	cr_assert_not(log_contains("wrong-pass-17"));
}

enum cfg_field { F_ID, F_URL, F_HOST, F_PORT, F_CAPACITY, F_INTERVAL, F_TIMEOUT };

static const struct {
	const char *what;
	enum cfg_field field;
	const char *str;
	int64_t num;
} bad_configs[] = {
	{"uppercase server id", F_ID, "Srv-1", 0},
	{"empty server id", F_ID, "", 0},
	{"no server id", F_ID, NULL, 0},
	{"33-character server id", F_ID, "a23456789012345678901234567890123", 0},
	{"server id ending in -", F_ID, "srv-", 0},
	{"url ending in /", F_URL, "http://127.0.0.1:8443/", 0},
	{"url not http(s)", F_URL, "ftp://host:21", 0},
	{"url without port", F_URL, "http://host", 0},
	{"no url", F_URL, NULL, 0},
	{"empty host", F_HOST, "", 0},
	{"no host", F_HOST, NULL, 0},
	{"port 0", F_PORT, NULL, 0},
	{"port 65536", F_PORT, NULL, 65536},
	{"capacity 0", F_CAPACITY, NULL, 0},
	{"capacity above the maximum", F_CAPACITY, NULL, ANNOUNCE_CAPACITY_MAX + 1},
	{"negative interval", F_INTERVAL, NULL, -1},
	{"interval above a day", F_INTERVAL, NULL, 24LL * 3600 * 1000 + 1},
	{"negative timeout", F_TIMEOUT, NULL, -1},
	{"timeout above a day", F_TIMEOUT, NULL, 24LL * 3600 * 1000 + 1},
};

Test(member, refuses_bad_config)
{
	struct member_config good = config(proc_free_port());
	struct member *m;

	for (size_t i = 0; i < sizeof(bad_configs) / sizeof(bad_configs[0]); i++) {
		struct member_config bad = good;

		switch (bad_configs[i].field) {
		case F_ID:
			bad.server_id = bad_configs[i].str;
			break;
		case F_URL:
			bad.url = bad_configs[i].str;
			break;
		case F_HOST:
			bad.redis_host = bad_configs[i].str;
			break;
		case F_PORT:
			bad.redis_port = (int)bad_configs[i].num;
			break;
		case F_CAPACITY:
			bad.capacity = (uint32_t)bad_configs[i].num;
			break;
		case F_INTERVAL:
			bad.interval_ms = bad_configs[i].num;
			break;
		case F_TIMEOUT:
			bad.redis_timeout_ms = bad_configs[i].num;
			break;
		}
		cr_assert_null(member_start(&bad, spool), "%s", bad_configs[i].what);
	}
	cr_assert_null(member_start(&good, NULL), "no spool");
	cr_assert_null(member_start(NULL, spool), "no config");
	/* the limits themselves pass, and 0 means the defaults */
	good.server_id = "a2345678901234567890123456789012";
	good.capacity = ANNOUNCE_CAPACITY_MAX;
	good.interval_ms = 0;
	good.redis_timeout_ms = 0;
	good.redis_port = 65535;
	m = member_start(&good, spool);
	cr_assert_not_null(m);
	member_stop(m);
}

/* ---- Redis Sentinel -------------------------------------------------------------------- */

Test(member, finds_the_master_through_the_sentinels)
{
	struct member_config cfg = config(proc_free_port()); /* redis_port is not used */
	int port = redis_server_port(redis), ok;
	char list[128];
	struct member *m;

	sentinel = redis_sentinel_start("fsg", port, 1, 60000, 180000);
	cr_assert_not_null(sentinel);
	/* a dead sentinel first: the next one is asked */
	snprintf(list, sizeof(list), "127.0.0.1:%d,localhost:%d", proc_free_port(),
		 redis_server_port(sentinel));
	cfg.redis_sentinels = list;
	cfg.redis_master_name = "fsg";
	m = member_start(&cfg, spool);
	cr_assert_not_null(m);
	WAIT_FOR(ok, registered(port), WAIT_MS);
	cr_assert(ok, "not registered in the master the sentinel names");
	cr_assert_eq(log_count("redis.master"), 1, "the master's address is logged once");
	member_stop(m);
	cr_assert_not(registered(port), "deregistered through the sentinels too");
}

Test(member, never_writes_to_a_replica_a_sentinel_names)
{
	struct member_config cfg = config(proc_free_port());
	char list[64];
	struct member *m;
	int ok;

	replica = redis_replica_start(redis);
	cr_assert_not_null(replica);
	/* a sentinel that takes the replica for the master (as during a failover) */
	sentinel = redis_sentinel_start("fsg", redis_server_port(replica), 1, 60000, 180000);
	cr_assert_not_null(sentinel);
	snprintf(list, sizeof(list), "127.0.0.1:%d", redis_server_port(sentinel));
	cfg.redis_sentinels = list;
	cfg.redis_master_name = "fsg";
	m = member_start(&cfg, spool);
	cr_assert_not_null(m);
	WAIT_FOR(ok, log_contains("ROLE: not the master"), WAIT_MS);
	cr_assert(ok, "the replica was not refused");
	cr_assert_not(member_connected(m));
	cr_assert_not(registered(redis_server_port(redis)));
	member_stop(m);
}

Test(member, refuses_bad_sentinel_config)
{
	struct member_config cfg = config(proc_free_port());
	struct member *m;

	cfg.redis_sentinels = "127.0.0.1:26379";
	cfg.redis_master_name = "";
	cr_assert_null(member_start(&cfg, spool), "no master name");
	cfg.redis_master_name = "fsg";
	cfg.redis_sentinels = "127.0.0.1";
	cr_assert_null(member_start(&cfg, spool), "no port");
	cfg.redis_sentinels = "127.0.0.1:1,";
	cr_assert_null(member_start(&cfg, spool), "empty entry");
	/* with sentinels, redis_host and redis_port are not used */
	cfg.redis_sentinels = "127.0.0.1:1";
	cfg.redis_host = NULL;
	cfg.redis_port = 0;
	m = member_start(&cfg, spool);
	cr_assert_not_null(m);
	member_stop(m);
}
