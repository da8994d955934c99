/* Tests the client tests' network harness: the controllable TCP relay and the fake portal. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "tests/lib/http_client.h"
#include "tests/lib/portal.h"
#include "tests/lib/tcpproxy.h"

#define ECHO_MAX_CONNS 16

/* Evaluates cond every 10 ms until it holds, 5 s at most; the caller asserts it afterwards. */
#define WAIT_UNTIL(cond) for (int w_ = 0; w_ < 500 && !(cond); w_++) pause_ms(10)

static void pause_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static long ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

/* The relay's target: echoes every byte back, counting connections, bytes and resets. */
struct echo {
	pthread_t thread;
	int lfd, port, wake[2];
	pthread_mutex_t lock;
	unsigned conns, resets;
	uint64_t received;
};

struct echo_conn {
	int fd;
	char buf[16384];
	size_t off, len;
};

static void echo_count(struct echo *e, uint64_t received, int reset)
{
	pthread_mutex_lock(&e->lock);
	e->received += received;
	e->resets += reset;
	pthread_mutex_unlock(&e->lock);
}

static void echo_drop(struct echo *e, struct echo_conn *c, int err)
{
	echo_count(e, 0, err == ECONNRESET || err == EPIPE);
	close(c->fd);
	c->fd = -1;
}

static void echo_turn(struct echo *e, struct echo_conn *c)
{
	ssize_t n;

	if (c->off == c->len) {
		c->off = c->len = 0;
		n = recv(c->fd, c->buf, sizeof(c->buf), 0);
		if (n == 0 || (n == -1 && errno != EAGAIN)) {
			echo_drop(e, c, n == 0 ? 0 : errno);
			return;
		}
		if (n > 0) {
			c->len = (size_t)n;
			echo_count(e, (uint64_t)n, 0);
		}
	}
	while (c->off < c->len) {
		n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno != EAGAIN)
				echo_drop(e, c, errno);
			return;
		}
		c->off += (size_t)n;
	}
}

static void *echo_run(void *arg)
{
	struct echo *e = arg;
	struct echo_conn *conns = calloc(ECHO_MAX_CONNS, sizeof(*conns));

	for (int i = 0; conns && i < ECHO_MAX_CONNS; i++)
		conns[i].fd = -1;
	while (conns) {
		struct pollfd fds[2 + ECHO_MAX_CONNS];
		int slot[2 + ECHO_MAX_CONNS], n = 2;

		fds[0] = (struct pollfd){.fd = e->wake[0], .events = POLLIN};
		fds[1] = (struct pollfd){.fd = e->lfd, .events = POLLIN};
		for (int i = 0; i < ECHO_MAX_CONNS; i++) {
			if (conns[i].fd == -1)
				continue;
			slot[n] = i;
			fds[n++] = (struct pollfd){.fd = conns[i].fd,
						   .events = conns[i].off < conns[i].len ? POLLOUT
											 : POLLIN};
		}
		if (poll(fds, (nfds_t)n, -1) == -1 || fds[0].revents)
			break;
		for (int k = 2; k < n; k++)
			if (fds[k].revents)
				echo_turn(e, &conns[slot[k]]);
		if (fds[1].revents) {
			int fd = accept4(e->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

			for (int i = 0; fd != -1 && i < ECHO_MAX_CONNS; i++) {
				if (conns[i].fd != -1)
					continue;
				conns[i].fd = fd;
				conns[i].off = conns[i].len = 0;
				fd = -1;
				pthread_mutex_lock(&e->lock);
				e->conns++;
				pthread_mutex_unlock(&e->lock);
			}
			if (fd != -1)
				close(fd);
		}
	}
	for (int i = 0; conns && i < ECHO_MAX_CONNS; i++)
		if (conns[i].fd != -1)
			close(conns[i].fd);
	free(conns);
	return NULL;
}

static struct echo *echo_start(void)
{
	struct echo *e = calloc(1, sizeof(*e));
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);

	cr_assert_not_null(e);
	pthread_mutex_init(&e->lock, NULL);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	e->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	cr_assert_neq(e->lfd, -1);
	cr_assert_eq(bind(e->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(e->lfd, 16), 0);
	cr_assert_eq(getsockname(e->lfd, (struct sockaddr *)&sa, &len), 0);
	e->port = ntohs(sa.sin_port);
	cr_assert_eq(pipe2(e->wake, O_CLOEXEC), 0);
	cr_assert_eq(pthread_create(&e->thread, NULL, echo_run, e), 0);
	return e;
}

static void echo_stop(struct echo *e)
{
	cr_assert_eq(write(e->wake[1], "x", 1), 1);
	pthread_join(e->thread, NULL);
	close(e->lfd);
	close(e->wake[0]);
	close(e->wake[1]);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

static unsigned echo_conns(struct echo *e)
{
	unsigned n;

	pthread_mutex_lock(&e->lock);
	n = e->conns;
	pthread_mutex_unlock(&e->lock);
	return n;
}

static unsigned echo_resets(struct echo *e)
{
	unsigned n;

	pthread_mutex_lock(&e->lock);
	n = e->resets;
	pthread_mutex_unlock(&e->lock);
	return n;
}

static uint64_t echo_received(struct echo *e)
{
	uint64_t n;

	pthread_mutex_lock(&e->lock);
	n = e->received;
	pthread_mutex_unlock(&e->lock);
	return n;
}

/* A nonblocking socket connected to 127.0.0.1:port. */
static int dial(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_neq(fd, -1);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %s",
		     strerror(errno));
	cr_assert_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	return fd;
}

static char *pattern(size_t len, unsigned seed)
{
	char *p = malloc(len);

	cr_assert_not_null(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (char)(i * 31 + i / 251 + seed);
	return p;
}

/*
 * Sends len bytes of data on fd while reading what comes back into out, until len bytes came
 * back, the peer closed, the connection failed or 10 s passed. Returns the bytes received;
 * *err is 0, or the errno of the failure (-1 for a clean close, -2 for the timeout).
 */
static size_t exchange(int fd, const char *data, size_t len, char *out, int *err)
{
	size_t sent = 0, got = 0;
	struct timespec t0;

	*err = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (got < len) {
		struct pollfd p = {.fd = fd, .events = POLLIN | (sent < len ? POLLOUT : 0)};
		long left = 10000 - ms_since(&t0);
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
			*err = -2;
			break;
		}
		if (sent < len && (p.revents & POLLOUT)) {
			n = send(fd, data + sent, len - sent, MSG_NOSIGNAL);
			if (n == -1 && errno != EAGAIN) {
				*err = errno;
				break;
			}
			if (n > 0)
				sent += (size_t)n;
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			n = recv(fd, out + got, len - got, 0);
			if (n == 0 || (n == -1 && errno != EAGAIN)) {
				*err = n == 0 ? -1 : errno;
				break;
			}
			if (n > 0)
				got += (size_t)n;
		}
	}
	return got;
}

/* Waits (5 s at most) for what fd does next: 0 when it was reset, else a failure code. */
static int wait_reset(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char b;
	ssize_t n;

	if (poll(&p, 1, 5000) != 1)
		return -2;
	n = recv(fd, &b, 1, 0);
	if (n == -1 && errno == ECONNRESET)
		return 0;
	return n == 0 ? -1 : 1;
}

/* Exchanges len bytes through port on a new connection and asserts they all came back. */
static void round_trip(int port, size_t len, unsigned seed)
{
	char *data = pattern(len, seed), *back = malloc(len);
	int fd = dial(port), err;
	size_t got;

	cr_assert_not_null(back);
	got = exchange(fd, data, len, back, &err);
	cr_assert_eq(err, 0, "exchange failed: %d (%s)", err, err > 0 ? strerror(err) : "");
	cr_assert_eq(got, len);
	cr_assert_eq(memcmp(data, back, len), 0, "the bytes came back changed");
	close(fd);
	free(data);
	free(back);
}

Test(harness_proxy, forwards_exact_bytes_both_ways)
{
	struct echo *e = echo_start();
	struct tcpproxy *p = tcpproxy_start(e->port);
	const size_t len = 300001;
	int fds[3], err;
	char *data[3], *back = malloc(len);

	cr_assert_not_null(p);
	cr_assert_not_null(back);
	cr_assert_gt(tcpproxy_port(p), 0);
	cr_assert_neq(tcpproxy_port(p), e->port);
	round_trip(tcpproxy_port(p), len, 1);
	WAIT_UNTIL(tcpproxy_down_bytes(p) == len);
	cr_assert_eq(tcpproxy_up_bytes(p), len);
	cr_assert_eq(tcpproxy_down_bytes(p), len);
	cr_assert_eq(echo_received(e), len);
	cr_assert_eq(tcpproxy_connections(p), 1);

	/* three connections at once, interleaved: each gets its own bytes back */
	for (int i = 0; i < 3; i++) {
		fds[i] = dial(tcpproxy_port(p));
		data[i] = pattern(len, (unsigned)(i + 7));
	}
	for (int i = 2; i >= 0; i--) {
		cr_assert_eq(exchange(fds[i], data[i], len, back, &err), len);
		cr_assert_eq(err, 0);
		cr_assert_eq(memcmp(data[i], back, len), 0);
		close(fds[i]);
		free(data[i]);
	}
	WAIT_UNTIL(tcpproxy_down_bytes(p) == 4 * len);
	cr_assert_eq(tcpproxy_up_bytes(p), 4 * len);
	cr_assert_eq(tcpproxy_down_bytes(p), 4 * len);
	cr_assert_eq(tcpproxy_connections(p), 4);
	cr_assert_eq(echo_conns(e), 4);
	cr_assert_eq(tcpproxy_cuts(p), 0);
	cr_assert_eq(echo_resets(e), 0, "a clean close should reach the target as a FIN");
	free(back);
	tcpproxy_free(p);
	echo_stop(e);
}

Test(harness_proxy, cut_after_resets_at_the_exact_count_once)
{
	struct echo *e = echo_start();
	struct tcpproxy *p = tcpproxy_start(e->port);
	const size_t len = 1 << 20, cut = 100000;
	char *data = pattern(len, 3), *back = malloc(len);
	int fd, err;
	size_t got;

	cr_assert_not_null(p);
	cr_assert_not_null(back);
	tcpproxy_cut_after(p, cut);
	fd = dial(tcpproxy_port(p));
	got = exchange(fd, data, len, back, &err);
	cr_assert(err == ECONNRESET || err == EPIPE, "the client should see a reset, got %d", err);
	cr_assert_leq(got, cut);
	cr_assert_eq(memcmp(data, back, got), 0);
	close(fd);
	cr_assert_eq(tcpproxy_cuts(p), 1);
	cr_assert_eq(tcpproxy_up_bytes(p), cut, "forwarded %llu bytes, cut at %zu",
		     (unsigned long long)tcpproxy_up_bytes(p), cut);
	WAIT_UNTIL(echo_resets(e) == 1);
	cr_assert_eq(echo_resets(e), 1, "the target should see a reset too");
	cr_assert_leq(echo_received(e), cut);

	/* later connections work, and the cut does not come back */
	round_trip(tcpproxy_port(p), 2 * cut, 4);
	cr_assert_eq(tcpproxy_cuts(p), 1);
	WAIT_UNTIL(tcpproxy_up_bytes(p) == 3 * cut);
	cr_assert_eq(tcpproxy_up_bytes(p), 3 * cut);
	cr_assert_eq(tcpproxy_connections(p), 2);
	free(data);
	free(back);
	tcpproxy_free(p);
	echo_stop(e);
}

Test(harness_proxy, cut_counts_across_connections_and_resets_them_all)
{
	struct echo *e = echo_start();
	struct tcpproxy *p = tcpproxy_start(e->port);
	char *data = pattern(5000, 5), *back = malloc(5000);
	int a, b, err;

	cr_assert_not_null(p);
	cr_assert_not_null(back);
	a = dial(tcpproxy_port(p));
	b = dial(tcpproxy_port(p));
	cr_assert_eq(exchange(a, data, 5000, back, &err), 5000);
	cr_assert_eq(err, 0);
	WAIT_UNTIL(tcpproxy_connections(p) == 2 && tcpproxy_up_bytes(p) == 5000);
	cr_assert_eq(tcpproxy_connections(p), 2);

	/* counted from the call: 3000 of b's bytes, then 1000 of a's reach the count */
	tcpproxy_cut_after(p, 4000);
	cr_assert_eq(exchange(b, data, 3000, back, &err), 3000);
	cr_assert_eq(err, 0);
	cr_assert_eq(tcpproxy_cuts(p), 0);
	exchange(a, data, 5000, back, &err);
	cr_assert(err == ECONNRESET || err == EPIPE, "a should be reset, got %d", err);
	cr_assert_eq(wait_reset(b), 0, "the idle connection should be reset too");
	cr_assert_eq(tcpproxy_cuts(p), 1);
	cr_assert_eq(tcpproxy_up_bytes(p), 9000);
	WAIT_UNTIL(echo_resets(e) == 2);
	cr_assert_eq(echo_resets(e), 2);
	close(a);
	close(b);
	round_trip(tcpproxy_port(p), 5000, 6);
	cr_assert_eq(tcpproxy_cuts(p), 1);
	free(data);
	free(back);
	tcpproxy_free(p);
	echo_stop(e);
}

Test(harness_proxy, set_target_switches_new_connections)
{
	struct echo *one = echo_start(), *two = echo_start();
	struct tcpproxy *p = tcpproxy_start(one->port);
	char *data = pattern(4000, 8), *back = malloc(4000);
	int old, err;

	cr_assert_not_null(p);
	cr_assert_not_null(back);
	round_trip(tcpproxy_port(p), 4000, 9);
	old = dial(tcpproxy_port(p));
	WAIT_UNTIL(echo_conns(one) == 2);
	cr_assert_eq(echo_conns(one), 2);
	cr_assert_eq(echo_conns(two), 0);

	tcpproxy_set_target(p, two->port);
	round_trip(tcpproxy_port(p), 4000, 10);
	cr_assert_eq(echo_conns(two), 1);
	cr_assert_eq(echo_received(two), 4000);
	cr_assert_eq(echo_conns(one), 2);

	/* the connection opened before the switch still reaches the first server */
	cr_assert_eq(exchange(old, data, 4000, back, &err), 4000);
	cr_assert_eq(err, 0);
	cr_assert_eq(memcmp(data, back, 4000), 0);
	cr_assert_eq(echo_received(one), 8000);
	close(old);
	free(data);
	free(back);
	tcpproxy_free(p);
	echo_stop(one);
	echo_stop(two);
}

Test(harness_proxy, set_down_resets_open_and_new_connections)
{
	struct echo *e = echo_start();
	struct tcpproxy *p = tcpproxy_start(e->port);
	char *data = pattern(1000, 11), *back = malloc(1000);
	int open_fd, fd, err;

	cr_assert_not_null(p);
	cr_assert_not_null(back);
	open_fd = dial(tcpproxy_port(p));
	cr_assert_eq(exchange(open_fd, data, 1000, back, &err), 1000);
	cr_assert_eq(err, 0);

	tcpproxy_set_down(p, 1);
	cr_assert_eq(wait_reset(open_fd), 0, "the open connection should be reset");
	close(open_fd);
	fd = dial(tcpproxy_port(p));
	cr_assert_eq(wait_reset(fd), 0, "a new connection should be accepted, then reset");
	close(fd);
	cr_assert_eq(tcpproxy_connections(p), 2);
	cr_assert_eq(echo_conns(e), 1, "nothing should reach the target while down");
	WAIT_UNTIL(echo_resets(e) == 1);
	cr_assert_eq(echo_resets(e), 1);
	cr_assert_eq(tcpproxy_cuts(p), 0, "going down is not a cut");

	tcpproxy_set_down(p, 0);
	round_trip(tcpproxy_port(p), 1000, 12);
	cr_assert_eq(echo_conns(e), 2);
	cr_assert_eq(tcpproxy_connections(p), 3);
	free(data);
	free(back);
	tcpproxy_free(p);
	echo_stop(e);
}

Test(harness_proxy, refusing_target_resets_the_client)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	struct tcpproxy *p;
	int hold, fd;

	/* a bound socket that never listens keeps its port refusing, with no race for it */
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	hold = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_neq(hold, -1);
	cr_assert_eq(bind(hold, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(getsockname(hold, (struct sockaddr *)&sa, &len), 0);
	p = tcpproxy_start(ntohs(sa.sin_port));
	cr_assert_not_null(p);
	fd = dial(tcpproxy_port(p));
	cr_assert_eq(wait_reset(fd), 0, "a refused target should reset the client");
	close(fd);
	cr_assert_eq(tcpproxy_connections(p), 1);
	cr_assert_eq(tcpproxy_up_bytes(p), 0);
	tcpproxy_free(p);
	tcpproxy_free(NULL);
	close(hold);
}

static size_t discard(char *ptr, size_t size, size_t n, void *cls)
{
	(void)ptr;
	(void)cls;
	return size * n;
}

/* GET url with libcurl trusting only ca_file. */
static CURLcode curl_get(const char *url, const char *ca_file)
{
	CURL *h = curl_easy_init();
	CURLcode rc;

	cr_assert_not_null(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CAINFO, ca_file);
	curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	rc = curl_easy_perform(h);
	curl_easy_cleanup(h);
	return rc;
}

Test(harness_proxy, portal_answers_a_login_page)
{
	struct portal *p = portal_start(PORTAL_HTML);
	struct http_reply r = {0};
	char url[128], type[128];

	cr_assert_not_null(p);
	cr_assert_gt(portal_port(p), 0);
	http_client_tls(portal_cert_file(p), NULL, NULL);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/generate_204", portal_port(p));
	cr_assert_eq(http_request("GET", url, NULL, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 200);
	cr_assert_not_null(http_reply_header(&r, "Content-Type", type, sizeof(type)));
	cr_assert_eq(strncmp(type, "text/html", 9), 0, "Content-Type: %s", type);
	cr_assert_not_null(http_reply_header(&r, "Connection", type, sizeof(type)));
	cr_assert_str_eq(type, "close");
	cr_assert_not_null(strstr(r.body, "<form"), "not a login page: %s", r.body);
	http_reply_free(&r);
	cr_assert_eq(portal_requests(p), 1);
	cr_assert_eq(portal_handshake_failures(p), 0);
	cr_assert_eq(portal_saw_authorization(p), 0);
	portal_free(p);
}

Test(harness_proxy, portal_redirects_to_the_login_host)
{
	struct portal *p = portal_start(PORTAL_REDIRECT);
	struct http_reply r = {0};
	char url[128], loc[512], want[256];

	cr_assert_not_null(p);
	http_client_tls(portal_cert_file(p), NULL, NULL);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/files/upload?x=1", portal_port(p));
	cr_assert_eq(http_request("HEAD", url, NULL, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 302);
	cr_assert_not_null(http_reply_header(&r, "Location", loc, sizeof(loc)));
	snprintf(want, sizeof(want),
		 "http://login.hotel.example/portal?continue="
		 "https%%3A%%2F%%2F127.0.0.1%%3A%d%%2Ffiles%%2Fupload%%3Fx%%3D1",
		 portal_port(p));
	cr_assert_str_eq(loc, want);
	http_reply_free(&r);
	cr_assert_eq(http_request("PATCH", url, NULL, "abc", 3, &r), 0);
	cr_assert_eq(r.status, 302);
	http_reply_free(&r);
	cr_assert_eq(portal_requests(p), 2);
	portal_free(p);
}

Test(harness_proxy, portal_untrusted_fails_verification_and_is_counted)
{
	struct portal *p = portal_start(PORTAL_HTML), *other = portal_start(PORTAL_HTML);
	char url[128];

	cr_assert_not_null(p);
	cr_assert_not_null(other);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/", portal_port(p));
	/* another fresh self-signed certificate is no trust anchor for this one */
	cr_assert_eq(curl_get(url, portal_cert_file(other)), CURLE_PEER_FAILED_VERIFICATION);
	WAIT_UNTIL(portal_handshake_failures(p) == 1);
	cr_assert_eq(portal_handshake_failures(p), 1);
	cr_assert_eq(portal_requests(p), 0);
	cr_assert_eq(curl_get(url, portal_cert_file(p)), CURLE_OK);
	cr_assert_eq(portal_requests(p), 1);
	cr_assert_eq(portal_handshake_failures(p), 1);
	portal_free(p);
	portal_free(other);
	portal_free(NULL);
}

Test(harness_proxy, portal_reports_authorization_and_drops_bodies)
{
	struct portal *p = portal_start(PORTAL_HTML);
	const char *const auth[] = {"Authorization: Bearer secret-token", NULL};
	const size_t len = 200000;
	char *body = pattern(len, 13);
	struct http_reply r = {0};
	char url[128];

	cr_assert_not_null(p);
	http_client_tls(portal_cert_file(p), NULL, NULL);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/files", portal_port(p));
	cr_assert_eq(http_request("POST", url, NULL, body, len, &r), 0);
	cr_assert_eq(r.status, 200);
	http_reply_free(&r);
	cr_assert_eq(portal_saw_authorization(p), 0);
	cr_assert_eq(http_request("POST", url, auth, body, len, &r), 0);
	cr_assert_eq(r.status, 200);
	http_reply_free(&r);
	cr_assert_eq(portal_saw_authorization(p), 1);
	cr_assert_eq(portal_requests(p), 2);
	free(body);
	portal_free(p);
}
