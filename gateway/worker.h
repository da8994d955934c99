/* worker: one thread of the gateway: its loop, MHD daemon, curl multi, Redis and pool snapshot. */
#ifndef FSG_GATEWAY_WORKER_H
#define FSG_GATEWAY_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "gateway/admit.h"
#include "gateway/ingress.h"
#include "gateway/limits.h"
#include "gateway/loop.h"
#include "gateway/pool.h"
#include "gateway/rasync.h"
#include "gateway/upstream.h"

enum gateway_client_certs { CLIENT_CERTS_OFF = 0, CLIENT_CERTS_OPTIONAL, CLIENT_CERTS_REQUIRED };

/*
 * The settings a worker runs with. Each worker reads its own copy (worker->env), taken from the
 * hub between two loop turns, so a reload never changes it under a running callback.
 */
struct gateway_env {
	struct admit_config admit;        /* tokens, route keys, max job size, max URL */
	struct limits *limits;
	struct ingress_config ingress;    /* template: handler fields are set per worker */
	enum gateway_client_certs client_certs;
	struct rasync_config redis;
	struct pool_config pool;
	struct upstream_config upstream;
	const char *server_secret;        /* Authorization: Bearer to the data-center servers */
	const char *server_ca_file;       /* CA for https:// server URLs ("": the system's) */
	const char *server_cert_file;     /* client certificate for servers with mTLS ("": none) */
	const char *server_key_file;
	int64_t connect_timeout_ms;       /* connecting to a server (TCP and TLS) */
	int64_t answer_timeout_ms;        /* a server's answer after the request's last byte */
	int64_t min_rate;                 /* bytes per second a body must average over rate_window */
	int64_t rate_window_ms;
	int64_t request_deadline_ms;      /* absolute limit on one request */
	int64_t pool_refresh_ms;          /* how often each worker reads the pool from Redis */
	int64_t snapshot_max_age_ms;      /* how long a snapshot serves while Redis is gone */
	int64_t idem_ttl_ms;              /* fsg:idem lifetime (committed retention) */
	int64_t job_ttl_ms;               /* fsg:job lifetime */
	int64_t authfail_window_ms;
	int64_t retry_after_s;            /* Retry-After on 503 no-server-available */
	char seq_sha[41];                 /* SHA-1 of RKEY_SEQ_NEXT_LUA, for EVALSHA */
};

/*
 * One published set of settings (SIGHUP makes a new one). Immutable once published; freed when
 * the hub and every worker that copied it let go of it.
 */
struct gateway_live {
	atomic_uint refs;
	struct gateway_env env;           /* what the workers copy */
	struct token_verifier *tokens;    /* owned: env.admit.tokens */
	unsigned char *route_key;         /* owned copies of env.admit's keys (wiped when freed) */
	unsigned char *route_key_old;     /* or NULL */
};

/* What main shares with every worker thread. */
struct gateway_hub {
	pthread_mutex_t lock;             /* guards live, and each reference taken from it */
	struct gateway_live *live;        /* current; the hub holds one reference */
	atomic_uint generation;           /* bumped by each worker_live_publish */
	atomic_int draining;              /* set on SIGTERM: /readyz fails, new uploads get 503 */
	atomic_long requests;             /* requests in progress in every worker (drain waits) */
};

struct relay;

struct worker {
	const struct gateway_env *env;    /* &own: what relays read */
	struct gateway_env own;
	struct gateway_hub *hub;
	struct gateway_live *live;        /* the reference own was copied from */
	atomic_uint generation;           /* the hub's when live was taken */
	unsigned index;
	struct loop *loop;
	struct ingress *in;
	struct upstream *up;
	struct rasync *redis;
	struct pool *pool;
	struct loop_timer *refresh;
	int refreshing;                   /* a pool read is in flight */
	int64_t redis_ok_ms;              /* Unix ms of the last successful Redis reply */
	struct relay *dirty;              /* relays with work for the turn hook */
	struct relay *all;                /* every live relay (for shutdown) */
	uint64_t rnd;                     /* xorshift state for pool_pick */
	pthread_t thread;
	int started;
};

/*
 * A new set of settings with one reference: a copy of env with copies of its route keys, and
 * tokens, which it takes over (env.admit.tokens is ignored). NULL when out of memory (tokens
 * is freed then).
 */
struct gateway_live *worker_live_new(const struct gateway_env *env,
				     struct token_verifier *tokens);
/* Drops one reference; the last one frees. Any thread. Accepts NULL. */
void worker_live_put(struct gateway_live *l);
/*
 * Makes l (the caller's reference passes to the hub) the set every worker takes at the end of
 * its next loop turn, and drops the hub's reference to the previous one. Returns the hub's new
 * generation. Any thread.
 */
unsigned worker_live_publish(struct gateway_hub *hub, struct gateway_live *l);

/*
 * Sets up w on its own loop (ingress on the hub's env->ingress with the relay as handler,
 * upstream, Redis, pool, refresh timer), holding a reference to the hub's current settings.
 * Returns 0 or -1 (logged). worker_run runs the loop in a new thread; worker_stop asks it to
 * stop and joins; worker_free releases everything. worker_wake makes the worker take a newly
 * published set or the draining flag without waiting for traffic (any thread).
 */
int worker_init(struct worker *w, struct gateway_hub *hub, unsigned index);
int worker_run(struct worker *w);
void worker_stop(struct worker *w);
void worker_wake(struct worker *w);
/* Non-zero once w took the set of this generation (or a later one). Any thread. */
int worker_synced(const struct worker *w, unsigned generation);
void worker_free(struct worker *w);

/* Uniform random 32 bits from the worker's generator (pool_pick's rnd). */
uint32_t worker_random(void *w);

/*
 * The snapshot is usable for new jobs: Redis answered within snapshot_max_age_ms. When Redis
 * is not answering, *pick_now is the time the pool is judged at (its last update), so
 * heartbeats do not all go stale the moment Redis goes away.
 */
int worker_snapshot_ok(const struct worker *w, int64_t now_ms, int64_t *pick_now);

/* Non-zero once SIGTERM started the drain. Any thread. */
int worker_draining(const struct worker *w);

#endif
