/* certs: the gateway's TLS certificate and key, swapped on reload without dropping connections. */
#include "gateway/certs.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/x509.h>

#define CERTS_CHAIN_MAX 16

struct pair {
	gnutls_pcert_st pcert[CERTS_CHAIN_MAX];
	unsigned int n;
	gnutls_privkey_t key;
	struct pair *older;
};

static _Atomic(struct pair *) current;
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

static void pair_free(struct pair *p)
{
	unsigned int i;

	for (i = 0; i < p->n; i++)
		gnutls_pcert_deinit(&p->pcert[i]);
	if (p->key)
		gnutls_privkey_deinit(p->key);
	free(p);
}

/* The key signs and the leaf's public key verifies: they belong together. */
static int pair_match(struct pair *p)
{
	static const unsigned char msg[] = "fs-gateway certificate check";
	gnutls_datum_t data = {(unsigned char *)msg, sizeof(msg)}, sig = {NULL, 0};
	gnutls_sign_algorithm_t algo;
	gnutls_pk_algorithm_t pk = gnutls_privkey_get_pk_algorithm(p->key, NULL);
	int rc;

	algo = gnutls_pk_to_sign(pk, GNUTLS_DIG_SHA256);
	if (algo == GNUTLS_SIGN_UNKNOWN)
		return -1;
	rc = gnutls_privkey_sign_data2(p->key, algo, 0, &data, &sig);
	if (rc < 0)
		return -1;
	rc = gnutls_pubkey_verify_data2(p->pcert[0].pubkey, algo, 0, &data, &sig);
	gnutls_free(sig.data);
	return rc < 0 ? -1 : 0;
}

int certs_load(const char *cert_pem, const char *key_pem, char *err, size_t cap)
{
	gnutls_datum_t c = {(unsigned char *)cert_pem, (unsigned int)strlen(cert_pem)};
	gnutls_datum_t k = {(unsigned char *)key_pem, (unsigned int)strlen(key_pem)};
	struct pair *p = calloc(1, sizeof(*p));
	int rc;

	if (!p) {
		snprintf(err, cap, "out of memory");
		return -1;
	}
	p->n = CERTS_CHAIN_MAX;
	rc = gnutls_pcert_list_import_x509_raw(p->pcert, &p->n, &c, GNUTLS_X509_FMT_PEM, 0);
	if (rc < 0 || p->n == 0) {
		snprintf(err, cap, "certificate: %s", rc < 0 ? gnutls_strerror(rc) : "none found");
		p->n = 0;
		goto fail;
	}
	rc = gnutls_privkey_init(&p->key);
	if (rc >= 0)
		rc = gnutls_privkey_import_x509_raw(p->key, &k, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (rc < 0) {
		snprintf(err, cap, "key: %s", gnutls_strerror(rc));
		goto fail;
	}
	if (pair_match(p)) {
		snprintf(err, cap, "the key does not belong to the certificate");
		goto fail;
	}
	pthread_mutex_lock(&load_lock);
	p->older = atomic_load(&current);
	atomic_store(&current, p);
	pthread_mutex_unlock(&load_lock);
	return 0;
fail:
	pair_free(p);
	return -1;
}

int certs_loaded(void)
{
	return atomic_load(&current) != NULL;
}

int certs_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
		   const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
		   gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
	struct pair *p = atomic_load(&current);

	(void)session;
	(void)req_ca_dn;
	(void)nreqs;
	(void)pk_algos;
	(void)pk_algos_length;
	if (!p)
		return -1;
	*pcert = p->pcert;
	*pcert_length = p->n;
	*pkey = p->key;
	return 0;
}

void certs_free_all(void)
{
	struct pair *p;

	pthread_mutex_lock(&load_lock);
	p = atomic_exchange(&current, NULL);
	pthread_mutex_unlock(&load_lock);
	while (p) {
		struct pair *older = p->older;

		pair_free(p);
		p = older;
	}
}
