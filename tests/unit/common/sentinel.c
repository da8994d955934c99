/* Tests common/sentinel.c: sentinel lists, master addresses, ROLE and READONLY replies. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sentinel.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
	const char *text;
	enum sentinel_hosts hosts;
	enum sentinel_err rc;
	size_t n;
	const char *host0;  /* first entry, when rc is SENTINEL_OK and n > 0 */
	int port0;
	const char *host_last;
	int port_last;
} lists[] = {
	{"", SENTINEL_IP_ONLY, SENTINEL_OK, 0, NULL, 0, NULL, 0},
	{NULL, SENTINEL_IP_ONLY, SENTINEL_OK, 0, NULL, 0, NULL, 0},
	{" \t ", SENTINEL_IP_ONLY, SENTINEL_OK, 0, NULL, 0, NULL, 0},
	{"127.0.0.1:26379", SENTINEL_IP_ONLY, SENTINEL_OK, 1, "127.0.0.1", 26379, "127.0.0.1",
	 26379},
	{"10.0.0.1:26379,10.0.0.2:26380,[::1]:1", SENTINEL_IP_ONLY, SENTINEL_OK, 3, "10.0.0.1",
	 26379, "::1", 1},
	{" 10.0.0.1:26379 ,\t10.0.0.2:65535 ", SENTINEL_IP_ONLY, SENTINEL_OK, 2, "10.0.0.1", 26379,
	 "10.0.0.2", 65535},
	{"[2001:db8::5]:26379", SENTINEL_IP_ONLY, SENTINEL_OK, 1, "2001:db8::5", 26379,
	 "2001:db8::5", 26379},
	{"[::ffff:10.0.0.1]:26379", SENTINEL_IP_ONLY, SENTINEL_OK, 1, "::ffff:10.0.0.1", 26379,
	 "::ffff:10.0.0.1", 26379},
	{"sentinel-1.example.net:26379", SENTINEL_NAMES_OK, SENTINEL_OK, 1,
	 "sentinel-1.example.net", 26379, "sentinel-1.example.net", 26379},
	{"s1:26379,10.0.0.2:26379", SENTINEL_NAMES_OK, SENTINEL_OK, 2, "s1", 26379, "10.0.0.2",
	 26379},
	/* names are refused where lookups would block the loop */
	{"sentinel-1.example.net:26379", SENTINEL_IP_ONLY, SENTINEL_E_HOST, 0, NULL, 0, NULL, 0},
	{"localhost:26379", SENTINEL_IP_ONLY, SENTINEL_E_HOST, 0, NULL, 0, NULL, 0},
	{"127.1:26379", SENTINEL_IP_ONLY, SENTINEL_E_HOST, 0, NULL, 0, NULL, 0},
	{"0177.0.0.1:26379", SENTINEL_IP_ONLY, SENTINEL_E_HOST, 0, NULL, 0, NULL, 0},
	{"::1:26379", SENTINEL_IP_ONLY, SENTINEL_E_HOST, 0, NULL, 0, NULL, 0},
	{"::1:26379", SENTINEL_NAMES_OK, SENTINEL_E_HOST, 0, NULL, 0, NULL, 0},
	{"[10.0.0.1]:26379", SENTINEL_IP_ONLY, SENTINEL_E_HOST, 0, NULL, 0, NULL, 0},
	{"[fe80::1%lo]:26379", SENTINEL_NAMES_OK, SENTINEL_E_HOST, 0, NULL, 0, NULL, 0},
	{"[::1:26379", SENTINEL_IP_ONLY, SENTINEL_E_HOST, 0, NULL, 0, NULL, 0},
	{"[::1]26379", SENTINEL_IP_ONLY, SENTINEL_E_PORT, 0, NULL, 0, NULL, 0},
	{"[::1]", SENTINEL_IP_ONLY, SENTINEL_E_PORT, 0, NULL, 0, NULL, 0},
	{":26379", SENTINEL_NAMES_OK, SENTINEL_E_HOST, 0, NULL, 0, NULL, 0},
	{"-s1:26379", SENTINEL_NAMES_OK, SENTINEL_E_HOST, 0, NULL, 0, NULL, 0},
	{"s1.:26379", SENTINEL_NAMES_OK, SENTINEL_E_HOST, 0, NULL, 0, NULL, 0},
	{"s1..x:26379", SENTINEL_NAMES_OK, SENTINEL_E_HOST, 0, NULL, 0, NULL, 0},
	{"s_1:26379", SENTINEL_NAMES_OK, SENTINEL_E_HOST, 0, NULL, 0, NULL, 0},
	{"s 1:26379", SENTINEL_NAMES_OK, SENTINEL_E_HOST, 0, NULL, 0, NULL, 0},
	{"10.0.0.1", SENTINEL_IP_ONLY, SENTINEL_E_PORT, 0, NULL, 0, NULL, 0},
	{"10.0.0.1:", SENTINEL_IP_ONLY, SENTINEL_E_PORT, 0, NULL, 0, NULL, 0},
	{"10.0.0.1:0", SENTINEL_IP_ONLY, SENTINEL_E_PORT, 0, NULL, 0, NULL, 0},
	{"10.0.0.1:026379", SENTINEL_IP_ONLY, SENTINEL_E_PORT, 0, NULL, 0, NULL, 0},
	{"10.0.0.1:65536", SENTINEL_IP_ONLY, SENTINEL_E_PORT, 0, NULL, 0, NULL, 0},
	{"10.0.0.1:+1", SENTINEL_IP_ONLY, SENTINEL_E_PORT, 0, NULL, 0, NULL, 0},
	{"10.0.0.1:99999999999", SENTINEL_IP_ONLY, SENTINEL_E_PORT, 0, NULL, 0, NULL, 0},
	{"10.0.0.1:26379 x", SENTINEL_IP_ONLY, SENTINEL_E_PORT, 0, NULL, 0, NULL, 0},
	{"10.0.0.1:26379,", SENTINEL_IP_ONLY, SENTINEL_E_EMPTY, 0, NULL, 0, NULL, 0},
	{",10.0.0.1:26379", SENTINEL_IP_ONLY, SENTINEL_E_EMPTY, 0, NULL, 0, NULL, 0},
	{"10.0.0.1:26379, ,10.0.0.2:26379", SENTINEL_IP_ONLY, SENTINEL_E_EMPTY, 0, NULL, 0, NULL,
	 0},
};

Test(sentinel, list_parse_table)
{
	for (size_t i = 0; i < N(lists); i++) {
		struct sentinel_addr out[SENTINEL_MAX];
		size_t n = 99;
		enum sentinel_err rc = sentinel_list_parse(lists[i].text, lists[i].hosts, out,
							   SENTINEL_MAX, &n);

		cr_assert_eq(rc, lists[i].rc, "\"%s\": %s, want %s", lists[i].text ? lists[i].text
			     : "(null)", sentinel_strerror(rc), sentinel_strerror(lists[i].rc));
		if (rc)
			continue;
		cr_assert_eq(n, lists[i].n, "\"%s\": %zu entries", lists[i].text, n);
		if (!n)
			continue;
		cr_assert_str_eq(out[0].host, lists[i].host0, "\"%s\"", lists[i].text);
		cr_assert_eq(out[0].port, lists[i].port0, "\"%s\"", lists[i].text);
		cr_assert_str_eq(out[n - 1].host, lists[i].host_last, "\"%s\"", lists[i].text);
		cr_assert_eq(out[n - 1].port, lists[i].port_last, "\"%s\"", lists[i].text);
	}
}

Test(sentinel, list_parse_room)
{
	struct sentinel_addr out[SENTINEL_MAX];
	char text[SENTINEL_MAX * 24 + 32] = "";
	size_t n = 0;

	for (int i = 0; i < SENTINEL_MAX; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "%s10.0.0.%d:%d",
			 i ? "," : "", i + 1, 26000 + i);
	cr_assert_eq(sentinel_list_parse(text, SENTINEL_IP_ONLY, out, SENTINEL_MAX, &n),
		     SENTINEL_OK);
	cr_assert_eq(n, SENTINEL_MAX);
	cr_assert_str_eq(out[SENTINEL_MAX - 1].host, "10.0.0.16");
	cr_assert_eq(out[SENTINEL_MAX - 1].port, 26015);
	strcat(text, ",10.0.0.99:1");
	cr_assert_eq(sentinel_list_parse(text, SENTINEL_IP_ONLY, out, SENTINEL_MAX, &n),
		     SENTINEL_E_TOO_MANY);
	/* the caller's room, not SENTINEL_MAX, is the limit */
	cr_assert_eq(sentinel_list_parse("10.0.0.1:1,10.0.0.2:2", SENTINEL_IP_ONLY, out, 1, &n),
		     SENTINEL_E_TOO_MANY);
}

Test(sentinel, list_parse_longest_name)
{
	struct sentinel_addr out[1];
	char name[SENTINEL_HOST_MAX + 2], text[SENTINEL_HOST_MAX + 16];
	size_t n = 0;

	memset(name, 'a', sizeof(name));
	for (int i = 63; i < SENTINEL_HOST_MAX; i += 64)
		name[i] = '.';
	name[SENTINEL_HOST_MAX] = '\0';
	snprintf(text, sizeof(text), "%s:26379", name);
	cr_assert_eq(sentinel_list_parse(text, SENTINEL_NAMES_OK, out, 1, &n), SENTINEL_OK);
	cr_assert_str_eq(out[0].host, name);
	name[SENTINEL_HOST_MAX] = 'a';
	name[SENTINEL_HOST_MAX + 1] = '\0';
	snprintf(text, sizeof(text), "%s:26379", name);
	cr_assert_eq(sentinel_list_parse(text, SENTINEL_NAMES_OK, out, 1, &n), SENTINEL_E_HOST);
}

static const struct {
	const char *host;
	const char *port;
	enum sentinel_hosts hosts;
	enum sentinel_err rc;
} answers[] = {
	{"127.0.0.1", "6379", SENTINEL_IP_ONLY, SENTINEL_OK},
	{"::1", "6379", SENTINEL_IP_ONLY, SENTINEL_OK},
	{"redis-1.dc", "6379", SENTINEL_NAMES_OK, SENTINEL_OK},
	{"redis-1.dc", "6379", SENTINEL_IP_ONLY, SENTINEL_E_HOST},
	{"[::1]", "6379", SENTINEL_IP_ONLY, SENTINEL_E_HOST},
	{"", "6379", SENTINEL_NAMES_OK, SENTINEL_E_HOST},
	{"127.0.0.1", "", SENTINEL_IP_ONLY, SENTINEL_E_PORT},
	{"127.0.0.1", "0", SENTINEL_IP_ONLY, SENTINEL_E_PORT},
	{"127.0.0.1", "65536", SENTINEL_IP_ONLY, SENTINEL_E_PORT},
	{"127.0.0.1", "6379 ", SENTINEL_IP_ONLY, SENTINEL_E_PORT},
	{"127.0.0.1", "-1", SENTINEL_IP_ONLY, SENTINEL_E_PORT},
	{"1111:2222:3333:4444:5555:6666:7777:8888:9999", "1", SENTINEL_IP_ONLY, SENTINEL_E_HOST},
	{NULL, "6379", SENTINEL_IP_ONLY, SENTINEL_E_HOST},
	{"127.0.0.1", NULL, SENTINEL_IP_ONLY, SENTINEL_E_PORT},
};

Test(sentinel, addr_parse_table)
{
	for (size_t i = 0; i < N(answers); i++) {
		struct sentinel_addr a = {"unchanged", 7};
		const char *h = answers[i].host, *p = answers[i].port;
		enum sentinel_err rc = sentinel_addr_parse(h, h ? strlen(h) : 0, p,
							   p ? strlen(p) : 0, answers[i].hosts, &a);

		cr_assert_eq(rc, answers[i].rc, "%s %s: %s", h, p, sentinel_strerror(rc));
		if (rc) {
			cr_assert_str_eq(a.host, "unchanged", "written on failure");
			cr_assert_eq(a.port, 7, "written on failure");
			continue;
		}
		cr_assert_str_eq(a.host, h);
		cr_assert_eq(a.port, atoi(p));
	}
}

Test(sentinel, addr_parse_is_length_bound)
{
	struct sentinel_addr a;

	/* reply strings need not be NUL-terminated where the length ends */
	cr_assert_eq(sentinel_addr_parse("10.0.0.1XYZ", 8, "6379999", 4, SENTINEL_IP_ONLY, &a),
		     SENTINEL_OK);
	cr_assert_str_eq(a.host, "10.0.0.1");
	cr_assert_eq(a.port, 6379);
	cr_assert_eq(sentinel_addr_parse("10.0.0.1\0x", 10, "1", 1, SENTINEL_NAMES_OK, &a),
		     SENTINEL_E_HOST);
}

Test(sentinel, role_and_readonly)
{
	cr_assert(sentinel_role_is_master("master", 6));
	cr_assert_not(sentinel_role_is_master("slave", 5));
	cr_assert_not(sentinel_role_is_master("sentinel", 8));
	cr_assert_not(sentinel_role_is_master("masterX", 7));
	cr_assert_not(sentinel_role_is_master("master", 5));
	cr_assert_not(sentinel_role_is_master(NULL, 0));
	cr_assert(sentinel_error_is_readonly("READONLY You can't write against a read only "
					     "replica.", 53));
	cr_assert(sentinel_error_is_readonly("READONLY", 8));
	cr_assert_not(sentinel_error_is_readonly("READONLYX", 9));
	cr_assert_not(sentinel_error_is_readonly("ERR READONLY", 12));
	cr_assert_not(sentinel_error_is_readonly("READ", 4));
	cr_assert_not(sentinel_error_is_readonly(NULL, 0));
	for (int rc = SENTINEL_OK; rc <= SENTINEL_E_PORT; rc++)
		cr_assert(sentinel_strerror((enum sentinel_err)rc)[0]);
}
