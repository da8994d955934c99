/* token: verifies the bearer JWT (OIDC access token) of a request against a fixed JWKS. */
#ifndef FSG_GATEWAY_TOKEN_H
#define FSG_GATEWAY_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "proto/owner.h"

#define TOKEN_MAX_DEFAULT 8192 /* longest Authorization value accepted, bytes */
#define TOKEN_SKEW_MAX_MS 300000

struct token_config {
	const char *jwks_json;      /* JWKS document text: {"keys":[...]}; keys need "kid" */
	const char *algorithms;     /* allowed JWS algorithms, comma-separated: "RS256,ES256";
				     * NULL: "RS256,ES256"; names from RS/PS/ES 256/384/512 */
	const char *issuer;         /* "iss" must equal this (required) */
	const char *audience;       /* "aud" (string or array) must contain this (required) */
	const char *owner_claim;    /* claim naming the user; NULL or "": "sub" */
	const char *required_scope; /* NULL or "": none; else one scope-token "scope" must hold */
	int64_t skew_ms;            /* clock skew allowed on exp/nbf/iat, 0..TOKEN_SKEW_MAX_MS */
	size_t max_len;             /* longest Authorization value, <= TOKEN_MAX_DEFAULT; 0: that */
};

/* Why a token was refused. The client always gets the same 401 (403 for SCOPE). */
enum token_result {
	TOKEN_OK = 0,
	TOKEN_MISSING = 1,    /* no Authorization, or not "Bearer <token>" */
	TOKEN_TOO_LONG = 2,   /* refused before parsing */
	TOKEN_MALFORMED = 3,  /* not a compact JWS, bad base64url/JSON, no kid, crit header, ... */
	TOKEN_ALG = 4,        /* algorithm not allowed (none, HS*, anything not configured) */
	TOKEN_KID = 5,        /* no key with this kid (or key type does not fit the algorithm) */
	TOKEN_SIGNATURE = 6,  /* signature does not verify */
	TOKEN_EXPIRED = 7,    /* exp missing or not a NumericDate, or now > exp + skew */
	TOKEN_NOT_YET = 8,    /* nbf or iat in the future beyond skew, or not a NumericDate */
	TOKEN_ISSUER = 9,
	TOKEN_AUDIENCE = 10,
	TOKEN_OWNER = 11,     /* owner claim missing, not a string, or fails owner_check */
	TOKEN_SCOPE = 12,     /* verified, but required scope missing: 403 */
	TOKEN_NOMEM = 13,
};

const char *token_result_name(enum token_result r);

struct token_verifier;

/*
 * Builds a verifier: parses the algorithm list (none and HS* are never allowed: naming them is
 * an error) and the JWKS. Keys the gateway cannot use are skipped with a log line, as identity
 * providers publish encryption keys and keys for other algorithms beside the signing keys:
 * "use" other than "sig", a kty or EC curve no allowed algorithm takes, an "alg" not allowed.
 * Every other key must be sound: a unique non-empty kid, RSA of 2048 bits or more with e odd
 * and above 1, or EC P-256/P-384/P-521; an "alg" of its own type; no private part anywhere in
 * the set. At least one key must remain. Returns NULL with a one-line reason in err (cut to
 * cap; err may be NULL). The verifier is immutable: threads may share it.
 */
struct token_verifier *token_verifier_new(const struct token_config *cfg, char *err, size_t cap);
void token_verifier_free(struct token_verifier *v);

/*
 * Verifies the Authorization header value (not NUL-terminated; NULL or empty: TOKEN_MISSING)
 * at now_ms (Unix ms). The first failure is returned, checking in this order: length, scheme,
 * syntax and strict base64url of all three parts, header (crit, typ, alg, then kid, required),
 * key, signature, payload JSON, exp, nbf, iat, iss, aud, owner, scope. Keys are only ever taken
 * from the JWKS by kid (jku, x5u, jwk, x5c headers are ignored). On TOKEN_OK and TOKEN_SCOPE
 * writes the owner (NUL-terminated) and *owner_len; after a verified signature with failed
 * claims (EXPIRED, NOT_YET, ISSUER, AUDIENCE) it also writes the owner when the owner claim is
 * valid, so failed attempts can be counted per user; otherwise both are untouched. owner must
 * hold OWNER_MAX + 1 bytes; owner and owner_len may both be NULL. Logs nothing.
 */
enum token_result token_verify(const struct token_verifier *v, const char *authorization,
			       size_t len, int64_t now_ms, char *owner, size_t *owner_len);

#endif
