/* worker: one thread of the gateway: its loop, MHD daemon, curl multi, Redis and pool snapshot. */
#include "gateway/worker.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "common/clock.h"
#include "common/log.h"
#include "gateway/metrics.h"
#include "gateway/relay.h"
#include "proto/rkey.h"

/* Every announced server with its hash and the life left on its down mark, in one round trip. */
#define WORKER_POOL_LUA                                                                   \
	"local ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf') "               \
	"local out = {} "                                                                  \
	"for i, id in ipairs(ids) do "                                                     \
	"if i > tonumber(ARGV[2]) then break end "                                         \
	"out[#out + 1] = id "                                                              \
	"out[#out + 1] = redis.call('HGETALL', 'fsg:server:' .. id) "                      \
	"out[#out + 1] = redis.call('PTTL', 'fsg:down:' .. id) "                           \
	"end "                                                                             \
	"return out"
/* Servers silent for longer than this are not even kept for routed requests. */
#define WORKER_POOL_HORIZON_MS ((int64_t)3600 * 1000)

static void worker_refresh(void *arg);

uint32_t worker_random(void *arg)
{
	struct worker *w = arg;
	uint64_t x = w->rnd;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	w->rnd = x;
	return (uint32_t)(x >> 32);
}

struct gateway_live *worker_live_new(const struct gateway_env *env,
				     struct token_verifier *tokens)
{
	const struct admit_config *a = &env->admit;
	struct gateway_live *l = calloc(1, sizeof(*l));

	if (l) {
		l->route_key = malloc(a->route_key_len + 1);
		l->route_key_old = a->route_key_old ? malloc(a->route_key_old_len + 1) : NULL;
	}
	if (!l || !l->route_key || (a->route_key_old && !l->route_key_old)) {
		if (l) {
			free(l->route_key);
			free(l->route_key_old);
		}
		free(l);
		token_verifier_free(tokens);
		return NULL;
	}
	atomic_init(&l->refs, 1);
	l->env = *env;
	l->tokens = tokens;
	memcpy(l->route_key, a->route_key, a->route_key_len);
	l->route_key[a->route_key_len] = '\0';
	if (l->route_key_old) {
		memcpy(l->route_key_old, a->route_key_old, a->route_key_old_len);
		l->route_key_old[a->route_key_old_len] = '\0';
	}
	l->env.admit.tokens = tokens;
	l->env.admit.route_key = l->route_key;
	l->env.admit.route_key_old = l->route_key_old;
	return l;
}

void worker_live_put(struct gateway_live *l)
{
	if (!l || atomic_fetch_sub(&l->refs, 1) != 1)
		return;
	token_verifier_free(l->tokens);
	explicit_bzero(l->route_key, l->env.admit.route_key_len);
	free(l->route_key);
	if (l->route_key_old)
		explicit_bzero(l->route_key_old, l->env.admit.route_key_old_len);
	free(l->route_key_old);
	free(l);
}

unsigned worker_live_publish(struct gateway_hub *hub, struct gateway_live *l)
{
	struct gateway_live *old;
	unsigned generation;

	pthread_mutex_lock(&hub->lock);
	old = hub->live;
	hub->live = l;
	generation = atomic_fetch_add(&hub->generation, 1) + 1;
	pthread_mutex_unlock(&hub->lock);
	worker_live_put(old);
	return generation;
}

/*
 * Copies the hub's current settings into w->own. The reference is taken under the hub's lock,
 * so a publish in another thread cannot free the set between reading the pointer and counting.
 */
static void worker_take(struct worker *w)
{
	struct gateway_hub *hub = w->hub;
	struct gateway_live *l;
	unsigned generation;

	pthread_mutex_lock(&hub->lock);
	l = hub->live;
	atomic_fetch_add(&l->refs, 1);
	generation = atomic_load(&hub->generation);
	pthread_mutex_unlock(&hub->lock);
	w->own = l->env;
	worker_live_put(w->live);
	w->live = l;
	atomic_store(&w->generation, generation);
}

/* Turn hook: between turns no callback holds anything read from w->own. */
static void worker_sync(void *arg)
{
	struct worker *w = arg;

	if (atomic_load(&w->hub->generation) != w->generation)
		worker_take(w);
}

int worker_synced(const struct worker *w, unsigned generation)
{
	/* unsigned difference: right across the counter's wrap */
	return (int)(atomic_load(&w->generation) - generation) >= 0;
}

int worker_draining(const struct worker *w)
{
	return atomic_load(&w->hub->draining);
}

int worker_snapshot_ok(const struct worker *w, int64_t now_ms, int64_t *pick_now)
{
	const struct gateway_env *env = w->env;
	int64_t updated = pool_updated_ms(w->pool);

	if (updated < 0 || now_ms - w->redis_ok_ms > env->snapshot_max_age_ms)
		return 0;
	/* Redis answering: judge heartbeats now; gone: as they were at the last update */
	*pick_now = now_ms - w->redis_ok_ms <= 3 * env->pool_refresh_ms ? now_ms : updated;
	return 1;
}

static void worker_schedule(struct worker *w)
{
	w->refresh = loop_timer_at(w->loop, clock_mono_ms() + w->env->pool_refresh_ms,
				   worker_refresh, w);
	if (!w->refresh)
		log_error("worker.refresh", "cannot arm the pool refresh: out of memory");
}

static void worker_publish(struct worker *w, int64_t now)
{
	int64_t pick_now = now;

	if (w->index != 0)
		return;
	metrics_gauge_set(METRICS_SNAPSHOT_AGE_MS,
			  pool_updated_ms(w->pool) < 0 ? -1 : now - pool_updated_ms(w->pool));
	if (!worker_snapshot_ok(w, now, &pick_now)) {
		metrics_gauge_set(METRICS_POOL_AVAILABLE, 0);
		return;
	}
	metrics_gauge_set(METRICS_POOL_AVAILABLE, (int64_t)pool_available(w->pool, pick_now));
}

static void worker_pool_reply(void *arg, redisReply *reply, const char *err)
{
	struct worker *w = arg;
	struct announce *servers = NULL;
	size_t n = 0, i, k;
	int64_t now = clock_unix_ms();

	w->refreshing = 0;
	if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements % 3) {
		metrics_add(METRICS_REDIS_ERRORS, 1);
		log_warn("worker.pool", "reading the pool failed: %s",
			 reply && reply->type == REDIS_REPLY_ERROR ? reply->str
			 : err ? err : "unexpected reply");
		worker_publish(w, now);
		return;
	}
	servers = calloc(reply->elements / 3 + 1, sizeof(*servers));
	if (!servers) {
		worker_publish(w, now);
		return;
	}
	for (i = 0; i + 2 < reply->elements; i += 3) {
		redisReply *id = reply->element[i], *h = reply->element[i + 1];
		struct proto_field f[32];
		size_t nf = 0;
		enum proto_err rc;

		if (id->type != REDIS_REPLY_STRING || h->type != REDIS_REPLY_ARRAY ||
		    h->elements % 2 || h->elements / 2 > 32)
			continue;
		for (k = 0; k + 1 < h->elements; k += 2) {
			if (h->element[k]->type != REDIS_REPLY_STRING ||
			    h->element[k + 1]->type != REDIS_REPLY_STRING)
				break;
			f[nf++] = (struct proto_field){h->element[k]->str, h->element[k]->len,
						       h->element[k + 1]->str,
						       h->element[k + 1]->len};
		}
		if (nf * 2 != h->elements)
			continue;
		rc = announce_parse(f, nf, &servers[n]);
		if (rc != PROTO_OK || strlen(servers[n].id) != id->len ||
		    memcmp(servers[n].id, id->str, id->len)) {
			if (h->elements)
				log_warn("worker.pool", "server %.*s: announcement refused (%s)",
					 (int)(id->len > 64 ? 64 : id->len), id->str,
					 proto_strerror(rc));
			continue;
		}
		n++;
	}
	pool_update(w->pool, servers, n, now);
	for (i = 0; i + 2 < reply->elements; i += 3) {
		redisReply *id = reply->element[i], *down = reply->element[i + 2];

		if (id->type == REDIS_REPLY_STRING && down->type == REDIS_REPLY_INTEGER &&
		    down->integer > 0)
			pool_mark_down(w->pool, id->str, now);
	}
	free(servers);
	w->redis_ok_ms = now;
	if (w->index == 0)
		metrics_gauge_set(METRICS_POOL_SIZE, (int64_t)n);
	worker_publish(w, now);
}

static void worker_refresh(void *arg)
{
	struct worker *w = arg;
	char min[24], max[24];
	const char *argv[6];
	int64_t now = clock_unix_ms();

	w->refresh = NULL;
	worker_schedule(w);
	if (w->refreshing)
		return;
	snprintf(min, sizeof(min), "%" PRId64, now - WORKER_POOL_HORIZON_MS);
	snprintf(max, sizeof(max), "%d", POOL_MAX);
	argv[0] = "EVAL";
	argv[1] = WORKER_POOL_LUA;
	argv[2] = "1";
	argv[3] = RKEY_POOL;
	argv[4] = min;
	argv[5] = max;
	if (rasync_command(w->redis, worker_pool_reply, w, 6, argv, NULL)) {
		if (rasync_connected(w->redis))
			metrics_add(METRICS_REDIS_ERRORS, 1);
		worker_publish(w, now);
		return;
	}
	w->refreshing = 1;
}

int worker_init(struct worker *w, struct gateway_hub *hub, unsigned index)
{
	const struct gateway_env *env = &w->own;
	struct ingress_config icfg;

	memset(w, 0, sizeof(*w));
	w->hub = hub;
	worker_take(w);
	w->env = env;
	icfg = env->ingress;
	w->index = index;
	w->redis_ok_ms = INT64_MIN / 2;
	if (RAND_bytes((unsigned char *)&w->rnd, sizeof(w->rnd)) != 1 || !w->rnd)
		w->rnd = UINT64_C(0x9E3779B97F4A7C15) ^ (uint64_t)index;
	w->loop = loop_new();
	if (!w->loop)
		goto fail;
	/* before the ingress hook, so connections resumed here run in the same turn */
	if (loop_on_turn(w->loop, relay_turn, w) || loop_on_turn(w->loop, worker_sync, w))
		goto fail;
	w->pool = pool_new(&env->pool);
	w->up = upstream_new(w->loop, &env->upstream);
	w->redis = rasync_new(w->loop, &env->redis);
	if (!w->pool || !w->up || !w->redis) {
		log_error("worker.init", "worker %u: cannot set up pool, upstream or Redis", index);
		goto fail;
	}
	icfg.handler = relay_handler;
	icfg.handler_arg = w;
	icfg.completed = relay_completed;
	icfg.completed_arg = w;
	w->in = ingress_start(w->loop, &icfg);
	if (!w->in)
		goto fail;
	/* the first read as soon as Redis is connected; then every pool_refresh_ms */
	w->refresh = loop_timer_at(w->loop, clock_mono_ms() + 20, worker_refresh, w);
	if (!w->refresh)
		goto fail;
	return 0;
fail:
	worker_free(w);
	return -1;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int i;

	if (loop_run(w->loop))
		log_error("worker.loop", "worker %u: the event loop failed", w->index);
	/* end every request; MHD needs its suspended connections resumed before it stops */
	relay_shutdown(w);
	for (i = 0; i < 3; i++)
		loop_run_once(w->loop, 0);
	return NULL;
}

int worker_run(struct worker *w)
{
	int rc = pthread_create(&w->thread, NULL, worker_main, w);

	if (rc) {
		log_error("worker.run", "cannot start worker %u: %s", w->index, strerror(rc));
		return -1;
	}
	w->started = 1;
	return 0;
}

void worker_stop(struct worker *w)
{
	if (!w->started)
		return;
	loop_stop(w->loop);
	loop_wake(w->loop);
	pthread_join(w->thread, NULL);
	w->started = 0;
}

void worker_wake(struct worker *w)
{
	if (w->started)
		loop_wake(w->loop);
}

void worker_free(struct worker *w)
{
	if (!w->loop) {
		worker_live_put(w->live);
		w->live = NULL;
		return;
	}
	loop_timer_cancel(w->loop, w->refresh);
	w->refresh = NULL;
	if (w->in)
		relay_shutdown(w);
	ingress_stop(w->in);
	w->in = NULL;
	upstream_free(w->up);
	w->up = NULL;
	rasync_free(w->redis);
	w->redis = NULL;
	relay_turn(w);
	pool_free(w->pool);
	w->pool = NULL;
	loop_free(w->loop);
	w->loop = NULL;
	worker_live_put(w->live);
	w->live = NULL;
}
