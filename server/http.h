/* http: fs-server's HTTP front: the tus receiver for gateways and the release API. */
#ifndef FSG_SERVER_HTTP_H
#define FSG_SERVER_HTTP_H

#include <stdint.h>

#include "server/hook.h"
#include "server/member.h"
#include "server/spool.h"

struct http_config {
	const char *bind;            /* listen address, "127.0.0.1" or "::" */
	int port;                    /* 0: any free port (see http_port) */
	unsigned threads;            /* MHD thread pool size */
	unsigned connection_limit;   /* most open connections */
	int64_t idle_timeout_ms;     /* a connection silent this long is closed */
	const char *gateway_secret;  /* bearer secret gateways present (required) */
	const char *release_secret;  /* bearer secret release stations present (NULL: release off) */
	uint64_t max_job_bytes;      /* Tus-Max-Size */
	const char *server_id;       /* for held-index members */
	int64_t upload_expiry_ms;    /* for Upload-Expires */
	/* TLS: all NULL for plain HTTP. PEM text, not paths. */
	const char *tls_cert_pem;    /* server certificate chain */
	const char *tls_key_pem;     /* its private key */
	const char *tls_client_ca_pem; /* when set, every client but probes must present a
					  certificate issued by this CA (checked per request) */
	const char *tls_priorities;  /* GnuTLS priority string */
	/*
	 * Wait with epoll instead of poll. poll's cost per wake grows with the open connections,
	 * but libmicrohttpd 0.9.75 under epoll can miss a client's close until the idle timeout,
	 * and every resumed PATCH then meets a 409 for that long. Only the benchmark sink, which
	 * keeps nothing to resume, sets this.
	 */
	int use_epoll;
};

struct http;

/*
 * Starts listening and serving with an internal MHD thread pool. Body bytes go to the spool as
 * they arrive; each upload holds one small request record, whatever the job's size. member and
 * hook may be NULL. Returns NULL (reason logged) if the daemon cannot start.
 */
struct http *http_start(const struct http_config *cfg, struct spool *s, struct member *m,
			struct hook *k);

/* The port actually bound (useful when cfg->port was 0). */
int http_port(const struct http *h);

/* From now on creations (POST, PUT) answer 503 draining; readiness fails; the rest goes on. */
void http_set_draining(struct http *h);

/* Stops the daemon (closing connections) and frees h. Accepts NULL. */
void http_stop(struct http *h);

#endif
