/* progress: what a person sees while a job uploads: a bar on a terminal, plain lines elsewhere. */
#include "client/progress.h"

#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"

#define BAR_WIDTH 24
#define BAR_REDRAW_MS 100

const char *progress_bytes(uint64_t n, char *buf, size_t cap)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	size_t u = 0;

	while (v >= 1024.0 && u + 1 < sizeof(unit) / sizeof(unit[0])) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, cap, "%" PRIu64 " B", n);
	else
		snprintf(buf, cap, "%.1f %s", v, unit[u]);
	return buf;
}

void progress_init(struct progress *p, enum progress_mode mode, FILE *out)
{
	memset(p, 0, sizeof(*p));
	p->out = out;
	p->lines_ms = 10000;
	p->enabled = mode != PROGRESS_NONE;
	if (mode == PROGRESS_AUTO)
		p->bar = isatty(fileno(out));
	else
		p->bar = mode == PROGRESS_BAR;
}

void progress_begin(struct progress *p, const char *label, uint64_t off, uint64_t total)
{
	char a[32], b[32];

	snprintf(p->label, sizeof(p->label), "%s", label);
	p->total = total;
	p->start_off = off;
	p->last_done = off;
	p->start_ms = clock_mono_ms();
	p->last_draw_ms = p->start_ms;
	p->last_rate_ms = p->start_ms;
	p->rate = 0;
	p->drawn = 0;
	if (!p->enabled || p->bar)
		return;
	if (off)
		fprintf(p->out, "fs-client: %s: resuming at %s of %s\n", p->label,
			progress_bytes(off, a, sizeof(a)), progress_bytes(total, b, sizeof(b)));
	else
		fprintf(p->out, "fs-client: %s: sending %s\n", p->label,
			progress_bytes(total, b, sizeof(b)));
	fflush(p->out);
}

static void progress_rate(struct progress *p, uint64_t done, int64_t now)
{
	int64_t dt = now - p->last_rate_ms;
	double inst;

	if (dt < 250 || done < p->last_done)
		return;
	inst = (double)(done - p->last_done) * 1000.0 / (double)dt;
	/* Smoothed so one stalled second on hotel wifi does not make the ETA jump around. */
	p->rate = p->rate == 0 ? inst : 0.7 * p->rate + 0.3 * inst;
	p->last_done = done;
	p->last_rate_ms = now;
}

static void progress_draw(struct progress *p, uint64_t done)
{
	char d[32], t[32], r[32], eta[32] = "--";
	unsigned pct = p->total ? (unsigned)(done * 100 / p->total) : 100;
	unsigned fill = pct * BAR_WIDTH / 100;
	char bar[BAR_WIDTH + 1];
	unsigned i;

	for (i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
	bar[BAR_WIDTH] = '\0';
	if (p->rate > 0 && p->total > done) {
		uint64_t s = (uint64_t)((double)(p->total - done) / p->rate);

		if (s >= 3600)
			snprintf(eta, sizeof(eta), "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s / 60 % 60);
		else
			snprintf(eta, sizeof(eta), "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
	}
	progress_bytes((uint64_t)p->rate, r, sizeof(r));
	if (p->bar) {
		fprintf(p->out, "\r%-24.24s [%s] %3u%% %s/%s %s/s ETA %s\033[K", p->label, bar, pct,
			progress_bytes(done, d, sizeof(d)), progress_bytes(p->total, t, sizeof(t)), r,
			eta);
		p->drawn = 1;
	} else {
		fprintf(p->out, "fs-client: %s: %u%% %s of %s, %s/s, ETA %s\n", p->label, pct,
			progress_bytes(done, d, sizeof(d)), progress_bytes(p->total, t, sizeof(t)), r,
			eta);
	}
	fflush(p->out);
}

void progress_update(struct progress *p, uint64_t done)
{
	int64_t now;

	if (!p->enabled)
		return;
	now = clock_mono_ms();
	progress_rate(p, done, now);
	if (now - p->last_draw_ms < (p->bar ? BAR_REDRAW_MS : p->lines_ms))
		return;
	p->last_draw_ms = now;
	progress_draw(p, done);
}

void progress_end(struct progress *p, uint64_t done, const char *outcome)
{
	char d[32], t[32];
	int64_t ms;

	if (!p->enabled)
		return;
	ms = clock_mono_ms() - p->start_ms;
	if (p->bar) {
		progress_rate(p, done, clock_mono_ms());
		progress_draw(p, done);
		fputc('\n', p->out);
	}
	fprintf(p->out, "fs-client: %s: %s (%s of %s sent, %" PRId64 ".%01" PRId64 " s)\n", p->label,
		outcome, progress_bytes(done > p->start_off ? done - p->start_off : 0, d, sizeof(d)),
		progress_bytes(p->total, t, sizeof(t)), ms / 1000, ms % 1000 / 100);
	fflush(p->out);
}
