/*
 * ingest_server: the bulletin-ingest service loop.
 *
 *   client --REQ/DEALER--> ROUTER [ingest] DEALER --> store ROUTER
 *
 * One thread, one zmq_poll loop, never blocking on the store: client
 * requests are validated and normalized at once, the valid articles go to
 * the store as WriteBatches (at most 200 articles / ~4 MiB each) inside
 * Request.internal, and the client's answer is sent when the store has
 * answered every article of its request or the deadline has passed. A big
 * request is sent in several WriteBatches, the first before the rest is
 * prepared; the articles of small requests that arrive in the same loop turn
 * share one WriteBatch. Many requests are in flight at once; tables keyed by
 * the ingest-chosen request id and a per-request serial match store replies
 * to client requests.
 *
 * With cfg.http set, the loop also publishes the same health and Stats
 * metrics to core/http every second for /healthz and /metrics.
 *
 * Requests: Ingest, Delete -> store; Health, Stats -> answered here;
 * Get/List/Search -> UNIMPLEMENTED (reads go to the query service).
 */
#ifndef INGEST_SERVER_H
#define INGEST_SERVER_H

#include <stddef.h>

#define INGEST_SERVER_HTTP_MS 1000 /* health and metrics published to HTTP this often */

typedef struct {
    const char *bind;             /* client ROUTER endpoint (default: any interface, port 5555) */
    const char *store;            /* store API endpoint, e.g. "tcp://127.0.0.1:5557" */
    long long deadline_ms;        /* wait for the store at most this long (default 5000) */
    long long max_request;        /* ZMQ_MAXMSGSIZE of the client socket, bytes */
    long long max_items;          /* items per IngestRequest */
    long long max_inflight;       /* client requests waiting for the store at once */
    long long health_interval_ms; /* ping the store this often (default 2000) */
    int stop_fd;                  /* readable = stop (a signalfd or a pipe); -1 = the
                                     server blocks SIGINT/SIGTERM and watches them */
    const char *http;             /* /healthz and /metrics listen address (":9555");
                                     NULL or "" = off (the default). If it cannot
                                     listen, ingest logs why and runs without HTTP. */
} ingest_server_cfg;

/* Fill cfg with the defaults above. */
void ingest_server_cfg_defaults(ingest_server_cfg *cfg);

/* Whether cfg's values can work: limits in range, well-formed endpoints
 * (ingest_server_run checks the same first). 0, or -1 with one sentence in
 * err (bulletin-ingest prints it and exits 2, "bad option"). */
int ingest_server_config_check(const ingest_server_cfg *cfg, char *err, size_t cap);

/* Run until stop_fd becomes readable (or SIGINT/SIGTERM): then stop taking
 * requests, wait up to ~1 s for the store's answers to those in flight,
 * answer the rest UNAVAILABLE and return 0. Returns -1 when it cannot start
 * (bad endpoint, port in use), after logging why. */
int ingest_server_run(const ingest_server_cfg *cfg);

#endif
