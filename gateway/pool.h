/* pool: this gateway's snapshot of the data-center servers and the choice among them. */
#ifndef FSG_GATEWAY_POOL_H
#define FSG_GATEWAY_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "proto/announce.h"

/*
 * A pool belongs to one worker loop and is not thread-safe: each worker keeps its own, fed from
 * its own Redis reads. All times are Unix ms (heartbeat_ms is the servers' Unix clock).
 */

/* Most servers a snapshot holds; pool_update keeps the first POOL_MAX ids in strcmp order. */
#define POOL_MAX 1024

struct pool_config {
	int64_t stale_ms;       /* a heartbeat older than this is stale (0: 3000; at most 1 day) */
	int64_t down_ms;        /* how long a failed server is skipped (0: 5000; at most 1 day) */
};

struct pool;

/* Returns an empty pool (cfg NULL: the defaults), or NULL on a value out of range or no memory. */
struct pool *pool_new(const struct pool_config *cfg);
/* Accepts NULL. */
void pool_free(struct pool *p);

/*
 * Replaces the snapshot with n parsed announcements read from Redis at now_ms (Unix ms); they
 * are copied. Entries whose id is empty or whose id or url is not NUL-terminated in its array
 * are skipped; of entries sharing an id the one with the newest heartbeat is kept (the first
 * given on a tie). Past POOL_MAX distinct ids only the first POOL_MAX in strcmp order of id are
 * kept, the rest ignored (logged when that starts). On allocation failure the old snapshot
 * stays and pool_updated_ms does not move (logged).
 * Local state (down marks, this gateway's own in-flight counts) survives for ids still there and
 * is dropped for ids gone, so a server that comes back starts clean.
 */
void pool_update(struct pool *p, const struct announce *servers, size_t n, int64_t now_ms);

/* Unix ms of the last pool_update, or -1 if none yet. */
int64_t pool_updated_ms(const struct pool *p);

/*
 * Marks a server down until now_ms + down_ms (also learnt from fsg:down:{id} in Redis); an
 * existing later mark is kept. An id not in the snapshot is ignored, so marks read from Redis
 * are applied after the pool_update of the same round.
 */
void pool_mark_down(struct pool *p, const char *id, int64_t now_ms);

/*
 * This gateway's own uploads to a server, added to the announced "active" until the next
 * heartbeat shows them, so a burst of creations does not all pick the same server.
 * Each server keeps: in_flight, this gateway's uploads now in progress (ended never takes it
 * below 0: an ended without a started, e.g. across the server leaving the snapshot, is
 * ignored), and delta, started minus ended since the last heartbeat change. The load pool_pick
 * sees is max(0, active + delta); delta restarts at 0 whenever pool_update brings a different
 * heartbeat_ms, whose active is taken to include our earlier starts and exclude our earlier
 * ends. So nothing is counted twice past one heartbeat; an upload that reaches the server just
 * after a heartbeat the gateway reads is missed until the next one (at most one interval).
 * Unknown ids are ignored.
 */
void pool_upload_started(struct pool *p, const char *id);
void pool_upload_ended(struct pool *p, const char *id);

/*
 * Picks a server for a new job of need bytes: candidates are fresh (heartbeat_ms >= now_ms -
 * stale_ms: exactly stale_ms old is still fresh; a heartbeat ahead of now_ms is fresh), not
 * draining, not down (down until <= now_ms), below capacity (max(0, active + delta) <
 * capacity) and with free_bytes >= need, and not in exclude (servers already tried; NULL
 * entries ignored).
 * Among them: two distinct ones picked at random (rnd), the one with the lower load
 * (active / capacity, compared exactly as integer cross products) wins; equal loads: the one
 * with more free_bytes; still equal: the first drawn, so equal servers share evenly.
 * One candidate is taken as is. Returns 0 and copies it (as announced) to *out, or -1 when none
 * fits (with pool_available() > 0 and nothing excluded: none has room for need, 507).
 * rnd (not NULL) returns uniformly random 32-bit values (tests pass a fixed sequence); it is
 * called twice when there are two candidates or more, else not at all: the first value modulo
 * the count picks the first in id order, the second modulo count - 1 one of the others (a
 * modulo bias below POOL_MAX / 2^32, negligible).
 */
int pool_pick(const struct pool *p, int64_t now_ms, uint64_t need, const char *const *exclude,
	      size_t n_exclude, uint32_t (*rnd)(void *), void *rnd_arg, struct announce *out);

/* Looks a server up by id (for routed requests), fresh or not: 0 and a copy as announced, or -1. */
int pool_find(const struct pool *p, const char *id, struct announce *out);

/* How many servers pool_pick could choose from now with need 0 (for /readyz and metrics). */
size_t pool_available(const struct pool *p, int64_t now_ms);

#endif
