/* fs_server: runs the real fs-server binary for an integration test. */
#include "tests/lib/fs_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "tests/lib/http_client.h"
#include "tests/lib/proc.h"

#ifndef FSG_BIN_DIR
#error "FSG_BIN_DIR must name the directory holding the built programs"
#endif

static int launch(struct fs_server *s)
{
	char conf[4096], log[4096], url[96];
	char *argv[] = {FSG_BIN_DIR "/fs-server", "--config", conf, NULL};

	snprintf(conf, sizeof(conf), "%s/server.conf", s->dir);
	snprintf(log, sizeof(log), "%s/server.log", s->dir);
	s->pid = proc_start(argv, log);
	if (s->pid == -1)
		return -1;
	snprintf(url, sizeof(url), "%s/healthz", s->url);
	for (int i = 0; i < 200; i++) { /* 200 x 50 ms = 10 s */
		struct timespec ts = {0, 50000000L};
		struct http_reply r = {0};

		if (!proc_running(s->pid, NULL)) {
			s->pid = -1;
			return -1;
		}
		if (http_request("GET", url, NULL, NULL, 0, &r) == 0) {
			long status = r.status;

			http_reply_free(&r);
			if (status == 204)
				return 0;
		}
		nanosleep(&ts, NULL);
	}
	proc_stop(s->pid, 1000);
	s->pid = -1;
	return -1;
}

struct fs_server *fs_server_start(int redis_port, const char *extra_config)
{
	return fs_server_start_id(redis_port, "dc1", extra_config);
}

struct fs_server *fs_server_start_id(int redis_port, const char *server_id,
				     const char *extra_config)
{
	struct fs_server *s;
	char *conf = NULL;

	/* fs-server checks the id itself; here it only has to fit and stay on its config line */
	if (!server_id || !server_id[0] || strlen(server_id) >= sizeof(s->id) ||
	    strpbrk(server_id, "\r\n")) {
		fprintf(stderr, "fs_server_start_id: bad server id\n");
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->pid = -1;
	s->redis_port = redis_port;
	snprintf(s->id, sizeof(s->id), "%s", server_id);
	s->dir = proc_tempdir("server");
	if (!s->dir)
		goto fail;
	for (int attempt = 0; attempt < 5; attempt++) {
		s->port = proc_free_port();
		snprintf(s->url, sizeof(s->url), "%s://127.0.0.1:%d",
			 extra_config && strstr(extra_config, "tls_cert_file") ? "https" : "http",
			 s->port);
		free(conf);
		if (asprintf(&conf,
			     "spool_dir = spool\n"
			     "port = %d\n"
			     "server_id = %s\n"
			     "url = %s\n"
			     "gateway_secret_file = gateway.secret\n"
			     "release_secret_file = release.secret\n"
			     "redis_port = %d\n"
			     "heartbeat_interval = 100ms\n"
			     "min_free = 0\n"
			     "log_level = debug\n"
			     "%s",
			     s->port, s->id, s->url, redis_port,
			     extra_config ? extra_config : "") == -1) {
			conf = NULL;
			goto fail;
		}
		if (proc_write_file(s->dir, "server.conf", conf) ||
		    proc_write_file(s->dir, "gateway.secret", FS_SERVER_GATEWAY_SECRET "\n") ||
		    proc_write_file(s->dir, "release.secret", FS_SERVER_RELEASE_SECRET "\n"))
			goto fail;
		if (launch(s) == 0) {
			free(conf);
			return s;
		}
	}
	fprintf(stderr, "fs_server_start: fs-server did not come up; see %s/server.log\n", s->dir);
fail:
	free(conf);
	fs_server_free(s);
	return NULL;
}

int fs_server_restart(struct fs_server *s)
{
	return launch(s);
}

int fs_server_kill(struct fs_server *s)
{
	int st = -1;

	if (s->pid > 0) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, &st, 0);
	}
	s->pid = -1;
	return st;
}

int fs_server_stop(struct fs_server *s, int grace_ms)
{
	int st = proc_stop(s->pid, grace_ms);

	s->pid = -1;
	return st;
}

void fs_server_free(struct fs_server *s)
{
	if (!s)
		return;
	if (s->pid > 0)
		proc_stop(s->pid, 5000);
	if (s->dir) {
		if (!getenv("FSG_KEEP_TEST_DIRS"))
			proc_rmtree(s->dir);
		free(s->dir);
	}
	free(s);
}

char *fs_server_log(const struct fs_server *s)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/server.log", s->dir);
	return proc_read_file(path);
}
