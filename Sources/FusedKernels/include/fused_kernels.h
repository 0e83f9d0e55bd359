// Host kernels that fuse a 1x1 convolution's GEMMs with the elementwise passes around it, one
// tile of rows at a time while the tile is in cache. The GEMMs are LIBXSMM's JIT kernels (what
// the CPU supports best: AVX-512 or AVX2), the passes plain C. Callers (NN) run chunks of rows
// on the thread pool; every function here is single-threaded and touches only what its
// arguments name, so chunks may run concurrently.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The GEMM kernels of one fused 1x1 backward shape: I input channels (the batch norm's),
/// O output channels (the convolution's), tiles of `tile_rows` rows. Made once per shape by
/// `lth4sa_pointwise_plan_init`; read-only after, shared by all threads.
typedef struct lth4sa_pointwise_plan {
    int in_channels, out_channels, tile_rows;
    /// dX tile [T, I] = dY tile [T, O] x W [O, I], for full tiles (a shorter last tile gets its
    /// kernel from LIBXSMM's cache when it comes).
    void *data_full;
    /// dW^T [I, O] += H^T dY over a full tile: LIBXSMM's column-major O x I = dY^T (O x T) x H (T x I).
    void *weights_full;
} lth4sa_pointwise_plan;

/// Makes the kernels for full tiles. Returns 0, or -1 when LIBXSMM cannot make them (the caller
/// keeps its unfused path). [any thread: LIBXSMM initialises and dispatches thread-safely]
int lth4sa_pointwise_plan_init(lth4sa_pointwise_plan *plan, int in_channels, int out_channels, int tile_rows);

/// The per-channel constants of a training batch norm with a fused ReLU, h = max(0, a*x + b)
/// with a = gamma * invstd, b = beta - mean * a; xhat = (x - mean) * invstd.
typedef struct lth4sa_norm_relu {
    const float *mean, *invstd, *scale, *shift;  // [I] each; scale = a, shift = b
} lth4sa_norm_relu;

/// The convolution's output gradient dy [rows, O]: `given`, or (given NULL) formed tile by tile
/// as the second pass of the backward of the batch norm that follows the convolution,
///     dy = alpha * g + kappa * (y - mean) + delta
/// with g, y [rows, O] (the gradient of that batch norm's output and its input, the convolution's
/// output), alpha, delta [N, O] per image of `pixels` rows, kappa, mean [O].
typedef struct lth4sa_output_gradient {
    const float *given;
    const float *g, *y, *alpha, *delta, *kappa, *mean;
    long pixels;
} lth4sa_output_gradient;

/// Backward of y = conv1x1(h), h = ReLU(BN(x)), over rows [begin, end) (a chunk; tiles of the
/// plan's size, the last one may be shorter):
///
///     h  = max(0, scale * x + shift)                 x  [rows, I]   recomputed per tile
///     dh = dy x W                                    dy [rows, O], W [O, I]
///     g  = dh * (h > 0)                      ->  g [rows, I]   (written)
///     weights_t [I, O] += h^T dy                     (this chunk's partial, accumulated)
///     sums [2 * I] += (sum of g, sum of g * xhat) per channel, in double
///
/// `scratch`: (2 I + O) * tile_rows floats of the calling thread. Thread-safe for disjoint chunks.
void lth4sa_pointwise_norm_relu_backward(const lth4sa_pointwise_plan *plan, const lth4sa_norm_relu *norm,
                                         const lth4sa_output_gradient *dy, const float *weight, const float *x, float *g,
                                         long begin, long end, float *scratch, float *weights_t, double *sums);

/// The batch norm backward's second pass over rows [begin, end), in place:
///     g -> gamma * invstd * (g - mean_g - xhat * mean_gxhat)    g, x [rows, C]
/// `coefficients` [3 * C]: gamma * invstd, mean_g, mean_gxhat per channel.
void lth4sa_norm_backward_apply(int channels, const float *mean, const float *invstd, const float *coefficients,
                                const float *x, float *g, long begin, long end);

#ifdef __cplusplus
}
#endif
