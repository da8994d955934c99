/* Tests server/spool.c: the durable job store, its recovery after crashes, and its index. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <zstd.h>

#include "common/clock.h"
#include "server/decode.h"
#include "server/spool.h"
#include "tests/lib/proc.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPOOL_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SPOOL_TEST_ASAN 1
#endif
#ifdef SPOOL_TEST_ASAN
#include <sanitizer/allocator_interface.h>
#endif

#define EXPIRY_MS 60000
#define RETENTION_MS 300000

static const char OWNER_A[] = "alice@example.com";
static const char OWNER_B[] = "bob";

static char *tmp;
static struct spool *sp;
static uint64_t cfg_limit, cfg_min_free;
static int cfg_discard;

static struct spool *open_spool(void)
{
	struct spool_config c = {
		.dir = tmp,
		.limit_bytes = cfg_limit,
		.min_free_bytes = cfg_min_free,
		.upload_expiry_ms = EXPIRY_MS,
		.retention_ms = RETENTION_MS,
		.discard = cfg_discard,
	};
	enum spool_err e = SPOOL_OK;
	struct spool *s = spool_open(&c, &e);

	cr_assert_not_null(s, "spool_open: %s", spool_strerror(e));
	return s;
}

static void setup_with(int discard)
{
	tmp = proc_tempdir("spool");
	cr_assert_not_null(tmp);
	cfg_limit = 0;
	cfg_min_free = 0;
	cfg_discard = discard;
	sp = open_spool();
}

static void setup(void)
{
	setup_with(0);
}

static void teardown(void)
{
	spool_free(sp);
	sp = NULL;
	if (tmp)
		proc_rmtree(tmp);
	free(tmp);
}

/* Closes and reopens the spool, as a restart after kill -9 would (nothing flushed on close). */
static void reopen(void)
{
	spool_free(sp);
	sp = open_spool();
}

static void reopen_with(uint64_t limit, uint64_t min_free)
{
	cfg_limit = limit;
	cfg_min_free = min_free;
	reopen();
}

TestSuite(spool, .init = setup, .fini = teardown, .timeout = 120);

/* ---- helpers ---- */

static void new_uuid(char out[UUID_LEN + 1])
{
	cr_assert_eq(jobid_client_generate(out), PROTO_OK);
}

static void sha256(const void *buf, size_t len, unsigned char out[DIGEST_SHA256_LEN])
{
	unsigned int n = 0;

	cr_assert(EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL));
	cr_assert_eq(n, DIGEST_SHA256_LEN);
}

static void pattern(unsigned char *buf, size_t len, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (unsigned char)(x >> 16);
	}
}

static enum spool_err create(const char *owner, const char *uuid, uint64_t len,
			     const unsigned char *digest, uint64_t seq, struct spool_job *j,
			     int *existed)
{
	struct job_meta m;
	int ex = -1;

	meta_init(&m, uuid);
	return spool_create(sp, owner, &m, len, digest, seq, j, existed ? existed : &ex);
}

/* Creates a fresh job and asserts it is new. */
static void create_ok(const char *owner, uint64_t len, const unsigned char *digest, uint64_t seq,
		      struct spool_job *j)
{
	char uuid[UUID_LEN + 1];
	int existed = -1;
	enum spool_err e;

	new_uuid(uuid);
	e = create(owner, uuid, len, digest, seq, j, &existed);
	cr_assert_eq(e, SPOOL_OK, "create: %s", spool_strerror(e));
	cr_assert_eq(existed, 0);
}

/* One request: begin at off, write buf in one call, end. */
static enum spool_err put(const char *owner, const char *id, uint64_t off, const void *buf,
			  size_t len, const unsigned char *checksum, struct spool_job *out)
{
	struct spool_write *w = NULL;
	uint64_t real = 0;
	enum spool_err e, e2;

	e = spool_write_begin(sp, owner, id, off, checksum, &w, &real);
	if (e)
		return e;
	e = spool_write(w, buf, len);
	e2 = spool_write_end(w, out);
	if (e)
		cr_assert_eq(e2, e, "write_end should repeat the write error");
	return e2;
}

/* Creates and fills a job of len pattern bytes; returns it committed. */
static void commit_job(const char *owner, size_t len, uint64_t seq, unsigned seed,
		       struct spool_job *j)
{
	unsigned char *buf = malloc(len ? len : 1), d[DIGEST_SHA256_LEN];

	cr_assert_not_null(buf);
	pattern(buf, len, seed);
	sha256(buf, len, d);
	create_ok(owner, len, d, seq, j);
	if (len)
		cr_assert_eq(put(owner, j->id, 0, buf, len, NULL, j), SPOOL_OK);
	cr_assert_eq(j->state, SPOOL_COMMITTED);
	cr_assert_eq(memcmp(j->sha256, d, sizeof(d)), 0);
	free(buf);
}

/* Field by field: what a job description says, not its padding. */
static void assert_job_eq(const struct spool_job *a, const struct spool_job *b)
{
	cr_assert_str_eq(a->id, b->id);
	cr_assert_str_eq(a->owner, b->owner);
	cr_assert_str_eq(a->meta.job_id, b->meta.job_id);
	cr_assert_str_eq(a->meta.name, b->meta.name);
	cr_assert_str_eq(a->meta.format, b->meta.format);
	cr_assert_eq(a->meta.copies, b->meta.copies);
	cr_assert_eq(a->meta.submitted_at_ms, b->meta.submitted_at_ms);
	cr_assert_eq(a->meta.encoding, b->meta.encoding);
	cr_assert_eq(a->meta.size, b->meta.size);
	cr_assert_eq(a->state, b->state);
	cr_assert_eq(a->length, b->length);
	cr_assert_eq(a->size, b->size);
	cr_assert_eq(a->offset, b->offset);
	cr_assert_eq(a->has_digest, b->has_digest);
	if (a->has_digest)
		cr_assert_eq(memcmp(a->digest, b->digest, sizeof(a->digest)), 0);
	if (a->state == SPOOL_COMMITTED)
		cr_assert_eq(memcmp(a->sha256, b->sha256, sizeof(a->sha256)), 0);
	cr_assert_eq(a->sequence, b->sequence);
	cr_assert_eq(a->created_ms, b->created_ms);
	cr_assert_eq(a->committed_ms, b->committed_ms);
	cr_assert_eq(a->expires_ms, b->expires_ms);
}

static void path_of(char *buf, size_t cap, const char *area, const char *id, const char *file)
{
	if (file)
		snprintf(buf, cap, "%s/%s/%s/%s", tmp, area, id, file);
	else
		snprintf(buf, cap, "%s/%s/%s", tmp, area, id);
}

static int exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static int job_exists(const char *area, const char *id)
{
	char p[512];

	path_of(p, sizeof(p), area, id, NULL);
	return exists(p);
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long n;

	cr_assert_not_null(f, "open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

static void spew(const char *path, const void *buf, size_t len, const char *mode)
{
	FILE *f = fopen(path, mode);

	cr_assert_not_null(f, "open %s", path);
	cr_assert_eq(fwrite(buf, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

static size_t count_entries(const char *area)
{
	char p[512];
	struct dirent *d;
	size_t n = 0;
	DIR *dir;

	snprintf(p, sizeof(p), "%s/%s", tmp, area);
	dir = opendir(p);
	cr_assert_not_null(dir);
	while ((d = readdir(dir)))
		n += strcmp(d->d_name, ".") && strcmp(d->d_name, "..");
	closedir(dir);
	return n;
}

static void claim_path(char *buf, size_t cap, const char *owner, const char *uuid)
{
	char oh[OWNER_HASH_LEN + 1];

	cr_assert_eq(owner_hash(owner, strlen(owner), oh, sizeof(oh)), PROTO_OK);
	snprintf(buf, cap, "%s/idem/%s-%s", tmp, oh, uuid);
}

/* ---- creation and lookup ---- */

Test(spool, create_then_get)
{
	unsigned char d[DIGEST_SHA256_LEN];
	char uuid[UUID_LEN + 1], p[512], link[64];
	struct spool_job j, g;
	struct job_meta m;
	int existed = -1;
	ssize_t n;

	new_uuid(uuid);
	meta_init(&m, uuid);
	snprintf(m.name, sizeof(m.name), "report \xc3\xa9t\xc3\xa9.pdf");
	snprintf(m.format, sizeof(m.format), "application/pdf");
	m.copies = 3;
	m.submitted_at_ms = 1700000000123;
	memset(d, 0xab, sizeof(d));
	cr_assert_eq(spool_create(sp, OWNER_A, &m, 1000, d, 42, &j, &existed), SPOOL_OK);
	cr_assert_eq(existed, 0);
	cr_assert_eq(jobid_check(j.id, strlen(j.id)), PROTO_OK);
	cr_assert_str_eq(j.owner, OWNER_A);
	cr_assert_str_eq(j.meta.job_id, uuid);
	cr_assert_str_eq(j.meta.name, m.name);
	cr_assert_str_eq(j.meta.format, "application/pdf");
	cr_assert_eq(j.meta.copies, 3);
	cr_assert_eq(j.meta.submitted_at_ms, 1700000000123);
	cr_assert_eq(j.state, SPOOL_RECEIVING);
	cr_assert_eq(j.length, 1000);
	cr_assert_eq(j.offset, 0);
	cr_assert_eq(j.has_digest, 1);
	cr_assert_eq(memcmp(j.digest, d, sizeof(d)), 0);
	cr_assert_eq(j.sequence, 42);
	cr_assert_eq(j.expires_ms, j.created_ms + EXPIRY_MS);

	cr_assert_eq(spool_get(sp, OWNER_A, j.id, &g), SPOOL_OK);
	assert_job_eq(&g, &j);
	cr_assert_eq(spool_get(sp, OWNER_B, j.id, &g), SPOOL_E_NOT_FOUND);

	path_of(p, sizeof(p), "uploads", j.id, "data");
	cr_assert(exists(p));
	path_of(p, sizeof(p), "uploads", j.id, "job.json");
	cr_assert(exists(p));
	claim_path(p, sizeof(p), OWNER_A, uuid);
	n = readlink(p, link, sizeof(link));
	cr_assert_eq(n, JOBID_LEN);
	cr_assert_eq(memcmp(link, j.id, JOBID_LEN), 0);

	/* What reopening reads back is what was created. */
	reopen();
	cr_assert_eq(spool_get(sp, OWNER_A, j.id, &g), SPOOL_OK);
	assert_job_eq(&g, &j);
}

Test(spool, create_refuses_invalid_arguments)
{
	char uuid[UUID_LEN + 1], long_owner[OWNER_MAX + 2];
	struct spool_job j;
	struct job_meta m;
	int existed;

	new_uuid(uuid);
	memset(long_owner, 'o', sizeof(long_owner) - 1);
	long_owner[sizeof(long_owner) - 1] = '\0';
	static const struct {
		const char *owner;
		int meta_case;
		uint64_t length, seq;
	} cases[] = {
		{"", 0, 1, 1},
		{"evil\nowner", 0, 1, 1},
		{"\x80\x81", 0, 1, 1},
		{NULL /* long */, 0, 1, 1},
		{OWNER_A, 1 /* uppercase uuid */, 1, 1},
		{OWNER_A, 2 /* copies 0 */, 1, 1},
		{OWNER_A, 3 /* format off the list */, 1, 1},
		{OWNER_A, 4 /* name with control char */, 1, 1},
		{OWNER_A, 5 /* zstd without its size */, 1, 1},
		{OWNER_A, 6 /* identity with a size */, 1, 1},
		{OWNER_A, 7 /* zstd size above 2^53-1 */, 1, 1},
		{OWNER_A, 8 /* an encoding that does not exist */, 1, 1},
		{OWNER_A, 0, (uint64_t)INT64_MAX + 1, 1},
		{OWNER_A, 0, 1, (uint64_t)INT64_MAX + 1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		meta_init(&m, uuid);
		switch (cases[i].meta_case) {
		case 1:
			for (char *c = m.job_id; *c; c++)
				if (*c >= 'a' && *c <= 'f')
					*c = (char)(*c - 'a' + 'A');
			break;
		case 2: m.copies = 0; break;
		case 3: snprintf(m.format, sizeof(m.format), "text/html"); break;
		case 4: snprintf(m.name, sizeof(m.name), "a\tb"); break;
		case 5: m.encoding = META_ENCODING_ZSTD; break;
		case 6: m.size = 1; break;
		case 7:
			m.encoding = META_ENCODING_ZSTD;
			m.size = META_SIZE_MAX + 1;
			break;
		case 8:
			m.encoding = (enum meta_encoding)2;
			m.size = 1;
			break;
		}
		cr_assert_eq(spool_create(sp, cases[i].owner ? cases[i].owner : long_owner, &m,
					  cases[i].length, NULL, cases[i].seq, &j, &existed),
			     SPOOL_E_INVALID, "case %zu", i);
	}
	cr_assert_eq(count_entries("uploads"), 0);
	cr_assert_eq(count_entries("idem"), 0);
}

Test(spool, hostile_ids_are_not_found)
{
	static const char *const ids[] = {
		"", "..", "../../etc/passwd", "a", "AAAAAAAAAAAAAAAAAAAAAA", "uploads",
		"AAAAAAAAAAAAAAAAAAAAAA/../x", "AAAAAAAAAAAAAAAAAAAAAAA",
	};
	struct spool_write *w;
	struct spool_job j;
	char a[256], b[256];
	uint64_t off;
	int fd;

	create_ok(OWNER_A, 10, NULL, 1, &j);
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		cr_assert_eq(spool_get(sp, OWNER_A, ids[i], &j), SPOOL_E_NOT_FOUND, "%zu", i);
		cr_assert_eq(spool_write_begin(sp, OWNER_A, ids[i], 0, NULL, &w, &off),
			     SPOOL_E_NOT_FOUND);
		cr_assert_eq(spool_delete(sp, OWNER_A, ids[i]), SPOOL_E_NOT_FOUND);
		cr_assert_eq(spool_open_data(sp, ids[i], &fd, &j), SPOOL_E_NOT_FOUND);
		cr_assert_eq(spool_release(sp, ids[i], &j), SPOOL_E_NOT_FOUND);
		cr_assert_eq(spool_paths(sp, ids[i], a, b, sizeof(a)), SPOOL_E_NOT_FOUND);
		cr_assert_eq(spool_mark_hooked(sp, ids[i]), SPOOL_E_NOT_FOUND);
	}
	cr_assert_eq(spool_get(sp, OWNER_A, NULL, &j), SPOOL_E_NOT_FOUND);
	cr_assert_eq(spool_get(sp, NULL, j.id, &j), SPOOL_E_NOT_FOUND);
}

/* ---- writing ---- */

Test(spool, chunked_writes_report_exact_offsets)
{
	/* Each row: chunk sizes of successive requests; their sum is the job length. */
	static const size_t plans[][6] = {
		{4096},
		{1, 1, 1, 1},
		{1000, 1, 3095},
		{65536, 65536, 1},
		{7, 0, 13, 0, 100},
	};
	for (size_t p = 0; p < sizeof(plans) / sizeof(plans[0]); p++) {
		unsigned char *buf, d[DIGEST_SHA256_LEN], *got;
		size_t total = 0, off = 0, got_len;
		struct spool_job j, g;
		char path[512];

		for (size_t k = 0; k < 6; k++)
			total += plans[p][k];
		buf = malloc(total);
		pattern(buf, total, (unsigned)p);
		sha256(buf, total, d);
		create_ok(OWNER_A, total, d, p, &j);
		for (size_t k = 0; k < 6 && off < total; k++) {
			enum spool_err e;

			e = put(OWNER_A, j.id, off, buf + off, plans[p][k], NULL, &j);

			cr_assert_eq(e, SPOOL_OK, "plan %zu step %zu: %s", p, k, spool_strerror(e));
			off += plans[p][k];
			cr_assert_eq(j.offset, off, "plan %zu step %zu", p, k);
			cr_assert_eq(spool_get(sp, OWNER_A, j.id, &g), SPOOL_OK);
			cr_assert_eq(g.offset, off);
			cr_assert_eq(g.state, off == total ? SPOOL_COMMITTED : SPOOL_RECEIVING);
		}
		cr_assert_eq(j.state, SPOOL_COMMITTED);
		cr_assert_eq(memcmp(j.sha256, d, sizeof(d)), 0);
		cr_assert_geq(j.committed_ms, j.created_ms);
		cr_assert_eq(j.expires_ms, j.committed_ms + RETENTION_MS);
		cr_assert_not(job_exists("uploads", j.id));
		path_of(path, sizeof(path), "ready", j.id, "data");
		got = slurp(path, &got_len);
		cr_assert_eq(got_len, total);
		cr_assert_eq(memcmp(got, buf, total), 0);
		free(got);
		free(buf);
	}
}

Test(spool, several_writes_in_one_request)
{
	unsigned char buf[10000], d[DIGEST_SHA256_LEN];
	struct spool_write *w;
	struct spool_job j;

	pattern(buf, sizeof(buf), 9);
	sha256(buf, sizeof(buf), d);
	create_ok(OWNER_A, sizeof(buf), d, 1, &j);
	cr_assert_eq(spool_write_begin(sp, OWNER_A, j.id, 0, NULL, &w, NULL), SPOOL_OK);
	for (size_t off = 0; off < sizeof(buf); off += 333) {
		size_t n = sizeof(buf) - off < 333 ? sizeof(buf) - off : 333;

		cr_assert_eq(spool_write(w, buf + off, n), SPOOL_OK);
	}
	cr_assert_eq(spool_write_end(w, &j), SPOOL_OK);
	cr_assert_eq(j.state, SPOOL_COMMITTED);
	cr_assert_eq(memcmp(j.sha256, d, sizeof(d)), 0);
}

Test(spool, wrong_offset_reports_the_real_one)
{
	unsigned char buf[100];
	struct spool_write *w = NULL;
	struct spool_job j;
	static const uint64_t offs[] = {0, 9, 11, 100, 101, UINT64_MAX};

	pattern(buf, sizeof(buf), 1);
	create_ok(OWNER_A, sizeof(buf), NULL, 1, &j);
	cr_assert_eq(put(OWNER_A, j.id, 0, buf, 10, NULL, &j), SPOOL_OK);
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		uint64_t real = 12345;

		cr_assert_eq(spool_write_begin(sp, OWNER_A, j.id, offs[i], NULL, &w, &real),
			     SPOOL_E_OFFSET, "offset %" PRIu64, offs[i]);
		cr_assert_eq(real, 10);
	}
	/* out_offset may be NULL; another owner gets NOT_FOUND, not the offset. */
	cr_assert_eq(spool_write_begin(sp, OWNER_A, j.id, 3, NULL, &w, NULL), SPOOL_E_OFFSET);
	cr_assert_eq(spool_write_begin(sp, OWNER_B, j.id, 10, NULL, &w, NULL), SPOOL_E_NOT_FOUND);
	cr_assert_eq(spool_active(sp), 0);

	/* Committed: always OFFSET with the length, even at offset == length. */
	cr_assert_eq(put(OWNER_A, j.id, 10, buf + 10, 90, NULL, &j), SPOOL_OK);
	cr_assert_eq(j.state, SPOOL_COMMITTED);
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		uint64_t real = 0;

		cr_assert_eq(spool_write_begin(sp, OWNER_A, j.id, offs[i], NULL, &w, &real),
			     SPOOL_E_OFFSET);
		cr_assert_eq(real, 100);
	}
}

Test(spool, one_writer_at_a_time)
{
	unsigned char buf[64];
	struct spool_write *w, *w2;
	struct spool_job j;
	uint64_t real;

	pattern(buf, sizeof(buf), 2);
	create_ok(OWNER_A, sizeof(buf), NULL, 1, &j);
	cr_assert_eq(spool_active(sp), 0);
	cr_assert_eq(spool_write_begin(sp, OWNER_A, j.id, 0, NULL, &w, &real), SPOOL_OK);
	cr_assert_eq(spool_active(sp), 1);
	cr_assert_eq(spool_write_begin(sp, OWNER_A, j.id, 0, NULL, &w2, &real), SPOOL_E_BUSY);
	cr_assert_eq(spool_delete(sp, OWNER_A, j.id), SPOOL_E_BUSY);
	cr_assert_eq(spool_write(w, buf, 10), SPOOL_OK);
	/* HEAD while writing: only what a write_end synced. */
	cr_assert_eq(spool_get(sp, OWNER_A, j.id, &j), SPOOL_OK);
	cr_assert_eq(j.offset, 0);
	cr_assert_eq(spool_write_end(w, &j), SPOOL_OK);
	cr_assert_eq(j.offset, 10);
	cr_assert_eq(spool_active(sp), 0);
	cr_assert_eq(spool_write_begin(sp, OWNER_A, j.id, 10, NULL, &w2, &real), SPOOL_OK);
	spool_write_abort(w2);
	cr_assert_eq(spool_active(sp), 0);
}

Test(spool, too_large_drops_the_request)
{
	/* Rows: start offset (bytes sent by an earlier request), then the writes of one request. */
	static const struct {
		size_t before, first, second;
	} cases[] = {
		{0, 101, 0},  /* one call past the length */
		{0, 60, 41},  /* the second call crosses it */
		{50, 51, 0},
		{50, 50, 1},  /* exactly full, then one more byte */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned char buf[200];
		struct spool_write *w;
		struct spool_job j;
		char path[512];
		struct stat st;
		enum spool_err e;

		pattern(buf, sizeof(buf), (unsigned)i);
		create_ok(OWNER_A, 100, NULL, 1, &j);
		if (cases[i].before)
			cr_assert_eq(put(OWNER_A, j.id, 0, buf, cases[i].before, NULL, &j),
				     SPOOL_OK);
		cr_assert_eq(spool_write_begin(sp, OWNER_A, j.id, cases[i].before, NULL, &w, NULL),
			     SPOOL_OK);
		e = spool_write(w, buf, cases[i].first);
		if (cases[i].second) {
			cr_assert_eq(e, SPOOL_OK, "case %zu", i);
			e = spool_write(w, buf, cases[i].second);
		}
		cr_assert_eq(e, SPOOL_E_TOO_LARGE, "case %zu", i);
		cr_assert_eq(spool_write(w, buf, 1), SPOOL_E_TOO_LARGE, "sticky");
		cr_assert_eq(spool_write_end(w, &j), SPOOL_E_TOO_LARGE);
		cr_assert_eq(j.state, SPOOL_RECEIVING, "case %zu: nothing commits", i);
		cr_assert_eq(j.offset, cases[i].before, "case %zu", i);
		path_of(path, sizeof(path), "uploads", j.id, "data");
		cr_assert_eq(stat(path, &st), 0);
		cr_assert_eq((size_t)st.st_size, cases[i].before, "case %zu", i);
	}
}

Test(spool, checksum_mismatch_rolls_back_bytes_and_hash)
{
	unsigned char buf[3000], d[DIGEST_SHA256_LEN], c[DIGEST_SHA256_LEN], bad[DIGEST_SHA256_LEN];
	unsigned char wrong[1000];
	struct spool_job j;
	char path[512];
	struct stat st;

	pattern(buf, sizeof(buf), 3);
	sha256(buf, sizeof(buf), d);
	create_ok(OWNER_A, sizeof(buf), d, 1, &j);
	sha256(buf, 1000, c);
	cr_assert_eq(put(OWNER_A, j.id, 0, buf, 1000, c, &j), SPOOL_OK);
	cr_assert_eq(j.offset, 1000);

	/* Bytes that differ from their checksum: dropped, and the whole-job hash with them. */
	memcpy(wrong, buf + 1000, sizeof(wrong));
	wrong[500] ^= 1;
	sha256(buf + 1000, 1000, c);
	cr_assert_eq(put(OWNER_A, j.id, 1000, wrong, sizeof(wrong), c, &j), SPOOL_E_CHECKSUM);
	cr_assert_eq(j.offset, 1000);
	cr_assert_eq(j.state, SPOOL_RECEIVING);
	path_of(path, sizeof(path), "uploads", j.id, "data");
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_size, 1000);

	/* The final request with a wrong checksum does not commit either. */
	memset(bad, 0, sizeof(bad));
	cr_assert_eq(put(OWNER_A, j.id, 1000, buf + 1000, 2000, bad, &j), SPOOL_E_CHECKSUM);
	cr_assert_eq(j.offset, 1000);
	cr_assert_eq(j.state, SPOOL_RECEIVING);

	/* The correct retry commits, and the sha256 is that of the right bytes. */
	sha256(buf + 1000, 2000, c);
	cr_assert_eq(put(OWNER_A, j.id, 1000, buf + 1000, 2000, c, &j), SPOOL_OK);
	cr_assert_eq(j.state, SPOOL_COMMITTED);
	cr_assert_eq(memcmp(j.sha256, d, sizeof(d)), 0);
}

Test(spool, checksum_mismatch_without_digest_keeps_hash_right)
{
	unsigned char buf[500], d[DIGEST_SHA256_LEN], c[DIGEST_SHA256_LEN];
	struct spool_job j;

	/* No Repr-Digest: only the computed sha256 shows whether the rollback restored it. */
	pattern(buf, sizeof(buf), 4);
	sha256(buf, sizeof(buf), d);
	create_ok(OWNER_A, sizeof(buf), NULL, 1, &j);
	memset(c, 0x55, sizeof(c));
	cr_assert_eq(put(OWNER_A, j.id, 0, "garbage!", 8, c, &j), SPOOL_E_CHECKSUM);
	cr_assert_eq(j.offset, 0);
	cr_assert_eq(put(OWNER_A, j.id, 0, buf, 200, NULL, &j), SPOOL_OK);
	cr_assert_eq(put(OWNER_A, j.id, 200, "garbage!", 8, c, &j), SPOOL_E_CHECKSUM);
	cr_assert_eq(put(OWNER_A, j.id, 200, buf + 200, 300, NULL, &j), SPOOL_OK);
	cr_assert_eq(j.state, SPOOL_COMMITTED);
	cr_assert_eq(memcmp(j.sha256, d, sizeof(d)), 0);
}

Test(spool, abort_keeps_bytes_unless_a_checksum_was_given)
{
	unsigned char buf[100], c[DIGEST_SHA256_LEN];
	struct spool_write *w;
	struct spool_job j;

	pattern(buf, sizeof(buf), 5);
	create_ok(OWNER_A, sizeof(buf), NULL, 1, &j);
	cr_assert_eq(spool_write_begin(sp, OWNER_A, j.id, 0, NULL, &w, NULL), SPOOL_OK);
	cr_assert_eq(spool_write(w, buf, 30), SPOOL_OK);
	spool_write_abort(w);
	cr_assert_eq(spool_get(sp, OWNER_A, j.id, &j), SPOOL_OK);
	cr_assert_eq(j.offset, 30);

	sha256(buf + 30, 70, c);
	cr_assert_eq(spool_write_begin(sp, OWNER_A, j.id, 30, c, &w, NULL), SPOOL_OK);
	cr_assert_eq(spool_write(w, buf + 30, 20), SPOOL_OK);
	spool_write_abort(w);
	cr_assert_eq(spool_get(sp, OWNER_A, j.id, &j), SPOOL_OK);
	cr_assert_eq(j.offset, 30);

	/* Even all the bytes, cut short, never commit. */
	cr_assert_eq(spool_write_begin(sp, OWNER_A, j.id, 30, NULL, &w, NULL), SPOOL_OK);
	cr_assert_eq(spool_write(w, buf + 30, 70), SPOOL_OK);
	spool_write_abort(w);
	cr_assert_eq(spool_get(sp, OWNER_A, j.id, &j), SPOOL_OK);
	cr_assert_eq(j.offset, 100);
	cr_assert_eq(j.state, SPOOL_RECEIVING);
	/* ...until an empty request at offset == length. */
	cr_assert_eq(put(OWNER_A, j.id, 100, NULL, 0, NULL, &j), SPOOL_OK);
	cr_assert_eq(j.state, SPOOL_COMMITTED);
}

Test(spool, digest_mismatch_discards_and_allows_create_again)
{
	unsigned char buf[2048], d[DIGEST_SHA256_LEN];
	char uuid[UUID_LEN + 1], p[512];
	struct spool_job j, j2;
	int existed;

	pattern(buf, sizeof(buf), 6);
	sha256(buf, sizeof(buf), d);
	d[0] ^= 0xff;
	new_uuid(uuid);
	cr_assert_eq(create(OWNER_A, uuid, sizeof(buf), d, 1, &j, &existed), SPOOL_OK);
	cr_assert_eq(put(OWNER_A, j.id, 0, buf, 1000, NULL, &j), SPOOL_OK);
	memset(&j2, 0x5a, sizeof(j2));
	cr_assert_eq(put(OWNER_A, j.id, 1000, buf + 1000, 1048, NULL, &j2), SPOOL_E_DIGEST);
	cr_assert_eq(spool_get(sp, OWNER_A, j.id, &j2), SPOOL_E_NOT_FOUND);
	cr_assert_not(job_exists("uploads", j.id));
	cr_assert_not(job_exists("ready", j.id));
	cr_assert_eq(count_entries("trash"), 0);
	claim_path(p, sizeof(p), OWNER_A, uuid);
	cr_assert_not(exists(p), "the pair is forgotten");
	cr_assert_eq(spool_active(sp), 0);

	d[0] ^= 0xff;
	cr_assert_eq(create(OWNER_A, uuid, sizeof(buf), d, 1, &j2, &existed), SPOOL_OK);
	cr_assert_eq(existed, 0);
	cr_assert_str_neq(j2.id, j.id);
	cr_assert_eq(put(OWNER_A, j2.id, 0, buf, sizeof(buf), NULL, &j2), SPOOL_OK);
	cr_assert_eq(j2.state, SPOOL_COMMITTED);
}

Test(spool, length_zero_commits_at_once)
{
	static const unsigned char empty_sha[DIGEST_SHA256_LEN] = {
		0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
		0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
		0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
	};
	unsigned char wrong[DIGEST_SHA256_LEN];
	char uuid[UUID_LEN + 1], p[512];
	struct spool_job *list, j;
	int existed;
	size_t n;

	create_ok(OWNER_A, 0, empty_sha, 1, &j);
	cr_assert_eq(j.state, SPOOL_COMMITTED);
	cr_assert_eq(j.offset, 0);
	cr_assert_eq(memcmp(j.sha256, empty_sha, sizeof(empty_sha)), 0);
	cr_assert(job_exists("ready", j.id));
	cr_assert_eq(spool_list(sp, OWNER_A, &list, &n), SPOOL_OK);
	cr_assert_eq(n, 1);
	free(list);

	create_ok(OWNER_A, 0, NULL, 2, &j);
	cr_assert_eq(j.state, SPOOL_COMMITTED);

	memset(wrong, 1, sizeof(wrong));
	new_uuid(uuid);
	cr_assert_eq(create(OWNER_A, uuid, 0, wrong, 3, &j, &existed), SPOOL_E_DIGEST);
	claim_path(p, sizeof(p), OWNER_A, uuid);
	cr_assert_not(exists(p));
	cr_assert_eq(count_entries("uploads"), 0);
	cr_assert_eq(count_entries("ready"), 2);
}

/* ---- deduplication ---- */

Test(spool, dedup_by_owner_and_client_job_id)
{
	unsigned char d1[DIGEST_SHA256_LEN], d2[DIGEST_SHA256_LEN];
	char uuid[UUID_LEN + 1];
	struct spool_job first, j;
	int existed;

	memset(d1, 1, sizeof(d1));
	memset(d2, 2, sizeof(d2));
	new_uuid(uuid);
	cr_assert_eq(create(OWNER_A, uuid, 100, d1, 7, &first, &existed), SPOOL_OK);
	cr_assert_eq(existed, 0);
	cr_assert_eq(put(OWNER_A, first.id, 0, "0123456789", 10, NULL, &first), SPOOL_OK);

	static const struct {
		const char *owner;
		uint64_t length;
		int digest; /* 0 none, 1 same, 2 other */
		enum spool_err want;
		int same_job;
	} cases[] = {
		{OWNER_A, 100, 1, SPOOL_OK, 1},
		{OWNER_A, 100, 0, SPOOL_OK, 1},          /* digest given once only: fine */
		{OWNER_A, 101, 1, SPOOL_E_CONFLICT, 0},
		{OWNER_A, 99, 0, SPOOL_E_CONFLICT, 0},
		{OWNER_A, 100, 2, SPOOL_E_CONFLICT, 0},
		{OWNER_B, 55, 2, SPOOL_OK, 0},           /* another owner: its own job */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const unsigned char *d = NULL;
		enum spool_err e;

		if (cases[i].digest)
			d = cases[i].digest == 1 ? d1 : d2;

		existed = -1;
		e = create(cases[i].owner, uuid, cases[i].length, d, 8, &j, &existed);
		cr_assert_eq(e, cases[i].want, "case %zu: %s", i, spool_strerror(e));
		if (e)
			continue;
		if (cases[i].same_job) {
			cr_assert_eq(existed, 1, "case %zu", i);
			cr_assert_str_eq(j.id, first.id);
			cr_assert_eq(j.offset, 10, "reports its offset");
			cr_assert_eq(j.sequence, 7, "keeps the first sequence");
		} else {
			cr_assert_eq(existed, 0);
			cr_assert_str_neq(j.id, first.id);
			cr_assert_str_eq(j.owner, cases[i].owner);
		}
	}
	cr_assert_eq(count_entries("uploads"), 2);

	/* The same after a restart: the claims are on disk. */
	reopen();
	cr_assert_eq(create(OWNER_A, uuid, 100, d1, 9, &j, &existed), SPOOL_OK);
	cr_assert_eq(existed, 1);
	cr_assert_str_eq(j.id, first.id);
	cr_assert_eq(create(OWNER_A, uuid, 100, d2, 9, &j, &existed), SPOOL_E_CONFLICT);
}

Test(spool, dedup_of_a_committed_job)
{
	struct spool_job j, k;
	int existed;

	commit_job(OWNER_A, 300, 1, 7, &j);
	cr_assert_eq(create(OWNER_A, j.meta.job_id, 300, NULL, 2, &k, &existed), SPOOL_OK);
	cr_assert_eq(existed, 1);
	cr_assert_eq(k.state, SPOOL_COMMITTED);
	cr_assert_str_eq(k.id, j.id);
	assert_job_eq(&k, &j);
}

struct race {
	pthread_barrier_t *barrier;
	const char *uuid;
	enum spool_err rc;
	int existed;
	struct spool_job job;
};

static void *race_create(void *arg)
{
	struct race *r = arg;
	struct job_meta m;

	meta_init(&m, r->uuid);
	pthread_barrier_wait(r->barrier);
	r->rc = spool_create(sp, OWNER_A, &m, 4096, NULL, 1, &r->job, &r->existed);
	return NULL;
}

Test(spool, racing_creates_make_one_job)
{
	for (int round = 0; round < 20; round++) {
		pthread_barrier_t barrier;
		struct race r[8];
		pthread_t t[8];
		char uuid[UUID_LEN + 1];
		int created = 0;

		new_uuid(uuid);
		pthread_barrier_init(&barrier, NULL, 8);
		for (int i = 0; i < 8; i++) {
			r[i] = (struct race){.barrier = &barrier, .uuid = uuid, .existed = -1};
			cr_assert_eq(pthread_create(&t[i], NULL, race_create, &r[i]), 0);
		}
		for (int i = 0; i < 8; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&barrier);
		for (int i = 0; i < 8; i++) {
			cr_assert_eq(r[i].rc, SPOOL_OK, "round %d thread %d: %s", round, i,
				     spool_strerror(r[i].rc));
			created += r[i].existed == 0;
			cr_assert_str_eq(r[i].job.id, r[0].job.id);
		}
		cr_assert_eq(created, 1, "round %d", round);
	}
	cr_assert_eq(count_entries("uploads"), 20);
	cr_assert_eq(count_entries("idem"), 20);
	cr_assert_eq(count_entries("trash"), 0);
}

/* ---- restarts ---- */

Test(spool, reopen_mid_upload_resumes_at_the_bytes_on_disk)
{
	size_t len = 300000, cut1 = 77777, cut2 = 200001, got_len;
	unsigned char *buf = malloc(len), d[DIGEST_SHA256_LEN], *got;
	struct spool_recovery rec;
	struct spool_job j;
	uint64_t real = 0;
	struct spool_write *w;
	char path[512];

	pattern(buf, len, 10);
	sha256(buf, len, d);
	create_ok(OWNER_A, len, d, 1, &j);
	cr_assert_eq(put(OWNER_A, j.id, 0, buf, cut1, NULL, &j), SPOOL_OK);

	reopen();
	spool_recovery(sp, &rec);
	cr_assert_eq(rec.receiving, 1);
	cr_assert_eq(rec.dropped, 0);
	cr_assert_eq(spool_get(sp, OWNER_A, j.id, &j), SPOOL_OK);
	cr_assert_eq(j.state, SPOOL_RECEIVING);
	cr_assert_eq(j.offset, cut1);
	cr_assert_eq(spool_write_begin(sp, OWNER_A, j.id, 0, NULL, &w, &real), SPOOL_E_OFFSET);
	cr_assert_eq(real, cut1);
	cr_assert_eq(put(OWNER_A, j.id, cut1, buf + cut1, cut2 - cut1, NULL, &j), SPOOL_OK);

	/* A restart again, with a request that checksum-fails on top: still the right hash. */
	reopen();
	cr_assert_eq(put(OWNER_A, j.id, cut2, "x", 1, d, &j), SPOOL_E_CHECKSUM);
	cr_assert_eq(put(OWNER_A, j.id, cut2, buf + cut2, len - cut2, NULL, &j), SPOOL_OK);
	cr_assert_eq(j.state, SPOOL_COMMITTED);
	cr_assert_eq(memcmp(j.sha256, d, sizeof(d)), 0);
	path_of(path, sizeof(path), "ready", j.id, "data");
	got = slurp(path, &got_len);
	cr_assert_eq(got_len, len);
	cr_assert_eq(memcmp(got, buf, len), 0);
	free(got);
	free(buf);
}

Test(spool, reopen_without_digest_computes_sha256_from_disk)
{
	unsigned char buf[5000], d[DIGEST_SHA256_LEN];
	struct spool_job j;

	pattern(buf, sizeof(buf), 11);
	sha256(buf, sizeof(buf), d);
	create_ok(OWNER_A, sizeof(buf), NULL, 1, &j);
	cr_assert_eq(put(OWNER_A, j.id, 0, buf, 1234, NULL, &j), SPOOL_OK);
	reopen();
	cr_assert_eq(put(OWNER_A, j.id, 1234, buf + 1234, sizeof(buf) - 1234, NULL, &j), SPOOL_OK);
	cr_assert_eq(j.state, SPOOL_COMMITTED);
	cr_assert_eq(memcmp(j.sha256, d, sizeof(d)), 0);
}

Test(spool, reopen_after_commit_keeps_the_job)
{
	struct spool_recovery rec;
	struct spool_job j, g, *list;
	size_t n;

	commit_job(OWNER_A, 4321, 5, 12, &j);
	reopen();
	spool_recovery(sp, &rec);
	cr_assert_eq(rec.committed, 1);
	cr_assert_eq(rec.receiving, 0);
	cr_assert_eq(spool_get(sp, OWNER_A, j.id, &g), SPOOL_OK);
	assert_job_eq(&g, &j);
	cr_assert_eq(spool_list(sp, NULL, &list, &n), SPOOL_OK);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(list[0].id, j.id);
	free(list);
}

#define KILL_LEN 65536
#define KILL_CHUNK 4096
#define KILL_ACKED 10 /* chunks whose write_end returned before the kill */

/* What the child reports: the job id, then each offset a write_end acknowledged. */
struct kill_report {
	char id[JOBID_LEN + 1];
	uint64_t acked;
};

/* The child: uploads, acknowledging each request, then dies by SIGKILL mid-request. */
static void kill_child(int fd, const unsigned char *buf)
{
	struct spool_config c = {.dir = tmp};
	struct kill_report r = {.acked = 0};
	struct spool_write *w;
	struct spool_job j;
	struct job_meta m;
	char uuid[UUID_LEN + 1];
	struct spool *s;
	int existed;

	s = spool_open(&c, NULL);
	if (!s || jobid_client_generate(uuid))
		_exit(1);
	meta_init(&m, uuid);
	if (spool_create(s, OWNER_A, &m, KILL_LEN, NULL, 1, &j, &existed))
		_exit(1);
	memcpy(r.id, j.id, sizeof(r.id));
	for (uint64_t off = 0; off < KILL_ACKED * KILL_CHUNK; off += KILL_CHUNK) {
		if (spool_write_begin(s, OWNER_A, j.id, off, NULL, &w, NULL) ||
		    spool_write(w, buf + off, KILL_CHUNK) || spool_write_end(w, &j))
			_exit(1);
		r.acked = j.offset;
		if (write(fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
			_exit(1);
	}
	/* Half a request in flight, never ended. */
	if (spool_write_begin(s, OWNER_A, j.id, r.acked, NULL, &w, NULL) ||
	    spool_write(w, buf + r.acked, KILL_CHUNK / 2))
		_exit(1);
	raise(SIGKILL);
	_exit(1);
}

Test(spool, upload_survives_kill_9)
{
	unsigned char *buf = malloc(KILL_LEN), d[DIGEST_SHA256_LEN], *got;
	struct kill_report r = {.acked = 0}, last = {.acked = 0};
	struct spool_job j;
	char path[512];
	size_t got_len;
	int pfd[2], status, reports = 0;
	pid_t pid;

	pattern(buf, KILL_LEN, 28);
	sha256(buf, KILL_LEN, d);
	spool_free(sp);
	sp = NULL;
	cr_assert_eq(pipe(pfd), 0);
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		close(pfd[0]);
		kill_child(pfd[1], buf);
	}
	close(pfd[1]);
	while (read(pfd[0], &r, sizeof(r)) == (ssize_t)sizeof(r)) {
		last = r;
		reports++;
	}
	close(pfd[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);
	cr_assert_eq(reports, KILL_ACKED);
	cr_assert_eq(last.acked, KILL_ACKED * KILL_CHUNK);

	/* Every acknowledged byte is there; the in-flight half chunk may be too (page cache). */
	sp = open_spool();
	cr_assert_eq(spool_get(sp, OWNER_A, last.id, &j), SPOOL_OK);
	cr_assert_eq(j.state, SPOOL_RECEIVING);
	cr_assert_geq(j.offset, last.acked);
	cr_assert_leq(j.offset, last.acked + KILL_CHUNK / 2);
	path_of(path, sizeof(path), "uploads", j.id, "data");
	got = slurp(path, &got_len);
	cr_assert_eq(got_len, j.offset);
	cr_assert_eq(memcmp(got, buf, got_len), 0);
	free(got);
	cr_assert_eq(put(OWNER_A, j.id, j.offset, buf + j.offset, KILL_LEN - j.offset, NULL, &j),
		     SPOOL_OK);
	cr_assert_eq(j.state, SPOOL_COMMITTED);
	cr_assert_eq(memcmp(j.sha256, d, sizeof(d)), 0);
	free(buf);
}

/* Writes a fresh job id's directory under uploads/ with the given files (NULL: absent). */
static void half_dir(char id[JOBID_LEN + 1], const char *json, const char *data)
{
	char p[512];

	cr_assert_eq(jobid_generate(id), PROTO_OK);
	path_of(p, sizeof(p), "uploads", id, NULL);
	cr_assert_eq(mkdir(p, 0700), 0);
	if (json) {
		path_of(p, sizeof(p), "uploads", id, "job.json");
		spew(p, json, strlen(json), "wb");
	}
	if (data) {
		path_of(p, sizeof(p), "uploads", id, "data");
		spew(p, data, strlen(data), "wb");
	}
}

Test(spool, reopen_drops_half_created_uploads)
{
	static const struct {
		const char *json, *data;
	} cases[] = {
		{NULL, NULL},          /* mkdir only */
		{NULL, ""},            /* data file, no job.json yet */
		{"", ""},              /* empty job.json */
		{"{", ""},             /* torn */
		{"[]", ""},
		{"{\"version\":1}", ""},
		{"null", "abc"},
	};
	char ids[sizeof(cases) / sizeof(cases[0])][JOBID_LEN + 1];
	struct spool_recovery rec;
	struct spool_job keep, g;
	char p[512];

	create_ok(OWNER_A, 10, NULL, 1, &keep);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		half_dir(ids[i], cases[i].json, cases[i].data);
	/* Names that are not job ids are not ours: left alone. */
	snprintf(p, sizeof(p), "%s/uploads/README", tmp);
	spew(p, "x", 1, "wb");
	snprintf(p, sizeof(p), "%s/uploads/not-an-id", tmp);
	cr_assert_eq(mkdir(p, 0700), 0);

	reopen();
	spool_recovery(sp, &rec);
	cr_assert_eq(rec.dropped, sizeof(cases) / sizeof(cases[0]));
	cr_assert_eq(rec.receiving, 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_assert_not(job_exists("uploads", ids[i]), "case %zu", i);
	cr_assert(exists(p));
	snprintf(p, sizeof(p), "%s/uploads/README", tmp);
	cr_assert(exists(p));
	cr_assert_eq(spool_get(sp, OWNER_A, keep.id, &g), SPOOL_OK);
	cr_assert_eq(count_entries("trash"), 0);
}

/* Replaces the first from in s (NUL-terminated, cap bytes) with to. */
static void replace(char *s, size_t cap, const char *from, const char *to)
{
	char *at = strstr(s, from);
	size_t fl = strlen(from), tl = strlen(to), rest;

	cr_assert_not_null(at, "'%s' not in '%s'", from, s);
	rest = strlen(at + fl);
	cr_assert_lt((size_t)(at - s) + tl + rest, cap);
	memmove(at + tl, at + fl, rest + 1);
	memcpy(at, to, tl);
}

Test(spool, reopen_drops_damaged_job_json_and_forgets_the_pair)
{
	/* Each row edits a real job.json; every result must be refused at recovery. */
	static const struct {
		const char *from, *to;
	} edits[] = {
		{"\"copies\":1", "\"copies\":0"},
		{"\"copies\":1", "\"copies\":1000"},
		{"\"copies\":1", "\"copies\":\"1\""},
		{"\"copies\":1", "\"copies\":1.0"},
		{"\"copies\":1", "\"copies\":1,\"extra\":1"},
		{"\"copies\":1", "\"copies\":1,\"copies\":2"},
		{"\"version\":1", "\"version\":2"},
		{"\"encoding\":\"identity\"", "\"encoding\":\"gzip\""},
		{"\"format\":\"application/octet-stream\"", "\"format\":\"text/html\""},
		{"\"format\":\"application/octet-stream\"", "\"format\":\"Application/PDF\""},
		{"\"length\":10", "\"length\":-1"},
		{"\"length\":10", "\"length\":5"}, /* shorter than the data on disk */
		{"\"name\":\"\"", "\"name\":\"a\\u0000b\""},
		{"\"name\":\"\"", "\"name\":\"a\\nb\""},
		{"\"owner\":\"alice@example.com\"", "\"owner\":\"\""},
		{"\"job_id\":\"", "\"job_id\":\"X"},
		{"\"sequence\":1", "\"sequence\":-1"},
		{"\"submitted_at_ms\":-1", "\"submitted_at_ms\":-2"},
		{"\"submitted_at_ms\":-1", "\"submitted_at_ms\":-1,\"sha256\":\"00\""},
		{"{", "{\"committed_ms\":1,"}, /* committed without sha256 */
		{"\"digest\":\"", "\"digest\":\"A"},
		{"\"created_ms\"", "\"Created_ms\""},
		/* an identity job's size is its length */
		{"\"size\":10", "\"size\":11"},
		{"\"size\":10", "\"size\":\"10\""},
		{"\"encoding\":\"identity\"", "\"encoding\":\"ZSTD\""},
		/* stored_size only comes with the commit */
		{"\"size\":10", "\"size\":10,\"stored_size\":10"},
	};
	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		unsigned char d[DIGEST_SHA256_LEN];
		char p[512], text[4096], uuid[UUID_LEN + 1];
		struct spool_recovery rec;
		struct spool_job j;
		unsigned char *orig;
		size_t n;
		int existed;

		memset(d, 0x11, sizeof(d));
		new_uuid(uuid);
		cr_assert_eq(create(OWNER_A, uuid, 10, d, 1, &j, &existed), SPOOL_OK);
		cr_assert_eq(put(OWNER_A, j.id, 0, "abcdefg", 7, NULL, &j), SPOOL_OK);
		path_of(p, sizeof(p), "uploads", j.id, "job.json");
		orig = slurp(p, &n);
		cr_assert_lt(n, sizeof(text));
		memcpy(text, orig, n + 1);
		free(orig);
		replace(text, sizeof(text), edits[i].from, edits[i].to);
		spew(p, text, strlen(text), "wb");

		reopen();
		spool_recovery(sp, &rec);
		cr_assert_eq(rec.dropped, 1, "edit %zu: %s", i, text);
		cr_assert_not(job_exists("uploads", j.id), "edit %zu", i);
		/* The damaged upload's pair is forgotten, not a tombstone: create works again. */
		cr_assert_eq(create(OWNER_A, uuid, 10, d, 1, &j, &existed), SPOOL_OK, "edit %zu",
			     i);
		cr_assert_eq(existed, 0);
		cr_assert_eq(spool_delete(sp, OWNER_A, j.id), SPOOL_OK);
	}
}

Test(spool, crash_after_last_bytes_before_commit)
{
	unsigned char buf[800], d[DIGEST_SHA256_LEN];
	struct spool_job j, k;
	struct spool_write *w;
	char p[512];
	int existed;

	/* On disk: every byte (as after write_end's fdatasync), job.json still receiving. */
	pattern(buf, sizeof(buf), 13);
	sha256(buf, sizeof(buf), d);
	create_ok(OWNER_A, sizeof(buf), d, 1, &j);
	cr_assert_eq(put(OWNER_A, j.id, 0, buf, 500, NULL, &j), SPOOL_OK);
	spool_free(sp);
	sp = NULL;
	path_of(p, sizeof(p), "uploads", j.id, "data");
	spew(p, buf + 500, 300, "ab");
	sp = open_spool();

	/* HEAD: receiving at offset == length; a re-POST finds it the same way. */
	cr_assert_eq(spool_get(sp, OWNER_A, j.id, &k), SPOOL_OK);
	cr_assert_eq(k.state, SPOOL_RECEIVING);
	cr_assert_eq(k.offset, sizeof(buf));
	cr_assert_eq(create(OWNER_A, j.meta.job_id, sizeof(buf), d, 1, &k, &existed), SPOOL_OK);
	cr_assert_eq(existed, 1);
	cr_assert_eq(k.offset, sizeof(buf));
	/* No byte fits any more; an empty PATCH at offset == length commits. */
	cr_assert_eq(spool_write_begin(sp, OWNER_A, j.id, sizeof(buf), NULL, &w, NULL), SPOOL_OK);
	cr_assert_eq(spool_write(w, "x", 1), SPOOL_E_TOO_LARGE);
	cr_assert_eq(spool_write_end(w, &k), SPOOL_E_TOO_LARGE);
	cr_assert_eq(k.state, SPOOL_RECEIVING);
	cr_assert_eq(k.offset, sizeof(buf));
	cr_assert_eq(put(OWNER_A, j.id, sizeof(buf), NULL, 0, NULL, &k), SPOOL_OK);
	cr_assert_eq(k.state, SPOOL_COMMITTED);
	cr_assert_eq(memcmp(k.sha256, d, sizeof(d)), 0);
	cr_assert(job_exists("ready", j.id));
}

Test(spool, crash_after_job_json_before_rename_rolls_forward)
{
	struct spool_recovery rec;
	struct spool_job j, g, *list;
	char from[512], to[512];
	size_t n;

	commit_job(OWNER_A, 1500, 3, 14, &j);
	spool_free(sp);
	sp = NULL;
	/* Put the committed directory back where it was before the rename, plus a torn temp. */
	path_of(from, sizeof(from), "ready", j.id, NULL);
	path_of(to, sizeof(to), "uploads", j.id, NULL);
	cr_assert_eq(rename(from, to), 0);
	path_of(to, sizeof(to), "uploads", j.id, "job.json.tmp");
	spew(to, "{\"ver", 5, "wb");
	sp = open_spool();

	spool_recovery(sp, &rec);
	cr_assert_eq(rec.rolled_forward, 1);
	cr_assert_eq(rec.committed, 1);
	cr_assert_eq(rec.dropped, 0);
	cr_assert(job_exists("ready", j.id));
	cr_assert_not(job_exists("uploads", j.id));
	path_of(to, sizeof(to), "ready", j.id, "job.json.tmp");
	cr_assert_not(exists(to));
	cr_assert_eq(spool_get(sp, OWNER_A, j.id, &g), SPOOL_OK);
	assert_job_eq(&g, &j);
	cr_assert_eq(spool_list(sp, OWNER_A, &list, &n), SPOOL_OK);
	cr_assert_eq(n, 1);
	free(list);
}

Test(spool, crash_states_of_removals)
{
	struct spool_job a, b, c, g;
	char p[512], t[512];
	struct spool_recovery rec;
	int existed;

	/* a: release renamed into trash/, not yet emptied. */
	commit_job(OWNER_A, 100, 1, 15, &a);
	/* b: delete dropped the claim, crashed before the rename (committed job). */
	commit_job(OWNER_A, 100, 2, 16, &b);
	/* c: delete of a receiving upload, same point. */
	create_ok(OWNER_B, 100, NULL, 3, &c);
	spool_free(sp);
	sp = NULL;
	path_of(p, sizeof(p), "ready", a.id, NULL);
	path_of(t, sizeof(t), "trash", a.id, NULL);
	cr_assert_eq(rename(p, t), 0);
	claim_path(p, sizeof(p), OWNER_A, b.meta.job_id);
	cr_assert_eq(unlink(p), 0);
	claim_path(p, sizeof(p), OWNER_B, c.meta.job_id);
	cr_assert_eq(unlink(p), 0);
	sp = open_spool();

	spool_recovery(sp, &rec);
	cr_assert_eq(rec.committed, 0);
	cr_assert_eq(rec.receiving, 0);
	cr_assert_eq(rec.dropped, 2);
	cr_assert_eq(count_entries("trash"), 0);
	cr_assert_eq(count_entries("ready"), 0);
	cr_assert_eq(count_entries("uploads"), 0);
	cr_assert_eq(spool_get(sp, OWNER_A, a.id, &g), SPOOL_E_NOT_FOUND);
	/* a was released: tombstone. b and c were deleted: forgotten. */
	cr_assert_eq(create(OWNER_A, a.meta.job_id, 100, NULL, 1, &g, &existed), SPOOL_E_RELEASED);
	/* the tombstone still names the job that was */
	cr_assert_str_eq(g.id, a.id);
	cr_assert_eq(g.state, SPOOL_COMMITTED);
	cr_assert_eq(g.length, 100);
	cr_assert_eq(g.offset, 100);
	cr_assert_eq(create(OWNER_A, b.meta.job_id, 100, NULL, 1, &g, &existed), SPOOL_OK);
	cr_assert_eq(existed, 0);
	cr_assert_eq(create(OWNER_B, c.meta.job_id, 100, NULL, 1, &g, &existed), SPOOL_OK);
	cr_assert_eq(existed, 0);
}

Test(spool, reopen_drops_damaged_data)
{
	struct spool_job a, b, c, g;
	struct spool_recovery rec;
	char p[512];
	int existed;

	create_ok(OWNER_A, 4, NULL, 1, &a);      /* data longer than the length */
	commit_job(OWNER_A, 50, 2, 17, &b);     /* committed, data truncated */
	create_ok(OWNER_A, 4, NULL, 3, &c);      /* data file gone */
	spool_free(sp);
	sp = NULL;
	path_of(p, sizeof(p), "uploads", a.id, "data");
	spew(p, "0123456789", 10, "wb");
	path_of(p, sizeof(p), "ready", b.id, "data");
	cr_assert_eq(truncate(p, 49), 0);
	path_of(p, sizeof(p), "uploads", c.id, "data");
	cr_assert_eq(unlink(p), 0);
	sp = open_spool();

	spool_recovery(sp, &rec);
	cr_assert_eq(rec.dropped, 3);
	cr_assert_eq(spool_get(sp, OWNER_A, a.id, &g), SPOOL_E_NOT_FOUND);
	cr_assert_eq(spool_get(sp, OWNER_A, b.id, &g), SPOOL_E_NOT_FOUND);
	cr_assert_eq(spool_get(sp, OWNER_A, c.id, &g), SPOOL_E_NOT_FOUND);
	cr_assert_eq(count_entries("idem"), 0);
	cr_assert_eq(create(OWNER_A, a.meta.job_id, 4, NULL, 1, &g, &existed), SPOOL_OK);
	cr_assert_eq(existed, 0);
}

/* ---- space ---- */

Test(spool, limit_refuses_creation_until_space_is_released)
{
	struct spool_job a, b, g;
	char uuid[UUID_LEN + 1];
	int existed;

	reopen_with(1000, 0);
	commit_job(OWNER_A, 600, 1, 18, &a);
	create_ok(OWNER_A, 400, NULL, 2, &b); /* exactly the limit */
	new_uuid(uuid);
	cr_assert_eq(create(OWNER_A, uuid, 1, NULL, 3, &g, &existed), SPOOL_E_FULL);
	cr_assert_eq(count_entries("uploads"), 1, "nothing left behind");
	/* An existing job is still found when the spool is full. */
	cr_assert_eq(create(OWNER_A, b.meta.job_id, 400, NULL, 2, &g, &existed), SPOOL_OK);
	cr_assert_eq(existed, 1);
	cr_assert_eq(spool_release(sp, a.id, &g), SPOOL_OK);
	cr_assert_str_eq(g.id, a.id);
	cr_assert_eq(create(OWNER_A, uuid, 600, NULL, 3, &g, &existed), SPOOL_OK);
	cr_assert_eq(existed, 0);
	cr_assert_eq(spool_free_bytes(sp), 0);
	/* The limit holds across a restart: reservations are rebuilt. */
	reopen();
	new_uuid(uuid);
	cr_assert_eq(create(OWNER_A, uuid, 1, NULL, 4, &g, &existed), SPOOL_E_FULL);
}

Test(spool, min_free_refuses_creation)
{
	struct spool_job g;
	char uuid[UUID_LEN + 1];
	int existed;

	reopen_with(0, UINT64_MAX / 2);
	new_uuid(uuid);
	cr_assert_eq(create(OWNER_A, uuid, 1, NULL, 1, &g, &existed), SPOOL_E_FULL);
	cr_assert_eq(create(OWNER_A, uuid, 0, NULL, 1, &g, &existed), SPOOL_OK);
	cr_assert_eq(spool_free_bytes(sp), 0);
}

Test(spool, free_bytes_decrease_with_reservations)
{
	struct spool_job a, b, g;
	uint64_t before, after;

	reopen_with(100000, 0);
	cr_assert_eq(spool_free_bytes(sp), 100000);
	create_ok(OWNER_A, 30000, NULL, 1, &a);
	cr_assert_eq(spool_free_bytes(sp), 70000);
	commit_job(OWNER_A, 5000, 2, 19, &b);
	cr_assert_eq(spool_free_bytes(sp), 65000);
	cr_assert_eq(spool_delete(sp, OWNER_A, a.id), SPOOL_OK);
	cr_assert_eq(spool_free_bytes(sp), 95000);
	cr_assert_eq(spool_release(sp, b.id, &g), SPOOL_OK);
	cr_assert_eq(spool_free_bytes(sp), 100000);

	/* Without a limit: the filesystem's free space, less what uploads still have to write. */
	reopen_with(0, 0);
	before = spool_free_bytes(sp);
	cr_assert_gt(before, 1 << 20);
	create_ok(OWNER_A, before / 2, NULL, 3, &a);
	after = spool_free_bytes(sp);
	cr_assert_lt(after, before - before / 2 + before / 20, "%" PRIu64 " -> %" PRIu64, before,
		     after);
	cr_assert_gt(after + before / 20, before - before / 2);
}

/* ---- release, delete, list ---- */

Test(spool, release_leaves_a_tombstone)
{
	unsigned char buf[700], *got;
	struct spool_job j, g, r;
	char p[512];
	int fd, existed;
	ssize_t n;

	pattern(buf, sizeof(buf), 20);
	commit_job(OWNER_A, sizeof(buf), 1, 20, &j);
	cr_assert_eq(spool_open_data(sp, j.id, &fd, &g), SPOOL_OK);
	cr_assert_str_eq(g.id, j.id);
	cr_assert_eq(spool_release(sp, j.id, &r), SPOOL_OK);
	assert_job_eq(&r, &j);
	/* An fd opened before the release still reads the whole job. */
	got = malloc(sizeof(buf) + 1);
	n = pread(fd, got, sizeof(buf) + 1, 0);
	cr_assert_eq(n, (ssize_t)sizeof(buf));
	cr_assert_eq(memcmp(got, buf, sizeof(buf)), 0);
	free(got);
	close(fd);

	cr_assert_not(job_exists("ready", j.id));
	cr_assert_eq(count_entries("trash"), 0);
	claim_path(p, sizeof(p), OWNER_A, j.meta.job_id);
	cr_assert(exists(p), "tombstone");
	cr_assert_eq(spool_get(sp, OWNER_A, j.id, &g), SPOOL_E_NOT_FOUND);
	cr_assert_eq(spool_open_data(sp, j.id, &fd, &g), SPOOL_E_NOT_FOUND);
	cr_assert_eq(spool_release(sp, j.id, &g), SPOOL_E_NOT_FOUND);
	cr_assert_eq(create(OWNER_A, j.meta.job_id, sizeof(buf), NULL, 9, &g, &existed),
		     SPOOL_E_RELEASED);
	reopen();
	cr_assert_eq(create(OWNER_A, j.meta.job_id, sizeof(buf), NULL, 9, &g, &existed),
		     SPOOL_E_RELEASED);
}

Test(spool, release_side_refuses_receiving_jobs)
{
	struct spool_job j, g;
	char a[512], b[512];
	int fd;

	create_ok(OWNER_A, 10, NULL, 1, &j);
	cr_assert_eq(spool_open_data(sp, j.id, &fd, &g), SPOOL_E_NOT_COMMITTED);
	cr_assert_eq(spool_release(sp, j.id, &g), SPOOL_E_NOT_COMMITTED);
	cr_assert_eq(spool_paths(sp, j.id, a, b, sizeof(a)), SPOOL_E_NOT_COMMITTED);
	cr_assert_eq(spool_mark_hooked(sp, j.id), SPOOL_E_NOT_COMMITTED);
}

Test(spool, delete_forgets_receiving_and_committed_jobs)
{
	struct spool_job r, c, g;
	char p[512];
	int existed;

	create_ok(OWNER_A, 100, NULL, 1, &r);
	cr_assert_eq(put(OWNER_A, r.id, 0, "abc", 3, NULL, &r), SPOOL_OK);
	commit_job(OWNER_A, 100, 2, 21, &c);
	cr_assert_eq(spool_delete(sp, OWNER_B, r.id), SPOOL_E_NOT_FOUND);
	cr_assert_eq(spool_delete(sp, OWNER_B, c.id), SPOOL_E_NOT_FOUND);

	cr_assert_eq(spool_delete(sp, OWNER_A, r.id), SPOOL_OK);
	cr_assert_eq(spool_delete(sp, OWNER_A, c.id), SPOOL_OK);
	cr_assert_eq(spool_delete(sp, OWNER_A, c.id), SPOOL_E_NOT_FOUND);
	cr_assert_eq(spool_get(sp, OWNER_A, r.id, &g), SPOOL_E_NOT_FOUND);
	cr_assert_eq(spool_get(sp, OWNER_A, c.id, &g), SPOOL_E_NOT_FOUND);
	cr_assert_eq(count_entries("uploads"), 0);
	cr_assert_eq(count_entries("ready"), 0);
	cr_assert_eq(count_entries("trash"), 0);
	cr_assert_eq(count_entries("idem"), 0);
	claim_path(p, sizeof(p), OWNER_A, c.meta.job_id);
	cr_assert_not(exists(p));

	cr_assert_eq(create(OWNER_A, r.meta.job_id, 100, NULL, 3, &g, &existed), SPOOL_OK);
	cr_assert_eq(existed, 0);
	cr_assert_str_neq(g.id, r.id);
	cr_assert_eq(create(OWNER_A, c.meta.job_id, 100, NULL, 3, &g, &existed), SPOOL_OK);
	cr_assert_eq(existed, 0);
	reopen();
	cr_assert_eq(spool_get(sp, OWNER_A, r.id, &g), SPOOL_E_NOT_FOUND);
}

Test(spool, list_orders_by_sequence_then_id)
{
	static const struct {
		const char *owner;
		uint64_t seq;
		int commit;
	} jobs[] = {
		{OWNER_A, 5, 1}, {OWNER_B, 2, 1}, {OWNER_A, 1, 1}, {OWNER_B, 3, 1},
		{OWNER_A, 3, 1}, {OWNER_A, 3, 1}, {OWNER_A, 0, 0}, {OWNER_B, 9, 0},
	};
	struct spool_job j, *list;
	size_t n;

	for (size_t i = 0; i < sizeof(jobs) / sizeof(jobs[0]); i++) {
		if (jobs[i].commit)
			commit_job(jobs[i].owner, 10 + i, jobs[i].seq, (unsigned)i, &j);
		else
			create_ok(jobs[i].owner, 10, NULL, jobs[i].seq, &j);
	}
	for (int pass = 0; pass < 2; pass++) {
		cr_assert_eq(spool_list(sp, NULL, &list, &n), SPOOL_OK);
		cr_assert_eq(n, 6, "receiving jobs are not listed");
		for (size_t i = 1; i < n; i++) {
			cr_assert_leq(list[i - 1].sequence, list[i].sequence);
			if (list[i - 1].sequence == list[i].sequence)
				cr_assert_lt(strcmp(list[i - 1].id, list[i].id), 0);
		}
		cr_assert_eq(list[0].sequence, 1);
		cr_assert_eq(list[5].sequence, 5);
		free(list);

		cr_assert_eq(spool_list(sp, OWNER_A, &list, &n), SPOOL_OK);
		cr_assert_eq(n, 4);
		cr_assert_eq(list[0].sequence, 1);
		cr_assert_eq(list[1].sequence, 3);
		cr_assert_eq(list[2].sequence, 3);
		cr_assert_eq(list[3].sequence, 5);
		for (size_t i = 0; i < n; i++)
			cr_assert_str_eq(list[i].owner, OWNER_A);
		free(list);

		cr_assert_eq(spool_list(sp, "nobody", &list, &n), SPOOL_OK);
		cr_assert_eq(n, 0);
		free(list);
		reopen();
	}
}

/* ---- expiry ---- */

/* Records what spool_expire reports gone. */
struct gone_log {
	size_t n;
	struct spool_job jobs[8];
};

static void record_gone(void *arg, const struct spool_job *job)
{
	struct gone_log *g = arg;

	if (g->n < 8)
		g->jobs[g->n] = *job;
	g->n++;
}

Test(spool, expire_reports_each_job_it_removes)
{
	struct spool_job r, c;
	struct gone_log log = {0};

	create_ok(OWNER_A, 100, NULL, 1, &r);
	commit_job(OWNER_A, 100, 2, 22, &c);
	cr_assert_eq(spool_expire(sp, c.expires_ms + 1, record_gone, &log), 2);
	cr_assert_eq(log.n, 2);
	for (size_t i = 0; i < 2; i++) {
		const struct spool_job *j = &log.jobs[i];

		cr_assert(strcmp(j->id, r.id) == 0 || strcmp(j->id, c.id) == 0);
		cr_assert_str_eq(j->owner, OWNER_A);
		cr_assert_eq(j->state, strcmp(j->id, c.id) == 0 ? SPOOL_COMMITTED : SPOOL_RECEIVING);
	}
	cr_assert_eq(spool_expire(sp, c.expires_ms + 1, record_gone, &log), 0);
	cr_assert_eq(log.n, 2);
}

Test(spool, expire_with_a_fake_clock)
{
	struct spool_job r, c, w_job, g;
	struct spool_write *w;
	char p[512];
	struct timespec old[2] = {{0, 0}, {0, 0}};
	int existed;

	create_ok(OWNER_A, 100, NULL, 1, &r);
	commit_job(OWNER_A, 100, 2, 22, &c);
	create_ok(OWNER_B, 100, NULL, 3, &w_job);
	cr_assert_eq(spool_write_begin(sp, OWNER_B, w_job.id, 0, NULL, &w, NULL), SPOOL_OK);

	cr_assert_eq(spool_expire(sp, r.created_ms, NULL, NULL), 0);
	cr_assert_eq(spool_expire(sp, r.expires_ms, NULL, NULL), 0, "not past yet");
	/* The receiving upload goes (the one being written stays); its pair is forgotten. */
	cr_assert_eq(spool_expire(sp, r.expires_ms + 1, NULL, NULL), 1);
	cr_assert_eq(spool_get(sp, OWNER_A, r.id, &g), SPOOL_E_NOT_FOUND);
	cr_assert_eq(spool_get(sp, OWNER_B, w_job.id, &g), SPOOL_OK);
	cr_assert_eq(spool_get(sp, OWNER_A, c.id, &g), SPOOL_OK);
	cr_assert_eq(create(OWNER_A, r.meta.job_id, 100, NULL, 1, &g, &existed), SPOOL_OK);
	cr_assert_eq(existed, 0);

	/* Past the retention: the committed job goes and leaves a tombstone. */
	cr_assert_eq(spool_write(w, "abc", 3), SPOOL_OK);
	cr_assert_eq(spool_expire(sp, c.expires_ms + 1, NULL, NULL), 2); /* c and the re-created upload */
	cr_assert_eq(spool_write_end(w, &w_job), SPOOL_OK);
	cr_assert_eq(w_job.offset, 3);
	cr_assert_eq(create(OWNER_A, c.meta.job_id, 100, NULL, 2, &g, &existed), SPOOL_E_RELEASED);
	cr_assert_eq(count_entries("ready"), 0);

	/* The tombstone lasts the retention from the expiry (its mtime), then goes. */
	cr_assert_eq(spool_expire(sp, clock_unix_ms(), NULL, NULL), 0);
	cr_assert_eq(create(OWNER_A, c.meta.job_id, 100, NULL, 2, &g, &existed), SPOOL_E_RELEASED);
	claim_path(p, sizeof(p), OWNER_A, c.meta.job_id);
	cr_assert(exists(p));
	cr_assert_eq(spool_expire(sp, clock_unix_ms() + RETENTION_MS + 5000, NULL, NULL), 1); /* w_job, now idle */
	cr_assert_not(exists(p));
	cr_assert_eq(create(OWNER_A, c.meta.job_id, 100, NULL, 2, &g, &existed), SPOOL_OK);
	cr_assert_eq(existed, 0);

	/* A release restarts the claim's clock: the tombstone counts from the release. */
	commit_job(OWNER_A, 10, 4, 27, &c);
	claim_path(p, sizeof(p), OWNER_A, c.meta.job_id);
	cr_assert_eq(utimensat(AT_FDCWD, p, old, AT_SYMLINK_NOFOLLOW), 0);
	cr_assert_eq(spool_release(sp, c.id, &g), SPOOL_OK);
	cr_assert_eq(spool_expire(sp, clock_unix_ms(), NULL, NULL), 0);
	cr_assert(exists(p));
	cr_assert_eq(create(OWNER_A, c.meta.job_id, 10, NULL, 4, &g, &existed), SPOOL_E_RELEASED);

	/* A tombstone set back in time by hand goes at the next expiry with the real clock. */
	commit_job(OWNER_A, 10, 5, 23, &c);
	cr_assert_eq(spool_release(sp, c.id, &g), SPOOL_OK);
	claim_path(p, sizeof(p), OWNER_A, c.meta.job_id);
	cr_assert_eq(utimensat(AT_FDCWD, p, old, AT_SYMLINK_NOFOLLOW), 0);
	cr_assert_eq(spool_expire(sp, clock_unix_ms(), NULL, NULL), 0);
	cr_assert_not(exists(p));
}

/* ---- the on-commit hook ---- */

Test(spool, hook_marks_survive_a_restart)
{
	struct spool_job a, b, c, *list;
	char data[512], json[512], want[512];
	size_t n, need;

	commit_job(OWNER_A, 10, 3, 24, &a);
	commit_job(OWNER_B, 10, 1, 25, &b);
	commit_job(OWNER_A, 10, 2, 26, &c);
	cr_assert_eq(spool_unhooked(sp, &list, &n), SPOOL_OK);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(list[0].id, b.id);
	cr_assert_str_eq(list[1].id, c.id);
	cr_assert_str_eq(list[2].id, a.id);
	free(list);

	cr_assert_eq(spool_paths(sp, a.id, data, json, sizeof(data)), SPOOL_OK);
	path_of(want, sizeof(want), "ready", a.id, "data");
	cr_assert_str_eq(data, want);
	path_of(want, sizeof(want), "ready", a.id, "job.json");
	cr_assert_str_eq(json, want);
	need = strlen(want) + 1; /* job.json is the longer of the two */
	cr_assert_eq(spool_paths(sp, a.id, data, json, need), SPOOL_OK);
	cr_assert_eq(spool_paths(sp, a.id, data, json, need - 1), SPOOL_E_BUFFER);
	cr_assert_eq(spool_paths(sp, a.id, NULL, json, need), SPOOL_OK);

	cr_assert_eq(spool_mark_hooked(sp, a.id), SPOOL_OK);
	cr_assert_eq(spool_mark_hooked(sp, a.id), SPOOL_OK, "idempotent");
	path_of(want, sizeof(want), "ready", a.id, "hooked");
	cr_assert(exists(want));
	cr_assert_eq(spool_mark_hooked(sp, b.id), SPOOL_OK);
	cr_assert_eq(spool_unhooked(sp, &list, &n), SPOOL_OK);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(list[0].id, c.id);
	free(list);

	reopen();
	cr_assert_eq(spool_unhooked(sp, &list, &n), SPOOL_OK);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(list[0].id, c.id);
	free(list);
	cr_assert_eq(spool_release(sp, c.id, NULL), SPOOL_OK);
	cr_assert_eq(spool_unhooked(sp, &list, &n), SPOOL_OK);
	cr_assert_eq(n, 0);
	free(list);
}

/* ---- memory ---- */

static size_t allocated_bytes(void)
{
#ifdef SPOOL_TEST_ASAN
	return __sanitizer_get_current_allocated_bytes();
#else
	return mallinfo2().uordblks;
#endif
}

Test(spool, memory_stays_bounded_while_writing)
{
	size_t chunk = 64 * 1024, total = 64u << 20;
	unsigned char *buf = malloc(chunk), d[DIGEST_SHA256_LEN];
	struct spool_write *w;
	struct spool_job j;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t before, during, max_growth = 0;
	unsigned int n;

	cr_assert_not_null(ctx);
	cr_assert(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL));
	create_ok(OWNER_A, total, NULL, 1, &j);
	before = allocated_bytes();
	cr_assert_eq(spool_write_begin(sp, OWNER_A, j.id, 0, NULL, &w, NULL), SPOOL_OK);
	for (size_t off = 0; off < total; off += chunk) {
		pattern(buf, chunk, (unsigned)(off / chunk));
		EVP_DigestUpdate(ctx, buf, chunk);
		if (spool_write(w, buf, chunk) != SPOOL_OK)
			cr_assert_fail("write at %zu", off);
		during = allocated_bytes();
		if (during > before && during - before > max_growth)
			max_growth = during - before;
	}
	/* The writer and its hash states are a few hundred bytes; 64 KiB would be one chunk. */
	cr_assert_lt(max_growth, 16 * 1024, "grew by %zu bytes", max_growth);
	cr_assert_eq(spool_write_end(w, &j), SPOOL_OK);
	cr_assert(EVP_DigestFinal_ex(ctx, d, &n));
	cr_assert_eq(j.state, SPOOL_COMMITTED);
	cr_assert_eq(memcmp(j.sha256, d, sizeof(d)), 0);
	EVP_MD_CTX_free(ctx);
	free(buf);
}

/* ---- compressed jobs (zstd) ---- */

/* Text-like bytes: compressible, and different per seed. */
static void text(unsigned char *buf, size_t len, unsigned seed)
{
	static const char words[] = "print job spool zstd frame gateway office laptop queue ";
	uint32_t x = seed * 2654435761u + 7;

	for (size_t i = 0; i < len; i++) {
		if (i % 64 == 0)
			x = x * 1103515245u + 12345u;
		buf[i] = (unsigned char)words[(i + (x >> 16)) % (sizeof(words) - 1)];
	}
}

/* One zstd frame of buf (with its content checksum), malloc'd; *out_len its size. */
static unsigned char *zstd_frame(const void *buf, size_t len, size_t *out_len)
{
	size_t cap = ZSTD_compressBound(len), n;
	unsigned char *out = malloc(cap);
	ZSTD_CCtx *c = ZSTD_createCCtx();

	cr_assert(out && c);
	cr_assert(!ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)));
	n = ZSTD_compress2(c, out, cap, buf, len);
	cr_assert(!ZSTD_isError(n), "%s", ZSTD_getErrorName(n));
	ZSTD_freeCCtx(c);
	*out_len = n;
	return out;
}

/*
 * One frame of `zeros` zero bytes, compressed as a stream so that it takes little memory:
 * a 128 MiB frame is a few KiB.
 */
static unsigned char *zstd_zeros(size_t zeros, size_t *out_len)
{
	static const unsigned char zero[1 << 20];
	size_t cap = zeros / 1024 + 65536, left = zeros, r;
	unsigned char *out = malloc(cap);
	ZSTD_CCtx *c = ZSTD_createCCtx();
	ZSTD_outBuffer ob = {out, cap, 0};

	cr_assert(out && c);
	cr_assert(!ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 1)));
	do {
		size_t take = left < sizeof(zero) ? left : sizeof(zero);
		ZSTD_inBuffer ib = {zero, take, 0};
		ZSTD_EndDirective end = take == left ? ZSTD_e_end : ZSTD_e_continue;

		do {
			r = ZSTD_compressStream2(c, &ob, &ib, end);
			cr_assert(!ZSTD_isError(r), "%s", ZSTD_getErrorName(r));
		} while (ib.pos < ib.size || (end == ZSTD_e_end && r != 0));
		left -= take;
	} while (left);
	ZSTD_freeCCtx(c);
	*out_len = ob.pos;
	return out;
}

/* Creates a zstd job of (owner, fresh uuid) with the given stored length and document size. */
static enum spool_err create_zstd(const char *owner, uint64_t length, int64_t size,
				  const unsigned char *digest, struct spool_job *j, char *uuid)
{
	struct job_meta m;
	int existed = -1;
	enum spool_err e;

	new_uuid(uuid);
	meta_init(&m, uuid);
	m.encoding = META_ENCODING_ZSTD;
	m.size = size;
	e = spool_create(sp, owner, &m, length, digest, 1, j, &existed);
	if (!e)
		cr_assert_eq(existed, 0);
	return e;
}

/* Uploads stored[0..len) as a zstd job of size bytes in one request; returns the commit's. */
static enum spool_err zstd_upload(const void *stored, size_t len, int64_t size,
				  const unsigned char *digest, struct spool_job *j,
				  const char **why)
{
	char uuid[UUID_LEN + 1];
	struct spool_write *w = NULL;

	cr_assert_eq(create_zstd(OWNER_A, len, size, digest, j, uuid), SPOOL_OK);
	cr_assert_eq(spool_write_begin(sp, OWNER_A, j->id, 0, NULL, &w, NULL), SPOOL_OK);
	cr_assert_eq(spool_write(w, stored, len), SPOOL_OK);
	*why = NULL;
	return spool_write_end_why(w, j, why);
}

/* The committed job's data decoded through server/decode.h, malloc'd. */
static unsigned char *decoded_content(const char *id, size_t *len)
{
	struct spool_job j;
	struct decode *d;
	unsigned char *out;
	size_t got = 0, n = 0;
	int fd = -1;

	cr_assert_eq(spool_open_data(sp, id, &fd, &j), SPOOL_OK);
	d = decode_new(fd, j.length, j.size);
	cr_assert_not_null(d);
	out = malloc(j.size + 1);
	cr_assert_not_null(out);
	do {
		cr_assert_eq(decode_read(d, out + got, j.size + 1 - got, &n), DECODE_OK);
		got += n;
	} while (n);
	decode_free(d);
	*len = got;
	return out;
}

Test(spool, zstd_job_is_stored_as_sent_and_verified_decoded)
{
	size_t doc_len = 300000, f1_len, f2_len, len, got_len;
	unsigned char *doc = malloc(doc_len), d[DIGEST_SHA256_LEN], *f1, *f2, *stored, *got;
	char uuid[UUID_LEN + 1], p[512];
	struct spool_write *w;
	struct spool_job j, g;

	cr_assert_not_null(doc);
	text(doc, doc_len, 1);
	sha256(doc, doc_len, d);
	/* two concatenated frames, as a client compressing in pieces would send */
	f1 = zstd_frame(doc, 100000, &f1_len);
	f2 = zstd_frame(doc + 100000, doc_len - 100000, &f2_len);
	len = f1_len + f2_len;
	stored = malloc(len);
	cr_assert_not_null(stored);
	memcpy(stored, f1, f1_len);
	memcpy(stored + f1_len, f2, f2_len);
	cr_assert_lt(len, doc_len / 4, "test data should compress");

	cr_assert_eq(create_zstd(OWNER_A, len, (int64_t)doc_len, d, &j, uuid), SPOOL_OK);
	cr_assert_eq(j.length, len);
	cr_assert_eq(j.size, doc_len);
	cr_assert_eq(j.meta.encoding, META_ENCODING_ZSTD);
	cr_assert_eq(j.meta.size, (int64_t)doc_len);
	/* offsets count the compressed bytes; a restart in the middle changes nothing */
	cr_assert_eq(put(OWNER_A, j.id, 0, stored, 1000, NULL, &j), SPOOL_OK);
	cr_assert_eq(j.offset, 1000);
	reopen();
	cr_assert_eq(spool_get(sp, OWNER_A, j.id, &g), SPOOL_OK);
	assert_job_eq(&g, &j);
	cr_assert_eq(spool_write_begin(sp, OWNER_A, j.id, 1000, NULL, &w, NULL), SPOOL_OK);
	cr_assert_eq(spool_write(w, stored + 1000, len - 1000), SPOOL_OK);
	cr_assert_eq(spool_write_end(w, &j), SPOOL_OK);
	cr_assert_eq(j.state, SPOOL_COMMITTED);
	cr_assert_eq(j.offset, len);
	cr_assert_eq(memcmp(j.sha256, d, sizeof(d)), 0, "sha256 is the document's");

	/* on disk: the bytes as sent, and job.json says what they are */
	path_of(p, sizeof(p), "ready", j.id, "data");
	got = slurp(p, &got_len);
	cr_assert_eq(got_len, len);
	cr_assert_eq(memcmp(got, stored, len), 0);
	free(got);
	path_of(p, sizeof(p), "ready", j.id, "job.json");
	got = slurp(p, &got_len);
	cr_assert_not_null(strstr((char *)got, "\"encoding\":\"zstd\""), "%s", got);
	snprintf(p, sizeof(p), "\"size\":%zu", doc_len);
	cr_assert_not_null(strstr((char *)got, p), "%s", got);
	snprintf(p, sizeof(p), "\"stored_size\":%zu", len);
	cr_assert_not_null(strstr((char *)got, p), "%s", got);
	free(got);

	/* what reopening reads back is what was committed, and it decodes to the document */
	reopen();
	cr_assert_eq(spool_get(sp, OWNER_A, j.id, &g), SPOOL_OK);
	assert_job_eq(&g, &j);
	got = decoded_content(j.id, &got_len);
	cr_assert_eq(got_len, doc_len);
	cr_assert_eq(memcmp(got, doc, doc_len), 0);
	free(got);
	free(doc);
	free(f1);
	free(f2);
	free(stored);
}

struct zstd_case {
	const char *name;
	size_t from, len;  /* the stored bytes: bad[from..from + len) */
	int64_t size;
	int digest;        /* give the document's Repr-Digest (1), a wrong one (2), none (0) */
	enum decode_err want; /* DECODE_OK: decodes well, the digest differs */
};

Test(spool, zstd_refusals_discard_the_upload_with_a_precise_reason)
{
	size_t doc_len = 50000, f_len;
	unsigned char *doc = malloc(doc_len), d[DIGEST_SHA256_LEN], *f, *bad;
	struct spool_job j, g;
	const char *why;
	struct zstd_case cases[6];
	size_t n = 0;

	cr_assert_not_null(doc);
	text(doc, doc_len, 2);
	sha256(doc, doc_len, d);
	f = zstd_frame(doc, doc_len, &f_len);
	bad = malloc(f_len + 16);
	cr_assert_not_null(bad);
	memcpy(bad, f, f_len);
	memcpy(bad + f_len, "trailing garbage", 16);
	cases[n++] = (struct zstd_case){"size one short", 0, f_len, (int64_t)doc_len - 1, 0,
					DECODE_E_TOO_LONG};
	cases[n++] = (struct zstd_case){"size one over", 0, f_len, (int64_t)doc_len + 1, 0,
					DECODE_E_TOO_SHORT};
	cases[n++] = (struct zstd_case){"trailing garbage", 0, f_len + 16, (int64_t)doc_len, 1,
					DECODE_E_TRAILING};
	cases[n++] = (struct zstd_case){"truncated frame", 0, f_len - 7, (int64_t)doc_len, 1,
					DECODE_E_TRUNCATED};
	cases[n++] = (struct zstd_case){"not zstd", f_len, 16, 16, 0, DECODE_E_NOT_ZSTD};
	cases[n++] = (struct zstd_case){"wrong digest", 0, f_len, (int64_t)doc_len, 2,
					DECODE_OK};
	for (size_t i = 0; i < n; i++) {
		unsigned char wrong[DIGEST_SHA256_LEN];
		const unsigned char *dig = cases[i].digest == 1 ? d :
					   cases[i].digest == 2 ? wrong : NULL;

		memcpy(wrong, d, sizeof(wrong));
		wrong[5] ^= 0x40;
		cr_assert_eq(zstd_upload(bad + cases[i].from, cases[i].len, cases[i].size, dig, &j,
					 &why),
			     SPOOL_E_DIGEST, "%s", cases[i].name);
		cr_assert_not_null(why, "%s", cases[i].name);
		if (cases[i].want)
			cr_assert_str_eq(why, decode_strerror(cases[i].want), "%s", cases[i].name);
		else
			cr_assert_not_null(strstr(why, "Repr-Digest"), "%s: %s", cases[i].name, why);
		/* discarded exactly as a digest mismatch: the job and its claim are gone */
		cr_assert_eq(spool_get(sp, OWNER_A, j.id, &g), SPOOL_E_NOT_FOUND, "%s",
			     cases[i].name);
		cr_assert_eq(count_entries("uploads"), 0, "%s", cases[i].name);
		cr_assert_eq(count_entries("idem"), 0, "%s", cases[i].name);
	}
	/* a byte flipped inside the frame: corrupt, or caught by the frame's checksum */
	memcpy(bad, f, f_len);
	bad[f_len / 2] ^= 0x21;
	cr_assert_eq(zstd_upload(bad, f_len, (int64_t)doc_len, NULL, &j, &why), SPOOL_E_DIGEST);
	cr_assert(why == decode_strerror(DECODE_E_CORRUPT) ||
			  why == decode_strerror(DECODE_E_CHECKSUM) ||
			  why == decode_strerror(DECODE_E_TOO_SHORT),
		  "%s", why);
	/* the right bytes are accepted after all that */
	cr_assert_eq(zstd_upload(f, f_len, (int64_t)doc_len, d, &j, &why), SPOOL_OK);
	cr_assert_eq(j.state, SPOOL_COMMITTED);
	cr_assert_null(why);
	cr_assert_eq(count_entries("ready"), 1);
	free(doc);
	free(f);
	free(bad);
}

Test(spool, zstd_bomb_with_a_small_size_is_refused_without_decoding_it)
{
	/* 2048 frames of 128 MiB of zeros: 256 GiB, which would take minutes to decode */
	size_t frame_len, frames = 2048, len;
	unsigned char *frame = zstd_zeros((size_t)128 << 20, &frame_len), *stored;
	struct spool_job j;
	const char *why;
	int64_t t;

	len = frame_len * frames;
	cr_assert_lt(len, (size_t)16 << 20, "the bomb is small on disk: %zu", len);
	stored = malloc(len);
	cr_assert_not_null(stored);
	for (size_t i = 0; i < frames; i++)
		memcpy(stored + i * frame_len, frame, frame_len);
	t = clock_mono_ms();
	cr_assert_eq(zstd_upload(stored, len, 4096, NULL, &j, &why), SPOOL_E_DIGEST);
	t = clock_mono_ms() - t;
	cr_assert_str_eq(why, decode_strerror(DECODE_E_TOO_LONG));
	cr_assert_lt(t, 20000, "refused after %lld ms: it decoded far past the size", (long long)t);
	cr_assert_eq(count_entries("uploads"), 0);
	free(stored);
	free(frame);
}

Test(spool, zstd_job_of_no_bytes_is_refused_at_creation)
{
	static const unsigned char empty_sha[DIGEST_SHA256_LEN] = {
		0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
		0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
		0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
	};
	char uuid[UUID_LEN + 1];
	size_t f_len;
	unsigned char *f = zstd_frame("", 0, &f_len);
	struct spool_job j;
	const char *why;

	/* zero frames is not a zstd job, even of an empty document */
	cr_assert_eq(create_zstd(OWNER_A, 0, 0, empty_sha, &j, uuid), SPOOL_E_DIGEST);
	cr_assert_eq(count_entries("uploads"), 0);
	cr_assert_eq(count_entries("idem"), 0);
	/* one frame of nothing is */
	cr_assert_eq(zstd_upload(f, f_len, 0, empty_sha, &j, &why), SPOOL_OK);
	cr_assert_eq(j.state, SPOOL_COMMITTED);
	cr_assert_eq(j.size, 0);
	cr_assert_eq(memcmp(j.sha256, empty_sha, sizeof(empty_sha)), 0);
	free(f);
}

Test(spool, zstd_job_decodes_into_tmp_for_the_hook)
{
	size_t doc_len = 70000, f_len, got_len;
	unsigned char *doc = malloc(doc_len), d[DIGEST_SHA256_LEN], *f, *got;
	char path[1024], want[512];
	struct spool_job j, plain;
	const char *why;

	cr_assert_not_null(doc);
	text(doc, doc_len, 3);
	sha256(doc, doc_len, d);
	f = zstd_frame(doc, doc_len, &f_len);
	cr_assert_eq(zstd_upload(f, f_len, (int64_t)doc_len, d, &j, &why), SPOOL_OK);
	cr_assert_eq(spool_decode_temp(sp, j.id, path, sizeof(path)), SPOOL_OK);
	snprintf(want, sizeof(want), "%s/tmp/%s-", tmp, j.id);
	cr_assert_eq(strncmp(path, want, strlen(want)), 0, "%s", path);
	got = slurp(path, &got_len);
	cr_assert_eq(got_len, doc_len);
	cr_assert_eq(memcmp(got, doc, doc_len), 0);
	free(got);
	cr_assert_eq(count_entries("tmp"), 1);
	/* the path must fit, or nothing is made */
	cr_assert_eq(spool_decode_temp(sp, j.id, path, strlen(want) + 6), SPOOL_E_BUFFER);
	cr_assert_eq(count_entries("tmp"), 1);
	/* identity jobs are their own file */
	commit_job(OWNER_A, 10, 2, 4, &plain);
	cr_assert_eq(spool_decode_temp(sp, plain.id, path, sizeof(path)), SPOOL_E_INVALID);
	/* a crash leaves a decoded copy behind: the next open removes it */
	reopen();
	cr_assert_eq(count_entries("tmp"), 0);
	cr_assert_eq(spool_get(sp, OWNER_A, j.id, &plain), SPOOL_OK);
	free(doc);
	free(f);
}

Test(spool, job_json_from_before_zstd_still_loads)
{
	char p[512], text_json[4096], num[64];
	unsigned char *orig;
	struct spool_recovery rec;
	struct spool_job j, g;
	size_t n;

	commit_job(OWNER_A, 10, 1, 5, &j);
	cr_assert_eq(j.size, 10);
	path_of(p, sizeof(p), "ready", j.id, "job.json");
	orig = slurp(p, &n);
	cr_assert_lt(n, sizeof(text_json));
	memcpy(text_json, orig, n + 1);
	free(orig);
	/* the old file had neither size nor stored_size */
	snprintf(num, sizeof(num), "\"size\":10,");
	replace(text_json, sizeof(text_json), num, "");
	snprintf(num, sizeof(num), "\"stored_size\":10,");
	replace(text_json, sizeof(text_json), num, "");
	cr_assert_null(strstr(text_json, "size"), "%s", text_json);
	spew(p, text_json, strlen(text_json), "wb");
	reopen();
	spool_recovery(sp, &rec);
	cr_assert_eq(rec.dropped, 0);
	cr_assert_eq(rec.committed, 1);
	cr_assert_eq(spool_get(sp, OWNER_A, j.id, &g), SPOOL_OK);
	assert_job_eq(&g, &j);
	cr_assert_eq(g.meta.encoding, META_ENCODING_IDENTITY);
	cr_assert_eq(g.size, 10);
}

/* ---- discard mode (benchmarks only) ---- */

static void setup_discard(void)
{
	setup_with(1);
}

TestSuite(spool_discard, .init = setup_discard, .fini = teardown, .timeout = 120);

#define DISCARD_LEN (4u << 20)
#define DISCARD_ALLOC_MAX (64u << 10)

/* Size and allocated bytes of an upload's (or committed job's) data file. */
static void data_stat(const char *area, const char *id, uint64_t *size, uint64_t *allocated)
{
	char p[512];
	struct stat st;

	path_of(p, sizeof(p), area, id, "data");
	cr_assert_eq(stat(p, &st), 0, "stat %s", p);
	*size = (uint64_t)st.st_size;
	*allocated = (uint64_t)st.st_blocks * 512;
}

/*
 * Sends DISCARD_LEN pattern bytes (seed) to a fresh job of digest d in three requests,
 * checking after each that offset and file size agree and nothing is allocated. Returns the
 * last request's outcome; *j describes the job (or what it was, when the commit discarded it).
 */
static enum spool_err discard_upload(unsigned seed, const unsigned char *d, struct spool_job *j)
{
	static const uint64_t cuts[] = {0, 1500000, 2900000, DISCARD_LEN};
	unsigned char *buf = malloc(DISCARD_LEN);
	uint64_t size, allocated;
	enum spool_err e = SPOOL_OK;
	struct spool_job g;

	cr_assert_not_null(buf);
	pattern(buf, DISCARD_LEN, seed);
	create_ok(OWNER_A, DISCARD_LEN, d, 1, j);
	for (size_t i = 0; i + 1 < sizeof(cuts) / sizeof(cuts[0]); i++) {
		e = put(OWNER_A, j->id, cuts[i], buf + cuts[i], (size_t)(cuts[i + 1] - cuts[i]),
			NULL, &g);
		if (i + 2 < sizeof(cuts) / sizeof(cuts[0])) {
			cr_assert_eq(e, SPOOL_OK, "request %zu: %s", i, spool_strerror(e));
			cr_assert_eq(g.offset, cuts[i + 1]);
			cr_assert_eq(spool_get(sp, OWNER_A, j->id, &g), SPOOL_OK);
			cr_assert_eq(g.offset, cuts[i + 1]);
			data_stat("uploads", j->id, &size, &allocated);
			cr_assert_eq(size, cuts[i + 1], "file size is the offset");
			cr_assert_lt(allocated, DISCARD_ALLOC_MAX, "%" PRIu64 " bytes allocated",
				     allocated);
		} else if (e == SPOOL_OK) {
			*j = g;
		}
	}
	free(buf);
	return e;
}

Test(spool_discard, offsets_length_and_digest_hold_but_nothing_is_stored)
{
	unsigned char *buf = malloc(DISCARD_LEN), d[DIGEST_SHA256_LEN];
	unsigned char *data;
	uint64_t size, allocated;
	struct spool_job j, g;
	char p[512];
	size_t n;

	cr_assert_not_null(buf);
	pattern(buf, DISCARD_LEN, 41);
	sha256(buf, DISCARD_LEN, d);
	cr_assert_eq(discard_upload(41, d, &j), SPOOL_OK);
	cr_assert_eq(j.state, SPOOL_COMMITTED);
	cr_assert_eq(j.offset, DISCARD_LEN);
	cr_assert_eq(j.length, DISCARD_LEN);
	cr_assert_eq(memcmp(j.sha256, d, sizeof(d)), 0, "the hash is of the bytes received");
	cr_assert_eq(spool_get(sp, OWNER_A, j.id, &g), SPOOL_OK);
	assert_job_eq(&g, &j);
	data_stat("ready", j.id, &size, &allocated);
	cr_assert_eq(size, DISCARD_LEN);
	cr_assert_lt(allocated, DISCARD_ALLOC_MAX, "%" PRIu64 " bytes allocated", allocated);
	/* committed jobs hold zeros */
	path_of(p, sizeof(p), "ready", j.id, "data");
	data = slurp(p, &n);
	cr_assert_eq(n, DISCARD_LEN);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(data[i], 0, "byte %zu", i);
	free(data);
	/* and survive a restart as committed jobs */
	reopen();
	cr_assert_eq(spool_get(sp, OWNER_A, j.id, &g), SPOOL_OK);
	assert_job_eq(&g, &j);
	free(buf);
}

Test(spool_discard, a_wrong_digest_is_still_a_mismatch)
{
	unsigned char *buf = malloc(DISCARD_LEN), d[DIGEST_SHA256_LEN];
	struct spool_job j, g;

	cr_assert_not_null(buf);
	pattern(buf, DISCARD_LEN, 42);
	sha256(buf, DISCARD_LEN, d);
	d[7] ^= 0x10;
	cr_assert_eq(discard_upload(42, d, &j), SPOOL_E_DIGEST);
	cr_assert_eq(spool_get(sp, OWNER_A, j.id, &g), SPOOL_E_NOT_FOUND);
	cr_assert_eq(count_entries("uploads"), 0);
	cr_assert_eq(count_entries("ready"), 0);
	cr_assert_eq(count_entries("idem"), 0, "the pair is forgotten");
	free(buf);
}

Test(spool_discard, checksum_and_too_large_still_drop_the_request)
{
	unsigned char buf[6000], sum[DIGEST_SHA256_LEN];
	uint64_t size, allocated;
	struct spool_job j, g;

	pattern(buf, sizeof(buf), 43);
	create_ok(OWNER_A, 8000, NULL, 1, &j);
	cr_assert_eq(put(OWNER_A, j.id, 0, buf, 3000, NULL, &g), SPOOL_OK);
	sha256(buf, 4000, sum);
	sum[0] ^= 1;
	cr_assert_eq(put(OWNER_A, j.id, 3000, buf, 4000, sum, &g), SPOOL_E_CHECKSUM);
	cr_assert_eq(g.offset, 3000);
	data_stat("uploads", j.id, &size, &allocated);
	cr_assert_eq(size, 3000);
	cr_assert_eq(put(OWNER_A, j.id, 3000, buf, 5001, NULL, &g), SPOOL_E_TOO_LARGE);
	cr_assert_eq(spool_get(sp, OWNER_A, j.id, &g), SPOOL_OK);
	cr_assert_eq(g.offset, 3000);
	data_stat("uploads", j.id, &size, &allocated);
	cr_assert_eq(size, 3000);
	sha256(buf, 5000, sum);
	cr_assert_eq(put(OWNER_A, j.id, 3000, buf, 5000, sum, &g), SPOOL_OK);
	cr_assert_eq(g.state, SPOOL_COMMITTED);
}

Test(spool_discard, zstd_jobs_are_refused)
{
	char uuid[UUID_LEN + 1];
	struct spool_write *w = NULL;
	struct spool_job j;

	cr_assert_eq(create_zstd(OWNER_A, 100, 1000, NULL, &j, uuid), SPOOL_E_UNSUPPORTED);
	cr_assert_eq(count_entries("uploads"), 0);
	cr_assert_eq(count_entries("idem"), 0);
	/* an upload made before discard mode cannot go on in it: its commit would decode zeros */
	spool_free(sp);
	cfg_discard = 0;
	sp = open_spool();
	cr_assert_eq(create_zstd(OWNER_A, 100, 1000, NULL, &j, uuid), SPOOL_OK);
	spool_free(sp);
	cfg_discard = 1;
	sp = open_spool();
	cr_assert_eq(spool_write_begin(sp, OWNER_A, j.id, 0, NULL, &w, NULL), SPOOL_E_UNSUPPORTED);
	cr_assert_null(w);
	cr_assert_eq(spool_active(sp), 0);
}

Test(spool_discard, pending_bytes_take_no_free_space)
{
	char uuid[UUID_LEN + 1];
	struct statvfs sv;
	uint64_t share;
	struct spool_job j;

	cr_assert_eq(statvfs(tmp, &sv), 0);
	share = (uint64_t)sv.f_bavail * sv.f_frsize / 5 * 2;
	/* three uploads of 40% of the free space each: only possible when none will land */
	for (int i = 0; i < 3; i++)
		create_ok(OWNER_A, share, NULL, (uint64_t)i + 1, &j);
	cr_assert_gt(spool_free_bytes(sp), share);
	/* spool_limit still counts them */
	reopen_with(3 * share, 0);
	cr_assert_eq(spool_free_bytes(sp), 0);
	new_uuid(uuid);
	cr_assert_eq(create(OWNER_A, uuid, 1, NULL, 9, &j, NULL), SPOOL_E_FULL);
}
