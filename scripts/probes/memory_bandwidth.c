/*
 * Probe: the machine's DRAM bandwidth for the access patterns of training's element-wise passes,
 * on arrays of 128 MB (4x this machine's 32 MB L3), with OpenMP threads (OMP_NUM_THREADS):
 *   read 2      r += a[i] * b[i]            (a batch-norm backward's reduction pass)
 *   triad       c[i] = a[i] + k * b[i]      (2 reads, 1 write: its input-gradient pass)
 *   copy        c[i] = a[i]
 * Bytes counted as the loop's own reads and writes (a write's read-for-ownership not counted).
 * Prints the best of 10 repetitions of each.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double seconds(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

int main(void) {
    const long n = 32L << 20;
    float *a = aligned_alloc(64, n * sizeof(float)), *b = aligned_alloc(64, n * sizeof(float)), *c = aligned_alloc(64, n * sizeof(float));
    #pragma omp parallel for
    for (long i = 0; i < n; i++) { a[i] = 1; b[i] = 2; c[i] = 0; }
    double read = 1e30, triad = 1e30, copy = 1e30, sink = 0;
    for (int r = 0; r < 10; r++) {
        double t = seconds(), sum = 0;
        #pragma omp parallel for reduction(+ : sum)
        for (long i = 0; i < n; i += 8) {  /* 8 independent sums: bandwidth, not add latency */
            float s[8];
            for (int k = 0; k < 8; k++) s[k] = a[i + k] * b[i + k];
            sum += s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
        }
        t = seconds() - t; sink += sum; if (t < read) read = t;
        t = seconds();
        #pragma omp parallel for
        for (long i = 0; i < n; i++) c[i] = a[i] + 0.5f * b[i];
        t = seconds() - t; if (t < triad) triad = t;
        t = seconds();
        #pragma omp parallel for
        for (long i = 0; i < n; i++) c[i] = a[i];
        t = seconds() - t; if (t < copy) copy = t;
    }
    double bytes = n * sizeof(float) / 1e9;
    printf("%d threads: read 2 %.1f GB/s, triad %.1f GB/s, copy %.1f GB/s (checksum %.0f)\n",
           omp_get_max_threads(), 2 * bytes / read, 3 * bytes / triad, 2 * bytes / copy, sink + c[n - 1]);
    return 0;
}
