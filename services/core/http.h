/*
 * http: /healthz and Prometheus /metrics for a service, served by
 * libmicrohttpd on its own thread from snapshots that the service loop
 * publishes.
 *
 *   http_server *h = http_server_new(cfg->http, "store");   // NULL: off or failed
 *   ...in the service loop, at start and about once a second:
 *   http_server_publish(h, &stats_reply, healthy, detail);
 *   ...
 *   http_server_destroy(&h);
 *
 *   service loop ──publish()──▶ [render text] ──mutex, swap──▶ snapshot
 *                                                                 │
 *   MHD thread:  GET /metrics ──copy under the mutex──────────────┘
 *                GET /healthz ──healthy and published < 5 s ago?
 *
 * The service loop stays single-threaded: publish() renders outside the lock
 * and only swaps a pointer under it; the HTTP thread never touches service
 * state. A loop that stops publishing (stuck, deadlocked) turns /healthz
 * into 503 "stale: ..." after the freshness window, which is what a Docker
 * health check needs to see.
 *
 * Responses:
 *   GET /metrics  200 text/plain; version=0.0.4 (Prometheus text exposition):
 *                 for each Metric, bulletin_<service>_<name>{instance="..."}
 *                 with # HELP and # TYPE (gauge, or counter named ..._total
 *                 when Metric.counter is set), plus bulletin_<service>_healthy
 *                 (1/0) and bulletin_<service>_snapshot_age_seconds (computed
 *                 when served). Names are sanitized to [a-zA-Z0-9_]; a name
 *                 that repeats after sanitizing keeps its first occurrence.
 *                 503 before the first publish.
 *   GET /healthz  200 "ok\n" when the last publish said healthy and is fresh;
 *                 else 503 with the detail, "stale: the service loop has not
 *                 reported for N s" or "starting: ..." (one line).
 *   HEAD          as GET without the body.
 *   other paths   404; other methods 405 (with Allow: GET, HEAD).
 *
 * Limits: 64 connections (16 per client IP), 5 s idle timeout per
 * connection, 32 KiB of request memory per connection; one polling thread,
 * so a client that sends nothing holds a connection slot until the timeout
 * but blocks nobody.
 */
#ifndef BULLETIN_HTTP_H
#define BULLETIN_HTTP_H

#include "bulletin.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct http_server http_server;

#define HTTP_FRESH_MS 5000 /* default freshness window of a published snapshot */

/*
 * Start serving on `listen`: "host:port" (IPv4 address, host name, or
 * "[IPv6]:port"), ":port" or "*:port" (all IPv4 interfaces); port 0 picks a
 * free port (see http_server_port). NULL, "" or "off" means HTTP is off:
 * returns NULL without logging ("off" is for environment variables, where ""
 * counts as unset). `service` ("store", "ingest", ...) names the metrics.
 *
 * All signals are blocked in the HTTP thread (a service that uses a
 * signalfd keeps receiving its signals in its own thread).
 *
 * @return the server (caller owns it: http_server_destroy), or NULL after
 *         logging event http.start with the reason (bad address, port in
 *         use, out of memory).
 */
http_server *http_server_new(const char *listen, const char *service);

/**
 * @brief Whether listen is written as an address http_server_new takes
 *        ("host:port", ":port", "*:port", "[v6]:port"; NULL, "" or "off" = off).
 *
 * Only the form: whether the host resolves and the port is free is seen when
 * the server starts. For the services' start-up checks (a malformed --http is
 * a bad option; a port in use is not).
 *
 * @return 0, or -1 with one sentence naming --http and the value in err.
 */
int http_listen_check(const char *listen, char *err, size_t cap);

/* Stop the HTTP thread (waits for it), free everything, set *p to NULL.
 * Safe on NULL and twice. */
void http_server_destroy(http_server **p);

/*
 * Replace the snapshot. Call from the service's own loop at start and about
 * once a second. `stats` may be NULL (then only the healthy gauge is
 * exported); it is rendered before returning, so the caller keeps ownership
 * and may free it at once. `detail` (may be NULL) is what /healthz says when
 * `healthy` is false. Safe with h == NULL (does nothing), so a service calls
 * it whether HTTP is on or off. Thread-safe against the HTTP thread; call it
 * from one thread only.
 */
void http_server_publish(http_server *h, const Bulletin__StatsReply *stats, bool healthy,
                         const char *detail);

/* The TCP port actually bound (useful after port 0), or 0 if h is NULL. */
int http_server_port(const http_server *h);

/* Set the freshness window in milliseconds (default HTTP_FRESH_MS; tests use
 * a short one). Values < 1 are taken as 1. */
void http_server_set_fresh_ms(http_server *h, int64_t ms);

/*
 * Render stats as Prometheus text exposition (as served on /metrics, without
 * the snapshot age line) into a new NUL-terminated string.
 * @return the text (caller frees it with free()), or NULL when out of memory.
 */
char *http_render_metrics(const char *service, const Bulletin__StatsReply *stats, bool healthy);

#endif
