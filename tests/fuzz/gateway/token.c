/* Fuzz target: the bearer-token verifier, fed whole Authorization values against a fixed JWKS. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/token.h"
#include "proto/owner.h"

#define NOW_MS INT64_C(1800000000000) /* the seeds' valid tokens expire in 2100 */

/* Public halves only; the seeds in tests/fuzz/corpus/token/ were signed with their private keys. */
#define JWK_RSA                                                                                    \
	"{\"kty\":\"RSA\",\"kid\":\"rsa-fuzz\",\"use\":\"sig\",\"alg\":\"RS256\",\"e\":\"AQAB\","  \
	"\"n\":\"tppaR_Cz1QBqlP-lqmWu8kfif0QSfqZz9SNLTY0o97CVsfpY6wlYdMl2BiDNZRCQwp2i_Sx9m3mCnc"   \
	"TV76GVbtVybWX-V3gcM2JBkzb8_PLEASY0TyppdJ_2qn0DJNQOJuVgxQA5dhXrlf5-b8619G-y_rlr18HS6T2tW"  \
	"O6LqT9Xs5PPruXnpLI5Bzn2yUICwEdWsfxBb01FT8NWQWttEXeXD2QsNO4ragqW7nHdPHZjt8fPmlhlcusBNwxh"  \
	"m92KsKilik94a_QpB1U7RdZ_XY3tlOzP9QFvjnDd6gP6tsTMgu-1wrEI7IkypKnzMFjbWFBXBSvA_GXf4e9xjv6"  \
	"iIw\"}"
#define JWK_EC                                                                                     \
	"{\"kty\":\"EC\",\"kid\":\"ec-fuzz\",\"use\":\"sig\",\"alg\":\"ES256\",\"crv\":\"P-256\"," \
	"\"x\":\"2rrw3-kgqvDlHBoNjxzro3SwK7X37054tqEl7zZmAKs\","                                   \
	"\"y\":\"wNkypSgTYpkAHEbaPbMLA2FU5n6zy_t6-wvwVGUc4Ac\"}"

static const char jwks[] = "{\"keys\":[" JWK_RSA "," JWK_EC "]}";

static void check(int ok)
{
	if (!ok)
		__builtin_trap();
}

/* One verifier for the whole run: building it parses RSA keys, far slower than a verify. */
static const struct token_verifier *verifier(void)
{
	static struct token_verifier *v;
	struct token_config cfg = {
		.jwks_json = jwks,
		.algorithms = "RS256,ES256",
		.issuer = "https://idp.test",
		.audience = "fs-gateway",
		.skew_ms = 60000,
	};

	if (!v) {
		v = token_verifier_new(&cfg, NULL, 0);
		check(v != NULL);
	}
	return v;
}

/* The owner is written on these only, and must then be a checked owner. */
static int owner_written(enum token_result r)
{
	return r == TOKEN_OK || r == TOKEN_SCOPE || r == TOKEN_EXPIRED || r == TOKEN_NOT_YET ||
	       r == TOKEN_ISSUER || r == TOKEN_AUDIENCE;
}

static void verify_one(const char *a, size_t len)
{
	char owner[OWNER_MAX + 1];
	size_t owner_len = SIZE_MAX;
	const char *name;
	enum token_result r;

	memset(owner, 0x5a, sizeof(owner));
	r = token_verify(verifier(), a, len, NOW_MS, owner, &owner_len);
	name = token_result_name(r);
	check(name != NULL && strcmp(name, "unknown") != 0);
	check((len > TOKEN_MAX_DEFAULT) == (r == TOKEN_TOO_LONG));
	if (r == TOKEN_OK || r == TOKEN_SCOPE)
		check(owner_len != SIZE_MAX);
	if (owner_len != SIZE_MAX) {
		check(owner_written(r));
		check(owner_len >= 1 && owner_len <= OWNER_MAX && owner[owner_len] == '\0');
		check(strlen(owner) == owner_len);
		check(owner_check(owner, owner_len) == PROTO_OK);
	} else {
		/* untouched, as the header promises */
		for (size_t i = 0; i < sizeof(owner); i++)
			check(owner[i] == 0x5a);
	}
}

/* Verifies the value with the last byte of one of its first three '.'-separated parts cut. */
static void verify_cut(const char *a, size_t len, size_t part)
{
	size_t start = 0, end, n = 0;
	char *copy;

	for (;;) {
		const char *dot = memchr(a + start, '.', len - start);

		end = dot ? (size_t)(dot - a) : len;
		if (n == part)
			break;
		if (!dot)
			return;
		start = end + 1;
		n++;
	}
	if (end == start)
		return;
	/* An exact-size copy, so that ASan sees a read past the cut input. */
	copy = malloc(len - 1);
	check(copy != NULL);
	memcpy(copy, a, end - 1);
	memcpy(copy + end - 1, a + end, len - end);
	verify_one(copy, len - 1);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *a = (const char *)data;

	verify_one(a, size);
	if (size && memchr(a, '.', size))
		for (size_t part = 0; part < 3; part++)
			verify_cut(a, size, part);
	return 0;
}
