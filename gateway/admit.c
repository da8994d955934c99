/* admit: decides a client request on its headers alone, before any body byte is read. */
#include "gateway/admit.h"

#include <string.h>

#include "proto/route.h"
#include "proto/tus.h"

#define JOBS_PATH "/v1/jobs"

/* Headers no client may send: gateway-only ones and tus extensions we do not offer. */
static const char *const refused_headers[] = {
	"fs-owner", "fs-sequence", "upload-defer-length", "upload-concat", "x-http-method-override",
};

/* Paths, before the method is looked at. */
enum admit_path {
	PATH_NONE = 0,
	PATH_HEALTH,
	PATH_READY,
	PATH_METRICS,
	PATH_JOBS,
	PATH_JOB,
};

static int refuse(struct admit *out, enum problem_type t, const char *detail, int close)
{
	out->route = ADMIT_NONE;
	out->problem = t;
	out->detail = detail;
	out->close = close;
	return -1;
}

/* The first field called name (NUL-terminated, lowercase), or NULL. */
static const struct proto_field *field_get(const struct admit_request *req, const char *name)
{
	for (size_t i = 0; i < req->n; i++)
		if (header_equals(req->fields[i].name, req->fields[i].name_len, name))
			return &req->fields[i];
	return NULL;
}

/* Header section and framing (PROTOCOL.md 3.2): every fault closes the connection. */
static int framing_decide(const struct admit_request *req, struct admit *out)
{
	enum proto_err rc = header_framing_check(req->fields, req->n, req->http10, &out->framing);

	switch (rc) {
	case PROTO_OK: break;
	case PROTO_E_HEADER_COUNT:
		return refuse(out, PROBLEM_HEADERS_TOO_LARGE, "too many header fields", 1);
	case PROTO_E_TOO_LONG:
		return refuse(out, PROBLEM_HEADERS_TOO_LARGE, "a header field is too long", 1);
	case PROTO_E_EMPTY:
	case PROTO_E_HEADER_NAME:
	case PROTO_E_HEADER_VALUE:
		return refuse(out, PROBLEM_MALFORMED_REQUEST, "a header field is malformed", 1);
	case PROTO_E_FRAMING_HOST:
		return refuse(out, PROBLEM_MALFORMED_REQUEST, "Host missing, repeated or malformed",
			      1);
	default: return refuse(out, PROBLEM_AMBIGUOUS_FRAMING, "ambiguous body framing", 1);
	}
	if (header_repeat_check(req->fields, req->n))
		return refuse(out, PROBLEM_MALFORMED_REQUEST, "a protocol header field is repeated",
			      1);
	return 0;
}

/* Splits the path, compared byte for byte; *id is the segment after /v1/jobs/. */
static enum admit_path path_split(const char *url, const char **id, size_t *id_len)
{
	size_t n = sizeof(JOBS_PATH) - 1;

	if (strcmp(url, "/healthz") == 0)
		return PATH_HEALTH;
	if (strcmp(url, "/readyz") == 0)
		return PATH_READY;
	if (strcmp(url, "/metrics") == 0)
		return PATH_METRICS;
	if (strcmp(url, JOBS_PATH) == 0)
		return PATH_JOBS;
	if (strncmp(url, JOBS_PATH, n) == 0 && url[n] == '/' && url[n + 1] != '\0' &&
	    !strchr(url + n + 1, '/')) {
		*id = url + n + 1;
		*id_len = strlen(*id);
		return PATH_JOB;
	}
	return PATH_NONE;
}

static const char *path_allow(enum admit_path p)
{
	switch (p) {
	case PATH_JOBS: return "OPTIONS, POST, GET";
	case PATH_JOB: return "OPTIONS, HEAD, GET, PATCH, DELETE, PUT";
	default: return "GET";
	}
}

/* The route of method on p; ADMIT_NONE when the path does not define it. */
static enum admit_route path_route(enum admit_path p, const char *m)
{
	switch (p) {
	case PATH_HEALTH: return strcmp(m, "GET") == 0 ? ADMIT_HEALTH : ADMIT_NONE;
	case PATH_READY: return strcmp(m, "GET") == 0 ? ADMIT_READY : ADMIT_NONE;
	case PATH_METRICS: return strcmp(m, "GET") == 0 ? ADMIT_METRICS : ADMIT_NONE;
	case PATH_JOBS:
		if (strcmp(m, "OPTIONS") == 0)
			return ADMIT_OPTIONS;
		if (strcmp(m, "POST") == 0)
			return ADMIT_CREATE;
		return strcmp(m, "GET") == 0 ? ADMIT_LIST : ADMIT_NONE;
	case PATH_JOB:
		if (strcmp(m, "OPTIONS") == 0)
			return ADMIT_OPTIONS;
		if (strcmp(m, "HEAD") == 0)
			return ADMIT_HEAD;
		if (strcmp(m, "GET") == 0)
			return ADMIT_STATUS;
		if (strcmp(m, "PATCH") == 0)
			return ADMIT_PATCH;
		if (strcmp(m, "DELETE") == 0)
			return ADMIT_DELETE;
		return strcmp(m, "PUT") == 0 ? ADMIT_PUT : ADMIT_NONE;
	default: return ADMIT_NONE;
	}
}

static int auth_decide(const struct admit_config *cfg, const struct admit_request *req,
		       int64_t now_ms, struct admit *out)
{
	const struct proto_field *f = field_get(req, "authorization");

	out->token = token_verify(cfg->tokens, f ? f->value : NULL, f ? f->value_len : 0, now_ms,
				  out->owner, &out->owner_len);
	if (out->token == TOKEN_OK)
		return 0;
	if (out->token == TOKEN_SCOPE)
		return refuse(out, PROBLEM_FORBIDDEN, "the token lacks the required scope", 0);
	return refuse(out, PROBLEM_UNAUTHORIZED,
		      out->token == TOKEN_MISSING ? "a bearer token is required"
						  : "the bearer token is not valid",
		      0);
}

/* Headers refused on every authenticated request (PROTOCOL.md 5.2, 5.8, 15). */
static int common_decide(const struct admit_request *req, struct admit *out)
{
	const struct proto_field *f;

	for (size_t k = 0; k < sizeof(refused_headers) / sizeof(refused_headers[0]); k++)
		if (field_get(req, refused_headers[k]))
			return refuse(out, PROBLEM_INVALID_HEADER,
				      "a header field this gateway does not take is present", 0);
	f = field_get(req, "content-encoding");
	if (f && !header_equals(f->value, f->value_len, "identity"))
		return refuse(out, PROBLEM_UNSUPPORTED_MEDIA_TYPE,
			      "Content-Encoding is not supported", 0);
	return 0;
}

/* Optional Upload-Checksum into out->checksum. */
static int checksum_decide(const struct admit_request *req, struct admit *out)
{
	const struct proto_field *f = field_get(req, "upload-checksum");
	enum proto_err rc;

	if (!f)
		return 0;
	rc = digest_checksum_parse(f->value, f->value_len, out->checksum);
	if (rc == PROTO_E_CHECKSUM_ALGORITHM)
		return refuse(out, PROBLEM_CHECKSUM_ALGORITHM, "only sha256 is supported", 0);
	if (rc)
		return refuse(out, PROBLEM_INVALID_CHECKSUM, "Upload-Checksum is malformed", 0);
	out->has_checksum = 1;
	return 0;
}

/* Optional Repr-Digest into out->digest. */
static int digest_decide(const struct admit_request *req, struct admit *out)
{
	const struct proto_field *f = field_get(req, "repr-digest");

	if (!f)
		return 0;
	if (digest_repr_parse(f->value, f->value_len, out->digest) != PROTO_OK)
		return refuse(out, PROBLEM_INVALID_CHECKSUM, "Repr-Digest is malformed", 0);
	out->has_digest = 1;
	return 0;
}

/* A compressed job is bounded by what it decodes to as well as by what is sent (413). */
static int size_decide(const struct admit_config *cfg, struct admit *out)
{
	if (out->meta.encoding == META_ENCODING_ZSTD &&
	    (uint64_t)out->meta.size > cfg->max_job_bytes)
		return refuse(out, PROBLEM_TOO_LARGE, "the document's size is above Tus-Max-Size",
			      0);
	return 0;
}

static int body_announced(const struct header_framing *f)
{
	return f->chunked || (f->has_length && f->content_length > 0);
}

static int create_decide(const struct admit_config *cfg, const struct admit_request *req,
			 struct admit *out)
{
	const struct proto_field *f = field_get(req, "upload-length");
	enum proto_err rc;

	if (!f)
		return refuse(out, PROBLEM_INVALID_HEADER, "Upload-Length is required", 0);
	rc = tus_length_parse(f->value, f->value_len, cfg->max_job_bytes, &out->length);
	if (rc == PROTO_E_RANGE)
		return refuse(out, PROBLEM_TOO_LARGE, "Upload-Length is above Tus-Max-Size", 0);
	if (rc)
		return refuse(out, PROBLEM_INVALID_HEADER, "Upload-Length is malformed", 0);
	f = field_get(req, "upload-metadata");
	if (!f || meta_parse(f->value, f->value_len, &out->meta) != PROTO_OK)
		return refuse(out, PROBLEM_INVALID_METADATA,
			      "Upload-Metadata is missing, invalid or lacks job-id", 0);
	if (size_decide(cfg, out) || digest_decide(req, out))
		return -1;
	out->has_body = body_announced(&out->framing);
	if (out->has_body) {
		f = field_get(req, "content-type");
		if (!f || tus_content_type_check(f->value, f->value_len) != PROTO_OK)
			return refuse(out, PROBLEM_UNSUPPORTED_MEDIA_TYPE,
				      "the body must be " TUS_CONTENT_TYPE, 0);
	}
	/* an empty body may carry the checksum of the empty string */
	if (checksum_decide(req, out))
		return -1;
	if (out->framing.has_length && out->framing.content_length > out->length)
		return refuse(out, PROBLEM_TOO_LARGE, "the body is longer than Upload-Length", 0);
	return 0;
}

static int patch_decide(const struct admit_request *req, struct admit *out)
{
	const struct proto_field *f = field_get(req, "content-type");
	uint64_t length;

	if (!f || tus_content_type_check(f->value, f->value_len) != PROTO_OK)
		return refuse(out, PROBLEM_UNSUPPORTED_MEDIA_TYPE,
			      "the body must be " TUS_CONTENT_TYPE, 0);
	f = field_get(req, "upload-offset");
	if (!f || tus_offset_parse(f->value, f->value_len, &out->offset) != PROTO_OK)
		return refuse(out, PROBLEM_INVALID_HEADER, "Upload-Offset is missing or malformed",
			      0);
	/* the upload's length is checked upstream; a malformed one is refused here */
	f = field_get(req, "upload-length");
	if (f && tus_offset_parse(f->value, f->value_len, &length) != PROTO_OK)
		return refuse(out, PROBLEM_INVALID_HEADER, "Upload-Length is malformed", 0);
	if (!out->framing.has_length && !out->framing.chunked)
		return refuse(out, PROBLEM_LENGTH_REQUIRED,
			      "Content-Length or chunked framing is required", 0);
	if (checksum_decide(req, out) || digest_decide(req, out))
		return -1;
	out->has_body = body_announced(&out->framing);
	return 0;
}

static int put_decide(const struct admit_config *cfg, const struct admit_request *req,
		      const char *id, size_t id_len, struct admit *out)
{
	char uuid[UUID_LEN + 1], format[META_FORMAT_MAX + 1];
	const struct proto_field *ct, *f;

	if (jobid_client_parse(id, id_len, uuid) != PROTO_OK)
		return refuse(out, PROBLEM_INVALID_JOB_ID, "the path does not name a UUID", 0);
	if (!out->framing.has_length)
		return refuse(out, PROBLEM_LENGTH_REQUIRED, "a PUT needs Content-Length", 0);
	out->length = out->framing.content_length;
	if (out->length > cfg->max_job_bytes)
		return refuse(out, PROBLEM_TOO_LARGE, "the job is above Tus-Max-Size", 0);
	ct = field_get(req, "content-type");
	if (ct && meta_format_parse(ct->value, ct->value_len, format, sizeof(format)) != PROTO_OK)
		return refuse(out, PROBLEM_UNSUPPORTED_MEDIA_TYPE, "document format not accepted",
			      0);
	f = field_get(req, "upload-metadata");
	if (meta_parse_for(f ? f->value : "", f ? f->value_len : 0, uuid, &out->meta) != PROTO_OK)
		return refuse(out, PROBLEM_INVALID_METADATA, "Upload-Metadata is invalid", 0);
	if (ct) {
		/*
		 * The metadata format holds the default when none was given, so a given
		 * application/octet-stream cannot be told from an absent one: only a
		 * different named format disagrees.
		 */
		if (strcmp(out->meta.format, "application/octet-stream") != 0 &&
		    strcmp(out->meta.format, format) != 0)
			return refuse(out, PROBLEM_INVALID_METADATA,
				      "metadata format differs from Content-Type", 0);
		memcpy(out->meta.format, format, sizeof(format));
	}
	if (size_decide(cfg, out) || digest_decide(req, out))
		return -1;
	out->has_body = body_announced(&out->framing);
	return 0;
}

/* The public job id in the path, for this owner, under the current then the previous key. */
static int public_id_decide(const struct admit_config *cfg, const char *id, size_t id_len,
			    struct admit *out)
{
	enum proto_err rc = route_parse(cfg->route_key, cfg->route_key_len, out->owner,
					out->owner_len, id, id_len, out->server_id, out->job_id);

	if (rc == PROTO_E_ROUTE_TAG && cfg->route_key_old)
		rc = route_parse(cfg->route_key_old, cfg->route_key_old_len, out->owner,
				 out->owner_len, id, id_len, out->server_id, out->job_id);
	if (rc == PROTO_OK)
		return 0;
	if (rc == PROTO_E_ROUTE_SYNTAX || rc == PROTO_E_ROUTE_TAG)
		return refuse(out, PROBLEM_NOT_FOUND, NULL, 0);
	return refuse(out, PROBLEM_INTERNAL, "the job id could not be checked", 0);
}

int admit_decide(const struct admit_config *cfg, const struct admit_request *req, int64_t now_ms,
		 struct admit *out)
{
	const struct proto_field *f;
	const char *id = NULL;
	size_t id_len = 0;
	enum admit_path path;
	enum admit_route route;
	int tus_required;

	memset(out, 0, sizeof(*out));
	out->problem = PROBLEM_UNKNOWN;
	out->token = TOKEN_MISSING;
	if (framing_decide(req, out))
		return -1;
	if (strlen(req->url) > cfg->max_url)
		return refuse(out, PROBLEM_URI_TOO_LONG, "the request target is too long", 1);
	path = path_split(req->url, &id, &id_len);
	if (path == PATH_NONE)
		return refuse(out, PROBLEM_NOT_FOUND, NULL, 0);
	route = path_route(path, req->method);
	if (route == ADMIT_NONE) {
		out->allow = path_allow(path);
		return refuse(out, PROBLEM_METHOD_NOT_ALLOWED, NULL, 0);
	}
	if (route == ADMIT_OPTIONS || route == ADMIT_HEALTH || route == ADMIT_READY ||
	    route == ADMIT_METRICS) {
		out->route = route;
		return 0;
	}

	if (auth_decide(cfg, req, now_ms, out))
		return -1;
	f = field_get(req, "tus-resumable");
	tus_required = route != ADMIT_PUT && route != ADMIT_LIST && route != ADMIT_STATUS;
	if (f ? tus_resumable_check(f->value, f->value_len) != PROTO_OK : tus_required)
		return refuse(out, PROBLEM_UNSUPPORTED_VERSION, "Tus-Resumable must be 1.0.0", 0);
	if (common_decide(req, out))
		return -1;

	switch (route) {
	case ADMIT_CREATE:
		if (create_decide(cfg, req, out))
			return -1;
		break;
	case ADMIT_PUT:
		if (put_decide(cfg, req, id, id_len, out))
			return -1;
		break;
	case ADMIT_PATCH:
		if (patch_decide(req, out))
			return -1;
		break;
	default: break;
	}
	if (route == ADMIT_HEAD || route == ADMIT_PATCH || route == ADMIT_DELETE ||
	    route == ADMIT_STATUS)
		if (public_id_decide(cfg, id, id_len, out))
			return -1;
	out->route = route;
	return 0;
}
