/*
 * idx_search.c: query parser and evaluator.
 *
 * Parsing: the query string becomes a conjunction of clauses; a clause is an
 * OR of atoms (TERM, PHRASE, PREFIX) and may be negated; site:/category:/tag:
 * become filters. Every word goes through the same analyzer as the index.
 *
 * Evaluation is document-at-a-time: the required clauses (and the tag
 * filter) are intersected by leapfrogging from the cheapest one; each
 * candidate is checked against the exclusions and the column filters
 * (site, category, date), counted (exact total, facets) and scored only when
 * it could enter the top-k heap: a doc whose upper bound (sum of the
 * clauses' max scores: idf * (k1+1) * field weights) cannot beat the heap's
 * worst entry is counted without reading its column-stored lengths or doing
 * the BM25 arithmetic (MaxScore-style pruning; the total stays exact).
 *
 * Posting blocks are decoded lazily: doc ids and term frequencies per block,
 * positions only for phrase candidates.
 */
#include "idx_int.h"
#include "idx_terms.h"

#include "grow.h"
#include "log.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#define S_MAX_ATOMS IDX_QUERY_MAX_TERMS
#define S_TYPO_ALTS 8
#define S_NOMORE UINT64_MAX

/* ---------------------------------------------------------------------- */
/* parsed query */

typedef struct {
    uint16_t off, len;   /* key bytes in the arena */
    int32_t rel;         /* position relative to the first component */
    uint8_t need_exact;  /* only occurrences whose surface equals the term */
    /* a lone CJK character in a phrase of an index with run positions
     * (idx_int.h RUN POSITIONS) next to no word: its positions are the
     * stored ones plus those of the bigram it forms with its CJK neighbour
     * (hlen > 0: key at hoff in the arena), shifted by hshift (1: the
     * neighbour is on the left, 0: on the right); set in phrases only */
    uint8_t hshift;
    uint16_t hoff, hlen;
} s_qterm;

enum { A_TERM, A_PHRASE, A_PREFIX };

typedef struct {
    int kind;
    bool title_only;
    bool typo_ok;        /* plain word, eligible for typo alternatives */
    uint16_t t0, nt;     /* components: terms[t0 .. t0+nt) */
    uint16_t poff, plen; /* PREFIX: folded prefix; TERM: folded surface (typos) */
    int clause;
} s_atom;

typedef struct {
    bool neg;
    int a0, na;
} s_clause;

typedef struct {
    char arena[S_MAX_ATOMS * 2 * (IDX_TERM_MAX + 2) + 4096];
    size_t alen;
    s_qterm terms[S_MAX_ATOMS * 2];
    size_t nterms;
    s_atom atoms[S_MAX_ATOMS * (1 + S_TYPO_ALTS)];
    size_t natoms;
    s_clause clauses[S_MAX_ATOMS];
    size_t nclauses;
    char site[512], cat[512], tag[512];
    bool has_site, has_cat, has_tag;
} s_query;

typedef struct {
    idx_result *r;
    int code;
} s_err;

static int s_fail(idx_result *r, int code, long pos, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    r->error_pos = pos;
    return code;
}

static int s_arena_put(s_query *q, const void *p, size_t n) {
    if (q->alen + n > sizeof q->arena)
        return -1;
    memcpy(q->arena + q->alen, p, n);
    q->alen += n;
    return (int)(q->alen - n);
}

/* tokens collected for one word / phrase */
typedef struct {
    struct {
        char key[IDX_TERM_MAX + 1];
        uint16_t klen;
        uint32_t pos;
        uint8_t kind, exact;
        uint8_t hshift, hlen; /* s_lone_cjk */
        char hkey[8];
    } t[IDX_QUERY_MAX_TERMS + 1];
    size_t n;
    bool quoted;
    bool overflow;
} s_qtoks;

static int s_qtok_cb(void *ud, const text_token *t) {
    s_qtoks *c = ud;
    if (c->quoted) {
        if (t->kind == TEXT_TERM_STEM && !t->exact)
            return 0; /* its EXACT token follows */
    } else if (t->kind == TEXT_TERM_EXACT) {
        return 0;
    }
    if (c->n > IDX_QUERY_MAX_TERMS) {
        c->overflow = true;
        return 1;
    }
    c->t[c->n].klen = (uint16_t)idx_term_key(t->term, t->len, (uint8_t *)c->t[c->n].key);
    c->t[c->n].pos = t->pos;
    c->t[c->n].kind = t->kind;
    c->t[c->n].exact = t->exact;
    c->n++;
    return 0;
}

/* A CJK unigram no bigram of the phrase covers (token i of tk, in an index
 * with run positions, idx_int.h): how its positions are told from its
 * neighbour at the previous or next position (there is one: no stop words,
 * no gaps). A word neighbour needs only the stored run boundaries (after a
 * word, a character starts a run; before one, it ends a run); a character
 * neighbour B on the left (D on the right) adds the bigram BC at p - 1 (CD
 * at p). */
static void s_lone_cjk(s_qtoks *tk, size_t i) {
    size_t side[2] = {SIZE_MAX, SIZE_MAX}; /* the tokens at pos - 1, pos + 1 */
    bool word[2] = {false, false};
    for (size_t j = 0; j < tk->n; j++) {
        for (int d = 0; d < 2; d++) {
            if ((d == 0 && tk->t[i].pos == 0) || tk->t[j].pos != (d ? tk->t[i].pos + 1 : tk->t[i].pos - 1))
                continue;
            if (tk->t[j].kind == TEXT_TERM_CJK1)
                side[d] = j;
            else if (tk->t[j].kind != TEXT_TERM_CJK2)
                word[d] = true;
        }
    }
    if (word[0] || word[1])
        return; /* the stored positions suffice */
    int d = side[0] != SIZE_MAX ? 0 : 1;
    if (side[d] == SIZE_MAX)
        return; /* no neighbour: cannot happen without gaps */
    const char *a = d ? tk->t[i].key : tk->t[side[d]].key, *b = d ? tk->t[side[d]].key : tk->t[i].key;
    size_t al = d ? tk->t[i].klen : tk->t[side[d]].klen, bl = d ? tk->t[side[d]].klen : tk->t[i].klen;
    if (al + bl > sizeof tk->t[i].hkey)
        return; /* cannot happen: CJK characters are 3 or 4 bytes */
    memcpy(tk->t[i].hkey, a, al);
    memcpy(tk->t[i].hkey + al, b, bl);
    tk->t[i].hlen = (uint8_t)(al + bl);
    tk->t[i].hshift = d == 0;
}

static bool s_isspace(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static size_t s_utf8_chars(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((uint8_t)s[i] & 0xC0) != 0x80;
    return c;
}

/* Build an atom from text s[0..n) (a word or a phrase's content). Returns
 * the atom index, -1 when the text has no token, or -2 on error (r set). */
static int s_make_atom(idx *self, s_query *q, const char *s, size_t n, bool quoted, bool title,
                       long pos, idx_result *r, int *code) {
    if (q->natoms >= S_MAX_ATOMS) {
        *code = s_fail(r, IDX_INVALID_ARGUMENT, pos, "too many terms (at most %d)", IDX_QUERY_MAX_TERMS);
        return -2;
    }
    s_atom *a = &q->atoms[q->natoms];
    memset(a, 0, sizeof *a);
    a->title_only = title;
    if (!quoted && n > 0 && s[n - 1] == '*') {
        char f[IDX_TERM_MAX + 1];
        size_t fl = text_fold(self->an, s, n - 1, f, sizeof f - 1);
        if (s_utf8_chars(f, fl) < 2) {
            *code = s_fail(r, IDX_INVALID_ARGUMENT, pos, "a prefix needs at least 2 characters before '*'");
            return -2;
        }
        int off = s_arena_put(q, f, fl);
        if (off < 0) {
            *code = s_fail(r, IDX_INVALID_ARGUMENT, pos, "query too long");
            return -2;
        }
        a->kind = A_PREFIX;
        a->poff = (uint16_t)off;
        a->plen = (uint16_t)fl;
        return (int)q->natoms++;
    }
    static _Thread_local s_qtoks tk;
    tk.n = 0;
    tk.quoted = quoted;
    tk.overflow = false;
    text_analyze(self->an, s, n, 0, s_qtok_cb, &tk, NULL);
    if (tk.overflow) {
        *code = s_fail(r, IDX_INVALID_ARGUMENT, pos, "too many terms (at most %d)", IDX_QUERY_MAX_TERMS);
        return -2;
    }
    /* drop CJK unigrams covered by a bigram */
    size_t m = 0;
    for (size_t i = 0; i < tk.n; i++) {
        tk.t[i].hlen = 0;
        if (tk.t[i].kind == TEXT_TERM_CJK1) {
            bool covered = false;
            for (size_t j = 0; j < tk.n; j++)
                if (tk.t[j].kind == TEXT_TERM_CJK2 &&
                    (tk.t[j].pos == tk.t[i].pos || tk.t[j].pos + 1 == tk.t[i].pos))
                    covered = true;
            if (covered)
                continue;
            if (self->runpos && tk.n > 1)
                s_lone_cjk(&tk, i);
        }
        tk.t[m++] = tk.t[i];
    }
    tk.n = m;
    if (tk.n == 0)
        return -1;
    if (q->nterms + tk.n > IDX_QUERY_MAX_TERMS) {
        *code = s_fail(r, IDX_INVALID_ARGUMENT, pos, "too many terms (at most %d)", IDX_QUERY_MAX_TERMS);
        return -2;
    }
    a->t0 = (uint16_t)q->nterms;
    a->nt = (uint16_t)tk.n;
    a->kind = tk.n == 1 ? A_TERM : A_PHRASE;
    for (size_t i = 0; i < tk.n; i++) {
        int off = s_arena_put(q, tk.t[i].key, tk.t[i].klen);
        if (off < 0) {
            *code = s_fail(r, IDX_INVALID_ARGUMENT, pos, "query too long");
            return -2;
        }
        s_qterm *t = &q->terms[q->nterms++];
        t->off = (uint16_t)off;
        t->len = tk.t[i].klen;
        t->rel = (int32_t)(tk.t[i].pos - tk.t[0].pos);
        t->need_exact = quoted && tk.t[i].kind == TEXT_TERM_STEM && tk.t[i].exact;
        t->hshift = tk.t[i].hshift;
        t->hlen = 0;
        if (tk.t[i].hlen) {
            int ho = s_arena_put(q, tk.t[i].hkey, tk.t[i].hlen);
            if (ho < 0) {
                *code = s_fail(r, IDX_INVALID_ARGUMENT, pos, "query too long");
                return -2;
            }
            t->hoff = (uint16_t)ho;
            t->hlen = tk.t[i].hlen;
        }
    }
    if (a->kind == A_TERM && !quoted && tk.t[0].kind == TEXT_TERM_STEM) {
        char f[IDX_TERM_MAX + 1];
        size_t fl = text_fold(self->an, s, n, f, sizeof f - 1);
        if (s_utf8_chars(f, fl) >= 5) {
            int off = s_arena_put(q, f, fl);
            if (off >= 0) {
                a->typo_ok = true;
                a->poff = (uint16_t)off;
                a->plen = (uint16_t)fl;
            }
        }
    }
    return (int)q->natoms++;
}

static int s_parse(idx *self, const char *s, s_query *q, idx_result *r) {
    size_t len = strlen(s);
    if (len > IDX_QUERY_MAX_BYTES)
        return s_fail(r, IDX_INVALID_ARGUMENT, IDX_QUERY_MAX_BYTES,
                      "query longer than %d bytes", IDX_QUERY_MAX_BYTES);
    size_t i = 0;
    bool pending_or = false;
    long or_pos = 0;
    int code = 0;
    while (1) {
        while (i < len && s_isspace(s[i]))
            i++;
        if (i >= len)
            break;
        size_t start = i;
        /* OR */
        if (s[i] == 'O' && i + 1 < len && s[i + 1] == 'R' && (i + 2 == len || s_isspace(s[i + 2]))) {
            if (pending_or || q->nclauses == 0 || q->clauses[q->nclauses - 1].neg)
                return s_fail(r, IDX_INVALID_ARGUMENT, (long)start,
                              "OR needs a word or phrase on each side");
            pending_or = true;
            or_pos = (long)start;
            i += 2;
            continue;
        }
        bool neg = false;
        if (s[i] == '-') {
            neg = true;
            i++;
            if (i >= len || s_isspace(s[i]))
                return s_fail(r, IDX_INVALID_ARGUMENT, (long)start, "'-' must be followed by a word or phrase");
        }
        /* field: */
        int field = 0; /* 1 title, 2 site, 3 category, 4 tag */
        static const char *fields[] = {"title:", "site:", "category:", "tag:"};
        for (int f = 0; f < 4; f++) {
            size_t fl = strlen(fields[f]);
            if (len - i >= fl && memcmp(s + i, fields[f], fl) == 0) {
                field = f + 1;
                i += fl;
                break;
            }
        }
        const char *w;
        size_t wl;
        bool quoted = false;
        if (i < len && s[i] == '"') {
            const char *e = memchr(s + i + 1, '"', len - i - 1);
            if (!e)
                return s_fail(r, IDX_INVALID_ARGUMENT, (long)i, "unclosed quote");
            w = s + i + 1;
            wl = (size_t)(e - w);
            quoted = true;
            i = (size_t)(e - s) + 1;
        } else {
            size_t j = i;
            while (j < len && !s_isspace(s[j]) && s[j] != '"')
                j++;
            w = s + i;
            wl = j - i;
            i = j;
        }
        if (field >= 2) {
            if (neg || pending_or)
                return s_fail(r, IDX_INVALID_ARGUMENT, (long)start,
                              "filters (site:, category:, tag:) cannot be negated or OR-ed");
            if (wl == 0 || wl >= 512)
                return s_fail(r, IDX_INVALID_ARGUMENT, (long)start, "filter needs a value");
            char *dst = field == 2 ? q->site : field == 3 ? q->cat : q->tag;
            bool *has = field == 2 ? &q->has_site : field == 3 ? &q->has_cat : &q->has_tag;
            if (*has && (strlen(dst) != wl || memcmp(dst, w, wl)))
                return s_fail(r, IDX_INVALID_ARGUMENT, (long)start,
                              "only one value per filter");
            memcpy(dst, w, wl);
            dst[wl] = 0;
            *has = true;
            continue;
        }
        if (quoted && wl == 0)
            return s_fail(r, IDX_INVALID_ARGUMENT, (long)start, "empty phrase");
        int a = s_make_atom(self, q, w, wl, quoted, field == 1, (long)start, r, &code);
        if (a == -2)
            return code;
        if (a == -1) {
            if (quoted)
                return s_fail(r, IDX_INVALID_ARGUMENT, (long)start, "phrase has no searchable word");
            if (pending_or)
                return s_fail(r, IDX_INVALID_ARGUMENT, or_pos, "OR needs a word or phrase on each side");
            if (neg)
                return s_fail(r, IDX_INVALID_ARGUMENT, (long)start, "'-' must be followed by a word or phrase");
            continue; /* punctuation only */
        }
        if (pending_or) {
            if (neg)
                return s_fail(r, IDX_INVALID_ARGUMENT, (long)start, "cannot negate inside OR");
            s_clause *c = &q->clauses[q->nclauses - 1];
            if (c->a0 + c->na != a) /* atoms of a clause are contiguous */
                return s_fail(r, IDX_INVALID_ARGUMENT, (long)start, "malformed OR");
            c->na++;
            q->atoms[a].clause = (int)q->nclauses - 1;
            pending_or = false;
        } else {
            if (q->nclauses >= S_MAX_ATOMS)
                return s_fail(r, IDX_INVALID_ARGUMENT, (long)start, "too many terms (at most %d)",
                              IDX_QUERY_MAX_TERMS);
            s_clause *c = &q->clauses[q->nclauses++];
            c->neg = neg;
            c->a0 = a;
            c->na = 1;
            q->atoms[a].clause = (int)q->nclauses - 1;
        }
    }
    if (pending_or)
        return s_fail(r, IDX_INVALID_ARGUMENT, or_pos, "OR needs a word or phrase on each side");
    bool positive = false;
    for (size_t c = 0; c < q->nclauses; c++)
        positive |= !q->clauses[c].neg;
    if (!positive)
        return s_fail(r, IDX_INVALID_ARGUMENT, q->nclauses ? 0 : -1,
                      q->nclauses ? "a query needs at least one word that is not excluded"
                      : (q->has_site || q->has_cat || q->has_tag)
                          ? "a query needs at least one word besides filters (use List to browse)"
                          : "empty query: give at least one word (use List to browse)");
    return IDX_OK;
}

/* ---------------------------------------------------------------------- */
/* posting iterators
 *
 * A term's postings are spread over the segments that have it: one sub-
 * iterator (cursor + decoded block) per segment, and the term's current
 * doc is the smallest of theirs. Segments hold mostly disjoint id ranges,
 * so only the sub-iterators behind a target move. In a segment with dead
 * docs, each doc's column record is checked (its generation must be the
 * segment's), so stale versions are skipped. */

#define S_ONE_TT 4 /* title frequencies with a limit in s_window_one */

typedef struct {
    MDB_cursor *c;
    idx_seg seg;
    bool check;               /* segment has dead docs: check generations */
    bool eof;
    bool lazy;                /* not positioned yet: its docs are >= vdoc */
    uint64_t vdoc;
    const uint8_t *inl;       /* inline block (in the lexicon value), or NULL */
    size_t inl_len;
    uint64_t inl_first;
    bool inl_one;             /* inl: a compact one-doc block (idx_lexval.one) */
    size_t n, i;
    const uint8_t *bm;        /* a bitmap-coded block's ids, not decoded yet
                                 (s_sub_ids): of docs[] only docs[0], docs[n - 1]
                                 and docs[i] are set; NULL: all are */
    size_t bml;               /* its bytes */
    idx_bhead h;              /* current block's header (block-max bounds) */
    double bound;             /* score bound of this block (when bound_ok) */
    bool bound_ok;
    uint32_t dbt_ok;          /* dbt[tf] set (bit tf), for this block */
    uint64_t dbb_ok;          /* dbb[tf] set */
    const uint8_t *one;       /* the block's (0, 1) bitmap, or NULL (one doc) */
    bool tf_ok;               /* tft/tfb decoded (lazily: many blocks are only
                                 walked by the intersection, never scored) */
    uint8_t ra;               /* s_sub_tf_at without s_sub_tf: 0 not known yet,
                                 1 yes (cum set), 2 no */
    const uint8_t *pp, *pend; /* tf pairs (until tf_ok), then the positions (of
                                 doc pidx for a term with run positions) */
    size_t pidx;
    const uint8_t *ppos;      /* s_post_positions: doc pidx's positions (pidx > 0) */
    bool ahead;               /* the cursor is on the block after the current
                                 one (s_sub_raw's look past it): (ak, av), or
                                 no block of this term (ahead_ok false) */
    bool ahead_ok;
    MDB_val ak, av;
    uintptr_t pfpage;         /* the page s_sub_page_prefetch asked for last */
    idx_colfield live;        /* the generation check: the live column of the chunk */
    uint64_t chunk_first;     /* that starts at this doc id (when chunk_ok) */
    bool chunk_ok;
    /* s_window_one's limits for this block (lim_epoch == s_blocks_decoded)
     * and heap worst: lim[tt] when bit tt of lim_known is set */
    uint64_t lim_epoch;
    double lim_worst;
    uint32_t lim_known;
    uint8_t lim[S_ONE_TT];
    /* Last, and not zeroed by s_post_open (S_SUB_HEAD): written by
     * s_sub_decode / s_sub_tf / s_sub_ra / s_sub_doc_bound before they are read. */
    double dbt[32], dbb[64];  /* per-doc bounds' title / body parts by tf (s_post_doc_bound) */
    uint8_t cum[IDX_BLOCK_DOCS / 8]; /* marked docs in the bitmap's bytes before each (ra 1) */
    uint64_t docs[IDX_BLOCK_DOCS];
    uint32_t tft[IDX_BLOCK_DOCS], tfb[IDX_BLOCK_DOCS];
} s_sub;

/* The bytes of an s_sub that start zeroed (~0.1 of its ~3 KB: zeroing it
 * whole was a third of s_post_open's instructions). */
#define S_SUB_HEAD offsetof(s_sub, dbt)

typedef struct {
    idx *self;
    MDB_txn *txn;
    const uint8_t *tk;
    size_t tkl;
    uint64_t df;
    double idf;
    bool eof;
    bool has_dead;            /* some segment of this term has dead docs */
    s_sub *subs;
    size_t nsub, cur;         /* cur: the sub-iterator on the current doc */
    uint64_t doc;
    uint64_t other;           /* smallest doc of the other sub-iterators */
    uint32_t *pbuf;
    size_t pcap;
    bool rp;                  /* run positions (idx_int.h) */
    bool ef;                  /* coded block doc ids (idx_term_ids_code) */
    uint32_t *ubuf;           /* s_phrase_field's derived positions (rp) */
    size_t ucap;
    int err;
} s_post;

static bool s_key_is(const MDB_val *k, uint32_t seg, const uint8_t *tk, size_t tkl) {
    return k->mv_size == tkl + IDX_POST_KEY_EXTRA && idx_get_be32(k->mv_data) == seg &&
           memcmp((const uint8_t *)k->mv_data + 4, tk, tkl) == 0 &&
           ((const uint8_t *)k->mv_data)[4 + tkl] == 0;
}

#define S_PREFETCH_BLOCK 512
#define S_STEP_BLOCKS 2 /* blocks s_sub_raw steps over before it seeks */

/* One varint; single-byte values (most deltas and frequencies) inline. */
static void s_sub_corrupt(s_post *p, s_sub *s) {
    log_error("idx.corrupt", "what=block seg=%u", s->seg.id);
    p->err = 1;
    s->eof = true;
}

/* Are the m bytes at b all below 0x80 (each a whole varint)? 8 at a time. */
static inline bool s_bytes_small(const uint8_t *b, size_t m) {
    uint64_t hi = 0;
    size_t k = 0;
    for (; k + 8 <= m; k += 8) {
        uint64_t w;
        memcpy(&w, b + k, 8);
        hi |= w;
    }
    for (; k < m; k++)
        hi |= b[k];
    return !(hi & 0x8080808080808080ull);
}

/* Bits set in x. __builtin_popcountll is a libgcc call (a byte table, ~50
 * instructions) on the baseline x86-64 target; this is ~12, inline. */
static inline unsigned s_pop64(uint64_t x) {
#if defined(__POPCNT__) || !(defined(__x86_64__) || defined(__i386__))
    return (unsigned)__builtin_popcountll(x);
#else
    x -= (x >> 1) & 0x5555555555555555ull;
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (unsigned)((x * 0x0101010101010101ull) >> 56);
#endif
}

/* A bitmap-coded block's ids in place (s_sub.bm): value v = doc - first of
 * docs[1..n) is bit v - 1 (idx_int.h BLOCK DOC IDS). */

/* 64 bits of s->bm from bit `bit` on (zeros past its end). */
static inline uint64_t s_bm_bits(const s_sub *s, uint64_t bit) {
    size_t by = (size_t)(bit >> 3), sh = (size_t)(bit & 7);
    if (by >= s->bml)
        return 0;
    size_t left = s->bml - by;
    uint64_t w = 0;
    if (left > 8) {
        w = idx_le64(s->bm + by) >> sh;
        if (sh)
            w |= (uint64_t)s->bm[by + 8] << (64 - sh);
        return w;
    }
    for (size_t k = 0; k < left; k++)
        w |= (uint64_t)s->bm[by + k] << (8 * k);
    return w >> sh;
}

/* Opens the bitmap at b (m = n - 1 ids after first) without decoding it:
 * its length is up to the byte of its m-th set bit, the last doc. Returns
 * the byte after it, NULL if it has fewer set bits. */
static const uint8_t *s_bm_open(s_sub *s, const uint8_t *b, const uint8_t *end, uint64_t first,
                                size_t m) {
    size_t len = (size_t)(end - b), cnt = 0, k = 0;
    for (; k + 8 <= len; k += 8) {
        uint64_t w;
        memcpy(&w, b + k, 8);
        size_t c = s_pop64(w);
        if (cnt + c >= m)
            break;
        cnt += c;
    }
    for (;; k++) {
        if (k >= len)
            return NULL;
        size_t c = s_pop64(b[k]);
        if (cnt + c >= m)
            break;
        cnt += c;
    }
    unsigned x = b[k];
    for (size_t r = m - cnt - 1; r; r--)
        x &= x - 1; /* drop the set bits before the m-th */
    s->bm = b;
    s->bml = k + 1;
    s->docs[0] = first;
    s->docs[m] = first + 8 * (uint64_t)k + (uint64_t)__builtin_ctz(x) + 1;
    return b + k + 1;
}

/* Moves a block whose ids are in s->bm to its first doc >= target, where
 * docs[i] < target <= docs[n - 1]: its index is i + 1 + the set bits
 * between the two (counted a word at a time from docs[i]'s bit). */
static uint64_t s_bm_seek(s_sub *s, uint64_t target) {
    uint64_t first = s->docs[0], from = s->i ? s->docs[s->i] - first : 0, to = target - first - 1;
    size_t i = s->i;
    for (; from + 64 <= to; from += 64)
        i += s_pop64(s_bm_bits(s, from));
    if (from < to)
        i += s_pop64(s_bm_bits(s, from) & (((uint64_t)1 << (to - from)) - 1));
    uint64_t w;
    for (from = to; !(w = s_bm_bits(s, from)); from += 64)
        if (from >= 8 * (uint64_t)s->bml) /* not reached: the last doc's bit is set */
            break;
    from += w ? (uint64_t)__builtin_ctzll(w) : 0;
    /* (a corrupt bitmap with set bits past the n - 1-th gives a wrong doc,
     * never an index outside the block) */
    s->i = i + 1 < s->n ? i + 1 : s->n - 1;
    s->docs[s->i] = first + 1 + from;
    return s->docs[s->i];
}

/* Blocks decoded by this thread: a block bound computed from the current
 * blocks holds while this does not change (s_evaluate). */
static _Thread_local uint64_t s_blocks_decoded;

/* Decodes a block's doc ids; its frequencies wait for s_sub_tf. */
static int s_sub_decode(s_post *p, s_sub *s, uint64_t first, const uint8_t *b, size_t len) {
    const uint8_t *end = b + len;
    uint64_t x;
    /* the doc ids and frequencies are read one varint after the other: ask
     * for their cache lines at once (the positions after them may wait) */
    for (const uint8_t *q = b + 64; q < end && q < b + S_PREFETCH_BLOCK; q += 64)
        __builtin_prefetch(q);
    s_blocks_decoded++;
    if (!(b = s->inl_one ? idx_block_head_one(b, &s->seg, &s->h) : idx_block_head(b, end, &s->h, p->ef)))
        goto bad;
    uint64_t n = s->h.n;
    uint64_t d = first;
    s->docs[0] = d;
    /* idx_int.h: BLOCK DOC IDS; a code's varints take the paths below */
    bool coded = idx_block_ids_coded(p->ef, n);
    s->bm = NULL;
    if (coded && b < end && *b == IDX_IDS_BITMAP) {
        /* a bitmap is decoded when a doc other than the first, the last or
         * the current one is needed (s_sub_ids): a window count ANDs it as
         * it is, s_sub_raw steps in it by its words */
        if (!(b = s_bm_open(s, b + 1, end, first, n - 1)))
            goto bad;
    } else if (coded && b < end && *b != IDX_IDS_VARINT) {
        if (!(b = idx_block_ids_get(b, end, first, n, p->ef, s->docs)))
            goto bad;
    } else if ((b += coded) > end) {
        goto bad;
    } else if (n > 1 && (size_t)(end - b) >= n - 1 && s_bytes_small(b, n - 1)) {
        /* every delta one byte (frequent terms: gaps below 128), read as
         * bytes: no varint's branch on its length */
        for (uint64_t i = 1; i < n; i++) {
            d += b[i - 1];
            s->docs[i] = d;
        }
        b += n - 1;
    } else {
        for (uint64_t i = 1; i < n; i++) {
            if (!(b = idx_varint_get1(b, end, &x)))
                goto bad;
            d += x;
            s->docs[i] = d;
        }
    }
    s->one = s->h.one ? idx_tf_one_single() : NULL;
    size_t nb = idx_tf_one_bytes(n);
    if (nb) {
        if ((size_t)(end - b) < nb)
            goto bad;
        s->one = b;
        b += nb;
    }
    s->n = n;
    s->i = 0;
    s->bound_ok = false;
    s->dbt_ok = 1; /* tf 0's parts: 0 (s_sub_doc_bound adds both) */
    s->dbb_ok = 1;
    s->dbt[0] = 0;
    s->dbb[0] = 0;
    s->tf_ok = false;
    s->ra = 0;
    s->pp = b;
    s->pend = end;
    s->pidx = 0;
    return 0;
bad:
    s_sub_corrupt(p, s);
    return -1;
}

/* Decodes the ids of a block opened by s_bm_open (all of docs[]). */
static __attribute__((noinline)) void s_sub_ids(s_post *p, s_sub *s) {
    const uint8_t *bm = s->bm;
    s->bm = NULL;
    if (!idx_block_ids_get(bm - 1, bm + s->bml, s->docs[0], s->n, p->ef, s->docs))
        s_sub_corrupt(p, s);
}

/* One doc's frequencies (idx_tf_put's code, mostly one byte); NULL when
 * truncated or out of range. */
static inline const uint8_t *s_tf_code(const uint8_t *b, const uint8_t *end, uint64_t *a,
                                       uint64_t *c) {
    if (b < end && *b < 0x80 && (*b & 3) != 3) {
        *a = *b & 3;
        *c = *b >> 2;
        return b + 1;
    }
    return idx_tf_get(b, end, a, c);
}

/* Decodes the current block's frequencies (title, body per doc) once; after
 * them s->pp points at the positions of its first doc. On a corrupt block
 * the frequencies read 0 and the search fails (p->err). */
static void s_sub_tf(s_post *p, s_sub *s) {
    if (s->tf_ok)
        return;
    const uint8_t *b = s->pp, *end = s->pend, *one = s->one;
    s->tf_ok = true;
    uint64_t a, c; /* idx_tf_put's code: mostly one byte */
    if (!one) { /* one doc, with its code */
        for (size_t i = 0; i < s->n; i++) {
            if (!(b = s_tf_code(b, end, &a, &c)))
                goto bad;
            s->tft[i] = (uint32_t)a;
            s->tfb[i] = (uint32_t)c;
        }
    } else { /* the bitmap's docs have (0, 1) and no code */
        /* Without a branch on the bit: English stems mix marked and unmarked
         * docs, so a branch on it was mispredicted about every other doc
         * (~8% of a search's CPU). The byte at b is read whether or not the
         * doc has a code and used only when it has; a code of more than one
         * byte (rare) takes the slow path. */
        for (size_t i = 0; i < s->n; i++) {
            uint32_t bit = (uint32_t)(one[i >> 3] >> (i & 7)) & 1u;
            uint32_t x = b < end ? *b : 0x80u;
            uint32_t simple = (x < 0x80u) & ((x & 3u) != 3u);
            if (__builtin_expect(!(bit | simple), 0)) {
                if (!(b = s_tf_code(b, end, &a, &c)))
                    goto bad;
                s->tft[i] = (uint32_t)a;
                s->tfb[i] = (uint32_t)c;
                continue;
            }
            uint32_t m = 0u - bit; /* all ones when marked: (0, 1) */
            s->tft[i] = (x & 3u) & ~m;
            s->tfb[i] = ((x >> 2) & ~m) | (m & 1u);
            b += 1u - bit;
        }
    }
    s->pp = b;
    return;
bad:
    memset(s->tft, 0, sizeof s->tft);
    memset(s->tfb, 0, sizeof s->tfb);
    s->pp = s->pend;
    s_sub_corrupt(p, s);
}

/* Bits set in each byte value. */
static const uint8_t s_pop8[256] = {
#define S_P2(n) n, n + 1, n + 1, n + 2
#define S_P4(n) S_P2(n), S_P2(n + 1), S_P2(n + 1), S_P2(n + 2)
#define S_P6(n) S_P4(n), S_P4(n + 1), S_P4(n + 1), S_P4(n + 2)
    S_P6(0), S_P6(1), S_P6(1), S_P6(2)
#undef S_P2
#undef S_P4
#undef S_P6
};

/* Can s_sub_tf_at read a doc's frequencies in place? Yes (ra 1) when the
 * block has a bitmap and every unmarked doc's code is one byte of the
 * simple form (title < 3, body < 32: 19 blocks in 20 of the bench's): doc
 * i's code is then byte i - (marked docs before i) of the codes. The codes
 * are checked 8 bytes at a time (a byte >= 0x80, or with its low two bits
 * set, is not simple). */
static __attribute__((noinline)) void s_sub_ra(s_sub *s) {
    s->ra = 2;
    if (!s->one || s->n < 2)
        return;
    size_t nb = idx_tf_one_bytes(s->n), marked = 0;
    if (s->one[nb - 1] >> (s->n - 1) % 8 >> 1)
        return; /* bits past the last doc (corrupt): u below the codes that
                   s_sub_tf_at and s_sub_tf_sum index, which read past pend */
    for (size_t k = 0; k < nb; k++) {
        s->cum[k] = (uint8_t)marked;
        marked += s_pop8[s->one[k]];
    }
    size_t u = s->n - marked; /* codes */
    if ((size_t)(s->pend - s->pp) < (u ? u : 1))
        return; /* truncated (s_sub_tf reports it), or nothing at pp */
    const uint8_t *b = s->pp;
    uint64_t bad = 0;
    for (size_t k = 0; k < u; k += 8) {
        uint64_t w = 0;
        memcpy(&w, b + k, u - k < 8 ? u - k : 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = __builtin_bswap64(w);
#endif
        bad |= (w & 0x8080808080808080ull) | (w & w >> 1 & 0x0101010101010101ull);
    }
    if (!bad)
        s->ra = 1;
}

/* Doc i's frequencies in block s: from tft/tfb once decoded, else in place
 * when the block allows it (s_sub_ra: an intersection reads the few docs it
 * keeps, not all the block's), else by s_sub_tf. Without a branch on the
 * doc's bit (see s_sub_tf). */
/* Docs of block s before doc i marked (0, 1) in its bitmap (s->ra 1: s->cum
 * set); an unmarked doc i's code is byte i - this of s->pp. */
static inline size_t s_marked_before(const s_sub *s, size_t i) {
    return s->cum[i >> 3] + s_pop8[s->one[i >> 3] & ((1u << (i & 7)) - 1u)];
}

static inline void s_sub_tf_at(s_post *p, s_sub *s, size_t i, uint32_t *tt, uint32_t *tb) {
    if (!s->tf_ok) {
        if (!s->ra)
            s_sub_ra(s);
        if (s->ra == 1) {
            uint32_t bit = s->one[i >> 3] >> (i & 7) & 1u;
            size_t before = s_marked_before(s, i);
            /* a marked doc reads the code before its place, or (none
             * before it: at wrapped) the byte at pp, which s_sub_ra saw */
            size_t at = i - before - bit;
            uint32_t x = s->pp[at <= i ? at : 0];
            uint32_t m = 0u - bit;
            *tt = (x & 3u) & ~m;
            *tb = ((x >> 2) & ~m) | (m & 1u);
            return;
        }
        s_sub_tf(p, s);
    }
    *tt = s->tft[i];
    *tb = s->tfb[i];
}

/* An LMDB page here: the OS page (LMDB's default; a page is aligned to its
 * size in the map). */
#define S_LMDB_PAGE 4096u

/* The leaf page a block's key is on, prefetched whole the first time the
 * sub-iterator loads a block from it: the term's next blocks are mostly on
 * it (~13 a page), and read one by one (each MDB_NEXT's node, s_sub_raw's
 * look at the next keys, each value's decode) every line was a miss that
 * waited for the one before. A prefetch never faults: on a page of another
 * size it is only less useful. */
static inline void s_sub_page_prefetch(s_sub *s, const void *key) {
    uintptr_t pg = (uintptr_t)key & ~(uintptr_t)(S_LMDB_PAGE - 1);
    if (pg == s->pfpage)
        return;
    s->pfpage = pg;
    for (uintptr_t x = pg; x < pg + S_LMDB_PAGE; x += 64)
        __builtin_prefetch((const void *)x);
}

static int s_sub_load(s_post *p, s_sub *s, const MDB_val *k, const MDB_val *v) {
    s_sub_page_prefetch(s, k->mv_data);
    return s_sub_decode(p, s, idx_post_key_id(k->mv_data, p->tkl), v->mv_data,
                        v->mv_size);
}

/* First doc >= target in one segment, ignoring generations. */
static uint64_t s_sub_raw(s_post *p, s_sub *s, uint64_t target) {
    if (s->eof)
        return S_NOMORE;
    if (s->docs[s->i] >= target)
        return s->docs[s->i];
    if (s->docs[s->n - 1] >= target) {
        if (s->bm)
            return s_bm_seek(s, target);
        while (s->docs[s->i] < target)
            s->i++;
        return s->docs[s->i];
    }
    if (target > IDX_ID_MAX) { /* no such doc; a seek key would clamp it to IDX_ID_MAX */
        s->eof = true;
        return S_NOMORE;
    }
    uint32_t sid = s->seg.id;
    MDB_val k, v;
    /* next block first (sequential access); an inline list has one block */
    if (s->ahead) { /* the cursor is on it already */
        s->ahead = false;
        if (!s->ahead_ok) {
            s->eof = true;
            return S_NOMORE;
        }
        k = s->ak;
        v = s->av;
    } else if (!s->c || mdb_cursor_get(s->c, &k, &v, MDB_NEXT) || !s_key_is(&k, sid, p->tk, p->tkl)) {
        s->eof = true;
        return S_NOMORE;
    }
    uint64_t first = idx_post_key_id(k.mv_data, p->tkl);
    bool seek = false;
    /* The target may be further. The next few blocks are stepped over by
     * their keys (a cursor move, mostly on the same or the next leaf page)
     * while the one after starts at or before the target: an intersection
     * with a rarer term mostly wants the next block or the one after, and
     * a seek is a descent from the root. */
    for (int step = 0; first < target && step < S_STEP_BLOCKS; step++) {
        MDB_val k2, v2;
        int rc = mdb_cursor_get(s->c, &k2, &v2, MDB_NEXT);
        bool ours = rc == 0 && s_key_is(&k2, sid, p->tk, p->tkl);
        if (ours && idx_post_key_id(k2.mv_data, p->tkl) <= target) {
            k = k2;
            v = v2;
            first = idx_post_key_id(k.mv_data, p->tkl);
            continue;
        }
        if (rc && rc != MDB_NOTFOUND) {
            s_sub_corrupt(p, s);
            return S_NOMORE;
        }
        /* k holds the target, or the target is past its end and the block
         * after it (if any, of this term) starts after the target. The
         * cursor stays where it looked (no step back): that block is the
         * next one to load, here or by the next call (s->ahead) */
        s->ahead = true;
        s->ahead_ok = ours;
        s->ak = k2;
        s->av = v2;
        seek = true;
        first = target; /* no seek below */
    }
    if (first < target) {
        /* the target is further still: seek */
        uint8_t kb[IDX_KEY_MAX];
        MDB_val sk = {idx_post_key(sid, p->tk, p->tkl, target, kb), kb};
        int rc = mdb_cursor_get(s->c, &sk, &v, MDB_SET_RANGE);
        bool found = rc == 0 && s_key_is(&sk, sid, p->tk, p->tkl);
        if (found && idx_post_key_id(sk.mv_data, p->tkl) == target) {
            k = sk;
        } else {
            /* the block before may contain target */
            MDB_val pk, pv;
            rc = mdb_cursor_get(s->c, &pk, &pv, rc == 0 ? MDB_PREV : MDB_LAST);
            if (rc == 0 && s_key_is(&pk, sid, p->tk, p->tkl)) {
                k = pk;
                v = pv;
                seek = found; /* if target is past its end, step to the found one */
            } else {
                s->eof = true;
                return S_NOMORE;
            }
        }
    }
    if (s_sub_load(p, s, &k, &v))
        return S_NOMORE;
    if (s->docs[s->n - 1] < target) {
        bool next = seek;
        if (next && s->ahead) { /* the step loop's look past k */
            s->ahead = false;
            next = s->ahead_ok;
            k = s->ak;
            v = s->av;
        } else if (next) {
            next = !mdb_cursor_get(s->c, &k, &v, MDB_NEXT) && s_key_is(&k, sid, p->tk, p->tkl);
        }
        if (!next) {
            s->eof = true;
            return S_NOMORE;
        }
        if (s_sub_load(p, s, &k, &v))
            return S_NOMORE;
        if (s->docs[s->n - 1] < target) { /* blocks out of order: the scan below would run off */
            s_sub_corrupt(p, s);
            return S_NOMORE;
        }
    }
    if (s->docs[s->i] >= target)
        return s->docs[s->i];
    if (s->bm)
        return s_bm_seek(s, target);
    while (s->docs[s->i] < target)
        s->i++;
    return s->docs[s->i];
}

/* Is doc d's current version the one in this segment? */
/* s_sub_valid's chunk change (kept out of the loop that calls it). */
static __attribute__((noinline)) void s_sub_chunk(s_post *p, s_sub *s, uint64_t d) {
    uint64_t ch = d / IDX_COL_PER_CHUNK;
    uint8_t kb[8];
    idx_be64(kb, ch);
    MDB_val k = {8, kb}, v;
    idx_colchunk cc = {.len = 0}; /* absent or malformed: live 0 */
    if (mdb_get(p->txn, p->self->col, &k, &v) || idx_colchunk_open(&cc, v.mv_data, v.mv_size))
        idx_colchunk_open(&cc, NULL, 0);
    s->live = cc.f[IDX_CF_LIVE];
    s->chunk_ok = true;
    s->chunk_first = ch * IDX_COL_PER_CHUNK;
}

static bool s_sub_valid(s_post *p, s_sub *s, uint64_t d) {
    if (!s->chunk_ok || d - s->chunk_first >= IDX_COL_PER_CHUNK)
        s_sub_chunk(p, s, d);
    uint32_t live = idx_colfield_u32(&s->live, d - s->chunk_first);
    return live >= s->seg.lo && live <= s->seg.hi;
}

static uint64_t s_sub_advance(s_post *p, s_sub *s, uint64_t target) {
    for (;;) {
        uint64_t d = s_sub_raw(p, s, target);
        if (d == S_NOMORE || !s->check || s_sub_valid(p, s, d))
            return d;
        target = d + 1;
    }
}

/* Position a lazy sub-iterator on its first doc >= vdoc. */
static uint64_t s_sub_open(s_post *p, s_sub *s) {
    s->lazy = false;
    if (s->inl) {
        if (s_sub_decode(p, s, s->inl_first, s->inl, s->inl_len))
            return S_NOMORE;
        return s_sub_advance(p, s, s->vdoc);
    }
    if (mdb_cursor_open(p->txn, p->self->post, &s->c)) {
        p->err = 1;
        s->eof = true;
        return S_NOMORE;
    }
    /* one seek to the block that may hold vdoc: the last one starting at
     * or before it, else the first after it */
    uint32_t sid = s->seg.id;
    uint8_t kb[IDX_KEY_MAX];
    MDB_val k = {idx_post_key(sid, p->tk, p->tkl, s->vdoc, kb), kb}, v;
    int rc = mdb_cursor_get(s->c, &k, &v, MDB_SET_RANGE);
    bool found = rc == 0 && s_key_is(&k, sid, p->tk, p->tkl);
    if (!found || idx_post_key_id(k.mv_data, p->tkl) != s->vdoc) {
        MDB_val pk, pv;
        int prc = mdb_cursor_get(s->c, &pk, &pv, rc == 0 ? MDB_PREV : MDB_LAST);
        if (prc == 0 && s_key_is(&pk, sid, p->tk, p->tkl)) {
            k = pk;
            v = pv;
        } else if (found) {
            /* back to the found one: a step forward from the key before it,
             * or (the found one is the first key: MDB_PREV failed and left
             * the cursor on it, where MDB_NEXT would step past it) its own
             * key again */
            if (mdb_cursor_get(s->c, &k, &v, prc == 0 ? MDB_NEXT : MDB_SET_KEY)) {
                s->eof = true;
                return S_NOMORE;
            }
        } else {
            s->eof = true; /* removals only */
            return S_NOMORE;
        }
    }
    if (s_sub_load(p, s, &k, &v))
        return S_NOMORE;
    return s_sub_advance(p, s, s->vdoc);
}

/* The sub-iterator's first doc >= target; for a lazy one a lower bound of
 * it, without touching the index. */
static uint64_t s_sub_peek(s_post *p, s_sub *s, uint64_t target) {
    if (s->eof)
        return S_NOMORE;
    if (s->lazy) {
        if (target > s->seg.maxid) {
            s->eof = true;
            return S_NOMORE;
        }
        if (s->vdoc < target)
            s->vdoc = target;
        return s->vdoc;
    }
    uint64_t d = s->docs[s->i];
    return d < target ? s_sub_advance(p, s, target) : d;
}

/* First doc >= target. Fast path: only the current sub-iterator moves
 * while it stays below every other one's doc (p->other), which is the
 * common case of segments with disjoint id ranges. Sub-iterators are
 * positioned lazily (segments a query never reaches cost nothing). */
static __attribute__((noinline)) uint64_t s_post_advance_sub(s_post *p, uint64_t target);
static inline uint64_t s_post_advance(s_post *p, uint64_t target) {
    if (p->eof)
        return S_NOMORE;
    if (p->doc >= target)
        return p->doc;
    if (p->nsub) { /* the target in the current block (s_sub_raw's first
                      case; no generations to check): without a call */
        s_sub *s = &p->subs[p->cur];
        if (!s->lazy && !s->eof && !s->check && !s->bm && s->docs[s->n - 1] >= target) {
            size_t i = s->i;
            while (s->docs[i] < target)
                i++;
            s->i = i;
            if (s->docs[i] < p->other)
                return p->doc = s->docs[i];
        }
    }
    return s_post_advance_sub(p, target);
}

/* s_post_advance past its inline cases. */
static uint64_t s_post_advance_sub(s_post *p, uint64_t target) {
    if (p->nsub && !p->subs[p->cur].lazy) {
        uint64_t d = s_sub_advance(p, &p->subs[p->cur], target);
        if (d < p->other)
            return p->doc = d;
    }
    for (;;) {
        uint64_t best = S_NOMORE, second = S_NOMORE;
        size_t bi = 0;
        for (size_t i = 0; i < p->nsub; i++) {
            uint64_t d = s_sub_peek(p, &p->subs[i], target);
            if (d < best) {
                second = best;
                best = d;
                bi = i;
            } else if (d < second) {
                second = d;
            }
        }
        if (best != S_NOMORE && p->subs[bi].lazy) {
            s_sub_open(p, &p->subs[bi]);
            continue;
        }
        p->cur = bi;
        p->doc = best;
        p->other = second;
        if (best == S_NOMORE)
            p->eof = true;
        return best;
    }
}

/* The lexicon lookups of one idx_search, kept for its second pass: the
 * terms of pass 1 are opened again there, and each typo alternative was
 * looked up for its df by s_add_typos (s_lex_df) before s_build opens it.
 * An entry is a term's values in the segments that have it (pointers into
 * the read txn's pages, valid for the search); a lookup that failed is not
 * kept. Reset by idx_search (s_lex_begin); off outside it. */
#define S_LEX_ENTS 256
#define S_LEX_HITS 2048
#define S_LEX_KEYS 8192
typedef struct {
    uint32_t seg;           /* index in idx_segs */
    idx_lexval v;
} s_lexhit;

typedef struct {
    uint64_t h;
    uint32_t koff, klen, h0, nh;
} s_lexent;

typedef struct {
    bool on;
    uint32_t nent, nhit, nkey;
    s_lexent ent[S_LEX_ENTS];
    s_lexhit hit[S_LEX_HITS];
    uint8_t key[S_LEX_KEYS];
} s_lexc;

static _Thread_local s_lexc s_lex_g;

static void s_lex_begin(bool on) {
    s_lex_g.on = on;
    s_lex_g.nent = s_lex_g.nhit = s_lex_g.nkey = 0;
}

static uint64_t s_lex_hash(const uint8_t *tk, size_t tkl) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < tkl; i++)
        h = (h ^ tk[i]) * 1099511628211ull;
    return h;
}

/* The kept entry of term tk, or NULL. */
static const s_lexent *s_lex_get(const uint8_t *tk, size_t tkl, uint64_t h) {
    if (!s_lex_g.on)
        return NULL;
    for (uint32_t i = 0; i < s_lex_g.nent; i++) {
        const s_lexent *e = &s_lex_g.ent[i];
        if (e->h == h && e->klen == tkl && memcmp(s_lex_g.key + e->koff, tk, tkl) == 0)
            return e;
    }
    return NULL;
}

/* Keeps term tk's hits (when there is room). */
static void s_lex_put(const uint8_t *tk, size_t tkl, uint64_t h, const s_lexhit *hits, size_t nh) {
    s_lexc *x = &s_lex_g;
    if (!x->on || x->nent >= S_LEX_ENTS || nh > S_LEX_HITS - x->nhit || tkl > S_LEX_KEYS - x->nkey)
        return;
    x->ent[x->nent++] = (s_lexent){.h = h, .koff = x->nkey, .klen = (uint32_t)tkl, .h0 = x->nhit,
                                   .nh = (uint32_t)nh};
    memcpy(x->key + x->nkey, tk, tkl);
    x->nkey += (uint32_t)tkl;
    memcpy(x->hit + x->nhit, hits, nh * sizeof *hits);
    x->nhit += (uint32_t)nh;
}

/* Term tk's values in the segments that have it, in segment order: the
 * kept ones, else looked up (and kept). Returns how many, or -1 when a
 * lookup failed. */
static long s_lex_hits(idx *self, MDB_txn *txn, const idx_segs *segs, const uint8_t *tk, size_t tkl,
                       s_lexhit *buf, const s_lexhit **out) {
    uint64_t h = s_lex_hash(tk, tkl);
    const s_lexent *e = s_lex_get(tk, tkl, h);
    if (e) {
        *out = s_lex_g.hit + e->h0;
        return e->nh;
    }
    MDB_cursor *lc;
    if (mdb_cursor_open(txn, self->lex, &lc))
        return -1;
    size_t nh = 0;
    for (size_t i = 0; i < segs->nsegs; i++) {
        idx_lexval v;
        int rc = idx_lex_find(lc, segs->seg[i].id, tk, tkl, &v);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc) {
            mdb_cursor_close(lc);
            return -1;
        }
        buf[nh++] = (s_lexhit){.seg = (uint32_t)i, .v = v};
    }
    mdb_cursor_close(lc); /* values stay valid for the (read) txn */
    s_lex_put(tk, tkl, h, buf, nh);
    *out = buf;
    return (long)nh;
}

/* idx_lex_df's answer (a failed lookup counts as absent), from s_lex_hits. */
static uint64_t s_lex_df(idx *self, MDB_txn *txn, const idx_segs *segs, const uint8_t *tk, size_t tkl) {
    s_lexhit buf[IDX_MAX_SEGS];
    const s_lexhit *hits;
    long nh = s_lex_hits(self, txn, segs, tk, tkl, buf, &hits);
    if (nh < 0)
        return idx_lex_df(self, txn, segs, tk, tkl);
    int64_t df = 0;
    for (long i = 0; i < nh; i++)
        df += hits[i].v.df;
    return df > 0 ? (uint64_t)df : 0;
}

static int s_post_open(s_post *p, idx *self, MDB_txn *txn, const idx_segs *segs, const uint8_t *tk,
                       size_t tkl) {
    memset(p, 0, sizeof *p);
    p->self = self;
    p->txn = txn;
    p->tk = tk;
    p->tkl = tkl;
    p->eof = true;
    p->rp = idx_term_runpos(self->runpos, tk, tkl);
    p->ef = idx_term_ids_code(tk, tkl);
    int64_t df = 0;
    s_lexhit buf[IDX_MAX_SEGS];
    const s_lexhit *hits;
    long nh = s_lex_hits(self, txn, segs, tk, tkl, buf, &hits);
    if (nh < 0)
        return -1;
    for (long j = 0; j < nh; j++) {
        const idx_lexval *v = &hits[j].v;
        df += v->df;
        if (!p->subs && !(p->subs = malloc(segs->nsegs * sizeof *p->subs)))
            return -1;
        s_sub *s = &p->subs[p->nsub++];
        memset(s, 0, S_SUB_HEAD);
        s->seg = segs->seg[hits[j].seg];
        s->check = s->seg.dead > 0;
        s->lazy = true;
        s->vdoc = s->seg.minid;
        s->eof = s->seg.maxid == 0;
        if (v->blk) {
            s->inl = v->blk;
            s->inl_len = v->blen;
            s->inl_first = v->first;
            s->inl_one = v->one;
        }
    }
    p->df = df > 0 ? (uint64_t)df : 0;
    if (!p->df)
        return 0;
    p->eof = false;
    p->doc = 0;
    s_post_advance(p, 1);
    return p->err ? -1 : 0;
}

static void s_post_close(s_post *p) {
    for (size_t i = 0; i < p->nsub; i++)
        if (p->subs[i].c)
            mdb_cursor_close(p->subs[i].c);
    free(p->subs);
    p->subs = NULL;
    p->nsub = 0;
    free(p->pbuf);
    p->pbuf = NULL;
    free(p->ubuf);
    p->ubuf = NULL;
}

/* The current doc's frequencies (title, body). */
static inline void s_post_tf(s_post *p, uint32_t *tt, uint32_t *tb) {
    s_sub *s = &p->subs[p->cur];
    s_sub_tf_at(p, s, s->i, tt, tb);
}

static inline uint32_t s_post_tft(s_post *p) {
    uint32_t tt, tb;
    s_post_tf(p, &tt, &tb);
    return tt;
}

static inline uint32_t s_post_tfb(s_post *p) {
    uint32_t tt, tb;
    s_post_tf(p, &tt, &tb);
    return tb;
}

static long s_post_runpos(s_post *p, int f, const uint32_t **out);

/* Decodes n delta-coded positions from b into p->pbuf (grown to fit).
 * Returns past them, or NULL when malformed or out of memory. */
static const uint8_t *s_pos_decode(s_post *p, const uint8_t *b, const uint8_t *end, uint64_t n) {
    if (n > p->pcap) {
        uint32_t *nb = grow_to(p->pbuf, &p->pcap, sizeof *nb, 64, n);
        if (!nb)
            return NULL;
        p->pbuf = nb;
    }
    uint32_t prev = 0;
    uint64_t v;
    for (uint64_t k = 0; k < n; k++) {
        if (!(b = idx_varint_get(b, end, &v)))
            return NULL;
        prev += (uint32_t)v;
        p->pbuf[k] = prev;
    }
    return b;
}

/* The sum of the frequencies (title + body) of docs [a, b) of block s, read
 * in place (s->ra 1: each unmarked doc's code is one simple byte, title
 * x & 3 and body x >> 2; a marked doc has (0, 1)); codes summed 8 at a time. */
static uint64_t s_sub_tf_sum(const s_sub *s, size_t a, size_t b) {
    size_t ca = a - s_marked_before(s, a), cb = b - s_marked_before(s, b);
    uint64_t sum = (b - a) - (cb - ca); /* the marked docs' 1 each */
    const uint8_t *x = s->pp;
    for (; ca + 8 <= cb; ca += 8) {
        uint64_t w;
        memcpy(&w, x + ca, 8); /* lanes: 3 + 31 at most, then 16-bit sums */
        w = (w & 0x0303030303030303ull) + (w >> 2 & 0x1f1f1f1f1f1f1f1full);
        w = (w & 0x00ff00ff00ff00ffull) + (w >> 8 & 0x00ff00ff00ff00ffull);
        sum += (w * 0x0001000100010001ull) >> 48;
    }
    for (; ca < cb; ca++)
        sum += (x[ca] & 3u) + (x[ca] >> 2);
    return sum;
}

/* Positions of the current doc in field f (0 title, 1 body), as (pos<<1|exact).
 * Returns the count or -1. For a term with run positions: the stored ones
 * (s_post_runpos). The positions of the block's docs before it are skipped
 * by the sum of their frequencies: read in place when the block allows it
 * (s_sub_ra: a phrase checks a few docs of a block, and decoding all its
 * frequencies was most of the cost), else from the decoded ones. */
static long s_post_positions(s_post *p, int f, const uint32_t **out) {
    if (p->rp)
        return s_post_runpos(p, f, out);
    s_sub *s = &p->subs[p->cur];
    if (s->pidx > s->i) /* cannot go back */
        return -1;
    if (!s->tf_ok && !s->ra)
        s_sub_ra(s);
    const uint8_t *b;
    uint64_t before; /* the positions of the docs before it */
    if (!s->tf_ok && s->ra == 1) {
        size_t nb = idx_tf_one_bytes(s->n);
        b = s->pidx ? s->ppos
                    : s->pp + (s->n - s->cum[nb - 1] - s_pop8[s->one[nb - 1]]); /* past the codes */
        before = s_sub_tf_sum(s, s->pidx, s->i);
    } else {
        s_sub_tf(p, s);
        b = s->pidx ? s->ppos : s->pp;
        before = 0;
        for (size_t j = s->pidx; j < s->i; j++)
            before += (uint64_t)s->tft[j] + s->tfb[j];
    }
    if (!(b = idx_varints_skip(b, s->pend, before)))
        return -1;
    s->pidx = s->i;
    s->ppos = b;
    uint32_t tt, tb;
    s_sub_tf_at(p, s, s->i, &tt, &tb);
    uint32_t skip = f == 0 ? 0 : tt, cnt = f == 0 ? tt : tb;
    if (!(b = idx_varints_skip(b, s->pend, skip)) || !s_pos_decode(p, b, s->pend, cnt))
        return -1;
    if (!idx_term_exact_bit(p->tk, p->tkl)) /* bare positions: always exact */
        for (uint32_t k = 0; k < cnt; k++)
            p->pbuf[k] = p->pbuf[k] << 1 | 1;
    *out = p->pbuf;
    return cnt;
}

/* One doc's positions part in a block of a term with run positions
 * (idx_int.h RUN POSITIONS) at b: k[f] gets the positions it holds in field
 * f; returns where they start, NULL when malformed. */
static const uint8_t *s_runpos_doc(const uint8_t *b, const uint8_t *end, bool has, uint32_t tft,
                                   uint32_t tfb, uint64_t k[2]) {
    k[0] = k[1] = 0;
    if (!has)
        return b;
    if (tft + tfb == 1) {
        k[tft ? 0 : 1] = 1;
        return b;
    }
    if ((tft && !(b = idx_varint_get(b, end, &k[0]))) || (tfb && !(b = idx_varint_get(b, end, &k[1]))))
        return NULL;
    return k[0] <= tft && k[1] <= tfb ? b : NULL;
}

/* s_post_positions of a term with run positions: the stored (run-boundary)
 * positions of the current doc in field f, as pos << 1 | 1. */
static long s_post_runpos(s_post *p, int f, const uint32_t **out) {
    s_sub *s = &p->subs[p->cur];
    s_sub_tf(p, s);
    size_t nb = idx_tf_one_bytes(s->n);
    if (s->pidx > s->i || (size_t)(s->pend - s->pp) < nb)
        return -1;
    const uint8_t *end = s->pend - nb, *has = nb ? end : NULL, *b = s->pp;
    uint64_t k[2];
    for (;; s->pidx++) {
        size_t d = s->pidx;
        if (!(b = s_runpos_doc(b, end, has ? (has[d >> 3] >> (d & 7) & 1) : b < end, s->tft[d],
                               s->tfb[d], k)))
            return -1;
        if (d == s->i)
            break;
        if (!(b = idx_varints_skip(b, end, k[0] + k[1])))
            return -1;
        s->pp = b;
    }
    uint64_t cnt = k[f];
    if (!(b = idx_varints_skip(b, end, f ? k[0] : 0)) || !s_pos_decode(p, b, end, cnt))
        return -1;
    for (uint64_t x = 0; x < cnt; x++) /* run positions: always exact */
        p->pbuf[x] = p->pbuf[x] << 1 | 1;
    *out = p->pbuf;
    return (long)cnt;
}

/* ---------------------------------------------------------------------- */
/* matchers */

typedef struct {
    int kind;
    bool title_only;
    bool filter;       /* tag filter: matches, never scores */
    s_post *posts;     /* TERM: 1, PHRASE: n */
    s_post *hid;       /* PHRASE: the bigrams of lone CJK characters (s_qterm.hlen) */
    const s_qterm *qt; /* components */
    size_t np;
    uint64_t *list;    /* PREFIX: sorted doc ids */
    size_t nlist, li;
    uint64_t doc;
    double maxscore;
} s_matcher;

typedef struct {
    idx *self;
    MDB_txn *txn;
    double k1, b, wt, avg_t, avg_b, N;
    idx_colchunk cv;      /* the column chunk of s_col's last doc */
    uint64_t chunk_first; /* its first doc id (when chunk_ok) */
    bool chunk_ok, chunk_has; /* chunk_has: found (the cursor is on it) */
    MDB_cursor **colc; /* on idx_col, opened at the first chunk (closed by idx_search) */
    idx_segs segs;
} s_ctx;

static double s_idf(double N, double df) {
    return log(1.0 + (N - df + 0.5) / (df + 0.5));
}

/* The positions in field f of phrase component k, a lone CJK character with
 * run positions (s_qterm.hlen > 0): its stored ones (*arr, cnt) and those its
 * bigram with its neighbour gives (idx_int.h RUN POSITIONS), sorted, in
 * p->ubuf. Returns the count or -1. */
static long s_phrase_runpos(s_matcher *m, size_t k, int f, const uint32_t **arr, long cnt) {
    s_post *p = &m->posts[k], *h = &m->hid[k];
    if (cnt < 0 || s_post_advance(h, p->doc) != p->doc || !(f ? s_post_tfb(h) : s_post_tft(h)))
        return cnt;
    const uint32_t *ha;
    long hn = s_post_positions(h, f, &ha);
    if (hn <= 0)
        return hn < 0 ? -1 : cnt;
    if ((size_t)(cnt + hn) > p->ucap) {
        uint32_t *nb = grow_to(p->ubuf, &p->ucap, sizeof *nb, 64, (size_t)(cnt + hn));
        if (!nb)
            return -1;
        p->ubuf = nb;
    }
    const uint32_t *a = *arr, add = 2u * m->qt[k].hshift; /* (pos + shift) << 1 | 1 */
    long i = 0, j = 0, n = 0;
    while (i < cnt || j < hn) {
        uint32_t x = j < hn ? ha[j] + add : UINT32_MAX;
        if (i < cnt && a[i] <= x) {
            j += a[i] == x;
            p->ubuf[n++] = a[i++];
        } else {
            p->ubuf[n++] = x;
            j++;
        }
    }
    *arr = p->ubuf;
    return n;
}

static bool s_phrase_field(s_matcher *m, int f) {
    const uint32_t *arr[IDX_QUERY_MAX_TERMS];
    long cnt[IDX_QUERY_MAX_TERMS];
    /* positions buffers are per post; copy pointers (each post has its own buffer) */
    for (size_t k = 0; k < m->np; k++) {
        cnt[k] = s_post_positions(&m->posts[k], f, &arr[k]);
        if (m->qt[k].hlen)
            cnt[k] = s_phrase_runpos(m, k, f, &arr[k], cnt[k]);
        if (cnt[k] <= 0)
            return false;
    }
    for (long x = 0; x < cnt[0]; x++) {
        if (m->qt[0].need_exact && !(arr[0][x] & 1))
            continue;
        int64_t base = (int64_t)(arr[0][x] >> 1) - m->qt[0].rel;
        bool ok = true;
        for (size_t k = 1; k < m->np && ok; k++) {
            int64_t want = base + m->qt[k].rel;
            ok = false;
            long lo = 0, hi = cnt[k];
            while (lo < hi) {
                long mid = (lo + hi) / 2;
                if ((int64_t)(arr[k][mid] >> 1) < want)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo < cnt[k] && (int64_t)(arr[k][lo] >> 1) == want &&
                (!m->qt[k].need_exact || (arr[k][lo] & 1)))
                ok = true;
        }
        if (ok)
            return true;
    }
    return false;
}

/* a[i] < x: the index of the first of a[i + 1 .. i + 8] that is >= x, or
 * i + 9; the 8 compares do not wait for each other. i + 1 near n. */
static inline size_t s_ahead8(const uint64_t *a, size_t i, size_t n, uint64_t x) {
    if (i + 9 > n)
        return i + 1;
    size_t k = i + 1;
    for (size_t t = 1; t <= 8; t++)
        k += a[i + t] < x;
    return k;
}

/* The first doc >= d that both terms of a two-word phrase have (the AND
 * before its positions are checked); S_NOMORE when none. Terms of one
 * segment without dead docs each are merged in their current blocks'
 * decoded ids (the steps without a call each, or a branch on which side
 * moves), and only a block that runs out goes through s_post_advance. */
static uint64_t s_phrase_and2(s_post *a, s_post *b, uint64_t d) {
    uint64_t x = s_post_advance(a, d);
    for (;;) {
        if (x == S_NOMORE)
            return S_NOMORE;
        uint64_t y = s_post_advance(b, x);
        if (y == x || y == S_NOMORE)
            return y;
        if (a->nsub != 1 || b->nsub != 1 || a->subs[0].check || b->subs[0].check) {
            x = s_post_advance(a, y);
            continue;
        }
        /* a on x, b on y > x: merge on from there */
        s_sub *sa = &a->subs[0], *sb = &b->subs[0];
        if (sa->bm)
            s_sub_ids(a, sa);
        if (sb->bm)
            s_sub_ids(b, sb);
        size_t i = sa->i, j = sb->i, na = sa->n, nb = sb->n;
        const uint64_t *da = sa->docs, *db = sb->docs;
        while (i < na && j < nb) {
            uint64_t u = da[i], v = db[j];
            if (u == v)
                break;
            if (u < v)
                i = s_ahead8(da, i, na, v);
            else
                j = s_ahead8(db, j, nb, u);
        }
        if (i < na && j < nb) { /* both on it */
            sa->i = i;
            sb->i = j;
            return a->doc = b->doc = da[i];
        }
        if (i == na) { /* a's block ran out below db[j] */
            sa->i = na - 1;
            a->doc = da[na - 1];
            sb->i = j;
            b->doc = db[j];
            x = s_post_advance(a, db[j]);
        } else { /* b's block ran out below da[i] */
            sa->i = i;
            x = a->doc = da[i];
            sb->i = nb - 1;
            b->doc = db[nb - 1];
        }
    }
}

static uint64_t s_m_advance(s_matcher *m, uint64_t target) {
    if (m->doc == S_NOMORE || (m->doc != 0 && m->doc >= target))
        return m->doc;
    switch (m->kind) {
    case A_TERM:
        for (;;) {
            uint64_t d = s_post_advance(&m->posts[0], target);
            if (d == S_NOMORE || !m->title_only || s_post_tft(&m->posts[0]))
                return m->doc = d;
            target = d + 1;
        }
    case A_PREFIX:
        while (m->li < m->nlist && m->list[m->li] < target)
            m->li++;
        return m->doc = m->li < m->nlist ? m->list[m->li] : S_NOMORE;
    default: /* phrase */
        for (;;) {
            uint64_t d = target;
            size_t agree = 0, k = 0;
            if (m->np == 2) {
                d = s_phrase_and2(&m->posts[0], &m->posts[1], d);
                if (d == S_NOMORE)
                    return m->doc = S_NOMORE;
                agree = 2;
            }
            while (agree < m->np) {
                uint64_t x = s_post_advance(&m->posts[k], d);
                if (x == S_NOMORE)
                    return m->doc = S_NOMORE;
                if (x == d)
                    agree++;
                else {
                    d = x;
                    agree = 1;
                }
                k = (k + 1) % m->np;
            }
            bool ok = false;
            bool title = true;
            for (size_t j = 0; j < m->np; j++)
                title &= s_post_tft(&m->posts[j]) > 0;
            if (title)
                ok = s_phrase_field(m, 0);
            if (!ok && !m->title_only) {
                bool body = true;
                for (size_t j = 0; j < m->np; j++)
                    body &= s_post_tfb(&m->posts[j]) > 0;
                if (body)
                    ok = s_phrase_field(m, 1);
            }
            if (ok)
                return m->doc = d;
            target = d + 1;
        }
    }
}

/* BM25's part of one field for frequency tf in a field of len terms (avg on
 * average) with weight w (1 for the body: x * 1.0 is x, the same bits). */
static inline double s_part(const s_ctx *c, double w, uint32_t tf, uint32_t len, double avg) {
    double norm = c->k1 * (1 - c->b + c->b * (double)len / avg);
    return w * (double)tf * (c->k1 + 1) / ((double)tf + norm);
}

/* A doc's field lengths, from its column record. */
typedef struct {
    uint32_t len_t, len_b;
} s_lens;

static double s_term_score(const s_ctx *c, s_post *p, bool title_only, const s_lens *r) {
    uint32_t tt, tb;
    s_post_tf(p, &tt, &tb);
    double s = 0;
    if (tt)
        s += s_part(c, c->wt, tt, r->len_t, c->avg_t);
    if (tb && !title_only)
        s += s_part(c, 1.0, tb, r->len_b, c->avg_b);
    return p->idf * s;
}

static double s_m_score(const s_ctx *c, s_matcher *m, const s_lens *r) {
    if (m->filter)
        return 0;
    if (m->kind == A_PREFIX)
        return 1.0;
    double s = 0;
    for (size_t k = 0; k < m->np; k++)
        s += s_term_score(c, &m->posts[k], m->title_only, r);
    return s;
}

typedef struct {
    s_matcher *alts;
    size_t na;
    bool neg;
    uint64_t doc;
    uint64_t cost;
    double maxscore;
} s_cl;

static uint64_t s_cl_advance(s_cl *cl, uint64_t target) {
    uint64_t best = S_NOMORE;
    for (size_t i = 0; i < cl->na; i++) {
        uint64_t d = cl->alts[i].doc;
        if (d == 0 || (d != S_NOMORE && d < target))
            d = s_m_advance(&cl->alts[i], target);
        if (d < best)
            best = d;
    }
    return cl->doc = best;
}

/* Block-max: an upper bound of s_term_score for any doc of the current
 * block (its largest tfs with its shortest fields; BM25's term part grows
 * with tf and shrinks with length), with a margin for rounding. */
static double s_post_bound(const s_ctx *c, s_post *p, bool title_only) {
    s_sub *s = &p->subs[p->cur];
    if (!s->bound_ok) {
        double v = 0;
        if (s->h.derive) { /* IDX_HEAD_NOMAX: the largest of the codes */
            s_sub_tf(p, s);
            for (size_t i = 0; i < s->n; i++) {
                s->h.maxt = s->tft[i] > s->h.maxt ? s->tft[i] : s->h.maxt;
                s->h.maxb = s->tfb[i] > s->h.maxb ? s->tfb[i] : s->h.maxb;
            }
            s->h.derive = false;
        }
        if (s->h.maxt) {
            double tf = (double)s->h.maxt;
            v += c->wt * tf * (c->k1 + 1) /
                 (tf + c->k1 * (1 - c->b + c->b * (double)s->h.minlt / c->avg_t));
        }
        if (s->h.maxb && !title_only) {
            double tf = (double)s->h.maxb;
            v += tf * (c->k1 + 1) / (tf + c->k1 * (1 - c->b + c->b * (double)s->h.minlb / c->avg_b));
        }
        s->bound = p->idf * v * (1 + 1e-9) + 1e-12;
        s->bound_ok = true;
    }
    return s->bound;
}

/* Per doc: an upper bound of s_term_score for a doc of block s from its own
 * frequencies tt, tb (s_sub_tf_at) and its block's shortest fields (tighter
 * than the block's bound, and no column record needed: that is a cache
 * miss). The same
 * operations as s_term_score on lengths <= the doc's, so never below it,
 * plus s_post_bound's margin. */
static __attribute__((noinline)) double s_sub_doc_bound_fill(const s_ctx *c, const s_post *p,
                                                            s_sub *s, uint32_t tt, uint32_t tb,
                                                            bool title_only) {
    uint32_t lt = s->h.minlt > UINT32_MAX ? UINT32_MAX : (uint32_t)s->h.minlt,
             lb = s->h.minlb > UINT32_MAX ? UINT32_MAX : (uint32_t)s->h.minlb;
    double v = 0;
    /* the parts depend on the block and the tf alone: computed once per
     * block and tf (the divisions were most of this bound's cost) */
    if (tt) {
        if (tt >= 32) {
            v += s_part(c, c->wt, tt, lt, c->avg_t);
        } else {
            if (!(s->dbt_ok >> tt & 1)) {
                s->dbt[tt] = s_part(c, c->wt, tt, lt, c->avg_t);
                s->dbt_ok |= 1u << tt;
            }
            v += s->dbt[tt];
        }
    }
    if (tb && !title_only) {
        if (tb >= 64) {
            v += s_part(c, 1.0, tb, lb, c->avg_b);
        } else {
            if (!(s->dbb_ok >> tb & 1)) {
                s->dbb[tb] = s_part(c, 1.0, tb, lb, c->avg_b);
                s->dbb_ok |= 1ull << tb;
            }
            v += s->dbb[tb];
        }
    }
    return p->idf * v * (1 + 1e-9) + 1e-12;
}

/* s_sub_doc_bound_fill once both parts are known for this block: their sum
 * (dbt[0] and dbb[0] are 0, and 0 + x is x: the same bits as adding only
 * the nonzero parts), inline. */
static inline double s_sub_doc_bound(const s_ctx *c, const s_post *p, s_sub *s, uint32_t tt,
                                     uint32_t tb, bool title_only) {
    uint32_t b = title_only ? 0 : tb;
    if (tt < 32 && b < 64 && (s->dbt_ok >> tt & 1) && (s->dbb_ok >> b & 1))
        return p->idf * (s->dbt[tt] + s->dbb[b]) * (1 + 1e-9) + 1e-12;
    return s_sub_doc_bound_fill(c, p, s, tt, tb, title_only);
}

static double s_post_doc_bound(const s_ctx *c, s_post *p, bool title_only) {
    s_sub *s = &p->subs[p->cur];
    uint32_t tt, tb;
    s_sub_tf_at(p, s, s->i, &tt, &tb);
    return s_sub_doc_bound(c, p, s, tt, tb, title_only);
}

/* Bound of s_m_score: over the current blocks, or (doc) for the current doc. */
static double s_m_bound(const s_ctx *c, s_matcher *m, bool doc) {
    if (m->filter)
        return 0;
    if (m->kind == A_PREFIX)
        return 1.0;
    double s = 0;
    for (size_t k = 0; k < m->np; k++)
        s += doc ? s_post_doc_bound(c, &m->posts[k], m->title_only)
                 : s_post_bound(c, &m->posts[k], m->title_only);
    return s;
}

static double s_cl_bound(const s_ctx *c, s_cl *cl, bool doc) {
    double s = 0;
    for (size_t i = 0; i < cl->na; i++)
        if (cl->alts[i].doc == cl->doc)
            s += s_m_bound(c, &cl->alts[i], doc);
    return s;
}

static double s_cl_score(const s_ctx *c, s_cl *cl, const s_lens *r) {
    double s = 0;
    for (size_t i = 0; i < cl->na; i++)
        if (cl->alts[i].doc == cl->doc)
            s += s_m_score(c, &cl->alts[i], r);
    return s;
}

/* Doc id's slot in c->cv, the column chunk that holds its record (read the
 * fields needed with idx_colchunk_u32 / _pub). Docs come in ascending id
 * order, so the chunks are read through one cursor: LMDB looks for a key on
 * the cursor's current leaf page first, which spares the descent from the
 * root that mdb_get makes (the chunks of a query's docs are mostly
 * neighbours). */
static __attribute__((noinline)) size_t s_col_chunk(s_ctx *c, uint64_t id);

static inline size_t s_col(s_ctx *c, uint64_t id) {
    uint64_t slot = id - c->chunk_first;
    if (c->chunk_ok && slot < IDX_COL_PER_CHUNK)
        return (size_t)slot;
    return s_col_chunk(c, id);
}

/* s_col's chunk change. */
static size_t s_col_chunk(s_ctx *c, uint64_t id) {
    uint64_t ch = id / IDX_COL_PER_CHUNK;
    uint8_t kb[8];
    idx_be64(kb, ch);
    MDB_val k = {8, kb}, v;
    /* the cursor is on the current chunk when chunk_has: the next chunk is
     * the next key (most chunk changes of a scan), a step instead of a
     * search of the page */
    bool next = c->chunk_ok && c->chunk_has && ch * IDX_COL_PER_CHUNK == c->chunk_first + IDX_COL_PER_CHUNK;
    c->chunk_first = ch * IDX_COL_PER_CHUNK;
    c->chunk_ok = true;
    int rc = !*c->colc ? mdb_cursor_open(c->txn, c->self->col, c->colc) : 0;
    if (rc == 0 && next &&
        (mdb_cursor_get(*c->colc, &k, &v, MDB_NEXT) || k.mv_size != 8 || memcmp(k.mv_data, kb, 8) != 0)) {
        k.mv_size = 8; /* not there: look it up */
        k.mv_data = kb;
        next = false;
    }
    c->chunk_has = rc == 0 && (next || mdb_cursor_get(*c->colc, &k, &v, MDB_SET_KEY) == 0);
    if (!c->chunk_has || idx_colchunk_open(&c->cv, v.mv_data, v.mv_size)) /* else: all zero */
        idx_colchunk_open(&c->cv, NULL, 0);
    return (size_t)(id - c->chunk_first);
}

/* ---------------------------------------------------------------------- */
/* top-k heap: entries ordered by (tier asc, score desc, pub desc, id desc) */

typedef struct {
    double score;
    int64_t pub;
    uint64_t id;
    uint8_t tier;
} s_ent;

static bool s_better(const s_ent *a, const s_ent *b) {
    if (a->tier != b->tier)
        return a->tier < b->tier;
    if (a->score != b->score)
        return a->score > b->score;
    if (a->pub != b->pub)
        return a->pub > b->pub;
    return a->id > b->id;
}

typedef struct {
    s_ent *e;
    size_t n, cap;
} s_heap; /* min-heap: e[0] is the worst */

static void s_heap_push(s_heap *h, const s_ent *x) {
    if (h->n < h->cap) {
        size_t i = h->n++;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (!s_better(&h->e[p], x))
                break;
            h->e[i] = h->e[p];
            i = p;
        }
        h->e[i] = *x;
        return;
    }
    if (!s_better(x, &h->e[0]))
        return;
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        const s_ent *we = x;
        if (l < h->n && s_better(we, &h->e[l])) {
            w = l;
            we = &h->e[l];
        }
        if (r < h->n && s_better(we, &h->e[r]))
            w = r;
        if (w == i)
            break;
        h->e[i] = h->e[w];
        i = w;
    }
    h->e[i] = *x;
}

static int s_ent_cmp(const void *a, const void *b) {
    return s_better(a, b) ? -1 : s_better(b, a) ? 1 : 0;
}

/* ---------------------------------------------------------------------- */

typedef struct {
    uint64_t *cat, *site;
    size_t ncat, nsite;
} s_facets;

static int s_facet_inc(uint64_t **arr, size_t *n, uint32_t id) {
    if (id >= *n) {
        size_t old = *n;
        uint64_t *a = grow_to(*arr, n, sizeof *a, 64, (size_t)id + 1);
        if (!a)
            return -1;
        memset(a + old, 0, (*n - old) * sizeof *a);
        *arr = a;
    }
    (*arr)[id]++;
    return 0;
}

typedef struct {
    s_cl *req;
    size_t nreq;
    s_cl *neg;
    size_t nneg;
    uint32_t site, cat;
    int64_t since, until;
    bool has_cursor;
    s_ent cursor;
    uint8_t tier;
    const uint64_t *skip; /* sorted ids to skip (exact hits in the typo pass) */
    size_t nskip;
    uint64_t *found;      /* ids matched (collected when found_cap > 0) */
    size_t nfound, found_cap;
} s_run;

/* First index k in [lo, n) with a[k] > x, or n (lo < n); without a
 * branch on the comparisons. */
static size_t s_upper(const uint64_t *a, size_t lo, size_t n, uint64_t x) {
    const uint64_t *base = a + lo;
    size_t len = n - lo;
    while (len > 1) {
        size_t half = len / 2;
        base = base[half] <= x ? base + half : base;
        len -= half;
    }
    return (size_t)(base - a) + (*base <= x);
}

/* A single term's window (s_window_count): the first doc in [i, hi) of
 * block s whose own bound (s_sub_doc_bound) reaches worst, or hi. Every
 * doc's bound is read, so the block's frequencies are decoded at once. The
 * bound grows with the body frequency tb for a given title frequency tt
 * (the same operations on a larger tf, and rounding keeps the order), so
 * for each tt < S_ONE_TT the smallest tb < 64 whose bound reaches worst is
 * found once per block and worst (a binary search over s_sub_doc_bound
 * itself: the same decision, bit for bit; kept in s for the block's next
 * window while worst is the same) and a doc below it is counted with one
 * compare, not a call and its arithmetic per doc. */
static size_t s_window_one(const s_ctx *c, s_post *p, s_sub *s, size_t i, size_t hi,
                           double worst) {
    s_sub_tf(p, s);
    if (s->lim_epoch != s_blocks_decoded || s->lim_worst != worst) {
        s->lim_epoch = s_blocks_decoded;
        s->lim_worst = worst;
        s->lim_known = 0;
    }
    for (; i < hi; i++) {
        uint32_t tt = s->tft[i], tb = s->tfb[i];
        if (tt < S_ONE_TT) {
            if (!(s->lim_known >> tt & 1)) {
                uint32_t lo = 0, up = 64; /* smallest tb < 64 with bound >= worst, or 64 */
                while (lo < up) {
                    uint32_t mid = (lo + up) / 2;
                    if (s_sub_doc_bound(c, p, s, tt, mid, false) >= worst)
                        up = mid;
                    else
                        lo = mid + 1;
                }
                s->lim[tt] = (uint8_t)lo;
                s->lim_known |= 1u << tt;
            }
            if (tb < s->lim[tt])
                continue; /* pruned */
        }
        if (s_sub_doc_bound(c, p, s, tt, tb, false) >= worst)
            break; /* it may enter the heap */
    }
    return i;
}

/* The window count of a plain term or an AND of them (s_evaluate): at most
 * S_WIN_CLAUSES clauses, each one term on one segment without dead docs,
 * all on doc d, which was pruned. The docs in (d, e] that every clause has,
 * e the smallest last doc of the clauses' current blocks, are found by
 * merging their decoded doc ids (without a branch per comparison; in a
 * window of up to S_WIN_SPAN ids by table lookups instead), and
 * counted while they are pruned too: all of them when d was pruned by the
 * blocks' bounds (block), else those whose own bound (s_cl_bound's per-doc
 * sum, in the same order) stays below worst. The first clause's docs are
 * merged S_WIN_CHUNK at a time, so that a doc that stops the count wastes
 * little merging after it. Each clause is left on the first doc not
 * counted: its block's doc after e (or its last doc when that is e, so that
 * the next advance loads its next block), or the doc that stopped the
 * count. Returns the count; *end = the last doc before that. */
#define S_WIN_CLAUSES 8
#define S_WIN_CHUNK 16
#define S_WIN_SPAN 4096 /* windows of up to this many ids probe tables */

/* s_window_count's tables: for clause k >= 1, entry x - d - 1 holds doc
 * x's index in the clause's block plus 1, or 0 (not in it). */
static _Thread_local uint8_t s_wtab[S_WIN_CLAUSES][S_WIN_SPAN];

typedef struct {
    uint64_t doc[S_WIN_CHUNK];
    uint8_t at[S_WIN_CLAUSES][S_WIN_CHUNK]; /* the doc's index in each clause's block */
} s_win;

/* s_window_count of a window (d, e] of up to S_WIN_SPAN ids pruned by the
 * blocks' bounds (every doc of the AND in it is counted), where some
 * clause's block is a bitmap not decoded (s_sub.bm): each clause's docs in
 * the window as bits (a bitmap's words shifted out of it, another block's
 * docs set one by one), ANDed and counted; then each clause is moved as
 * s_window_count does. */
static uint64_t s_window_bits(s_cl *req, size_t nr, uint64_t d, uint64_t e, uint64_t *end) {
    enum { NW = S_WIN_SPAN / 64 };
    uint64_t acc[NW], t[NW];
    size_t span = (size_t)(e - d), nw = (span + 63) / 64;
    for (size_t k = 0; k < nr; k++) {
        const s_sub *s = &req[k].alts[0].posts[0].subs[0];
        uint64_t *w = k ? t : acc;
        if (s->bm) { /* doc d + 1 + x is bit d - first + x */
            uint64_t base = d - s->docs[0];
            for (size_t j = 0; j < nw; j++)
                w[j] = s_bm_bits(s, base + 64 * j);
        } else { /* (masked to the table: see s_window_count) */
            memset(w, 0, nw * sizeof *w);
            for (size_t j = s->i + 1; j < s->n && s->docs[j] <= e; j++) {
                uint64_t x = s->docs[j] - d - 1;
                w[(x >> 6) & (NW - 1)] |= (uint64_t)1 << (x & 63);
            }
        }
        for (size_t j = 0; k && j < nw; j++)
            acc[j] &= t[j];
    }
    if (span & 63) /* (the block that ends at e has no bits after it, unless corrupt) */
        acc[nw - 1] &= ((uint64_t)1 << (span & 63)) - 1;
    uint64_t cnt = 0;
    for (size_t j = 0; j < nw; j++)
        cnt += s_pop64(acc[j]);
    for (size_t k = 0; k < nr; k++) {
        s_sub *s = &req[k].alts[0].posts[0].subs[0];
        if (s->docs[s->n - 1] <= e) {
            s->i = s->n - 1;
        } else if (s->bm) {
            s_bm_seek(s, e + 1);
        } else {
            size_t hi = s_upper(s->docs, s->i, s->n, e);
            s->i = hi < s->n ? hi : s->n - 1;
        }
    }
    *end = e;
    return cnt;
}

static uint64_t s_window_count(const s_ctx *c, s_cl *req, size_t nr, uint64_t d, bool block,
                               double worst, uint64_t *end) {
    uint64_t e = S_NOMORE;
    for (size_t k = 0; k < nr; k++) {
        const s_sub *s = &req[k].alts[0].posts[0].subs[0];
        if (s->docs[s->n - 1] < e)
            e = s->docs[s->n - 1];
    }
    *end = d;
    if (e <= d)
        return 0;
    if (nr == 1) { /* one term: its block's docs after d, nothing to merge */
        s_post *p = &req[0].alts[0].posts[0];
        s_sub *s = &p->subs[0];
        if (s->bm && (block || req[0].alts[0].filter)) {
            /* a bitmap not decoded, counted to its block's end (e is its
             * last doc): its docs after the current one, without decoding */
            uint64_t cnt = s->n - 1 - s->i;
            s->i = s->n - 1;
            *end = e;
            return cnt;
        }
        if (s->bm)
            s_sub_ids(p, s);
        size_t i = s->i + 1, hi = s_upper(s->docs, s->i, s->n, e);
        i = block || req[0].alts[0].filter ? hi : s_window_one(c, p, s, i, hi, worst);
        uint64_t cnt = i - (s->i + 1);
        if (i < hi) {
            s->i = i;
            *end = s->docs[i] - 1;
        } else {
            s->i = hi < s->n ? hi : s->n - 1;
            *end = e;
        }
        return cnt;
    }
    bool bits = false; /* a clause's block is a bitmap not decoded */
    for (size_t k = 0; k < nr; k++)
        bits |= req[k].alts[0].posts[0].subs[0].bm != NULL;
    if (bits && block && e - d <= S_WIN_SPAN)
        return s_window_bits(req, nr, d, e, end);
    for (size_t k = 0; k < nr && bits; k++) {
        s_post *p = &req[k].alts[0].posts[0];
        if (p->subs[0].bm)
            s_sub_ids(p, &p->subs[0]);
    }
    s_win win[2];
    size_t next[S_WIN_CLAUSES]; /* each clause's next doc to merge (all are on d) */
    for (size_t k = 0; k < nr; k++)
        next[k] = req[k].alts[0].posts[0].subs[0].i + 1;
    s_sub *s0 = &req[0].alts[0].posts[0].subs[0];
    uint64_t cnt = 0;
    /* A window of few ids (frequent terms: blocks of 128 docs over a few
     * hundred ids) looks the first clause's docs up in a table of each other
     * clause's (s_wtab, filled a chunk at a time): the loads are independent,
     * where the merge's next comparison waits for the last one's. */
    bool tab = e - d <= S_WIN_SPAN;
    size_t zeroed = 0; /* table entries [0, zeroed) are zero or set */
    for (;;) {
        s_win *w = &win[0];
        size_t m = 0;
        for (size_t i = next[0]; m < S_WIN_CHUNK && i < s0->n && s0->docs[i] <= e; i++, m++) {
            w->doc[m] = s0->docs[i];
            w->at[0][m] = (uint8_t)i;
        }
        if (!m)
            break;
        next[0] += m;
        if (tab) {
            /* The offsets are masked to the table: in a well-formed index
             * every doc here is in (d, e] and e - d <= S_WIN_SPAN, so the
             * mask changes nothing; a corrupt block's ids that do not rise
             * (no decoder checks that: it would cost ~3% of the search's
             * CPU) then give a wrong count, never a write outside s_wtab. */
            uint64_t xm = w->doc[m - 1];
            size_t top = xm > d && xm - d <= S_WIN_SPAN ? (size_t)(xm - d) : S_WIN_SPAN;
            for (size_t k = 1; k < nr; k++) {
                const s_sub *s = &req[k].alts[0].posts[0].subs[0];
                uint8_t *t = s_wtab[k];
                if (top > zeroed)
                    memset(t + zeroed, 0, top - zeroed);
                size_t j = next[k];
                for (; j < s->n && s->docs[j] <= xm; j++)
                    t[(s->docs[j] - d - 1) & (S_WIN_SPAN - 1)] = (uint8_t)(j + 1);
                next[k] = j;
            }
            if (top > zeroed)
                zeroed = top; /* entries for the docs <= xm */
            s_win *o = &win[1];
            size_t n = 0;
            for (size_t i = 0; i < m; i++) {
                size_t off = (size_t)(w->doc[i] - d - 1) & (S_WIN_SPAN - 1);
                unsigned all = 1;
                o->doc[n] = w->doc[i];
                o->at[0][n] = w->at[0][i];
                for (size_t k = 1; k < nr; k++) {
                    unsigned a = s_wtab[k][off];
                    o->at[k][n] = (uint8_t)(a - 1);
                    all &= a != 0;
                }
                n += all;
            }
            w = o;
            m = n;
        }
        for (size_t k = 1; k < nr && m && !tab; k++) {
            const s_sub *s = &req[k].alts[0].posts[0].subs[0];
            s_win *o = &win[k & 1];
            /* every doc of w is <= e <= the block's last: j stays in the
             * block while i < m (s->docs[j] == w's doc == the block's last
             * one ends w) */
            size_t i = 0, j = next[k], n = 0;
            while (i < m) {
                uint64_t x = w->doc[i], y = s->docs[j];
                o->doc[n] = x;
                for (size_t q = 0; q < k; q++)
                    o->at[q][n] = w->at[q][i];
                o->at[k][n] = (uint8_t)j;
                n += x == y;
                i += x <= y;
                j += y <= x;
            }
            next[k] = j;
            w = o;
            m = n;
        }
        for (size_t x = 0; x < m; x++) {
            if (!block) {
                double bound = 0;
                for (size_t k = 0; k < nr; k++) {
                    s_post *p = &req[k].alts[0].posts[0];
                    s_sub *s = &p->subs[0];
                    if (req[k].alts[0].filter) /* a tag filter's bound is 0 */
                        continue;
                    uint32_t tt, tb; /* the few docs of the intersection: in place */
                    s_sub_tf_at(p, s, w->at[k][x], &tt, &tb);
                    bound += s_sub_doc_bound(c, p, s, tt, tb, false);
                }
                if (bound >= worst) { /* it may enter the heap */
                    for (size_t k = 0; k < nr; k++)
                        req[k].alts[0].posts[0].subs[0].i = w->at[k][x];
                    *end = w->doc[x] - 1;
                    return cnt;
                }
            }
            cnt++;
        }
    }
    for (size_t k = 0; k < nr; k++) {
        s_sub *s = &req[k].alts[0].posts[0].subs[0];
        size_t hi = s_upper(s->docs, s->i, s->n, e);
        s->i = hi < s->n ? hi : s->n - 1;
    }
    *end = e;
    return cnt;
}

static int s_evaluate(s_ctx *c, s_run *run, s_heap *h, s_facets *fc, uint64_t *total,
                      uint64_t *after_cursor) {
    s_cl *req = run->req;
    size_t nr = run->nreq;
    double maxsum = 0;
    for (size_t i = 0; i < nr; i++)
        maxsum += req[i].maxscore;
    /* One plain term and nothing to check per doc (no exclusions, filters,
     * facets or cursor): once the heap is full, a block whose bound cannot
     * beat its worst entry is counted whole, its docs not visited one by one
     * (each of them would be counted and pruned by that same bound). */
    s_post *solo = NULL;
    if (nr == 1 && !run->nneg && !run->nskip && !run->site && !run->cat && !run->since &&
        !run->until && !fc && !run->has_cursor && req[0].na == 1 && req[0].alts[0].kind == A_TERM &&
        !req[0].alts[0].title_only && !req[0].alts[0].filter)
        solo = &req[0].alts[0].posts[0];
    /* Clauses of one matcher each, on one segment each: the sum of their
     * block bounds changes only when one of them decodes a block. */
    bool bcache = true;
    for (size_t i = 0; i < nr && bcache; i++) {
        const s_matcher *m = &req[i].alts[0];
        bcache = req[i].na == 1;
        for (size_t k = 0; bcache && m->kind != A_PREFIX && k < m->np; k++)
            bcache = m->posts[k].nsub == 1;
    }
    /* A plain term or an AND of them, each on one segment, nothing to check
     * per doc: after a pruned doc, the docs up to the end of the first of the
     * clauses' current blocks to end are counted by s_window_count (while
     * they are pruned too) instead of one by one. */
    bool window = nr >= 1 && nr <= S_WIN_CLAUSES && bcache && !run->nneg && !run->nskip &&
                  !run->site && !run->cat && !run->since && !run->until && !fc && !run->has_cursor;
    for (size_t i = 0; i < nr && window; i++) {
        const s_matcher *m = &req[i].alts[0];
        window = m->kind == A_TERM && !m->title_only;
    }
    uint64_t bepoch = UINT64_MAX;
    double bsum = 0;
    uint64_t d = 0;
    size_t si = 0;
    for (;;) {
        d = s_cl_advance(&req[0], d);
        if (d == S_NOMORE)
            break;
        if (solo && h->n == h->cap && h->e[0].tier == run->tier && run->nfound >= run->found_cap) {
            s_sub *s = &solo->subs[solo->cur];
            /* (docs[n - 1] >= d: a corrupt block whose ids fall behind d
             * would send d back, and the loop would never end) */
            if (!s->check && s->docs[s->n - 1] < solo->other && s->docs[s->n - 1] >= d &&
                s_post_bound(c, solo, false) < h->e[0].score) {
                *total += s->n - s->i;
                *after_cursor += s->n - s->i;
                d = s->docs[s->n - 1] + 1;
                continue;
            }
        }
        size_t k = 1;
        while (k < nr) {
            uint64_t x = s_cl_advance(&req[k], d);
            if (x == S_NOMORE)
                return 0;
            if (x != d) {
                d = s_cl_advance(&req[0], x);
                if (d == S_NOMORE)
                    return 0;
                k = 1;
                continue;
            }
            k++;
        }
        bool ok = true;
        for (size_t n = 0; n < run->nneg && ok; n++)
            if (s_cl_advance(&run->neg[n], d) == d)
                ok = false;
        while (ok && si < run->nskip && run->skip[si] < d)
            si++;
        if (ok && si < run->nskip && run->skip[si] == d)
            ok = false;
        bool col = false; /* slot read (the fields a filter or facet needs) */
        size_t slot = 0;
        uint32_t site = 0, cat = 0;
        if (ok && (run->site || run->cat || run->since || run->until || fc)) {
            slot = s_col(c, d);
            col = true;
            if (!idx_colchunk_u32(&c->cv, IDX_CF_LIVE, slot)) {
                ok = false;
            } else {
                site = idx_colchunk_u32(&c->cv, IDX_CF_SITE, slot);
                cat = idx_colchunk_u32(&c->cv, IDX_CF_CAT, slot);
                if ((run->site && site != run->site) || (run->cat && cat != run->cat))
                    ok = false;
                else if (run->since || run->until) {
                    int64_t pub = idx_colchunk_pub(&c->cv, slot);
                    ok = !(run->since && pub < run->since) && !(run->until && pub >= run->until);
                }
            }
        }
        if (ok) {
            (*total)++;
            if (fc && (s_facet_inc(&fc->cat, &fc->ncat, cat) || s_facet_inc(&fc->site, &fc->nsite, site)))
                return -1;
            if (run->found_cap) {
                if (run->nfound < run->found_cap)
                    run->found[run->nfound++] = d;
            }
            /* prune: can this doc beat the heap's worst? */
            bool full = h->n == h->cap;
            bool maybe = !full || run->has_cursor || h->e[0].tier > run->tier ||
                         (h->e[0].tier == run->tier && maxsum >= h->e[0].score);
            bool bpruned = !maybe; /* by a bound of the current blocks */
            if (maybe && full && !run->has_cursor && h->e[0].tier == run->tier) {
                double bound = 0; /* block-max: the current blocks' bounds */
                if (bcache && bepoch == s_blocks_decoded) {
                    bound = bsum;
                } else {
                    for (size_t i = 0; i < nr; i++)
                        bound += s_cl_bound(c, &req[i], false);
                    bsum = bound;
                    bepoch = s_blocks_decoded;
                }
                maybe = bound >= h->e[0].score;
                bpruned = !maybe;
                if (maybe) { /* the doc's own bound, before its column record */
                    bound = 0;
                    for (size_t i = 0; i < nr; i++)
                        bound += s_cl_bound(c, &req[i], true);
                    maybe = bound >= h->e[0].score;
                }
            }
            if (maybe) {
                if (!col)
                    slot = s_col(c, d);
                s_lens r = {idx_colchunk_u32(&c->cv, IDX_CF_LT, slot),
                            idx_colchunk_u32(&c->cv, IDX_CF_LB, slot)};
                s_ent e = {.tier = run->tier, .id = d, .pub = idx_colchunk_pub(&c->cv, slot), .score = 0};
                for (size_t i = 0; i < nr; i++)
                    e.score += s_cl_score(c, &req[i], &r);
                if (!run->has_cursor || s_better(&run->cursor, &e)) {
                    (*after_cursor)++;
                    s_heap_push(h, &e);
                }
            } else {
                (*after_cursor)++;
                if (window && run->nfound >= run->found_cap) {
                    bool plain = true; /* no dead docs to skip in the blocks */
                    for (size_t i = 0; i < nr && plain; i++)
                        plain = !req[i].alts[0].posts[0].subs[0].check;
                    if (plain) {
                        uint64_t n = s_window_count(c, req, nr, d, bpruned, h->e[0].score, &d);
                        *total += n;
                        *after_cursor += n;
                    }
                }
            }
        }
        d++;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */

int idx__u64cmp(const void *a, const void *b);

typedef struct {
    s_post *posts;
    size_t nposts;
    size_t hid0, nhid; /* posts[hid0 ..) are the s_qterm.hlen bigrams, by term */
    s_matcher *ms;
    size_t nms;
    uint64_t **lists;
    size_t nlists;
} s_pool;

typedef struct {
    uint16_t off, len;
} s_tref;

static _Thread_local const char *s_tref_base;

static int s_tref_cmp(const void *a, const void *b) {
    const s_tref *x = a, *y = b;
    size_t l = x->len < y->len ? x->len : y->len;
    int c = memcmp(s_tref_base + x->off, s_tref_base + y->off, l);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* The distinct lexicon terms starting with pre (stems / CJK terms) or with
 * TEXT_EXACT_PREFIX + pre (exact forms), over all segments. *out is a
 * malloc'd arena of [u16 len][bytes] records. Returns the count, or -1 with
 * res set (too many terms), -2 on an LMDB/memory error. */
static long s_lex_prefix(idx *self, MDB_txn *txn, const idx_segs *segs, const char *pre, size_t pl,
                         char **out, size_t *outlen, idx_result *res) {
    MDB_cursor *lc;
    if (mdb_cursor_open(txn, self->lex, &lc))
        return -2;
    idx_bytes ar = {0};
    s_tref *refs = NULL;
    size_t nref = 0, cap = 0;
    long ret = 0;
    for (size_t si = 0; si < segs->nsegs && ret == 0; si++) {
        for (int pass = 0; pass < 2 && ret == 0; pass++) {
            uint8_t kb[IDX_TERM_MAX + 8];
            size_t kl = 0;
            if (pass == 1)
                kb[kl++] = TEXT_EXACT_PREFIX;
            memcpy(kb + kl, pre, pl);
            kl += pl;
            idx_lexit it;
            int rc = idx_lexit_seek(&it, lc, segs->seg[si].id, kb, kl);
            while (rc == 0 && !it.eof && it.tl >= kl && memcmp(it.term, kb, kl) == 0) {
                if (nref >= (size_t)IDX_PREFIX_MAX_TERMS * 4) { /* bounds the work */
                    ret = -1;
                    break;
                }
                size_t tl = it.tl;
                if (nref == cap) {
                    s_tref *n = grow(refs, &cap, sizeof *n, 256);
                    if (!n) {
                        ret = -2;
                        break;
                    }
                    refs = n;
                }
                if (ar.len + tl > UINT16_MAX || idx_bytes_reserve(&ar, tl)) {
                    ret = ar.len + tl > UINT16_MAX ? -1 : -2;
                    break;
                }
                refs[nref++] = (s_tref){(uint16_t)ar.len, (uint16_t)tl};
                memcpy(ar.p + ar.len, it.term, tl);
                ar.len += tl;
                rc = idx_lexit_next(&it);
            }
            if (rc && ret == 0)
                ret = -2;
        }
    }
    mdb_cursor_close(lc);
    size_t u = 0;
    if (ret == 0) {
        s_tref_base = (const char *)ar.p;
        if (nref) /* qsort(NULL, 0, ...) is undefined */
            qsort(refs, nref, sizeof *refs, s_tref_cmp);
        for (size_t i = 0; i < nref; i++)
            if (!u || s_tref_cmp(&refs[u - 1], &refs[i]) != 0)
                refs[u++] = refs[i];
        if (u > IDX_PREFIX_MAX_TERMS)
            ret = -1;
    }
    if (ret == -1)
        s_fail(res, IDX_INVALID_ARGUMENT, -1, "prefix '%.*s*' matches more than %d terms: make it longer",
               (int)pl, pre, IDX_PREFIX_MAX_TERMS);
    char *o = NULL;
    size_t ol = 0;
    if (ret == 0 && !(o = malloc(ar.len + 2 * u + 1)))
        ret = -2;
    for (size_t i = 0; ret == 0 && i < u; i++) {
        memcpy(o + ol, &refs[i].len, 2);
        memcpy(o + ol + 2, ar.p + refs[i].off, refs[i].len);
        ol += 2u + refs[i].len;
    }
    free(refs);
    idx_bytes_free(&ar);
    if (ret) {
        free(o);
        return ret;
    }
    *out = o;
    *outlen = ol;
    return (long)u;
}

static int s_prefix_list(idx *self, MDB_txn *txn, const idx_segs *segs, const char *pre, size_t pl,
                         s_matcher *m, idx_result *res) {
    char *terms;
    size_t tlen;
    long nt = s_lex_prefix(self, txn, segs, pre, pl, &terms, &tlen, res);
    if (nt == -1)
        return IDX_INVALID_ARGUMENT;
    if (nt < 0)
        return IDX_INTERNAL;
    size_t cap = 1024, n = 0;
    uint64_t *list = malloc(cap * sizeof *list);
    int code = list ? IDX_OK : IDX_INTERNAL;
    for (size_t off = 0; off < tlen && code == IDX_OK;) {
        uint16_t tl;
        memcpy(&tl, terms + off, 2);
        const uint8_t *tk = (const uint8_t *)terms + off + 2;
        off += 2u + tl;
        s_post p;
        if (s_post_open(&p, self, txn, segs, tk, tl)) {
            s_post_close(&p);
            code = IDX_INTERNAL;
            break;
        }
        for (uint64_t d = s_post_advance(&p, 0); d != S_NOMORE; d = s_post_advance(&p, d + 1)) {
            if (n == cap) {
                uint64_t *nl = grow(list, &cap, sizeof *nl, 1024);
                if (!nl) {
                    code = IDX_INTERNAL;
                    break;
                }
                list = nl;
            }
            list[n++] = d;
        }
        if (p.err)
            code = IDX_INTERNAL;
        s_post_close(&p);
    }
    free(terms);
    if (code) {
        free(list);
        return code;
    }
    /* sort + unique */
    qsort(list, n, sizeof *list, idx__u64cmp);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (!u || list[u - 1] != list[i])
            list[u++] = list[i];
    m->list = list;
    m->nlist = u;
    return IDX_OK;
}

int idx__u64cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The typo scan: the terms of a slice (idx_terms.h: the segment's terms
 * with the word's first two bytes, a trie in memory) within Levenshtein
 * distance max of the query word w, found by a depth-first walk of the trie
 * that keeps one row of the distance matrix per depth: a node's row comes
 * from its parent's and its byte. When no cell of a node's row is within
 * max, no term below it can be: the walk goes on after its subtree (the
 * node's subtree size), so it visits the live prefixes and their children
 * only — the Levenshtein automaton intersected with the term trie, without
 * the seeks a sorted list needs. Distances on bytes.
 *
 * A row is bit-parallel (Wu-Manber, banded as in Hyyrö's): only the band of
 * cells j (w's first j bytes) with |j - k| <= max can be within max in row k
 * (the term's first k bytes), and the row is max + 1 masks of that band's
 * 2 max + 1 cells, bit b for cell j = k - max + b: mask i has the cells <= i.
 * Reading byte c, cell j is <= i when the cell diagonally before is <= i and
 * w[j - 1] == c, or it or the cell above (pr[j]: bit b + 1 of the row
 * before) is <= i - 1, or the cell to its left in this row is <= i - 1. */
#define S_TYPO_LEN 64
typedef struct {
    size_t wl;
    int max;
    unsigned band;               /* the 2 max + 1 bits of a band */
    uint8_t valid[S_TYPO_LEN + 1];  /* row k's cells 0 <= j <= wl */
    uint8_t row[S_TYPO_LEN + 1][3]; /* row k's masks 0..max */
    uint64_t pos[256];           /* bit p: w[p] is this byte */
} s_typo_scan;

static void s_typo_init(s_typo_scan *ts, const char *w, size_t wl, int max) {
    ts->wl = wl;
    ts->max = max;
    ts->band = (1u << (2 * max + 1)) - 1;
    memset(ts->pos, 0, sizeof ts->pos);
    for (size_t p = 0; p < wl && p < 64; p++)
        ts->pos[(uint8_t)w[p]] |= 1ull << p;
    for (size_t k = 0; k <= S_TYPO_LEN; k++) { /* bits b with 0 <= k - max + b <= wl */
        unsigned v = 0;
        for (int b = 0; b <= 2 * max; b++) {
            long j = (long)k - max + b;
            if (j >= 0 && j <= (long)wl)
                v |= 1u << b;
        }
        ts->valid[k] = (uint8_t)v;
    }
    for (int i = 0; i <= max; i++) /* row 0: cell j is j */
        ts->row[0][i] = (uint8_t)((((1u << (i + 1)) - 1) << max) & ts->valid[0]);
}

/* Row k (1 <= k <= S_TYPO_LEN) from row k - 1 and the term's byte k - 1,
 * given as eq: bit b set when w[k - d + b - 1] is that byte (the diagonal
 * into cell k - d + b); d is ts->max (a constant where inlined). False when
 * no cell is within d (no term with this prefix is within reach; the row is
 * then not to be used). */
static inline __attribute__((always_inline)) bool s_typo_step(s_typo_scan *ts, size_t k, unsigned eq,
                                                              const int d) {
    const uint8_t *pr = ts->row[k - 1];
    uint8_t *r = ts->row[k];
    const unsigned vm = ts->valid[k];
    unsigned cur = pr[0] & eq & vm;
    r[0] = (uint8_t)cur;
    for (int i = 1; i <= d; i++) {
        unsigned up = pr[i - 1];
        cur = ((pr[i] & eq) | up | up >> 1 | cur << 1) & vm;
        r[i] = (uint8_t)cur;
    }
    return cur != 0;
}

/* s_typo_step for byte tc at any k >= 1. */
static bool s_typo_row(s_typo_scan *ts, size_t k, uint8_t tc) {
    const int sh = (int)k - ts->max - 1;
    const uint64_t pc = ts->pos[tc];
    unsigned eq = (unsigned)(sh >= 0 ? pc >> sh : pc << -sh) & ts->band;
    return s_typo_step(ts, k, eq, ts->max);
}

/* Distance (max + 1 when above max) of the term of length k whose rows
 * 1..k are computed. */
static inline int s_typo_end(const s_typo_scan *ts, size_t k) {
    long b = (long)ts->wl - (long)k + ts->max; /* cell wl's bit */
    if (b < 0 || b > 2 * ts->max)
        return ts->max + 1;
    int i = 0;
    while (i <= ts->max && !(ts->row[k][i] >> b & 1u))
        i++;
    return i;
}

typedef struct {
    char key[IDX_TERM_MAX + 1];
    uint16_t klen;
    int dist;
    uint64_t df;
} s_cand;

static int s_stem_cb(void *ud, const text_token *t) {
    s_cand *c = ud;
    if (t->kind != TEXT_TERM_STEM)
        return 0;
    c->klen = (uint16_t)idx_term_key(t->term, t->len, (uint8_t *)c->key);
    return 1;
}

/* Terms already weighed for a typo, across segments (a frequent term is in
 * most of them): 64-bit hashes in an epoch-stamped table, no clearing. */
#define S_SEEN_SLOTS 16384
typedef struct {
    uint64_t h[S_SEEN_SLOTS];
    uint32_t epoch[S_SEEN_SLOTS];
    uint32_t cur, n;
} s_seen;

static _Thread_local s_seen s_seen_g;

static void s_seen_reset(void) {
    if (++s_seen_g.cur == 0) {
        memset(s_seen_g.epoch, 0, sizeof s_seen_g.epoch);
        s_seen_g.cur = 1;
    }
    s_seen_g.n = 0;
}

/* true when t was seen already (and records it otherwise) */
static bool s_seen_test(const char *t, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)t[i]) * 1099511628211ull;
    if (s_seen_g.n >= S_SEEN_SLOTS / 2)
        return false; /* full: weigh everything */
    for (size_t i = h & (S_SEEN_SLOTS - 1);; i = (i + 1) & (S_SEEN_SLOTS - 1)) {
        if (s_seen_g.epoch[i] != s_seen_g.cur) {
            s_seen_g.epoch[i] = s_seen_g.cur;
            s_seen_g.h[i] = h;
            s_seen_g.n++;
            return false;
        }
        if (s_seen_g.h[i] == h)
            return true;
    }
}

/* Term tb[0..tl) (TEXT_EXACT_PREFIX first for an exact form) is at distance
 * dd (capped at maxd + 1) of atom a's word: its stem joins the candidates
 * cands[0..*nc) (at most 32) unless it is the word's own, one of them
 * already, weighed in a segment before, or in no document. */
static void s_typo_found(idx *self, MDB_txn *txn, const idx_segs *segs, const s_query *q,
                         const s_atom *a, int maxd, const uint8_t *tb, size_t tl, int dd,
                         s_cand *cands, size_t *nc) {
    if (dd <= maxd && maxd > 1 && segs->nsegs > 1 && s_seen_test((const char *)tb, tl))
        return; /* weighed in a segment before */
    if (dd <= 0 || dd > maxd)
        return;
    size_t off = tb[0] == (uint8_t)TEXT_EXACT_PREFIX;
    s_cand cd = {.dist = dd};
    /* the scoring term is the stem of the surface */
    text_analyze(self->an, (const char *)tb + off, tl - off, 0, s_stem_cb, &cd, NULL);
    const s_qterm *own = &q->terms[a->t0];
    bool dup = cd.klen == own->len && memcmp(cd.key, q->arena + own->off, cd.klen) == 0;
    for (size_t x = 0; x < *nc && !dup; x++)
        dup = cands[x].klen == cd.klen && memcmp(cands[x].key, cd.key, cd.klen) == 0;
    if (!dup && cd.klen && (cd.df = s_lex_df(self, txn, segs, (uint8_t *)cd.key, cd.klen)) > 0) {
        if (*nc < 32)
            cands[(*nc)++] = cd;
    }
}

/* Bytes of a slice's nodes prefetched before its walk (all of them up to
 * this: 99% of the slices the en bench and misspelled queries walk). */
#define S_TYPO_PREFETCH (128u << 10)

/* The walk's node loads depend on each other (a node's subtree size leads
 * to the next one read) and mostly miss: the nodes a query's slices hold
 * were last read queries ago. Asked for all at once, the misses overlap. */
static void s_tslice_prefetch(const idx_tslice *sl) {
    size_t n = (size_t)sl->nn * sizeof *sl->node;
    if (n > S_TYPO_PREFETCH)
        n = S_TYPO_PREFETCH;
    for (size_t o = 0; o < n; o += 64)
        __builtin_prefetch((const char *)sl->node + o);
}

/* The walk of slice sl for the word of ts (max d, a constant where
 * inlined): rows 1 and 2 are computed (the slice's prefix), tb holds the
 * slice's prefix (TEXT_EXACT_PREFIX first when off is 1). Every term within
 * d goes to s_typo_found, in order. */
static inline __attribute__((always_inline)) void s_typo_walk(idx *self, MDB_txn *txn, const idx_segs *segs,
                                                              const s_query *q, const s_atom *a, s_typo_scan *ts,
                                                              const idx_tslice *sl, uint8_t *tb, size_t off,
                                                              const int d, s_cand *cands, size_t *nc) {
    const unsigned band = ts->band;
    for (uint32_t i = 0; i < sl->nn;) {
        uint32_t v = sl->node[i];
        size_t k = 2 + idx_tnode_depth(v); /* bytes of the term up to this node, >= 3 */
        uint8_t c = (uint8_t)idx_tnode_byte(v);
        if (k > S_TYPO_LEN || !s_typo_step(ts, k, (unsigned)(ts->pos[c] >> (k - d - 1)) & band, d)) {
            i = idx_tslice_skip(sl, i); /* nothing below it is within reach */
            continue;
        }
        tb[off + k - 1] = c;
        if (idx_tnode_end(v))
            s_typo_found(self, txn, segs, q, a, d, tb, off + k, s_typo_end(ts, k), cands, nc);
        i++;
    }
}

/* Add typo alternatives to eligible TERM atoms. Returns how many were added.
 * Not inlined: profiles (callgrind --toggle-collect=s_add_typos) see it whole. */
__attribute__((noinline)) static int s_add_typos(idx *self, MDB_txn *txn, const idx_segs *segs, s_query *q) {
    int added = 0;
    /* Term lists are kept only from committed segments: a write txn's new
     * segment may still be aborted, and its id then used again (its txn id
     * is above the last committed one; a read txn's is not). */
    MDB_envinfo ei;
    bool keep = mdb_env_info(mdb_txn_env(txn), &ei) == 0 && mdb_txn_id(txn) <= ei.me_last_txnid;
    if (keep) {
        if (!self->terms)
            self->terms = idx_terms_new(0); /* NULL: each scan reads its slices */
        idx_terms_retain(self->terms, segs);
    }
    size_t natoms0 = q->natoms;
    for (size_t ai = 0; ai < natoms0; ai++) {
        s_atom *a = &q->atoms[ai];
        if (!a->typo_ok || q->clauses[a->clause].neg)
            continue;
        const char *w = q->arena + a->poff;
        size_t wl = a->plen;
        int maxd = s_utf8_chars(w, wl) >= 9 ? 2 : 1;
        if (wl > S_TYPO_LEN)
            continue; /* s_typo_row finds nothing within reach of it */
        s_cand cands[32];
        size_t nc = 0;
        s_typo_scan ts;
        MDB_cursor *lc;
        if (mdb_cursor_open(txn, self->lex, &lc))
            return added;
        s_seen_reset();
        s_typo_init(&ts, w, wl, maxd); /* row 0, the same for every slice */
        for (int pass = 0; pass < 2 * (int)segs->nsegs; pass++) {
            /* candidates share the first two bytes (a typo there is not found):
             * this keeps the scan to a small slice of each segment's lexicon */
            uint8_t kb[3];
            size_t kl = 0;
            if (pass % 2)
                kb[kl++] = TEXT_EXACT_PREFIX;
            kb[kl++] = (uint8_t)w[0];
            kb[kl++] = (uint8_t)w[1];
            idx_tslice *sl;
            bool owned;
            if (idx_terms_slice(self->terms, lc, &segs->seg[pass / 2], kb, kl, keep, &sl, &owned))
                continue;
            /* the term being walked: the slice's prefix (kb), then the path
             * to the current node; t is it as compared with w (no
             * TEXT_EXACT_PREFIX), its first two bytes w's own (rows 1, 2) */
            uint8_t tb[S_TYPO_LEN + 1];
            memcpy(tb, kb, kl);
            const size_t off = kl - 2;
            const uint8_t *t = tb + off;
            bool live = s_typo_row(&ts, 1, t[0]) && s_typo_row(&ts, 2, t[1]); /* (always) */
            if (live)
                s_tslice_prefetch(sl);
            if (live && sl->root)
                s_typo_found(self, txn, segs, q, a, maxd, tb, kl, s_typo_end(&ts, 2), cands, &nc);
            if (live && maxd == 1)
                s_typo_walk(self, txn, segs, q, a, &ts, sl, tb, off, 1, cands, &nc);
            else if (live)
                s_typo_walk(self, txn, segs, q, a, &ts, sl, tb, off, 2, cands, &nc);
            if (owned)
                idx_tslice_free(&sl);
        }
        mdb_cursor_close(lc);
        /* closest first, then most frequent */
        for (size_t x = 1; x < nc; x++)
            for (size_t y = x; y > 0 && (cands[y].dist < cands[y - 1].dist ||
                                         (cands[y].dist == cands[y - 1].dist &&
                                          cands[y].df > cands[y - 1].df)); y--) {
                s_cand t = cands[y];
                cands[y] = cands[y - 1];
                cands[y - 1] = t;
            }
        s_clause *cl = &q->clauses[a->clause];
        for (size_t x = 0; x < nc && x < S_TYPO_ALTS; x++) {
            if (q->natoms >= sizeof q->atoms / sizeof q->atoms[0] ||
                q->nterms >= sizeof q->terms / sizeof q->terms[0])
                break;
            int off = s_arena_put(q, cands[x].key, cands[x].klen);
            if (off < 0)
                break;
            s_qterm *t = &q->terms[q->nterms];
            t->off = (uint16_t)off;
            t->len = cands[x].klen;
            t->rel = 0;
            t->need_exact = 0;
            s_atom *na = &q->atoms[q->natoms];
            memset(na, 0, sizeof *na);
            na->kind = A_TERM;
            na->title_only = a->title_only;
            na->t0 = (uint16_t)q->nterms++;
            na->nt = 1;
            na->clause = a->clause;
            q->natoms++;
            cl->na++; /* alternates are found by clause index, see s_build */
            added++;
        }
    }
    return added;
}

/* Build matchers and clauses for the query. */
static int s_build(idx *self, MDB_txn *txn, s_query *q, s_ctx *c, s_pool *pool, s_cl *cls,
                   size_t *ncls, idx_result *res) {
    pool->posts = calloc(2 * q->nterms + 1, sizeof(s_post)); /* then the s_qterm.hlen bigrams */
    pool->hid0 = q->nterms;
    pool->nhid = q->nterms;
    pool->ms = calloc(q->natoms + 1, sizeof(s_matcher));
    if (!pool->posts || !pool->ms)
        return IDX_INTERNAL;
    size_t mi = 0;
    *ncls = 0;
    for (size_t ci = 0; ci < q->nclauses; ci++) {
        s_cl *cl = &cls[(*ncls)++];
        memset(cl, 0, sizeof *cl);
        cl->neg = q->clauses[ci].neg;
        cl->alts = &pool->ms[mi];
        for (size_t ai = 0; ai < q->natoms; ai++) {
            s_atom *a = &q->atoms[ai];
            if (a->clause != (int)ci)
                continue;
            s_matcher *m = &pool->ms[mi++];
            pool->nms = mi;
            cl->na++;
            m->kind = a->kind;
            m->title_only = a->title_only;
            if (a->kind == A_PREFIX) {
                int rc = s_prefix_list(self, txn, &c->segs, q->arena + a->poff, a->plen, m, res);
                if (rc)
                    return rc;
                m->maxscore = 1.0;
                cl->cost += m->nlist;
                continue;
            }
            m->posts = &pool->posts[pool->nposts];
            m->hid = &pool->posts[pool->hid0 + a->t0];
            m->qt = &q->terms[a->t0];
            m->np = a->nt;
            uint64_t mincost = UINT64_MAX;
            for (size_t k = 0; k < a->nt; k++) {
                s_post *p = &pool->posts[pool->nposts++];
                const s_qterm *t = &q->terms[a->t0 + k];
                if (s_post_open(p, self, txn, &c->segs, (const uint8_t *)q->arena + t->off, t->len))
                    return IDX_INTERNAL;
                if (a->kind == A_PHRASE && t->hlen && s_post_open(&m->hid[k], self, txn, &c->segs,
                                           (const uint8_t *)q->arena + t->hoff, t->hlen))
                    return IDX_INTERNAL;
                p->idf = s_idf(c->N, (double)p->df);
                m->maxscore += p->idf * (c->k1 + 1) * (c->wt + (a->title_only ? 0 : 1));
                if (p->df < mincost)
                    mincost = p->df;
            }
            cl->cost += mincost;
        }
        for (size_t k = 0; k < cl->na; k++)
            cl->maxscore += cl->alts[k].maxscore;
    }
    return IDX_OK;
}

static void s_pool_free(s_pool *pool) {
    for (size_t i = 0; i < pool->nposts; i++)
        s_post_close(&pool->posts[i]);
    for (size_t i = 0; i < pool->nhid && pool->posts; i++)
        s_post_close(&pool->posts[pool->hid0 + i]);
    for (size_t i = 0; i < pool->nms; i++)
        free(pool->ms[i].list);
    free(pool->posts);
    free(pool->ms);
    memset(pool, 0, sizeof *pool);
}

static int s_cl_cost_cmp(const void *a, const void *b) {
    const s_cl *x = a, *y = b;
    return x->cost < y->cost ? -1 : x->cost > y->cost;
}

static int s_facet_out(idx *self, MDB_txn *txn, char kind, const uint64_t *cnt, size_t n,
                       idx_facet **out, size_t *nout) {
    size_t k = 0;
    for (size_t i = 1; i < n; i++)
        k += cnt[i] != 0;
    *out = calloc(k ? k : 1, sizeof **out);
    if (!*out)
        return -1;
    *nout = 0;
    for (size_t i = 1; i < n; i++) {
        if (!cnt[i])
            continue;
        char name[512];
        if (idx_dict_name(self, txn, kind, (uint32_t)i, name, sizeof name) < 0)
            continue;
        idx_facet *f = &(*out)[(*nout)++];
        f->value = strdup(name);
        f->count = cnt[i];
        if (!f->value)
            return -1;
    }
    for (size_t x = 1; x < *nout; x++)
        for (size_t y = x; y > 0; y--) {
            idx_facet *a = &(*out)[y - 1], *b = &(*out)[y];
            if (a->count > b->count || (a->count == b->count && strcmp(a->value, b->value) <= 0))
                break;
            idx_facet t = *a;
            *a = *b;
            *b = t;
        }
    return 0;
}

static void s_cursor_encode(const s_ent *e, uint8_t *out) {
    out[0] = 1; /* version */
    out[1] = e->tier;
    uint64_t sb;
    memcpy(&sb, &e->score, 8);
    idx_be64(out + 2, sb);
    idx_be64(out + 10, (uint64_t)e->pub);
    idx_be64(out + 18, e->id);
}

static int s_cursor_decode(const uint8_t *in, size_t n, s_ent *e) {
    if (n != IDX_CURSOR_LEN || in[0] != 1 || in[1] > 1)
        return -1;
    e->tier = in[1];
    uint64_t sb = idx_get_be64(in + 2);
    memcpy(&e->score, &sb, 8);
    if (!isfinite(e->score))
        return -1;
    e->pub = (int64_t)idx_get_be64(in + 10);
    e->id = idx_get_be64(in + 18);
    return 0;
}

static int s_collect_terms(s_query *q, idx_result *r) {
    size_t n = 0, np = 0;
    for (size_t i = 0; i < q->natoms; i++) {
        if (q->clauses[q->atoms[i].clause].neg)
            continue;
        if (q->atoms[i].kind == A_PREFIX)
            np++;
        else
            n += q->atoms[i].nt;
    }
    r->terms = calloc(n + 1, sizeof(char *));
    r->term_lens = calloc(n + 1, sizeof(uint32_t));
    r->prefixes = calloc(np + 1, sizeof(char *));
    r->prefix_lens = calloc(np + 1, sizeof(uint32_t));
    if (!r->terms || !r->term_lens || !r->prefixes || !r->prefix_lens)
        return -1;
    for (size_t i = 0; i < q->natoms; i++) {
        s_atom *a = &q->atoms[i];
        if (q->clauses[a->clause].neg)
            continue;
        if (a->kind == A_PREFIX) {
            char *s = malloc(a->plen + 1u);
            if (!s)
                return -1;
            memcpy(s, q->arena + a->poff, a->plen);
            s[a->plen] = 0;
            r->prefix_lens[r->nprefixes] = a->plen;
            r->prefixes[r->nprefixes++] = s;
            continue;
        }
        for (size_t k = 0; k < a->nt; k++) {
            const s_qterm *t = &q->terms[a->t0 + k];
            char *s = malloc(t->len + 1u);
            if (!s)
                return -1;
            memcpy(s, q->arena + t->off, t->len);
            s[t->len] = 0;
            r->term_lens[r->nterms] = t->len;
            r->terms[r->nterms++] = s;
        }
    }
    return 0;
}

/* One evaluation pass over the current query. */
static int s_pass(idx *self, MDB_txn *txn, s_query *q, s_ctx *c, s_run *run, s_heap *h,
                  s_facets *fc, uint64_t *total, uint64_t *after, idx_result *res) {
    s_pool pool = {0};
    s_cl cls[S_MAX_ATOMS + 1];
    size_t ncls;
    int code = s_build(self, txn, q, c, &pool, cls, &ncls, res);
    if (code) {
        s_pool_free(&pool);
        return code;
    }
    /* tag filter as one more required clause */
    s_post tagp;
    s_matcher tagm;
    s_qterm tagqt = {0};
    bool has_tag = q->has_tag;
    uint8_t tagkey[IDX_TERM_MAX + 1];
    if (has_tag) {
        char tbuf[600];
        size_t tl = strlen(q->tag);
        memcpy(tbuf, IDX_TAG_PREFIX, 2);
        memcpy(tbuf + 2, q->tag, tl);
        size_t kl = idx_term_key(tbuf, tl + 2, tagkey);
        if (s_post_open(&tagp, self, txn, &c->segs, tagkey, kl)) {
            s_post_close(&tagp);
            s_pool_free(&pool);
            return IDX_INTERNAL;
        }
        memset(&tagm, 0, sizeof tagm);
        tagm.kind = A_TERM;
        tagm.filter = true;
        tagm.posts = &tagp;
        tagm.qt = &tagqt;
        tagm.np = 1;
        s_cl *cl = &cls[ncls++];
        memset(cl, 0, sizeof *cl);
        cl->alts = &tagm;
        cl->na = 1;
        cl->cost = tagp.df;
    }
    s_cl req[S_MAX_ATOMS + 1], neg[S_MAX_ATOMS];
    run->nreq = run->nneg = 0;
    for (size_t i = 0; i < ncls; i++) {
        if (cls[i].neg)
            neg[run->nneg++] = cls[i];
        else
            req[run->nreq++] = cls[i];
    }
    qsort(req, run->nreq, sizeof *req, s_cl_cost_cmp);
    run->req = req;
    run->neg = neg;
    code = s_evaluate(c, run, h, fc, total, after) ? IDX_INTERNAL : IDX_OK;
    for (size_t i = 0; i < pool.nposts && !code; i++)
        if (pool.posts[i].err)
            code = IDX_INTERNAL;
    if (has_tag)
        s_post_close(&tagp);
    s_pool_free(&pool);
    return code;
}

int idx_search(idx *self, MDB_txn *txn, const idx_query *qq, idx_result *res) {
    memset(res, 0, sizeof *res);
    res->error_pos = -1;
    if (!self || !txn || !qq)
        return s_fail(res, IDX_INVALID_ARGUMENT, -1, "missing argument");
    uint32_t limit = qq->limit ? qq->limit : 10;
    if (limit > IDX_LIMIT_MAX)
        return s_fail(res, IDX_INVALID_ARGUMENT, -1, "limit above %d", IDX_LIMIT_MAX);
    if ((uint64_t)qq->offset + limit > IDX_WINDOW_MAX)
        return s_fail(res, IDX_INVALID_ARGUMENT, -1, "offset + limit above %d", IDX_WINDOW_MAX);
    s_run run = {0};
    MDB_cursor *colc = NULL; /* s_col's */
    if (qq->cursor_len) {
        if (qq->offset)
            return s_fail(res, IDX_INVALID_ARGUMENT, -1, "give a cursor or an offset, not both");
        if (s_cursor_decode(qq->cursor, qq->cursor_len, &run.cursor))
            return s_fail(res, IDX_INVALID_ARGUMENT, -1, "malformed cursor");
        run.has_cursor = true;
    }
    /* ~70 KiB, not zeroed: the parser writes each term, atom and clause
     * before it reads it, so only the counts and the filters start empty */
    s_query *q = malloc(sizeof *q);
    if (!q)
        return s_fail(res, IDX_INTERNAL, -1, "out of memory");
    q->alen = q->nterms = q->natoms = q->nclauses = 0;
    q->site[0] = q->cat[0] = q->tag[0] = '\0';
    q->has_site = q->has_cat = q->has_tag = false;
    s_lex_begin(true);
    int code = s_parse(self, qq->query ? qq->query : "", q, res);
    if (code)
        goto out;
    /* filters from fields (the query's own filters must agree) */
    const char *fs[3] = {qq->site, qq->category, qq->tag};
    char *qs[3] = {q->site, q->cat, q->tag};
    bool *has[3] = {&q->has_site, &q->has_cat, &q->has_tag};
    for (int i = 0; i < 3; i++) {
        if (!fs[i] || !*fs[i])
            continue;
        if (strlen(fs[i]) >= 512) {
            code = s_fail(res, IDX_INVALID_ARGUMENT, -1, "filter value too long");
            goto out;
        }
        if (*has[i] && strcmp(qs[i], fs[i]) != 0) {
            res->total = 0; /* contradictory filters: nothing matches */
            goto terms;
        }
        strcpy(qs[i], fs[i]);
        *has[i] = true;
    }
    s_ctx c = {.self = self, .txn = txn, .k1 = self->k1, .b = self->b, .wt = self->wt,
               .colc = &colc};
    idx_meta_stats st;
    if (idx_meta_get(self, txn, &st)) {
        code = s_fail(res, IDX_INTERNAL, -1, "cannot read index stats");
        goto out;
    }
    if (idx_segs_get(self, txn, &c.segs)) {
        code = s_fail(res, IDX_INTERNAL, -1, "cannot read index segments");
        goto out;
    }
    c.N = (double)st.docs;
    c.avg_t = st.docs && st.sum_t ? (double)st.sum_t / (double)st.docs : 1.0;
    c.avg_b = st.docs && st.sum_b ? (double)st.sum_b / (double)st.docs : 1.0;
    if (q->has_site && !(run.site = idx_dict_lookup(self, txn, 's', q->site)))
        goto terms; /* unknown site: nothing matches */
    if (q->has_cat && !(run.cat = idx_dict_lookup(self, txn, 'c', q->cat)))
        goto terms;
    run.since = qq->since;
    run.until = qq->until;
    s_heap h = {.cap = (size_t)qq->offset + limit};
    h.e = malloc(h.cap * sizeof *h.e);
    s_facets fc = {0};
    uint64_t total = 0, after = 0;
    if (!h.e) {
        code = s_fail(res, IDX_INTERNAL, -1, "out of memory");
        goto out;
    }
    bool want_typos = self->typos;
    uint64_t found[IDX_LIMIT_MAX];
    run.found = found;
    run.found_cap = want_typos ? limit : 0;
    code = s_pass(self, txn, q, &c, &run, &h, qq->facets ? &fc : NULL, &total, &after, res);
    if (!code && want_typos && total < limit && s_add_typos(self, txn, &c.segs, q) > 0) {
        /* second pass: typo alternatives, exact hits skipped, ranked below */
        qsort(found, run.nfound, sizeof *found, idx__u64cmp);
        run.skip = found;
        run.nskip = run.nfound;
        run.found_cap = 0;
        run.tier = 1;
        code = s_pass(self, txn, q, &c, &run, &h, qq->facets ? &fc : NULL, &total, &after, res);
    }
    if (code) {
        if (!res->error[0])
            s_fail(res, code, -1, "index read failed");
        free(h.e);
        free(fc.cat);
        free(fc.site);
        goto out;
    }
    qsort(h.e, h.n, sizeof *h.e, s_ent_cmp);
    size_t skip = qq->offset < h.n ? qq->offset : h.n;
    res->nhits = h.n - skip;
    res->hits = calloc(res->nhits + 1, sizeof *res->hits);
    if (!res->hits) {
        free(h.e);
        code = s_fail(res, IDX_INTERNAL, -1, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < res->nhits; i++) {
        const s_ent *e = &h.e[skip + i];
        res->hits[i] = (idx_hit){.id = e->id, .score = e->score, .published_at = e->pub,
                                 .typo = e->tier != 0};
    }
    res->total = total;
    if (res->nhits && after > (uint64_t)qq->offset + res->nhits) {
        s_cursor_encode(&h.e[skip + res->nhits - 1], res->next_cursor);
        res->next_cursor_len = IDX_CURSOR_LEN;
    }
    free(h.e);
    if (qq->facets && (s_facet_out(self, txn, 'c', fc.cat, fc.ncat, &res->categories, &res->ncategories) ||
                       s_facet_out(self, txn, 's', fc.site, fc.nsite, &res->sites, &res->nsites))) {
        free(fc.cat);
        free(fc.site);
        code = s_fail(res, IDX_INTERNAL, -1, "out of memory");
        goto out;
    }
    free(fc.cat);
    free(fc.site);
terms:
    if (s_collect_terms(q, res))
        code = s_fail(res, IDX_INTERNAL, -1, "out of memory");
out:
    s_lex_begin(false);
    if (colc)
        mdb_cursor_close(colc);
    free(q);
    return code;
}

void idx_result_free(idx_result *r) {
    if (!r)
        return;
    free(r->hits);
    for (size_t i = 0; i < r->ncategories; i++)
        free(r->categories[i].value);
    for (size_t i = 0; i < r->nsites; i++)
        free(r->sites[i].value);
    free(r->categories);
    free(r->sites);
    for (size_t i = 0; i < r->nterms; i++)
        free(r->terms[i]);
    for (size_t i = 0; i < r->nprefixes; i++)
        free(r->prefixes[i]);
    free(r->terms);
    free(r->term_lens);
    free(r->prefixes);
    free(r->prefix_lens);
    text_snippet_prep_free(&r->snip_prep);
    memset(r, 0, sizeof *r);
    r->error_pos = -1;
}

size_t idx_snippet(idx *self, idx_result *r, const char *body, size_t len,
                   const char *mark_open, const char *mark_close, char *out, size_t cap) {
    text_snippet_opts o = {
        .terms = (const char *const *)r->terms, .term_lens = r->term_lens, .nterms = r->nterms,
        .prefixes = (const char *const *)r->prefixes, .prefix_lens = r->prefix_lens,
        .nprefixes = r->nprefixes, .mark_open = mark_open, .mark_close = mark_close};
    if (!r->snip_prep) /* NULL again on failure: text_snippet then makes its own */
        r->snip_prep = text_snippet_prepare(&o);
    o.prep = r->snip_prep;
    return text_snippet(self->an, body, len, &o, out, cap);
}
