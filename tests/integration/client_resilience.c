/* fs-client under bad days: kill -9 mid-delivery, an expired token, hotel captive portals. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "client/queue.h"
#include "proto/digest.h"
#include "proto/meta.h"
#include "tests/lib/fs_client.h"
#include "tests/lib/fs_gateway.h"
#include "tests/lib/fs_server.h"
#include "tests/lib/http_client.h"
#include "tests/lib/jwt.h"
#include "tests/lib/portal.h"
#include "tests/lib/proc.h"
#include "tests/lib/redis_server.h"
#include "tests/lib/tcpproxy.h"

#define USER "bob"
#define MIB (1024 * 1024)

static struct redis_server *R;
static struct fs_server *S[2];
static struct fs_gateway *G;
static struct fs_client *C;
static struct tcpproxy *P;
static struct portal *PORTAL;
static char *work;

static void stack_up(void)
{
	R = redis_server_start();
	cr_assert(R, "redis-server did not start");
	S[0] = fs_server_start_id(redis_server_port(R), "dc1", NULL);
	S[1] = fs_server_start_id(redis_server_port(R), "dc2", NULL);
	cr_assert(S[0] && S[1], "fs-server did not start");
	G = fs_gateway_start(redis_server_port(R), NULL);
	cr_assert(G, "fs-gateway did not start");
	http_client_tls(G->ca_file, NULL, NULL);
	cr_assert_eq(fs_gateway_wait_ready(G, 10000), 0, "gateway not ready");
	work = proc_tempdir("client-files");
	cr_assert(work);
}

static void stack_down(void)
{
	fs_client_report(C);
	fs_client_free(C);
	C = NULL;
	portal_free(PORTAL);
	PORTAL = NULL;
	tcpproxy_free(P);
	P = NULL;
	fs_gateway_free(G);
	G = NULL;
	fs_server_free(S[0]);
	fs_server_free(S[1]);
	S[0] = S[1] = NULL;
	redis_server_stop(R);
	R = NULL;
	if (work)
		proc_rmtree(work);
	free(work);
	work = NULL;
}

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

static void client_at(const char *addr, const char *ca_file, const char *extra)
{
	char loc[1024];
	char *tok = fs_gateway_token(G, USER, 3600);

	snprintf(loc, sizeof(loc),
		 "{\"locations\": [{\"id\": \"Default\", \"addresses\": [\"%s\"]}]}", addr);
	C = fs_client_new(ca_file, loc, extra);
	cr_assert(C);
	cr_assert_eq(fs_client_set_token(C, tok), 0);
	free(tok);
}

/* Committed jobs of USER with client job id id, over both servers. */
static unsigned committed(const char *id, size_t *total)
{
	unsigned n = 0;

	*total = 0;
	for (int i = 0; i < 2; i++) {
		json_t *h = fs_server_held(S[i], USER), *v;
		size_t k;

		cr_assert(h);
		*total += json_array_size(h);
		json_array_foreach(h, k, v)
			n += strcmp(jstr(v, "job_id"), id) == 0;
		json_decref(h);
	}
	return n;
}

TestSuite(client_resilience, .init = stack_up, .fini = stack_down, .timeout = 150);

Test(client_resilience, kill_9_mid_delivery_loses_nothing_prints_nothing_twice)
{
	char paths[3][4300], ids[3][37];
	unsigned kills = 0;
	size_t total = 0;

	/* 2 MiB/s: each 6 MiB job takes about 3 s, so the kills land mid-upload. */
	client_at(G->url, G->ca_file, "max_rate = 2M");
	for (int i = 0; i < 3; i++) {
		char name[32];

		snprintf(name, sizeof(name), "k%d.bin", i);
		snprintf(paths[i], sizeof(paths[i]), "%s/%s", work, name);
		cr_assert_eq(fs_client_make_file(paths[i], 6 * MIB, (unsigned)(10 + i), 1), 0);
		cr_assert_eq(fs_client_submit(C, paths[i], ids[i]), 0);
	}
	/* Kill it at varied moments: during creation, mid-PATCH, near the end. */
	static const int delays_ms[] = {150, 900, 1700, 400, 2600, 60, 1200};

	for (size_t k = 0; k < sizeof(delays_ms) / sizeof(delays_ms[0]); k++) {
		cr_assert_eq(fs_client_run_start(C), 0);
		usleep((useconds_t)delays_ms[k] * 1000);
		kill(C->run_pid, SIGKILL);
		waitpid(C->run_pid, NULL, 0);
		C->run_pid = 0;
		kills++;
		if (fs_client_queued(C) == 0)
			break;
	}
	cr_assert_eq(fs_client_run_start(C), 0);
	cr_assert_eq(fs_client_wait_empty(C, 60000), 0, "queue not empty after the kills");
	cr_assert_eq(fs_client_run_stop(C, 5000) != -1, 1);
	for (int i = 0; i < 3; i++) {
		size_t blen = 0, alen = 0;
		unsigned n = committed(ids[i], &total);
		char *a, *b;
		json_t *v;
		size_t k;
		int srv = -1;
		const char *sid = NULL;

		cr_assert_eq(n, 1, "job %d committed %u times after %u kills", i, n, kills);
		for (int s = 0; s < 2 && srv < 0; s++) {
			json_t *h = fs_server_held(S[s], USER);

			json_array_foreach(h, k, v) {
				if (strcmp(jstr(v, "job_id"), ids[i]) == 0) {
					srv = s;
					sid = strdup(jstr(v, "id"));
				}
			}
			json_decref(h);
		}
		a = fs_server_content(S[srv], sid, &alen);
		b = fs_client_read_file(paths[i], &blen);
		cr_assert(a && b && alen == blen && memcmp(a, b, alen) == 0,
			  "job %d: released bytes differ", i);
		free(a);
		free(b);
		free((void *)sid);
	}
	cr_assert_eq(total, 3, "exactly 3 jobs committed in all, found %zu", total);
	fprintf(stderr, "kill -9: %u kills, 3 jobs committed once each\n", kills);
}

Test(client_resilience, expired_token_holds_the_job_with_a_clear_error)
{
	char path[4300], id[37], *out = NULL, *tok;
	int64_t now = (int64_t)time(NULL);
	json_t *st, *j;
	size_t total;
	int rc;

	client_at(G->url, G->ca_file, NULL);
	tok = jwt_mint_claims(G->keys, "rsa-1", "RS256", FS_GATEWAY_ISSUER, FS_GATEWAY_AUDIENCE,
			      USER, now - 7200, now - 7200, now - 3600);
	cr_assert(tok);
	cr_assert_eq(fs_client_set_token(C, tok), 0);
	free(tok);
	snprintf(path, sizeof(path), "%s/t.bin", work);
	cr_assert_eq(fs_client_make_file(path, 100 * 1024, 1, 1), 0);
	cr_assert_eq(fs_client_submit(C, path, id), 0);
	rc = fs_client_cmd(C, NULL, 30000, "deliver", NULL);
	cr_assert_eq(rc, 3, "a refused token leaves the job queued: exit %d", rc);
	st = fs_client_status(C);
	j = json_array_get(json_object_get(st, "jobs"), 0);
	cr_assert_str_eq(jstr(j, "job_id"), id);
	cr_assert_str_eq(jstr(j, "state"), "auth");
	cr_assert(strstr(jstr(j, "error"), "refused the token"), "error: %s", jstr(j, "error"));
	cr_assert(strstr(jstr(j, "error"), "401"), "error: %s", jstr(j, "error"));
	json_decref(st);
	cr_assert_eq(fs_client_cmd(C, &out, 30000, "status", NULL), 0);
	cr_assert(strstr(out, "refused the token"), "status:\n%s", out);
	free(out);
	/* The same token is not tried again: a second pass sends nothing. */
	rc = fs_client_cmd(C, NULL, 30000, "deliver", NULL);
	cr_assert_eq(rc, 3);
	cr_assert_eq(committed(id, &total), 0);
	/* A renewed token delivers it. */
	tok = fs_gateway_token(G, USER, 3600);
	cr_assert_eq(fs_client_set_token(C, tok), 0);
	free(tok);
	rc = fs_client_cmd(C, NULL, 30000, "deliver", NULL);
	cr_assert_eq(rc, 0, "exit %d", rc);
	cr_assert_eq(committed(id, &total), 1);
}

/*
 * A hotel network: the address answers with a login page (trusted or not) until the user logs
 * in; then it reaches the real gateway. The job waits, status says so, the token never reaches
 * the portal, and delivery succeeds afterwards.
 */
static void portal_case(enum portal_mode mode, int trusted)
{
	char path[4300], id[37], addr[64], bundle[4300], *pem_g, *pem_p, *both;
	json_t *st, *j, *net;
	size_t total;
	int rc;

	PORTAL = portal_start(mode);
	cr_assert(PORTAL);
	P = tcpproxy_start(portal_port(PORTAL));
	cr_assert(P);
	snprintf(addr, sizeof(addr), "https://127.0.0.1:%d", tcpproxy_port(P));
	/* Trusted portal: the client's CA bundle holds both certificates. */
	pem_g = proc_read_file(G->ca_file);
	pem_p = proc_read_file(portal_cert_file(PORTAL));
	cr_assert(asprintf(&both, "%s\n%s", pem_g, trusted ? pem_p : "") > 0);
	cr_assert_eq(proc_write_file(work, "bundle.pem", both), 0);
	snprintf(bundle, sizeof(bundle), "%s/bundle.pem", work);
	free(pem_g);
	free(pem_p);
	free(both);
	client_at(addr, bundle, NULL);
	snprintf(path, sizeof(path), "%s/p.bin", work);
	cr_assert_eq(fs_client_make_file(path, 200 * 1024, 2, 1), 0);
	cr_assert_eq(fs_client_submit(C, path, id), 0);

	rc = fs_client_cmd(C, NULL, 30000, "deliver", NULL);
	cr_assert_eq(rc, 3, "behind a portal the job stays queued: exit %d", rc);
	st = fs_client_status(C);
	net = json_object_get(st, "network");
	j = json_array_get(json_object_get(st, "jobs"), 0);
	cr_assert(json_is_false(json_object_get(net, "online")));
	cr_assert(strstr(jstr(net, "message"), "waiting for network"), "network: %s",
		  jstr(net, "message"));
	cr_assert(strstr(jstr(net, "message"), trusted ? "web page" : "certificate"),
		  "network: %s", jstr(net, "message"));
	cr_assert_str_eq(jstr(j, "state"), "waiting");
	cr_assert(strstr(jstr(j, "error"), "waiting for network"), "job: %s", jstr(j, "error"));
	json_decref(st);
	if (trusted)
		cr_assert_geq(portal_requests(PORTAL), 1, "the portal was asked");
	else
		cr_assert_geq(portal_handshake_failures(PORTAL), 1, "the portal's certificate "
			      "was refused");
	cr_assert_eq(portal_saw_authorization(PORTAL), 0, "the token never reaches a portal");
	cr_assert_eq(committed(id, &total), 0);

	/* The user logs in: the same address now reaches the gateway. */
	tcpproxy_set_target(P, G->port);
	rc = fs_client_cmd(C, NULL, 30000, "deliver", NULL);
	cr_assert_eq(rc, 0, "after the login: exit %d", rc);
	cr_assert_eq(committed(id, &total), 1);
}

Test(client_resilience, captive_portal_html_page)
{
	portal_case(PORTAL_HTML, 1);
}

Test(client_resilience, captive_portal_redirect)
{
	portal_case(PORTAL_REDIRECT, 1);
}

Test(client_resilience, captive_portal_untrusted_certificate)
{
	portal_case(PORTAL_HTML, 0);
}

/*
 * The crash after the last byte: the server committed the job but fs-client died before the
 * answer. Its state says a Location and that the last byte left. The next attempt must find
 * the job through HEAD and the empty PATCH (never POST it anew), and commit nothing twice.
 */
Test(client_resilience, answer_lost_after_the_last_byte)
{
	char path[4300], id[37], meta[META_HEADER_MAX + 1], hmeta[META_HEADER_MAX + 32];
	char digest[DIGEST_REPR_LEN + 1], hdig[DIGEST_REPR_LEN + 32], hlen[64], loc[512], url[700];
	char *auth, *body;
	size_t len = 0, total;
	struct queue_job job;
	struct queue_state st;
	struct job_meta m;
	struct http_reply r;
	int rc;

	client_at(G->url, G->ca_file, "compress = never");
	snprintf(path, sizeof(path), "%s/lost.bin", work);
	cr_assert_eq(fs_client_make_file(path, 300 * 1024, 9, 1), 0);
	cr_assert_eq(fs_client_submit(C, path, id), 0);
	cr_assert_eq(queue_find(C->queue_dir, id, &job, &st), QUEUE_OK);

	/* What the killed fs-client had sent: the creation and every byte, committed. */
	auth = fs_gateway_auth(G, USER);
	meta_init(&m, job.job_id);
	snprintf(m.format, sizeof(m.format), "%s", job.format);
	cr_assert_eq(meta_encode(&m, meta, sizeof(meta), NULL), PROTO_OK);
	cr_assert_eq(digest_repr_format(job.sha256, digest, sizeof(digest)), PROTO_OK);
	snprintf(hmeta, sizeof(hmeta), "Upload-Metadata: %s", meta);
	snprintf(hdig, sizeof(hdig), "Repr-Digest: %s", digest);
	snprintf(hlen, sizeof(hlen), "Upload-Length: %zu", (size_t)job.stored_size);
	{
		const char *h[] = {auth, "Tus-Resumable: 1.0.0", hmeta, hdig, hlen, NULL};

		snprintf(url, sizeof(url), "%s/v1/jobs", G->url);
		cr_assert_eq(http_request("POST", url, h, NULL, 0, &r), 0);
		cr_assert_eq(r.status, 201);
		cr_assert(http_reply_header(&r, "Location", loc, sizeof(loc)));
		http_reply_free(&r);
	}
	body = fs_client_read_file(path, &len);
	{
		const char *h[] = {auth, "Tus-Resumable: 1.0.0", "Upload-Offset: 0",
				   "Content-Type: application/offset+octet-stream", NULL};

		snprintf(url, sizeof(url), "%s%s", G->url, loc);
		cr_assert_eq(http_request("PATCH", url, h, body, len, &r), 0);
		cr_assert_eq(r.status, 204, "the job is committed");
		http_reply_free(&r);
	}
	free(body);
	free(auth);
	cr_assert_eq(committed(id, &total), 1);
	snprintf(st.base, sizeof(st.base), "%s", G->url);
	snprintf(st.location, sizeof(st.location), "%s", loc);
	st.phase = QUEUE_PHASE_UPLOADING;
	st.offset = job.stored_size;
	st.final_sent = 1;
	cr_assert_eq(queue_state_save(&job, &st), QUEUE_OK);

	rc = fs_client_cmd(C, NULL, 30000, "deliver", NULL);
	cr_assert_eq(rc, 0, "exit %d", rc);
	cr_assert_eq(fs_client_queued(C), 0, "the local copy goes once the server confirms");
	cr_assert_eq(committed(id, &total), 1, "still one job");
	cr_assert_eq(total, 1);
}
