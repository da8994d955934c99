/* deliver: one delivery pass over the queue: find a server, then upload each job with tus. */
#ifndef FSG_CLIENT_DELIVER_H
#define FSG_CLIENT_DELIVER_H

#include <signal.h>
#include <stdint.h>

#include "client/locations.h"
#include "client/progress.h"

struct deliver_opts {
	const char *queue_dir;
	const struct locations *locations;
	const char *override;         /* location id to use instead of the file's current one */
	const char *token_file;       /* read at every pass ("" or NULL: none) */
	const char *token;            /* used when token_file is empty */
	const char *ca_file;          /* CA bundle replacing the system's CAs ("" or NULL: system) */
	int64_t connect_timeout_ms;   /* TCP + TLS connect; twice this bounds a probe's exchange */
	int64_t stall_timeout_ms;     /* a transfer moving no byte this long is given up */
	uint64_t max_rate;            /* bytes per second while uploading; 0: no limit */
	enum progress_mode progress;
	FILE *out;                    /* progress and messages for people */
	volatile sig_atomic_t *stop;  /* set by a signal: abort transfers, end the pass */
};

enum deliver_outcome {
	DELIVER_IDLE = 0,  /* nothing left that can go now: queue empty, or only held jobs */
	DELIVER_WAIT,      /* jobs remain that a later attempt may deliver: see retry_after_ms */
	DELIVER_STOPPED,   /* *stop was set */
	DELIVER_ERROR,     /* the queue could not be read, no usable token, or no location */
};

struct deliver_result {
	enum deliver_outcome outcome;
	int64_t retry_after_ms;   /* DELIVER_WAIT: at least this long, from Retry-After; 0 none */
	int progressed;           /* some job gained bytes or was delivered in this pass */
	unsigned delivered;       /* jobs committed in this pass */
	unsigned held;            /* jobs held for the user (refused token, refused job) */
	unsigned remaining;       /* jobs still queued at the end of the pass */
};

/*
 * One pass: terminates the uploads of cancelled jobs it can reach, then finds the first
 * available address (the override's or current location's addresses in order, then the
 * Default location's: an unauthenticated OPTIONS that must answer as a tus server over a
 * verified certificate), then delivers queued jobs in submission order with tus (POST, HEAD,
 * PATCH from the server's offset), deleting each local copy after its completing 2xx. Records
 * the network view in network.json and every job's state in its state.json. Never follows a
 * redirect and never sends the token before the probe proved the address is ours.
 * The caller holds deliver.lock. Writes *res.
 */
void deliver_pass(const struct deliver_opts *o, struct deliver_result *res);

/* Global libcurl set-up; call once at start, before threads. 0 or -1. */
int deliver_global_init(void);

#endif
