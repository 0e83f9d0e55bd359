/* GC: the global context block of GCNet (Cao et al.), an additive SAM.
 *   extract:  logits_i = <F_i, w_k> + b_k;  p = softmax over the H*W pixels;
 *             S = context = sum_i p_i F_i                               [B, C]
 *   process:  t = W1 S + b1 [B, C/r];  LayerNorm over the C/r features (gamma, beta);  ReLU;
 *             A = W2 (.) + b2                                           [B, 1, 1, C]
 *   recalibrate (host default, add): F' = F + A
 * Parameters (mmcv ContextBlock names and shapes): conv_mask.weight [1, C, 1, 1],
 * conv_mask.bias [1], channel_add_conv.0.weight [C/r, C, 1, 1], channel_add_conv.0.bias,
 * channel_add_conv.1.weight / .bias [C/r, 1, 1] (LayerNorm), channel_add_conv.3.weight
 * [C, C/r, 1, 1], channel_add_conv.3.bias [C]; the last conv starts at zero (F' = F). */
#include <lth4sa/helpers.h>

static const lth4sa_option_t gc_options[] = {
    {.name = "reduction", .type = LTH4SA_OPTION_INT, .default_value = 16, .min_value = 1, .max_value = 1024, .doc = "bottleneck ratio r of the transform (hidden = C / r)"},
};

static const lth4sa_descriptor_t gc_descriptor = {
    .struct_size = sizeof(lth4sa_descriptor_t),
    .kind = LTH4SA_KIND_SAM,
    .id = "gc",
    .name = "Global Context block",
    .version = "1.0.0",
    .description = "softmax-pooled global context through a LayerNorm bottleneck, added to every pixel",
    .license = "MIT",
    .option_count = 1,
    .options = gc_options,
    .flags = LTH4SA_PLUGIN_CONCURRENT_INSTANCES}; /* no state outside its instances */

enum { MASK_W, MASK_B, T1_W, T1_B, LN_G, LN_B, T2_W, T2_B, PARAMS };
enum { SAVE_P, SAVE_S, SAVE_XHAT, SAVE_INVSTD, SAVE_R };
static const float LN_EPS = 1e-5f;

typedef struct gc {
    lth4sa_sam_base_t base; /* first: host, channels, parameters, saved contexts */
    int64_t hidden;
} gc_t;

static void declare4(lth4sa_param_t *p, const char *name, int32_t ndim, int64_t a, int64_t b, int64_t c, int64_t d, int32_t init, double fan) {
    lth4sa_declare(p, name, ndim, a, b, init, fan, 0);
    p->shape[2] = c;
    p->shape[3] = d;
}

static lth4sa_status_t gc_create(const lth4sa_host_t *host, int64_t channels, const lth4sa_option_value_t *options, uint32_t count,
                                 void **instance, lth4sa_error_t *error) {
    int64_t r = (int64_t)lth4sa_option(options, count, "reduction", 16);
    if (channels < 1 || channels / r < 1)
        return lth4sa_fail(error, LTH4SA_ERR_UNSUPPORTED, "gc: %lld channels with reduction %lld leave no hidden unit", (long long)channels, (long long)r);
    gc_t *s = lth4sa_base_new(sizeof(gc_t), host, "gc", channels, PARAMS);
    if (!s) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "gc: out of memory");
    s->hidden = channels / r;
    const int64_t C = channels, h = s->hidden;
    declare4(&s->base.declared[MASK_W], "conv_mask.weight", 4, 1, C, 1, 1, LTH4SA_INIT_LINEAR, (double)C);
    declare4(&s->base.declared[MASK_B], "conv_mask.bias", 1, 1, 0, 0, 0, LTH4SA_INIT_LINEAR, (double)C);
    declare4(&s->base.declared[T1_W], "channel_add_conv.0.weight", 4, h, C, 1, 1, LTH4SA_INIT_LINEAR, (double)C);
    declare4(&s->base.declared[T1_B], "channel_add_conv.0.bias", 1, h, 0, 0, 0, LTH4SA_INIT_LINEAR, (double)C);
    declare4(&s->base.declared[LN_G], "channel_add_conv.1.weight", 3, h, 1, 1, 0, LTH4SA_INIT_ONES, 0);
    declare4(&s->base.declared[LN_B], "channel_add_conv.1.bias", 3, h, 1, 1, 0, LTH4SA_INIT_ZEROS, 0);
    declare4(&s->base.declared[T2_W], "channel_add_conv.3.weight", 4, C, h, 1, 1, LTH4SA_INIT_ZEROS, 0);
    declare4(&s->base.declared[T2_B], "channel_add_conv.3.bias", 1, C, 0, 0, 0, LTH4SA_INIT_ZEROS, 0);
    *instance = s;
    return LTH4SA_OK;
}

static lth4sa_status_t gc_layout(void *instance, const lth4sa_tensor_t *input, lth4sa_sam_layout_t *out, lth4sa_error_t *error) {
    return lth4sa_base_layout(instance, input, LTH4SA_COMBINE_ADD, 0, out, error);
}

enum { WORK_P, WORK_DP, WORK_FORWARD, WORK_DR };

/* Everything extract, process and their backward use, for `calls` slots of up to B images of
 * H x W. */
static lth4sa_status_t gc_prepare(void *instance, int32_t calls, int64_t B, int64_t H, int64_t W, lth4sa_error_t *error) {
    gc_t *s = instance;
    const int64_t P = H * W, C = s->base.channels, h = s->hidden;
    lth4sa_saved_t *saved = &s->base.saved;
    lth4sa_scratch_t *work = &s->base.scratch;
    if (!lth4sa_saved_reserve(saved, calls, SAVE_P, B * P) || !lth4sa_saved_reserve(saved, calls, SAVE_S, B * C) ||
        !lth4sa_saved_reserve(saved, calls, SAVE_XHAT, B * h) || !lth4sa_saved_reserve(saved, calls, SAVE_INVSTD, B) ||
        !lth4sa_saved_reserve(saved, calls, SAVE_R, B * h) || !lth4sa_scratch_get(work, WORK_P, B * P) ||
        !lth4sa_scratch_get(work, WORK_DP, P) || !lth4sa_scratch_get(work, WORK_FORWARD, 2 * B * h + B) ||
        !lth4sa_scratch_get(work, WORK_DR, B * h))
        return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "gc: out of memory preparing for %lld images of %lldx%lld", (long long)B,
                           (long long)H, (long long)W);
    return LTH4SA_OK;
}

/* softmax attention pooling over pixels */
static lth4sa_status_t gc_extract(void *instance, int32_t call, const lth4sa_tensor_t *input, lth4sa_tensor_t *extracted,
                                  int32_t training, lth4sa_error_t *error) {
    gc_t *s = instance;
    const int64_t B = input->shape[0], P = input->shape[1] * input->shape[2], C = s->base.channels;
    float *p = training ? lth4sa_saved_get(&s->base.saved, call, SAVE_P, B * P) : lth4sa_scratch_get(&s->base.scratch, WORK_P, B * P);
    if (!p) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "gc: out of memory");
    const float *w = s->base.value[MASK_W];
    for (int64_t b = 0; b < B; b++) {
        float *pb = p + b * P, *ctx = extracted->data + b * C;
        float mx = -INFINITY;
        for (int64_t i = 0; i < P; i++) {
            const float *f = input->data + (b * P + i) * C;
            float l = s->base.value[MASK_B][0];
            for (int64_t c = 0; c < C; c++) l += f[c] * w[c];
            pb[i] = l;
            if (l > mx) mx = l;
        }
        double z = 0;
        for (int64_t i = 0; i < P; i++) { pb[i] = expf(pb[i] - mx); z += pb[i]; }
        for (int64_t i = 0; i < P; i++) pb[i] = (float)(pb[i] / z);
        memset(ctx, 0, sizeof(float) * (size_t)C);
        for (int64_t i = 0; i < P; i++) {
            const float *f = input->data + (b * P + i) * C;
            for (int64_t c = 0; c < C; c++) ctx[c] += pb[i] * f[c];
        }
    }
    return LTH4SA_OK;
}

/* dF_i += p_i dS;  dp_i = <dS, F_i>;  dlogit_i = p_i (dp_i - sum_j p_j dp_j);  dF_i += dlogit_i w;
 * dw += sum_i dlogit_i F_i;  db += sum_i dlogit_i */
static lth4sa_status_t gc_extract_backward(void *instance, int32_t call, const lth4sa_tensor_t *input, const lth4sa_tensor_t *d_extracted,
                                           lth4sa_tensor_t *d_input, lth4sa_error_t *error) {
    gc_t *s = instance;
    const int64_t B = input->shape[0], P = input->shape[1] * input->shape[2], C = s->base.channels;
    float *p = lth4sa_saved_peek(&s->base.saved, call, SAVE_P);
    if (!p) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "gc: backward of call %d without a training forward", call);
    float *dp = lth4sa_scratch_get(&s->base.scratch, WORK_DP, P);
    if (!dp) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "gc: out of memory");
    const float *w = s->base.value[MASK_W];
    for (int64_t b = 0; b < B; b++) {
        const float *ds = d_extracted->data + b * C, *pb = p + b * P;
        double mean = 0;
        for (int64_t i = 0; i < P; i++) {
            const float *f = input->data + (b * P + i) * C;
            float acc = 0;
            for (int64_t c = 0; c < C; c++) acc += ds[c] * f[c];
            dp[i] = acc;
            mean += (double)pb[i] * acc;
        }
        for (int64_t i = 0; i < P; i++) {
            const float *f = input->data + (b * P + i) * C;
            float *d = d_input->data + (b * P + i) * C;
            const float dl = pb[i] * (dp[i] - (float)mean);
            s->base.grad[MASK_B][0] += dl;
            for (int64_t c = 0; c < C; c++) {
                d[c] += pb[i] * ds[c] + dl * w[c];
                s->base.grad[MASK_W][c] += dl * f[c];
            }
        }
    }
    return LTH4SA_OK;
}

static lth4sa_status_t gc_process(void *instance, int32_t call, const lth4sa_tensor_t *input, const lth4sa_tensor_t *extracted,
                                  const lth4sa_tensor_t *state_in, lth4sa_tensor_t *attention, lth4sa_tensor_t *state_out,
                                  int32_t training, lth4sa_error_t *error) {
    (void)input; (void)state_in; (void)state_out;
    gc_t *s = instance;
    const int64_t B = extracted->shape[0], C = s->base.channels, h = s->hidden;
    float *xhat, *invstd, *r;
    if (training) {
        float *S = lth4sa_saved_get(&s->base.saved, call, SAVE_S, B * C);
        xhat = lth4sa_saved_get(&s->base.saved, call, SAVE_XHAT, B * h);
        invstd = lth4sa_saved_get(&s->base.saved, call, SAVE_INVSTD, B);
        r = lth4sa_saved_get(&s->base.saved, call, SAVE_R, B * h);
        if (!S || !xhat || !invstd || !r) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "gc: out of memory");
        memcpy(S, extracted->data, sizeof(float) * (size_t)(B * C));
    } else {
        float *tmp = lth4sa_scratch_get(&s->base.scratch, WORK_FORWARD, 2 * B * h + B);
        if (!tmp) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "gc: out of memory");
        xhat = tmp; r = tmp + B * h; invstd = tmp + 2 * B * h;
    }
    for (int64_t b = 0; b < B; b++) memcpy(xhat + b * h, s->base.value[T1_B], sizeof(float) * (size_t)h);
    s->base.host->gemm(s->base.host->context, 0, 1, B, h, C, 1, extracted->data, s->base.value[T1_W], 1, xhat);
    for (int64_t b = 0; b < B; b++) {
        float *t = xhat + b * h;
        double mean = 0, var = 0;
        for (int64_t j = 0; j < h; j++) mean += t[j];
        mean /= (double)h;
        for (int64_t j = 0; j < h; j++) var += (t[j] - mean) * (t[j] - mean);
        var /= (double)h;
        const float is = (float)(1.0 / sqrt(var + LN_EPS));
        invstd[b] = is;
        for (int64_t j = 0; j < h; j++) {
            t[j] = (float)((t[j] - mean) * is);
            const float y = t[j] * s->base.value[LN_G][j] + s->base.value[LN_B][j];
            r[b * h + j] = y > 0 ? y : 0;
        }
    }
    float *A = attention->data;
    for (int64_t b = 0; b < B; b++) memcpy(A + b * C, s->base.value[T2_B], sizeof(float) * (size_t)C);
    s->base.host->gemm(s->base.host->context, 0, 1, B, C, h, 1, r, s->base.value[T2_W], 1, A);
    return LTH4SA_OK;
}

static lth4sa_status_t gc_process_backward(void *instance, int32_t call, const lth4sa_tensor_t *input, const lth4sa_tensor_t *extracted,
                                           const lth4sa_tensor_t *d_attention, const lth4sa_tensor_t *d_state_out,
                                           lth4sa_tensor_t *d_extracted, lth4sa_tensor_t *d_state_in, lth4sa_tensor_t *d_input,
                                           lth4sa_error_t *error) {
    (void)input; (void)extracted; (void)d_state_out; (void)d_state_in; (void)d_input;
    gc_t *s = instance;
    const int64_t B = d_attention->shape[0], C = s->base.channels, h = s->hidden;
    float *S = lth4sa_saved_peek(&s->base.saved, call, SAVE_S), *xhat = lth4sa_saved_peek(&s->base.saved, call, SAVE_XHAT);
    float *invstd = lth4sa_saved_peek(&s->base.saved, call, SAVE_INVSTD), *r = lth4sa_saved_peek(&s->base.saved, call, SAVE_R);
    if (!S || !xhat || !invstd || !r) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "gc: backward of call %d without a training forward", call);
    float *dr = lth4sa_scratch_get(&s->base.scratch, WORK_DR, B * h);
    if (!dr) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "gc: out of memory");
    const float *dA = d_attention->data;
    s->base.host->gemm(s->base.host->context, 1, 0, C, h, B, 1, dA, r, 1, s->base.grad[T2_W]);
    for (int64_t b = 0; b < B; b++) for (int64_t c = 0; c < C; c++) s->base.grad[T2_B][c] += dA[b * C + c];
    s->base.host->gemm(s->base.host->context, 0, 0, B, h, C, 1, dA, s->base.value[T2_W], 0, dr);
    for (int64_t b = 0; b < B; b++) {
        float *d = dr + b * h;
        const float *xh = xhat + b * h;
        double sum = 0, sumx = 0;
        for (int64_t j = 0; j < h; j++) {
            if (r[b * h + j] <= 0) d[j] = 0;                 /* ReLU */
            s->base.grad[LN_G][j] += d[j] * xh[j];
            s->base.grad[LN_B][j] += d[j];
            d[j] *= s->base.value[LN_G][j];                        /* d xhat */
            sum += d[j];
            sumx += (double)d[j] * xh[j];
        }
        for (int64_t j = 0; j < h; j++)                       /* LayerNorm backward */
            d[j] = (float)(invstd[b] * (d[j] - sum / (double)h - xh[j] * sumx / (double)h));
    }
    s->base.host->gemm(s->base.host->context, 1, 0, h, C, B, 1, dr, S, 1, s->base.grad[T1_W]);
    for (int64_t b = 0; b < B; b++) for (int64_t j = 0; j < h; j++) s->base.grad[T1_B][j] += dr[b * h + j];
    s->base.host->gemm(s->base.host->context, 0, 0, B, C, h, 1, dr, s->base.value[T1_W], 0, d_extracted->data);
    return LTH4SA_OK;
}

static const lth4sa_sam_api_t gc_api = {
    .struct_size = sizeof(lth4sa_sam_api_t),
    .create = gc_create,
    .destroy = lth4sa_base_destroy,
    .param_count = lth4sa_base_param_count,
    .param_info = lth4sa_base_param_info,
    .bind = lth4sa_base_bind,
    .layout = gc_layout,
    .extract = gc_extract,
    .extract_backward = gc_extract_backward,
    .process = gc_process,
    .process_backward = gc_process_backward,
    .prepare = gc_prepare,
    .allocations = lth4sa_base_allocations};

LTH4SA_SINGLE_SAM_ENTRY(gc_descriptor, gc_api)
