/* bulletin-worker: parse flags and environment, run a read replica (worker.h). */
#include "worker.h"

#include "config.h"
#include "log.h"
#include "zio.h"

#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    worker_config cfg;
    worker_config_defaults(&cfg);
    const cfg_option opts[] = {
        {"broker", "BULLETIN_BROKER", CFG_STR_NONEMPTY, "tcp://127.0.0.1:5559", "the query broker's worker endpoint", &cfg.broker},
        {"store", "BULLETIN_STORE", CFG_STR_NONEMPTY, "tcp://127.0.0.1:5557", "the store's API endpoint (Sync)", &cfg.store},
        {"feed", "BULLETIN_FEED", CFG_STR_NONEMPTY, "tcp://127.0.0.1:5558", "the store's change feed (PUB)", &cfg.feed},
        {"data", "BULLETIN_WORKER_DATA", CFG_STR_NONEMPTY, "./data/worker", "directory of this replica's LMDB", &cfg.data},
        {"name", "BULLETIN_WORKER_NAME", CFG_STR_NONEMPTY, NULL, "worker name in replies (default hostname-pid)", &cfg.name},
        {"heartbeat-ms", "BULLETIN_QUERY_HEARTBEAT_MS", CFG_INT, "1000", "heartbeat interval with the broker", &cfg.heartbeat_ms},
        {"liveness", "BULLETIN_QUERY_LIVENESS", CFG_INT, "3", "broker heartbeats missed before registering again", &cfg.liveness},
        {"sync-timeout-ms", "BULLETIN_SYNC_TIMEOUT_MS", CFG_INT, "5000", "re-send a Sync to the store after this long", &cfg.sync_timeout_ms},
        {"sync-max-changes", "BULLETIN_SYNC_MAX_CHANGES", CFG_INT, "100000", "changes per Sync chunk (0 = the store's default, 1000). Bigger chunks = fewer, larger replica transactions: a bootstrap from 0 of 307k articles with the full-text index took 9.3 s of worker CPU with 4 MiB chunks and 7.9 s with 16 MiB (bench/README.md)", &cfg.sync_max_changes},
        {"sync-max-bytes", "BULLETIN_SYNC_MAX_BYTES", CFG_INT, "16777216", "bytes per Sync chunk (0 = the store's default, 4 MiB; the store caps it at 64 MiB): with --sync-max-changes, the size of the replica's transactions during a Sync (a bigger chunk also takes more memory while it is applied)", &cfg.sync_max_bytes},
        {"feed-buffer", "BULLETIN_FEED_BUFFER", CFG_INT, "100000", "feed messages buffered during a Sync", &cfg.feed_buffer_max},
        {"map-size-mb", "BULLETIN_WORKER_MAP_MB", CFG_INT, "16384", "initial LMDB map size in MiB (grows when full)", &cfg.map_size_mb},
        {"index-pending-docs", "BULLETIN_WORKER_INDEX_PENDING", CFG_INT, "0", "full-text index write buffer, in articles: written when full and at every commit (0 = 1000). The first Sync (the bulk load) ignores it: see --index-bulk-mb", &cfg.index_pending_docs},
        {"index-bulk-mb", "BULLETIN_WORKER_INDEX_BULK_MB", CFG_INT, "1024", "the first Sync's (the bulk load's) full-text index buffer in MiB, used when the worker may run on one CPU only (taskset: there it saves ~5% of the bootstrap's CPU; with more CPUs each chunk's write overlaps the analysis of the next, and one write at the end made the bootstrap slower): the postings of all its chunks are kept in memory and written once, as one segment, when the Sync ends (or at the chunk's commit where the buffer passes this size, and the segments are merged at the end). A 307k-article English bootstrap buffers ~290 MiB, a 352k Chinese one ~810 MiB. The articles commit per chunk meanwhile; a worker stopped before the end rebuilds its index at the next start. 0 = a segment per chunk, merged at the end", &cfg.index_bulk_mb},
        {"credit", "BULLETIN_WORKER_CREDIT", CFG_INT, "16", "requests the broker may send before the first is answered (1..16; 16 = more answers per message under load: bench/README.md, \"Broker CPU, session 3\")", &cfg.credit},
        {"http", "BULLETIN_WORKER_HTTP", CFG_STR, NULL, "HTTP /healthz and Prometheus /metrics address (host:port or :port; \"\" or off = off: several workers share a host)", &cfg.http},
        {"max-msg", "BULLETIN_MAX_MSG", CFG_INT, "16777216", "largest accepted request frame in bytes", &cfg.max_msg},
    };
    switch (cfg_parse("bulletin-worker",
                      "A read replica: copies the store's articles into its own LMDB (Sync, then the "
                      "feed), keeps a full-text index of them, and answers Get, List and "
                      "Search for the query broker.\n\n" CFG_EXIT_STATUS,
                      opts, sizeof opts / sizeof opts[0], argc, argv)) {
    case CFG_HELP:
        return 0;
    case CFG_ERROR:
        return 2;
    }
    log_init("worker");
    char err[640];
    if (worker_config_check(&cfg, err, sizeof err) < 0) {
        fprintf(stderr, "bulletin-worker: %s\n", err);
        return 2;
    }
    cfg.stop_fd = zio_signal_fd();
    if (cfg.stop_fd < 0) {
        log_error("worker.start", "error=\"cannot set up signal handling\"");
        return 1;
    }
    int rc = worker_run(&cfg);
    close(cfg.stop_fd);
    return rc == 0 ? 0 : 1;
}
