/*
 * grow: the one growth policy of the services' dynamic arrays and buffers.
 *
 *     if (v->n == v->cap) {                          // one more element
 *         item *p = grow(v->items, &v->cap, sizeof *p, 64);
 *         if (!p)
 *             return ENOMEM;
 *         v->items = p;
 *     }
 *
 *     if (b->len + more > b->cap) {                  // room for `more` bytes
 *         uint8_t *p = grow_to(b->data, &b->cap, 1, 4096, b->len + more);
 *         ...
 */
#ifndef BULLETIN_GROW_H
#define BULLETIN_GROW_H

#include <stdint.h>
#include <stdlib.h>

/* The block `arr` (*cap elements of `elem` bytes) moved to one that holds at
 * least `need` elements, as realloc moves it: *cap doubled (from `first`
 * when 0) as often as it takes; *cap is the new capacity. `arr` itself when
 * it holds `need` already. NULL when out of memory or when the size would
 * overflow: then `arr` and *cap are untouched. */
static inline void *grow_to(void *arr, size_t *cap, size_t elem, size_t first, size_t need)
{
    size_t c = *cap ? *cap : first ? first : 1;
    while (c < need) {
        if (c > SIZE_MAX / 2)
            return NULL;
        c *= 2;
    }
    if (c == *cap)
        return arr;
    if (elem && c > SIZE_MAX / elem)
        return NULL;
    void *p = realloc(arr, c * elem);
    if (p)
        *cap = c;
    return p;
}

/* grow_to for one more element of a full array: twice as big (`first`
 * elements when *cap is 0). */
static inline void *grow(void *arr, size_t *cap, size_t elem, size_t first)
{
    return *cap == SIZE_MAX ? NULL : grow_to(arr, cap, elem, first, *cap + 1);
}

#endif
