/* relay: one client request, from its first handler call to its answer, through one server. */
#ifndef FSG_GATEWAY_RELAY_H
#define FSG_GATEWAY_RELAY_H

#include <microhttpd.h>

#include "gateway/worker.h"

/*
 * libmicrohttpd callbacks of a worker (cls is the struct worker). The handler decides the
 * request on its first call (admit, limits), then relays it to a data-center server with
 * curl, moving body bytes straight from MHD's read buffer into curl's upload buffer: the
 * connection stays suspended while curl has not taken the bytes MHD handed over.
 */
enum MHD_Result relay_handler(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls);
void relay_completed(void *cls, struct MHD_Connection *c, void **con_cls,
		     enum MHD_RequestTerminationCode toe);

/* The worker's turn hook: acts on what the callbacks recorded (resume, unpause, cancel, free). */
void relay_turn(void *w);

/* Ends every relay of w (shutdown): upstream transfers cancelled, connections resumed. */
void relay_shutdown(struct worker *w);

#endif
