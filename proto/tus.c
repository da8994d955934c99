/* tus: the tus 1.0.0 header values of the protocol's upload profile. */
#include "proto/tus.h"

#include <stdio.h>
#include <string.h>

#include "proto/ascii.h"
#include "proto/header.h"
#include "proto/num.h"

/* Our own tables: strftime's %a and %b follow the locale, and the wire format must not. */
static const char day_names[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char month_names[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

#define TUS_YEAR_MIN 1970
#define TUS_YEAR_MAX 9999

enum proto_err tus_resumable_check(const char *v, size_t len)
{
	if (len == 0)
		return PROTO_E_EMPTY;
	if (len != sizeof(TUS_VERSION) - 1 || memcmp(v, TUS_VERSION, len) != 0)
		return PROTO_E_TUS_VERSION;
	return PROTO_OK;
}

enum proto_err tus_offset_parse(const char *v, size_t len, uint64_t *out)
{
	return num_parse_u64(v, len, TUS_SIZE_LIMIT, out);
}

enum proto_err tus_length_parse(const char *v, size_t len, uint64_t max, uint64_t *out)
{
	/* A misconfigured Tus-Max-Size must not lift the protocol's own ceiling. */
	if (max > TUS_SIZE_LIMIT)
		max = TUS_SIZE_LIMIT;
	return num_parse_u64(v, len, max, out);
}

enum proto_err tus_content_type_check(const char *v, size_t len)
{
	if (len == 0)
		return PROTO_E_EMPTY;
	if (!header_equals(v, len, TUS_CONTENT_TYPE))
		return PROTO_E_TUS_CONTENT_TYPE;
	return PROTO_OK;
}

enum proto_err tus_date_format(time_t t, char *buf, size_t cap)
{
	struct tm tm;
	int n;

	if (cap < TUS_HTTP_DATE_LEN + 1)
		return PROTO_E_BUFFER;
	if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < TUS_YEAR_MIN ||
	    tm.tm_year + 1900 > TUS_YEAR_MAX)
		return PROTO_E_RANGE;
	n = snprintf(buf, cap, "%s, %02d %s %04d %02d:%02d:%02d GMT", day_names[tm.tm_wday],
		     tm.tm_mday, month_names[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		     tm.tm_sec);
	/* Cannot happen for a year in range; kept so a wrong table can never go unnoticed. */
	if (n != TUS_HTTP_DATE_LEN)
		return PROTO_E_RANGE;
	return PROTO_OK;
}

/* Index of the three-letter name at s in table (case-sensitive, as RFC 9110 says), or -1. */
static int name_index(const char *s, const char (*table)[4], int n)
{
	for (int i = 0; i < n; i++)
		if (memcmp(s, table[i], 3) == 0)
			return i;
	return -1;
}

static int is_leap(int year)
{
	return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int month_days(int year, int mon)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	return mon == 1 && is_leap(year) ? 29 : days[mon];
}

/*
 * IMF-fixdate = day-name "," SP DD SP month SP YYYY SP HH ":" MM ":" SS SP "GMT", fixed
 * length. The leap second ":60" that RFC 9110 tolerates is refused: tus_date_format never
 * writes it, and timegm would silently move it to the next minute.
 */
enum proto_err tus_date_parse(const char *v, size_t len, time_t *out)
{
	struct tm tm = {0}, check;
	int wday, mday, mon, year, hour, min, sec;
	time_t t;

	if (len != TUS_HTTP_DATE_LEN)
		return PROTO_E_HTTP_DATE;
	if (memcmp(v + 3, ", ", 2) != 0 || v[7] != ' ' || v[11] != ' ' || v[16] != ' ' ||
	    v[19] != ':' || v[22] != ':' || memcmp(v + 25, " GMT", 4) != 0)
		return PROTO_E_HTTP_DATE;
	wday = name_index(v, day_names, 7);
	mon = name_index(v + 8, month_names, 12);
	mday = ascii_digits(v + 5, 2);
	year = ascii_digits(v + 12, 4);
	hour = ascii_digits(v + 17, 2);
	min = ascii_digits(v + 20, 2);
	sec = ascii_digits(v + 23, 2);
	if (wday < 0 || mon < 0 || mday < 0 || year < 0 || hour < 0 || min < 0 || sec < 0)
		return PROTO_E_HTTP_DATE;
	if (year < TUS_YEAR_MIN || hour > 23 || min > 59 || sec > 59 || mday < 1 ||
	    mday > month_days(year, mon))
		return PROTO_E_HTTP_DATE;
	tm.tm_year = year - 1900;
	tm.tm_mon = mon;
	tm.tm_mday = mday;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (t == (time_t)-1 || !gmtime_r(&t, &check))
		return PROTO_E_HTTP_DATE;
	/* A day name that disagrees with the date is a forged or broken value, not a typo. */
	if (check.tm_wday != wday || check.tm_mday != mday || check.tm_mon != mon ||
	    check.tm_year != year - 1900)
		return PROTO_E_HTTP_DATE;
	*out = t;
	return PROTO_OK;
}
