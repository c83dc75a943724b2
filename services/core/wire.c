/* wire: see wire.h. */
#include "wire.h"

#include "pbscan.h"
#include "utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    size_t used, limit;
    bool over;
} s_budget;

static void *s_alloc(void *data, size_t size)
{
    s_budget *b = data;
    if (size > b->limit - b->used) {
        b->over = true;
        return NULL;
    }
    b->used += size;
    return malloc(size);
}

static void s_free(void *data, void *p)
{
    (void)data;
    free(p);
}

static bool s_well_formed(const ProtobufCMessageDescriptor *d, const uint8_t *base,
                          const uint8_t *p, const uint8_t *end, int depth, size_t *off)
{
    pbscan_field pf;
    for (;;) {
        const uint8_t *at = p;
        int r = pbscan_next(&p, end, &pf);
        if (r == 0)
            return true;
        if (r < 0) {
            *off = (size_t)(at - base);
            return false;
        }
        if (pf.wire_type != PB_LEN || depth >= 32)
            continue;
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(d, pf.field);
        if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
            !s_well_formed(f->descriptor, base, pf.data, pf.data + pf.len, depth + 1, off))
            return false;
    }
}

size_t wire_malformed_at(const ProtobufCMessageDescriptor *desc, const void *data, size_t len)
{
    size_t off = SIZE_MAX;
    const uint8_t *p = data;
    return s_well_formed(desc, p, p, p + len, 0, &off) ? SIZE_MAX : off;
}

bool wire_accepted(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
                   wire_code *code, char *why, size_t why_cap)
{
    size_t at = wire_malformed_at(desc, data, len);
    if (at == SIZE_MAX)
        return true;
    *code = BULLETIN__STATUS_CODE__INVALID_ARGUMENT;
    snprintf(why, why_cap, "the message body (%zu bytes) is not a valid protobuf %s: malformed "
             "field at byte %zu", len, desc->name, at);
    return false;
}

ProtobufCMessage *wire_unpack(const ProtobufCMessageDescriptor *desc, const void *data,
                              size_t len, size_t budget, wire_code *code, char *why,
                              size_t why_cap)
{
    s_budget b = {0, budget, false};
    ProtobufCAllocator a = {s_alloc, s_free, &b};
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, &a, len, data);
    if (m && !wire_accepted(desc, data, len, code, why, why_cap)) {
        protobuf_c_message_free_unpacked(m, &a);
        return NULL;
    }
    if (m)
        return m;
    if (b.over) {
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

Bulletin__Request *wire_request_unpack(const void *data, size_t len, size_t budget,
                                       uint64_t *request_id, wire_code *code, char *why,
                                       size_t why_cap)
{
    *request_id = 0;
    if (len == 0) {
        *code = BULLETIN__STATUS_CODE__INVALID_ARGUMENT;
        snprintf(why, why_cap, "empty message: expected a protobuf bulletin.Request");
        return NULL;
    }
    Bulletin__Request *req = (Bulletin__Request *)wire_unpack(
        &bulletin__request__descriptor, data, len, budget, code, why, why_cap);
    if (!req)
        return NULL;
    *request_id = req->request_id;
    if (req->version_major > WIRE_VERSION_MAJOR) {
        *code = BULLETIN__STATUS_CODE__FAILED_PRECONDITION;
        snprintf(why, why_cap, "protocol version %u.%u is not supported (this service speaks %d.%d)",
                 req->version_major, req->version_minor, WIRE_VERSION_MAJOR, WIRE_VERSION_MINOR);
        wire_free(req);
        return NULL;
    }
    if (req->body_case == BULLETIN__REQUEST__BODY__NOT_SET) {
        *code = BULLETIN__STATUS_CODE__INVALID_ARGUMENT;
        snprintf(why, why_cap, "the request has no body (or a message type this service does not know)");
        wire_free(req);
        return NULL;
    }
    return req;
}

void wire_free(void *msg)
{
    if (msg)
        protobuf_c_message_free_unpacked((ProtobufCMessage *)msg, NULL);
}

static void s_free_buf(void *data, void *hint)
{
    (void)hint;
    free(data);
}

int wire_pack_zmq(const ProtobufCMessage *m, zmq_msg_t *out)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        zmq_msg_init(out);
        return -1;
    }
    protobuf_c_message_pack(m, buf);
    if (zmq_msg_init_data(out, buf, n, s_free_buf, NULL) != 0) {
        free(buf);
        zmq_msg_init(out);
        return -1;
    }
    return 0;
}

int wire_pack_bytes(const ProtobufCMessage *m, ProtobufCBinaryData *out)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    out->data = malloc(n ? n : 1);
    out->len = 0;
    if (!out->data)
        return -1;
    out->len = protobuf_c_message_pack(m, out->data);
    return 0;
}

int wire_send(void *sock, const zio_route *route, const ProtobufCMessage *m)
{
    zmq_msg_t z;
    if (wire_pack_zmq(m, &z) < 0)
        return -1;
    return zio_send_routed_msg(sock, route, &z);
}

void wire_reply_init(Bulletin__Reply *rep, Bulletin__Status *st, uint64_t request_id)
{
    bulletin__reply__init(rep);
    bulletin__status__init(st);
    rep->version_major = WIRE_VERSION_MAJOR;
    rep->version_minor = WIRE_VERSION_MINOR;
    rep->request_id = request_id;
    rep->status = st;
}

int wire_send_status(void *sock, const zio_route *route, uint64_t request_id, wire_code code,
                     const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    Bulletin__Reply rep;
    Bulletin__Status st;
    wire_reply_init(&rep, &st, request_id);
    st.code = code;
    st.message = msg;
    return wire_send(sock, route, &rep.base);
}

const char *wire_code_name(int code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&bulletin__status_code__descriptor, code);
    return v ? v->name : "UNKNOWN";
}

/* Walk raw protobuf bytes with the descriptor; report each bad string. */
static int s_walk(const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end,
                  char *path, size_t cap, size_t plen, int depth, wire_bad_string_fn fn,
                  void *ud)
{
    unsigned counts[64] = {0}; /* occurrence index per field, for repeated paths */
    int bad = 0;
    if (depth > 32)
        return 0;
    pbscan_field pf;
    while (pbscan_next(&p, end, &pf) > 0) {
        if (pf.wire_type != PB_LEN)
            continue;
        uint32_t num = pf.field;
        const uint8_t *v = pf.data;
        size_t len = pf.len;
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(d, num);
        if (!f || (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE))
            continue;
        unsigned idx = counts[f - d->fields < 64 ? f - d->fields : 63]++;
        int n;
        if (f->label == PROTOBUF_C_LABEL_REPEATED)
            n = snprintf(path + plen, cap - plen, "%s%s[%u]", plen ? "." : "", f->name, idx);
        else
            n = snprintf(path + plen, cap - plen, "%s%s", plen ? "." : "", f->name);
        size_t nlen = plen + (n > 0 ? (size_t)n : 0);
        if (nlen >= cap)
            nlen = cap - 1;
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            bad += s_walk(f->descriptor, v, v + len, path, cap, nlen, depth + 1, fn, ud);
        } else {
            size_t off;
            if (!utf8_valid((const char *)v, (size_t)len, &off)) {
                bad++;
                if (fn)
                    fn(ud, path, off);
            }
        }
        path[plen] = '\0';
    }
    return bad;
}

/* The walk of s_walk without building a path per field (snprintf per field
 * is most of its cost): almost every message is clean, and only then is the
 * walk with paths needed, to name the bad fields. true when every string
 * field is valid UTF-8 without NUL; a malformed field ends the walk, quietly
 * or, with well_formed, as a failure too (the check of s_well_formed in the
 * same walk). */
static bool s_clean(const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end,
                    int depth, bool well_formed)
{
    if (depth > 32)
        return true;
    pbscan_field pf;
    int r;
    while ((r = pbscan_next(&p, end, &pf)) > 0) {
        if (pf.wire_type != PB_LEN)
            continue;
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(d, pf.field);
        if (!f)
            continue;
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            if (!s_clean(f->descriptor, pf.data, pf.data + pf.len, depth + 1, well_formed))
                return false;
        } else if (f->type == PROTOBUF_C_TYPE_STRING) {
            if (!utf8_valid((const char *)pf.data, pf.len, NULL))
                return false;
        }
    }
    return r == 0 || !well_formed;
}

bool wire_strings_ok(const ProtobufCMessageDescriptor *desc, const void *data, size_t len)
{
    const uint8_t *p = data;
    return s_clean(desc, p, p + len, 0, false);
}

bool wire_accepted_clean(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
                         bool *strings_ok, wire_code *code, char *why, size_t why_cap)
{
    const uint8_t *p = data;
    *strings_ok = s_clean(desc, p, p + len, 0, true);
    /* s_clean stops at the first malformed field or bad string: which one */
    return *strings_ok || wire_accepted(desc, data, len, code, why, why_cap);
}

bool wire_accepted_strings(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
                           wire_code *code, char *why, size_t why_cap)
{
    bool clean;
    if (!wire_accepted_clean(desc, data, len, &clean, code, why, why_cap))
        return false;
    /* well-formed: the walk again with paths, to say which string is bad */
    if (clean || wire_strings_why(desc, data, len, why, why_cap) == 0)
        return true; /* the second: not reached, s_clean stops only at a bad string */
    *code = BULLETIN__STATUS_CODE__INVALID_ARGUMENT;
    return false;
}

int wire_check_strings(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
                       wire_bad_string_fn fn, void *ud)
{
    char path[256] = "";
    return s_walk(desc, data, (const uint8_t *)data + len, path, sizeof path, 0, 0, fn, ud);
}

typedef struct {
    char *why;
    size_t cap;
    bool set;
} s_why;

static void s_first_bad(void *ud, const char *path, size_t off)
{
    s_why *w = ud;
    if (w->set || !w->cap)
        return;
    snprintf(w->why, w->cap, "field %s is not valid UTF-8 or contains NUL (byte %zu)", path, off);
    w->set = true;
}

int wire_strings_why(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
                     char *why, size_t cap)
{
    if (wire_strings_ok(desc, data, len))
        return 0;
    s_why w = {why, cap, false};
    return wire_check_strings(desc, data, len, s_first_bad, &w);
}
