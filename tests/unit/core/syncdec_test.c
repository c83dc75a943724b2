/* core/syncdec: the one-pass decoder of the store's Sync replies against the
 * generic path it replaces (arena_unpack of the Reply, then of its internal
 * StoreReply, each with its budget and well-formedness walk). Random chunks
 * encoded field by field (varint boundaries, empty and absent fields, many
 * tags, fields in any order, non-minimal varints), then the same with one
 * mutation somewhere (an unknown field, a duplicate, a wrong wire type, a
 * group, an overlong varint, a field number of 0 or 2^29, bytes flipped,
 * cut or added). Both paths must accept and refuse the same bytes, with the
 * same sentence, and decode the same values; the decoder must take every
 * clean chunk, and count protobuf-c's allocations exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "syncdec.h"
#include "test_rand.h"

/* --- an encoder with control over every byte ---------------------------- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} s_buf;

static void s_put(s_buf *b, const void *d, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    if (n)
        memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void s_byte(s_buf *b, uint8_t c)
{
    s_put(b, &c, 1);
}

/* v as a varint of at least `min` bytes (non-minimal when min is more). */
static void s_varint_n(s_buf *b, uint64_t v, int min)
{
    int i = 1;
    while (v >= 0x80 || i < min) {
        s_byte(b, (uint8_t)(v | 0x80));
        v >>= 7;
        i++;
    }
    s_byte(b, (uint8_t)v);
}

static unsigned g_seed;
static int g_mutate; /* per mille: chance of a mutation at each field */
static int g_mutated;

static uint64_t s_r64(void)
{
    return (uint64_t)test_rand(&g_seed) << 40 ^ (uint64_t)test_rand(&g_seed) << 20 ^
           test_rand(&g_seed);
}

static unsigned s_rn(unsigned n)
{
    return test_rand(&g_seed) % n;
}

/* A varint's byte count: mostly minimal, sometimes padded. */
static int s_pad(void)
{
    return s_rn(50) == 0 ? 1 + (int)s_rn(10) : 1;
}

/* Values at the varint boundaries, and random ones. */
static uint64_t s_value(void)
{
    static const uint64_t edge[] = {0,
                                    1,
                                    127,
                                    128,
                                    16383,
                                    16384,
                                    (1u << 21) - 1,
                                    1u << 21,
                                    (1u << 28) - 1,
                                    1u << 28,
                                    0xffffffffu,
                                    1ull << 32,
                                    1ull << 35,
                                    1ull << 42,
                                    1ull << 49,
                                    1ull << 56,
                                    (1ull << 63) - 1,
                                    1ull << 63,
                                    UINT64_MAX,
                                    (uint64_t)-1000,
                                    (uint64_t)-1};
    if (s_rn(3) == 0)
        return edge[s_rn(sizeof edge / sizeof edge[0])];
    return s_r64() >> s_rn(64);
}

static void s_tag(s_buf *b, uint32_t field, int wt)
{
    s_varint_n(b, (uint64_t)field << 3 | (unsigned)wt, s_rn(30) == 0 ? 2 : 1);
}

/* One of the mutations, written instead of or beside a field. */
static void s_mutation(s_buf *b)
{
    g_mutated++;
    static const uint32_t nums[] = {0, 17, 99, 101, 2047, 2048, 19000, (1u << 29) - 1, 1u << 29};
    uint32_t f = nums[s_rn(sizeof nums / sizeof nums[0])];
    uint64_t t;
    switch (s_rn(8)) {
    case 0: /* an unknown or impossible field number, as a varint */
        s_varint_n(b, (uint64_t)f << 3, 1);
        s_varint_n(b, s_value(), 1);
        break;
    case 1: /* ... or length-delimited */
        s_varint_n(b, (uint64_t)f << 3 | 2, 1);
        s_varint_n(b, 3, 1);
        s_put(b, "abc", 3);
        break;
    case 2: /* a group (start or end) or a wire type that does not exist */
        s_byte(b, (uint8_t)(1 << 3 | (3 + s_rn(5))));
        break;
    case 3: /* an unterminated or 11-byte varint */
        s_byte(b, 1 << 3);
        for (unsigned i = 0, n = 9 + s_rn(3); i < n; i++)
            s_byte(b, 0x80 | (uint8_t)s_rn(128));
        if (s_rn(2))
            s_byte(b, 1);
        break;
    case 4: /* a 10-byte varint with bits above 64 */
        s_byte(b, 1 << 3);
        for (int i = 0; i < 9; i++)
            s_byte(b, 0x80);
        s_byte(b, (uint8_t)(2 + s_rn(126)));
        break;
    case 5: /* a tag of 3 to 6 bytes */
        t = (uint64_t)(1 + s_rn(20)) << 3 | (s_rn(2) ? 2 : 0);
        s_varint_n(b, t, 3 + (int)s_rn(4));
        s_byte(b, 0);
        break;
    case 6: /* a length of 5 bytes, or one past the end */
        s_byte(b, 2 << 3 | 2);
        s_varint_n(b, s_rn(2) ? 0 : 1000000, 5);
        break;
    default: /* fixed32 / fixed64 on a field number that has a varint */
        s_byte(b, (uint8_t)(1 << 3 | (s_rn(2) ? 1 : 5)));
        s_put(b, "\1\2\3\4\5\6\7\x08", s_rn(9));
        break;
    }
}

static bool s_maybe_mutate(s_buf *b)
{
    if (g_mutate && (int)s_rn(1000) < g_mutate) {
        s_mutation(b);
        return true;
    }
    return false;
}

static void s_fvarint(s_buf *b, uint32_t field, uint64_t v)
{
    s_tag(b, field, 0);
    s_varint_n(b, v, s_pad());
}

static void s_flen(s_buf *b, uint32_t field, const void *d, size_t n)
{
    s_tag(b, field, 2);
    s_varint_n(b, n, s_rn(40) == 0 ? 2 + (int)s_rn(3) : 1);
    s_put(b, d, n);
}

/* A random string without NUL: empty, at a length boundary, or short. */
static size_t s_text(char *out, size_t cap)
{
    static const size_t edge[] = {0, 1, 127, 128, 129, 16383, 16384};
    size_t n = s_rn(4) == 0 ? edge[s_rn(sizeof edge / sizeof edge[0])] : s_rn(60);
    if (n > cap)
        n = cap;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)(1 + s_rn(255));
    return n;
}

/* The fields of a message in a random order, each present or not. */
typedef void (*s_field_fn)(s_buf *b, int which);

static void s_fields(s_buf *b, int n, s_field_fn fn)
{
    int order[32];
    for (int i = 0; i < n; i++)
        order[i] = i;
    if (s_rn(4) == 0) /* the store writes them in order; any order is valid */
        for (int i = n - 1; i > 0; i--) {
            int j = (int)s_rn((unsigned)i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
    for (int i = 0; i < n; i++) {
        s_maybe_mutate(b);
        if (s_rn(5) != 0)
            fn(b, order[i]);
    }
    s_maybe_mutate(b);
}

static char g_text[20000];

static void s_article_field(s_buf *b, int which)
{
    static const uint32_t strs[] = {2, 3, 4, 5, 6, 8, 9, 15, 16};
    if (which < 9) {
        size_t n = s_text(g_text, sizeof g_text);
        s_flen(b, strs[which], g_text, n);
    } else if (which == 9) { /* tags: none, a few, or many */
        unsigned n = s_rn(6) == 0 ? 20 + s_rn(80) : s_rn(5);
        for (unsigned i = 0; i < n; i++) {
            size_t len = s_text(g_text, 40);
            s_flen(b, 7, g_text, len);
        }
    } else if (which < 15) {
        static const uint32_t ints[] = {1, 10, 11, 12, 13};
        s_fvarint(b, ints[which - 10], s_value());
    } else {
        uint8_t hash[16];
        size_t n = s_rn(3) == 0 ? 0 : 16;
        for (size_t i = 0; i < n; i++)
            hash[i] = (uint8_t)s_rn(256);
        s_flen(b, 14, hash, n);
    }
}

static void s_sub(s_buf *b, uint32_t field, const s_buf *sub)
{
    s_flen(b, field, sub->p, sub->len);
}

static void s_change_field(s_buf *b, int which)
{
    switch (which) {
    case 0:
        s_fvarint(b, 1, s_value());
        break;
    case 1:
        s_fvarint(b, 2, s_rn(4) == 0 ? s_value() : s_rn(2));
        break;
    case 2:
        s_fvarint(b, 3, s_value());
        break;
    case 3: {
        size_t n = s_text(g_text, 200);
        s_flen(b, 4, g_text, n);
        break;
    }
    default: {
        s_buf a = {0};
        s_fields(&a, 16, s_article_field);
        s_sub(b, 5, &a);
        free(a.p);
    }
    }
}

static unsigned g_changes; /* the changes of the next chunk */

static void s_chunk_field(s_buf *b, int which)
{
    switch (which) {
    case 0:
        for (unsigned i = 0; i < g_changes; i++) {
            s_buf c = {0};
            s_fields(&c, 5, s_change_field);
            s_sub(b, 1, &c);
            free(c.p);
            s_maybe_mutate(b);
        }
        break;
    case 1:
        s_fvarint(b, 2, s_value());
        break;
    case 2:
        s_fvarint(b, 3, s_rn(3) == 0 ? s_value() : s_rn(2));
        break;
    default: {
        uint8_t uuid[16];
        size_t n = s_rn(4) == 0 ? s_rn(3) : 16;
        for (size_t i = 0; i < n; i++)
            uuid[i] = (uint8_t)s_rn(256);
        s_flen(b, 4, uuid, n);
    }
    }
}

static void s_status_field(s_buf *b, int which)
{
    if (which == 0) {
        s_fvarint(b, 1, s_rn(4) == 0 ? s_value() : s_rn(17));
    } else {
        size_t n = s_text(g_text, 100);
        s_flen(b, 2, g_text, n);
    }
}

static s_buf g_store_reply;

static void s_reply_field(s_buf *b, int which)
{
    static const uint32_t ints[] = {1, 2, 3, 6};
    if (which < 4) {
        s_fvarint(b, ints[which], s_value());
    } else if (which == 4) {
        s_buf st = {0};
        s_fields(&st, 2, s_status_field);
        s_sub(b, 4, &st);
        free(st.p);
    } else if (which == 5) {
        size_t n = s_text(g_text, 100);
        s_flen(b, 5, g_text, n);
    } else {
        s_sub(b, 100, &g_store_reply);
    }
}

/* A random Reply carrying a StoreReply{sync: SyncChunk} of `changes` changes. */
static s_buf s_random_reply(unsigned changes)
{
    g_changes = changes;
    s_buf chunk = {0}, sr = {0}, rep = {0};
    s_fields(&chunk, 4, s_chunk_field);
    s_maybe_mutate(&sr);
    s_sub(&sr, 2, &chunk);
    s_maybe_mutate(&sr);
    g_store_reply = sr;
    s_fields(&rep, 7, s_reply_field);
    free(chunk.p);
    free(sr.p);
    g_store_reply = (s_buf){0};
    return rep;
}

/* --- the two paths, compared --------------------------------------------- */

/* The generic path as the worker ran it before syncdec. */
static void s_generic(arena *a, const void *data, size_t len, Bulletin__Reply **rep,
                      Bulletin__Internal__StoreReply **sr, size_t *sr_used, char *why, size_t cap)
{
    wire_code code;
    *sr = NULL;
    *rep = (Bulletin__Reply *)arena_unpack(a, &bulletin__reply__descriptor, data, len,
                                           WIRE_BUDGET(len), &code, why, cap);
    if (*rep && (*rep)->body_case == BULLETIN__REPLY__BODY_INTERNAL) {
        size_t used = arena_used(a);
        *sr = (Bulletin__Internal__StoreReply *)arena_unpack(
            a, &bulletin__internal__store_reply__descriptor, (*rep)->internal.data,
            (*rep)->internal.len, WIRE_BUDGET((*rep)->internal.len), &code, why, cap);
        *sr_used = arena_used(a) - used;
    }
}

static void s_expect_equal(const ProtobufCMessage *x, const ProtobufCMessage *y);

static void s_expect_value(const ProtobufCFieldDescriptor *f, const void *x, const void *y)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)x, *t = *(char *const *)y;
        assert_int_equal(s == protobuf_c_empty_string, t == protobuf_c_empty_string);
        assert_string_equal(s, t);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *s = x, *t = y;
        assert_int_equal(s->len, t->len);
        assert_int_equal(s->data == NULL, t->data == NULL);
        if (s->len)
            assert_memory_equal(s->data, t->data, s->len);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *s = *(ProtobufCMessage *const *)x;
        const ProtobufCMessage *t = *(ProtobufCMessage *const *)y;
        assert_int_equal(s == NULL, t == NULL);
        if (s)
            s_expect_equal(s, t);
        break;
    }
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_INT64:
        assert_memory_equal(x, y, 8);
        break;
    default: /* uint32, int32, enum, bool: 4 bytes in protobuf-c */
        assert_memory_equal(x, y, 4);
        break;
    }
}

/* Field by field through the descriptors: values, which strings are absent
 * (protobuf_c_empty_string), which bytes are NULL, the oneof cases. */
static void s_expect_equal(const ProtobufCMessage *x, const ProtobufCMessage *y)
{
    const ProtobufCMessageDescriptor *d = x->descriptor;
    assert_ptr_equal(d, y->descriptor);
    assert_int_equal(x->n_unknown_fields, y->n_unknown_fields);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *xm = (const char *)x + f->offset, *ym = (const char *)y + f->offset;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t xc, yc;
            memcpy(&xc, (const char *)x + f->quantifier_offset, 4);
            memcpy(&yc, (const char *)y + f->quantifier_offset, 4);
            assert_int_equal(xc, yc);
            if (xc != f->id)
                continue;
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t xn, yn;
            memcpy(&xn, (const char *)x + f->quantifier_offset, sizeof xn);
            memcpy(&yn, (const char *)y + f->quantifier_offset, sizeof yn);
            assert_int_equal(xn, yn);
            size_t el = f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE
                            ? sizeof(void *)
                            : 0;
            assert_int_not_equal(el, 0); /* the Sync messages repeat only these */
            const char *xa = *(char *const *)xm, *ya = *(char *const *)ym;
            for (size_t k = 0; k < xn; k++)
                s_expect_value(f, xa + k * el, ya + k * el);
        } else {
            s_expect_value(f, xm, ym);
        }
    }
}

typedef struct {
    unsigned fast, accepted, refused;
} s_tally;

/* Decode data both ways and compare; returns whether the fast path took it. */
static bool s_compare(const uint8_t *data, size_t len, s_tally *t)
{
    arena *ga = arena_new(0), *fa = arena_new(0), *xa = arena_new(0);
    Bulletin__Reply *grep, *frep, *xrep;
    Bulletin__Internal__StoreReply *gsr, *fsr, *xsr;
    char gwhy[256] = "", fwhy[256] = "";
    size_t used = 0, need = 0;
    s_generic(ga, data, len, &grep, &gsr, &used, gwhy, sizeof gwhy);
    syncdec_store_reply(fa, data, len, &frep, &fsr, fwhy, sizeof fwhy);
    /* the same answer: decoded, or refused with the same sentence */
    assert_int_equal(grep == NULL, frep == NULL);
    assert_int_equal(gsr == NULL, fsr == NULL);
    assert_string_equal(gwhy, fwhy);
    if (grep)
        s_expect_equal(&grep->base, &frep->base);
    if (gsr)
        s_expect_equal(&gsr->base, &fsr->base);
    bool fast = syncdec_fast(xa, data, len, &xrep, &xsr, &need);
    if (fast) {
        /* it took only what the generic path decodes to a Sync chunk */
        assert_non_null(gsr);
        assert_int_equal(gsr->body_case, BULLETIN__INTERNAL__STORE_REPLY__BODY_SYNC);
        s_expect_equal(&grep->base, &xrep->base);
        s_expect_equal(&gsr->base, &xsr->base);
        assert_int_equal(need, used); /* protobuf-c's allocations, counted exactly */
        /* the internal bytes are read in place */
        assert_true(xrep->internal.data > data &&
                    xrep->internal.data + xrep->internal.len <= data + len);
        t->fast++;
    }
    if (gsr)
        t->accepted++;
    else
        t->refused++;
    arena_destroy(&ga);
    arena_destroy(&fa);
    arena_destroy(&xa);
    return fast;
}

static void test_random_valid(void **state)
{
    (void)state;
    g_seed = 20261130;
    g_mutate = 0;
    s_tally t = {0};
    for (int i = 0; i < 3000; i++) {
        s_buf r = s_random_reply(s_rn(8) == 0 ? 50 + s_rn(200) : s_rn(6));
        bool fast = s_compare(r.p, r.len, &t);
        /* what the store sends: every field known, once, in range */
        arena *a = arena_new(0);
        Bulletin__Reply *rep;
        Bulletin__Internal__StoreReply *sr;
        char why[256];
        syncdec_store_reply(a, r.p, r.len, &rep, &sr, why, sizeof why);
        if (sr && sr->body_case == BULLETIN__INTERNAL__STORE_REPLY__BODY_SYNC &&
            rep->internal.len > 0)
            assert_true(fast);
        arena_destroy(&a);
        free(r.p);
    }
    print_message("valid: %u fast of %u accepted, %u refused\n", t.fast, t.accepted, t.refused);
    assert_true(t.fast > 2000);
}

static void test_random_mutated(void **state)
{
    (void)state;
    g_seed = 7;
    s_tally t = {0};
    unsigned mutated_fast = 0;
    for (int i = 0; i < 6000; i++) {
        g_mutate = 1 + (int)s_rn(60);
        g_mutated = 0;
        s_buf r = s_random_reply(s_rn(4));
        if (r.len && s_rn(4) == 0) { /* bytes flipped, cut or added */
            switch (s_rn(3)) {
            case 0:
                for (unsigned k = 1 + s_rn(3); k > 0; k--)
                    r.p[s_rn((unsigned)r.len)] = (uint8_t)s_rn(256);
                break;
            case 1:
                r.len = s_rn((unsigned)r.len);
                break;
            default:
                for (unsigned k = 1 + s_rn(8); k > 0; k--)
                    s_byte(&r, (uint8_t)s_rn(256));
            }
            g_mutated++;
        }
        bool fast = s_compare(r.p, r.len, &t);
        mutated_fast += fast && g_mutated;
        free(r.p);
    }
    g_mutate = 0;
    print_message("mutated: %u fast (%u of them mutated), %u accepted, %u refused\n", t.fast,
                  mutated_fast, t.accepted, t.refused);
    assert_true(t.refused > 1000); /* the mutations reached the refusals */
    assert_true(t.accepted > 500);
}

/* A chunk of many empty changes decodes to ~30x its size: past the budget,
 * RESOURCE_EXHAUSTED from both paths, and decoded by both just under it. */
static void test_budget(void **state)
{
    (void)state;
    s_tally t = {0};
    size_t counts[] = {1000, 140000, 150000, 160000, 200000};
    unsigned refused = 0;
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        s_buf chunk = {0}, sr = {0}, rep = {0};
        for (size_t i = 0; i < counts[c]; i++)
            s_put(&chunk, "\x0a\x00", 2);
        s_flen(&sr, 2, chunk.p, chunk.len);
        s_fvarint(&rep, 3, 42);
        s_flen(&rep, 100, sr.p, sr.len);
        unsigned before = t.refused;
        s_compare(rep.p, rep.len, &t);
        refused += t.refused > before;
        free(chunk.p);
        free(sr.p);
        free(rep.p);
    }
    assert_int_equal(t.accepted + t.refused, 5);
    assert_true(refused >= 1 && refused < 5);
    /* the sentence of a refusal over the budget */
    s_buf chunk = {0}, sr = {0}, rep = {0};
    for (size_t i = 0; i < 300000; i++)
        s_put(&chunk, "\x0a\x00", 2);
    s_flen(&sr, 2, chunk.p, chunk.len);
    s_flen(&rep, 100, sr.p, sr.len);
    arena *a = arena_new(0);
    Bulletin__Reply *r;
    Bulletin__Internal__StoreReply *s;
    char why[256] = "";
    syncdec_store_reply(a, rep.p, rep.len, &r, &s, why, sizeof why);
    assert_non_null(r);
    assert_null(s);
    assert_non_null(strstr(why, "needs more memory to decode than allowed"));
    arena_destroy(&a);
    free(chunk.p);
    free(sr.p);
    free(rep.p);
}

/* What protobuf-c packs (the store's own encoder) is always taken. */
static void test_packed_by_protobuf_c(void **state)
{
    (void)state;
    g_seed = 99;
    Bulletin__Article art[3];
    Bulletin__Internal__Change ch[3], *chp[3];
    char *tags[] = {"a", "", "ccc"};
    for (int i = 0; i < 3; i++) {
        bulletin__article__init(&art[i]);
        art[i].id = (uint64_t)i << 40;
        art[i].title = "title";
        art[i].body = i == 1 ? "" : "body text";
        art[i].published_at = -5;
        art[i].n_tags = (size_t)i;
        art[i].tags = tags;
        art[i].content_hash.data = (uint8_t *)"0123456789abcdef";
        art[i].content_hash.len = 16;
        bulletin__internal__change__init(&ch[i]);
        ch[i].seq = 1000 + (uint64_t)i;
        ch[i].id = art[i].id;
        ch[i].op =
            i == 2 ? BULLETIN__INTERNAL__CHANGE_OP__DELETE : BULLETIN__INTERNAL__CHANGE_OP__PUT;
        ch[i].article = i == 2 ? NULL : &art[i];
        chp[i] = &ch[i];
    }
    Bulletin__Internal__SyncChunk c = BULLETIN__INTERNAL__SYNC_CHUNK__INIT;
    c.n_changes = 3;
    c.changes = chp;
    c.head_seq = 1002;
    c.done = 1;
    c.store_uuid.data = (uint8_t *)"uuid-uuid-uuid-u";
    c.store_uuid.len = 16;
    Bulletin__Internal__StoreReply s = BULLETIN__INTERNAL__STORE_REPLY__INIT;
    s.body_case = BULLETIN__INTERNAL__STORE_REPLY__BODY_SYNC;
    s.sync = &c;
    ProtobufCBinaryData in;
    assert_int_equal(wire_pack_bytes(&s.base, &in), 0);
    Bulletin__Reply r;
    Bulletin__Status st;
    wire_reply_init(&r, &st, 77);
    r.served_by = "store";
    r.applied_seq = 1002;
    r.body_case = BULLETIN__REPLY__BODY_INTERNAL;
    r.internal = in;
    ProtobufCBinaryData out;
    assert_int_equal(wire_pack_bytes(&r.base, &out), 0);
    s_tally t = {0};
    assert_true(s_compare(out.data, out.len, &t));
    arena *a = arena_new(0);
    Bulletin__Reply *rep;
    Bulletin__Internal__StoreReply *sr;
    size_t need;
    assert_true(syncdec_fast(a, out.data, out.len, &rep, &sr, &need));
    assert_int_equal(rep->request_id, 77);
    assert_int_equal(sr->sync->n_changes, 3);
    assert_string_equal(sr->sync->changes[1]->article->tags[0], "a");
    assert_ptr_equal(sr->sync->changes[1]->article->body, protobuf_c_empty_string);
    assert_int_equal(sr->sync->changes[0]->article->published_at, -5);
    assert_null(sr->sync->changes[2]->article);
    assert_int_equal(sr->sync->done, 1);
    /* not a Sync chunk: the generic path answers */
    Bulletin__Reply e;
    Bulletin__Status est;
    wire_reply_init(&e, &est, 5);
    est.code = BULLETIN__STATUS_CODE__UNAVAILABLE;
    est.message = "busy";
    ProtobufCBinaryData eb;
    assert_int_equal(wire_pack_bytes(&e.base, &eb), 0);
    assert_false(syncdec_fast(a, eb.data, eb.len, &rep, &sr, &need));
    assert_false(s_compare(eb.data, eb.len, &t));
    arena_destroy(&a);
    free(in.data);
    free(out.data);
    free(eb.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_packed_by_protobuf_c),
        cmocka_unit_test(test_random_valid),
        cmocka_unit_test(test_random_mutated),
        cmocka_unit_test(test_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
