/* Tests gateway/token.c: bearer JWT policy against tokens minted here, honest and hostile. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjose/cjose.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "gateway/token.h"
#include "tests/lib/jwt.h"
#include "tests/lib/proc.h"

#define NOW_MS	INT64_C(1800000000000) /* 2027-01-15T08:00:00Z; every token is dated from it */
#define SKEW_MS 60000
#define ISS	"https://idp.example.com/"
#define AUD	"fs-gateway"
#define ALGS	"RS256,RS384,PS256,ES256,ES384"

/* Claims every good token carries; cases add sub, exp and what they test. */
#define IA   "\"iss\":\"" ISS "\",\"aud\":\"" AUD "\""
#define GOOD "{" IA ",\"sub\":\"alice\",\"scope\":\"openid print\",\"exp\":1800003600}"

#define H_RS256 "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}"
#define H_ES256 "{\"alg\":\"ES256\",\"kid\":\"ec1\"}"

/* Keys made once per test process (Criterion runs each Test in its own). */
struct keys {
	EVP_PKEY *rsa1;	 /* in the JWKS as "rsa1", and as "rsa1-rs384" pinned to RS384 */
	EVP_PKEY *ec1;	 /* P-256, "ec1" */
	EVP_PKEY *ec384; /* P-384, "ec384" */
	EVP_PKEY *other; /* RSA, in no JWKS: the attacker's key */
	char *jwk_rsa1, *jwk_ec1, *jwk_ec384, *jwk_rsa1_rs384, *jwk_other;
	char *pem_rsa1; /* rsa1's public key PEM: the HS256 key-confusion secret */
	char *jwks;	/* the main key set */
	struct token_verifier *v;
};

static struct keys K;

/* The public JWK of k (tests/lib/jwt), asserted to exist. */
static char *jwk_json(EVP_PKEY *k, const char *kid, const char *extra)
{
	char *out = jwt_jwk(k, kid, extra);

	cr_assert_not_null(out);
	return out;
}

/* Unpadded base64url of len bytes, asserted to exist. */
static char *b64u(const void *in, size_t len)
{
	char *out = jwt_b64url(in, len);

	cr_assert_not_null(out);
	return out;
}

static struct token_verifier *verifier(const char *jwks, const char *algs, const char *scope,
				       size_t max_len)
{
	struct token_config cfg = {
		.jwks_json = jwks,
		.algorithms = algs,
		.issuer = ISS,
		.audience = AUD,
		.owner_claim = NULL,
		.required_scope = scope,
		.skew_ms = SKEW_MS,
		.max_len = max_len,
	};
	char err[256] = "";
	struct token_verifier *v = token_verifier_new(&cfg, err, sizeof(err));

	cr_assert_not_null(v, "token_verifier_new: %s", err);
	return v;
}

static void keys_setup(void)
{
	char jwks[16384];

	K.rsa1 = EVP_RSA_gen(2048);
	K.other = EVP_RSA_gen(2048);
	K.ec1 = EVP_EC_gen("P-256");
	K.ec384 = EVP_EC_gen("P-384");
	cr_assert(K.rsa1 && K.other && K.ec1 && K.ec384);
	K.jwk_rsa1 = jwk_json(K.rsa1, "rsa1", NULL);
	K.jwk_ec1 = jwk_json(K.ec1, "ec1", ",\"use\":\"sig\"");
	K.jwk_ec384 = jwk_json(K.ec384, "ec384", NULL);
	K.jwk_rsa1_rs384 = jwk_json(K.rsa1, "rsa1-rs384", ",\"alg\":\"RS384\",\"use\":\"sig\"");
	K.jwk_other = jwk_json(K.other, "attacker", NULL);
	K.pem_rsa1 = jwt_public_pem(K.rsa1, NULL);
	cr_assert_not_null(K.pem_rsa1);
	snprintf(jwks, sizeof(jwks), "{\"keys\":[%s,%s,%s,%s]}", K.jwk_rsa1, K.jwk_ec1, K.jwk_ec384,
		 K.jwk_rsa1_rs384);
	K.jwks = strdup(jwks);
	K.v = verifier(K.jwks, ALGS, "print", 0);
}

static void keys_teardown(void)
{
	token_verifier_free(K.v);
	EVP_PKEY_free(K.rsa1);
	EVP_PKEY_free(K.other);
	EVP_PKEY_free(K.ec1);
	EVP_PKEY_free(K.ec384);
	free(K.jwk_rsa1);
	free(K.jwk_ec1);
	free(K.jwk_ec384);
	free(K.jwk_rsa1_rs384);
	free(K.jwk_other);
	free(K.pem_rsa1);
	free(K.jwks);
}

TestSuite(token, .init = keys_setup, .fini = keys_teardown);

/* How a case's signature is made. */
enum signer {
	SIG_RS256,  /* rsa1, RSASSA-PKCS1-v1_5 SHA-256 */
	SIG_RS384,  /* rsa1, SHA-384 */
	SIG_PS256,  /* rsa1, RSASSA-PSS SHA-256, salt 32 */
	SIG_ES256,  /* ec1 */
	SIG_ES384,  /* ec384 */
	SIG_OTHER,  /* RS256 by a key outside the JWKS */
	SIG_HS_PEM, /* HMAC-SHA256 keyed with rsa1's public key PEM (the classic confusion) */
	SIG_HS_JWK, /* HMAC-SHA256 keyed with rsa1's JWK text */
	SIG_EMPTY,  /* no signature (alg none) */
};

/* What is done to the token after signing. */
enum mutation {
	MUT_NONE,
	MUT_SIG_FLIP,	  /* one bit of the signature flipped */
	MUT_SIG_APPEND,	  /* a byte appended to the signature (cjose 0.6.2 ignores it for ES*) */
	MUT_SIG_TRUNC,	  /* last byte of the signature dropped */
	MUT_SIG_NONCANON, /* unused bits of the last base64url character set */
	MUT_SIG_PAD,	  /* '=' after the signature (cjose 0.6.2 accepts it) */
	MUT_PAYLOAD_SWAP, /* payload replaced after signing (sub: mallory) */
};

/* Signs in with the key or secret s names (tests/lib/jwt); sig holds 1100 bytes. */
static size_t sign(enum signer s, const char *in, size_t len, unsigned char *sig)
{
	struct jwt_signer js = {.alg = "RS256", .key = K.rsa1};
	int n;

	switch (s) {
	case SIG_RS256: break;
	case SIG_RS384: js.alg = "RS384"; break;
	case SIG_PS256: js.alg = "PS256"; break;
	case SIG_ES256:
		js.alg = "ES256";
		js.key = K.ec1;
		break;
	case SIG_ES384:
		js.alg = "ES384";
		js.key = K.ec384;
		break;
	case SIG_OTHER: js.key = K.other; break;
	case SIG_HS_PEM:
		js.alg = "HS256";
		js.secret = K.pem_rsa1;
		js.secret_len = strlen(K.pem_rsa1);
		break;
	case SIG_HS_JWK:
		js.alg = "HS256";
		js.secret = K.jwk_rsa1;
		js.secret_len = strlen(K.jwk_rsa1);
		break;
	case SIG_EMPTY: js.alg = "none"; break;
	}
	/* one byte spare: MUT_SIG_APPEND adds one */
	n = jwt_sign(&js, in, len, sig, 1099);
	cr_assert_geq(n, 0, "jwt_sign %s", js.alg);
	return (size_t)n;
}

/* header.payload.signature, each part base64url of the given bytes. Caller frees. */
static char *mint(const char *header, const char *payload, enum signer s, enum mutation m)
{
	char *h = b64u((const unsigned char *)header, strlen(header));
	char *p = b64u((const unsigned char *)payload, strlen(payload));
	size_t in_len = strlen(h) + 1 + strlen(p);
	char *in = malloc(in_len + 1), *sb, *tok;
	unsigned char sig[1100];
	size_t sig_len;

	cr_assert_not_null(in);
	snprintf(in, in_len + 1, "%s.%s", h, p);
	sig_len = sign(s, in, in_len, sig);
	if (m == MUT_SIG_FLIP)
		sig[sig_len / 2] ^= 0x10;
	if (m == MUT_SIG_APPEND)
		sig[sig_len++] = 0x41;
	if (m == MUT_SIG_TRUNC)
		sig_len--;
	if (m == MUT_PAYLOAD_SWAP) {
		static const char swapped[] = "{" IA ",\"sub\":\"mallory\",\"scope\":\"print\","
					      "\"exp\":1800003600}";
		free(p);
		p = b64u((const unsigned char *)swapped, strlen(swapped));
	}
	sb = b64u(sig, sig_len);
	tok = malloc(strlen(h) + strlen(p) + strlen(sb) + 4);
	cr_assert_not_null(tok);
	sprintf(tok, "%s.%s.%s%s", h, p, sb, m == MUT_SIG_PAD ? "=" : "");
	if (m == MUT_SIG_NONCANON) {
		static const char alpha[] =
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
		char *last = tok + strlen(tok) - 1;
		int val = (int)(strchr(alpha, *last) - alpha);

		/* 256- and 64-byte signatures leave 4 unused bits in the last character */
		cr_assert_eq(sig_len % 3, 1);
		*last = alpha[val | 1];
	}
	free(h);
	free(p);
	free(sb);
	free(in);
	return tok;
}

static char *bearer(const char *tok)
{
	char *a = malloc(strlen(tok) + 8);

	cr_assert_not_null(a);
	sprintf(a, "Bearer %s", tok);
	return a;
}

/* Verifies tok as a Bearer value at NOW_MS. */
static enum token_result check_auth(const struct token_verifier *v, const char *tok, char *owner,
				    size_t *owner_len)
{
	char *auth = bearer(tok);
	enum token_result r = token_verify(v, auth, strlen(auth), NOW_MS, owner, owner_len);

	free(auth);
	return r;
}

struct tok_case {
	const char *name;
	const char *header;
	const char *payload;
	enum signer signer;
	enum mutation mut;
	int64_t now_delta_ms; /* the check runs at NOW_MS + this */
	enum token_result want;
	const char *owner; /* owner written, or NULL: owner and owner_len left untouched */
};

static const struct tok_case tok_cases[] = {
	/* honest tokens, every configured algorithm */
	{"rs256", H_RS256, GOOD, SIG_RS256, MUT_NONE, 0, TOKEN_OK, "alice"},
	{"es256", H_ES256, GOOD, SIG_ES256, MUT_NONE, 0, TOKEN_OK, "alice"},
	{"ps256", "{\"alg\":\"PS256\",\"kid\":\"rsa1\"}", GOOD, SIG_PS256, MUT_NONE, 0, TOKEN_OK,
	 "alice"},
	{"es384", "{\"alg\":\"ES384\",\"kid\":\"ec384\"}", GOOD, SIG_ES384, MUT_NONE, 0, TOKEN_OK,
	 "alice"},
	{"rs384 on the key pinned to it", "{\"alg\":\"RS384\",\"kid\":\"rsa1-rs384\"}", GOOD,
	 SIG_RS384, MUT_NONE, 0, TOKEN_OK, "alice"},
	{"rs384 on an unpinned rsa key", "{\"alg\":\"RS384\",\"kid\":\"rsa1\"}", GOOD, SIG_RS384,
	 MUT_NONE, 0, TOKEN_OK, "alice"},
	{"typ JWT", "{\"typ\":\"JWT\",\"alg\":\"RS256\",\"kid\":\"rsa1\"}", GOOD, SIG_RS256,
	 MUT_NONE, 0, TOKEN_OK, "alice"},
	{"typ at+jwt", "{\"typ\":\"at+jwt\",\"alg\":\"RS256\",\"kid\":\"rsa1\"}", GOOD, SIG_RS256,
	 MUT_NONE, 0, TOKEN_OK, "alice"},
	{"typ AT+JWT", "{\"typ\":\"AT+JWT\",\"alg\":\"ES256\",\"kid\":\"ec1\"}", GOOD, SIG_ES256,
	 MUT_NONE, 0, TOKEN_OK, "alice"},
	{"typ jwt", "{\"typ\":\"jwt\",\"alg\":\"RS256\",\"kid\":\"rsa1\"}", GOOD, SIG_RS256,
	 MUT_NONE, 0, TOKEN_OK, "alice"},
	{"unknown header members ignored", "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"x-foo\":[1]}",
	 GOOD, SIG_RS256, MUT_NONE, 0, TOKEN_OK, "alice"},
	{"owner in UTF-8", H_RS256,
	 "{" IA ",\"sub\":\"\\u00e9l\\u00e8ve\",\"scope\":\"print\",\"exp\":1800003600}", SIG_RS256,
	 MUT_NONE, 0, TOKEN_OK, "\xc3\xa9l\xc3\xa8ve"},

	/* typ */
	{"typ JWS", "{\"typ\":\"JWS\",\"alg\":\"RS256\",\"kid\":\"rsa1\"}", GOOD, SIG_RS256,
	 MUT_NONE, 0, TOKEN_MALFORMED, NULL},
	{"typ application/jwt", "{\"typ\":\"application/jwt\",\"alg\":\"RS256\",\"kid\":\"rsa1\"}",
	 GOOD, SIG_RS256, MUT_NONE, 0, TOKEN_MALFORMED, NULL},
	{"typ not a string", "{\"typ\":1,\"alg\":\"RS256\",\"kid\":\"rsa1\"}", GOOD, SIG_RS256,
	 MUT_NONE, 0, TOKEN_MALFORMED, NULL},
	{"typ dpop+jwt", "{\"typ\":\"dpop+jwt\",\"alg\":\"RS256\",\"kid\":\"rsa1\"}", GOOD,
	 SIG_RS256, MUT_NONE, 0, TOKEN_MALFORMED, NULL},

	/* alg: none and HMAC never, whatever the key */
	{"alg none, empty signature", "{\"alg\":\"none\"}", GOOD, SIG_EMPTY, MUT_NONE, 0, TOKEN_ALG,
	 NULL},
	{"alg none with a kid", "{\"alg\":\"none\",\"kid\":\"rsa1\"}", GOOD, SIG_EMPTY, MUT_NONE, 0,
	 TOKEN_ALG, NULL},
	{"alg None", "{\"alg\":\"None\",\"kid\":\"rsa1\"}", GOOD, SIG_EMPTY, MUT_NONE, 0, TOKEN_ALG,
	 NULL},
	{"alg none with an RS256 signature", "{\"alg\":\"none\",\"kid\":\"rsa1\"}", GOOD, SIG_RS256,
	 MUT_NONE, 0, TOKEN_ALG, NULL},
	{"HS256 keyed with the RSA public key PEM", "{\"alg\":\"HS256\",\"kid\":\"rsa1\"}", GOOD,
	 SIG_HS_PEM, MUT_NONE, 0, TOKEN_ALG, NULL},
	{"HS256 keyed with the RSA JWK text", "{\"alg\":\"HS256\",\"kid\":\"rsa1\"}", GOOD,
	 SIG_HS_JWK, MUT_NONE, 0, TOKEN_ALG, NULL},
	{"HS256 on the EC key", "{\"alg\":\"HS256\",\"kid\":\"ec1\"}", GOOD, SIG_HS_PEM, MUT_NONE,
	 0, TOKEN_ALG, NULL},
	{"HS512 without kid", "{\"alg\":\"HS512\"}", GOOD, SIG_HS_PEM, MUT_NONE, 0, TOKEN_ALG,
	 NULL},
	{"alg known but not configured", "{\"alg\":\"PS512\",\"kid\":\"rsa1\"}", GOOD, SIG_PS256,
	 MUT_NONE, 0, TOKEN_ALG, NULL},
	{"alg ES512 not configured", "{\"alg\":\"ES512\",\"kid\":\"ec1\"}", GOOD, SIG_ES256,
	 MUT_NONE, 0, TOKEN_ALG, NULL},
	{"alg lowercase rs256", "{\"alg\":\"rs256\",\"kid\":\"rsa1\"}", GOOD, SIG_RS256, MUT_NONE,
	 0, TOKEN_ALG, NULL},
	{"alg EdDSA", "{\"alg\":\"EdDSA\",\"kid\":\"ec1\"}", GOOD, SIG_ES256, MUT_NONE, 0,
	 TOKEN_ALG, NULL},
	{"alg missing", "{\"kid\":\"rsa1\"}", GOOD, SIG_RS256, MUT_NONE, 0, TOKEN_MALFORMED, NULL},
	{"alg a number", "{\"alg\":256,\"kid\":\"rsa1\"}", GOOD, SIG_RS256, MUT_NONE, 0,
	 TOKEN_MALFORMED, NULL},
	{"alg null", "{\"alg\":null,\"kid\":\"rsa1\"}", GOOD, SIG_RS256, MUT_NONE, 0,
	 TOKEN_MALFORMED, NULL},
	{"alg an array", "{\"alg\":[\"RS256\"],\"kid\":\"rsa1\"}", GOOD, SIG_RS256, MUT_NONE, 0,
	 TOKEN_MALFORMED, NULL},

	/* kid and key choice */
	{"kid unknown", "{\"alg\":\"RS256\",\"kid\":\"rsa2\"}", GOOD, SIG_RS256, MUT_NONE, 0,
	 TOKEN_KID, NULL},
	{"kid empty", "{\"alg\":\"RS256\",\"kid\":\"\"}", GOOD, SIG_RS256, MUT_NONE, 0, TOKEN_KID,
	 NULL},
	{"kid differs in case", "{\"alg\":\"RS256\",\"kid\":\"RSA1\"}", GOOD, SIG_RS256, MUT_NONE,
	 0, TOKEN_KID, NULL},
	{"kid prefix", "{\"alg\":\"RS256\",\"kid\":\"rsa\"}", GOOD, SIG_RS256, MUT_NONE, 0,
	 TOKEN_KID, NULL},
	{"kid missing", "{\"alg\":\"RS256\"}", GOOD, SIG_RS256, MUT_NONE, 0, TOKEN_MALFORMED, NULL},
	{"kid a number", "{\"alg\":\"RS256\",\"kid\":1}", GOOD, SIG_RS256, MUT_NONE, 0,
	 TOKEN_MALFORMED, NULL},
	{"ES256 naming the RSA key", "{\"alg\":\"ES256\",\"kid\":\"rsa1\"}", GOOD, SIG_ES256,
	 MUT_NONE, 0, TOKEN_KID, NULL},
	{"RS256 naming the EC key", "{\"alg\":\"RS256\",\"kid\":\"ec1\"}", GOOD, SIG_RS256,
	 MUT_NONE, 0, TOKEN_KID, NULL},
	{"ES256 naming the P-384 key", "{\"alg\":\"ES256\",\"kid\":\"ec384\"}", GOOD, SIG_ES256,
	 MUT_NONE, 0, TOKEN_KID, NULL},
	{"ES384 naming the P-256 key", "{\"alg\":\"ES384\",\"kid\":\"ec1\"}", GOOD, SIG_ES384,
	 MUT_NONE, 0, TOKEN_KID, NULL},
	{"RS256 on the key pinned to RS384", "{\"alg\":\"RS256\",\"kid\":\"rsa1-rs384\"}", GOOD,
	 SIG_RS256, MUT_NONE, 0, TOKEN_KID, NULL},
	{"PS256 on the key pinned to RS384", "{\"alg\":\"PS256\",\"kid\":\"rsa1-rs384\"}", GOOD,
	 SIG_PS256, MUT_NONE, 0, TOKEN_KID, NULL},

	/* signature */
	{"RS256 signed by another key", H_RS256, GOOD, SIG_OTHER, MUT_NONE, 0, TOKEN_SIGNATURE,
	 NULL},
	{"RS256 header, PS256 signature", H_RS256, GOOD, SIG_PS256, MUT_NONE, 0, TOKEN_SIGNATURE,
	 NULL},
	{"PS256 header, RS256 signature", "{\"alg\":\"PS256\",\"kid\":\"rsa1\"}", GOOD, SIG_RS256,
	 MUT_NONE, 0, TOKEN_SIGNATURE, NULL},
	{"RS384 header, RS256 signature", "{\"alg\":\"RS384\",\"kid\":\"rsa1\"}", GOOD, SIG_RS256,
	 MUT_NONE, 0, TOKEN_SIGNATURE, NULL},
	{"RS256 header, ES256 signature", H_RS256, GOOD, SIG_ES256, MUT_NONE, 0, TOKEN_SIGNATURE,
	 NULL},
	{"RS256 empty signature", H_RS256, GOOD, SIG_EMPTY, MUT_NONE, 0, TOKEN_SIGNATURE, NULL},
	{"ES256 empty signature", H_ES256, GOOD, SIG_EMPTY, MUT_NONE, 0, TOKEN_SIGNATURE, NULL},
	{"RS256 bit flipped", H_RS256, GOOD, SIG_RS256, MUT_SIG_FLIP, 0, TOKEN_SIGNATURE, NULL},
	{"ES256 bit flipped", H_ES256, GOOD, SIG_ES256, MUT_SIG_FLIP, 0, TOKEN_SIGNATURE, NULL},
	{"ES256 byte appended", H_ES256, GOOD, SIG_ES256, MUT_SIG_APPEND, 0, TOKEN_SIGNATURE, NULL},
	{"RS256 byte appended", H_RS256, GOOD, SIG_RS256, MUT_SIG_APPEND, 0, TOKEN_SIGNATURE, NULL},
	{"PS256 byte dropped", "{\"alg\":\"PS256\",\"kid\":\"rsa1\"}", GOOD, SIG_PS256,
	 MUT_SIG_TRUNC, 0, TOKEN_SIGNATURE, NULL},
	{"ES256 byte dropped", H_ES256, GOOD, SIG_ES256, MUT_SIG_TRUNC, 0, TOKEN_SIGNATURE, NULL},
	{"payload swapped after signing", H_RS256, GOOD, SIG_RS256, MUT_PAYLOAD_SWAP, 0,
	 TOKEN_SIGNATURE, NULL},
	{"ES256 non-canonical base64url", H_ES256, GOOD, SIG_ES256, MUT_SIG_NONCANON, 0,
	 TOKEN_MALFORMED, NULL},
	{"RS256 non-canonical base64url", H_RS256, GOOD, SIG_RS256, MUT_SIG_NONCANON, 0,
	 TOKEN_MALFORMED, NULL},
	{"ES256 padded base64url", H_ES256, GOOD, SIG_ES256, MUT_SIG_PAD, 0, TOKEN_MALFORMED, NULL},

	/* crit and the key-carrying headers */
	{"crit", "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"crit\":[\"exp\"],\"exp\":1}", GOOD,
	 SIG_RS256, MUT_NONE, 0, TOKEN_MALFORMED, NULL},
	{"crit empty", "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"crit\":[]}", GOOD, SIG_RS256,
	 MUT_NONE, 0, TOKEN_MALFORMED, NULL},
	{"crit b64", "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"b64\":false,\"crit\":[\"b64\"]}", GOOD,
	 SIG_RS256, MUT_NONE, 0, TOKEN_MALFORMED, NULL},
	{"jku ignored, honest signature",
	 "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"jku\":\"https://evil.example/jwks\"}", GOOD,
	 SIG_RS256, MUT_NONE, 0, TOKEN_OK, "alice"},
	{"jku ignored, attacker's signature",
	 "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"jku\":\"https://evil.example/jwks\"}", GOOD,
	 SIG_OTHER, MUT_NONE, 0, TOKEN_SIGNATURE, NULL},
	{"x5u ignored, attacker's signature",
	 "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"x5u\":\"https://evil.example/cert.pem\"}", GOOD,
	 SIG_OTHER, MUT_NONE, 0, TOKEN_SIGNATURE, NULL},
	{"x5c ignored, attacker's signature",
	 "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"x5c\":[\"MIIBIjANBgkq\"]}", GOOD, SIG_OTHER,
	 MUT_NONE, 0, TOKEN_SIGNATURE, NULL},
	{"jku to nowhere, kid unknown",
	 "{\"alg\":\"RS256\",\"kid\":\"attacker\",\"jku\":\"https://evil.example/jwks\"}", GOOD,
	 SIG_OTHER, MUT_NONE, 0, TOKEN_KID, NULL},

	/* exp */
	{"expired long ago", H_RS256, "{" IA ",\"sub\":\"alice\",\"exp\":1700000000}", SIG_RS256,
	 MUT_NONE, 0, TOKEN_EXPIRED, "alice"},
	{"exp missing", H_RS256, "{" IA ",\"sub\":\"alice\",\"scope\":\"print\"}", SIG_RS256,
	 MUT_NONE, 0, TOKEN_EXPIRED, "alice"},
	{"exp a string", H_RS256, "{" IA ",\"sub\":\"alice\",\"exp\":\"1800003600\"}", SIG_RS256,
	 MUT_NONE, 0, TOKEN_EXPIRED, "alice"},
	{"exp null", H_RS256, "{" IA ",\"sub\":\"alice\",\"exp\":null}", SIG_RS256, MUT_NONE, 0,
	 TOKEN_EXPIRED, "alice"},
	{"exp true", H_RS256, "{" IA ",\"sub\":\"alice\",\"exp\":true}", SIG_RS256, MUT_NONE, 0,
	 TOKEN_EXPIRED, "alice"},
	{"exp with a fraction", H_RS256, "{" IA ",\"sub\":\"alice\",\"exp\":1800003600.5}",
	 SIG_RS256, MUT_NONE, 0, TOKEN_EXPIRED, "alice"},
	{"exp negative", H_RS256, "{" IA ",\"sub\":\"alice\",\"exp\":-1}", SIG_RS256, MUT_NONE, 0,
	 TOKEN_EXPIRED, "alice"},
	{"exp as a whole real", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"scope\":\"print\",\"exp\":1800003600.0}", SIG_RS256, MUT_NONE,
	 0, TOKEN_OK, "alice"},
	{"exp in exponent form", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"scope\":\"print\",\"exp\":1.8000036e9}", SIG_RS256, MUT_NONE,
	 0, TOKEN_OK, "alice"},
	{"exp near INT64_MAX saturates", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"scope\":\"print\",\"exp\":9223372036854775807}", SIG_RS256,
	 MUT_NONE, 0, TOKEN_OK, "alice"},
	{"exp 1e300 saturates", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"scope\":\"print\",\"exp\":1e300}", SIG_RS256, MUT_NONE, 0,
	 TOKEN_OK, "alice"},
	{"exp beyond int64 is not JSON we take", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"exp\":9223372036854775808}", SIG_RS256, MUT_NONE, 0,
	 TOKEN_MALFORMED, NULL},
	{"expired, owner invalid: owner untouched", H_RS256, "{" IA ",\"sub\":\"\",\"exp\":1}",
	 SIG_RS256, MUT_NONE, 0, TOKEN_EXPIRED, NULL},
	/* exp + skew == now passes; a millisecond later it does not */
	{"exp at the skew edge", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"scope\":\"print\",\"exp\":1799999940}", SIG_RS256, MUT_NONE,
	 0, TOKEN_OK, "alice"},
	{"exp 1 ms past the skew edge", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"scope\":\"print\",\"exp\":1799999940}", SIG_RS256, MUT_NONE,
	 1, TOKEN_EXPIRED, "alice"},
	{"exp 1 s past the skew edge", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"scope\":\"print\",\"exp\":1799999939}", SIG_RS256, MUT_NONE,
	 0, TOKEN_EXPIRED, "alice"},

	/* nbf and iat */
	{"nbf past", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"scope\":\"print\",\"exp\":1800003600,\"nbf\":1799990000}",
	 SIG_RS256, MUT_NONE, 0, TOKEN_OK, "alice"},
	{"nbf at the skew edge", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"scope\":\"print\",\"exp\":1800003600,\"nbf\":1800000060}",
	 SIG_RS256, MUT_NONE, 0, TOKEN_OK, "alice"},
	{"nbf 1 ms before the skew edge", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"scope\":\"print\",\"exp\":1800003600,\"nbf\":1800000060}",
	 SIG_RS256, MUT_NONE, -1, TOKEN_NOT_YET, "alice"},
	{"nbf future", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"scope\":\"print\",\"exp\":1800003600,\"nbf\":1800000061}",
	 SIG_RS256, MUT_NONE, 0, TOKEN_NOT_YET, "alice"},
	{"nbf a string", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"scope\":\"print\",\"exp\":1800003600,\"nbf\":\"0\"}",
	 SIG_RS256, MUT_NONE, 0, TOKEN_NOT_YET, "alice"},
	{"iat past", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"scope\":\"print\",\"exp\":1800003600,\"iat\":1799999000}",
	 SIG_RS256, MUT_NONE, 0, TOKEN_OK, "alice"},
	{"iat at the skew edge", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"scope\":\"print\",\"exp\":1800003600,\"iat\":1800000060}",
	 SIG_RS256, MUT_NONE, 0, TOKEN_OK, "alice"},
	{"iat future", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"scope\":\"print\",\"exp\":1800003600,\"iat\":1800000061}",
	 SIG_RS256, MUT_NONE, 0, TOKEN_NOT_YET, "alice"},
	{"iat with a fraction", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"scope\":\"print\",\"exp\":1800003600,\"iat\":1.5}", SIG_RS256,
	 MUT_NONE, 0, TOKEN_NOT_YET, "alice"},
	{"expired wins over not yet", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"exp\":1700000000,\"nbf\":1900000000}", SIG_RS256, MUT_NONE, 0,
	 TOKEN_EXPIRED, "alice"},

	/* iss */
	{"iss other", H_RS256,
	 "{\"iss\":\"https://evil.example/\",\"aud\":\"" AUD "\",\"sub\":\"alice\","
	 "\"scope\":\"print\",\"exp\":1800003600}",
	 SIG_RS256, MUT_NONE, 0, TOKEN_ISSUER, "alice"},
	{"iss without the slash", H_RS256,
	 "{\"iss\":\"https://idp.example.com\",\"aud\":\"" AUD "\",\"sub\":\"alice\","
	 "\"scope\":\"print\",\"exp\":1800003600}",
	 SIG_RS256, MUT_NONE, 0, TOKEN_ISSUER, "alice"},
	{"iss missing", H_RS256,
	 "{\"aud\":\"" AUD "\",\"sub\":\"alice\",\"scope\":\"print\",\"exp\":1800003600}",
	 SIG_RS256, MUT_NONE, 0, TOKEN_ISSUER, "alice"},
	{"iss in an array", H_RS256,
	 "{\"iss\":[\"" ISS "\"],\"aud\":\"" AUD "\",\"sub\":\"alice\",\"scope\":\"print\","
	 "\"exp\":1800003600}",
	 SIG_RS256, MUT_NONE, 0, TOKEN_ISSUER, "alice"},

	/* aud */
	{"aud array holding ours", H_RS256,
	 "{\"iss\":\"" ISS "\",\"aud\":[\"other\",\"" AUD "\"],\"sub\":\"alice\","
	 "\"scope\":\"print\",\"exp\":1800003600}",
	 SIG_RS256, MUT_NONE, 0, TOKEN_OK, "alice"},
	{"aud array without ours", H_RS256,
	 "{\"iss\":\"" ISS "\",\"aud\":[\"other\",\"fs-gateway2\"],\"sub\":\"alice\","
	 "\"scope\":\"print\",\"exp\":1800003600}",
	 SIG_RS256, MUT_NONE, 0, TOKEN_AUDIENCE, "alice"},
	{"aud empty array", H_RS256,
	 "{\"iss\":\"" ISS "\",\"aud\":[],\"sub\":\"alice\",\"scope\":\"print\","
	 "\"exp\":1800003600}",
	 SIG_RS256, MUT_NONE, 0, TOKEN_AUDIENCE, "alice"},
	{"aud array with a non-string", H_RS256,
	 "{\"iss\":\"" ISS "\",\"aud\":[\"" AUD "\",1],\"sub\":\"alice\",\"scope\":\"print\","
	 "\"exp\":1800003600}",
	 SIG_RS256, MUT_NONE, 0, TOKEN_AUDIENCE, "alice"},
	{"aud other string", H_RS256,
	 "{\"iss\":\"" ISS "\",\"aud\":\"fs-gatewa\",\"sub\":\"alice\",\"scope\":\"print\","
	 "\"exp\":1800003600}",
	 SIG_RS256, MUT_NONE, 0, TOKEN_AUDIENCE, "alice"},
	{"aud missing", H_RS256,
	 "{\"iss\":\"" ISS "\",\"sub\":\"alice\",\"scope\":\"print\",\"exp\":1800003600}",
	 SIG_RS256, MUT_NONE, 0, TOKEN_AUDIENCE, "alice"},

	/* owner */
	{"sub missing", H_RS256, "{" IA ",\"scope\":\"print\",\"exp\":1800003600}", SIG_RS256,
	 MUT_NONE, 0, TOKEN_OWNER, NULL},
	{"sub a number", H_RS256, "{" IA ",\"sub\":42,\"scope\":\"print\",\"exp\":1800003600}",
	 SIG_RS256, MUT_NONE, 0, TOKEN_OWNER, NULL},
	{"sub empty", H_RS256, "{" IA ",\"sub\":\"\",\"scope\":\"print\",\"exp\":1800003600}",
	 SIG_RS256, MUT_NONE, 0, TOKEN_OWNER, NULL},
	{"sub with a newline", H_RS256,
	 "{" IA ",\"sub\":\"alice\\nX-Admin: 1\",\"scope\":\"print\",\"exp\":1800003600}",
	 SIG_RS256, MUT_NONE, 0, TOKEN_OWNER, NULL},
	{"sub with BEL", H_RS256,
	 "{" IA ",\"sub\":\"al\\u0007ice\",\"scope\":\"print\",\"exp\":1800003600}", SIG_RS256,
	 MUT_NONE, 0, TOKEN_OWNER, NULL},
	{"sub with a C1 control", H_RS256,
	 "{" IA ",\"sub\":\"al\\u0085ice\",\"scope\":\"print\",\"exp\":1800003600}", SIG_RS256,
	 MUT_NONE, 0, TOKEN_OWNER, NULL},
	{"sub with NUL", H_RS256,
	 "{" IA ",\"sub\":\"al\\u0000ice\",\"scope\":\"print\",\"exp\":1800003600}", SIG_RS256,
	 MUT_NONE, 0, TOKEN_MALFORMED, NULL},
	{"issuer checked before owner", H_RS256,
	 "{\"iss\":\"x\",\"aud\":\"" AUD "\",\"sub\":42,\"exp\":1800003600}", SIG_RS256, MUT_NONE,
	 0, TOKEN_ISSUER, NULL},

	/* scope (required: print) */
	{"scope only print", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"scope\":\"print\",\"exp\":1800003600}", SIG_RS256, MUT_NONE,
	 0, TOKEN_OK, "alice"},
	{"scope print first", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"scope\":\"print openid\",\"exp\":1800003600}", SIG_RS256,
	 MUT_NONE, 0, TOKEN_OK, "alice"},
	{"scope missing", H_RS256, "{" IA ",\"sub\":\"alice\",\"exp\":1800003600}", SIG_RS256,
	 MUT_NONE, 0, TOKEN_SCOPE, "alice"},
	{"scope printer", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"scope\":\"openid printer\",\"exp\":1800003600}", SIG_RS256,
	 MUT_NONE, 0, TOKEN_SCOPE, "alice"},
	{"scope PRINT", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"scope\":\"PRINT\",\"exp\":1800003600}", SIG_RS256, MUT_NONE,
	 0, TOKEN_SCOPE, "alice"},
	{"scope print:all", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"scope\":\"print:all\",\"exp\":1800003600}", SIG_RS256,
	 MUT_NONE, 0, TOKEN_SCOPE, "alice"},
	{"scope as an array", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"scope\":[\"print\"],\"exp\":1800003600}", SIG_RS256, MUT_NONE,
	 0, TOKEN_SCOPE, "alice"},
	{"scope empty", H_RS256, "{" IA ",\"sub\":\"alice\",\"scope\":\"\",\"exp\":1800003600}",
	 SIG_RS256, MUT_NONE, 0, TOKEN_SCOPE, "alice"},
	{"scope check after owner", H_RS256, "{" IA ",\"exp\":1800003600}", SIG_RS256, MUT_NONE, 0,
	 TOKEN_OWNER, NULL},

	/* JSON: duplicates and shapes */
	{"duplicate alg in header", "{\"alg\":\"RS256\",\"alg\":\"none\",\"kid\":\"rsa1\"}", GOOD,
	 SIG_RS256, MUT_NONE, 0, TOKEN_MALFORMED, NULL},
	{"duplicate kid in header", "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"kid\":\"ec1\"}", GOOD,
	 SIG_RS256, MUT_NONE, 0, TOKEN_MALFORMED, NULL},
	{"duplicate sub in payload", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"sub\":\"mallory\",\"scope\":\"print\",\"exp\":1800003600}",
	 SIG_RS256, MUT_NONE, 0, TOKEN_MALFORMED, NULL},
	{"duplicate exp in payload", H_RS256,
	 "{" IA ",\"sub\":\"alice\",\"scope\":\"print\",\"exp\":1,\"exp\":1800003600}", SIG_RS256,
	 MUT_NONE, 0, TOKEN_MALFORMED, NULL},
	{"header an array", "[\"RS256\"]", GOOD, SIG_RS256, MUT_NONE, 0, TOKEN_MALFORMED, NULL},
	{"header a string", "\"RS256\"", GOOD, SIG_RS256, MUT_NONE, 0, TOKEN_MALFORMED, NULL},
	{"header not JSON", "{alg:RS256}", GOOD, SIG_RS256, MUT_NONE, 0, TOKEN_MALFORMED, NULL},
	{"header with trailing bytes", H_RS256 "x", GOOD, SIG_RS256, MUT_NONE, 0, TOKEN_MALFORMED,
	 NULL},
	{"header empty", "", GOOD, SIG_RS256, MUT_NONE, 0, TOKEN_MALFORMED, NULL},
	{"header Latin-1", "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"x\":\"caf\xe9\"}", GOOD,
	 SIG_RS256, MUT_NONE, 0, TOKEN_MALFORMED, NULL},
	{"payload an array, signed", H_RS256, "[1]", SIG_RS256, MUT_NONE, 0, TOKEN_MALFORMED, NULL},
	{"payload not JSON, signed", H_RS256, "sub=alice", SIG_RS256, MUT_NONE, 0, TOKEN_MALFORMED,
	 NULL},
	{"payload empty, signed", H_RS256, "", SIG_RS256, MUT_NONE, 0, TOKEN_MALFORMED, NULL},
	{"payload not JSON, unsigned", H_RS256, "sub=alice", SIG_OTHER, MUT_NONE, 0,
	 TOKEN_SIGNATURE, NULL},
};

Test(token, table)
{
	for (size_t i = 0; i < sizeof(tok_cases) / sizeof(tok_cases[0]); i++) {
		const struct tok_case *c = &tok_cases[i];
		char *tok = mint(c->header, c->payload, c->signer, c->mut);
		char *auth = bearer(tok);
		char owner[OWNER_MAX + 1];
		size_t owner_len = 9999;
		enum token_result r;

		memset(owner, 'Z', sizeof(owner));
		r = token_verify(K.v, auth, strlen(auth), NOW_MS + c->now_delta_ms, owner,
				 &owner_len);
		cr_expect_eq(r, c->want, "case %zu (%s): %s, expected %s", i, c->name,
			     token_result_name(r), token_result_name(c->want));
		if (c->owner) {
			cr_expect_eq(owner_len, strlen(c->owner), "case %zu (%s)", i, c->name);
			cr_expect_str_eq(owner, c->owner, "case %zu (%s)", i, c->name);
		} else {
			cr_expect_eq(owner_len, 9999, "case %zu (%s): owner written", i, c->name);
			cr_expect_eq(owner[0], 'Z', "case %zu (%s): owner written", i, c->name);
		}
		free(auth);
		free(tok);
	}
}

struct auth_case {
	const char *prefix; /* before the valid token */
	const char *suffix; /* after it */
	int with_token;
	enum token_result want;
};

static const struct auth_case auth_cases[] = {
	{"Bearer ", "", 1, TOKEN_OK},
	{"bearer ", "", 1, TOKEN_OK},
	{"BEARER ", "", 1, TOKEN_OK},
	{"bEaReR ", "", 1, TOKEN_OK},
	{"Bearer  ", "", 1, TOKEN_MALFORMED}, /* two spaces */
	{"Bearer\t", "", 1, TOKEN_MALFORMED},
	{"Bearer ", " ", 1, TOKEN_MALFORMED},
	{"Bearer ", "\t", 1, TOKEN_MALFORMED},
	{"Bearer ", "\r\n", 1, TOKEN_MALFORMED},
	{"Bearer ", " x", 1, TOKEN_MALFORMED},
	{"Bearer ", ".", 1, TOKEN_MALFORMED},  /* three dots */
	{"Bearer ", ".x", 1, TOKEN_MALFORMED}, /* four parts */
	{"Bearer ", "=", 1, TOKEN_MALFORMED},
	{"Bearer ", "", 0, TOKEN_MALFORMED}, /* "Bearer " and nothing */
	{"Bearer", "", 0, TOKEN_MALFORMED},
	{"Bearer ", "abc", 0, TOKEN_MALFORMED},	      /* no dot */
	{"Bearer ", "a.b", 0, TOKEN_MALFORMED},	      /* one dot */
	{"Bearer ", "..", 0, TOKEN_MALFORMED},	      /* empty parts: header is not JSON */
	{"Bearer ", "e30.e30.", 0, TOKEN_MALFORMED},  /* {} header: no alg */
	{"Bearer ", "a.b.c.d.e", 0, TOKEN_MALFORMED}, /* JWE compact form */
	{"Bearer ", "eyJhbGciOiJSUzI1NiJ9+.e30.AA", 0, TOKEN_MALFORMED}, /* standard alphabet */
	{"Bearer ", "eyJhbGciOiJSUzI1NiJ9/.e30.AA", 0, TOKEN_MALFORMED},
	{"Bearer ", "eyJhbGciOiJSUzI1NiJ9=.e30.AA", 0, TOKEN_MALFORMED},
	{"Bearer ", "eyJhbGciOiJSUzI1NiJ9A.e30.AA", 0, TOKEN_MALFORMED}, /* length 4k+1 */
	{"Bearer ", "eyJhbGciOiJSUzI1NiJ9.e30.A", 0, TOKEN_MALFORMED},
	{"Bearer ", "eyJhbGciOiJSUzI1NiJ\xc3\xa9.e30.AA", 0, TOKEN_MALFORMED}, /* non-ASCII */
	{"Basic ", "", 1, TOKEN_MISSING},
	{"Basic dXNlcjpwYXNz", "", 0, TOKEN_MISSING},
	{"Bearerx ", "", 1, TOKEN_MISSING},
	{"Bear ", "", 1, TOKEN_MISSING},
	{" Bearer ", "", 1, TOKEN_MISSING},
	{"DPoP ", "", 1, TOKEN_MISSING},
	{"", "", 1, TOKEN_MISSING}, /* a bare token: no scheme */
	{"", "", 0, TOKEN_MISSING}, /* empty value */
};

Test(token, authorization_forms)
{
	char *tok = mint(H_RS256, GOOD, SIG_RS256, MUT_NONE);
	char owner[OWNER_MAX + 1];
	size_t owner_len;

	for (size_t i = 0; i < sizeof(auth_cases) / sizeof(auth_cases[0]); i++) {
		const struct auth_case *c = &auth_cases[i];
		char auth[4096];
		enum token_result r;

		snprintf(auth, sizeof(auth), "%s%s%s", c->prefix, c->with_token ? tok : "",
			 c->suffix);
		r = token_verify(K.v, auth, strlen(auth), NOW_MS, owner, &owner_len);
		cr_expect_eq(r, c->want, "case %zu (\"%s\"...\"%s\"): %s, expected %s", i,
			     c->prefix, c->suffix, token_result_name(r),
			     token_result_name(c->want));
	}
	free(tok);
}

Test(token, length_counts_not_nul_and_never_reads_past_len)
{
	char *tok = mint(H_RS256, GOOD, SIG_RS256, MUT_NONE);
	char *auth = bearer(tok), *copy;
	size_t len = strlen(auth);
	char owner[OWNER_MAX + 1];
	size_t owner_len;

	cr_expect_eq(token_verify(K.v, NULL, 0, NOW_MS, owner, &owner_len), TOKEN_MISSING);
	cr_expect_eq(token_verify(K.v, NULL, 10, NOW_MS, owner, &owner_len), TOKEN_MISSING);
	/* a NUL inside len is a byte like any other, and not a token character */
	auth[len / 2] = '\0';
	cr_expect_eq(token_verify(K.v, auth, len, NOW_MS, owner, &owner_len), TOKEN_MALFORMED);
	/* exactly len bytes, nothing after them: ASan catches a read past the end */
	free(auth);
	auth = bearer(tok);
	copy = malloc(len);
	cr_assert_not_null(copy);
	memcpy(copy, auth, len);
	cr_expect_eq(token_verify(K.v, copy, len, NOW_MS, owner, &owner_len), TOKEN_OK);
	/* prefixes of a good value: 341 base64url characters cannot be, 340 are 255 bytes */
	cr_expect_eq(token_verify(K.v, copy, len - 1, NOW_MS, owner, &owner_len), TOKEN_MALFORMED);
	cr_expect_eq(token_verify(K.v, copy, len - 2, NOW_MS, owner, &owner_len), TOKEN_SIGNATURE);
	free(copy);
	/* owner arguments may be NULL */
	cr_expect_eq(token_verify(K.v, auth, len, NOW_MS, NULL, NULL), TOKEN_OK);
	free(auth);
	free(tok);
}

static char *auth_padded(const char *header, size_t px)
{
	char *payload = malloc(px + 256), *tok, *auth;

	cr_assert_not_null(payload);
	snprintf(payload, px + 256,
		 "{" IA ",\"sub\":\"alice\",\"scope\":\"print\",\"exp\":1800003600,\"x\":\"%0*d\"}",
		 (int)px, 0);
	tok = mint(header, payload, SIG_RS256, MUT_NONE);
	auth = bearer(tok);
	free(tok);
	free(payload);
	return auth;
}

/* A good token whose Authorization value is exactly want bytes long (padding claims "x"). */
static char *auth_of_len(size_t want)
{
	char header[128];

	/* base64url lengths skip 4k+1: two padded parts reach every total */
	for (size_t hx = 0; hx < 3; hx++) {
		char *auth;
		size_t base, est;

		snprintf(header, sizeof(header),
			 "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"x\":\"%.*s\"}", (int)hx, "aaa");
		auth = auth_padded(header, 1);
		base = strlen(auth);
		free(auth);
		est = want > base ? (want - base) * 3 / 4 : 0;
		for (size_t px = est > 4 ? est - 4 : 1; px < est + 8; px++) {
			auth = auth_padded(header, px);
			if (strlen(auth) == want)
				return auth;
			free(auth);
		}
	}
	cr_assert_fail("no token of length %zu", want);
	return NULL;
}

Test(token, size_limit_before_parsing)
{
	char *at = auth_of_len(TOKEN_MAX_DEFAULT), *over = auth_of_len(TOKEN_MAX_DEFAULT + 1);
	char *junk = malloc(TOKEN_MAX_DEFAULT + 1);
	struct token_verifier *small;
	char *small_at, *small_over;

	cr_assert_not_null(junk);
	cr_expect_eq(token_verify(K.v, at, strlen(at), NOW_MS, NULL, NULL), TOKEN_OK);
	cr_expect_eq(token_verify(K.v, over, strlen(over), NOW_MS, NULL, NULL), TOKEN_TOO_LONG);
	/* too long wins over every other fault: nothing is looked at */
	memset(junk, '\n', TOKEN_MAX_DEFAULT + 1);
	memcpy(junk, "Basic ", 6);
	cr_expect_eq(token_verify(K.v, junk, TOKEN_MAX_DEFAULT + 1, NOW_MS, NULL, NULL),
		     TOKEN_TOO_LONG);
	cr_expect_eq(token_verify(K.v, junk, TOKEN_MAX_DEFAULT, NOW_MS, NULL, NULL), TOKEN_MISSING);
	cr_expect_eq(token_verify(K.v, junk, SIZE_MAX, NOW_MS, NULL, NULL), TOKEN_TOO_LONG);

	/* a configured limit */
	small = verifier(K.jwks, ALGS, "print", 1000);
	small_at = auth_of_len(1000);
	small_over = auth_of_len(1001);
	cr_expect_eq(token_verify(small, small_at, 1000, NOW_MS, NULL, NULL), TOKEN_OK);
	cr_expect_eq(token_verify(small, small_over, 1001, NOW_MS, NULL, NULL), TOKEN_TOO_LONG);
	cr_expect_eq(token_verify(K.v, small_over, 1001, NOW_MS, NULL, NULL), TOKEN_OK);
	token_verifier_free(small);
	free(small_at);
	free(small_over);
	free(junk);
	free(at);
	free(over);
}

static enum token_result check_payload(const struct token_verifier *v, const char *payload,
				       char *owner, size_t *owner_len)
{
	char *tok = mint(H_RS256, payload, SIG_RS256, MUT_NONE);
	char *auth = bearer(tok);
	enum token_result r = token_verify(v, auth, strlen(auth), NOW_MS, owner, owner_len);

	free(auth);
	free(tok);
	return r;
}

Test(token, owner_length_limit)
{
	char sub[OWNER_MAX + 2], payload[1024], owner[OWNER_MAX + 1];
	size_t owner_len = 0;

	memset(sub, 'a', sizeof(sub));
	sub[OWNER_MAX] = '\0';
	snprintf(payload, sizeof(payload),
		 "{" IA ",\"sub\":\"%s\",\"scope\":\"print\",\"exp\":1800003600}", sub);
	cr_expect_eq(check_payload(K.v, payload, owner, &owner_len), TOKEN_OK);
	cr_expect_eq(owner_len, OWNER_MAX);
	cr_expect_str_eq(owner, sub);
	sub[OWNER_MAX] = 'a';
	sub[OWNER_MAX + 1] = '\0';
	snprintf(payload, sizeof(payload),
		 "{" IA ",\"sub\":\"%s\",\"scope\":\"print\",\"exp\":1800003600}", sub);
	owner_len = 9999;
	cr_expect_eq(check_payload(K.v, payload, owner, &owner_len), TOKEN_OWNER);
	cr_expect_eq(owner_len, 9999);
}

Test(token, owner_claim_and_scope_configurable)
{
	struct token_config cfg = {
		.jwks_json = K.jwks,
		.algorithms = "RS256",
		.issuer = ISS,
		.audience = AUD,
		.owner_claim = "preferred_username",
		.required_scope = "",
		.skew_ms = 0,
		.max_len = 0,
	};
	char err[256] = "", owner[OWNER_MAX + 1];
	size_t owner_len = 0;
	struct token_verifier *v;

	/* RS256 only: the main set's EC keys fit nothing and are skipped; its RSA keys serve */
	v = token_verifier_new(&cfg, err, sizeof(err));
	cr_expect_not_null(v, "%s", err);
	token_verifier_free(v);
	{
		char jwks[8192];

		snprintf(jwks, sizeof(jwks), "{\"keys\":[%s]}", K.jwk_rsa1);
		cfg.jwks_json = jwks;
		v = token_verifier_new(&cfg, err, sizeof(err));
	}
	cr_assert_not_null(v, "%s", err);
	cr_expect_eq(check_payload(v,
				   "{" IA ",\"sub\":\"alice\",\"preferred_username\":\"bob\","
				   "\"exp\":1800003600}",
				   owner, &owner_len),
		     TOKEN_OK);
	cr_expect_str_eq(owner, "bob");
	cr_expect_eq(owner_len, 3);
	/* sub is no longer the owner */
	cr_expect_eq(check_payload(v, "{" IA ",\"sub\":\"alice\",\"exp\":1800003600}", owner,
				   &owner_len),
		     TOKEN_OWNER);
	/* skew 0: exp == now passes, one ms later not */
	cr_expect_eq(check_payload(v, "{" IA ",\"preferred_username\":\"bob\",\"exp\":1800000000}",
				   owner, &owner_len),
		     TOKEN_OK);
	cr_expect_eq(check_payload(v, "{" IA ",\"preferred_username\":\"bob\",\"exp\":1799999999}",
				   owner, &owner_len),
		     TOKEN_EXPIRED);
	token_verifier_free(v);
}

/* A token minted by cjose itself, from a key cjose made, verifies: both sides agree on JWS. */
Test(token, cjose_minted_token)
{
	static const char payload[] = "{" IA ",\"sub\":\"carol\",\"scope\":\"print\","
				      "\"exp\":1800003600}";
	cjose_err cerr = {0};
	cjose_jwk_t *jwk = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &cerr);
	cjose_header_t *h;
	cjose_jws_t *jws;
	char *pub, jwks[2048], owner[OWNER_MAX + 1], auth[2048];
	const char *compact;
	size_t owner_len = 0;
	struct token_verifier *v;

	cr_assert_not_null(jwk);
	cr_assert(cjose_jwk_set_kid(jwk, "cj1", 3, &cerr));
	pub = cjose_jwk_to_json(jwk, false, &cerr);
	cr_assert_not_null(pub);
	cr_expect(strstr(pub, "\"d\"") == NULL, "private part exported: %s", pub);
	snprintf(jwks, sizeof(jwks), "{\"keys\":[%s]}", pub);
	v = verifier(jwks, "ES256", "print", 0);
	h = cjose_header_new(&cerr);
	cr_assert(cjose_header_set(h, CJOSE_HDR_ALG, CJOSE_HDR_ALG_ES256, &cerr));
	cr_assert(cjose_header_set(h, CJOSE_HDR_KID, "cj1", &cerr));
	cr_assert(cjose_header_set(h, "typ", "JWT", &cerr));
	jws = cjose_jws_sign(jwk, h, (const uint8_t *)payload, strlen(payload), &cerr);
	cr_assert_not_null(jws);
	cr_assert(cjose_jws_export(jws, &compact, &cerr));
	snprintf(auth, sizeof(auth), "Bearer %s", compact);
	cr_expect_eq(token_verify(v, auth, strlen(auth), NOW_MS, owner, &owner_len), TOKEN_OK);
	cr_expect_str_eq(owner, "carol");
	/* the same token against the main verifier: its kid is unknown there */
	cr_expect_eq(token_verify(K.v, auth, strlen(auth), NOW_MS, owner, &owner_len), TOKEN_KID);
	cjose_jws_release(jws);
	cjose_header_release(h);
	cjose_get_dealloc()(pub);
	cjose_jwk_release(jwk);
	token_verifier_free(v);
}

/* JWKS entries the config table combines. */
enum jwk_id {
	J_END = 0,
	J_RSA1,
	J_EC1,
	J_RSA1_AGAIN, /* same kid as J_RSA1, other key */
	J_RSA1_NOKID,
	J_RSA1_EMPTYKID,
	J_RSA1_NUMKID,
	J_RSA1_PRIV, /* with "d" */
	J_RSA1_USE_ENC,
	J_RSA1_USE_NUM,
	J_RSA1_ALG_HS,
	J_RSA1_ALG_ES,
	J_RSA1_ALG_PS512, /* an algorithm not configured */
	J_RSA1_ALG_PS256,
	J_RSA1024,
	J_OCT,
	J_OCT_NOK,
	J_OKP,
	J_EC_K1,
	J_EC_BADPOINT,
	J_EC_NOCRV,
	J_RSA_BAD_N,
	J_RSA_E1, /* e = 1: every message is its own signature */
	J_RSA_E_EVEN,
	J_RSA_E_ZERO,
	J_RSA_NO_E,
	J_NOT_OBJECT,
	J_NOKTY,
	J_COUNT
};

struct cfg_case {
	const char *name;
	const char *algorithms;
	enum jwk_id keys[4]; /* J_END-terminated; none at all: use jwks_raw */
	const char *jwks_raw;
	int64_t skew_ms;
	size_t max_len;
	const char *issuer;
	const char *scope;
	const char *err; /* substring of the reason; NULL: the verifier is built */
};

static const struct cfg_case cfg_cases[] = {
	{"good", ALGS, {J_RSA1, J_EC1}, NULL, 60000, 0, ISS, "print", NULL},
	{"default algorithms", NULL, {J_RSA1, J_EC1}, NULL, 0, 0, ISS, NULL, NULL},
	{"spaces in the list", " RS256 , ES256 ", {J_RSA1, J_EC1}, NULL, 0, 0, ISS, NULL, NULL},
	{"largest skew", "RS256", {J_RSA1}, NULL, TOKEN_SKEW_MAX_MS, 0, ISS, NULL, NULL},
	{"largest max_len", "RS256", {J_RSA1}, NULL, 0, TOKEN_MAX_DEFAULT, ISS, NULL, NULL},
	{"key pinned to a configured alg",
	 "RS256,PS256",
	 {J_RSA1_ALG_PS256},
	 NULL,
	 0,
	 0,
	 ISS,
	 NULL,
	 NULL},
	{"extra JWKS members ignored", "RS256", {J_END}, NULL, 0, 0, ISS, NULL, NULL},
	{"HS256 in the list", "RS256,HS256", {J_RSA1}, NULL, 0, 0, ISS, NULL, "HMAC"},
	{"hs512 lowercase", "hs512", {J_RSA1}, NULL, 0, 0, ISS, NULL, "HMAC"},
	{"none", "none", {J_RSA1}, NULL, 0, 0, ISS, NULL, "none"},
	{"NONE among others", "RS256,NONE", {J_RSA1}, NULL, 0, 0, ISS, NULL, "none"},
	{"unknown algorithm", "RS256,EdDSA", {J_RSA1}, NULL, 0, 0, ISS, NULL, "unknown"},
	{"algorithm in lowercase", "rs256", {J_RSA1}, NULL, 0, 0, ISS, NULL, "unknown"},
	{"empty algorithm list", "", {J_RSA1}, NULL, 0, 0, ISS, NULL, "empty"},
	{"trailing comma", "RS256,", {J_RSA1}, NULL, 0, 0, ISS, NULL, "empty"},
	{"empty entry", "RS256,,ES256", {J_RSA1}, NULL, 0, 0, ISS, NULL, "empty"},
	{"empty JWKS", "RS256", {J_END}, "{\"keys\":[]}", 0, 0, ISS, NULL, "empty"},
	{"JWKS without keys", "RS256", {J_END}, "{\"kid\":\"x\"}", 0, 0, ISS, NULL, "keys"},
	{"JWKS keys not an array", "RS256", {J_END}, "{\"keys\":{}}", 0, 0, ISS, NULL, "keys"},
	{"JWKS an array", "RS256", {J_END}, "[]", 0, 0, ISS, NULL, "keys"},
	{"JWKS not JSON", "RS256", {J_END}, "{\"keys\":[", 0, 0, ISS, NULL, "not valid JSON"},
	{"JWKS empty text", "RS256", {J_END}, "", 0, 0, ISS, NULL, "not valid JSON"},
	{"JWKS duplicate member",
	 "RS256",
	 {J_END},
	 "{\"keys\":[],\"keys\":[]}",
	 0,
	 0,
	 ISS,
	 NULL,
	 "not valid JSON"},
	{"duplicate kid",
	 ALGS,
	 {J_RSA1, J_EC1, J_RSA1_AGAIN},
	 NULL,
	 0,
	 0,
	 ISS,
	 NULL,
	 "used twice"},
	{"key without kid", "RS256", {J_RSA1_NOKID}, NULL, 0, 0, ISS, NULL, "no \"kid\""},
	{"key with empty kid", "RS256", {J_RSA1_EMPTYKID}, NULL, 0, 0, ISS, NULL, "no \"kid\""},
	{"key with numeric kid", "RS256", {J_RSA1_NUMKID}, NULL, 0, 0, ISS, NULL, "no \"kid\""},
	{"private key", "RS256", {J_RSA1_PRIV}, NULL, 0, 0, ISS, NULL, "private"},
	/* keys this gateway cannot use are skipped; a set with none left is refused */
	{"use enc", "RS256", {J_RSA1_USE_ENC}, NULL, 0, 0, ISS, NULL, "no key usable"},
	{"use enc beside a signing key", "RS256", {J_EC1, J_RSA1_USE_ENC, J_RSA1}, NULL, 0, 0, ISS,
	 NULL, NULL},
	{"use a number", "RS256", {J_RSA1_USE_NUM}, NULL, 0, 0, ISS, NULL, "use"},
	{"key alg HS256", "RS256", {J_RSA1_ALG_HS}, NULL, 0, 0, ISS, NULL, "no key usable"},
	{"key alg of another type",
	 "RS256,ES256",
	 {J_RSA1_ALG_ES},
	 NULL,
	 0,
	 0,
	 ISS,
	 NULL,
	 "\"alg\""},
	{"key alg not configured", "RS256", {J_RSA1_ALG_PS512}, NULL, 0, 0, ISS, NULL,
	 "no key usable"},
	{"RSA 1024", "RS256", {J_RSA1024}, NULL, 0, 0, ISS, NULL, "bits"},
	{"oct key (its secret k is refused first)",
	 "RS256",
	 {J_OCT},
	 NULL,
	 0,
	 0,
	 ISS,
	 NULL,
	 "private"},
	{"oct key without k", "RS256", {J_OCT_NOK}, NULL, 0, 0, ISS, NULL, "no key usable"},
	{"OKP key", "RS256", {J_OKP}, NULL, 0, 0, ISS, NULL, "no key usable"},
	{"no kty", "RS256", {J_NOKTY}, NULL, 0, 0, ISS, NULL, "kty"},
	{"secp256k1", "ES256", {J_EC_K1}, NULL, 0, 0, ISS, NULL, "no key usable"},
	{"EC without crv", "ES256", {J_EC_NOCRV}, NULL, 0, 0, ISS, NULL, "curve"},
	{"EC point not on the curve",
	 "ES256",
	 {J_EC_BADPOINT},
	 NULL,
	 0,
	 0,
	 ISS,
	 NULL,
	 "not a valid key"},
	{"RSA n not base64url", "RS256", {J_RSA_BAD_N}, NULL, 0, 0, ISS, NULL, "\"n\""},
	{"RSA e = 1", "RS256", {J_RSA_E1}, NULL, 0, 0, ISS, NULL, "\"e\""},
	{"RSA e even", "RS256", {J_RSA_E_EVEN}, NULL, 0, 0, ISS, NULL, "\"e\""},
	{"RSA e zero", "RS256", {J_RSA_E_ZERO}, NULL, 0, 0, ISS, NULL, "\"e\""},
	{"RSA without e", "RS256", {J_RSA_NO_E}, NULL, 0, 0, ISS, NULL, "\"e\""},
	{"key not an object",
	 "RS256",
	 {J_RSA1, J_NOT_OBJECT},
	 NULL,
	 0,
	 0,
	 ISS,
	 NULL,
	 "keys[1]: not an object"},
	{"EC key, only RS256 allowed (skipped, the other serves)",
	 "RS256",
	 {J_RSA1, J_EC1},
	 NULL,
	 0,
	 0,
	 ISS,
	 NULL,
	 NULL},
	{"RSA key, only ES256 allowed (skipped, the other serves)",
	 "ES256",
	 {J_EC1, J_RSA1},
	 NULL,
	 0,
	 0,
	 ISS,
	 NULL,
	 NULL},
	{"negative skew", "RS256", {J_RSA1}, NULL, -1, 0, ISS, NULL, "skew"},
	{"skew above the cap",
	 "RS256",
	 {J_RSA1},
	 NULL,
	 TOKEN_SKEW_MAX_MS + 1,
	 0,
	 ISS,
	 NULL,
	 "skew"},
	{"max_len above the cap",
	 "RS256",
	 {J_RSA1},
	 NULL,
	 0,
	 TOKEN_MAX_DEFAULT + 1,
	 ISS,
	 NULL,
	 "max_len"},
	{"no issuer", "RS256", {J_RSA1}, NULL, 0, 0, NULL, NULL, "issuer"},
	{"empty issuer", "RS256", {J_RSA1}, NULL, 0, 0, "", NULL, "issuer"},
	{"scope with a space", "RS256", {J_RSA1}, NULL, 0, 0, ISS, "print admin", "scope"},
	{"scope with a quote", "RS256", {J_RSA1}, NULL, 0, 0, ISS, "pr\"int", "scope"},
};

Test(token, verifier_config)
{
	EVP_PKEY *rsa1024 = EVP_RSA_gen(1024), *rsa_again = EVP_RSA_gen(2048);
	char *jwk[J_COUNT] = {0};
	json_t *rsa1 = json_loads(K.jwk_rsa1, 0, NULL);
	const char *n = json_string_value(json_object_get(rsa1, "n")); /* rsa1's modulus */
	char buf[4096];

	cr_assert(rsa1024 && rsa_again);
	cr_assert_not_null(n);
	jwk[J_RSA1] = strdup(K.jwk_rsa1);
	jwk[J_EC1] = strdup(K.jwk_ec1);
	jwk[J_RSA1_AGAIN] = jwk_json(rsa_again, "rsa1", NULL);
	jwk[J_RSA1_NOKID] = jwk_json(K.rsa1, NULL, NULL);
	jwk[J_RSA1_EMPTYKID] = jwk_json(K.rsa1, "", NULL);
	jwk[J_RSA1_NUMKID] = jwk_json(K.rsa1, NULL, ",\"kid\":7");
	jwk[J_RSA1_PRIV] = jwk_json(K.rsa1, "rsa1", ",\"d\":\"AQAB\"");
	jwk[J_RSA1_USE_ENC] = jwk_json(K.rsa1, "rsa1", ",\"use\":\"enc\"");
	jwk[J_RSA1_USE_NUM] = jwk_json(K.rsa1, "rsa1", ",\"use\":1");
	jwk[J_RSA1_ALG_HS] = jwk_json(K.rsa1, "rsa1", ",\"alg\":\"HS256\"");
	jwk[J_RSA1_ALG_ES] = jwk_json(K.rsa1, "rsa1", ",\"alg\":\"ES256\"");
	jwk[J_RSA1_ALG_PS512] = jwk_json(K.rsa1, "rsa1", ",\"alg\":\"PS512\"");
	jwk[J_RSA1_ALG_PS256] = jwk_json(K.rsa1, "rsa1", ",\"alg\":\"PS256\"");
	jwk[J_RSA1024] = jwk_json(rsa1024, "small", NULL);
	jwk[J_OCT] = strdup("{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"c2VjcmV0c2VjcmV0c2VjcmV0\"}");
	jwk[J_OCT_NOK] = strdup("{\"kty\":\"oct\",\"kid\":\"h\"}");
	jwk[J_OKP] = strdup("{\"kty\":\"OKP\",\"kid\":\"ed\",\"crv\":\"Ed25519\","
			    "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}");
	jwk[J_NOKTY] = strdup("{\"kid\":\"x\",\"n\":\"AQAB\",\"e\":\"AQAB\"}");
	jwk[J_EC_K1] = strdup("{\"kty\":\"EC\",\"kid\":\"k1\",\"crv\":\"secp256k1\","
			      "\"x\":\"AAAA\",\"y\":\"AAAA\"}");
	jwk[J_EC_NOCRV] = strdup("{\"kty\":\"EC\",\"kid\":\"k1\",\"x\":\"AAAA\",\"y\":\"AAAA\"}");
	/* (1, 1) is not on P-256 */
	jwk[J_EC_BADPOINT] = strdup("{\"kty\":\"EC\",\"kid\":\"bad\",\"crv\":\"P-256\","
				    "\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\","
				    "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\"}");
	snprintf(buf, sizeof(buf), "{\"kty\":\"RSA\",\"kid\":\"r\",\"n\":\"%s=\",\"e\":\"AQAB\"}",
		 n);
	jwk[J_RSA_BAD_N] = strdup(buf);
	snprintf(buf, sizeof(buf), "{\"kty\":\"RSA\",\"kid\":\"r\",\"n\":\"%s\",\"e\":\"AQ\"}", n);
	jwk[J_RSA_E1] = strdup(buf);
	snprintf(buf, sizeof(buf), "{\"kty\":\"RSA\",\"kid\":\"r\",\"n\":\"%s\",\"e\":\"AQAA\"}",
		 n);
	jwk[J_RSA_E_EVEN] = strdup(buf);
	snprintf(buf, sizeof(buf), "{\"kty\":\"RSA\",\"kid\":\"r\",\"n\":\"%s\",\"e\":\"AA\"}", n);
	jwk[J_RSA_E_ZERO] = strdup(buf);
	snprintf(buf, sizeof(buf), "{\"kty\":\"RSA\",\"kid\":\"r\",\"n\":\"%s\"}", n);
	jwk[J_RSA_NO_E] = strdup(buf);
	jwk[J_NOT_OBJECT] = strdup("\"rsa1\"");

	for (size_t i = 0; i < sizeof(cfg_cases) / sizeof(cfg_cases[0]); i++) {
		const struct cfg_case *c = &cfg_cases[i];
		char jwks[16384], err[256];
		struct token_config cfg = {
			.jwks_json = jwks,
			.algorithms = c->algorithms,
			.issuer = c->issuer,
			.audience = AUD,
			.owner_claim = NULL,
			.required_scope = c->scope,
			.skew_ms = c->skew_ms,
			.max_len = c->max_len,
		};
		struct token_verifier *v;

		if (c->jwks_raw) {
			snprintf(jwks, sizeof(jwks), "%s", c->jwks_raw);
		} else if (c->keys[0] == J_END) {
			snprintf(jwks, sizeof(jwks), "{\"x-extra\":1,\"keys\":[%s]}", jwk[J_RSA1]);
		} else {
			size_t off = (size_t)snprintf(jwks, sizeof(jwks), "{\"keys\":[");

			for (size_t k = 0; k < 4 && c->keys[k] != J_END; k++)
				off += (size_t)snprintf(jwks + off, sizeof(jwks) - off, "%s%s",
							k ? "," : "", jwk[c->keys[k]]);
			snprintf(jwks + off, sizeof(jwks) - off, "]}");
		}
		memset(err, 'Z', sizeof(err));
		err[sizeof(err) - 1] = '\0';
		v = token_verifier_new(&cfg, err, sizeof(err));
		if (!c->err) {
			cr_expect_not_null(v, "case %zu (%s): refused: %s", i, c->name, err);
		} else {
			cr_expect_null(v, "case %zu (%s): accepted", i, c->name);
			cr_expect(strstr(err, c->err) != NULL, "case %zu (%s): reason \"%s\"", i,
				  c->name, err);
		}
		token_verifier_free(v);
	}
	/* NULL config, NULL JWKS, NULL audience; err may be NULL */
	cr_expect_null(token_verifier_new(NULL, NULL, 0));
	{
		struct token_config cfg = {.jwks_json = NULL, .issuer = ISS, .audience = AUD};
		char err[128] = "";

		cr_expect_null(token_verifier_new(&cfg, err, sizeof(err)));
		cr_expect(strstr(err, "JWKS") != NULL, "%s", err);
		cfg.jwks_json = K.jwks;
		cfg.audience = NULL;
		cr_expect_null(token_verifier_new(&cfg, err, sizeof(err)));
		cr_expect(strstr(err, "audience") != NULL, "%s", err);
		cr_expect_null(token_verifier_new(&cfg, NULL, 0));
		/* the reason is cut to fit, and terminated */
		cr_expect_null(token_verifier_new(&cfg, err, 4));
		cr_expect_eq(strlen(err), 3);
	}
	token_verifier_free(NULL);
	for (size_t i = 0; i < J_COUNT; i++)
		free(jwk[i]);
	json_decref(rsa1);
	EVP_PKEY_free(rsa1024);
	EVP_PKEY_free(rsa_again);
}

Test(token, result_names)
{
	const char *seen[TOKEN_NOMEM + 1];

	for (int i = TOKEN_OK; i <= TOKEN_NOMEM; i++) {
		seen[i] = token_result_name((enum token_result)i);
		cr_expect_str_neq(seen[i], "unknown", "result %d", i);
		for (int j = 0; j < i; j++)
			cr_expect_str_neq(seen[i], seen[j], "results %d and %d", i, j);
	}
	cr_expect_str_eq(token_result_name(TOKEN_OK), "ok");
	cr_expect_str_eq(token_result_name(TOKEN_SIGNATURE), "signature");
	cr_expect_str_eq(token_result_name((enum token_result)14), "unknown");
}

/* What tests/lib/jwt's one-call tokens (jwt_mint_claims) get from a verifier of its JWKS. */
struct lib_case {
	const char *name;
	const char *kid;
	const char *alg;
	const char *iss;
	const char *aud;
	const char *sub;
	int64_t iat, nbf, exp; /* seconds; JWT_NO_TIME: left out */
	enum token_result want;
};

#define T0 INT64_C(1800000000) /* NOW_MS in seconds */

static const struct lib_case lib_cases[] = {
	{"RS256", "r1", "RS256", ISS, AUD, "alice", T0, T0, T0 + 60, TOKEN_OK},
	{"ES256", "e1", "ES256", ISS, AUD, "alice", T0, T0, T0 + 60, TOKEN_OK},
	{"no iat, no nbf", "r1", "RS256", ISS, AUD, "alice", JWT_NO_TIME, JWT_NO_TIME, T0 + 60,
	 TOKEN_OK},
	{"HS256 keyed with the RSA PEM", "r1", "HS256", ISS, AUD, "alice", T0, T0, T0 + 60,
	 TOKEN_ALG},
	{"none", "r1", "none", ISS, AUD, "alice", T0, T0, T0 + 60, TOKEN_ALG},
	{"RS256 naming the EC key", "e1", "RS256", ISS, AUD, "alice", T0, T0, T0 + 60, TOKEN_KID},
	{"no kid", NULL, "RS256", ISS, AUD, "alice", T0, T0, T0 + 60, TOKEN_MALFORMED},
	{"unknown kid", "r2", "RS256", ISS, AUD, "alice", T0, T0, T0 + 60, TOKEN_KID},
	{"other issuer", "r1", "RS256", "https://evil.example/", AUD, "alice", T0, T0, T0 + 60,
	 TOKEN_ISSUER},
	{"no issuer", "r1", "RS256", NULL, AUD, "alice", T0, T0, T0 + 60, TOKEN_ISSUER},
	{"other audience", "e1", "ES256", ISS, "other", "alice", T0, T0, T0 + 60, TOKEN_AUDIENCE},
	{"no subject", "r1", "RS256", ISS, AUD, NULL, T0, T0, T0 + 60, TOKEN_OWNER},
	{"expired", "r1", "RS256", ISS, AUD, "alice", T0 - 120, T0 - 120, T0 - 61, TOKEN_EXPIRED},
	{"no exp", "r1", "RS256", ISS, AUD, "alice", T0, T0, JWT_NO_TIME, TOKEN_EXPIRED},
	{"nbf ahead", "r1", "RS256", ISS, AUD, "alice", T0, T0 + 61, T0 + 120, TOKEN_NOT_YET},
	{"iat ahead", "e1", "ES256", ISS, AUD, "alice", T0 + 61, JWT_NO_TIME, T0 + 120,
	 TOKEN_NOT_YET},
};

Test(token, test_library_tokens)
{
	struct jwt_keys *k = jwt_keys_new("r1", "e1");
	struct jwt_signer rs, es, none = {.alg = "none"};
	char *jwks, *tok, *dir, *text, *pem, owner[OWNER_MAX + 1];
	char jwks_path[4096], key_path[4096];
	struct token_verifier *v;
	size_t owner_len, pem_len = 0;
	struct stat st;
	EVP_PKEY *back;
	FILE *f;

	cr_assert_not_null(k);
	jwks = jwt_keys_jwks(k);
	cr_assert_not_null(jwks);
	cr_expect(strstr(jwks, "\"alg\":\"RS256\"}") && strstr(jwks, "\"alg\":\"ES256\"") &&
			  strstr(jwks, "\"use\":\"sig\"") && !strstr(jwks, "\"d\""),
		  "%s", jwks);
	v = verifier(jwks, "RS256,ES256", NULL, 0);
	for (size_t i = 0; i < sizeof(lib_cases) / sizeof(lib_cases[0]); i++) {
		const struct lib_case *c = &lib_cases[i];
		enum token_result r;

		tok = jwt_mint_claims(k, c->kid, c->alg, c->iss, c->aud, c->sub, c->iat, c->nbf,
				      c->exp);
		cr_assert_not_null(tok, "case %zu (%s)", i, c->name);
		owner_len = 0;
		r = check_auth(v, tok, owner, &owner_len);
		cr_expect_eq(r, c->want, "case %zu (%s): %s, expected %s", i, c->name,
			     token_result_name(r), token_result_name(c->want));
		if (r == TOKEN_OK)
			cr_expect_str_eq(owner, "alice", "case %zu (%s)", i, c->name);
		free(tok);
	}
	cr_expect_null(jwt_mint_claims(k, "r1", "PS256", ISS, AUD, "alice", T0, T0, T0 + 60));

	/* a flipped signature bit, for each key type; "none" has no bit to flip */
	rs = (struct jwt_signer){.alg = "RS256", .key = k->rsa};
	es = (struct jwt_signer){.alg = "ES256", .key = k->ec};
	tok = jwt_mint(&rs, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", GOOD, JWT_MUT_NONE);
	cr_expect_eq(check_auth(v, tok, owner, &owner_len), TOKEN_OK);
	free(tok);
	tok = jwt_mint(&rs, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", GOOD, JWT_MUT_SIG_FLIP);
	cr_expect_eq(check_auth(v, tok, owner, &owner_len), TOKEN_SIGNATURE);
	free(tok);
	tok = jwt_mint(&es, "{\"alg\":\"ES256\",\"kid\":\"e1\"}", GOOD, JWT_MUT_SIG_FLIP);
	cr_expect_eq(check_auth(v, tok, owner, &owner_len), TOKEN_SIGNATURE);
	free(tok);
	cr_expect_null(jwt_mint(&none, "{\"alg\":\"none\"}", GOOD, JWT_MUT_SIG_FLIP));
	/* a signer whose key does not fit its algorithm signs nothing */
	es.key = k->rsa;
	cr_expect_null(jwt_mint(&es, "{}", "{}", JWT_MUT_NONE));

	/* the files: the JWKS as jwt_keys_jwks, the private key PEM readable by us alone */
	dir = proc_tempdir("jwt");
	cr_assert_not_null(dir);
	snprintf(jwks_path, sizeof(jwks_path), "%s/jwks.json", dir);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
	cr_assert_eq(jwt_keys_write_jwks(k, jwks_path), 0);
	text = proc_read_file(jwks_path);
	cr_expect_str_eq(text, jwks);
	free(text);
	cr_assert_eq(jwt_write_private_pem(k->rsa, key_path), 0);
	cr_assert_eq(stat(key_path, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0600);
	f = fopen(key_path, "r");
	cr_assert_not_null(f);
	back = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	cr_assert_not_null(back);
	cr_expect_eq(EVP_PKEY_eq(back, k->rsa), 1);
	EVP_PKEY_free(back);
	pem = jwt_public_pem(k->rsa, &pem_len);
	cr_assert_not_null(pem);
	cr_expect(strncmp(pem, "-----BEGIN PUBLIC KEY-----\n", 27) == 0, "%s", pem);
	cr_expect_eq(pem_len, strlen(pem));
	free(pem);
	proc_rmtree(dir);
	free(dir);
	free(jwks);
	token_verifier_free(v);
	jwt_keys_free(k);
}

#define THREADS 4
#define ROUNDS	150

struct worker {
	const char *auth[2];
	int ok;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < ROUNDS; i++) {
		const char *a = w->auth[i % 2];
		char owner[OWNER_MAX + 1];
		size_t owner_len = 0;

		if (token_verify(K.v, a, strlen(a), NOW_MS, owner, &owner_len) == TOKEN_OK &&
		    owner_len == 5 && strcmp(owner, "alice") == 0)
			w->ok++;
	}
	return NULL;
}

/* One verifier shared by threads (run it under the sanitizer build too). */
Test(token, threads_share_one_verifier)
{
	char *rs = mint(H_RS256, GOOD, SIG_RS256, MUT_NONE);
	char *es = mint(H_ES256, GOOD, SIG_ES256, MUT_NONE);
	char *a_rs = bearer(rs), *a_es = bearer(es);
	struct worker w[THREADS];
	pthread_t t[THREADS];

	for (int i = 0; i < THREADS; i++) {
		w[i].auth[0] = i % 2 ? a_rs : a_es;
		w[i].auth[1] = i % 2 ? a_es : a_rs;
		w[i].ok = 0;
		cr_assert_eq(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		cr_assert_eq(pthread_join(t[i], NULL), 0);
		cr_expect_eq(w[i].ok, ROUNDS, "thread %d: %d of %d", i, w[i].ok, ROUNDS);
	}
	free(a_rs);
	free(a_es);
	free(rs);
	free(es);
}
