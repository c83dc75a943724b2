/*
 * idx: the full-text index of a read replica, stored in LMDB named databases
 * inside the CALLER's environment and transactions, so that the replica data
 * and its index change in one transaction (a search never sees a
 * half-applied article).
 *
 * Databases (created by idx_open; the environment needs 5 more maxdbs):
 *
 *   idx_lex   seg[4 BE] first term -> a PAGE (~1.5 KB) of the segment's
 *                                    lexicon: prefix-compressed terms, each
 *                                    with varint zigzag(df delta) [varint
 *                                    first docid, block] (block inline when
 *                                    the term's postings in seg fit one
 *                                    block of <= 1000 bytes; idx_int.h)
 *   idx_post  seg[4 BE] term \0 docid[8 BE] -> block of <= 128 postings
 *                                    (terms whose postings need several)
 *   idx_col   chunk[8 BE]          -> the records of 312 docids, column by
 *                                    column (published_at, title/body length,
 *                                    site id, category id, live
 *                                    = generation of its postings, 0 = none),
 *                                    each field as wide as its largest value
 *                                    in the chunk (idx_int.h)
 *   idx_dict  's'|'c' value -> u32 id;  '#' 's'|'c' id[4 BE] -> value
 *   idx_meta  "stats" -> docs, sum of title lengths, sum of body lengths;
 *             "segs"  -> format, generation, segment list (idx_int.h)
 *
 * SEGMENTS (see idx.c): each idx_flush writes its batch as a new segment
 * whose keys sort after all others (an append: sequential pages, no
 * read-modify-write of existing blocks); tiered merges keep the number of
 * segments logarithmic; idx_optimize merges them all. A term's df is the
 * sum of its segments' deltas. Removed versions are not rewritten: their
 * postings are skipped at query time (the column record's generation says
 * which segment holds a doc's current postings) and dropped by merges.
 *
 * Terms are the analyzer's (services/text/text.h): stems, "\x01"exact forms,
 * CJK unigrams and bigrams; tags are indexed as "\x02" "t" tag. A term
 * longer than IDX_TERM_MAX bytes is replaced by "\x03" + 16 bytes of its
 * BLAKE2b hash (LMDB keys are at most 511 bytes).
 *
 * A posting block (key or lexicon value gives its first docid):
 *
 *   varint n | [tf code of the largest tf_title and tf_body: only when
 *   n > 1] | varint min title length | varint min body length   (block-max
 *   bounds for pruning) | n-1 varint docid deltas | n x tf code
 *   | for each doc: tf_title then tf_body varints of (pos << 1 | exact),
 *     delta-coded within the field; bare positions (always exact) for exact
 *     forms and terms starting with a byte >= 0x80 (idx_term_exact_bit);
 *     a CJK unigram keeps only its run-boundary positions when the index
 *     has no stop words (idx_int.h RUN POSITIONS)
 *
 *   tf code = varint (tf_body << 2 | min(tf_title, 3)) [varint tf_title - 3
 *   when tf_title >= 3]: one byte for most docs (idx_tf_put)
 *
 * Why delta+varint blocks and not MDB_DUPFIXED items: one 12-byte DUPFIXED
 * item per (term, doc) cannot hold positions (phrases, snippets) without a
 * second database, costs ~12 bytes per posting where varint blocks cost ~3-4
 * including positions, and makes a doc-id-only scan touch 3x more pages.
 *
 * Ranking (the test's reference scorer implements exactly this):
 *
 *   score(d) = sum over positive query terms t matching d of
 *              idf(t) * sum_f w_f * tf*(k1+1) / (tf + k1*(1 - b + b*len_f/avg_f))
 *   idf(t)   = ln(1 + (N - df + 0.5) / (df + 0.5)),  f in {title, body},
 *   w_title = title_weight (2), w_body = 1, avg_f = sum of len_f / N.
 *
 * A phrase scores as the sum of its words; `a OR b` as the sum of the
 * alternatives present; a prefix (`secur*`) as a constant 1.0 (like
 * Lucene's constant-score rewrite: it only matches); `title:` restricts the
 * sum to the title. Ties: newer published_at first, then higher id.
 *
 * Query syntax (idx_search): words (all must match, by stem), "a phrase"
 * (exact forms, consecutive, within one field), -word / -"phrase" (exclude),
 * a OR b (OR binds tighter than the implicit AND), pre* (prefix of >= 2
 * characters, folded, at most IDX_PREFIX_MAX_TERMS expansions), title:word,
 * site:x category:x tag:x (quoted values allowed; filters, not scored).
 * Typos: when the exact query finds fewer than `limit` documents, each plain
 * word of >= 5 characters (folded) gets up to 8 alternatives from the
 * lexicon within 1 edit (2 from 9 characters; byte-wise Levenshtein, same
 * first two bytes), closest and most frequent first; documents found only
 * that way rank after all exact hits (idx_hit.typo).
 *
 * A query needs at least one positive word, phrase or prefix: an empty
 * query is INVALID_ARGUMENT (browsing without words is List's job).
 *
 * Thread-safety: an idx may be used by one thread at a time (it owns an
 * analyzer and buffers); open one idx per thread over the same environment.
 */
#ifndef BULLETIN_IDX_H
#define BULLETIN_IDX_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Status codes: the wire's (gRPC) numbers. */
enum {
    IDX_OK = 0,
    IDX_INVALID_ARGUMENT = 3,
    IDX_RESOURCE_EXHAUSTED = 8,
    IDX_FAILED_PRECONDITION = 9,
    IDX_INTERNAL = 13
};

#define IDX_TERM_MAX 400
#define IDX_QUERY_MAX_BYTES 4096
#define IDX_QUERY_MAX_TERMS 64
#define IDX_PREFIX_MAX_TERMS 4096
#define IDX_LIMIT_MAX 1000
#define IDX_WINDOW_MAX 10000   /* offset + limit */
#define IDX_CURSOR_LEN 26

typedef struct idx idx;

typedef struct {
    double k1;                     /* 0 = 1.2 */
    double b;                      /* < 0 = 0.75 (0 is a valid b) */
    double title_weight;           /* 0 = 2.0 */
    uint32_t max_pending_docs;     /* write buffer; 0 = write-through (every
                                      idx_put/idx_del is applied at once) */
    const char *const *stopwords;  /* NULL-terminated; NULL = none. Part of
                                      the index's layout (its terms, and CJK
                                      unigram positions: idx_int.h RUN
                                      POSITIONS): open an index with the stop
                                      words it was written with, or clear it */
    bool no_typos;                 /* disable typo tolerance */
    uint32_t merge_factor;         /* segments of one level merged at once;
                                      0 = 8 (tests use 2 to merge often) */
} idx_options;

/* One article as the index sees it. Strings need not be NUL-terminated
 * where a length is given; site/category/tags are NUL-terminated (NULL = ""). */
typedef struct {
    const char *title;
    size_t title_len;
    const char *body;
    size_t body_len;
    const char *site;
    const char *category;
    const char *const *tags;
    size_t ntags;
    int64_t published_at;
} idx_doc;

/* Open (creating when missing) the index databases with `txn` (a write txn
 * when they may not exist yet; commit it to keep the handles). opts NULL =
 * defaults. On IDX_OK *out is the new index (caller owns; idx_close).
 * When the databases hold an index in an older format (before segments),
 * a write txn CLEARS it (logged: idx.open format=...; the caller must
 * re-index every article), a read-only txn gets IDX_FAILED_PRECONDITION.
 * Returns IDX_OK, IDX_FAILED_PRECONDITION, IDX_INTERNAL (LMDB error, logged). */
int idx_open(MDB_txn *txn, const idx_options *opts, idx **out);

/* Free the index object (not the data) and set *self to NULL; safe twice.
 * Pending (unflushed) changes are discarded. */
void idx_close(idx **self);

/* The largest article id the index takes (posting keys hold 4-byte ids). */
#define IDX_ID_MAX UINT32_MAX

/* Index article `id` (replaces the previous version). `old` must be the
 * previous version exactly as it was indexed, or NULL when the article is
 * new: the index keeps no copy of the text, it re-analyzes `old` to find
 * the postings to remove. A mismatch (old given but not indexed, NULL but
 * indexed, or an old version whose published_at, site, category or title
 * or body length in tokens differs from the indexed one's; other changes
 * of the text go unseen) is refused with IDX_FAILED_PRECONDITION and
 * nothing changes. May buffer: see idx_flush. txn must be a write txn.
 * Returns IDX_OK, IDX_FAILED_PRECONDITION, IDX_INVALID_ARGUMENT (id 0 or
 * above IDX_ID_MAX), IDX_INTERNAL (LMDB error incl. MDB_MAP_FULL: abort the
 * txn, idx_discard). */
int idx_put(idx *self, MDB_txn *txn, uint64_t id, const idx_doc *doc, const idx_doc *old);

/* Remove article `id`, whose indexed version is `old`. Removing an id that
 * is not indexed is IDX_OK (idempotent). Buffered like idx_put (applied at
 * once when max_pending_docs is 0, else by idx_flush). Same errors as
 * idx_put. */
int idx_del(idx *self, MDB_txn *txn, uint64_t id, const idx_doc *old);

/* --- analysis apart from the index (a second thread) ----------------------
 *
 * idx_put = analysis (tokenize, fold, stem, CJK n-grams: most of its CPU)
 * + the batch and LMDB work. The analysis can run on another thread:
 *
 *   thread A (any):  idx_analyze(an, doc, &a)      no txn, no idx, no LMDB
 *   thread B (idx):  idx_put_analyzed(ix, txn, id, a, old); idx_analyzed_free(&a)
 *
 * idx_put_analyzed(ix, txn, id, a, old) changes the index exactly as
 * idx_put(ix, txn, id, doc, old) does (same checks, same bytes) when `a` is
 * idx_analyze of `doc` with the same stop words. The analyzer holds the
 * stemmer, its cache and scratch buffers: one idx_analyzer per thread; an
 * idx_analyzed is immutable and may be handed to another thread. */
typedef struct idx_analyzer idx_analyzer;
typedef struct idx_analyzed idx_analyzed;

/* A new analyzer with opts' stop words (NULL = none; must match the idx's)
 * and a bulk load's stem cache (TEXT_STEM_CACHE_BULK slots, 4 MB).
 * NULL on allocation failure. Caller owns it (idx_analyzer_destroy). */
idx_analyzer *idx_analyzer_new(const idx_options *opts);

/* Free and set *self to NULL; safe on NULL and twice. */
void idx_analyzer_destroy(idx_analyzer **self);

/* Analyze doc (read only; its strings may be freed afterwards). On IDX_OK
 * *out is the result (caller owns: idx_analyzed_free). Returns IDX_OK,
 * IDX_INVALID_ARGUMENT (NULL argument), IDX_INTERNAL (out of memory). */
int idx_analyze(idx_analyzer *self, const idx_doc *doc, idx_analyzed **out);

/* Free and set *self to NULL; safe on NULL and twice. */
void idx_analyzed_free(idx_analyzed **self);

/* idx_put with the document already analyzed (see above); `a` is not
 * consumed (a replayed txn may put it again). Same returns as idx_put. */
int idx_put_analyzed(idx *self, MDB_txn *txn, uint64_t id, const idx_analyzed *a,
                     const idx_doc *old);

/* A hint that `a` is among the next docs to be put (idx_put_analyzed): load
 * into the cache what that put will look up in the buffer's term table,
 * which a bulk load makes too big for the caches (two misses per term
 * otherwise). Stage 0: the terms' hash slots; 1 (a doc later): their term
 * records; 2 (a doc later again): where their postings are appended. Only
 * reads; no effect on the index. Safe on NULL. */
void idx_prefetch_analyzed(const idx *self, const idx_analyzed *a, int stage);

/* Write buffered changes into txn. MUST be called before mdb_txn_commit
 * when max_pending_docs > 0. IDX_OK or IDX_INTERNAL. */
int idx_flush(idx *self, MDB_txn *txn);

/* Flush, then merge every segment into one (and drop stale versions):
 * searches then read one posting list per term. Worth it after a bulk load
 * (a replica's first sync); costs about one rewrite of the index, in txn.
 * IDX_OK, IDX_INVALID_ARGUMENT, IDX_INTERNAL (LMDB error incl. MDB_MAP_FULL). */
int idx_optimize(idx *self, MDB_txn *txn);

/* Drop buffered changes (after aborting the txn they were meant for). */
void idx_discard(idx *self);

/* The code behind the IDX_INTERNAL last returned by idx_put, idx_put_analyzed,
 * idx_del, idx_flush, idx_optimize or idx_clear: LMDB's error (MDB_MAP_FULL:
 * abort, grow the map and replay the transaction) or an errno (ENOMEM); 0
 * when not known. Reset at the start of each of those calls. 0 for NULL. */
int idx_error(const idx *self);

/* BULK MODE, for a load that ends with idx_optimize (a replica's first
 * sync) or big transactions: while on, puts and deletes are buffered for the
 * whole transaction (written by the idx_flush before the commit, or when
 * IDX_BULK_MAX_PENDING docs are pending; max_pending_docs is ignored) and a
 * flush starts no tiered merge unless the segment list is half full. Fewer,
 * larger segments and no intermediate merges: each posting is written once
 * by its flush and once by the final idx_optimize. The index (and every
 * search answer) is the same as without it; only its segmentation
 * differs. Memory: the postings of one transaction. Off by default.
 *
 * max_bytes > 0: the buffer is written when it takes max_bytes of memory
 * (idx_pending) instead of at IDX_BULK_MAX_PENDING docs, and the caller may
 * commit a transaction WITHOUT idx_flush: the buffer then carries its
 * changes into the next write transaction, whose idx_flush writes them
 * all, as one segment. Until then the committed index lacks them (the
 * caller must make a reopened index that lacks them be rebuilt), the index's
 * databases must be changed by this idx only, and an idx_discard (after any
 * abort) drops the changes of the committed transactions too. Turning bulk
 * mode off with nothing pending gives back the buffer's memory. */
#define IDX_BULK_MAX_PENDING 200000
void idx_set_bulk(idx *self, bool on, size_t max_bytes);

/* Whether changes are buffered (not yet written by idx_flush); *bytes (when
 * not NULL) gets the memory their contents take (postings, terms, keys and
 * column records, with their hash slots; 0 when nothing is buffered).
 * false for NULL. */
bool idx_pending(const idx *self, size_t *bytes);

/* Remove every document (replica reset); segment ids are not reused (see
 * idx_terms.h). IDX_OK or IDX_INTERNAL. */
int idx_clear(idx *self, MDB_txn *txn);

typedef struct {
    const char *query;             /* search-box syntax, NUL-terminated */
    const char *site;              /* filters: NULL or "" = none */
    const char *category;
    const char *tag;
    int64_t since, until;          /* published_at in [since, until); 0 = open */
    uint32_t limit;                /* 0 = 10, at most IDX_LIMIT_MAX */
    uint32_t offset;               /* offset + limit <= IDX_WINDOW_MAX */
    const uint8_t *cursor;         /* from a previous idx_result.next_cursor */
    size_t cursor_len;
    bool facets;
} idx_query;

typedef struct {
    uint64_t id;
    double score;
    int64_t published_at;
    bool typo;                     /* matched only through a typo correction */
} idx_hit;

typedef struct {
    char *value;
    uint64_t count;
} idx_facet;

typedef struct {
    idx_hit *hits;                 /* best first */
    size_t nhits;
    uint64_t total;                /* exact number of matching documents */
    uint8_t next_cursor[IDX_CURSOR_LEN];
    size_t next_cursor_len;        /* 0 when this is the last page */
    idx_facet *categories, *sites; /* by count desc, then value */
    size_t ncategories, nsites;
    /* what the snippet should mark (see idx_snippet) */
    char **terms;
    uint32_t *term_lens;
    size_t nterms;
    char **prefixes;
    uint32_t *prefix_lens;
    size_t nprefixes;
    struct text_snippet_prep *snip_prep; /* idx_snippet's prepared terms (text.h), made by the
                                          first, freed by idx_result_free */
    /* on error: a human message and the byte position in the query (or -1) */
    char error[192];
    long error_pos;
} idx_result;

/* Run a query in read transaction `txn` (any txn that sees the index).
 * On IDX_OK `out` holds the page of hits; on error, out->error and
 * out->error_pos say why and where. Always call idx_result_free(out).
 * Returns IDX_OK, IDX_INVALID_ARGUMENT (syntax, limits, bad cursor, empty
 * query), IDX_INTERNAL. */
int idx_search(idx *self, MDB_txn *txn, const idx_query *q, idx_result *out);

void idx_result_free(idx_result *r);

/* Snippet of `body` for a result's query terms (text_snippet with the
 * markers; NULL = « »). The terms are prepared once (r->snip_prep) for all
 * the result's snippets. Returns the length written to out (NUL-terminated). */
size_t idx_snippet(idx *self, idx_result *r, const char *body, size_t len,
                   const char *mark_open, const char *mark_close, char *out, size_t cap);

typedef struct {
    uint64_t docs;
    uint64_t terms;                /* lexicon pages (keys of idx_lex, see above) */
    uint64_t blocks;               /* posting blocks */
    uint64_t segments;             /* live segments (see idx.c) */
    uint64_t bytes;                /* pages used by the idx_* databases x page size */
    double avg_title_len, avg_body_len;
} idx_stats_t;

int idx_stats(idx *self, MDB_txn *txn, idx_stats_t *out);

/* Memory held by the typo scan's term lists: slices of each segment's
 * lexicon terms (no values) read on a typo search's first need and kept
 * while their segment lives, at most 32 MiB per idx (idx_terms.h). Bytes;
 * 0 for NULL or before the first typo search. */
size_t idx_typo_cache_bytes(const idx *self);

#endif
