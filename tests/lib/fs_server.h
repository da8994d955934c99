/* fs_server: runs the real fs-server binary for an integration test. */
#ifndef FSG_TEST_FS_SERVER_H
#define FSG_TEST_FS_SERVER_H

#include <sys/types.h>

#define FS_SERVER_GATEWAY_SECRET "gateway-secret-for-tests-0123456789abcdef"
#define FS_SERVER_RELEASE_SECRET "release-secret-for-tests-0123456789abcdef"

struct fs_server {
	pid_t pid;
	int port;
	int redis_port;
	char id[33];   /* server id, as in the pool: "dc1" unless started with fs_server_start_id */
	char *dir;     /* temp dir: spool/, secrets, server.conf, server.log */
	char url[64];  /* http://127.0.0.1:port */
};

/*
 * Writes a config (spool in dir/spool, both secrets, server id "dc1", 100 ms heartbeat) plus
 * the extra "name = value" lines, starts fs-server on a free port and waits (10 s at most)
 * until /healthz answers. With tls_cert_file among the extra lines the URL is https:// (set
 * the CA with http_client_tls first). Returns NULL with the reason on stderr.
 */
struct fs_server *fs_server_start(int redis_port, const char *extra_config);

/*
 * As fs_server_start with server id server_id (1..32 of [a-z0-9-]), so that one Redis can hold
 * several servers of a pool ("dc1", "dc2", ...).
 */
struct fs_server *fs_server_start_id(int redis_port, const char *server_id,
				     const char *extra_config);

/* Starts it again in the same directory and port (after fs_server_kill or _stop). 0 or -1. */
int fs_server_restart(struct fs_server *s);

/* SIGKILL, no clean-up: a crash. Returns the wait status. */
int fs_server_kill(struct fs_server *s);

/* SIGTERM and wait up to grace_ms (then SIGKILL). Returns the wait status, or -1. */
int fs_server_stop(struct fs_server *s, int grace_ms);

/* Stops it if running, removes its directory, frees s. Accepts NULL. */
void fs_server_free(struct fs_server *s);

/* Reads dir/server.log into a malloc'd string (for assertions and failure messages). */
char *fs_server_log(const struct fs_server *s);

#endif
