/*
 * ingest_text: the normalization primitives of ingest (Unicode NFC, Unicode
 * whitespace, trimming, CRLF, lower case). Every input is valid UTF-8 without
 * NUL (the caller checked it with utf8_valid / wire_check_strings).
 *
 * Functions returning char * return a new NUL-terminated string the caller
 * owns (free()), or NULL when out of memory; *out_len (if not NULL) gets its
 * length. In-place functions work on a writable NUL-terminated string, never
 * make it longer, and return the new length.
 */
#ifndef INGEST_TEXT_H
#define INGEST_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True for the code points of Unicode's White_Space property (tab, LF, VT, FF,
 * CR, space, U+0085, NBSP, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F,
 * U+205F, U+3000). */
bool ingest_text_is_space(uint32_t cp);

/* Decode one code point of valid UTF-8 at s (n bytes left, n >= 1); returns
 * its length in bytes (1 for a stray byte, which valid input never has). */
size_t ingest_text_decode(const char *s, size_t n, uint32_t *cp);

/* Unicode NFC of s[0..len). Text that ingest_text_nfc_quick accepts is
 * copied as is. */
char *ingest_text_nfc(const char *s, size_t len, size_t *out_len);

/* True when s[0..len) (UTF-8) is certainly in NFC already: every code point
 * is one that NFC never changes in any context (see ingest_text.c). False
 * means "maybe not" (and for invalid UTF-8). A quick check (UAX #15 style)
 * from utf8proc's tables; it allocates nothing. */
bool ingest_text_nfc_quick(const char *s, size_t len);

/* Remove leading and trailing White_Space, in place. */
size_t ingest_text_trim(char *s, size_t len);

/* Replace every run of White_Space (newlines, tabs, NBSP, ...) by one ASCII
 * space and trim both ends, in place. */
size_t ingest_text_collapse(char *s, size_t len);

/* Replace every CR LF pair by LF, in place. */
size_t ingest_text_crlf(char *s, size_t len);

/* Simple (one to one) Unicode lower case of s[0..len). */
char *ingest_text_lower(const char *s, size_t len, size_t *out_len);

/* Normalized forms used by ingest, from raw input s[0..len):
 *   title: NFC, whitespace collapsed, trimmed
 *   field: NFC, trimmed (site, category, author, tags, url, key)
 *   body:  NFC, CRLF -> LF, trimmed (line structure kept) */
char *ingest_text_title(const char *s, size_t len, size_t *out_len);
char *ingest_text_field(const char *s, size_t len, size_t *out_len);
char *ingest_text_body(const char *s, size_t len, size_t *out_len);

#endif
