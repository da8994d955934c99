/* jwt: signing keys, JWKS documents and compact JWS tokens for tests, honest and hostile. */
#ifndef FSG_TEST_JWT_H
#define FSG_TEST_JWT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

/* Passed as iat, nbf or exp to jwt_mint_claims: the claim is left out. */
#define JWT_NO_TIME INT64_MIN

/* A test's signing keys: an RSA-2048 key and a P-256 key, each with its kid. */
struct jwt_keys {
	EVP_PKEY *rsa;
	EVP_PKEY *ec;
	char *rsa_kid;
	char *ec_kid;
};

/* Generates both keys. Returns NULL when a key cannot be made. Free with jwt_keys_free. */
struct jwt_keys *jwt_keys_new(const char *rsa_kid, const char *ec_kid);
void jwt_keys_free(struct jwt_keys *k);

/*
 * The JWKS of both public keys, {"keys":[...]}, each with kid, "use":"sig" and its alg (RS256,
 * ES256). Returns a malloc'd string, or NULL.
 */
char *jwt_keys_jwks(const struct jwt_keys *k);

/* Writes jwt_keys_jwks to path (created or truncated). Returns 0 or -1. */
int jwt_keys_write_jwks(const struct jwt_keys *k, const char *path);

/* Writes key's private part as PKCS#8 PEM to path, created with mode 0600. Returns 0 or -1. */
int jwt_write_private_pem(EVP_PKEY *key, const char *path);

/*
 * key's public key as SubjectPublicKeyInfo PEM, the bytes a verifier's key file holds (and the
 * secret of the HS256 key-confusion attack). Returns a malloc'd NUL-terminated string and its
 * length in *len (len may be NULL), or NULL.
 */
char *jwt_public_pem(EVP_PKEY *key, size_t *len);

/*
 * The public JWK of an RSA or EC (P-256/384/521) key: kty, crv, kid (left out when kid is
 * NULL), n and e or x and y, then extra pasted verbatim before the closing brace (",..." or
 * NULL), so a test can add members or break the document. Returns a malloc'd string, or NULL.
 */
char *jwt_jwk(EVP_PKEY *key, const char *kid, const char *extra);

/* Unpadded base64url of len bytes. Returns a malloc'd string, or NULL. */
char *jwt_b64url(const void *in, size_t len);

/*
 * How a token is signed, independent of the alg its header claims. alg is a JWS name: RS256,
 * RS384, RS512, PS256, PS384, PS512 (salt of the digest's length), ES256, ES384, ES512 (raw
 * r || s, each the curve's coordinate size, as JWS wants), with key; HS256, HS384, HS512 with
 * secret (any bytes: an RSA public key PEM makes the key-confusion attack); "none": an empty
 * signature.
 */
struct jwt_signer {
	const char *alg;
	EVP_PKEY *key;
	const void *secret;
	size_t secret_len;
};

/* Signs len bytes of in into sig (cap bytes). Returns the signature's length, or -1. */
int jwt_sign(const struct jwt_signer *s, const char *in, size_t len, unsigned char *sig,
	     size_t cap);

/* What jwt_mint does to the token after signing. */
enum jwt_mutation {
	JWT_MUT_NONE,
	JWT_MUT_SIG_FLIP, /* one bit in the middle of the signature flipped (needs a signature) */
};

/*
 * The compact JWS base64url(header) "." base64url(payload) "." base64url(signature), signed by
 * s over the first two parts. header and payload are taken as they are (any bytes, valid JSON
 * or not). Returns a malloc'd string, or NULL.
 */
char *jwt_mint(const struct jwt_signer *s, const char *header, const char *payload,
	       enum jwt_mutation m);

/*
 * An access token in one call: header {"alg":alg,"typ":"JWT","kid":kid} (no kid when NULL),
 * payload {"iss","aud","sub","iat","nbf","exp"} where a NULL string or JWT_NO_TIME leaves that
 * claim out. alg picks the signature: RS256 with k->rsa, ES256 with k->ec, HS256 keyed with
 * k->rsa's public key PEM (key confusion), "none" empty. Returns a malloc'd string, or NULL.
 */
char *jwt_mint_claims(const struct jwt_keys *k, const char *kid, const char *alg, const char *iss,
		      const char *aud, const char *sub, int64_t iat, int64_t nbf, int64_t exp);

#endif
