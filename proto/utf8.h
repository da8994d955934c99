/* utf8: the one check for "clean text" shared by the parsers of human-readable fields. */
#ifndef FSG_PROTO_UTF8_H
#define FSG_PROTO_UTF8_H

#include <stddef.h>

#include "proto/err.h"

/*
 * Checks that s[0..len) is well-formed UTF-8 (no overlong forms, surrogates or code points
 * above U+10FFFF) holding no control character: C0 (including NUL), DEL, or C1 (U+0080 to
 * U+009F). An empty string passes. Returns PROTO_OK, PROTO_E_BAD_CHAR, or PROTO_E_NOMEM;
 * callers map PROTO_E_BAD_CHAR to their own field's error code.
 */
enum proto_err utf8_check_text(const char *s, size_t len);

#endif
