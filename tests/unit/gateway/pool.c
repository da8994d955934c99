/* Tests the gateway's pool snapshot and server choice (gateway/pool.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "gateway/pool.h"

#define NOW 1700000000000LL
#define STALE 3000
#define DOWN 5000

static const struct pool_config cfg = {STALE, DOWN};

static struct announce srv(const char *id, uint32_t capacity, uint32_t active, uint64_t free_bytes)
{
	struct announce a;

	memset(&a, 0, sizeof(a));
	snprintf(a.id, sizeof(a.id), "%s", id);
	snprintf(a.url, sizeof(a.url), "http://%s.dc:8443", id);
	a.capacity = capacity;
	a.active = active;
	a.free_bytes = free_bytes;
	a.heartbeat_ms = NOW;
	return a;
}

/* Field by field: struct copies need not copy padding. */
static int announce_eq(const struct announce *a, const struct announce *b)
{
	return !strcmp(a->id, b->id) && !strcmp(a->url, b->url) && a->capacity == b->capacity &&
	       a->active == b->active && a->free_bytes == b->free_bytes &&
	       a->draining == b->draining && a->heartbeat_ms == b->heartbeat_ms;
}

/* A fixed sequence of "random" values, repeated; counts the calls. */
struct seq {
	const uint32_t *v;
	size_t n, calls;
};

static uint32_t seq_next(void *arg)
{
	struct seq *s = arg;

	return s->v[s->calls++ % s->n];
}

/* xorshift32 (Marsaglia): a seeded, reproducible PRNG for the statistical tests. */
static uint32_t xorshift(void *arg)
{
	uint32_t *x = arg;

	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

static struct pool *pool_with(const struct announce *a, size_t n)
{
	struct pool *p = pool_new(&cfg);

	cr_assert_not_null(p);
	pool_update(p, a, n, NOW);
	return p;
}

/* Picks with rnd 0, 0 (the first two candidates by id); returns the id or "" when none. */
static const char *pick_id(struct pool *p, int64_t now, uint64_t need, const char *const *ex,
			   size_t n_ex, struct announce *out)
{
	static const uint32_t zero[] = {0};
	struct seq s = {zero, 1, 0};

	memset(out, 0, sizeof(*out));
	if (pool_pick(p, now, need, ex, n_ex, seq_next, &s, out))
		return "";
	return out->id;
}

Test(pool, config)
{
	static const struct {
		int64_t stale, down;
		int ok;
	} rows[] = {
		{0, 0, 1},
		{1, 1, 1},
		{86400000, 86400000, 1},
		{86400001, 0, 0},
		{0, 86400001, 0},
		{-1, 0, 0},
		{0, -1, 0},
		{INT64_MIN, INT64_MIN, 0},
		{INT64_MAX, 0, 0},
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct pool_config c = {rows[i].stale, rows[i].down};
		struct pool *p = pool_new(&c);

		cr_expect_eq(p != NULL, rows[i].ok, "row %zu", i);
		pool_free(p);
	}
	pool_free(NULL);
}

Test(pool, defaults)
{
	struct announce a = srv("a", 10, 0, 100);
	struct pool *p = pool_new(NULL);

	cr_assert_not_null(p);
	pool_update(p, &a, 1, NOW);
	/* stale_ms 3000 */
	cr_expect_eq(pool_available(p, NOW + 3000), 1);
	cr_expect_eq(pool_available(p, NOW + 3001), 0);
	/* down_ms 5000 (a heartbeat ahead keeps it fresh meanwhile) */
	a.heartbeat_ms = NOW + 100000;
	pool_update(p, &a, 1, NOW);
	pool_mark_down(p, "a", NOW);
	cr_expect_eq(pool_available(p, NOW + 4999), 0);
	cr_expect_eq(pool_available(p, NOW + 5000), 1);
	pool_free(p);

	p = pool_new(&(struct pool_config){0, 0});
	cr_assert_not_null(p);
	pool_update(p, &a, 1, NOW);
	pool_mark_down(p, "a", NOW - 5000);
	cr_expect_eq(pool_available(p, NOW - 1), 0);
	cr_expect_eq(pool_available(p, NOW), 1);
	pool_free(p);
}

/* One server against each rule a candidate must pass. */
Test(pool, candidate_rules)
{
	static const struct {
		const char *name;
		uint32_t capacity, active;
		uint64_t free_bytes;
		int draining;
		int64_t age;            /* now - heartbeat_ms */
		uint64_t need;
		const char *exclude[2];
		int starts;             /* pool_upload_started calls */
		int ok;
	} rows[] = {
		{"fresh", 10, 0, 100, 0, 0, 0, {NULL, NULL}, 0, 1},
		{"age stale_ms is fresh", 10, 0, 100, 0, STALE, 0, {NULL, NULL}, 0, 1},
		{"age stale_ms+1 is stale", 10, 0, 100, 0, STALE + 1, 0, {NULL, NULL}, 0, 0},
		{"very old", 10, 0, 100, 0, NOW, 0, {NULL, NULL}, 0, 0},
		{"heartbeat ahead of now", 10, 0, 100, 0, -100000, 0, {NULL, NULL}, 0, 1},
		{"draining", 10, 0, 100, 1, 0, 0, {NULL, NULL}, 0, 0},
		{"draining any nonzero", 10, 0, 100, 7, 0, 0, {NULL, NULL}, 0, 0},
		{"one slot left", 10, 9, 100, 0, 0, 0, {NULL, NULL}, 0, 1},
		{"full", 10, 10, 100, 0, 0, 0, {NULL, NULL}, 0, 0},
		{"over capacity", 10, 11, 100, 0, 0, 0, {NULL, NULL}, 0, 0},
		{"active max", 10, UINT32_MAX, 100, 0, 0, 0, {NULL, NULL}, 0, 0},
		{"capacity 0", 0, 0, 100, 0, 0, 0, {NULL, NULL}, 0, 0},
		{"capacity max", UINT32_MAX, UINT32_MAX - 1, 100, 0, 0, 0, {NULL, NULL}, 0, 1},
		{"full with local starts", 10, 8, 100, 0, 0, 0, {NULL, NULL}, 2, 0},
		{"one slot left with local", 10, 7, 100, 0, 0, 0, {NULL, NULL}, 2, 1},
		{"free == need", 10, 0, 100, 0, 0, 100, {NULL, NULL}, 0, 1},
		{"free == need - 1", 10, 0, 99, 0, 0, 100, {NULL, NULL}, 0, 0},
		{"need max", 10, 0, UINT64_MAX, 0, 0, UINT64_MAX, {NULL, NULL}, 0, 1},
		{"need max, less free", 10, 0, UINT64_MAX - 1, 0, 0, UINT64_MAX, {NULL}, 0, 0},
		{"free 0 need 0", 10, 0, 0, 0, 0, 0, {NULL, NULL}, 0, 1},
		{"excluded", 10, 0, 100, 0, 0, 0, {"s", NULL}, 0, 0},
		{"excluded second", 10, 0, 100, 0, 0, 0, {"t", "s"}, 0, 0},
		{"other excluded", 10, 0, 100, 0, 0, 0, {"t", "s-"}, 0, 1},
		{"prefix excluded", 10, 0, 100, 0, 0, 0, {"", "ss"}, 0, 1},
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct announce a = srv("s", rows[i].capacity, rows[i].active, rows[i].free_bytes);
		struct announce out;
		struct pool *p;
		int s;

		a.draining = rows[i].draining;
		a.heartbeat_ms = (uint64_t)(NOW - rows[i].age);
		p = pool_with(&a, 1);
		for (s = 0; s < rows[i].starts; s++)
			pool_upload_started(p, "s");
		cr_expect_str_eq(pick_id(p, NOW, rows[i].need, rows[i].exclude, 2, &out),
				 rows[i].ok ? "s" : "", "%s", rows[i].name);
		if (rows[i].ok)
			cr_expect(announce_eq(&out, &a), "%s: copied as announced", rows[i].name);
		/* pool_available: need 0, no exclusion */
		if (!rows[i].need && !rows[i].exclude[0] && !rows[i].exclude[1])
			cr_expect_eq(pool_available(p, NOW), (size_t)rows[i].ok, "%s",
				     rows[i].name);
		pool_free(p);
	}
}

Test(pool, none_leaves_out_and_rnd_alone)
{
	static const uint32_t v[] = {0};
	struct seq s = {v, 1, 0};
	struct announce a = srv("a", 10, 10, 100), out;
	struct pool *p = pool_new(&cfg);

	cr_assert_not_null(p);
	memset(&out, 0xa5, sizeof(out));
	/* empty, never updated */
	cr_expect_eq(pool_pick(p, NOW, 0, NULL, 0, seq_next, &s, &out), -1);
	cr_expect_eq(pool_available(p, NOW), 0);
	pool_update(p, &a, 1, NOW);
	cr_expect_eq(pool_pick(p, NOW, 0, NULL, 0, seq_next, &s, &out), -1);
	cr_expect_eq(s.calls, 0);
	cr_expect_eq(out.capacity, 0xa5a5a5a5u, "out written on failure");
	pool_free(p);
}

Test(pool, single_candidate_taken_without_rnd)
{
	static const uint32_t v[] = {12345};
	struct seq s = {v, 1, 0};
	struct announce a[] = {srv("a", 10, 10, 100), srv("b", 10, 9, 100), srv("c", 10, 0, 1)};
	struct announce out;
	struct pool *p = pool_with(a, 3);

	cr_expect_eq(pool_pick(p, NOW, 50, NULL, 0, seq_next, &s, &out), 0);
	cr_expect_str_eq(out.id, "b");
	cr_expect_eq(s.calls, 0);
	cr_expect_eq(pool_pick(p, NOW, 0, NULL, 0, seq_next, &s, &out), 0);
	cr_expect_eq(s.calls, 2);
	pool_free(p);
}

Test(pool, failover_excludes_tried)
{
	struct announce a[] = {srv("a", 10, 1, 100), srv("b", 10, 5, 100)};
	struct announce out;
	struct pool *p = pool_with(a, 2);
	const char *tried[2];

	tried[0] = "a";
	cr_expect_str_eq(pick_id(p, NOW, 0, NULL, 0, &out), "a");
	cr_expect_str_eq(pick_id(p, NOW, 0, tried, 1, &out), "b");
	tried[1] = "b";
	cr_expect_str_empty(pick_id(p, NOW, 0, tried, 2, &out));
	/* the exclusions are for this pick only */
	cr_expect_eq(pool_available(p, NOW), 2);
	pool_free(p);
}

/* The draw: the first value modulo count, the second modulo count - 1 among the others. */
Test(pool, p2c_takes_less_loaded_of_the_two_drawn)
{
	/* by id: a 0.2, b 0.5, c 0.8, d 0.5 (d with less space than b) */
	struct announce a[] = {srv("a", 10, 2, 100), srv("b", 100, 50, 100),
			       srv("c", 5, 4, 100), srv("d", 2, 1, 50)};
	static const struct {
		uint32_t x, y;
		const char *want;
	} rows[] = {
		{0, 0, "a"},            /* a, b */
		{1, 0, "a"},            /* b, a */
		{2, 0, "a"},            /* c, a */
		{2, 1, "b"},            /* c, b */
		{2, 2, "d"},            /* c, d */
		{1, 1, "b"},            /* b, c */
		{1, 2, "b"},            /* b, d: equal load, b has more space */
		{3, 1, "b"},            /* d, b */
		{3, 2, "d"},            /* d, c */
		{4, 4, "a"},            /* 4 % 4: a; 4 % 3 = 1, past a: c */
		{7, 5, "d"},            /* 7 % 4: d; 5 % 3 = 2, before d: c */
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		uint32_t v[2] = {rows[i].x, rows[i].y};
		struct seq s = {v, 2, 0};
		struct announce out;
		struct pool *p = pool_with(a, 4);

		cr_expect_eq(pool_pick(p, NOW, 0, NULL, 0, seq_next, &s, &out), 0);
		cr_expect_str_eq(out.id, rows[i].want, "row %zu", i);
		cr_expect_eq(s.calls, 2);
		pool_free(p);
	}
}

Test(pool, draw_uses_modulo_and_skips_first)
{
	struct announce a[] = {srv("a", 10, 9, 100), srv("b", 10, 5, 100), srv("c", 10, 1, 100)};
	static const struct {
		uint32_t x, y;
		const char *want;
	} rows[] = {
		{0, 0, "b"},                    /* a; 0: b */
		{3, 3, "c"},                    /* 3 % 3: a; 3 % 2 = 1, past a: c */
		{UINT32_MAX, UINT32_MAX, "c"},  /* % 3 = 0: a; % 2 = 1, past a: c */
		{1, 1, "c"},                    /* b; 1, past b: c (never b twice) */
		{1, 0, "b"},                    /* b; 0: a */
		{4, 2, "b"},                    /* 4 % 3: b; 2 % 2 = 0: a */
		{5, 1, "c"},                    /* 5 % 3: c; 1: b */
		{5, 0, "c"},                    /* c; a */
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		uint32_t v[2] = {rows[i].x, rows[i].y};
		struct seq s = {v, 2, 0};
		struct announce out;
		struct pool *p = pool_with(a, 3);

		cr_expect_eq(pool_pick(p, NOW, 0, NULL, 0, seq_next, &s, &out), 0);
		cr_expect_str_eq(out.id, rows[i].want, "row %zu", i);
		pool_free(p);
	}
}

Test(pool, ties)
{
	/* equal load 1/2 in different terms; b has more space */
	struct announce a[] = {srv("a", 10, 5, 100), srv("b", 1000000, 500000, 101),
			       srv("c", 2, 1, 100)};
	static const struct {
		uint32_t x, y;
		const char *want;
	} rows[] = {
		{0, 0, "b"},    /* a, b: more space */
		{1, 0, "b"},    /* b, a */
		{0, 1, "a"},    /* a, c: all equal, the first drawn */
		{2, 0, "c"},    /* c, a */
		{2, 1, "b"},    /* c, b */
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		uint32_t v[2] = {rows[i].x, rows[i].y};
		struct seq s = {v, 2, 0};
		struct announce out;
		struct pool *p = pool_with(a, 3);

		cr_expect_eq(pool_pick(p, NOW, 0, NULL, 0, seq_next, &s, &out), 0);
		cr_expect_str_eq(out.id, rows[i].want, "row %zu", i);
		pool_free(p);
	}
}

/*
 * Loads that differ by about 2^-64: as doubles both are 0.9999999997671694, so a float
 * comparison would fall through to free_bytes and take b. The cross products tell them apart.
 */
Test(pool, load_compared_exactly)
{
	struct announce a[] = {srv("a", 4294967294u, 4294967293u, 1),
			       srv("b", 4294967295u, 4294967294u, 1000)};
	static const uint32_t v[] = {1, 0};
	struct seq s = {v, 2, 0};
	struct announce out;
	struct pool *p = pool_with(a, 2);

	cr_expect_eq(pool_pick(p, NOW, 0, NULL, 0, seq_next, &s, &out), 0);
	cr_expect_str_eq(out.id, "a");
	pool_free(p);
}

static void shares(struct pool *p, uint32_t seed, size_t picks, size_t counts[3])
{
	static const char *const ids[] = {"hi", "lo", "mid"};
	uint32_t x = seed;
	size_t i, j;

	counts[0] = counts[1] = counts[2] = 0;
	for (i = 0; i < picks; i++) {
		struct announce out;

		cr_assert_eq(pool_pick(p, NOW, 0, NULL, 0, xorshift, &x, &out), 0);
		for (j = 0; j < 3; j++)
			if (!strcmp(out.id, ids[j]))
				counts[j]++;
	}
	cr_assert_eq(counts[0] + counts[1] + counts[2], picks);
}

/*
 * Spreading by load, not round robin. With loads 0.9, 0.5 and 0.1 every pair is drawn a third
 * of the time and its less loaded member wins: about 0%, 33% and 67%. A round-robin picker
 * would give each a third and fail the ordering (and the most loaded server's 15% bound); a
 * "least loaded always" picker would give 100% to one and fail the middle share.
 */
Test(pool, spreads_by_load)
{
	struct announce a[] = {srv("hi", 100, 90, 100), srv("lo", 100, 10, 100),
			       srv("mid", 100, 50, 100)};
	struct pool *p = pool_with(a, 3);
	size_t c[3];            /* hi, lo, mid */
	const size_t n = 30000;

	shares(p, 2463534242u, n, c);
	cr_expect_gt(c[1], c[2], "least loaded %zu > middle %zu", c[1], c[2]);
	cr_expect_gt(c[2], c[0], "middle %zu > most loaded %zu", c[2], c[0]);
	cr_expect_lt(c[0] * 100, n * 15, "most loaded %zu of %zu", c[0], n);
	/* the expected shares, within 3% */
	cr_expect_lt(c[1] * 100, n * 70);
	cr_expect_gt(c[1] * 100, n * 64);
	cr_expect_lt(c[2] * 100, n * 37);
	cr_expect_gt(c[2] * 100, n * 30);
	pool_free(p);
}

Test(pool, equal_loads_share_evenly)
{
	/* same load 1/2, same space: only the draw decides */
	struct announce a[] = {srv("hi", 100, 50, 100), srv("lo", 10, 5, 100),
			       srv("mid", 2, 1, 100)};
	struct pool *p = pool_with(a, 3);
	size_t c[3], i;
	const size_t n = 30000;

	shares(p, 88172645u, n, c);
	for (i = 0; i < 3; i++) {
		cr_expect_gt(c[i] * 100, n * 30, "server %zu: %zu of %zu", i, c[i], n);
		cr_expect_lt(c[i] * 100, n * 36, "server %zu: %zu of %zu", i, c[i], n);
	}
	pool_free(p);
}

Test(pool, local_in_flight_shifts_choice)
{
	struct announce a[] = {srv("hi", 100, 90, 100), srv("lo", 100, 10, 100),
			       srv("mid", 100, 50, 100)};
	struct pool *p = pool_with(a, 3);
	size_t c[3];
	const size_t n = 30000;
	int i;

	shares(p, 1u, n, c);
	cr_expect_gt(c[1], c[2]);
	/* 60 creations sent to the idle server: 10 + 60 = 70 > mid's 50 */
	for (i = 0; i < 60; i++)
		pool_upload_started(p, "lo");
	shares(p, 1u, n, c);
	cr_expect_gt(c[2], c[1], "mid %zu > lo %zu after local starts", c[2], c[1]);
	cr_expect_gt(c[1], c[0]);
	/* a pool_update with the same heartbeat keeps counting them */
	pool_update(p, a, 3, NOW + 500);
	shares(p, 1u, n, c);
	cr_expect_gt(c[2], c[1]);
	/* they end: back as before */
	for (i = 0; i < 60; i++)
		pool_upload_ended(p, "lo");
	shares(p, 1u, n, c);
	cr_expect_gt(c[1], c[2], "lo %zu > mid %zu after ends", c[1], c[2]);
	/* unknown ids are ignored */
	pool_upload_started(p, "nope");
	pool_upload_ended(p, "nope");
	pool_upload_started(p, NULL);
	pool_free(p);
}

/* Local counts last until a new heartbeat, which is taken to include them: never twice. */
Test(pool, heartbeat_resets_local_delta)
{
	struct announce a = srv("s", 100, 10, 100);
	struct pool *p = pool_with(&a, 1);
	int i;

	for (i = 0; i < 89; i++)
		pool_upload_started(p, "s");
	cr_expect_eq(pool_available(p, NOW), 1);        /* 99 */
	pool_upload_started(p, "s");
	cr_expect_eq(pool_available(p, NOW), 0);        /* 100 */
	pool_update(p, &a, 1, NOW + 100);               /* same heartbeat */
	cr_expect_eq(pool_available(p, NOW), 0);
	/* the next heartbeat shows our 90 and 5 others: 95, not 185 */
	a.active = 95;
	a.heartbeat_ms = NOW + 1000;
	pool_update(p, &a, 1, NOW + 1000);
	cr_expect_eq(pool_available(p, NOW + 1000), 1);
	pool_upload_started(p, "s");
	pool_upload_started(p, "s");
	pool_upload_started(p, "s");
	pool_upload_started(p, "s");
	cr_expect_eq(pool_available(p, NOW + 1000), 1); /* 99 */
	pool_upload_started(p, "s");
	cr_expect_eq(pool_available(p, NOW + 1000), 0); /* 100 */
	/* our ends since that heartbeat count against it too: 95 + 5 - 6 */
	for (i = 0; i < 6; i++)
		pool_upload_ended(p, "s");
	cr_expect_eq(pool_available(p, NOW + 1000), 1);
	pool_free(p);
}

Test(pool, ended_never_below_zero)
{
	struct announce a = srv("s", 10, 10, 100);
	struct pool *p = pool_with(&a, 1);
	int i;

	/* ends with nothing started are ignored: still full */
	for (i = 0; i < 5; i++)
		pool_upload_ended(p, "s");
	cr_expect_eq(pool_available(p, NOW), 0);
	/* two of ours, seen by the next heartbeat, then ended: 10 - 2 */
	pool_upload_started(p, "s");
	pool_upload_started(p, "s");
	a.heartbeat_ms = NOW + 1;
	pool_update(p, &a, 1, NOW + 1);
	cr_expect_eq(pool_available(p, NOW), 0);
	pool_upload_ended(p, "s");
	pool_upload_ended(p, "s");
	pool_upload_ended(p, "s");      /* one more than started: ignored */
	pool_upload_ended(p, "s");
	pool_upload_started(p, "s");    /* 8 + 1 */
	cr_expect_eq(pool_available(p, NOW), 1);
	pool_upload_started(p, "s");    /* 10: the extra ends did not count */
	cr_expect_eq(pool_available(p, NOW), 0);
	pool_free(p);

	/* the effective count never goes below 0 whatever the announcement says */
	a = srv("s", 1, 1, 100);
	p = pool_with(&a, 1);
	pool_upload_started(p, "s");
	a.active = 0;
	a.heartbeat_ms = NOW + 1;
	pool_update(p, &a, 1, NOW + 1);
	pool_upload_ended(p, "s");      /* max(0, 0 - 1) */
	cr_expect_eq(pool_available(p, NOW), 1);
	pool_upload_started(p, "s");    /* 0 - 1 + 1: the floor is on the sum, not each step */
	cr_expect_eq(pool_available(p, NOW), 1);
	pool_upload_started(p, "s");
	cr_expect_eq(pool_available(p, NOW), 0);
	pool_free(p);
}

Test(pool, down_marks)
{
	struct announce a[] = {srv("a", 10, 0, 100), srv("b", 10, 5, 100)};
	struct announce out;
	struct pool *p;

	/* heartbeats ahead keep both fresh through the test */
	a[0].heartbeat_ms = a[1].heartbeat_ms = NOW + 100000;
	p = pool_with(a, 2);
	cr_expect_str_eq(pick_id(p, NOW, 0, NULL, 0, &out), "a");
	pool_mark_down(p, "a", NOW);
	cr_expect_str_eq(pick_id(p, NOW, 0, NULL, 0, &out), "b");
	cr_expect_str_eq(pick_id(p, NOW + DOWN - 1, 0, NULL, 0, &out), "b");
	cr_expect_eq(pool_available(p, NOW + DOWN - 1), 1);
	cr_expect_str_eq(pick_id(p, NOW + DOWN, 0, NULL, 0, &out), "a");
	cr_expect_eq(pool_available(p, NOW + DOWN), 2);
	/* a later mark extends; an earlier one does not shorten */
	pool_mark_down(p, "a", NOW + 1000);
	pool_mark_down(p, "a", NOW);
	cr_expect_eq(pool_available(p, NOW + DOWN), 1);
	cr_expect_eq(pool_available(p, NOW + DOWN + 1000), 2);
	/* unknown ids ignored */
	pool_mark_down(p, "c", NOW);
	pool_mark_down(p, NULL, NOW);
	/* both down: none */
	pool_mark_down(p, "a", NOW);
	pool_mark_down(p, "b", NOW);
	cr_expect_str_empty(pick_id(p, NOW, 0, NULL, 0, &out));
	/* still found for routed requests */
	cr_expect_eq(pool_find(p, "a", &out), 0);
	/* a mark at the far end of time saturates rather than wrapping */
	pool_mark_down(p, "b", INT64_MAX - 1);
	cr_expect_eq(pool_available(p, NOW + DOWN + 1000), 1);
	pool_free(p);
}

Test(pool, update_keeps_local_state_of_survivors_only)
{
	struct announce a[] = {srv("a", 10, 8, 100), srv("b", 10, 0, 100), srv("c", 10, 0, 100)};
	struct announce out;
	struct pool *p;
	size_t i;

	/* heartbeats ahead (and never changing) keep all fresh through the test */
	for (i = 0; i < 3; i++)
		a[i].heartbeat_ms = NOW + 100000;
	p = pool_with(a, 3);
	pool_mark_down(p, "b", NOW);
	pool_upload_started(p, "a");
	pool_upload_started(p, "a");    /* a full: 8 + 2 */
	cr_expect_eq(pool_available(p, NOW), 1);
	/* c leaves, d arrives; a and b stay (same heartbeat): state kept */
	a[2] = srv("d", 10, 0, 100);
	a[2].heartbeat_ms = NOW + 100000;
	pool_update(p, a, 3, NOW + 10);
	cr_expect_eq(pool_available(p, NOW + 10), 1);
	cr_expect_str_eq(pick_id(p, NOW + 10, 0, NULL, 0, &out), "d");
	cr_expect_eq(pool_find(p, "c", &out), -1);
	/* b and a leave, then come back: down mark and in-flight count are gone; d keeps its */
	pool_mark_down(p, "d", NOW + 10);
	pool_update(p, &a[2], 1, NOW + 20);
	cr_expect_eq(pool_find(p, "a", &out), -1);
	cr_expect_eq(pool_find(p, "b", &out), -1);
	pool_update(p, a, 3, NOW + 30);
	cr_expect_eq(pool_available(p, NOW + 30), 2);
	cr_expect_str_empty(pick_id(p, NOW + 30, 0, (const char *const[]){"a", "b"}, 2, &out));
	cr_expect_eq(pool_available(p, NOW + 10 + DOWN), 3);
	/* an end for an upload started before a left is ignored: not below the announcement */
	a[0].active = 10;
	pool_update(p, a, 3, NOW + 40);
	pool_upload_ended(p, "a");
	cr_expect_eq(pool_available(p, NOW + 40), 1);
	pool_free(p);
}

Test(pool, updated_ms)
{
	struct announce a = srv("a", 10, 0, 100);
	struct pool *p = pool_new(&cfg);

	cr_assert_not_null(p);
	cr_expect_eq(pool_updated_ms(p), -1);
	pool_update(p, &a, 1, NOW);
	cr_expect_eq(pool_updated_ms(p), NOW);
	pool_update(p, NULL, 0, NOW + 1234);
	cr_expect_eq(pool_updated_ms(p), NOW + 1234);
	cr_expect_eq(pool_available(p, NOW), 0);
	pool_update(p, &a, 1, 0);
	cr_expect_eq(pool_updated_ms(p), 0);
	pool_free(p);
}

Test(pool, find)
{
	struct announce a[] = {srv("b", 10, 0, 100), srv("a", 10, 10, 100), srv("c", 10, 0, 1)};
	struct announce out;
	struct pool *p;

	a[0].heartbeat_ms = 1;          /* stale */
	a[1].draining = 1;
	p = pool_with(a, 3);
	cr_expect_eq(pool_find(p, "b", &out), 0);
	cr_expect(announce_eq(&out, &a[0]));
	cr_expect_eq(pool_find(p, "a", &out), 0);
	cr_expect(announce_eq(&out, &a[1]));
	cr_expect_eq(pool_find(p, "c", &out), 0);
	cr_expect_str_eq(out.id, "c");
	/* copied as announced, without the local count */
	pool_upload_started(p, "c");
	cr_expect_eq(pool_find(p, "c", &out), 0);
	cr_expect_eq(out.active, 0);
	memset(&out, 0x5a, sizeof(out));
	cr_expect_eq(pool_find(p, "d", &out), -1);
	cr_expect_eq(pool_find(p, "", &out), -1);
	cr_expect_eq(pool_find(p, "bb", &out), -1);
	cr_expect_eq(pool_find(p, NULL, &out), -1);
	cr_expect_eq(out.capacity, 0x5a5a5a5au, "out written on failure");
	pool_free(p);
}

Test(pool, update_dups_and_unusable_entries)
{
	struct announce a[6];
	struct announce out;
	struct pool *p;

	a[0] = srv("x", 10, 1, 100);
	a[1] = srv("x", 10, 2, 100);
	a[1].heartbeat_ms = NOW + 5;    /* newest x: kept */
	a[2] = srv("x", 10, 3, 100);
	a[3] = srv("y", 10, 4, 100);
	a[4] = srv("y", 10, 5, 100);    /* same heartbeat as a[3]: the first given kept */
	a[5] = srv("z", 10, 0, 100);
	p = pool_with(a, 6);
	cr_expect_eq(pool_find(p, "x", &out), 0);
	cr_expect_eq(out.active, 2);
	cr_expect_eq(pool_find(p, "y", &out), 0);
	cr_expect_eq(out.active, 4);
	cr_expect_eq(pool_available(p, NOW), 3);
	pool_free(p);

	/* empty id, id or url filling its array without a NUL: skipped */
	a[0] = srv("", 10, 0, 100);
	a[1] = srv("k", 10, 0, 100);
	memset(a[1].id, 'k', sizeof(a[1].id));
	a[2] = srv("u", 10, 0, 100);
	memset(a[2].url, 'u', sizeof(a[2].url));
	a[3] = srv("ok", 10, 0, 100);
	p = pool_with(a, 4);
	cr_expect_eq(pool_available(p, NOW), 1);
	cr_expect_eq(pool_find(p, "ok", &out), 0);
	cr_expect_eq(pool_find(p, "u", &out), -1);
	cr_expect_eq(pool_find(p, "", &out), -1);
	pool_free(p);
}

/* Past POOL_MAX servers the first POOL_MAX ids in order are kept, whatever the input order. */
Test(pool, update_truncates_by_id)
{
	enum { N = POOL_MAX + 6 };
	static struct announce a[N];
	struct announce out;
	struct pool *p;
	uint32_t x = 7;
	char id[16];
	size_t i, room = 0;

	/* ids s0000..s1029, given last first; one in ten full */
	for (i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "s%04zu", N - 1 - i);
		a[i] = srv(id, 9, (uint32_t)(i % 10), 100);
		if (i >= N - POOL_MAX && i % 10 != 9)
			room++;
	}
	p = pool_with(a, N);
	cr_expect_eq(pool_available(p, NOW), room);
	for (i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "s%04zu", i);
		cr_expect_eq(pool_find(p, id, &out), i < POOL_MAX ? 0 : -1, "%s", id);
	}
	for (i = 0; i < 1000; i++) {
		cr_assert_eq(pool_pick(p, NOW, 0, NULL, 0, xorshift, &x, &out), 0);
		cr_expect_lt(strcmp(out.id, "s1024"), 0);
		cr_expect_lt(out.active, 9);
	}
	/* and back under the limit: all there again */
	pool_update(p, a + 6, POOL_MAX, NOW + 1);
	cr_expect_eq(pool_find(p, "s1023", &out), 0);
	cr_expect_eq(pool_find(p, "s1024", &out), -1);
	pool_update(p, a, 10, NOW + 2);
	cr_expect_eq(pool_find(p, "s1029", &out), 0);
	cr_expect_eq(pool_find(p, "s0000", &out), -1);
	pool_free(p);
}
