/*
 * hash: BLAKE2b (libsodium crypto_generichash) for content identity and key
 * derivation.
 *
 *   uint8_t h[HASH_CONTENT_BYTES];
 *   hash_article_content(article, h);        // what the store compares on upsert
 *
 *   char hex[2 * 32 + 1];
 *   hash_hex(key, key_len, hex, 32);          // "#"-prefixed long keys, derived keys
 *
 * All functions are thread-safe and allocate nothing.
 */
#ifndef BULLETIN_HASH_H
#define BULLETIN_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "bulletin.pb-c.h"

/* Size of Article.content_hash (BLAKE2b-128). */
#define HASH_CONTENT_BYTES 16

/* Digest sizes accepted by hash_bytes/hash_hex (libsodium's limits). */
#define HASH_MIN_BYTES 16
#define HASH_MAX_BYTES 64

/*
 * BLAKE2b-128 of an article's content: a canonical, length-prefixed encoding
 * of key, url, site, category, title, body, tags (count, then each), author,
 * lang, published_at and raw. NOT covered: id, seq, ingested_at, updated_at,
 * content_hash (they describe the stored version, not the content).
 * Every string is taken as bytes exactly as given (no normalization here:
 * ingest normalizes before the store hashes). NULL strings count as empty.
 * The encoding is versioned by a domain prefix, so the value is stable across
 * builds and machines; changing it would make every stored article look
 * "changed" once.
 */
void hash_article_content(const Bulletin__Article *a, uint8_t out[HASH_CONTENT_BYTES]);

/*
 * BLAKE2b of data[0..len) with a digest of `bytes` bytes (HASH_MIN_BYTES..
 * HASH_MAX_BYTES; clamped into that range) written to out.
 */
void hash_bytes(const void *data, size_t len, uint8_t *out, size_t bytes);

/*
 * BLAKE2b of data[0..len) with a digest of `bytes` bytes (clamped as above),
 * written to out as lowercase hex plus a NUL: out must have room for
 * 2 * bytes + 1 characters. Example: bytes = 16 gives 32 hex digits.
 */
void hash_hex(const void *data, size_t len, char *out, size_t bytes);

/* Lowercase hex of data[0..len) into out (room for 2 * len + 1). */
void hash_to_hex(const void *data, size_t len, char *out);

#endif
