/* ingress: a libmicrohttpd daemon driven by a worker's loop (external epoll, no MHD thread). */
#ifndef FSG_GATEWAY_INGRESS_H
#define FSG_GATEWAY_INGRESS_H

#include <stdint.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>

#include "gateway/loop.h"

struct ingress_config {
	const char *bind;              /* IP address literal */
	int port;                      /* 0: any (see ingress_port) */
	int reuse_port;                /* SO_REUSEPORT, so several workers share the port */
	unsigned connection_limit;     /* MHD_OPTION_CONNECTION_LIMIT; 0: 1020, MHD's default */
	unsigned per_ip_limit;         /* MHD_OPTION_PER_IP_CONNECTION_LIMIT; 0: none */
	size_t connection_memory;      /* MHD_OPTION_CONNECTION_MEMORY_LIMIT; 0: MHD's default */
	unsigned idle_timeout_s;       /* MHD_OPTION_CONNECTION_TIMEOUT; 0: none */
	/*
	 * TLS: cert and key PEM text (both NULL: plain HTTP, for tests behind a terminator).
	 * The strings are read during ingress_start only.
	 */
	const char *tls_cert_pem;
	const char *tls_key_pem;
	const char *tls_trust_pem;     /* client CA: MHD then asks clients for a certificate */
	const char *tls_priorities;    /* GnuTLS priority string (required with TLS) */
	/*
	 * Instead of the PEM pair: a certificate callback run per handshake
	 * (MHD_OPTION_HTTPS_CERT_CALLBACK), so certificates can change without a restart.
	 */
	gnutls_certificate_retrieve_function2 *tls_cert_callback;
	MHD_AccessHandlerCallback handler;
	void *handler_arg;
	MHD_RequestCompletedCallback completed; /* may be NULL */
	void *completed_arg;
};

struct ingress;

/*
 * Starts an MHD daemon with MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME and no internal thread,
 * registers its epoll fd in l, runs MHD_run when it is readable, and after every turn re-arms
 * a loop timer from MHD_get_timeout (buffered TLS data otherwise waits forever). Registers a
 * turn hook: hooks registered before it that resume connections get them run in the same turn.
 * Also raises the process's soft RLIMIT_NOFILE to the hard limit (each connection is an fd).
 * Returns NULL (reason logged) on failure. From the loop's thread, or before the loop runs.
 */
struct ingress *ingress_start(struct loop *l, const struct ingress_config *cfg);

/* The bound port. */
int ingress_port(const struct ingress *in);

/* The daemon, for MHD calls a relay needs (suspend/resume happen on connections). */
struct MHD_Daemon *ingress_daemon(struct ingress *in);

/*
 * Resumes a suspended connection: only from the loop's thread, outside MHD callbacks (e.g. from
 * a turn hook or a timer). MHD then runs in this turn's ingress hook, or, when that hook has
 * already run, from a timer due at once (the next turn does not wait).
 */
void ingress_resume(struct ingress *in, struct MHD_Connection *c);

/*
 * Stops the daemon: the caller must have resumed every suspended connection first (MHD's
 * rule); unregisters its fd, timer and turn hook from the loop and frees. From the loop's
 * thread (or while it is not running). Accepts NULL.
 */
void ingress_stop(struct ingress *in);

#endif
