/* route: the public job id, which carries the data-center server that holds the job. */
#ifndef FSG_PROTO_ROUTE_H
#define FSG_PROTO_ROUTE_H

#include <stddef.h>

#include "proto/announce.h"
#include "proto/err.h"
#include "proto/jobid.h"

#define ROUTE_KEY_MIN 32    /* shortest route key, bytes */
#define ROUTE_TAG_BYTES 16  /* HMAC-SHA256 truncated to 128 bits */
#define ROUTE_TAG_LEN 22    /* its base64url form */
/* "<server-id>.<job-id>.<tag>" */
#define ROUTE_MAX_LEN (SERVER_ID_MAX + 1 + JOBID_LEN + 1 + ROUTE_TAG_LEN)

/*
 * Builds the public job id the gateway hands to clients:
 *   server-id "." job-id "." base64url(HMAC-SHA256(key, "fsg-route-v1" NUL owner NUL
 *                                                   server-id NUL job-id)[0..16))
 * so any gateway sharing the key can find the server without Redis, and neither a client nor
 * another user can forge or reuse one. Inputs are checked (owner_check, server id, jobid_check).
 * server_id and job_id are NUL-terminated. key_len must be ROUTE_KEY_MIN..INT_MAX.
 * Writes out (cap at least ROUTE_MAX_LEN + 1). Errors: PROTO_E_ROUTE_KEY, PROTO_E_OWNER,
 * PROTO_E_SERVER_ID, PROTO_E_JOB_ID, PROTO_E_BUFFER, PROTO_E_CRYPTO, PROTO_E_NOMEM.
 */
enum proto_err route_build(const unsigned char *key, size_t key_len, const char *owner,
			   size_t owner_len, const char *server_id, const char *job_id, char *out,
			   size_t cap);

/*
 * Parses and verifies a public job id for owner, comparing the tag in constant time. On
 * PROTO_OK writes server_id and job_id. Errors: PROTO_E_ROUTE_KEY, PROTO_E_OWNER (owner fails
 * owner_check), PROTO_E_ROUTE_SYNTAX (shape, length or characters wrong, including a bad server
 * or job id), PROTO_E_ROUTE_TAG (well-formed but not issued for this owner under this key),
 * PROTO_E_CRYPTO, PROTO_E_NOMEM.
 * To rotate keys, a caller tries the current key and then the previous one.
 */
enum proto_err route_parse(const unsigned char *key, size_t key_len, const char *owner,
			   size_t owner_len, const char *s, size_t len,
			   char server_id[SERVER_ID_MAX + 1], char job_id[JOBID_LEN + 1]);

#endif
