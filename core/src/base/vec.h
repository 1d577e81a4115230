/*
 * vec.h - the one growable array: a pointer, a count and a capacity kept
 * by the owner, grown here by doubling.
 *
 *     if (VEC_ROOM(db->imm, db->n_imm, db->cap_imm, 8) != 0)
 *         return status_err(STOAT_ENOMEM, "...");
 *     db->imm[db->n_imm++] = m;
 *
 * VEC_ROOM makes room for one more element: when n == cap it reallocates
 * arr to twice cap elements (`first` when cap is 0). 0, or STOAT_ENOMEM
 * with arr and cap unchanged. cap must be a size_t.
 */
#ifndef STOAT_VEC_H
#define STOAT_VEC_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stoat.h"

/* arrp points at the owner's pointer (of any object pointer type). */
static inline int vec_grow(void *arrp, size_t *cap, size_t elem, size_t first)
{
    size_t ncap = *cap ? 2 * *cap : first;
    void *arr, *grown;

    if (ncap > SIZE_MAX / elem)
        return STOAT_ENOMEM;
    memcpy(&arr, arrp, sizeof(arr));
    if ((grown = realloc(arr, ncap * elem)) == NULL)
        return STOAT_ENOMEM;
    memcpy(arrp, &grown, sizeof(grown));
    *cap = ncap;
    return 0;
}

#define VEC_ROOM(arr, n, cap, first) \
    ((n) < (cap) ? 0 : vec_grow(&(arr), &(cap), sizeof(*(arr)), (first)))

#endif
