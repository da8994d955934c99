/* log: structured log lines, one JSON object per line, level checked before formatting. */
#ifndef FSG_COMMON_LOG_H
#define FSG_COMMON_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Bytes of "msg" at most: longer messages are cut at a character boundary and end in "...". */
#define LOG_MSG_MAX 4096

/*
 * Sets the threshold and the destination fd (default: LOG_INFO to stderr, fd 2). Both are
 * atomics, so it may be called while other threads log (e.g. to raise the level on a signal).
 */
void log_init(enum log_level level, int fd);

/* Parses "error", "warn", "info", "debug". Returns 0 and writes *out, or -1. */
int log_level_parse(const char *s, enum log_level *out);

/*
 * Writes {"ts":"2026-11-24T22:29:24.123Z","level":"info","event":EVENT,"msg":MSG} with msg
 * built from fmt (UTC, milliseconds). Everything is JSON-escaped (jansson), so CR/LF from the
 * network cannot forge a line. Bytes that are not valid UTF-8 are written as the text "\xNN"
 * (so the line is never dropped); msg is cut at LOG_MSG_MAX bytes and event at 128. Each line
 * goes out in one write(2) (a loop only on a partial write or EINTR) under a lock, so lines
 * from threads never interleave. Keeps errno. Never pass secrets.
 */
void log_write(enum log_level level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Non-zero when level would be written; the macros check it before formatting. */
int log_enabled(enum log_level level);

#define LOG(level, event, ...)                                                                 \
	do {                                                                                   \
		if (log_enabled(level))                                                        \
			log_write(level, event, __VA_ARGS__);                                  \
	} while (0)
#define log_error(event, ...) LOG(LOG_ERROR, event, __VA_ARGS__)
#define log_warn(event, ...) LOG(LOG_WARN, event, __VA_ARGS__)
#define log_info(event, ...) LOG(LOG_INFO, event, __VA_ARGS__)
#define log_debug(event, ...) LOG(LOG_DEBUG, event, __VA_ARGS__)

#endif
