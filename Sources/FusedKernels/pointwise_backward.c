// The fused backward of a 1x1 convolution whose input is ReLU(BN(x)): see fused_kernels.h.
#include "fused_kernels.h"
#include <libxsmm.h>
#include <math.h>

// The elementwise loops are compiled for AVX-512, AVX2 + FMA and the baseline, picked at load time.
#define VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

typedef void (*gemm_fn)(const float *a, const float *b, float *c, ...);

// C (m x n, col-major, ldc) = A (m x k, lda) x B (k x n, ldb) [+ C when accumulate].
static gemm_fn gemm_kernel(int m, int n, int k, int lda, int ldb, int ldc, int accumulate) {
    const libxsmm_blasint mm = m, nn = n, kk = k, la = lda, lb = ldb, lc = ldc;
    const float alpha = 1, beta = accumulate ? 1 : 0;
    const int flags = accumulate ? LIBXSMM_GEMM_FLAG_NONE : LIBXSMM_GEMM_FLAG_BETA_0;
    return (gemm_fn)libxsmm_smmdispatch(mm, nn, kk, &la, &lb, &lc, &alpha, &beta, &flags, NULL);
}

// dX tile [n, I] = dY tile [n, O] x W [O, I]: column-major I x n = W (I x O, lda I) x dY^T (O x n).
static gemm_fn data_kernel(int in, int out, int n) { return gemm_kernel(in, n, out, in, out, in, 0); }
// dW^T [I, O] += H^T dY: column-major O x I = dY^T (O x n, lda O) x H (n x I, stored as H^T [I, tile], ldb tile).
static gemm_fn weights_kernel(int in, int out, int n, int tile) { return gemm_kernel(out, in, n, out, tile, out, 1); }

int lth4sa_pointwise_plan_init(lth4sa_pointwise_plan *plan, int in_channels, int out_channels, int tile_rows) {
    libxsmm_init();
    plan->in_channels = in_channels;
    plan->out_channels = out_channels;
    plan->tile_rows = tile_rows;
    plan->data_full = (void *)data_kernel(in_channels, out_channels, tile_rows);
    plan->weights_full = (void *)weights_kernel(in_channels, out_channels, tile_rows, tile_rows);
    return plan->data_full && plan->weights_full ? 0 : -1;
}

// One row: h = max(0, scale x + shift) into h_row, g masked in place, sums of g and g * xhat.
static inline void norm_relu_row(int channels, const float *restrict x, float *restrict g, float *restrict h_row,
                                 const float *restrict mean, const float *restrict invstd, const float *restrict scale,
                                 const float *restrict shift, float *restrict sum_g, float *restrict sum_gx) {
    for (int c = 0; c < channels; c++) {
        const float z = scale[c] * x[c] + shift[c];
        const float h = z > 0.f ? z : 0.f;
        const float gv = z > 0.f ? g[c] : 0.f;
        g[c] = gv;
        h_row[c] = h;
        sum_g[c] += gv;
        sum_gx[c] += gv * ((x[c] - mean[c]) * invstd[c]);
    }
}

// One row of dy = alpha g + kappa (y - mean) + delta (the next batch norm's second pass).
static inline void output_gradient_row(int channels, const float *restrict g, const float *restrict y, const float *restrict alpha,
                                       const float *restrict delta, const float *restrict kappa, const float *restrict mean,
                                       float *restrict dy) {
    for (int c = 0; c < channels; c++) dy[c] = alpha[c] * g[c] + kappa[c] * (y[c] - mean[c]) + delta[c];
}

VECTOR_CLONES void lth4sa_pointwise_norm_relu_backward(const lth4sa_pointwise_plan *plan, const lth4sa_norm_relu *norm,
                                         const lth4sa_output_gradient *output, const float *weight, const float *x, float *g,
                                         long begin, long end, float *scratch, float *weights_t, double *sums) {
    const int in = plan->in_channels, out = plan->out_channels, tile = plan->tile_rows;
    float *formed = scratch + (long)in * tile;  // [tile, O]: dy of this tile when not given
    float *h_rows = formed + (long)out * tile;  // [tile, I]: h as recomputed, before its transpose
    float tile_g[in], tile_gx[in];
    for (long row0 = begin; row0 < end; row0 += tile) {
        const int n = end - row0 < tile ? (int)(end - row0) : tile;
        gemm_fn data = n == tile ? (gemm_fn)plan->data_full : data_kernel(in, out, n);
        gemm_fn weights = n == tile ? (gemm_fn)plan->weights_full : weights_kernel(in, out, n, tile);
        float *g_tile = g + row0 * in;
        const float *dy = output->given ? output->given + row0 * out : formed;
        if (!output->given) {
            for (int r = 0; r < n; r++) {
                const long row = row0 + r, image = row / output->pixels;
                output_gradient_row(out, output->g + row * out, output->y + row * out, output->alpha + image * out,
                                    output->delta + image * out, output->kappa, output->mean, formed + (long)r * out);
            }
        }
        // dh = dy x W, straight into g's rows
        data(weight, dy, g_tile);
        // h recomputed; g = dh * (h > 0) in place; the tile's sums
        for (int c = 0; c < in; c++) { tile_g[c] = 0; tile_gx[c] = 0; }
        for (int r = 0; r < n; r++) {
            norm_relu_row(in, x + (row0 + r) * in, g_tile + (long)r * in, h_rows + (long)r * in, norm->mean, norm->invstd,
                          norm->scale, norm->shift, tile_g, tile_gx);
        }
        for (int c = 0; c < in; c++) { sums[c] += tile_g[c]; sums[in + c] += tile_gx[c]; }
        // H^T [I, tile]: the weight GEMM's operand
        for (int c = 0; c < in; c++) {
            for (int r = 0; r < n; r++) scratch[(long)c * tile + r] = h_rows[(long)r * in + c];
        }
        weights(dy, scratch, weights_t);
    }
}

VECTOR_CLONES void lth4sa_norm_backward_apply(int channels, const float *mean, const float *invstd, const float *coefficients,
                                const float *x, float *g, long begin, long end) {
    const float *factor = coefficients, *mean_g = coefficients + channels, *mean_gx = coefficients + 2 * channels;
    for (long r = begin; r < end; r++) {
        const float *xr = x + r * channels;
        float *gr = g + r * channels;
        for (int c = 0; c < channels; c++) {
            const float xhat = (xr[c] - mean[c]) * invstd[c];
            gr[c] = factor[c] * (gr[c] - mean_g[c] - xhat * mean_gx[c]);
        }
    }
}
