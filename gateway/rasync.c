/* rasync: Redis from a worker's loop: async hiredis 0.14 with a deadline on every command. */
#include "gateway/rasync.h"

#include <arpa/inet.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>

#include <hiredis/async.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/sentinel.h"

#define RASYNC_DEFAULT_TIMEOUT_MS 200
#define RASYNC_DEFAULT_RETRY_MS 500
#define RASYNC_MAX_MS (24LL * 3600 * 1000)

static const char ERR_TIMEOUT[] = "timeout";
static const char ERR_DISCONNECTED[] = "disconnected";
static const char ERR_CLOSED[] = "closed";

enum rasync_state {
	RASYNC_DOWN,        /* no context, or one being given up (suspect): commands refused */
	RASYNC_CONNECTING,  /* TCP connect in progress */
	RASYNC_AUTHING,     /* connected, handshake sent (AUTH, sentinel query, ROLE): commands
			       refused until it succeeds */
	RASYNC_READY,
};

struct rasync {
	struct loop *loop;
	char host[SENTINEL_HOST_MAX + 1]; /* the peer of the current connection */
	int port;
	char *password;
	int64_t timeout_ms;
	int64_t retry_ms;

	/* Sentinel */
	char *master_name;
	char *sentinel_password;
	struct sentinel_addr sentinels[SENTINEL_MAX];
	size_t nsentinels;         /* 0: master is Redis itself, always */
	size_t sentinel;           /* the one asked next: the last that answered stays first */
	size_t asked;              /* sentinels that gave no answer in this round */
	struct sentinel_addr master;  /* where the master is (the sentinels' last answer) */
	struct sentinel_addr answer;  /* the answer being read */
	int master_known;          /* master holds an answer not yet found wrong */
	int to_sentinel;           /* the current (or last) context is to a sentinel */
	int was_ready;             /* the current (or last) context reached RASYNC_READY */
	unsigned handshake_left;   /* handshake replies still to come before ready */

	redisAsyncContext *ac;     /* NULL once hiredis has started freeing it */
	unsigned conn_gen;         /* tells one context from the next at the same address */
	int fd;
	uint32_t want;             /* EPOLLIN/EPOLLOUT hiredis asked for */
	int watching;              /* fd is in the loop */
	enum rasync_state state;
	unsigned failures;         /* connect attempts failed in a row */
	int conn_graced;           /* the connect deadline found the socket ready: one more turn */
	int64_t heard_ms;          /* monotonic: the last reply (or the connect) on this context */
	int hooked;                /* on_turn is in the loop */
	struct rasync_cmd *unsent; /* commands issued this turn: their deadlines start when sent */

	struct loop_timer *conn_timer;   /* deadline of connect + AUTH */
	struct loop_timer *retry_timer;  /* next connect attempt */
	struct loop_timer *reap_timer;   /* frees a suspect context outside any hiredis callback */

	/*
	 * Frames of ours on the stack that touch r after calling out (into hiredis or a user
	 * callback). rasync_free inside such a call only sets free_requested; the outermost frame
	 * frees when it unwinds.
	 */
	unsigned busy;
	int free_requested;
	int closing;
};

/* Commands of ours: a user's, or one of the handshake after connecting. */
enum rasync_kind {
	RASYNC_USER,
	RASYNC_AUTH,   /* to the sentinel or to Redis, as the connection goes */
	RASYNC_ASK,    /* SENTINEL get-master-addr-by-name */
	RASYNC_ROLE,   /* is it the master? */
};

/* One command hiredis holds: freed when hiredis calls it back, with a reply or NULL on free. */
struct rasync_cmd {
	struct rasync *r;
	rasync_reply_fn *fn;
	void *arg;
	struct loop_timer *deadline;
	int done;                  /* the user callback already ran (deadline passed) */
	int graced;                /* the deadline found the socket ready and waited one turn */
	enum rasync_kind kind;     /* a handshake command has no user callback */
	int unsent;                /* on r->unsent: issued, not yet flushed by on_turn */
	struct rasync_cmd *unsent_prev, *unsent_next;
};

static void unsent_unlink(struct rasync *r, struct rasync_cmd *c)
{
	if (!c->unsent)
		return;
	if (c->unsent_prev)
		c->unsent_prev->unsent_next = c->unsent_next;
	else
		r->unsent = c->unsent_next;
	if (c->unsent_next)
		c->unsent_next->unsent_prev = c->unsent_prev;
	c->unsent = 0;
	c->unsent_prev = c->unsent_next = NULL;
}

static void start_connect(struct rasync *r);
static void rasync_destroy(struct rasync *r);

static void enter(struct rasync *r)
{
	r->busy++;
}

/* Returns 1 when r was freed (a callback called rasync_free): the caller must not touch it. */
static int leave(struct rasync *r)
{
	if (--r->busy || !r->free_requested)
		return 0;
	rasync_destroy(r);
	return 1;
}

/* The first failure in a row is a warning; the retries after it (every retry_ms) are debug. */
static enum log_level failure_level(struct rasync *r)
{
	return r->failures++ ? LOG_DEBUG : LOG_WARN;
}

static void cancel_timer(struct rasync *r, struct loop_timer **t)
{
	loop_timer_cancel(r->loop, *t);
	*t = NULL;
}

/* The ac->ev hooks: keep the loop watching what hiredis wants on its fd. */
static void on_fd(void *arg, uint32_t events);

static void ev_want(struct rasync *r, uint32_t want)
{
	int rc = 0;

	if (want == r->want && r->watching == (want != 0))
		return;
	if (!want)
		rc = loop_fd_del(r->loop, r->fd);
	else if (!r->watching)
		rc = loop_fd_add(r->loop, r->fd, want, on_fd, r);
	else
		rc = loop_fd_mod(r->loop, r->fd, want);
	if (rc) {
		/* the deadlines still end a connection that stops moving */
		log_error("rasync.watch_failed", "%s:%d: cannot watch fd %d", r->host, r->port,
			  r->fd);
		return;
	}
	r->want = want;
	r->watching = want != 0;
}

static void ev_add_read(void *privdata)
{
	struct rasync *r = privdata;

	ev_want(r, r->want | EPOLLIN);
}

static void ev_del_read(void *privdata)
{
	struct rasync *r = privdata;

	ev_want(r, r->want & ~(uint32_t)EPOLLIN);
}

static void ev_add_write(void *privdata)
{
	struct rasync *r = privdata;

	ev_want(r, r->want | EPOLLOUT);
}

static void ev_del_write(void *privdata)
{
	struct rasync *r = privdata;

	ev_want(r, r->want & ~(uint32_t)EPOLLOUT);
}

/* hiredis is freeing the context (and will close fd right after). */
static void ev_cleanup(void *privdata)
{
	struct rasync *r = privdata;

	ev_want(r, 0);
	r->ac = NULL;
	r->state = RASYNC_DOWN;
}

static void on_fd(void *arg, uint32_t events)
{
	struct rasync *r = arg;
	redisAsyncContext *ac = r->ac;
	unsigned gen = r->conn_gen;

	if (!ac)
		return;
	enter(r);
	if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && (r->want & EPOLLIN))
		redisAsyncHandleRead(ac);
	/* the read may have freed ac (EOF, error): hiredis then went through ev_cleanup */
	if (r->ac == ac && r->conn_gen == gen && !r->free_requested &&
	    (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && (r->want & EPOLLOUT))
		redisAsyncHandleWrite(ac);
	leave(r);
}

/*
 * The events hiredis waits for that the socket has now, without sleeping. A deadline that
 * passes while the loop was busy elsewhere finds its answer here: a busy turn is not a silent
 * Redis.
 */
static uint32_t ready_now(const struct rasync *r)
{
	struct pollfd p = {.fd = r->fd};
	uint32_t ev = 0;

	if (!r->ac || !r->want)
		return 0;
	p.events = (short)(((r->want & EPOLLIN) ? POLLIN : 0) | ((r->want & EPOLLOUT) ? POLLOUT : 0));
	if (poll(&p, 1, 0) != 1)
		return 0;
	ev |= (p.revents & POLLIN) ? EPOLLIN : 0;
	ev |= (p.revents & POLLOUT) ? EPOLLOUT : 0;
	ev |= (p.revents & POLLERR) ? EPOLLERR : 0;
	ev |= (p.revents & POLLHUP) ? EPOLLHUP : 0;
	return ev;
}

/*
 * How long to wait for the next connection once the current one ended. With sentinels this also
 * picks what comes next: an answer leads to the master at once; a sentinel that gave none hands
 * over to the next one, at once until each was asked in this round; a master connection that
 * ends sends us to the sentinels again, at once if it had worked (a failover moved it).
 */
static int64_t retry_delay(struct rasync *r)
{
	if (!r->nsentinels)
		return r->retry_ms;
	if (!r->to_sentinel) {
		r->master_known = 0;
		return r->was_ready ? 0 : r->retry_ms;
	}
	if (r->master_known)
		return 0;
	r->sentinel = (r->sentinel + 1) % r->nsentinels;
	if (++r->asked < r->nsentinels)
		return 0;
	r->asked = 0;
	return r->retry_ms;
}

static void on_retry(void *arg)
{
	struct rasync *r = arg;

	r->retry_timer = NULL;
	start_connect(r);
}

static void schedule_retry(struct rasync *r)
{
	if (r->closing || r->free_requested || r->retry_timer || r->ac)
		return;
	r->retry_timer = loop_timer_at(r->loop, clock_mono_ms() + retry_delay(r), on_retry, r);
	if (!r->retry_timer)
		log_error("rasync.retry_failed", "%s:%d: no memory to schedule a reconnect",
			  r->host, r->port);
}

/*
 * Gives the current context up: hiredis calls every pending command back with NULL (users
 * get "disconnected", or "closed" once rasync_free was asked) and then ev_cleanup. Never
 * from inside a hiredis callback: only from loop timers and rasync_free.
 */
static void teardown(struct rasync *r)
{
	redisAsyncContext *ac = r->ac;

	r->state = RASYNC_DOWN;
	cancel_timer(r, &r->conn_timer);
	cancel_timer(r, &r->reap_timer);
	if (!ac)
		return;
	r->ac = NULL;
	enter(r);
	redisAsyncFree(ac);
	r->busy--; /* the caller holds its own frame (or is rasync_destroy) */
}

static void on_reap(void *arg)
{
	struct rasync *r = arg;

	r->reap_timer = NULL;
	enter(r);
	teardown(r);
	schedule_retry(r);
	leave(r);
}

/* Marks the connection suspect; it is freed at the next turn, outside any hiredis callback. */
static void schedule_reap(struct rasync *r)
{
	r->state = RASYNC_DOWN;
	if (r->reap_timer || !r->ac)
		return;
	r->reap_timer = loop_timer_at(r->loop, clock_mono_ms(), on_reap, r);
	if (!r->reap_timer)
		log_error("rasync.reap_failed", "%s:%d: no memory to drop a suspect connection",
			  r->host, r->port);
}

static void on_conn_timeout(void *arg)
{
	struct rasync *r = arg;
	enum log_level level = failure_level(r);
	uint32_t ev;

	r->conn_timer = NULL;
	if (!r->conn_graced && (ev = ready_now(r))) {
		/* handle what arrived; the deadline comes back once, at the next turn */
		r->conn_graced = 1;
		r->conn_timer = loop_timer_at(r->loop, clock_mono_ms(), on_conn_timeout, r);
		if (r->conn_timer) {
			on_fd(r, ev);
			return;
		}
	}
	LOG(level, "rasync.connect_timeout", "%s:%d: not ready after %lld ms", r->host, r->port,
	    (long long)r->timeout_ms);
	enter(r);
	teardown(r);
	schedule_retry(r);
	leave(r);
}

static void became_ready(struct rasync *r)
{
	cancel_timer(r, &r->conn_timer);
	r->state = RASYNC_READY;
	r->heard_ms = clock_mono_ms();
	r->failures = 0;
	r->was_ready = 1;
	log_info("rasync.connected", "%s:%d: connected%s", r->host, r->port,
		 r->nsentinels ? " to the master" : "");
}

/* The sentinel's answer: the master's address, kept in r->answer. NULL, or why not. */
static const char *ask_check(struct rasync *r, const redisReply *reply)
{
	const redisReply *h, *p;

	if (reply->type == REDIS_REPLY_NIL)
		return "no master of that name here";
	if (reply->type == REDIS_REPLY_ERROR)
		return reply->str;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2)
		return "unexpected reply";
	h = reply->element[0];
	p = reply->element[1];
	if (h->type != REDIS_REPLY_STRING || p->type != REDIS_REPLY_STRING)
		return "unexpected reply";
	/* names would need a blocking lookup in the loop (sentinel resolve-hostnames) */
	if (sentinel_addr_parse(h->str, h->len, p->str, p->len, SENTINEL_IP_ONLY, &r->answer))
		return "the master's address is not an IP address and port";
	return NULL;
}

/* One handshake reply. NULL when it is the expected one, else why not (for the log). */
static const char *handshake_check(struct rasync *r, enum rasync_kind kind,
				   const redisReply *reply)
{
	const redisReply *e;

	switch (kind) {
	case RASYNC_AUTH:
		if (reply->type == REDIS_REPLY_STATUS && reply->len == 2 &&
		    memcmp(reply->str, "OK", 2) == 0)
			return NULL;
		return "AUTH refused";
	case RASYNC_ASK:
		return ask_check(r, reply);
	case RASYNC_ROLE:
		if (reply->type == REDIS_REPLY_ERROR)
			return reply->str;
		e = reply->type == REDIS_REPLY_ARRAY && reply->elements ? reply->element[0] : NULL;
		if (e && e->type == REDIS_REPLY_STRING && sentinel_role_is_master(e->str, e->len))
			return NULL;
		return "not the master (yet): the sentinels will be asked again";
	case RASYNC_USER:
		break;
	}
	return "unexpected reply";
}

static void on_handshake(struct rasync *r, enum rasync_kind kind, redisReply *reply)
{
	const char *why;
	enum log_level level;

	/* NULL: the context is going away, its own path reconnects; not AUTHING: already failed */
	if (!reply || r->state != RASYNC_AUTHING)
		return;
	why = handshake_check(r, kind, reply);
	if (why) {
		level = failure_level(r);
		if (r->to_sentinel)
			LOG(level, "rasync.sentinel_failed", "sentinel %s:%d: master %s: %s",
			    r->host, r->port, r->master_name, why);
		else
			LOG(level, kind == RASYNC_AUTH ? "rasync.auth_failed" : "rasync.not_master",
			    "%s:%d: %s", r->host, r->port, why);
		schedule_reap(r);
		return;
	}
	if (--r->handshake_left)
		return;
	if (!r->to_sentinel) {
		became_ready(r);
		return;
	}
	/* the sentinel has answered: drop its connection and go to the master (at once) */
	LOG(strcmp(r->answer.host, r->master.host) || r->answer.port != r->master.port ? LOG_INFO
											: LOG_DEBUG,
	    "rasync.sentinel", "sentinel %s:%d: master %s is at %s:%d", r->host, r->port,
	    r->master_name, r->answer.host, r->answer.port);
	r->master = r->answer;
	r->master_known = 1;
	r->asked = 0;
	schedule_reap(r);
}

static void on_reply(redisAsyncContext *ac, void *reply_v, void *privdata)
{
	struct rasync_cmd *c = privdata;
	struct rasync *r = c->r;
	redisReply *reply = reply_v;

	(void)ac;
	cancel_timer(r, &c->deadline);
	unsent_unlink(r, c);
	if (reply)
		r->heard_ms = clock_mono_ms();
	if (c->kind != RASYNC_USER) {
		on_handshake(r, c->kind, reply);
		free(c);
		return;
	}
	/* in 0.14 a NULL reply only comes while hiredis frees the context */
	if (!reply)
		r->state = RASYNC_DOWN;
	if (reply && reply->type == REDIS_REPLY_ERROR && r->nsentinels &&
	    r->state == RASYNC_READY && sentinel_error_is_readonly(reply->str, reply->len)) {
		/* a failover demoted this node: its connection is the wrong one now */
		log_warn("rasync.readonly", "%s:%d: a replica now; asking the sentinels", r->host,
			 r->port);
		schedule_reap(r);
	}
	if (!c->done) {
		c->done = 1;
		if (r->free_requested || r->closing)
			c->fn(c->arg, NULL, ERR_CLOSED);
		else if (!reply)
			c->fn(c->arg, NULL, ERR_DISCONNECTED);
		else
			c->fn(c->arg, reply, NULL);
	}
	free(c);
}

static void on_deadline(void *arg)
{
	struct rasync_cmd *c = arg;
	struct rasync *r = c->r;
	uint32_t ev;

	c->deadline = NULL;
	if (c->done)
		return;
	if (c->unsent) {
		/* a busy turn issued it and has not sent it yet: on_turn starts its deadline */
		c->deadline = loop_timer_at(r->loop, clock_mono_ms() + r->timeout_ms, on_deadline, c);
		if (c->deadline)
			return;
	}
	if (!c->graced && (ev = ready_now(r))) {
		/*
		 * Replies wait in the socket: read them first. The reply may free c, so c is not
		 * touched after on_fd; the deadline comes back once, at the next turn.
		 */
		c->graced = 1;
		c->deadline = loop_timer_at(r->loop, clock_mono_ms(), on_deadline, c);
		if (c->deadline) {
			on_fd(r, ev);
			return;
		}
	}
	c->done = 1; /* the record stays with hiredis until it calls back */
	log_warn("rasync.timeout", "%s:%d: no reply within %lld ms", r->host, r->port,
		 (long long)r->timeout_ms);
	enter(r);
	/* a connection that answered within the deadline is alive: only this command is late */
	if (clock_mono_ms() - r->heard_ms >= r->timeout_ms)
		schedule_reap(r);
	c->fn(c->arg, NULL, ERR_TIMEOUT);
	leave(r);
}

/* Sends one handshake command; its reply goes to on_handshake. 0 or -1. */
static int handshake_send(struct rasync *r, enum rasync_kind kind, int argc, const char **argv)
{
	struct rasync_cmd *c = calloc(1, sizeof(*c));

	if (!c)
		return -1;
	c->r = r;
	c->kind = kind;
	/* no deadline of its own: the connect deadline runs until the handshake is done */
	if (redisAsyncCommandArgv(r->ac, on_reply, c, argc, argv, NULL) != REDIS_OK) {
		free(c);
		return -1;
	}
	r->handshake_left++;
	return 0;
}

static void on_connect(const redisAsyncContext *cac, int status)
{
	struct rasync *r = cac->data;
	const char *password = r->to_sentinel ? r->sentinel_password : r->password;
	const char *auth[2] = {"AUTH", password};
	const char *ask[3] = {"SENTINEL", "get-master-addr-by-name", r->master_name};
	const char *role[1] = {"ROLE"};

	if (status != REDIS_OK) {
		enum log_level level = failure_level(r);

		/* hiredis frees the context right after this returns */
		LOG(level, "rasync.connect_failed", "%s%s:%d: %s",
		    r->to_sentinel ? "sentinel " : "", r->host, r->port, cac->c.errstr);
		ev_want(r, 0);
		r->ac = NULL;
		r->state = RASYNC_DOWN;
		cancel_timer(r, &r->conn_timer);
		schedule_retry(r);
		return;
	}
	/* pipelined: AUTH first, then the question (to a sentinel) or ROLE (to a master) */
	r->handshake_left = 0;
	if (password && handshake_send(r, RASYNC_AUTH, 2, auth))
		goto fail;
	if (r->to_sentinel && handshake_send(r, RASYNC_ASK, 3, ask))
		goto fail;
	if (!r->to_sentinel && r->nsentinels && handshake_send(r, RASYNC_ROLE, 1, role))
		goto fail;
	if (!r->handshake_left) {
		became_ready(r);
		return;
	}
	r->state = RASYNC_AUTHING;
	return;
fail:
	log_error("rasync.handshake_failed", "%s:%d: cannot send the handshake", r->host, r->port);
	schedule_reap(r);
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
	struct rasync *r = cac->data;

	r->ac = NULL;
	r->state = RASYNC_DOWN;
	cancel_timer(r, &r->conn_timer);
	cancel_timer(r, &r->reap_timer);
	if (r->closing || r->free_requested)
		return;
	if (status != REDIS_OK)
		log_warn("rasync.disconnected", "%s:%d: %s", r->host, r->port, cac->c.errstr);
	schedule_retry(r);
}

/* Where the next connection goes: the master, or first the sentinel whose turn it is. */
static void pick_peer(struct rasync *r)
{
	const struct sentinel_addr *a = &r->master;

	r->to_sentinel = r->nsentinels && !r->master_known;
	if (r->to_sentinel)
		a = &r->sentinels[r->sentinel];
	memcpy(r->host, a->host, sizeof(r->host));
	r->port = a->port;
	r->was_ready = 0;
}

static void start_connect(struct rasync *r)
{
	redisAsyncContext *ac;

	pick_peer(r);
	ac = redisAsyncConnect(r->host, r->port);

	if (!ac || ac->err) {
		enum log_level level = failure_level(r);

		LOG(level, "rasync.connect_failed", "%s:%d: %s", r->host, r->port,
		    ac ? ac->c.errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac); /* never connected: no callbacks, no hooks yet */
		schedule_retry(r);
		return;
	}
	r->ac = ac;
	r->conn_gen++;
	r->conn_graced = 0;
	r->fd = ac->c.fd;
	r->want = 0;
	r->watching = 0;
	r->state = RASYNC_CONNECTING;
	ac->data = r;
	ac->ev.data = r;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	r->conn_timer = loop_timer_at(r->loop, clock_mono_ms() + r->timeout_ms, on_conn_timeout, r);
	if (!r->conn_timer)
		log_error("rasync.connect_failed", "%s:%d: no memory for the connect deadline",
			  r->host, r->port);
	/* waits for the first write event through the hooks: set them first */
	redisAsyncSetConnectCallback(ac, on_connect);
}

/*
 * At the end of every turn: send what this turn's commands queued at once, instead of at the
 * next turn's write event (a busy turn would otherwise stand between a command and Redis).
 * Only on a connected context: before that, hiredis would take a pending connect for done.
 */
static void on_turn(void *arg)
{
	struct rasync *r = arg;
	int64_t due = clock_mono_ms() + r->timeout_ms;
	struct rasync_cmd *c;

	/* the deadline measures Redis, not the turn that issued the command: restart it now */
	while ((c = r->unsent)) {
		struct loop_timer *t = loop_timer_at(r->loop, due, on_deadline, c);

		if (t) {
			loop_timer_cancel(r->loop, c->deadline);
			c->deadline = t;
		}
		unsent_unlink(r, c);
	}
	if (r->ac && (r->state == RASYNC_READY || r->state == RASYNC_AUTHING) &&
	    (r->want & EPOLLOUT))
		on_fd(r, EPOLLOUT);
}

static int ms_setting(int64_t v, int64_t def, int64_t *out)
{
	if (v < 0 || v > RASYNC_MAX_MS)
		return -1;
	*out = v ? v : def;
	return 0;
}

/* Wipes and frees a password. Accepts NULL. */
static void secret_free(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

static int copy_string(const char *from, char **to)
{
	if (!from)
		return 0;
	*to = strdup(from);
	return *to ? 0 : -1;
}

/* Redis itself at host:port, or the sentinels and the master's name. 0, or -1 when bad. */
static int peers_setting(struct rasync *r, const struct rasync_config *cfg)
{
	unsigned char addr[sizeof(struct in6_addr)];

	if (sentinel_list_parse(cfg->sentinels, SENTINEL_IP_ONLY, r->sentinels, SENTINEL_MAX,
				&r->nsentinels))
		return -1;
	if (r->nsentinels)
		return !cfg->master_name || !cfg->master_name[0] ? -1 : 0;
	if (!cfg->host || cfg->port < 1 || cfg->port > 65535)
		return -1;
	/* only literal addresses: hiredis would resolve a name with a blocking getaddrinfo */
	if (strlen(cfg->host) >= INET6_ADDRSTRLEN || (inet_pton(AF_INET, cfg->host, addr) != 1 &&
						      inet_pton(AF_INET6, cfg->host, addr) != 1))
		return -1;
	strcpy(r->master.host, cfg->host);
	r->master.port = cfg->port;
	r->master_known = 1;
	return 0;
}

struct rasync *rasync_new(struct loop *l, const struct rasync_config *cfg)
{
	struct rasync *r;

	if (!l || !cfg)
		return NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	if (peers_setting(r, cfg) ||
	    ms_setting(cfg->timeout_ms, RASYNC_DEFAULT_TIMEOUT_MS, &r->timeout_ms) ||
	    ms_setting(cfg->retry_ms, RASYNC_DEFAULT_RETRY_MS, &r->retry_ms))
		goto fail;
	if (copy_string(cfg->password, &r->password) ||
	    (r->nsentinels && (copy_string(cfg->master_name, &r->master_name) ||
			       copy_string(cfg->sentinel_password, &r->sentinel_password))))
		goto fail;
	r->loop = l;
	r->fd = -1;
	if (loop_on_turn(l, on_turn, r))
		goto fail;
	r->hooked = 1;
	start_connect(r);
	return r;
fail:
	secret_free(r->password);
	secret_free(r->sentinel_password);
	free(r->master_name);
	free(r);
	return NULL;
}

/* SUBSCRIBE and MONITOR turn the connection into a stream hiredis answers many times. */
static int stream_command(const char *name, size_t len)
{
	if (len > 0 && (name[0] == 'p' || name[0] == 'P')) { /* hiredis strips it the same way */
		name++;
		len--;
	}
	return (len == 9 && strncasecmp(name, "subscribe", 9) == 0) ||
	       (len == 11 && strncasecmp(name, "unsubscribe", 11) == 0) ||
	       (len == 7 && strncasecmp(name, "monitor", 7) == 0);
}

int rasync_command(struct rasync *r, rasync_reply_fn *fn, void *arg, int argc,
		   const char **argv, const size_t *argvlen)
{
	struct rasync_cmd *c;

	if (!rasync_connected(r) || !fn || argc < 1 || !argv || !argv[0])
		return -1;
	if (stream_command(argv[0], argvlen ? argvlen[0] : strlen(argv[0])))
		return -1;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -1;
	c->r = r;
	c->fn = fn;
	c->arg = arg;
	c->deadline = loop_timer_at(r->loop, clock_mono_ms() + r->timeout_ms, on_deadline, c);
	if (!c->deadline)
		goto fail;
	if (redisAsyncCommandArgv(r->ac, on_reply, c, argc, argv, argvlen) != REDIS_OK)
		goto fail;
	c->unsent = 1;
	c->unsent_next = r->unsent;
	if (r->unsent)
		r->unsent->unsent_prev = c;
	r->unsent = c;
	return 0;
fail:
	loop_timer_cancel(r->loop, c->deadline);
	free(c);
	return -1;
}

int rasync_connected(const struct rasync *r)
{
	return r && r->state == RASYNC_READY && !r->free_requested && !r->closing;
}

static void rasync_destroy(struct rasync *r)
{
	r->closing = 1;
	r->busy = 1; /* a rasync_free from the callbacks below only sets the flag again */
	if (r->hooked)
		loop_off_turn(r->loop, on_turn, r);
	cancel_timer(r, &r->retry_timer);
	teardown(r);
	secret_free(r->password);
	secret_free(r->sentinel_password);
	free(r->master_name);
	free(r);
}

void rasync_free(struct rasync *r)
{
	if (!r)
		return;
	if (r->busy) {
		/* inside one of our callbacks: the outermost frame frees when it unwinds */
		r->free_requested = 1;
		r->state = RASYNC_DOWN;
		return;
	}
	rasync_destroy(r);
}
