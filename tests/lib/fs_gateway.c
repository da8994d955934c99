/* fs_gateway: runs the real fs-gateway binary, with TLS and its own token keys, for a test. */
#include "tests/lib/fs_gateway.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

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

struct fs_gateway *fs_gateway_start(int redis_port, const char *extra_config)
{
	struct fs_gateway *g = calloc(1, sizeof(*g));
	char *conf = NULL, path[4200];

	if (!g)
		return NULL;
	g->pid = -1;
	g->redis_port = redis_port;
	g->dir = proc_tempdir("gateway");
	g->keys = jwt_keys_new("rsa-1", "ec-1");
	if (!g->dir || !g->keys || make_cert(g->dir))
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
