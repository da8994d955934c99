/* Tests gateway/admit.c: the header-only decision on client requests, one table of requests. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include <cjose/cjose.h>

#include "gateway/admit.h"
#include "proto/route.h"

#define NOW_MS INT64_C(1800000000000)
#define ISS    "https://idp.example.com/"
#define AUD    "fs-gateway"
#define MAXJOB UINT64_C(1000000)
#define MAXURL 512

#define SID "dc-1"
#define JID "abcdefghijklmnopqrstuA"

/* Placeholders the table uses; filled in per process. */
#define A_GOOD	  "Authorization: {A}" /* alice, scope print */
#define A_NOSCOPE "Authorization: {S}" /* alice, no scope */
#define A_EXPIRED "Authorization: {X}" /* alice, expired */
#define TUS	  "Tus-Resumable: 1.0.0"
#define UUID1	  "0f8fad5b-d9cb-469f-a165-70867728950e"
#define META1	  "Upload-Metadata: job-id MGY4ZmFkNWItZDljYi00NjlmLWExNjUtNzA4Njc3Mjg5NTBl"
#define OCT	  "Content-Type: application/offset+octet-stream"
/* SHA-256 of the empty string */
#define SUM "Upload-Checksum: sha256 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
#define DIG "Repr-Digest: sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
/* META1 for a zstd job whose document has 1000000 (MAXJOB), 1000001 or 500 bytes */
#define ZSTD_AT_MAX META1 ",encoding enN0ZA==,size MTAwMDAwMA=="
#define ZSTD_ABOVE  META1 ",encoding enN0ZA==,size MTAwMDAwMQ=="
#define ZSTD_500    META1 ",encoding enN0ZA==,size NTAw"

static struct {
	cjose_jwk_t *jwk;
	struct token_verifier *v;
	char tok_good[2048], tok_noscope[2048], tok_expired[2048];
	unsigned char key[32], old[32];
	char pid[ROUTE_MAX_LEN + 1], pid_old[ROUTE_MAX_LEN + 1], pid_bob[ROUTE_MAX_LEN + 1];
	char pid_forged[ROUTE_MAX_LEN + 1], pid_otherkey[ROUTE_MAX_LEN + 1];
} K;

static void mint(const char *payload, char *out, size_t cap)
{
	cjose_err cerr = {0};
	cjose_header_t *h = cjose_header_new(&cerr);
	cjose_jws_t *jws;
	const char *compact;

	cr_assert_not_null(h);
	cr_assert(cjose_header_set(h, CJOSE_HDR_ALG, CJOSE_HDR_ALG_ES256, &cerr));
	cr_assert(cjose_header_set(h, CJOSE_HDR_KID, "k1", &cerr));
	jws = cjose_jws_sign(K.jwk, h, (const uint8_t *)payload, strlen(payload), &cerr);
	cr_assert_not_null(jws);
	cr_assert(cjose_jws_export(jws, &compact, &cerr));
	snprintf(out, cap, "Bearer %s", compact);
	cjose_jws_release(jws);
	cjose_header_release(h);
}

static void setup(void)
{
	cjose_err cerr = {0};
	char *pub, jwks[2048], err[256] = "";
	unsigned char other[32];
	struct token_config cfg = {
		.issuer = ISS,
		.audience = AUD,
		.algorithms = "ES256",
		.required_scope = "print",
		.skew_ms = 60000,
	};

	K.jwk = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &cerr);
	cr_assert_not_null(K.jwk);
	cr_assert(cjose_jwk_set_kid(K.jwk, "k1", 2, &cerr));
	pub = cjose_jwk_to_json(K.jwk, false, &cerr);
	cr_assert_not_null(pub);
	snprintf(jwks, sizeof(jwks), "{\"keys\":[%s]}", pub);
	cjose_get_dealloc()(pub);
	cfg.jwks_json = jwks;
	K.v = token_verifier_new(&cfg, err, sizeof(err));
	cr_assert_not_null(K.v, "%s", err);
	mint("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"alice\",\"scope\":\"print\","
	     "\"exp\":1800003600}",
	     K.tok_good, sizeof(K.tok_good));
	mint("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"alice\",\"exp\":1800003600}",
	     K.tok_noscope, sizeof(K.tok_noscope));
	mint("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"alice\",\"scope\":\"print\","
	     "\"exp\":1799990000}",
	     K.tok_expired, sizeof(K.tok_expired));

	memset(K.key, 'k', sizeof(K.key));
	memset(K.old, 'o', sizeof(K.old));
	memset(other, 'z', sizeof(other));
	cr_assert_eq(route_build(K.key, 32, "alice", 5, SID, JID, K.pid, sizeof(K.pid)), PROTO_OK);
	cr_assert_eq(route_build(K.old, 32, "alice", 5, SID, JID, K.pid_old, sizeof(K.pid_old)),
		     PROTO_OK);
	cr_assert_eq(route_build(K.key, 32, "bob", 3, SID, JID, K.pid_bob, sizeof(K.pid_bob)),
		     PROTO_OK);
	cr_assert_eq(route_build(other, 32, "alice", 5, SID, JID, K.pid_otherkey,
				 sizeof(K.pid_otherkey)),
		     PROTO_OK);
	/* flip one tag character, keeping it canonical base64url */
	memcpy(K.pid_forged, K.pid, sizeof(K.pid));
	K.pid_forged[strlen(SID) + 1 + strlen(JID) + 1] ^= 1;
}

static void teardown(void)
{
	token_verifier_free(K.v);
	cjose_jwk_release(K.jwk);
}

/* Replaces {A} {S} {X} (tokens) and {P} {O} {B} {F} {Z} (public ids) in t. */
static void expand(const char *t, char *out, size_t cap)
{
	size_t o = 0;

	while (*t) {
		const char *rep = NULL;

		if (t[0] == '{' && t[1] && t[2] == '}') {
			switch (t[1]) {
			case 'A': rep = K.tok_good; break;
			case 'S': rep = K.tok_noscope; break;
			case 'X': rep = K.tok_expired; break;
			case 'P': rep = K.pid; break;
			case 'O': rep = K.pid_old; break;
			case 'B': rep = K.pid_bob; break;
			case 'F': rep = K.pid_forged; break;
			case 'Z': rep = K.pid_otherkey; break;
			default: break;
			}
		}
		if (rep) {
			size_t n = strlen(rep);

			cr_assert_lt(o + n, cap);
			memcpy(out + o, rep, n);
			o += n;
			t += 3;
		} else {
			cr_assert_lt(o + 1, cap);
			out[o++] = *t++;
		}
	}
	out[o] = '\0';
}

#define NH 14

struct admit_case {
	const char *name;
	const char *method;
	const char *url;
	const char *h[NH]; /* "Name: value"; Host is added unless nohost */
	int nohost;
	int ret;
	enum admit_route route;
	enum problem_type problem;
	int close;
	const char *allow;
	int token; /* expected out->token, or -1: not checked */
	/* checked on acceptance */
	uint64_t length, offset;
	int has_body, has_checksum, has_digest;
	const char *meta_job, *meta_format;
	unsigned copies;
	int where; /* server_id/job_id must be SID/JID */
	int64_t zstd_size; /* with meta_job: 0 for identity (size -1), else zstd of this size */
};

#define OK(r)	.ret = 0, .route = (r), .problem = PROBLEM_UNKNOWN
#define NO(p)	.ret = -1, .route = ADMIT_NONE, .problem = (p)
#define JOB	"/v1/jobs/{P}"
#define PUT_URL "/v1/jobs/" UUID1

/* clang-format off: one request per entry reads better than one field per line */
static const struct admit_case cases[] = {
	/* unauthenticated routes */
	{"health", "GET", "/healthz", {NULL}, .token = -1, OK(ADMIT_HEALTH)},
	{"ready", "GET", "/readyz", {NULL}, .token = -1, OK(ADMIT_READY)},
	{"metrics", "GET", "/metrics", {NULL}, .token = -1, OK(ADMIT_METRICS)},
	{"health POST 405",
	 "POST",
	 "/healthz",
	 {NULL},
	 .token = -1,
	 NO(PROBLEM_METHOD_NOT_ALLOWED),
	 .allow = "GET"},
	{"metrics HEAD 405",
	 "HEAD",
	 "/metrics",
	 {NULL},
	 .token = -1,
	 NO(PROBLEM_METHOD_NOT_ALLOWED),
	 .allow = "GET"},
	{"options jobs", "OPTIONS", "/v1/jobs", {NULL}, .token = TOKEN_MISSING, OK(ADMIT_OPTIONS)},
	{"options job",
	 "OPTIONS",
	 "/v1/jobs/anything",
	 {NULL},
	 .token = TOKEN_MISSING,
	 OK(ADMIT_OPTIONS)},
	{"options bad token ignored",
	 "OPTIONS",
	 "/v1/jobs",
	 {"Authorization: Bearer x"},
	 .token = TOKEN_MISSING,
	 OK(ADMIT_OPTIONS)},

	/* paths and methods */
	{"unknown path",
	 "GET",
	 "/v2/jobs",
	 {A_GOOD},
	 NO(PROBLEM_NOT_FOUND),
	 .token = TOKEN_MISSING},
	{"trailing slash", "GET", "/v1/jobs/", {A_GOOD}, NO(PROBLEM_NOT_FOUND), .token = -1},
	{"double slash", "GET", "//v1/jobs", {A_GOOD}, NO(PROBLEM_NOT_FOUND), .token = -1},
	{"sub path", "GET", "/v1/jobs/a/b", {A_GOOD}, NO(PROBLEM_NOT_FOUND), .token = -1},
	{"404 before auth",
	 "DELETE",
	 "/nope",
	 {"Authorization: Bearer x"},
	 NO(PROBLEM_NOT_FOUND),
	 .token = TOKEN_MISSING},
	{"POST on job 405",
	 "POST",
	 JOB,
	 {A_GOOD, TUS},
	 NO(PROBLEM_METHOD_NOT_ALLOWED),
	 .allow = "OPTIONS, HEAD, GET, PATCH, DELETE, PUT",
	 .token = TOKEN_MISSING},
	{"PUT on jobs 405",
	 "PUT",
	 "/v1/jobs",
	 {A_GOOD},
	 NO(PROBLEM_METHOD_NOT_ALLOWED),
	 .allow = "OPTIONS, POST, GET",
	 .token = -1},
	{"lowercase method 405",
	 "get",
	 "/v1/jobs",
	 {A_GOOD},
	 NO(PROBLEM_METHOD_NOT_ALLOWED),
	 .allow = "OPTIONS, POST, GET",
	 .token = -1},

	/* header section and framing: first, and closing */
	{"no host",
	 "GET",
	 "/healthz",
	 {NULL},
	 .nohost = 1,
	 NO(PROBLEM_MALFORMED_REQUEST),
	 .close = 1,
	 .token = -1},
	{"bad field name",
	 "GET",
	 "/v1/jobs",
	 {"Bad Name: x", A_GOOD},
	 NO(PROBLEM_MALFORMED_REQUEST),
	 .close = 1,
	 .token = -1},
	{"cl and te",
	 "PATCH",
	 JOB,
	 {"Content-Length: 5", "Transfer-Encoding: chunked", A_GOOD},
	 NO(PROBLEM_AMBIGUOUS_FRAMING),
	 .close = 1,
	 .token = TOKEN_MISSING},
	{"framing before 404",
	 "GET",
	 "/nope",
	 {"Content-Length: 5, 5"},
	 NO(PROBLEM_AMBIGUOUS_FRAMING),
	 .close = 1,
	 .token = -1},
	{"framing beats bad token",
	 "POST",
	 "/v1/jobs",
	 {"Authorization: Bearer x", "Transfer-Encoding: gzip"},
	 NO(PROBLEM_AMBIGUOUS_FRAMING),
	 .close = 1,
	 .token = TOKEN_MISSING},
	{"repeated authorization",
	 "GET",
	 "/v1/jobs",
	 {A_GOOD, A_GOOD},
	 NO(PROBLEM_MALFORMED_REQUEST),
	 .close = 1,
	 .token = -1},
	{"repeated upload-length",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, "Upload-Length: 1", "upload-length: 1", META1},
	 NO(PROBLEM_MALFORMED_REQUEST),
	 .close = 1,
	 .token = -1},
	{"repeated content-encoding",
	 "GET",
	 "/v1/jobs",
	 {A_GOOD, "Content-Encoding: identity", "Content-Encoding: identity"},
	 NO(PROBLEM_MALFORMED_REQUEST),
	 .close = 1,
	 .token = -1},
	{"uri too long",
	 "GET",
	 "/v1/jobs/"
	 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	 {A_GOOD},
	 NO(PROBLEM_URI_TOO_LONG),
	 .close = 1,
	 .token = -1},

	/* authentication */
	{"no token", "GET", "/v1/jobs", {NULL}, NO(PROBLEM_UNAUTHORIZED), .token = TOKEN_MISSING},
	{"basic scheme",
	 "GET",
	 "/v1/jobs",
	 {"Authorization: Basic YTpi"},
	 NO(PROBLEM_UNAUTHORIZED),
	 .token = TOKEN_MISSING},
	{"garbage token",
	 "GET",
	 "/v1/jobs",
	 {"Authorization: Bearer a.b.c"},
	 NO(PROBLEM_UNAUTHORIZED),
	 .token = TOKEN_MALFORMED},
	{"expired token",
	 "GET",
	 "/v1/jobs",
	 {A_EXPIRED},
	 NO(PROBLEM_UNAUTHORIZED),
	 .token = TOKEN_EXPIRED},
	{"no scope 403",
	 "GET",
	 "/v1/jobs",
	 {A_NOSCOPE},
	 NO(PROBLEM_FORBIDDEN),
	 .token = TOKEN_SCOPE},
	{"auth before Upload-Length",
	 "POST",
	 "/v1/jobs",
	 {"Authorization: Bearer a.b.c", TUS, "Upload-Length: x", META1},
	 NO(PROBLEM_UNAUTHORIZED),
	 .token = TOKEN_MALFORMED},
	{"auth before Tus-Resumable",
	 "HEAD",
	 JOB,
	 {"Tus-Resumable: 0.2.2"},
	 NO(PROBLEM_UNAUTHORIZED),
	 .token = TOKEN_MISSING},

	/* Tus-Resumable */
	{"POST without tus",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, "Upload-Length: 1", META1},
	 NO(PROBLEM_UNSUPPORTED_VERSION),
	 .token = TOKEN_OK},
	{"HEAD without tus", "HEAD", JOB, {A_GOOD}, NO(PROBLEM_UNSUPPORTED_VERSION), .token = -1},
	{"DELETE wrong tus",
	 "DELETE",
	 JOB,
	 {A_GOOD, "Tus-Resumable: 0.2.2"},
	 NO(PROBLEM_UNSUPPORTED_VERSION),
	 .token = -1},
	{"GET empty tus",
	 "GET",
	 JOB,
	 {A_GOOD, "Tus-Resumable:"},
	 NO(PROBLEM_UNSUPPORTED_VERSION),
	 .token = -1},
	{"PUT wrong tus",
	 "PUT",
	 PUT_URL,
	 {A_GOOD, "Tus-Resumable: 1.0", "Content-Length: 3"},
	 NO(PROBLEM_UNSUPPORTED_VERSION),
	 .token = -1},
	{"tus before Upload-Length",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, "Upload-Length: x"},
	 NO(PROBLEM_UNSUPPORTED_VERSION),
	 .token = -1},

	/* headers no client may send */
	{"client Fs-Owner",
	 "GET",
	 "/v1/jobs",
	 {A_GOOD, "Fs-Owner: YWxpY2U"},
	 NO(PROBLEM_INVALID_HEADER),
	 .token = TOKEN_OK},
	{"client Fs-Sequence",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, "Fs-Sequence: 1", "Upload-Length: 1", META1},
	 NO(PROBLEM_INVALID_HEADER),
	 .token = -1},
	{"defer length",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, "Upload-Defer-Length: 1", META1},
	 NO(PROBLEM_INVALID_HEADER),
	 .token = -1},
	{"concat",
	 "PATCH",
	 JOB,
	 {A_GOOD, TUS, "Upload-Concat: partial", OCT, "Upload-Offset: 0", "Content-Length: 1"},
	 NO(PROBLEM_INVALID_HEADER),
	 .token = -1},
	{"method override",
	 "GET",
	 JOB,
	 {A_GOOD, "X-HTTP-Method-Override: DELETE"},
	 NO(PROBLEM_INVALID_HEADER),
	 .token = -1},
	{"gzip encoding",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, "Content-Encoding: gzip", "Upload-Length: 1", META1},
	 NO(PROBLEM_UNSUPPORTED_MEDIA_TYPE),
	 .token = -1},

	/* POST /v1/jobs */
	{"create",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, "Upload-Length: 1000", META1},
	 OK(ADMIT_CREATE),
	 .token = TOKEN_OK,
	 .length = 1000,
	 .meta_job = UUID1,
	 .meta_format = "application/octet-stream",
	 .copies = 1},
	{"create full",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, "Upload-Length: 1000000",
	  "Upload-Metadata: filetype YXBwbGljYXRpb24vcGRm,copies Mw==,job-id "
	  "MTExMTExMTEtMjIyMi00MzMzLTg0NDQtNTU1NTU1NTU1NTU1",
	  DIG, OCT, "Content-Length: 10", SUM, "Content-Encoding: Identity"},
	 OK(ADMIT_CREATE),
	 .token = -1,
	 .length = 1000000,
	 .has_body = 1,
	 .has_checksum = 1,
	 .has_digest = 1,
	 .meta_job = "11111111-2222-4333-8444-555555555555",
	 .meta_format = "application/pdf",
	 .copies = 3},
	/* zstd: Upload-Length counts the compressed bytes, size the document; both are bounded */
	{"create zstd",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, "Upload-Length: 1000", ZSTD_AT_MAX},
	 OK(ADMIT_CREATE),
	 .token = TOKEN_OK,
	 .length = 1000,
	 .meta_job = UUID1,
	 .meta_format = "application/octet-stream",
	 .copies = 1,
	 .zstd_size = 1000000},
	{"create zstd size above max",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, "Upload-Length: 1000", ZSTD_ABOVE},
	 NO(PROBLEM_TOO_LARGE),
	 .token = -1},
	{"create zstd length above max",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, "Upload-Length: 1000001", ZSTD_500},
	 NO(PROBLEM_TOO_LARGE),
	 .token = -1},
	{"create zstd without size",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, "Upload-Length: 1000", META1 ",encoding enN0ZA=="},
	 NO(PROBLEM_INVALID_METADATA),
	 .token = -1},
	{"create size without zstd",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, "Upload-Length: 1000", META1 ",size NTAw"},
	 NO(PROBLEM_INVALID_METADATA),
	 .token = -1},
	{"create chunked",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, "Upload-Length: 0", META1, OCT, "Transfer-Encoding: chunked"},
	 OK(ADMIT_CREATE),
	 .token = -1,
	 .has_body = 1,
	 .meta_job = UUID1,
	 .copies = 1},
	{"create empty body checksum",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, "Upload-Length: 0", META1, "Content-Length: 0", SUM},
	 OK(ADMIT_CREATE),
	 .token = -1,
	 .has_checksum = 1,
	 .meta_job = UUID1,
	 .copies = 1},
	{"create no length",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, META1},
	 NO(PROBLEM_INVALID_HEADER),
	 .token = -1},
	{"create bad length",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, "Upload-Length: 01", META1},
	 NO(PROBLEM_INVALID_HEADER),
	 .token = -1},
	{"create neg length",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, "Upload-Length: -1", META1},
	 NO(PROBLEM_INVALID_HEADER),
	 .token = -1},
	{"create length max+1",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, "Upload-Length: 1000001", META1},
	 NO(PROBLEM_TOO_LARGE),
	 .token = -1},
	{"create length huge",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, "Upload-Length: 99999999999999999999999999", META1},
	 NO(PROBLEM_TOO_LARGE),
	 .token = -1},
	{"create no metadata",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, "Upload-Length: 1"},
	 NO(PROBLEM_INVALID_METADATA),
	 .token = -1},
	{"create metadata no job-id",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, "Upload-Length: 1", "Upload-Metadata: name cmVwb3J0LnBkZg=="},
	 NO(PROBLEM_INVALID_METADATA),
	 .token = -1},
	{"create bad digest",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, "Upload-Length: 1", META1, "Repr-Digest: sha-512=:AAAA:"},
	 NO(PROBLEM_INVALID_CHECKSUM),
	 .token = -1},
	{"create body no type",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, "Upload-Length: 5", META1, "Content-Length: 5"},
	 NO(PROBLEM_UNSUPPORTED_MEDIA_TYPE),
	 .token = -1},
	{"create body wrong type",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, "Upload-Length: 5", META1, "Content-Length: 5",
	  "Content-Type: application/pdf"},
	 NO(PROBLEM_UNSUPPORTED_MEDIA_TYPE),
	 .token = -1},
	{"create md5",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, "Upload-Length: 5", META1, "Content-Length: 5", OCT,
	  "Upload-Checksum: md5 1B2M2Y8AsgTpgAmY7PhCfg=="},
	 NO(PROBLEM_CHECKSUM_ALGORITHM),
	 .token = -1},
	{"create short checksum",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, "Upload-Length: 5", META1, "Content-Length: 5", OCT,
	  "Upload-Checksum: sha256 AAAA"},
	 NO(PROBLEM_INVALID_CHECKSUM),
	 .token = -1},
	{"create body past length",
	 "POST",
	 "/v1/jobs",
	 {A_GOOD, TUS, "Upload-Length: 5", META1, "Content-Length: 6", OCT},
	 NO(PROBLEM_TOO_LARGE),
	 .token = -1},

	/* PATCH */
	{"patch",
	 "PATCH",
	 JOB,
	 {A_GOOD, TUS, OCT, "Upload-Offset: 4096", "Content-Length: 10"},
	 OK(ADMIT_PATCH),
	 .token = TOKEN_OK,
	 .offset = 4096,
	 .has_body = 1,
	 .where = 1},
	{"patch chunked sums",
	 "PATCH",
	 JOB,
	 {A_GOOD, TUS, OCT, "Upload-Offset: 0", "Transfer-Encoding: chunked", SUM, DIG,
	  "Upload-Length: 77"},
	 OK(ADMIT_PATCH),
	 .token = -1,
	 .has_body = 1,
	 .has_checksum = 1,
	 .has_digest = 1,
	 .where = 1},
	{"patch empty body",
	 "PATCH",
	 JOB,
	 {A_GOOD, TUS, OCT, "Upload-Offset: 9", "Content-Length: 0"},
	 OK(ADMIT_PATCH),
	 .token = -1,
	 .offset = 9,
	 .where = 1},
	{"patch old key",
	 "PATCH",
	 "/v1/jobs/{O}",
	 {A_GOOD, TUS, OCT, "Upload-Offset: 1", "Content-Length: 1"},
	 OK(ADMIT_PATCH),
	 .token = -1,
	 .offset = 1,
	 .has_body = 1,
	 .where = 1},
	{"patch no type",
	 "PATCH",
	 JOB,
	 {A_GOOD, TUS, "Upload-Offset: 0", "Content-Length: 1"},
	 NO(PROBLEM_UNSUPPORTED_MEDIA_TYPE),
	 .token = -1},
	{"patch type params",
	 "PATCH",
	 JOB,
	 {A_GOOD, TUS, "Content-Type: application/offset+octet-stream; x=1", "Upload-Offset: 0",
	  "Content-Length: 1"},
	 NO(PROBLEM_UNSUPPORTED_MEDIA_TYPE),
	 .token = -1},
	{"patch no offset",
	 "PATCH",
	 JOB,
	 {A_GOOD, TUS, OCT, "Content-Length: 1"},
	 NO(PROBLEM_INVALID_HEADER),
	 .token = -1},
	{"patch bad offset",
	 "PATCH",
	 JOB,
	 {A_GOOD, TUS, OCT, "Upload-Offset: 1e3", "Content-Length: 1"},
	 NO(PROBLEM_INVALID_HEADER),
	 .token = -1},
	{"patch offset above limit",
	 "PATCH",
	 JOB,
	 {A_GOOD, TUS, OCT, "Upload-Offset: 9007199254740992", "Content-Length: 1"},
	 NO(PROBLEM_INVALID_HEADER),
	 .token = -1},
	{"patch bad upload-length",
	 "PATCH",
	 JOB,
	 {A_GOOD, TUS, OCT, "Upload-Offset: 0", "Upload-Length: x", "Content-Length: 1"},
	 NO(PROBLEM_INVALID_HEADER),
	 .token = -1},
	{"patch no framing",
	 "PATCH",
	 JOB,
	 {A_GOOD, TUS, OCT, "Upload-Offset: 0"},
	 NO(PROBLEM_LENGTH_REQUIRED),
	 .token = -1},
	{"patch sha1",
	 "PATCH",
	 JOB,
	 {A_GOOD, TUS, OCT, "Upload-Offset: 0", "Content-Length: 1",
	  "Upload-Checksum: sha1 2jmj7l5rSw0yVb/vlWAYkK/YBwk="},
	 NO(PROBLEM_CHECKSUM_ALGORITHM),
	 .token = -1},
	{"patch bad checksum",
	 "PATCH",
	 JOB,
	 {A_GOOD, TUS, OCT, "Upload-Offset: 0", "Content-Length: 1", "Upload-Checksum: sha256"},
	 NO(PROBLEM_INVALID_CHECKSUM),
	 .token = -1},
	{"patch bad digest",
	 "PATCH",
	 JOB,
	 {A_GOOD, TUS, OCT, "Upload-Offset: 0", "Content-Length: 1", "Repr-Digest: sha-256=x"},
	 NO(PROBLEM_INVALID_CHECKSUM),
	 .token = -1},
	{"patch headers before 404",
	 "PATCH",
	 "/v1/jobs/{B}",
	 {A_GOOD, TUS, "Upload-Offset: 0"},
	 NO(PROBLEM_UNSUPPORTED_MEDIA_TYPE),
	 .token = -1},
	{"patch other user",
	 "PATCH",
	 "/v1/jobs/{B}",
	 {A_GOOD, TUS, OCT, "Upload-Offset: 0", "Content-Length: 1"},
	 NO(PROBLEM_NOT_FOUND),
	 .token = TOKEN_OK},

	/* HEAD, DELETE, GET by id; GET list */
	{"head", "HEAD", JOB, {A_GOOD, TUS}, OK(ADMIT_HEAD), .token = TOKEN_OK, .where = 1},
	{"delete", "DELETE", JOB, {A_GOOD, TUS}, OK(ADMIT_DELETE), .token = -1, .where = 1},
	{"status no tus", "GET", JOB, {A_GOOD}, OK(ADMIT_STATUS), .token = -1, .where = 1},
	{"status tus", "GET", JOB, {A_GOOD, TUS}, OK(ADMIT_STATUS), .token = -1, .where = 1},
	{"list", "GET", "/v1/jobs", {A_GOOD}, OK(ADMIT_LIST), .token = TOKEN_OK},
	{"list tus", "GET", "/v1/jobs", {A_GOOD, TUS}, OK(ADMIT_LIST), .token = -1},
	{"head old key",
	 "HEAD",
	 "/v1/jobs/{O}",
	 {A_GOOD, TUS},
	 OK(ADMIT_HEAD),
	 .token = -1,
	 .where = 1},
	{"head other user",
	 "HEAD",
	 "/v1/jobs/{B}",
	 {A_GOOD, TUS},
	 NO(PROBLEM_NOT_FOUND),
	 .token = TOKEN_OK},
	{"delete forged tag",
	 "DELETE",
	 "/v1/jobs/{F}",
	 {A_GOOD, TUS},
	 NO(PROBLEM_NOT_FOUND),
	 .token = -1},
	{"status unknown key", "GET", "/v1/jobs/{Z}", {A_GOOD}, NO(PROBLEM_NOT_FOUND), .token = -1},
	{"status malformed id",
	 "GET",
	 "/v1/jobs/dc-1.short.tag",
	 {A_GOOD},
	 NO(PROBLEM_NOT_FOUND),
	 .token = -1},
	{"status uuid", "GET", PUT_URL, {A_GOOD}, NO(PROBLEM_NOT_FOUND), .token = -1},

	/* PUT */
	{"put",
	 "PUT",
	 PUT_URL,
	 {A_GOOD, "Content-Length: 3"},
	 OK(ADMIT_PUT),
	 .token = TOKEN_OK,
	 .length = 3,
	 .has_body = 1,
	 .meta_job = UUID1,
	 .meta_format = "application/octet-stream",
	 .copies = 1},
	{"put full",
	 "PUT",
	 "/v1/jobs/0F8FAD5B-D9CB-469F-A165-70867728950E",
	 {A_GOOD, TUS, "Content-Length: 1000000", "Content-Type: Application/PDF; x=y",
	  "Upload-Metadata: copies Mw==,name cmVwb3J0LnBkZg==", DIG},
	 OK(ADMIT_PUT),
	 .token = -1,
	 .length = 1000000,
	 .has_body = 1,
	 .has_digest = 1,
	 .meta_job = UUID1,
	 .meta_format = "application/pdf",
	 .copies = 3},
	{"put zstd",
	 "PUT",
	 PUT_URL,
	 {A_GOOD, "Content-Length: 40", "Upload-Metadata: encoding enN0ZA==,size NTAw"},
	 OK(ADMIT_PUT),
	 .token = -1,
	 .length = 40,
	 .has_body = 1,
	 .meta_job = UUID1,
	 .meta_format = "application/octet-stream",
	 .copies = 1,
	 .zstd_size = 500},
	{"put zstd size above max",
	 "PUT",
	 PUT_URL,
	 {A_GOOD, "Content-Length: 40", "Upload-Metadata: encoding enN0ZA==,size MTAwMDAwMQ=="},
	 NO(PROBLEM_TOO_LARGE),
	 .token = -1},
	{"put format from metadata",
	 "PUT",
	 PUT_URL,
	 {A_GOOD, "Content-Length: 0",
	  "Upload-Metadata: format YXBwbGljYXRpb24vcGRm,job-id "
	  "MGY4ZmFkNWItZDljYi00NjlmLWExNjUtNzA4Njc3Mjg5NTBl"},
	 OK(ADMIT_PUT),
	 .token = -1,
	 .meta_job = UUID1,
	 .meta_format = "application/pdf",
	 .copies = 1},
	{"put same format twice",
	 "PUT",
	 PUT_URL,
	 {A_GOOD, "Content-Length: 1", "Content-Type: application/pdf",
	  "Upload-Metadata: format YXBwbGljYXRpb24vcGRm"},
	 OK(ADMIT_PUT),
	 .token = -1,
	 .length = 1,
	 .has_body = 1,
	 .meta_job = UUID1,
	 .meta_format = "application/pdf",
	 .copies = 1},
	{"put bad uuid",
	 "PUT",
	 "/v1/jobs/not-a-uuid",
	 {A_GOOD, "Content-Length: 1"},
	 NO(PROBLEM_INVALID_JOB_ID),
	 .token = -1},
	{"put public id",
	 "PUT",
	 JOB,
	 {A_GOOD, "Content-Length: 1"},
	 NO(PROBLEM_INVALID_JOB_ID),
	 .token = -1},
	{"put nil uuid",
	 "PUT",
	 "/v1/jobs/00000000-0000-0000-0000-000000000000",
	 {A_GOOD, "Content-Length: 1"},
	 NO(PROBLEM_INVALID_JOB_ID),
	 .token = -1},
	{"put chunked",
	 "PUT",
	 PUT_URL,
	 {A_GOOD, "Transfer-Encoding: chunked"},
	 NO(PROBLEM_LENGTH_REQUIRED),
	 .token = -1},
	{"put no framing", "PUT", PUT_URL, {A_GOOD}, NO(PROBLEM_LENGTH_REQUIRED), .token = -1},
	{"put too large",
	 "PUT",
	 PUT_URL,
	 {A_GOOD, "Content-Length: 1000001"},
	 NO(PROBLEM_TOO_LARGE),
	 .token = -1},
	{"put bad format",
	 "PUT",
	 PUT_URL,
	 {A_GOOD, "Content-Length: 1", "Content-Type: image/png"},
	 NO(PROBLEM_UNSUPPORTED_MEDIA_TYPE),
	 .token = -1},
	{"put tus type",
	 "PUT",
	 PUT_URL,
	 {A_GOOD, "Content-Length: 1", OCT},
	 NO(PROBLEM_UNSUPPORTED_MEDIA_TYPE),
	 .token = -1},
	{"put job-id mismatch",
	 "PUT",
	 PUT_URL,
	 {A_GOOD, "Content-Length: 1",
	  "Upload-Metadata: job-id MTExMTExMTEtMjIyMi00MzMzLTg0NDQtNTU1NTU1NTU1NTU1"},
	 NO(PROBLEM_INVALID_METADATA),
	 .token = -1},
	{"put bad metadata",
	 "PUT",
	 PUT_URL,
	 {A_GOOD, "Content-Length: 1", "Upload-Metadata: copies MA=="},
	 NO(PROBLEM_INVALID_METADATA),
	 .token = -1},
	{"put format disagrees",
	 "PUT",
	 PUT_URL,
	 {A_GOOD, "Content-Length: 1", "Content-Type: text/plain",
	  "Upload-Metadata: format YXBwbGljYXRpb24vcGRm"},
	 NO(PROBLEM_INVALID_METADATA),
	 .token = -1},
	{"put bad digest",
	 "PUT",
	 PUT_URL,
	 {A_GOOD, "Content-Length: 1", "Repr-Digest: md5=:AA==:"},
	 NO(PROBLEM_INVALID_CHECKSUM),
	 .token = -1},
};
/* clang-format on */

static void run_case(const struct admit_case *c)
{
	static char buf[NH + 1][4096];
	struct proto_field fields[NH + 1];
	char url[2048];
	size_t n = 0;
	struct admit a;
	struct admit_config cfg = {
		.tokens = K.v,
		.route_key = K.key,
		.route_key_len = sizeof(K.key),
		.route_key_old = K.old,
		.route_key_old_len = sizeof(K.old),
		.max_job_bytes = MAXJOB,
		.max_url = MAXURL,
	};
	struct admit_request req = {.method = c->method, .url = url, .fields = fields};
	int rc;

	expand(c->url, url, sizeof(url));
	if (!c->nohost) {
		fields[n] = (struct proto_field){"Host", 4, "print.example.com", 17};
		n++;
	}
	for (size_t i = 0; i < NH && c->h[i]; i++) {
		char *colon;

		expand(c->h[i], buf[i], sizeof(buf[i]));
		colon = strchr(buf[i], ':');
		cr_assert_not_null(colon, "%s", c->name);
		fields[n].name = buf[i];
		fields[n].name_len = (size_t)(colon - buf[i]);
		fields[n].value = colon + 1 + (colon[1] == ' ');
		fields[n].value_len = strlen(fields[n].value);
		n++;
	}
	req.n = n;

	rc = admit_decide(&cfg, &req, NOW_MS, &a);
	cr_expect_eq(rc, c->ret, "%s: rc %d", c->name, rc);
	cr_expect_eq(a.problem, c->problem, "%s: problem %d, want %d", c->name, a.problem,
		     c->problem);
	cr_expect_eq(a.route, c->route, "%s: route %d", c->name, a.route);
	cr_expect_eq(a.close, c->close, "%s: close", c->name);
	if (c->allow)
		cr_expect(a.allow && strcmp(a.allow, c->allow) == 0, "%s: allow %s", c->name,
			  a.allow ? a.allow : "(null)");
	else
		cr_expect_null(a.allow, "%s: allow", c->name);
	if (c->token >= 0)
		cr_expect_eq((int)a.token, c->token, "%s: token %s", c->name,
			     token_result_name(a.token));
	if (c->ret != 0)
		return;
	if (a.token == TOKEN_OK) {
		cr_expect_eq(a.owner_len, 5, "%s", c->name);
		cr_expect_str_eq(a.owner, "alice", "%s", c->name);
	}
	cr_expect_eq(a.length, c->length, "%s: length %llu", c->name, (unsigned long long)a.length);
	cr_expect_eq(a.offset, c->offset, "%s: offset", c->name);
	cr_expect_eq(a.has_body, c->has_body, "%s: has_body", c->name);
	cr_expect_eq(a.has_checksum, c->has_checksum, "%s: has_checksum", c->name);
	cr_expect_eq(a.has_digest, c->has_digest, "%s: has_digest", c->name);
	if (c->has_checksum)
		cr_expect(a.checksum[0] == 0xe3 && a.checksum[31] == 0x55, "%s", c->name);
	if (c->has_digest)
		cr_expect(a.digest[0] == 0xe3 && a.digest[31] == 0x55, "%s", c->name);
	if (c->meta_job) {
		cr_expect_str_eq(a.meta.job_id, c->meta_job, "%s", c->name);
		cr_expect_eq(a.meta.copies, c->copies, "%s: copies", c->name);
		cr_expect_eq(a.meta.encoding,
			     c->zstd_size ? META_ENCODING_ZSTD : META_ENCODING_IDENTITY, "%s",
			     c->name);
		cr_expect_eq(a.meta.size, c->zstd_size ? c->zstd_size : -1, "%s: size", c->name);
	}
	if (c->meta_format)
		cr_expect_str_eq(a.meta.format, c->meta_format, "%s", c->name);
	if (c->where) {
		cr_expect_str_eq(a.server_id, SID, "%s", c->name);
		cr_expect_str_eq(a.job_id, JID, "%s", c->name);
	} else {
		cr_expect_str_eq(a.server_id, "", "%s", c->name);
	}
}

Test(admit, table, .init = setup, .fini = teardown)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
}

/* Without a previous key, an id built with the old one is just not found. */
Test(admit, no_old_key, .init = setup, .fini = teardown)
{
	char url[256], auth[2048];
	struct proto_field f[3] = {{"Host", 4, "h", 1},
				   {"Authorization", 13, auth, 0},
				   {"Tus-Resumable", 13, "1.0.0", 5}};
	struct admit_config cfg = {.tokens = K.v,
				   .route_key = K.key,
				   .route_key_len = 32,
				   .max_job_bytes = MAXJOB,
				   .max_url = MAXURL};
	struct admit_request req = {.method = "HEAD", .url = url, .fields = f, .n = 3};
	struct admit a;

	snprintf(auth, sizeof(auth), "%s", K.tok_good);
	f[1].value_len = strlen(auth);
	snprintf(url, sizeof(url), "/v1/jobs/%s", K.pid_old);
	cr_expect_eq(admit_decide(&cfg, &req, NOW_MS, &a), -1);
	cr_expect_eq(a.problem, PROBLEM_NOT_FOUND);
	snprintf(url, sizeof(url), "/v1/jobs/%s", K.pid);
	cr_expect_eq(admit_decide(&cfg, &req, NOW_MS, &a), 0);
	cr_expect_eq(a.route, ADMIT_HEAD);
	/* the URL limit is inclusive */
	cfg.max_url = strlen(url);
	cr_expect_eq(admit_decide(&cfg, &req, NOW_MS, &a), 0);
	cfg.max_url = strlen(url) - 1;
	cr_expect_eq(admit_decide(&cfg, &req, NOW_MS, &a), -1);
	cr_expect_eq(a.problem, PROBLEM_URI_TOO_LONG);
	cr_expect_eq(a.close, 1);
}
