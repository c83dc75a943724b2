/*
 * idx.c: the write side of the index (open, put, del, flush, clear, stats).
 *
 * idx_put analyzes the article once (title and body as separate fields,
 * positions from 0 in each), interns every term in a per-batch hash table
 * and appends one pending entry per (term, doc). idx_flush then touches each
 * term once per batch: it finds the block the new doc ids belong to (the
 * last block whose first id is <= the new id), merges, and rewrites that
 * block (splitting at 128 docs / 1800 bytes so a block never spills into
 * LMDB overflow pages). With ids arriving in increasing order this is an
 * append to the term's last block.
 *
 * Removal (an update's old version, a delete) re-analyzes the old version
 * the caller passes, and deletes the doc from each of its terms' blocks.
 * A 32-bit hash of the indexed content, kept in the doc's column record,
 * catches a caller that passes the wrong old version.
 */
#include "idx_int.h"

#include "log.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>

#define S_DICT_NEXT "\xff" "next"

int idx_bytes_reserve(idx_bytes *b, size_t extra) {
    if (b->len + extra <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

void idx_bytes_free(idx_bytes *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

size_t idx_term_key(const char *term, size_t len, uint8_t *out) {
    if (len <= IDX_TERM_MAX) {
        memcpy(out, term, len);
        return len;
    }
    out[0] = 0x03;
    crypto_generichash(out + 1, 16, (const unsigned char *)term, len, NULL, 0);
    return 17;
}

size_t idx_post_key(const uint8_t *tk, size_t tklen, uint64_t docid, uint8_t *out) {
    memcpy(out, tk, tklen);
    out[tklen] = 0;
    idx_be64(out + tklen + 1, docid);
    return tklen + 9;
}

/* ---------------------------------------------------------------------- */
/* pending changes */

typedef struct {
    uint32_t hash;
    uint32_t keyoff;
    uint16_t keylen;
    uint32_t ndocs;
    uint64_t last;
    bool unsorted;
    idx_bytes data; /* entries: docid[8 native] varint tft varint tfb positions... */
} s_pterm;

typedef struct {
    uint32_t term;
    uint32_t pos; /* pos << 1 | exact */
    uint8_t field;
} s_tok;

typedef struct {
    uint64_t id;
    idx_col_rec rec;
} s_pcol;

struct idx_pending {
    uint32_t *slots; /* term index + 1 */
    size_t nslots;
    s_pterm *terms;
    size_t nterms, capterms;
    idx_bytes keys;
    s_pcol *cols;
    size_t ncols, capcols;
    int64_t ddocs, dsum_t, dsum_b;
    uint64_t max_id;
    s_tok *toks;
    size_t ntoks, captoks;
    uint8_t field;
    int err;
    idx *owner;
};

static uint32_t s_hash(const uint8_t *p, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static void s_pend_reset(struct idx_pending *pd) {
    for (size_t i = 0; i < pd->nterms; i++)
        idx_bytes_free(&pd->terms[i].data);
    pd->nterms = 0;
    if (pd->slots)
        memset(pd->slots, 0, pd->nslots * sizeof *pd->slots);
    pd->keys.len = 0;
    pd->ncols = 0;
    pd->ddocs = pd->dsum_t = pd->dsum_b = 0;
    pd->max_id = 0;
}

static void s_pend_free(struct idx_pending **pp) {
    struct idx_pending *pd = *pp;
    if (!pd)
        return;
    s_pend_reset(pd);
    free(pd->slots);
    free(pd->terms);
    idx_bytes_free(&pd->keys);
    free(pd->cols);
    free(pd->toks);
    free(pd);
    *pp = NULL;
}

static int s_grow_slots(struct idx_pending *pd) {
    size_t n = pd->nslots ? pd->nslots * 2 : 4096;
    uint32_t *s = calloc(n, sizeof *s);
    if (!s)
        return -1;
    for (size_t i = 0; i < pd->nterms; i++) {
        size_t k = pd->terms[i].hash & (n - 1);
        while (s[k])
            k = (k + 1) & (n - 1);
        s[k] = (uint32_t)i + 1;
    }
    free(pd->slots);
    pd->slots = s;
    pd->nslots = n;
    return 0;
}

/* Intern a term key; returns its index or -1. */
static long s_intern(struct idx_pending *pd, const uint8_t *k, size_t kl) {
    if ((pd->nterms + 1) * 2 > pd->nslots && s_grow_slots(pd))
        return -1;
    uint32_t h = s_hash(k, kl);
    size_t i = h & (pd->nslots - 1);
    while (pd->slots[i]) {
        s_pterm *t = &pd->terms[pd->slots[i] - 1];
        if (t->hash == h && t->keylen == kl && memcmp(pd->keys.p + t->keyoff, k, kl) == 0)
            return (long)pd->slots[i] - 1;
        i = (i + 1) & (pd->nslots - 1);
    }
    if (pd->nterms == pd->capterms) {
        size_t c = pd->capterms ? pd->capterms * 2 : 1024;
        s_pterm *t = realloc(pd->terms, c * sizeof *t);
        if (!t)
            return -1;
        pd->terms = t;
        pd->capterms = c;
    }
    if (idx_bytes_reserve(&pd->keys, kl))
        return -1;
    s_pterm *t = &pd->terms[pd->nterms];
    memset(t, 0, sizeof *t);
    t->hash = h;
    t->keyoff = (uint32_t)pd->keys.len;
    t->keylen = (uint16_t)kl;
    memcpy(pd->keys.p + pd->keys.len, k, kl);
    pd->keys.len += kl;
    pd->slots[i] = (uint32_t)pd->nterms + 1;
    return (long)pd->nterms++;
}

static int s_tok_cb(void *ud, const text_token *t) {
    struct idx_pending *pd = ud;
    uint8_t k[IDX_TERM_MAX + 1];
    size_t kl = idx_term_key(t->term, t->len, k);
    long ti = s_intern(pd, k, kl);
    if (ti < 0 || (pd->ntoks == pd->captoks && 0)) {
        pd->err = 1;
        return 1;
    }
    if (pd->ntoks == pd->captoks) {
        size_t c = pd->captoks ? pd->captoks * 2 : 4096;
        s_tok *n = realloc(pd->toks, c * sizeof *n);
        if (!n) {
            pd->err = 1;
            return 1;
        }
        pd->toks = n;
        pd->captoks = c;
    }
    s_tok *o = &pd->toks[pd->ntoks++];
    o->term = (uint32_t)ti;
    o->pos = (t->pos << 1) | (t->exact ? 1u : 0u);
    o->field = pd->field;
    return 0;
}

static int s_tok_cmp(const void *a, const void *b) {
    const s_tok *x = a, *y = b;
    if (x->term != y->term)
        return x->term < y->term ? -1 : 1;
    if (x->field != y->field)
        return x->field < y->field ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static uint32_t s_doc_hash(const idx_doc *d) {
    uint32_t h = 2166136261u;
#define S_MIX(p, n)                                   \
    do {                                              \
        const uint8_t *q_ = (const uint8_t *)(p);     \
        for (size_t i_ = 0; i_ < (n); i_++)           \
            h = (h ^ q_[i_]) * 16777619u;             \
        h = (h ^ 0xff) * 16777619u;                   \
    } while (0)
    S_MIX(d->title, d->title ? d->title_len : 0);
    S_MIX(d->body, d->body ? d->body_len : 0);
    S_MIX(d->site, d->site ? strlen(d->site) : 0);
    S_MIX(d->category, d->category ? strlen(d->category) : 0);
    for (size_t i = 0; i < d->ntags; i++)
        S_MIX(d->tags[i], d->tags[i] ? strlen(d->tags[i]) : 0);
    S_MIX(&d->published_at, sizeof d->published_at);
#undef S_MIX
    return h | 1; /* never 0 */
}

/* Analyze a doc into pd->toks (sorted); lt and lb get the field lengths. 0 or -1. */
static int s_analyze_doc(idx *self, struct idx_pending *pd, const idx_doc *d, uint32_t *lt,
                         uint32_t *lb) {
    pd->ntoks = 0;
    pd->err = 0;
    pd->field = 0;
    text_analyze(self->an, d->title ? d->title : "", d->title ? d->title_len : 0, 0, s_tok_cb, pd, lt);
    pd->field = 1;
    text_analyze(self->an, d->body ? d->body : "", d->body ? d->body_len : 0, 0, s_tok_cb, pd, lb);
    pd->field = 2;
    for (size_t i = 0; i < d->ntags && !pd->err; i++) {
        if (!d->tags[i] || !*d->tags[i])
            continue;
        size_t tl = strlen(d->tags[i]);
        char *buf = malloc(tl + 3);
        if (!buf)
            return -1;
        memcpy(buf, IDX_TAG_PREFIX, 2);
        memcpy(buf + 2, d->tags[i], tl);
        text_token t = {.term = buf, .len = (uint32_t)(tl + 2), .pos = 0, .exact = 0};
        s_tok_cb(pd, &t);
        free(buf);
    }
    if (pd->err)
        return -1;
    qsort(pd->toks, pd->ntoks, sizeof(s_tok), s_tok_cmp);
    return 0;
}

/* ---------------------------------------------------------------------- */

static int s_lmdb_fail(const char *what, int rc) {
    log_error("idx.lmdb", "op=%s err=\"%s\"", what, mdb_strerror(rc));
    return IDX_INTERNAL;
}

int idx_open(MDB_txn *txn, const idx_options *opts, idx **out) {
    *out = NULL;
    idx_options o = opts ? *opts : (idx_options){.b = -1};
    idx *self = calloc(1, sizeof *self);
    if (!self)
        return IDX_INTERNAL;
    if (sodium_init() < 0) {
        free(self);
        return IDX_INTERNAL;
    }
    self->k1 = o.k1 > 0 ? o.k1 : 1.2;
    self->b = o.b < 0 ? 0.75 : o.b;
    self->wt = o.title_weight > 0 ? o.title_weight : 2.0;
    self->typos = !o.no_typos;
    self->max_pending = o.max_pending_docs;
    text_options to = text_options_default();
    to.stopwords = o.stopwords;
    self->an = text_analyzer_new(&to);
    self->pend = calloc(1, sizeof *self->pend);
    if (!self->an || !self->pend) {
        idx_close(&self);
        return IDX_INTERNAL;
    }
    struct {
        const char *name;
        MDB_dbi *dbi;
    } dbs[] = {{"idx_post", &self->post}, {"idx_lex", &self->lex}, {"idx_col", &self->col},
               {"idx_dict", &self->dict}, {"idx_meta", &self->meta}};
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
        int rc = mdb_dbi_open(txn, dbs[i].name, MDB_CREATE, dbs[i].dbi);
        if (rc) {
            idx_close(&self);
            return s_lmdb_fail("dbi_open", rc);
        }
    }
    *out = self;
    return IDX_OK;
}

void idx_close(idx **self_p) {
    if (!self_p || !*self_p)
        return;
    idx *self = *self_p;
    text_analyzer_destroy(&self->an);
    s_pend_free(&self->pend);
    idx_bytes_free(&self->scratch);
    idx_bytes_free(&self->scratch2);
    free(self);
    *self_p = NULL;
}

void idx_discard(idx *self) {
    if (self && self->pend)
        s_pend_reset(self->pend);
}

int idx_meta_get(idx *self, MDB_txn *txn, idx_meta_stats *st) {
    memset(st, 0, sizeof *st);
    MDB_val k = {5, "stats"}, v;
    int rc = mdb_get(txn, self->meta, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (v.mv_size == sizeof *st)
        memcpy(st, v.mv_data, sizeof *st);
    return 0;
}

static int s_meta_add(idx *self, MDB_txn *txn, int64_t dd, int64_t dt, int64_t db) {
    if (!dd && !dt && !db)
        return 0;
    idx_meta_stats st;
    int rc = idx_meta_get(self, txn, &st);
    if (rc)
        return rc;
    st.docs += (uint64_t)dd;
    st.sum_t += (uint64_t)dt;
    st.sum_b += (uint64_t)db;
    MDB_val k = {5, "stats"}, v = {sizeof st, &st};
    return mdb_put(txn, self->meta, &k, &v, 0);
}

int idx_col_get(idx *self, MDB_txn *txn, uint64_t id, idx_col_rec *r) {
    memset(r, 0, sizeof *r);
    uint8_t kb[8];
    idx_be64(kb, id / IDX_COL_PER_CHUNK);
    MDB_val k = {8, kb}, v;
    int rc = mdb_get(txn, self->col, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    size_t off = (id % IDX_COL_PER_CHUNK) * IDX_COL_REC;
    if (v.mv_size >= off + IDX_COL_REC)
        memcpy(r, (uint8_t *)v.mv_data + off, sizeof *r);
    return 0;
}

static int s_col_put(idx *self, MDB_txn *txn, const s_pcol *c, size_t n) {
    size_t i = 0;
    uint8_t chunk[IDX_COL_PER_CHUNK * IDX_COL_REC];
    while (i < n) {
        uint64_t ch = c[i].id / IDX_COL_PER_CHUNK;
        uint8_t kb[8];
        idx_be64(kb, ch);
        MDB_val k = {8, kb}, v;
        int rc = mdb_get(txn, self->col, &k, &v);
        memset(chunk, 0, sizeof chunk);
        if (rc == 0 && v.mv_size == sizeof chunk)
            memcpy(chunk, v.mv_data, sizeof chunk);
        else if (rc && rc != MDB_NOTFOUND)
            return rc;
        for (; i < n && c[i].id / IDX_COL_PER_CHUNK == ch; i++)
            memcpy(chunk + (c[i].id % IDX_COL_PER_CHUNK) * IDX_COL_REC, &c[i].rec, IDX_COL_REC);
        v.mv_size = sizeof chunk;
        v.mv_data = chunk;
        rc = mdb_put(txn, self->col, &k, &v, 0);
        if (rc)
            return rc;
    }
    return 0;
}

uint32_t idx_dict_lookup(idx *self, MDB_txn *txn, char kind, const char *val) {
    size_t l = strlen(val);
    if (l + 1 > 500)
        l = 499;
    uint8_t kb[512];
    kb[0] = (uint8_t)kind;
    memcpy(kb + 1, val, l);
    MDB_val k = {l + 1, kb}, v;
    if (mdb_get(txn, self->dict, &k, &v) || v.mv_size != 4)
        return 0;
    uint32_t id;
    memcpy(&id, v.mv_data, 4);
    return id;
}

long idx_dict_name(idx *self, MDB_txn *txn, char kind, uint32_t id, char *out, size_t cap) {
    uint8_t kb[6] = {'#', (uint8_t)kind, (uint8_t)(id >> 24), (uint8_t)(id >> 16),
                     (uint8_t)(id >> 8), (uint8_t)id};
    MDB_val k = {6, kb}, v;
    if (mdb_get(txn, self->dict, &k, &v) || !cap)
        return -1;
    size_t n = v.mv_size < cap - 1 ? v.mv_size : cap - 1;
    memcpy(out, v.mv_data, n);
    out[n] = 0;
    return (long)n;
}

/* value -> id, assigning a new id when absent. 0 for ""; -1 on error. */
static int64_t s_dict_assign(idx *self, MDB_txn *txn, char kind, const char *val) {
    if (!val || !*val)
        return 0;
    uint32_t id = idx_dict_lookup(self, txn, kind, val);
    if (id)
        return id;
    MDB_val nk = {5, S_DICT_NEXT}, nv;
    uint32_t next = 1;
    int rc = mdb_get(txn, self->dict, &nk, &nv);
    if (rc == 0 && nv.mv_size == 4)
        memcpy(&next, nv.mv_data, 4);
    else if (rc && rc != MDB_NOTFOUND)
        return -1;
    id = next++;
    nv.mv_size = 4;
    nv.mv_data = &next;
    if (mdb_put(txn, self->dict, &nk, &nv, 0))
        return -1;
    size_t l = strlen(val);
    if (l + 1 > 500)
        l = 499;
    uint8_t kb[512];
    kb[0] = (uint8_t)kind;
    memcpy(kb + 1, val, l);
    MDB_val k = {l + 1, kb}, v = {4, &id};
    if (mdb_put(txn, self->dict, &k, &v, 0))
        return -1;
    uint8_t rk[6] = {'#', (uint8_t)kind, (uint8_t)(id >> 24), (uint8_t)(id >> 16),
                     (uint8_t)(id >> 8), (uint8_t)id};
    MDB_val k2 = {6, rk}, v2 = {l, (void *)val};
    if (mdb_put(txn, self->dict, &k2, &v2, 0))
        return -1;
    return id;
}

uint64_t idx_lex_df(idx *self, MDB_txn *txn, const uint8_t *tk, size_t tklen) {
    MDB_val k = {tklen, (void *)tk}, v;
    if (mdb_get(txn, self->lex, &k, &v))
        return 0;
    uint64_t df = 0;
    if (!idx_varint_get(v.mv_data, (uint8_t *)v.mv_data + v.mv_size, &df))
        return 0;
    return df;
}

static int s_lex_add(idx *self, MDB_txn *txn, const uint8_t *tk, size_t tklen, int64_t delta) {
    int64_t df = (int64_t)idx_lex_df(self, txn, tk, tklen) + delta;
    MDB_val k = {tklen, (void *)tk};
    if (df <= 0) {
        int rc = mdb_del(txn, self->lex, &k, NULL);
        return rc == MDB_NOTFOUND ? 0 : rc;
    }
    uint8_t b[10];
    MDB_val v = {idx_varint_put(b, (uint64_t)df), b};
    return mdb_put(txn, self->lex, &k, &v, 0);
}

/* ---------------------------------------------------------------------- */
/* blocks */

typedef struct {
    uint64_t docid;
    uint64_t tft, tfb;
    const uint8_t *pos;
    uint32_t poslen;
} s_entry;

/* Decode a block fully. Returns n or -1 when malformed. */
static long s_block_decode(const uint8_t *p, size_t len, uint64_t first, s_entry *e, size_t cap) {
    const uint8_t *end = p + len;
    uint64_t n, v;
    if (!(p = idx_varint_get(p, end, &n)) || n == 0 || n > cap)
        return -1;
    e[0].docid = first;
    for (uint64_t i = 1; i < n; i++) {
        if (!(p = idx_varint_get(p, end, &v)))
            return -1;
        e[i].docid = e[i - 1].docid + v;
    }
    for (uint64_t i = 0; i < n; i++) {
        if (!(p = idx_varint_get(p, end, &e[i].tft)) || !(p = idx_varint_get(p, end, &e[i].tfb)))
            return -1;
    }
    for (uint64_t i = 0; i < n; i++) {
        const uint8_t *s = p;
        for (uint64_t k = 0; k < e[i].tft + e[i].tfb; k++)
            if (!(p = idx_varint_get(p, end, &v)))
                return -1;
        e[i].pos = s;
        e[i].poslen = (uint32_t)(p - s);
    }
    return (long)n;
}

static size_t s_entry_size(const s_entry *e, uint64_t prev) {
    uint8_t b[10];
    return idx_varint_put(b, e->docid - prev) + idx_varint_put(b, e->tft) +
           idx_varint_put(b, e->tfb) + e->poslen;
}

/* Write entries e[0..n) (sorted, distinct) as blocks of term tk. */
static int s_blocks_write(idx *self, MDB_txn *txn, const uint8_t *tk, size_t tkl,
                          const s_entry *e, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t j = i, bytes = 4;
        while (j < n && j - i < IDX_BLOCK_DOCS) {
            size_t s = s_entry_size(&e[j], j > i ? e[j - 1].docid : e[j].docid);
            if (j > i && bytes + s > IDX_BLOCK_BYTES)
                break;
            bytes += s;
            j++;
        }
        idx_bytes *b = &self->scratch;
        b->len = 0;
        if (idx_bytes_reserve(b, bytes + 16))
            return ENOMEM;
        uint8_t *p = b->p;
        p += idx_varint_put(p, j - i);
        for (size_t k = i + 1; k < j; k++)
            p += idx_varint_put(p, e[k].docid - e[k - 1].docid);
        for (size_t k = i; k < j; k++) {
            p += idx_varint_put(p, e[k].tft);
            p += idx_varint_put(p, e[k].tfb);
        }
        for (size_t k = i; k < j; k++) {
            memcpy(p, e[k].pos, e[k].poslen);
            p += e[k].poslen;
        }
        uint8_t kb[IDX_KEY_MAX];
        MDB_val k = {idx_post_key(tk, tkl, e[i].docid, kb), kb};
        MDB_val v = {(size_t)(p - b->p), b->p};
        int rc = mdb_put(txn, self->post, &k, &v, 0);
        if (rc)
            return rc;
        i = j;
    }
    return 0;
}

static bool s_same_term(const MDB_val *k, const uint8_t *tk, size_t tkl) {
    return k->mv_size == tkl + 9 && memcmp(k->mv_data, tk, tkl) == 0 &&
           ((uint8_t *)k->mv_data)[tkl] == 0;
}

/* Position cursor c on the block of term tk that should hold docid d (the
 * last block whose first id <= d, else the term's first block). Returns 0
 * with key and val set, MDB_NOTFOUND when the term has no block, or an error. */
static int s_find_block(MDB_cursor *c, const uint8_t *tk, size_t tkl, uint64_t d, MDB_val *key,
                        MDB_val *val) {
    uint8_t kb[IDX_KEY_MAX];
    MDB_val k = {idx_post_key(tk, tkl, d, kb), kb}, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    bool next_ok = rc == 0 && s_same_term(&k, tk, tkl);
    if (next_ok && idx_get_be64((uint8_t *)k.mv_data + tkl + 1) == d) {
        *key = k;
        *val = v;
        return 0;
    }
    MDB_val pk, pv;
    int prc = mdb_cursor_get(c, &pk, &pv, rc == MDB_NOTFOUND ? MDB_LAST : MDB_PREV);
    if (prc == 0 && s_same_term(&pk, tk, tkl)) {
        *key = pk;
        *val = pv;
        return 0;
    }
    if (prc && prc != MDB_NOTFOUND)
        return prc;
    if (!next_ok)
        return MDB_NOTFOUND;
    /* reposition on the next block */
    k.mv_size = idx_post_key(tk, tkl, d, kb);
    k.mv_data = kb;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (rc)
        return rc;
    *key = k;
    *val = v;
    return 0;
}

typedef struct {
    s_entry *e;
    size_t n, cap;
} s_entries;

static int s_entries_reserve(s_entries *a, size_t n) {
    if (n <= a->cap)
        return 0;
    size_t c = a->cap ? a->cap : 256;
    while (c < n)
        c *= 2;
    s_entry *e = realloc(a->e, c * sizeof *e);
    if (!e)
        return -1;
    a->e = e;
    a->cap = c;
    return 0;
}

static int s_entry_cmp(const void *a, const void *b) {
    const s_entry *x = a, *y = b;
    return x->docid < y->docid ? -1 : x->docid > y->docid;
}

/* Merge the new entries ne[0..n) (sorted, not yet indexed) into term tk. */
static int s_term_merge(idx *self, MDB_txn *txn, MDB_cursor *c, const uint8_t *tk, size_t tkl,
                        const s_entry *ne, size_t n, s_entries *tmp) {
    size_t i = 0;
    while (i < n) {
        MDB_val k, v;
        int rc = s_find_block(c, tk, tkl, ne[i].docid, &k, &v);
        if (rc == MDB_NOTFOUND)
            return s_blocks_write(self, txn, tk, tkl, ne + i, n - i);
        if (rc)
            return rc;
        uint64_t first = idx_get_be64((uint8_t *)k.mv_data + tkl + 1);
        uint8_t oldkey[IDX_KEY_MAX];
        size_t oldkl = k.mv_size;
        memcpy(oldkey, k.mv_data, oldkl);
        /* copy the block: the pages change under us */
        idx_bytes *b2 = &self->scratch2;
        b2->len = 0;
        if (idx_bytes_reserve(b2, v.mv_size))
            return ENOMEM;
        memcpy(b2->p, v.mv_data, v.mv_size);
        size_t blen = v.mv_size;
        uint64_t limit = UINT64_MAX;
        MDB_val nk, nv;
        rc = mdb_cursor_get(c, &nk, &nv, MDB_NEXT);
        if (rc == 0 && s_same_term(&nk, tk, tkl))
            limit = idx_get_be64((uint8_t *)nk.mv_data + tkl + 1);
        else if (rc && rc != MDB_NOTFOUND)
            return rc;
        size_t j = i;
        while (j < n && ne[j].docid < limit)
            j++;
        if (j == i) /* cannot happen: ne[i] < next block's first by construction */
            j = i + 1;
        if (s_entries_reserve(tmp, IDX_BLOCK_DOCS + (j - i)))
            return ENOMEM;
        long bn = s_block_decode(b2->p, blen, first, tmp->e, IDX_BLOCK_DOCS);
        if (bn < 0) {
            log_error("idx.corrupt", "what=block first=%llu", (unsigned long long)first);
            return MDB_CORRUPTED;
        }
        /* merge in place from the back */
        size_t a = (size_t)bn, bcount = j - i, out = a + bcount;
        s_entry *e = tmp->e;
        size_t x = a, y = bcount;
        while (y > 0) {
            if (x > 0 && e[x - 1].docid > ne[i + y - 1].docid)
                e[--out] = e[--x];
            else if (x > 0 && e[x - 1].docid == ne[i + y - 1].docid) {
                /* already there (should not happen): the new one wins */
                e[--out] = ne[i + y - 1];
                x--;
                y--;
            } else
                e[--out] = ne[i + --y];
        }
        size_t total = a + bcount;
        if (out > x) { /* duplicates collapsed: close the gap after e[0..x) */
            memmove(e + x, e + out, (total - out) * sizeof *e);
            total -= out - x;
        }
        /* the first block keeps its key when its first id is unchanged: overwrite */
        if (e[0].docid != first) {
            MDB_val dk = {oldkl, oldkey};
            rc = mdb_del(txn, self->post, &dk, NULL);
            if (rc)
                return rc;
        }
        rc = s_blocks_write(self, txn, tk, tkl, e, total);
        if (rc)
            return rc;
        i = j;
    }
    return 0;
}

/* Remove docid d from term tk. 1 if removed, 0 if absent, <0 / errno on error. */
static int s_term_remove(idx *self, MDB_txn *txn, MDB_cursor *c, const uint8_t *tk, size_t tkl,
                         uint64_t d, s_entries *tmp) {
    MDB_val k, v;
    int rc = s_find_block(c, tk, tkl, d, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return -rc;
    uint64_t first = idx_get_be64((uint8_t *)k.mv_data + tkl + 1);
    if (first > d)
        return 0;
    uint8_t oldkey[IDX_KEY_MAX];
    size_t oldkl = k.mv_size;
    memcpy(oldkey, k.mv_data, oldkl);
    idx_bytes *b2 = &self->scratch2;
    b2->len = 0;
    if (idx_bytes_reserve(b2, v.mv_size) || s_entries_reserve(tmp, IDX_BLOCK_DOCS))
        return -ENOMEM;
    memcpy(b2->p, v.mv_data, v.mv_size);
    long bn = s_block_decode(b2->p, v.mv_size, first, tmp->e, IDX_BLOCK_DOCS);
    if (bn < 0)
        return -MDB_CORRUPTED;
    long at = -1;
    for (long i = 0; i < bn; i++)
        if (tmp->e[i].docid == d)
            at = i;
    if (at < 0)
        return 0;
    memmove(tmp->e + at, tmp->e + at + 1, (size_t)(bn - at - 1) * sizeof(s_entry));
    bn--;
    if (bn == 0 || tmp->e[0].docid != first) {
        MDB_val dk = {oldkl, oldkey};
        rc = mdb_del(txn, self->post, &dk, NULL);
        if (rc)
            return -rc;
    }
    if (bn > 0 && (rc = s_blocks_write(self, txn, tk, tkl, tmp->e, (size_t)bn)))
        return -rc;
    return 1;
}

/* ---------------------------------------------------------------------- */

typedef struct {
    idx *self;
    size_t *order;
} s_sort_ctx;

static _Thread_local s_sort_ctx *s_sort_g; /* qsort has no context argument in C11 */

static int s_term_order(const void *a, const void *b) {
    struct idx_pending *pd = s_sort_g->self->pend;
    const s_pterm *x = &pd->terms[*(const size_t *)a], *y = &pd->terms[*(const size_t *)b];
    size_t l = x->keylen < y->keylen ? x->keylen : y->keylen;
    int c = memcmp(pd->keys.p + x->keyoff, pd->keys.p + y->keyoff, l);
    return c ? c : (x->keylen > y->keylen) - (x->keylen < y->keylen);
}

static int s_col_cmp(const void *a, const void *b) {
    const s_pcol *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

int idx_flush(idx *self, MDB_txn *txn) {
    struct idx_pending *pd = self->pend;
    if (!pd->nterms && !pd->ncols)
        return IDX_OK;
    int rc = 0;
    MDB_cursor *c = NULL;
    s_entries ne = {0}, tmp = {0};
    size_t *order = malloc((pd->nterms ? pd->nterms : 1) * sizeof *order);
    if (!order) {
        rc = ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < pd->nterms; i++)
        order[i] = i;
    s_sort_ctx sc = {self, order};
    s_sort_g = &sc;
    qsort(order, pd->nterms, sizeof *order, s_term_order);
    if ((rc = mdb_cursor_open(txn, self->post, &c)))
        goto done;
    for (size_t oi = 0; oi < pd->nterms; oi++) {
        s_pterm *t = &pd->terms[order[oi]];
        if (s_entries_reserve(&ne, t->ndocs)) {
            rc = ENOMEM;
            goto done;
        }
        const uint8_t *p = t->data.p, *end = p + t->data.len;
        size_t n = 0;
        while (p < end) {
            s_entry *e = &ne.e[n++];
            memcpy(&e->docid, p, 8);
            p += 8;
            p = idx_varint_get(p, end, &e->tft);
            p = idx_varint_get(p, end, &e->tfb);
            uint32_t pl;
            memcpy(&pl, p, 4);
            p += 4;
            e->pos = p;
            e->poslen = pl;
            p += pl;
        }
        if (t->unsorted)
            qsort(ne.e, n, sizeof(s_entry), s_entry_cmp);
        const uint8_t *tk = pd->keys.p + t->keyoff;
        if ((rc = s_term_merge(self, txn, c, tk, t->keylen, ne.e, n, &tmp)))
            goto done;
        if ((rc = s_lex_add(self, txn, tk, t->keylen, (int64_t)n)))
            goto done;
    }
    qsort(pd->cols, pd->ncols, sizeof(s_pcol), s_col_cmp);
    if ((rc = s_col_put(self, txn, pd->cols, pd->ncols)))
        goto done;
    rc = s_meta_add(self, txn, pd->ddocs, pd->dsum_t, pd->dsum_b);
done:
    if (c)
        mdb_cursor_close(c);
    free(order);
    free(ne.e);
    free(tmp.e);
    s_pend_reset(pd);
    if (rc) {
        log_error("idx.flush", "err=\"%s\"", mdb_strerror(rc));
        return IDX_INTERNAL;
    }
    return IDX_OK;
}

/* Append the doc's sorted tokens to the pending terms. */
static int s_pend_add(struct idx_pending *pd, uint64_t id) {
    size_t i = 0;
    while (i < pd->ntoks) {
        uint32_t term = pd->toks[i].term;
        size_t j = i;
        uint64_t tft = 0, tfb = 0;
        while (j < pd->ntoks && pd->toks[j].term == term) {
            if (pd->toks[j].field == 0)
                tft++;
            else if (pd->toks[j].field == 1)
                tfb++;
            j++;
        }
        s_pterm *t = &pd->terms[term];
        if (idx_bytes_reserve(&t->data, 8 + 20 + 4 + (j - i) * 5))
            return -1;
        uint8_t *p = t->data.p + t->data.len;
        memcpy(p, &id, 8);
        p += 8;
        p += idx_varint_put(p, tft);
        p += idx_varint_put(p, tfb);
        uint8_t *lenp = p;
        p += 4;
        uint8_t *ps = p;
        uint32_t prev = 0;
        uint8_t field = 0;
        for (size_t k = i; k < j; k++) {
            if (pd->toks[k].field == 2)
                continue;
            if (k == i || pd->toks[k].field != field) {
                prev = 0;
                field = pd->toks[k].field;
            }
            p += idx_varint_put(p, pd->toks[k].pos - prev);
            prev = pd->toks[k].pos;
        }
        uint32_t pl = (uint32_t)(p - ps);
        memcpy(lenp, &pl, 4);
        t->data.len = (size_t)(p - t->data.p);
        if (t->ndocs && id < t->last)
            t->unsorted = true;
        t->last = id;
        t->ndocs++;
        i = j;
    }
    return 0;
}

/* Remove the postings of `old` for doc id (flushed state). */
static int s_remove(idx *self, MDB_txn *txn, uint64_t id, const idx_doc *old,
                    const idx_col_rec *rec) {
    struct idx_pending *pd = self->pend;
    uint32_t lt, lb;
    /* analysis interns terms in the pending table: it is empty now (flushed) */
    if (s_analyze_doc(self, pd, old, &lt, &lb))
        return ENOMEM;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, self->post, &c);
    if (rc)
        return rc;
    s_entries tmp = {0};
    uint32_t last = UINT32_MAX;
    for (size_t i = 0; i < pd->ntoks && !rc; i++) {
        if (pd->toks[i].term == last)
            continue;
        last = pd->toks[i].term;
        s_pterm *t = &pd->terms[last];
        const uint8_t *tk = pd->keys.p + t->keyoff;
        int r = s_term_remove(self, txn, c, tk, t->keylen, id, &tmp);
        if (r < 0)
            rc = -r;
        else if (r == 1)
            rc = s_lex_add(self, txn, tk, t->keylen, -1);
    }
    mdb_cursor_close(c);
    free(tmp.e);
    s_pend_reset(pd);
    if (rc)
        return rc;
    s_pcol z = {.id = id};
    if ((rc = s_col_put(self, txn, &z, 1)))
        return rc;
    return s_meta_add(self, txn, -1, -(int64_t)rec->len_t, -(int64_t)rec->len_b);
}

/* Check `old` against the indexed state; flush first so the state is current. */
static int s_check_old(idx *self, MDB_txn *txn, uint64_t id, const idx_doc *old,
                       idx_col_rec *rec) {
    struct idx_pending *pd = self->pend;
    if ((old || id <= pd->max_id) && idx_flush(self, txn) != IDX_OK)
        return IDX_INTERNAL;
    if (idx_col_get(self, txn, id, rec))
        return IDX_INTERNAL;
    if (!old) {
        if (rec->live) {
            log_warn("idx.put", "id=%llu err=\"already indexed, old version not given\"",
                     (unsigned long long)id);
            return IDX_FAILED_PRECONDITION;
        }
        return IDX_OK;
    }
    if (!rec->live)
        return IDX_OK; /* nothing to remove */
    if (rec->hash != s_doc_hash(old)) {
        log_warn("idx.put", "id=%llu err=\"old version differs from the indexed one\"",
                 (unsigned long long)id);
        return IDX_FAILED_PRECONDITION;
    }
    return IDX_OK;
}

int idx_put(idx *self, MDB_txn *txn, uint64_t id, const idx_doc *doc, const idx_doc *old) {
    if (!self || !txn || !doc || id == 0)
        return IDX_INVALID_ARGUMENT;
    idx_col_rec rec;
    int st = s_check_old(self, txn, id, old, &rec);
    if (st)
        return st;
    struct idx_pending *pd = self->pend;
    int rc;
    if (old && rec.live && (rc = s_remove(self, txn, id, old, &rec)))
        return s_lmdb_fail("remove", rc);
    int64_t site = s_dict_assign(self, txn, 's', doc->site);
    int64_t cat = s_dict_assign(self, txn, 'c', doc->category);
    if (site < 0 || cat < 0)
        return s_lmdb_fail("dict", MDB_BAD_TXN);
    uint32_t lt = 0, lb = 0;
    if (s_analyze_doc(self, pd, doc, &lt, &lb) || s_pend_add(pd, id)) {
        idx_discard(self);
        log_error("idx.put", "err=\"out of memory\"");
        return IDX_INTERNAL;
    }
    if (pd->ncols == pd->capcols) {
        size_t c = pd->capcols ? pd->capcols * 2 : 256;
        s_pcol *n = realloc(pd->cols, c * sizeof *n);
        if (!n) {
            idx_discard(self);
            return IDX_INTERNAL;
        }
        pd->cols = n;
        pd->capcols = c;
    }
    s_pcol *pc = &pd->cols[pd->ncols++];
    memset(pc, 0, sizeof *pc);
    pc->id = id;
    pc->rec.pub = doc->published_at;
    pc->rec.len_t = lt;
    pc->rec.len_b = lb;
    pc->rec.site = (uint32_t)site;
    pc->rec.cat = (uint32_t)cat;
    pc->rec.hash = s_doc_hash(doc);
    pc->rec.live = 1;
    pd->ddocs++;
    pd->dsum_t += lt;
    pd->dsum_b += lb;
    if (id > pd->max_id)
        pd->max_id = id;
    if (pd->ncols >= self->max_pending || self->max_pending == 0)
        return idx_flush(self, txn);
    return IDX_OK;
}

int idx_del(idx *self, MDB_txn *txn, uint64_t id, const idx_doc *old) {
    if (!self || !txn || id == 0)
        return IDX_INVALID_ARGUMENT;
    idx_col_rec rec;
    if (idx_flush(self, txn) != IDX_OK || idx_col_get(self, txn, id, &rec))
        return IDX_INTERNAL;
    if (!rec.live)
        return IDX_OK;
    if (!old || rec.hash != s_doc_hash(old)) {
        log_warn("idx.del", "id=%llu err=\"old version missing or differs\"", (unsigned long long)id);
        return IDX_FAILED_PRECONDITION;
    }
    int rc = s_remove(self, txn, id, old, &rec);
    return rc ? s_lmdb_fail("remove", rc) : IDX_OK;
}

int idx_clear(idx *self, MDB_txn *txn) {
    idx_discard(self);
    MDB_dbi dbs[] = {self->post, self->lex, self->col, self->dict, self->meta};
    for (size_t i = 0; i < 5; i++) {
        int rc = mdb_drop(txn, dbs[i], 0);
        if (rc)
            return s_lmdb_fail("drop", rc);
    }
    return IDX_OK;
}

int idx_stats(idx *self, MDB_txn *txn, idx_stats_t *out) {
    memset(out, 0, sizeof *out);
    idx_meta_stats st;
    if (idx_meta_get(self, txn, &st))
        return IDX_INTERNAL;
    out->docs = st.docs;
    if (st.docs) {
        out->avg_title_len = (double)st.sum_t / (double)st.docs;
        out->avg_body_len = (double)st.sum_b / (double)st.docs;
    }
    MDB_dbi dbs[] = {self->post, self->lex, self->col, self->dict, self->meta};
    for (size_t i = 0; i < 5; i++) {
        MDB_stat ms;
        if (mdb_stat(txn, dbs[i], &ms))
            return IDX_INTERNAL;
        out->bytes += (uint64_t)ms.ms_psize *
                      (ms.ms_branch_pages + ms.ms_leaf_pages + ms.ms_overflow_pages);
        if (i == 0)
            out->blocks = ms.ms_entries;
        if (i == 1)
            out->terms = ms.ms_entries;
    }
    return IDX_OK;
}
