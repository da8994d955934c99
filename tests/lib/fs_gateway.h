/* fs_gateway: runs the real fs-gateway binary, with TLS and its own token keys, for a test. */
#ifndef FSG_TEST_FS_GATEWAY_H
#define FSG_TEST_FS_GATEWAY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tests/lib/jwt.h"

#define FS_GATEWAY_ISSUER "https://idp.test.example"
#define FS_GATEWAY_AUDIENCE "fs-gateway-test"
#define FS_GATEWAY_ROUTE_KEY "route-key-for-tests-0123456789abcdef0123456789"

struct fs_gateway {
	pid_t pid;
	int port;
	int redis_port;
	char *dir;              /* temp dir: gateway.conf, gateway.log, cert, key, jwks, secrets */
	char url[64];           /* https://127.0.0.1:port */
	char ca_file[4200];     /* the gateway's self-signed certificate: trust it to connect */
	struct jwt_keys *keys;  /* the keys of its JWKS (kids "rsa-1" and "ec-1") */
};

/*
 * Writes a config (TLS with a fresh self-signed certificate for 127.0.0.1, a JWKS of fresh
 * keys, issuer FS_GATEWAY_ISSUER, audience FS_GATEWAY_AUDIENCE, the servers' gateway secret of
 * tests/lib/fs_server.h, Redis on redis_port, a 100 ms pool refresh, debug logs) plus the
 * extra "name = value" lines (which must not repeat a setting above), starts fs-gateway on a
 * free port, sets http_client_tls to trust it and waits (10 s at most) until /healthz answers.
 * Returns NULL with the reason on stderr.
 */
struct fs_gateway *fs_gateway_start(int redis_port, const char *extra_config);

/*
 * Another replica of peer: a gateway with its own directory and port on the same Redis, with
 * a copy of peer's certificate (replicas behind one name), the same token keys (tokens from
 * fs_gateway_token(peer, ...) work on both) and route key, plus the extra lines. NULL with
 * the reason on stderr.
 */
struct fs_gateway *fs_gateway_start_replica(const struct fs_gateway *peer,
					    const char *extra_config);
/* Waits (timeout_ms at most) until /readyz answers 200: Redis read and a server available. */
int fs_gateway_wait_ready(struct fs_gateway *g, int timeout_ms);

/* Starts it again with the same directory, port and keys. 0 or -1. */
int fs_gateway_restart(struct fs_gateway *g);

/* SIGTERM and wait up to grace_ms (then SIGKILL). Returns the wait status, or -1. */
int fs_gateway_stop(struct fs_gateway *g, int grace_ms);

/* Sends sig to the gateway. 0 or -1. */
int fs_gateway_signal(const struct fs_gateway *g, int sig);
/*
 * Waits up to timeout_ms for the gateway to exit by itself; returns its wait status (and it is
 * no longer running), or -1 when it still runs.
 */
int fs_gateway_wait_exit(struct fs_gateway *g, int timeout_ms);
/* Stops it if running, removes its directory, frees g. Accepts NULL. */
void fs_gateway_free(struct fs_gateway *g);

/* Reads dir/gateway.log into a malloc'd string. */
char *fs_gateway_log(const struct fs_gateway *g);

/* A valid RS256 token for subject, good for ttl_s seconds. malloc'd; NULL on failure. */
char *fs_gateway_token(const struct fs_gateway *g, const char *subject, int64_t ttl_s);

/* "Authorization: Bearer <token>" for subject, malloc'd (for http_request header lists). */
char *fs_gateway_auth(const struct fs_gateway *g, const char *subject);

/* The resident set size of process pid in KiB (VmRSS), or -1. */
long proc_rss_kib(pid_t pid);

/*
 * As tcp_exchange, over TLS to 127.0.0.1:port, trusting ca_file: sends raw bytes after the
 * handshake, then reads until the peer closes, cap - 1 bytes arrive or timeout_ms passes.
 * Returns the bytes read (NUL-terminated in out), or -1 when the handshake fails.
 */
long tls_exchange(int port, const char *ca_file, const void *raw, size_t len, char *out,
		  size_t cap, int timeout_ms);


/*
 * tus through the gateway with curl (http_request): POST creates a job of length bytes, client
 * job id job_id (a UUID), without a body, writing its public id into pub on 201; HEAD writes
 * the Upload-Offset of a 200 into *offset; PATCH sends len bytes at offset. Each returns the
 * status, or -1 when the request did not complete.
 */
long fs_gateway_create(const struct fs_gateway *g, const char *auth, const char *job_id,
		       uint64_t length, char *pub, size_t cap);
long fs_gateway_head(const struct fs_gateway *g, const char *auth, const char *pub,
		     uint64_t *offset);
long fs_gateway_patch(const struct fs_gateway *g, const char *auth, const char *pub,
		      uint64_t offset, const void *body, size_t len);
/*
 * The job with public id pub (server-id.server-job-id.tag) is committed in server_dir's spool
 * (spool/ready/{server-job-id}/data) with exactly the len bytes of data. 0, or -1 with the
 * reason on stderr.
 */
int fs_gateway_committed(const char *server_dir, const char *pub, const void *data, size_t len);

/* A raw TLS connection to a gateway, for requests whose body arrives in pieces. */
struct tls_conn;
/* Connects to 127.0.0.1:port trusting ca_file. NULL when the connection or handshake fails. */
struct tls_conn *tls_conn_open(int port, const char *ca_file);
/* Writes all of len bytes. 0, or -1 when the connection broke (or a write waited 5 s). */
int tls_conn_send(struct tls_conn *c, const void *p, size_t len);
/*
 * Reads one answer: its header block and the Content-Length bytes after it (none for 204 and
 * 304; so a HEAD answer must say Content-Length: 0 or nothing, as the gateway's do).
 * Returns the status, 0 when the peer closed without a complete answer, -1 when timeout_ms
 * passed. out holds what arrived, NUL-terminated.
 */
long tls_conn_reply(struct tls_conn *c, int timeout_ms, char *out, size_t cap);
/* 1 once the peer closed the connection (no bytes, EOF or reset) within timeout_ms, else 0. */
int tls_conn_closed(struct tls_conn *c, int timeout_ms);
void tls_conn_free(struct tls_conn *c);

/* len bytes of a test job, a fixed pseudo-random function of seed (malloc'd; NULL on failure). */
unsigned char *fs_gateway_job_bytes(size_t len, uint32_t seed);

#endif
