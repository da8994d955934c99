/* queue: fs-client's durable local queue of print jobs, one directory per job. */
#ifndef FSG_CLIENT_QUEUE_H
#define FSG_CLIENT_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/digest.h"
#include "proto/jobid.h"
#include "proto/meta.h"

/*
 * Layout under the queue directory (created on first use, mode 0700):
 *   seq                     next sequence number (decimal); changed only under flock(seq.lock)
 *   seq.lock                lock file for seq
 *   deliver.lock            flock'ed by the one process delivering (deliver or run)
 *   network.json            the deliverer's view of the network (queue_network_*)
 *   tmp/                    submissions being written; leftovers are removed by queue_open
 *   jobs/<seq:010>-<uuid>/  one queued job:
 *       job.json            what was submitted; written once (tmp file, fsync, rename)
 *       data                the bytes to upload: the document, or its zstd compression
 *       state.json          delivery state (queue_state_save: tmp file, fsync, rename)
 *   cancelled/              jobs removed by queue_cancel whose upload the deliverer still
 *                           has to terminate
 * A job enters jobs/ by one rename(2) of a complete, fsync'd directory, followed by an fsync of
 * jobs/: a job is either fully queued or absent, whenever the process dies.
 */

enum queue_err {
	QUEUE_OK = 0,
	QUEUE_E_IO,        /* a file system call failed (errno kept where it helps) */
	QUEUE_E_NOMEM,
	QUEUE_E_SOURCE,    /* the file to submit cannot be read, or is not a regular file */
	QUEUE_E_EMPTY,     /* the file to submit is empty */
	QUEUE_E_FORMAT,    /* the format given is not an accepted one */
	QUEUE_E_ARG,       /* a bad name, copies or format argument */
	QUEUE_E_NOT_FOUND, /* no queued job with that id */
	QUEUE_E_DAMAGED,   /* a job directory whose files do not parse */
};

const char *queue_strerror(enum queue_err e);

enum queue_encoding {
	QUEUE_ENC_IDENTITY = 0,
	QUEUE_ENC_ZSTD,
};

/* What was submitted (job.json); never changes after submission. */
struct queue_job {
	char job_id[UUID_LEN + 1];        /* client job id: lowercase canonical UUID v4 */
	uint64_t seq;                     /* submission order, from 1 */
	char name[META_NAME_MAX + 1];     /* document name ("" allowed) */
	char format[META_FORMAT_MAX + 1]; /* accepted media type (meta.h list) */
	unsigned copies;                  /* 1..META_COPIES_MAX */
	int64_t submitted_at_ms;          /* Unix ms */
	uint64_t size;                    /* bytes of the original document */
	unsigned char sha256[DIGEST_SHA256_LEN]; /* SHA-256 of the original document */
	enum queue_encoding encoding;     /* how data is stored (and uploaded) */
	uint64_t stored_size;             /* bytes of data: the Upload-Length */
	char dir[4096];                   /* absolute path of the job's directory */
};

enum queue_phase {
	QUEUE_PHASE_QUEUED = 0, /* not yet created at any server */
	QUEUE_PHASE_UPLOADING,  /* has a Location; offset bytes confirmed or sent */
	QUEUE_PHASE_WAITING,    /* last attempt could not reach a usable server; retried later */
	QUEUE_PHASE_AUTH,       /* refused 401: held until the token changes */
	QUEUE_PHASE_FAILED,     /* refused for good (4xx that retrying cannot fix); held for the user */
	QUEUE_PHASE_DONE,       /* committed at a server; the job leaves the queue right after */
};

const char *queue_phase_name(enum queue_phase p); /* "queued", "uploading", ... */
int queue_phase_parse(const char *s, enum queue_phase *out);

/* Delivery state (state.json); rewritten by the deliverer as the job progresses. */
struct queue_state {
	enum queue_phase phase;
	char base[512];       /* address (https URL) the Location belongs to; "" when none */
	char location[512];   /* Location path from the creation ("/v1/jobs/..."); "" when none */
	uint64_t offset;      /* bytes the server confirmed (HEAD, 204) or, while sending, sent */
	int final_sent;       /* 1 once a request carrying the last byte was sent unanswered */
	uint32_t attempts;    /* failed attempts since the last progress */
	int64_t next_ms;      /* Unix ms before which the job is not retried; 0: now */
	char token_hash[65];  /* AUTH: hex SHA-256 of the refused token; "" otherwise */
	char error[512];      /* last error, one line for people; "" when none */
	int64_t updated_ms;   /* Unix ms of this state */
};

/* Format detection from the first bytes of a document (see queue_detect_format). */
#define QUEUE_SNIFF_LEN 4096

/*
 * Returns the media type the first len bytes of a document announce: "application/pdf"
 * ("%PDF-"), "application/postscript" ("%!PS", or a PJL/UEL header that enters POSTSCRIPT),
 * "application/vnd.hp-pcl" (ESC E, or a PJL/UEL header otherwise), "image/pwg-raster" ("RaS2"),
 * "image/urf" ("UNIRAST"), "text/plain" (well-formed UTF-8 without control characters other than
 * TAB, LF, CR, FF), or NULL when none matches. Static strings.
 */
const char *queue_detect_format(const unsigned char *buf, size_t len);

struct queue_submit_opts {
	const char *name;   /* NULL: the file's base name (cut to META_NAME_MAX at a character) */
	const char *format; /* NULL: detected (application/octet-stream when not); else accepted */
	unsigned copies;    /* 0 means 1 */
	int compress;       /* 1: store zstd when that saves at least 10 %; 0: never */
	int level;          /* zstd level (1..19); 0 means 3 */
};

/*
 * Copies the document at path into the queue: reads it once, hashing it and (with compress)
 * compressing it into tmp/; when the compressed bytes are not at least 10 % smaller, copies it
 * again uncompressed. fsyncs the files and the directory, assigns the next sequence number,
 * renames the directory into jobs/ and fsyncs jobs/. Writes *out (with a fresh UUID v4 from
 * OpenSSL's RAND_bytes) on success. On error nothing is left in jobs/ and *err_detail (may be
 * NULL) gets one line for people.
 */
enum queue_err queue_submit(const char *queue_dir, const char *path,
			    const struct queue_submit_opts *o, struct queue_job *out,
			    char *err_detail, size_t detail_cap);

/*
 * Lists the queued jobs (jobs/ only) in ascending seq. *out is a malloc'd array (free with
 * free()); *n its length. A job directory that does not parse is skipped and logged. States are
 * loaded into states (a parallel malloc'd array) when states is not NULL; a job without
 * state.json gets phase QUEUED.
 */
enum queue_err queue_list(const char *queue_dir, struct queue_job **out, struct queue_state **states,
			  size_t *n);

/* Finds a queued job by client job id (or a unique prefix of at least 8 characters). */
enum queue_err queue_find(const char *queue_dir, const char *id, struct queue_job *out,
			  struct queue_state *state);

/* Writes state.json of job (tmp file, fsync, rename, fsync of the directory). */
enum queue_err queue_state_save(const struct queue_job *job, const struct queue_state *st);

/* Opens job's data file read-only. Returns the fd or -1 (errno set). */
int queue_data_open(const struct queue_job *job);

/*
 * Removes a delivered job: renames its directory out of jobs/ (into tmp/), fsyncs jobs/, then
 * deletes it. After a crash in between, queue_open finishes the deletion.
 */
enum queue_err queue_remove(const char *queue_dir, const struct queue_job *job);

/*
 * Cancels a queued job at the user's request: renames its directory from jobs/ into cancelled/
 * (so no deliverer starts it again) and fsyncs both. The deliverer terminates the upload at its
 * server when it has a Location (queue_cancelled lists them) and then deletes the directory with
 * queue_cancel_done. Writes *out (job and its last state) when not NULL.
 */
enum queue_err queue_cancel(const char *queue_dir, const char *id, struct queue_job *out,
			    struct queue_state *state);

/* Lists cancelled/ like queue_list. */
enum queue_err queue_cancelled(const char *queue_dir, struct queue_job **out,
			       struct queue_state **states, size_t *n);

/* Deletes a cancelled job's directory. */
enum queue_err queue_cancel_done(const char *queue_dir, const struct queue_job *job);

/*
 * Creates the directory layout if missing and removes leftovers of interrupted submissions and
 * removals in tmp/. Every other function calls it first; it is cheap when nothing is left over.
 */
enum queue_err queue_open(const char *queue_dir);

/*
 * Takes deliver.lock without waiting: returns the locked fd (keep it open while delivering), or
 * -1 with errno EWOULDBLOCK when another process delivers.
 */
int queue_lock_deliver(const char *queue_dir);

/* The deliverer's view of the network, for `fs-client status`. */
struct queue_network {
	int online;           /* 1: the last probe found a usable server */
	char location[128];   /* location id in use, or tried last */
	char address[512];    /* address in use, or "" */
	char message[512];    /* e.g. "waiting for network: ..." ; "" when online */
	int64_t checked_ms;   /* Unix ms of the last probe */
	int64_t next_ms;      /* Unix ms of the next attempt; 0 when none is scheduled */
	int pid;              /* pid of the deliverer that wrote it */
};

enum queue_err queue_network_save(const char *queue_dir, const struct queue_network *n);
/* QUEUE_E_NOT_FOUND when the file does not exist yet. */
enum queue_err queue_network_load(const char *queue_dir, struct queue_network *n);

#endif
