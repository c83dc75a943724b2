/* idx_int.h: internals shared by idx.c (write side) and idx_search.c. */
#ifndef BULLETIN_IDX_INT_H
#define BULLETIN_IDX_INT_H

#include "idx.h"
#include "text.h"

#include <string.h>

#define IDX_BLOCK_DOCS 128
#define IDX_BLOCK_BYTES 1800
#define IDX_KEY_MAX (4 + IDX_TERM_MAX + 1 + 8)
#define IDX_FORMAT 20 /* 1: before segments (no "segs" key); 2: segments, draft; 3: two varints of
                         frequencies per doc and a 5-varint block head; 4: the exact bit in the
                         positions of every term; 5: bare positions for exact
                         forms and terms from a byte >= 0x80; 6: their blocks'
                         (0, 1) frequencies as a bitmap; 7: their
                         one-doc blocks with (0, 1) as n = 0; 8: the bitmap and
                         n = 0 for every term, not only CJK ones; 9: column chunks
                         of 236 records, each field as wide as the chunk needs (was
                         127 records of 32 bytes); 10: the bitmap and n = 0 for
                         CJK terms only again (8-9: -8.4 MB en, but 5-15% more worker
                         CPU per English search through the broker); 11: for
                         every term again, decoded without a branch per doc;
                         12: column records without the content hash, 312 a
                         chunk; 13: CJK unigrams keep only their run-boundary
                         positions (RUN POSITIONS below); 14: their
                         blocks' doc ids as Elias-Fano, a bitmap or varints,
                         whichever is smallest (BLOCK DOC IDS below); 15:
                         lexicon entries framed by a header byte, compact
                         kinds (LEXICON PAGES below); 16: compact one-doc
                         entries without their min lengths (the segment's:
                         idx_seg); 17: posting keys with 4-byte doc ids;
                         18: CJK bigrams' block doc ids coded as the
                         unigrams'; 19: CJK terms' blocks of 2-8 docs
                         without their largest frequencies (IDX_HEAD_NOMAX);
                         20: other terms' blocks of >= IDX_IDS_CODE_N docs
                         code their ids too (BLOCK DOC IDS below) */
#define IDX_MAX_SEGS 64
#define IDX_MERGE_FACTOR 8
#define IDX_TAG_PREFIX "\x02t"

/* column record (in memory; stored in column chunks, below). A record whose
 * live is 0 (deleted or never indexed) is all zeros. */
typedef struct {
    int64_t pub;
    uint32_t len_t, len_b;
    uint32_t site, cat;
    uint32_t live;
} idx_col_rec;

/* COLUMN CHUNKS: idx_col maps chunk id (doc id / IDX_COL_PER_CHUNK, 8 bytes
 * BE) to the records of its IDX_COL_PER_CHUNK docs, column by column, each
 * field as wide as its largest value in the chunk (0-4 bytes; pub 0-8):
 *   pub base (8 bytes LE: the smallest pub of the chunk's live records),
 *   flags (bit 0: pub deltas in seconds, i.e. every live pub is a multiple
 *   of 1000 ms), 6 widths (pub - base, len_t, len_b, site, cat, live),
 *   then each field's column (values little-endian), then 8 bytes of zeros
 *   (a value is read with a 4- or 8-byte load and masked).
 * Records with live 0 are stored as zeros (their pub reads as the base).
 * ~12 bytes a record (pub 4, len_t 1, len_b 2, site 2, cat 2, live 1) on
 * the en and zh corpora: 312 records fill one 4 KiB overflow page (at most
 * 4,080 bytes of value: 23 + 312 x 13 = 4,079) with room for a byte more per
 * record (live grows to 2 bytes after 255 flushes); idx_col's leaves keep
 * ~170 keys, so a query's next chunk is mostly on the cursor's leaf (values
 * small enough to sit on the leaves, two per leaf, made a tree a level
 * deeper and a descent from the root for most chunk changes). A chunk that
 * needs more than a page is still valid. A reader asks for the fields it
 * needs (the facet count: site and cat; the generation check: live; BM25:
 * the lengths), each one multiply, load and mask. */
#define IDX_COL_PER_CHUNK 312
enum { IDX_CF_PUB, IDX_CF_LT, IDX_CF_LB, IDX_CF_SITE, IDX_CF_CAT, IDX_CF_LIVE, IDX_COL_FIELDS };
#define IDX_COL_HEAD (8 + 1 + IDX_COL_FIELDS)
#define IDX_COL_PAD 8
#define IDX_COL_MAX (IDX_COL_HEAD + IDX_COL_PER_CHUNK * (8 + 4 * (IDX_COL_FIELDS - 1)) + IDX_COL_PAD)

/* One column of an opened chunk: value i is the load at p + i * w, masked. */
typedef struct {
    const uint8_t *p;
    uint64_t mask;
    uint64_t w;
} idx_colfield;

typedef struct {
    idx_colfield f[IDX_COL_FIELDS];
    uint64_t base, unit; /* pub = base + delta * unit (modulo 2^64) */
    /* the layout of the last chunk opened (chunks mostly share one): its
     * flags and widths, length (0: none) and column offsets */
    uint64_t lay;
    size_t len;
    uint32_t off[IDX_COL_FIELDS];
} idx_colchunk;

/* Read a stored chunk's layout (v[0..len) must stay valid while c is used);
 * v NULL: an absent chunk (every record zero). c must be zeroed or opened
 * before (it keeps the last layout). 0, or -1 when malformed (c is then the
 * absent chunk). */
int idx_colchunk_open(idx_colchunk *c, const void *v, size_t len);
/* Encode recs[0..IDX_COL_PER_CHUNK) into out (IDX_COL_MAX bytes); returns
 * the length. */
size_t idx_colchunk_encode(const idx_col_rec *recs, uint8_t *out);

/* 64 bits from q, little-endian (8 bytes readable at q). */
static inline uint64_t idx_le64(const uint8_t *q) {
    uint64_t v;
    memcpy(&v, q, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline uint32_t idx_colfield_u32(const idx_colfield *f, size_t slot) {
    uint32_t v;
    memcpy(&v, f->p + slot * f->w, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v & (uint32_t)f->mask;
}

static inline uint32_t idx_colchunk_u32(const idx_colchunk *c, int field, size_t slot) {
    return idx_colfield_u32(&c->f[field], slot);
}

static inline int64_t idx_colchunk_pub(const idx_colchunk *c, size_t slot) {
    uint64_t v = idx_le64(c->f[IDX_CF_PUB].p + slot * c->f[IDX_CF_PUB].w);
    return (int64_t)(c->base + (v & c->f[IDX_CF_PUB].mask) * c->unit);
}

/* Record `slot` (< IDX_COL_PER_CHUNK) of an opened chunk. */
void idx_colchunk_get(const idx_colchunk *c, size_t slot, idx_col_rec *r);

typedef struct {
    uint64_t docs, sum_t, sum_b;
} idx_meta_stats;

/* A segment: the postings of one flush, or of a merge of adjacent ones.
 * Its keys start with its id; docs indexed by flushes lo..hi (generations)
 * have their postings here; `dead` counts doc versions removed since it was
 * written (their postings stay until a merge: filtered at query time by the
 * doc's column record, whose `live` is the generation of its postings). */
typedef struct {
    uint32_t id, lo, hi, dead;
    uint64_t ndocs;
    uint64_t minid, maxid; /* range of the doc ids with postings here */
    /* lower bounds of its docs' title and body lengths: the block bounds of
     * its compact one-doc lexicon entries (LEXICON PAGES) */
    uint32_t minlt, minlb;
} idx_seg;

typedef struct {
    uint32_t format, gen, nextseg, nsegs;
    uint64_t maxid;        /* largest doc id ever indexed (never decreases) */
    idx_seg seg[IDX_MAX_SEGS];
} idx_segs;

/* growable byte buffer */
typedef struct {
    uint8_t *p;
    size_t len, cap;
} idx_bytes;

int idx_bytes_reserve(idx_bytes *b, size_t extra);
void idx_bytes_free(idx_bytes *b);

struct idx_pending;
struct idx_terms;

struct idx {
    MDB_dbi post, lex, col, dict, meta;
    double k1, b, wt;
    bool typos;
    uint32_t max_pending;
    uint32_t merge_factor;
    bool bulk; /* idx_set_bulk */
    size_t bulk_bytes; /* idx_set_bulk: the buffer's bound in bytes (0: IDX_BULK_MAX_PENDING docs) */
    bool runpos; /* no stop words: CJK unigrams keep run-boundary positions only */
    text_analyzer *an;
    struct idx_pending *pend;
    idx_bytes scratch, scratch2;
    int err; /* idx_error: the code behind the last write call's IDX_INTERNAL, 0 unknown */
    struct idx_terms *terms; /* the typo scan's term lists (idx_terms.h), made on first use */
};

static inline size_t idx_varint_put(uint8_t *p, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* The bytes idx_varint_put writes for v, without writing them. */
static inline size_t idx_varint_len(uint64_t v) {
    return (size_t)((63 - __builtin_clzll(v | 1)) * 9 + 73) / 64;
}

/* Decode a varint; returns NULL on truncation/overflow. */
static inline const uint8_t *idx_varint_get(const uint8_t *p, const uint8_t *end, uint64_t *v) {
    uint64_t r = 0;
    for (int s = 0; s < 64 && p < end; s += 7) {
        uint8_t c = *p++;
        r |= (uint64_t)(c & 0x7f) << s;
        if (!(c & 0x80)) {
            *v = r;
            return p;
        }
    }
    return NULL;
}

/* idx_varint_get with the one-byte case first (most lengths, deltas and
 * frequencies are below 128): no loop for it. */
static inline const uint8_t *idx_varint_get1(const uint8_t *p, const uint8_t *end, uint64_t *v) {
    if (p < end && *p < 0x80) {
        *v = *p;
        return p + 1;
    }
    return idx_varint_get(p, end, v);
}

/* Past n varints from b, or NULL when they run past end. A varint ends at
 * its first byte below 0x80: those are counted 8 bytes at a time (a
 * phrase check skips the positions of every doc of the block before its
 * candidate; one varint at a time, that loop was most of the check). */
static inline const uint8_t *idx_varints_skip(const uint8_t *b, const uint8_t *end, uint64_t n) {
    while (n && end - b >= 8) {
        uint64_t w = idx_le64(b);
        uint64_t t = ~w & 0x8080808080808080ull; /* the last bytes of varints */
        /* their count: one bit per byte lane, summed into the top byte by
         * the multiply (at most 8: no carry). __builtin_popcountll is a
         * libgcc call on the baseline x86-64 target. */
        uint64_t c = ((t >> 7) * 0x0101010101010101ull) >> 56;
        if (c < n) {
            n -= c;
            b += 8;
            continue;
        }
        while (--n) /* the n-th last byte in this word */
            t &= t - 1;
        return b + (__builtin_ctzll(t) >> 3) + 1;
    }
    for (; n; b++) {
        if (b >= end)
            return NULL;
        n -= *b < 0x80;
    }
    return b;
}

/* A doc's frequencies in a block, one varint for most docs (tf_title is
 * mostly 0 or 1, tf_body below 32): tf_body << 2 | min(tf_title, 3), then
 * varint tf_title - 3 when tf_title >= 3. Returns the bytes written (<= 20). */
static inline size_t idx_tf_put(uint8_t *p, uint64_t tft, uint64_t tfb) {
    size_t n = idx_varint_put(p, tfb << 2 | (tft < 3 ? tft : 3));
    if (tft >= 3)
        n += idx_varint_put(p + n, tft - 3);
    return n;
}

/* Decode idx_tf_put's frequencies; NULL when truncated or out of range. */
static inline const uint8_t *idx_tf_get(const uint8_t *p, const uint8_t *end, uint64_t *tft,
                                        uint64_t *tfb) {
    uint64_t v, x = 0;
    if (!(p = idx_varint_get(p, end, &v)))
        return NULL;
    if ((v & 3) == 3 && (!(p = idx_varint_get(p, end, &x)) || x > UINT32_MAX))
        return NULL;
    *tft = (v & 3) + x;
    *tfb = v >> 2;
    return p;
}

/* Whether a term's positions carry the exact bit (stored as pos << 1 |
 * exact): only a stem can occur in a surface form other than itself
 * (text.h). Exact forms ("\x01" ...) and words starting with a byte >= 0x80
 * (CJK terms, words the stemmer does not touch) are always exact: their
 * positions are stored bare. Hashed long terms ("\x03" ...) keep the bit. */
static inline bool idx_term_exact_bit(const uint8_t *tk, size_t tkl) {
    return !(tkl && (tk[0] == (uint8_t)TEXT_EXACT_PREFIX || tk[0] >= 0x80));
}

/* RUN POSITIONS: in an index without stop words, a CJK unigram (one CJK
 * character, text_cjk_char) keeps only the positions of its occurrences at a
 * CJK run's boundary: the first or last character of a run (a run is what
 * text.c pairs into bigrams: CJK characters with no separator or word
 * between). ~36% of zh's unigram occurrences; tf stays exact. A phrase never
 * needs the others: a lone query character C (one no query bigram covers)
 * has a phrase neighbour at the next or previous position (no stop words: no
 * gaps), and
 *   after a word:                C at p  <=>  C is stored at p (p starts a run)
 *   after the character B:       C at p  <=>  C is stored at p, or the
 *                                             bigram BC is at p - 1
 * and symmetrically before a word or a character D (bigram CD at p); see
 * idx_search.c's s_phrase_field. Per doc in a block, the positions part is:
 * nothing when no occurrence is at a boundary; else, when tf is 1, the one
 * position; else varint k_title (when tf_title > 0), varint k_body (when
 * tf_body > 0) and those positions, each field delta-coded from 0. A block
 * of more than one doc ENDS with a bitmap like the (0, 1) one (bit i: doc i
 * has a positions part); a one-doc block has one when bytes follow its
 * frequencies. With stop words every position is kept, as for other terms
 * (idx.runpos false): a query stop word leaves a gap beside a character. */
static inline bool idx_term_runpos(bool on, const uint8_t *tk, size_t tkl) {
    return on && (tkl == 3 || tkl == 4) && tk[0] >= 0xE1 && text_cjk_char((const char *)tk, tkl);
}

/* THE (0, 1) BITMAP: every block of more than one doc marks the docs whose
 * frequencies are (tf_title 0, tf_body 1) in a bitmap instead of storing
 * their idx_tf_put code (CJK unigrams and bigrams have those frequencies in
 * ~80% of their postings, English stems and exact forms in most of theirs;
 * formats 6-7 and 10 had it for CJK terms only). Its decode (s_sub_tf) must
 * not branch on the bit: in formats 8-9 a branch per doc cost 5-15% of an
 * English search (bench/README "The (0, 1) frequency bitmap for every
 * term"). The bitmap (idx_tf_one_bytes(n): bit i & 7 of byte i / 8 for doc
 * i) follows the doc-id deltas; the frequencies after it leave out the
 * marked docs. A one-doc block has no bitmap (its frequencies follow the
 * header). */
static inline bool idx_tf_is_one(uint64_t tft, uint64_t tfb) {
    return tft == 0 && tfb == 1;
}
static inline size_t idx_tf_one_bytes(uint64_t n) {
    return n > 1 ? (size_t)(n + 7) / 8 : 0;
}
/* The bitmap of a one-doc block whose doc has (0, 1) (idx_bhead.one). */
static inline const uint8_t *idx_tf_one_single(void) {
    static const uint8_t one = 1;
    return &one;
}

static inline void idx_be64(uint8_t *p, uint64_t v) {
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}
static inline uint64_t idx_get_be64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static inline void idx_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline uint32_t idx_get_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t idx_zz(int64_t v) {
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}
static inline int64_t idx_unzz(uint64_t v) {
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* Term -> key bytes (hashing long terms). Returns the key length (<= IDX_TERM_MAX). */
size_t idx_term_key(const char *term, size_t len, uint8_t *out);
/* Lexicon key: segment id BE, term key. Returns its length. */
size_t idx_lex_key(uint32_t seg, const uint8_t *tk, size_t tklen, uint8_t *out);
/* Posting key: segment id BE, term key, 0, docid (4 bytes BE: doc ids are
 * at most IDX_ID_MAX, idx_put refuses others; a larger docid, as a seek's
 * target, is written as IDX_ID_MAX). Returns its length (tklen + IDX_POST_KEY_EXTRA). */
#define IDX_POST_KEY_EXTRA ((size_t)9)
size_t idx_post_key(uint32_t seg, const uint8_t *tk, size_t tklen, uint64_t docid, uint8_t *out);
/* The doc id of posting key k of a term of tklen bytes. */
static inline uint64_t idx_post_key_id(const void *k, size_t tklen) {
    return idx_get_be32((const uint8_t *)k + tklen + 5);
}
/* The segment list (zeroed when the index is empty). 0 or an LMDB error. */
int idx_segs_get(idx *self, MDB_txn *txn, idx_segs *s);

/* For tests: the lexicon entries a merge reads per input and batch (4096),
 * whether idx_optimize's merge of committed segments may read them on a
 * second thread (true), and how many merges did (counted on the merging
 * thread). Set them with no merge running. */
extern size_t idx_merge_batch;
extern bool idx_merge_read_ahead;
extern uint64_t idx_merges_read_ahead;
/* A block's header (block-max bounds for BM25: the largest tf and the
 * shortest field lengths among its docs). Stored as varint n, [the largest
 * frequencies as idx_tf_put, only when n > 1], varint min title length,
 * varint min body length; a block of one doc takes maxt/maxb from that doc's
 * frequencies, which follow the header (a one-doc block has no id deltas).
 * After the header: the n - 1 doc ids (BLOCK DOC IDS below), [the (0, 1) bitmap, n > 1],
 * the docs' frequencies (idx_tf_put), their positions. A one-doc block
 * whose doc has (0, 1) stores n = 0 and no frequencies (decoded as n = 1,
 * `one` set). */
typedef struct {
    uint64_t n, maxt, maxb, minlt, minlb;
    bool one; /* n = 0 was stored: one doc, (0, 1), no frequencies code */
    bool derive; /* no largest frequencies stored (IDX_HEAD_NOMAX): maxt
                    and maxb read 0; the reader takes them from the codes */
} idx_bhead;
/* A block of 2..IDX_HEAD_NOMAX docs of a CJK term (idx_term_ids_code) stores
 * no largest frequencies: most of zh's bigram blocks are small and inline,
 * and their max code was ~1 byte of ~30; the search derives them from the
 * block's codes when it needs the block's bound (s_post_bound). */
#define IDX_HEAD_NOMAX 8
/* Decode a block's header (ef: a CJK term's block, idx_term_ids_code);
 * returns the rest of the block (its doc ids), NULL if malformed. */
const uint8_t *idx_block_head(const uint8_t *p, const uint8_t *end, idx_bhead *h, bool ef);

/* BLOCK DOC IDS (formats 14-17: CJK unigrams only, whose lists are dense:
 * 22.5 of zh's 150.6 MB were their varint deltas, 30.6 the bigrams'; 18-19:
 * CJK unigrams and bigrams, idx_term_ids_code; 20: also every other term's
 * blocks of at least IDX_IDS_CODE_N docs: a block of en's frequent terms
 * spans a few hundred ids, a bitmap of ~45 bytes against ~127 one-byte
 * deltas). In such a block (idx_block_ids_coded) the n - 1 doc-id deltas
 * are replaced by a code of the values v_k = doc_{k+1} - first
 * (0 < v_0 < ... < v_{m-1} = U, m = n - 1), the smallest of three, chosen
 * by its first byte:
 *   0-31 (L): Elias-Fano, one little-endian bit stream (bit i: bit i & 7 of
 *        byte i / 8): m low parts of L bits (v_k & (2^L - 1)), then the high
 *        parts in unary: bit (v_k >> L) + k of the rest set for each k; it
 *        ends with the byte of the last set bit (m * L + (U >> L) + m bits);
 *   IDX_IDS_BITMAP: bit v - 1 set for each value (ceil(U / 8) bytes);
 *   IDX_IDS_VARINT: the m deltas as varints (as other blocks').
 * A block of a term other than a CJK one takes the bitmap also when it is
 * larger than an Elias-Fano code, up to IDX_IDS_BITMAP_SLACK times its size
 * (and no larger than the varints): the search reads a bitmap in place
 * (s_bm_seek, s_window_bits) where it decodes the other codes whole (en: 60.4
 * -> 60.5 MB). Other blocks of n > 1 docs store the m deltas as varints, no
 * code byte.
 * A reader decodes all m at once (the search's blocks are decoded whole). */
static inline bool idx_term_ids_code(const uint8_t *tk, size_t tkl) {
    if (tkl < 3 || tk[0] < 0xE1)
        return false;
    size_t a = tk[0] >= 0xF0 ? 4 : 3, b = tkl - (tkl < a ? tkl : a);
    return text_cjk_char((const char *)tk, tkl < a ? tkl : a) &&
           (b == 0 || ((b == 3 || b == 4) && text_cjk_char((const char *)tk + a, b)));
}
#define IDX_IDS_BITMAP 0x40
#define IDX_IDS_VARINT 0x41
#define IDX_IDS_CODE_N 8 /* other terms' blocks of this many docs or more are coded */
#define IDX_IDS_BITMAP_SLACK 2
/* Does a block of n docs of a term (ef: idx_term_ids_code) code its ids? */
static inline bool idx_block_ids_coded(bool ef, uint64_t n) {
    return n > 1 && (ef || n >= IDX_IDS_CODE_N);
}
/* Encode the ids d[1..n) of a block that starts at d[0] into p (nothing
 * when n < 2; ef: idx_term_ids_code); returns the bytes written: at most 1
 * + the varint deltas' bytes. Ids that do not rise (only a corrupt block's)
 * are written as varints, which wrap back to them. */
size_t idx_block_ids_put(uint8_t *p, const uint64_t *d, size_t n, bool ef);
/* Decode idx_block_ids_put's ids of a block of n docs into d[1..n) (d[0] =
 * first is set too); returns the byte after them, NULL if malformed. */
const uint8_t *idx_block_ids_get(const uint8_t *p, const uint8_t *end, uint64_t first, size_t n,
                                 bool ef, uint64_t *d);

int idx_meta_get(idx *self, MDB_txn *txn, idx_meta_stats *st);
/* Column record of a doc (zeroed if absent). */
int idx_col_get(idx *self, MDB_txn *txn, uint64_t id, idx_col_rec *r);
/* Dictionary: value -> id (0 when absent). */
uint32_t idx_dict_lookup(idx *self, MDB_txn *txn, char kind, const char *v);
/* id -> value (copied into out). Returns length or -1. */
long idx_dict_name(idx *self, MDB_txn *txn, char kind, uint32_t id, char *out, size_t cap);

/* LEXICON PAGES: idx_lex holds, per segment, pages keyed [seg][first term]
 * whose value is a run of entries in term order. A term's VALUE is
 *   varint zigzag(df delta) [varint first docid, inline block]
 * (no inline block: the term's blocks are in idx_post); an entry frames it
 * as (format 15; before: varint shared, varint suffix length, suffix,
 * varint value length, value):
 *   header byte: bits 0-1 kind, bits 2-4 shared (bytes in common with the
 *     previous term of the page), bits 5-7 suffix length; a length of 7 or
 *     more stores 7 there and varint (length - 7) follows the header
 *     (shared's first);
 *   suffix;
 *   kind 0: varint value length, value (as it is);
 *   kind 1: an inline block whose df delta is its doc count (n; 1 for a
 *     stored n = 0): varint length, varint first docid, block;
 *   kind 2: a one-doc (0, 1) block whose df delta is 1, whose positions
 *     are one varint and whose min lengths are at least the segment's
 *     (idx_seg minlt, minlb) (IDX_LEX_ONE): varint first docid, varint
 *     position (the entry ends there); read as the block n = 0, the
 *     segment's min lengths, the position (its bounds looser than the
 *     doc's own: a df-1 term's one doc, scored anyway when a candidate);
 *   kind 3: no inline block: varint zigzag(df delta).
 * Kinds 1-3 leave out what the value's form implies (~4.6 of zh's 2.36M
 * bigram entries' ~8.4 bytes of framing, df and n: bench/README "The
 * lexicon entries' framing"). Readers see an entry through idx_lexval.
 * Packing ~1 KB of entries per key (like FTS5's segment leaves) makes a
 * flush, a merge and a drop cost per page, not per term. */
/* A page's LMDB node (8-byte node header, key, value) is kept within a
 * third of a 4 KiB leaf page (4080 bytes after the page header; 2 bytes of
 * index per node, nodes of even size), so three pages fill a leaf. Pages of
 * ~1.5 KB (two per leaf) left 27% of idx_lex's pages empty; a quarter of a
 * leaf (until format 17) left 1.1 MB more of zh's index in page keys and
 * page tails than a third; a half would save 2.1 MB, but a lookup's walk to
 * its entry cost +1.6% of zh's search instructions. An entry larger than
 * that has a page of its own. */
#define IDX_LEX_NODE 1358 /* 3 x (1358 + 2) = 4080 */
#define IDX_INLINE_MAX 1000 /* larger single blocks go to idx_post */
enum { IDX_LEX_ASIS, IDX_LEX_INL, IDX_LEX_ONE, IDX_LEX_POST };

typedef struct {
    MDB_cursor *c;
    uint32_t seg;
    const uint8_t *p, *end;  /* rest of the current page */
    const uint8_t *term, *val; /* current entry (val: valid until the next write) */
    size_t tl, vl;             /* val: the entry's bytes after the suffix (by kind, above) */
    size_t sh;                 /* bytes the current term shares with the one before
                                  (0 at the start of a page) */
    unsigned kind;             /* IDX_LEX_* */
    bool eof;
    uint8_t tbuf[IDX_TERM_MAX]; /* the current term, rebuilt (term points here) */
} idx_lexit;

/* A term's value in one segment, decoded from its entry. */
typedef struct {
    int64_t df;          /* df delta */
    uint64_t first;      /* the inline block's first doc id */
    const uint8_t *blk;  /* the inline block (in the page), NULL: blocks in idx_post */
    size_t blen;
    bool one;            /* blk is a one-doc (0, 1) block's position alone
                            (its head: idx_block_head_one) */
} idx_lexval;

/* Position on the first entry >= tk of segment seg (it->eof when none).
 * c: a cursor on idx_lex. 0 or an LMDB error (MDB_CORRUPTED: bad page). */
int idx_lexit_seek(idx_lexit *it, MDB_cursor *c, uint32_t seg, const uint8_t *tk, size_t tkl);
int idx_lexit_next(idx_lexit *it);
/* The current entry's value (it not at eof): 0, or MDB_CORRUPTED. */
int idx_lexit_value(const idx_lexit *it, idx_lexval *v);
/* The value of term tk in segment seg: 0, MDB_NOTFOUND or an LMDB error. */
int idx_lex_find(MDB_cursor *c, uint32_t seg, const uint8_t *tk, size_t tkl, idx_lexval *v);
/* The header of an inline block with idx_lexval.one in segment sg (as
 * idx_block_head: returns p, where its position is). */
static inline const uint8_t *idx_block_head_one(const uint8_t *p, const idx_seg *sg, idx_bhead *h) {
    *h = (idx_bhead){.n = 1, .maxt = 0, .maxb = 1, .minlt = sg->minlt, .minlb = sg->minlb, .one = true};
    return p;
}

/* Document frequency of a term: the sum of its segments' deltas. */
uint64_t idx_lex_df(idx *self, MDB_txn *txn, const idx_segs *segs, const uint8_t *tk, size_t tklen);

#endif
