/*
 * cli_fmt: cursor text, dates, list-page JSON and the list table of the
 * bulletin command (see cli_fmt.h). Terminal widths come from utf8proc, so
 * that CJK titles (two columns per character) keep the table aligned.
 */
#include "cli_fmt.h"

#include "clock.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ------------------------------------------------------------------------ */
/* cursors: base64url                                                        */

static const char s_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *cli_cursor_encode(const void *data, size_t len)
{
    const unsigned char *in = data;
    if (len > ((size_t)-1 - 4) / 4 * 3)
        return NULL;
    char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;
    if (!out)
        return NULL;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = s_b64[v >> 18 & 63];
        *o++ = s_b64[v >> 12 & 63];
        *o++ = s_b64[v >> 6 & 63];
        *o++ = s_b64[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *o++ = s_b64[v >> 18 & 63];
        *o++ = s_b64[v >> 12 & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *o++ = s_b64[v >> 18 & 63];
        *o++ = s_b64[v >> 12 & 63];
        *o++ = s_b64[v >> 6 & 63];
    }
    *o = '\0';
    return out;
}

static int s_b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int cli_cursor_decode(const char *text, void **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    size_t n = strlen(text);
    size_t pad = 0;
    while (n > 0 && text[n - 1] == '=' && pad < 2) {
        n--;
        pad++;
    }
    if (pad && (n + pad) % 4 != 0)
        return -1; /* padding must complete a group of 4 */
    if (n % 4 == 1)
        return -1; /* 6 bits cannot end a byte string */
    if (n == 0)
        return 0;
    unsigned char *buf = malloc(n / 4 * 3 + 3);
    if (!buf)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = s_b64_value(text[i]);
        if (v < 0) {
            free(buf);
            return -1;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (unsigned char)(acc >> bits & 0xff);
        }
    }
    if (bits && (acc & ((1u << bits) - 1)) != 0) {
        free(buf); /* non-canonical: leftover bits must be zero */
        return -1;
    }
    *out = buf;
    *len = o;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* numbers and dates                                                         */

int cli_parse_date(const char *text, int64_t *ms)
{
    if (!text || strlen(text) < 10)
        return -1;
    /* the calendar date must exist: 2024-02-30 is a typo, not March 1st */
    int y, m, d;
    char dash1, dash2;
    if (sscanf(text, "%4d%c%2d%c%2d", &y, &dash1, &m, &dash2, &d) != 5 || dash1 != '-' ||
        dash2 != '-' || m < 1 || m > 12 || d < 1)
        return -1;
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > days[m - 1] + (m == 2 && leap))
        return -1;
    return clock_parse_rfc3339(text, ms);
}

int cli_parse_u64(const char *text, uint64_t *out)
{
    if (!text || *text < '0' || *text > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                      */

static json_t *s_str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *s_time(int64_t ms)
{
    if (!ms)
        return json_null();
    char buf[40];
    clock_format_rfc3339(ms, buf, sizeof buf);
    return json_string(buf);
}

json_t *cli_json_list_page(const bulletin_list_page *p)
{
    json_t *o = json_object(), *items = json_array();
    if (!o || !items)
        goto oom;
    for (size_t i = 0; i < p->count; i++) {
        const bulletin_summary *s = &p->items[i];
        json_t *it = json_object(), *tags = json_array();
        if (!it || !tags) {
            json_decref(it);
            json_decref(tags);
            goto oom;
        }
        for (size_t t = 0; t < s->tag_count; t++)
            json_array_append_new(tags, json_string(s->tags[t]));
        int bad = json_object_set_new(it, "id", json_integer((json_int_t)s->id)) |
                  json_object_set_new(it, "key", s_str_or_null(s->key)) |
                  json_object_set_new(it, "site", s_str_or_null(s->site)) |
                  json_object_set_new(it, "category", s_str_or_null(s->category)) |
                  json_object_set_new(it, "title", s_str_or_null(s->title)) |
                  json_object_set_new(it, "published_at", s_time(s->published_at)) |
                  json_object_set_new(it, "excerpt", s_str_or_null(s->excerpt)) |
                  json_object_set_new(it, "tags", tags) |
                  json_object_set_new(it, "seq", json_integer((json_int_t)s->seq));
        if (bad || json_array_append_new(items, it) != 0)
            goto oom;
    }
    json_t *cur = json_null();
    if (p->next_cursor_len) {
        char *t = cli_cursor_encode(p->next_cursor, p->next_cursor_len);
        if (!t)
            goto oom;
        cur = json_string(t);
        free(t);
    }
    int bad = json_object_set_new(o, "items", items);
    items = NULL;
    bad |= json_object_set_new(o, "next_cursor", cur);
    if (p->has_total)
        bad |= json_object_set_new(o, "total", json_integer((json_int_t)p->total));
    bad |= json_object_set_new(o, "served_by", s_str_or_null(p->served_by));
    bad |= json_object_set_new(o, "applied_seq", json_integer((json_int_t)p->applied_seq));
    if (bad)
        goto oom;
    return o;
oom:
    json_decref(items);
    json_decref(o);
    return NULL;
}

static json_t *s_facets_json(const bulletin_facet *f, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        json_t *o = json_object();
        if (!o || json_object_set_new(o, "value", s_str_or_null(f[i].value)) ||
            json_object_set_new(o, "count", json_integer((json_int_t)f[i].count)) ||
            json_array_append_new(a, o)) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

json_t *cli_json_search_page(const bulletin_search_result *r, int with_facets)
{
    json_t *o = json_object(), *hits = json_array();
    if (!o || !hits)
        goto oom;
    for (size_t i = 0; i < r->hit_count; i++) {
        const bulletin_hit *h = &r->hits[i];
        json_t *it = json_object();
        if (!it)
            goto oom;
        int bad = json_object_set_new(it, "id", json_integer((json_int_t)h->id)) |
                  json_object_set_new(it, "key", s_str_or_null(h->key)) |
                  json_object_set_new(it, "site", s_str_or_null(h->site)) |
                  json_object_set_new(it, "category", s_str_or_null(h->category)) |
                  json_object_set_new(it, "title", s_str_or_null(h->title)) |
                  json_object_set_new(it, "published_at", s_time(h->published_at)) |
                  json_object_set_new(it, "score", json_real(h->score)) |
                  json_object_set_new(it, "snippet", s_str_or_null(h->snippet));
        if (bad || json_array_append_new(hits, it) != 0)
            goto oom;
    }
    json_t *cur = json_null();
    if (r->next_cursor_len) {
        char *t = cli_cursor_encode(r->next_cursor, r->next_cursor_len);
        if (!t)
            goto oom;
        cur = json_string(t);
        free(t);
    }
    int bad = json_object_set_new(o, "hits", hits);
    hits = NULL;
    bad |= json_object_set_new(o, "total", json_integer((json_int_t)r->total));
    bad |= json_object_set_new(o, "next_cursor", cur);
    if (with_facets) {
        json_t *c = s_facets_json(r->categories, r->category_count);
        json_t *s = s_facets_json(r->sites, r->site_count);
        if (!c || !s) {
            json_decref(c);
            json_decref(s);
            goto oom;
        }
        bad |= json_object_set_new(o, "categories", c);
        bad |= json_object_set_new(o, "sites", s);
    }
    bad |= json_object_set_new(o, "took_us", json_integer((json_int_t)r->took_us));
    bad |= json_object_set_new(o, "served_by", s_str_or_null(r->served_by));
    bad |= json_object_set_new(o, "applied_seq", json_integer((json_int_t)r->applied_seq));
    if (bad)
        goto oom;
    return o;
oom:
    json_decref(hits);
    json_decref(o);
    return NULL;
}

char *cli_snippet_render(const char *s, int ansi)
{
    static const char on[] = "\x1b[1;33m", off[] = "\x1b[0m";
    const char *mo = CLI_MARK_OPEN, *mc = CLI_MARK_CLOSE;
    size_t n = s ? strlen(s) : 0;
    /* each 3-byte marker becomes at most 7 bytes; the final reset 4 */
    char *out = malloc(n * 3 + sizeof off + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (ansi && !strncmp(s + i, mo, 3)) {
            memcpy(o, on, sizeof on - 1);
            o += sizeof on - 1;
            i += 3;
        } else if (ansi && !strncmp(s + i, mc, 3)) {
            memcpy(o, off, sizeof off - 1);
            o += sizeof off - 1;
            i += 3;
        } else if (c < 0x20 || c == 0x7f) {
            if (o == out || o[-1] != ' ')
                *o++ = ' '; /* runs of newlines/tabs: one space */
            i++;
        } else if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
                   (unsigned char)s[i + 1] < 0xa0) {
            *o++ = ' '; /* C1 controls (U+0080..U+009F) */
            i += 2;
        } else {
            *o++ = (char)c;
            i++;
        }
    }
    if (ansi) {
        memcpy(o, off, sizeof off - 1);
        o += sizeof off - 1;
    }
    *o = '\0';
    return out;
}

/* ------------------------------------------------------------------------ */
/* the table                                                                 */

/* Next character of s: its byte length (>= 1) and width. */
static size_t s_next(const char *s, int *width)
{
    utf8proc_int32_t cp;
    utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)s, -1, &cp);
    if (n <= 0) {
        *width = 1; /* an invalid byte: shown as one replacement column */
        return 1;
    }
    if (cp < 0x20 || cp == 0x7f)
        *width = 1; /* control: printed as a space */
    else
        *width = utf8proc_charwidth(cp);
    if (*width < 0)
        *width = 0;
    return (size_t)n;
}

size_t cli_text_width(const char *s)
{
    size_t w = 0;
    while (s && *s) {
        int cw;
        s += s_next(s, &cw);
        w += (size_t)cw;
    }
    return w;
}

char *cli_fit(const char *s, size_t width, char *out, size_t cap)
{
    static const char ellipsis[] = "\xe2\x80\xa6"; /* U+2026, one column */
    if (cap == 0)
        return out;
    size_t o = 0, w = 0;
    bool cut = cli_text_width(s) > width;
    size_t room = cut && width ? width - 1 : width; /* keep one column for "…" */
    while (s && *s) {
        int cw;
        size_t n = s_next(s, &cw);
        if (w + (size_t)cw > room || o + n + sizeof ellipsis >= cap)
            break;
        unsigned char c = (unsigned char)*s;
        utf8proc_int32_t cp;
        bool ok = utf8proc_iterate((const utf8proc_uint8_t *)s, -1, &cp) > 0;
        if (!ok || c < 0x20 || c == 0x7f) {
            out[o++] = ok ? ' ' : '?';
        } else {
            memcpy(out + o, s, n);
            o += n;
        }
        w += (size_t)cw;
        s += n;
    }
    if (cut && width && o + sizeof ellipsis < cap) {
        memcpy(out + o, ellipsis, sizeof ellipsis - 1);
        o += sizeof ellipsis - 1;
        w++;
    }
    while (w < width && o + 1 < cap) {
        out[o++] = ' ';
        w++;
    }
    out[o] = '\0';
    return out;
}

enum { W_ID = 8, W_DATE = 16, W_SITE = 22, W_CAT = 18, W_TITLE = 60 };

void cli_table_header(FILE *to)
{
    fprintf(to, "%*s  %-*s  %-*s  %-*s  %s\n", W_ID, "ID", W_DATE, "DATE (UTC)", W_SITE, "SITE",
            W_CAT, "CATEGORY", "TITLE");
}

void cli_table_row(FILE *to, const bulletin_summary *s)
{
    char date[40] = "-";
    if (s->published_at) {
        char full[40];
        clock_format_rfc3339(s->published_at, full, sizeof full);
        /* "2024-03-11T07:45:00.000Z" -> "2024-03-11 07:45" */
        snprintf(date, sizeof date, "%.10s %.5s", full, full + 11);
    }
    char site[W_SITE * 4 + 8], cat[W_CAT * 4 + 8], title[W_TITLE * 4 + 8];
    cli_fit(s->title ? s->title : "(untitled)", W_TITLE, title, sizeof title);
    for (size_t n = strlen(title); n > 0 && title[n - 1] == ' ';)
        title[--n] = '\0'; /* the last column needs no padding */
    fprintf(to, "%*llu  %-*s  %s  %s  %s\n", W_ID, (unsigned long long)s->id, W_DATE, date,
            cli_fit(s->site ? s->site : "-", W_SITE, site, sizeof site),
            cli_fit(s->category ? s->category : "-", W_CAT, cat, sizeof cat),
            title);
}

/* ------------------------------------------------------------------------ */

static int s_read_filter(const char *cmd, const cli_read_args *a, bulletin_filter *f)
{
    const char *since = a->since, *until = a->until;
    if (since && cli_parse_date(since, &f->since) != 0) {
        fprintf(stderr, "bulletin %s: --since '%s' is not a date (RFC 3339 such as "
                        "2024-05-01T08:00:00Z, or 2024-05-01)\n", cmd, since);
        return -1;
    }
    if (until && cli_parse_date(until, &f->until) != 0) {
        fprintf(stderr, "bulletin %s: --until '%s' is not a date (RFC 3339 such as "
                        "2024-05-01T08:00:00Z, or 2024-05-01)\n", cmd, until);
        return -1;
    }
    /* 0 means "unbounded" on the wire: the epoch itself cannot be a bound */
    if ((since && f->since == 0) || (until && f->until == 0)) {
        fprintf(stderr, "bulletin %s: 1970-01-01T00:00:00Z cannot be a bound (0 means "
                        "unbounded); use a millisecond later\n", cmd);
        return -1;
    }
    if (since && until && f->since >= f->until) {
        fprintf(stderr, "bulletin %s: --since must be before --until\n", cmd);
        return -1;
    }
    f->site = a->site && *a->site ? a->site : NULL;
    f->category = a->category && *a->category ? a->category : NULL;
    f->tag = a->tag && *a->tag ? a->tag : NULL;
    return 0;
}

static int s_read_min_seq(const char *cmd, const char *text, uint64_t *min_seq)
{
    if (text && cli_parse_u64(text, min_seq) != 0) {
        fprintf(stderr, "bulletin %s: --min-seq '%s' is not a seq (a non-negative integer)\n",
                cmd, text);
        return -1;
    }
    return 0;
}

static int s_read_cursor(const char *cmd, const char *text, void **cursor, size_t *cursor_len)
{
    if (text && (cli_cursor_decode(text, cursor, cursor_len) != 0 || !*cursor_len)) {
        fprintf(stderr, "bulletin %s: --cursor '%s' is not a cursor printed by bulletin %s "
                        "(base64url)\n", cmd, text, cmd);
        return -1;
    }
    return 0;
}

int cli_read_args_apply(const char *cmd, const cli_read_args *a, bulletin_filter *filter,
                        uint64_t *min_seq, void **cursor, size_t *cursor_len)
{
    if (s_read_filter(cmd, a, filter) != 0 || s_read_min_seq(cmd, a->min_seq, min_seq) != 0 ||
        s_read_cursor(cmd, a->cursor, cursor, cursor_len) != 0)
        return -1;
    return 0;
}
