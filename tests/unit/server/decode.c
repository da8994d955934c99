/* Tests server/decode.c: a stored zstd job read back as its document, and every way it fails. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <zstd.h>

#include "server/decode.h"

/* A memory file holding buf: what the spool's data file would be. */
static int file_of(const void *buf, size_t len)
{
	int fd = memfd_create("decode-test", MFD_CLOEXEC);

	cr_assert_neq(fd, -1);
	cr_assert_eq(write(fd, buf, len), (ssize_t)len);
	return fd;
}

static void text(unsigned char *buf, size_t len, unsigned seed)
{
	static const char words[] = "the quick brown fox jumps over the lazy dog; ";
	uint32_t x = seed * 2654435761u + 3;

	for (size_t i = 0; i < len; i++) {
		if (i % 50 == 0)
			x = x * 1103515245u + 12345u;
		buf[i] = (unsigned char)words[(i + (x >> 16)) % (sizeof(words) - 1)];
	}
}

/* Appends one frame of src to out at *pos; param/value set one compression parameter. */
static void frame_append(unsigned char *out, size_t cap, size_t *pos, const void *src,
			 size_t len, ZSTD_cParameter param, int value)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	size_t n;

	cr_assert_not_null(c);
	cr_assert(!ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)));
	cr_assert(!ZSTD_isError(ZSTD_CCtx_setParameter(c, param, value)));
	n = ZSTD_compress2(c, out + *pos, cap - *pos, src, len);
	cr_assert(!ZSTD_isError(n), "%s", ZSTD_getErrorName(n));
	*pos += n;
	ZSTD_freeCCtx(c);
}

/* Decodes all of stored as a document of size bytes, reading at most cap bytes a call. */
static enum decode_err decode_all(const void *stored, size_t len, uint64_t size, size_t cap,
				  unsigned char *out, size_t out_cap, size_t *got)
{
	struct decode *d = decode_new(file_of(stored, len), len, size);
	enum decode_err e;
	size_t n = 0;

	cr_assert_not_null(d);
	*got = 0;
	do {
		size_t want = out_cap - *got < cap ? out_cap - *got : cap;

		cr_assert_gt(want, 0, "decode_read handed out more than the size");
		e = decode_read(d, out + *got, want, &n);
		if (!e) {
			*got += n;
			cr_assert_eq(decode_offset(d), *got);
		}
	} while (!e && n);
	decode_free(d);
	return e;
}

Test(decode, frames_decode_to_the_document_in_any_read_size)
{
	enum { DOC = 200000 };
	static unsigned char doc[DOC], stored[DOC], out[DOC + 1];
	static const unsigned char skippable[] = {0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3};
	static const size_t caps[] = {1, 7, 4096, 65536, DOC + 1};
	size_t len = 0, got;

	text(doc, DOC, 1);
	/* three frames, a skippable frame between two of them, one of them empty */
	frame_append(stored, sizeof(stored), &len, doc, 1000, ZSTD_c_compressionLevel, 1);
	memcpy(stored + len, skippable, sizeof(skippable));
	len += sizeof(skippable);
	frame_append(stored, sizeof(stored), &len, doc + 1000, 0, ZSTD_c_compressionLevel, 3);
	frame_append(stored, sizeof(stored), &len, doc + 1000, DOC - 1000,
		     ZSTD_c_compressionLevel, 19);
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		memset(out, 0, sizeof(out));
		cr_assert_eq(decode_all(stored, len, DOC, caps[i], out, sizeof(out), &got),
			     DECODE_OK, "cap %zu", caps[i]);
		cr_assert_eq(got, DOC, "cap %zu", caps[i]);
		cr_assert_eq(memcmp(out, doc, DOC), 0, "cap %zu", caps[i]);
	}
}

Test(decode, size_must_be_exact)
{
	static unsigned char doc[5000], stored[6000], out[6000];
	size_t len = 0, got;

	text(doc, sizeof(doc), 2);
	frame_append(stored, sizeof(stored), &len, doc, sizeof(doc), ZSTD_c_compressionLevel, 3);
	cr_assert_eq(decode_all(stored, len, 4999, 100, out, sizeof(out), &got), DECODE_E_TOO_LONG);
	cr_assert_leq(got, 4999);
	cr_assert_eq(decode_all(stored, len, 5001, 100, out, sizeof(out), &got),
		     DECODE_E_TOO_SHORT);
	cr_assert_eq(got, 5000);
	cr_assert_eq(decode_all(stored, len, 0, 100, out, sizeof(out), &got), DECODE_E_TOO_LONG);
	cr_assert_eq(got, 0);
}

/* 1 GiB of zeros in a few KiB: with a size of 1000, decoding stops right after 1000 bytes. */
Test(decode, a_bomb_stops_one_byte_past_the_size)
{
	static const unsigned char zero[1 << 20];
	size_t cap = 1 << 20, r;
	unsigned char *stored = malloc(cap), *out = malloc(1 << 20);
	ZSTD_CCtx *c = ZSTD_createCCtx();
	ZSTD_outBuffer ob = {stored, cap, 0};
	struct decode *d;
	enum decode_err e = DECODE_OK;
	size_t n = 0, calls = 0;

	cr_assert(stored && out && c);
	for (int i = 0; i < 1024; i++) {
		ZSTD_inBuffer ib = {zero, sizeof(zero), 0};
		ZSTD_EndDirective end = i == 1023 ? ZSTD_e_end : ZSTD_e_continue;

		do {
			r = ZSTD_compressStream2(c, &ob, &ib, end);
			cr_assert(!ZSTD_isError(r));
		} while (ib.pos < ib.size || (end == ZSTD_e_end && r != 0));
	}
	ZSTD_freeCCtx(c);
	cr_assert_lt(ob.pos, 100000, "%zu", ob.pos);

	d = decode_new(file_of(stored, ob.pos), ob.pos, 1000);
	cr_assert_not_null(d);
	while (!e && calls++ < 100) {
		e = decode_read(d, out, 1 << 20, &n);
		cr_assert(e || n > 0, "no end before the size is passed");
	}
	cr_assert_eq(e, DECODE_E_TOO_LONG);
	cr_assert_leq(decode_offset(d), 1000, "handed out %llu bytes",
		      (unsigned long long)decode_offset(d));
	/* the error sticks */
	cr_assert_eq(decode_read(d, out, 1 << 20, &n), DECODE_E_TOO_LONG);
	decode_free(d);
	free(stored);
	free(out);
}

Test(decode, broken_streams_each_have_their_error)
{
	static unsigned char doc[30000], stored[40000], bad[40000], out[40000];
	size_t len = 0, got;

	text(doc, sizeof(doc), 3);
	frame_append(stored, sizeof(stored), &len, doc, sizeof(doc), ZSTD_c_compressionLevel, 3);
	memcpy(bad, stored, len);

	/* nothing at all */
	cr_assert_eq(decode_all(stored, 0, 0, 100, out, sizeof(out), &got), DECODE_E_NO_FRAME);
	/* not zstd */
	cr_assert_eq(decode_all("%PDF-1.7\n", 9, 9, 100, out, sizeof(out), &got),
		     DECODE_E_NOT_ZSTD);
	/* cut inside the frame, or inside its header */
	cr_assert_eq(decode_all(stored, len - 1, sizeof(doc), 100, out, sizeof(out), &got),
		     DECODE_E_TRUNCATED);
	cr_assert_eq(decode_all(stored, len / 2, sizeof(doc), 100, out, sizeof(out), &got),
		     DECODE_E_TRUNCATED);
	cr_assert_eq(decode_all(stored, 3, sizeof(doc), 100, out, sizeof(out), &got),
		     DECODE_E_TRUNCATED);
	/* a wrong content checksum (the frame's last 4 bytes) */
	bad[len - 1] ^= 1;
	cr_assert_eq(decode_all(bad, len, sizeof(doc), 100, out, sizeof(out), &got),
		     DECODE_E_CHECKSUM);
	/* bytes after the frame: garbage, a few bytes, or a frame cut in its header */
	memcpy(bad, stored, len);
	memcpy(bad + len, "%%EOF garbage here", 18);
	cr_assert_eq(decode_all(bad, len + 18, sizeof(doc), 100, out, sizeof(out), &got),
		     DECODE_E_TRAILING);
	cr_assert_eq(decode_all(bad, len + 2, sizeof(doc), 100, out, sizeof(out), &got),
		     DECODE_E_TRAILING);
	memcpy(bad + len, stored, 6);
	cr_assert_eq(decode_all(bad, len + 6, sizeof(doc), 100, out, sizeof(out), &got),
		     DECODE_E_TRAILING);
	/* a corrupt frame header (reserved bit set in the frame header descriptor) */
	memcpy(bad, stored, len);
	bad[4] |= 0x08;
	cr_assert_eq(decode_all(bad, len, sizeof(doc), 100, out, sizeof(out), &got),
		     DECODE_E_CORRUPT);
	/* the data file shorter than the length the spool knows */
	cr_assert_eq(decode_all(stored, len, sizeof(doc), 100, out, sizeof(out), &got),
		     DECODE_OK);
	{
		struct decode *d = decode_new(file_of(stored, len), len + 10, sizeof(doc));
		enum decode_err e;
		size_t n = 0;

		cr_assert_not_null(d);
		do
			e = decode_read(d, out, sizeof(out), &n);
		while (!e && n);
		cr_assert_eq(e, DECODE_E_IO);
		decode_free(d);
	}
}

/* A frame that declares a window above 2^27 is refused before any memory is taken for it. */
Test(decode, window_above_the_limit_is_refused)
{
	static unsigned char doc[10000], stored[20000], out[20000];
	ZSTD_CCtx *c = ZSTD_createCCtx();
	ZSTD_outBuffer ob = {stored, sizeof(stored), 0};
	ZSTD_inBuffer ib = {doc, sizeof(doc), 0};
	size_t r, got;

	text(doc, sizeof(doc), 4);
	cr_assert_not_null(c);
	cr_assert(!ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, 28)));
	/* streamed without a known size, the frame keeps the 256 MiB window in its header */
	r = ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_continue);
	cr_assert(!ZSTD_isError(r));
	do {
		r = ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_end);
		cr_assert(!ZSTD_isError(r));
	} while (r);
	ZSTD_freeCCtx(c);
	cr_assert_eq(decode_all(stored, ob.pos, sizeof(doc), 100, out, sizeof(out), &got),
		     DECODE_E_WINDOW);
	/* 2^27 itself is accepted */
	c = ZSTD_createCCtx();
	cr_assert_not_null(c);
	cr_assert(!ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, 27)));
	ob.pos = 0;
	ib.pos = 0;
	r = ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_continue);
	cr_assert(!ZSTD_isError(r));
	do {
		r = ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_end);
		cr_assert(!ZSTD_isError(r));
	} while (r);
	ZSTD_freeCCtx(c);
	cr_assert_eq(decode_all(stored, ob.pos, sizeof(doc), 4096, out, sizeof(out), &got),
		     DECODE_OK);
	cr_assert_eq(memcmp(out, doc, sizeof(doc)), 0);
}

Test(decode, free_closes_the_fd_and_accepts_null)
{
	int fd = file_of("x", 1);
	struct decode *d = decode_new(fd, 1, 1);

	cr_assert_not_null(d);
	decode_free(d);
	cr_assert_eq(fcntl(fd, F_GETFD), -1, "decode_free closes the fd it took");
	decode_free(NULL);
	for (int e = DECODE_OK; e <= DECODE_E_TOO_SHORT; e++)
		cr_assert_str_neq(decode_strerror((enum decode_err)e), "unknown decode error");
}
