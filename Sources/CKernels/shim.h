// The C libraries lth4sa computes with: OpenBLAS (OpenMP build, shares libgomp's thread pool
// with oneDNN) for GEMMs and oneDNN 2.6 for convolution, batch norm and pooling.
#pragma once
#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>

// From libgomp (omp.h lives in gcc's private include folder, which Swift's clang does not search).
int omp_get_max_threads(void);
void omp_set_num_threads(int num_threads);
