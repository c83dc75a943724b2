/* idx_terms.h: the typo scan's in-memory term lists (see idx_terms.c). */
#ifndef BULLETIN_IDX_TERMS_H
#define BULLETIN_IDX_TERMS_H

#include "idx_int.h"

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IDX_TERMS_CAP (32u << 20)    /* bytes an idx keeps at most */
#define IDX_TERMS_PREFIX_MAX 3       /* bytes of a slice's prefix */
#define IDX_TNODE_FAR 0x3fffu        /* a subtree this big or bigger: its size is in esc */

/* A slice: the terms of one segment's lexicon that start with one prefix, as
 * a trie of their bytes after the prefix, its nodes in preorder (the terms'
 * order; a node's first child is the node after it, the node after its
 * subtree is its next sibling or an ancestor's). Node i is one word:
 *   bits 0-7    its byte
 *   bit 8       a term ends here (idx_tnode_end)
 *   bits 9-17   its depth: 1 for the byte after the prefix (idx_tnode_depth)
 *   bits 18-31  the nodes of its subtree, itself included, or IDX_TNODE_FAR
 *               when they are that many or more: then the count is in esc
 * (idx_tslice_skip gives the node after the subtree either way). */
typedef struct {
    uint32_t n;     /* terms */
    uint32_t nn;    /* nodes */
    uint32_t nesc;  /* subtrees of IDX_TNODE_FAR nodes or more */
    uint32_t root;  /* 1 when the prefix itself is a term (none of the nodes) */
    uint32_t bytes; /* of node and esc */
    uint32_t pad_;
    uint32_t *node;
    uint32_t *esc; /* nesc pairs (node index, subtree nodes), by node index */
} idx_tslice;

_Static_assert(IDX_TERM_MAX < 512, "a node's depth has 9 bits");

static inline unsigned idx_tnode_byte(uint32_t v) { return v & 0xffu; }
static inline bool idx_tnode_end(uint32_t v) { return (v >> 8) & 1u; }
static inline unsigned idx_tnode_depth(uint32_t v) { return (v >> 9) & 0x1ffu; }

/* idx_tslice_skip for a node whose subtree size is in s->esc. */
uint32_t idx_tslice_skip_far(const idx_tslice *s, uint32_t i);

/* The first node after node i's subtree (s->nn after the last one): where a
 * walk goes on when no term below node i is wanted. */
static inline uint32_t idx_tslice_skip(const idx_tslice *s, uint32_t i) {
    uint32_t sz = s->node[i] >> 18;
    return sz != IDX_TNODE_FAR ? i + sz : idx_tslice_skip_far(s, i);
}

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

#endif
