/* http: fs-server's HTTP front: the tus receiver for gateways and the release API. */
#include "server/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/crypto.h>

#include "common/log.h"
#include "proto/base64.h"
#include "proto/digest.h"
#include "proto/header.h"
#include "proto/jobid.h"
#include "proto/meta.h"
#include "proto/num.h"
#include "proto/owner.h"
#include "proto/problem.h"
#include "proto/tus.h"
#include "server/decode.h"

/* Decoded bytes MHD asks for at a time when it serves a zstd job's document. */
#define CONTENT_BLOCK 65536

struct http {
	struct http_config cfg;
	struct spool *spool;
	struct member *member;
	struct hook *hook;
	struct MHD_Daemon *daemon;
	atomic_int draining;
	char max_size[24];
	struct MHD_OptionItem tls[5]; /* TLS options, MHD_OPTION_END-terminated */
};

enum route {
	ROUTE_NONE = 0,
	ROUTE_HEALTH,      /* GET /healthz */
	ROUTE_READY,       /* GET /readyz */
	ROUTE_JOBS,        /* /v1/jobs */
	ROUTE_JOB,         /* /v1/jobs/{server-job-id} or, for PUT, /v1/jobs/{client-job-id} */
	ROUTE_REL_LIST,    /* /v1/release/owners/{fs-owner}/jobs */
	ROUTE_REL_CONTENT, /* /v1/release/jobs/{id}/content */
	ROUTE_REL_JOB,     /* /v1/release/jobs/{id} */
};

/* What one request is doing; lives from the first access-handler call to completion. */
struct request {
	enum route route;
	char method[8];
	char id[UUID_LEN + 1];         /* server job id, or the client job id of a PUT */
	char owner[OWNER_MAX + 1];
	struct spool_write *w;         /* open while body bytes go to the spool */
	int put;                       /* one-shot PUT: all or nothing */
	int discard;                   /* body bytes are read and dropped */
	enum spool_err werr;           /* first spool error while writing the body */
	struct spool_job job;
	int existed;                   /* creation found the job already there */
};

#define HEADERS_MAX (HEADER_COUNT_MAX + 1)

struct header_walk {
	struct proto_field fields[HEADERS_MAX];
	size_t n;
};

static enum MHD_Result header_collect(void *cls, enum MHD_ValueKind kind, const char *key,
				      size_t key_len, const char *value, size_t value_len)
{
	struct header_walk *hw = cls;

	(void)kind;
	if (hw->n < HEADERS_MAX) {
		hw->fields[hw->n].name = key;
		hw->fields[hw->n].name_len = key_len;
		hw->fields[hw->n].value = value ? value : "";
		hw->fields[hw->n].value_len = value ? value_len : 0;
	}
	hw->n++;
	return MHD_YES;
}

/* Returns the value of a request header and its length, or NULL. */
static const char *header_get(struct MHD_Connection *c, const char *name, size_t *len)
{
	const char *v = NULL;
	size_t n = 0;

	if (MHD_lookup_connection_value_n(c, MHD_HEADER_KIND, name, strlen(name), &v, &n) !=
		    MHD_YES ||
	    !v)
		return NULL;
	*len = n;
	return v;
}

static void add_common(struct MHD_Response *resp)
{
	MHD_add_response_header(resp, "Tus-Resumable", TUS_VERSION);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
}

static enum MHD_Result send_response(struct MHD_Connection *c, unsigned status,
				     struct MHD_Response *resp)
{
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO;
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/*
 * Answers a problem+json body. close asks MHD to close the connection afterwards (framing
 * errors: whatever follows on the socket cannot be trusted).
 */
static enum MHD_Result send_problem(struct MHD_Connection *c, enum problem_type t,
				    const char *detail, int close)
{
	const struct problem_info *info = problem_info(t);
	struct MHD_Response *resp;
	size_t len = 0;
	char *body = problem_build(t, detail, &len);

	if (!body || !info) {
		free(body);
		return MHD_NO;
	}
	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	add_common(resp);
	MHD_add_response_header(resp, "Content-Type", PROBLEM_CONTENT_TYPE);
	if (t == PROBLEM_UNAUTHORIZED)
		MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"fs-server\"");
	if (t == PROBLEM_UNSUPPORTED_VERSION)
		MHD_add_response_header(resp, "Tus-Version", TUS_VERSION);
	if (info->retry == PROBLEM_RETRY_DELAY && info->status >= 500)
		MHD_add_response_header(resp, "Retry-After", "5");
	if (close)
		MHD_add_response_header(resp, "Connection", "close");
	return send_response(c, (unsigned)info->status, resp);
}

static enum MHD_Result send_empty(struct MHD_Connection *c, unsigned status)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);

	if (!resp)
		return MHD_NO;
	add_common(resp);
	return send_response(c, status, resp);
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *doc,
				 struct MHD_Response **keep)
{
	char *body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	struct MHD_Response *resp;

	json_decref(doc);
	if (!body)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	add_common(resp);
	MHD_add_response_header(resp, "Content-Type", "application/json");
	if (keep) {
		*keep = resp;
		return MHD_YES;
	}
	return send_response(c, status, resp);
}

/* Maps a spool outcome to its problem type. */
static enum problem_type spool_problem(enum spool_err e)
{
	switch (e) {
	case SPOOL_E_FULL: return PROBLEM_INSUFFICIENT_STORAGE;
	case SPOOL_E_NOT_FOUND: return PROBLEM_NOT_FOUND;
	case SPOOL_E_CONFLICT: return PROBLEM_JOB_CONFLICT;
	case SPOOL_E_OFFSET: return PROBLEM_OFFSET_MISMATCH;
	case SPOOL_E_BUSY: return PROBLEM_OFFSET_MISMATCH;
	case SPOOL_E_TOO_LARGE: return PROBLEM_TOO_LARGE;
	case SPOOL_E_DIGEST: return PROBLEM_DIGEST_MISMATCH;
	case SPOOL_E_CHECKSUM: return PROBLEM_CHECKSUM_MISMATCH;
	case SPOOL_E_NOT_COMMITTED: return PROBLEM_NOT_COMMITTED;
	case SPOOL_E_RELEASED: return PROBLEM_NOT_FOUND;
	case SPOOL_E_INVALID: return PROBLEM_INVALID_HEADER;
	case SPOOL_E_UNSUPPORTED: return PROBLEM_UNSUPPORTED_MEDIA_TYPE;
	default: return PROBLEM_INTERNAL;
	}
}

static json_t *time_json(int64_t ms)
{
	char buf[META_TIME_LEN + 1];

	if (ms < 0 || meta_time_format(ms, buf, sizeof(buf)))
		return json_null();
	return json_string(buf);
}

/*
 * The status object of PROTOCOL.md 8.9 (length counts the bytes as sent, size the document);
 * release adds the document's sha256, the encoding and stored_size.
 */
static json_t *job_json(const struct spool_job *j, int release)
{
	json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:s,s:I,s:o,s:I,s:o}", "id", j->id,
			      "job_id", j->meta.job_id, "state",
			      j->state == SPOOL_COMMITTED ? "committed" : "receiving", "offset",
			      (json_int_t)j->offset, "length", (json_int_t)j->length, "size",
			      (json_int_t)j->size, "name", j->meta.name, "format", j->meta.format,
			      "copies", (json_int_t)j->meta.copies, "submitted_at",
			      time_json(j->meta.submitted_at_ms), "sequence",
			      (json_int_t)j->sequence, "expires_at", time_json(j->expires_ms));

	if (o && release) {
		const char *enc = j->meta.encoding == META_ENCODING_ZSTD ? "zstd" : "identity";
		char hex[DIGEST_SHA256_LEN * 2 + 1];

		for (size_t i = 0; i < DIGEST_SHA256_LEN; i++)
			snprintf(hex + 2 * i, 3, "%02x", j->sha256[i]);
		json_object_set_new(o, "sha256", json_string(hex));
		json_object_set_new(o, "encoding", json_string(enc));
		json_object_set_new(o, "stored_size", json_integer((json_int_t)j->length));
	}
	return o;
}

static void add_upload_headers(struct MHD_Response *resp, const struct spool_job *j)
{
	char num[24], date[TUS_HTTP_DATE_LEN + 1];

	snprintf(num, sizeof(num), "%" PRIu64, j->offset);
	MHD_add_response_header(resp, "Upload-Offset", num);
	snprintf(num, sizeof(num), "%" PRIu64, j->length);
	MHD_add_response_header(resp, "Upload-Length", num);
	if (j->state == SPOOL_RECEIVING &&
	    tus_date_format((time_t)(j->expires_ms / 1000), date, sizeof(date)) == PROTO_OK)
		MHD_add_response_header(resp, "Upload-Expires", date);
}

/*
 * 201/200/204 for a tus request, with Location when asked; a one-shot PUT's answer also
 * carries the job's status object (PROTOCOL.md 8.6).
 */
static enum MHD_Result send_upload(struct MHD_Connection *c, unsigned status,
				   const struct spool_job *j, int location, int put)
{
	struct MHD_Response *resp = NULL;
	char loc[16 + JOBID_LEN];

	if (put) {
		if (send_json(c, status, job_json(j, 0), &resp) != MHD_YES)
			return MHD_NO;
	} else {
		resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		if (!resp)
			return MHD_NO;
		add_common(resp);
	}
	add_upload_headers(resp, j);
	if (location) {
		snprintf(loc, sizeof(loc), "/v1/jobs/%s", j->id);
		MHD_add_response_header(resp, "Location", loc);
	}
	return send_response(c, status, resp);
}

/* Splits url into a route and its id; ids are checked later, per method. */
static enum route route_parse(const char *url, char *id, size_t id_cap, char *owner_enc,
			      size_t owner_cap)
{
	static const char jobs[] = "/v1/jobs", rel_owner[] = "/v1/release/owners/",
			  rel_job[] = "/v1/release/jobs/";
	const char *rest, *slash;
	size_t n;

	if (strcmp(url, "/healthz") == 0)
		return ROUTE_HEALTH;
	if (strcmp(url, "/readyz") == 0)
		return ROUTE_READY;
	if (strcmp(url, jobs) == 0)
		return ROUTE_JOBS;
	if (strncmp(url, jobs, sizeof(jobs) - 1) == 0 && url[sizeof(jobs) - 1] == '/') {
		rest = url + sizeof(jobs);
		n = strlen(rest);
		if (n == 0 || n >= id_cap || strchr(rest, '/'))
			return ROUTE_NONE;
		memcpy(id, rest, n + 1);
		return ROUTE_JOB;
	}
	if (strncmp(url, rel_owner, sizeof(rel_owner) - 1) == 0) {
		rest = url + sizeof(rel_owner) - 1;
		slash = strchr(rest, '/');
		if (!slash || strcmp(slash, "/jobs") != 0 || slash == rest ||
		    (size_t)(slash - rest) >= owner_cap)
			return ROUTE_NONE;
		memcpy(owner_enc, rest, (size_t)(slash - rest));
		owner_enc[slash - rest] = '\0';
		return ROUTE_REL_LIST;
	}
	if (strncmp(url, rel_job, sizeof(rel_job) - 1) == 0) {
		rest = url + sizeof(rel_job) - 1;
		slash = strchr(rest, '/');
		n = slash ? (size_t)(slash - rest) : strlen(rest);
		if (n == 0 || n >= id_cap || (slash && strcmp(slash, "/content") != 0))
			return ROUTE_NONE;
		memcpy(id, rest, n);
		id[n] = '\0';
		return slash ? ROUTE_REL_CONTENT : ROUTE_REL_JOB;
	}
	return ROUTE_NONE;
}

static const char *route_allow(enum route r)
{
	switch (r) {
	case ROUTE_HEALTH:
	case ROUTE_READY: return "GET";
	case ROUTE_JOBS: return "OPTIONS, POST, GET";
	case ROUTE_JOB: return "OPTIONS, HEAD, PATCH, DELETE, GET, PUT";
	case ROUTE_REL_LIST:
	case ROUTE_REL_CONTENT: return "GET";
	case ROUTE_REL_JOB: return "DELETE";
	default: return "";
	}
}

static int method_allowed(enum route r, const char *m)
{
	const char *allow = route_allow(r);
	size_t n = strlen(m);

	for (const char *p = allow; (p = strstr(p, m)) != NULL; p += n)
		if ((p == allow || p[-1] == ' ') && (p[n] == '\0' || p[n] == ','))
			return 1;
	return 0;
}

/*
 * libmicrohttpd only asks for a client certificate; a client may finish the handshake without
 * one. So the chain is verified here, against the CA the daemon was given, on every request.
 */
static int client_certificate_ok(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	gnutls_session_t session;
	unsigned int list_size = 0, status = 0;

	if (!info || !info->tls_session)
		return 0;
	session = (gnutls_session_t)info->tls_session;
	if (!gnutls_certificate_get_peers(session, &list_size) || list_size == 0)
		return 0;
	return gnutls_certificate_verify_peers2(session, &status) == GNUTLS_E_SUCCESS &&
	       status == 0;
}

/* Bearer secret check in constant time for equal lengths. */
static int bearer_ok(struct MHD_Connection *c, const char *secret)
{
	static const char prefix[] = "Bearer ";
	size_t len = 0, slen;
	const char *v = header_get(c, "Authorization", &len);

	if (!v || !secret || len < sizeof(prefix) - 1 ||
	    !header_equals(v, sizeof(prefix) - 1, prefix))
		return 0;
	v += sizeof(prefix) - 1;
	len -= sizeof(prefix) - 1;
	slen = strlen(secret);
	return len == slen && CRYPTO_memcmp(v, secret, slen) == 0;
}

static enum MHD_Result send_options(struct MHD_Connection *c, const struct http *h)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);

	if (!resp)
		return MHD_NO;
	add_common(resp);
	MHD_add_response_header(resp, "Tus-Version", TUS_VERSION);
	MHD_add_response_header(resp, "Tus-Extension", TUS_EXTENSIONS);
	MHD_add_response_header(resp, "Tus-Max-Size", h->max_size);
	MHD_add_response_header(resp, "Tus-Checksum-Algorithm", TUS_CHECKSUM_ALGORITHMS);
	return send_response(c, MHD_HTTP_NO_CONTENT, resp);
}

/* Reads Fs-Owner into r->owner. Returns 0, or -1 after queueing the answer in *ret. */
static int owner_read(struct MHD_Connection *c, struct request *r, enum MHD_Result *ret)
{
	size_t len = 0, n = 0;
	const char *v = header_get(c, "Fs-Owner", &len);

	if (!v || owner_decode(v, len, r->owner, sizeof(r->owner), &n) != PROTO_OK) {
		*ret = send_problem(c, PROBLEM_INVALID_HEADER, "Fs-Owner missing or malformed", 0);
		return -1;
	}
	return 0;
}

/* Optional Repr-Digest. Returns 1 when present (digest filled), 0 when absent, -1 on error. */
static int digest_read(struct MHD_Connection *c, unsigned char *digest, enum MHD_Result *ret)
{
	size_t len = 0;
	const char *v = header_get(c, "Repr-Digest", &len);
	enum proto_err rc;

	if (!v)
		return 0;
	rc = digest_repr_parse(v, len, digest);
	if (rc) {
		*ret = send_problem(c, PROBLEM_INVALID_CHECKSUM, proto_strerror(rc), 0);
		return -1;
	}
	return 1;
}

/* The body framing says bytes follow. */
static int has_body(const struct header_framing *f)
{
	return f->chunked || (f->has_length && f->content_length > 0);
}

/* Opens the spool writer for a body at offset, or arranges to drop the body. */
static enum MHD_Result body_open(struct http *h, struct MHD_Connection *c, struct request *r,
				 uint64_t offset, const unsigned char *checksum)
{
	uint64_t real = 0;
	enum spool_err e = spool_write_begin(h->spool, r->owner, r->job.id, offset, checksum,
					     &r->w, &real);

	if (e)
		return send_problem(c, spool_problem(e), spool_strerror(e), 0);
	return MHD_YES;
}

/* POST /v1/jobs and PUT /v1/jobs/{client-job-id}: creation. */
static enum MHD_Result create_begin(struct http *h, struct MHD_Connection *c, struct request *r,
				    const struct header_framing *f)
{
	unsigned char digest[DIGEST_SHA256_LEN], checksum[DIGEST_SHA256_LEN];
	int has_digest, has_checksum = 0;
	const char *v;
	size_t len = 0;
	uint64_t length = 0, seq = 0;
	struct job_meta meta;
	enum MHD_Result ret = MHD_NO;
	enum proto_err rc;
	enum spool_err e;

	char path_id[UUID_LEN + 1];

	if (r->put && jobid_client_parse(r->id, strlen(r->id), path_id) != PROTO_OK)
		return send_problem(c, PROBLEM_INVALID_JOB_ID, "path is not a UUID", 0);
	if (atomic_load(&h->draining))
		return send_problem(c, PROBLEM_DRAINING, "this server is shutting down", 0);
	if (owner_read(c, r, &ret))
		return ret;
	v = header_get(c, "Fs-Sequence", &len);
	if (!v || num_parse_u64(v, len, TUS_SIZE_LIMIT, &seq) != PROTO_OK)
		return send_problem(c, PROBLEM_INVALID_HEADER, "Fs-Sequence missing or malformed",
				    0);
	if (header_get(c, "Upload-Defer-Length", &len) || header_get(c, "Upload-Concat", &len))
		return send_problem(c, PROBLEM_INVALID_HEADER,
				    "deferred length and concatenation are not supported", 0);
	v = header_get(c, "Content-Encoding", &len);
	if (v && !header_equals(v, len, "identity"))
		return send_problem(c, PROBLEM_UNSUPPORTED_MEDIA_TYPE,
				    "Content-Encoding is not supported", 0);
	has_digest = digest_read(c, digest, &ret);
	if (has_digest < 0)
		return ret;
	v = header_get(c, "Upload-Metadata", &len);
	if (r->put) {
		rc = meta_parse_for(v ? v : "", v ? len : 0, path_id, &meta);
		if (!f->has_length && !f->chunked)
			return send_problem(c, PROBLEM_LENGTH_REQUIRED, NULL, 0);
		if (f->chunked)
			return send_problem(c, PROBLEM_LENGTH_REQUIRED,
					    "this server takes a PUT with Content-Length", 0);
		length = f->content_length;
		v = header_get(c, "Content-Type", &len);
		if (rc == PROTO_OK && v) {
			char fmt[META_FORMAT_MAX + 1];

			if (meta_format_parse(v, len, fmt, sizeof(fmt)) != PROTO_OK)
				return send_problem(c, PROBLEM_UNSUPPORTED_MEDIA_TYPE,
						    "document format not accepted", 0);
			strcpy(meta.format, fmt);
		}
	} else {
		rc = meta_parse(v ? v : "", v ? len : 0, &meta);
		v = header_get(c, "Upload-Length", &len);
		if (!v)
			return send_problem(c, PROBLEM_INVALID_HEADER, "Upload-Length required", 0);
		if (tus_length_parse(v, len, TUS_SIZE_LIMIT, &length) != PROTO_OK)
			return send_problem(c, PROBLEM_INVALID_HEADER, "Upload-Length malformed", 0);
		if (has_body(f)) {
			v = header_get(c, "Content-Type", &len);
			if (!v || tus_content_type_check(v, len) != PROTO_OK)
				return send_problem(c, PROBLEM_UNSUPPORTED_MEDIA_TYPE,
						    "body must be " TUS_CONTENT_TYPE, 0);
			v = header_get(c, "Upload-Checksum", &len);
			if (v) {
				rc = rc ? rc : digest_checksum_parse(v, len, checksum);
				if (rc == PROTO_E_CHECKSUM_ALGORITHM)
					return send_problem(c, PROBLEM_CHECKSUM_ALGORITHM, NULL, 0);
				has_checksum = 1;
			}
		}
	}
	if (rc == PROTO_E_CHECKSUM_SYNTAX || rc == PROTO_E_HASH_LENGTH ||
	    rc == PROTO_E_BASE64 || rc == PROTO_E_BASE64_PADDING || rc == PROTO_E_BASE64_NONCANON)
		if (has_checksum || !v)
			return send_problem(c, PROBLEM_INVALID_CHECKSUM, proto_strerror(rc), 0);
	if (rc)
		return send_problem(c, PROBLEM_INVALID_METADATA, proto_strerror(rc), 0);
	if (length > h->cfg.max_job_bytes)
		return send_problem(c, PROBLEM_TOO_LARGE, "job above Tus-Max-Size", 0);
	/* a compressed job is bounded by what it decodes to as well */
	if (meta.encoding == META_ENCODING_ZSTD && (uint64_t)meta.size > h->cfg.max_job_bytes)
		return send_problem(c, PROBLEM_TOO_LARGE, "document size above Tus-Max-Size", 0);
	if (f->has_length && f->content_length > length)
		return send_problem(c, PROBLEM_TOO_LARGE, "body longer than Upload-Length", 0);

	e = spool_create(h->spool, r->owner, &meta, length, has_digest ? digest : NULL, seq,
			 &r->job, &r->existed);
	if (e == SPOOL_E_RELEASED) {
		/* committed earlier and released or expired since: the same job, answered done */
		r->existed = 1;
		e = SPOOL_OK;
	}
	if (e == SPOOL_E_DIGEST && meta.encoding == META_ENCODING_ZSTD && length == 0)
		return send_problem(c, PROBLEM_DIGEST_MISMATCH, decode_strerror(DECODE_E_NO_FRAME),
				    0);
	if (e)
		return send_problem(c, spool_problem(e), spool_strerror(e), 0);
	if (!r->existed)
		log_info("upload.create", "job %s length %" PRIu64 " size %" PRIu64
			 " sequence %" PRIu64, r->job.id, length, r->job.size, seq);
	if (r->job.state == SPOOL_COMMITTED) {
		if (!r->existed) { /* a zero-length job commits at creation */
			member_held_add(h->member, &r->job);
			hook_queue(h->hook, r->job.id);
		}
		if (has_body(f))
			r->discard = 1; /* answered at the end, once the body is drained */
		else
			return send_upload(c, r->existed ? MHD_HTTP_OK : MHD_HTTP_CREATED, &r->job,
					   1, r->put);
		return MHD_YES;
	}
	if (r->put && r->existed)
		return send_problem(c, PROBLEM_JOB_CONFLICT,
				    "a resumable upload with this job id is in progress", 0);
	if (!has_body(f))
		return send_upload(c, MHD_HTTP_CREATED, &r->job, 1, r->put);
	if (r->job.offset != 0) {
		r->discard = 1; /* existing upload further along: the client PATCHes from there */
		return MHD_YES;
	}
	return body_open(h, c, r, 0, has_checksum ? checksum : NULL);
}

/* PATCH /v1/jobs/{id} */
static enum MHD_Result patch_begin(struct http *h, struct MHD_Connection *c, struct request *r,
				   const struct header_framing *f)
{
	unsigned char checksum[DIGEST_SHA256_LEN], digest[DIGEST_SHA256_LEN];
	int has_checksum = 0, has_digest;
	uint64_t offset = 0;
	enum MHD_Result ret = MHD_NO;
	enum proto_err rc;
	enum spool_err e;
	const char *v;
	size_t len = 0;

	if (owner_read(c, r, &ret))
		return ret;
	v = header_get(c, "Content-Type", &len);
	if (!v || tus_content_type_check(v, len) != PROTO_OK)
		return send_problem(c, PROBLEM_UNSUPPORTED_MEDIA_TYPE,
				    "body must be " TUS_CONTENT_TYPE, 0);
	v = header_get(c, "Upload-Offset", &len);
	if (!v || tus_offset_parse(v, len, &offset) != PROTO_OK)
		return send_problem(c, PROBLEM_INVALID_HEADER, "Upload-Offset missing or malformed",
				    0);
	if (!f->has_length && !f->chunked)
		return send_problem(c, PROBLEM_LENGTH_REQUIRED, NULL, 0);
	v = header_get(c, "Upload-Checksum", &len);
	if (v) {
		rc = digest_checksum_parse(v, len, checksum);
		if (rc == PROTO_E_CHECKSUM_ALGORITHM)
			return send_problem(c, PROBLEM_CHECKSUM_ALGORITHM, NULL, 0);
		if (rc)
			return send_problem(c, PROBLEM_INVALID_CHECKSUM, proto_strerror(rc), 0);
		has_checksum = 1;
	}
	has_digest = digest_read(c, digest, &ret);
	if (has_digest < 0)
		return ret;
	if (jobid_check(r->id, strlen(r->id)) != PROTO_OK)
		return send_problem(c, PROBLEM_NOT_FOUND, NULL, 0);
	e = spool_get(h->spool, r->owner, r->id, &r->job);
	if (e)
		return send_problem(c, spool_problem(e), NULL, 0);
	if (has_digest && (!r->job.has_digest ||
			   memcmp(digest, r->job.digest, sizeof(digest)) != 0))
		return send_problem(c, PROBLEM_INVALID_CHECKSUM,
				    "Repr-Digest differs from the one given at creation", 0);
	if (r->job.state == SPOOL_COMMITTED) {
		/*
		 * An empty PATCH at the end asks whether the job is committed (a client that lost
		 * the answer to its last byte): yes, 204 (PROTOCOL.md 8.4). Anything else is late.
		 */
		if (offset != r->job.length || !f->has_length || f->content_length != 0)
			return send_problem(c, PROBLEM_OFFSET_MISMATCH, "the job is already complete",
					    0);
		return send_upload(c, MHD_HTTP_NO_CONTENT, &r->job, 0, 0);
	}
	if (f->has_length && f->content_length > r->job.length - offset && offset <= r->job.length)
		return send_problem(c, PROBLEM_TOO_LARGE, "body goes past Upload-Length", 0);
	return body_open(h, c, r, offset, has_checksum ? checksum : NULL);
}

/* HEAD, GET and DELETE of /v1/jobs/{id}: answered on the first call. */
static enum MHD_Result job_answer(struct http *h, struct MHD_Connection *c, struct request *r)
{
	enum MHD_Result ret = MHD_NO;
	enum spool_err e;

	if (owner_read(c, r, &ret))
		return ret;
	if (jobid_check(r->id, strlen(r->id)) != PROTO_OK)
		return send_problem(c, PROBLEM_NOT_FOUND, NULL, 0);
	if (strcmp(r->method, "DELETE") == 0) {
		e = spool_get(h->spool, r->owner, r->id, &r->job);
		if (!e)
			e = spool_delete(h->spool, r->owner, r->id);
		if (e)
			return send_problem(c, spool_problem(e), NULL, 0);
		if (r->job.state == SPOOL_COMMITTED)
			member_held_remove(h->member, &r->job);
		log_info("upload.delete", "job %s deleted by its owner", r->id);
		return send_empty(c, MHD_HTTP_NO_CONTENT);
	}
	e = spool_get(h->spool, r->owner, r->id, &r->job);
	if (e)
		return send_problem(c, spool_problem(e), NULL, 0);
	if (strcmp(r->method, "HEAD") == 0) {
		/* HEAD also carries the canonical Upload-Metadata (PROTOCOL.md 8.3) */
		struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL,
									    MHD_RESPMEM_PERSISTENT);
		char meta[META_HEADER_MAX + 1];

		if (!resp)
			return MHD_NO;
		add_common(resp);
		add_upload_headers(resp, &r->job);
		if (meta_encode(&r->job.meta, meta, sizeof(meta), NULL) == PROTO_OK)
			MHD_add_response_header(resp, "Upload-Metadata", meta);
		return send_response(c, MHD_HTTP_OK, resp);
	}
	return send_json(c, MHD_HTTP_OK, job_json(&r->job, 0), NULL);
}

/* GET /v1/jobs (the owner's held jobs) and GET /v1/release/owners/{o}/jobs. */
static enum MHD_Result list_answer(struct http *h, struct MHD_Connection *c, const char *owner,
				   int release)
{
	struct spool_job *jobs = NULL;
	size_t n = 0;
	json_t *arr = json_array();
	enum spool_err e = spool_list(h->spool, owner, &jobs, &n);

	if (e || !arr) {
		json_decref(arr);
		free(jobs);
		return send_problem(c, PROBLEM_INTERNAL, NULL, 0);
	}
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, job_json(&jobs[i], release));
	free(jobs);
	return send_json(c, MHD_HTTP_OK, json_pack("{s:o}", "jobs", arr), NULL);
}

/* MHD's content reader for a zstd job: the next decoded bytes, never the whole document. */
static ssize_t content_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct decode *d = cls;
	enum decode_err e;
	size_t n = 0;

	/* bytes come in order (no Range): anything else cannot be served from a stream */
	if (pos != decode_offset(d))
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (max == 0)
		return 0;
	e = decode_read(d, buf, max, &n);
	if (e) {
		/* verified at commit: only a damaged disk gets here */
		log_error("release.decode", "cannot decode a committed job: %s",
			  decode_strerror(e));
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	return n ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void content_free(void *cls)
{
	decode_free(cls);
}

/* The job's document: the stored file itself, or a zstd job's decoded as it is sent. */
static struct MHD_Response *content_response(const struct spool_job *j, int fd)
{
	struct MHD_Response *resp;
	struct decode *d;

	if (j->meta.encoding != META_ENCODING_ZSTD) {
		/* MHD owns fd from here and closes it with the response */
		resp = MHD_create_response_from_fd64(j->length, fd);
		if (!resp)
			close(fd);
		return resp;
	}
	d = decode_new(fd, j->length, j->size); /* owns fd */
	if (!d)
		return NULL;
	resp = MHD_create_response_from_callback(j->size, CONTENT_BLOCK, content_read, d,
						 content_free);
	if (!resp)
		decode_free(d);
	return resp;
}

static enum MHD_Result release_answer(struct http *h, struct MHD_Connection *c,
				      struct request *r, const char *owner_enc)
{
	char digest[DIGEST_REPR_LEN];
	struct MHD_Response *resp;
	enum spool_err e;
	size_t n = 0;
	int fd = -1;

	if (r->route == ROUTE_REL_LIST) {
		if (owner_decode(owner_enc, strlen(owner_enc), r->owner, sizeof(r->owner), &n))
			return send_problem(c, PROBLEM_INVALID_HEADER, "owner is not Fs-Owner encoded",
					    0);
		return list_answer(h, c, r->owner, 1);
	}
	if (jobid_check(r->id, strlen(r->id)) != PROTO_OK)
		return send_problem(c, PROBLEM_NOT_FOUND, NULL, 0);
	if (r->route == ROUTE_REL_JOB) {
		e = spool_release(h->spool, r->id, &r->job);
		if (e)
			return send_problem(c, spool_problem(e), NULL, 0);
		member_held_remove(h->member, &r->job);
		log_info("job.release", "job %s released", r->id);
		return send_empty(c, MHD_HTTP_NO_CONTENT);
	}
	e = spool_open_data(h->spool, r->id, &fd, &r->job);
	if (e)
		return send_problem(c, spool_problem(e), NULL, 0);
	resp = content_response(&r->job, fd);
	if (!resp)
		return MHD_NO;
	add_common(resp);
	MHD_add_response_header(resp, "Content-Type", r->job.meta.format);
	if (digest_repr_format(r->job.sha256, digest, sizeof(digest)) == PROTO_OK)
		MHD_add_response_header(resp, "Repr-Digest", digest);
	return send_response(c, MHD_HTTP_OK, resp);
}

/* First call: everything up to the body is decided here. */
static enum MHD_Result request_begin(struct http *h, struct MHD_Connection *c, struct request *r,
				     const char *url, const char *method, const char *version)
{
	struct header_walk hw = {.n = 0};
	struct header_framing f;
	char owner_enc[OWNER_HEADER_MAX + 1] = "";
	enum proto_err rc;
	size_t len = 0;
	const char *v;

	MHD_get_connection_values_n(c, MHD_HEADER_KIND, header_collect, &hw);
	if (hw.n > HEADER_COUNT_MAX)
		return send_problem(c, PROBLEM_HEADERS_TOO_LARGE, "too many header fields", 1);
	rc = header_framing_check(hw.fields, hw.n, strcmp(version, MHD_HTTP_VERSION_1_0) == 0,
				  &f);
	if (rc == PROTO_E_HEADER_COUNT)
		return send_problem(c, PROBLEM_HEADERS_TOO_LARGE, proto_strerror(rc), 1);
	if (rc == PROTO_E_HEADER_NAME || rc == PROTO_E_HEADER_VALUE || rc == PROTO_E_EMPTY ||
	    rc == PROTO_E_TOO_LONG || rc == PROTO_E_FRAMING_HOST)
		return send_problem(c, PROBLEM_MALFORMED_REQUEST, proto_strerror(rc), 1);
	if (rc)
		return send_problem(c, PROBLEM_AMBIGUOUS_FRAMING, proto_strerror(rc), 1);
	if (header_repeat_check(hw.fields, hw.n))
		return send_problem(c, PROBLEM_MALFORMED_REQUEST, "a protocol header field is repeated",
				    1);

	snprintf(r->method, sizeof(r->method), "%s", method);
	r->route = route_parse(url, r->id, sizeof(r->id), owner_enc, sizeof(owner_enc));
	if (r->route == ROUTE_NONE)
		return send_problem(c, PROBLEM_NOT_FOUND, NULL, 0);
	if (strcmp(method, "OPTIONS") == 0 && (r->route == ROUTE_JOBS || r->route == ROUTE_JOB))
		return send_options(c, h);
	if (!method_allowed(r->route, method)) {
		struct MHD_Response *resp;
		const struct problem_info *info = problem_info(PROBLEM_METHOD_NOT_ALLOWED);
		size_t n = 0;
		char *body = problem_build(PROBLEM_METHOD_NOT_ALLOWED, NULL, &n);

		resp = body ? MHD_create_response_from_buffer(n, body, MHD_RESPMEM_MUST_FREE) : NULL;
		if (!resp) {
			free(body);
			return MHD_NO;
		}
		add_common(resp);
		MHD_add_response_header(resp, "Content-Type", PROBLEM_CONTENT_TYPE);
		MHD_add_response_header(resp, "Allow", route_allow(r->route));
		return send_response(c, (unsigned)info->status, resp);
	}
	if (r->route == ROUTE_HEALTH)
		return send_empty(c, MHD_HTTP_NO_CONTENT);
	if (r->route == ROUTE_READY)
		return atomic_load(&h->draining) ?
			       send_problem(c, PROBLEM_DRAINING, "draining", 0) :
			       send_empty(c, MHD_HTTP_NO_CONTENT);

	if (h->cfg.tls_client_ca_pem && !client_certificate_ok(c))
		return send_problem(c, PROBLEM_CLIENT_CERTIFICATE,
				    "a certificate issued by the configured CA is required", 0);
	if (r->route == ROUTE_REL_LIST || r->route == ROUTE_REL_CONTENT ||
	    r->route == ROUTE_REL_JOB) {
		if (!h->cfg.release_secret)
			return send_problem(c, PROBLEM_NOT_FOUND, "release API not configured", 0);
		if (bearer_ok(c, h->cfg.gateway_secret))
			return send_problem(c, PROBLEM_FORBIDDEN,
					    "gateway credentials do not open the release API", 0);
		if (!bearer_ok(c, h->cfg.release_secret))
			return send_problem(c, PROBLEM_UNAUTHORIZED, NULL, 0);
		return release_answer(h, c, r, owner_enc);
	}

	if (h->cfg.release_secret && bearer_ok(c, h->cfg.release_secret))
		return send_problem(c, PROBLEM_FORBIDDEN,
				    "release credentials do not open the upload API", 0);
	if (!bearer_ok(c, h->cfg.gateway_secret))
		return send_problem(c, PROBLEM_UNAUTHORIZED, NULL, 0);
	v = header_get(c, "Tus-Resumable", &len);
	r->put = strcmp(method, "PUT") == 0;
	if (v ? tus_resumable_check(v, len) != PROTO_OK :
		(!r->put && strcmp(method, "GET") != 0))
		return send_problem(c, PROBLEM_UNSUPPORTED_VERSION, "Tus-Resumable must be 1.0.0", 0);

	if (r->route == ROUTE_JOBS) {
		if (strcmp(method, "GET") == 0) {
			enum MHD_Result ret = MHD_NO;

			if (owner_read(c, r, &ret))
				return ret;
			return list_answer(h, c, r->owner, 0);
		}
		return create_begin(h, c, r, &f);
	}
	if (r->put)
		return create_begin(h, c, r, &f);
	if (strcmp(method, "PATCH") == 0)
		return patch_begin(h, c, r, &f);
	return job_answer(h, c, r);
}

/* Body bytes: straight to the spool, nothing buffered here. */
static void request_body(struct request *r, const char *data, size_t size)
{
	enum spool_err e;

	if (r->discard || !r->w || r->werr)
		return;
	e = spool_write(r->w, data, size);
	if (e)
		r->werr = e;
}

/* Last call: the body ended as framed. Commit or report. */
static enum MHD_Result request_finish(struct http *h, struct MHD_Connection *c,
				      struct request *r)
{
	const char *why = NULL;
	enum spool_err e;
	int was_receiving;

	if (r->discard)
		return send_upload(c, r->existed ? MHD_HTTP_OK : MHD_HTTP_CREATED, &r->job, 1,
				   r->put);
	if (!r->w) /* nothing was opened: should not happen, answered on the first call */
		return send_problem(c, PROBLEM_INTERNAL, NULL, 1);
	was_receiving = 1;
	if (r->werr) {
		spool_write_abort(r->w);
		r->w = NULL;
		if (r->put)
			spool_delete(h->spool, r->owner, r->job.id);
		return send_problem(c, spool_problem(r->werr), spool_strerror(r->werr), 0);
	}
	e = spool_write_end_why(r->w, &r->job, &why);
	r->w = NULL;
	if (e) {
		if (r->put && e != SPOOL_E_DIGEST)
			spool_delete(h->spool, r->owner, r->job.id);
		if (!why)
			why = spool_strerror(e);
		log_info("upload.refuse", "job %s: %s", r->job.id, why);
		return send_problem(c, spool_problem(e), why, 0);
	}
	if (was_receiving && r->job.state == SPOOL_COMMITTED) {
		log_info("upload.commit", "job %s committed, %" PRIu64 " bytes, document %" PRIu64
			 " bytes", r->job.id, r->job.length, r->job.size);
		member_held_add(h->member, &r->job);
		hook_queue(h->hook, r->job.id);
	}
	if (strcmp(r->method, "PATCH") == 0)
		return send_upload(c, MHD_HTTP_NO_CONTENT, &r->job, 0, 0);
	return send_upload(c, MHD_HTTP_CREATED, &r->job, 1, r->put);
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *c, const char *url,
				      const char *method, const char *version,
				      const char *upload_data, size_t *upload_data_size,
				      void **con_cls)
{
	struct http *h = cls;
	struct request *r = *con_cls;

	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		*con_cls = r;
		return request_begin(h, c, r, url, method, version);
	}
	if (*upload_data_size) {
		request_body(r, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	return request_finish(h, c, r);
}

/* A request ends, well or not: a writer still open means the body was cut short. */
static void request_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			      enum MHD_RequestTerminationCode toe)
{
	struct http *h = cls;
	struct request *r = *con_cls;

	(void)c;
	if (!r)
		return;
	if (r->w) {
		log_info("upload.interrupted", "job %s: body cut short (%d)", r->job.id, (int)toe);
		spool_write_abort(r->w);
		if (r->put)
			spool_delete(h->spool, r->owner, r->job.id);
	}
	free(r);
	*con_cls = NULL;
}

/* MHD's own messages; its format strings are its own, not ours. */
__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_warn("http.mhd", "%s", msg);
}

struct http *http_start(const struct http_config *cfg, struct spool *s, struct member *m,
			struct hook *k)
{
	struct http *h = calloc(1, sizeof(*h));
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;

	if (!h)
		return NULL;
	flags |= cfg->use_epoll ? MHD_USE_EPOLL : MHD_USE_POLL;
	h->cfg = *cfg;
	h->spool = s;
	h->member = m;
	h->hook = k;
	snprintf(h->max_size, sizeof(h->max_size), "%" PRIu64, cfg->max_job_bytes);
	if (inet_pton(AF_INET, cfg->bind, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)cfg->port);
	} else if (inet_pton(AF_INET6, cfg->bind, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)cfg->port);
		flags |= MHD_USE_IPv6;
	} else {
		log_error("http.start", "bind address %s is not an IP address", cfg->bind);
		free(h);
		return NULL;
	}
	if (cfg->tls_cert_pem) {
		struct MHD_OptionItem tls[] = {
			{MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)cfg->tls_cert_pem},
			{MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)cfg->tls_key_pem},
			{MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)cfg->tls_priorities},
			{cfg->tls_client_ca_pem ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, 0,
			 (void *)cfg->tls_client_ca_pem},
			{MHD_OPTION_END, 0, NULL},
		};

		flags |= MHD_USE_TLS;
		memcpy(h->tls, tls, sizeof(tls));
	} else {
		h->tls[0] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	}
	h->daemon = MHD_start_daemon(
		flags, (uint16_t)cfg->port, NULL, NULL, access_handler, h,
		/* the logger first: MHD reports faults in the options after it to stderr otherwise */
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
		(struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, cfg->threads,
		MHD_OPTION_CONNECTION_LIMIT, cfg->connection_limit, MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)((cfg->idle_timeout_ms + 999) / 1000), MHD_OPTION_NOTIFY_COMPLETED,
		request_completed, h, MHD_OPTION_STRICT_FOR_CLIENT, 1, MHD_OPTION_ARRAY, h->tls, MHD_OPTION_END);
	if (!h->daemon) {
		log_error("http.start", "cannot listen on %s port %d", cfg->bind, cfg->port);
		free(h);
		return NULL;
	}
	return h;
}

int http_port(const struct http *h)
{
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);

	return info ? info->port : -1;
}

void http_set_draining(struct http *h)
{
	atomic_store(&h->draining, 1);
}

void http_stop(struct http *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->daemon);
	free(h);
}
