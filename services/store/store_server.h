/*
 * store_server: the bulletin-store service loop.
 *
 *   store_server_config cfg = {.data_dir = "./data/store", .bind = "tcp://127.0.0.1:5557",
 *                              .feed = "tcp://127.0.0.1:5558", .map_size = 1 << 30,
 *                              .max_msg = 16 << 20, .heartbeat_ms = 1000};
 *   return store_server_run(&cfg);   // until SIGTERM/SIGINT
 *
 * One thread, one zmq_poll over the API ROUTER, the signalfd and the heartbeat
 * timer (plus, when cfg.http is set, a 1 s timer that publishes the Stats
 * metrics and health to core/http for /metrics and /healthz). Each wake-up:
 *
 *   drain the API socket (non-blocking, up to STORE_SERVER_MAX_OPS ops or
 *   STORE_SERVER_MAX_BYTES bytes)
 *     ├─ reads (Get, Stats, Health, internal Sync): answered at once
 *     └─ writes (internal WriteBatch): collected
 *   apply ALL collected batches in ONE write transaction, commit (one fsync)
 *   THEN reply to every write (one IngestResult per op, in order)
 *   THEN publish the committed changes on the feed (PUB, no topic frame)
 *
 * Nothing is acknowledged before its commit returned. A failed commit answers
 * every write in it with INTERNAL (RESOURCE_EXHAUSTED when out of space) and
 * the service keeps serving.
 *
 * Feed: one bulletin.internal.FeedMessage per commit (split into parts of at
 * most STORE_SERVER_FEED_CHANGES changes / ~STORE_SERVER_FEED_BYTES bytes;
 * each part's last_seq is the seq of its last change, so the final part
 * carries the commit's last seq), and a heartbeat FeedMessage (no changes,
 * last_seq, store_uuid) about every heartbeat_ms.
 */
#ifndef STORE_SERVER_H
#define STORE_SERVER_H

#include <stddef.h>
#include <stdint.h>

#define STORE_SERVER_MAX_OPS 10000             /* ops collected per group commit */
#define STORE_SERVER_MAX_BATCH_OPS 100000      /* ops in one WriteBatch, else INVALID_ARGUMENT */
#define STORE_SERVER_MAX_BYTES (64u << 20)     /* request bytes drained per wake-up */
#define STORE_SERVER_FEED_CHANGES 1000
#define STORE_SERVER_FEED_BYTES (4u << 20)
#define STORE_SERVER_SYNC_MAX_BYTES (64u << 20) /* cap on SyncRequest.max_bytes */
#define STORE_SERVER_SYNC_MAX_CHANGES 100000    /* cap on SyncRequest.max_changes */
#define STORE_SERVER_HTTP_MS 1000               /* metrics/health published this often */
/* The smallest --max-msg (other than 0 = no limit): the ingest sends write
 * batches of up to 4 MiB of ops (ingest_server.c S_PART_BYTES) in an envelope;
 * a smaller limit would drop the ingest's connection on every large batch or
 * big article, and the writer would get UNAVAILABLE "retrying is safe" again
 * and again. */
#define STORE_SERVER_MIN_MAX_MSG ((4u << 20) + 65536)

typedef struct {
    const char *data_dir;   /* LMDB environment directory (created if missing) */
    const char *bind;       /* API ROUTER endpoint */
    const char *feed;       /* feed PUB endpoint */
    long long map_size;     /* initial map size in bytes (grows by itself) */
    long long max_msg;      /* ZMQ_MAXMSGSIZE on the API socket (0 = none) */
    long long heartbeat_ms; /* feed heartbeat period */
    const char *http;       /* /healthz and /metrics listen address ("127.0.0.1:9557",
                               ":9557"); NULL or "" = off. If it cannot listen, the
                               store logs why and runs without HTTP. */
} store_server_config;

/* Whether cfg's values can work: a data directory, limits in range (map size
 * >= 0, max-msg 0 or >= STORE_SERVER_MIN_MAX_MSG, heartbeat 1..3600000 ms),
 * well-formed endpoints (store_server_run checks the same first). 0, or -1 with one sentence in err (bulletin-store
 * prints it and exits 2, "bad option"). */
int store_server_config_check(const store_server_config *cfg, char *err, size_t cap);

/*
 * Run the store until SIGTERM or SIGINT (blocks them in the calling thread,
 * see zio_signal_fd). On a signal it finishes the batch in hand (commit and
 * replies), closes everything and returns 0. Returns 1 when it cannot start
 * (a bad value: see store_server_config_check; the database cannot be opened;
 * an endpoint cannot be bound), after logging why.
 */
int store_server_run(const store_server_config *cfg);

#endif
