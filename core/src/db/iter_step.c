/*
 * iter_step.c - stoat_iter_step: one step of a scan (a move, then the key
 * and value it lands on) in one call.
 *
 * For bindings that pay per call (LuaJIT's FFI: each call leaves the
 * compiled trace, spills its registers and reloads the out-parameters
 * after it): a scan's step is four calls through the other functions
 * (move, valid, key, value) and one through this. It is built on those
 * public functions only, so it has their checks, their error messages and
 * their borrowing rules, and owns no state. Thread-safety: an iterator's,
 * one thread at a time.
 */
#include "stoat.h"
#include "base/status.h"

/* The move of stoat_iter_step: the function's return code. */
static int iter_step_move(stoat_iter *it, int move)
{
    switch (move) {
    case STOAT_STEP_NEXT:
        return stoat_iter_next(it);
    case STOAT_STEP_PREV:
        return stoat_iter_prev(it);
    case STOAT_STEP_FIRST:
        return stoat_iter_seek_first(it);
    case STOAT_STEP_LAST:
        return stoat_iter_seek_last(it);
    default:
        return status_err(STOAT_EINVAL, "stoat_iter_step: unknown move %d", move);
    }
}

int stoat_iter_step(stoat_iter *it, int move, const void **key, size_t *klen, const void **val,
                    size_t *vlen)
{
    int rc;

    if (key == NULL || klen == NULL || (val == NULL) != (vlen == NULL))
        return status_err(STOAT_EINVAL, "stoat_iter_step: NULL out-parameter");
    *key = NULL;
    *klen = 0;
    if (val != NULL) {
        *val = NULL;
        *vlen = 0;
    }
    if ((rc = iter_step_move(it, move)) != 0)
        return rc;
    if (!stoat_iter_valid(it))
        return 0;
    if ((rc = stoat_iter_key(it, key, klen)) != 0)
        return rc;
    if (val != NULL && (rc = stoat_iter_value(it, val, vlen)) != 0) {
        *key = NULL;
        *klen = 0;
        return rc;
    }
    return 1;
}
