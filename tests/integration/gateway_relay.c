/* The gateway relaying real uploads to real fs-servers: tus, PUT, ownership, aborts, crashes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "proto/base64.h"
#include "proto/digest.h"
#include "proto/route.h"
#include "tests/lib/fs_gateway.h"
#include "tests/lib/fs_server.h"
#include "tests/lib/http_client.h"
#include "tests/lib/redis_server.h"
#include "tests/lib/proc.h"

#define MIB (1024 * 1024)
#define TUS "Tus-Resumable: 1.0.0"
#define OCTETS "Content-Type: application/offset+octet-stream"
#define PROBLEM_PREFIX "urn:fs-gateway:problem:"
/* Short client limits, so that a client that left is noticed within a test's patience. */
#define SLOW_CLIENT_CONFIG "idle_timeout = 2s\nmin_upload_rate = 1K\nrate_window = 2s\n"

static struct redis_server *R;
static struct fs_server *S1, *S2;
static struct fs_gateway *G;

static void stack_up_with(const char *server_extra, const char *gateway_extra)
{
	/* a peer that closes mid-write must fail a write, not kill the test */
	signal(SIGPIPE, SIG_IGN);
	R = redis_server_start();
	cr_assert(R);
	S1 = fs_server_start_id(redis_server_port(R), "dc1", server_extra);
	S2 = fs_server_start_id(redis_server_port(R), "dc2", server_extra);
	cr_assert(S1 && S2);
	G = fs_gateway_start(redis_server_port(R), gateway_extra);
	cr_assert(G);
	cr_assert_eq(fs_gateway_wait_ready(G, 10000), 0, "gateway not ready");
}

static void stack_up(void)
{
	stack_up_with(NULL, NULL);
}

/*
 * Short idle limits for the client-abort test. The servers need one too: fs-server (MHD 0.9.75,
 * epoll) misses an end of stream that arrives together with the last body bytes, so an aborted
 * upstream PATCH stays in progress there until its idle timeout (60 s by default).
 */
static void stack_up_slow_clients(void)
{
	stack_up_with("idle_timeout = 2s\n", SLOW_CLIENT_CONFIG);
}

static void stack_down(void)
{
	fs_gateway_free(G);
	fs_server_free(S1);
	fs_server_free(S2);
	redis_server_stop(R);
}

/* ---- helpers: bytes, digests, metadata ------------------------------------------------------ */

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Pseudo-random bytes, different per seed, so that a piece stored at the wrong place shows. */
static unsigned char *job_bytes(size_t len, uint32_t seed)
{
	unsigned char *b = malloc(len ? len : 1);
	uint32_t x = seed * 2654435761u + 1;

	cr_assert(b);
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		b[i] = (unsigned char)(x >> 24);
	}
	return b;
}

static void sha256(const void *p, size_t len, unsigned char out[DIGEST_SHA256_LEN])
{
	unsigned int n = 0;

	cr_assert_eq(EVP_Digest(p, len, out, &n, EVP_sha256(), NULL), 1);
}

/* "Repr-Digest: sha-256=:...:" of the bytes. */
static const char *repr_digest(const void *p, size_t len, char *buf, size_t cap)
{
	unsigned char d[DIGEST_SHA256_LEN];
	char v[DIGEST_REPR_LEN];

	sha256(p, len, d);
	cr_assert_eq(digest_repr_format(d, v, sizeof(v)), PROTO_OK);
	snprintf(buf, cap, "Repr-Digest: %s", v);
	return buf;
}

/* "Upload-Checksum: sha256 ..." of the bytes. */
static const char *upload_checksum(const void *p, size_t len, char *buf, size_t cap)
{
	unsigned char d[DIGEST_SHA256_LEN];
	char v[DIGEST_CHECKSUM_LEN];

	sha256(p, len, d);
	cr_assert_eq(digest_checksum_format(d, v, sizeof(v)), PROTO_OK);
	snprintf(buf, cap, "Upload-Checksum: %s", v);
	return buf;
}

static void b64(const char *s, char *out, size_t cap)
{
	cr_assert_eq(base64_encode((const unsigned char *)s, strlen(s), out, cap, NULL), PROTO_OK);
}

/*
 * The Upload-Metadata line a client sends (keys out of order, blanks after the commas) and the
 * canonical value the gateway hands on and a HEAD shows (PROTOCOL.md 5.5).
 */
static void job_metadata(const char *job_id, const char *name, const char *format, char *sent,
			 size_t cap, char *canon, size_t ccap)
{
	char j[64], n[512], f[128];

	b64(job_id, j, sizeof(j));
	b64(name, n, sizeof(n));
	b64(format, f, sizeof(f));
	snprintf(sent, cap, "Upload-Metadata: format %s, name %s, job-id %s", f, n, j);
	if (canon)
		snprintf(canon, ccap, "job-id %s,name %s,format %s,copies MQ==", j, n, f);
}

/* ---- helpers: jobs through the gateway ------------------------------------------------------ */

/* A job as the gateway named it, and where its bytes live. */
struct job {
	char pub[ROUTE_MAX_LEN + 1];
	char sid[SERVER_ID_MAX + 1];
	char sjid[JOBID_LEN + 1];
	struct fs_server *s;
};

/* Splits a public job id server-id.server-job-id.tag (PROTOCOL.md 4.4) into j. */
static void job_parse(const char *pub, struct job *j)
{
	const char *d1 = strchr(pub, '.');
	const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;

	cr_assert(d1 && d2, "public id %s", pub);
	cr_assert(d1 - pub >= 1 && d1 - pub <= SERVER_ID_MAX, "public id %s", pub);
	cr_assert_eq(d2 - d1 - 1, JOBID_LEN, "public id %s", pub);
	cr_assert_eq(strlen(d2 + 1), ROUTE_TAG_LEN, "public id %s", pub);
	memcpy(j->pub, pub, strlen(pub) + 1); /* fits: the three lengths were checked */
	snprintf(j->sid, sizeof(j->sid), "%.*s", (int)(d1 - pub), pub);
	snprintf(j->sjid, sizeof(j->sjid), "%.*s", JOBID_LEN, d1 + 1);
	j->s = !strcmp(j->sid, S1->id) ? S1 : !strcmp(j->sid, S2->id) ? S2 : NULL;
	cr_assert(j->s, "public id %s names no server of ours", pub);
}

static void job_from_location(const struct http_reply *r, struct job *j)
{
	char loc[256];

	cr_assert(http_reply_header(r, "Location", loc, sizeof(loc)), "no Location: %s",
		  r->headers);
	cr_assert_eq(strncmp(loc, "/v1/jobs/", 9), 0, "Location %s", loc);
	job_parse(loc + 9, j);
}

static uint64_t reply_u64(const struct http_reply *r, const char *name)
{
	char v[64], *end;
	unsigned long long n;

	cr_assert(http_reply_header(r, name, v, sizeof(v)), "no %s in %s", name, r->headers);
	errno = 0;
	n = strtoull(v, &end, 10);
	cr_assert(!errno && end != v && !*end, "%s: %s", name, v);
	return n;
}

/* Asserts an RFC 9457 answer of type slug with this status (and its retry, when given). */
static void problem_is(const struct http_reply *r, long status, const char *slug,
		       const char *retry)
{
	json_t *doc;
	const char *type, *rv;
	char ct[128];

	cr_assert_eq(r->status, status, "status %ld (want %ld, %s): %s", r->status, status, slug,
		     r->body);
	cr_assert(http_reply_header(r, "Content-Type", ct, sizeof(ct)), "%s", r->headers);
	cr_assert_str_eq(ct, "application/problem+json");
	doc = json_loadb(r->body, r->body_len, 0, NULL);
	cr_assert(json_is_object(doc), "%s", r->body);
	type = json_string_value(json_object_get(doc, "type"));
	cr_assert(type && !strncmp(type, PROBLEM_PREFIX, strlen(PROBLEM_PREFIX)) &&
		  !strcmp(type + strlen(PROBLEM_PREFIX), slug), "want %s: %s", slug, r->body);
	cr_assert_eq(json_integer_value(json_object_get(doc, "status")), status, "%s", r->body);
	if (retry) {
		rv = json_string_value(json_object_get(doc, "retry"));
		cr_assert(rv && !strcmp(rv, retry), "want retry %s: %s", retry, r->body);
	}
	json_decref(doc);
}

/* POST /v1/jobs, with a body when body is not NULL. Returns the status; j filled on 2xx. */
static long job_create(const char *auth, const char *meta, uint64_t length, const char *digest,
		       const void *body, size_t len, struct job *j, struct http_reply *r)
{
	char url[256], lenh[64];
	const char *h[8];
	size_t n = 0;

	snprintf(url, sizeof(url), "%s/v1/jobs", G->url);
	snprintf(lenh, sizeof(lenh), "Upload-Length: %" PRIu64, length);
	h[n++] = auth;
	h[n++] = TUS;
	h[n++] = lenh;
	h[n++] = meta;
	if (digest)
		h[n++] = digest;
	if (body)
		h[n++] = OCTETS;
	h[n] = NULL;
	cr_assert_eq(http_request("POST", url, h, body, len, r), 0, "POST did not complete");
	if (r->status == 200 || r->status == 201)
		job_from_location(r, j);
	return r->status;
}

/* POST for a job of length bytes, named by job_id, without a body: asserts 201 at offset 0. */
static void job_new(const char *auth, const char *job_id, uint64_t length, struct job *j)
{
	char meta[1024];
	struct http_reply r = {0};

	job_metadata(job_id, "test.pdf", "application/pdf", meta, sizeof(meta), NULL, 0);
	cr_assert_eq(job_create(auth, meta, length, NULL, NULL, 0, j, &r), 201, "%ld %s",
		     r.status, r.body);
	cr_assert_eq(reply_u64(&r, "Upload-Offset"), 0);
	http_reply_free(&r);
}

static void job_url(const char *pub, char *url, size_t cap)
{
	snprintf(url, cap, "%s/v1/jobs/%s", G->url, pub);
}

/* PATCH len bytes at offset, with an Upload-Checksum line when checksum is not NULL. */
static long job_patch(const char *auth, const char *pub, uint64_t offset, const void *body,
		      size_t len, const char *checksum, struct http_reply *r)
{
	char url[256], off[64];
	const char *h[6] = {auth, TUS, OCTETS, off, checksum, NULL};

	job_url(pub, url, sizeof(url));
	snprintf(off, sizeof(off), "Upload-Offset: %" PRIu64, offset);
	cr_assert_eq(http_request("PATCH", url, h, body, len, r), 0, "PATCH did not complete");
	return r->status;
}

static long job_simple(const char *method, const char *auth, const char *pub,
		       struct http_reply *r)
{
	char url[256];
	const char *h[3] = {auth, TUS, NULL};

	job_url(pub, url, sizeof(url));
	cr_assert_eq(http_request(method, url, h, NULL, 0, r), 0, "%s did not complete", method);
	return r->status;
}

/* HEAD: returns the Upload-Offset of a 200 (asserted). */
static uint64_t job_offset(const char *auth, const char *pub)
{
	struct http_reply r = {0};
	uint64_t off;

	cr_assert_eq(job_simple("HEAD", auth, pub, &r), 200, "HEAD %ld", r.status);
	off = reply_u64(&r, "Upload-Offset");
	http_reply_free(&r);
	return off;
}

/* GET the status object; asserts 200 and a JSON object. The caller json_decref's it. */
static json_t *job_status(const char *auth, const char *pub)
{
	struct http_reply r = {0};
	json_t *doc;

	cr_assert_eq(job_simple("GET", auth, pub, &r), 200, "GET %ld %s", r.status, r.body);
	doc = json_loadb(r.body, r.body_len, 0, NULL);
	cr_assert(json_is_object(doc), "%s", r.body);
	http_reply_free(&r);
	return doc;
}

static const char *status_str(json_t *doc, const char *member)
{
	const char *v = json_string_value(json_object_get(doc, member));

	cr_assert(v, "no string %s", member);
	return v;
}

static json_int_t status_int(json_t *doc, const char *member)
{
	json_t *v = json_object_get(doc, member);

	cr_assert(json_is_integer(v), "no integer %s", member);
	return json_integer_value(v);
}

/* ---- helpers: the servers' spools --------------------------------------------------------- */

/* SHA-256 and size of dir/spool/{area}/{sjid}/data; -1 when it does not exist. */
static int spool_hash(const struct fs_server *s, const char *area, const char *sjid,
		      unsigned char out[DIGEST_SHA256_LEN], uint64_t *size)
{
	char path[4096];
	unsigned char buf[65536];
	EVP_MD_CTX *md;
	FILE *f;
	size_t n;
	unsigned int mdlen = 0;

	snprintf(path, sizeof(path), "%s/spool/%s/%s/data", s->dir, area, sjid);
	f = fopen(path, "rb");
	if (!f)
		return -1;
	md = EVP_MD_CTX_new();
	cr_assert(md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1);
	*size = 0;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		cr_assert_eq(EVP_DigestUpdate(md, buf, n), 1);
		*size += n;
	}
	fclose(f);
	cr_assert_eq(EVP_DigestFinal_ex(md, out, &mdlen), 1);
	EVP_MD_CTX_free(md);
	return 0;
}

static int spool_has(const struct fs_server *s, const char *area, const char *sjid)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/spool/%s/%s", s->dir, area, sjid);
	return stat(path, &st) == 0;
}

/* Job directories in dir/spool/{area}. */
static size_t spool_count(const struct fs_server *s, const char *area)
{
	char path[4096];
	struct dirent *d;
	size_t n = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "%s/spool/%s", s->dir, area);
	dir = opendir(path);
	cr_assert(dir, "no %s", path);
	while ((d = readdir(dir)))
		if (strlen(d->d_name) == JOBID_LEN)
			n++;
	closedir(dir);
	return n;
}

/* The job is committed at its server with exactly these bytes. */
static void assert_committed(const struct job *j, const void *data, size_t len)
{
	unsigned char want[DIGEST_SHA256_LEN], got[DIGEST_SHA256_LEN];
	uint64_t size = 0;

	cr_assert_eq(spool_hash(j->s, "ready", j->sjid, got, &size), 0,
		     "job %s is not in %s's ready spool", j->sjid, j->sid);
	sha256(data, len, want);
	cr_assert_eq(size, len, "committed %" PRIu64 " bytes, sent %zu", size, len);
	cr_assert_arr_eq(got, want, sizeof(want), "committed bytes differ from the ones sent");
	cr_assert(!spool_has(j->s, "uploads", j->sjid), "job still among the uploads");
}

/* ---- helpers: raw TLS, for bodies that break off --------------------------------------------- */

struct raw {
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;
};

static void raw_open(struct raw *t)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)G->port)};
	struct timeval tv = {5, 0};

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	t->ctx = SSL_CTX_new(TLS_client_method());
	cr_assert(t->ctx);
	cr_assert_eq(SSL_CTX_load_verify_locations(t->ctx, G->ca_file, NULL), 1);
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	t->fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert(t->fd >= 0);
	cr_assert_eq(connect(t->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	/* a write the gateway never takes must not hang the test, nor a handshake */
	setsockopt(t->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	t->ssl = SSL_new(t->ctx);
	cr_assert(t->ssl && SSL_set_fd(t->ssl, t->fd) == 1);
	cr_assert_eq(SSL_connect(t->ssl), 1, "TLS handshake with the gateway failed");
	/* short reads from now on: raw_reply keeps its own deadline */
	tv.tv_sec = 0;
	tv.tv_usec = 200000;
	setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* Writes all of p. 0, or -1 when the connection broke (or a write timed out). */
static int raw_send(struct raw *t, const void *p, size_t len)
{
	const char *c = p;

	while (len) {
		int n = SSL_write(t->ssl, c, (int)(len > 65536 ? 65536 : len));

		if (n <= 0)
			return -1;
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Reads an answer until its header block and Content-Length body arrived, the peer closed or
 * timeout_ms passed. Returns its status, 0 when the connection ended without a status line, -1
 * when nothing decided within timeout_ms. out holds what arrived.
 */
static long raw_reply(struct raw *t, int timeout_ms, char *out, size_t cap)
{
	int64_t until = now_ms() + timeout_ms;
	size_t got = 0;
	long status;

	out[0] = '\0';
	while (now_ms() < until && got < cap - 1) {
		int n = SSL_read(t->ssl, out + got, (int)(cap - 1 - got));
		const char *end, *cl;

		if (n <= 0) {
			int e = SSL_get_error(t->ssl, n);

			if (e == SSL_ERROR_WANT_READ && (errno == EAGAIN || errno == EWOULDBLOCK))
				continue;
			break; /* closed, reset or a TLS error: the connection ended */
		}
		got += (size_t)n;
		out[got] = '\0';
		end = strstr(out, "\r\n\r\n");
		cl = strcasestr(out, "\r\nContent-Length:");
		if (end && (!cl || cl > end ||
			    got - (size_t)(end + 4 - out) >= strtoull(cl + 17, NULL, 10)))
			break;
	}
	out[got] = '\0';
	if (got >= 12 && !strncmp(out, "HTTP/1.1 ", 9) && sscanf(out + 9, "%ld", &status) == 1)
		return status;
	return now_ms() >= until ? -1 : 0;
}

/* Ends the connection; abrupt: a TCP reset, without TLS close_notify. */
static void raw_close(struct raw *t, int abrupt)
{
	if (abrupt) {
		struct linger l = {1, 0};

		setsockopt(t->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	}
	SSL_free(t->ssl);
	SSL_CTX_free(t->ctx);
	close(t->fd);
}

static void raw_patch_headers(struct raw *t, const char *auth, const char *pub,
			      uint64_t offset, uint64_t content_length)
{
	char head[8192];
	int n;

	n = snprintf(head, sizeof(head),
		     "PATCH /v1/jobs/%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n" TUS "\r\n"
		     OCTETS "\r\nUpload-Offset: %" PRIu64 "\r\nContent-Length: %" PRIu64
		     "\r\n\r\n",
		     pub, G->port, auth, offset, content_length);
	cr_assert(n > 0 && (size_t)n < sizeof(head));
	cr_assert_eq(raw_send(t, head, (size_t)n), 0, "sending the PATCH headers failed");
}

/* ---- the tests --------------------------------------------------------------------------- */

Test(gateway_relay, put_roundtrip, .init = stack_up, .fini = stack_down, .timeout = 60)
{
	char url[256], *auth = fs_gateway_auth(G, "alice");
	const char *hdrs[] = {auth, "Content-Type: application/pdf", NULL};
	static char body[200000];
	struct http_reply r = {0};

	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (char)(i * 7);
	snprintf(url, sizeof(url), "%s/v1/jobs/4b1c4a2e-5a57-4c5e-9c6b-0d1f2e3a4b5c", G->url);
	cr_assert_eq(http_request("PUT", url, hdrs, body, sizeof(body), &r), 0);
	cr_assert_eq(r.status, 201, "status %ld body %s", r.status, r.body);
	cr_assert(strstr(r.body, "\"state\":\"committed\""), "%s", r.body);
	http_reply_free(&r);
	free(auth);
}

/* 1. POST, three PATCHes (one with a checksum), HEAD, GET; then a Repr-Digest that is wrong. */
Test(gateway_relay, tus_full_flow, .init = stack_up, .fini = stack_down, .timeout = 60)
{
	const char *job_id = "0f6b7e1a-2c3d-4e5f-8a9b-0c1d2e3f4a5b";
	const size_t p1 = MIB, p2 = MIB, p3 = MIB / 2 + 7, len = p1 + p2 + p3;
	unsigned char *data = job_bytes(len, 1), *other = job_bytes(len, 2);
	char *auth = fs_gateway_auth(G, "alice");
	char meta[1024], digest[128], sum[128], v[1024];
	struct http_reply r = {0};
	struct job j, bad;
	json_t *st;

	job_metadata(job_id, "Quarterly report.pdf", "application/pdf", meta, sizeof(meta), NULL,
		     0);
	repr_digest(data, len, digest, sizeof(digest));
	cr_assert_eq(job_create(auth, meta, len, digest, NULL, 0, &j, &r), 201, "%ld %s",
		     r.status, r.body);
	cr_assert_eq(reply_u64(&r, "Upload-Offset"), 0);
	cr_assert(http_reply_header(&r, "Upload-Expires", v, sizeof(v)), "%s", r.headers);
	cr_assert(http_reply_header(&r, "Tus-Resumable", v, sizeof(v)) && !strcmp(v, "1.0.0"));
	http_reply_free(&r);

	cr_assert_eq(job_patch(auth, j.pub, 0, data, p1, NULL, &r), 204, "%ld %s", r.status,
		     r.body);
	cr_assert_eq(reply_u64(&r, "Upload-Offset"), p1);
	http_reply_free(&r);
	upload_checksum(data + p1, p2, sum, sizeof(sum));
	cr_assert_eq(job_patch(auth, j.pub, p1, data + p1, p2, sum, &r), 204, "%ld %s", r.status,
		     r.body);
	cr_assert_eq(reply_u64(&r, "Upload-Offset"), p1 + p2);
	http_reply_free(&r);

	cr_assert_eq(job_simple("HEAD", auth, j.pub, &r), 200, "HEAD %ld", r.status);
	cr_assert_eq(reply_u64(&r, "Upload-Offset"), p1 + p2);
	cr_assert_eq(reply_u64(&r, "Upload-Length"), len);
	cr_assert(http_reply_header(&r, "Cache-Control", v, sizeof(v)) && !strcmp(v, "no-store"));
	/* Upload-Metadata: see head_metadata */
	http_reply_free(&r);

	cr_assert_eq(job_patch(auth, j.pub, p1 + p2, data + p1 + p2, p3, NULL, &r), 204,
		     "%ld %s", r.status, r.body);
	cr_assert_eq(reply_u64(&r, "Upload-Offset"), len);
	http_reply_free(&r);

	st = job_status(auth, j.pub);
	cr_assert_str_eq(status_str(st, "state"), "committed");
	cr_assert_str_eq(status_str(st, "id"), j.pub);
	cr_assert_str_eq(status_str(st, "job_id"), job_id);
	cr_assert_str_eq(status_str(st, "name"), "Quarterly report.pdf");
	cr_assert_str_eq(status_str(st, "format"), "application/pdf");
	cr_assert_eq(status_int(st, "offset"), (json_int_t)len);
	cr_assert_eq(status_int(st, "length"), (json_int_t)len);
	cr_assert_gt(status_int(st, "sequence"), 0);
	json_decref(st);
	assert_committed(&j, data, len);

	/* a Repr-Digest of other bytes: the last PATCH is refused and the upload discarded */
	job_metadata("1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "bad.pdf", "application/pdf", meta,
		     sizeof(meta), NULL, 0);
	repr_digest(other, len, digest, sizeof(digest));
	cr_assert_eq(job_create(auth, meta, len, digest, NULL, 0, &bad, &r), 201, "%ld %s",
		     r.status, r.body);
	http_reply_free(&r);
	cr_assert_eq(job_patch(auth, bad.pub, 0, data, p1, NULL, &r), 204, "%ld %s", r.status,
		     r.body);
	http_reply_free(&r);
	job_patch(auth, bad.pub, p1, data + p1, len - p1, NULL, &r);
	problem_is(&r, 460, "digest-mismatch", "new-upload");
	http_reply_free(&r);
	job_simple("HEAD", auth, bad.pub, &r);
	cr_assert(r.status == 404 || r.status == 410, "HEAD after digest mismatch: %ld", r.status);
	http_reply_free(&r);
	cr_assert(!spool_has(bad.s, "ready", bad.sjid), "a job that failed its digest was kept");
	cr_assert(!spool_has(bad.s, "uploads", bad.sjid), "a job that failed its digest was kept");

	free(data);
	free(other);
	free(auth);
}

/* 1b. HEAD carries the canonical Upload-Metadata (PROTOCOL.md 8.3, 5.5), server to client. */
Test(gateway_relay, head_metadata, .fini = stack_down, .timeout = 60)
{
	char meta[1024], canon[1024], v[1024], *auth;
	struct http_reply r = {0};
	struct job j;

	stack_up();
	auth = fs_gateway_auth(G, "alice");
	job_metadata("0e1f2a3b-4c5d-4e6f-8a7b-9c0d1e2f3a4b", "Quarterly report.pdf",
		     "application/pdf", meta, sizeof(meta), canon, sizeof(canon));
	cr_assert_eq(job_create(auth, meta, 100, NULL, NULL, 0, &j, &r), 201, "%ld %s", r.status,
		     r.body);
	http_reply_free(&r);
	cr_assert_eq(job_simple("HEAD", auth, j.pub, &r), 200, "HEAD %ld", r.status);
	cr_assert(http_reply_header(&r, "Upload-Metadata", v, sizeof(v)), "%s", r.headers);
	cr_assert_str_eq(v, canon);
	http_reply_free(&r);
	free(auth);
}

/* 2. Creation with upload; then offset and checksum mismatches on a second upload. */
Test(gateway_relay, creation_with_upload_and_mismatches, .init = stack_up, .fini = stack_down,
     .timeout = 60)
{
	const size_t len = 300 * 1024 + 3, len2 = MIB, first = 100 * 1024;
	unsigned char *data = job_bytes(len, 3), *data2 = job_bytes(len2, 4);
	char *auth = fs_gateway_auth(G, "alice");
	char meta[1024], digest[128], sum[128];
	struct http_reply r = {0};
	struct job j, k;
	json_t *st;

	job_metadata("2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e", "whole.pdf", "application/pdf", meta,
		     sizeof(meta), NULL, 0);
	repr_digest(data, len, digest, sizeof(digest));
	cr_assert_eq(job_create(auth, meta, len, digest, data, len, &j, &r), 201, "%ld %s",
		     r.status, r.body);
	cr_assert_eq(reply_u64(&r, "Upload-Offset"), len);
	http_reply_free(&r);
	st = job_status(auth, j.pub);
	cr_assert_str_eq(status_str(st, "state"), "committed");
	json_decref(st);
	assert_committed(&j, data, len);

	/* a second upload, receiving at offset `first` */
	job_metadata("3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f", "parts.pdf", "application/pdf", meta,
		     sizeof(meta), NULL, 0);
	cr_assert_eq(job_create(auth, meta, len2, NULL, data2, first, &k, &r), 201, "%ld %s",
		     r.status, r.body);
	cr_assert_eq(reply_u64(&r, "Upload-Offset"), first);
	http_reply_free(&r);

	job_patch(auth, k.pub, 0, data2, first, NULL, &r);
	problem_is(&r, 409, "offset-mismatch", "resync");
	http_reply_free(&r);
	cr_assert_eq(job_offset(auth, k.pub), first, "a refused PATCH moved the offset");

	/* the checksum of other bytes: refused, the bytes dropped */
	upload_checksum(data, first, sum, sizeof(sum));
	job_patch(auth, k.pub, first, data2 + first, first, sum, &r);
	problem_is(&r, 460, "checksum-mismatch", "resync");
	http_reply_free(&r);
	cr_assert_eq(job_offset(auth, k.pub), first, "a checksum mismatch moved the offset");

	upload_checksum(data2 + first, len2 - first, sum, sizeof(sum));
	cr_assert_eq(job_patch(auth, k.pub, first, data2 + first, len2 - first, sum, &r), 204,
		     "%ld %s", r.status, r.body);
	cr_assert_eq(reply_u64(&r, "Upload-Offset"), len2);
	http_reply_free(&r);
	assert_committed(&k, data2, len2);

	free(data);
	free(data2);
	free(auth);
}

/* 3. Another user sees 404 for everything of alice's, and changes nothing. */
Test(gateway_relay, ownership, .init = stack_up, .fini = stack_down, .timeout = 60)
{
	const size_t len = 64 * 1024;
	unsigned char *data = job_bytes(len, 5);
	char *alice = fs_gateway_auth(G, "alice"), *bob = fs_gateway_auth(G, "bob");
	char forged[ROUTE_MAX_LEN + 1];
	struct http_reply r = {0};
	struct job j;
	json_t *st;
	char *tag;

	job_new(alice, "4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f7a", len, &j);
	cr_assert_eq(job_patch(alice, j.pub, 0, data, 1000, NULL, &r), 204);
	http_reply_free(&r);

	cr_assert_eq(job_simple("HEAD", bob, j.pub, &r), 404, "bob's HEAD: %ld", r.status);
	http_reply_free(&r);
	job_patch(bob, j.pub, 1000, data + 1000, 1000, NULL, &r);
	problem_is(&r, 404, "not-found", "never");
	http_reply_free(&r);
	job_simple("GET", bob, j.pub, &r);
	problem_is(&r, 404, "not-found", "never");
	http_reply_free(&r);
	job_simple("DELETE", bob, j.pub, &r);
	problem_is(&r, 404, "not-found", "never");
	http_reply_free(&r);

	/* untouched */
	cr_assert_eq(job_offset(alice, j.pub), 1000);
	st = job_status(alice, j.pub);
	cr_assert_str_eq(status_str(st, "state"), "receiving");
	json_decref(st);
	cr_assert(spool_has(j.s, "uploads", j.sjid));

	/* alice's own id with another tag (still canonical base64url) */
	snprintf(forged, sizeof(forged), "%s", j.pub);
	tag = strrchr(forged, '.') + 1;
	tag[0] = tag[0] == 'A' ? 'B' : 'A';
	cr_assert_eq(job_simple("HEAD", alice, forged, &r), 404, "forged HEAD: %ld", r.status);
	http_reply_free(&r);
	job_simple("GET", alice, forged, &r);
	problem_is(&r, 404, "not-found", "never");
	http_reply_free(&r);
	job_patch(alice, forged, 1000, data + 1000, 1000, NULL, &r);
	problem_is(&r, 404, "not-found", "never");
	http_reply_free(&r);
	cr_assert_eq(job_offset(alice, j.pub), 1000);

	cr_assert_eq(job_simple("DELETE", alice, j.pub, &r), 204, "%ld %s", r.status, r.body);
	http_reply_free(&r);
	job_simple("HEAD", alice, j.pub, &r);
	cr_assert(r.status == 404 || r.status == 410, "HEAD after DELETE: %ld", r.status);
	http_reply_free(&r);
	cr_assert(!spool_has(j.s, "uploads", j.sjid), "a deleted upload is still spooled");

	free(data);
	free(alice);
	free(bob);
}

/* 4. The client leaves in the middle of a PATCH: bytes kept, no commit, resumable. */
Test(gateway_relay, client_abort_mid_patch, .init = stack_up_slow_clients, .fini = stack_down,
     .timeout = 60)
{
	const size_t len = 8 * MIB, part = 3 * MIB;
	unsigned char *data = job_bytes(len, 6);
	char *auth = fs_gateway_auth(G, "alice");
	struct http_reply r = {0};
	uint64_t off = 0, prev = UINT64_MAX;
	struct raw t;
	struct job j;
	int64_t t0, until;
	json_t *st;
	char *log;

	job_new(auth, "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b", len, &j);
	raw_open(&t);
	raw_patch_headers(&t, auth, j.pub, 0, len);
	cr_assert_eq(raw_send(&t, data, part), 0, "the gateway stopped reading the body");
	/* time for the bytes to leave our socket: a reset drops whatever is still queued */
	proc_sleep_ms(300);
	raw_close(&t, 1);
	t0 = now_ms();

	/* the offset the server kept settles once the gateway has aborted the upstream request */
	until = t0 + 8000;
	while (now_ms() < until) {
		off = job_offset(auth, j.pub);
		if (off > 0 && off == prev && spool_has(j.s, "uploads", j.sjid))
			break;
		prev = off;
		proc_sleep_ms(250);
	}
	cr_assert(off > 0 && off <= part, "offset %" PRIu64 " after %zu bytes and an abort", off,
		  part);
	cr_log_info("client abort: server kept %" PRIu64 " of %zu bytes; settled after %" PRId64
		    " ms", off, part, now_ms() - t0);
	log = fs_gateway_log(G);
	cr_assert(log && (strstr(log, "\"relay.client_gone\"") || strstr(log, "\"relay.timeout\"")),
		  "the gateway did not see the client go");
	free(log);

	st = job_status(auth, j.pub);
	cr_assert_str_eq(status_str(st, "state"), "receiving");
	cr_assert_eq(status_int(st, "offset"), (json_int_t)off);
	json_decref(st);
	cr_assert(!spool_has(j.s, "ready", j.sjid), "a truncated body was committed");

	cr_assert_eq(job_patch(auth, j.pub, off, data + off, len - off, NULL, &r), 204,
		     "resume from %" PRIu64 ": %ld %s", off, r.status, r.body);
	cr_assert_eq(reply_u64(&r, "Upload-Offset"), len);
	http_reply_free(&r);
	assert_committed(&j, data, len);

	free(data);
	free(auth);
}

/*
 * Sends a PATCH of a len-byte job slowly and SIGKILLs the job's server once kill_at bytes are
 * out; checks the client never sees a 2xx, restarts the server and finishes the job from the
 * offset it kept. Returns the status the client got, 0 when the connection closed without one.
 */
static long kill_mid_patch(const char *auth, const char *job_id, size_t len, size_t kill_at,
			   uint32_t seed)
{
	const size_t chunk = 128 * 1024;
	unsigned char *data = job_bytes(len, seed);
	char answer[8192];
	struct http_reply r = {0};
	size_t sent = 0, sent_at_kill = 0;
	int send_failed = 0;
	uint64_t off = 0;
	long status;
	struct raw t;
	struct job j;
	int64_t until;

	job_new(auth, job_id, len, &j);
	raw_open(&t);
	raw_patch_headers(&t, auth, j.pub, 0, len);
	while (sent < len) {
		size_t n = len - sent < chunk ? len - sent : chunk;

		if (raw_send(&t, data + sent, n)) {
			send_failed = 1;
			break;
		}
		sent += n;
		if (sent >= kill_at && !sent_at_kill) {
			proc_sleep_ms(100); /* let the bytes reach the server */
			sent_at_kill = sent;
			cr_assert(WIFSIGNALED(fs_server_kill(j.s)), "the server outlived SIGKILL");
		}
		proc_sleep_ms(20);
	}
	status = raw_reply(&t, 10000, answer, sizeof(answer));
	raw_close(&t, 0);
	cr_log_info("%zu-byte job, server %s killed after %zu bytes: the client %s after %zu bytes"
		    " and %s %ld", len, j.sid, sent_at_kill,
		    send_failed ? "could no longer send" : "sent the whole body", sent,
		    status > 0 ? "got the answer" : "saw the connection close, status", status);
	cr_assert_neq(status, -1, "no answer and no close within 10 s");
	if (status > 0) {
		cr_log_info("answer: %.400s", answer);
		cr_assert(status == 502 || status == 503 || status == 504, "answer %.300s", answer);
		cr_assert(strstr(answer, PROBLEM_PREFIX "upstream-failed") ||
			  strstr(answer, PROBLEM_PREFIX "no-server-available") ||
			  strstr(answer, PROBLEM_PREFIX "upstream-timeout"), "%.300s", answer);
	}

	cr_assert_eq(fs_server_restart(j.s), 0, "the server did not come back");
	until = now_ms() + 10000;
	while (job_simple("HEAD", auth, j.pub, &r) != 200 && now_ms() < until) {
		http_reply_free(&r);
		proc_sleep_ms(100);
	}
	cr_assert_eq(r.status, 200, "HEAD after the restart: %ld", r.status);
	off = reply_u64(&r, "Upload-Offset");
	http_reply_free(&r);
	cr_log_info("the restarted server kept %" PRIu64 " bytes", off);
	cr_assert(off > 0 && off <= sent_at_kill, "kept %" PRIu64 " of %zu", off, sent_at_kill);

	cr_assert_eq(job_patch(auth, j.pub, off, data + off, len - off, NULL, &r), 204,
		     "resume from %" PRIu64 ": %ld %s", off, r.status, r.body);
	cr_assert_eq(reply_u64(&r, "Upload-Offset"), len);
	http_reply_free(&r);
	assert_committed(&j, data, len);
	free(data);
	return status;
}

/* 5. The server holding the job dies mid-PATCH: an error for the client, then a resume. */
Test(gateway_relay, server_killed_mid_patch, .init = stack_up, .fini = stack_down,
     .timeout = 60)
{
	char *auth = fs_gateway_auth(G, "alice");
	long st;

	/*
	 * 4 MiB of body still to come: more than the gateway reads and drops after its answer is
	 * fixed (1 MiB, RELAY_DISCARD_MAX), so it hangs up without answering.
	 */
	st = kill_mid_patch(auth, "6f7a8b9c-0d1e-4f2a-9b3c-4d5e6f7a8b9c", 6 * MIB, 2 * MIB, 7);
	cr_assert_eq(st, 0, "status %ld: expected the connection closed", st);
	/* half a MiB still to come: the gateway drains it and answers 502 upstream-failed */
	st = kill_mid_patch(auth, "7f8a9b0c-1d2e-4f3a-8b4c-5d6e7f8a9b0c", 5 * MIB / 2, 2 * MIB, 8);
	cr_assert_eq(st, 502, "status %ld: expected 502 upstream-failed", st);
	free(auth);
}

/* 6. PUT: created once, repeated as 200, a wrong digest keeps nothing, no length is 411. */
Test(gateway_relay, put_rules, .init = stack_up, .fini = stack_down, .timeout = 60)
{
	const char *job_id = "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d";
	const char *job_id2 = "8b9c0d1e-2f3a-4b4c-9d5e-6f7a8b9c0d1e";
	const size_t len = 150 * 1024;
	unsigned char *data = job_bytes(len, 8), *other = job_bytes(len, 9);
	char *auth = fs_gateway_auth(G, "alice");
	char url[256], digest[128], raw_req[2048], answer[4096];
	const char *h[4] = {auth, "Content-Type: application/pdf", digest, NULL};
	struct http_reply r = {0};
	struct job j, k;
	json_t *st;
	struct raw t;
	long status;
	int n;

	snprintf(url, sizeof(url), "%s/v1/jobs/%s", G->url, job_id);
	repr_digest(data, len, digest, sizeof(digest));
	cr_assert_eq(http_request("PUT", url, h, data, len, &r), 0);
	cr_assert_eq(r.status, 201, "%ld %s", r.status, r.body);
	job_from_location(&r, &j);
	st = json_loadb(r.body, r.body_len, 0, NULL);
	cr_assert(json_is_object(st), "%s", r.body);
	cr_assert_str_eq(status_str(st, "state"), "committed");
	cr_assert_str_eq(status_str(st, "id"), j.pub);
	cr_assert_str_eq(status_str(st, "job_id"), job_id);
	cr_assert_eq(status_int(st, "length"), (json_int_t)len);
	json_decref(st);
	http_reply_free(&r);
	assert_committed(&j, data, len);

	cr_assert_eq(http_request("PUT", url, h, data, len, &r), 0);
	cr_assert_eq(r.status, 200, "repeated PUT: %ld %s", r.status, r.body);
	job_from_location(&r, &k);
	cr_assert_str_eq(k.pub, j.pub);
	cr_assert(strstr(r.body, j.pub), "%s", r.body);
	http_reply_free(&r);
	cr_assert_eq(spool_count(S1, "ready") + spool_count(S2, "ready"), 1, "not one job");

	/* the digest of other bytes: 460, nothing kept, so the same id later starts afresh */
	snprintf(url, sizeof(url), "%s/v1/jobs/%s", G->url, job_id2);
	repr_digest(other, len, digest, sizeof(digest));
	cr_assert_eq(http_request("PUT", url, h, data, len, &r), 0);
	problem_is(&r, 460, "digest-mismatch", NULL);
	http_reply_free(&r);
	cr_assert_eq(spool_count(S1, "ready") + spool_count(S2, "ready"), 1, "a bad PUT was kept");
	cr_assert_eq(spool_count(S1, "uploads") + spool_count(S2, "uploads"), 0,
		     "a bad PUT left an upload");
	repr_digest(data, len, digest, sizeof(digest));
	cr_assert_eq(http_request("PUT", url, h, data, len, &r), 0);
	cr_assert_eq(r.status, 201, "PUT after a digest mismatch: %ld %s", r.status, r.body);
	http_reply_free(&r);

	/* chunked: the size is not known before the first byte */
	n = snprintf(raw_req, sizeof(raw_req),
		     "PUT /v1/jobs/9c0d1e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f HTTP/1.1\r\n"
		     "Host: 127.0.0.1:%d\r\n%s\r\nContent-Type: application/pdf\r\n"
		     "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		     G->port, auth);
	cr_assert(n > 0 && (size_t)n < sizeof(raw_req));
	raw_open(&t);
	cr_assert_eq(raw_send(&t, raw_req, (size_t)n), 0);
	status = raw_reply(&t, 5000, answer, sizeof(answer));
	raw_close(&t, 0);
	cr_assert_eq(status, 411, "chunked PUT: %.300s", answer);
	cr_assert(strstr(answer, PROBLEM_PREFIX "length-required"), "%.300s", answer);

	free(data);
	free(other);
	free(auth);
}

/* 7. Creations of one user in order get strictly increasing sequences. */
Test(gateway_relay, sequence_order, .init = stack_up, .fini = stack_down, .timeout = 60)
{
	static const char *const ids[] = {
		"a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
		"b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e",
		"c3d4e5f6-a7b8-4c9d-8e0f-2a3b4c5d6e7f",
	};
	char *auth = fs_gateway_auth(G, "alice");
	json_int_t seq, last = 0;
	struct job j;
	json_t *st;

	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		job_new(auth, ids[i], 10, &j);
		st = job_status(auth, j.pub);
		seq = status_int(st, "sequence");
		json_decref(st);
		cr_assert_gt(seq, last, "job %zu: sequence %lld after %lld", i, (long long)seq,
			     (long long)last);
		last = seq;
	}
	free(auth);
}
