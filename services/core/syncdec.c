/*
 * syncdec: see syncdec.h. Reply -> internal (read in place) -> StoreReply
 * -> SyncChunk -> Change -> Article, each message read field by field
 * through its protobuf-c descriptor (s_message): the field's type says how
 * to store the value, as protobuf-c's parse_required_member stores it (the
 * low 32 bits of an int32/uint32/enum varint, a bool true when any value
 * bit is set, a string copied with a NUL, bytes copied or NULL when empty).
 * Repeated fields grow by doubling, so the bytes are read once (protobuf-c
 * reads them twice: a scan that counts, then the parse).
 *
 * Why it refuses nothing itself: protobuf-c and the well-formedness walk
 * (wire_accepted) accept some odd bytes (a field twice: the last scalar
 * kept, a message merged; an unknown field, kept and re-encoded by the
 * replica; tags and lengths of 5 bytes, truncated to 32 bits) and refuse
 * others (a field number of 0 or past 2^29 - 1, groups, a wrong wire type);
 * matching each corner here would be a second parser to keep equal. The
 * store never sends them, so they go the generic way, which answers as
 * before.
 *
 * The budget: arena_unpack fails with RESOURCE_EXHAUSTED when protobuf-c's
 * allocations pass WIRE_BUDGET of the bytes. This decoder counts them as
 * protobuf-c makes them (each message, string + NUL, non-empty bytes, each
 * repeated field's array of the exact size, and the ScannedMember slabs
 * protobuf-c allocates for a message of more than 16 fields; each rounded
 * by arena_charge) and hands anything over the budget to the generic path.
 * syncdec_test checks the count against arena_used after arena_unpack.
 */
#include "syncdec.h"

#include "pbscan.h"

#include <string.h>

/* protobuf-c 1.4's unpack scans a message's fields into ScannedMember
 * records (32 bytes): the first 16 on the stack, then slabs of 32, 64, ...
 * records from the allocator (freed at the end, which an arena does not). */
#define S_SCANNED_MEMBER 32
#define S_STACK_MEMBERS 16

typedef struct {
    arena *a;
    size_t need;   /* protobuf-c's allocations so far, as the arena counts them */
    size_t budget; /* arena_unpack's budget for them */
} s_dec;

/* A tag of one or two bytes (field numbers up to 2047); false otherwise. */
static inline bool s_tag(const uint8_t **p, const uint8_t *end, uint32_t *tag)
{
    const uint8_t *q = *p;
    if (q[0] < 0x80) {
        *tag = q[0];
        *p = q + 1;
        return true;
    }
    if (end - q < 2 || q[1] >= 0x80)
        return false;
    *tag = (uint32_t)(q[0] & 0x7f) | (uint32_t)q[1] << 7;
    *p = q + 2;
    return true;
}

static inline bool s_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    if (*p < end && **p < 0x80) {
        *v = *(*p)++;
        return true;
    }
    return pbscan_varint(p, end, v) == 0;
}

/* protobuf-c's bool: true when any of the varint's bytes has a value bit set
 * (also bits above 64, which the varint's value drops). */
static inline bool s_bool(const uint8_t **p, const uint8_t *end, protobuf_c_boolean *b)
{
    const uint8_t *q = *p;
    uint64_t v = 0;
    if (!s_varint(p, end, &v))
        return false;
    int any = 0;
    for (; q < *p; q++)
        any |= *q & 0x7f;
    *b = any != 0;
    return true;
}

/* A length of up to four bytes that fits in what is left; *data = its bytes. */
static inline bool s_len(const uint8_t **p, const uint8_t *end, const uint8_t **data, size_t *n)
{
    const uint8_t *q = *p;
    size_t v = 0;
    for (int i = 0; i < 4 && q < end; i++) {
        uint8_t b = *q++;
        v |= (size_t)(b & 0x7f) << (7 * i);
        if (b < 0x80) {
            if (v > (size_t)(end - q))
                return false;
            *data = q;
            *n = v;
            *p = q + v;
            return true;
        }
    }
    return false;
}

static inline bool s_charge(s_dec *d, size_t size)
{
    size_t c = arena_charge(size);
    if (c > d->budget - d->need)
        return false;
    d->need += c;
    return true;
}

static inline void *s_alloc(s_dec *d, size_t size)
{
    return s_charge(d, size) ? arena_alloc(d->a, size) : NULL;
}

/* A string field as protobuf-c stores it: a copy with a NUL. */
static bool s_str(s_dec *d, const uint8_t **p, const uint8_t *end, char **out)
{
    const uint8_t *v;
    size_t n;
    if (!s_len(p, end, &v, &n))
        return false;
    char *s = s_alloc(d, n + 1);
    if (!s)
        return false;
    memcpy(s, v, n);
    s[n] = '\0';
    *out = s;
    return true;
}

/* A bytes field as protobuf-c stores it: a copy, or NULL when empty. With
 * in_place, the bytes in the input instead, counted as the copy. */
static bool s_bytes(s_dec *d, const uint8_t **p, const uint8_t *end, ProtobufCBinaryData *out,
                    bool in_place)
{
    const uint8_t *v;
    size_t n;
    if (!s_len(p, end, &v, &n))
        return false;
    out->len = n;
    out->data = NULL;
    if (n == 0)
        return true;
    if (in_place) {
        out->data = (uint8_t *)v;
        return s_charge(d, n);
    }
    out->data = s_alloc(d, n);
    if (!out->data)
        return false;
    memcpy(out->data, v, n);
    return true;
}

/* The ScannedMember slabs protobuf-c allocates for a message of n fields. */
static bool s_slabs(s_dec *d, size_t n)
{
    size_t cap = S_STACK_MEMBERS, slab = S_STACK_MEMBERS;
    while (n > cap) {
        slab *= 2;
        cap += slab;
        if (!s_charge(d, S_SCANNED_MEMBER * slab))
            return false;
    }
    return true;
}

/* The bytes of one element of a repeated field of type t in protobuf-c. */
static size_t s_elt(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        return 4;
    }
}

/* Room for element n of a repeated field's array: it doubles from 8 (one
 * pass over the bytes; protobuf-c counts a field's elements first and
 * allocates the exact array, which is what the budget counts). */
static bool s_room(arena *a, char **array, size_t n, size_t elt)
{
    if (n && (n < 8 || (n & (n - 1))))
        return true;
    char *grown = arena_alloc(a, (n ? 2 * n : 8) * elt);
    if (!grown)
        return false;
    if (n)
        memcpy(grown, *array, n * elt);
    *array = grown;
    return true;
}

/* A message's field number n: the descriptor's fields are sorted by number,
 * so mostly the field at n - 1. */
static const ProtobufCFieldDescriptor *s_field(const ProtobufCMessageDescriptor *desc, uint32_t n)
{
    if (n - 1 < desc->n_fields && desc->fields[n - 1].id == n)
        return &desc->fields[n - 1];
    return protobuf_c_message_descriptor_get_field(desc, n);
}

static ProtobufCMessage *s_message(s_dec *d, const ProtobufCMessageDescriptor *desc,
                                   const uint8_t *p, const uint8_t *end, bool in_place, int depth);

/* One value of field f (wire type wt) into member, as protobuf-c's
 * parse_required_member stores it; false for a wire type or a type it does
 * not cover. */
static bool s_value(s_dec *d, const ProtobufCFieldDescriptor *f, unsigned wt, const uint8_t **p,
                    const uint8_t *end, void *member, bool in_place, int depth)
{
    uint64_t v;
    const uint8_t *sub;
    size_t n;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: /* the low 32 bits */
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_ENUM: {
        if (wt != PB_VARINT || !s_varint(p, end, &v))
            return false;
        uint32_t x = (uint32_t)v;
        memcpy(member, &x, sizeof x);
        return true;
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
        if (wt != PB_VARINT || !s_varint(p, end, &v))
            return false;
        memcpy(member, &v, sizeof v);
        return true;
    case PROTOBUF_C_TYPE_BOOL:
        return wt == PB_VARINT && s_bool(p, end, member);
    case PROTOBUF_C_TYPE_STRING:
        return wt == PB_LEN && s_str(d, p, end, member);
    case PROTOBUF_C_TYPE_BYTES:
        return wt == PB_LEN && s_bytes(d, p, end, member, in_place);
    case PROTOBUF_C_TYPE_MESSAGE: {
        if (wt != PB_LEN || !s_len(p, end, &sub, &n))
            return false;
        ProtobufCMessage *m = s_message(d, f->descriptor, sub, sub + n, false, depth + 1);
        memcpy(member, &m, sizeof m);
        return m != NULL;
    }
    default: /* sint, fixed, float, double: not in the Sync messages */
        return false;
    }
}

/* A message of type desc at [p, end), field by field through its
 * descriptor; NULL for anything not covered (see the top of the file). With
 * in_place, its bytes fields point into the input. */
static ProtobufCMessage *s_message(s_dec *d, const ProtobufCMessageDescriptor *desc,
                                   const uint8_t *p, const uint8_t *end, bool in_place, int depth)
{
    if (depth > 32 || desc->n_fields > 64)
        return NULL; /* deeper than the walk goes; more fields than the masks hold */
    ProtobufCMessage *m = s_alloc(d, desc->sizeof_message);
    if (!m)
        return NULL;
    protobuf_c_message_init(desc, m);
    uint64_t seen = 0, repeated = 0;
    size_t nfields = 0;
    while (p < end) {
        uint32_t tag;
        if (!s_tag(&p, end, &tag))
            return NULL;
        const ProtobufCFieldDescriptor *f = s_field(desc, tag >> 3);
        if (!f)
            return NULL; /* unknown: protobuf-c keeps it (and the replica's encoder uses it) */
        uint64_t bit = (uint64_t)1 << (f - desc->fields);
        char *member = (char *)m + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t *n = (size_t *)((char *)m + f->quantifier_offset), elt = s_elt(f->type);
            if (!s_room(d->a, (char **)member, *n, elt))
                return NULL;
            member = *(char **)member + (*n)++ * elt;
            repeated |= bit;
        } else if (f->label != PROTOBUF_C_LABEL_NONE || (seen & bit)) {
            return NULL; /* proto2; a field twice (protobuf-c keeps the last, merges a message) */
        } else {
            seen |= bit;
            if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
                uint32_t *c = (uint32_t *)((char *)m + f->quantifier_offset);
                if (*c)
                    return NULL; /* a second member of the oneof: protobuf-c keeps the last */
                *c = f->id;
            }
        }
        if (!s_value(d, f, tag & 7, &p, end, member, in_place, depth))
            return NULL;
        nfields++;
    }
    if (!s_slabs(d, nfields))
        return NULL;
    for (unsigned i = 0; i < 64 && repeated >> i; i++) /* protobuf-c's arrays, exact size */
        if (repeated >> i & 1) {
            const ProtobufCFieldDescriptor *f = &desc->fields[i];
            size_t n;
            memcpy(&n, (char *)m + f->quantifier_offset, sizeof n);
            if (!s_charge(d, n * s_elt(f->type)))
                return NULL;
        }
    return m;
}

bool syncdec_fast(arena *a, const void *data, size_t len, Bulletin__Reply **rep,
                  Bulletin__Internal__StoreReply **sr, size_t *need)
{
    const uint8_t *p = data;
    s_dec d = {a, 0, WIRE_BUDGET(len)};
    *need = 0;
    Bulletin__Reply *r =
        len ? (Bulletin__Reply *)s_message(&d, &bulletin__reply__descriptor, p, p + len, true, 0)
            : NULL;
    if (!r || r->body_case != BULLETIN__REPLY__BODY_INTERNAL || r->internal.len == 0)
        return false;
    s_dec ds = {a, 0, WIRE_BUDGET(r->internal.len)};
    Bulletin__Internal__StoreReply *s = (Bulletin__Internal__StoreReply *)s_message(
        &ds, &bulletin__internal__store_reply__descriptor, r->internal.data,
        r->internal.data + r->internal.len, false, 0);
    *need = ds.need;
    if (!s || s->body_case != BULLETIN__INTERNAL__STORE_REPLY__BODY_SYNC)
        return false;
    *rep = r;
    *sr = s;
    return true;
}

void syncdec_store_reply(arena *a, const void *data, size_t len, Bulletin__Reply **rep,
                         Bulletin__Internal__StoreReply **sr, char *why, size_t why_cap)
{
    size_t need;
    if (syncdec_fast(a, data, len, rep, sr, &need))
        return;
    /* the generic path: protobuf-c, then the well-formedness walk */
    wire_code code;
    *sr = NULL;
    *rep = (Bulletin__Reply *)arena_unpack(a, &bulletin__reply__descriptor, data, len,
                                           WIRE_BUDGET(len), &code, why, why_cap);
    if (*rep && (*rep)->body_case == BULLETIN__REPLY__BODY_INTERNAL)
        *sr = (Bulletin__Internal__StoreReply *)arena_unpack(
            a, &bulletin__internal__store_reply__descriptor, (*rep)->internal.data,
            (*rep)->internal.len, WIRE_BUDGET((*rep)->internal.len), &code, why, why_cap);
}
