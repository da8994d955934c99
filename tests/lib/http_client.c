/* http_client: requests from integration tests to the real programs, over libcurl or raw TCP. */
#include "tests/lib/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "proto/problem.h"

static struct {
	char ca[4096], cert[4096], key[4096];
} tls;

void http_client_tls(const char *ca_file, const char *cert_file, const char *key_file)
{
	snprintf(tls.ca, sizeof(tls.ca), "%s", ca_file ? ca_file : "");
	snprintf(tls.cert, sizeof(tls.cert), "%s", cert_file ? cert_file : "");
	snprintf(tls.key, sizeof(tls.key), "%s", key_file ? key_file : "");
}

struct buffer {
	char *data;
	size_t len;
	size_t cap;
};

static size_t buffer_add(char *ptr, size_t size, size_t n, void *cls)
{
	struct buffer *b = cls;
	size_t add = size * n;

	if (b->len + add + 1 > b->cap) {
		/* Doubling: large bodies (release content) in O(n), not one realloc per chunk. */
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap < b->len + add + 1)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p)
			return 0;
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, ptr, add);
	b->len += add;
	b->data[b->len] = '\0';
	return add;
}

/* Keeps only the last response's header block (a 100 Continue comes first). */
static size_t header_add(char *ptr, size_t size, size_t n, void *cls)
{
	struct buffer *b = cls;

	if (size * n >= 5 && strncmp(ptr, "HTTP/", 5) == 0)
		b->len = 0;
	return buffer_add(ptr, size, n, cls);
}

int http_request(const char *method, const char *url, const char *const *headers,
		 const void *body, size_t body_len, struct http_reply *out)
{
	struct buffer hb = {0}, bb = {0};
	struct curl_slist *list = NULL;
	CURL *h = curl_easy_init();
	CURLcode rc;

	if (!h)
		return -1;
	for (size_t i = 0; headers && headers[i]; i++)
		list = curl_slist_append(list, headers[i]);
	/* curl's own Expect: 100-continue would slow every test by its timeout on refusals */
	list = curl_slist_append(list, "Expect:");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, buffer_add);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &bb);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_add);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &hb);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	if (tls.ca[0])
		curl_easy_setopt(h, CURLOPT_CAINFO, tls.ca);
	if (tls.cert[0]) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, tls.cert);
		curl_easy_setopt(h, CURLOPT_SSLKEY, tls.key);
	}
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	else
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	}
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
		out->headers = hb.data ? hb.data : strdup("");
		out->body = bb.data ? bb.data : strdup("");
		out->body_len = bb.len;
	} else {
		free(hb.data);
		free(bb.data);
	}
	curl_slist_free_all(list);
	curl_easy_cleanup(h);
	return rc == CURLE_OK ? 0 : -1;
}

const char *http_reply_header(const struct http_reply *r, const char *name, char *buf, size_t cap)
{
	size_t n = strlen(name);

	for (const char *line = r->headers; line && *line;) {
		const char *end = strstr(line, "\r\n");
		size_t len = end ? (size_t)(end - line) : strlen(line);

		if (len > n && line[n] == ':' && strncasecmp(line, name, n) == 0) {
			const char *v = line + n + 1;
			size_t vlen = len - n - 1;

			while (vlen && (*v == ' ' || *v == '\t')) {
				v++;
				vlen--;
			}
			if (vlen >= cap)
				vlen = cap - 1;
			memcpy(buf, v, vlen);
			buf[vlen] = '\0';
			return buf;
		}
		line = end ? end + 2 : line + len;
	}
	return NULL;
}

void http_reply_free(struct http_reply *r)
{
	free(r->headers);
	free(r->body);
	r->headers = r->body = NULL;
}

static long ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

long tcp_exchange(int port, const void *raw, size_t len, char *out, size_t cap, int timeout_ms)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timespec t0;
	size_t got = 0;
	int fd;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    send(fd, raw, len, MSG_NOSIGNAL) != (ssize_t)len) {
		close(fd);
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (got + 1 < cap) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		long left = timeout_ms - ms_since(&t0);
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		n = recv(fd, out + got, cap - 1 - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	out[got] = '\0';
	close(fd);
	return (long)got;
}

int http_reply_problem(const struct http_reply *r, long status, const char *slug, char **detail)
{
	size_t plen = strlen(PROBLEM_TYPE_PREFIX);
	const char *type, *d;
	json_t *doc;
	int rc = -1;

	if (r->status != status || !r->body)
		return -1;
	doc = json_loadb(r->body, r->body_len, 0, NULL);
	type = json_string_value(json_object_get(doc, "type"));
	if (json_is_object(doc) && type && !strncmp(type, PROBLEM_TYPE_PREFIX, plen) &&
	    !strcmp(type + plen, slug)) {
		rc = 0;
		if (detail) {
			d = json_string_value(json_object_get(doc, "detail"));
			*detail = d ? strdup(d) : NULL;
		}
	}
	json_decref(doc);
	return rc;
}
