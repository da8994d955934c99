/* config: one table of settings from which parsing, validation, --help and the docs all come. */
#ifndef FSG_COMMON_CONFIG_H
#define FSG_COMMON_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum config_type {
	CONFIG_BOOL,     /* true/false, yes/no, on/off, 1/0 -> int */
	CONFIG_INT,      /* decimal integer -> int64_t, within [min, max] */
	CONFIG_SIZE,     /* bytes with optional K/M/G/T suffix (powers of 1024) -> uint64_t */
	CONFIG_DURATION, /* ms, s, m, h suffix required ("1500ms", "30s", "24h") -> int64_t ms */
	CONFIG_STRING,   /* any text without control characters -> char * (malloc'd) */
	CONFIG_PATH,     /* like STRING; relative values resolve against the config file's
			    directory (or the current one outside the file) -> char * */
	CONFIG_SECRET,   /* path of a file whose content (trailing newline stripped) is the value;
			    the value is never printed -> char * (malloc'd) */
	CONFIG_ENUM,     /* one of the '|'-separated words in choices -> int index */
};

/* One setting. The table is static; each program has its own. */
struct config_setting {
	const char *name;     /* as in the file: lowercase with '_' ("spool_dir") */
	enum config_type type;
	const char *def;      /* default as text, or NULL: required */
	int64_t min, max;     /* bounds for INT, SIZE (bytes) and DURATION (ms); ignored if equal */
	const char *choices;  /* for CONFIG_ENUM: "off|optional|required" */
	size_t offset;        /* where the value goes in the program's settings struct */
	const char *help;     /* one sentence */
};

/*
 * Fills target (the program's settings struct) from, in increasing priority: the defaults, the
 * file named by --config FILE / --config=FILE (or env PREFIX_CONFIG), environment variables
 * PREFIX_NAME (uppercase name, e.g. FSG_SERVER_SPOOL_DIR) and --name=value arguments. Every
 * source is validated in full, even where a higher one overrides it (but only the secret file
 * a SECRET ends with is read, so an overridden default path need not exist).
 *
 * Values land at offset as: BOOL, ENUM -> int; INT, DURATION (ms) -> int64_t; SIZE -> uint64_t;
 * STRING, PATH, SECRET -> char * (malloc'd; owned by target until config_free). config_load
 * first zeroes every field of the table (previous contents are overwritten, not freed). After
 * 0 every string field is non-NULL; after 1 or -1 every string field is NULL.
 *
 * File: "name = value" lines of at most 4096 bytes (LF or CRLF); blanks around name and value
 * are ignored; a line whose first non-blank is '#' is a comment (no comments after a value);
 * blank lines are skipped; a value may be "double-quoted" with \" and \\ escapes. A line
 * without '=', an unknown name or a name repeated in the file is an error.
 * Environment: an empty variable is an empty value; any variable PREFIX_* other than
 * PREFIX_CONFIG and the settings' own is an error (catches typos).
 * Arguments: --name=value ("-" may stand for "_" in name) and a bare --name for a boolean
 * (true); "--name value" is not accepted, nor positional arguments; a setting given twice is
 * an error. --help or --version anywhere wins over everything else.
 * Numbers: INT is [-]digits without leading zeros; SIZE is digits with an optional K, M, G or T
 * (either case, powers of 1024); DURATION is digits with ms, s, m or h; overflow is an error.
 * PATH: relative values resolve against the file's directory (in the file) or the current
 * directory (defaults, environment, arguments), so stored paths are absolute or empty.
 * SECRET: the (resolved) path of a file of at most 64 KiB, no NUL byte, whose content minus
 * one trailing LF or CRLF must be non-empty; an empty path means no secret and stores "".
 * Secrets are wiped before they are freed and never printed (--help shows the path default).
 *
 * Returns 0 on success; 1 when --help or --version was handled (usage printed to out); -1 on
 * error, with one line on err "program: SOURCE: setting: reason", SOURCE being "file:line",
 * "env FSG_SERVER_X", "argument --x" or "default"; a missing required setting (def NULL)
 * prints "program: setting: required setting not given". Shown values are escaped (control
 * bytes as \xNN) and cut at 80 bytes, so the error is one line. The program exits non-zero
 * before listening on -1. Not reentrant: one call at a time, and no thread may change the
 * environment meanwhile (getenv); other threads may run (fs-gateway calls it again on SIGHUP
 * while its workers serve).
 */
int config_load(const struct config_setting *table, size_t n, const char *prefix,
		const char *program, const char *version, int argc, char **argv, void *target,
		FILE *out, FILE *err);

/* Frees (secrets: wipes) the strings config_load allocated in target and sets them NULL. */
void config_free(const struct config_setting *table, size_t n, void *target);

/* Writes the settings reference as a Markdown table (for docs), one row per setting. */
void config_write_markdown(const struct config_setting *table, size_t n, const char *prefix,
			   FILE *out);

#endif
