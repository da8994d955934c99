/* spool: the data-center server's durable job store in one directory. */
#ifndef FSG_SERVER_SPOOL_H
#define FSG_SERVER_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "proto/digest.h"
#include "proto/jobid.h"
#include "proto/meta.h"
#include "proto/owner.h"

/*
 * Layout under dir (all on one filesystem so renames are atomic):
 *   uploads/<job-id>/data      bytes received so far, as sent (a zstd job stays compressed);
 *                              its size is the upload's offset
 *   uploads/<job-id>/job.json  owner, metadata (encoding, and size: the document's bytes),
 *                              length, digest (hex), sequence, times: written at creation,
 *                              replaced atomically once more at commit (adding committed_ms,
 *                              sha256 of the document and stored_size); always via
 *                              job.json.tmp, fsync, rename. A job.json without size or
 *                              stored_size (written before zstd existed) is an identity job.
 *   ready/<job-id>/            a committed job: the same two files, moved here by one rename
 *                              of the directory after fsync, so ready/ never holds half a job
 *   ready/<job-id>/hooked      present once the on-commit hook has run for the job
 *   idem/<owner-hash>-<uuid>   symlink to <job-id>: the (owner, client job id) claim, made with
 *                              symlink(2), which fails if it exists, so a job id is never
 *                              created twice, even by racing requests; it stays after release
 *                              or expiry of a committed job (dangling, its mtime set to the
 *                              release time) as a tombstone until the retention time passes.
 *                              A termination, digest mismatch or expiry of a receiving upload
 *                              removes it (the pair is forgotten, PROTOCOL.md 7.4).
 *   trash/<job-id>/            a job being removed: renamed here first, so removal is atomic;
 *                              emptied at spool_open
 *   tmp/<job-id>-XXXXXX        a zstd job decoded for the on-commit hook (spool_decode_temp);
 *                              the hook removes it, spool_open empties tmp/ after a crash
 * The claim is the last step of a creation: an upload or job directory that no claim names is
 * half-created (or half-deleted) and spool_open removes it. Every answer about an offset
 * reports bytes that are on disk: each write_end fdatasyncs. A crash during a commit leaves the
 * job either committed or receiving with offset == length; the latter commits on the next
 * spool_write_begin at that offset followed by spool_write_end with no bytes (a PATCH with an
 * empty body). Bytes of a request with Upload-Checksum that a crash (not an error) cut short
 * cannot be told apart from verified ones and stay; the whole-job digest still guards them.
 *
 * A zstd job (meta.encoding) is stored as sent: length, offsets and Upload-Checksum count its
 * compressed bytes. Its commit decodes the data (server/decode.h) and checks that it decodes
 * cleanly to exactly meta.size bytes whose SHA-256 is the Repr-Digest; sha256 and size of a
 * committed job describe the document, never the stored bytes.
 *
 * Discard mode (spool_config.discard, for benchmarks only) keeps the protocol and drops the data:
 * body bytes are hashed (and checksummed) as usual but never written; each request that ends
 * extends data with ftruncate to the new offset, so the file stays sparse and its size is still
 * the offset. No fsync or fdatasync is issued, for data, job.json or directories alike: nothing
 * kept is worth one, and on ext4 the metadata ones alone made a creation and commit 3.4 times as
 * costly in CPU and 8 times in wall time. Committed jobs hold zeros (the release API and the hook
 * see zeros). An upload resumed after a restart has lost its running hash: its commit reads zeros
 * back and fails its Repr-Digest. Lengths count against limit_bytes as usual, but the bytes
 * receiving uploads still have to write are not held back from the free space: they never land.
 * zstd jobs, whose commit must decode the data, are refused (SPOOL_E_UNSUPPORTED).
 */

enum spool_err {
	SPOOL_OK = 0,
	SPOOL_E_NOMEM = 1,
	SPOOL_E_IO = 2,          /* unexpected I/O error (logged) */
	SPOOL_E_FULL = 3,        /* spool limit or disk full: 507 */
	SPOOL_E_NOT_FOUND = 4,   /* no such job for this owner: 404 */
	SPOOL_E_CONFLICT = 5,    /* client job id reused with another length or digest: 409 */
	SPOOL_E_OFFSET = 6,      /* Upload-Offset is not the upload's offset: 409 */
	SPOOL_E_TOO_LARGE = 7,   /* bytes past Upload-Length: 413 */
	SPOOL_E_DIGEST = 8,      /* whole job differs from its Repr-Digest; upload discarded: 460 */
	SPOOL_E_CHECKSUM = 9,    /* request's bytes differ from Upload-Checksum; dropped: 460 */
	SPOOL_E_BUSY = 10,       /* another request is writing this upload: 409 (resync) */
	SPOOL_E_NOT_COMMITTED = 11, /* content asked of a job still receiving: 409 */
	SPOOL_E_RELEASED = 12,   /* job id committed, then released/expired: 200 on create */
	SPOOL_E_INVALID = 13,    /* an argument the caller should have checked (owner, ids, meta) */
	SPOOL_E_BUFFER = 14,     /* the caller's buffer is too small */
	SPOOL_E_UNSUPPORTED = 15, /* a zstd job while the spool discards data: 415 */
};

const char *spool_strerror(enum spool_err e);

enum spool_state { SPOOL_RECEIVING = 0, SPOOL_COMMITTED = 1 };

/* What the spool knows of one job; a plain copy, owned by the caller. */
struct spool_job {
	char id[JOBID_LEN + 1];
	char owner[OWNER_MAX + 1];
	struct job_meta meta;
	enum spool_state state;
	uint64_t length;          /* Upload-Length: the bytes stored (compressed for zstd) */
	uint64_t size;            /* the document's bytes: meta.size for zstd, else length */
	uint64_t offset;          /* bytes safely on disk (== length when committed) */
	int has_digest;
	unsigned char digest[DIGEST_SHA256_LEN]; /* Repr-Digest given at creation */
	unsigned char sha256[DIGEST_SHA256_LEN]; /* of the document; valid when committed */
	uint64_t sequence;        /* Fs-Sequence */
	int64_t created_ms, committed_ms;
	int64_t expires_ms;       /* receiving: created + upload expiry; committed: + retention */
};

struct spool_config {
	const char *dir;
	uint64_t limit_bytes;       /* most bytes the spool may hold (lengths count); 0: none */
	uint64_t min_free_bytes;    /* keep at least this much free on the filesystem */
	int64_t upload_expiry_ms;   /* abandoned partial uploads go after this (default 24 h) */
	int64_t retention_ms;       /* committed jobs not released go after this (default 7 d) */
	int discard;                /* benchmarks only: store no body byte, fsync nothing (above) */
};

/* What spool_open found; see spool_recovery. */
struct spool_recovery {
	size_t receiving;       /* partial uploads resumed */
	size_t committed;       /* committed jobs */
	size_t rolled_forward;  /* commits a crash interrupted after job.json, finished at open */
	size_t dropped;         /* half-created, half-deleted or damaged job directories removed */
};

struct spool;
struct spool_write;

/*
 * Opens (creating the subdirectories if needed) and recovers the spool: empties trash/, scans
 * ready/ and uploads/, finishes commits a crash interrupted after job.json, drops half-created,
 * half-deleted and damaged job directories (a damaged one's claim too, so that its pair can be
 * created again), and rebuilds the in-memory index. Thread-safe after
 * this returns: every function takes the spool's lock for index work only, never across I/O on
 * job data. upload_expiry_ms and retention_ms <= 0 take the defaults. A partial upload's
 * whole-job hash is not saved: after a restart it is recomputed from the data file when the
 * upload commits. Names in the subdirectories that are not job ids are left alone. Returns NULL
 * with *err set (SPOOL_E_INVALID, SPOOL_E_NOMEM, SPOOL_E_IO).
 */
struct spool *spool_open(const struct spool_config *cfg, enum spool_err *err);

/* Frees s (accepts NULL). Every writer must have ended before. Touches no file. */
void spool_free(struct spool *s);

/* Copies what spool_open found and did, for the caller to log. */
void spool_recovery(struct spool *s, struct spool_recovery *out);

/*
 * Creates an upload for (owner, meta->job_id), or finds the existing one: *existed is 1 when it
 * did, and *out describes it (RECEIVING with its offset, or COMMITTED). Errors: SPOOL_E_CONFLICT
 * (existing job with another length, or another digest when both are known), SPOOL_E_RELEASED
 * (tombstone: the job was committed and has left; *out then holds its id, the owner, the
 * length and size asked for, state COMMITTED, and nothing else), SPOOL_E_FULL (length does not
 * fit the limit or the free space), SPOOL_E_IO, SPOOL_E_INVALID (owner or meta malformed, a
 * zstd meta without a size or an identity one with one, length or sequence above INT64_MAX),
 * SPOOL_E_UNSUPPORTED (a zstd meta while the spool discards data).
 * length 0 commits at once (SPOOL_E_DIGEST when digest is not that of no bytes, or for a zstd
 * job, which holds at least one frame: nothing kept).
 * The free space counted is the filesystem's minus min_free_bytes minus the bytes receiving
 * uploads still have to write. An existing job is reported without waiting for its writer; a
 * racing creation of the same pair waits until the first one has finished. Metadata of a
 * repeated creation is ignored: the first one's is kept.
 */
enum spool_err spool_create(struct spool *s, const char *owner, const struct job_meta *meta,
			    uint64_t length, const unsigned char *digest, uint64_t sequence,
			    struct spool_job *out, int *existed);

/* Copies the job's description. Errors: SPOOL_E_NOT_FOUND (also for another owner's job). */
enum spool_err spool_get(struct spool *s, const char *owner, const char *id, struct spool_job *out);

/*
 * Starts writing at offset to a receiving upload of owner. Only one writer per upload at a
 * time (SPOOL_E_BUSY). Errors: SPOOL_E_NOT_FOUND, SPOOL_E_OFFSET (with *out_offset set to the
 * real offset when out_offset is not NULL), SPOOL_E_BUSY, SPOOL_E_IO, SPOOL_E_UNSUPPORTED (a
 * zstd upload created before the spool was opened in discard mode). checksum (NULL: none) is
 * the request's Upload-Checksum (DIGEST_SHA256_LEN bytes), verified at spool_write_end.
 * A committed job answers SPOOL_E_OFFSET with *out_offset = its length, whatever offset is:
 * the caller answers 204 itself to an empty PATCH at that offset (PROTOCOL.md 8.4). A
 * receiving upload with offset == length (after a crash in its commit) accepts a writer at
 * that offset; spool_write_end with no bytes then commits it.
 */
enum spool_err spool_write_begin(struct spool *s, const char *owner, const char *id,
				 uint64_t offset, const unsigned char *checksum,
				 struct spool_write **out, uint64_t *out_offset);

/*
 * Appends len bytes (written through to the file, never buffered here). Errors:
 * SPOOL_E_TOO_LARGE (past Upload-Length: nothing of this call is written, and the request's
 * earlier bytes are dropped when it ends, as PROTOCOL.md 8.4 says), SPOOL_E_FULL
 * (ENOSPC/EDQUOT: what fit is kept), SPOOL_E_IO. After an error the writer returns that error
 * again and only accepts spool_write_end or spool_write_abort.
 */
enum spool_err spool_write(struct spool_write *w, const void *buf, size_t len);

/*
 * Ends a request whose body arrived whole: verifies the Upload-Checksum (mismatch: truncates
 * back to the starting offset, SPOOL_E_CHECKSUM), fdatasyncs, and when the offset reached the
 * length commits the job (digest check: mismatch discards the whole upload, SPOOL_E_DIGEST;
 * fsync of file and job.json, rename into ready/, fsync of both directories). Frees w. *out
 * describes the job afterwards (on errors too, when the job still exists; out may be NULL).
 * After an error of spool_write, returns that error: bytes are kept (SPOOL_E_FULL, SPOOL_E_IO)
 * or dropped (SPOOL_E_TOO_LARGE, or any error when an Upload-Checksum was given), and nothing
 * commits. SPOOL_E_IO from the commit itself leaves the job receiving with offset == length.
 */
enum spool_err spool_write_end(struct spool_write *w, struct spool_job *out);

/*
 * As spool_write_end. When it returns SPOOL_E_DIGEST and why is not NULL, *why is a static
 * text saying what was wrong, for the problem detail: the digest, or for a zstd job the
 * stream itself (decode_strerror: corrupt, truncated, trailing bytes, too long or too short).
 */
enum spool_err spool_write_end_why(struct spool_write *w, struct spool_job *out,
				   const char **why);

/*
 * Ends a request cut short (client gone): keeps and fdatasyncs what was written, frees w. With
 * an Upload-Checksum, or after SPOOL_E_TOO_LARGE, the request's bytes are dropped instead
 * (they cannot be verified, PROTOCOL.md 8.4). Never commits.
 */
void spool_write_abort(struct spool_write *w);

/*
 * Removes a job of owner: a receiving upload (terminated), or a committed job not yet released
 * (cancelled by its owner). The (owner, client job id) pair is forgotten. Errors:
 * SPOOL_E_NOT_FOUND, SPOOL_E_BUSY (a writer, or another removal, holds it), SPOOL_E_IO.
 */
enum spool_err spool_delete(struct spool *s, const char *owner, const char *id);

/*
 * Lists the committed jobs (of owner, or of everyone when owner is NULL) in ascending sequence.
 * Ties (equal sequences) are ordered by job id. *out is a malloc'd array the caller frees (NULL
 * when *n is 0); *n its length. Errors: SPOOL_E_NOMEM.
 */
enum spool_err spool_list(struct spool *s, const char *owner, struct spool_job **out, size_t *n);

/*
 * Opens a committed job's data read-only for the release API. Returns an fd the caller closes
 * and fills *out. The data is as stored: a zstd job's is decoded by the caller (decode_new
 * with out->length and out->size). Errors: SPOOL_E_NOT_FOUND, SPOOL_E_NOT_COMMITTED.
 */
enum spool_err spool_open_data(struct spool *s, const char *id, int *fd, struct spool_job *out);

/*
 * Releases (after printing) a committed job: removes it, keeps the tombstone. *out (may be
 * NULL) describes the job as it was. Errors: SPOOL_E_NOT_FOUND, SPOOL_E_NOT_COMMITTED,
 * SPOOL_E_BUSY, SPOOL_E_IO.
 */
enum spool_err spool_release(struct spool *s, const char *id, struct spool_job *out);

/*
 * Path of a committed job's data file and job.json, for the on-commit hook; either may be NULL.
 * Errors: SPOOL_E_NOT_FOUND, SPOOL_E_NOT_COMMITTED, SPOOL_E_BUFFER (cap too small).
 */
enum spool_err spool_paths(struct spool *s, const char *id, char *data, char *json, size_t cap);

/*
 * Decodes a committed zstd job into a new file tmp/<id>-XXXXXX (mode 0600) for the on-commit
 * hook, checking its size and SHA-256 again, and writes that file's absolute path into path
 * (cap bytes). The caller removes the file (unlink) once done with it. Memory is bounded as in
 * decode_read; the disk space is the document's size, outside spool_limit. Errors:
 * SPOOL_E_NOT_FOUND, SPOOL_E_NOT_COMMITTED, SPOOL_E_INVALID (not a zstd job), SPOOL_E_BUFFER,
 * SPOOL_E_FULL, SPOOL_E_NOMEM, SPOOL_E_IO, SPOOL_E_DIGEST (the stored data no longer decodes to
 * the committed document). On an error no file is left.
 */
enum spool_err spool_decode_temp(struct spool *s, const char *id, char *path, size_t cap);

/* Marks the on-commit hook as done for a committed job (creates ready/<id>/hooked, fsync'd). */
enum spool_err spool_mark_hooked(struct spool *s, const char *id);

/*
 * Lists committed jobs whose hook has not run (after a restart), in ascending sequence. Caller
 * frees *out (NULL when *n is 0). Errors: SPOOL_E_NOMEM.
 */
enum spool_err spool_unhooked(struct spool *s, struct spool_job **out, size_t *n);

/*
 * Removes receiving uploads past their expiry and committed jobs past their retention, and
 * tombstones past the retention (counted from their release). Returns how many jobs went
 * (tombstones are not counted). Skips uploads being written. A committed job that expires
 * leaves a tombstone; a receiving one is forgotten. now_ms is Unix time in ms. gone_fn (may be
 * NULL) is called with arg and a copy of each removed job, outside the spool's lock, so the
 * caller can drop its held-index entry.
 */
typedef void spool_gone_fn(void *arg, const struct spool_job *job);
size_t spool_expire(struct spool *s, int64_t now_ms, spool_gone_fn *gone_fn, void *arg);

/* Figures for the pool announcement. */
/*
 * min(limit - reserved, filesystem free - min_free - still to write), at least 0; in discard
 * mode nothing is still to write.
 */
uint64_t spool_free_bytes(struct spool *s);
unsigned spool_active(struct spool *s);     /* uploads receiving with a writer right now */

#endif
