/* Tests async Redis on the loop (gateway/rasync.c) against a real redis-server. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "common/clock.h"
#include "common/log.h"
#include "gateway/loop.h"
#include "gateway/rasync.h"
#include "tests/lib/proc.h"
#include "tests/lib/redis_server.h"

static struct loop *l;
static struct redis_server *srv;
static struct rasync *ra;
static int port;
/* a replica and a sentinel some tests start, stopped in teardown */
static struct redis_server *replica, *sentinel;

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN); /* hiredis writes with write(2) */
	log_init(LOG_ERROR, 2);
	srv = redis_server_start();
	cr_assert_not_null(srv);
	port = redis_server_port(srv);
	l = loop_new();
	cr_assert_not_null(l);
}

static void teardown(void)
{
	pid_t pid = srv ? redis_server_pid(srv) : -1;

	rasync_free(ra);
	loop_free(l);
	if (pid > 0)
		kill(pid, SIGCONT); /* a test that stopped it may have failed before resuming it */
	redis_server_stop(sentinel);
	redis_server_stop(replica);
	redis_server_stop(srv);
}

TestSuite(rasync, .init = setup, .fini = teardown, .timeout = 60);

/* What one command's callback saw. */
struct result {
	int calls;
	int type;
	long long integer;
	char str[128];
	const char *err;
	int64_t at_ms;
};

static void on_result(void *arg, redisReply *reply, const char *err)
{
	struct result *res = arg;

	res->calls++;
	res->at_ms = clock_mono_ms();
	res->err = err;
	res->type = reply ? reply->type : -1;
	if (reply && reply->type == REDIS_REPLY_INTEGER)
		res->integer = reply->integer;
	if (reply && reply->str) {
		size_t n = reply->len < sizeof(res->str) - 1 ? reply->len : sizeof(res->str) - 1;

		memcpy(res->str, reply->str, n);
		res->str[n] = '\0';
	}
}

static int is_connected(void *arg)
{
	return rasync_connected(arg);
}

static int is_down(void *arg)
{
	return !rasync_connected(arg);
}

static int is_called(void *arg)
{
	return ((struct result *)arg)->calls > 0;
}

/* Turns the loop in short waits until cond(arg) or limit_ms passed. Returns cond's last value. */
static int run_until(int (*cond)(void *), void *arg, int64_t limit_ms)
{
	int64_t end = clock_mono_ms() + limit_ms;

	while (!cond(arg) && clock_mono_ms() < end)
		cr_assert_eq(loop_run_once(l, 10), 0);
	return cond(arg);
}

static void run_for(int64_t ms)
{
	int64_t end = clock_mono_ms() + ms;

	while (clock_mono_ms() < end)
		cr_assert_eq(loop_run_once(l, 10), 0);
}

static struct rasync *open_on(const char *host, int p, const char *password, int64_t timeout_ms,
			      int64_t retry_ms)
{
	struct rasync_config cfg = {
		.host = host,
		.port = p,
		.password = password,
		.timeout_ms = timeout_ms,
		.retry_ms = retry_ms,
	};

	return rasync_new(l, &cfg);
}

static void open_connected(const char *password, int64_t timeout_ms, int64_t retry_ms)
{
	ra = open_on("127.0.0.1", port, password, timeout_ms, retry_ms);
	cr_assert_not_null(ra);
	cr_assert(run_until(is_connected, ra, 2000), "not connected within 2 s");
}

static int send1(struct result *res, const char *a0, const char *a1, const char *a2)
{
	const char *argv[3] = {a0, a1, a2};
	int argc = a2 ? 3 : a1 ? 2 : 1;

	return rasync_command(ra, on_result, res, argc, argv, NULL);
}

/* A synchronous command straight to the server, for setting it up behind rasync's back. */
static void sync_command(const char *password, const char *fmt, const char *arg)
{
	struct timeval tv = {2, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	redisReply *reply;

	cr_assert(c && !c->err);
	if (password) {
		reply = redisCommand(c, "AUTH %s", password);
		cr_assert(reply && reply->type == REDIS_REPLY_STATUS);
		freeReplyObject(reply);
	}
	reply = redisCommand(c, fmt, arg);
	cr_assert(reply && reply->type != REDIS_REPLY_ERROR, "%s", reply ? reply->str : "no reply");
	freeReplyObject(reply);
	redisFree(c);
}

Test(rasync, set_get_round_trip)
{
	struct result set = {0}, get = {0};
	const char *argv[3] = {"SET", "k\r\n\0x", "v\0al"};
	size_t argvlen[3] = {3, 6, 4};

	open_connected(NULL, 1000, 100);
	cr_assert_eq(rasync_command(ra, on_result, &set, 3, argv, argvlen), 0);
	cr_assert_eq(set.calls, 0, "never called from inside rasync_command");
	argv[0] = "GET";
	cr_assert_eq(rasync_command(ra, on_result, &get, 2, argv, argvlen), 0);
	cr_assert(run_until(is_called, &get, 2000));
	cr_assert_eq(set.calls, 1);
	cr_assert_null(set.err);
	cr_assert_eq(set.type, REDIS_REPLY_STATUS);
	cr_assert_str_eq(set.str, "OK");
	cr_assert_eq(get.calls, 1);
	cr_assert_null(get.err);
	cr_assert_eq(get.type, REDIS_REPLY_STRING);
	cr_assert_eq(memcmp(get.str, "v\0al", 4), 0, "binary-safe value");
	run_for(50);
	cr_assert_eq(set.calls + get.calls, 2);
}

Test(rasync, error_reply_is_a_reply)
{
	struct result res = {0};

	open_connected(NULL, 1000, 100);
	cr_assert_eq(send1(&res, "NOSUCHCOMMAND", NULL, NULL), 0);
	cr_assert(run_until(is_called, &res, 2000));
	cr_assert_null(res.err);
	cr_assert_eq(res.type, REDIS_REPLY_ERROR);
	cr_assert(rasync_connected(ra), "an error reply keeps the connection");
}

#define PIPELINED 1000

static struct {
	int calls;
	int in_order;
	int errors;
} incr;

static void on_incr(void *arg, redisReply *reply, const char *err)
{
	long long want = (long long)(intptr_t)arg;

	incr.calls++;
	if (err || !reply || reply->type != REDIS_REPLY_INTEGER)
		incr.errors++;
	else if (reply->integer == want && want == incr.calls)
		incr.in_order++;
}

static int incr_done(void *arg)
{
	(void)arg;
	return incr.calls >= PIPELINED;
}

Test(rasync, pipelined_incrs_answered_in_order)
{
	const char *argv[2] = {"INCR", "counter"};

	open_connected(NULL, 2000, 100);
	for (intptr_t i = 1; i <= PIPELINED; i++)
		cr_assert_eq(rasync_command(ra, on_incr, (void *)i, 2, argv, NULL), 0);
	cr_assert(run_until(incr_done, NULL, 5000));
	run_for(50);
	cr_assert_eq(incr.calls, PIPELINED, "each called exactly once");
	cr_assert_eq(incr.errors, 0);
	cr_assert_eq(incr.in_order, PIPELINED);
}

/* A reply callback that sends the next command: chains of commands work from callbacks. */
struct chain {
	int left;
	int calls;
	const char *err;
};

static void on_chain(void *arg, redisReply *reply, const char *err)
{
	struct chain *c = arg;
	const char *argv[1] = {"PING"};

	c->calls++;
	if (err || !reply || reply->type != REDIS_REPLY_STATUS) {
		c->err = err ? err : "bad reply";
		return;
	}
	if (--c->left > 0)
		cr_assert_eq(rasync_command(ra, on_chain, c, 1, argv, NULL), 0);
}

static int chain_done(void *arg)
{
	struct chain *c = arg;

	return c->left == 0 || c->err;
}

Test(rasync, command_sent_from_a_reply_callback)
{
	struct chain c = {.left = 10};
	const char *argv[1] = {"PING"};

	open_connected(NULL, 1000, 100);
	cr_assert_eq(rasync_command(ra, on_chain, &c, 1, argv, NULL), 0);
	cr_assert(run_until(chain_done, &c, 2000));
	cr_assert_null(c.err);
	cr_assert_eq(c.calls, 10);
}

static int answers_ping(void *arg)
{
	struct result *res = arg;

	if (res->calls && !res->err && res->type == REDIS_REPLY_STATUS)
		return 1;
	if (res->calls || !res->at_ms) { /* failed, or not sent yet: (re)send when connected */
		memset(res, 0, sizeof(*res));
		if (rasync_connected(ra) && send1(res, "PING", NULL, NULL) == 0)
			res->at_ms = 1; /* sent */
	}
	return 0;
}

Test(rasync, command_to_a_stopped_server_times_out_once_then_reconnects)
{
	struct result res = {0}, ping = {0};
	const int64_t timeout = 200;
	pid_t pid = redis_server_pid(srv);
	int64_t t0;

	open_connected(NULL, timeout, 100);
	cr_assert_eq(kill(pid, SIGSTOP), 0);
	t0 = clock_mono_ms();
	cr_assert_eq(send1(&res, "SET", "k", "v"), 0);
	cr_assert(run_until(is_called, &res, 2000));
	cr_assert_str_eq(res.err, "timeout");
	cr_assert_eq(res.type, -1, "no reply with a timeout");
	cr_assert_geq(res.at_ms - t0, timeout);
	/* generous: CI runs this under sanitizers beside other tests on two cores */
	cr_assert_leq(res.at_ms - t0, timeout + 1000, "timed out after %lld ms",
		      (long long)(res.at_ms - t0));
	/* the suspect connection is dropped and made again while the server stays stopped */
	run_for(3 * timeout);
	cr_assert_eq(res.calls, 1, "called again after the timeout");
	cr_assert_eq(kill(pid, SIGCONT), 0);
	cr_assert(run_until(answers_ping, &ping, 3000), "no PONG within 3 s of SIGCONT");
	run_for(50);
	cr_assert_eq(res.calls, 1);
}

/*
 * A watcher that keeps the loop busy past a deadline, first letting a stopped server go on
 * (redis > 0) or issuing a command (issue != NULL).
 */
struct stall {
	int fd;
	pid_t redis;
	struct result *issue;
	int64_t busy_ms;
	int sent;
};

static void on_stall(void *arg, uint32_t events)
{
	struct stall *st = arg;
	char c;
	int64_t end;

	(void)events;
	cr_assert_eq(read(st->fd, &c, 1), 1);
	/* Redis answers while this callback still runs, after the turn's epoll_wait */
	if (st->redis > 0)
		cr_assert_eq(kill(st->redis, SIGCONT), 0);
	if (st->issue)
		st->sent = send1(st->issue, "SET", "k", "busy") == 0;
	end = clock_mono_ms() + st->busy_ms;
	while (clock_mono_ms() < end)
		usleep(1000);
}

Test(rasync, reply_that_arrived_during_a_busy_turn_is_not_a_timeout)
{
	struct result res = {0};
	const int64_t timeout = 200;
	struct stall st = {.redis = redis_server_pid(srv), .busy_ms = 2 * timeout};
	int fds[2];

	open_connected(NULL, timeout, 100);
	cr_assert_eq(pipe(fds), 0);
	st.fd = fds[0];
	cr_assert_eq(loop_fd_add(l, fds[0], EPOLLIN, on_stall, &st), 0);
	cr_assert_eq(kill(st.redis, SIGSTOP), 0);
	cr_assert_eq(send1(&res, "SET", "k", "v"), 0);
	run_for(20); /* the command goes out; the stopped server holds its answer */
	cr_assert_eq(res.calls, 0);
	/* one turn: the stall runs, the deadline passes in it, the reply is in the socket */
	cr_assert_eq(write(fds[1], "x", 1), 1);
	cr_assert(run_until(is_called, &res, 3000));
	cr_assert_null(res.err, "the busy turn was taken for a silent server: %s", res.err);
	cr_assert_str_eq(res.str, "OK");
	cr_assert(rasync_connected(ra), "the connection was dropped");
	run_for(3 * timeout);
	cr_assert_eq(res.calls, 1);
	cr_assert(rasync_connected(ra));
	loop_fd_del(l, fds[0]);
	close(fds[0]);
	close(fds[1]);
}

Test(rasync, deadline_starts_when_the_command_leaves)
{
	struct result res = {0};
	const int64_t timeout = 200;
	struct stall b = {.issue = &res, .busy_ms = 2 * timeout};
	int fds[2];

	open_connected(NULL, timeout, 100);
	cr_assert_eq(pipe(fds), 0);
	b.fd = fds[0];
	cr_assert_eq(loop_fd_add(l, fds[0], EPOLLIN, on_stall, &b), 0);
	/* issued inside a 400 ms callback: its turn's timers run before the command is sent */
	cr_assert_eq(write(fds[1], "x", 1), 1);
	cr_assert(run_until(is_called, &res, 3000));
	cr_assert(b.sent);
	cr_assert_null(res.err, "the command timed out before it was sent: %s", res.err);
	cr_assert_str_eq(res.str, "OK");
	cr_assert(rasync_connected(ra));
	loop_fd_del(l, fds[0]);
	close(fds[0]);
	close(fds[1]);
}

/* Redis busy in a script for about 300 ms, then answering 1. */
#define BUSY_300_MS                                                                        \
	"local s = redis.call('TIME') local t0 = s[1] * 1000000 + s[2] "                   \
	"repeat local n = redis.call('TIME') until n[1] * 1000000 + n[2] - t0 > 300000 "   \
	"return 1"

Test(rasync, late_reply_on_a_live_connection_keeps_the_connection)
{
	struct result id0 = {0}, first = {0}, second = {0}, id1 = {0};
	const char *busy[3] = {"EVAL", BUSY_300_MS, "0"};

	open_connected(NULL, 500, 100);
	cr_assert_eq(send1(&id0, "CLIENT", "ID", NULL), 0);
	cr_assert(run_until(is_called, &id0, 2000));
	cr_assert_null(id0.err);
	/*
	 * The first answers after ~300 ms. The second, sent 50 ms later, waits for Redis to
	 * finish the first (in its own read: Redis writes the first reply in between) and answers
	 * after ~600 ms, past its deadline at 550 ms.
	 */
	cr_assert_eq(rasync_command(ra, on_result, &first, 3, busy, NULL), 0);
	run_for(50);
	cr_assert_eq(rasync_command(ra, on_result, &second, 3, busy, NULL), 0);
	cr_assert(run_until(is_called, &second, 3000));
	cr_assert_null(first.err, "%s", first.err);
	cr_assert_eq(first.integer, 1);
	cr_assert_str_eq(second.err, "timeout");
	/* Redis answered 200 ms before that deadline: the connection is kept, not made again */
	cr_assert(rasync_connected(ra));
	run_for(300);
	cr_assert_eq(second.calls, 1, "the late reply reached the caller after its timeout");
	cr_assert_eq(send1(&id1, "CLIENT", "ID", NULL), 0);
	cr_assert(run_until(is_called, &id1, 2000));
	cr_assert_null(id1.err);
	cr_assert_eq(id1.integer, id0.integer, "a new connection (client id %lld, was %lld)",
		     id1.integer, id0.integer);
}

static void on_count_err(void *arg, redisReply *reply, const char *err)
{
	struct result *res = arg;

	on_result(arg, reply, err);
	/* the client is already down while pending commands fail: no new command gets in */
	if (err)
		cr_assert_eq(send1(res + 100, "PING", NULL, NULL), -1);
}

static int all_called(void *arg)
{
	struct result *res = arg;

	for (int i = 0; i < 3; i++)
		if (!res[i].calls)
			return 0;
	return 1;
}

Test(rasync, killed_server_fails_pending_once_and_restart_reconnects)
{
	struct result res[3 + 100] = {{0}}, after = {0};
	const char *argv[3] = {"BLPOP", "nothing", "0"};
	char portstr[16];
	char *rargv[] = {"redis-server", "--port", portstr, "--bind", "127.0.0.1", "--save", "",
			 "--appendonly", "no", "--dir", (char *)redis_server_dir(srv), NULL};
	char log[4096];
	pid_t again;
	int64_t t0;

	/* BLPOP blocks server-side: these stay pending until the server dies */
	open_connected(NULL, 10000, 100);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(rasync_command(ra, on_count_err, &res[i], 3, argv, NULL), 0);
	run_for(100);
	cr_assert_eq(res[0].calls + res[1].calls + res[2].calls, 0);
	cr_assert_eq(kill(redis_server_pid(srv), SIGKILL), 0);
	cr_assert(run_until(is_down, ra, 2000));
	cr_assert(all_called(res), "failed when the connection went down");
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(res[i].calls, 1, "command %d", i);
		cr_assert_str_eq(res[i].err, "disconnected", "command %d", i);
	}
	cr_assert_not(rasync_connected(ra));
	/* down, and staying down: refused at once, the callback never runs */
	run_for(300);
	cr_assert_eq(send1(&after, "PING", NULL, NULL), -1);
	run_for(50);
	cr_assert_eq(after.calls, 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(res[i].calls, 1, "command %d called again", i);

	snprintf(portstr, sizeof(portstr), "%d", port);
	snprintf(log, sizeof(log), "%s/redis-again.log", redis_server_dir(srv));
	again = proc_start(rargv, log);
	cr_assert_gt(again, 0);
	t0 = clock_mono_ms();
	cr_assert(run_until(is_connected, ra, 5000));
	cr_assert_lt(clock_mono_ms() - t0, 2000, "reconnected after %lld ms",
		     (long long)(clock_mono_ms() - t0));
	cr_assert_eq(send1(&after, "PING", NULL, NULL), 0);
	cr_assert(run_until(is_called, &after, 2000));
	cr_assert_null(after.err);
	cr_assert_str_eq(after.str, "PONG");
	rasync_free(ra);
	ra = NULL;
	proc_stop(again, 5000);
}

Test(rasync, auth_with_the_right_password)
{
	struct result set = {0}, get = {0};

	sync_command(NULL, "CONFIG SET requirepass %s", "s3cret");
	open_connected("s3cret", 1000, 100);
	/* connected means authenticated: the very first command is accepted */
	cr_assert_eq(send1(&set, "SET", "a", "1"), 0);
	cr_assert_eq(send1(&get, "GET", "a", NULL), 0);
	cr_assert(run_until(is_called, &get, 2000));
	cr_assert_null(set.err);
	cr_assert_str_eq(set.str, "OK");
	cr_assert_str_eq(get.str, "1");
}

Test(rasync, auth_with_a_wrong_password_never_connects)
{
	struct result res = {0};

	sync_command(NULL, "CONFIG SET requirepass %s", "s3cret");
	ra = open_on("127.0.0.1", port, "wrong", 300, 50);
	cr_assert_not_null(ra);
	cr_assert_not(run_until(is_connected, ra, 1000), "connected with a wrong password");
	cr_assert_eq(send1(&res, "PING", NULL, NULL), -1);
	/* and it keeps trying: once the password matches, it gets in */
	sync_command("s3cret", "CONFIG SET requirepass %s", "wrong");
	cr_assert(run_until(is_connected, ra, 2000));
}

Test(rasync, no_password_against_requirepass_gets_noauth_replies)
{
	struct result res = {0};

	sync_command(NULL, "CONFIG SET requirepass %s", "s3cret");
	open_connected(NULL, 1000, 100);
	cr_assert_eq(send1(&res, "GET", "a", NULL), 0);
	cr_assert(run_until(is_called, &res, 2000));
	cr_assert_null(res.err);
	cr_assert_eq(res.type, REDIS_REPLY_ERROR);
	cr_assert_eq(strncmp(res.str, "NOAUTH", 6), 0, "%s", res.str);
}

static const struct {
	const char *name;
	const char *host;
	int port;
	int64_t timeout_ms, retry_ms;
	int ok;
} config_cases[] = {
	{"IPv4", "127.0.0.1", 6379, 0, 0, 1},
	{"IPv6", "::1", 6379, 0, 0, 1},
	{"explicit times", "127.0.0.1", 6379, 1, 1, 1},
	{"a day", "127.0.0.1", 6379, 24LL * 3600 * 1000, 24LL * 3600 * 1000, 1},
	{"name", "localhost", 6379, 0, 0, 0},
	{"dns name", "redis.example.com", 6379, 0, 0, 0},
	{"empty", "", 6379, 0, 0, 0},
	{"NULL host", NULL, 6379, 0, 0, 0},
	{"trailing space", "127.0.0.1 ", 6379, 0, 0, 0},
	{"short dotted", "127.1", 6379, 0, 0, 0},
	{"octal-looking", "0177.0.0.1", 6379, 0, 0, 0},
	{"with port", "127.0.0.1:6379", 6379, 0, 0, 0},
	{"bracketed v6", "[::1]", 6379, 0, 0, 0},
	{"v6 zone", "fe80::1%lo", 6379, 0, 0, 0},
	{"port 0", "127.0.0.1", 0, 0, 0, 0},
	{"port 65536", "127.0.0.1", 65536, 0, 0, 0},
	{"negative port", "127.0.0.1", -1, 0, 0, 0},
	{"negative timeout", "127.0.0.1", 6379, -1, 0, 0},
	{"negative retry", "127.0.0.1", 6379, 0, -1, 0},
	{"timeout over a day", "127.0.0.1", 6379, 24LL * 3600 * 1000 + 1, 0, 0},
	{"overlong", "1111:2222:3333:4444:5555:6666:7777:8888:9999", 6379, 0, 0, 0},
};

Test(rasync, config_only_ip_literals_and_sane_numbers)
{
	cr_assert_null(rasync_new(l, NULL));
	cr_assert_null(rasync_new(NULL, &(struct rasync_config){.host = "127.0.0.1", .port = 1}));
	for (size_t i = 0; i < sizeof(config_cases) / sizeof(config_cases[0]); i++) {
		struct rasync *r = open_on(config_cases[i].host, config_cases[i].port, NULL,
					   config_cases[i].timeout_ms, config_cases[i].retry_ms);

		if (config_cases[i].ok)
			cr_assert_not_null(r, "%s refused", config_cases[i].name);
		else
			cr_assert_null(r, "%s accepted", config_cases[i].name);
		rasync_free(r);
	}
	rasync_free(NULL);
}

Test(rasync, refused_at_once_while_not_connected)
{
	struct result res = {0};
	int closed = proc_free_port();

	ra = open_on("127.0.0.1", closed, NULL, 200, 50);
	cr_assert_not_null(ra);
	cr_assert_not(rasync_connected(ra));
	cr_assert_eq(send1(&res, "PING", NULL, NULL), -1);
	run_for(300); /* several refused connects and retries */
	cr_assert_not(rasync_connected(ra));
	cr_assert_eq(send1(&res, "PING", NULL, NULL), -1);
	cr_assert_eq(res.calls, 0);
}

Test(rasync, bad_commands_refused)
{
	struct result res = {0};
	static const char *const refused[] = {"SUBSCRIBE", "subscribe", "PSUBSCRIBE", "UNSUBSCRIBE",
					      "punsubscribe", "MONITOR", "pmonitor"};

	open_connected(NULL, 1000, 100);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		cr_assert_eq(send1(&res, refused[i], "chan", NULL), -1, "%s", refused[i]);
	cr_assert_eq(rasync_command(ra, on_result, &res, 0, (const char *[]){"PING"}, NULL), -1);
	cr_assert_eq(rasync_command(ra, NULL, &res, 1, (const char *[]){"PING"}, NULL), -1);
	cr_assert_eq(rasync_command(ra, on_result, &res, 1, NULL, NULL), -1);
	cr_assert_eq(rasync_command(NULL, on_result, &res, 1, (const char *[]){"PING"}, NULL), -1);
	/* names that merely start like one are ordinary commands */
	cr_assert_eq(send1(&res, "PUBLISH", "chan", "x"), 0);
	cr_assert(run_until(is_called, &res, 2000));
	cr_assert_eq(res.type, REDIS_REPLY_INTEGER);
	cr_assert(rasync_connected(ra));
}

Test(rasync, free_with_pending_commands_calls_each_once)
{
	struct result res[3] = {{0}}, done = {0};
	const char *argv[3] = {"BLPOP", "nothing", "0"};

	open_connected(NULL, 10000, 100);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(rasync_command(ra, on_result, &res[i], 3, argv, NULL), 0);
	cr_assert_eq(send1(&done, "PING", NULL, NULL), 0);
	run_for(100);
	rasync_free(ra);
	ra = NULL;
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(res[i].calls, 1, "command %d", i);
		cr_assert_str_eq(res[i].err, "closed");
	}
	cr_assert_eq(done.calls, 1);
	run_for(100);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(res[i].calls, 1, "command %d called again", i);
}

/* Frees the client from inside its own reply callback. */
static void on_free_inside(void *arg, redisReply *reply, const char *err)
{
	on_result(arg, reply, err);
	rasync_free(ra);
	ra = NULL;
}

Test(rasync, free_from_inside_a_reply_callback)
{
	struct result first = {0}, second = {0}, third = {0};
	const char *argv[1] = {"PING"};
	const char *blpop[3] = {"BLPOP", "nothing", "0"};

	open_connected(NULL, 1000, 100);
	cr_assert_eq(rasync_command(ra, on_free_inside, &first, 1, argv, NULL), 0);
	cr_assert_eq(rasync_command(ra, on_result, &second, 1, argv, NULL), 0);
	cr_assert_eq(rasync_command(ra, on_result, &third, 3, blpop, NULL), 0);
	cr_assert(run_until(is_called, &third, 2000));
	cr_assert_null(ra);
	cr_assert_eq(first.calls, 1);
	cr_assert_null(first.err);
	cr_assert_eq(second.calls, 1);
	cr_assert_str_eq(second.err, "closed");
	cr_assert_eq(third.calls, 1);
	cr_assert_str_eq(third.err, "closed");
	run_for(100);
	cr_assert_eq(first.calls + second.calls + third.calls, 3);
}

/* Frees the client from inside a timeout callback. */
static void on_free_at_timeout(void *arg, redisReply *reply, const char *err)
{
	on_result(arg, reply, err);
	rasync_free(ra);
	ra = NULL;
}

Test(rasync, free_from_inside_a_timeout_callback)
{
	struct result first = {0}, second = {0};
	const char *blpop[3] = {"BLPOP", "nothing", "0"};

	open_connected(NULL, 150, 100);
	cr_assert_eq(rasync_command(ra, on_free_at_timeout, &first, 3, blpop, NULL), 0);
	run_for(20); /* sent: a later deadline for the second (deadlines start when sent) */
	cr_assert_eq(first.calls, 0);
	cr_assert_eq(rasync_command(ra, on_result, &second, 3, blpop, NULL), 0);
	cr_assert(run_until(is_called, &second, 2000));
	cr_assert_null(ra);
	cr_assert_str_eq(first.err, "timeout");
	cr_assert_str_eq(second.err, "closed");
	run_for(300);
	cr_assert_eq(first.calls + second.calls, 2);
}

/*
 * A listener whose accept queue is full and that never accepts: a SYN to it goes unanswered,
 * so a connect hangs the way it does to a blackholed address.
 */
static int full_listener(int *port_out, int *fillers, int nfill)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	cr_assert_neq(fd, -1);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 0), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	for (int i = 0; i < nfill; i++) {
		fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		cr_assert_neq(fillers[i], -1);
		connect(fillers[i], (struct sockaddr *)&sa, sizeof(sa));
	}
	*port_out = ntohs(sa.sin_port);
	return fd;
}

/* A blocking connect that gets no answer within 300 ms. */
static int probe_hangs(int p)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
	struct timeval tv = {0, 300000};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int rc;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	return rc == -1;
}

/* Accepts (and keeps) every connection once the test lets the listener move. */
struct acceptor {
	int lfd;
	int conns[64];
	int n;
};

static void on_accept(void *arg, uint32_t events)
{
	struct acceptor *a = arg;
	int fd;

	(void)events;
	while ((fd = accept4(a->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1) {
		if (a->n < 64)
			a->conns[a->n++] = fd;
		else
			close(fd);
	}
}

Test(rasync, hanging_connect_times_out_and_retries)
{
	int fillers[2], lport;
	struct acceptor a = {0};
	struct result res = {0};
	int64_t t0;

	a.lfd = full_listener(&lport, fillers, 2);
	cr_assert(probe_hangs(lport), "a full accept queue does not make connects hang here");
	ra = open_on("127.0.0.1", lport, NULL, 100, 50);
	cr_assert_not_null(ra);
	/* past the first SYN retransmit (1 s), which the full queue drops too */
	cr_assert_not(run_until(is_connected, ra, 1200), "connected to a full accept queue");
	/*
	 * Make room. A retry gets through within timeout + retry (150 ms); the first connect alone
	 * would wait for its next SYN retransmit, 2 s after it started at the earliest.
	 */
	for (int i = 0; i < 2; i++)
		close(fillers[i]);
	cr_assert_eq(loop_fd_add(l, a.lfd, EPOLLIN, on_accept, &a), 0);
	t0 = clock_mono_ms();
	cr_assert(run_until(is_connected, ra, 3000));
	cr_assert_lt(clock_mono_ms() - t0, 2500, "connected %lld ms after room was made",
		     (long long)(clock_mono_ms() - t0));
	/* connected to something that never answers: the command times out */
	cr_assert_eq(send1(&res, "PING", NULL, NULL), 0);
	cr_assert(run_until(is_called, &res, 2000));
	cr_assert_str_eq(res.err, "timeout");
	cr_assert_not(rasync_connected(ra), "a timeout drops the connection");
	cr_assert(run_until(is_connected, ra, 2000), "and makes a new one");
	rasync_free(ra);
	ra = NULL;
	loop_fd_del(l, a.lfd);
	close(a.lfd);
	for (int i = 0; i < a.n; i++)
		close(a.conns[i]);
}

/* ---- Redis Sentinel -------------------------------------------------------------------- */

static struct rasync *open_sentinels(const char *list, const char *name, int64_t timeout_ms,
				     int64_t retry_ms)
{
	struct rasync_config cfg = {
		.sentinels = list,
		.master_name = name,
		.timeout_ms = timeout_ms,
		.retry_ms = retry_ms,
	};

	return rasync_new(l, &cfg);
}

/* A command straight to 127.0.0.1:p, behind rasync's back; asserts it did not fail. */
static void sync_on(int p, const char *fmt, ...)
{
	struct timeval tv = {2, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", p, tv);
	redisReply *reply;
	va_list ap;

	cr_assert(c && !c->err);
	va_start(ap, fmt);
	reply = redisvCommand(c, fmt, ap);
	va_end(ap);
	cr_assert(reply && reply->type != REDIS_REPLY_ERROR, "%s", reply ? reply->str : "no reply");
	freeReplyObject(reply);
	redisFree(c);
}

/* GET key straight from 127.0.0.1:p into out ("" when missing). */
static void sync_get(int p, const char *key, char *out, size_t cap)
{
	struct timeval tv = {2, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", p, tv);
	redisReply *reply;

	cr_assert(c && !c->err);
	reply = redisCommand(c, "GET %s", key);
	cr_assert_not_null(reply);
	snprintf(out, cap, "%s", reply->type == REDIS_REPLY_STRING ? reply->str : "");
	freeReplyObject(reply);
	redisFree(c);
}

/* A sentinel watching "fsg" at master_port; with long timeouts it never fails over itself. */
static void start_sentinel(int master_port)
{
	sentinel = redis_sentinel_start("fsg", master_port, 1, 60000, 180000);
	cr_assert_not_null(sentinel);
}

static int set_ok(const char *key, const char *value)
{
	struct result res = {0};

	cr_assert_eq(send1(&res, "SET", key, value), 0);
	cr_assert(run_until(is_called, &res, 2000));
	return !res.err && res.type == REDIS_REPLY_STATUS && !strcmp(res.str, "OK");
}

Test(rasync, sentinel_names_the_master_past_a_dead_sentinel)
{
	char list[128], got[32];
	int dead = proc_free_port();

	start_sentinel(port);
	/* the first one refuses: the next one is asked at once, within the same deadline */
	snprintf(list, sizeof(list), "127.0.0.1:%d, 127.0.0.1:%d", dead,
		 redis_server_port(sentinel));
	ra = open_sentinels(list, "fsg", 500, 5000);
	cr_assert_not_null(ra);
	cr_assert(run_until(is_connected, ra, 2000), "not connected through the sentinel");
	cr_assert(set_ok("via", "sentinel"));
	sync_get(port, "via", got, sizeof(got));
	cr_assert_str_eq(got, "sentinel", "the write did not reach the master");
}

Test(rasync, sentinel_that_does_not_know_the_name_gives_no_connection)
{
	struct result res = {0};
	char list[64];

	start_sentinel(port);
	snprintf(list, sizeof(list), "127.0.0.1:%d", redis_server_port(sentinel));
	ra = open_sentinels(list, "not-fsg", 300, 50);
	cr_assert_not_null(ra);
	cr_assert_not(run_until(is_connected, ra, 1000), "connected without a master address");
	cr_assert_eq(send1(&res, "PING", NULL, NULL), -1);
	/* a plain Redis answers SENTINEL with an error: no connection either */
	snprintf(list, sizeof(list), "127.0.0.1:%d", port);
	rasync_free(ra);
	ra = open_sentinels(list, "fsg", 300, 50);
	cr_assert_not_null(ra);
	cr_assert_not(run_until(is_connected, ra, 1000), "a Redis taken for a sentinel");
}

Test(rasync, readonly_makes_it_ask_again_and_role_keeps_it_off_a_replica)
{
	struct result res = {0};
	char list[64], got[32];
	int rport;

	replica = redis_replica_start(srv);
	cr_assert_not_null(replica);
	rport = redis_server_port(replica);
	start_sentinel(port);
	snprintf(list, sizeof(list), "127.0.0.1:%d", redis_server_port(sentinel));
	ra = open_sentinels(list, "fsg", 500, 100);
	cr_assert_not_null(ra);
	cr_assert(run_until(is_connected, ra, 2000));
	cr_assert(set_ok("a", "1"));

	/* swap the roles by hand: the old master keeps its clients, but refuses writes */
	sync_on(rport, "REPLICAOF NO ONE");
	sync_on(port, "REPLICAOF 127.0.0.1 %d", rport);
	cr_assert_eq(send1(&res, "SET", "b", "2"), 0);
	cr_assert(run_until(is_called, &res, 2000));
	cr_assert_eq(res.type, REDIS_REPLY_ERROR, "a replica took a write");
	cr_assert_eq(strncmp(res.str, "READONLY", 8), 0, "%s", res.str);
	cr_assert(run_until(is_down, ra, 1000), "-READONLY did not drop the connection");
	/* the sentinel still names the old master: ROLE says replica, so no connection */
	cr_assert_not(run_until(is_connected, ra, 1000), "connected to a replica");

	/* once the sentinel names the new master, it is found */
	sync_on(redis_server_port(sentinel), "SENTINEL REMOVE fsg");
	sync_on(redis_server_port(sentinel), "SENTINEL MONITOR fsg 127.0.0.1 %d 1", rport);
	cr_assert(run_until(is_connected, ra, 3000), "the new master was not found");
	cr_assert(set_ok("c", "3"));
	sync_get(rport, "c", got, sizeof(got));
	cr_assert_str_eq(got, "3");
}

Test(rasync, sentinel_config)
{
	static const struct {
		const char *name;
		const char *list;
		const char *master;
		int ok;
	} cases[] = {
		{"one", "127.0.0.1:26379", "fsg", 1},
		{"three and IPv6", "127.0.0.1:1, 127.0.0.2:2,[::1]:3", "fsg", 1},
		{"blank list: host and port", " ", NULL, 1},
		{"no master name", "127.0.0.1:26379", NULL, 0},
		{"empty master name", "127.0.0.1:26379", "", 0},
		{"a name", "sentinel.example:26379", "fsg", 0},
		{"no port", "127.0.0.1", "fsg", 0},
		{"unbracketed IPv6", "::1:26379", "fsg", 0},
		{"empty entry", "127.0.0.1:1,,127.0.0.1:2", "fsg", 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rasync_config cfg = {
			.host = "127.0.0.1",
			.port = 6379,
			.sentinels = cases[i].list,
			.master_name = cases[i].master,
			.sentinel_password = "pw",
		};
		struct rasync *r = rasync_new(l, &cfg);

		if (cases[i].ok)
			cr_assert_not_null(r, "%s refused", cases[i].name);
		else
			cr_assert_null(r, "%s accepted", cases[i].name);
		rasync_free(r);
	}
	/* with sentinels, host and port are not used: not even checked */
	cr_assert_not_null(ra = open_sentinels("127.0.0.1:26379", "fsg", 0, 0));
}
