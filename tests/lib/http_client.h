/* http_client: requests from integration tests to the real programs, over libcurl or raw TCP. */
#ifndef FSG_TEST_HTTP_CLIENT_H
#define FSG_TEST_HTTP_CLIENT_H

#include <stddef.h>

struct http_reply {
	long status;
	char *headers;     /* raw header block of the final response, NUL-terminated */
	char *body;        /* NUL-terminated (the NUL is not counted) */
	size_t body_len;
};

/*
 * Sends method to url with the NULL-terminated header lines ("Name: value") and body (NULL:
 * none). Waits at most 30 s. Returns 0 with *out filled, or -1 (transport failure).
 */
int http_request(const char *method, const char *url, const char *const *headers,
		 const void *body, size_t body_len, struct http_reply *out);

/*
 * TLS for the following requests (each may be NULL): the CA file to trust for https:// URLs,
 * and a client certificate and key to present. Not thread-safe; set it in a test's setup.
 */
void http_client_tls(const char *ca_file, const char *cert_file, const char *key_file);

/*
 * Value of header name in r (case-insensitive), copied into buf; returns buf, or NULL when the
 * header is absent.
 */
const char *http_reply_header(const struct http_reply *r, const char *name, char *buf, size_t cap);

void http_reply_free(struct http_reply *r);

/*
 * Sends raw bytes to 127.0.0.1:port, then reads until the peer closes, cap - 1 bytes arrive, or
 * timeout_ms passes. Returns the bytes read (NUL-terminated in out), or -1.
 */
long tcp_exchange(int port, const void *raw, size_t len, char *out, size_t cap, int timeout_ms);

/*
 * Whether r is an RFC 9457 problem answer with status and the type PROBLEM_TYPE_PREFIX slug:
 * 0, with *detail set to a malloc'd copy of its detail (NULL without one) when detail is not
 * NULL; -1 otherwise (*detail untouched).
 */
int http_reply_problem(const struct http_reply *r, long status, const char *slug, char **detail);

#endif
