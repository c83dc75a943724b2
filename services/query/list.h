/*
 * list: List execution on a replica, and the opaque page cursor.
 *
 * A List is a walk over one index of the replica (see replica.h): by_time
 * when there is no attribute filter, otherwise the attribute index (site,
 * category or tag) with the fewest articles for the requested value (the
 * `counts` database knows). The other attribute filters are point lookups of
 * [h16(value)][published_at][id] in their own index, so no article is read
 * unless it is on the page. The published_at range bounds the walk.
 *
 * Cursor (26 bytes, opaque to clients):
 *
 *   +-----+-------+-----------------+-----------------+---------+
 *   | ver | order | filter hash (8) | published_at(8) | id (8)  |
 *   +-----+-------+-----------------+-----------------+---------+
 *
 * (published_at, id) of the last item of the page: the next page starts
 * strictly after it in the requested order, so an article inserted or
 * deleted between pages neither repeats nor hides one that was already due.
 * A cursor used with another order or filter is INVALID_ARGUMENT.
 */
#ifndef QUERY_LIST_H
#define QUERY_LIST_H

#include <stddef.h>
#include <stdint.h>

#include <zmq.h>

#include "bulletin.pb-c.h"
#include "replica.h"

#define LIST_DEFAULT_LIMIT 20
#define LIST_MAX_LIMIT 1000
#define LIST_CURSOR_LEN 26

/* The result of list_run. The page's summaries are not decoded: `items`
 * holds them as the replica stores them (serialized ArticleSummary), each
 * already framed as field 1 of a ListReply ([0x0a][varint length][bytes]),
 * so the answer is written by concatenation (list_reply_pack_zmq) instead of
 * unpack + repack. `reply` carries the rest of the ListReply (next_cursor,
 * total, has_total; its n_items stays 0). Free with list_result_clear. */
typedef struct {
    Bulletin__ListReply reply;
    size_t n_items;           /* summaries in `items` */
    uint8_t *items;           /* n_items framed summaries, items_len bytes */
    size_t items_len, items_cap;
    uint8_t cursor[LIST_CURSOR_LEN];
} list_result;

/* Run `req` (NULL fields mean defaults) on the replica.
 * Returns BULLETIN__STATUS_CODE__OK with *out filled, INVALID_ARGUMENT (bad
 * limit or cursor; `why` says which) or INTERNAL (storage failure).
 * Call list_result_clear(out) in every case. */
int list_run(replica *r, const Bulletin__ListRequest *req, list_result *out, char *why,
             size_t why_cap);

void list_result_clear(list_result *res);

/* Serialize `head` (a Reply whose body is not set: status, request_id,
 * served_by, applied_seq ...) followed by `res` as its `list` body (field 13)
 * into *out, in one allocation: the bytes decode as a Reply with
 * body_case LIST whose items are the stored summaries. *out is initialized
 * in every case (empty on failure). 0, or -1 when out of memory. */
int list_reply_pack_zmq(const Bulletin__Reply *head, const list_result *res, zmq_msg_t *out);

/* Hash of a filter (NULL = no filter), bound into cursors. */
uint64_t list_filter_hash(const Bulletin__Filter *f);

void list_cursor_encode(uint8_t out[LIST_CURSOR_LEN], int order, uint64_t filter_hash,
                        int64_t published_at, uint64_t id);

/* 0 and the position, or -1 when the cursor is malformed or was made for
 * another order or filter. */
int list_cursor_decode(const uint8_t *c, size_t len, int order, uint64_t filter_hash,
                       int64_t *published_at, uint64_t *id);

#endif
