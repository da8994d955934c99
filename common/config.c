/* config: fills a program's settings struct from its table: defaults, file, environment, arguments.
 */
#include "common/config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define CONFIG_LINE_MAX	  4096	/* bytes of one file line, without its line ending */
#define CONFIG_SECRET_MAX 65536 /* bytes of a secret file */
#define CONFIG_SHOW_MAX	  80	/* bytes of a bad value echoed in an error line */
#define CONFIG_WHERE_MAX  512

/* State of one config_load call. */
struct load {
	const struct config_setting *table;
	size_t n;
	const char *prefix;
	const char *program;
	FILE *err;
	void *target;
	char *cwd;	       /* malloc'd on first use: base of relative paths outside the file */
	unsigned char *given;  /* per setting: some source gave it a value */
	unsigned char *in_arg; /* per setting: an argument set it */
	unsigned *file_line;   /* per setting: file line that set it, 0 if none */
	char **secret_path;    /* per SECRET setting: the file to read at the end, malloc'd */
	char *secret_where;    /* per setting: CONFIG_WHERE_MAX bytes naming secret_path's source */
};

/* Writes s to f with control bytes, '"' and '\' escaped, so an error stays on one line. */
static void put_clean(FILE *f, const char *s, size_t max, int quoted)
{
	size_t i;

	if (quoted)
		fputc('"', f);
	for (i = 0; s[i] && i < max; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\x%02x", c);
		else if (quoted && (c == '"' || c == '\\'))
			fprintf(f, "\\%c", c);
		else
			fputc(c, f);
	}
	if (s[i])
		fputs("...", f);
	if (quoted)
		fputc('"', f);
}

/* Prints "program: where: name: <fmt>" as one line on err. where and name may be NULL. */
static void fail(const struct load *ld, const char *where, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void fail(const struct load *ld, const char *where, const char *name, const char *fmt, ...)
{
	va_list ap;

	fprintf(ld->err, "%s: ", ld->program);
	if (where) {
		put_clean(ld->err, where, CONFIG_WHERE_MAX, 0);
		fputs(": ", ld->err);
	}
	if (name) {
		put_clean(ld->err, name, CONFIG_SHOW_MAX, 0);
		fputs(": ", ld->err);
	}
	va_start(ap, fmt);
	vfprintf(ld->err, fmt, ap);
	va_end(ap);
	fputc('\n', ld->err);
	fflush(ld->err);
}

/* Prints "program: where: name: "value": reason". Returns -1. */
static int fail_value(const struct load *ld, const char *where, const struct config_setting *s,
		      const char *value, const char *reason)
{
	fprintf(ld->err, "%s: ", ld->program);
	put_clean(ld->err, where, CONFIG_WHERE_MAX, 0);
	fprintf(ld->err, ": %s: ", s->name);
	put_clean(ld->err, value, CONFIG_SHOW_MAX, 1);
	fprintf(ld->err, ": %s\n", reason);
	fflush(ld->err);
	return -1;
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Reads an unsigned decimal (no sign, no leading zero) at *p and moves *p past it. Returns 0,
 * -1 if there is no such number, or 1 if it does not fit in 64 bits (so that a syntax error
 * after the digits can still be reported first).
 */
static int digits_read(const char **p, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	int over = 0;

	if (!is_digit(*s) || (s[0] == '0' && is_digit(s[1])))
		return -1;
	for (; is_digit(*s); s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (UINT64_MAX - d) / 10)
			over = 1;
		else
			v = v * 10 + d;
	}
	*p = s;
	*out = v;
	return over;
}

/* Strict decimal with an optional '-'. Returns 0, -1 (syntax) or 1 (out of int64 range). */
static int int_parse(const char *s, int64_t *out)
{
	uint64_t mag;
	int neg = 0, rc;

	if (*s == '-') {
		neg = 1;
		s++;
	}
	rc = digits_read(&s, &mag);
	if (rc < 0 || *s)
		return -1;
	if (rc > 0 || mag > (uint64_t)INT64_MAX + neg)
		return 1;
	if (neg)
		*out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
	else
		*out = (int64_t)mag;
	return 0;
}

/* Bytes with an optional K, M, G or T (either case, powers of 1024). Same returns as int_parse. */
static int size_parse(const char *s, uint64_t *out)
{
	static const char units[] = "KMGT";
	const char *u;
	unsigned shift = 0;
	uint64_t v;
	int rc;

	rc = digits_read(&s, &v);
	if (rc < 0)
		return -1;
	if (*s) {
		u = strchr(units, *s >= 'a' && *s <= 'z' ? *s - 'a' + 'A' : *s);
		if (!u || s[1])
			return -1;
		shift = 10 * (unsigned)(u - units + 1);
	}
	if (rc > 0 || v > UINT64_MAX >> shift)
		return 1;
	*out = v << shift;
	return 0;
}

/* A count with a required unit ms, s, m or h, in ms. Same returns as int_parse. */
static int duration_parse(const char *s, int64_t *out)
{
	int64_t mult;
	uint64_t v;
	int rc;

	rc = digits_read(&s, &v);
	if (rc < 0)
		return -1;
	if (strcmp(s, "ms") == 0)
		mult = 1;
	else if (strcmp(s, "s") == 0)
		mult = 1000;
	else if (strcmp(s, "m") == 0)
		mult = 60 * 1000;
	else if (strcmp(s, "h") == 0)
		mult = 60 * 60 * 1000;
	else
		return -1;
	if (rc > 0 || v > (uint64_t)(INT64_MAX / mult))
		return 1;
	*out = (int64_t)v * mult;
	return 0;
}

static int bool_parse(const char *s, int *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

/* Index of s among the '|'-separated choices, or -1. */
static int enum_parse(const char *choices, const char *s)
{
	size_t len = strlen(s);
	const char *p = choices;
	int i;

	for (i = 0; p; i++) {
		const char *bar = strchr(p, '|');
		size_t wlen = bar ? (size_t)(bar - p) : strlen(p);

		if (wlen == len && len && memcmp(p, s, len) == 0)
			return i;
		p = bar ? bar + 1 : NULL;
	}
	return -1;
}

static int has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

/* Bytes as the largest unit that divides them exactly: 1073741824 -> "1G". */
static void size_show(uint64_t v, char *buf, size_t size)
{
	static const char units[] = "TGMK";
	unsigned i;

	for (i = 0; i < 4 && v; i++) {
		unsigned shift = 10 * (4 - i);

		if ((v & ((UINT64_C(1) << shift) - 1)) == 0) {
			snprintf(buf, size, "%" PRIu64 "%c", v >> shift, units[i]);
			return;
		}
	}
	snprintf(buf, size, "%" PRIu64, v);
}

/* Milliseconds as the largest unit that divides them exactly: 30000 -> "30s". */
static void duration_show(int64_t ms, char *buf, size_t size)
{
	if (ms && ms % (60 * 60 * 1000) == 0)
		snprintf(buf, size, "%" PRId64 "h", ms / (60 * 60 * 1000));
	else if (ms && ms % (60 * 1000) == 0)
		snprintf(buf, size, "%" PRId64 "m", ms / (60 * 1000));
	else if (ms && ms % 1000 == 0)
		snprintf(buf, size, "%" PRId64 "s", ms / 1000);
	else
		snprintf(buf, size, "%" PRId64 "ms", ms);
}

/* A bound of s in its own notation. */
static void bound_show(const struct config_setting *s, int64_t b, char *buf, size_t size)
{
	if (s->type == CONFIG_SIZE)
		size_show(b < 0 ? 0 : (uint64_t)b, buf, size);
	else if (s->type == CONFIG_DURATION)
		duration_show(b, buf, size);
	else
		snprintf(buf, size, "%" PRId64, b);
}

/* Checks v (whose text is value) against s's bounds, printing the error. Returns 0 or -1. */
static int bounds_check(const struct load *ld, const char *where, const struct config_setting *s,
			const char *value, int below, int above)
{
	char b[32];

	if (s->min == s->max || (!below && !above))
		return 0;
	bound_show(s, below ? s->min : s->max, b, sizeof(b));
	fail(ld, where, s->name, "%s %s %s", value, below ? "below minimum" : "above maximum", b);
	return -1;
}

/* dir + "/" + rel without "./" noise; rel absolute is returned as is. Malloc'd or NULL. */
static char *path_join(const char *dir, const char *rel)
{
	size_t dlen = strlen(dir);
	char *p;

	if (rel[0] == '/')
		return strdup(rel);
	while (rel[0] == '.' && rel[1] == '/') {
		rel += 2;
		while (*rel == '/')
			rel++;
	}
	if (strcmp(rel, ".") == 0)
		rel = "";
	while (dlen > 1 && dir[dlen - 1] == '/')
		dlen--;
	if (!*rel)
		return strndup(dir, dlen);
	if (dlen == 1 && dir[0] == '/')
		dlen = 0;
	if (asprintf(&p, "%.*s/%s", (int)dlen, dir, rel) == -1)
		return NULL;
	return p;
}

/* The current directory, fetched once. */
static const char *load_cwd(struct load *ld)
{
	if (!ld->cwd)
		ld->cwd = getcwd(NULL, 0);
	return ld->cwd;
}

/* Resolves a relative path against dir, or the current directory when dir is NULL. */
static int path_resolve(struct load *ld, const char *where, const struct config_setting *s,
			const char *value, const char *dir, char **out)
{
	char *p;

	if (!*value || value[0] == '/') {
		p = strdup(value);
	} else {
		if (!dir)
			dir = load_cwd(ld);
		if (!dir) {
			fail(ld, where, s->name,
			     "cannot resolve relative path: current directory: %s",
			     strerror(errno));
			return -1;
		}
		p = path_join(dir, value);
	}
	if (!p) {
		fail(ld, where, s->name, "out of memory");
		return -1;
	}
	*out = p;
	return 0;
}

static void secret_wipe_free(char *s)
{
	if (s)
		explicit_bzero(s, strlen(s));
	free(s);
}

/*
 * Reads the secret at path into a malloc'd string. Returns 0, or -1 with *reason (static) or
 * *err (an errno) set. The content never reaches an error message.
 */
static int secret_read(const char *path, char **out, const char **reason, int *err)
{
	char *buf, *s = NULL;
	size_t len = 0;
	ssize_t r;
	int fd, rc = -1;

	*reason = NULL;
	*err = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd == -1) {
		*err = errno;
		return -1;
	}
	buf = malloc(CONFIG_SECRET_MAX + 1);
	if (!buf) {
		*err = ENOMEM;
		close(fd);
		return -1;
	}
	for (;;) {
		r = read(fd, buf + len, CONFIG_SECRET_MAX + 1 - len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			*err = errno;
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > CONFIG_SECRET_MAX) {
			*reason = "secret file larger than 64 KiB";
			goto out;
		}
	}
	if (memchr(buf, '\0', len)) {
		*reason = "secret file contains a NUL byte";
		goto out;
	}
	if (len && buf[len - 1] == '\n') {
		len--;
		if (len && buf[len - 1] == '\r')
			len--;
	}
	if (!len) {
		*reason = "secret file is empty";
		goto out;
	}
	s = malloc(len + 1);
	if (!s) {
		*err = ENOMEM;
		goto out;
	}
	memcpy(s, buf, len);
	s[len] = '\0';
	*out = s;
	rc = 0;
out:
	explicit_bzero(buf, CONFIG_SECRET_MAX + 1);
	free(buf);
	close(fd);
	return rc;
}

/* Replaces the string at slot, wiping the old one if it was a secret. */
static void string_store(const struct config_setting *s, void *slot, char *v)
{
	char **p = slot;

	if (s->type == CONFIG_SECRET)
		secret_wipe_free(*p);
	else
		free(*p);
	*p = v;
}

/*
 * Parses value for setting i and stores it in the target (a SECRET's path in ld->secret_path).
 * where names the source for errors; dir is the base of relative paths (NULL: the current
 * directory). Returns 0 or -1 (printed).
 */
static int value_set(struct load *ld, const char *where, size_t i, const char *value,
		     const char *dir)
{
	const struct config_setting *s = &ld->table[i];
	void *slot = (char *)ld->target + s->offset;
	int64_t iv;
	uint64_t uv;
	char *str;
	int rc;

	switch (s->type) {
	case CONFIG_BOOL:
		if (bool_parse(value, &rc))
			return fail_value(ld, where, s, value, "not a boolean (use true or false)");
		*(int *)slot = rc;
		break;
	case CONFIG_INT:
		rc = int_parse(value, &iv);
		if (rc < 0)
			return fail_value(ld, where, s, value, "not an integer");
		if (rc > 0)
			return fail_value(ld, where, s, value, "out of range");
		if (bounds_check(ld, where, s, value, (iv < s->min), (iv > s->max)))
			return -1;
		*(int64_t *)slot = iv;
		break;
	case CONFIG_SIZE:
		rc = size_parse(value, &uv);
		if (rc < 0)
			return fail_value(ld, where, s, value, "not a size (use K, M, G or T)");
		if (rc > 0)
			return fail_value(ld, where, s, value, "out of range");
		if (bounds_check(ld, where, s, value, s->min > 0 && uv < (uint64_t)s->min,
				 s->max < 0 || uv > (uint64_t)s->max))
			return -1;
		*(uint64_t *)slot = uv;
		break;
	case CONFIG_DURATION:
		rc = duration_parse(value, &iv);
		if (rc < 0)
			return fail_value(ld, where, s, value,
					  "not a duration (use ms, s, m or h, as in 30s)");
		if (rc > 0)
			return fail_value(ld, where, s, value, "out of range");
		if (bounds_check(ld, where, s, value, (iv < s->min), (iv > s->max)))
			return -1;
		*(int64_t *)slot = iv;
		break;
	case CONFIG_ENUM:
		rc = enum_parse(s->choices ? s->choices : "", value);
		if (rc < 0) {
			char reason_buf[256];

			snprintf(reason_buf, sizeof(reason_buf), "not one of %s",
				 s->choices ? s->choices : "(none)");
			return fail_value(ld, where, s, value, reason_buf);
		}
		*(int *)slot = rc;
		break;
	case CONFIG_STRING:
		if (has_control(value))
			return fail_value(ld, where, s, value, "contains a control character");
		str = strdup(value);
		if (!str) {
			fail(ld, where, s->name, "out of memory");
			return -1;
		}
		string_store(s, slot, str);
		break;
	case CONFIG_PATH:
		if (has_control(value))
			return fail_value(ld, where, s, value, "contains a control character");
		if (path_resolve(ld, where, s, value, dir, &str))
			return -1;
		string_store(s, slot, str);
		break;
	case CONFIG_SECRET:
		/*
		 * Only the path is taken here: the file is read once all sources are in, so a
		 * default or file path that a higher source overrides need not exist.
		 */
		if (has_control(value))
			return fail_value(ld, where, s, value, "contains a control character");
		if (path_resolve(ld, where, s, value, dir, &str))
			return -1;
		free(ld->secret_path[i]);
		ld->secret_path[i] = str;
		snprintf(ld->secret_where + i * CONFIG_WHERE_MAX, CONFIG_WHERE_MAX, "%s", where);
		break;
	default: fail(ld, where, s->name, "unknown setting type %d", (int)s->type); return -1;
	}
	ld->given[i] = 1;
	return 0;
}

/* Finds a setting by name (len bytes); in arguments '-' may stand for '_'. */
static int setting_find(const struct load *ld, const char *name, size_t len, int dashes)
{
	size_t i, k;

	for (i = 0; i < ld->n; i++) {
		const char *t = ld->table[i].name;

		if (strlen(t) != len)
			continue;
		for (k = 0; k < len; k++)
			if (t[k] != name[k] && !(dashes && t[k] == '_' && name[k] == '-'))
				break;
		if (k == len)
			return (int)i;
	}
	return -1;
}

/* Removes a "..." around v in place, undoing \" and \\. Returns NULL or a reason. */
static const char *unquote(char *v)
{
	char *r = v + 1, *w = v;

	while (*r && *r != '"') {
		if (*r == '\\') {
			if (r[1] != '"' && r[1] != '\\')
				return "unknown escape in quoted value (use \\\" or \\\\)";
			r++;
		}
		*w++ = *r++;
	}
	if (*r != '"')
		return "unterminated quoted value";
	for (r++; *r == ' ' || *r == '\t'; r++)
		;
	if (*r)
		return "text after closing quote";
	*w = '\0';
	return NULL;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Parses one line of the file (NUL-terminated, no line ending). Returns 0 or -1 (printed). */
static int line_parse(struct load *ld, const char *where, unsigned lineno, char *line,
		      const char *dir)
{
	char *name, *end, *eq, *value;
	const char *reason;
	int i;

	for (name = line; is_blank(*name); name++)
		;
	if (!*name || *name == '#')
		return 0;
	eq = strchr(name, '=');
	if (!eq) {
		fail(ld, where, NULL, "expected \"name = value\"");
		return -1;
	}
	for (end = eq; end > name && is_blank(end[-1]); end--)
		;
	if (end == name) {
		fail(ld, where, NULL, "expected \"name = value\"");
		return -1;
	}
	*end = '\0';
	i = setting_find(ld, name, (size_t)(end - name), 0);
	if (i < 0) {
		fail(ld, where, name, "unknown setting");
		return -1;
	}
	if (ld->file_line[i]) {
		fail(ld, where, name, "repeated (first set on line %u)", ld->file_line[i]);
		return -1;
	}
	ld->file_line[i] = lineno;
	for (value = eq + 1; is_blank(*value); value++)
		;
	for (end = value + strlen(value); end > value && is_blank(end[-1]); end--)
		;
	*end = '\0';
	if (*value == '"') {
		reason = unquote(value);
		if (reason) {
			fail(ld, where, name, "%s", reason);
			return -1;
		}
	}
	return value_set(ld, where, (size_t)i, value, dir);
}

/* Reads the config file at path. Returns 0 or -1 (printed). */
static int file_load(struct load *ld, const char *path)
{
	char line[CONFIG_LINE_MAX + 2];
	char where[CONFIG_WHERE_MAX];
	char *dir = NULL, *slash;
	unsigned lineno = 0;
	FILE *f;
	int c, rc = -1;

	f = fopen(path, "re");
	if (!f) {
		fail(ld, path, NULL, "cannot open config file: %s", strerror(errno));
		return -1;
	}
	/* Relative paths in the file are relative to the file's directory. */
	slash = strrchr(path, '/');
	if (slash == path) {
		dir = strdup("/");
	} else if (slash) {
		char *d = strndup(path, (size_t)(slash - path));

		if (d && d[0] != '/' && load_cwd(ld)) {
			dir = path_join(ld->cwd, d);
			free(d);
		} else if (d && d[0] != '/') {
			free(d);
		} else {
			dir = d;
		}
	} else if (load_cwd(ld)) {
		dir = strdup(ld->cwd);
	}
	if (!dir) {
		fail(ld, path, NULL, "cannot resolve the config file's directory: %s",
		     strerror(errno));
		goto out;
	}
	do {
		size_t len = 0;
		int too_long = 0, nul = 0;

		lineno++;
		while ((c = getc(f)) != EOF && c != '\n') {
			if (c == '\0')
				nul = 1;
			if (len < sizeof(line) - 1)
				line[len++] = (char)c;
			else
				too_long = 1;
		}
		if (ferror(f)) {
			fail(ld, path, NULL, "cannot read config file: %s", strerror(errno));
			goto out;
		}
		if (c == EOF && len == 0)
			break;
		if (len && line[len - 1] == '\r')
			len--;
		line[len] = '\0';
		snprintf(where, sizeof(where), "%s:%u", path, lineno);
		if (too_long || len > CONFIG_LINE_MAX) {
			fail(ld, where, NULL, "line longer than %d bytes", CONFIG_LINE_MAX);
			goto out;
		}
		if (nul) {
			fail(ld, where, NULL, "NUL byte in line");
			goto out;
		}
		if (line_parse(ld, where, lineno, line, dir))
			goto out;
	} while (c != EOF);
	rc = 0;
out:
	free(dir);
	fclose(f);
	return rc;
}

/* PREFIX_NAME for setting name, malloc'd. */
static char *env_name(const char *prefix, const char *name)
{
	char *e, *p;

	if (asprintf(&e, "%s_%s", prefix, name) == -1)
		return NULL;
	for (p = e + strlen(prefix) + 1; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	return e;
}

/* Applies PREFIX_NAME variables; any other PREFIX_ variable is a typo and an error. */
static int env_load(struct load *ld)
{
	size_t plen = strlen(ld->prefix), i;
	char where[CONFIG_WHERE_MAX];
	char **e;

	for (e = environ; e && *e; e++) {
		const char *var = *e, *eq = strchr(var, '=');
		size_t vlen = eq ? (size_t)(eq - var) : strlen(var);
		int known = 0;

		if (vlen <= plen || strncmp(var, ld->prefix, plen) != 0 || var[plen] != '_')
			continue;
		if (vlen - plen - 1 == strlen("CONFIG") && memcmp(var + plen + 1, "CONFIG", 6) == 0)
			continue;
		for (i = 0; i < ld->n && !known; i++) {
			char *want = env_name(ld->prefix, ld->table[i].name);

			if (!want) {
				fail(ld, NULL, NULL, "out of memory");
				return -1;
			}
			known = strlen(want) == vlen && memcmp(want, var, vlen) == 0;
			free(want);
		}
		if (!known) {
			snprintf(where, sizeof(where), "env %.*s", (int)vlen, var);
			fail(ld, where, NULL, "unknown setting");
			return -1;
		}
	}
	for (i = 0; i < ld->n; i++) {
		char *name = env_name(ld->prefix, ld->table[i].name);
		const char *v;

		if (!name) {
			fail(ld, NULL, NULL, "out of memory");
			return -1;
		}
		v = getenv(name);
		snprintf(where, sizeof(where), "env %s", name);
		free(name);
		if (v && value_set(ld, where, i, v, NULL))
			return -1;
	}
	return 0;
}

/* For --config FILE returns 2, for --config=FILE 1, with *file set (NULL if missing); else 0. */
static int arg_is_config(int argc, char **argv, int i, const char **file)
{
	if (strcmp(argv[i], "--config") == 0) {
		*file = i + 1 < argc ? argv[i + 1] : NULL;
		return 2;
	}
	if (strncmp(argv[i], "--config=", 9) == 0) {
		*file = argv[i] + 9;
		return 1;
	}
	return 0;
}

/* Finds --config among the arguments. Returns 0 or -1 (printed). */
static int args_config(struct load *ld, int argc, char **argv, const char **file)
{
	const char *f;
	int i, k;

	*file = NULL;
	for (i = 1; i < argc; i += k ? k : 1) {
		k = arg_is_config(argc, argv, i, &f);
		if (!k)
			continue;
		if (!f || !*f) {
			fail(ld, "argument --config", NULL, "needs a file name (--config=FILE)");
			return -1;
		}
		if (*file) {
			fail(ld, "argument --config", NULL, "given twice");
			return -1;
		}
		*file = f;
	}
	return 0;
}

/* Applies the --name=value arguments. Returns 0 or -1 (printed). */
static int args_load(struct load *ld, int argc, char **argv)
{
	char where[CONFIG_WHERE_MAX];
	const char *f;
	int i, k, s;

	for (i = 1; i < argc; i += k ? k : 1) {
		const char *a = argv[i], *eq, *value;
		size_t len;

		k = arg_is_config(argc, argv, i, &f);
		if (k)
			continue;
		if (strncmp(a, "--", 2) != 0 || !a[2] || a[2] == '=') {
			snprintf(where, sizeof(where), "argument %.*s", 64, a);
			fail(ld, where, NULL, "unexpected argument (settings are --name=value)");
			return -1;
		}
		eq = strchr(a + 2, '=');
		len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
		snprintf(where, sizeof(where), "argument --%.*s", (int)(len > 64 ? 64 : len),
			 a + 2);
		s = setting_find(ld, a + 2, len, 1);
		if (s < 0) {
			fail(ld, where, NULL, "unknown setting");
			return -1;
		}
		value = eq ? eq + 1 : NULL;
		if (!value && ld->table[s].type != CONFIG_BOOL) {
			fail(ld, where, ld->table[s].name, "needs a value (--%s=VALUE)",
			     ld->table[s].name);
			return -1;
		}
		if (ld->in_arg[s]) {
			fail(ld, where, ld->table[s].name, "given twice");
			return -1;
		}
		ld->in_arg[s] = 1;
		if (value_set(ld, where, (size_t)s, value ? value : "true", NULL))
			return -1;
	}
	return 0;
}

static const char *type_metavar(const struct config_setting *s)
{
	switch (s->type) {
	case CONFIG_BOOL: return "BOOL";
	case CONFIG_INT: return "N";
	case CONFIG_SIZE: return "SIZE";
	case CONFIG_DURATION: return "DURATION";
	case CONFIG_STRING: return "TEXT";
	case CONFIG_PATH: return "PATH";
	case CONFIG_SECRET: return "FILE";
	case CONFIG_ENUM: return s->choices ? s->choices : "";
	}
	return "?";
}

static const char *type_name(const struct config_setting *s)
{
	switch (s->type) {
	case CONFIG_BOOL: return "boolean";
	case CONFIG_INT: return "integer";
	case CONFIG_SIZE: return "size (K, M, G, T)";
	case CONFIG_DURATION: return "duration (ms, s, m, h)";
	case CONFIG_STRING: return "string";
	case CONFIG_PATH: return "path";
	case CONFIG_SECRET: return "path (secret file)";
	case CONFIG_ENUM: return "one of";
	}
	return "?";
}

/* "integer, 1 to 65535" etc.: the type, its choices or bounds. */
static void type_describe(const struct config_setting *s, FILE *out, int md)
{
	char lo[32], hi[32];
	const char *c;

	fputs(type_name(s), out);
	if (s->type == CONFIG_ENUM) {
		fputc(' ', out);
		for (c = s->choices ? s->choices : ""; *c; c++) {
			if (md && *c == '|')
				fputs("\\|", out);
			else
				fputc(*c, out);
		}
	}
	if ((s->type == CONFIG_INT || s->type == CONFIG_SIZE || s->type == CONFIG_DURATION) &&
	    s->min != s->max) {
		bound_show(s, s->min, lo, sizeof(lo));
		bound_show(s, s->max, hi, sizeof(hi));
		fprintf(out, ", %s to %s", lo, hi);
	}
}

static void usage_print(const struct config_setting *table, size_t n, const char *prefix,
			const char *program, FILE *out)
{
	size_t i;

	fprintf(out, "Usage: %s [--config=FILE] [--NAME=VALUE ...]\n\n", program);
	fprintf(out,
		"Each setting is taken from, in increasing priority: its default, the config\n"
		"file (\"name = value\" lines), the environment (%s_NAME) and --name=value\n"
		"arguments. A bare --name sets a boolean to true.\n\n",
		prefix);
	fprintf(out, "  --config=FILE\n      Read settings from FILE (env %s_CONFIG).\n", prefix);
	fputs("  --help\n      Print this help and exit.\n", out);
	fputs("  --version\n      Print the version and exit.\n\nSettings:\n", out);
	for (i = 0; i < n; i++) {
		const struct config_setting *s = &table[i];
		char *env = env_name(prefix, s->name);

		fprintf(out, "  --%s=%s\n      %s\n      ", s->name, type_metavar(s),
			s->help ? s->help : "");
		type_describe(s, out, 0);
		if (!s->def)
			fputs("; required", out);
		else if (!*s->def)
			fputs("; default empty", out);
		else
			fprintf(out, "; default %s", s->def);
		fprintf(out, "; env %s\n", env ? env : "?");
		free(env);
	}
}

static void md_cell(FILE *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '|')
			fputs("\\|", out);
		else if (*s == '\n' || *s == '\r')
			fputc(' ', out);
		else
			fputc(*s, out);
	}
}

void config_write_markdown(const struct config_setting *table, size_t n, const char *prefix,
			   FILE *out)
{
	size_t i;

	fputs("| setting | env | type | default | description |\n", out);
	fputs("|---|---|---|---|---|\n", out);
	for (i = 0; i < n; i++) {
		const struct config_setting *s = &table[i];
		char *env = env_name(prefix, s->name);

		fprintf(out, "| `%s` | `%s` | ", s->name, env ? env : "?");
		type_describe(s, out, 1);
		fputs(" | ", out);
		if (!s->def) {
			fputs("*required*", out);
		} else if (!*s->def) {
			fputs("*empty*", out);
		} else {
			fputc('`', out);
			md_cell(out, s->def);
			fputc('`', out);
		}
		fputs(" | ", out);
		md_cell(out, s->help ? s->help : "");
		fputs(" |\n", out);
		free(env);
	}
}

/* Settings are named [a-z0-9_]+; the names of the options are taken. */
static int table_check(const struct load *ld)
{
	size_t i;
	const char *c;

	for (i = 0; i < ld->n; i++) {
		const char *name = ld->table[i].name;

		if (!name || !*name || strcmp(name, "config") == 0 || strcmp(name, "help") == 0 ||
		    strcmp(name, "version") == 0 ||
		    setting_find(ld, name, strlen(name), 0) != (int)i)
			goto bad;
		for (c = name; *c; c++)
			if (!((*c >= 'a' && *c <= 'z') || is_digit(*c) || *c == '_'))
				goto bad;
		if (ld->table[i].type == CONFIG_ENUM && !ld->table[i].choices)
			goto bad;
		continue;
	bad:
		fail(ld, "settings table", name ? name : "(null)", "bad setting name or choices");
		return -1;
	}
	return 0;
}

static void fields_clear(const struct config_setting *table, size_t n, void *target)
{
	size_t i;

	for (i = 0; i < n; i++) {
		void *slot = (char *)target + table[i].offset;

		switch (table[i].type) {
		case CONFIG_BOOL:
		case CONFIG_ENUM: *(int *)slot = 0; break;
		case CONFIG_INT:
		case CONFIG_DURATION: *(int64_t *)slot = 0; break;
		case CONFIG_SIZE: *(uint64_t *)slot = 0; break;
		case CONFIG_STRING:
		case CONFIG_PATH:
		case CONFIG_SECRET: *(char **)slot = NULL; break;
		}
	}
}

/* Reads the secret file each SECRET setting ended with; "" stands for no secret. */
static int secrets_read(struct load *ld)
{
	const char *reason;
	char why[128];
	size_t i;
	char *v;
	int err;

	for (i = 0; i < ld->n; i++) {
		const struct config_setting *s = &ld->table[i];
		const char *path = ld->secret_path[i];

		if (s->type != CONFIG_SECRET || !path)
			continue;
		if (!*path) {
			v = strdup("");
			if (!v) {
				fail(ld, NULL, s->name, "out of memory");
				return -1;
			}
		} else if (secret_read(path, &v, &reason, &err)) {
			if (!reason) {
				snprintf(why, sizeof(why), "cannot read secret file: %s",
					 strerror(err));
				reason = why;
			}
			return fail_value(ld, ld->secret_where + i * CONFIG_WHERE_MAX, s, path,
					  reason);
		}
		string_store(s, (char *)ld->target + s->offset, v);
	}
	return 0;
}

int config_load(const struct config_setting *table, size_t n, const char *prefix,
		const char *program, const char *version, int argc, char **argv, void *target,
		FILE *out, FILE *err)
{
	struct load ld = {
		.table = table,
		.n = n,
		.prefix = prefix,
		.program = program,
		.err = err,
		.target = target,
	};
	const char *file;
	size_t i;
	int k, rc = -1;

	fields_clear(table, n, target);
	for (k = 1; k < argc; k++) {
		if (strcmp(argv[k], "--help") == 0) {
			usage_print(table, n, prefix, program, out);
			fflush(out);
			return 1;
		}
		if (strcmp(argv[k], "--version") == 0) {
			fprintf(out, "%s %s\n", program, version);
			fflush(out);
			return 1;
		}
	}
	ld.given = calloc(n ? n : 1, 1);
	ld.in_arg = calloc(n ? n : 1, 1);
	ld.file_line = calloc(n ? n : 1, sizeof(*ld.file_line));
	ld.secret_path = calloc(n ? n : 1, sizeof(*ld.secret_path));
	ld.secret_where = calloc(n ? n : 1, CONFIG_WHERE_MAX);
	if (!ld.given || !ld.in_arg || !ld.file_line || !ld.secret_path || !ld.secret_where) {
		fail(&ld, NULL, NULL, "out of memory");
		goto out;
	}
	if (table_check(&ld))
		goto out;
	for (i = 0; i < n; i++)
		if (table[i].def && value_set(&ld, "default", i, table[i].def, NULL))
			goto out;
	if (args_config(&ld, argc, argv, &file))
		goto out;
	if (!file) {
		char *var = env_name(prefix, "config");

		if (!var) {
			fail(&ld, NULL, NULL, "out of memory");
			goto out;
		}
		file = getenv(var);
		if (file && !*file) {
			fail(&ld, NULL, NULL, "env %s: needs a file name", var);
			free(var);
			goto out;
		}
		free(var);
	}
	if (file && file_load(&ld, file))
		goto out;
	if (env_load(&ld) || args_load(&ld, argc, argv) || secrets_read(&ld))
		goto out;
	for (i = 0; i < n; i++) {
		if (!ld.given[i]) {
			fail(&ld, NULL, table[i].name, "required setting not given");
			goto out;
		}
	}
	rc = 0;
out:
	if (rc)
		config_free(table, n, target);
	free(ld.given);
	free(ld.in_arg);
	free(ld.file_line);
	for (i = 0; ld.secret_path && i < n; i++)
		free(ld.secret_path[i]);
	free(ld.secret_path);
	free(ld.secret_where);
	free(ld.cwd);
	return rc;
}

void config_free(const struct config_setting *table, size_t n, void *target)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const struct config_setting *s = &table[i];

		if (s->type == CONFIG_STRING || s->type == CONFIG_PATH ||
		    s->type == CONFIG_SECRET) {
			string_store(s, (char *)target + s->offset, NULL);
		}
	}
}
