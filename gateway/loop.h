/* loop: one worker's event loop: fd events (epoll), timers, a cross-thread wake-up, turn hooks. */
#ifndef FSG_GATEWAY_LOOP_H
#define FSG_GATEWAY_LOOP_H

#include <stdint.h>

struct loop;
struct loop_timer;

/* Called with the epoll events (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP) that fired. */
typedef void loop_fd_fn(void *arg, uint32_t events);
typedef void loop_timer_fn(void *arg);
typedef void loop_turn_fn(void *arg);

/*
 * Returns a new loop, or NULL. Not thread-safe except loop_wake and loop_stop, and not
 * reentrant: never call loop_run_once or loop_run from inside one of its callbacks.
 */
struct loop *loop_new(void);

/* Frees the loop; fds registered are not closed (their owners close them). Accepts NULL. */
void loop_free(struct loop *l);

/*
 * Watches fd for events (EPOLLIN | EPOLLOUT ...), level-triggered. Returns 0 or -1 (errno;
 * EEXIST when fd is already watched). fn gets the fired events among those asked for, plus
 * EPOLLERR/EPOLLHUP.
 */
int loop_fd_add(struct loop *l, int fd, uint32_t events, loop_fd_fn *fn, void *arg);
int loop_fd_mod(struct loop *l, int fd, uint32_t events);
/*
 * Stops watching fd; safe from inside any callback, including fd's own: an event of the same
 * batch is never delivered to a deleted watcher, even when fd was closed and reused meanwhile.
 * Call it before closing fd (epoll keeps watching a closed fd that has a dup).
 */
int loop_fd_del(struct loop *l, int fd);

/*
 * Runs fn(arg) once at CLOCK_MONOTONIC ms at_ms (or at the next turn when already past).
 * Equal deadlines fire in the order they were set. A timer set from inside a timer callback
 * fires at the next turn at the earliest, even when already due.
 * Returns a handle valid until the timer fires (its callback returns) or is cancelled, or NULL
 * on allocation failure.
 */
struct loop_timer *loop_timer_at(struct loop *l, int64_t at_ms, loop_timer_fn *fn, void *arg);
/*
 * Cancels a pending timer; safe from inside callbacks, also for a timer due in the same turn,
 * and a no-op for the timer whose callback is running. Accepts NULL.
 */
void loop_timer_cancel(struct loop *l, struct loop_timer *t);

/*
 * fn(arg) runs once per turn, after the events and timers of the turn and before waiting: the
 * place to act on flags set inside library callbacks (reap, resume) and re-arm library timers.
 * Returns 0 or -1.
 */
int loop_on_turn(struct loop *l, loop_turn_fn *fn, void *arg);

/*
 * Removes the hook registered with exactly fn and arg; safe from inside any callback, hooks
 * included (a removed hook does not run again, not even later in the same turn). 0, or -1 when
 * no such hook is registered.
 */
int loop_off_turn(struct loop *l, loop_turn_fn *fn, void *arg);

/* One turn: waits up to max_wait_ms (-1: until something happens) and dispatches. 0 or -1. */
int loop_run_once(struct loop *l, int max_wait_ms);

/* Turns until loop_stop. Returns 0, or -1 on an epoll failure. */
int loop_run(struct loop *l);

/* Thread-safe: makes a waiting loop_run_once return (eventfd). */
void loop_wake(struct loop *l);

/* Thread-safe: loop_run returns after the current turn. */
void loop_stop(struct loop *l);

#endif
