/* healthcheck: fs-healthcheck, the container HEALTHCHECK: GET /healthz of the local program. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "proto/num.h"

#define PROG	       "fs-healthcheck"
#define EXIT_UNHEALTHY 1
#define EXIT_USAGE     2
#define TIMEOUT_MS     4000L /* under the image's HEALTHCHECK --timeout=5s */
#define URL_MAX	       256

static const char usage_text[] =
	"Usage: " PROG " gateway\n"
	"       " PROG " server\n"
	"       " PROG " [--pin-cert=FILE] URL\n"
	"       " PROG " --help\n"
	"\n"
	"Asks a program in this container whether it is alive (GET /healthz answered 2xx),\n"
	"for exec-form container health checks: no shell needed.\n"
	"\n"
	"  gateway  https://ADDRESS:PORT/healthz of the fs-gateway configured by the\n"
	"           environment: FSG_GATEWAY_LISTEN_ADDRESS (a wildcard or empty means\n"
	"           127.0.0.1), FSG_GATEWAY_PORT (default 8443) and FSG_GATEWAY_TLS_CERT_FILE,\n"
	"           whose public key the answering gateway must hold (see --pin-cert)\n"
	"  server   http://ADDRESS:PORT/healthz of the fs-server configured by\n"
	"           FSG_SERVER_LISTEN_ADDRESS, FSG_SERVER_PORT (default 8480) and\n"
	"           FSG_SERVER_TLS_CERT_FILE (when set: https, pinned to that certificate)\n"
	"  URL      any http:// or https:// URL; https is verified against the system's CAs\n"
	"           unless --pin-cert is given\n"
	"  --pin-cert=FILE  accept exactly the public key of the first certificate in the PEM\n"
	"           FILE (the program's own certificate) and skip the name check, which a\n"
	"           loopback address cannot pass: the peer still proves it holds the key\n"
	"\n"
	"Exit status: 0 healthy, 1 unhealthy (the reason on stderr), 2 usage error.\n";

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int usage_error(const char *what)
{
	fail("%s (see " PROG " --help)", what);
	return EXIT_USAGE;
}

/*
 * The libcurl pin of cert_file's first certificate: "sha256//" and the base64 SHA-256 of its
 * DER SubjectPublicKeyInfo, written to pin (cap bytes). Returns 0, or -1 with the reason on
 * stderr.
 */
static int pin_read(const char *cert_file, char *pin, size_t cap)
{
	unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	X509 *cert = NULL;
	FILE *f;
	int len, rc = -1;

	f = fopen(cert_file, "r");
	if (!f) {
		fail("%s: %s", cert_file, strerror(errno));
		return -1;
	}
	cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!cert) {
		fail("%s: no PEM certificate", cert_file);
		return -1;
	}
	len = i2d_PUBKEY(X509_get0_pubkey(cert), &der);
	if (len <= 0 || !EVP_Digest(der, (size_t)len, md, &md_len, EVP_sha256(), NULL)) {
		fail("%s: cannot hash the certificate's public key", cert_file);
		goto out;
	}
	/* 8 for "sha256//", 4 base64 bytes per 3, one NUL */
	if (cap < 8 + 4 * ((md_len + 2) / 3) + 1) {
		fail("%s: public key hash too long", cert_file);
		goto out;
	}
	memcpy(pin, "sha256//", 8);
	EVP_EncodeBlock((unsigned char *)pin + 8, md, (int)md_len);
	rc = 0;
out:
	OPENSSL_free(der);
	X509_free(cert);
	return rc;
}

/*
 * Builds the /healthz URL of the program configured by the environment PREFIX_* (its own
 * variables, with its defaults) into url; *cert_file is the certificate to pin, or NULL for
 * plain http. Returns 0, or -1 with the reason on stderr.
 */
static int url_from_env(const char *prefix, const char *def_port, int tls_required, char *url,
			const char **cert_file)
{
	char name[64];
	const char *addr, *port, *cert;
	uint64_t n;
	int v6;

	snprintf(name, sizeof(name), "%s_LISTEN_ADDRESS", prefix);
	addr = getenv(name);
	/* the wildcards also listen on 127.0.0.1 ("::" is dual-stack); others are asked directly */
	if (!addr || !*addr || strcmp(addr, "0.0.0.0") == 0 || strcmp(addr, "::") == 0)
		addr = "127.0.0.1";
	snprintf(name, sizeof(name), "%s_PORT", prefix);
	port = getenv(name);
	if (!port || !*port)
		port = def_port;
	/* as strict as the programs' own integer settings */
	if (num_parse_u64(port, strlen(port), 65535, &n) != PROTO_OK || n == 0) {
		fail("%s: not a port this check can reach: \"%s\"", name, port);
		return -1;
	}
	snprintf(name, sizeof(name), "%s_TLS_CERT_FILE", prefix);
	cert = getenv(name);
	if (!cert || !*cert) {
		if (tls_required) {
			fail("%s is not set: the certificate to check the answer against", name);
			return -1;
		}
		cert = NULL;
	}
	v6 = strchr(addr, ':') != NULL;
	if (snprintf(url, URL_MAX, "%s://%s%s%s:%" PRIu64 "/healthz", cert ? "https" : "http",
		     v6 ? "[" : "", addr, v6 ? "]" : "", n) >= URL_MAX) {
		fail("%s_LISTEN_ADDRESS is too long", prefix);
		return -1;
	}
	*cert_file = cert;
	return 0;
}

static size_t body_discard(char *data, size_t size, size_t n, void *user)
{
	(void)data;
	(void)user;
	return size * n;
}

/* GETs url (pinned to pin unless NULL); 0 on a 2xx answer, else 1 with the reason on stderr. */
static int probe(const char *url, const char *pin)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	long status = 0;
	CURLcode rc;
	CURL *e;
	int ok;

	e = curl_easy_init();
	if (!e) {
		fail("out of memory");
		return EXIT_UNHEALTHY;
	}
	ok = curl_easy_setopt(e, CURLOPT_URL, url) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
	/* the program is local: a proxy from the environment must not stand in between */
	ok &= curl_easy_setopt(e, CURLOPT_NOPROXY, "*") == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, TIMEOUT_MS) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, body_discard) == CURLE_OK;
	if (pin) {
		/* libcurl checks the pin whatever VERIFYPEER says: the key is the identity here */
		ok &= curl_easy_setopt(e, CURLOPT_PINNEDPUBLICKEY, pin) == CURLE_OK;
		ok &= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L) == CURLE_OK;
		ok &= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L) == CURLE_OK;
	}
	if (!ok) {
		fail("%s: libcurl refused an option", url);
		curl_easy_cleanup(e);
		return EXIT_UNHEALTHY;
	}
	rc = curl_easy_perform(e);
	if (rc == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(e);
	if (rc != CURLE_OK) {
		fail("%s: %s", url, *errbuf ? errbuf : curl_easy_strerror(rc));
		return EXIT_UNHEALTHY;
	}
	/* fs-server answers 204, fs-gateway 200 */
	if (status < 200 || status > 299) {
		fail("%s: HTTP %ld", url, status);
		return EXIT_UNHEALTHY;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const char pin_opt[] = "--pin-cert=";
	char url[URL_MAX], pin[128];
	const char *target, *cert_file = NULL;
	int rc;

	if (argc == 2 && strcmp(argv[1], "--help") == 0) {
		fputs(usage_text, stdout);
		return fflush(stdout) == EOF ? EXIT_FAILURE : 0;
	}
	if (argc == 3 && strncmp(argv[1], pin_opt, sizeof(pin_opt) - 1) == 0) {
		cert_file = argv[1] + sizeof(pin_opt) - 1;
		target = argv[2];
		if (!*cert_file)
			return usage_error("--pin-cert needs a file");
	} else if (argc == 2) {
		target = argv[1];
	} else {
		return usage_error("one target expected");
	}

	if ((strcmp(target, "gateway") == 0 || strcmp(target, "server") == 0) && cert_file)
		return usage_error("--pin-cert goes with a URL, not with gateway or server");
	if (strcmp(target, "gateway") == 0) {
		if (url_from_env("FSG_GATEWAY", "8443", 1, url, &cert_file))
			return EXIT_UNHEALTHY;
	} else if (strcmp(target, "server") == 0) {
		if (url_from_env("FSG_SERVER", "8480", 0, url, &cert_file))
			return EXIT_UNHEALTHY;
	} else if (strncmp(target, "http://", 7) == 0 || strncmp(target, "https://", 8) == 0) {
		if (strlen(target) >= sizeof(url))
			return usage_error("URL too long");
		memcpy(url, target, strlen(target) + 1);
	} else {
		return usage_error("expected gateway, server or an http(s):// URL");
	}
	if (cert_file && pin_read(cert_file, pin, sizeof(pin)))
		return EXIT_UNHEALTHY;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fail("libcurl initialisation failed");
		return EXIT_UNHEALTHY;
	}
	rc = probe(url, cert_file ? pin : NULL);
	curl_global_cleanup();
	return rc;
}
