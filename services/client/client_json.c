/*
 * client_json: JSON <-> bulletin_article / bulletin_ingest_result for the
 * bulletin command. The field table below is the single list of accepted
 * input fields; see client_json.h for the rules.
 */
#include "client_json.h"

#include "clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { F_STR, F_TAGS, F_TIME, F_IGNORED } s_ftype;

typedef struct {
    const char *name;
    s_ftype type;
    size_t off; /* offset of the const char * / int64_t field */
} s_field;

#define OFF(f) offsetof(bulletin_article, f)

static const s_field s_fields[] = {
    {"key", F_STR, OFF(key)},
    {"site", F_STR, OFF(site)},
    {"category", F_STR, OFF(category)},
    {"title", F_STR, OFF(title)},
    {"body", F_STR, OFF(body)},
    {"tags", F_TAGS, 0},
    {"author", F_STR, OFF(author)},
    {"lang", F_STR, OFF(lang)},
    {"url", F_STR, OFF(url)},
    {"raw", F_STR, OFF(raw)},
    {"published_at", F_TIME, OFF(published_at)},
    /* written by the store: accepted (round trip of `get --json`), ignored */
    {"id", F_IGNORED, 0},
    {"seq", F_IGNORED, 0},
    {"ingested_at", F_IGNORED, 0},
    {"updated_at", F_IGNORED, 0},
};

static const s_field *s_find(const char *name)
{
    for (size_t i = 0; i < sizeof s_fields / sizeof *s_fields; i++)
        if (!strcmp(s_fields[i].name, name))
            return &s_fields[i];
    return NULL;
}

static const char *s_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

void client_json_article_clear(bulletin_article *a)
{
    free(a->tags);
    memset(a, 0, sizeof *a);
}

int client_json_article_from(const json_t *obj, bulletin_article *a, char *err, size_t cap)
{
    memset(a, 0, sizeof *a);
    if (!json_is_object(obj)) {
        snprintf(err, cap, "expected a JSON object, got %s", obj ? s_type_name(obj) : "nothing");
        return -1;
    }
    /* Unknown fields first, all of them in one sentence. */
    char unknown[256] = "";
    size_t nunknown = 0, used = 0;
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)obj, name, v) {
        if (s_find(name))
            continue;
        nunknown++;
        int w = snprintf(unknown + used, sizeof unknown - used, "%s\"%s\"", used ? ", " : "",
                         name);
        if (w > 0)
            used = (size_t)w + used < sizeof unknown ? used + (size_t)w : sizeof unknown - 1;
    }
    if (nunknown) {
        snprintf(err, cap,
                 "unknown field%s %s (known: key, site, category, title, body, tags, author, "
                 "lang, url, raw, published_at)",
                 nunknown > 1 ? "s" : "", unknown);
        return -1;
    }
    json_object_foreach((json_t *)obj, name, v) {
        const s_field *f = s_find(name);
        if (f->type == F_IGNORED || json_is_null(v))
            continue;
        switch (f->type) {
        case F_STR:
            if (!json_is_string(v)) {
                snprintf(err, cap, "field \"%s\" must be a string, not %s", name, s_type_name(v));
                goto fail;
            }
            *(const char **)((char *)a + f->off) = json_string_value(v);
            break;
        case F_TAGS: {
            if (!json_is_array(v)) {
                snprintf(err, cap, "field \"tags\" must be an array of strings, not %s",
                         s_type_name(v));
                goto fail;
            }
            size_t n = json_array_size(v);
            if (n) {
                a->tags = calloc(n, sizeof *a->tags);
                if (!a->tags) {
                    snprintf(err, cap, "out of memory");
                    goto fail;
                }
            }
            for (size_t i = 0; i < n; i++) {
                json_t *t = json_array_get(v, i);
                if (!json_is_string(t)) {
                    snprintf(err, cap, "field \"tags\"[%zu] must be a string, not %s", i,
                             s_type_name(t));
                    goto fail;
                }
                a->tags[i] = json_string_value(t);
            }
            a->tag_count = n;
            break;
        }
        case F_TIME: {
            int64_t ms;
            if (json_is_integer(v)) {
                ms = (int64_t)json_integer_value(v);
            } else if (json_is_string(v)) {
                if (clock_parse_rfc3339(json_string_value(v), &ms) != 0) {
                    snprintf(err, cap,
                             "field \"%s\": \"%.64s\" is not an RFC 3339 time "
                             "(e.g. 2024-05-01T08:30:00Z)",
                             name, json_string_value(v));
                    goto fail;
                }
            } else {
                snprintf(err, cap,
                         "field \"%s\" must be an RFC 3339 string or an integer of Unix ms, "
                         "not %s",
                         name, s_type_name(v));
                goto fail;
            }
            *(int64_t *)((char *)a + f->off) = ms;
            break;
        }
        case F_IGNORED:
            break;
        }
    }
    return 0;
fail:
    client_json_article_clear(a);
    return -1;
}

/* json_object_set_new that remembers a failure. */
static void s_set(json_t *o, const char *k, json_t *v, int *bad)
{
    if (!v || json_object_set_new(o, k, v) != 0)
        *bad = 1;
}

static void s_set_str(json_t *o, const char *k, const char *s, int *bad)
{
    if (s)
        s_set(o, k, json_string(s), bad);
}

static void s_set_time(json_t *o, const char *k, int64_t ms, int *bad)
{
    if (!ms)
        return;
    char buf[40];
    clock_format_rfc3339(ms, buf, sizeof buf);
    s_set(o, k, json_string(buf), bad);
}

static json_t *s_str_array(const char *const *v, size_t n)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (json_array_append_new(arr, json_string(v[i] ? v[i] : "")) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

json_t *client_json_article_to(const bulletin_article *a)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = 0;
    if (a->id)
        s_set(o, "id", json_integer((json_int_t)a->id), &bad);
    s_set_str(o, "key", a->key, &bad);
    s_set_str(o, "site", a->site, &bad);
    s_set_str(o, "category", a->category, &bad);
    s_set_str(o, "title", a->title, &bad);
    s_set_str(o, "body", a->body, &bad);
    if (a->tag_count)
        s_set(o, "tags", s_str_array(a->tags, a->tag_count), &bad);
    s_set_str(o, "author", a->author, &bad);
    s_set_str(o, "lang", a->lang, &bad);
    s_set_str(o, "url", a->url, &bad);
    s_set_time(o, "published_at", a->published_at, &bad);
    s_set_time(o, "ingested_at", a->ingested_at, &bad);
    s_set_time(o, "updated_at", a->updated_at, &bad);
    if (a->seq)
        s_set(o, "seq", json_integer((json_int_t)a->seq), &bad);
    s_set_str(o, "raw", a->raw, &bad);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *client_json_result_to(const bulletin_ingest_result *r, size_t index)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = 0;
    s_set(o, "index", json_integer((json_int_t)index), &bad);
    s_set(o, "key", r->key ? json_string(r->key) : json_null(), &bad);
    s_set(o, "id", json_integer((json_int_t)r->id), &bad);
    s_set(o, "seq", json_integer((json_int_t)r->seq), &bad);
    s_set(o, "status", json_string(bulletin_write_status_name(r->status)), &bad);
    s_set(o, "error", r->error ? json_string(r->error) : json_null(), &bad);
    s_set(o, "warnings", s_str_array(r->warnings, r->warning_count), &bad);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}
