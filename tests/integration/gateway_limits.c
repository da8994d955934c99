/* Gateway admission limits end to end: TLS client certificates and concurrent uploads per user. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proto/jobid.h"
#include "tests/lib/fs_gateway.h"
#include "tests/lib/fs_server.h"
#include "tests/lib/http_client.h"
#include "tests/lib/proc.h"
#include "tests/lib/redis_server.h"

#define PROBLEM_PREFIX "urn:fs-gateway:problem:"
#define PDF "Content-Type: application/pdf"

static struct redis_server *R;
static struct fs_server *S1;
static struct fs_gateway *G;
static char *CERTS; /* ca.pem/key, client.pem/key (signed by ca), rogue.pem/key (self-signed) */
static char CA[4200], CLIENT[4200], CLIENT_KEY[4200], ROGUE[4200], ROGUE_KEY[4200];

/* Runs a shell command built with snprintf; returns system()'s status. */
#define SH(...)                                                                                \
	({                                                                                     \
		char cmd_[16384];                                                              \
		snprintf(cmd_, sizeof(cmd_), __VA_ARGS__);                                     \
		system(cmd_);                                                                  \
	})

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* A test CA, a client certificate it signed and a self-signed "rogue" one with the same name. */
static void certs_make(void)
{
	CERTS = proc_tempdir("limits-certs");
	cr_assert(CERTS);
	snprintf(CA, sizeof(CA), "%s/ca.pem", CERTS);
	snprintf(CLIENT, sizeof(CLIENT), "%s/client.pem", CERTS);
	snprintf(CLIENT_KEY, sizeof(CLIENT_KEY), "%s/client.key", CERTS);
	snprintf(ROGUE, sizeof(ROGUE), "%s/rogue.pem", CERTS);
	snprintf(ROGUE_KEY, sizeof(ROGUE_KEY), "%s/rogue.key", CERTS);
	cr_assert_eq(SH("cd '%s' && "
			"openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
			"-keyout ca.key -out ca.pem -days 2 -subj /CN=fs-test-client-ca "
			"-addext basicConstraints=critical,CA:TRUE "
			"-addext keyUsage=critical,keyCertSign,cRLSign >/dev/null 2>&1 && "
			"openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
			"-keyout client.key -out client.csr -subj /CN=fs-test-client "
			">/dev/null 2>&1 && "
			"printf 'basicConstraints=CA:FALSE\\nkeyUsage=critical,digitalSignature\\n"
			"extendedKeyUsage=clientAuth\\n' > client.ext && "
			"openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
			"-out client.pem -days 2 -extfile client.ext >/dev/null 2>&1 && "
			"openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
			"-keyout rogue.key -out rogue.pem -days 2 -subj /CN=fs-test-client "
			"-addext extendedKeyUsage=clientAuth >/dev/null 2>&1",
			CERTS), 0, "openssl failed");
	cr_assert_eq(SH("openssl verify -CAfile '%s' '%s' >/dev/null 2>&1", CA, CLIENT), 0);
	cr_assert_neq(SH("openssl verify -CAfile '%s' '%s' >/dev/null 2>&1", CA, ROGUE), 0);
}

static void stack_up_with(const char *gateway_extra)
{
	/* a peer that closes mid-write must fail a write, not kill the test */
	signal(SIGPIPE, SIG_IGN);
	R = redis_server_start();
	cr_assert(R);
	S1 = fs_server_start_id(redis_server_port(R), "dc1", NULL);
	cr_assert(S1);
	G = fs_gateway_start(redis_server_port(R), gateway_extra);
	cr_assert(G);
}

static void stack_up_optional(void)
{
	char extra[4400];

	certs_make();
	snprintf(extra, sizeof(extra), "client_certificates = optional\ntls_client_ca_file = %s\n",
		 CA);
	stack_up_with(extra);
	cr_assert_eq(fs_gateway_wait_ready(G, 10000), 0, "gateway not ready");
}

/*
 * fs_gateway_start waits for /healthz without a client certificate, which a gateway in
 * "required" mode refuses (PROTOCOL.md 3.5: the certificate is checked first, on every path).
 * So the gateway starts in "optional" mode, then runs again, with the same directory and port,
 * from a config saying "required"; readiness is awaited presenting the CA-signed certificate.
 */
static void stack_up_required(void)
{
	char conf[4300], log[4300], url[128];
	char *argv[] = {FSG_BIN_DIR "/fs-gateway", "--config", conf, NULL};
	struct http_reply r = {0};
	int64_t until;
	long status = 0;

	stack_up_optional();
	cr_assert_eq(fs_gateway_stop(G, 3000), 0);
	snprintf(conf, sizeof(conf), "%s/gateway.conf", G->dir);
	snprintf(log, sizeof(log), "%s/gateway.log", G->dir);
	cr_assert_eq(SH("sed -i 's/^client_certificates = optional$/client_certificates = required/' "
			"'%s' && grep -q '^client_certificates = required$' '%s'", conf, conf), 0);
	G->pid = proc_start(argv, log);
	cr_assert_neq(G->pid, -1);
	http_client_tls(G->ca_file, CLIENT, CLIENT_KEY);
	snprintf(url, sizeof(url), "%s/healthz", G->url);
	until = now_ms() + 10000;
	while (now_ms() < until) {
		cr_assert(proc_running(G->pid, NULL), "the gateway exited");
		if (http_request("GET", url, NULL, NULL, 0, &r) == 0) {
			status = r.status;
			http_reply_free(&r);
			if (status == 200)
				break;
		}
		proc_sleep_ms(50);
	}
	cr_assert_eq(status, 200, "no /healthz in required mode: %ld", status);
	cr_assert_eq(fs_gateway_wait_ready(G, 10000), 0, "gateway not ready");
	http_client_tls(G->ca_file, NULL, NULL);
}

static void stack_up_uploads(void)
{
	stack_up_with("uploads_per_user = 2\n");
	cr_assert_eq(fs_gateway_wait_ready(G, 10000), 0, "gateway not ready");
}

static void stack_down(void)
{
	fs_gateway_free(G);
	fs_server_free(S1);
	redis_server_stop(R);
	if (CERTS) {
		proc_rmtree(CERTS);
		free(CERTS);
		CERTS = NULL;
	}
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

static size_t jobs_stored(void)
{
	return spool_count(S1, "ready") + spool_count(S1, "uploads");
}

static void problem_is(const struct http_reply *r, long status, const char *slug)
{
	json_t *doc;
	const char *type;
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
	json_decref(doc);
}

/* A small one-shot PUT for subject; returns http_request's result, the reply in *r. */
static int put_small(const char *subject, const char *job_id, struct http_reply *r)
{
	static const char body[] = "%PDF-1.4 limits test\n";
	char url[256], *auth = fs_gateway_auth(G, subject);
	const char *h[] = {auth, PDF, NULL};
	int rc;

	cr_assert(auth);
	snprintf(url, sizeof(url), "%s/v1/jobs/%s", G->url, job_id);
	rc = http_request("PUT", url, h, body, sizeof(body) - 1, r);
	free(auth);
	return rc;
}

/* PUT with the rogue certificate: 403 client-certificate-required, or no handshake at all. */
static void put_rogue_refused(const char *job_id)
{
	struct http_reply r = {0};
	size_t before = jobs_stored();

	http_client_tls(G->ca_file, ROGUE, ROGUE_KEY);
	if (put_small("alice", job_id, &r) == 0) {
		problem_is(&r, 403, "client-certificate-required");
		http_reply_free(&r);
	} else {
		fprintf(stderr, "gateway_limits: the rogue certificate's handshake was refused\n");
	}
	http_client_tls(G->ca_file, NULL, NULL);
	cr_assert_eq(jobs_stored(), before, "a job was stored with a rogue certificate");
}

/* ---- client certificates ------------------------------------------------------------------ */

Test(gateway_limits, client_certificate_required, .init = stack_up_required, .fini = stack_down,
     .timeout = 60)
{
	static const char *job = "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a01";
	struct http_reply r = {0};

	/* no certificate */
	http_client_tls(G->ca_file, NULL, NULL);
	cr_assert_eq(put_small("alice", job, &r), 0, "PUT without a certificate did not complete");
	problem_is(&r, 403, "client-certificate-required");
	http_reply_free(&r);
	cr_assert_eq(jobs_stored(), 0, "a job was stored without a certificate");

	/* a self-signed certificate the CA did not sign */
	put_rogue_refused(job);
	cr_assert_eq(jobs_stored(), 0);

	/* the CA-signed one: 201, a new job (so nothing of the refused attempts was kept) */
	http_client_tls(G->ca_file, CLIENT, CLIENT_KEY);
	cr_assert_eq(put_small("alice", job, &r), 0);
	cr_assert_eq(r.status, 201, "CA-signed certificate: %ld %s", r.status, r.body);
	http_reply_free(&r);
	http_client_tls(G->ca_file, NULL, NULL);
	cr_assert_eq(spool_count(S1, "ready"), 1, "not one job");
}

Test(gateway_limits, client_certificate_optional, .init = stack_up_optional, .fini = stack_down,
     .timeout = 60)
{
	struct http_reply r = {0};

	http_client_tls(G->ca_file, NULL, NULL);
	cr_assert_eq(put_small("alice", "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a02", &r), 0);
	cr_assert_eq(r.status, 201, "no certificate: %ld %s", r.status, r.body);
	http_reply_free(&r);

	http_client_tls(G->ca_file, CLIENT, CLIENT_KEY);
	cr_assert_eq(put_small("alice", "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a03", &r), 0);
	cr_assert_eq(r.status, 201, "CA-signed certificate: %ld %s", r.status, r.body);
	http_reply_free(&r);
	http_client_tls(G->ca_file, NULL, NULL);
	cr_assert_eq(spool_count(S1, "ready"), 2, "not two jobs");

	put_rogue_refused("6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a04");
	cr_assert_eq(spool_count(S1, "ready"), 2, "the rogue upload was stored");
}

/* ---- concurrent uploads per user ---------------------------------------------------------- */

struct held {
	int fd;
	SSL *ssl;
};

/* A PUT that announces 1 MiB, sends 32 KiB of it and waits (as in gateway_stream.c). */
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
		       "Host: 127.0.0.1\r\n%s\r\n" PDF "\r\nContent-Length: 1048576\r\n\r\n", n,
		       auth);
	if (SSL_write(c->ssl, head, len) != len)
		return -1;
	memset(part, 'x', sizeof(part));
	return SSL_write(c->ssl, part, sizeof(part)) == (int)sizeof(part) ? 0 : -1;
}

static void held_close(struct held *c)
{
	if (c->ssl)
		SSL_free(c->ssl);
	if (c->fd >= 0)
		close(c->fd);
	c->ssl = NULL;
	c->fd = -1;
}

/* fsg_gateway_active_uploads from /metrics, or -1. */
static long active_uploads(void)
{
	static const char name[] = "\nfsg_gateway_active_uploads ";
	struct http_reply m = {0};
	char url[128];
	const char *p;
	long n = -1;

	snprintf(url, sizeof(url), "%s/metrics", G->url);
	if (http_request("GET", url, NULL, NULL, 0, &m))
		return -1;
	p = m.body ? strstr(m.body, name) : NULL;
	if (m.status == 200 && p)
		n = atol(p + strlen(name));
	http_reply_free(&m);
	return n;
}

Test(gateway_limits, uploads_per_user, .init = stack_up_uploads, .fini = stack_down,
     .timeout = 60)
{
	struct held held[2] = {{-1, NULL}, {-1, NULL}};
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char *alice = fs_gateway_auth(G, "alice"), ra[64];
	struct http_reply r = {0};
	int64_t until;
	long n = -1;

	cr_assert(ctx && alice);
	cr_assert_eq(SSL_CTX_load_verify_locations(ctx, G->ca_file, NULL), 1);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(held_open(&held[i], ctx, alice, i + 1), 0, "held upload %d", i);
	/* both are admitted uploads before the third one comes */
	until = now_ms() + 3000;
	while ((n = active_uploads()) != 2 && now_ms() < until)
		proc_sleep_ms(50);
	cr_assert_eq(n, 2, "active uploads: %ld", n);

	/* alice's third: 429 with Retry-After, nothing stored */
	cr_assert_eq(put_small("alice", "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c01", &r), 0);
	problem_is(&r, 429, "too-many-requests");
	cr_assert(http_reply_header(&r, "Retry-After", ra, sizeof(ra)), "%s", r.headers);
	cr_assert(ra[0] >= '0' && ra[0] <= '9' && atol(ra) >= 1, "Retry-After: %s", ra);
	http_reply_free(&r);
	cr_assert_eq(spool_count(S1, "ready"), 0);

	/* bob is not alice */
	cr_assert_eq(put_small("bob", "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c02", &r), 0);
	cr_assert_eq(r.status, 201, "bob: %ld %s", r.status, r.body);
	http_reply_free(&r);

	/* one of alice's uploads goes away: her next PUT gets through within 3 s */
	held_close(&held[0]);
	until = now_ms() + 3000;
	for (;;) {
		cr_assert_eq(put_small("alice", "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c03", &r), 0);
		if (r.status != 429 || now_ms() >= until)
			break;
		http_reply_free(&r);
		proc_sleep_ms(100);
	}
	cr_assert_eq(r.status, 201, "alice after closing one upload: %ld %s", r.status, r.body);
	http_reply_free(&r);
	cr_assert_eq(spool_count(S1, "ready"), 2, "not bob's and alice's jobs");

	held_close(&held[1]);
	SSL_CTX_free(ctx);
	free(alice);
}
