/* base64: strict RFC 4648 base64 and base64url on top of OpenSSL's codec. */
#include "proto/base64.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "proto/ascii.h"

/* Most bytes the encoders take (EVP_EncodeBlock counts in int). */
#define ENCODE_MAX ((size_t)BASE64_INPUT_MAX * 3)

static int is_std_char(char c)
{
	return ascii_is_alnum(c) || c == '+' || c == '/';
}

/*
 * Checks the padded standard form: length a multiple of four, alphabet characters, then at
 * most two '=' at the very end. OpenSSL's decoder skips whitespace and accepts other
 * oddities, so it only ever sees text that passed this check.
 */
static enum proto_err std_check(const char *in, size_t len, size_t *pad)
{
	size_t i = 0, p = 0;

	/* A byte outside the alphabet is reported before any padding fault. */
	for (size_t j = 0; j < len; j++)
		if (!is_std_char(in[j]) && in[j] != '=')
			return PROTO_E_BASE64;
	while (i < len && is_std_char(in[i]))
		i++;
	while (i + p < len && in[i + p] == '=')
		p++;
	/* Data after '=': the padding is in the middle. */
	if (i + p != len)
		return PROTO_E_BASE64_PADDING;
	/* A lone trailing character carries only 6 bits: no padding can make it a byte. */
	if (i % 4 == 1)
		return PROTO_E_BASE64;
	if (p != (4 - i % 4) % 4)
		return PROTO_E_BASE64_PADDING;
	*pad = p;
	return PROTO_OK;
}

/* Decodes checked standard text; rejects a spelling that re-encodes differently. */
static enum proto_err std_decode(const char *in, size_t len, size_t pad, unsigned char *out,
				 size_t cap, size_t *out_len)
{
	enum proto_err rc = PROTO_OK;
	unsigned char *raw = NULL;
	char *again = NULL;
	int n;

	if (len == 0) {
		*out_len = 0;
		return PROTO_OK;
	}
	raw = malloc(len / 4 * 3 + 1);
	again = malloc(len + 1);
	if (!raw || !again) {
		rc = PROTO_E_NOMEM;
		goto out;
	}
	n = EVP_DecodeBlock(raw, (const unsigned char *)in, (int)len);
	if (n == -1 || (size_t)n != len / 4 * 3) {
		rc = PROTO_E_BASE64;
		goto out;
	}
	n -= (int)pad;
	if (EVP_EncodeBlock((unsigned char *)again, raw, n) != (int)len ||
	    memcmp(again, in, len) != 0) {
		rc = PROTO_E_BASE64_NONCANON;
		goto out;
	}
	if ((size_t)n > cap) {
		rc = PROTO_E_BUFFER;
		goto out;
	}
	memcpy(out, raw, (size_t)n);
	*out_len = (size_t)n;
out:
	free(raw);
	free(again);
	return rc;
}

enum proto_err base64_decode(const char *in, size_t len, unsigned char *out, size_t cap,
			     size_t *out_len)
{
	enum proto_err rc;
	size_t pad = 0;

	if (len > BASE64_INPUT_MAX)
		return PROTO_E_TOO_LONG;
	rc = std_check(in, len, &pad);
	if (rc)
		return rc;
	return std_decode(in, len, pad, out, cap, out_len);
}

enum proto_err base64url_decode(const char *in, size_t len, unsigned char *out, size_t cap,
				size_t *out_len)
{
	enum proto_err rc = PROTO_OK;
	size_t padded = (len + 3) / 4 * 4, pad = padded - len;
	char *std;

	if (len > BASE64_INPUT_MAX)
		return PROTO_E_TOO_LONG;
	if (len % 4 == 1)
		return PROTO_E_BASE64;
	std = malloc(padded + 1);
	if (!std)
		return PROTO_E_NOMEM;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];

		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (c == '=')
			rc = PROTO_E_BASE64_PADDING;
		else if (c == '+' || c == '/' || !is_std_char(c)) {
			/* As in std_check, a foreign byte outranks a padding fault. */
			rc = PROTO_E_BASE64;
			goto out;
		}
		std[i] = c;
	}
	if (rc)
		goto out;
	memset(std + len, '=', pad);
	rc = std_decode(std, padded, pad, out, cap, out_len);
out:
	free(std);
	return rc;
}

enum proto_err base64_encode(const unsigned char *in, size_t len, char *out, size_t cap,
			     size_t *out_len)
{
	size_t need;

	/* Checked before any size arithmetic, which would wrap for a huge len. */
	if (len > ENCODE_MAX)
		return PROTO_E_TOO_LONG;
	need = BASE64_ENCODED_LEN(len);
	if (cap < need + 1)
		return PROTO_E_BUFFER;
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	if (out_len)
		*out_len = need;
	return PROTO_OK;
}

enum proto_err base64url_encode(const unsigned char *in, size_t len, char *out, size_t cap,
				size_t *out_len)
{
	enum proto_err rc;
	size_t need;
	char *std;

	/* As in base64_encode: len*4 below wraps for a huge len, and the malloc would follow. */
	if (len > ENCODE_MAX)
		return PROTO_E_TOO_LONG;
	need = BASE64URL_ENCODED_LEN(len);
	if (cap < need + 1)
		return PROTO_E_BUFFER;
	std = malloc(BASE64_ENCODED_LEN(len) + 1);
	if (!std)
		return PROTO_E_NOMEM;
	rc = base64_encode(in, len, std, BASE64_ENCODED_LEN(len) + 1, NULL);
	if (rc == PROTO_OK) {
		for (size_t i = 0; i < need; i++)
			out[i] = std[i] == '+' ? '-' : std[i] == '/' ? '_' : std[i];
		out[need] = '\0';
		if (out_len)
			*out_len = need;
	}
	free(std);
	return rc;
}
