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

Test(ascii, hex_encode_and_strict_decode)
{
	static const unsigned char bytes[] = {0x00, 0x0f, 0xa5, 0xff};
	unsigned char back[4];
	char hex[9];

	ascii_hex_encode(bytes, sizeof(bytes), hex);
	cr_assert_str_eq(hex, "000fa5ff");
	cr_assert_eq(ascii_hex_decode(hex, 8, back, sizeof(back)), 0);
	cr_assert_arr_eq(back, bytes, sizeof(bytes));
	cr_expect_eq(ascii_hex_decode("000FA5FF", 8, back, 4), -1, "uppercase is refused");
	cr_expect_eq(ascii_hex_decode("000fa5f", 7, back, 4), -1, "odd length");
	cr_expect_eq(ascii_hex_decode("000fa5ff00", 10, back, 4), -1, "too long");
	cr_expect_eq(ascii_hex_decode("000fa5fg", 8, back, 4), -1, "not hex");
	cr_expect_eq(ascii_hex_decode(" 00fa5ff", 8, back, 4), -1, "blank");
	ascii_hex_encode(bytes, 0, hex);
	cr_expect_str_eq(hex, "");
}
