/* Fuzz target: Upload-Metadata, media types and timestamps; accepted values re-encode stably. */
#include <stdint.h>
#include <string.h>

#include "proto/meta.h"

static void check(int ok)
{
	if (!ok)
		__builtin_trap();
}

static int known_error(enum proto_err rc)
{
	return rc != PROTO_OK && strcmp(proto_strerror(rc), "unknown error") != 0;
}

static int terminated(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

static int same(const struct job_meta *a, const struct job_meta *b)
{
	return strcmp(a->job_id, b->job_id) == 0 && strcmp(a->name, b->name) == 0 &&
	       strcmp(a->format, b->format) == 0 && a->copies == b->copies &&
	       a->submitted_at_ms == b->submitted_at_ms && a->encoding == b->encoding &&
	       a->size == b->size;
}

static void fuzz_meta(const char *v, size_t len)
{
	struct job_meta a, b;
	char enc[2048], again[2048], fmt[META_FORMAT_MAX + 1];
	size_t n = 0, m = 0;
	enum proto_err rc;

	rc = meta_parse(v, len, &a);
	if (rc) {
		check(known_error(rc));
		return;
	}
	check(terminated(a.job_id, sizeof(a.job_id)) && strlen(a.job_id) == UUID_LEN);
	check(terminated(a.name, sizeof(a.name)));
	check(terminated(a.format, sizeof(a.format)));
	check(a.copies >= 1 && a.copies <= META_COPIES_MAX);
	check(a.submitted_at_ms >= -1);
	/* size comes with zstd and only with it */
	check((a.encoding == META_ENCODING_IDENTITY && a.size == -1) ||
	      (a.encoding == META_ENCODING_ZSTD && a.size >= 0 && a.size <= META_SIZE_MAX));
	/* the stored format is itself an accepted, normalized media type */
	check(meta_format_parse(a.format, strlen(a.format), fmt, sizeof(fmt)) == PROTO_OK);
	check(strcmp(fmt, a.format) == 0);

	check(meta_encode(&a, enc, sizeof(enc), &n) == PROTO_OK);
	check(n == strlen(enc) && n <= META_HEADER_MAX);
	check(meta_parse(enc, n, &b) == PROTO_OK);
	check(same(&a, &b));
	/* canonical: encoding the re-parsed value gives the same bytes */
	check(meta_encode(&b, again, sizeof(again), &m) == PROTO_OK);
	check(m == n && memcmp(enc, again, n) == 0);
	check(meta_encode(&a, again, n, &m) == PROTO_E_BUFFER);
}

/* With a path job id (the one-shot PUT), a parsed job always carries that id. */
static void fuzz_put(const char *v, size_t len)
{
	static const char path_id[] = "0f8fad5b-d9cb-469f-a165-70867728950e";
	struct job_meta a;
	enum proto_err rc;

	rc = meta_parse_for(v, len, path_id, &a);
	if (rc) {
		check(known_error(rc) && rc != PROTO_E_META_JOB_ID);
		return;
	}
	check(strcmp(a.job_id, path_id) == 0);
}

static void fuzz_format(const char *v, size_t len)
{
	char out[META_FORMAT_MAX + 1], again[META_FORMAT_MAX + 1];
	enum proto_err rc;

	rc = meta_format_parse(v, len, out, sizeof(out));
	if (rc) {
		check(rc == PROTO_E_META_FORMAT);
		return;
	}
	check(terminated(out, sizeof(out)));
	check(meta_format_parse(out, strlen(out), again, sizeof(again)) == PROTO_OK);
	check(strcmp(out, again) == 0);
}

static void fuzz_time(const char *v, size_t len)
{
	char buf[META_TIME_LEN + 1];
	int64_t ms = 0, back = 0;
	enum proto_err rc;

	rc = meta_time_parse(v, len, &ms);
	if (rc) {
		check(rc == PROTO_E_META_TIME);
		return;
	}
	check(meta_time_format(ms, buf, sizeof(buf)) == PROTO_OK);
	check(strlen(buf) == META_TIME_LEN);
	check(meta_time_parse(buf, META_TIME_LEN, &back) == PROTO_OK && back == ms);
	/* an input already in canonical form comes back byte for byte */
	if (len == META_TIME_LEN)
		check(memcmp(buf, v, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *v = (const char *)data;

	fuzz_meta(v, size);
	fuzz_put(v, size);
	fuzz_format(v, size);
	fuzz_time(v, size);
	return 0;
}
