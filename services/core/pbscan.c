/* pbscan: see pbscan.h. */
#include "pbscan.h"

#include <string.h>

int pbscan_next(const uint8_t **p, const uint8_t *end, pbscan_field *f)
{
    if (*p >= end)
        return 0;
    uint64_t tag;
    if (pbscan_varint(p, end, &tag) < 0 || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
        return -1;
    f->field = (uint32_t)(tag >> 3);
    f->wire_type = (int)(tag & 7);
    f->data = NULL;
    f->len = 0;
    f->value = 0;
    switch (f->wire_type) {
    case PB_VARINT:
        return pbscan_varint(p, end, &f->value) < 0 ? -1 : 1;
    case PB_FIXED64:
        if (end - *p < 8)
            return -1;
        memcpy(&f->value, *p, 8);
        *p += 8;
        return 1;
    case PB_FIXED32: {
        uint32_t v;
        if (end - *p < 4)
            return -1;
        memcpy(&v, *p, 4);
        f->value = v;
        *p += 4;
        return 1;
    }
    case PB_LEN: {
        uint64_t len;
        if (pbscan_varint(p, end, &len) < 0 || len > (uint64_t)(end - *p))
            return -1;
        f->data = *p;
        f->len = (size_t)len;
        *p += len;
        return 1;
    }
    default:
        return -1;
    }
}
