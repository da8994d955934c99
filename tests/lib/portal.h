/* portal: a fake captive portal (hotel login page) over HTTPS on 127.0.0.1, for client tests. */
#ifndef FSG_TEST_PORTAL_H
#define FSG_TEST_PORTAL_H

enum portal_mode {
	PORTAL_HTML,     /* "200 OK", Content-Type text/html, a small login page */
	PORTAL_REDIRECT, /* "302 Found", Location: http://login.hotel.example/portal?continue=... */
};

struct portal;

/*
 * Starts an HTTPS server on a free 127.0.0.1 port, in its own thread, with a fresh self-signed
 * certificate for IP 127.0.0.1. It answers every request (any method, any path) the way mode
 * says and closes the connection: it reads the request head (16 KiB at most, until CRLFCRLF),
 * drops a body of up to Content-Length (1 MiB at most; none when the client expects a
 * 100-continue), 5 s at most per connection. Returns the portal (free it with portal_free), or
 * NULL on failure.
 */
struct portal *portal_start(enum portal_mode mode);

/* The port it listens on. */
int portal_port(const struct portal *p);

/* The PEM file of its certificate, to trust it (or not). Owned by p. */
const char *portal_cert_file(const struct portal *p);

/* HTTP requests answered so far (counted before the answer is sent). */
unsigned portal_requests(struct portal *p);

/* 1 if any request so far carried an Authorization header, else 0. */
int portal_saw_authorization(struct portal *p);

/*
 * TLS handshakes that failed so far: a client that does not trust the certificate, or any
 * connection closed before its handshake completed.
 */
unsigned portal_handshake_failures(struct portal *p);

/* Stops the thread, closes everything, removes the certificate file. Accepts NULL. */
void portal_free(struct portal *p);

#endif
