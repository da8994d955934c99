/* base64: strict RFC 4648 base64 and base64url on top of OpenSSL's codec. */
#ifndef FSG_PROTO_BASE64_H
#define FSG_PROTO_BASE64_H

#include <stddef.h>

#include "proto/err.h"

/* Longest input the decoders accept; protocol fields are all far shorter. */
#define BASE64_INPUT_MAX 8192

/* Characters needed to encode n bytes, without the terminating NUL. */
#define BASE64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)
#define BASE64URL_ENCODED_LEN(n) (((n) * 4 + 2) / 3)
/* Bytes enough to hold the decoding of n characters. */
#define BASE64_DECODED_MAX(n) (((n) + 3) / 4 * 3)

/*
 * Decodes padded standard base64 (alphabet A-Z a-z 0-9 + /, '=' padding to a multiple of four).
 * Refuses whitespace, a wrong length or alphabet (PROTO_E_BASE64), misplaced or missing padding
 * (PROTO_E_BASE64_PADDING) and non-zero unused bits (PROTO_E_BASE64_NONCANON), so every value
 * has exactly one accepted spelling. An empty input decodes to zero bytes. More than
 * BASE64_INPUT_MAX characters give PROTO_E_TOO_LONG, before the characters are looked at.
 * On PROTO_OK writes *out_len bytes to out; cap too small gives PROTO_E_BUFFER. The decoder
 * allocates scratch space: PROTO_E_NOMEM. out and *out_len are untouched on error.
 */
enum proto_err base64_decode(const char *in, size_t len, unsigned char *out, size_t cap,
			     size_t *out_len);

/* As base64_decode, for base64url (alphabet - and _ for + and /) without padding. */
enum proto_err base64url_decode(const char *in, size_t len, unsigned char *out, size_t cap,
				size_t *out_len);

/*
 * Encodes len bytes as padded standard base64 into out and NUL-terminates it. cap counts the
 * NUL. On PROTO_OK writes *out_len (characters, without the NUL) when out_len is not NULL.
 * Errors: PROTO_E_TOO_LONG (len above 3 * BASE64_INPUT_MAX, checked first), PROTO_E_BUFFER.
 */
enum proto_err base64_encode(const unsigned char *in, size_t len, char *out, size_t cap,
			     size_t *out_len);

/* As base64_encode, for base64url without padding; it also allocates (PROTO_E_NOMEM). */
enum proto_err base64url_encode(const unsigned char *in, size_t len, char *out, size_t cap,
				size_t *out_len);

#endif
