/*
 * ingest_validate: see ingest_validate.h.
 *
 * Every string of the prepared article is a fresh malloc'd copy, so the
 * decoded request can be freed while the prepared docs live on, and the doc
 * frees exactly what it made. Sizes are checked after normalization (what is
 * stored is what counts), but input far over a limit is refused before any
 * work is spent on it.
 */
#include "ingest_validate.h"

#include "ingest_damage.h"
#include "ingest_key.h"
#include "ingest_raw.h"
#include "ingest_text.h"
#include "pbscan.h"
#include "utf8.h"
#include "wire.h"
#include "grow.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ingest_doc_init(ingest_doc *d)
{
    memset(d, 0, sizeof *d);
    bulletin__article__init(&d->art);
}

static void s_free_str(char **s)
{
    if (*s && *s != protobuf_c_empty_string)
        free(*s);
    *s = NULL;
}

void ingest_doc_clear(ingest_doc *d)
{
    Bulletin__Article *a = &d->art;
    s_free_str(&a->key);
    s_free_str(&a->site);
    s_free_str(&a->category);
    s_free_str(&a->title);
    s_free_str(&a->body);
    s_free_str(&a->author);
    s_free_str(&a->lang);
    s_free_str(&a->url);
    s_free_str(&a->raw);
    for (size_t i = 0; i < a->n_tags; i++)
        free(a->tags[i]);
    free(a->tags);
    free(d->error);
    for (size_t i = 0; i < d->n_warnings; i++)
        free(d->warnings[i]);
    free(d->warnings);
    ingest_doc_init(d);
}

static char *s_vformat(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (s)
        vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

int ingest_doc_warn(ingest_doc *d, const char *fmt, ...)
{
    if (d->n_warnings == d->cap_warnings) {
        char **w = grow(d->warnings, &d->cap_warnings, sizeof *w, 4);
        if (!w)
            return -1;
        d->warnings = w;
    }
    va_list ap;
    va_start(ap, fmt);
    char *s = s_vformat(fmt, ap);
    va_end(ap);
    if (!s)
        return -1;
    d->warnings[d->n_warnings++] = s;
    return 0;
}

int ingest_doc_reject(ingest_doc *d, const char *fmt, ...)
{
    if (d->error)
        return 0;
    va_list ap;
    va_start(ap, fmt);
    d->error = s_vformat(fmt, ap);
    va_end(ap);
    return d->error ? 0 : -1;
}

static const char *s_str(const char *s)
{
    return s ? s : "";
}

/* Result codes of the helpers below: 0 ok, 1 rejected, -1 out of memory. */
#define S_TRY(expr)        \
    do {                   \
        int rc_ = (expr);  \
        if (rc_ != 0)      \
            return rc_;    \
    } while (0)

static int s_reject(ingest_doc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int s_reject(ingest_doc *d, const char *fmt, ...)
{
    if (d->error)
        return 1;
    va_list ap;
    va_start(ap, fmt);
    d->error = s_vformat(fmt, ap);
    va_end(ap);
    return d->error ? 1 : -1;
}

typedef enum { S_FIELD, S_TITLE, S_BODY } s_kind;

/* Normalize `in` into *out and check its size in bytes against [min, max].
 * `how` names the normalization for the error sentence. */
static int s_text(ingest_doc *d, const char *name, const char *in, s_kind kind, size_t min,
                  size_t max, char **out)
{
    in = s_str(in);
    size_t n = strlen(in);
    static const char *how[] = {"trimming", "trimming and collapsing whitespace",
                                "trimming"};
    if (n > 4 * max + 4096) /* far over: do not spend time normalizing it */
        return s_reject(d, "%s is %zu bytes; the limit is %zu", name, n, max);
    char *r = kind == S_TITLE  ? ingest_text_title(in, n, &n)
              : kind == S_BODY ? ingest_text_body(in, n, &n)
                               : ingest_text_field(in, n, &n);
    if (!r)
        return -1;
    *out = r;
    if (n > max)
        return s_reject(d, "%s is %zu bytes after %s; the limit is %zu", name, n, how[kind], max);
    if (n < min)
        return s_reject(d, "%s is empty after %s; it must be %zu to %zu bytes", name, how[kind],
                        min, max);
    return 0;
}

static int s_tags(ingest_doc *d, const Bulletin__Article *in)
{
    Bulletin__Article *a = &d->art;
    if (in->n_tags > INGEST_MAX_TAGS)
        return s_reject(d, "the article has %zu tags; the limit is %d", in->n_tags,
                        INGEST_MAX_TAGS);
    if (in->n_tags == 0)
        return 0;
    a->tags = calloc(in->n_tags, sizeof *a->tags);
    if (!a->tags)
        return -1;
    for (size_t i = 0; i < in->n_tags; i++) {
        char name[32], *t = NULL;
        snprintf(name, sizeof name, "tags[%zu]", i);
        int rc = s_text(d, name, in->tags[i], S_FIELD, 1, INGEST_MAX_TAG, &t);
        if (rc != 0) {
            free(t);
            return rc;
        }
        bool dup = false;
        for (size_t k = 0; k < a->n_tags && !dup; k++)
            dup = !strcmp(a->tags[k], t);
        if (dup)
            free(t);
        else
            a->tags[a->n_tags++] = t;
    }
    return 0;
}

static int s_ignored(ingest_doc *d, const Bulletin__Article *in)
{
    char list[128] = "";
    size_t n = 0;
    const char *names[5];
    if (in->id)
        names[n++] = "id";
    if (in->seq)
        names[n++] = "seq";
    if (in->ingested_at)
        names[n++] = "ingested_at";
    if (in->updated_at)
        names[n++] = "updated_at";
    if (in->content_hash.len)
        names[n++] = "content_hash";
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        strcat(list, names[i]);
        if (i + 1 < n)
            strcat(list, ", ");
    }
    return ingest_doc_warn(d, "ignored %s: %s set by the store, not by the client", list,
                           n == 1 ? "this field is" : "these fields are");
}

static int s_key(ingest_doc *d)
{
    Bulletin__Article *a = &d->art;
    if (*a->url) {
        int not_url;
        char *c = ingest_key_canonical_url(a->url, strlen(a->url), &not_url);
        if (c) {
            free(a->url);
            a->url = c;
        } else if (not_url) {
            S_TRY(ingest_doc_warn(d, "url '%.80s%s' is not an absolute URL (scheme://host/...); "
                                     "it is kept as written",
                                  a->url, strlen(a->url) > 80 ? "..." : ""));
        } else {
            return -1;
        }
        if (strlen(a->url) > INGEST_MAX_KEY)
            return s_reject(d, "url is %zu bytes after canonicalization; the limit is %d",
                            strlen(a->url), INGEST_MAX_KEY);
    }
    if (*a->key)
        return 0;
    if (*a->url) {
        free(a->key);
        a->key = strdup(a->url);
        return a->key ? 0 : -1;
    }
    char h[INGEST_KEY_HASH_LEN];
    if (ingest_key_hash(a->site, a->title, a->body, h) < 0)
        return -1;
    free(a->key);
    a->key = strdup(h);
    return a->key ? 0 : -1;
}

static int s_damage(ingest_doc *d, const char *field, const char *s)
{
    size_t len = strlen(s);
    ingest_damage dm;
    ingest_damage_find(s, len, &dm);
    for (int k = 0; k < INGEST_DAMAGE_KINDS; k++) {
        char buf[512];
        if (ingest_damage_describe(field, s, len, &dm, (ingest_damage_kind)k, buf, sizeof buf) == 0)
            S_TRY(ingest_doc_warn(d, "%s", buf));
    }
    return 0;
}

static int s_prepare(const Bulletin__Article *in, int64_t now_ms, ingest_doc *d)
{
    Bulletin__Article *a = &d->art;
    if (d->error)
        return 1;
    S_TRY(s_ignored(d, in));
    S_TRY(s_text(d, "title", in->title, S_TITLE, 1, INGEST_MAX_TITLE, &a->title));
    S_TRY(s_text(d, "body", in->body, S_BODY, 0, INGEST_MAX_BODY, &a->body));
    S_TRY(s_text(d, "site", in->site, S_FIELD, 0, INGEST_MAX_FIELD, &a->site));
    S_TRY(s_text(d, "category", in->category, S_FIELD, 0, INGEST_MAX_FIELD, &a->category));
    S_TRY(s_text(d, "author", in->author, S_FIELD, 0, INGEST_MAX_FIELD, &a->author));
    S_TRY(s_text(d, "key", in->key, S_FIELD, 0, INGEST_MAX_KEY, &a->key));
    S_TRY(s_text(d, "url", in->url, S_FIELD, 0, INGEST_MAX_KEY, &a->url));
    S_TRY(s_text(d, "lang", in->lang, S_FIELD, 0, INGEST_MAX_LANG, &a->lang));
    char *lower = ingest_text_lower(a->lang, strlen(a->lang), NULL);
    if (!lower)
        return -1;
    free(a->lang);
    a->lang = lower;
    if (strlen(a->lang) > INGEST_MAX_LANG)
        return s_reject(d, "lang is %zu bytes after lower-casing; the limit is %d",
                        strlen(a->lang), INGEST_MAX_LANG);
    S_TRY(s_tags(d, in));
    if (in->published_at != 0) {
        if (in->published_at < INGEST_MIN_PUBLISHED_MS)
            return s_reject(d, "published_at %" PRId64 " (Unix ms) is before 1990-01-01; "
                               "use 0 when the date is unknown",
                            in->published_at);
        if (in->published_at > now_ms + INGEST_MAX_FUTURE_MS)
            return s_reject(d, "published_at %" PRId64 " (Unix ms) is more than one day in the "
                               "future (now is %" PRId64 ")",
                            in->published_at, now_ms);
        a->published_at = in->published_at;
    }
    if (in->raw && *in->raw) {
        size_t n = strlen(in->raw);
        if (n > INGEST_MAX_RAW)
            return s_reject(d, "raw is %zu bytes; the limit is %d", n, INGEST_MAX_RAW);
        a->raw = strdup(in->raw);
        if (!a->raw)
            return -1;
    }
    S_TRY(s_key(d));
    if (strlen(a->key) > INGEST_MAX_KEY)
        return s_reject(d, "key is %zu bytes; the limit is %d", strlen(a->key), INGEST_MAX_KEY);
    S_TRY(s_damage(d, "title", a->title));
    S_TRY(s_damage(d, "body", a->body));
    S_TRY(s_damage(d, "site", a->site));
    S_TRY(s_damage(d, "category", a->category));
    S_TRY(s_damage(d, "author", a->author));
    return 0;
}

/* Make sure every string of the article is set (never NULL), so that the
 * doc can always be packed and freed the same way. */
static int s_fill(ingest_doc *d)
{
    char **f[] = {&d->art.key, &d->art.site,  &d->art.category, &d->art.title, &d->art.body,
                  &d->art.author, &d->art.lang, &d->art.url,      &d->art.raw};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (!*f[i] || *f[i] == protobuf_c_empty_string) {
            *f[i] = strdup("");
            if (!*f[i])
                return -1;
        }
    return 0;
}

int ingest_article_prepare(const Bulletin__Article *in, int64_t now_ms, ingest_doc *d)
{
    int rc = s_prepare(in, now_ms, d);
    if (s_fill(d) < 0)
        return -1;
    return rc;
}

int ingest_item_prepare(const Bulletin__IngestItem *item, int64_t now_ms, ingest_doc *d)
{
    if (d->error)
        return s_fill(d) < 0 ? -1 : 1;
    switch (item->item_case) {
    case BULLETIN__INGEST_ITEM__ITEM_ARTICLE:
        if (!item->article)
            break;
        return ingest_article_prepare(item->article, now_ms, d);
    case BULLETIN__INGEST_ITEM__ITEM_RAW: {
        const Bulletin__RawDocument *r = item->raw;
        if (!r)
            break;
        const char *text = s_str(r->text);
        size_t n = strlen(text);
        if (n > INGEST_MAX_RAW) {
            int rc = s_reject(d, "raw.text is %zu bytes; the limit is %d", n, INGEST_MAX_RAW);
            return s_fill(d) < 0 ? -1 : rc;
        }
        ingest_raw_parts p;
        char why[256];
        int rc = ingest_raw_extract(text, n, &p, why, sizeof why);
        if (rc == INGEST_RAW_NOMEM)
            return -1;
        if (rc == INGEST_RAW_BAD) {
            rc = s_reject(d, "raw.text: %s", why);
            return s_fill(d) < 0 ? -1 : rc;
        }
        Bulletin__Article a;
        bulletin__article__init(&a);
        a.site = p.site;
        a.category = p.category;
        a.title = p.title;
        a.body = p.body;
        a.url = r->url;
        a.key = r->key;
        a.n_tags = r->n_tags;
        a.tags = r->tags;
        a.published_at = r->published_at;
        a.lang = r->lang;
        a.raw = (char *)text; /* kept unchanged */
        rc = ingest_article_prepare(&a, now_ms, d);
        ingest_raw_parts_clear(&p);
        return rc;
    }
    default:
        break;
    }
    int rc = s_reject(d, "the item has neither an article nor a raw document");
    return s_fill(d) < 0 ? -1 : rc;
}

typedef struct {
    ingest_doc *docs;
    size_t n;
} s_bad_ctx;

static void s_bad_string(void *ud, const char *path, size_t offset)
{
    s_bad_ctx *c = ud;
    unsigned long idx;
    int used = 0;
    if (sscanf(path, "ingest.items[%lu]%n", &idx, &used) != 1 || used == 0 || idx >= c->n)
        return;
    const char *field = path + used;
    if (*field == '.')
        field++;
    ingest_doc_reject(&c->docs[idx],
                      "%s is not valid UTF-8 or contains a NUL byte (at byte %zu); every text "
                      "field must be UTF-8 without NUL",
                      *field ? field : "the item", offset);
}

int ingest_check_strings(const void *raw, size_t len, ingest_doc *docs, size_t n)
{
    if (wire_strings_ok(&bulletin__request__descriptor, raw, len))
        return 0;
    s_bad_ctx c = {docs, n};
    return wire_check_strings(&bulletin__request__descriptor, raw, len, s_bad_string, &c);
}
