/* Tests the on-commit hook runner (server/hook.c) with real commands on a real spool. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include <zstd.h>

#include "common/clock.h"
#include "common/log.h"
#include "proto/jobid.h"
#include "proto/meta.h"
#include "server/hook.h"
#include "server/spool.h"
#include "tests/lib/proc.h"

static char *dir;
static struct spool *spool;
static int log_fd = -1;
static char log_path[4096], spool_dir[4096];

static struct spool_job commit(const char *owner, const struct job_meta *m, uint64_t seq,
			       const char *data)
{
	struct spool_job job;
	struct spool_write *w;
	struct job_meta meta;
	char uuid[UUID_LEN + 1];
	int existed = 1;

	if (m) {
		meta = *m;
	} else {
		cr_assert_eq(jobid_client_generate(uuid), PROTO_OK);
		meta_init(&meta, uuid);
	}
	cr_assert_eq(spool_create(spool, owner, &meta, strlen(data), NULL, seq, &job, &existed),
		     SPOOL_OK);
	cr_assert_eq(existed, 0);
	cr_assert_eq(spool_write_begin(spool, owner, job.id, 0, NULL, &w, NULL), SPOOL_OK);
	cr_assert_eq(spool_write(w, data, strlen(data)), SPOOL_OK);
	cr_assert_eq(spool_write_end(w, &job), SPOOL_OK);
	cr_assert_eq(job.state, SPOOL_COMMITTED);
	return job;
}

/* The whole content of path (NUL-terminated, malloc'd), or NULL. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;

	if (!f)
		return NULL;
	buf = calloc(1, 65536);
	cr_assert_not_null(buf);
	n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* The value of NAME=... in an env dump (one variable a line), or NULL. */
static char *env_get(const char *dump, const char *name)
{
	size_t len = strlen(name);

	for (const char *p = dump; p && *p;) {
		const char *eol = strchr(p, '\n');
		size_t line = eol ? (size_t)(eol - p) : strlen(p);

		if (line > len && strncmp(p, name, len) == 0 && p[len] == '=')
			return strndup(p + len + 1, line - len - 1);
		p = eol ? eol + 1 : NULL;
	}
	return NULL;
}

static int count_lines(const char *path, const char *s)
{
	char *all = slurp(path), *p;
	int n = 0;

	if (!all)
		return 0;
	for (p = all; (p = strstr(p, s)); p += strlen(s))
		n++;
	free(all);
	return n;
}

static size_t unhooked(void)
{
	struct spool_job *jobs = NULL;
	size_t n = 0;

	cr_assert_eq(spool_unhooked(spool, &jobs, &n), SPOOL_OK);
	free(jobs);
	return n;
}

static void setup(void)
{
	struct spool_config sc = {
		.dir = spool_dir,
		.upload_expiry_ms = 24LL * 3600 * 1000,
		.retention_ms = 7LL * 24 * 3600 * 1000,
	};
	enum spool_err err = SPOOL_OK;

	dir = proc_tempdir("hook");
	cr_assert_not_null(dir);
	snprintf(log_path, sizeof(log_path), "%s/log", dir);
	log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	cr_assert_neq(log_fd, -1);
	log_init(LOG_DEBUG, log_fd);
	snprintf(spool_dir, sizeof(spool_dir), "%s/spool", dir);
	spool = spool_open(&sc, &err);
	cr_assert_not_null(spool, "spool_open: %s", spool_strerror(err));
}

static void teardown(void)
{
	spool_free(spool);
	log_init(LOG_INFO, 2);
	if (log_fd != -1)
		close(log_fd);
	if (dir) {
		proc_rmtree(dir);
		free(dir);
	}
}

TestSuite(hook, .init = setup, .fini = teardown, .timeout = 60);

Test(hook, environment_is_the_job_and_path_only)
{
	const char *data = "%PDF-1.7 not really\n";
	char cmd[8192], path[4096], data_path[4096], json_path[4096], want_hex[65];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	struct spool_job job;
	struct job_meta meta;
	char uuid[UUID_LEN + 1], *dump, *v;
	struct hook *h;
	struct stat st;
	const struct {
		const char *name;
		const char *want;
	} expect[] = {
		{"FSG_JOB_OWNER", "alice@example.com"},
		{"FSG_JOB_NAME", "Quarterly report \xc3\xa9t\xc3\xa9 $(touch pwned) `id`; 'q' \"d\""},
		{"FSG_JOB_FORMAT", "application/pdf"},
		{"FSG_JOB_COPIES", "3"},
		{"FSG_JOB_SEQUENCE", "1732487364123456"},
		{"FSG_JOB_SIZE", "20"},
	};

	cr_assert_eq(setenv("FSG_TEST_PARENT_SECRET", "must-not-leak", 1), 0);
	cr_assert_eq(jobid_client_generate(uuid), PROTO_OK);
	meta_init(&meta, uuid);
	snprintf(meta.name, sizeof(meta.name), "%s", expect[1].want);
	snprintf(meta.format, sizeof(meta.format), "application/pdf");
	meta.copies = 3;
	job = commit("alice@example.com", &meta, 1732487364123456ULL, data);
	cr_assert_eq(unhooked(), 1);

	/* env is what the command sees; fd 0 is checked too; the job name must stay inert */
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && env > \"$FSG_JOB_ID.env\" && readlink /proc/$$/fd/0 > stdin", dir);
	/* not queued: hook_start finds it unhooked and runs it */
	h = hook_start(cmd, 5000, spool);
	cr_assert_not_null(h);
	hook_stop(h);
	cr_assert_eq(unhooked(), 0, "marked hooked after the run");

	snprintf(path, sizeof(path), "%s/%s.env", dir, job.id);
	dump = slurp(path);
	cr_assert_not_null(dump, "the hook should have run");
	for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
		v = env_get(dump, expect[i].name);
		cr_assert_not_null(v, "%s missing", expect[i].name);
		cr_assert_str_eq(v, expect[i].want, "%s", expect[i].name);
		free(v);
	}
	v = env_get(dump, "FSG_JOB_ID");
	cr_assert_str_eq(v, job.id);
	free(v);

	cr_assert_eq(spool_paths(spool, job.id, data_path, json_path, sizeof(data_path)), SPOOL_OK);
	v = env_get(dump, "FSG_JOB_FILE");
	cr_assert_not_null(v);
	cr_assert_str_eq(v, data_path);
	free(v);
	v = slurp(data_path);
	cr_assert_str_eq(v, data, "FSG_JOB_FILE holds the job's bytes");
	free(v);
	v = env_get(dump, "FSG_JOB_META");
	cr_assert_not_null(v);
	cr_assert_str_eq(v, json_path);
	cr_assert_eq(stat(v, &st), 0, "FSG_JOB_META exists");
	free(v);

	cr_assert_eq(EVP_Digest(data, strlen(data), md, &mdlen, EVP_sha256(), NULL), 1);
	for (unsigned i = 0; i < mdlen; i++)
		snprintf(want_hex + 2 * i, 3, "%02x", md[i]);
	v = env_get(dump, "FSG_JOB_SHA256");
	cr_assert_not_null(v);
	cr_assert_str_eq(v, want_hex);
	free(v);

	v = env_get(dump, "PATH");
	cr_assert_not_null(v);
	cr_assert_str_eq(v, getenv("PATH"));
	free(v);
	cr_assert_null(strstr(dump, "must-not-leak"), "the parent's environment must not leak");
	free(dump);

	snprintf(path, sizeof(path), "%s/stdin", dir);
	v = slurp(path);
	cr_assert_str_eq(v, "/dev/null\n");
	free(v);
	snprintf(path, sizeof(path), "%s/pwned", dir);
	cr_assert_eq(stat(path, &st), -1, "the job name is never evaluated");
}

Test(hook, runs_once_per_job_across_restarts)
{
	char cmd[8192], runs[4096];
	struct spool_job a = commit("alice", NULL, 1, "a"), b = commit("bob", NULL, 2, "b"), c, d;
	struct hook *h;

	snprintf(runs, sizeof(runs), "%s/runs", dir);
	snprintf(cmd, sizeof(cmd), "echo \"$FSG_JOB_ID\" >> '%s'", runs);

	/* committed but never hooked (a crash): run at start */
	h = hook_start(cmd, 5000, spool);
	cr_assert_not_null(h);
	c = commit("carol", NULL, 3, "c");
	hook_queue(h, c.id);
	hook_stop(h);
	cr_assert_eq(count_lines(runs, a.id), 1);
	cr_assert_eq(count_lines(runs, b.id), 1);
	cr_assert_eq(count_lines(runs, c.id), 1);
	cr_assert_eq(unhooked(), 0);

	/* a restart: marked jobs are not run again; one committed meanwhile and not queued is */
	d = commit("dave", NULL, 4, "d");
	h = hook_start(cmd, 5000, spool);
	cr_assert_not_null(h);
	hook_stop(h);
	cr_assert_eq(count_lines(runs, a.id), 1);
	cr_assert_eq(count_lines(runs, b.id), 1);
	cr_assert_eq(count_lines(runs, c.id), 1);
	cr_assert_eq(count_lines(runs, d.id), 1);
	cr_assert_eq(unhooked(), 0);
}

Test(hook, failing_command_leaves_the_job_and_marks_it)
{
	struct spool_job job = commit("alice", NULL, 1, "payload"), got;
	struct hook *h = hook_start("exit 3", 5000, spool);

	cr_assert_not_null(h);
	hook_stop(h);
	cr_assert_eq(spool_get(spool, "alice", job.id, &got), SPOOL_OK, "the job is kept");
	cr_assert_eq(got.state, SPOOL_COMMITTED);
	cr_assert_eq(got.length, 7);
	cr_assert_eq(unhooked(), 0, "marked: it does not run again");
	cr_assert_eq(count_lines(log_path, "exited 3"), 1, "the exit status is logged");
}

/* 1 once pid is gone or a zombie (its reaper may not be quick in a container). */
static int dead(pid_t pid)
{
	char path[64], *stat_text, *p;
	int z;

	if (kill(pid, 0) == -1 && errno == ESRCH)
		return 1;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	stat_text = slurp(path);
	if (!stat_text)
		return 1;
	p = strrchr(stat_text, ')');
	z = p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
	free(stat_text);
	return z;
}

Test(hook, timeout_kills_the_command_and_what_it_started)
{
	char cmd[8192], path[4096], *v;
	struct spool_job job = commit("alice", NULL, 1, "slow");
	struct hook *h;
	int64_t t;
	pid_t child;
	int ok = 0;

	snprintf(path, sizeof(path), "%s/child", dir);
	snprintf(cmd, sizeof(cmd), "sleep 10 & echo $! > '%s'; wait", path);
	t = clock_mono_ms();
	h = hook_start(cmd, 200, spool);
	cr_assert_not_null(h);
	hook_stop(h);
	cr_assert_lt(clock_mono_ms() - t, 3000, "killed at the timeout, not after 10 s");
	cr_assert_eq(unhooked(), 0, "marked even after a timeout");
	cr_assert_eq(count_lines(log_path, "\"event\":\"hook.timeout\""), 1);
	cr_assert_eq(spool_get(spool, "alice", job.id, &job), SPOOL_OK);

	v = slurp(path);
	cr_assert_not_null(v);
	child = (pid_t)atoi(v);
	free(v);
	cr_assert_gt(child, 1);
	for (int64_t end = clock_mono_ms() + 2000; !(ok = dead(child)) && clock_mono_ms() < end;)
		clock_sleep_ms(10);
	cr_assert(ok, "the command's own children are killed with it");
}

Test(hook, no_command_means_no_hook)
{
	struct spool_job job = commit("alice", NULL, 1, "x");

	cr_assert_null(hook_start(NULL, 1000, spool));
	cr_assert_null(hook_start("", 1000, spool));
	cr_assert_null(hook_start("true", 0, spool), "a timeout is required");
	cr_assert_null(hook_start("true", 1000, NULL));
	hook_queue(NULL, job.id);
	hook_stop(NULL);
	cr_assert_eq(unhooked(), 1, "nothing ran");
}

Test(hook, ignores_bad_and_vanished_jobs)
{
	char cmd[8192], runs[4096], unknown[JOBID_LEN + 1];
	struct spool_job gone = commit("alice", NULL, 1, "gone"), kept, released;
	struct hook *h;

	snprintf(runs, sizeof(runs), "%s/runs", dir);
	snprintf(cmd, sizeof(cmd), "echo \"$FSG_JOB_ID\" >> '%s'", runs);
	/* released before its hook could run: skipped */
	cr_assert_eq(spool_release(spool, gone.id, &released), SPOOL_OK);
	kept = commit("bob", NULL, 2, "kept");
	cr_assert_eq(jobid_generate(unknown), PROTO_OK);
	h = hook_start(cmd, 5000, spool);
	cr_assert_not_null(h);
	hook_queue(h, gone.id);
	hook_queue(h, unknown);
	hook_queue(h, "../../etc/passwd");
	hook_queue(h, "");
	hook_queue(h, NULL);
	hook_queue(h, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	hook_stop(h);
	cr_assert_eq(count_lines(runs, "\n"), 1, "only the committed job ran");
	cr_assert_eq(count_lines(runs, kept.id), 1);
	cr_assert_eq(unhooked(), 0);
}

/* Entries of the spool's tmp/ (decoded documents). */
static size_t tmp_entries(void)
{
	char path[4200];
	struct dirent *e;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/tmp", spool_dir);
	d = opendir(path);
	cr_assert_not_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

Test(hook, zstd_job_is_handed_over_decoded)
{
	enum { DOC = 100000 };
	static unsigned char doc[DOC];
	unsigned char md[EVP_MAX_MD_SIZE], *packed;
	char cmd[8192], path[4200], want_hex[65], size[32], *dump, *v, *copy;
	unsigned int mdlen = 0;
	size_t packed_len, cap = ZSTD_compressBound(DOC);
	struct spool_job job;
	struct spool_write *w;
	struct job_meta meta;
	char uuid[UUID_LEN + 1];
	int existed = 1;
	struct hook *h;
	FILE *f;

	for (size_t i = 0; i < DOC; i++)
		doc[i] = (unsigned char)("%PDF-1.7 stream of text "[i % 24] + (i / 4096 % 3));
	packed = malloc(cap);
	cr_assert_not_null(packed);
	packed_len = ZSTD_compress(packed, cap, doc, DOC, 3);
	cr_assert(!ZSTD_isError(packed_len));
	cr_assert_lt(packed_len, DOC / 10);
	cr_assert_eq(jobid_client_generate(uuid), PROTO_OK);
	meta_init(&meta, uuid);
	meta.encoding = META_ENCODING_ZSTD;
	meta.size = DOC;
	cr_assert_eq(spool_create(spool, "alice", &meta, packed_len, NULL, 1, &job, &existed),
		     SPOOL_OK);
	cr_assert_eq(spool_write_begin(spool, "alice", job.id, 0, NULL, &w, NULL), SPOOL_OK);
	cr_assert_eq(spool_write(w, packed, packed_len), SPOOL_OK);
	cr_assert_eq(spool_write_end(w, &job), SPOOL_OK);
	cr_assert_eq(job.state, SPOOL_COMMITTED);

	/* the command copies what FSG_JOB_FILE names, while it exists */
	snprintf(cmd, sizeof(cmd), "cd '%s' && env > job.env && cp \"$FSG_JOB_FILE\" copy", dir);
	h = hook_start(cmd, 5000, spool);
	cr_assert_not_null(h);
	hook_stop(h);
	cr_assert_eq(unhooked(), 0);

	snprintf(path, sizeof(path), "%s/copy", dir);
	f = fopen(path, "rb");
	cr_assert_not_null(f, "the hook should have copied the document");
	copy = malloc(DOC + 1);
	cr_assert_not_null(copy);
	cr_assert_eq(fread(copy, 1, DOC + 1, f), DOC, "the document, not the compressed bytes");
	fclose(f);
	cr_assert_eq(memcmp(copy, doc, DOC), 0);
	free(copy);

	snprintf(path, sizeof(path), "%s/job.env", dir);
	dump = slurp(path);
	cr_assert_not_null(dump);
	snprintf(size, sizeof(size), "%d", DOC);
	v = env_get(dump, "FSG_JOB_SIZE");
	cr_assert_str_eq(v, size);
	free(v);
	cr_assert_eq(EVP_Digest(doc, DOC, md, &mdlen, EVP_sha256(), NULL), 1);
	for (unsigned i = 0; i < mdlen; i++)
		snprintf(want_hex + 2 * i, 3, "%02x", md[i]);
	v = env_get(dump, "FSG_JOB_SHA256");
	cr_assert_str_eq(v, want_hex);
	free(v);
	/* a decoded copy in the spool's tmp/, gone once the run ended; the stored data stays */
	v = env_get(dump, "FSG_JOB_FILE");
	snprintf(path, sizeof(path), "%s/tmp/%s-", spool_dir, job.id);
	cr_assert_eq(strncmp(v, path, strlen(path)), 0, "FSG_JOB_FILE=%s", v);
	cr_assert_eq(access(v, F_OK), -1, "the decoded copy is removed after the run");
	free(v);
	cr_assert_eq(tmp_entries(), 0);
	cr_assert_eq(spool_paths(spool, job.id, path, NULL, sizeof(path)), SPOOL_OK);
	cr_assert_eq(access(path, F_OK), 0);
	free(dump);
	free(packed);
}
