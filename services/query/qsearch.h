/*
 * qsearch: full-text search on a worker's replica (the glue between the
 * replica, replica.h, and the index library, services/search/idx.h).
 *
 * The index lives in the replica's own LMDB environment (idx_* databases)
 * and is changed only through the replica's hook, inside the transaction
 * that applies the changes, so a search never sees a half-applied article:
 *
 *   replica_apply ── txn ──▶ articles, summaries, by_* ...
 *                      └───▶ hook.on_change ─▶ idx_put / idx_del (buffered)
 *                      └───▶ hook.before_commit ─▶ idx_flush ─▶ commit
 *                            (abort ─▶ hook.after_abort ─▶ idx_discard)
 *
 * Writes are buffered (max_pending_docs, QSEARCH_PENDING_DOCS) and written
 * at the commit, so a Sync chunk of a thousand new articles touches each term
 * once; a feed message of a few changes costs the same as write-through.
 *
 * The replica's meta database holds "search_index" -> u32 version. When it
 * is missing or older than QSEARCH_INDEX_VERSION (a replica made before the
 * index existed, or a rebuild that was interrupted), or the index is empty
 * while the replica has articles (idx_open cleared an index of an older
 * format, see idx.h), qsearch_new rebuilds the
 * index from the replica's articles, in transactions of QSEARCH_REBUILD_BATCH
 * articles, with a progress log line; the version is written with the last
 * batch, so an interrupted rebuild starts again at the next start.
 *
 * The index refuses a change whose "old" version is not exactly what it
 * indexed (IDX_FAILED_PRECONDITION: the index and the replica disagree).
 * The apply is then aborted, qsearch_broken() is true, and the worker calls
 * qsearch_rebuild() before it retries the changes.
 *
 * Search (qsearch_run) runs in the replica's read transaction: the hits come
 * from the index; key/site/category/title/published_at and the snippet's
 * body from the replica's article, one lookup per hit, read in place with
 * one pbscan pass (not decoded: a 1 MiB body costs what the snippet scan
 * bounds it to); the strings are copied into chunks owned by the answer.
 *
 * Not thread-safe: one qsearch per replica, used by the worker's thread
 * (it owns a private analysis thread for bulk applies, see qsearch_bulk_begin).
 */
#ifndef QUERY_QSEARCH_H
#define QUERY_QSEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zmq.h>

#include "bulletin.pb-c.h"
#include "idx.h"
#include "replica.h"

#define QSEARCH_INDEX_VERSION 3u /* 2: segmented postings (idx_open clears format 1);
                                    3: traditional Chinese folds to simplified */
#define QSEARCH_PENDING_DOCS 1000
#define QSEARCH_REBUILD_BATCH 2000
#define QSEARCH_MARK_MAX 32       /* bytes of a snippet marker */
#define QSEARCH_SNIPPET_CAP 16384 /* 200 characters, each marked: always fits */

typedef struct qsearch qsearch;

/* Open the index in the replica's environment, install the replica hook,
 * and rebuild the index when it is missing or older than the replica (see
 * above). opts NULL = defaults (max_pending_docs is set here). NULL on
 * failure (logged). The replica must outlive the qsearch. */
qsearch *qsearch_new(replica *rep, const idx_options *opts);

/* Remove the hook, free the index object (not the data), set *self NULL. */
void qsearch_destroy(qsearch **self);

/* During a bulk load that ends with qsearch_optimize (the replica's first
 * sync): the index buffers each transaction whole and starts no tiered merge
 * (idx_set_bulk), so each posting is written by one flush and one final
 * merge instead of ~3 intermediate merges. Answers are the same either way.
 *
 * max_bytes > 0 (the worker's --index-bulk-mb): the buffered postings are
 * also kept ACROSS the load's transactions and written once, as one segment,
 * by qsearch_optimize (or by the commit at which the buffer takes max_bytes
 * of memory), so nothing is left to merge. Meanwhile the committed index
 * lags the replica: the first commit that leaves postings buffered removes
 * the index version from `meta` and the commit that writes them puts it
 * back, so a process that stops in between rebuilds the index at its next
 * qsearch_new. An abort (e.g. MDB_MAP_FULL) drops the buffer: the rest of
 * the load is not indexed and qsearch_optimize rebuilds the index from the
 * replica; when that rebuild fails, the index is broken (qsearch_broken) and
 * refuses every change until a qsearch_rebuild succeeds. Nothing is searched
 * meanwhile (the worker registers with the broker only after
 * qsearch_optimize). */
void qsearch_set_bulk(qsearch *s, bool on, size_t max_bytes);

/* After a bulk load (the replica's first sync): end the bulk mode
 * (qsearch_set_bulk), write what the load left buffered, and merge the
 * index's segments into one (idx_optimize) when there are several, so
 * searches read one posting list per term. Blocks the caller for about a
 * write of the index (~1-1.5 s per 300k articles); when the load lost
 * buffered postings (see qsearch_set_bulk), for a rebuild. 0, or -1
 * (logged; the index stays usable). */
int qsearch_optimize(qsearch *s);

/* BULK APPLY (a Sync chunk): analysis on a second thread.
 *
 *   qsearch_bulk_begin(s, changes, n)    the analysis thread starts on the
 *                                        PUT articles of changes[], in order
 *   replica_apply(rep, changes, n, ...)  the hook takes each analyzed doc
 *                                        (idx_put_analyzed) in seq order;
 *                                        when the thread is behind, it
 *                                        analyzes the job's last articles
 *                                        itself (the thread stops short of
 *                                        them) and waits only when none is
 *                                        left unclaimed
 *   qsearch_bulk_end(s)                  stop the thread, free what is left
 *
 * The replica data, the index and the applied seq still change in one txn;
 * the old version of an update is analyzed by the hook itself, as before. A
 * change the thread did not analyze (or a replayed txn after MDB_MAP_FULL)
 * is indexed by idx_put. changes[] must stay untouched until bulk_end.
 * Fewer than QSEARCH_BULK_MIN articles: nothing starts (returns 0).
 * Returns 1 when the thread works on the job, 0 when the hook indexes on
 * the caller's thread (small batch, or the thread could not start: logged).
 * The thread is started at the first bulk and joined by qsearch_destroy. */
#define QSEARCH_BULK_MIN 16
int qsearch_bulk_begin(qsearch *self, Bulletin__Internal__Change *const *changes, size_t n);
void qsearch_bulk_end(qsearch *self);

/* PIPELINING ACROSS CHUNKS. qsearch_bulk_begin on the changes[] (same
 * pointer and n) of the job already running returns 1 and leaves it running:
 * a caller may begin the next chunk's job early, e.g. from the before-flush
 * callback, so its analysis overlaps this txn's index flush and commit (the
 * job of the txn being committed is ended then: all its hook calls are made).
 * qsearch_bulk_done(s, changes) ends the job only when it is that of
 * changes[] (it leaves a job begun ahead running). A txn aborted after a job
 * was begun ahead ends that job (its replay indexes on the caller's thread).
 *
 * qsearch_set_before_flush: fn(ud) is called in every commit of a replica
 * write (apply, reset, rebuild) after the hook calls and before the index's
 * flush; fn must not write to the replica. NULL removes it. */
void qsearch_bulk_done(qsearch *self, Bulletin__Internal__Change *const *changes);
void qsearch_set_before_flush(qsearch *self, void (*fn)(void *ud), void *ud);

/* A job whose changes are not decoded yet: the analysis thread first calls
 * prep(ud, &changes, &n) (e.g. decoding the store's next reply: that work
 * leaves the caller's thread), then analyzes changes[] as qsearch_bulk_begin
 * would (n = 0: nothing to analyze). prep runs exactly once, on the analysis
 * thread, or on the caller's thread inside qsearch_bulk_prep_wait or
 * qsearch_bulk_end when the job was ended before the thread got to it (or
 * at once when the thread cannot start). Call qsearch_bulk_prep_wait before
 * using what prep made; then qsearch_bulk_begin(changes, n) finds the job
 * running. Returns 1 when the job is queued, 0 when prep already ran. */
typedef void (*qsearch_prep_fn)(void *ud, Bulletin__Internal__Change *const **changes, size_t *n);
int qsearch_bulk_begin_prep(qsearch *self, qsearch_prep_fn prep, void *ud);
void qsearch_bulk_prep_wait(qsearch *self);

/* True when an apply failed because the index and the replica disagree, or
 * a rebuild failed; qsearch_rebuild() clears it. */
bool qsearch_broken(const qsearch *self);

/* Rebuild the whole index from the replica's articles. 0 or -1 (logged). */
int qsearch_rebuild(qsearch *self);

/* The answer of qsearch_run: `reply` points into this struct; free with
 * qsearch_result_clear (in every case). */
typedef struct qsearch_chunk qsearch_chunk; /* the answer's strings (qsearch.c) */

typedef struct {
    Bulletin__SearchReply reply;
    Bulletin__SearchHit *hits, **hitp;
    qsearch_chunk *strings; /* every string of the hits, NUL-terminated */
    size_t nhits;
    Bulletin__FacetCount *facets, **catp, **sitep;
    idx_result res;
    bool has_res;
} qsearch_result;

/* Run `req` (NULL fields = defaults). Returns BULLETIN__STATUS_CODE__OK with
 * *out filled, INVALID_ARGUMENT (the query or a field is refused; `why` says
 * what and, for a query that does not parse, at which byte: "position 7:
 * ...") or INTERNAL (storage failure; logged). */
int qsearch_run(qsearch *self, const Bulletin__SearchRequest *req, qsearch_result *out,
                char *why, size_t why_cap);

void qsearch_result_clear(qsearch_result *r);

/* The Reply `rep` packed into a new zmq message *out as protobuf-c packs it,
 * byte for byte, with its SearchReply body (qsearch_run's answer) written by
 * hand: protobuf-c walks every field's descriptor twice (its size, then its
 * bytes), and this is every Search's answer; here each hit's strings are
 * measured once. Another body is packed by protobuf-c. The body's messages
 * must have no unknown fields (qsearch_run's have none). 0, or -1 when out
 * of memory (*out is then an empty message). */
int qsearch_reply_pack_zmq(const Bulletin__Reply *rep, zmq_msg_t *out);

/* The index (for benchmarks and tests that call idx_* directly in a read
 * transaction of the replica). Owned by the qsearch. */
idx *qsearch_index(qsearch *self);

/* Documents in the index (0 on error). */
uint64_t qsearch_docs(qsearch *self);

#endif
