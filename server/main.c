/* fs-server: reads its settings, opens the spool, joins the pool, serves until told to stop. */
#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "common/sentinel.h"
#include "common/tls.h"
#include "proto/announce.h"
#include "server/hook.h"
#include "server/http.h"
#include "server/member.h"
#include "server/spool.h"

#define FS_SERVER_VERSION "0.1.0"
#define SECRET_MIN 32

struct settings {
	char *listen_address;
	int64_t port;
	int64_t threads;
	int64_t connection_limit;
	int64_t idle_timeout_ms;
	char *spool_dir;
	uint64_t spool_limit;
	uint64_t min_free;
	uint64_t max_job_size;
	int64_t upload_expiry_ms;
	int64_t retention_ms;
	char *server_id;
	char *url;
	int64_t capacity;
	char *gateway_secret;
	char *release_secret;
	char *redis_host;
	int64_t redis_port;
	char *redis_password;
	int64_t redis_timeout_ms;
	char *redis_sentinels;
	char *redis_master_name;
	char *redis_sentinel_password;
	int64_t heartbeat_ms;
	int64_t drain_grace_ms;
	char *tls_cert;
	char *tls_key;
	char *tls_client_ca;
	char *tls_priorities;
	char *hook_command;
	int64_t hook_timeout_ms;
	int bench_discard;
	int log_level;
};

#define S(field) offsetof(struct settings, field)
#define DAY_MS (24LL * 3600 * 1000)

static const struct config_setting settings_table[] = {
	{"listen_address", CONFIG_STRING, "127.0.0.1", 0, 0, NULL, S(listen_address),
	 "IP address to listen on (\"::\" for all, IPv4 and IPv6)."},
	{"port", CONFIG_INT, "8480", 0, 65535, NULL, S(port), "TCP port for gateways and release stations."},
	{"threads", CONFIG_INT, "4", 1, 64, NULL, S(threads),
	 "Request threads; a disk flush blocks only its own thread's connections."},
	{"connection_limit", CONFIG_INT, "4096", 16, 1000000, NULL, S(connection_limit),
	 "Most open connections."},
	{"idle_timeout", CONFIG_DURATION, "60s", 1000, DAY_MS, NULL, S(idle_timeout_ms),
	 "A connection silent this long is closed (its upload keeps what arrived)."},
	{"spool_dir", CONFIG_PATH, NULL, 0, 0, NULL, S(spool_dir),
	 "Directory holding uploads and committed jobs; one filesystem."},
	{"spool_limit", CONFIG_SIZE, "0", 0, 0, NULL, S(spool_limit),
	 "Most bytes the spool may hold, counting the full length of uploads in progress; 0: no limit."},
	{"min_free", CONFIG_SIZE, "256M", 0, 0, NULL, S(min_free),
	 "Free space always left on the spool's filesystem."},
	{"max_job_size", CONFIG_SIZE, "4G", 1, 9007199254740991LL, NULL, S(max_job_size),
	 "Largest job accepted (Tus-Max-Size)."},
	{"upload_expiry", CONFIG_DURATION, "24h", 60000, 365 * DAY_MS, NULL, S(upload_expiry_ms),
	 "An upload not completed within this time is removed."},
	{"retention", CONFIG_DURATION, "168h", 60000, 3650 * DAY_MS, NULL, S(retention_ms),
	 "A committed job not released within this time is removed; tombstones live as long."},
	{"server_id", CONFIG_STRING, NULL, 0, 0, NULL, S(server_id),
	 "This server's id in the pool: 1-32 of a-z, 0-9, '-'."},
	{"url", CONFIG_STRING, NULL, 0, 0, NULL, S(url),
	 "Base URL gateways reach this server at, e.g. http://10.0.0.5:8480."},
	{"capacity", CONFIG_INT, "256", 1, 1000000, NULL, S(capacity),
	 "Most concurrent uploads announced to gateways."},
	{"gateway_secret_file", CONFIG_SECRET, NULL, 0, 0, NULL, S(gateway_secret),
	 "File holding the bearer secret gateways present (at least 32 bytes)."},
	{"release_secret_file", CONFIG_SECRET, "", 0, 0, NULL, S(release_secret),
	 "File holding the bearer secret release stations present; empty: release API off."},
	{"redis_host", CONFIG_STRING, "127.0.0.1", 0, 0, NULL, S(redis_host), "Redis host."},
	{"redis_port", CONFIG_INT, "6379", 1, 65535, NULL, S(redis_port), "Redis port."},
	{"redis_password_file", CONFIG_SECRET, "", 0, 0, NULL, S(redis_password),
	 "File holding the Redis password; empty: no AUTH."},
	{"redis_timeout", CONFIG_DURATION, "500ms", 10, 60000, NULL, S(redis_timeout_ms),
	 "Bound on each Redis connect and command."},
	{"redis_sentinels", CONFIG_STRING, "", 0, 0, NULL, S(redis_sentinels),
	 "Redis Sentinels to ask where the master is, \"host:port,[ipv6]:port\"; "
	 "empty: Redis is at redis_host:redis_port."},
	{"redis_master_name", CONFIG_STRING, "fsg", 0, 0, NULL, S(redis_master_name),
	 "Name of the Redis master at the sentinels."},
	{"redis_sentinel_password_file", CONFIG_SECRET, "", 0, 0, NULL,
	 S(redis_sentinel_password), "File holding the sentinels' password; empty: no AUTH."},
	{"heartbeat_interval", CONFIG_DURATION, "1s", 50, 60000, NULL, S(heartbeat_ms),
	 "How often the pool announcement is refreshed; it expires after three."},
	{"drain_grace", CONFIG_DURATION, "30s", 0, DAY_MS, NULL, S(drain_grace_ms),
	 "On SIGTERM, how long uploads in progress may take to finish."},
	{"tls_cert_file", CONFIG_SECRET, "", 0, 0, NULL, S(tls_cert),
	 "PEM certificate chain for HTTPS; empty: plain HTTP (on a trusted network only)."},
	{"tls_key_file", CONFIG_SECRET, "", 0, 0, NULL, S(tls_key),
	 "PEM private key of tls_cert_file."},
	{"tls_client_ca_file", CONFIG_SECRET, "", 0, 0, NULL, S(tls_client_ca),
	 "PEM CA: when set, every client but probes must present a certificate it issued."},
	{"tls_priorities", CONFIG_STRING, FSG_TLS_PRIORITIES, 0, 0, NULL, S(tls_priorities),
	 "GnuTLS priority string: TLS 1.2 and 1.3 with ECDHE and AEAD ciphers only."},
	{"hook_command", CONFIG_STRING, "", 0, 0, NULL, S(hook_command),
	 "Command run by /bin/sh for each committed job (FSG_JOB_* in its environment); empty: none."},
	{"hook_timeout", CONFIG_DURATION, "60s", 100, DAY_MS, NULL, S(hook_timeout_ms),
	 "A hook still running after this is killed."},
	{"bench_discard", CONFIG_BOOL, "false", 0, 0, NULL, S(bench_discard),
	 "Benchmarks only: read and hash every body byte but store none (data files stay sparse) "
	 "and skip fsync; committed jobs hold zeros, zstd jobs are refused (415); waits with epoll, "
	 "which can miss a client's close until idle_timeout. Never in production."},
	{"log_level", CONFIG_ENUM, "info", 0, 0, "error|warn|info|debug", S(log_level),
	 "Least important log level written."},
};

#define SETTINGS_N (sizeof(settings_table) / sizeof(settings_table[0]))

/* Checks what the table cannot express. Returns 0, or -1 with the reason on stderr. */
static int settings_check(const struct settings *st)
{
	struct sentinel_addr sentinels[SENTINEL_MAX];
	enum sentinel_err se;
	size_t n;

	if (announce_server_id_check(st->server_id, strlen(st->server_id)) != PROTO_OK) {
		fprintf(stderr, "fs-server: server_id: \"%s\" is not 1-32 of a-z, 0-9 and '-'\n",
			st->server_id);
		return -1;
	}
	if (announce_url_check(st->url, strlen(st->url)) != PROTO_OK) {
		fprintf(stderr, "fs-server: url: not http(s)://host:port[/path]\n");
		return -1;
	}
	if (strlen(st->gateway_secret) < SECRET_MIN) {
		fprintf(stderr, "fs-server: gateway_secret_file: secret shorter than %d bytes\n",
			SECRET_MIN);
		return -1;
	}
	if (st->release_secret && *st->release_secret && strlen(st->release_secret) < SECRET_MIN) {
		fprintf(stderr, "fs-server: release_secret_file: secret shorter than %d bytes\n",
			SECRET_MIN);
		return -1;
	}
	if (!*st->tls_cert != !*st->tls_key) {
		fprintf(stderr, "fs-server: tls_cert_file and tls_key_file go together\n");
		return -1;
	}
	if (*st->tls_client_ca && !*st->tls_cert) {
		fprintf(stderr, "fs-server: tls_client_ca_file needs tls_cert_file and tls_key_file\n");
		return -1;
	}
	if (*st->tls_cert && strncmp(st->url, "https://", 8) != 0) {
		fprintf(stderr, "fs-server: url: must be https:// when TLS is on\n");
		return -1;
	}
	se = sentinel_list_parse(st->redis_sentinels, SENTINEL_NAMES_OK, sentinels, SENTINEL_MAX,
				 &n);
	if (se) {
		fprintf(stderr, "fs-server: redis_sentinels: %s\n", sentinel_strerror(se));
		return -1;
	}
	if (n && !*st->redis_master_name) {
		fprintf(stderr, "fs-server: redis_master_name: empty while redis_sentinels is set\n");
		return -1;
	}
	return 0;
}

/* An expired committed job leaves the held index too. */
static void expired(void *arg, const struct spool_job *job)
{
	log_info("spool.expire", "job %s expired %s", job->id,
		 job->state == SPOOL_COMMITTED ? "unreleased" : "incomplete");
	if (job->state == SPOOL_COMMITTED)
		member_held_remove(arg, job);
}

/* Waits for signals; expires old jobs now and then. Returns on SIGTERM or SIGINT. */
static void serve(struct spool *spool, struct member *member, const sigset_t *set)
{
	int64_t next_expiry = 0;

	for (;;) {
		struct timespec tick = {1, 0};
		int sig = sigtimedwait(set, NULL, &tick);

		if (sig == SIGTERM || sig == SIGINT)
			return;
		if (sig == SIGHUP)
			log_info("server.signal", "SIGHUP ignored: restart to change settings");
		if (clock_mono_ms() >= next_expiry) {
			spool_expire(spool, clock_unix_ms(), expired, member);
			next_expiry = clock_mono_ms() + 60000;
		}
	}
}

/* Stops new uploads, then waits up to grace for those in progress. */
static void drain(struct http *http, struct member *member, struct spool *spool, int64_t grace)
{
	int64_t deadline = clock_mono_ms() + grace;

	http_set_draining(http);
	member_set_draining(member);
	log_info("server.drain", "draining: %u uploads in progress, grace %" PRId64 " ms",
		 spool_active(spool), grace);
	while (spool_active(spool) > 0 && clock_mono_ms() < deadline) {
		clock_sleep_ms(100);
	}
	if (spool_active(spool) > 0)
		log_warn("server.drain", "grace over with %u uploads in progress; they can resume",
			 spool_active(spool));
}

int main(int argc, char **argv)
{
	struct settings st = {0};
	struct spool_config sc;
	struct member_config mc;
	struct http_config hc;
	struct spool *spool = NULL;
	struct member *member = NULL;
	struct hook *hook = NULL;
	struct http *http = NULL;
	enum spool_err se;
	sigset_t set;
	int rc;

	/* The settings reference in docs/server.md is this output; a test keeps them equal. */
	if (argc == 2 && strcmp(argv[1], "--settings-markdown") == 0) {
		config_write_markdown(settings_table, SETTINGS_N, "FSG_SERVER", stdout);
		return 0;
	}
	rc = config_load(settings_table, SETTINGS_N, "FSG_SERVER", "fs-server", FS_SERVER_VERSION,
			 argc, argv, &st, stdout, stderr);
	if (rc != 0) {
		config_free(settings_table, SETTINGS_N, &st);
		return rc == 1 ? 0 : 2;
	}
	if (settings_check(&st)) {
		config_free(settings_table, SETTINGS_N, &st);
		return 2;
	}
	log_init((enum log_level)st.log_level, 2);

	/* Signals are taken by sigtimedwait in this thread only; threads start with them blocked. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	rc = 1;
	sc = (struct spool_config){.dir = st.spool_dir,
				   .limit_bytes = st.spool_limit,
				   .min_free_bytes = st.min_free,
				   .upload_expiry_ms = st.upload_expiry_ms,
				   .retention_ms = st.retention_ms,
				   .discard = st.bench_discard};
	if (st.bench_discard)
		log_warn("server.start", "bench_discard is on: job data is not kept");
	spool = spool_open(&sc, &se);
	if (!spool) {
		log_error("server.start", "cannot open spool %s: %s", st.spool_dir,
			  spool_strerror(se));
		goto out;
	}
	{
		struct spool_recovery rec;

		spool_recovery(spool, &rec);
		log_info("spool.open",
			 "%s: %zu uploads resumed, %zu committed jobs, %zu commits finished, "
			 "%zu damaged or half-made entries removed",
			 st.spool_dir, rec.receiving, rec.committed, rec.rolled_forward, rec.dropped);
	}
	hook = hook_start(st.hook_command, st.hook_timeout_ms, spool);
	mc = (struct member_config){.redis_host = st.redis_host,
				    .redis_port = (int)st.redis_port,
				    .redis_password = *st.redis_password ? st.redis_password : NULL,
				    .redis_timeout_ms = st.redis_timeout_ms,
				    .redis_sentinels = st.redis_sentinels,
				    .redis_master_name = st.redis_master_name,
				    .redis_sentinel_password = *st.redis_sentinel_password
								       ? st.redis_sentinel_password
								       : NULL,
				    .server_id = st.server_id,
				    .url = st.url,
				    .capacity = (uint32_t)st.capacity,
				    .interval_ms = st.heartbeat_ms};
	member = member_start(&mc, spool);
	if (!member) {
		log_error("server.start", "cannot start pool membership");
		goto out;
	}
	hc = (struct http_config){.bind = st.listen_address,
				  .port = (int)st.port,
				  .threads = (unsigned)st.threads,
				  /* the sink holds thousands of trickling streams and resumes none */
				  .use_epoll = st.bench_discard,
				  .connection_limit = (unsigned)st.connection_limit,
				  .idle_timeout_ms = st.idle_timeout_ms,
				  .gateway_secret = st.gateway_secret,
				  .release_secret = *st.release_secret ? st.release_secret : NULL,
				  .max_job_bytes = st.max_job_size,
				  .server_id = st.server_id,
				  .upload_expiry_ms = st.upload_expiry_ms,
				  .tls_cert_pem = *st.tls_cert ? st.tls_cert : NULL,
				  .tls_key_pem = *st.tls_key ? st.tls_key : NULL,
				  .tls_client_ca_pem = *st.tls_client_ca ? st.tls_client_ca : NULL,
				  .tls_priorities = st.tls_priorities};
	http = http_start(&hc, spool, member, hook);
	if (!http)
		goto out;
	log_info("server.start", "fs-server %s listening on %s port %d as %s%s", FS_SERVER_VERSION,
		 st.listen_address, http_port(http), st.server_id,
		 st.bench_discard ? " (bench_discard: job data is not kept)" : "");
	serve(spool, member, &set);
	drain(http, member, spool, st.drain_grace_ms);
	rc = 0;
out:
	http_stop(http);
	member_stop(member);
	hook_stop(hook);
	spool_free(spool);
	log_info("server.stop", "fs-server stopped");
	config_free(settings_table, SETTINGS_N, &st);
	return rc;
}
