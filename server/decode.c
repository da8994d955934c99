/* decode: streams a stored zstd job back into its document with ZSTD_decompressStream. */
#include "server/decode.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <zstd.h>
#include <zstd_errors.h>

struct decode {
	int fd;
	uint64_t stored;      /* bytes of fd that hold the job */
	uint64_t read_pos;    /* next byte of fd to read */
	uint64_t size;        /* what the document must decode to */
	uint64_t produced;    /* decoded bytes handed out */
	ZSTD_DCtx *dctx;
	void *in_buf;
	size_t in_cap;
	ZSTD_inBuffer in;
	size_t last;          /* last ZSTD_decompressStream result: 0 at a frame boundary */
	uint64_t frames;      /* whole frames decoded */
	uint64_t frame_out;   /* bytes the current frame has produced */
	int started;          /* a byte was given to the decoder */
	int done;
	enum decode_err err;
};

const char *decode_strerror(enum decode_err e)
{
	switch (e) {
	case DECODE_OK: return "ok";
	case DECODE_E_NOMEM: return "out of memory while decoding";
	case DECODE_E_IO: return "the stored job could not be read";
	case DECODE_E_NO_FRAME: return "the job is empty: a zstd job holds at least one frame";
	case DECODE_E_NOT_ZSTD: return "the job does not start with a zstd frame";
	case DECODE_E_CORRUPT: return "a zstd frame of the job is corrupt";
	case DECODE_E_CHECKSUM: return "a zstd frame's content checksum does not match";
	case DECODE_E_WINDOW: return "a zstd frame needs a window above 128 MiB (windowLog 27)";
	case DECODE_E_TRUNCATED: return "the job ends inside a zstd frame";
	case DECODE_E_TRAILING: return "bytes after the last zstd frame are not a zstd frame";
	case DECODE_E_TOO_LONG: return "the document decodes to more bytes than its size";
	case DECODE_E_TOO_SHORT: return "the document decodes to fewer bytes than its size";
	}
	return "unknown decode error";
}

struct decode *decode_new(int fd, uint64_t stored, uint64_t size)
{
	struct decode *d = calloc(1, sizeof(*d));

	if (!d) {
		close(fd);
		return NULL;
	}
	d->fd = fd;
	d->stored = stored;
	d->size = size;
	d->in_cap = ZSTD_DStreamInSize();
	d->in_buf = malloc(d->in_cap);
	d->dctx = ZSTD_createDCtx();
	if (!d->in_buf || !d->dctx ||
	    ZSTD_isError(ZSTD_DCtx_setParameter(d->dctx, ZSTD_d_windowLogMax,
						DECODE_WINDOW_LOG_MAX))) {
		decode_free(d);
		return NULL;
	}
	d->in.src = d->in_buf;
	return d;
}

void decode_free(struct decode *d)
{
	if (!d)
		return;
	if (d->fd >= 0)
		close(d->fd);
	ZSTD_freeDCtx(d->dctx);
	free(d->in_buf);
	free(d);
}

uint64_t decode_offset(const struct decode *d)
{
	return d->produced;
}

static enum decode_err fail(struct decode *d, enum decode_err e)
{
	d->err = e;
	return e;
}

/*
 * What a zstd error means here. A fault where a new frame should begin, after at least one
 * whole frame and before it produced a byte, is trailing garbage rather than a bad frame.
 */
static enum decode_err zstd_fault(const struct decode *d, size_t r)
{
	int at_start = d->frame_out == 0;

	switch (ZSTD_getErrorCode(r)) {
	case ZSTD_error_memory_allocation: return DECODE_E_NOMEM;
	case ZSTD_error_frameParameter_windowTooLarge: return DECODE_E_WINDOW;
	case ZSTD_error_checksum_wrong: return DECODE_E_CHECKSUM;
	case ZSTD_error_prefix_unknown:
		if (at_start)
			return d->frames ? DECODE_E_TRAILING : DECODE_E_NOT_ZSTD;
		return DECODE_E_CORRUPT;
	default: return DECODE_E_CORRUPT;
	}
}

/* Reads the next stored bytes into the input buffer (which the decoder has used up). */
static enum decode_err refill(struct decode *d)
{
	uint64_t left = d->stored - d->read_pos;
	size_t want = left < d->in_cap ? (size_t)left : d->in_cap;
	ssize_t got;

	do
		got = pread(d->fd, d->in_buf, want, (off_t)d->read_pos);
	while (got == -1 && errno == EINTR);
	if (got <= 0) /* an error, or shorter than its length said */
		return DECODE_E_IO;
	d->read_pos += (uint64_t)got;
	d->in.size = (size_t)got;
	d->in.pos = 0;
	return DECODE_OK;
}

/* The input is all consumed: a clean end, or a frame cut short. */
static enum decode_err at_end(struct decode *d)
{
	if (!d->started)
		return DECODE_E_NO_FRAME;
	if (d->last != 0)
		return d->frames && d->frame_out == 0 ? DECODE_E_TRAILING : DECODE_E_TRUNCATED;
	if (d->produced != d->size)
		return DECODE_E_TOO_SHORT;
	d->done = 1;
	return DECODE_OK;
}

enum decode_err decode_read(struct decode *d, void *buf, size_t cap, size_t *n)
{
	ZSTD_outBuffer out;
	uint64_t limit;
	enum decode_err e;
	size_t r;

	if (d->err)
		return d->err;
	if (d->done || cap == 0) {
		*n = 0;
		return DECODE_OK;
	}
	/* One byte past the size is enough to know the document is too long. */
	limit = d->size - d->produced + 1;
	out.dst = buf;
	out.size = limit < cap ? (size_t)limit : cap;
	out.pos = 0;
	while (out.pos == 0) {
		if (d->in.pos == d->in.size) {
			if (d->read_pos < d->stored) {
				e = refill(d);
				if (e)
					return fail(d, e);
			} else if (d->last == 0) {
				/* between frames with nothing left: the end */
				e = at_end(d);
				if (e)
					return fail(d, e);
				*n = 0;
				return DECODE_OK;
			}
			/* else: no input, but the frame may still have output to flush */
		}
		if (d->last == 0)
			d->frame_out = 0; /* a new frame begins */
		r = ZSTD_decompressStream(d->dctx, &out, &d->in);
		if (ZSTD_isError(r))
			return fail(d, zstd_fault(d, r));
		d->started = 1;
		d->last = r;
		d->frame_out += out.pos;
		if (r == 0)
			d->frames++;
		if (out.pos == 0 && d->in.pos == d->in.size && d->read_pos == d->stored &&
		    r != 0) {
			e = at_end(d);
			return fail(d, e ? e : DECODE_E_TRUNCATED);
		}
	}
	if (out.pos > d->size - d->produced)
		return fail(d, DECODE_E_TOO_LONG);
	d->produced += out.pos;
	*n = out.pos;
	return DECODE_OK;
}
