/*
 * ingest_damage: detection of encoding damage in scraped text. Detection
 * only: the text is never changed; ingest reports what it found as warnings
 * on the article's result.
 *
 * Three kinds:
 *   LOST      '??' standing for lost characters: a run of two or more '?'
 *             with a letter right before or right after it ("??of",
 *             "in??the"); "What??" after a word counts too, "?? " alone not.
 *   FFFD      U+FFFD REPLACEMENT CHARACTER (a decoder already gave up).
 *   MOJIBAKE  UTF-8 that was read as Latin-1/cp1252 and re-encoded: U+00C2,
 *             U+00C3 or U+00E2 followed by a character of U+0080..U+00BF or
 *             one of the characters cp1252 puts at 0x80..0x9F ("Ã©" for "é",
 *             "â€™" for "'", "Ã¼" for "ü").
 * One pass over the bytes, no allocation: ~1 ms per MiB.
 */
#ifndef INGEST_DAMAGE_H
#define INGEST_DAMAGE_H

#include <stddef.h>

typedef enum { INGEST_DAMAGE_LOST = 0, INGEST_DAMAGE_FFFD, INGEST_DAMAGE_MOJIBAKE,
               INGEST_DAMAGE_KINDS } ingest_damage_kind;

typedef struct {
    size_t count[INGEST_DAMAGE_KINDS]; /* places found */
    size_t first[INGEST_DAMAGE_KINDS]; /* byte offset of the first one */
} ingest_damage;

/* Scan s[0..len) (valid UTF-8). */
void ingest_damage_find(const char *s, size_t len, ingest_damage *out);

/* Write the warning sentence for one kind found in field `field` of s, e.g.
 *   body: 3 places where characters look lost ('??'), first at byte 812: 'culture??of the'
 * into buf (always NUL-terminated). Returns 0, or -1 when that kind was not found. */
int ingest_damage_describe(const char *field, const char *s, size_t len,
                           const ingest_damage *d, ingest_damage_kind kind, char *buf,
                           size_t cap);

#endif
