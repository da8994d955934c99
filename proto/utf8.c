/* utf8: clean-text check on top of jansson's UTF-8 validator. */
#include "proto/utf8.h"

#include <jansson.h>

/*
 * Control characters are looked for byte-wise: in well-formed UTF-8 a C1 control is always the
 * two bytes C2 80..C2 9F, and bytes below 0x80 only ever stand for themselves.
 */
static int has_control(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f)
			return 1;
		if (p[i] == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
			return 1;
	}
	return 0;
}

enum proto_err utf8_check_text(const char *s, size_t len)
{
	json_t *j;

	if (len == 0)
		return PROTO_OK;
	if (has_control((const unsigned char *)s, len))
		return PROTO_E_BAD_CHAR;
	/*
	 * jansson validates UTF-8 strictly but offers it only through json_stringn, which also
	 * returns NULL when out of memory. The unchecked variant tells the two apart: if it too
	 * fails, memory ran out.
	 */
	j = json_stringn(s, len);
	if (j) {
		json_decref(j);
		return PROTO_OK;
	}
	j = json_stringn_nocheck(s, len);
	if (!j)
		return PROTO_E_NOMEM;
	json_decref(j);
	return PROTO_E_BAD_CHAR;
}
