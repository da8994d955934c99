/* jwt: signing keys, JWKS documents and compact JWS tokens for tests, honest and hostile. */
#include "tests/lib/jwt.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

struct jwt_keys *jwt_keys_new(const char *rsa_kid, const char *ec_kid)
{
	struct jwt_keys *k;

	if (!rsa_kid || !ec_kid)
		return NULL;
	k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->rsa = EVP_RSA_gen(2048);
	k->ec = EVP_EC_gen("P-256");
	k->rsa_kid = strdup(rsa_kid);
	k->ec_kid = strdup(ec_kid);
	if (!k->rsa || !k->ec || !k->rsa_kid || !k->ec_kid) {
		jwt_keys_free(k);
		return NULL;
	}
	return k;
}

void jwt_keys_free(struct jwt_keys *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->rsa);
	EVP_PKEY_free(k->ec);
	free(k->rsa_kid);
	free(k->ec_kid);
	free(k);
}

char *jwt_b64url(const void *in, size_t len)
{
	char *out;
	int n;

	/* EVP_EncodeBlock counts in int; test inputs are far shorter */
	if (len > INT_MAX / 2)
		return NULL;
	out = malloc((len + 2) / 3 * 4 + 1);
	if (!out)
		return NULL;
	n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	/* base64url differs from base64 in two characters and has no padding */
	for (int i = 0; i < n; i++) {
		if (out[i] == '+') {
			out[i] = '-';
		} else if (out[i] == '/') {
			out[i] = '_';
		} else if (out[i] == '=') {
			out[i] = '\0';
			break;
		}
	}
	return out;
}

/* A key parameter as base64url: minimal big-endian bytes, or exactly pad bytes when pad > 0. */
static char *param_b64url(EVP_PKEY *key, const char *name, int pad)
{
	BIGNUM *bn = NULL;
	unsigned char buf[1024];
	char *out = NULL;
	int n;

	if (!EVP_PKEY_get_bn_param(key, name, &bn))
		return NULL;
	if (BN_num_bytes(bn) <= (int)sizeof(buf) && pad <= (int)sizeof(buf)) {
		n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
		if (n > 0)
			out = jwt_b64url(buf, (size_t)n);
	}
	BN_free(bn);
	return out;
}

/* Bytes of one coordinate (and of r and s) on the key's curve. */
static int ec_coord(EVP_PKEY *key)
{
	return (EVP_PKEY_get_bits(key) + 7) / 8;
}

char *jwt_jwk(EVP_PKEY *key, const char *kid, const char *extra)
{
	char *a = NULL, *b = NULL, *kidm = NULL, *out = NULL;
	const char *crv;
	int rc;

	if (!extra)
		extra = "";
	if (kid)
		rc = asprintf(&kidm, ",\"kid\":\"%s\"", kid);
	else
		rc = asprintf(&kidm, "%s", "");
	if (rc == -1)
		return NULL;
	if (EVP_PKEY_is_a(key, "RSA")) {
		a = param_b64url(key, OSSL_PKEY_PARAM_RSA_N, 0);
		b = param_b64url(key, OSSL_PKEY_PARAM_RSA_E, 0);
		if (a && b &&
		    asprintf(&out, "{\"kty\":\"RSA\"%s,\"n\":\"%s\",\"e\":\"%s\"%s}", kidm, a, b,
			     extra) == -1)
			out = NULL;
	} else if (EVP_PKEY_is_a(key, "EC")) {
		int c = ec_coord(key);

		crv = c == 32 ? "P-256" : c == 48 ? "P-384" : c == 66 ? "P-521" : NULL;
		a = param_b64url(key, OSSL_PKEY_PARAM_EC_PUB_X, c);
		b = param_b64url(key, OSSL_PKEY_PARAM_EC_PUB_Y, c);
		if (crv && a && b &&
		    asprintf(&out, "{\"kty\":\"EC\",\"crv\":\"%s\"%s,\"x\":\"%s\",\"y\":\"%s\"%s}",
			     crv, kidm, a, b, extra) == -1)
			out = NULL;
	}
	free(a);
	free(b);
	free(kidm);
	return out;
}

char *jwt_keys_jwks(const struct jwt_keys *k)
{
	char *rsa = jwt_jwk(k->rsa, k->rsa_kid, ",\"use\":\"sig\",\"alg\":\"RS256\"");
	char *ec = jwt_jwk(k->ec, k->ec_kid, ",\"use\":\"sig\",\"alg\":\"ES256\"");
	char *out = NULL;

	if (rsa && ec && asprintf(&out, "{\"keys\":[%s,%s]}", rsa, ec) == -1)
		out = NULL;
	free(rsa);
	free(ec);
	return out;
}

int jwt_keys_write_jwks(const struct jwt_keys *k, const char *path)
{
	char *jwks = jwt_keys_jwks(k);
	FILE *f;
	int rc = -1;

	if (!jwks)
		return -1;
	f = fopen(path, "w");
	if (f) {
		rc = fputs(jwks, f) == EOF ? -1 : 0;
		if (fclose(f) == EOF)
			rc = -1;
	}
	free(jwks);
	return rc;
}

int jwt_write_private_pem(EVP_PKEY *key, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FILE *f;
	int rc = -1;

	if (fd == -1)
		return -1;
	/* an existing file keeps its mode through O_TRUNC: a private key is never readable */
	if (fchmod(fd, 0600) == -1) {
		close(fd);
		return -1;
	}
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return -1;
	}
	if (PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1)
		rc = 0;
	if (fclose(f) == EOF)
		rc = -1;
	return rc;
}

char *jwt_public_pem(EVP_PKEY *key, size_t *len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	long n;

	if (!bio)
		return NULL;
	if (PEM_write_bio_PUBKEY(bio, key) == 1) {
		n = BIO_get_mem_data(bio, &data);
		out = n >= 0 ? malloc((size_t)n + 1) : NULL;
		if (out) {
			memcpy(out, data, (size_t)n);
			out[n] = '\0';
			if (len)
				*len = (size_t)n;
		}
	}
	BIO_free(bio);
	return out;
}

static int hmac_sign(const struct jwt_signer *s, const EVP_MD *md, const char *in, size_t len,
		     unsigned char *sig, size_t cap)
{
	unsigned int n = 0;
	const void *secret = s->secret ? s->secret : "";

	if (cap < (size_t)EVP_MD_get_size(md) || s->secret_len > INT_MAX)
		return -1;
	if (!HMAC(md, secret, (int)s->secret_len, (const unsigned char *)in, len, sig, &n))
		return -1;
	return (int)n;
}

/* RSASSA-PKCS1-v1_5, RSASSA-PSS, or ECDSA turned from DER into JOSE's raw r || s. */
static int pkey_sign(const struct jwt_signer *s, const EVP_MD *md, int pss, const char *in,
		     size_t len, unsigned char *sig, size_t cap)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	ECDSA_SIG *es = NULL;
	unsigned char der[256];
	const unsigned char *p = der;
	size_t n = cap, der_len = sizeof(der);
	int rc = -1;

	if (!ctx || !s->key || EVP_DigestSignInit(ctx, &pctx, md, NULL, s->key) != 1)
		goto out;
	if (pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
		    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0))
		goto out;
	if (EVP_PKEY_is_a(s->key, "RSA")) {
		if (EVP_DigestSign(ctx, sig, &n, (const unsigned char *)in, len) == 1 &&
		    n <= INT_MAX)
			rc = (int)n;
	} else if (EVP_PKEY_is_a(s->key, "EC")) {
		const BIGNUM *r, *ss;
		int c = ec_coord(s->key);

		if ((size_t)(2 * c) > cap ||
		    EVP_DigestSign(ctx, der, &der_len, (const unsigned char *)in, len) != 1)
			goto out;
		es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
		if (!es)
			goto out;
		ECDSA_SIG_get0(es, &r, &ss);
		if (BN_bn2binpad(r, sig, c) == c && BN_bn2binpad(ss, sig + c, c) == c)
			rc = 2 * c;
	}
out:
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(ctx);
	return rc;
}

int jwt_sign(const struct jwt_signer *s, const char *in, size_t len, unsigned char *sig, size_t cap)
{
	const EVP_MD *md;

	if (!s || !s->alg)
		return -1;
	if (strcmp(s->alg, "none") == 0)
		return 0;
	if (strlen(s->alg) != 5)
		return -1;
	if (strcmp(s->alg + 2, "256") == 0)
		md = EVP_sha256();
	else if (strcmp(s->alg + 2, "384") == 0)
		md = EVP_sha384();
	else if (strcmp(s->alg + 2, "512") == 0)
		md = EVP_sha512();
	else
		return -1;
	if (strncmp(s->alg, "HS", 2) == 0)
		return hmac_sign(s, md, in, len, sig, cap);
	if (strncmp(s->alg, "RS", 2) == 0 || strncmp(s->alg, "PS", 2) == 0) {
		if (!s->key || !EVP_PKEY_is_a(s->key, "RSA"))
			return -1;
		return pkey_sign(s, md, s->alg[0] == 'P', in, len, sig, cap);
	}
	if (strncmp(s->alg, "ES", 2) == 0) {
		if (!s->key || !EVP_PKEY_is_a(s->key, "EC"))
			return -1;
		return pkey_sign(s, md, 0, in, len, sig, cap);
	}
	return -1;
}

char *jwt_mint(const struct jwt_signer *s, const char *header, const char *payload,
	       enum jwt_mutation m)
{
	char *h = jwt_b64url(header, strlen(header));
	char *p = jwt_b64url(payload, strlen(payload));
	char *in = NULL, *sb = NULL, *tok = NULL;
	unsigned char sig[1024]; /* an RSA-8192 signature */
	int sig_len;

	if (!h || !p || asprintf(&in, "%s.%s", h, p) == -1) {
		in = NULL;
		goto out;
	}
	sig_len = jwt_sign(s, in, strlen(in), sig, sizeof(sig));
	if (sig_len < 0)
		goto out;
	if (m == JWT_MUT_SIG_FLIP) {
		if (sig_len == 0)
			goto out;
		sig[sig_len / 2] ^= 0x10;
	}
	sb = jwt_b64url(sig, (size_t)sig_len);
	if (sb && asprintf(&tok, "%s.%s", in, sb) == -1)
		tok = NULL;
out:
	free(h);
	free(p);
	free(in);
	free(sb);
	return tok;
}

/* Sets name to a string (skipped when NULL) or an integer (skipped when JWT_NO_TIME). */
static int set_str(json_t *o, const char *name, const char *v)
{
	return v ? json_object_set_new(o, name, json_string(v)) : 0;
}

static int set_time(json_t *o, const char *name, int64_t v)
{
	return v != JWT_NO_TIME ? json_object_set_new(o, name, json_integer((json_int_t)v)) : 0;
}

char *jwt_mint_claims(const struct jwt_keys *k, const char *kid, const char *alg, const char *iss,
		      const char *aud, const char *sub, int64_t iat, int64_t nbf, int64_t exp)
{
	struct jwt_signer s = {.alg = alg};
	json_t *h = json_object(), *p = json_object();
	char *hs = NULL, *ps = NULL, *pem = NULL, *tok = NULL;

	if (!h || !p || !alg)
		goto out;
	if (strcmp(alg, "RS256") == 0) {
		s.key = k->rsa;
	} else if (strcmp(alg, "ES256") == 0) {
		s.key = k->ec;
	} else if (strcmp(alg, "HS256") == 0) {
		pem = jwt_public_pem(k->rsa, &s.secret_len);
		if (!pem)
			goto out;
		s.secret = pem;
	} else if (strcmp(alg, "none") != 0) {
		goto out;
	}
	if (set_str(h, "alg", alg) || set_str(h, "typ", "JWT") || set_str(h, "kid", kid))
		goto out;
	if (set_str(p, "iss", iss) || set_str(p, "aud", aud) || set_str(p, "sub", sub) ||
	    set_time(p, "iat", iat) || set_time(p, "nbf", nbf) || set_time(p, "exp", exp))
		goto out;
	hs = json_dumps(h, JSON_COMPACT);
	ps = json_dumps(p, JSON_COMPACT);
	if (hs && ps)
		tok = jwt_mint(&s, hs, ps, JWT_MUT_NONE);
out:
	json_decref(h);
	json_decref(p);
	free(hs);
	free(ps);
	free(pem);
	return tok;
}
