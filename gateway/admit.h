/* admit: decides a client request on its headers alone, before any body byte is read. */
#ifndef FSG_GATEWAY_ADMIT_H
#define FSG_GATEWAY_ADMIT_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/token.h"
#include "proto/announce.h"
#include "proto/digest.h"
#include "proto/header.h"
#include "proto/jobid.h"
#include "proto/meta.h"
#include "proto/owner.h"
#include "proto/problem.h"

/* What an admitted request asks for. */
enum admit_route {
	ADMIT_NONE = 0,
	ADMIT_HEALTH,   /* GET /healthz: no authentication */
	ADMIT_READY,    /* GET /readyz: no authentication */
	ADMIT_METRICS,  /* GET /metrics: no authentication (the operator restricts it) */
	ADMIT_OPTIONS,  /* OPTIONS /v1/jobs or /v1/jobs/{x}: no authentication */
	ADMIT_CREATE,   /* POST /v1/jobs */
	ADMIT_PUT,      /* PUT /v1/jobs/{client-job-id} */
	ADMIT_LIST,     /* GET /v1/jobs */
	ADMIT_HEAD,     /* HEAD /v1/jobs/{public-job-id} */
	ADMIT_PATCH,    /* PATCH /v1/jobs/{public-job-id} */
	ADMIT_DELETE,   /* DELETE /v1/jobs/{public-job-id} */
	ADMIT_STATUS,   /* GET /v1/jobs/{public-job-id} */
};

/* A request as libmicrohttpd hands it over on the first access-handler call. */
struct admit_request {
	const char *method;               /* NUL-terminated */
	const char *url;                  /* path, NUL-terminated, already percent-decoded by MHD */
	int http10;                       /* HTTP/1.0 */
	const struct proto_field *fields; /* every header field, in order */
	size_t n;
};

struct admit_config {
	const struct token_verifier *tokens;
	const unsigned char *route_key;    /* >= ROUTE_KEY_MIN bytes */
	size_t route_key_len;
	const unsigned char *route_key_old; /* previous key during a rotation, or NULL */
	size_t route_key_old_len;
	uint64_t max_job_bytes;            /* Tus-Max-Size */
	size_t max_url;                    /* longest path accepted: 414 beyond */
};

/* The decision. Fields are valid as the route says; everything is copied (nothing borrowed). */
struct admit {
	enum admit_route route;
	enum problem_type problem;   /* PROBLEM_UNKNOWN when admitted */
	const char *detail;          /* static text for the problem body, or NULL */
	int close;                   /* close the connection after the answer (framing faults) */
	const char *allow;           /* for 405: the Allow header value (static) */
	struct header_framing framing;
	enum token_result token;     /* TOKEN_OK when authenticated; why not, otherwise */
	char owner[OWNER_MAX + 1];   /* the user, once the token verified (also for some refusals,
					see token_verify, so failures can be counted per user) */
	size_t owner_len;
	/* HEAD, PATCH, DELETE, STATUS: where the job lives (from the public job id) */
	char server_id[SERVER_ID_MAX + 1];
	char job_id[JOBID_LEN + 1];
	/* CREATE, PUT */
	struct job_meta meta;
	uint64_t length;             /* Upload-Length, or the PUT's Content-Length */
	int has_digest;
	unsigned char digest[DIGEST_SHA256_LEN];
	/* PATCH (and a CREATE with a body) */
	uint64_t offset;
	int has_checksum;
	unsigned char checksum[DIGEST_SHA256_LEN];
	int has_body;                /* the framing announces body bytes */
};

/*
 * Decides req at now_ms (Unix ms) in the order of PROTOCOL.md section 3.5, leaving out what
 * needs Redis or an upstream (failure limits, idempotency, pool): header section and framing
 * (400 malformed-request / ambiguous-framing with close, 431, repeated protocol headers), path
 * (414, 404) and method (405 with allow), authentication (401 with out->token saying why; 403
 * for a missing scope), Tus-Resumable (412), and the method's headers (400 invalid-header,
 * invalid-metadata, invalid-checksum, unsupported-checksum-algorithm, invalid-job-id; 411;
 * 413; 415). A public job id that does not verify for this owner under either route key is
 * 404 not-found, so another user's job and a forged one look alike. Returns 0 when admitted
 * (out->problem is PROBLEM_UNKNOWN), -1 with out->problem set otherwise. out is always
 * written; on a refusal out->route is ADMIT_NONE and values parsed before the failing check
 * may be left set.
 *
 * In step 7, headers no client may send come first (Fs-Owner, Fs-Sequence,
 * Upload-Defer-Length, Upload-Concat, X-HTTP-Method-Override: 400 invalid-header; then
 * Content-Encoding other than identity: 415), then per method: POST Upload-Length,
 * Upload-Metadata (a zstd job's size above the maximum: 413), Repr-Digest, Content-Type
 * (with a body), Upload-Checksum (also with an empty body), Content-Length above
 * Upload-Length (413); PATCH Content-Type, Upload-Offset,
 * Upload-Length (syntax only; the upload's length is known upstream), framing (411),
 * Upload-Checksum, Repr-Digest; PUT path UUID (invalid-job-id), Content-Length (411; chunked
 * too), size (413), Content-Type (415), Upload-Metadata, Repr-Digest. The public job id of
 * HEAD, PATCH, DELETE and GET is verified last (step 8's 404). A PUT's metadata format can
 * only be told apart from the default when it names another type, so "format" given as
 * application/octet-stream beside another Content-Type is not refused.
 */
int admit_decide(const struct admit_config *cfg, const struct admit_request *req, int64_t now_ms,
		 struct admit *out);

#endif
