/* Tests the worker event loop (gateway/loop.c): fd dispatch, timers, wake-up, stop, turn hooks. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/clock.h"
#include "gateway/loop.h"

static struct loop *l;

static void setup(void)
{
	l = loop_new();
	cr_assert_not_null(l);
}

static void teardown(void)
{
	loop_free(l);
}

TestSuite(loop, .init = setup, .fini = teardown, .timeout = 30);

static void make_pipe(int p[2])
{
	cr_assert_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
}

static void close_pipe(int p[2])
{
	close(p[0]);
	close(p[1]);
}

static void put_byte(int fd)
{
	cr_assert_eq(write(fd, "x", 1), 1);
}

static void take_byte(int fd)
{
	char c;

	cr_assert_eq(read(fd, &c, 1), 1);
}

/* One fd watcher's record of what it was called with. */
struct seen {
	int calls;
	uint32_t events;
	int fd;          /* read one byte from fd on each call when >= 0 */
};

static void on_seen(void *arg, uint32_t events)
{
	struct seen *s = arg;

	s->calls++;
	s->events = events;
	if (s->fd >= 0)
		take_byte(s->fd);
}

Test(loop, readable_pipe_is_dispatched_once_per_byte_read)
{
	int p[2];
	struct seen s = {.fd = -1};

	make_pipe(p);
	s.fd = p[0];
	cr_assert_eq(loop_fd_add(l, p[0], EPOLLIN, on_seen, &s), 0);
	cr_assert_eq(loop_run_once(l, 0), 0);
	cr_assert_eq(s.calls, 0, "nothing written yet");
	put_byte(p[1]);
	cr_assert_eq(loop_run_once(l, 1000), 0);
	cr_assert_eq(s.calls, 1);
	cr_assert_eq(s.events, EPOLLIN);
	cr_assert_eq(loop_run_once(l, 0), 0);
	cr_assert_eq(s.calls, 1, "the byte was read: no more events");
	close_pipe(p);
}

Test(loop, level_triggered_until_drained)
{
	int p[2];
	struct seen s = {.fd = -1};

	make_pipe(p);
	cr_assert_eq(loop_fd_add(l, p[0], EPOLLIN, on_seen, &s), 0);
	put_byte(p[1]);
	for (int i = 1; i <= 3; i++) {
		cr_assert_eq(loop_run_once(l, 1000), 0);
		cr_assert_eq(s.calls, i, "unread data fires again every turn");
	}
	take_byte(p[0]);
	cr_assert_eq(loop_run_once(l, 0), 0);
	cr_assert_eq(s.calls, 3);
	close_pipe(p);
}

Test(loop, mod_changes_the_events_and_del_stops_them)
{
	int p[2];
	struct seen s = {.fd = -1};

	make_pipe(p);
	cr_assert_eq(loop_fd_add(l, p[1], EPOLLIN, on_seen, &s), 0);
	cr_assert_eq(loop_run_once(l, 0), 0);
	cr_assert_eq(s.calls, 0, "a write end is never readable");
	cr_assert_eq(loop_fd_mod(l, p[1], EPOLLOUT), 0);
	cr_assert_eq(loop_run_once(l, 1000), 0);
	cr_assert_eq(s.calls, 1);
	cr_assert_eq(s.events, EPOLLOUT);
	cr_assert_eq(loop_fd_del(l, p[1]), 0);
	cr_assert_eq(loop_run_once(l, 0), 0);
	cr_assert_eq(s.calls, 1);
	close_pipe(p);
}

Test(loop, fd_calls_refused)
{
	int p[2];
	struct seen s = {.fd = -1};

	make_pipe(p);
	cr_assert_eq(loop_fd_add(l, p[0], EPOLLIN, on_seen, &s), 0);
	errno = 0;
	cr_assert_eq(loop_fd_add(l, p[0], EPOLLIN, on_seen, &s), -1);
	cr_assert_eq(errno, EEXIST);
	cr_assert_eq(loop_fd_add(l, -1, EPOLLIN, on_seen, &s), -1);
	cr_assert_eq(loop_fd_add(l, p[1], EPOLLIN, NULL, &s), -1);
	cr_assert_eq(loop_fd_mod(l, p[1], EPOLLIN), -1, "not watched");
	cr_assert_eq(loop_fd_del(l, p[1]), -1, "not watched");
	cr_assert_eq(loop_fd_del(l, 100000), -1, "beyond the table");
	cr_assert_eq(loop_fd_del(l, p[0]), 0);
	cr_assert_eq(loop_fd_del(l, p[0]), -1, "already deleted");
	cr_assert_eq(loop_fd_add(l, p[0], EPOLLIN, on_seen, &s), 0, "can be added again");
	close_pipe(p);
}

Test(loop, high_fd_grows_the_table)
{
	int p[2], high;
	struct seen s = {.fd = -1};

	make_pipe(p);
	high = fcntl(p[0], F_DUPFD_CLOEXEC, 700);
	cr_assert_geq(high, 700);
	s.fd = high;
	cr_assert_eq(loop_fd_add(l, high, EPOLLIN, on_seen, &s), 0);
	put_byte(p[1]);
	cr_assert_eq(loop_run_once(l, 1000), 0);
	cr_assert_eq(s.calls, 1);
	cr_assert_eq(loop_fd_del(l, high), 0);
	close(high);
	close_pipe(p);
}

/* Two readable pipes in one batch: whichever runs first deletes the other. */
struct pair {
	struct loop *l;
	int fd[2];
	int calls[2];
	int deleted;
	int reopen;      /* also close the other fd and watch a fresh pipe under its number */
	int fresh[2];
	int fresh_calls;
};

static void on_fresh(void *arg, uint32_t events)
{
	struct pair *p = arg;

	(void)events;
	p->fresh_calls++;
}

static void on_pair(struct pair *p, int me)
{
	int other = 1 - me;

	p->calls[me]++;
	if (p->deleted++)
		return;
	cr_assert_eq(loop_fd_del(p->l, p->fd[other]), 0);
	if (!p->reopen)
		return;
	close(p->fd[other]);
	make_pipe(p->fresh);
	/* lowest free number: the one just closed, now empty and watched by someone else */
	cr_assert_eq(p->fresh[0], p->fd[other]);
	cr_assert_eq(loop_fd_add(p->l, p->fresh[0], EPOLLIN, on_fresh, p), 0);
	p->fd[other] = -1;
}

static void on_pair0(void *arg, uint32_t events)
{
	(void)events;
	on_pair(arg, 0);
}

static void on_pair1(void *arg, uint32_t events)
{
	(void)events;
	on_pair(arg, 1);
}

static void deleted_in_batch(int reopen)
{
	int a[2], b[2];
	struct pair p = {.l = l, .reopen = reopen};

	make_pipe(a);
	make_pipe(b);
	p.fd[0] = a[0];
	p.fd[1] = b[0];
	cr_assert_eq(loop_fd_add(l, a[0], EPOLLIN, on_pair0, &p), 0);
	cr_assert_eq(loop_fd_add(l, b[0], EPOLLIN, on_pair1, &p), 0);
	put_byte(a[1]);
	put_byte(b[1]);
	cr_assert_eq(loop_run_once(l, 1000), 0);
	cr_assert_eq(p.calls[0] + p.calls[1], 1, "the deleted watcher got its stale event");
	cr_assert_eq(p.fresh_calls, 0, "a stale event went to the fd number's new watcher");
	cr_assert_eq(loop_run_once(l, 0), 0);
	cr_assert_eq(p.calls[0] + p.calls[1], 2, "the survivor stays level-triggered");
	cr_assert_eq(p.fresh_calls, 0);
	close(a[1]);
	close(b[1]);
	if (p.fd[0] != -1)
		close(a[0]);
	if (p.fd[1] != -1)
		close(b[0]);
	if (reopen)
		close_pipe(p.fresh);
}

Test(loop, fd_deleted_by_another_fd_in_the_same_batch_is_not_dispatched)
{
	deleted_in_batch(0);
}

Test(loop, fd_number_reused_in_the_same_batch_gets_no_stale_event)
{
	deleted_in_batch(1);
}

static void on_delete_self(void *arg, uint32_t events)
{
	struct seen *s = arg;

	(void)events;
	s->calls++;
	cr_assert_eq(loop_fd_del(l, s->fd), 0);
}

Test(loop, fd_deleted_inside_its_own_callback)
{
	int p[2];
	struct seen s = {.fd = -1};

	make_pipe(p);
	s.fd = p[0];
	cr_assert_eq(loop_fd_add(l, p[0], EPOLLIN, on_delete_self, &s), 0);
	put_byte(p[1]);
	cr_assert_eq(loop_run_once(l, 1000), 0);
	cr_assert_eq(loop_run_once(l, 0), 0);
	cr_assert_eq(s.calls, 1);
	close_pipe(p);
}

/* A callback that starts watching another fd. */
struct adder {
	int fd;
	struct seen added;
	int done;
};

static void on_adder(void *arg, uint32_t events)
{
	struct adder *a = arg;

	(void)events;
	if (a->done++)
		return;
	cr_assert_eq(loop_fd_add(l, a->added.fd, EPOLLIN, on_seen, &a->added), 0);
}

Test(loop, callback_adds_an_fd)
{
	int p[2], q[2];
	struct adder a = {.added = {.fd = -1}};

	make_pipe(p);
	make_pipe(q);
	a.added.fd = q[0];
	put_byte(p[1]);
	put_byte(q[1]);
	cr_assert_eq(loop_fd_add(l, p[0], EPOLLIN, on_adder, &a), 0);
	cr_assert_eq(loop_run_once(l, 1000), 0);
	cr_assert_eq(loop_run_once(l, 1000), 0);
	cr_assert_eq(a.added.calls, 1);
	close_pipe(p);
	close_pipe(q);
}

/* Timers append their id to a shared log when they fire. */
struct fired {
	int ids[16];
	int n;
};

struct tmark {
	struct fired *log;
	int id;
	struct loop_timer *cancel;   /* cancelled by this timer's callback when not NULL */
};

static void on_mark(void *arg)
{
	struct tmark *m = arg;

	cr_assert_lt(m->log->n, 16);
	m->log->ids[m->log->n++] = m->id;
	loop_timer_cancel(l, m->cancel);
}

static void run_until_fired(struct fired *f, int n, int64_t limit_ms)
{
	int64_t end = clock_mono_ms() + limit_ms;

	while (f->n < n && clock_mono_ms() < end)
		cr_assert_eq(loop_run_once(l, 50), 0);
}

static const struct {
	const char *name;
	int offsets[5];     /* ms from now; timer i gets id i */
	int order[5];       /* ids in the order they must fire */
} order_cases[] = {
	{"ascending", {10, 20, 30, 40, 50}, {0, 1, 2, 3, 4}},
	{"descending", {50, 40, 30, 20, 10}, {4, 3, 2, 1, 0}},
	{"shuffled", {30, 10, 50, 20, 40}, {1, 3, 0, 4, 2}},
	{"equal deadlines fire in setting order", {20, 20, 20, 20, 20}, {0, 1, 2, 3, 4}},
	{"ties among others", {30, 10, 30, 10, 20}, {1, 3, 4, 0, 2}},
	{"already past first", {-5, 10, -20, 0, 5}, {2, 0, 3, 4, 1}},
};

Test(loop, timers_fire_in_deadline_order)
{
	for (size_t c = 0; c < sizeof(order_cases) / sizeof(order_cases[0]); c++) {
		struct fired f = {0};
		struct tmark m[5];
		int64_t now = clock_mono_ms();

		for (int i = 0; i < 5; i++) {
			m[i] = (struct tmark){.log = &f, .id = i};
			int64_t at = now + order_cases[c].offsets[i];

			cr_assert_not_null(loop_timer_at(l, at, on_mark, &m[i]));
		}
		run_until_fired(&f, 5, 2000);
		cr_assert_eq(f.n, 5, "%s", order_cases[c].name);
		for (int i = 0; i < 5; i++)
			cr_assert_eq(f.ids[i], order_cases[c].order[i], "%s: position %d",
				     order_cases[c].name, i);
	}
}

Test(loop, timer_does_not_fire_early)
{
	struct fired f = {0};
	struct tmark m = {.log = &f};
	int64_t t0 = clock_mono_ms();

	cr_assert_not_null(loop_timer_at(l, t0 + 60, on_mark, &m));
	run_until_fired(&f, 1, 2000);
	cr_assert_eq(f.n, 1);
	cr_assert_geq(clock_mono_ms() - t0, 60);
}

Test(loop, cancelled_before_due_never_fires)
{
	struct fired f = {0};
	struct tmark a = {.log = &f, .id = 1}, b = {.log = &f, .id = 2};
	int64_t now = clock_mono_ms();
	struct loop_timer *ta = loop_timer_at(l, now + 10, on_mark, &a);

	cr_assert_not_null(ta);
	cr_assert_not_null(loop_timer_at(l, now + 30, on_mark, &b));
	loop_timer_cancel(l, ta);
	loop_timer_cancel(l, NULL);
	run_until_fired(&f, 1, 2000);
	cr_assert_eq(loop_run_once(l, 50), 0);
	cr_assert_eq(f.n, 1);
	cr_assert_eq(f.ids[0], 2);
}

Test(loop, cancelled_by_a_timer_due_in_the_same_turn)
{
	struct fired f = {0};
	struct tmark a = {.log = &f, .id = 1}, b = {.log = &f, .id = 2}, c = {.log = &f, .id = 3};
	int64_t past = clock_mono_ms() - 10;

	/* all three are due in the first turn; a runs first (earliest) and cancels b */
	cr_assert_not_null(loop_timer_at(l, past - 1, on_mark, &a));
	a.cancel = loop_timer_at(l, past, on_mark, &b);
	cr_assert_not_null(a.cancel);
	cr_assert_not_null(loop_timer_at(l, past, on_mark, &c));
	cr_assert_eq(loop_run_once(l, 0), 0);
	cr_assert_eq(loop_run_once(l, 0), 0);
	cr_assert_eq(f.n, 2);
	cr_assert_eq(f.ids[0], 1);
	cr_assert_eq(f.ids[1], 3);
}

/* Re-arms itself for "now" every time: must take one turn per firing, not spin in one turn. */
struct rearm {
	int calls;
	struct loop_timer *self;
};

static void on_rearm(void *arg)
{
	struct rearm *r = arg;

	r->calls++;
	loop_timer_cancel(l, r->self); /* cancelling the running timer is a no-op */
	r->self = loop_timer_at(l, clock_mono_ms(), on_rearm, r);
	cr_assert_not_null(r->self);
}

Test(loop, timer_set_for_now_inside_a_timer_runs_next_turn)
{
	struct rearm r = {0};
	int64_t t0;

	r.self = loop_timer_at(l, clock_mono_ms(), on_rearm, &r);
	for (int i = 1; i <= 5; i++) {
		cr_assert_eq(loop_run_once(l, 1000), 0);
		cr_assert_eq(r.calls, i, "one firing per turn");
	}
	t0 = clock_mono_ms();
	cr_assert_eq(loop_run_once(l, 1000), 0);
	cr_assert_lt(clock_mono_ms() - t0, 800, "a due timer means no sleeping (max_wait 1000)");
	loop_timer_cancel(l, r.self);
	cr_assert_eq(loop_run_once(l, 0), 0);
	cr_assert_eq(r.calls, 6);
}

struct staged_cancel {
	int calls;
	int victim_calls;
};

static void on_victim(void *arg)
{
	struct staged_cancel *s = arg;

	s->victim_calls++;
}

static void on_stage_and_cancel(void *arg)
{
	struct staged_cancel *s = arg;
	struct loop_timer *a, *b, *c;

	s->calls++;
	a = loop_timer_at(l, clock_mono_ms(), on_victim, s);
	b = loop_timer_at(l, clock_mono_ms(), on_victim, s);
	c = loop_timer_at(l, clock_mono_ms(), on_victim, s);
	cr_assert(a && b && c);
	loop_timer_cancel(l, a);
	loop_timer_cancel(l, c);
}

Test(loop, timers_set_and_cancelled_inside_a_timer)
{
	struct staged_cancel s = {0};

	cr_assert_not_null(loop_timer_at(l, clock_mono_ms() - 1, on_stage_and_cancel, &s));
	cr_assert_eq(loop_run_once(l, 0), 0);
	cr_assert_eq(s.calls, 1);
	cr_assert_eq(s.victim_calls, 0, "set inside a timer: not this turn");
	cr_assert_eq(loop_run_once(l, 0), 0);
	cr_assert_eq(s.victim_calls, 1, "only the one not cancelled fires");
	cr_assert_eq(loop_run_once(l, 0), 0);
	cr_assert_eq(s.victim_calls, 1);
}

#define MANY 10000

struct many {
	int64_t at[MANY];
	int cancelled[MANY];
	int order[MANY];
	int n;
	int ids[MANY];
};

static struct many many;

static void on_many(void *arg)
{
	int *id = arg;

	cr_assert_lt(many.n, MANY);
	many.order[many.n++] = *id;
}

Test(loop, ten_thousand_random_timers_fire_sorted)
{
	struct loop_timer **t = calloc(MANY, sizeof(*t));
	int64_t base = clock_mono_ms() - 20000;
	int expected = 0;

	cr_assert_not_null(t);
	srand(12345);
	for (int i = 0; i < MANY; i++) {
		many.ids[i] = i;
		many.at[i] = base + rand() % 5000; /* all due; many equal deadlines */
		t[i] = loop_timer_at(l, many.at[i], on_many, &many.ids[i]);
		cr_assert_not_null(t[i]);
	}
	/* cancel a random third, from anywhere in the heap */
	for (int i = 0; i < MANY; i++) {
		if (rand() % 3 == 0) {
			loop_timer_cancel(l, t[i]);
			many.cancelled[i] = 1;
		} else {
			expected++;
		}
	}
	cr_assert_eq(loop_run_once(l, 0), 0);
	cr_assert_eq(many.n, expected);
	for (int i = 0; i < many.n; i++) {
		int id = many.order[i], prev;

		cr_assert_not(many.cancelled[id], "cancelled timer %d fired", id);
		if (i == 0)
			continue;
		prev = many.order[i - 1];
		cr_assert(many.at[prev] < many.at[id] ||
			  (many.at[prev] == many.at[id] && prev < id),
			  "position %d: %d (at %lld) before %d (at %lld)", i, prev,
			  (long long)many.at[prev], id, (long long)many.at[id]);
	}
	free(t);
}

/* Turn hooks run every turn, after that turn's fd events and timers. */
struct turns {
	int hook_calls;
	int timer_fired;
	int fd_calls;
	int saw_timer;   /* the hook ran after the timer of the same turn */
	int saw_fd;
	int rfd;
};

static void on_turn(void *arg)
{
	struct turns *t = arg;

	t->hook_calls++;
	if (t->hook_calls == 1) {
		t->saw_timer = t->timer_fired;
		t->saw_fd = t->fd_calls;
	}
}

static void on_turn_timer(void *arg)
{
	struct turns *t = arg;

	t->timer_fired++;
}

static void on_turn_fd(void *arg, uint32_t events)
{
	struct turns *t = arg;

	(void)events;
	t->fd_calls++;
	take_byte(t->rfd);
}

Test(loop, turn_hook_runs_every_turn_after_events_and_timers)
{
	struct turns t = {0};
	int p[2];

	make_pipe(p);
	t.rfd = p[0];
	put_byte(p[1]);
	cr_assert_eq(loop_fd_add(l, p[0], EPOLLIN, on_turn_fd, &t), 0);
	cr_assert_not_null(loop_timer_at(l, clock_mono_ms() - 1, on_turn_timer, &t));
	cr_assert_eq(loop_on_turn(l, on_turn, &t), 0);
	cr_assert_eq(loop_run_once(l, 1000), 0);
	cr_assert_eq(t.hook_calls, 1);
	cr_assert_eq(t.saw_timer, 1);
	cr_assert_eq(t.saw_fd, 1);
	for (int i = 2; i <= 4; i++) {
		cr_assert_eq(loop_run_once(l, 0), 0);
		cr_assert_eq(t.hook_calls, i, "idle turns run the hook too");
	}
	cr_assert_eq(loop_on_turn(l, NULL, NULL), -1);
	close_pipe(p);
}

static const struct {
	int max_wait;
	int timer_in;     /* -1: no timer */
	int lo, hi;       /* the turn lasts [lo, hi) ms */
} wait_cases[] = {
	/* upper bounds leave room for a loaded machine, yet sit well below the other deadline */
	{0, -1, 0, 400},
	{60, -1, 60, 1000},
	{60, 3000, 60, 1500},   /* max_wait before the timer */
	{3000, 40, 40, 1500},   /* the timer before max_wait */
	{-1, 40, 40, 1500},     /* no bound but the timer */
	{3000, 0, 0, 1500},     /* due at once */
};

Test(loop, wait_is_bounded_by_max_wait_and_the_next_timer)
{
	for (size_t c = 0; c < sizeof(wait_cases) / sizeof(wait_cases[0]); c++) {
		struct fired f = {0};
		struct tmark m = {.log = &f};
		struct loop_timer *tm = NULL;
		int64_t t0 = clock_mono_ms(), took;

		if (wait_cases[c].timer_in >= 0)
			tm = loop_timer_at(l, t0 + wait_cases[c].timer_in, on_mark, &m);
		cr_assert_eq(loop_run_once(l, wait_cases[c].max_wait), 0);
		took = clock_mono_ms() - t0;
		cr_assert_geq(took, wait_cases[c].lo, "case %zu: %lld ms", c, (long long)took);
		cr_assert_lt(took, wait_cases[c].hi, "case %zu: %lld ms", c, (long long)took);
		if (tm && f.n == 0)
			loop_timer_cancel(l, tm);
	}
}

struct thread_arg {
	struct loop *l;
	int delay_ms;
	int stop;
};

static void *poke(void *arg)
{
	struct thread_arg *a = arg;

	clock_sleep_ms(a->delay_ms);
	if (a->stop)
		loop_stop(a->l);
	else
		loop_wake(a->l);
	return NULL;
}

Test(loop, wake_from_another_thread_ends_an_unbounded_wait)
{
	struct thread_arg a = {.l = l, .delay_ms = 50};
	pthread_t th;
	int64_t t0 = clock_mono_ms();

	cr_assert_eq(pthread_create(&th, NULL, poke, &a), 0);
	cr_assert_eq(loop_run_once(l, -1), 0);
	/* the poke comes after 50 ms; generous bound for loaded CI machines */
	cr_assert_lt(clock_mono_ms() - t0, 50 + 1000);
	pthread_join(th, NULL);
	/* the wake-up was consumed: the next turn waits again */
	t0 = clock_mono_ms();
	cr_assert_eq(loop_run_once(l, 30), 0);
	cr_assert_geq(clock_mono_ms() - t0, 30);
}

Test(loop, stop_from_another_thread_ends_run)
{
	struct thread_arg a = {.l = l, .delay_ms = 50, .stop = 1};
	pthread_t th;
	int64_t t0 = clock_mono_ms();

	cr_assert_eq(pthread_create(&th, NULL, poke, &a), 0);
	cr_assert_eq(loop_run(l), 0);
	/* the poke comes after 50 ms; generous bound for loaded CI machines */
	cr_assert_lt(clock_mono_ms() - t0, 50 + 1000);
	pthread_join(th, NULL);
}

static void on_stop_timer(void *arg)
{
	(void)arg;
	loop_stop(l);
}

Test(loop, stop_from_a_callback_ends_run_after_the_turn)
{
	struct turns t = {0};

	cr_assert_eq(loop_on_turn(l, on_turn, &t), 0);
	cr_assert_not_null(loop_timer_at(l, clock_mono_ms() + 20, on_stop_timer, NULL));
	cr_assert_eq(loop_run(l), 0);
	cr_assert_geq(t.hook_calls, 1, "the turn that stopped still ran its hooks");
}

Test(loop, free_with_watchers_and_timers_pending)
{
	int p[2];
	struct seen s = {.fd = -1};
	struct fired f = {0};
	struct tmark m = {.log = &f};

	make_pipe(p);
	cr_assert_eq(loop_fd_add(l, p[0], EPOLLIN, on_seen, &s), 0);
	for (int i = 0; i < 100; i++)
		cr_assert_not_null(loop_timer_at(l, clock_mono_ms() + 10000 + i, on_mark, &m));
	loop_free(l);
	l = NULL;
	cr_assert_eq(fcntl(p[0], F_GETFD), FD_CLOEXEC, "the loop does not close watched fds");
	close_pipe(p);
	loop_free(NULL);
}

struct off_count {
	struct loop *l;
	int a, b;
};

static void count_a(void *arg)
{
	struct off_count *c = arg;

	c->a++;
	/* a hook may remove itself while the hooks run */
	loop_off_turn(c->l, count_a, c);
}

static void count_b(void *arg)
{
	((struct off_count *)arg)->b++;
}

Test(loop, turn_hooks_can_be_removed_even_from_a_hook)
{
	struct off_count c = {.l = l};

	cr_assert_eq(loop_on_turn(l, count_b, &c), 0);
	cr_assert_eq(loop_run_once(l, 0), 0);
	cr_assert_eq(c.b, 1);
	cr_assert_eq(loop_off_turn(l, count_b, &c), 0);
	cr_assert_eq(loop_off_turn(l, count_b, &c), -1, "already gone");
	cr_assert_eq(loop_run_once(l, 0), 0);
	cr_assert_eq(c.b, 1, "a removed hook does not run");

	/* count_a removes itself during the pass; count_b (after it) still runs */
	cr_assert_eq(loop_on_turn(l, count_a, &c), 0);
	cr_assert_eq(loop_on_turn(l, count_b, &c), 0);
	cr_assert_eq(loop_run_once(l, 0), 0);
	cr_assert_eq(c.a, 1);
	cr_assert_eq(c.b, 2);
	cr_assert_eq(loop_run_once(l, 0), 0);
	cr_assert_eq(c.a, 1, "removed itself");
	cr_assert_eq(c.b, 3);
	cr_assert_eq(loop_off_turn(l, count_b, &c), 0);
}
