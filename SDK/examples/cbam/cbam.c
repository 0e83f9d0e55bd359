/* CBAM (Woo et al., ECCV 2018) as an lth4sa SAM plugin: an example written against the SDK
 * headers only (build: make -C SDK/examples).
 *
 *   extract:  S = [avg_hw F | max_hw F]                    [B, 2C]  (argmax kept for backward)
 *   process:  Mc = sigmoid(MLP(avg) + MLP(max))            [B, C]   MLP = Linear(C, C/r), ReLU, Linear(C/r, C)
 *             F1 = F * Mc;  P = [mean_c F1, max_c F1]      [B, H, W, 2]
 *             Ms = sigmoid(conv7x7(P) + b)                 [B, H, W, 1]
 *             A = Mc * Ms (outer product)                  [B, H, W, C]
 *   recalibrate (host default, multiply): F' = F * A = Ms * (Mc * F)
 * Parameters: mlp.0.weight [C/r, C], mlp.0.bias, mlp.2.weight [C, C/r], mlp.2.bias,
 *             spatial.weight [1, 2, 7, 7], spatial.bias [1].  (The spatial conv has a bias
 *             and no batch norm here.) */
#include <lth4sa/helpers.h>

#define K 7
#define PAD 3

static const lth4sa_option_t options[] = {
    {.name = "reduction", .type = LTH4SA_OPTION_INT, .default_value = 16, .min_value = 1, .max_value = 1024,
     .doc = "reduction ratio r of the channel MLP (hidden = C / r)"},
};

static const lth4sa_descriptor_t descriptor = {
    .struct_size = sizeof(lth4sa_descriptor_t),
    .kind = LTH4SA_KIND_SAM,
    .id = "cbam",
    .name = "Convolutional Block Attention Module",
    .version = "1.0.0",
    .description = "channel attention (avg+max MLP) then spatial attention (7x7 conv over channel mean/max)",
    .license = "MIT",
    .option_count = 1,
    .options = options,
    .flags = LTH4SA_PLUGIN_CONCURRENT_INSTANCES}; /* no state outside its instances */

enum { W0, B0, W2, B2, SW, SB, PARAMS };
enum { SAVE_ARGMAX, SAVE_HA, SAVE_HM, SAVE_MC, SAVE_P, SAVE_PARG, SAVE_MS, SAVES };

typedef struct cbam {
    lth4sa_sam_base_t base; /* first: host, channels, declared/bound parameters, per-call saved buffers */
    int64_t h;              /* hidden units of the channel MLP */
} cbam_t;

static float *slot(cbam_t *s, int32_t call, int k, int64_t n) { return lth4sa_saved_get(&s->base.saved, call, k, n); }
/* Work buffers of one call (reserved by `prepare`, so process and backward never allocate). */
enum { WORK_FORWARD, WORK_SPLIT, WORK_DMC, WORK_DLOG, WORK_DP, WORK_DIN, WORK_HIDDEN };
static float *work(cbam_t *s, int k, int64_t n) { return lth4sa_scratch_get(&s->base.scratch, k, n); }
static float *peek(cbam_t *s, int32_t call, int k) { return lth4sa_saved_peek(&s->base.saved, call, k); }

static lth4sa_status_t create(const lth4sa_host_t *host, int64_t channels, const lth4sa_option_value_t *opts, uint32_t n, void **out, lth4sa_error_t *e) {
    const int64_t r = (int64_t)lth4sa_option(opts, n, "reduction", 16);
    if (channels / r < 1)
        return lth4sa_fail(e, LTH4SA_ERR_UNSUPPORTED, "cbam: %lld channels with reduction %lld leave no hidden unit", (long long)channels, (long long)r);
    cbam_t *s = lth4sa_base_new(sizeof(cbam_t), host, "cbam", channels, PARAMS);
    if (!s) return lth4sa_fail(e, LTH4SA_ERR_OUT_OF_MEMORY, "cbam: out of memory");
    s->h = channels / r;
    lth4sa_declare(&s->base.declared[W0], "mlp.0.weight", 2, s->h, channels, LTH4SA_INIT_LINEAR, (double)channels, 0);
    lth4sa_declare(&s->base.declared[B0], "mlp.0.bias", 1, s->h, 0, LTH4SA_INIT_LINEAR, (double)channels, 0);
    lth4sa_declare(&s->base.declared[W2], "mlp.2.weight", 2, channels, s->h, LTH4SA_INIT_LINEAR, (double)s->h, 0);
    lth4sa_declare(&s->base.declared[B2], "mlp.2.bias", 1, channels, 0, LTH4SA_INIT_LINEAR, (double)s->h, 0);
    lth4sa_declare4(&s->base.declared[SW], "spatial.weight", 1, 2, K, K, LTH4SA_INIT_LINEAR, 2.0 * K * K, 0);
    lth4sa_declare(&s->base.declared[SB], "spatial.bias", 1, 1, 0, LTH4SA_INIT_LINEAR, 2.0 * K * K, 0);
    *out = s;
    return LTH4SA_OK;
}

/* S = [avg | max] [B, 2C] and A = [B, H, W, C]: the base layout with one attention channel per
 * channel at every pixel, then S widened to hold both pools. */
static lth4sa_status_t layout(void *inst, const lth4sa_tensor_t *x, lth4sa_sam_layout_t *out, lth4sa_error_t *e) {
    cbam_t *s = inst;
    lth4sa_status_t st = lth4sa_base_layout(&s->base, x, LTH4SA_COMBINE_MULTIPLY, s->base.channels, out, e);
    out->extract_shape[1] = 2 * s->base.channels;
    return st;
}

/* Reserves every saved and work buffer for `calls` slots of up to B images of H x W. */
static lth4sa_status_t prepare(void *inst, int32_t calls, int64_t B, int64_t H, int64_t W, lth4sa_error_t *e) {
    cbam_t *s = inst;
    const int64_t P = H * W, C = s->base.channels, h = s->h;
    lth4sa_saved_t *saved = &s->base.saved;
    const int64_t sizes[SAVES] = {[SAVE_ARGMAX] = B * C, [SAVE_HA] = B * h, [SAVE_HM] = B * h, [SAVE_MC] = B * C,
                                  [SAVE_P] = B * P * 2, [SAVE_PARG] = B * P, [SAVE_MS] = B * P};
    for (int k = 0; k < SAVES; k++)
        if (!lth4sa_saved_reserve(saved, calls, k, sizes[k])) return lth4sa_fail(e, LTH4SA_ERR_OUT_OF_MEMORY, "cbam: out of memory");
    if (!work(s, WORK_FORWARD, 2 * B * h + B * C + B * P * 4) || !work(s, WORK_SPLIT, 2 * B * C) || !work(s, WORK_DMC, B * C) ||
        !work(s, WORK_DLOG, B * P) || !work(s, WORK_DP, B * P * 2) || !work(s, WORK_DIN, B * C) || !work(s, WORK_HIDDEN, B * h))
        return lth4sa_fail(e, LTH4SA_ERR_OUT_OF_MEMORY, "cbam: out of memory preparing for %lld images of %lldx%lld", (long long)B,
                           (long long)H, (long long)W);
    return LTH4SA_OK;
}

/* S = [avg | max] over pixels; the arg-max pixel of every (b, c) is saved when training. */
static lth4sa_status_t extract(void *inst, int32_t call, const lth4sa_tensor_t *x, lth4sa_tensor_t *S, int32_t training, lth4sa_error_t *e) {
    cbam_t *s = inst;
    const int64_t B = x->shape[0], P = x->shape[1] * x->shape[2], C = s->base.channels;
    float *arg = training ? slot(s, call, SAVE_ARGMAX, B * C) : NULL;
    if (training && !arg) return lth4sa_fail(e, LTH4SA_ERR_OUT_OF_MEMORY, "cbam: out of memory");
    for (int64_t b = 0; b < B; b++) {
        float *avg = S->data + b * 2 * C, *mx = avg + C;
        for (int64_t c = 0; c < C; c++) { avg[c] = 0; mx[c] = -INFINITY; if (arg) arg[b * C + c] = 0; }
        for (int64_t i = 0; i < P; i++) {
            const float *f = x->data + (b * P + i) * C;
            for (int64_t c = 0; c < C; c++) {
                avg[c] += f[c];
                if (f[c] > mx[c]) { mx[c] = f[c]; if (arg) arg[b * C + c] = (float)i; }
            }
        }
        for (int64_t c = 0; c < C; c++) avg[c] /= (float)P;
    }
    return LTH4SA_OK;
}

static lth4sa_status_t extract_backward(void *inst, int32_t call, const lth4sa_tensor_t *x, const lth4sa_tensor_t *dS, lth4sa_tensor_t *dx, lth4sa_error_t *e) {
    cbam_t *s = inst;
    const int64_t B = x->shape[0], P = x->shape[1] * x->shape[2], C = s->base.channels;
    float *arg = peek(s, call, SAVE_ARGMAX);
    if (!arg) return lth4sa_fail(e, LTH4SA_ERR_INVALID_ARGUMENT, "cbam: backward of call %d without a training forward", call);
    for (int64_t b = 0; b < B; b++) {
        const float *davg = dS->data + b * 2 * C, *dmax = davg + C;
        for (int64_t i = 0; i < P; i++) {
            float *d = dx->data + (b * P + i) * C;
            for (int64_t c = 0; c < C; c++) d[c] += davg[c] / (float)P;
        }
        for (int64_t c = 0; c < C; c++) dx->data[(b * P + (int64_t)arg[b * C + c]) * C + c] += dmax[c];
    }
    return LTH4SA_OK;
}

/* The channel MLP: Linear(C, h) -> ReLU -> Linear(h, C) over the bound parameters. */
static lth4sa_mlp_t mlp_of(cbam_t *s) {
    return (lth4sa_mlp_t){.n = s->base.channels, .h = s->h, .m = s->base.channels,
                          .w0 = s->base.value[W0], .b0 = s->base.value[B0], .w1 = s->base.value[W2], .b1 = s->base.value[B2],
                          .gw0 = s->base.grad[W0], .gb0 = s->base.grad[B0], .gw1 = s->base.grad[W2], .gb1 = s->base.grad[B2]};
}

/* S rows are [avg | max]: copy them into two stacked [B, C] matrices (avg first, then max). */
static void split_pools(const lth4sa_tensor_t *S, int64_t B, int64_t C, float *split) {
    for (int64_t b = 0; b < B; b++) {
        memcpy(split + b * C, S->data + b * 2 * C, sizeof(float) * (size_t)C);
        memcpy(split + B * C + b * C, S->data + b * 2 * C + C, sizeof(float) * (size_t)C);
    }
}

static lth4sa_status_t process(void *inst, int32_t call, const lth4sa_tensor_t *x, const lth4sa_tensor_t *S, const lth4sa_tensor_t *si,
                               lth4sa_tensor_t *A, lth4sa_tensor_t *so, int32_t training, lth4sa_error_t *e) {
    (void)si; (void)so;
    cbam_t *s = inst;
    const int64_t B = x->shape[0], H = x->shape[1], W = x->shape[2], P = H * W, C = s->base.channels, h = s->h;
    float *ha, *hm, *mc, *pm, *parg, *ms;
    if (training) {
        ha = slot(s, call, SAVE_HA, B * h); hm = slot(s, call, SAVE_HM, B * h); mc = slot(s, call, SAVE_MC, B * C);
        pm = slot(s, call, SAVE_P, B * P * 2); parg = slot(s, call, SAVE_PARG, B * P); ms = slot(s, call, SAVE_MS, B * P);
    } else {
        float *tmp = work(s, WORK_FORWARD, 2 * B * h + B * C + B * P * 4);
        if (!tmp) return lth4sa_fail(e, LTH4SA_ERR_OUT_OF_MEMORY, "cbam: out of memory");
        ha = tmp; hm = ha + B * h; mc = hm + B * h; pm = mc + B * C; parg = pm + B * P * 2; ms = parg + B * P;
    }
    float *split = work(s, WORK_SPLIT, 2 * B * C);
    if (!ha || !hm || !mc || !pm || !parg || !ms || !split) return lth4sa_fail(e, LTH4SA_ERR_OUT_OF_MEMORY, "cbam: out of memory");
    split_pools(S, B, C, split);
    memset(mc, 0, sizeof(float) * (size_t)(B * C));
    const lth4sa_mlp_t m = mlp_of(s);
    lth4sa_mlp_forward(s->base.host, &m, split, B, ha, mc);
    lth4sa_mlp_forward(s->base.host, &m, split + B * C, B, hm, mc);
    for (int64_t i = 0; i < B * C; i++) mc[i] = lth4sa_sigmoid(mc[i]);
    for (int64_t b = 0; b < B; b++) {
        for (int64_t i = 0; i < P; i++) {
            const float *f = x->data + (b * P + i) * C, *m = mc + b * C;
            float sum = 0, best = -INFINITY;
            int64_t arg = 0;
            for (int64_t c = 0; c < C; c++) {
                float v = f[c] * m[c];
                sum += v;
                if (v > best) { best = v; arg = c; }
            }
            pm[(b * P + i) * 2] = sum / (float)C;
            pm[(b * P + i) * 2 + 1] = best;
            parg[b * P + i] = (float)arg;
        }
    }
    const float *w = s->base.value[SW];  /* [1, 2, 7, 7] OIHW */
    for (int64_t b = 0; b < B; b++)
        for (int64_t y = 0; y < H; y++)
            for (int64_t xx = 0; xx < W; xx++) {
                float acc = s->base.value[SB][0];
                for (int ky = 0; ky < K; ky++) {
                    int64_t iy = y + ky - PAD;
                    if (iy < 0 || iy >= H) continue;
                    for (int kx = 0; kx < K; kx++) {
                        int64_t ix = xx + kx - PAD;
                        if (ix < 0 || ix >= W) continue;
                        const float *p = pm + (b * P + iy * W + ix) * 2;
                        acc += w[ky * K + kx] * p[0] + w[K * K + ky * K + kx] * p[1];
                    }
                }
                ms[b * P + y * W + xx] = lth4sa_sigmoid(acc);
            }
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < P; i++) {
            float *a = A->data + (b * P + i) * C;
            const float m = ms[b * P + i];
            for (int64_t c = 0; c < C; c++) a[c] = mc[b * C + c] * m;
        }
    return LTH4SA_OK;
}

static lth4sa_status_t process_backward(void *inst, int32_t call, const lth4sa_tensor_t *x, const lth4sa_tensor_t *S, const lth4sa_tensor_t *dA,
                                        const lth4sa_tensor_t *dso, lth4sa_tensor_t *dS, lth4sa_tensor_t *dsi, lth4sa_tensor_t *dx, lth4sa_error_t *e) {
    (void)dso; (void)dsi;
    cbam_t *s = inst;
    const int64_t B = x->shape[0], H = x->shape[1], W = x->shape[2], P = H * W, C = s->base.channels, h = s->h;
    float *ha = peek(s, call, SAVE_HA), *hm = peek(s, call, SAVE_HM), *mc = peek(s, call, SAVE_MC);
    float *pm = peek(s, call, SAVE_P), *parg = peek(s, call, SAVE_PARG), *ms = peek(s, call, SAVE_MS);
    if (!ha || !hm || !mc || !pm || !parg || !ms) return lth4sa_fail(e, LTH4SA_ERR_INVALID_ARGUMENT, "cbam: backward of call %d without a training forward", call);
    float *dmc = work(s, WORK_DMC, B * C), *dlog = work(s, WORK_DLOG, B * P), *dp = work(s, WORK_DP, B * P * 2);
    float *split = work(s, WORK_SPLIT, 2 * B * C), *din = work(s, WORK_DIN, B * C), *scratch = work(s, WORK_HIDDEN, B * h);
    if (!dmc || !dlog || !dp || !split || !din || !scratch) return lth4sa_fail(e, LTH4SA_ERR_OUT_OF_MEMORY, "cbam: out of memory");
    memset(dmc, 0, sizeof(float) * (size_t)(B * C));
    memset(dp, 0, sizeof(float) * (size_t)(B * P * 2));
    /* A = Mc * Ms: dMs = sum_c dA Mc, dMc = sum_i dA Ms */
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < P; i++) {
            const float *da = dA->data + (b * P + i) * C;
            float dms = 0;
            for (int64_t c = 0; c < C; c++) { dms += da[c] * mc[b * C + c]; dmc[b * C + c] += da[c] * ms[b * P + i]; }
            const float m = ms[b * P + i];
            dlog[b * P + i] = dms * m * (1 - m);
        }
    /* 7x7 conv backward: weights, bias, pooled maps */
    const float *w = s->base.value[SW];
    for (int64_t b = 0; b < B; b++)
        for (int64_t y = 0; y < H; y++)
            for (int64_t xx = 0; xx < W; xx++) {
                const float g = dlog[b * P + y * W + xx];
                s->base.grad[SB][0] += g;
                for (int ky = 0; ky < K; ky++) {
                    int64_t iy = y + ky - PAD;
                    if (iy < 0 || iy >= H) continue;
                    for (int kx = 0; kx < K; kx++) {
                        int64_t ix = xx + kx - PAD;
                        if (ix < 0 || ix >= W) continue;
                        const int64_t at = (b * P + iy * W + ix) * 2;
                        s->base.grad[SW][ky * K + kx] += g * pm[at];
                        s->base.grad[SW][K * K + ky * K + kx] += g * pm[at + 1];
                        dp[at] += g * w[ky * K + kx];
                        dp[at + 1] += g * w[K * K + ky * K + kx];
                    }
                }
            }
    /* pooled maps of F1 = F * Mc: mean -> every channel, max -> its arg-max channel;
       then dF += dF1 * Mc and dMc += sum_i dF1 * F */
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < P; i++) {
            const float dmean = dp[(b * P + i) * 2] / (float)C, dmax = dp[(b * P + i) * 2 + 1];
            const int64_t arg = (int64_t)parg[b * P + i];
            const float *f = x->data + (b * P + i) * C;
            float *d = dx->data + (b * P + i) * C;
            for (int64_t c = 0; c < C; c++) {
                const float df1 = dmean + (c == arg ? dmax : 0);
                d[c] += df1 * mc[b * C + c];
                dmc[b * C + c] += df1 * f[c];
            }
        }
    /* Mc = sigmoid(MLP(avg) + MLP(max)) */
    for (int64_t i = 0; i < B * C; i++) dmc[i] *= mc[i] * (1 - mc[i]);
    split_pools(S, B, C, split);
    const lth4sa_mlp_t m = mlp_of(s);
    lth4sa_mlp_backward(s->base.host, &m, split, ha, dmc, B, din, scratch);
    for (int64_t b = 0; b < B; b++) memcpy(dS->data + b * 2 * C, din + b * C, sizeof(float) * (size_t)C);
    lth4sa_mlp_backward(s->base.host, &m, split + B * C, hm, dmc, B, din, scratch);
    for (int64_t b = 0; b < B; b++) memcpy(dS->data + b * 2 * C + C, din + b * C, sizeof(float) * (size_t)C);
    return LTH4SA_OK;
}

static const lth4sa_sam_api_t api = {
    .struct_size = sizeof(lth4sa_sam_api_t),
    .create = create,
    .destroy = lth4sa_base_destroy,
    .param_count = lth4sa_base_param_count,
    .param_info = lth4sa_base_param_info,
    .bind = lth4sa_base_bind,
    .layout = layout,
    .extract = extract,
    .extract_backward = extract_backward,
    .process = process,
    .process_backward = process_backward,
    .prepare = prepare,
    .allocations = lth4sa_base_allocations};

LTH4SA_SINGLE_SAM_ENTRY(descriptor, api)
