// The C libraries lth4sa computes with: OpenBLAS (OpenMP build, shares libgomp's thread pool
// with oneDNN) for GEMMs and oneDNN 2.6 for convolution, batch norm and pooling.
#pragma once
#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>

// From libgomp (omp.h lives in gcc's private include folder, which Swift's clang does not search).
int omp_get_max_threads(void);
void omp_set_num_threads(int num_threads);
int omp_get_thread_num(void);
int omp_get_num_threads(void);
// What `#pragma omp parallel` compiles to: runs fn(data) on num_threads threads of the pool.
void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
