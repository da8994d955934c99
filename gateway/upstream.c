/* upstream: a curl multi on a worker's loop: socket and timer callbacks, a table of transfers. */
#include "gateway/upstream.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include "common/clock.h"
#include "common/log.h"

/* Transfer table: 2^bits buckets, doubled when the transfers outnumber them. */
#define XFER_BITS_MIN 6
#define XFER_BITS_MAX 24

/*
 * One transfer in flight. Kept in a table keyed by the CURL pointer rather than in
 * CURLOPT_PRIVATE, which stays the caller's.
 */
struct xfer {
	CURL *easy;
	upstream_done_fn *done;
	void *arg;
	int cancel_pending;        /* upstream_cancel came from inside a curl callback */
	struct xfer *next;         /* bucket chain */
};

/* One socket curl asked the loop to watch; curl hands the pointer back (curl_multi_assign). */
struct usock {
	struct upstream *u;
	curl_socket_t fd;
	uint32_t events;           /* what the loop watches: 0 when fd is not in the loop */
	struct usock *prev, *next;
};

struct upstream {
	struct loop *loop;
	CURLM *multi;

	struct xfer **buckets;
	unsigned bits;
	size_t nxfers;
	size_t ncancel;            /* transfers with cancel_pending set */

	struct usock *socks;       /* every socket record, so none outlives the multi */

	struct loop_timer *timer;  /* curl's one timer (CURLMOPT_TIMERFUNCTION) */
	int64_t timer_at;

	/*
	 * Frames of ours that call out (into curl or a done callback) and touch u afterwards.
	 * upstream_free inside one only marks free_requested; the outermost frame frees.
	 */
	unsigned busy;
	int freeing;
	int free_requested;
};

static void destroy(struct upstream *u);
static void cancel_pending(struct upstream *u);

static void enter(struct upstream *u)
{
	u->busy++;
}

/* The outermost frame runs deferred cancels and a deferred free: u may be gone after this. */
static void leave(struct upstream *u)
{
	if (u->busy == 1)
		cancel_pending(u);
	if (--u->busy == 0 && u->free_requested)
		destroy(u);
}

/* Fibonacci hashing: the low bits of a heap pointer are all alike, the product's top bits not. */
static size_t xfer_slot(const CURL *easy, unsigned bits)
{
	return (size_t)(((uint64_t)(uintptr_t)easy * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - bits));
}

/* The link that points to easy's record, or to the NULL at the end of its chain. */
static struct xfer **xfer_find(struct upstream *u, const CURL *easy)
{
	struct xfer **p = &u->buckets[xfer_slot(easy, u->bits)];

	while (*p && (*p)->easy != easy)
		p = &(*p)->next;
	return p;
}

static void xfer_grow(struct upstream *u)
{
	unsigned bits = u->bits + 1;
	size_t n = (size_t)1 << u->bits;
	struct xfer **b;

	if (bits > XFER_BITS_MAX)
		return;
	b = calloc((size_t)1 << bits, sizeof(*b));
	if (!b)
		return; /* longer chains: slower, still correct */
	for (size_t i = 0; i < n; i++) {
		struct xfer *x = u->buckets[i];

		while (x) {
			struct xfer *next = x->next;
			size_t slot = xfer_slot(x->easy, bits);

			x->next = b[slot];
			b[slot] = x;
			x = next;
		}
	}
	free(u->buckets);
	u->buckets = b;
	u->bits = bits;
}

/* Takes easy's record out of the table. Returns it (the caller frees it), or NULL. */
static struct xfer *xfer_take(struct upstream *u, const CURL *easy)
{
	struct xfer **p = xfer_find(u, easy);
	struct xfer *x = *p;

	if (!x)
		return NULL;
	*p = x->next;
	u->nxfers--;
	if (x->cancel_pending)
		u->ncancel--;
	return x;
}

static struct xfer *xfer_any(struct upstream *u)
{
	for (size_t i = 0; i < (size_t)1 << u->bits; i++)
		if (u->buckets[i])
			return u->buckets[i];
	return NULL;
}

/* Hands a finished transfer back to its owner; x is already out of the table and the multi. */
static void xfer_done(struct upstream *u, struct xfer *x, CURLcode result)
{
	upstream_done_fn *done = x->done;
	void *arg = x->arg;
	CURL *easy = x->easy;

	free(x);
	enter(u);
	done(arg, easy, result);
	leave(u);
}

/* Ends x now. Returns -1 (nothing changed) when curl refuses because a curl callback runs. */
static int xfer_cancel(struct upstream *u, struct xfer *x)
{
	CURLMcode rc = curl_multi_remove_handle(u->multi, x->easy);

	if (rc == CURLM_RECURSIVE_API_CALL)
		return -1;
	if (rc != CURLM_OK)
		log_error("upstream.remove_failed", "curl_multi_remove_handle: %s",
			  curl_multi_strerror(rc));
	xfer_take(u, x->easy);
	xfer_done(u, x, CURLE_ABORTED_BY_CALLBACK);
	return 0;
}

static void timer_fire(void *arg);

/*
 * Points curl's timer at at_ms. On allocation failure the old timer stays: a run too early only
 * makes curl announce its timeout again (7.88 clears timer_lastcall on CURL_SOCKET_TIMEOUT).
 */
static void timer_set(struct upstream *u, int64_t at_ms)
{
	struct loop_timer *t = loop_timer_at(u->loop, at_ms, timer_fire, u);

	if (!t) {
		log_error("upstream.timer_failed", "cannot set a loop timer");
		return;
	}
	loop_timer_cancel(u->loop, u->timer);
	u->timer = t;
	u->timer_at = at_ms;
}

static void timer_stop(struct upstream *u)
{
	loop_timer_cancel(u->loop, u->timer);
	u->timer = NULL;
}

/* Makes curl's timer due now unless it already is: the next turn runs CURL_SOCKET_TIMEOUT. */
static void timer_kick(struct upstream *u)
{
	int64_t now = clock_mono_ms();

	if (u->timer && u->timer_at <= now)
		return;
	timer_set(u, now);
}

/* Runs every pending deferred cancel; at most the ones pending on entry (no endless retry). */
static void cancel_pending(struct upstream *u)
{
	size_t todo = u->ncancel;

	while (todo-- && u->ncancel && !u->freeing) {
		struct xfer *x = NULL;

		for (size_t i = 0; !x && i < (size_t)1 << u->bits; i++)
			for (x = u->buckets[i]; x && !x->cancel_pending; x = x->next)
				;
		if (!x)
			break;
		x->cancel_pending = 0;
		u->ncancel--;
		if (xfer_cancel(u, x)) {
			x->cancel_pending = 1;
			u->ncancel++;
			timer_kick(u);
			return;
		}
	}
}

/* Takes every finished transfer out of the multi and calls its done, outside curl. */
static void drain(struct upstream *u)
{
	CURLMsg *msg;
	int left;

	while (!u->freeing && (msg = curl_multi_info_read(u->multi, &left))) {
		CURL *easy = msg->easy_handle;
		CURLcode result = msg->data.result;
		struct xfer *x;

		if (msg->msg != CURLMSG_DONE)
			continue;
		/* msg dies with the removal: everything needed was copied above */
		x = xfer_take(u, easy);
		curl_multi_remove_handle(u->multi, easy);
		if (x)
			xfer_done(u, x, result);
	}
}

/* One curl_multi_socket_action from a loop callback, then the finished transfers. */
static void act(struct upstream *u, curl_socket_t fd, int flags)
{
	int running;
	CURLMcode rc;

	if (u->freeing)
		return;
	rc = curl_multi_socket_action(u->multi, fd, flags, &running);
	if (rc != CURLM_OK)
		log_error("upstream.action_failed", "curl_multi_socket_action: %s",
			  curl_multi_strerror(rc));
	drain(u);
}

static void timer_fire(void *arg)
{
	struct upstream *u = arg;

	u->timer = NULL; /* the handle dies when this returns; curl may set a new one meanwhile */
	enter(u);
	act(u, CURL_SOCKET_TIMEOUT, 0);
	leave(u);
}

void upstream_run_due(struct upstream *u)
{
	if (!u || u->freeing || !u->timer || u->timer_at > clock_mono_ms())
		return;
	timer_stop(u);
	enter(u);
	act(u, CURL_SOCKET_TIMEOUT, 0);
	leave(u);
}

static void sock_event(void *arg, uint32_t events)
{
	struct usock *sk = arg;
	struct upstream *u = sk->u;
	curl_socket_t fd = sk->fd;
	int flags = 0;

	if (events & EPOLLIN)
		flags |= CURL_CSELECT_IN;
	if (events & EPOLLOUT)
		flags |= CURL_CSELECT_OUT;
	/*
	 * As curl's own Curl_socket_check maps poll: an error or hang-up is "readable" for a socket
	 * read from (the read finds it) and an error for one written to. A lone CURL_CSELECT_ERR
	 * fails the transfer, so a level-triggered EPOLLHUP cannot spin.
	 */
	if (events & (EPOLLERR | EPOLLHUP)) {
		if (sk->events & EPOLLIN)
			flags |= CURL_CSELECT_IN;
		if (sk->events & EPOLLOUT)
			flags |= CURL_CSELECT_ERR;
	}
	/* sk may be freed inside (CURL_POLL_REMOVE): only u and fd from here on */
	enter(u);
	act(u, fd, flags);
	leave(u);
}

static void sock_unwatch(struct usock *sk)
{
	if (sk->events)
		loop_fd_del(sk->u->loop, sk->fd);
	sk->events = 0;
}

static void sock_drop(struct usock *sk)
{
	struct upstream *u = sk->u;

	sock_unwatch(sk);
	if (sk->prev)
		sk->prev->next = sk->next;
	else
		u->socks = sk->next;
	if (sk->next)
		sk->next->prev = sk->prev;
	free(sk);
}

/*
 * A record of ours still watching fd although curl gave no pointer for it: curl closed that
 * socket without CURL_POLL_REMOVE and the number came back. Its sockhash entry is gone (the
 * pointer would have come back with the new socket), so the record is ours alone to drop.
 */
static int sock_drop_stale(struct upstream *u, struct usock *keep, curl_socket_t fd)
{
	for (struct usock *sk = u->socks; sk; sk = sk->next) {
		if (sk != keep && sk->fd == fd && sk->events) {
			sock_drop(sk);
			return 0;
		}
	}
	return -1;
}

/* Makes the loop watch what curl asked for on sk (0: nothing). 0 or -1. */
static int sock_want(struct usock *sk, uint32_t want)
{
	struct loop *l = sk->u->loop;
	int rc;

	if (want == sk->events)
		return 0;
	if (!want) {
		sock_unwatch(sk);
		return 0;
	}
	if (sk->events) {
		rc = loop_fd_mod(l, sk->fd, want);
		if (rc == 0) {
			sk->events = want;
			return 0;
		}
		if (errno != ENOENT)
			return -1;
		/* fd was closed and reused behind our back: watch the new socket afresh */
		loop_fd_del(l, sk->fd);
		sk->events = 0;
	}
	rc = loop_fd_add(l, sk->fd, want, sock_event, sk);
	if (rc && errno == EEXIST && sock_drop_stale(sk->u, sk, sk->fd) == 0)
		rc = loop_fd_add(l, sk->fd, want, sock_event, sk);
	if (rc)
		return -1;
	sk->events = want;
	return 0;
}

/* Marks the transfer behind a failure inside a curl callback for cancelling once curl returns. */
static void cancel_later(struct upstream *u, CURL *easy)
{
	struct xfer *x = easy ? *xfer_find(u, easy) : NULL;

	if (x && !x->cancel_pending) {
		x->cancel_pending = 1;
		u->ncancel++;
	}
	timer_kick(u);
}

/*
 * CURLMOPT_SOCKETFUNCTION. Touches only the loop and our records (curl_multi_assign just stores
 * the pointer in curl's socket hash, and 7.88 allows it here). Never returns -1: that marks the
 * multi dead for good in 7.88, failing every transfer, so a failure here cancels only the
 * transfer at hand.
 */
static int curl_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct upstream *u = userp;
	struct usock *sk = socketp;
	uint32_t want = 0;

	if (what == CURL_POLL_REMOVE) {
		if (sk)
			sock_drop(sk);
		return 0;
	}
	if (what & CURL_POLL_IN)
		want |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		want |= EPOLLOUT;
	if (!sk) {
		sk = calloc(1, sizeof(*sk));
		if (!sk)
			goto fail;
		sk->u = u;
		sk->fd = fd;
		sk->next = u->socks;
		if (u->socks)
			u->socks->prev = sk;
		u->socks = sk;
		if (curl_multi_assign(u->multi, fd, sk) != CURLM_OK) {
			sock_drop(sk);
			goto fail;
		}
	}
	if (sock_want(sk, want))
		goto fail;
	return 0;
fail:
	log_error("upstream.watch_failed", "cannot watch socket %d: the transfer is cancelled",
		  (int)fd);
	cancel_later(u, easy);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: only moves the loop timer; its callback runs curl later. */
static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct upstream *u = userp;

	(void)multi;
	if (timeout_ms < 0)
		timer_stop(u);
	else
		timer_set(u, clock_mono_ms() + timeout_ms);
	return 0;
}

struct upstream *upstream_new(struct loop *l, const struct upstream_config *cfg)
{
	static const struct upstream_config none;
	struct upstream *u;
	CURLMcode rc = CURLM_OK;

	if (!l)
		return NULL;
	if (!cfg)
		cfg = &none;
	if (cfg->max_host_connections < 0 || cfg->max_total_connections < 0 ||
	    cfg->max_connects < 0)
		return NULL;
	u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->loop = l;
	u->bits = XFER_BITS_MIN;
	u->buckets = calloc((size_t)1 << u->bits, sizeof(*u->buckets));
	u->multi = curl_multi_init();
	if (!u->buckets || !u->multi)
		goto fail;
	rc = curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
	if (!rc)
		rc = curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
	if (!rc)
		rc = curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
	if (!rc)
		rc = curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
	if (!rc)
		rc = curl_multi_setopt(u->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
				       cfg->max_host_connections);
	if (!rc)
		rc = curl_multi_setopt(u->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
				       cfg->max_total_connections);
	if (!rc && cfg->max_connects)
		rc = curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, cfg->max_connects);
	if (rc)
		goto fail;
	return u;
fail:
	if (u->multi)
		curl_multi_cleanup(u->multi);
	free(u->buckets);
	free(u);
	return NULL;
}

int upstream_add(struct upstream *u, CURL *easy, upstream_done_fn *done, void *arg)
{
	struct xfer **p;
	struct xfer *x;
	CURLMcode rc;

	if (!u || !easy || !done || u->freeing)
		return -1;
	p = xfer_find(u, easy);
	if (*p)
		return -1;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -1;
	x->easy = easy;
	x->done = done;
	x->arg = arg;
	*p = x;
	u->nxfers++;
	/* calls curl_timer_cb (due now): the transfer starts in the next turn */
	rc = curl_multi_add_handle(u->multi, easy);
	if (rc != CURLM_OK) {
		free(xfer_take(u, easy));
		log_error("upstream.add_failed", "curl_multi_add_handle: %s",
			  curl_multi_strerror(rc));
		return -1;
	}
	if (u->nxfers > (size_t)1 << u->bits)
		xfer_grow(u);
	return 0;
}

void upstream_unpause(struct upstream *u, CURL *easy)
{
	CURLcode rc;

	if (!u || !easy || u->freeing || !*xfer_find(u, easy))
		return;
	enter(u);
	/*
	 * 7.88 curl_easy_pause does not call the read callback: it sets the transfer to run now
	 * (Curl_expire 0, then curl_timer_cb gets 0 unless that deadline was announced already),
	 * updates its sockets (curl_socket_cb) and, when receiving was paused, hands held-back
	 * data to the write callback. So 7.88 needs no kick; it is insurance for versions that
	 * skip the timer callback, and free when the timer is already due.
	 */
	rc = curl_easy_pause(easy, CURLPAUSE_CONT);
	if (rc != CURLE_OK)
		log_debug("upstream.unpause_failed", "curl_easy_pause: %s", curl_easy_strerror(rc));
	timer_kick(u);
	leave(u);
}

void upstream_cancel(struct upstream *u, CURL *easy)
{
	struct xfer *x;

	if (!u || !easy)
		return;
	x = *xfer_find(u, easy);
	if (!x)
		return;
	enter(u);
	if (xfer_cancel(u, x)) {
		/* inside a curl callback: the outermost frame of ours (or the timer) finishes it */
		log_warn("upstream.cancel_deferred", "upstream_cancel from inside a curl callback");
		cancel_later(u, easy);
	}
	leave(u);
}

/* Frees what is left once no frame of ours is on the stack. */
static void destroy(struct upstream *u)
{
	/* may call curl_socket_cb with CURL_POLL_REMOVE for sockets it still tracks */
	curl_multi_cleanup(u->multi);
	while (u->socks)
		sock_drop(u->socks);
	timer_stop(u);
	free(u->buckets); /* empty: upstream_free ended every transfer, and adds are refused */
	free(u);
}

void upstream_free(struct upstream *u)
{
	struct xfer *x;

	if (!u || u->freeing)
		return;
	u->freeing = 1;
	enter(u);
	while ((x = xfer_any(u))) {
		CURLMcode rc = curl_multi_remove_handle(u->multi, x->easy);

		if (rc != CURLM_OK)
			log_error("upstream.remove_failed", "curl_multi_remove_handle: %s",
				  curl_multi_strerror(rc));
		xfer_take(u, x->easy);
		xfer_done(u, x, CURLE_ABORTED_BY_CALLBACK);
	}
	u->free_requested = 1;
	leave(u);
}
