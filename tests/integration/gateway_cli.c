/* Tests fs-gateway's command line: bad settings stop it before it listens; docs match --help. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "tests/lib/fs_gateway.h"
#include "tests/lib/http_client.h"
#include "tests/lib/jwt.h"
#include "tests/lib/proc.h"
#include "tests/lib/redis_server.h"

#define FS_GATEWAY FSG_BIN_DIR "/fs-gateway"
/* 32 bytes: the shortest route key and server secret accepted; one byte less is refused. */
#define KEY_32 "0123456789abcdef0123456789abcdef"
#define KEY_31 "0123456789abcdef0123456789abcde"
/* A refused start must be over this quickly, long before it could have served anything. */
#define REFUSAL_MS 2000

static char *dir;
static struct jwt_keys *keys;

static void write_file(const char *name, const char *text)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
}

/* Writes {"keys":[jwk]} of the RSA key with extra members pasted into the JWK. */
static void write_rsa_jwks(const char *name, const char *extra)
{
	char *jwk = jwt_jwk(keys->rsa, "rsa-x", extra), *jwks = NULL;

	cr_assert_not_null(jwk);
	cr_assert_neq(asprintf(&jwks, "{\"keys\":[%s]}\n", jwk), -1);
	write_file(name, jwks);
	free(jwks);
	free(jwk);
}

static void setup(void)
{
	char cmd[8192], path[4200];

	dir = proc_tempdir("gwcli");
	cr_assert_not_null(dir);
	keys = jwt_keys_new("rsa-1", "ec-1");
	cr_assert_not_null(keys);
	/* a self-signed certificate, made as tests/lib/fs_gateway.c makes it */
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		 "-keyout '%s/tls.key' -out '%s/tls.crt' -days 2 -subj /CN=127.0.0.1 "
		 "-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1",
		 dir, dir);
	cr_assert_eq(system(cmd), 0, "openssl could not make a certificate");
	snprintf(path, sizeof(path), "%s/jwks.json", dir);
	cr_assert_eq(jwt_keys_write_jwks(keys, path), 0);
	write_file("key32", KEY_32 "\n");
	write_file("key31", KEY_31 "\n");
	write_file("notjson.json", "{\"keys\":[{\"kty\":\"RSA\",}]}\n");
	write_file("nokeys.json", "{\"keys\":[]}\n");
	/* a well-formed key, but for encryption: skipped, which leaves none to verify with */
	write_rsa_jwks("enc.json", ",\"use\":\"enc\"");
}

static void teardown(void)
{
	jwt_keys_free(keys);
	if (dir)
		proc_rmtree(dir);
	free(dir);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Runs argv with env_var ("NAME=value", or NULL) added to its environment, until it exits or
 * limit_ms pass; a process still running then is stopped and fails the test. Returns the exit
 * status, its output (stdout and stderr) in *out and how long it ran in *ran_ms.
 */
static int run(char *const argv[], const char *env_var, int limit_ms, char **out,
	       int64_t *ran_ms)
{
	char log[4096], name[128];
	int64_t start;
	pid_t pid;
	int st = -1, running = 1;

	snprintf(log, sizeof(log), "%s/out", dir);
	remove(log);
	if (env_var) {
		const char *eq = strchr(env_var, '=');

		cr_assert(eq && (size_t)(eq - env_var) < sizeof(name));
		snprintf(name, sizeof(name), "%.*s", (int)(eq - env_var), env_var);
		cr_assert_eq(setenv(name, eq + 1, 1), 0);
	}
	start = now_ms();
	pid = proc_start(argv, log);
	if (env_var)
		unsetenv(name);
	cr_assert_gt(pid, 0);
	while ((running = proc_running(pid, &st)) && now_ms() - start < limit_ms) {
		struct timespec ts = {0, 5000000L};

		nanosleep(&ts, NULL);
	}
	*ran_ms = now_ms() - start;
	if (running)
		st = proc_stop(pid, 1000);
	*out = proc_read_file(log);
	cr_assert(!running, "still running after %d ms: %s", limit_ms, *out);
	cr_assert(WIFEXITED(st), "did not exit by itself (status %#x): %s", st, *out);
	return WEXITSTATUS(st);
}

/* The settings every test config starts from; each case leaves one out or adds lines. */
static const char *const base_lines[] = {
	"listen_address = 127.0.0.1",
	"tls_cert_file = tls.crt",
	"tls_key_file = tls.key",
	"jwks_file = jwks.json",
	"token_issuer = " FS_GATEWAY_ISSUER,
	"token_audience = " FS_GATEWAY_AUDIENCE,
	"route_key_file = key32",
	"server_secret_file = key32",
	/* nothing listens on port 1: no Redis is needed to start, nor touched by accident */
	"redis_port = 1",
};

#define BASE_N (sizeof(base_lines) / sizeof(base_lines[0]))

/*
 * Writes gateway.conf: "port = port", base_lines except the one setting omit (NULL: none),
 * then extra. Returns the 1-based line number of extra's first line.
 */
static int write_conf(const char *omit, const char *extra, int port)
{
	char path[4096];
	int line = 1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/gateway.conf", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "port = %d\n", port);
	for (size_t i = 0; i < BASE_N; i++) {
		size_t n = omit ? strlen(omit) : 0;

		if (omit && strncmp(base_lines[i], omit, n) == 0 && base_lines[i][n] == ' ')
			continue;
		fprintf(f, "%s\n", base_lines[i]);
		line++;
	}
	fputs(extra ? extra : "", f);
	cr_assert_eq(fclose(f), 0);
	return line + 1;
}

static int run_conf(const char *env_var, int limit_ms, char **out, int64_t *ran_ms)
{
	char path[4096];
	char *argv[] = {FS_GATEWAY, "--config", path, NULL};

	snprintf(path, sizeof(path), "%s/gateway.conf", dir);
	return run(argv, env_var, limit_ms, out, ran_ms);
}

/* Counts the lines of text (each ends with '\n'; a last one without it counts too). */
static int line_count(const char *text)
{
	int n = 0;

	for (const char *p = text; *p; p++)
		if (*p == '\n' || !p[1])
			n++;
	return n;
}

/*
 * A refused start: exit 2 within REFUSAL_MS, never "listening", and exactly one line of
 * output, "fs-gateway: ..." holding says, after skipped lines of event "token.key_skipped"
 * (the verifier's warning for each JWKS key it cannot use).
 */
static void expect_refusal(const char *what, const char *env_var, const char *says, int skipped)
{
	int64_t ran_ms;
	char *out, *last;
	int rc = run_conf(env_var, REFUSAL_MS, &out, &ran_ms);

	cr_expect_eq(rc, 2, "%s: exit %d: %s", what, rc, out);
	cr_expect_lt(ran_ms, REFUSAL_MS, "%s: took %lld ms", what, (long long)ran_ms);
	cr_expect_null(strstr(out, "listening"), "%s: %s", what, out);
	cr_expect_eq(line_count(out), skipped + 1, "%s: %d lines, want %d: %s", what,
		     line_count(out), skipped + 1, out);
	cr_expect(out[0] && out[strlen(out) - 1] == '\n', "%s: no final newline: %s", what, out);
	last = out;
	for (int i = 0; i < skipped && strchr(last, '\n'); i++) {
		char *nl = strchr(last, '\n');
		char *event = strstr(last, "\"event\":\"token.key_skipped\"");

		cr_expect(strncmp(last, "{\"ts\":", 6) == 0 && event && event < nl,
			  "%s: line %d is not a key_skipped warning: %s", what, i + 1, out);
		last = nl + 1;
	}
	cr_expect(strncmp(last, "fs-gateway: ", 12) == 0, "%s: %s", what, out);
	cr_expect_not_null(strstr(last, says), "%s: want \"%s\" in: %s", what, says, out);
	free(out);
}

TestSuite(gateway_cli, .init = setup, .fini = teardown, .timeout = 60);

Test(gateway_cli, base_config_listens_and_stops_on_sigterm)
{
	/* The control of every refusal below: the same config, unchanged, does start. */
	char path[4096], log[4096], ca[4096], reply[256];
	char *argv[] = {FS_GATEWAY, "--config", path, NULL};
	int port = proc_free_port(), st = -1, up = 0;
	char *out;
	pid_t pid;

	cr_assert_gt(port, 0);
	write_conf(NULL, NULL, port);
	snprintf(path, sizeof(path), "%s/gateway.conf", dir);
	snprintf(log, sizeof(log), "%s/out", dir);
	snprintf(ca, sizeof(ca), "%s/tls.crt", dir);
	pid = proc_start(argv, log);
	cr_assert_gt(pid, 0);
	for (int i = 0; i < 100 && !up && proc_running(pid, &st); i++) { /* 10 s at most */
		struct timespec ts = {0, 50000000L};

		up = tls_exchange(port, ca, "", 0, reply, sizeof(reply), 50) != -1;
		if (!up)
			nanosleep(&ts, NULL);
	}
	st = proc_stop(pid, 5000);
	out = proc_read_file(log);
	cr_expect(up, "no TLS handshake on port %d: %s", port, out);
	cr_expect_not_null(strstr(out, "listening on 127.0.0.1 port"), "%s", out);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x: %s", st, out);
	free(out);
}

Test(gateway_cli, missing_required_setting_is_named)
{
	static const char *const required[] = {
		"tls_cert_file", "tls_key_file", "jwks_file", "token_issuer",
		"token_audience", "route_key_file", "server_secret_file",
	};

	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		char says[128];

		write_conf(required[i], NULL, proc_free_port());
		snprintf(says, sizeof(says), "fs-gateway: %s: required setting not given",
			 required[i]);
		expect_refusal(required[i], NULL, says, 0);
	}
}

Test(gateway_cli, invalid_settings_exit_2_naming_the_setting)
{
	static const struct {
		const char *omit;  /* base setting left out */
		const char *extra; /* lines added */
		const char *says;
		int skipped;       /* key_skipped warnings before the refusal */
	} cases[] = {
		{"route_key_file", "route_key_file = key31\n",
		 "fs-gateway: route_key_file: key shorter than 32 bytes", 0},
		{NULL, "route_key_old_file = key31\n",
		 "fs-gateway: route_key_file: key shorter than 32 bytes", 0},
		{"server_secret_file", "server_secret_file = key31\n",
		 "fs-gateway: server_secret_file: secret shorter than 32 bytes", 0},
		{NULL, "client_certificates = required\n",
		 "fs-gateway: client_certificates: needs tls_client_ca_file", 0},
		{NULL, "client_certificates = optional\n",
		 "fs-gateway: client_certificates: needs tls_client_ca_file", 0},
		{NULL, "server_cert_file = tls.crt\n",
		 "fs-gateway: server_cert_file and server_key_file go together", 0},
		{NULL, "server_key_file = tls.key\n",
		 "fs-gateway: server_cert_file and server_key_file go together", 0},
		{"jwks_file", "jwks_file = notjson.json\n",
		 "fs-gateway: jwks_file/token settings: JWKS: not valid JSON (line 1, column ", 0},
		{"jwks_file", "jwks_file = nokeys.json\n",
		 "fs-gateway: jwks_file/token settings: JWKS: no \"keys\" array, or it is "
		 "empty", 0},
		{"jwks_file", "jwks_file = enc.json\n",
		 "fs-gateway: jwks_file/token settings: JWKS: no key usable with the allowed "
		 "algorithms", 1},
		/* the RSA key pins RS256 and no allowed algorithm fits the EC key: both skipped */
		{NULL, "token_algorithms = PS256\n",
		 "fs-gateway: jwks_file/token settings: JWKS: no key usable with the allowed "
		 "algorithms", 2},
		{NULL, "token_algorithms = RS256,HS256\n",
		 "fs-gateway: jwks_file/token settings: algorithms: HMAC (HS256) is never "
		 "allowed", 0},
		{NULL, "token_algorithms = none\n",
		 "fs-gateway: jwks_file/token settings: algorithms: \"none\" is never allowed", 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char what[160];

		snprintf(what, sizeof(what), "case %zu (%.*s)", i,
			 (int)strcspn(cases[i].extra, "\n"), cases[i].extra);
		write_conf(cases[i].omit, cases[i].extra, proc_free_port());
		expect_refusal(what, NULL, cases[i].says, cases[i].skipped);
	}
}

Test(gateway_cli, unknown_setting_in_file_is_named_with_its_line)
{
	char says[128];
	int line = write_conf(NULL, "no_such_setting = 1\n", proc_free_port());

	snprintf(says, sizeof(says), "/gateway.conf:%d: no_such_setting: unknown setting", line);
	expect_refusal("file", NULL, says, 0);
}

Test(gateway_cli, unknown_environment_variable_is_named)
{
	write_conf(NULL, NULL, proc_free_port());
	/* a typo of FSG_GATEWAY_PORT must not be silently ignored */
	expect_refusal("env", "FSG_GATEWAY_PROT=9000",
		       "fs-gateway: env FSG_GATEWAY_PROT: unknown setting", 0);
}

Test(gateway_cli, listen_address_must_be_an_ip_literal)
{
	/* Not a config error: ingress refuses it when the first worker starts, exit 1, logged. */
	static const char *const bad[] = {"localhost", "127.0.0.256"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char extra[128], says[128], *out;
		int64_t ran_ms;
		int rc;

		snprintf(extra, sizeof(extra), "listen_address = %s\n", bad[i]);
		snprintf(says, sizeof(says), "bind address %s is not an IP address", bad[i]);
		write_conf("listen_address", extra, proc_free_port());
		rc = run_conf(NULL, REFUSAL_MS, &out, &ran_ms);
		cr_expect_eq(rc, 1, "%s: exit %d: %s", bad[i], rc, out);
		cr_expect_lt(ran_ms, REFUSAL_MS, "%s: took %lld ms", bad[i], (long long)ran_ms);
		cr_expect_not_null(strstr(out, says), "%s: %s", bad[i], out);
		cr_expect_not_null(strstr(out, "\"level\":\"error\""), "%s: %s", bad[i], out);
		cr_expect_null(strstr(out, "listening"), "%s: %s", bad[i], out);
		free(out);
	}
}

Test(gateway_cli, help_lists_every_setting_and_docs_match)
{
	char *help_argv[] = {FS_GATEWAY, "--help", NULL};
	char *version_argv[] = {FS_GATEWAY, "--version", NULL};
	char *md_argv[] = {FS_GATEWAY, "--settings-markdown", NULL};
	char *help, *version, *md, *doc;
	int64_t ran_ms;
	int rows = 0, options = 0;

	cr_assert_eq(run(help_argv, NULL, 10000, &help, &ran_ms), 0, "%s", help);
	cr_assert_eq(run(version_argv, NULL, 10000, &version, &ran_ms), 0, "%s", version);
	cr_assert_eq(run(md_argv, NULL, 10000, &md, &ran_ms), 0, "%s", md);
	cr_expect_eq(strncmp(version, "fs-gateway ", 11), 0, "%s", version);
	cr_expect_eq(line_count(version), 1, "%s", version);
	doc = proc_read_file(FSG_SOURCE_DIR "/docs/gateway.md");
	cr_assert_gt(strlen(md), 100);
	cr_assert_not_null(strstr(doc, md), "docs/gateway.md must hold the output of "
			   "fs-gateway --settings-markdown");
	/* every setting row of the table is in --help with its env var */
	for (char *row = strstr(md, "\n| `"); row; row = strstr(row + 1, "\n| `")) {
		char name[64], env[96], want[96], upper[64];

		cr_assert_eq(sscanf(row, "\n| `%63[^`]` | `%95[^`]`", name, env), 2);
		for (size_t i = 0; i <= strlen(name); i++)
			upper[i] = (char)toupper((unsigned char)name[i]);
		snprintf(want, sizeof(want), "FSG_GATEWAY_%s", upper);
		cr_expect_str_eq(env, want);
		snprintf(want, sizeof(want), "\n  --%s=", name);
		cr_expect_not_null(strstr(help, want), "--help lacks --%s=", name);
		snprintf(want, sizeof(want), "env FSG_GATEWAY_%s\n", upper);
		cr_expect_not_null(strstr(help, want), "--help lacks %s", want);
		rows++;
	}
	/* and --help has no setting the table lacks: --config, --help and --version besides */
	for (char *opt = strstr(help, "\n  --"); opt; opt = strstr(opt + 1, "\n  --"))
		options++;
	cr_expect_eq(options, rows + 3, "--help has %d options for %d settings", options, rows);
	/* the settings the refusal tests rely on are in the table */
	cr_expect_not_null(strstr(md, "| `tls_cert_file` |"));
	cr_expect_not_null(strstr(md, "| `server_secret_file` |"));
	cr_expect_gt(rows, 40, "only %d settings", rows);
	free(help);
	free(version);
	free(md);
	free(doc);
}

Test(gateway_cli, valid_config_serves_healthz_and_exits_0_on_sigterm)
{
	struct redis_server *r = redis_server_start();
	struct fs_gateway *g;
	struct http_reply rep = {0};
	char url[128], *log;
	int64_t start, took;
	int st;

	cr_assert_not_null(r);
	g = fs_gateway_start(redis_server_port(r), NULL);
	cr_assert_not_null(g);
	snprintf(url, sizeof(url), "%s/healthz", g->url);
	cr_assert_eq(http_request("GET", url, NULL, NULL, 0, &rep), 0, "no TLS answer at %s", url);
	cr_expect_eq(rep.status, 200, "status %ld: %s", rep.status, rep.body);
	http_reply_free(&rep);
	start = now_ms();
	st = fs_gateway_stop(g, 5000);
	took = now_ms() - start;
	log = fs_gateway_log(g);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x: %s", st, log);
	cr_expect_lt(took, 5000, "SIGTERM took %lld ms", (long long)took);
	cr_expect_not_null(strstr(log, "fs-gateway stopped"), "%s", log);
	/* nothing answers on the port any more */
	cr_expect_eq(tls_exchange(g->port, g->ca_file, "", 0, url, sizeof(url), 500), -1);
	free(log);
	fs_gateway_free(g);
	cr_expect_eq(redis_server_stop(r), 0);
}
