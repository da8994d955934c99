/* locations: reads and checks the client's locations.config and plans which locations to try. */
#include "client/locations.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/ascii.h"
#include "proto/utf8.h"

#define LOCATIONS_FILE_MAX (1024 * 1024) /* bytes of a locations.config */
#define QUOTE_MAX	   80		 /* bytes of a user's value echoed in an error */

struct location {
	char id[LOCATIONS_ID_MAX + 1];
	char name[LOCATIONS_NAME_MAX + 1];
	size_t naddr;
	char *addr[LOCATIONS_ADDR_MAX];
};

struct locations {
	size_t n;
	struct location *loc;
	long current; /* index, or -1 */
};

/* The file's name and the error buffer, so that each check writes "FILE: where: reason". */
struct parse {
	const char *name;
	char *err;
	size_t cap;
};

static void fail(const struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(const struct parse *p, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!p->err || p->cap == 0)
		return;
	n = snprintf(p->err, p->cap, "%s: ", p->name);
	if (n < 0 || (size_t)n >= p->cap)
		return;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->cap - (size_t)n, fmt, ap);
	va_end(ap);
}

/*
 * A value from the file made safe to echo in a one-line error: bytes outside printable ASCII
 * become \xNN and long values are cut, so no newline or terminal escape reaches a log.
 */
static const char *quote(const char *s, size_t len, char out[QUOTE_MAX * 4 + 4])
{
	size_t o = 0;

	for (size_t i = 0; i < len && i < QUOTE_MAX; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c >= 0x7f) {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = ascii_hex_digit(c >> 4);
			out[o++] = ascii_hex_digit(c);
		} else {
			out[o++] = (char)c;
		}
	}
	if (len > QUOTE_MAX) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

/*
 * An address echoed in an error, unless it may carry credentials: whatever sits before an '@'
 * could be a password, and errors end up in logs.
 */
static const char *quote_url(const char *s, size_t len, char out[QUOTE_MAX * 4 + 4])
{
	if (memchr(s, '@', len))
		return "(not shown: it holds an '@')";
	return quote(s, len, out);
}

void locations_free(struct locations *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		for (size_t a = 0; a < l->loc[i].naddr; a++)
			free(l->loc[i].addr[a]);
	}
	free(l->loc);
	free(l);
}

/* Refuses members of o other than those in allowed (NULL-terminated). 0 or -1. */
static int members_check(const struct parse *p, const char *where, json_t *o,
			 const char *const *allowed)
{
	char q[QUOTE_MAX * 4 + 4];
	const char *key;
	json_t *v;

	json_object_foreach(o, key, v) {
		size_t i;

		for (i = 0; allowed[i]; i++) {
			if (strcmp(key, allowed[i]) == 0)
				break;
		}
		if (!allowed[i]) {
			fail(p, "%s: unknown member \"%s\"", where, quote(key, strlen(key), q));
			return -1;
		}
	}
	return 0;
}

static int id_char(char c)
{
	return ascii_is_alnum(c) || c == '.' || c == '_' || c == '-';
}

static int id_check(const struct parse *p, size_t idx, json_t *v, struct location *loc)
{
	char q[QUOTE_MAX * 4 + 4];
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);

	if (!v) {
		fail(p, "locations[%zu]: no \"id\"", idx);
		return -1;
	}
	if (!s) {
		fail(p, "locations[%zu].id: not a string", idx);
		return -1;
	}
	if (len == 0) {
		fail(p, "locations[%zu].id: empty", idx);
		return -1;
	}
	if (len > LOCATIONS_ID_MAX) {
		fail(p, "locations[%zu].id: longer than %d bytes", idx, LOCATIONS_ID_MAX);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		if (!id_char(s[i])) {
			fail(p, "locations[%zu].id: only A-Z a-z 0-9 . _ - are allowed: %s", idx,
			     quote(s, len, q));
			return -1;
		}
	}
	memcpy(loc->id, s, len + 1);
	return 0;
}

static int name_check(const struct parse *p, size_t idx, json_t *v, struct location *loc)
{
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);
	enum proto_err rc;

	if (!v) {
		/* A location without a name shows its id. */
		_Static_assert(sizeof(loc->name) >= sizeof(loc->id), "an id fits as a name");
		memcpy(loc->name, loc->id, sizeof(loc->id));
		return 0;
	}
	if (!s) {
		fail(p, "locations[%zu].name: not a string", idx);
		return -1;
	}
	if (len == 0) {
		fail(p, "locations[%zu].name: empty (leave it out to show the id)", idx);
		return -1;
	}
	if (len > LOCATIONS_NAME_MAX) {
		fail(p, "locations[%zu].name: longer than %d bytes", idx, LOCATIONS_NAME_MAX);
		return -1;
	}
	rc = utf8_check_text(s, len);
	if (rc == PROTO_E_NOMEM) {
		fail(p, "out of memory");
		return -1;
	}
	if (rc) {
		fail(p, "locations[%zu].name: holds a control character", idx);
		return -1;
	}
	memcpy(loc->name, s, len + 1);
	return 0;
}

/* Whether s starts with "https://" in any case followed by an authority (not a third '/'). */
static int https_prefix(const char *s)
{
	static const char want[] = "https://";

	for (size_t i = 0; i < sizeof(want) - 1; i++) {
		if (ascii_lower(s[i]) != want[i])
			return 0;
	}
	return s[sizeof(want) - 1] != '/';
}

/* Returns 1 when curl has part of h (a user, a query...), 0 when not, -1 when out of memory. */
static int url_has(CURLU *h, CURLUPart part)
{
	char *s = NULL;
	CURLUcode rc = curl_url_get(h, part, &s, 0);

	curl_free(s);
	if (rc == CURLUE_OUT_OF_MEMORY)
		return -1;
	return rc == CURLUE_OK;
}

/*
 * Checks one address and stores its normalized form ("https://host[:port]", as curl writes it)
 * in *out, malloc'd. 0 or -1.
 */
static int address_check(const struct parse *p, size_t idx, size_t a, json_t *v, char **out)
{
	static const struct {
		CURLUPart part;
		const char *what;
	} forbidden[] = {
		{CURLUPART_USER, "user info"},	    {CURLUPART_PASSWORD, "user info"},
		{CURLUPART_OPTIONS, "options"},	    {CURLUPART_QUERY, "a query"},
		{CURLUPART_FRAGMENT, "a fragment"},
	};
	char q[QUOTE_MAX * 4 + 4];
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);
	char *scheme = NULL, *path = NULL, *url = NULL, *port = NULL;
	CURLU *h = NULL;
	CURLUcode uc;
	int rc = -1, has;

	if (!s) {
		fail(p, "locations[%zu].addresses[%zu]: not a string", idx, a);
		return -1;
	}
	if (len == 0) {
		fail(p, "locations[%zu].addresses[%zu]: empty", idx, a);
		return -1;
	}
	if (len > LOCATIONS_URL_MAX) {
		fail(p, "locations[%zu].addresses[%zu]: longer than %d bytes", idx, a,
		     LOCATIONS_URL_MAX);
		return -1;
	}
	h = curl_url();
	if (!h) {
		fail(p, "out of memory");
		return -1;
	}
	uc = curl_url_set(h, CURLUPART_URL, s, 0);
	if (uc == CURLUE_OUT_OF_MEMORY) {
		fail(p, "out of memory");
		goto out;
	}
	if (uc) {
		fail(p, "locations[%zu].addresses[%zu]: not a URL (%s): %s", idx, a,
		     curl_url_strerror(uc), quote_url(s, len, q));
		goto out;
	}
	uc = curl_url_get(h, CURLUPART_SCHEME, &scheme, 0);
	if (uc == CURLUE_OUT_OF_MEMORY) {
		fail(p, "out of memory");
		goto out;
	}
	/*
	 * Tokens must never travel in the clear: https only, and there is no switch to turn it
	 * off. curl forgives "https:/h" and "https:///h"; the file must say what it means.
	 */
	if (uc || strcmp(scheme, "https") != 0) {
		fail(p, "locations[%zu].addresses[%zu]: not an https URL: %s", idx, a,
		     quote_url(s, len, q));
		goto out;
	}
	if (!https_prefix(s)) {
		fail(p, "locations[%zu].addresses[%zu]: not of the form https://host[:port]: %s",
		     idx, a, quote_url(s, len, q));
		goto out;
	}
	for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++) {
		has = url_has(h, forbidden[i].part);
		if (has < 0) {
			fail(p, "out of memory");
			goto out;
		}
		if (has) {
			fail(p, "locations[%zu].addresses[%zu]: must not hold %s: %s", idx, a,
			     forbidden[i].what, quote_url(s, len, q));
			goto out;
		}
	}
	/* curl drops an empty query or fragment ("https://h/?"): look at the text too. */
	if (strpbrk(s, "?#")) {
		fail(p, "locations[%zu].addresses[%zu]: must not hold a query or a fragment: %s",
		     idx, a, quote_url(s, len, q));
		goto out;
	}
	uc = curl_url_get(h, CURLUPART_PATH, &path, 0);
	if (uc == CURLUE_OUT_OF_MEMORY) {
		fail(p, "out of memory");
		goto out;
	}
	if (uc || strcmp(path, "/") != 0) {
		fail(p, "locations[%zu].addresses[%zu]: must not have a path: %s", idx, a,
		     quote_url(s, len, q));
		goto out;
	}
	/* curl takes port 0 ("any port" to bind), which no server listens on. */
	uc = curl_url_get(h, CURLUPART_PORT, &port, 0);
	if (uc == CURLUE_OUT_OF_MEMORY) {
		fail(p, "out of memory");
		goto out;
	}
	if (uc == CURLUE_OK && strcmp(port, "0") == 0) {
		fail(p, "locations[%zu].addresses[%zu]: port 0: %s", idx, a, quote_url(s, len, q));
		goto out;
	}
	has = url_has(h, CURLUPART_HOST);
	if (has <= 0) {
		if (has < 0)
			fail(p, "out of memory");
		else
			fail(p, "locations[%zu].addresses[%zu]: no host: %s", idx, a,
			     quote_url(s, len, q));
		goto out;
	}
	/* With nothing but scheme, host and port left, curl's form ends in the lone "/". */
	uc = curl_url_get(h, CURLUPART_URL, &url, 0);
	if (uc) {
		fail(p, "%s", uc == CURLUE_OUT_OF_MEMORY ? "out of memory" : "cannot write URL");
		goto out;
	}
	len = strlen(url);
	if (len < 2 || url[len - 1] != '/' || len - 1 > LOCATIONS_URL_MAX) {
		fail(p, "locations[%zu].addresses[%zu]: cannot be normalized: %s", idx, a,
		     quote_url(s, strlen(s), q));
		goto out;
	}
	*out = strndup(url, len - 1);
	if (!*out) {
		fail(p, "out of memory");
		goto out;
	}
	rc = 0;
out:
	curl_free(scheme);
	curl_free(path);
	curl_free(port);
	curl_free(url);
	curl_url_cleanup(h);
	return rc;
}

static int location_load(const struct parse *p, size_t idx, json_t *o, struct location *loc)
{
	static const char *const allowed[] = {"id", "name", "addresses", NULL};
	char where[32];
	json_t *addrs;

	snprintf(where, sizeof(where), "locations[%zu]", idx);
	if (!json_is_object(o)) {
		fail(p, "%s: not an object", where);
		return -1;
	}
	if (members_check(p, where, o, allowed))
		return -1;
	if (id_check(p, idx, json_object_get(o, "id"), loc))
		return -1;
	if (name_check(p, idx, json_object_get(o, "name"), loc))
		return -1;
	addrs = json_object_get(o, "addresses");
	if (!addrs) {
		fail(p, "%s: no \"addresses\"", where);
		return -1;
	}
	if (!json_is_array(addrs)) {
		fail(p, "%s.addresses: not an array", where);
		return -1;
	}
	if (json_array_size(addrs) == 0) {
		fail(p, "%s.addresses: empty", where);
		return -1;
	}
	if (json_array_size(addrs) > LOCATIONS_ADDR_MAX) {
		fail(p, "%s.addresses: more than %d", where, LOCATIONS_ADDR_MAX);
		return -1;
	}
	for (size_t a = 0; a < json_array_size(addrs); a++) {
		if (address_check(p, idx, a, json_array_get(addrs, a), &loc->addr[a]))
			return -1;
		loc->naddr++; /* so that locations_free releases it */
	}
	return 0;
}

static int root_load(const struct parse *p, json_t *root, struct locations *l)
{
	static const char *const allowed[] = {"current", "locations", NULL};
	char q[QUOTE_MAX * 4 + 4];
	json_t *list, *cur;
	size_t n;

	if (!json_is_object(root)) {
		fail(p, "not a JSON object");
		return -1;
	}
	if (members_check(p, "top level", root, allowed))
		return -1;
	list = json_object_get(root, "locations");
	if (!list) {
		fail(p, "no \"locations\"");
		return -1;
	}
	if (!json_is_array(list)) {
		fail(p, "locations: not an array");
		return -1;
	}
	n = json_array_size(list);
	if (n == 0) {
		fail(p, "locations: empty");
		return -1;
	}
	if (n > LOCATIONS_MAX) {
		fail(p, "locations: more than %d", LOCATIONS_MAX);
		return -1;
	}
	l->loc = calloc(n, sizeof(*l->loc));
	if (!l->loc) {
		fail(p, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct location *loc = &l->loc[i];
		int rc = location_load(p, i, json_array_get(list, i), loc);

		l->n++; /* so that locations_free releases what location_load made */
		if (rc)
			return -1;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(l->loc[j].id, loc->id) == 0) {
				fail(p, "locations[%zu].id: already used by locations[%zu]: %s", i,
				     j, loc->id);
				return -1;
			}
		}
	}
	cur = json_object_get(root, "current");
	if (cur) {
		const char *s = json_string_value(cur);

		if (!s) {
			fail(p, "current: not a string");
			return -1;
		}
		l->current = locations_find(l, s);
		if (l->current < 0) {
			fail(p, "current: no location has this id: %s",
			     quote(s, json_string_length(cur), q));
			return -1;
		}
	}
	return 0;
}

struct locations *locations_parse(const char *json, const char *name, char *err, size_t err_cap)
{
	struct parse p = {name ? name : "locations", err, err_cap};
	struct locations *l = NULL;
	json_error_t jerr;
	json_t *root;

	if (!json) {
		fail(&p, "no text");
		return NULL;
	}
	/* jansson's texts quote the input; only the position is given, and duplicates by name. */
	root = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		const char *why = "not valid JSON";

		if (json_error_code(&jerr) == json_error_duplicate_key)
			why = "member given twice";
		else if (json_error_code(&jerr) == json_error_out_of_memory)
			why = "out of memory";
		fail(&p, "%s (line %d, column %d)", why, jerr.line, jerr.column);
		return NULL;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		fail(&p, "out of memory");
		goto out;
	}
	l->current = -1;
	if (root_load(&p, root, l)) {
		locations_free(l);
		l = NULL;
	}
out:
	json_decref(root);
	return l;
}

struct locations *locations_load(const char *path, char *err, size_t err_cap)
{
	struct parse p = {path, err, err_cap};
	struct locations *l = NULL;
	char *buf = NULL;
	FILE *f;
	size_t n;

	f = fopen(path, "re");
	if (!f) {
		fail(&p, "cannot open: %s", strerror(errno));
		return NULL;
	}
	buf = malloc(LOCATIONS_FILE_MAX + 1);
	if (!buf) {
		fail(&p, "out of memory");
		goto out;
	}
	n = fread(buf, 1, LOCATIONS_FILE_MAX + 1, f);
	if (ferror(f)) {
		fail(&p, "cannot read: %s", strerror(errno));
		goto out;
	}
	if (n > LOCATIONS_FILE_MAX) {
		fail(&p, "larger than 1 MiB");
		goto out;
	}
	/* json_loads would stop at a NUL and never see what follows it. */
	if (memchr(buf, '\0', n)) {
		fail(&p, "holds a NUL byte");
		goto out;
	}
	buf[n] = '\0';
	l = locations_parse(buf, path, err, err_cap);
out:
	free(buf);
	fclose(f);
	return l;
}

size_t locations_count(const struct locations *l)
{
	return l ? l->n : 0;
}

const char *locations_id(const struct locations *l, size_t i)
{
	return l && i < l->n ? l->loc[i].id : NULL;
}

const char *locations_name(const struct locations *l, size_t i)
{
	return l && i < l->n ? l->loc[i].name : NULL;
}

size_t locations_address_count(const struct locations *l, size_t i)
{
	return l && i < l->n ? l->loc[i].naddr : 0;
}

const char *locations_address(const struct locations *l, size_t i, size_t a)
{
	if (!l || i >= l->n || a >= l->loc[i].naddr)
		return NULL;
	return l->loc[i].addr[a];
}

long locations_find(const struct locations *l, const char *id)
{
	if (!l || !id)
		return -1;
	for (size_t i = 0; i < l->n; i++) {
		if (strcmp(l->loc[i].id, id) == 0)
			return (long)i;
	}
	return -1;
}

const char *locations_current(const struct locations *l)
{
	return l && l->current >= 0 ? l->loc[l->current].id : NULL;
}

int locations_plan(const struct locations *l, const char *override, size_t order[2])
{
	long first = -1, def;
	int n = 0;

	if (override && override[0]) {
		first = locations_find(l, override);
		if (first < 0)
			return -1;
	} else if (l) {
		first = l->current;
	}
	def = locations_find(l, LOCATIONS_DEFAULT_ID);
	if (first >= 0)
		order[n++] = (size_t)first;
	if (def >= 0 && def != first)
		order[n++] = (size_t)def;
	return n;
}
