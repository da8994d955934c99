/* meta: the tus Upload-Metadata header and the print-job metadata carried in it. */
#ifndef FSG_PROTO_META_H
#define FSG_PROTO_META_H

#include <stddef.h>
#include <stdint.h>

#include "proto/err.h"
#include "proto/jobid.h"

#define META_HEADER_MAX 4096   /* longest Upload-Metadata value accepted */
#define META_PAIRS_MAX 32      /* most pairs in one header */
#define META_KEY_MAX 32        /* longest key */
#define META_NAME_MAX 255      /* longest job name, in bytes of UTF-8 */
#define META_FORMAT_MAX 63     /* longest media type */
#define META_COPIES_MAX 999
/* characters of "2026-11-24T22:29:24.123Z", the canonical form meta_encode writes (no NUL) */
#define META_TIME_LEN 24

/* The largest size: 2^53-1, exact as a JSON number (TUS_SIZE_LIMIT). */
#define META_SIZE_MAX INT64_C(9007199254740991)

/*
 * How the job's bytes encode the document (PROTOCOL.md 15): as they are, or as one or more
 * concatenated zstd frames that decode to it.
 */
enum meta_encoding {
	META_ENCODING_IDENTITY = 0,
	META_ENCODING_ZSTD = 1,
};

/*
 * A print job's metadata after validation. Strings are NUL-terminated UTF-8 without control
 * characters. Fields the client left out hold their defaults (see meta_parse).
 */
struct job_meta {
	char job_id[UUID_LEN + 1];       /* client job id, lowercase canonical UUID */
	char name[META_NAME_MAX + 1];    /* document name; "" when not given */
	char format[META_FORMAT_MAX + 1]; /* lowercase; default application/octet-stream */
	unsigned copies;                 /* 1..META_COPIES_MAX; default 1 */
	int64_t submitted_at_ms;         /* Unix ms when queued on the client; -1 when not given */
	enum meta_encoding encoding;     /* default identity */
	int64_t size;                    /* the decoded document's bytes (zstd); -1 with identity */
};

/*
 * Parses an Upload-Metadata value: comma-separated pairs "key" or "key SP base64(value)",
 * OWS allowed around commas only. Keys are 1..META_KEY_MAX visible ASCII characters other than
 * ',' (as tus allows), unique, compared exactly. Recognized
 * keys (aliases from common tus clients in brackets; key and alias together is a duplicate):
 *   job-id (required, UUID), name [filename], format [filetype] (a media type from the
 *   accepted list, parameters dropped; empty keeps the default), copies (1..999),
 *   submitted-at (RFC 3339 UTC, 'Z', optional fraction up to ms), encoding ("identity" or
 *   "zstd"), size (decimal 0..META_SIZE_MAX, no leading zero: the decoded document's bytes).
 * Unknown keys are validated for syntax and then ignored. Errors: PROTO_E_TOO_LONG,
 * PROTO_E_META_PAIR, PROTO_E_META_KEY, PROTO_E_META_DUP_KEY, PROTO_E_META_TOO_MANY,
 * PROTO_E_META_JOB_ID, PROTO_E_META_TEXT, PROTO_E_META_COPIES, PROTO_E_META_FORMAT,
 * PROTO_E_META_TIME, PROTO_E_META_ENCODING, PROTO_E_META_SIZE, PROTO_E_UUID, PROTO_E_NOMEM,
 * and the base64 errors. The first bad pair decides the error. In detail: an empty header
 * lacks job-id (PROTO_E_META_JOB_ID); an empty pair (",,", or OWS only) or a separator other
 * than one SP is PROTO_E_META_PAIR; a key too long or starting with a blank is
 * PROTO_E_META_KEY; a job-id given with an empty value is PROTO_E_UUID; a name above
 * META_NAME_MAX bytes is PROTO_E_TOO_LONG; encoding is matched exactly (lowercase).
 * size is REQUIRED with encoding zstd and refused without it: once every pair is valid and
 * job-id is settled, a zstd job without size, or a size without zstd, is PROTO_E_META_SIZE,
 * as is a malformed size. On PROTO_OK writes *out.
 */
enum proto_err meta_parse(const char *v, size_t len, struct job_meta *out);

/*
 * As meta_parse, for a request whose path already names the client job id (the one-shot PUT):
 * job_id (a lowercase canonical UUID) is used when the header has no job-id, and a job-id in
 * the header must equal it (PROTO_E_META_JOB_ID_MISMATCH). The header may then be empty.
 * With job_id NULL this is meta_parse.
 */
enum proto_err meta_parse_for(const char *v, size_t len, const char *job_id,
			      struct job_meta *out);

/*
 * Encodes m as an Upload-Metadata value in canonical form (keys in the order job-id, name,
 * format, copies, submitted-at, encoding, size; name omitted when empty, submitted-at when -1,
 * encoding and size when identity) into buf and NUL-terminates it. This is what the gateway
 * sends upstream: it never copies the client's header. Pairs are joined by "," without OWS. m
 * is trusted (normally from meta_parse). Errors: PROTO_E_BUFFER, PROTO_E_META_TIME
 * (submitted_at_ms neither -1 nor in meta_time_format's range), PROTO_E_META_SIZE (zstd with
 * a size outside 0..META_SIZE_MAX, or identity with a size other than -1), PROTO_E_META_ENCODING
 * (an encoding outside the enum). Writes *out_len (characters, without the NUL) when out_len
 * is not NULL.
 */
enum proto_err meta_encode(const struct job_meta *m, char *buf, size_t cap, size_t *out_len);

/* Sets m to the defaults (identity, size -1) with the given client job id (already validated). */
void meta_init(struct job_meta *m, const char *job_id);

/*
 * Normalizes a media type (type/subtype, parameters dropped, lowercased) and checks it against
 * the accepted list: application/pdf, application/postscript, application/vnd.hp-pcl,
 * image/pwg-raster, image/urf, text/plain, application/octet-stream.
 * OWS is allowed only before the ';' that starts the parameters.
 * Errors: PROTO_E_META_FORMAT, PROTO_E_BUFFER. Writes out (cap at least META_FORMAT_MAX + 1).
 */
enum proto_err meta_format_parse(const char *v, size_t len, char *out, size_t cap);

/*
 * Parses an RFC 3339 UTC timestamp "YYYY-MM-DDTHH:MM:SS[.f{1,3}]Z" into Unix ms (years
 * 1970..9999). 'T' and 'Z' are uppercase; no leap second (60). Errors: PROTO_E_META_TIME.
 * meta_time_format writes the canonical form, always with three fraction digits, into buf
 * (cap at least META_TIME_LEN + 1), NUL-terminated. Its errors: PROTO_E_META_TIME (ms outside
 * 0..9999-12-31T23:59:59.999Z), PROTO_E_BUFFER.
 */
enum proto_err meta_time_parse(const char *v, size_t len, int64_t *out_ms);
enum proto_err meta_time_format(int64_t ms, char *buf, size_t cap);

#endif
