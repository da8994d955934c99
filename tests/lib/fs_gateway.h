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

/* Waits (timeout_ms at most) until /readyz answers 200: Redis read and a server available. */
int fs_gateway_wait_ready(struct fs_gateway *g, int timeout_ms);

/* Starts it again with the same directory, port and keys. 0 or -1. */
int fs_gateway_restart(struct fs_gateway *g);

/* SIGTERM and wait up to grace_ms (then SIGKILL). Returns the wait status, or -1. */
int fs_gateway_stop(struct fs_gateway *g, int grace_ms);

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

#endif
