/* tcpproxy: a TCP relay on 127.0.0.1 that a test controls, to cut connections and move targets. */
#include "tests/lib/tcpproxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/lib/proc.h"

#define TCPPROXY_MAX_CONNS 64
#define TCPPROXY_BUF 16384
/* the wake-up pipe, the listener, then both sockets of every connection */
#define TCPPROXY_MAX_FDS (2 + 2 * TCPPROXY_MAX_CONNS)

/* Bytes read from one side and not yet written to the other: data[off..len). */
struct relay_buf {
	char data[TCPPROXY_BUF];
	size_t off, len;
};

struct conn {
	int cfd, tfd;           /* client and target sockets; cfd == -1: the slot is free */
	int connecting;         /* the target connect() has not completed yet */
	int c_eof, t_eof;       /* that side sent its FIN */
	int c_shut, t_shut;     /* we passed the other side's FIN on (shutdown SHUT_WR) */
	struct relay_buf up;    /* client -> target */
	struct relay_buf down;  /* target -> client */
};

struct tcpproxy {
	pthread_t thread;
	int lfd, port;
	int wake[2];            /* written by the test's thread to interrupt poll() */
	pthread_mutex_t lock;   /* guards the fields below up to conns */
	int target_port, down, stop, cuts, cut_armed;
	uint64_t up_bytes, down_bytes, cut_at;
	unsigned accepted;
	struct conn conns[TCPPROXY_MAX_CONNS]; /* the relay thread's own, except under lock */
};

/* Closes fd so that the peer gets a RST instead of a FIN. */
static void fd_reset(int fd)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};

	if (fd == -1)
		return;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static void conn_clear(struct conn *c)
{
	c->cfd = c->tfd = -1;
	c->connecting = c->c_eof = c->t_eof = c->c_shut = c->t_shut = 0;
	c->up.off = c->up.len = c->down.off = c->down.len = 0;
}

static void conn_reset(struct conn *c)
{
	fd_reset(c->cfd);
	fd_reset(c->tfd);
	conn_clear(c);
}

static void conn_close(struct conn *c)
{
	if (c->cfd != -1)
		close(c->cfd);
	if (c->tfd != -1)
		close(c->tfd);
	conn_clear(c);
}

/* Resets every open connection; returns how many there were. */
static int proxy_reset_all(struct tcpproxy *p)
{
	int n = 0;

	for (int i = 0; i < TCPPROXY_MAX_CONNS; i++) {
		if (p->conns[i].cfd != -1) {
			conn_reset(&p->conns[i]);
			n++;
		}
	}
	return n;
}

/* With p->lock held: does the pending cut if its count is reached. Returns 1 if it did. */
static int proxy_cut_if_due(struct tcpproxy *p)
{
	if (!p->cut_armed || p->up_bytes < p->cut_at)
		return 0;
	p->cut_armed = 0;
	proxy_reset_all(p);
	p->cuts++;
	return 1;
}

static void proxy_wake(struct tcpproxy *p)
{
	char b = 1;

	/* a full pipe already holds a wake-up, so a failed write loses nothing */
	if (write(p->wake[1], &b, 1) == -1)
		return;
}

/*
 * Applies what the test asked for since the last turn. Returns -1 to stop, 1 when connections
 * were reset (poll results are stale), 0 otherwise.
 */
static int proxy_control(struct tcpproxy *p)
{
	int rc = 0;

	pthread_mutex_lock(&p->lock);
	if (p->stop) {
		rc = -1;
	} else {
		if (p->down && proxy_reset_all(p))
			rc = 1;
		if (proxy_cut_if_due(p))
			rc = 1;
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}

static size_t buf_pending(const struct relay_buf *b)
{
	return b->len - b->off;
}

/* Reads what fd has into b. Returns 0, or -1 when the connection failed. */
static int buf_fill(struct relay_buf *b, int fd, int *eof)
{
	ssize_t n;

	if (b->off > 0) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	if (b->len == sizeof(b->data))
		return 0;
	n = recv(fd, b->data + b->len, sizeof(b->data) - b->len, 0);
	if (n > 0)
		b->len += (size_t)n;
	else if (n == 0)
		*eof = 1;
	else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		return -1;
	return 0;
}

/*
 * Writes what c->up holds to the target, never past a pending cut's count. Returns 1 when a cut
 * was done (every connection is reset), -1 when this connection failed, 0 otherwise.
 */
static int flush_up(struct tcpproxy *p, struct conn *c)
{
	while (buf_pending(&c->up) > 0) {
		size_t want = buf_pending(&c->up);
		int cut = 0;
		ssize_t n;

		pthread_mutex_lock(&p->lock);
		cut = proxy_cut_if_due(p);
		if (!cut && p->cut_armed && want > p->cut_at - p->up_bytes)
			want = (size_t)(p->cut_at - p->up_bytes);
		pthread_mutex_unlock(&p->lock);
		if (cut)
			return 1;
		n = send(c->tfd, c->up.data + c->up.off, want, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		c->up.off += (size_t)n;
		pthread_mutex_lock(&p->lock);
		p->up_bytes += (uint64_t)n;
		cut = proxy_cut_if_due(p);
		pthread_mutex_unlock(&p->lock);
		if (cut)
			return 1;
	}
	return 0;
}

/* Writes what c->down holds to the client. Returns 0, or -1 when the connection failed. */
static int flush_down(struct tcpproxy *p, struct conn *c)
{
	while (buf_pending(&c->down) > 0) {
		ssize_t n = send(c->cfd, c->down.data + c->down.off, buf_pending(&c->down),
				 MSG_NOSIGNAL);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		c->down.off += (size_t)n;
		pthread_mutex_lock(&p->lock);
		p->down_bytes += (uint64_t)n;
		pthread_mutex_unlock(&p->lock);
	}
	return 0;
}

static short client_events(const struct conn *c)
{
	short ev = 0;

	if (!c->c_eof && buf_pending(&c->up) < TCPPROXY_BUF)
		ev |= POLLIN;
	if (buf_pending(&c->down) > 0)
		ev |= POLLOUT;
	return ev;
}

static short target_events(const struct conn *c)
{
	short ev = 0;

	if (c->connecting)
		return POLLOUT;
	if (!c->t_eof && buf_pending(&c->down) < TCPPROXY_BUF)
		ev |= POLLIN;
	if (buf_pending(&c->up) > 0)
		ev |= POLLOUT;
	return ev;
}

/*
 * One turn of connection c with the poll results of its two sockets. Returns 1 when a cut reset
 * every connection, 0 otherwise (c may have been closed or reset).
 */
static int conn_service(struct tcpproxy *p, struct conn *c, short crev, short trev)
{
	const short readable = POLLIN | POLLHUP | POLLERR;
	int rc;

	if (c->connecting && trev) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(c->tfd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 || err) {
			conn_reset(c); /* the target refused: the client sees a reset */
			return 0;
		}
		c->connecting = 0;
		trev = 0;
	}
	if ((crev & readable) && !c->c_eof && buf_fill(&c->up, c->cfd, &c->c_eof))
		goto reset;
	if ((trev & readable) && !c->connecting && !c->t_eof &&
	    buf_fill(&c->down, c->tfd, &c->t_eof))
		goto reset;
	if (!c->connecting) {
		rc = flush_up(p, c);
		if (rc == 1)
			return 1;
		if (rc)
			goto reset;
	}
	if (flush_down(p, c))
		goto reset;
	if (c->c_eof && !c->t_shut && !c->connecting && buf_pending(&c->up) == 0) {
		shutdown(c->tfd, SHUT_WR);
		c->t_shut = 1;
	}
	if (c->t_eof && !c->c_shut && buf_pending(&c->down) == 0) {
		shutdown(c->cfd, SHUT_WR);
		c->c_shut = 1;
	}
	if (c->t_shut && c->c_shut)
		conn_close(c);
	return 0;
reset:
	conn_reset(c);
	return 0;
}

static struct conn *proxy_free_conn(struct tcpproxy *p)
{
	for (int i = 0; i < TCPPROXY_MAX_CONNS; i++)
		if (p->conns[i].cfd == -1)
			return &p->conns[i];
	return NULL;
}

/* Accepts what the listen backlog holds, while a slot is free. */
static void proxy_accept(struct tcpproxy *p)
{
	struct conn *c;

	while ((c = proxy_free_conn(p))) {
		struct sockaddr_in sa = {.sin_family = AF_INET};
		int one = 1, down, cfd, tfd;

		cfd = accept4(p->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd == -1)
			return;
		pthread_mutex_lock(&p->lock);
		p->accepted++;
		down = p->down;
		sa.sin_port = htons((uint16_t)p->target_port);
		pthread_mutex_unlock(&p->lock);
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		/* down: the address still accepts, then resets at once */
		tfd = down ? -1 : socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (tfd == -1) {
			fd_reset(cfd);
			continue;
		}
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(tfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		conn_clear(c);
		c->cfd = cfd;
		c->tfd = tfd;
		if (connect(tfd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
			if (errno != EINPROGRESS) {
				conn_reset(c); /* the target refused at once */
				continue;
			}
			c->connecting = 1;
		}
	}
}

static void *proxy_run(void *arg)
{
	struct tcpproxy *p = arg;
	struct pollfd fds[TCPPROXY_MAX_FDS];
	int ci[TCPPROXY_MAX_CONNS], ti[TCPPROXY_MAX_CONNS];

	for (;;) {
		int nfds = 2, rc, free_slots = 0;

		if (proxy_control(p) == -1)
			break;
		fds[0] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
		for (int i = 0; i < TCPPROXY_MAX_CONNS; i++) {
			struct conn *c = &p->conns[i];
			short ev;

			ci[i] = ti[i] = -1;
			if (c->cfd == -1) {
				free_slots++;
				continue;
			}
			ev = client_events(c);
			if (ev) {
				ci[i] = nfds;
				fds[nfds++] = (struct pollfd){.fd = c->cfd, .events = ev};
			}
			ev = target_events(c);
			if (ev) {
				ti[i] = nfds;
				fds[nfds++] = (struct pollfd){.fd = c->tfd, .events = ev};
			}
		}
		/* with every slot taken, new clients wait in the listen backlog */
		fds[1] = (struct pollfd){.fd = free_slots ? p->lfd : -1, .events = POLLIN};
		if (poll(fds, (nfds_t)nfds, -1) == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (fds[0].revents) {
			char drain[64];

			while (read(p->wake[0], drain, sizeof(drain)) > 0)
				;
		}
		/* a cut or a switch to down asked for meanwhile comes before any byte moves */
		rc = proxy_control(p);
		if (rc == -1)
			break;
		if (rc == 1)
			continue;
		for (int i = 0; i < TCPPROXY_MAX_CONNS; i++) {
			short crev = ci[i] == -1 ? 0 : fds[ci[i]].revents;
			short trev = ti[i] == -1 ? 0 : fds[ti[i]].revents;

			if ((crev || trev) && conn_service(p, &p->conns[i], crev, trev))
				break;
		}
		if (fds[1].revents)
			proxy_accept(p);
	}
	for (int i = 0; i < TCPPROXY_MAX_CONNS; i++)
		conn_close(&p->conns[i]);
	return NULL;
}

struct tcpproxy *tcpproxy_start(int target_port)
{
	struct tcpproxy *p = calloc(1, sizeof(*p));
	sigset_t all, old;
	int rc;

	if (!p)
		return NULL;
	p->wake[0] = p->wake[1] = -1;
	p->target_port = target_port;
	for (int i = 0; i < TCPPROXY_MAX_CONNS; i++)
		conn_clear(&p->conns[i]);
	if (pthread_mutex_init(&p->lock, NULL)) {
		free(p);
		return NULL;
	}
	p->lfd = proc_listen_loopback(64, &p->port);
	if (p->lfd == -1 || pipe2(p->wake, O_NONBLOCK | O_CLOEXEC) == -1)
		goto fail;
	/* the relay thread takes no signal: the test's own thread handles them */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&p->thread, NULL, proxy_run, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		goto fail;
	return p;
fail:
	if (p->lfd != -1)
		close(p->lfd);
	if (p->wake[0] != -1) {
		close(p->wake[0]);
		close(p->wake[1]);
	}
	pthread_mutex_destroy(&p->lock);
	free(p);
	return NULL;
}

int tcpproxy_port(const struct tcpproxy *p)
{
	return p->port;
}

void tcpproxy_set_target(struct tcpproxy *p, int target_port)
{
	pthread_mutex_lock(&p->lock);
	p->target_port = target_port;
	pthread_mutex_unlock(&p->lock);
}

uint64_t tcpproxy_up_bytes(struct tcpproxy *p)
{
	uint64_t n;

	pthread_mutex_lock(&p->lock);
	n = p->up_bytes;
	pthread_mutex_unlock(&p->lock);
	return n;
}

uint64_t tcpproxy_down_bytes(struct tcpproxy *p)
{
	uint64_t n;

	pthread_mutex_lock(&p->lock);
	n = p->down_bytes;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void tcpproxy_cut_after(struct tcpproxy *p, uint64_t bytes)
{
	pthread_mutex_lock(&p->lock);
	p->cut_at = p->up_bytes + bytes;
	p->cut_armed = 1;
	pthread_mutex_unlock(&p->lock);
	proxy_wake(p);
}

int tcpproxy_cuts(struct tcpproxy *p)
{
	int n;

	pthread_mutex_lock(&p->lock);
	n = p->cuts;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void tcpproxy_set_down(struct tcpproxy *p, int down)
{
	pthread_mutex_lock(&p->lock);
	p->down = down != 0;
	pthread_mutex_unlock(&p->lock);
	proxy_wake(p);
}

unsigned tcpproxy_connections(struct tcpproxy *p)
{
	unsigned n;

	pthread_mutex_lock(&p->lock);
	n = p->accepted;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void tcpproxy_free(struct tcpproxy *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_mutex_unlock(&p->lock);
	proxy_wake(p);
	pthread_join(p->thread, NULL);
	close(p->lfd);
	close(p->wake[0]);
	close(p->wake[1]);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
