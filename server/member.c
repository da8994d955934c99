/* member: the server's membership in the Redis pool (announce, heartbeat, held-job index). */
#include "server/member.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/sentinel.h"
#include "proto/jobid.h"
#include "proto/owner.h"
#include "proto/rkey.h"

#define QUEUE_MAX 16384           /* held changes kept while Redis is away (about 1 MiB) */
#define DIRTY_MAX 4096            /* owners whose dropped removals the next resync cleans up */
#define BATCH 512                 /* commands per pipelined round trip */
#define FLUSH_ROUNDS 64           /* batches per turn, so a flood never starves the heartbeat */
#define RESYNC_MS (5 * 60 * 1000) /* a failover may lose recent ZADDs: re-add this often */
#define ZSCAN_ROUNDS 100000       /* bound on one owner's cleanup, whatever Redis answers */
#define INTERVAL_DEFAULT_MS 1000
#define TIMEOUT_DEFAULT_MS 500
#define DURATION_MAX_MS (24LL * 3600 * 1000)
#define HELD_MEMBER_MAX (SERVER_ID_MAX + 1 + JOBID_LEN) /* "<server-id>.<job-id>" */

struct held_op {
	int add;
	uint64_t score;
	char oh[OWNER_HASH_LEN + 1];
	char job_id[JOBID_LEN + 1];
};

struct member {
	/* fixed at start */
	char *password;
	char *master_name, *sentinel_password;
	struct sentinel_addr sentinels[SENTINEL_MAX];
	size_t nsentinels;        /* 0: host:port is Redis, always */
	struct timeval timeout;
	int64_t interval_ms;
	uint32_t capacity;
	char id[SERVER_ID_MAX + 1];
	char url[ANNOUNCE_URL_MAX + 1];
	char server_key[RKEY_MAX + 1];
	struct spool *s;
	pthread_t thread;

	/* shared with the callers, under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stop;
	int wake_beat;            /* heartbeat at once (draining changed) */
	int wake_held;            /* held changes are waiting */
	int draining;
	int connected;
	struct held_op *queue;    /* ring of QUEUE_MAX */
	size_t head, count;
	uint64_t head_seq;        /* how many ops left the ring before its head, ever */
	int resync;               /* a re-add of every committed job is due */
	char (*dirty)[OWNER_HASH_LEN + 1];
	size_t ndirty;
	int overflowing;          /* the ring dropped ops since it was last empty (logged once) */
	int dirty_lost;           /* an owner did not fit in dirty (logged once) */

	/* the member thread's, then member_stop's once the thread is joined */
	char host[SENTINEL_HOST_MAX + 1]; /* Redis: as configured, or the sentinels' answer */
	int port;
	size_t sentinel;          /* the sentinel asked first: the last one that answered */
	redisContext *ctx;
	int outage;               /* a Redis error was logged; the next one is not, until success */
	struct held_op *batch;    /* BATCH ops copied out of the ring */
	int64_t resync_at;        /* monotonic ms of the next periodic re-add */
};

/* Drops the connection after an error, which is logged only at the start of an outage. */
static void fail(struct member *m, const char *what, const char *detail)
{
	if (!m->outage)
		log_warn("redis.down", "redis %s:%d: %s: %s; retrying every %" PRId64 " ms",
			 m->host, m->port, what, detail ? detail : "no reply", m->interval_ms);
	m->outage = 1;
	redisFree(m->ctx);
	m->ctx = NULL;
	pthread_mutex_lock(&m->lock);
	m->connected = 0;
	pthread_mutex_unlock(&m->lock);
}

/* The reason for a missing or unexpected reply: hiredis' own, or Redis' error text. */
static const char *reply_why(struct member *m, const redisReply *r)
{
	if (!r)
		return m->ctx->err ? m->ctx->errstr : "no reply";
	if (r->type == REDIS_REPLY_ERROR)
		return r->str;
	return "unexpected reply";
}

/* Reads one pipelined reply; NULL when the connection failed (the context is then dead). */
static redisReply *reply_get(struct member *m)
{
	void *r = NULL;

	if (redisGetReply(m->ctx, &r) != REDIS_OK) {
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

static int reply_is_status(const redisReply *r, const char *s)
{
	return r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, s) == 0;
}

/* A WRONGTYPE on one held key is that key's problem: skip it rather than retry forever. */
static int reply_is_wrongtype(const redisReply *r)
{
	return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "WRONGTYPE", 9) == 0;
}

/*
 * A connection to host:port with its timeouts set and AUTH done. NULL with what failed and
 * why (in why, cap bytes) otherwise.
 */
static redisContext *connect_to(struct member *m, const char *host, int port,
				const char *password, const char **what, char *why, size_t cap)
{
	const char *argv[2] = {"AUTH", password};
	size_t lens[2] = {4, password ? strlen(password) : 0};
	redisContext *c = redisConnectWithTimeout(host, port, m->timeout);
	redisReply *r = NULL;

	*what = "connect";
	if (!c) {
		snprintf(why, cap, "out of memory");
		return NULL;
	}
	if (c->err) {
		snprintf(why, cap, "%s", c->errstr);
		goto fail;
	}
	/* redisReconnect would forget this: every connection is a fresh context */
	if (redisSetTimeout(c, m->timeout) != REDIS_OK) {
		*what = "set timeout";
		snprintf(why, cap, "%s", c->errstr);
		goto fail;
	}
	if (password) {
		r = redisCommandArgv(c, 2, argv, lens);
		if (!reply_is_status(r, "OK")) {
			*what = "AUTH";
			snprintf(why, cap, "%s", !r ? (c->err ? c->errstr : "no reply")
				 : r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
			goto fail;
		}
		freeReplyObject(r);
	}
	return c;
fail:
	freeReplyObject(r);
	redisFree(c);
	return NULL;
}

/* The master's address in a SENTINEL get-master-addr-by-name reply. NULL, or why not. */
static const char *answer_parse(const redisReply *r, struct sentinel_addr *out)
{
	const redisReply *h, *p;

	if (!r)
		return "no reply";
	if (r->type == REDIS_REPLY_NIL)
		return "no master of that name here";
	if (r->type == REDIS_REPLY_ERROR)
		return r->str;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
		return "unexpected reply";
	h = r->element[0];
	p = r->element[1];
	if (h->type != REDIS_REPLY_STRING || p->type != REDIS_REPLY_STRING ||
	    sentinel_addr_parse(h->str, h->len, p->str, p->len, SENTINEL_NAMES_OK, out))
		return "the master's address is not a host and port";
	return NULL;
}

/*
 * Asks the sentinels in turn, the last one that answered first, where the master is, and sets
 * m->host and m->port to the answer. 0, or -1 (logged at the start of an outage).
 */
static int discover(struct member *m)
{
	const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", m->master_name};
	char why[SENTINEL_HOST_MAX + 256] = "", detail[192];

	for (size_t i = 0; i < m->nsentinels; i++) {
		size_t k = (m->sentinel + i) % m->nsentinels;
		const struct sentinel_addr *s = &m->sentinels[k];
		struct sentinel_addr master;
		redisContext *c;
		redisReply *r;
		const char *what, *bad;

		c = connect_to(m, s->host, s->port, m->sentinel_password, &what, detail,
			       sizeof(detail));
		if (!c) {
			snprintf(why, sizeof(why), "sentinel %s:%d: %s: %s", s->host, s->port, what,
				 detail);
			continue;
		}
		r = redisCommandArgv(c, 3, argv, NULL);
		bad = answer_parse(r, &master);
		if (bad)
			snprintf(why, sizeof(why), "sentinel %s:%d: %s", s->host, s->port,
				 !r && c->err ? c->errstr : bad);
		freeReplyObject(r);
		redisFree(c);
		if (bad)
			continue;
		if (strcmp(master.host, m->host) || master.port != m->port)
			log_info("redis.master", "sentinel %s:%d: master %s is at %s:%d", s->host,
				 s->port, m->master_name, master.host, master.port);
		memcpy(m->host, master.host, sizeof(m->host));
		m->port = master.port;
		m->sentinel = k;
		return 0;
	}
	if (!m->outage)
		log_warn("redis.down", "no sentinel gave the address of master %s (%s); retrying "
			 "every %" PRId64 " ms", m->master_name, why, m->interval_ms);
	m->outage = 1;
	fail(m, "sentinels", why);
	return -1;
}

static int is_master(const redisReply *r)
{
	return r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
	       r->element[0]->type == REDIS_REPLY_STRING &&
	       sentinel_role_is_master(r->element[0]->str, r->element[0]->len);
}

static int redis_connect(struct member *m)
{
	const char *what, *role[1] = {"ROLE"};
	char why[192];
	redisReply *r;

	if (m->nsentinels && discover(m))
		return -1;
	m->ctx = connect_to(m, m->host, m->port, m->password, &what, why, sizeof(why));
	if (!m->ctx) {
		fail(m, what, why);
		return -1;
	}
	if (m->nsentinels) {
		/* in a failover the answer may still name the old master, now a replica */
		r = redisCommandArgv(m->ctx, 1, role, NULL);
		if (!is_master(r)) {
			fail(m, "ROLE", r && r->type != REDIS_REPLY_ERROR ? "not the master"
								     : reply_why(m, r));
			freeReplyObject(r);
			return -1;
		}
		freeReplyObject(r);
	}
	/* a new connection may be a new (empty) Redis: re-add every held job */
	pthread_mutex_lock(&m->lock);
	m->resync = 1;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

/* MULTI, HSET the announcement, PEXPIRE it, ZADD the pool, EXEC: one round trip. */
static int heartbeat(struct member *m)
{
	const char *argv[2 + 2 * ANNOUNCE_FIELDS];
	size_t lens[2 + 2 * ANNOUNCE_FIELDS];
	struct proto_field f[ANNOUNCE_FIELDS];
	struct announce_text text;
	struct announce a = {0};
	char ttl[24], score[24];
	redisReply *r = NULL, *hset;
	int rc = -1;

	memcpy(a.id, m->id, sizeof(a.id));
	memcpy(a.url, m->url, sizeof(a.url));
	a.capacity = m->capacity;
	a.active = spool_active(m->s);
	a.free_bytes = spool_free_bytes(m->s);
	pthread_mutex_lock(&m->lock);
	a.draining = m->draining;
	pthread_mutex_unlock(&m->lock);
	a.heartbeat_ms = (uint64_t)clock_unix_ms();
	if (announce_fields(&a, &text, f)) {
		fail(m, "heartbeat", "announcement does not check");
		return -1;
	}
	argv[0] = "HSET";
	argv[1] = m->server_key;
	for (size_t i = 0; i < ANNOUNCE_FIELDS; i++) {
		argv[2 + 2 * i] = f[i].name;
		argv[3 + 2 * i] = f[i].value;
		lens[2 + 2 * i] = f[i].name_len;
		lens[3 + 2 * i] = f[i].value_len;
	}
	lens[0] = 4;
	lens[1] = strlen(m->server_key);
	snprintf(ttl, sizeof(ttl), "%" PRId64, 3 * m->interval_ms);
	snprintf(score, sizeof(score), "%" PRIu64, a.heartbeat_ms);

	if (redisAppendCommand(m->ctx, "MULTI") != REDIS_OK ||
	    redisAppendCommandArgv(m->ctx, 2 + 2 * ANNOUNCE_FIELDS, argv, lens) != REDIS_OK ||
	    redisAppendCommand(m->ctx, "PEXPIRE %s %s", m->server_key, ttl) != REDIS_OK ||
	    redisAppendCommand(m->ctx, "ZADD %s %s %s", RKEY_POOL, score, m->id) != REDIS_OK ||
	    redisAppendCommand(m->ctx, "EXEC") != REDIS_OK) {
		fail(m, "heartbeat", m->ctx->errstr);
		return -1;
	}
	r = reply_get(m);
	if (!reply_is_status(r, "OK"))
		goto out;
	for (int i = 0; i < 3; i++) {
		freeReplyObject(r);
		r = reply_get(m);
		if (!reply_is_status(r, "QUEUED"))
			goto out;
	}
	freeReplyObject(r);
	r = reply_get(m);
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3)
		goto out;
	for (size_t i = 0; i < 3; i++)
		if (r->element[i]->type != REDIS_REPLY_INTEGER) {
			/* name the failed command's error (WRONGTYPE, OOM...) if there is one */
			fail(m, "heartbeat", reply_why(m, r->element[i]));
			freeReplyObject(r);
			return -1;
		}
	hset = r->element[0];
	rc = 0;
	/* every field new: the hash was gone (Redis restarted or lost it), so were held jobs */
	if (hset->integer == ANNOUNCE_FIELDS) {
		pthread_mutex_lock(&m->lock);
		m->resync = 1;
		pthread_mutex_unlock(&m->lock);
	}
	pthread_mutex_lock(&m->lock);
	m->connected = 1;
	pthread_mutex_unlock(&m->lock);
out:
	if (rc)
		fail(m, "heartbeat", reply_why(m, r));
	freeReplyObject(r);
	return rc;
}

/* Appends ZADD/ZREM of one held entry to the pipeline. */
static int held_append(struct member *m, int add, const char *oh, const char *job_id,
		       uint64_t score)
{
	char key[RKEY_MAX + 1], member[HELD_MEMBER_MAX + 1], sc[24];
	const char *argv[4];
	size_t lens[4];

	if (rkey_held(oh, key, sizeof(key)))
		return -1; /* cannot happen: oh comes from owner_hash */
	snprintf(member, sizeof(member), "%s.%s", m->id, job_id);
	snprintf(sc, sizeof(sc), "%" PRIu64, score);
	argv[0] = add ? "ZADD" : "ZREM";
	argv[1] = key;
	lens[0] = 4;
	lens[1] = strlen(key);
	if (add) {
		argv[2] = sc;
		argv[3] = member;
		lens[2] = strlen(sc);
		lens[3] = strlen(member);
	} else {
		argv[2] = member;
		lens[2] = strlen(member);
	}
	if (redisAppendCommandArgv(m->ctx, add ? 4 : 3, argv, lens) != REDIS_OK)
		return -1;
	return 0;
}

/*
 * Reads n replies of held commands. A WRONGTYPE (someone else's key) is logged and skipped;
 * any other error or a dead connection fails the turn, so the ops stay queued.
 */
static int held_replies(struct member *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		redisReply *r = reply_get(m);

		if (r && r->type == REDIS_REPLY_INTEGER) {
			freeReplyObject(r);
			continue;
		}
		if (reply_is_wrongtype(r)) {
			log_warn("held.skipped", "a fsg:held key is not a sorted set: %s", r->str);
			freeReplyObject(r);
			continue;
		}
		fail(m, "held index", reply_why(m, r));
		freeReplyObject(r);
		return -1;
	}
	return 0;
}

static int id_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Removes this server's entries of fsg:held:{oh} whose job is not in ids (sorted): the
 * removals that overflowed the queue. ids was listed before, and the queue is flushed after,
 * so a job committed meanwhile is re-added by its own queued ZADD.
 */
static int held_clean(struct member *m, const char *oh, const char **ids, size_t n)
{
	char key[RKEY_MAX + 1], pattern[SERVER_ID_MAX + 3], cursor[32] = "0";
	size_t prefix = strlen(m->id) + 1, removed = 0;

	if (rkey_held(oh, key, sizeof(key)))
		return 0;
	snprintf(pattern, sizeof(pattern), "%s.*", m->id);
	for (int round = 0; round < ZSCAN_ROUNDS; round++) {
		const char *argv[7] = {"ZSCAN", key, cursor, "MATCH", pattern, "COUNT", "1000"};
		redisReply *r = redisCommandArgv(m->ctx, 7, argv, NULL);
		redisReply *items;
		size_t zrem = 0;

		if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    r->element[0]->len >= sizeof(cursor) ||
		    r->element[1]->type != REDIS_REPLY_ARRAY) {
			if (reply_is_wrongtype(r)) {
				freeReplyObject(r);
				return 0;
			}
			fail(m, "held cleanup", reply_why(m, r));
			freeReplyObject(r);
			return -1;
		}
		items = r->element[1];
		for (size_t i = 0; i + 1 < items->elements; i += 2) {
			const redisReply *e = items->element[i];
			const char *id;
			const char *zargv[3] = {"ZREM", key, NULL};
			size_t zlens[3] = {4, strlen(key), 0};

			if (e->type != REDIS_REPLY_STRING || e->len != prefix + JOBID_LEN ||
			    memcmp(e->str, m->id, prefix - 1) != 0 || e->str[prefix - 1] != '.')
				continue;
			id = e->str + prefix;
			if (bsearch(&id, ids, n, sizeof(*ids), id_cmp))
				continue;
			zargv[2] = e->str;
			zlens[2] = e->len;
			if (redisAppendCommandArgv(m->ctx, 3, zargv, zlens) != REDIS_OK) {
				freeReplyObject(r);
				fail(m, "held cleanup", m->ctx->errstr);
				return -1;
			}
			zrem++;
		}
		memcpy(cursor, r->element[0]->str, r->element[0]->len);
		cursor[r->element[0]->len] = '\0';
		freeReplyObject(r);
		if (held_replies(m, zrem))
			return -1;
		removed += zrem;
		if (strcmp(cursor, "0") == 0)
			break;
	}
	if (removed)
		log_info("held.cleaned", "removed %zu stale held entries of one owner", removed);
	return 0;
}

/* Remembers an owner whose removal was dropped, for the next resync to clean. Under lock. */
static void dirty_add(struct member *m, const char *oh, int *lost)
{
	for (size_t i = 0; i < m->ndirty; i++)
		if (strcmp(m->dirty[i], oh) == 0)
			return;
	if (!m->dirty)
		m->dirty = malloc(DIRTY_MAX * sizeof(*m->dirty));
	if (!m->dirty || m->ndirty == DIRTY_MAX) {
		if (!m->dirty_lost)
			*lost = 1;
		m->dirty_lost = 1;
		return;
	}
	memcpy(m->dirty[m->ndirty++], oh, OWNER_HASH_LEN + 1);
}

/*
 * Re-adds every committed job (after a (re)connection, a lost hash, an overflow, or
 * periodically), then cleans the owners whose removals overflowed.
 */
static int held_resync(struct member *m)
{
	char (*dirty)[OWNER_HASH_LEN + 1];
	struct spool_job *jobs = NULL;
	const char **ids = NULL;
	size_t n = 0, ndirty, pending = 0, added = 0;
	enum spool_err err;
	int rc = -1;

	pthread_mutex_lock(&m->lock);
	if (!m->resync) {
		pthread_mutex_unlock(&m->lock);
		return 0;
	}
	/* taken before listing: an overflow from now on asks for another pass */
	m->resync = 0;
	dirty = m->dirty;
	ndirty = m->ndirty;
	m->dirty = NULL;
	m->ndirty = 0;
	pthread_mutex_unlock(&m->lock);

	err = spool_list(m->s, NULL, &jobs, &n);
	if (err) {
		log_error("held.resync", "cannot list the spool: %s", spool_strerror(err));
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char oh[OWNER_HASH_LEN + 1];

		if (owner_hash(jobs[i].owner, strlen(jobs[i].owner), oh, sizeof(oh)) ||
		    strlen(jobs[i].id) != JOBID_LEN) {
			log_error("held.resync", "job %.*s has an invalid owner or id; skipped",
				  JOBID_LEN, jobs[i].id);
			continue;
		}
		if (held_append(m, 1, oh, jobs[i].id, jobs[i].sequence)) {
			fail(m, "held resync", m->ctx->errstr);
			goto out;
		}
		if (++pending == BATCH) {
			if (held_replies(m, pending))
				goto out;
			added += pending;
			pending = 0;
		}
	}
	if (held_replies(m, pending))
		goto out;
	added += pending;
	if (ndirty) {
		ids = malloc((n ? n : 1) * sizeof(*ids));
		if (!ids) {
			log_error("held.resync", "out of memory");
			goto out;
		}
		for (size_t i = 0; i < n; i++)
			ids[i] = jobs[i].id;
		qsort(ids, n, sizeof(*ids), id_cmp);
		for (size_t i = 0; i < ndirty; i++)
			if (held_clean(m, dirty[i], ids, n))
				goto out;
		free(dirty);
		dirty = NULL;
		ndirty = 0;
	}
	log_info("held.resync", "re-added %zu held jobs", added);
	rc = 0;
out:
	if (rc) {
		/* try again next turn; put back the owners still to clean */
		int lost = 0;

		pthread_mutex_lock(&m->lock);
		m->resync = 1;
		for (size_t i = 0; i < ndirty; i++)
			dirty_add(m, dirty[i], &lost);
		pthread_mutex_unlock(&m->lock);
		if (lost)
			log_error("held.overflow", "more than %d owners with dropped removals: some "
				  "released jobs may stay listed in fsg:held", DIRTY_MAX);
	}
	free(dirty);
	free(ids);
	free(jobs);
	return rc;
}

/* Sends the queued held changes, batch by batch; each leaves the ring once Redis took it. */
static int held_flush(struct member *m)
{
	for (int round = 0; round < FLUSH_ROUNDS; round++) {
		uint64_t first;
		size_t n;

		pthread_mutex_lock(&m->lock);
		n = m->count < BATCH ? m->count : BATCH;
		for (size_t i = 0; i < n; i++)
			m->batch[i] = m->queue[(m->head + i) % QUEUE_MAX];
		first = m->head_seq;
		pthread_mutex_unlock(&m->lock);
		if (n == 0)
			return 0;
		for (size_t i = 0; i < n; i++) {
			const struct held_op *op = &m->batch[i];

			if (held_append(m, op->add, op->oh, op->job_id, op->score)) {
				fail(m, "held index", m->ctx->errstr);
				return -1;
			}
		}
		if (held_replies(m, n))
			return -1;
		/* ops may have been dropped from the head meanwhile: count by number, not slot */
		pthread_mutex_lock(&m->lock);
		while (m->count && m->head_seq < first + n) {
			m->head = (m->head + 1) % QUEUE_MAX;
			m->head_seq++;
			m->count--;
		}
		if (m->count == 0)
			m->overflowing = 0;
		pthread_mutex_unlock(&m->lock);
	}
	/* a flood: let the next wait return at once */
	pthread_mutex_lock(&m->lock);
	m->wake_held = m->count != 0;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

/* The resync first (see held_clean); a failure of the spool alone does not hold up the queue. */
static int held_sync(struct member *m)
{
	held_resync(m);
	if (!m->ctx)
		return -1;
	return held_flush(m);
}

/* One turn: (re)connect, heartbeat when due, then the held index. */
static void turn(struct member *m, int beat)
{
	int64_t now = clock_mono_ms();

	if (!m->ctx && redis_connect(m))
		return;
	if (beat && heartbeat(m))
		return;
	if (now >= m->resync_at) {
		m->resync_at = now + RESYNC_MS;
		pthread_mutex_lock(&m->lock);
		m->resync = 1;
		pthread_mutex_unlock(&m->lock);
	}
	if (held_sync(m))
		return;
	if (m->outage)
		log_info("redis.up", "redis %s:%d: registered as %s", m->host, m->port, m->id);
	m->outage = 0;
}

/* Last words: held changes, then DEL fsg:server:{id} and ZREM fsg:pool {id}; best effort. */
static void deregister(struct member *m)
{
	redisReply *r;

	if (!m->ctx && redis_connect(m))
		return;
	if (held_sync(m))
		return;
	if (redisAppendCommand(m->ctx, "DEL %s", m->server_key) != REDIS_OK ||
	    redisAppendCommand(m->ctx, "ZREM %s %s", RKEY_POOL, m->id) != REDIS_OK) {
		fail(m, "deregister", m->ctx->errstr);
		return;
	}
	for (int i = 0; i < 2; i++) {
		r = reply_get(m);
		if (!r || r->type != REDIS_REPLY_INTEGER) {
			fail(m, "deregister", reply_why(m, r));
			freeReplyObject(r);
			return;
		}
		freeReplyObject(r);
	}
	log_info("member.deregistered", "server %s left the pool", m->id);
}

static void *member_main(void *arg)
{
	struct member *m = arg;
	int64_t next = clock_mono_ms();

	m->resync_at = next + RESYNC_MS;
	for (;;) {
		int beat, stop;

		pthread_mutex_lock(&m->lock);
		for (;;) {
			int64_t now = clock_mono_ms();
			struct timespec ts;

			/* while disconnected, only the interval retries: no reconnect storms */
			if (m->stop || now >= next || (m->ctx && (m->wake_beat || m->wake_held)))
				break;
			ts.tv_sec = next / 1000;
			ts.tv_nsec = (long)(next % 1000) * 1000000L;
			pthread_cond_timedwait(&m->cond, &m->lock, &ts);
		}
		stop = m->stop;
		beat = m->wake_beat || clock_mono_ms() >= next;
		m->wake_beat = 0;
		m->wake_held = 0;
		pthread_mutex_unlock(&m->lock);
		if (stop)
			break;
		if (beat)
			next = clock_mono_ms() + m->interval_ms;
		turn(m, beat);
	}
	/* here rather than in member_stop: this thread has SIGPIPE blocked for hiredis' writes */
	deregister(m);
	return NULL;
}

static int has_sentinels(const struct member_config *cfg)
{
	return cfg->redis_sentinels && cfg->redis_sentinels[strspn(cfg->redis_sentinels, " \t")];
}

static int config_check(const struct member_config *cfg, const struct spool *s)
{
	size_t len;

	if (!cfg || !s || !cfg->server_id || !cfg->url) {
		log_error("member.config", "missing server id, url or spool");
		return -1;
	}
	if (!has_sentinels(cfg) && (!cfg->redis_host || !cfg->redis_host[0] ||
				    strlen(cfg->redis_host) > SENTINEL_HOST_MAX)) {
		log_error("member.config", "missing or overlong redis host");
		return -1;
	}
	if (!has_sentinels(cfg) && (cfg->redis_port < 1 || cfg->redis_port > 65535)) {
		log_error("member.config", "redis port %d out of 1..65535", cfg->redis_port);
		return -1;
	}
	if (has_sentinels(cfg) && (!cfg->redis_master_name || !cfg->redis_master_name[0])) {
		log_error("member.config", "redis sentinels without a master name");
		return -1;
	}
	len = strnlen(cfg->server_id, SERVER_ID_MAX + 1);
	if (announce_server_id_check(cfg->server_id, len)) {
		log_error("member.config", "invalid server id");
		return -1;
	}
	len = strnlen(cfg->url, ANNOUNCE_URL_MAX + 1);
	if (announce_url_check(cfg->url, len)) {
		log_error("member.config", "invalid server url");
		return -1;
	}
	if (cfg->capacity < 1 || cfg->capacity > ANNOUNCE_CAPACITY_MAX) {
		log_error("member.config", "capacity %u out of 1..%d", (unsigned)cfg->capacity,
			  ANNOUNCE_CAPACITY_MAX);
		return -1;
	}
	if (cfg->redis_timeout_ms < 0 || cfg->redis_timeout_ms > DURATION_MAX_MS ||
	    cfg->interval_ms < 0 || cfg->interval_ms > DURATION_MAX_MS) {
		log_error("member.config", "redis timeout or heartbeat interval out of range");
		return -1;
	}
	return 0;
}

/* Frees what member_start allocated; the thread is not running. */
static void member_free(struct member *m)
{
	redisFree(m->ctx);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
	if (m->password)
		explicit_bzero(m->password, strlen(m->password));
	if (m->sentinel_password)
		explicit_bzero(m->sentinel_password, strlen(m->sentinel_password));
	free(m->password);
	free(m->sentinel_password);
	free(m->master_name);
	free(m->queue);
	free(m->batch);
	free(m->dirty);
	free(m);
}

struct member *member_start(const struct member_config *cfg, struct spool *s)
{
	pthread_condattr_t ca;
	sigset_t all, old;
	struct member *m;
	int64_t ms;

	if (config_check(cfg, s))
		return NULL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	if (pthread_condattr_init(&ca)) {
		free(m);
		return NULL;
	}
	if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) || pthread_cond_init(&m->cond, &ca)) {
		pthread_condattr_destroy(&ca);
		free(m);
		return NULL;
	}
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&m->lock, NULL);
	m->s = s;
	if (sentinel_list_parse(cfg->redis_sentinels, SENTINEL_NAMES_OK, m->sentinels,
				SENTINEL_MAX, &m->nsentinels)) {
		log_error("member.config", "bad redis sentinel list");
		goto fail;
	}
	if (!m->nsentinels) {
		snprintf(m->host, sizeof(m->host), "%s", cfg->redis_host);
		m->port = cfg->redis_port;
	}
	m->capacity = cfg->capacity;
	m->interval_ms = cfg->interval_ms ? cfg->interval_ms : INTERVAL_DEFAULT_MS;
	ms = cfg->redis_timeout_ms ? cfg->redis_timeout_ms : TIMEOUT_DEFAULT_MS;
	m->timeout.tv_sec = (time_t)(ms / 1000);
	m->timeout.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	snprintf(m->id, sizeof(m->id), "%s", cfg->server_id);
	snprintf(m->url, sizeof(m->url), "%s", cfg->url);
	m->password = cfg->redis_password ? strdup(cfg->redis_password) : NULL;
	m->master_name = m->nsentinels ? strdup(cfg->redis_master_name) : NULL;
	m->sentinel_password = m->nsentinels && cfg->redis_sentinel_password
				       ? strdup(cfg->redis_sentinel_password) : NULL;
	m->queue = malloc(QUEUE_MAX * sizeof(*m->queue));
	m->batch = malloc(BATCH * sizeof(*m->batch));
	if ((cfg->redis_password && !m->password) || (m->nsentinels && !m->master_name) ||
	    (m->nsentinels && cfg->redis_sentinel_password && !m->sentinel_password) ||
	    !m->queue || !m->batch || rkey_server(m->id, m->server_key, sizeof(m->server_key)))
		goto fail;
	/* signals belong to the main thread; a blocked SIGPIPE also only fails the write */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&m->thread, NULL, member_main, m)) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		log_error("member.start", "cannot start the member thread");
		goto fail;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return m;
fail:
	member_free(m);
	return NULL;
}

void member_set_draining(struct member *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->draining = 1;
	m->wake_beat = 1;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

static void held_queue(struct member *m, int add, const struct spool_job *job)
{
	struct held_op op = {.add = add, .score = job->sequence};
	int overflow = 0, lost = 0;

	if (strnlen(job->id, sizeof(job->id)) != JOBID_LEN ||
	    owner_hash(job->owner, strnlen(job->owner, sizeof(job->owner)), op.oh,
		       sizeof(op.oh))) {
		log_error("held.queue", "job %.*s has an invalid id or owner", JOBID_LEN, job->id);
		return;
	}
	memcpy(op.job_id, job->id, sizeof(op.job_id));
	pthread_mutex_lock(&m->lock);
	if (m->count == QUEUE_MAX) {
		/* drop the oldest: a resync re-adds what an add did, and cleans a removal's owner */
		const struct held_op *old = &m->queue[m->head];

		if (!old->add)
			dirty_add(m, old->oh, &lost);
		m->head = (m->head + 1) % QUEUE_MAX;
		m->head_seq++;
		m->count--;
		m->resync = 1;
		if (!m->overflowing)
			overflow = 1;
		m->overflowing = 1;
	}
	m->queue[(m->head + m->count) % QUEUE_MAX] = op;
	m->count++;
	m->wake_held = 1;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->lock);
	if (overflow)
		log_warn("held.overflow", "%d held changes queued: dropping the oldest, a full "
			 "resync follows", QUEUE_MAX);
	if (lost)
		log_error("held.overflow", "more than %d owners with dropped removals: some "
			  "released jobs may stay listed in fsg:held", DIRTY_MAX);
}

void member_held_add(struct member *m, const struct spool_job *job)
{
	if (m && job)
		held_queue(m, 1, job);
}

void member_held_remove(struct member *m, const struct spool_job *job)
{
	if (m && job)
		held_queue(m, 0, job);
}

int member_connected(struct member *m)
{
	int c;

	if (!m)
		return 0;
	pthread_mutex_lock(&m->lock);
	c = m->connected;
	pthread_mutex_unlock(&m->lock);
	return c;
}

void member_stop(struct member *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->stop = 1;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->lock);
	pthread_join(m->thread, NULL);
	member_free(m);
}
