/*
 * idx_terms: the typo scan's in-memory term lists.
 *
 * The typo fallback (idx_search.c, s_add_typos) walks, per segment, the
 * lexicon terms that start with the query word's first two bytes (and the
 * same with the exact-form prefix) through a Levenshtein automaton that
 * seeks past dead prefixes. On the lexicon pages that walk is a cache miss
 * per entry: terms are interleaved with their values (inline postings of up
 * to 1000 bytes), and an entry's start is known only from the one before.
 * A segment never changes once written, so the terms of such a slice are
 * read once and kept here, dense (front-coded, no values) with a whole term
 * every IDX_TERMS_RESTART entries for the seeks:
 *
 *   idx_terms ── per segment (its idx_seg, as the segment list has it) ──▶
 *       open-addressed table: prefix (1-3 bytes) ──▶ idx_tslice
 *
 * Slices are built on first use (one walk of that slice of the lexicon),
 * dropped with their segment (idx_terms_retain: a merge replaces segments
 * by a new one with a new id) or by idx_clear, and held to a byte cap: past
 * it a slice is built for the one scan and freed (the answers never depend
 * on the cache). Not thread-safe: it belongs to one idx, used by one thread.
 */
#include "idx_terms.h"

#include "grow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint32_t key; /* pl << 24 | prefix bytes; 0 = free */
    idx_tslice *s;
} s_slot;

typedef struct {
    idx_seg seg; /* which segment (its `dead` count is not compared) */
    s_slot *tab;
    size_t nslots, used;
} s_segc;

struct idx_terms {
    size_t cap, bytes;
    uint64_t builds;
    s_segc *segs;
    size_t nsegs, segcap;
};

/* a slice is one block: header, restart keys (8-byte aligned), offsets, data */
_Static_assert(sizeof(idx_tslice) % 8 == 0, "restart keys follow the header");

static size_t s_slice_size(const idx_tslice *s) {
    return sizeof *s + (size_t)s->nrst * (sizeof *s->rkey + sizeof *s->rst) + s->bytes +
           IDX_TERMS_PAD;
}

idx_terms *idx_terms_new(size_t cap) {
    idx_terms *t = calloc(1, sizeof *t);
    if (t)
        t->cap = cap ? cap : IDX_TERMS_CAP;
    return t;
}

void idx_tslice_free(idx_tslice **s) {
    if (!s || !*s)
        return;
    free(*s); /* one block: header, restarts, data */
    *s = NULL;
}

static void s_segc_free(idx_terms *t, s_segc *c) {
    for (size_t i = 0; i < c->nslots; i++)
        if (c->tab[i].key) {
            t->bytes -= s_slice_size(c->tab[i].s);
            idx_tslice_free(&c->tab[i].s);
        }
    t->bytes -= c->nslots * sizeof *c->tab;
    free(c->tab);
    memset(c, 0, sizeof *c);
}

void idx_terms_clear(idx_terms *self) {
    if (!self)
        return;
    for (size_t i = 0; i < self->nsegs; i++)
        s_segc_free(self, &self->segs[i]);
    self->nsegs = 0;
}

void idx_terms_destroy(idx_terms **self) {
    if (!self || !*self)
        return;
    idx_terms_clear(*self);
    free((*self)->segs);
    free(*self);
    *self = NULL;
}

size_t idx_terms_bytes(const idx_terms *self) {
    return self ? sizeof *self + self->segcap * sizeof *self->segs + self->bytes : 0;
}

uint64_t idx_terms_builds(const idx_terms *self) { return self ? self->builds : 0; }

size_t idx_typo_cache_bytes(const idx *self) { return self ? idx_terms_bytes(self->terms) : 0; }

static bool s_same_seg(const idx_seg *a, const idx_seg *b) {
    return a->id == b->id && a->lo == b->lo && a->hi == b->hi && a->ndocs == b->ndocs &&
           a->minid == b->minid && a->maxid == b->maxid;
}

void idx_terms_retain(idx_terms *self, const idx_segs *segs) {
    if (!self)
        return;
    size_t k = 0;
    for (size_t i = 0; i < self->nsegs; i++) {
        bool live = false;
        for (size_t j = 0; j < segs->nsegs && !live; j++)
            live = s_same_seg(&self->segs[i].seg, &segs->seg[j]);
        if (live)
            self->segs[k++] = self->segs[i];
        else
            s_segc_free(self, &self->segs[i]);
    }
    self->nsegs = k;
}

/* The table of segment seg, added when missing; NULL when out of memory. */
static s_segc *s_segc_get(idx_terms *t, const idx_seg *seg) {
    for (size_t i = 0; i < t->nsegs; i++)
        if (s_same_seg(&t->segs[i].seg, seg))
            return &t->segs[i];
    if (t->nsegs == t->segcap) {
        s_segc *p = grow(t->segs, &t->segcap, sizeof *p, 8);
        if (!p)
            return NULL;
        t->segs = p;
    }
    s_segc *c = &t->segs[t->nsegs++];
    memset(c, 0, sizeof *c);
    c->seg = *seg;
    return c;
}

static size_t s_hash(uint32_t key, size_t nslots) {
    return (size_t)((key * 2654435761u) >> 7) & (nslots - 1);
}

/* The slot of key in c's table: its slice, or the free slot where it goes. */
static s_slot *s_find(s_segc *c, uint32_t key) {
    for (size_t i = s_hash(key, c->nslots);; i = (i + 1) & (c->nslots - 1))
        if (c->tab[i].key == key || !c->tab[i].key)
            return &c->tab[i];
}

/* Room for one more slice in c's table (kept at most half full). */
static int s_segc_room(idx_terms *t, s_segc *c) {
    if (c->nslots && (c->used + 1) * 2 <= c->nslots)
        return 0;
    size_t n = c->nslots ? c->nslots * 2 : 16;
    s_slot *tab = calloc(n, sizeof *tab);
    if (!tab)
        return ENOMEM;
    s_segc nc = {.seg = c->seg, .tab = tab, .nslots = n, .used = c->used};
    for (size_t i = 0; i < c->nslots; i++)
        if (c->tab[i].key)
            *s_find(&nc, c->tab[i].key) = c->tab[i];
    t->bytes += (n - c->nslots) * sizeof *tab;
    free(c->tab);
    *c = nc;
    return 0;
}

static size_t s_uvar_put(uint8_t *p, size_t v) { return idx_varint_put(p, v); }

/* t[0..l)'s first 8 bytes as a big-endian number, 0-padded: a smaller key
 * is a smaller term (equal keys tell nothing). */
static inline uint64_t s_key8(const uint8_t *t, size_t l) {
    uint64_t k = 0;
    for (size_t i = 0; i < 8; i++)
        k = k << 8 | (i < l ? t[i] : 0);
    return k;
}

/* Read the terms of seg starting with pre[0..pl) into a new slice. */
static int s_tslice_build(MDB_cursor *c, uint32_t seg, const uint8_t *pre, size_t pl, idx_tslice **out) {
    idx_bytes d = {0};
    uint32_t *rst = NULL;
    uint64_t *rkey = NULL;
    size_t n = 0, rcap = 0, kcap = 0;
    uint8_t prev[IDX_TERM_MAX];
    size_t pvl = 0;
    idx_lexit it;
    int rc = idx_lexit_seek(&it, c, seg, pre, pl);
    while (rc == 0 && !it.eof && it.tl >= pl && memcmp(it.term, pre, pl) == 0) {
        if (n > UINT32_MAX - 1 || d.len > UINT32_MAX - 2 * IDX_TERM_MAX) {
            rc = ENOMEM;
            break;
        }
        size_t sh = 0, lim = it.tl < pvl ? it.tl : pvl;
        while (sh < lim && it.term[sh] == prev[sh])
            sh++;
        bool restart = n % IDX_TERMS_RESTART == 0;
        if (restart && n / IDX_TERMS_RESTART == rcap) {
            uint32_t *p = grow(rst, &rcap, sizeof *p, 16);
            uint64_t *k = p ? grow(rkey, &kcap, sizeof *k, 16) : NULL;
            rst = p ? p : rst;
            rkey = k ? k : rkey;
            if (!k) {
                rc = ENOMEM;
                break;
            }
        }
        if (idx_bytes_reserve(&d, 2 * 3 + it.tl)) {
            rc = ENOMEM;
            break;
        }
        if (restart) {
            rst[n / IDX_TERMS_RESTART] = (uint32_t)d.len;
            rkey[n / IDX_TERMS_RESTART] = s_key8(it.term, it.tl);
        }
        size_t from = restart ? 0 : sh;
        d.len += s_uvar_put(d.p + d.len, sh);
        d.len += s_uvar_put(d.p + d.len, it.tl - from);
        memcpy(d.p + d.len, it.term + from, it.tl - from);
        d.len += it.tl - from;
        memcpy(prev + sh, it.term + sh, it.tl - sh);
        pvl = it.tl;
        n++;
        rc = idx_lexit_next(&it);
    }
    idx_tslice *s = NULL;
    if (!rc) {
        size_t nrst = (n + IDX_TERMS_RESTART - 1) / IDX_TERMS_RESTART;
        s = malloc(sizeof *s + nrst * (sizeof *rkey + sizeof *rst) + d.len + IDX_TERMS_PAD);
        if (!s) {
            rc = ENOMEM;
        } else {
            s->n = (uint32_t)n;
            s->nrst = (uint32_t)nrst;
            s->bytes = (uint32_t)d.len;
            s->rkey = (uint64_t *)(s + 1); /* the header's size is a multiple of 8 */
            s->rst = (uint32_t *)(s->rkey + nrst);
            s->data = (uint8_t *)(s->rst + nrst);
            if (nrst) {
                memcpy(s->rkey, rkey, nrst * sizeof *rkey);
                memcpy(s->rst, rst, nrst * sizeof *rst);
            }
            if (d.len)
                memcpy(s->data, d.p, d.len);
            memset(s->data + d.len, 0, IDX_TERMS_PAD);
        }
    }
    free(rst);
    free(rkey);
    idx_bytes_free(&d);
    *out = s;
    return rc;
}

int idx_terms_slice(idx_terms *self, MDB_cursor *c, const idx_seg *seg, const uint8_t *pre,
                    size_t pl, bool keep, idx_tslice **out, bool *owned) {
    *out = NULL;
    *owned = true;
    if (pl < 1 || pl > IDX_TERMS_PREFIX_MAX)
        return EINVAL;
    uint32_t key = (uint32_t)pl << 24;
    for (size_t i = 0; i < pl; i++)
        key |= (uint32_t)pre[i] << (8 * (2 - i));
    s_segc *sc = NULL;
    if (self && keep && (sc = s_segc_get(self, seg)) != NULL && sc->nslots) {
        s_slot *sl = s_find(sc, key);
        if (sl->key) {
            *out = sl->s;
            *owned = false;
            return 0;
        }
    }
    int rc = s_tslice_build(c, seg->id, pre, pl, out);
    if (rc || !sc)
        return rc;
    self->builds++;
    if (self->bytes + s_slice_size(*out) + (sc->nslots + 16) * sizeof(s_slot) > self->cap ||
        s_segc_room(self, sc))
        return 0; /* the caller's, for this scan */
    s_slot *sl = s_find(sc, key);
    sl->key = key;
    sl->s = *out;
    sc->used++;
    self->bytes += s_slice_size(*out);
    *owned = false;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* cursor */

static inline uint32_t s_uvar(const uint8_t **pp) {
    const uint8_t *p = *pp;
    uint32_t v = *p++;
    if (v & 0x80) { /* terms are < 2^14 bytes: two bytes at most */
        v = (v & 0x7f) | (uint32_t)*p++ << 7;
    }
    *pp = p;
    return v;
}

/* Decode entry it->i, which starts at byte `at`. Copies 16 bytes at a time:
 * the slice's data and the cursor's term have IDX_TERMS_PAD bytes to spare. */
static inline void s_read(idx_tsit *it, uint32_t at) {
    const uint8_t *p = it->s->data + at;
    uint32_t sh = s_uvar(&p), l = s_uvar(&p);
    uint32_t from = it->i % IDX_TERMS_RESTART ? sh : 0;
    for (uint32_t k = 0; k < l; k += 16)
        memcpy(it->term + from + k, p + k, 16);
    it->tl = from + l;
    it->sh = sh;
    it->next = (uint32_t)(p + l - it->s->data);
}

void idx_tsit_begin(idx_tsit *it, const idx_tslice *s) {
    it->s = s;
    it->i = 0;
    it->tl = it->sh = 0;
    it->eof = s->n == 0;
    if (!it->eof)
        s_read(it, 0);
}

void idx_tsit_next(idx_tsit *it) {
    if (it->eof)
        return;
    if (++it->i >= it->s->n) {
        it->eof = true;
        return;
    }
    s_read(it, it->next);
}

/* Bytes a[0..al) and b[0..bl) have in common at their start. */
static inline size_t s_common(const uint8_t *a, size_t al, const uint8_t *b, size_t bl) {
    size_t i = 0, l = al < bl ? al : bl;
    while (i < l && a[i] == b[i])
        i++;
    return i;
}

/* a[0..al), sharing m bytes with b[0..bl), is >= b */
static inline bool s_ge(const uint8_t *a, size_t al, const uint8_t *b, size_t bl, size_t m) {
    return m == bl || (m < al && a[m] > b[m]);
}

/* restart r's term is <= tg (whose s_key8 is tk): by the keys when they
 * differ, else by the bytes */
static inline bool s_rst_le(const idx_tslice *s, uint32_t r, const uint8_t *tg, size_t tgl,
                            uint64_t tk) {
    if (s->rkey[r] != tk)
        return s->rkey[r] < tk;
    const uint8_t *p = s->data + s->rst[r];
    (void)s_uvar(&p);
    uint32_t l = s_uvar(&p);
    size_t m = s_common(p, l, tg, tgl);
    return m == l || (m < tgl && p[m] < tg[m]);
}

void idx_tsit_fwd(idx_tsit *it, const uint8_t *tg, size_t tgl) {
    if (it->eof)
        return;
    size_t m = s_common(it->term, it->tl, tg, tgl);
    if (s_ge(it->term, it->tl, tg, tgl, m))
        return;
    const idx_tslice *s = it->s;
    const uint64_t tk = s_key8(tg, tgl);
    uint32_t lo = it->i / IDX_TERMS_RESTART + 1;
    if (lo < s->nrst && s_rst_le(s, lo, tg, tgl, tk)) {
        /* tg is past the next restart: gallop, then halve, to the last
         * restart <= tg (targets are mostly near), and walk from there */
        uint32_t hi, step = 1;
        for (;;) {
            hi = lo + step;
            if (hi >= s->nrst) {
                hi = s->nrst;
                break;
            }
            if (!s_rst_le(s, hi, tg, tgl, tk))
                break;
            lo = hi;
            step *= 2;
        }
        while (hi - lo > 1) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (s_rst_le(s, mid, tg, tgl, tk))
                lo = mid;
            else
                hi = mid;
        }
        it->i = lo * IDX_TERMS_RESTART;
        s_read(it, s->rst[lo]);
        m = s_common(it->term, it->tl, tg, tgl);
        if (s_ge(it->term, it->tl, tg, tgl, m))
            return;
    }
    /* the current term is < tg and shares m bytes with it: an entry sharing
     * fewer with the one before is past tg, more is still before it (passed
     * over unread: the term's first m bytes, tg's, stay right for the entry
     * where the walk stops, which shares at most m), exactly m is told by
     * the bytes after */
    for (;;) {
        if (++it->i >= s->n) {
            it->eof = true;
            return;
        }
        const uint8_t *p = s->data + it->next;
        uint32_t sh = s_uvar(&p), l = s_uvar(&p);
        if (sh > m) {
            it->next = (uint32_t)(p + l - s->data);
            continue;
        }
        s_read(it, it->next);
        if (sh < m)
            return;
        m += s_common(it->term + m, it->tl - m, tg + m, tgl - m);
        if (s_ge(it->term, it->tl, tg, tgl, m))
            return;
    }
}
