/* loadgen: fs-loadgen, TLS load for the relay benchmark: thousands of slow uploads, PUT latency. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#define PROG	       "fs-loadgen"
#define EXIT_USAGE     2
#define NS_PER_MS      1000000LL
#define NS_PER_S       1000000000LL
#define WHEEL_SLOTS    250 /* one slot per millisecond of the 250 ms trickle period */
#define TICKS_PER_S    4
#define CREDIT_TICKS   4     /* a connection the relay stalled catches up by one second at most */
#define PAT_PERIOD     64    /* the body pattern repeats every 64 bytes ... */
#define PAT_MAX	       16384 /* ... and one SSL_write carries at most one full TLS record */
#define RESP_MAX       16384 /* response head limit in latency mode */
#define STATUS_LEN     12    /* "HTTP/1.1 201" is all slow mode needs of an answer */
#define UUID_LEN       36
#define TOKEN_MAX      16384
#define PATH_MAX_LEN   1024
#define FD_RESERVE     64
#define EVENTS_MAX     256
#define GRACE_S	       60
#define JOB_TIMEOUT_S  30
#define ERRORS_SHOWN   5
#define LOOPBACK       "127.0.0.1"

static const char usage_text[] =
	"Usage: " PROG " slow --port P --ca FILE --token-file F --n N [--rate BYTES_PER_S]\n"
	"                  [--size BYTES] [--ramp PER_S] [--hold SECONDS] [--path PREFIX]\n"
	"       " PROG " latency --port P --ca FILE --token-file F [--jobs J] [--size BYTES]\n"
	"                  [--path PREFIX]\n"
	"\n"
	"TLS 1.3 load on " LOOPBACK ":P, the server certificate checked against FILE.\n"
	"Each request is PUT PREFIX{uuid} with the bearer token read from F.\n"
	"\n"
	"  slow     opens N connections (at most --ramp new ones a second, default 500), each\n"
	"           trickling a --size body (default 1048576) at --rate bytes a second (default\n"
	"           1024); prints counters as JSON every second, {\"ready\":true} once all N are\n"
	"           sending, holds --hold seconds more (default 30), then a {\"done\":true} line\n"
	"  latency  sends --jobs PUTs (default 200) of --size bytes (default 102400) one after\n"
	"           another, each on a fresh connection, and prints their latency as JSON\n"
	"\n"
	"--path defaults to /v1/jobs/. Exit status: 0 all requests fine, 1 any failure, 2 usage.\n";

enum mode { MODE_SLOW, MODE_LATENCY };

enum conn_state {
	ST_IDLE,       /* not started yet */
	ST_CONNECTING, /* TCP connect in flight */
	ST_HANDSHAKE,
	ST_SENDING,  /* request head and body going out */
	ST_RESPONSE, /* whole body sent, waiting for the answer */
	ST_CLOSED,
};

enum conn_flag {
	CONN_WRITE_BLOCKED = 1 << 0,	/* an SSL_write waits for the socket to drain */
	CONN_READ_WANTS_WRITE = 1 << 1, /* SSL_read has to send before it can go on */
	CONN_HS_WANTS_WRITE = 1 << 2,
	CONN_SETTLED = 1 << 3, /* counted once in gen.settled: sent body bytes, or ended before */
};

/* Kept small: 8000 of these live next to OpenSSL's own per-connection state. */
struct conn {
	SSL *ssl;
	uint64_t credit;    /* body bytes the trickle clock allows but not yet written */
	uint64_t body_sent; /* body bytes SSL_write accepted */
	int fd;
	uint32_t head_sent;
	uint32_t wlen; /* length of an SSL_write to repeat after WANT_READ/WANT_WRITE, else 0 */
	uint32_t events;
	unsigned char uuid[16];
	char status[STATUS_LEN];
	uint8_t state;
	uint8_t flags;
	uint8_t status_len;
};

struct counters {
	unsigned long established;
	unsigned long handshaking;
	unsigned long failed;
	unsigned long failed_connect;
	unsigned long failed_tls;
	unsigned long reset;
	unsigned long early_responses;
	unsigned long status_5xx;
	unsigned long bad_status;
	unsigned long timed_out;
	unsigned long completed;
	unsigned long long bytes_sent;
};

struct opts {
	enum mode mode;
	unsigned long long port;
	const char *ca;
	const char *token_file;
	const char *path;
	unsigned long long n;
	unsigned long long rate;
	unsigned long long size;
	unsigned long long ramp;
	unsigned long long hold;
	unsigned long long jobs;
};

enum chunk_state { CH_SIZE, CH_SIZE_EOL, CH_DATA, CH_DATA_EOL, CH_TRAILER };

/* The one response in flight in latency mode, parsed as it arrives. */
struct resp {
	size_t len; /* head bytes in buf */
	int status;
	bool head_done;
	bool chunked;
	bool until_close;
	bool done;
	bool bad;
	bool line_empty;
	enum chunk_state cstate;
	uint64_t body_left;
	uint64_t chunk_left;
	char buf[RESP_MAX];
};

struct gen {
	const struct opts *o;
	SSL_CTX *ctx;
	int ep;
	struct conn *conns;
	size_t n_conns;
	char *head; /* the request head; each connection writes its uuid in before sending */
	size_t head_len;
	size_t uuid_off;
	uint64_t chunk;
	struct counters k;
	unsigned long settled;
	unsigned long errors_shown;
	int64_t t0;
	int64_t wheel_ms;
	int64_t t_answer; /* latency mode: when the last complete answer arrived */
	struct resp r;
	unsigned char pat[PAT_MAX + PAT_PERIOD];
	char rbuf[RESP_MAX];
};

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void fail(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* For what cannot happen in a working process (epoll, clock, RAND): no number would mean much. */
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_FAILURE);
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		die("clock_gettime: %s", strerror(errno));
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void out_flush(void)
{
	if (fflush(stdout) == EOF)
		die("stdout: %s", strerror(errno));
}

/* The first few failures say why on stderr; thousands of the same line would say nothing more. */
static void conn_why(struct gen *g, const char *what, const char *detail)
{
	if (g->errors_shown < ERRORS_SHOWN)
		fail("%s: %s", what, detail);
	else if (g->errors_shown == ERRORS_SHOWN)
		fail("further failures not shown");
	g->errors_shown++;
}

static void tls_why(struct gen *g, struct conn *c, int err)
{
	char buf[256];
	long v = SSL_get_verify_result(c->ssl);
	unsigned long e = ERR_peek_last_error();

	if (v != X509_V_OK)
		snprintf(buf, sizeof(buf), "certificate: %s", X509_verify_cert_error_string(v));
	else if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	else if (err == SSL_ERROR_SYSCALL && errno)
		snprintf(buf, sizeof(buf), "%s", strerror(errno));
	else if (err == SSL_ERROR_ZERO_RETURN)
		snprintf(buf, sizeof(buf), "closed by the server (close_notify)");
	else
		snprintf(buf, sizeof(buf), "connection closed (SSL error %d)", err);
	conn_why(g, "TLS", buf);
}

/* Before each SSL I/O call: SSL_get_error and tls_why must not see an older call's leftovers. */
static void tls_clear(void)
{
	ERR_clear_error();
	errno = 0;
}

static void uuid_format(const unsigned char u[16], char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, j = 0;

	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[j++] = '-';
		out[j++] = hex[u[i] >> 4];
		out[j++] = hex[u[i] & 15];
	}
}

static void conn_state_set(struct gen *g, struct conn *c, enum conn_state st)
{
	if (c->state == ST_CONNECTING || c->state == ST_HANDSHAKE)
		g->k.handshaking--;
	else if (c->state == ST_SENDING || c->state == ST_RESPONSE)
		g->k.established--;
	c->state = st;
	if (st == ST_CONNECTING || st == ST_HANDSHAKE)
		g->k.handshaking++;
	else if (st == ST_SENDING || st == ST_RESPONSE)
		g->k.established++;
}

static void conn_settle(struct gen *g, struct conn *c)
{
	if (!(c->flags & CONN_SETTLED)) {
		c->flags |= CONN_SETTLED;
		g->settled++;
	}
}

/* Closing the fd also takes it out of the epoll set: no other reference to it exists. */
static void conn_close(struct gen *g, struct conn *c, bool polite)
{
	if (c->ssl) {
		if (polite) {
			/* close_notify only: the answer is here, no need to wait for the peer's */
			ERR_clear_error();
			if (SSL_shutdown(c->ssl) < 0)
				ERR_clear_error();
		}
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd != -1) {
		if (close(c->fd) == -1 && errno != EINTR)
			die("close: %s", strerror(errno));
		c->fd = -1;
	}
	conn_settle(g, c);
	conn_state_set(g, c, ST_CLOSED);
}

static void conn_fail(struct gen *g, struct conn *c, unsigned long *why)
{
	(*why)++;
	g->k.failed++;
	conn_close(g, c, false);
}

static int status_code(const char *s, size_t len)
{
	if (len < STATUS_LEN || memcmp(s, "HTTP/1.", 7) || s[8] != ' ')
		return 0;
	if (s[9] < '1' || s[9] > '5' || s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9')
		return 0;
	return (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
}

/*
 * Any answer ends the connection. In slow mode one that comes while the body is still going out
 * is a failure whatever its status: the relay must not answer before it has the whole upload.
 */
static void conn_answer(struct gen *g, struct conn *c, int status)
{
	bool early = g->o->mode == MODE_SLOW && c->state == ST_SENDING;

	g->t_answer = mono_ns();
	if (status >= 500 && status <= 599)
		g->k.status_5xx++;
	if (early) {
		conn_fail(g, c, &g->k.early_responses);
	} else if (status >= 200 && status <= 299) {
		g->k.completed++;
		conn_close(g, c, true);
	} else {
		conn_fail(g, c, &g->k.bad_status);
	}
}

static void conn_events_update(struct gen *g, struct conn *c)
{
	struct epoll_event ev = { 0 };
	uint32_t want = c->state == ST_CONNECTING ? EPOLLOUT : EPOLLIN;

	if (c->flags & (CONN_WRITE_BLOCKED | CONN_READ_WANTS_WRITE))
		want |= EPOLLOUT;
	if (c->state == ST_HANDSHAKE && (c->flags & CONN_HS_WANTS_WRITE))
		want |= EPOLLOUT;
	if (want == c->events)
		return;
	ev.events = want;
	ev.data.u32 = (uint32_t)(c - g->conns);
	if (epoll_ctl(g->ep, EPOLL_CTL_MOD, c->fd, &ev) == -1)
		die("epoll_ctl: %s", strerror(errno));
	c->events = want;
}

/* Writes what the request allows so far: the head, then the body credit. 0 if c stays open. */
static int conn_write(struct gen *g, struct conn *c)
{
	const struct opts *o = g->o;

	c->flags &= ~CONN_WRITE_BLOCKED;
	while (c->state == ST_SENDING) {
		const void *buf;
		size_t len;
		bool body;
		int rc, err;

		if (c->head_sent < g->head_len) {
			uuid_format(c->uuid, g->head + g->uuid_off);
			buf = g->head + c->head_sent;
			len = g->head_len - c->head_sent;
			body = false;
		} else if (c->body_sent == o->size) {
			conn_state_set(g, c, ST_RESPONSE);
			break;
		} else if (c->credit) {
			/* same bytes at the same offset, as a retried SSL_write needs */
			buf = g->pat + c->body_sent % PAT_PERIOD;
			len = c->credit < PAT_MAX ? c->credit : PAT_MAX;
			body = true;
		} else {
			break;
		}
		if (c->wlen)
			len = c->wlen;
		tls_clear();
		rc = SSL_write(c->ssl, buf, (int)len);
		if (rc > 0) {
			c->wlen = 0;
			if (body) {
				c->body_sent += (uint64_t)rc;
				c->credit -= (uint64_t)rc;
				g->k.bytes_sent += (unsigned long long)rc;
				conn_settle(g, c);
			} else {
				c->head_sent += (uint32_t)rc;
			}
			continue;
		}
		err = SSL_get_error(c->ssl, rc);
		if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
			c->wlen = (uint32_t)len;
			if (err == SSL_ERROR_WANT_WRITE)
				c->flags |= CONN_WRITE_BLOCKED;
			return 0;
		}
		tls_why(g, c, err);
		conn_fail(g, c, &g->k.reset);
		return -1;
	}
	return 0;
}

/* Slow mode only needs the status line of an answer, which no answer should send early. */
static int slow_read(struct gen *g, struct conn *c)
{
	for (;;) {
		int rc, err;
		size_t take;

		tls_clear();
		rc = SSL_read(c->ssl, g->rbuf, sizeof(g->rbuf));
		if (rc > 0) {
			take = STATUS_LEN - c->status_len;
			if ((size_t)rc < take)
				take = (size_t)rc;
			memcpy(c->status + c->status_len, g->rbuf, take);
			c->status_len += (uint8_t)take;
			if (c->status_len == STATUS_LEN) {
				conn_answer(g, c, status_code(c->status, c->status_len));
				return -1;
			}
			continue;
		}
		err = SSL_get_error(c->ssl, rc);
		c->flags &= ~CONN_READ_WANTS_WRITE;
		if (err == SSL_ERROR_WANT_READ)
			return 0;
		if (err == SSL_ERROR_WANT_WRITE) {
			c->flags |= CONN_READ_WANTS_WRITE;
			return 0;
		}
		if (c->status_len) {
			/* a truncated status line is still an answer, one we cannot classify */
			conn_answer(g, c, 0);
			return -1;
		}
		tls_why(g, c, err);
		conn_fail(g, c, &g->k.reset);
		return -1;
	}
}

static int hex_value(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
		return (ch | 0x20) - 'a' + 10;
	return -1;
}

static void resp_chunked(struct resp *r, const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && !r->done) {
		char ch = p[i];
		uint64_t take;

		switch (r->cstate) {
		case CH_SIZE:
			if (hex_value(ch) >= 0) {
				if (r->chunk_left >> 60) {
					r->bad = r->done = true;
					break;
				}
				r->chunk_left = r->chunk_left * 16 + (uint64_t)hex_value(ch);
				i++;
				break;
			}
			r->cstate = CH_SIZE_EOL;
			break;
		case CH_SIZE_EOL: /* chunk extensions are skipped up to the line end */
			i++;
			if (ch == '\n') {
				r->cstate = r->chunk_left ? CH_DATA : CH_TRAILER;
				r->line_empty = true;
			}
			break;
		case CH_DATA:
			take = n - i < r->chunk_left ? n - i : r->chunk_left;
			i += take;
			r->chunk_left -= take;
			if (!r->chunk_left)
				r->cstate = CH_DATA_EOL;
			break;
		case CH_DATA_EOL:
			i++;
			if (ch == '\n')
				r->cstate = CH_SIZE;
			break;
		case CH_TRAILER:
			i++;
			if (ch == '\n') {
				if (r->line_empty)
					r->done = true;
				r->line_empty = true;
			} else if (ch != '\r') {
				r->line_empty = false;
			}
			break;
		}
	}
}

static void resp_body(struct resp *r, const char *p, size_t n)
{
	if (r->chunked) {
		resp_chunked(r, p, n);
	} else if (!r->until_close) {
		r->body_left -= n < r->body_left ? n : r->body_left;
		if (!r->body_left)
			r->done = true;
	}
}

static bool header_is(const char *line, size_t len, const char *name)
{
	size_t nlen = strlen(name);

	return len > nlen && !strncasecmp(line, name, nlen) && line[nlen] == ':';
}

/* Parses the head in r->buf[0, end): status, then how the body is framed. */
static void resp_head(struct resp *r, size_t end)
{
	const char *p = r->buf, *stop = r->buf + end;
	bool have_length = false;

	r->status = status_code(r->buf, end);
	if (!r->status) {
		r->bad = r->done = true;
		return;
	}
	if (r->status < 200 && r->status != 101)
		return; /* 100 Continue and friends: the real answer follows */
	r->head_done = true;
	while (p < stop) {
		const char *nl = memchr(p, '\n', (size_t)(stop - p));
		size_t len = (size_t)((nl ? nl : stop) - p);
		const char *v;

		if (header_is(p, len, "content-length")) {
			uint64_t cl = 0;

			for (v = p + 15; v < p + len && (*v == ' ' || *v == '\t'); v++)
				;
			if (v == p + len || *v < '0' || *v > '9')
				r->bad = true;
			for (; v < p + len && *v >= '0' && *v <= '9'; v++) {
				if (cl > UINT64_MAX / 10 - 1)
					r->bad = true;
				cl = cl * 10 + (uint64_t)(*v - '0');
			}
			r->body_left = cl;
			have_length = true;
		} else if (header_is(p, len, "transfer-encoding") && memmem(p, len, "chunked", 7)) {
			r->chunked = true;
		}
		p += len + 1;
	}
	if (r->bad) {
		r->done = true;
	} else if (r->status == 204 || r->status == 304) {
		r->done = true;
	} else if (r->chunked) {
		r->cstate = CH_SIZE;
	} else if (have_length) {
		r->done = !r->body_left;
	} else {
		r->until_close = true;
	}
}

static void resp_feed(struct resp *r, const char *p, size_t n)
{
	while (n && !r->done) {
		size_t take = sizeof(r->buf) - r->len;

		if (r->head_done) {
			resp_body(r, p, n);
			return;
		}
		if (!take) {
			r->bad = r->done = true; /* a head larger than any answer of ours */
			return;
		}
		if (take > n)
			take = n;
		memcpy(r->buf + r->len, p, take);
		r->len += take;
		p += take;
		n -= take;
		while (!r->done) {
			char *crlf = memmem(r->buf, r->len, "\r\n\r\n", 4);
			size_t end, rest;

			if (!crlf)
				break;
			end = (size_t)(crlf - r->buf) + 4;
			rest = r->len - end;
			resp_head(r, end);
			if (r->head_done) {
				if (rest && !r->done)
					resp_body(r, r->buf + end, rest);
				break;
			}
			memmove(r->buf, r->buf + end, rest);
			r->len = rest;
		}
	}
}

/* Latency mode reads the whole answer: its end is what the measurement stops on. */
static int latency_read(struct gen *g, struct conn *c)
{
	struct resp *r = &g->r;

	for (;;) {
		int rc, err;

		tls_clear();
		rc = SSL_read(c->ssl, g->rbuf, sizeof(g->rbuf));
		if (rc > 0) {
			resp_feed(r, g->rbuf, (size_t)rc);
			if (r->done) {
				conn_answer(g, c, r->bad ? 0 : r->status);
				return -1;
			}
			continue;
		}
		err = SSL_get_error(c->ssl, rc);
		c->flags &= ~CONN_READ_WANTS_WRITE;
		if (err == SSL_ERROR_WANT_READ)
			return 0;
		if (err == SSL_ERROR_WANT_WRITE) {
			c->flags |= CONN_READ_WANTS_WRITE;
			return 0;
		}
		if (r->head_done && r->until_close) {
			conn_answer(g, c, r->status);
			return -1;
		}
		tls_why(g, c, err);
		conn_fail(g, c, &g->k.reset);
		return -1;
	}
}

static int conn_io(struct gen *g, struct conn *c)
{
	if (conn_write(g, c))
		return -1;
	return g->o->mode == MODE_SLOW ? slow_read(g, c) : latency_read(g, c);
}

static int conn_handshake(struct gen *g, struct conn *c)
{
	int rc, err;

	tls_clear();
	rc = SSL_connect(c->ssl);
	if (rc == 1) {
		c->flags &= ~CONN_HS_WANTS_WRITE;
		conn_state_set(g, c, ST_SENDING);
		return conn_io(g, c);
	}
	err = SSL_get_error(c->ssl, rc);
	if (err == SSL_ERROR_WANT_READ) {
		c->flags &= ~CONN_HS_WANTS_WRITE;
		return 0;
	}
	if (err == SSL_ERROR_WANT_WRITE) {
		c->flags |= CONN_HS_WANTS_WRITE;
		return 0;
	}
	tls_why(g, c, err);
	conn_fail(g, c, &g->k.failed_tls);
	return -1;
}

static int conn_connected(struct gen *g, struct conn *c)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
		soerr = errno;
	if (soerr) {
		conn_why(g, "connect", strerror(soerr));
		conn_fail(g, c, &g->k.failed_connect);
		return -1;
	}
	conn_state_set(g, c, ST_HANDSHAKE);
	return conn_handshake(g, c);
}

static void conn_event(struct gen *g, struct conn *c)
{
	int rc;

	switch (c->state) {
	case ST_CONNECTING: rc = conn_connected(g, c); break;
	case ST_HANDSHAKE: rc = conn_handshake(g, c); break;
	case ST_SENDING:
	case ST_RESPONSE: rc = conn_io(g, c); break;
	default: return; /* closed earlier in the same batch of events */
	}
	if (!rc)
		conn_events_update(g, c);
}

static void conn_start(struct gen *g, struct conn *c)
{
	struct sockaddr_in sa = { 0 };
	struct epoll_event ev = { 0 };
	int one = 1;

	if (RAND_bytes(c->uuid, sizeof(c->uuid)) != 1)
		die("RAND_bytes failed");
	c->uuid[6] = (unsigned char)((c->uuid[6] & 0x0f) | 0x40);
	c->uuid[8] = (unsigned char)((c->uuid[8] & 0x3f) | 0x80);
	conn_state_set(g, c, ST_CONNECTING);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd == -1) {
		conn_why(g, "socket", strerror(errno));
		conn_fail(g, c, &g->k.failed_connect);
		return;
	}
	/* the 256-byte chunks and the latency PUT must not wait on Nagle */
	if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
		die("setsockopt TCP_NODELAY: %s", strerror(errno));
	c->ssl = SSL_new(g->ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
		conn_why(g, "SSL_new", "out of memory");
		conn_fail(g, c, &g->k.failed_tls);
		return;
	}
	SSL_set_connect_state(c->ssl);
	ev.events = EPOLLOUT;
	ev.data.u32 = (uint32_t)(c - g->conns);
	if (epoll_ctl(g->ep, EPOLL_CTL_ADD, c->fd, &ev) == -1)
		die("epoll_ctl: %s", strerror(errno));
	c->events = EPOLLOUT;
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)g->o->port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		conn_state_set(g, c, ST_HANDSHAKE);
		if (!conn_handshake(g, c))
			conn_events_update(g, c);
	} else if (errno != EINPROGRESS) {
		conn_why(g, "connect", strerror(errno));
		conn_fail(g, c, &g->k.failed_connect);
	}
}

/*
 * Connection i trickles in millisecond slot i % 250, so the chunks of 8000 connections spread
 * over the whole period. Each millisecond visits only its own slot's connections: every
 * connection once per period, which is the work the chunks need anyway.
 */
static void wheel_fire(struct gen *g, struct conn *c)
{
	uint64_t room, add, cap = g->chunk * CREDIT_TICKS;

	if (c->state != ST_SENDING)
		return;
	room = g->o->size - c->body_sent - c->credit;
	add = g->chunk < room ? g->chunk : room;
	c->credit = c->credit + add > cap ? cap : c->credit + add;
	if (c->flags & CONN_WRITE_BLOCKED)
		return; /* EPOLLOUT takes it from here */
	if (!conn_write(g, c))
		conn_events_update(g, c);
}

static void wheel_advance(struct gen *g, int64_t now_ms)
{
	int64_t ms = g->wheel_ms;

	if (now_ms - ms > WHEEL_SLOTS)
		ms = now_ms - WHEEL_SLOTS; /* after a stall each slot fires once, not per lap */
	while (ms < now_ms) {
		size_t i;

		ms++;
		for (i = (size_t)(ms % WHEEL_SLOTS); i < g->n_conns; i += WHEEL_SLOTS)
			wheel_fire(g, &g->conns[i]);
	}
	g->wheel_ms = now_ms;
}

static void report(struct gen *g, int64_t now, const char *lead)
{
	const struct counters *k = &g->k;

	printf("{%s\"t\":%.3f,\"established\":%lu,\"handshaking\":%lu,\"failed\":%lu,"
	       "\"failed_connect\":%lu,\"failed_tls\":%lu,\"reset\":%lu,\"early_responses\":%lu,"
	       "\"status_5xx\":%lu,\"bytes_sent\":%llu,\"bad_status\":%lu,\"timed_out\":%lu,"
	       "\"completed\":%lu}\n",
	       lead, (double)now / NS_PER_S, k->established, k->handshaking, k->failed,
	       k->failed_connect, k->failed_tls, k->reset, k->early_responses, k->status_5xx,
	       k->bytes_sent, k->bad_status, k->timed_out, k->completed);
	out_flush();
}

static void conns_close_all(struct gen *g)
{
	size_t i;

	for (i = 0; i < g->n_conns; i++)
		if (g->conns[i].state != ST_CLOSED && g->conns[i].state != ST_IDLE)
			conn_close(g, &g->conns[i], false);
}

static void events_wait(struct gen *g, struct epoll_event *evs, int timeout_ms)
{
	int i, n = epoll_wait(g->ep, evs, EVENTS_MAX, timeout_ms);

	if (n == -1) {
		if (errno == EINTR)
			return;
		die("epoll_wait: %s", strerror(errno));
	}
	for (i = 0; i < n; i++)
		conn_event(g, &g->conns[evs[i].data.u32]);
}

static int slow_run(struct gen *g)
{
	const struct opts *o = g->o;
	struct epoll_event evs[EVENTS_MAX];
	int64_t ramp_s = (int64_t)((o->n + o->ramp - 1) / o->ramp);
	int64_t hard_end = (ramp_s + (int64_t)o->hold + GRACE_S) * NS_PER_S;
	int64_t hold_end = -1, next_report = NS_PER_S, now;
	unsigned long long started = 0;
	bool ready = false;
	size_t i;

	for (;;) {
		unsigned long long allowed;

		now = mono_ns() - g->t0;
		allowed = (unsigned long long)(now / NS_PER_MS) * o->ramp / 1000 + 1;
		while (started < allowed && started < o->n)
			conn_start(g, &g->conns[started++]);
		wheel_advance(g, now / NS_PER_MS);
		if (hold_end < 0 && started == o->n && g->settled == o->n) {
			/* everything that will ever send is sending: the state worth measuring */
			ready = !g->k.failed;
			printf("{\"ready\":%s,\"t\":%.3f,\"failed\":%lu}\n",
			       ready ? "true" : "false", (double)now / NS_PER_S, g->k.failed);
			out_flush();
			hold_end = now + (int64_t)o->hold * NS_PER_S;
		}
		if (now >= next_report) {
			report(g, now, "");
			while (next_report <= now)
				next_report += NS_PER_S;
		}
		if ((hold_end >= 0 && now >= hold_end) || now >= hard_end)
			break;
		if (started == o->n && !g->k.established && !g->k.handshaking)
			break;
		events_wait(g, evs, 1);
	}
	/* never got as far as its body in the time allowed */
	for (i = 0; i < g->n_conns; i++) {
		struct conn *c = &g->conns[i];

		if (c->state != ST_CLOSED && !(c->flags & CONN_SETTLED))
			conn_fail(g, c, &g->k.timed_out);
	}
	report(g, now, "\"done\":true,");
	conns_close_all(g);
	return g->k.failed || !ready ? EXIT_FAILURE : 0;
}

static int ms_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest rank: the smallest sample with at least pct percent of all samples at or below it. */
static double percentile(const double *v, size_t n, unsigned pct)
{
	size_t rank = (pct * n + 99) / 100;

	return v[rank ? rank - 1 : 0];
}

static int latency_run(struct gen *g)
{
	const struct opts *o = g->o;
	struct epoll_event evs[EVENTS_MAX];
	struct conn *c = &g->conns[0];
	double *ms, sum = 0;
	size_t i, ok = 0;
	unsigned long long j;

	ms = calloc(o->jobs, sizeof(*ms));
	if (!ms)
		die("out of memory");
	for (j = 0; j < o->jobs; j++) {
		unsigned long done_before = g->k.completed;
		int64_t t_start = mono_ns(), deadline = t_start + JOB_TIMEOUT_S * NS_PER_S;

		memset(c, 0, sizeof(*c));
		c->fd = -1;
		c->credit = o->size;
		g->r.len = 0;
		g->r.status = 0;
		g->r.head_done = g->r.chunked = g->r.until_close = g->r.done = g->r.bad = false;
		g->r.cstate = CH_SIZE;
		g->r.body_left = g->r.chunk_left = 0;
		conn_start(g, c);
		while (c->state != ST_CLOSED) {
			int64_t now = mono_ns();

			if (now >= deadline) {
				conn_why(g, "latency", "no answer in time");
				conn_fail(g, c, &g->k.timed_out);
				break;
			}
			events_wait(g, evs, (int)((deadline - now) / NS_PER_MS) + 1);
		}
		if (g->k.completed > done_before)
			ms[ok++] = (double)(g->t_answer - t_start) / NS_PER_MS;
	}
	qsort(ms, ok, sizeof(*ms), ms_cmp);
	for (i = 0; i < ok; i++)
		sum += ms[i];
	if (ok)
		printf("{\"jobs\":%llu,\"failed\":%lu,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
		       "\"min_ms\":%.3f,\"max_ms\":%.3f,\"mean_ms\":%.3f}\n",
		       o->jobs, g->k.failed, percentile(ms, ok, 50), percentile(ms, ok, 99), ms[0],
		       ms[ok - 1], sum / (double)ok);
	else
		printf("{\"jobs\":%llu,\"failed\":%lu,\"p50_ms\":null,\"p99_ms\":null,"
		       "\"min_ms\":null,\"max_ms\":null,\"mean_ms\":null}\n",
		       o->jobs, g->k.failed);
	out_flush();
	free(ms);
	return g->k.failed ? EXIT_FAILURE : 0;
}

/* The bearer token, trailing whitespace trimmed; malloc'd, NULL after saying why. */
static char *token_read(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t n, i;

	if (!f) {
		fail("%s: %s", path, strerror(errno));
		return NULL;
	}
	buf = malloc(TOKEN_MAX + 1);
	if (!buf) {
		fail("out of memory");
		goto err;
	}
	n = fread(buf, 1, TOKEN_MAX + 1, f);
	if (ferror(f)) {
		fail("%s: read error", path);
		goto err;
	}
	if (n > TOKEN_MAX) {
		fail("%s: token longer than %d bytes", path, TOKEN_MAX);
		goto err;
	}
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
		     buf[n - 1] == '\t'))
		n--;
	buf[n] = '\0';
	for (i = 0; i < n; i++) {
		if (buf[i] < 0x21 || buf[i] > 0x7e) {
			fail("%s: the token has a character not allowed in a header", path);
			goto err;
		}
	}
	if (!n) {
		fail("%s: empty token", path);
		goto err;
	}
	if (fclose(f) == EOF) {
		f = NULL;
		fail("%s: %s", path, strerror(errno));
		goto err;
	}
	return buf;
err:
	free(buf);
	if (f)
		fclose(f);
	return NULL;
}

static int head_build(struct gen *g, const char *token)
{
	static const char fmt[] = "PUT %s%.*s HTTP/1.1\r\n"
				  "Host: " LOOPBACK ":%llu\r\n"
				  "Authorization: Bearer %s\r\n"
				  "Content-Type: application/octet-stream\r\n"
				  "Content-Length: %llu\r\n"
				  "Tus-Resumable: 1.0.0\r\n"
				  "\r\n";
	static const char blank[UUID_LEN + 1] = "00000000-0000-4000-8000-000000000000";
	const struct opts *o = g->o;
	int len;

	len = snprintf(NULL, 0, fmt, o->path, UUID_LEN, blank, o->port, token, o->size);
	if (len < 0)
		return -1;
	g->head = malloc((size_t)len + 1);
	if (!g->head)
		return -1;
	if (snprintf(g->head, (size_t)len + 1, fmt, o->path, UUID_LEN, blank, o->port, token,
		     o->size) != len)
		return -1;
	g->head_len = (size_t)len;
	g->uuid_off = 4 + strlen(o->path);
	return 0;
}

static int ctx_setup(struct gen *g)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx)
		goto err;
	g->ctx = ctx;
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1)
		goto err;
	if (SSL_CTX_load_verify_locations(ctx, g->o->ca, NULL) != 1) {
		fail("%s: cannot load CA certificates", g->o->ca);
		return -1;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* every SSL_new copies this: the certificate must name 127.0.0.1 as an IP address */
	if (X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(ctx), LOOPBACK) != 1)
		goto err;
	/* a full handshake each time, as thousands of distinct laptops would do */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	/* buffers only while a record is in flight; a retried write recomputes its slice */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_ENABLE_PARTIAL_WRITE);
	return 0;
err:
	if (ERR_peek_last_error()) {
		char buf[256];

		ERR_error_string_n(ERR_peek_last_error(), buf, sizeof(buf));
		fail("TLS setup: %s", buf);
	}
	return -1;
}

/* Raises the soft descriptor limit to the hard one; refuses an n that would not fit under it. */
static int nofile_raise(unsigned long long n)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		fail("getrlimit: %s", strerror(errno));
		return -1;
	}
	if (rl.rlim_cur != rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
			fail("setrlimit: %s", strerror(errno));
			return -1;
		}
	}
	if (rl.rlim_cur != RLIM_INFINITY && (rl.rlim_cur < FD_RESERVE ||
					     n > (unsigned long long)rl.rlim_cur - FD_RESERVE)) {
		fail("--n %llu does not fit the descriptor limit %llu less %d", n,
		     (unsigned long long)rl.rlim_cur, FD_RESERVE);
		return -1;
	}
	return 0;
}

static int usage_error(const char *what)
{
	fail("%s", what);
	fputs(usage_text, stderr);
	return EXIT_USAGE;
}

static int num_parse(const char *s, unsigned long long min, unsigned long long max,
		     unsigned long long *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static bool path_ok(const char *p)
{
	size_t i, len = strlen(p);

	if (!len || len > PATH_MAX_LEN || p[0] != '/')
		return false;
	for (i = 0; i < len; i++)
		if (p[i] < 0x21 || p[i] > 0x7e)
			return false;
	return true;
}

static const struct option slow_options[] = {
	{ "port", required_argument, NULL, 'p' },  { "ca", required_argument, NULL, 'c' },
	{ "token-file", required_argument, NULL, 't' }, { "n", required_argument, NULL, 'n' },
	{ "rate", required_argument, NULL, 'r' },  { "size", required_argument, NULL, 's' },
	{ "ramp", required_argument, NULL, 'R' },  { "hold", required_argument, NULL, 'H' },
	{ "path", required_argument, NULL, 'P' },  { "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static const struct option latency_options[] = {
	{ "port", required_argument, NULL, 'p' },  { "ca", required_argument, NULL, 'c' },
	{ "token-file", required_argument, NULL, 't' }, { "jobs", required_argument, NULL, 'j' },
	{ "size", required_argument, NULL, 's' },  { "path", required_argument, NULL, 'P' },
	{ "help", no_argument, NULL, 'h' },	   { NULL, 0, NULL, 0 },
};

/* 0 when o is complete, EXIT_USAGE after saying why, or -1 for --help. */
static int opts_parse(int argc, char **argv, struct opts *o)
{
	const struct option *table;
	int ch;

	if (argc < 2)
		return usage_error("no mode given");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return -1;
	if (!strcmp(argv[1], "slow")) {
		o->mode = MODE_SLOW;
		o->size = 1048576;
		table = slow_options;
	} else if (!strcmp(argv[1], "latency")) {
		o->mode = MODE_LATENCY;
		o->size = 102400;
		table = latency_options;
	} else {
		return usage_error("unknown mode");
	}
	o->rate = 1024;
	o->ramp = 500;
	o->hold = 30;
	o->jobs = 200;
	o->path = "/v1/jobs/";
	optind = 1;
	while ((ch = getopt_long(argc - 1, argv + 1, "", table, NULL)) != -1) {
		unsigned long long *num = NULL, min = 0, max = 0;

		switch (ch) {
		case 'p': num = &o->port, min = 1, max = 65535; break;
		case 'c': o->ca = optarg; break;
		case 't': o->token_file = optarg; break;
		case 'n': num = &o->n, min = 1, max = 1000000; break;
		case 'r': num = &o->rate, min = TICKS_PER_S, max = 1ULL << 30; break;
		case 's': num = &o->size, min = o->mode == MODE_SLOW, max = 1ULL << 40; break;
		case 'R': num = &o->ramp, min = 1, max = 1000000; break;
		case 'H': num = &o->hold, min = 0, max = 86400; break;
		case 'j': num = &o->jobs, min = 1, max = 10000000; break;
		case 'P': o->path = optarg; break;
		case 'h': return -1;
		default: return usage_error("bad option");
		}
		if (num && num_parse(optarg, min, max, num))
			return usage_error("bad number");
	}
	if (optind != argc - 1)
		return usage_error("unexpected argument");
	if (!o->port || !o->ca || !o->token_file)
		return usage_error("--port, --ca and --token-file are required");
	if (o->mode == MODE_SLOW && !o->n)
		return usage_error("--n is required");
	if (!path_ok(o->path))
		return usage_error("--path must start with / and hold printable ASCII only");
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = { 0 };
	struct gen *g = NULL;
	char *token = NULL;
	size_t i;
	int rc;

	rc = opts_parse(argc, argv, &o);
	if (rc == -1) {
		fputs(usage_text, stdout);
		return fflush(stdout) == EOF ? EXIT_FAILURE : 0;
	}
	if (rc)
		return rc;
	rc = EXIT_FAILURE;
	/* a peer closing mid-write must come back as an error from SSL_write, not kill us */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		fail("signal: %s", strerror(errno));
		goto out;
	}
	if (o.mode == MODE_SLOW && nofile_raise(o.n)) {
		rc = EXIT_USAGE;
		goto out;
	}
	token = token_read(o.token_file);
	if (!token)
		goto out;
	g = calloc(1, sizeof(*g));
	if (!g) {
		fail("out of memory");
		goto out;
	}
	g->o = &o;
	g->ep = -1;
	g->chunk = o.rate / TICKS_PER_S;
	for (i = 0; i < sizeof(g->pat); i++)
		g->pat[i] = (unsigned char)("0123456789abcdefghijklmnopqrstuvwxyz"
					    "ABCDEFGHIJKLMNOPQRSTUVWXYZ-\n")[i % PAT_PERIOD];
	if (head_build(g, token)) {
		fail("out of memory");
		goto out;
	}
	if (ctx_setup(g))
		goto out;
	g->n_conns = o.mode == MODE_SLOW ? o.n : 1;
	g->conns = calloc(g->n_conns, sizeof(*g->conns));
	if (!g->conns) {
		fail("out of memory");
		goto out;
	}
	for (i = 0; i < g->n_conns; i++)
		g->conns[i].fd = -1;
	g->ep = epoll_create1(EPOLL_CLOEXEC);
	if (g->ep == -1) {
		fail("epoll_create1: %s", strerror(errno));
		goto out;
	}
	g->t0 = mono_ns();
	rc = o.mode == MODE_SLOW ? slow_run(g) : latency_run(g);
out:
	if (g) {
		if (g->conns)
			conns_close_all(g);
		if (g->ep != -1)
			close(g->ep);
		free(g->conns);
		free(g->head);
		SSL_CTX_free(g->ctx);
		free(g);
	}
	free(token);
	return rc;
}
