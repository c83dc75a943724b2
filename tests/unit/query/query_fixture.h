/* Shared helpers for the query unit tests: temporary replicas and changes. */
#ifndef QUERY_FIXTURE_H
#define QUERY_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "replica.h"

/* A change that owns its strings (static storage is enough for tests). */
typedef struct {
    Bulletin__Internal__Change c;
    Bulletin__Article a;
    char key[64], site[32], category[32], title[64], body[512];
    char tagbuf[4][32];
    char *tags[4];
} fx_change;

static inline void fx_put(fx_change *x, uint64_t seq, uint64_t id, const char *site,
                          const char *category, int64_t pub, const char *tag1, const char *tag2)
{
    memset(x, 0, sizeof *x);
    bulletin__internal__change__init(&x->c);
    bulletin__article__init(&x->a);
    x->c.seq = seq;
    x->c.op = BULLETIN__INTERNAL__CHANGE_OP__PUT;
    x->c.id = id;
    x->c.article = &x->a;
    snprintf(x->key, sizeof x->key, "https://example.org/%llu", (unsigned long long)id);
    snprintf(x->site, sizeof x->site, "%s", site);
    snprintf(x->category, sizeof x->category, "%s", category);
    snprintf(x->title, sizeof x->title, "title %llu", (unsigned long long)id);
    snprintf(x->body, sizeof x->body, "body of article %llu", (unsigned long long)id);
    x->a.id = id;
    x->a.key = x->key;
    x->a.site = x->site;
    x->a.category = x->category;
    x->a.title = x->title;
    x->a.body = x->body;
    x->a.published_at = pub;
    x->a.seq = seq;
    size_t n = 0;
    const char *t[2] = {tag1, tag2};
    for (int i = 0; i < 2; i++)
        if (t[i]) {
            snprintf(x->tagbuf[n], sizeof x->tagbuf[n], "%s", t[i]);
            x->tags[n] = x->tagbuf[n];
            n++;
        }
    x->a.tags = x->tags;
    x->a.n_tags = n;
}

static inline void fx_del(fx_change *x, uint64_t seq, uint64_t id)
{
    memset(x, 0, sizeof *x);
    bulletin__internal__change__init(&x->c);
    x->c.seq = seq;
    x->c.op = BULLETIN__INTERNAL__CHANGE_OP__DELETE;
    x->c.id = id;
    snprintf(x->key, sizeof x->key, "https://example.org/%llu", (unsigned long long)id);
    x->c.key = x->key;
}

static inline int fx_apply1(replica *r, fx_change *x)
{
    Bulletin__Internal__Change *p = &x->c;
    return replica_apply(r, &p, 1, 0);
}

static inline char *fx_tmpdir(void)
{
    char *d = strdup("/tmp/bulletin-query-test-XXXXXX");
    if (!mkdtemp(d)) {
        free(d);
        return NULL;
    }
    return d;
}

static inline void fx_rmdir(char *d)
{
    if (!d)
        return;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", d);
    free(d);
}

#endif
