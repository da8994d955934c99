/* err: the one error enum of the proto library and its descriptions. */
#ifndef FSG_PROTO_ERR_H
#define FSG_PROTO_ERR_H

/*
 * Every parser in proto/ returns one of these. Each rejection has its own code so that a caller
 * (and a test) can tell exactly why an input was refused. Numbers are never reused: retire a code
 * by leaving its number unused.
 */
enum proto_err {
	PROTO_OK = 0,

	/* generic */
	PROTO_E_NOMEM = 1,         /* allocation failed */
	PROTO_E_EMPTY = 2,         /* value is empty where one is required */
	PROTO_E_TOO_LONG = 3,      /* value exceeds its size cap */
	PROTO_E_BAD_CHAR = 4,      /* byte not allowed at this place */
	PROTO_E_NOT_NUMBER = 5,    /* decimal digits expected */
	PROTO_E_LEADING_ZERO = 6,  /* number written with a leading zero */
	PROTO_E_RANGE = 7,         /* number outside its allowed range */
	PROTO_E_BUFFER = 8,        /* caller's output buffer too small (builders) */
	PROTO_E_RANDOM = 9,        /* the random generator failed */
	PROTO_E_CRYPTO = 10,       /* an OpenSSL primitive failed */

	/* HTTP header fields and framing (header.c) */
	PROTO_E_HEADER_NAME = 20,      /* field name is not an RFC 9110 token */
	PROTO_E_HEADER_VALUE = 21,     /* field value holds CTL/NUL or has outer whitespace */
	PROTO_E_FRAMING_CL_TE = 22,    /* Content-Length and Transfer-Encoding together */
	PROTO_E_FRAMING_TE = 23,       /* Transfer-Encoding other than exactly "chunked" */
	PROTO_E_FRAMING_DUP_CL = 24,   /* Content-Length given more than once */
	PROTO_E_FRAMING_DUP_TE = 25,   /* Transfer-Encoding given more than once */
	PROTO_E_FRAMING_CL = 26,       /* malformed Content-Length */
	PROTO_E_FRAMING_TE_HTTP10 = 27, /* Transfer-Encoding on an HTTP/1.0 request */
	PROTO_E_FRAMING_HOST = 28,     /* Host missing on HTTP/1.1, repeated, or malformed */
	PROTO_E_HEADER_COUNT = 29,     /* too many header fields */
	PROTO_E_HEADER_REPEATED = 30,  /* a protocol header field given more than once */

	/* tus (tus.c) */
	PROTO_E_TUS_VERSION = 40,      /* Tus-Resumable is not 1.0.0 */
	PROTO_E_TUS_CONTENT_TYPE = 41, /* PATCH body type is not application/offset+octet-stream */
	PROTO_E_HTTP_DATE = 42,        /* malformed IMF-fixdate (Upload-Expires) */

	/* base64 (base64.c) */
	PROTO_E_BASE64 = 50,           /* character outside the alphabet, or bad length */
	PROTO_E_BASE64_PADDING = 51,   /* missing, misplaced or forbidden '=' padding */
	PROTO_E_BASE64_NONCANON = 52,  /* unused trailing bits not zero: two spellings of one value */

	/* Upload-Metadata and print-job metadata (meta.c) */
	PROTO_E_META_PAIR = 60,        /* pair not "key" or "key SP base64" */
	PROTO_E_META_KEY = 61,         /* key empty or with forbidden characters */
	PROTO_E_META_DUP_KEY = 62,     /* key given twice (also an alias and its key) */
	PROTO_E_META_TOO_MANY = 63,    /* more pairs than allowed */
	PROTO_E_META_JOB_ID = 64,      /* job-id missing */
	PROTO_E_META_TEXT = 65,        /* decoded text not UTF-8, or holds control characters */
	PROTO_E_META_COPIES = 66,      /* copies not an integer in 1..999 */
	PROTO_E_META_FORMAT = 67,      /* document format not an accepted media type */
	PROTO_E_META_TIME = 68,        /* submitted-at not an RFC 3339 UTC timestamp */
	PROTO_E_META_ENCODING = 69,    /* content encoding not supported */
	PROTO_E_META_JOB_ID_MISMATCH = 70, /* job-id differs from the one the path names */

	/* Upload-Checksum and Repr-Digest (digest.c) */
	PROTO_E_CHECKSUM_SYNTAX = 80,  /* Upload-Checksum not "algorithm SP base64" */
	PROTO_E_CHECKSUM_ALGORITHM = 81, /* checksum algorithm not supported (only sha256) */
	PROTO_E_DIGEST_SYNTAX = 82,    /* Repr-Digest not an RFC 8941 dictionary of byte sequences */
	PROTO_E_DIGEST_DUP = 83,       /* algorithm named twice in Repr-Digest */
	PROTO_E_DIGEST_NO_SHA256 = 84, /* Repr-Digest without sha-256 */
	PROTO_E_HASH_LENGTH = 85,      /* decoded hash has the wrong length for its algorithm */

	/* identifiers (jobid.c, route.c, owner.c) */
	PROTO_E_UUID = 100,            /* client job id is not a UUID */
	PROTO_E_JOB_ID = 101,          /* server job id malformed */
	PROTO_E_SERVER_ID = 102,       /* server id malformed */
	PROTO_E_ROUTE_SYNTAX = 103,    /* public job id not server.job.tag */
	PROTO_E_ROUTE_TAG = 104,       /* public job id tag does not verify (forged or other owner) */
	PROTO_E_OWNER = 105,           /* owner identity malformed */
	PROTO_E_ROUTE_KEY = 106,       /* route key shorter than ROUTE_KEY_MIN */
	PROTO_E_ADDRESS = 107,         /* not an IP address in its one canonical text form */

	/* problem+json (problem.c) */
	PROTO_E_JSON = 120,            /* body is not a JSON text */
	PROTO_E_PROBLEM_SHAPE = 121,   /* not an object, or a member has the wrong type */
	PROTO_E_PROBLEM_STATUS = 122,  /* status missing or outside 400..599 */

	/* server announcements (announce.c) */
	PROTO_E_ANNOUNCE_MISSING = 140, /* required field absent */
	PROTO_E_ANNOUNCE_URL = 141,     /* url not http(s)://host:port[/path] */
	PROTO_E_ANNOUNCE_VALUE = 142,   /* numeric or flag field malformed */
	PROTO_E_ANNOUNCE_DUP = 143,     /* field given twice */

	/* Upload-Metadata size (meta.c): new codes go after the last one, whatever their module */
	PROTO_E_META_SIZE = 144,       /* size malformed, missing with zstd, or given without it */
};

/* Returns a static, human-readable description of rc (never NULL). */
const char *proto_strerror(enum proto_err rc);

#endif
