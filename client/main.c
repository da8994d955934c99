/* fs-client: queues print jobs locally and delivers them through fs-gateway when online. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "client/deliver.h"
#include "client/locations.h"
#include "client/progress.h"
#include "client/queue.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "proto/meta.h"

#define FS_CLIENT_VERSION "0.1.0"

/* Exit codes scripts can rely on. */
#define EXIT_OK 0
#define EXIT_FAIL 1     /* the command failed (see the message) */
#define EXIT_USAGE 2    /* bad settings or arguments */
#define EXIT_PENDING 3  /* deliver: jobs remain queued (waiting for network, or held) */
#define EXIT_BUSY 4     /* deliver: another fs-client is delivering this queue */

#define IDLE_RECHECK_MS 30000 /* run, nothing to send: look again this often anyway */

struct settings {
	char *queue_dir;
	char *locations_file;
	char *location;
	char *token_file;
	char *token;
	char *ca_file;
	int64_t connect_timeout_ms;
	int64_t stall_timeout_ms;
	uint64_t max_rate;
	int64_t retry_min_ms;
	int64_t retry_max_ms;
	int compress;
	int64_t compress_level;
	int progress;
	int log_level;
};

#define S(field) offsetof(struct settings, field)
#define DAY_MS (24LL * 3600 * 1000)

static const struct config_setting settings_table[] = {
	{"queue_dir", CONFIG_PATH, "", 0, 0, NULL, S(queue_dir),
	 "Directory of the local queue; empty: $XDG_STATE_HOME/fs-client (~/.local/state/fs-client)."},
	{"locations_file", CONFIG_PATH, "", 0, 0, NULL, S(locations_file),
	 "locations.config (JSON); empty: $XDG_CONFIG_HOME/fs-client/locations.config."},
	{"location", CONFIG_STRING, "", 0, 0, NULL, S(location),
	 "Location id to use instead of the file's current one (as --location ID on a command)."},
	{"token_file", CONFIG_PATH, "", 0, 0, NULL, S(token_file),
	 "File holding the bearer token, read again at every delivery attempt."},
	{"token", CONFIG_STRING, "", 0, 0, NULL, S(token),
	 "The bearer token itself, when token_file is empty (normally from FSG_CLIENT_TOKEN)."},
	{"ca_file", CONFIG_PATH, "", 0, 0, NULL, S(ca_file),
	 "PEM CA bundle replacing the system's CAs (private CAs); certificates are always verified."},
	{"connect_timeout", CONFIG_DURATION, "10s", 100, 600000, NULL, S(connect_timeout_ms),
	 "Bound on TCP and TLS connect to an address."},
	{"stall_timeout", CONFIG_DURATION, "60s", 1000, DAY_MS, NULL, S(stall_timeout_ms),
	 "A transfer that moves no byte this long is given up and resumed later."},
	{"max_rate", CONFIG_SIZE, "0", 0, 0, NULL, S(max_rate),
	 "Upload bytes per second at most (spare the hotel wifi); 0: no limit."},
	{"retry_min", CONFIG_DURATION, "1s", 100, 3600000, NULL, S(retry_min_ms),
	 "First wait after a failed attempt; it doubles (with jitter) up to retry_max."},
	{"retry_max", CONFIG_DURATION, "5m", 1000, DAY_MS, NULL, S(retry_max_ms),
	 "Longest wait between attempts while nothing is reachable."},
	{"compress", CONFIG_ENUM, "auto", 0, 0, "auto|never", S(compress),
	 "auto: queue a job zstd-compressed when that saves at least 10 %; never: as it is."},
	{"compress_level", CONFIG_INT, "3", 1, 19, NULL, S(compress_level),
	 "zstd level for queued jobs (higher: smaller and slower)."},
	{"progress", CONFIG_ENUM, "auto", 0, 0, "auto|bar|lines|none", S(progress),
	 "Upload progress: a bar on a terminal, plain lines otherwise (auto)."},
	{"log_level", CONFIG_ENUM, "warn", 0, 0, "error|warn|info|debug", S(log_level),
	 "Least important diagnostic written to stderr (JSON lines)."},
};

#define SETTINGS_N (sizeof(settings_table) / sizeof(settings_table[0]))

static volatile sig_atomic_t stop_flag;

static void on_stop(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: fs-client [--SETTING=VALUE...] COMMAND [ARGS]\n"
		"Queues print jobs on this computer and delivers them when a print server is "
		"reachable.\n\n"
		"Commands:\n"
		"  submit [--name=NAME] [--copies=N] [--format=TYPE] FILE...\n"
		"        queue documents; prints each job id (the format is detected when not "
		"given)\n"
		"  status [--json]       queued jobs: state, bytes delivered, destination, last "
		"error\n"
		"  cancel ID...          remove queued jobs (and end their uploads at the server)\n"
		"  deliver [--location=ID]\n"
		"        one delivery attempt; exit 0: queue empty, 3: jobs remain, 4: busy\n"
		"  run [--location=ID]   keep delivering: waits while offline, picks up new jobs at "
		"once\n"
		"  locations [--location=ID] [--json]\n"
		"        the configured locations and which one is used\n\n");
}

/* Fills the defaults that depend on the user's environment. Returns 0 or -1. */
static int settings_finish(struct settings *s)
{
	const char *home = getenv("HOME");
	const char *xs = getenv("XDG_STATE_HOME"), *xc = getenv("XDG_CONFIG_HOME");
	char buf[4096];

	if (!s->queue_dir[0]) {
		if (xs && xs[0] == '/')
			snprintf(buf, sizeof(buf), "%s/fs-client", xs);
		else if (home && home[0] == '/')
			snprintf(buf, sizeof(buf), "%s/.local/state/fs-client", home);
		else
			return -1;
		free(s->queue_dir);
		s->queue_dir = strdup(buf);
	}
	if (!s->locations_file[0]) {
		if (xc && xc[0] == '/')
			snprintf(buf, sizeof(buf), "%s/fs-client/locations.config", xc);
		else if (home && home[0] == '/')
			snprintf(buf, sizeof(buf), "%s/.config/fs-client/locations.config", home);
		else
			return -1;
		free(s->locations_file);
		s->locations_file = strdup(buf);
	}
	return s->queue_dir && s->locations_file ? 0 : -1;
}

static void time_text(int64_t ms, char *buf, size_t cap)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0 || !gmtime_r(&t, &tm) || !strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, cap, "-");
}

/* --- submit ------------------------------------------------------------------------------ */

static int cmd_submit(const struct settings *s, int argc, char **argv)
{
	static const struct option opts[] = {
		{"name", required_argument, NULL, 'n'},
		{"copies", required_argument, NULL, 'c'},
		{"format", required_argument, NULL, 'f'},
		{NULL, 0, NULL, 0},
	};
	struct queue_submit_opts so = {
		.compress = s->compress == 0,
		.level = (int)s->compress_level,
		.copies = 1,
	};
	int c, i, rc = EXIT_OK;
	enum queue_err e;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *end;
		long v;

		switch (c) {
		case 'n':
			so.name = optarg;
			break;
		case 'f':
			so.format = optarg;
			break;
		case 'c':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || v < 1 || v > META_COPIES_MAX) {
				fprintf(stderr, "fs-client: --copies: a number from 1 to %d\n",
					META_COPIES_MAX);
				return EXIT_USAGE;
			}
			so.copies = (unsigned)v;
			break;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "fs-client: submit: no file given\n");
		return EXIT_USAGE;
	}
	if (so.name && argc - optind > 1) {
		fprintf(stderr, "fs-client: submit: --name names one document; give one file\n");
		return EXIT_USAGE;
	}
	/* queue_open creates the queue directory and its parents on first use */
	e = queue_open(s->queue_dir);
	if (e != QUEUE_OK) {
		fprintf(stderr, "fs-client: cannot open the queue directory %s: %s\n",
			s->queue_dir, queue_strerror(e));
		return EXIT_FAIL;
	}
	for (i = optind; i < argc; i++) {
		struct queue_job job;
		char detail[512] = "";

		e = queue_submit(s->queue_dir, argv[i], &so, &job, detail, sizeof(detail));
		if (e != QUEUE_OK) {
			/* The detail names the file itself. */
			if (detail[0])
				fprintf(stderr, "fs-client: not queued: %s\n", detail);
			else
				fprintf(stderr, "fs-client: %s: not queued: %s\n", argv[i],
					queue_strerror(e));
			rc = EXIT_FAIL;
			continue;
		}
		printf("%s\n", job.job_id);
	}
	fflush(stdout);
	return rc;
}

/* --- status ------------------------------------------------------------------------------ */

static double saved_percent(const struct queue_job *j)
{
	if (j->encoding != QUEUE_ENC_ZSTD || j->size == 0)
		return 0;
	return 100.0 * (double)(j->size - j->stored_size) / (double)j->size;
}

static json_t *time_json(int64_t ms)
{
	char buf[32];

	if (ms <= 0)
		return json_null();
	time_text(ms, buf, sizeof(buf));
	return json_string(buf);
}

static int status_json(const struct queue_network *net, int have_net, int busy,
		       const struct queue_job *jobs, const struct queue_state *sts, size_t n)
{
	json_t *root = json_object(), *arr = json_array(), *nj = json_object();
	size_t i;
	char *text;

	json_object_set_new(nj, "online", json_boolean(have_net && net->online));
	json_object_set_new(nj, "location", json_string(have_net ? net->location : ""));
	json_object_set_new(nj, "address", json_string(have_net ? net->address : ""));
	json_object_set_new(nj, "message", json_string(have_net ? net->message : ""));
	json_object_set_new(nj, "checked_at", time_json(have_net ? net->checked_ms : 0));
	json_object_set_new(nj, "next_attempt_at", time_json(have_net ? net->next_ms : 0));
	json_object_set_new(nj, "checked_at_ms", json_integer(have_net ? net->checked_ms : 0));
	json_object_set_new(nj, "next_attempt_at_ms", json_integer(have_net ? net->next_ms : 0));
	json_object_set_new(nj, "deliverer_running", json_boolean(busy));
	json_object_set_new(root, "network", nj);
	for (i = 0; i < n; i++) {
		const struct queue_job *j = &jobs[i];
		const struct queue_state *st = &sts[i];
		json_t *o = json_object();
		char dest[1100] = "";

		if (st->location[0])
			snprintf(dest, sizeof(dest), "%s%s", st->base, st->location);
		json_object_set_new(o, "job_id", json_string(j->job_id));
		json_object_set_new(o, "seq", json_integer((json_int_t)j->seq));
		json_object_set_new(o, "name", json_string(j->name));
		json_object_set_new(o, "format", json_string(j->format));
		json_object_set_new(o, "copies", json_integer(j->copies));
		json_object_set_new(o, "submitted_at", time_json(j->submitted_at_ms));
		json_object_set_new(o, "state", json_string(queue_phase_name(st->phase)));
		json_object_set_new(o, "size", json_integer((json_int_t)j->size));
		json_object_set_new(o, "encoding", json_string(j->encoding == QUEUE_ENC_ZSTD ?
							       "zstd" : "identity"));
		json_object_set_new(o, "upload_length", json_integer((json_int_t)j->stored_size));
		json_object_set_new(o, "saved_percent", json_real(saved_percent(j)));
		json_object_set_new(o, "delivered", json_integer((json_int_t)st->offset));
		json_object_set_new(o, "destination", json_string(dest));
		json_object_set_new(o, "error", json_string(st->error));
		json_object_set_new(o, "updated_at", time_json(st->updated_ms));
		json_array_append_new(arr, o);
	}
	json_object_set_new(root, "jobs", arr);
	text = json_dumps(root, JSON_INDENT(2) | JSON_ENSURE_ASCII);
	json_decref(root);
	if (!text)
		return EXIT_FAIL;
	printf("%s\n", text);
	free(text);
	return EXIT_OK;
}

static int cmd_status(const struct settings *s, int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{NULL, 0, NULL, 0},
	};
	struct queue_job *jobs = NULL;
	struct queue_state *sts = NULL;
	struct queue_network net;
	size_t n = 0, i;
	int json = 0, c, have_net, busy = 0, lock, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'j')
			return EXIT_USAGE;
		json = 1;
	}
	if (optind < argc) {
		fprintf(stderr, "fs-client: status: unexpected argument %s\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (queue_list(s->queue_dir, &jobs, &sts, &n) != QUEUE_OK) {
		fprintf(stderr, "fs-client: cannot read the queue %s\n", s->queue_dir);
		return EXIT_FAIL;
	}
	have_net = queue_network_load(s->queue_dir, &net) == QUEUE_OK;
	lock = queue_lock_deliver(s->queue_dir);
	if (lock == -1)
		busy = 1;
	else
		close(lock);
	if (json) {
		rc = status_json(&net, have_net, busy, jobs, sts, n);
		goto out;
	}
	if (!have_net)
		printf("network: not tried yet%s\n", busy ? " (a deliverer is running)" : "");
	else if (net.online)
		printf("network: online via %s (location %s)%s\n", net.address, net.location,
		       busy ? "" : "; no deliverer running");
	else
		printf("network: %s\n", net.message[0] ? net.message : "offline");
	if (have_net && busy && net.next_ms > clock_unix_ms())
		printf("next attempt in %" PRId64 " s\n", (net.next_ms - clock_unix_ms() + 999) / 1000);
	if (n == 0) {
		printf("queue: empty\n");
		rc = EXIT_OK;
		goto out;
	}
	printf("%-4s %-8s  %-10s %-21s %-7s %-24s %s\n", "SEQ", "JOB", "STATE", "DELIVERED",
	       "SAVED", "NAME", "DESTINATION");
	for (i = 0; i < n; i++) {
		char a[32], b[32], del[40], saved[16], dest[1100] = "-";
		const struct queue_job *j = &jobs[i];
		const struct queue_state *st = &sts[i];

		snprintf(del, sizeof(del), "%s/%s", progress_bytes(st->offset, a, sizeof(a)),
			 progress_bytes(j->stored_size, b, sizeof(b)));
		if (j->encoding == QUEUE_ENC_ZSTD)
			snprintf(saved, sizeof(saved), "%.0f%%", saved_percent(j));
		else
			snprintf(saved, sizeof(saved), "-");
		if (st->location[0])
			snprintf(dest, sizeof(dest), "%s%s", st->base, st->location);
		printf("%-4" PRIu64 " %.8s  %-10s %-21s %-7s %-24.24s %s\n", j->seq, j->job_id,
		       queue_phase_name(st->phase), del, saved, j->name[0] ? j->name : "-", dest);
		if (st->error[0])
			printf("     %s\n", st->error);
	}
	rc = EXIT_OK;
out:
	free(jobs);
	free(sts);
	return rc;
}

/* --- cancel ------------------------------------------------------------------------------ */

static int cmd_cancel(const struct settings *s, int argc, char **argv)
{
	int i, rc = EXIT_OK;

	if (argc < 2) {
		fprintf(stderr, "fs-client: cancel: no job id given\n");
		return EXIT_USAGE;
	}
	for (i = 1; i < argc; i++) {
		struct queue_job job;
		struct queue_state st;
		enum queue_err e = queue_cancel(s->queue_dir, argv[i], &job, &st);

		if (e != QUEUE_OK) {
			fprintf(stderr, "fs-client: cancel %s: %s\n", argv[i], queue_strerror(e));
			rc = EXIT_FAIL;
			continue;
		}
		printf("%s cancelled%s\n", job.job_id,
		       st.location[0] ? "; its upload is ended at the server on the next delivery" :
					"");
	}
	return rc;
}

/* --- locations --------------------------------------------------------------------------- */

static struct locations *load_locations(const struct settings *s)
{
	char err[600];
	struct locations *l = locations_load(s->locations_file, err, sizeof(err));

	if (!l)
		fprintf(stderr, "fs-client: %s\n", err);
	return l;
}

static const char *location_option(const struct settings *s, int argc, char **argv, int *bad)
{
	static const struct option opts[] = {
		{"location", required_argument, NULL, 'l'},
		{NULL, 0, NULL, 0},
	};
	const char *loc = s->location[0] ? s->location : NULL;
	int c;

	*bad = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'l') {
			*bad = 1;
			return NULL;
		}
		loc = optarg;
	}
	if (optind < argc) {
		fprintf(stderr, "fs-client: unexpected argument %s\n", argv[optind]);
		*bad = 1;
	}
	return loc;
}

static int cmd_locations(const struct settings *s, int argc, char **argv)
{
	struct locations *l;
	const char *loc;
	size_t order[2], i, k;
	int n, bad, json = 0, j;
	struct queue_network net;
	int have_net;
	char **args = calloc((size_t)argc + 1, sizeof(char *));
	int na = 0;

	if (!args)
		return EXIT_FAIL;
	/* --json is taken out before the shared --location parsing. */
	for (j = 0; j < argc; j++) {
		if (j > 0 && strcmp(argv[j], "--json") == 0)
			json = 1;
		else
			args[na++] = argv[j];
	}
	loc = location_option(s, na, args, &bad);
	if (bad) {
		free(args);
		return EXIT_USAGE;
	}
	l = load_locations(s);
	if (!l) {
		free(args);
		return EXIT_FAIL;
	}
	n = locations_plan(l, loc, order);
	if (n < 0) {
		fprintf(stderr, "fs-client: no location \"%s\" in %s\n", loc, s->locations_file);
		locations_free(l);
		free(args);
		return EXIT_USAGE;
	}
	have_net = queue_network_load(s->queue_dir, &net) == QUEUE_OK;
	if (json) {
		json_t *root = json_object(), *arr = json_array(), *plan = json_array();
		char *text;

		for (i = 0; i < locations_count(l); i++) {
			json_t *o = json_object(), *ad = json_array();

			for (k = 0; k < locations_address_count(l, i); k++)
				json_array_append_new(ad, json_string(locations_address(l, i, k)));
			json_object_set_new(o, "id", json_string(locations_id(l, i)));
			json_object_set_new(o, "name", json_string(locations_name(l, i)));
			json_object_set_new(o, "addresses", ad);
			json_array_append_new(arr, o);
		}
		for (j = 0; j < n; j++)
			json_array_append_new(plan, json_string(locations_id(l, order[j])));
		json_object_set_new(root, "locations", arr);
		json_object_set_new(root, "current", locations_current(l) ?
				    json_string(locations_current(l)) : json_null());
		json_object_set_new(root, "order", plan);
		json_object_set_new(root, "in_use", have_net && net.online ?
				    json_string(net.location) : json_null());
		json_object_set_new(root, "address_in_use", have_net && net.online ?
				    json_string(net.address) : json_null());
		text = json_dumps(root, JSON_INDENT(2) | JSON_ENSURE_ASCII);
		json_decref(root);
		if (text)
			printf("%s\n", text);
		free(text);
	} else {
		printf("locations file: %s\n", s->locations_file);
		for (i = 0; i < locations_count(l); i++) {
			const char *id = locations_id(l, i);
			const char *mark = "";

			for (j = 0; j < n; j++)
				if (order[j] == i)
					mark = j == 0 ? "  [tried first]" : "  [then]";
			printf("%s%s (%s)%s\n", id,
			       locations_current(l) && strcmp(locations_current(l), id) == 0 ?
				       " *current*" : "", locations_name(l, i), mark);
			for (k = 0; k < locations_address_count(l, i); k++) {
				const char *a = locations_address(l, i, k);

				printf("    %zu. %s%s\n", k + 1, a,
				       have_net && net.online && strcmp(net.address, a) == 0 ?
					       "  <- in use" : "");
			}
		}
		if (have_net && !net.online && net.message[0])
			printf("last attempt: %s\n", net.message);
	}
	locations_free(l);
	free(args);
	return EXIT_OK;
}

/* --- deliver and run --------------------------------------------------------------------- */

static void deliver_setup(const struct settings *s, const struct locations *l, const char *loc,
			  struct deliver_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->queue_dir = s->queue_dir;
	o->locations = l;
	o->override = loc;
	o->token_file = s->token_file;
	o->token = s->token;
	o->ca_file = s->ca_file;
	o->connect_timeout_ms = s->connect_timeout_ms;
	o->stall_timeout_ms = s->stall_timeout_ms;
	o->max_rate = s->max_rate;
	o->progress = (enum progress_mode)s->progress;
	o->out = stderr;
	o->stop = &stop_flag;
}

static void signals_setup(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static int cmd_deliver(const struct settings *s, int argc, char **argv, int forever)
{
	struct locations *l;
	struct deliver_opts o;
	struct deliver_result r;
	const char *loc;
	int bad, lock, rc = EXIT_OK, ino = -1;
	unsigned failures = 0;

	loc = location_option(s, argc, argv, &bad);
	if (bad)
		return EXIT_USAGE;
	l = load_locations(s);
	if (!l)
		return EXIT_FAIL;
	if (loc && locations_find(l, loc) < 0) {
		fprintf(stderr, "fs-client: no location \"%s\" in %s\n", loc, s->locations_file);
		locations_free(l);
		return EXIT_USAGE;
	}
	if (queue_open(s->queue_dir) != QUEUE_OK) {
		fprintf(stderr, "fs-client: cannot open the queue %s\n", s->queue_dir);
		locations_free(l);
		return EXIT_FAIL;
	}
	/* status holds the lock for an instant to see whether a deliverer runs: try for 1 s. */
	for (int tries = 0; (lock = queue_lock_deliver(s->queue_dir)) == -1 && tries < 20; tries++)
		clock_sleep_ms(50);
	if (lock == -1) {
		fprintf(stderr, "fs-client: another fs-client is delivering from %s\n",
			s->queue_dir);
		locations_free(l);
		return EXIT_BUSY;
	}
	signals_setup();
	deliver_setup(s, l, loc, &o);
	if (forever) {
		char dir[4200];

		/* New and cancelled jobs wake the loop at once instead of at the next retry. */
		ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
		snprintf(dir, sizeof(dir), "%s/jobs", s->queue_dir);
		if (ino != -1)
			inotify_add_watch(ino, dir, IN_MOVED_TO | IN_CREATE);
		snprintf(dir, sizeof(dir), "%s/cancelled", s->queue_dir);
		if (ino != -1)
			inotify_add_watch(ino, dir, IN_MOVED_TO | IN_CREATE);
	}
	for (;;) {
		int64_t wait_ms, deadline;
		struct queue_network net;

		deliver_pass(&o, &r);
		if (r.outcome == DELIVER_STOPPED || stop_flag) {
			/* deliver interrupted: jobs may remain; run stopping is its normal end */
			rc = forever ? EXIT_OK : EXIT_PENDING;
			break;
		}
		if (!forever) {
			rc = r.outcome == DELIVER_IDLE && r.remaining == 0 ? EXIT_OK :
			     r.outcome == DELIVER_ERROR ? EXIT_FAIL : EXIT_PENDING;
			if (r.outcome == DELIVER_ERROR && queue_network_load(s->queue_dir, &net) ==
				    QUEUE_OK && net.message[0])
				fprintf(stderr, "fs-client: %s\n", net.message);
			break;
		}
		if (r.outcome == DELIVER_IDLE) {
			/*
			 * Nothing can go now. New and cancelled jobs wake the loop at once; a look
			 * every 30 s catches a token renewed after a 401.
			 */
			failures = 0;
			wait_ms = IDLE_RECHECK_MS;
		} else {
			/*
			 * Exponential backoff with jitter: retry_min doubling up to retry_max, half
			 * fixed and half random so a hotel full of laptops does not retry in step;
			 * a pass that moved bytes starts the series again.
			 */
			uint32_t rnd = 0;
			int64_t base = s->retry_min_ms;
			unsigned k;

			if (r.progressed)
				failures = 0;
			for (k = 0; k < failures && base < s->retry_max_ms; k++)
				base *= 2;
			if (base > s->retry_max_ms)
				base = s->retry_max_ms;
			failures++;
			RAND_bytes((unsigned char *)&rnd, sizeof(rnd));
			wait_ms = base / 2 + (int64_t)(rnd % (uint32_t)(base / 2 + 1));
			if (r.retry_after_ms > wait_ms)
				wait_ms = r.retry_after_ms;
			if (queue_network_load(s->queue_dir, &net) == QUEUE_OK) {
				net.next_ms = clock_unix_ms() + wait_ms;
				queue_network_save(s->queue_dir, &net);
			}
			log_info("client_wait", "next attempt in %" PRId64 " ms", wait_ms);
		}
		deadline = clock_mono_ms() + wait_ms;
		/* Waits in slices so a signal is seen within 500 ms at worst. */
		while (!stop_flag) {
			struct pollfd p = { .fd = ino, .events = POLLIN };
			int64_t left = deadline - clock_mono_ms();
			char buf[4096];

			if (left <= 0)
				break;
			if (poll(&p, ino == -1 ? 0 : 1, (int)(left > 500 ? 500 : left)) > 0) {
				while (read(ino, buf, sizeof(buf)) > 0)
					;
				break;
			}
		}
		if (stop_flag)
			break;
		/* The user may have changed the current location meanwhile. */
		{
			char err[600];
			struct locations *nl = locations_load(s->locations_file, err, sizeof(err));

			if (nl) {
				locations_free(l);
				l = nl;
				o.locations = l;
			} else {
				log_warn("client_locations", "%s; keeping the previous locations", err);
			}
		}
	}
	if (ino != -1)
		close(ino);
	close(lock);
	locations_free(l);
	return rc;
}

int main(int argc, char **argv)
{
	struct settings s;
	int i, first_cmd = argc, rc;
	const char *cmd;
	char prog[64];

	if (argc == 2 && strcmp(argv[1], "--settings-markdown") == 0) {
		config_write_markdown(settings_table, SETTINGS_N, "FSG_CLIENT", stdout);
		return EXIT_OK;
	}
	/* Settings come before the command; the command's own options after it. */
	for (i = 1; i < argc; i++) {
		if (strncmp(argv[i], "--", 2) != 0) {
			first_cmd = i;
			break;
		}
		if (strcmp(argv[i], "--help") == 0)
			usage(stdout);
	}
	rc = config_load(settings_table, SETTINGS_N, "FSG_CLIENT", "fs-client", FS_CLIENT_VERSION,
			 first_cmd, argv, &s, stdout, stderr);
	if (rc == 1)
		return EXIT_OK;
	if (rc != 0)
		return EXIT_USAGE;
	if (first_cmd >= argc) {
		usage(stderr);
		config_free(settings_table, SETTINGS_N, &s);
		return EXIT_USAGE;
	}
	log_init((enum log_level)s.log_level, 2);
	if (settings_finish(&s) == -1) {
		fprintf(stderr, "fs-client: set queue_dir and locations_file, or HOME\n");
		config_free(settings_table, SETTINGS_N, &s);
		return EXIT_USAGE;
	}
	if (deliver_global_init() == -1) {
		fprintf(stderr, "fs-client: libcurl initialisation failed\n");
		config_free(settings_table, SETTINGS_N, &s);
		return EXIT_FAIL;
	}
	cmd = argv[first_cmd];
	argc -= first_cmd;
	argv += first_cmd;
	/* getopt names argv[0] in its messages: "fs-client submit: unrecognized option ..." */
	snprintf(prog, sizeof(prog), "fs-client %s", cmd);
	argv[0] = prog;
	if (strcmp(cmd, "submit") == 0)
		rc = cmd_submit(&s, argc, argv);
	else if (strcmp(cmd, "status") == 0)
		rc = cmd_status(&s, argc, argv);
	else if (strcmp(cmd, "cancel") == 0)
		rc = cmd_cancel(&s, argc, argv);
	else if (strcmp(cmd, "deliver") == 0)
		rc = cmd_deliver(&s, argc, argv, 0);
	else if (strcmp(cmd, "run") == 0)
		rc = cmd_deliver(&s, argc, argv, 1);
	else if (strcmp(cmd, "locations") == 0)
		rc = cmd_locations(&s, argc, argv);
	else {
		fprintf(stderr, "fs-client: unknown command \"%s\"\n", cmd);
		usage(stderr);
		rc = EXIT_USAGE;
	}
	config_free(settings_table, SETTINGS_N, &s);
	return rc;
}
