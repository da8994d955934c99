/* Tests proto/ascii.h: every byte against each class, case folding, hex digits, fixed digits. */
#include <criterion/criterion.h>
#include <string.h>

#include "proto/ascii.h"

static int in(const char *set, int b)
{
	return b != 0 && strchr(set, b) != NULL;
}

#define DIGITS "0123456789"
#define LOWER  "abcdefghijklmnopqrstuvwxyz"
#define UPPER  "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

/* Each byte value, passed as the (possibly negative) char a parser reads from its input. */
Test(ascii, classes_of_every_byte)
{
	for (int b = 0; b < 256; b++) {
		char c = (char)b;

		cr_expect_eq(ascii_is_digit(c), in(DIGITS, b), "byte %#x", b);
		cr_expect_eq(ascii_is_lower(c), in(LOWER, b), "byte %#x", b);
		cr_expect_eq(ascii_is_upper(c), in(UPPER, b), "byte %#x", b);
		cr_expect_eq(ascii_is_alpha(c), in(LOWER UPPER, b), "byte %#x", b);
		cr_expect_eq(ascii_is_alnum(c), in(DIGITS LOWER UPPER, b), "byte %#x", b);
		cr_expect_eq(ascii_is_hex(c), in(DIGITS "abcdefABCDEF", b), "byte %#x", b);
		cr_expect_eq(ascii_is_lower_hex(c), in(DIGITS "abcdef", b), "byte %#x", b);
		cr_expect_eq(ascii_is_ows(c), in(" \t", b), "byte %#x", b);
	}
}

/* Only A-Z fold; every other byte, 8-bit ones included, comes back unchanged. */
Test(ascii, lower_folds_only_ascii_letters)
{
	for (int b = 0; b < 256; b++) {
		char c = (char)b;
		char want = in(UPPER, b) ? (char)(b + 32) : c;

		cr_expect_eq(ascii_lower(c), want, "byte %#x", b);
	}
}

Test(ascii, hex_digit_uses_the_low_nibble)
{
	static const char want[] = "0123456789abcdef";

	for (unsigned v = 0; v < 64; v++)
		cr_expect_eq(ascii_hex_digit(v), want[v % 16], "value %u", v);
	cr_expect_eq(ascii_hex_digit(0xffffffffu), 'f');
}

Test(ascii, digits_reads_exactly_n)
{
	cr_expect_eq(ascii_digits("2026", 4), 2026);
	cr_expect_eq(ascii_digits("0007", 4), 7);
	cr_expect_eq(ascii_digits("59x", 2), 59);
	cr_expect_eq(ascii_digits("", 0), 0);
	cr_expect_eq(ascii_digits("999999999", 9), 999999999);
	cr_expect_eq(ascii_digits("1a", 2), -1);
	cr_expect_eq(ascii_digits("-1", 2), -1);
	cr_expect_eq(ascii_digits("+1", 2), -1);
	cr_expect_eq(ascii_digits(" 1", 2), -1);
	cr_expect_eq(ascii_digits("1\0", 2), -1);
	/* full-width digit five: UTF-8 EF BC 95 */
	cr_expect_eq(ascii_digits("\xef\xbc\x95", 3), -1);
	cr_expect_eq(ascii_digits("\xb0", 1), -1);
}
