/* rkey: the Redis key names of the protocol and the scripts that use them. */
#ifndef FSG_PROTO_RKEY_H
#define FSG_PROTO_RKEY_H

#include <stddef.h>

#include "proto/err.h"

#define RKEY_PREFIX "fsg:"
#define RKEY_MAX 128   /* every key fits in this many bytes plus NUL */

/* ZSET of server ids, scored by heartbeat Unix ms. */
#define RKEY_POOL "fsg:pool"

/*
 * Each builder checks its NUL-terminated inputs (server ids with announce_server_id_check,
 * server job ids with jobid_check, owner hashes as 32 lowercase hex digits (PROTO_E_OWNER),
 * client job ids as UUIDs already in jobid_client_parse's lowercase form (PROTO_E_UUID),
 * addresses as IPv4/IPv6 text exactly as inet_ntop writes it, IPv4-mapped IPv6 refused, so
 * one address has one key (PROTO_E_ADDRESS)) and writes a NUL-terminated key into buf (cap at
 * least RKEY_MAX + 1); buf is untouched on error. A NULL input counts as empty.
 * Errors: PROTO_E_BUFFER and the check's own error.
 */
enum proto_err rkey_server(const char *server_id, char *buf, size_t cap);   /* fsg:server:{id} */
enum proto_err rkey_down(const char *server_id, char *buf, size_t cap);     /* fsg:down:{id} */
enum proto_err rkey_job(const char *job_id, char *buf, size_t cap);         /* fsg:job:{job-id} */
enum proto_err rkey_seq(const char *owner_hash, char *buf, size_t cap);     /* fsg:seq:{oh} */
enum proto_err rkey_held(const char *owner_hash, char *buf, size_t cap);    /* fsg:held:{oh} */
/* fsg:idem:{oh}:{client-job-id} */
enum proto_err rkey_idem(const char *owner_hash, const char *client_job_id, char *buf,
			 size_t cap);
/* fsg:authfail:addr:{ip} */
enum proto_err rkey_authfail_addr(const char *ip, char *buf, size_t cap);
/* fsg:authfail:owner:{oh} */
enum proto_err rkey_authfail_owner(const char *owner_hash, char *buf, size_t cap);

/*
 * Lua for the per-user sequence: KEYS[1] = fsg:seq:{oh}, ARGV[1] = the caller's clock in
 * Unix microseconds. Stores and returns max(stored + 1, ARGV[1]): strictly increasing per user
 * whatever the gateways' clocks say, and close to wall-clock time so a gateway that cannot
 * reach Redis can fall back to its own clock and still sort sensibly. Run with EVALSHA,
 * falling back to EVAL on NOSCRIPT.
 * ARGV[1] must be a plain decimal (no sign, space, exponent, hex or leading zero) up to
 * 2^53 - 1, else the error reply "bad clock": Lua's tonumber() alone takes "nan", " 5", "0x10"
 * and "5.5", and NaN passes every comparison. A stored value that is not such a number, or is
 * 2^53 - 1 (past which doubles stop counting by one), gives the error reply "bad sequence".
 */
#define RKEY_SEQ_NEXT_LUA                                                                  \
	"local function num(s) "                                                            \
	"if type(s) ~= 'string' or #s > 16 then return nil end "                            \
	"if s ~= '0' and not string.match(s, '^[1-9][0-9]*$') then return nil end "         \
	"local n = tonumber(s) "                                                            \
	"if n > 9007199254740991 then return nil end "                                      \
	"return n end "                                                                     \
	"local n = num(ARGV[1]) "                                                           \
	"if not n then return redis.error_reply('bad clock') end "                          \
	"local c = num(redis.call('GET', KEYS[1]) or '0') "                                 \
	"if not c or c >= 9007199254740991 then return redis.error_reply('bad sequence') end " \
	"if c + 1 > n then n = c + 1 end "                                                  \
	"redis.call('SET', KEYS[1], string.format('%d', n)) "                               \
	"return n"

#endif
