/* queue: fs-client's durable local queue: submission, listing, delivery state and removal. */
#include "client/queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <zstd.h>

#include "common/fsio.h"
#include "common/clock.h"
#include "common/log.h"
#include "proto/ascii.h"
#include "proto/utf8.h"

#define DATA_NAME "data"
#define JOB_JSON "job.json"
#define STATE_JSON "state.json"
#define NETWORK_JSON "network.json"
#define SEQ_NAME "seq"
#define SEQ_LOCK "seq.lock"
#define DELIVER_LOCK "deliver.lock"
#define TMP_DIR "tmp"
#define JOBS_DIR "jobs"
#define CANCELLED_DIR "cancelled"
#define JSON_VERSION 1
#define JSON_MAX 65536          /* our JSON files are a few KiB; anything bigger is not ours */
#define BLOCK (256 * 1024)      /* read size while copying or compressing a document */
#define SEQ_DIGITS 10           /* jobs/<seq:010>-<uuid> */
#define JOB_NAME_MAX 64         /* "<seq>-<uuid>": at most 20 digits, '-', UUID_LEN */
#define TMP_NAME_MAX (JOB_NAME_MAX + 8) /* "sub-<uuid>", "rm-<job name>" */
#define REMOVE_DEPTH 3          /* tmp/<dir>/<file>: nothing we write goes deeper */
#define ID_PREFIX_MIN 8         /* shortest job id prefix queue_find accepts */

/* The open directories of one queue, for one call. */
struct qdir {
	int root, tmp, jobs, cancelled;
	char path[PATH_MAX]; /* absolute path of the queue directory */
};

/* One entry of jobs/ or cancelled/ whose name parses, for sorting before loading. */
struct entry {
	uint64_t seq;
	char name[JOB_NAME_MAX];
};

const char *queue_strerror(enum queue_err e)
{
	switch (e) {
	case QUEUE_OK: return "success";
	case QUEUE_E_IO: return "file system error";
	case QUEUE_E_NOMEM: return "out of memory";
	case QUEUE_E_SOURCE: return "document cannot be read";
	case QUEUE_E_EMPTY: return "document is empty";
	case QUEUE_E_FORMAT: return "document format not accepted";
	case QUEUE_E_ARG: return "invalid argument";
	case QUEUE_E_NOT_FOUND: return "no such queued job";
	case QUEUE_E_DAMAGED: return "queued job is damaged";
	}
	return "unknown queue error";
}

static const char *const phase_names[] = {
	[QUEUE_PHASE_QUEUED] = "queued",     [QUEUE_PHASE_UPLOADING] = "uploading",
	[QUEUE_PHASE_WAITING] = "waiting",   [QUEUE_PHASE_AUTH] = "auth",
	[QUEUE_PHASE_FAILED] = "failed",     [QUEUE_PHASE_DONE] = "done",
};

#define PHASE_COUNT (sizeof(phase_names) / sizeof(phase_names[0]))

const char *queue_phase_name(enum queue_phase p)
{
	if ((unsigned)p >= PHASE_COUNT)
		return "unknown";
	return phase_names[p];
}

int queue_phase_parse(const char *s, enum queue_phase *out)
{
	for (size_t i = 0; s && i < PHASE_COUNT; i++) {
		if (!strcmp(s, phase_names[i])) {
			*out = (enum queue_phase)i;
			return 0;
		}
	}
	return -1;
}

/* ---- format detection ---- */

static int has_prefix(const unsigned char *b, size_t len, const char *p)
{
	size_t n = strlen(p);

	return len >= n && !memcmp(b, p, n);
}

/* Case-insensitive ASCII match of word at s[*i..); advances *i past it. */
static int word_eat(const unsigned char *s, size_t len, size_t *i, const char *word)
{
	size_t n = strlen(word);

	if (len - *i < n)
		return 0;
	for (size_t k = 0; k < n; k++)
		if (ascii_lower((char)s[*i + k]) != ascii_lower(word[k]))
			return 0;
	*i += n;
	return 1;
}

static size_t blanks_skip(const unsigned char *s, size_t len, size_t i)
{
	while (i < len && ascii_is_ows((char)s[i]))
		i++;
	return i;
}

/*
 * Looks at the rest of one "@PJL" line (after the prefix). Returns 1 for an ENTER LANGUAGE
 * command, with *ps set when the language is POSTSCRIPT; 0 for any other PJL command.
 */
static int pjl_enter(const unsigned char *s, size_t len, int *ps)
{
	size_t i = blanks_skip(s, len, 0), v;

	if (!word_eat(s, len, &i, "ENTER"))
		return 0;
	v = blanks_skip(s, len, i);
	if (v == i)
		return 0;
	i = v;
	if (!word_eat(s, len, &i, "LANGUAGE"))
		return 0;
	i = blanks_skip(s, len, i);
	if (i >= len || s[i] != '=')
		return 0;
	i = blanks_skip(s, len, i + 1);
	v = i;
	*ps = word_eat(s, len, &v, "POSTSCRIPT") && blanks_skip(s, len, v) == len;
	return 1;
}

/*
 * The language a PJL job header (the bytes after the UEL) switches to: PostScript when an
 * ENTER LANGUAGE=POSTSCRIPT command comes first, or when the PJL lines end and the data starts
 * with "%!PS"; PCL otherwise (the printer's default personality for a UEL/PJL stream).
 */
static const char *pjl_language(const unsigned char *b, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t e = i, n, k = 0;
		int ps;

		while (e < len && b[e] != '\n')
			e++;
		n = e - i;
		if (n && b[i + n - 1] == '\r')
			n--;
		if (word_eat(b + i, n, &k, "@PJL")) {
			if (pjl_enter(b + i + 4, n - 4, &ps))
				return ps ? "application/postscript" : "application/vnd.hp-pcl";
		} else if (n) {
			if (has_prefix(b + i, n, "%!PS"))
				return "application/postscript";
			break;
		}
		i = e + 1;
	}
	return "application/vnd.hp-pcl";
}

/*
 * Plain text: UTF-8 without control characters but TAB, LF, CR, FF. Those four are ASCII and
 * never part of a multi-byte sequence, so blanking them lets proto's clean-text check do the
 * rest. A buffer of QUEUE_SNIFF_LEN bytes is a cut of a longer document: a character cut off at
 * its end is dropped, not held against it.
 */
static int is_text(const unsigned char *b, size_t len, int cut)
{
	char t[QUEUE_SNIFF_LEN];

	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = b[i];

		t[i] = (char)(c == '\t' || c == '\n' || c == '\r' || c == '\f' ? ' ' : c);
	}
	for (size_t k = 1; cut && k <= 3 && k <= len; k++) {
		unsigned char c = b[len - k];
		size_t need;

		if ((c & 0xc0) == 0x80)
			continue;
		if (c >= 0xc0) {
			need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
			if (k < need)
				len -= k;
		}
		break;
	}
	return utf8_check_text(t, len) == PROTO_OK;
}

const char *queue_detect_format(const unsigned char *buf, size_t len)
{
	int cut = len >= QUEUE_SNIFF_LEN;

	if (!buf)
		return NULL;
	if (len > QUEUE_SNIFF_LEN)
		len = QUEUE_SNIFF_LEN;
	if (has_prefix(buf, len, "%PDF-"))
		return "application/pdf";
	if (has_prefix(buf, len, "%!PS"))
		return "application/postscript";
	/* The Universal Exit Language sequence that starts a PJL job header. */
	if (has_prefix(buf, len, "\033%-12345X"))
		return pjl_language(buf + 9, len - 9);
	if (has_prefix(buf, len, "\033E"))
		return "application/vnd.hp-pcl";
	if (has_prefix(buf, len, "RaS2"))
		return "image/pwg-raster";
	if (has_prefix(buf, len, "UNIRAST"))
		return "image/urf";
	if (is_text(buf, len, cut))
		return "text/plain";
	return NULL;
}

/* ---- small helpers ---- */

static void detail_set(char *d, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void detail_set(char *d, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (!d || !cap)
		return;
	va_start(ap, fmt);
	vsnprintf(d, cap, fmt, ap);
	va_end(ap);
}

static enum queue_err errno_err(int e)
{
	return e == ENOMEM ? QUEUE_E_NOMEM : QUEUE_E_IO;
}

/* Writes "a/b" into out. Returns 0, or -1 (ENAMETOOLONG) when it does not fit. */
static int path_join(char *out, size_t cap, const char *a, const char *b)
{
	int n = snprintf(out, cap, "%s/%s", a, b);

	if (n < 0 || (size_t)n >= cap) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static int lock_fd(int fd, int op)
{
	int r;

	do
		r = flock(fd, op);
	while (r == -1 && errno == EINTR);
	return r;
}

/* Creates path and its missing parents (mode 0700). Returns 0 or -1. */
static int mkdir_p(const char *path)
{
	char parent[PATH_MAX];
	size_t len = strlen(path);

	if (mkdir(path, 0700) == 0 || errno == EEXIST)
		return 0;
	if (errno != ENOENT || len >= sizeof(parent))
		return -1;
	memcpy(parent, path, len + 1);
	while (len > 1 && parent[len - 1] == '/')
		len--;
	while (len > 0 && parent[len - 1] != '/')
		len--;
	while (len > 1 && parent[len - 1] == '/')
		len--;
	if (len == 0 || (len == 1 && parent[0] == '/')) {
		errno = ENOENT;
		return -1;
	}
	parent[len] = '\0';
	if (mkdir_p(parent) == -1)
		return -1;
	return mkdir(path, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

/* Removes parent/name whatever it is: a file, or a directory of at most depth levels. */
static int tree_remove(int parent, const char *name, int depth)
{
	struct dirent *d;
	DIR *dir;
	int fd, rc = 0;

	if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
		return 0;
	if ((errno != EISDIR && errno != EPERM) || depth == 0)
		return -1;
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
		if (tree_remove(dirfd(dir), d->d_name, depth - 1) == -1)
			rc = -1;
	}
	closedir(dir);
	if (unlinkat(parent, name, AT_REMOVEDIR) == -1 && errno != ENOENT)
		rc = -1;
	return rc;
}

/*
 * Writes len bytes as dfd/name durably: name.tmp, fsync, rename over name, fsync of dfd. The
 * fixed tmp name is safe because each file has one writer at a time (the submitter for its own
 * job directory, the holder of seq.lock for seq, the deliverer for state and network).
 */
static enum queue_err file_store(int dfd, const char *name, const char *text, size_t len)
{
	char tmp[64];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	do
		fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	while (fd == -1 && errno == EINTR);
	if (fd == -1)
		return errno_err(errno);
	if (fsio_write_all(fd, text, len) == -1 || fsio_fsync(fd) == -1) {
		fsio_close(fd);
		goto fail;
	}
	if (close(fd) == -1 && errno != EINTR)
		goto fail;
	if (renameat(dfd, tmp, dfd, name) == -1 || fsio_fsync(dfd) == -1)
		goto fail;
	return QUEUE_OK;
fail:
	{
		int saved = errno;

		unlinkat(dfd, tmp, 0);
		errno = saved;
		return errno_err(saved);
	}
}

/* Stores o (reference stolen) as JSON in dfd/name with file_store. */
static enum queue_err json_store(int dfd, const char *name, json_t *o)
{
	char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	enum queue_err rc;
	size_t len;

	json_decref(o);
	if (!text)
		return QUEUE_E_NOMEM;
	len = strlen(text);
	text[len] = '\n'; /* json_dumps's NUL becomes the final newline; no NUL is written */
	rc = file_store(dfd, name, text, len + 1);
	free(text);
	return rc;
}

/*
 * Reads dfd/name (a regular file of at most JSON_MAX bytes) into a JSON value. Returns
 * QUEUE_OK, QUEUE_E_NOT_FOUND when the file does not exist, QUEUE_E_DAMAGED when it is not a
 * JSON text we could have written, QUEUE_E_IO or QUEUE_E_NOMEM.
 */
static enum queue_err json_read(int dfd, const char *name, json_t **out)
{
	enum queue_err rc = QUEUE_E_DAMAGED;
	char buf[JSON_MAX + 1];
	json_error_t jerr;
	struct stat st;
	size_t got = 0;
	int fd;

	do
		fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	while (fd == -1 && errno == EINTR);
	if (fd == -1) {
		if (errno == ENOENT)
			return QUEUE_E_NOT_FOUND;
		return errno == ELOOP ? QUEUE_E_DAMAGED : errno_err(errno);
	}
	if (fstat(fd, &st) == -1) {
		rc = errno_err(errno);
		goto out;
	}
	if (!S_ISREG(st.st_mode))
		goto out;
	while (got < sizeof(buf)) {
		ssize_t n = read(fd, buf + got, sizeof(buf) - got);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			rc = errno_err(errno);
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got > JSON_MAX)
		goto out;
	*out = json_loadb(buf, got, JSON_REJECT_DUPLICATES, &jerr);
	if (*out)
		rc = QUEUE_OK;
out:
	fsio_close(fd);
	return rc;
}

/* Copies a JSON string of len bytes (no NUL inside) into a field of cap bytes. */
static int field_copy(char *dst, size_t cap, const char *src, size_t len)
{
	if (len >= cap || memchr(src, '\0', len))
		return -1;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return 0;
}

/*
 * Sets o[key] to the string field s of cap bytes. QUEUE_E_ARG when s is not NUL-terminated
 * inside its field or not valid UTF-8 (it would not read back).
 */
static enum queue_err json_set_str(json_t *o, const char *key, const char *s, size_t cap)
{
	size_t len = strnlen(s, cap);
	json_t *v;

	if (len == cap)
		return QUEUE_E_ARG;
	v = json_stringn(s, len);
	if (!v) {
		/* As in proto/utf8.c: if the unchecked variant works, the text was at fault. */
		v = json_stringn_nocheck(s, len);
		if (!v)
			return QUEUE_E_NOMEM;
		json_decref(v);
		return QUEUE_E_ARG;
	}
	return json_object_set_new(o, key, v) ? QUEUE_E_NOMEM : QUEUE_OK;
}

/* ---- the queue directory ---- */

static void qdir_close(struct qdir *q)
{
	fsio_close(q->root);
	fsio_close(q->tmp);
	fsio_close(q->jobs);
	fsio_close(q->cancelled);
	q->root = q->tmp = q->jobs = q->cancelled = -1;
}

static int subdir_open(int root, const char *name, int *created)
{
	if (mkdirat(root, name, 0700) == 0)
		*created = 1;
	else if (errno != EEXIST)
		return -1;
	return fsio_dir_open(root, name);
}

/*
 * Removes what interrupted submissions and removals left in tmp/. Every writer into tmp/ holds
 * a shared flock on tmp/ while its entry is there, so getting the exclusive lock without
 * waiting means every entry is a leftover; when someone is busy, the cleaning waits for a later
 * call.
 */
static void tmp_clean(struct qdir *q)
{
	struct dirent *d;
	int fd, removed = 0;
	DIR *dir;

	if (lock_fd(q->tmp, LOCK_EX | LOCK_NB) == -1)
		return;
	fd = fsio_dir_open(q->tmp, ".");
	dir = fd == -1 ? NULL : fdopendir(fd);
	if (!dir) {
		fsio_close(fd);
		log_warn("queue.tmp", "%s/" TMP_DIR ": %s", q->path, strerror(errno));
		goto out;
	}
	while ((d = readdir(dir))) {
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		if (tree_remove(q->tmp, d->d_name, REMOVE_DEPTH) == -1)
			log_warn("queue.tmp", "%s/" TMP_DIR "/%s: cannot remove leftover: %s",
				 q->path, d->d_name, strerror(errno));
		else
			removed++;
	}
	closedir(dir);
	if (removed) {
		log_info("queue.tmp", "%s: removed %d leftovers of interrupted submissions",
			 q->path, removed);
		fsio_fsync(q->tmp);
	}
out:
	lock_fd(q->tmp, LOCK_UN);
}

static enum queue_err qdir_open(const char *queue_dir, struct qdir *q)
{
	int created = 0;

	q->root = q->tmp = q->jobs = q->cancelled = -1;
	if (!queue_dir || !*queue_dir)
		return QUEUE_E_ARG;
	if (mkdir_p(queue_dir) == -1 || !realpath(queue_dir, q->path))
		goto fail;
	q->root = fsio_dir_open(AT_FDCWD, q->path);
	if (q->root == -1)
		goto fail;
	q->tmp = subdir_open(q->root, TMP_DIR, &created);
	if (q->tmp == -1)
		goto fail;
	q->jobs = subdir_open(q->root, JOBS_DIR, &created);
	if (q->jobs == -1)
		goto fail;
	q->cancelled = subdir_open(q->root, CANCELLED_DIR, &created);
	if (q->cancelled == -1)
		goto fail;
	if (created && fsio_fsync(q->root) == -1)
		goto fail;
	tmp_clean(q);
	return QUEUE_OK;
fail:
	{
		int saved = errno;

		log_warn("queue.open", "%s: %s", queue_dir, strerror(saved));
		qdir_close(q);
		return errno_err(saved);
	}
}

enum queue_err queue_open(const char *queue_dir)
{
	struct qdir q;
	enum queue_err rc = qdir_open(queue_dir, &q);

	qdir_close(&q);
	return rc;
}

/* Parses "<seq>-<uuid>" as written by job_name. Returns 0 or -1. */
static int job_name_parse(const char *name, uint64_t *seq, char uuid[UUID_LEN + 1])
{
	size_t len = strnlen(name, JOB_NAME_MAX), digits;
	uint64_t v = 0;

	if (len >= JOB_NAME_MAX || len < SEQ_DIGITS + 1 + UUID_LEN)
		return -1;
	digits = len - UUID_LEN - 1;
	if (name[digits] != '-' || (digits > SEQ_DIGITS && name[0] == '0'))
		return -1;
	for (size_t i = 0; i < digits; i++) {
		if (!ascii_is_digit(name[i]) || v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(name[i] - '0');
	}
	if (v == 0 || jobid_client_parse(name + digits + 1, UUID_LEN, uuid) != PROTO_OK ||
	    memcmp(uuid, name + digits + 1, UUID_LEN))
		return -1;
	*seq = v;
	return 0;
}

static void job_name(char out[JOB_NAME_MAX], uint64_t seq, const char *uuid)
{
	snprintf(out, JOB_NAME_MAX, "%0*" PRIu64 "-%s", SEQ_DIGITS, seq, uuid);
}

static int entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * Reads the names of the job directories in parent (jobs/ or cancelled/), sorted by seq.
 * Names that do not parse are logged and left out. *out is malloc'd (NULL when none).
 */
static enum queue_err entries_read(const struct qdir *q, int parent, const char *sub,
				   struct entry **out, size_t *n)
{
	struct entry *v = NULL;
	size_t len = 0, cap = 0;
	struct dirent *d;
	DIR *dir;
	int fd;

	fd = fsio_dir_open(parent, ".");
	dir = fd == -1 ? NULL : fdopendir(fd);
	if (!dir) {
		fsio_close(fd);
		return errno_err(errno);
	}
	while ((d = readdir(dir))) {
		char uuid[UUID_LEN + 1];
		uint64_t seq;

		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		if (job_name_parse(d->d_name, &seq, uuid)) {
			log_warn("queue.damaged", "%s/%s/%s: not a job directory name; skipped",
				 q->path, sub, d->d_name);
			continue;
		}
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct entry *nv = realloc(v, ncap * sizeof(*nv));

			if (!nv) {
				closedir(dir);
				free(v);
				return QUEUE_E_NOMEM;
			}
			v = nv;
			cap = ncap;
		}
		v[len].seq = seq;
		memcpy(v[len].name, d->d_name, strlen(d->d_name) + 1);
		len++;
	}
	closedir(dir);
	if (len)
		qsort(v, len, sizeof(*v), entry_cmp);
	*out = v;
	*n = len;
	return QUEUE_OK;
}

/* ---- job.json and state.json ---- */

static json_t *job_json(const struct queue_job *j)
{
	char hex[2 * DIGEST_SHA256_LEN + 1];

	ascii_hex_encode(j->sha256, DIGEST_SHA256_LEN, hex);
	return json_pack("{s:i, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:I}", "version",
			 JSON_VERSION, "job_id", j->job_id, "name", j->name, "format", j->format,
			 "copies", (json_int_t)j->copies, "submitted_at_ms",
			 (json_int_t)j->submitted_at_ms, "size", (json_int_t)j->size, "sha256",
			 hex, "encoding", j->encoding == QUEUE_ENC_ZSTD ? "zstd" : "identity",
			 "stored_size", (json_int_t)j->stored_size);
}

/*
 * Parses job.json strictly into j (every key known, each required one present, values of
 * their type and range, job_id equal to the directory's). Returns NULL or why it failed.
 */
static const char *job_parse(json_t *o, const char *uuid, struct queue_job *j)
{
	const char *id, *name, *format, *sha, *enc;
	size_t id_n, name_n, format_n, sha_n, enc_n;
	json_int_t copies, submitted, size, stored;
	char canon[META_FORMAT_MAX + 1];
	json_error_t jerr;
	int version;

	if (json_unpack_ex(o, &jerr, JSON_STRICT,
			   "{s:i, s:s%, s:s%, s:s%, s:I, s:I, s:I, s:s%, s:s%, s:I}", "version",
			   &version, "job_id", &id, &id_n, "name", &name, &name_n, "format",
			   &format, &format_n, "copies", &copies, "submitted_at_ms", &submitted,
			   "size", &size, "sha256", &sha, &sha_n, "encoding", &enc, &enc_n,
			   "stored_size", &stored))
		return "not the expected members";
	if (version != JSON_VERSION)
		return "unknown version";
	if (field_copy(j->job_id, sizeof(j->job_id), id, id_n) || strcmp(j->job_id, uuid))
		return "job_id differs from the directory's";
	if (field_copy(j->name, sizeof(j->name), name, name_n) ||
	    utf8_check_text(j->name, name_n) != PROTO_OK)
		return "bad name";
	if (field_copy(j->format, sizeof(j->format), format, format_n) ||
	    meta_format_parse(format, format_n, canon, sizeof(canon)) != PROTO_OK ||
	    strcmp(canon, j->format))
		return "bad format";
	if (copies < 1 || copies > META_COPIES_MAX)
		return "bad copies";
	j->copies = (unsigned)copies;
	if (submitted < 0)
		return "bad submitted_at_ms";
	j->submitted_at_ms = submitted;
	if (size < 1 || stored < 1)
		return "bad size";
	j->size = (uint64_t)size;
	j->stored_size = (uint64_t)stored;
	if (ascii_hex_decode(sha, sha_n, j->sha256, DIGEST_SHA256_LEN))
		return "bad sha256";
	if (enc_n == 4 && !memcmp(enc, "zstd", 4))
		j->encoding = QUEUE_ENC_ZSTD;
	else if (enc_n == 8 && !memcmp(enc, "identity", 8))
		j->encoding = QUEUE_ENC_IDENTITY;
	else
		return "bad encoding";
	if (j->encoding == QUEUE_ENC_IDENTITY && j->stored_size != j->size)
		return "identity data of another size than the document";
	return NULL;
}

/* Whether s (a field of cap bytes) is "" or 64 lowercase hex digits. */
static int token_hash_ok(const char *s, size_t cap)
{
	size_t len = strnlen(s, cap);

	if (len == 0)
		return 1;
	if (len != 2 * DIGEST_SHA256_LEN)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!ascii_is_lower_hex(s[i]))
			return 0;
	return 1;
}

/* The state.json of st for job j; NULL with *rc QUEUE_E_ARG when it would not read back. */
static json_t *state_json(const struct queue_job *j, const struct queue_state *st,
			  enum queue_err *rc)
{
	json_t *o;

	*rc = QUEUE_E_ARG;
	if ((unsigned)st->phase >= PHASE_COUNT || st->next_ms < 0 || st->updated_ms < 0 ||
	    st->offset > j->stored_size || st->offset > INT64_MAX ||
	    !token_hash_ok(st->token_hash, sizeof(st->token_hash)))
		return NULL;
	*rc = QUEUE_E_NOMEM;
	o = json_pack("{s:i, s:s, s:I, s:b, s:I, s:I, s:I}", "version", JSON_VERSION, "phase",
		      phase_names[st->phase], "offset", (json_int_t)st->offset, "final_sent",
		      st->final_sent != 0, "attempts", (json_int_t)st->attempts, "next_ms",
		      (json_int_t)st->next_ms, "updated_ms",
		      (json_int_t)(st->updated_ms ? st->updated_ms : clock_unix_ms()));
	if (!o)
		return NULL;
	if ((*rc = json_set_str(o, "base", st->base, sizeof(st->base))) ||
	    (*rc = json_set_str(o, "location", st->location, sizeof(st->location))) ||
	    (*rc = json_set_str(o, "token_hash", st->token_hash, sizeof(st->token_hash))) ||
	    (*rc = json_set_str(o, "error", st->error, sizeof(st->error)))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static const char *state_parse(json_t *o, const struct queue_job *j, struct queue_state *st)
{
	const char *phase, *base, *location, *token, *error;
	size_t phase_n, base_n, location_n, token_n, error_n;
	json_int_t offset, attempts, next, updated;
	char phase_s[16];
	json_error_t jerr;
	int version, final;

	memset(st, 0, sizeof(*st));
	if (json_unpack_ex(o, &jerr, JSON_STRICT,
			   "{s:i, s:s%, s:s%, s:s%, s:I, s:b, s:I, s:I, s:s%, s:s%, s:I}",
			   "version", &version, "phase", &phase, &phase_n, "base", &base, &base_n,
			   "location", &location, &location_n, "offset", &offset, "final_sent",
			   &final, "attempts", &attempts, "next_ms", &next, "token_hash", &token,
			   &token_n, "error", &error, &error_n, "updated_ms", &updated))
		return "not the expected members";
	if (version != JSON_VERSION)
		return "unknown version";
	if (field_copy(phase_s, sizeof(phase_s), phase, phase_n) ||
	    queue_phase_parse(phase_s, &st->phase))
		return "bad phase";
	if (field_copy(st->base, sizeof(st->base), base, base_n) ||
	    field_copy(st->location, sizeof(st->location), location, location_n) ||
	    field_copy(st->error, sizeof(st->error), error, error_n))
		return "string too long";
	if (field_copy(st->token_hash, sizeof(st->token_hash), token, token_n) ||
	    !token_hash_ok(st->token_hash, sizeof(st->token_hash)))
		return "bad token_hash";
	if (offset < 0 || (uint64_t)offset > j->stored_size)
		return "offset beyond the data";
	if (attempts < 0 || attempts > UINT32_MAX || next < 0 || updated < 0)
		return "bad number";
	st->offset = (uint64_t)offset;
	st->final_sent = final;
	st->attempts = (uint32_t)attempts;
	st->next_ms = next;
	st->updated_ms = updated;
	return NULL;
}

/*
 * Loads the job directory parent/name into j (dir set to dir_path/name) and, when st is not
 * NULL, its state. QUEUE_E_DAMAGED (logged) when job.json or the data file is not what a
 * submission wrote; a damaged state.json is logged and read as QUEUED, since the job itself
 * can still be delivered (the server knows an upload again by its job id).
 */
static enum queue_err job_load(int parent, const char *dir_path, const char *name,
			       struct queue_job *out, struct queue_state *st_out)
{
	char uuid[UUID_LEN + 1];
	struct queue_state st;
	struct queue_job j;
	json_t *o = NULL;
	const char *why = NULL;
	enum queue_err rc;
	struct stat sb;
	int dfd;

	memset(&j, 0, sizeof(j));
	if (job_name_parse(name, &j.seq, uuid))
		return QUEUE_E_NOT_FOUND;
	if (path_join(j.dir, sizeof(j.dir), dir_path, name) == -1)
		return QUEUE_E_IO;
	dfd = fsio_dir_open(parent, name);
	if (dfd == -1) {
		if (errno == ENOENT)
			return QUEUE_E_NOT_FOUND;
		if (errno != ENOTDIR && errno != ELOOP)
			return errno_err(errno);
		why = "not a directory";
		rc = QUEUE_E_DAMAGED;
		goto out;
	}
	rc = json_read(dfd, JOB_JSON, &o);
	if (rc == QUEUE_E_NOT_FOUND || rc == QUEUE_E_DAMAGED) {
		why = rc == QUEUE_E_NOT_FOUND ? JOB_JSON " missing" : JOB_JSON " does not parse";
		rc = QUEUE_E_DAMAGED;
		goto out;
	}
	if (rc)
		goto out;
	why = job_parse(o, uuid, &j);
	json_decref(o);
	o = NULL;
	if (!why && fstatat(dfd, DATA_NAME, &sb, AT_SYMLINK_NOFOLLOW) == -1) {
		if (errno != ENOENT) {
			rc = errno_err(errno);
			goto out;
		}
		why = DATA_NAME " missing";
	}
	if (!why && (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != j.stored_size))
		why = DATA_NAME " is not the stored size";
	if (why) {
		rc = QUEUE_E_DAMAGED;
		goto out;
	}
	memset(&st, 0, sizeof(st));
	if (st_out) {
		const char *swhy;

		rc = json_read(dfd, STATE_JSON, &o);
		if (rc == QUEUE_OK) {
			swhy = state_parse(o, &j, &st);
			if (swhy) {
				log_warn("queue.damaged",
					 "%s/" STATE_JSON ": %s; job read as queued", j.dir, swhy);
				memset(&st, 0, sizeof(st));
			}
		} else if (rc == QUEUE_E_DAMAGED) {
			log_warn("queue.damaged", "%s/" STATE_JSON ": does not parse; job read as "
				 "queued", j.dir);
		} else if (rc != QUEUE_E_NOT_FOUND) {
			goto out;
		}
		rc = QUEUE_OK;
	}
	*out = j;
	if (st_out)
		*st_out = st;
out:
	if (why)
		log_warn("queue.damaged", "%s: %s", j.dir, why);
	json_decref(o);
	fsio_close(dfd);
	return rc;
}

/* Lists the jobs of parent (jobs/ or cancelled/), skipping damaged ones. */
static enum queue_err jobs_list(const struct qdir *q, int parent, const char *sub,
				struct queue_job **out, struct queue_state **states, size_t *n)
{
	struct queue_state *sv = NULL;
	struct queue_job *jv = NULL;
	struct entry *e = NULL;
	size_t ne = 0, k = 0;
	char dir_path[PATH_MAX];
	enum queue_err rc;

	if (!out || !n)
		return QUEUE_E_ARG;
	if (path_join(dir_path, sizeof(dir_path), q->path, sub) == -1)
		return QUEUE_E_IO;
	rc = entries_read(q, parent, sub, &e, &ne);
	if (rc)
		return rc;
	if (ne) {
		jv = calloc(ne, sizeof(*jv));
		sv = states ? calloc(ne, sizeof(*sv)) : NULL;
		if (!jv || (states && !sv)) {
			rc = QUEUE_E_NOMEM;
			goto out;
		}
	}
	for (size_t i = 0; i < ne; i++) {
		rc = job_load(parent, dir_path, e[i].name, &jv[k], sv ? &sv[k] : NULL);
		if (rc == QUEUE_OK) {
			k++;
			continue;
		}
		/* Gone meanwhile (delivered or cancelled) or damaged (logged): not listed. */
		if (rc == QUEUE_E_NOT_FOUND || rc == QUEUE_E_DAMAGED)
			continue;
		if (rc == QUEUE_E_NOMEM)
			goto out;
		log_warn("queue.list", "%s/%s: %s; skipped", dir_path, e[i].name, strerror(errno));
	}
	rc = QUEUE_OK;
	if (k == 0) {
		free(jv);
		free(sv);
		jv = NULL;
		sv = NULL;
	}
	*out = jv;
	if (states)
		*states = sv;
	*n = k;
	jv = NULL;
	sv = NULL;
out:
	free(e);
	free(jv);
	free(sv);
	return rc;
}

enum queue_err queue_list(const char *queue_dir, struct queue_job **out,
			  struct queue_state **states, size_t *n)
{
	struct qdir q;
	enum queue_err rc = qdir_open(queue_dir, &q);

	if (!rc)
		rc = jobs_list(&q, q.jobs, JOBS_DIR, out, states, n);
	qdir_close(&q);
	return rc;
}

enum queue_err queue_cancelled(const char *queue_dir, struct queue_job **out,
			       struct queue_state **states, size_t *n)
{
	struct qdir q;
	enum queue_err rc = qdir_open(queue_dir, &q);

	if (!rc)
		rc = jobs_list(&q, q.cancelled, CANCELLED_DIR, out, states, n);
	qdir_close(&q);
	return rc;
}

/*
 * Finds the one directory name in jobs/ whose UUID is id or starts with id (lowercased, at
 * least ID_PREFIX_MIN characters). QUEUE_E_NOT_FOUND when none or several match.
 */
static enum queue_err job_match(const struct qdir *q, const char *id, char name[JOB_NAME_MAX])
{
	char low[UUID_LEN + 1];
	struct entry *e = NULL;
	size_t len, ne = 0, hits = 0;
	enum queue_err rc;

	len = id ? strnlen(id, UUID_LEN + 1) : 0;
	if (len < ID_PREFIX_MIN || len > UUID_LEN)
		return QUEUE_E_NOT_FOUND;
	for (size_t i = 0; i < len; i++) {
		low[i] = ascii_lower(id[i]);
		if (!ascii_is_lower_hex(low[i]) && low[i] != '-')
			return QUEUE_E_NOT_FOUND;
	}
	rc = entries_read(q, q->jobs, JOBS_DIR, &e, &ne);
	if (rc)
		return rc;
	for (size_t i = 0; i < ne; i++) {
		const char *uuid = e[i].name + strlen(e[i].name) - UUID_LEN;

		if (memcmp(uuid, low, len))
			continue;
		if (hits++ == 0)
			memcpy(name, e[i].name, JOB_NAME_MAX);
	}
	free(e);
	return hits == 1 ? QUEUE_OK : QUEUE_E_NOT_FOUND;
}

enum queue_err queue_find(const char *queue_dir, const char *id, struct queue_job *out,
			  struct queue_state *state)
{
	char name[JOB_NAME_MAX], dir_path[PATH_MAX];
	struct queue_state st;
	struct queue_job j;
	struct qdir q;
	enum queue_err rc = qdir_open(queue_dir, &q);

	if (rc)
		goto out;
	rc = job_match(&q, id, name);
	if (rc)
		goto out;
	if (path_join(dir_path, sizeof(dir_path), q.path, JOBS_DIR) == -1) {
		rc = QUEUE_E_IO;
		goto out;
	}
	rc = job_load(q.jobs, dir_path, name, &j, &st);
	if (rc)
		goto out;
	if (out)
		*out = j;
	if (state)
		*state = st;
out:
	qdir_close(&q);
	return rc;
}

enum queue_err queue_state_save(const struct queue_job *job, const struct queue_state *st)
{
	enum queue_err rc;
	json_t *o;
	int dfd;

	if (!job || !st)
		return QUEUE_E_ARG;
	o = state_json(job, st, &rc);
	if (!o)
		return rc;
	/*
	 * A job cancelled or removed meanwhile is no longer at job->dir: QUEUE_E_NOT_FOUND tells
	 * the deliverer to stop. A save racing the rename lands in the moved directory, harmlessly.
	 */
	dfd = fsio_dir_open(AT_FDCWD, job->dir);
	if (dfd == -1) {
		json_decref(o);
		return errno == ENOENT ? QUEUE_E_NOT_FOUND : errno_err(errno);
	}
	rc = json_store(dfd, STATE_JSON, o);
	fsio_close(dfd);
	return rc;
}

int queue_data_open(const struct queue_job *job)
{
	char path[PATH_MAX + 8];
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/" DATA_NAME, job->dir) >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	do
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	while (fd == -1 && errno == EINTR);
	return fd;
}

/*
 * Moves parent/name into tmp/ (fsync of parent), then deletes it there. A crash after the
 * rename leaves a leftover that queue_open removes. The caller holds the shared lock on tmp/.
 */
static enum queue_err job_discard_locked(struct qdir *q, int parent, const char *name)
{
	char tmp_name[TMP_NAME_MAX];

	snprintf(tmp_name, sizeof(tmp_name), "rm-%s", name);
	if (renameat(parent, name, q->tmp, tmp_name) == -1)
		return errno == ENOENT ? QUEUE_E_NOT_FOUND : errno_err(errno);
	if (fsio_fsync(parent) == -1)
		return errno_err(errno);
	/* The job is gone from the queue; a failure below leaves only a leftover to clean. */
	if (tree_remove(q->tmp, tmp_name, REMOVE_DEPTH) == -1)
		log_warn("queue.remove", "%s/" TMP_DIR "/%s: %s; removed later", q->path, tmp_name,
			 strerror(errno));
	else
		fsio_fsync(q->tmp);
	return QUEUE_OK;
}

static enum queue_err job_discard(struct qdir *q, int parent, const char *name)
{
	enum queue_err rc;

	if (lock_fd(q->tmp, LOCK_SH) == -1)
		return errno_err(errno);
	rc = job_discard_locked(q, parent, name);
	lock_fd(q->tmp, LOCK_UN);
	return rc;
}

static enum queue_err job_check(const struct queue_job *job, char name[JOB_NAME_MAX])
{
	char uuid[UUID_LEN + 1];

	if (!job || job->seq == 0 ||
	    jobid_client_parse(job->job_id, strnlen(job->job_id, UUID_LEN + 1), uuid) ||
	    strcmp(uuid, job->job_id))
		return QUEUE_E_ARG;
	job_name(name, job->seq, job->job_id);
	return QUEUE_OK;
}

/* Deletes job's directory from jobs/ (cancelled 0) or cancelled/ (cancelled 1). */
static enum queue_err job_remove_from(const char *queue_dir, const struct queue_job *job,
				      int cancelled)
{
	char name[JOB_NAME_MAX];
	struct qdir q;
	enum queue_err rc = job_check(job, name);

	if (rc)
		return rc;
	rc = qdir_open(queue_dir, &q);
	if (!rc)
		rc = job_discard(&q, cancelled ? q.cancelled : q.jobs, name);
	qdir_close(&q);
	return rc;
}

enum queue_err queue_remove(const char *queue_dir, const struct queue_job *job)
{
	return job_remove_from(queue_dir, job, 0);
}

enum queue_err queue_cancel_done(const char *queue_dir, const struct queue_job *job)
{
	return job_remove_from(queue_dir, job, 1);
}

enum queue_err queue_cancel(const char *queue_dir, const char *id, struct queue_job *out,
			    struct queue_state *state)
{
	char name[JOB_NAME_MAX], dir_path[PATH_MAX];
	struct queue_state st;
	struct queue_job j;
	struct qdir q;
	enum queue_err rc = qdir_open(queue_dir, &q);

	if (rc)
		goto out;
	rc = job_match(&q, id, name);
	if (rc)
		goto out;
	if (renameat(q.jobs, name, q.cancelled, name) == -1) {
		rc = errno == ENOENT ? QUEUE_E_NOT_FOUND : errno_err(errno);
		goto out;
	}
	if (fsio_fsync(q.cancelled) == -1 || fsio_fsync(q.jobs) == -1) {
		rc = errno_err(errno);
		goto out;
	}
	if (path_join(dir_path, sizeof(dir_path), q.path, CANCELLED_DIR) == -1) {
		rc = QUEUE_E_IO;
		goto out;
	}
	rc = job_load(q.cancelled, dir_path, name, &j, &st);
	if (rc == QUEUE_E_DAMAGED) {
		/* Cancelled all the same: a damaged job has nothing to terminate; drop it. */
		job_discard(&q, q.cancelled, name);
		goto out;
	}
	if (rc)
		goto out;
	if (out)
		*out = j;
	if (state)
		*state = st;
out:
	qdir_close(&q);
	return rc;
}

int queue_lock_deliver(const char *queue_dir)
{
	enum queue_err rc;
	struct qdir q;
	int fd;

	rc = qdir_open(queue_dir, &q);
	if (rc) {
		if (rc == QUEUE_E_ARG)
			errno = EINVAL;
		return -1;
	}
	do
		fd = openat(q.root, DELIVER_LOCK, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	while (fd == -1 && errno == EINTR);
	qdir_close(&q);
	if (fd == -1)
		return -1;
	if (lock_fd(fd, LOCK_EX | LOCK_NB) == -1) {
		fsio_close(fd);
		return -1;
	}
	return fd;
}

/* ---- network.json ---- */

enum queue_err queue_network_save(const char *queue_dir, const struct queue_network *n)
{
	enum queue_err rc;
	struct qdir q;
	json_t *o;

	if (!n)
		return QUEUE_E_ARG;
	rc = qdir_open(queue_dir, &q);
	if (rc)
		return rc;
	o = json_pack("{s:i, s:b, s:I, s:I, s:i}", "version", JSON_VERSION, "online",
		      n->online != 0, "checked_ms", (json_int_t)n->checked_ms, "next_ms",
		      (json_int_t)n->next_ms, "pid", n->pid);
	if (!o) {
		rc = QUEUE_E_NOMEM;
		goto out;
	}
	if ((rc = json_set_str(o, "location", n->location, sizeof(n->location))) ||
	    (rc = json_set_str(o, "address", n->address, sizeof(n->address))) ||
	    (rc = json_set_str(o, "message", n->message, sizeof(n->message)))) {
		json_decref(o);
		goto out;
	}
	rc = json_store(q.root, NETWORK_JSON, o);
out:
	qdir_close(&q);
	return rc;
}

enum queue_err queue_network_load(const char *queue_dir, struct queue_network *n)
{
	const char *location, *address, *message;
	size_t location_n, address_n, message_n;
	json_int_t checked, next;
	struct queue_network v;
	json_error_t jerr;
	int version, online, pid;
	json_t *o = NULL;
	struct qdir q;
	enum queue_err rc = qdir_open(queue_dir, &q);

	if (rc)
		return rc;
	rc = json_read(q.root, NETWORK_JSON, &o);
	if (rc)
		goto out;
	memset(&v, 0, sizeof(v));
	rc = QUEUE_E_DAMAGED;
	if (json_unpack_ex(o, &jerr, JSON_STRICT, "{s:i, s:b, s:s%, s:s%, s:s%, s:I, s:I, s:i}",
			   "version", &version, "online", &online, "location", &location,
			   &location_n, "address", &address, &address_n, "message", &message,
			   &message_n, "checked_ms", &checked, "next_ms", &next, "pid", &pid) ||
	    version != JSON_VERSION ||
	    field_copy(v.location, sizeof(v.location), location, location_n) ||
	    field_copy(v.address, sizeof(v.address), address, address_n) ||
	    field_copy(v.message, sizeof(v.message), message, message_n)) {
		log_warn("queue.damaged", "%s/" NETWORK_JSON ": not the expected members", q.path);
		goto out;
	}
	v.online = online;
	v.checked_ms = checked;
	v.next_ms = next;
	v.pid = pid;
	*n = v;
	rc = QUEUE_OK;
out:
	json_decref(o);
	qdir_close(&q);
	return rc;
}

/* ---- submission ---- */

/* The largest stored size worth keeping compressed: 90 % of size, without overflow. */
static uint64_t keep_limit(uint64_t size)
{
	return size / 10 * 9 + size % 10 * 9 / 10;
}

/* One pass over the document: read from offset 0, hash, and copy or compress into dst. */
struct pass {
	int src, dst;
	const char *path;     /* the document, for messages */
	uint64_t size;        /* its size at fstat: it must not change */
	int level;            /* zstd level; 0: copy */
	uint64_t limit;       /* with level: give up once the output exceeds this */
	unsigned char *in;    /* BLOCK bytes */
	char *detail;
	size_t detail_cap;
	/* results */
	unsigned char sha256[DIGEST_SHA256_LEN];
	uint64_t stored;
	int too_big;          /* compression gave up: the output would not save 10 % */
};

static enum queue_err pass_write(struct pass *p, const void *buf, size_t len)
{
	if (fsio_write_all(p->dst, buf, len) == -1) {
		int saved = errno;

		detail_set(p->detail, p->detail_cap, "queue: writing the job's data: %s",
			   strerror(saved));
		return errno_err(saved);
	}
	p->stored += len;
	return QUEUE_OK;
}

static enum queue_err zstd_err(struct pass *p, size_t r)
{
	detail_set(p->detail, p->detail_cap, "zstd: %s", ZSTD_getErrorName(r));
	return QUEUE_E_NOMEM;
}

static enum queue_err pass_run(struct pass *p)
{
	size_t out_cap = ZSTD_CStreamOutSize(), r;
	enum queue_err rc = QUEUE_E_NOMEM;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char *outb = NULL;
	ZSTD_CCtx *z = NULL;
	uint64_t total = 0;
	unsigned md_len;

	p->stored = 0;
	p->too_big = 0;
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		goto out;
	if (p->level) {
		z = ZSTD_createCCtx();
		outb = malloc(out_cap);
		if (!z || !outb)
			goto out;
		r = ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, p->level);
		if (!ZSTD_isError(r))
			r = ZSTD_CCtx_setParameter(z, ZSTD_c_checksumFlag, 1);
		if (!ZSTD_isError(r))
			r = ZSTD_CCtx_setPledgedSrcSize(z, p->size);
		if (ZSTD_isError(r)) {
			rc = zstd_err(p, r);
			goto out;
		}
	}
	if (lseek(p->src, 0, SEEK_SET) == -1)
		goto source;
	for (;;) {
		ssize_t n = read(p->src, p->in, BLOCK);
		ZSTD_inBuffer ib = {p->in, 0, 0};

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto source;
		if (n == 0)
			break;
		total += (uint64_t)n;
		if (total > p->size)
			goto changed;
		if (EVP_DigestUpdate(md, p->in, (size_t)n) != 1)
			goto out;
		if (!z) {
			rc = pass_write(p, p->in, (size_t)n);
			if (rc)
				goto out;
			continue;
		}
		ib.size = (size_t)n;
		while (ib.pos < ib.size) {
			ZSTD_outBuffer ob = {outb, out_cap, 0};

			r = ZSTD_compressStream2(z, &ob, &ib, ZSTD_e_continue);
			if (ZSTD_isError(r)) {
				rc = zstd_err(p, r);
				goto out;
			}
			rc = pass_write(p, outb, ob.pos);
			if (rc)
				goto out;
			if (p->stored > p->limit) {
				/* Not worth it: the caller copies the document instead. */
				p->too_big = 1;
				rc = QUEUE_OK;
				goto out;
			}
		}
	}
	if (total != p->size)
		goto changed;
	if (z) {
		ZSTD_inBuffer ib = {NULL, 0, 0};

		do {
			ZSTD_outBuffer ob = {outb, out_cap, 0};

			r = ZSTD_compressStream2(z, &ob, &ib, ZSTD_e_end);
			if (ZSTD_isError(r)) {
				rc = zstd_err(p, r);
				goto out;
			}
			rc = pass_write(p, outb, ob.pos);
			if (rc)
				goto out;
		} while (r);
		p->too_big = p->stored > p->limit;
	}
	if (EVP_DigestFinal_ex(md, p->sha256, &md_len) != 1 || md_len != DIGEST_SHA256_LEN)
		goto out;
	rc = QUEUE_OK;
	goto out;
source:
	detail_set(p->detail, p->detail_cap, "%s: %s", p->path, strerror(errno));
	rc = QUEUE_E_SOURCE;
	goto out;
changed:
	detail_set(p->detail, p->detail_cap, "%s: changed size while being queued", p->path);
	rc = QUEUE_E_SOURCE;
out:
	if (rc == QUEUE_E_NOMEM && p->detail && !*p->detail)
		detail_set(p->detail, p->detail_cap, "queue: out of memory while compressing");
	ZSTD_freeCCtx(z);
	free(outb);
	EVP_MD_CTX_free(md);
	return rc;
}

/* Opens the document: a non-empty regular file, never blocking on a FIFO or device. */
static enum queue_err source_open(const char *path, int *fd_out, uint64_t *size, char *detail,
				  size_t cap)
{
	struct stat st;
	int fd;

	do
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	while (fd == -1 && errno == EINTR);
	if (fd == -1) {
		detail_set(detail, cap, "%s: %s", path, strerror(errno));
		return errno == ENOMEM ? QUEUE_E_NOMEM : QUEUE_E_SOURCE;
	}
	if (fstat(fd, &st) == -1) {
		detail_set(detail, cap, "%s: %s", path, strerror(errno));
		fsio_close(fd);
		return QUEUE_E_SOURCE;
	}
	if (!S_ISREG(st.st_mode)) {
		detail_set(detail, cap, "%s: %s", path,
			   S_ISDIR(st.st_mode) ? "is a directory" : "is not a regular file");
		fsio_close(fd);
		return QUEUE_E_SOURCE;
	}
	if (st.st_size == 0) {
		detail_set(detail, cap, "%s: is empty", path);
		fsio_close(fd);
		return QUEUE_E_EMPTY;
	}
	/* Regular files ignore O_NONBLOCK, but clear it anyway: reads must wait for the data. */
	if (fcntl(fd, F_SETFL, 0) == -1) {
		detail_set(detail, cap, "%s: %s", path, strerror(errno));
		fsio_close(fd);
		return QUEUE_E_SOURCE;
	}
	*fd_out = fd;
	*size = (uint64_t)st.st_size;
	return QUEUE_OK;
}

/* Fills j->name from o->name or the path's base name, cut at a character. */
static enum queue_err name_pick(const char *path, const char *name, struct queue_job *j,
				char *detail, size_t cap)
{
	enum proto_err prc;
	size_t len;

	if (!name) {
		const char *slash = strrchr(path, '/');

		name = slash ? slash + 1 : path;
		len = strlen(name);
		if (len > META_NAME_MAX) {
			len = META_NAME_MAX;
			/* name[len] is the first byte left out: back up to a character's start. */
			while (len > 0 && ((unsigned char)name[len] & 0xc0) == 0x80)
				len--;
		}
	} else {
		len = strlen(name);
		if (len > META_NAME_MAX) {
			detail_set(detail, cap, "name longer than %d bytes", META_NAME_MAX);
			return QUEUE_E_ARG;
		}
	}
	prc = utf8_check_text(name, len);
	if (prc == PROTO_E_NOMEM)
		return QUEUE_E_NOMEM;
	if (prc) {
		detail_set(detail, cap, "name is not UTF-8 text without control characters");
		return QUEUE_E_ARG;
	}
	memcpy(j->name, name, len);
	j->name[len] = '\0';
	return QUEUE_OK;
}

static enum queue_err format_pick(const char *path, int src, const char *format,
				  struct queue_job *j, char *detail, size_t cap)
{
	unsigned char sniff[QUEUE_SNIFF_LEN];
	const char *found;
	size_t got = 0;

	if (format) {
		if (meta_format_parse(format, strlen(format), j->format, sizeof(j->format))) {
			detail_set(detail, cap, "format \"%.64s\" is not an accepted media type",
				   format);
			return QUEUE_E_FORMAT;
		}
		return QUEUE_OK;
	}
	while (got < sizeof(sniff)) {
		ssize_t n = pread(src, sniff + got, sizeof(sniff) - got, (off_t)got);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			detail_set(detail, cap, "%s: %s", path, strerror(errno));
			return QUEUE_E_SOURCE;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	found = queue_detect_format(sniff, got);
	/* Not recognized: the protocol's catch-all, for the printer to decide (as a driver would). */
	if (!found)
		found = "application/octet-stream";
	memcpy(j->format, found, strlen(found) + 1);
	return QUEUE_OK;
}

/*
 * The next sequence number from seq (under seq.lock, held by the caller), or when seq is
 * missing or unreadable, one above the highest seq in jobs/ and cancelled/.
 */
static enum queue_err seq_take(struct qdir *q, uint64_t *seq)
{
	char buf[32], text[32];
	uint64_t v = 0, hi = 0;
	ssize_t n = -1;
	size_t len;
	int fd;

	do
		fd = openat(q->root, SEQ_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	while (fd == -1 && errno == EINTR);
	if (fd == -1 && errno != ENOENT)
		return errno_err(errno);
	if (fd != -1) {
		do
			n = read(fd, buf, sizeof(buf) - 1);
		while (n == -1 && errno == EINTR);
		fsio_close(fd);
		if (n == -1)
			return errno_err(errno);
		len = (size_t)n;
		if (len && buf[len - 1] == '\n')
			len--;
		for (size_t i = 0; i < len && v != UINT64_MAX; i++) {
			if (!ascii_is_digit(buf[i]) || v > (UINT64_MAX - 9) / 10)
				v = UINT64_MAX;
			else
				v = v * 10 + (uint64_t)(buf[i] - '0');
		}
		if (len == 0 || len > 19 || buf[0] == '0')
			v = UINT64_MAX;
		if (v == UINT64_MAX) {
			log_warn("queue.seq", "%s/" SEQ_NAME ": damaged; continuing after the "
				 "highest queued job", q->path);
			v = 0;
		}
	}
	if (v == 0) {
		int dirs[2] = {q->jobs, q->cancelled};

		for (size_t d = 0; d < 2; d++) {
			struct entry *e = NULL;
			size_t ne = 0;
			enum queue_err rc = entries_read(q, dirs[d], d ? CANCELLED_DIR : JOBS_DIR,
							 &e, &ne);

			if (rc)
				return rc;
			if (ne && e[ne - 1].seq > hi)
				hi = e[ne - 1].seq;
			free(e);
		}
		v = hi + 1;
	}
	len = (size_t)snprintf(text, sizeof(text), "%" PRIu64 "\n", v + 1);
	*seq = v;
	return file_store(q->root, SEQ_NAME, text, len);
}

/*
 * Publishes the complete, fsync'd directory tmp/<sub>: takes the next seq under seq.lock,
 * renames the directory to jobs/<seq>-<uuid> and fsyncs jobs/. The lock spans the rename, so
 * jobs enter jobs/ in seq order.
 */
static enum queue_err job_publish(struct qdir *q, const char *sub, struct queue_job *j)
{
	char name[JOB_NAME_MAX], jobs_path[PATH_MAX];
	enum queue_err rc;
	int lock;

	if (path_join(jobs_path, sizeof(jobs_path), q->path, JOBS_DIR) == -1)
		return QUEUE_E_IO;
	do
		lock = openat(q->root, SEQ_LOCK, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	while (lock == -1 && errno == EINTR);
	if (lock == -1)
		return errno_err(errno);
	if (lock_fd(lock, LOCK_EX) == -1) {
		rc = errno_err(errno);
		goto out;
	}
	rc = seq_take(q, &j->seq);
	if (rc)
		goto out;
	job_name(name, j->seq, j->job_id);
	if (path_join(j->dir, sizeof(j->dir), jobs_path, name) == -1) {
		rc = QUEUE_E_IO;
		goto out;
	}
	if (renameat(q->tmp, sub, q->jobs, name) == -1) {
		rc = errno_err(errno);
		goto out;
	}
	if (fsio_fsync(q->jobs) == -1) {
		int saved = errno;

		/* Not known to be durable: take it back out, so that failure means "not queued". */
		job_discard_locked(q, q->jobs, name);
		errno = saved;
		rc = errno_err(saved);
		goto out;
	}
	fsio_fsync(q->tmp);
out:
	fsio_close(lock); /* releases the flock */
	return rc;
}

enum queue_err queue_submit(const char *queue_dir, const char *path,
			    const struct queue_submit_opts *o, struct queue_job *out,
			    char *err_detail, size_t detail_cap)
{
	static const struct queue_submit_opts defaults;
	char sub[TMP_NAME_MAX];
	struct pass p = {.src = -1, .dst = -1, .path = path};
	struct queue_job j;
	struct qdir q = {.root = -1, .tmp = -1, .jobs = -1, .cancelled = -1};
	enum queue_err rc;
	int dfd = -1, locked = 0, made = 0, level;

	if (err_detail && detail_cap)
		*err_detail = '\0';
	p.detail = err_detail;
	p.detail_cap = detail_cap;
	memset(&j, 0, sizeof(j));
	if (!o)
		o = &defaults;
	level = o->level ? o->level : 3;
	j.copies = o->copies ? o->copies : 1;
	if (!path || !out || j.copies > META_COPIES_MAX || level < 1 || level > 19) {
		detail_set(err_detail, detail_cap, "%s", !path || !out ? "no file given" :
			   j.copies > META_COPIES_MAX ? "copies must be 1..999" :
			   "compression level must be 1..19");
		return QUEUE_E_ARG;
	}
	rc = name_pick(path, o->name, &j, err_detail, detail_cap);
	if (rc)
		return rc;
	rc = source_open(path, &p.src, &p.size, err_detail, detail_cap);
	if (rc)
		return rc;
	rc = format_pick(path, p.src, o->format, &j, err_detail, detail_cap);
	if (rc)
		goto out;
	if (jobid_client_generate(j.job_id) != PROTO_OK) {
		detail_set(err_detail, detail_cap, "queue: no random numbers for a job id");
		rc = QUEUE_E_IO;
		goto out;
	}
	p.in = malloc(BLOCK);
	if (!p.in) {
		rc = QUEUE_E_NOMEM;
		goto out;
	}
	rc = qdir_open(queue_dir, &q);
	if (rc)
		goto io;
	if (lock_fd(q.tmp, LOCK_SH) == -1)
		goto io_errno;
	locked = 1;
	snprintf(sub, sizeof(sub), "sub-%s", j.job_id);
	if (mkdirat(q.tmp, sub, 0700) == -1)
		goto io_errno;
	made = 1;
	dfd = fsio_dir_open(q.tmp, sub);
	if (dfd == -1)
		goto io_errno;
	do
		p.dst = openat(dfd, DATA_NAME, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	while (p.dst == -1 && errno == EINTR);
	if (p.dst == -1)
		goto io_errno;

	p.level = o->compress ? level : 0;
	p.limit = keep_limit(p.size);
	rc = pass_run(&p);
	if (rc)
		goto out;
	j.encoding = p.level ? QUEUE_ENC_ZSTD : QUEUE_ENC_IDENTITY;
	if (p.level && p.too_big) {
		/* Compression saves less than 10 %: store the document as it is. */
		if (ftruncate(p.dst, 0) == -1 || lseek(p.dst, 0, SEEK_SET) == -1)
			goto io_errno;
		p.level = 0;
		rc = pass_run(&p);
		if (rc)
			goto out;
		j.encoding = QUEUE_ENC_IDENTITY;
	}
	j.size = p.size;
	j.stored_size = p.stored;
	memcpy(j.sha256, p.sha256, sizeof(j.sha256));
	j.submitted_at_ms = clock_unix_ms();
	if (fsio_fsync(p.dst) == -1)
		goto io_errno;
	rc = json_store(dfd, JOB_JSON, job_json(&j)); /* its dfd fsync covers data's entry */
	if (rc)
		goto io;
	rc = job_publish(&q, sub, &j);
	if (rc)
		goto io;
	made = 0;
	*out = j;
	goto out;
io_errno:
	rc = errno_err(errno);
io:
	/* Callees keep errno for QUEUE_E_IO, so it names the failing call's reason. */
	detail_set(err_detail, detail_cap, "queue %s: %s", queue_dir,
		   rc == QUEUE_E_IO ? strerror(errno) : queue_strerror(rc));
out:
	if (rc && err_detail && detail_cap && !*err_detail)
		detail_set(err_detail, detail_cap, "%s", queue_strerror(rc));
	fsio_close(p.dst);
	fsio_close(p.src);
	fsio_close(dfd);
	if (made && tree_remove(q.tmp, sub, REMOVE_DEPTH) == -1)
		log_warn("queue.submit", "%s/" TMP_DIR "/%s: %s; removed later", q.path, sub,
			 strerror(errno));
	if (locked)
		lock_fd(q.tmp, LOCK_UN);
	qdir_close(&q);
	free(p.in);
	return rc;
}
