/*
 * arena: see arena.h. A list of blocks, the newest first; an allocation
 * bumps the head block, or starts a new block twice as big as the last one.
 * An allocation bigger than half a block gets a block of its own, linked
 * behind the head so that the head keeps filling.
 */
#include "arena.h"

#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define S_FIRST ((size_t)64 << 10)
#define S_MAX_BLOCK ((size_t)16 << 20) /* blocks grow by doubling up to this */

typedef struct s_block {
    struct s_block *next;
    size_t cap, used;
    alignas(max_align_t) unsigned char data[];
} s_block;

struct arena {
    s_block *head;
    size_t first, used;
    size_t limit; /* arena_unpack: used may not pass this */
    bool over;    /* ... and did */
};

arena *arena_new(size_t first_block)
{
    arena *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->first = first_block ? first_block : S_FIRST;
    a->limit = SIZE_MAX;
    return a;
}

static void s_free_blocks(s_block *b)
{
    while (b) {
        s_block *next = b->next;
        free(b);
        b = next;
    }
}

void arena_destroy(arena **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_free_blocks((*self_p)->head);
    free(*self_p);
    *self_p = NULL;
}

void arena_reset(arena *a, size_t keep_max)
{
    s_block *keep = NULL;
    for (s_block *b = a->head; b; b = b->next)
        if (b->cap <= keep_max && (!keep || b->cap > keep->cap))
            keep = b;
    s_block *b = a->head;
    while (b) {
        s_block *next = b->next;
        if (b != keep)
            free(b);
        b = next;
    }
    if (keep) {
        keep->used = 0;
        keep->next = NULL;
    }
    a->head = keep;
    a->used = 0;
    a->limit = SIZE_MAX;
    a->over = false;
}

size_t arena_used(const arena *a)
{
    return a->used;
}

void *arena_alloc(arena *a, size_t size)
{
    size = arena_charge(size);
    if (size == SIZE_MAX)
        return NULL;
    if (size > a->limit - a->used || a->used > a->limit) {
        a->over = true;
        return NULL;
    }
    s_block *h = a->head;
    if (h && h->cap - h->used >= size) {
        void *p = h->data + h->used;
        h->used += size;
        a->used += size;
        return p;
    }
    size_t cap;
    bool own = false;
    if (h && size > h->cap / 2) {
        cap = size; /* a block of its own, behind the head */
        own = true;
    } else {
        cap = h ? h->cap * 2 : a->first;
        if (cap > S_MAX_BLOCK)
            cap = S_MAX_BLOCK;
        if (cap < size)
            cap = size;
    }
    if (cap > SIZE_MAX - sizeof(s_block))
        return NULL;
    s_block *b = malloc(sizeof(s_block) + cap);
    if (!b)
        return NULL;
    b->cap = cap;
    b->used = size;
    if (own) {
        b->next = h->next;
        h->next = b;
    } else {
        b->next = h;
        a->head = b;
    }
    a->used += size;
    return b->data;
}

static void *s_pb_alloc(void *ud, size_t size)
{
    return arena_alloc(ud, size);
}

static void s_pb_free(void *ud, void *p)
{
    (void)ud;
    (void)p; /* freed all at once by arena_reset */
}

/* arena_unpack; the check after decoding is wire_accepted_clean when `clean`
 * is not NULL (sets *clean), else wire_accepted_strings when `strings`, else
 * wire_accepted. */
static ProtobufCMessage *s_unpack(arena *a, const ProtobufCMessageDescriptor *desc,
                                  const void *data, size_t len, size_t budget, bool strings,
                                  bool *clean, wire_code *code, char *why, size_t why_cap)
{
    a->over = false;
    a->limit = budget > SIZE_MAX - a->used ? SIZE_MAX : a->used + budget;
    ProtobufCAllocator pa = {s_pb_alloc, s_pb_free, a};
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, &pa, len, data);
    bool over = a->over;
    a->limit = SIZE_MAX;
    a->over = false;
    if (m && !(clean     ? wire_accepted_clean(desc, data, len, clean, code, why, why_cap)
               : strings ? wire_accepted_strings(desc, data, len, code, why, why_cap)
                         : wire_accepted(desc, data, len, code, why, why_cap)))
        return NULL; /* freed with the arena */
    if (m)
        return m;
    if (over) {
        *code = BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED;
        snprintf(why, why_cap, "the %s message needs more memory to decode than allowed (%zu bytes)",
                 desc->short_name, budget);
    } else {
        *code = BULLETIN__STATUS_CODE__INVALID_ARGUMENT;
        snprintf(why, why_cap, "the message body (%zu bytes) is not a valid protobuf %s", len,
                 desc->name);
    }
    return NULL;
}

ProtobufCMessage *arena_unpack(arena *a, const ProtobufCMessageDescriptor *desc,
                               const void *data, size_t len, size_t budget, wire_code *code,
                               char *why, size_t why_cap)
{
    return s_unpack(a, desc, data, len, budget, false, NULL, code, why, why_cap);
}

ProtobufCMessage *arena_unpack_strings(arena *a, const ProtobufCMessageDescriptor *desc,
                                       const void *data, size_t len, size_t budget,
                                       wire_code *code, char *why, size_t why_cap)
{
    return s_unpack(a, desc, data, len, budget, true, NULL, code, why, why_cap);
}

Bulletin__Request *arena_request_unpack(arena *a, const void *data, size_t len, size_t budget,
                                        uint64_t *request_id, bool *strings_ok, wire_code *code,
                                        char *why, size_t why_cap)
{
    *request_id = 0;
    if (len == 0) {
        *code = BULLETIN__STATUS_CODE__INVALID_ARGUMENT;
        snprintf(why, why_cap, "empty message: expected a protobuf bulletin.Request");
        return NULL;
    }
    Bulletin__Request *req = (Bulletin__Request *)s_unpack(
        a, &bulletin__request__descriptor, data, len, budget, false, strings_ok, code, why, why_cap);
    if (!req)
        return NULL;
    *request_id = req->request_id;
    if (req->version_major > WIRE_VERSION_MAJOR) {
        *code = BULLETIN__STATUS_CODE__FAILED_PRECONDITION;
        snprintf(why, why_cap, "protocol version %u.%u is not supported (this service speaks %d.%d)",
                 req->version_major, req->version_minor, WIRE_VERSION_MAJOR, WIRE_VERSION_MINOR);
        return NULL;
    }
    if (req->body_case == BULLETIN__REQUEST__BODY__NOT_SET) {
        *code = BULLETIN__STATUS_CODE__INVALID_ARGUMENT;
        snprintf(why, why_cap, "the request has no body (or a message type this service does not know)");
        return NULL;
    }
    return req;
}
