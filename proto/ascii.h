/* ascii: the locale-free character classes and digit helpers every parser in proto/ shares. */
#ifndef FSG_PROTO_ASCII_H
#define FSG_PROTO_ASCII_H

#include <stddef.h>

/*
 * Unlike <ctype.h>, no locale applies and any char is a valid argument: the tests compare
 * against ASCII ranges only, so a byte 0x80..0xFF (negative where char is signed) is in no
 * class, is never used as an index, and ascii_lower returns it unchanged.
 */

static inline int ascii_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static inline int ascii_is_lower(char c)
{
	return c >= 'a' && c <= 'z';
}

static inline int ascii_is_upper(char c)
{
	return c >= 'A' && c <= 'Z';
}

static inline int ascii_is_alpha(char c)
{
	return ascii_is_lower(c) || ascii_is_upper(c);
}

static inline int ascii_is_alnum(char c)
{
	return ascii_is_alpha(c) || ascii_is_digit(c);
}

/* RFC 5234 HEXDIG, either case. */
static inline int ascii_is_hex(char c)
{
	return ascii_is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The lowercase hex digits the protocol writes: 0-9 a-f. */
static inline int ascii_is_lower_hex(char c)
{
	return ascii_is_digit(c) || (c >= 'a' && c <= 'f');
}

/* RFC 9110 OWS characters: SP and HTAB. */
static inline int ascii_is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static inline char ascii_lower(char c)
{
	return ascii_is_upper(c) ? (char)(c - 'A' + 'a') : c;
}

/* The lowercase hex digit for the low four bits of v. */
static inline char ascii_hex_digit(unsigned v)
{
	return "0123456789abcdef"[v & 0x0f];
}

/* Writes n bytes as 2n lowercase hex digits and a NUL into out (2n + 1 bytes). */
static inline void ascii_hex_encode(const unsigned char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = ascii_hex_digit(in[i] >> 4);
		out[2 * i + 1] = ascii_hex_digit(in[i]);
	}
	out[2 * n] = '\0';
}

static inline int ascii_lower_hex_value(char c)
{
	if (ascii_is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Strict lowercase hex of exactly n bytes (len must be 2n) into out. Returns 0 or -1. */
static inline int ascii_hex_decode(const char *s, size_t len, unsigned char *out, size_t n)
{
	if (len != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int hi = ascii_lower_hex_value(s[2 * i]), lo = ascii_lower_hex_value(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

/* Reads exactly n (at most 9) decimal digits at s; -1 when any is not a digit. */
static inline int ascii_digits(const char *s, size_t n)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (!ascii_is_digit(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

#endif
