/* owner: the user identity a job belongs to, as it travels and as Redis keys name it. */
#ifndef FSG_PROTO_OWNER_H
#define FSG_PROTO_OWNER_H

#include <stddef.h>

#include "proto/err.h"

#define OWNER_MAX 256                /* longest owner identity, bytes of UTF-8 */
#define OWNER_HEADER_MAX 342         /* its base64url form: BASE64URL_ENCODED_LEN(OWNER_MAX) */
#define OWNER_HASH_LEN 32            /* hex characters of the owner hash */

/*
 * Checks an owner identity (the configured token claim, "sub" by default): 1..OWNER_MAX bytes
 * of UTF-8 without control characters (C0, DEL, C1). Errors: PROTO_E_EMPTY, PROTO_E_TOO_LONG,
 * PROTO_E_OWNER, PROTO_E_NOMEM.
 */
enum proto_err owner_check(const char *s, size_t len);

/*
 * Encodes a checked owner for the Fs-Owner header (base64url, unpadded) into out
 * (OWNER_HEADER_MAX + 1 bytes). Errors: as owner_check, PROTO_E_BUFFER.
 */
enum proto_err owner_encode(const char *s, size_t len, char *out, size_t cap);

/*
 * Decodes an Fs-Owner header value into out (OWNER_MAX + 1 bytes, NUL-terminated) and checks
 * the result; writes *out_len. Errors: PROTO_E_TOO_LONG (v longer than OWNER_HEADER_MAX),
 * base64 errors, those of owner_check, PROTO_E_BUFFER.
 */
enum proto_err owner_decode(const char *v, size_t len, char *out, size_t cap, size_t *out_len);

/*
 * Writes the owner hash used in Redis keys: the first 128 bits of SHA-256(owner) as 32
 * lowercase hex digits, NUL-terminated (cap at least OWNER_HASH_LEN + 1). Keeps arbitrary
 * identities out of key names. Errors: as owner_check, PROTO_E_BUFFER, PROTO_E_CRYPTO.
 */
enum proto_err owner_hash(const char *s, size_t len, char *out, size_t cap);

#endif
