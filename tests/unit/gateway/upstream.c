/* Tests the curl multi on the loop (gateway/upstream.c) against a real HTTP sink (MHD). */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <microhttpd.h>

#include "common/clock.h"
#include "common/log.h"
#include "gateway/loop.h"
#include "gateway/upstream.h"
#include "tests/lib/proc.h"

#define MIB (1024ULL * 1024)

/* Body byte at offset o: a hash of o, so a lost, repeated or moved piece shows at the sink. */
static uint8_t pattern(uint64_t o)
{
	uint32_t x = (uint32_t)o ^ (uint32_t)(o >> 32);

	x ^= x >> 13;
	x *= 0x5bd1e995u;
	x ^= x >> 15;
	return (uint8_t)x;
}

/*
 * The HTTP receiver: MHD with its own threads on 127.0.0.1. It checks every body byte against
 * pattern(), then answers 204 (200 "hello\n" to GET) with X-Got: <body bytes> and X-Pattern.
 */
struct sink {
	struct MHD_Daemon *d;
	int port;
	int answer_delay_ms;        /* sleep before answering */
	int stall;                  /* first body piece of a request waits until released */
	atomic_int stalled;
	atomic_int released;
	atomic_int started;         /* requests whose headers arrived */
	atomic_int expects;         /* ... with Expect: 100-continue */
	atomic_int answered;        /* requests whose whole body arrived and got an answer */
	atomic_int completed_ok;
	atomic_int completed_error; /* ended otherwise: the client went away mid-body */
	atomic_ullong max_got;      /* largest body count among ended requests */
	atomic_int conns, max_conns;
};

struct sink_req {
	unsigned long long got;
	int bad;
	int stalled;
};

static enum MHD_Result sink_handler(void *cls, struct MHD_Connection *c, const char *url,
				    const char *method, const char *version, const char *data,
				    size_t *size, void **con_cls)
{
	struct sink *s = cls;
	struct sink_req *r = *con_cls;
	struct MHD_Response *resp;
	unsigned status = MHD_HTTP_NO_CONTENT;
	char got[32];
	enum MHD_Result ret;

	(void)url;
	(void)version;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		*con_cls = r;
		atomic_fetch_add(&s->started, 1);
		if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Expect"))
			atomic_fetch_add(&s->expects, 1);
		return MHD_YES;
	}
	if (*size) {
		if (s->stall && !r->stalled) {
			r->stalled = 1;
			atomic_store(&s->stalled, 1);
			/* this MHD thread reads nothing meanwhile: TCP backpressure */
			for (int i = 0; i < 3000 && !atomic_load(&s->released); i++)
				clock_sleep_ms(10);
		}
		for (size_t i = 0; i < *size && !r->bad; i++)
			if ((uint8_t)data[i] != pattern(r->got + i))
				r->bad = 1;
		r->got += *size;
		*size = 0;
		return MHD_YES;
	}
	if (s->answer_delay_ms)
		clock_sleep_ms(s->answer_delay_ms);
	if (strcmp(method, "GET") == 0) {
		resp = MHD_create_response_from_buffer(6, (void *)"hello\n",
						       MHD_RESPMEM_PERSISTENT);
		status = MHD_HTTP_OK;
	} else {
		resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	}
	if (!resp)
		return MHD_NO;
	snprintf(got, sizeof(got), "%llu", r->got);
	MHD_add_response_header(resp, "X-Got", got);
	MHD_add_response_header(resp, "X-Pattern", r->bad ? "bad" : "ok");
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	atomic_fetch_add(&s->answered, 1);
	return ret;
}

static void sink_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			   enum MHD_RequestTerminationCode toe)
{
	struct sink *s = cls;
	struct sink_req *r = *con_cls;
	unsigned long long max;

	(void)c;
	if (!r)
		return;
	if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
		atomic_fetch_add(&s->completed_ok, 1);
	else
		atomic_fetch_add(&s->completed_error, 1);
	max = atomic_load(&s->max_got);
	while (r->got > max && !atomic_compare_exchange_weak(&s->max_got, &max, r->got))
		;
	free(r);
	*con_cls = NULL;
}

static void sink_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			    enum MHD_ConnectionNotificationCode toe)
{
	struct sink *s = cls;
	int n, max;

	(void)c;
	(void)socket_context;
	if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		atomic_fetch_sub(&s->conns, 1);
		return;
	}
	n = atomic_fetch_add(&s->conns, 1) + 1;
	max = atomic_load(&s->max_conns);
	while (n > max && !atomic_compare_exchange_weak(&s->max_conns, &max, n))
		;
}

static struct sink *sink_start(int answer_delay_ms, int stall)
{
	struct sink *s = calloc(1, sizeof(*s));
	struct sockaddr_in sin = {.sin_family = AF_INET};
	const union MHD_DaemonInfo *info;

	cr_assert_not_null(s);
	s->answer_delay_ms = answer_delay_ms;
	s->stall = stall;
	cr_assert_eq(inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr), 1);
	/*
	 * poll, not epoll: in 0.9.75's epoll mode a client that closes mid-body usually goes
	 * unnoticed (no completion callback, the socket stays in CLOSE-WAIT), and the abort
	 * tests need the sink to see it.
	 */
	s->d = MHD_start_daemon(MHD_USE_POLL_INTERNAL_THREAD, 0, NULL, NULL, sink_handler, s,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
				MHD_OPTION_THREAD_POOL_SIZE, (unsigned)4,
				MHD_OPTION_NOTIFY_COMPLETED, sink_completed, s,
				MHD_OPTION_NOTIFY_CONNECTION, sink_connection, s, MHD_OPTION_END);
	cr_assert_not_null(s->d, "the sink does not start");
	info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	cr_assert(info && info->port > 0);
	s->port = info->port;
	return s;
}

static void sink_stop(struct sink *s)
{
	if (!s)
		return;
	atomic_store(&s->released, 1);
	MHD_stop_daemon(s->d);
	free(s);
}

/* A listener that never accepts: the kernel completes the handshake, nobody ever answers. */
static int silent_listen(int *port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_neq(fd, -1);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(fd, 64), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* One transfer: its body generator and what came back. */
struct job {
	CURL *easy;
	struct curl_slist *headers;
	char url[128];

	uint64_t total;             /* body bytes to send */
	uint64_t sent;
	uint64_t pause_every;       /* CURL_READFUNC_PAUSE at each multiple (0: never) */
	uint64_t next_pause;
	int unpause_ms;             /* upstream_unpause this long after a pause; -1: never */
	uint64_t abort_at;          /* CURL_READFUNC_ABORT once this much was sent (0: never) */
	uint64_t cancel_at;         /* upstream_cancel from inside the read callback (misuse) */
	int pauses;
	int paused;
	int reads_while_paused;
	int in_read;
	struct loop_timer *unpause_timer;
	char post[512];

	int free_in_done;           /* upstream_free from inside done */
	int calls;
	int calls_in_read;
	CURLcode result;
	long code;
	int64_t done_ms;
	long long x_got;
	char x_pattern[8];
	char body[64];
	size_t body_len;
};

static struct loop *l;
static struct upstream *u;
static struct sink *sink;
static int silent_fd = -1;
static struct job jobs[128];

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	log_init(LOG_ERROR, 2);
	cr_assert_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
	l = loop_new();
	cr_assert_not_null(l);
}

static void teardown(void)
{
	upstream_free(u);
	for (size_t i = 0; i < sizeof(jobs) / sizeof(jobs[0]); i++) {
		loop_timer_cancel(l, jobs[i].unpause_timer);
		curl_easy_cleanup(jobs[i].easy);
		curl_slist_free_all(jobs[i].headers);
	}
	loop_free(l);
	sink_stop(sink);
	if (silent_fd != -1)
		close(silent_fd);
	curl_global_cleanup();
}

TestSuite(upstream, .init = setup, .fini = teardown, .timeout = 120);

/* Turns the loop (each wait at most wait_ms) until cond(arg) or limit_ms. Returns cond. */
static int run_until_wait(int (*cond)(void *), void *arg, int64_t limit_ms, int wait_ms,
			  int *turns)
{
	int64_t end = clock_mono_ms() + limit_ms;

	while (!cond(arg) && clock_mono_ms() < end) {
		cr_assert_eq(loop_run_once(l, wait_ms), 0);
		if (turns)
			(*turns)++;
	}
	return cond(arg);
}

static int run_until(int (*cond)(void *), void *arg, int64_t limit_ms)
{
	return run_until_wait(cond, arg, limit_ms, 10, NULL);
}

static void run_for(int64_t ms)
{
	int64_t end = clock_mono_ms() + ms;

	while (clock_mono_ms() < end)
		cr_assert_eq(loop_run_once(l, 10), 0);
}

static int is_done(void *arg)
{
	return ((struct job *)arg)->calls > 0;
}

static int is_done_twice(void *arg)
{
	return ((struct job *)arg)->calls > 1;
}

static int all_done(void *arg)
{
	int n = *(int *)arg;

	for (int i = 0; i < n; i++)
		if (!jobs[i].calls)
			return 0;
	return 1;
}

static int is_paused_once(void *arg)
{
	return ((struct job *)arg)->pauses > 0;
}

static int sink_failed(void *arg)
{
	return atomic_load(&((struct sink *)arg)->completed_error) > 0;
}

static int sink_stalled(void *arg)
{
	return atomic_load(&((struct sink *)arg)->stalled);
}

static void on_done(void *arg, CURL *easy, CURLcode result)
{
	struct job *j = arg;

	cr_assert_eq(easy, j->easy);
	j->calls++;
	if (j->in_read)
		j->calls_in_read++;
	j->result = result;
	j->done_ms = clock_mono_ms();
	cr_assert_eq(curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &j->code), CURLE_OK);
	loop_timer_cancel(l, j->unpause_timer);
	j->unpause_timer = NULL;
	if (j->free_in_done) {
		upstream_free(u);
		u = NULL;
	}
}

static void unpause_fire(void *arg)
{
	struct job *j = arg;

	j->unpause_timer = NULL;
	j->paused = 0;
	upstream_unpause(u, j->easy);
}

static size_t job_read(char *buf, size_t size, size_t nitems, void *arg)
{
	struct job *j = arg;
	uint64_t n = (uint64_t)size * nitems;

	if (j->paused)
		j->reads_while_paused++;
	if (j->abort_at && j->sent >= j->abort_at)
		return CURL_READFUNC_ABORT;
	if (j->cancel_at && j->sent >= j->cancel_at) {
		j->cancel_at = 0;
		j->in_read = 1;
		upstream_cancel(u, j->easy);
		j->in_read = 0;
		return CURL_READFUNC_PAUSE;
	}
	if (j->pause_every && j->sent == j->next_pause && j->sent < j->total) {
		j->next_pause += j->pause_every;
		j->pauses++;
		j->paused = 1;
		if (j->unpause_ms >= 0) {
			j->unpause_timer = loop_timer_at(l, clock_mono_ms() + j->unpause_ms,
							 unpause_fire, j);
			cr_assert_not_null(j->unpause_timer);
		}
		return CURL_READFUNC_PAUSE;
	}
	if (n > j->total - j->sent)
		n = j->total - j->sent;
	if (j->pause_every && n > j->next_pause - j->sent)
		n = j->next_pause - j->sent;
	if (j->abort_at && n > j->abort_at - j->sent)
		n = j->abort_at - j->sent;
	if (j->cancel_at && n > j->cancel_at - j->sent)
		n = j->cancel_at - j->sent;
	for (uint64_t i = 0; i < n; i++)
		buf[i] = (char)pattern(j->sent + i);
	j->sent += n;
	return (size_t)n;
}

static size_t job_header(char *buf, size_t size, size_t nitems, void *arg)
{
	struct job *j = arg;
	size_t n = size * nitems;
	char line[128];

	if (n >= sizeof(line))
		return n;
	memcpy(line, buf, n);
	line[n] = '\0';
	if (strncasecmp(line, "X-Got:", 6) == 0)
		j->x_got = strtoll(line + 6, NULL, 10);
	else if (strncasecmp(line, "X-Pattern:", 10) == 0)
		sscanf(line + 10, " %7[a-z]", j->x_pattern);
	return n;
}

static size_t job_write(char *buf, size_t size, size_t nitems, void *arg)
{
	struct job *j = arg;
	size_t n = size * nitems;
	size_t room = sizeof(j->body) - 1 - j->body_len;
	size_t take = n < room ? n : room;

	memcpy(j->body + j->body_len, buf, take);
	j->body_len += take;
	j->body[j->body_len] = '\0';
	return n;
}

/* A GET of path on port with the options every test handle has. */
static struct job *job_get(struct job *j, int port, const char *path)
{
	if (!j->easy)
		j->easy = curl_easy_init();
	cr_assert_not_null(j->easy);
	if (!j->headers)
		j->headers = curl_slist_append(NULL, "Expect:");
	cr_assert_not_null(j->headers);
	snprintf(j->url, sizeof(j->url), "http://127.0.0.1:%d%s", port, path);
	curl_easy_setopt(j->easy, CURLOPT_URL, j->url);
	curl_easy_setopt(j->easy, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(j->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(j->easy, CURLOPT_HTTPHEADER, j->headers);
	curl_easy_setopt(j->easy, CURLOPT_HEADERFUNCTION, job_header);
	curl_easy_setopt(j->easy, CURLOPT_HEADERDATA, j);
	curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, job_write);
	curl_easy_setopt(j->easy, CURLOPT_WRITEDATA, j);
	curl_easy_setopt(j->easy, CURLOPT_TIMEOUT_MS, 60000L); /* a bound, not a test */
	return j;
}

/* A streaming upload of total generated bytes (Content-Length, or chunked). */
static struct job *job_upload(struct job *j, int port, const char *method, uint64_t total,
			      int chunked)
{
	job_get(j, port, "/upload");
	j->total = total;
	j->next_pause = j->pause_every;
	curl_easy_setopt(j->easy, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(j->easy, CURLOPT_READFUNCTION, job_read);
	curl_easy_setopt(j->easy, CURLOPT_READDATA, j);
	/* the gateway's setting: 16 KiB is 7.88's minimum */
	curl_easy_setopt(j->easy, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
	if (!chunked)
		curl_easy_setopt(j->easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)total);
	if (strcmp(method, "PUT") != 0)
		curl_easy_setopt(j->easy, CURLOPT_CUSTOMREQUEST, method);
	return j;
}

static void add(struct job *j)
{
	cr_assert_eq(upstream_add(u, j->easy, on_done, j), 0);
}

static void open_upstream(const struct upstream_config *cfg)
{
	u = upstream_new(l, cfg);
	cr_assert_not_null(u);
}

Test(upstream, get_completes_once_with_the_answer_readable)
{
	struct job *j = &jobs[0];

	sink = sink_start(0, 0);
	open_upstream(NULL);
	add(job_get(j, sink->port, "/get"));
	cr_assert_eq(upstream_add(u, j->easy, on_done, j), -1, "added twice");
	cr_assert(run_until(is_done, j, 10000), "GET not done within 10 s");
	cr_assert_eq(j->calls, 1);
	cr_assert_eq(j->result, CURLE_OK, "%s", curl_easy_strerror(j->result));
	cr_assert_eq(j->code, 200);
	cr_assert_str_eq(j->body, "hello\n");
	cr_assert_eq(j->x_got, 0);
	run_for(200);
	cr_assert_eq(j->calls, 1, "done called again");
	/* the handle is the caller's again: a second run of it works too */
	j->body_len = 0;
	add(j);
	cr_assert(run_until(is_done_twice, j, 10000));
	cr_assert_eq(j->result, CURLE_OK, "%s", curl_easy_strerror(j->result));
	cr_assert_str_eq(j->body, "hello\n");
}

struct stream_case {
	const char *method;
	uint64_t total;
	uint64_t pause_every;
	int unpause_ms;
	int chunked;
	int expect;   /* curl's Expect: 100-continue left on (MHD sends the 100) */
};

static const struct stream_case stream_cases[] = {
	{"PUT", 32 * MIB, MIB, 5, 0, 0},
	{"PATCH", 32 * MIB, MIB, 5, 1, 0},
	{"PUT", 8 * MIB, 64 * 1024, 0, 0, 0},
	{"POST", 3 * MIB + 7, 1000000, 1, 1, 0},
	{"PUT", 4 * MIB, MIB, 5, 0, 1},
};

Test(upstream, streaming_upload_with_pause_and_unpause_arrives_whole)
{
	sink = sink_start(0, 0);
	open_upstream(NULL);
	for (size_t i = 0; i < sizeof(stream_cases) / sizeof(stream_cases[0]); i++) {
		const struct stream_case *c = &stream_cases[i];
		struct job *j = &jobs[i];
		int64_t start = clock_mono_ms();
		int pauses = (int)((c->total - 1) / c->pause_every);
		int expects = atomic_load(&sink->expects);

		j->pause_every = c->pause_every;
		j->unpause_ms = c->unpause_ms;
		job_upload(j, sink->port, c->method, c->total, c->chunked);
		if (c->expect) {
			curl_easy_setopt(j->easy, CURLOPT_HTTPHEADER, NULL);
			/* waiting this out instead of getting the 100 fails the time bound below */
			curl_easy_setopt(j->easy, CURLOPT_EXPECT_100_TIMEOUT_MS, 20000L);
		}
		add(j);
		cr_assert(run_until(is_done, j, 90000), "case %zu: not done within 90 s", i);
		cr_log_info("case %zu: %s %llu bytes, %d pauses, %lld ms", i, c->method,
			    (unsigned long long)c->total, j->pauses,
			    (long long)(clock_mono_ms() - start));
		cr_assert_eq(j->calls, 1, "case %zu", i);
		cr_assert_eq(j->result, CURLE_OK, "case %zu: %s", i, curl_easy_strerror(j->result));
		cr_assert_eq(j->code, 204, "case %zu", i);
		cr_assert_eq(j->sent, c->total, "case %zu", i);
		cr_assert_eq(j->x_got, (long long)c->total, "case %zu: sink got %lld", i, j->x_got);
		cr_assert_str_eq(j->x_pattern, "ok", "case %zu: body bytes differ", i);
		cr_assert_eq(j->pauses, pauses, "case %zu: %d pauses", i, j->pauses);
		cr_assert_eq(j->reads_while_paused, 0, "case %zu", i);
		cr_assert_eq(atomic_load(&sink->expects) - expects, c->expect, "case %zu", i);
		if (c->expect)
			cr_assert_lt(j->done_ms - start, 15000, "case %zu: no 100 Continue", i);
	}
	cr_assert_eq(atomic_load(&sink->completed_error), 0);
}

Test(upstream, read_callback_abort_fails_the_transfer_and_the_sink_never_sees_a_whole_body)
{
	sink = sink_start(0, 0);
	open_upstream(NULL);
	for (int chunked = 0; chunked <= 1; chunked++) {
		struct job *j = &jobs[chunked];

		j->abort_at = MIB;
		add(job_upload(j, sink->port, "PUT", 32 * MIB, chunked));
		cr_assert(run_until(is_done, j, 30000), "chunked %d: not done", chunked);
		cr_assert_eq(j->calls, 1);
		cr_assert_eq(j->result, CURLE_ABORTED_BY_CALLBACK, "chunked %d: %s", chunked,
			     curl_easy_strerror(j->result));
		cr_assert_eq(j->sent, MIB);
		cr_assert(run_until(sink_failed, sink, 10000), "chunked %d: sink saw no abort",
			  chunked);
		atomic_store(&sink->completed_error, 0);
		cr_assert_eq(atomic_load(&sink->answered), 0, "chunked %d: a body completed",
			     chunked);
		cr_assert_eq(atomic_load(&sink->completed_ok), 0);
		cr_assert_leq(atomic_load(&sink->max_got), MIB);
		run_for(100);
		cr_assert_eq(j->calls, 1);
	}
}

Test(upstream, a_hundred_concurrent_posts_complete_once_each)
{
	static const struct upstream_config limits[] = {
		{0, 0, 0},
		{4, 4, 4},
	};

	for (size_t k = 0; k < sizeof(limits) / sizeof(limits[0]); k++) {
		int n = 100;
		long connects = 0;

		memset(jobs, 0, sizeof(jobs[0]) * (size_t)n);
		sink = sink_start(0, 0);
		open_upstream(&limits[k]);
		for (int i = 0; i < n; i++) {
			struct job *j = &jobs[i];
			size_t len = 100 + (size_t)i;

			for (size_t b = 0; b < len; b++)
				j->post[b] = (char)pattern(b);
			job_get(j, sink->port, "/post");
			curl_easy_setopt(j->easy, CURLOPT_POSTFIELDS, j->post);
			curl_easy_setopt(j->easy, CURLOPT_POSTFIELDSIZE, (long)len);
			add(j);
		}
		cr_assert(run_until(all_done, &n, 60000), "limits %zu: not all done in 60 s", k);
		for (int i = 0; i < n; i++) {
			struct job *j = &jobs[i];
			long c = 0;

			cr_assert_eq(j->calls, 1, "limits %zu job %d", k, i);
			cr_assert_eq(j->result, CURLE_OK, "limits %zu job %d: %s", k, i,
				     curl_easy_strerror(j->result));
			cr_assert_eq(j->code, 204);
			cr_assert_eq(j->x_got, 100 + i);
			cr_assert_str_eq(j->x_pattern, "ok");
			curl_easy_getinfo(j->easy, CURLINFO_NUM_CONNECTS, &c);
			connects += c;
		}
		cr_log_info("limits %zu: %ld new connections, at most %d at once at the sink", k,
			    connects, atomic_load(&sink->max_conns));
		if (limits[k].max_total_connections)
			cr_assert_leq(atomic_load(&sink->max_conns), 4,
				      "the connection limit was not applied");
		run_for(100);
		for (int i = 0; i < n; i++) {
			cr_assert_eq(jobs[i].calls, 1);
			curl_easy_cleanup(jobs[i].easy);
			curl_slist_free_all(jobs[i].headers);
		}
		memset(jobs, 0, sizeof(jobs[0]) * (size_t)n);
		upstream_free(u);
		u = NULL;
		sink_stop(sink);
		sink = NULL;
	}
}

Test(upstream, connection_refused_is_reported_quickly)
{
	struct job *j = &jobs[0];
	int port = proc_free_port();
	int64_t start;

	cr_assert_gt(port, 0);
	open_upstream(NULL);
	add(job_get(j, port, "/"));
	start = clock_mono_ms();
	cr_assert(run_until(is_done, j, 3000), "not done within 3 s");
	cr_assert_eq(j->calls, 1);
	cr_assert_eq(j->result, CURLE_COULDNT_CONNECT, "%s", curl_easy_strerror(j->result));
	cr_assert_lt(j->done_ms - start, 3000);
	run_for(100);
	cr_assert_eq(j->calls, 1);
}

Test(upstream, cancel_mid_upload_calls_done_once_and_the_handle_is_reusable)
{
	struct job *j = &jobs[0];

	sink = sink_start(0, 0);
	open_upstream(NULL);
	j->pause_every = MIB;
	j->unpause_ms = -1; /* stays paused after the first MiB */
	add(job_upload(j, sink->port, "PUT", 32 * MIB, 0));
	cr_assert(run_until(is_paused_once, j, 10000), "no pause within 10 s");
	run_for(50);
	cr_assert_eq(j->calls, 0);
	upstream_cancel(u, j->easy);
	cr_assert_eq(j->calls, 1, "done not called by upstream_cancel");
	cr_assert_eq(j->result, CURLE_ABORTED_BY_CALLBACK);
	upstream_cancel(u, j->easy);
	upstream_unpause(u, j->easy);
	run_for(300);
	cr_assert_eq(j->calls, 1, "done called again after the cancel");
	cr_assert(run_until(sink_failed, sink, 10000), "the sink did not see the upload end");
	cr_assert_eq(atomic_load(&sink->answered), 0);

	curl_easy_reset(j->easy);
	j->body_len = 0;
	add(job_get(j, sink->port, "/again"));
	cr_assert(run_until(is_done_twice, j, 10000));
	cr_assert_eq(j->calls, 2);
	cr_assert_eq(j->result, CURLE_OK, "%s", curl_easy_strerror(j->result));
	cr_assert_str_eq(j->body, "hello\n");
}

Test(upstream, cancel_while_waiting_for_the_answer)
{
	struct job *j = &jobs[0];
	CURL *stranger = curl_easy_init();
	int port;

	cr_assert_not_null(stranger);
	silent_fd = silent_listen(&port);
	open_upstream(NULL);
	add(job_get(j, port, "/"));
	run_for(200);
	cr_assert_eq(j->calls, 0);
	upstream_cancel(u, stranger); /* never added: nothing happens */
	upstream_unpause(u, stranger);
	curl_easy_cleanup(stranger);
	cr_assert_eq(j->calls, 0);
	upstream_cancel(u, j->easy);
	cr_assert_eq(j->calls, 1);
	cr_assert_eq(j->result, CURLE_ABORTED_BY_CALLBACK);
	run_for(300);
	cr_assert_eq(j->calls, 1);
}

Test(upstream, cancel_from_inside_the_read_callback_is_deferred_until_curl_returns)
{
	struct job *j = &jobs[0];

	sink = sink_start(0, 0);
	open_upstream(NULL);
	j->cancel_at = MIB;
	add(job_upload(j, sink->port, "PUT", 8 * MIB, 0));
	cr_assert(run_until(is_done, j, 10000), "not cancelled within 10 s");
	cr_assert_eq(j->calls, 1);
	cr_assert_eq(j->calls_in_read, 0, "done ran inside curl's read callback");
	cr_assert_eq(j->result, CURLE_ABORTED_BY_CALLBACK);
	cr_assert_eq(j->sent, MIB);
	run_for(300);
	cr_assert_eq(j->calls, 1);
	cr_assert(run_until(sink_failed, sink, 10000));
	cr_assert_eq(atomic_load(&sink->answered), 0);
}

static int all_uploads_paused(void *arg)
{
	(void)arg;
	for (int i = 0; i < 3; i++)
		if (!jobs[i].pauses)
			return 0;
	return 1;
}

Test(upstream, free_with_transfers_in_flight_calls_each_done_once)
{
	int port;

	sink = sink_start(0, 0);
	silent_fd = silent_listen(&port);
	open_upstream(NULL);
	for (int i = 0; i < 3; i++) {
		jobs[i].pause_every = MIB;
		jobs[i].unpause_ms = -1;
		add(job_upload(&jobs[i], sink->port, "PUT", 32 * MIB, i == 1));
	}
	for (int i = 3; i < 6; i++)
		add(job_get(&jobs[i], port, "/"));
	cr_assert(run_until(all_uploads_paused, NULL, 10000));
	run_for(100);
	add(job_get(&jobs[6], sink->port, "/never-started"));
	for (int i = 0; i < 7; i++)
		cr_assert_eq(jobs[i].calls, 0, "job %d", i);
	upstream_free(u);
	u = NULL;
	for (int i = 0; i < 7; i++) {
		cr_assert_eq(jobs[i].calls, 1, "job %d", i);
		cr_assert_eq(jobs[i].result, CURLE_ABORTED_BY_CALLBACK, "job %d", i);
	}
	run_for(300);
	for (int i = 0; i < 7; i++)
		cr_assert_eq(jobs[i].calls, 1, "job %d", i);
}

Test(upstream, free_from_inside_done_ends_the_others_once)
{
	int port;

	sink = sink_start(0, 0);
	silent_fd = silent_listen(&port);
	open_upstream(NULL);
	jobs[0].free_in_done = 1;
	add(job_get(&jobs[0], sink->port, "/"));
	add(job_get(&jobs[1], port, "/"));
	add(job_get(&jobs[2], port, "/"));
	cr_assert(run_until(is_done, &jobs[0], 10000));
	cr_assert_null(u);
	cr_assert_eq(jobs[0].result, CURLE_OK);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(jobs[i].calls, 1, "job %d", i);
	cr_assert_eq(jobs[1].result, CURLE_ABORTED_BY_CALLBACK);
	cr_assert_eq(jobs[2].result, CURLE_ABORTED_BY_CALLBACK);
	run_for(200);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(jobs[i].calls, 1, "job %d", i);
}

/* Nothing happens on the wire until curl's own timeout: only the timer path can end it. */
Test(upstream, a_silent_server_times_out_through_the_curl_timer)
{
	struct job *j = &jobs[0];
	int64_t start;
	int port, turns = 0;

	silent_fd = silent_listen(&port);
	open_upstream(NULL);
	add(job_get(j, port, "/"));
	curl_easy_setopt(j->easy, CURLOPT_TIMEOUT_MS, 300L);
	start = clock_mono_ms();
	/* long waits: a broken timer path would sleep through the deadline */
	cr_assert(run_until_wait(is_done, j, 10000, 5000, &turns), "not done within 10 s");
	cr_assert_eq(j->calls, 1);
	cr_assert_eq(j->result, CURLE_OPERATION_TIMEDOUT, "%s", curl_easy_strerror(j->result));
	cr_assert_geq(j->done_ms - start, 250);
	cr_assert_lt(j->done_ms - start, 3000, "timed out after %lld ms",
		     (long long)(j->done_ms - start));
}

/* A server slow to answer: the loop sleeps meanwhile instead of spinning on curl's socket. */
Test(upstream, a_slow_answer_is_awaited_without_spinning)
{
	struct job *j = &jobs[0];
	int64_t start;
	int turns = 0;

	sink = sink_start(500, 0);
	open_upstream(NULL);
	add(job_get(j, sink->port, "/slow"));
	start = clock_mono_ms();
	cr_assert(run_until_wait(is_done, j, 10000, 1000, &turns));
	cr_assert_eq(j->result, CURLE_OK, "%s", curl_easy_strerror(j->result));
	cr_assert_eq(j->code, 200);
	cr_assert_geq(j->done_ms - start, 450);
	cr_assert_lt(turns, 50, "%d loop turns for one slow answer", turns);
}

static int sent_settled(void *arg)
{
	static uint64_t last;
	static int64_t since;
	struct job *j = arg;
	int64_t now = clock_mono_ms();

	if (j->sent != last || !since) {
		last = j->sent;
		since = now;
		return 0;
	}
	return now - since >= 500;
}

/* The sink stops reading: curl stops calling the read callback; it resumes when it reads. */
Test(upstream, a_stalled_receiver_stops_the_read_callback)
{
	struct job *j = &jobs[0];

	sink = sink_start(0, 1);
	open_upstream(NULL);
	add(job_upload(j, sink->port, "PUT", 32 * MIB, 0));
	cr_assert(run_until(sink_stalled, sink, 10000), "the sink got no body");
	cr_assert(run_until(sent_settled, j, 20000), "the read callback never stopped");
	cr_log_info("%llu bytes left the read callback while the sink read nothing",
		    (unsigned long long)j->sent);
	cr_assert_lt(j->sent, 32 * MIB);
	cr_assert_eq(j->calls, 0);
	atomic_store(&sink->released, 1);
	cr_assert(run_until(is_done, j, 60000), "not done within 60 s of the release");
	cr_assert_eq(j->result, CURLE_OK, "%s", curl_easy_strerror(j->result));
	cr_assert_eq(j->x_got, (long long)(32 * MIB));
	cr_assert_str_eq(j->x_pattern, "ok");
}

Test(upstream, refused_arguments)
{
	struct upstream_config neg = {.max_host_connections = -1};
	struct job *j = &jobs[0];

	cr_assert_null(upstream_new(NULL, NULL));
	cr_assert_null(upstream_new(l, &neg));
	upstream_free(NULL);
	open_upstream(NULL);
	job_get(j, 1, "/");
	cr_assert_eq(upstream_add(u, NULL, on_done, j), -1);
	cr_assert_eq(upstream_add(u, j->easy, NULL, j), -1);
	upstream_cancel(u, NULL);
	upstream_unpause(u, NULL);
	cr_assert_eq(j->calls, 0);
}
