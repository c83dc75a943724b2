/*
 * worker: bulletin-worker, a read replica (the ZeroMQ side; the data side is
 * replica.h and list.h).
 *
 *   store PUB  ──feed──▶ [SUB]                 (subscribed first, "" filter)
 *   store API  ◀─sync──▶ [DEALER]  worker  [DEALER] ◀──▶ broker back ROUTER
 *
 * Replication (the Clone pattern of the ZeroMQ Guide):
 *
 *        start ──▶ SYNCING ──chunk, done──▶ FOLLOWING ──gap (seq jump, or a
 *                    ▲  │ (feed messages are       │     heartbeat last_seq
 *                    │  │  buffered, bounded)      │     > applied)──┐
 *                    │  └─chunk, !done: ask from   │                 │
 *                    │    the last seq received    │                 │
 *                    └─────────────────────────────┴─────────────────┘
 *
 * A Sync asks the store for everything after the applied seq; a chunk with
 * another store_uuid than the one saved wipes the replica and starts from 0.
 * After a finished Sync the buffered feed is replayed: duplicates are
 * skipped, a gap starts another Sync. A Sync that gets no answer within
 * sync_timeout_ms is re-sent on a fresh socket (Lazy Pirate).
 *
 * The worker registers with the broker (READY) only after its first Sync
 * finished, so a new worker never answers from an empty replica. It sends
 * HEARTBEAT with its applied seq every heartbeat interval and within a few
 * milliseconds after applying changes (read-your-writes waits on it); when
 * the broker is silent for `liveness` intervals, or says it does not know
 * the worker, the worker closes its socket and registers again on a new one.
 * It registers with BROKER_FLAG_BATCH: the broker sends it REQUESTS (several
 * requests in one message), and the answers to the requests it read in one
 * wake-up go back as one REPLIES message, unless answering them takes long
 * (an answer is held at most ~100 us for the next ones).
 *
 * One thread does everything: requests are answered between feed messages
 * and Sync chunks.
 */
#ifndef QUERY_WORKER_H
#define QUERY_WORKER_H

#include <stddef.h>
#include <stdint.h>

/* The first Sync's index buffer, in MiB (--index-bulk-mb, qsearch_set_bulk),
 * used when the worker may run on one CPU only (worker.c s_one_cpu):
 * a 307k-article English bootstrap keeps ~290 MiB, a 352k Chinese one
 * ~810 MiB (bench/README.md, "the first sync's index written once"). */
#define WORKER_INDEX_BULK_MB 1024

typedef struct {
    const char *broker;          /* broker's worker endpoint */
    const char *store;           /* store API (Sync) */
    const char *feed;            /* store feed (PUB) */
    const char *data;            /* LMDB directory */
    const char *name;            /* worker name (served_by); NULL/"" = hostname-pid */
    long long heartbeat_ms;
    long long liveness;
    long long sync_timeout_ms;   /* re-send a Sync after this long without an answer */
    long long sync_max_changes;  /* per chunk, 0 = store default */
    long long sync_max_bytes;    /* per chunk, 0 = store default (4 MiB; the store caps it at 64) */
    long long feed_buffer_max;   /* feed messages buffered while syncing */
    long long map_size_mb;       /* initial LMDB map size, 0 = default */
    long long max_msg;           /* ZMQ_MAXMSGSIZE on the broker socket */
    long long credit;            /* requests the broker may send before an answer (1..16) */
    long long index_pending_docs; /* full-text index write buffer in documents (flushed when
                                   * full and at every commit); 0 = QSEARCH_PENDING_DOCS */
    long long index_bulk_mb;     /* the first Sync's index buffer, kept across its chunks and
                                  * written once (qsearch_set_bulk); 0 = written per chunk */
    const char *http;            /* /healthz and /metrics address; NULL or "" = off */
    int stop_fd;                 /* readable = stop; -1 = none */
    void *ctx;                   /* ZeroMQ context; NULL = a new one */
} worker_config;

void worker_config_defaults(worker_config *cfg);

/* Whether cfg's values can work: limits in range, a data directory, and
 * well-formed endpoints (worker_run checks the same first). 0, or -1 with one
 * sentence in err naming what is wrong (bulletin-worker prints it and exits
 * 2, "bad option"). */
int worker_config_check(const worker_config *cfg, char *err, size_t cap);

/* Run until stop_fd is readable. 0 on a clean stop, -1 when it could not
 * start (replica could not be opened, endpoints invalid; logged). */
int worker_run(const worker_config *cfg);

#endif
