/* fs_gateway: runs the real fs-gateway binary, with TLS and its own token keys, for a test. */
#include "tests/lib/fs_gateway.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "proto/base64.h"
#include "tests/lib/fs_server.h"
#include "tests/lib/http_client.h"
#include "tests/lib/proc.h"

#ifndef FSG_BIN_DIR
#error "FSG_BIN_DIR must name the directory holding the built programs"
#endif

static int make_cert(const char *dir)
{
	char cmd[8192];

	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		 "-keyout '%s/tls.key' -out '%s/tls.crt' -days 2 -subj /CN=127.0.0.1 "
		 "-addext subjectAltName=IP:127.0.0.1,DNS:localhost >/dev/null 2>&1",
		 dir, dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Replicas behind one name present one certificate: a copy of the peer's pair. */
static int cert_share(const char *from, const char *to)
{
	char path[4200];
	int rc = 0;

	for (int i = 0; i < 2 && !rc; i++) {
		const char *name = i ? "tls.key" : "tls.crt";
		char *text;

		snprintf(path, sizeof(path), "%s/%s", from, name);
		text = proc_read_file(path);
		rc = !text || !*text || proc_write_file(to, name, text) ? -1 : 0;
		free(text);
	}
	return rc;
}

static int get_status(const char *url)
{
	struct http_reply r = {0};
	long status;

	if (http_request("GET", url, NULL, NULL, 0, &r))
		return -1;
	status = r.status;
	http_reply_free(&r);
	return (int)status;
}

static int launch(struct fs_gateway *g)
{
	char conf[4096], log[4096], url[96];
	char *argv[] = {FSG_BIN_DIR "/fs-gateway", "--config", conf, NULL};

	snprintf(conf, sizeof(conf), "%s/gateway.conf", g->dir);
	snprintf(log, sizeof(log), "%s/gateway.log", g->dir);
	http_client_tls(g->ca_file, NULL, NULL);
	g->pid = proc_start(argv, log);
	if (g->pid == -1)
		return -1;
	snprintf(url, sizeof(url), "%s/healthz", g->url);
	for (int i = 0; i < 200; i++) { /* 200 x 50 ms = 10 s */
		struct timespec ts = {0, 50000000L};

		if (!proc_running(g->pid, NULL)) {
			g->pid = -1;
			return -1;
		}
		if (get_status(url) == 200)
			return 0;
		nanosleep(&ts, NULL);
	}
	proc_stop(g->pid, 1000);
	g->pid = -1;
	return -1;
}

/* peer's keys, shared (a reference to each key, copies of the kids). */
static struct jwt_keys *keys_share(const struct jwt_keys *peer)
{
	struct jwt_keys *k = calloc(1, sizeof(*k));

	if (!k)
		return NULL;
	k->rsa_kid = strdup(peer->rsa_kid);
	k->ec_kid = strdup(peer->ec_kid);
	if (!k->rsa_kid || !k->ec_kid || EVP_PKEY_up_ref(peer->rsa) != 1) {
		jwt_keys_free(k);
		return NULL;
	}
	k->rsa = peer->rsa;
	if (EVP_PKEY_up_ref(peer->ec) != 1) {
		jwt_keys_free(k);
		return NULL;
	}
	k->ec = peer->ec;
	return k;
}

static struct fs_gateway *gateway_start(int redis_port, const char *extra_config,
					const struct fs_gateway *peer)
{
	struct fs_gateway *g = calloc(1, sizeof(*g));
	char *conf = NULL, path[4200];

	if (!g)
		return NULL;
	g->pid = -1;
	g->redis_port = redis_port;
	g->dir = proc_tempdir("gateway");
	g->keys = peer ? keys_share(peer->keys) : jwt_keys_new("rsa-1", "ec-1");
	if (!g->dir || !g->keys || (peer ? cert_share(peer->dir, g->dir) : make_cert(g->dir)))
		goto fail;
	snprintf(g->ca_file, sizeof(g->ca_file), "%s/tls.crt", g->dir);
	snprintf(path, sizeof(path), "%s/jwks.json", g->dir);
	if (jwt_keys_write_jwks(g->keys, path) ||
	    proc_write_file(g->dir, "server.secret", FS_SERVER_GATEWAY_SECRET "\n") ||
	    proc_write_file(g->dir, "route.key", FS_GATEWAY_ROUTE_KEY "\n"))
		goto fail;
	for (int attempt = 0; attempt < 5; attempt++) {
		g->port = proc_free_port();
		snprintf(g->url, sizeof(g->url), "https://127.0.0.1:%d", g->port);
		free(conf);
		if (asprintf(&conf,
			     "listen_address = 127.0.0.1\n"
			     "port = %d\n"
			     "tls_cert_file = tls.crt\n"
			     "tls_key_file = tls.key\n"
			     "jwks_file = jwks.json\n"
			     "token_issuer = " FS_GATEWAY_ISSUER "\n"
			     "token_audience = " FS_GATEWAY_AUDIENCE "\n"
			     "route_key_file = route.key\n"
			     "server_secret_file = server.secret\n"
			     "redis_port = %d\n"
			     "pool_refresh = 100ms\n"
			     "log_level = debug\n"
			     "%s",
			     g->port, redis_port, extra_config ? extra_config : "") == -1) {
			conf = NULL;
			goto fail;
		}
		if (proc_write_file(g->dir, "gateway.conf", conf))
			goto fail;
		if (launch(g) == 0) {
			free(conf);
			return g;
		}
	}
	fprintf(stderr, "fs_gateway_start: fs-gateway did not come up; see %s/gateway.log\n",
		g->dir);
fail:
	free(conf);
	fs_gateway_free(g);
	return NULL;
}

struct fs_gateway *fs_gateway_start(int redis_port, const char *extra_config)
{
	return gateway_start(redis_port, extra_config, NULL);
}

struct fs_gateway *fs_gateway_start_replica(const struct fs_gateway *peer,
					    const char *extra_config)
{
	return gateway_start(peer->redis_port, extra_config, peer);
}

int fs_gateway_wait_ready(struct fs_gateway *g, int timeout_ms)
{
	char url[96];

	snprintf(url, sizeof(url), "%s/readyz", g->url);
	for (int waited = 0; waited <= timeout_ms; waited += 50) {
		struct timespec ts = {0, 50000000L};

		if (get_status(url) == 200)
			return 0;
		nanosleep(&ts, NULL);
	}
	return -1;
}

int fs_gateway_restart(struct fs_gateway *g)
{
	return launch(g);
}

int fs_gateway_stop(struct fs_gateway *g, int grace_ms)
{
	int st = proc_stop(g->pid, grace_ms);

	g->pid = -1;
	return st;
}

int fs_gateway_signal(const struct fs_gateway *g, int sig)
{
	return g->pid > 0 && kill(g->pid, sig) == 0 ? 0 : -1;
}

int fs_gateway_wait_exit(struct fs_gateway *g, int timeout_ms)
{
	int st = 0;

	if (g->pid <= 0)
		return -1;
	for (int waited = 0; waited <= timeout_ms; waited += 10) {
		struct timespec ts = {0, 10000000L};

		if (!proc_running(g->pid, &st)) {
			g->pid = -1;
			return st;
		}
		nanosleep(&ts, NULL);
	}
	return -1;
}

void fs_gateway_free(struct fs_gateway *g)
{
	if (!g)
		return;
	if (g->pid > 0)
		proc_stop(g->pid, 5000);
	if (g->dir) {
		if (!getenv("FSG_KEEP_TEST_DIRS"))
			proc_rmtree(g->dir);
		free(g->dir);
	}
	jwt_keys_free(g->keys);
	free(g);
}

char *fs_gateway_log(const struct fs_gateway *g)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/gateway.log", g->dir);
	return proc_read_file(path);
}

char *fs_gateway_token(const struct fs_gateway *g, const char *subject, int64_t ttl_s)
{
	int64_t now = (int64_t)time(NULL);

	return jwt_mint_claims(g->keys, "rsa-1", "RS256", FS_GATEWAY_ISSUER, FS_GATEWAY_AUDIENCE,
			       subject, now, now, now + ttl_s);
}

char *fs_gateway_auth(const struct fs_gateway *g, const char *subject)
{
	char *tok = fs_gateway_token(g, subject, 3600), *line = NULL;

	if (tok && asprintf(&line, "Authorization: Bearer %s", tok) == -1)
		line = NULL;
	free(tok);
	return line;
}

long proc_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

long tls_exchange(int port, const char *ca_file, const void *raw, size_t len, char *out,
		  size_t cap, int timeout_ms)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = NULL;
	long got = -1;
	int fd = -1;
	struct timespec start, now;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (!ctx || cap == 0 || SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1)
		goto out;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)))
		goto out;
	{
		struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	ssl = SSL_new(ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1)
		goto out;
	if (len && SSL_write(ssl, raw, (int)len) != (int)len)
		goto out;
	got = 0;
	clock_gettime(CLOCK_MONOTONIC, &start);
	while ((size_t)got < cap - 1) {
		int n = SSL_read(ssl, out + got, (int)(cap - 1 - (size_t)got));

		if (n <= 0)
			break;
		got += n;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 >
		    timeout_ms)
			break;
	}
	out[got] = '\0';
out:
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	return got;
}

struct tls_conn {
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct tls_conn *tls_conn_open(int port, const char *ca_file)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {5, 0};
	struct tls_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fd = -1;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->ctx = SSL_CTX_new(TLS_client_method());
	if (!c->ctx || SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL) != 1)
		goto fail;
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)))
		goto fail;
	/* a write the gateway never takes must not hang the test, nor a handshake */
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	c->ssl = SSL_new(c->ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_connect(c->ssl) != 1)
		goto fail;
	/* short reads from now on: the readers keep their own deadlines */
	tv.tv_sec = 0;
	tv.tv_usec = 100000;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return c;
fail:
	tls_conn_free(c);
	return NULL;
}

int tls_conn_send(struct tls_conn *c, const void *p, size_t len)
{
	const char *b = p;

	while (len) {
		int n = SSL_write(c->ssl, b, (int)(len > 65536 ? 65536 : len));

		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One SSL_read: > 0 bytes, 0 when the peer closed (or reset), -1 when nothing came yet. */
static int conn_read(struct tls_conn *c, char *buf, int cap)
{
	int n = SSL_read(c->ssl, buf, cap), e;

	if (n > 0)
		return n;
	e = SSL_get_error(c->ssl, n);
	if (e == SSL_ERROR_WANT_READ ||
	    (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK)))
		return -1;
	return 0;
}

/* The value of header name in the header block head (ends at the blank line), or NULL. */
static const char *head_value(const char *head, const char *name)
{
	size_t n = strlen(name);
	const char *p = strstr(head, "\r\n");

	while (p && strncmp(p, "\r\n\r\n", 4)) {
		p += 2;
		if (!strncasecmp(p, name, n) && p[n] == ':')
			return p + n + 1;
		p = strstr(p, "\r\n");
	}
	return NULL;
}

long tls_conn_reply(struct tls_conn *c, int timeout_ms, char *out, size_t cap)
{
	int64_t until = mono_ms() + timeout_ms;
	size_t got = 0;

	out[0] = '\0';
	while (got < cap - 1) {
		const char *end = strstr(out, "\r\n\r\n"), *cl;
		long status = 0;
		int n;

		if (end && sscanf(out, "HTTP/1.1 %ld", &status) == 1) {
			cl = head_value(out, "Content-Length");
			if (status == 204 || status == 304 || !cl ||
			    got - (size_t)(end + 4 - out) >= strtoul(cl, NULL, 10))
				return status;
		}
		if (mono_ms() >= until)
			return -1;
		n = conn_read(c, out + got, (int)(cap - 1 - got));
		if (n == 0)
			return 0;
		if (n > 0) {
			got += (size_t)n;
			out[got] = '\0';
		}
	}
	return 0;
}

int tls_conn_closed(struct tls_conn *c, int timeout_ms)
{
	int64_t until = mono_ms() + timeout_ms;
	char buf[4096];

	while (mono_ms() < until) {
		int n = conn_read(c, buf, sizeof(buf));

		if (n == 0)
			return 1;
		if (n > 0)
			return 0;
	}
	return 0;
}

void tls_conn_free(struct tls_conn *c)
{
	if (!c)
		return;
	SSL_free(c->ssl);
	SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

long fs_gateway_create(const struct fs_gateway *g, const char *auth, const char *job_id,
		       uint64_t length, char *pub, size_t cap)
{
	char url[128], lenh[64], meta[512], id64[128], loc[512];
	const char *h[] = {auth, "Tus-Resumable: 1.0.0", lenh, meta, NULL};
	struct http_reply r = {0};
	long status;

	if (base64_encode((const unsigned char *)job_id, strlen(job_id), id64, sizeof(id64),
			  NULL) != PROTO_OK)
		return -1;
	snprintf(url, sizeof(url), "%s/v1/jobs", g->url);
	snprintf(lenh, sizeof(lenh), "Upload-Length: %" PRIu64, length);
	/* "test.pdf" and "application/pdf" */
	snprintf(meta, sizeof(meta), "Upload-Metadata: job-id %s, name dGVzdC5wZGY=, "
		 "format YXBwbGljYXRpb24vcGRm", id64);
	if (http_request("POST", url, h, NULL, 0, &r))
		return -1;
	status = r.status;
	if (status == 201 && (!http_reply_header(&r, "Location", loc, sizeof(loc)) ||
			      strncmp(loc, "/v1/jobs/", 9) || strlen(loc + 9) >= cap))
		status = -1;
	else if (status == 201)
		strcpy(pub, loc + 9);
	http_reply_free(&r);
	return status;
}

long fs_gateway_head(const struct fs_gateway *g, const char *auth, const char *pub,
		     uint64_t *offset)
{
	char url[512], v[32];
	const char *h[] = {auth, "Tus-Resumable: 1.0.0", NULL};
	struct http_reply r = {0};
	long status;

	snprintf(url, sizeof(url), "%s/v1/jobs/%s", g->url, pub);
	if (http_request("HEAD", url, h, NULL, 0, &r))
		return -1;
	status = r.status;
	if (status == 200 && http_reply_header(&r, "Upload-Offset", v, sizeof(v)))
		*offset = strtoull(v, NULL, 10);
	else if (status == 200)
		status = -1;
	http_reply_free(&r);
	return status;
}

long fs_gateway_patch(const struct fs_gateway *g, const char *auth, const char *pub,
		      uint64_t offset, const void *body, size_t len)
{
	char url[512], off[64];
	const char *h[] = {auth, "Tus-Resumable: 1.0.0",
			   "Content-Type: application/offset+octet-stream", off, NULL};
	struct http_reply r = {0};
	long status;

	snprintf(url, sizeof(url), "%s/v1/jobs/%s", g->url, pub);
	snprintf(off, sizeof(off), "Upload-Offset: %" PRIu64, offset);
	if (http_request("PATCH", url, h, body, len, &r))
		return -1;
	status = r.status;
	http_reply_free(&r);
	return status;
}

int fs_gateway_committed(const char *server_dir, const char *pub, const void *data, size_t len)
{
	const char *d1 = strchr(pub, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	char path[4200];
	unsigned char *got = NULL;
	size_t n = 0;
	FILE *f;
	int rc = -1;

	if (!d2) {
		fprintf(stderr, "fs_gateway_committed: %s is not a public job id\n", pub);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/spool/ready/%.*s/data", server_dir, (int)(d2 - d1 - 1),
		 d1 + 1);
	f = fopen(path, "rb");
	got = malloc(len + 1);
	if (f && got)
		n = fread(got, 1, len + 1, f);
	if (!f)
		fprintf(stderr, "fs_gateway_committed: %s: %s\n", path, strerror(errno));
	else if (n != len)
		fprintf(stderr, "fs_gateway_committed: %s: %zu bytes, %zu sent\n", path, n, len);
	else if (memcmp(got, data, len))
		fprintf(stderr, "fs_gateway_committed: %s: the bytes differ from the ones sent\n",
			path);
	else
		rc = 0;
	if (f)
		fclose(f);
	free(got);
	return rc;
}

unsigned char *fs_gateway_job_bytes(size_t len, uint32_t seed)
{
	unsigned char *p = malloc(len ? len : 1);

	if (!p)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1664525u + 1013904223u;
		p[i] = (unsigned char)(seed >> 24);
	}
	return p;
}
