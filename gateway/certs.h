/* certs: the gateway's TLS certificate and key, swapped on reload without dropping connections. */
#ifndef FSG_GATEWAY_CERTS_H
#define FSG_GATEWAY_CERTS_H

#include <stddef.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>

/*
 * One process-wide slot: libmicrohttpd's certificate callback (MHD_OPTION_HTTPS_CERT_CALLBACK)
 * takes no argument of ours. Every TLS handshake asks certs_retrieve for the current pair;
 * certs_load replaces it for the handshakes that follow, while connections already open keep
 * theirs. Replaced pairs are kept until certs_free_all (a few KiB per reload), since a
 * handshake in flight on another thread may still be using one.
 */

/*
 * Parses a PEM chain (leaf first) and its PEM private key, checks that they belong together,
 * and makes them current. Thread-safe. Returns 0, or -1 with a one-line reason in err (the
 * current pair stays).
 */
int certs_load(const char *cert_pem, const char *key_pem, char *err, size_t cap);

/* Non-zero once a pair was loaded. */
int certs_loaded(void);

/* gnutls_certificate_retrieve_function2, for MHD_OPTION_HTTPS_CERT_CALLBACK. */
int certs_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
		   const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
		   gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey);

/* Frees every pair (at exit, once no daemon runs). */
void certs_free_all(void);

#endif
