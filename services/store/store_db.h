/*
 * store_db: the store's LMDB schema and transactions.
 *
 * One environment, four named databases (all integer keys are u64 big-endian,
 * so cursors walk in numeric order):
 *
 *   articles  id  -> packed bulletin.Article (every field, incl. key, seq,
 *                    content_hash, ingested_at, updated_at)
 *   keys      key -> id   (keys longer than STORE_DB_MAX_KEY bytes are stored
 *                          as "#" + hex BLAKE2b-256 of the key; a lookup always
 *                          compares the stored article's key)
 *   log       seq -> [id u64 BE][op u8] (+ the article key for DELETE)
 *                    only the latest change per id: a change deletes the
 *                    entry of the previous one, so walking from seq S gives
 *                    exactly what changed after S, and from 0 a snapshot
 *   meta      "schema_version", "next_id", "last_seq" (u64 BE),
 *             "store_uuid" (16 random bytes), "created_at" (i64 BE, Unix ms)
 *
 * Writes: store_db_write applies many ops in ONE write transaction (group
 * commit: one fsync for all of them). When the map is full the transaction is
 * aborted, the map doubled and the whole batch replayed, so the map grows by
 * itself. Durability: no MDB_NOSYNC / MDB_NOMETASYNC; a commit that returned
 * has been fsynced.
 *
 * Threads: a store_db may be used from one thread at a time (the server is
 * single-threaded). Several processes may open the same directory (a hot
 * backup runs beside the service).
 */
#ifndef STORE_DB_H
#define STORE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.pb-c.h"
#include "store_codec.h"

#define STORE_DB_SCHEMA_VERSION 1
/* Keys longer than this are stored hashed (LMDB keys are at most 511 bytes). */
#define STORE_DB_MAX_KEY 480
#define STORE_DB_UUID_BYTES 16
/* A failed commit with less free disk than this is reported as ENOSPC. */
#define STORE_DB_LOW_DISK (64u << 20)
/* store_db_open refuses to start with less free disk than this. */
#define STORE_DB_MIN_DISK (1u << 20)

/* Sync defaults (SyncRequest fields left 0). */
/* Pre-extension of data.mdb with zeros (see store_db.c): after a commit that
 * grew the used size by at most EXTEND_MAX_COMMIT, when fewer than
 * EXTEND_LOW bytes are left past the last used page, append EXTEND_STEP. */
#define STORE_DB_EXTEND_STEP (8u << 20)
#define STORE_DB_EXTEND_LOW (1u << 20)
#define STORE_DB_EXTEND_MAX_COMMIT (256u << 10)
#define STORE_DB_SYNC_MAX_CHANGES 1000
#define STORE_DB_SYNC_MAX_BYTES (4u << 20)

/* Log entry ops (the numbers of bulletin.internal.ChangeOp). */
enum { STORE_OP_PUT = 0, STORE_OP_DELETE = 1 };

typedef struct store_db store_db;

/* Result of one write op (an IngestResult in the making). */
typedef struct {
    Bulletin__WriteStatus status; /* CREATED, UPDATED, UNCHANGED, DELETED, REJECTED */
    uint64_t id;
    uint64_t seq;                 /* the new seq; for UNCHANGED the stored version's seq */
    char *key;                    /* owned; "" when unknown */
    char *error;                  /* owned; NULL unless REJECTED */
} store_result;

/* One committed change, packed as a bulletin.internal.Change. */
typedef struct {
    uint64_t seq;
    store_buf bytes;
} store_change;

/* Everything one store_db_write produced. Zero-initialize; free with
 * store_write_clear (safe twice). */
typedef struct {
    store_result *results; /* n_results == the number of ops, in op order */
    size_t n_results;
    store_change *changes; /* in seq order; only after a successful commit */
    size_t n_changes, cap_changes;
    uint64_t last_seq;     /* after the commit */
    size_t changed_bytes;  /* sum of changes[i].bytes.len */
} store_write;

void store_write_clear(store_write *w);

/* Counters read in one read transaction. */
typedef struct {
    uint64_t last_seq, next_id;
    uint64_t articles;    /* entries in `articles` */
    uint64_t log_entries; /* entries in `log` (articles + tombstones) */
    uint64_t map_size, map_used;
    int64_t created_at;
} store_db_info;

/*
 * Open (creating if needed, including the directory) the environment in
 * `dir` with an initial map of `map_size` bytes (a larger existing map is
 * kept). Runs mdb_reader_check. Refuses a disk with less than STORE_DB_MIN_DISK
 * free. Returns NULL on failure with a sentence in err.
 */
store_db *store_db_open(const char *dir, size_t map_size, char *err, size_t err_cap);

/* The largest article id the store hands out: the workers' full-text index
 * keys postings by 32-bit ids (idx.h IDX_ID_MAX). A put that would create an
 * article past it is REJECTED ("article id space exhausted"); updates and
 * deletes of existing articles go on. */
#define STORE_ID_MAX UINT32_MAX

/* Close the environment and set *self_p to NULL; safe on NULL. */
void store_db_destroy(store_db **self_p);

/* Last committed seq (kept in memory, equal to meta.last_seq). */
uint64_t store_db_last_seq(const store_db *db);
/* The 16-byte identity of this database. */
const uint8_t *store_db_uuid(const store_db *db);

/* Read counters. 0 or an LMDB error code. */
int store_db_info_get(store_db *db, store_db_info *out);

/* Clear stale reader slots (dead processes). Returns the number cleared. */
int store_db_reader_check(store_db *db);

/*
 * Apply `n` ops in one write transaction, in order, with `now_ms` as the
 * current time; commit; fill *out (results and committed changes).
 * Op semantics: see the store section of ../../../shared/design.md and
 * store_db.c. Bad ops (missing article, empty key, invalid UTF-8, unknown id
 * or key on delete) are REJECTED in their result, never an error.
 * Returns 0 when committed (out complete), or a nonzero LMDB/errno code when
 * nothing was committed (ENOSPC: the disk is full, MDB_MAP_FULL: the map
 * could not grow) (out->results still holds one result per op, all
 * REJECTED with the reason); err gets a sentence.
 */
int store_db_write(store_db *db, Bulletin__Internal__WriteOp *const *ops, size_t n,
                   int64_t now_ms, store_write *out, char *err, size_t err_cap);

/*
 * The packed Article with this id (id != 0) or key (key != NULL), copied into
 * *out (appended; caller frees). Returns 0, MDB_NOTFOUND, or another LMDB code.
 */
int store_db_get(store_db *db, uint64_t id, const char *key, size_t key_len, store_buf *out);

/* What one Sync read. */
typedef struct {
    size_t n_changes;
    uint64_t head_seq;   /* last committed seq in the read txn */
    uint64_t last_sent;  /* seq of the last change in the chunk (from_seq if none) */
    bool done;           /* nothing after last_sent */
} store_sync_info;

/*
 * One Sync chunk: the log entries with seq > from_seq, ascending, at most
 * max_changes (0 = default) and about max_bytes (0 = default; at least one
 * change is sent), read in one read transaction. Appends a complete packed
 * bulletin.internal.SyncChunk (changes, head_seq, done, store_uuid) to *chunk.
 * Returns 0 or an LMDB/errno code (err gets a sentence).
 */
int store_db_sync(store_db *db, uint64_t from_seq, uint32_t max_changes, uint32_t max_bytes,
                  store_buf *chunk, store_sync_info *info, char *err, size_t err_cap);

/*
 * Hot backup: copy the environment in `dir` (may be in use by a running
 * store) to `dest` (created if missing; must not already hold a database)
 * with compaction. 0, or -1 with a sentence in err.
 */
int store_db_backup(const char *dir, const char *dest, char *err, size_t err_cap);

#endif
