/* num: strict decimal numbers as they appear in headers, metadata and Redis values. */
#ifndef FSG_PROTO_NUM_H
#define FSG_PROTO_NUM_H

#include <stddef.h>
#include <stdint.h>

#include "proto/err.h"

/*
 * Parses s[0..len) as 1*DIGIT with no sign, no whitespace and no leading zero (except "0"),
 * at most max. On PROTO_OK writes *out. Errors: PROTO_E_EMPTY, PROTO_E_NOT_NUMBER,
 * PROTO_E_LEADING_ZERO, PROTO_E_RANGE (overflow or above max).
 */
enum proto_err num_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out);

#endif
