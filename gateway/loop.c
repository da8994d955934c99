/* loop: one worker's event loop: epoll fd watchers, a timer heap, eventfd wake-up, turn hooks. */
#include "gateway/loop.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/clock.h"

/* epoll events fetched per turn: more wait for the next turn (level-triggered, nothing is lost). */
#define LOOP_BATCH 256
/* Timer handles kept for reuse, so a busy loop does not malloc/free one per deadline. */
#define LOOP_TIMER_CACHE 256
/* epoll data of the wake-up eventfd: no watcher can have it (generations stop below 2^32 - 1). */
#define LOOP_WAKE_TAG UINT64_MAX

struct watcher {
	loop_fd_fn *fn;
	void *arg;
	uint32_t events;
	/*
	 * Changes on every add, travels in the epoll data next to the fd: an event fetched in the
	 * same batch for a watcher deleted (and its fd number reused) since is recognised as stale.
	 */
	uint32_t gen;
	int active;
};

enum timer_where { TIMER_HEAP, TIMER_STAGED, TIMER_RUNNING, TIMER_FREE };

struct loop_timer {
	int64_t at_ms;
	uint64_t seq;              /* insertion order: equal deadlines fire first in, first out */
	size_t idx;                /* position in the heap or in the staged list */
	enum timer_where where;
	loop_timer_fn *fn;
	void *arg;
	struct loop_timer *next;   /* free-list link */
};

struct turn_hook {
	loop_turn_fn *fn;
	void *arg;
};

struct loop {
	int epfd;
	int wakefd;
	atomic_int stop;

	struct watcher *watchers;  /* indexed by fd */
	size_t nwatchers;
	uint32_t gen;

	struct loop_timer **heap;  /* binary min-heap on (at_ms, seq) */
	size_t nheap, capheap;
	/*
	 * Timers created while the due timers run wait here until the run is over, so a timer
	 * set for "now" inside a timer callback fires next turn instead of looping forever.
	 */
	struct loop_timer **staged;
	size_t nstaged, capstaged;
	int in_timers;
	uint64_t seq;
	struct loop_timer *free_timers;
	size_t nfree_timers;

	struct turn_hook *hooks;
	size_t nhooks;
	int in_hooks;             /* the hook pass is running: loop_off_turn only clears */

	struct epoll_event events[LOOP_BATCH];
};

static int timer_before(const struct loop_timer *a, const struct loop_timer *b)
{
	return a->at_ms < b->at_ms || (a->at_ms == b->at_ms && a->seq < b->seq);
}

static void heap_set(struct loop *l, size_t i, struct loop_timer *t)
{
	l->heap[i] = t;
	t->idx = i;
}

static void heap_up(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!timer_before(t, l->heap[parent]))
			break;
		heap_set(l, i, l->heap[parent]);
		i = parent;
	}
	heap_set(l, i, t);
}

static void heap_down(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];

	for (;;) {
		size_t child = 2 * i + 1;

		if (child >= l->nheap)
			break;
		if (child + 1 < l->nheap && timer_before(l->heap[child + 1], l->heap[child]))
			child++;
		if (!timer_before(l->heap[child], t))
			break;
		heap_set(l, i, l->heap[child]);
		i = child;
	}
	heap_set(l, i, t);
}

static int heap_push(struct loop *l, struct loop_timer *t)
{
	if (l->nheap == l->capheap) {
		size_t cap = l->capheap ? l->capheap * 2 : 64;
		struct loop_timer **h = realloc(l->heap, cap * sizeof(*h));

		if (!h)
			return -1;
		l->heap = h;
		l->capheap = cap;
	}
	t->where = TIMER_HEAP;
	l->heap[l->nheap] = t;
	t->idx = l->nheap++;
	heap_up(l, t->idx);
	return 0;
}

static void heap_remove(struct loop *l, struct loop_timer *t)
{
	size_t i = t->idx;
	struct loop_timer *last = l->heap[--l->nheap];

	if (i == l->nheap)
		return;
	heap_set(l, i, last);
	if (i > 0 && timer_before(last, l->heap[(i - 1) / 2]))
		heap_up(l, i);
	else
		heap_down(l, i);
}

static struct loop_timer *timer_get(struct loop *l)
{
	struct loop_timer *t = l->free_timers;

	if (t) {
		l->free_timers = t->next;
		l->nfree_timers--;
		return t;
	}
	return malloc(sizeof(*t));
}

static void timer_put(struct loop *l, struct loop_timer *t)
{
	t->where = TIMER_FREE;
	if (l->nfree_timers >= LOOP_TIMER_CACHE) {
		free(t);
		return;
	}
	t->next = l->free_timers;
	l->free_timers = t;
	l->nfree_timers++;
}

struct loop *loop_new(void)
{
	struct loop *l = calloc(1, sizeof(*l));
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = LOOP_WAKE_TAG};

	if (!l)
		return NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->epfd == -1 || l->wakefd == -1)
		goto fail;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &ev) == -1)
		goto fail;
	atomic_init(&l->stop, 0);
	return l;
fail:
	if (l->epfd != -1)
		close(l->epfd);
	if (l->wakefd != -1)
		close(l->wakefd);
	free(l);
	return NULL;
}

void loop_free(struct loop *l)
{
	struct loop_timer *t;

	if (!l)
		return;
	for (size_t i = 0; i < l->nheap; i++)
		free(l->heap[i]);
	for (size_t i = 0; i < l->nstaged; i++)
		free(l->staged[i]);
	while ((t = l->free_timers)) {
		l->free_timers = t->next;
		free(t);
	}
	free(l->heap);
	free(l->staged);
	free(l->watchers);
	free(l->hooks);
	close(l->epfd);
	close(l->wakefd);
	free(l);
}

static int watchers_fit(struct loop *l, int fd)
{
	size_t n = l->nwatchers ? l->nwatchers : 64;
	struct watcher *w;

	if ((size_t)fd < l->nwatchers)
		return 0;
	while (n <= (size_t)fd)
		n *= 2;
	w = realloc(l->watchers, n * sizeof(*w));
	if (!w)
		return -1;
	memset(w + l->nwatchers, 0, (n - l->nwatchers) * sizeof(*w));
	l->watchers = w;
	l->nwatchers = n;
	return 0;
}

static uint64_t watcher_tag(int fd, uint32_t gen)
{
	return (uint64_t)gen << 32 | (uint32_t)fd;
}

int loop_fd_add(struct loop *l, int fd, uint32_t events, loop_fd_fn *fn, void *arg)
{
	struct epoll_event ev = {.events = events};
	struct watcher *w;

	if (fd < 0 || !fn) {
		errno = EINVAL;
		return -1;
	}
	if (watchers_fit(l, fd)) {
		errno = ENOMEM;
		return -1;
	}
	w = &l->watchers[fd];
	if (w->active) {
		errno = EEXIST;
		return -1;
	}
	if (++l->gen == UINT32_MAX) /* keeps every tag distinct from LOOP_WAKE_TAG */
		l->gen = 1;
	ev.data.u64 = watcher_tag(fd, l->gen);
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) == -1)
		return -1;
	w->fn = fn;
	w->arg = arg;
	w->events = events;
	w->gen = l->gen;
	w->active = 1;
	return 0;
}

int loop_fd_mod(struct loop *l, int fd, uint32_t events)
{
	struct epoll_event ev = {.events = events};
	struct watcher *w;

	if (fd < 0 || (size_t)fd >= l->nwatchers || !l->watchers[fd].active) {
		errno = ENOENT;
		return -1;
	}
	w = &l->watchers[fd];
	ev.data.u64 = watcher_tag(fd, w->gen);
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) == -1)
		return -1;
	w->events = events;
	return 0;
}

int loop_fd_del(struct loop *l, int fd)
{
	struct watcher *w;

	if (fd < 0 || (size_t)fd >= l->nwatchers || !l->watchers[fd].active) {
		errno = ENOENT;
		return -1;
	}
	w = &l->watchers[fd];
	w->active = 0;
	w->fn = NULL;
	w->arg = NULL;
	/* EBADF/ENOENT: the owner closed fd first, which already took it out of the set */
	if (epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL) == -1 && errno != EBADF && errno != ENOENT)
		return -1;
	return 0;
}

static int staged_push(struct loop *l, struct loop_timer *t)
{
	if (l->nstaged == l->capstaged) {
		size_t cap = l->capstaged ? l->capstaged * 2 : 16;
		struct loop_timer **s = realloc(l->staged, cap * sizeof(*s));

		if (!s)
			return -1;
		l->staged = s;
		l->capstaged = cap;
	}
	t->where = TIMER_STAGED;
	t->idx = l->nstaged;
	l->staged[l->nstaged++] = t;
	return 0;
}

static void staged_remove(struct loop *l, struct loop_timer *t)
{
	struct loop_timer *last = l->staged[--l->nstaged];

	l->staged[t->idx] = last;
	last->idx = t->idx;
}

struct loop_timer *loop_timer_at(struct loop *l, int64_t at_ms, loop_timer_fn *fn, void *arg)
{
	struct loop_timer *t;
	int rc;

	if (!fn)
		return NULL;
	t = timer_get(l);
	if (!t)
		return NULL;
	t->at_ms = at_ms;
	t->seq = l->seq++;
	t->fn = fn;
	t->arg = arg;
	t->next = NULL;
	rc = l->in_timers ? staged_push(l, t) : heap_push(l, t);
	if (rc) {
		timer_put(l, t);
		return NULL;
	}
	return t;
}

void loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
	if (!t)
		return;
	switch (t->where) {
	case TIMER_HEAP:
		heap_remove(l, t);
		break;
	case TIMER_STAGED:
		staged_remove(l, t);
		break;
	case TIMER_RUNNING: /* cancelling itself from its own callback: it is done anyway */
	case TIMER_FREE:
		return;
	}
	timer_put(l, t);
}

/* Drops hooks loop_off_turn cleared; only outside the hook pass. */
static void hooks_compact(struct loop *l)
{
	size_t n = 0;

	for (size_t i = 0; i < l->nhooks; i++)
		if (l->hooks[i].fn)
			l->hooks[n++] = l->hooks[i];
	l->nhooks = n;
}

int loop_off_turn(struct loop *l, loop_turn_fn *fn, void *arg)
{
	for (size_t i = 0; i < l->nhooks; i++) {
		if (l->hooks[i].fn == fn && l->hooks[i].arg == arg) {
			l->hooks[i].fn = NULL; /* skipped from now on, even in this turn's pass */
			if (!l->in_hooks)
				hooks_compact(l);
			return 0;
		}
	}
	return -1;
}

int loop_on_turn(struct loop *l, loop_turn_fn *fn, void *arg)
{
	struct turn_hook *h;

	if (!fn)
		return -1;
	h = realloc(l->hooks, (l->nhooks + 1) * sizeof(*h));
	if (!h)
		return -1;
	l->hooks = h;
	l->hooks[l->nhooks].fn = fn;
	l->hooks[l->nhooks].arg = arg;
	l->nhooks++;
	return 0;
}

/* How long epoll may sleep: until the first timer, and never past max_wait_ms (-1: no bound). */
static int wait_ms(const struct loop *l, int max_wait_ms)
{
	int64_t until;

	if (l->nheap == 0)
		return max_wait_ms < 0 ? -1 : max_wait_ms;
	until = l->heap[0]->at_ms - clock_mono_ms();
	if (until < 0)
		until = 0;
	if (max_wait_ms >= 0 && until > max_wait_ms)
		until = max_wait_ms;
	return until > INT_MAX ? INT_MAX : (int)until;
}

static void wake_drain(struct loop *l)
{
	uint64_t n;

	/* EAGAIN: another turn drained it already; the count itself carries no meaning */
	while (read(l->wakefd, &n, sizeof(n)) == (ssize_t)sizeof(n))
		;
}

static void dispatch_fds(struct loop *l, int n)
{
	for (int i = 0; i < n; i++) {
		uint64_t tag = l->events[i].data.u64;
		int fd = (int)(uint32_t)tag;
		uint32_t gen = (uint32_t)(tag >> 32);
		struct watcher *w;
		uint32_t ev;

		if (tag == LOOP_WAKE_TAG) {
			wake_drain(l);
			continue;
		}
		/* re-read the table every time: a callback may have grown it or deleted watchers */
		if ((size_t)fd >= l->nwatchers)
			continue;
		w = &l->watchers[fd];
		if (!w->active || w->gen != gen)
			continue;
		ev = l->events[i].events & (w->events | EPOLLERR | EPOLLHUP);
		if (ev)
			w->fn(w->arg, ev);
	}
}

static void run_timers(struct loop *l, int64_t now)
{
	l->in_timers = 1;
	while (l->nheap && l->heap[0]->at_ms <= now) {
		struct loop_timer *t = l->heap[0];

		heap_remove(l, t);
		t->where = TIMER_RUNNING;
		t->fn(t->arg);
		timer_put(l, t);
	}
	l->in_timers = 0;
	/* a failed push leaves the rest staged: they join the heap on a later turn */
	while (l->nstaged) {
		struct loop_timer *t = l->staged[l->nstaged - 1];

		if (heap_push(l, t)) {
			t->where = TIMER_STAGED;
			break;
		}
		l->nstaged--;
	}
}

int loop_run_once(struct loop *l, int max_wait_ms)
{
	int n = epoll_wait(l->epfd, l->events, LOOP_BATCH, wait_ms(l, max_wait_ms));
	size_t nhooks;

	if (n == -1) {
		if (errno != EINTR)
			return -1;
		n = 0;
	}
	dispatch_fds(l, n);
	run_timers(l, clock_mono_ms());
	/* hooks added by a hook start next turn */
	nhooks = l->nhooks;
	l->in_hooks = 1;
	for (size_t i = 0; i < nhooks; i++)
		if (l->hooks[i].fn)
			l->hooks[i].fn(l->hooks[i].arg);
	l->in_hooks = 0;
	hooks_compact(l);
	return 0;
}

int loop_run(struct loop *l)
{
	for (;;) {
		if (atomic_exchange(&l->stop, 0))
			return 0;
		if (loop_run_once(l, -1) == -1)
			return -1;
	}
}

void loop_wake(struct loop *l)
{
	uint64_t one = 1;
	ssize_t rc;

	/* EAGAIN only when the counter is near 2^64: the loop is awake then anyway */
	do
		rc = write(l->wakefd, &one, sizeof(one));
	while (rc == -1 && errno == EINTR);
}

void loop_stop(struct loop *l)
{
	atomic_store(&l->stop, 1);
	loop_wake(l);
}
