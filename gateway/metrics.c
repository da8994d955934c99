/* metrics: the gateway's process-wide counters and gauges, rendered as Prometheus text. */
#include "gateway/metrics.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define METRICS_STATUS_MIN 100
#define METRICS_STATUS_MAX 599

struct metric_desc {
	const char *name;
	const char *help;
};

static const struct metric_desc counter_desc[METRICS__COUNTERS] = {
	[METRICS_BYTES_RELAYED] = {"relayed_bytes_total", "Job bytes handed to data-center servers."},
	[METRICS_FAILOVERS] = {"failovers_total",
			       "Creations moved to another server before their first byte."},
	[METRICS_AUTH_FAILURES] = {"auth_failures_total",
				   "Failed authentications (invalid tokens, refused certificates)."},
	[METRICS_RATE_LIMITED] = {"rate_limited_total",
				  "Requests answered 429 by a failure or per-user limit."},
	[METRICS_REDIS_ERRORS] = {"redis_errors_total",
				  "Redis commands refused, failed or timed out."},
	[METRICS_UPSTREAM_ERRORS] = {"upstream_errors_total",
				     "Transfers to a data-center server that ended without an answer."},
	[METRICS_CLIENT_ABORTS] = {"client_aborts_total",
				   "Client bodies that broke off (upstream request aborted)."},
	[METRICS_TIMEOUTS] = {"timeouts_total",
			      "Requests ended by the minimum upload rate or the deadline."},
};

static const struct metric_desc gauge_desc[METRICS__GAUGES] = {
	[METRICS_ACTIVE_UPLOADS] = {"active_uploads", "Requests now relaying job bytes."},
	[METRICS_POOL_SIZE] = {"pool_servers", "Data-center servers in the pool snapshot."},
	[METRICS_POOL_AVAILABLE] = {"pool_available_servers",
				    "Servers of the snapshot usable for a new job now."},
	[METRICS_SNAPSHOT_AGE_MS] = {"pool_snapshot_age_milliseconds",
				     "Age of the pool snapshot when last checked."},
};

static _Atomic uint64_t counters[METRICS__COUNTERS];
static _Atomic int64_t gauges[METRICS__GAUGES];
/* [0] counts statuses outside 100..599 */
static _Atomic uint64_t statuses[METRICS_STATUS_MAX - METRICS_STATUS_MIN + 2];

static size_t status_slot(int status)
{
	if (status < METRICS_STATUS_MIN || status > METRICS_STATUS_MAX)
		return 0;
	return (size_t)(status - METRICS_STATUS_MIN) + 1;
}

void metrics_add(enum metrics_counter c, uint64_t n)
{
	if ((unsigned)c < METRICS__COUNTERS)
		atomic_fetch_add_explicit(&counters[c], n, memory_order_relaxed);
}

void metrics_status(int status)
{
	atomic_fetch_add_explicit(&statuses[status_slot(status)], 1, memory_order_relaxed);
}

void metrics_gauge_add(enum metrics_gauge g, int64_t delta)
{
	if ((unsigned)g < METRICS__GAUGES)
		atomic_fetch_add_explicit(&gauges[g], delta, memory_order_relaxed);
}

void metrics_gauge_set(enum metrics_gauge g, int64_t v)
{
	if ((unsigned)g < METRICS__GAUGES)
		atomic_store_explicit(&gauges[g], v, memory_order_relaxed);
}

uint64_t metrics_counter_get(enum metrics_counter c)
{
	return (unsigned)c < METRICS__COUNTERS ? atomic_load(&counters[c]) : 0;
}

uint64_t metrics_status_get(int status)
{
	return atomic_load(&statuses[status_slot(status)]);
}

int64_t metrics_gauge_get(enum metrics_gauge g)
{
	return (unsigned)g < METRICS__GAUGES ? atomic_load(&gauges[g]) : 0;
}

char *metrics_render(size_t *len)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);
	size_t i;

	if (!f)
		return NULL;
	fputs("# HELP fsg_gateway_requests_total Answered requests by HTTP status.\n"
	      "# TYPE fsg_gateway_requests_total counter\n", f);
	for (i = 1; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		uint64_t v = atomic_load(&statuses[i]);

		if (v)
			fprintf(f, "fsg_gateway_requests_total{status=\"%zu\"} %" PRIu64 "\n",
				i - 1 + METRICS_STATUS_MIN, v);
	}
	if (atomic_load(&statuses[0]))
		fprintf(f, "fsg_gateway_requests_total{status=\"other\"} %" PRIu64 "\n",
			atomic_load(&statuses[0]));
	for (i = 0; i < METRICS__COUNTERS; i++)
		fprintf(f, "# HELP fsg_gateway_%s %s\n# TYPE fsg_gateway_%s counter\n"
			   "fsg_gateway_%s %" PRIu64 "\n",
			counter_desc[i].name, counter_desc[i].help, counter_desc[i].name,
			counter_desc[i].name, atomic_load(&counters[i]));
	for (i = 0; i < METRICS__GAUGES; i++)
		fprintf(f, "# HELP fsg_gateway_%s %s\n# TYPE fsg_gateway_%s gauge\n"
			   "fsg_gateway_%s %" PRId64 "\n",
			gauge_desc[i].name, gauge_desc[i].help, gauge_desc[i].name,
			gauge_desc[i].name, atomic_load(&gauges[i]));
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	if (len)
		*len = size;
	return buf;
}
