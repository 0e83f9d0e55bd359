/* Borrowed tensor views (DLPack-like): float32 data, shape and strides in elements.
 * Feature maps are NHWC: shape = {B, H, W, C}; vectors per image are {B, C} (ndim 2).
 * A view never owns its data: the host allocates every tensor a plugin sees. */
#ifndef LTH4SA_TENSOR_H
#define LTH4SA_TENSOR_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A view of host-owned float32 data. [call] unless the function says otherwise (`bind`).
 *  FROZEN (array element): never changes size or layout. */
typedef struct lth4sa_tensor {
    float *LTH4SA_NULLABLE data; /* borrowed; valid for the duration of the call */
    int32_t ndim;                /* 1..4 */
    int32_t reserved;
    int64_t shape[4];
    int64_t strides[4];          /* in elements; the host passes contiguous row-major views */
} lth4sa_tensor_t;

/** Number of elements of a view. [any thread] */
static inline int64_t lth4sa_tensor_count(const lth4sa_tensor_t *LTH4SA_NONNULL t) {
    int64_t n = 1;
    for (int32_t i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

#ifdef __cplusplus
}
#endif
#endif
