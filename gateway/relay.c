/* relay: one client request, from its first handler call to its answer, through one server. */
#include "gateway/relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <gnutls/gnutls.h>
#include <jansson.h>

#include "common/clock.h"
#include "common/log.h"
#include "gateway/metrics.h"
#include "proto/digest.h"
#include "proto/jobid.h"
#include "proto/num.h"
#include "proto/rkey.h"
#include "proto/route.h"
#include "proto/tus.h"

/* Most servers one creation tries before answering 503. */
#define RELAY_TRIES 4
/* Largest upstream answer body read (problem bodies and status objects are far smaller). */
#define RELAY_BODY_MAX PROBLEM_BODY_MAX
/* After an answer is fixed mid-body, client bytes still read and dropped before closing. */
#define RELAY_DISCARD_MAX (1024 * 1024)
/* curl's upload buffer: its minimum, so an upload costs as little memory as curl allows. */
#define RELAY_UPLOAD_BUFFER 16384
/* curl's receive buffer: the server's answers are problem bodies and status objects. */
#define RELAY_RECV_BUFFER 4096
/*
 * Body bytes copied out of MHD's buffer and waiting for curl. Copying lets MHD go on reading:
 * suspending the connection for each chunk instead costs two epoll_ctl calls, an inter-thread
 * wake-up and a walk of MHD's whole suspended list per resume (libmicrohttpd 0.9.75), which
 * stalls a worker holding thousands of trickling uploads. Freed as soon as curl has it all.
 */
#define RELAY_HOLD_MAX 65536
#define RELAY_EXPECT_TIMEOUT_MS 1000L

enum relay_phase {
	PHASE_HEADERS = 0, /* before the first body call: the client waits for 100 Continue */
	PHASE_BODY,        /* body calls */
	PHASE_FINAL,       /* MHD's last call came: the body is complete */
	PHASE_ANSWERED,    /* the answer is queued */
};

/* What the server answered, as far as the relay passes it on. */
struct upstream_answer {
	char location[96];
	char offset[24];
	char length[24];
	char expires[40];
	char retry_after[16];
	char ctype[80];
	char *metadata;       /* Upload-Metadata (HEAD), malloc'd */
	char *body;
	size_t body_len;
	int body_overflow;
};

struct relay {
	struct worker *w;
	struct MHD_Connection *conn;
	struct relay *next_dirty;
	struct relay *prev, *next; /* w->all */
	unsigned refs;             /* MHD's, the transfer's, each Redis command's, the dirty list's */
	int dirty;
	int want_resume, want_unpause, want_cancel;

	enum relay_phase phase;
	int suspended;
	int recall;                /* the repeated headers call MHD makes after a resume */
	int mhd_done;              /* MHD completed the request (or the client left) */
	int client_gone;           /* ... without the request finishing */
	int kill;                  /* close the connection at the next handler call */
	int64_t start_ms;          /* monotonic */
	int64_t deadline_ms;       /* monotonic: absolute limit */
	int64_t answer_by_ms;      /* monotonic: the server must answer by then (0: not yet) */
	int64_t window_ms;         /* monotonic start of the current rate window */
	uint64_t window_bytes;
	struct loop_timer *timer;

	struct admit a;
	char oh[OWNER_HASH_LEN + 1];
	char addr[INET6_ADDRSTRLEN];
	int upload_counted;        /* limits_upload_begin succeeded */
	int active_counted;        /* METRICS_ACTIVE_UPLOADS */
	int pool_counted;          /* pool_upload_started(server.id) */

	/* body bytes taken from MHD that curl has not read yet (RELAY_HOLD_MAX at most) */
	char *hold;
	size_t hold_len;
	size_t hold_off;
	int held_back;             /* MHD keeps bytes that did not fit: resume once curl has ours */
	uint64_t received;         /* body bytes consumed from MHD */
	uint64_t sent;             /* body bytes handed to curl */
	uint64_t discarded;

	/* the server */
	struct announce server;
	char tried[RELAY_TRIES][SERVER_ID_MAX + 1];
	size_t ntried;
	int idem_claimed;          /* our SET NX won */
	int idem_bound;            /* the idempotency record named the server: no failover */
	uint64_t sequence;
	CURL *easy;
	struct curl_slist *hdrs;
	int in_flight;
	int curl_paused;
	struct upstream_answer up;

	/* the answer */
	struct MHD_Response *resp;
	unsigned resp_status;
};

static atomic_uint_fast64_t seq_last; /* the clock fallback for sequences, strictly increasing */

static void relay_dirty(struct relay *r);
static void relay_arm(struct relay *r);
static void relay_create_pick(struct relay *r);

/* ---- life cycle -------------------------------------------------------------------------- */

static void relay_answer_free(struct upstream_answer *u)
{
	free(u->metadata);
	free(u->body);
	memset(u, 0, sizeof(*u));
}

static void relay_unref(struct relay *r)
{
	if (--r->refs)
		return;
	loop_timer_cancel(r->w->loop, r->timer);
	if (r->upload_counted)
		limits_upload_end(r->w->env->limits, r->oh);
	if (r->active_counted)
		metrics_gauge_add(METRICS_ACTIVE_UPLOADS, -1);
	if (r->resp)
		MHD_destroy_response(r->resp);
	relay_answer_free(&r->up);
	free(r->hold);
	if (r->prev)
		r->prev->next = r->next;
	else
		r->w->all = r->next;
	if (r->next)
		r->next->prev = r->prev;
	atomic_fetch_sub(&r->w->hub->requests, 1);
	free(r);
}

static void relay_dirty(struct relay *r)
{
	if (r->dirty)
		return;
	r->dirty = 1;
	r->refs++;
	r->next_dirty = r->w->dirty;
	r->w->dirty = r;
}

static void relay_suspend(struct relay *r)
{
	if (r->suspended)
		return;
	MHD_suspend_connection(r->conn);
	r->suspended = 1;
}

/* ---- answers ----------------------------------------------------------------------------- */

static int relay_is_api(const struct relay *r)
{
	return r->a.route != ADMIT_HEALTH && r->a.route != ADMIT_READY &&
	       r->a.route != ADMIT_METRICS;
}

/* An answer is now fixed while the handler is not running: wake MHD if it waits for us. */
static void relay_ready(struct relay *r)
{
	if (r->suspended && !r->mhd_done) {
		r->want_resume = 1;
		relay_dirty(r);
	}
}

/* Replaces the pending answer; the response is queued at the next handler call that may. */
static void relay_set_answer(struct relay *r, unsigned status, struct MHD_Response *resp)
{
	if (r->resp)
		MHD_destroy_response(r->resp);
	r->resp = resp;
	r->resp_status = status;
	if (!resp)
		return;
	if (relay_is_api(r) || status >= 400) {
		MHD_add_response_header(resp, "Tus-Resumable", TUS_VERSION);
		if (r->a.route != ADMIT_OPTIONS)
			MHD_add_response_header(resp, "Cache-Control", "no-store");
	}
	/* a client held for this answer (Redis, upstream, a deadline) is woken here, whoever set it */
	relay_ready(r);
}

static struct MHD_Response *relay_response(const char *body, size_t len)
{
	return MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
}

/* An error answer with a problem+json body (PROTOCOL.md section 13). */
static void relay_problem(struct relay *r, enum problem_type t, const char *detail)
{
	const struct problem_info *info = problem_info(t);
	struct MHD_Response *resp;
	size_t len = 0;
	char *body;

	if (!info)
		info = problem_info(t = PROBLEM_INTERNAL);
	body = problem_build(t, detail, &len);
	resp = relay_response(body ? body : "", body ? len : 0);
	free(body);
	if (!resp) {
		relay_set_answer(r, 0, NULL);
		r->kill = 1;
		return;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, PROBLEM_CONTENT_TYPE);
	relay_set_answer(r, (unsigned)info->status, resp);
	if (info->status == 401)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					r->a.token == TOKEN_MISSING
						? "Bearer realm=\"fs-gateway\""
						: "Bearer realm=\"fs-gateway\", error=\"invalid_token\"");
	if (t == PROBLEM_NO_SERVER || t == PROBLEM_DRAINING) {
		char ra[24];

		snprintf(ra, sizeof(ra), "%" PRId64, r->w->env->retry_after_s);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
	}
}

static void relay_retry_after(struct relay *r, int64_t ms)
{
	char ra[24];

	snprintf(ra, sizeof(ra), "%" PRId64, ms <= 0 ? 1 : (ms + 999) / 1000);
	if (r->resp)
		MHD_add_response_header(r->resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
}

/* Queues the pending answer. Returns what the handler returns. */
static enum MHD_Result relay_queue(struct relay *r)
{
	enum MHD_Result rc;

	if (!r->resp)
		return MHD_NO;
	/* a draining gateway keeps no connection open after its answer: clients go elsewhere */
	if (worker_draining(r->w) && !MHD_get_response_header(r->resp, MHD_HTTP_HEADER_CONNECTION))
		MHD_add_response_header(r->resp, MHD_HTTP_HEADER_CONNECTION, "close");
	rc = MHD_queue_response(r->conn, r->resp_status, r->resp);
	metrics_status((int)r->resp_status);
	log_debug("relay.answer", "%s %u route %d user %s server %s", r->addr, r->resp_status,
		  (int)r->a.route, r->oh[0] ? r->oh : "-", r->server.id[0] ? r->server.id : "-");
	MHD_destroy_response(r->resp);
	r->resp = NULL;
	r->phase = PHASE_ANSWERED;
	return rc;
}

/* ---- the client's side: first call --------------------------------------------------------- */

struct fields {
	struct proto_field f[HEADER_COUNT_MAX + 1];
	size_t n;
	int over;
};

static enum MHD_Result relay_field(void *cls, enum MHD_ValueKind kind, const char *key,
				   size_t key_size, const char *value, size_t value_size)
{
	struct fields *fs = cls;

	(void)kind;
	if (fs->n == HEADER_COUNT_MAX + 1) {
		fs->over = 1;
		return MHD_NO;
	}
	fs->f[fs->n++] = (struct proto_field){key, key_size, value ? value : "", value_size};
	return MHD_YES;
}

/* The client's address as inet_ntop writes it, IPv4-mapped IPv6 unmapped (one address, one key). */
static void relay_client_addr(struct relay *r)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	strcpy(r->addr, "unknown");
	if (!sa)
		return;
	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->addr,
			  sizeof(r->addr));
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a6))
			inet_ntop(AF_INET, &a6->s6_addr[12], r->addr, sizeof(r->addr));
		else
			inet_ntop(AF_INET6, a6, r->addr, sizeof(r->addr));
	}
}

/*
 * libmicrohttpd only asks for a client certificate; a client may finish the handshake without
 * one. So the chain is verified here, against the configured CA, on every request. Returns 1
 * when a certificate was presented and verifies, 0 when none was presented, -1 when one was
 * presented and does not verify.
 */
static int relay_client_cert(struct relay *r)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	gnutls_session_t session;
	unsigned int list_size = 0, status = 0;

	if (!info || !info->tls_session)
		return 0;
	session = (gnutls_session_t)info->tls_session;
	if (!gnutls_certificate_get_peers(session, &list_size) || list_size == 0)
		return 0;
	if (gnutls_certificate_verify_peers2(session, &status) != GNUTLS_E_SUCCESS || status)
		return -1;
	return 1;
}

/* Counts one failed authentication for the address and (when known) the owner. */
static void relay_authfail_reply(void *arg, redisReply *reply, const char *err);

struct authfail_ctx {
	struct limits *limits;
	char key[RKEY_MAX + 1];
};

static void relay_authfail_count(struct relay *r, const char *key)
{
	struct worker *w = r->w;
	struct authfail_ctx *ctx;
	char window[24];
	const char *argv[8];
	int64_t now = clock_unix_ms();

	/* METRICS_AUTH_FAILURES is counted by the callers: one failure may count two keys */
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return;
	ctx->limits = w->env->limits;
	snprintf(ctx->key, sizeof(ctx->key), "%s", key);
	snprintf(window, sizeof(window), "%" PRId64, w->env->authfail_window_ms);
	/* INCR, a window on the first failure, and the window left: one round trip */
	argv[0] = "EVAL";
	argv[1] = "local n = redis.call('INCR', KEYS[1]) "
		  "if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end "
		  "return {n, redis.call('PTTL', KEYS[1])}";
	argv[2] = "1";
	argv[3] = ctx->key;
	argv[4] = window;
	if (rasync_command(w->redis, relay_authfail_reply, ctx, 5, argv, NULL) == 0)
		return;
	metrics_add(METRICS_REDIS_ERRORS, 1);
	limits_authfail_local(ctx->limits, ctx->key, now);
	free(ctx);
}

static void relay_authfail_reply(void *arg, redisReply *reply, const char *err)
{
	struct authfail_ctx *ctx = arg;
	int64_t now = clock_unix_ms();

	(void)err;
	if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
	    reply->element[0]->type == REDIS_REPLY_INTEGER &&
	    reply->element[1]->type == REDIS_REPLY_INTEGER) {
		limits_authfail_note(ctx->limits, ctx->key,
				     (uint64_t)reply->element[0]->integer,
				     reply->element[1]->integer, now);
	} else {
		metrics_add(METRICS_REDIS_ERRORS, 1);
		limits_authfail_local(ctx->limits, ctx->key, now);
	}
	free(ctx);
}

/*
 * The failed-authentication limit (PROTOCOL.md 6.2): 429 before the token counts when the
 * address or the owner is over it; a present but invalid token is counted. Returns 1 when the
 * request was refused here.
 */
static int relay_auth_limits(struct relay *r)
{
	struct limits *lim = r->w->env->limits;
	char akey[RKEY_MAX + 1], okey[RKEY_MAX + 1];
	int have_a = rkey_authfail_addr(r->addr, akey, sizeof(akey)) == PROTO_OK;
	int have_o = r->oh[0] && rkey_authfail_owner(r->oh, okey, sizeof(okey)) == PROTO_OK;
	int64_t now = clock_unix_ms(), left = 0;

	if (have_a)
		left = limits_authfail_blocked(lim, akey, now);
	if (!left && have_o)
		left = limits_authfail_blocked(lim, okey, now);
	if (left) {
		metrics_add(METRICS_RATE_LIMITED, 1);
		relay_problem(r, PROBLEM_TOO_MANY_REQUESTS, "too many failed authentications");
		relay_retry_after(r, left);
		return 1;
	}
	if (r->a.problem == PROBLEM_UNAUTHORIZED && r->a.token != TOKEN_MISSING) {
		log_info("relay.auth_failed", "%s token %s user %s", r->addr,
			 token_result_name(r->a.token), r->oh[0] ? r->oh : "-");
		metrics_add(METRICS_AUTH_FAILURES, 1);
		if (have_a)
			relay_authfail_count(r, akey);
		if (have_o)
			relay_authfail_count(r, okey);
	}
	return 0;
}

static void relay_simple(struct relay *r)
{
	const struct gateway_env *env = r->w->env;
	struct MHD_Response *resp;
	int64_t pick_now = 0, now = clock_unix_ms();
	char *text;
	size_t len;

	switch (r->a.route) {
	case ADMIT_HEALTH:
		resp = relay_response("ok\n", 3);
		relay_set_answer(r, 200, resp);
		break;
	case ADMIT_READY: {
		int ok = !worker_draining(r->w) && worker_snapshot_ok(r->w, now, &pick_now) &&
			 pool_available(r->w->pool, pick_now) > 0;

		resp = relay_response(ok ? "ready\n" : "not ready\n", ok ? 6 : 10);
		relay_set_answer(r, ok ? 200 : 503, resp);
		break;
	}
	case ADMIT_METRICS:
		text = metrics_render(&len);
		resp = text ? relay_response(text, len) : NULL;
		free(text);
		if (resp)
			MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
						"text/plain; version=0.0.4");
		relay_set_answer(r, 200, resp);
		break;
	default: { /* OPTIONS */
		char max[24];

		resp = relay_response("", 0);
		relay_set_answer(r, 204, resp);
		if (!resp)
			break;
		snprintf(max, sizeof(max), "%" PRIu64, env->admit.max_job_bytes);
		MHD_add_response_header(resp, "Tus-Version", TUS_VERSION);
		MHD_add_response_header(resp, "Tus-Extension", TUS_EXTENSIONS);
		MHD_add_response_header(resp, "Tus-Max-Size", max);
		MHD_add_response_header(resp, "Tus-Checksum-Algorithm", TUS_CHECKSUM_ALGORITHMS);
		break;
	}
	}
	if (r->a.route == ADMIT_HEALTH || r->a.route == ADMIT_READY)
		if (r->resp)
			MHD_add_response_header(r->resp, MHD_HTTP_HEADER_CONTENT_TYPE,
						"text/plain");
	if (!r->resp)
		relay_problem(r, PROBLEM_INTERNAL, "out of memory");
}

/* ---- the server's side: the upstream transfer ------------------------------------------- */

static size_t relay_read(char *buf, size_t size, size_t nitems, void *arg)
{
	struct relay *r = arg;
	size_t cap = size * nitems, n;

	if (r->client_gone || r->kill)
		return CURL_READFUNC_ABORT;
	if (r->phase == PHASE_HEADERS && !r->want_resume) {
		/* the server is ready for the body: let MHD send 100 Continue */
		r->want_resume = 1;
		relay_dirty(r);
	}
	n = r->hold_len - r->hold_off;
	if (n) {
		if (n > cap)
			n = cap;
		memcpy(buf, r->hold + r->hold_off, n);
		r->hold_off += n;
		r->sent += n;
		metrics_add(METRICS_BYTES_RELAYED, n);
		if (r->hold_off == r->hold_len) {
			free(r->hold);
			r->hold = NULL;
			r->hold_len = r->hold_off = 0;
			if (r->held_back) {
				r->held_back = 0;
				r->want_resume = 1;
				relay_dirty(r);
			}
		}
		return n;
	}
	if (r->phase == PHASE_FINAL) {
		/* never end a body MHD did not see complete: that would commit a truncated job */
		if (r->a.framing.has_length && r->sent != r->a.framing.content_length)
			return CURL_READFUNC_ABORT;
		return 0;
	}
	r->curl_paused = 1;
	return CURL_READFUNC_PAUSE;
}

/* Failover and retries only ever restart a body from its first byte, before it was sent. */
static int relay_seek(void *arg, curl_off_t offset, int origin)
{
	struct relay *r = arg;

	return offset == 0 && origin == SEEK_SET && r->sent == 0 ? CURL_SEEKFUNC_OK
								  : CURL_SEEKFUNC_CANTSEEK;
}

static void relay_copy_header(char *dst, size_t cap, const char *v, size_t len)
{
	if (len >= cap || header_value_check(v, len) != PROTO_OK) {
		dst[0] = '\0';
		return;
	}
	memcpy(dst, v, len);
	dst[len] = '\0';
}

static size_t relay_header(char *buf, size_t size, size_t nitems, void *arg)
{
	struct relay *r = arg;
	size_t len = size * nitems, nlen;
	const char *colon, *v;
	size_t vlen;

	if (len >= 5 && !memcmp(buf, "HTTP/", 5)) {
		/* a new response (after 100 Continue): forget the previous one's headers */
		relay_answer_free(&r->up);
		return len;
	}
	colon = memchr(buf, ':', len);
	if (!colon)
		return len;
	nlen = (size_t)(colon - buf);
	v = colon + 1;
	vlen = len - nlen - 1;
	while (vlen && (*v == ' ' || *v == '\t'))
		v++, vlen--;
	while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' ' ||
			v[vlen - 1] == '\t'))
		vlen--;
	if (header_equals(buf, nlen, "location"))
		relay_copy_header(r->up.location, sizeof(r->up.location), v, vlen);
	else if (header_equals(buf, nlen, "upload-offset"))
		relay_copy_header(r->up.offset, sizeof(r->up.offset), v, vlen);
	else if (header_equals(buf, nlen, "upload-length"))
		relay_copy_header(r->up.length, sizeof(r->up.length), v, vlen);
	else if (header_equals(buf, nlen, "upload-expires"))
		relay_copy_header(r->up.expires, sizeof(r->up.expires), v, vlen);
	else if (header_equals(buf, nlen, "retry-after"))
		relay_copy_header(r->up.retry_after, sizeof(r->up.retry_after), v, vlen);
	else if (header_equals(buf, nlen, "content-type"))
		relay_copy_header(r->up.ctype, sizeof(r->up.ctype), v, vlen);
	else if (header_equals(buf, nlen, "upload-metadata") && vlen <= META_HEADER_MAX &&
		 header_value_check(v, vlen) == PROTO_OK && !r->up.metadata)
		r->up.metadata = strndup(v, vlen);
	return len;
}

static size_t relay_write(char *buf, size_t size, size_t nitems, void *arg)
{
	struct relay *r = arg;
	size_t len = size * nitems;
	char *p;

	if (r->up.body_len + len > RELAY_BODY_MAX) {
		r->up.body_overflow = 1;
		return 0; /* curl ends the transfer: the answer becomes 502 */
	}
	p = realloc(r->up.body, r->up.body_len + len + 1);
	if (!p)
		return 0;
	memcpy(p + r->up.body_len, buf, len);
	r->up.body = p;
	r->up.body_len += len;
	p[r->up.body_len] = '\0';
	return len;
}

static int relay_add_header(struct relay *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int relay_add_header(struct relay *r, const char *fmt, ...)
{
	char line[META_HEADER_MAX + 64];
	struct curl_slist *l;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -1;
	l = curl_slist_append(r->hdrs, line);
	if (!l)
		return -1;
	r->hdrs = l;
	return 0;
}

/* The upstream request's headers, from the allow-list of PROTOCOL.md 9.2 only. */
static int relay_build_headers(struct relay *r)
{
	const struct admit *a = &r->a;
	char enc[OWNER_HEADER_MAX + 1], buf[META_HEADER_MAX + 1];
	int rc = 0;

	if (owner_encode(a->owner, a->owner_len, enc, sizeof(enc)) != PROTO_OK)
		return -1;
	rc |= relay_add_header(r, "Authorization: Bearer %s", r->w->env->server_secret);
	rc |= relay_add_header(r, "Tus-Resumable: %s", TUS_VERSION);
	rc |= relay_add_header(r, "Fs-Owner: %s", enc);
	/* curl's defaults that are not ours to send */
	rc |= relay_add_header(r, "Accept:");
	rc |= relay_add_header(r, "Content-Type:");
	rc |= relay_add_header(r, "Transfer-Encoding:");
	if (a->has_body)
		rc |= relay_add_header(r, "Expect: 100-continue");
	else
		rc |= relay_add_header(r, "Expect:");
	if (a->route == ADMIT_CREATE || a->route == ADMIT_PUT) {
		rc |= relay_add_header(r, "Fs-Sequence: %" PRIu64, r->sequence);
		if (meta_encode(&a->meta, buf, sizeof(buf), NULL) != PROTO_OK)
			return -1;
		rc |= relay_add_header(r, "Upload-Metadata: %s", buf);
		if (a->has_digest) {
			if (digest_repr_format(a->digest, buf, sizeof(buf)) != PROTO_OK)
				return -1;
			rc |= relay_add_header(r, "Repr-Digest: %s", buf);
		}
	}
	if (a->route == ADMIT_CREATE)
		rc |= relay_add_header(r, "Upload-Length: %" PRIu64, a->length);
	if (a->route == ADMIT_PUT)
		rc |= relay_add_header(r, "Content-Type: %s", a->meta.format);
	if (a->route == ADMIT_PATCH) {
		rc |= relay_add_header(r, "Upload-Offset: %" PRIu64, a->offset);
		if (a->has_digest) {
			if (digest_repr_format(a->digest, buf, sizeof(buf)) != PROTO_OK)
				return -1;
			rc |= relay_add_header(r, "Repr-Digest: %s", buf);
		}
		if (a->length != UINT64_MAX && a->length)
			rc |= relay_add_header(r, "Upload-Length: %" PRIu64, a->length);
	}
	/* A PATCH always has one (PROTOCOL.md 8.4), even empty: the one that commits a full upload. */
	if (a->route == ADMIT_PATCH || (a->route == ADMIT_CREATE && a->has_body))
		rc |= relay_add_header(r, "Content-Type: %s", TUS_CONTENT_TYPE);
	if (a->has_checksum) {
		if (digest_checksum_format(a->checksum, buf, sizeof(buf)) != PROTO_OK)
			return -1;
		rc |= relay_add_header(r, "Upload-Checksum: %s", buf);
	}
	if (a->has_body && a->framing.chunked)
		rc |= relay_add_header(r, "Transfer-Encoding: chunked");
	return rc ? -1 : 0;
}

static void relay_upstream_done(void *arg, CURL *easy, CURLcode result);

/* Starts the transfer to r->server. Returns 0, or -1 with an answer set. */
static int relay_upstream_start(struct relay *r)
{
	const struct gateway_env *env = r->w->env;
	const struct admit *a = &r->a;
	char url[ANNOUNCE_URL_MAX + 64];
	CURL *e;
	int ok = 1;

	switch (a->route) {
	case ADMIT_CREATE:
		snprintf(url, sizeof(url), "%s/v1/jobs", r->server.url);
		break;
	case ADMIT_PUT:
		snprintf(url, sizeof(url), "%s/v1/jobs/%s", r->server.url, a->meta.job_id);
		break;
	default:
		snprintf(url, sizeof(url), "%s/v1/jobs/%s", r->server.url, a->job_id);
		break;
	}
	curl_slist_free_all(r->hdrs);
	r->hdrs = NULL;
	relay_answer_free(&r->up);
	e = curl_easy_init();
	if (!e || relay_build_headers(r)) {
		curl_easy_cleanup(e);
		relay_problem(r, PROBLEM_INTERNAL, "cannot build the upstream request");
		return -1;
	}
	ok &= curl_easy_setopt(e, CURLOPT_URL, url) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)env->connect_timeout_ms) ==
	      CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_EXPECT_100_TIMEOUT_MS, RELAY_EXPECT_TIMEOUT_MS) ==
	      CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, (long)RELAY_UPLOAD_BUFFER) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)RELAY_RECV_BUFFER) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, relay_header) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_HEADERDATA, r) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, relay_write) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_WRITEDATA, r) == CURLE_OK;
	if (env->server_ca_file[0])
		ok &= curl_easy_setopt(e, CURLOPT_CAINFO, env->server_ca_file) == CURLE_OK;
	if (env->server_cert_file[0]) {
		ok &= curl_easy_setopt(e, CURLOPT_SSLCERT, env->server_cert_file) == CURLE_OK;
		ok &= curl_easy_setopt(e, CURLOPT_SSLKEY, env->server_key_file) == CURLE_OK;
	}
	switch (a->route) {
	case ADMIT_HEAD:
		ok &= curl_easy_setopt(e, CURLOPT_NOBODY, 1L) == CURLE_OK;
		break;
	case ADMIT_DELETE:
		ok &= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE") == CURLE_OK;
		break;
	case ADMIT_STATUS:
		break;
	default: /* POST, PUT, PATCH: a body, possibly empty */
		ok &= curl_easy_setopt(e, CURLOPT_UPLOAD, 1L) == CURLE_OK;
		ok &= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST,
				       a->route == ADMIT_CREATE  ? "POST"
				       : a->route == ADMIT_PUT ? "PUT"
							       : "PATCH") == CURLE_OK;
		ok &= curl_easy_setopt(e, CURLOPT_READFUNCTION, relay_read) == CURLE_OK;
		ok &= curl_easy_setopt(e, CURLOPT_READDATA, r) == CURLE_OK;
		ok &= curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, relay_seek) == CURLE_OK;
		ok &= curl_easy_setopt(e, CURLOPT_SEEKDATA, r) == CURLE_OK;
		if (!a->has_body)
			ok &= curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)0) ==
			      CURLE_OK;
		else if (a->framing.has_length)
			ok &= curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE,
					       (curl_off_t)a->framing.content_length) == CURLE_OK;
		break;
	}
	if (!ok || upstream_add(r->w->up, e, relay_upstream_done, r)) {
		curl_easy_cleanup(e);
		relay_problem(r, PROBLEM_INTERNAL, "cannot start the upstream request");
		return -1;
	}
	r->easy = e;
	r->in_flight = 1;
	r->curl_paused = 0;
	r->refs++;
	if (a->has_body && !r->pool_counted) {
		pool_upload_started(r->w->pool, r->server.id);
		r->pool_counted = 1;
	}
	if (!a->has_body)
		r->answer_by_ms = clock_mono_ms() + env->connect_timeout_ms + env->answer_timeout_ms;
	relay_arm(r);
	return 0;
}

/* Marks a server down here and for every gateway (fsg:down, PROTOCOL.md 11.1). */
static void relay_ignore_reply(void *arg, redisReply *reply, const char *err)
{
	(void)arg;
	(void)err;
	if (!reply || reply->type == REDIS_REPLY_ERROR)
		metrics_add(METRICS_REDIS_ERRORS, 1);
}

static void relay_redis_fire(struct worker *w, int argc, const char **argv)
{
	if (rasync_command(w->redis, relay_ignore_reply, NULL, argc, argv, NULL))
		metrics_add(METRICS_REDIS_ERRORS, 1);
}

static void relay_mark_down(struct relay *r)
{
	struct worker *w = r->w;
	char key[RKEY_MAX + 1], px[24];
	const char *argv[6] = {"SET", key, "1", "PX", px, NULL};

	log_warn("relay.server_down", "server %s (%s) refused or timed out a connection",
		 r->server.id, r->server.url);
	pool_mark_down(w->pool, r->server.id, clock_unix_ms());
	if (rkey_down(r->server.id, key, sizeof(key)) != PROTO_OK)
		return;
	snprintf(px, sizeof(px), "%" PRId64, w->env->pool.down_ms ? w->env->pool.down_ms : 5000);
	relay_redis_fire(w, 5, argv);
}

static int relay_connect_failure(CURLcode rc, CURL *easy)
{
	curl_off_t connected = 0;

	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_SSL_CONNECT_ERROR:
		return 1;
	case CURLE_OPERATION_TIMEDOUT:
		curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &connected);
		return connected == 0;
	default:
		return 0;
	}
}

/* A status object from a server, with the public job id in "id". NULL when it does not fit. */
static char *relay_status_rewrite(struct relay *r, size_t *len)
{
	json_t *doc = json_loadb(r->up.body, r->up.body_len, JSON_REJECT_DUPLICATES, NULL);
	const char *sid;
	char pub[ROUTE_MAX_LEN + 1];
	char *out = NULL;

	if (!json_is_object(doc))
		goto out;
	sid = json_string_value(json_object_get(doc, "id"));
	if (!sid || jobid_check(sid, strlen(sid)) != PROTO_OK)
		goto out;
	if (route_build(r->w->env->admit.route_key, r->w->env->admit.route_key_len, r->a.owner,
			r->a.owner_len, r->server.id, sid, pub, sizeof(pub)) != PROTO_OK)
		goto out;
	if (json_object_set_new(doc, "id", json_string(pub)))
		goto out;
	out = json_dumps(doc, JSON_COMPACT);
	if (out)
		*len = strlen(out);
out:
	json_decref(doc);
	return out;
}

/* After a server created or found a job: the records of PROTOCOL.md 9.3. */
static void relay_record_job(struct relay *r, const char *sjid, const char *pub)
{
	struct worker *w = r->w;
	char key[RKEY_MAX + 1], px[24];
	const char *argv[6] = {"SET", key, NULL, "PX", px, NULL};

	if (rkey_idem(r->oh, r->a.meta.job_id, key, sizeof(key)) == PROTO_OK) {
		argv[2] = pub;
		snprintf(px, sizeof(px), "%" PRId64, w->env->idem_ttl_ms);
		relay_redis_fire(w, 5, argv);
	}
	if (rkey_job(sjid, key, sizeof(key)) == PROTO_OK) {
		argv[2] = r->server.id;
		snprintf(px, sizeof(px), "%" PRId64, w->env->job_ttl_ms);
		relay_redis_fire(w, 5, argv);
	}
}

static int relay_digits(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= 16 && strspn(s, "0123456789") == n;
}

/* A 2xx from the server becomes the client's answer. */
static void relay_answer_success(struct relay *r, long status)
{
	const struct admit *a = &r->a;
	struct MHD_Response *resp;
	char pub[ROUTE_MAX_LEN + 1], loc[ROUTE_MAX_LEN + 16];
	char *body = NULL;
	size_t len = 0;
	int creation = a->route == ADMIT_CREATE || a->route == ADMIT_PUT;

	pub[0] = '\0';
	if (creation) {
		const char *p = r->up.location;
		const char *prefix = "/v1/jobs/";

		if (strncmp(p, prefix, strlen(prefix)) ||
		    jobid_check(p + strlen(prefix), strlen(p + strlen(prefix))) != PROTO_OK ||
		    route_build(r->w->env->admit.route_key, r->w->env->admit.route_key_len,
				a->owner, a->owner_len, r->server.id, p + strlen(prefix), pub,
				sizeof(pub)) != PROTO_OK) {
			log_error("relay.bad_location", "server %s answered %ld without a valid "
				  "Location", r->server.id, status);
			relay_problem(r, PROBLEM_UPSTREAM_FAILED, "the server's answer was invalid");
			return;
		}
		relay_record_job(r, p + strlen(prefix), pub);
	}
	if ((a->route == ADMIT_STATUS || a->route == ADMIT_PUT) && r->up.body_len) {
		body = relay_status_rewrite(r, &len);
		if (!body) {
			relay_problem(r, PROBLEM_UPSTREAM_FAILED, "the server's answer was invalid");
			return;
		}
	}
	resp = relay_response(body ? body : "", len);
	free(body);
	relay_set_answer(r, (unsigned)status, resp);
	if (!resp) {
		relay_problem(r, PROBLEM_INTERNAL, "out of memory");
		return;
	}
	if (len)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (pub[0]) {
		snprintf(loc, sizeof(loc), "/v1/jobs/%s", pub);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, loc);
	}
	if (relay_digits(r->up.offset))
		MHD_add_response_header(resp, "Upload-Offset", r->up.offset);
	if (relay_digits(r->up.length))
		MHD_add_response_header(resp, "Upload-Length", r->up.length);
	if (r->up.expires[0] && strlen(r->up.expires) == TUS_HTTP_DATE_LEN)
		MHD_add_response_header(resp, "Upload-Expires", r->up.expires);
	if (a->route == ADMIT_HEAD && r->up.metadata)
		MHD_add_response_header(resp, "Upload-Metadata", r->up.metadata);
}

/* A 4xx/5xx from the server: relayed with its type when it is one of ours (PROTOCOL.md 9.5). */
static void relay_answer_error(struct relay *r, long status)
{
	struct problem p;

	if (status == 401 || status == 403) {
		log_error("relay.server_refused_gateway",
			  "server %s refused the gateway's credentials (%ld)", r->server.id, status);
		relay_problem(r, PROBLEM_UPSTREAM_FAILED, NULL);
		return;
	}
	if (r->a.route == ADMIT_HEAD) {
		/* no body: the status alone says it */
		enum problem_type t = status == 404   ? PROBLEM_NOT_FOUND
				      : status == 410 ? PROBLEM_UPLOAD_EXPIRED
				      : status == 503 ? PROBLEM_NO_SERVER
						      : PROBLEM_UPSTREAM_FAILED;

		relay_problem(r, t, NULL);
		return;
	}
	if (problem_parse(r->up.body ? r->up.body : "", r->up.body_len, &p) != PROTO_OK ||
	    p.type == PROBLEM_UNKNOWN || p.status != status) {
		log_warn("relay.server_error", "server %s answered %ld without a problem of ours",
			 r->server.id, status);
		relay_problem(r, PROBLEM_UPSTREAM_FAILED, NULL);
		return;
	}
	relay_problem(r, p.type, p.detail[0] ? p.detail : NULL);
	if (r->resp && relay_digits(r->up.retry_after))
		MHD_add_response_header(r->resp, MHD_HTTP_HEADER_RETRY_AFTER, r->up.retry_after);
	if (r->resp && relay_digits(r->up.offset))
		MHD_add_response_header(r->resp, "Upload-Offset", r->up.offset);
}

/* Tries the creation on another server; 0 when one was started. */
static int relay_failover(struct relay *r)
{
	if (r->idem_bound || r->ntried >= RELAY_TRIES || r->client_gone)
		return -1;
	metrics_add(METRICS_FAILOVERS, 1);
	log_info("relay.failover", "creation for user %s leaves server %s", r->oh, r->server.id);
	if (r->pool_counted) {
		pool_upload_ended(r->w->pool, r->server.id);
		r->pool_counted = 0;
	}
	/* the pick answers, starts the transfer, or waits for Redis: the creation is handled */
	relay_create_pick(r);
	return 0;
}

static void relay_upstream_done(void *arg, CURL *easy, CURLcode result)
{
	struct relay *r = arg;
	int creation = r->a.route == ADMIT_CREATE || r->a.route == ADMIT_PUT;
	long status = 0;
	int connect_failed;

	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	connect_failed = result != CURLE_OK && relay_connect_failure(result, easy);
	curl_easy_cleanup(easy);
	r->easy = NULL;
	r->in_flight = 0;
	curl_slist_free_all(r->hdrs);
	r->hdrs = NULL;
	if (r->pool_counted) {
		pool_upload_ended(r->w->pool, r->server.id);
		r->pool_counted = 0;
	}
	r->answer_by_ms = 0;
	if (r->client_gone || r->phase == PHASE_ANSWERED || (r->resp && r->kill)) {
		relay_unref(r);
		return;
	}
	if (r->resp) {
		/* the relay already decided (timeout): keep that answer */
		relay_unref(r);
		return;
	}
	if (result != CURLE_OK) {
		if (connect_failed)
			relay_mark_down(r);
		if (creation && r->sent == 0 && connect_failed && !relay_failover(r)) {
			relay_unref(r);
			return;
		}
		metrics_add(METRICS_UPSTREAM_ERRORS, 1);
		log_warn("relay.upstream_failed", "server %s: %s (%" PRIu64 " bytes sent)",
			 r->server.id, curl_easy_strerror(result), r->sent);
		if (connect_failed)
			relay_problem(r, PROBLEM_NO_SERVER, "the server holding the job is unreachable");
		else if (result == CURLE_OPERATION_TIMEDOUT)
			relay_problem(r, PROBLEM_UPSTREAM_TIMEOUT, NULL);
		else
			relay_problem(r, PROBLEM_UPSTREAM_FAILED, NULL);
	} else if (creation && r->sent == 0 && (status == 503 || status == 507) &&
		   !relay_failover(r)) {
		relay_unref(r);
		return;
	} else if (status >= 200 && status < 300) {
		relay_answer_success(r, status);
	} else {
		relay_answer_error(r, status);
	}
	relay_unref(r);
}

/* ---- deadlines --------------------------------------------------------------------------- */

static void relay_timer_fire(void *arg);

/* Arms the relay's one timer for its next check. */
static void relay_arm(struct relay *r)
{
	const struct gateway_env *env = r->w->env;
	int64_t at = r->deadline_ms;

	if (r->phase == PHASE_BODY && env->min_rate && r->window_ms + env->rate_window_ms < at)
		at = r->window_ms + env->rate_window_ms;
	if (r->answer_by_ms && r->answer_by_ms < at)
		at = r->answer_by_ms;
	loop_timer_cancel(r->w->loop, r->timer);
	r->timer = loop_timer_at(r->w->loop, at, relay_timer_fire, r);
}

static void relay_timeout(struct relay *r, enum problem_type t, const char *why)
{
	metrics_add(METRICS_TIMEOUTS, 1);
	log_info("relay.timeout", "%s user %s: %s (%" PRIu64 " bytes received)", r->addr,
		 r->oh[0] ? r->oh : "-", why, r->received);
	if (r->in_flight) {
		r->want_cancel = 1;
		relay_dirty(r);
	}
	/* mid-body no answer can be queued: drop the connection */
	if (r->phase == PHASE_BODY)
		r->kill = 1;
	relay_problem(r, t, why);
}

static void relay_timer_fire(void *arg)
{
	struct relay *r = arg;
	const struct gateway_env *env = r->w->env;
	int64_t now = clock_mono_ms();

	r->timer = NULL;
	if (r->mhd_done || r->phase == PHASE_ANSWERED || r->resp)
		return;
	if (now >= r->deadline_ms) {
		relay_timeout(r, PROBLEM_REQUEST_TIMEOUT, "the request took longer than allowed");
		return;
	}
	if (r->answer_by_ms && now >= r->answer_by_ms && r->in_flight) {
		relay_timeout(r, PROBLEM_UPSTREAM_TIMEOUT, "the server did not answer in time");
		return;
	}
	if (r->phase == PHASE_BODY && env->min_rate && now >= r->window_ms + env->rate_window_ms) {
		uint64_t need = (uint64_t)env->min_rate * (uint64_t)env->rate_window_ms / 1000;

		/* the client's rate: waiting on a slow server is not the client's fault */
		if (r->window_bytes < need && r->hold_len == r->hold_off) {
			relay_timeout(r, PROBLEM_REQUEST_TIMEOUT,
				      "the upload was slower than the minimum rate");
			return;
		}
		r->window_ms = now;
		r->window_bytes = 0;
	}
	relay_arm(r);
}

/* ---- creations: sequence, pool, idempotency ------------------------------------------------ */

static uint64_t relay_clock_sequence(void)
{
	uint64_t now = (uint64_t)clock_unix_ms() * 1000, last = atomic_load(&seq_last), next;

	do {
		next = now > last ? now : last + 1;
	} while (!atomic_compare_exchange_weak(&seq_last, &last, next));
	return next;
}

static void relay_idem_reply(void *arg, redisReply *reply, const char *err);

static void relay_create_claim(struct relay *r)
{
	struct worker *w = r->w;
	char key[RKEY_MAX + 1], px[24];
	const char *argv[8];
	int argc = 0;

	if (r->idem_claimed) {
		/* failover: our own claim moves to the new server */
		argv[argc++] = "SET";
		argv[argc++] = key;
		argv[argc++] = r->server.id;
		argv[argc++] = "XX";
	} else {
		argv[argc++] = "SET";
		argv[argc++] = key;
		argv[argc++] = r->server.id;
		argv[argc++] = "NX";
		argv[argc++] = "GET";
	}
	argv[argc++] = "PX";
	argv[argc++] = px;
	snprintf(px, sizeof(px), "%" PRId64, w->env->idem_ttl_ms);
	if (rkey_idem(r->oh, r->a.meta.job_id, key, sizeof(key)) != PROTO_OK) {
		relay_upstream_start(r);
		return;
	}
	if (r->idem_claimed) {
		/* nothing to wait for: the record is ours either way */
		relay_redis_fire(w, argc, argv);
		relay_upstream_start(r);
		return;
	}
	if (rasync_command(w->redis, relay_idem_reply, r, argc, argv, NULL)) {
		metrics_add(METRICS_REDIS_ERRORS, 1);
		relay_upstream_start(r);
		return;
	}
	r->refs++;
}

static void relay_idem_reply(void *arg, redisReply *reply, const char *err)
{
	struct relay *r = arg;
	char sid[SERVER_ID_MAX + 1];
	struct announce other;
	size_t n;

	(void)err;
	if (r->client_gone || r->resp) {
		relay_unref(r);
		return;
	}
	if (reply && reply->type == REDIS_REPLY_NIL) {
		r->idem_claimed = 1;
	} else if (reply && reply->type == REDIS_REPLY_STRING) {
		/* seen before: the creation goes to the server the record names, and nowhere else */
		n = strcspn(reply->str, ".");
		if (n == 0 || n > SERVER_ID_MAX) {
			relay_problem(r, PROBLEM_INTERNAL, "the idempotency record is invalid");
			goto out;
		}
		memcpy(sid, reply->str, n);
		sid[n] = '\0';
		r->idem_bound = 1;
		if (strcmp(sid, r->server.id)) {
			if (pool_find(r->w->pool, sid, &other)) {
				relay_problem(r, PROBLEM_NO_SERVER,
					      "the server holding this job is not available");
				goto out;
			}
			r->server = other;
		}
	} else {
		metrics_add(METRICS_REDIS_ERRORS, 1);
	}
	relay_upstream_start(r);
out:
	relay_unref(r);
}

static void relay_create_pick(struct relay *r)
{
	struct worker *w = r->w;
	const char *exclude[RELAY_TRIES];
	int64_t now = clock_unix_ms(), pick_now = now;
	int usable;
	size_t i;

	for (i = 0; i < r->ntried; i++)
		exclude[i] = r->tried[i];
	if (worker_draining(w)) {
		relay_problem(r, PROBLEM_DRAINING, NULL);
		return;
	}
	usable = worker_snapshot_ok(w, now, &pick_now);
	if (!usable || pool_pick(w->pool, pick_now, r->a.length, exclude, r->ntried, worker_random,
				 w, &r->server)) {
		/* servers there, none with room: 507; none at all (or all tried): 503 */
		if (usable && r->ntried == 0 && pool_available(w->pool, pick_now) > 0)
			relay_problem(r, PROBLEM_INSUFFICIENT_STORAGE,
				      "no server has room for a job of this size");
		else
			relay_problem(r, PROBLEM_NO_SERVER, NULL);
		return;
	}
	snprintf(r->tried[r->ntried++], SERVER_ID_MAX + 1, "%s", r->server.id);
	if (rasync_connected(w->redis) && r->oh[0])
		relay_create_claim(r);
	else
		relay_upstream_start(r);
}

static void relay_seq_reply(void *arg, redisReply *reply, const char *err);

static int relay_seq_send(struct relay *r, int eval)
{
	char key[RKEY_MAX + 1], clock[24];
	const char *argv[5];

	if (rkey_seq(r->oh, key, sizeof(key)) != PROTO_OK)
		return -1;
	snprintf(clock, sizeof(clock), "%" PRIu64, (uint64_t)clock_unix_ms() * 1000);
	argv[0] = eval ? "EVAL" : "EVALSHA";
	argv[1] = eval ? RKEY_SEQ_NEXT_LUA : r->w->env->seq_sha;
	argv[2] = "1";
	argv[3] = key;
	argv[4] = clock;
	if (rasync_command(r->w->redis, relay_seq_reply, r, 5, argv, NULL))
		return -1;
	r->refs++;
	return 0;
}

static void relay_seq_reply(void *arg, redisReply *reply, const char *err)
{
	struct relay *r = arg;

	(void)err;
	if (r->client_gone) {
		relay_unref(r);
		return;
	}
	if (reply && reply->type == REDIS_REPLY_ERROR && !strncmp(reply->str, "NOSCRIPT", 8) &&
	    relay_seq_send(r, 1) == 0) {
		relay_unref(r);
		return;
	}
	if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0) {
		r->sequence = (uint64_t)reply->integer;
	} else {
		metrics_add(METRICS_REDIS_ERRORS, 1);
		if (reply && reply->type == REDIS_REPLY_ERROR)
			log_warn("relay.sequence", "sequence script failed: %s", reply->str);
		r->sequence = relay_clock_sequence();
	}
	relay_create_pick(r);
	relay_unref(r);
}

/* ---- dispatch ---------------------------------------------------------------------------- */

/* After admission: starts what the route needs. The connection is suspended by the caller. */
static void relay_dispatch(struct relay *r)
{
	struct worker *w = r->w;
	const struct admit *a = &r->a;

	/* draining: uploads in progress finish, new ones (and their next PATCH) go elsewhere */
	if ((a->route == ADMIT_CREATE || a->route == ADMIT_PUT || a->route == ADMIT_PATCH) &&
	    worker_draining(w)) {
		relay_problem(r, PROBLEM_DRAINING, "this gateway is shutting down; retry");
		return;
	}
	if (a->has_body) {
		if (limits_upload_begin(w->env->limits, r->oh)) {
			metrics_add(METRICS_RATE_LIMITED, 1);
			relay_problem(r, PROBLEM_TOO_MANY_REQUESTS,
				      "too many uploads in progress for this user");
			relay_retry_after(r, 1000);
			return;
		}
		r->upload_counted = 1;
		r->active_counted = 1;
		metrics_gauge_add(METRICS_ACTIVE_UPLOADS, 1);
	}
	switch (a->route) {
	case ADMIT_CREATE:
	case ADMIT_PUT:
		if (relay_seq_send(r, 0)) {
			r->sequence = relay_clock_sequence();
			relay_create_pick(r);
		}
		return;
	case ADMIT_LIST:
		relay_problem(r, PROBLEM_NO_SERVER, "listing held jobs is not available yet");
		return;
	default:
		/* the route is in the public id; the URL comes from the snapshot */
		if (pool_find(w->pool, a->server_id, &r->server)) {
			relay_problem(r, PROBLEM_NO_SERVER,
				      "the server holding this job is not known");
			return;
		}
		relay_upstream_start(r);
		return;
	}
}

static enum MHD_Result relay_first(struct worker *w, struct MHD_Connection *c, const char *url,
				   const char *method, const char *version, void **con_cls)
{
	const struct gateway_env *env = w->env;
	struct relay *r;
	struct fields *fs;
	struct admit_request req;
	int cert = 0;

	r = calloc(1, sizeof(*r));
	fs = malloc(sizeof(*fs));
	if (!r || !fs) {
		free(r);
		free(fs);
		return MHD_NO;
	}
	r->w = w;
	r->conn = c;
	r->refs = 1; /* MHD's, until relay_completed */
	atomic_fetch_add(&w->hub->requests, 1);
	r->next = w->all;
	if (w->all)
		w->all->prev = r;
	w->all = r;
	r->start_ms = clock_mono_ms();
	r->deadline_ms = r->start_ms + env->request_deadline_ms;
	*con_cls = r;
	relay_client_addr(r);

	fs->n = 0;
	fs->over = 0;
	MHD_get_connection_values_n(c, MHD_HEADER_KIND, relay_field, fs);
	req.method = method;
	req.url = url;
	req.http10 = !strcmp(version, MHD_HTTP_VERSION_1_0);
	req.fields = fs->f;
	req.n = fs->n;

	if (env->client_certs != CLIENT_CERTS_OFF) {
		cert = relay_client_cert(r);
		if (cert < 0 || (cert == 0 && env->client_certs == CLIENT_CERTS_REQUIRED)) {
			char akey[RKEY_MAX + 1];

			free(fs);
			r->a.route = ADMIT_NONE;
			relay_problem(r, PROBLEM_CLIENT_CERTIFICATE,
				      cert < 0 ? "the client certificate is not trusted"
					       : "a client certificate is required");
			metrics_add(METRICS_AUTH_FAILURES, 1);
			if (rkey_authfail_addr(r->addr, akey, sizeof(akey)) == PROTO_OK)
				relay_authfail_count(r, akey);
			return relay_queue(r);
		}
	}
	admit_decide(&env->admit, &req, clock_unix_ms(), &r->a);
	free(fs);
	if (r->a.owner_len &&
	    owner_hash(r->a.owner, r->a.owner_len, r->oh, sizeof(r->oh)) != PROTO_OK)
		r->oh[0] = '\0';
	if (r->a.problem != PROBLEM_UNKNOWN) {
		if ((r->a.token != TOKEN_MISSING || r->a.problem == PROBLEM_UNAUTHORIZED) &&
		    relay_auth_limits(r))
			return relay_queue(r);
		relay_problem(r, r->a.problem, r->a.detail);
		if (r->a.allow && r->resp)
			MHD_add_response_header(r->resp, MHD_HTTP_HEADER_ALLOW, r->a.allow);
		if (r->a.close && r->resp)
			MHD_add_response_header(r->resp, MHD_HTTP_HEADER_CONNECTION, "close");
		return relay_queue(r);
	}
	if (r->a.route == ADMIT_HEALTH || r->a.route == ADMIT_READY ||
	    r->a.route == ADMIT_METRICS || r->a.route == ADMIT_OPTIONS) {
		relay_simple(r);
		return relay_queue(r);
	}
	if (relay_auth_limits(r))
		return relay_queue(r);
	r->window_ms = r->start_ms;
	relay_dispatch(r);
	if (r->resp)
		return relay_queue(r);
	/* wait for Redis and the server with the client held before its 100 Continue */
	relay_suspend(r);
	r->recall = 1;
	relay_arm(r);
	return MHD_YES;
}

/* ---- libmicrohttpd's callbacks -------------------------------------------------------------- */

/* Copies up to n body bytes after those curl has not read yet; returns how many fit. */
static size_t relay_hold(struct relay *r, const char *data, size_t n)
{
	size_t pending = r->hold_len - r->hold_off;
	char *p;

	if (n > RELAY_HOLD_MAX - pending)
		n = RELAY_HOLD_MAX - pending;
	if (!n)
		return 0;
	if (r->hold_off) {
		memmove(r->hold, r->hold + r->hold_off, pending);
		r->hold_off = 0;
		r->hold_len = pending;
	}
	p = realloc(r->hold, pending + n);
	if (!p)
		return 0;
	memcpy(p + pending, data, n);
	r->hold = p;
	r->hold_len = pending + n;
	return n;
}

/* A body call: copy MHD's bytes for curl; only when they do not fit does MHD wait for curl. */
static enum MHD_Result relay_body(struct relay *r, const char *data, size_t *size)
{
	size_t n = *size, took;

	if (r->phase == PHASE_HEADERS) {
		/* the minimum rate is measured from the first body byte on */
		r->phase = PHASE_BODY;
		r->window_ms = clock_mono_ms();
		r->window_bytes = 0;
		relay_arm(r);
	}
	if (r->resp) {
		/* the answer is fixed (an early error): read and drop the rest, within reason */
		r->discarded += n;
		*size = 0;
		return r->discarded > RELAY_DISCARD_MAX ? MHD_NO : MHD_YES;
	}
	if (!r->in_flight) {
		relay_problem(r, PROBLEM_INTERNAL, "no upstream request for this body");
		r->kill = 1;
		return MHD_NO;
	}
	took = relay_hold(r, data, n);
	r->received += took;
	r->window_bytes += took;
	*size = n - took;
	if (*size) {
		if (!took && r->hold_len == r->hold_off) {
			relay_problem(r, PROBLEM_INTERNAL, "out of memory");
			r->kill = 1;
			return MHD_NO;
		}
		/* full: MHD keeps the rest until curl has read what we hold */
		r->held_back = 1;
		relay_suspend(r);
	}
	if (took && r->curl_paused) {
		r->want_unpause = 1;
		relay_dirty(r);
	}
	return MHD_YES;
}

enum MHD_Result relay_handler(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls)
{
	struct relay *r = *con_cls;

	if (!r)
		return relay_first(cls, c, url, method, version, con_cls);
	if (r->kill) {
		if (r->resp && r->phase != PHASE_BODY)
			return relay_queue(r);
		return MHD_NO;
	}
	if (r->recall && *upload_data_size == 0) {
		/* after a resume MHD repeats the headers call once before any body byte */
		r->recall = 0;
		if (r->resp && !r->a.has_body)
			return MHD_YES; /* answered at MHD's last call, so the connection stays open */
		if (r->resp)
			return relay_queue(r);
		if (r->a.has_body && r->in_flight)
			return MHD_YES; /* the server waits for the body: MHD sends 100 Continue */
		relay_suspend(r);
		r->recall = 1;
		return MHD_YES;
	}
	r->recall = 0;
	if (*upload_data_size)
		return relay_body(r, upload_data, upload_data_size);
	/* the last call: the body is complete */
	if (r->phase != PHASE_FINAL) {
		r->phase = PHASE_FINAL;
		if (r->in_flight) {
			r->answer_by_ms = clock_mono_ms() + r->w->env->answer_timeout_ms;
			relay_arm(r);
			if (r->curl_paused) {
				r->want_unpause = 1;
				relay_dirty(r);
			}
		}
	}
	if (r->resp)
		return relay_queue(r);
	if (!r->in_flight) {
		relay_problem(r, PROBLEM_INTERNAL, "the request lost its upstream");
		return relay_queue(r);
	}
	relay_suspend(r);
	return MHD_YES;
}

void relay_completed(void *cls, struct MHD_Connection *c, void **con_cls,
		     enum MHD_RequestTerminationCode toe)
{
	struct relay *r = *con_cls;

	(void)cls;
	(void)c;
	if (!r)
		return;
	*con_cls = NULL;
	r->mhd_done = 1;
	r->suspended = 0;
	if (r->phase != PHASE_ANSWERED || toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
		r->client_gone = 1;
		if (r->in_flight) {
			/* never let the server see a cleanly ended body: abort the request */
			metrics_add(METRICS_CLIENT_ABORTS, 1);
			log_info("relay.client_gone", "%s user %s left after %" PRIu64 " bytes (%d)",
				 r->addr, r->oh[0] ? r->oh : "-", r->received, (int)toe);
			r->want_cancel = 1;
			relay_dirty(r);
		}
	}
	relay_unref(r);
}

void relay_turn(void *arg)
{
	struct worker *w = arg;
	struct relay *r;
	int ran_curl = 0;

	while ((r = w->dirty)) {
		w->dirty = r->next_dirty;
		r->dirty = 0;
		if (r->want_cancel) {
			r->want_cancel = 0;
			if (r->in_flight)
				upstream_cancel(w->up, r->easy);
		}
		if (r->want_unpause) {
			r->want_unpause = 0;
			if (r->in_flight && r->curl_paused) {
				r->curl_paused = 0;
				upstream_unpause(w->up, r->easy);
			}
		}
		if (r->want_resume) {
			r->want_resume = 0;
			if (r->suspended && !r->mhd_done) {
				r->suspended = 0;
				ingress_resume(w->in, r->conn);
			}
		}
		relay_unref(r);
		if (!w->dirty && !ran_curl) {
			/* the chunks unpaused above go upstream now; what that dirties runs too */
			ran_curl = 1;
			upstream_run_due(w->up);
		}
	}
}

void relay_shutdown(struct worker *w)
{
	struct relay *r, *next;

	for (r = w->all; r; r = next) {
		r->refs++;
		r->client_gone = 1;
		r->kill = 1;
		if (r->in_flight)
			upstream_cancel(w->up, r->easy);
		if (r->suspended && !r->mhd_done) {
			r->suspended = 0;
			ingress_resume(w->in, r->conn);
		}
		next = r->next;
		relay_unref(r);
	}
}
