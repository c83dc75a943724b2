/*
 * grow: the one growth policy of the services' dynamic arrays.
 *
 *     if (v->n == v->cap) {
 *         item *p = grow(v->items, &v->cap, sizeof *p, 64);
 *         if (!p)
 *             return ENOMEM;
 *         v->items = p;
 *     }
 */
#ifndef BULLETIN_GROW_H
#define BULLETIN_GROW_H

#include <stdint.h>
#include <stdlib.h>

/* The block of a full array `arr` (*cap elements of `elem` bytes) moved to
 * one twice as big (`first` elements when *cap is 0), as realloc moves it;
 * *cap is the new capacity. NULL when out of memory or when the size would
 * overflow: then `arr` and *cap are untouched. */
static inline void *grow(void *arr, size_t *cap, size_t elem, size_t first)
{
    size_t c = *cap ? *cap * 2 : first;
    if (c < *cap || (elem && c > SIZE_MAX / elem))
        return NULL;
    void *p = realloc(arr, c * elem);
    if (p)
        *cap = c;
    return p;
}

#endif
