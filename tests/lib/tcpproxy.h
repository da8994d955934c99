/* tcpproxy: a TCP relay on 127.0.0.1 that a test controls, to cut connections and move targets. */
#ifndef FSG_TEST_TCPPROXY_H
#define FSG_TEST_TCPPROXY_H

#include <stdint.h>

struct tcpproxy;

/*
 * Listens on a free 127.0.0.1 port and relays each accepted connection (up to 64 at once) to
 * 127.0.0.1:target_port, from its own thread. A target that refuses gets the client reset.
 * Returns the proxy (free it with tcpproxy_free), or NULL on failure.
 */
struct tcpproxy *tcpproxy_start(int target_port);

/* The port it listens on. */
int tcpproxy_port(const struct tcpproxy *p);

/* Connections accepted from now on go to 127.0.0.1:target_port; open ones keep theirs. */
void tcpproxy_set_target(struct tcpproxy *p, int target_port);

/* Bytes written to the target (client -> target), over all connections so far. */
uint64_t tcpproxy_up_bytes(struct tcpproxy *p);

/* Bytes written to clients (target -> client), over all connections so far. */
uint64_t tcpproxy_down_bytes(struct tcpproxy *p);

/*
 * Once `bytes` more client -> target bytes are written (counted from this call, over all
 * connections; exactly that many, the write that reaches the count is shortened), resets every
 * open connection on both sides (SO_LINGER 0 close), once. Later connections work normally.
 * A new call replaces a pending one.
 */
void tcpproxy_cut_after(struct tcpproxy *p, uint64_t bytes);

/* Cuts done so far. */
int tcpproxy_cuts(struct tcpproxy *p);

/*
 * down != 0: open connections are reset and new ones are accepted and reset at once (the
 * address answers, but nothing gets through). down == 0: normal relaying again.
 */
void tcpproxy_set_down(struct tcpproxy *p, int down);

/* Connections accepted so far (including those reset while down). */
unsigned tcpproxy_connections(struct tcpproxy *p);

/* Stops the thread and closes every socket. Accepts NULL. */
void tcpproxy_free(struct tcpproxy *p);

#endif
