/* fs-gateway: reads its settings, starts one worker per thread on the shared port, serves. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/sha.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "common/sentinel.h"
#include "common/tls.h"
#include "gateway/certs.h"
#include "gateway/metrics.h"
#include "gateway/token.h"
#include "gateway/worker.h"
#include "proto/rkey.h"
#include "proto/route.h"
#include "proto/tus.h"

#define FS_GATEWAY_VERSION "0.1.0"
#define SECRET_MIN 32
#define WORKERS_MAX 64
#define DAY_MS (24LL * 3600 * 1000)
#define PEM_MAX (1024 * 1024)
/*
 * Ends the help of each setting SIGHUP applies to a running gateway. reload() tells the two
 * kinds apart by it, so --help, docs/gateway.md and the behaviour cannot disagree.
 */
#define RELOADED " SIGHUP reloads it."
/* How long a reload waits for each worker to take the new settings (they wake for it). */
#define RELOAD_WAIT_MS 1000

struct settings {
	char *listen_address;
	int64_t port;
	int64_t workers;
	int64_t connection_limit;
	int64_t per_address_connections;
	uint64_t connection_memory;
	int64_t idle_timeout_ms;
	char *tls_cert;
	char *tls_key;
	char *tls_priorities;
	int client_certificates;
	char *tls_client_ca;
	char *jwks;
	char *token_issuer;
	char *token_audience;
	char *token_algorithms;
	char *token_owner_claim;
	char *token_scope;
	int64_t token_skew_ms;
	char *route_key;
	char *route_key_old;
	char *server_secret;
	char *server_ca_file;
	char *server_cert_file;
	char *server_key_file;
	char *redis_host;
	int64_t redis_port;
	char *redis_password;
	int64_t redis_timeout_ms;
	char *redis_sentinels;
	char *redis_master_name;
	char *redis_sentinel_password;
	int64_t pool_refresh_ms;
	int64_t pool_stale_ms;
	int64_t down_mark_ms;
	int64_t snapshot_max_age_ms;
	uint64_t max_job_size;
	int64_t max_url;
	uint64_t min_upload_rate;
	int64_t rate_window_ms;
	int64_t request_deadline_ms;
	int64_t connect_timeout_ms;
	int64_t answer_timeout_ms;
	int64_t uploads_per_user;
	int64_t authfail_limit;
	int64_t authfail_window_ms;
	int64_t idempotency_ttl_ms;
	int64_t job_record_ttl_ms;
	int64_t retry_after_ms;
	int64_t drain_grace_ms;
	int log_level;
};

#define S(field) offsetof(struct settings, field)

static const struct config_setting settings_table[] = {
	{"listen_address", CONFIG_STRING, "0.0.0.0", 0, 0, NULL, S(listen_address),
	 "IP address to listen on for clients (an IPv4 or IPv6 literal)."},
	{"port", CONFIG_INT, "8443", 0, 65535, NULL, S(port), "TCP port for clients (HTTPS)."},
	{"workers", CONFIG_INT, "0", 0, WORKERS_MAX, NULL, S(workers),
	 "Worker threads; each has its own event loop on the shared port (SO_REUSEPORT). 0: two "
	 "per CPU the process may run on (under a CPU quota, as in a container, set it: twice "
	 "the CPUs granted)."},
	{"connection_limit", CONFIG_INT, "16384", 16, 1000000, NULL, S(connection_limit),
	 "Most client connections at once, shared evenly by the workers."},
	{"per_address_connections", CONFIG_INT, "512", 0, 1000000, NULL,
	 S(per_address_connections),
	 "Most connections from one client address per worker (0: no limit); generous for hotel NAT."},
	{"connection_memory", CONFIG_SIZE, "64K", 8192, 1048576, NULL, S(connection_memory),
	 "Memory pool per client connection (headers and the body read buffer). Above 32K "
	 "libmicrohttpd maps it, so an idle connection costs only the pages it touched, and a "
	 "body is read a whole TLS record at a time."},
	{"idle_timeout", CONFIG_DURATION, "60s", 1000, DAY_MS, NULL, S(idle_timeout_ms),
	 "A client connection with no traffic for this long is closed."},
	{"tls_cert_file", CONFIG_PATH, NULL, 0, 0, NULL, S(tls_cert),
	 "PEM certificate chain the gateway presents to clients; new handshakes get it."
	 RELOADED},
	{"tls_key_file", CONFIG_PATH, NULL, 0, 0, NULL, S(tls_key),
	 "PEM private key of that certificate." RELOADED},
	{"tls_priorities", CONFIG_STRING, FSG_TLS_PRIORITIES, 0, 0, NULL, S(tls_priorities),
	 "GnuTLS priority string (default: TLS 1.3 and 1.2 with ECDHE and AEAD only)."},
	{"client_certificates", CONFIG_ENUM, "off", 0, 0, "off|optional|required",
	 S(client_certificates),
	 "Client TLS certificates: off, optional (verified when presented) or required."},
	{"tls_client_ca_file", CONFIG_SECRET, "", 0, 0, NULL, S(tls_client_ca),
	 "PEM CA certificates client certificates must chain to."},
	{"jwks_file", CONFIG_SECRET, NULL, 0, 0, NULL, S(jwks),
	 "JWKS file with the identity provider's token signing keys (each with a kid)."
	 RELOADED},
	{"token_issuer", CONFIG_STRING, NULL, 0, 0, NULL, S(token_issuer),
	 "Required \"iss\" of access tokens." RELOADED},
	{"token_audience", CONFIG_STRING, NULL, 0, 0, NULL, S(token_audience),
	 "Required \"aud\" of access tokens." RELOADED},
	{"token_algorithms", CONFIG_STRING, "RS256,ES256", 0, 0, NULL, S(token_algorithms),
	 "Accepted token signature algorithms (RS, PS, ES with 256, 384, 512)."
	 RELOADED},
	{"token_owner_claim", CONFIG_STRING, "sub", 0, 0, NULL, S(token_owner_claim),
	 "Token claim that names the user who owns the jobs." RELOADED},
	{"token_scope", CONFIG_STRING, "", 0, 0, NULL, S(token_scope),
	 "Scope a token must carry (empty: none)." RELOADED},
	{"token_skew", CONFIG_DURATION, "60s", 0, TOKEN_SKEW_MAX_MS, NULL, S(token_skew_ms),
	 "Clock skew allowed on exp, nbf and iat." RELOADED},
	{"route_key_file", CONFIG_SECRET, NULL, 0, 0, NULL, S(route_key),
	 "Secret (32 bytes or more) that authenticates public job ids; the same on every gateway."
	 RELOADED},
	{"route_key_old_file", CONFIG_SECRET, "", 0, 0, NULL, S(route_key_old),
	 "The previous route key, still accepted during a key rotation." RELOADED},
	{"server_secret_file", CONFIG_SECRET, NULL, 0, 0, NULL, S(server_secret),
	 "Bearer secret the gateway presents to data-center servers (their gateway_secret_file)."},
	{"server_ca_file", CONFIG_PATH, "", 0, 0, NULL, S(server_ca_file),
	 "PEM CA for https:// server URLs (empty: the system's CAs)."},
	{"server_cert_file", CONFIG_PATH, "", 0, 0, NULL, S(server_cert_file),
	 "PEM client certificate for servers that require mTLS."},
	{"server_key_file", CONFIG_PATH, "", 0, 0, NULL, S(server_key_file),
	 "PEM private key of server_cert_file."},
	{"redis_host", CONFIG_STRING, "127.0.0.1", 0, 0, NULL, S(redis_host),
	 "Redis address (an IP literal: no name lookups in the event loop)."},
	{"redis_port", CONFIG_INT, "6379", 1, 65535, NULL, S(redis_port), "Redis port."},
	{"redis_password_file", CONFIG_SECRET, "", 0, 0, NULL, S(redis_password),
	 "File with the Redis password (empty: no AUTH)."},
	{"redis_timeout", CONFIG_DURATION, "200ms", 10, 60000, NULL, S(redis_timeout_ms),
	 "Deadline of every Redis command and connection attempt."},
	{"redis_sentinels", CONFIG_STRING, "", 0, 0, NULL, S(redis_sentinels),
	 "Redis Sentinels to ask where the master is, \"ip:port,[ipv6]:port\" (IP literals); "
	 "empty: Redis is at redis_host:redis_port."},
	{"redis_master_name", CONFIG_STRING, "fsg", 0, 0, NULL, S(redis_master_name),
	 "Name of the Redis master at the sentinels."},
	{"redis_sentinel_password_file", CONFIG_SECRET, "", 0, 0, NULL,
	 S(redis_sentinel_password), "File with the sentinels' password (empty: no AUTH)."},
	{"pool_refresh", CONFIG_DURATION, "500ms", 50, 60000, NULL, S(pool_refresh_ms),
	 "How often each worker reads the server pool from Redis." RELOADED},
	{"pool_stale", CONFIG_DURATION, "3s", 100, DAY_MS, NULL, S(pool_stale_ms),
	 "A server whose last heartbeat is older than this gets no new jobs."},
	{"down_mark", CONFIG_DURATION, "5s", 100, DAY_MS, NULL, S(down_mark_ms),
	 "How long a server that refused or timed out a connection is skipped, by every gateway."},
	{"snapshot_max_age", CONFIG_DURATION, "60s", 1000, DAY_MS, NULL, S(snapshot_max_age_ms),
	 "While Redis is unreachable, the last pool snapshot serves new jobs for this long."
	 RELOADED},
	{"max_job_size", CONFIG_SIZE, "4G", 1, 9007199254740991LL, NULL, S(max_job_size),
	 "Largest job accepted (Tus-Max-Size)." RELOADED},
	{"max_url", CONFIG_INT, "1024", 64, 8192, NULL, S(max_url),
	 "Longest request path accepted (414 beyond)." RELOADED},
	{"min_upload_rate", CONFIG_SIZE, "1K", 0, 1073741824, NULL, S(min_upload_rate),
	 "Bytes per second a request body must average over rate_window (0: no minimum)."
	 RELOADED},
	{"rate_window", CONFIG_DURATION, "30s", 1000, DAY_MS, NULL, S(rate_window_ms),
	 "Window over which the minimum upload rate is measured." RELOADED},
	{"request_deadline", CONFIG_DURATION, "1h", 1000, 7 * DAY_MS, NULL,
	 S(request_deadline_ms),
	 "Absolute limit on one request, body included (requests that start after it)." RELOADED},
	{"connect_timeout", CONFIG_DURATION, "2s", 50, 600000, NULL, S(connect_timeout_ms),
	 "Deadline for connecting to a data-center server (TCP and TLS)." RELOADED},
	{"answer_timeout", CONFIG_DURATION, "30s", 100, DAY_MS, NULL, S(answer_timeout_ms),
	 "Deadline for a server's answer after a request's last byte (504 beyond)."
	 RELOADED},
	{"uploads_per_user", CONFIG_INT, "32", 0, 1000000, NULL, S(uploads_per_user),
	 "Concurrent requests carrying job bytes per user in this gateway (0: no limit)."
	 RELOADED},
	{"authfail_limit", CONFIG_INT, "10", 0, 1000000, NULL, S(authfail_limit),
	 "Failed authentications per address or user within authfail_window before 429 (0: off)."
	 RELOADED},
	{"authfail_window", CONFIG_DURATION, "60s", 1000, DAY_MS, NULL, S(authfail_window_ms),
	 "Window of the failed-authentication limit." RELOADED},
	{"idempotency_ttl", CONFIG_DURATION, "168h", 60000, 3650 * DAY_MS, NULL,
	 S(idempotency_ttl_ms),
	 "Life of the client-job-id records in Redis (the servers' committed retention)."
	 RELOADED},
	{"job_record_ttl", CONFIG_DURATION, "192h", 60000, 3650 * DAY_MS, NULL,
	 S(job_record_ttl_ms), "Life of the advisory fsg:job records in Redis." RELOADED},
	{"retry_after", CONFIG_DURATION, "5s", 1000, DAY_MS, NULL, S(retry_after_ms),
	 "Retry-After sent with 503 no-server-available and draining." RELOADED},
	{"drain_grace", CONFIG_DURATION, "30s", 0, DAY_MS, NULL, S(drain_grace_ms),
	 "On SIGTERM, how long requests in progress may still finish (new uploads get 503)."
	 RELOADED},
	{"log_level", CONFIG_ENUM, "info", 0, 0, "error|warn|info|debug", S(log_level),
	 "Least important log level written." RELOADED},
};

#define SETTINGS_N (sizeof(settings_table) / sizeof(settings_table[0]))

/* Checks what the table cannot express. Returns 0, or -1 with the reason in err. */
/*
 * The worker count: as set, or two per CPU of the process's affinity mask. libmicrohttpd's
 * MHD_run serves every ready connection before it returns, so a worker's turn grows with
 * its connections; with two loops per core the kernel interleaves shorter batches (the
 * benchmark's small-job p99 under 8,000 slow uploads fell from 1.2 s to about 0.1 s).
 */
static int workers_resolve(int64_t configured)
{
	cpu_set_t cpus;
	int n;

	if (configured > 0)
		return (int)configured;
	n = sched_getaffinity(0, sizeof(cpus), &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
	if (n < 1)
		n = 1;
	return 2 * n > WORKERS_MAX ? WORKERS_MAX : 2 * n;
}

static int settings_check(const struct settings *st, char *err, size_t cap)
{
	if (strlen(st->route_key) < ROUTE_KEY_MIN || (st->route_key_old[0] &&
						      strlen(st->route_key_old) < ROUTE_KEY_MIN)) {
		snprintf(err, cap, "route_key_file: key shorter than %d bytes", ROUTE_KEY_MIN);
		return -1;
	}
	if (strlen(st->server_secret) < SECRET_MIN) {
		snprintf(err, cap, "server_secret_file: secret shorter than %d bytes", SECRET_MIN);
		return -1;
	}
	if (st->client_certificates != CLIENT_CERTS_OFF && !st->tls_client_ca[0]) {
		snprintf(err, cap, "client_certificates: needs tls_client_ca_file");
		return -1;
	}
	if (!st->server_cert_file[0] != !st->server_key_file[0]) {
		snprintf(err, cap, "server_cert_file and server_key_file go together");
		return -1;
	}
	if (st->max_job_size > TUS_SIZE_LIMIT) {
		snprintf(err, cap, "max_job_size: above %" PRIu64, TUS_SIZE_LIMIT);
		return -1;
	}
	return 0;
}

static void sha1_hex(const char *text, char out[41])
{
	unsigned char md[SHA_DIGEST_LENGTH];
	int i;

	SHA1((const unsigned char *)text, strlen(text), md);
	for (i = 0; i < SHA_DIGEST_LENGTH; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

/* A PEM file's text (at most 1 MiB), malloc'd; NULL with the reason in err. */
static char *pem_read(const char *path, char *err, size_t cap)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t n;

	if (!f) {
		snprintf(err, cap, "%s: %s", path, strerror(errno));
		return NULL;
	}
	buf = malloc(PEM_MAX + 1);
	n = buf ? fread(buf, 1, PEM_MAX + 1, f) : 0;
	if (!buf || ferror(f) || n > PEM_MAX || memchr(buf, '\0', n)) {
		snprintf(err, cap, "%s: %s", path, !buf ? "out of memory"
						     : ferror(f) ? "read error"
						     : n > PEM_MAX ? "larger than 1 MiB" : "not PEM text");
		free(buf);
		buf = NULL;
	} else {
		buf[n] = '\0';
	}
	fclose(f);
	return buf;
}

/* Reads the certificate and key files and makes them current. 0, or -1 with err set. */
static int tls_load(const struct settings *st, char *err, size_t cap)
{
	char *cert = pem_read(st->tls_cert, err, cap), *key = NULL;
	int rc = -1;

	if (cert)
		key = pem_read(st->tls_key, err, cap);
	if (cert && key)
		rc = certs_load(cert, key, err, cap);
	free(cert);
	if (key) {
		explicit_bzero(key, strlen(key));
		free(key);
	}
	return rc;
}

/* Reads the certificate and key files named in st again; the old pair stays on failure. */
static void tls_reload(const struct settings *st)
{
	char err[256];

	if (tls_load(st, err, sizeof(err)))
		log_error("gateway.reload", "TLS certificate not reloaded, the old one stays: %s",
			  err);
	else
		log_info("gateway.reload", "TLS certificate reloaded from %s", st->tls_cert);
}

/* The token verifier of st's JWKS and token settings; NULL with the reason in err. */
static struct token_verifier *tokens_new(const struct settings *st, char *err, size_t cap)
{
	struct token_config tc = {.jwks_json = st->jwks,
				  .algorithms = st->token_algorithms,
				  .issuer = st->token_issuer,
				  .audience = st->token_audience,
				  .owner_claim = st->token_owner_claim,
				  .required_scope = st->token_scope,
				  .skew_ms = st->token_skew_ms};

	return token_verifier_new(&tc, err, cap);
}

static struct limits_config limits_cfg(const struct settings *st)
{
	return (struct limits_config){.authfail_limit = (uint64_t)st->authfail_limit,
				      .authfail_window_ms = st->authfail_window_ms,
				      .uploads_per_user = (unsigned)st->uploads_per_user};
}

/* The workers' settings that SIGHUP changes (the token verifier comes with the published set). */
static void env_reloadable(struct gateway_env *env, const struct settings *st)
{
	env->admit.tokens = NULL;
	env->admit.route_key = (const unsigned char *)st->route_key;
	env->admit.route_key_len = strlen(st->route_key);
	env->admit.route_key_old = st->route_key_old[0] ? (const unsigned char *)st->route_key_old
							: NULL;
	env->admit.route_key_old_len = strlen(st->route_key_old);
	env->admit.max_job_bytes = st->max_job_size;
	env->admit.max_url = (size_t)st->max_url;
	env->connect_timeout_ms = st->connect_timeout_ms;
	env->answer_timeout_ms = st->answer_timeout_ms;
	env->min_rate = (int64_t)st->min_upload_rate;
	env->rate_window_ms = st->rate_window_ms;
	env->request_deadline_ms = st->request_deadline_ms;
	env->pool_refresh_ms = st->pool_refresh_ms;
	env->snapshot_max_age_ms = st->snapshot_max_age_ms;
	env->idem_ttl_ms = st->idempotency_ttl_ms;
	env->job_ttl_ms = st->job_record_ttl_ms;
	env->authfail_window_ms = st->authfail_window_ms;
	env->retry_after_s = (st->retry_after_ms + 999) / 1000;
}

static int setting_reloads(const struct config_setting *s)
{
	return strstr(s->help, RELOADED) != NULL;
}

/* Bytes of s's field in the settings struct (config.h says what each type stores). */
static size_t setting_width(const struct config_setting *s)
{
	switch (s->type) {
	case CONFIG_BOOL:
	case CONFIG_ENUM:
		return sizeof(int);
	case CONFIG_INT:
	case CONFIG_DURATION:
		return sizeof(int64_t);
	case CONFIG_SIZE:
		return sizeof(uint64_t);
	default:
		return sizeof(char *);
	}
}

static int setting_same(const struct config_setting *s, const struct settings *a,
			const struct settings *b)
{
	const char *pa = (const char *)a + s->offset, *pb = (const char *)b + s->offset;

	if (s->type == CONFIG_STRING || s->type == CONFIG_PATH || s->type == CONFIG_SECRET)
		return !strcmp(*(char *const *)pa, *(char *const *)pb);
	return !memcmp(pa, pb, setting_width(s));
}

/* Exchanges s's values between a and b; strings change owner with their pointer. */
static void setting_swap(const struct config_setting *s, struct settings *a, struct settings *b)
{
	unsigned char tmp[sizeof(int64_t) > sizeof(char *) ? sizeof(int64_t) : sizeof(char *)];
	char *pa = (char *)a + s->offset, *pb = (char *)b + s->offset;
	size_t n = setting_width(s);

	memcpy(tmp, pa, n);
	memcpy(pa, pb, n);
	memcpy(pb, tmp, n);
}

static void names_add(char *list, size_t cap, const char *name)
{
	size_t n = strlen(list);

	snprintf(list + n, cap - n, "%s%s", n ? ", " : "", name);
}

/* What main hands to the signal handling: the command line and what the settings feed. */
struct gateway_run {
	int argc;
	char **argv;
	struct settings *st;      /* the running settings */
	struct gateway_env *env;  /* the template of every published set */
	struct gateway_hub *hub;
	struct worker *workers;
	int64_t nworkers;
};

/* Reads the settings as at start (file, environment, arguments). 0, or -1 with err set. */
static int settings_reread(const struct gateway_run *run, struct settings *next, char *err,
			   size_t cap)
{
	static const char prefix[] = "fs-gateway: ";
	char *text = NULL;
	const char *line;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	int rc;

	if (!f) {
		snprintf(err, cap, "out of memory");
		return -1;
	}
	/* config_load says what is wrong in one line on f: it becomes the log line's reason */
	rc = config_load(settings_table, SETTINGS_N, "FSG_GATEWAY", "fs-gateway",
			 FS_GATEWAY_VERSION, run->argc, run->argv, next, f, f);
	fclose(f);
	line = text ? text : "";
	if (!strncmp(line, prefix, strlen(prefix)))
		line += strlen(prefix);
	if (rc)
		snprintf(err, cap, "%.*s", (int)strcspn(line, "\n"), *line ? line : "cannot read");
	free(text);
	if (rc)
		return -1;
	return settings_check(next, err, cap);
}

/*
 * SIGHUP: the TLS pair, then the settings. Settings that do not load or check, or a JWKS or
 * token setting the verifier refuses, change nothing but the TLS pair (an error line says
 * why). Otherwise the settings marked RELOADED apply to what starts after this (requests,
 * handshakes, windows), and any other that changed keeps its running value, with a warning
 * naming it. Connections and requests in progress are not touched.
 */
static void reload(struct gateway_run *run)
{
	struct settings next;
	struct token_verifier *tokens;
	struct gateway_live *live;
	struct gateway_env env;
	struct limits_config lc;
	char err[512], changed[2048] = "", kept[2048] = "";
	unsigned generation;
	int64_t i;
	size_t k;

	memset(&next, 0, sizeof(next));
	if (settings_reread(run, &next, err, sizeof(err))) {
		log_error("gateway.reload", "configuration not reloaded, the running one stays: %s",
			  err);
		config_free(settings_table, SETTINGS_N, &next);
		tls_reload(run->st);
		return;
	}
	tls_reload(&next);
	tokens = tokens_new(&next, err, sizeof(err));
	if (!tokens) {
		log_error("gateway.reload", "jwks_file/token settings: %s; configuration not "
			  "reloaded, the running keys and settings stay", err);
		config_free(settings_table, SETTINGS_N, &next);
		return;
	}
	env = *run->env;
	env_reloadable(&env, &next);
	live = worker_live_new(&env, tokens);
	if (!live) {
		log_error("gateway.reload", "out of memory; configuration not reloaded");
		config_free(settings_table, SETTINGS_N, &next);
		return;
	}
	for (k = 0; k < SETTINGS_N; k++) {
		const struct config_setting *s = &settings_table[k];
		int same = setting_same(s, run->st, &next);

		if (setting_reloads(s)) {
			if (!same)
				names_add(changed, sizeof(changed), s->name);
			continue;
		}
		if (!same)
			names_add(kept, sizeof(kept), s->name);
		/*
		 * The running value stays, changed or not: the workers hold pointers to its
		 * strings, and the next reload compares against it.
		 */
		setting_swap(s, run->st, &next);
	}
	generation = worker_live_publish(run->hub, live);
	for (i = 0; i < run->nworkers; i++)
		worker_wake(&run->workers[i]);
	/* once this is logged, every request that starts sees the new set */
	for (i = 0; i < run->nworkers; i++) {
		int64_t until = clock_mono_ms() + RELOAD_WAIT_MS;

		while (!worker_synced(&run->workers[i], generation) && clock_mono_ms() < until)
			clock_sleep_ms(1);
		if (!worker_synced(&run->workers[i], generation))
			log_warn("gateway.reload", "worker %" PRId64 " has not taken the new "
				 "settings after %d ms; it takes them at its next event", i,
				 RELOAD_WAIT_MS);
	}
	lc = limits_cfg(&next);
	limits_configure(run->env->limits, &lc);
	log_init((enum log_level)next.log_level, 2);
	env_reloadable(run->env, &next);
	config_free(settings_table, SETTINGS_N, run->st);
	*run->st = next;
	if (kept[0])
		log_warn("gateway.reload", "changed settings that need a restart keep their "
			 "running value: %s", kept);
	log_info("gateway.reload", "configuration reloaded; changed: %s",
		 changed[0] ? changed : "none");
}

/* Waits for SIGTERM or SIGINT; SIGHUP reloads. */
static void serve(struct gateway_run *run, const sigset_t *set)
{
	for (;;) {
		int sig = sigwaitinfo(set, NULL);

		if (sig == SIGTERM || sig == SIGINT)
			return;
		if (sig == SIGHUP)
			reload(run);
	}
}

/*
 * Fails /readyz and refuses new uploads at once, then waits until no request is in progress,
 * drain_grace at most; a second SIGTERM or SIGINT ends the wait. What is still in progress
 * after it is cut when the workers stop: clients resume those uploads through another gateway.
 */
static void drain(struct gateway_run *run, const sigset_t *set)
{
	const struct timespec tick = {0, 20 * 1000000L};
	int64_t start = clock_mono_ms(), grace = run->st->drain_grace_ms;
	long left;

	atomic_store(&run->hub->draining, 1);
	log_info("gateway.drain", "draining: %ld requests in progress (%" PRId64 " uploads), "
		 "grace %" PRId64 " ms", atomic_load(&run->hub->requests),
		 metrics_gauge_get(METRICS_ACTIVE_UPLOADS), grace);
	while (atomic_load(&run->hub->requests) > 0 && clock_mono_ms() - start < grace) {
		siginfo_t info;
		int sig = sigtimedwait(set, &info, &tick);

		if (sig == SIGTERM || sig == SIGINT) {
			log_warn("gateway.drain", "second stop signal (%s from pid %ld): the grace "
				 "ends now", strsignal(sig), (long)info.si_pid);
			break;
		}
	}
	left = atomic_load(&run->hub->requests);
	if (left > 0)
		log_warn("gateway.drain", "stopping after %" PRId64 " ms with %ld requests in "
			 "progress (%" PRId64 " uploads); clients resume them elsewhere",
			 clock_mono_ms() - start, left, metrics_gauge_get(METRICS_ACTIVE_UPLOADS));
	else
		log_info("gateway.drain", "drained in %" PRId64 " ms", clock_mono_ms() - start);
}

int main(int argc, char **argv)
{
	struct settings st = {0};
	struct gateway_env env;
	struct gateway_hub hub = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct gateway_run run;
	struct token_verifier *tokens = NULL;
	struct limits_config lc;
	struct worker *workers = NULL;
	char err[256];
	sigset_t set;
	int64_t w, started = 0, nworkers;
	int rc;

	/* The settings reference in docs/gateway.md is this output; a test keeps them equal. */
	if (argc == 2 && strcmp(argv[1], "--settings-markdown") == 0) {
		config_write_markdown(settings_table, SETTINGS_N, "FSG_GATEWAY", stdout);
		return 0;
	}
	rc = config_load(settings_table, SETTINGS_N, "FSG_GATEWAY", "fs-gateway",
			 FS_GATEWAY_VERSION, argc, argv, &st, stdout, stderr);
	if (rc != 0) {
		config_free(settings_table, SETTINGS_N, &st);
		return rc == 1 ? 0 : 2;
	}
	if (settings_check(&st, err, sizeof(err))) {
		fprintf(stderr, "fs-gateway: %s\n", err);
		config_free(settings_table, SETTINGS_N, &st);
		return 2;
	}
	if (tls_load(&st, err, sizeof(err))) {
		fprintf(stderr, "fs-gateway: tls_cert_file/tls_key_file: %s\n", err);
		config_free(settings_table, SETTINGS_N, &st);
		return 2;
	}
	tokens = tokens_new(&st, err, sizeof(err));
	if (!tokens) {
		fprintf(stderr, "fs-gateway: jwks_file/token settings: %s\n", err);
		certs_free_all();
		config_free(settings_table, SETTINGS_N, &st);
		return 2;
	}
	log_init((enum log_level)st.log_level, 2);
	nworkers = workers_resolve(st.workers);
	memset(&env, 0, sizeof(env));

	/* Signals are taken by sigwaitinfo here only; the workers start with them blocked. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	rc = 1;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("gateway.start", "curl_global_init failed");
		goto out;
	}

	lc = limits_cfg(&st);
	env.limits = limits_new(&lc);
	if (!env.limits)
		goto out;
	env_reloadable(&env, &st);
	env.ingress = (struct ingress_config){
		.bind = st.listen_address,
		.port = (int)st.port,
		.reuse_port = 1,
		.connection_limit = (unsigned)((st.connection_limit + nworkers - 1) / nworkers),
		.per_ip_limit = (unsigned)st.per_address_connections,
		.connection_memory = (size_t)st.connection_memory,
		.idle_timeout_s = (unsigned)((st.idle_timeout_ms + 999) / 1000),
		.tls_cert_callback = certs_retrieve,
		.tls_trust_pem = st.client_certificates != CLIENT_CERTS_OFF ? st.tls_client_ca
									   : NULL,
		.tls_priorities = st.tls_priorities};
	env.client_certs = (enum gateway_client_certs)st.client_certificates;
	env.redis = (struct rasync_config){.host = st.redis_host,
					   .port = (int)st.redis_port,
					   .password = st.redis_password[0] ? st.redis_password
									    : NULL,
					   .timeout_ms = st.redis_timeout_ms,
					   .retry_ms = 500,
					   .sentinels = st.redis_sentinels,
					   .master_name = st.redis_master_name,
					   .sentinel_password = st.redis_sentinel_password[0]
									? st.redis_sentinel_password
									: NULL};
	{
		/* the workers would only say that Redis could not be set up */
		struct sentinel_addr sentinels[SENTINEL_MAX];
		enum sentinel_err se;
		size_t n;

		se = sentinel_list_parse(st.redis_sentinels, SENTINEL_IP_ONLY, sentinels,
					 SENTINEL_MAX, &n);
		if (se || (n && !st.redis_master_name[0])) {
			fprintf(stderr, "fs-gateway: %s: %s\n",
				se ? "redis_sentinels" : "redis_master_name",
				se ? sentinel_strerror(se) : "empty while redis_sentinels is set");
			rc = 2;
			goto out;
		}
	}
	env.pool = (struct pool_config){.stale_ms = st.pool_stale_ms, .down_ms = st.down_mark_ms};
	env.server_secret = st.server_secret;
	env.server_ca_file = st.server_ca_file;
	env.server_cert_file = st.server_cert_file;
	env.server_key_file = st.server_key_file;
	sha1_hex(RKEY_SEQ_NEXT_LUA, env.seq_sha);
	/* the workers' first set; SIGHUP publishes the next ones */
	hub.live = worker_live_new(&env, tokens);
	tokens = NULL;
	if (!hub.live)
		goto out;

	workers = calloc((size_t)nworkers, sizeof(*workers));
	if (!workers)
		goto out;
	for (w = 0; w < nworkers; w++) {
		if (worker_init(&workers[w], &hub, (unsigned)w))
			goto out;
		started = w + 1;
	}
	for (w = 0; w < nworkers; w++)
		if (worker_run(&workers[w]))
			goto out;
	log_info("gateway.start", "fs-gateway %s listening on %s port %d with %" PRId64
		 " workers", FS_GATEWAY_VERSION, st.listen_address,
		 ingress_port(workers[0].in), nworkers);
	run = (struct gateway_run){.argc = argc, .argv = argv, .st = &st, .env = &env,
				   .hub = &hub, .workers = workers, .nworkers = nworkers};
	serve(&run, &set);
	drain(&run, &set);
	rc = 0;
out:
	for (w = 0; w < started; w++)
		worker_stop(&workers[w]);
	for (w = 0; w < started; w++)
		worker_free(&workers[w]);
	free(workers);
	worker_live_put(hub.live);
	limits_free(env.limits);
	token_verifier_free(tokens);
	certs_free_all();
	curl_global_cleanup();
	log_info("gateway.stop", "fs-gateway stopped");
	config_free(settings_table, SETTINGS_N, &st);
	return rc;
}
