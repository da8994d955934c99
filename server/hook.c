/* hook: runs the configured on-commit command for each committed job, off the request path. */
#include "server/hook.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "proto/jobid.h"

#define POLL_MS 10
#define ENV_VARS 11 /* ten FSG_JOB_* and PATH */
#define PATH_DEFAULT "/usr/local/bin:/usr/bin:/bin"

struct hook_item {
	struct hook_item *next;
	char id[JOBID_LEN + 1];
};

struct hook {
	char *command;
	int64_t timeout_ms;
	struct spool *s;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct hook_item *head, *tail;
	int stop;
};

static void sleep_ms(int ms)
{
	struct timespec ts = {0, (long)ms * 1000000L};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static void env_free(char **env)
{
	for (size_t i = 0; i < ENV_VARS; i++)
		free(env[i]);
}

/* "name=value" in a new string, or NULL. */
static char *env_var(const char *name, const char *value)
{
	size_t n = strlen(name), v = strlen(value);
	char *e = malloc(n + 1 + v + 1);

	if (!e)
		return NULL;
	memcpy(e, name, n);
	e[n] = '=';
	memcpy(e + n + 1, value, v + 1);
	return e;
}

/*
 * The whole environment of a run: the job's FSG_JOB_* and the parent's PATH, nothing else, so
 * no secret of the server's environment reaches the command. env has ENV_VARS + 1 slots.
 */
static int env_build(char **env, const struct spool_job *job, const char *data, const char *json)
{
	char hex[2 * DIGEST_SHA256_LEN + 1], copies[12], seq[24], size[24];
	const char *path = getenv("PATH");

	for (size_t i = 0; i < DIGEST_SHA256_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", job->sha256[i]);
	snprintf(copies, sizeof(copies), "%u", job->meta.copies);
	snprintf(seq, sizeof(seq), "%" PRIu64, job->sequence);
	snprintf(size, sizeof(size), "%" PRIu64, job->size);
	if (!path || !*path)
		path = PATH_DEFAULT;
	env[0] = env_var("FSG_JOB_ID", job->id);
	env[1] = env_var("FSG_JOB_FILE", data);
	env[2] = env_var("FSG_JOB_META", json);
	env[3] = env_var("FSG_JOB_OWNER", job->owner);
	env[4] = env_var("FSG_JOB_NAME", job->meta.name);
	env[5] = env_var("FSG_JOB_FORMAT", job->meta.format);
	env[6] = env_var("FSG_JOB_COPIES", copies);
	env[7] = env_var("FSG_JOB_SEQUENCE", seq);
	env[8] = env_var("FSG_JOB_SIZE", size);
	env[9] = env_var("FSG_JOB_SHA256", hex);
	env[10] = env_var("PATH", path);
	env[ENV_VARS] = NULL;
	for (size_t i = 0; i < ENV_VARS; i++)
		if (!env[i]) {
			env_free(env);
			return -1;
		}
	return 0;
}

/*
 * Starts /bin/sh -c command in its own process group (so a timeout kills what it started too),
 * stdin from /dev/null, stdout and stderr inherited, no other descriptor, default signals.
 */
static int spawn(struct hook *h, char **env, pid_t *pid)
{
	char *argv[] = {"sh", "-c", h->command, NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	int rc;

	rc = posix_spawn_file_actions_init(&fa);
	if (rc)
		return rc;
	rc = posix_spawnattr_init(&attr);
	if (rc) {
		posix_spawn_file_actions_destroy(&fa);
		return rc;
	}
	sigemptyset(&none);
	sigfillset(&all);
	rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
	if (!rc)
		rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
	if (!rc)
		rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
						     POSIX_SPAWN_SETPGROUP);
	if (!rc)
		rc = posix_spawnattr_setsigmask(&attr, &none);
	if (!rc)
		rc = posix_spawnattr_setsigdefault(&attr, &all);
	if (!rc)
		rc = posix_spawnattr_setpgroup(&attr, 0);
	if (!rc)
		rc = posix_spawn(pid, "/bin/sh", &fa, &attr, argv, env);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	return rc;
}

/* Waits for pid until the deadline, then kills its process group. Returns its wait status. */
static int wait_bounded(struct hook *h, pid_t pid, int *timed_out)
{
	int64_t deadline = clock_mono_ms() + h->timeout_ms;
	int st = 0;

	*timed_out = 0;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return st;
		if (r == -1 && errno != EINTR)
			return -1;
		if (r == 0 && clock_mono_ms() >= deadline) {
			*timed_out = 1;
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			while ((r = waitpid(pid, &st, 0)) == -1 && errno == EINTR)
				;
			return r == pid ? st : -1;
		}
		if (r == 0)
			sleep_ms(POLL_MS);
	}
}

static void run(struct hook *h, const char *id)
{
	char data[PATH_MAX], json[PATH_MAX], *env[ENV_VARS + 1];
	struct spool_job job;
	enum spool_err err;
	int64_t start;
	int fd, rc, st, timed_out, decoded = 0;
	pid_t pid;

	/* the job as committed, whoever owns it */
	err = spool_open_data(h->s, id, &fd, &job);
	if (err == SPOOL_E_NOT_FOUND) {
		log_info("hook.skipped", "job %s is gone before its hook ran", id);
		return;
	}
	if (err) {
		log_error("hook.failed", "job %s: %s", id, spool_strerror(err));
		return;
	}
	close(fd);
	err = spool_paths(h->s, id, data, json, sizeof(data));
	if (err) {
		log_error("hook.failed", "job %s: no paths: %s", id, spool_strerror(err));
		return;
	}
	/* the command gets the document as the user queued it, never the compressed bytes */
	if (job.meta.encoding == META_ENCODING_ZSTD) {
		err = spool_decode_temp(h->s, id, data, sizeof(data));
		if (err == SPOOL_E_NOT_FOUND) {
			log_info("hook.skipped", "job %s is gone before its hook ran", id);
			return;
		}
		if (err) {
			/* left unmarked: a restart tries again */
			log_error("hook.failed", "job %s: cannot decode the document: %s", id,
				  spool_strerror(err));
			return;
		}
		decoded = 1;
	}
	if (env_build(env, &job, data, json)) {
		log_error("hook.failed", "job %s: out of memory", id);
		goto out;
	}
	start = clock_mono_ms();
	rc = spawn(h, env, &pid);
	env_free(env);
	if (rc) {
		/* the command never ran: leave the job unmarked so a restart runs it */
		log_error("hook.failed", "job %s: cannot start the hook: %s", id, strerror(rc));
		goto out;
	}
	st = wait_bounded(h, pid, &timed_out);
	if (timed_out)
		log_warn("hook.timeout", "job %s: hook killed after %" PRId64 " ms", id,
			 clock_mono_ms() - start);
	else if (st == -1)
		log_error("hook.failed", "job %s: cannot wait for the hook: %s", id,
			  strerror(errno));
	else if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		log_info("hook.done", "job %s: hook exited 0 after %" PRId64 " ms", id,
			 clock_mono_ms() - start);
	else if (WIFEXITED(st))
		log_warn("hook.failed", "job %s: hook exited %d", id, WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		log_warn("hook.failed", "job %s: hook killed by signal %d", id, WTERMSIG(st));
	err = spool_mark_hooked(h->s, id);
	if (err && err != SPOOL_E_NOT_FOUND)
		log_error("hook.failed", "job %s: cannot mark it hooked: %s", id,
			  spool_strerror(err));
out:
	/* the decoded copy lives as long as the run; what the command started may outlive it */
	if (decoded && unlink(data) == -1 && errno != ENOENT)
		log_warn("hook.cleanup", "job %s: cannot remove the decoded document: %s", id,
			 strerror(errno));
}

static void *hook_main(void *arg)
{
	struct hook *h = arg;

	for (;;) {
		struct hook_item *it;

		pthread_mutex_lock(&h->lock);
		while (!h->head && !h->stop)
			pthread_cond_wait(&h->cond, &h->lock);
		it = h->head;
		if (it) {
			h->head = it->next;
			if (!h->head)
				h->tail = NULL;
		}
		pthread_mutex_unlock(&h->lock);
		if (!it)
			break; /* stopping and nothing left */
		run(h, it->id);
		free(it);
	}
	return NULL;
}

static void hook_free(struct hook *h)
{
	while (h->head) {
		struct hook_item *it = h->head;

		h->head = it->next;
		free(it);
	}
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
	free(h->command);
	free(h);
}

struct hook *hook_start(const char *command, int64_t timeout_ms, struct spool *s)
{
	struct spool_job *jobs = NULL;
	enum spool_err err;
	sigset_t all, old;
	struct hook *h;
	size_t n = 0;

	if (!command || !*command || !s)
		return NULL;
	if (timeout_ms <= 0) {
		log_error("hook.config", "hook timeout must be positive");
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->command = strdup(command);
	if (!h->command) {
		free(h);
		return NULL;
	}
	h->timeout_ms = timeout_ms;
	h->s = s;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);

	/* committed before a crash but never hooked: at least once */
	err = spool_unhooked(s, &jobs, &n);
	if (err)
		log_error("hook.start", "cannot list unhooked jobs: %s", spool_strerror(err));
	for (size_t i = 0; i < n; i++)
		hook_queue(h, jobs[i].id);
	free(jobs);
	if (n)
		log_info("hook.start", "%zu committed jobs still to hook", n);

	/* signals belong to the main thread; children get a clean mask from spawn() */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&h->thread, NULL, hook_main, h)) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		log_error("hook.start", "cannot start the hook thread");
		hook_free(h); /* the queued jobs stay unmarked: the next start runs them */
		return NULL;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return h;
}

void hook_queue(struct hook *h, const char *job_id)
{
	struct hook_item *it;
	size_t len;

	if (!h || !job_id)
		return;
	len = strnlen(job_id, JOBID_LEN + 1);
	if (len != JOBID_LEN || jobid_check(job_id, len)) {
		log_warn("hook.queue", "not a job id; ignored");
		return;
	}
	it = calloc(1, sizeof(*it));
	if (!it) {
		/* still unmarked: the next start runs it */
		log_error("hook.queue", "job %s: out of memory; hook deferred to restart", job_id);
		return;
	}
	memcpy(it->id, job_id, len + 1);
	pthread_mutex_lock(&h->lock);
	if (h->tail)
		h->tail->next = it;
	else
		h->head = it;
	h->tail = it;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

void hook_stop(struct hook *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->stop = 1;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->thread, NULL);
	hook_free(h);
}
