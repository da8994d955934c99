/* fs-server and fs-gateway find Redis through real sentinels and follow a real failover. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "proto/owner.h"
#include "proto/rkey.h"
#include "tests/lib/fs_gateway.h"
#include "tests/lib/fs_server.h"
#include "tests/lib/http_client.h"
#include "tests/lib/proc.h"
#include "tests/lib/redis_server.h"

#define MASTER_NAME "fsg-test"
#define SENTINELS 3
#define QUORUM 2
#define DOWN_AFTER_MS 1000
#define FAILOVER_TIMEOUT_MS 2000
#define USER "alice"

static struct redis_server *M, *REPLICA, *SENT[SENTINELS];
static struct fs_server *S;
static struct fs_gateway *G;

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One command on a fresh connection to 127.0.0.1:port; NULL when it did not answer. */
static redisReply *rcmd(int port, const char *fmt, ...)
{
	struct timeval tv = {1, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	redisReply *reply = NULL;
	va_list ap;

	if (c && !c->err && redisSetTimeout(c, tv) == REDIS_OK) {
		va_start(ap, fmt);
		reply = redisvCommand(c, fmt, ap);
		va_end(ap);
	}
	redisFree(c);
	return reply;
}

/* The number of elements of an array reply, or -1. */
static long array_len(redisReply *r)
{
	long n = r && r->type == REDIS_REPLY_ARRAY ? (long)r->elements : -1;

	freeReplyObject(r);
	return n;
}

/* Every sentinel knows the replica and the other sentinels: a failover can be agreed on. */
static int sentinels_settled(void)
{
	for (int i = 0; i < SENTINELS; i++) {
		int p = redis_server_port(SENT[i]);

		if (array_len(rcmd(p, "SENTINEL replicas %s", MASTER_NAME)) < 1 ||
		    array_len(rcmd(p, "SENTINEL sentinels %s", MASTER_NAME)) < SENTINELS - 1)
			return 0;
	}
	return 1;
}

static void stack_up(void)
{
	char sentinels[256] = "", extra[512];
	int unused = proc_free_port(); /* redis_port: sentinels configured, so never used */

	signal(SIGPIPE, SIG_IGN);
	M = redis_server_start();
	cr_assert(M, "redis-server did not start");
	REPLICA = redis_replica_start(M);
	cr_assert(REPLICA, "the replica did not start");
	for (int i = 0; i < SENTINELS; i++) {
		SENT[i] = redis_sentinel_start(MASTER_NAME, redis_server_port(M), QUORUM,
					       DOWN_AFTER_MS, FAILOVER_TIMEOUT_MS);
		cr_assert(SENT[i], "sentinel %d did not start", i);
		snprintf(sentinels + strlen(sentinels), sizeof(sentinels) - strlen(sentinels),
			 "%s127.0.0.1:%d", i ? "," : "", redis_server_port(SENT[i]));
	}
	snprintf(extra, sizeof(extra), "redis_sentinels = %s\nredis_master_name = %s\n",
		 sentinels, MASTER_NAME);
	S = fs_server_start_id(unused, "dc1", extra);
	cr_assert(S, "fs-server did not start");
	G = fs_gateway_start(unused, extra);
	cr_assert(G, "fs-gateway did not start");
	http_client_tls(G->ca_file, NULL, NULL);
	cr_assert_eq(fs_gateway_wait_ready(G, 10000), 0, "gateway not ready through the sentinels");
}

static void stack_down(void)
{
	fs_gateway_free(G);
	fs_server_free(S);
	for (int i = 0; i < SENTINELS; i++)
		redis_server_stop(SENT[i]);
	redis_server_stop(REPLICA);
	redis_server_stop(M);
}

/* PUT a small job as USER through the gateway; returns the status (201: committed). */
static long job_put(const char *id)
{
	static const char body[] = "%PDF-1.4 sentinel test\n";
	const char *hdrs[3] = {NULL, "Content-Type: application/pdf", NULL};
	struct http_reply r = {0};
	char url[160];
	char *auth = fs_gateway_auth(G, USER);
	long st;

	cr_assert(auth);
	hdrs[0] = auth;
	snprintf(url, sizeof(url), "%s/v1/jobs/%s", G->url, id);
	cr_assert_eq(http_request("PUT", url, hdrs, body, sizeof(body) - 1, &r), 0,
		     "PUT: no answer from the gateway");
	st = r.status;
	if (st == 201)
		cr_assert(strstr(r.body, "\"state\":\"committed\""), "PUT answer %s", r.body);
	http_reply_free(&r);
	free(auth);
	return st;
}

/* The gateway's client-job-id record of id is in the Redis at port (waits up to wait_ms). */
static int idem_in(int port, const char *id, int wait_ms)
{
	char oh[OWNER_HASH_LEN + 1], key[RKEY_MAX + 1];

	cr_assert_eq(owner_hash(USER, strlen(USER), oh, sizeof(oh)), PROTO_OK);
	cr_assert_eq(rkey_idem(oh, id, key, sizeof(key)), PROTO_OK);
	for (int waited = 0; waited <= wait_ms; waited += 50) {
		redisReply *r = rcmd(port, "EXISTS %s", key);
		int yes = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;

		freeReplyObject(r);
		if (yes)
			return 1;
		proc_sleep_ms(50);
	}
	return 0;
}

/* dc1's pool entry in the Redis at port, with a heartbeat at or after since (Unix ms). */
static int pool_entry_since(int port, int64_t since)
{
	char key[RKEY_MAX + 1];
	redisReply *score = rcmd(port, "ZSCORE %s dc1", RKEY_POOL), *exists;
	int ok = score && score->type == REDIS_REPLY_STRING && atoll(score->str) >= since;

	freeReplyObject(score);
	cr_assert_eq(rkey_server("dc1", key, sizeof(key)), PROTO_OK);
	exists = rcmd(port, "EXISTS %s", key);
	ok = ok && exists && exists->type == REDIS_REPLY_INTEGER && exists->integer == 1;
	freeReplyObject(exists);
	return ok;
}

static int is_master(int port)
{
	redisReply *r = rcmd(port, "ROLE");
	int yes = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
		  r->element[0]->type == REDIS_REPLY_STRING &&
		  !strcmp(r->element[0]->str, "master");

	freeReplyObject(r);
	return yes;
}

/* How many sentinels name port as the master now. */
static int sentinels_naming(int port)
{
	int n = 0;

	for (int i = 0; i < SENTINELS; i++)
		n += redis_sentinel_master_port(SENT[i], MASTER_NAME) == port;
	return n;
}

static void assert_exits_cleanly(int st, const char *who)
{
	cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "%s did not exit cleanly (wait status %d)", who, st);
}

Test(redis_sentinel, relays_through_a_failover, .init = stack_up, .fini = stack_down,
     .timeout = 90)
{
	const char *job1 = "5e1a0000-0000-4000-8000-000000000001";
	char job2[37];
	int old_port = redis_server_port(M), new_port = redis_server_port(REPLICA);
	int64_t until, t_kill, t_kill_unix, t_promoted, t_pool, t_relay;
	int tries = 0, st = 0;
	char *log;

	/* before: everything at the first master, which every sentinel names */
	cr_assert_eq(sentinels_naming(old_port), SENTINELS);
	cr_assert_eq(job_put(job1), 201, "first job not relayed");
	cr_assert(idem_in(old_port, job1, 2000), "the gateway did not write to the master");
	cr_assert(pool_entry_since(old_port, 0), "fs-server is not in the master's pool");
	until = mono_ms() + 15000;
	while (!sentinels_settled() && mono_ms() < until)
		proc_sleep_ms(100);
	cr_assert(sentinels_settled(), "the sentinels did not find the replica and each other");

	/* the master dies */
	t_kill = mono_ms();
	t_kill_unix = unix_ms();
	cr_assert_eq(kill(redis_server_pid(M), SIGKILL), 0); /* reaped by redis_server_stop */

	/* the sentinels agree, promote the replica and name it */
	until = t_kill + 20000;
	while ((sentinels_naming(new_port) < SENTINELS || !is_master(new_port)) &&
	       mono_ms() < until)
		proc_sleep_ms(50);
	t_promoted = mono_ms();
	cr_assert_eq(sentinels_naming(new_port), SENTINELS, "no failover within 20 s");
	cr_assert(is_master(new_port), "the replica was not promoted");

	/* fs-server asks the sentinels again and announces itself to the new master */
	until = t_promoted + 10000;
	while (!pool_entry_since(new_port, t_kill_unix + 1) && mono_ms() < until)
		proc_sleep_ms(50);
	t_pool = mono_ms();
	cr_assert(pool_entry_since(new_port, t_kill_unix + 1),
		  "no fresh pool entry of dc1 in the new master within 10 s");

	/*
	 * And the gateway relays again, writing to the new master. Its pool snapshot may relay a
	 * job before it has found the new master (without the client-job-id record): try until one
	 * was relayed with its record in the new master.
	 */
	until = t_pool + 10000;
	for (;;) {
		snprintf(job2, sizeof(job2), "5e1a0000-0000-4000-8000-%012d", 2 + tries);
		st = (int)job_put(job2);
		if ((st == 201 && idem_in(new_port, job2, 200)) || mono_ms() >= until)
			break;
		tries++;
		proc_sleep_ms(100);
	}
	t_relay = mono_ms();
	cr_assert_eq(st, 201, "no job relayed within 10 s of the new pool entry (last %d)", st);
	cr_assert(idem_in(new_port, job2, 0), "the gateway did not write to the new master");
	fprintf(stderr, "redis_sentinel: master killed; sentinels named the new master after %"
		PRId64 " ms, fs-server's entry there after %" PRId64 " ms, a job relayed after %"
		PRId64 " ms (after %d tries)\n", t_promoted - t_kill, t_pool - t_kill,
		t_relay - t_kill, tries);

	log = fs_server_log(S);
	cr_assert(strstr(log, "\"redis.master\""), "fs-server did not log the new master");
	free(log);
	log = fs_gateway_log(G);
	cr_assert(strstr(log, "\"rasync.sentinel\""), "fs-gateway did not log asking a sentinel");
	free(log);
	assert_exits_cleanly(fs_gateway_stop(G, 10000), "fs-gateway");
	assert_exits_cleanly(fs_server_stop(S, 10000), "fs-server");
}
