/* SIGHUP gives the gateway new certificates, keys and settings without dropping connections. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>
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
#include "tests/lib/proc.h"
#include "tests/lib/redis_server.h"

static struct redis_server *R;
static struct fs_server *S1;
static struct fs_gateway *G;

static void stack_up(void)
{
	R = redis_server_start();
	cr_assert(R);
	S1 = fs_server_start_id(redis_server_port(R), "dc1", NULL);
	cr_assert(S1);
	G = fs_gateway_start(redis_server_port(R), NULL);
	cr_assert(G);
	cr_assert_eq(fs_gateway_wait_ready(G, 10000), 0, "gateway not ready");
}

static void stack_down(void)
{
	fs_gateway_free(G);
	fs_server_free(S1);
	redis_server_stop(R);
}

/* Runs a shell command built with snprintf; returns system()'s status. */
#define SH(...)                                                                                \
	({                                                                                     \
		char cmd_[16384];                                                              \
		snprintf(cmd_, sizeof(cmd_), __VA_ARGS__);                                     \
		system(cmd_);                                                                  \
	})

static long healthz(const char *ca, char *out, size_t cap)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

	return tls_exchange(G->port, ca, req, sizeof(req) - 1, out, cap, 3000);
}

Test(gateway_reload, new_certificate_on_sighup_keeps_connections, .init = stack_up,
     .fini = stack_down, .timeout = 60)
{
	static char body[65536], out[4096];
	char old_ca[4300], head[16384], *auth = fs_gateway_auth(G, "alice");
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)G->port)};
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;
	int fd, len, n, got = 0;

	/* an upload in progress over the old certificate */
	snprintf(old_ca, sizeof(old_ca), "%s/old.crt", G->dir);
	cr_assert_eq(SH("cp '%s' '%s'", G->ca_file, old_ca), 0);
	cr_assert_eq(SSL_CTX_load_verify_locations(ctx, old_ca, NULL), 1);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	cr_assert_eq(SSL_connect(ssl), 1);
	len = snprintf(head, sizeof(head),
		       "PUT /v1/jobs/0b8f7c6e-1d2a-4b3c-9d4e-5f6a7b8c9d0e HTTP/1.1\r\n"
		       "Host: 127.0.0.1\r\n%s\r\nContent-Length: %zu\r\n\r\n", auth, sizeof(body));
	cr_assert_eq(SSL_write(ssl, head, len), len);
	memset(body, 'r', sizeof(body));
	cr_assert_eq(SSL_write(ssl, body, sizeof(body) / 2), (int)sizeof(body) / 2);

	/* a new certificate in place, then SIGHUP */
	cr_assert_eq(SH("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
			"-keyout '%s/tls.key' -out '%s/tls.crt' -days 2 -subj /CN=127.0.0.1 "
			"-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1",
			G->dir, G->dir), 0);
	cr_assert_eq(kill(G->pid, SIGHUP), 0);
	for (int i = 0; i < 40 && healthz(G->ca_file, out, sizeof(out)) < 0; i++)
		usleep(50000);
	cr_assert_gt(healthz(G->ca_file, out, sizeof(out)), 0, "no handshake with the new cert");
	cr_assert(strstr(out, "HTTP/1.1 200"), "%s", out);
	cr_assert_lt(healthz(old_ca, out, sizeof(out)), 0, "the old certificate is still served");

	/* the upload that began before the reload finishes on its connection */
	cr_assert_eq(SSL_write(ssl, body + sizeof(body) / 2, sizeof(body) / 2),
		     (int)sizeof(body) / 2);
	out[0] = '\0';
	while (got < (int)sizeof(out) - 1 && !strstr(out, "\r\n\r\n")) {
		n = SSL_read(ssl, out + got, (int)sizeof(out) - 1 - got);
		if (n <= 0)
			break;
		got += n;
		out[got] = '\0';
	}
	cr_assert(strstr(out, "HTTP/1.1 201"), "after reload: %s", out);

	/* a broken key file is refused and the current certificate stays */
	cr_assert_eq(SH("echo broken > '%s/tls.key'", G->dir), 0);
	cr_assert_eq(kill(G->pid, SIGHUP), 0);
	usleep(300000);
	cr_assert_gt(healthz(G->ca_file, out, sizeof(out)), 0, "a bad reload broke TLS");
	{
		char *log = fs_gateway_log(G);

		cr_assert(log && strstr(log, "TLS certificate not reloaded"), "no reload error logged");
		free(log);
	}
	SSL_free(ssl);
	close(fd);
	SSL_CTX_free(ctx);
	free(auth);
}

#define TUS "Tus-Resumable: 1.0.0"

/* Waits up to 5 s for the count-th line holding text in the gateway's log. */
static int log_wait(const char *text, int count)
{
	for (int i = 0; i < 100; i++) {
		char *log = fs_gateway_log(G), *p = log;
		int n = 0;

		while (p && (p = strstr(p, text))) {
			n++;
			p++;
		}
		free(log);
		if (n >= count)
			return 0;
		usleep(50000);
	}
	return -1;
}

/* "Authorization: Bearer" with a token of keys (kid), malloc'd. */
static char *auth_with(const struct jwt_keys *keys, const char *kid, const char *subject)
{
	int64_t now = (int64_t)time(NULL);
	char *tok = jwt_mint_claims(keys, kid, "RS256", FS_GATEWAY_ISSUER, FS_GATEWAY_AUDIENCE,
				    subject, now, now, now + 3600), *line = NULL;

	cr_assert(tok);
	cr_assert_neq(asprintf(&line, "Authorization: Bearer %s", tok), -1);
	free(tok);
	return line;
}

/* Tus-Max-Size of OPTIONS /v1/jobs. */
static long max_size(void)
{
	char url[128], v[32];
	const char *h[] = {TUS, NULL};
	struct http_reply r = {0};
	long n = -1;

	snprintf(url, sizeof(url), "%s/v1/jobs", G->url);
	cr_assert_eq(http_request("OPTIONS", url, h, NULL, 0, &r), 0);
	if (http_reply_header(&r, "Tus-Max-Size", v, sizeof(v)))
		n = atol(v);
	http_reply_free(&r);
	return n;
}

/* Replaces the first occurrence of from in the gateway's configuration file with to. */
static void conf_replace(const char *from, const char *to)
{
	char path[4200], *text, *at, *out = NULL;

	snprintf(path, sizeof(path), "%s/gateway.conf", G->dir);
	text = proc_read_file(path);
	at = text ? strstr(text, from) : NULL;
	cr_assert(at, "%s not in the configuration", from);
	cr_assert_neq(asprintf(&out, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from)),
		      -1);
	cr_assert_eq(proc_write_file(G->dir, "gateway.conf", out), 0);
	free(out);
	free(text);
}

/* Appends lines to the gateway's configuration file. */
static void conf_append(const char *lines)
{
	char path[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/gateway.conf", G->dir);
	f = fopen(path, "a");
	cr_assert(f);
	fputs(lines, f);
	fclose(f);
}

Test(gateway_reload, new_keys_and_settings_on_sighup_keep_uploads, .init = stack_up,
     .fini = stack_down, .timeout = 60)
{
	enum { LEN = 128 * 1024 };
	struct jwt_keys *fresh = jwt_keys_new("rsa-2", "ec-2");
	char *old_auth = fs_gateway_auth(G, "dave"), *new_auth, jwks[4200], pub[256], pub2[256];
	static unsigned char data[LEN];
	char head[16384], out[8192], *log;
	struct tls_conn *up;
	uint64_t off = 0;
	int n;

	cr_assert(fresh);
	new_auth = auth_with(fresh, "rsa-2", "dave");
	for (size_t i = 0; i < LEN; i++)
		data[i] = (unsigned char)(i * 131 + 7);
	cr_assert_eq(fs_gateway_create(G, old_auth, "6f5e4d3c-2b1a-4098-8776-655443322110", LEN,
				       pub, sizeof(pub)), 201);
	cr_assert_eq(fs_gateway_create(G, new_auth, "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d", 10,
				       pub2, sizeof(pub2)), 401, "a key not yet in the JWKS");
	cr_assert_eq(max_size(), 4L << 30);

	/* a slow upload in progress across the reload */
	up = tls_conn_open(G->port, G->ca_file);
	cr_assert(up);
	n = snprintf(head, sizeof(head),
		     "PATCH /v1/jobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n" TUS "\r\n"
		     "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
		     "Content-Length: %d\r\n\r\n", pub, old_auth, LEN);
	cr_assert_eq(tls_conn_send(up, head, (size_t)n), 0);
	cr_assert_eq(tls_conn_send(up, data, LEN / 2), 0);

	/* the identity provider rotated its keys; the operator lowers max_job_size, sets workers */
	snprintf(jwks, sizeof(jwks), "%s/jwks.json", G->dir);
	cr_assert_eq(jwt_keys_write_jwks(fresh, jwks), 0);
	conf_append("max_job_size = 1M\nworkers = 3\n");
	conf_replace("log_level = debug", "log_level = info");
	cr_assert_eq(kill(G->pid, SIGHUP), 0);
	cr_assert_eq(log_wait("configuration reloaded", 1), 0, "no reload logged");

	/* new requests: the new key is accepted, the removed one refused, the new limit applies */
	cr_assert_eq(fs_gateway_head(G, new_auth, pub, &off), 200, "the new key is refused");
	cr_assert_eq(fs_gateway_head(G, old_auth, pub, &off), 401, "the removed key still works");
	cr_assert_eq(max_size(), 1L << 20);
	log = fs_gateway_log(G);
	cr_assert(strstr(log, "need a restart keep their running value: workers"), "%s", log);
	cr_assert(strstr(log, "changed: jwks_file, max_job_size, log_level"), "%s", log);
	/* answers are logged at debug: none since the reload */
	cr_assert(!strstr(strstr(log, "configuration reloaded"), "\"level\":\"debug\""), "%s",
		  log);
	free(log);

	/* the upload that began before the reload ends, with its bytes */
	usleep(200000);
	cr_assert_eq(tls_conn_send(up, data + LEN / 2, LEN / 2), 0, "the upload was cut");
	cr_assert_eq(tls_conn_reply(up, 10000, out, sizeof(out)), 204, "%s", out);
	cr_assert_eq(fs_gateway_committed(S1->dir, pub, data, LEN), 0);

	/* a JWKS that does not parse is refused: the current keys and settings stay */
	cr_assert_eq(proc_write_file(G->dir, "jwks.json", "{\"keys\": [ not json"), 0);
	conf_append("max_url = 512\n");
	cr_assert_eq(kill(G->pid, SIGHUP), 0);
	cr_assert_eq(log_wait("jwks_file/token settings:", 1), 0, "no error logged");
	cr_assert_eq(fs_gateway_create(G, new_auth, "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d", 10,
				       pub2, sizeof(pub2)), 201, "the current keys were lost");
	cr_assert_eq(fs_gateway_head(G, old_auth, pub2, &off), 401);
	cr_assert_eq(max_size(), 1L << 20);

	/* a configuration that does not load changes nothing either */
	cr_assert_eq(jwt_keys_write_jwks(G->keys, jwks), 0);
	conf_append("no_such_setting = 1\n");
	cr_assert_eq(kill(G->pid, SIGHUP), 0);
	cr_assert_eq(log_wait("configuration not reloaded, the running one stays", 1), 0);
	cr_assert_eq(fs_gateway_head(G, old_auth, pub2, &off), 401, "a refused reload applied");
	cr_assert_eq(fs_gateway_head(G, new_auth, pub2, &off), 200);
	tls_conn_free(up);
	jwt_keys_free(fresh);
	free(old_auth);
	free(new_auth);
}
