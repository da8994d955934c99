/* SIGTERM drains the gateway: uploads in progress finish or are cut at drain_grace, then resume. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <jansson.h>

#include "tests/lib/fs_gateway.h"
#include "tests/lib/fs_server.h"
#include "tests/lib/http_client.h"
#include "tests/lib/redis_server.h"
#include "tests/lib/proc.h"

#define KIB 1024
#define TUS "Tus-Resumable: 1.0.0"
#define OCTETS "Content-Type: application/offset+octet-stream"

static struct redis_server *R;
static struct fs_server *S;
static struct fs_gateway *G, *G2;

static void stack_up_with(const char *gateway_extra, int replica)
{
	/* a peer that closes mid-write must fail a write, not kill the test */
	signal(SIGPIPE, SIG_IGN);
	R = redis_server_start();
	cr_assert(R);
	S = fs_server_start_id(redis_server_port(R), "dc1", NULL);
	cr_assert(S);
	G = fs_gateway_start(redis_server_port(R), gateway_extra);
	cr_assert(G);
	cr_assert_eq(fs_gateway_wait_ready(G, 10000), 0, "gateway not ready");
	if (replica) {
		G2 = fs_gateway_start_replica(G, NULL);
		cr_assert(G2);
		cr_assert_eq(fs_gateway_wait_ready(G2, 10000), 0, "replica not ready");
	}
}

static void stack_grace_10s(void)
{
	stack_up_with("drain_grace = 10s\n", 0);
}

static void stack_grace_30s(void)
{
	stack_up_with("drain_grace = 30s\n", 0);
}

static void stack_grace_2s_replica(void)
{
	stack_up_with("drain_grace = 2s\n", 1);
}

static void stack_down(void)
{
	fs_gateway_free(G2);
	fs_gateway_free(G);
	fs_server_free(S);
	redis_server_stop(R);
	G = G2 = NULL;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A PATCH's header block for len bytes at offset, on a raw connection. */
static void patch_head(struct tls_conn *c, const char *auth, const char *pub, uint64_t offset,
		       size_t len)
{
	char head[16384];
	int n = snprintf(head, sizeof(head),
			 "PATCH /v1/jobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n" TUS "\r\n"
			 OCTETS "\r\nUpload-Offset: %" PRIu64 "\r\nContent-Length: %zu\r\n\r\n",
			 pub, auth, offset, len);

	cr_assert_eq(tls_conn_send(c, head, (size_t)n), 0, "PATCH headers not sent");
}

/*
 * HEAD of pub on a raw connection: its answer comes after the server's, at MHD's last call, so
 * the connection stays open for another request (an answer at the first call closes it).
 */
static long raw_head(struct tls_conn *c, const char *auth, const char *pub, char *out,
		     size_t cap)
{
	char head[16384];
	int n = snprintf(head, sizeof(head),
			 "HEAD /v1/jobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n" TUS "\r\n\r\n",
			 pub, auth);

	cr_assert_eq(tls_conn_send(c, head, (size_t)n), 0, "HEAD not sent");
	return tls_conn_reply(c, 5000, out, cap);
}

/* Asserts a 503 draining problem with Retry-After and Connection: close. */
static void assert_draining(const struct http_reply *r, const char *what)
{
	char v[256];
	json_t *doc;

	cr_assert_eq(r->status, 503, "%s during drain: %ld %s", what, r->status, r->body);
	cr_assert(http_reply_header(r, "Content-Type", v, sizeof(v)), "%s", r->headers);
	cr_assert_str_eq(v, "application/problem+json");
	doc = json_loadb(r->body, r->body_len, 0, NULL);
	cr_assert(json_is_object(doc), "%s", r->body);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "type")),
			 "urn:fs-gateway:problem:draining", "%s", r->body);
	json_decref(doc);
	cr_assert(http_reply_header(r, "Retry-After", v, sizeof(v)), "%s: no Retry-After", what);
	cr_assert(atoi(v) >= 1, "Retry-After %s", v);
	cr_assert(http_reply_header(r, "Connection", v, sizeof(v)) && !strcmp(v, "close"),
		  "%s: the connection is kept: %s", what, r->headers);
}

static long get_status(const char *url)
{
	struct http_reply r = {0};
	long status = -1;

	if (http_request("GET", url, NULL, NULL, 0, &r) == 0)
		status = r.status;
	http_reply_free(&r);
	return status;
}

Test(gateway_drain, uploads_in_progress_finish_new_ones_get_503, .init = stack_grace_10s,
     .fini = stack_down, .timeout = 90)
{
	enum { LEN = 256 * KIB };
	unsigned char *data = fs_gateway_job_bytes(LEN, 7);
	char *auth = fs_gateway_auth(G, "alice");
	char pub[256], pub2[256], url[512], out[8192];
	const char *put_h[] = {auth, TUS, "Content-Type: application/pdf", NULL};
	const char *post_h[] = {auth, TUS, "Upload-Length: 10",
				"Upload-Metadata: job-id "
				"YjE5ZjNlMmMtN2E0ZC00ZTVmLThhNmItOWMwZDFlMmYzYTRi, "
				"name dGVzdC5wZGY=, format YXBwbGljYXRpb24vcGRm",
				NULL};
	const char *patch_h[] = {auth, TUS, OCTETS, "Upload-Offset: 0", NULL};
	struct http_reply r = {0};
	struct tls_conn *up, *idle;
	int64_t t_term, t_ready, t_answer, t_exit;
	uint64_t off = 0;
	long status;
	int st;
	char *log;

	cr_assert_not_null(data);
	cr_assert_eq(fs_gateway_create(G, auth, "0f6c1f0e-3c55-4c1d-9d7e-1b2a3c4d5e6f", LEN, pub,
				       sizeof(pub)), 201);
	cr_assert_eq(fs_gateway_create(G, auth, "5b0c2a9e-8d1f-4e6a-b7c3-d4e5f6a7b8c9", 10, pub2,
				       sizeof(pub2)), 201);

	/* an upload in progress: half of its body sent */
	up = tls_conn_open(G->port, G->ca_file);
	cr_assert(up);
	patch_head(up, auth, pub, 0, LEN);
	cr_assert_eq(tls_conn_send(up, data, LEN / 2), 0);
	/* a keep-alive connection with no request in progress */
	idle = tls_conn_open(G->port, G->ca_file);
	cr_assert(idle);
	cr_assert_eq(raw_head(idle, auth, pub2, out, sizeof(out)), 200, "%s", out);
	cr_assert(!strcasestr(out, "\r\nConnection: close\r\n"), "closed before: %s", out);
	proc_sleep_ms(300);

	t_term = now_ms();
	cr_assert_eq(fs_gateway_signal(G, SIGTERM), 0);
	snprintf(url, sizeof(url), "%s/readyz", G->url);
	while ((status = get_status(url)) == 200 && now_ms() - t_term < 2000)
		proc_sleep_ms(5);
	t_ready = now_ms();
	cr_assert_eq(status, 503, "/readyz still %ld after SIGTERM", status);
	cr_assert_lt(t_ready - t_term, 500, "/readyz took %" PRId64 " ms to fail",
		     t_ready - t_term);

	/* new uploads of every kind go elsewhere */
	snprintf(url, sizeof(url), "%s/v1/jobs", G->url);
	cr_assert_eq(http_request("POST", url, post_h, NULL, 0, &r), 0);
	assert_draining(&r, "POST");
	http_reply_free(&r);
	snprintf(url, sizeof(url), "%s/v1/jobs/3d1e7c2a-5b4f-4a6e-9c8d-7e6f5a4b3c2d", G->url);
	cr_assert_eq(http_request("PUT", url, put_h, "0123456789", 10, &r), 0);
	assert_draining(&r, "PUT");
	http_reply_free(&r);
	snprintf(url, sizeof(url), "%s/v1/jobs/%s", G->url, pub2);
	cr_assert_eq(http_request("PATCH", url, patch_h, "0123456789", 10, &r), 0);
	assert_draining(&r, "PATCH");
	http_reply_free(&r);
	/* a status question is still answered */
	cr_assert_eq(fs_gateway_head(G, auth, pub2, &off), 200);
	cr_assert_eq(off, 0);

	/* the idle keep-alive connection: its next answer closes it */
	status = raw_head(idle, auth, pub2, out, sizeof(out));
	cr_assert_eq(status, 200, "keep-alive request during drain: %ld [%s]", status, out);
	cr_assert(strcasestr(out, "\r\nConnection: close\r\n"), "kept open: %s", out);
	cr_assert(tls_conn_closed(idle, 2000), "the keep-alive connection stayed open");

	/* the upload in progress finishes */
	cr_assert_eq(tls_conn_send(up, data + LEN / 2, LEN / 2), 0, "the gateway cut the upload");
	cr_assert_eq(tls_conn_reply(up, 10000, out, sizeof(out)), 204, "%s", out);
	t_answer = now_ms();
	cr_assert(strcasestr(out, "Upload-Offset: 262144"), "%s", out);

	/* nothing is left: the process exits at once, not at the end of the grace */
	st = fs_gateway_wait_exit(G, 3000);
	t_exit = now_ms();
	cr_assert_neq(st, -1, "still running %" PRId64 " ms after the last answer",
		      t_exit - t_answer);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "wait status %#x", st);
	cr_assert_lt(t_exit - t_answer, 1000, "exit took %" PRId64 " ms", t_exit - t_answer);
	cr_log_info("drain: /readyz 503 after %" PRId64 " ms; last upload answered %" PRId64
		    " ms after SIGTERM; exit %" PRId64 " ms after it",
		    t_ready - t_term, t_answer - t_term, t_exit - t_answer);
	cr_assert_eq(fs_gateway_committed(S->dir, pub, data, LEN), 0);
	log = fs_gateway_log(G);
	cr_assert(strstr(log, "drained in"), "%s", log);
	free(log);
	tls_conn_free(up);
	tls_conn_free(idle);
	free(auth);
	free(data);
}

Test(gateway_drain, nothing_in_progress_exits_at_once, .init = stack_grace_30s,
     .fini = stack_down, .timeout = 60)
{
	struct tls_conn *idle = tls_conn_open(G->port, G->ca_file);
	char *auth = fs_gateway_auth(G, "carol");
	char out[8192], pub[256];
	int64_t t_term, t_exit;
	int st;

	cr_assert(idle);
	cr_assert_eq(fs_gateway_create(G, auth, "2c9d8e7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f", 100, pub,
				       sizeof(pub)), 201);
	/* a keep-alive connection, idle */
	cr_assert_eq(raw_head(idle, auth, pub, out, sizeof(out)), 200, "%s", out);
	cr_assert(!tls_conn_closed(idle, 300), "the connection was not kept open");
	t_term = now_ms();
	cr_assert_eq(fs_gateway_signal(G, SIGTERM), 0);
	st = fs_gateway_wait_exit(G, 5000);
	t_exit = now_ms();
	cr_assert_neq(st, -1, "a 30 s grace was waited with nothing in progress");
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "wait status %#x", st);
	cr_assert_lt(t_exit - t_term, 2000, "exit took %" PRId64 " ms", t_exit - t_term);
	cr_assert(tls_conn_closed(idle, 2000), "the idle connection outlived the process");
	cr_log_info("drain: idle gateway exited %" PRId64 " ms after SIGTERM", t_exit - t_term);
	tls_conn_free(idle);
	free(auth);
}

Test(gateway_drain, upload_cut_at_grace_resumes_through_another_gateway,
     .init = stack_grace_2s_replica, .fini = stack_down, .timeout = 90)
{
	enum { LEN = 512 * KIB, FIRST = 96 * KIB, STEP = 4 * KIB };
	unsigned char *data = fs_gateway_job_bytes(LEN, 11);
	char *auth = fs_gateway_auth(G, "bob");
	char pub[256];
	struct tls_conn *up;
	int64_t t_term, t_cut = 0, t_exit;
	uint64_t off = 0;
	size_t sent;
	long status = -1;
	int st;

	cr_assert_not_null(data);
	cr_assert_eq(fs_gateway_create(G, auth, "8e7d6c5b-4a39-4281-9f0e-1d2c3b4a5968", LEN, pub,
				       sizeof(pub)), 201);
	up = tls_conn_open(G->port, G->ca_file);
	cr_assert(up);
	patch_head(up, auth, pub, 0, LEN);
	cr_assert_eq(tls_conn_send(up, data, FIRST), 0);
	sent = FIRST;
	proc_sleep_ms(300);

	/* SIGTERM while the body trickles in: far slower than it would take to finish */
	t_term = now_ms();
	cr_assert_eq(fs_gateway_signal(G, SIGTERM), 0);
	while (sent + STEP < LEN && now_ms() - t_term < 10000) {
		if (tls_conn_send(up, data + sent, STEP)) {
			t_cut = now_ms();
			break;
		}
		sent += STEP;
		if (tls_conn_closed(up, 100)) {
			t_cut = now_ms();
			break;
		}
	}
	cr_assert(t_cut, "the gateway did not cut the upload (%zu bytes sent)", sent);
	st = fs_gateway_wait_exit(G, 5000);
	t_exit = now_ms();
	cr_assert_neq(st, -1, "the gateway still runs after its grace");
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "wait status %#x", st);
	cr_assert_geq(t_cut - t_term, 1900, "cut %" PRId64 " ms after SIGTERM, grace is 2 s",
		      t_cut - t_term);
	cr_assert_lt(t_cut - t_term, 3500, "cut %" PRId64 " ms after SIGTERM, grace is 2 s",
		     t_cut - t_term);
	cr_log_info("drain: upload cut %" PRId64 " ms after SIGTERM (grace 2000 ms), exit after %"
		    PRId64 " ms, %zu of %d bytes sent", t_cut - t_term, t_exit - t_term, sent,
		    (int)LEN);

	/* the client resumes through the other replica: HEAD, then PATCH from the server's */
	for (int i = 0; i < 20 && status != 204; i++) {
		cr_assert_eq(fs_gateway_head(G2, auth, pub, &off), 200);
		cr_assert_leq(off, sent, "offset %" PRIu64 " beyond the %zu bytes sent", off, sent);
		status = fs_gateway_patch(G2, auth, pub, off, data + off, LEN - off);
		if (status != 204)
			proc_sleep_ms(100);
	}
	cr_assert_eq(status, 204, "PATCH through the replica: %ld", status);
	cr_assert_gt(off, 0, "nothing of the cut upload was kept");
	cr_assert_eq(fs_gateway_head(G2, auth, pub, &off), 200);
	cr_assert_eq(off, LEN);
	cr_assert_eq(fs_gateway_committed(S->dir, pub, data, LEN), 0);
	tls_conn_free(up);
	free(auth);
	free(data);
}
