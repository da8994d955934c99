/* Tests fs-client's command line on the real binary: commands, exit codes, messages, docs. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <jansson.h>

#include "tests/lib/fs_client.h"
#include "tests/lib/proc.h"

#define FS_CLIENT FSG_BIN_DIR "/fs-client"
#define CMD_MS 10000 /* one command, sanitizers included, is far quicker than this */
#define ARGS_N 10    /* arguments of one command at most, in these tests */

/* The exit codes docs/client.md promises. */
#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_PENDING 3
#define EXIT_BUSY 4

static struct fs_client *C;
static char in_dir[4300];
static char addr_office[64], addr_default[64];

static const char *const commands[] = {
	"submit [--name=NAME] [--copies=N] [--format=TYPE] FILE...",
	"status [--json]",
	"cancel ID...",
	"deliver [--location=ID]",
	"run [--location=ID]",
	"locations [--location=ID] [--json]",
};

#define COMMANDS_N (sizeof(commands) / sizeof(commands[0]))

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Two locations whose addresses are free loopback ports nobody listens on: every delivery
 * attempt fails at once with "waiting for network", and nothing can ever be delivered.
 */
static void setup(void)
{
	char loc[1024];
	int p1 = proc_free_port(), p2 = proc_free_port();

	cr_assert(p1 > 0 && p2 > 0 && p1 != p2);
	snprintf(addr_office, sizeof(addr_office), "https://127.0.0.1:%d", p1);
	snprintf(addr_default, sizeof(addr_default), "https://127.0.0.1:%d", p2);
	snprintf(loc, sizeof(loc),
		 "{\"current\": \"office\", \"locations\": ["
		 "{\"id\": \"office\", \"name\": \"Office\", \"addresses\": [\"%s\"]}, "
		 "{\"id\": \"Default\", \"name\": \"Public server\", \"addresses\": [\"%s\"]}]}",
		 addr_office, addr_default);
	C = fs_client_new(NULL, loc, NULL);
	cr_assert_not_null(C);
	snprintf(in_dir, sizeof(in_dir), "%s/in", C->dir);
	cr_assert_eq(mkdir(in_dir, 0700), 0);
}

static void teardown(void)
{
	fs_client_free(C);
	C = NULL;
}

TestSuite(client_cli, .init = setup, .fini = teardown, .timeout = 30);

/*
 * Runs fs-client --config=CONF with the NULL-terminated arguments. Its stdout goes to *out and
 * what it wrote on stderr (this command only) to *err; both malloc'd, free them. Returns the exit
 * code.
 */
static int run(char **out, char **err, ...) __attribute__((sentinel));
static int run(char **out, char **err, ...)
{
	char *a[ARGS_N + 1] = {NULL}, *log;
	size_t mark, n = 0;
	va_list ap;
	int rc;

	log = fs_client_log(C);
	mark = strlen(log);
	free(log);
	va_start(ap, err);
	for (char *arg = va_arg(ap, char *); arg; arg = va_arg(ap, char *)) {
		cr_assert_lt(n, ARGS_N, "more than %d arguments", ARGS_N);
		a[n++] = arg;
	}
	va_end(ap);
	/* fs_client_cmd stops at the first NULL: the unused slots end the list. */
	rc = fs_client_cmd(C, out, CMD_MS, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8],
			   a[9], NULL);
	log = fs_client_log(C);
	cr_assert_geq(strlen(log), mark);
	*err = strdup(log + mark);
	free(log);
	cr_assert_not_null(*err);
	cr_assert_neq(rc, -1, "fs-client did not exit by itself");
	return rc;
}

/* Writes len bytes to in_dir/name and puts the path in path. */
static void input(const char *name, const void *bytes, size_t len, char *path, size_t cap)
{
	FILE *f;

	snprintf(path, cap, "%s/%s", in_dir, name);
	f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	cr_assert_eq(fwrite(bytes, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

static void input_text(const char *name, const char *text, char *path, size_t cap)
{
	input(name, text, strlen(text), path, cap);
}

/* Whether s is a lowercase canonical UUID v4 (8-4-4-4-12 hex digits, version 4, variant 10). */
static int uuid_v4(const char *s, size_t len)
{
	if (len != 36)
		return 0;
	for (size_t i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f')) {
			return 0;
		}
	}
	return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

/* Splits submit's output into job ids; checks each line is one. Returns how many. */
static size_t ids_parse(const char *out, char ids[][37], size_t cap)
{
	size_t n = 0;

	for (const char *p = out; *p; n++) {
		const char *nl = strchr(p, '\n');

		cr_assert_not_null(nl, "output does not end with a newline: \"%s\"", out);
		cr_assert(uuid_v4(p, (size_t)(nl - p)), "not a lowercase UUID v4 line: \"%.*s\"",
			  (int)(nl - p), p);
		cr_assert_lt(n, cap);
		memcpy(ids[n], p, 36);
		ids[n][36] = '\0';
		p = nl + 1;
	}
	return n;
}

/* status --json, parsed (decref it). */
static json_t *status_json(void)
{
	json_t *s = fs_client_status(C);

	cr_assert_not_null(s, "status --json gave no JSON");
	cr_assert(json_is_array(json_object_get(s, "jobs")));
	cr_assert(json_is_object(json_object_get(s, "network")));
	return s;
}

/* A string member of a job of status --json ("" when absent). */
static const char *job_str(json_t *status, size_t i, const char *key)
{
	json_t *v = json_object_get(json_array_get(json_object_get(status, "jobs"), i), key);

	return json_is_string(v) ? json_string_value(v) : "";
}

static json_int_t job_int(json_t *status, size_t i, const char *key)
{
	json_t *v = json_object_get(json_array_get(json_object_get(status, "jobs"), i), key);

	cr_assert(json_is_integer(v), "jobs[%zu].%s is not an integer", i, key);
	return json_integer_value(v);
}

static size_t jobs_n(json_t *status)
{
	return json_array_size(json_object_get(status, "jobs"));
}

static int deliverer_running(void)
{
	json_t *s = status_json();
	json_t *v = json_object_get(json_object_get(s, "network"), "deliverer_running");
	int r;

	cr_assert(json_is_boolean(v), "network.deliverer_running is not a boolean");
	r = json_is_true(v);
	json_decref(s);
	return r;
}

static int starts_with(const char *s, const char *prefix)
{
	return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* --- help, version, settings ------------------------------------------------------------- */

Test(client_cli, help_lists_every_command_and_setting)
{
	char *out, *err, *doc;

	cr_assert_eq(run(&out, &err, "--help", NULL), 0, "%s", err);
	cr_expect_str_empty(err);
	doc = proc_read_file(FSG_SOURCE_DIR "/docs/client.md");
	cr_assert_gt(strlen(doc), 1000);
	for (size_t i = 0; i < COMMANDS_N; i++) {
		char want[128];

		snprintf(want, sizeof(want), "\n  %s", commands[i]);
		cr_expect_not_null(strstr(out, want), "--help lacks the command %s", commands[i]);
		/* and the commands' table in the docs has the same synopsis */
		snprintf(want, sizeof(want), "| `%s` |", commands[i]);
		cr_expect_not_null(strstr(doc, want), "docs/client.md lacks %s", want);
	}
	free(doc);
	free(out);
	free(err);
}

Test(client_cli, version_is_one_line)
{
	char *out, *err, name[32], ver[32], rest[8];
	unsigned a, b, c;

	cr_assert_eq(run(&out, &err, "--version", NULL), 0, "%s", err);
	cr_expect_str_empty(err);
	cr_assert_eq(sscanf(out, "%31s %31s%7s", name, ver, rest), 2, "\"%s\"", out);
	cr_expect_str_eq(name, "fs-client");
	cr_expect_eq(sscanf(ver, "%u.%u.%u", &a, &b, &c), 3, "version \"%s\"", ver);
	/* one line, nothing but the newline after the version */
	cr_expect_eq(strlen(out), strlen(name) + 1 + strlen(ver) + 1, "\"%s\"", out);
	cr_expect_eq(out[strlen(out) - 1], '\n');
	free(out);
	free(err);
}

/* The output of fs-client --settings-markdown (nothing else on the command line). */
static char *settings_markdown(void)
{
	char *argv[] = {FS_CLIENT, "--settings-markdown", NULL};
	char log[4300];
	int64_t start = mono_ms();
	int st = -1, running;
	pid_t pid;

	snprintf(log, sizeof(log), "%s/markdown.out", C->dir);
	pid = proc_start(argv, log);
	cr_assert_gt(pid, 0);
	while ((running = proc_running(pid, &st)) && mono_ms() - start < CMD_MS)
		proc_sleep_ms(5);
	if (running)
		st = proc_stop(pid, 1000);
	cr_assert(!running, "fs-client --settings-markdown still running");
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	return proc_read_file(log);
}

Test(client_cli, settings_markdown_is_in_docs_and_help)
{
	char *md = settings_markdown(), *help, *err, *doc;
	int rows = 0, options = 0;

	cr_assert_eq(run(&help, &err, "--help", NULL), 0, "%s", err);
	doc = proc_read_file(FSG_SOURCE_DIR "/docs/client.md");
	cr_assert_gt(strlen(md), 100, "\"%s\"", md);
	cr_assert(starts_with(md, "| setting | env |"), "%s", md);
	cr_assert_not_null(strstr(doc, md),
			   "docs/client.md must hold the output of fs-client --settings-markdown");
	for (char *row = strstr(md, "\n| `"); row; row = strstr(row + 1, "\n| `")) {
		char name[64], env[96], want[128], upper[64];

		cr_assert_eq(sscanf(row, "\n| `%63[^`]` | `%95[^`]`", name, env), 2, "%.80s", row);
		for (size_t i = 0; i <= strlen(name); i++)
			upper[i] = (char)toupper((unsigned char)name[i]);
		snprintf(want, sizeof(want), "FSG_CLIENT_%s", upper);
		cr_expect_str_eq(env, want);
		snprintf(want, sizeof(want), "\n  --%s=", name);
		cr_expect_not_null(strstr(help, want), "--help lacks --%s=", name);
		snprintf(want, sizeof(want), "; env FSG_CLIENT_%s\n", upper);
		cr_expect_not_null(strstr(help, want), "--help lacks %s", want);
		rows++;
	}
	/* the settings docs/client.md and its other sections talk about */
	cr_expect_eq(rows, 15, "%d settings in the table", rows);
	/* and --help has no setting the table lacks: --config, --help and --version besides */
	for (char *o = strstr(help, "\n  --"); o; o = strstr(o + 1, "\n  --"))
		options++;
	cr_expect_eq(options, rows + 3, "--help has %d options for %d settings", options, rows);
	free(doc);
	free(help);
	free(err);
	free(md);
}

/* --- usage errors ------------------------------------------------------------------------ */

Test(client_cli, no_command_is_a_usage_error)
{
	char *out, *err;

	cr_assert_eq(run(&out, &err, NULL), EXIT_USAGE);
	cr_expect_str_empty(out);
	cr_expect(starts_with(err, "Usage: fs-client"), "%s", err);
	for (size_t i = 0; i < COMMANDS_N; i++)
		cr_expect_not_null(strstr(err, commands[i]), "usage lacks %s", commands[i]);
	free(out);
	free(err);
}

Test(client_cli, unknown_command_is_a_usage_error)
{
	char *out, *err;

	cr_assert_eq(run(&out, &err, "frobnicate", NULL), EXIT_USAGE);
	cr_expect_str_empty(out);
	cr_expect_not_null(strstr(err, "fs-client: unknown command \"frobnicate\""), "%s", err);
	cr_expect_not_null(strstr(err, "Usage: fs-client"), "%s", err);
	free(out);
	free(err);
	/* a command's options given before it are settings, and no setting has that name */
	cr_assert_eq(run(&out, &err, "--json", "status", NULL), EXIT_USAGE);
	cr_expect_str_empty(out);
	cr_expect_not_null(strstr(err, "--json: unknown setting"), "%s", err);
	free(out);
	free(err);
}

Test(client_cli, bad_settings_are_named)
{
	static const struct {
		const char *arg, *want;
	} cases[] = {
		{"--compress_level=99", "--compress_level: compress_level: 99 above maximum 19"},
		{"--compress_level=0", "compress_level: 0 below minimum 1"},
		{"--compress=sometimes", "compress: \"sometimes\""},
		{"--retry_min=5", "retry_min: \"5\""},
		{"--no_such_setting=1", "--no_such_setting: unknown setting"},
	};
	char *out, *err;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(run(&out, &err, (char *)cases[i].arg, "status", NULL), EXIT_USAGE,
			     "%s", cases[i].arg);
		cr_expect_str_empty(out, "%s ran status anyway", cases[i].arg);
		cr_expect_not_null(strstr(err, cases[i].want), "%s: \"%s\"", cases[i].arg, err);
		cr_expect(starts_with(err, "fs-client: "), "%s", err);
		free(out);
		free(err);
	}
}

Test(client_cli, bad_environment_is_named)
{
	char *out, *err;
	int rc;

	cr_assert_eq(setenv("FSG_CLIENT_FOO", "1", 1), 0);
	rc = run(&out, &err, "status", NULL);
	unsetenv("FSG_CLIENT_FOO");
	cr_assert_eq(rc, EXIT_USAGE, "%s", err);
	cr_expect_str_empty(out);
	cr_expect_not_null(strstr(err, "env FSG_CLIENT_FOO: unknown setting"), "%s", err);
	free(out);
	free(err);

	cr_assert_eq(setenv("FSG_CLIENT_COMPRESS_LEVEL", "20", 1), 0);
	rc = run(&out, &err, "status", NULL);
	unsetenv("FSG_CLIENT_COMPRESS_LEVEL");
	cr_assert_eq(rc, EXIT_USAGE, "%s", err);
	cr_expect_not_null(strstr(err, "env FSG_CLIENT_COMPRESS_LEVEL: compress_level: 20 above"),
			   "%s", err);
	free(out);
	free(err);
	/* and without them the same command works */
	cr_assert_eq(run(&out, &err, "status", NULL), 0, "%s", err);
	free(out);
	free(err);
}

/* --- submit ------------------------------------------------------------------------------ */

Test(client_cli, submit_prints_a_uuid)
{
	char path[4400], *out, *err, ids[2][37];
	json_t *s;

	input_text("letter.txt", "Dear Sir,\n", path, sizeof(path));
	cr_assert_eq(run(&out, &err, "submit", path, NULL), 0, "%s", err);
	cr_assert_eq(ids_parse(out, ids, 2), 1, "\"%s\"", out);
	cr_expect_str_empty(err);
	s = status_json();
	cr_assert_eq(jobs_n(s), 1);
	cr_expect_str_eq(job_str(s, 0, "job_id"), ids[0]);
	json_decref(s);
	free(out);
	free(err);
}

Test(client_cli, submit_several_files_keeps_their_order)
{
	char a[4400], b[4400], c[4400], *out, *err, ids[4][37];
	static const char *const names[] = {"c-first.txt", "a-second.pdf", "b-third.ps"};
	json_t *s;

	input_text(names[0], "first\n", a, sizeof(a));
	input_text(names[1], "%PDF-1.4\nsecond\n", b, sizeof(b));
	input_text(names[2], "%!PS-Adobe-3.0\nthird\n", c, sizeof(c));
	cr_assert_eq(run(&out, &err, "submit", a, b, c, NULL), 0, "%s", err);
	cr_assert_eq(ids_parse(out, ids, 4), 3, "\"%s\"", out);
	cr_expect_str_neq(ids[0], ids[1]);
	cr_expect_str_neq(ids[1], ids[2]);
	cr_expect_str_neq(ids[0], ids[2]);
	s = status_json();
	cr_assert_eq(jobs_n(s), 3);
	for (size_t i = 0; i < 3; i++) {
		cr_expect_str_eq(job_str(s, i, "job_id"), ids[i], "job %zu", i);
		/* the base name, not the path the command was given */
		cr_expect_str_eq(job_str(s, i, "name"), names[i]);
		cr_expect_str_eq(job_str(s, i, "state"), "queued");
		cr_expect_eq(job_int(s, i, "copies"), 1);
		if (i)
			cr_expect_gt(job_int(s, i, "seq"), job_int(s, i - 1, "seq"));
	}
	cr_expect_geq(job_int(s, 0, "seq"), 1);
	json_decref(s);
	free(out);
	free(err);
}

Test(client_cli, submit_honours_name_copies_and_format)
{
	char path[4400], *out, *err, ids[2][37];
	json_t *s;

	input_text("draft.txt", "plain words\n", path, sizeof(path));
	/* the format given wins over the one detected (text/plain) */
	cr_assert_eq(run(&out, &err, "submit", "--name=Quarterly report", "--copies=7",
			 "--format=application/postscript", path, NULL), 0, "%s", err);
	cr_assert_eq(ids_parse(out, ids, 2), 1);
	free(out);
	free(err);
	/* the options may also follow the file, and 999 is the highest number of copies */
	cr_assert_eq(run(&out, &err, "submit", path, "--copies=999", NULL), 0, "%s", err);
	cr_assert_eq(ids_parse(out, ids + 1, 1), 1);
	s = status_json();
	cr_assert_eq(jobs_n(s), 2);
	cr_expect_str_eq(job_str(s, 0, "job_id"), ids[0]);
	cr_expect_str_eq(job_str(s, 0, "name"), "Quarterly report");
	cr_expect_eq(job_int(s, 0, "copies"), 7);
	cr_expect_str_eq(job_str(s, 0, "format"), "application/postscript");
	cr_expect_str_eq(job_str(s, 1, "name"), "draft.txt");
	cr_expect_eq(job_int(s, 1, "copies"), 999);
	cr_expect_str_eq(job_str(s, 1, "format"), "text/plain");
	json_decref(s);
	free(out);
	free(err);
}

Test(client_cli, submit_refuses_bad_copies)
{
	static const char *const bad[] = {"--copies=0", "--copies=1000", "--copies=-1",
					  "--copies=two", "--copies="};
	char path[4400], *out, *err;

	input_text("one.txt", "one\n", path, sizeof(path));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(run(&out, &err, "submit", (char *)bad[i], path, NULL), EXIT_USAGE,
			     "%s", bad[i]);
		cr_expect_str_empty(out, "%s", bad[i]);
		cr_expect_not_null(strstr(err, "--copies: a number from 1 to 999"), "%s: %s",
				   bad[i], err);
		free(out);
		free(err);
	}
	cr_expect_eq(fs_client_queued(C), 0);
}

Test(client_cli, submit_refuses_an_unknown_format)
{
	char path[4400], *out, *err;

	input_text("one.txt", "one\n", path, sizeof(path));
	cr_assert_eq(run(&out, &err, "submit", "--format=application/x-foo", path, NULL),
		     EXIT_FAIL, "%s", err);
	cr_expect_str_empty(out);
	cr_expect_not_null(strstr(err, "not queued"), "%s", err);
	cr_expect_not_null(strstr(err, "application/x-foo"), "%s", err);
	cr_expect_eq(fs_client_queued(C), 0);
	free(out);
	free(err);
}

Test(client_cli, submit_refuses_empty_directory_and_missing_files)
{
	static const struct {
		const char *name, *want;
	} cases[] = {
		{"empty.txt", "is empty"},
		{"", "is a directory"}, /* in_dir itself */
		{"missing.txt", "No such file or directory"},
	};
	char path[4400], *out, *err;

	input("empty.txt", "", 0, path, sizeof(path));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cases[i].name[0])
			snprintf(path, sizeof(path), "%s/%s", in_dir, cases[i].name);
		else
			snprintf(path, sizeof(path), "%s", in_dir);
		cr_assert_eq(run(&out, &err, "submit", path, NULL), EXIT_FAIL, "%s: %s", path,
			     err);
		cr_expect_str_empty(out);
		cr_expect_not_null(strstr(err, "not queued"), "%s", err);
		cr_expect_not_null(strstr(err, path), "%s", err);
		cr_expect_not_null(strstr(err, cases[i].want), "%s", err);
		free(out);
		free(err);
	}
	cr_expect_eq(fs_client_queued(C), 0);
}

Test(client_cli, submit_queues_the_other_files_when_one_fails)
{
	char a[4400], b[4400], missing[4400], *out, *err, ids[3][37];
	json_t *s;

	input_text("before.txt", "before\n", a, sizeof(a));
	input_text("after.txt", "after\n", b, sizeof(b));
	snprintf(missing, sizeof(missing), "%s/missing.pdf", in_dir);
	cr_assert_eq(run(&out, &err, "submit", a, missing, b, NULL), EXIT_FAIL, "%s", err);
	cr_assert_eq(ids_parse(out, ids, 3), 2, "\"%s\"", out);
	cr_expect(strstr(err, "not queued: ") && strstr(err, "missing.pdf: No such file"), "%s", err);
	cr_expect_null(strstr(err, "before.txt"), "%s", err);
	cr_expect_null(strstr(err, "after.txt"), "%s", err);
	s = status_json();
	cr_assert_eq(jobs_n(s), 2);
	cr_expect_str_eq(job_str(s, 0, "job_id"), ids[0]);
	cr_expect_str_eq(job_str(s, 0, "name"), "before.txt");
	cr_expect_str_eq(job_str(s, 1, "job_id"), ids[1]);
	cr_expect_str_eq(job_str(s, 1, "name"), "after.txt");
	json_decref(s);
	free(out);
	free(err);
}

Test(client_cli, submit_name_needs_one_file)
{
	char a[4400], b[4400], *out, *err;

	input_text("a.txt", "a\n", a, sizeof(a));
	input_text("b.txt", "b\n", b, sizeof(b));
	cr_assert_eq(run(&out, &err, "submit", "--name=Both", a, b, NULL), EXIT_USAGE, "%s", err);
	cr_expect_str_empty(out);
	cr_expect_not_null(strstr(err, "--name"), "%s", err);
	free(out);
	free(err);
	cr_assert_eq(run(&out, &err, "submit", NULL), EXIT_USAGE, "%s", err);
	cr_expect_not_null(strstr(err, "submit: no file given"), "%s", err);
	free(out);
	free(err);
	cr_assert_eq(run(&out, &err, "submit", "--nmae=x", a, NULL), EXIT_USAGE, "%s", err);
	cr_expect_str_empty(out);
	free(out);
	free(err);
	cr_expect_eq(fs_client_queued(C), 0);
}

/* A string literal's bytes and length, NULs inside included. */
#define B(s) s, sizeof(s) - 1

Test(client_cli, submit_detects_the_format)
{
	static const struct {
		const char *name;
		const char *bytes;
		size_t len;
		const char *format;
	} cases[] = {
		{"doc.pdf", B("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"), "application/pdf"},
		{"doc.ps", B("%!PS-Adobe-3.0\n%%Pages: 1\n"), "application/postscript"},
		{"doc.pcl", B("\033E\033&l0O\033(s0p12h10v0s0b3T"), "application/vnd.hp-pcl"},
		{"pjl.ps", B("\033%-12345X@PJL JOB\r\n@PJL ENTER LANGUAGE=POSTSCRIPT\r\n%!PS\n"),
		 "application/postscript"},
		{"pjl.pcl", B("\033%-12345X@PJL\r\n@PJL ENTER LANGUAGE=PCL\r\n\033E"),
		 "application/vnd.hp-pcl"},
		{"page.pwg", B("RaS2PwgRaster\0\0\0"), "image/pwg-raster"},
		{"page.urf", B("UNIRAST\0\0\0\0\1"), "image/urf"},
		{"notes", B("Dobr\xc3\xbd den,\tworld\r\n\fpage two\n"), "text/plain"},
	};
	char paths[10][4400], noise[4400], *out, *err, ids[12][37];
	size_t n = sizeof(cases) / sizeof(cases[0]);
	json_t *s;

	cr_assert_leq(n, 9);
	for (size_t i = 0; i < n; i++)
		input(cases[i].name, cases[i].bytes, cases[i].len, paths[i], sizeof(paths[i]));
	/* random binary: no format announces itself, the printer decides */
	snprintf(noise, sizeof(noise), "%s/noise.bin", in_dir);
	cr_assert_eq(fs_client_make_file(noise, 5000, 7, 1), 0);
	cr_assert_eq(run(&out, &err, "submit", paths[0], paths[1], paths[2], paths[3], paths[4],
			 paths[5], paths[6], paths[7], noise, NULL), 0, "%s", err);
	cr_assert_eq(ids_parse(out, ids, 12), n + 1, "\"%s\"", out);
	s = status_json();
	cr_assert_eq(jobs_n(s), n + 1);
	for (size_t i = 0; i < n; i++) {
		cr_expect_str_eq(job_str(s, i, "name"), cases[i].name);
		cr_expect_str_eq(job_str(s, i, "format"), cases[i].format, "%s", cases[i].name);
		cr_expect_eq(job_int(s, i, "size"), (json_int_t)cases[i].len, "%s", cases[i].name);
	}
	cr_expect_str_eq(job_str(s, n, "format"), "application/octet-stream");
	json_decref(s);
	free(out);
	free(err);
}

/* --- status ------------------------------------------------------------------------------ */

Test(client_cli, status_of_an_empty_queue)
{
	char *out, *err;
	json_t *s, *net;

	cr_assert_eq(run(&out, &err, "status", NULL), 0, "%s", err);
	cr_expect_not_null(strstr(out, "\nqueue: empty\n"), "%s", out);
	cr_expect(starts_with(out, "network: not tried yet\n"), "%s", out);
	cr_expect_str_empty(err);
	free(out);
	free(err);
	s = status_json();
	cr_expect_eq(jobs_n(s), 0);
	net = json_object_get(s, "network");
	cr_expect(json_is_false(json_object_get(net, "online")));
	cr_expect(json_is_false(json_object_get(net, "deliverer_running")));
	cr_expect(json_is_null(json_object_get(net, "checked_at")));
	json_decref(s);
	/* status takes no argument */
	cr_assert_eq(run(&out, &err, "status", "extra", NULL), EXIT_USAGE);
	cr_expect_not_null(strstr(err, "unexpected argument extra"), "%s", err);
	free(out);
	free(err);
}

Test(client_cli, status_lists_the_jobs)
{
	char a[4400], b[4400], *out, *err, ids[3][37];
	const char *names[] = {"minutes.txt", "My Slides"};

	input_text("minutes.txt", "minutes\n", a, sizeof(a));
	input_text("slides.pdf", "%PDF-1.5\n", b, sizeof(b));
	cr_assert_eq(run(&out, &err, "submit", a, NULL), 0, "%s", err);
	cr_assert_eq(ids_parse(out, ids, 3), 1);
	free(out);
	free(err);
	cr_assert_eq(run(&out, &err, "submit", "--name=My Slides", b, NULL), 0, "%s", err);
	cr_assert_eq(ids_parse(out, ids + 1, 2), 1);
	free(out);
	free(err);
	cr_assert_eq(run(&out, &err, "status", NULL), 0, "%s", err);
	cr_expect_null(strstr(out, "queue: empty"), "%s", out);
	cr_expect_not_null(strstr(out, "SEQ"), "%s", out);
	for (size_t i = 0; i < 2; i++) {
		char shortid[9], *line, text[256];
		char job[16], state[16];
		unsigned long seq;

		snprintf(shortid, sizeof(shortid), "%.8s", ids[i]);
		line = strstr(out, shortid);
		cr_assert_not_null(line, "no line for %s: %s", shortid, out);
		while (line > out && line[-1] != '\n')
			line--;
		snprintf(text, sizeof(text), "%.*s", (int)strcspn(line, "\n"), line);
		cr_assert_eq(sscanf(text, "%lu %15s %15s", &seq, job, state), 3, "%s", text);
		cr_expect_eq(seq, i + 1, "%s", text);
		cr_expect_str_eq(job, shortid);
		cr_expect_str_eq(state, "queued");
		cr_expect_not_null(strstr(text, names[i]), "%s", text);
		/* the full id is not shown: the short one identifies the job for cancel */
		cr_expect_null(strstr(out, ids[i]), "%s", out);
	}
	free(out);
	free(err);
}

Test(client_cli, status_json_has_every_documented_member)
{
	static const char *const strs[] = {"job_id", "name", "format", "state", "encoding",
					   "destination", "error", "submitted_at"};
	static const char *const ints[] = {"seq", "copies", "size", "upload_length", "delivered"};
	char a[4400], b[4400], *out, *err, ids[3][37];
	int end = -1;
	json_t *s, *job, *net, *v;
	time_t now = time(NULL);
	struct tm tm;

	/* report-like text: zstd saves far more than 10 % */
	snprintf(a, sizeof(a), "%s/report.txt", in_dir);
	cr_assert_eq(fs_client_make_file(a, 200000, 3, 0), 0);
	/* random bytes: kept as they are */
	snprintf(b, sizeof(b), "%s/photo.bin", in_dir);
	cr_assert_eq(fs_client_make_file(b, 30000, 4, 1), 0);
	cr_assert_eq(run(&out, &err, "submit", a, b, NULL), 0, "%s", err);
	cr_assert_eq(ids_parse(out, ids, 3), 2);
	s = status_json();
	cr_assert_eq(jobs_n(s), 2);
	for (size_t i = 0; i < 2; i++) {
		job = json_array_get(json_object_get(s, "jobs"), i);
		for (size_t k = 0; k < sizeof(strs) / sizeof(strs[0]); k++)
			cr_expect(json_is_string(json_object_get(job, strs[k])), "jobs[%zu].%s", i,
				  strs[k]);
		for (size_t k = 0; k < sizeof(ints) / sizeof(ints[0]); k++)
			cr_expect(json_is_integer(json_object_get(job, ints[k])), "jobs[%zu].%s", i,
				  ints[k]);
		cr_expect(json_is_number(json_object_get(job, "saved_percent")), "%zu", i);
		v = json_object_get(job, "updated_at");
		cr_expect(v && (json_is_null(v) || json_is_string(v)), "jobs[%zu].updated_at", i);
		cr_expect_str_eq(job_str(s, i, "state"), "queued");
		cr_expect_eq(job_int(s, i, "delivered"), 0);
		cr_expect_str_empty(job_str(s, i, "destination"));
		cr_expect_str_empty(job_str(s, i, "error"));
		/* submitted_at: UTC, to the second, around now */
		memset(&tm, 0, sizeof(tm));
		cr_assert_eq(sscanf(job_str(s, i, "submitted_at"), "%d-%d-%dT%d:%d:%dZ%n",
				    &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
				    &tm.tm_sec, &end), 6, "%s", job_str(s, i, "submitted_at"));
		/* "YYYY-MM-DDTHH:MM:SSZ" and nothing after it */
		cr_expect_eq(end, 20, "%s", job_str(s, i, "submitted_at"));
		cr_expect_eq(strlen(job_str(s, i, "submitted_at")), 20);
		tm.tm_year -= 1900;
		tm.tm_mon -= 1;
		cr_expect_leq(labs((long)(timegm(&tm) - now)), 120, "%s",
			      job_str(s, i, "submitted_at"));
	}
	cr_expect_eq(job_int(s, 0, "size"), 200000);
	cr_expect_str_eq(job_str(s, 0, "encoding"), "zstd");
	cr_expect_lt(job_int(s, 0, "upload_length"), 200000 * 9 / 10);
	cr_expect_gt(json_number_value(json_object_get(json_array_get(json_object_get(s, "jobs"),
								       0), "saved_percent")), 10.0);
	cr_expect_eq(job_int(s, 1, "size"), 30000);
	cr_expect_str_eq(job_str(s, 1, "encoding"), "identity");
	cr_expect_eq(job_int(s, 1, "upload_length"), 30000);
	cr_expect_eq(json_number_value(json_object_get(json_array_get(json_object_get(s, "jobs"),
								       1), "saved_percent")), 0.0);
	net = json_object_get(s, "network");
	cr_expect(json_is_boolean(json_object_get(net, "online")));
	cr_expect(json_is_string(json_object_get(net, "location")));
	cr_expect(json_is_string(json_object_get(net, "address")));
	cr_expect(json_is_string(json_object_get(net, "message")));
	v = json_object_get(net, "checked_at");
	cr_expect(v && (json_is_null(v) || json_is_string(v)));
	cr_expect(json_is_boolean(json_object_get(net, "deliverer_running")));
	json_decref(s);
	free(out);
	free(err);
}

/* --- cancel ------------------------------------------------------------------------------ */

/* Submits n copies of a small text file; writes their ids. */
static void submit_n(size_t n, char ids[][37])
{
	char path[4400], *out, *err;

	input_text("job.txt", "a job\n", path, sizeof(path));
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(run(&out, &err, "submit", path, NULL), 0, "%s", err);
		cr_assert_eq(ids_parse(out, ids + i, 1), 1);
		free(out);
		free(err);
	}
}

Test(client_cli, cancel_by_id_and_by_prefix)
{
	char ids[3][37], prefix[9], *out, *err, want[64];
	json_t *s;

	submit_n(3, ids);
	cr_assert_eq(run(&out, &err, "cancel", ids[1], NULL), 0, "%s", err);
	snprintf(want, sizeof(want), "%s cancelled\n", ids[1]);
	cr_expect_str_eq(out, want);
	free(out);
	free(err);
	snprintf(prefix, sizeof(prefix), "%.8s", ids[0]);
	cr_assert_eq(run(&out, &err, "cancel", prefix, NULL), 0, "%s", err);
	snprintf(want, sizeof(want), "%s cancelled\n", ids[0]);
	cr_expect_str_eq(out, want);
	free(out);
	free(err);
	s = status_json();
	cr_assert_eq(jobs_n(s), 1);
	cr_expect_str_eq(job_str(s, 0, "job_id"), ids[2]);
	json_decref(s);
	/* gone: cancelling again finds nothing */
	cr_assert_eq(run(&out, &err, "cancel", ids[1], NULL), EXIT_FAIL, "%s", err);
	cr_expect_not_null(strstr(err, "no such queued job"), "%s", err);
	free(out);
	free(err);
}

Test(client_cli, cancel_unknown_or_missing_id)
{
	char ids[1][37], short7[8], *out, *err;

	submit_n(1, ids);
	cr_assert_eq(run(&out, &err, "cancel", "00000000-0000-4000-8000-000000000000", NULL),
		     EXIT_FAIL, "%s", err);
	cr_expect_str_empty(out);
	cr_expect_not_null(strstr(err, "cancel 00000000-0000-4000-8000-000000000000: "
				       "no such queued job"), "%s", err);
	free(out);
	free(err);
	/* a prefix must have 8 characters at least */
	snprintf(short7, sizeof(short7), "%.7s", ids[0]);
	cr_assert_eq(run(&out, &err, "cancel", short7, NULL), EXIT_FAIL, "%s", err);
	free(out);
	free(err);
	cr_assert_eq(run(&out, &err, "cancel", NULL), EXIT_USAGE, "%s", err);
	cr_expect_not_null(strstr(err, "cancel: no job id given"), "%s", err);
	free(out);
	free(err);
	/* one unknown id among good ones: the good ones go, the exit code says one did not */
	cr_assert_eq(run(&out, &err, "cancel", "nonsense", ids[0], NULL), EXIT_FAIL, "%s", err);
	cr_expect_not_null(strstr(out, ids[0]), "%s", out);
	cr_expect_not_null(strstr(err, "cancel nonsense: "), "%s", err);
	free(out);
	free(err);
	cr_expect_eq(fs_client_queued(C), 0);
}

/* --- locations --------------------------------------------------------------------------- */

Test(client_cli, locations_shows_current_and_order)
{
	char *out, *err, want[4400], *office, *def;

	cr_assert_eq(run(&out, &err, "locations", NULL), 0, "%s", err);
	snprintf(want, sizeof(want), "locations file: %s\n", C->locations_file);
	cr_expect(starts_with(out, want), "%s", out);
	office = strstr(out, "\noffice *current* (Office)  [tried first]\n");
	def = strstr(out, "\nDefault (Public server)  [then]\n");
	cr_expect_not_null(office, "%s", out);
	cr_expect_not_null(def, "%s", out);
	cr_expect(office < def, "%s", out);
	snprintf(want, sizeof(want), "\n    1. %s\n", addr_office);
	cr_expect(office && strstr(office, want) && strstr(office, want) < def, "%s", out);
	snprintf(want, sizeof(want), "\n    1. %s\n", addr_default);
	cr_expect(def && strstr(def, want), "%s", out);
	free(out);
	free(err);
}

/* locations --json [more args], parsed. */
static json_t *locations_json(const char *arg)
{
	char *out, *err;
	json_t *j;

	cr_assert_eq(run(&out, &err, "locations", "--json", (char *)arg, NULL), 0, "%s", err);
	j = json_loads(out, 0, NULL);
	cr_assert_not_null(j, "%s", out);
	free(out);
	free(err);
	return j;
}

Test(client_cli, locations_json_and_override)
{
	json_t *j = locations_json(NULL), *locs, *order;

	locs = json_object_get(j, "locations");
	cr_assert_eq(json_array_size(locs), 2);
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(locs, 0), "id")),
			 "office");
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(locs, 1), "name")),
			 "Public server");
	cr_expect_str_eq(json_string_value(json_array_get(json_object_get(json_array_get(locs, 0),
								       "addresses"), 0)),
			 addr_office);
	cr_expect_str_eq(json_string_value(json_object_get(j, "current")), "office");
	order = json_object_get(j, "order");
	cr_assert_eq(json_array_size(order), 2);
	cr_expect_str_eq(json_string_value(json_array_get(order, 0)), "office");
	cr_expect_str_eq(json_string_value(json_array_get(order, 1)), "Default");
	json_decref(j);

	/* --location replaces the current one for this command: Default alone */
	j = locations_json("--location=Default");
	order = json_object_get(j, "order");
	cr_assert_eq(json_array_size(order), 1);
	cr_expect_str_eq(json_string_value(json_array_get(order, 0)), "Default");
	/* the file is unchanged */
	cr_expect_str_eq(json_string_value(json_object_get(j, "current")), "office");
	json_decref(j);
}

Test(client_cli, locations_override_in_text)
{
	char *out, *err;

	cr_assert_eq(run(&out, &err, "locations", "--location", "Default", NULL), 0, "%s", err);
	cr_expect_not_null(strstr(out, "\nDefault (Public server)  [tried first]\n"), "%s", out);
	cr_expect_not_null(strstr(out, "\noffice *current* (Office)\n"), "%s", out);
	free(out);
	free(err);
}

Test(client_cli, unknown_location_is_a_usage_error)
{
	char *out, *err;

	cr_assert_eq(run(&out, &err, "locations", "--location", "nowhere", NULL), EXIT_USAGE,
		     "%s", err);
	cr_expect_str_empty(out);
	cr_expect_not_null(strstr(err, "no location \"nowhere\""), "%s", err);
	free(out);
	free(err);
	cr_assert_eq(run(&out, &err, "deliver", "--location=nowhere", NULL), EXIT_USAGE, "%s",
		     err);
	cr_expect_not_null(strstr(err, "no location \"nowhere\""), "%s", err);
	free(out);
	free(err);
	/* the setting does the same as the option */
	cr_assert_eq(run(&out, &err, "--location=nowhere", "locations", NULL), EXIT_USAGE, "%s",
		     err);
	cr_expect_not_null(strstr(err, "no location \"nowhere\""), "%s", err);
	free(out);
	free(err);
}

Test(client_cli, broken_locations_file_is_named)
{
	static const struct {
		const char *json, *want;
	} cases[] = {
		{"{\"current\": \"office\",\n", "not valid JSON"},
		{"{\"locations\": [{\"id\": \"Default\", "
		 "\"addresses\": [\"http://127.0.0.1:9\"]}]}",
		 "locations[0].addresses[0]: not an https URL"},
		{"{\"curent\": \"Default\", \"locations\": [{\"id\": \"Default\", "
		 "\"addresses\": [\"https://127.0.0.1:9\"]}]}",
		 "unknown member \"curent\""},
	};
	static const char *const cmds[] = {"locations", "deliver"};
	char *out, *err, want[4400];

	snprintf(want, sizeof(want), "fs-client: %s: ", C->locations_file);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(fs_client_set_locations(C, cases[i].json), 0);
		for (size_t k = 0; k < 2; k++) {
			cr_assert_eq(run(&out, &err, (char *)cmds[k], NULL), EXIT_FAIL,
				     "%s with %s: %s", cmds[k], cases[i].json, err);
			cr_expect_str_empty(out);
			cr_expect(starts_with(err, want), "%s", err);
			cr_expect_not_null(strstr(err, cases[i].want), "%s", err);
			free(out);
			free(err);
		}
	}
}

/* --- deliver ----------------------------------------------------------------------------- */

Test(client_cli, deliver_an_empty_queue)
{
	char *out, *err;

	cr_assert_eq(fs_client_set_token(C, "tok"), 0);
	cr_assert_eq(run(&out, &err, "deliver", NULL), 0, "%s", err);
	free(out);
	free(err);
}

Test(client_cli, deliver_without_token)
{
	char ids[1][37], *out, *err;
	json_t *s;

	submit_n(1, ids);
	/* no token file, no token setting, no FSG_CLIENT_TOKEN */
	cr_assert_eq(run(&out, &err, "--token_file=", "deliver", NULL), EXIT_FAIL, "%s", err);
	cr_expect_not_null(strstr(err, "no token"), "%s", err);
	free(out);
	free(err);
	s = status_json();
	cr_assert_eq(jobs_n(s), 1);
	cr_expect_str_eq(job_str(s, 0, "job_id"), ids[0]);
	cr_expect(starts_with(job_str(s, 0, "error"), "no token"), "%s", job_str(s, 0, "error"));
	cr_expect_eq(job_int(s, 0, "delivered"), 0);
	json_decref(s);
	cr_assert_eq(run(&out, &err, "status", NULL), 0, "%s", err);
	cr_expect_not_null(strstr(out, "\n     no token"), "%s", out);
	free(out);
	free(err);

	/* token_file names a file that is not there (yet) */
	cr_assert_eq(run(&out, &err, "deliver", NULL), EXIT_FAIL, "%s", err);
	cr_expect_not_null(strstr(err, "cannot read the token file"), "%s", err);
	cr_expect_not_null(strstr(err, C->token_file), "%s", err);
	free(out);
	free(err);
	cr_expect_eq(fs_client_queued(C), 1);
}

/* Delivers once; expects exit 3 and every job waiting for network. */
static void deliver_waits(const char *setting)
{
	char *out, *err;
	json_t *s, *net;
	int64_t start = mono_ms();

	cr_assert_eq(run(&out, &err, (char *)setting, "deliver", NULL), EXIT_PENDING, "%s", err);
	/* refused connections: no timeout to wait for */
	cr_expect_lt(mono_ms() - start, 5000);
	free(out);
	free(err);
	s = status_json();
	cr_assert_geq(jobs_n(s), 1);
	for (size_t i = 0; i < jobs_n(s); i++) {
		cr_expect(starts_with(job_str(s, i, "error"), "waiting for network"), "%s",
			  job_str(s, i, "error"));
		cr_expect_str_eq(job_str(s, i, "state"), "waiting");
	}
	net = json_object_get(s, "network");
	cr_expect(json_is_false(json_object_get(net, "online")));
	cr_expect(starts_with(json_string_value(json_object_get(net, "message")),
			      "waiting for network"), "%s",
		  json_string_value(json_object_get(net, "message")));
	cr_expect(json_is_string(json_object_get(net, "checked_at")));
	json_decref(s);
}

Test(client_cli, deliver_with_the_address_dead)
{
	char ids[2][37];

	submit_n(2, ids);
	cr_assert_eq(fs_client_set_token(C, "tok"), 0);
	deliver_waits("--log_level=warn");
	cr_expect_eq(fs_client_queued(C), 2);
}

Test(client_cli, deliver_takes_the_token_from_the_environment)
{
	char ids[1][37];

	submit_n(1, ids);
	cr_assert_eq(setenv("FSG_CLIENT_TOKEN", "not-checked-as-nothing-answers", 1), 0);
	deliver_waits("--token_file=");
	unsetenv("FSG_CLIENT_TOKEN");
	cr_expect_eq(fs_client_queued(C), 1);
}

/* --- run --------------------------------------------------------------------------------- */

/* Stops run with SIGTERM; expects exit 0 well within 2 s. */
static void run_stop_clean(void)
{
	int64_t start = mono_ms();
	int st = fs_client_run_stop(C, 2000);

	cr_assert_neq(st, -1);
	cr_expect(WIFEXITED(st), "run did not exit by itself on SIGTERM (status %#x)", st);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "run exited with %d", WEXITSTATUS(st));
	cr_expect_lt(mono_ms() - start, 2000);
}

Test(client_cli, one_deliverer_at_a_time)
{
	char ids[1][37], *out, *err;

	submit_n(1, ids);
	cr_assert_eq(fs_client_set_token(C, "tok"), 0);
	cr_assert_eq(fs_client_run_start(C), 0);
	proc_sleep_ms(300);
	cr_assert_eq(run(&out, &err, "deliver", NULL), EXIT_BUSY, "%s", err);
	cr_expect_not_null(strstr(err, "another fs-client is delivering"), "%s", err);
	free(out);
	free(err);
	cr_expect(deliverer_running());
	cr_assert_eq(run(&out, &err, "status", NULL), 0, "%s", err);
	cr_expect_null(strstr(out, "no deliverer running"), "%s", out);
	free(out);
	free(err);
	run_stop_clean();
	cr_expect(!deliverer_running());
	/* the lock went with it: deliver runs again */
	cr_assert_eq(run(&out, &err, "deliver", NULL), EXIT_PENDING, "%s", err);
	free(out);
	free(err);
}

Test(client_cli, submit_while_run_is_running)
{
	char path[4400], *out, *err, ids[2][37];
	int64_t deadline;
	int st, seen = 0;
	json_t *s;

	cr_assert_eq(fs_client_set_token(C, "tok"), 0);
	cr_assert_eq(fs_client_run_start(C), 0);
	/* past run's first passes over the empty queue: it now waits for a new job, or 30 s */
	proc_sleep_ms(1500);
	input_text("late.txt", "queued while run waits\n", path, sizeof(path));
	cr_assert_eq(run(&out, &err, "submit", path, NULL), 0, "%s", err);
	cr_assert_eq(ids_parse(out, ids, 2), 1);
	free(out);
	free(err);
	/*
	 * With an empty queue run waits for new jobs, looking again on its own only every 30 s:
	 * seeing it try this one within 3 s means the submission woke it.
	 */
	deadline = mono_ms() + 3000;
	while (!seen && mono_ms() < deadline) {
		s = status_json();
		cr_assert_eq(jobs_n(s), 1);
		cr_assert_str_eq(job_str(s, 0, "job_id"), ids[0]);
		seen = starts_with(job_str(s, 0, "error"), "waiting for network");
		json_decref(s);
		if (!seen)
			proc_sleep_ms(100);
	}
	cr_expect(seen, "run did not try the new job");
	cr_expect_eq(proc_running(C->run_pid, &st), 1, "run ended (status %#x)", st);
	cr_expect(deliverer_running());
	run_stop_clean();
	cr_expect_eq(fs_client_queued(C), 1);
}
