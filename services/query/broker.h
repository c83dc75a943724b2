/*
 * broker: bulletin-query, the read tier's load balancer (ZeroMQ Guide's
 * Paranoid Pirate / Majordomo shape, reduced to one service).
 *
 *   clients ──REQ/DEALER──▶ [front ROUTER]  broker  [back ROUTER] ◀──DEALER── workers
 *
 * Client side: [route][empty][bulletin.Request] in, [route][empty][Reply]
 * out, as on every Bulletin service. The broker reads only the top level of
 * the Request (version_major, request_id, deadline_ms, min_seq and which
 * body is set) with a small varint scan instead of decoding it: the worker
 * decodes it. Health and Stats are answered by the broker itself; Ingest and
 * Delete are UNIMPLEMENTED here (they go to ingest).
 *
 * Worker protocol on the back socket (all integers u64 big-endian, 8 bytes;
 * command = one byte):
 *
 *   worker -> broker   (as the broker's ROUTER sees it: [worker id] first)
 *     READY      [""][0x01][name][applied_seq][credit u32][flags u32][max_msg]
 *                                                   register, idle; credit = how
 *                                                   many requests it may hold at
 *                                                   once (1..16; frame optional, 1);
 *                                                   flags (optional, 0): bit 0 =
 *                                                   BROKER_FLAG_BATCH, it takes
 *                                                   REQUESTS and sends REPLIES;
 *                                                   max_msg (optional, 0 = no
 *                                                   limit): the largest Request
 *                                                   frame it accepts (its
 *                                                   ZMQ_MAXMSGSIZE: a larger frame
 *                                                   would drop its connection)
 *     HEARTBEAT  [""][0x02][applied_seq]            alive (sent every heartbeat
 *                                                   interval, and soon after the
 *                                                   replica applied new changes)
 *     REPLY      [""][0x03][tag][applied_seq][Reply] the answer to REQUEST `tag`;
 *                                                   frees one slot
 *     REPLIES    [""][0x07][applied_seq]([tag][Reply]){1..16}
 *                                                   several answers in one message
 *                                                   (batch workers only)
 *     DISCONNECT [""][0x05]                         leaving
 *   broker -> worker
 *     REQUEST    [""][0x04][tag][Request]           at most `credit` unanswered
 *                                                   per worker (to workers
 *                                                   without BROKER_FLAG_BATCH)
 *     REQUESTS   [""][0x06]([tag][Request]){1..credit}
 *                                                   every request assigned to a
 *                                                   batch worker during one
 *                                                   wake-up, in one message
 *     HEARTBEAT  [""][0x02][max_msg]                alive; max_msg = the largest frame
 *                                                   the broker takes (its --max-msg,
 *                                                   0 = any; a worker ignores a
 *                                                   missing frame): the worker answers
 *                                                   RESOURCE_EXHAUSTED instead of
 *                                                   sending a larger Reply, which
 *                                                   would drop its connection. Also
 *                                                   sent right after READY, before
 *                                                   the worker's first REQUEST(S)
 *     DISCONNECT [""][0x05]                         "I do not know you": the
 *                                                   worker registers again on a
 *                                                   fresh socket
 *
 * Batching: the broker reads every message waiting on both sockets, assigns
 * requests to workers as it goes, and only then sends each worker ONE message
 * with all the requests it got in that wake-up; a batch worker answers the
 * requests it read in one wake-up with one REPLIES message (or a few, when
 * answering them takes long). Under load this turns ~2 broker<->worker
 * messages per request into ~2 per batch; each message costs the broker a
 * hand-off to ZeroMQ's I/O thread and a socket write or read. A batch is
 * only bookkeeping on the wire: every request keeps its own slot, tag,
 * deadline and retry. A broker that knows REQUESTS/REPLIES still serves old
 * workers (no flags frame) with REQUEST/REPLY; a batch worker needs a broker
 * of this version (upgrade brokers first). The same holds for READY's
 * max_msg frame: a broker before it ignores such a READY.
 *
 * Size: the broker never sends a worker a Request larger than the max_msg
 * its READY gave. A request that no registered worker accepts is answered
 * RESOURCE_EXHAUSTED at once (naming the largest accepted size); one that
 * arrives while no worker is registered waits as usual, and gets that answer
 * at its deadline when the workers that came meanwhile all take less.
 *
 * `tag` is the broker's own number for a client request; the client's route
 * never leaves the broker, and a late REPLY for a request that already timed
 * out is recognised by its tag and dropped.
 *
 * Request life:
 *
 *              ┌──────── no ready worker with applied_seq >= min_seq
 *              ▼
 *   arrive ─▶ WAITING ──(worker ready / its seq catches up)──▶ IN FLIGHT ──REPLY──▶ answered
 *              │  ▲                                               │
 *              │  └──── worker missed `liveness` heartbeats ──────┤ (re-sent once; the
 *              │        (first time)                              │  second time UNAVAILABLE)
 *              └── deadline ─▶ UNAVAILABLE (no worker at all)     └── deadline ─▶ DEADLINE_EXCEEDED
 *                              DEADLINE_EXCEEDED (min_seq not reached / all busy)
 *
 * Workers with a free slot are a least-recently-used queue; an idle worker is
 * preferred over one that is already working. Credit > 1 keeps a worker busy
 * while its previous answer travels back (a round trip between processes on
 * different cores costs ~100 us here), and lets the broker batch. A worker is
 * never waited on: every send is non-blocking, and a worker that cannot be sent to is
 * dropped (its request goes back to the head of the queue).
 */
#ifndef QUERY_BROKER_H
#define QUERY_BROKER_H

#include <stddef.h>
#include <stdint.h>

/* Commands of the worker protocol (see above). */
enum {
    BROKER_READY = 0x01,
    BROKER_HEARTBEAT = 0x02,
    BROKER_REPLY = 0x03,
    BROKER_REQUEST = 0x04,
    BROKER_DISCONNECT = 0x05,
    BROKER_REQUESTS = 0x06,
    BROKER_REPLIES = 0x07,
};

/* READY flags. */
#define BROKER_FLAG_BATCH 0x1u /* the worker takes REQUESTS and may answer with REPLIES */

#define BROKER_NAME_MAX 64  /* longest worker name kept (longer is cut) */
#define BROKER_CREDIT_MAX 16 /* most requests the broker keeps at one worker */
/* Most frames of a worker protocol message: REPLIES with one (tag, Reply)
 * pair per slot, after [""][cmd][applied_seq] (the broker's ROUTER adds the
 * worker's id in front). */
#define BROKER_FRAMES_MAX (3 + 2 * BROKER_CREDIT_MAX)

/* The smallest non-zero --max-msg: every error reply a worker or the broker
 * makes (RESOURCE_EXHAUSTED naming the limit, a deadline) fits in it, so a
 * client is never left waiting for its deadline behind an answer no one can
 * send. */
#define BROKER_MIN_MAX_MSG 65536

typedef struct {
    const char *bind;       /* client endpoint(s), comma-separated, e.g. tcp://0.0.0.0:5556
                             * or tcp plus an ipc endpoint for local clients */
    const char *workers;    /* worker endpoint(s), comma-separated, e.g. tcp://0.0.0.0:5559 */
    long long deadline_ms;  /* default per-request deadline (client may ask less) */
    long long heartbeat_ms; /* heartbeat interval, both ways */
    long long liveness;     /* heartbeats missed before a worker is dropped */
    long long max_queue;    /* requests waiting for a worker before RESOURCE_EXHAUSTED */
    long long max_msg;      /* ZMQ_MAXMSGSIZE on both sockets (bytes); 0 = none, else at
                             * least BROKER_MIN_MAX_MSG */
    const char *http;       /* /healthz and /metrics address (":9556"); NULL or "" = off */
    int stop_fd;            /* readable = stop (a signalfd or a pipe); -1 = none */
    void *ctx;              /* ZeroMQ context to use; NULL = a new one */
} broker_config;

/* Defaults for every field (stop_fd -1, ctx NULL). */
void broker_config_defaults(broker_config *cfg);

/* Whether cfg's values can work: limits in range, well-formed endpoint lists
 * (broker_run checks the same first). 0, or -1 with one sentence in err
 * (bulletin-query prints it and exits 2, "bad option"). */
int broker_config_check(const broker_config *cfg, char *err, size_t cap);

/* Run the broker until stop_fd becomes readable. Returns 0 on a clean stop,
 * -1 when it could not start (bind failed; logged). */
int broker_run(const broker_config *cfg);

/* Read the top level of a serialized bulletin.Request without decoding it.
 * Returns 0 and the fields (body = the body's field number, 0 if none), or
 * -1 when the bytes are not a well-formed protobuf message. Exposed for tests. */
typedef struct {
    uint32_t version_major;
    uint64_t request_id;
    uint32_t deadline_ms;
    uint64_t min_seq;
    uint32_t body;
} broker_envelope;

int broker_envelope_scan(const void *data, size_t len, broker_envelope *out);

#endif
