/* progress: what a person sees while a job uploads: a bar on a terminal, plain lines elsewhere. */
#ifndef FSG_CLIENT_PROGRESS_H
#define FSG_CLIENT_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

enum progress_mode {
	PROGRESS_AUTO = 0, /* bar when out is a terminal, else lines */
	PROGRESS_BAR,
	PROGRESS_LINES,
	PROGRESS_NONE,
};

struct progress {
	FILE *out;
	int bar;              /* 1: redraw one line with \r; 0: a line every lines_ms */
	int enabled;
	int64_t lines_ms;     /* interval of plain lines */
	char label[96];       /* short job label */
	uint64_t total;       /* bytes of the upload */
	uint64_t start_off;   /* offset the request started from */
	uint64_t last_done;   /* for the rate */
	int64_t start_ms, last_draw_ms, last_rate_ms;
	double rate;          /* bytes/s, smoothed */
	int drawn;            /* a bar line is on screen */
};

/* Decides bar or lines for mode and out (isatty). */
void progress_init(struct progress *p, enum progress_mode mode, FILE *out);

/* A request starts sending label's bytes from offset off of total. */
void progress_begin(struct progress *p, const char *label, uint64_t off, uint64_t total);

/* done bytes of total are now sent (offset included). Rate-limited output; cheap otherwise. */
void progress_update(struct progress *p, uint64_t done);

/* The request ended; prints the final state and a newline after a bar. */
void progress_end(struct progress *p, uint64_t done, const char *outcome);

/* Formats n bytes as "12.3 MiB" into buf. Returns buf. */
const char *progress_bytes(uint64_t n, char *buf, size_t cap);

#endif
