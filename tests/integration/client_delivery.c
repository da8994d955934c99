/* fs-client end to end: queue while offline, resume after a cut, locations, compression. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "tests/lib/fs_client.h"
#include "tests/lib/fs_gateway.h"
#include "tests/lib/fs_server.h"
#include "tests/lib/http_client.h"
#include "tests/lib/proc.h"
#include "tests/lib/redis_server.h"
#include "tests/lib/tcpproxy.h"

#define USER "alice"
#define MIB (1024 * 1024)

static struct redis_server *R;
static struct fs_server *S[2];
static struct fs_gateway *G;
static struct fs_client *C;
static struct tcpproxy *P;
static char *work;

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

/* A client whose only location is Default at address addr, with a valid token for USER. */
static void client_at(const char *addr, const char *extra)
{
	char loc[1024];
	char *tok = fs_gateway_token(G, USER, 3600);

	snprintf(loc, sizeof(loc),
		 "{\"current\": \"Default\", \"locations\": [{\"id\": \"Default\", "
		 "\"name\": \"Public server\", \"addresses\": [\"%s\"]}]}", addr);
	C = fs_client_new(G->ca_file, loc, extra);
	cr_assert(C);
	cr_assert(tok);
	cr_assert_eq(fs_client_set_token(C, tok), 0);
	free(tok);
}

static void file_path(char *buf, size_t cap, const char *name)
{
	snprintf(buf, cap, "%s/%s", work, name);
}

/* Every committed job of USER on both servers, as one JSON array (decref). */
static json_t *held_all(void)
{
	json_t *all = json_array();

	for (int i = 0; i < 2; i++) {
		json_t *h = fs_server_held(S[i], USER);
		size_t k;
		json_t *v;

		cr_assert(h, "release API of %s did not answer", S[i]->id);
		json_array_foreach(h, k, v) {
			json_object_set_new(v, "server", json_integer(i));
			json_array_append(all, v);
		}
		json_decref(h);
	}
	return all;
}

/* The committed job with client job id id: its server index and content; fails if not one. */
static char *held_content(json_t *all, const char *id, size_t *len, int64_t *seq)
{
	size_t k;
	json_t *v, *found = NULL;
	unsigned n = 0;

	json_array_foreach(all, k, v) {
		if (strcmp(json_string_value(json_object_get(v, "job_id")), id) == 0) {
			found = v;
			n++;
		}
	}
	cr_assert_eq(n, 1, "job %s committed %u times", id, n);
	*seq = json_integer_value(json_object_get(found, "sequence"));
	return fs_server_content(S[json_integer_value(json_object_get(found, "server"))],
				 json_string_value(json_object_get(found, "id")), len);
}

static void assert_released_equal(json_t *all, const char *id, const char *path, int64_t *seq)
{
	size_t a_len = 0, b_len = 0;
	char *a = held_content(all, id, &a_len, seq);
	char *b = fs_client_read_file(path, &b_len);

	cr_assert(a && b, "content of %s", id);
	cr_assert_eq(a_len, b_len, "job %s: %zu bytes released, the file has %zu", id, a_len,
		     b_len);
	cr_assert(memcmp(a, b, a_len) == 0, "job %s: released bytes differ from the file", id);
	free(a);
	free(b);
}

/* Uploads in progress (receiving) in both servers' spools. */
static int uploads_at_servers(void)
{
	int n = 0;

	for (int i = 0; i < 2; i++) {
		char dir[4200];
		DIR *d;
		struct dirent *e;

		snprintf(dir, sizeof(dir), "%s/spool/uploads", S[i]->dir);
		d = opendir(dir);
		if (!d)
			continue;
		while ((e = readdir(d)))
			n += e->d_name[0] != '.';
		closedir(d);
	}
	return n;
}

static json_t *job_status(json_t *st, size_t i)
{
	return json_array_get(json_object_get(st, "jobs"), i);
}

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

TestSuite(client_delivery, .init = stack_up, .fini = stack_down, .timeout = 120);

Test(client_delivery, offline_queue_then_delivered_in_order)
{
	char paths[3][4300], ids[3][37], *out = NULL;
	size_t sizes[3] = {300 * 1024, 1 * MIB, 2 * MIB + 17};
	int64_t seq[3];
	json_t *st, *all;
	int rc;

	client_at(G->url, NULL);
	cr_assert_eq(fs_gateway_stop(G, 5000) != -1, 1);
	for (int i = 0; i < 3; i++) {
		char name[32];

		snprintf(name, sizeof(name), "doc-%d.bin", i);
		file_path(paths[i], sizeof(paths[i]), name);
		cr_assert_eq(fs_client_make_file(paths[i], sizes[i], (unsigned)i, 1), 0);
		cr_assert_eq(fs_client_submit(C, paths[i], ids[i]), 0);
	}
	/* The gateway is down: one attempt leaves everything queued and says why. */
	rc = fs_client_cmd(C, NULL, 30000, "deliver", NULL);
	cr_assert_eq(rc, 3, "deliver with the gateway down: exit %d", rc);
	st = fs_client_status(C);
	cr_assert(st);
	cr_assert_eq(json_array_size(json_object_get(st, "jobs")), 3);
	for (int i = 0; i < 3; i++) {
		json_t *j = job_status(st, (size_t)i);

		cr_assert_str_eq(jstr(j, "job_id"), ids[i], "queue order");
		cr_assert_str_eq(jstr(j, "state"), "waiting");
		cr_assert(strstr(jstr(j, "error"), "waiting for network"), "error: %s",
			  jstr(j, "error"));
		cr_assert_eq(json_integer_value(json_object_get(j, "delivered")), 0);
	}
	cr_assert_eq(json_is_false(json_object_get(json_object_get(st, "network"), "online")), 1);
	json_decref(st);
	/* The human status screen names the state too. */
	cr_assert_eq(fs_client_cmd(C, &out, 30000, "status", NULL), 0);
	cr_assert(strstr(out, "waiting for network"), "status:\n%s", out);
	free(out);

	cr_assert_eq(fs_gateway_restart(G), 0);
	cr_assert_eq(fs_gateway_wait_ready(G, 10000), 0);
	rc = fs_client_cmd(C, NULL, 60000, "deliver", NULL);
	cr_assert_eq(rc, 0, "deliver with the gateway up: exit %d", rc);
	cr_assert_eq(fs_client_queued(C), 0);
	all = held_all();
	cr_assert_eq(json_array_size(all), 3, "3 jobs committed, found %zu",
		     json_array_size(all));
	for (int i = 0; i < 3; i++)
		assert_released_equal(all, ids[i], paths[i], &seq[i]);
	cr_assert(seq[0] < seq[1] && seq[1] < seq[2], "print order: sequences %" PRId64
		  " %" PRId64 " %" PRId64, seq[0], seq[1], seq[2]);
	json_decref(all);
}

Test(client_delivery, resumes_from_the_offset_after_a_cut)
{
	char path[4300], id[37], addr[64];
	const size_t size = 32 * MIB;
	uint64_t up_first, up_total, resent;
	json_t *st, *all;
	int64_t seq;
	int rc;

	P = tcpproxy_start(G->port);
	cr_assert(P);
	snprintf(addr, sizeof(addr), "https://127.0.0.1:%d", tcpproxy_port(P));
	client_at(addr, NULL);
	file_path(path, sizeof(path), "big.bin");
	cr_assert_eq(fs_client_make_file(path, size, 7, 1), 0);
	cr_assert_eq(fs_client_submit(C, path, id), 0);

	/* The connection breaks after 12 MiB went up. */
	tcpproxy_cut_after(P, 12 * MIB);
	rc = fs_client_cmd(C, NULL, 60000, "deliver", NULL);
	cr_assert_eq(rc, 3, "deliver across the cut: exit %d", rc);
	cr_assert_eq(tcpproxy_cuts(P), 1);
	up_first = tcpproxy_up_bytes(P);
	st = fs_client_status(C);
	cr_assert_str_eq(jstr(job_status(st, 0), "state"), "uploading");
	cr_assert(jstr(job_status(st, 0), "destination")[0], "the Location is kept");
	json_decref(st);

	rc = fs_client_cmd(C, NULL, 60000, "deliver", NULL);
	cr_assert_eq(rc, 0, "deliver after the cut: exit %d", rc);
	up_total = tcpproxy_up_bytes(P);
	/* Everything that went up beyond the job itself: headers, TLS and any bytes sent twice. */
	resent = up_total > size ? up_total - size : 0;
	fprintf(stderr, "resume: job %zu bytes; %" PRIu64 " bytes up before the cut, %" PRIu64
		" in total, %" PRIu64 " beyond the job (%.2f %%)\n", size, up_first, up_total,
		resent, 100.0 * (double)resent / (double)size);
	/*
	 * Starting over would send the 12 MiB again. What is sent twice is only what was in
	 * flight at the cut (socket buffers between the gateway and the server, up to a few MiB
	 * on loopback).
	 */
	cr_assert_lt(resent, up_first / 2, "resumed from the offset: %" PRIu64 " bytes beyond the "
		     "job, %" PRIu64 " were sent before the cut", resent, up_first);
	all = held_all();
	assert_released_equal(all, id, path, &seq);
	json_decref(all);
}

Test(client_delivery, location_failover_then_default)
{
	char path[4300], id[37], loc[2048], dead[64], via_proxy[64];
	json_t *st, *all;
	int64_t seq;
	int rc;
	char *tok;

	P = tcpproxy_start(G->port);
	cr_assert(P);
	snprintf(dead, sizeof(dead), "https://127.0.0.1:%d", proc_free_port());
	snprintf(via_proxy, sizeof(via_proxy), "https://127.0.0.1:%d", tcpproxy_port(P));
	/* The office: a dead first address, a working second one; Default: the gateway itself. */
	snprintf(loc, sizeof(loc),
		 "{\"current\": \"office\", \"locations\": ["
		 "{\"id\": \"office\", \"name\": \"Office\", \"addresses\": [\"%s\", \"%s\"]},"
		 "{\"id\": \"Default\", \"addresses\": [\"%s\"]}]}", dead, via_proxy, G->url);
	C = fs_client_new(G->ca_file, loc, NULL);
	cr_assert(C);
	tok = fs_gateway_token(G, USER, 3600);
	cr_assert_eq(fs_client_set_token(C, tok), 0);
	free(tok);

	file_path(path, sizeof(path), "one.bin");
	cr_assert_eq(fs_client_make_file(path, 512 * 1024, 1, 1), 0);
	cr_assert_eq(fs_client_submit(C, path, id), 0);
	rc = fs_client_cmd(C, NULL, 60000, "deliver", NULL);
	cr_assert_eq(rc, 0, "exit %d", rc);
	st = fs_client_status(C);
	cr_assert_str_eq(jstr(json_object_get(st, "network"), "address"), via_proxy,
			 "the second office address is used");
	cr_assert_str_eq(jstr(json_object_get(st, "network"), "location"), "office");
	json_decref(st);
	cr_assert_gt(tcpproxy_up_bytes(P), 512 * 1024, "the job went through the office address");

	/* The whole office is dead: the Default location takes the next job. */
	tcpproxy_set_down(P, 1);
	cr_assert_eq(fs_client_make_file(path, 256 * 1024, 2, 1), 0);
	cr_assert_eq(fs_client_submit(C, path, id), 0);
	rc = fs_client_cmd(C, NULL, 60000, "deliver", NULL);
	cr_assert_eq(rc, 0, "exit %d", rc);
	st = fs_client_status(C);
	cr_assert_str_eq(jstr(json_object_get(st, "network"), "address"), G->url);
	cr_assert_str_eq(jstr(json_object_get(st, "network"), "location"), "Default");
	json_decref(st);
	all = held_all();
	cr_assert_eq(json_array_size(all), 2);
	assert_released_equal(all, id, path, &seq);
	json_decref(all);

	/* --location overrides the file's current location. */
	{
		char *out = NULL;

		cr_assert_eq(fs_client_cmd(C, &out, 10000, "locations", "--location", "Default",
					   "--json", NULL), 0);
		cr_assert(strstr(out, "\"order\": [\n    \"Default\"\n  ]"), "%s", out);
		free(out);
		cr_assert_eq(fs_client_cmd(C, NULL, 10000, "deliver", "--location", "nowhere",
					   NULL), 2, "an unknown location is a usage error");
	}
}

Test(client_delivery, compressed_job_smaller_on_the_wire)
{
	char path[4300], id[37], addr[64];
	const size_t size = 8 * MIB;
	json_t *st, *j, *all;
	double saved;
	int64_t seq;
	int rc;

	P = tcpproxy_start(G->port);
	cr_assert(P);
	snprintf(addr, sizeof(addr), "https://127.0.0.1:%d", tcpproxy_port(P));
	client_at(addr, NULL);
	file_path(path, sizeof(path), "report.txt");
	cr_assert_eq(fs_client_make_file(path, size, 3, 0), 0);
	cr_assert_eq(fs_client_submit(C, path, id), 0);
	st = fs_client_status(C);
	j = job_status(st, 0);
	cr_assert_str_eq(jstr(j, "encoding"), "zstd");
	cr_assert_str_eq(jstr(j, "format"), "text/plain", "detected from the bytes");
	saved = json_real_value(json_object_get(j, "saved_percent"));
	cr_assert_gt(saved, 50.0, "saved %.1f %%", saved);
	json_decref(st);

	rc = fs_client_cmd(C, NULL, 60000, "deliver", NULL);
	cr_assert_eq(rc, 0, "exit %d", rc);
	fprintf(stderr, "compression: %zu-byte document, %" PRIu64 " bytes on the wire "
		"(saved %.1f %% in the queue)\n", size, tcpproxy_up_bytes(P), saved);
	cr_assert_lt(tcpproxy_up_bytes(P), size / 2, "bytes on the wire %" PRIu64,
		     tcpproxy_up_bytes(P));
	all = held_all();
	assert_released_equal(all, id, path, &seq);
	json_decref(all);
}

Test(client_delivery, run_picks_up_new_jobs_and_cancel_ends_an_upload)
{
	char path[4300], big[4300], id[37], bid[37];
	int64_t t0;
	json_t *all, *st;
	long n;

	client_at(G->url, "max_rate = 1M");
	cr_assert_eq(fs_client_run_start(C), 0);
	usleep(500 * 1000);
	/* An idle runner takes a new job at once (its idle poll is 30 s). */
	file_path(path, sizeof(path), "quick.bin");
	cr_assert_eq(fs_client_make_file(path, 64 * 1024, 4, 1), 0);
	t0 = mono_ms();
	cr_assert_eq(fs_client_submit(C, path, id), 0);
	cr_assert_eq(fs_client_wait_empty(C, 10000), 0, "not delivered");
	fprintf(stderr, "run: a new job was delivered %" PRId64 " ms after submit\n",
		mono_ms() - t0);
	cr_assert_lt(mono_ms() - t0, 5000);

	/* Cancel while it uploads (1 MiB/s): the upload ends and nothing is committed. */
	file_path(big, sizeof(big), "big.bin");
	cr_assert_eq(fs_client_make_file(big, 16 * MIB, 5, 1), 0);
	cr_assert_eq(fs_client_submit(C, big, bid), 0);
	for (int i = 0; i < 100; i++) {
		st = fs_client_status(C);
		n = json_integer_value(json_object_get(job_status(st, 0), "delivered"));
		json_decref(st);
		if (n > 0)
			break;
		usleep(100 * 1000);
	}
	cr_assert_gt(n, 0, "the upload started");
	cr_assert_eq(fs_client_cmd(C, NULL, 10000, "cancel", bid, NULL), 0);
	cr_assert_eq(fs_client_queued(C), 0);
	/* The runner ends the upload at its server: no upload is left in either spool. */
	for (int i = 0; i < 50 && uploads_at_servers() > 0; i++)
		usleep(100 * 1000);
	cr_assert_eq(uploads_at_servers(), 0, "the cancelled upload was terminated");
	all = held_all();
	cr_assert_eq(json_array_size(all), 1, "only the first job is held");
	json_decref(all);
	cr_assert_eq(fs_client_run_stop(C, 5000) != -1, 1);
	cr_assert_eq(fs_client_cmd(C, NULL, 10000, "cancel", bid, NULL), 1, "already gone");
}

Test(client_delivery, retry_after_is_honoured)
{
	char path[4300], id[37];
	json_t *st, *net;
	int64_t checked, next;
	char *out = NULL;
	int rc;

	/* No data-center server: the gateway answers 503 with Retry-After (5 s by default). */
	for (int i = 0; i < 2; i++)
		fs_server_stop(S[i], 5000);
	usleep(700 * 1000);
	client_at(G->url, NULL);
	file_path(path, sizeof(path), "later.bin");
	cr_assert_eq(fs_client_make_file(path, 32 * 1024, 6, 1), 0);
	cr_assert_eq(fs_client_submit(C, path, id), 0);
	rc = fs_client_cmd(C, NULL, 30000, "deliver", NULL);
	cr_assert_eq(rc, 3, "exit %d", rc);
	st = fs_client_status(C);
	cr_assert(strstr(jstr(job_status(st, 0), "error"), "503"), "error: %s",
		  jstr(job_status(st, 0), "error"));
	cr_assert_str_eq(jstr(job_status(st, 0), "state"), "waiting");
	json_decref(st);

	/* run waits what the gateway asked, though its own backoff tops out at 2 s here. */
	cr_assert_eq(fs_client_run_start(C), 0);
	usleep(1500 * 1000);
	st = fs_client_status(C);
	net = json_object_get(st, "network");
	checked = json_integer_value(json_object_get(net, "checked_at_ms"));
	next = json_integer_value(json_object_get(net, "next_attempt_at_ms"));
	cr_assert(json_is_true(json_object_get(net, "deliverer_running")));
	cr_assert_geq(next - checked, 4500, "next attempt %" PRId64 " ms after the 503", next - checked);
	json_decref(st);
	cr_assert_eq(fs_client_cmd(C, &out, 10000, "status", NULL), 0);
	cr_assert(strstr(out, "next attempt in"), "%s", out);
	free(out);
	cr_assert_eq(fs_client_run_stop(C, 5000) != -1, 1);
}
