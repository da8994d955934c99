/* fs_client: runs the real fs-client binary for a test, and reads back what servers hold. */
#ifndef FSG_TEST_FS_CLIENT_H
#define FSG_TEST_FS_CLIENT_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

#include "tests/lib/fs_server.h"

struct fs_client {
	char *dir;             /* temp dir: client.conf, locations.config, token, queue/, logs */
	char queue_dir[4200];
	char conf[4200];
	char token_file[4200];
	char locations_file[4200];
	char log[4200];        /* stderr of every command and of run */
	pid_t run_pid;         /* fs-client run, or 0 */
};

/*
 * Writes client.conf (queue_dir, locations_file, token_file, ca_file, retry_min 200ms,
 * retry_max 2s, connect_timeout 2s, progress lines, log_level info) plus the extra
 * "name = value" lines, and locations.config with locations_json. No token file yet.
 * Returns NULL with the reason on stderr.
 */
struct fs_client *fs_client_new(const char *ca_file, const char *locations_json,
				const char *extra_config);

/* Writes the token file (token plus a newline). 0 or -1. */
int fs_client_set_token(struct fs_client *c, const char *token);

/* Rewrites locations.config. 0 or -1. */
int fs_client_set_locations(struct fs_client *c, const char *json);

/*
 * Runs fs-client --config=CONF followed by the NULL-terminated arguments and waits for it
 * (timeout_ms at most, then SIGKILL). Its stdout goes to *out (malloc'd, NUL-terminated) when
 * out is not NULL; its stderr is appended to c->log. Returns the exit code, or -1.
 */
int fs_client_cmd(struct fs_client *c, char **out, int timeout_ms, ...)
	__attribute__((sentinel));

/* fs-client submit [args...] FILE: writes the printed job id (37 bytes). 0 or -1. */
int fs_client_submit(struct fs_client *c, const char *path, char id[37]);

/* The parsed output of status --json (decref it), or NULL. */
json_t *fs_client_status(struct fs_client *c);

/* Number of jobs status shows, or -1. */
long fs_client_queued(struct fs_client *c);

/* Starts fs-client run in the background (stderr to c->log). 0 or -1. */
int fs_client_run_start(struct fs_client *c);

/* Stops run: SIGTERM (SIGKILL after grace_ms). Returns its wait status or -1. */
int fs_client_run_stop(struct fs_client *c, int grace_ms);

/* Polls status every 100 ms until no job is queued (timeout_ms at most). 0 or -1. */
int fs_client_wait_empty(struct fs_client *c, int timeout_ms);

/* Stops run if running, removes the directory, frees c. Accepts NULL. */
void fs_client_free(struct fs_client *c);

/*
 * For whoever reads a failed test: writes the end of c's log and its status screen to stderr.
 * Accepts NULL.
 */
void fs_client_report(struct fs_client *c);

/* The stderr log so far (malloc'd). */
char *fs_client_log(const struct fs_client *c);

/*
 * The owner's committed jobs on server s, through its release API: the "jobs" array of
 * GET /v1/release/owners/{fs-owner}/jobs (decref it), or NULL.
 */
json_t *fs_server_held(const struct fs_server *s, const char *owner);

/* The content the release API hands out for a server job id (malloc'd), or NULL. */
char *fs_server_content(const struct fs_server *s, const char *server_job_id, size_t *len);

/* Writes len bytes of a deterministic pattern (random-looking when noisy) to path. 0 or -1. */
int fs_client_make_file(const char *path, size_t len, unsigned seed, int noisy);

/* Reads a whole binary file (malloc'd) and its length, or NULL. */
char *fs_client_read_file(const char *path, size_t *len);

#endif
