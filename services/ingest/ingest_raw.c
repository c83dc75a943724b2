/*
 * ingest_raw: see ingest_raw.h. Line-oriented, one pass, no copies of the
 * body beyond the one returned.
 */
#include "ingest_raw.h"

#include "ingest_text.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ingest_raw_parts_clear(ingest_raw_parts *p)
{
    free(p->site);
    free(p->category);
    free(p->title);
    free(p->body);
    memset(p, 0, sizeof *p);
}

/* The line starting at *pos: [*pos, end) without CR LF / LF; *pos moves past it. */
static size_t s_line(const char *t, size_t len, size_t *pos)
{
    size_t a = *pos;
    const char *nl = memchr(t + a, '\n', len - a);
    size_t e = nl ? (size_t)(nl - t) : len;
    *pos = nl ? e + 1 : len;
    if (e > a && t[e - 1] == '\r')
        e--;
    return e - a;
}

static bool s_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += ingest_text_decode(s + i, n - i, &cp);
        if (!ingest_text_is_space(cp))
            return false;
    }
    return true;
}

static char *s_dup(const char *s, size_t n)
{
    char *r = malloc(n + 1);
    if (r) {
        memcpy(r, s, n);
        r[n] = '\0';
    }
    return r;
}

/* Quote at most 60 bytes of a line for an error sentence (cut on a character). */
static void s_quote(const char *s, size_t n, char *out, size_t cap)
{
    size_t m = n > 60 ? 60 : n;
    while (m < n && m > 0 && ((unsigned char)s[m] & 0xc0) == 0x80)
        m--;
    snprintf(out, cap, "'%.*s%s'", (int)m, s, m < n ? "..." : "");
}

static const char *s_find_sep(const char *s, size_t n)
{
    for (size_t i = 0; i + 3 <= n; i++)
        if (s[i] == ' ' && s[i + 1] == '-' && s[i + 2] == ' ')
            return s + i;
    return NULL;
}

int ingest_raw_extract(const char *text, size_t len, ingest_raw_parts *out, char *why,
                       size_t why_cap)
{
    memset(out, 0, sizeof *out);
    char q[96];
    size_t pos = 0;
    /* tolerate blank lines before the header (and a BOM) */
    if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
        pos = 3;
    size_t hstart, hlen;
    for (;;) {
        if (pos >= len) {
            snprintf(why, why_cap, "the raw text is empty; expected a first line "
                                   "'Site - Category - Title', a blank line, then the article");
            return INGEST_RAW_BAD;
        }
        hstart = pos;
        hlen = s_line(text, len, &pos);
        if (!s_blank(text + hstart, hlen))
            break;
    }
    const char *h = text + hstart;
    const char *s1 = s_find_sep(h, hlen);
    const char *s2 = s1 ? s_find_sep(s1 + 3, hlen - (size_t)(s1 + 3 - h)) : NULL;
    if (!s2) {
        s_quote(h, hlen, q, sizeof q);
        snprintf(why, why_cap, "the first line of the raw text should be 'Site - Category - Title' "
                               "(three parts separated by ' - '), but it is %s", q);
        return INGEST_RAW_BAD;
    }
    size_t site_n = (size_t)(s1 - h), cat_n = (size_t)(s2 - (s1 + 3));
    const char *title = s2 + 3;
    size_t title_n = hlen - (size_t)(title - h);
    if (s_blank(h, site_n) || s_blank(s1 + 3, cat_n) || s_blank(title, title_n)) {
        s_quote(h, hlen, q, sizeof q);
        snprintf(why, why_cap, "the first line of the raw text should be 'Site - Category - Title' "
                               "with none of the three parts empty, but it is %s", q);
        return INGEST_RAW_BAD;
    }
    /* a blank line must follow the header (or nothing at all: a title-only page) */
    size_t body_from = pos;
    if (pos < len) {
        size_t l2 = pos, n2 = s_line(text, len, &pos);
        if (!s_blank(text + l2, n2)) {
            s_quote(text + l2, n2, q, sizeof q);
            snprintf(why, why_cap, "line 2 of the raw text should be blank (after the "
                                   "'Site - Category - Title' line), but it is %s", q);
            return INGEST_RAW_BAD;
        }
        /* skip further blank lines, then the repeated title if it is one */
        size_t p3 = pos;
        while (p3 < len) {
            size_t ls = p3, ln = s_line(text, len, &p3);
            if (s_blank(text + ls, ln)) {
                pos = p3;
                continue;
            }
            body_from = ls;
            char *a = ingest_text_title(title, title_n, NULL);
            char *b = ingest_text_title(text + ls, ln, NULL);
            if (!a || !b) {
                free(a);
                free(b);
                return INGEST_RAW_NOMEM;
            }
            if (!strcmp(a, b))
                body_from = p3; /* the repeated title: skip it */
            free(a);
            free(b);
            break;
        }
        if (p3 >= len && body_from < pos)
            body_from = len;
    } else {
        body_from = len;
    }
    out->site = s_dup(h, site_n);
    out->category = s_dup(s1 + 3, cat_n);
    out->title = s_dup(title, title_n);
    out->body = s_dup(text + body_from, len - body_from);
    if (!out->site || !out->category || !out->title || !out->body) {
        ingest_raw_parts_clear(out);
        return INGEST_RAW_NOMEM;
    }
    return INGEST_RAW_OK;
}
