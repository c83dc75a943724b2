/*
 * syncdec: the store's answer to a Sync (a bulletin.Reply whose `internal`
 * body is a bulletin.internal.StoreReply carrying a SyncChunk) decoded in
 * one pass over the bytes, into the arena, as the same protobuf-c structs
 * that arena_unpack makes of it (strings NUL-terminated, absent strings
 * protobuf_c_empty_string, absent messages NULL, bytes copied).
 *
 * A Sync chunk is up to 16 MiB of ~30k articles. The generic path
 * (arena_unpack of the Reply, which copies the `internal` bytes, its
 * well-formedness walk, then arena_unpack of the StoreReply and its walk)
 * costs ~6,400 instructions per article; this decoder reads each field once.
 *
 * It decodes only what the store sends: every field known, with its wire
 * type, each singular field at most once, tags of one or two bytes, lengths
 * of up to four bytes. Anything else (an unknown field, a duplicate, a
 * malformed or truncated field, a reply that is not a Sync chunk, more memory
 * than arena_unpack's budget would allow) goes through the generic path,
 * which decides and says why: both accept and refuse exactly the same bytes,
 * with the same values and the same sentence.
 */
#ifndef BULLETIN_SYNCDEC_H
#define BULLETIN_SYNCDEC_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"

/* Decode a store reply of len bytes into arena a, as arena_unpack of a
 * bulletin.Reply and, when its body is `internal`, arena_unpack of that
 * StoreReply would (each with the budget WIRE_BUDGET of its bytes): *rep is
 * NULL when the reply does not decode (why says why); *sr is the StoreReply,
 * NULL when there is none or it does not decode (why says why). When the
 * one-pass decoder took it, (*rep)->internal.data points into data (not a
 * copy): it is valid as long as data is. */
void syncdec_store_reply(arena *a, const void *data, size_t len, Bulletin__Reply **rep,
                         Bulletin__Internal__StoreReply **sr, char *why, size_t why_cap);

/* The one-pass decoder alone (for tests): true with *rep and *sr set when it
 * decoded the bytes; false when they are not a Sync chunk it covers (then
 * nothing is set, and what it allocated stays in the arena until its reset).
 * *need is the bytes arena_unpack of the StoreReply takes from its budget
 * (protobuf-c's allocations, each rounded as the arena rounds it), as far
 * as it got. */
bool syncdec_fast(arena *a, const void *data, size_t len, Bulletin__Reply **rep,
                  Bulletin__Internal__StoreReply **sr, size_t *need);

#endif
