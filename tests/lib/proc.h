/* proc: start and stop the real programs an integration test runs, on free loopback ports. */
#ifndef FSG_TEST_PROC_H
#define FSG_TEST_PROC_H

#include <stdint.h>
#include <sys/types.h>

/*
 * Returns a TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then closed), or
 * -1; never one of the last 64 it returned in this process. Whoever binds it next may still
 * lose a race: callers retry with a fresh port.
 */
int proc_free_port(void);

/*
 * Starts argv[0] (looked up in PATH) with argv, stdout and stderr appended to log_path (or
 * inherited when NULL). The child is killed when the test process dies, so a crashed test
 * never leaves it behind. Returns its pid, or -1.
 */
pid_t proc_start(char *const argv[], const char *log_path);

/*
 * Stops pid: SIGTERM, then SIGKILL if it is still running after grace_ms. Returns its wait
 * status, or -1 if it could not be reaped.
 */
int proc_stop(pid_t pid, int grace_ms);

/* Returns 1 while pid is running (not yet exited), 0 once it has exited and was reaped. */
int proc_running(pid_t pid, int *status);

/*
 * A nonblocking listening TCP socket on 127.0.0.1, port chosen by the kernel (no race with
 * another binder). Writes *port; returns the fd, or -1.
 */
int proc_listen_loopback(int backlog, int *port);

/* Creates a fresh temporary directory and returns its malloc'd path, or NULL. */
char *proc_tempdir(const char *tag);

/* Reads a whole file into a malloc'd NUL-terminated string; "" when it cannot be read. */
char *proc_read_file(const char *path);

/* Writes text to dir/name (created or truncated). Returns 0 or -1. */
int proc_write_file(const char *dir, const char *name, const char *text);

/* Removes path and everything under it. Returns 0 or -1. */
int proc_rmtree(const char *path);

/* Sleeps ms milliseconds (nothing for ms <= 0). */
void proc_sleep_ms(int64_t ms);

#endif
