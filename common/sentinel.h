/* sentinel: Redis Sentinel addresses and replies, read alike by the gateway and the server. */
#ifndef FSG_COMMON_SENTINEL_H
#define FSG_COMMON_SENTINEL_H

#include <stddef.h>

#define SENTINEL_MAX 16         /* sentinels in one list */
#define SENTINEL_HOST_MAX 253   /* longest host: a DNS name's text form */

enum sentinel_err {
	SENTINEL_OK = 0,
	SENTINEL_E_EMPTY,     /* an entry of the list is empty */
	SENTINEL_E_TOO_MANY,  /* more than the caller's room (SENTINEL_MAX) */
	SENTINEL_E_HOST,      /* not an IP literal (nor a host name, where names are allowed) */
	SENTINEL_E_PORT,      /* missing, not decimal without leading zeros, or out of 1..65535 */
};

/* A static description of rc. */
const char *sentinel_strerror(enum sentinel_err rc);

/* Whether a host may be a DNS name: only where lookups may block (never in an event loop). */
enum sentinel_hosts {
	SENTINEL_IP_ONLY,     /* dotted-quad IPv4 or IPv6 */
	SENTINEL_NAMES_OK,    /* also a host name of letters, digits, '-' and '.' */
};

struct sentinel_addr {
	char host[SENTINEL_HOST_MAX + 1];  /* IPv6 without brackets */
	int port;
};

/*
 * Parses the comma-separated "host:port" list of a redis_sentinels setting into out (room for
 * cap), IPv6 written "[addr]:port", blanks around entries ignored. A text of blanks only (or
 * NULL) is an empty list: *n = 0, no Sentinel. Returns SENTINEL_OK with *n entries, or the
 * first problem (out and *n are then unspecified).
 */
enum sentinel_err sentinel_list_parse(const char *text, enum sentinel_hosts hosts,
				      struct sentinel_addr *out, size_t cap, size_t *n);

/*
 * Checks the two strings of a SENTINEL get-master-addr-by-name reply (host without brackets,
 * port in decimal) and writes them to *out on success.
 */
enum sentinel_err sentinel_addr_parse(const char *host, size_t host_len, const char *port,
				      size_t port_len, enum sentinel_hosts hosts,
				      struct sentinel_addr *out);

/* 1 when the first element of a ROLE reply names a master, else 0 (replica, sentinel). */
int sentinel_role_is_master(const char *role, size_t len);

/*
 * 1 when a Redis error reply says the node is a read-only replica: the master it was has
 * been demoted by a failover, so the sentinels must be asked again.
 */
int sentinel_error_is_readonly(const char *str, size_t len);

#endif
