/* route: builds and verifies the public job id, an HMAC-tagged server-id.job-id pair. */
#include "proto/route.h"

#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "proto/base64.h"
#include "proto/owner.h"

/* Domain separation: a tag made for anything else never verifies as a route. */
#define ROUTE_LABEL "fsg-route-v1"
/* sizeof counts the label's NUL, which is also its separator. */
#define ROUTE_MSG_MAX (sizeof(ROUTE_LABEL) + OWNER_MAX + 1 + SERVER_ID_MAX + 1 + JOBID_LEN)

static enum proto_err route_key_check(const unsigned char *key, size_t key_len)
{
	/* HMAC() takes an int length; no real key comes anywhere near it. */
	if (!key || key_len < ROUTE_KEY_MIN || key_len > INT_MAX)
		return PROTO_E_ROUTE_KEY;
	return PROTO_OK;
}

/*
 * Computes the truncated tag over "fsg-route-v1" NUL owner NUL server-id NUL job-id. No part
 * can hold a NUL (owner_check refuses control characters; the ids are restricted alphabets),
 * so the message splits back into its parts only one way.
 */
static enum proto_err route_tag(const unsigned char *key, size_t key_len, const char *owner,
				size_t owner_len, const char *sid, size_t sid_len, const char *jid,
				size_t jid_len, unsigned char tag[ROUTE_TAG_BYTES])
{
	unsigned char msg[ROUTE_MSG_MAX], md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	size_t n = sizeof(ROUTE_LABEL);

	memcpy(msg, ROUTE_LABEL, n);
	memcpy(msg + n, owner, owner_len);
	n += owner_len;
	msg[n++] = '\0';
	memcpy(msg + n, sid, sid_len);
	n += sid_len;
	msg[n++] = '\0';
	memcpy(msg + n, jid, jid_len);
	n += jid_len;
	if (!HMAC(EVP_sha256(), key, (int)key_len, msg, n, md, &md_len) || md_len < ROUTE_TAG_BYTES)
		return PROTO_E_CRYPTO;
	memcpy(tag, md, ROUTE_TAG_BYTES);
	OPENSSL_cleanse(md, sizeof(md));
	return PROTO_OK;
}

enum proto_err route_build(const unsigned char *key, size_t key_len, const char *owner,
			   size_t owner_len, const char *server_id, const char *job_id, char *out,
			   size_t cap)
{
	unsigned char tag[ROUTE_TAG_BYTES];
	char tag_txt[ROUTE_TAG_LEN + 1];
	size_t sid_len, jid_len, n;
	enum proto_err rc;

	rc = route_key_check(key, key_len);
	if (rc)
		return rc;
	rc = owner_check(owner, owner_len);
	if (rc)
		return rc == PROTO_E_NOMEM ? rc : PROTO_E_OWNER;
	if (!server_id)
		return PROTO_E_SERVER_ID;
	sid_len = strnlen(server_id, SERVER_ID_MAX + 1);
	if (announce_server_id_check(server_id, sid_len))
		return PROTO_E_SERVER_ID;
	if (!job_id)
		return PROTO_E_JOB_ID;
	jid_len = strnlen(job_id, JOBID_LEN + 1);
	rc = jobid_check(job_id, jid_len);
	if (rc)
		return rc;
	if (cap < sid_len + 1 + jid_len + 1 + ROUTE_TAG_LEN + 1)
		return PROTO_E_BUFFER;
	rc = route_tag(key, key_len, owner, owner_len, server_id, sid_len, job_id, jid_len, tag);
	if (rc)
		return rc;
	rc = base64url_encode(tag, sizeof(tag), tag_txt, sizeof(tag_txt), NULL);
	if (rc)
		return rc;
	n = 0;
	memcpy(out + n, server_id, sid_len);
	n += sid_len;
	out[n++] = '.';
	memcpy(out + n, job_id, jid_len);
	n += jid_len;
	out[n++] = '.';
	memcpy(out + n, tag_txt, sizeof(tag_txt));
	return PROTO_OK;
}

enum proto_err route_parse(const unsigned char *key, size_t key_len, const char *owner,
			   size_t owner_len, const char *s, size_t len,
			   char server_id[SERVER_ID_MAX + 1], char job_id[JOBID_LEN + 1])
{
	unsigned char want[ROUTE_TAG_BYTES], got[ROUTE_TAG_BYTES];
	const char *dot1, *dot2, *jid, *tag;
	size_t sid_len, jid_len, tag_len, n;
	enum proto_err rc;

	rc = route_key_check(key, key_len);
	if (rc)
		return rc;
	rc = owner_check(owner, owner_len);
	if (rc)
		return rc == PROTO_E_NOMEM ? rc : PROTO_E_OWNER;
	if (len == 0 || len > ROUTE_MAX_LEN)
		return PROTO_E_ROUTE_SYNTAX;
	/* None of the three alphabets holds '.', so exactly two dots split it one way. */
	dot1 = memchr(s, '.', len);
	if (!dot1)
		return PROTO_E_ROUTE_SYNTAX;
	jid = dot1 + 1;
	dot2 = memchr(jid, '.', len - (size_t)(jid - s));
	if (!dot2)
		return PROTO_E_ROUTE_SYNTAX;
	tag = dot2 + 1;
	tag_len = len - (size_t)(tag - s);
	if (memchr(tag, '.', tag_len))
		return PROTO_E_ROUTE_SYNTAX;
	sid_len = (size_t)(dot1 - s);
	jid_len = (size_t)(dot2 - jid);
	if (announce_server_id_check(s, sid_len))
		return PROTO_E_ROUTE_SYNTAX;
	rc = jobid_check(jid, jid_len);
	if (rc)
		return rc == PROTO_E_NOMEM ? rc : PROTO_E_ROUTE_SYNTAX;
	if (tag_len != ROUTE_TAG_LEN)
		return PROTO_E_ROUTE_SYNTAX;
	/* Canonical decoding keeps one spelling per tag, so a tag cannot be varied and replayed. */
	rc = base64url_decode(tag, tag_len, got, sizeof(got), &n);
	if (rc)
		return rc == PROTO_E_NOMEM ? rc : PROTO_E_ROUTE_SYNTAX;
	if (n != ROUTE_TAG_BYTES)
		return PROTO_E_ROUTE_SYNTAX;
	rc = route_tag(key, key_len, owner, owner_len, s, sid_len, jid, jid_len, want);
	if (rc)
		return rc;
	if (CRYPTO_memcmp(want, got, ROUTE_TAG_BYTES) != 0)
		return PROTO_E_ROUTE_TAG;
	memcpy(server_id, s, sid_len);
	server_id[sid_len] = '\0';
	memcpy(job_id, jid, jid_len);
	job_id[jid_len] = '\0';
	return PROTO_OK;
}
