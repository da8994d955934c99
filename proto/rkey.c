/* rkey: the Redis key names of the protocol and the scripts that use them. */
#include "proto/rkey.h"

#include <arpa/inet.h>
#include <string.h>

#include "proto/announce.h"
#include "proto/ascii.h"
#include "proto/jobid.h"
#include "proto/owner.h"

/* Inputs longer than this cannot be valid; strnlen stops here instead of at a distant NUL. */
#define INPUT_MAX RKEY_MAX

static size_t input_len(const char *s)
{
	return s ? strnlen(s, INPUT_MAX + 1) : 0;
}

static enum proto_err owner_hash_check(const char *s)
{
	size_t len = input_len(s);

	if (len == 0)
		return PROTO_E_EMPTY;
	if (len != OWNER_HASH_LEN)
		return PROTO_E_OWNER;
	for (size_t i = 0; i < len; i++)
		if (!ascii_is_lower_hex(s[i]))
			return PROTO_E_OWNER;
	return PROTO_OK;
}

static enum proto_err server_id_check(const char *s)
{
	return announce_server_id_check(s, input_len(s));
}

/* Only the lowercase form jobid_client_parse writes, so one job has one key. */
static enum proto_err client_job_id_check(const char *s)
{
	char canon[UUID_LEN + 1];
	size_t len = input_len(s);
	enum proto_err rc;

	rc = jobid_client_parse(s, len, canon);
	if (rc)
		return rc;
	if (len != UUID_LEN || memcmp(canon, s, len) != 0)
		return PROTO_E_UUID;
	return PROTO_OK;
}

/*
 * A textual IPv4 or IPv6 address exactly as inet_ntop writes it, so one address has one key
 * ("::1" but not "0::1" or "::0:1"). IPv4-mapped IPv6 addresses are refused: the caller
 * unmaps them, or one client would count against two keys.
 */
static enum proto_err ip_check(const char *s)
{
	size_t len = input_len(s);
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} addr;
	char canon[INET6_ADDRSTRLEN];
	int af;

	if (len == 0)
		return PROTO_E_EMPTY;
	if (len >= sizeof(canon))
		return PROTO_E_TOO_LONG;
	if (inet_pton(AF_INET, s, &addr.v4) == 1)
		af = AF_INET;
	else if (inet_pton(AF_INET6, s, &addr.v6) == 1)
		af = AF_INET6;
	else
		return PROTO_E_ADDRESS;
	if (af == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&addr.v6))
		return PROTO_E_ADDRESS;
	if (!inet_ntop(af, &addr, canon, sizeof(canon)) || strcmp(canon, s) != 0)
		return PROTO_E_ADDRESS;
	return PROTO_OK;
}

/* Writes prefix + a [+ ":" + b] into buf, or nothing when it does not fit. */
static enum proto_err key_write(const char *prefix, const char *a, const char *b, char *buf,
				size_t cap)
{
	size_t np = strlen(prefix), na = strlen(a), nb = b ? strlen(b) + 1 : 0;
	size_t need = np + na + nb;

	if (!buf || need > RKEY_MAX || need >= cap)
		return PROTO_E_BUFFER;
	memcpy(buf, prefix, np);
	memcpy(buf + np, a, na);
	if (b) {
		buf[np + na] = ':';
		memcpy(buf + np + na + 1, b, nb - 1);
	}
	buf[need] = '\0';
	return PROTO_OK;
}

enum proto_err rkey_server(const char *server_id, char *buf, size_t cap)
{
	enum proto_err rc = server_id_check(server_id);

	return rc ? rc : key_write(RKEY_PREFIX "server:", server_id, NULL, buf, cap);
}

enum proto_err rkey_down(const char *server_id, char *buf, size_t cap)
{
	enum proto_err rc = server_id_check(server_id);

	return rc ? rc : key_write(RKEY_PREFIX "down:", server_id, NULL, buf, cap);
}

enum proto_err rkey_job(const char *job_id, char *buf, size_t cap)
{
	enum proto_err rc = jobid_check(job_id, input_len(job_id));

	return rc ? rc : key_write(RKEY_PREFIX "job:", job_id, NULL, buf, cap);
}

enum proto_err rkey_seq(const char *owner_hash, char *buf, size_t cap)
{
	enum proto_err rc = owner_hash_check(owner_hash);

	return rc ? rc : key_write(RKEY_PREFIX "seq:", owner_hash, NULL, buf, cap);
}

enum proto_err rkey_held(const char *owner_hash, char *buf, size_t cap)
{
	enum proto_err rc = owner_hash_check(owner_hash);

	return rc ? rc : key_write(RKEY_PREFIX "held:", owner_hash, NULL, buf, cap);
}

enum proto_err rkey_idem(const char *owner_hash, const char *client_job_id, char *buf,
			 size_t cap)
{
	enum proto_err rc = owner_hash_check(owner_hash);

	if (!rc)
		rc = client_job_id_check(client_job_id);
	return rc ? rc : key_write(RKEY_PREFIX "idem:", owner_hash, client_job_id, buf, cap);
}

enum proto_err rkey_authfail_addr(const char *ip, char *buf, size_t cap)
{
	enum proto_err rc = ip_check(ip);

	return rc ? rc : key_write(RKEY_PREFIX "authfail:addr:", ip, NULL, buf, cap);
}

enum proto_err rkey_authfail_owner(const char *owner_hash, char *buf, size_t cap)
{
	enum proto_err rc = owner_hash_check(owner_hash);

	return rc ? rc : key_write(RKEY_PREFIX "authfail:owner:", owner_hash, NULL, buf, cap);
}
