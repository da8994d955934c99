/* problem: RFC 9457 problem+json bodies with the protocol's stable type URIs. */
#include "proto/problem.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

/* Indexed by enum problem_type; slugs are part of the protocol and never change. */
static const struct problem_info problem_table[PROBLEM__COUNT] = {
	[PROBLEM_MALFORMED_REQUEST] = {400, "malformed-request", "Malformed request",
				       PROBLEM_RETRY_NEVER},
	[PROBLEM_AMBIGUOUS_FRAMING] = {400, "ambiguous-framing", "Ambiguous request framing",
				       PROBLEM_RETRY_NEVER},
	[PROBLEM_INVALID_HEADER] = {400, "invalid-header", "Invalid protocol header",
				    PROBLEM_RETRY_NEVER},
	[PROBLEM_INVALID_METADATA] = {400, "invalid-metadata", "Invalid upload metadata",
				      PROBLEM_RETRY_NEVER},
	[PROBLEM_INVALID_CHECKSUM] = {400, "invalid-checksum", "Invalid checksum or digest",
				      PROBLEM_RETRY_NEVER},
	[PROBLEM_CHECKSUM_ALGORITHM] = {400, "unsupported-checksum-algorithm",
					"Unsupported checksum algorithm", PROBLEM_RETRY_NEVER},
	[PROBLEM_INVALID_JOB_ID] = {400, "invalid-job-id", "Invalid job id", PROBLEM_RETRY_NEVER},
	[PROBLEM_UNAUTHORIZED] = {401, "unauthorized", "Unauthorized", PROBLEM_RETRY_NEVER},
	[PROBLEM_CLIENT_CERTIFICATE] = {403, "client-certificate-required",
					"Client certificate required", PROBLEM_RETRY_NEVER},
	[PROBLEM_FORBIDDEN] = {403, "forbidden", "Forbidden", PROBLEM_RETRY_NEVER},
	[PROBLEM_NOT_FOUND] = {404, "not-found", "Job not found", PROBLEM_RETRY_NEVER},
	[PROBLEM_METHOD_NOT_ALLOWED] = {405, "method-not-allowed", "Method not allowed",
					PROBLEM_RETRY_NEVER},
	[PROBLEM_REQUEST_TIMEOUT] = {408, "request-timeout", "Request too slow",
				     PROBLEM_RETRY_RESYNC},
	[PROBLEM_OFFSET_MISMATCH] = {409, "offset-mismatch", "Upload offset mismatch",
				     PROBLEM_RETRY_RESYNC},
	[PROBLEM_JOB_CONFLICT] = {409, "job-id-conflict", "Job id already used",
				  PROBLEM_RETRY_NEVER},
	[PROBLEM_NOT_COMMITTED] = {409, "not-committed", "Job not committed yet",
				   PROBLEM_RETRY_NEVER},
	[PROBLEM_UPLOAD_EXPIRED] = {410, "upload-expired", "Upload expired",
				    PROBLEM_RETRY_NEW_UPLOAD},
	[PROBLEM_LENGTH_REQUIRED] = {411, "length-required", "Length required",
				     PROBLEM_RETRY_NEVER},
	[PROBLEM_UNSUPPORTED_VERSION] = {412, "unsupported-version", "Unsupported tus version",
					 PROBLEM_RETRY_NEVER},
	[PROBLEM_TOO_LARGE] = {413, "too-large", "Job too large", PROBLEM_RETRY_NEVER},
	[PROBLEM_URI_TOO_LONG] = {414, "uri-too-long", "URI too long", PROBLEM_RETRY_NEVER},
	[PROBLEM_UNSUPPORTED_MEDIA_TYPE] = {415, "unsupported-media-type",
					    "Unsupported media type", PROBLEM_RETRY_NEVER},
	[PROBLEM_TOO_MANY_REQUESTS] = {429, "too-many-requests", "Too many requests",
				       PROBLEM_RETRY_DELAY},
	[PROBLEM_HEADERS_TOO_LARGE] = {431, "headers-too-large", "Header fields too large",
				       PROBLEM_RETRY_NEVER},
	[PROBLEM_CHECKSUM_MISMATCH] = {460, "checksum-mismatch", "Checksum mismatch",
				       PROBLEM_RETRY_RESYNC},
	[PROBLEM_DIGEST_MISMATCH] = {460, "digest-mismatch", "Digest mismatch",
				     PROBLEM_RETRY_NEW_UPLOAD},
	[PROBLEM_INTERNAL] = {500, "internal-error", "Internal error", PROBLEM_RETRY_DELAY},
	[PROBLEM_UPSTREAM_FAILED] = {502, "upstream-failed", "Data-center server failed",
				     PROBLEM_RETRY_RESYNC},
	[PROBLEM_NO_SERVER] = {503, "no-server-available", "No data-center server available",
			       PROBLEM_RETRY_DELAY},
	[PROBLEM_DRAINING] = {503, "draining", "Shutting down", PROBLEM_RETRY_DELAY},
	[PROBLEM_UPSTREAM_TIMEOUT] = {504, "upstream-timeout", "Data-center server timed out",
				      PROBLEM_RETRY_RESYNC},
	[PROBLEM_INSUFFICIENT_STORAGE] = {507, "insufficient-storage", "Insufficient storage",
					  PROBLEM_RETRY_DELAY},
};

static const char *const retry_names[] = {
	[PROBLEM_RETRY_NEVER] = "never",
	[PROBLEM_RETRY_DELAY] = "delay",
	[PROBLEM_RETRY_RESYNC] = "resync",
	[PROBLEM_RETRY_NEW_UPLOAD] = "new-upload",
};

#define RETRY_COUNT (sizeof(retry_names) / sizeof(retry_names[0]))
#define PREFIX_LEN (sizeof(PROBLEM_TYPE_PREFIX) - 1)

const struct problem_info *problem_info(enum problem_type t)
{
	if ((unsigned)t == PROBLEM_UNKNOWN || (unsigned)t >= PROBLEM__COUNT)
		return NULL;
	return &problem_table[t];
}

const char *problem_retry_name(enum problem_retry r)
{
	if ((unsigned)r >= RETRY_COUNT)
		return NULL;
	return retry_names[r];
}

static int is_continuation(char c)
{
	return ((unsigned char)c & 0xC0) == 0x80;
}

/*
 * Longest prefix of s[0..len) that is at most max bytes and does not split a UTF-8 sequence:
 * back off while the first byte left out is a continuation byte, at most three times (a
 * sequence has no more). A longer run is not UTF-8: max is returned for the caller to refuse.
 */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
	size_t cut = max;

	if (len <= max)
		return len;
	while (cut > 0 && max - cut < 3 && is_continuation(s[cut]))
		cut--;
	return is_continuation(s[cut]) ? max : cut;
}

char *problem_build(enum problem_type t, const char *detail, size_t *len)
{
	const struct problem_info *info = problem_info(t);
	char type[sizeof(PROBLEM_TYPE_PREFIX) + 64];
	char cut[PROBLEM_DETAIL_MAX + 1];
	json_t *obj;
	char *body;

	if (!info)
		return NULL;
	snprintf(type, sizeof(type), "%s%s", PROBLEM_TYPE_PREFIX, info->slug);
	if (detail) {
		/* jansson checks all of detail, bytes past the cut included, for UTF-8 */
		json_t *whole = json_string(detail);
		size_t n;

		if (!whole)
			return NULL;
		json_decref(whole);
		/* cut like problem_parse does, so the body stays small and round-trips exactly */
		n = utf8_cut(detail, strlen(detail), PROBLEM_DETAIL_MAX);
		memcpy(cut, detail, n);
		cut[n] = '\0';
	}
	/* "s*" leaves the member out when detail is NULL. */
	obj = json_pack("{s:s, s:s, s:i, s:s, s:s*}", "type", type, "title", info->title,
			"status", info->status, "retry", retry_names[info->retry], "detail",
			detail ? cut : NULL);
	if (!obj)
		return NULL;
	body = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(obj);
	if (body && len)
		*len = strlen(body);
	return body;
}

/*
 * jansson nests up to JSON_PARSER_MAX_DEPTH (2048) levels, recursing for each on parse and on
 * free. A problem body never needs more than a few, so refuse deep input before jansson sees
 * it. Only brackets outside strings count; anything malformed is left for jansson to refuse.
 */
static int too_deep(const char *s, size_t len)
{
	int in_string = 0;
	size_t depth = 0;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = 0;
		} else if (c == '"') {
			in_string = 1;
		} else if (c == '{' || c == '[') {
			if (++depth > PROBLEM_DEPTH_MAX)
				return 1;
		} else if ((c == '}' || c == ']') && depth > 0) {
			depth--;
		}
	}
	return 0;
}

/* Members RFC 9457 defines as strings: any other type makes the body unusable. */
static const char *const string_members[] = {"type", "title", "detail", "instance", "retry"};

static int members_are_strings(json_t *obj)
{
	for (size_t i = 0; i < sizeof(string_members) / sizeof(string_members[0]); i++) {
		json_t *v = json_object_get(obj, string_members[i]);

		if (v && !json_is_string(v))
			return 0;
	}
	return 1;
}

static enum problem_type type_lookup(json_t *v)
{
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);

	if (len <= PREFIX_LEN || memcmp(s, PROBLEM_TYPE_PREFIX, PREFIX_LEN) != 0)
		return PROBLEM_UNKNOWN;
	s += PREFIX_LEN;
	len -= PREFIX_LEN;
	for (unsigned t = PROBLEM_UNKNOWN + 1; t < PROBLEM__COUNT; t++) {
		const char *slug = problem_table[t].slug;

		if (strlen(slug) == len && memcmp(slug, s, len) == 0)
			return (enum problem_type)t;
	}
	return PROBLEM_UNKNOWN;
}

static int retry_lookup(json_t *v, enum problem_retry *out)
{
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);

	for (unsigned r = 0; r < RETRY_COUNT; r++)
		if (strlen(retry_names[r]) == len && memcmp(retry_names[r], s, len) == 0) {
			*out = (enum problem_retry)r;
			return 1;
		}
	return 0;
}

enum proto_err problem_parse(const char *body, size_t len, struct problem *out)
{
	json_t *root = NULL, *status, *type, *detail, *retry;
	enum proto_err rc = PROTO_OK;
	struct problem p;
	json_int_t st;

	if (len > PROBLEM_BODY_MAX)
		return PROTO_E_TOO_LONG;
	if (too_deep(body, len))
		return PROTO_E_JSON;
	/*
	 * Duplicate members make the body mean two things: jansson refuses them and the body
	 * counts as not JSON. Without JSON_ALLOW_NUL it also refuses "\u0000", so no string
	 * below holds a NUL. Scalars are accepted as JSON so that they fail as the wrong shape.
	 */
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
	if (!root)
		return PROTO_E_JSON;
	if (!json_is_object(root)) {
		rc = PROTO_E_PROBLEM_SHAPE;
		goto out;
	}
	if (!members_are_strings(root)) {
		rc = PROTO_E_PROBLEM_SHAPE;
		goto out;
	}
	type = json_object_get(root, "type");
	detail = json_object_get(root, "detail");
	retry = json_object_get(root, "retry");
	status = json_object_get(root, "status");
	if (!status) {
		rc = PROTO_E_PROBLEM_STATUS;
		goto out;
	}
	if (!json_is_integer(status)) {
		rc = PROTO_E_PROBLEM_SHAPE;
		goto out;
	}
	st = json_integer_value(status);
	if (st < 400 || st > 599) {
		rc = PROTO_E_PROBLEM_STATUS;
		goto out;
	}
	memset(&p, 0, sizeof(p));
	p.status = (int)st;
	p.type = type ? type_lookup(type) : PROBLEM_UNKNOWN;
	if (p.type != PROBLEM_UNKNOWN && problem_table[p.type].status != p.status) {
		rc = PROTO_E_PROBLEM_STATUS;
		goto out;
	}
	if (!retry || !retry_lookup(retry, &p.retry)) {
		if (p.type != PROBLEM_UNKNOWN)
			p.retry = problem_table[p.type].retry;
		else if (p.status >= 500 || p.status == 429)
			p.retry = PROBLEM_RETRY_DELAY;
		else
			p.retry = PROBLEM_RETRY_NEVER;
	}
	if (detail) {
		const char *s = json_string_value(detail);
		size_t n = json_string_length(detail);

		/* Cannot happen without JSON_ALLOW_NUL; refused rather than silently cut. */
		if (memchr(s, '\0', n)) {
			rc = PROTO_E_PROBLEM_SHAPE;
			goto out;
		}
		n = utf8_cut(s, n, PROBLEM_DETAIL_MAX);
		memcpy(p.detail, s, n);
		p.detail[n] = '\0';
	}
	*out = p;
out:
	json_decref(root);
	return rc;
}
