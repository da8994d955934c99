/* redis_server: a real redis-server for one test, on a free loopback port in a temp dir. */
#ifndef FSG_TEST_REDIS_SERVER_H
#define FSG_TEST_REDIS_SERVER_H

#include <sys/types.h>

struct redis_server;

/*
 * Starts redis-server bound to 127.0.0.1 on a free port, with no persistence, in a fresh
 * temporary directory, and waits until it answers PING (up to 10 s). Retries with another port
 * if the chosen one was taken. Returns the server, or NULL with the reason on stderr.
 * The process dies with the test process even if the test crashes.
 */
struct redis_server *redis_server_start(void);

/* The port it listens on. */
int redis_server_port(const struct redis_server *r);

/* Its process id (for tests that stop, continue or kill it). */
pid_t redis_server_pid(const struct redis_server *r);

/* The temporary directory it runs in (its log is redis.log there). */
const char *redis_server_dir(const struct redis_server *r);

/*
 * Starts it again on the same port, in the same directory, and waits until it answers PING
 * (up to 10 s a try). Meant for after its process was stopped (proc_stop(redis_server_pid(r),
 * ...)) or killed, to bring Redis back after an outage; a process still running is stopped
 * first. Without persistence the new server starts empty. Returns 0, or -1 with the reason on
 * stderr (r stays valid for redis_server_stop).
 */
int redis_server_restart(struct redis_server *r);

/*
 * Stops it (SIGTERM, then SIGKILL after 5 s), removes its directory and frees r. Accepts NULL.
 * Returns 0 when the server exited cleanly on SIGTERM, -1 otherwise.
 */
int redis_server_stop(struct redis_server *r);

#endif
