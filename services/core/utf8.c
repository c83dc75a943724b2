/* utf8: see utf8.h. An ASCII fast path, then utf8proc for the rest. */
#include "utf8.h"

#include <stdint.h>
#include <string.h>
#include <utf8proc.h>

bool utf8_valid(const char *s, size_t len, size_t *bad_offset)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        /* ASCII fast path, 8 bytes at a time */
        while (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            /* any high bit set, or any zero byte */
            if ((w & 0x8080808080808080ULL) ||
                ((w - 0x0101010101010101ULL) & ~w & 0x8080808080808080ULL))
                break;
            i += 8;
        }
        if (i >= len)
            break;
        if (p[i] == 0)
            goto bad;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n <= 0)
            goto bad;
        i += (size_t)n;
    }
    return true;
bad:
    if (bad_offset)
        *bad_offset = i;
    return false;
}
