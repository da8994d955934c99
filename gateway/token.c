/* token: bearer JWT verification; the gateway owns the policy, cjose only checks signatures. */
#include "gateway/token.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjose/cjose.h>
#include <jansson.h>

#include "common/log.h"
#include "proto/ascii.h"
#include "proto/base64.h"

#define RSA_MIN_BITS 2048 /* RFC 7518 3.3: smaller RSA keys MUST NOT be used */

enum key_kind { KEY_RSA, KEY_P256, KEY_P384, KEY_P521 };

/* The only algorithms this file ever lets through: asymmetric, with a key type each. */
struct alg_info {
	const char *name;
	enum key_kind kind;
};

static const struct alg_info algs[] = {
	{"RS256", KEY_RSA},  {"RS384", KEY_RSA},  {"RS512", KEY_RSA},
	{"PS256", KEY_RSA},  {"PS384", KEY_RSA},  {"PS512", KEY_RSA},
	{"ES256", KEY_P256}, {"ES384", KEY_P384}, {"ES512", KEY_P521},
};
#define ALG_COUNT (sizeof(algs) / sizeof(algs[0]))

struct token_key {
	char *kid; /* NUL-terminated; JSON strings here never hold NUL */
	size_t kid_len;
	enum key_kind kind;
	int alg;	  /* index in algs the JWK pins with "alg", or -1 */
	size_t sig_len;	  /* the one valid signature length: RSA modulus bytes, 2 * EC coordinate */
	cjose_jwk_t *jwk; /* only ever read after construction */
};

struct token_verifier {
	struct token_key *keys;
	size_t nkeys;
	unsigned allowed; /* bit i: algs[i] is configured */
	char *issuer;
	char *audience;
	char *owner_claim;
	char *scope; /* NULL: no scope required */
	int64_t skew_ms;
	size_t max_len;
};

const char *token_result_name(enum token_result r)
{
	switch (r) {
	case TOKEN_OK: return "ok";
	case TOKEN_MISSING: return "missing";
	case TOKEN_TOO_LONG: return "too-long";
	case TOKEN_MALFORMED: return "malformed";
	case TOKEN_ALG: return "alg";
	case TOKEN_KID: return "kid";
	case TOKEN_SIGNATURE: return "signature";
	case TOKEN_EXPIRED: return "expired";
	case TOKEN_NOT_YET: return "not-yet";
	case TOKEN_ISSUER: return "issuer";
	case TOKEN_AUDIENCE: return "audience";
	case TOKEN_OWNER: return "owner";
	case TOKEN_SCOPE: return "scope";
	case TOKEN_NOMEM: return "nomem";
	}
	return "unknown";
}

static int alg_find(const char *s, size_t len)
{
	for (size_t i = 0; i < ALG_COUNT; i++)
		if (strlen(algs[i].name) == len && memcmp(algs[i].name, s, len) == 0)
			return (int)i;
	return -1;
}

static int ascii_ieq(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);

	if (alen != blen)
		return 0;
	for (size_t i = 0; i < alen; i++)
		if (ascii_lower(a[i]) != ascii_lower(b[i]))
			return 0;
	return 1;
}

static void err_set(char *err, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void err_set(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (!err || cap == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
}

/*
 * Parses "RS256, ES256" into a bit set. none and HS* are refused by name, so that a config
 * asking for them fails loudly instead of being silently narrowed.
 */
static int algs_parse(const char *list, unsigned *out, char *err, size_t cap)
{
	const char *p = list;
	unsigned set = 0;

	for (;;) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		const char *s = p;
		int i;

		while (n && ascii_is_ows(*s)) {
			s++;
			n--;
		}
		while (n && ascii_is_ows(s[n - 1]))
			n--;
		if (n == 0) {
			err_set(err, cap, "algorithms: empty entry in \"%s\"", list);
			return -1;
		}
		if (ascii_ieq(s, n, "none")) {
			err_set(err, cap, "algorithms: \"none\" is never allowed");
			return -1;
		}
		if (n >= 2 && ascii_lower(s[0]) == 'h' && ascii_lower(s[1]) == 's') {
			err_set(err, cap, "algorithms: HMAC (%.*s) is never allowed", (int)n, s);
			return -1;
		}
		i = alg_find(s, n);
		if (i < 0) {
			err_set(err, cap, "algorithms: unknown algorithm \"%.*s\"", (int)n, s);
			return -1;
		}
		set |= 1u << i;
		if (!end)
			break;
		p = end + 1;
	}
	*out = set;
	return 0;
}

/* Bytes of a big-endian unsigned integer without its leading zero bytes, and its bit count. */
static size_t uint_bytes(const unsigned char *b, size_t len, size_t *bits)
{
	unsigned top;
	size_t n;

	while (len && b[0] == 0) {
		b++;
		len--;
	}
	n = len;
	*bits = 0;
	if (n == 0)
		return 0;
	top = b[0];
	*bits = (n - 1) * 8;
	while (top) {
		(*bits)++;
		top >>= 1;
	}
	return n;
}

static const char *json_str(json_t *o, const char *name)
{
	return json_string_value(json_object_get(o, name));
}

/*
 * Reads one JWK into k: RSA or EC (P-256/384/521) public key with a kid, "use" sig if given,
 * "alg" an allowed algorithm of its type if given, no private part. The key itself is parsed
 * by cjose; its modulus is measured here, because the exact signature length is ours to check.
 * Returns 0 (kept), 1 (skipped: a key this gateway cannot use, such as an encryption key or one
 * for an algorithm not allowed, as identity providers publish them; nothing allocated, reason in
 * err) or -1 (refused: a key we would use is malformed or weak, or the set holds secrets).
 */
static int key_load(struct token_verifier *v, size_t idx, json_t *o, struct token_key *k, char *err,
		    size_t cap)
{
	static const char *const priv[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};
	json_t *kid, *use, *alg;
	const char *kty;
	cjose_err cerr = {0};
	unsigned fits = 0;

	if (!json_is_object(o)) {
		err_set(err, cap, "JWKS keys[%zu]: not an object", idx);
		return -1;
	}
	kid = json_object_get(o, "kid");
	use = json_object_get(o, "use");
	alg = json_object_get(o, "alg");
	kty = json_str(o, "kty");
	if (!json_is_string(kid) || json_string_length(kid) == 0) {
		err_set(err, cap, "JWKS keys[%zu]: no \"kid\"", idx);
		return -1;
	}
	for (size_t i = 0; i < sizeof(priv) / sizeof(priv[0]); i++) {
		if (json_object_get(o, priv[i])) {
			err_set(err, cap, "JWKS keys[%zu]: holds private key material (\"%s\")",
				idx, priv[i]);
			return -1;
		}
	}
	if (use && !json_is_string(use)) {
		err_set(err, cap, "JWKS keys[%zu]: \"use\" is not a string", idx);
		return -1;
	}
	if (use && strcmp(json_string_value(use), "sig") != 0) {
		err_set(err, cap, "JWKS keys[%zu]: \"use\" is not \"sig\"", idx);
		return 1;
	}
	if (kty && strcmp(kty, "RSA") == 0) {
		const char *n = json_str(o, "n"), *e = json_str(o, "e");
		unsigned char mod[BASE64_DECODED_MAX(BASE64_INPUT_MAX)], pub[16];
		size_t mod_len = 0, pub_len = 0, bits = 0, ebits = 0;

		if (!n || base64url_decode(n, strlen(n), mod, sizeof(mod), &mod_len)) {
			err_set(err, cap, "JWKS keys[%zu]: RSA \"n\" is not base64url", idx);
			return -1;
		}
		k->kind = KEY_RSA;
		k->sig_len = uint_bytes(mod, mod_len, &bits);
		if (bits < RSA_MIN_BITS) {
			err_set(err, cap, "JWKS keys[%zu]: RSA key of %zu bits, %d at least", idx,
				bits, RSA_MIN_BITS);
			return -1;
		}
		/* e = 1 makes every message its own signature; cjose and OpenSSL 3.0 take it. */
		if (!e || base64url_decode(e, strlen(e), pub, sizeof(pub), &pub_len) ||
		    uint_bytes(pub, pub_len, &ebits) == 0 || ebits < 2 || !(pub[pub_len - 1] & 1)) {
			err_set(err, cap, "JWKS keys[%zu]: RSA \"e\" is not an odd number above 1",
				idx);
			return -1;
		}
	} else if (kty && strcmp(kty, "EC") == 0) {
		const char *crv = json_str(o, "crv");

		if (crv && strcmp(crv, "P-256") == 0) {
			k->kind = KEY_P256;
			k->sig_len = 64;
		} else if (crv && strcmp(crv, "P-384") == 0) {
			k->kind = KEY_P384;
			k->sig_len = 96;
		} else if (crv && strcmp(crv, "P-521") == 0) {
			k->kind = KEY_P521;
			k->sig_len = 132;
		} else {
			err_set(err, cap, "JWKS keys[%zu]: EC curve is not P-256, P-384 or P-521",
				idx);
			return crv ? 1 : -1;
		}
	} else {
		err_set(err, cap, "JWKS keys[%zu]: \"kty\" is not RSA or EC", idx);
		return kty ? 1 : -1;
	}
	for (size_t i = 0; i < ALG_COUNT; i++)
		if ((v->allowed & (1u << i)) && algs[i].kind == k->kind)
			fits |= 1u << i;
	if (!fits) {
		err_set(err, cap, "JWKS keys[%zu]: no allowed algorithm fits its key type", idx);
		return 1;
	}
	k->alg = -1;
	if (alg) {
		const char *a = json_string_value(alg);

		if (!a) {
			err_set(err, cap, "JWKS keys[%zu]: \"alg\" is not a string", idx);
			return -1;
		}
		k->alg = alg_find(a, strlen(a));
		if (k->alg >= 0 && algs[k->alg].kind != k->kind) {
			err_set(err, cap, "JWKS keys[%zu]: \"alg\" does not fit its key type", idx);
			return -1;
		}
		if (k->alg < 0 || !(fits & (1u << k->alg))) {
			err_set(err, cap, "JWKS keys[%zu]: \"alg\" is not an allowed algorithm", idx);
			return 1;
		}
	}
	k->jwk = cjose_jwk_import_json((cjose_header_t *)o, &cerr);
	if (!k->jwk) {
		err_set(err, cap, "JWKS keys[%zu]: not a valid key (%s)", idx,
			cerr.message ? cerr.message : "cjose");
		return -1;
	}
	/* Same reading as cjose's, or the signature check would use a key we did not vet. */
	if (cjose_jwk_get_kty(k->jwk, &cerr) !=
	    (k->kind == KEY_RSA ? CJOSE_JWK_KTY_RSA : CJOSE_JWK_KTY_EC)) {
		err_set(err, cap, "JWKS keys[%zu]: cjose reads another key type", idx);
		return -1;
	}
	if (k->kind != KEY_RSA) {
		cjose_jwk_ec_curve want = k->kind == KEY_P256	? CJOSE_JWK_EC_P_256
					  : k->kind == KEY_P384 ? CJOSE_JWK_EC_P_384
								: CJOSE_JWK_EC_P_521;

		if (cjose_jwk_EC_get_curve(k->jwk, &cerr) != want) {
			err_set(err, cap, "JWKS keys[%zu]: cjose reads another curve", idx);
			return -1;
		}
	}
	k->kid_len = json_string_length(kid);
	k->kid = strdup(json_string_value(kid));
	if (!k->kid) {
		err_set(err, cap, "out of memory");
		return -1;
	}
	return 0;
}

static int jwks_load(struct token_verifier *v, const char *text, char *err, size_t cap)
{
	json_error_t jerr;
	json_t *root, *keys;
	int rc = -1;

	if (!text) {
		err_set(err, cap, "JWKS: none given");
		return -1;
	}
	/* Error texts of the parser may quote the input: give the position only. */
	root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		err_set(err, cap, "JWKS: not valid JSON (line %d, column %d)", jerr.line,
			jerr.column);
		return -1;
	}
	keys = json_object_get(root, "keys");
	if (!json_is_array(keys) || json_array_size(keys) == 0) {
		err_set(err, cap, "JWKS: no \"keys\" array, or it is empty");
		goto out;
	}
	v->keys = calloc(json_array_size(keys), sizeof(*v->keys));
	if (!v->keys) {
		err_set(err, cap, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < json_array_size(keys); i++) {
		struct token_key *k = &v->keys[v->nkeys];

		rc = key_load(v, i, json_array_get(keys, i), k, err, cap);
		if (rc == 1) {
			log_warn("token.key_skipped", "%s", err);
			memset(k, 0, sizeof(*k));
			continue;
		}
		v->nkeys++; /* so that token_verifier_free releases what key_load made */
		if (rc)
			goto out;
		for (size_t j = 0; j + 1 < v->nkeys; j++) {
			if (v->keys[j].kid_len == k->kid_len &&
			    memcmp(v->keys[j].kid, k->kid, k->kid_len) == 0) {
				err_set(err, cap, "JWKS keys[%zu]: kid \"%s\" used twice", i,
					k->kid);
				rc = -1;
				goto out;
			}
		}
	}
	if (v->nkeys == 0) {
		err_set(err, cap, "JWKS: no key usable with the allowed algorithms");
		rc = -1;
		goto out;
	}
	rc = 0;
out:
	json_decref(root);
	return rc;
}

/* RFC 6749 scope-token: 1*( %x21 / %x23-5B / %x5D-7E ). */
static int scope_token_ok(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < 0x21 || *s > 0x7e || *s == '"' || *s == '\\')
			return 0;
	return 1;
}

static int dup_str(char **dst, const char *src, const char *what, char *err, size_t cap)
{
	if (!src || !*src) {
		err_set(err, cap, "%s: required", what);
		return -1;
	}
	*dst = strdup(src);
	if (!*dst) {
		err_set(err, cap, "out of memory");
		return -1;
	}
	return 0;
}

struct token_verifier *token_verifier_new(const struct token_config *cfg, char *err, size_t cap)
{
	struct token_verifier *v;
	const char *owner_claim;
	int rc;

	if (!cfg) {
		err_set(err, cap, "no token configuration");
		return NULL;
	}
	v = calloc(1, sizeof(*v));
	if (!v) {
		err_set(err, cap, "out of memory");
		return NULL;
	}
	rc = -1;
	if (cfg->skew_ms < 0 || cfg->skew_ms > TOKEN_SKEW_MAX_MS) {
		err_set(err, cap, "skew: %lld ms is outside 0..%d", (long long)cfg->skew_ms,
			TOKEN_SKEW_MAX_MS);
		goto out;
	}
	v->skew_ms = cfg->skew_ms;
	if (cfg->max_len > TOKEN_MAX_DEFAULT) {
		err_set(err, cap, "max_len: %zu is above %d", cfg->max_len, TOKEN_MAX_DEFAULT);
		goto out;
	}
	v->max_len = cfg->max_len ? cfg->max_len : TOKEN_MAX_DEFAULT;
	if (algs_parse(cfg->algorithms ? cfg->algorithms : "RS256,ES256", &v->allowed, err, cap))
		goto out;
	if (dup_str(&v->issuer, cfg->issuer, "issuer", err, cap) ||
	    dup_str(&v->audience, cfg->audience, "audience", err, cap))
		goto out;
	owner_claim = cfg->owner_claim && *cfg->owner_claim ? cfg->owner_claim : "sub";
	if (dup_str(&v->owner_claim, owner_claim, "owner claim", err, cap))
		goto out;
	if (cfg->required_scope && *cfg->required_scope) {
		if (!scope_token_ok(cfg->required_scope)) {
			err_set(err, cap, "required scope: not one RFC 6749 scope token");
			goto out;
		}
		if (dup_str(&v->scope, cfg->required_scope, "required scope", err, cap))
			goto out;
	}
	if (jwks_load(v, cfg->jwks_json, err, cap))
		goto out;
	rc = 0;
out:
	if (rc) {
		token_verifier_free(v);
		return NULL;
	}
	return v;
}

void token_verifier_free(struct token_verifier *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->nkeys; i++) {
		free(v->keys[i].kid);
		cjose_jwk_release(v->keys[i].jwk);
	}
	free(v->keys);
	free(v->issuer);
	free(v->audience);
	free(v->owner_claim);
	free(v->scope);
	free(v);
}

/* The three base64url parts of a compact JWS, as given and decoded. */
struct jws_parts {
	const char *b64[3];
	size_t b64_len[3];
	unsigned char *raw[3];
	size_t raw_len[3];
};

static enum token_result decode_err(enum proto_err rc)
{
	return rc == PROTO_E_NOMEM ? TOKEN_NOMEM : TOKEN_MALFORMED;
}

/*
 * Splits and strictly decodes the token (cjose 0.6.2 would also take '=' padding and non-zero
 * unused bits, i.e. several spellings of one signature). buf holds the decoded parts.
 */
static enum token_result parts_decode(const char *t, size_t len, unsigned char *buf,
				      struct jws_parts *p)
{
	size_t start = 0, part = 0;

	for (size_t i = 0; i < len; i++) {
		char c = t[i];

		if (c == '.') {
			if (part == 2)
				return TOKEN_MALFORMED;
			p->b64[part] = t + start;
			p->b64_len[part++] = i - start;
			start = i + 1;
		} else if (!ascii_is_alnum(c) && c != '-' && c != '_') {
			return TOKEN_MALFORMED;
		}
	}
	if (part != 2)
		return TOKEN_MALFORMED;
	p->b64[2] = t + start;
	p->b64_len[2] = len - start;
	for (size_t i = 0; i < 3; i++) {
		enum proto_err rc;

		p->raw[i] = buf;
		rc = base64url_decode(p->b64[i], p->b64_len[i], buf,
				      BASE64_DECODED_MAX(p->b64_len[i]), &p->raw_len[i]);
		if (rc)
			return decode_err(rc);
		buf += BASE64_DECODED_MAX(p->b64_len[i]);
	}
	return TOKEN_OK;
}

static enum token_result json_parse(const unsigned char *s, size_t len, json_t **out)
{
	json_error_t jerr;
	json_t *j;

	/* Duplicate names are how two parsers are made to read two different tokens. */
	j = json_loadb((const char *)s, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j)
		return json_error_code(&jerr) == json_error_out_of_memory ? TOKEN_NOMEM
									  : TOKEN_MALFORMED;
	if (!json_is_object(j)) {
		json_decref(j);
		return TOKEN_MALFORMED;
	}
	*out = j;
	return TOKEN_OK;
}

/* Header policy: no crit, typ JWT if any, alg allowed, kid given. Writes *alg (index). */
static enum token_result header_check(const struct token_verifier *v, json_t *h, int *alg,
				      const char **kid, size_t *kid_len)
{
	json_t *typ = json_object_get(h, "typ"), *a = json_object_get(h, "alg");
	json_t *k = json_object_get(h, "kid");
	int i;

	/* We understand no extension, so crit can never be honoured (RFC 7515 4.1.11). */
	if (json_object_get(h, "crit"))
		return TOKEN_MALFORMED;
	if (typ) {
		const char *s = json_string_value(typ);

		if (!s || !(ascii_ieq(s, json_string_length(typ), "JWT") ||
			    ascii_ieq(s, json_string_length(typ), "at+jwt")))
			return TOKEN_MALFORMED;
	}
	if (!json_is_string(a))
		return TOKEN_MALFORMED;
	i = alg_find(json_string_value(a), json_string_length(a));
	if (i < 0 || !(v->allowed & (1u << i)))
		return TOKEN_ALG;
	/* jku, x5u, jwk, x5c are never read: the key comes from the JWKS by kid only. */
	if (!json_is_string(k))
		return TOKEN_MALFORMED;
	*alg = i;
	*kid = json_string_value(k);
	*kid_len = json_string_length(k);
	return TOKEN_OK;
}

static const struct token_key *key_find(const struct token_verifier *v, const char *kid,
					size_t kid_len)
{
	for (size_t i = 0; i < v->nkeys; i++)
		if (v->keys[i].kid_len == kid_len && memcmp(v->keys[i].kid, kid, kid_len) == 0)
			return &v->keys[i];
	return NULL;
}

/*
 * Lets cjose check the signature with the chosen key. Everything cjose decides by itself (the
 * algorithm from the header, the payload it decodes) is compared with what we checked.
 */
static enum token_result signature_check(const char *t, size_t len, const struct jws_parts *p,
					 int alg, const struct token_key *key)
{
	cjose_err cerr = {0};
	cjose_jws_t *jws;
	const char *calg;
	uint8_t *plain = NULL;
	size_t plain_len = 0;
	enum token_result r;

	/* cjose 0.6.2 verifies an ES256 signature with a byte appended (it splits sig_len / 2). */
	if (p->raw_len[2] != key->sig_len)
		return TOKEN_SIGNATURE;
	jws = cjose_jws_import(t, len, &cerr);
	if (!jws)
		return cerr.code == CJOSE_ERR_NO_MEMORY ? TOKEN_NOMEM : TOKEN_MALFORMED;
	r = TOKEN_MALFORMED;
	calg = cjose_header_get(cjose_jws_get_protected(jws), CJOSE_HDR_ALG, &cerr);
	if (!calg || strcmp(calg, algs[alg].name) != 0)
		goto out;
	if (!cjose_jws_verify(jws, key->jwk, &cerr)) {
		r = cerr.code == CJOSE_ERR_NO_MEMORY ? TOKEN_NOMEM : TOKEN_SIGNATURE;
		goto out;
	}
	if (!cjose_jws_get_plaintext(jws, &plain, &plain_len, &cerr) ||
	    plain_len != p->raw_len[1] || (plain_len && memcmp(plain, p->raw[1], plain_len) != 0))
		goto out;
	r = TOKEN_OK;
out:
	cjose_jws_release(jws);
	return r;
}

static int64_t add_sat(int64_t a, int64_t b)
{
	if (b > 0 && a > INT64_MAX - b)
		return INT64_MAX;
	if (b < 0 && a < INT64_MIN - b)
		return INT64_MIN;
	return a + b;
}

/*
 * Reads a NumericDate claim (seconds; an integer, or a real without fraction) as Unix ms,
 * saturating. Returns 0 with *ms, 1 when absent, -1 when not a NumericDate.
 */
static int claim_time(json_t *claims, const char *name, int64_t *ms)
{
	json_t *j = json_object_get(claims, name);
	int64_t s;

	if (!j)
		return 1;
	if (json_is_integer(j)) {
		s = json_integer_value(j);
	} else if (json_is_real(j)) {
		double d = json_real_value(j);

		if (!isfinite(d) || d != trunc(d))
			return -1;
		/* Beyond 2^53 s a date means "never" / "always"; keep the conversion defined. */
		if (d > 9007199254740992.0)
			d = 9007199254740992.0;
		else if (d < -9007199254740992.0)
			d = -9007199254740992.0;
		s = (int64_t)d;
	} else {
		return -1;
	}
	if (s > INT64_MAX / 1000)
		*ms = INT64_MAX;
	else if (s < INT64_MIN / 1000)
		*ms = INT64_MIN;
	else
		*ms = s * 1000;
	return 0;
}

static int str_eq(json_t *j, const char *s)
{
	return json_is_string(j) && json_string_length(j) == strlen(s) &&
	       memcmp(json_string_value(j), s, json_string_length(j)) == 0;
}

static int aud_ok(json_t *aud, const char *want)
{
	size_t i;
	json_t *e;
	int found = 0;

	if (json_is_string(aud))
		return str_eq(aud, want);
	if (!json_is_array(aud))
		return 0;
	json_array_foreach(aud, i, e)
	{
		if (!json_is_string(e))
			return 0;
		found |= str_eq(e, want);
	}
	return found;
}

static int scope_ok(json_t *scope, const char *want)
{
	const char *s = json_string_value(scope);
	size_t len = json_string_length(scope), wlen = strlen(want), i = 0;

	if (!s)
		return 0;
	while (i < len) {
		size_t j = i;

		while (j < len && s[j] != ' ')
			j++;
		if (j - i == wlen && memcmp(s + i, want, wlen) == 0)
			return 1;
		i = j + 1;
	}
	return 0;
}

/* The claims, in a fixed order; *owner is set when the owner claim is a valid owner. */
static enum token_result claims_check(const struct token_verifier *v, json_t *c, int64_t now_ms,
				      json_t **owner)
{
	json_t *o = json_object_get(c, v->owner_claim);
	int64_t exp, nbf, iat;
	enum proto_err prc;
	int rc;

	if (json_is_string(o)) {
		prc = owner_check(json_string_value(o), json_string_length(o));
		if (prc == PROTO_E_NOMEM)
			return TOKEN_NOMEM;
		if (prc == PROTO_OK)
			*owner = o;
	}
	if (claim_time(c, "exp", &exp) != 0 || now_ms > add_sat(exp, v->skew_ms))
		return TOKEN_EXPIRED;
	rc = claim_time(c, "nbf", &nbf);
	if (rc < 0 || (rc == 0 && add_sat(now_ms, v->skew_ms) < nbf))
		return TOKEN_NOT_YET;
	rc = claim_time(c, "iat", &iat);
	if (rc < 0 || (rc == 0 && add_sat(now_ms, v->skew_ms) < iat))
		return TOKEN_NOT_YET;
	if (!str_eq(json_object_get(c, "iss"), v->issuer))
		return TOKEN_ISSUER;
	if (!aud_ok(json_object_get(c, "aud"), v->audience))
		return TOKEN_AUDIENCE;
	if (!*owner)
		return TOKEN_OWNER;
	if (v->scope && !scope_ok(json_object_get(c, "scope"), v->scope))
		return TOKEN_SCOPE;
	return TOKEN_OK;
}

/* Finds the token in "Bearer <token>": MISSING for another scheme, MALFORMED for bad spacing. */
static enum token_result scheme_strip(const char *a, size_t len, const char **tok, size_t *tok_len)
{
	size_t n = 0;

	while (n < len && !ascii_is_ows(a[n]))
		n++;
	if (!ascii_ieq(a, n, "bearer"))
		return TOKEN_MISSING;
	/* RFC 6750 2.1: exactly "Bearer" SP token, nothing around it */
	if (n == len || a[n] != ' ' || n + 1 == len)
		return TOKEN_MALFORMED;
	*tok = a + n + 1;
	*tok_len = len - n - 1;
	return TOKEN_OK;
}

enum token_result token_verify(const struct token_verifier *v, const char *authorization,
			       size_t len, int64_t now_ms, char *owner, size_t *owner_len)
{
	struct jws_parts p;
	unsigned char *buf = NULL;
	json_t *header = NULL, *claims = NULL, *o = NULL;
	const struct token_key *key;
	const char *tok = NULL, *kid = NULL;
	size_t tok_len = 0, kid_len = 0;
	enum token_result r;
	int alg = -1;

	if (!authorization || len == 0)
		return TOKEN_MISSING;
	if (len > v->max_len)
		return TOKEN_TOO_LONG;
	r = scheme_strip(authorization, len, &tok, &tok_len);
	if (r)
		return r;
	/* Part i takes BASE64_DECODED_MAX(l_i) <= l_i + 2 bytes: tok_len + 4 in all. */
	buf = malloc(tok_len + 8);
	if (!buf)
		return TOKEN_NOMEM;
	r = parts_decode(tok, tok_len, buf, &p);
	if (r)
		goto out;
	r = json_parse(p.raw[0], p.raw_len[0], &header);
	if (r)
		goto out;
	r = header_check(v, header, &alg, &kid, &kid_len);
	if (r)
		goto out;
	key = key_find(v, kid, kid_len);
	/* The key must fit the alg: an RSA key handed to ES256 (or HS256) never verifies it. */
	if (!key || key->kind != algs[alg].kind || (key->alg >= 0 && key->alg != alg)) {
		r = TOKEN_KID;
		goto out;
	}
	r = signature_check(tok, tok_len, &p, alg, key);
	if (r)
		goto out;
	r = json_parse(p.raw[1], p.raw_len[1], &claims);
	if (r)
		goto out;
	r = claims_check(v, claims, now_ms, &o);
	if (o && owner && owner_len &&
	    (r == TOKEN_OK || r == TOKEN_SCOPE || r == TOKEN_EXPIRED || r == TOKEN_NOT_YET ||
	     r == TOKEN_ISSUER || r == TOKEN_AUDIENCE)) {
		memcpy(owner, json_string_value(o), json_string_length(o));
		owner[json_string_length(o)] = '\0';
		*owner_len = json_string_length(o);
	}
out:
	json_decref(claims);
	json_decref(header);
	free(buf);
	return r;
}
