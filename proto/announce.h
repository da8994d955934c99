/* announce: a data-center server's entry in the Redis pool, as written and as read back. */
#ifndef FSG_PROTO_ANNOUNCE_H
#define FSG_PROTO_ANNOUNCE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/err.h"
#include "proto/header.h"

#define SERVER_ID_MAX 32        /* server id: 1..32 of [a-z0-9-], not starting or ending in '-' */
#define ANNOUNCE_URL_MAX 255
#define ANNOUNCE_CAPACITY_MAX 1000000
#define ANNOUNCE_PROTO "1"      /* protocol version a server speaks */
#define ANNOUNCE_FIELDS 8       /* fields in the hash */

/* Field names of the fsg:server:{id} hash. */
#define ANNOUNCE_F_ID "id"
#define ANNOUNCE_F_URL "url"
#define ANNOUNCE_F_CAPACITY "capacity"
#define ANNOUNCE_F_ACTIVE "active"
#define ANNOUNCE_F_FREE "free_bytes"
#define ANNOUNCE_F_DRAINING "draining"
#define ANNOUNCE_F_HEARTBEAT "heartbeat_ms"
#define ANNOUNCE_F_PROTO "proto"

struct announce {
	char id[SERVER_ID_MAX + 1];
	char url[ANNOUNCE_URL_MAX + 1]; /* base URL; jobs live at url + "/v1/jobs" */
	uint32_t capacity;              /* most concurrent uploads, 1..ANNOUNCE_CAPACITY_MAX */
	uint32_t active;                /* uploads in progress now */
	uint64_t free_bytes;            /* spool bytes still free */
	int draining;                   /* 1: takes no new uploads */
	uint64_t heartbeat_ms;          /* Unix ms of the last heartbeat */
};

/* Checks a server id. Errors: PROTO_E_EMPTY, PROTO_E_TOO_LONG, PROTO_E_SERVER_ID. */
enum proto_err announce_server_id_check(const char *s, size_t len);

/*
 * Checks a server base URL: "http://" or "https://", a host (DNS name, dotted IPv4, or
 * bracketed IPv6), ":" and a port 1..65535, then optionally a path of unreserved characters and
 * '/' that does not end in '/' and has no empty, "." or ".." segment. No userinfo, query,
 * fragment or percent-encoding. A host whose last label is all digits (or "0x" and hex digits)
 * must be a dotted-quad IPv4 address, since resolvers read "127.1" or "0x7f.1" as addresses.
 * Errors: PROTO_E_TOO_LONG (above ANNOUNCE_URL_MAX), PROTO_E_ANNOUNCE_URL.
 */
enum proto_err announce_url_check(const char *s, size_t len);

/*
 * Parses the fields of an fsg:server:{id} hash (as HGETALL returns them, in any order). All
 * eight are required; each at most once; unknown fields are ignored so newer servers can add
 * some. Names compare exactly (case-sensitive). Numbers are plain decimals (num_parse_u64):
 * capacity 1..ANNOUNCE_CAPACITY_MAX, active up to UINT32_MAX (it may briefly exceed capacity),
 * heartbeat_ms up to 2^53 - 1; draining is "0" or "1"; proto must be ANNOUNCE_PROTO.
 * Errors: PROTO_E_ANNOUNCE_DUP, PROTO_E_SERVER_ID (any id failure), PROTO_E_ANNOUNCE_URL (any
 * url failure), PROTO_E_ANNOUNCE_VALUE, in field order, then PROTO_E_ANNOUNCE_MISSING.
 * On PROTO_OK writes *out.
 */
enum proto_err announce_parse(const struct proto_field *fields, size_t n, struct announce *out);

/* Text storage for announce_fields(): numbers rendered as decimal strings. */
struct announce_text {
	char capacity[12], active[12], free_bytes[24], draining[2], heartbeat_ms[24];
};

/*
 * Fills out[ANNOUNCE_FIELDS] with the name/value pairs for HSET, pointing into a and text
 * (which must outlive out). Checks a first, with the limits announce_parse applies.
 * Errors: PROTO_E_SERVER_ID, PROTO_E_ANNOUNCE_URL, PROTO_E_ANNOUNCE_VALUE.
 */
enum proto_err announce_fields(const struct announce *a, struct announce_text *text,
			       struct proto_field out[ANNOUNCE_FIELDS]);

#endif
