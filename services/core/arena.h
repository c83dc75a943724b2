/*
 * arena: a bump allocator for decoding protobuf messages that are freed all
 * at once. protobuf-c's unpack makes one malloc per message, string, bytes
 * field and repeated array (tens per article) and free_unpacked one free
 * each; with an arena it is a pointer bump each, and one reset for the lot.
 *
 *   arena *a = arena_new(0);
 *   Bulletin__Request *req = (Bulletin__Request *)arena_unpack(
 *       a, &bulletin__request__descriptor, data, len, WIRE_BUDGET(len), &code, why, sizeof why);
 *   ... use req (valid until the reset) ...
 *   arena_reset(a, 1 << 20); // everything decoded into it is gone; up to 1 MiB is kept
 *   arena_destroy(&a);
 *
 * The byte budget of wire_unpack applies to each arena_unpack call (untrusted
 * input can make protobuf-c allocate ~25x its size). Never free what the
 * arena gave out (no protobuf_c_message_free_unpacked / wire_free on it).
 * An arena is used by one thread at a time.
 */
#ifndef BULLETIN_ARENA_H
#define BULLETIN_ARENA_H

#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

typedef struct arena arena;

/* A new, empty arena whose first block will hold at least `first_block`
 * bytes (0 = 64 KiB). NULL when out of memory. */
arena *arena_new(size_t first_block);

/* Free the arena and everything in it; sets *self_p to NULL. Safe twice. */
void arena_destroy(arena **self_p);

/* Forget everything allocated from the arena. Keeps one block for the next
 * use (the biggest of at most keep_max bytes; 0 = keep none) and frees the
 * others. */
void arena_reset(arena *self, size_t keep_max);

/* `size` bytes aligned for any type, valid until the next reset; NULL when
 * out of memory. */
void *arena_alloc(arena *self, size_t size);

/* The bytes arena_alloc(size) takes from the arena and from an
 * arena_unpack budget: size rounded up to the alignment, at least one unit
 * (saturates near SIZE_MAX, where arena_alloc fails). */
static inline size_t arena_charge(size_t size)
{
    const size_t al = alignof(max_align_t);
    if (size > SIZE_MAX - al)
        return SIZE_MAX;
    size = (size + al - 1) & ~(al - 1);
    return size ? size : al;
}

/* Bytes handed out since the last reset (alignment included). */
size_t arena_used(const arena *self);

/* wire_unpack into the arena: decode a message of type desc from untrusted
 * bytes, allocating at most `budget` bytes for it. NULL when the bytes do not
 * decode or the budget is exceeded (*code = INVALID_ARGUMENT or
 * RESOURCE_EXHAUSTED, with a sentence in why, as wire_unpack). The message
 * lives until the next arena_reset/arena_destroy. */
ProtobufCMessage *arena_unpack(arena *self, const ProtobufCMessageDescriptor *desc,
                               const void *data, size_t len, size_t budget, wire_code *code,
                               char *why, size_t why_cap);

/* arena_unpack that also refuses a string field that is not valid UTF-8 or
 * contains NUL (INVALID_ARGUMENT, the sentence of wire_strings_why), checking
 * both with one walk of the bytes (wire_accepted_strings) instead of two. */
ProtobufCMessage *arena_unpack_strings(arena *self, const ProtobufCMessageDescriptor *desc,
                                       const void *data, size_t len, size_t budget,
                                       wire_code *code, char *why, size_t why_cap);

/* wire_request_unpack into the arena: arena_unpack of a Request plus the
 * envelope checks (major version, a body present), with the same codes and
 * sentences. *request_id is set when the bytes decoded far enough. When
 * strings_ok is not NULL, the same walk of the bytes that checks them
 * (wire_accepted_clean) sets *strings_ok: whether every string field is
 * valid UTF-8 without NUL (a request with a bad string is still returned:
 * the caller says which, e.g. with wire_check_strings). */
Bulletin__Request *arena_request_unpack(arena *self, const void *data, size_t len,
                                        size_t budget, uint64_t *request_id, bool *strings_ok,
                                        wire_code *code, char *why, size_t why_cap);

#endif
