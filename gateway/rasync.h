/*
 * rasync: Redis from a worker's loop: async hiredis with a deadline on every command.
 * hiredis writes with write(2): the process must ignore SIGPIPE.
 */
#ifndef FSG_GATEWAY_RASYNC_H
#define FSG_GATEWAY_RASYNC_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "gateway/loop.h"

struct rasync_config {
	const char *host;        /* an IP address: no DNS lookup ever happens in the loop */
	int port;
	const char *password;    /* NULL: no AUTH */
	int64_t timeout_ms;      /* deadline of each command and of connecting (default 200) */
	int64_t retry_ms;        /* wait before reconnecting after a failure (default 500) */
	/*
	 * Redis Sentinel: "ip:port,[ipv6]:port" (common/sentinel.h, IP literals only). NULL or
	 * blank: none, host and port are Redis itself; else host and port are not used.
	 */
	const char *sentinels;
	const char *master_name;       /* the master's name at the sentinels (needed with them) */
	const char *sentinel_password; /* NULL: no AUTH to the sentinels */
};

struct rasync;

/*
 * reply is NULL when the command failed; err then says why, one of the static strings
 * "timeout" (deadline passed: the connection is dropped and made again), "disconnected"
 * (connection lost or dropped) or "closed" (rasync_free). A Redis error reply is a reply, not
 * a failure (with sentinels, a -READONLY one also drops the connection to ask them). reply
 * (when not NULL) belongs to hiredis: valid during the call only.
 * Called exactly once per accepted command, never from inside rasync_command itself. It may
 * call rasync_command and rasync_free.
 */
typedef void rasync_reply_fn(void *arg, redisReply *reply, const char *err);

/*
 * Starts connecting in the background on l, reconnecting after retry_ms whenever the connection
 * fails, times out or is lost. With sentinels, each connection first asks them in turn (the last
 * one that answered first) for the master's address (SENTINEL get-master-addr-by-name), then
 * connects there, AUTHs and checks with ROLE that it is the master; a lost or timed-out
 * connection and a -READONLY error reply (the node was demoted) make it ask again. Connecting,
 * asking and the handshake share one timeout_ms deadline per connection. Returns NULL on bad
 * config (host not an IPv4/IPv6 literal, port outside 1..65535, a bad sentinel list or no
 * master name with one, negative or over a day ms) or no memory.
 */
struct rasync *rasync_new(struct loop *l, const struct rasync_config *cfg);

/*
 * Sends one command (argv form; argvlen NULL: strlen). Returns 0 when accepted (fn will be
 * called), -1 when refused at once: not connected (also while AUTH is in flight and after a
 * timeout until the reconnect), argc < 1, or (P)SUBSCRIBE/(P)UNSUBSCRIBE/MONITOR (one command,
 * one reply only). Callers use their fallback without waiting.
 */
int rasync_command(struct rasync *r, rasync_reply_fn *fn, void *arg, int argc,
		   const char **argv, const size_t *argvlen);

/* Non-zero while connected (and authenticated; with sentinels: to the master). */
int rasync_connected(const struct rasync *r);

/*
 * Fails every pending command (callbacks run with "closed"), disconnects, frees. Accepts NULL.
 * From inside a reply callback the free happens when that callback's dispatch unwinds. Free it
 * before its loop.
 */
void rasync_free(struct rasync *r);

#endif
