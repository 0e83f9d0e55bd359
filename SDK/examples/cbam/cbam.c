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
#include <lth4sa/lth4sa.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K 7
#define PAD 3

static const lth4sa_option_t options[] = {
    {"reduction", LTH4SA_OPTION_INT, 0, 16, 1, 1024, "reduction ratio r of the channel MLP (hidden = C / r)"},
};

static const lth4sa_descriptor_t descriptor = {
    sizeof(lth4sa_descriptor_t), LTH4SA_KIND_SAM, "cbam", "Convolutional Block Attention Module", "1.0.0",
    "channel attention (avg+max MLP) then spatial attention (7x7 conv over channel mean/max)", "MIT", 1, 0, options};

enum { W0, B0, W2, B2, SW, SB, PARAMS };
enum { SAVE_ARGMAX, SAVE_HA, SAVE_HM, SAVE_MC, SAVE_P, SAVE_PARG, SAVE_MS, SAVES };

typedef struct saved { float *buf[SAVES]; int64_t size[SAVES]; } saved_t;

typedef struct cbam {
    const lth4sa_host_t *host;
    int64_t C, h;
    lth4sa_param_t declared[PARAMS];
    float *value[PARAMS], *grad[PARAMS];
    saved_t *calls;
    int32_t call_count;
} cbam_t;

static lth4sa_status_t fail(lth4sa_error_t *e, lth4sa_status_t st, const char *fmt, ...) {
    va_list a;
    va_start(a, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, a);
    va_end(a);
    return st;
}

static float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Buffer k of call slot `call`, at least n floats (saved context per call site). */
static float *slot(cbam_t *s, int32_t call, int k, int64_t n) {
    if (call >= s->call_count) {
        saved_t *grown = realloc(s->calls, sizeof(saved_t) * (size_t)(call + 1));
        if (!grown) return NULL;
        memset(grown + s->call_count, 0, sizeof(saved_t) * (size_t)(call + 1 - s->call_count));
        s->calls = grown;
        s->call_count = call + 1;
    }
    saved_t *c = &s->calls[call];
    if (c->size[k] < n) {
        float *p = realloc(c->buf[k], sizeof(float) * (size_t)n);
        if (!p) return NULL;
        c->buf[k] = p;
        c->size[k] = n;
    }
    return c->buf[k];
}

static float *peek(cbam_t *s, int32_t call, int k) { return call < s->call_count ? s->calls[call].buf[k] : NULL; }

static void declare(lth4sa_param_t *p, const char *name, int32_t ndim, int64_t a, int64_t b, int64_t c, int64_t d, int32_t init, double fan) {
    memset(p, 0, sizeof *p);
    p->name = name;
    p->ndim = ndim;
    p->shape[0] = a; p->shape[1] = b; p->shape[2] = c; p->shape[3] = d;
    p->init = init;
    p->init_a = fan;
}

static lth4sa_status_t create(const lth4sa_host_t *host, int64_t channels, const lth4sa_option_value_t *opts, uint32_t n, void **out, lth4sa_error_t *e) {
    int64_t r = 16;
    for (uint32_t i = 0; i < n; i++) if (strcmp(opts[i].name, "reduction") == 0) r = (int64_t)opts[i].value;
    if (channels / r < 1) return fail(e, LTH4SA_ERR_UNSUPPORTED, "cbam: %lld channels with reduction %lld leave no hidden unit", (long long)channels, (long long)r);
    cbam_t *s = calloc(1, sizeof *s);
    if (!s) return fail(e, LTH4SA_ERR_OUT_OF_MEMORY, "cbam: out of memory");
    s->host = host;
    s->C = channels;
    s->h = channels / r;
    declare(&s->declared[W0], "mlp.0.weight", 2, s->h, channels, 0, 0, LTH4SA_INIT_LINEAR, (double)channels);
    declare(&s->declared[B0], "mlp.0.bias", 1, s->h, 0, 0, 0, LTH4SA_INIT_LINEAR, (double)channels);
    declare(&s->declared[W2], "mlp.2.weight", 2, channels, s->h, 0, 0, LTH4SA_INIT_LINEAR, (double)s->h);
    declare(&s->declared[B2], "mlp.2.bias", 1, channels, 0, 0, 0, LTH4SA_INIT_LINEAR, (double)s->h);
    declare(&s->declared[SW], "spatial.weight", 4, 1, 2, K, K, LTH4SA_INIT_LINEAR, 2.0 * K * K);
    declare(&s->declared[SB], "spatial.bias", 1, 1, 0, 0, 0, LTH4SA_INIT_LINEAR, 2.0 * K * K);
    *out = s;
    return LTH4SA_OK;
}

static void destroy(void *inst) {
    cbam_t *s = inst;
    for (int32_t c = 0; c < s->call_count; c++) for (int k = 0; k < SAVES; k++) free(s->calls[c].buf[k]);
    free(s->calls);
    free(s);
}

static uint32_t param_count(void *inst) { (void)inst; return PARAMS; }

static lth4sa_status_t param_info(void *inst, uint32_t i, lth4sa_param_t *out, lth4sa_error_t *e) {
    if (i >= PARAMS) return fail(e, LTH4SA_ERR_INVALID_ARGUMENT, "cbam: no parameter %u", i);
    *out = ((cbam_t *)inst)->declared[i];
    return LTH4SA_OK;
}

static lth4sa_status_t bind(void *inst, const lth4sa_tensor_t *v, const lth4sa_tensor_t *g, uint32_t n, lth4sa_error_t *e) {
    cbam_t *s = inst;
    if (n != PARAMS) return fail(e, LTH4SA_ERR_INVALID_ARGUMENT, "cbam: bind got %u tensors, expected %d", n, PARAMS);
    for (int i = 0; i < PARAMS; i++) {
        int64_t want = 1;
        for (int d = 0; d < s->declared[i].ndim; d++) want *= s->declared[i].shape[d];
        if (lth4sa_tensor_count(&v[i]) != want || lth4sa_tensor_count(&g[i]) != want)
            return fail(e, LTH4SA_ERR_INVALID_ARGUMENT, "cbam: %s bound with the wrong size", s->declared[i].name);
        s->value[i] = v[i].data;
        s->grad[i] = g[i].data;
    }
    return LTH4SA_OK;
}

static lth4sa_status_t layout(void *inst, const lth4sa_tensor_t *x, lth4sa_sam_layout_t *out, lth4sa_error_t *e) {
    cbam_t *s = inst;
    if (x->ndim != 4 || x->shape[3] != s->C) return fail(e, LTH4SA_ERR_INVALID_ARGUMENT, "cbam: input must be [B,H,W,%lld]", (long long)s->C);
    memset(out, 0, sizeof *out);
    out->struct_size = sizeof *out;
    out->combine = LTH4SA_COMBINE_MULTIPLY;
    out->extract_ndim = 2;
    out->extract_shape[0] = x->shape[0];
    out->extract_shape[1] = 2 * s->C;
    out->attention_ndim = 4;
    for (int d = 0; d < 4; d++) out->attention_shape[d] = x->shape[d];
    return LTH4SA_OK;
}

/* S = [avg | max] over pixels; the arg-max pixel of every (b, c) is saved when training. */
static lth4sa_status_t extract(void *inst, int32_t call, const lth4sa_tensor_t *x, lth4sa_tensor_t *S, int32_t training, lth4sa_error_t *e) {
    cbam_t *s = inst;
    const int64_t B = x->shape[0], P = x->shape[1] * x->shape[2], C = s->C;
    float *arg = training ? slot(s, call, SAVE_ARGMAX, B * C) : NULL;
    if (training && !arg) return fail(e, LTH4SA_ERR_OUT_OF_MEMORY, "cbam: out of memory");
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
    const int64_t B = x->shape[0], P = x->shape[1] * x->shape[2], C = s->C;
    float *arg = peek(s, call, SAVE_ARGMAX);
    if (!arg) return fail(e, LTH4SA_ERR_INVALID_ARGUMENT, "cbam: backward of call %d without a training forward", call);
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

/* hidden = ReLU(in W0^T + b0) [B, h]; out += hidden W2^T + b2 [B, C] */
static void mlp(cbam_t *s, const float *in, int64_t B, float *hidden, float *out) {
    const int64_t C = s->C, h = s->h;
    for (int64_t b = 0; b < B; b++) memcpy(hidden + b * h, s->value[B0], sizeof(float) * (size_t)h);
    s->host->gemm(s->host->context, 0, 1, B, h, C, 1, in, s->value[W0], 1, hidden);
    for (int64_t i = 0; i < B * h; i++) if (hidden[i] < 0) hidden[i] = 0;
    for (int64_t b = 0; b < B; b++) for (int64_t c = 0; c < C; c++) out[b * C + c] += s->value[B2][c];
    s->host->gemm(s->host->context, 0, 1, B, C, h, 1, hidden, s->value[W2], 1, out);
}

static void mlp_backward(cbam_t *s, const float *in, const float *hidden, const float *dout, int64_t B, float *din, float *scratch) {
    const int64_t C = s->C, h = s->h;
    s->host->gemm(s->host->context, 1, 0, C, h, B, 1, dout, hidden, 1, s->grad[W2]);
    for (int64_t b = 0; b < B; b++) for (int64_t c = 0; c < C; c++) s->grad[B2][c] += dout[b * C + c];
    s->host->gemm(s->host->context, 0, 0, B, h, C, 1, dout, s->value[W2], 0, scratch);
    for (int64_t i = 0; i < B * h; i++) if (hidden[i] <= 0) scratch[i] = 0;
    s->host->gemm(s->host->context, 1, 0, h, C, B, 1, scratch, in, 1, s->grad[W0]);
    for (int64_t b = 0; b < B; b++) for (int64_t j = 0; j < h; j++) s->grad[B0][j] += scratch[b * h + j];
    s->host->gemm(s->host->context, 0, 0, B, C, h, 1, scratch, s->value[W0], 0, din);
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
    const int64_t B = x->shape[0], H = x->shape[1], W = x->shape[2], P = H * W, C = s->C, h = s->h;
    float *tmp = NULL;
    float *ha, *hm, *mc, *pm, *parg, *ms;
    if (training) {
        ha = slot(s, call, SAVE_HA, B * h); hm = slot(s, call, SAVE_HM, B * h); mc = slot(s, call, SAVE_MC, B * C);
        pm = slot(s, call, SAVE_P, B * P * 2); parg = slot(s, call, SAVE_PARG, B * P); ms = slot(s, call, SAVE_MS, B * P);
    } else {
        tmp = malloc(sizeof(float) * (size_t)(2 * B * h + B * C + B * P * 4));
        ha = tmp; hm = ha + B * h; mc = hm + B * h; pm = mc + B * C; parg = pm + B * P * 2; ms = parg + B * P;
    }
    float *split = malloc(sizeof(float) * (size_t)(2 * B * C));
    if (!ha || !hm || !mc || !pm || !parg || !ms || !split) { free(tmp); free(split); return fail(e, LTH4SA_ERR_OUT_OF_MEMORY, "cbam: out of memory"); }
    split_pools(S, B, C, split);
    memset(mc, 0, sizeof(float) * (size_t)(B * C));
    mlp(s, split, B, ha, mc);
    mlp(s, split + B * C, B, hm, mc);
    for (int64_t i = 0; i < B * C; i++) mc[i] = sigm(mc[i]);
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
    const float *w = s->value[SW];  /* [1, 2, 7, 7] OIHW */
    for (int64_t b = 0; b < B; b++)
        for (int64_t y = 0; y < H; y++)
            for (int64_t xx = 0; xx < W; xx++) {
                float acc = s->value[SB][0];
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
                ms[b * P + y * W + xx] = sigm(acc);
            }
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < P; i++) {
            float *a = A->data + (b * P + i) * C;
            const float m = ms[b * P + i];
            for (int64_t c = 0; c < C; c++) a[c] = mc[b * C + c] * m;
        }
    free(split);
    free(tmp);
    return LTH4SA_OK;
}

static lth4sa_status_t process_backward(void *inst, int32_t call, const lth4sa_tensor_t *x, const lth4sa_tensor_t *S, const lth4sa_tensor_t *dA,
                                        const lth4sa_tensor_t *dso, lth4sa_tensor_t *dS, lth4sa_tensor_t *dsi, lth4sa_tensor_t *dx, lth4sa_error_t *e) {
    (void)dso; (void)dsi;
    cbam_t *s = inst;
    const int64_t B = x->shape[0], H = x->shape[1], W = x->shape[2], P = H * W, C = s->C, h = s->h;
    float *ha = peek(s, call, SAVE_HA), *hm = peek(s, call, SAVE_HM), *mc = peek(s, call, SAVE_MC);
    float *pm = peek(s, call, SAVE_P), *parg = peek(s, call, SAVE_PARG), *ms = peek(s, call, SAVE_MS);
    if (!ha || !hm || !mc || !pm || !parg || !ms) return fail(e, LTH4SA_ERR_INVALID_ARGUMENT, "cbam: backward of call %d without a training forward", call);
    float *dmc = calloc((size_t)(B * C), sizeof(float)), *dlog = malloc(sizeof(float) * (size_t)(B * P));
    float *dp = calloc((size_t)(B * P * 2), sizeof(float)), *split = calloc((size_t)(2 * B * C), sizeof(float));
    float *din = malloc(sizeof(float) * (size_t)(B * C)), *scratch = malloc(sizeof(float) * (size_t)(B * h));
    if (!dmc || !dlog || !dp || !split || !din || !scratch) {
        free(dmc); free(dlog); free(dp); free(split); free(din); free(scratch);
        return fail(e, LTH4SA_ERR_OUT_OF_MEMORY, "cbam: out of memory");
    }
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
    const float *w = s->value[SW];
    for (int64_t b = 0; b < B; b++)
        for (int64_t y = 0; y < H; y++)
            for (int64_t xx = 0; xx < W; xx++) {
                const float g = dlog[b * P + y * W + xx];
                s->grad[SB][0] += g;
                for (int ky = 0; ky < K; ky++) {
                    int64_t iy = y + ky - PAD;
                    if (iy < 0 || iy >= H) continue;
                    for (int kx = 0; kx < K; kx++) {
                        int64_t ix = xx + kx - PAD;
                        if (ix < 0 || ix >= W) continue;
                        const int64_t at = (b * P + iy * W + ix) * 2;
                        s->grad[SW][ky * K + kx] += g * pm[at];
                        s->grad[SW][K * K + ky * K + kx] += g * pm[at + 1];
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
    mlp_backward(s, split, ha, dmc, B, din, scratch);
    for (int64_t b = 0; b < B; b++) memcpy(dS->data + b * 2 * C, din + b * C, sizeof(float) * (size_t)C);
    mlp_backward(s, split + B * C, hm, dmc, B, din, scratch);
    for (int64_t b = 0; b < B; b++) memcpy(dS->data + b * 2 * C + C, din + b * C, sizeof(float) * (size_t)C);
    free(dmc); free(dlog); free(dp); free(split); free(din); free(scratch);
    return LTH4SA_OK;
}

static const lth4sa_sam_api_t api = {
    sizeof(lth4sa_sam_api_t), 0, create, destroy, param_count, param_info, bind, layout,
    extract, extract_backward, process, process_backward, NULL, NULL};

static const lth4sa_descriptor_t *get_descriptor(uint32_t i) { return i == 0 ? &descriptor : NULL; }

static const void *factory(uint32_t i, const char *id) { return (i == 0 && strcmp(id, LTH4SA_SAM_INTERFACE) == 0) ? &api : NULL; }

static const lth4sa_plugin_entry_t entry = {sizeof(lth4sa_plugin_entry_t), LTH4SA_ABI_VERSION, 1, 0, get_descriptor, factory};

LTH4SA_EXPORT const lth4sa_plugin_entry_t *lth4sa_plugin_entry(void) { return &entry; }
