/*
 * idx.c: the write side of the index (open, put, del, flush, merge, clear,
 * stats).
 *
 * idx_put analyzes the article once (title and body as separate fields,
 * positions from 0 in each), interns every term in a per-batch hash table
 * and appends one pending entry per (term, doc) to that term's buffer.
 *
 * idx_flush writes the batch as a new SEGMENT (like Lucene's segments or
 * FTS5's levels): every key starts with the segment id, which is larger
 * than any before, so the whole flush is a sorted append (MDB_APPEND:
 * sequential, full pages) instead of a read-modify-write of one block per
 * distinct term scattered over the B-tree. A term's lexicon entry in a
 * segment holds its df DELTA (postings added minus doc versions removed),
 * so df = the sum over segments.
 *
 *   flush k:  seg 17 [a b c]  seg 18 [a c d]  ...  seg 24 [b d]
 *   merge:    when the newest IDX_MERGE_FACTOR segments have the same level
 *             (floor(log8(docs))), they are merged into one new segment
 *             (tiered, like FTS5's automerge), so a term lives in
 *             O(levels x factor) segments and each posting is rewritten
 *             O(levels) times.
 *
 * Removal (an update's old version, a delete) writes no posting: the doc's
 * column record says which flush ("generation") its postings come from;
 * postings of an older generation are stale, skipped at query time in
 * segments whose `dead` count is not 0, and dropped by the next merge. The
 * removed version's terms get a -1 in the batch's df deltas.
 *
 * The old version a caller passes must be the indexed one (its terms are
 * what the df deltas take back). The index keeps no copy or hash of the
 * content; the old version is checked against the doc's column record: its
 * published_at, site and category (their dictionary ids), and its title and
 * body lengths in tokens (from the analysis that finds its terms, before
 * anything changes). That catches another article's version, an older or
 * newer version of the same article with a different date, place or
 * length, and a missing old version; it does not catch a text changed
 * with the same token counts, or tags changed alone (their df would drift
 * until the next rebuild; search results stay right, postings of removed
 * versions are skipped by generation).
 */
#include "idx_int.h"
#include "idx_terms.h"

#include "arena.h"
#include "log.h"
#include "grow.h"

#include <errno.h>
#include <pthread.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
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

size_t idx_lex_key(uint32_t seg, const uint8_t *tk, size_t tklen, uint8_t *out) {
    idx_be32(out, seg);
    memcpy(out + 4, tk, tklen);
    return tklen + 4;
}

size_t idx_post_key(uint32_t seg, const uint8_t *tk, size_t tklen, uint64_t docid, uint8_t *out) {
    idx_be32(out, seg);
    memcpy(out + 4, tk, tklen);
    out[4 + tklen] = 0;
    idx_be32(out + tklen + 5, docid > IDX_ID_MAX ? IDX_ID_MAX : (uint32_t)docid);
    return tklen + IDX_POST_KEY_EXTRA;
}

const uint8_t *idx_block_head(const uint8_t *p, const uint8_t *end, idx_bhead *h, bool ef) {
    if (!(p = idx_varint_get(p, end, &h->n)) || h->n > IDX_BLOCK_DOCS)
        return NULL;
    h->one = h->n == 0;
    h->derive = ef && h->n > 1 && h->n <= IDX_HEAD_NOMAX;
    if (h->derive)
        h->maxt = h->maxb = 0;
    if (h->one) {
        h->n = 1;
        h->maxt = 0;
        h->maxb = 1;
    }
    if ((h->n > 1 && !h->derive && !(p = idx_tf_get(p, end, &h->maxt, &h->maxb))) ||
        !(p = idx_varint_get(p, end, &h->minlt)) || !(p = idx_varint_get(p, end, &h->minlb)))
        return NULL;
    /* one doc: its frequencies (read, not consumed) are the largest */
    if (h->n == 1 && !h->one && !idx_tf_get(p, end, &h->maxt, &h->maxb))
        return NULL;
    return p;
}

/* 64 bits from q (little-endian), zeros past end. */
static inline uint64_t s_load64(const uint8_t *q, const uint8_t *end) {
    uint64_t w = 0;
    if (end - q >= 8) {
        w = idx_le64(q);
    } else {
        for (ptrdiff_t i = 0; i < end - q; i++)
            w |= (uint64_t)q[i] << (8 * i);
    }
    return w;
}

/* For each byte value, as four 16-bit lanes in each of v[0] and v[1]: for
 * its j-th set bit (from bit 0), the zeros below that bit (offset - j; 0
 * past its last set bit); v[2]: its zeros, in each of four lanes; n: its
 * set bits. idx_block_ids_get adds a running count to all eight lanes at
 * once (no lane exceeds 2^16: it takes at most S_IDS_SCAN bytes of them). */
static struct {
    uint64_t v[3];
    uint8_t n;
} s_bytebits[256];
__attribute__((constructor)) static void s_bytebits_init(void) {
    for (unsigned v = 0; v < 256; v++) {
        unsigned j = 0;
        for (unsigned x = 0; x < 8; x++)
            if (v >> x & 1) {
                s_bytebits[v].v[j / 4] |= (uint64_t)(x - j) << (16 * (j % 4));
                j++;
            }
        s_bytebits[v].n = (uint8_t)j;
        s_bytebits[v].v[2] = (uint64_t)(8 - j) * 0x0001000100010001ull;
    }
}

/* The deltas of d[1..n) as varints at p; returns the bytes written. */
static size_t s_ids_varints_put(uint8_t *p, const uint64_t *d, size_t n) {
    uint8_t *q = p;
    for (size_t k = 1; k < n; k++)
        q += idx_varint_put(q, d[k] - d[k - 1]);
    return (size_t)(q - p);
}

/* Decode n - 1 varint deltas at p into d[1..n) (d[0] set); NULL if malformed. */
static const uint8_t *s_ids_varints_get(const uint8_t *p, const uint8_t *end, size_t n, uint64_t *d) {
    for (size_t k = 1; k < n; k++) {
        uint64_t x;
        if (!(p = idx_varint_get(p, end, &x)))
            return NULL;
        d[k] = d[k - 1] + x;
    }
    return p;
}

/* idx_block_ids_put given vb, the bytes of the n - 1 deltas as varints,
 * and rise: every id above the one before (s_block_encode counts both while
 * it sizes the block). */
static size_t s_block_ids_put(uint8_t *p, const uint64_t *d, size_t n, bool ef, uint64_t vb,
                              bool rise) {
    if (!idx_block_ids_coded(ef, n))
        return s_ids_varints_put(p, d, n);
    if (!rise) { /* the codes need 0 < v_0 < ... < v_{m-1}: ids that do not
                    rise (a merge of a corrupt block's) keep their varints */
        p[0] = IDX_IDS_VARINT;
        return 1 + s_ids_varints_put(p + 1, d, n);
    }
    size_t m = n - 1;
    uint64_t u = d[n - 1] - d[0];
    uint64_t best = vb;
    unsigned mode = IDX_IDS_VARINT;
    if (u / 8 + (u % 8 != 0) < best) {
        best = u / 8 + (u % 8 != 0);
        mode = IDX_IDS_BITMAP;
    }
    for (unsigned l = 0; l < 32; l++) {
        /* the low parts and the unary parts' set bits alone take this
         * many bytes, which grows with l while best only falls: no wider
         * code is smaller */
        if (((uint64_t)m * l + m + 7) / 8 >= best)
            break;
        if ((u >> l) >= best * 8) /* (also keeps the sum below from overflowing) */
            continue;
        uint64_t bytes = ((uint64_t)m * l + (u >> l) + m + 7) / 8;
        if (bytes < best) {
            best = bytes;
            mode = l;
        }
    }
    uint64_t bmb = u / 8 + (u % 8 != 0);
    if (!ef && mode < 32 && bmb <= best * IDX_IDS_BITMAP_SLACK && bmb <= vb) {
        best = bmb;
        mode = IDX_IDS_BITMAP;
    }
    p[0] = (uint8_t)mode;
    uint8_t *q = p + 1;
    if (mode == IDX_IDS_VARINT)
        return 1 + s_ids_varints_put(q, d, n);
    memset(q, 0, best);
    if (mode == IDX_IDS_BITMAP) {
        for (size_t k = 0; k < m; k++) {
            uint64_t v = d[k + 1] - d[0];
            q[(v - 1) >> 3] |= (uint8_t)(1u << ((v - 1) & 7));
        }
        return 1 + best;
    }
    if (mode) { /* the low parts, whole bytes as they fill (na < 32 + mode < 64) */
        uint64_t acc = 0, mask = ((uint64_t)1 << mode) - 1;
        unsigned na = 0;
        uint8_t *w = q;
        for (size_t k = 0; k < m; k++) {
            acc |= ((d[k + 1] - d[0]) & mask) << na;
            na += mode;
            if (na >= 32) {
                w[0] = (uint8_t)acc;
                w[1] = (uint8_t)(acc >> 8);
                w[2] = (uint8_t)(acc >> 16);
                w[3] = (uint8_t)(acc >> 24);
                w += 4;
                acc >>= 32;
                na -= 32;
            }
        }
        for (; na; na = na > 8 ? na - 8 : 0, acc >>= 8)
            *w++ = (uint8_t)acc;
    }
    for (size_t k = 0; k < m; k++) {
        uint64_t hi = (uint64_t)m * mode + ((d[k + 1] - d[0]) >> mode) + k;
        q[hi >> 3] |= (uint8_t)(1u << (hi & 7));
    }
    return 1 + best;
}

size_t idx_block_ids_put(uint8_t *p, const uint64_t *d, size_t n, bool ef) {
    uint64_t vb = 0;
    bool rise = true;
    for (size_t k = 1; k < n; k++) {
        vb += idx_varint_len(d[k] - d[k - 1]);
        rise &= d[k] > d[k - 1];
    }
    return s_block_ids_put(p, d, n, ef, vb, rise);
}

/* The bytes of a code's unary part (or bitmap) idx_block_ids_get takes at
 * most. A code is smaller than the varint deltas it replaces (at most 127
 * of 5 bytes: ids are below 2^32), so a well-formed one needs far fewer;
 * within 4096, z's 16-bit lanes stay below 8 + 8 * 4096 (a corrupt block
 * of 8 KB of zeros made them wrap: an end before p, a crash in s_sub_tf). */
#define S_IDS_SCAN 4096u

/* Elias-Fano low part k of width l (1-57) at p, its 8-byte load inside. */
static inline uint64_t s_ef_low(const uint8_t *p, size_t k, unsigned l, uint64_t mask) {
    uint64_t bo = (uint64_t)k * l;
    return (idx_le64(p + bo / 8) >> (bo & 7)) & mask;
}

/* Elias-Fano values 1..m of d (d[k + 1] = fb + (z[k] << l) + low part k) for
 * a width l of 1-8 known at compile time (inlined per width): the low parts
 * of 8 values are l whole bytes, read with one 8-byte load and taken apart by
 * constant shifts; the last m % 8 one at a time. Every load is inside
 * (the caller's hb / 8 + 8 <= len). */
static inline __attribute__((always_inline)) void s_ef_lows(const uint8_t *p, const uint16_t *z,
                                                           size_t m, uint64_t fb, const unsigned l,
                                                           uint64_t *d) {
    const uint64_t mask = ((uint64_t)1 << l) - 1;
    size_t k = 0;
    for (; k + 8 <= m; k += 8) {
        uint64_t x = idx_le64(p + k / 8 * l);
#pragma GCC unroll 8
        for (unsigned j = 0; j < 8; j++)
            d[k + j + 1] = fb + ((uint64_t)z[k + j] << l) + ((x >> (j * l)) & mask);
    }
    for (; k < m; k++)
        d[k + 1] = fb + ((uint64_t)z[k] << l) + s_ef_low(p, k, l, mask);
}

const uint8_t *idx_block_ids_get(const uint8_t *p, const uint8_t *end, uint64_t first, size_t n,
                                 bool ef, uint64_t *d) {
    d[0] = first;
    if (!idx_block_ids_coded(ef, n))
        return s_ids_varints_get(p, end, n, d);
    if (p >= end)
        return NULL;
    unsigned mode = *p++;
    size_t m = n - 1;
    if (mode == IDX_IDS_VARINT)
        return s_ids_varints_get(p, end, n, d);
    /* Elias-Fano, and the bitmap as Elias-Fano of no low bits whose unary
     * high parts are the values - 1 themselves (no k added) */
    bool bm = mode == IDX_IDS_BITMAP;
    if (!bm && mode > 31)
        return NULL;
    unsigned l = bm ? 0 : mode;
    uint64_t hb = (uint64_t)m * l, len = (uint64_t)(end - p);
    if (hb / 8 >= len)
        return NULL;
    /* the set bits from bit hb on, a byte at a time (no branch on the bits):
     * z[k] = 8 + the zeros between bit hb and the k-th one (its high part,
     * EF). z is 16-bit lanes, filled four at a time; a byte's bits past the
     * m-th one land in the slack and are not used. A code that needs more
     * than S_IDS_SCAN bytes of them is corrupt (see S_IDS_SCAN): refused,
     * where its lanes would wrap and its end fall before p. */
    uint16_t z[IDX_BLOCK_DOCS + 8];
    size_t k = 0;
    uint64_t bi = hb / 8, zr = (8 - (hb & 7)) * 0x0001000100010001ull;
    unsigned b = p[bi] & (0xffu << (hb & 7));
    for (;;) {
        uint64_t lo = s_bytebits[b].v[0] + zr, hi = s_bytebits[b].v[1] + zr;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        lo = (lo >> 48) | (lo >> 16 & 0xffff0000ull) | (lo << 16 & 0xffff00000000ull) | (lo << 48);
        hi = (hi >> 48) | (hi >> 16 & 0xffff0000ull) | (hi << 16 & 0xffff00000000ull) | (hi << 48);
#endif
        memcpy(z + k, &lo, 8);
        memcpy(z + k + 4, &hi, 8);
        zr += s_bytebits[b].v[2];
        k += s_bytebits[b].n;
        if (k >= m)
            break;
        if (++bi >= len)
            return NULL;
        b = p[bi];
    }
    if (bi - hb / 8 >= S_IDS_SCAN)
        return NULL; /* (checked once here: the loop is in bounds either way) */
    /* value k: its high part z[k] - 8, shifted, or'ed with its low part;
     * of a bitmap: its bit's offset + 1 = z[k] - 8 + k + 1 */
    if (bm) {
        k = 0;
#if defined(__SSE2__)
        /* eight at a time: z's 16-bit lanes widened to 64 bits, plus
         * first - 7 + k (z holds IDX_BLOCK_DOCS + 8 lanes: all are read
         * within the first m) */
        __m128i zero = _mm_setzero_si128(), eight = _mm_set1_epi64x(8);
        __m128i b0 = _mm_set_epi64x((long long)(first - 6), (long long)(first - 7));
        __m128i b1 = _mm_add_epi64(b0, _mm_set1_epi64x(2)), b2 = _mm_add_epi64(b0, _mm_set1_epi64x(4)),
                b3 = _mm_add_epi64(b0, _mm_set1_epi64x(6));
        for (; k + 8 <= m; k += 8) {
            __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(z + k));
            __m128i lo = _mm_unpacklo_epi16(x, zero), hi = _mm_unpackhi_epi16(x, zero);
            _mm_storeu_si128((__m128i *)(void *)(d + k + 1), _mm_add_epi64(b0, _mm_unpacklo_epi32(lo, zero)));
            _mm_storeu_si128((__m128i *)(void *)(d + k + 3), _mm_add_epi64(b1, _mm_unpackhi_epi32(lo, zero)));
            _mm_storeu_si128((__m128i *)(void *)(d + k + 5), _mm_add_epi64(b2, _mm_unpacklo_epi32(hi, zero)));
            _mm_storeu_si128((__m128i *)(void *)(d + k + 7), _mm_add_epi64(b3, _mm_unpackhi_epi32(hi, zero)));
            b0 = _mm_add_epi64(b0, eight);
            b1 = _mm_add_epi64(b1, eight);
            b2 = _mm_add_epi64(b2, eight);
            b3 = _mm_add_epi64(b3, eight);
        }
#endif
        for (; k < m; k++)
            d[k + 1] = first - 7 + k + z[k];
        return p + (d[m] - first - 1) / 8 + 1;
    }
    uint64_t fb = first - ((uint64_t)8 << l), mask = ((uint64_t)1 << l) - 1;
    if (!l) {
        for (k = 0; k < m; k++)
            d[k + 1] = fb + z[k];
    } else if (hb / 8 + 8 <= len && l <= 8) { /* every low part's 8-byte load is inside */
        switch (l) {
        case 1: s_ef_lows(p, z, m, fb, 1, d); break;
        case 2: s_ef_lows(p, z, m, fb, 2, d); break;
        case 3: s_ef_lows(p, z, m, fb, 3, d); break;
        case 4: s_ef_lows(p, z, m, fb, 4, d); break;
        case 5: s_ef_lows(p, z, m, fb, 5, d); break;
        case 6: s_ef_lows(p, z, m, fb, 6, d); break;
        case 7: s_ef_lows(p, z, m, fb, 7, d); break;
        default: s_ef_lows(p, z, m, fb, 8, d); break;
        }
    } else if (hb / 8 + 8 <= len) {
        for (k = 0; k < m; k++)
            d[k + 1] = fb + ((uint64_t)z[k] << l) + s_ef_low(p, k, l, mask);
    } else {
        for (k = 0; k < m; k++) {
            uint64_t bo = (uint64_t)k * l;
            d[k + 1] = fb + ((uint64_t)z[k] << l) + ((s_load64(p + bo / 8, end) >> (bo & 7)) & mask);
        }
    }
    /* the last one's bit: hb + its high part + m - 1 */
    return p + (hb + z[m - 1] - 8 + m - 1) / 8 + 1;
}

/* ---------------------------------------------------------------------- */
/* pending changes */

typedef struct {
    /* first: what a put of an analyzed doc reads and writes (one cache line) */
    uint64_t k8;    /* s_k8 of the key: keys of up to 8 bytes compare by it alone */
    /* entries: docid[4 native] varint tft tfb lt lb len, positions (S_PEND_ID);
     * in a chain of pieces from the batch's arena (s_entry_room). The last
     * piece's fill and size are kept here (its own len is set when it is
     * full), so appending reads nothing from the piece */
    struct s_piece *tail;
    uint32_t tlen, tcap;
    uint64_t last;
    uint32_t ndocs;
    uint32_t hash;
    uint16_t keylen;
    bool unsorted;
    uint32_t keyoff;
    uint32_t removed; /* doc versions removed (df delta -1 each) */
    uint32_t stamp;           /* doc being analyzed when tfirst/tlast were set */
    uint32_t tfirst, tlast;   /* its tokens in that doc: a chain through s_tok.next */
    struct s_piece *first;
} s_pterm;

/* A piece of a term's pending entries (whole entries only), carved from
 * the batch's arena: no malloc, realloc or free per term, and one reset
 * per flush. Pieces double in size up to S_PIECE_MAX. */
typedef struct s_piece {
    struct s_piece *next;
    uint32_t len, cap;
    uint8_t data[];
} s_piece;

/* A pending entry starts with its doc id as 4 native bytes (IDX_ID_MAX). */
#define S_PEND_ID 4u
_Static_assert(IDX_ID_MAX <= UINT32_MAX, "pending entries keep 4-byte doc ids");

#define S_PIECE_MIN 48u
#define S_PIECE_MAX 16384u
#define S_PEND_ARENA_KEEP ((size_t)16 << 20) /* arena bytes kept between flushes */

typedef struct {
    uint32_t term;
    uint32_t pos; /* pos << 1 | exact (stems); a runpos unigram's pos << 2 |
                     starts a run << 1 | ends it; else pos */
    uint32_t next; /* next token of the same term in this doc (UINT32_MAX: none) */
    uint8_t field;
} s_tok;

typedef struct {
    uint64_t id;
    idx_col_rec rec; /* rec.live: 1 = indexed by this batch (the flush sets the generation) */
} s_pcol;

struct idx_pending {
    uint64_t *slots; /* hash << 32 | (term index + 1): a probe reads no term */
    size_t nslots;
    s_pterm *terms;
    size_t nterms, capterms;
    arena *ar;        /* the terms' entry pieces (NULL until the first) */
    idx_bytes keys;
    s_pcol *cols;
    size_t ncols, capcols;
    uint32_t *cslots; /* id -> cols index + 1 */
    size_t ncslots;
    uint32_t *dead;   /* generations that lost a doc version in this batch */
    size_t ndead, capdead;
    idx_segs segs;    /* scratch for flush */
    /* per-txn cache (valid while ctx_txn / ctx_id are the caller's txn;
     * dropped by idx_discard, which follows an abort): the largest id
     * indexed (a bigger id needs no column lookup) and the last site and
     * category ids (bulk loads repeat them) */
    MDB_txn *ctx_txn;
    size_t ctx_id;
    bool ctx_ok;
    uint64_t ctx_maxid;
    uint32_t dict_id[2];
    char dict_v[2][64];
    int64_t ddocs, dsum_t, dsum_b;
    uint64_t max_id;
    s_tok *toks;
    size_t ntoks, captoks;
    uint32_t *dterms; /* the doc's distinct terms, in order of first occurrence */
    size_t ndterms, capdterms;
    uint32_t stamp;
    uint8_t field;
    bool runpos;      /* idx_term_runpos: keep CJK unigrams' run boundaries only */
    uint32_t c1_last; /* the token of this field's last CJK unigram (UINT32_MAX: none) */
    uint32_t c2_next; /* 2 + the position of this field's last bigram (0: none) */
    int err;
    idx *owner;
};

/* The first min(n, 8) bytes of p as one word, the rest zero (little-endian
 * loads: byte i at bits 8i). Reads only p[0..n). */
static inline uint64_t s_k8(const uint8_t *p, size_t n) {
    uint64_t v;
    if (n >= 8) {
        memcpy(&v, p, 8);
        return v;
    }
    if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + n - 4, 4); /* overlaps lo: the same bytes at the same places */
        return (uint64_t)lo | (uint64_t)hi << (8 * (n - 4));
    }
    if (!n)
        return 0;
    return (uint64_t)p[0] | (uint64_t)p[n / 2] << (8 * (n / 2)) | (uint64_t)p[n - 1] << (8 * (n - 1));
}

/* memcmp(a, b, n) == 0 without a library call (term keys are short: the
 * call was most of the cost of comparing them), 8 bytes at a time. */
static inline bool s_bytes_eq(const uint8_t *a, const uint8_t *b, size_t n) {
    for (; n >= 8; a += 8, b += 8, n -= 8) {
        uint64_t x, y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y)
            return false;
    }
    return s_k8(a, n) == s_k8(b, n);
}

/* memcpy(p, s, n), returning p + n: inline for up to 16 bytes (most terms'
 * keys, pending entries and a doc's positions in a block; a library call
 * each before), by moves that overlap when n is not 4, 8 or 16. */
static inline uint8_t *s_copy(uint8_t *p, const uint8_t *s, size_t n) {
    if (n > 16) {
        memcpy(p, s, n);
    } else if (n >= 8) {
        uint64_t x, y;
        memcpy(&x, s, 8);
        memcpy(&y, s + n - 8, 8);
        memcpy(p, &x, 8);
        memcpy(p + n - 8, &y, 8);
    } else if (n >= 4) {
        uint32_t x, y;
        memcpy(&x, s, 4);
        memcpy(&y, s + n - 4, 4);
        memcpy(p, &x, 4);
        memcpy(p + n - 4, &y, 4);
    } else if (n) {
        uint8_t x = s[0], y = s[n / 2], z = s[n - 1];
        p[0] = x;
        p[n / 2] = y;
        p[n - 1] = z;
    }
    return p + n;
}

/* The sign of memcmp(a, b, n) without a library call (see s_bytes_eq):
 * 8 bytes at a time, compared as big-endian numbers. */
static inline int s_bytes_cmp(const uint8_t *a, const uint8_t *b, size_t n) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t x, y;
    for (; n >= 8; a += 8, b += 8, n -= 8) {
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y)
            return __builtin_bswap64(x) < __builtin_bswap64(y) ? -1 : 1;
    }
    /* s_k8: byte i at bits 8i, zeros above n: as big-endian, memcmp's order */
    x = __builtin_bswap64(s_k8(a, n));
    y = __builtin_bswap64(s_k8(b, n));
    return (x > y) - (x < y);
#else
    int c = memcmp(a, b, n);
    return (c > 0) - (c < 0);
#endif
}

/* A key's first 8 bytes as a big-endian number, zero-padded: two keys'
 * numbers compare as the keys do (memcmp, then shorter first) unless equal. */
static inline uint64_t s_pfx8(const uint8_t *k, size_t kl) {
    uint64_t v = 0;
    for (size_t b = 0; b < 8; b++)
        v = v << 8 | (b < kl ? k[b] : 0);
    return v;
}

/* The in-memory hash of a term key (interning tables only: never stored),
 * 8 bytes at a time. */
static uint32_t s_hash(const uint8_t *p, size_t n) {
    uint64_t h = (uint64_t)n * 0x9E3779B97F4A7C15ull;
    while (n > 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    h = (h ^ s_k8(p, n)) * 0x94d049bb133111ebull;
    h ^= h >> 32;
    return (uint32_t)h;
}

static void s_pend_reset(struct idx_pending *pd) {
    if (pd->ar)
        arena_reset(pd->ar, S_PEND_ARENA_KEEP);
    pd->nterms = 0;
    if (pd->slots)
        memset(pd->slots, 0, pd->nslots * sizeof *pd->slots);
    pd->keys.len = 0;
    pd->ncols = 0;
    if (pd->cslots)
        memset(pd->cslots, 0, pd->ncslots * sizeof *pd->cslots);
    pd->ndead = 0;
    pd->ddocs = pd->dsum_t = pd->dsum_b = 0;
    pd->max_id = 0;
}

/* Give back the buffer's tables (empty: after a bulk load they are sized
 * for the whole load; the next batches grow them again as they need). */
static void s_pend_shrink(struct idx_pending *pd) {
    arena_destroy(&pd->ar);
    free(pd->slots);
    free(pd->terms);
    idx_bytes_free(&pd->keys);
    free(pd->cols);
    free(pd->cslots);
    free(pd->dead);
    pd->slots = NULL;
    pd->terms = NULL;
    pd->cols = NULL;
    pd->cslots = NULL;
    pd->dead = NULL;
    pd->nslots = pd->nterms = pd->capterms = pd->ncols = pd->capcols = pd->ncslots = 0;
    pd->ndead = pd->capdead = 0;
}

static void s_pend_free(struct idx_pending **pp) {
    struct idx_pending *pd = *pp;
    if (!pd)
        return;
    s_pend_reset(pd);
    s_pend_shrink(pd);
    free(pd->toks);
    free(pd->dterms);
    free(pd);
    *pp = NULL;
}

static int s_grow_slots(struct idx_pending *pd) {
    size_t n = pd->nslots ? pd->nslots * 2 : 4096;
    uint64_t *s = calloc(n, sizeof *s);
    if (!s)
        return -1;
    for (size_t i = 0; i < pd->nterms; i++) {
        size_t k = pd->terms[i].hash & (n - 1);
        while (s[k])
            k = (k + 1) & (n - 1);
        s[k] = (uint64_t)pd->terms[i].hash << 32 | ((uint32_t)i + 1);
    }
    free(pd->slots);
    pd->slots = s;
    pd->nslots = n;
    return 0;
}

/* Intern a term key whose s_hash is h; returns its index or -1. Inlined
 * into its two callers (the analysis's per-token calls, the put's per-term
 * ones): as a call, saving and restoring registers was a fifth of it. */
static inline __attribute__((always_inline)) long s_intern_h(struct idx_pending *pd, const uint8_t *k, size_t kl, uint32_t h) {
    if ((pd->nterms + 1) * 2 > pd->nslots && s_grow_slots(pd))
        return -1;
    uint64_t k8 = s_k8(k, kl);
    size_t i = h & (pd->nslots - 1);
    for (uint64_t v; (v = pd->slots[i]) != 0; i = (i + 1) & (pd->nslots - 1)) {
        if ((uint32_t)(v >> 32) != h)
            continue;
        uint32_t ti = (uint32_t)v - 1;
        const s_pterm *t = &pd->terms[ti];
        /* most keys are at most 8 bytes: no look at pd->keys (a cache miss) */
        if (t->k8 == k8 && t->keylen == kl &&
            (kl <= 8 || s_bytes_eq(pd->keys.p + t->keyoff + 8, k + 8, kl - 8)))
            return (long)ti;
    }
    if (pd->nterms == pd->capterms) {
        s_pterm *t = grow(pd->terms, &pd->capterms, sizeof *t, 1024);
        if (!t)
            return -1;
        pd->terms = t;
    }
    if (pd->keys.len + kl > pd->keys.cap && idx_bytes_reserve(&pd->keys, kl))
        return -1;
    s_pterm *t = &pd->terms[pd->nterms];
    memset(t, 0, sizeof *t);
    t->k8 = k8;
    t->hash = h;
    t->keyoff = (uint32_t)pd->keys.len;
    t->keylen = (uint16_t)kl;
    s_copy(pd->keys.p + pd->keys.len, k, kl);
    pd->keys.len += kl;
    pd->slots[i] = (uint64_t)h << 32 | ((uint32_t)pd->nterms + 1);
    return (long)pd->nterms++;
}

static long s_intern(struct idx_pending *pd, const uint8_t *k, size_t kl) {
    return s_intern_h(pd, k, kl, s_hash(k, kl));
}

static size_t s_id_slot(uint64_t id, size_t n) {
    uint64_t h = id * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (n - 1);
}

/* Index of the pending column record of id, or -1. */
static long s_pcol_find(struct idx_pending *pd, uint64_t id) {
    if (!pd->ncslots)
        return -1;
    for (size_t i = s_id_slot(id, pd->ncslots);; i = (i + 1) & (pd->ncslots - 1)) {
        uint32_t v = pd->cslots[i];
        if (!v)
            return -1;
        if (pd->cols[v - 1].id == id)
            return (long)v - 1;
    }
}

/* The pending column record of id (new and zeroed when absent), or NULL. */
static s_pcol *s_pcol_get(struct idx_pending *pd, uint64_t id) {
    long at = s_pcol_find(pd, id);
    if (at >= 0)
        return &pd->cols[at];
    if ((pd->ncols + 1) * 2 > pd->ncslots) {
        size_t n = pd->ncslots ? pd->ncslots * 2 : 1024;
        uint32_t *sl = calloc(n, sizeof *sl);
        if (!sl)
            return NULL;
        for (size_t i = 0; i < pd->ncols; i++) {
            size_t k = s_id_slot(pd->cols[i].id, n);
            while (sl[k])
                k = (k + 1) & (n - 1);
            sl[k] = (uint32_t)i + 1;
        }
        free(pd->cslots);
        pd->cslots = sl;
        pd->ncslots = n;
    }
    if (pd->ncols == pd->capcols) {
        s_pcol *n = grow(pd->cols, &pd->capcols, sizeof *n, 256);
        if (!n)
            return NULL;
        pd->cols = n;
    }
    size_t k = s_id_slot(id, pd->ncslots);
    while (pd->cslots[k])
        k = (k + 1) & (pd->ncslots - 1);
    pd->cslots[k] = (uint32_t)pd->ncols + 1;
    s_pcol *c = &pd->cols[pd->ncols++];
    memset(c, 0, sizeof *c);
    c->id = id;
    return c;
}

static int s_tok_cb(void *ud, const text_token *t) {
    struct idx_pending *pd = ud;
    /* a term of at most IDX_TERM_MAX bytes is its own key (idx_term_key):
     * no copy of it */
    uint8_t kb[IDX_TERM_MAX + 1];
    const uint8_t *k = (const uint8_t *)t->term;
    size_t kl = t->len;
    if (kl > IDX_TERM_MAX) {
        kl = idx_term_key(t->term, t->len, kb);
        k = kb;
    }
    long ti = s_intern(pd, k, kl);
    if (ti < 0) {
        pd->err = 1;
        return 1;
    }
    if (pd->ntoks == pd->captoks) {
        s_tok *n = grow(pd->toks, &pd->captoks, sizeof *n, 4096);
        if (!n) {
            pd->err = 1;
            return 1;
        }
        pd->toks = n;
    }
    uint32_t at = (uint32_t)pd->ntoks++;
    s_tok *o = &pd->toks[at];
    o->term = (uint32_t)ti;
    o->pos = idx_term_exact_bit(k, kl) ? (t->pos << 1) | (t->exact ? 1u : 0u) : t->pos;
    if (t->kind >= TEXT_TERM_CJK1 && pd->runpos) {
        /* text.c emits a run's bigram at p right after the unigram at p and
         * right before the unigram at p + 1: a unigram starts a run unless
         * the bigram at p - 1 exists, and ends it unless the bigram at p
         * does (positions grow within a field, so an older bigram or
         * unigram never matches these checks) */
        if (t->kind == TEXT_TERM_CJK1) {
            o->pos = t->pos << 2 | (pd->c2_next == t->pos + 1 ? 0u : 2u) | 1u;
            pd->c1_last = at;
        } else {
            if (pd->c1_last != UINT32_MAX && pd->toks[pd->c1_last].pos >> 2 == t->pos)
                pd->toks[pd->c1_last].pos &= ~1u;
            pd->c2_next = t->pos + 2;
        }
    }
    o->field = pd->field;
    o->next = UINT32_MAX;
    /* group by term without sorting: tokens arrive in (field, position)
     * order, so each term's chain is already in the order postings need */
    s_pterm *pt = &pd->terms[ti];
    if (pt->stamp != pd->stamp) {
        if (pd->ndterms == pd->capdterms) {
            uint32_t *n = grow(pd->dterms, &pd->capdterms, sizeof *n, 1024);
            if (!n) {
                pd->err = 1;
                return 1;
            }
            pd->dterms = n;
        }
        pd->dterms[pd->ndterms++] = (uint32_t)ti;
        pt->stamp = pd->stamp;
        pt->tfirst = at;
    } else {
        pd->toks[pt->tlast].next = at;
    }
    pt->tlast = at;
    return 0;
}

/* Analyze a doc into pd->toks, grouped by term (pd->dterms and the chains);
 * lt and lb get the field lengths. 0 or -1. */
static int s_analyze_doc(text_analyzer *an, struct idx_pending *pd, const idx_doc *d, uint32_t *lt,
                         uint32_t *lb) {
    pd->ntoks = 0;
    pd->ndterms = 0;
    if (++pd->stamp == 0) { /* wrapped: no term may keep an old stamp */
        for (size_t i = 0; i < pd->nterms; i++)
            pd->terms[i].stamp = 0;
        pd->stamp = 1;
    }
    pd->err = 0;
    pd->field = 0;
    pd->c1_last = UINT32_MAX;
    pd->c2_next = 0;
    text_analyze(an, d->title ? d->title : "", d->title ? d->title_len : 0, 0, s_tok_cb, pd, lt);
    pd->field = 1;
    pd->c1_last = UINT32_MAX;
    pd->c2_next = 0;
    text_analyze(an, d->body ? d->body : "", d->body ? d->body_len : 0, 0, s_tok_cb, pd, lb);
    pd->field = 2;
    pd->c1_last = UINT32_MAX;
    pd->c2_next = 0;
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
    return pd->err ? -1 : 0;
}

/* ---------------------------------------------------------------------- */

static int s_lmdb_fail(idx *self, const char *what, int rc) {
    log_error("idx.lmdb", "op=%s err=\"%s\"", what, mdb_strerror(rc));
    if (self)
        self->err = rc;
    return IDX_INTERNAL;
}

int idx_error(const idx *self) { return self ? self->err : 0; }

/* Record rc as the code behind a failure (idx_error) and return ret. */
static int s_err(idx *self, int rc, int ret) {
    self->err = rc;
    return ret;
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
    self->merge_factor = o.merge_factor >= 2 ? o.merge_factor : IDX_MERGE_FACTOR;
    if (self->merge_factor > IDX_MAX_SEGS / 4)
        self->merge_factor = IDX_MAX_SEGS / 4;
    text_options to = text_options_default();
    to.stopwords = o.stopwords;
    self->an = text_analyzer_new(&to);
    self->pend = calloc(1, sizeof *self->pend);
    if (!self->an || !self->pend) {
        idx_close(&self);
        return IDX_INTERNAL;
    }
    self->runpos = self->pend->runpos = !o.stopwords || !o.stopwords[0];
    struct {
        const char *name;
        MDB_dbi *dbi;
    } dbs[] = {{"idx_post", &self->post}, {"idx_lex", &self->lex}, {"idx_col", &self->col},
               {"idx_dict", &self->dict}, {"idx_meta", &self->meta}};
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
        int rc = mdb_dbi_open(txn, dbs[i].name, MDB_CREATE, dbs[i].dbi);
        if (rc) {
            idx_close(&self);
            return s_lmdb_fail(NULL, "dbi_open", rc);
        }
    }
    /* an index written by the format before segments cannot be read */
    idx_segs sg;
    MDB_stat ms;
    int rc = idx_segs_get(self, txn, &sg);
    if (!rc)
        rc = mdb_stat(txn, self->post, &ms);
    if (rc) {
        idx_close(&self);
        return s_lmdb_fail(NULL, "open", rc);
    }
    if (sg.format != IDX_FORMAT && ms.ms_entries > 0) {
        /* cleared when txn can write (the caller must re-index), else refused */
        MDB_dbi dbs[] = {self->post, self->lex, self->col, self->dict, self->meta};
        for (size_t i = 0; i < 5 && !rc; i++)
            rc = mdb_drop(txn, dbs[i], 0);
        log_warn("idx.open", "format=%u want=%d %s", sg.format, IDX_FORMAT,
                 rc ? "err=\"older index format in a read-only txn\""
                    : "msg=\"older index format: cleared, re-index the articles\"");
        if (rc) {
            idx_close(&self);
            return IDX_FAILED_PRECONDITION;
        }
    }
    *out = self;
    return IDX_OK;
}

/* The analysis state an idx and an idx_analyzer each own: the text analyzer
 * and the term table of the docs being analyzed. Safe on NULLs. */
static void s_analysis_free(text_analyzer **an, struct idx_pending **pd) {
    text_analyzer_destroy(an);
    s_pend_free(pd);
}

void idx_close(idx **self_p) {
    if (!self_p || !*self_p)
        return;
    idx *self = *self_p;
    s_analysis_free(&self->an, &self->pend);
    idx_bytes_free(&self->scratch);
    idx_bytes_free(&self->scratch2);
    idx_terms_destroy(&self->terms);
    free(self);
    *self_p = NULL;
}

void idx_discard(idx *self) {
    if (self && self->pend) {
        s_pend_reset(self->pend);
        self->pend->ctx_ok = false;
    }
}

/* The memory the buffer's contents take: postings (the arena), terms and
 * column records with their hash slots (the tables are at least half
 * empty), keys. 0 after a flush (the tables keep their size). */
static size_t s_pend_bytes(const struct idx_pending *pd) {
    return (pd->ar ? arena_used(pd->ar) : 0) + pd->keys.len +
           pd->nterms * (sizeof *pd->terms + 2 * sizeof *pd->slots) +
           pd->ncols * (sizeof *pd->cols + 2 * sizeof *pd->cslots) + pd->ndead * sizeof *pd->dead;
}

bool idx_pending(const idx *self, size_t *bytes) {
    const struct idx_pending *pd = self ? self->pend : NULL;
    if (bytes)
        *bytes = pd ? s_pend_bytes(pd) : 0;
    return pd && (pd->nterms || pd->ncols || pd->ndead);
}

void idx_set_bulk(idx *self, bool on, size_t max_bytes) {
    if (!self)
        return;
    self->bulk = on;
    self->bulk_bytes = on ? max_bytes : 0;
    if (!on && !idx_pending(self, NULL))
        s_pend_shrink(self->pend);
}

/* Whether a put/del must write the buffer now (see idx_set_bulk). */
static bool s_flush_due(const idx *self) {
    uint32_t n = (uint32_t)self->pend->ncols;
    if (self->bulk)
        return self->bulk_bytes ? s_pend_bytes(self->pend) >= self->bulk_bytes
                                : n >= IDX_BULK_MAX_PENDING;
    return self->max_pending == 0 || n >= self->max_pending;
}

/* Make the per-txn cache current for txn. 0 or an LMDB error. */
static int s_ctx(idx *self, MDB_txn *txn) {
    struct idx_pending *pd = self->pend;
    if (pd->ctx_ok && pd->ctx_txn == txn && pd->ctx_id == mdb_txn_id(txn))
        return 0;
    int rc = idx_segs_get(self, txn, &pd->segs);
    if (rc)
        return rc;
    pd->ctx_txn = txn;
    pd->ctx_id = mdb_txn_id(txn);
    pd->ctx_maxid = pd->segs.maxid;
    pd->dict_v[0][0] = pd->dict_v[1][0] = 0;
    pd->ctx_ok = true;
    return 0;
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

/* ---------------------------------------------------------------------- */
/* column chunks (idx_int.h) */

static const uint8_t s_col_zeros[8]; /* the columns of width 0 */

/* The layout of chunk p (widths and column offsets) into c; -1 if malformed. */
static int s_colchunk_layout(idx_colchunk *c, const uint8_t *p, size_t len, uint64_t lay) {
    if (p[8] > 1)
        return -1;
    size_t off = IDX_COL_HEAD;
    for (int f = 0; f < IDX_COL_FIELDS; f++) {
        unsigned w = p[9 + f];
        if (w > (f == IDX_CF_PUB ? 8u : 4u))
            return -1;
        c->f[f].w = w;
        c->f[f].mask = w == 8 ? UINT64_MAX : (UINT64_C(1) << (8 * w)) - 1;
        c->off[f] = (uint32_t)off;
        off += IDX_COL_PER_CHUNK * (size_t)w;
    }
    if (off + IDX_COL_PAD != len)
        return -1;
    for (int f = 0; f < IDX_COL_FIELDS; f++)
        if (!c->f[f].w)
            c->off[f] = (uint32_t)off; /* the zeros at the end */
    c->lay = lay;
    c->len = len;
    return 0;
}

int idx_colchunk_open(idx_colchunk *c, const void *v, size_t len) {
    const uint8_t *p = v;
    if (p && len >= IDX_COL_HEAD + IDX_COL_PAD) {
        uint64_t lay, base;
        memcpy(&lay, p + 8, 8); /* flags and widths, compared as they are */
        if ((lay == c->lay && len == c->len) || s_colchunk_layout(c, p, len, lay) == 0) {
            for (int f = 0; f < IDX_COL_FIELDS; f++)
                c->f[f].p = p + c->off[f];
            memcpy(&base, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
            base = __builtin_bswap64(base);
#endif
            c->base = base;
            c->unit = p[8] ? 1000 : 1;
            return 0;
        }
    }
    for (int f = 0; f < IDX_COL_FIELDS; f++)
        c->f[f] = (idx_colfield){s_col_zeros, 0, 0};
    c->base = 0;
    c->unit = 1;
    c->len = 0;
    return p ? -1 : 0;
}

void idx_colchunk_get(const idx_colchunk *c, size_t slot, idx_col_rec *r) {
    r->live = idx_colchunk_u32(c, IDX_CF_LIVE, slot);
    if (!r->live) {
        memset(r, 0, sizeof *r);
        return;
    }
    r->pub = idx_colchunk_pub(c, slot);
    r->len_t = idx_colchunk_u32(c, IDX_CF_LT, slot);
    r->len_b = idx_colchunk_u32(c, IDX_CF_LB, slot);
    r->site = idx_colchunk_u32(c, IDX_CF_SITE, slot);
    r->cat = idx_colchunk_u32(c, IDX_CF_CAT, slot);
}

/* Field f of a live record as stored (pub: its delta from base in units). */
static uint64_t s_col_val(const idx_col_rec *r, int f, uint64_t base, uint64_t unit) {
    switch (f) {
    case IDX_CF_PUB: return ((uint64_t)r->pub - base) / unit;
    case IDX_CF_LT: return r->len_t;
    case IDX_CF_LB: return r->len_b;
    case IDX_CF_SITE: return r->site;
    case IDX_CF_CAT: return r->cat;
    default: return r->live;
    }
}

size_t idx_colchunk_encode(const idx_col_rec *recs, uint8_t *out) {
    uint64_t base = 0, unit = 1000;
    bool any = false;
    for (size_t i = 0; i < IDX_COL_PER_CHUNK; i++)
        if (recs[i].live) {
            if (!any || recs[i].pub < (int64_t)base)
                base = (uint64_t)recs[i].pub;
            if (recs[i].pub % 1000)
                unit = 1;
            any = true;
        }
    uint8_t *p = out;
    for (int i = 0; i < 8; i++)
        *p++ = (uint8_t)(base >> (8 * i));
    *p++ = unit == 1000;
    uint8_t *w = p;
    p += IDX_COL_FIELDS;
    for (int f = 0; f < IDX_COL_FIELDS; f++) {
        uint64_t top = 0;
        for (size_t i = 0; i < IDX_COL_PER_CHUNK; i++)
            if (recs[i].live)
                top |= s_col_val(&recs[i], f, base, unit);
        for (w[f] = 0; top; top >>= 8)
            w[f]++;
        for (size_t i = 0; i < IDX_COL_PER_CHUNK; i++) {
            uint64_t x = recs[i].live ? s_col_val(&recs[i], f, base, unit) : 0; /* stored as zeros */
            for (uint8_t b = 0; b < w[f]; b++)
                *p++ = (uint8_t)(x >> (8 * b));
        }
    }
    memset(p, 0, IDX_COL_PAD);
    return (size_t)(p + IDX_COL_PAD - out);
}

/* Open column chunk ch into *c. *found is false when the chunk is absent or
 * malformed (logged; read as absent, as a wrong-sized one was before).
 * 0 or an LMDB error. */
static int s_colchunk_fetch(idx *self, MDB_txn *txn, uint64_t ch, idx_colchunk *c, bool *found) {
    uint8_t kb[8];
    idx_be64(kb, ch);
    MDB_val k = {8, kb}, v;
    *found = false;
    int rc = mdb_get(txn, self->col, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (idx_colchunk_open(c, v.mv_data, v.mv_size)) {
        log_error("idx.corrupt", "what=column chunk=%llu", (unsigned long long)ch);
        return 0;
    }
    *found = true;
    return 0;
}

/* The records of chunk ch into recs (zeroed when absent or malformed). 0 or
 * an LMDB error. */
static int s_colchunk_read(idx *self, MDB_txn *txn, uint64_t ch, idx_col_rec *recs) {
    memset(recs, 0, IDX_COL_PER_CHUNK * sizeof *recs);
    idx_colchunk c = {.len = 0};
    bool found;
    int rc = s_colchunk_fetch(self, txn, ch, &c, &found);
    if (rc || !found)
        return rc;
    for (size_t i = 0; i < IDX_COL_PER_CHUNK; i++)
        idx_colchunk_get(&c, i, &recs[i]);
    return 0;
}

int idx_col_get(idx *self, MDB_txn *txn, uint64_t id, idx_col_rec *r) {
    memset(r, 0, sizeof *r);
    idx_colchunk c = {.len = 0};
    bool found;
    int rc = s_colchunk_fetch(self, txn, id / IDX_COL_PER_CHUNK, &c, &found);
    if (!rc && found)
        idx_colchunk_get(&c, id % IDX_COL_PER_CHUNK, r);
    return rc;
}

static int s_put_app(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v);

static int s_col_put(idx *self, MDB_txn *txn, const s_pcol *c, size_t n) {
    size_t i = 0;
    idx_col_rec recs[IDX_COL_PER_CHUNK];
    uint8_t chunk[IDX_COL_MAX];
    while (i < n) {
        uint64_t ch = c[i].id / IDX_COL_PER_CHUNK;
        int rc = s_colchunk_read(self, txn, ch, recs);
        if (rc)
            return rc;
        for (; i < n && c[i].id / IDX_COL_PER_CHUNK == ch; i++)
            recs[c[i].id % IDX_COL_PER_CHUNK] = c[i].rec;
        uint8_t kb[8];
        idx_be64(kb, ch);
        MDB_val k = {8, kb}, v = {idx_colchunk_encode(recs, chunk), chunk};
        rc = s_put_app(txn, self->col, &k, &v); /* new chunks come last: full leaves */
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
static int64_t s_dict_assign_db(idx *self, MDB_txn *txn, char kind, const char *val);

static int64_t s_dict_assign(idx *self, MDB_txn *txn, char kind, const char *val) {
    if (!val || !*val)
        return 0;
    struct idx_pending *pd = self->pend;
    int w = kind == 's' ? 0 : 1;
    if (pd->ctx_ok && pd->dict_v[w][0] && strcmp(pd->dict_v[w], val) == 0)
        return pd->dict_id[w];
    int64_t id = s_dict_assign_db(self, txn, kind, val);
    size_t l = strlen(val);
    if (id > 0 && pd->ctx_ok && l < sizeof pd->dict_v[w]) {
        memcpy(pd->dict_v[w], val, l + 1);
        pd->dict_id[w] = (uint32_t)id;
    }
    return id;
}

static int64_t s_dict_assign_db(idx *self, MDB_txn *txn, char kind, const char *val) {
    uint32_t id = idx_dict_lookup(self, txn, kind, val);
    if (id)
        return id;
    MDB_val nk = {5, S_DICT_NEXT}, nv;
    uint32_t next = 1;
    int rc = mdb_get(txn, self->dict, &nk, &nv);
    if (rc == 0 && nv.mv_size == 4)
        memcpy(&next, nv.mv_data, 4);
    else if (rc && rc != MDB_NOTFOUND)
        return s_err(self, rc, -1);
    id = next++;
    nv.mv_size = 4;
    nv.mv_data = &next;
    if ((rc = mdb_put(txn, self->dict, &nk, &nv, 0)))
        return s_err(self, rc, -1);
    size_t l = strlen(val);
    if (l + 1 > 500)
        l = 499;
    uint8_t kb[512];
    kb[0] = (uint8_t)kind;
    memcpy(kb + 1, val, l);
    MDB_val k = {l + 1, kb}, v = {4, &id};
    if ((rc = mdb_put(txn, self->dict, &k, &v, 0)))
        return s_err(self, rc, -1);
    uint8_t rk[6] = {'#', (uint8_t)kind, (uint8_t)(id >> 24), (uint8_t)(id >> 16),
                     (uint8_t)(id >> 8), (uint8_t)id};
    MDB_val k2 = {6, rk}, v2 = {l, (void *)val};
    if ((rc = mdb_put(txn, self->dict, &k2, &v2, 0)))
        return s_err(self, rc, -1);
    return id;
}

int idx_segs_get(idx *self, MDB_txn *txn, idx_segs *s) {
    memset(s, 0, offsetof(idx_segs, seg));
    MDB_val k = {4, "segs"}, v;
    int rc = mdb_get(txn, self->meta, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (v.mv_size >= 4)
        memcpy(&s->format, v.mv_data, 4);
    if (s->format != IDX_FORMAT) { /* another layout: idx_open clears it */
        uint32_t f = s->format;
        memset(s, 0, offsetof(idx_segs, seg));
        s->format = f ? f : 1;
        return 0;
    }
    if (v.mv_size < offsetof(idx_segs, seg))
        return MDB_CORRUPTED;
    memcpy(s, v.mv_data, offsetof(idx_segs, seg));
    if (s->nsegs > IDX_MAX_SEGS || v.mv_size != offsetof(idx_segs, seg) + s->nsegs * sizeof(idx_seg)) {
        log_error("idx.corrupt", "what=segs size=%zu", v.mv_size);
        s->nsegs = 0;
        return MDB_CORRUPTED;
    }
    memcpy(s->seg, (const uint8_t *)v.mv_data + offsetof(idx_segs, seg), s->nsegs * sizeof(idx_seg));
    return 0;
}

static int s_segs_put(idx *self, MDB_txn *txn, idx_segs *s) {
    s->format = IDX_FORMAT;
    MDB_val k = {4, "segs"}, v = {offsetof(idx_segs, seg) + s->nsegs * sizeof(idx_seg), s};
    return mdb_put(txn, self->meta, &k, &v, 0);
}

/* ---------------------------------------------------------------------- */
/* lexicon pages (see idx_int.h) */

/* A length of 7 or more in an entry's header: the varint (length - 7) at
 * *p added (*p moved past it); false when malformed. */
static inline bool s_lexit_len(const uint8_t **p, const uint8_t *end, size_t *l) {
    uint64_t x;
    if (!(*p = idx_varint_get1(*p, end, &x)) || x > IDX_TERM_MAX)
        return false;
    *l += (size_t)x;
    return true;
}

/* The entry at it->p (it->tl: the term before it, 0 at a page's start). */
static inline int s_lexit_parse(idx_lexit *it) {
    const uint8_t *p = it->p, *end = it->end;
    if (p >= end)
        return MDB_CORRUPTED;
    unsigned hb = *p++;
    size_t sh = hb >> 2 & 7, tl = hb >> 5;
    if ((sh == 7 && !s_lexit_len(&p, end, &sh)) || (tl == 7 && !s_lexit_len(&p, end, &tl)))
        return MDB_CORRUPTED;
    if (tl > (size_t)(end - p) || sh > it->tl || sh + tl > IDX_TERM_MAX)
        return MDB_CORRUPTED;
    /* most suffixes are short: copied as 16 bytes when there is room (no
     * call), else as they are */
    if (tl <= 16 && end - p >= 16 && sh <= IDX_TERM_MAX - 16)
        memcpy(it->tbuf + sh, p, 16);
    else
        memcpy(it->tbuf + sh, p, tl);
    it->sh = sh;
    it->tl = sh + tl;
    p += tl;
    unsigned kind = hb & 3;
    it->kind = kind;
    it->val = p;
    if (kind <= IDX_LEX_INL) { /* a length */
        uint64_t x;
        if (!(p = idx_varint_get1(p, end, &x)))
            return MDB_CORRUPTED;
        if (x > (uint64_t)(end - p))
            return MDB_CORRUPTED;
        it->val = p;
        p += x;
    } else if (!(p = idx_varints_skip(p, end, kind == IDX_LEX_ONE ? 2 : 1))) {
        return MDB_CORRUPTED;
    }
    it->vl = (size_t)(p - it->val);
    it->p = p;
    return 0;
}

int idx_lexit_value(const idx_lexit *it, idx_lexval *v) {
    const uint8_t *p = it->val, *e = p + it->vl;
    uint64_t z = 0, n;
    v->first = 0;
    v->blk = NULL;
    v->blen = 0;
    v->one = false;
    switch (it->kind) {
    case IDX_LEX_ASIS:
        if (!(p = idx_varint_get(p, e, &z)))
            return MDB_CORRUPTED;
        v->df = idx_unzz(z);
        if (p < e) {
            if (!(p = idx_varint_get(p, e, &v->first)))
                return MDB_CORRUPTED;
            v->blk = p;
            v->blen = (size_t)(e - p);
        }
        return 0;
    case IDX_LEX_INL:
        if (!(p = idx_varint_get(p, e, &v->first)) || !idx_varint_get(p, e, &n))
            return MDB_CORRUPTED;
        v->df = n ? (int64_t)n : 1;
        v->blk = p;
        v->blen = (size_t)(e - p);
        return 0;
    case IDX_LEX_ONE:
        if (!(p = idx_varint_get(p, e, &v->first)))
            return MDB_CORRUPTED;
        v->df = 1;
        v->blk = p;
        v->blen = (size_t)(e - p);
        v->one = true;
        return 0;
    default:
        if (!idx_varint_get(p, e, &z))
            return MDB_CORRUPTED;
        v->df = idx_unzz(z);
        return 0;
    }
}

static int s_lexit_load(idx_lexit *it, const MDB_val *k, const MDB_val *v) {
    if (k->mv_size < 4 || idx_get_be32(k->mv_data) != it->seg || v->mv_size == 0) {
        it->eof = true;
        return 0;
    }
    it->p = v->mv_data;
    it->end = it->p + v->mv_size;
    /* The entries are walked one after the other, each one's start known
     * only from the one before: ask for all the page's cache lines at once
     * rather than wait for them one by one (seeks and typo scans walk most
     * of a page). */
    for (const uint8_t *q = it->p + 64; q < it->end; q += 64)
        __builtin_prefetch(q);
    it->term = it->tbuf;
    it->tl = 0;
    return s_lexit_parse(it);
}

int idx_lexit_next(idx_lexit *it) {
    if (it->eof)
        return 0;
    if (it->p < it->end)
        return s_lexit_parse(it);
    MDB_val k, v;
    int rc = mdb_cursor_get(it->c, &k, &v, MDB_NEXT);
    if (rc == MDB_NOTFOUND) {
        it->eof = true;
        return 0;
    }
    return rc ? rc : s_lexit_load(it, &k, &v);
}

/* Steps it to its first entry >= tk. The entries are in order, each one
 * sharing it->sh bytes with the one before: with m the bytes an entry below
 * tk shares with tk, the next one is below tk too when it shares more than m
 * with its predecessor, above it when it shares fewer, and only compared
 * (from byte m) when it shares exactly m (or starts a page: sh 0). */
/* s_lexit_walk's steps over the entries after it's, in its page, all below
 * tk so far (m: the bytes the last one shares with tk), without parsing
 * them into it: an entry below tk is passed by its header's lengths, and
 * only one sharing exactly m bytes with the one before has its suffix
 * compared (in place: its first m bytes are tk's). The first entry >= tk is
 * parsed into it (0); -1 when the page ends before one (it->p at its end);
 * MDB_CORRUPTED where s_lexit_parse would fail. */
static int s_lexit_scan(idx_lexit *it, const uint8_t *tk, size_t tkl, size_t m) {
    const uint8_t *p = it->p, *end = it->end;
    size_t ptl = it->tl; /* the length of the term before p */
    while (p < end) {
        const uint8_t *e0 = p;
        unsigned hb = *p++;
        size_t sh = hb >> 2 & 7, tl = hb >> 5;
        if ((sh == 7 && !s_lexit_len(&p, end, &sh)) || (tl == 7 && !s_lexit_len(&p, end, &tl)))
            return MDB_CORRUPTED;
        if (tl > (size_t)(end - p) || sh > ptl || sh + tl > IDX_TERM_MAX)
            return MDB_CORRUPTED;
        bool ge = sh < m; /* its byte sh is above its predecessor's, which was tk's */
        if (sh == m) {
            size_t j = 0, n = m + tl < tkl ? tl : tkl - m;
            while (j < n && p[j] == tk[m + j])
                j++;
            ge = m + j == tkl || (j < tl && p[j] > tk[m + j]);
            m += j;
        }
        if (ge) { /* the term before it shares its first sh bytes with tk */
            memcpy(it->tbuf, tk, sh);
            it->tl = ptl;
            it->p = e0;
            return s_lexit_parse(it);
        }
        p += tl;
        ptl = sh + tl;
        if ((hb & 3) <= IDX_LEX_INL) { /* a length */
            uint64_t x;
            if (!(p = idx_varint_get1(p, end, &x)) || x > (uint64_t)(end - p))
                return MDB_CORRUPTED;
            p += x;
        } else if (!(p = idx_varints_skip(p, end, (hb & 3) == IDX_LEX_ONE ? 2 : 1))) {
            return MDB_CORRUPTED;
        }
    }
    it->p = p;
    it->tl = ptl;
    return -1;
}

static int s_lexit_walk(idx_lexit *it, const uint8_t *tk, size_t tkl) {
    size_t m = 0;
    bool full = true;
    while (!it->eof) {
        size_t sh = it->sh;
        if (full || sh == 0 || sh == m) {
            size_t l = full || sh == 0 ? 0 : m, n = it->tl < tkl ? it->tl : tkl;
            while (l < n && it->term[l] == tk[l])
                l++;
            if (l == tkl || (l < it->tl && it->term[l] > tk[l]))
                return 0; /* >= tk */
            m = l;
            full = false;
        } else if (sh < m) {
            return 0; /* its byte sh is above its predecessor's, which was tk's */
        }
        int rc = s_lexit_scan(it, tk, tkl, m);
        if (rc != -1) /* MDB_CORRUPTED is negative too */
            return rc; /* the entry >= tk in this page (0), or corrupt */
        if ((rc = idx_lexit_next(it))) /* the next page's first entry */
            return rc;
    }
    return 0;
}

int idx_lexit_seek(idx_lexit *it, MDB_cursor *c, uint32_t seg, const uint8_t *tk, size_t tkl) {
    memset(it, 0, sizeof *it);
    it->c = c;
    it->seg = seg;
    uint8_t kb[IDX_KEY_MAX];
    MDB_val k = {idx_lex_key(seg, tk, tkl, kb), kb}, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    if (rc == 0 && k.mv_size == tkl + 4 && memcmp(k.mv_data, kb, tkl + 4) == 0)
        return s_lexit_load(it, &k, &v); /* a page starts with tk */
    /* tk may be inside the page before */
    MDB_val pk, pv;
    int prc = mdb_cursor_get(c, &pk, &pv, rc == 0 ? MDB_PREV : MDB_LAST);
    if (prc == 0 && pk.mv_size >= 4 && idx_get_be32(pk.mv_data) == seg) {
        if ((rc = s_lexit_load(it, &pk, &pv)))
            return rc;
        return s_lexit_walk(it, tk, tkl);
    }
    if (prc && prc != MDB_NOTFOUND)
        return prc;
    /* no page of seg before tk: the first page at or after it, if any */
    k.mv_size = idx_lex_key(seg, tk, tkl, kb);
    k.mv_data = kb;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND) {
        it->eof = true;
        return 0;
    }
    return rc ? rc : s_lexit_load(it, &k, &v);
}

int idx_lex_find(MDB_cursor *c, uint32_t seg, const uint8_t *tk, size_t tkl, idx_lexval *v) {
    idx_lexit it;
    int rc = idx_lexit_seek(&it, c, seg, tk, tkl);
    if (rc)
        return rc;
    if (it.eof || it.tl != tkl || memcmp(it.term, tk, tkl) != 0)
        return MDB_NOTFOUND;
    return idx_lexit_value(&it, v);
}

uint64_t idx_lex_df(idx *self, MDB_txn *txn, const idx_segs *segs, const uint8_t *tk, size_t tklen) {
    int64_t df = 0;
    MDB_cursor *c;
    if (mdb_cursor_open(txn, self->lex, &c))
        return 0;
    for (size_t i = 0; i < segs->nsegs; i++) {
        idx_lexval v;
        if (idx_lex_find(c, segs->seg[i].id, tk, tklen, &v) == 0)
            df += v.df;
    }
    mdb_cursor_close(c);
    return df > 0 ? (uint64_t)df : 0;
}

/* Put with MDB_APPEND (keys of a new segment are larger than all others);
 * falls back to a plain put if a key is out of order. */
static int s_put_app(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v) {
    int rc = mdb_put(txn, dbi, k, v, MDB_APPEND);
    if (rc == MDB_KEYEXIST)
        rc = mdb_put(txn, dbi, k, v, 0);
    return rc;
}

/* The writer of one segment's lexicon pages (terms come in key order). */
typedef struct {
    uint32_t seg;
    uint32_t minlt, minlb; /* the segment's (idx_seg): kind-2 entries need theirs >= */
    idx_bytes buf;
    uint8_t first[IDX_TERM_MAX], prev[IDX_TERM_MAX];
    size_t fl, pl;
    uint64_t entries;
} s_lexw;

static int s_lexw_flush(idx *self, MDB_txn *txn, s_lexw *w) {
    if (!w->buf.len)
        return 0;
    uint8_t kb[IDX_KEY_MAX];
    MDB_val k = {idx_lex_key(w->seg, w->first, w->fl, kb), kb}, v = {w->buf.len, w->buf.p};
    w->buf.len = 0;
    return s_put_app(txn, self->lex, &k, &v);
}

/* A value's entry body (idx_int.h LEXICON PAGES): its kind, and the body
 * as bytes b[0..bl) (with, for kind 1 and 0, the varint length in front)
 * then b2[0..bl2). */
typedef struct {
    unsigned kind;
    uint8_t lb[10];
    size_t lbl;
    const uint8_t *b, *b2;
    size_t bl, bl2;
} s_lexbody;

static void s_lexw_body(const s_lexw *w, const uint8_t *val, size_t vl, s_lexbody *o) {
    const uint8_t *e = val + vl, *p, *blk, *pos;
    uint64_t z, first, n, mt, mb;
    memset(o, 0, sizeof *o);
    o->kind = IDX_LEX_ASIS;
    o->b = val;
    o->bl = vl;
    if (!(p = idx_varint_get(val, e, &z)))
        goto asis;
    if (p == e) { /* blocks in idx_post */
        o->kind = IDX_LEX_POST;
        return;
    }
    if (!(blk = idx_varint_get(p, e, &first)) || !idx_varint_get(blk, e, &n))
        goto asis;
    int64_t df = idx_unzz(z);
    if (n == 0 && df == 1 && *blk == 0 && (pos = idx_varint_get(blk + 1, e, &mt)) &&
        (pos = idx_varint_get(pos, e, &mb)) && mt >= w->minlt && mb >= w->minlb &&
        idx_varints_skip(pos, e, 1) == e) {
        /* first docid, the position */
        o->kind = IDX_LEX_ONE;
        o->b = p;
        o->bl = (size_t)(blk - p);
        o->b2 = pos;
        o->bl2 = (size_t)(e - pos);
        return;
    }
    if (df == (n ? (int64_t)n : 1)) {
        o->kind = IDX_LEX_INL;
        o->b = p;
        o->bl = (size_t)(e - p);
    }
asis:
    o->lbl = idx_varint_put(o->lb, o->bl);
}

/* A length in the header (3 bits: 7 and more escape to a varint). */
static size_t s_lexw_len_size(size_t l) {
    uint8_t b[10];
    return l < 7 ? 0 : idx_varint_put(b, l - 7);
}

/* Bytes of a page entry: header, shared and suffix lengths, suffix, body. */
static size_t s_lexw_entry_size(size_t sh, size_t tkl, const s_lexbody *o) {
    return 1 + s_lexw_len_size(sh) + s_lexw_len_size(tkl - sh) + (tkl - sh) + o->lbl + o->bl + o->bl2;
}

/* Adds term tk's value val (idx_int.h's LEXICON PAGES: varint zz(df delta)
 * [varint first docid, inline block]) to the segment's pages. */
static int s_lexw_add(idx *self, MDB_txn *txn, s_lexw *w, const uint8_t *tk, size_t tkl,
                      const uint8_t *val, size_t vl) {
    size_t need = tkl + vl + 40;
    int rc;
    size_t sh = 0;
    while (w->buf.len && sh < w->pl && sh < tkl && w->prev[sh] == tk[sh])
        sh++;
    s_lexbody o;
    s_lexw_body(w, val, vl, &o);
    /* the page's node: 8 bytes, key (segment id, first term), value */
    if (w->buf.len && 8 + 4 + w->fl + w->buf.len + s_lexw_entry_size(sh, tkl, &o) > IDX_LEX_NODE) {
        if ((rc = s_lexw_flush(self, txn, w)))
            return rc;
        sh = 0;
    }
    if (!w->buf.len) {
        memcpy(w->first, tk, tkl);
        w->fl = tkl;
    }
    if (idx_bytes_reserve(&w->buf, need))
        return ENOMEM;
    uint8_t *p = w->buf.p + w->buf.len;
    size_t sl = tkl - sh;
    *p++ = (uint8_t)(o.kind | (sh < 7 ? sh : 7) << 2 | (sl < 7 ? sl : 7) << 5);
    if (sh >= 7)
        p += idx_varint_put(p, sh - 7);
    if (sl >= 7)
        p += idx_varint_put(p, sl - 7);
    memcpy(p, tk + sh, sl);
    p += sl;
    memcpy(w->prev, tk, tkl);
    w->pl = tkl;
    memcpy(p, o.lb, o.lbl);
    p += o.lbl;
    memcpy(p, o.b, o.bl);
    p += o.bl;
    if (o.bl2)
        memcpy(p, o.b2, o.bl2);
    p += o.bl2;
    w->buf.len = (size_t)(p - w->buf.p);
    w->entries++;
    return 0;
}

static int s_lex_write(idx *self, MDB_txn *txn, s_lexw *w, const uint8_t *tk, size_t tkl,
                       int64_t delta) {
    uint8_t vb[10];
    return s_lexw_add(self, txn, w, tk, tkl, vb, idx_varint_put(vb, idx_zz(delta)));
}

/* ---------------------------------------------------------------------- */
/* blocks */

typedef struct {
    uint64_t docid;
    uint64_t tft, tfb;
    uint32_t lt, lb; /* field lengths of the doc (block bounds) */
    const uint8_t *pos;
    uint32_t poslen;
} s_entry;

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

/* Decode a block into e[0..n) (docid, tfs, positions) of a term whose
 * positions are run positions (rp, idx_int.h) or not. Returns n or -1. */
static long s_block_decode(const uint8_t *p, size_t len, uint64_t first, s_entry *e, bool rp,
                           bool ef) {
    const uint8_t *end = p + len;
    idx_bhead h;
    uint64_t v;
    if (!(p = idx_block_head(p, end, &h, ef)))
        return -1;
    uint64_t d[IDX_BLOCK_DOCS];
    if (!(p = idx_block_ids_get(p, end, first, h.n, ef, d)))
        return -1;
    for (uint64_t i = 0; i < h.n; i++)
        e[i].docid = d[i];
    const uint8_t *one = h.one ? idx_tf_one_single() : NULL;
    size_t nb = idx_tf_one_bytes(h.n);
    if (nb) {
        if ((size_t)(end - p) < nb)
            return -1;
        one = p;
        p += nb;
    }
    for (uint64_t i = 0; i < h.n; i++) {
        if (one && (one[i >> 3] >> (i & 7) & 1)) {
            e[i].tft = 0;
            e[i].tfb = 1;
        } else if (!(p = idx_tf_get(p, end, &e[i].tft, &e[i].tfb))) {
            return -1;
        }
    }
    const uint8_t *has = NULL; /* rp: the docs with a positions part */
    if (rp && nb) {
        if ((size_t)(end - p) < nb)
            return -1;
        end -= nb;
        has = end;
    }
    for (uint64_t i = 0; i < h.n; i++) {
        const uint8_t *s = p;
        uint64_t cnt = e[i].tft + e[i].tfb;
        if (rp) {
            uint64_t kt = 0, kb = 0;
            if (has ? !(has[i >> 3] >> (i & 7) & 1) : p == end)
                cnt = 0;
            else if (cnt > 1 && ((e[i].tft && !(p = idx_varint_get(p, end, &kt))) ||
                                 (e[i].tfb && !(p = idx_varint_get(p, end, &kb)))))
                return -1;
            else if (cnt > 1)
                cnt = kt + kb;
        }
        for (uint64_t k = 0; k < cnt; k++)
            if (!(p = idx_varint_get(p, end, &v)))
                return -1;
        e[i].pos = s;
        e[i].poslen = (uint32_t)(p - s);
    }
    return (long)h.n;
}

/* The last doc id of a block (docid deltas only; ef: a CJK term's block,
 * idx_term_ids_code). 0 or -1 when malformed. */
static int s_block_last(const uint8_t *p, size_t len, uint64_t first, bool ef, uint64_t *last) {
    const uint8_t *end = p + len;
    idx_bhead h;
    if (!(p = idx_block_head(p, end, &h, ef)))
        return -1;
    uint64_t d[IDX_BLOCK_DOCS];
    if (!idx_block_ids_get(p, end, first, h.n, ef, d))
        return -1;
    *last = d[h.n - 1];
    return 0;
}

/* idx_tf_put's code of (tft, tfb) at p, the one-byte code (most docs')
 * without a loop; returns the end. */
static inline uint8_t *s_tf_write(uint8_t *p, uint64_t tft, uint64_t tfb) {
    uint64_t c = tfb << 2 | tft;
    if (c < 0x80 && tft < 3) {
        *p = (uint8_t)c;
        return p + 1;
    }
    return p + idx_tf_put(p, tft, tfb);
}

/* Encode as many entries from e[i..n) (i < n) as fit in one block into
 * self->scratch (rp: run positions, ef: coded doc ids, idx_int.h); returns
 * the end of that run (i on allocation failure). */
static size_t s_block_encode(idx *self, const s_entry *e, size_t i, size_t n, bool rp, bool ef) {
    /* bytes + 16 bounds the block: header <= 32 bytes; the first doc's delta
     * is counted (1 byte) but not written, which also covers a one-doc
     * block's (0, 1) frequencies (one byte, written: no bitmap). Each doc
     * adds its delta, its frequencies unless (0, 1) (a bit in the bitmap)
     * and its positions. */
    size_t j = i, bytes = 24 + ef; /* ef: the doc ids' code byte */
    size_t lim = n - i < IDX_BLOCK_DOCS ? n : i + IDX_BLOCK_DOCS;
    uint64_t maxt = 0, maxb = 0, minlt = UINT32_MAX, minlb = UINT32_MAX;
    uint64_t prev = e[i].docid, vb = 0; /* vb: the deltas' varint bytes (the first's 1 too) */
    bool rise = true;
    for (; j < lim; j++) {
        const s_entry *x = &e[j];
        size_t dv = idx_varint_len(x->docid - prev);
        size_t s = dv + x->poslen + ((j - i) % 8 == 0) * (1u + rp); /* a new bitmap byte (two) */
        if (!idx_tf_is_one(x->tft, x->tfb))
            s += idx_varint_len(x->tfb << 2 | (x->tft < 3 ? x->tft : 3)) +
                 (x->tft >= 3 ? idx_varint_len(x->tft - 3) : 0);
        if (j > i && bytes + s > IDX_BLOCK_BYTES)
            break;
        bytes += s;
        vb += dv;
        rise &= j == i || x->docid > prev;
        prev = x->docid;
        if (x->tft > maxt)
            maxt = x->tft;
        if (x->tfb > maxb)
            maxb = x->tfb;
        if (x->lt < minlt)
            minlt = x->lt;
        if (x->lb < minlb)
            minlb = x->lb;
    }
    idx_bytes *b = &self->scratch;
    b->len = 0;
    /* + 1: other terms' code byte (idx_block_ids_coded), left out of bytes
     * so that their blocks end where they did before format 20 */
    if (idx_bytes_reserve(b, bytes + 16 + 1))
        return i;
    uint8_t *p = b->p;
    size_t m = j - i;
    /* a lone (0, 1) doc: n = 0 and no frequencies */
    bool single = m == 1 && idx_tf_is_one(e[i].tft, e[i].tfb);
    p += idx_varint_put(p, single ? 0 : m);
    if (m > 1 && !(ef && m <= IDX_HEAD_NOMAX))
        p += idx_tf_put(p, maxt, maxb);
    p += idx_varint_put(p, minlt);
    p += idx_varint_put(p, minlb);
    uint64_t d[IDX_BLOCK_DOCS]; /* BLOCK DOC IDS (idx_int.h) */
    for (size_t k = i; k < j; k++)
        d[k - i] = e[k].docid;
    p += s_block_ids_put(p, d, m, ef, vb - 1, rise);
    size_t nb = idx_tf_one_bytes(m);
    if (nb) { /* the (0, 1) bitmap, then the other docs' frequencies */
        uint8_t *bm = p;
        memset(bm, 0, nb);
        p += nb;
        for (size_t k = i; k < j; k++) {
            if (idx_tf_is_one(e[k].tft, e[k].tfb))
                bm[(k - i) >> 3] |= (uint8_t)(1u << ((k - i) & 7));
            else
                p = s_tf_write(p, e[k].tft, e[k].tfb);
        }
    } else if (!single) {
        p = s_tf_write(p, e[i].tft, e[i].tfb);
    }
    for (size_t k = i; k < j; k++)
        p = s_copy(p, e[k].pos, e[k].poslen);
    if (rp && nb) { /* the docs with a positions part */
        memset(p, 0, nb);
        for (size_t k = i; k < j; k++)
            if (e[k].poslen)
                p[(k - i) >> 3] |= (uint8_t)(1u << ((k - i) & 7));
        p += nb;
    }
    b->len = (size_t)(p - b->p);
    return j;
}

/* Write entries e[0..n) (sorted, distinct) as blocks of term tk in segment
 * seg. j0 > 0: self->scratch holds the first block already, e[0..j0) as
 * s_block_encode wrote it (s_term_write's: not encoded twice). */
static int s_blocks_write(idx *self, MDB_txn *txn, uint32_t seg, const uint8_t *tk, size_t tkl,
                          const s_entry *e, size_t n, size_t j0) {
    size_t i = 0;
    bool rp = idx_term_runpos(self->runpos, tk, tkl), ef = idx_term_ids_code(tk, tkl);
    while (i < n) {
        size_t j = i == 0 && j0 ? j0 : s_block_encode(self, e, i, n, rp, ef);
        if (j == i)
            return ENOMEM;
        uint8_t kb[IDX_KEY_MAX];
        MDB_val k = {idx_post_key(seg, tk, tkl, e[i].docid, kb), kb};
        MDB_val v = {self->scratch.len, self->scratch.p};
        int rc = s_put_app(txn, self->post, &k, &v);
        if (rc)
            return rc;
        i = j;
    }
    return 0;
}

/* Bytes an inline lexicon value adds to its block (two varints). */
#define S_INLINE_HEAD 20

/* The INLINE lexicon value of a term whose postings are the one block in
 * self->scratch (first doc id `first`) at p (S_INLINE_HEAD + the block's
 * bytes): varint zz(delta), varint first docid, block. Returns the end. */
static uint8_t *s_inline_value(const idx *self, int64_t delta, uint64_t first, uint8_t *p) {
    p += idx_varint_put(p, idx_zz(delta));
    p += idx_varint_put(p, first);
    memcpy(p, self->scratch.p, self->scratch.len);
    return p + self->scratch.len;
}

/* A term of a segment: its lexicon entry (df delta) and its postings. When
 * they fit in one block (rare terms: most of them), the block is stored
 * INLINE in the lexicon value (varint zz(delta), varint first docid, block):
 * one key instead of two, and no posting key to seek. */
static int s_term_write(idx *self, MDB_txn *txn, s_lexw *w, const uint8_t *tk, size_t tkl,
                        int64_t delta, const s_entry *e, size_t n) {
    if (n) {
        size_t j = s_block_encode(self, e, 0, n, idx_term_runpos(self->runpos, tk, tkl),
                                  idx_term_ids_code(tk, tkl));
        if (j == 0)
            return ENOMEM;
        if (j == n && self->scratch.len <= IDX_INLINE_MAX) {
            idx_bytes *b2 = &self->scratch2;
            b2->len = 0;
            if (idx_bytes_reserve(b2, S_INLINE_HEAD + self->scratch.len))
                return ENOMEM;
            uint8_t *p = s_inline_value(self, delta, e[0].docid, b2->p);
            return s_lexw_add(self, txn, w, tk, tkl, b2->p, (size_t)(p - b2->p));
        }
        int rc = s_blocks_write(self, txn, w->seg, tk, tkl, e, n, j);
        if (rc)
            return rc;
    }
    return s_lex_write(self, txn, w, tk, tkl, delta);
}

/* ---------------------------------------------------------------------- */
/* merging segments */

static uint32_t s_level(uint64_t ndocs) {
    uint32_t l = 0;
    while (ndocs >= 8) {
        ndocs >>= 3;
        l++;
    }
    return l;
}

/* column records read during a merge (decoded: pages may move under writes) */
typedef struct {
    uint64_t chunk;
    bool ok;
    idx_col_rec recs[IDX_COL_PER_CHUNK];
} s_colcache;

static int s_col_cached(idx *self, MDB_txn *txn, s_colcache *cc, uint64_t id, idx_col_rec *r) {
    uint64_t ch = id / IDX_COL_PER_CHUNK;
    if (!cc->ok || cc->chunk != ch) {
        cc->ok = false;
        int rc = s_colchunk_read(self, txn, ch, cc->recs);
        if (rc)
            return rc;
        cc->chunk = ch;
        cc->ok = true;
    }
    *r = cc->recs[id % IDX_COL_PER_CHUNK];
    return 0;
}

typedef struct {
    uint64_t pfx;     /* the key's first 8 bytes as a big-endian number, zero-padded */
    uint32_t in;      /* input index */
    uint32_t koff;    /* term key in the batch arena */
    uint16_t kl;
    int64_t delta;
    size_t boff;      /* its blocks in the arena: [first 8][len 4][bytes] ... */
    uint32_t nblk;
    bool inl;         /* the block was inline in the lexicon value */
} s_mlex;

typedef struct {
    const uint8_t *base;
} s_mctx;

static _Thread_local s_mctx s_mc;

static int s_mlex_cmp(const void *a, const void *b) {
    const s_mlex *x = a, *y = b;
    if (x->pfx != y->pfx) /* memcmp's order, shorter first: zeros pad the shorter */
        return x->pfx < y->pfx ? -1 : 1;
    size_t l = x->kl < y->kl ? x->kl : y->kl;
    int c = s_bytes_cmp(s_mc.base + x->koff, s_mc.base + y->koff, l);
    if (c)
        return c;
    if (x->kl != y->kl)
        return x->kl < y->kl ? -1 : 1;
    return x->in < y->in ? -1 : x->in > y->in;
}

static int s_key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl) {
    size_t l = al < bl ? al : bl;
    int c = s_bytes_cmp(a, b, l);
    return c ? c : (al > bl) - (al < bl);
}

/* Delete every key of segment `seg` from dbi, last key first: LMDB packs a
 * page's nodes from its end, so deleting a page's last node moves no other
 * node (deleting the first one would move them all, every time). */
static int s_seg_drop(MDB_txn *txn, MDB_dbi dbi, uint32_t seg) {
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, dbi, &c);
    if (rc)
        return rc;
    uint8_t kb[4];
    idx_be32(kb, seg + 1);
    MDB_val k = {4, kb}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    rc = mdb_cursor_get(c, &k, &v, rc == 0 ? MDB_PREV : MDB_LAST);
    while (rc == 0 && k.mv_size >= 4 && idx_get_be32(k.mv_data) == seg) {
        if ((rc = mdb_cursor_del(c, 0)))
            break;
        rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

size_t idx_merge_batch = 4096;
bool idx_merge_read_ahead = true;
uint64_t idx_merges_read_ahead;

/* One batch of a merge: the inputs' lexicon entries up to a bound, in term
 * order (older input first), with their blocks copied into the arena. */
typedef struct {
    idx_bytes arena;
    s_mlex *lx;
    size_t nlx, caplx;
    s_mlex *lx2; /* s_mlex_merge's output, then swapped with lx */
    size_t caplx2;
    bool more; /* the batch ended at a bound: more follow */
} s_mbatch;

/* The reading side of a merge: its cursors (on the merge's write txn, or on
 * a read txn of the same inputs) and where the next batch starts. */
typedef struct {
    const idx_seg *in;
    size_t k;
    MDB_cursor *lc, *pc;
    uint8_t bound[IDX_TERM_MAX];
    size_t boundl;
    bool started;
} s_mreader;

static void s_mbatch_free(s_mbatch *b) {
    free(b->lx);
    free(b->lx2);
    idx_bytes_free(&b->arena);
}

/* Sift the heap's entry at h[i] down (s_mlex_merge: at[] are the inputs'
 * next entries, s_mlex_cmp's order). */
static void s_mheap_down(const s_mlex *lx, const size_t *at, uint32_t *h, size_t n, size_t i) {
    uint32_t x = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && s_mlex_cmp(&lx[at[h[c + 1]]], &lx[at[h[c]]]) < 0)
            c++;
        if (s_mlex_cmp(&lx[at[h[c]]], &lx[at[x]]) >= 0)
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

/* Put the batch's entries in s_mlex_cmp's order (term, then the older input
 * first; s_mc.base set). Each input's entries are in its lexicon's order and
 * follow the input before's, so the k runs are merged through a heap of
 * their heads: ~log2(k) comparisons an entry, called directly, instead of a
 * qsort (msort and its comparison calls were ~3% of a zh bootstrap's CPU,
 * in the optimize's merge). ENOMEM or 0. */
static int s_mlex_merge(s_mbatch *b, size_t k) {
    size_t n = b->nlx, p = 0;
    if (k > IDX_MAX_SEGS)
        k = 0; /* more inputs than a merge takes: sorted below */
    size_t at[IDX_MAX_SEGS], end[IDX_MAX_SEGS];
    uint32_t h[IDX_MAX_SEGS];
    size_t nh = 0;
    for (size_t i = 0; i < k; i++) {
        at[i] = p;
        while (p < n && b->lx[p].in == i)
            p++;
        end[i] = p;
        if (at[i] < end[i])
            h[nh++] = (uint32_t)i;
    }
    if (p != n) { /* not input after input (s_merge_read fills them so) */
        qsort(b->lx, n, sizeof *b->lx, s_mlex_cmp);
        return 0;
    }
    if (n > b->caplx2) {
        s_mlex *t = realloc(b->lx2, n * sizeof *t);
        if (!t)
            return ENOMEM;
        b->lx2 = t;
        b->caplx2 = n;
    }
    for (size_t i = nh / 2; i-- > 0;)
        s_mheap_down(b->lx, at, h, nh, i);
    for (size_t o = 0; nh; o++) {
        uint32_t i = h[0];
        b->lx2[o] = b->lx[at[i]++];
        if (at[i] == end[i])
            h[0] = h[--nh];
        s_mheap_down(b->lx, at, h, nh, 0);
    }
    s_mlex *t = b->lx;
    size_t c = b->caplx;
    b->lx = b->lx2;
    b->caplx = b->caplx2;
    b->lx2 = t;
    b->caplx2 = c;
    return 0;
}

/* Phase 1: read the next batch of lexicon entries from every input, keep
 * those up to the smallest last key of an input that had more, sort them
 * and copy their blocks. */
static int s_merge_read(s_mreader *r, s_mbatch *b) {
    const idx_seg *in = r->in;
    idx_bytes *ar = &b->arena;
    int rc = 0;
    ar->len = 0;
    b->nlx = 0;
    bool have_bound = false;
    uint8_t nb[IDX_TERM_MAX];
    size_t nbl = 0;
    for (size_t i = 0; i < r->k && !rc; i++) {
        idx_lexit it;
        rc = idx_lexit_seek(&it, r->lc, in[i].id, r->bound, r->started ? r->boundl : 0);
        if (rc == 0 && r->started && !it.eof && it.tl == r->boundl &&
            memcmp(it.term, r->bound, r->boundl) == 0)
            rc = idx_lexit_next(&it);
        size_t got = 0;
        while (rc == 0 && !it.eof) {
            if (got == idx_merge_batch) {
                /* more to come: the batch ends at the smallest last key */
                const s_mlex *last = &b->lx[b->nlx - 1];
                if (!have_bound || s_key_cmp(ar->p + last->koff, last->kl, nb, nbl) < 0) {
                    memcpy(nb, ar->p + last->koff, last->kl);
                    nbl = last->kl;
                    have_bound = true;
                }
                break;
            }
            if (b->nlx == b->caplx) {
                s_mlex *n = grow(b->lx, &b->caplx, sizeof *n, 1024);
                if (!n) {
                    rc = ENOMEM;
                    break;
                }
                b->lx = n;
            }
            idx_lexval lv;
            if ((rc = idx_lexit_value(&it, &lv)))
                break;
            if (idx_bytes_reserve(ar, it.tl + 33 + lv.blen)) {
                rc = ENOMEM;
                break;
            }
            s_mlex *m = &b->lx[b->nlx++];
            m->in = (uint32_t)i;
            m->koff = (uint32_t)ar->len;
            m->kl = (uint16_t)it.tl;
            m->pfx = s_pfx8(it.term, it.tl);
            m->delta = lv.df;
            m->nblk = 0;
            m->boff = 0;
            m->inl = false;
            memcpy(ar->p + ar->len, it.term, m->kl);
            ar->len += m->kl;
            if (lv.blk) { /* inline block: copied now, as a block record */
                uint8_t *bp = ar->p + ar->len, *q = bp + 12;
                m->boff = ar->len;
                m->nblk = 1;
                m->inl = true;
                idx_be64(bp, lv.first);
                if (lv.one) { /* a compact one-doc entry's head: n = 0, the segment's bounds */
                    *q++ = 0;
                    q += idx_varint_put(q, in[i].minlt);
                    q += idx_varint_put(q, in[i].minlb);
                }
                memcpy(q, lv.blk, lv.blen);
                q += lv.blen;
                uint32_t vl = (uint32_t)(q - bp - 12);
                memcpy(bp + 8, &vl, 4);
                ar->len += 12 + vl;
            }
            got++;
            rc = idx_lexit_next(&it);
        }
    }
    if (rc)
        return rc;
    /* keep the entries up to the bound, in term order (older input first) */
    size_t keep = 0;
    for (size_t i = 0; i < b->nlx; i++)
        if (!have_bound || s_key_cmp(ar->p + b->lx[i].koff, b->lx[i].kl, nb, nbl) <= 0)
            b->lx[keep++] = b->lx[i];
    b->nlx = keep;
    s_mc.base = ar->p;
    if ((rc = s_mlex_merge(b, r->k)))
        return rc;
    /* read their blocks */
    for (size_t i = 0; i < b->nlx && !rc; i++) {
        s_mlex *m = &b->lx[i];
        if (m->nblk) /* inline */
            continue;
        uint8_t kb[IDX_KEY_MAX], tk[IDX_TERM_MAX];
        memcpy(tk, ar->p + m->koff, m->kl);
        MDB_val key = {idx_post_key(in[m->in].id, tk, m->kl, 0, kb), kb}, val;
        size_t pre = 4 + m->kl;
        m->boff = ar->len;
        rc = mdb_cursor_get(r->pc, &key, &val, MDB_SET_RANGE);
        while (rc == 0 && key.mv_size == m->kl + IDX_POST_KEY_EXTRA &&
               memcmp(key.mv_data, kb, pre + 1) == 0) {
            if (idx_bytes_reserve(ar, 12 + val.mv_size)) {
                rc = ENOMEM;
                break;
            }
            idx_be64(ar->p + ar->len, idx_post_key_id(key.mv_data, m->kl));
            uint32_t vl = (uint32_t)val.mv_size;
            memcpy(ar->p + ar->len + 8, &vl, 4);
            memcpy(ar->p + ar->len + 12, val.mv_data, vl);
            ar->len += 12 + vl;
            m->nblk++;
            rc = mdb_cursor_get(r->pc, &key, &val, MDB_NEXT);
        }
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    if (rc)
        return rc;
    b->more = have_bound;
    if (have_bound) {
        memcpy(r->bound, nb, nbl);
        r->boundl = nbl;
        r->started = true;
    }
    return 0;
}

/* What phase 2 of a merge writes into: the new segment. */
typedef struct {
    const idx_seg *in;
    uint32_t oid;
    s_lexw lw;
    s_colcache *cc;
    s_entries es;
    uint64_t written;
} s_mwriter;

/* Phase 2: write a batch's merged terms. When no input has dead docs and
 * the ids increase across the inputs' blocks (the usual case: newer
 * generations, higher ids), full blocks are copied as they are and only
 * small ones are decoded and packed together; otherwise every posting is
 * decoded, stale ones dropped, and the list sorted. */
static int s_merge_write(idx *self, MDB_txn *txn, s_mwriter *w, const s_mbatch *b) {
    const idx_seg *in = w->in;
    const uint8_t *ab = b->arena.p;
    const s_mlex *lx = b->lx;
    size_t nlx = b->nlx;
    uint32_t oid = w->oid;
    s_entries *es = &w->es;
    int rc = 0;
    for (size_t i = 0; i < nlx && !rc;) {
        size_t j = i;
        int64_t delta = 0;
        bool fast = true, any = false;
        uint64_t prev_last = 0, total = 0;
        if ((i + 1 == nlx || lx[i + 1].kl != lx[i].kl ||
             !s_bytes_eq(ab + lx[i + 1].koff, ab + lx[i].koff, lx[i].kl)) &&
            lx[i].inl && !in[lx[i].in].dead) {
            /* in one input only, inline, nothing stale: the value as it is */
            const s_mlex *m = &lx[i];
            const uint8_t *bp = ab + m->boff;
            uint32_t vl;
            memcpy(&vl, bp + 8, 4);
            idx_bytes *b2 = &self->scratch2;
            b2->len = 0;
            if (idx_bytes_reserve(b2, 20 + vl)) {
                rc = ENOMEM;
                break;
            }
            uint8_t *p = b2->p;
            p += idx_varint_put(p, idx_zz(m->delta));
            p += idx_varint_put(p, idx_get_be64(bp));
            memcpy(p, bp + 12, vl);
            p += vl;
            rc = s_lexw_add(self, txn, &w->lw, ab + m->koff, m->kl, b2->p, (size_t)(p - b2->p));
            w->written++;
            i++;
            continue;
        }
        bool rp = idx_term_runpos(self->runpos, ab + lx[i].koff, lx[i].kl),
             ef = idx_term_ids_code(ab + lx[i].koff, lx[i].kl);
        while (j < nlx && lx[j].kl == lx[i].kl &&
               s_bytes_eq(ab + lx[j].koff, ab + lx[i].koff, lx[i].kl)) {
            const s_mlex *m = &lx[j];
            delta += m->delta;
            fast &= in[m->in].dead == 0;
            const uint8_t *bp = ab + m->boff;
            for (uint32_t x = 0; x < m->nblk && fast; x++) {
                uint64_t first = idx_get_be64(bp), last = 0;
                uint32_t vl;
                memcpy(&vl, bp + 8, 4);
                idx_bhead bh;
                if (s_block_last(bp + 12, vl, first, ef, &last) ||
                    (any && first <= prev_last) ||
                    !idx_block_head(bp + 12, bp + 12 + vl, &bh, ef))
                    fast = false;
                else
                    total += bh.n;
                prev_last = last;
                any = true;
                bp += 12 + vl;
            }
            j++;
        }
        if (total <= IDX_BLOCK_DOCS)
            fast = false; /* small: decoded, written inline when it fits one block */
        const uint8_t *tk = ab + lx[i].koff;
        size_t tkl = lx[i].kl;
        uint64_t nout = 0;
        bool sorted = true;
        es->n = 0;
        for (size_t g = i; g < j && !rc; g++) {
            const s_mlex *m = &lx[g];
            const idx_seg *sg = &in[m->in];
            const uint8_t *bp = ab + m->boff;
            for (uint32_t x = 0; x < m->nblk && !rc; x++) {
                uint64_t first = idx_get_be64(bp);
                uint32_t vl;
                memcpy(&vl, bp + 8, 4);
                const uint8_t *blk = bp + 12;
                bp += 12 + vl;
                idx_bhead h;
                if (!idx_block_head(blk, blk + vl, &h, ef)) {
                    log_error("idx.corrupt", "what=block seg=%u first=%llu", sg->id,
                              (unsigned long long)first);
                    rc = MDB_CORRUPTED;
                    break;
                }
                if (fast && (h.n >= IDX_BLOCK_DOCS / 4 || vl >= IDX_BLOCK_BYTES / 2)) {
                    if (es->n && (rc = s_blocks_write(self, txn, oid, tk, tkl, es->e, es->n, 0)))
                        break;
                    nout += es->n + h.n;
                    es->n = 0;
                    uint8_t kb[IDX_KEY_MAX];
                    MDB_val key = {idx_post_key(oid, tk, tkl, first, kb), kb};
                    MDB_val val = {vl, (void *)blk};
                    rc = s_put_app(txn, self->post, &key, &val);
                    continue;
                }
                if (s_entries_reserve(es, es->n + IDX_BLOCK_DOCS)) {
                    rc = ENOMEM;
                    break;
                }
                long bn = s_block_decode(blk, vl, first, es->e + es->n, rp, ef);
                if (bn < 0) {
                    rc = MDB_CORRUPTED;
                    break;
                }
                size_t n0 = es->n; /* compact in place: es->n <= n0 + y */
                for (long y = 0; y < bn && !rc; y++) {
                    s_entry e = es->e[n0 + (size_t)y];
                    e.lt = (uint32_t)h.minlt; /* the old block's bounds stay valid */
                    e.lb = (uint32_t)h.minlb;
                    if (sg->dead) {
                        idx_col_rec r;
                        if ((rc = s_col_cached(self, txn, w->cc, e.docid, &r)))
                            break;
                        if (r.live < sg->lo || r.live > sg->hi)
                            continue; /* stale: a newer version or deleted */
                        e.lt = r.len_t;
                        e.lb = r.len_b;
                    }
                    if (es->n && es->e[es->n - 1].docid >= e.docid)
                        sorted = false;
                    es->e[es->n++] = e;
                }
            }
        }
        if (!rc && !sorted)
            qsort(es->e, es->n, sizeof *es->e, s_entry_cmp);
        if (!rc && !nout && (es->n || delta)) {
            rc = s_term_write(self, txn, &w->lw, tk, tkl, delta, es->e, es->n);
            w->written++;
        } else if (!rc && nout) {
            if (es->n)
                rc = s_blocks_write(self, txn, oid, tk, tkl, es->e, es->n, 0);
            if (!rc)
                rc = s_lex_write(self, txn, &w->lw, tk, tkl, delta);
            w->written++;
        }
        i = j;
    }
    return rc;
}

/* The read-ahead thread of a merge whose inputs are committed: it reads the
 * batches (phase 1) on a read txn of its own into two alternating buffers
 * while the merge's thread writes the one before (phase 2). Its read txn
 * sees the inputs as the write txn does: a segment's keys never change once
 * it is in a committed segment list (ids are never reused), and it checks
 * that every input is in its snapshot's list before reading. */
typedef struct {
    idx *self;
    MDB_env *env;
    const idx_seg *in;
    size_t k;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    s_mbatch b[2];
    uint64_t produced, consumed; /* batches read / written */
    int state;                   /* 0 starting, 1 reading, -1 no read-ahead (inputs not committed) */
    bool finished;               /* the thread read its last batch or failed */
    bool stop;                   /* the writer gave up */
    int rc;
} s_mpipe;

static int s_mpipe_inputs_committed(s_mpipe *p, MDB_txn *rt) {
    idx_segs *R = malloc(sizeof *R);
    if (!R)
        return ENOMEM;
    int rc = idx_segs_get(p->self, rt, R);
    for (size_t i = 0; i < p->k && !rc; i++) {
        bool found = false;
        for (uint32_t j = 0; j < R->nsegs && !found; j++)
            found = R->seg[j].id == p->in[i].id && R->seg[j].ndocs == p->in[i].ndocs &&
                    R->seg[j].hi == p->in[i].hi;
        if (!found)
            rc = MDB_NOTFOUND;
    }
    free(R);
    return rc;
}

static void *s_mpipe_main(void *arg) {
    s_mpipe *p = arg;
    MDB_txn *rt = NULL;
    s_mreader r = {.in = p->in, .k = p->k};
    int rc = mdb_txn_begin(p->env, NULL, MDB_RDONLY, &rt);
    if (!rc)
        rc = s_mpipe_inputs_committed(p, rt);
    if (!rc)
        rc = mdb_cursor_open(rt, p->self->lex, &r.lc);
    if (!rc)
        rc = mdb_cursor_open(rt, p->self->post, &r.pc);
    pthread_mutex_lock(&p->mu);
    p->state = rc ? -1 : 1;
    if (rc)
        p->finished = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (uint64_t n = 0; !rc; n++) {
        pthread_mutex_lock(&p->mu);
        while (!p->stop && n - p->consumed >= 2)
            pthread_cond_wait(&p->cv, &p->mu);
        bool stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop)
            break;
        s_mbatch *b = &p->b[n % 2];
        int e = s_merge_read(&r, b);
        pthread_mutex_lock(&p->mu);
        if (e) {
            p->rc = e;
            p->finished = true;
        } else {
            p->produced = n + 1;
            p->finished = !b->more;
        }
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        if (e || !b->more)
            break;
    }
    if (r.lc)
        mdb_cursor_close(r.lc);
    if (r.pc)
        mdb_cursor_close(r.pc);
    if (rt)
        mdb_txn_abort(rt);
    return NULL;
}

#define S_NO_AHEAD (-1) /* not an LMDB code (those are <= -30600) nor an errno */

/* Writes batches as the read-ahead thread reads them. Returns S_NO_AHEAD
 * when it did not start (the caller reads the batches itself), else 0 or an
 * error. With `all` (the inputs are every segment: idx_post and idx_lex hold
 * nothing else), both are emptied first: the inputs are read from the read
 * txn's snapshot, and mdb_drop frees their pages from the branch pages
 * without touching (copying) each leaf as deleting key by key does. */
static int s_merge_piped(idx *self, MDB_txn *txn, s_mwriter *w, const idx_seg *in, size_t k,
                         bool all) {
    s_mpipe *p = calloc(1, sizeof *p);
    if (!p)
        return S_NO_AHEAD;
    *p = (s_mpipe){.self = self, .env = mdb_txn_env(txn), .in = in, .k = k};
    int rc = S_NO_AHEAD;
    if (pthread_mutex_init(&p->mu, NULL)) {
        free(p);
        return S_NO_AHEAD;
    }
    if (pthread_cond_init(&p->cv, NULL)) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return S_NO_AHEAD;
    }
    if (pthread_create(&p->th, NULL, s_mpipe_main, p) == 0) {
        pthread_mutex_lock(&p->mu);
        while (p->state == 0)
            pthread_cond_wait(&p->cv, &p->mu);
        bool started = p->state == 1;
        pthread_mutex_unlock(&p->mu);
        if (started && all) {
            rc = mdb_drop(txn, self->lex, 0);
            if (!rc)
                rc = mdb_drop(txn, self->post, 0);
            if (rc) {
                pthread_mutex_lock(&p->mu);
                p->stop = true;
                pthread_cond_broadcast(&p->cv);
                pthread_mutex_unlock(&p->mu);
                started = false;
            }
        }
        for (uint64_t n = 0; started; n++) {
            pthread_mutex_lock(&p->mu);
            while (p->produced <= n && !p->finished)
                pthread_cond_wait(&p->cv, &p->mu);
            bool have = p->produced > n;
            int prc = p->rc;
            pthread_mutex_unlock(&p->mu);
            if (!have) {
                rc = prc ? prc : MDB_CORRUPTED;
                break;
            }
            const s_mbatch *b = &p->b[n % 2];
            rc = s_merge_write(self, txn, w, b);
            bool more = b->more;
            pthread_mutex_lock(&p->mu);
            p->consumed = n + 1;
            if (rc)
                p->stop = true;
            pthread_cond_broadcast(&p->cv);
            pthread_mutex_unlock(&p->mu);
            if (rc || !more)
                break;
        }
        pthread_join(p->th, NULL);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    s_mbatch_free(&p->b[0]);
    s_mbatch_free(&p->b[1]);
    free(p);
    return rc;
}

/* Merge segments S->seg[a..b) (adjacent generations) into one new segment.
 * With `ahead`, the inputs are read on a second thread when they are
 * committed (see s_mpipe); the output is the same either way. */
static int s_merge(idx *self, MDB_txn *txn, idx_segs *S, size_t a, size_t b, bool ahead) {
    size_t k = b - a;
    idx_seg in[IDX_MAX_SEGS];
    memcpy(in, &S->seg[a], k * sizeof *in);
    uint32_t oid = ++S->nextseg;
    s_mwriter w = {.in = in, .oid = oid, .lw = {.seg = oid, .minlt = UINT32_MAX, .minlb = UINT32_MAX},
                   .cc = malloc(sizeof *w.cc)};
    for (size_t i = 0; i < k; i++) { /* the output's bounds: its inputs' smallest */
        if (in[i].minlt < w.lw.minlt)
            w.lw.minlt = in[i].minlt;
        if (in[i].minlb < w.lw.minlb)
            w.lw.minlb = in[i].minlb;
    }
    int rc = w.cc ? 0 : ENOMEM;
    if (!rc)
        w.cc->ok = false;
    if (!rc && ahead && idx_merge_read_ahead)
        rc = s_merge_piped(self, txn, &w, in, k, a == 0 && b == S->nsegs);
    else if (!rc)
        rc = S_NO_AHEAD;
    bool piped = rc != S_NO_AHEAD;
    if (piped)
        idx_merges_read_ahead++;
    if (rc == S_NO_AHEAD) { /* read here, on the write txn */
        s_mreader r = {.in = in, .k = k};
        s_mbatch bt = {0};
        rc = mdb_cursor_open(txn, self->lex, &r.lc);
        if (!rc)
            rc = mdb_cursor_open(txn, self->post, &r.pc);
        bool more = true;
        while (!rc && more) {
            rc = s_merge_read(&r, &bt);
            if (!rc)
                rc = s_merge_write(self, txn, &w, &bt);
            more = bt.more;
        }
        if (r.lc)
            mdb_cursor_close(r.lc);
        if (r.pc)
            mdb_cursor_close(r.pc);
        s_mbatch_free(&bt);
    }
    if (!rc)
        rc = s_lexw_flush(self, txn, &w.lw);
    idx_bytes_free(&w.lw.buf);
    free(w.es.e);
    free(w.cc);
    uint64_t written = w.written;
    /* drop the inputs (a read-ahead merge of every segment dropped them first) */
    for (size_t i = 0; i < k && !rc && !(piped && a == 0 && b == S->nsegs); i++) {
        rc = s_seg_drop(txn, self->lex, in[i].id);
        if (!rc)
            rc = s_seg_drop(txn, self->post, in[i].id);
    }
    if (rc)
        return rc;
    int64_t nd = 0;
    for (size_t i = 0; i < k; i++)
        nd += (int64_t)in[i].ndocs - in[i].dead;
    idx_seg out = {.id = oid, .lo = in[0].lo, .hi = in[k - 1].hi, .dead = 0,
                   .ndocs = nd > 0 ? (uint64_t)nd : 0, .minid = UINT64_MAX,
                   .minlt = w.lw.minlt, .minlb = w.lw.minlb};
    for (size_t i = 0; i < k; i++) {
        if (in[i].maxid && in[i].minid < out.minid)
            out.minid = in[i].minid;
        if (in[i].maxid > out.maxid)
            out.maxid = in[i].maxid;
    }
    if (!out.maxid)
        out.minid = 0;
    memmove(&S->seg[a + (written ? 1 : 0)], &S->seg[b], (S->nsegs - b) * sizeof(idx_seg));
    S->nsegs -= (uint32_t)k;
    if (written) {
        S->seg[a] = out;
        S->nsegs++;
    }
    log_debug("idx.merge", "segs=%zu into=%u docs=%llu terms=%llu read_ahead=%d", k, oid,
              (unsigned long long)out.ndocs, (unsigned long long)written, piped);
    return 0;
}

/* Tiered merging: the newest run of segments no bigger than the newest one's
 * level is merged once it has merge_factor segments; the list never grows
 * past IDX_MAX_SEGS / 2. */
static int s_merge_policy(idx *self, MDB_txn *txn, idx_segs *S) {
    for (;;) {
        size_t n = S->nsegs;
        if (n < 2)
            return 0;
        uint32_t lvl = s_level(S->seg[n - 1].ndocs);
        size_t run = 1;
        while (run < n && s_level(S->seg[n - 1 - run].ndocs) <= lvl)
            run++;
        size_t take = 0;
        if (run >= self->merge_factor && !self->bulk)
            take = run;
        else if (n > IDX_MAX_SEGS / 2)
            take = run < 2 ? 2 : run;
        if (!take)
            return 0;
        int rc = s_merge(self, txn, S, n - take, n, false);
        if (rc)
            return rc;
    }
}

/* ---------------------------------------------------------------------- */

/* Sorting the batch's terms into key order (memcmp, then shorter first:
 * LMDB's order, so the segment is appended in order): LSD radix sort on the
 * first 8 bytes, then insertion sort within runs that share them. */
typedef struct {
    uint64_t pfx;
    uint32_t ti;
    uint32_t off; /* the term's staged lexicon value (s_flush_stage), or S_UNSTAGED */
} s_tsort;

#define S_UNSTAGED UINT32_MAX

static int s_term_cmp(const struct idx_pending *pd, uint32_t a, uint32_t b) {
    const s_pterm *x = &pd->terms[a], *y = &pd->terms[b];
    size_t l = x->keylen < y->keylen ? x->keylen : y->keylen;
    int c = s_bytes_cmp(pd->keys.p + x->keyoff, pd->keys.p + y->keyoff, l);
    return c ? c : (x->keylen > y->keylen) - (x->keylen < y->keylen);
}

/* o[i].off must be set for every term i (the sort keeps it with the term). */
static int s_terms_sort(struct idx_pending *pd, s_tsort *o) {
    size_t n = pd->nterms;
    s_tsort *tmp = malloc((n ? n : 1) * sizeof *tmp);
    if (!tmp)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const s_pterm *t = &pd->terms[i];
        o[i].pfx = s_pfx8(pd->keys.p + t->keyoff, t->keylen);
        o[i].ti = (uint32_t)i;
    }
    s_tsort *src = o, *dst = tmp;
    for (int shift = 0; shift < 64; shift += 8) {
        size_t cnt[256] = {0};
        for (size_t i = 0; i < n; i++)
            cnt[(src[i].pfx >> shift) & 0xff]++;
        if (cnt[(src[0].pfx >> shift) & 0xff] == n)
            continue; /* all share this byte */
        size_t sum = 0;
        for (int b = 0; b < 256; b++) {
            size_t c = cnt[b];
            cnt[b] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[cnt[(src[i].pfx >> shift) & 0xff]++] = src[i];
        s_tsort *t = src;
        src = dst;
        dst = t;
    }
    if (src != o)
        memcpy(o, src, n * sizeof *o);
    free(tmp);
    for (size_t i = 1; i < n; i++) { /* ties on the first 8 bytes */
        s_tsort x = o[i];
        size_t j = i;
        while (j > 0 && o[j - 1].pfx == x.pfx && s_term_cmp(pd, o[j - 1].ti, x.ti) > 0) {
            o[j] = o[j - 1];
            j--;
        }
        o[j] = x;
    }
    return 0;
}

static int s_col_cmp(const void *a, const void *b) {
    const s_pcol *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* A varint of the batch's own pending entries, which s_entry_put wrote
 * whole (no bound checks): the one- and two-byte forms (frequencies,
 * lengths, a doc's field lengths) without a loop. */
static inline const uint8_t *s_pend_varint(const uint8_t *p, uint64_t *v) {
    if (p[0] < 0x80) {
        *v = p[0];
        return p + 1;
    }
    if (p[1] < 0x80) {
        *v = (uint64_t)(p[0] & 0x7f) | (uint64_t)p[1] << 7;
        return p + 2;
    }
    uint64_t r = 0;
    for (unsigned sh = 0; sh < 64; sh += 7) {
        uint8_t c = *p++;
        r |= (uint64_t)(c & 0x7f) << sh;
        if (!(c & 0x80))
            break;
    }
    *v = r;
    return p;
}

/* Term t's pending entries into ne->e[0..t->ndocs), in doc id order;
 * ENOMEM or 0. */
static int s_pterm_entries(const s_pterm *t, s_entries *ne) {
    if (s_entries_reserve(ne, t->ndocs))
        return ENOMEM;
    size_t n = 0;
    for (const s_piece *pc = t->first; pc; pc = pc->next) {
        const uint8_t *p = pc->data, *end = p + (pc == t->tail ? t->tlen : pc->len);
        while (p < end) {
            s_entry *e = &ne->e[n++];
            uint64_t lt = 0, lb = 0, pl = 0;
            uint32_t id;
            memcpy(&id, p, S_PEND_ID);
            e->docid = id;
            p += S_PEND_ID;
            p = s_pend_varint(p, &e->tft);
            p = s_pend_varint(p, &e->tfb);
            p = s_pend_varint(p, &lt);
            p = s_pend_varint(p, &lb);
            p = s_pend_varint(p, &pl);
            e->lt = (uint32_t)lt;
            e->lb = (uint32_t)lb;
            e->pos = p;
            e->poslen = (uint32_t)pl;
            p += pl;
        }
    }
    if (t->unsorted)
        qsort(ne->e, n, sizeof(s_entry), s_entry_cmp);
    return 0;
}

/* A flush's first pass: the lexicon values of the terms whose postings fit
 * in one inline block (most terms), encoded in the order the terms were
 * interned, which is the order of their records and (mostly) of their
 * first pieces in memory: sequential reads. Each is staged in st as u16 key
 * length, u16 value length, key, value; o[ti].off is its offset (S_UNSTAGED:
 * the second pass writes the term as before). The second pass, in key
 * order, then reads one compact record per staged term instead of the
 * term's record, key and pieces scattered over the batch's memory (their
 * first loads were most of a zh flush's samples). ENOMEM or 0. */
static int s_flush_stage(idx *self, const struct idx_pending *pd, s_tsort *o, s_entries *ne,
                         idx_bytes *st) {
    for (size_t ti = 0; ti < pd->nterms; ti++) {
        if (ti + 8 < pd->nterms) { /* the pieces are near each other, not in a stride */
            const s_pterm *ah = &pd->terms[ti + 8];
            if (ah->first) {
                __builtin_prefetch(ah->first);
                __builtin_prefetch((const char *)ah->first + 63);
                if (ah->tail != ah->first)
                    __builtin_prefetch(ah->tail);
            }
        }
        const s_pterm *t = &pd->terms[ti];
        o[ti].off = S_UNSTAGED;
        if (!t->ndocs || t->ndocs > IDX_BLOCK_DOCS)
            continue;
        int rc = s_pterm_entries(t, ne);
        if (rc)
            return rc;
        const uint8_t *tk = pd->keys.p + t->keyoff;
        size_t j = s_block_encode(self, ne->e, 0, t->ndocs,
                                  idx_term_runpos(self->runpos, tk, t->keylen),
                                  idx_term_ids_code(tk, t->keylen));
        if (j == 0)
            return ENOMEM;
        if (j < t->ndocs || self->scratch.len > IDX_INLINE_MAX || st->len >= S_UNSTAGED / 2)
            continue;
        if (idx_bytes_reserve(st, 4 + t->keylen + S_INLINE_HEAD + self->scratch.len))
            return ENOMEM;
        uint8_t *r = st->p + st->len;
        memcpy(r + 4, tk, t->keylen);
        uint8_t *e = s_inline_value(self, (int64_t)t->ndocs - (int64_t)t->removed, ne->e[0].docid,
                                    r + 4 + t->keylen);
        uint16_t kl = t->keylen, vl = (uint16_t)(e - (r + 4 + t->keylen));
        memcpy(r, &kl, 2);
        memcpy(r + 2, &vl, 2);
        o[ti].off = (uint32_t)st->len;
        st->len = (size_t)(e - st->p);
    }
    return 0;
}

int idx_flush(idx *self, MDB_txn *txn) {
    struct idx_pending *pd = self->pend;
    self->err = 0;
    if (!pd->nterms && !pd->ncols && !pd->ndead)
        return IDX_OK;
    int rc = 0;
    s_entries ne = {0};
    s_lexw lw = {0};
    idx_bytes st = {0};
    idx_segs *S = &pd->segs;
    s_tsort *order = malloc((pd->nterms ? pd->nterms : 1) * sizeof *order);
    if (!order) {
        rc = ENOMEM;
        goto done;
    }
    if ((rc = idx_segs_get(self, txn, S)))
        goto done;
    uint32_t gen = ++S->gen, sid = ++S->nextseg;
    lw.seg = sid;
    lw.minlt = lw.minlb = UINT32_MAX; /* the segment's bounds: its docs' smallest lengths */
    for (size_t i = 0; i < pd->ncols; i++)
        if (pd->cols[i].rec.live) {
            if (pd->cols[i].rec.len_t < lw.minlt)
                lw.minlt = pd->cols[i].rec.len_t;
            if (pd->cols[i].rec.len_b < lw.minlb)
                lw.minlb = pd->cols[i].rec.len_b;
        }
    if ((rc = s_flush_stage(self, pd, order, &ne, &st)))
        goto done;
    if (pd->nterms && s_terms_sort(pd, order)) {
        rc = ENOMEM;
        goto done;
    }
    size_t nlex = 0;
    for (size_t oi = 0; oi < pd->nterms; oi++) {
        /* terms are visited in key order, scattered in memory: prefetch the
         * staged record 8 ahead; of an unstaged term, its record 16 ahead
         * (both cache lines of its 72-byte record: `first` is in the
         * second) and the first piece and key of the one 8 ahead (cache
         * misses were most of a flush) */
        if (oi + 16 < pd->nterms && order[oi + 16].off == S_UNSTAGED) {
            const s_pterm *ah = &pd->terms[order[oi + 16].ti];
            __builtin_prefetch(ah);
            __builtin_prefetch((const char *)(ah + 1) - 1);
        }
        if (oi + 8 < pd->nterms && order[oi + 8].off != S_UNSTAGED) {
            __builtin_prefetch(st.p + order[oi + 8].off);
            __builtin_prefetch(st.p + order[oi + 8].off + 63);
        } else if (oi + 8 < pd->nterms) {
            const s_pterm *ah = &pd->terms[order[oi + 8].ti];
            if (ah->first) {
                __builtin_prefetch(ah->first);
                __builtin_prefetch((const char *)ah->first + 64);
            }
            __builtin_prefetch(pd->keys.p + ah->keyoff);
        }
        if (order[oi].off != S_UNSTAGED) {
            const uint8_t *r = st.p + order[oi].off;
            uint16_t kl, vl;
            memcpy(&kl, r, 2);
            memcpy(&vl, r + 2, 2);
            nlex++;
            if ((rc = s_lexw_add(self, txn, &lw, r + 4, kl, r + 4 + kl, vl)))
                goto done;
            continue;
        }
        s_pterm *t = &pd->terms[order[oi].ti];
        int64_t delta = (int64_t)t->ndocs - (int64_t)t->removed;
        if (!t->ndocs && !delta)
            continue;
        const uint8_t *tk = pd->keys.p + t->keyoff;
        nlex++;
        if (!t->ndocs) {
            if ((rc = s_term_write(self, txn, &lw, tk, t->keylen, delta, NULL, 0)))
                goto done;
            continue;
        }
        if ((rc = s_pterm_entries(t, &ne)) ||
            (rc = s_term_write(self, txn, &lw, tk, t->keylen, delta, ne.e, t->ndocs)))
            goto done;
    }
    if ((rc = s_lexw_flush(self, txn, &lw)))
        goto done;
    uint64_t ndocs = 0, minid = UINT64_MAX, maxid = 0;
    for (size_t i = 0; i < pd->ncols; i++)
        if (pd->cols[i].rec.live) {
            pd->cols[i].rec.live = gen;
            ndocs++;
            if (pd->cols[i].id < minid)
                minid = pd->cols[i].id;
            if (pd->cols[i].id > maxid)
                maxid = pd->cols[i].id;
        }
    if (!ndocs)
        minid = 0;
    if (maxid > S->maxid)
        S->maxid = maxid;
    if (pd->ncols) /* cols is NULL after s_pend_shrink */
        qsort(pd->cols, pd->ncols, sizeof(s_pcol), s_col_cmp); /* the id table is reset below */
    if ((rc = s_col_put(self, txn, pd->cols, pd->ncols)))
        goto done;
    if ((rc = s_meta_add(self, txn, pd->ddocs, pd->dsum_t, pd->dsum_b)))
        goto done;
    for (size_t i = 0; i < pd->ndead; i++)
        for (size_t s = 0; s < S->nsegs; s++)
            if (S->seg[s].lo <= pd->dead[i] && pd->dead[i] <= S->seg[s].hi) {
                S->seg[s].dead++;
                break;
            }
    if (nlex) {
        if (S->nsegs == IDX_MAX_SEGS && (rc = s_merge(self, txn, S, S->nsegs - 2, S->nsegs, false)))
            goto done;
        S->seg[S->nsegs++] = (idx_seg){.id = sid, .lo = gen, .hi = gen, .ndocs = ndocs,
                                       .minid = minid, .maxid = maxid, .minlt = lw.minlt,
                                       .minlb = lw.minlb};
    }
    if ((rc = s_merge_policy(self, txn, S)))
        goto done;
    rc = s_segs_put(self, txn, S);
    if (!rc && pd->ctx_ok && pd->ctx_txn == txn)
        pd->ctx_maxid = S->maxid;
done:
    idx_bytes_free(&lw.buf);
    idx_bytes_free(&st);
    free(order);
    free(ne.e);
    s_pend_reset(pd);
    if (rc) {
        log_error("idx.flush", "err=\"%s\"", mdb_strerror(rc));
        self->err = rc;
        return IDX_INTERNAL;
    }
    return IDX_OK;
}

/* Bytes s_entry_put may write for term t of the analyzed doc. */
static size_t s_entry_cap(const struct idx_pending *pd, const s_pterm *t) {
    size_t cnt = 0;
    for (uint32_t k = t->tfirst; k != UINT32_MAX; k = pd->toks[k].next)
        cnt++;
    return 50 + cnt * 5;
}

/* Encode the pending entry of term t for the analyzed doc, without its
 * docid: varint tft tfb lt lb, varint length, positions. Returns the end. */
static uint8_t *s_entry_put(const struct idx_pending *pd, const s_pterm *t, uint32_t lt,
                            uint32_t lb, uint8_t *p) {
    if (t->tfirst == t->tlast) {
        /* one token (most terms of a doc): what the loops below write for
         * it (no run boundary counts: those need two tokens) */
        const s_tok *o = &pd->toks[t->tfirst];
        p[0] = o->field == 0;
        p[1] = o->field == 1;
        p += 2;
        p += idx_varint_put(p, lt);
        p += idx_varint_put(p, lb);
        bool rp = pd->runpos && idx_term_runpos(true, pd->keys.p + t->keyoff, t->keylen);
        if (o->field == 2 || (rp && !(o->pos & 3))) {
            *p = 0;
            return p + 1;
        }
        size_t n = idx_varint_put(p + 1, rp ? o->pos >> 2 : o->pos); /* <= 5 bytes */
        *p = (uint8_t)n;
        return p + 1 + n;
    }
    uint64_t tft = 0, tfb = 0;
    for (uint32_t k = t->tfirst; k != UINT32_MAX; k = pd->toks[k].next) {
        tft += pd->toks[k].field == 0;
        tfb += pd->toks[k].field == 1;
    }
    p += idx_varint_put(p, tft);
    p += idx_varint_put(p, tfb);
    p += idx_varint_put(p, lt);
    p += idx_varint_put(p, lb);
    uint8_t *lenp = p;
    p += 1; /* the length's varint: one byte unless the positions take 128 or more */
    uint8_t *ps = p;
    bool rp = pd->runpos && idx_term_runpos(true, pd->keys.p + t->keyoff, t->keylen);
    if (rp) { /* idx_int.h RUN POSITIONS: the run boundaries' positions */
        uint64_t kt = 0, kb = 0;
        for (uint32_t k = t->tfirst; k != UINT32_MAX; k = pd->toks[k].next) {
            kt += pd->toks[k].field == 0 && (pd->toks[k].pos & 3);
            kb += pd->toks[k].field == 1 && (pd->toks[k].pos & 3);
        }
        if (kt + kb && tft + tfb > 1) {
            if (tft)
                p += idx_varint_put(p, kt);
            if (tfb)
                p += idx_varint_put(p, kb);
        }
    }
    uint32_t prev = 0;
    uint8_t field = 0;
    bool any = false;
    for (uint32_t k = t->tfirst; k != UINT32_MAX; k = pd->toks[k].next) {
        const s_tok *o = &pd->toks[k];
        if (o->field == 2 || (rp && !(o->pos & 3)))
            continue;
        if (!any || o->field != field) {
            prev = 0;
            field = o->field;
            any = true;
        }
        uint32_t pos = rp ? o->pos >> 2 : o->pos;
        p += idx_varint_put(p, pos - prev);
        prev = pos;
    }
    size_t pl = (size_t)(p - ps);
    if (pl < 0x80) {
        *lenp = (uint8_t)pl;
        return p;
    }
    uint8_t lb8[10];
    size_t ll = idx_varint_put(lb8, pl);
    memmove(ps + ll - 1, ps, pl);
    memcpy(lenp, lb8, ll);
    return p + ll - 1;
}

/* s_entry_room when the last piece is full (or there is none): a new one. */
static __attribute__((noinline)) uint8_t *s_entry_piece(struct idx_pending *pd, s_pterm *t,
                                                        size_t need) {
    s_piece *l = t->tail;
    size_t cap = l ? (size_t)t->tcap * 2 : S_PIECE_MIN;
    if (cap > S_PIECE_MAX)
        cap = S_PIECE_MAX;
    if (cap < need)
        cap = need;
    if (cap > UINT32_MAX || (!pd->ar && !(pd->ar = arena_new((size_t)1 << 20))))
        return NULL;
    s_piece *n = arena_alloc(pd->ar, sizeof *n + cap);
    if (!n)
        return NULL;
    n->next = NULL;
    n->len = 0;
    n->cap = (uint32_t)cap;
    if (l) {
        l->len = t->tlen;
        l->next = n;
    } else {
        t->first = n;
    }
    t->tail = n;
    t->tlen = 0;
    t->tcap = (uint32_t)cap;
    return n->data;
}

/* Room for `need` more bytes of whole entries at the end of term t's
 * pending entries (a new piece when the last one is full); the caller adds
 * what it wrote to t->tlen. NULL when out of memory. Inline: most entries
 * fit in the last piece (the call's own saves and restores were most of
 * it). */
static inline uint8_t *s_entry_room(struct idx_pending *pd, s_pterm *t, size_t need) {
    if (t->tail && t->tcap - t->tlen >= need)
        return t->tail->data + t->tlen;
    return s_entry_piece(pd, t, need);
}

static void s_pterm_added(s_pterm *t, uint64_t id) {
    if (t->ndocs && id < t->last)
        t->unsorted = true;
    t->last = id;
    t->ndocs++;
}

/* Append the analyzed doc's postings to the pending terms. */
static int s_pend_add(struct idx_pending *pd, uint64_t id, uint32_t lt, uint32_t lb) {
    for (size_t di = 0; di < pd->ndterms; di++) {
        s_pterm *t = &pd->terms[pd->dterms[di]];
        uint8_t *p0 = s_entry_room(pd, t, S_PEND_ID + s_entry_cap(pd, t));
        if (!p0)
            return -1;
        uint32_t id32 = (uint32_t)id;
        memcpy(p0, &id32, S_PEND_ID);
        uint8_t *p = s_entry_put(pd, t, lt, lb, p0 + S_PEND_ID);
        t->tlen += (uint32_t)(p - p0);
        s_pterm_added(t, id);
    }
    return 0;
}

/* Record the removal of the indexed version `old` of a doc: -1 on the df of
 * each of its terms, one more dead doc in the segment of its generation. */
/* The dictionary id of a site or category value (0: none or unknown). */
static uint32_t s_dict_id(idx *self, MDB_txn *txn, char kind, const char *val) {
    return val && *val ? idx_dict_lookup(self, txn, kind, val) : 0;
}

/* Check `old` against the live column record rec of the doc it claims to
 * be (idx.c's header says what that catches). On IDX_OK old's analysis is
 * in the batch's per-doc term list for s_remove, which must come next (no
 * other analysis between). IDX_OK, IDX_FAILED_PRECONDITION (logged as
 * `what`), IDX_INTERNAL (out of memory). */
static int s_old_check(idx *self, MDB_txn *txn, uint64_t id, const idx_doc *old,
                       const idx_col_rec *rec, const char *what) {
    const char *why = NULL;
    uint32_t lt, lb;
    if (old->published_at != rec->pub)
        why = "published_at";
    else if (s_dict_id(self, txn, 's', old->site) != rec->site)
        why = "site";
    else if (s_dict_id(self, txn, 'c', old->category) != rec->cat)
        why = "category";
    else if (s_analyze_doc(self->an, self->pend, old, &lt, &lb))
        return IDX_INTERNAL;
    else if (lt != rec->len_t || lb != rec->len_b)
        why = lt != rec->len_t ? "title length" : "body length";
    if (!why)
        return IDX_OK;
    log_warn(what, "id=%llu err=\"old version differs from the indexed one (%s)\"",
             (unsigned long long)id, why);
    return IDX_FAILED_PRECONDITION;
}

/* Take back the postings of the old version s_old_check just analyzed. */
static int s_remove(idx *self, const idx_col_rec *rec) {
    struct idx_pending *pd = self->pend;
    for (size_t i = 0; i < pd->ndterms; i++)
        pd->terms[pd->dterms[i]].removed++;
    if (pd->ndead == pd->capdead) {
        uint32_t *n = grow(pd->dead, &pd->capdead, sizeof *n, 64);
        if (!n)
            return -1;
        pd->dead = n;
    }
    pd->dead[pd->ndead++] = rec->live;
    pd->ddocs--;
    pd->dsum_t -= rec->len_t;
    pd->dsum_b -= rec->len_b;
    return 0;
}

/* The current column record of id, counting this batch. When the doc's
 * postings are still pending, flush first (so that a removal applies to
 * written postings). */
static int s_cur_rec(idx *self, MDB_txn *txn, uint64_t id, idx_col_rec *rec) {
    struct idx_pending *pd = self->pend;
    int rc = s_ctx(self, txn);
    if (rc)
        return s_err(self, rc, IDX_INTERNAL);
    long at = s_pcol_find(pd, id);
    if (at >= 0) {
        if (!pd->cols[at].rec.live) {
            *rec = pd->cols[at].rec;
            return IDX_OK;
        }
        if (idx_flush(self, txn) != IDX_OK)
            return IDX_INTERNAL;
    }
    if (id > pd->ctx_maxid && id > pd->max_id) { /* never indexed */
        memset(rec, 0, sizeof *rec);
        return IDX_OK;
    }
    if ((rc = idx_col_get(self, txn, id, rec)))
        return s_err(self, rc, IDX_INTERNAL);
    return IDX_OK;
}

int idx_optimize(idx *self, MDB_txn *txn) {
    if (!self || !txn)
        return IDX_INVALID_ARGUMENT;
    self->err = 0;
    if (idx_flush(self, txn) != IDX_OK)
        return IDX_INTERNAL;
    idx_segs *S = &self->pend->segs;
    int rc = idx_segs_get(self, txn, S);
    if (!rc && S->nsegs > 1)
        rc = s_merge(self, txn, S, 0, S->nsegs, true);
    if (!rc && S->nsegs == 1 && S->seg[0].dead)
        rc = s_merge(self, txn, S, 0, 1, false); /* purge stale versions */
    if (!rc)
        rc = s_segs_put(self, txn, S);
    return rc ? s_lmdb_fail(self, "optimize", rc) : IDX_OK;
}

/* The checks shared by idx_put and idx_put_analyzed: `old` must be what is
 * indexed. On IDX_OK, *rec is the current column record (and when it is
 * live, old's analysis is ready for s_remove). */
static int s_put_check(idx *self, MDB_txn *txn, uint64_t id, const idx_doc *old, idx_col_rec *rec) {
    int st = s_cur_rec(self, txn, id, rec);
    if (st)
        return st;
    if (!old && rec->live) {
        log_warn("idx.put", "id=%llu err=\"already indexed, old version not given\"",
                 (unsigned long long)id);
        return IDX_FAILED_PRECONDITION;
    }
    if (old && rec->live) {
        st = s_old_check(self, txn, id, old, rec, "idx.put");
        if (st == IDX_INTERNAL) {
            idx_discard(self);
            log_error("idx.put", "err=\"out of memory\"");
        }
        return st;
    }
    return IDX_OK;
}

/* The column record and batch totals of a doc whose postings were added. */
static int s_put_finish(idx *self, MDB_txn *txn, uint64_t id, int64_t site, int64_t cat,
                        int64_t pub, uint32_t lt, uint32_t lb) {
    struct idx_pending *pd = self->pend;
    s_pcol *pc = s_pcol_get(pd, id);
    if (!pc) {
        idx_discard(self);
        log_error("idx.put", "err=\"out of memory\"");
        return IDX_INTERNAL;
    }
    pc->rec = (idx_col_rec){.pub = pub, .len_t = lt, .len_b = lb, .site = (uint32_t)site,
                            .cat = (uint32_t)cat, .live = 1};
    pd->ddocs++;
    pd->dsum_t += lt;
    pd->dsum_b += lb;
    if (id > pd->max_id)
        pd->max_id = id;
    if (s_flush_due(self))
        return idx_flush(self, txn);
    return IDX_OK;
}

int idx_put(idx *self, MDB_txn *txn, uint64_t id, const idx_doc *doc, const idx_doc *old) {
    if (!self || !txn || !doc || id == 0 || id > IDX_ID_MAX)
        return IDX_INVALID_ARGUMENT;
    self->err = 0;
    idx_col_rec rec;
    int st = s_put_check(self, txn, id, old, &rec);
    if (st)
        return st;
    struct idx_pending *pd = self->pend;
    int64_t site = s_dict_assign(self, txn, 's', doc->site);
    int64_t cat = s_dict_assign(self, txn, 'c', doc->category);
    if (site < 0 || cat < 0)
        return s_lmdb_fail(self, "dict", self->err ? self->err : MDB_BAD_TXN);
    uint32_t lt = 0, lb = 0;
    if ((old && rec.live && s_remove(self, &rec)) || s_analyze_doc(self->an, pd, doc, &lt, &lb) ||
        s_pend_add(pd, id, lt, lb)) {
        idx_discard(self);
        log_error("idx.put", "err=\"out of memory\"");
        return IDX_INTERNAL;
    }
    return s_put_finish(self, txn, id, site, cat, doc->published_at, lt, lb);
}

/* ---------------------------------------------------------------------- */
/* analysis apart from the index (idx_analyze, idx_put_analyzed) */

struct idx_analyzer {
    text_analyzer *an;
    struct idx_pending *pd; /* a per-doc term table (no posting data) */
};

typedef struct {
    uint32_t hash;    /* s_hash of the key */
    uint32_t keyoff;  /* in bytes */
    uint32_t entoff;  /* the pending entry without its docid, in bytes */
    uint32_t entlen;
    uint16_t keylen;
} s_aterm;

/* One allocation: this struct, terms[nterms], then the bytes (one free
 * per doc on the thread that indexes it). */
struct idx_analyzed {
    uint32_t lt, lb;
    int64_t pub;
    uint32_t site_off, cat_off; /* NUL-terminated copies, in bytes */
    s_aterm *terms;
    size_t nterms;
    uint8_t *bytes;
};

idx_analyzer *idx_analyzer_new(const idx_options *opts) {
    idx_analyzer *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    if (sodium_init() < 0) { /* idx_term_key hashes long terms */
        free(self);
        return NULL;
    }
    text_options to = text_options_default();
    to.stopwords = opts ? opts->stopwords : NULL;
    to.stem_cache = TEXT_STEM_CACHE_BULK; /* it analyzes articles by the thousand */
    self->an = text_analyzer_new(&to);
    self->pd = calloc(1, sizeof *self->pd);
    if (!self->an || !self->pd) {
        idx_analyzer_destroy(&self);
        return NULL;
    }
    self->pd->runpos = !to.stopwords || !to.stopwords[0];
    return self;
}

void idx_analyzer_destroy(idx_analyzer **self_p) {
    if (!self_p || !*self_p)
        return;
    idx_analyzer *self = *self_p;
    s_analysis_free(&self->an, &self->pd);
    free(self);
    *self_p = NULL;
}

void idx_analyzed_free(idx_analyzed **self_p) {
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

/* Empty the analyzer's per-doc term table (only the slots in use). */
static void s_aterms_reset(struct idx_pending *pd) {
    if (pd->nterms * 16 > pd->nslots) {
        memset(pd->slots, 0, pd->nslots * sizeof *pd->slots);
    } else {
        for (size_t i = 0; i < pd->nterms; i++) {
            uint64_t want = (uint64_t)pd->terms[i].hash << 32 | ((uint32_t)i + 1);
            size_t k = pd->terms[i].hash & (pd->nslots - 1);
            while (pd->slots[k] != want)
                k = (k + 1) & (pd->nslots - 1);
            pd->slots[k] = 0;
        }
    }
    pd->nterms = 0;
    pd->keys.len = 0;
}

int idx_analyze(idx_analyzer *self, const idx_doc *doc, idx_analyzed **out) {
    if (!out)
        return IDX_INVALID_ARGUMENT;
    *out = NULL;
    if (!self || !doc)
        return IDX_INVALID_ARGUMENT;
    struct idx_pending *pd = self->pd;
    uint32_t lt = 0, lb = 0;
    idx_analyzed *a = NULL;
    if (s_analyze_doc(self->an, pd, doc, &lt, &lb) == 0) {
        size_t sl = doc->site ? strlen(doc->site) : 0, cl = doc->category ? strlen(doc->category) : 0;
        /* s_entry_cap of every term: each token is in one term's chain */
        size_t need = pd->keys.len + sl + 1 + cl + 1 + 50 * pd->ndterms + 5 * pd->ntoks;
        a = malloc(sizeof *a + pd->ndterms * sizeof(s_aterm) + need);
        if (a) {
            memset(a, 0, sizeof *a);
            a->terms = (s_aterm *)(a + 1);
            a->bytes = (uint8_t *)(a->terms + pd->ndterms);
            /* the doc's keys as they are in pd->keys (the table holds this
             * doc's terms only: s_aterms_reset), then the entries */
            if (pd->keys.len)
                memcpy(a->bytes, pd->keys.p, pd->keys.len);
            size_t len = pd->keys.len;
            for (size_t di = 0; di < pd->ndterms; di++) {
                const s_pterm *t = &pd->terms[pd->dterms[di]];
                s_aterm *at = &a->terms[a->nterms++];
                at->hash = t->hash;
                at->keylen = t->keylen;
                at->keyoff = t->keyoff;
                at->entoff = (uint32_t)len;
                uint8_t *e = s_entry_put(pd, t, lt, lb, a->bytes + len);
                at->entlen = (uint32_t)(e - (a->bytes + len));
                len += at->entlen;
            }
            a->site_off = (uint32_t)len;
            if (sl)
                memcpy(a->bytes + len, doc->site, sl);
            a->bytes[len + sl] = 0;
            len += sl + 1;
            a->cat_off = (uint32_t)len;
            if (cl)
                memcpy(a->bytes + len, doc->category, cl);
            a->bytes[len + cl] = 0;
        }
    }
    s_aterms_reset(pd);
    if (!a) {
        log_error("idx.analyze", "err=\"out of memory\"");
        return IDX_INTERNAL;
    }
    a->lt = lt;
    a->lb = lb;
    a->pub = doc->published_at;
    *out = a;
    return IDX_OK;
}

int idx_put_analyzed(idx *self, MDB_txn *txn, uint64_t id, const idx_analyzed *a,
                     const idx_doc *old) {
    if (!self || !txn || !a || id == 0 || id > IDX_ID_MAX)
        return IDX_INVALID_ARGUMENT;
    self->err = 0;
    idx_col_rec rec;
    int st = s_put_check(self, txn, id, old, &rec);
    if (st)
        return st;
    struct idx_pending *pd = self->pend;
    const char *sv = (const char *)a->bytes + a->site_off;
    const char *cv = (const char *)a->bytes + a->cat_off;
    int64_t site = s_dict_assign(self, txn, 's', sv);
    int64_t cat = s_dict_assign(self, txn, 'c', cv);
    if (site < 0 || cat < 0)
        return s_lmdb_fail(self, "dict", self->err ? self->err : MDB_BAD_TXN);
    if (old && rec.live && s_remove(self, &rec))
        goto oom;
    for (size_t i = 0; i < a->nterms; i++) {
        const s_aterm *at = &a->terms[i];
        long ti = s_intern_h(pd, a->bytes + at->keyoff, at->keylen, at->hash);
        if (ti < 0)
            goto oom;
        s_pterm *t = &pd->terms[ti];
        uint8_t *p = s_entry_room(pd, t, S_PEND_ID + (size_t)at->entlen);
        if (!p)
            goto oom;
        uint32_t id32 = (uint32_t)id;
        memcpy(p, &id32, S_PEND_ID);
        s_copy(p + S_PEND_ID, a->bytes + at->entoff, at->entlen);
        t->tlen += S_PEND_ID + at->entlen;
        s_pterm_added(t, id);
    }
    return s_put_finish(self, txn, id, site, cat, a->pub, a->lt, a->lb);
oom:
    idx_discard(self);
    log_error("idx.put", "err=\"out of memory\"");
    return IDX_INTERNAL;
}

void idx_prefetch_analyzed(const idx *self, const idx_analyzed *a, int stage) {
    if (!self || !a || !self->pend->nslots)
        return;
    const struct idx_pending *pd = self->pend;
    size_t mask = pd->nslots - 1;
    for (size_t i = 0; i < a->nterms; i++) {
        uint32_t h = a->terms[i].hash;
        const uint64_t *slot = &pd->slots[h & mask];
        if (stage == 0) {
            __builtin_prefetch(slot);
            continue;
        }
        uint64_t v = *slot; /* the first probe: most terms are found there */
        if (!v || (uint32_t)(v >> 32) != h)
            continue;
        const s_pterm *t = &pd->terms[(uint32_t)v - 1];
        if (stage == 1) {
            __builtin_prefetch(t);
            __builtin_prefetch((const char *)(t + 1) - 1);
        } else {
            if (t->tail)
                __builtin_prefetch(t->tail->data + t->tlen, 1);
            if (t->keylen > 8) /* s_intern_h compares the key's bytes after the 8 in k8 */
                __builtin_prefetch(pd->keys.p + t->keyoff + 8);
        }
    }
}

int idx_del(idx *self, MDB_txn *txn, uint64_t id, const idx_doc *old) {
    if (!self || !txn || id == 0)
        return IDX_INVALID_ARGUMENT;
    self->err = 0;
    idx_col_rec rec;
    int st = s_cur_rec(self, txn, id, &rec);
    if (st)
        return st;
    if (!rec.live)
        return IDX_OK;
    if (!old) {
        log_warn("idx.del", "id=%llu err=\"old version missing\"", (unsigned long long)id);
        return IDX_FAILED_PRECONDITION;
    }
    st = s_old_check(self, txn, id, old, &rec, "idx.del");
    if (st == IDX_FAILED_PRECONDITION)
        return st;
    struct idx_pending *pd = self->pend;
    s_pcol *pc = NULL;
    if (st || s_remove(self, &rec) || !(pc = s_pcol_get(pd, id))) {
        idx_discard(self);
        log_error("idx.del", "err=\"out of memory\"");
        return IDX_INTERNAL;
    }
    memset(&pc->rec, 0, sizeof pc->rec);
    if (s_flush_due(self))
        return idx_flush(self, txn);
    return IDX_OK;
}

int idx_clear(idx *self, MDB_txn *txn) {
    self->err = 0;
    idx_discard(self);
    idx_terms_clear(self->terms);
    /* Segment ids are not given again: a segment's id names its contents for
     * as long as the data lives (the typo scan keeps term lists by segment,
     * also in other idx objects that do not see this clear); a list that
     * cannot be read does not stop the clear (ids then start again). */
    idx_segs sg;
    int rc = idx_segs_get(self, txn, &sg);
    if (rc)
        sg.nextseg = 0;
    MDB_dbi dbs[] = {self->post, self->lex, self->col, self->dict, self->meta};
    for (size_t i = 0; i < 5; i++) {
        rc = mdb_drop(txn, dbs[i], 0);
        if (rc)
            return s_lmdb_fail(self, "drop", rc);
    }
    if (sg.format == IDX_FORMAT && sg.nextseg) {
        idx_segs keep = {.nextseg = sg.nextseg};
        if ((rc = s_segs_put(self, txn, &keep)))
            return s_lmdb_fail(self, "clear", rc);
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
    idx_segs sg;
    if (idx_segs_get(self, txn, &sg) == 0)
        out->segments = sg.nsegs;
    return IDX_OK;
}
