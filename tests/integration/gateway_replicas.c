/* Three gateway replicas on one Redis and two servers: any replica carries on any upload. */
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

static struct redis_server *R;
static struct fs_server *S1, *S2;
static struct fs_gateway *A, *B, *C;

static void stack_up(void)
{
	/* a peer that closes mid-write must fail a write, not kill the test */
	signal(SIGPIPE, SIG_IGN);
	R = redis_server_start();
	cr_assert(R);
	S1 = fs_server_start_id(redis_server_port(R), "dc1", NULL);
	S2 = fs_server_start_id(redis_server_port(R), "dc2", NULL);
	cr_assert(S1 && S2);
	A = fs_gateway_start(redis_server_port(R), NULL);
	cr_assert(A);
	B = fs_gateway_start_replica(A, NULL);
	C = fs_gateway_start_replica(A, NULL);
	cr_assert(B && C);
	cr_assert_eq(fs_gateway_wait_ready(A, 10000), 0, "A not ready");
	cr_assert_eq(fs_gateway_wait_ready(B, 10000), 0, "B not ready");
	cr_assert_eq(fs_gateway_wait_ready(C, 10000), 0, "C not ready");
}

static void stack_down(void)
{
	fs_gateway_free(C);
	fs_gateway_free(B);
	fs_gateway_free(A);
	fs_server_free(S2);
	fs_server_free(S1);
	redis_server_stop(R);
}

/* The spool directory of the server a public id names. */
static const char *server_dir(const char *pub)
{
	size_t n = strcspn(pub, ".");

	if (n == strlen(S1->id) && !strncmp(pub, S1->id, n))
		return S1->dir;
	cr_assert(n == strlen(S2->id) && !strncmp(pub, S2->id, n), "public id %s", pub);
	return S2->dir;
}

/* GET the status object through g; its "state". */
static void assert_state(const struct fs_gateway *g, const char *auth, const char *pub,
			 const char *state)
{
	char url[512];
	const char *h[] = {auth, TUS, NULL};
	struct http_reply r = {0};
	json_t *doc;

	snprintf(url, sizeof(url), "%s/v1/jobs/%s", g->url, pub);
	cr_assert_eq(http_request("GET", url, h, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 200, "GET %ld %s", r.status, r.body);
	doc = json_loadb(r.body, r.body_len, 0, NULL);
	cr_assert(json_is_object(doc), "%s", r.body);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "state")), state, "%s", r.body);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "id")), pub, "%s", r.body);
	json_decref(doc);
	http_reply_free(&r);
}

Test(gateway_replicas, upload_resumes_through_another_gateway_after_sigkill, .init = stack_up,
     .fini = stack_down, .timeout = 90)
{
	enum { LEN = 1024 * KIB, FIRST = 320 * KIB };
	unsigned char *data = fs_gateway_job_bytes(LEN, 3);
	char *auth = fs_gateway_auth(A, "erin");
	char pub[256], head[16384];
	struct tls_conn *up;
	uint64_t off = 0;
	long status = -1;
	int n, st, tries = 0;

	cr_assert_not_null(data);
	cr_assert_eq(fs_gateway_create(A, auth, "4d3c2b1a-0f9e-4d8c-b7a6-958473625140", LEN, pub,
				       sizeof(pub)), 201);
	up = tls_conn_open(A->port, A->ca_file);
	cr_assert(up);
	n = snprintf(head, sizeof(head),
		     "PATCH /v1/jobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n" TUS "\r\n"
		     "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
		     "Content-Length: %d\r\n\r\n", pub, auth, LEN);
	cr_assert_eq(tls_conn_send(up, head, (size_t)n), 0);
	cr_assert_eq(tls_conn_send(up, data, FIRST), 0);
	proc_sleep_ms(500);

	/* the gateway dies mid-body: no drain, no goodbye */
	cr_assert_eq(fs_gateway_signal(A, SIGKILL), 0);
	st = fs_gateway_wait_exit(A, 5000);
	cr_assert(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %#x", st);
	tls_conn_free(up);

	/* the client resumes through B: HEAD for the server's offset, PATCH the rest */
	while (status != 204 && tries++ < 20) {
		cr_assert_eq(fs_gateway_head(B, auth, pub, &off), 200);
		cr_assert_leq(off, FIRST, "offset %" PRIu64 " beyond the bytes sent", off);
		status = fs_gateway_patch(B, auth, pub, off, data + off, LEN - off);
		if (status != 204)
			proc_sleep_ms(100);
	}
	cr_assert_eq(status, 204, "PATCH through B: %ld", status);
	cr_assert_gt(off, 0, "nothing of the interrupted upload was kept");
	cr_log_info("replicas: A killed after %d bytes; B resumed at offset %" PRIu64
		    " after %d tries", (int)FIRST, off, tries);
	cr_assert_eq(fs_gateway_head(C, auth, pub, &off), 200);
	cr_assert_eq(off, LEN);
	assert_state(C, auth, pub, "committed");
	cr_assert_eq(fs_gateway_committed(server_dir(pub), pub, data, LEN), 0);
	free(auth);
	free(data);
}

Test(gateway_replicas, a_job_created_through_one_gateway_is_served_by_any, .init = stack_up,
     .fini = stack_down, .timeout = 60)
{
	enum { LEN = 200 * KIB };
	unsigned char *data = fs_gateway_job_bytes(LEN, 5);
	char *auth = fs_gateway_auth(A, "frank");
	char pub[256];
	uint64_t off = 1;

	cr_assert_not_null(data);
	cr_assert_eq(fs_gateway_create(A, auth, "9a8b7c6d-5e4f-4321-8fed-cba987654321", LEN, pub,
				       sizeof(pub)), 201);
	cr_assert_eq(fs_gateway_head(C, auth, pub, &off), 200, "C does not know A's job");
	cr_assert_eq(off, 0);
	cr_assert_eq(fs_gateway_patch(B, auth, pub, 0, data, LEN / 2), 204);
	cr_assert_eq(fs_gateway_head(C, auth, pub, &off), 200);
	cr_assert_eq(off, LEN / 2);
	cr_assert_eq(fs_gateway_patch(C, auth, pub, LEN / 2, data + LEN / 2, LEN - LEN / 2), 204);
	assert_state(A, auth, pub, "committed");
	assert_state(B, auth, pub, "committed");
	cr_assert_eq(fs_gateway_committed(server_dir(pub), pub, data, LEN), 0);

	/* another user's token names no such job at any replica */
	{
		char *other = fs_gateway_auth(A, "mallory");

		cr_assert_eq(fs_gateway_head(C, other, pub, &off), 404);
		free(other);
	}
	free(auth);
	free(data);
}
