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
 * read once and kept here as a trie of the bytes after the slice's prefix,
 * one 32-bit word per node in preorder (byte, term end, depth, subtree
 * size): the scan walks it node by node, one Levenshtein row per node, and
 * leaves a dead prefix by the node's subtree size, without a seek.
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

/* a slice is one block: header, nodes, esc */
_Static_assert(sizeof(idx_tslice) % 8 == 0, "the nodes follow the header");

static size_t s_slice_size(const idx_tslice *s) { return sizeof *s + s->bytes; }

idx_terms *idx_terms_new(size_t cap) {
    idx_terms *t = calloc(1, sizeof *t);
    if (t)
        t->cap = cap ? cap : IDX_TERMS_CAP;
    return t;
}

void idx_tslice_free(idx_tslice **s) {
    if (!s || !*s)
        return;
    free(*s); /* one block: header, nodes, esc */
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

/* The nodes being built: words as idx_tslice's without their subtree sizes
 * until the subtree is closed; esc pairs in the order they close. */
typedef struct {
    uint32_t *node, *esc;
    size_t nn, ncap, nesc, ecap;
} s_tbuild;

/* Node i's subtree ends before node `end`: its size in the node, or in esc. */
static inline int s_close(s_tbuild *b, uint32_t i, uint32_t end) {
    uint32_t sz = end - i;
    if (sz < IDX_TNODE_FAR) {
        b->node[i] |= sz << 18;
        return 0;
    }
    b->node[i] |= IDX_TNODE_FAR << 18;
    if (b->nesc + 2 > b->ecap) {
        uint32_t *p = grow_to(b->esc, &b->ecap, sizeof *p, 16, b->nesc + 2);
        if (!p)
            return ENOMEM;
        b->esc = p;
    }
    b->esc[b->nesc++] = i;
    b->esc[b->nesc++] = sz;
    return 0;
}

static int s_esc_cmp(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Read the terms of seg starting with pre[0..pl) into a new slice: each term
 * adds a node per byte after those it shares with the one before; the nodes
 * deeper than that shared part are closed (their subtrees end here). */
static int s_tslice_build(MDB_cursor *c, uint32_t seg, const uint8_t *pre, size_t pl, idx_tslice **out) {
    s_tbuild b = {0};
    uint32_t open[IDX_TERM_MAX + 1]; /* the node at each depth of the last term */
    uint8_t prev[IDX_TERM_MAX];
    size_t pvl = pl, depth = 0, n = 0;
    uint32_t root = 0;
    memcpy(prev, pre, pl);
    idx_lexit it;
    int rc = idx_lexit_seek(&it, c, seg, pre, pl);
    while (rc == 0 && !it.eof && it.tl >= pl && memcmp(it.term, pre, pl) == 0) {
        if (b.nn + it.tl > UINT32_MAX / 2) {
            rc = ENOMEM;
            break;
        }
        size_t sh = pl, lim = it.tl < pvl ? it.tl : pvl;
        while (sh < lim && it.term[sh] == prev[sh])
            sh++;
        for (; depth > sh - pl && !rc; depth--)
            rc = s_close(&b, open[depth], (uint32_t)b.nn);
        if (rc)
            break;
        if (b.nn + it.tl > b.ncap) {
            uint32_t *p = grow_to(b.node, &b.ncap, sizeof *p, 1024, b.nn + it.tl);
            if (!p) {
                rc = ENOMEM;
                break;
            }
            b.node = p;
        }
        for (size_t k = sh; k < it.tl; k++) {
            open[++depth] = (uint32_t)b.nn;
            b.node[b.nn++] = it.term[k] | (uint32_t)depth << 9;
        }
        if (depth)
            b.node[b.nn - 1] |= 1u << 8; /* the term ends at its last node */
        else
            root = 1; /* the prefix itself: the first term, no node */
        memcpy(prev + sh, it.term + sh, it.tl - sh);
        pvl = it.tl;
        n++;
        rc = idx_lexit_next(&it);
    }
    for (; depth > 0 && !rc; depth--)
        rc = s_close(&b, open[depth], (uint32_t)b.nn);
    idx_tslice *s = NULL;
    if (!rc) {
        size_t bytes = (b.nn + b.nesc) * sizeof(uint32_t);
        s = malloc(sizeof *s + bytes);
        if (!s) {
            rc = ENOMEM;
        } else {
            s->n = (uint32_t)n;
            s->nn = (uint32_t)b.nn;
            s->nesc = (uint32_t)(b.nesc / 2);
            s->root = root;
            s->bytes = (uint32_t)bytes;
            s->pad_ = 0;
            s->node = (uint32_t *)(s + 1); /* the header's size is a multiple of 8 */
            s->esc = s->node + b.nn;
            if (b.nn)
                memcpy(s->node, b.node, b.nn * sizeof *b.node);
            if (b.nesc) {
                memcpy(s->esc, b.esc, b.nesc * sizeof *b.esc);
                qsort(s->esc, s->nesc, 2 * sizeof *s->esc, s_esc_cmp);
            }
        }
    }
    free(b.node);
    free(b.esc);
    *out = s;
    return rc;
}

uint32_t idx_tslice_skip_far(const idx_tslice *s, uint32_t i) {
    uint32_t lo = 0, hi = s->nesc; /* the pair of node i is in [lo, hi) */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->esc[2 * mid] <= i)
            lo = mid;
        else
            hi = mid;
    }
    return i + s->esc[2 * lo + 1];
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
