/* idx_terms.h: the typo scan's in-memory term lists (see idx_terms.c). */
#ifndef BULLETIN_IDX_TERMS_H
#define BULLETIN_IDX_TERMS_H

#include "idx_int.h"

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IDX_TERMS_RESTART 16         /* a whole term every this many entries */
#define IDX_TERMS_CAP (32u << 20)    /* bytes an idx keeps at most */
#define IDX_TERMS_PREFIX_MAX 3       /* bytes of a slice's prefix */
#define IDX_TERMS_PAD 16             /* spare bytes after data and term (16-byte copies) */

/* A slice: the terms of one segment's lexicon that start with one prefix,
 * in order, without their values. Entry i is varint shared (bytes in common
 * with term i - 1; 0 for the first), varint length, bytes: the bytes after
 * the shared ones, or the whole term when i is a multiple of
 * IDX_TERMS_RESTART (a restart: reachable without the entries before). */
typedef struct {
    uint32_t n;      /* entries */
    uint32_t nrst;   /* restarts: (n + IDX_TERMS_RESTART - 1) / IDX_TERMS_RESTART */
    uint32_t bytes;  /* of data */
    uint64_t *rkey;  /* each restart's term's first 8 bytes, big-endian, 0-padded:
                        ordered as the terms where two differ (idx_terms_key8) */
    uint32_t *rst;   /* byte offset in data of each restart entry */
    uint8_t *data;
} idx_tslice;

/* The slices an idx keeps, per segment (at most `cap` bytes in all). */
typedef struct idx_terms idx_terms;

/* A new, empty cache of at most cap bytes (0 = IDX_TERMS_CAP). NULL when out
 * of memory. Caller owns it (idx_terms_destroy). */
idx_terms *idx_terms_new(size_t cap);

/* Free every slice and the cache; set *self to NULL. Safe on NULL and twice. */
void idx_terms_destroy(idx_terms **self);

/* Free every slice (the index was cleared). NULL is a no-op. */
void idx_terms_clear(idx_terms *self);

/* Free the slices of segments that are not in `segs` (merged away, or
 * another index's): a segment's lexicon never changes once written, so a
 * slice stays right for as long as its segment is in the list. */
void idx_terms_retain(idx_terms *self, const idx_segs *segs);

/* Bytes held (slices and tables) and the slices built so far. 0 for NULL. */
size_t idx_terms_bytes(const idx_terms *self);
uint64_t idx_terms_builds(const idx_terms *self);

/* The slice of segment `seg`'s terms that start with pre[0..pl), 1 <= pl <=
 * IDX_TERMS_PREFIX_MAX, read from the lexicon with cursor c (on idx_lex, in
 * a txn that sees seg) the first time, then kept in self when `keep` and the
 * cap allow (self may be NULL). *owned is true when the caller must free the
 * slice (idx_tslice_free), false when it belongs to self (valid until
 * idx_terms_retain, idx_terms_clear or idx_terms_destroy). Returns 0, ENOMEM or an LMDB error (MDB_CORRUPTED). */
int idx_terms_slice(idx_terms *self, MDB_cursor *c, const idx_seg *seg, const uint8_t *pre,
                    size_t pl, bool keep, idx_tslice **out, bool *owned);

/* Free a slice idx_terms_slice gave with *owned true; set *s to NULL. */
void idx_tslice_free(idx_tslice **s);

/* A cursor over a slice: `term`[0..tl) is the current entry, sharing `sh`
 * bytes with the one before (0 on the first); eof past the last. */
typedef struct {
    const idx_tslice *s;
    uint32_t i;    /* the current entry */
    uint32_t next; /* byte offset of entry i + 1 */
    size_t tl, sh;
    bool eof;
    uint8_t term[IDX_TERM_MAX + IDX_TERMS_PAD];
} idx_tsit;

/* On the slice's first entry (eof when it is empty). */
void idx_tsit_begin(idx_tsit *it, const idx_tslice *s);
/* On the next entry (eof after the last). */
void idx_tsit_next(idx_tsit *it);
/* On the first entry >= tg[0..tgl), from the current one on (it does not
 * move back; eof when none): restarts by binary search, then entry by entry. */
void idx_tsit_fwd(idx_tsit *it, const uint8_t *tg, size_t tgl);

#endif
