/* pool: this gateway's snapshot of the data-center servers and the choice among them. */
#include "gateway/pool.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define STALE_DEFAULT_MS 3000
#define DOWN_DEFAULT_MS 5000
#define DURATION_MAX_MS (24LL * 3600 * 1000)

struct entry {
	struct announce a;
	int64_t down_until_ms;  /* skipped while now_ms < this */
	uint64_t in_flight;     /* our uploads to it now in progress */
	int64_t delta;          /* our starts minus ends since heartbeat a.heartbeat_ms arrived */
};

struct pool {
	int64_t stale_ms, down_ms;
	int64_t updated_ms;
	int truncated;          /* the last update dropped ids past POOL_MAX (logged once) */

	/* the snapshot, sorted by id, ids distinct; spare is where the next one is built */
	struct entry *ent, *spare;
	struct entry *buf;      /* 2 * cap entries: ent and spare are its two halves */
	size_t n, cap;

	const struct announce **order;  /* pool_update's sort of its input */
	size_t order_cap;
};

struct pool *pool_new(const struct pool_config *cfg)
{
	struct pool *p;
	int64_t stale_ms = cfg ? cfg->stale_ms : 0, down_ms = cfg ? cfg->down_ms : 0;

	if (stale_ms < 0 || stale_ms > DURATION_MAX_MS || down_ms < 0 || down_ms > DURATION_MAX_MS)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->stale_ms = stale_ms ? stale_ms : STALE_DEFAULT_MS;
	p->down_ms = down_ms ? down_ms : DOWN_DEFAULT_MS;
	p->updated_ms = -1;
	return p;
}

void pool_free(struct pool *p)
{
	if (!p)
		return;
	free(p->buf);
	free(p->order);
	free(p);
}

static int64_t add_sat(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

/* Entries we cannot hold on to safely: an id or url strcmp/strlen would run off. */
static int announce_usable(const struct announce *a)
{
	return a->id[0] && memchr(a->id, '\0', sizeof(a->id)) &&
	       memchr(a->url, '\0', sizeof(a->url));
}

/* By id, then newest heartbeat first, then input order, so the survivor of a dup is defined. */
static int order_cmp(const void *x, const void *y)
{
	const struct announce *a = *(const struct announce *const *)x;
	const struct announce *b = *(const struct announce *const *)y;
	int c = strcmp(a->id, b->id);

	if (c)
		return c;
	if (a->heartbeat_ms != b->heartbeat_ms)
		return a->heartbeat_ms > b->heartbeat_ms ? -1 : 1;
	return a < b ? -1 : a > b;
}

/* Makes room for want entries in both ent and spare, keeping the snapshot. Returns 0 or -1. */
static int pool_grow(struct pool *p, size_t want)
{
	struct entry *buf;

	if (want <= p->cap)
		return 0;
	buf = calloc(2 * want, sizeof(*buf));
	if (!buf)
		return -1;
	if (p->n)
		memcpy(buf, p->ent, p->n * sizeof(*buf));
	free(p->buf);
	p->buf = buf;
	p->ent = buf;
	p->spare = buf + want;
	p->cap = want;
	return 0;
}

static int order_grow(struct pool *p, size_t want)
{
	const struct announce **o;

	if (want <= p->order_cap)
		return 0;
	if (want > SIZE_MAX / sizeof(*o))
		return -1;
	o = realloc(p->order, want * sizeof(*o));
	if (!o)
		return -1;
	p->order = o;
	p->order_cap = want;
	return 0;
}

void pool_update(struct pool *p, const struct announce *servers, size_t n, int64_t now_ms)
{
	size_t i, k = 0, m = 0, old = 0, distinct = 0;
	struct entry *e, *swap;

	if (order_grow(p, n) || pool_grow(p, n < POOL_MAX ? n : POOL_MAX)) {
		log_error("pool.nomem", "no memory for a snapshot of %zu servers; keeping the last",
			  n);
		return;
	}
	for (i = 0; i < n; i++)
		if (announce_usable(&servers[i]))
			p->order[m++] = &servers[i];
	if (m > 1)
		qsort(p->order, m, sizeof(*p->order), order_cmp);

	for (i = 0; i < m; i++) {
		const struct announce *a = p->order[i];

		if (i && !strcmp(a->id, p->order[i - 1]->id))
			continue;
		distinct++;
		if (k == POOL_MAX)
			continue;
		e = &p->spare[k++];
		e->a = *a;
		e->down_until_ms = INT64_MIN;
		e->in_flight = 0;
		e->delta = 0;
		/* both lists are sorted by id: one merge walk carries the local state over */
		while (old < p->n && strcmp(p->ent[old].a.id, a->id) < 0)
			old++;
		if (old < p->n && !strcmp(p->ent[old].a.id, a->id)) {
			e->down_until_ms = p->ent[old].down_until_ms;
			e->in_flight = p->ent[old].in_flight;
			/* a new heartbeat's active already reflects what we started and ended */
			if (p->ent[old].a.heartbeat_ms == a->heartbeat_ms)
				e->delta = p->ent[old].delta;
		}
	}

	if (distinct > POOL_MAX && !p->truncated)
		log_warn("pool.truncated", "%zu servers announced; keeping the first %d by id",
			 distinct, POOL_MAX);
	p->truncated = distinct > POOL_MAX;
	swap = p->ent;
	p->ent = p->spare;
	p->spare = swap;
	p->n = k;
	p->updated_ms = now_ms;
}

int64_t pool_updated_ms(const struct pool *p)
{
	return p->updated_ms;
}

static struct entry *entry_find(const struct pool *p, const char *id)
{
	size_t lo = 0, hi = p->n;

	if (!id)
		return NULL;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(p->ent[mid].a.id, id);

		if (!c)
			return &p->ent[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void pool_mark_down(struct pool *p, const char *id, int64_t now_ms)
{
	struct entry *e = entry_find(p, id);
	int64_t until;

	if (!e)
		return;
	until = add_sat(now_ms, p->down_ms);
	if (until > e->down_until_ms)
		e->down_until_ms = until;
}

void pool_upload_started(struct pool *p, const char *id)
{
	struct entry *e = entry_find(p, id);

	if (!e)
		return;
	if (e->in_flight < UINT64_MAX)
		e->in_flight++;
	e->delta = add_sat(e->delta, 1);
}

void pool_upload_ended(struct pool *p, const char *id)
{
	struct entry *e = entry_find(p, id);

	if (!e || !e->in_flight)
		return;
	e->in_flight--;
	e->delta = add_sat(e->delta, -1);
}

/* Announced active plus our own change since that announcement, never below 0. */
static uint64_t entry_active(const struct entry *e)
{
	int64_t v = add_sat((int64_t)e->a.active, e->delta);

	return v < 0 ? 0 : (uint64_t)v;
}

static int entry_fresh(const struct pool *p, const struct entry *e, int64_t now_ms)
{
	/* heartbeat_ms >= now_ms - stale_ms, without overflow whatever the two values */
	if (e->a.heartbeat_ms >= (uint64_t)INT64_MAX || (int64_t)e->a.heartbeat_ms >= now_ms)
		return 1;
	return now_ms - (int64_t)e->a.heartbeat_ms <= p->stale_ms;
}

static int excluded(const char *id, const char *const *exclude, size_t n_exclude)
{
	size_t i;

	for (i = 0; i < n_exclude; i++)
		if (exclude[i] && !strcmp(exclude[i], id))
			return 1;
	return 0;
}

static int entry_candidate(const struct pool *p, const struct entry *e, int64_t now_ms,
			   uint64_t need)
{
	return entry_fresh(p, e, now_ms) && !e->a.draining && e->down_until_ms <= now_ms &&
	       entry_active(e) < e->a.capacity && e->a.free_bytes >= need;
}

/* Non-zero when a should win over b: lower load, then more free bytes; else the first drawn. */
static int entry_better(const struct entry *a, const struct entry *b)
{
	/* candidates have active < capacity <= UINT32_MAX: the products fit in 64 bits */
	uint64_t la = entry_active(a) * b->a.capacity, lb = entry_active(b) * a->a.capacity;

	if (la != lb)
		return la < lb;
	return a->a.free_bytes >= b->a.free_bytes;
}

int pool_pick(const struct pool *p, int64_t now_ms, uint64_t need, const char *const *exclude,
	      size_t n_exclude, uint32_t (*rnd)(void *), void *rnd_arg, struct announce *out)
{
	uint16_t cand[POOL_MAX];
	size_t i, c = 0, x, y;
	const struct entry *a, *b;

	for (i = 0; i < p->n; i++)
		if (entry_candidate(p, &p->ent[i], now_ms, need) &&
		    !excluded(p->ent[i].a.id, exclude, n_exclude))
			cand[c++] = (uint16_t)i;
	if (!c)
		return -1;
	if (c == 1) {
		*out = p->ent[cand[0]].a;
		return 0;
	}
	/* c <= POOL_MAX: the modulo bias is below c / 2^32 */
	x = rnd(rnd_arg) % c;
	y = rnd(rnd_arg) % (c - 1);
	if (y >= x)
		y++;
	a = &p->ent[cand[x]];
	b = &p->ent[cand[y]];
	*out = entry_better(a, b) ? a->a : b->a;
	return 0;
}

int pool_find(const struct pool *p, const char *id, struct announce *out)
{
	const struct entry *e = entry_find(p, id);

	if (!e)
		return -1;
	*out = e->a;
	return 0;
}

size_t pool_available(const struct pool *p, int64_t now_ms)
{
	size_t i, c = 0;

	for (i = 0; i < p->n; i++)
		if (entry_candidate(p, &p->ent[i], now_ms, 0))
			c++;
	return c;
}
