/* Tests common/log.c: one valid JSON object per line, escaping, levels, bounds and threads. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

static int cap_fd = -1;

/* Sends the log to a fresh temporary file. */
static void capture(enum log_level level)
{
	FILE *f = tmpfile();

	cr_assert_not_null(f);
	cap_fd = dup(fileno(f));
	cr_assert_neq(cap_fd, -1);
	fclose(f);
	log_init(level, cap_fd);
}

/* Everything written to the capture so far, NUL-terminated; *len without the NUL. */
static char *captured(size_t *len)
{
	struct stat st;
	char *buf;
	ssize_t r;

	cr_assert_eq(fstat(cap_fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	cr_assert_not_null(buf);
	r = pread(cap_fd, buf, (size_t)st.st_size, 0);
	cr_assert_eq(r, st.st_size);
	buf[r] = '\0';
	*len = (size_t)r;
	return buf;
}

/* Empties the capture. */
static void capture_reset(void)
{
	cr_assert_eq(ftruncate(cap_fd, 0), 0);
	cr_assert_eq(lseek(cap_fd, 0, SEEK_SET), 0);
}

/* Checks that s is one log line (no newline inside) with the four keys; returns it parsed. */
static json_t *line_parse(const char *s, size_t len, const char *want_level)
{
	const char *ts, *level, *event, *msg;
	json_error_t jerr;
	json_t *j;

	cr_assert_null(memchr(s, '\n', len), "newline inside a line");
	cr_assert_null(memchr(s, '\r', len), "CR inside a line");
	j = json_loadb(s, len, JSON_REJECT_DUPLICATES, &jerr);
	cr_assert_not_null(j, "not JSON: %s: %.*s", jerr.text, (int)(len > 200 ? 200 : len), s);
	cr_assert(json_is_object(j));
	cr_assert_eq(json_object_size(j), 4, "%.*s", (int)len, s);
	cr_assert_eq(json_unpack_ex(j, &jerr, JSON_STRICT, "{s:s,s:s,s:s,s:s}", "ts", &ts, "level",
				    &level, "event", &event, "msg", &msg),
		     0, "%s", jerr.text);
	cr_assert_eq(strncmp(s, "{\"ts\":\"", 7), 0, "ts is not first: %.60s", s);
	if (want_level)
		cr_assert_str_eq(level, want_level);
	return j;
}

/* The only line captured since the last reset, parsed. */
static json_t *only_line(const char *want_level)
{
	size_t len;
	char *buf = captured(&len);
	json_t *j;

	cr_assert_gt(len, 0, "nothing written");
	cr_assert_eq(buf[len - 1], '\n', "line not ended");
	j = line_parse(buf, len - 1, want_level);
	free(buf);
	capture_reset();
	return j;
}

static const char *field(json_t *j, const char *key)
{
	return json_string_value(json_object_get(j, key));
}

Test(log, one_compact_line)
{
	char *buf, want[128];
	json_t *j;
	size_t len;

	capture(LOG_INFO);
	log_info("start", "listening on %d", 8080);
	buf = captured(&len);
	j = line_parse(buf, len - 1, "info");
	snprintf(want, sizeof(want), "{\"ts\":\"%s\",\"level\":\"info\",\"event\":\"start\","
		 "\"msg\":\"listening on 8080\"}\n", field(j, "ts"));
	cr_expect_str_eq(buf, want);
	json_decref(j);
	free(buf);
}

Test(log, timestamp_is_utc_with_ms)
{
	struct tm tm = { 0 };
	time_t before, after, t;
	const char *ts, *end;
	json_t *j;

	capture(LOG_INFO);
	before = time(NULL);
	log_info("tick", "x");
	after = time(NULL);
	j = only_line("info");
	ts = field(j, "ts");
	cr_assert_eq(strlen(ts), 24, "%s", ts);
	end = strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm);
	cr_assert_not_null(end, "%s", ts);
	cr_expect(strlen(end) == 5 && end[0] == '.' && strspn(end + 1, "0123456789") == 3 &&
			  end[4] == 'Z',
		  "%s", ts);
	t = timegm(&tm);
	cr_expect(t >= before && t <= after, "%s not between %ld and %ld", ts, (long)before,
		  (long)after);
	json_decref(j);
}

struct escape_case {
	const char *msg;
	const char *want; /* msg as parsed back; NULL: same as msg */
};

static const struct escape_case escape_cases[] = {
	{ "plain", NULL },
	{ "", NULL },
	{ "a\r\nb", NULL },
	{ "\n{\"ts\":\"forged\",\"level\":\"error\"}\n", NULL },
	{ "line\r", NULL },
	{ "quote \" backslash \\ slash /", NULL },
	{ "tab\tbell\a esc\x1b[31m del\x7f", NULL },
	{ "\x01\x02\x1f", NULL },
	{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", NULL },      /* 2, 3 and 4 bytes */
	{ "\xef\xbf\xbf \xf4\x8f\xbf\xbf \xc2\x80", NULL },         /* U+FFFF, U+10FFFF, U+0080 */
	{ "\xe2\x80\xa8 \xe2\x80\xa9", NULL },                      /* line/paragraph separator */
	{ "%s %d %n", NULL },                                       /* passed as an argument */
	{ "\xff", "\\xff" },
	{ "\x80", "\\x80" },                                        /* lone continuation */
	{ "a\xc3", "a\\xc3" },                                      /* cut sequence at the end */
	{ "\xc3(", "\\xc3(" },                                      /* bad continuation */
	{ "\xc0\x80", "\\xc0\\x80" },                               /* overlong NUL */
	{ "\xc1\xbf", "\\xc1\\xbf" },                               /* overlong */
	{ "\xe0\x80\xaf", "\\xe0\\x80\\xaf" },                      /* overlong '/' */
	{ "\xf0\x80\x80\xaf", "\\xf0\\x80\\x80\\xaf" },             /* overlong '/' */
	{ "\xed\xa0\x80", "\\xed\\xa0\\x80" },                      /* UTF-16 surrogate */
	{ "\xed\xbf\xbf", "\\xed\\xbf\\xbf" },                      /* UTF-16 surrogate */
	{ "\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80" },             /* above U+10FFFF */
	{ "\xf5\x80\x80\x80", "\\xf5\\x80\\x80\\x80" },
	{ "\xfe\xfe\xff\xff", "\\xfe\\xfe\\xff\\xff" },
	{ "ok \xc3\xa9\xff\xc3\xa9 ok", "ok \xc3\xa9\\xff\xc3\xa9 ok" }, /* only the bad byte */
	{ "\xe2\x82", "\\xe2\\x82" },
	{ "\xf0\x9f\x98", "\\xf0\\x9f\\x98" },
};

Test(log, messages_escaped_one_line_each)
{
	size_t i;

	capture(LOG_DEBUG);
	for (i = 0; i < sizeof(escape_cases) / sizeof(escape_cases[0]); i++) {
		const struct escape_case *c = &escape_cases[i];
		json_t *j;

		log_warn("esc", "%s", c->msg);
		j = only_line("warn");
		cr_expect_str_eq(field(j, "msg"), c->want ? c->want : c->msg, "case %zu", i);
		cr_expect_str_eq(field(j, "event"), "esc");
		json_decref(j);
	}
}

Test(log, event_escaped_and_bounded)
{
	char ev[300];
	json_t *j;

	capture(LOG_INFO);
	log_info("ev\n\"\xff", "m");
	j = only_line("info");
	cr_expect_str_eq(field(j, "event"), "ev\n\"\\xff");
	json_decref(j);

	log_write(LOG_INFO, NULL, "m");
	j = only_line("info");
	cr_expect_str_eq(field(j, "event"), "");
	json_decref(j);

	memset(ev, 'e', sizeof(ev) - 1);
	ev[sizeof(ev) - 1] = '\0';
	log_info(ev, "m");
	j = only_line("info");
	cr_expect_eq(strlen(field(j, "event")), 128);
	cr_expect_eq(strncmp(field(j, "event"), ev, 125), 0);
	cr_expect_str_eq(field(j, "event") + 125, "...");
	json_decref(j);
}

static int evaluated;

static int bump(void)
{
	return ++evaluated;
}

Test(log, level_filtering)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	int threshold, level;

	capture(LOG_INFO);
	for (threshold = LOG_ERROR; threshold <= LOG_DEBUG; threshold++) {
		log_init((enum log_level)threshold, cap_fd);
		for (level = LOG_ERROR; level <= LOG_DEBUG; level++) {
			int on = level <= threshold;
			size_t len;
			char *buf;

			evaluated = 0;
			cr_expect_eq(!!log_enabled((enum log_level)level), on, "t %d l %d",
				     threshold, level);
			LOG((enum log_level)level, "lvl", "n=%d", bump());
			/* a disabled level's arguments are never evaluated */
			cr_expect_eq(evaluated, on, "t %d l %d", threshold, level);
			/* log_write itself checks the level too */
			log_write((enum log_level)level, "direct", "x");
			buf = captured(&len);
			if (on) {
				char *nl = strchr(buf, '\n');
				json_t *a, *b;

				cr_assert_not_null(nl);
				a = line_parse(buf, (size_t)(nl - buf), names[level]);
				cr_expect_str_eq(field(a, "msg"), "n=1");
				b = line_parse(nl + 1, strlen(nl + 1) - 1, names[level]);
				cr_expect_str_eq(field(b, "event"), "direct");
				json_decref(a);
				json_decref(b);
			} else {
				cr_expect_eq(len, 0, "t %d l %d wrote %s", threshold, level, buf);
			}
			free(buf);
			capture_reset();
		}
	}
	evaluated = 0;
	log_init(LOG_WARN, cap_fd);
	log_debug("x", "%d", bump());
	log_info("x", "%d", bump());
	log_warn("x", "%d", bump());
	log_error("x", "%d", bump());
	cr_expect_eq(evaluated, 2);
	cr_expect_eq(log_enabled((enum log_level)4), 0);
	cr_expect_eq(log_enabled((enum log_level)-1), 0);
	log_write((enum log_level)4, "x", "out of range");
	{
		size_t len;
		char *buf = captured(&len);
		char *p;
		int lines = 0;

		for (p = buf; *p; p++)
			lines += *p == '\n';
		cr_expect_eq(lines, 2, "%s", buf);
		free(buf);
	}
}

Test(log, default_is_info_on_stderr)
{
	int fds[2];
	char buf[512];
	ssize_t n;
	json_t *j;

	cr_expect_eq(log_enabled(LOG_INFO), 1);
	cr_expect_eq(log_enabled(LOG_DEBUG), 0);
	cr_assert_eq(pipe(fds), 0);
	cr_assert_neq(dup2(fds[1], 2), -1);
	log_info("hello", "on %s", "stderr");
	n = read(fds[0], buf, sizeof(buf) - 1);
	cr_assert_gt(n, 1);
	cr_assert_eq(buf[n - 1], '\n');
	j = line_parse(buf, (size_t)n - 1, "info");
	cr_expect_str_eq(field(j, "msg"), "on stderr");
	json_decref(j);
}

struct level_case {
	const char *s;
	int rc;
	enum log_level want;
};

static const struct level_case level_cases[] = {
	{ "error", 0, LOG_ERROR }, { "warn", 0, LOG_WARN },   { "info", 0, LOG_INFO },
	{ "debug", 0, LOG_DEBUG }, { "ERROR", -1, 0 },        { "warning", -1, 0 },
	{ "", -1, 0 },             { "info ", -1, 0 },        { " info", -1, 0 },
	{ "inf", -1, 0 },          { "debug\n", -1, 0 },      { "trace", -1, 0 },
	{ "0", -1, 0 },
};

Test(log, level_parse)
{
	enum log_level out;
	size_t i;

	for (i = 0; i < sizeof(level_cases) / sizeof(level_cases[0]); i++) {
		out = (enum log_level)77;
		cr_expect_eq(log_level_parse(level_cases[i].s, &out), level_cases[i].rc, "case %zu",
			     i);
		cr_expect_eq(out, level_cases[i].rc ? (enum log_level)77 : level_cases[i].want,
			     "case %zu", i);
	}
	out = (enum log_level)77;
	cr_expect_eq(log_level_parse(NULL, &out), -1);
	cr_expect_eq(out, (enum log_level)77);
}

Test(log, keeps_errno)
{
	capture(LOG_INFO);
	errno = ENOENT;
	log_info("e", "x");
	cr_expect_eq(errno, ENOENT);
	log_write(LOG_INFO, "e", "%s", "y");
	cr_expect_eq(errno, ENOENT);
}

/* Checks a cut message: at most LOG_MSG_MAX bytes, ends in "...", starts with prefix. */
static void expect_cut(const char *msg, const char *unit, size_t min_units)
{
	size_t len = strlen(msg), ulen = strlen(unit), k, units;

	cr_expect_leq(len, LOG_MSG_MAX);
	cr_assert_geq(len, 3);
	cr_expect_str_eq(msg + len - 3, "...");
	units = (len - 3) / ulen;
	cr_expect_eq(units * ulen, len - 3, "partial unit before the marker (len %zu)", len);
	cr_expect_geq(units, min_units);
	for (k = 0; k < units; k++)
		cr_expect_eq(memcmp(msg + k * ulen, unit, ulen), 0, "unit %zu", k);
}

Test(log, long_messages_bounded)
{
	char *big = malloc(3 * LOG_MSG_MAX + 1);
	json_t *j;
	size_t i;

	cr_assert_not_null(big);
	capture(LOG_INFO);

	/* exactly LOG_MSG_MAX bytes: kept whole */
	memset(big, 'a', LOG_MSG_MAX);
	big[LOG_MSG_MAX] = '\0';
	log_info("big", "%s", big);
	j = only_line("info");
	cr_expect_str_eq(field(j, "msg"), big);
	json_decref(j);

	/* one byte more: cut to LOG_MSG_MAX with the marker */
	memset(big, 'a', LOG_MSG_MAX + 1);
	big[LOG_MSG_MAX + 1] = '\0';
	log_info("big", "%s", big);
	j = only_line("info");
	expect_cut(field(j, "msg"), "a", LOG_MSG_MAX - 3);
	cr_expect_eq(strlen(field(j, "msg")), LOG_MSG_MAX);
	json_decref(j);

	/* much more, through several arguments */
	memset(big, 'a', 3 * LOG_MSG_MAX);
	big[3 * LOG_MSG_MAX] = '\0';
	log_info("big", "%s%s%s", big, big, big);
	j = only_line("info");
	expect_cut(field(j, "msg"), "a", LOG_MSG_MAX - 3);
	json_decref(j);

	/* two-, three- and four-byte characters are never split */
	for (i = 0; i + 2 <= 3 * LOG_MSG_MAX; i += 2)
		memcpy(big + i, "\xc3\xa9", 2);
	big[i] = '\0';
	log_info("big", "%s", big);
	j = only_line("info");
	expect_cut(field(j, "msg"), "\xc3\xa9", LOG_MSG_MAX / 2 - 3);
	json_decref(j);
	for (i = 0; i + 3 <= 3 * LOG_MSG_MAX; i += 3)
		memcpy(big + i, "\xe2\x82\xac", 3);
	big[i] = '\0';
	log_info("big", "%s", big);
	j = only_line("info");
	expect_cut(field(j, "msg"), "\xe2\x82\xac", LOG_MSG_MAX / 3 - 3);
	json_decref(j);
	for (i = 0; i + 4 <= 3 * LOG_MSG_MAX; i += 4)
		memcpy(big + i, "\xf0\x9f\x98\x80", 4);
	big[i] = '\0';
	log_info("big", "%s", big);
	j = only_line("info");
	expect_cut(field(j, "msg"), "\xf0\x9f\x98\x80", LOG_MSG_MAX / 4 - 3);
	json_decref(j);
	/* a character straddling the cut at every offset */
	for (i = 0; i < 4; i++) {
		memset(big, 'a', LOG_MSG_MAX);
		memcpy(big + LOG_MSG_MAX - 4 + i, "\xf0\x9f\x98\x80", 4);
		big[LOG_MSG_MAX + i] = '\0';
		log_info("big", "%s", big);
		j = only_line("info");
		cr_expect_leq(strlen(field(j, "msg")), LOG_MSG_MAX, "offset %zu", i);
		cr_expect_null(strstr(field(j, "msg"), "\\x"), "offset %zu: %s", i,
			       field(j, "msg") + LOG_MSG_MAX - 10);
		json_decref(j);
	}

	/* invalid bytes grow four times when escaped; escapes are never split */
	memset(big, 0xff, 2 * LOG_MSG_MAX);
	big[2 * LOG_MSG_MAX] = '\0';
	log_info("big", "%s", big);
	j = only_line("info");
	expect_cut(field(j, "msg"), "\\xff", LOG_MSG_MAX / 4 - 3);
	json_decref(j);

	/* control characters grow six times in JSON: the line outgrows any small buffer */
	memset(big, 0x01, LOG_MSG_MAX);
	big[LOG_MSG_MAX] = '\0';
	log_info("big", "%s", big);
	j = only_line("info");
	cr_expect_str_eq(field(j, "msg"), big);
	json_decref(j);
	free(big);
}

#define THREADS 4
#define PER_THREAD 1000

struct worker {
	int id;
	int count;
	size_t pad; /* bytes of filler per message */
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	char *pad = malloc(w->pad + 1);
	int i;

	cr_assert_not_null(pad);
	memset(pad, '\x01', w->pad); /* JSON-escaped to six bytes each */
	pad[w->pad] = '\0';
	for (i = 0; i < w->count; i++)
		log_info("thread", "%d %d %s", w->id, i, pad);
	free(pad);
	return NULL;
}

/* Checks buf holds THREADS * count intact lines, each thread's in order. */
static void expect_lines(const char *buf, size_t len, int count, size_t pad)
{
	int next[THREADS] = { 0 }, lines = 0;
	const char *p = buf, *end = buf + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		json_t *j;
		int id, seq, off = 0;
		const char *msg;

		cr_assert_not_null(nl, "last line not ended");
		j = line_parse(p, (size_t)(nl - p), "info");
		msg = field(j, "msg");
		cr_assert_eq(sscanf(msg, "%d %d %n", &id, &seq, &off), 2, "%.40s", msg);
		cr_assert(id >= 0 && id < THREADS);
		cr_assert_eq(seq, next[id], "thread %d: got %d, want %d", id, seq, next[id]);
		cr_assert_eq(strlen(msg + off), pad);
		next[id]++;
		lines++;
		json_decref(j);
		p = nl + 1;
	}
	cr_expect_eq(lines, THREADS * count);
	for (int t = 0; t < THREADS; t++)
		cr_expect_eq(next[t], count);
}

static void threads_run(int count, size_t pad)
{
	struct worker w[THREADS];
	pthread_t th[THREADS];
	int t;

	for (t = 0; t < THREADS; t++) {
		w[t] = (struct worker){ .id = t, .count = count, .pad = pad };
		cr_assert_eq(pthread_create(&th[t], NULL, worker_run, &w[t]), 0);
	}
	for (t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
}

Test(log, threads_to_file)
{
	size_t len;
	char *buf;

	capture(LOG_INFO);
	threads_run(PER_THREAD, 40);
	buf = captured(&len);
	expect_lines(buf, len, PER_THREAD, 40);
	free(buf);
}

struct drain {
	int fd;
	char *buf;
	size_t len, cap;
};

static void *drain_run(void *arg)
{
	struct drain *d = arg;

	for (;;) {
		ssize_t n;

		if (d->cap - d->len < 65536) {
			d->cap = d->cap * 2 + 65536;
			d->buf = realloc(d->buf, d->cap);
			cr_assert_not_null(d->buf);
		}
		n = read(d->fd, d->buf + d->len, d->cap - d->len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		d->len += (size_t)n;
	}
	return NULL;
}

/* Lines far beyond PIPE_BUF (so write(2) may return short) still never interleave. */
Test(log, threads_to_pipe_with_long_lines)
{
	struct drain d = { 0 };
	pthread_t reader;
	int fds[2];

	cr_assert_eq(pipe(fds), 0);
	d.fd = fds[0];
	cr_assert_eq(pthread_create(&reader, NULL, drain_run, &d), 0);
	log_init(LOG_INFO, fds[1]);
	threads_run(250, 3000); /* about 18 KB of JSON a line */
	close(fds[1]);
	pthread_join(reader, NULL);
	close(fds[0]);
	expect_lines(d.buf, d.len, 250, 3000);
	free(d.buf);
}
