/* portal: a fake captive portal (hotel login page) over HTTPS on 127.0.0.1, for client tests. */
#include "tests/lib/portal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tests/lib/proc.h"

#define PORTAL_HEAD_MAX 16384
#define PORTAL_BODY_MAX (1024 * 1024)
#define PORTAL_CONN_MS 5000
/* after answering, how long the client may take to close before we do */
#define PORTAL_LINGER_MS 1000

static const char portal_page[] =
	"<!DOCTYPE html>\n"
	"<html><head><title>Hotel Example Wi-Fi</title></head>\n"
	"<body><h1>Welcome to Hotel Example</h1>\n"
	"<p>Please sign in to use the Internet.</p>\n"
	"<form method=\"post\" action=\"/portal/login\">\n"
	"<input name=\"room\" placeholder=\"Room number\">\n"
	"<input name=\"surname\" placeholder=\"Surname\">\n"
	"<button type=\"submit\">Connect</button></form>\n"
	"</body></html>\n";

struct portal {
	pthread_t thread;
	enum portal_mode mode;
	int lfd, port;
	int wake[2];            /* written once by portal_free: the thread stops */
	SSL_CTX *ctx;
	char *dir;              /* temp dir holding cert.pem */
	char cert_file[4200];
	pthread_mutex_t lock;   /* guards the counters below */
	unsigned requests, handshake_failures;
	int saw_auth;
};

/* The outcomes of one step of a connection, besides a byte count. */
enum {
	IO_EOF = 0,
	IO_FAIL = -1,           /* TLS or socket error */
	IO_ABORT = -2,          /* the connection's time is up, or the portal is stopping */
};

enum io_op { OP_ACCEPT, OP_READ, OP_WRITE };

static void deadline_in(struct timespec *t, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, t);
	t->tv_sec += ms / 1000;
	t->tv_nsec += (ms % 1000) * 1000000L;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

static long ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* Waits until fd is ready for events. Returns 0, or IO_ABORT (deadline, or stopping). */
static int wait_fd(struct portal *p, int fd, short events, const struct timespec *deadline)
{
	for (;;) {
		struct pollfd fds[2] = {{.fd = fd, .events = events},
					{.fd = p->wake[0], .events = POLLIN}};
		long left = ms_left(deadline);
		int n;

		if (left <= 0)
			return IO_ABORT;
		n = poll(fds, 2, (int)left);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0 || fds[1].revents)
			return IO_ABORT;
		return 0;
	}
}

/* One TLS operation on a nonblocking socket, waiting as it needs. Returns > 0 or an IO_ code. */
static int ssl_step(struct portal *p, SSL *ssl, enum io_op op, void *buf, int len,
		    const struct timespec *deadline)
{
	for (;;) {
		int n, err, rc;
		short ev;

		ERR_clear_error();
		if (op == OP_ACCEPT)
			n = SSL_accept(ssl);
		else if (op == OP_READ)
			n = SSL_read(ssl, buf, len);
		else
			n = SSL_write(ssl, buf, len);
		if (n > 0)
			return n;
		err = SSL_get_error(ssl, n);
		if (err == SSL_ERROR_ZERO_RETURN)
			return IO_EOF;
		if (err == SSL_ERROR_WANT_READ)
			ev = POLLIN;
		else if (err == SSL_ERROR_WANT_WRITE)
			ev = POLLOUT;
		else
			return IO_FAIL;
		rc = wait_fd(p, SSL_get_fd(ssl), ev, deadline);
		if (rc)
			return rc;
	}
}

/*
 * Copies the value of header name from head (a NUL-terminated request head), trimmed, into
 * out. Returns 1 when the header is present, else 0.
 */
static int head_header(const char *head, const char *name, char *out, size_t cap)
{
	size_t n = strlen(name);
	const char *line = strstr(head, "\r\n");

	while (line) {
		const char *eol, *v;
		size_t vlen;

		line += 2;
		eol = strstr(line, "\r\n");
		if (!eol || eol == line)
			return 0;
		if ((size_t)(eol - line) > n && line[n] == ':' && strncasecmp(line, name, n) == 0) {
			v = line + n + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			vlen = (size_t)(eol - v);
			while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
				vlen--;
			if (vlen >= cap)
				vlen = cap - 1;
			memcpy(out, v, vlen);
			out[vlen] = '\0';
			return 1;
		}
		line = eol;
	}
	return 0;
}

/* Percent-encodes in (all but RFC 3986 unreserved bytes) into out, truncating to fit. */
static void percent_encode(const char *in, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *in && o + 4 <= cap; in++) {
		unsigned char ch = (unsigned char)*in;

		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
			out[o++] = (char)ch;
		} else {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	out[o] = '\0';
}

/* Writes the answer to the request in head (NUL-terminated) into out. Returns its length. */
static size_t portal_answer(const struct portal *p, const char *head, char *out, size_t cap)
{
	char host[256], target[1024] = "/", url[1400], cont[4200];
	const char *sp = strchr(head, ' ');
	int n;

	if (p->mode == PORTAL_HTML) {
		n = snprintf(out, cap,
			     "HTTP/1.1 200 OK\r\n"
			     "Content-Type: text/html; charset=utf-8\r\n"
			     "Content-Length: %zu\r\n"
			     "Cache-Control: no-store\r\n"
			     "Connection: close\r\n\r\n%s",
			     sizeof(portal_page) - 1, portal_page);
		return n > 0 && (size_t)n < cap ? (size_t)n : 0;
	}
	/* continue= carries the URL the client asked for, as real portals do */
	if (sp) {
		size_t len = strcspn(sp + 1, " \r\n");

		if (len >= sizeof(target))
			len = sizeof(target) - 1;
		memcpy(target, sp + 1, len);
		target[len] = '\0';
	}
	if (!head_header(head, "Host", host, sizeof(host)))
		snprintf(host, sizeof(host), "127.0.0.1:%d", p->port);
	snprintf(url, sizeof(url), "https://%s%s", host, target);
	percent_encode(url, cont, sizeof(cont));
	n = snprintf(out, cap,
		     "HTTP/1.1 302 Found\r\n"
		     "Location: http://login.hotel.example/portal?continue=%s\r\n"
		     "Content-Type: text/html; charset=utf-8\r\n"
		     "Content-Length: 0\r\n"
		     "Cache-Control: no-store\r\n"
		     "Connection: close\r\n\r\n",
		     cont);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* Reads and drops n bytes of body (fewer if the client stops). Returns 0 or an IO_ code. */
static int drop_body(struct portal *p, SSL *ssl, uint64_t n, const struct timespec *deadline)
{
	char buf[16384];

	while (n > 0) {
		int want = n < sizeof(buf) ? (int)n : (int)sizeof(buf);
		int got = ssl_step(p, ssl, OP_READ, buf, want, deadline);

		if (got <= 0)
			return got;
		n -= (uint64_t)got;
	}
	return 0;
}

/* Closes fd once the client has closed, so that it reads the answer before any reset. */
static void linger_close(struct portal *p, int fd)
{
	struct timespec deadline;
	char buf[4096];

	shutdown(fd, SHUT_WR);
	deadline_in(&deadline, PORTAL_LINGER_MS);
	while (wait_fd(p, fd, POLLIN, &deadline) == 0) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
			break;
	}
	close(fd);
}

/* Serves one connection: handshake, one request, one answer, close. */
static void portal_serve(struct portal *p, int fd)
{
	char head[PORTAL_HEAD_MAX + 1], answer[8192], value[64], expect[32], *end = NULL;
	struct timespec deadline;
	size_t len = 0, head_len, answer_len;
	uint64_t body = 0;
	int rc, auth;
	SSL *ssl;

	deadline_in(&deadline, PORTAL_CONN_MS);
	ssl = SSL_new(p->ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1) {
		close(fd);
		SSL_free(ssl);
		return;
	}
	rc = ssl_step(p, ssl, OP_ACCEPT, NULL, 0, &deadline);
	if (rc <= 0) {
		pthread_mutex_lock(&p->lock);
		p->handshake_failures++;
		pthread_mutex_unlock(&p->lock);
		goto out;
	}
	while (!end && len < PORTAL_HEAD_MAX) {
		rc = ssl_step(p, ssl, OP_READ, head + len, (int)(PORTAL_HEAD_MAX - len), &deadline);
		if (rc <= 0)
			goto out;
		len += (size_t)rc;
		head[len] = '\0';
		end = memmem(head, len, "\r\n\r\n", 4);
	}
	if (!end)
		goto out; /* no complete head within 16 KiB: not a request we answer */
	head_len = (size_t)(end - head) + 4;
	/* body bytes that came with the head: counted, then cut off to end the head string */
	body = len - head_len;
	head[head_len] = '\0';
	auth = head_header(head, "Authorization", value, sizeof(value));
	if (auth) {
		pthread_mutex_lock(&p->lock);
		p->saw_auth = 1;
		pthread_mutex_unlock(&p->lock);
	}
	/* a client waiting for 100-continue sends no body: the answer comes first */
	if (head_header(head, "Content-Length", value, sizeof(value)) &&
	    !(head_header(head, "Expect", expect, sizeof(expect)) &&
	      strcasecmp(expect, "100-continue") == 0)) {
		unsigned long long cl;
		char *cl_end;

		errno = 0;
		cl = strtoull(value, &cl_end, 10);
		if (errno == 0 && cl_end != value && *cl_end == '\0' && value[0] != '-') {
			if (cl > PORTAL_BODY_MAX)
				cl = PORTAL_BODY_MAX;
			if (drop_body(p, ssl, cl > body ? cl - body : 0, &deadline) == IO_ABORT)
				goto out;
		}
	}
	answer_len = portal_answer(p, head, answer, sizeof(answer));
	if (!answer_len)
		goto out;
	pthread_mutex_lock(&p->lock);
	p->requests++;
	pthread_mutex_unlock(&p->lock);
	if (ssl_step(p, ssl, OP_WRITE, answer, (int)answer_len, &deadline) != (int)answer_len)
		goto out;
	SSL_shutdown(ssl); /* sends close_notify; the client's reply does not matter */
	SSL_free(ssl);
	linger_close(p, fd);
	return;
out:
	SSL_free(ssl);
	close(fd);
}

static void *portal_run(void *arg)
{
	struct portal *p = arg;

	for (;;) {
		struct pollfd fds[2] = {{.fd = p->wake[0], .events = POLLIN},
					{.fd = p->lfd, .events = POLLIN}};
		int fd;

		if (poll(fds, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (fds[0].revents)
			break;
		fd = accept4(p->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd != -1)
			portal_serve(p, fd);
	}
	return NULL;
}

static int add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (!ext)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

/*
 * A fresh P-256 key and a self-signed certificate for IP 127.0.0.1 (and localhost), valid from
 * an hour ago for two days, into p->ctx and p->cert_file. Returns 0 or -1.
 */
static int portal_make_cert(struct portal *p)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	uint64_t serial;
	FILE *f = NULL;
	int rc = -1;

	if (!key || !x || X509_set_version(x, X509_VERSION_3) != 1 ||
	    RAND_bytes((unsigned char *)&serial, sizeof(serial)) != 1 ||
	    ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), serial >> 1) != 1 ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 2 * 86400L) || X509_set_pubkey(x, key) != 1)
		goto out;
	name = X509_get_subject_name(x);
	if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1",
				       -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, name) != 1)
		goto out;
	/* the extensions `openssl req -x509` gives, as tests/lib/fs_gateway.c makes its own */
	if (add_ext(x, NID_basic_constraints, "critical,CA:TRUE") ||
	    add_ext(x, NID_subject_key_identifier, "hash") ||
	    add_ext(x, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost") ||
	    !X509_sign(x, key, EVP_sha256()))
		goto out;
	if (SSL_CTX_use_certificate(p->ctx, x) != 1 || SSL_CTX_use_PrivateKey(p->ctx, key) != 1 ||
	    SSL_CTX_check_private_key(p->ctx) != 1)
		goto out;
	snprintf(p->cert_file, sizeof(p->cert_file), "%s/cert.pem", p->dir);
	f = fopen(p->cert_file, "w");
	if (!f || PEM_write_X509(f, x) != 1)
		goto out;
	rc = 0;
out:
	if (f && fclose(f))
		rc = -1;
	X509_free(x);
	EVP_PKEY_free(key);
	return rc;
}

static void portal_release(struct portal *p)
{
	if (p->lfd != -1)
		close(p->lfd);
	if (p->wake[0] != -1) {
		close(p->wake[0]);
		close(p->wake[1]);
	}
	SSL_CTX_free(p->ctx);
	if (p->dir) {
		proc_rmtree(p->dir);
		free(p->dir);
	}
	pthread_mutex_destroy(&p->lock);
	free(p);
}

struct portal *portal_start(enum portal_mode mode)
{
	struct portal *p = calloc(1, sizeof(*p));
	sigset_t all, old;
	int rc;

	if (!p)
		return NULL;
	p->mode = mode;
	p->lfd = p->wake[0] = p->wake[1] = -1;
	if (pthread_mutex_init(&p->lock, NULL)) {
		free(p);
		return NULL;
	}
	p->dir = proc_tempdir("portal");
	p->ctx = SSL_CTX_new(TLS_server_method());
	if (!p->dir || !p->ctx || SSL_CTX_set_min_proto_version(p->ctx, TLS1_2_VERSION) != 1 ||
	    portal_make_cert(p))
		goto fail;
	p->lfd = proc_listen_loopback(16, &p->port);
	if (p->lfd == -1 || pipe2(p->wake, O_CLOEXEC) == -1)
		goto fail;
	/* no signal goes to the portal's thread: a write to a closed client fails with EPIPE */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&p->thread, NULL, portal_run, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		goto fail;
	return p;
fail:
	portal_release(p);
	return NULL;
}

int portal_port(const struct portal *p)
{
	return p->port;
}

const char *portal_cert_file(const struct portal *p)
{
	return p->cert_file;
}

unsigned portal_requests(struct portal *p)
{
	unsigned n;

	pthread_mutex_lock(&p->lock);
	n = p->requests;
	pthread_mutex_unlock(&p->lock);
	return n;
}

int portal_saw_authorization(struct portal *p)
{
	int seen;

	pthread_mutex_lock(&p->lock);
	seen = p->saw_auth;
	pthread_mutex_unlock(&p->lock);
	return seen;
}

unsigned portal_handshake_failures(struct portal *p)
{
	unsigned n;

	pthread_mutex_lock(&p->lock);
	n = p->handshake_failures;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void portal_free(struct portal *p)
{
	char b = 1;

	if (!p)
		return;
	/* the pipe is never drained: every wait of the thread sees it and returns */
	while (write(p->wake[1], &b, 1) == -1 && errno == EINTR)
		;
	pthread_join(p->thread, NULL);
	portal_release(p);
}
