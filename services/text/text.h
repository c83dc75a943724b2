/*
 * text: the one text-analysis module shared by indexing and querying, so
 * that both sides always produce the same terms.
 *
 * Pipeline, per code point of the original UTF-8 text:
 *
 *   decode (invalid bytes and NUL act as separators, never an error)
 *     -> NFKC + case folding + mark stripping (utf8proc: COMPAT|CASEFOLD|
 *        DECOMPOSE|STRIPMARK|IGNORE, then re-COMPOSE: "Éclair" -> "eclair",
 *        "ﬁ" -> "fi", "Ｔｏｋｙｏ" -> "tokyo", Hangul stays composed)
 *     -> classify: word char (letters, digits, connectors "_"; an apostrophe
 *        between letters and "." "," between digits stay inside a word),
 *        CJK char (Han, Hiragana, Katakana, Hangul), or separator
 *     -> words: the English Snowball stem (ASCII-letter words only; other
 *        words are their own stem) is emitted as TEXT_TERM_STEM with
 *        `exact` = 1 when the folded surface equals the stem; when they
 *        differ, the folded surface is ALSO emitted as TEXT_TERM_EXACT with
 *        the prefix byte TEXT_EXACT_PREFIX ("\x01running"), at the same
 *        position. So "running" is findable by stem ("run") and exactly.
 *     -> CJK runs: every character as a unigram (position p) and every pair
 *        of neighbours as a bigram (position of its first character), so 1-,
 *        2- and longer queries all match, also inside mixed text.
 *
 * Positions count words and CJK characters from 0; a stop word (none by
 * default) is skipped but still takes its position, so phrases stay exact.
 * Byte offsets always point into the ORIGINAL text (for snippets).
 *
 * Cost: no allocation per token; the ASCII path avoids utf8proc entirely.
 * An analyzer is NOT thread-safe (it owns a stemmer and scratch buffers):
 * use one per thread.
 */
#ifndef BULLETIN_TEXT_H
#define BULLETIN_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TEXT_EXACT_PREFIX '\x01'
/* Longest word kept, in folded bytes (longer words are cut on a character
 * boundary; the index hashes long terms anyway). */
#define TEXT_WORD_MAX 240

typedef enum {
    TEXT_TERM_STEM = 0,   /* stem of a word (or the word when not stemmable) */
    TEXT_TERM_EXACT = 1,  /* TEXT_EXACT_PREFIX + folded surface (only when != stem) */
    TEXT_TERM_CJK1 = 2,   /* one CJK character */
    TEXT_TERM_CJK2 = 3    /* two neighbouring CJK characters */
} text_term_kind;

typedef struct {
    const char *term;     /* folded term bytes, valid only during the callback */
    uint32_t len;
    uint32_t pos;         /* token position (words and CJK characters) */
    uint32_t start, end;  /* byte range in the original text */
    uint8_t kind;         /* text_term_kind */
    uint8_t exact;        /* STEM: 1 when the surface form equals the stem; else 1 */
} text_token;

/* Return 0 to continue, non-zero to stop (text_analyze then returns it). */
typedef int (*text_token_fn)(void *ud, const text_token *tok);

typedef struct {
    bool stem;                     /* English Snowball stemming (default true) */
    const char *const *stopwords;  /* NULL-terminated list, folded like text; NULL = none */
} text_options;

typedef struct text_analyzer text_analyzer;

/* Default options: stemming on, no stop words. */
text_options text_options_default(void);

/* A new analyzer (opts NULL = defaults). NULL on allocation failure or when
 * the stemmer cannot be created. Caller owns it. */
text_analyzer *text_analyzer_new(const text_options *opts);

/* Free and set *self to NULL; safe on NULL and twice. */
void text_analyzer_destroy(text_analyzer **self);

/* Analyze s[0..len) (any bytes; invalid UTF-8 is skipped), calling fn for
 * each token in text order. `pos_base` is added to every position. Returns
 * 0, or the first non-zero value fn returned. *next_pos (if not NULL) gets
 * the position after the last token (pos_base when no token). */
int text_analyze(text_analyzer *self, const char *s, size_t len, uint32_t pos_base,
                 text_token_fn fn, void *ud, uint32_t *next_pos);

/* Fold one word exactly as the analyzer would (NFKC, case, marks) into
 * out[0..cap), returning the length (0 when it is not a word). Used for
 * prefix queries, which match folded surfaces. */
size_t text_fold(text_analyzer *self, const char *s, size_t len, char *out, size_t cap);

/* --- snippets ------------------------------------------------------------ */

typedef struct {
    const char *const *terms;  /* terms to mark (as produced by text_analyze) */
    const uint32_t *term_lens;
    size_t nterms;
    const char *const *prefixes;  /* folded prefixes (prefix queries); may be NULL */
    const uint32_t *prefix_lens;
    size_t nprefixes;
    const char *mark_open;     /* NULL = "«" */
    const char *mark_close;    /* NULL = "»" */
    uint32_t max_chars;        /* window, in characters; 0 = 200 */
    uint32_t scan_bytes;       /* bytes of the body scanned for matches; 0 = 16384 */
} text_snippet_opts;

/* Write a snippet of body[0..len) to out[0..cap) (always NUL-terminated when
 * cap > 0): about max_chars characters around the densest cluster of
 * matching tokens, each match wrapped in the markers, cut on character
 * boundaries, "…" where text was cut. Work is bounded by scan_bytes (a 1 MiB
 * body costs the same as a 16 KiB one); with no match the snippet is the
 * beginning of the body. Invalid UTF-8 in the body is replaced by U+FFFD in
 * the output. Returns the snippet length in bytes (truncated to cap-1). */
size_t text_snippet(text_analyzer *self, const char *body, size_t len,
                    const text_snippet_opts *opts, char *out, size_t cap);

#endif
