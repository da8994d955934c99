/* hook: runs the configured on-commit command for each committed job, off the request path. */
#ifndef FSG_SERVER_HOOK_H
#define FSG_SERVER_HOOK_H

#include <stdint.h>

#include "server/spool.h"

struct hook;

/*
 * Starts the hook thread for command (run as /bin/sh -c command) with a per-run timeout
 * (timeout_ms > 0; its process group is killed with SIGKILL after it, so what it started goes
 * too). Each run gets only the environment FSG_JOB_ID, FSG_JOB_FILE (the document as the user
 * queued it: the data file itself, or for a zstd job a decoded copy in the spool's tmp/ that
 * is removed when the run ends), FSG_JOB_META (job.json), FSG_JOB_OWNER, FSG_JOB_NAME,
 * FSG_JOB_FORMAT, FSG_JOB_COPIES, FSG_JOB_SEQUENCE, FSG_JOB_SIZE and FSG_JOB_SHA256 (of the
 * document, lowercase hex) and the server's PATH; values come from clients, so the command
 * must quote them ("$FSG_JOB_NAME"). stdin is /dev/null, stdout and stderr are the server's,
 * no other descriptor is inherited, signals are at their defaults. Its exit status is logged;
 * the job is never touched besides being marked hooked, whatever the outcome, so each job's
 * hook runs once (at least once across a crash: jobs committed but not marked are queued
 * again at start, see spool_unhooked; a command that could not even be started, or a zstd job
 * that could not be decoded, leaves the job unmarked too). The hook thread reaps its own
 * children with waitpid: the program must not set SIGCHLD to SIG_IGN. Returns NULL when
 * command is NULL or empty (no hook), timeout_ms is not positive, s is NULL, or the thread
 * cannot start.
 */
struct hook *hook_start(const char *command, int64_t timeout_ms, struct spool *s);

/* Queues a committed job. Thread-safe; never blocks on the command. Accepts NULL h. */
void hook_queue(struct hook *h, const char *job_id);

/* Runs what is queued (bounded by the timeout per run), stops the thread, frees h. Accepts NULL. */
void hook_stop(struct hook *h);

#endif
