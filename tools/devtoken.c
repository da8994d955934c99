/* devtoken: fs-devtoken, a dev signing key, its JWKS and RS256 tokens to run fs-gateway locally. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "proto/base64.h"
#include "proto/num.h"

#define PROG	    "fs-devtoken"
#define KEY_FILE    "dev-signing-key.pem"
#define JWKS_FILE   "dev-jwks.json"
#define DEV_KID	    "dev-1"
#define TTL_DEFAULT 3600
#define TTL_MAX	    31536000 /* a year: a development token, not a credential to keep */
#define EXIT_USAGE  2

static const char usage_text[] =
	"Usage: " PROG " keygen DIR\n"
	"       " PROG " mint --key=FILE --kid=KID --issuer=ISS --audience=AUD --subject=SUB\n"
	"                   [--ttl=SECONDS] [--scope=SCOPE]\n"
	"       " PROG " --help\n"
	"\n"
	"Development keys and tokens for running fs-gateway locally; not an identity provider.\n"
	"\n"
	"  keygen DIR  writes DIR/" KEY_FILE " (RSA 2048, PKCS#8 PEM, mode 0600) and\n"
	"              DIR/" JWKS_FILE ", the gateway's JWKS: its public key with\n"
	"              kid \"" DEV_KID "\", alg RS256, use sig; never overwrites either file\n"
	"  mint        prints an RS256 JWT signed with the RSA key in FILE, header\n"
	"              {\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":KID}, claims iss, aud, sub,\n"
	"              iat = nbf = now, exp = now + SECONDS (default 3600, at most 31536000),\n"
	"              and scope when given\n"
	"\n"
	"Exit status: 0 done, 1 failure, 2 usage error.\n";

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int help(void)
{
	fputs(usage_text, stdout);
	return fflush(stdout) == EOF ? EXIT_FAILURE : 0;
}

static int usage_error(const char *what)
{
	fail("%s (see " PROG " --help)", what);
	return EXIT_USAGE;
}

/* Unpadded base64url of len bytes, malloc'd; NULL when out of memory or too long. */
static char *b64url(const void *in, size_t len)
{
	size_t cap = BASE64URL_ENCODED_LEN(len) + 1;
	char *out = malloc(cap);

	if (out && base64url_encode(in, len, out, cap, NULL) != PROTO_OK) {
		free(out);
		out = NULL;
	}
	return out;
}

static char *param_b64url(EVP_PKEY *key, const char *name)
{
	BIGNUM *bn = NULL;
	unsigned char *buf = NULL;
	char *out = NULL;
	int n;

	if (!EVP_PKEY_get_bn_param(key, name, &bn))
		return NULL;
	buf = malloc((size_t)BN_num_bytes(bn) + 1);
	if (buf) {
		n = BN_bn2bin(bn, buf);
		if (n > 0)
			out = b64url(buf, (size_t)n);
	}
	free(buf);
	BN_free(bn);
	return out;
}

/* The JWKS document of key's public part: one RSA key with kid, use and alg. */
static char *jwks_text(EVP_PKEY *key)
{
	char *n = param_b64url(key, OSSL_PKEY_PARAM_RSA_N);
	char *e = param_b64url(key, OSSL_PKEY_PARAM_RSA_E);
	json_t *doc = NULL;
	char *out = NULL;

	if (!n || !e)
		goto out;
	doc = json_pack("{s:[{s:s, s:s, s:s, s:s, s:s, s:s}]}", "keys", "kty", "RSA", "kid",
			DEV_KID, "use", "sig", "alg", "RS256", "n", n, "e", e);
	if (doc)
		out = json_dumps(doc, JSON_INDENT(2));
out:
	json_decref(doc);
	free(n);
	free(e);
	return out;
}

/* Creates path (never an existing file) with mode; the fd, or -1 with the reason printed. */
static int create_new(const char *path, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

	if (fd == -1) {
		if (errno == EEXIST)
			fail("%s exists; not overwriting it", path);
		else
			fail("cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	/* the umask must not decide who may read a private key */
	if (fchmod(fd, mode) == -1) {
		fail("cannot set the mode of %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	return fd;
}

/* Writes text and a newline to fd and closes it. 0, or -1 with the reason printed. */
static int write_close(int fd, const char *path, const char *text)
{
	FILE *f = fdopen(fd, "w");

	if (!f) {
		fail("cannot write %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (fputs(text, f) == EOF || fputc('\n', f) == EOF || fflush(f) == EOF ||
	    fsync(fileno(f)) == -1) {
		fail("cannot write %s: %s", path, strerror(errno));
		fclose(f);
		return -1;
	}
	if (fclose(f) == EOF) {
		fail("cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* The private key as PKCS#8 PEM, malloc'd. */
static char *private_pem(EVP_PKEY *key)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	long n;

	if (bio && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1) {
		n = BIO_get_mem_data(bio, &data);
		/* PEM ends in a newline; write_close adds one, so drop it here */
		if (n > 0 && data[n - 1] == '\n')
			n--;
		out = n > 0 ? strndup(data, (size_t)n) : NULL;
	}
	BIO_free(bio);
	return out;
}

static int keygen(const char *dir)
{
	char key_path[PATH_MAX], jwks_path[PATH_MAX];
	EVP_PKEY *key = NULL;
	char *pem = NULL, *jwks = NULL;
	int key_fd = -1, jwks_fd = -1, rc = EXIT_FAILURE;
	int made_key = 0, made_jwks = 0;

	if ((size_t)snprintf(key_path, sizeof(key_path), "%s/%s", dir, KEY_FILE) >=
		    sizeof(key_path) ||
	    (size_t)snprintf(jwks_path, sizeof(jwks_path), "%s/%s", dir, JWKS_FILE) >=
		    sizeof(jwks_path)) {
		fail("directory name too long: %s", dir);
		return EXIT_FAILURE;
	}
	key_fd = create_new(key_path, 0600);
	if (key_fd == -1)
		goto out;
	made_key = 1;
	jwks_fd = create_new(jwks_path, 0644);
	if (jwks_fd == -1)
		goto out;
	made_jwks = 1;
	key = EVP_RSA_gen(2048);
	pem = key ? private_pem(key) : NULL;
	jwks = key ? jwks_text(key) : NULL;
	if (!pem || !jwks) {
		fail("cannot generate an RSA key");
		goto out;
	}
	rc = write_close(key_fd, key_path, pem);
	key_fd = -1;
	if (rc == 0)
		rc = write_close(jwks_fd, jwks_path, jwks);
	else
		close(jwks_fd);
	jwks_fd = -1;
	rc = rc ? EXIT_FAILURE : 0;
out:
	if (key_fd != -1)
		close(key_fd);
	if (jwks_fd != -1)
		close(jwks_fd);
	/* all or nothing: a half-written pair must not be mistaken for a good one */
	if (rc) {
		if (made_key)
			unlink(key_path);
		if (made_jwks)
			unlink(jwks_path);
	}
	if (pem)
		OPENSSL_cleanse(pem, strlen(pem));
	free(pem);
	free(jwks);
	EVP_PKEY_free(key);
	return rc;
}

/* Never prompt on the terminal: an encrypted key is an error. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static EVP_PKEY *load_key(const char *path)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *key;

	if (!f) {
		fail("cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	key = PEM_read_PrivateKey(f, NULL, no_password, NULL);
	fclose(f);
	if (!key) {
		fail("%s: not an unencrypted PEM private key", path);
		return NULL;
	}
	if (!EVP_PKEY_is_a(key, "RSA") || EVP_PKEY_get_bits(key) < 2048) {
		fail("%s: not an RSA key of 2048 bits or more", path);
		EVP_PKEY_free(key);
		return NULL;
	}
	return key;
}

/* base64url(header) "." base64url(payload) "." base64url(RS256 signature), malloc'd. */
static char *sign_rs256(EVP_PKEY *key, const char *header, const char *payload)
{
	char *h = b64url(header, strlen(header));
	char *p = b64url(payload, strlen(payload));
	char *in = NULL, *s = NULL, *tok = NULL;
	unsigned char *sig = NULL;
	size_t sig_len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (!h || !p || !ctx || asprintf(&in, "%s.%s", h, p) == -1) {
		in = NULL;
		goto out;
	}
	if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(ctx, NULL, &sig_len, (const unsigned char *)in, strlen(in)) != 1)
		goto out;
	sig = malloc(sig_len);
	if (!sig || EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)in, strlen(in)) != 1)
		goto out;
	s = b64url(sig, sig_len);
	if (s && asprintf(&tok, "%s.%s", in, s) == -1)
		tok = NULL;
out:
	EVP_MD_CTX_free(ctx);
	free(h);
	free(p);
	free(in);
	free(s);
	free(sig);
	return tok;
}

enum mint_opt { O_KEY = 1, O_KID, O_ISSUER, O_AUDIENCE, O_SUBJECT, O_TTL, O_SCOPE };

static int mint(int argc, char **argv)
{
	static const struct option opts[] = {
		{"key", required_argument, NULL, O_KEY},
		{"kid", required_argument, NULL, O_KID},
		{"issuer", required_argument, NULL, O_ISSUER},
		{"audience", required_argument, NULL, O_AUDIENCE},
		{"subject", required_argument, NULL, O_SUBJECT},
		{"ttl", required_argument, NULL, O_TTL},
		{"scope", required_argument, NULL, O_SCOPE},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	/* indexed by enum mint_opt */
	const char *val[O_SCOPE + 1] = {NULL};
	static const char *const names[O_SCOPE + 1] = {
		NULL, "--key", "--kid", "--issuer", "--audience", "--subject", "--ttl", "--scope",
	};
	char msg[256];
	uint64_t ttl = TTL_DEFAULT;
	EVP_PKEY *key = NULL;
	json_t *h = NULL, *p = NULL;
	char *hs = NULL, *ps = NULL, *tok = NULL;
	int64_t now;
	int c, rc = EXIT_FAILURE;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (c == 'h')
			return help();
		if (c < O_KEY || c > O_SCOPE) {
			snprintf(msg, sizeof(msg), "mint: unknown option or missing value: %s",
				 argv[optind - 1]);
			return usage_error(msg);
		}
		if (val[c]) {
			snprintf(msg, sizeof(msg), "mint: %s given twice", names[c]);
			return usage_error(msg);
		}
		val[c] = optarg;
	}
	if (optind < argc) {
		snprintf(msg, sizeof(msg), "mint: unexpected argument: %s", argv[optind]);
		return usage_error(msg);
	}
	for (c = O_KEY; c <= O_SCOPE; c++) {
		if (c != O_TTL && c != O_SCOPE && !val[c]) {
			snprintf(msg, sizeof(msg), "mint: %s is required", names[c]);
			return usage_error(msg);
		}
		if (val[c] && !val[c][0]) {
			snprintf(msg, sizeof(msg), "mint: %s is empty", names[c]);
			return usage_error(msg);
		}
	}
	if (val[O_TTL] &&
	    (num_parse_u64(val[O_TTL], strlen(val[O_TTL]), TTL_MAX, &ttl) != PROTO_OK || ttl == 0))
		return usage_error("mint: --ttl must be whole seconds from 1 to 31536000");

	key = load_key(val[O_KEY]);
	if (!key)
		goto out;
	now = (int64_t)time(NULL);
	h = json_pack("{s:s, s:s, s:s}", "alg", "RS256", "typ", "JWT", "kid", val[O_KID]);
	p = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "iss", val[O_ISSUER], "aud",
		      val[O_AUDIENCE], "sub", val[O_SUBJECT], "iat", (json_int_t)now, "nbf",
		      (json_int_t)now, "exp", (json_int_t)(now + (int64_t)ttl));
	if (p && val[O_SCOPE] && json_object_set_new(p, "scope", json_string(val[O_SCOPE]))) {
		json_decref(p);
		p = NULL;
	}
	hs = h ? json_dumps(h, JSON_COMPACT) : NULL;
	ps = p ? json_dumps(p, JSON_COMPACT) : NULL;
	if (!hs || !ps) {
		/* jansson refuses strings that are not UTF-8 */
		fail("mint: cannot build the token (an argument is not valid UTF-8?)");
		goto out;
	}
	tok = sign_rs256(key, hs, ps);
	if (!tok) {
		fail("mint: signing failed");
		goto out;
	}
	if (printf("%s\n", tok) < 0 || fflush(stdout) == EOF) {
		fail("cannot write the token: %s", strerror(errno));
		goto out;
	}
	rc = 0;
out:
	json_decref(h);
	json_decref(p);
	free(hs);
	free(ps);
	free(tok);
	EVP_PKEY_free(key);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
		return help();
	if (argc < 2)
		return usage_error("a command is required: keygen or mint");
	if (strcmp(argv[1], "keygen") == 0) {
		if (argc == 3 && strcmp(argv[2], "--help") == 0)
			return help();
		if (argc != 3)
			return usage_error("keygen takes one argument: DIR");
		return keygen(argv[2]);
	}
	if (strcmp(argv[1], "mint") == 0)
		return mint(argc - 1, argv + 1);
	return usage_error("unknown command; commands are keygen and mint");
}
