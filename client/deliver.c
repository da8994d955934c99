/* deliver: one delivery pass over the queue: find a server, then upload each job with tus. */
#include "client/deliver.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/queue.h"
#include "common/clock.h"
#include "common/log.h"
#include "proto/ascii.h"
#include "proto/digest.h"
#include "proto/meta.h"
#include "proto/num.h"
#include "proto/problem.h"
#include "proto/tus.h"

#define TOKEN_MAX 8192              /* longest bearer token read */
#define ANSWER_BODY_MAX 16384       /* problem bodies are at most PROBLEM_BODY_MAX */
#define RETRY_AFTER_MAX_S 3600      /* a Retry-After above an hour is read as an hour */
#define REQUEST_TIMEOUT_MS 120000   /* whole exchange of a request without a body */
#define STATE_SAVE_MS 1000          /* how often the sent offset is written while sending */
#define ROUNDS_MAX 6                /* resync / re-create rounds for one job in one pass */
#define DIGEST_FAILURES_MAX 3       /* digest mismatches before a job is held as damaged */
#define CANCEL_FORGET_MS (25LL * 3600 * 1000) /* servers expire unfinished uploads after 24 h */
#define CANCEL_FORGET_COMMITTED_MS (8LL * 24 * 3600 * 1000) /* and committed jobs after 7 d */

/* One HTTP answer, as much of it as the client acts on. */
struct answer {
	long status;               /* 0: no HTTP answer (see rc) */
	CURLcode rc;
	char err[CURL_ERROR_SIZE]; /* libcurl's message for rc */
	int tus;                   /* Tus-Resumable: 1.0.0 was present */
	int html;                  /* Content-Type text/html: a web page, not our server */
	int has_offset;
	uint64_t offset;           /* Upload-Offset */
	int64_t retry_after_ms;    /* 0 when absent */
	char location[512];        /* Location, "" when absent or unusable */
	char body[ANSWER_BODY_MAX];
	size_t body_len;
};

/* What a job's attempt, or a probe, came to. */
enum verdict {
	V_DONE = 0,  /* job committed */
	V_NETWORK,   /* no usable server: waiting for network */
	V_DELAY,     /* the server asks to come back later */
	V_RESYNC,    /* learn the offset again and continue */
	V_NEW,       /* create the upload again */
	V_GONE,      /* 404 on the job's Location: see job_deliver */
	V_DEFER,     /* this job waits for its own server; later jobs may go on */
	V_AUTH,      /* token refused: hold until it changes */
	V_FAILED,    /* refused for good */
	V_STOP,      /* stop requested */
	V_CANCELLED, /* the user cancelled the job meanwhile */
};

struct session {
	const struct deliver_opts *o;
	CURL *h;
	struct curl_slist *hdrs;
	char token[TOKEN_MAX + 1];
	char token_hash[65];
	char auth[TOKEN_MAX + 32];
	char base[LOCATIONS_URL_MAX + 1]; /* address in use, "" while none */
	char location_id[LOCATIONS_ID_MAX + 1];
	char net_msg[512];
	struct progress prog;
	struct answer *a;
	/* the body being sent */
	int fd;
	uint64_t send_off, send_end, send_pos;
	struct queue_job *job;
	struct queue_state *st;
	int64_t last_save_ms, last_stat_ms;
	int sending;  /* a PATCH body is going out: progress is shown and saved */
	int cancelled;        /* the job's directory vanished (fs-client cancel) */
	int read_err;         /* the queued data or its state could not be read or saved */
	int token_refused;    /* a 401/403 in this pass: no more requests with this token */
	int no_location;      /* the locations file names nowhere to deliver to */
};

/* Messages for people: cut to their buffer by design (vsnprintf, so no truncation warning). */
static void msgf(char *msg, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void msgf(char *msg, size_t cap, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, cap, fmt, ap);
	va_end(ap);
}

int deliver_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

/* token68 (RFC 9110): the only characters a bearer token may have on the wire. */
static int token_valid(const char *t)
{
	size_t i, n = strlen(t);

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		char c = t[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    strchr("-._~+/", c))
			continue;
		while (i < n && t[i] == '=')
			i++;
		return i == n;
	}
	return 1;
}

/*
 * Reads the token for this pass: token_file (so a renewed token is picked up without a restart)
 * or the token setting. Returns 0, or -1 with the reason in msg.
 */
static int session_token(struct session *s, char *msg, size_t cap)
{
	const struct deliver_opts *o = s->o;
	unsigned char d[32];
	unsigned int dlen = 0;
	size_t n = 0;

	s->token[0] = '\0';
	if (o->token_file && o->token_file[0]) {
		FILE *f = fopen(o->token_file, "re");

		if (!f) {
			msgf(msg, cap, "cannot read the token file %s: %s", o->token_file,
				 strerror(errno));
			return -1;
		}
		n = fread(s->token, 1, TOKEN_MAX, f);
		fclose(f);
		s->token[n] = '\0';
		while (n && strchr(" \t\r\n", s->token[n - 1]))
			s->token[--n] = '\0';
	} else if (o->token && o->token[0]) {
		snprintf(s->token, sizeof(s->token), "%s", o->token);
	} else {
		msgf(msg, cap, "no token: set token_file (FSG_CLIENT_TOKEN_FILE) or "
				   "FSG_CLIENT_TOKEN");
		return -1;
	}
	if (!token_valid(s->token)) {
		msgf(msg, cap, "the token%s%s is not a bearer token (one line of base64url "
				   "characters expected)", o->token_file && o->token_file[0] ? " in " : "",
			 o->token_file && o->token_file[0] ? o->token_file : "");
		return -1;
	}
	if (!EVP_Digest(s->token, strlen(s->token), d, &dlen, EVP_sha256(), NULL)) {
		msgf(msg, cap, "cannot hash the token");
		return -1;
	}
	ascii_hex_encode(d, sizeof(d), s->token_hash);
	snprintf(s->auth, sizeof(s->auth), "Authorization: Bearer %s", s->token);
	return 0;
}

/* --- one HTTP exchange ------------------------------------------------------------------- */

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct answer *a = arg;
	size_t len = size * n, nl, vl;
	const char *v;

	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		/* A new response (after a 100 Continue, say): forget the previous one's fields. */
		a->tus = a->html = a->has_offset = 0;
		a->retry_after_ms = 0;
		a->location[0] = '\0';
		a->body_len = 0;
		return len;
	}
	v = memchr(p, ':', len);
	if (!v)
		return len;
	nl = (size_t)(v - p);
	v++;
	vl = len - nl - 1;
	while (vl && (*v == ' ' || *v == '\t')) {
		v++;
		vl--;
	}
	while (vl && strchr(" \t\r\n", v[vl - 1]))
		vl--;
#define IS(name) (nl == sizeof(name) - 1 && strncasecmp(p, name, nl) == 0)
	if (IS("Tus-Resumable")) {
		a->tus = tus_resumable_check(v, vl) == PROTO_OK;
	} else if (IS("Upload-Offset")) {
		a->has_offset = tus_offset_parse(v, vl, &a->offset) == PROTO_OK;
	} else if (IS("Retry-After")) {
		uint64_t sec;

		if (num_parse_u64(v, vl, UINT32_MAX, &sec) == PROTO_OK)
			a->retry_after_ms =
				(int64_t)(sec > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : sec) * 1000;
	} else if (IS("Location")) {
		/* Only a path of ours is kept: a Location elsewhere is a portal's redirect. */
		if (vl < sizeof(a->location) && vl > 9 && memcmp(v, "/v1/jobs/", 9) == 0) {
			memcpy(a->location, v, vl);
			a->location[vl] = '\0';
		}
	} else if (IS("Content-Type")) {
		a->html = vl >= 9 && strncasecmp(v, "text/html", 9) == 0;
	}
#undef IS
	return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct answer *a = arg;
	size_t len = size * n, room = sizeof(a->body) - 1 - a->body_len;

	/* Keep the start (problem bodies are small); a portal's large page is read and dropped. */
	if (len < room)
		room = len;
	memcpy(a->body + a->body_len, p, room);
	a->body_len += room;
	a->body[a->body_len] = '\0';
	return len;
}

static enum queue_err state_save(struct session *s);

static size_t on_read(char *buf, size_t size, size_t n, void *arg)
{
	struct session *s = arg;
	size_t want = size * n;
	ssize_t got;

	if (s->send_pos >= s->send_end)
		return 0;
	if (want > s->send_end - s->send_pos)
		want = (size_t)(s->send_end - s->send_pos);
	got = pread(s->fd, buf, want, (off_t)s->send_pos);
	/* A short or failed read must abort: returning 0 would end the body early, cleanly. */
	if (got <= 0) {
		s->read_err = 1;
		return CURL_READFUNC_ABORT;
	}
	if (s->send_pos + (uint64_t)got == s->send_end && s->st && !s->st->final_sent) {
		/*
		 * The last byte leaves now: from here the job may be committed even if no answer
		 * ever comes. That must be on disk first (see job_deliver), or the byte stays here.
		 */
		s->st->final_sent = 1;
		if (queue_state_save(s->job, s->st) != QUEUE_OK) {
			s->st->final_sent = 0;
			s->read_err = 1;
			return CURL_READFUNC_ABORT;
		}
	}
	s->send_pos += (uint64_t)got;
	return (size_t)got;
}

static int on_seek(void *arg, curl_off_t off, int origin)
{
	struct session *s = arg;

	if (origin != SEEK_SET || off < 0 || (uint64_t)off > s->send_end - s->send_off)
		return CURL_SEEKFUNC_FAIL;
	s->send_pos = s->send_off + (uint64_t)off;
	return CURL_SEEKFUNC_OK;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct session *s = arg;
	int64_t now;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	if (s->o->stop && *s->o->stop)
		return 1;
	if (!s->job)
		return 0;
	now = clock_mono_ms();
	if (now - s->last_stat_ms >= 250) {
		struct stat sb;

		s->last_stat_ms = now;
		/* fs-client cancel moves the directory away: stop sending the job at once. */
		if (stat(s->job->dir, &sb) == -1 && errno == ENOENT) {
			s->cancelled = 1;
			return 1;
		}
	}
	if (!s->sending)
		return 0;
	progress_update(&s->prog, s->send_off + (uint64_t)ulnow);
	if (now - s->last_save_ms >= STATE_SAVE_MS) {
		s->last_save_ms = now;
		s->st->offset = s->send_off + (uint64_t)ulnow;
		s->st->updated_ms = clock_unix_ms();
		state_save(s);
	}
	return 0;
}

/* curl_slist_append that remembers a failure (the list so far is kept either way). */
static struct curl_slist *slist_add(struct curl_slist *l, const char *line, int *oom)
{
	struct curl_slist *n = curl_slist_append(l, line);

	if (!n) {
		*oom = 1;
		return l;
	}
	return n;
}

/* Options every request gets; curl_easy_reset keeps the open connections for the next one. */
static void session_prepare(struct session *s, struct answer *a, const char *url)
{
	const struct deliver_opts *o = s->o;
	CURL *h = s->h;

	curl_easy_reset(h);
	memset(a, 0, sizeof(*a));
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (o->ca_file && o->ca_file[0]) {
		/* Instead of the system's: Debian's libcurl also has a CA path built in. */
		curl_easy_setopt(h, CURLOPT_CAINFO, o->ca_file);
		curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
	}
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)o->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)((o->stall_timeout_ms + 999) / 1000));
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "fs-client/0.1.0");
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, a->err);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, s);
}

/*
 * Runs one request. method: "OPTIONS", "HEAD", "POST", "PATCH" or "DELETE"; auth adds the
 * token; PATCH sends s->fd from s->send_off to s->send_end.
 */
static void session_request(struct session *s, const char *method, const char *path, int auth,
			    struct curl_slist *extra, struct answer *a)
{
	char url[LOCATIONS_URL_MAX + 600];
	struct curl_slist *h = NULL, *e;
	CURL *c = s->h;
	int oom = 0;

	snprintf(url, sizeof(url), "%s%s", s->base, path);
	session_prepare(s, a, url);
	s->cancelled = 0;
	s->read_err = 0;
	h = slist_add(h, "Tus-Resumable: " TUS_VERSION, &oom);
	if (auth)
		h = slist_add(h, s->auth, &oom);
	for (e = extra; e; e = e->next)
		h = slist_add(h, e->data, &oom);
	if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
		/* A creation without body has no content type (curl would add a form's). */
		h = slist_add(h, "Content-Type:", &oom);
	} else if (strcmp(method, "PATCH") == 0) {
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PATCH");
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
				 (curl_off_t)(s->send_end - s->send_off));
		curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(c, CURLOPT_READDATA, s);
		curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(c, CURLOPT_SEEKDATA, s);
		if (s->o->max_rate)
			curl_easy_setopt(c, CURLOPT_MAX_SEND_SPEED_LARGE,
					 (curl_off_t)s->o->max_rate);
		h = slist_add(h, "Content-Type: " TUS_CONTENT_TYPE, &oom);
	} else {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	}
	/* A probe must answer as fast as it connects: a hung address is skipped quickly. */
	if (strcmp(method, "OPTIONS") == 0)
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(2 * s->o->connect_timeout_ms));
	else if (strcmp(method, "PATCH") != 0)
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)REQUEST_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	/* A header lost to a failed allocation (the token, say) must not go out as a request. */
	a->rc = oom ? CURLE_OUT_OF_MEMORY : curl_easy_perform(c);
	if (a->rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
	else
		a->status = 0;
	for (e = h; e; e = e->next)
		OPENSSL_cleanse(e->data, strlen(e->data));
	curl_slist_free_all(h);
	/* Nothing of this request may leak into the next one through the reused handle. */
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
}

/* --- judging answers --------------------------------------------------------------------- */

/* For an answer with no HTTP status: was it the network, our stop, or a cancel? */
static enum verdict curl_verdict(struct session *s, const struct answer *a, char *msg,
				 size_t cap)
{
	const char *why = a->err[0] ? a->err : curl_easy_strerror(a->rc);

	if (s->read_err) {
		msgf(msg, cap, "cannot read the queued data or record its progress: %s",
		     strerror(errno));
		return V_DELAY;
	}
	if (a->rc == CURLE_ABORTED_BY_CALLBACK)
		return s->cancelled ? V_CANCELLED : V_STOP;
	switch (a->rc) {
	case CURLE_PEER_FAILED_VERIFICATION:
		msgf(msg, cap, "waiting for network: %s presented a certificate that does not "
				   "verify (a hotel or airport login page may be intercepting): %s",
			 s->base, why);
		break;
	case CURLE_SSL_CONNECT_ERROR:
		msgf(msg, cap, "waiting for network: no TLS connection with %s (a login page "
				   "may be intercepting): %s", s->base, why);
		break;
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		msgf(msg, cap, "waiting for network: the CA file cannot be used: %s", why);
		break;
	default:
		msgf(msg, cap, "waiting for network: %s unreachable: %s", s->base, why);
		break;
	}
	return V_NETWORK;
}

/* Not a tus answer of ours: a portal's page, a redirect, a proxy's error page. */
static int answer_foreign(const struct answer *a)
{
	return !a->tus || a->html || (a->status >= 300 && a->status < 400);
}

/*
 * Judges an HTTP answer that is not the expected success. writes a message for people into msg.
 */
static enum verdict answer_verdict(struct session *s, const char *what, const struct answer *a,
				   char *msg, size_t cap)
{
	struct problem p;
	int have = 0;
	const char *detail = "";

	if (a->status == 0)
		return curl_verdict(s, a, msg, cap);
	if (answer_foreign(a)) {
		msgf(msg, cap, "waiting for network: %s answered %s with a web page or redirect "
				   "(HTTP %ld), not as a print server: log in to the network first",
			 s->base, what, a->status);
		return V_NETWORK;
	}
	if (a->status >= 200 && a->status < 300) {
		msgf(msg, cap, "%s: HTTP %ld without the expected headers", what, a->status);
		return V_RESYNC;
	}
	if (a->body_len && problem_parse(a->body, a->body_len, &p) == PROTO_OK) {
		have = 1;
		detail = p.detail;
	}
	switch (a->status) {
	case 401:
	case 403:
		msgf(msg, cap, "the server refused the token (%ld%s%s): get a new token; the job "
				   "stays queued", a->status, detail[0] ? ": " : "", detail);
		return V_AUTH;
	case 404:
		msgf(msg, cap, "%s: the server does not know the upload (404)", what);
		return V_GONE;
	case 410:
		msgf(msg, cap, "%s: the upload expired at the server (410); starting it again",
			 what);
		return V_NEW;
	default:
		break;
	}
	msgf(msg, cap, "%s: HTTP %ld%s%s", what, a->status, detail[0] ? ": " : "", detail);
	if (have) {
		if (p.type == PROBLEM_OFFSET_MISMATCH || p.type == PROBLEM_CHECKSUM_MISMATCH)
			return V_RESYNC;
		switch (p.retry) {
		case PROBLEM_RETRY_NEVER:
			return V_FAILED;
		case PROBLEM_RETRY_DELAY:
			return V_DELAY;
		case PROBLEM_RETRY_RESYNC:
			return V_RESYNC;
		case PROBLEM_RETRY_NEW_UPLOAD:
			return V_NEW;
		}
	}
	/* No problem body (HEAD, or a foreign server's): judge by the status alone. */
	if (a->status == 429 || a->status == 503 || a->status == 507 || a->status == 500)
		return V_DELAY;
	if (a->status == 408 || a->status == 409 || a->status == 502 || a->status == 504)
		return V_RESYNC;
	if (a->status >= 500)
		return V_DELAY;
	return V_FAILED;
}

/* --- finding a server -------------------------------------------------------------------- */

/* OPTIONS /v1/jobs without credentials: is this address our server, reachable for real? */
static int probe(struct session *s, const char *addr, char *msg, size_t cap)
{
	struct answer *a = s->a;

	snprintf(s->base, sizeof(s->base), "%s", addr);
	session_request(s, "OPTIONS", "/v1/jobs", 0, NULL, a);
	if (a->status == 204 || a->status == 200) {
		if (!answer_foreign(a))
			return 0;
	}
	if (a->status == 0) {
		curl_verdict(s, a, msg, cap);
	} else if (answer_foreign(a)) {
		answer_verdict(s, "the probe", a, msg, cap);
	} else {
		msgf(msg, cap, "waiting for network: %s is not taking jobs (HTTP %ld)", addr,
			 a->status);
	}
	s->base[0] = '\0';
	return -1;
}

/* Tries the plan's addresses in order; the first that answers as our server is used. */
static int session_connect(struct session *s)
{
	const struct locations *l = s->o->locations;
	size_t order[2];
	int n = locations_plan(l, s->o->override, order), i;
	char msg[512], first[512] = "";
	int interesting = 0;

	if (n <= 0) {
		s->no_location = 1;
		snprintf(s->net_msg, sizeof(s->net_msg), n < 0 ? "no location \"%s\" in the "
			 "locations file" : "no location to deliver to: the locations file has no "
			 "current location and no Default one",
			 s->o->override ? s->o->override : "");
		return -1;
	}
	for (i = 0; i < n; i++) {
		size_t k, na = locations_address_count(l, order[i]);

		snprintf(s->location_id, sizeof(s->location_id), "%s", locations_id(l, order[i]));
		for (k = 0; k < na; k++) {
			const char *addr = locations_address(l, order[i], k);

			if (s->o->stop && *s->o->stop)
				return -1;
			if (probe(s, addr, msg, sizeof(msg)) == 0) {
				snprintf(s->base, sizeof(s->base), "%s", addr);
				s->net_msg[0] = '\0';
				return 0;
			}
			log_info("client_probe", "%s", msg);
			/* A login page explains the situation better than a refused connection. */
			if (!first[0] || (!interesting && !strstr(msg, "unreachable"))) {
				snprintf(first, sizeof(first), "%s", msg);
				interesting = !strstr(msg, "unreachable");
			}
		}
	}
	snprintf(s->net_msg, sizeof(s->net_msg), "%s", first);
	return -1;
}

/* --- one job ----------------------------------------------------------------------------- */

static void job_label(const struct queue_job *j, char *buf, size_t cap)
{
	msgf(buf, cap, "job %.8s %s", j->job_id, j->name[0] ? j->name : "(no name)");
}

/*
 * Saves the job's state. A job cancelled meanwhile was moved to cancelled/: its state goes
 * there, so that the Location it may just have got is known when its upload is terminated.
 */
static enum queue_err state_save(struct session *s)
{
	enum queue_err rc = queue_state_save(s->job, s->st);

	if (rc == QUEUE_E_NOT_FOUND) {
		struct queue_job moved = *s->job;
		const char *base = strrchr(s->job->dir, '/');

		snprintf(moved.dir, sizeof(moved.dir), "%s/cancelled%s", s->o->queue_dir,
			 base ? base : "");
		queue_state_save(&moved, s->st);
	}
	return rc;
}

static void state_set(struct session *s, enum queue_phase ph, const char *err)
{
	s->st->phase = ph;
	snprintf(s->st->error, sizeof(s->st->error), "%s", err ? err : "");
	s->st->updated_ms = clock_unix_ms();
	state_save(s);
}

/* POST /v1/jobs: creates the upload (or finds the one this client job id already has). */
static enum verdict job_create(struct session *s, char *msg, size_t cap)
{
	const struct queue_job *j = s->job;
	struct answer *a = s->a;
	struct job_meta m;
	char meta[META_HEADER_MAX + 1], hbuf[META_HEADER_MAX + 32], digest[DIGEST_REPR_LEN + 1];
	char dh[DIGEST_REPR_LEN + 32], lh[64];
	struct curl_slist *x = NULL;

	meta_init(&m, j->job_id);
	snprintf(m.name, sizeof(m.name), "%s", j->name);
	snprintf(m.format, sizeof(m.format), "%s", j->format);
	m.copies = j->copies;
	m.submitted_at_ms = j->submitted_at_ms;
	if (j->encoding == QUEUE_ENC_ZSTD) {
		m.encoding = META_ENCODING_ZSTD;
		m.size = (int64_t)j->size;
	}
	if (meta_encode(&m, meta, sizeof(meta), NULL) != PROTO_OK ||
	    digest_repr_format(j->sha256, digest, sizeof(digest)) != PROTO_OK) {
		msgf(msg, cap, "cannot encode the job's metadata");
		return V_FAILED;
	}
	snprintf(hbuf, sizeof(hbuf), "Upload-Metadata: %s", meta);
	snprintf(dh, sizeof(dh), "Repr-Digest: %s", digest);
	snprintf(lh, sizeof(lh), "Upload-Length: %" PRIu64, j->stored_size);
	x = curl_slist_append(x, hbuf);
	x = curl_slist_append(x, dh);
	x = curl_slist_append(x, lh);
	session_request(s, "POST", "/v1/jobs", 1, x, a);
	curl_slist_free_all(x);
	if ((a->status == 201 || a->status == 200) && !answer_foreign(a)) {
		if (!a->location[0] || !a->has_offset || a->offset > j->stored_size) {
			msgf(msg, cap, "the server's answer to the creation lacks Location or "
					   "Upload-Offset");
			return V_DELAY;
		}
		/* Stored before anything else: from now on the job resumes, never re-creates. */
		snprintf(s->st->base, sizeof(s->st->base), "%s", s->base);
		snprintf(s->st->location, sizeof(s->st->location), "%s", a->location);
		s->st->offset = a->offset;
		s->st->final_sent = 0;
		state_set(s, QUEUE_PHASE_UPLOADING, "");
		/*
		 * Only a 200 says committed (PROTOCOL.md 8.2). A 201 at the full offset is an
		 * upload whose commit has not happened: the empty PATCH that follows commits it.
		 */
		return a->status == 200 ? V_DONE : V_RESYNC;
	}
	return answer_verdict(s, "creation", a, msg, cap);
}

/* HEAD on the stored Location: the server's offset. */
static enum verdict job_head(struct session *s, char *msg, size_t cap)
{
	struct answer *a = s->a;

	session_request(s, "HEAD", s->st->location, 1, NULL, a);
	if (a->status == 200 && !answer_foreign(a) && a->has_offset) {
		if (a->offset > s->job->stored_size) {
			msgf(msg, cap, "the server reports an offset past the job's length");
			return V_NEW;
		}
		/*
		 * A full offset is not a commit: the upload may be receiving with every byte
		 * (a cut after the last byte, a failed commit). The PATCH from here, empty in
		 * that case, commits it or answers 204 for a committed job (PROTOCOL.md 8.4).
		 */
		s->st->offset = a->offset;
		return V_RESYNC;
	}
	return answer_verdict(s, "resume", a, msg, cap);
}

/* PATCH the rest of the job from the confirmed offset. */
static enum verdict job_patch(struct session *s, char *msg, size_t cap)
{
	const struct queue_job *j = s->job;
	struct answer *a = s->a;
	char oh[64], label[128];
	struct curl_slist *x = NULL;
	uint64_t sent;

	s->fd = queue_data_open(j);
	if (s->fd == -1) {
		msgf(msg, cap, "cannot open the queued data: %s", strerror(errno));
		return V_DELAY;
	}
	s->send_off = s->st->offset;
	s->send_pos = s->send_off;
	s->send_end = j->stored_size;
	/* The server just told the offset: nothing sent before can have committed the job. */
	s->st->final_sent = 0;
	state_set(s, QUEUE_PHASE_UPLOADING, "");
	snprintf(oh, sizeof(oh), "Upload-Offset: %" PRIu64, s->send_off);
	x = curl_slist_append(x, oh);
	job_label(j, label, sizeof(label));
	progress_begin(&s->prog, label, s->send_off, j->stored_size);
	s->last_save_ms = clock_mono_ms();
	s->sending = 1;
	session_request(s, "PATCH", s->st->location, 1, x, a);
	s->sending = 0;
	curl_slist_free_all(x);
	close(s->fd);
	s->fd = -1;
	sent = s->send_pos;
	if (a->status == 204 && !answer_foreign(a) && a->has_offset) {
		s->st->offset = a->offset;
		progress_end(&s->prog, a->offset,
			     a->offset == j->stored_size ? "all sent" : "partly sent");
		return a->offset == j->stored_size ? V_DONE : V_RESYNC;
	}
	progress_end(&s->prog, sent, "interrupted");
	/* What reached the server is for HEAD to say; until then show what was sent. */
	s->st->offset = sent;
	return answer_verdict(s, "upload", a, msg, cap);
}

/* A job whose last byte may have committed it must never be created anew after this long. */
#define REPOST_WINDOW_MS (6LL * 24 * 3600 * 1000) /* under the gateway's 7-day idempotency */

/*
 * Delivers one job as far as it goes now, through s->base or, for an upload started
 * elsewhere, through the address it was started at when that still answers. Returns V_DONE
 * (committed: the caller removes it), or the verdict that stopped it, with its state saved.
 */
static enum verdict job_deliver(struct session *s, const struct deliver_opts *o,
				struct deliver_result *res)
{
	struct queue_state *st = s->st;
	char msg[512] = "", here[LOCATIONS_URL_MAX + 1];
	enum verdict v = V_RESYNC;
	unsigned digest_failures = 0;
	int rounds;

	snprintf(here, sizeof(here), "%s", s->base);
	if (st->location[0] && strcmp(st->base, s->base) != 0) {
		char pmsg[512];

		/* The upload lives where it was started: resume there when it answers. */
		if (probe(s, st->base, pmsg, sizeof(pmsg)) != 0) {
			snprintf(s->base, sizeof(s->base), "%s", here);
			if (st->final_sent) {
				/*
				 * Its last byte went there unanswered: it may be committed there, and
				 * only that deployment can say. Never create it anew elsewhere.
				 */
				msgf(msg, sizeof(msg), "waiting for %.300s, which received the whole "
				     "job without confirming it (%.150s)", st->base, pmsg);
				state_set(s, QUEUE_PHASE_UPLOADING, msg);
				return V_DEFER;
			}
		}
	}
	for (rounds = 0; rounds < ROUNDS_MAX; rounds++) {
		uint64_t before = st->offset;

		if (o->stop && *o->stop) {
			v = V_STOP;
			break;
		}
		if (!st->location[0])
			v = job_create(s, msg, sizeof(msg));
		else
			v = job_head(s, msg, sizeof(msg));
		if (v == V_RESYNC && st->location[0] && st->offset <= s->job->stored_size)
			v = job_patch(s, msg, sizeof(msg));
		if (st->offset > before)
			res->progressed = 1;
		if (v == V_GONE) {
			/*
			 * 404: unknown here. Before its last byte left, the job cannot have been
			 * committed anywhere: create it anew. After, it may have been committed and
			 * released: a new creation is answered from the server's tombstone (200)
			 * only while the gateway's idempotency record lives, so later it is held.
			 */
			if (!st->final_sent ||
			    (strcmp(st->base, s->base) == 0 &&
			     clock_unix_ms() - s->job->submitted_at_ms < REPOST_WINDOW_MS)) {
				v = V_NEW;
			} else {
				msgf(msg, sizeof(msg), "the server no longer knows this job, whose "
				     "last byte was sent: it may have been delivered and printed; "
				     "submit it again if it did not print");
				v = V_FAILED;
			}
		}
		if (v == V_RESYNC)
			continue;
		if (v == V_NEW) {
			if (strstr(msg, "HTTP 460") && ++digest_failures >= DIGEST_FAILURES_MAX) {
				msgf(msg, sizeof(msg), "the server found the job damaged %u times "
				     "(digest mismatch): the local copy may be corrupt",
				     digest_failures);
				v = V_FAILED;
				break;
			}
			log_info("client_new_upload", "%s", msg);
			st->location[0] = st->base[0] = '\0';
			st->offset = 0;
			st->final_sent = 0;
			state_set(s, QUEUE_PHASE_QUEUED, msg);
			continue;
		}
		break;
	}
	if (rounds == ROUNDS_MAX) {
		char last[400];

		snprintf(last, sizeof(last), "%s", msg);
		msgf(msg, sizeof(msg), "no progress after %d attempts in a row (last: %s); trying "
		     "again later", ROUNDS_MAX, last[0] ? last : "none");
		v = V_DELAY;
	}
	switch (v) {
	case V_DONE:
		break;
	case V_AUTH:
		s->token_refused = 1;
		snprintf(st->token_hash, sizeof(st->token_hash), "%s", s->token_hash);
		state_set(s, QUEUE_PHASE_AUTH, msg);
		break;
	case V_FAILED:
		state_set(s, QUEUE_PHASE_FAILED, msg);
		break;
	case V_STOP:
		state_save(s);
		break;
	case V_CANCELLED:
		break;
	default:
		/* Retry-After counts only from our servers, not from a portal's page. */
		if (s->a->tus && s->a->retry_after_ms > res->retry_after_ms)
			res->retry_after_ms = s->a->retry_after_ms;
		state_set(s, st->location[0] ? QUEUE_PHASE_UPLOADING : QUEUE_PHASE_WAITING, msg);
		break;
	}
	snprintf(s->base, sizeof(s->base), "%s", here);
	return v;
}

/* --- cancelled jobs ---------------------------------------------------------------------- */

static void cancelled_pass(struct session *s, const struct deliver_opts *o, int online)
{
	struct queue_job *jobs = NULL;
	struct queue_state *sts = NULL;
	size_t n = 0, i;

	if (queue_cancelled(o->queue_dir, &jobs, &sts, &n) != QUEUE_OK)
		return;
	for (i = 0; i < n; i++) {
		struct answer *a = s->a;
		/* Servers expire an unfinished upload after a day, a committed job after a week. */
		int64_t forget = sts[i].final_sent ? CANCEL_FORGET_COMMITTED_MS : CANCEL_FORGET_MS;
		int done = !sts[i].location[0] || clock_unix_ms() - sts[i].updated_ms > forget;

		if (!done && online && !s->token_refused && !(o->stop && *o->stop)) {
			char here[LOCATIONS_URL_MAX + 1], pmsg[512];

			/* The termination goes where the upload lives, which must answer the probe. */
			snprintf(here, sizeof(here), "%s", s->base);
			if (strcmp(sts[i].base, s->base) == 0 ||
			    probe(s, sts[i].base, pmsg, sizeof(pmsg)) == 0) {
				session_request(s, "DELETE", sts[i].location, 1, NULL, a);
				done = !answer_foreign(a) &&
				       (a->status == 204 || a->status == 404 || a->status == 410);
				if (!answer_foreign(a) && (a->status == 401 || a->status == 403))
					s->token_refused = 1;
				log_info("client_cancel", "job %s: termination answered %ld",
					 jobs[i].job_id, a->status);
			}
			snprintf(s->base, sizeof(s->base), "%s", here);
		}
		if (done)
			queue_cancel_done(o->queue_dir, &jobs[i]);
	}
	free(jobs);
	free(sts);
}

/* --- the pass ---------------------------------------------------------------------------- */

static void network_save(const struct session *s, const struct deliver_opts *o, int online)
{
	struct queue_network n;

	memset(&n, 0, sizeof(n));
	n.online = online;
	snprintf(n.location, sizeof(n.location), "%s", s->location_id);
	snprintf(n.address, sizeof(n.address), "%s", online ? s->base : "");
	snprintf(n.message, sizeof(n.message), "%s", online ? "" : s->net_msg);
	n.checked_ms = clock_unix_ms();
	n.pid = (int)getpid();
	queue_network_save(o->queue_dir, &n);
}

/* Jobs that cannot go now whatever the network does: held for the user. */
static int job_held(const struct session *s, const struct queue_state *st)
{
	if (st->phase == QUEUE_PHASE_FAILED)
		return 1;
	return st->phase == QUEUE_PHASE_AUTH && strcmp(st->token_hash, s->token_hash) == 0;
}

void deliver_pass(const struct deliver_opts *o, struct deliver_result *res)
{
	struct session s;
	struct queue_job *jobs = NULL;
	struct queue_state *sts = NULL;
	size_t n = 0, i;
	int online = 0, have_token;
	char tmsg[512] = "";

	memset(res, 0, sizeof(*res));
	memset(&s, 0, sizeof(s));
	s.o = o;
	s.fd = -1;
	s.a = malloc(sizeof(*s.a));
	s.h = curl_easy_init();
	if (!s.a || !s.h || queue_open(o->queue_dir) != QUEUE_OK ||
	    queue_list(o->queue_dir, &jobs, &sts, &n) != QUEUE_OK) {
		res->outcome = DELIVER_ERROR;
		goto out;
	}
	progress_init(&s.prog, o->progress, o->out);
	have_token = session_token(&s, tmsg, sizeof(tmsg)) == 0;

	/* Probe only when something needs the network. */
	{
		struct queue_job *cj = NULL;
		struct queue_state *cs = NULL;
		size_t cn = 0, pending = 0;

		queue_cancelled(o->queue_dir, &cj, &cs, &cn);
		free(cj);
		free(cs);
		for (i = 0; i < n; i++)
			pending += !job_held(&s, &sts[i]);
		if ((pending || cn) && have_token)
			online = session_connect(&s) == 0;
		if (!have_token)
			snprintf(s.net_msg, sizeof(s.net_msg), "%s", tmsg);
		if (pending || cn)
			network_save(&s, o, online);
		if (have_token)
			cancelled_pass(&s, o, online);
	}

	for (i = 0; i < n; i++) {
		enum verdict v;

		if (job_held(&s, &sts[i])) {
			res->held++;
			continue;
		}
		if (o->stop && *o->stop) {
			res->outcome = DELIVER_STOPPED;
			break;
		}
		s.job = &jobs[i];
		s.st = &sts[i];
		if (s.token_refused) {
			/*
			 * The token was just refused: every further request with it would count as
			 * another failed authentication against this network's address.
			 */
			snprintf(sts[i].token_hash, sizeof(sts[i].token_hash), "%s", s.token_hash);
			state_set(&s, QUEUE_PHASE_AUTH, "the server refused the token: get a new "
				  "token; the job stays queued");
			res->held++;
			continue;
		}
		if (!have_token || !online) {
			/* Say why on every job still waiting, so status shows it per job too. */
			state_set(&s, sts[i].location[0] ? QUEUE_PHASE_UPLOADING : QUEUE_PHASE_WAITING,
				  have_token ? s.net_msg : tmsg);
			continue;
		}
		v = job_deliver(&s, o, res);
		if (v == V_DONE) {
			char label[128];

			job_label(s.job, label, sizeof(label));
			sts[i].phase = QUEUE_PHASE_DONE;
			queue_remove(o->queue_dir, s.job);
			res->delivered++;
			res->progressed = 1;
			log_info("client_delivered", "%s delivered to %s", label, s.base);
			if (o->progress != PROGRESS_NONE)
				fprintf(o->out, "fs-client: %s: delivered via %s\n", label, s.base);
			continue;
		}
		if (v == V_AUTH || v == V_FAILED) {
			res->held++;
			if (o->progress != PROGRESS_NONE)
				fprintf(o->out, "fs-client: %s: %s\n", s.job->name, sts[i].error);
			continue;
		}
		if (v == V_CANCELLED) {
			s.job = NULL;
			cancelled_pass(&s, o, 1);
			continue;
		}
		if (v == V_DEFER)
			continue;
		if (v == V_STOP) {
			res->outcome = DELIVER_STOPPED;
			break;
		}
		/*
		 * Network gone or the server asks for time: later jobs must not be created
		 * before this one (print order), so the pass ends here.
		 */
		if (v == V_NETWORK) {
			online = 0;
			snprintf(s.net_msg, sizeof(s.net_msg), "%s", sts[i].error);
			network_save(&s, o, 0);
		}
		break;
	}
	s.job = NULL;
	if (res->outcome == DELIVER_STOPPED)
		goto out;
	free(jobs);
	free(sts);
	jobs = NULL;
	sts = NULL;
	n = 0;
	if (queue_list(o->queue_dir, &jobs, &sts, &n) != QUEUE_OK) {
		res->outcome = DELIVER_ERROR;
		goto out;
	}
	res->remaining = (unsigned)n;
	res->held = 0;
	for (i = 0; i < n; i++)
		res->held += job_held(&s, &sts[i]);
	res->outcome = n > res->held ? DELIVER_WAIT : DELIVER_IDLE;
	if ((!have_token || s.no_location) && n > res->held)
		res->outcome = DELIVER_ERROR;
out:
	free(jobs);
	free(sts);
	if (s.h)
		curl_easy_cleanup(s.h);
	free(s.a);
	OPENSSL_cleanse(s.token, sizeof(s.token));
	OPENSSL_cleanse(s.auth, sizeof(s.auth));
}
