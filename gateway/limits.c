/* limits: the process-wide failed-authentication counters and per-user upload counts. */
#include "gateway/limits.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "proto/owner.h"
#include "proto/rkey.h"

#define LIMITS_WAYS 4          /* a key lives in one set of this many slots */
#define LIMITS_SLOTS_DEFAULT 65536
#define LIMITS_USER_BUCKETS 1024

struct authfail {
	char key[RKEY_MAX + 1]; /* "" when free */
	uint64_t count;
	int64_t until_ms;       /* end of the window */
};

struct user {
	char oh[OWNER_HASH_LEN + 1];
	unsigned uploads;
	struct user *next;
};

struct limits {
	struct limits_config cfg;
	pthread_mutex_t lock;
	struct authfail *slots;
	size_t nsets;
	uint64_t seed[2];       /* keys come from clients: the set index is keyed */
	struct user *users[LIMITS_USER_BUCKETS];
};

/* SipHash would do too; a keyed multiply-xor is enough to spread addresses over sets. */
static uint64_t limits_hash(const struct limits *l, const char *s)
{
	uint64_t h = l->seed[0];

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= UINT64_C(0x100000001b3);
		h ^= h >> 29;
	}
	h ^= l->seed[1];
	h *= UINT64_C(0x9E3779B97F4A7C15);
	return h ^ (h >> 32);
}

struct limits *limits_new(const struct limits_config *cfg)
{
	struct limits *l;
	size_t slots = cfg->authfail_slots ? cfg->authfail_slots : LIMITS_SLOTS_DEFAULT;

	if (cfg->authfail_window_ms <= 0 || slots < LIMITS_WAYS)
		return NULL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->cfg = *cfg;
	l->nsets = slots / LIMITS_WAYS;
	l->slots = calloc(l->nsets * LIMITS_WAYS, sizeof(*l->slots));
	if (!l->slots || RAND_bytes((unsigned char *)l->seed, sizeof(l->seed)) != 1 ||
	    pthread_mutex_init(&l->lock, NULL)) {
		free(l->slots);
		free(l);
		return NULL;
	}
	return l;
}

int limits_configure(struct limits *l, const struct limits_config *cfg)
{
	if (cfg->authfail_window_ms <= 0)
		return -1;
	pthread_mutex_lock(&l->lock);
	l->cfg.authfail_limit = cfg->authfail_limit;
	l->cfg.authfail_window_ms = cfg->authfail_window_ms;
	l->cfg.uploads_per_user = cfg->uploads_per_user;
	pthread_mutex_unlock(&l->lock);
	return 0;
}

void limits_free(struct limits *l)
{
	size_t i;

	if (!l)
		return;
	for (i = 0; i < LIMITS_USER_BUCKETS; i++) {
		while (l->users[i]) {
			struct user *u = l->users[i];

			l->users[i] = u->next;
			free(u);
		}
	}
	pthread_mutex_destroy(&l->lock);
	free(l->slots);
	free(l);
}

/*
 * The slot of key (create: also a slot for it, taking a free or expired one, else the one
 * whose window ends first). NULL when absent and not creating, or when key is too long.
 */
static struct authfail *limits_slot(struct limits *l, const char *key, int64_t now_ms, int create)
{
	struct authfail *set, *victim = NULL;
	size_t i;

	if (strlen(key) > RKEY_MAX)
		return NULL;
	set = &l->slots[(limits_hash(l, key) % l->nsets) * LIMITS_WAYS];
	for (i = 0; i < LIMITS_WAYS; i++) {
		if (set[i].key[0] && !strcmp(set[i].key, key)) {
			if (set[i].until_ms > now_ms)
				return &set[i];
			set[i].count = 0; /* window over: start again */
			set[i].until_ms = now_ms + l->cfg.authfail_window_ms;
			return &set[i];
		}
	}
	if (!create)
		return NULL;
	for (i = 0; i < LIMITS_WAYS; i++) {
		if (!set[i].key[0] || set[i].until_ms <= now_ms) {
			victim = &set[i];
			break;
		}
		if (!victim || set[i].until_ms < victim->until_ms)
			victim = &set[i];
	}
	strcpy(victim->key, key);
	victim->count = 0;
	victim->until_ms = now_ms + l->cfg.authfail_window_ms;
	return victim;
}

int64_t limits_authfail_blocked(struct limits *l, const char *key, int64_t now_ms)
{
	struct authfail *a;
	int64_t left = 0;

	pthread_mutex_lock(&l->lock);
	a = l->cfg.authfail_limit ? limits_slot(l, key, now_ms, 0) : NULL;
	if (a && a->count >= l->cfg.authfail_limit)
		left = a->until_ms - now_ms;
	pthread_mutex_unlock(&l->lock);
	return left;
}

void limits_authfail_note(struct limits *l, const char *key, uint64_t count, int64_t ttl_ms,
			  int64_t now_ms)
{
	struct authfail *a;

	pthread_mutex_lock(&l->lock);
	a = limits_slot(l, key, now_ms, 1);
	if (a) {
		if (count > a->count || count == 1) {
			a->count = count;
			a->until_ms = now_ms + (ttl_ms > 0 ? ttl_ms : l->cfg.authfail_window_ms);
		}
	}
	pthread_mutex_unlock(&l->lock);
}

uint64_t limits_authfail_local(struct limits *l, const char *key, int64_t now_ms)
{
	struct authfail *a;
	uint64_t n = 0;

	pthread_mutex_lock(&l->lock);
	a = limits_slot(l, key, now_ms, 1);
	if (a)
		n = ++a->count;
	pthread_mutex_unlock(&l->lock);
	return n;
}

static struct user **limits_user(struct limits *l, const char *oh)
{
	struct user **p = &l->users[limits_hash(l, oh) % LIMITS_USER_BUCKETS];

	while (*p && strcmp((*p)->oh, oh))
		p = &(*p)->next;
	return p;
}

int limits_upload_begin(struct limits *l, const char *owner_hash)
{
	struct user **p;
	int rc = -1;

	if (strlen(owner_hash) > OWNER_HASH_LEN)
		return -1;
	pthread_mutex_lock(&l->lock);
	p = limits_user(l, owner_hash);
	if (!*p) {
		*p = calloc(1, sizeof(**p));
		if (!*p)
			goto out;
		strcpy((*p)->oh, owner_hash);
	}
	if (l->cfg.uploads_per_user && (*p)->uploads >= l->cfg.uploads_per_user)
		goto out;
	(*p)->uploads++;
	rc = 0;
out:
	pthread_mutex_unlock(&l->lock);
	return rc;
}

void limits_upload_end(struct limits *l, const char *owner_hash)
{
	struct user **p, *u;

	pthread_mutex_lock(&l->lock);
	p = limits_user(l, owner_hash);
	u = *p;
	if (u && u->uploads && --u->uploads == 0) {
		*p = u->next;
		free(u);
	}
	pthread_mutex_unlock(&l->lock);
}

unsigned limits_uploads(struct limits *l, const char *owner_hash)
{
	struct user **p;
	unsigned n;

	pthread_mutex_lock(&l->lock);
	p = limits_user(l, owner_hash);
	n = *p ? (*p)->uploads : 0;
	pthread_mutex_unlock(&l->lock);
	return n;
}
