/* xapian_bench: the Xapian baseline of bulletin-bench-search behind a C
 * interface (xapian_bench.cc is the only C++ in the tree; built only when
 * libxapian-dev and a C++ compiler are present: BENCH_HAVE_XAPIAN). */
#ifndef BULLETIN_XAPIAN_BENCH_H
#define BULLETIN_XAPIAN_BENCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct xb xb;

/* A new Xapian database in dir (created; must not exist). cjk: index and
 * parse CJK text as n-grams (FLAG_CJK_NGRAM). NULL on error (printed). */
xb *xb_new(const char *dir, int cjk);
/* Index one document: title with wdf x2 (title weighted like ours), body,
 * English stems (STEM_SOME) plus unstemmed forms, positions. 0 or -1. */
int xb_add(xb *self, const char *title, const char *body);
/* Durable commit (Xapian fsyncs on commit). 0 or -1. */
int xb_commit(xb *self);
/* Close the writer (self can no longer add or search; xb_destroy it). 0 or -1. */
int xb_finish(xb *self);
/* A reader on the database in dir (read-only; one per thread: a
 * Xapian::Database must not be shared between threads). cjk as xb_new.
 * NULL on error (printed). */
xb *xb_open(const char *dir, int cjk);
/* Top `limit` by BM25 (k1 1.2, b 0.75) for a query in search-box syntax
 * (default AND, "phrases"), on a reader from xb_open. *nhits = hits
 * returned, *estimate = Xapian's estimated total; ids (NULL or room for
 * `limit`) gets the hits' docids, best first (the n-th added document is
 * docid n). 0 or -1 (message printed). */
int xb_search(xb *self, const char *query, unsigned limit, unsigned *nhits, uint64_t *estimate,
              uint64_t *ids);
/* Bytes of the database directory. */
uint64_t xb_size(const char *dir);
void xb_destroy(xb **self);

#ifdef __cplusplus
}
#endif

#endif
