/* Tests gateway/metrics.c: counters, gauges, status counts and their Prometheus text rendering. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/metrics.h"

/*
 * The metrics are process-wide. Criterion runs each Test in its own process, but the tests
 * still read values as deltas (before, act, after) so they hold in any order in one process.
 */

#define FAMILIES_MAX 64
#define SAMPLES_MAX  1024

struct family {
	char name[128];
	char type[16];
	int help, has_samples, closed;
};

struct sample {
	char name[128];
	char labels[256]; /* as written between the braces, "" when none */
	char value[64];   /* as written */
};

/* A parsed exposition; err says why the text was refused. */
struct expo {
	struct family fam[FAMILIES_MAX];
	size_t nfam;
	struct sample smp[SAMPLES_MAX];
	size_t nsmp;
	char err[1536]; /* room for a whole line */
};

/* Refuses the text: records why (with the line number) and returns -1 from the parser. */
#define EXPECT(e, lineno, cond, ...)                                                     \
	do {                                                                             \
		if (!(cond)) {                                                           \
			char *err_ = (e)->err;                                           \
			int at_ = snprintf(err_, sizeof((e)->err), "line %d: ", lineno); \
			snprintf(err_ + at_, sizeof((e)->err) - (size_t)at_, __VA_ARGS__); \
			return -1;                                                       \
		}                                                                        \
	} while (0)

static int name_valid(const char *s, size_t n)
{
	size_t i;

	if (!n)
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];
		int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');

		if (!alpha && c != '_' && c != ':' && !(i && c >= '0' && c <= '9'))
			return 0;
	}
	return 1;
}

static int label_name_valid(const char *s, size_t n)
{
	return name_valid(s, n) && !memchr(s, ':', n);
}

/* A float as the format allows: decimal or exponent notation, or NaN, +Inf, -Inf. */
static int value_valid(const char *s)
{
	char *end;

	if (!strcmp(s, "NaN") || !strcmp(s, "+Inf") || !strcmp(s, "-Inf"))
		return 1;
	/* strtod also takes hex, "inf", "nan" and leading blanks; the format does not */
	if (!*s || strpbrk(s, "xXpPiInN \t"))
		return 0;
	(void)strtod(s, &end);
	return *end == '\0';
}

static struct family *family_find(struct expo *e, const char *name, size_t n)
{
	size_t i;

	for (i = 0; i < e->nfam; i++)
		if (strlen(e->fam[i].name) == n && !memcmp(e->fam[i].name, name, n))
			return &e->fam[i];
	return NULL;
}

static struct family *family_get(struct expo *e, const char *name, size_t n)
{
	struct family *f = family_find(e, name, n);

	if (f || e->nfam == FAMILIES_MAX || n >= sizeof(f->name))
		return f;
	f = &e->fam[e->nfam++];
	memset(f, 0, sizeof(*f));
	memcpy(f->name, name, n);
	return f;
}

/* "# HELP name text" or "# TYPE name type"; other comments are allowed and skipped. */
static int parse_comment(struct expo *e, const char *line, int lineno)
{
	const char *name, *p, *b;
	struct family *f;
	size_t n;
	int help;

	if (strncmp(line, "# HELP ", 7) && strncmp(line, "# TYPE ", 7))
		return 0;
	help = line[2] == 'H';
	name = line + 7;
	n = strcspn(name, " ");
	EXPECT(e, lineno, name_valid(name, n), "bad metric name in '%s'", line);
	EXPECT(e, lineno, name[n] == ' ', "nothing after the name in '%s'", line);
	p = name + n + 1;
	f = family_get(e, name, n);
	EXPECT(e, lineno, f, "too many families");
	EXPECT(e, lineno, !f->has_samples, "%s after samples of %s", help ? "HELP" : "TYPE",
	       f->name);
	if (help) {
		EXPECT(e, lineno, !f->help, "second HELP for %s", f->name);
		EXPECT(e, lineno, *p, "empty HELP for %s", f->name);
		/* the only escapes in HELP are \\ and \n */
		for (b = strchr(p, '\\'); b; b = strchr(b + 2, '\\'))
			EXPECT(e, lineno, b[1] == '\\' || b[1] == 'n', "bad escape in HELP");
		f->help = 1;
		return 0;
	}
	EXPECT(e, lineno, !f->type[0], "second TYPE for %s", f->name);
	EXPECT(e, lineno,
	       !strcmp(p, "counter") || !strcmp(p, "gauge") || !strcmp(p, "histogram") ||
		       !strcmp(p, "summary") || !strcmp(p, "untyped"),
	       "bad type '%s'", p);
	snprintf(f->type, sizeof(f->type), "%s", p);
	return 0;
}

/* name{label="value",...} value [timestamp] */
static int parse_sample(struct expo *e, const char *line, int lineno)
{
	struct sample *s;
	struct family *f;
	const char *p = line, *v, *start;
	size_t n = strcspn(line, "{ ");
	char *end;

	EXPECT(e, lineno, name_valid(line, n), "bad sample name in '%s'", line);
	EXPECT(e, lineno, e->nsmp < SAMPLES_MAX, "too many samples");
	s = &e->smp[e->nsmp++];
	memset(s, 0, sizeof(*s));
	EXPECT(e, lineno, n < sizeof(s->name), "name too long");
	memcpy(s->name, line, n);
	p += n;
	if (*p == '{') {
		start = ++p;
		while (*p != '}') {
			size_t ln = strcspn(p, "=");

			EXPECT(e, lineno, label_name_valid(p, ln) && p[ln] == '=',
			       "bad label name in '%s'", line);
			p += ln;
			EXPECT(e, lineno, p[1] == '"', "label value not quoted in '%s'", line);
			for (p += 2; *p != '"'; p++) {
				EXPECT(e, lineno, *p, "unterminated label value in '%s'", line);
				if (*p == '\\') {
					p++;
					EXPECT(e, lineno, *p == '\\' || *p == '"' || *p == 'n',
					       "bad escape in label value in '%s'", line);
				}
			}
			p++;
			EXPECT(e, lineno, *p == ',' || *p == '}', "junk after label in '%s'", line);
			if (*p == ',')
				p++;
		}
		EXPECT(e, lineno, (size_t)(p - start) < sizeof(s->labels), "labels too long");
		memcpy(s->labels, start, (size_t)(p - start));
		p++;
	}
	EXPECT(e, lineno, *p == ' ', "no value in '%s'", line);
	v = ++p;
	n = strcspn(v, " ");
	EXPECT(e, lineno, n < sizeof(s->value), "value too long");
	memcpy(s->value, v, n);
	EXPECT(e, lineno, value_valid(s->value), "bad value '%s'", s->value);
	if (v[n] == ' ') {
		(void)strtoll(v + n + 1, &end, 10);
		EXPECT(e, lineno, end != v + n + 1 && *end == '\0' && v[n + 1] != ' ',
		       "bad timestamp in '%s'", line);
	}

	/* counters and gauges: the sample's name is its family's */
	f = family_find(e, s->name, strlen(s->name));
	EXPECT(e, lineno, f && f->help, "sample %s without HELP before it", s->name);
	EXPECT(e, lineno, f->type[0], "sample %s without TYPE before it", s->name);
	EXPECT(e, lineno, !f->closed, "samples of %s not in one group", s->name);
	if (!strcmp(f->type, "counter"))
		EXPECT(e, lineno, s->value[0] != '-', "negative counter %s", s->name);
	f->has_samples = 1;
	return 0;
}

/* Parses text as exposition format 0.0.4: 0, or -1 with the reason in e->err. */
static int expo_parse(struct expo *e, const char *text, size_t len)
{
	const char *p = text;
	struct family *cur = NULL;
	int lineno = 0;
	size_t i, j;

	memset(e, 0, sizeof(*e));
	EXPECT(e, 0, strlen(text) == len, "NUL inside the text or wrong length");
	EXPECT(e, 0, len > 0 && text[len - 1] == '\n', "last line not terminated");
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = (size_t)(nl - p);
		char line[1024];

		lineno++;
		EXPECT(e, lineno, n < sizeof(line), "line too long");
		memcpy(line, p, n);
		line[n] = '\0';
		EXPECT(e, lineno, !strchr(line, '\r'), "CR in line");
		if (line[0] == '#') {
			if (parse_comment(e, line, lineno))
				return -1;
		} else if (line[0]) {
			struct family *f;

			if (parse_sample(e, line, lineno))
				return -1;
			f = family_find(e, e->smp[e->nsmp - 1].name,
					strlen(e->smp[e->nsmp - 1].name));
			if (cur && cur != f)
				cur->closed = 1;
			cur = f;
		}
		p = nl + 1;
	}
	/* one sample per name and label set */
	for (i = 0; i < e->nsmp; i++)
		for (j = i + 1; j < e->nsmp; j++)
			EXPECT(e, 0, strcmp(e->smp[i].name, e->smp[j].name) ||
				     strcmp(e->smp[i].labels, e->smp[j].labels),
			       "duplicate sample %s{%s}", e->smp[i].name, e->smp[i].labels);
	/* every family described has both HELP and TYPE */
	for (i = 0; i < e->nfam; i++)
		EXPECT(e, 0, e->fam[i].help && e->fam[i].type[0], "family %s incomplete",
		       e->fam[i].name);
	return 0;
}

/* The value text of name{labels}, or NULL. */
static const char *expo_value(const struct expo *e, const char *name, const char *labels)
{
	size_t i;

	for (i = 0; i < e->nsmp; i++)
		if (!strcmp(e->smp[i].name, name) && !strcmp(e->smp[i].labels, labels))
			return e->smp[i].value;
	return NULL;
}

static const char *expo_type(struct expo *e, const char *name)
{
	struct family *f = family_find(e, name, strlen(name));

	return f ? f->type : NULL;
}

static struct expo *render_parse(void)
{
	struct expo *e = calloc(1, sizeof(*e));
	size_t len = 0;
	char *text;

	cr_assert_not_null(e);
	text = metrics_render(&len);
	cr_assert_not_null(text);
	cr_assert_eq(expo_parse(e, text, len), 0, "%s\n%s", e->err, text);
	free(text);
	return e;
}

static void assert_u64(const char *got, uint64_t want, const char *what)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRIu64, want);
	cr_assert_not_null(got, "%s missing", what);
	cr_assert_str_eq(got, buf, "%s", what);
}

static void assert_i64(const char *got, int64_t want, const char *what)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRId64, want);
	cr_assert_not_null(got, "%s missing", what);
	cr_assert_str_eq(got, buf, "%s", what);
}

static const char *const counter_names[METRICS__COUNTERS] = {
	[METRICS_BYTES_RELAYED] = "fsg_gateway_relayed_bytes_total",
	[METRICS_FAILOVERS] = "fsg_gateway_failovers_total",
	[METRICS_AUTH_FAILURES] = "fsg_gateway_auth_failures_total",
	[METRICS_RATE_LIMITED] = "fsg_gateway_rate_limited_total",
	[METRICS_REDIS_ERRORS] = "fsg_gateway_redis_errors_total",
	[METRICS_UPSTREAM_ERRORS] = "fsg_gateway_upstream_errors_total",
	[METRICS_CLIENT_ABORTS] = "fsg_gateway_client_aborts_total",
	[METRICS_TIMEOUTS] = "fsg_gateway_timeouts_total",
};

static const char *const gauge_names[METRICS__GAUGES] = {
	[METRICS_ACTIVE_UPLOADS] = "fsg_gateway_active_uploads",
	[METRICS_POOL_SIZE] = "fsg_gateway_pool_servers",
	[METRICS_POOL_AVAILABLE] = "fsg_gateway_pool_available_servers",
	[METRICS_SNAPSHOT_AGE_MS] = "fsg_gateway_pool_snapshot_age_milliseconds",
};

#define REQUESTS "fsg_gateway_requests_total"

Test(metrics, counters_add)
{
	int c;

	for (c = 0; c < METRICS__COUNTERS; c++) {
		uint64_t before = metrics_counter_get(c);

		metrics_add(c, 3);
		metrics_add(c, 0);
		metrics_add(c, (uint64_t)c);
		cr_assert_eq(metrics_counter_get(c), before + 3 + (uint64_t)c, "counter %d", c);
	}
	/* each counter is its own */
	{
		uint64_t a = metrics_counter_get(METRICS_FAILOVERS);
		uint64_t b = metrics_counter_get(METRICS_TIMEOUTS);

		metrics_add(METRICS_FAILOVERS, 1);
		cr_assert_eq(metrics_counter_get(METRICS_FAILOVERS), a + 1);
		cr_assert_eq(metrics_counter_get(METRICS_TIMEOUTS), b);
	}
}

Test(metrics, counter_large_values_exact)
{
	uint64_t before = metrics_counter_get(METRICS_BYTES_RELAYED);
	uint64_t big = (UINT64_C(1) << 53) + 1; /* not a double: must print exactly */
	struct expo *e;

	metrics_add(METRICS_BYTES_RELAYED, big);
	cr_assert_eq(metrics_counter_get(METRICS_BYTES_RELAYED), before + big);
	e = render_parse();
	assert_u64(expo_value(e, counter_names[METRICS_BYTES_RELAYED], ""), before + big,
		   "relayed bytes");
	free(e);
}

/* Not promised by the header, but the bounds checks keep a bad value off the arrays' ends. */
Test(metrics, out_of_range_enums_ignored)
{
	uint64_t c[METRICS__COUNTERS];
	int64_t g[METRICS__GAUGES];
	int i, neg = -1;

	for (i = 0; i < METRICS__COUNTERS; i++)
		c[i] = metrics_counter_get(i);
	for (i = 0; i < METRICS__GAUGES; i++)
		g[i] = metrics_gauge_get(i);
	metrics_add(METRICS__COUNTERS, 5);
	metrics_add(neg, 5);
	metrics_gauge_add(METRICS__GAUGES, 5);
	metrics_gauge_set(METRICS__GAUGES, 5);
	metrics_gauge_set(neg, 5);
	cr_assert_eq(metrics_counter_get(METRICS__COUNTERS), 0);
	cr_assert_eq(metrics_gauge_get(METRICS__GAUGES), 0);
	for (i = 0; i < METRICS__COUNTERS; i++)
		cr_assert_eq(metrics_counter_get(i), c[i]);
	for (i = 0; i < METRICS__GAUGES; i++)
		cr_assert_eq(metrics_gauge_get(i), g[i]);
}

Test(metrics, status_counts)
{
	uint64_t s200 = metrics_status_get(200), s404 = metrics_status_get(404);
	uint64_t s100 = metrics_status_get(100), s599 = metrics_status_get(599);
	uint64_t s500 = metrics_status_get(500);
	int i;

	for (i = 0; i < 3; i++)
		metrics_status(200);
	metrics_status(404);
	metrics_status(100);
	metrics_status(599);
	cr_assert_eq(metrics_status_get(200), s200 + 3);
	cr_assert_eq(metrics_status_get(404), s404 + 1);
	cr_assert_eq(metrics_status_get(100), s100 + 1);
	cr_assert_eq(metrics_status_get(599), s599 + 1);
	cr_assert_eq(metrics_status_get(500), s500);
}

Test(metrics, status_out_of_range_is_other)
{
	static const int odd[] = {0, -1, 99, 600, 1000, INT_MIN, INT_MAX};
	uint64_t other = metrics_status_get(99);
	uint64_t s100 = metrics_status_get(100), s599 = metrics_status_get(599);
	size_t i;
	struct expo *e;

	for (i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
		metrics_status(odd[i]);
	/* every out-of-range status reads the one "other" count */
	for (i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
		cr_assert_eq(metrics_status_get(odd[i]), other + 7, "status %d", odd[i]);
	cr_assert_eq(metrics_status_get(100), s100, "the edges of the range are not other");
	cr_assert_eq(metrics_status_get(599), s599);

	e = render_parse();
	assert_u64(expo_value(e, REQUESTS, "status=\"other\""), other + 7, "other");
	free(e);
}

Test(metrics, gauges_add_set)
{
	int g;

	for (g = 0; g < METRICS__GAUGES; g++) {
		int64_t before = metrics_gauge_get(g);

		metrics_gauge_add(g, 5);
		cr_assert_eq(metrics_gauge_get(g), before + 5);
		metrics_gauge_add(g, -2);
		cr_assert_eq(metrics_gauge_get(g), before + 3);
		metrics_gauge_set(g, 10);
		cr_assert_eq(metrics_gauge_get(g), 10);
		metrics_gauge_add(g, -15);
		cr_assert_eq(metrics_gauge_get(g), -5, "gauge %d goes below zero", g);
		metrics_gauge_add(g, 0);
		cr_assert_eq(metrics_gauge_get(g), -5);
	}
	metrics_gauge_set(METRICS_POOL_SIZE, 7);
	metrics_gauge_set(METRICS_POOL_AVAILABLE, 3);
	cr_assert_eq(metrics_gauge_get(METRICS_POOL_SIZE), 7, "each gauge is its own");
	metrics_gauge_set(METRICS_SNAPSHOT_AGE_MS, INT64_MAX);
	cr_assert_eq(metrics_gauge_get(METRICS_SNAPSHOT_AGE_MS), INT64_MAX);
	metrics_gauge_set(METRICS_SNAPSHOT_AGE_MS, INT64_MIN);
	cr_assert_eq(metrics_gauge_get(METRICS_SNAPSHOT_AGE_MS), INT64_MIN);
	metrics_gauge_set(METRICS_SNAPSHOT_AGE_MS, 0); /* no extreme left for a later add */
}

Test(metrics, render_valid_and_matches)
{
	struct expo *e;
	size_t len = 12345, k;
	char *text;
	int i;

	metrics_status(200);
	metrics_status(201);
	metrics_status(503);
	metrics_status(42);
	metrics_add(METRICS_AUTH_FAILURES, 2);
	metrics_add(METRICS_REDIS_ERRORS, 1);
	metrics_gauge_set(METRICS_ACTIVE_UPLOADS, 4);
	metrics_gauge_set(METRICS_POOL_SIZE, 9);
	metrics_gauge_set(METRICS_POOL_AVAILABLE, 2);
	metrics_gauge_add(METRICS_POOL_AVAILABLE, -5);
	metrics_gauge_set(METRICS_SNAPSHOT_AGE_MS, 1500);

	text = metrics_render(&len);
	cr_assert_not_null(text);
	cr_assert_eq(len, strlen(text));
	free(text);
	text = metrics_render(NULL); /* len is optional */
	cr_assert_not_null(text);
	free(text);

	e = render_parse();
	cr_assert_str_eq(expo_type(e, REQUESTS), "counter");
	for (i = 0; i < METRICS__COUNTERS; i++) {
		cr_assert_str_eq(expo_type(e, counter_names[i]), "counter", "%s", counter_names[i]);
		assert_u64(expo_value(e, counter_names[i], ""), metrics_counter_get(i),
			   counter_names[i]);
	}
	for (i = 0; i < METRICS__GAUGES; i++) {
		cr_assert_str_eq(expo_type(e, gauge_names[i]), "gauge", "%s", gauge_names[i]);
		assert_i64(expo_value(e, gauge_names[i], ""), metrics_gauge_get(i), gauge_names[i]);
	}
	cr_assert_eq(metrics_gauge_get(METRICS_POOL_SIZE), 9);
	cr_assert_str_eq(expo_value(e, gauge_names[METRICS_SNAPSHOT_AGE_MS], ""), "1500");
	cr_assert_str_eq(expo_value(e, gauge_names[METRICS_POOL_AVAILABLE], ""), "-3");

	/* each status sample matches its count; statuses never seen have no sample */
	for (i = 100; i <= 599; i++) {
		char labels[32];
		const char *v;

		snprintf(labels, sizeof(labels), "status=\"%d\"", i);
		v = expo_value(e, REQUESTS, labels);
		if (metrics_status_get(i))
			assert_u64(v, metrics_status_get(i), labels);
		else
			cr_assert_null(v, "%s has a sample at 0", labels);
	}
	assert_u64(expo_value(e, REQUESTS, "status=\"other\""), metrics_status_get(42), "other");
	cr_assert_null(expo_value(e, REQUESTS, "status=\"42\""));
	cr_assert_null(expo_value(e, REQUESTS, ""));
	/* every sample is one of the above: requests by status, counters and gauges */
	for (k = 0; k < e->nsmp; k++) {
		const char *n = e->smp[k].name;
		int known = !strcmp(n, REQUESTS), j;

		for (j = 0; j < METRICS__COUNTERS; j++)
			known |= !strcmp(n, counter_names[j]);
		for (j = 0; j < METRICS__GAUGES; j++)
			known |= !strcmp(n, gauge_names[j]);
		cr_assert(known, "unexpected sample %s", n);
		if (strcmp(n, REQUESTS))
			cr_assert_str_eq(e->smp[k].labels, "", "%s", n);
	}
	free(e);
}

Test(metrics, render_follows_changes)
{
	uint64_t before = metrics_counter_get(METRICS_CLIENT_ABORTS);
	uint64_t s418 = metrics_status_get(418);
	struct expo *e;

	e = render_parse();
	assert_u64(expo_value(e, counter_names[METRICS_CLIENT_ABORTS], ""), before, "before");
	free(e);
	metrics_add(METRICS_CLIENT_ABORTS, 11);
	metrics_status(418);
	metrics_gauge_set(METRICS_ACTIVE_UPLOADS, -7);
	e = render_parse();
	assert_u64(expo_value(e, counter_names[METRICS_CLIENT_ABORTS], ""), before + 11, "after");
	assert_u64(expo_value(e, REQUESTS, "status=\"418\""), s418 + 1, "418");
	assert_i64(expo_value(e, gauge_names[METRICS_ACTIVE_UPLOADS], ""), -7, "active");
	free(e);
}

/* The parser itself must refuse what the format forbids, or the checks above prove nothing. */
static const char *parse_err(const char *text)
{
	static struct expo e;

	return expo_parse(&e, text, strlen(text)) ? e.err : NULL;
}

#define HG "# HELP g G.\n# TYPE g gauge\n"

Test(metrics_parser, accepts_good)
{
	static const char *const good[] = {
		"# HELP a_b:c Help \\\\ and \\n.\n# TYPE a_b:c counter\na_b:c 1\n",
		"# TYPE g gauge\n# HELP g G.\ng{x=\"1\",y=\"a\\\"b\\n\\\\\"} -2.5e3 1700000000000\n"
		"g{x=\"2\"} NaN\n# a comment\n\ng{x=\"3\"} +Inf\n",
		HG "g{x=\"1\",} 0.5\n", /* a trailing comma is allowed */
		HG,                     /* a family without samples */
	};
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_assert_null(parse_err(good[i]), "case %zu: %s", i, parse_err(good[i]));
}

Test(metrics_parser, refuses_bad)
{
	static const char *const bad[] = {
		"g 1\n",                                         /* no HELP, no TYPE */
		"# HELP g G.\ng 1\n",                            /* no TYPE */
		"# TYPE g gauge\ng 1\n",                         /* no HELP */
		"g 1\n" HG,                                      /* HELP and TYPE after */
		HG "g 1",                                        /* last line unterminated */
		HG "1g 1\n",                                     /* bad name */
		HG "g-x 1\n",
		"# HELP 9g G.\n# TYPE 9g gauge\n9g 1\n",
		HG "g{x=1} 1\n",                                 /* label value not quoted */
		HG "g{x=\"1} 1\n",                               /* unterminated */
		HG "g{x=\"\\t\"} 1\n",                           /* bad escape */
		HG "g{x:y=\"1\"} 1\n",                           /* bad label name */
		HG "g{x=\"1\"y=\"2\"} 1\n",
		HG "g one\n",                                    /* value not numeric */
		HG "g 0x10\n",
		HG "g inf\n",
		HG "g 1 2 3\n",
		HG "g\n",
		HG "g  1\n",
		HG "g 1\r\n",
		HG "g 1\ng 2\n",                                 /* duplicate */
		HG "g{x=\"1\"} 1\n# HELP h H.\n# TYPE h gauge\nh 1\ng{x=\"2\"} 1\n", /* split */
		"# HELP c C.\n# TYPE c counter\nc -1\n",         /* negative counter */
		"# HELP g G.\n# HELP g G.\n# TYPE g gauge\n",    /* second HELP */
		HG "# TYPE g counter\n",                         /* second TYPE */
		"# HELP g G.\n# TYPE g meter\n",                 /* bad type */
		"# HELP g bad \\x escape\n# TYPE g gauge\n",
		"# HELP g G.\n",                                 /* HELP alone */
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_not_null(parse_err(bad[i]), "case %zu accepted: %s", i, bad[i]);
}

#define THREADS 8
#define ROUNDS  100000

struct hammer {
	pthread_barrier_t *barrier;
	int id;
	long bad; /* the render thread's refused or backward renders */
};

static void *hammer_run(void *arg)
{
	struct hammer *h = arg;
	int i;

	pthread_barrier_wait(h->barrier);
	for (i = 0; i < ROUNDS; i++) {
		metrics_add(METRICS_BYTES_RELAYED, 3);
		metrics_add(METRICS_UPSTREAM_ERRORS, 1);
		metrics_status(h->id % 2 ? 201 : 204);
		metrics_status(-h->id);
		metrics_gauge_add(METRICS_ACTIVE_UPLOADS, 2);
		metrics_gauge_add(METRICS_ACTIVE_UPLOADS, -1);
	}
	return NULL;
}

/* Renders while the others write: each output stays valid and counters never go back. */
static void *render_run(void *arg)
{
	struct hammer *h = arg;
	struct expo *e = calloc(1, sizeof(*e));
	uint64_t last = 0;
	int i;

	h->bad = e ? 0 : -1;
	pthread_barrier_wait(h->barrier);
	for (i = 0; e && i < 200; i++) {
		size_t len;
		char *text = metrics_render(&len);
		const char *v;
		uint64_t n;

		if (!text || expo_parse(e, text, len)) {
			h->bad++;
			free(text);
			continue;
		}
		free(text);
		v = expo_value(e, counter_names[METRICS_UPSTREAM_ERRORS], "");
		n = v ? strtoull(v, NULL, 10) : 0;
		if (!v || n < last)
			h->bad++;
		last = n;
	}
	free(e);
	return NULL;
}

Test(metrics, concurrent_updates_sum_exactly, .timeout = 120)
{
	uint64_t bytes = metrics_counter_get(METRICS_BYTES_RELAYED);
	uint64_t errors = metrics_counter_get(METRICS_UPSTREAM_ERRORS);
	uint64_t s201 = metrics_status_get(201), s204 = metrics_status_get(204);
	uint64_t other = metrics_status_get(-1), s100 = metrics_status_get(100);
	int64_t active = metrics_gauge_get(METRICS_ACTIVE_UPLOADS);
	pthread_barrier_t barrier;
	struct hammer h[THREADS + 1];
	pthread_t t[THREADS + 1];
	struct expo *e;
	int i;

	cr_assert_eq(pthread_barrier_init(&barrier, NULL, THREADS + 1), 0);
	for (i = 0; i <= THREADS; i++) {
		h[i] = (struct hammer){&barrier, i, 0};
		cr_assert_eq(pthread_create(&t[i], NULL, i < THREADS ? hammer_run : render_run,
					    &h[i]), 0);
	}
	for (i = 0; i <= THREADS; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&barrier);
	cr_assert_eq(h[THREADS].bad, 0, "concurrent renders: %ld bad", h[THREADS].bad);

	cr_assert_eq(metrics_counter_get(METRICS_BYTES_RELAYED), bytes + 3ULL * THREADS * ROUNDS);
	cr_assert_eq(metrics_counter_get(METRICS_UPSTREAM_ERRORS),
		     errors + (uint64_t)THREADS * ROUNDS);
	cr_assert_eq(metrics_status_get(201), s201 + (uint64_t)THREADS / 2 * ROUNDS);
	cr_assert_eq(metrics_status_get(204), s204 + (uint64_t)THREADS / 2 * ROUNDS);
	/* thread 0 sent status 0, the others -1..-7: all "other" */
	cr_assert_eq(metrics_status_get(-1), other + (uint64_t)THREADS * ROUNDS);
	cr_assert_eq(metrics_status_get(100), s100);
	cr_assert_eq(metrics_gauge_get(METRICS_ACTIVE_UPLOADS),
		     active + (int64_t)THREADS * ROUNDS);

	e = render_parse();
	assert_u64(expo_value(e, counter_names[METRICS_BYTES_RELAYED], ""),
		   bytes + 3ULL * THREADS * ROUNDS, "bytes");
	assert_u64(expo_value(e, REQUESTS, "status=\"201\""), s201 + (uint64_t)THREADS / 2 * ROUNDS,
		   "201");
	assert_u64(expo_value(e, REQUESTS, "status=\"other\""), other + (uint64_t)THREADS * ROUNDS,
		   "other");
	assert_i64(expo_value(e, gauge_names[METRICS_ACTIVE_UPLOADS], ""),
		   active + (int64_t)THREADS * ROUNDS, "active");
	free(e);
}
