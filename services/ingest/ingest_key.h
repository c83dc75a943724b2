/*
 * ingest_key: the key of an article (the store upserts by key).
 *
 *   1. an explicit key (trimmed) is kept as is;
 *   2. else the canonical URL, when a url is given;
 *   3. else "h:" + hex BLAKE2b-128 of site "\x1f" title "\x1f" body, taken
 *      after normalization (so the same text always gets the same key).
 */
#ifndef INGEST_KEY_H
#define INGEST_KEY_H

#include <stddef.h>

/* "h:" + 32 hex digits + NUL */
#define INGEST_KEY_HASH_LEN 35

/* Canonical form of an absolute URL "scheme://authority/path?query#fragment":
 * scheme and host lower-cased, the default port dropped (:80 for http/ws,
 * :443 for https/wss), the #fragment dropped, path and query kept byte for
 * byte, and a path of just "/" dropped ("http://a.org/" -> "http://a.org",
 * "http://a.org/?q" -> "http://a.org?q"). Userinfo is kept as is.
 * Returns a new string (caller frees), or NULL when url is not such an URL
 * (*not_url = 1) or memory ran out (*not_url = 0). */
char *ingest_key_canonical_url(const char *url, size_t len, int *not_url);

/* out = "h:" + hex BLAKE2b-128(site "\x1f" title "\x1f" body), computed with
 * services/core/hash.h. 0, or -1 when out of memory. */
int ingest_key_hash(const char *site, const char *title, const char *body,
                    char out[INGEST_KEY_HASH_LEN]);

#endif
