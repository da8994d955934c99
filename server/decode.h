/* decode: reads a stored zstd job back as its document, in bounded memory, checking its size. */
#ifndef FSG_SERVER_DECODE_H
#define FSG_SERVER_DECODE_H

#include <stddef.h>
#include <stdint.h>

/* Largest zstd window accepted (ZSTD_d_windowLogMax): 128 MiB of decoder memory at most. */
#define DECODE_WINDOW_LOG_MAX 27

enum decode_err {
	DECODE_OK = 0,
	DECODE_E_NOMEM = 1,
	DECODE_E_IO = 2,        /* the stored data could not be read, or is shorter than said */
	DECODE_E_NO_FRAME = 3,  /* no byte stored: a zstd job holds at least one frame */
	DECODE_E_NOT_ZSTD = 4,  /* the data does not start with a zstd frame */
	DECODE_E_CORRUPT = 5,   /* a frame is malformed */
	DECODE_E_CHECKSUM = 6,  /* a frame's content checksum does not match */
	DECODE_E_WINDOW = 7,    /* a frame needs a window above 2^DECODE_WINDOW_LOG_MAX */
	DECODE_E_TRUNCATED = 8, /* the data ends inside a frame */
	DECODE_E_TRAILING = 9,  /* bytes after the last whole frame are not a frame */
	DECODE_E_TOO_LONG = 10, /* the document is longer than its size */
	DECODE_E_TOO_SHORT = 11, /* the document is shorter than its size */
};

/* A static description, fit for a problem detail (it never quotes the data). */
const char *decode_strerror(enum decode_err e);

struct decode;

/*
 * Starts decoding the first stored bytes of fd (read with pread from offset 0) as one or more
 * concatenated zstd frames that must decode to exactly size bytes. Takes fd: decode_free
 * closes it (also when this fails). Returns NULL when out of memory.
 */
struct decode *decode_new(int fd, uint64_t stored, uint64_t size);

/*
 * Writes the next decoded bytes (1..cap, cap > 0) into buf and *n. *n is 0 only once the whole
 * document came out and the stored data ended cleanly after it. Never writes more than size
 * bytes in all: decoding stops as soon as the document passes its size (DECODE_E_TOO_LONG),
 * so a small job that would expand enormously costs no more than size + 1 bytes of output.
 * Memory is the zstd decoder's (its window, bounded by DECODE_WINDOW_LOG_MAX) plus one input
 * buffer. After an error, returns that error again.
 */
enum decode_err decode_read(struct decode *d, void *buf, size_t cap, size_t *n);

/* Decoded bytes handed out so far. */
uint64_t decode_offset(const struct decode *d);

/* Closes the fd and frees d; accepts NULL. */
void decode_free(struct decode *d);

#endif
