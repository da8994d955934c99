/* tus: the tus 1.0.0 header values of the protocol's upload profile. */
#ifndef FSG_PROTO_TUS_H
#define FSG_PROTO_TUS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "proto/err.h"

#define TUS_VERSION "1.0.0"
#define TUS_EXTENSIONS "creation,creation-with-upload,expiration,checksum,termination"
#define TUS_CHECKSUM_ALGORITHMS "sha256"
#define TUS_CONTENT_TYPE "application/offset+octet-stream"
/* Largest offset or length the protocol can express (2^53 - 1: exact in JSON numbers). */
#define TUS_SIZE_LIMIT UINT64_C(9007199254740991)
/* strlen("Sun, 06 Nov 1994 08:49:37 GMT"); a buffer needs one more byte for the NUL */
#define TUS_HTTP_DATE_LEN 29

/* Checks Tus-Resumable: exactly "1.0.0". Errors: PROTO_E_EMPTY, PROTO_E_TUS_VERSION. */
enum proto_err tus_resumable_check(const char *v, size_t len);

/*
 * Parses Upload-Offset: a strict decimal (see num_parse_u64) at most TUS_SIZE_LIMIT.
 * On PROTO_OK writes *out.
 */
enum proto_err tus_offset_parse(const char *v, size_t len, uint64_t *out);

/*
 * Parses Upload-Length: a strict decimal at most max (the server's Tus-Max-Size; pass
 * TUS_SIZE_LIMIT for none; a larger max counts as TUS_SIZE_LIMIT). Zero is a valid length.
 * On PROTO_OK writes *out.
 */
enum proto_err tus_length_parse(const char *v, size_t len, uint64_t max, uint64_t *out);

/*
 * Checks a PATCH Content-Type: "application/offset+octet-stream", case-insensitive, with no
 * parameters. Errors: PROTO_E_EMPTY, PROTO_E_TUS_CONTENT_TYPE.
 */
enum proto_err tus_content_type_check(const char *v, size_t len);

/*
 * Formats t (UTC seconds) as an RFC 9110 IMF-fixdate for Upload-Expires into buf (cap at least
 * TUS_HTTP_DATE_LEN + 1), NUL-terminated. Errors: PROTO_E_BUFFER (checked first),
 * PROTO_E_RANGE (year outside 1970..9999).
 */
enum proto_err tus_date_format(time_t t, char *buf, size_t cap);

/*
 * Parses an IMF-fixdate (the only form the protocol sends) into UTC seconds: exactly
 * TUS_HTTP_DATE_LEN bytes, case-sensitive day and month names, a real calendar date in years
 * 1970..9999 whose day name matches, 00:00:00..23:59:59 (no leap second). So every accepted
 * value is exactly what tus_date_format() writes for the result.
 * Errors: PROTO_E_HTTP_DATE. On PROTO_OK writes *out.
 */
enum proto_err tus_date_parse(const char *v, size_t len, time_t *out);

#endif
