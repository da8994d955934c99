/* Tests common/config.c: every type, every source and its priority, the exact error lines. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "tests/lib/proc.h"

struct settings {
	int flag;
	int64_t port;
	int64_t offset;
	uint64_t spool_limit;
	uint64_t big;
	int64_t timeout;
	int64_t wait;
	char *label;
	char *dir;
	char *token;
	int tls;
	char *node;
};

#define F(field) offsetof(struct settings, field)
#define HOUR INT64_C(3600000)

static const struct config_setting table[] = {
	{ "flag", CONFIG_BOOL, "false", 0, 0, NULL, F(flag), "Turns the thing on." },
	{ "port", CONFIG_INT, "8080", 1, 65535, NULL, F(port), "TCP port to listen on." },
	{ "offset", CONFIG_INT, "0", 0, 0, NULL, F(offset), "Any integer." },
	{ "spool_limit", CONFIG_SIZE, "1G", 1024, INT64_C(1) << 40, NULL, F(spool_limit),
	  "Bytes the spool may hold." },
	{ "big", CONFIG_SIZE, "0", 0, 0, NULL, F(big), "Any size." },
	{ "timeout", CONFIG_DURATION, "30s", 100, 24 * HOUR, NULL, F(timeout),
	  "How long to wait." },
	{ "wait", CONFIG_DURATION, "0ms", 0, 0, NULL, F(wait), "Any duration." },
	{ "label", CONFIG_STRING, "", 0, 0, NULL, F(label), "A free text." },
	{ "dir", CONFIG_PATH, "", 0, 0, NULL, F(dir), "A directory." },
	{ "token", CONFIG_SECRET, "", 0, 0, NULL, F(token), "File holding the token." },
	{ "tls", CONFIG_ENUM, "off", 0, 0, "off|optional|required", F(tls),
	  "Client certificates." },
	{ "node", CONFIG_STRING, NULL, 0, 0, NULL, F(node), "Name of this node." },
};
#define NSET (sizeof(table) / sizeof(table[0]))

static char *tmp;     /* the test's directory, also its current directory */
static char cwd[4096]; /* getcwd() of it, as the library sees it */

static void env_clear(void)
{
	extern char **environ;
	char **e;

	for (;;) {
		for (e = environ; *e; e++)
			if (strncmp(*e, "FSGT_", 5) == 0)
				break;
		if (!*e)
			return;
		{
			char name[256];
			size_t len = strcspn(*e, "=");

			cr_assert_lt(len, sizeof(name));
			memcpy(name, *e, len);
			name[len] = '\0';
			unsetenv(name);
		}
	}
}

static void setup(void)
{
	tmp = proc_tempdir("cfg");
	cr_assert_not_null(tmp);
	cr_assert_eq(chdir(tmp), 0);
	cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
	env_clear();
	/* the one required setting, given here so each test can focus on the others */
	setenv("FSGT_NODE", "n1", 1);
}

static void teardown(void)
{
	cr_assert_eq(chdir("/"), 0);
	proc_rmtree(tmp);
	free(tmp);
}

TestSuite(config, .init = setup, .fini = teardown);

static void file_write(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	cr_assert_not_null(f, "fopen %s", path);
	cr_assert_eq(fwrite(data, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

static void file_puts(const char *path, const char *data)
{
	file_write(path, data, strlen(data));
}

/* What one config_load printed. */
static char *out_text, *err_text;

/* Runs config_load on "fs-test" plus the NULL-terminated args. */
static int load_with(const struct config_setting *t, size_t n, struct settings *s,
		     const char *const *args)
{
	char *argv[32];
	size_t olen, elen;
	FILE *out, *err;
	int argc = 0, rc;

	free(out_text);
	free(err_text);
	out = open_memstream(&out_text, &olen);
	err = open_memstream(&err_text, &elen);
	cr_assert(out && err);
	argv[argc++] = "fs-test";
	for (; args && *args; args++) {
		cr_assert_lt(argc, 31);
		argv[argc++] = (char *)*args;
	}
	argv[argc] = NULL;
	memset(s, 0x5a, sizeof(*s)); /* garbage: config_load must not trust or free it */
	rc = config_load(t, n, "FSGT", "fs-test", "1.2.3", argc, argv, s, out, err);
	fclose(out);
	fclose(err);
	return rc;
}

static int load(struct settings *s, const char *const *args)
{
	return load_with(table, NSET, s, args);
}

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NOARGS ((const char *const *)NULL)

/* A field as text through its table entry, so cases can state the value they want. */
static const char *field_text(const struct settings *s, const char *name)
{
	static char buf[128];
	const struct config_setting *c = NULL;
	const char *p;
	size_t i;

	for (i = 0; i < NSET; i++)
		if (strcmp(table[i].name, name) == 0)
			c = &table[i];
	cr_assert_not_null(c, "no setting %s", name);
	p = (const char *)s + c->offset;
	switch (c->type) {
	case CONFIG_BOOL:
	case CONFIG_ENUM:
		snprintf(buf, sizeof(buf), "%d", *(const int *)p);
		return buf;
	case CONFIG_INT:
	case CONFIG_DURATION:
		snprintf(buf, sizeof(buf), "%" PRId64, *(const int64_t *)p);
		return buf;
	case CONFIG_SIZE:
		snprintf(buf, sizeof(buf), "%" PRIu64, *(const uint64_t *)p);
		return buf;
	default:
		return *(char *const *)p;
	}
}

/* After an error or --help no string is left allocated or dangling. */
static void expect_strings_null(const struct settings *s)
{
	cr_expect_null(s->label);
	cr_expect_null(s->dir);
	cr_expect_null(s->token);
	cr_expect_null(s->node);
}

enum { SRC_ARG = 1, SRC_ENV = 2, SRC_FILE = 4, SRC_ALL = 7 };

struct value_case {
	const char *name;
	const char *value;
	const char *want; /* stored value as text, or NULL when rejected */
	const char *err;  /* the error after "fs-test: SOURCE: " */
	int src;          /* sources the case is run through (a file trims blanks, splits lines) */
};

#define OK(n, v, w) { n, v, w, NULL, SRC_ALL }
#define OKS(n, v, w, src) { n, v, w, NULL, src }
#define BAD(n, v, e) { n, v, NULL, e, SRC_ALL }
#define BADS(n, v, e, src) { n, v, NULL, e, src }
#define NOTBOOL(v) BAD("flag", v, "flag: \"" v "\": not a boolean (use true or false)")
#define NOTINT(n, v) BAD(n, v, n ": \"" v "\": not an integer")
#define NOTSIZE(n, v) BAD(n, v, n ": \"" v "\": not a size (use K, M, G or T)")
#define NOTDUR(n, v) BAD(n, v, n ": \"" v "\": not a duration (use ms, s, m or h, as in 30s)")
#define RANGE(n, v) BAD(n, v, n ": \"" v "\": out of range")
#define NOTENUM(v) BAD("tls", v, "tls: \"" v "\": not one of off|optional|required")

static const struct value_case value_cases[] = {
	OK("flag", "true", "1"),
	OK("flag", "TRUE", "1"),
	OK("flag", "yes", "1"),
	OK("flag", "On", "1"),
	OK("flag", "1", "1"),
	OK("flag", "false", "0"),
	OK("flag", "No", "0"),
	OK("flag", "OFF", "0"),
	OK("flag", "0", "0"),
	NOTBOOL("2"),
	NOTBOOL("y"),
	NOTBOOL("tru"),
	NOTBOOL("truee"),
	NOTBOOL("enabled"),
	BADS("flag", "", "flag: \"\": not a boolean (use true or false)", SRC_ARG | SRC_ENV),
	BADS("flag", " true", "flag: \" true\": not a boolean (use true or false)",
	     SRC_ARG | SRC_ENV),

	OK("port", "1", "1"),
	OK("port", "8080", "8080"),
	OK("port", "65535", "65535"),
	BAD("port", "0", "port: 0 below minimum 1"),
	BAD("port", "-1", "port: -1 below minimum 1"),
	BAD("port", "65536", "port: 65536 above maximum 65535"),
	BAD("port", "70000", "port: 70000 above maximum 65535"),
	RANGE("port", "99999999999999999999"),
	NOTINT("port", "abc"),
	NOTINT("port", "+1"),
	NOTINT("port", "0x10"),
	NOTINT("port", "1.0"),
	NOTINT("port", "1e3"),
	NOTINT("port", "080"),
	NOTINT("port", "1_000"),
	NOTINT("port", "80x"),
	NOTINT("port", "99999999999999999999x"),
	NOTINT("port", "\xd9\xa1"),
	BADS("port", "", "port: \"\": not an integer", SRC_ARG | SRC_ENV),
	BADS("port", "80 ", "port: \"80 \": not an integer", SRC_ARG | SRC_ENV),
	BADS("port", "8\n0", "port: \"8\\x0a0\": not an integer", SRC_ARG | SRC_ENV),

	OK("offset", "0", "0"),
	OK("offset", "-0", "0"),
	OK("offset", "-5", "-5"),
	OK("offset", "9223372036854775807", "9223372036854775807"),
	OK("offset", "-9223372036854775808", "-9223372036854775808"),
	RANGE("offset", "9223372036854775808"),
	RANGE("offset", "-9223372036854775809"),
	RANGE("offset", "18446744073709551616"),
	NOTINT("offset", "-"),
	NOTINT("offset", "--1"),
	NOTINT("offset", "-01"),

	OK("spool_limit", "1024", "1024"),
	OK("spool_limit", "1K", "1024"),
	OK("spool_limit", "1k", "1024"),
	OK("spool_limit", "512M", "536870912"),
	OK("spool_limit", "3g", "3221225472"),
	OK("spool_limit", "1T", "1099511627776"),
	OK("spool_limit", "1024G", "1099511627776"),
	BAD("spool_limit", "1023", "spool_limit: 1023 below minimum 1K"),
	BAD("spool_limit", "0K", "spool_limit: 0K below minimum 1K"),
	BAD("spool_limit", "2T", "spool_limit: 2T above maximum 1T"),
	BAD("spool_limit", "1025G", "spool_limit: 1025G above maximum 1T"),
	BAD("spool_limit", "1099511627777", "spool_limit: 1099511627777 above maximum 1T"),
	NOTSIZE("spool_limit", "12X"),
	NOTSIZE("spool_limit", "1KB"),
	NOTSIZE("spool_limit", "1KiB"),
	NOTSIZE("spool_limit", "K"),
	NOTSIZE("spool_limit", "1.5G"),
	NOTSIZE("spool_limit", "-1K"),
	NOTSIZE("spool_limit", "1 K"),
	NOTSIZE("spool_limit", "01K"),
	NOTSIZE("spool_limit", "1P"),

	OK("big", "0", "0"),
	OK("big", "18446744073709551615", "18446744073709551615"),
	OK("big", "16777215T", "18446742974197923840"),
	OK("big", "17179869183G", "18446744072635809792"),
	RANGE("big", "18446744073709551616"),
	RANGE("big", "16777216T"),
	RANGE("big", "17179869184G"),
	RANGE("big", "99999999999999999999999K"),
	NOTSIZE("big", "99999999999999999999999X"),

	OK("timeout", "30s", "30000"),
	OK("timeout", "100ms", "100"),
	OK("timeout", "1500ms", "1500"),
	OK("timeout", "2m", "120000"),
	OK("timeout", "24h", "86400000"),
	OK("timeout", "1440m", "86400000"),
	BAD("timeout", "99ms", "timeout: 99ms below minimum 100ms"),
	BAD("timeout", "0s", "timeout: 0s below minimum 100ms"),
	BAD("timeout", "25h", "timeout: 25h above maximum 24h"),
	BAD("timeout", "86400001ms", "timeout: 86400001ms above maximum 24h"),
	NOTDUR("timeout", "30"),
	NOTDUR("timeout", "30S"),
	NOTDUR("timeout", "30sec"),
	NOTDUR("timeout", "1.5s"),
	NOTDUR("timeout", "30 s"),
	NOTDUR("timeout", "s"),
	NOTDUR("timeout", "-1s"),
	NOTDUR("timeout", "1d"),
	NOTDUR("timeout", "1h30m"),
	NOTDUR("timeout", "030s"),

	OK("wait", "0ms", "0"),
	OK("wait", "9223372036854775807ms", "9223372036854775807"),
	OK("wait", "2562047788015h", "9223372036854000000"),
	RANGE("wait", "9223372036854775808ms"),
	RANGE("wait", "2562047788016h"),
	RANGE("wait", "153722867280913m"),
	RANGE("wait", "9223372036854776s"),

	OK("label", "hello world", "hello world"),
	OK("label", "h\xc3\xa9llo", "h\xc3\xa9llo"),
	OK("label", "a=b", "a=b"),
	OK("label", "# not a comment", "# not a comment"),
	OKS("label", "", "", SRC_ARG | SRC_ENV),
	OKS("label", "  spaced  ", "  spaced  ", SRC_ARG | SRC_ENV),
	OKS("label", "\"quoted\"", "\"quoted\"", SRC_ARG | SRC_ENV),
	BAD("label", "a\tb", "label: \"a\\x09b\": contains a control character"),
	BAD("label", "a\x7f", "label: \"a\\x7f\": contains a control character"),
	BAD("label", "a\x1b[31m", "label: \"a\\x1b[31m\": contains a control character"),
	BADS("label", "a\nb", "label: \"a\\x0ab\": contains a control character",
	     SRC_ARG | SRC_ENV),
	BADS("label", "a\r", "label: \"a\\x0d\": contains a control character", SRC_ARG | SRC_ENV),
	BADS("label", "\"a\tb\"", "label: \"\\\"a\\x09b\\\"\": contains a control character",
	     SRC_ARG | SRC_ENV),

	OK("tls", "off", "0"),
	OK("tls", "optional", "1"),
	OK("tls", "required", "2"),
	NOTENUM("OFF"),
	NOTENUM("of"),
	NOTENUM("offf"),
	NOTENUM("off|optional"),
	NOTENUM("|"),
	BADS("tls", "", "tls: \"\": not one of off|optional|required", SRC_ARG | SRC_ENV),
};

/* Runs one case through one source; returns its result with the error printed as expected. */
static void value_case_run(const struct value_case *c, int src, size_t idx)
{
	char arg[256], env[64], where[128], want_err[512];
	struct settings s;
	const char *srcname;
	int rc, k;

	env_clear();
	setenv("FSGT_NODE", "n1", 1);
	if (src == SRC_ARG) {
		srcname = "arg";
		snprintf(arg, sizeof(arg), "--%s=%s", c->name, c->value);
		snprintf(where, sizeof(where), "argument --%s", c->name);
		rc = load(&s, ARGS(arg));
	} else if (src == SRC_ENV) {
		srcname = "env";
		snprintf(env, sizeof(env), "FSGT_%s", c->name);
		for (k = 5; env[k]; k++)
			env[k] = (char)(env[k] >= 'a' && env[k] <= 'z' ? env[k] - 32 : env[k]);
		setenv(env, c->value, 1);
		snprintf(where, sizeof(where), "env %s", env);
		rc = load(&s, NOARGS);
		unsetenv(env);
	} else {
		FILE *f = fopen("case.conf", "w");

		srcname = "file";
		cr_assert_not_null(f);
		fprintf(f, "%s = %s\n", c->name, c->value);
		fclose(f);
		snprintf(where, sizeof(where), "case.conf:1");
		rc = load(&s, ARGS("--config=case.conf"));
	}
	if (c->want) {
		cr_expect_eq(rc, 0, "case %zu (%s, %s, %s): rc %d, err %s", idx, srcname, c->name,
			     c->value, rc, err_text);
		if (rc == 0)
			cr_expect_str_eq(field_text(&s, c->name), c->want, "case %zu (%s, %s, %s)",
					 idx, srcname, c->name, c->value);
		cr_expect_str_empty(err_text, "case %zu", idx);
		config_free(table, NSET, &s);
	} else {
		snprintf(want_err, sizeof(want_err), "fs-test: %s: %s\n", where, c->err);
		cr_expect_eq(rc, -1, "case %zu (%s, %s, %s): rc %d", idx, srcname, c->name,
			     c->value, rc);
		cr_expect_str_eq(err_text, want_err, "case %zu (%s)", idx, srcname);
		expect_strings_null(&s);
	}
	cr_expect_str_empty(out_text);
}

Test(config, values_by_type_and_source)
{
	size_t i;
	int src;

	for (i = 0; i < sizeof(value_cases) / sizeof(value_cases[0]); i++)
		for (src = SRC_ARG; src <= SRC_FILE; src <<= 1)
			if (value_cases[i].src & src)
				value_case_run(&value_cases[i], src, i);
}

Test(config, defaults)
{
	struct settings s;

	cr_assert_eq(load(&s, NOARGS), 0, "%s", err_text);
	cr_expect_eq(s.flag, 0);
	cr_expect_eq(s.port, 8080);
	cr_expect_eq(s.offset, 0);
	cr_expect_eq(s.spool_limit, UINT64_C(1) << 30);
	cr_expect_eq(s.timeout, 30000);
	cr_expect_str_eq(s.label, "");
	cr_expect_str_eq(s.dir, "");
	cr_expect_str_eq(s.token, "");
	cr_expect_eq(s.tls, 0);
	cr_expect_str_eq(s.node, "n1");
	cr_expect_str_empty(err_text);
	cr_expect_str_empty(out_text);
	config_free(table, NSET, &s);
	expect_strings_null(&s);
	config_free(table, NSET, &s); /* twice is harmless */
}

struct prio_case {
	int file, env, arg; /* which sources give port and label */
	int64_t want_port;
	const char *want_label;
};

static const struct prio_case prio_cases[] = {
	{ 0, 0, 0, 8080, "" },     { 1, 0, 0, 1000, "file" }, { 0, 1, 0, 2000, "env" },
	{ 0, 0, 1, 3000, "arg" },  { 1, 1, 0, 2000, "env" },  { 1, 0, 1, 3000, "arg" },
	{ 0, 1, 1, 3000, "arg" },  { 1, 1, 1, 3000, "arg" },
};

Test(config, priority_default_file_env_arg)
{
	size_t i;

	file_puts("p.conf", "port = 1000\nlabel = file\n");
	for (i = 0; i < sizeof(prio_cases) / sizeof(prio_cases[0]); i++) {
		const struct prio_case *c = &prio_cases[i];
		const char *args[4] = { NULL };
		struct settings s;
		int n = 0;

		env_clear();
		setenv("FSGT_NODE", "n1", 1);
		if (c->file)
			args[n++] = "--config=p.conf";
		if (c->env) {
			setenv("FSGT_PORT", "2000", 1);
			setenv("FSGT_LABEL", "env", 1);
		}
		if (c->arg) {
			args[n++] = "--port=3000";
			args[n++] = "--label=arg";
		}
		cr_assert_eq(load(&s, args), 0, "case %zu: %s", i, err_text);
		cr_expect_eq(s.port, c->want_port, "case %zu", i);
		cr_expect_str_eq(s.label, c->want_label, "case %zu", i);
		config_free(table, NSET, &s);
	}
}

/* A bad value is an error even where a higher source would override it. */
Test(config, overridden_sources_still_validated)
{
	struct settings s;

	file_puts("p.conf", "port = abc\n");
	cr_expect_eq(load(&s, ARGS("--config=p.conf", "--port=1")), -1);
	cr_expect_str_eq(err_text, "fs-test: p.conf:1: port: \"abc\": not an integer\n");
	setenv("FSGT_PORT", "0", 1);
	cr_expect_eq(load(&s, ARGS("--port=1")), -1);
	cr_expect_str_eq(err_text, "fs-test: env FSGT_PORT: port: 0 below minimum 1\n");
}

struct file_case {
	const char *text;
	size_t len; /* 0: strlen */
	const char *err; /* after "fs-test: ", or NULL when accepted */
	int64_t want_port;
	const char *want_label;
};

static const struct file_case file_cases[] = {
	/* accepted */
	{ "", 0, NULL, 8080, "" },
	{ "# only a comment\n", 0, NULL, 8080, "" },
	{ "port = 5\n", 0, NULL, 5, "" },
	{ "port=5\nlabel=x\n", 0, NULL, 5, "x" },
	{ "  port\t=\t5  \n\t label =  x y \t\n", 0, NULL, 5, "x y" },
	{ "port = 5", 0, NULL, 5, "" }, /* no final newline */
	{ "port = 5\r\nlabel = a\r\n", 0, NULL, 5, "a" },
	{ "\n\n   \n\t\n# c\n  # indented comment\nport = 6\n", 0, NULL, 6, "" },
	{ "label = \"a \\\"quoted\\\" \\\\ value\"\n", 0, NULL, 8080, "a \"quoted\" \\ value" },
	{ "label = \"  spaced  \"  \n", 0, NULL, 8080, "  spaced  " },
	{ "label = \"\"\n", 0, NULL, 8080, "" },
	{ "label = \"# not a comment\"\n", 0, NULL, 8080, "# not a comment" },
	{ "label = \"a=b\"\n", 0, NULL, 8080, "a=b" },
	{ "label = say \"hi\"\n", 0, NULL, 8080, "say \"hi\"" },
	{ "label = \"5\"\nport = \"7\"\n", 0, NULL, 7, "5" },

	/* rejected */
	{ "port = 1\nport = 2\n", 0, "f.conf:2: port: repeated (first set on line 1)", 0, NULL },
	{ "port = 1\n\n#\nport = 1\n", 0, "f.conf:4: port: repeated (first set on line 1)", 0,
	  NULL },
	{ "port 1\n", 0, "f.conf:1: expected \"name = value\"", 0, NULL },
	{ "port\n", 0, "f.conf:1: expected \"name = value\"", 0, NULL },
	{ "= 1\n", 0, "f.conf:1: expected \"name = value\"", 0, NULL },
	{ "  \t= 1\n", 0, "f.conf:1: expected \"name = value\"", 0, NULL },
	{ "nope = 1\n", 0, "f.conf:1: nope: unknown setting", 0, NULL },
	{ "Port = 1\n", 0, "f.conf:1: Port: unknown setting", 0, NULL },
	{ "port-x = 1\n", 0, "f.conf:1: port-x: unknown setting", 0, NULL },
	{ "spool-limit = 1K\n", 0, "f.conf:1: spool-limit: unknown setting", 0, NULL },
	{ "config = other.conf\n", 0, "f.conf:1: config: unknown setting", 0, NULL },
	{ "port label = 1\n", 0, "f.conf:1: port label: unknown setting", 0, NULL },
	{ "x\x1b[2J = 1\n", 0, "f.conf:1: x\\x1b[2J: unknown setting", 0, NULL },
	{ "# c\n\nspool_limit = 12X\n", 0,
	  "f.conf:3: spool_limit: \"12X\": not a size (use K, M, G or T)", 0, NULL },
	{ "port = 1 # comment\n", 0, "f.conf:1: port: \"1 # comment\": not an integer", 0, NULL },
	{ "port = 1\nport\n", 0, "f.conf:2: expected \"name = value\"", 0, NULL },
	{ "label = \"abc\n", 0, "f.conf:1: label: unterminated quoted value", 0, NULL },
	{ "label = \"abc\\\"\n", 0, "f.conf:1: label: unterminated quoted value", 0, NULL },
	{ "label = \"a\\nb\"\n", 0,
	  "f.conf:1: label: unknown escape in quoted value (use \\\" or \\\\)", 0, NULL },
	{ "label = \"a\" b\n", 0, "f.conf:1: label: text after closing quote", 0, NULL },
	{ "label = \"a\"\"b\"\n", 0, "f.conf:1: label: text after closing quote", 0, NULL },
	{ "label = \"a\tb\"\n", 0,
	  "f.conf:1: label: \"a\\x09b\": contains a control character", 0, NULL },
	{ "label = a\rb\n", 0, "f.conf:1: label: \"a\\x0db\": contains a control character", 0,
	  NULL },
	{ "port = 1\0\n", 10, "f.conf:1: NUL byte in line", 0, NULL },
	{ "port = 1\nlabel = a\0b\n", 21, "f.conf:2: NUL byte in line", 0, NULL },
};

Test(config, file_syntax)
{
	size_t i;

	for (i = 0; i < sizeof(file_cases) / sizeof(file_cases[0]); i++) {
		const struct file_case *c = &file_cases[i];
		char want[512];
		struct settings s;
		int rc;

		file_write("f.conf", c->text, c->len ? c->len : strlen(c->text));
		rc = load(&s, ARGS("--config=f.conf"));
		if (!c->err) {
			cr_expect_eq(rc, 0, "case %zu: %s", i, err_text);
			if (rc)
				continue;
			cr_expect_eq(s.port, c->want_port, "case %zu", i);
			cr_expect_str_eq(s.label, c->want_label, "case %zu", i);
			cr_expect_str_empty(err_text);
			config_free(table, NSET, &s);
		} else {
			snprintf(want, sizeof(want), "fs-test: %s\n", c->err);
			cr_expect_eq(rc, -1, "case %zu", i);
			cr_expect_str_eq(err_text, want, "case %zu", i);
			expect_strings_null(&s);
		}
	}
}

/* Lines hold up to 4096 bytes without their line ending. */
Test(config, file_line_limit)
{
	static char text[8192];
	struct settings s;
	size_t vlen = 4096 - strlen("label = ");

	memcpy(text, "label = ", 8);
	memset(text + 8, 'v', vlen);
	memcpy(text + 4096, "\r\n", 3);
	file_write("f.conf", text, 4098);
	cr_assert_eq(load(&s, ARGS("--config=f.conf")), 0, "%s", err_text);
	cr_expect_eq(strlen(s.label), vlen);
	config_free(table, NSET, &s);

	file_write("f.conf", text, 4096); /* no line ending at all */
	cr_assert_eq(load(&s, ARGS("--config=f.conf")), 0, "%s", err_text);
	cr_expect_eq(strlen(s.label), vlen);
	config_free(table, NSET, &s);

	memcpy(text, "port = 1\n", 9);
	memcpy(text + 9, "label = ", 8);
	memset(text + 17, 'v', vlen + 1);
	memcpy(text + 17 + vlen + 1, "\n", 2);
	file_puts("f.conf", text);
	cr_expect_eq(load(&s, ARGS("--config=f.conf")), -1);
	cr_expect_str_eq(err_text, "fs-test: f.conf:2: line longer than 4096 bytes\n");

	{
		char *big = malloc(100001);

		cr_assert_not_null(big);
		memset(big, '#', 100000);
		big[100000] = '\n';
		file_write("f.conf", big, 100001);
		free(big);
	}
	cr_expect_eq(load(&s, ARGS("--config=f.conf")), -1);
	cr_expect_str_eq(err_text, "fs-test: f.conf:1: line longer than 4096 bytes\n");
}

Test(config, config_file_sources)
{
	struct settings s;

	file_puts("a.conf", "port = 1\n");
	file_puts("b.conf", "port = 2\n");

	cr_assert_eq(load(&s, ARGS("--config", "a.conf")), 0, "%s", err_text);
	cr_expect_eq(s.port, 1);
	config_free(table, NSET, &s);

	setenv("FSGT_CONFIG", "b.conf", 1);
	cr_assert_eq(load(&s, NOARGS), 0, "%s", err_text);
	cr_expect_eq(s.port, 2);
	config_free(table, NSET, &s);

	/* --config wins over FSGT_CONFIG */
	cr_assert_eq(load(&s, ARGS("--config=a.conf")), 0, "%s", err_text);
	cr_expect_eq(s.port, 1);
	config_free(table, NSET, &s);

	setenv("FSGT_CONFIG", "", 1);
	cr_expect_eq(load(&s, NOARGS), -1);
	cr_expect_str_eq(err_text, "fs-test: env FSGT_CONFIG: needs a file name\n");
	unsetenv("FSGT_CONFIG");

	cr_expect_eq(load(&s, ARGS("--config=nope.conf")), -1);
	cr_expect_str_eq(err_text, "fs-test: nope.conf: cannot open config file: "
				   "No such file or directory\n");
	cr_expect_eq(load(&s, ARGS("--config")), -1);
	cr_expect_str_eq(err_text,
			 "fs-test: argument --config: needs a file name (--config=FILE)\n");
	cr_expect_eq(load(&s, ARGS("--config=")), -1);
	cr_expect_str_eq(err_text,
			 "fs-test: argument --config: needs a file name (--config=FILE)\n");
	cr_expect_eq(load(&s, ARGS("--config=a.conf", "--config=b.conf")), -1);
	cr_expect_str_eq(err_text, "fs-test: argument --config: given twice\n");
	cr_expect_eq(load(&s, ARGS("--config=.")), -1);
	cr_expect_str_eq(err_text,
			 "fs-test: .: cannot read config file: Is a directory\n");
}

struct arg_case {
	const char *args[4];
	const char *err; /* after "fs-test: ", or NULL when accepted */
	int want_flag;
	const char *want_label;
};

static const struct arg_case arg_cases[] = {
	{ { "--flag" }, NULL, 1, "" },
	{ { "--flag=false" }, NULL, 0, "" },
	{ { "--flag=yes", "--label=x" }, NULL, 1, "x" },
	{ { "--label=" }, NULL, 0, "" },
	{ { "--label==" }, NULL, 0, "=" },
	{ { "--label=a b" }, NULL, 0, "a b" },
	{ { "--spool-limit=1K", "--label=-" }, NULL, 0, "-" },
	{ { "--foo=1" }, "argument --foo: unknown setting", 0, NULL },
	{ { "--foo" }, "argument --foo: unknown setting", 0, NULL },
	{ { "--FLAG" }, "argument --FLAG: unknown setting", 0, NULL },
	{ { "--flag_" }, "argument --flag_: unknown setting", 0, NULL },
	{ { "--config_x=1" }, "argument --config_x: unknown setting", 0, NULL },
	{ { "--x\ny=1" }, "argument --x\\x0ay: unknown setting", 0, NULL },
	{ { "--port" }, "argument --port: port: needs a value (--port=VALUE)", 0, NULL },
	{ { "--port", "80" }, "argument --port: port: needs a value (--port=VALUE)", 0, NULL },
	{ { "--label" }, "argument --label: label: needs a value (--label=VALUE)", 0, NULL },
	{ { "--port=1", "--port=2" }, "argument --port: port: given twice", 0, NULL },
	{ { "--flag", "--flag=no" }, "argument --flag: flag: given twice", 0, NULL },
	{ { "--spool_limit=1K", "--spool-limit=2K" },
	  "argument --spool-limit: spool_limit: given twice", 0, NULL },
	{ { "foo" }, "argument foo: unexpected argument (settings are --name=value)", 0, NULL },
	{ { "-p" }, "argument -p: unexpected argument (settings are --name=value)", 0, NULL },
	{ { "--" }, "argument --: unexpected argument (settings are --name=value)", 0, NULL },
	{ { "--=1" }, "argument --=1: unexpected argument (settings are --name=value)", 0, NULL },
	{ { "--flag", "x" }, "argument x: unexpected argument (settings are --name=value)", 0,
	  NULL },
	{ { "" }, "argument : unexpected argument (settings are --name=value)", 0, NULL },
};

Test(config, arguments)
{
	size_t i;

	for (i = 0; i < sizeof(arg_cases) / sizeof(arg_cases[0]); i++) {
		const struct arg_case *c = &arg_cases[i];
		struct settings s;
		char want[512];
		int rc = load(&s, c->args);

		if (!c->err) {
			cr_expect_eq(rc, 0, "case %zu: %s", i, err_text);
			if (rc)
				continue;
			cr_expect_eq(s.flag, c->want_flag, "case %zu", i);
			cr_expect_str_eq(s.label, c->want_label, "case %zu", i);
			config_free(table, NSET, &s);
		} else {
			snprintf(want, sizeof(want), "fs-test: %s\n", c->err);
			cr_expect_eq(rc, -1, "case %zu", i);
			cr_expect_str_eq(err_text, want, "case %zu", i);
		}
	}
}

Test(config, unknown_env_and_required)
{
	struct settings s;

	setenv("FSGT_FOO", "1", 1);
	cr_expect_eq(load(&s, NOARGS), -1);
	cr_expect_str_eq(err_text, "fs-test: env FSGT_FOO: unknown setting\n");
	unsetenv("FSGT_FOO");
	setenv("FSGT_port", "1", 1);
	cr_expect_eq(load(&s, NOARGS), -1);
	cr_expect_str_eq(err_text, "fs-test: env FSGT_port: unknown setting\n");
	unsetenv("FSGT_port");
	setenv("FSGT_SPOOL_LIMITS", "1", 1);
	cr_expect_eq(load(&s, NOARGS), -1);
	cr_expect_str_eq(err_text, "fs-test: env FSGT_SPOOL_LIMITS: unknown setting\n");
	unsetenv("FSGT_SPOOL_LIMITS");
	/* other prefixes are none of our business */
	setenv("FSGTX_FOO", "1", 1);
	setenv("FSG_FOO", "1", 1);
	cr_expect_eq(load(&s, NOARGS), 0, "%s", err_text);
	config_free(table, NSET, &s);

	unsetenv("FSGT_NODE");
	cr_expect_eq(load(&s, NOARGS), -1);
	cr_expect_str_eq(err_text, "fs-test: node: required setting not given\n");
	expect_strings_null(&s);

	cr_expect_eq(load(&s, ARGS("--node=n2")), 0, "%s", err_text);
	cr_expect_str_eq(s.node, "n2");
	config_free(table, NSET, &s);

	file_puts("f.conf", "node = n3\n");
	cr_expect_eq(load(&s, ARGS("--config=f.conf")), 0, "%s", err_text);
	cr_expect_str_eq(s.node, "n3");
	config_free(table, NSET, &s);

	setenv("FSGT_NODE", "", 1); /* given, though empty */
	cr_expect_eq(load(&s, NOARGS), 0, "%s", err_text);
	cr_expect_str_eq(s.node, "");
	config_free(table, NSET, &s);
}

/* Relative paths in the file resolve against its directory, elsewhere against the cwd. */
Test(config, path_resolution)
{
	char want[8192], abs_conf[4200];
	struct settings s;

	cr_assert_eq(mkdir("etc", 0700), 0);
	file_puts("etc/app.conf", "dir = data\n");
	snprintf(want, sizeof(want), "%s/etc/data", cwd);
	cr_assert_eq(load(&s, ARGS("--config=etc/app.conf")), 0, "%s", err_text);
	cr_expect_str_eq(s.dir, want);
	config_free(table, NSET, &s);

	cr_assert_eq(load(&s, ARGS("--config=./etc/app.conf")), 0, "%s", err_text);
	cr_expect_str_eq(s.dir, want);
	config_free(table, NSET, &s);

	snprintf(abs_conf, sizeof(abs_conf), "--config=%s/etc/app.conf", cwd);
	cr_assert_eq(load(&s, ARGS(abs_conf)), 0, "%s", err_text);
	cr_expect_str_eq(s.dir, want);
	config_free(table, NSET, &s);

	file_puts("etc/app.conf", "dir = ./data/x\n");
	snprintf(want, sizeof(want), "%s/etc/data/x", cwd);
	cr_assert_eq(load(&s, ARGS("--config=etc/app.conf")), 0, "%s", err_text);
	cr_expect_str_eq(s.dir, want);
	config_free(table, NSET, &s);

	file_puts("etc/app.conf", "dir = /var/spool/fs\n");
	cr_assert_eq(load(&s, ARGS("--config=etc/app.conf")), 0, "%s", err_text);
	cr_expect_str_eq(s.dir, "/var/spool/fs");
	config_free(table, NSET, &s);

	file_puts("app.conf", "dir = data\n");
	snprintf(want, sizeof(want), "%s/data", cwd);
	cr_assert_eq(load(&s, ARGS("--config=app.conf")), 0, "%s", err_text);
	cr_expect_str_eq(s.dir, want);
	config_free(table, NSET, &s);

	setenv("FSGT_DIR", "rel/d", 1);
	snprintf(want, sizeof(want), "%s/rel/d", cwd);
	cr_assert_eq(load(&s, NOARGS), 0, "%s", err_text);
	cr_expect_str_eq(s.dir, want);
	config_free(table, NSET, &s);
	unsetenv("FSGT_DIR");

	cr_assert_eq(load(&s, ARGS("--dir=.")), 0, "%s", err_text);
	cr_expect_str_eq(s.dir, cwd);
	config_free(table, NSET, &s);

	cr_assert_eq(load(&s, ARGS("--dir=/abs")), 0, "%s", err_text);
	cr_expect_str_eq(s.dir, "/abs");
	config_free(table, NSET, &s);

	cr_expect_eq(load(&s, ARGS("--dir=a\tb")), -1);
	cr_expect_str_eq(err_text, "fs-test: argument --dir: dir: \"a\\x09b\": "
				   "contains a control character\n");
}

struct secret_case {
	const char *content;
	size_t len;
	const char *want; /* NULL: rejected with err */
	const char *err;  /* reason after the quoted path */
};

static const struct secret_case secret_cases[] = {
	{ "s3cret\n", 7, "s3cret", NULL },
	{ "s3cret\r\n", 8, "s3cret", NULL },
	{ "s3cret", 6, "s3cret", NULL },
	{ "s3cret\n\n", 8, "s3cret\n", NULL },
	{ "line1\nline2\n", 12, "line1\nline2", NULL },
	{ " pad \n", 6, " pad ", NULL },
	{ "\r", 1, "\r", NULL },
	{ "", 0, NULL, "secret file is empty" },
	{ "\n", 1, NULL, "secret file is empty" },
	{ "\r\n", 2, NULL, "secret file is empty" },
	{ "ab\0cd\n", 6, NULL, "secret file contains a NUL byte" },
};

static void expect_secret_err(const char *where, const char *path, const char *reason)
{
	char want[8192];

	snprintf(want, sizeof(want), "fs-test: %s: token: \"%s\": %s\n", where, path, reason);
	cr_expect_str_eq(err_text, want);
}

Test(config, secret_files)
{
	char path[4200], arg[4300];
	struct settings s;
	size_t i;
	char *big;

	snprintf(path, sizeof(path), "%s/key", cwd);
	for (i = 0; i < sizeof(secret_cases) / sizeof(secret_cases[0]); i++) {
		const struct secret_case *c = &secret_cases[i];
		int rc;

		file_write("key", c->content, c->len);
		rc = load(&s, ARGS("--token=key"));
		if (c->want) {
			cr_expect_eq(rc, 0, "case %zu: %s", i, err_text);
			if (rc)
				continue;
			cr_expect_str_eq(s.token, c->want, "case %zu", i);
			config_free(table, NSET, &s);
		} else {
			cr_expect_eq(rc, -1, "case %zu", i);
			expect_secret_err("argument --token", path, c->err);
			expect_strings_null(&s);
		}
	}

	/* at most 64 KiB, counting the newline */
	big = malloc(65537);
	cr_assert_not_null(big);
	memset(big, 'A', 65537);
	file_write("key", big, 65536);
	cr_assert_eq(load(&s, ARGS("--token=key")), 0, "%s", err_text);
	cr_expect_eq(strlen(s.token), 65536);
	config_free(table, NSET, &s);
	big[65536] = '\n';
	file_write("key", big, 65537);
	cr_expect_eq(load(&s, ARGS("--token=key")), -1);
	expect_secret_err("argument --token", path, "secret file larger than 64 KiB");
	cr_expect_null(strstr(err_text, "AAAA"));
	free(big);

	cr_expect_eq(load(&s, ARGS("--token=missing")), -1);
	snprintf(path, sizeof(path), "%s/missing", cwd);
	expect_secret_err("argument --token", path,
			  "cannot read secret file: No such file or directory");

	cr_assert_eq(mkdir("d", 0700), 0);
	cr_expect_eq(load(&s, ARGS("--token=d")), -1);
	snprintf(path, sizeof(path), "%s/d", cwd);
	expect_secret_err("argument --token", path, "cannot read secret file: Is a directory");

	/* relative to the config file's directory; from the environment too */
	file_puts("d/key", "from-d\n");
	file_puts("d/app.conf", "token = key\n");
	cr_assert_eq(load(&s, ARGS("--config=d/app.conf")), 0, "%s", err_text);
	cr_expect_str_eq(s.token, "from-d");
	config_free(table, NSET, &s);
	setenv("FSGT_TOKEN", "d/key", 1);
	cr_assert_eq(load(&s, NOARGS), 0, "%s", err_text);
	cr_expect_str_eq(s.token, "from-d");
	config_free(table, NSET, &s);

	/* env overrides the file's secret: the old one is released (ASan would see a leak) */
	cr_assert_eq(load(&s, ARGS("--config=d/app.conf")), 0, "%s", err_text);
	cr_expect_str_eq(s.token, "from-d");
	config_free(table, NSET, &s);
	unsetenv("FSGT_TOKEN");

	/* a later error never shows the secret */
	file_puts("key", "TOPSECRET\n");
	cr_expect_eq(load(&s, ARGS("--token=key", "--port=x")), -1);
	cr_expect_null(strstr(err_text, "TOPSECRET"));
	expect_strings_null(&s);

	/* only the winning path is read: an overridden one need not exist */
	file_puts("d/app.conf", "token = nokey\n");
	cr_expect_eq(load(&s, ARGS("--config=d/app.conf")), -1);
	snprintf(path, sizeof(path), "%s/d/nokey", cwd);
	expect_secret_err("d/app.conf:1", path,
			  "cannot read secret file: No such file or directory");
	setenv("FSGT_TOKEN", "missing", 1);
	cr_expect_eq(load(&s, ARGS("--config=d/app.conf")), -1);
	snprintf(path, sizeof(path), "%s/missing", cwd);
	expect_secret_err("env FSGT_TOKEN", path,
			  "cannot read secret file: No such file or directory");
	cr_assert_eq(load(&s, ARGS("--config=d/app.conf", "--token=key")), 0, "%s", err_text);
	cr_expect_str_eq(s.token, "TOPSECRET");
	config_free(table, NSET, &s);
	cr_assert_eq(load(&s, ARGS("--config=d/app.conf", "--token=")), 0, "%s", err_text);
	cr_expect_str_eq(s.token, "");
	config_free(table, NSET, &s);
	unsetenv("FSGT_TOKEN");

	/* an explicit empty path means no secret */
	cr_assert_eq(load(&s, ARGS("--token=")), 0, "%s", err_text);
	cr_expect_str_eq(s.token, "");
	config_free(table, NSET, &s);
	snprintf(arg, sizeof(arg), "--token=%s/key", cwd);
	cr_assert_eq(load(&s, ARGS(arg)), 0, "%s", err_text);
	cr_expect_str_eq(s.token, "TOPSECRET");
	config_free(table, NSET, &s);
}

Test(config, help_lists_every_setting)
{
	static const struct config_setting with_secret[] = {
		{ "token", CONFIG_SECRET, "key", 0, 0, NULL, F(token), "File holding the token." },
		{ "node", CONFIG_STRING, NULL, 0, 0, NULL, F(node), "Name of this node." },
	};
	struct settings s;
	size_t i;

	file_puts("key", "TOPSECRET\n");
	setenv("FSGT_TOKEN", "key", 1);
	cr_expect_eq(load(&s, ARGS("--port=abc", "--help", "--nope")), 1);
	cr_expect_str_empty(err_text);
	expect_strings_null(&s);
	cr_expect(strncmp(out_text, "Usage: fs-test ", 15) == 0, "%s", out_text);
	cr_expect_not_null(strstr(out_text, "--config=FILE"));
	cr_expect_not_null(strstr(out_text, "FSGT_CONFIG"));
	for (i = 0; i < NSET; i++) {
		char want[256];
		size_t k;

		snprintf(want, sizeof(want), "  --%s=", table[i].name);
		cr_expect_not_null(strstr(out_text, want), "%s missing", want);
		snprintf(want, sizeof(want), "env FSGT_%s\n", table[i].name);
		for (k = 9; want[k]; k++)
			want[k] = (char)(want[k] >= 'a' && want[k] <= 'z' ? want[k] - 32 : want[k]);
		cr_expect_not_null(strstr(out_text, want), "%s missing", want);
		cr_expect_not_null(strstr(out_text, table[i].help), "%s missing", table[i].help);
	}
	cr_expect_not_null(strstr(out_text, "integer, 1 to 65535; default 8080"), "%s", out_text);
	cr_expect_not_null(strstr(out_text, "size (K, M, G, T), 1K to 1T; default 1G"));
	cr_expect_not_null(strstr(out_text, "duration (ms, s, m, h), 100ms to 24h; default 30s"));
	cr_expect_not_null(strstr(out_text, "--tls=off|optional|required\n"));
	cr_expect_not_null(strstr(out_text, "one of off|optional|required; default off"));
	cr_expect_not_null(strstr(out_text, "string; required; env FSGT_NODE"));
	cr_expect_not_null(strstr(out_text, "path (secret file); default empty"));

	cr_expect_eq(load_with(with_secret, 2, &s, ARGS("--help")), 1);
	cr_expect_not_null(strstr(out_text, "--token=FILE\n"), "%s", out_text);
	cr_expect_not_null(strstr(out_text, "path (secret file); default key"), "%s", out_text);
	cr_expect_null(strstr(out_text, "TOPSECRET"));
	cr_expect_str_empty(err_text);
	/* and the secret is really there when loaded */
	cr_expect_eq(load_with(with_secret, 2, &s, NOARGS), 0, "%s", err_text);
	cr_expect_str_eq(s.token, "TOPSECRET");
	config_free(with_secret, 2, &s);
	/* a default secret file that does not exist is fine when overridden */
	unsetenv("FSGT_TOKEN");
	cr_expect_eq(load_with(with_secret, 2, &s, NOARGS), 0, "%s", err_text);
	cr_expect_str_eq(s.token, "TOPSECRET");
	config_free(with_secret, 2, &s);
	unlink("key");
	cr_expect_eq(load_with(with_secret, 2, &s, NOARGS), -1);
	{
		char want[8192];

		snprintf(want, sizeof(want),
			 "fs-test: default: token: \"%s/key\": cannot read secret file: "
			 "No such file or directory\n",
			 cwd);
		cr_expect_str_eq(err_text, want);
	}
	file_puts("other", "OTHER\n");
	cr_expect_eq(load_with(with_secret, 2, &s, ARGS("--token=other")), 0, "%s", err_text);
	cr_expect_str_eq(s.token, "OTHER");
	config_free(with_secret, 2, &s);
}

Test(config, version)
{
	struct settings s;

	cr_expect_eq(load(&s, ARGS("--version")), 1);
	cr_expect_str_eq(out_text, "fs-test 1.2.3\n");
	cr_expect_str_empty(err_text);
	unsetenv("FSGT_NODE"); /* a missing required setting does not stop --version */
	cr_expect_eq(load(&s, ARGS("--bogus", "--version")), 1);
	cr_expect_str_eq(out_text, "fs-test 1.2.3\n");
}

Test(config, markdown)
{
	static const char md_head[] = "| setting | env | type | default | description |\n"
				      "|---|---|---|---|---|\n";
	char *md = NULL, *line, *save = NULL;
	size_t len = 0, rows = 0;
	FILE *f = open_memstream(&md, &len);

	cr_assert_not_null(f);
	config_write_markdown(table, NSET, "FSGT", f);
	fclose(f);
	cr_expect(strncmp(md, md_head, strlen(md_head)) == 0, "%s", md);
	cr_expect_not_null(strstr(md, "| `port` | `FSGT_PORT` | integer, 1 to 65535 | `8080` | "
				      "TCP port to listen on. |\n"), "%s", md);
	cr_expect_not_null(strstr(md, "| `tls` | `FSGT_TLS` | one of off\\|optional\\|required | "
				      "`off` | Client certificates. |\n"));
	cr_expect_not_null(strstr(md, "| `node` | `FSGT_NODE` | string | *required* |"));
	cr_expect_not_null(strstr(md, "| `label` | `FSGT_LABEL` | string | *empty* |"));
	cr_expect_not_null(strstr(md, "| `token` | `FSGT_TOKEN` | path (secret file) |"));
	for (line = strtok_r(md, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		cr_expect(line[0] == '|', "%s", line);
		rows++;
	}
	cr_expect_eq(rows, NSET + 2);
	free(md);
}

/* A broken table is the program's bug, reported before anything else. */
Test(config, bad_tables)
{
	static const struct config_setting bad_default[] = {
		{ "port", CONFIG_INT, "x", 0, 0, NULL, F(port), "p" },
	};
	static const struct config_setting bad_name[] = {
		{ "Port", CONFIG_INT, "1", 0, 0, NULL, F(port), "p" },
	};
	static const struct config_setting reserved[] = {
		{ "config", CONFIG_STRING, "", 0, 0, NULL, F(label), "c" },
	};
	static const struct config_setting dup[] = {
		{ "port", CONFIG_INT, "1", 0, 0, NULL, F(port), "p" },
		{ "port", CONFIG_INT, "1", 0, 0, NULL, F(offset), "p" },
	};
	static const struct config_setting no_choices[] = {
		{ "tls", CONFIG_ENUM, "off", 0, 0, NULL, F(tls), "t" },
	};
	struct settings s;

	cr_expect_eq(load_with(bad_default, 1, &s, NOARGS), -1);
	cr_expect_str_eq(err_text, "fs-test: default: port: \"x\": not an integer\n");
	cr_expect_eq(load_with(bad_name, 1, &s, NOARGS), -1);
	cr_expect_str_eq(err_text, "fs-test: settings table: Port: bad setting name or choices\n");
	cr_expect_eq(load_with(reserved, 1, &s, NOARGS), -1);
	cr_expect_str_eq(err_text,
			 "fs-test: settings table: config: bad setting name or choices\n");
	cr_expect_eq(load_with(dup, 2, &s, NOARGS), -1);
	cr_expect_str_eq(err_text, "fs-test: settings table: port: bad setting name or choices\n");
	cr_expect_eq(load_with(no_choices, 1, &s, NOARGS), -1);
	cr_expect_str_eq(err_text, "fs-test: settings table: tls: bad setting name or choices\n");
}

/* Overwriting strings from several sources frees each old value (checked by ASan/LSan). */
Test(config, strings_replaced_without_leaks)
{
	struct settings s;

	file_puts("f.conf", "label = one\ndir = a\nnode = n0\n");
	setenv("FSGT_LABEL", "two", 1);
	setenv("FSGT_DIR", "b", 1);
	cr_assert_eq(load(&s, ARGS("--config=f.conf", "--label=three", "--dir=/c")), 0, "%s",
		     err_text);
	cr_expect_str_eq(s.label, "three");
	cr_expect_str_eq(s.dir, "/c");
	cr_expect_str_eq(s.node, "n1");
	config_free(table, NSET, &s);
	expect_strings_null(&s);
}

/* Error values are shown escaped and cut, so an error is always one short line. */
Test(config, error_values_escaped_and_cut)
{
	char arg[400], want[400];
	struct settings s;

	memset(want, 0, sizeof(want));
	snprintf(arg, sizeof(arg), "--port=%0300d", 1);
	cr_expect_eq(load(&s, ARGS(arg)), -1);
	snprintf(want, sizeof(want),
		 "fs-test: argument --port: port: \"%080d...\": not an integer\n", 0);
	cr_expect_str_eq(err_text, want);
	cr_expect_eq(load(&s, ARGS("--port=\"\\\x01")), -1);
	cr_expect_str_eq(err_text,
			 "fs-test: argument --port: port: \"\\\"\\\\\\x01\": not an integer\n");
}
