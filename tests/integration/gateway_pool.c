/* How fs-gateway chooses data-center servers: failover, Redis outages, load, idempotency. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "proto/base64.h"
#include "proto/owner.h"
#include "proto/rkey.h"
#include "tests/lib/fs_gateway.h"
#include "tests/lib/fs_server.h"
#include "tests/lib/http_client.h"
#include "tests/lib/proc.h"
#include "tests/lib/redis_server.h"

#define SERVERS_MAX 3
/* free_bytes of a fake announcement that must win every tie on load (2^64 - 1) */
#define FREE_HUGE "18446744073709551615"
#define FREE_EQUAL "1000000000000"
/* longer than the gateways' 100 ms pool refresh, so both workers have read Redis again */
#define REFRESH_WAIT_MS 400
/* creations of the load-spreading test (see spreads_by_load_not_round_robin) */
#define SPREAD_CREATIONS 120
/* env override: fs_server_start writes heartbeat_interval itself, and a setting may not repeat */
#define SLOW_HEARTBEAT_ENV "FSG_SERVER_HEARTBEAT_INTERVAL"

static struct redis_server *R;
static struct fs_server *S[SERVERS_MAX];
static struct fs_gateway *G, *G2;
static redisContext *RC;
static unsigned job_counter;

/* ---- time ---------------------------------------------------------------------------------- */

static int64_t unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the stack ----------------------------------------------------------------------------- */

/*
 * Redis, n servers dc1..dcn and the gateway G with extra config gw. With slow_heartbeat the
 * servers announce themselves once at start and then only every 60 s, so the announcements the
 * test writes stay as written.
 */
static void stack_up(int n, int slow_heartbeat, const char *gw)
{
	char id[8];

	R = redis_server_start();
	cr_assert(R, "redis-server did not start");
	if (slow_heartbeat)
		setenv(SLOW_HEARTBEAT_ENV, "60s", 1);
	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "dc%d", i + 1);
		S[i] = fs_server_start_id(redis_server_port(R), id, NULL);
		cr_assert(S[i], "fs-server %s did not start", id);
	}
	unsetenv(SLOW_HEARTBEAT_ENV);
	G = fs_gateway_start(redis_server_port(R), gw);
	cr_assert(G, "fs-gateway did not start");
	http_client_tls(G->ca_file, NULL, NULL);
	cr_assert_eq(fs_gateway_wait_ready(G, 10000), 0, "gateway not ready");
	/* /readyz answered for one worker: let every worker read the pool once */
	proc_sleep_ms(REFRESH_WAIT_MS);
}

static void stack_down(void)
{
	redisFree(RC);
	RC = NULL;
	fs_gateway_free(G2);
	fs_gateway_free(G);
	for (int i = 0; i < SERVERS_MAX; i++)
		fs_server_free(S[i]);
	redis_server_stop(R);
	G = G2 = NULL;
	R = NULL;
	memset(S, 0, sizeof(S));
}

/* Stops gateway g with SIGTERM: it must exit 0 (a crash, or a leak under ASan, fails). */
static void gateway_exits_cleanly(struct fs_gateway *g)
{
	int st = fs_gateway_stop(g, 10000);

	cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "fs-gateway did not exit cleanly (wait status %d)", st);
}

/* ---- Redis from the test (synchronous hiredis) ------------------------------------------- */

/* One command on the test's own connection, made again when it broke. NULL: no answer. */
static redisReply *rcmd(const char *fmt, ...)
{
	struct timeval tv = {2, 0};
	redisReply *reply;
	va_list ap;

	if (RC && RC->err) {
		redisFree(RC);
		RC = NULL;
	}
	if (!RC) {
		RC = redisConnectWithTimeout("127.0.0.1", redis_server_port(R), tv);
		if (!RC || RC->err || redisSetTimeout(RC, tv) != REDIS_OK)
			return NULL;
	}
	va_start(ap, fmt);
	reply = redisvCommand(RC, fmt, ap);
	va_end(ap);
	return reply;
}

/* An integer reply of the command, or INT64_MIN. */
static long long rint_cmd(const char *what, const char *key)
{
	redisReply *r = rcmd("%s %s", what, key);
	long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : INT64_MIN;

	freeReplyObject(r);
	return v;
}

/*
 * Writes s's announcement as a heartbeat would, with the given load, now as heartbeat_ms, and
 * s's own URL (which refuses connections once s is killed): all eight fields of PROTOCOL.md 11.2.
 */
static void announce(const struct fs_server *s, unsigned active, unsigned capacity,
		     const char *free_bytes)
{
	char key[RKEY_MAX + 1], hb[24];
	redisReply *r;

	cr_assert_eq(rkey_server(s->id, key, sizeof(key)), PROTO_OK);
	snprintf(hb, sizeof(hb), "%" PRId64, unix_ms());
	r = rcmd("HSET %s id %s url %s capacity %u active %u free_bytes %s draining 0 "
		 "heartbeat_ms %s proto 1", key, s->id, s->url, capacity, active, free_bytes, hb);
	cr_assert(r && r->type == REDIS_REPLY_INTEGER, "HSET %s failed", key);
	freeReplyObject(r);
	/* a killed server's hash still carries its 3-heartbeat TTL: give it a long one */
	r = rcmd("PEXPIRE %s 600000", key);
	cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1, "PEXPIRE %s", key);
	freeReplyObject(r);
	r = rcmd("ZADD %s %s %s", RKEY_POOL, hb, s->id);
	cr_assert(r && r->type == REDIS_REPLY_INTEGER, "ZADD %s", RKEY_POOL);
	freeReplyObject(r);
}

/* Waits (bounded) until every one of the n servers has its hash and pool entry in Redis. */
static int servers_registered(int n, int timeout_ms)
{
	char key[RKEY_MAX + 1];
	int64_t until = mono_ms() + timeout_ms;

	do {
		int ok = 1;

		for (int i = 0; i < n && ok; i++) {
			redisReply *r = rcmd("ZSCORE %s %s", RKEY_POOL, S[i]->id);

			ok = r && r->type == REDIS_REPLY_STRING;
			freeReplyObject(r);
			ok = ok && rkey_server(S[i]->id, key, sizeof(key)) == PROTO_OK &&
			     rint_cmd("EXISTS", key) == 1;
		}
		if (ok)
			return 1;
		proc_sleep_ms(50);
	} while (mono_ms() < until);
	return 0;
}

/* ---- requests ------------------------------------------------------------------------------ */

/* A request to gateway g as user (NULL: anonymous) with extra header lines; returns the status. */
static long gw_request(struct fs_gateway *g, const char *method, const char *path,
		       const char *user, const char *const *extra, const void *body, size_t len,
		       struct http_reply *out)
{
	const char *hdrs[16];
	char url[512], *auth = NULL;
	size_t n = 0;
	int rc;

	http_client_tls(g->ca_file, NULL, NULL);
	if (user) {
		auth = fs_gateway_auth(g, user);
		cr_assert(auth, "cannot mint a token for %s", user);
		hdrs[n++] = auth;
	}
	for (size_t i = 0; extra && extra[i] && n < 15; i++)
		hdrs[n++] = extra[i];
	hdrs[n] = NULL;
	snprintf(url, sizeof(url), "%s%s", g->url, path);
	memset(out, 0, sizeof(*out));
	rc = http_request(method, url, hdrs, body, len, out);
	free(auth);
	cr_assert_eq(rc, 0, "%s %s: no answer from the gateway", method, path);
	return out->status;
}

static long gw_status_only(struct fs_gateway *g, const char *path)
{
	struct http_reply r;
	long st = gw_request(g, "GET", path, NULL, NULL, NULL, 0, &r);

	http_reply_free(&r);
	return st;
}

/* A fresh lowercase client job id (each test has its own Redis and servers). */
static void uuid_next(char out[37])
{
	snprintf(out, 37, "%08x-0000-4000-8000-%012x", (unsigned)getpid(), ++job_counter);
}

static void location_of(const struct http_reply *r, char *loc, size_t cap)
{
	cr_assert(http_reply_header(r, "Location", loc, cap), "no Location (status %ld): %s",
		  r->status, r->body);
	cr_assert(!strncmp(loc, "/v1/jobs/", 9), "Location %s", loc);
}

/* The server id of a Location "/v1/jobs/{server-id}.{server-job-id}.{tag}". */
static void location_server(const char *loc, char *sid, size_t cap)
{
	const char *p = loc + 9, *dot = strchr(p, '.');

	cr_assert(dot && (size_t)(dot - p) < cap, "Location %s", loc);
	memcpy(sid, p, (size_t)(dot - p));
	sid[dot - p] = '\0';
}

static long job_put(struct fs_gateway *g, const char *user, const char *id, const void *body,
		    size_t len, char *loc, size_t cap)
{
	const char *hdrs[] = {"Content-Type: application/pdf", NULL};
	struct http_reply r;
	char path[96];
	long st;

	snprintf(path, sizeof(path), "/v1/jobs/%s", id);
	st = gw_request(g, "PUT", path, user, hdrs, body, len, &r);
	if (st == 200 || st == 201) {
		location_of(&r, loc, cap);
		cr_assert(strstr(r.body, "\"state\":\"committed\""), "PUT answer %s", r.body);
	} else {
		cr_log_warn("PUT %s as %s: %ld %s", id, user, st, r.body);
	}
	http_reply_free(&r);
	return st;
}

/* POST /v1/jobs without a body (no job bytes: not an active upload anywhere). */
static long job_create(struct fs_gateway *g, const char *user, const char *id, size_t length,
		       char *loc, size_t cap, struct http_reply *keep)
{
	char meta[128], b64[64], ulen[48];
	const char *hdrs[] = {"Tus-Resumable: 1.0.0", ulen, meta, NULL};
	struct http_reply r;
	long st;

	cr_assert_eq(base64_encode((const unsigned char *)id, strlen(id), b64, sizeof(b64), NULL),
		     PROTO_OK);
	snprintf(meta, sizeof(meta), "Upload-Metadata: job-id %s", b64);
	snprintf(ulen, sizeof(ulen), "Upload-Length: %zu", length);
	st = gw_request(g, "POST", "/v1/jobs", user, hdrs, NULL, 0, &r);
	if (st == 200 || st == 201)
		location_of(&r, loc, cap);
	else if (!keep)
		cr_log_warn("POST %s as %s: %ld %s", id, user, st, r.body);
	if (keep)
		*keep = r;
	else
		http_reply_free(&r);
	return st;
}

static long job_patch(struct fs_gateway *g, const char *user, const char *loc, size_t offset,
		      const void *body, size_t len)
{
	char off[48];
	const char *hdrs[] = {"Tus-Resumable: 1.0.0",
			      "Content-Type: application/offset+octet-stream", off, NULL};
	struct http_reply r;
	long st;

	snprintf(off, sizeof(off), "Upload-Offset: %zu", offset);
	st = gw_request(g, "PATCH", loc, user, hdrs, body, len, &r);
	http_reply_free(&r);
	return st;
}

/* GET the job's status object: its state (copied) and sequence. Returns the HTTP status. */
static long job_status(struct fs_gateway *g, const char *user, const char *loc, char *state,
		       size_t cap, uint64_t *sequence)
{
	struct http_reply r;
	json_t *doc;
	long st = gw_request(g, "GET", loc, user, NULL, NULL, 0, &r);

	if (st == 200) {
		doc = json_loadb(r.body, r.body_len, 0, NULL);
		cr_assert(json_is_object(doc), "status object %s", r.body);
		cr_assert(json_is_string(json_object_get(doc, "state")), "%s", r.body);
		cr_assert(json_is_integer(json_object_get(doc, "sequence")), "%s", r.body);
		cr_assert_str_eq(json_string_value(json_object_get(doc, "id")), loc + 9);
		snprintf(state, cap, "%s", json_string_value(json_object_get(doc, "state")));
		*sequence = (uint64_t)json_integer_value(json_object_get(doc, "sequence"));
		json_decref(doc);
	}
	http_reply_free(&r);
	return st;
}

/* The problem type slug of an error answer ("" when the body is not a problem). */
static void problem_slug(const struct http_reply *r, char *slug, size_t cap)
{
	const char *prefix = "urn:fs-gateway:problem:";
	json_t *doc = json_loadb(r->body, r->body_len, 0, NULL);
	const char *t = json_string_value(json_object_get(doc, "type"));

	if (!t || strncmp(t, prefix, strlen(prefix)))
		t = prefix;
	snprintf(slug, cap, "%s", t + strlen(prefix));
	json_decref(doc);
}

/* A counter of g's /metrics, or -1 when it is missing. */
static long long metric(struct fs_gateway *g, const char *name)
{
	struct http_reply r;
	char line[128];
	const char *p;
	long long v = -1;

	cr_assert_eq(gw_request(g, "GET", "/metrics", NULL, NULL, NULL, 0, &r), 200);
	snprintf(line, sizeof(line), "\n%s ", name);
	p = strstr(r.body, line);
	if (p)
		v = strtoll(p + strlen(line), NULL, 10);
	http_reply_free(&r);
	return v;
}

static void fill(char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)(i * 31 + seed);
}

/* ---- 1. failover --------------------------------------------------------------------------- */

/*
 * dc1 is killed but stays announced, fresh, idle and with the most free space, so p2c (two
 * candidates: both drawn, equal load 0, more free_bytes wins) picks it first whenever it is not
 * marked down. The down mark lasts 1 s here and each creation waits it out, so every one of them
 * tries dc1 first and fails over. The client only ever sees dc2's success.
 */
#define FAILOVER_JOBS 6
Test(gateway_pool, creation_fails_over_to_a_live_server, .fini = stack_down, .timeout = 120)
{
	static char body[50000];
	char loc[160], sid[40], id[37], state[24], key[RKEY_MAX + 1], slug[64], ra[16];
	struct http_reply r;
	long long before, after, pttl = -3;
	uint64_t seq;
	int64_t t0;
	int st;

	stack_up(2, 0, "down_mark = 1s\n");
	cr_assert(servers_registered(2, 5000));
	before = metric(G, "fsg_gateway_failovers_total");
	cr_assert_geq(before, 0, "no failover counter in /metrics");
	st = fs_server_kill(S[0]);
	cr_assert(WIFSIGNALED(st), "dc1 should have died of SIGKILL");
	cr_assert_eq(rkey_down("dc1", key, sizeof(key)), PROTO_OK);

	for (int i = 0; i < FAILOVER_JOBS; i++) {
		/*
		 * Past the last local down mark (1 s from the failure, or from the last refresh
		 * that still saw fsg:down:dc1, which the test deleted): dc1 is a candidate again.
		 */
		proc_sleep_ms(i ? 1100 : 0);
		announce(S[0], 0, 1000000, FREE_HUGE);
		proc_sleep_ms(REFRESH_WAIT_MS);
		uuid_next(id);
		fill(body, sizeof(body), (unsigned)i);
		if (i % 2 == 0)
			cr_assert_eq(job_put(G, "alice", id, body, sizeof(body), loc, sizeof(loc)),
				     201, "PUT %d", i);
		else
			cr_assert_eq(job_create(G, "alice", id, sizeof(body), loc, sizeof(loc),
						NULL), 201, "POST %d", i);
		location_server(loc, sid, sizeof(sid));
		cr_assert_str_eq(sid, "dc2", "job %d landed on %s", i, loc);
		/* the gateway marked dc1 down for everyone (its SET is fire-and-forget: poll) */
		pttl = -3;
		for (int k = 0; k < 20 && pttl <= 0; k++) {
			pttl = rint_cmd("PTTL", key);
			if (pttl <= 0)
				proc_sleep_ms(20);
		}
		cr_assert(pttl > 0 && pttl <= 1000,
			  "job %d: fsg:down:dc1 should exist with a TTL of at most 1 s (PTTL %lld)",
			  i, pttl);
		/* gone early (expired) is fine too: only the shared mark must not outlive this */
		cr_assert_geq(rint_cmd("DEL", key), 0);
		if (i % 2)
			cr_assert_eq(job_patch(G, "alice", loc, 0, body, sizeof(body)), 204,
				     "PATCH %d", i);
		/* committed where the Location says: the route leads to dc2, which holds it */
		cr_assert_eq(job_status(G, "alice", loc, state, sizeof(state), &seq), 200);
		cr_assert_str_eq(state, "committed", "job %d", i);
	}
	after = metric(G, "fsg_gateway_failovers_total");
	cr_assert_eq(after - before, FAILOVER_JOBS,
		     "each creation should have tried dc1 first: failovers_total %lld -> %lld",
		     before, after);

	/* both dead, both announced as the best choice: 503 at once, never a hang */
	st = fs_server_kill(S[1]);
	cr_assert(WIFSIGNALED(st));
	announce(S[0], 0, 1000000, FREE_HUGE);
	announce(S[1], 0, 1000000, FREE_HUGE);
	proc_sleep_ms(REFRESH_WAIT_MS);
	for (int i = 0; i < 2; i++) {
		uuid_next(id);
		announce(S[0], 0, 1000000, FREE_HUGE);
		announce(S[1], 0, 1000000, FREE_HUGE);
		t0 = mono_ms();
		cr_assert_eq(job_create(G, "alice", id, 100, loc, sizeof(loc), &r), 503,
			     "creation with both servers dead: %ld %s", r.status, r.body);
		cr_assert_lt(mono_ms() - t0, 5000, "the 503 took %" PRId64 " ms", mono_ms() - t0);
		problem_slug(&r, slug, sizeof(slug));
		cr_assert_str_eq(slug, "no-server-available", "%s", r.body);
		cr_assert(http_reply_header(&r, "Retry-After", ra, sizeof(ra)) && atoi(ra) > 0,
			  "503 without Retry-After");
		http_reply_free(&r);
	}
	cr_log_info("failover: failovers_total %lld -> %lld", before, after);
	gateway_exits_cleanly(G);
}

/* ---- 2. Redis outage ----------------------------------------------------------------------- */

/*
 * G keeps the default snapshot_max_age (60 s) and serves through the whole outage from its
 * snapshot; G2 has 2 s and must stop taking creations after that, then recover with Redis.
 */
Test(gateway_pool, redis_outage_snapshot_then_recovery, .fini = stack_down, .timeout = 120)
{
	static char body[30000];
	char loc[160], loc2[160], id[37], state[24], slug[64], ra[16];
	struct http_reply r;
	uint64_t seq_before, seq_during, seq_after;
	int64_t stopped, back, ready_ms = -1;
	int st;

	stack_up(2, 0, NULL);
	G2 = fs_gateway_start(redis_server_port(R), "snapshot_max_age = 2s\n");
	cr_assert(G2, "second gateway did not start");
	http_client_tls(G2->ca_file, NULL, NULL);
	cr_assert_eq(fs_gateway_wait_ready(G2, 10000), 0, "second gateway not ready");
	cr_assert(servers_registered(2, 5000));
	proc_sleep_ms(REFRESH_WAIT_MS);

	uuid_next(id);
	fill(body, sizeof(body), 1);
	cr_assert_eq(job_put(G, "alice", id, body, sizeof(body), loc, sizeof(loc)), 201);
	cr_assert_eq(job_status(G, "alice", loc, state, sizeof(state), &seq_before), 200);

	st = proc_stop(redis_server_pid(R), 5000);
	stopped = mono_ms();
	cr_assert(st != -1 && WIFEXITED(st), "redis-server did not stop");
	redisFree(RC);
	RC = NULL;

	/* within snapshot_max_age both gateways are ready */
	cr_assert_eq(gw_status_only(G2, "/readyz"), 200,
		     "G2 /readyz %" PRId64 " ms into the outage", mono_ms() - stopped);
	cr_assert_eq(gw_status_only(G, "/readyz"), 200);
	/* creations go on from the snapshot; the servers work without Redis */
	uuid_next(id);
	cr_assert_eq(job_put(G, "alice", id, body, sizeof(body), loc2, sizeof(loc2)), 201);
	uuid_next(id);
	cr_assert_eq(job_create(G, "alice", id, sizeof(body), loc2, sizeof(loc2), NULL), 201);
	cr_assert_eq(job_patch(G, "alice", loc2, 0, body, 1000), 204);
	cr_assert_eq(job_patch(G, "alice", loc2, 1000, body + 1000, sizeof(body) - 1000), 204);
	cr_assert_eq(job_status(G, "alice", loc2, state, sizeof(state), &seq_during), 200);
	cr_assert_str_eq(state, "committed");
	cr_assert_gt(seq_during, seq_before, "sequence %" PRIu64 " after %" PRIu64, seq_during,
		     seq_before);
	cr_assert_eq(gw_status_only(G, "/readyz"), 200);

	/* past G2's snapshot_max_age (its last good read was at most a refresh before the stop) */
	proc_sleep_ms(stopped + 2500 - mono_ms());
	uuid_next(id);
	cr_assert_eq(job_create(G2, "alice", id, 10, loc2, sizeof(loc2), &r), 503,
		     "G2 creation %" PRId64 " ms into the outage: %s", mono_ms() - stopped, r.body);
	problem_slug(&r, slug, sizeof(slug));
	cr_assert_str_eq(slug, "no-server-available", "%s", r.body);
	cr_assert(http_reply_header(&r, "Retry-After", ra, sizeof(ra)) && atoi(ra) > 0);
	http_reply_free(&r);
	cr_assert_eq(gw_status_only(G2, "/readyz"), 503);
	cr_assert_eq(gw_status_only(G, "/readyz"), 200, "G's snapshot is good for 60 s");

	/* Redis comes back empty: servers re-register, G2 recovers */
	cr_assert_eq(redis_server_restart(R), 0, "redis-server did not come back");
	back = mono_ms();
	for (int i = 0; i < 200 && ready_ms < 0; i++) { /* 200 x 50 ms = 10 s */
		if (gw_status_only(G2, "/readyz") == 200)
			ready_ms = mono_ms() - back;
		else
			proc_sleep_ms(50);
	}
	cr_assert_geq(ready_ms, 0, "G2 not ready 10 s after Redis came back");
	cr_log_info("redis outage: G2 ready %" PRId64 " ms after Redis came back", ready_ms);
	cr_assert(servers_registered(2, 5000), "servers did not re-register");
	/*
	 * /readyz answered for one worker; each worker has its own Redis connection (retried
	 * every 500 ms) and snapshot, and one may have read the pool before the servers were
	 * back. Within a retry and a refresh every worker has the servers again.
	 */
	proc_sleep_ms(500 + REFRESH_WAIT_MS);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(gw_status_only(G2, "/readyz"), 200, "G2 /readyz after recovery");

	uuid_next(id);
	cr_assert_eq(job_put(G2, "alice", id, body, sizeof(body), loc2, sizeof(loc2)), 201);
	cr_assert_eq(job_status(G2, "alice", loc2, state, sizeof(state), &seq_after), 200);
	cr_assert_gt(seq_after, seq_during, "sequence %" PRIu64 " after %" PRIu64, seq_after,
		     seq_during);
	cr_assert_gt(seq_after, seq_before);
	uuid_next(id);
	cr_assert_eq(job_create(G2, "alice", id, 10, loc2, sizeof(loc2), NULL), 201);
	cr_assert_eq(job_patch(G2, "alice", loc2, 0, body, 10), 204);
	cr_assert_eq(gw_status_only(G, "/readyz"), 200);
	gateway_exits_cleanly(G2);
	gateway_exits_cleanly(G);
}

/* ---- 3. load, not round robin -------------------------------------------------------------- */

/*
 * Loads 90/100, 50/100 and 10/100, all fresh and with equal free_bytes. Power of two choices
 * draws two distinct servers uniformly, so each of the three pairs comes up a third of the time,
 * and the less loaded of the pair wins:
 *   {dc1, dc2} -> dc2, {dc1, dc3} -> dc3, {dc2, dc3} -> dc3.
 * dc1 never wins (0 %), dc2 wins a third (~33 %), dc3 two thirds (~67 %). Round robin would give
 * a third each. Creations without a body are not uploads in progress, so the gateway adds
 * nothing to the announced loads, and the servers' 60 s heartbeat does not rewrite them.
 * With SPREAD_CREATIONS = 120, dc3 ~ Binomial(120, 2/3): mean 80, sd 5.2; dc3 > dc2 (dc3 > 60)
 * fails with a fair p2c only about once in 10^4 runs (the brief's 60 creations: 1 in 200).
 */
Test(gateway_pool, spreads_by_load_not_round_robin, .fini = stack_down, .timeout = 120)
{
	static const unsigned active[SERVERS_MAX] = {90, 50, 10};
	char loc[160], sid[40], id[37];
	int count[SERVERS_MAX] = {0};
	int64_t t0;

	stack_up(3, 1, "pool_stale = 10m\n");
	cr_assert(servers_registered(3, 5000));
	for (int i = 0; i < SERVERS_MAX; i++)
		announce(S[i], active[i], 100, FREE_EQUAL);
	proc_sleep_ms(REFRESH_WAIT_MS);
	t0 = mono_ms();
	for (int i = 0; i < SPREAD_CREATIONS; i++) {
		int k;

		uuid_next(id);
		cr_assert_eq(job_create(G, "alice", id, 100, loc, sizeof(loc), NULL), 201,
			     "creation %d", i);
		location_server(loc, sid, sizeof(sid));
		for (k = 0; k < SERVERS_MAX && strcmp(sid, S[k]->id); k++)
			;
		cr_assert_lt(k, SERVERS_MAX, "unknown server in %s", loc);
		count[k]++;
	}
	cr_log_info("spread of %d creations (%" PRId64 " ms): dc1 %d, dc2 %d, dc3 %d",
		    SPREAD_CREATIONS, mono_ms() - t0, count[0], count[1], count[2]);
	fprintf(stderr, "gateway_pool: spread of %d creations: dc1 %d, dc2 %d, dc3 %d\n",
		SPREAD_CREATIONS, count[0], count[1], count[2]);
	cr_assert_eq(count[0], 0, "the most loaded server got %d jobs", count[0]);
	cr_assert_gt(count[2], count[1], "dc3 %d vs dc2 %d", count[2], count[1]);
	cr_assert_geq(count[2], SPREAD_CREATIONS / 2, "dc3 got %d of %d", count[2],
		      SPREAD_CREATIONS);
	cr_assert_gt(count[1], 0, "dc2 should win its pair with dc1");
	gateway_exits_cleanly(G);
}

/* ---- 4. one client job id, one job ------------------------------------------------------- */

/* Makes the server other than sid the certain pick (load 0 against 99/100); returns it. */
static const struct fs_server *favour_other(const char *sid)
{
	const struct fs_server *other = strcmp(S[0]->id, sid) ? S[0] : S[1];
	const struct fs_server *same = other == S[0] ? S[1] : S[0];

	announce(same, 99, 100, FREE_EQUAL);
	announce(other, 0, 100, FREE_EQUAL);
	proc_sleep_ms(REFRESH_WAIT_MS);
	return other;
}

static void idem_expect(const char *user, const char *id, const char *loc)
{
	char oh[OWNER_HASH_LEN + 1], key[RKEY_MAX + 1];
	redisReply *r = NULL;

	cr_assert_eq(owner_hash(user, strlen(user), oh, sizeof(oh)), PROTO_OK);
	cr_assert_eq(rkey_idem(oh, id, key, sizeof(key)), PROTO_OK);
	/* the gateway's final SET is fire-and-forget: allow it a moment */
	for (int i = 0; i < 40; i++) {
		freeReplyObject(r);
		r = rcmd("GET %s", key);
		if (r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, loc + 9))
			break;
		proc_sleep_ms(50);
	}
	cr_assert(r && r->type == REDIS_REPLY_STRING, "%s missing", key);
	cr_assert_str_eq(r->str, loc + 9, "%s", key);
	cr_assert_gt(rint_cmd("PTTL", key), 0, "%s without a TTL", key);
	freeReplyObject(r);
}

/* The "server-id.server-job-id" part of a Location: the job itself, whoever owns it. */
static void location_job(const char *loc, char *job, size_t cap)
{
	const char *p = loc + 9, *last = strrchr(p, '.');

	cr_assert(last && (size_t)(last - p) < cap, "Location %s", loc);
	memcpy(job, p, (size_t)(last - p));
	job[last - p] = '\0';
}

Test(gateway_pool, same_client_job_id_is_one_job, .fini = stack_down, .timeout = 120)
{
	static char body[20000];
	char id[37], id2[37], probe[37];
	char loc1[160], loc2[160], loc3[160], loc4[160], loc5[160], loc6[160], locp[160];
	char sid[40], job_a[120], job_b[120];
	const struct fs_server *other;

	stack_up(2, 1, "pool_stale = 10m\n");
	cr_assert(servers_registered(2, 5000));
	announce(S[0], 0, 100, FREE_EQUAL);
	announce(S[1], 0, 100, FREE_EQUAL);
	proc_sleep_ms(REFRESH_WAIT_MS);
	fill(body, sizeof(body), 7);

	/* PUT twice: the second one would be placed on the other server, the record says no */
	uuid_next(id);
	cr_assert_eq(job_put(G, "alice", id, body, sizeof(body), loc1, sizeof(loc1)), 201);
	location_server(loc1, sid, sizeof(sid));
	other = favour_other(sid);
	uuid_next(probe);
	cr_assert_eq(job_put(G, "alice", probe, body, 10, locp, sizeof(locp)), 201);
	location_server(locp, sid, sizeof(sid));
	cr_assert_str_eq(sid, other->id, "the gateway should now pick %s (got %s)", other->id,
			 locp);
	cr_assert_eq(job_put(G, "alice", id, body, sizeof(body), loc2, sizeof(loc2)), 200);
	cr_assert_str_eq(loc2, loc1);
	idem_expect("alice", id, loc1);

	/* POST twice: the same Location, the upload still receiving */
	uuid_next(id2);
	cr_assert_eq(job_create(G, "alice", id2, 100, loc3, sizeof(loc3), NULL), 201);
	location_server(loc3, sid, sizeof(sid));
	favour_other(sid);
	cr_assert_eq(job_create(G, "alice", id2, 100, loc4, sizeof(loc4), NULL), 201);
	cr_assert_str_eq(loc4, loc3);
	idem_expect("alice", id2, loc3);

	/* another user with the same client job ids: other jobs */
	cr_assert_eq(job_put(G, "bob", id, body, sizeof(body), loc5, sizeof(loc5)), 201);
	location_job(loc1, job_a, sizeof(job_a));
	location_job(loc5, job_b, sizeof(job_b));
	cr_assert_str_neq(job_b, job_a, "bob's PUT got alice's job");
	cr_assert_eq(job_create(G, "bob", id2, 100, loc6, sizeof(loc6), NULL), 201);
	location_job(loc3, job_a, sizeof(job_a));
	location_job(loc6, job_b, sizeof(job_b));
	cr_assert_str_neq(job_b, job_a, "bob's POST got alice's upload");
	idem_expect("bob", id, loc5);
	idem_expect("bob", id2, loc6);
	idem_expect("alice", id, loc1);
	gateway_exits_cleanly(G);
}
