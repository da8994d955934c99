/* redis_server: a real redis-server for one test, on a free loopback port in a temp dir. */
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
};

static int answers_ping(int port)
{
	struct timeval tv = {0, 200000};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	redisReply *reply;
	int ok = 0;

	if (!c)
		return 0;
	if (!c->err && redisSetTimeout(c, tv) == REDIS_OK) {
		reply = redisCommand(c, "PING");
		ok = reply && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0;
		freeReplyObject(reply);
	}
	redisFree(c);
	return ok;
}

/* Runs redis-server on r->port in r->dir and waits for PING. 0, or -1 with r->pid -1. */
static int launch(struct redis_server *r)
{
	char port[16], log[4096];
	char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1",
			"--dir", r->dir, "--save", "", "--appendonly", "no",
			"--protected-mode", "yes", "--daemonize", "no", NULL};

	snprintf(port, sizeof(port), "%d", r->port);
	snprintf(log, sizeof(log), "%s/redis.log", r->dir);
	r->pid = proc_start(argv, log);
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

struct redis_server *redis_server_start(void)
{
	struct redis_server *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->pid = -1;
	r->dir = proc_tempdir("redis");
	if (!r->dir)
		goto fail;
	for (int attempt = 0; attempt < 5; attempt++) {
		r->port = proc_free_port();
		if (r->port != -1 && launch(r) == 0)
			return r;
	}
	fprintf(stderr, "redis_server_start: redis-server did not come up; see %s/redis.log\n",
		r->dir);
fail:
	redis_server_stop(r);
	return NULL;
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
	fprintf(stderr, "redis_server_restart: redis-server did not come back on port %d; see "
		"%s/redis.log\n", r->port, r->dir);
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
