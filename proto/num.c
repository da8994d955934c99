/* num: strict decimal numbers as they appear in headers, metadata and Redis values. */
#include "proto/num.h"

#include "proto/ascii.h"

enum proto_err num_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0)
		return PROTO_E_EMPTY;
	for (size_t i = 0; i < len; i++)
		if (!ascii_is_digit(s[i]))
			return PROTO_E_NOT_NUMBER;
	if (len > 1 && s[0] == '0')
		return PROTO_E_LEADING_ZERO;
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (v > (UINT64_MAX - d) / 10)
			return PROTO_E_RANGE;
		v = v * 10 + d;
	}
	if (v > max)
		return PROTO_E_RANGE;
	*out = v;
	return PROTO_OK;
}
