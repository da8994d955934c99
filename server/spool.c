/* spool: the data-center server's durable job store: files, crash recovery and the index. */
#include "server/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/fsio.h"
#include "common/clock.h"
#include "proto/ascii.h"
#include "proto/utf8.h"
#include "server/decode.h"

#define DATA_NAME "data"
#define JSON_NAME "job.json"
#define JSON_TMP "job.json.tmp"
#define HOOKED_NAME "hooked"
#define JSON_VERSION 1
#define JSON_MAX 65536           /* a job.json is under 2 KiB; anything bigger is not ours */
#define READ_CHUNK 65536         /* buffer for rehashing or decoding a data file */
#define TMP_SUFFIX "-XXXXXX"     /* mkostemp's template after the job id in tmp/ */
#define CLAIM_LEN (OWNER_HASH_LEN + 1 + UUID_LEN)
#define SUBPATH_MAX (JOBID_LEN + 16) /* "<id>/job.json.tmp" and the like */
#define CREATE_TRIES 8           /* claim races lost in a row before giving up (BUSY) */
#define DEFAULT_UPLOAD_EXPIRY_MS (24LL * 3600 * 1000)
#define DEFAULT_RETENTION_MS (7LL * 24 * 3600 * 1000)

/* Who holds an entry; only the holder does I/O on the job's files or changes its offset. */
enum entry_busy {
	BUSY_NONE = 0,
	BUSY_CREATING,  /* spool_create is still making it (or committing a 0-byte job) */
	BUSY_WRITING,   /* a spool_write is open */
	BUSY_REMOVING,  /* delete, release or expiry in progress */
};

struct entry {
	struct spool_job job;
	char claim[CLAIM_LEN + 1];   /* the name of its idem/ symlink */
	enum entry_busy busy;
	int hooked;
	/*
	 * SHA-256 of data[0..offset) so far, or NULL when unknown (after a restart, or after an
	 * error made it unreliable): the commit then reads the file again.
	 */
	EVP_MD_CTX *hash;
};

struct spool {
	char *dir;
	struct spool_config cfg;     /* cfg.dir points to dir */
	int dir_fd, up_fd, ready_fd, idem_fd, trash_fd, tmp_fd;
	pthread_mutex_t lock;        /* the index and every entry's mutable fields */
	pthread_cond_t cond;         /* signalled whenever an entry stops being busy or goes */
	pthread_mutex_t expire_lock; /* one spool_expire at a time: tombstone checks would race */
	struct entry **v;            /* sorted by job id */
	size_t n, cap;
	uint64_t reserved;           /* sum of the lengths of every job */
	uint64_t outstanding;        /* sum of length - offset over receiving uploads */
	unsigned active;             /* entries BUSY_WRITING */
	struct spool_recovery rec;
	char (*dropped)[JOBID_LEN + 1]; /* ids spool_open dropped, whose claims it then drops */
	size_t n_dropped;
};

struct spool_write {
	struct spool *s;
	struct entry *e;
	int fd;
	uint64_t start, pos;
	enum spool_err err;          /* sticky: the first error of spool_write */
	int has_checksum;
	unsigned char checksum[DIGEST_SHA256_LEN];
	EVP_MD_CTX *chk;             /* this request's bytes, when has_checksum */
	EVP_MD_CTX *snap;            /* e->hash as it was at begin, to roll back; NULL if it was */
};

const char *spool_strerror(enum spool_err e)
{
	switch (e) {
	case SPOOL_OK: return "ok";
	case SPOOL_E_NOMEM: return "out of memory";
	case SPOOL_E_IO: return "spool I/O error";
	case SPOOL_E_FULL: return "spool full";
	case SPOOL_E_NOT_FOUND: return "no such job";
	case SPOOL_E_CONFLICT: return "client job id reused with another length or digest";
	case SPOOL_E_OFFSET: return "Upload-Offset is not the upload's offset";
	case SPOOL_E_TOO_LARGE: return "bytes past Upload-Length";
	case SPOOL_E_DIGEST: return "job differs from its Repr-Digest";
	case SPOOL_E_CHECKSUM: return "request differs from its Upload-Checksum";
	case SPOOL_E_BUSY: return "another request is writing this upload";
	case SPOOL_E_NOT_COMMITTED: return "job not committed";
	case SPOOL_E_RELEASED: return "job already committed and released";
	case SPOOL_E_INVALID: return "invalid argument";
	case SPOOL_E_BUFFER: return "buffer too small";
	case SPOOL_E_UNSUPPORTED:
		return "zstd-encoded jobs are refused: bench_discard keeps no data to decode";
	}
	return "unknown spool error";
}

/* ---- small helpers ---- */

static enum spool_err errno_err(int e)
{
	if (e == ENOSPC || e == EDQUOT)
		return SPOOL_E_FULL;
	if (e == ENOMEM)
		return SPOOL_E_NOMEM;
	return SPOOL_E_IO;
}

/*
 * Every durability step of the spool: fsync(2) and fdatasync(2), or nothing at all in discard
 * mode (spool.h), where no byte kept is worth one. 0 or -1 (errno).
 */
static int disk_sync(const struct spool *s, int fd)
{
	return s->cfg.discard ? 0 : fsio_fsync(fd);
}

static int disk_datasync(const struct spool *s, int fd)
{
	return s->cfg.discard ? 0 : fsio_fdatasync(fd);
}

/* "<id>/<file>" for openat relative to uploads/ or ready/; id is a checked job id. */
static void subpath(char buf[SUBPATH_MAX], const char *id, const char *file)
{
	snprintf(buf, SUBPATH_MAX, "%s/%s", id, file);
}

/*
 * Removes the flat directory name under parent: its files, then itself. Job directories hold
 * files only; anything else makes it fail. Returns 0 or -1.
 */
static int dir_remove(int parent, const char *name)
{
	struct dirent *d;
	DIR *dir;
	int fd, rc = 0;

	fd = fsio_dir_open(parent, name);
	if (fd == -1)
		return errno == ENOENT ? 0 : -1;
	dir = fdopendir(fd);
	if (!dir) {
		fsio_close(fd);
		return -1;
	}
	while ((d = readdir(dir))) {
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		if (unlinkat(dirfd(dir), d->d_name, 0) == -1 && errno != ENOENT)
			rc = -1;
	}
	closedir(dir);
	if (unlinkat(parent, name, AT_REMOVEDIR) == -1 && errno != ENOENT)
		rc = -1;
	return rc;
}

static int is_job_id(const char *s)
{
	size_t len = strnlen(s, JOBID_LEN + 1);

	return len == JOBID_LEN && jobid_check(s, len) == PROTO_OK;
}

/* The idem/ name of (owner, client job id). Returns 0, or -1 when owner is not valid. */
static int claim_name(const char *owner, const char *uuid, char out[CLAIM_LEN + 1])
{
	char oh[OWNER_HASH_LEN + 1];
	size_t len = strnlen(owner, OWNER_MAX + 1);

	if (len > OWNER_MAX || owner_hash(owner, len, oh, sizeof(oh)) != PROTO_OK)
		return -1;
	snprintf(out, CLAIM_LEN + 1, "%s-%s", oh, uuid);
	return 0;
}

/* Reads a claim: 0 and id written, 1 when there is none, -1 on error (or not one of ours). */
static int claim_read(struct spool *s, const char *claim, char id[JOBID_LEN + 1])
{
	char buf[JOBID_LEN + 2];
	ssize_t n = readlinkat(s->idem_fd, claim, buf, sizeof(buf));

	if (n == -1)
		return errno == ENOENT ? 1 : -1;
	if (n != JOBID_LEN)
		return -1;
	memcpy(id, buf, JOBID_LEN);
	id[JOBID_LEN] = '\0';
	return is_job_id(id) ? 0 : -1;
}

/* Removes the claim if it names id, so that the pair is forgotten. Returns 0 or -1. */
static int claim_drop(struct spool *s, const char *claim, const char *id)
{
	char cur[JOBID_LEN + 1];
	int r = claim_read(s, claim, cur);

	if (r == 1 || (r == 0 && strcmp(cur, id)))
		return 0;
	if (r == -1)
		return -1;
	if (unlinkat(s->idem_fd, claim, 0) == -1 && errno != ENOENT)
		return -1;
	return disk_sync(s, s->idem_fd);
}

/* The metadata checks shared by creation and recovery, so what is written reads back. */
static int meta_ok(const struct job_meta *m)
{
	char canon[UUID_LEN + 1], fmt[META_FORMAT_MAX + 1];
	size_t len;

	len = strnlen(m->job_id, sizeof(m->job_id));
	if (len != UUID_LEN || jobid_client_parse(m->job_id, len, canon) ||
	    memcmp(canon, m->job_id, UUID_LEN))
		return 0;
	len = strnlen(m->name, sizeof(m->name));
	if (len == sizeof(m->name) || utf8_check_text(m->name, len))
		return 0;
	len = strnlen(m->format, sizeof(m->format));
	if (len == sizeof(m->format) || meta_format_parse(m->format, len, fmt, sizeof(fmt)) ||
	    strcmp(fmt, m->format))
		return 0;
	if (m->copies < 1 || m->copies > META_COPIES_MAX)
		return 0;
	if (m->submitted_at_ms < -1)
		return 0;
	if (m->encoding == META_ENCODING_ZSTD)
		return m->size >= 0 && m->size <= META_SIZE_MAX;
	return m->encoding == META_ENCODING_IDENTITY && m->size == -1;
}

/* ---- the index ---- */

/* Position of id in the sorted array, or where it would go; *found tells which. */
static size_t index_pos(const struct spool *s, const char *id, int *found)
{
	size_t lo = 0, hi = s->n;

	*found = 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->v[mid]->job.id, id);

		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct entry *index_find(struct spool *s, const char *id)
{
	int found;
	size_t i;

	if (!id)
		return NULL;
	i = index_pos(s, id, &found);
	return found ? s->v[i] : NULL;
}

/* Inserts e and counts its bytes. Returns 0, -1 (no memory) or 1 (id taken). */
static int index_add(struct spool *s, struct entry *e)
{
	int found;
	size_t i = index_pos(s, e->job.id, &found);

	if (found)
		return 1;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct entry **v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return -1;
		s->v = v;
		s->cap = cap;
	}
	memmove(s->v + i + 1, s->v + i, (s->n - i) * sizeof(*s->v));
	s->v[i] = e;
	s->n++;
	s->reserved += e->job.length;
	if (e->job.state == SPOOL_RECEIVING)
		s->outstanding += e->job.length - e->job.offset;
	return 0;
}

static void index_del(struct spool *s, struct entry *e)
{
	int found;
	size_t i = index_pos(s, e->job.id, &found);

	if (!found || s->v[i] != e)
		return;
	memmove(s->v + i, s->v + i + 1, (s->n - i - 1) * sizeof(*s->v));
	s->n--;
	s->reserved -= e->job.length;
	if (e->job.state == SPOOL_RECEIVING)
		s->outstanding -= e->job.length - e->job.offset;
}

/* Moves a receiving entry's offset; called with the lock held. */
static void entry_set_offset(struct spool *s, struct entry *e, uint64_t offset)
{
	s->outstanding -= e->job.length - e->job.offset;
	e->job.offset = offset;
	s->outstanding += e->job.length - offset;
}

static void entry_free(struct entry *e)
{
	if (!e)
		return;
	EVP_MD_CTX_free(e->hash);
	free(e);
}

/* Gives up holding e (not removed) and wakes whoever waits for it. */
static void entry_unbusy(struct spool *s, struct entry *e)
{
	pthread_mutex_lock(&s->lock);
	if (e->busy == BUSY_WRITING)
		s->active--;
	e->busy = BUSY_NONE;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* ---- job.json ---- */

static json_t *job_json(const struct spool_job *j)
{
	char hex[2 * DIGEST_SHA256_LEN + 1];
	json_t *o;

	o = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:I, s:I, s:I, s:I}",
		      "version", JSON_VERSION, "id", j->id, "owner", j->owner, "job_id",
		      j->meta.job_id, "name", j->meta.name, "format", j->meta.format, "copies",
		      (json_int_t)j->meta.copies, "submitted_at_ms",
		      (json_int_t)j->meta.submitted_at_ms, "encoding",
		      j->meta.encoding == META_ENCODING_ZSTD ? "zstd" : "identity", "length",
		      (json_int_t)j->length, "size", (json_int_t)j->size, "sequence",
		      (json_int_t)j->sequence, "created_ms", (json_int_t)j->created_ms,
		      "expires_ms", (json_int_t)j->expires_ms);
	if (!o)
		return NULL;
	if (j->has_digest) {
		ascii_hex_encode(j->digest, DIGEST_SHA256_LEN, hex);
		if (json_object_set_new(o, "digest", json_string(hex)))
			goto fail;
	}
	if (j->state == SPOOL_COMMITTED) {
		ascii_hex_encode(j->sha256, DIGEST_SHA256_LEN, hex);
		if (json_object_set_new(o, "committed_ms", json_integer(j->committed_ms)) ||
		    json_object_set_new(o, "sha256", json_string(hex)) ||
		    json_object_set_new(o, "stored_size", json_integer((json_int_t)j->length)))
			goto fail;
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}

/* Writes job.json in the job directory dfd atomically: temp file, fsync, rename, dir fsync. */
static enum spool_err json_store(const struct spool *s, int dfd, const struct spool_job *j)
{
	json_t *o = job_json(j);
	char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	enum spool_err rc = SPOOL_OK;
	int fd = -1;

	json_decref(o);
	if (!text)
		return SPOOL_E_NOMEM;
	do
		fd = openat(dfd, JSON_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
			    0600);
	while (fd == -1 && errno == EINTR);
	if (fd == -1 || fsio_write_all(fd, text, strlen(text)) == -1 || fsio_write_all(fd, "\n", 1) == -1 ||
	    disk_sync(s, fd) == -1) {
		rc = errno_err(errno);
		goto out;
	}
	if (close(fd) == -1 && errno != EINTR) {
		fd = -1;
		rc = errno_err(errno);
		goto out;
	}
	fd = -1;
	if (renameat(dfd, JSON_TMP, dfd, JSON_NAME) == -1 || disk_sync(s, dfd) == -1)
		rc = errno_err(errno);
out:
	fsio_close(fd);
	free(text);
	return rc;
}

/* Copies a string of len bytes (no NUL inside) into a field of cap bytes. Returns 0 or -1. */
static int field_copy(char *dst, size_t cap, const char *src, size_t len)
{
	if (len >= cap || memchr(src, '\0', len))
		return -1;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return 0;
}

/*
 * Parses job.json strictly into j: every key known, every required one present, every value
 * of its type and range, the id equal to the directory's. Returns 0, or -1 when it is not a
 * job.json this spool wrote.
 */
static int json_parse(const char *text, size_t len, const char *id, struct spool_job *j)
{
	const char *sid, *owner, *uuid, *name, *format, *enc, *digest = NULL, *sha = NULL;
	size_t sid_n, owner_n, uuid_n, name_n, format_n, enc_n, digest_n = 0, sha_n = 0;
	json_int_t copies, submitted, length, sequence, created, expires, committed = -1;
	json_int_t size = -1, stored = -1;
	json_error_t jerr;
	json_t *o;
	int version, rc = -1;

	memset(j, 0, sizeof(*j));
	o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o)
		return -1;
	if (json_unpack_ex(o, &jerr, JSON_STRICT,
			   "{s:i, s:s%, s:s%, s:s%, s:s%, s:s%, s:I, s:I, s:s%, s:I, s?I, s?s%, "
			   "s:I, s:I, s:I, s?I, s?s%, s?I}",
			   "version", &version, "id", &sid, &sid_n, "owner", &owner, &owner_n,
			   "job_id", &uuid, &uuid_n, "name", &name, &name_n, "format", &format,
			   &format_n, "copies", &copies, "submitted_at_ms", &submitted, "encoding",
			   &enc, &enc_n, "length", &length, "size", &size, "digest", &digest,
			   &digest_n, "sequence", &sequence, "created_ms", &created, "expires_ms",
			   &expires, "committed_ms", &committed, "sha256", &sha, &sha_n,
			   "stored_size", &stored))
		goto out;
	if (version != JSON_VERSION || field_copy(j->id, sizeof(j->id), sid, sid_n) ||
	    strcmp(j->id, id) || !is_job_id(j->id))
		goto out;
	if (field_copy(j->owner, sizeof(j->owner), owner, owner_n) ||
	    owner_check(j->owner, owner_n))
		goto out;
	if (field_copy(j->meta.job_id, sizeof(j->meta.job_id), uuid, uuid_n) ||
	    field_copy(j->meta.name, sizeof(j->meta.name), name, name_n) ||
	    field_copy(j->meta.format, sizeof(j->meta.format), format, format_n))
		goto out;
	if (copies < 1 || copies > META_COPIES_MAX || submitted < -1 || length < 0)
		goto out;
	j->meta.copies = (unsigned)copies;
	j->meta.submitted_at_ms = submitted;
	/* Files from before zstd have neither size nor stored_size: identity, size = length. */
	if (enc_n == 4 && !memcmp(enc, "zstd", 4) && size >= 0) {
		j->meta.encoding = META_ENCODING_ZSTD;
		j->meta.size = size;
		j->size = (uint64_t)size;
	} else if (enc_n == 8 && !memcmp(enc, "identity", 8) && (size == -1 || size == length)) {
		j->meta.encoding = META_ENCODING_IDENTITY;
		j->meta.size = -1;
		j->size = (uint64_t)length;
	} else {
		goto out;
	}
	if (!meta_ok(&j->meta))
		goto out;
	if (sequence < 0 || created < 0 || (stored != -1 && stored != length))
		goto out;
	j->length = (uint64_t)length;
	j->sequence = (uint64_t)sequence;
	j->created_ms = created;
	j->expires_ms = expires;
	if (digest) {
		if (ascii_hex_decode(digest, digest_n, j->digest, DIGEST_SHA256_LEN))
			goto out;
		j->has_digest = 1;
	}
	if ((committed >= 0) != (sha != NULL) || committed < -1 || (stored != -1 && !sha))
		goto out;
	if (sha) {
		if (ascii_hex_decode(sha, sha_n, j->sha256, DIGEST_SHA256_LEN))
			goto out;
		j->state = SPOOL_COMMITTED;
		j->committed_ms = committed;
	} else {
		j->state = SPOOL_RECEIVING;
		j->committed_ms = -1;
	}
	rc = 0;
out:
	json_decref(o);
	return rc;
}

/* Reads and parses dfd/job.json. Returns 0, 1 when it is missing or not ours, -1 on I/O error. */
static int json_load(int dfd, const char *id, struct spool_job *j)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd, rc = -1;

	do
		fd = openat(dfd, JSON_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	while (fd == -1 && errno == EINTR);
	if (fd == -1)
		return errno == ENOENT || errno == ELOOP ? 1 : -1;
	if (fstat(fd, &st) == -1)
		goto out;
	rc = 1;
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > JSON_MAX)
		goto out;
	rc = -1;
	buf = malloc((size_t)st.st_size);
	if (!buf)
		goto out;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto out;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	rc = json_parse(buf, got, id, j) ? 1 : 0;
out:
	free(buf);
	fsio_close(fd);
	return rc;
}

/* ---- opening and recovery ---- */

static int subdir_open(struct spool *s, const char *name, int *created)
{
	if (mkdirat(s->dir_fd, name, 0700) == 0)
		*created = 1;
	else if (errno != EEXIST)
		return -1;
	return fsio_dir_open(s->dir_fd, name);
}

/*
 * Drops a job directory at recovery, remembering its id so that a claim naming it goes too
 * (spool_open ends with claims_forget): a damaged upload's pair is forgotten, and the client
 * can create it again rather than meet a tombstone.
 */
static void recover_drop(struct spool *s, int parent, const char *id)
{
	char (*v)[JOBID_LEN + 1];

	s->rec.dropped++;
	v = realloc(s->dropped, (s->n_dropped + 1) * sizeof(*v));
	if (v) {
		s->dropped = v;
		memcpy(v[s->n_dropped++], id, JOBID_LEN + 1);
	}
	if (renameat(parent, id, s->trash_fd, id) == 0) {
		disk_sync(s, parent);
		dir_remove(s->trash_fd, id);
	} else {
		dir_remove(parent, id);
	}
}

/*
 * Recovers one job directory of uploads/ (in_ready 0) or ready/. Returns 0 (recovered,
 * dropped or skipped) or an error that stops spool_open.
 */
static enum spool_err recover_one(struct spool *s, int parent, const char *id, int in_ready)
{
	char cur[JOBID_LEN + 1];
	struct entry *e = NULL;
	struct stat st;
	enum spool_err rc = SPOOL_OK;
	int dfd, r;

	dfd = fsio_dir_open(parent, id);
	if (dfd == -1) {
		/* Not a directory (or gone): not one of ours to recover. */
		if (errno == ENOTDIR || errno == ELOOP || errno == ENOENT)
			return SPOOL_OK;
		return SPOOL_E_IO;
	}
	/* A job.json.tmp is a rewrite a crash interrupted; job.json is still whole. */
	if (unlinkat(dfd, JSON_TMP, 0) == -1 && errno != ENOENT) {
		rc = SPOOL_E_IO;
		goto out;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		rc = SPOOL_E_NOMEM;
		goto out;
	}
	r = json_load(dfd, id, &e->job);
	if (r == -1) {
		rc = SPOOL_E_IO;
		goto out;
	}
	if (r == 1) {
		/* No job.json (a creation cut short: never claimed), or a damaged one. */
		recover_drop(s, parent, id);
		goto out;
	}
	if (claim_name(e->job.owner, e->job.meta.job_id, e->claim)) {
		recover_drop(s, parent, id);
		goto out;
	}
	r = claim_read(s, e->claim, cur);
	if (r == 1 || (r == 0 && strcmp(cur, id))) {
		/* Never claimed (crash before the symlink), or half-deleted (claim gone first). */
		recover_drop(s, parent, id);
		goto out;
	}
	if (r == -1) {
		rc = SPOOL_E_IO;
		goto out;
	}
	if (fstatat(dfd, DATA_NAME, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		if (errno != ENOENT) {
			rc = SPOOL_E_IO;
			goto out;
		}
		st.st_mode = 0; /* missing: damaged */
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > e->job.length ||
	    (e->job.state == SPOOL_COMMITTED && (uint64_t)st.st_size != e->job.length) ||
	    (in_ready && e->job.state != SPOOL_COMMITTED)) {
		/* Damaged beyond what any crash of ours leaves: forget the pair too. */
		recover_drop(s, parent, id);
		goto out;
	}
	e->job.offset = (uint64_t)st.st_size;
	if (e->job.state == SPOOL_COMMITTED) {
		e->job.expires_ms = e->job.committed_ms + s->cfg.retention_ms;
		if (!in_ready) {
			/* The crash came after job.json said committed, before the rename. */
			if (renameat(s->up_fd, id, s->ready_fd, id) == -1 ||
			    disk_sync(s, s->ready_fd) == -1 || disk_sync(s, s->up_fd) == -1) {
				rc = SPOOL_E_IO;
				goto out;
			}
			s->rec.rolled_forward++;
			fsio_close(dfd);
			dfd = fsio_dir_open(s->ready_fd, id);
			if (dfd == -1) {
				rc = SPOOL_E_IO;
				goto out;
			}
		}
		e->hooked = fstatat(dfd, HOOKED_NAME, &st, AT_SYMLINK_NOFOLLOW) == 0;
	}
	r = index_add(s, e);
	if (r == 1) {
		/* Already in ready/: a stale copy (rename makes it impossible); its claim stays. */
		s->rec.dropped++;
		dir_remove(parent, id);
		goto out;
	}
	if (r == -1) {
		rc = SPOOL_E_NOMEM;
		goto out;
	}
	if (e->job.state == SPOOL_COMMITTED)
		s->rec.committed++;
	else
		s->rec.receiving++;
	e = NULL;
out:
	entry_free(e);
	fsio_close(dfd);
	return rc;
}

/* Removes the claims that name a job spool_open dropped. */
static enum spool_err claims_forget(struct spool *s)
{
	char id[JOBID_LEN + 1];
	struct dirent *d;
	DIR *dir;
	int fd, removed = 0;

	fd = fcntl(s->idem_fd, F_DUPFD_CLOEXEC, 0);
	if (fd == -1)
		return SPOOL_E_IO;
	dir = fdopendir(fd);
	if (!dir) {
		fsio_close(fd);
		return SPOOL_E_IO;
	}
	rewinddir(dir);
	while ((d = readdir(dir))) {
		if (strlen(d->d_name) != CLAIM_LEN || claim_read(s, d->d_name, id))
			continue;
		for (size_t i = 0; i < s->n_dropped; i++) {
			if (!strcmp(s->dropped[i], id) && unlinkat(s->idem_fd, d->d_name, 0) == 0)
				removed = 1;
		}
	}
	closedir(dir);
	if (removed && disk_sync(s, s->idem_fd) == -1)
		return SPOOL_E_IO;
	return SPOOL_OK;
}

/* Removes what tmp/ holds: documents decoded for hooks that a crash left behind. */
static enum spool_err tmp_purge(struct spool *s)
{
	struct dirent *d;
	DIR *dir;
	int fd;

	fd = fcntl(s->tmp_fd, F_DUPFD_CLOEXEC, 0);
	if (fd == -1)
		return SPOOL_E_IO;
	dir = fdopendir(fd);
	if (!dir) {
		fsio_close(fd);
		return SPOOL_E_IO;
	}
	rewinddir(dir);
	while ((d = readdir(dir)))
		if (strcmp(d->d_name, ".") && strcmp(d->d_name, ".."))
			unlinkat(s->tmp_fd, d->d_name, 0);
	closedir(dir);
	return SPOOL_OK;
}

/* Recovers (or, with purge, removes) every job-id name in the directory fd. */
static enum spool_err scan(struct spool *s, int fd, int in_ready, int purge)
{
	enum spool_err rc = SPOOL_OK;
	struct dirent *d;
	DIR *dir;
	int dup_fd;

	dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (dup_fd == -1)
		return SPOOL_E_IO;
	dir = fdopendir(dup_fd);
	if (!dir) {
		fsio_close(dup_fd);
		return SPOOL_E_IO;
	}
	/* The duplicate shares the file position with fd: start from the beginning. */
	rewinddir(dir);
	while (!rc && (d = readdir(dir))) {
		if (!is_job_id(d->d_name))
			continue;
		if (purge)
			dir_remove(fd, d->d_name);
		else
			rc = recover_one(s, fd, d->d_name, in_ready);
	}
	closedir(dir);
	return rc;
}

struct spool *spool_open(const struct spool_config *cfg, enum spool_err *err)
{
	static const char *const names[] = {"uploads", "ready", "idem", "trash", "tmp"};
	struct spool *s = NULL;
	enum spool_err rc = SPOOL_E_INVALID;
	int *fds[5];
	int created = 0;

	if (!cfg || !cfg->dir || !*cfg->dir)
		goto fail;
	rc = SPOOL_E_NOMEM;
	s = calloc(1, sizeof(*s));
	if (!s)
		goto fail;
	s->dir_fd = s->up_fd = s->ready_fd = s->idem_fd = s->trash_fd = s->tmp_fd = -1;
	if (pthread_mutex_init(&s->lock, NULL)) {
		free(s);
		s = NULL;
		goto fail;
	}
	pthread_cond_init(&s->cond, NULL);
	pthread_mutex_init(&s->expire_lock, NULL);
	s->dir = strdup(cfg->dir);
	if (!s->dir)
		goto fail;
	s->cfg = *cfg;
	s->cfg.dir = s->dir;
	if (s->cfg.upload_expiry_ms <= 0)
		s->cfg.upload_expiry_ms = DEFAULT_UPLOAD_EXPIRY_MS;
	if (s->cfg.retention_ms <= 0)
		s->cfg.retention_ms = DEFAULT_RETENTION_MS;

	rc = SPOOL_E_IO;
	if (mkdir(s->dir, 0700) == -1 && errno != EEXIST)
		goto fail;
	s->dir_fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dir_fd == -1)
		goto fail;
	fds[0] = &s->up_fd;
	fds[1] = &s->ready_fd;
	fds[2] = &s->idem_fd;
	fds[3] = &s->trash_fd;
	fds[4] = &s->tmp_fd;
	for (size_t i = 0; i < 5; i++) {
		*fds[i] = subdir_open(s, names[i], &created);
		if (*fds[i] == -1)
			goto fail;
	}
	if (created && disk_sync(s, s->dir_fd) == -1)
		goto fail;

	/* tmp/ and trash/ first (what a crash left behind), then ready/ before uploads/. */
	rc = tmp_purge(s);
	if (!rc)
		rc = scan(s, s->trash_fd, 0, 1);
	if (!rc)
		rc = scan(s, s->ready_fd, 1, 0);
	if (!rc)
		rc = scan(s, s->up_fd, 0, 0);
	if (!rc && s->n_dropped)
		rc = claims_forget(s);
	free(s->dropped);
	s->dropped = NULL;
	s->n_dropped = 0;
	if (rc)
		goto fail;
	return s;
fail:
	spool_free(s);
	if (err)
		*err = rc;
	return NULL;
}

void spool_free(struct spool *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		entry_free(s->v[i]);
	free(s->v);
	free(s->dropped);
	fsio_close(s->dir_fd);
	fsio_close(s->up_fd);
	fsio_close(s->ready_fd);
	fsio_close(s->idem_fd);
	fsio_close(s->trash_fd);
	fsio_close(s->tmp_fd);
	pthread_mutex_destroy(&s->expire_lock);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s->dir);
	free(s);
}

void spool_recovery(struct spool *s, struct spool_recovery *out)
{
	*out = s->rec;
}

/* ---- removal and commit ---- */

/*
 * Removes e's directory, which the caller holds (busy). forget: drop the claim first, so the
 * pair is forgotten (termination, digest mismatch, expiry of a receiving upload); otherwise
 * the claim stays as a tombstone. Order for crashes: claim, then the rename into trash/ (the
 * atomic step), then the index; a crash between the first two leaves an unclaimed directory
 * that spool_open drops. On SPOOL_OK e is freed; on an error it is still indexed and held.
 */
static enum spool_err job_remove(struct spool *s, struct entry *e, int forget)
{
	int parent = e->job.state == SPOOL_COMMITTED ? s->ready_fd : s->up_fd;
	char id[JOBID_LEN + 1];

	memcpy(id, e->job.id, sizeof(id));
	if (forget && claim_drop(s, e->claim, id) == -1)
		return SPOOL_E_IO;
	if (renameat(parent, id, s->trash_fd, id) == -1)
		return SPOOL_E_IO;
	/*
	 * The rename is visible to every later lookup: the job is gone. A failed fsync only risks
	 * its coming back after a power loss; nothing better can be done about it here.
	 */
	disk_sync(s, parent);
	pthread_mutex_lock(&s->lock);
	if (e->busy == BUSY_WRITING)
		s->active--;
	index_del(s, e);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	entry_free(e);
	dir_remove(s->trash_fd, id);
	return SPOOL_OK;
}

/* Sets the tombstone's time to now: it then lasts the retention from the release. */
static void claim_touch(struct spool *s, const char *claim)
{
	utimensat(s->idem_fd, claim, NULL, AT_SYMLINK_NOFOLLOW);
}

/* SHA-256 of the first length bytes of the upload's data file. */
static enum spool_err data_hash(struct spool *s, const struct entry *e, unsigned char *sha)
{
	char path[SUBPATH_MAX];
	EVP_MD_CTX *ctx = NULL;
	unsigned char *buf = NULL;
	enum spool_err rc = SPOOL_E_IO;
	uint64_t pos = 0;
	unsigned int n = 0;
	int fd;

	subpath(path, e->job.id, DATA_NAME);
	fd = openat(s->up_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1)
		return SPOOL_E_IO;
	ctx = EVP_MD_CTX_new();
	buf = malloc(READ_CHUNK);
	if (!ctx || !buf) {
		rc = SPOOL_E_NOMEM;
		goto out;
	}
	if (!EVP_DigestInit_ex(ctx, EVP_sha256(), NULL))
		goto out;
	while (pos < e->job.length) {
		uint64_t want = e->job.length - pos;
		ssize_t got = pread(fd, buf, want < READ_CHUNK ? (size_t)want : READ_CHUNK,
				    (off_t)pos);

		if (got == -1 && errno == EINTR)
			continue;
		if (got <= 0) /* shorter than its offset said: the data is not all there */
			goto out;
		if (!EVP_DigestUpdate(ctx, buf, (size_t)got))
			goto out;
		pos += (uint64_t)got;
	}
	if (!EVP_DigestFinal_ex(ctx, sha, &n) || n != DIGEST_SHA256_LEN)
		goto out;
	rc = SPOOL_OK;
out:
	free(buf);
	EVP_MD_CTX_free(ctx);
	fsio_close(fd);
	return rc;
}

/*
 * SHA-256 of the document a zstd upload's data decodes to, which must be exactly its size.
 * SPOOL_E_DIGEST with *why when it does not decode cleanly to that size.
 */
static enum spool_err data_decode_hash(struct spool *s, const struct entry *e,
				       unsigned char *sha, const char **why)
{
	char path[SUBPATH_MAX];
	EVP_MD_CTX *ctx = NULL;
	unsigned char *buf = NULL;
	struct decode *d = NULL;
	enum spool_err rc = SPOOL_E_IO;
	enum decode_err de;
	unsigned int n = 0;
	size_t got = 0;
	int fd;

	subpath(path, e->job.id, DATA_NAME);
	fd = openat(s->up_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1)
		return SPOOL_E_IO;
	d = decode_new(fd, e->job.length, e->job.size);
	ctx = EVP_MD_CTX_new();
	buf = malloc(READ_CHUNK);
	if (!d || !ctx || !buf) {
		rc = SPOOL_E_NOMEM;
		goto out;
	}
	if (!EVP_DigestInit_ex(ctx, EVP_sha256(), NULL))
		goto out;
	do {
		de = decode_read(d, buf, READ_CHUNK, &got);
		if (de == DECODE_E_IO || de == DECODE_E_NOMEM) {
			rc = de == DECODE_E_IO ? SPOOL_E_IO : SPOOL_E_NOMEM;
			goto out;
		}
		if (de) {
			*why = decode_strerror(de);
			rc = SPOOL_E_DIGEST;
			goto out;
		}
		if (got && !EVP_DigestUpdate(ctx, buf, got))
			goto out;
	} while (got);
	if (!EVP_DigestFinal_ex(ctx, sha, &n) || n != DIGEST_SHA256_LEN)
		goto out;
	rc = SPOOL_OK;
out:
	free(buf);
	EVP_MD_CTX_free(ctx);
	decode_free(d);
	return rc;
}

/*
 * Commits e (held by the caller, receiving, offset == length): digest check (for a zstd job,
 * of the document its data decodes to, and that it decodes cleanly to exactly its size),
 * job.json with the commit, rename into ready/, fsync of both directories. Crash consistency,
 * step by step:
 *  - before job.json is replaced: receiving with offset == length (data fdatasync'd already);
 *    an empty PATCH commits it;
 *  - after (job.json says committed, data fsync'd before): spool_open finishes the rename;
 *  - after the rename: committed; the directory fsyncs make that survive a power loss.
 * On SPOOL_E_DIGEST the upload and its claim are gone (e freed), *gone is set, and *why says
 * what was wrong.
 */
static enum spool_err job_commit(struct spool *s, struct entry *e, int *gone, const char **why)
{
	struct spool_job j;
	char path[SUBPATH_MAX];
	enum spool_err rc;
	unsigned int n = 0;
	int dfd = -1, fd = -1;

	*gone = 0;
	*why = spool_strerror(SPOOL_E_DIGEST);
	j = e->job;
	if (j.meta.encoding == META_ENCODING_ZSTD) {
		rc = data_decode_hash(s, e, j.sha256, why);
		if (rc == SPOOL_E_DIGEST)
			goto mismatch;
		if (rc)
			return rc;
		*why = "the decoded document differs from its Repr-Digest";
	} else if (e->hash) {
		int ok = EVP_DigestFinal_ex(e->hash, j.sha256, &n) && n == DIGEST_SHA256_LEN;

		/* Finished either way: a retry after a later failure reads the file again. */
		EVP_MD_CTX_free(e->hash);
		e->hash = NULL;
		if (!ok)
			return SPOOL_E_IO;
	} else {
		rc = data_hash(s, e, j.sha256);
		if (rc)
			return rc;
	}
	if (j.has_digest && CRYPTO_memcmp(j.sha256, j.digest, DIGEST_SHA256_LEN))
		goto mismatch;
	/* fdatasync ran at each write_end; fsync adds the metadata (size, times) for good. */
	subpath(path, j.id, DATA_NAME);
	fd = openat(s->up_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1 || disk_sync(s, fd) == -1) {
		rc = SPOOL_E_IO;
		goto out;
	}
	dfd = fsio_dir_open(s->up_fd, j.id);
	if (dfd == -1) {
		rc = SPOOL_E_IO;
		goto out;
	}
	j.state = SPOOL_COMMITTED;
	j.committed_ms = clock_unix_ms();
	j.expires_ms = j.committed_ms + s->cfg.retention_ms;
	rc = json_store(s, dfd, &j);
	if (rc)
		goto out;
	if (renameat(s->up_fd, j.id, s->ready_fd, j.id) == -1) {
		rc = SPOOL_E_IO;
		goto out;
	}
	/* From here the job is committed in the kernel's view; memory follows it. */
	if (disk_sync(s, s->ready_fd) == -1 || disk_sync(s, s->up_fd) == -1)
		rc = SPOOL_E_IO;
	pthread_mutex_lock(&s->lock);
	entry_set_offset(s, e, e->job.length);
	e->job = j;
	pthread_mutex_unlock(&s->lock);
out:
	fsio_close(fd);
	fsio_close(dfd);
	return rc;
mismatch:
	rc = job_remove(s, e, 1);
	if (rc)
		return rc;
	*gone = 1;
	return SPOOL_E_DIGEST;
}

/* ---- creation ---- */

/* Whether length more bytes fit; called with the lock held. */
static int space_fits(struct spool *s, uint64_t length, uint64_t fs_free)
{
	uint64_t avail;

	if (s->cfg.limit_bytes &&
	    (s->reserved > s->cfg.limit_bytes || length > s->cfg.limit_bytes - s->reserved))
		return 0;
	avail = fs_free > s->cfg.min_free_bytes ? fs_free - s->cfg.min_free_bytes : 0;
	/* Discarded bytes never land: what uploads still have to send takes no disk space. */
	if (!s->cfg.discard)
		avail = avail > s->outstanding ? avail - s->outstanding : 0;
	return length <= avail;
}

static uint64_t fs_free_bytes(struct spool *s)
{
	struct statvfs sv;

	if (fstatvfs(s->dir_fd, &sv) == -1)
		return 0;
	if (sv.f_frsize && sv.f_bavail > UINT64_MAX / sv.f_frsize)
		return UINT64_MAX;
	return (uint64_t)sv.f_bavail * sv.f_frsize;
}

/* Reports the job an existing claim names. Sets *retry when the claim went meanwhile. */
static enum spool_err create_existing(struct spool *s, const char *owner, const char *claim,
				      const char *id, const struct job_meta *meta, uint64_t length,
				      const unsigned char *digest, struct spool_job *out,
				      int *retry)
{
	char cur[JOBID_LEN + 1];
	struct entry *e;
	enum spool_err rc = SPOOL_OK;
	int r;

	pthread_mutex_lock(&s->lock);
	/* Wait out a racing creation or a removal; look the entry up again after each wait. */
	while ((e = index_find(s, id)) && (e->busy == BUSY_CREATING || e->busy == BUSY_REMOVING))
		pthread_cond_wait(&s->cond, &s->lock);
	if (!e) {
		pthread_mutex_unlock(&s->lock);
		/*
		 * A removal that forgets the pair drops the claim before the entry, so a claim
		 * still naming an id that left the index is a tombstone.
		 */
		r = claim_read(s, claim, cur);
		if (r == -1)
			return SPOOL_E_IO;
		if (r == 0 && !strcmp(cur, id)) {
			/* the job is gone: describe what can still be said of it */
			memset(out, 0, sizeof(*out));
			snprintf(out->id, sizeof(out->id), "%s", id);
			snprintf(out->owner, sizeof(out->owner), "%s", owner);
			out->state = SPOOL_COMMITTED;
			out->length = out->offset = length;
			out->size = meta->encoding == META_ENCODING_ZSTD ? (uint64_t)meta->size :
									    length;
			return SPOOL_E_RELEASED;
		}
		*retry = 1;
		return SPOOL_OK;
	}
	if (strcmp(e->job.owner, owner) || e->job.length != length ||
	    (digest && e->job.has_digest &&
	     CRYPTO_memcmp(digest, e->job.digest, DIGEST_SHA256_LEN)))
		rc = SPOOL_E_CONFLICT;
	else
		*out = e->job;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* mkdir uploads/<id>, an empty data file, job.json, and the fsyncs that make them last. */
static enum spool_err create_files(struct spool *s, const struct entry *e)
{
	enum spool_err rc = SPOOL_OK;
	int dfd = -1, fd = -1;

	if (mkdirat(s->up_fd, e->job.id, 0700) == -1)
		return errno_err(errno);
	dfd = fsio_dir_open(s->up_fd, e->job.id);
	if (dfd == -1) {
		rc = SPOOL_E_IO;
		goto out;
	}
	do
		fd = openat(dfd, DATA_NAME, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			    0600);
	while (fd == -1 && errno == EINTR);
	if (fd == -1 || disk_sync(s, fd) == -1) {
		rc = errno_err(errno);
		goto out;
	}
	rc = json_store(s, dfd, &e->job); /* fsyncs dfd, which holds data's name too */
	if (!rc && disk_sync(s, s->up_fd) == -1)
		rc = SPOOL_E_IO;
out:
	fsio_close(fd);
	fsio_close(dfd);
	return rc;
}

/* Makes a new upload and claims the pair for it. Sets *retry when the claim was lost. */
static enum spool_err create_new(struct spool *s, const char *owner, const struct job_meta *meta,
				 const char *claim, uint64_t length, const unsigned char *digest,
				 uint64_t sequence, struct spool_job *out, int *retry)
{
	uint64_t fs_free = fs_free_bytes(s);
	const char *why = NULL;
	struct entry *e;
	enum spool_err rc;
	int r, gone = 0;

	e = calloc(1, sizeof(*e));
	if (!e)
		return SPOOL_E_NOMEM;
	/* The stored bytes of a zstd job are not the document: its commit decodes them. */
	if (meta->encoding != META_ENCODING_ZSTD) {
		e->hash = EVP_MD_CTX_new();
		if (!e->hash || !EVP_DigestInit_ex(e->hash, EVP_sha256(), NULL)) {
			entry_free(e);
			return SPOOL_E_NOMEM;
		}
	}
	memcpy(e->job.owner, owner, strlen(owner) + 1);
	/* Field by field, so that no stale byte after a string's NUL rides along. */
	memcpy(e->job.meta.job_id, meta->job_id, UUID_LEN);
	memcpy(e->job.meta.name, meta->name, strlen(meta->name));
	memcpy(e->job.meta.format, meta->format, strlen(meta->format));
	e->job.meta.copies = meta->copies;
	e->job.meta.submitted_at_ms = meta->submitted_at_ms;
	e->job.meta.encoding = meta->encoding;
	e->job.meta.size = meta->size;
	e->job.state = SPOOL_RECEIVING;
	e->job.length = length;
	e->job.size = meta->encoding == META_ENCODING_ZSTD ? (uint64_t)meta->size : length;
	if (digest) {
		e->job.has_digest = 1;
		memcpy(e->job.digest, digest, DIGEST_SHA256_LEN);
	}
	e->job.sequence = sequence;
	e->job.created_ms = clock_unix_ms();
	e->job.committed_ms = -1;
	e->job.expires_ms = e->job.created_ms + s->cfg.upload_expiry_ms;
	memcpy(e->claim, claim, sizeof(e->claim));
	e->busy = BUSY_CREATING;

	/* The space check and the reservation happen together, under the lock. */
	for (int tries = 0;; tries++) {
		if (jobid_generate(e->job.id) != PROTO_OK) {
			entry_free(e);
			return SPOOL_E_IO;
		}
		pthread_mutex_lock(&s->lock);
		r = space_fits(s, length, fs_free) ? index_add(s, e) : 2;
		pthread_mutex_unlock(&s->lock);
		if (r == 0)
			break;
		if (r != 1 || tries == 3) {
			entry_free(e);
			return r == 2 ? SPOOL_E_FULL : r == 1 ? SPOOL_E_IO : SPOOL_E_NOMEM;
		}
	}

	rc = create_files(s, e);
	if (rc)
		goto undo;
	/* The claim is the creation's commit point: until it exists nobody can know the id. */
	if (symlinkat(e->job.id, s->idem_fd, claim) == -1) {
		if (errno == EEXIST)
			*retry = 1;
		else
			rc = SPOOL_E_IO;
		goto undo;
	}
	if (disk_sync(s, s->idem_fd) == -1) {
		unlinkat(s->idem_fd, claim, 0);
		rc = SPOOL_E_IO;
		goto undo;
	}
	if (length == 0) {
		rc = job_commit(s, e, &gone, &why);
		if (gone)
			return rc;
	}
	pthread_mutex_lock(&s->lock);
	if (!rc)
		*out = e->job;
	e->busy = BUSY_NONE;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return rc;
undo:
	dir_remove(s->up_fd, e->job.id);
	pthread_mutex_lock(&s->lock);
	index_del(s, e);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	entry_free(e);
	return rc;
}

enum spool_err spool_create(struct spool *s, const char *owner, const struct job_meta *meta,
			    uint64_t length, const unsigned char *digest, uint64_t sequence,
			    struct spool_job *out, int *existed)
{
	char claim[CLAIM_LEN + 1], id[JOBID_LEN + 1];
	enum spool_err rc;

	if (!s || !owner || !meta || !out || !existed)
		return SPOOL_E_INVALID;
	if (length > INT64_MAX || sequence > INT64_MAX || !meta_ok(meta) ||
	    claim_name(owner, meta->job_id, claim))
		return SPOOL_E_INVALID;
	/* A sparse file decodes to nothing: refused before any lookup, even of an existing job. */
	if (s->cfg.discard && meta->encoding == META_ENCODING_ZSTD)
		return SPOOL_E_UNSUPPORTED;
	for (int i = 0; i < CREATE_TRIES; i++) {
		int retry = 0, r = claim_read(s, claim, id);

		if (r == -1)
			return SPOOL_E_IO;
		if (r == 0)
			rc = create_existing(s, owner, claim, id, meta, length, digest, out, &retry);
		else
			rc = create_new(s, owner, meta, claim, length, digest, sequence, out,
					&retry);
		if (retry)
			continue;
		if (!rc)
			*existed = r == 0;
		return rc;
	}
	return SPOOL_E_BUSY;
}

enum spool_err spool_get(struct spool *s, const char *owner, const char *id, struct spool_job *out)
{
	enum spool_err rc = SPOOL_E_NOT_FOUND;
	struct entry *e;

	if (!owner)
		return SPOOL_E_NOT_FOUND;
	pthread_mutex_lock(&s->lock);
	e = index_find(s, id);
	if (e && !strcmp(e->job.owner, owner)) {
		*out = e->job;
		rc = SPOOL_OK;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* ---- writing ---- */

enum spool_err spool_write_begin(struct spool *s, const char *owner, const char *id,
				 uint64_t offset, const unsigned char *checksum,
				 struct spool_write **out, uint64_t *out_offset)
{
	char path[SUBPATH_MAX];
	struct spool_write *w;
	struct entry *e;
	enum spool_err rc = SPOOL_OK;

	if (!owner)
		return SPOOL_E_NOT_FOUND;
	pthread_mutex_lock(&s->lock);
	e = index_find(s, id);
	if (!e || strcmp(e->job.owner, owner) || e->busy == BUSY_REMOVING) {
		rc = SPOOL_E_NOT_FOUND;
	} else if (e->job.state == SPOOL_COMMITTED || offset != e->job.offset) {
		rc = SPOOL_E_OFFSET;
		if (out_offset)
			*out_offset = e->job.offset;
	} else if (s->cfg.discard && e->job.meta.encoding == META_ENCODING_ZSTD) {
		rc = SPOOL_E_UNSUPPORTED;
	} else if (e->busy != BUSY_NONE) {
		rc = SPOOL_E_BUSY;
	} else {
		e->busy = BUSY_WRITING;
		s->active++;
	}
	pthread_mutex_unlock(&s->lock);
	if (rc)
		return rc;

	w = calloc(1, sizeof(*w));
	if (!w) {
		rc = SPOOL_E_NOMEM;
		goto fail;
	}
	w->s = s;
	w->e = e;
	w->start = w->pos = offset;
	subpath(path, e->job.id, DATA_NAME);
	do
		w->fd = openat(s->up_fd, path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	while (w->fd == -1 && errno == EINTR);
	if (w->fd == -1) {
		rc = SPOOL_E_IO;
		goto fail;
	}
	/* At offset 0 the hash state is known without reading anything; zstd jobs have none. */
	if (!e->hash && offset == 0 && e->job.meta.encoding != META_ENCODING_ZSTD) {
		e->hash = EVP_MD_CTX_new();
		if (e->hash && !EVP_DigestInit_ex(e->hash, EVP_sha256(), NULL)) {
			EVP_MD_CTX_free(e->hash);
			e->hash = NULL;
		}
	}
	if (e->hash) {
		w->snap = EVP_MD_CTX_new();
		if (!w->snap || !EVP_MD_CTX_copy_ex(w->snap, e->hash)) {
			rc = SPOOL_E_NOMEM;
			goto fail;
		}
	}
	if (checksum) {
		w->has_checksum = 1;
		memcpy(w->checksum, checksum, DIGEST_SHA256_LEN);
		w->chk = EVP_MD_CTX_new();
		if (!w->chk || !EVP_DigestInit_ex(w->chk, EVP_sha256(), NULL)) {
			rc = SPOOL_E_NOMEM;
			goto fail;
		}
	}
	*out = w;
	return SPOOL_OK;
fail:
	if (w) {
		fsio_close(w->fd);
		EVP_MD_CTX_free(w->snap);
		EVP_MD_CTX_free(w->chk);
		free(w);
	}
	entry_unbusy(s, e);
	return rc;
}

enum spool_err spool_write(struct spool_write *w, const void *buf, size_t len)
{
	struct entry *e = w->e;
	const unsigned char *p = buf;

	if (w->err)
		return w->err;
	if (len > e->job.length - w->pos) {
		w->err = SPOOL_E_TOO_LARGE;
		return w->err;
	}
	while (len) {
		/* Discard mode: counted and hashed, never written; writer_keep sets the size. */
		ssize_t n = w->s->cfg.discard ? (ssize_t)len : pwrite(w->fd, p, len, (off_t)w->pos);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			w->err = n == 0 ? SPOOL_E_IO : errno_err(errno);
			if (w->err == SPOOL_E_NOMEM)
				w->err = SPOOL_E_IO;
			return w->err;
		}
		/* A hash that cannot follow is dropped: the commit then reads the file. */
		if (e->hash && !EVP_DigestUpdate(e->hash, p, (size_t)n)) {
			EVP_MD_CTX_free(e->hash);
			e->hash = NULL;
		}
		if (w->chk && !EVP_DigestUpdate(w->chk, p, (size_t)n)) {
			w->err = SPOOL_E_IO;
			return w->err;
		}
		w->pos += (uint64_t)n;
		p += n;
		len -= (size_t)n;
	}
	return SPOOL_OK;
}

/* Drops the request's bytes: truncates back to its start and restores the hash. */
static enum spool_err writer_rollback(struct spool_write *w)
{
	struct entry *e = w->e;
	int r;

	do
		r = ftruncate(w->fd, (off_t)w->start);
	while (r == -1 && errno == EINTR);
	if (r == -1 || disk_datasync(w->s, w->fd) == -1) {
		/* The file may hold more than the offset says; the commit rehashes from disk. */
		EVP_MD_CTX_free(e->hash);
		e->hash = NULL;
		return SPOOL_E_IO;
	}
	w->pos = w->start;
	if (!w->snap) {
		EVP_MD_CTX_free(e->hash);
		e->hash = NULL;
		return SPOOL_OK;
	}
	if (!e->hash)
		e->hash = EVP_MD_CTX_new();
	if (!e->hash || !EVP_MD_CTX_copy_ex(e->hash, w->snap)) {
		EVP_MD_CTX_free(e->hash);
		e->hash = NULL;
	}
	return SPOOL_OK;
}

/*
 * Keeps the request's bytes: fdatasync, then the offset moves. In discard mode, where nothing
 * was written, the file grows (sparse) to the new offset instead, so its size stays the offset.
 */
static enum spool_err writer_keep(struct spool_write *w)
{
	struct spool *s = w->s;
	int r = 0;

	if (w->pos == w->start)
		return SPOOL_OK;
	if (s->cfg.discard) {
		do
			r = ftruncate(w->fd, (off_t)w->pos);
		while (r == -1 && errno == EINTR);
	}
	if (r == -1 || disk_datasync(s, w->fd) == -1) {
		/* After a failed fdatasync (or growth) the file cannot be trusted: go back. */
		writer_rollback(w);
		return SPOOL_E_IO;
	}
	pthread_mutex_lock(&s->lock);
	entry_set_offset(s, w->e, w->pos);
	pthread_mutex_unlock(&s->lock);
	return SPOOL_OK;
}

static void writer_free(struct spool_write *w, int gone)
{
	fsio_close(w->fd);
	EVP_MD_CTX_free(w->snap);
	EVP_MD_CTX_free(w->chk);
	if (!gone)
		entry_unbusy(w->s, w->e);
	free(w);
}

enum spool_err spool_write_end(struct spool_write *w, struct spool_job *out)
{
	return spool_write_end_why(w, out, NULL);
}

enum spool_err spool_write_end_why(struct spool_write *w, struct spool_job *out,
				   const char **why)
{
	struct spool *s = w->s;
	struct entry *e = w->e;
	enum spool_err rc = w->err, r;
	unsigned char got[DIGEST_SHA256_LEN];
	const char *reason = NULL;
	unsigned int n = 0;
	int gone = 0;

	if (!rc && w->has_checksum) {
		if (!EVP_DigestFinal_ex(w->chk, got, &n) || n != DIGEST_SHA256_LEN)
			rc = SPOOL_E_IO;
		else if (CRYPTO_memcmp(got, w->checksum, DIGEST_SHA256_LEN))
			rc = SPOOL_E_CHECKSUM;
	}
	if (rc == SPOOL_E_TOO_LARGE || (rc && w->has_checksum)) {
		writer_rollback(w);
	} else {
		r = writer_keep(w);
		if (!rc)
			rc = r;
		if (!rc && e->job.offset == e->job.length)
			rc = job_commit(s, e, &gone, &reason);
	}
	if (rc == SPOOL_E_DIGEST && why)
		*why = reason;
	if (!gone && out) {
		pthread_mutex_lock(&s->lock);
		*out = e->job;
		pthread_mutex_unlock(&s->lock);
	}
	writer_free(w, gone);
	return rc;
}

void spool_write_abort(struct spool_write *w)
{
	if (w->err == SPOOL_E_TOO_LARGE || w->has_checksum)
		writer_rollback(w);
	else
		writer_keep(w);
	writer_free(w, 0);
}

/* ---- removal, listing, release ---- */

enum spool_err spool_delete(struct spool *s, const char *owner, const char *id)
{
	enum spool_err rc = SPOOL_OK;
	struct entry *e;

	if (!owner)
		return SPOOL_E_NOT_FOUND;
	pthread_mutex_lock(&s->lock);
	e = index_find(s, id);
	if (!e || strcmp(e->job.owner, owner))
		rc = SPOOL_E_NOT_FOUND;
	else if (e->busy != BUSY_NONE)
		rc = SPOOL_E_BUSY;
	else
		e->busy = BUSY_REMOVING;
	pthread_mutex_unlock(&s->lock);
	if (rc)
		return rc;
	rc = job_remove(s, e, 1);
	if (rc)
		entry_unbusy(s, e);
	return rc;
}

static int job_cmp(const void *a, const void *b)
{
	const struct spool_job *x = a, *y = b;

	if (x->sequence != y->sequence)
		return x->sequence < y->sequence ? -1 : 1;
	return strcmp(x->id, y->id);
}

/* Copies the committed jobs that pass the filter, sorted by (sequence, id). */
static enum spool_err list_committed(struct spool *s, const char *owner, int unhooked,
				     struct spool_job **out, size_t *n)
{
	struct spool_job *v = NULL;
	size_t k = 0, count = 0;

	pthread_mutex_lock(&s->lock);
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < s->n; i++) {
			const struct entry *e = s->v[i];

			if (e->job.state != SPOOL_COMMITTED || e->busy == BUSY_REMOVING ||
			    (owner && strcmp(e->job.owner, owner)) || (unhooked && e->hooked))
				continue;
			if (pass == 0)
				count++;
			else
				v[k++] = e->job;
		}
		if (pass == 0) {
			if (!count)
				break;
			v = malloc(count * sizeof(*v));
			if (!v) {
				pthread_mutex_unlock(&s->lock);
				return SPOOL_E_NOMEM;
			}
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (k)
		qsort(v, k, sizeof(*v), job_cmp);
	*out = v;
	*n = k;
	return SPOOL_OK;
}

enum spool_err spool_list(struct spool *s, const char *owner, struct spool_job **out, size_t *n)
{
	return list_committed(s, owner, 0, out, n);
}

enum spool_err spool_unhooked(struct spool *s, struct spool_job **out, size_t *n)
{
	return list_committed(s, NULL, 1, out, n);
}

/* Looks up a committed job for the release side; copies it to *out under the lock. */
static enum spool_err committed_get(struct spool *s, const char *id, struct spool_job *out)
{
	enum spool_err rc = SPOOL_OK;
	struct entry *e;

	pthread_mutex_lock(&s->lock);
	e = index_find(s, id);
	if (!e || e->busy == BUSY_REMOVING)
		rc = SPOOL_E_NOT_FOUND;
	else if (e->job.state != SPOOL_COMMITTED)
		rc = SPOOL_E_NOT_COMMITTED;
	else
		*out = e->job;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

enum spool_err spool_open_data(struct spool *s, const char *id, int *fd, struct spool_job *out)
{
	char path[SUBPATH_MAX];
	struct spool_job j;
	enum spool_err rc;
	int f;

	rc = committed_get(s, id, &j);
	if (rc)
		return rc;
	subpath(path, j.id, DATA_NAME);
	do
		f = openat(s->ready_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	while (f == -1 && errno == EINTR);
	if (f == -1)
		return errno == ENOENT ? SPOOL_E_NOT_FOUND : SPOOL_E_IO; /* released meanwhile */
	*fd = f;
	*out = j;
	return SPOOL_OK;
}

enum spool_err spool_release(struct spool *s, const char *id, struct spool_job *out)
{
	enum spool_err rc = SPOOL_OK;
	struct spool_job j;
	struct entry *e;

	memset(&j, 0, sizeof(j));
	pthread_mutex_lock(&s->lock);
	e = index_find(s, id);
	if (!e) {
		rc = SPOOL_E_NOT_FOUND;
	} else if (e->job.state != SPOOL_COMMITTED) {
		rc = SPOOL_E_NOT_COMMITTED;
	} else if (e->busy != BUSY_NONE) {
		rc = SPOOL_E_BUSY;
	} else {
		e->busy = BUSY_REMOVING;
		j = e->job;
	}
	pthread_mutex_unlock(&s->lock);
	if (rc)
		return rc;
	/* Before the entry goes, so that spool_expire never sees the tombstone's old time. */
	claim_touch(s, e->claim);
	rc = job_remove(s, e, 0);
	if (rc) {
		entry_unbusy(s, e);
		return rc;
	}
	if (out)
		*out = j;
	return SPOOL_OK;
}

enum spool_err spool_paths(struct spool *s, const char *id, char *data, char *json, size_t cap)
{
	struct spool_job j;
	enum spool_err rc;
	int n;

	rc = committed_get(s, id, &j);
	if (rc)
		return rc;
	if (data) {
		n = snprintf(data, cap, "%s/ready/%s/%s", s->dir, j.id, DATA_NAME);
		if (n < 0 || (size_t)n >= cap)
			return SPOOL_E_BUFFER;
	}
	if (json) {
		n = snprintf(json, cap, "%s/ready/%s/%s", s->dir, j.id, JSON_NAME);
		if (n < 0 || (size_t)n >= cap)
			return SPOOL_E_BUFFER;
	}
	return SPOOL_OK;
}

/* Writes the document of j, read through d, to fd; checks its SHA-256 against j's. */
static enum spool_err decode_to(struct decode *d, int fd, const struct spool_job *j)
{
	unsigned char sha[DIGEST_SHA256_LEN], *buf = malloc(READ_CHUNK);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	enum spool_err rc = SPOOL_E_IO;
	enum decode_err de;
	unsigned int n = 0;
	size_t got = 0;

	if (!buf || !ctx) {
		rc = SPOOL_E_NOMEM;
		goto out;
	}
	if (!EVP_DigestInit_ex(ctx, EVP_sha256(), NULL))
		goto out;
	do {
		de = decode_read(d, buf, READ_CHUNK, &got);
		if (de) {
			rc = de == DECODE_E_IO ? SPOOL_E_IO :
			     de == DECODE_E_NOMEM ? SPOOL_E_NOMEM : SPOOL_E_DIGEST;
			goto out;
		}
		if (got && (!EVP_DigestUpdate(ctx, buf, got) || fsio_write_all(fd, buf, got) == -1)) {
			rc = errno_err(errno);
			goto out;
		}
	} while (got);
	if (!EVP_DigestFinal_ex(ctx, sha, &n) || n != DIGEST_SHA256_LEN)
		goto out;
	rc = CRYPTO_memcmp(sha, j->sha256, DIGEST_SHA256_LEN) ? SPOOL_E_DIGEST : SPOOL_OK;
out:
	EVP_MD_CTX_free(ctx);
	free(buf);
	return rc;
}

enum spool_err spool_decode_temp(struct spool *s, const char *id, char *path, size_t cap)
{
	char tmpl[PATH_MAX];
	struct decode *d = NULL;
	struct spool_job j;
	enum spool_err rc;
	int in = -1, out = -1, n;

	rc = spool_open_data(s, id, &in, &j);
	if (rc)
		return rc;
	if (j.meta.encoding != META_ENCODING_ZSTD) {
		fsio_close(in);
		return SPOOL_E_INVALID;
	}
	n = snprintf(tmpl, sizeof(tmpl), "%s/tmp/%s" TMP_SUFFIX, s->dir, j.id);
	if (n < 0 || (size_t)n >= sizeof(tmpl) || (size_t)n >= cap) {
		fsio_close(in);
		return SPOOL_E_BUFFER;
	}
	d = decode_new(in, j.length, j.size); /* owns in from here */
	if (!d)
		return SPOOL_E_NOMEM;
	out = mkostemp(tmpl, O_CLOEXEC);
	if (out == -1) {
		rc = errno_err(errno);
		goto out;
	}
	rc = decode_to(d, out, &j);
	if (close(out) == -1 && errno != EINTR && !rc)
		rc = errno_err(errno);
	if (rc) {
		unlink(tmpl);
		goto out;
	}
	memcpy(path, tmpl, (size_t)n + 1);
out:
	decode_free(d);
	return rc;
}

enum spool_err spool_mark_hooked(struct spool *s, const char *id)
{
	char path[SUBPATH_MAX];
	struct spool_job j;
	struct entry *e;
	enum spool_err rc;
	int fd, dfd;

	rc = committed_get(s, id, &j);
	if (rc)
		return rc;
	subpath(path, j.id, HOOKED_NAME);
	do
		fd = openat(s->ready_fd, path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	while (fd == -1 && errno == EINTR);
	if (fd == -1)
		return errno == ENOENT ? SPOOL_E_NOT_FOUND : errno_err(errno);
	if (disk_sync(s, fd) == -1)
		rc = SPOOL_E_IO;
	fsio_close(fd);
	dfd = fsio_dir_open(s->ready_fd, j.id);
	if (dfd == -1 || disk_sync(s, dfd) == -1)
		rc = SPOOL_E_IO;
	fsio_close(dfd);
	if (rc)
		return rc;
	pthread_mutex_lock(&s->lock);
	e = index_find(s, j.id);
	if (e)
		e->hooked = 1;
	pthread_mutex_unlock(&s->lock);
	return SPOOL_OK;
}

/* ---- expiry and figures ---- */

/* Removes the tombstones (claims naming no job) older than the retention. */
static void expire_tombstones(struct spool *s, int64_t now)
{
	char id[JOBID_LEN + 1];
	struct dirent *d;
	struct stat st;
	DIR *dir;
	int fd, removed = 0;

	fd = fcntl(s->idem_fd, F_DUPFD_CLOEXEC, 0);
	if (fd == -1)
		return;
	dir = fdopendir(fd);
	if (!dir) {
		fsio_close(fd);
		return;
	}
	rewinddir(dir);
	while ((d = readdir(dir))) {
		int live;

		if (strlen(d->d_name) != CLAIM_LEN || claim_read(s, d->d_name, id))
			continue;
		/* Index, then time: spool_release touches the claim before it unindexes. */
		pthread_mutex_lock(&s->lock);
		live = index_find(s, id) != NULL;
		pthread_mutex_unlock(&s->lock);
		if (live || fstatat(s->idem_fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    !S_ISLNK(st.st_mode))
			continue;
		if ((int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000 +
			    s->cfg.retention_ms < now &&
		    unlinkat(s->idem_fd, d->d_name, 0) == 0)
			removed = 1;
	}
	closedir(dir);
	if (removed)
		disk_sync(s, s->idem_fd);
}

size_t spool_expire(struct spool *s, int64_t now_ms, spool_gone_fn *gone_fn, void *arg)
{
	struct entry **victims = NULL;
	size_t count = 0, gone = 0;

	pthread_mutex_lock(&s->expire_lock);
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n; i++)
		count += s->v[i]->busy == BUSY_NONE && now_ms > s->v[i]->job.expires_ms;
	if (count)
		victims = malloc(count * sizeof(*victims));
	count = 0;
	for (size_t i = 0; victims && i < s->n; i++) {
		struct entry *e = s->v[i];

		if (e->busy != BUSY_NONE || now_ms <= e->job.expires_ms)
			continue;
		e->busy = BUSY_REMOVING;
		victims[count++] = e;
	}
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < count; i++) {
		struct entry *e = victims[i];
		struct spool_job job = e->job;
		int committed = job.state == SPOOL_COMMITTED;

		if (committed)
			claim_touch(s, e->claim);
		if (job_remove(s, e, !committed) == SPOOL_OK) {
			gone++;
			if (gone_fn)
				gone_fn(arg, &job);
		} else {
			entry_unbusy(s, e);
		}
	}
	free(victims);
	expire_tombstones(s, now_ms);
	pthread_mutex_unlock(&s->expire_lock);
	return gone;
}

uint64_t spool_free_bytes(struct spool *s)
{
	uint64_t fs = fs_free_bytes(s), avail, lim;

	pthread_mutex_lock(&s->lock);
	avail = fs > s->cfg.min_free_bytes ? fs - s->cfg.min_free_bytes : 0;
	if (!s->cfg.discard)
		avail = avail > s->outstanding ? avail - s->outstanding : 0;
	if (s->cfg.limit_bytes) {
		lim = s->reserved < s->cfg.limit_bytes ? s->cfg.limit_bytes - s->reserved : 0;
		if (lim < avail)
			avail = lim;
	}
	pthread_mutex_unlock(&s->lock);
	return avail;
}

unsigned spool_active(struct spool *s)
{
	unsigned n;

	pthread_mutex_lock(&s->lock);
	n = s->active;
	pthread_mutex_unlock(&s->lock);
	return n;
}
