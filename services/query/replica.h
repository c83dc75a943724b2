/*
 * replica: a worker's own LMDB copy of the store's articles, plus the
 * secondary indexes that make List a cursor walk.
 *
 * One environment, named databases (all integer keys big-endian so cursors
 * walk in order; published_at is stored with its sign bit flipped so that
 * negative times sort first):
 *
 *   articles   id[8]                      -> packed bulletin.Article
 *   summaries  id[8]                      -> packed bulletin.ArticleSummary
 *                                            (excerpt precomputed; List reads only these)
 *   keys       key (or 0x00 + BLAKE2b-256(key) when longer than 511 bytes) -> id[8]
 *   by_time    pub[8] id[8]               -> ""   (every article)
 *   by_site    h16(site) pub[8] id[8]     -> ""   h16 = BLAKE2b-128 of the value
 *   by_cat     h16(category) pub[8] id[8] -> ""
 *   by_tag     h16(tag) pub[8] id[8]      -> ""   (one entry per distinct tag)
 *   counts     kind[1] h16                -> u64 number of articles with that value
 *   meta       "applied_seq" -> u64, "store_uuid" -> bytes, "schema" -> u32
 *
 * Every change is applied in the same write transaction as the new applied
 * seq, so the replica is always a prefix of the store's history (a crash
 * loses at most the last transactions, which the next Sync brings back).
 * The environment is opened with MDB_NOMETASYNC: integrity is kept, a system
 * crash may undo the last commit, and the store is the system of record.
 *
 * Extension point: replica_apply() is the one path that changes data. The
 * full-text index (qsearch.h) registers a replica_hook and gets called inside
 * the same transaction for every put and delete (and on reset, and before
 * each commit), so its postings stay exactly in step with the articles and
 * the applied seq.
 *
 * Not thread-safe: one replica is used by one thread (the worker's).
 */
#ifndef QUERY_REPLICA_H
#define QUERY_REPLICA_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bulletin.pb-c.h"
#include "internal.pb-c.h"

#define REPLICA_UUID_MAX 64   /* longest store_uuid kept */
#define REPLICA_EXCERPT_CHARS 200
#define REPLICA_HASH_LEN 16

typedef struct replica replica;

/* The named databases, for readers (list.c). Handles are valid for the life
 * of the replica. */
typedef struct {
    MDB_env *env;
    MDB_dbi articles, summaries, keys, by_time, by_site, by_cat, by_tag, counts, meta;
} replica_dbs;

/* Kinds of attribute index (also the first byte of a `counts` key). */
typedef enum { REPLICA_SITE = 1, REPLICA_CATEGORY = 2, REPLICA_TAG = 3 } replica_kind;

/* Called inside the apply transaction. `old` is the previous version (NULL
 * when new), `new_` the new one (NULL for a delete). Return 0, or -1 to abort
 * the whole batch (it is then retried by the caller's next Sync). */
typedef struct {
    void *ud;
    int (*on_change)(void *ud, MDB_txn *txn, uint64_t id, const Bulletin__Article *old,
                     const Bulletin__Article *new_);
    int (*on_reset)(void *ud, MDB_txn *txn);
    /* Optional: called just before every commit of an apply or reset
     * transaction (write what was buffered); 0 or -1 (the txn is aborted). */
    int (*before_commit)(void *ud, MDB_txn *txn);
    /* Optional: called after such a transaction was aborted or its commit
     * failed (drop what was buffered for it). */
    void (*after_abort)(void *ud);
    /* Optional: right after on_change or before_commit returned -1, the
     * LMDB error behind it (MDB_MAP_FULL: the map is grown and the
     * transaction replayed), another error code, or 0 when not known (then
     * a failure with the map over 75% full is taken for MDB_MAP_FULL). */
    int (*last_error)(void *ud);
} replica_hook;

/* Open (creating when needed) the replica in directory `dir` (created if
 * missing). map_size 0 = default (16 GiB of address space); every write,
 * the open's own included, grows the map on MDB_MAP_FULL and is replayed.
 * Runs mdb_reader_check. NULL on failure (logged). */
replica *replica_new(const char *dir, size_t map_size);

/* Close and set *self to NULL; safe on NULL and twice. */
void replica_destroy(replica **self);

const replica_dbs *replica_dbs_get(const replica *self);

/* The last applied seq (as committed). */
uint64_t replica_applied_seq(const replica *self);

/* The store_uuid the data came from (length 0 when new). */
const uint8_t *replica_store_uuid(const replica *self, size_t *len);

/* Set the hook (copied); NULL removes it. */
void replica_set_hook(replica *self, const replica_hook *hook);

/* Apply a batch of changes in ONE transaction, in the order given (they must
 * be in ascending seq). Changes with seq <= applied are skipped (duplicates).
 * The applied seq becomes the highest seq applied, or `applied_to` when that
 * is higher (a finished Sync sets it to the chunk's head_seq: changes between
 * the last one sent and head_seq were superseded). Malformed changes (PUT
 * without an article, id 0) are logged and skipped but still advance the seq.
 * Returns 0, or -1 on a storage failure (logged; nothing was applied). */
int replica_apply(replica *self, Bulletin__Internal__Change *const *changes, size_t n,
                  uint64_t applied_to);

/* Run fn(ud, txn) in one write transaction of the replica's environment
 * (for a hook's own maintenance, e.g. rebuilding the full-text index), with
 * the hook's before_commit/after_abort around the commit. On MDB_MAP_FULL the
 * map is doubled and fn runs again in a new transaction, so fn must not keep
 * state across attempts. fn returns 0 or -1 (abort). 0 or -1 (logged). */
int replica_write(replica *self, int (*fn)(void *ud, MDB_txn *txn), void *ud);

/* Remove every article and index entry, set applied seq 0 and store_uuid
 * `uuid` (len may be 0), in one transaction, with the hook's on_reset,
 * before_commit and after_abort; on MDB_MAP_FULL the map is doubled and the
 * reset replayed (as replica_apply). 0 or -1 (logged). */
int replica_reset(replica *self, const uint8_t *uuid, size_t len);

/* Record the store_uuid without touching the data (first Sync of a new
 * replica), in a transaction of its own without the hook's calls; on
 * MDB_MAP_FULL the map is doubled and the write replayed. 0 or -1 (logged). */
int replica_set_store_uuid(replica *self, const uint8_t *uuid, size_t len);

/* Number of articles. */
uint64_t replica_count(replica *self);

/* A read transaction (reused between calls: begin/end pairs must not nest).
 * NULL on failure. */
MDB_txn *replica_read_begin(replica *self);
void replica_read_end(replica *self);

/* Get one article by id (key NULL or "") or by key. On success *out is the
 * decoded article (caller frees with wire_free). Returns
 * BULLETIN__STATUS_CODE__OK, NOT_FOUND or INTERNAL. */
int replica_get(replica *self, uint64_t id, const char *key, Bulletin__Article **out);

/* --- helpers shared with list.c and the tests ------------------------------ */

/* BLAKE2b-128 of a value, as used in the attribute indexes. */
void replica_hash(const char *value, size_t len, uint8_t out[REPLICA_HASH_LEN]);

/* published_at as an order-preserving big-endian u64 (sign bit flipped). */
void replica_put_time(uint8_t out[8], int64_t published_at);
int64_t replica_get_time(const uint8_t in[8]);
void replica_put_u64(uint8_t out[8], uint64_t v);
uint64_t replica_get_u64(const uint8_t in[8]);

/* Byte length of the first `max_chars` UTF-8 characters of s[0..len) (never
 * cuts a character; stops early at invalid bytes). */
size_t replica_excerpt_len(const char *s, size_t len, size_t max_chars);

/* What to do with one feed message, given the applied seq (pure logic):
 *   APPLY  its changes continue the history (duplicates inside are skipped);
 *   SKIP   nothing new (all duplicates, or a heartbeat that shows nothing missed);
 *   GAP    something was missed: the first change is past applied+1, or the
 *          store's last_seq is past what we have: Sync again. */
typedef enum { REPLICA_FEED_APPLY, REPLICA_FEED_SKIP, REPLICA_FEED_GAP } replica_feed_verdict;

replica_feed_verdict replica_feed_check(uint64_t applied, uint64_t first_seq,
                                        uint64_t last_change_seq, size_t nchanges,
                                        uint64_t last_seq);

#endif
