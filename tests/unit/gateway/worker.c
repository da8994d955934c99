/* Tests gateway/worker.c: the published settings sets, their references and generations. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/worker.h"
#include "tests/lib/jwt.h"

#define KEY "route-key-0123456789abcdef0123456789abcdef"
#define KEY_OLD "route-key-old-0123456789abcdef0123456789abcd"

static char *jwks;

/* One JWKS per test: making RSA keys for each set would take seconds. */
static void jwks_make(void)
{
	struct jwt_keys *k = jwt_keys_new("rsa-1", "ec-1");

	cr_assert_not_null(k);
	jwks = jwt_keys_jwks(k);
	cr_assert_not_null(jwks);
	jwt_keys_free(k);
}

static void jwks_drop(void)
{
	free(jwks);
	jwks = NULL;
}

static struct token_verifier *verifier(void)
{
	struct token_config cfg = {.jwks_json = jwks, .issuer = "https://idp", .audience = "gw"};
	struct token_verifier *v;
	char err[256];

	v = token_verifier_new(&cfg, err, sizeof(err));
	cr_assert_not_null(v, "%s", err);
	return v;
}

/* An environment whose route keys live in buffers the caller then wipes. */
static struct gateway_live *live_with(char *key, char *old, int64_t deadline_ms)
{
	struct gateway_env env;

	memset(&env, 0, sizeof(env));
	env.admit.route_key = (const unsigned char *)key;
	env.admit.route_key_len = strlen(key);
	env.admit.route_key_old = old ? (const unsigned char *)old : NULL;
	env.admit.route_key_old_len = old ? strlen(old) : 0;
	env.request_deadline_ms = deadline_ms;
	return worker_live_new(&env, verifier());
}

Test(worker, live_owns_its_keys_and_tokens, .init = jwks_make, .fini = jwks_drop)
{
	char key[] = KEY, old[] = KEY_OLD;
	struct gateway_live *l = live_with(key, old, 1000);

	cr_assert_not_null(l);
	memset(key, 'x', sizeof(key) - 1);
	memset(old, 'y', sizeof(old) - 1);
	cr_assert_eq(l->env.admit.route_key_len, strlen(KEY));
	cr_assert_arr_eq(l->env.admit.route_key, KEY, strlen(KEY));
	cr_assert_arr_eq(l->env.admit.route_key_old, KEY_OLD, strlen(KEY_OLD));
	cr_assert_eq(l->env.admit.tokens, l->tokens);
	cr_assert_not_null(l->tokens);
	cr_assert_eq(l->env.request_deadline_ms, 1000);
	worker_live_put(l);
	worker_live_put(NULL);
}

Test(worker, live_without_old_key, .init = jwks_make, .fini = jwks_drop)
{
	char key[] = KEY;
	struct gateway_live *l = live_with(key, NULL, 1);

	cr_assert_not_null(l);
	cr_assert_null(l->env.admit.route_key_old);
	cr_assert_eq(l->env.admit.route_key_old_len, 0);
	worker_live_put(l);
}

Test(worker, publish_replaces_and_counts_generations, .init = jwks_make,
     .fini = jwks_drop)
{
	struct gateway_hub hub = {.lock = PTHREAD_MUTEX_INITIALIZER};
	char key[] = KEY;
	struct gateway_live *a = live_with(key, NULL, 1), *b = live_with(key, NULL, 2);
	unsigned g1, g2;

	hub.live = a;
	/* a worker holding a: the publish of b must not free it under the worker */
	atomic_fetch_add(&a->refs, 1);
	g1 = worker_live_publish(&hub, b);
	cr_assert_eq(hub.live, b);
	cr_assert_eq(atomic_load(&a->refs), 1, "the hub's reference was not dropped");
	cr_assert_eq(a->env.request_deadline_ms, 1, "the held set was changed");
	worker_live_put(a);
	g2 = worker_live_publish(&hub, live_with(key, NULL, 3));
	cr_assert_eq(g2, g1 + 1);
	cr_assert_eq(atomic_load(&hub.generation), g2);
	cr_assert_eq(hub.live->env.request_deadline_ms, 3);
	worker_live_put(hub.live);
}

/* Publishers and holders on several threads: every set is freed exactly once (ASan). */
struct hammer {
	struct gateway_hub *hub;
	int publish;
};

static void *hammer_run(void *arg)
{
	struct hammer *h = arg;
	char key[] = KEY;

	for (int i = 0; i < 200; i++) {
		struct gateway_live *l;

		if (h->publish) {
			worker_live_publish(h->hub, live_with(key, NULL, i));
			continue;
		}
		/* what a worker does to take the current set */
		pthread_mutex_lock(&h->hub->lock);
		l = h->hub->live;
		atomic_fetch_add(&l->refs, 1);
		pthread_mutex_unlock(&h->hub->lock);
		cr_assert_not_null(l->tokens);
		worker_live_put(l);
	}
	return NULL;
}

Test(worker, publish_and_take_from_threads, .init = jwks_make, .fini = jwks_drop,
     .timeout = 60)
{
	struct gateway_hub hub = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct hammer h[4] = {{&hub, 1}, {&hub, 0}, {&hub, 0}, {&hub, 1}};
	pthread_t t[4];
	char key[] = KEY;

	hub.live = live_with(key, NULL, 0);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, hammer_run, &h[i]), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(atomic_load(&hub.generation), 400);
	cr_assert_eq(atomic_load(&hub.live->refs), 1);
	worker_live_put(hub.live);
}
