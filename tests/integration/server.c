/* Tests fs-server as a process: real redis-server, real HTTP on loopback, real disk. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include "proto/base64.h"
#include "proto/digest.h"
#include "proto/meta.h"
#include "proto/owner.h"
#include "proto/rkey.h"
#include "tests/lib/fs_server.h"
#include "tests/lib/http_client.h"
#include "tests/lib/proc.h"
#include "tests/lib/redis_server.h"

#define AUTH "Authorization: Bearer " FS_SERVER_GATEWAY_SECRET
#define RELEASE_AUTH "Authorization: Bearer " FS_SERVER_RELEASE_SECRET
#define TUS "Tus-Resumable: 1.0.0"
#define OCTET "Content-Type: application/offset+octet-stream"

static struct redis_server *redis;
static struct fs_server *server;

static void start(const char *extra)
{
	redis = redis_server_start();
	cr_assert_not_null(redis);
	server = fs_server_start(redis_server_port(redis), extra);
	cr_assert_not_null(server, "fs-server did not start");
}

static void stop(void)
{
	fs_server_free(server);
	redis_server_stop(redis);
	server = NULL;
	redis = NULL;
}

static void start_plain(void)
{
	start(NULL);
}

/* Fs-Owner header line for owner. */
static const char *owner_header(const char *owner)
{
	static char line[64 + OWNER_HEADER_MAX];
	char enc[OWNER_HEADER_MAX + 1];

	cr_assert_eq(owner_encode(owner, strlen(owner), enc, sizeof(enc)), PROTO_OK);
	snprintf(line, sizeof(line), "Fs-Owner: %s", enc);
	return line;
}

static void meta_header(char *line, size_t cap, const char *job_id, const char *name)
{
	struct job_meta m;
	char enc[1024];
	size_t n = 0;

	meta_init(&m, job_id);
	snprintf(m.name, sizeof(m.name), "%s", name);
	cr_assert_eq(meta_encode(&m, enc, sizeof(enc), &n), PROTO_OK);
	snprintf(line, cap, "Upload-Metadata: %s", enc);
}

static void digest_header(char *line, size_t cap, const void *data, size_t len)
{
	unsigned char d[DIGEST_SHA256_LEN];
	char v[DIGEST_REPR_LEN];

	cr_assert(EVP_Digest(data, len, d, NULL, EVP_sha256(), NULL));
	cr_assert_eq(digest_repr_format(d, v, sizeof(v)), PROTO_OK);
	snprintf(line, cap, "Repr-Digest: %s", v);
}

static void fill(unsigned char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)((i * 131 + seed * 7 + (i >> 9)) & 0xff);
}

/* POSTs a creation and returns the status; *loc gets the Location path. */
static long create(const char *owner, const char *job_id, uint64_t length, uint64_t seq,
		   const void *data_for_digest, char *loc, size_t loc_cap)
{
	char len_line[64], seq_line[64], meta[1200], digest[128], url[128];
	const char *headers[8];
	struct http_reply r = {0};
	size_t n = 0;
	long status;

	snprintf(len_line, sizeof(len_line), "Upload-Length: %" PRIu64, length);
	snprintf(seq_line, sizeof(seq_line), "Fs-Sequence: %" PRIu64, seq);
	meta_header(meta, sizeof(meta), job_id, "doc.pdf");
	headers[n++] = AUTH;
	headers[n++] = TUS;
	headers[n++] = owner_header(owner);
	headers[n++] = len_line;
	headers[n++] = seq_line;
	headers[n++] = meta;
	if (data_for_digest) {
		digest_header(digest, sizeof(digest), data_for_digest, length);
		headers[n++] = digest;
	}
	headers[n] = NULL;
	snprintf(url, sizeof(url), "%s/v1/jobs", server->url);
	cr_assert_eq(http_request("POST", url, headers, NULL, 0, &r), 0);
	status = r.status;
	if (loc && !http_reply_header(&r, "Location", loc, loc_cap))
		loc[0] = '\0';
	http_reply_free(&r);
	return status;
}

/* PATCHes bytes at offset; returns the status and the new Upload-Offset in *new_offset. */
static long patch(const char *owner, const char *loc, uint64_t offset, const void *data,
		  size_t len, uint64_t *new_offset)
{
	char off_line[64], url[400], v[64];
	const char *headers[] = {AUTH, TUS, owner_header(owner), OCTET, off_line, NULL};
	struct http_reply r = {0};
	long status;

	snprintf(off_line, sizeof(off_line), "Upload-Offset: %" PRIu64, offset);
	snprintf(url, sizeof(url), "%s%s", server->url, loc);
	cr_assert_eq(http_request("PATCH", url, headers, data ? data : "", len, &r), 0);
	status = r.status;
	if (new_offset && http_reply_header(&r, "Upload-Offset", v, sizeof(v)))
		*new_offset = strtoull(v, NULL, 10);
	http_reply_free(&r);
	return status;
}

/* HEADs the upload; returns its Upload-Offset, or -1 when the answer is not 200. */
static int64_t head_offset(const char *owner, const char *loc)
{
	const char *headers[] = {AUTH, TUS, owner_header(owner), NULL};
	struct http_reply r = {0};
	char url[400], v[64];
	int64_t off = -1;

	snprintf(url, sizeof(url), "%s%s", server->url, loc);
	cr_assert_eq(http_request("HEAD", url, headers, NULL, 0, &r), 0);
	if (r.status == 200 && http_reply_header(&r, "Upload-Offset", v, sizeof(v)))
		off = strtoll(v, NULL, 10);
	cr_expect(r.status != 200 || http_reply_header(&r, "Cache-Control", v, sizeof(v)));
	http_reply_free(&r);
	return off;
}

/* GETs the release list of owner: the reply's body is JSON. */
static long release_list(const char *owner, struct http_reply *r)
{
	char enc[OWNER_HEADER_MAX + 1], url[512];
	const char *headers[] = {RELEASE_AUTH, NULL};

	cr_assert_eq(owner_encode(owner, strlen(owner), enc, sizeof(enc)), PROTO_OK);
	snprintf(url, sizeof(url), "%s/v1/release/owners/%s/jobs", server->url, enc);
	cr_assert_eq(http_request("GET", url, headers, NULL, 0, r), 0);
	return r->status;
}

/* Fetches a committed job's content through the release API. */
static long release_content(const char *job_id, struct http_reply *r)
{
	const char *headers[] = {RELEASE_AUTH, NULL};
	char url[400];

	snprintf(url, sizeof(url), "%s/v1/release/jobs/%s/content", server->url, job_id);
	cr_assert_eq(http_request("GET", url, headers, NULL, 0, r), 0);
	return r->status;
}

static const char *id_of(const char *loc)
{
	const char *slash = strrchr(loc, '/');

	cr_assert_not_null(slash);
	return slash + 1;
}

static size_t count_entries(const char *sub)
{
	char path[4096];
	size_t n = 0;
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "%s/spool/%s", server->dir, sub);
	d = opendir(path);
	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

#define JOB1 "0f8fad5b-d9cb-469f-a165-70867728950e"
#define JOB2 "6ba7b810-9dad-41d1-80b4-00c04fd430c8"
#define JOB3 "1b4e28ba-2fa1-41d2-883f-0016d3cca427"

TestSuite(server, .init = start_plain, .fini = stop, .timeout = 60);

Test(server, upload_in_several_patches_with_head_after_each)
{
	enum { LEN = 300000 };
	static unsigned char data[LEN];
	char loc[256];
	uint64_t off = 0;
	struct http_reply r = {0};

	fill(data, LEN, 1);
	cr_assert_eq(create("alice", JOB1, LEN, 10, data, loc, sizeof(loc)), 201);
	cr_assert_eq(strncmp(loc, "/v1/jobs/", 9), 0, "Location %s", loc);
	cr_assert_eq(head_offset("alice", loc), 0);

	static const size_t cuts[] = {1, 65536, 100000, 299999, LEN};
	size_t at = 0;
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		long st = patch("alice", loc, at, data + at, cuts[i] - at, &off);

		cr_assert_eq(st, 204, "PATCH %zu", i);
		cr_assert_eq(off, cuts[i]);
		at = cuts[i];
		if (at < LEN)
			cr_assert_eq(head_offset("alice", loc), (int64_t)at);
	}
	/* wrong offset, after the end too */
	cr_assert_eq(patch("alice", loc, 5, data, 10, NULL), 409);
	/* the job is committed and byte-identical */
	cr_assert_eq(release_content(id_of(loc), &r), 200);
	cr_assert_eq(r.body_len, LEN);
	cr_assert(memcmp(r.body, data, LEN) == 0);
	http_reply_free(&r);
	cr_assert_eq(count_entries("ready"), 1);
	cr_assert_eq(count_entries("uploads"), 0);
}

Test(server, wrong_offset_is_409_and_changes_nothing)
{
	unsigned char data[1000];
	char loc[256];
	uint64_t off = 0;

	fill(data, sizeof(data), 2);
	cr_assert_eq(create("alice", JOB1, sizeof(data), 1, NULL, loc, sizeof(loc)), 201);
	cr_assert_eq(patch("alice", loc, 0, data, 400, &off), 204);
	cr_assert_eq(patch("alice", loc, 300, data + 300, 100, NULL), 409);
	cr_assert_eq(patch("alice", loc, 500, data + 500, 100, NULL), 409);
	cr_assert_eq(head_offset("alice", loc), 400);
	/* another owner sees nothing */
	cr_assert_eq(head_offset("mallory", loc), -1);
	cr_assert_eq(patch("mallory", loc, 400, data + 400, 600, NULL), 404);
	cr_assert_eq(patch("alice", loc, 400, data + 400, 600, &off), 204);
	cr_assert_eq(off, sizeof(data));
}

Test(server, digest_mismatch_commits_nothing)
{
	unsigned char data[5000], other[5000];
	char loc[256];

	fill(data, sizeof(data), 3);
	memcpy(other, data, sizeof(other));
	other[4000] ^= 1;
	cr_assert_eq(create("alice", JOB1, sizeof(data), 1, data, loc, sizeof(loc)), 201);
	cr_assert_eq(patch("alice", loc, 0, other, sizeof(other), NULL), 460);
	cr_assert_eq(count_entries("ready"), 0);
	cr_assert_eq(count_entries("uploads"), 0);
	/* the client may create the same job again and send the right bytes */
	cr_assert_eq(create("alice", JOB1, sizeof(data), 1, data, loc, sizeof(loc)), 201);
	cr_assert_eq(patch("alice", loc, 0, data, sizeof(data), NULL), 204);
	cr_assert_eq(count_entries("ready"), 1);
}

Test(server, same_client_job_id_twice_is_one_job)
{
	unsigned char data[2000];
	char loc1[256], loc2[256], loc3[256];
	struct http_reply r = {0};

	fill(data, sizeof(data), 4);
	cr_assert_eq(create("alice", JOB1, sizeof(data), 1, NULL, loc1, sizeof(loc1)), 201);
	cr_assert_eq(patch("alice", loc1, 0, data, 500, NULL), 204);
	/* a retried creation finds the upload and its offset */
	cr_assert_eq(create("alice", JOB1, sizeof(data), 1, NULL, loc2, sizeof(loc2)), 201);
	cr_assert_str_eq(loc1, loc2);
	cr_assert_eq(patch("alice", loc1, 500, data + 500, 1500, NULL), 204);
	/* once committed, a creation answers 200 with the same job */
	cr_assert_eq(create("alice", JOB1, sizeof(data), 1, NULL, loc3, sizeof(loc3)), 200);
	cr_assert_str_eq(loc1, loc3);
	/* another length under the same id is a conflict */
	cr_assert_eq(create("alice", JOB1, sizeof(data) + 1, 1, NULL, NULL, 0), 409);
	/* another owner's same id is another job */
	cr_assert_eq(create("bob", JOB1, 0, 1, NULL, loc2, sizeof(loc2)), 201);
	cr_assert_str_neq(loc1, loc2);
	cr_assert_eq(release_list("alice", &r), 200);
	cr_assert_not_null(strstr(r.body, JOB1));
	cr_assert_null(strstr(strstr(r.body, JOB1) + 1, JOB1), "one job only: %s", r.body);
	http_reply_free(&r);
	cr_assert_eq(count_entries("ready"), 2);
}

Test(server, release_lists_in_sequence_order_fetches_and_deletes)
{
	static const struct {
		const char *job;
		uint64_t seq;
	} jobs[] = {{JOB1, 30}, {JOB2, 10}, {JOB3, 20}};
	char locs[3][256], v[128];
	unsigned char data[3][700];
	struct http_reply r = {0};

	for (size_t i = 0; i < 3; i++) {
		fill(data[i], sizeof(data[i]), (unsigned)(10 + i));
		cr_assert_eq(create("carol", jobs[i].job, sizeof(data[i]), jobs[i].seq, data[i],
				    locs[i], sizeof(locs[i])),
			     201);
		cr_assert_eq(patch("carol", locs[i], 0, data[i], sizeof(data[i]), NULL), 204);
	}
	cr_assert_eq(release_list("carol", &r), 200);
	const char *p2 = strstr(r.body, JOB2), *p3 = strstr(r.body, JOB3), *p1 = strstr(r.body, JOB1);
	cr_assert(p1 && p2 && p3, "%s", r.body);
	cr_assert(p2 < p3 && p3 < p1, "sequence order: %s", r.body);
	cr_assert_not_null(strstr(r.body, "\"sha256\""));
	http_reply_free(&r);

	cr_assert_eq(release_content(id_of(locs[1]), &r), 200);
	cr_assert_eq(r.body_len, sizeof(data[1]));
	cr_assert(memcmp(r.body, data[1], sizeof(data[1])) == 0);
	cr_assert_not_null(http_reply_header(&r, "Repr-Digest", v, sizeof(v)));
	http_reply_free(&r);

	/* delete after printing; then it is gone from the list and content */
	char url[400];
	const char *rel[] = {RELEASE_AUTH, NULL};
	snprintf(url, sizeof(url), "%s/v1/release/jobs/%s", server->url, id_of(locs[1]));
	cr_assert_eq(http_request("DELETE", url, rel, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 204);
	http_reply_free(&r);
	cr_assert_eq(release_content(id_of(locs[1]), &r), 404);
	http_reply_free(&r);
	cr_assert_eq(release_list("carol", &r), 200);
	cr_assert_null(strstr(r.body, JOB2));
	http_reply_free(&r);
	/* a creation of the released job id does not make a second job: done already */
	char again[256];
	cr_assert_eq(create("carol", JOB2, sizeof(data[1]), 10, NULL, again, sizeof(again)), 200);
	cr_assert_str_eq(again, locs[1]);
	cr_assert_eq(count_entries("ready"), 2);

	/* the gateway's credentials do not open the release API, and the reverse */
	const char *gw[] = {AUTH, NULL};
	snprintf(url, sizeof(url), "%s/v1/release/jobs/%s/content", server->url, id_of(locs[0]));
	cr_assert_eq(http_request("GET", url, gw, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 403);
	http_reply_free(&r);
}

Test(server, refuses_requests_without_gateway_credentials)
{
	static const char *const auths[] = {
		NULL, "Authorization: Bearer wrong", "Authorization: Basic Zm9vOmJhcg==",
		"Authorization: Bearer " FS_SERVER_GATEWAY_SECRET "x",
		"Authorization: Bearer " FS_SERVER_RELEASE_SECRET};
	static const long want[] = {401, 401, 401, 401, 403};
	char url[128], ct[64];

	snprintf(url, sizeof(url), "%s/v1/jobs", server->url);
	for (size_t i = 0; i < sizeof(auths) / sizeof(auths[0]); i++) {
		const char *headers[] = {TUS, "Upload-Length: 10", auths[i], NULL};
		struct http_reply r = {0};

		cr_assert_eq(http_request("POST", url, headers, NULL, 0, &r), 0);
		cr_expect_eq(r.status, want[i], "case %zu: %ld", i, r.status);
		cr_expect_not_null(http_reply_header(&r, "Content-Type", ct, sizeof(ct)));
		cr_expect_str_eq(ct, "application/problem+json");
		http_reply_free(&r);
	}
	cr_assert_eq(count_entries("uploads"), 0);
}

Test(server, malformed_tus_requests_get_precise_4xx)
{
	char loc[256], url[400], meta[1200], type[128];
	struct {
		const char *method;
		int on_job;
		const char *h[8]; /* NULL-terminated */
		long status;
		const char *slug;
	} cases[] = {
		{"POST", 0, {AUTH, "Tus-Resumable: 0.2.2", "Upload-Length: 10"}, 412, "unsupported-version"},
		{"POST", 0, {AUTH, "Upload-Length: 10"}, 412, "unsupported-version"},
		{"POST", 0, {AUTH, TUS, "Upload-Length: 10", "Fs-Sequence: 1"}, 400, "invalid-header"},
		{"POST", 0, {AUTH, TUS, "Upload-Length: -1", "Fs-Sequence: 1", "Fs-Owner: YWxpY2U", meta}, 400, "invalid-header"},
		{"POST", 0, {AUTH, TUS, "Upload-Length: 10", "Fs-Sequence: 1", "Fs-Owner: YWxpY2U", "Upload-Metadata: name Zm9v"}, 400, "invalid-metadata"},
		{"POST", 0, {AUTH, TUS, "Fs-Sequence: 1", "Fs-Owner: YWxpY2U", meta}, 400, "invalid-header"},
		{"POST", 0, {AUTH, TUS, "Upload-Length: 99999999999999", "Fs-Sequence: 1", "Fs-Owner: YWxpY2U", meta}, 413, "too-large"},
		{"POST", 0, {AUTH, TUS, "Upload-Defer-Length: 1", "Fs-Sequence: 1", "Fs-Owner: YWxpY2U", meta}, 400, "invalid-header"},
		{"PATCH", 1, {AUTH, TUS, "Fs-Owner: YWxpY2U", "Content-Type: text/plain", "Upload-Offset: 0"}, 415, "unsupported-media-type"},
		{"PATCH", 1, {AUTH, TUS, "Fs-Owner: YWxpY2U", OCTET, "Upload-Offset: 01"}, 400, "invalid-header"},
		{"PATCH", 1, {AUTH, TUS, "Fs-Owner: YWxpY2U", OCTET, "Upload-Offset: 0", "Upload-Checksum: md5 AAAA"}, 400, "unsupported-checksum-algorithm"},
		{"PATCH", 1, {AUTH, TUS, "Fs-Owner: YWxpY2U", OCTET, "Upload-Offset: 0", "Upload-Checksum: sha256 !!"}, 400, "invalid-checksum"},
		{"PATCH", 1, {AUTH, TUS, "Fs-Owner: YWxpY2U", OCTET, "Upload-Offset: 0", "Upload-Checksum: sha256 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}, 460, "checksum-mismatch"},
		{"PUT", 1, {AUTH, TUS}, 400, "invalid-job-id"},
		{"GET", 0, {AUTH, TUS, "Fs-Owner: !!"}, 400, "invalid-header"},
	};

	meta_header(meta, sizeof(meta), JOB1, "x");
	cr_assert_eq(create("alice", JOB1, 10, 1, NULL, loc, sizeof(loc)), 201);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_reply r = {0};

		snprintf(url, sizeof(url), "%s%s", server->url, cases[i].on_job ? loc : "/v1/jobs");
		/* only PATCH carries a body: the header checks are what is tested */
		int body = strcmp(cases[i].method, "PATCH") == 0;

		cr_assert_eq(http_request(cases[i].method, url, cases[i].h, body ? "0123456789" : NULL,
					  body ? 10 : 0, &r),
			     0);
		cr_expect_eq(r.status, cases[i].status, "case %zu: %ld %s", i, r.status, r.body);
		snprintf(type, sizeof(type), "\"urn:fs-gateway:problem:%s\"", cases[i].slug);
		cr_expect_not_null(strstr(r.body, type), "case %zu: %s", i, r.body);
		http_reply_free(&r);
	}
	/* nothing was written by any of them */
	cr_assert_eq(head_offset("alice", loc), 0);
}

Test(server, ambiguous_framing_is_400_and_closes)
{
	static const char *const raws[] = {
		"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
		"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
		"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nUpload-Length: 5\r\nUpload-Length: 6\r\n\r\n",
	};
	char out[4096];

	for (size_t i = 0; i < sizeof(raws) / sizeof(raws[0]); i++) {
		long n = tcp_exchange(server->port, raws[i], strlen(raws[i]), out, sizeof(out), 5000);

		cr_assert_gt(n, 0, "case %zu", i);
		cr_expect_eq(strncmp(out, "HTTP/1.1 400", 12), 0, "case %zu: %s", i, out);
		cr_expect_not_null(strstr(out, "application/problem+json"), "case %zu", i);
	}
}

/* Sends a PATCH head and part of its body on a raw socket, then returns the socket. */
static int partial_patch(const char *owner, const char *loc, uint64_t total, const void *data,
			 size_t sent)
{
	char enc[OWNER_HEADER_MAX + 1], head[2048];
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)server->port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int n;

	cr_assert_eq(owner_encode(owner, strlen(owner), enc, sizeof(enc)), PROTO_OK);
	n = snprintf(head, sizeof(head),
		     "PATCH %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n%s\r\nFs-Owner: %s\r\n%s\r\n"
		     "Upload-Offset: 0\r\nContent-Length: %" PRIu64 "\r\n\r\n",
		     loc, AUTH, TUS, enc, OCTET, total);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_neq(fd, -1);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(send(fd, head, (size_t)n, MSG_NOSIGNAL), n);
	cr_assert_eq(send(fd, data, sent, MSG_NOSIGNAL), (ssize_t)sent);
	return fd;
}

/*
 * Waits until the upload's data file holds want bytes: the server writes body bytes as they
 * arrive, before the request ends (HEAD reports them once the request ends and they are synced).
 */
static int64_t wait_on_disk(const char *loc, int64_t want)
{
	char path[4096];
	struct stat st;
	int64_t size = -1;

	snprintf(path, sizeof(path), "%s/spool/uploads/%s/data", server->dir, id_of(loc));
	for (int i = 0; i < 100; i++) {
		struct timespec ts = {0, 50000000L};

		size = stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
		if (size >= want)
			break;
		nanosleep(&ts, NULL);
	}
	return size;
}

/* Waits until HEAD reports want bytes (after an interrupted request ended on the server). */
static int64_t wait_offset(const char *owner, const char *loc, int64_t want)
{
	int64_t off = -1;

	for (int i = 0; i < 100; i++) {
		struct timespec ts = {0, 50000000L};

		off = head_offset(owner, loc);
		if (off >= want)
			break;
		nanosleep(&ts, NULL);
	}
	return off;
}

Test(server, kill_9_mid_upload_then_resume_is_byte_identical)
{
	enum { LEN = 4 << 20, FIRST = 1 << 20 };
	unsigned char *data = malloc(LEN);
	struct http_reply r = {0};
	char loc[256];
	int64_t off;
	uint64_t now = 0;
	int fd;

	cr_assert_not_null(data);
	fill(data, LEN, 5);
	cr_assert_eq(create("dave", JOB1, LEN, 1, data, loc, sizeof(loc)), 201);
	fd = partial_patch("dave", loc, LEN, data, FIRST);
	cr_assert_eq(wait_on_disk(loc, FIRST), FIRST);
	fs_server_kill(server);
	close(fd);
	cr_assert_eq(fs_server_restart(server), 0);
	off = head_offset("dave", loc);
	cr_assert_eq(off, FIRST, "after restart HEAD says %" PRId64, off);
	cr_assert_eq(patch("dave", loc, (uint64_t)off, data + off, LEN - (size_t)off, &now), 204);
	cr_assert_eq(now, LEN);
	cr_assert_eq(release_content(id_of(loc), &r), 200);
	cr_assert_eq(r.body_len, LEN);
	cr_assert(memcmp(r.body, data, LEN) == 0, "content differs after resume");
	http_reply_free(&r);
	free(data);
}

Test(server, interrupted_patch_keeps_what_arrived)
{
	enum { LEN = 200000, FIRST = 120000 };
	static unsigned char data[LEN];
	char loc[256];
	int fd;

	fill(data, LEN, 6);
	cr_assert_eq(create("erin", JOB2, LEN, 1, data, loc, sizeof(loc)), 201);
	fd = partial_patch("erin", loc, LEN, data, FIRST);
	cr_assert_eq(wait_on_disk(loc, FIRST), FIRST);
	close(fd); /* the gateway's connection drops mid-body */
	cr_assert_eq(wait_offset("erin", loc, FIRST), FIRST);
	cr_assert_eq(patch("erin", loc, FIRST, data + FIRST, LEN - FIRST, NULL), 204);
	cr_assert_eq(count_entries("ready"), 1);
}

static redisContext *redis_connect(void)
{
	struct timeval tv = {2, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_server_port(redis), tv);

	cr_assert(c && !c->err);
	return c;
}

/* Polls the server's hash field until it equals want (or 5 s pass). */
static int wait_field(redisContext *c, const char *field, const char *want)
{
	for (int i = 0; i < 100; i++) {
		struct timespec ts = {0, 50000000L};
		redisReply *rep = redisCommand(c, "HGET fsg:server:dc1 %s", field);
		int ok = want ? rep && rep->type == REDIS_REPLY_STRING && strcmp(rep->str, want) == 0
			      : rep && rep->type == REDIS_REPLY_NIL;

		freeReplyObject(rep);
		if (ok)
			return 1;
		nanosleep(&ts, NULL);
	}
	return 0;
}

Test(server, heartbeat_in_redis_and_gone_after_sigterm)
{
	redisContext *c = redis_connect();
	redisReply *rep;
	int st;

	cr_assert(wait_field(c, "url", server->url));
	cr_assert(wait_field(c, "draining", "0"));
	rep = redisCommand(c, "PTTL fsg:server:dc1");
	cr_assert(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer > 0 &&
		  rep->integer <= 300);
	freeReplyObject(rep);
	rep = redisCommand(c, "ZSCORE %s dc1", RKEY_POOL);
	cr_assert(rep && rep->type == REDIS_REPLY_STRING);
	freeReplyObject(rep);
	st = fs_server_stop(server, 10000);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
	rep = redisCommand(c, "EXISTS fsg:server:dc1");
	cr_assert_eq(rep->integer, 0);
	freeReplyObject(rep);
	rep = redisCommand(c, "ZSCORE %s dc1", RKEY_POOL);
	cr_assert_eq(rep->type, REDIS_REPLY_NIL);
	freeReplyObject(rep);
	redisFree(c);
}

Test(server, draining_refuses_new_uploads_and_finishes_the_running_one)
{
	enum { LEN = 100000, FIRST = 40000 };
	static unsigned char data[LEN];
	redisContext *c = redis_connect();
	char loc[256], loc2[256], out[4096];
	int fd, st;
	long n;

	fill(data, LEN, 7);
	cr_assert_eq(create("frank", JOB1, LEN, 1, data, loc, sizeof(loc)), 201);
	fd = partial_patch("frank", loc, LEN, data, FIRST);
	cr_assert_eq(wait_on_disk(loc, FIRST), FIRST);
	kill(server->pid, SIGTERM);
	cr_assert(wait_field(c, "draining", "1"));
	cr_assert_eq(create("frank", JOB2, 10, 2, NULL, loc2, sizeof(loc2)), 503);
	/* the running upload finishes and commits */
	cr_assert_eq(send(fd, data + FIRST, LEN - FIRST, MSG_NOSIGNAL), LEN - FIRST);
	n = 0;
	for (int i = 0; i < 100 && n <= 0; i++) {
		struct pollfd p = {.fd = fd, .events = POLLIN};

		if (poll(&p, 1, 100) == 1)
			n = recv(fd, out, sizeof(out) - 1, 0);
	}
	cr_assert_gt(n, 0);
	out[n] = '\0';
	cr_assert_eq(strncmp(out, "HTTP/1.1 204", 12), 0, "%s", out);
	close(fd);
	st = fs_server_stop(server, 10000);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	cr_assert_eq(count_entries("ready"), 1);
	redisFree(c);
}

Test(server, keeps_receiving_while_redis_is_gone)
{
	unsigned char data[50000];
	char loc[256];
	struct http_reply r = {0};

	fill(data, sizeof(data), 11);
	cr_assert_eq(redis_server_stop(redis), 0);
	redis = NULL;
	cr_assert_eq(create("ivan", JOB1, sizeof(data), 1, data, loc, sizeof(loc)), 201);
	cr_assert_eq(patch("ivan", loc, 0, data, 20000, NULL), 204);
	cr_assert_eq(patch("ivan", loc, 20000, data + 20000, sizeof(data) - 20000, NULL), 204);
	cr_assert_eq(release_content(id_of(loc), &r), 200);
	cr_assert_eq(r.body_len, sizeof(data));
	http_reply_free(&r);
	/* the outage is noticed at the next heartbeat (100 ms) and logged once */
	int logged = 0;
	for (int i = 0; i < 100 && !logged; i++) {
		char *log = fs_server_log(server);

		logged = strstr(log, "\"event\":\"redis.down\"") != NULL;
		free(log);
		if (!logged) {
			struct timespec ts = {0, 50000000L};

			nanosleep(&ts, NULL);
		}
	}
	cr_assert(logged, "fs-server should log that Redis is down");
}

static void start_limited(void)
{
	start("spool_limit = 100K\n");
}

TestSuite(server_limited, .init = start_limited, .fini = stop, .timeout = 60);

Test(server_limited, spool_limit_answers_507_then_succeeds_after_space_frees)
{
	static unsigned char data[60000];
	char loc1[256], loc2[256], url[256];
	struct http_reply r = {0};
	const char *rel[] = {RELEASE_AUTH, NULL};

	fill(data, sizeof(data), 8);
	cr_assert_eq(create("gina", JOB1, sizeof(data), 1, NULL, loc1, sizeof(loc1)), 201);
	cr_assert_eq(create("gina", JOB2, sizeof(data), 2, NULL, loc2, sizeof(loc2)), 507);
	cr_assert_eq(patch("gina", loc1, 0, data, sizeof(data), NULL), 204);
	cr_assert_eq(create("gina", JOB2, sizeof(data), 2, NULL, loc2, sizeof(loc2)), 507);
	snprintf(url, sizeof(url), "%s/v1/release/jobs/%s", server->url, id_of(loc1));
	cr_assert_eq(http_request("DELETE", url, rel, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 204);
	http_reply_free(&r);
	cr_assert_eq(create("gina", JOB2, sizeof(data), 2, NULL, loc2, sizeof(loc2)), 201);
	cr_assert_eq(patch("gina", loc2, 0, data, sizeof(data), NULL), 204);
}

/* The hook appends a line per run to hook.log in the test directory (the spool's parent). */
static void start_hooked(void)
{
	start("hook_command = echo \"$FSG_JOB_ID $FSG_JOB_SIZE $FSG_JOB_OWNER $FSG_JOB_FORMAT\" "
	      ">> \"${FSG_JOB_META%/spool/*}/hook.log\"\n");
}

static char *hook_log(void)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/hook.log", server->dir);
	return proc_read_file(path);
}

static size_t count_lines(const char *text)
{
	size_t n = 0;

	for (; *text; text++)
		n += *text == '\n';
	return n;
}

/* Waits until hook.log has at least n lines (5 s at most) and returns it. */
static char *wait_hook_lines(size_t n)
{
	char *text = hook_log();

	for (int i = 0; i < 100 && count_lines(text) < n; i++) {
		struct timespec ts = {0, 50000000L};

		free(text);
		nanosleep(&ts, NULL);
		text = hook_log();
	}
	return text;
}

TestSuite(server_hooked, .init = start_hooked, .fini = stop, .timeout = 60);

Test(server_hooked, on_commit_hook_runs_once_per_job)
{
	unsigned char data[3000];
	char loc1[256], loc2[256], want[256];
	struct timespec settle = {0, 500000000L};
	char *text;

	fill(data, sizeof(data), 9);
	cr_assert_eq(create("hank", JOB1, sizeof(data), 1, NULL, loc1, sizeof(loc1)), 201);
	cr_assert_eq(patch("hank", loc1, 0, data, 1000, NULL), 204);
	cr_assert_eq(patch("hank", loc1, 1000, data + 1000, 2000, NULL), 204);
	cr_assert_eq(create("hank", JOB2, 0, 2, NULL, loc2, sizeof(loc2)), 201);
	text = wait_hook_lines(2);
	snprintf(want, sizeof(want), "%s 3000 hank application/octet-stream\n", id_of(loc1));
	cr_assert_not_null(strstr(text, want), "hook.log: %s", text);
	snprintf(want, sizeof(want), "%s 0 hank application/octet-stream\n", id_of(loc2));
	cr_assert_not_null(strstr(text, want), "hook.log: %s", text);
	free(text);
	/* neither a repeated creation nor a restart runs it again */
	cr_assert_eq(create("hank", JOB1, sizeof(data), 1, NULL, NULL, 0), 200);
	fs_server_stop(server, 10000);
	cr_assert_eq(fs_server_restart(server), 0);
	nanosleep(&settle, NULL);
	text = hook_log();
	cr_assert_eq(count_lines(text), 2, "hook.log: %s", text);
	free(text);
}
