/* digest: the tus Upload-Checksum header (per request) and RFC 9530 Repr-Digest (whole job). */
#ifndef FSG_PROTO_DIGEST_H
#define FSG_PROTO_DIGEST_H

#include <stddef.h>

#include "proto/err.h"

#define DIGEST_SHA256_LEN 32
#define DIGEST_HEADER_MAX 1024 /* longest Upload-Checksum or Repr-Digest value accepted */
/* "sha-256=:" (9) + 44 + ":" plus NUL */
#define DIGEST_REPR_LEN 55
/* "sha256 " (7) + 44 plus NUL */
#define DIGEST_CHECKSUM_LEN 52

/*
 * Parses Upload-Checksum: "sha256" SP padded base64 of 32 bytes. The algorithm name compares
 * exactly (tus names it lowercase). Errors: PROTO_E_EMPTY, PROTO_E_TOO_LONG,
 * PROTO_E_CHECKSUM_SYNTAX, PROTO_E_CHECKSUM_ALGORITHM (well-formed but not sha256; tus answers
 * 400), PROTO_E_HASH_LENGTH, base64 errors. On PROTO_OK writes out.
 */
enum proto_err digest_checksum_parse(const char *v, size_t len,
				     unsigned char out[DIGEST_SHA256_LEN]);

/*
 * Parses Repr-Digest as an RFC 8941 dictionary whose members are byte sequences
 * (key=:base64:), separated by "," with optional SP/HTAB around it. sha-256 is required and
 * used; sha-512 and other well-formed keys are checked for syntax and ignored, as RFC 9530
 * lets a recipient do. Parameters on a member are refused (PROTO_E_DIGEST_SYNTAX).
 * Errors: PROTO_E_EMPTY, PROTO_E_TOO_LONG, PROTO_E_DIGEST_SYNTAX, PROTO_E_DIGEST_DUP (a key
 * twice, which RFC 8941 would resolve silently), PROTO_E_DIGEST_NO_SHA256, PROTO_E_HASH_LENGTH
 * (sha-256 not 32 bytes, sha-512 not 64), base64 errors. On PROTO_OK writes out.
 */
enum proto_err digest_repr_parse(const char *v, size_t len, unsigned char out[DIGEST_SHA256_LEN]);

/* Formats "sha-256=:BASE64:" into buf (cap at least DIGEST_REPR_LEN). Errors: PROTO_E_BUFFER. */
enum proto_err digest_repr_format(const unsigned char d[DIGEST_SHA256_LEN], char *buf,
				  size_t cap);

/* Formats "sha256 BASE64" into buf (cap at least DIGEST_CHECKSUM_LEN). Errors: PROTO_E_BUFFER. */
enum proto_err digest_checksum_format(const unsigned char d[DIGEST_SHA256_LEN], char *buf,
				      size_t cap);

#endif
