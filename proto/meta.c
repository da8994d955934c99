/* meta: parses and builds the tus Upload-Metadata header that carries a print job's metadata. */
#include "proto/meta.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "proto/ascii.h"
#include "proto/base64.h"
#include "proto/num.h"
#include "proto/utf8.h"

#define META_DEFAULT_FORMAT "application/octet-stream"

/* Largest decoded value: the whole header being one value. */
#define META_VALUE_MAX BASE64_DECODED_MAX(META_HEADER_MAX)

/* Longest canonical header meta_encode can produce, with its NUL. */
#define META_ENCODED_MAX                                                                   \
	(sizeof("job-id ") + BASE64_ENCODED_LEN(UUID_LEN) + sizeof(",name ") +               \
	 BASE64_ENCODED_LEN(META_NAME_MAX) + sizeof(",format ") +                            \
	 BASE64_ENCODED_LEN(META_FORMAT_MAX) + sizeof(",copies ") + BASE64_ENCODED_LEN(3) +  \
	 sizeof(",submitted-at ") + BASE64_ENCODED_LEN(META_TIME_LEN) + sizeof(",encoding ") + \
	 BASE64_ENCODED_LEN(sizeof("identity") - 1) + sizeof(",size ") +                    \
	 BASE64_ENCODED_LEN(sizeof("9007199254740991") - 1) + 1)

/* 9999-12-31T23:59:59.999Z, the last instant meta_time_parse accepts. */
#define META_TIME_MAX_MS 253402300799999LL

static const char *const formats[] = {
	"application/pdf",
	"application/postscript",
	"application/vnd.hp-pcl",
	"image/pwg-raster",
	"image/urf",
	"text/plain",
	META_DEFAULT_FORMAT,
};

enum meta_field {
	FIELD_UNKNOWN,
	FIELD_JOB_ID,
	FIELD_NAME,
	FIELD_FORMAT,
	FIELD_COPIES,
	FIELD_SUBMITTED_AT,
	FIELD_ENCODING,
	FIELD_SIZE,
};

/* Recognized keys and the aliases common tus clients send; an alias counts as its key. */
static const struct {
	const char *key;
	enum meta_field field;
} known_keys[] = {
	{"job-id", FIELD_JOB_ID},
	{"name", FIELD_NAME},
	{"filename", FIELD_NAME},
	{"format", FIELD_FORMAT},
	{"filetype", FIELD_FORMAT},
	{"copies", FIELD_COPIES},
	{"submitted-at", FIELD_SUBMITTED_AT},
	{"encoding", FIELD_ENCODING},
	{"size", FIELD_SIZE},
};

/* A key as seen so far: its field, or for unknown keys its spelling, to find duplicates. */
struct seen_key {
	enum meta_field field;
	const char *key;
	size_t len;
};

/*
 * tus allows any key without spaces and commas; clients send keys such as "relativePath", so
 * everything visible in ASCII but ',' is accepted and only the recognized keys mean something.
 */
static int is_key_char(char c)
{
	return c > ' ' && c < 0x7f && c != ',';
}

static enum meta_field field_of(const char *key, size_t len)
{
	for (size_t i = 0; i < sizeof(known_keys) / sizeof(known_keys[0]); i++)
		if (strlen(known_keys[i].key) == len && memcmp(known_keys[i].key, key, len) == 0)
			return known_keys[i].field;
	return FIELD_UNKNOWN;
}

static int seen_before(const struct seen_key *seen, size_t n, const struct seen_key *k)
{
	for (size_t i = 0; i < n; i++) {
		if (seen[i].field != k->field)
			continue;
		if (k->field != FIELD_UNKNOWN)
			return 1;
		if (seen[i].len == k->len && memcmp(seen[i].key, k->key, k->len) == 0)
			return 1;
	}
	return 0;
}

static int is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

enum proto_err meta_time_parse(const char *v, size_t len, int64_t *out_ms)
{
	int year, mon, day, hour, min, sec, ms = 0;
	size_t frac = 0;
	struct tm tm;
	time_t t;

	/* "YYYY-MM-DDTHH:MM:SS" then optional ".f{1,3}" then "Z" */
	if (len < 20 || v[4] != '-' || v[7] != '-' || v[10] != 'T' || v[13] != ':' ||
	    v[16] != ':')
		return PROTO_E_META_TIME;
	if (v[19] == '.') {
		while (20 + frac < len && ascii_is_digit(v[20 + frac]))
			frac++;
		if (frac < 1 || frac > 3)
			return PROTO_E_META_TIME;
		ms = ascii_digits(v + 20, frac);
		for (size_t i = frac; i < 3; i++)
			ms *= 10;
		frac++; /* the dot */
	}
	if (len != 20 + frac || v[19 + frac] != 'Z')
		return PROTO_E_META_TIME;
	year = ascii_digits(v, 4);
	mon = ascii_digits(v + 5, 2);
	day = ascii_digits(v + 8, 2);
	hour = ascii_digits(v + 11, 2);
	min = ascii_digits(v + 14, 2);
	sec = ascii_digits(v + 17, 2);
	if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon) ||
	    hour < 0 || hour > 23 || min < 0 || min > 59 || sec < 0 || sec > 59)
		return PROTO_E_META_TIME;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return PROTO_E_META_TIME;
	*out_ms = (int64_t)t * 1000 + ms;
	return PROTO_OK;
}

enum proto_err meta_time_format(int64_t ms, char *buf, size_t cap)
{
	time_t t;
	struct tm tm;
	int n;

	if (ms < 0 || ms > META_TIME_MAX_MS)
		return PROTO_E_META_TIME;
	if (cap < META_TIME_LEN + 1)
		return PROTO_E_BUFFER;
	t = (time_t)(ms / 1000);
	if (!gmtime_r(&t, &tm))
		return PROTO_E_META_TIME;
	n = snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	if (n != META_TIME_LEN)
		return PROTO_E_META_TIME;
	return PROTO_OK;
}

enum proto_err meta_format_parse(const char *v, size_t len, char *out, size_t cap)
{
	char lower[META_FORMAT_MAX + 1];
	size_t n = 0;

	/* The media type ends at the first ';'; OWS is allowed only before that ';'. */
	while (n < len && v[n] != ';')
		n++;
	if (n < len)
		while (n > 0 && ascii_is_ows(v[n - 1]))
			n--;
	if (n == 0 || n > META_FORMAT_MAX)
		return PROTO_E_META_FORMAT;
	for (size_t i = 0; i < n; i++)
		lower[i] = ascii_lower(v[i]);
	lower[n] = '\0';
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		if (strlen(formats[i]) != n || memcmp(formats[i], lower, n) != 0)
			continue;
		if (cap < n + 1)
			return PROTO_E_BUFFER;
		memcpy(out, lower, n + 1);
		return PROTO_OK;
	}
	return PROTO_E_META_FORMAT;
}

void meta_init(struct job_meta *m, const char *job_id)
{
	memset(m, 0, sizeof(*m));
	memcpy(m->job_id, job_id, strnlen(job_id, UUID_LEN));
	memcpy(m->format, META_DEFAULT_FORMAT, sizeof(META_DEFAULT_FORMAT));
	m->copies = 1;
	m->submitted_at_ms = -1;
	m->encoding = META_ENCODING_IDENTITY;
	m->size = -1;
}

/* Applies one decoded value of a recognized key to m. */
static enum proto_err field_set(struct job_meta *m, enum meta_field field, const char *val,
				size_t len)
{
	enum proto_err rc;
	uint64_t copies, size;

	if (field == FIELD_UNKNOWN)
		return PROTO_OK;
	if (field == FIELD_NAME && len > META_NAME_MAX)
		return PROTO_E_TOO_LONG;
	rc = utf8_check_text(val, len);
	if (rc)
		return rc == PROTO_E_BAD_CHAR ? PROTO_E_META_TEXT : rc;
	switch (field) {
	case FIELD_JOB_ID:
		/* Present but empty is as wrong as any other non-UUID. */
		rc = jobid_client_parse(val, len, m->job_id);
		return rc == PROTO_E_EMPTY ? PROTO_E_UUID : rc;
	case FIELD_NAME:
		memcpy(m->name, val, len);
		m->name[len] = '\0';
		return PROTO_OK;
	case FIELD_FORMAT:
		/* browser tus clients send an empty filetype for a file of unknown type */
		if (len == 0)
			return PROTO_OK;
		return meta_format_parse(val, len, m->format, sizeof(m->format));
	case FIELD_COPIES:
		if (num_parse_u64(val, len, META_COPIES_MAX, &copies) || copies == 0)
			return PROTO_E_META_COPIES;
		m->copies = (unsigned)copies;
		return PROTO_OK;
	case FIELD_SUBMITTED_AT:
		return meta_time_parse(val, len, &m->submitted_at_ms);
	case FIELD_ENCODING:
		if (len == strlen("identity") && memcmp(val, "identity", len) == 0)
			m->encoding = META_ENCODING_IDENTITY;
		else if (len == strlen("zstd") && memcmp(val, "zstd", len) == 0)
			m->encoding = META_ENCODING_ZSTD;
		else
			return PROTO_E_META_ENCODING;
		return PROTO_OK;
	case FIELD_SIZE:
		if (num_parse_u64(val, len, (uint64_t)META_SIZE_MAX, &size))
			return PROTO_E_META_SIZE;
		m->size = (int64_t)size;
		return PROTO_OK;
	case FIELD_UNKNOWN:
		break;
	}
	return PROTO_OK;
}

/*
 * Parses one pair p[0..len), already cut at its commas with the OWS around them removed:
 * "key" or "key SP base64". Records its key in seen[*n_seen].
 */
static enum proto_err pair_parse(const char *p, size_t len, struct job_meta *m,
				 struct seen_key *seen, size_t *n_seen, int *have_job_id)
{
	unsigned char val[META_VALUE_MAX];
	const char *b64;
	size_t k = 0, b64_len, val_len = 0;
	struct seen_key key;
	enum proto_err rc;

	if (len == 0)
		return PROTO_E_META_PAIR;
	while (k < len && !ascii_is_ows(p[k]))
		k++;
	if (k == 0 || k > META_KEY_MAX)
		return PROTO_E_META_KEY;
	for (size_t i = 0; i < k; i++)
		if (!is_key_char(p[i]))
			return PROTO_E_META_KEY;
	/* One SP, then a non-empty base64 value without any further blank. */
	if (k < len) {
		if (p[k] != ' ' || k + 1 == len)
			return PROTO_E_META_PAIR;
		for (size_t i = k + 1; i < len; i++)
			if (ascii_is_ows(p[i]))
				return PROTO_E_META_PAIR;
	}
	key.field = field_of(p, k);
	key.key = p;
	key.len = k;
	if (seen_before(seen, *n_seen, &key))
		return PROTO_E_META_DUP_KEY;
	seen[(*n_seen)++] = key;
	b64 = p + k + 1;
	b64_len = k < len ? len - k - 1 : 0;
	rc = base64_decode(b64, b64_len, val, sizeof(val), &val_len);
	if (rc)
		return rc;
	rc = field_set(m, key.field, (const char *)val, val_len);
	if (rc)
		return rc;
	if (key.field == FIELD_JOB_ID)
		*have_job_id = 1;
	return PROTO_OK;
}

enum proto_err meta_parse_for(const char *v, size_t len, const char *job_id,
			      struct job_meta *out)
{
	struct seen_key seen[META_PAIRS_MAX];
	size_t n_seen = 0, pos = 0;
	int have_job_id = 0;
	struct job_meta m;
	enum proto_err rc;

	if (len > META_HEADER_MAX)
		return PROTO_E_TOO_LONG;
	meta_init(&m, job_id ? job_id : "");
	if (len == 0) {
		if (!job_id)
			return PROTO_E_META_JOB_ID; /* required, and a header without pairs lacks it */
		*out = m;
		return PROTO_OK;
	}
	for (;;) {
		size_t start = pos, end;

		while (pos < len && v[pos] != ',')
			pos++;
		end = pos;
		/* OWS is stripped only on the sides that touch a comma. */
		if (start > 0)
			while (start < end && ascii_is_ows(v[start]))
				start++;
		if (end < len)
			while (end > start && ascii_is_ows(v[end - 1]))
				end--;
		if (n_seen == META_PAIRS_MAX)
			return PROTO_E_META_TOO_MANY;
		rc = pair_parse(v + start, end - start, &m, seen, &n_seen, &have_job_id);
		if (rc)
			return rc;
		if (pos == len)
			break;
		pos++; /* the comma */
	}
	if (!have_job_id && !job_id)
		return PROTO_E_META_JOB_ID;
	if (have_job_id && job_id && strcmp(m.job_id, job_id) != 0)
		return PROTO_E_META_JOB_ID_MISMATCH;
	/* a zstd job says what it decodes to; an identity job's size is its length */
	if ((m.encoding == META_ENCODING_ZSTD) != (m.size != -1))
		return PROTO_E_META_SIZE;
	*out = m;
	return PROTO_OK;
}

enum proto_err meta_parse(const char *v, size_t len, struct job_meta *out)
{
	return meta_parse_for(v, len, NULL, out);
}

/* Appends ",key base64(val)" (no comma when first) to buf at *pos. */
static enum proto_err pair_append(char *buf, size_t cap, size_t *pos, const char *key,
				  const char *val, size_t val_len)
{
	size_t klen = strlen(key), n = 0;
	enum proto_err rc;

	if (*pos + 1 + klen + 1 >= cap)
		return PROTO_E_BUFFER;
	if (*pos)
		buf[(*pos)++] = ',';
	memcpy(buf + *pos, key, klen);
	*pos += klen;
	buf[(*pos)++] = ' ';
	rc = base64_encode((const unsigned char *)val, val_len, buf + *pos, cap - *pos, &n);
	if (rc)
		return rc;
	*pos += n;
	return PROTO_OK;
}

enum proto_err meta_encode(const struct job_meta *m, char *buf, size_t cap, size_t *out_len)
{
	char tmp[META_ENCODED_MAX];
	char copies[16], when[META_TIME_LEN + 1], size[24];
	size_t pos = 0;
	enum proto_err rc;
	int n;

	rc = pair_append(tmp, sizeof(tmp), &pos, "job-id", m->job_id,
			 strnlen(m->job_id, sizeof(m->job_id)));
	if (rc)
		return rc;
	if (m->name[0]) {
		rc = pair_append(tmp, sizeof(tmp), &pos, "name", m->name,
				 strnlen(m->name, sizeof(m->name)));
		if (rc)
			return rc;
	}
	rc = pair_append(tmp, sizeof(tmp), &pos, "format", m->format,
			 strnlen(m->format, sizeof(m->format)));
	if (rc)
		return rc;
	n = snprintf(copies, sizeof(copies), "%u", m->copies);
	rc = pair_append(tmp, sizeof(tmp), &pos, "copies", copies, (size_t)n);
	if (rc)
		return rc;
	if (m->submitted_at_ms != -1) {
		rc = meta_time_format(m->submitted_at_ms, when, sizeof(when));
		if (rc)
			return rc;
		rc = pair_append(tmp, sizeof(tmp), &pos, "submitted-at", when, META_TIME_LEN);
		if (rc)
			return rc;
	}
	/* identity is the default: only a zstd job names its encoding and size */
	if (m->encoding == META_ENCODING_ZSTD) {
		if (m->size < 0 || m->size > META_SIZE_MAX)
			return PROTO_E_META_SIZE;
		rc = pair_append(tmp, sizeof(tmp), &pos, "encoding", "zstd", strlen("zstd"));
		if (rc)
			return rc;
		n = snprintf(size, sizeof(size), "%lld", (long long)m->size);
		rc = pair_append(tmp, sizeof(tmp), &pos, "size", size, (size_t)n);
		if (rc)
			return rc;
	} else if (m->encoding != META_ENCODING_IDENTITY) {
		return PROTO_E_META_ENCODING;
	} else if (m->size != -1) {
		return PROTO_E_META_SIZE;
	}
	if (cap < pos + 1)
		return PROTO_E_BUFFER;
	memcpy(buf, tmp, pos);
	buf[pos] = '\0';
	if (out_len)
		*out_len = pos;
	return PROTO_OK;
}
