/* Fuzz target for proto/header.c: header lists as "name:value" lines through the framing check. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/header.h"
#include "proto/num.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FIELDS_CAP 128

static void check(int ok)
{
	if (!ok)
		__builtin_trap();
}

static int is_name_error(enum proto_err rc)
{
	return rc == PROTO_E_EMPTY || rc == PROTO_E_TOO_LONG || rc == PROTO_E_HEADER_NAME;
}

static int is_value_error(enum proto_err rc)
{
	return rc == PROTO_E_TOO_LONG || rc == PROTO_E_HEADER_VALUE;
}

static int is_framing_error(enum proto_err rc)
{
	switch (rc) {
	case PROTO_E_FRAMING_CL_TE:
	case PROTO_E_FRAMING_TE:
	case PROTO_E_FRAMING_DUP_CL:
	case PROTO_E_FRAMING_DUP_TE:
	case PROTO_E_FRAMING_CL:
	case PROTO_E_FRAMING_TE_HTTP10:
	case PROTO_E_FRAMING_HOST: return 1;
	default: return 0;
	}
}

/* Single-byte checks must agree with the whole-string checks, byte by byte. */
static void check_pieces(const struct proto_field *f)
{
	enum proto_err rc = header_name_check(f->name, f->name_len);

	check(rc == PROTO_OK || is_name_error(rc));
	if (rc == PROTO_OK)
		for (size_t i = 0; i < f->name_len; i++)
			check(header_name_check(f->name + i, 1) == PROTO_OK);
	rc = header_value_check(f->value, f->value_len);
	check(rc == PROTO_OK || is_value_error(rc));
	if (rc == PROTO_OK && f->value_len > 0) {
		/* its outer bytes are neither OWS nor CTL, so each alone is a valid value */
		check(header_value_check(f->value, 1) == PROTO_OK);
		check(header_value_check(f->value + f->value_len - 1, 1) == PROTO_OK);
	}
	/* header_equals is reflexive within the length and folds only A-Z */
	if (f->name_len > 0 && f->name_len < 64 && !memchr(f->name, 0, f->name_len)) {
		char lit[64];

		memcpy(lit, f->name, f->name_len);
		lit[f->name_len] = '\0';
		check(header_equals(f->name, f->name_len, lit));
		check(!header_equals(f->name, f->name_len - 1, lit));
		for (size_t i = 0; i < f->name_len; i++)
			if (lit[i] >= 'a' && lit[i] <= 'z')
				lit[i] = (char)(lit[i] - 'a' + 'A');
		check(header_equals(f->name, f->name_len, lit));
	}
}

/* Recomputes what an accepted request must look like, independently of the implementation. */
static void check_accepted(const struct proto_field *f, size_t n, int http10,
			   const struct header_framing *out)
{
	size_t n_cl = 0, n_te = 0, n_host = 0;
	const struct proto_field *cl = NULL;

	check(n <= HEADER_COUNT_MAX);
	for (size_t i = 0; i < n; i++) {
		check(header_name_check(f[i].name, f[i].name_len) == PROTO_OK);
		check(header_value_check(f[i].value, f[i].value_len) == PROTO_OK);
		if (header_equals(f[i].name, f[i].name_len, "Content-Length")) {
			n_cl++;
			cl = &f[i];
		}
		if (header_equals(f[i].name, f[i].name_len, "TRANSFER-ENCODING")) {
			n_te++;
			check(f[i].value_len == 7);
		}
		if (header_equals(f[i].name, f[i].name_len, "hOST")) {
			n_host++;
			/* RFC 9112 3.2: uri-host [":" port] has no blank, '/', '@', 8-bit byte */
			for (size_t j = 0; j < f[i].value_len; j++)
				check(!memchr(" \t/@?#\\\"", f[i].value[j], 8) &&
				      (unsigned char)f[i].value[j] < 0x80);
		}
	}
	check(out->has_length == 0 || out->has_length == 1);
	check(out->chunked == 0 || out->chunked == 1);
	check(!(out->chunked && out->has_length));
	check(!(out->chunked && http10));
	check((size_t)out->has_length == n_cl && (size_t)out->chunked == n_te);
	check(n_host <= 1 && (http10 || n_host == 1));
	if (out->has_length) {
		uint64_t v;

		check(num_parse_u64(cl->value, cl->value_len, HEADER_CL_MAX, &v) == PROTO_OK);
		check(v == out->content_length);
	} else {
		check(out->content_length == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct proto_field fields[FIELDS_CAP];
	const char *p = (const char *)data, *end = p + size;
	struct header_framing out, sentinel;
	enum proto_err rc, first = PROTO_OK;
	size_t n = 0;
	int http10 = 0;

	/* An optional first line "1.0" or "1.1" picks the request's version. */
	if (size >= 3 && (size == 3 || p[3] == '\n') && memcmp(p, "1.", 2) == 0 &&
	    (p[2] == '0' || p[2] == '1')) {
		http10 = p[2] == '0';
		p += size == 3 ? 3 : 4;
	}
	while (p < end && n < FIELDS_CAP) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *colon;

		if (!eol)
			eol = end;
		colon = memchr(p, ':', (size_t)(eol - p));
		/* Pointers into the input itself, so ASan sees any read past a field. */
		fields[n].name = p;
		fields[n].name_len = (size_t)((colon ? colon : eol) - p);
		fields[n].value = colon ? colon + 1 : eol;
		fields[n].value_len = colon ? (size_t)(eol - colon - 1) : 0;
		n++;
		p = eol < end ? eol + 1 : end;
	}

	for (size_t i = 0; i < n; i++)
		check_pieces(&fields[i]);

	memset(&out, 0xa5, sizeof(out));
	memcpy(&sentinel, &out, sizeof(out));
	rc = header_framing_check(fields, n, http10, &out);

	/* The documented precedence: count, then the first bad field, then framing. */
	for (size_t i = 0; i < n && !first; i++) {
		first = header_name_check(fields[i].name, fields[i].name_len);
		if (!first)
			first = header_value_check(fields[i].value, fields[i].value_len);
	}
	if (n > HEADER_COUNT_MAX)
		check(rc == PROTO_E_HEADER_COUNT);
	else if (first)
		check(rc == first);
	else
		check(rc == PROTO_OK || is_framing_error(rc));

	if (rc == PROTO_OK) {
		check_accepted(fields, n, http10, &out);
	} else {
		check(memcmp(&out, &sentinel, sizeof(out)) == 0);
	}

	/* Field order never changes the framing answer once every field is well formed. */
	if (n <= HEADER_COUNT_MAX && !first && n > 1) {
		static struct proto_field rev[FIELDS_CAP];
		struct header_framing out2 = {0, 0, 0};

		for (size_t i = 0; i < n; i++)
			rev[i] = fields[n - 1 - i];
		check(header_framing_check(rev, n, http10, &out2) == rc);
		if (rc == PROTO_OK)
			check(out2.has_length == out.has_length &&
			      out2.content_length == out.content_length &&
			      out2.chunked == out.chunked);
	}
	return 0;
}
