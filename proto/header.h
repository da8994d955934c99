/* header: HTTP field-name/value validation and request-framing checks (RFC 9110/9112). */
#ifndef FSG_PROTO_HEADER_H
#define FSG_PROTO_HEADER_H

#include <stddef.h>
#include <stdint.h>

#include "proto/err.h"

#define HEADER_NAME_MAX 64      /* longest field name accepted */
#define HEADER_VALUE_MAX 8192   /* longest field value accepted */
#define HEADER_COUNT_MAX 100    /* most fields in one request */
/* Largest Content-Length accepted (2^53 - 1, the protocol's TUS_SIZE_LIMIT). */
#define HEADER_CL_MAX UINT64_C(9007199254740991)

/* One header field as the HTTP library handed it over; nothing is owned. */
struct proto_field {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

/*
 * Checks a field name: 1..HEADER_NAME_MAX characters of RFC 9110 tchar.
 * Errors: PROTO_E_EMPTY, PROTO_E_TOO_LONG, PROTO_E_HEADER_NAME.
 */
enum proto_err header_name_check(const char *name, size_t len);

/*
 * Checks a field value: at most HEADER_VALUE_MAX bytes of VCHAR, obs-text, SP and HTAB, with no
 * leading or trailing SP/HTAB (the parser strips OWS, so outer whitespace means a broken
 * client). An empty value is allowed. Errors: PROTO_E_TOO_LONG, PROTO_E_HEADER_VALUE.
 */
enum proto_err header_value_check(const char *value, size_t len);

/* Framing of a request body, as decided by header_framing_check(). */
struct header_framing {
	int has_length;          /* Content-Length present */
	uint64_t content_length; /* its value when has_length */
	int chunked;             /* Transfer-Encoding: chunked */
};

/*
 * Walks all fields of one request and decides its body framing, refusing every ambiguity a
 * smuggling attack needs: each name and value passes the checks above; Content-Length and
 * Transfer-Encoding never together (PROTO_E_FRAMING_CL_TE); each at most once
 * (PROTO_E_FRAMING_DUP_CL/_DUP_TE, also for "1, 1" list syntax); Content-Length a plain decimal
 * (PROTO_E_FRAMING_CL); Transfer-Encoding exactly "chunked", compared case-insensitively
 * (PROTO_E_FRAMING_TE); no Transfer-Encoding on HTTP/1.0 (PROTO_E_FRAMING_TE_HTTP10); exactly
 * one Host on HTTP/1.1 and at most one on HTTP/1.0, whose value is empty or
 * uri-host [":" port] as RFC 9112 section 3.2 requires (PROTO_E_FRAMING_HOST); at most
 * HEADER_COUNT_MAX fields (PROTO_E_HEADER_COUNT). http10 is non-zero for an HTTP/1.0 request.
 * Names compare case-insensitively. On PROTO_OK writes *out.
 *
 * Content-Length is at most HEADER_CL_MAX; a list of valid numbers ("5, 5", "5,6") is
 * PROTO_E_FRAMING_DUP_CL, anything else that is not one plain decimal is PROTO_E_FRAMING_CL.
 * When several things are wrong, the error is the first of: PROTO_E_HEADER_COUNT; the first
 * failing field in order (its name check, then its value check, codes as returned by those);
 * then PROTO_E_FRAMING_TE_HTTP10, _CL_TE, _DUP_TE, _TE, _DUP_CL, _CL, _HOST. So the answer does
 * not depend on the order of the framing fields. fields may be NULL when n is 0.
 */
enum proto_err header_framing_check(const struct proto_field *fields, size_t n, int http10,
				    struct header_framing *out);

/*
 * Refuses a request that gives one of the protocol's own header fields more than once
 * (Authorization, Content-Type, Content-Encoding, Tus-Resumable, Upload-Offset, Upload-Length,
 * Upload-Metadata, Upload-Checksum, Upload-Defer-Length, Upload-Concat, Repr-Digest, Fs-Owner,
 * Fs-Sequence): a receiver reads the first, and a second could mean something else to the next
 * reader. Errors: PROTO_E_HEADER_REPEATED.
 */
enum proto_err header_repeat_check(const struct proto_field *fields, size_t n);

/* ASCII case-insensitive equality of s[0..len) with the NUL-terminated lit. */
int header_equals(const char *s, size_t len, const char *lit);

#endif
