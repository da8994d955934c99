/* member: the server's membership in the Redis pool (announce, heartbeat, held-job index). */
#ifndef FSG_SERVER_MEMBER_H
#define FSG_SERVER_MEMBER_H

#include <stdint.h>

#include "proto/announce.h"
#include "server/spool.h"

struct member_config {
	const char *redis_host;    /* resolved in the member thread, never in a request path */
	int redis_port;
	const char *redis_password; /* NULL: no AUTH */
	/*
	 * Redis Sentinel: "host:port,[ipv6]:port" (common/sentinel.h, names allowed). NULL or
	 * blank: none, Redis is redis_host:redis_port; else those are not used.
	 */
	const char *redis_sentinels;
	const char *redis_master_name;       /* the master's name at the sentinels */
	const char *redis_sentinel_password; /* NULL: no AUTH to the sentinels */
	int64_t redis_timeout_ms;  /* bound on connect and on each command (0: 500; at most 1 day) */
	const char *server_id;
	const char *url;           /* base URL gateways reach this server at */
	uint32_t capacity;         /* most concurrent uploads */
	int64_t interval_ms;       /* heartbeat interval (0: 1000; at most 1 day); TTL is three */
};

struct member;

/*
 * Starts the member thread: every interval it writes the fsg:server:{id} hash (announce.h
 * fields, figures from spool_active/spool_free_bytes), PEXPIREs it to 3 intervals and ZADDs
 * fsg:pool, all in one MULTI/EXEC. Held-index updates queued with member_held_* are sent at
 * once when connected (else on the next turn) and kept until Redis takes them; the queue holds
 * 16384 changes, past which the oldest is dropped and a full resync follows (a dropped removal
 * also gets its owner's fsg:held key cleaned of this server's entries for jobs not held).
 * It re-adds every committed job of the spool to fsg:held:{owner-hash} after each
 * (re)connection, when the heartbeat finds the hash gone (HSET added all eight fields: Redis
 * lost it) and every 5 minutes. Redis being down never blocks a caller: the thread logs once
 * per outage, drops the connection and retries each interval. With sentinels, each connection
 * first asks them in turn (the last one that answered first) where the master is and checks
 * with ROLE that the node named is the master; any error (a lost connection, a timeout, a
 * -READONLY reply from a demoted master) drops the connection, so the next one asks again.
 * Config strings are copied; the password is never logged. Returns NULL on failure to start
 * (bad config: the server id, url, capacity, port, sentinel list or durations out of their
 * ranges, no master name with sentinels; or no thread). s must outlive the member.
 */
struct member *member_start(const struct member_config *cfg, struct spool *s);

/* From now on the announcement says draining=1; sent at once. Thread-safe. */
void member_set_draining(struct member *m);

/*
 * Queue fsg:held changes for a job (committed: add; released/deleted/expired: remove), scored
 * by job->sequence. Thread-safe; takes a short lock, never waits for Redis. Accept NULL m.
 */
void member_held_add(struct member *m, const struct spool_job *job);
void member_held_remove(struct member *m, const struct spool_job *job);

/* Non-zero once a heartbeat has reached Redis and the last one succeeded. */
int member_connected(struct member *m);

/*
 * Stops the thread: flushes queued held changes if Redis answers, deletes fsg:server:{id} and
 * ZREMs the id from fsg:pool (best effort, bounded by the timeout per command), and frees m.
 * fsg:held stays: the jobs are still held at this server. Accepts NULL.
 */
void member_stop(struct member *m);

#endif
