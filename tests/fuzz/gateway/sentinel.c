/* Fuzz target: common/sentinel.c on a sentinel list, then a master address, with round trips. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sentinel.h"

#define TEXT_MAX 8192

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void entry_sane(const struct sentinel_addr *a)
{
	if (strnlen(a->host, sizeof(a->host)) == sizeof(a->host) || !a->host[0] || a->port < 1 ||
	    a->port > 65535)
		__builtin_trap();
}

/* Parsed entries written back as a list parse to the same entries. */
static void list_round_trip(const struct sentinel_addr *a, size_t n, enum sentinel_hosts hosts)
{
	struct sentinel_addr b[SENTINEL_MAX];
	char text[SENTINEL_MAX * (SENTINEL_HOST_MAX + 10)];
	size_t len = 0, m = 0;

	for (size_t i = 0; i < n; i++) {
		entry_sane(&a[i]);
		len += (size_t)snprintf(text + len, sizeof(text) - len,
					strchr(a[i].host, ':') ? "%s[%s]:%d" : "%s%s:%d",
					i ? "," : "", a[i].host, a[i].port);
	}
	text[len] = '\0';
	if (sentinel_list_parse(text, hosts, b, SENTINEL_MAX, &m) != SENTINEL_OK || m != n)
		__builtin_trap();
	for (size_t i = 0; i < n; i++)
		if (strcmp(a[i].host, b[i].host) || a[i].port != b[i].port)
			__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	const char *nl = memchr(s, '\n', size);
	size_t list_len = nl ? (size_t)(nl - s) : size;
	struct sentinel_addr a[SENTINEL_MAX], one;
	char *text;
	size_t n = 0;

	/* first line: a redis_sentinels value (a config string: NUL-terminated) */
	if (list_len > TEXT_MAX)
		return 0;
	text = malloc(list_len + 1);
	if (!text)
		return 0;
	memcpy(text, s, list_len);
	text[list_len] = '\0';
	for (int hosts = SENTINEL_IP_ONLY; hosts <= SENTINEL_NAMES_OK; hosts++)
		if (sentinel_list_parse(text, (enum sentinel_hosts)hosts, a, SENTINEL_MAX, &n) ==
		    SENTINEL_OK)
			list_round_trip(a, n, (enum sentinel_hosts)hosts);
	free(text);

	/* the rest: a sentinel's answer, host and port split at the first space (not terminated) */
	if (nl) {
		const char *h = nl + 1, *sp;
		size_t rest = size - list_len - 1;

		sp = memchr(h, ' ', rest);
		if (sp && sentinel_addr_parse(h, (size_t)(sp - h), sp + 1,
					      rest - (size_t)(sp - h) - 1, SENTINEL_NAMES_OK,
					      &one) == SENTINEL_OK)
			entry_sane(&one);
	}
	return 0;
}
