/*
 * Streaming through the gateway: a 1 GiB upload over TLS with the gateway's memory flat, and
 * the memory each held upload costs. Figures go to stderr; the bounds are what we promise.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/lib/fs_gateway.h"
#include "tests/lib/fs_server.h"
#include "tests/lib/http_client.h"
#include "tests/lib/jwt.h"
#include "tests/lib/redis_server.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#define BIG ((uint64_t)1 << 30)
/*
 * Gateway RSS growth allowed during the 1 GiB upload, and the memory one held upload may cost
 * on average. Under ASan memory figures say nothing about the program (freed memory sits in a
 * 256 MiB quarantine, every allocation has redzones): there the tests check the bytes and the
 * answers only, and print the figures.
 */
#define BIG_RSS_GROWTH_KIB 8192
#define HELD 200
#define HELD_KIB_EACH 160

static struct redis_server *R;
static struct fs_server *S1, *S2;
static struct fs_gateway *G;

static void stack_up(void)
{
	R = redis_server_start();
	cr_assert(R);
	S1 = fs_server_start_id(redis_server_port(R), "dc1", "max_job_size = 2G\n");
	S2 = fs_server_start_id(redis_server_port(R), "dc2", "max_job_size = 2G\n");
	cr_assert(S1 && S2);
	G = fs_gateway_start(redis_server_port(R), "uploads_per_user = 0\nworkers = 1\n");
	cr_assert(G);
	cr_assert_eq(fs_gateway_wait_ready(G, 10000), 0, "gateway not ready");
}

static void stack_down(void)
{
	fs_gateway_free(G);
	fs_server_free(S1);
	fs_server_free(S2);
	redis_server_stop(R);
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A deterministic byte stream: the same bytes for the digest and for the upload. */
struct stream {
	uint64_t state;
	uint64_t left;
};

static void stream_fill(struct stream *s, unsigned char *buf, size_t n)
{
	for (size_t i = 0; i < n; i += 8) {
		uint64_t x = s->state;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		s->state = x;
		memcpy(buf + i, &x, n - i < 8 ? n - i : 8);
	}
}

static size_t stream_read(char *buf, size_t size, size_t nitems, void *arg)
{
	struct stream *s = arg;
	size_t n = size * nitems;

	if (n > s->left)
		n = (size_t)s->left;
	n &= ~(size_t)7; /* whole words keep the stream aligned with the digest pass */
	if (!n && s->left)
		n = (size_t)s->left;
	stream_fill(s, (unsigned char *)buf, n);
	s->left -= n;
	return n;
}

static size_t sink(char *buf, size_t size, size_t nitems, void *arg)
{
	(void)buf;
	(void)arg;
	return size * nitems;
}

struct sampler {
	pid_t pid;
	atomic_int stop;
	long max_kib;
};

static void *sample(void *arg)
{
	struct sampler *s = arg;

	while (!atomic_load(&s->stop)) {
		long kib = proc_rss_kib(s->pid);

		if (kib > s->max_kib)
			s->max_kib = kib;
		usleep(50000);
	}
	return NULL;
}

Test(gateway_stream, one_gib_over_tls, .init = stack_up, .fini = stack_down, .timeout = 600)
{
	static unsigned char chunk[1 << 16];
	unsigned char md[32];
	char *auth = fs_gateway_auth(G, "alice"), *b64, url[256], digest[128];
	struct stream st = {UINT64_C(0x9E3779B97F4A7C15), BIG};
	struct curl_slist *h = NULL;
	struct sampler smp = {.pid = G->pid};
	pthread_t thr;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	long base, status = 0;
	int64_t t0, ms;
	CURLcode rc;
	CURL *e;

	/* the digest first: the server refuses a commit whose bytes differ (460) */
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	for (uint64_t done = 0; done < BIG; done += sizeof(chunk)) {
		stream_fill(&st, chunk, sizeof(chunk));
		EVP_DigestUpdate(ctx, chunk, sizeof(chunk));
	}
	EVP_DigestFinal_ex(ctx, md, NULL);
	EVP_MD_CTX_free(ctx);
	b64 = jwt_b64url(md, sizeof(md));
	for (char *p = b64; *p; p++) /* Repr-Digest is standard base64 */
		*p = *p == '-' ? '+' : *p == '_' ? '/' : *p;
	snprintf(digest, sizeof(digest), "Repr-Digest: sha-256=:%s=:", b64);
	free(b64);
	st = (struct stream){UINT64_C(0x9E3779B97F4A7C15), BIG};

	h = curl_slist_append(h, auth);
	h = curl_slist_append(h, digest);
	h = curl_slist_append(h, "Content-Type: application/pdf");
	snprintf(url, sizeof(url), "%s/v1/jobs/6f1d0c3e-2b4a-4c5d-8e9f-0a1b2c3d4e5f", G->url);
	e = curl_easy_init();
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_CAINFO, G->ca_file);
	curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)BIG);
	curl_easy_setopt(e, CURLOPT_READFUNCTION, stream_read);
	curl_easy_setopt(e, CURLOPT_READDATA, &st);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, 500L);

	base = proc_rss_kib(G->pid);
	smp.max_kib = base;
	pthread_create(&thr, NULL, sample, &smp);
	t0 = mono_ms();
	rc = curl_easy_perform(e);
	ms = mono_ms() - t0;
	atomic_store(&smp.stop, 1);
	pthread_join(thr, NULL);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(e);
	curl_slist_free_all(h);
	free(auth);

	cr_assert_eq(rc, CURLE_OK, "curl: %s", curl_easy_strerror(rc));
	cr_assert_eq(status, 201, "status %ld", status);
	fprintf(stderr, "gateway_stream: 1 GiB PUT over TLS in %" PRId64 " ms (%.0f MiB/s); "
		"gateway RSS %ld KiB before, %ld KiB at most (+%ld KiB)\n", ms,
		1024.0 * 1000 / (double)(ms ? ms : 1), base, smp.max_kib, smp.max_kib - base);
	if (!UNDER_ASAN)
		cr_assert_lt(smp.max_kib - base, BIG_RSS_GROWTH_KIB,
		     "gateway RSS grew by %ld KiB during a 1 GiB upload", smp.max_kib - base);
}

/* A TLS connection that sent a PUT's headers and part of its body, then waits. */
struct held {
	int fd;
	SSL *ssl;
};

static int held_open(struct held *c, SSL_CTX *ctx, const char *auth, int n)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)G->port)};
	static char part[32768];
	char head[16384];
	int len;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)))
		return -1;
	c->ssl = SSL_new(ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_connect(c->ssl) != 1)
		return -1;
	len = snprintf(head, sizeof(head),
		       "PUT /v1/jobs/00000000-0000-4000-8000-%012d HTTP/1.1\r\n"
		       "Host: 127.0.0.1\r\n%s\r\nContent-Length: 1048576\r\n\r\n",
		       n, auth);
	if (SSL_write(c->ssl, head, len) != len)
		return -1;
	memset(part, 'x', sizeof(part));
	return SSL_write(c->ssl, part, sizeof(part)) == (int)sizeof(part) ? 0 : -1;
}

Test(gateway_stream, memory_per_held_upload, .init = stack_up, .fini = stack_down,
     .timeout = 120)
{
	static struct held held[HELD];
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char *auth = fs_gateway_auth(G, "bob");
	long base, after, each;
	int i, opened = 0;

	cr_assert(ctx && auth);
	cr_assert_eq(SSL_CTX_load_verify_locations(ctx, G->ca_file, NULL), 1);
	/* one upload first, so one-time allocations (TLS, curl, pools) are in the baseline */
	cr_assert_eq(held_open(&held[0], ctx, auth, 0), 0);
	opened = 1;
	sleep(1);
	base = proc_rss_kib(G->pid);
	for (i = 1; i < HELD; i++) {
		cr_assert_eq(held_open(&held[i], ctx, auth, i), 0, "connection %d", i);
		opened++;
	}
	sleep(2); /* the gateway connects each to a server and relays what it got */
	after = proc_rss_kib(G->pid);
	{
		/* every one of them is an upload in flight at the gateway */
		struct http_reply m = {0};
		char url[128];
		const char *p;

		snprintf(url, sizeof(url), "%s/metrics", G->url);
		cr_assert_eq(http_request("GET", url, NULL, NULL, 0, &m), 0);
		p = strstr(m.body, "\nfsg_gateway_active_uploads ");
		cr_assert(p, "%s", m.body);
		cr_assert_eq(atol(p + strlen("\nfsg_gateway_active_uploads ")), HELD);
		http_reply_free(&m);
	}
	each = (after - base) / (HELD - 1);
	fprintf(stderr, "gateway_stream: %d held uploads: RSS %ld -> %ld KiB, %ld KiB each\n", HELD,
		base, after, each);
	for (i = 0; i < opened; i++) {
		SSL_free(held[i].ssl);
		close(held[i].fd);
	}
	SSL_CTX_free(ctx);
	free(auth);
	if (!UNDER_ASAN)
		cr_assert_lt(each, HELD_KIB_EACH, "each held upload costs %ld KiB", each);
}
