/* Tests client/locations.c: which locations.config files are accepted, their errors, the plan. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/locations.h"
#include "tests/lib/proc.h"

#define ERR_CAP 512

/* A location with one address, for files whose point is elsewhere. */
#define LOC(id) "{'id':'" id "','addresses':['https://h']}"
#define ONE	"{'locations':[" LOC("a") "]}"

/*
 * The tables write JSON with single quotes so that it reads; this turns them into double ones.
 * No case needs a single quote inside a value. Returns a malloc'd copy.
 */
static char *dq(const char *s)
{
	char *out = strdup(s);

	cr_assert_not_null(out);
	for (char *p = out; *p; p++) {
		if (*p == '\'')
			*p = '"';
	}
	return out;
}

/* Parses text (single-quoted JSON) as file "t"; err gets the error or "". */
static struct locations *parse_sq(const char *text, char err[ERR_CAP])
{
	char *json = dq(text);
	struct locations *l;

	err[0] = '\0';
	l = locations_parse(json, "t", err, ERR_CAP);
	free(json);
	return l;
}

struct file_case {
	const char *json;
	const char *err; /* NULL: accepted */
};

static const struct file_case files[] = {
	/* accepted */
	{ONE, NULL},
	{"{'current':'prague','locations':["
	 "{'id':'prague','name':'Prague office','addresses':"
	 "['https://print-1.prague.example','https://print-2.prague.example:8443']},"
	 "{'id':'Default','name':'Public server','addresses':['https://print.example.com']}]}",
	 NULL},
	{"{'locations':[{'id':'a','name':'Praha \xe2\x80\x93 kancel\xc3\xa1\xc5\x99',"
	 "'addresses':['https://h']}]}",
	 NULL},
	{"{'current':'Default','locations':[" LOC("Default") "]}", NULL},
	{"{'locations':[" LOC("a.b_c-D9") "]}", NULL},
	{"{'locations':[" LOC("a") "," LOC("A") "]}", NULL}, /* ids are case-sensitive */
	{"\n\t {'locations' : [ " LOC("x") " ] }\n", NULL},
	{"{'locations':[{'addresses':['https://h'],'name':'N','id':'a'}]}", NULL}, /* any order */
	{"{'locations':[{'id':'a','name':'a b ~','addresses':['https://h']}]}", NULL},

	/* the document */
	{"", "t: not valid JSON (line 1, column 0)"},
	{"[]", "t: not a JSON object"},
	{"'x'", "t: not valid JSON (line 1, column 3)"},
	{ONE " x", "t: not valid JSON (line 1, column 54)"},
	{"{'locations':[" LOC("a") "],'locations':[" LOC("b") "]}",
	 "t: member given twice (line 1, column 63)"},
	{"{}", "t: no \"locations\""},
	{"{'locations':{}}", "t: locations: not an array"},
	{"{'locations':null}", "t: locations: not an array"},
	{"{'locations':[]}", "t: locations: empty"},
	{"{'locations':[" LOC("a") "],'Current':'a'}", "t: top level: unknown member \"Current\""},
	{"{'locations':[" LOC("a") "],'current':'a','x':1}", "t: top level: unknown member \"x\""},
	{"{'locations':[" LOC("a") "],'a\\nb':1}", "t: top level: unknown member \"a\\x0ab\""},

	/* a location */
	{"{'locations':[1]}", "t: locations[0]: not an object"},
	{"{'locations':[" LOC("a") ",[]]}", "t: locations[1]: not an object"},
	{"{'locations':[{'id':'a','adresses':['https://h']}]}",
	 "t: locations[0]: unknown member \"adresses\""},
	{"{'locations':[{'id':'a','addresses':['https://h'],'port':1}]}",
	 "t: locations[0]: unknown member \"port\""},
	{"{'locations':[{'id':'a','id':'b','addresses':['https://h']}]}",
	 "t: member given twice (line 1, column 28)"},
	{"{'locations':[{'addresses':['https://h']}]}", "t: locations[0]: no \"id\""},
	{"{'locations':[{'id':7,'addresses':['https://h']}]}", "t: locations[0].id: not a string"},
	{"{'locations':[" LOC("") "]}", "t: locations[0].id: empty"},
	{"{'locations':[" LOC("a b") "]}",
	 "t: locations[0].id: only A-Z a-z 0-9 . _ - are allowed: a b"},
	{"{'locations':[" LOC("a/b") "]}",
	 "t: locations[0].id: only A-Z a-z 0-9 . _ - are allowed: a/b"},
	{"{'locations':[" LOC("caf\xc3\xa9") "]}",
	 "t: locations[0].id: only A-Z a-z 0-9 . _ - are allowed: caf\\xc3\\xa9"},
	{"{'locations':[" LOC("a\\u0000b") "]}", "t: not valid JSON (line 1, column 30)"},
	{"{'locations':[" LOC("a") "," LOC("b") "," LOC("a") "]}",
	 "t: locations[2].id: already used by locations[0]: a"},
	{"{'locations':[{'id':'a','name':null,'addresses':['https://h']}]}",
	 "t: locations[0].name: not a string"},
	{"{'locations':[{'id':'a','name':'','addresses':['https://h']}]}",
	 "t: locations[0].name: empty (leave it out to show the id)"},
	{"{'locations':[{'id':'a','name':'a\\nb','addresses':['https://h']}]}",
	 "t: locations[0].name: holds a control character"},
	{"{'locations':[{'id':'a','name':'a\\tb','addresses':['https://h']}]}",
	 "t: locations[0].name: holds a control character"},
	{"{'locations':[{'id':'a','name':'a\\u007f','addresses':['https://h']}]}",
	 "t: locations[0].name: holds a control character"},
	{"{'locations':[{'id':'a','name':'\\u0085','addresses':['https://h']}]}",
	 "t: locations[0].name: holds a control character"},
	{"{'locations':[{'id':'a','name':'caf\xe9','addresses':['https://h']}]}",
	 "t: not valid JSON (line 1, column 35)"},
	{"{'locations':[{'id':'a'}]}", "t: locations[0]: no \"addresses\""},
	{"{'locations':[{'id':'a','addresses':'https://h'}]}",
	 "t: locations[0].addresses: not an array"},
	{"{'locations':[{'id':'a','addresses':[]}]}", "t: locations[0].addresses: empty"},
	{"{'locations':[{'id':'a','addresses':[7]}]}",
	 "t: locations[0].addresses[0]: not a string"},
	{"{'locations':[" LOC("a") ",{'id':'b','addresses':['https://h','http://x']}]}",
	 "t: locations[1].addresses[1]: not an https URL: http://x"},

	/* current */
	{"{'current':1,'locations':[" LOC("a") "]}", "t: current: not a string"},
	{"{'current':null,'locations':[" LOC("a") "]}", "t: current: not a string"},
	{"{'current':'b','locations':[" LOC("a") "]}", "t: current: no location has this id: b"},
	{"{'current':'','locations':[" LOC("a") "]}", "t: current: no location has this id: "},
	{"{'current':'A','locations':[" LOC("a") "]}", "t: current: no location has this id: A"},
	{"{'current':'Default','locations':[" LOC("a") "]}",
	 "t: current: no location has this id: Default"},
};

Test(locations_parse, files)
{
	char err[ERR_CAP];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		struct locations *l = parse_sq(files[i].json, err);

		if (!files[i].err) {
			cr_expect_not_null(l, "case %zu: %s", i, err);
			cr_expect_gt(locations_count(l), 0, "case %zu", i);
		} else {
			cr_expect_null(l, "case %zu: accepted", i);
			cr_expect_str_eq(err, files[i].err, "case %zu: %s", i, err);
		}
		locations_free(l);
	}
}

/* Whether s is pattern, where one '*' in pattern stands for any text (curl's own reasons). */
static int matches(const char *s, const char *pattern)
{
	const char *star = strchr(pattern, '*');
	size_t pre, post, len = strlen(s);

	if (!star)
		return strcmp(s, pattern) == 0;
	pre = (size_t)(star - pattern);
	post = strlen(star + 1);
	return len >= pre + post && strncmp(s, pattern, pre) == 0 &&
	       strcmp(s + len - post, star + 1) == 0;
}

struct address_case {
	const char *in;
	const char *out;    /* the stored form when accepted */
	const char *reason; /* when refused: what follows "t: locations[0].addresses[0]: " */
};

static const struct address_case addresses[] = {
	{"https://h", "https://h", NULL},
	{"https://h/", "https://h", NULL},
	{"https://print.example.com", "https://print.example.com", NULL},
	{"HTTPS://Print.Example.com/", "https://Print.Example.com", NULL},
	{"https://h:8443/", "https://h:8443", NULL},
	{"https://h:443", "https://h:443", NULL}, /* an explicit port stays */
	{"https://h:65535", "https://h:65535", NULL},
	{"https://h:08443", "https://h:8443", NULL}, /* curl reads the number */
	{"https://h:", "https://h", NULL},
	{"https://[::1]:8443/", "https://[::1]:8443", NULL},
	{"https://[2001:db8::1]", "https://[2001:db8::1]", NULL},
	{"https://192.0.2.1:9", "https://192.0.2.1:9", NULL},
	{"https://xn--bcher-kva.example", "https://xn--bcher-kva.example", NULL},
	{"https://[fe80::1%25eth0]:8443", "https://[fe80::1%25eth0]:8443", NULL}, /* zone kept */

	{"", NULL, "empty"},
	{"http://h", NULL, "not an https URL: http://h"},
	{"HTTP://h", NULL, "not an https URL: HTTP://h"},
	{"ftp://h", NULL, "not an https URL: ftp://h"},
	{"http://u:secret@h", NULL, "not an https URL: (not shown: it holds an '@')"},
	{"h", NULL, "not a URL (*): h"},
	{"//h", NULL, "not a URL (*): //h"},
	{"https://", NULL, "not a URL (*): https://"},
	{"https:/h", NULL, "not of the form https://host[:port]: https:/h"},
	{"https:///h", NULL, "not of the form https://host[:port]: https:///h"},
	{"https://u@h", NULL, "must not hold user info: (not shown: it holds an '@')"},
	{"https://u:p@h", NULL, "must not hold user info: (not shown: it holds an '@')"},
	{"https://:p@h", NULL, "must not hold user info: (not shown: it holds an '@')"},
	{"https://h?a=1", NULL, "must not hold a query: https://h?a=1"},
	{"https://h/?", NULL, "must not hold a query: https://h/?"},
	{"https://h#f", NULL, "must not hold a fragment: https://h#f"},
	{"https://h/#", NULL, "must not hold a query or a fragment: https://h/#"},
	{"https://h/x", NULL, "must not have a path: https://h/x"},
	{"https://h/ipp/print", NULL, "must not have a path: https://h/ipp/print"},
	{"https://h//", NULL, "must not have a path: https://h//"},
	{"https://h:0", NULL, "port 0: https://h:0"},
	{"https://h:65536", NULL, "not a URL (*): https://h:65536"},
	{"https://h :1", NULL, "not a URL (*): https://h :1"},
	{"https://h\n", NULL, "not a URL (*): https://h\\x0a"},
	{" https://h", NULL, "not a URL (*):  https://h"},
	{"https://[::1", NULL, "not a URL (*): https://[::1"},
	{"https://h:8443:1", NULL, "not a URL (*): https://h:8443:1"},
	{"https://h\x1b[2J", NULL,
	 "not a URL (*): https://h\\x1b[2J"}, /* no escape reaches a log */
};

Test(locations_parse, addresses)
{
	char err[ERR_CAP], want[ERR_CAP];

	for (size_t i = 0; i < sizeof(addresses) / sizeof(addresses[0]); i++) {
		const struct address_case *c = &addresses[i];
		/* jansson writes the file, so that any byte of the address is escaped right */
		json_t *doc =
			json_pack("{s:[{s:s,s:[s]}]}", "locations", "id", "a", "addresses", c->in);
		char *text = json_dumps(doc, 0);
		struct locations *l;

		cr_assert_not_null(text);
		l = locations_parse(text, "t", err, sizeof(err));
		if (c->out) {
			cr_expect_not_null(l, "case %zu: %s", i, err);
			cr_expect_str_eq(locations_address(l, 0, 0), c->out, "case %zu", i);
		} else {
			cr_expect_null(l, "case %zu: accepted", i);
			snprintf(want, sizeof(want), "t: locations[0].addresses[0]: %s", c->reason);
			cr_expect(matches(err, want), "case %zu: %s", i, err);
		}
		locations_free(l);
		free(text);
		json_decref(doc);
	}
}

Test(locations_parse, reads_back_the_example)
{
	char err[ERR_CAP];
	struct locations *l = parse_sq(files[1].json, err);

	cr_assert_not_null(l, "%s", err);
	cr_expect_eq(locations_count(l), 2);
	cr_expect_str_eq(locations_id(l, 0), "prague");
	cr_expect_str_eq(locations_name(l, 0), "Prague office");
	cr_expect_eq(locations_address_count(l, 0), 2);
	cr_expect_str_eq(locations_address(l, 0, 0), "https://print-1.prague.example");
	cr_expect_str_eq(locations_address(l, 0, 1), "https://print-2.prague.example:8443");
	cr_expect_str_eq(locations_id(l, 1), "Default");
	cr_expect_str_eq(locations_name(l, 1), "Public server");
	cr_expect_eq(locations_address_count(l, 1), 1);
	cr_expect_str_eq(locations_address(l, 1, 0), "https://print.example.com");
	cr_expect_str_eq(locations_current(l), "prague");
	cr_expect_eq(locations_find(l, "prague"), 0);
	cr_expect_eq(locations_find(l, "Default"), 1);
	cr_expect_eq(locations_find(l, "default"), -1);
	cr_expect_eq(locations_find(l, ""), -1);
	cr_expect_eq(locations_find(l, NULL), -1);
	/* out of range asks get nothing, not a crash */
	cr_expect_null(locations_id(l, 2));
	cr_expect_null(locations_name(l, 2));
	cr_expect_eq(locations_address_count(l, 2), 0);
	cr_expect_null(locations_address(l, 0, 2));
	cr_expect_null(locations_address(l, 2, 0));
	locations_free(l);
	locations_free(NULL);
}

Test(locations_parse, name_defaults_to_id_and_no_current)
{
	char err[ERR_CAP];
	struct locations *l = parse_sq("{'locations':[" LOC("brno") "]}", err);

	cr_assert_not_null(l, "%s", err);
	cr_expect_str_eq(locations_name(l, 0), "brno");
	cr_expect_null(locations_current(l));
	locations_free(l);
}

/* A file with n locations of one address each, ids "l0".."l{n-1}"; each with naddr addresses. */
static char *file_build(size_t n, size_t naddr, const char *id0, const char *name0,
			const char *addr0)
{
	json_t *list = json_array(), *doc;
	char *text;

	for (size_t i = 0; i < n; i++) {
		json_t *loc = json_object(), *addrs = json_array();
		char id[24];

		snprintf(id, sizeof(id), "l%zu", i);
		json_object_set_new(loc, "id", json_string(i == 0 && id0 ? id0 : id));
		if (i == 0 && name0)
			json_object_set_new(loc, "name", json_string(name0));
		for (size_t a = 0; a < naddr; a++)
			json_array_append_new(
				addrs,
				json_string(i == 0 && a == 0 && addr0 ? addr0 : "https://h"));
		json_object_set_new(loc, "addresses", addrs);
		json_array_append_new(list, loc);
	}
	doc = json_pack("{s:o}", "locations", list);
	text = json_dumps(doc, 0);
	cr_assert_not_null(text);
	json_decref(doc);
	return text;
}

struct limit_case {
	size_t n, naddr, id_len, name_len, url_len; /* 0: the default */
	const char *err;			    /* NULL: accepted */
};

static const struct limit_case limits[] = {
	{LOCATIONS_MAX, 1, 0, 0, 0, NULL},
	{LOCATIONS_MAX + 1, 1, 0, 0, 0, "t: locations: more than 64"},
	{1, LOCATIONS_ADDR_MAX, 0, 0, 0, NULL},
	{1, LOCATIONS_ADDR_MAX + 1, 0, 0, 0, "t: locations[0].addresses: more than 16"},
	{1, 1, LOCATIONS_ID_MAX, 0, 0, NULL},
	{1, 1, LOCATIONS_ID_MAX + 1, 0, 0, "t: locations[0].id: longer than 63 bytes"},
	{1, 1, 0, LOCATIONS_NAME_MAX, 0, NULL},
	{1, 1, 0, LOCATIONS_NAME_MAX + 1, 0, "t: locations[0].name: longer than 127 bytes"},
	{1, 1, 0, 0, LOCATIONS_URL_MAX, NULL},
	{1, 1, 0, 0, LOCATIONS_URL_MAX + 1, "t: locations[0].addresses[0]: longer than 511 bytes"},
};

Test(locations_parse, limits)
{
	char err[ERR_CAP], id[LOCATIONS_ID_MAX + 2], name[LOCATIONS_NAME_MAX + 2];
	char url[LOCATIONS_URL_MAX + 2];

	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		const struct limit_case *c = &limits[i];
		struct locations *l;
		char *text;

		memset(id, 'i', c->id_len);
		id[c->id_len] = '\0';
		/* a name is counted in bytes: two-byte characters, then one more byte if odd */
		for (size_t b = 0; b + 1 < c->name_len; b += 2)
			memcpy(name + b, "\xc3\xa9", 2);
		name[c->name_len - (c->name_len % 2)] = 'n';
		name[c->name_len] = '\0';
		/* "https://" and a host label of 'h' and dots, as long as asked */
		memcpy(url, "https://", 8);
		for (size_t b = 8; b < c->url_len; b++)
			url[b] = (b - 8) % 60 == 59 ? '.' : 'h';
		url[c->url_len] = '\0';
		text = file_build(c->n, c->naddr, c->id_len ? id : NULL, c->name_len ? name : NULL,
				  c->url_len ? url : NULL);
		l = locations_parse(text, "t", err, sizeof(err));
		if (!c->err) {
			cr_expect_not_null(l, "case %zu: %s", i, err);
			cr_expect_eq(locations_count(l), c->n, "case %zu", i);
			cr_expect_eq(locations_address_count(l, 0), c->naddr, "case %zu", i);
			if (c->id_len)
				cr_expect_str_eq(locations_id(l, 0), id, "case %zu", i);
			if (c->name_len)
				cr_expect_str_eq(locations_name(l, 0), name, "case %zu", i);
			if (c->url_len)
				cr_expect_str_eq(locations_address(l, 0, 0), url, "case %zu", i);
		} else {
			cr_expect_null(l, "case %zu: accepted", i);
			cr_expect_str_eq(err, c->err, "case %zu: %s", i, err);
		}
		locations_free(l);
		free(text);
	}
}

Test(locations_parse, error_buffer_is_respected)
{
	char err[8];
	struct locations *l;

	memset(err, 'x', sizeof(err));
	l = locations_parse("[]", "a-long-file-name", err, sizeof(err));
	cr_expect_null(l);
	cr_expect_str_eq(err, "a-long-");
	cr_expect_null(locations_parse("[]", "t", NULL, 0));
	cr_expect_null(locations_parse(NULL, "t", err, sizeof(err)));
	cr_expect_str_eq(err, "t: no t");
}

/* The plan fixtures: prague is current, brno and Default are there too. */
#define PRAGUE_BRNO_DEFAULT "'locations':[" LOC("prague") "," LOC("Default") "," LOC("brno") "]"

struct plan_case {
	const char *json;
	const char *override;
	int n;
	size_t order[2];
};

static const struct plan_case plans[] = {
	{"{'current':'prague'," PRAGUE_BRNO_DEFAULT "}", NULL, 2, {0, 1}},
	{"{'current':'prague'," PRAGUE_BRNO_DEFAULT "}", "", 2, {0, 1}},
	{"{'current':'prague'," PRAGUE_BRNO_DEFAULT "}", "brno", 2, {2, 1}},
	{"{'current':'prague'," PRAGUE_BRNO_DEFAULT "}", "prague", 2, {0, 1}},
	{"{'current':'prague'," PRAGUE_BRNO_DEFAULT "}", "Default", 1, {1, 0}},
	{"{'current':'prague'," PRAGUE_BRNO_DEFAULT "}", "nowhere", -1, {0, 0}},
	{"{'current':'prague'," PRAGUE_BRNO_DEFAULT "}", "Brno", -1, {0, 0}},
	{"{'current':'Default'," PRAGUE_BRNO_DEFAULT "}", NULL, 1, {1, 0}},
	{"{'current':'Default'," PRAGUE_BRNO_DEFAULT "}", "brno", 2, {2, 1}},
	{"{" PRAGUE_BRNO_DEFAULT "}", NULL, 1, {1, 0}},
	{"{" PRAGUE_BRNO_DEFAULT "}", "prague", 2, {0, 1}},
	{"{'current':'b','locations':[" LOC("a") "," LOC("b") "]}", NULL, 1, {1, 0}},
	{"{'locations':[" LOC("a") "," LOC("b") "]}", NULL, 0, {0, 0}},
	{"{'locations':[" LOC("a") "," LOC("b") "]}", "", 0, {0, 0}},
	{"{'locations':[" LOC("a") "," LOC("b") "]}", "a", 1, {0, 0}},
	{"{'locations':[" LOC("a") "," LOC("b") "]}", "c", -1, {0, 0}},
	{"{'locations':[" LOC("default") "]}", NULL, 0, {0, 0}}, /* the id is exact */
};

Test(locations_plan, table)
{
	char err[ERR_CAP];

	for (size_t i = 0; i < sizeof(plans) / sizeof(plans[0]); i++) {
		const struct plan_case *c = &plans[i];
		struct locations *l = parse_sq(c->json, err);
		size_t order[2] = {99, 99};
		int n;

		cr_assert_not_null(l, "case %zu: %s", i, err);
		n = locations_plan(l, c->override, order);
		cr_expect_eq(n, c->n, "case %zu", i);
		for (int k = 0; k < n && k < 2; k++)
			cr_expect_eq(order[k], c->order[k], "case %zu, entry %d", i, k);
		/* nothing is written past what is returned */
		for (int k = n < 0 ? 0 : n; k < 2; k++)
			cr_expect_eq(order[k], 99, "case %zu, entry %d", i, k);
		locations_free(l);
	}
}

static char *dir;

static void dir_make(void)
{
	dir = proc_tempdir("locations");
	cr_assert_not_null(dir);
}

static void dir_remove(void)
{
	if (dir)
		proc_rmtree(dir);
	free(dir);
	dir = NULL;
}

static char *path_of(const char *name)
{
	char *p;

	cr_assert_neq(asprintf(&p, "%s/%s", dir, name), -1);
	return p;
}

Test(locations_load, reads_a_file, .init = dir_make, .fini = dir_remove)
{
	char err[ERR_CAP], *json = dq(files[1].json), *path = path_of("locations.config");
	struct locations *l;

	cr_assert_eq(proc_write_file(dir, "locations.config", json), 0);
	l = locations_load(path, err, sizeof(err));
	cr_assert_not_null(l, "%s", err);
	cr_expect_eq(locations_count(l), 2);
	cr_expect_str_eq(locations_current(l), "prague");
	cr_expect_str_eq(locations_address(l, 0, 1), "https://print-2.prague.example:8443");
	locations_free(l);
	free(json);
	free(path);
}

Test(locations_load, errors_name_the_file, .init = dir_make, .fini = dir_remove)
{
	char err[ERR_CAP], want[ERR_CAP], *path = path_of("bad.config");
	char *json =
		dq("{'locations':[" LOC("a") ",{'id':'b','addresses':['https://h','http://x']}]}");

	cr_assert_eq(proc_write_file(dir, "bad.config", json), 0);
	cr_expect_null(locations_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: locations[1].addresses[1]: not an https URL: http://x",
		 path);
	cr_expect_str_eq(err, want);
	free(json);
	free(path);
}

Test(locations_load, missing_file, .init = dir_make, .fini = dir_remove)
{
	char err[ERR_CAP], want[ERR_CAP], *path = path_of("none.config");

	cr_expect_null(locations_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
	cr_expect_str_eq(err, want);
	free(path);
}

Test(locations_load, directory, .init = dir_make, .fini = dir_remove)
{
	char err[ERR_CAP], want[ERR_CAP];

	cr_expect_null(locations_load(dir, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: cannot read: Is a directory", dir);
	cr_expect_str_eq(err, want);
}

/* Writes ONE padded with spaces to exactly size bytes. */
static char *file_of_size(const char *name, size_t size)
{
	char *json = dq(ONE), *text = malloc(size + 1), *path = path_of(name);
	size_t len = strlen(json);

	cr_assert_not_null(text);
	cr_assert_geq(size, len);
	memcpy(text, json, len);
	memset(text + len, ' ', size - len);
	text[size] = '\0';
	cr_assert_eq(proc_write_file(dir, name, text), 0);
	free(text);
	free(json);
	return path;
}

Test(locations_load, size_cap, .init = dir_make, .fini = dir_remove)
{
	char err[ERR_CAP], want[ERR_CAP], *at = file_of_size("at.config", 1024 * 1024);
	char *over = file_of_size("over.config", 1024 * 1024 + 1);
	struct locations *l;

	l = locations_load(at, err, sizeof(err));
	cr_expect_not_null(l, "%s", err);
	locations_free(l);
	cr_expect_null(locations_load(over, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: larger than 1 MiB", over);
	cr_expect_str_eq(err, want);
	free(at);
	free(over);
}

Test(locations_load, nul_byte, .init = dir_make, .fini = dir_remove)
{
	char err[ERR_CAP], want[ERR_CAP], *json = dq(ONE), *path = path_of("nul.config");
	FILE *f = fopen(path, "w");

	/* a valid file, then a NUL, then garbage a NUL-stopped reader would never see */
	cr_assert_not_null(f);
	fputs(json, f);
	fputc('\0', f);
	fputs("garbage", f);
	cr_assert_eq(fclose(f), 0);
	cr_expect_null(locations_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: holds a NUL byte", path);
	cr_expect_str_eq(err, want);
	free(json);
	free(path);
}
