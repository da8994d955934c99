/* Tests fs-server's command line: bad settings stop it before it listens; docs match --help. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "tests/lib/http_client.h"
#include "tests/lib/proc.h"

#define FS_SERVER FSG_BIN_DIR "/fs-server"

static char *dir;

static void setup(void)
{
	dir = proc_tempdir("cli");
	cr_assert_not_null(dir);
}

static void teardown(void)
{
	proc_rmtree(dir);
	free(dir);
}

static void write_file(const char *name, const char *text)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

/* Runs argv to completion (10 s at most); returns its exit status and its output in *out. */
static int run(char *const argv[], char **out)
{
	char log[4096];
	pid_t pid;
	int st = -1;

	snprintf(log, sizeof(log), "%s/out", dir);
	remove(log);
	pid = proc_start(argv, log);
	cr_assert_gt(pid, 0);
	for (int i = 0; i < 1000 && proc_running(pid, &st); i++) {
		struct timespec ts = {0, 10000000L};

		nanosleep(&ts, NULL);
	}
	if (proc_running(pid, &st))
		st = proc_stop(pid, 100);
	*out = proc_read_file(log);
	cr_assert(WIFEXITED(st), "did not exit by itself: %s", *out);
	return WEXITSTATUS(st);
}

static int run_config(const char *conf, char **out)
{
	char path[4096];
	char *argv[] = {FS_SERVER, "--config", path, NULL};

	write_file("server.conf", conf);
	snprintf(path, sizeof(path), "%s/server.conf", dir);
	return run(argv, out);
}

TestSuite(server_cli, .init = setup, .fini = teardown, .timeout = 60);

Test(server_cli, invalid_settings_exit_2_naming_file_line_and_setting)
{
	/* Lines 1-3 are valid; the fault is on line 4 or in a check after loading. */
#define BASE "spool_dir = spool\nserver_id = dc1\ngateway_secret_file = good.secret\n"
	static const struct {
		const char *conf;
		const char *says;
	} cases[] = {
		{BASE "port = 70000\nurl = http://127.0.0.1:1\n", "server.conf:4: port: 70000 above maximum 65535"},
		{BASE "spool_limit = 12X\nurl = http://127.0.0.1:1\n", "server.conf:4: spool_limit:"},
		{BASE "no_such_setting = 1\nurl = http://127.0.0.1:1\n", "server.conf:4: no_such_setting"},
		{BASE "heartbeat_interval = 5\nurl = http://127.0.0.1:1\n", "server.conf:4: heartbeat_interval:"},
		{BASE "log_level = chatty\nurl = http://127.0.0.1:1\n", "server.conf:4: log_level:"},
		{BASE "this line has no equals sign\n", "server.conf:4:"},
		{BASE "url = ftp://x:1\n", "url:"},
		{"spool_dir = spool\nserver_id = Not_Valid\ngateway_secret_file = good.secret\n"
		 "url = http://127.0.0.1:1\n", "server_id:"},
		{"spool_dir = spool\nserver_id = dc1\ngateway_secret_file = short.secret\n"
		 "url = http://127.0.0.1:1\n", "gateway_secret_file: secret shorter than 32 bytes"},
		{"spool_dir = spool\nserver_id = dc1\ngateway_secret_file = missing.secret\n"
		 "url = http://127.0.0.1:1\n", "gateway_secret_file"},
	};
#undef BASE

	write_file("good.secret", "0123456789abcdef0123456789abcdef\n");
	write_file("short.secret", "tooshort\n");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out, *nl;
		int rc = run_config(cases[i].conf, &out);

		cr_expect_eq(rc, 2, "case %zu: exit %d: %s", i, rc, out);
		cr_expect_not_null(strstr(out, cases[i].says), "case %zu: %s", i, out);
		nl = strchr(out, '\n');
		cr_expect(nl && nl[1] == '\0', "case %zu: one line only: %s", i, out);
		cr_expect_null(strstr(out, "listening"), "case %zu: %s", i, out);
		free(out);
	}
}

Test(server_cli, required_settings_are_named)
{
	char *out;
	int rc = run_config("server_id = dc1\n", &out);

	cr_assert_eq(rc, 2, "%s", out);
	cr_assert_not_null(strstr(out, "required"), "%s", out);
	free(out);
}

Test(server_cli, help_lists_every_setting_and_docs_match)
{
	char *help_argv[] = {FS_SERVER, "--help", NULL};
	char *md_argv[] = {FS_SERVER, "--settings-markdown", NULL};
	char *help, *md, *doc;

	cr_assert_eq(run(help_argv, &help), 0);
	cr_assert_eq(run(md_argv, &md), 0);
	doc = proc_read_file(FSG_SOURCE_DIR "/docs/server.md");
	cr_assert_gt(strlen(md), 100);
	cr_assert_not_null(strstr(doc, md),
			   "docs/server.md must hold the output of fs-server --settings-markdown");
	/* every setting row of the table is in --help with its env var */
	for (char *row = strstr(md, "\n| `"); row; row = strstr(row + 1, "\n| `")) {
		char name[64], env[96], want[96];

		cr_assert_eq(sscanf(row, "\n| `%63[^`]` | `%95[^`]`", name, env), 2);
		snprintf(want, sizeof(want), "--%s=", name);
		cr_expect_not_null(strstr(help, want), "--help lacks %s", name);
		cr_expect_not_null(strstr(help, env), "--help lacks %s", env);
	}
	free(help);
	free(md);
	free(doc);
}
