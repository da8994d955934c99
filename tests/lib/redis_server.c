/* redis_server: a real redis-server (or replica, or sentinel) for one test, on loopback. */
#include "tests/lib/redis_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "tests/lib/proc.h"

struct redis_server {
	pid_t pid;
	int port;
	char *dir;
	int master_port;  /* a replica of 127.0.0.1:master_port; 0: a master */
	int sentinel;     /* redis-sentinel, on dir/sentinel.conf */
};

/* One command on a fresh connection with a 200 ms timeout; NULL when it did not answer. */
static redisReply *command(int port, const char *fmt, const char *arg)
{
	struct timeval tv = {0, 200000};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	redisReply *reply = NULL;

	if (!c)
		return NULL;
	if (!c->err && redisSetTimeout(c, tv) == REDIS_OK)
		reply = redisCommand(c, fmt, arg);
	redisFree(c);
	return reply;
}

static int answers_ping(int port)
{
	redisReply *reply = command(port, "PING", NULL);
	int ok = reply && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0;

	freeReplyObject(reply);
	return ok;
}

/* Runs the server on r->port in r->dir and waits for PING. 0, or -1 with r->pid -1. */
static int launch(struct redis_server *r)
{
	char port[16], master[16], log[4096], conf[4096];
	char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1",
			"--dir", r->dir, "--save", "", "--appendonly", "no",
			"--protected-mode", "yes", "--daemonize", "no",
			r->master_port ? "--replicaof" : NULL, "127.0.0.1", master, NULL};
	char *sentinel_argv[] = {"redis-sentinel", conf, NULL};

	snprintf(port, sizeof(port), "%d", r->port);
	snprintf(master, sizeof(master), "%d", r->master_port);
	snprintf(log, sizeof(log), "%s/redis.log", r->dir);
	snprintf(conf, sizeof(conf), "%s/sentinel.conf", r->dir);
	r->pid = proc_start(r->sentinel ? sentinel_argv : argv, log);
	if (r->pid == -1)
		return -1;
	for (int i = 0; i < 200; i++) { /* 200 x 50 ms = 10 s */
		struct timespec ts = {0, 50000000L};

		if (!proc_running(r->pid, NULL)) {
			r->pid = -1; /* most often: the port was taken meanwhile */
			return -1;
		}
		if (answers_ping(r->port))
			return 0;
		nanosleep(&ts, NULL);
	}
	proc_stop(r->pid, 1000);
	r->pid = -1;
	return -1;
}

/*
 * Starts a master (master_port 0), a replica or, with the "sentinel ..." lines of its config,
 * a sentinel.
 */
static struct redis_server *start(int master_port, const char *sentinel_conf)
{
	struct redis_server *r = calloc(1, sizeof(*r));
	char conf[8192];

	if (!r)
		return NULL;
	r->pid = -1;
	r->master_port = master_port;
	r->sentinel = sentinel_conf != NULL;
	r->dir = proc_tempdir(r->sentinel ? "sentinel" : "redis");
	if (!r->dir)
		goto fail;
	for (int attempt = 0; attempt < 5; attempt++) {
		r->port = proc_free_port();
		if (r->port == -1)
			continue;
		/* sentinel rewrites its file (ids, peers, replicas): a fresh one each attempt */
		if (sentinel_conf) {
			snprintf(conf, sizeof(conf),
				 "port %d\ndir %s\nbind 127.0.0.1\ndaemonize no\n"
				 "protected-mode no\n%s", r->port, r->dir, sentinel_conf);
			if (proc_write_file(r->dir, "sentinel.conf", conf))
				goto fail;
		}
		if (launch(r) == 0)
			return r;
	}
	fprintf(stderr, "redis_server_start: %s did not come up; see %s/redis.log\n",
		r->sentinel ? "redis-sentinel" : "redis-server", r->dir);
fail:
	redis_server_stop(r);
	return NULL;
}

struct redis_server *redis_server_start(void)
{
	return start(0, NULL);
}

/* The replica's link to its master is up: it has the master's data and follows it. */
static int replica_linked(int port)
{
	redisReply *reply = command(port, "INFO replication", NULL);
	int ok = reply && reply->type == REDIS_REPLY_STRING &&
		 strstr(reply->str, "master_link_status:up");

	freeReplyObject(reply);
	return ok;
}

struct redis_server *redis_replica_start(const struct redis_server *master)
{
	struct redis_server *r = start(master->port, NULL);

	for (int i = 0; r && i < 200; i++) { /* 200 x 50 ms = 10 s */
		struct timespec ts = {0, 50000000L};

		if (replica_linked(r->port))
			return r;
		nanosleep(&ts, NULL);
	}
	if (r)
		fprintf(stderr, "redis_replica_start: no link to the master within 10 s; see "
			"%s/redis.log\n", r->dir);
	redis_server_stop(r);
	return NULL;
}

struct redis_server *redis_sentinel_start(const char *master_name, int master_port, int quorum,
					  int down_after_ms, int failover_timeout_ms)
{
	char tmpl[2048];

	if (!master_name || !master_name[0] || strpbrk(master_name, " \r\n")) {
		fprintf(stderr, "redis_sentinel_start: bad master name\n");
		return NULL;
	}
	snprintf(tmpl, sizeof(tmpl),
		 "sentinel monitor %s 127.0.0.1 %d %d\n"
		 "sentinel down-after-milliseconds %s %d\n"
		 "sentinel failover-timeout %s %d\n",
		 master_name, master_port, quorum, master_name, down_after_ms, master_name,
		 failover_timeout_ms);
	return start(0, tmpl);
}

int redis_sentinel_master_port(const struct redis_server *s, const char *master_name)
{
	redisReply *reply = command(s->port, "SENTINEL get-master-addr-by-name %s", master_name);
	int port = -1;

	if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
	    reply->element[1]->type == REDIS_REPLY_STRING)
		port = atoi(reply->element[1]->str);
	freeReplyObject(reply);
	return port;
}

int redis_server_port(const struct redis_server *r)
{
	return r->port;
}

pid_t redis_server_pid(const struct redis_server *r)
{
	return r->pid;
}

const char *redis_server_dir(const struct redis_server *r)
{
	return r->dir;
}

int redis_server_restart(struct redis_server *r)
{
	/* a process still running is stopped first; one already stopped was reaped by then */
	if (r->pid > 0 && proc_running(r->pid, NULL))
		proc_stop(r->pid, 5000);
	r->pid = -1;
	/* the port was ours a moment ago; retry a little in case the old socket lingers */
	for (int attempt = 0; attempt < 5; attempt++) {
		struct timespec ts = {0, 200000000L};

		if (launch(r) == 0)
			return 0;
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "redis_server_restart: %s did not come back on port %d; see "
		"%s/redis.log\n", r->sentinel ? "redis-sentinel" : "redis-server", r->port, r->dir);
	return -1;
}

int redis_server_stop(struct redis_server *r)
{
	int st = -1;

	if (!r)
		return 0;
	if (r->pid > 0)
		st = proc_stop(r->pid, 5000);
	if (r->dir) {
		proc_rmtree(r->dir);
		free(r->dir);
	}
	free(r);
	return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}
