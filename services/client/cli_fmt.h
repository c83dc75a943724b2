/*
 * cli_fmt: the pure parts of the bulletin command's read commands (list,
 * get, search): cursor text, dates, the JSON of a list page or a search
 * answer, snippets for a terminal and the human table.
 * No I/O except the FILE * given; built into bulletin_client_lib so that the
 * unit tests can reach them (not part of the public API).
 *
 * Cursors: the service's cursor is opaque bytes. The command shows it as
 * base64url without padding (RFC 4648 section 5: A-Z a-z 0-9 - _), which is
 * safe in a shell and a URL; --cursor accepts that text back, with or
 * without '=' padding.
 */
#ifndef BULLETIN_CLI_FMT_H
#define BULLETIN_CLI_FMT_H

#include "bulletin.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* base64url of len bytes, NUL-terminated, caller frees. "" for len 0. NULL
 * when out of memory. */
char *cli_cursor_encode(const void *data, size_t len);

/* Decode base64url text (optional '=' padding). On success returns 0 and
 * *out (caller frees; NULL when the text is empty) and *len. -1 when the text
 * is not base64url (a character outside the alphabet, a bad length, padding
 * in the middle, non-zero trailing bits) or out of memory. */
int cli_cursor_decode(const char *text, void **out, size_t *len);

/* A DATE option: RFC 3339 ("2024-05-01T08:30:00Z", "...+02:00") or a plain
 * date ("2024-05-01", midnight UTC). 0 and *ms, or -1. */
int cli_parse_date(const char *text, int64_t *ms);

/* A non-negative decimal integer that fits in uint64 ("12"); -1 otherwise
 * (signs, spaces, empty, overflow). */
int cli_parse_u64(const char *text, uint64_t *out);

/* The read commands' shared options (list, search) as given on the command
 * line (NULL = not given); cli.h's CLI_READ_FILTER_OPTS and CLI_READ_MIN_SEQ_OPT
 * are their rows of a command's option table. */
typedef struct {
    const char *site, *category, *tag, *since, *until, *min_seq, *cursor;
} cli_read_args;

/* Fill *filter from --site/--category/--tag/--since/--until (an empty
 * site/category/tag = no filter), *min_seq from --min-seq and *cursor/
 * *cursor_len from --cursor (caller frees *cursor). On a bad value, print a
 * sentence naming `cmd` and the option to stderr and return -1; else 0. */
int cli_read_args_apply(const char *cmd, const cli_read_args *a, bulletin_filter *filter,
                        uint64_t *min_seq, void **cursor, size_t *cursor_len);

/* One list page as a JSON object with bulletin.proto's field names:
 *   {"items": [{"id", "key", "site", "category", "title", "published_at",
 *               "excerpt", "tags", "seq"}...],
 *    "next_cursor": "<base64url>" or null at the end,
 *    "total": N (only when the page has one),
 *    "served_by": "...", "applied_seq": N}
 * published_at is RFC 3339 UTC with milliseconds (null when absent), as in
 * `bulletin get --json`; absent strings are null. NULL when out of memory. */
json_t *cli_json_list_page(const bulletin_list_page *p);

/* One search answer as a JSON object with bulletin.proto's field names:
 *   {"hits": [{"id", "key", "site", "category", "title", "published_at",
 *              "score", "snippet"}...],
 *    "total": N, "next_cursor": "<base64url>" or null at the end,
 *    "categories": [{"value", "count"}...], "sites": [...] (only when
 *    with_facets), "took_us": N, "served_by": "...", "applied_seq": N}
 * published_at as in cli_json_list_page. NULL when out of memory. */
json_t *cli_json_search_page(const bulletin_search_result *r, int with_facets);

/* Markers the bulletin command asks for when it prints to a terminal:
 * private-use characters that cli_snippet_render turns into ANSI bold. */
#define CLI_MARK_OPEN "\xee\x80\x80"  /* U+E000 */
#define CLI_MARK_CLOSE "\xee\x80\x81" /* U+E001 */

/* A snippet (or title) for a human: control characters (newlines, tabs,
 * escape sequences from a scraped page) become spaces; with ansi, the
 * CLI_MARK_OPEN/CLI_MARK_CLOSE markers become bold yellow on/off (and the
 * text always ends with the attributes reset). Caller frees; NULL when out
 * of memory. */
char *cli_snippet_render(const char *s, int ansi);

/* Display width of UTF-8 text in a terminal (East Asian wide = 2, combining
 * = 0, control = 0); invalid bytes count 1 each. */
size_t cli_text_width(const char *s);

/* Copy s into out (cap bytes) fitted to exactly `width` columns: cut at a
 * character boundary with "…" when too wide, padded with spaces when
 * narrower. Control characters (newline, tab) become spaces. Returns out. */
char *cli_fit(const char *s, size_t width, char *out, size_t cap);

/* The human table of `bulletin list`. */
void cli_table_header(FILE *to);
void cli_table_row(FILE *to, const bulletin_summary *s);

#endif
