/* log: one JSON object per line on one fd, each line written whole so threads never interleave. */
#include "common/log.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_EVENT_MAX  128
#define LOG_LINE_STACK 8192 /* most lines are serialized here without malloc */

static atomic_int log_threshold = LOG_INFO;
static atomic_int log_fd = 2;
/* Only a partial write (a pipe past PIPE_BUF) could split a line; the lock keeps it whole. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_init(enum log_level level, int fd)
{
	atomic_store(&log_threshold, (int)level);
	atomic_store(&log_fd, fd);
}

int log_level_parse(const char *s, enum log_level *out)
{
	int i;

	if (!s)
		return -1;
	for (i = LOG_ERROR; i <= LOG_DEBUG; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

int log_enabled(enum log_level level)
{
	int l = (int)level;

	return l >= LOG_ERROR && l <= LOG_DEBUG &&
	       l <= atomic_load_explicit(&log_threshold, memory_order_relaxed);
}

/* Length of the valid UTF-8 character at s (n > 0 bytes available), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* overlong forms, UTF-16 surrogates and beyond U+10FFFF: jansson refuses them too */
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/*
 * Copies src (len bytes) to dst (cap + 1 bytes) as valid UTF-8, each invalid byte written as
 * "\xNN". When it does not fit, or cut says src was already cut short, it ends in "..." after
 * the last whole character that leaves room for it.
 */
static void utf8_clean(char *dst, size_t cap, const char *src, size_t len, int cut)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t i = 0, o = 0, mark = 0;

	while (i < len) {
		size_t k = utf8_len(s + i, len - i);
		size_t need = k ? k : 4;

		if (o + need > cap) {
			cut = 1;
			break;
		}
		if (k) {
			memcpy(dst + o, s + i, k);
			i += k;
		} else {
			snprintf(dst + o, 5, "\\x%02x", s[i]);
			i++;
		}
		o += need;
		if (o + 3 <= cap)
			mark = o;
	}
	if (cut) {
		if (o + 3 > cap)
			o = mark;
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
}

/* Drops a character that vsnprintf's cut left incomplete at the end of s (len bytes). */
static size_t utf8_trim_cut(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t k = len, back = 0, need;

	while (k > 0 && back < 3 && (u[k - 1] & 0xc0) == 0x80) {
		k--;
		back++;
	}
	if (k == 0 || u[k - 1] < 0xc2 || u[k - 1] > 0xf4)
		return len; /* no lead byte: whatever is there gets escaped */
	need = u[k - 1] >= 0xf0 ? 4 : u[k - 1] >= 0xe0 ? 3 : 2;
	return need > back + 1 ? k - 1 : len;
}

static void write_all(int fd, const char *p, size_t len)
{
	pthread_mutex_lock(&log_lock);
	while (len) {
		ssize_t w = write(fd, p, len);

		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			break; /* nowhere to report it: the line is lost, the program goes on */
		p += w;
		len -= (size_t)w;
	}
	pthread_mutex_unlock(&log_lock);
}

/* "2026-11-24T22:29:24.123Z" */
static void ts_format(char *buf, size_t size)
{
	struct timespec now;
	struct tm tm;
	size_t k;

	clock_gettime(CLOCK_REALTIME, &now);
	if (!gmtime_r(&now.tv_sec, &tm) || !(k = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm))) {
		snprintf(buf, size, "1970-01-01T00:00:00.000Z");
		return;
	}
	snprintf(buf + k, size - k, ".%03ldZ", now.tv_nsec / 1000000);
}

void log_write(enum log_level level, const char *event, const char *fmt, ...)
{
	char raw[LOG_MSG_MAX + 1], msg[LOG_MSG_MAX + 1], ev[LOG_EVENT_MAX + 1];
	char stack[LOG_LINE_STACK], ts[40];
	char *line = stack, *heap = NULL;
	int saved = errno, n, fd;
	size_t len, rlen;
	json_t *obj;
	va_list ap;

	if (!log_enabled(level))
		return;
	fd = atomic_load_explicit(&log_fd, memory_order_relaxed);
	ts_format(ts, sizeof(ts));

	va_start(ap, fmt);
	n = vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	if (n < 0) {
		n = 0;
		raw[0] = '\0';
	}
	rlen = (size_t)n < sizeof(raw) ? (size_t)n : sizeof(raw) - 1;
	if ((size_t)n > rlen)
		rlen = utf8_trim_cut(raw, rlen);
	utf8_clean(msg, LOG_MSG_MAX, raw, rlen, (size_t)n > rlen);
	if (!event)
		event = "";
	utf8_clean(ev, LOG_EVENT_MAX, event, strnlen(event, LOG_EVENT_MAX + 1), 0);

	obj = json_pack("{s:s,s:s,s:s,s:s}", "ts", ts, "level", level_names[level], "event", ev,
			"msg", msg);
	len = obj ? json_dumpb(obj, stack, sizeof(stack) - 1, JSON_COMPACT) : 0;
	if (len > sizeof(stack) - 1) {
		heap = malloc(len + 1);
		if (heap && json_dumpb(obj, heap, len, JSON_COMPACT) == len)
			line = heap;
		else
			len = 0;
	}
	json_decref(obj);
	if (!len) {
		/* Out of memory: still say that something was to be logged. */
		n = snprintf(stack, sizeof(stack),
			     "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":\"log\","
			     "\"msg\":\"log line could not be encoded\"}",
			     ts, level_names[level]);
		line = stack;
		len = (size_t)n;
	}
	line[len] = '\n';
	write_all(fd, line, len + 1);
	free(heap);
	errno = saved;
}
