/*
 * ingest_raw: structure from a raw scraped page.
 *
 * The format (see ../shared/samples/000_6b860823d964cfe5.txt):
 *
 *   Site - Category - Title            <- header: split on " - "; the title is
 *                                         everything after the second " - "
 *   (blank line)
 *   Title                              <- repeated; skipped when it equals the
 *   (blank lines)                         header's title after normalization
 *   Body ...
 *
 * CR LF line ends are accepted. The parts are returned as written (not
 * normalized; ingest_validate normalizes them like any article).
 */
#ifndef INGEST_RAW_H
#define INGEST_RAW_H

#include <stddef.h>

typedef struct {
    char *site, *category, *title, *body; /* each NUL-terminated, owned */
} ingest_raw_parts;

enum { INGEST_RAW_OK = 0, INGEST_RAW_BAD = 1, INGEST_RAW_NOMEM = -1 };

/* Split text[0..len) (valid UTF-8, no NUL). Returns INGEST_RAW_OK (free the
 * parts with ingest_raw_parts_clear), INGEST_RAW_BAD with a sentence in why
 * saying what was expected, or INGEST_RAW_NOMEM. */
int ingest_raw_extract(const char *text, size_t len, ingest_raw_parts *out, char *why,
                       size_t why_cap);

void ingest_raw_parts_clear(ingest_raw_parts *p);

#endif
