/* Tests tools/devtoken.c: fs-devtoken's key files and tokens, checked by the gateway's verifier. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gateway/token.h"
#include "proto/base64.h"
#include "tests/lib/jwt.h"
#include "tests/lib/proc.h"

#define DEVTOKEN FSG_BIN_DIR "/fs-devtoken"
#define ISS	 "http://127.0.0.1:8480/dev-idp"
#define AUD	 "fs-gateway"
#define MAX_ARGS 16

extern char **environ;

static char *dir;

static void setup(void)
{
	dir = proc_tempdir("devtoken");
	cr_assert_not_null(dir);
}

static void teardown(void)
{
	proc_rmtree(dir);
	free(dir);
}

TestSuite(devtoken, .init = setup, .fini = teardown);

/* dir/name, in a static buffer per slot (a test needs a few paths at once). */
static const char *path(int slot, const char *name)
{
	static char buf[4][4096];

	snprintf(buf[slot], sizeof(buf[slot]), "%s/%s", dir, name);
	return buf[slot];
}

/*
 * Runs fs-devtoken with args (NULL-terminated, at most MAX_ARGS) to completion (10 s at most).
 * Returns its exit code; *out and *err get its stdout and stderr (malloc'd).
 */
static int run(const char *const args[], char **out, char **err)
{
	char *argv[MAX_ARGS + 2] = {DEVTOKEN};
	char out_path[4096], err_path[4096];
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int st = -1, done = 0;

	for (int n = 0; args[n]; n++) {
		cr_assert_lt(n, MAX_ARGS);
		argv[n + 1] = (char *)args[n];
	}
	snprintf(out_path, sizeof(out_path), "%s/run.out", dir);
	snprintf(err_path, sizeof(err_path), "%s/run.err", dir);
	cr_assert_eq(posix_spawn_file_actions_init(&fa), 0);
	cr_assert_eq(posix_spawn_file_actions_addopen(&fa, 1, out_path,
						      O_WRONLY | O_CREAT | O_TRUNC, 0600),
		     0);
	cr_assert_eq(posix_spawn_file_actions_addopen(&fa, 2, err_path,
						      O_WRONLY | O_CREAT | O_TRUNC, 0600),
		     0);
	cr_assert_eq(posix_spawn(&pid, DEVTOKEN, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	for (int i = 0; i < 1000 && !done; i++) { /* 1000 x 10 ms */
		struct timespec ts = {0, 10000000L};

		done = waitpid(pid, &st, WNOHANG) == pid;
		if (!done)
			nanosleep(&ts, NULL);
	}
	if (!done) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
	*out = proc_read_file(out_path);
	*err = proc_read_file(err_path);
	cr_assert(done && WIFEXITED(st), "fs-devtoken did not exit by itself: %s", *err);
	return WEXITSTATUS(st);
}

/* run() with the arguments listed, NULL-terminated. */
static int devtoken(char **out, char **err, ...)
{
	const char *args[MAX_ARGS + 1];
	va_list ap;
	int n = 0;

	va_start(ap, err);
	do {
		cr_assert_leq(n, MAX_ARGS);
		args[n] = va_arg(ap, const char *);
	} while (args[n++]);
	va_end(ap);
	return run(args, out, err);
}

/* keygen into dir/sub, which must work. */
static void keygen(const char *sub)
{
	char *out, *err;

	cr_assert_eq(mkdir(path(3, sub), 0700), 0);
	cr_assert_eq(devtoken(&out, &err, "keygen", path(3, sub), NULL), 0, "keygen: %s", err);
	cr_expect_str_empty(out);
	cr_expect_str_empty(err);
	free(out);
	free(err);
}

/*
 * Runs mint with the key file, kid, subject and up to two more arguments (NULL: none; extra2
 * only after extra1), asserts it worked and returns the token (malloc'd).
 */
static char *mint_ok(const char *key, const char *kid, const char *sub, const char *extra1,
		     const char *extra2)
{
	char key_arg[4200], kid_arg[256], sub_arg[256], *out, *err;
	size_t len;

	snprintf(key_arg, sizeof(key_arg), "--key=%s", key);
	snprintf(kid_arg, sizeof(kid_arg), "--kid=%s", kid);
	snprintf(sub_arg, sizeof(sub_arg), "--subject=%s", sub);
	cr_assert_eq(devtoken(&out, &err, "mint", key_arg, kid_arg, "--issuer=" ISS,
			      "--audience=" AUD, sub_arg, extra1, extra2, NULL),
		     0, "mint: %s", err);
	cr_expect_str_empty(err);
	free(err);
	/* exactly one line: the token */
	len = strlen(out);
	cr_assert_gt(len, 1);
	cr_assert_eq(out[len - 1], '\n');
	out[len - 1] = '\0';
	cr_assert_null(strchr(out, '\n'));
	return out;
}

static struct token_verifier *verifier_of(const char *jwks_file, const char *issuer,
					  const char *audience, const char *scope)
{
	char *jwks = proc_read_file(jwks_file);
	struct token_config cfg = {
		.jwks_json = jwks,
		.algorithms = "RS256",
		.issuer = issuer,
		.audience = audience,
		.required_scope = scope,
		.skew_ms = 0,
	};
	char reason[256] = "";
	struct token_verifier *v = token_verifier_new(&cfg, reason, sizeof(reason));

	cr_assert_not_null(v, "JWKS %s refused: %s", jwks, reason);
	free(jwks);
	return v;
}

static enum token_result verify(const struct token_verifier *v, const char *tok, int64_t now_ms,
				char *owner)
{
	char auth[8192];
	size_t owner_len = 0;

	snprintf(auth, sizeof(auth), "Bearer %s", tok);
	return token_verify(v, auth, strlen(auth), now_ms, owner, &owner_len);
}

/* Part i (0: header, 1: payload) of a compact JWS, decoded and NUL-terminated (malloc'd). */
static char *part(const char *tok, int i)
{
	const char *p = tok, *end;
	unsigned char buf[4096];
	size_t n = 0;
	char *out;

	for (; i > 0; i--) {
		p = strchr(p, '.');
		cr_assert_not_null(p);
		p++;
	}
	end = strchr(p, '.');
	cr_assert_not_null(end);
	cr_assert_eq(base64url_decode(p, (size_t)(end - p), buf, sizeof(buf), &n), PROTO_OK);
	out = strndup((const char *)buf, n);
	cr_assert_not_null(out);
	return out;
}

static json_int_t claim_int(json_t *payload, const char *name)
{
	json_t *v = json_object_get(payload, name);

	cr_assert(json_is_integer(v), "claim %s missing or not an integer", name);
	return json_integer_value(v);
}

Test(devtoken, keygen_writes_a_jwks_the_gateway_takes_and_a_private_key_only_we_read)
{
	struct stat st;
	char *text = NULL;
	json_t *jwks, *key;
	struct token_verifier *v;

	keygen("k");
	cr_assert_eq(stat(path(0, "k/dev-signing-key.pem"), &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0600, "key file mode %o", st.st_mode & 07777);
	text = proc_read_file(path(0, "k/dev-signing-key.pem"));
	cr_expect(strncmp(text, "-----BEGIN PRIVATE KEY-----\n", 28) == 0, "%.40s", text);
	free(text);

	text = proc_read_file(path(1, "k/dev-jwks.json"));
	jwks = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	cr_assert_not_null(jwks, "not JSON: %s", text);
	cr_assert_eq(json_array_size(json_object_get(jwks, "keys")), 1);
	key = json_array_get(json_object_get(jwks, "keys"), 0);
	cr_expect_str_eq(json_string_value(json_object_get(key, "kty")), "RSA");
	cr_expect_str_eq(json_string_value(json_object_get(key, "kid")), "dev-1");
	cr_expect_str_eq(json_string_value(json_object_get(key, "alg")), "RS256");
	cr_expect_str_eq(json_string_value(json_object_get(key, "use")), "sig");
	cr_expect_null(json_object_get(key, "d"), "private part in the JWKS");
	json_decref(jwks);
	free(text);
	/* the gateway's verifier builds from it (RSA of 2048 bits or more, sound e, kid) */
	v = verifier_of(path(1, "k/dev-jwks.json"), ISS, AUD, "print");
	token_verifier_free(v);
}

Test(devtoken, minted_token_verifies_with_subject_as_owner)
{
	char owner[OWNER_MAX + 1] = "";
	int64_t t0, t1;
	char *tok, *header, *text;
	json_t *payload;
	json_int_t iat;
	struct token_verifier *v;

	keygen("k");
	v = verifier_of(path(0, "k/dev-jwks.json"), ISS, AUD, "print");
	t0 = (int64_t)time(NULL);
	tok = mint_ok(path(1, "k/dev-signing-key.pem"), "dev-1", "alice", "--ttl=120",
		      "--scope=openid print");
	t1 = (int64_t)time(NULL);

	header = part(tok, 0);
	cr_expect_str_eq(header, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"dev-1\"}");
	text = part(tok, 1);
	payload = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	cr_assert_not_null(payload, "payload not JSON: %s", text);
	cr_expect_str_eq(json_string_value(json_object_get(payload, "iss")), ISS);
	cr_expect_str_eq(json_string_value(json_object_get(payload, "aud")), AUD);
	cr_expect_str_eq(json_string_value(json_object_get(payload, "sub")), "alice");
	cr_expect_str_eq(json_string_value(json_object_get(payload, "scope")), "openid print");
	iat = claim_int(payload, "iat");
	cr_expect(iat >= t0 && iat <= t1, "iat %lld outside [%lld, %lld]", (long long)iat,
		  (long long)t0, (long long)t1);
	cr_expect_eq(claim_int(payload, "nbf"), iat);
	cr_expect_eq(claim_int(payload, "exp"), iat + 120);

	cr_expect_eq(verify(v, tok, t1 * 1000, owner), TOKEN_OK);
	cr_expect_str_eq(owner, "alice");
	/* skew 0: good through the second of exp, expired one millisecond later */
	cr_expect_eq(verify(v, tok, (iat + 120) * 1000, owner), TOKEN_OK);
	cr_expect_eq(verify(v, tok, (iat + 120) * 1000 + 1, owner), TOKEN_EXPIRED);
	cr_expect_eq(verify(v, tok, (iat + 3600) * 1000, owner), TOKEN_EXPIRED);
	/* not before it was minted */
	cr_expect_eq(verify(v, tok, iat * 1000 - 1, owner), TOKEN_NOT_YET);
	json_decref(payload);
	free(text);
	free(header);
	free(tok);
	token_verifier_free(v);
}

Test(devtoken, default_ttl_utf8_subject_and_no_scope)
{
	char owner[OWNER_MAX + 1] = "";
	char *tok, *text;
	json_t *payload;
	json_int_t iat;
	struct token_verifier *v, *scoped;

	keygen("k");
	v = verifier_of(path(0, "k/dev-jwks.json"), ISS, AUD, NULL);
	scoped = verifier_of(path(0, "k/dev-jwks.json"), ISS, AUD, "print");
	tok = mint_ok(path(1, "k/dev-signing-key.pem"), "dev-1", "\xc3\xa9l\xc3\xa8ve", NULL, NULL);
	text = part(tok, 1);
	payload = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	cr_assert_not_null(payload);
	iat = claim_int(payload, "iat");
	cr_expect_eq(claim_int(payload, "exp"), iat + 3600);
	cr_expect_null(json_object_get(payload, "scope"));
	cr_expect_eq(verify(v, tok, iat * 1000, owner), TOKEN_OK);
	cr_expect_str_eq(owner, "\xc3\xa9l\xc3\xa8ve");
	cr_expect_eq(verify(v, tok, (iat + 3600) * 1000 + 1, owner), TOKEN_EXPIRED);
	cr_expect_eq(verify(scoped, tok, iat * 1000, owner), TOKEN_SCOPE);
	json_decref(payload);
	free(text);
	free(tok);
	token_verifier_free(v);
	token_verifier_free(scoped);
}

Test(devtoken, wrong_issuer_audience_kid_or_key_is_refused)
{
	char owner[OWNER_MAX + 1];
	char *tok, *other_kid, *other_key;
	struct token_verifier *v, *v_iss, *v_aud, *v_b;
	int64_t now;

	keygen("a");
	keygen("b");
	v = verifier_of(path(0, "a/dev-jwks.json"), ISS, AUD, NULL);
	v_iss = verifier_of(path(0, "a/dev-jwks.json"), "https://idp.example.com/", AUD, NULL);
	v_aud = verifier_of(path(0, "a/dev-jwks.json"), ISS, "fs-gateway-2", NULL);
	v_b = verifier_of(path(0, "b/dev-jwks.json"), ISS, AUD, NULL);
	tok = mint_ok(path(1, "a/dev-signing-key.pem"), "dev-1", "alice", "--ttl=60", NULL);
	other_kid = mint_ok(path(1, "a/dev-signing-key.pem"), "dev-2", "alice", NULL, NULL);
	other_key = mint_ok(path(1, "b/dev-signing-key.pem"), "dev-1", "alice", NULL, NULL);
	now = (int64_t)time(NULL) * 1000;

	cr_expect_eq(verify(v, tok, now, owner), TOKEN_OK);
	cr_expect_eq(verify(v_iss, tok, now, owner), TOKEN_ISSUER);
	cr_expect_eq(verify(v_aud, tok, now, owner), TOKEN_AUDIENCE);
	cr_expect_eq(verify(v, other_kid, now, owner), TOKEN_KID);
	/* same kid, other key: each directory's pair is its own */
	cr_expect_eq(verify(v, other_key, now, owner), TOKEN_SIGNATURE);
	cr_expect_eq(verify(v_b, other_key, now, owner), TOKEN_OK);
	cr_expect_eq(verify(v_b, tok, now, owner), TOKEN_SIGNATURE);
	free(tok);
	free(other_kid);
	free(other_key);
	token_verifier_free(v);
	token_verifier_free(v_iss);
	token_verifier_free(v_aud);
	token_verifier_free(v_b);
}

Test(devtoken, keygen_never_overwrites)
{
	char *key_before, *jwks_before, *key_after, *jwks_after, *out, *err;
	struct stat st;

	keygen("k");
	key_before = proc_read_file(path(0, "k/dev-signing-key.pem"));
	jwks_before = proc_read_file(path(1, "k/dev-jwks.json"));
	cr_expect_eq(devtoken(&out, &err, "keygen", path(2, "k"), NULL), 1);
	cr_expect(strstr(err, "exists") != NULL, "%s", err);
	cr_expect_str_empty(out);
	free(out);
	free(err);
	key_after = proc_read_file(path(0, "k/dev-signing-key.pem"));
	jwks_after = proc_read_file(path(1, "k/dev-jwks.json"));
	cr_expect_str_eq(key_after, key_before);
	cr_expect_str_eq(jwks_after, jwks_before);
	free(key_after);
	free(jwks_after);

	/* only the JWKS left: refused, and no new key beside the old JWKS */
	cr_assert_eq(unlink(path(0, "k/dev-signing-key.pem")), 0);
	cr_expect_eq(devtoken(&out, &err, "keygen", path(2, "k"), NULL), 1);
	cr_expect(strstr(err, "dev-jwks.json exists") != NULL, "%s", err);
	cr_expect_eq(stat(path(0, "k/dev-signing-key.pem"), &st), -1, "key file left behind");
	jwks_after = proc_read_file(path(1, "k/dev-jwks.json"));
	cr_expect_str_eq(jwks_after, jwks_before);
	free(out);
	free(err);
	free(jwks_after);
	free(key_before);
	free(jwks_before);
}

struct usage_case {
	const char *args[10]; /* NULL-terminated */
	int want;	      /* exit code */
	const char *err;      /* substring of stderr */
};

static const struct usage_case usage_cases[] = {
	{{NULL}, 2, "a command is required"},
	{{"sign", NULL}, 2, "unknown command"},
	{{"keygen", NULL}, 2, "keygen takes one argument"},
	{{"keygen", "a", "b", NULL}, 2, "keygen takes one argument"},
	{{"mint", NULL}, 2, "--key is required"},
	{{"mint", "--key=k", "--kid=dev-1", "--issuer=i", "--audience=a", NULL},
	 2,
	 "--subject is required"},
	{{"mint", "--key=k", "--kid=", "--issuer=i", "--audience=a", "--subject=s", NULL},
	 2,
	 "--kid is empty"},
	{{"mint", "--key=k", "--kid=d", "--issuer=i", "--audience=a", "--subject=s", "--ttl=0",
	  NULL},
	 2,
	 "--ttl"},
	{{"mint", "--key=k", "--kid=d", "--issuer=i", "--audience=a", "--subject=s", "--ttl=-5",
	  NULL},
	 2,
	 "--ttl"},
	{{"mint", "--key=k", "--kid=d", "--issuer=i", "--audience=a", "--subject=s",
	  "--ttl=31536001", NULL},
	 2,
	 "--ttl"},
	{{"mint", "--key=k", "--kid=d", "--issuer=i", "--audience=a", "--subject=s", "--ttl=1h",
	  NULL},
	 2,
	 "--ttl"},
	{{"mint", "--key=k", "--key=k", NULL}, 2, "--key given twice"},
	{{"mint", "--key=k", "--kid=d", "--issuer=i", "--audience=a", "--subject=s", "--bogus=1",
	  NULL},
	 2,
	 "--bogus"},
	{{"mint", "--key=k", "--kid=d", "--issuer=i", "--audience=a", "--subject=s", "extra", NULL},
	 2,
	 "unexpected argument"},
	{{"mint", "--kid=d", "--issuer=i", "--audience=a", "--subject=s", "--key", NULL},
	 2,
	 "missing value"},
	{{"mint", "--key=/nonexistent/key.pem", "--kid=d", "--issuer=i", "--audience=a",
	  "--subject=s", NULL},
	 1,
	 "cannot open /nonexistent/key.pem"},
	{{"keygen", "/nonexistent/dir", NULL}, 1, "cannot create /nonexistent/dir/"},
};

Test(devtoken, usage_and_failures_exit_2_and_1_with_one_line)
{
	for (size_t i = 0; i < sizeof(usage_cases) / sizeof(usage_cases[0]); i++) {
		const struct usage_case *c = &usage_cases[i];
		char *out, *err;
		int rc = run(c->args, &out, &err);

		cr_expect_eq(rc, c->want, "case %zu: exit %d, stderr %s", i, rc, err);
		cr_expect(strncmp(err, "fs-devtoken: ", 13) == 0, "case %zu: %s", i, err);
		cr_expect(strstr(err, c->err) != NULL, "case %zu: \"%s\" not in %s", i, c->err,
			  err);
		/* one line */
		cr_expect(strchr(err, '\n') == err + strlen(err) - 1, "case %zu: %s", i, err);
		cr_expect_str_empty(out, "case %zu", i);
		free(out);
		free(err);
	}
}

Test(devtoken, help_and_keys_it_cannot_sign_with)
{
	struct jwt_keys *k = jwt_keys_new("r", "e");
	char *out, *err;

	cr_assert_eq(devtoken(&out, &err, "--help", NULL), 0);
	cr_expect(strstr(out, "Usage: fs-devtoken keygen DIR") != NULL, "%s", out);
	cr_expect(strstr(out, "--ttl=SECONDS") != NULL, "%s", out);
	cr_expect_str_empty(err);
	free(out);
	free(err);
	/* --help after a command too */
	cr_expect_eq(devtoken(&out, &err, "mint", "--kid=d", "--help", NULL), 0, "%s", err);
	cr_expect(strstr(out, "Usage: fs-devtoken keygen DIR") != NULL, "%s", out);
	free(out);
	free(err);

	/* a P-256 key, and a file that is no key at all */
	cr_assert_not_null(k);
	cr_assert_eq(jwt_write_private_pem(k->ec, path(0, "ec.pem")), 0);
	cr_expect_eq(devtoken(&out, &err, "mint", "--key", path(0, "ec.pem"), "--kid=d",
			      "--issuer=i", "--audience=a", "--subject=s", NULL),
		     1);
	cr_expect(strstr(err, "not an RSA key") != NULL, "%s", err);
	free(out);
	free(err);
	cr_assert_eq(jwt_keys_write_jwks(k, path(1, "jwks.json")), 0);
	cr_expect_eq(devtoken(&out, &err, "mint", "--key", path(1, "jwks.json"), "--kid=d",
			      "--issuer=i", "--audience=a", "--subject=s", NULL),
		     1);
	cr_expect(strstr(err, "not an unencrypted PEM private key") != NULL, "%s", err);
	free(out);
	free(err);
	jwt_keys_free(k);
}
