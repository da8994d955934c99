/* Tests fs-server over HTTPS with required client certificates, with certificates made here. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/lib/fs_server.h"
#include "tests/lib/http_client.h"
#include "tests/lib/proc.h"
#include "tests/lib/redis_server.h"

#define AUTH "Authorization: Bearer " FS_SERVER_GATEWAY_SECRET

static struct redis_server *redis;
static struct fs_server *server;
static char *pki;

/* Runs the shell command in the PKI directory. */
static void sh(const char *command)
{
	char cmd[8192];

	snprintf(cmd, sizeof(cmd), "cd '%s' && %s", pki, command);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static const char *pki_path(const char *name)
{
	static char paths[8][4096];
	static int next;
	char *p = paths[next++ % 8];

	snprintf(p, 4096, "%s/%s", pki, name);
	return p;
}

/* A CA, a server certificate for 127.0.0.1, a client certificate from the CA, and a rogue one. */
static void make_pki(void)
{
	pki = proc_tempdir("pki");
	cr_assert_not_null(pki);
	sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
	   "-subj /CN=test-ca -keyout ca.key -out ca.pem 2>/dev/null");
	sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
	   "-subj /CN=127.0.0.1 -keyout server.key -out server.csr 2>/dev/null && "
	   "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext && "
	   "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
	   "-extfile san.ext -out server.pem 2>/dev/null");
	sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
	   "-subj /CN=gateway-1 -keyout client.key -out client.csr 2>/dev/null && "
	   "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
	   "-out client.pem 2>/dev/null");
	sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
	   "-subj /CN=gateway-1 -keyout rogue.key -out rogue.pem 2>/dev/null");
}

static void start(void)
{
	char extra[8192];

	make_pki();
	redis = redis_server_start();
	cr_assert_not_null(redis);
	snprintf(extra, sizeof(extra),
		 "tls_cert_file = %s\ntls_key_file = %s\ntls_client_ca_file = %s\n",
		 pki_path("server.pem"), pki_path("server.key"), pki_path("ca.pem"));
	http_client_tls(pki_path("ca.pem"), NULL, NULL);
	server = fs_server_start(redis_server_port(redis), extra);
	cr_assert_not_null(server);
	cr_assert_eq(strncmp(server->url, "https://", 8), 0);
}

static void stop(void)
{
	fs_server_free(server);
	redis_server_stop(redis);
	http_client_tls(NULL, NULL, NULL);
	if (pki) {
		proc_rmtree(pki);
		free(pki);
	}
}

/* POSTs a zero-length job (commits at once) and returns the status, or -1 on a TLS failure. */
static long create_empty(char *body, size_t cap)
{
	const char *headers[] = {AUTH, "Tus-Resumable: 1.0.0", "Upload-Length: 0", "Fs-Sequence: 1",
				 "Fs-Owner: YWxpY2U",
				 "Upload-Metadata: job-id MGY4ZmFkNWItZDljYi00NjlmLWExNjUtNzA4Njc3Mjg5NTBl",
				 NULL};
	struct http_reply r = {0};
	char url[128];
	long status;

	snprintf(url, sizeof(url), "%s/v1/jobs", server->url);
	if (http_request("POST", url, headers, NULL, 0, &r))
		return -1;
	status = r.status;
	snprintf(body, cap, "%s", r.body);
	http_reply_free(&r);
	return status;
}

TestSuite(server_tls, .init = start, .fini = stop, .timeout = 60);

Test(server_tls, a_client_certificate_from_the_ca_is_let_in)
{
	char body[1024];

	http_client_tls(pki_path("ca.pem"), pki_path("client.pem"), pki_path("client.key"));
	cr_assert_eq(create_empty(body, sizeof(body)), 201, "%s", body);
}

Test(server_tls, no_client_certificate_is_403)
{
	char body[1024];

	http_client_tls(pki_path("ca.pem"), NULL, NULL);
	cr_assert_eq(create_empty(body, sizeof(body)), 403);
	cr_assert_not_null(strstr(body, "urn:fs-gateway:problem:client-certificate-required"), "%s",
			   body);
}

Test(server_tls, a_certificate_from_another_issuer_is_403)
{
	char body[1024];

	http_client_tls(pki_path("ca.pem"), pki_path("rogue.pem"), pki_path("rogue.key"));
	cr_assert_eq(create_empty(body, sizeof(body)), 403);
	cr_assert_not_null(strstr(body, "client-certificate-required"), "%s", body);
}

Test(server_tls, probes_need_no_certificate_and_plain_http_gets_nothing)
{
	struct http_reply r = {0};
	char url[128], plain[128];

	http_client_tls(pki_path("ca.pem"), NULL, NULL);
	snprintf(url, sizeof(url), "%s/healthz", server->url);
	cr_assert_eq(http_request("GET", url, NULL, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 204);
	http_reply_free(&r);
	/* the same port does not answer plain HTTP */
	snprintf(plain, sizeof(plain), "http://127.0.0.1:%d/healthz", server->port);
	if (http_request("GET", plain, NULL, NULL, 0, &r) == 0) {
		cr_assert_neq(r.status, 204);
		http_reply_free(&r);
	}
}
