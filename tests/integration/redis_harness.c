/* Tests the shared redis-server helper: it starts a real server, and it always stops it. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "tests/lib/proc.h"
#include "tests/lib/redis_server.h"

static redisReply *command(int port, const char *cmd)
{
	struct timeval tv = {1, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	redisReply *reply = NULL;

	if (c && !c->err)
		reply = redisCommand(c, cmd);
	redisFree(c);
	return reply;
}

static int answers(int port)
{
	redisReply *reply = command(port, "PING");
	int ok = reply && reply->type == REDIS_REPLY_STATUS;

	freeReplyObject(reply);
	return ok;
}

Test(redis_harness, starts_on_loopback_and_stops_cleanly)
{
	struct redis_server *r = redis_server_start();
	struct stat st;
	char *dir;
	int port;

	cr_assert_not_null(r);
	port = redis_server_port(r);
	cr_assert_gt(port, 0);
	cr_assert(answers(port));
	redisReply *reply = command(port, "CONFIG GET bind");
	cr_assert_not_null(reply);
	cr_assert_eq(reply->type, REDIS_REPLY_ARRAY);
	cr_assert_eq(reply->elements, 2);
	cr_assert_str_eq(reply->element[1]->str, "127.0.0.1");
	freeReplyObject(reply);
	dir = strdup(redis_server_dir(r));
	cr_assert_eq(stat(dir, &st), 0);
	cr_assert_eq(redis_server_stop(r), 0, "redis-server should exit 0 on SIGTERM");
	cr_assert_eq(stat(dir, &st), -1, "temporary directory should be removed");
	cr_assert_not(answers(port));
	free(dir);
}

Test(redis_harness, two_servers_get_distinct_ports)
{
	struct redis_server *a = redis_server_start(), *b = redis_server_start();

	cr_assert_not_null(a);
	cr_assert_not_null(b);
	cr_assert_neq(redis_server_port(a), redis_server_port(b));
	cr_assert(answers(redis_server_port(a)));
	cr_assert(answers(redis_server_port(b)));
	redis_server_stop(a);
	redis_server_stop(b);
}

Test(redis_harness, server_dies_with_a_crashed_test)
{
	int fds[2], port = 0, st;
	pid_t child;

	cr_assert_eq(pipe(fds), 0);
	child = fork();
	cr_assert_neq(child, -1);
	if (child == 0) {
		struct redis_server *r = redis_server_start();
		int p = r ? redis_server_port(r) : -1;

		if (write(fds[1], &p, sizeof(p)) != sizeof(p))
			_exit(1);
		pause(); /* killed below without any chance to clean up */
		_exit(0);
	}
	close(fds[1]);
	cr_assert_eq(read(fds[0], &port, sizeof(port)), (ssize_t)sizeof(port));
	close(fds[0]);
	cr_assert_gt(port, 0);
	cr_assert(answers(port));
	kill(child, SIGKILL);
	cr_assert_eq(waitpid(child, &st, 0), child);
	int gone = 0;
	for (int i = 0; i < 100 && !gone; i++) { /* up to 5 s */
		struct timespec ts = {0, 50000000L};

		gone = !answers(port);
		if (!gone)
			nanosleep(&ts, NULL);
	}
	cr_assert(gone, "redis-server must not outlive the test that started it");
}

Test(redis_harness, proc_stop_escalates_to_sigkill)
{
	/* a process that ignores SIGTERM, once it says so */
	char *argv[] = {"sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done", NULL};
	char *dir = proc_tempdir("proc"), log[4096], buf[16] = "";
	pid_t pid;
	int st;

	cr_assert_not_null(dir);
	snprintf(log, sizeof(log), "%s/out", dir);
	pid = proc_start(argv, log);
	cr_assert_gt(pid, 0);
	for (int i = 0; i < 200 && strncmp(buf, "ready", 5) != 0; i++) { /* up to 10 s */
		struct timespec ts = {0, 50000000L};
		FILE *f = fopen(log, "r");

		if (f) {
			if (!fgets(buf, sizeof(buf), f))
				buf[0] = '\0';
			fclose(f);
		}
		nanosleep(&ts, NULL);
	}
	cr_assert_str_eq(buf, "ready\n");
	st = proc_stop(pid, 300);
	cr_assert(WIFSIGNALED(st));
	cr_assert_eq(WTERMSIG(st), SIGKILL);
	cr_assert_eq(proc_rmtree(dir), 0);
	free(dir);
}
