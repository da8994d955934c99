/* jobid: the two job identifiers: the client's UUID and the data-center server's job id. */
#ifndef FSG_PROTO_JOBID_H
#define FSG_PROTO_JOBID_H

#include <stddef.h>

#include "proto/err.h"

#define UUID_LEN 36   /* 8-4-4-4-12 hex digits */
#define JOBID_BYTES 16 /* random bytes in a server job id: 128 bits */
#define JOBID_LEN 22  /* their base64url form, unpadded */

/*
 * Parses a client job id: an RFC 9562 UUID in its 36-character hyphenated form, hex digits of
 * either case, any version. The nil and max UUIDs are refused. Writes the lowercase form to
 * out (UUID_LEN + 1 bytes) on PROTO_OK. Errors: PROTO_E_EMPTY, PROTO_E_UUID.
 */
enum proto_err jobid_client_parse(const char *s, size_t len, char out[UUID_LEN + 1]);

/* Writes a new random (version 4) client job id. Errors: PROTO_E_RANDOM. */
enum proto_err jobid_client_generate(char out[UUID_LEN + 1]);

/*
 * Checks a server job id: exactly JOBID_LEN base64url characters that decode canonically to
 * JOBID_BYTES bytes. Errors: PROTO_E_JOB_ID, PROTO_E_NOMEM (the decoder allocates).
 */
enum proto_err jobid_check(const char *s, size_t len);

/*
 * Writes a new server job id from JOBID_BYTES of OpenSSL RAND_bytes. Errors: PROTO_E_RANDOM,
 * PROTO_E_NOMEM.
 */
enum proto_err jobid_generate(char out[JOBID_LEN + 1]);

#endif
