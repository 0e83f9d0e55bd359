/* Services the host passes to every plugin: logging, GEMM (OpenBLAS, on its OpenMP thread
 * pool), a seeded RNG and a parallel-for. All function pointers are always set. Each network
 * and each search has its own host table and context; the table stays valid as long as any
 * instance created with it [instance]. */
#ifndef LTH4SA_HOST_H
#define LTH4SA_HOST_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LTH4SA_LOG_DEBUG 0
#define LTH4SA_LOG_INFO 1
#define LTH4SA_LOG_WARNING 2

typedef struct lth4sa_host {
    uint32_t struct_size;
    uint32_t abi_version;
    void *LTH4SA_NULLABLE context; /* opaque, pass back to every service */

    /** Logs one line. [thread-safe] */
    void (*LTH4SA_NONNULL log)(void *LTH4SA_NULLABLE context, int32_t level, const char *LTH4SA_NONNULL message);

    /** Row-major C[m,n] = alpha * op(A) * op(B) + beta * C, op = transpose when trans_* != 0
     *  (A stored [k,m] when trans_a, B stored [n,k] when trans_b). [calling thread] */
    void (*LTH4SA_NONNULL gemm)(void *LTH4SA_NULLABLE context, int32_t trans_a, int32_t trans_b, int64_t m, int64_t n,
                                int64_t k, float alpha, const float *LTH4SA_NONNULL a, const float *LTH4SA_NONNULL b,
                                float beta, float *LTH4SA_NONNULL c);

    /** A uniform random number in [0, 1) from the host's seeded generator (one per host table,
     *  saved with a search's checkpoint). [calling thread] */
    float (*LTH4SA_NONNULL uniform)(void *LTH4SA_NULLABLE context);

    /** Runs body(arg, i) for i in [0, count) on the host's worker threads (the OpenMP pool that
     *  oneDNN and OpenBLAS share) and returns when all are done. Bodies must not call host
     *  services.
     *  [calling thread] */
    void (*LTH4SA_NONNULL parallel_for)(void *LTH4SA_NULLABLE context, int64_t count,
                                        void (*LTH4SA_NONNULL body)(void *LTH4SA_NULLABLE arg, int64_t i),
                                        void *LTH4SA_NULLABLE arg);
} lth4sa_host_t;

#ifdef __cplusplus
}
#endif
#endif
