/* problem: RFC 9457 problem+json bodies with the protocol's stable type URIs. */
#ifndef FSG_PROTO_PROBLEM_H
#define FSG_PROTO_PROBLEM_H

#include <stddef.h>

#include "proto/err.h"

#define PROBLEM_CONTENT_TYPE "application/problem+json"
/* Type URIs are PROBLEM_TYPE_PREFIX + slug: identifiers, not addresses to fetch. */
#define PROBLEM_TYPE_PREFIX "urn:fs-gateway:problem:"
#define PROBLEM_BODY_MAX 16384 /* largest problem body problem_parse reads */
#define PROBLEM_DETAIL_MAX 511 /* longest detail kept by problem_parse */
#define PROBLEM_DEPTH_MAX 16   /* deepest nesting of arrays/objects problem_parse reads */

/* Every error the gateway and the data-center server answer. Numbers are never reused. */
enum problem_type {
	PROBLEM_UNKNOWN = 0,            /* parsed type not one of ours (or about:blank) */
	PROBLEM_MALFORMED_REQUEST = 1,  /* 400 request line or a header field is malformed */
	PROBLEM_AMBIGUOUS_FRAMING = 2,  /* 400 Content-Length/Transfer-Encoding ambiguity */
	PROBLEM_INVALID_HEADER = 3,     /* 400 a protocol header (Upload-Offset, ...) is invalid */
	PROBLEM_INVALID_METADATA = 4,   /* 400 Upload-Metadata is invalid or lacks job-id */
	PROBLEM_INVALID_CHECKSUM = 5,   /* 400 Upload-Checksum or Repr-Digest is malformed */
	PROBLEM_CHECKSUM_ALGORITHM = 6, /* 400 checksum algorithm not supported */
	PROBLEM_INVALID_JOB_ID = 7,     /* 400 client job id in a PUT path is not a UUID */
	PROBLEM_UNAUTHORIZED = 8,       /* 401 missing, invalid or expired credentials */
	PROBLEM_CLIENT_CERTIFICATE = 9, /* 403 client certificate required or not trusted */
	PROBLEM_FORBIDDEN = 10,         /* 403 authenticated, but not allowed to do this */
	PROBLEM_NOT_FOUND = 11,         /* 404 no such job for this user */
	PROBLEM_METHOD_NOT_ALLOWED = 12, /* 405 */
	PROBLEM_REQUEST_TIMEOUT = 13,   /* 408 too slow: minimum rate or deadline missed */
	PROBLEM_OFFSET_MISMATCH = 14,   /* 409 Upload-Offset is not the upload's offset */
	PROBLEM_JOB_CONFLICT = 15,      /* 409 client job id reused for a different job */
	PROBLEM_NOT_COMMITTED = 16,     /* 409 job content asked for before it is committed */
	PROBLEM_UPLOAD_EXPIRED = 17,    /* 410 upload expired or was terminated */
	PROBLEM_LENGTH_REQUIRED = 18,   /* 411 */
	PROBLEM_UNSUPPORTED_VERSION = 19, /* 412 Tus-Resumable is not 1.0.0 */
	PROBLEM_TOO_LARGE = 20,         /* 413 above Tus-Max-Size or past Upload-Length */
	PROBLEM_URI_TOO_LONG = 21,      /* 414 */
	PROBLEM_UNSUPPORTED_MEDIA_TYPE = 22, /* 415 */
	PROBLEM_TOO_MANY_REQUESTS = 23, /* 429 rate or failed-authentication limit */
	PROBLEM_HEADERS_TOO_LARGE = 24, /* 431 */
	PROBLEM_CHECKSUM_MISMATCH = 25, /* 460 this request's bytes do not match Upload-Checksum */
	PROBLEM_DIGEST_MISMATCH = 26,   /* 460 whole job does not match Repr-Digest; discarded */
	PROBLEM_INTERNAL = 27,          /* 500 */
	PROBLEM_UPSTREAM_FAILED = 28,   /* 502 data-center server failed mid-request */
	PROBLEM_NO_SERVER = 29,         /* 503 no data-center server available */
	PROBLEM_DRAINING = 30,          /* 503 this instance is shutting down */
	PROBLEM_UPSTREAM_TIMEOUT = 31,  /* 504 data-center server did not answer in time */
	PROBLEM_INSUFFICIENT_STORAGE = 32, /* 507 spool limit or disk full */
	PROBLEM__COUNT
};

/* What a client does about an error. */
enum problem_retry {
	PROBLEM_RETRY_NEVER = 0,      /* fix the request or credentials; retrying is pointless */
	PROBLEM_RETRY_DELAY = 1,      /* retry the same request later (honour Retry-After) */
	PROBLEM_RETRY_RESYNC = 2,     /* HEAD the upload for its offset, then continue */
	PROBLEM_RETRY_NEW_UPLOAD = 3, /* create the upload again (POST) from the local copy */
};

struct problem_info {
	int status;             /* HTTP status */
	const char *slug;       /* last part of the type URI */
	const char *title;      /* short human summary, fixed per type */
	enum problem_retry retry;
};

/* Returns the static description of t, or NULL when t is PROBLEM_UNKNOWN or out of range. */
const struct problem_info *problem_info(enum problem_type t);

/* Returns the static name of r as written in the body's "retry" member; NULL if out of range. */
const char *problem_retry_name(enum problem_retry r);

/*
 * Builds the body for t: {"type","title","status","retry"[,"detail"]} as compact JSON. detail
 * may be NULL; it must be the server's own words (never echo unvalidated request bytes). A
 * detail longer than PROBLEM_DETAIL_MAX bytes is cut at a UTF-8 boundary, as problem_parse
 * would cut it. Returns a malloc'd NUL-terminated string the caller frees with free(), and its
 * length in *len when len is not NULL; NULL for an invalid t, a detail that is not UTF-8, or
 * on allocation failure.
 */
char *problem_build(enum problem_type t, const char *detail, size_t *len);

/* A problem body as read from a peer. */
struct problem {
	enum problem_type type;          /* PROBLEM_UNKNOWN for a foreign type */
	int status;                      /* 400..599 */
	enum problem_retry retry;        /* from the body, else from the type, else by status */
	char detail[PROBLEM_DETAIL_MAX + 1]; /* "" when absent; longer details are cut */
};

/*
 * Parses a problem+json body of at most PROBLEM_BODY_MAX bytes: a JSON object with an integer
 * "status" in 400..599 (required, and equal to the type's status for one of our types), and
 * string "type", "title", "detail", "instance" and "retry" when present; other members are
 * ignored. A type other than PROBLEM_TYPE_PREFIX + one of our slugs (compared exactly) gives
 * PROBLEM_UNKNOWN; a retry name we do not know is ignored.
 * Errors: PROTO_E_TOO_LONG (more than PROBLEM_BODY_MAX bytes); PROTO_E_JSON (not JSON, invalid
 * UTF-8, nested deeper than PROBLEM_DEPTH_MAX, a member name repeated in any object, or a
 * "\u0000" escape anywhere: each would let two readers see different bodies);
 * PROTO_E_PROBLEM_SHAPE (not an object, a string member or status of the wrong JSON type);
 * PROTO_E_PROBLEM_STATUS (status missing, outside 400..599, or not our type's status).
 * On PROTO_OK writes *out; out->detail is valid UTF-8 without NUL, but may hold control
 * characters: escape it before logging.
 */
enum proto_err problem_parse(const char *body, size_t len, struct problem *out);

#endif
