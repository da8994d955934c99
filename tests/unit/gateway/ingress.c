/* Tests the MHD daemon on a worker's loop (gateway/ingress.c) with libcurl clients on loopback. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/tls.h"
#include "gateway/ingress.h"
#include "gateway/loop.h"
#include "tests/lib/proc.h"

/* The product's priority string (common/tls.h): TLS 1.3, and 1.2 with ECDHE + AEAD. */
#define TLS_PRIORITIES FSG_TLS_PRIORITIES
/* Every client request gives up after this long: no test waits unbounded. */
#define REQUEST_TIMEOUT_MS 10000
#define UPLOAD_BYTES (8u << 20)
#define SUSPEND_MS 200

/* One worker: a loop with an ingress, the loop running in its own thread. */
struct worker {
	struct loop *l;
	struct ingress *in;
	pthread_t thread;
	int running;
	atomic_int served;         /* requests answered by this worker's handler */
};

/* What the handlers share with the test; handlers run in the loop thread. */
static struct worker w1, w2;
static char *pki;

static void setup(void)
{
	cr_assert_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
}

static void teardown(void)
{
	curl_global_cleanup();
	if (pki) {
		proc_rmtree(pki);
		free(pki);
		pki = NULL;
	}
}

TestSuite(ingress, .init = setup, .fini = teardown, .timeout = 60);

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	loop_run(w->l);
	return NULL;
}

/* Starts the ingress on a fresh loop and runs the loop in a thread; returns 0 or -1. */
static int worker_start(struct worker *w, struct ingress_config *cfg)
{
	w->l = loop_new();
	cr_assert_not_null(w->l);
	cfg->handler_arg = w;
	w->in = ingress_start(w->l, cfg);
	if (!w->in) {
		loop_free(w->l);
		w->l = NULL;
		return -1;
	}
	cr_assert_eq(pthread_create(&w->thread, NULL, worker_main, w), 0);
	w->running = 1;
	return 0;
}

/* Stops the loop's thread, leaving the ingress in place (events wait in the epoll sets). */
static void worker_pause(struct worker *w)
{
	if (!w->running)
		return;
	loop_stop(w->l);
	cr_assert_eq(pthread_join(w->thread, NULL), 0);
	w->running = 0;
}

static void worker_resume(struct worker *w)
{
	cr_assert_eq(pthread_create(&w->thread, NULL, worker_main, w), 0);
	w->running = 1;
}

static void worker_stop(struct worker *w)
{
	if (!w->l)
		return;
	worker_pause(w);
	ingress_stop(w->in);
	loop_free(w->l);
	w->in = NULL;
	w->l = NULL;
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *body)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result rc;

	cr_assert_not_null(r);
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

/* GET: "hello <url>" on the first call, counted per worker. */
static enum MHD_Result on_hello(void *cls, struct MHD_Connection *c, const char *url,
				const char *method, const char *version, const char *upload_data,
				size_t *upload_data_size, void **con_cls)
{
	struct worker *w = cls;
	char body[256];

	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)con_cls;
	if (strcmp(method, "GET"))
		return answer(c, 405, "GET only");
	snprintf(body, sizeof(body), "hello %s", url);
	atomic_fetch_add(&w->served, 1);
	return answer(c, 200, body);
}

/* A client's view of one request. */
struct reply {
	CURLcode rc;
	long status;
	char body[512];
	size_t len;
	int64_t ms;                /* from start to the end of the transfer */
};

static size_t reply_write(char *data, size_t size, size_t n, void *arg)
{
	struct reply *r = arg;
	size_t len = size * n;
	size_t room = sizeof(r->body) - 1 - r->len;

	memcpy(r->body + r->len, data, len < room ? len : room);
	r->len += len < room ? len : room;
	r->body[r->len] = '\0';
	return len;
}

static CURL *client_new(const char *url, struct reply *r)
{
	CURL *h = curl_easy_init();

	cr_assert_not_null(h);
	memset(r, 0, sizeof(*r));
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)REQUEST_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, reply_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
	return h;
}

static void client_run(CURL *h, struct reply *r)
{
	int64_t t0 = clock_mono_ms();

	r->rc = curl_easy_perform(h);
	r->ms = clock_mono_ms() - t0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(h);
}

static void get(const char *url, struct reply *r)
{
	client_run(client_new(url, r), r);
}

static void base_config(struct ingress_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->bind = "127.0.0.1";
	cfg->connection_limit = 1000;
	cfg->idle_timeout_s = 30;
	cfg->handler = on_hello;
}

Test(ingress, plain_get_is_answered_through_the_loop)
{
	struct ingress_config cfg;
	struct reply r;
	char url[128];

	base_config(&cfg);
	cr_assert_eq(worker_start(&w1, &cfg), 0);
	cr_assert_gt(ingress_port(w1.in), 0);
	cr_assert_not_null(ingress_daemon(w1.in));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/some/path?q=1", ingress_port(w1.in));
	get(url, &r);
	worker_stop(&w1);
	cr_assert_eq(r.rc, CURLE_OK, "%s", curl_easy_strerror(r.rc));
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "hello /some/path");
	cr_assert_eq(atomic_load(&w1.served), 1);
}

Test(ingress, ipv6_loopback_is_served_when_available)
{
	struct ingress_config cfg;
	struct reply r;
	char url[128];
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};

	if (fd == -1 || bind(fd, (struct sockaddr *)&a, sizeof(a)) == -1) {
		if (fd != -1)
			close(fd);
		cr_skip_test("no IPv6 loopback here");
	}
	close(fd);
	base_config(&cfg);
	cfg.bind = "::1";
	cr_assert_eq(worker_start(&w1, &cfg), 0);
	snprintf(url, sizeof(url), "http://[::1]:%d/v6", ingress_port(w1.in));
	get(url, &r);
	worker_stop(&w1);
	cr_assert_eq(r.rc, CURLE_OK, "%s", curl_easy_strerror(r.rc));
	cr_assert_str_eq(r.body, "hello /v6");
}

Test(ingress, stop_accepts_null_and_the_soft_fd_limit_is_raised)
{
	struct ingress_config cfg;
	struct rlimit rl;

	ingress_stop(NULL);
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max > 64) {
		rl.rlim_cur = 64;
		cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	base_config(&cfg);
	cr_assert_eq(worker_start(&w1, &cfg), 0);
	worker_stop(&w1);
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	cr_assert_eq(rl.rlim_cur, rl.rlim_max);
}

/* ---- uploads: bytes are position-dependent, so a lost, doubled or moved piece shows ---- */

static uint8_t upload_byte(uint64_t i)
{
	return (uint8_t)((i * 131) ^ (i >> 11) ^ (i >> 19));
}

static uint64_t fnv_add(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

#define FNV_INIT 0xcbf29ce484222325ULL

/* What the upload handler saw on one request. */
struct upload {
	uint64_t bytes;
	uint64_t fnv;
	unsigned pieces;
};

/* Sums every body piece; answers "bytes fnv pieces" once the body is complete. */
static enum MHD_Result on_upload(void *cls, struct MHD_Connection *c, const char *url,
				 const char *method, const char *version, const char *upload_data,
				 size_t *upload_data_size, void **con_cls)
{
	struct worker *w = cls;
	struct upload *u = *con_cls;
	char body[128];

	(void)url;
	(void)method;
	(void)version;
	if (!u) {
		u = calloc(1, sizeof(*u));
		cr_assert_not_null(u);
		u->fnv = FNV_INIT;
		*con_cls = u;
		return MHD_YES;
	}
	if (*upload_data_size) {
		u->bytes += *upload_data_size;
		u->fnv = fnv_add(u->fnv, (const uint8_t *)upload_data, *upload_data_size);
		u->pieces++;
		*upload_data_size = 0;
		return MHD_YES;
	}
	snprintf(body, sizeof(body), "%llu %016llx %u", (unsigned long long)u->bytes,
		 (unsigned long long)u->fnv, u->pieces);
	atomic_fetch_add(&w->served, 1);
	return answer(c, 200, body);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	free(*con_cls);
	*con_cls = NULL;
}

struct source {
	uint64_t off, len;
};

static size_t source_read(char *buf, size_t size, size_t n, void *arg)
{
	struct source *s = arg;
	size_t len = size * n;

	if (len > s->len - s->off)
		len = (size_t)(s->len - s->off);
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)upload_byte(s->off + i);
	s->off += len;
	return len;
}

/* PUTs len generated bytes to url; cafile for https (NULL: plain). */
static void upload(const char *url, uint64_t len, const char *cafile, struct reply *r)
{
	struct source s = {0, len};
	CURL *h = client_new(url, r);

	curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, source_read);
	curl_easy_setopt(h, CURLOPT_READDATA, &s);
	if (cafile)
		curl_easy_setopt(h, CURLOPT_CAINFO, cafile);
	client_run(h, r);
	cr_assert_eq(s.off, len, "the client sent %llu of %llu bytes", (unsigned long long)s.off,
		     (unsigned long long)len);
}

static void expected_upload(uint64_t len, char *out, size_t cap)
{
	uint64_t h = FNV_INIT;
	uint8_t buf[4096];

	for (uint64_t off = 0; off < len; off += sizeof(buf)) {
		size_t n = len - off < sizeof(buf) ? (size_t)(len - off) : sizeof(buf);

		for (size_t i = 0; i < n; i++)
			buf[i] = upload_byte(off + i);
		h = fnv_add(h, buf, n);
	}
	snprintf(out, cap, "%llu %016llx", (unsigned long long)len, (unsigned long long)h);
}

/* The reply body is "bytes fnv pieces": checks the first two, returns the pieces. */
static unsigned check_upload(const struct reply *r, uint64_t len)
{
	char want[64];
	unsigned pieces = 0;
	size_t n;

	cr_assert_eq(r->rc, CURLE_OK, "%s", curl_easy_strerror(r->rc));
	cr_assert_eq(r->status, 200);
	expected_upload(len, want, sizeof(want));
	n = strlen(want);
	cr_assert_eq(strncmp(r->body, want, n), 0, "got %s, want %s", r->body, want);
	cr_assert_eq(sscanf(r->body + n, " %u", &pieces), 1, "%s", r->body);
	return pieces;
}

Test(ingress, an_8_mib_upload_reaches_the_handler_in_pieces)
{
	struct ingress_config cfg;
	struct reply r;
	char url[128];
	unsigned pieces;

	base_config(&cfg);
	cfg.handler = on_upload;
	cfg.completed = on_completed;
	cr_assert_eq(worker_start(&w1, &cfg), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/up", ingress_port(w1.in));
	upload(url, UPLOAD_BYTES, NULL, &r);
	worker_stop(&w1);
	pieces = check_upload(&r, UPLOAD_BYTES);
	/* MHD's default pool is 32 KiB: far more than one piece for 8 MiB */
	cr_assert_gt(pieces, 100, "%u pieces", pieces);
}

/* ---- suspend and resume ---- */

enum resume_from {
	RESUME_FROM_TIMER,       /* a loop timer set inside the access handler */
	RESUME_FROM_EARLY_HOOK,  /* a turn hook registered before the ingress's own */
	RESUME_FROM_LATE_HOOK,   /* a turn hook registered after it: MHD runs at the next turn */
};

/* The one suspended request of a suspend test. */
static struct {
	enum resume_from from;
	struct worker *w;
	struct MHD_Connection *c;  /* suspended, waiting for resume */
	int64_t suspended_at, resumed_at;
	int suspends;
	int calls_while_suspended;
	int suspended;
	struct loop_timer *wake;
} held;

static void resume_held(void)
{
	held.resumed_at = clock_mono_ms();
	held.suspended = 0;
	ingress_resume(held.w->in, held.c);
	held.c = NULL;
}

static void on_resume_timer(void *arg)
{
	(void)arg;
	resume_held();
}

static void on_wake_timer(void *arg)
{
	(void)arg;
	held.wake = NULL; /* only there so the loop turns; the hook resumes */
}

static void on_resume_hook(void *arg)
{
	(void)arg;
	if (held.c && clock_mono_ms() >= held.suspended_at + SUSPEND_MS)
		resume_held();
}

/* Suspends on the first body piece and has it resumed SUSPEND_MS later; then sums the body. */
static enum MHD_Result on_suspend(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	if (*con_cls && *upload_data_size && held.suspended)
		held.calls_while_suspended++;
	if (*con_cls && *upload_data_size && !held.suspends) {
		held.suspends++;
		held.suspended = 1;
		held.c = c;
		held.suspended_at = clock_mono_ms();
		MHD_suspend_connection(c);
		if (held.from == RESUME_FROM_TIMER)
			cr_assert_not_null(loop_timer_at(held.w->l, held.suspended_at + SUSPEND_MS,
							 on_resume_timer, NULL));
		else
			held.wake = loop_timer_at(held.w->l, held.suspended_at + SUSPEND_MS,
						  on_wake_timer, NULL);
		return MHD_YES; /* nothing consumed: the same bytes come again after resume */
	}
	return on_upload(cls, c, url, method, version, upload_data, upload_data_size, con_cls);
}

Test(ingress, a_suspended_upload_completes_after_resume_from_a_timer_or_a_hook)
{
	static const enum resume_from cases[] = {RESUME_FROM_TIMER, RESUME_FROM_EARLY_HOOK,
						 RESUME_FROM_LATE_HOOK};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ingress_config cfg;
		struct reply r;
		char url[128];
		struct loop *l = loop_new();

		cr_assert_not_null(l);
		memset(&held, 0, sizeof(held));
		held.from = cases[i];
		held.w = &w1;
		base_config(&cfg);
		cfg.handler = on_suspend;
		cfg.completed = on_completed;
		cfg.handler_arg = &w1;
		/* a worker assembled by hand: the test's hook goes before or after ingress's */
		w1.l = l;
		if (cases[i] == RESUME_FROM_EARLY_HOOK)
			cr_assert_eq(loop_on_turn(l, on_resume_hook, NULL), 0);
		w1.in = ingress_start(l, &cfg);
		cr_assert_not_null(w1.in);
		if (cases[i] == RESUME_FROM_LATE_HOOK)
			cr_assert_eq(loop_on_turn(l, on_resume_hook, NULL), 0);
		cr_assert_eq(pthread_create(&w1.thread, NULL, worker_main, &w1), 0);
		w1.running = 1;

		snprintf(url, sizeof(url), "http://127.0.0.1:%d/suspend", ingress_port(w1.in));
		upload(url, 1000, NULL, &r);
		worker_stop(&w1);
		check_upload(&r, 1000);
		cr_assert_eq(held.suspends, 1, "case %zu", i);
		cr_assert_eq(held.calls_while_suspended, 0, "case %zu", i);
		cr_assert_geq(held.resumed_at - held.suspended_at, SUSPEND_MS, "case %zu", i);
		cr_assert_geq(r.ms, SUSPEND_MS, "case %zu: answered after %lld ms", i,
			      (long long)r.ms);
		/* nothing but the resume wakes MHD: a lost resume would wait for curl's timeout */
		cr_assert_lt(r.ms, SUSPEND_MS + 2000, "case %zu: answered after %lld ms", i,
			     (long long)r.ms);
	}
}

/* ---- TLS ---- */

static void sh(const char *command)
{
	char cmd[4096];

	snprintf(cmd, sizeof(cmd), "cd '%s' && %s", pki, command);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static const char *pki_path(const char *name)
{
	static char paths[4][4096];
	static int next;
	char *p = paths[next++ % 4];

	snprintf(p, 4096, "%s/%s", pki, name);
	return p;
}

/* A self-signed P-256 certificate for 127.0.0.1 in a fresh directory. */
static void make_cert(void)
{
	pki = proc_tempdir("ingress");
	cr_assert_not_null(pki);
	sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
	   "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
	   "-keyout server.key -out server.pem 2>/dev/null");
}

/* Starts w with TLS; the PEM strings are freed (and wiped) as soon as ingress_start returns. */
static int tls_worker_start(struct worker *w, struct ingress_config *cfg, const char *priorities)
{
	char *cert = proc_read_file(pki_path("server.pem"));
	char *key = proc_read_file(pki_path("server.key"));
	char *prio = strdup(priorities);
	int rc;

	cr_assert(cert && *cert && key && *key && prio);
	cfg->tls_cert_pem = cert;
	cfg->tls_key_pem = key;
	cfg->tls_priorities = prio;
	rc = worker_start(w, cfg);
	memset(cert, 'x', strlen(cert));
	memset(key, 'x', strlen(key));
	memset(prio, 'x', strlen(prio));
	free(cert);
	free(key);
	free(prio);
	cfg->tls_cert_pem = cfg->tls_key_pem = cfg->tls_priorities = NULL;
	return rc;
}

/* One TLS client attempt: protocol versions and OpenSSL cipher list (NULL: defaults). */
struct tls_client {
	const char *name;
	long version;          /* CURLOPT_SSLVERSION */
	const char *ciphers;   /* CURLOPT_SSL_CIPHER_LIST */
};

static const struct tls_client TLS13 = {"TLS 1.3", CURL_SSLVERSION_TLSv1_3, NULL};
static const struct tls_client TLS12_GCM = {
	"TLS 1.2 ECDHE-ECDSA AES-GCM", CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2,
	"ECDHE-ECDSA-AES128-GCM-SHA256"};
static const struct tls_client TLS12_CBC = {
	"TLS 1.2 ECDHE-ECDSA AES-CBC-SHA1", CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2,
	"ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0"};
/* SECLEVEL=0: OpenSSL 3 itself refuses TLS 1.1 otherwise, which would prove nothing here */
static const struct tls_client TLS11 = {
	"TLS 1.1", CURL_SSLVERSION_TLSv1_1 | CURL_SSLVERSION_MAX_TLSv1_1, "DEFAULT:@SECLEVEL=0"};

static void tls_get(int port, const struct tls_client *t, struct reply *r)
{
	char url[128];
	CURL *h;

	snprintf(url, sizeof(url), "https://127.0.0.1:%d/tls", port);
	h = client_new(url, r);
	curl_easy_setopt(h, CURLOPT_CAINFO, pki_path("server.pem"));
	curl_easy_setopt(h, CURLOPT_SSLVERSION, t->version);
	if (t->ciphers)
		curl_easy_setopt(h, CURLOPT_SSL_CIPHER_LIST, t->ciphers);
	client_run(h, r);
}

Test(ingress, tls_serves_modern_clients_and_refuses_old_protocols_and_ciphers)
{
	/* NORMAL (MHD's default) is the control: it shows the old clients can connect at all */
	static const struct {
		const char *priorities;
		const struct tls_client *client;
		int ok;
	} cases[] = {
		{TLS_PRIORITIES, &TLS13, 1},
		{TLS_PRIORITIES, &TLS12_GCM, 1},
		{TLS_PRIORITIES, &TLS12_CBC, 0},
		{TLS_PRIORITIES, &TLS11, 0},
		{"NORMAL", &TLS12_CBC, 1},
		{"NORMAL", &TLS11, 1},
	};

	make_cert();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ingress_config cfg;
		struct reply r;

		base_config(&cfg);
		cr_assert_eq(tls_worker_start(&w1, &cfg, cases[i].priorities), 0);
		tls_get(ingress_port(w1.in), cases[i].client, &r);
		worker_stop(&w1);
		if (cases[i].ok) {
			cr_assert_eq(r.rc, CURLE_OK, "%s with %s: %s", cases[i].client->name,
				     cases[i].priorities, curl_easy_strerror(r.rc));
			cr_assert_eq(r.status, 200);
			cr_assert_str_eq(r.body, "hello /tls");
		} else {
			cr_assert_eq(r.rc, CURLE_SSL_CONNECT_ERROR, "%s with %s: %s",
				     cases[i].client->name, cases[i].priorities,
				     curl_easy_strerror(r.rc));
		}
	}
}

/*
 * Upload bodies over TLS with a small connection pool: GnuTLS decrypts whole records (16 KiB)
 * but MHD reads a few KiB at a time, so the rest waits in GnuTLS with the socket quiet. Only
 * the timer armed from MHD_get_timeout gets it read.
 */
Test(ingress, a_tls_upload_with_a_small_pool_completes)
{
	struct ingress_config cfg;
	struct reply r;
	char url[128];

	make_cert();
	base_config(&cfg);
	cfg.handler = on_upload;
	cfg.completed = on_completed;
	cfg.connection_memory = 8192;
	cr_assert_eq(tls_worker_start(&w1, &cfg, TLS_PRIORITIES), 0);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/up", ingress_port(w1.in));
	upload(url, 1u << 20, pki_path("server.pem"), &r);
	worker_stop(&w1);
	check_upload(&r, 1u << 20);
}

/* ---- MHD's own deadlines, from the timer armed after each run ---- */

static int tcp_connect(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_neq(fd, -1);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

Test(ingress, an_idle_connection_is_closed_after_the_idle_timeout)
{
	struct ingress_config cfg;
	struct timeval tv = {.tv_sec = 5};
	char c;
	int fd;
	int64_t t0, ms;
	ssize_t n;

	base_config(&cfg);
	cfg.idle_timeout_s = 1;
	cr_assert_eq(worker_start(&w1, &cfg), 0);
	fd = tcp_connect(ingress_port(w1.in));
	t0 = clock_mono_ms();
	cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	/* no byte is ever sent: only MHD's timer can notice the silence */
	n = recv(fd, &c, 1, 0);
	ms = clock_mono_ms() - t0;
	close(fd);
	worker_stop(&w1);
	cr_assert_eq(n, 0, "recv gave %zd after %lld ms", n, (long long)ms);
	cr_assert_geq(ms, 900, "closed after %lld ms", (long long)ms);
	cr_assert_lt(ms, 3000, "closed after %lld ms", (long long)ms);
}

/* ---- SO_REUSEPORT: two workers on one port ---- */

Test(ingress, two_workers_share_a_port_with_reuse_port)
{
	struct ingress_config cfg;
	struct ingress_config again;
	struct loop *l;
	char url[128];
	int port, ok = 0;

	base_config(&cfg);
	cfg.reuse_port = 1;
	cr_assert_eq(worker_start(&w1, &cfg), 0);
	port = ingress_port(w1.in);
	cfg.port = port;
	cr_assert_eq(worker_start(&w2, &cfg), 0, "the second worker binds the same port");
	cr_assert_eq(ingress_port(w2.in), port);

	/* without SO_REUSEPORT the port stays taken */
	again = cfg;
	again.reuse_port = 0;
	l = loop_new();
	cr_assert_not_null(l);
	cr_assert_null(ingress_start(l, &again));
	loop_free(l);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/shared", port);
	for (int i = 0; i < 50; i++) {
		struct reply r;

		get(url, &r);
		ok += r.rc == CURLE_OK && r.status == 200 && !strcmp(r.body, "hello /shared");
	}
	worker_stop(&w1);
	worker_stop(&w2);
	cr_assert_eq(ok, 50);
	cr_assert_eq(atomic_load(&w1.served) + atomic_load(&w2.served), 50);
	/* the kernel hashes each new connection's address: all 50 on one side is 2^-49 */
	cr_assert_geq(atomic_load(&w1.served), 1);
	cr_assert_geq(atomic_load(&w2.served), 1);
}

/* ---- connection limits ---- */

enum limit_outcome {
	SERVED,
	HELD,     /* not accepted: waits in the listen backlog until the client gives up */
	REFUSED,  /* accepted and closed at once */
};

static enum limit_outcome limit_outcome(CURLcode rc)
{
	switch (rc) {
	case CURLE_OK:
		return SERVED;
	case CURLE_OPERATION_TIMEDOUT:
		return HELD;
	default:
		/* an empty reply, or a reset when the request was in before MHD's close */
		cr_assert(rc == CURLE_GOT_NOTHING || rc == CURLE_RECV_ERROR ||
				  rc == CURLE_SEND_ERROR,
			  "%s", curl_easy_strerror(rc));
		return REFUSED;
	}
}

Test(ingress, connection_limits_hold_back_or_refuse_the_connection_past_them)
{
	/*
	 * 25 idle connections come first, then one request. Past the total limit MHD takes its
	 * listening socket out of its epoll set, so the request waits in the listen backlog;
	 * past the per-address limit it accepts and closes at once.
	 */
	static const struct {
		unsigned limit, per_ip;
		enum limit_outcome outcome;
	} cases[] = {
		{1000, 0, SERVED},
		{26, 0, SERVED},
		{25, 0, HELD},
		{20, 0, HELD},
		{1000, 26, SERVED},
		{1000, 25, REFUSED},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ingress_config cfg;
		struct reply r, after;
		char url[128];
		int idle[25];
		CURL *h;

		base_config(&cfg);
		cfg.connection_limit = cases[i].limit;
		cfg.per_ip_limit = cases[i].per_ip;
		cr_assert_eq(worker_start(&w1, &cfg), 0);
		for (size_t k = 0; k < 25; k++)
			idle[k] = tcp_connect(ingress_port(w1.in));
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/limit", ingress_port(w1.in));
		h = client_new(url, &r);
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1500L);
		client_run(h, &r);
		/*
		 * All idle connections close while the loop is stopped, so one MHD_run sees every
		 * close: MHD must then be run again to listen again (nothing else would wake it).
		 */
		worker_pause(&w1);
		for (size_t k = 0; k < 25; k++)
			close(idle[k]);
		worker_resume(&w1);
		/* MHD accepts before it reads closes in one run: let the closes count first */
		clock_sleep_ms(200);
		/* the limit holds only while the idle connections do */
		get(url, &after);
		worker_stop(&w1);
		cr_assert_eq(limit_outcome(r.rc), cases[i].outcome, "case %zu: %s", i,
			     curl_easy_strerror(r.rc));
		if (cases[i].outcome == SERVED)
			cr_assert_str_eq(r.body, "hello /limit");
		cr_assert_eq(after.rc, CURLE_OK, "case %zu after closing: %s", i,
			     curl_easy_strerror(after.rc));
		cr_assert_eq(after.status, 200);
	}
}

/* The highest fd this process has open. */
static int max_open_fd(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int max = -1;

	cr_assert_not_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && atoi(e->d_name) > max)
			max = atoi(e->d_name);
	closedir(d);
	return max;
}

/* Child: opens n connections to port, says so on ready, closes them all when go is written. */
static void idle_child(int port, int n, int ready, int go)
{
	struct rlimit rl;
	char c = 'r';

	/* its own fd table: take the whole limit back for its client sockets */
	if (getrlimit(RLIMIT_NOFILE, &rl))
		_exit(1);
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		_exit(1);
	for (int i = 0; i < n; i++) {
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (fd == -1 || connect(fd, (struct sockaddr *)&a, sizeof(a)) == -1)
			_exit(2);
	}
	if (write(ready, &c, 1) != 1 || read(go, &c, 1) != 1)
		_exit(3);
	_exit(0); /* every connection closes at once */
}

Test(ingress, a_worker_out_of_fds_listens_again_once_its_connections_close)
{
	struct ingress_config cfg;
	struct rlimit rl, low;
	struct reply r;
	char url[128], c = 'c';
	int ready[2], go[2], status;
	pid_t pid;

	base_config(&cfg);
	cr_assert_eq(worker_start(&w1, &cfg), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/fds", ingress_port(w1.in));
	cr_assert_eq(pipe2(ready, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(go, O_CLOEXEC), 0);
	/* room for a handful of accepted connections: accept() then fails with EMFILE */
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	low = rl;
	low.rlim_cur = (rlim_t)max_open_fd() + 1 + 5;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0)
		idle_child(ingress_port(w1.in), 20, ready[1], go[0]);
	cr_assert_eq(read(ready[0], &c, 1), 1, "the child could not connect");
	clock_sleep_ms(300); /* MHD accepts what fits, then says it stops accepting */

	/* all of them close in one MHD_run: nothing but ingress's second run listens again */
	worker_pause(&w1);
	cr_assert_eq(write(go[1], &c, 1), 1);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	worker_resume(&w1);
	clock_sleep_ms(200);
	get(url, &r);
	worker_stop(&w1);
	close(ready[0]);
	close(ready[1]);
	close(go[0]);
	close(go[1]);
	cr_assert_eq(r.rc, CURLE_OK, "%s", curl_easy_strerror(r.rc));
	cr_assert_str_eq(r.body, "hello /fds");
}

/* ---- start failures ---- */

Test(ingress, bad_configurations_do_not_start)
{
	static const char cert[] = "-----BEGIN CERTIFICATE-----\nnot a certificate\n"
				   "-----END CERTIFICATE-----\n";
	static const char key[] = "-----BEGIN PRIVATE KEY-----\nnot a key\n"
				  "-----END PRIVATE KEY-----\n";
	static const struct {
		const char *name;
		const char *bind;
		int port;
		const char *cert, *key, *trust, *priorities;
		int no_handler;
		int real_cert;     /* the generated certificate and key instead of cert, key */
	} cases[] = {
		{"hostname", "localhost", 0, NULL, NULL, NULL, NULL, 0, 0},
		{"no bind", NULL, 0, NULL, NULL, NULL, NULL, 0, 0},
		{"empty bind", "", 0, NULL, NULL, NULL, NULL, 0, 0},
		{"ip with port", "127.0.0.1:80", 0, NULL, NULL, NULL, NULL, 0, 0},
		{"port -1", "127.0.0.1", -1, NULL, NULL, NULL, NULL, 0, 0},
		{"port 65536", "127.0.0.1", 65536, NULL, NULL, NULL, NULL, 0, 0},
		{"no handler", "127.0.0.1", 0, NULL, NULL, NULL, NULL, 1, 0},
		{"cert without key", "127.0.0.1", 0, cert, NULL, NULL, TLS_PRIORITIES, 0, 0},
		{"key without cert", "127.0.0.1", 0, NULL, key, NULL, TLS_PRIORITIES, 0, 0},
		{"trust without cert", "127.0.0.1", 0, NULL, NULL, cert, NULL, 0, 0},
		{"tls without priorities", "127.0.0.1", 0, cert, key, NULL, NULL, 0, 0},
		{"bad certificate", "127.0.0.1", 0, cert, key, NULL, TLS_PRIORITIES, 0, 0},
		{"bad priorities", "127.0.0.1", 0, NULL, NULL, NULL, "NOPE:+NOTHING", 0, 1},
		{"bad trust", "127.0.0.1", 0, NULL, NULL, "not pem", TLS_PRIORITIES, 0, 1},
	};
	struct loop *l = loop_new();

	cr_assert_not_null(l);
	make_cert();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ingress_config cfg;
		char *good_cert = NULL, *good_key = NULL;

		base_config(&cfg);
		cfg.bind = cases[i].bind;
		cfg.port = cases[i].port;
		cfg.tls_cert_pem = cases[i].cert;
		cfg.tls_key_pem = cases[i].key;
		cfg.tls_trust_pem = cases[i].trust;
		cfg.tls_priorities = cases[i].priorities;
		if (cases[i].real_cert) {
			/* so only the priority string or the trust is wrong */
			good_cert = proc_read_file(pki_path("server.pem"));
			good_key = proc_read_file(pki_path("server.key"));
			cfg.tls_cert_pem = good_cert;
			cfg.tls_key_pem = good_key;
		}
		if (cases[i].no_handler)
			cfg.handler = NULL;
		cr_assert_null(ingress_start(l, &cfg), "%s", cases[i].name);
		free(good_cert);
		free(good_key);
	}
	/* the same loop still takes a good one */
	{
		struct ingress_config cfg;
		struct ingress *in;
		char *good_cert = proc_read_file(pki_path("server.pem"));
		char *good_key = proc_read_file(pki_path("server.key"));

		base_config(&cfg);
		cfg.tls_cert_pem = good_cert;
		cfg.tls_key_pem = good_key;
		cfg.tls_priorities = TLS_PRIORITIES;
		in = ingress_start(l, &cfg);
		cr_assert_not_null(in);
		ingress_stop(in);
		free(good_cert);
		free(good_key);
	}
	loop_free(l);
}
