/* limits: the process-wide failed-authentication counters and per-user upload counts. */
#ifndef FSG_GATEWAY_LIMITS_H
#define FSG_GATEWAY_LIMITS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Failed authentications are counted in Redis (INCR, so every gateway sees one count per
 * address and per owner), but the decision to refuse is taken from this process's memory, on
 * the request's first handler call, without waiting for Redis: the count each INCR returns is
 * remembered here, so once any gateway pushed a counter to the limit, this one refuses the key
 * from its next failure on. While Redis is unreachable the counting continues here alone.
 * Shared by every worker thread (a mutex guards it).
 */
struct limits_config {
	uint64_t authfail_limit;    /* failures within the window that block (0: never block) */
	int64_t authfail_window_ms; /* > 0 */
	unsigned uploads_per_user;  /* concurrent uploads per owner (0: no limit) */
	size_t authfail_slots;      /* remembered keys (0: 65536), in sets of 4 chosen by a keyed
				       hash: a full set forgets the entry whose window ends
				       first */
};

struct limits;

struct limits *limits_new(const struct limits_config *cfg);
/*
 * Takes cfg's limit, window and uploads per user (a reload; authfail_slots stays). Counters
 * are kept: a lower uploads_per_user refuses new uploads until enough end, a new window
 * applies to windows that start from now on. Thread-safe. 0, or -1 (window <= 0: unchanged).
 */
int limits_configure(struct limits *l, const struct limits_config *cfg);
void limits_free(struct limits *l);

/*
 * Milliseconds until key (an fsg:authfail:* key name) may try again when its counter reached
 * the limit in a window not yet over at now_ms (Unix ms), else 0.
 */
int64_t limits_authfail_blocked(struct limits *l, const char *key, int64_t now_ms);

/*
 * Remembers count for key, as a Redis INCR just returned it; ttl_ms is the key's remaining
 * life (PTTL; <= 0: a full window from now). A lower count than remembered within the same
 * window is ignored (replies can arrive out of order), except 1: Redis started a new window.
 */
void limits_authfail_note(struct limits *l, const char *key, uint64_t count, int64_t ttl_ms,
			  int64_t now_ms);

/* Counts one failure here only (Redis unreachable); returns the key's new count. */
uint64_t limits_authfail_local(struct limits *l, const char *key, int64_t now_ms);

/*
 * Starts an upload for owner_hash: 0, or -1 when the owner already has uploads_per_user in
 * progress in this process (or out of memory). Each 0 needs one limits_upload_end.
 */
int limits_upload_begin(struct limits *l, const char *owner_hash);
void limits_upload_end(struct limits *l, const char *owner_hash);
/* Uploads in progress for owner_hash. */
unsigned limits_uploads(struct limits *l, const char *owner_hash);

#endif
