/* locations: the client's locations.config, where to deliver from each place the laptop goes. */
#ifndef FSG_CLIENT_LOCATIONS_H
#define FSG_CLIENT_LOCATIONS_H

#include <stddef.h>

#define LOCATIONS_DEFAULT_ID "Default" /* the location of the public gateway */
#define LOCATIONS_MAX 64               /* locations in one file */
#define LOCATIONS_ADDR_MAX 16          /* addresses of one location */
#define LOCATIONS_ID_MAX 63            /* bytes of an id */
#define LOCATIONS_NAME_MAX 127         /* bytes of a name */
#define LOCATIONS_URL_MAX 511          /* bytes of an address */

struct locations;

/*
 * Reads a locations.config (JSON, at most 1 MiB):
 *   {"current": "prague",
 *    "locations": [
 *      {"id": "prague", "name": "Prague office",
 *       "addresses": ["https://print-1.prague.example", "https://print-2.prague.example:8443"]},
 *      {"id": "Default", "name": "Public server", "addresses": ["https://print.example.com"]}]}
 * Rules: "locations" is a non-empty array of at most LOCATIONS_MAX objects; each has "id"
 * (1..LOCATIONS_ID_MAX bytes of [A-Za-z0-9._-], unique), "name" (optional, UTF-8 text without
 * control characters, at most LOCATIONS_NAME_MAX bytes; default the id) and "addresses" (1 to
 * LOCATIONS_ADDR_MAX strings). An address is an absolute https URL (parsed with libcurl's URL
 * API) with a host, an optional port, and no user info, query or fragment; its path must be
 * empty or "/" (stored without the trailing slash, e.g. "https://h:8443"). "current" is optional
 * and, when given, names a location of the file. Unknown members are errors (typos would
 * otherwise silently route jobs elsewhere).
 * Returns the object or NULL with one line ("FILE: reason", naming the location index and the
 * member) in err.
 */
struct locations *locations_load(const char *path, char *err, size_t err_cap);

/* As locations_load, from a string (name is used in errors in place of the path). */
struct locations *locations_parse(const char *json, const char *name, char *err, size_t err_cap);

void locations_free(struct locations *l);

size_t locations_count(const struct locations *l);
const char *locations_id(const struct locations *l, size_t i);
const char *locations_name(const struct locations *l, size_t i);
size_t locations_address_count(const struct locations *l, size_t i);
const char *locations_address(const struct locations *l, size_t i, size_t a);
/* Index of the location with that id (exact match), or -1. */
long locations_find(const struct locations *l, const char *id);
/* The file's "current" id, or NULL when it has none. */
const char *locations_current(const struct locations *l);

/*
 * The order in which to try locations: first the location named by override (when not NULL or
 * empty) or else the file's current one, then the Default location when it is another one.
 * Writes up to 2 indexes into order and returns how many. Returns -1 when override names no
 * location of the file. With neither a current location nor a Default one, returns 0.
 */
int locations_plan(const struct locations *l, const char *override, size_t order[2]);

#endif
