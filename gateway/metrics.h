/* metrics: the gateway's process-wide counters and gauges, rendered as Prometheus text. */
#ifndef FSG_GATEWAY_METRICS_H
#define FSG_GATEWAY_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* Every function here is thread-safe (C11 atomics, no locks). Counters only go up. */
enum metrics_counter {
	METRICS_BYTES_RELAYED = 0,  /* job bytes handed to data-center servers */
	METRICS_FAILOVERS,          /* creations moved to another server before their first byte */
	METRICS_AUTH_FAILURES,      /* invalid tokens and refused client certificates */
	METRICS_RATE_LIMITED,       /* 429s of the failed-authentication and per-user limits */
	METRICS_REDIS_ERRORS,       /* Redis commands refused, failed or timed out */
	METRICS_UPSTREAM_ERRORS,    /* transfers to a server that ended without an answer */
	METRICS_CLIENT_ABORTS,      /* client bodies that broke off: upstream request aborted */
	METRICS_TIMEOUTS,           /* requests ended by the minimum rate or a deadline */
	METRICS__COUNTERS
};

enum metrics_gauge {
	METRICS_ACTIVE_UPLOADS = 0, /* requests now relaying job bytes */
	METRICS_POOL_SIZE,          /* servers in the snapshot (worker 0's view) */
	METRICS_POOL_AVAILABLE,     /* of those, usable for a new job now */
	METRICS_SNAPSHOT_AGE_MS,    /* age of the pool snapshot at its last check (-1: none) */
	METRICS__GAUGES
};

void metrics_add(enum metrics_counter c, uint64_t n);
/* One answered request, by HTTP status (100..599; others count as "other"). */
void metrics_status(int status);
void metrics_gauge_add(enum metrics_gauge g, int64_t delta);
void metrics_gauge_set(enum metrics_gauge g, int64_t v);

uint64_t metrics_counter_get(enum metrics_counter c);
uint64_t metrics_status_get(int status);
int64_t metrics_gauge_get(enum metrics_gauge g);

/*
 * The Prometheus text exposition (format 0.0.4) of everything above, each metric family with
 * HELP and TYPE lines, names prefixed "fsg_gateway_". Returns a malloc'd NUL-terminated string
 * and its length in *len (len may be NULL), or NULL when out of memory.
 */
char *metrics_render(size_t *len);

#endif
