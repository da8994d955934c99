/* Tests gateway/limits.c: failed-authentication blocking by window and per-user upload counts. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "gateway/limits.h"
#include "proto/owner.h"
#include "proto/rkey.h"

#define NOW    INT64_C(1800000000000)
#define WINDOW INT64_C(60000)
#define LIMIT  5

#define KEY_A "fsg:authfail:addr:192.0.2.1"
#define KEY_B "fsg:authfail:addr:2001:db8::1"
#define KEY_O "fsg:authfail:owner:0123456789abcdef0123456789abcdef"

#define OH_1 "0123456789abcdef0123456789abcdef"
#define OH_2 "fedcba9876543210fedcba9876543210"

static struct limits *limits_with(uint64_t limit, unsigned per_user, size_t slots)
{
	struct limits_config cfg = {limit, WINDOW, per_user, slots};
	struct limits *l = limits_new(&cfg);

	cr_assert_not_null(l);
	return l;
}

Test(limits, new_refuses_bad_window)
{
	struct limits_config cfg = {LIMIT, 0, 2, 0};

	cr_assert_null(limits_new(&cfg));
	cfg.authfail_window_ms = -1;
	cr_assert_null(limits_new(&cfg));
	cfg.authfail_window_ms = INT64_MIN;
	cr_assert_null(limits_new(&cfg));
	cfg.authfail_window_ms = 1;
	limits_free(limits_new(&cfg));
	limits_free(NULL);
}

Test(limits, unknown_key_not_blocked)
{
	struct limits *l = limits_with(LIMIT, 0, 0);

	cr_assert_eq(limits_authfail_blocked(l, KEY_A, NOW), 0);
	cr_assert_eq(limits_authfail_blocked(l, "", NOW), 0);
	limits_free(l);
}

Test(limits, blocked_exactly_at_limit)
{
	struct limits *l = limits_with(LIMIT, 0, 0);

	limits_authfail_note(l, KEY_A, LIMIT - 1, 0, NOW);
	cr_assert_eq(limits_authfail_blocked(l, KEY_A, NOW), 0);
	cr_assert_eq(limits_authfail_blocked(l, KEY_A, NOW + 10), 0);
	limits_authfail_note(l, KEY_A, LIMIT, 0, NOW + 10);
	/* a full window from the note that reached the limit */
	cr_assert_eq(limits_authfail_blocked(l, KEY_A, NOW + 10), WINDOW);
	cr_assert_eq(limits_authfail_blocked(l, KEY_A, NOW + 1010), WINDOW - 1000);
	/* above the limit blocks too */
	limits_authfail_note(l, KEY_A, LIMIT + 7, 0, NOW + 2000);
	cr_assert_eq(limits_authfail_blocked(l, KEY_A, NOW + 2000), WINDOW);
	/* other keys are independent */
	cr_assert_eq(limits_authfail_blocked(l, KEY_B, NOW + 2000), 0);
	cr_assert_eq(limits_authfail_blocked(l, KEY_O, NOW + 2000), 0);
	limits_free(l);
}

Test(limits, limit_one_blocks_first_failure)
{
	struct limits *l = limits_with(1, 0, 0);

	limits_authfail_note(l, KEY_A, 1, 500, NOW);
	cr_assert_eq(limits_authfail_blocked(l, KEY_A, NOW), 500);
	limits_free(l);
}

Test(limits, window_expires)
{
	struct limits *l = limits_with(LIMIT, 0, 0);

	limits_authfail_note(l, KEY_A, LIMIT, 0, NOW);
	cr_assert_eq(limits_authfail_blocked(l, KEY_A, NOW + WINDOW - 1), 1);
	cr_assert_eq(limits_authfail_blocked(l, KEY_A, NOW + WINDOW), 0);
	cr_assert_eq(limits_authfail_blocked(l, KEY_A, NOW + WINDOW + 1), 0);
	/* the count starts again in the new window */
	cr_assert_eq(limits_authfail_local(l, KEY_A, NOW + WINDOW + 1), 1);
	cr_assert_eq(limits_authfail_blocked(l, KEY_A, NOW + WINDOW + 1), 0);
	limits_free(l);
}

Test(limits, note_ttl_sets_window_end)
{
	struct limits *l = limits_with(LIMIT, 0, 0);

	/* the Redis key lives 1234 ms more: the block ends with it, not a full window later */
	limits_authfail_note(l, KEY_A, LIMIT, 1234, NOW);
	cr_assert_eq(limits_authfail_blocked(l, KEY_A, NOW), 1234);
	cr_assert_eq(limits_authfail_blocked(l, KEY_A, NOW + 1233), 1);
	cr_assert_eq(limits_authfail_blocked(l, KEY_A, NOW + 1234), 0);

	/* a ttl longer than the configured window is believed (another gateway's config) */
	limits_authfail_note(l, KEY_B, LIMIT, 3 * WINDOW, NOW);
	cr_assert_eq(limits_authfail_blocked(l, KEY_B, NOW + WINDOW), 2 * WINDOW);

	/* ttl <= 0 (PTTL -1, -2): a full window from now */
	limits_authfail_note(l, KEY_O, LIMIT, -1, NOW);
	cr_assert_eq(limits_authfail_blocked(l, KEY_O, NOW), WINDOW);
	limits_free(l);
}

Test(limits, note_ignores_lower_count_in_window)
{
	struct limits *l = limits_with(LIMIT, 0, 0);

	limits_authfail_note(l, KEY_A, LIMIT, 1000, NOW);
	/* an older reply arriving late: neither the count nor the window end go back */
	limits_authfail_note(l, KEY_A, LIMIT - 2, 50000, NOW + 10);
	cr_assert_eq(limits_authfail_blocked(l, KEY_A, NOW + 10), 990);
	limits_authfail_note(l, KEY_A, LIMIT - 1, 0, NOW + 20);
	cr_assert_eq(limits_authfail_blocked(l, KEY_A, NOW + 20), 980);
	/* the remembered count is the higher one: a local failure adds to it */
	cr_assert_eq(limits_authfail_local(l, KEY_A, NOW + 30), LIMIT + 1);

	/* below the limit too: 4 then a late 2 leaves 4, and one more local failure blocks */
	limits_authfail_note(l, KEY_B, LIMIT - 1, 0, NOW);
	limits_authfail_note(l, KEY_B, 2, 0, NOW + 1);
	cr_assert_eq(limits_authfail_local(l, KEY_B, NOW + 2), LIMIT);
	cr_assert_eq(limits_authfail_blocked(l, KEY_B, NOW + 2), WINDOW - 2);
	limits_free(l);
}

Test(limits, note_after_window_takes_lower_count)
{
	struct limits *l = limits_with(LIMIT, 0, 0);

	limits_authfail_note(l, KEY_A, LIMIT, 1000, NOW);
	/* the window is over: a new one starts with whatever Redis says now */
	limits_authfail_note(l, KEY_A, 2, 0, NOW + 1000);
	cr_assert_eq(limits_authfail_blocked(l, KEY_A, NOW + 1000), 0);
	cr_assert_eq(limits_authfail_local(l, KEY_A, NOW + 1000), 3);
	limits_free(l);
}

/* INCR returned 1: Redis started a new window (the key had expired there), whatever was here */
Test(limits, note_count_one_restarts)
{
	struct limits *l = limits_with(LIMIT, 0, 0);

	limits_authfail_note(l, KEY_A, LIMIT, 50000, NOW);
	limits_authfail_note(l, KEY_A, 1, 0, NOW + 10);
	cr_assert_eq(limits_authfail_blocked(l, KEY_A, NOW + 10), 0);
	cr_assert_eq(limits_authfail_local(l, KEY_A, NOW + 20), 2);
	limits_free(l);
}

Test(limits, local_counts)
{
	struct limits *l = limits_with(LIMIT, 0, 0);
	uint64_t i;

	for (i = 1; i < LIMIT; i++) {
		cr_assert_eq(limits_authfail_local(l, KEY_A, NOW + (int64_t)i), i);
		cr_assert_eq(limits_authfail_blocked(l, KEY_A, NOW + (int64_t)i), 0);
	}
	cr_assert_eq(limits_authfail_local(l, KEY_A, NOW + 100), LIMIT);
	/* the window began with the first failure, not the last */
	cr_assert_eq(limits_authfail_blocked(l, KEY_A, NOW + 100), WINDOW - 99);
	cr_assert_eq(limits_authfail_local(l, KEY_B, NOW + 100), 1);
	cr_assert_eq(limits_authfail_local(l, KEY_A, NOW + 200), LIMIT + 1);
	limits_free(l);
}

Test(limits, limit_zero_never_blocks)
{
	struct limits *l = limits_with(0, 0, 0);
	int i;

	limits_authfail_note(l, KEY_A, 1000000, 0, NOW);
	cr_assert_eq(limits_authfail_blocked(l, KEY_A, NOW), 0);
	for (i = 0; i < 100; i++)
		limits_authfail_local(l, KEY_B, NOW);
	cr_assert_eq(limits_authfail_blocked(l, KEY_B, NOW), 0);
	/* still counted: the count is for Redis and the logs */
	cr_assert_eq(limits_authfail_local(l, KEY_B, NOW), 101);
	limits_free(l);
}

Test(limits, overlong_key_ignored)
{
	struct limits *l = limits_with(1, 0, 4);
	char max[RKEY_MAX + 1], over[RKEY_MAX + 2], huge[4096];

	memset(max, 'a', RKEY_MAX);
	max[RKEY_MAX] = '\0';
	memset(over, 'b', RKEY_MAX + 1);
	over[RKEY_MAX + 1] = '\0';
	memset(huge, 'c', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';

	/* RKEY_MAX bytes is a key like any other */
	limits_authfail_note(l, max, 1, 0, NOW);
	cr_assert_eq(limits_authfail_blocked(l, max, NOW), WINDOW);

	limits_authfail_note(l, over, 5, 0, NOW);
	cr_assert_eq(limits_authfail_blocked(l, over, NOW), 0);
	cr_assert_eq(limits_authfail_local(l, over, NOW), 0);
	limits_authfail_note(l, huge, 5, 0, NOW);
	cr_assert_eq(limits_authfail_blocked(l, huge, NOW), 0);
	cr_assert_eq(limits_authfail_local(l, huge, NOW), 0);

	/* nothing was stored for them: the key that fits is still remembered */
	cr_assert_eq(limits_authfail_blocked(l, max, NOW), WINDOW);
	/* a key sharing the first RKEY_MAX bytes of an overlong one is not confused with it */
	memset(over, 'a', RKEY_MAX + 1);
	cr_assert_eq(limits_authfail_blocked(l, over, NOW), 0);
	limits_free(l);
}

/* One set of 4 slots: eviction order is exact. */
Test(limits, full_table_forgets_earliest_window_end)
{
	struct limits *l = limits_with(1, 0, 4);
	static const int64_t ttl[] = {1000, 4000, 3000, 2000};
	char key[4][64];
	char extra[2][64];
	int i;

	for (i = 0; i < 4; i++) {
		snprintf(key[i], sizeof(key[i]), "fsg:authfail:addr:192.0.2.%d", i);
		limits_authfail_note(l, key[i], 1, ttl[i], NOW);
	}
	/* four keys in four slots: all remembered */
	for (i = 0; i < 4; i++)
		cr_assert_eq(limits_authfail_blocked(l, key[i], NOW), ttl[i], "key %d", i);

	snprintf(extra[0], sizeof(extra[0]), "fsg:authfail:addr:198.51.100.1");
	limits_authfail_note(l, extra[0], 1, 5000, NOW);
	cr_assert_eq(limits_authfail_blocked(l, extra[0], NOW), 5000);
	cr_assert_eq(limits_authfail_blocked(l, key[0], NOW), 0, "earliest end forgotten");
	cr_assert_eq(limits_authfail_blocked(l, key[1], NOW), 4000);
	cr_assert_eq(limits_authfail_blocked(l, key[2], NOW), 3000);
	cr_assert_eq(limits_authfail_blocked(l, key[3], NOW), 2000);

	/* a local failure takes a slot too */
	snprintf(extra[1], sizeof(extra[1]), "fsg:authfail:addr:198.51.100.2");
	cr_assert_eq(limits_authfail_local(l, extra[1], NOW), 1);
	cr_assert_eq(limits_authfail_blocked(l, extra[1], NOW), WINDOW);
	cr_assert_eq(limits_authfail_blocked(l, key[3], NOW), 0, "next earliest end forgotten");
	cr_assert_eq(limits_authfail_blocked(l, key[1], NOW), 4000);
	cr_assert_eq(limits_authfail_blocked(l, key[2], NOW), 3000);
	cr_assert_eq(limits_authfail_blocked(l, extra[0], NOW), 5000);

	/* a forgotten key counts again from 1 */
	cr_assert_eq(limits_authfail_local(l, key[0], NOW), 1);
	limits_free(l);
}

/*
 * Eight slots in two sets of four (the set is picked by a keyed hash): with every later key's
 * window ending later, each set keeps its four latest, so eight keys stay and the newest is one.
 */
Test(limits, eviction_bounded_by_slots)
{
	struct limits *l = limits_with(1, 0, 8);
	char key[64][64];
	int i, kept = 0;

	for (i = 0; i < 64; i++) {
		snprintf(key[i], sizeof(key[i]), "fsg:authfail:addr:10.0.0.%d", i);
		limits_authfail_note(l, key[i], 1, 1000 + i, NOW);
	}
	for (i = 0; i < 64; i++) {
		int64_t left = limits_authfail_blocked(l, key[i], NOW);

		if (left) {
			cr_assert_eq(left, 1000 + i);
			kept++;
		}
	}
	/* fewer than four of 64 keys in one of two sets: odds about 1e-14 */
	cr_assert_eq(kept, 8);
	cr_assert_eq(limits_authfail_blocked(l, key[63], NOW), 1063);
	limits_free(l);
}

Test(limits, uploads_up_to_limit)
{
	struct limits *l = limits_with(LIMIT, 3, 0);

	cr_assert_eq(limits_uploads(l, OH_1), 0);
	cr_assert_eq(limits_upload_begin(l, OH_1), 0);
	cr_assert_eq(limits_upload_begin(l, OH_1), 0);
	cr_assert_eq(limits_upload_begin(l, OH_1), 0);
	cr_assert_eq(limits_uploads(l, OH_1), 3);
	cr_assert_eq(limits_upload_begin(l, OH_1), -1);
	cr_assert_eq(limits_upload_begin(l, OH_1), -1);
	cr_assert_eq(limits_uploads(l, OH_1), 3, "a refused begin takes no slot");

	limits_upload_end(l, OH_1);
	cr_assert_eq(limits_uploads(l, OH_1), 2);
	cr_assert_eq(limits_upload_begin(l, OH_1), 0);
	cr_assert_eq(limits_upload_begin(l, OH_1), -1);

	limits_upload_end(l, OH_1);
	limits_upload_end(l, OH_1);
	limits_upload_end(l, OH_1);
	cr_assert_eq(limits_uploads(l, OH_1), 0);
	cr_assert_eq(limits_upload_begin(l, OH_1), 0);
	cr_assert_eq(limits_uploads(l, OH_1), 1);
	limits_free(l); /* with an upload in progress: freed all the same (ASan checks) */
}

Test(limits, uploads_per_owner_independent)
{
	struct limits *l = limits_with(LIMIT, 1, 0);

	cr_assert_eq(limits_upload_begin(l, OH_1), 0);
	cr_assert_eq(limits_upload_begin(l, OH_1), -1);
	cr_assert_eq(limits_upload_begin(l, OH_2), 0);
	cr_assert_eq(limits_upload_begin(l, OH_2), -1);
	cr_assert_eq(limits_uploads(l, OH_1), 1);
	cr_assert_eq(limits_uploads(l, OH_2), 1);
	limits_upload_end(l, OH_2);
	cr_assert_eq(limits_uploads(l, OH_1), 1);
	cr_assert_eq(limits_uploads(l, OH_2), 0);
	cr_assert_eq(limits_upload_begin(l, OH_1), -1);
	cr_assert_eq(limits_upload_begin(l, OH_2), 0);
	limits_upload_end(l, OH_1);
	limits_upload_end(l, OH_2);
	limits_free(l);
}

Test(limits, uploads_unlimited_when_zero)
{
	struct limits *l = limits_with(LIMIT, 0, 0);
	unsigned i;

	for (i = 0; i < 10000; i++)
		cr_assert_eq(limits_upload_begin(l, OH_1), 0);
	cr_assert_eq(limits_uploads(l, OH_1), 10000);
	for (i = 0; i < 10000; i++)
		limits_upload_end(l, OH_1);
	cr_assert_eq(limits_uploads(l, OH_1), 0);
	limits_free(l);
}

Test(limits, end_without_begin_harmless)
{
	struct limits *l = limits_with(LIMIT, 2, 0);

	limits_upload_end(l, OH_1);
	limits_upload_end(l, OH_1);
	cr_assert_eq(limits_uploads(l, OH_1), 0);
	/* it did not bank a slot: the limit is still 2 */
	cr_assert_eq(limits_upload_begin(l, OH_1), 0);
	cr_assert_eq(limits_upload_begin(l, OH_1), 0);
	cr_assert_eq(limits_upload_begin(l, OH_1), -1);
	/* one end too many after real uploads */
	limits_upload_end(l, OH_1);
	limits_upload_end(l, OH_1);
	limits_upload_end(l, OH_1);
	cr_assert_eq(limits_uploads(l, OH_1), 0);
	cr_assert_eq(limits_upload_begin(l, OH_1), 0);
	cr_assert_eq(limits_upload_begin(l, OH_1), 0);
	cr_assert_eq(limits_upload_begin(l, OH_1), -1);
	/* ending another owner's upload does not touch this one */
	limits_upload_end(l, OH_2);
	cr_assert_eq(limits_uploads(l, OH_1), 2);
	limits_free(l);
}

Test(limits, overlong_owner_refused)
{
	struct limits *l = limits_with(LIMIT, 2, 0);
	char over[OWNER_HASH_LEN + 2];

	memset(over, 'a', OWNER_HASH_LEN + 1);
	over[OWNER_HASH_LEN + 1] = '\0';
	cr_assert_eq(limits_upload_begin(l, over), -1);
	cr_assert_eq(limits_uploads(l, over), 0);
	limits_upload_end(l, over);
	limits_free(l);
}

#define RACE_THREADS 8
#define RACE_FAILS   5000

static void *race_local(void *arg)
{
	struct limits *l = arg;
	int i;

	for (i = 0; i < RACE_FAILS; i++)
		limits_authfail_local(l, KEY_A, NOW + i);
	return NULL;
}

Test(limits, local_race_counts_every_failure, .timeout = 60)
{
	struct limits *l = limits_with(LIMIT, 0, 0);
	pthread_t t[RACE_THREADS];
	int i;

	for (i = 0; i < RACE_THREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, race_local, l), 0);
	for (i = 0; i < RACE_THREADS; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(limits_authfail_local(l, KEY_A, NOW + RACE_FAILS),
		     (uint64_t)RACE_THREADS * RACE_FAILS + 1);
	limits_free(l);
}

#define RACE_ROUNDS  20000
#define RACE_LIMIT   3

struct race {
	struct limits *l;
	pthread_barrier_t *barrier;
	unsigned max_seen;   /* highest limits_uploads while holding a slot */
	unsigned begun;      /* successful begins */
	unsigned bad;        /* begins or counts out of range */
};

static void *race_run(void *arg)
{
	struct race *r = arg;
	int i;

	pthread_barrier_wait(r->barrier);
	for (i = 0; i < RACE_ROUNDS; i++) {
		int rc = limits_upload_begin(r->l, OH_1);
		unsigned n;

		if (rc != 0 && rc != -1) {
			r->bad++;
			continue;
		}
		if (rc)
			continue;
		r->begun++;
		n = limits_uploads(r->l, OH_1);
		if (n > r->max_seen)
			r->max_seen = n;
		if (n < 1 || n > RACE_LIMIT)
			r->bad++;
		limits_upload_end(r->l, OH_1);
	}
	return NULL;
}

Test(limits, uploads_race_never_exceed_limit, .timeout = 60)
{
	struct limits *l = limits_with(LIMIT, RACE_LIMIT, 0);
	struct race r[RACE_THREADS];
	pthread_t t[RACE_THREADS];
	pthread_barrier_t barrier;
	unsigned begun = 0, max_seen = 0;
	int i;

	cr_assert_eq(pthread_barrier_init(&barrier, NULL, RACE_THREADS), 0);
	for (i = 0; i < RACE_THREADS; i++) {
		r[i] = (struct race){l, &barrier, 0, 0, 0};
		cr_assert_eq(pthread_create(&t[i], NULL, race_run, &r[i]), 0);
	}
	for (i = 0; i < RACE_THREADS; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&barrier);
	for (i = 0; i < RACE_THREADS; i++) {
		cr_assert_eq(r[i].bad, 0, "thread %d saw %u bad results", i, r[i].bad);
		begun += r[i].begun;
		if (r[i].max_seen > max_seen)
			max_seen = r[i].max_seen;
	}
	cr_assert_gt(begun, 0);
	cr_assert_leq(max_seen, RACE_LIMIT);
	cr_assert_eq(limits_uploads(l, OH_1), 0);
	/* all slots back: the full limit is available again */
	for (i = 0; i < RACE_LIMIT; i++)
		cr_assert_eq(limits_upload_begin(l, OH_1), 0);
	cr_assert_eq(limits_upload_begin(l, OH_1), -1);
	limits_free(l);
}

Test(limits, configure_changes_limits_and_keeps_counts)
{
	struct limits *l = limits_with(LIMIT, 2, 0);
	struct limits_config cfg = {2, WINDOW, 1, 0};
	int i;

	for (i = 0; i < 3; i++)
		limits_authfail_local(l, KEY_A, NOW);
	cr_assert_eq(limits_authfail_blocked(l, KEY_A, NOW), 0, "3 of 5: not blocked");
	cr_assert_eq(limits_upload_begin(l, OH_1), 0);
	cr_assert_eq(limits_upload_begin(l, OH_1), 0);

	cr_assert_eq(limits_configure(l, &cfg), 0);
	/* the counts stay: 3 failures are now over a limit of 2, 2 uploads over 1 */
	cr_assert_eq(limits_authfail_blocked(l, KEY_A, NOW), WINDOW);
	cr_assert_eq(limits_uploads(l, OH_1), 2);
	cr_assert_eq(limits_upload_begin(l, OH_1), -1);
	limits_upload_end(l, OH_1);
	cr_assert_eq(limits_upload_begin(l, OH_1), -1, "1 in progress, limit 1");
	limits_upload_end(l, OH_1);
	cr_assert_eq(limits_upload_begin(l, OH_1), 0);
	limits_upload_end(l, OH_1);

	/* limit 0 turns blocking off; a bad window changes nothing */
	cfg.authfail_limit = 0;
	cr_assert_eq(limits_configure(l, &cfg), 0);
	cr_assert_eq(limits_authfail_blocked(l, KEY_A, NOW), 0);
	cfg.authfail_limit = 1;
	cfg.authfail_window_ms = 0;
	cr_assert_eq(limits_configure(l, &cfg), -1);
	cr_assert_eq(limits_authfail_blocked(l, KEY_A, NOW), 0, "unchanged: still off");

	/* a new window applies to windows that start after the change */
	cfg.authfail_window_ms = 1000;
	cr_assert_eq(limits_configure(l, &cfg), 0);
	cr_assert_eq(limits_authfail_local(l, KEY_B, NOW), 1);
	cr_assert_eq(limits_authfail_blocked(l, KEY_B, NOW), 1000);
	limits_free(l);
}
