/* Tests fs-server's benchmark-only bench_discard mode: real process, every rule kept, no data. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "proto/digest.h"
#include "proto/jobid.h"
#include "proto/meta.h"
#include "proto/owner.h"
#include "tests/lib/fs_server.h"
#include "tests/lib/http_client.h"
#include "tests/lib/redis_server.h"

#define AUTH "Authorization: Bearer " FS_SERVER_GATEWAY_SECRET
#define TUS "Tus-Resumable: 1.0.0"
#define OCTET "Content-Type: application/offset+octet-stream"
#define OWNER "dora@example.com"

#define PATCH_LEN (6u << 20)
#define PUT_LEN (16u << 20)
#define ALLOC_MAX (64u << 10) /* job.json files and directories: far below one job's bytes */

static struct redis_server *redis;
static struct fs_server *server;

static void start(void)
{
	redis = redis_server_start();
	cr_assert_not_null(redis);
	server = fs_server_start(redis_server_port(redis), "bench_discard = true\n");
	cr_assert_not_null(server, "fs-server did not start");
}

static void stop(void)
{
	fs_server_free(server);
	redis_server_stop(redis);
	server = NULL;
	redis = NULL;
}

/* ---- helpers ---- */

static unsigned char *pattern(size_t len, unsigned seed)
{
	unsigned char *buf = malloc(len);
	uint32_t x = seed * 2654435761u + 1;

	cr_assert_not_null(buf);
	for (size_t i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (unsigned char)(x >> 16);
	}
	return buf;
}

static const char *owner_line(void)
{
	static char line[64 + OWNER_HEADER_MAX];
	char enc[OWNER_HEADER_MAX + 1];

	cr_assert_eq(owner_encode(OWNER, strlen(OWNER), enc, sizeof(enc)), PROTO_OK);
	snprintf(line, sizeof(line), "Fs-Owner: %s", enc);
	return line;
}

/* "Repr-Digest: ..." of p; flip != 0 makes it wrong. */
static void digest_line(char *line, size_t cap, const void *p, size_t len, int flip)
{
	unsigned char d[DIGEST_SHA256_LEN];
	char v[DIGEST_REPR_LEN];

	cr_assert(EVP_Digest(p, len, d, NULL, EVP_sha256(), NULL));
	d[0] ^= (unsigned char)flip;
	cr_assert_eq(digest_repr_format(d, v, sizeof(v)), PROTO_OK);
	snprintf(line, cap, "Repr-Digest: %s", v);
}

/* The canonical Upload-Metadata of a fresh job id; size >= 0 makes it a zstd job. */
static void meta_line(char *line, size_t cap, char *job_id, int64_t size)
{
	struct job_meta m;
	char enc[META_HEADER_MAX + 1];

	cr_assert_eq(jobid_client_generate(job_id), PROTO_OK);
	meta_init(&m, job_id);
	snprintf(m.name, sizeof(m.name), "bench.pdf");
	snprintf(m.format, sizeof(m.format), "application/pdf");
	if (size >= 0) {
		m.encoding = META_ENCODING_ZSTD;
		m.size = size;
	}
	cr_assert_eq(meta_encode(&m, enc, sizeof(enc), NULL), PROTO_OK);
	snprintf(line, cap, "Upload-Metadata: %s", enc);
}

/* POST /v1/jobs; *r is the answer. */
static long create(const char *meta, uint64_t length, const char *digest, struct http_reply *r)
{
	char len_line[64], url[128];
	const char *h[] = {AUTH, TUS, owner_line(), len_line, "Fs-Sequence: 1", meta, digest, NULL};

	snprintf(len_line, sizeof(len_line), "Upload-Length: %" PRIu64, length);
	snprintf(url, sizeof(url), "%s/v1/jobs", server->url);
	cr_assert_eq(http_request("POST", url, h, NULL, 0, r), 0);
	return r->status;
}

/* PATCH bytes at offset; returns the status and the answer's Upload-Offset in *now. */
static long patch(const char *loc, uint64_t offset, const void *data, size_t len, int64_t *now)
{
	char off_line[64], url[400], v[64];
	const char *h[] = {AUTH, TUS, owner_line(), OCTET, off_line, NULL};
	struct http_reply r = {0};
	long status;

	snprintf(off_line, sizeof(off_line), "Upload-Offset: %" PRIu64, offset);
	snprintf(url, sizeof(url), "%s%s", server->url, loc);
	cr_assert_eq(http_request("PATCH", url, h, data, len, &r), 0);
	status = r.status;
	*now = http_reply_header(&r, "Upload-Offset", v, sizeof(v)) ? strtoll(v, NULL, 10) : -1;
	http_reply_free(&r);
	return status;
}

/* HEAD: the upload's Upload-Offset, or -1 when the answer is not 200. */
static int64_t head_offset(const char *loc)
{
	const char *h[] = {AUTH, TUS, owner_line(), NULL};
	struct http_reply r = {0};
	char url[400], v[64];
	int64_t off = -1;

	snprintf(url, sizeof(url), "%s%s", server->url, loc);
	cr_assert_eq(http_request("HEAD", url, h, NULL, 0, &r), 0);
	if (r.status == 200 && http_reply_header(&r, "Upload-Offset", v, sizeof(v)))
		off = strtoll(v, NULL, 10);
	http_reply_free(&r);
	return off;
}

/* PUT /v1/jobs/{job_id} of body with the given metadata and digest lines; *r is the answer. */
static long put(const char *job_id, const char *meta, const char *digest, const void *body,
		size_t len, struct http_reply *r)
{
	const char *h[] = {AUTH, owner_line(), "Fs-Sequence: 2", "Content-Type: application/pdf",
			   meta, digest, NULL};
	char url[256];

	snprintf(url, sizeof(url), "%s/v1/jobs/%s", server->url, job_id);
	cr_assert_eq(http_request("PUT", url, h, body, len, r), 0);
	return r->status;
}

/* Asserts a problem answer of status and type slug; returns its detail (malloc'd or NULL). */
static char *problem_is(const struct http_reply *r, long status, const char *slug)
{
	char *detail = NULL;

	cr_assert_eq(http_reply_problem(r, status, slug, &detail), 0, "want %ld %s: status %ld: %s",
		     status, slug, r->status, r->body ? r->body : "");
	return detail;
}

/* Bytes allocated on disk under dir, recursively (st_blocks, not sizes). */
static uint64_t allocated_under(const char *dir)
{
	char path[4200];
	struct dirent *e;
	struct stat st;
	uint64_t sum = 0;
	DIR *d = opendir(dir);

	cr_assert_not_null(d, "opendir %s", dir);
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (lstat(path, &st) == -1)
			continue;
		if (S_ISDIR(st.st_mode))
			sum += allocated_under(path);
		else if (S_ISREG(st.st_mode))
			sum += (uint64_t)st.st_blocks * 512;
	}
	closedir(d);
	return sum;
}

static uint64_t spool_allocated(void)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/spool", server->dir);
	return allocated_under(path);
}

/* Size of spool/<area>/<id>/data, or -1 when there is none. */
static int64_t data_size(const char *area, const char *id)
{
	char path[4200];
	struct stat st;

	snprintf(path, sizeof(path), "%s/spool/%s/%s/data", server->dir, area, id);
	return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

static const char *id_of(const char *loc)
{
	const char *slash = strrchr(loc, '/');

	cr_assert_not_null(slash);
	return slash + 1;
}

/* ---- the tests ---- */

TestSuite(server_discard, .init = start, .fini = stop, .timeout = 60);

Test(server_discard, says_so_in_its_log)
{
	char *log = fs_server_log(server);

	cr_assert_not_null(log);
	cr_assert_not_null(strstr(log, "bench_discard is on: job data is not kept"), "%s", log);
	cr_assert_not_null(strstr(log, "\"level\":\"warn\""), "%s", log);
	free(log);
}

Test(server_discard, patch_flow_keeps_offsets_and_commits_without_storing)
{
	static const size_t cuts[] = {0, 1000000, 4200000, PATCH_LEN};
	unsigned char *doc = pattern(PATCH_LEN, 1);
	char meta[META_HEADER_MAX + 32], digest[128], job_id[UUID_LEN + 1], loc[256];
	struct http_reply r = {0};
	int64_t now = -1;

	meta_line(meta, sizeof(meta), job_id, -1);
	digest_line(digest, sizeof(digest), doc, PATCH_LEN, 0);
	cr_assert_eq(create(meta, PATCH_LEN, digest, &r), 201, "%s", r.body);
	cr_assert(http_reply_header(&r, "Location", loc, sizeof(loc)), "%s", r.headers);
	http_reply_free(&r);
	cr_assert_eq(head_offset(loc), 0);
	for (size_t i = 0; i + 1 < sizeof(cuts) / sizeof(cuts[0]); i++) {
		cr_assert_eq(patch(loc, cuts[i], doc + cuts[i], cuts[i + 1] - cuts[i], &now), 204);
		cr_assert_eq(now, (int64_t)cuts[i + 1]);
		if (cuts[i + 1] < PATCH_LEN) {
			cr_assert_eq(head_offset(loc), (int64_t)cuts[i + 1]);
			cr_assert_eq(data_size("uploads", id_of(loc)), (int64_t)cuts[i + 1]);
		}
	}
	/* committed: its data file is the job's size, and sparse */
	cr_assert_eq(head_offset(loc), PATCH_LEN);
	cr_assert_eq(data_size("ready", id_of(loc)), PATCH_LEN);
	cr_assert_lt(spool_allocated(), ALLOC_MAX);
	/* a wrong offset is still 409 with the real one */
	cr_assert_eq(patch(loc, 5, doc, 10, &now), 409);
	free(doc);
}

Test(server_discard, put_of_16_mib_commits_without_storing)
{
	unsigned char *doc = pattern(PUT_LEN, 2);
	char meta[META_HEADER_MAX + 32], digest[128], job_id[UUID_LEN + 1];
	struct http_reply r = {0};
	json_t *o;

	meta_line(meta, sizeof(meta), job_id, -1);
	digest_line(digest, sizeof(digest), doc, PUT_LEN, 0);
	cr_assert_eq(put(job_id, meta, digest, doc, PUT_LEN, &r), 201, "%s", r.body);
	o = json_loadb(r.body, r.body_len, 0, NULL);
	cr_assert_not_null(o, "%s", r.body);
	cr_assert_str_eq(json_string_value(json_object_get(o, "state")), "committed");
	cr_assert_eq(json_integer_value(json_object_get(o, "length")), PUT_LEN);
	cr_assert_eq(json_integer_value(json_object_get(o, "offset")), PUT_LEN);
	cr_assert_eq(data_size("ready", json_string_value(json_object_get(o, "id"))), PUT_LEN);
	json_decref(o);
	http_reply_free(&r);
	cr_assert_lt(spool_allocated(), ALLOC_MAX);
	free(doc);
}

Test(server_discard, a_wrong_digest_is_still_460)
{
	unsigned char *doc = pattern(PUT_LEN, 3);
	char meta[META_HEADER_MAX + 32], digest[128], job_id[UUID_LEN + 1];
	struct http_reply r = {0};

	meta_line(meta, sizeof(meta), job_id, -1);
	digest_line(digest, sizeof(digest), doc, PUT_LEN, 0x80);
	put(job_id, meta, digest, doc, PUT_LEN, &r);
	free(problem_is(&r, 460, "digest-mismatch"));
	http_reply_free(&r);
	free(doc);
}

Test(server_discard, zstd_creation_is_415_with_a_clear_detail)
{
	unsigned char *doc = pattern(4096, 4);
	char meta[META_HEADER_MAX + 32], digest[128], job_id[UUID_LEN + 1];
	struct http_reply r = {0};
	char *detail;

	meta_line(meta, sizeof(meta), job_id, 100000);
	digest_line(digest, sizeof(digest), doc, 4096, 0);
	create(meta, 4096, digest, &r);
	detail = problem_is(&r, 415, "unsupported-media-type");
	cr_assert(detail && strstr(detail, "bench_discard"), "%s", r.body);
	free(detail);
	http_reply_free(&r);
	/* a PUT with its body too; nothing is left behind: the same id without zstd is taken */
	put(job_id, meta, digest, doc, 4096, &r);
	free(problem_is(&r, 415, "unsupported-media-type"));
	http_reply_free(&r);
	meta_line(meta, sizeof(meta), job_id, -1);
	digest_line(digest, sizeof(digest), doc, 4096, 0);
	cr_assert_eq(put(job_id, meta, digest, doc, 4096, &r), 201, "%s", r.body);
	http_reply_free(&r);
	free(doc);
}
