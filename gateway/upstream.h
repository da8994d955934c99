/* upstream: a curl multi handle driven by a worker's loop (socket API), and its transfers. */
#ifndef FSG_GATEWAY_UPSTREAM_H
#define FSG_GATEWAY_UPSTREAM_H

#include <curl/curl.h>

#include "gateway/loop.h"

struct upstream;

/*
 * Called once per transfer when curl finished it (result CURLE_OK or an error); the easy handle
 * is already removed from the multi and still belongs to the caller (free it or reuse it).
 * Runs from the loop (its fd or timer callback, after curl_multi_socket_action returned) or
 * from inside upstream_cancel / upstream_free, never from inside a curl callback: it may call
 * any upstream function, including upstream_free, and curl_easy_cleanup(easy).
 */
typedef void upstream_done_fn(void *arg, CURL *easy, CURLcode result);

struct upstream_config {
	long max_host_connections; /* CURLMOPT_MAX_HOST_CONNECTIONS; 0: no limit */
	long max_total_connections; /* CURLMOPT_MAX_TOTAL_CONNECTIONS; 0: no limit */
	long max_connects;          /* CURLMOPT_MAXCONNECTS: idle connections kept; 0: curl's */
};

/*
 * Creates the multi handle and wires CURLMOPT_SOCKETFUNCTION/TIMERFUNCTION to l (cfg NULL: all
 * zero). curl_global_init must have run. NULL on failure or a negative setting.
 */
struct upstream *upstream_new(struct loop *l, const struct upstream_config *cfg);

/*
 * Adds a configured easy handle; done(arg, easy, result) is called exactly once when it ends
 * (also when upstream_cancel or upstream_free ends it). Transfers are found by their CURL *
 * in a table of upstream's own: CURLOPT_PRIVATE stays free for the caller. Returns 0, or -1
 * (easy already added, allocation failure, upstream being freed, or called from inside a curl
 * callback, which libcurl refuses).
 */
int upstream_add(struct upstream *u, CURL *easy, upstream_done_fn *done, void *arg);

/*
 * Runs curl now for the transfers whose time has come (an unpause makes its transfer due at
 * once), instead of at the next turn: a relayed chunk then leaves in the turn it arrived.
 */
void upstream_run_due(struct upstream *u);

/*
 * Unpauses a transfer whose read callback returned CURL_READFUNC_PAUSE (or whose write callback
 * paused), from the loop's thread (curl_easy_pause is only legal from the thread driving the
 * multi). The transfer moves on in a later loop turn; when receiving was paused, curl may call
 * the write callback from inside this call with the data it held back. No-op for a handle that
 * is not in flight here.
 */
void upstream_unpause(struct upstream *u, CURL *easy);

/*
 * Ends a transfer now (removed from the multi); done is called with CURLE_ABORTED_BY_CALLBACK
 * before this returns. No-op for a handle that is not in flight here. Called from inside a curl
 * callback (a misuse: libcurl refuses to remove a handle there), the transfer ends when the
 * current loop callback returns instead.
 */
void upstream_cancel(struct upstream *u, CURL *easy);

/*
 * Ends every transfer (done called for each, CURLE_ABORTED_BY_CALLBACK), frees the multi and
 * its loop registrations and timer. Accepts NULL. May be called from inside done (the memory
 * then goes when the upstream frame that called done returns), never from inside a curl
 * callback.
 */
void upstream_free(struct upstream *u);

#endif
