/* ingress: a libmicrohttpd daemon driven by a worker's loop (external epoll, no MHD thread). */
#include "gateway/ingress.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>

#include "common/clock.h"
#include "common/log.h"

/* MHD timeouts past this are capped: the timer simply fires early and is re-armed. */
#define INGRESS_TIMEOUT_MAX_MS (24LL * 3600 * 1000)
/* MHD's own default connection limit (FD_SETSIZE - 4), passed explicitly so it is known here. */
#define INGRESS_DEFAULT_LIMIT 1020
/* MHD 0.9.75's message when accept() fails for lack of fds and it stops accepting for a while. */
#define INGRESS_MHD_FD_LIMIT "Hit process or system resource limit at "
/* Conditional options handed over with MHD_OPTION_ARRAY, plus the terminator. */
#define INGRESS_OPTIONS_MAX 8

struct ingress {
	struct loop *loop;
	struct MHD_Daemon *daemon;
	int epfd;                 /* MHD's epoll fd, watched by the loop */
	int port;
	struct loop_timer *timer; /* the one timer armed from MHD_get_timeout */
	int64_t timer_at;
	int ran;                  /* MHD_run since the timer was last armed */
	int resumed;              /* MHD_resume_connection since the last MHD_run */
	unsigned limit;           /* MHD_OPTION_CONNECTION_LIMIT */
	unsigned conns;           /* connections after the last MHD_run */
	int fd_starved;           /* MHD said it stopped accepting for lack of fds */
	int hooked;               /* the turn hook is registered */
};

static void ingress_timer_fire(void *arg);

static unsigned ingress_connections(struct ingress *in)
{
	const union MHD_DaemonInfo *info =
		MHD_get_daemon_info(in->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);

	return info ? info->num_connections : 0;
}

static void ingress_run_once(struct ingress *in)
{
	if (MHD_run(in->daemon) != MHD_YES)
		log_error("ingress.run", "MHD_run failed");
	in->conns = ingress_connections(in);
}

static void ingress_run(struct ingress *in)
{
	unsigned before = in->conns;

	in->resumed = 0;
	in->ran = 1;
	ingress_run_once(in);
	/*
	 * At the connection limit, or once accept() failed for lack of fds, MHD takes its
	 * listening socket out of its epoll set; a close lifts either, but MHD puts the socket
	 * back only at the start of a later MHD_run. When the last connections all closed in this
	 * run, no event would ever come to ask for one (after a mass disconnect the worker would
	 * stay deaf): run again now.
	 */
	if ((before >= in->limit || in->fd_starved) && in->conns < before) {
		in->fd_starved = 0;
		ingress_run_once(in);
	}
}

/* Arms the timer for at_ms, keeping the current one when it is already due then. */
static void ingress_arm(struct ingress *in, int64_t at_ms)
{
	if (in->timer && in->timer_at == at_ms)
		return;
	loop_timer_cancel(in->loop, in->timer);
	in->timer = loop_timer_at(in->loop, at_ms, ingress_timer_fire, in);
	in->timer_at = at_ms;
	/* without a timer MHD's deadlines wait for the next network event: log it loudly */
	if (!in->timer)
		log_error("ingress.timer", "cannot arm MHD's timer: out of memory");
}

/* After MHD ran: its next deadline (idle timeouts, data already buffered, e.g. in TLS). */
static void ingress_rearm(struct ingress *in)
{
	MHD_UNSIGNED_LONG_LONG ms;

	in->ran = 0;
	if (MHD_get_timeout(in->daemon, &ms) != MHD_YES) {
		loop_timer_cancel(in->loop, in->timer);
		in->timer = NULL;
		return;
	}
	if (ms > (MHD_UNSIGNED_LONG_LONG)INGRESS_TIMEOUT_MAX_MS)
		ms = (MHD_UNSIGNED_LONG_LONG)INGRESS_TIMEOUT_MAX_MS;
	ingress_arm(in, clock_mono_ms() + (int64_t)ms);
}

static void ingress_timer_fire(void *arg)
{
	struct ingress *in = arg;

	in->timer = NULL; /* the loop recycles a fired timer's handle */
	ingress_run(in);
}

static void ingress_fd_ready(void *arg, uint32_t events)
{
	(void)events;
	ingress_run(arg);
}

/*
 * Once per turn: runs MHD for the connections resumed during the turn, then re-arms its timer
 * once however many times it ran.
 */
static void ingress_turn(void *arg)
{
	struct ingress *in = arg;

	if (in->resumed)
		ingress_run(in);
	if (in->ran)
		ingress_rearm(in);
}

/* MHD's own messages; its format strings are its own, not ours. */
__attribute__((format(printf, 2, 0))) static void ingress_mhd_log(void *cls, const char *fmt,
								   va_list ap)
{
	struct ingress *in = cls;
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	if (!strncmp(msg, INGRESS_MHD_FD_LIMIT, strlen(INGRESS_MHD_FD_LIMIT)))
		in->fd_starved = 1;
	log_warn("ingress.mhd", "%s", msg);
}

/*
 * Every connection is an fd, and the usual soft limit (1024) is below what one worker holds:
 * lift the soft limit to the hard one. Process-wide and idempotent; a failure only logs.
 */
static void ingress_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		log_warn("ingress.nofile", "getrlimit: %s", strerror(errno));
		return;
	}
	if (rl.rlim_cur == rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		log_warn("ingress.nofile", "setrlimit: %s", strerror(errno));
}

/* Fills ss from an IP literal and port; returns 0, or -1 when bind is not an IP address. */
static int ingress_addr(const char *bind, int port, struct sockaddr_storage *ss, int *ipv6)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (bind && inet_pton(AF_INET, bind, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*ipv6 = 0;
		return 0;
	}
	if (bind && inet_pton(AF_INET6, bind, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*ipv6 = 1;
		return 0;
	}
	return -1;
}

static void ingress_option(struct MHD_OptionItem *opts, size_t *n, enum MHD_OPTION option,
			   intptr_t value, void *ptr)
{
	opts[(*n)++] = (struct MHD_OptionItem){option, value, ptr};
}

/*
 * Certificates GnuTLS finds in pem, or a negative GnuTLS error. MHD checks only for an error,
 * and text without any certificate is none: it would start asking for client certificates that
 * nothing can verify.
 */
static int ingress_count_certs(const char *pem)
{
	gnutls_certificate_credentials_t cred;
	gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
	int rc;

	rc = gnutls_certificate_allocate_credentials(&cred);
	if (rc < 0)
		return rc;
	rc = gnutls_certificate_set_x509_trust_mem(cred, &d, GNUTLS_X509_FMT_PEM);
	gnutls_certificate_free_credentials(cred);
	return rc;
}

/* Checks cfg; returns 0 or -1 (reason logged). */
static int ingress_check(const struct ingress_config *cfg)
{
	if (!cfg->handler) {
		log_error("ingress.start", "no access handler");
		return -1;
	}
	if (cfg->port < 0 || cfg->port > 65535) {
		log_error("ingress.start", "port %d out of range", cfg->port);
		return -1;
	}
	if (cfg->tls_cert_callback && (cfg->tls_cert_pem || cfg->tls_key_pem)) {
		log_error("ingress.start", "TLS takes a PEM pair or a certificate callback, not both");
		return -1;
	}
	if (!cfg->tls_cert_pem != !cfg->tls_key_pem) {
		log_error("ingress.start", "TLS needs both a certificate and a key");
		return -1;
	}
	if ((cfg->tls_cert_pem || cfg->tls_cert_callback) && !cfg->tls_priorities) {
		log_error("ingress.start", "TLS needs a priority string");
		return -1;
	}
	if (!cfg->tls_cert_pem && !cfg->tls_cert_callback && cfg->tls_trust_pem) {
		log_error("ingress.start", "a client CA without a server certificate");
		return -1;
	}
	if (cfg->tls_trust_pem && ingress_count_certs(cfg->tls_trust_pem) < 1) {
		log_error("ingress.start", "the client CA has no certificate");
		return -1;
	}
	return 0;
}

struct ingress *ingress_start(struct loop *l, const struct ingress_config *cfg)
{
	struct ingress *in = NULL;
	struct sockaddr_storage ss;
	struct MHD_OptionItem opts[INGRESS_OPTIONS_MAX];
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *info;
	size_t n = 0;
	int ipv6;

	if (ingress_check(cfg))
		return NULL;
	if (ingress_addr(cfg->bind, cfg->port, &ss, &ipv6)) {
		log_error("ingress.start", "bind address %s is not an IP address",
			  cfg->bind ? cfg->bind : "(none)");
		return NULL;
	}
	if (ipv6)
		flags |= MHD_USE_IPv6;
	if (cfg->connection_memory)
		ingress_option(opts, &n, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
			       (intptr_t)cfg->connection_memory, NULL);
	if (cfg->reuse_port)
		ingress_option(opts, &n, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL);
	if (cfg->tls_cert_pem || cfg->tls_cert_callback) {
		flags |= MHD_USE_TLS;
		if (cfg->tls_cert_callback) {
			ingress_option(opts, &n, MHD_OPTION_HTTPS_CERT_CALLBACK, 0,
				       (void *)cfg->tls_cert_callback);
		} else {
			ingress_option(opts, &n, MHD_OPTION_HTTPS_MEM_CERT, 0,
				       (void *)cfg->tls_cert_pem);
			ingress_option(opts, &n, MHD_OPTION_HTTPS_MEM_KEY, 0,
				       (void *)cfg->tls_key_pem);
		}
		ingress_option(opts, &n, MHD_OPTION_HTTPS_PRIORITIES, 0,
			       (void *)cfg->tls_priorities);
		if (cfg->tls_trust_pem)
			ingress_option(opts, &n, MHD_OPTION_HTTPS_MEM_TRUST, 0,
				       (void *)cfg->tls_trust_pem);
	}
	ingress_option(opts, &n, MHD_OPTION_END, 0, NULL);

	ingress_raise_nofile();
	in = calloc(1, sizeof(*in));
	if (!in)
		goto nomem;
	in->loop = l;
	in->epfd = -1;
	in->limit = cfg->connection_limit ? cfg->connection_limit : INGRESS_DEFAULT_LIMIT;
	/* the logger first: MHD logs errors in the options after it to stderr otherwise */
	in->daemon = MHD_start_daemon(
		flags, (uint16_t)cfg->port, NULL, NULL, cfg->handler, cfg->handler_arg,
		MHD_OPTION_EXTERNAL_LOGGER, ingress_mhd_log, in, MHD_OPTION_SOCK_ADDR,
		(struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, in->limit,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->per_ip_limit,
		MHD_OPTION_CONNECTION_TIMEOUT, cfg->idle_timeout_s, MHD_OPTION_NOTIFY_COMPLETED,
		cfg->completed, cfg->completed_arg, MHD_OPTION_STRICT_FOR_CLIENT, 1,
		MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (!in->daemon) {
		log_error("ingress.start", "cannot start MHD on %s port %d", cfg->bind, cfg->port);
		goto fail;
	}
	info = MHD_get_daemon_info(in->daemon, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info || info->epoll_fd < 0) {
		log_error("ingress.start", "MHD has no epoll fd");
		goto fail;
	}
	in->epfd = info->epoll_fd;
	info = MHD_get_daemon_info(in->daemon, MHD_DAEMON_INFO_BIND_PORT);
	in->port = info ? info->port : cfg->port;
	if (loop_fd_add(l, in->epfd, EPOLLIN, ingress_fd_ready, in) == -1) {
		log_error("ingress.start", "cannot watch MHD's epoll fd: %s", strerror(errno));
		in->epfd = -1;
		goto fail;
	}
	if (loop_on_turn(l, ingress_turn, in) == -1)
		goto nomem;
	in->hooked = 1;
	/* MHD may already have a deadline; the first turn's hook arms its timer */
	in->ran = 1;
	return in;
nomem:
	log_error("ingress.start", "out of memory");
fail:
	if (in && in->epfd != -1)
		loop_fd_del(l, in->epfd);
	if (in && in->daemon)
		MHD_stop_daemon(in->daemon);
	free(in);
	return NULL;
}

int ingress_port(const struct ingress *in)
{
	return in->port;
}

struct MHD_Daemon *ingress_daemon(struct ingress *in)
{
	return in->daemon;
}

void ingress_resume(struct ingress *in, struct MHD_Connection *c)
{
	MHD_resume_connection(c);
	if (in->resumed)
		return;
	in->resumed = 1;
	/*
	 * This turn's hook runs MHD if it has not run yet; a resume from a later hook (or one
	 * after the turn) is run by the timer, due now, at the next turn.
	 */
	ingress_arm(in, clock_mono_ms());
}

void ingress_stop(struct ingress *in)
{
	if (!in)
		return;
	loop_fd_del(in->loop, in->epfd);
	loop_timer_cancel(in->loop, in->timer);
	MHD_stop_daemon(in->daemon);
	if (in->hooked)
		loop_off_turn(in->loop, ingress_turn, in);
	free(in);
}
