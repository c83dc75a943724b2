/*
 * pbscan: read protobuf wire format field by field without decoding the
 * message. For the hot paths that need one or two fields of a big message
 * (the broker reading deadline_ms/min_seq of an envelope, the store reading
 * id/seq/hash of a stored article) and for checks protobuf-c does not do
 * (UTF-8 of strings). Bounds-checked: never reads outside [p, end). And
 * the two varint writers of the hand-written packers.
 */
#ifndef BULLETIN_PBSCAN_H
#define BULLETIN_PBSCAN_H

#include <stddef.h>
#include <stdint.h>

enum { PB_VARINT = 0, PB_FIXED64 = 1, PB_LEN = 2, PB_FIXED32 = 5 };

typedef struct {
    uint32_t field;       /* field number */
    int wire_type;        /* PB_VARINT, PB_FIXED64, PB_LEN or PB_FIXED32 */
    uint64_t value;       /* PB_VARINT, PB_FIXED64, PB_FIXED32: the value */
    const uint8_t *data;  /* PB_LEN: the bytes (inside the input) */
    size_t len;           /* PB_LEN: their length */
} pbscan_field;

/* Read one varint at *p, advancing *p. 0, or -1 if truncated or over 10 bytes.
 * Inline: the scans of hot paths (a search hit's record, an envelope) read
 * a few varints a field. */
static inline int pbscan_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t r = 0;
    const uint8_t *q = *p;
    for (int shift = 0; shift < 70 && q < end; shift += 7) {
        uint8_t b = *q++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            *p = q;
            return 0;
        }
    }
    return -1;
}

/* The bytes of v as a varint. */
static inline size_t pbscan_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Write v as a varint at p (pbscan_varint_len(v) bytes); returns the end. */
static inline uint8_t *pbscan_varint_put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Read the next field at *p, advancing *p past it. Returns 1 when a field was
 * read, 0 at the end of the input, -1 on malformed input (groups, a wire type
 * that does not exist, a length past the end). */
int pbscan_next(const uint8_t **p, const uint8_t *end, pbscan_field *f);

#endif
