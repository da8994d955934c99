/* Tests compressed (zstd) jobs end to end: real fs-server, real Redis, real disk, the gateway. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <zstd.h>

#include "proto/base64.h"
#include "proto/digest.h"
#include "proto/jobid.h"
#include "proto/meta.h"
#include "proto/owner.h"
#include "tests/lib/fs_gateway.h"
#include "tests/lib/fs_server.h"
#include "tests/lib/http_client.h"
#include "tests/lib/proc.h"
#include "tests/lib/redis_server.h"

#define AUTH "Authorization: Bearer " FS_SERVER_GATEWAY_SECRET
#define RELEASE_AUTH "Authorization: Bearer " FS_SERVER_RELEASE_SECRET
#define TUS "Tus-Resumable: 1.0.0"
#define OCTET "Content-Type: application/offset+octet-stream"

#define JOB1 "0f8fad5b-d9cb-469f-a165-70867728950e"
#define JOB2 "6ba7b810-9dad-41d1-80b4-00c04fd430c8"
#define JOB3 "1b4e28ba-2fa1-41d2-883f-0016d3cca427"

static struct redis_server *redis;
static struct fs_server *server;
static struct fs_gateway *gateway;

static void start(const char *extra)
{
	redis = redis_server_start();
	cr_assert_not_null(redis);
	server = fs_server_start(redis_server_port(redis), extra);
	cr_assert_not_null(server, "fs-server did not start");
}

static void start_plain(void)
{
	start(NULL);
}

static void stop(void)
{
	fs_gateway_free(gateway);
	fs_server_free(server);
	redis_server_stop(redis);
	gateway = NULL;
	server = NULL;
	redis = NULL;
}

/* ---- documents and their zstd form ---- */

/* A document that compresses well, different per seed, like a print job's page streams. */
static unsigned char *document(size_t len, unsigned seed)
{
	static const char words[] = "BT /F1 12 Tf 72 712 Td (Quarterly report) Tj ET q 0 g ";
	unsigned char *b = malloc(len ? len : 1);
	uint32_t x = seed * 2654435761u + 9;

	cr_assert_not_null(b);
	for (size_t i = 0; i < len; i++) {
		if (i % 80 == 0)
			x = x * 1103515245u + 12345u;
		b[i] = (unsigned char)words[(i + (x >> 16)) % (sizeof(words) - 1)];
	}
	return b;
}

/* doc as `frames` concatenated zstd frames (content checksums on), malloc'd. */
static unsigned char *pack(const unsigned char *doc, size_t len, unsigned frames, size_t *out_len)
{
	size_t cap = ZSTD_compressBound(len) + 64 * frames, pos = 0, at = 0;
	unsigned char *out = malloc(cap);
	ZSTD_CCtx *c = ZSTD_createCCtx();

	cr_assert(out && c);
	cr_assert(!ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)));
	for (unsigned f = 0; f < frames; f++) {
		size_t piece = f + 1 == frames ? len - at : len / frames;
		size_t n = ZSTD_compress2(c, out + pos, cap - pos, doc + at, piece);

		cr_assert(!ZSTD_isError(n), "%s", ZSTD_getErrorName(n));
		pos += n;
		at += piece;
	}
	ZSTD_freeCCtx(c);
	*out_len = pos;
	return out;
}

static void sha256(const void *p, size_t len, unsigned char out[DIGEST_SHA256_LEN])
{
	unsigned int n = 0;

	cr_assert_eq(EVP_Digest(p, len, out, &n, EVP_sha256(), NULL), 1);
}

static void sha256_hex(const void *p, size_t len, char hex[2 * DIGEST_SHA256_LEN + 1])
{
	unsigned char d[DIGEST_SHA256_LEN];

	sha256(p, len, d);
	for (size_t i = 0; i < sizeof(d); i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* "Repr-Digest: sha-256=:...:" of p. */
static void digest_line(char *line, size_t cap, const void *p, size_t len)
{
	unsigned char d[DIGEST_SHA256_LEN];
	char v[DIGEST_REPR_LEN];

	sha256(p, len, d);
	cr_assert_eq(digest_repr_format(d, v, sizeof(v)), PROTO_OK);
	snprintf(line, cap, "Repr-Digest: %s", v);
}

/* "Upload-Checksum: sha256 ..." of p. */
static void checksum_line(char *line, size_t cap, const void *p, size_t len)
{
	unsigned char d[DIGEST_SHA256_LEN];
	char v[DIGEST_CHECKSUM_LEN];

	sha256(p, len, d);
	cr_assert_eq(digest_checksum_format(d, v, sizeof(v)), PROTO_OK);
	snprintf(line, cap, "Upload-Checksum: %s", v);
}

/* The canonical Upload-Metadata of a job; size >= 0 makes it a zstd job of that size. */
static void meta_line(char *line, size_t cap, const char *job_id, int64_t size)
{
	struct job_meta m;
	char enc[META_HEADER_MAX + 1];

	meta_init(&m, job_id);
	snprintf(m.name, sizeof(m.name), "report.pdf");
	snprintf(m.format, sizeof(m.format), "application/pdf");
	if (size >= 0) {
		m.encoding = META_ENCODING_ZSTD;
		m.size = size;
	}
	cr_assert_eq(meta_encode(&m, enc, sizeof(enc), NULL), PROTO_OK);
	snprintf(line, cap, "Upload-Metadata: %s", enc);
}

/* ---- requests to fs-server ---- */

static const char *owner_line(const char *owner)
{
	static char line[64 + OWNER_HEADER_MAX];
	char enc[OWNER_HEADER_MAX + 1];

	cr_assert_eq(owner_encode(owner, strlen(owner), enc, sizeof(enc)), PROTO_OK);
	snprintf(line, sizeof(line), "Fs-Owner: %s", enc);
	return line;
}

/* POST /v1/jobs with the given metadata line and optional digest line; *r is the answer. */
static long create(const char *owner, const char *meta, uint64_t length, const char *digest,
		   struct http_reply *r)
{
	char len_line[64], url[128];
	const char *h[9];
	size_t n = 0;

	snprintf(len_line, sizeof(len_line), "Upload-Length: %" PRIu64, length);
	h[n++] = AUTH;
	h[n++] = TUS;
	h[n++] = owner_line(owner);
	h[n++] = len_line;
	h[n++] = "Fs-Sequence: 1";
	h[n++] = meta;
	if (digest)
		h[n++] = digest;
	h[n] = NULL;
	snprintf(url, sizeof(url), "%s/v1/jobs", server->url);
	cr_assert_eq(http_request("POST", url, h, NULL, 0, r), 0);
	return r->status;
}

/* POST, returning the Location path in loc (asserting 201). */
static void create_ok(const char *owner, const char *meta, uint64_t length, const char *digest,
		      char *loc, size_t cap)
{
	struct http_reply r = {0};

	cr_assert_eq(create(owner, meta, length, digest, &r), 201, "%s", r.body);
	cr_assert(http_reply_header(&r, "Location", loc, cap), "%s", r.headers);
	http_reply_free(&r);
}

/* PATCH bytes at offset, with their Upload-Checksum; *r is the answer. */
static long patch(const char *owner, const char *loc, uint64_t offset, const void *data,
		  size_t len, struct http_reply *r)
{
	char off_line[64], sum[128], url[400];
	const char *h[] = {AUTH, TUS, owner_line(owner), OCTET, off_line, sum, NULL};

	snprintf(off_line, sizeof(off_line), "Upload-Offset: %" PRIu64, offset);
	checksum_line(sum, sizeof(sum), data, len);
	snprintf(url, sizeof(url), "%s%s", server->url, loc);
	cr_assert_eq(http_request("PATCH", url, h, data ? data : "", len, r), 0);
	return r->status;
}

static long patch_status(const char *owner, const char *loc, uint64_t offset, const void *data,
			 size_t len)
{
	struct http_reply r = {0};
	long st = patch(owner, loc, offset, data, len, &r);

	http_reply_free(&r);
	return st;
}

static const char *id_of(const char *loc)
{
	const char *slash = strrchr(loc, '/');

	cr_assert_not_null(slash);
	return slash + 1;
}

/* GET .../content of a committed job. */
static long release_content(const char *id, struct http_reply *r)
{
	const char *h[] = {RELEASE_AUTH, NULL};
	char url[400];

	snprintf(url, sizeof(url), "%s/v1/release/jobs/%s/content", server->url, id);
	cr_assert_eq(http_request("GET", url, h, NULL, 0, r), 0);
	return r->status;
}

/* The owner's release list as JSON (asserting 200); the caller decrefs. */
static json_t *release_list(const char *owner)
{
	char enc[OWNER_HEADER_MAX + 1], url[512];
	const char *h[] = {RELEASE_AUTH, NULL};
	struct http_reply r = {0};
	json_t *doc;

	cr_assert_eq(owner_encode(owner, strlen(owner), enc, sizeof(enc)), PROTO_OK);
	snprintf(url, sizeof(url), "%s/v1/release/owners/%s/jobs", server->url, enc);
	cr_assert_eq(http_request("GET", url, h, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 200, "%s", r.body);
	doc = json_loadb(r.body, r.body_len, 0, NULL);
	cr_assert(json_is_object(doc), "%s", r.body);
	http_reply_free(&r);
	return doc;
}

/* The release object of job id in the owner's list; borrowed from doc. */
static json_t *release_object(json_t *doc, const char *id)
{
	json_t *jobs = json_object_get(doc, "jobs"), *o;
	size_t i;

	json_array_foreach(jobs, i, o) {
		const char *v = json_string_value(json_object_get(o, "id"));

		if (v && !strcmp(v, id))
			return o;
	}
	cr_assert_fail("job %s not in the release list", id);
	return NULL;
}

static json_int_t int_member(json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name);

	cr_assert(json_is_integer(v), "member %s", name);
	return json_integer_value(v);
}

static const char *str_member(json_t *o, const char *name)
{
	const char *v = json_string_value(json_object_get(o, name));

	cr_assert_not_null(v, "member %s", name);
	return v;
}

/* Asserts a problem answer of type slug and status; returns its detail (malloc'd or NULL). */
static char *problem_is(const struct http_reply *r, long status, const char *slug)
{
	char *detail = NULL;

	cr_assert_eq(http_reply_problem(r, status, slug, &detail), 0, "want %ld %s: status %ld: %s",
		     status, slug, r->status, r->body ? r->body : "");
	return detail;
}

/* The whole file at path, malloc'd, and its length. */
static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long n;

	cr_assert_not_null(f, "open %s", path);
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	cr_assert_geq(n, 0);
	cr_assert_eq(fseek(f, 0, SEEK_SET), 0);
	buf = malloc((size_t)n + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static size_t spool_count(const char *sub)
{
	char path[4200];
	struct dirent *e;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/spool/%s", server->dir, sub);
	d = opendir(path);
	if (!d)
		return 0;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* ---- the tests ---- */

TestSuite(server_zstd, .init = start_plain, .fini = stop, .timeout = 60);

Test(server_zstd, compressed_job_is_released_as_the_original_document)
{
	size_t doc_len = 3u << 20, packed_len, cut, got_len;
	unsigned char *doc = document(doc_len, 1), *packed = pack(doc, doc_len, 3, &packed_len);
	char meta[META_HEADER_MAX + 32], digest[128], loc[256], url[400], v[128];
	char hex[2 * DIGEST_SHA256_LEN + 1], want_meta[META_HEADER_MAX + 32], path[4200];
	const char *head[] = {AUTH, TUS, owner_line("alice"), NULL};
	struct http_reply r = {0};
	unsigned char *stored;
	json_t *doc_list, *o;

	cr_assert_lt(packed_len, doc_len / 4, "the document should compress: %zu", packed_len);
	meta_line(meta, sizeof(meta), JOB1, (int64_t)doc_len);
	digest_line(digest, sizeof(digest), doc, doc_len);
	/* Upload-Length is the compressed size; Repr-Digest the document's */
	create_ok("alice", meta, packed_len, digest, loc, sizeof(loc));

	/* HEAD: lengths of the bytes as sent, and the metadata with encoding and size */
	snprintf(url, sizeof(url), "%s%s", server->url, loc);
	cr_assert_eq(http_request("HEAD", url, head, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 200);
	cr_assert(http_reply_header(&r, "Upload-Length", v, sizeof(v)));
	cr_assert_eq(strtoull(v, NULL, 10), packed_len);
	cr_assert(http_reply_header(&r, "Upload-Metadata", want_meta, sizeof(want_meta)));
	cr_assert_str_eq(want_meta, meta + strlen("Upload-Metadata: "));
	http_reply_free(&r);

	/* two PATCHes, each with the Upload-Checksum of its compressed bytes */
	cut = packed_len / 3;
	cr_assert_eq(patch_status("alice", loc, 0, packed, cut), 204);
	cr_assert_eq(patch("alice", loc, cut, packed + cut, packed_len - cut, &r), 204, "%s",
		     r.body);
	cr_assert(http_reply_header(&r, "Upload-Offset", v, sizeof(v)));
	cr_assert_eq(strtoull(v, NULL, 10), packed_len);
	http_reply_free(&r);

	/* the status object: length as sent, size of the document */
	cr_assert_eq(http_request("GET", url, head, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 200, "%s", r.body);
	o = json_loadb(r.body, r.body_len, 0, NULL);
	cr_assert_not_null(o, "%s", r.body);
	cr_assert_str_eq(str_member(o, "state"), "committed");
	cr_assert_eq(int_member(o, "length"), (json_int_t)packed_len);
	cr_assert_eq(int_member(o, "offset"), (json_int_t)packed_len);
	cr_assert_eq(int_member(o, "size"), (json_int_t)doc_len);
	json_decref(o);
	http_reply_free(&r);

	/* the release object describes the document and says how it is stored */
	sha256_hex(doc, doc_len, hex);
	doc_list = release_list("alice");
	o = release_object(doc_list, id_of(loc));
	cr_assert_str_eq(str_member(o, "sha256"), hex);
	cr_assert_eq(int_member(o, "size"), (json_int_t)doc_len);
	cr_assert_str_eq(str_member(o, "encoding"), "zstd");
	cr_assert_eq(int_member(o, "stored_size"), (json_int_t)packed_len);
	cr_assert_eq(int_member(o, "length"), (json_int_t)packed_len);
	json_decref(doc_list);

	/* the content is the original document, byte for byte, with its length and digest */
	cr_assert_eq(release_content(id_of(loc), &r), 200, "%s", r.body);
	cr_assert_eq(r.body_len, doc_len);
	cr_assert_eq(memcmp(r.body, doc, doc_len), 0, "the released bytes are not the document");
	cr_assert(http_reply_header(&r, "Content-Length", v, sizeof(v)));
	cr_assert_eq(strtoull(v, NULL, 10), doc_len);
	cr_assert(http_reply_header(&r, "Repr-Digest", v, sizeof(v)));
	cr_assert_str_eq(v, digest + strlen("Repr-Digest: "));
	cr_assert(http_reply_header(&r, "Content-Type", v, sizeof(v)));
	cr_assert_str_eq(v, "application/pdf");
	http_reply_free(&r);

	/* on disk the job is kept as it was sent */
	snprintf(path, sizeof(path), "%s/spool/ready/%s/data", server->dir, id_of(loc));
	stored = slurp(path, &got_len);
	cr_assert_eq(got_len, packed_len);
	cr_assert_eq(memcmp(stored, packed, packed_len), 0);
	free(stored);
	free(doc);
	free(packed);
}

/* The peak resident set (VmHWM) of the server process, in KiB. */
static long server_hwm_kib(void)
{
	char path[64], *status, *line;
	long kib = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)server->pid);
	status = proc_read_file(path);
	cr_assert_not_null(status);
	line = strstr(status, "VmHWM:");
	if (line)
		kib = strtol(line + strlen("VmHWM:"), NULL, 10);
	free(status);
	cr_assert_gt(kib, 0);
	return kib;
}

/*
 * GETs a job's content over a raw connection into one buffer of cap bytes (no growing buffer:
 * reallocating 64 MiB piece by piece is quadratic under ASan). Returns the body and its length
 * within buf, asserting a 200.
 */
static const char *raw_content(const char *id, char *buf, size_t cap, size_t *len)
{
	char req[512];
	const char *body;
	long got;
	int n;

	n = snprintf(req, sizeof(req),
		     "GET /v1/release/jobs/%s/content HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		     "%s\r\nConnection: close\r\n\r\n",
		     id, RELEASE_AUTH);
	cr_assert(n > 0 && (size_t)n < sizeof(req));
	got = tcp_exchange(server->port, req, (size_t)n, buf, cap, 30000);
	cr_assert_gt(got, 0);
	cr_assert_eq(strncmp(buf, "HTTP/1.1 200", 12), 0, "%.200s", buf);
	body = strstr(buf, "\r\n\r\n");
	cr_assert_not_null(body);
	body += 4;
	*len = (size_t)got - (size_t)(body - buf);
	return body;
}

/* Neither the commit nor the release holds the document: the server's peak memory barely moves. */
Test(server_zstd, a_large_job_is_decoded_in_bounded_memory)
{
	size_t doc_len = 64u << 20, packed_len, step = 8u << 20;
	unsigned char *doc = document(doc_len, 8), *packed = pack(doc, doc_len, 4, &packed_len);
	char meta[META_HEADER_MAX + 32], digest[128], loc[256], *raw;
	size_t raw_cap = doc_len + 65536, got_len = 0;
	const char *got;
	long before, after_commit, after_release;

	meta_line(meta, sizeof(meta), JOB3, (int64_t)doc_len);
	digest_line(digest, sizeof(digest), doc, doc_len);
	create_ok("ivan", meta, packed_len, digest, loc, sizeof(loc));
	before = server_hwm_kib();
	for (size_t at = 0; at < packed_len; at += step) {
		size_t n = packed_len - at < step ? packed_len - at : step;

		cr_assert_eq(patch_status("ivan", loc, at, packed + at, n), 204);
	}
	after_commit = server_hwm_kib();
	raw = malloc(raw_cap);
	cr_assert_not_null(raw);
	got = raw_content(id_of(loc), raw, raw_cap, &got_len);
	cr_assert_eq(got_len, doc_len);
	cr_assert_eq(memcmp(got, doc, doc_len), 0);
	free(raw);
	after_release = server_hwm_kib();
	/* the document is 64 MiB; the PATCH bodies 8 MiB at most */
	cr_assert_lt(after_commit - before, 24 * 1024, "commit grew the peak by %ld KiB",
		     after_commit - before);
	cr_assert_lt(after_release - after_commit, 24 * 1024, "release grew the peak by %ld KiB",
		     after_release - after_commit);
	free(doc);
	free(packed);
}

Test(server_zstd, wrong_digest_or_broken_stream_is_460_and_discards_the_upload)
{
	size_t doc_len = 200000, packed_len;
	unsigned char *doc = document(doc_len, 2), *other = document(doc_len, 3);
	unsigned char *packed = pack(doc, doc_len, 1, &packed_len), *bad;
	char meta[META_HEADER_MAX + 32], digest[128], wrong[128], loc[256], *detail;
	struct http_reply r = {0};
	const struct {
		const char *name;
		size_t len;        /* bytes of bad[] sent */
		int64_t size;
		const char *want;  /* in the problem detail */
	} cases[] = {
		{"digest of another document", packed_len, (int64_t)doc_len, "Repr-Digest"},
		{"size one short", packed_len, (int64_t)doc_len - 1, "more bytes than its size"},
		{"size one over", packed_len, (int64_t)doc_len + 1, "fewer bytes than its size"},
		{"trailing garbage", packed_len + 9, (int64_t)doc_len, "not a zstd frame"},
		{"truncated", packed_len - 10, (int64_t)doc_len, "ends inside a zstd frame"},
	};

	bad = malloc(packed_len + 9);
	cr_assert_not_null(bad);
	memcpy(bad, packed, packed_len);
	memcpy(bad + packed_len, "%%EOF\r\n\r\n", 9);
	digest_line(digest, sizeof(digest), doc, doc_len);
	digest_line(wrong, sizeof(wrong), other, doc_len);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		meta_line(meta, sizeof(meta), JOB1, cases[i].size);
		create_ok("bob", meta, cases[i].len, i == 0 ? wrong : digest, loc, sizeof(loc));
		cr_assert_eq(patch("bob", loc, 0, bad, cases[i].len, &r), 460, "%s: %s",
			     cases[i].name, r.body);
		detail = problem_is(&r, 460, "digest-mismatch");
		cr_assert(detail && strstr(detail, cases[i].want), "%s: %s", cases[i].name,
			  detail ? detail : "(no detail)");
		free(detail);
		http_reply_free(&r);
		cr_assert_eq(spool_count("ready"), 0, "%s", cases[i].name);
		cr_assert_eq(spool_count("uploads"), 0, "%s", cases[i].name);
	}
	/* no byte at all is no zstd frame: refused at creation, where a 0-byte job commits */
	meta_line(meta, sizeof(meta), JOB2, 0);
	cr_assert_eq(create("bob", meta, 0, NULL, &r), 460, "%s", r.body);
	detail = problem_is(&r, 460, "digest-mismatch");
	cr_assert(detail && strstr(detail, "at least one frame"), "%s", detail ? detail : "-");
	free(detail);
	http_reply_free(&r);
	/* the client creates it again from its local copy, with the same job id */
	meta_line(meta, sizeof(meta), JOB1, (int64_t)doc_len);
	create_ok("bob", meta, packed_len, digest, loc, sizeof(loc));
	cr_assert_eq(patch_status("bob", loc, 0, packed, packed_len), 204);
	cr_assert_eq(spool_count("ready"), 1);
	free(doc);
	free(other);
	free(packed);
	free(bad);
}

Test(server_zstd, sizes_above_the_maximum_job_size_are_413)
{
	char meta[META_HEADER_MAX + 32], line[256], *detail;
	char job3[BASE64_ENCODED_LEN(UUID_LEN) + 1];
	struct http_reply r = {0};

	/* the default max_job_size is 4G: a small upload that says it decodes to more */
	meta_line(meta, sizeof(meta), JOB1, 5000000000);
	cr_assert_eq(create("carol", meta, 1000, NULL, &r), 413, "%s", r.body);
	detail = problem_is(&r, 413, "too-large");
	cr_assert(detail && strstr(detail, "size"), "%s", detail ? detail : "(none)");
	free(detail);
	http_reply_free(&r);
	/* at the limit it is fine */
	meta_line(meta, sizeof(meta), JOB1, 4LL << 30);
	cr_assert_eq(create("carol", meta, 1000, NULL, &r), 201, "%s", r.body);
	http_reply_free(&r);
	/* and the compressed length is bounded as ever */
	meta_line(meta, sizeof(meta), JOB2, 1000);
	cr_assert_eq(create("carol", meta, 5000000000, NULL, &r), 413, "%s", r.body);
	http_reply_free(&r);
	/* zstd without size, or size without zstd: invalid metadata */
	cr_assert_eq(base64_encode((const unsigned char *)JOB3, UUID_LEN, job3, sizeof(job3), NULL),
		     PROTO_OK);
	snprintf(line, sizeof(line), "Upload-Metadata: job-id %s,encoding enN0ZA==", job3);
	cr_assert_eq(create("carol", line, 1000, NULL, &r), 400, "%s", r.body);
	free(problem_is(&r, 400, "invalid-metadata"));
	http_reply_free(&r);
	snprintf(line, sizeof(line), "Upload-Metadata: job-id %s,size MTAwMA==", job3);
	cr_assert_eq(create("carol", line, 1000, NULL, &r), 400, "%s", r.body);
	free(problem_is(&r, 400, "invalid-metadata"));
	http_reply_free(&r);
	cr_assert_eq(spool_count("uploads"), 1);
}

Test(server_zstd, identity_jobs_are_unchanged)
{
	size_t len = 150000;
	unsigned char *doc = document(len, 4);
	char meta[META_HEADER_MAX + 32], digest[128], loc[256], hex[2 * DIGEST_SHA256_LEN + 1];
	struct http_reply r = {0};
	json_t *list, *o;

	meta_line(meta, sizeof(meta), JOB3, -1);
	cr_assert_null(strstr(meta, "encoding"), "identity is not named: %s", meta);
	digest_line(digest, sizeof(digest), doc, len);
	create_ok("dave", meta, len, digest, loc, sizeof(loc));
	cr_assert_eq(patch_status("dave", loc, 0, doc, len), 204);
	cr_assert_eq(release_content(id_of(loc), &r), 200);
	cr_assert_eq(r.body_len, len);
	cr_assert_eq(memcmp(r.body, doc, len), 0);
	http_reply_free(&r);
	sha256_hex(doc, len, hex);
	list = release_list("dave");
	o = release_object(list, id_of(loc));
	cr_assert_str_eq(str_member(o, "sha256"), hex);
	cr_assert_str_eq(str_member(o, "encoding"), "identity");
	cr_assert_eq(int_member(o, "size"), (json_int_t)len);
	cr_assert_eq(int_member(o, "stored_size"), (json_int_t)len);
	cr_assert_eq(int_member(o, "length"), (json_int_t)len);
	json_decref(list);
	free(doc);
}

Test(server_zstd, one_shot_put_of_a_compressed_job)
{
	size_t doc_len = 100000, packed_len;
	unsigned char *doc = document(doc_len, 5), *packed = pack(doc, doc_len, 1, &packed_len);
	char meta[META_HEADER_MAX + 32], digest[128], url[256], id[64];
	const char *h[8];
	struct http_reply r = {0};
	json_t *o;

	meta_line(meta, sizeof(meta), JOB2, (int64_t)doc_len);
	digest_line(digest, sizeof(digest), doc, doc_len);
	h[0] = AUTH;
	h[1] = owner_line("erin");
	h[2] = "Fs-Sequence: 7";
	h[3] = "Content-Type: application/pdf";
	h[4] = meta;
	h[5] = digest;
	h[6] = NULL;
	snprintf(url, sizeof(url), "%s/v1/jobs/%s", server->url, JOB2);
	cr_assert_eq(http_request("PUT", url, h, packed, packed_len, &r), 0);
	cr_assert_eq(r.status, 201, "%s", r.body);
	o = json_loadb(r.body, r.body_len, 0, NULL);
	cr_assert_not_null(o);
	snprintf(id, sizeof(id), "%s", str_member(o, "id"));
	cr_assert_eq(int_member(o, "length"), (json_int_t)packed_len);
	cr_assert_eq(int_member(o, "size"), (json_int_t)doc_len);
	json_decref(o);
	http_reply_free(&r);
	cr_assert_eq(release_content(id, &r), 200);
	cr_assert_eq(r.body_len, doc_len);
	cr_assert_eq(memcmp(r.body, doc, doc_len), 0);
	http_reply_free(&r);
	free(doc);
	free(packed);
}

/* The hook records the size and hash it was given, and copies the file it was pointed at. */
static void start_hooked(void)
{
	start("hook_command = d=\"${FSG_JOB_META%/spool/*}\"; "
	      "cp \"$FSG_JOB_FILE\" \"$d/$FSG_JOB_ID.doc\" && "
	      "echo \"$FSG_JOB_ID $FSG_JOB_SIZE $FSG_JOB_SHA256\" >> \"$d/hook.log\"\n");
}

TestSuite(server_zstd_hooked, .init = start_hooked, .fini = stop, .timeout = 60);

Test(server_zstd_hooked, the_hook_gets_the_original_document)
{
	size_t doc_len = 500000, packed_len, got_len = 0;
	unsigned char *doc = document(doc_len, 6), *packed = pack(doc, doc_len, 2, &packed_len);
	char meta[META_HEADER_MAX + 32], loc[256], path[4200], want[256];
	char hex[2 * DIGEST_SHA256_LEN + 1], *log = NULL;
	unsigned char *copy;

	meta_line(meta, sizeof(meta), JOB1, (int64_t)doc_len);
	create_ok("frank", meta, packed_len, NULL, loc, sizeof(loc));
	cr_assert_eq(patch_status("frank", loc, 0, packed, packed_len), 204);
	sha256_hex(doc, doc_len, hex);
	snprintf(want, sizeof(want), "%s %zu %s\n", id_of(loc), doc_len, hex);
	snprintf(path, sizeof(path), "%s/hook.log", server->dir);
	for (int i = 0; i < 100; i++) {
		struct timespec ts = {0, 50000000L};

		free(log);
		log = proc_read_file(path);
		if (log && strstr(log, want))
			break;
		nanosleep(&ts, NULL);
	}
	cr_assert(log && strstr(log, want), "hook.log: %s", log ? log : "(none)");
	free(log);
	snprintf(path, sizeof(path), "%s/%s.doc", server->dir, id_of(loc));
	copy = slurp(path, &got_len);
	cr_assert_eq(got_len, doc_len, "the hook got %zu bytes", got_len);
	cr_assert_eq(memcmp(copy, doc, doc_len), 0);
	free(copy);
	/* the decoded copy went once the hook was done */
	for (int i = 0; i < 50 && spool_count("tmp"); i++) {
		struct timespec ts = {0, 20000000L};

		nanosleep(&ts, NULL);
	}
	cr_assert_eq(spool_count("tmp"), 0);
	free(doc);
	free(packed);
}

/* ---- through the gateway: encoding and size reach the server ---- */

static void stack_up(void)
{
	signal(SIGPIPE, SIG_IGN);
	start(NULL);
	gateway = fs_gateway_start(redis_server_port(redis), NULL);
	cr_assert_not_null(gateway);
	cr_assert_eq(fs_gateway_wait_ready(gateway, 10000), 0, "gateway not ready");
}

TestSuite(server_zstd_gateway, .init = stack_up, .fini = stop, .timeout = 60);

Test(server_zstd_gateway, compressed_upload_through_the_gateway)
{
	size_t doc_len = 1u << 20, packed_len;
	unsigned char *doc = document(doc_len, 7), *packed = pack(doc, doc_len, 1, &packed_len);
	char meta[META_HEADER_MAX + 32], digest[128], len_line[64], off_line[64], sum[128];
	char url[640], loc[512], v[META_HEADER_MAX + 1], sid_job[JOBID_LEN + 1];
	char *auth = fs_gateway_auth(gateway, "grace");
	struct http_reply r = {0};
	const char *dot;

	cr_assert_not_null(auth);
	meta_line(meta, sizeof(meta), JOB1, (int64_t)doc_len);
	digest_line(digest, sizeof(digest), doc, doc_len);
	snprintf(len_line, sizeof(len_line), "Upload-Length: %zu", packed_len);
	{
		const char *h[] = {auth, TUS, len_line, meta, digest, NULL};

		snprintf(url, sizeof(url), "%s/v1/jobs", gateway->url);
		cr_assert_eq(http_request("POST", url, h, NULL, 0, &r), 0);
		cr_assert_eq(r.status, 201, "%s", r.body);
		cr_assert(http_reply_header(&r, "Location", loc, sizeof(loc)));
		http_reply_free(&r);
	}
	/* the server got the canonical metadata with encoding and size: HEAD shows it back */
	{
		const char *h[] = {auth, TUS, NULL};

		snprintf(url, sizeof(url), "%s%s", gateway->url, loc);
		cr_assert_eq(http_request("HEAD", url, h, NULL, 0, &r), 0);
		cr_assert_eq(r.status, 200, "%s", r.headers);
		cr_assert(http_reply_header(&r, "Upload-Metadata", v, sizeof(v)), "%s", r.headers);
		cr_assert_str_eq(v, meta + strlen("Upload-Metadata: "));
		http_reply_free(&r);
	}
	snprintf(off_line, sizeof(off_line), "Upload-Offset: 0");
	checksum_line(sum, sizeof(sum), packed, packed_len);
	{
		const char *h[] = {auth, TUS, OCTET, off_line, sum, NULL};

		cr_assert_eq(http_request("PATCH", url, h, packed, packed_len, &r), 0);
		cr_assert_eq(r.status, 204, "%s", r.body);
		http_reply_free(&r);
	}
	/* the public id is server.job.tag: the release API of that server has the document */
	dot = strchr(loc + strlen("/v1/jobs/"), '.');
	cr_assert_not_null(dot);
	snprintf(sid_job, sizeof(sid_job), "%.*s", JOBID_LEN, dot + 1);
	cr_assert_eq(release_content(sid_job, &r), 200, "%s", r.body);
	cr_assert_eq(r.body_len, doc_len);
	cr_assert_eq(memcmp(r.body, doc, doc_len), 0);
	http_reply_free(&r);

	/* the gateway bounds the size too */
	meta_line(meta, sizeof(meta), JOB2, 5000000000);
	{
		const char *h[] = {auth, TUS, len_line, meta, NULL};

		snprintf(url, sizeof(url), "%s/v1/jobs", gateway->url);
		cr_assert_eq(http_request("POST", url, h, NULL, 0, &r), 0);
		free(problem_is(&r, 413, "too-large"));
		http_reply_free(&r);
	}
	free(auth);
	free(doc);
	free(packed);
}
