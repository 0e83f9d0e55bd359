/* Coordinate attention (Hou, Zhou and Feng, CVPR 2021), as in the authors' CoordAtt module:
 *   S = [pool over W (one row per y) ; pool over H (one row per x)]    [B, H+W, C]  (extract)
 *   Y = S W1^T + b1                                                    [B, H+W, M]  (conv1, 1x1)
 *   Z = BN(Y) (statistics over B x (H+W), running statistics at inference)          (bn1)
 *   U = Z * relu6(Z + 3) / 6                                                        (h_swish)
 *   a_h = sigmoid(U[:, :H] W_h^T + b_h) [B, H, C];  a_w = sigmoid(U[:, H:] W_w^T + b_w) [B, W, C]
 *   A[b, y, x, c] = a_h[b, y, c] a_w[b, x, c];  F' = F * A (host default recalibrate)
 * with M = max(min_hidden, C / reduction) (the paper: max(8, C / 32)).
 * Parameters (PyTorch names, nn.Conv2d 1x1 and nn.BatchNorm2d): conv1.weight [M, C, 1, 1],
 * conv1.bias [M], bn1.weight [M], bn1.bias [M], conv_h.weight [C, M, 1, 1], conv_h.bias [C],
 * conv_w.weight [C, M, 1, 1], conv_w.bias [C]. Buffers: bn1.running_mean [M],
 * bn1.running_var [M], bn1.num_batches_tracked (a counter): updated once per training call
 * (momentum 0.1, unbiased variance), as PyTorch's module is at each call. */
#include <lth4sa/helpers.h>

static const lth4sa_option_t coordatt_options[] = {
    {.name = "reduction", .type = LTH4SA_OPTION_INT, .default_value = 32, .min_value = 1, .max_value = 4096, .doc = "hidden channels M = max(min_hidden, C / reduction)"},
    {.name = "min_hidden", .type = LTH4SA_OPTION_INT, .default_value = 8, .min_value = 1, .max_value = 4096, .doc = "the fewest hidden channels"},
};

static const lth4sa_descriptor_t coordatt_descriptor = {
    .struct_size = sizeof(lth4sa_descriptor_t),
    .kind = LTH4SA_KIND_SAM,
    .id = "coordatt",
    .name = "Coordinate Attention",
    .version = "1.0.0",
    .description = "pools along height and width separately; F * a_h(y, c) * a_w(x, c) from a shared 1x1 conv, batch norm and h-swish",
    .license = "MIT",
    .option_count = 2,
    .options = coordatt_options,
    .flags = LTH4SA_PLUGIN_CONCURRENT_INSTANCES}; /* no state outside its instances */

enum { CONV1_W, CONV1_B, BN_W, BN_B, CONVH_W, CONVH_B, CONVW_W, CONVW_B, PARAMS };
enum { RUNNING_MEAN, RUNNING_VAR, BATCHES_TRACKED, BUFFERS };
/* saved per call slot for backward */
enum { SAVE_XHAT, SAVE_Z, SAVE_U, SAVE_AH, SAVE_AW, SAVE_INVSTD };
/* work buffers: the inference forward's intermediates and the backward's gradients */
enum { WORK_XHAT, WORK_Z, WORK_U, WORK_AH, WORK_AW, WORK_DAH, WORK_DAW, WORK_DU, WORK_STAT };

#define BN_EPS 1e-5f
#define BN_MOMENTUM 0.1f

typedef struct coordatt {
    lth4sa_sam_base_t base; /* first: host, channels, parameters, buffers, saved contexts */
    int64_t hidden;         /* M */
} coordatt_t;

static lth4sa_status_t coordatt_create(const lth4sa_host_t *host, int64_t channels, const lth4sa_option_value_t *options, uint32_t count,
                                       void **instance, lth4sa_error_t *error) {
    if (channels < 1) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "coordatt: channels must be positive, got %lld", (long long)channels);
    const int64_t reduction = (int64_t)lth4sa_option(options, count, "reduction", 32), least = (int64_t)lth4sa_option(options, count, "min_hidden", 8);
    if (reduction < 1 || least < 1) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "coordatt: reduction and min_hidden must be positive");
    coordatt_t *s = lth4sa_base_new(sizeof(coordatt_t), host, "coordatt", channels, PARAMS);
    if (!s) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "coordatt: out of memory");
    const int64_t C = channels, M = channels / reduction > least ? channels / reduction : least;
    s->hidden = M;
    lth4sa_param_t *p = s->base.declared;
    /* PyTorch's Conv2d default: weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)); BatchNorm2d: ones, zeros */
    lth4sa_declare4(&p[CONV1_W], "conv1.weight", M, C, 1, 1, LTH4SA_INIT_LINEAR, (double)C, 0);
    lth4sa_declare(&p[CONV1_B], "conv1.bias", 1, M, 0, LTH4SA_INIT_LINEAR, (double)C, 0);
    lth4sa_declare(&p[BN_W], "bn1.weight", 1, M, 0, LTH4SA_INIT_ONES, 0, 0);
    lth4sa_declare(&p[BN_B], "bn1.bias", 1, M, 0, LTH4SA_INIT_ZEROS, 0, 0);
    lth4sa_declare4(&p[CONVH_W], "conv_h.weight", C, M, 1, 1, LTH4SA_INIT_LINEAR, (double)M, 0);
    lth4sa_declare(&p[CONVH_B], "conv_h.bias", 1, C, 0, LTH4SA_INIT_LINEAR, (double)M, 0);
    lth4sa_declare4(&p[CONVW_W], "conv_w.weight", C, M, 1, 1, LTH4SA_INIT_LINEAR, (double)M, 0);
    lth4sa_declare(&p[CONVW_B], "conv_w.bias", 1, C, 0, LTH4SA_INIT_LINEAR, (double)M, 0);
    lth4sa_param_t *b = s->base.declared_buffers;
    s->base.buffer_count = BUFFERS;
    lth4sa_declare(&b[RUNNING_MEAN], "bn1.running_mean", 1, M, 0, LTH4SA_INIT_ZEROS, 0, 0);
    lth4sa_declare(&b[RUNNING_VAR], "bn1.running_var", 1, M, 0, LTH4SA_INIT_ONES, 0, 0);
    lth4sa_declare(&b[BATCHES_TRACKED], "bn1.num_batches_tracked", 0, 0, 0, LTH4SA_INIT_COUNTER, 0, 0); /* a scalar, like PyTorch's */
    *instance = s;
    return LTH4SA_OK;
}

/* S = [B, H+W, C], A = [B, H, W, C] (multiplied into F by the host). */
static lth4sa_status_t coordatt_layout(void *instance, const lth4sa_tensor_t *input, lth4sa_sam_layout_t *out, lth4sa_error_t *error) {
    const lth4sa_status_t status = lth4sa_base_layout(instance, input, LTH4SA_COMBINE_MULTIPLY, ((coordatt_t *)instance)->base.channels, out, error);
    if (status != LTH4SA_OK) return status;
    out->extract_ndim = 3;
    out->extract_shape[1] = input->shape[1] + input->shape[2];
    out->extract_shape[2] = input->shape[3];
    return LTH4SA_OK;
}

static lth4sa_status_t coordatt_prepare(void *instance, int32_t calls, int64_t B, int64_t H, int64_t W, lth4sa_error_t *error) {
    coordatt_t *s = instance;
    const int64_t C = s->base.channels, M = s->hidden, rows = B * (H + W) * M;
    const int64_t sizes[] = {[SAVE_XHAT] = rows, [SAVE_Z] = rows, [SAVE_U] = rows, [SAVE_AH] = B * H * C, [SAVE_AW] = B * W * C, [SAVE_INVSTD] = M};
    for (int32_t k = 0; k <= SAVE_INVSTD; k++)
        if (!lth4sa_saved_reserve(&s->base.saved, calls, k, sizes[k])) goto oom;
    const int64_t work[] = {[WORK_XHAT] = rows, [WORK_Z] = rows, [WORK_U] = rows, [WORK_AH] = B * H * C, [WORK_AW] = B * W * C,
                            [WORK_DAH] = B * H * C, [WORK_DAW] = B * W * C, [WORK_DU] = rows, [WORK_STAT] = 3 * M};
    for (int32_t k = 0; k <= WORK_STAT; k++)
        if (!lth4sa_scratch_get(&s->base.scratch, k, work[k])) goto oom;
    return LTH4SA_OK;
oom:
    return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "coordatt: out of memory preparing for %lld images of %lldx%lld", (long long)B, (long long)H, (long long)W);
}

/* ---- extract: directional pooling, one image per parallel task ---------------------------- */

typedef struct pooling_task {
    const float *f; /* F [B, H, W, C] */
    float *s;       /* S [B, H+W, C] */
    int64_t H, W, C;
} pooling_task_t;

/* S[b, y] = mean_x F[b, y, x];  S[b, H + x] = mean_y F[b, y, x] */
static void pool_image(void *arg, int64_t b) {
    const pooling_task_t *t = arg;
    const int64_t H = t->H, W = t->W, C = t->C;
    const float *f = t->f + b * H * W * C;
    float *sh = t->s + b * (H + W) * C, *sw = sh + H * C;
    memset(sh, 0, sizeof(float) * (size_t)((H + W) * C));
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++)
            for (int64_t c = 0; c < C; c++) {
                const float v = f[(y * W + x) * C + c];
                sh[y * C + c] += v;
                sw[x * C + c] += v;
            }
    for (int64_t i = 0; i < H * C; i++) sh[i] /= (float)W;
    for (int64_t i = 0; i < W * C; i++) sw[i] /= (float)H;
}

static lth4sa_status_t coordatt_extract(void *instance, int32_t call, const lth4sa_tensor_t *input, lth4sa_tensor_t *extracted, int32_t training,
                                        lth4sa_error_t *error) {
    (void)call; (void)training; (void)error;
    coordatt_t *s = instance;
    pooling_task_t task = {.f = input->data, .s = extracted->data, .H = input->shape[1], .W = input->shape[2], .C = s->base.channels};
    s->base.host->parallel_for(s->base.host->context, input->shape[0], pool_image, &task);
    return LTH4SA_OK;
}

/* dF[b, y, x] += dS[b, y] / W + dS[b, H + x] / H */
typedef struct unpooling_task {
    const float *ds;
    float *df;
    int64_t H, W, C;
} unpooling_task_t;

static void unpool_image(void *arg, int64_t b) {
    const unpooling_task_t *t = arg;
    const int64_t H = t->H, W = t->W, C = t->C;
    const float *dh = t->ds + b * (H + W) * C, *dw = dh + H * C;
    float *df = t->df + b * H * W * C;
    const float inv_w = 1.0f / (float)W, inv_h = 1.0f / (float)H;
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++)
            for (int64_t c = 0; c < C; c++) df[(y * W + x) * C + c] += dh[y * C + c] * inv_w + dw[x * C + c] * inv_h;
}

static lth4sa_status_t coordatt_extract_backward(void *instance, int32_t call, const lth4sa_tensor_t *input, const lth4sa_tensor_t *d_extracted,
                                                 lth4sa_tensor_t *d_input, lth4sa_error_t *error) {
    (void)call; (void)error;
    coordatt_t *s = instance;
    unpooling_task_t task = {.ds = d_extracted->data, .df = d_input->data, .H = input->shape[1], .W = input->shape[2], .C = s->base.channels};
    s->base.host->parallel_for(s->base.host->context, input->shape[0], unpool_image, &task);
    return LTH4SA_OK;
}

/* ---- the attention map A = a_h (x) a_w and its backward, one image per task ------------------ */

typedef struct outer_task {
    const float *ah, *aw; /* [B, H, C], [B, W, C] */
    const float *da;      /* dA [B, H, W, C] (backward) */
    float *a;             /* A [B, H, W, C] (forward) */
    float *dah, *daw;     /* d a_h, d a_w (backward) */
    int64_t H, W, C;
} outer_task_t;

static void outer_image(void *arg, int64_t b) {
    const outer_task_t *t = arg;
    const int64_t H = t->H, W = t->W, C = t->C;
    const float *ah = t->ah + b * H * C, *aw = t->aw + b * W * C;
    float *a = t->a + b * H * W * C;
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++)
            for (int64_t c = 0; c < C; c++) a[(y * W + x) * C + c] = ah[y * C + c] * aw[x * C + c];
}

/* d a_h[y] = sum_x dA[y, x] a_w[x];  d a_w[x] = sum_y dA[y, x] a_h[y] */
static void outer_backward_image(void *arg, int64_t b) {
    const outer_task_t *t = arg;
    const int64_t H = t->H, W = t->W, C = t->C;
    const float *ah = t->ah + b * H * C, *aw = t->aw + b * W * C, *da = t->da + b * H * W * C;
    float *dah = t->dah + b * H * C, *daw = t->daw + b * W * C;
    memset(dah, 0, sizeof(float) * (size_t)(H * C));
    memset(daw, 0, sizeof(float) * (size_t)(W * C));
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++)
            for (int64_t c = 0; c < C; c++) {
                const float g = da[(y * W + x) * C + c];
                dah[y * C + c] += g * aw[x * C + c];
                daw[x * C + c] += g * ah[y * C + c];
            }
}

/* ---- process ----------------------------------------------------------------------------- */

static float relu6(float x) { return x < 0 ? 0 : (x > 6 ? 6 : x); }

/* out[b] rows = sigmoid(U rows of image b (count `rows`, starting at row `first`) W^T + bias) */
static void attention_rows(const lth4sa_host_t *host, const float *u, int64_t B, int64_t L, int64_t first, int64_t rows, int64_t M, int64_t C,
                           const float *w, const float *bias, float *out) {
    for (int64_t b = 0; b < B; b++) {
        float *o = out + b * rows * C;
        for (int64_t r = 0; r < rows; r++) memcpy(o + r * C, bias, sizeof(float) * (size_t)C);
        host->gemm(host->context, 0, 1, rows, C, M, 1.0f, u + (b * L + first) * M, w, 1.0f, o);
    }
    for (int64_t i = 0; i < B * rows * C; i++) out[i] = lth4sa_sigmoid(out[i]);
}

static lth4sa_status_t coordatt_process(void *instance, int32_t call, const lth4sa_tensor_t *input, const lth4sa_tensor_t *extracted,
                                        const lth4sa_tensor_t *state_in, lth4sa_tensor_t *attention, lth4sa_tensor_t *state_out,
                                        int32_t training, lth4sa_error_t *error) {
    (void)state_in; (void)state_out;
    coordatt_t *s = instance;
    lth4sa_sam_base_t *base = &s->base;
    const lth4sa_host_t *host = base->host;
    const int64_t B = input->shape[0], H = input->shape[1], W = input->shape[2], L = H + W, C = base->channels, M = s->hidden, n = B * L;
    /* training keeps what backward needs in the call's slot; inference works in scratch */
    float *xhat, *z, *u, *ah, *aw, *invstd, *stat = lth4sa_scratch_get(&base->scratch, WORK_STAT, 3 * M);
    if (training) {
        xhat = lth4sa_saved_get(&base->saved, call, SAVE_XHAT, n * M);
        z = lth4sa_saved_get(&base->saved, call, SAVE_Z, n * M);
        u = lth4sa_saved_get(&base->saved, call, SAVE_U, n * M);
        ah = lth4sa_saved_get(&base->saved, call, SAVE_AH, B * H * C);
        aw = lth4sa_saved_get(&base->saved, call, SAVE_AW, B * W * C);
        invstd = lth4sa_saved_get(&base->saved, call, SAVE_INVSTD, M);
    } else {
        xhat = lth4sa_scratch_get(&base->scratch, WORK_XHAT, n * M);
        z = lth4sa_scratch_get(&base->scratch, WORK_Z, n * M);
        u = lth4sa_scratch_get(&base->scratch, WORK_U, n * M);
        ah = lth4sa_scratch_get(&base->scratch, WORK_AH, B * H * C);
        aw = lth4sa_scratch_get(&base->scratch, WORK_AW, B * W * C);
        invstd = stat;
    }
    if (!xhat || !z || !u || !ah || !aw || !invstd || !stat) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "coordatt: out of memory");
    float *mean = stat + M;
    const float *w1 = base->value[CONV1_W], *b1 = base->value[CONV1_B], *gamma = base->value[BN_W], *beta = base->value[BN_B];
    float *running_mean = base->buffer[RUNNING_MEAN], *running_var = base->buffer[RUNNING_VAR];

    /* Y = S W1^T + b1, into xhat (normalised in place below) */
    for (int64_t r = 0; r < n; r++) memcpy(xhat + r * M, b1, sizeof(float) * (size_t)M);
    host->gemm(host->context, 0, 1, n, M, C, 1.0f, extracted->data, w1, 1.0f, xhat);

    /* batch norm over the n = B (H + W) rows: batch statistics in training, running ones otherwise */
    for (int64_t j = 0; j < M; j++) {
        float mu, var;
        if (training) {
            double sum = 0, squares = 0;
            for (int64_t r = 0; r < n; r++) sum += xhat[r * M + j];
            mu = (float)(sum / (double)n);
            for (int64_t r = 0; r < n; r++) {
                const double d = xhat[r * M + j] - mu;
                squares += d * d;
            }
            var = (float)(squares / (double)n);
            running_mean[j] = (1 - BN_MOMENTUM) * running_mean[j] + BN_MOMENTUM * mu;
            running_var[j] = (1 - BN_MOMENTUM) * running_var[j] + BN_MOMENTUM * (float)(squares / (double)(n > 1 ? n - 1 : 1));
        } else {
            mu = running_mean[j];
            var = running_var[j];
        }
        mean[j] = mu;
        invstd[j] = 1.0f / sqrtf(var + BN_EPS);
    }
    if (training) base->buffer[BATCHES_TRACKED][0] += 1;
    for (int64_t r = 0; r < n; r++)
        for (int64_t j = 0; j < M; j++) {
            const int64_t i = r * M + j;
            xhat[i] = (xhat[i] - mean[j]) * invstd[j];
            z[i] = gamma[j] * xhat[i] + beta[j];
            u[i] = z[i] * relu6(z[i] + 3) / 6; /* h_swish */
        }

    attention_rows(host, u, B, L, 0, H, M, C, base->value[CONVH_W], base->value[CONVH_B], ah);
    attention_rows(host, u, B, L, H, W, M, C, base->value[CONVW_W], base->value[CONVW_B], aw);
    outer_task_t task = {.ah = ah, .aw = aw, .a = attention->data, .H = H, .W = W, .C = C};
    host->parallel_for(host->context, B, outer_image, &task);
    return LTH4SA_OK;
}

/* From d a (one direction): dp = da a (1 - a) in place; gW += dp^T U, gb += sum dp, dU rows = dp W. */
static void attention_rows_backward(const lth4sa_host_t *host, const float *u, float *du, int64_t B, int64_t L, int64_t first, int64_t rows,
                                    int64_t M, int64_t C, const float *w, const float *a, float *da, float *gw, float *gb) {
    for (int64_t i = 0; i < B * rows * C; i++) da[i] *= a[i] * (1 - a[i]);
    for (int64_t b = 0; b < B; b++) {
        const float *dp = da + b * rows * C;
        host->gemm(host->context, 1, 0, C, M, rows, 1.0f, dp, u + (b * L + first) * M, 1.0f, gw);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < C; c++) gb[c] += dp[r * C + c];
        host->gemm(host->context, 0, 0, rows, M, C, 1.0f, dp, w, 0.0f, du + (b * L + first) * M);
    }
}

static lth4sa_status_t coordatt_process_backward(void *instance, int32_t call, const lth4sa_tensor_t *input, const lth4sa_tensor_t *extracted,
                                                 const lth4sa_tensor_t *d_attention, const lth4sa_tensor_t *d_state_out,
                                                 lth4sa_tensor_t *d_extracted, lth4sa_tensor_t *d_state_in, lth4sa_tensor_t *d_input,
                                                 lth4sa_error_t *error) {
    (void)d_state_out; (void)d_state_in; (void)d_input;
    coordatt_t *s = instance;
    lth4sa_sam_base_t *base = &s->base;
    const lth4sa_host_t *host = base->host;
    const int64_t B = input->shape[0], H = input->shape[1], W = input->shape[2], L = H + W, C = base->channels, M = s->hidden, n = B * L;
    const float *xhat = lth4sa_saved_peek(&base->saved, call, SAVE_XHAT), *z = lth4sa_saved_peek(&base->saved, call, SAVE_Z),
                *u = lth4sa_saved_peek(&base->saved, call, SAVE_U), *ah = lth4sa_saved_peek(&base->saved, call, SAVE_AH),
                *aw = lth4sa_saved_peek(&base->saved, call, SAVE_AW), *invstd = lth4sa_saved_peek(&base->saved, call, SAVE_INVSTD);
    if (!xhat || !z || !u || !ah || !aw || !invstd)
        return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "coordatt: backward of call %d without a training forward", call);
    float *dah = lth4sa_scratch_get(&base->scratch, WORK_DAH, B * H * C), *daw = lth4sa_scratch_get(&base->scratch, WORK_DAW, B * W * C),
          *du = lth4sa_scratch_get(&base->scratch, WORK_DU, n * M), *sums = lth4sa_scratch_get(&base->scratch, WORK_STAT, 3 * M);
    if (!dah || !daw || !du || !sums) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "coordatt: out of memory");

    outer_task_t task = {.ah = ah, .aw = aw, .da = d_attention->data, .dah = dah, .daw = daw, .H = H, .W = W, .C = C};
    host->parallel_for(host->context, B, outer_backward_image, &task);
    attention_rows_backward(host, u, du, B, L, 0, H, M, C, base->value[CONVH_W], ah, dah, base->grad[CONVH_W], base->grad[CONVH_B]);
    attention_rows_backward(host, u, du, B, L, H, W, M, C, base->value[CONVW_W], aw, daw, base->grad[CONVW_W], base->grad[CONVW_B]);

    /* dZ = dU h_swish'(Z) (in place in du): 0 below -3, 1 above 3, (2z + 3) / 6 between */
    for (int64_t i = 0; i < n * M; i++) du[i] *= z[i] <= -3 ? 0 : (z[i] >= 3 ? 1 : (2 * z[i] + 3) / 6);
    /* batch norm (training): d beta = sum dZ, d gamma = sum dZ xhat,
     * dY = gamma invstd / n (n dZ - sum dZ - xhat sum dZ xhat) (in place in du) */
    const float *gamma = base->value[BN_W];
    float *sum_dz = sums, *sum_dz_xhat = sums + M;
    for (int64_t j = 0; j < M; j++) sum_dz[j] = sum_dz_xhat[j] = 0;
    for (int64_t r = 0; r < n; r++)
        for (int64_t j = 0; j < M; j++) {
            sum_dz[j] += du[r * M + j];
            sum_dz_xhat[j] += du[r * M + j] * xhat[r * M + j];
        }
    for (int64_t j = 0; j < M; j++) {
        base->grad[BN_B][j] += sum_dz[j];
        base->grad[BN_W][j] += sum_dz_xhat[j];
    }
    for (int64_t r = 0; r < n; r++)
        for (int64_t j = 0; j < M; j++) {
            const int64_t i = r * M + j;
            du[i] = gamma[j] * invstd[j] * (du[i] - (sum_dz[j] + xhat[i] * sum_dz_xhat[j]) / (float)n);
        }
    /* conv1: gW1 += dY^T S, gb1 += sum dY, dS = dY W1 */
    host->gemm(host->context, 1, 0, M, C, n, 1.0f, du, extracted->data, 1.0f, base->grad[CONV1_W]);
    for (int64_t r = 0; r < n; r++)
        for (int64_t j = 0; j < M; j++) base->grad[CONV1_B][j] += du[r * M + j];
    host->gemm(host->context, 0, 0, n, C, M, 1.0f, du, base->value[CONV1_W], 0.0f, d_extracted->data);
    return LTH4SA_OK;
}

static const lth4sa_sam_api_t coordatt_api = {
    .struct_size = sizeof(lth4sa_sam_api_t),
    .create = coordatt_create,
    .destroy = lth4sa_base_destroy,
    .param_count = lth4sa_base_param_count,
    .param_info = lth4sa_base_param_info,
    .bind = lth4sa_base_bind,
    .layout = coordatt_layout,
    .extract = coordatt_extract,
    .extract_backward = coordatt_extract_backward,
    .process = coordatt_process,
    .process_backward = coordatt_process_backward,
    .prepare = coordatt_prepare,
    .allocations = lth4sa_base_allocations,
    .buffer_count = lth4sa_base_buffer_count,
    .buffer_info = lth4sa_base_buffer_info,
    .bind_buffers = lth4sa_base_bind_buffers};

LTH4SA_SINGLE_SAM_ENTRY(coordatt_descriptor, coordatt_api)
