/* SIGHUP gives the gateway a new TLS certificate without dropping the connections it holds. */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/lib/fs_gateway.h"
#include "tests/lib/fs_server.h"
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
