/*
 * ingest_validate: one IngestItem -> one normalized, validated Article ready
 * for the store (or a rejection with a sentence a person understands), plus
 * warnings (encoding damage, ignored fields).
 *
 * The order of work for one item:
 *   raw page? -> ingest_raw_extract -> the parts become an Article
 *   normalize (NFC everywhere; title whitespace collapsed; fields trimmed;
 *   body CRLF -> LF and trimmed; tags deduplicated; lang lower-cased)
 *   -> check the limits below -> derive the key -> detect damage (warnings).
 *
 * Fields only the store may set (id, seq, ingested_at, updated_at,
 * content_hash) are IGNORED with a warning, not rejected: a client that
 * re-sends an article it read back (with those fields filled in) still gets
 * it written, and is told the fields were dropped.
 *
 * UTF-8 validity and NUL bytes are checked by the caller on the raw request
 * bytes (protobuf-c checks neither and cuts strings at NUL): see
 * ingest_doc_reject and ingest_server.c.
 */
#ifndef INGEST_VALIDATE_H
#define INGEST_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bulletin.pb-c.h"

#define INGEST_MAX_TITLE 1000
#define INGEST_MAX_BODY (1024 * 1024)
#define INGEST_MAX_FIELD 256 /* site, category, author */
#define INGEST_MAX_KEY 2048  /* key, url */
#define INGEST_MAX_TAGS 32
#define INGEST_MAX_TAG 64
#define INGEST_MAX_LANG 35
/* raw page: a full body plus room for the header and the repeated title */
#define INGEST_MAX_RAW (INGEST_MAX_BODY + 4 * INGEST_MAX_TITLE + 4 * INGEST_MAX_FIELD)
#define INGEST_MIN_PUBLISHED_MS 631152000000LL /* 1990-01-01T00:00:00Z */
#define INGEST_MAX_FUTURE_MS (24LL * 3600 * 1000) /* published_at <= now + 1 day */

/* One prepared item. `art` is the normalized article; every string in it is
 * owned by the doc (never NULL, "" when empty). When `error` is set the item
 * is rejected and `art` must not be sent. */
typedef struct {
    Bulletin__Article art;
    char *error;
    char **warnings;
    size_t n_warnings, cap_warnings;
} ingest_doc;

void ingest_doc_init(ingest_doc *d);
/* Free everything the doc owns and re-init it. Safe twice. */
void ingest_doc_clear(ingest_doc *d);
/* Add a warning / set the rejection sentence (the first rejection wins).
 * 0, or -1 when out of memory. */
int ingest_doc_warn(ingest_doc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ingest_doc_reject(ingest_doc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Check every string of the raw bytes of a Request (protobuf-c checks
 * neither UTF-8 nor NUL, and cuts strings at NUL) and reject docs[N] for each
 * bad string under "ingest.items[N]", naming the field and the byte offset.
 * Returns the number of bad strings found anywhere in the request. */
int ingest_check_strings(const void *raw, size_t len, ingest_doc *docs, size_t n);

/* Prepare one item. `d` must be initialized; if d->error is already set (the
 * caller found a bad string) the item is left rejected. now_ms = wall clock.
 * Returns 0 when ready to write, 1 when rejected (d->error set), -1 when out
 * of memory. */
int ingest_item_prepare(const Bulletin__IngestItem *item, int64_t now_ms, ingest_doc *d);

/* The same for an Article given directly (used for raw pages too). */
int ingest_article_prepare(const Bulletin__Article *in, int64_t now_ms, ingest_doc *d);

#endif
