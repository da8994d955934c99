/* redis_server: a real redis-server (or replica, or sentinel) for one test, on loopback. */
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

/*
 * Starts a replica of master (replicaof 127.0.0.1 and master's port), otherwise as
 * redis_server_start, and waits until its link to the master is up (10 s at most). NULL with
 * the reason on stderr.
 */
struct redis_server *redis_replica_start(const struct redis_server *master);

/*
 * Starts redis-sentinel on a free 127.0.0.1 port in a fresh temporary directory (its config
 * file sentinel.conf there, its log redis.log), monitoring master_name at 127.0.0.1:master_port
 * with quorum, down-after-milliseconds down_after_ms and failover-timeout failover_timeout_ms,
 * and waits until it answers PING (10 s at most). Stopped and freed with redis_server_stop; the
 * other functions here work on it too. NULL with the reason on stderr.
 */
struct redis_server *redis_sentinel_start(const char *master_name, int master_port, int quorum,
					  int down_after_ms, int failover_timeout_ms);

/* Sentinel s's answer to where master_name is (get-master-addr-by-name): its port, or -1. */
int redis_sentinel_master_port(const struct redis_server *s, const char *master_name);

/* The port it listens on. */
int redis_server_port(const struct redis_server *r);

/* Its process id (for tests that stop, continue or kill it). */
pid_t redis_server_pid(const struct redis_server *r);

/* The temporary directory it runs in (its log is redis.log there). */
const char *redis_server_dir(const struct redis_server *r);

/*
 * Starts it again on the same port, in the same directory (a replica of the same master; a
 * sentinel with the config it rewrote), and waits until it answers PING (up to 10 s a try).
 * Meant for after its process was stopped (proc_stop(redis_server_pid(r), ...)) or killed,
 * to bring Redis back after an outage; a process still running is stopped first. Without
 * persistence the new server starts empty. Returns 0, or -1 with the reason on
 * stderr (r stays valid for redis_server_stop).
 */
int redis_server_restart(struct redis_server *r);

/*
 * Stops it (SIGTERM, then SIGKILL after 5 s), removes its directory and frees r. Accepts NULL.
 * Returns 0 when the server exited cleanly on SIGTERM, -1 otherwise.
 */
int redis_server_stop(struct redis_server *r);

#endif
