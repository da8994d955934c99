/* fs_client: runs the real fs-client binary for a test, and reads back what servers hold. */
#include "tests/lib/fs_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto/owner.h"
#include "tests/lib/http_client.h"
#include "tests/lib/proc.h"

#ifndef FSG_BIN_DIR
#error "FSG_BIN_DIR must name the directory holding the built programs"
#endif

#define FS_CLIENT_BIN FSG_BIN_DIR "/fs-client"
#define ARGS_MAX 32

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct fs_client *fs_client_new(const char *ca_file, const char *locations_json,
				const char *extra_config)
{
	struct fs_client *c = calloc(1, sizeof(*c));
	char *conf = NULL;
	size_t cap;

	if (!c)
		return NULL;
	c->dir = proc_tempdir("fs-client");
	if (!c->dir)
		goto fail;
	snprintf(c->queue_dir, sizeof(c->queue_dir), "%s/queue", c->dir);
	snprintf(c->conf, sizeof(c->conf), "%s/client.conf", c->dir);
	snprintf(c->token_file, sizeof(c->token_file), "%s/token", c->dir);
	snprintf(c->locations_file, sizeof(c->locations_file), "%s/locations.config", c->dir);
	snprintf(c->log, sizeof(c->log), "%s/client.log", c->dir);
	cap = 4 * 4200 + (extra_config ? strlen(extra_config) : 0) + 512;
	conf = malloc(cap);
	if (!conf)
		goto fail;
	snprintf(conf, cap,
		 "queue_dir = %s\nlocations_file = %s\ntoken_file = %s\nca_file = %s\n"
		 "retry_min = 200ms\nretry_max = 2s\nconnect_timeout = 2s\nprogress = lines\n"
		 "log_level = info\n%s\n",
		 c->queue_dir, c->locations_file, c->token_file, ca_file ? ca_file : "",
		 extra_config ? extra_config : "");
	if (proc_write_file(c->dir, "client.conf", conf) || proc_write_file(c->dir, "client.log", "") ||
	    fs_client_set_locations(c, locations_json))
		goto fail;
	free(conf);
	return c;
fail:
	fprintf(stderr, "fs_client_new: cannot set up the client directory\n");
	free(conf);
	fs_client_free(c);
	return NULL;
}

int fs_client_set_token(struct fs_client *c, const char *token)
{
	size_t n = strlen(token);
	char *t = malloc(n + 2);
	int rc;

	if (!t)
		return -1;
	memcpy(t, token, n);
	memcpy(t + n, "\n", 2);
	rc = proc_write_file(c->dir, "token", t);
	free(t);
	return rc;
}

int fs_client_set_locations(struct fs_client *c, const char *json)
{
	return proc_write_file(c->dir, "locations.config", json);
}

static pid_t spawn(struct fs_client *c, char *const argv[], int out_fd)
{
	pid_t pid = fork();

	if (pid == 0) {
		int log = open(c->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (log != -1)
			dup2(log, 2);
		if (out_fd != -1)
			dup2(out_fd, 1);
		else if (log != -1)
			dup2(log, 1);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

int fs_client_cmd(struct fs_client *c, char **out, int timeout_ms, ...)
{
	char *argv[ARGS_MAX + 3], confarg[4300];
	int fds[2], n = 0, st;
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	long long deadline = now_ms() + timeout_ms;
	va_list ap;
	pid_t pid;

	if (!buf)
		return -1;
	snprintf(confarg, sizeof(confarg), "--config=%s", c->conf);
	argv[n++] = FS_CLIENT_BIN;
	argv[n++] = confarg;
	va_start(ap, timeout_ms);
	for (;;) {
		char *a = va_arg(ap, char *);

		if (!a || n >= ARGS_MAX + 2)
			break;
		argv[n++] = a;
	}
	va_end(ap);
	argv[n] = NULL;
	if (pipe2(fds, O_CLOEXEC) == -1) {
		free(buf);
		return -1;
	}
	pid = spawn(c, argv, fds[1]);
	close(fds[1]);
	if (pid == -1) {
		close(fds[0]);
		free(buf);
		return -1;
	}
	for (;;) {
		struct pollfd p = { .fd = fds[0], .events = POLLIN };
		long long left = deadline - now_ms();
		ssize_t r;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		if (len + 4096 > cap) {
			char *nb = realloc(buf, cap * 2);

			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
		r = read(fds[0], buf + len, cap - len - 1);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fds[0]);
	buf[len] = '\0';
	st = proc_stop(pid, (int)(deadline - now_ms() > 0 ? deadline - now_ms() : 0));
	if (out)
		*out = buf;
	else
		free(buf);
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

int fs_client_submit(struct fs_client *c, const char *path, char id[37])
{
	char *out = NULL;
	int rc = fs_client_cmd(c, &out, 30000, "submit", path, NULL);

	if (rc != 0 || !out || strlen(out) < 36) {
		fprintf(stderr, "fs_client_submit %s: exit %d, output \"%s\"\n", path, rc,
			out ? out : "");
		free(out);
		return -1;
	}
	memcpy(id, out, 36);
	id[36] = '\0';
	free(out);
	return 0;
}

json_t *fs_client_status(struct fs_client *c)
{
	char *out = NULL;
	json_t *j = NULL;
	int rc = fs_client_cmd(c, &out, 30000, "status", "--json", NULL);

	if (rc == 0 && out)
		j = json_loads(out, 0, NULL);
	free(out);
	return j;
}

long fs_client_queued(struct fs_client *c)
{
	json_t *s = fs_client_status(c);
	long n = -1;

	if (s && json_is_array(json_object_get(s, "jobs")))
		n = (long)json_array_size(json_object_get(s, "jobs"));
	json_decref(s);
	return n;
}

int fs_client_run_start(struct fs_client *c)
{
	char confarg[4300];
	char *argv[] = {FS_CLIENT_BIN, confarg, "run", NULL};

	snprintf(confarg, sizeof(confarg), "--config=%s", c->conf);
	c->run_pid = spawn(c, argv, -1);
	return c->run_pid > 0 ? 0 : -1;
}

int fs_client_run_stop(struct fs_client *c, int grace_ms)
{
	int st;

	if (c->run_pid <= 0)
		return -1;
	st = proc_stop(c->run_pid, grace_ms);
	c->run_pid = 0;
	return st;
}

int fs_client_wait_empty(struct fs_client *c, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;

	while (now_ms() < deadline) {
		if (fs_client_queued(c) == 0)
			return 0;
		usleep(100 * 1000);
	}
	return -1;
}

void fs_client_free(struct fs_client *c)
{
	if (!c)
		return;
	if (c->run_pid > 0)
		proc_stop(c->run_pid, 2000);
	if (c->dir)
		proc_rmtree(c->dir);
	free(c->dir);
	free(c);
}

void fs_client_report(struct fs_client *c)
{
	char *log, *status = NULL;
	size_t n;

	if (!c)
		return;
	log = fs_client_log(c);
	n = strlen(log);
	fs_client_cmd(c, &status, 10000, "status", NULL);
	fprintf(stderr, "---- fs-client log (end) ----\n%s\n---- fs-client status ----\n%s\n",
		n > 3000 ? log + n - 3000 : log, status ? status : "");
	free(log);
	free(status);
}

char *fs_client_log(const struct fs_client *c)
{
	return proc_read_file(c->log);
}

json_t *fs_server_held(const struct fs_server *s, const char *owner)
{
	char enc[OWNER_HEADER_MAX + 1], url[600];
	const char *hdrs[] = {"Authorization: Bearer " FS_SERVER_RELEASE_SECRET, NULL};
	struct http_reply r;
	json_t *root, *jobs = NULL;

	if (owner_encode(owner, strlen(owner), enc, sizeof(enc)) != PROTO_OK)
		return NULL;
	snprintf(url, sizeof(url), "%s/v1/release/owners/%s/jobs", s->url, enc);
	if (http_request("GET", url, hdrs, NULL, 0, &r) != 0)
		return NULL;
	if (r.status == 200) {
		root = json_loads(r.body, 0, NULL);
		jobs = json_incref(json_object_get(root, "jobs"));
		json_decref(root);
	}
	http_reply_free(&r);
	return jobs;
}

char *fs_server_content(const struct fs_server *s, const char *server_job_id, size_t *len)
{
	const char *hdrs[] = {"Authorization: Bearer " FS_SERVER_RELEASE_SECRET, NULL};
	struct http_reply r;
	char url[600], *body = NULL;

	snprintf(url, sizeof(url), "%s/v1/release/jobs/%s/content", s->url, server_job_id);
	if (http_request("GET", url, hdrs, NULL, 0, &r) != 0)
		return NULL;
	if (r.status == 200) {
		body = r.body;
		*len = r.body_len;
		r.body = NULL;
	}
	http_reply_free(&r);
	return body;
}

int fs_client_make_file(const char *path, size_t len, unsigned seed, int noisy)
{
	static const char *const words[] = {
		"invoice", "total", "quantity", "widget", "delivery", "Prague", "London", "net",
		"VAT", "page", "order", "customer", "amount", "EUR", "item", "due",
	};
	FILE *f = fopen(path, "we");
	unsigned char buf[65536];
	uint64_t x = 0x9e3779b97f4a7c15ULL * (seed + 1);
	size_t done = 0;

	if (!f)
		return -1;
	while (done < len) {
		size_t n = len - done < sizeof(buf) ? len - done : sizeof(buf), i = 0;

		while (i < n) {
			/* xorshift64 */
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			if (noisy) {
				/* incompressible */
				buf[i++] = (unsigned char)(x >> 24);
			} else {
				/* report-like text: words and numbers, compresses a few times */
				char w[48];
				int k = snprintf(w, sizeof(w), "%s %u%s", words[x % 16],
						 (unsigned)(x >> 40) % 1000, (x >> 20) % 9 ? " " : "\n");

				for (int c = 0; c < k && i < n; c++)
					buf[i++] = (unsigned char)w[c];
			}
		}
		if (fwrite(buf, 1, n, f) != n) {
			fclose(f);
			return -1;
		}
		done += n;
	}
	return fclose(f) == 0 ? 0 : -1;
}

char *fs_client_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else if (buf) {
			buf[n] = '\0';
			*len = (size_t)n;
		}
	}
	fclose(f);
	return buf;
}
