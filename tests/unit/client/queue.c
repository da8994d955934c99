/* Tests client/queue.c: format detection, submission, listing, state, removal and recovery. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <zstd.h>

#include "client/queue.h"
#include "tests/lib/proc.h"

static char *tmp;   /* the test's scratch directory */
static char qdir[512]; /* the queue directory inside it */

static void setup(void)
{
	tmp = proc_tempdir("queue");
	cr_assert_not_null(tmp);
	snprintf(qdir, sizeof(qdir), "%s/q/sub", tmp);
}

static void teardown(void)
{
	if (tmp) {
		/* A test may leave a file unreadable; give the owner access back before removal. */
		char path[600];

		snprintf(path, sizeof(path), "%s/secret", tmp);
		chmod(path, 0600);
		proc_rmtree(tmp);
	}
	free(tmp);
	tmp = NULL;
}

TestSuite(queue, .init = setup, .fini = teardown);

/* ---- helpers ---- */

static char *path_in(const char *name)
{
	char *p;

	cr_assert_neq(asprintf(&p, "%s/%s", tmp, name), -1);
	return p;
}

static char *write_bytes(const char *name, const void *buf, size_t len)
{
	char *p = path_in(name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	const char *c = buf;

	cr_assert_neq(fd, -1, "%s: %s", p, strerror(errno));
	while (len) {
		ssize_t n = write(fd, c, len);

		cr_assert_gt(n, 0);
		c += n;
		len -= (size_t)n;
	}
	cr_assert_eq(close(fd), 0);
	return p;
}

static char *write_text(const char *name, const char *text)
{
	return write_bytes(name, text, strlen(text));
}

/* Reads a whole file; *len gets its size. */
static unsigned char *read_all(const char *path, size_t *len)
{
	struct stat st;
	unsigned char *buf;
	size_t got = 0;
	int fd = open(path, O_RDONLY);

	cr_assert_neq(fd, -1, "%s: %s", path, strerror(errno));
	cr_assert_eq(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	cr_assert_not_null(buf);
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		cr_assert_gt(n, 0);
		got += (size_t)n;
	}
	close(fd);
	*len = got;
	return buf;
}

static void sha256(const void *buf, size_t len, unsigned char out[DIGEST_SHA256_LEN])
{
	unsigned n = 0;

	cr_assert_eq(EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL), 1);
	cr_assert_eq(n, DIGEST_SHA256_LEN);
}

static struct queue_job submit_ok(const char *path, const struct queue_submit_opts *o)
{
	char detail[256] = "";
	struct queue_job j;
	enum queue_err rc = queue_submit(qdir, path, o, &j, detail, sizeof(detail));

	cr_assert_eq(rc, QUEUE_OK, "submit %s: %s (%s)", path, queue_strerror(rc), detail);
	return j;
}

static struct queue_job submit_text(const char *name, const char *text)
{
	char *p = write_text(name, text);
	struct queue_job j = submit_ok(p, NULL);

	free(p);
	return j;
}

/* Entries of qdir/sub other than "." and "..". */
static int dir_count(const char *sub)
{
	char path[700];
	struct dirent *d;
	int n = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "%s/%s", qdir, sub);
	dir = opendir(path);
	cr_assert_not_null(dir, "%s: %s", path, strerror(errno));
	while ((d = readdir(dir)))
		if (strcmp(d->d_name, ".") && strcmp(d->d_name, ".."))
			n++;
	closedir(dir);
	return n;
}

static int exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static void file_in_job(char *out, size_t cap, const struct queue_job *j, const char *file)
{
	cr_assert_lt((size_t)snprintf(out, cap, "%s/%s", j->dir, file), cap);
}

/* Decodes the zstd frame of path with libzstd's streaming API; returns the bytes. */
static unsigned char *zstd_decode(const char *path, size_t *len)
{
	size_t in_len, cap = 1 << 20, used = 0, r = 1;
	unsigned char *in = read_all(path, &in_len), *out = malloc(cap);
	ZSTD_DCtx *z = ZSTD_createDCtx();
	ZSTD_inBuffer ib = {in, in_len, 0};

	cr_assert_not_null(out);
	cr_assert_not_null(z);
	while (ib.pos < ib.size) {
		ZSTD_outBuffer ob;

		if (cap - used < ZSTD_DStreamOutSize()) {
			cap *= 2;
			out = realloc(out, cap);
			cr_assert_not_null(out);
		}
		ob = (ZSTD_outBuffer){out + used, cap - used, 0};
		r = ZSTD_decompressStream(z, &ob, &ib);
		cr_assert(!ZSTD_isError(r), "zstd: %s", ZSTD_getErrorName(r));
		used += ob.pos;
	}
	cr_assert_eq(r, 0, "zstd frame incomplete");
	ZSTD_freeDCtx(z);
	free(in);
	*len = used;
	return out;
}

/* ---- names and errors ---- */

Test(queue, phase_names_round_trip)
{
	for (int p = QUEUE_PHASE_QUEUED; p <= QUEUE_PHASE_DONE; p++) {
		enum queue_phase back = QUEUE_PHASE_DONE;
		const char *name = queue_phase_name((enum queue_phase)p);

		cr_assert_eq(queue_phase_parse(name, &back), 0, "%s", name);
		cr_assert_eq((int)back, p);
	}
	cr_assert_str_eq(queue_phase_name(QUEUE_PHASE_AUTH), "auth");
	cr_assert_str_eq(queue_phase_name(QUEUE_PHASE_UPLOADING), "uploading");
	cr_assert_eq(queue_phase_parse("Queued", &(enum queue_phase){0}), -1);
	cr_assert_eq(queue_phase_parse("", &(enum queue_phase){0}), -1);
	for (int e = QUEUE_OK; e <= QUEUE_E_DAMAGED; e++)
		cr_assert_str_neq(queue_strerror((enum queue_err)e), "unknown queue error");
}

/* ---- format detection ---- */

struct sniff_case {
	const char *what;
	const char *bytes;
	size_t len; /* 0: strlen(bytes) */
	const char *want;
};

#define PDF "application/pdf"
#define PS "application/postscript"
#define PCL "application/vnd.hp-pcl"
#define UEL "\033%-12345X"

static const struct sniff_case sniff_cases[] = {
	{"pdf", "%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", 0, PDF},
	{"postscript", "%!PS-Adobe-3.0\n%%Title: x\n", 0, PS},
	{"postscript bare", "%!PS\n", 0, PS},
	{"pcl reset", "\033E\033&l0O text", 0, PCL},
	{"pwg raster", "RaS2PwgRaster\0\0\0\0", 17, "image/pwg-raster"},
	{"urf", "UNIRAST\0\0\0\0\1", 12, "image/urf"},
	{"pjl postscript", UEL "@PJL JOB NAME=\"x\"\r\n@PJL SET RESOLUTION=600\r\n"
			   "@PJL ENTER LANGUAGE=POSTSCRIPT\r\n%!PS-Adobe-3.0\n", 0, PS},
	{"pjl postscript lowercase", UEL "@pjl enter language=postscript\n%!PS\n", 0, PS},
	{"pjl postscript spaced", UEL "@PJL\r\n@PJL ENTER  LANGUAGE = PostScript \r\n", 0, PS},
	{"pjl pcl", UEL "@PJL JOB\r\n@PJL ENTER LANGUAGE=PCL\r\n\033E", 0, PCL},
	{"pjl pclxl", UEL "@PJL ENTER LANGUAGE=PCLXL\r\n) HP-PCL XL;", 0, PCL},
	{"pjl pdf goes to pcl", UEL "@PJL ENTER LANGUAGE=PDF\n%PDF-1.4", 0, PCL},
	{"pjl postscriptx is not postscript", UEL "@PJL ENTER LANGUAGE=POSTSCRIPTX\n", 0, PCL},
	{"pjl without enter then ps", UEL "@PJL SET COPIES=2\r\n%!PS-Adobe\n", 0, PS},
	{"pjl without enter then pcl", UEL "@PJL SET COPIES=2\r\n\033E", 0, PCL},
	{"pjl only", UEL "@PJL\n", 0, PCL},
	{"uel only", UEL, 0, PCL},
	{"uel then ps", UEL "%!PS-Adobe-3.0\n", 0, PS},
	{"pjl comment mentioning postscript", UEL "@PJL COMMENT ENTER LANGUAGE=POSTSCRIPT\n\033E",
	 0, PCL},
	{"text ascii", "Hello, printer.\r\nSecond line\tTabbed\fNext page\n", 0, "text/plain"},
	{"text utf-8", "P\xc5\x99\xc3\xad\xc5\xa1" "ern\xc4\x9b \xe2\x82\xac \xf0\x9f\x96\xa8\n", 0,
	 "text/plain"},
	{"text one char", "x", 0, "text/plain"},
	{"text short %PD", "%PD", 0, "text/plain"},
	{"text %PDF without dash", "%PDF", 0, "text/plain"},
	{"text RaS", "RaS", 0, "text/plain"},
	{"text with nul", "abc\0def", 7, NULL},
	{"text with esc", "abc\033def", 0, NULL},
	{"text with bell", "abc\adef", 0, NULL},
	{"text with del", "abc\x7f", 0, NULL},
	{"text with c1 control", "abc\xc2\x85", 0, NULL},
	{"overlong utf-8", "abc\xc0\xaf", 0, NULL},
	{"surrogate", "abc\xed\xa0\x80", 0, NULL},
	{"truncated utf-8 at the end of a whole file", "abc\xe2\x82", 0, NULL},
	{"lone continuation byte", "\x80" "abc", 0, NULL},
	{"binary junk", "\x7f" "ELF\2\1\1\0\0\0", 10, NULL},
	{"binary high bytes", "\xff\xfe\xfd\xfc", 0, NULL},
	{"zip", "PK\3\4\24\0\6\0", 8, NULL},
	{"esc alone", "\033", 0, NULL},
	{"empty", "", 0, NULL},
};

Test(queue, detect_table)
{
	for (size_t i = 0; i < sizeof(sniff_cases) / sizeof(sniff_cases[0]); i++) {
		const struct sniff_case *c = &sniff_cases[i];
		size_t len = c->len ? c->len : strlen(c->bytes);
		const char *got = queue_detect_format((const unsigned char *)c->bytes, len);

		if (!c->want)
			cr_expect_null(got, "%s: got %s", c->what, got ? got : "");
		else
			cr_expect(got && !strcmp(got, c->want), "%s: got %s, want %s", c->what,
				  got ? got : "NULL", c->want);
	}
	cr_assert_null(queue_detect_format(NULL, 10));
}

Test(queue, detect_cut_at_sniff_len)
{
	unsigned char buf[QUEUE_SNIFF_LEN + 16];

	/* Text whose last character is cut off by the sniff window is still text. */
	memset(buf, 'a', sizeof(buf));
	buf[QUEUE_SNIFF_LEN - 2] = 0xe2;
	buf[QUEUE_SNIFF_LEN - 1] = 0x82;
	buf[QUEUE_SNIFF_LEN] = 0xac;
	cr_assert_str_eq(queue_detect_format(buf, QUEUE_SNIFF_LEN), "text/plain");
	cr_assert_str_eq(queue_detect_format(buf, sizeof(buf)), "text/plain");
	/* Only the window counts: a NUL after it is not seen... */
	buf[QUEUE_SNIFF_LEN + 4] = 0;
	cr_assert_str_eq(queue_detect_format(buf, sizeof(buf)), "text/plain");
	/* ...but one inside it is. */
	buf[100] = 0;
	cr_assert_null(queue_detect_format(buf, sizeof(buf)));
	/* A cut that is not a character prefix (a lone continuation byte) is not text. */
	memset(buf, 'a', sizeof(buf));
	buf[QUEUE_SNIFF_LEN - 1] = 0x82;
	cr_assert_null(queue_detect_format(buf, QUEUE_SNIFF_LEN));
}

/* ---- submission ---- */

Test(queue, submit_identity)
{
	static const char text[] = "Quarterly report\nline two\n";
	unsigned char want[DIGEST_SHA256_LEN], *data;
	char path[4200], hex[65];
	struct queue_job j;
	const char *sha_text;
	json_t *o;
	size_t len;
	int fd;

	j = submit_text("report.txt", text);
	cr_assert_eq(j.seq, 1);
	cr_assert_str_eq(j.name, "report.txt");
	cr_assert_str_eq(j.format, "text/plain");
	cr_assert_eq(j.copies, 1);
	cr_assert_eq(j.encoding, QUEUE_ENC_IDENTITY);
	cr_assert_eq(j.size, strlen(text));
	cr_assert_eq(j.stored_size, strlen(text));
	cr_assert_gt(j.submitted_at_ms, 1700000000000LL);
	sha256(text, strlen(text), want);
	cr_assert_arr_eq(j.sha256, want, sizeof(want));

	/* A lowercase canonical version 4 UUID. */
	cr_assert_eq(strlen(j.job_id), UUID_LEN);
	for (size_t i = 0; i < UUID_LEN; i++) {
		char c = j.job_id[i];

		if (i == 8 || i == 13 || i == 18 || i == 23)
			cr_assert_eq(c, '-');
		else
			cr_assert((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'), "%s", j.job_id);
	}
	cr_assert_eq(j.job_id[14], '4');
	cr_assert(strchr("89ab", j.job_id[19]), "%s", j.job_id);

	/* Layout: jobs/<seq:010>-<uuid>/{data,job.json}, no state.json yet, tmp/ empty. */
	cr_assert(j.dir[0] == '/', "%s", j.dir);
	snprintf(path, sizeof(path), "/jobs/0000000001-%s", j.job_id);
	cr_assert(strstr(j.dir, path), "%s", j.dir);
	file_in_job(path, sizeof(path), &j, "data");
	data = read_all(path, &len);
	cr_assert_eq(len, strlen(text));
	cr_assert_arr_eq(data, text, len);
	free(data);
	file_in_job(path, sizeof(path), &j, "state.json");
	cr_assert_not(exists(path));
	cr_assert_eq(dir_count("tmp"), 0);
	cr_assert_eq(dir_count("jobs"), 1);

	/* job.json holds the sha256 as 64 lowercase hex digits. */
	file_in_job(path, sizeof(path), &j, "job.json");
	o = json_load_file(path, 0, NULL);
	cr_assert_not_null(o);
	sha_text = json_string_value(json_object_get(o, "sha256"));
	cr_assert_not_null(sha_text);
	for (size_t i = 0; i < sizeof(want); i++)
		snprintf(hex + 2 * i, 3, "%02x", want[i]);
	cr_assert_str_eq(sha_text, hex);
	cr_assert_str_eq(json_string_value(json_object_get(o, "encoding")), "identity");
	json_decref(o);

	fd = queue_data_open(&j);
	cr_assert_neq(fd, -1);
	{
		char buf[64];

		cr_assert_eq(read(fd, buf, sizeof(buf)), (ssize_t)strlen(text));
		cr_assert_arr_eq(buf, text, strlen(text));
	}
	close(fd);
}

Test(queue, submit_compressible_8mib_zstd)
{
	const size_t size = 8u << 20;
	unsigned char *doc = malloc(size), *back, want[DIGEST_SHA256_LEN];
	struct queue_submit_opts o = {.compress = 1, .format = "application/postscript"};
	char *p, data[4200];
	struct queue_job j;
	size_t len, raw_len;
	unsigned char *raw;

	cr_assert_not_null(doc);
	for (size_t i = 0; i < size; i++)
		doc[i] = (unsigned char)"%!PS-Adobe 0 0 moveto (hello) show\n"[i % 35];
	p = write_bytes("big.ps", doc, size);
	j = submit_ok(p, &o);
	cr_assert_eq(j.encoding, QUEUE_ENC_ZSTD);
	cr_assert_eq(j.size, size);
	cr_assert_lt(j.stored_size, size / 10, "stored %" PRIu64, j.stored_size);
	sha256(doc, size, want);
	cr_assert_arr_eq(j.sha256, want, sizeof(want));

	file_in_job(data, sizeof(data), &j, "data");
	raw = read_all(data, &raw_len);
	cr_assert_eq(raw_len, j.stored_size);
	/*
	 * One frame that announces its size and carries a checksum (RFC 8878 3.1.1.1.1: bit 2 of
	 * the Frame_Header_Descriptor after the 4-byte magic).
	 */
	cr_assert_eq(ZSTD_getFrameContentSize(raw, raw_len), size);
	cr_assert_gt(raw_len, 4);
	cr_assert(raw[4] & 0x04, "no content checksum");
	cr_assert_eq(ZSTD_findFrameCompressedSize(raw, raw_len), raw_len);
	free(raw);

	back = zstd_decode(data, &len);
	cr_assert_eq(len, size);
	cr_assert(!memcmp(back, doc, size), "decoded bytes differ");
	free(back);
	free(doc);
	free(p);
}

Test(queue, submit_small_compressible_level)
{
	char text[4096];
	struct queue_submit_opts o = {.compress = 1, .level = 19};
	struct queue_job j;
	unsigned char *back;
	char data[4200], *p;
	size_t len;

	for (size_t i = 0; i < sizeof(text); i++)
		text[i] = (char)('a' + i % 7);
	p = write_bytes("small.txt", text, sizeof(text));
	j = submit_ok(p, &o);
	cr_assert_eq(j.encoding, QUEUE_ENC_ZSTD);
	cr_assert_str_eq(j.format, "text/plain");
	file_in_job(data, sizeof(data), &j, "data");
	back = zstd_decode(data, &len);
	cr_assert_eq(len, sizeof(text));
	cr_assert_arr_eq(back, text, sizeof(text));
	free(back);
	free(p);
}

Test(queue, submit_incompressible_stays_identity)
{
	const size_t size = 1u << 20;
	unsigned char *doc = malloc(size), *data, want[DIGEST_SHA256_LEN];
	struct queue_submit_opts o = {.compress = 1, .format = "application/octet-stream"};
	char path[4200], *p;
	struct queue_job j;
	size_t len;

	cr_assert_not_null(doc);
	cr_assert_eq(RAND_bytes(doc, (int)size), 1);
	p = write_bytes("random.bin", doc, size);
	j = submit_ok(p, &o);
	cr_assert_eq(j.encoding, QUEUE_ENC_IDENTITY);
	cr_assert_eq(j.stored_size, size);
	cr_assert_str_eq(j.format, "application/octet-stream");
	sha256(doc, size, want);
	cr_assert_arr_eq(j.sha256, want, sizeof(want));
	file_in_job(path, sizeof(path), &j, "data");
	data = read_all(path, &len);
	cr_assert_eq(len, size);
	cr_assert(!memcmp(data, doc, size), "identity data is not a byte-identical copy");
	cr_assert_eq(dir_count("tmp"), 0);
	free(data);
	free(doc);
	free(p);
}

Test(queue, submit_options)
{
	struct queue_submit_opts o = {
		.name = "Faktura \xc4\x8d. 7",
		.format = "Application/PDF ; version=1.7",
		.copies = 3,
	};
	struct queue_job j;
	char *p = write_text("x.pdf", "%PDF-1.4\n");

	j = submit_ok(p, &o);
	cr_assert_str_eq(j.name, "Faktura \xc4\x8d. 7");
	cr_assert_str_eq(j.format, "application/pdf");
	cr_assert_eq(j.copies, 3);
	o.name = "";
	o.copies = META_COPIES_MAX;
	o.format = NULL;
	j = submit_ok(p, &o);
	cr_assert_str_eq(j.name, "");
	cr_assert_eq(j.copies, META_COPIES_MAX);
	cr_assert_str_eq(j.format, "application/pdf");
	cr_assert_eq(j.seq, 2);
	free(p);
}

struct bad_opts_case {
	const char *what;
	struct queue_submit_opts o;
	enum queue_err want;
};

Test(queue, submit_bad_arguments)
{
	char long_name[META_NAME_MAX + 2];
	const struct bad_opts_case cases[] = {
		{"copies", {.copies = META_COPIES_MAX + 1}, QUEUE_E_ARG},
		{"level high", {.compress = 1, .level = 20}, QUEUE_E_ARG},
		{"level negative", {.compress = 1, .level = -1}, QUEUE_E_ARG},
		{"name control", {.name = "a\nb"}, QUEUE_E_ARG},
		{"name not utf-8", {.name = "caf\xe9"}, QUEUE_E_ARG},
		{"name too long", {.name = long_name}, QUEUE_E_ARG},
		{"format unknown", {.format = "application/x-foo"}, QUEUE_E_FORMAT},
		{"format empty", {.format = ""}, QUEUE_E_FORMAT},
		{"format junk", {.format = "pdf"}, QUEUE_E_FORMAT},
	};
	char *p = write_text("doc.txt", "text\n");

	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char detail[256] = "";
		struct queue_job j;
		enum queue_err rc = queue_submit(qdir, p, &cases[i].o, &j, detail, sizeof(detail));

		cr_expect_eq(rc, cases[i].want, "%s: %s", cases[i].what, queue_strerror(rc));
		cr_expect_neq(detail[0], '\0', "%s: no detail", cases[i].what);
	}
	cr_assert_eq(queue_open(qdir), QUEUE_OK);
	cr_assert_eq(dir_count("jobs"), 0);
	cr_assert_eq(dir_count("tmp"), 0);
	free(p);
}

Test(queue, submit_bad_sources)
{
	char detail[512], *p, *dir = path_in("adir"), *fifo = path_in("fifo");
	struct queue_job j;
	enum queue_err rc;

	/* empty */
	p = write_text("empty.txt", "");
	rc = queue_submit(qdir, p, NULL, &j, detail, sizeof(detail));
	cr_assert_eq(rc, QUEUE_E_EMPTY, "%s", queue_strerror(rc));
	cr_assert(strstr(detail, p) && strstr(detail, "empty"), "%s", detail);
	free(p);
	/* missing */
	p = path_in("missing.pdf");
	rc = queue_submit(qdir, p, NULL, &j, detail, sizeof(detail));
	cr_assert_eq(rc, QUEUE_E_SOURCE);
	cr_assert(strstr(detail, p) && strstr(detail, strerror(ENOENT)), "%s", detail);
	free(p);
	/* a directory */
	cr_assert_eq(mkdir(dir, 0700), 0);
	rc = queue_submit(qdir, dir, NULL, &j, detail, sizeof(detail));
	cr_assert_eq(rc, QUEUE_E_SOURCE);
	cr_assert(strstr(detail, dir) && strstr(detail, "directory"), "%s", detail);
	/* a FIFO: refused, never waited on */
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	rc = queue_submit(qdir, fifo, NULL, &j, detail, sizeof(detail));
	cr_assert_eq(rc, QUEUE_E_SOURCE);
	cr_assert(strstr(detail, "not a regular file"), "%s", detail);
	/* unreadable (root reads anyway, so only checked for others) */
	p = write_text("secret", "text\n");
	cr_assert_eq(chmod(p, 0), 0);
	rc = queue_submit(qdir, p, NULL, &j, detail, sizeof(detail));
	if (geteuid() != 0) {
		cr_assert_eq(rc, QUEUE_E_SOURCE);
		cr_assert(strstr(detail, strerror(EACCES)), "%s", detail);
	} else {
		cr_assert_eq(rc, QUEUE_OK);
	}
	free(p);
	/* not detected: queued as application/octet-stream, for the printer to decide */
	p = write_bytes("junk.bin", "\x00\x01\x02\xff", 4);
	rc = queue_submit(qdir, p, NULL, &j, detail, sizeof(detail));
	cr_assert_eq(rc, QUEUE_OK);
	cr_assert_str_eq(j.format, "application/octet-stream");
	free(p);
	cr_assert_eq(dir_count("tmp"), 0);
	free(dir);
	free(fifo);
}

/* ---- listing, state, find ---- */

Test(queue, list_order_and_states)
{
	struct queue_job a = submit_text("a.txt", "first\n"), b = submit_text("b.txt", "second\n"),
			 c = submit_text("c.txt", "third\n");
	struct queue_state *st = NULL;
	struct queue_job *v = NULL;
	size_t n = 0;

	cr_assert_eq(a.seq, 1);
	cr_assert_eq(b.seq, 2);
	cr_assert_eq(c.seq, 3);
	cr_assert_eq(queue_list(qdir, &v, &st, &n), QUEUE_OK);
	cr_assert_eq(n, 3);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(v[i].seq, i + 1);
		cr_assert_eq(st[i].phase, QUEUE_PHASE_QUEUED);
		cr_assert_eq(st[i].offset, 0);
	}
	cr_assert_str_eq(v[0].job_id, a.job_id);
	cr_assert_str_eq(v[1].name, "b.txt");
	cr_assert_str_eq(v[2].dir, c.dir);
	cr_assert_arr_eq(v[2].sha256, c.sha256, DIGEST_SHA256_LEN);
	cr_assert_eq(v[2].submitted_at_ms, c.submitted_at_ms);
	free(v);
	free(st);
	/* states may be NULL */
	cr_assert_eq(queue_list(qdir, &v, NULL, &n), QUEUE_OK);
	cr_assert_eq(n, 3);
	free(v);
}

Test(queue, list_empty)
{
	struct queue_job *v = (void *)1;
	struct queue_state *st = (void *)1;
	size_t n = 99;

	cr_assert_eq(queue_list(qdir, &v, &st, &n), QUEUE_OK);
	cr_assert_eq(n, 0);
	free(v);
	free(st);
	cr_assert_eq(queue_cancelled(qdir, &v, NULL, &n), QUEUE_OK);
	cr_assert_eq(n, 0);
	free(v);
}

static struct queue_state full_state(void)
{
	struct queue_state s = {
		.phase = QUEUE_PHASE_AUTH,
		.base = "https://print-1.prague.example:8443",
		.location = "/v1/jobs/abcdefghijklmnopqrstuv",
		.offset = 3,
		.final_sent = 1,
		.attempts = 4000000000u,
		.next_ms = 1800000000123LL,
		.error = "401: token expired \xe2\x80\x94 run fs-client login",
		.updated_ms = 1790000000456LL,
	};

	memset(s.token_hash, 'a', 64);
	s.token_hash[7] = '9';
	return s;
}

Test(queue, state_round_trip)
{
	struct queue_job j = submit_text("s.txt", "state me\n"), f;
	struct queue_state s = full_state(), got, *sv;
	struct queue_job *v;
	size_t n;

	cr_assert_eq(queue_state_save(&j, &s), QUEUE_OK);
	memset(&got, 0x55, sizeof(got));
	cr_assert_eq(queue_find(qdir, j.job_id, &f, &got), QUEUE_OK);
	cr_assert_eq(got.phase, s.phase);
	cr_assert_str_eq(got.base, s.base);
	cr_assert_str_eq(got.location, s.location);
	cr_assert_eq(got.offset, s.offset);
	cr_assert_eq(got.final_sent, 1);
	cr_assert_eq(got.attempts, s.attempts);
	cr_assert_eq(got.next_ms, s.next_ms);
	cr_assert_str_eq(got.token_hash, s.token_hash);
	cr_assert_str_eq(got.error, s.error);
	cr_assert_eq(got.updated_ms, s.updated_ms);
	cr_assert_str_eq(f.dir, j.dir);

	/* every phase, and the defaults */
	for (int p = QUEUE_PHASE_QUEUED; p <= QUEUE_PHASE_DONE; p++) {
		struct queue_state z = {.phase = (enum queue_phase)p};

		cr_assert_eq(queue_state_save(&j, &z), QUEUE_OK);
		cr_assert_eq(queue_list(qdir, &v, &sv, &n), QUEUE_OK);
		cr_assert_eq(n, 1);
		cr_assert_eq((int)sv[0].phase, p);
		cr_assert_str_eq(sv[0].location, "");
		cr_assert_eq(sv[0].final_sent, 0);
		cr_assert_gt(sv[0].updated_ms, 0, "updated_ms 0 means now");
		free(v);
		free(sv);
	}
}

Test(queue, state_save_refuses_what_would_not_read_back)
{
	struct queue_job j = submit_text("s.txt", "0123456789\n");
	struct queue_state s = full_state();

	s.offset = j.stored_size + 1;
	cr_assert_eq(queue_state_save(&j, &s), QUEUE_E_ARG);
	s = full_state();
	s.token_hash[0] = 'A';
	cr_assert_eq(queue_state_save(&j, &s), QUEUE_E_ARG);
	s = full_state();
	memcpy(s.error, "bad \xff utf-8", 12);
	cr_assert_eq(queue_state_save(&j, &s), QUEUE_E_ARG);
	s = full_state();
	memset(s.location, 'x', sizeof(s.location)); /* no NUL inside the field */
	cr_assert_eq(queue_state_save(&j, &s), QUEUE_E_ARG);
	s = full_state();
	s.phase = (enum queue_phase)42;
	cr_assert_eq(queue_state_save(&j, &s), QUEUE_E_ARG);
	s = full_state();
	s.offset = j.stored_size;
	cr_assert_eq(queue_state_save(&j, &s), QUEUE_OK);
}

/* Puts a copy of job a under jobs/ as if it had been submitted with uuid and seq. */
static void clone_job(const struct queue_job *a, uint64_t seq, const char *uuid)
{
	char dir[4200], src[4200], dst[4300];
	unsigned char *data;
	json_t *o;
	size_t len;
	int fd;

	snprintf(dir, sizeof(dir), "%s/jobs/%010" PRIu64 "-%s", qdir, seq, uuid);
	cr_assert_eq(mkdir(dir, 0700), 0);
	file_in_job(src, sizeof(src), a, "data");
	data = read_all(src, &len);
	snprintf(dst, sizeof(dst), "%s/data", dir);
	fd = open(dst, O_WRONLY | O_CREAT | O_EXCL, 0600);
	cr_assert_neq(fd, -1);
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
	free(data);
	file_in_job(src, sizeof(src), a, "job.json");
	o = json_load_file(src, 0, NULL);
	cr_assert_not_null(o);
	cr_assert_eq(json_object_set_new(o, "job_id", json_string(uuid)), 0);
	snprintf(dst, sizeof(dst), "%s/job.json", dir);
	cr_assert_eq(json_dump_file(o, dst, JSON_COMPACT), 0);
	json_decref(o);
}

Test(queue, find_exact_prefix_and_ambiguous)
{
	struct queue_job a = submit_text("a.txt", "a\n"), b = submit_text("b.txt", "b\n");
	struct queue_job got, sentinel;
	struct queue_state st, st_sentinel;
	char upper[UUID_LEN + 1], twin[UUID_LEN + 1];

	cr_assert_eq(queue_find(qdir, a.job_id, &got, &st), QUEUE_OK);
	cr_assert_str_eq(got.job_id, a.job_id);
	cr_assert_eq(st.phase, QUEUE_PHASE_QUEUED);
	for (size_t i = 0; i <= UUID_LEN; i++)
		upper[i] = (char)(b.job_id[i] >= 'a' && b.job_id[i] <= 'f' ? b.job_id[i] - 32 :
				  b.job_id[i]);
	cr_assert_eq(queue_find(qdir, upper, &got, NULL), QUEUE_OK);
	cr_assert_str_eq(got.job_id, b.job_id);
	{
		char prefix[9];

		memcpy(prefix, b.job_id, 8);
		prefix[8] = '\0';
		/* a and b share 8 leading digits with probability 2^-32: not a flaky risk */
		if (strncmp(a.job_id, b.job_id, 8)) {
			cr_assert_eq(queue_find(qdir, prefix, &got, NULL), QUEUE_OK);
			cr_assert_str_eq(got.job_id, b.job_id);
		}
		prefix[7] = '\0';
		cr_assert_eq(queue_find(qdir, prefix, &got, NULL), QUEUE_E_NOT_FOUND);
	}
	cr_assert_eq(queue_find(qdir, "", &got, NULL), QUEUE_E_NOT_FOUND);
	cr_assert_eq(queue_find(qdir, "zzzzzzzzzz", &got, NULL), QUEUE_E_NOT_FOUND);
	cr_assert_eq(queue_find(qdir, NULL, &got, NULL), QUEUE_E_NOT_FOUND);

	/* A twin of a that differs in its last digit: a's 8-digit prefix is now ambiguous. */
	memcpy(twin, a.job_id, sizeof(twin));
	twin[UUID_LEN - 1] = twin[UUID_LEN - 1] == '1' ? '2' : '1';
	clone_job(&a, 7, twin);
	memset(&sentinel, 0x5a, sizeof(sentinel));
	memset(&st_sentinel, 0x5a, sizeof(st_sentinel));
	got = sentinel;
	st = st_sentinel;
	{
		char prefix[UUID_LEN];

		memcpy(prefix, a.job_id, UUID_LEN - 1);
		prefix[UUID_LEN - 1] = '\0';
		cr_assert_eq(queue_find(qdir, prefix, &got, &st), QUEUE_E_NOT_FOUND);
		prefix[8] = '\0';
		cr_assert_eq(queue_find(qdir, prefix, &got, &st), QUEUE_E_NOT_FOUND);
	}
	cr_assert(!memcmp(&got, &sentinel, sizeof(got)), "written on ambiguity");
	cr_assert(!memcmp(&st, &st_sentinel, sizeof(st)), "written on ambiguity");
	/* Full ids stay unique. */
	cr_assert_eq(queue_find(qdir, a.job_id, &got, NULL), QUEUE_OK);
	cr_assert_eq(got.seq, 1);
	cr_assert_eq(queue_find(qdir, twin, &got, NULL), QUEUE_OK);
	cr_assert_eq(got.seq, 7);
	/* The cancel of an ambiguous prefix moves nothing. */
	{
		char prefix[9];

		memcpy(prefix, a.job_id, 8);
		prefix[8] = '\0';
		cr_assert_eq(queue_cancel(qdir, prefix, NULL, NULL), QUEUE_E_NOT_FOUND);
		cr_assert_eq(dir_count("cancelled"), 0);
		cr_assert_eq(dir_count("jobs"), 3);
	}
}

/* ---- remove and cancel ---- */

Test(queue, remove_job)
{
	struct queue_job a = submit_text("a.txt", "a\n"), b = submit_text("b.txt", "b\n"), got;
	struct queue_job *v;
	size_t n;

	cr_assert_eq(queue_remove(qdir, &a), QUEUE_OK);
	cr_assert_not(exists(a.dir));
	cr_assert_eq(dir_count("tmp"), 0);
	cr_assert_eq(queue_find(qdir, a.job_id, &got, NULL), QUEUE_E_NOT_FOUND);
	cr_assert_eq(queue_list(qdir, &v, NULL, &n), QUEUE_OK);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(v[0].job_id, b.job_id);
	free(v);
	cr_assert_eq(queue_remove(qdir, &a), QUEUE_E_NOT_FOUND);
	/* Sequence numbers are never reused. */
	got = submit_text("c.txt", "c\n");
	cr_assert_eq(got.seq, 3);
	/* A job whose directory is gone cannot get a state. */
	cr_assert_eq(queue_state_save(&a, &(struct queue_state){0}), QUEUE_E_NOT_FOUND);
	cr_assert_eq(queue_data_open(&a), -1);
	cr_assert_eq(errno, ENOENT);
}

Test(queue, cancel_flow)
{
	struct queue_job a = submit_text("a.txt", "a\n"), b = submit_text("b.txt", "b\n"), got;
	struct queue_state s = full_state(), gs, *sv;
	struct queue_job *v;
	char prefix[13];
	size_t n;

	s.phase = QUEUE_PHASE_UPLOADING;
	s.offset = 1;
	cr_assert_eq(queue_state_save(&a, &s), QUEUE_OK);
	memcpy(prefix, a.job_id, 12);
	prefix[12] = '\0';
	cr_assert_eq(queue_cancel(qdir, prefix, &got, &gs), QUEUE_OK);
	cr_assert_str_eq(got.job_id, a.job_id);
	cr_assert(strstr(got.dir, "/cancelled/"), "%s", got.dir);
	cr_assert_str_eq(gs.location, s.location);
	cr_assert_eq(gs.phase, QUEUE_PHASE_UPLOADING);
	cr_assert_not(exists(a.dir));
	cr_assert(exists(got.dir));

	/* Gone from the queue, listed as cancelled with its state. */
	cr_assert_eq(queue_list(qdir, &v, NULL, &n), QUEUE_OK);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(v[0].job_id, b.job_id);
	free(v);
	cr_assert_eq(queue_find(qdir, a.job_id, NULL, NULL), QUEUE_E_NOT_FOUND);
	cr_assert_eq(queue_cancel(qdir, a.job_id, NULL, NULL), QUEUE_E_NOT_FOUND);
	cr_assert_eq(queue_cancelled(qdir, &v, &sv, &n), QUEUE_OK);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(v[0].job_id, a.job_id);
	cr_assert_str_eq(v[0].dir, got.dir);
	cr_assert_str_eq(sv[0].base, s.base);
	cr_assert_eq(sv[0].offset, 1);

	/* The deliverer's stale copy (path in jobs/) cannot write state any more. */
	cr_assert_eq(queue_state_save(&a, &s), QUEUE_E_NOT_FOUND);
	/* With the cancelled copy it can, and queue_remove does not touch cancelled/. */
	cr_assert_eq(queue_state_save(&v[0], &s), QUEUE_OK);
	cr_assert_eq(queue_remove(qdir, &v[0]), QUEUE_E_NOT_FOUND);
	cr_assert_eq(queue_cancel_done(qdir, &v[0]), QUEUE_OK);
	cr_assert_not(exists(got.dir));
	cr_assert_eq(queue_cancel_done(qdir, &v[0]), QUEUE_E_NOT_FOUND);
	free(v);
	free(sv);
	cr_assert_eq(queue_cancelled(qdir, &v, NULL, &n), QUEUE_OK);
	cr_assert_eq(n, 0);
	free(v);
	cr_assert_eq(dir_count("tmp"), 0);
	cr_assert_eq(dir_count("jobs"), 1);
}

/* ---- recovery ---- */

static void mkdir_in(const char *rel)
{
	char path[700];

	snprintf(path, sizeof(path), "%s/%s", qdir, rel);
	cr_assert_eq(mkdir(path, 0700), 0, "%s: %s", path, strerror(errno));
}

static void file_at(const char *rel, const char *text)
{
	char path[700];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", qdir, rel);
	f = fopen(path, "w");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fputs(text, f);
	fclose(f);
}

Test(queue, open_creates_layout_and_removes_leftovers)
{
	char path[700];
	int tfd;

	cr_assert_eq(queue_open(qdir), QUEUE_OK);
	cr_assert_eq(dir_count(""), 3); /* tmp, jobs, cancelled */
	{
		struct stat st;

		cr_assert_eq(stat(qdir, &st), 0);
		cr_assert_eq(st.st_mode & 0777, 0700);
	}
	/* An interrupted submission, an interrupted removal, a stray file. */
	mkdir_in("tmp/sub-0b7b6c1e-2f0d-4d6b-9a51-1a2b3c4d5e6f");
	file_at("tmp/sub-0b7b6c1e-2f0d-4d6b-9a51-1a2b3c4d5e6f/data", "half");
	file_at("tmp/sub-0b7b6c1e-2f0d-4d6b-9a51-1a2b3c4d5e6f/job.json.tmp", "{");
	mkdir_in("tmp/rm-0000000003-0b7b6c1e-2f0d-4d6b-9a51-1a2b3c4d5e60");
	file_at("tmp/rm-0000000003-0b7b6c1e-2f0d-4d6b-9a51-1a2b3c4d5e60/state.json", "{}");
	file_at("tmp/stray", "x");
	cr_assert_eq(dir_count("tmp"), 3);

	/* While a writer holds tmp/ shared, nothing is removed... */
	snprintf(path, sizeof(path), "%s/tmp", qdir);
	tfd = open(path, O_RDONLY | O_DIRECTORY);
	cr_assert_neq(tfd, -1);
	cr_assert_eq(flock(tfd, LOCK_SH), 0);
	cr_assert_eq(queue_open(qdir), QUEUE_OK);
	cr_assert_eq(dir_count("tmp"), 3);
	/* ...and a submission still works meanwhile. */
	submit_text("a.txt", "a\n");
	cr_assert_eq(dir_count("tmp"), 3);
	cr_assert_eq(flock(tfd, LOCK_UN), 0);
	close(tfd);
	/* Once nobody writes, the next call cleans up. */
	cr_assert_eq(queue_open(qdir), QUEUE_OK);
	cr_assert_eq(dir_count("tmp"), 0);
	cr_assert_eq(dir_count("jobs"), 1);
}

Test(queue, open_refuses_empty_dir)
{
	cr_assert_eq(queue_open(""), QUEUE_E_ARG);
	cr_assert_eq(queue_open(NULL), QUEUE_E_ARG);
}

/* Ways to damage job a's directory; each must make it skipped and DAMAGED. */
static void damage_json_syntax(const struct queue_job *a)
{
	char p[4200];

	file_in_job(p, sizeof(p), a, "job.json");
	cr_assert_eq(truncate(p, 10), 0);
}

static void damage_json_missing(const struct queue_job *a)
{
	char p[4200];

	file_in_job(p, sizeof(p), a, "job.json");
	cr_assert_eq(unlink(p), 0);
}

static void damage_data_size(const struct queue_job *a)
{
	char p[4200];

	file_in_job(p, sizeof(p), a, "data");
	cr_assert_eq(truncate(p, 1), 0);
}

static void damage_data_missing(const struct queue_job *a)
{
	char p[4200];

	file_in_job(p, sizeof(p), a, "data");
	cr_assert_eq(unlink(p), 0);
}

static void json_edit(const struct queue_job *a, const char *key, json_t *v)
{
	char p[4200];
	json_t *o;

	file_in_job(p, sizeof(p), a, "job.json");
	o = json_load_file(p, 0, NULL);
	cr_assert_not_null(o);
	if (v)
		cr_assert_eq(json_object_set_new(o, key, v), 0);
	else
		cr_assert_eq(json_object_del(o, key), 0);
	cr_assert_eq(json_dump_file(o, p, 0), 0);
	json_decref(o);
}

static void damage_unknown_key(const struct queue_job *a)
{
	json_edit(a, "extra", json_true());
}

static void damage_missing_key(const struct queue_job *a)
{
	json_edit(a, "copies", NULL);
}

static void damage_other_id(const struct queue_job *a)
{
	json_edit(a, "job_id", json_string("0b7b6c1e-2f0d-4d6b-9a51-1a2b3c4d5e6f"));
}

static void damage_copies(const struct queue_job *a)
{
	json_edit(a, "copies", json_integer(0));
}

static void damage_sha(const struct queue_job *a)
{
	json_edit(a, "sha256", json_string("ABCDEF"));
}

static void damage_format(const struct queue_job *a)
{
	json_edit(a, "format", json_string("application/x-evil"));
}

static void damage_encoding(const struct queue_job *a)
{
	json_edit(a, "encoding", json_string("gzip"));
}

static void damage_name(const struct queue_job *a)
{
	json_edit(a, "name", json_string("line\nbreak"));
}

static void damage_type(const struct queue_job *a)
{
	json_edit(a, "size", json_string("12"));
}

static void damage_not_dir(const struct queue_job *a)
{
	char p[4200];

	cr_assert_eq(proc_rmtree(a->dir), 0);
	snprintf(p, sizeof(p), "%s", a->dir);
	cr_assert_eq(close(open(p, O_WRONLY | O_CREAT, 0600)), 0);
}

Test(queue, damaged_jobs_are_skipped)
{
	void (*const damages[])(const struct queue_job *) = {
		damage_json_syntax, damage_json_missing, damage_data_size, damage_data_missing,
		damage_unknown_key, damage_missing_key,  damage_other_id,  damage_copies,
		damage_sha,         damage_format,       damage_encoding,  damage_name,
		damage_type,        damage_not_dir,
	};

	for (size_t i = 0; i < sizeof(damages) / sizeof(damages[0]); i++) {
		struct queue_job a = submit_text("a.txt", "aaaa\n"), b = submit_text("b", "b\n");
		struct queue_job *v, got;
		size_t n;

		damages[i](&a);
		cr_assert_eq(queue_list(qdir, &v, NULL, &n), QUEUE_OK, "damage %zu", i);
		cr_assert_eq(n, 1, "damage %zu: %zu listed", i, n);
		cr_assert_str_eq(v[0].job_id, b.job_id);
		free(v);
		cr_assert_eq(queue_find(qdir, a.job_id, &got, NULL), QUEUE_E_DAMAGED, "damage %zu",
			     i);
		cr_assert_eq(queue_remove(qdir, &b), QUEUE_OK);
		/* queue_remove clears out a damaged directory too */
		cr_assert_eq(queue_remove(qdir, &a), QUEUE_OK, "damage %zu", i);
		cr_assert_eq(dir_count("jobs"), 0);
	}
}

Test(queue, junk_in_jobs_is_skipped)
{
	struct queue_job a = submit_text("a.txt", "a\n");
	struct queue_job *v;
	size_t n;

	mkdir_in("jobs/notajob");
	mkdir_in("jobs/0000000002-NOT-A-UUID");
	mkdir_in("jobs/00000000002-0b7b6c1e-2f0d-4d6b-9a51-1a2b3c4d5e6f"); /* not canonical */
	mkdir_in("jobs/0000000000-0b7b6c1e-2f0d-4d6b-9a51-1a2b3c4d5e6f");  /* seq 0 */
	file_at("jobs/0000000009-0B7B6C1E-2f0d-4d6b-9a51-1a2b3c4d5e6f", "upper");
	cr_assert_eq(queue_list(qdir, &v, NULL, &n), QUEUE_OK);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(v[0].job_id, a.job_id);
	free(v);
}

Test(queue, damaged_state_reads_as_queued)
{
	struct queue_job a = submit_text("a.txt", "abcdef\n"), got;
	struct queue_state s = full_state(), gs;
	char p[4200];

	cr_assert_eq(queue_state_save(&a, &s), QUEUE_OK);
	file_in_job(p, sizeof(p), &a, "state.json");
	cr_assert_eq(truncate(p, 5), 0);
	memset(&gs, 0x5a, sizeof(gs));
	cr_assert_eq(queue_find(qdir, a.job_id, &got, &gs), QUEUE_OK);
	cr_assert_eq(gs.phase, QUEUE_PHASE_QUEUED);
	cr_assert_str_eq(gs.location, "");
	cr_assert_eq(gs.offset, 0);
	/* a state whose offset lies beyond the data is damaged too */
	s.offset = 2;
	cr_assert_eq(queue_state_save(&a, &s), QUEUE_OK);
	{
		json_t *o = json_load_file(p, 0, NULL);

		cr_assert_not_null(o);
		cr_assert_eq(json_object_set_new(o, "offset", json_integer(99)), 0);
		cr_assert_eq(json_dump_file(o, p, 0), 0);
		json_decref(o);
	}
	cr_assert_eq(queue_find(qdir, a.job_id, &got, &gs), QUEUE_OK);
	cr_assert_eq(gs.phase, QUEUE_PHASE_QUEUED);
	cr_assert_eq(gs.offset, 0);
}

Test(queue, seq_file_missing_or_damaged)
{
	struct queue_job a;
	char p[700];

	submit_text("a.txt", "a\n");
	a = submit_text("b.txt", "b\n");
	cr_assert_eq(a.seq, 2);
	snprintf(p, sizeof(p), "%s/seq", qdir);
	{
		char *text = proc_read_file(p);

		cr_assert_str_eq(text, "3\n");
		free(text);
	}
	/* damaged: continue after the highest job */
	file_at("seq", "x7\n");
	a = submit_text("c.txt", "c\n");
	cr_assert_eq(a.seq, 3);
	/* missing: likewise, cancelled jobs included */
	cr_assert_eq(queue_cancel(qdir, a.job_id, NULL, NULL), QUEUE_OK);
	cr_assert_eq(unlink(p), 0);
	a = submit_text("d.txt", "d\n");
	cr_assert_eq(a.seq, 4);
	/* a seq file ahead of the jobs is followed */
	file_at("seq", "1000\n");
	a = submit_text("e.txt", "e\n");
	cr_assert_eq(a.seq, 1000);
	cr_assert(strstr(a.dir, "/0000001000-"), "%s", a.dir);
}

/* ---- concurrency ---- */

#define SUBMITTERS 2
#define PER_SUBMITTER 20

/* Child: submits PER_SUBMITTER times and writes each seq to fd. Never returns. */
static void submitter(const char *path, int fd)
{
	for (int i = 0; i < PER_SUBMITTER; i++) {
		struct queue_submit_opts o = {.compress = i % 2};
		struct queue_job j;

		if (queue_submit(qdir, path, &o, &j, NULL, 0) != QUEUE_OK)
			_exit(2);
		if (write(fd, &j.seq, sizeof(j.seq)) != (ssize_t)sizeof(j.seq))
			_exit(3);
	}
	_exit(0);
}

Test(queue, concurrent_submitters)
{
	uint64_t seqs[SUBMITTERS][PER_SUBMITTER];
	int seen[SUBMITTERS * PER_SUBMITTER + 1] = {0};
	char *path = write_text("shared.txt", "shared document, compressible compressible\n");
	pid_t pids[SUBMITTERS];
	struct queue_job *v;
	size_t n;

	cr_assert_eq(queue_open(qdir), QUEUE_OK);
	for (int c = 0; c < SUBMITTERS; c++) {
		int fds[2];

		cr_assert_eq(pipe(fds), 0);
		pids[c] = fork();
		cr_assert_neq(pids[c], -1);
		if (pids[c] == 0) {
			close(fds[0]);
			submitter(path, fds[1]);
		}
		close(fds[1]);
		/* The pipe holds 320 bytes: the child never blocks, so read after starting both. */
		seqs[c][0] = (uint64_t)fds[0];
	}
	for (int c = 0; c < SUBMITTERS; c++) {
		int fd = (int)seqs[c][0], st = 0;
		size_t got = 0;

		while (got < sizeof(seqs[c])) {
			ssize_t r = read(fd, (char *)seqs[c] + got, sizeof(seqs[c]) - got);

			cr_assert_gt(r, 0, "submitter %d stopped after %zu bytes", c, got);
			got += (size_t)r;
		}
		close(fd);
		cr_assert_eq(waitpid(pids[c], &st, 0), pids[c]);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "submitter %d status %d", c, st);
	}
	for (int c = 0; c < SUBMITTERS; c++) {
		for (int i = 0; i < PER_SUBMITTER; i++) {
			uint64_t s = seqs[c][i];

			cr_assert(s >= 1 && s <= SUBMITTERS * PER_SUBMITTER, "seq %" PRIu64, s);
			cr_assert_eq(seen[s], 0, "seq %" PRIu64 " twice", s);
			seen[s] = 1;
			if (i)
				cr_assert_gt(s, seqs[c][i - 1]);
		}
	}
	cr_assert_eq(queue_list(qdir, &v, NULL, &n), QUEUE_OK);
	cr_assert_eq(n, SUBMITTERS * PER_SUBMITTER);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(v[i].seq, i + 1);
	free(v);
	cr_assert_eq(dir_count("tmp"), 0);
	free(path);
}

/* ---- network.json and deliver.lock ---- */

Test(queue, network_save_load)
{
	struct queue_network n = {
		.online = 0,
		.location = "prague",
		.address = "https://print-2.prague.example:8443",
		.message = "waiting for network: connection refused",
		.checked_ms = 1790000000001LL,
		.next_ms = 1790000030001LL,
		.pid = 4242,
	}, got;

	cr_assert_eq(queue_network_load(qdir, &got), QUEUE_E_NOT_FOUND);
	cr_assert_eq(queue_network_save(qdir, &n), QUEUE_OK);
	memset(&got, 0x5a, sizeof(got));
	cr_assert_eq(queue_network_load(qdir, &got), QUEUE_OK);
	cr_assert_eq(got.online, 0);
	cr_assert_str_eq(got.location, n.location);
	cr_assert_str_eq(got.address, n.address);
	cr_assert_str_eq(got.message, n.message);
	cr_assert_eq(got.checked_ms, n.checked_ms);
	cr_assert_eq(got.next_ms, n.next_ms);
	cr_assert_eq(got.pid, 4242);

	n.online = 1;
	n.message[0] = '\0';
	n.next_ms = 0;
	cr_assert_eq(queue_network_save(qdir, &n), QUEUE_OK);
	cr_assert_eq(queue_network_load(qdir, &got), QUEUE_OK);
	cr_assert_eq(got.online, 1);
	cr_assert_str_eq(got.message, "");
	cr_assert_eq(got.next_ms, 0);

	memset(n.address, 'x', sizeof(n.address));
	cr_assert_eq(queue_network_save(qdir, &n), QUEUE_E_ARG);
	file_at("network.json", "{\"online\": true}\n");
	cr_assert_eq(queue_network_load(qdir, &got), QUEUE_E_DAMAGED);
	file_at("network.json", "not json");
	cr_assert_eq(queue_network_load(qdir, &got), QUEUE_E_DAMAGED);
}

Test(queue, lock_deliver_excludes)
{
	int fd = queue_lock_deliver(qdir), fd2, st = 0;
	pid_t pid;

	cr_assert_geq(fd, 0, "%s", strerror(errno));
	/* A second open file description, even in this process, is refused at once. */
	errno = 0;
	fd2 = queue_lock_deliver(qdir);
	cr_assert_eq(fd2, -1);
	cr_assert_eq(errno, EWOULDBLOCK);
	/* So is another process. */
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		int c = queue_lock_deliver(qdir);

		_exit(c == -1 && errno == EWOULDBLOCK ? 0 : 1);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child got the lock");
	/* Released on close. */
	close(fd);
	fd2 = queue_lock_deliver(qdir);
	cr_assert_geq(fd2, 0);
	cr_assert(fcntl(fd2, F_GETFD) & FD_CLOEXEC);
	close(fd2);
}
