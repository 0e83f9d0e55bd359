/* SimAM: a simple, parameter-free attention module (Yang et al., ICML 2021).
 *   mu = GAP(F) [B, C] (host default extract);  n = H W - 1
 *   d = (F - mu)^2;  v = sum_hw d / n;  y = d / (4 (v + lambda)) + 1/2;  A = sigmoid(y) [B, H, W, C]
 *   F' = F * A (host default recalibrate)
 * Parameters: none (its cost is time only). A 1x1 map (n = 0) gives y = 1/2 where PyTorch's
 * formula divides 0 by 0. */
#include <lth4sa/helpers.h>

static const lth4sa_option_t simam_options[] = {
    {.name = "lambda", .type = LTH4SA_OPTION_FLOAT, .default_value = 1e-4, .min_value = 1e-12, .max_value = 1e3, .doc = "regulariser lambda of the energy function"},
};

static const lth4sa_descriptor_t simam_descriptor = {
    .struct_size = sizeof(lth4sa_descriptor_t),
    .kind = LTH4SA_KIND_SAM,
    .id = "simam",
    .name = "SimAM",
    .version = "1.0.0",
    .description = "parameter-free 3-D attention: sigmoid of each neuron's inverse energy (its squared distance to the channel mean)",
    .license = "MIT",
    .option_count = 1,
    .options = simam_options,
    .flags = LTH4SA_PLUGIN_CONCURRENT_INSTANCES}; /* no state outside its instances */

enum { WORK_DEN, WORK_G, WORK_DS };

typedef struct simam {
    lth4sa_sam_base_t base; /* first: host, channels, saved contexts (no parameters) */
    double lambda;
} simam_t;

static lth4sa_status_t simam_create(const lth4sa_host_t *host, int64_t channels, const lth4sa_option_value_t *options, uint32_t count,
                                    void **instance, lth4sa_error_t *error) {
    if (channels < 1) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "simam: channels must be positive, got %lld", (long long)channels);
    simam_t *s = lth4sa_base_new(sizeof(simam_t), host, "simam", channels, 0);
    if (!s) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "simam: out of memory");
    s->lambda = lth4sa_option(options, count, "lambda", 1e-4);
    *instance = s;
    return LTH4SA_OK;
}

/* A = [B, H, W, C]: one attention value per neuron. */
static lth4sa_status_t simam_layout(void *instance, const lth4sa_tensor_t *input, lth4sa_sam_layout_t *out, lth4sa_error_t *error) {
    const simam_t *s = instance;
    return lth4sa_base_layout(&s->base, input, LTH4SA_COMBINE_MULTIPLY, s->base.channels, out, error);
}

/* Per-channel work rows of one image: 4 (v + lambda), then the backward sums. Nothing is
 * saved between calls: backward recomputes A from F and mu (the views of the forward call). */
static lth4sa_status_t simam_prepare(void *instance, int32_t calls, int64_t B, int64_t height, int64_t width, lth4sa_error_t *error) {
    (void)calls; (void)B; (void)height; (void)width;
    simam_t *s = instance;
    const int64_t C = s->base.channels;
    if (!lth4sa_scratch_get(&s->base.scratch, WORK_DEN, C) || !lth4sa_scratch_get(&s->base.scratch, WORK_G, C) ||
        !lth4sa_scratch_get(&s->base.scratch, WORK_DS, C))
        return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "simam: out of memory");
    return LTH4SA_OK;
}

/* den[c] = 4 (sum_hw (x - mu)^2 / n + lambda) of image `x` [P, C], P = H W pixels. */
static void simam_denominators(const float *x, const float *mu, int64_t P, int64_t C, double lambda, float *den) {
    for (int64_t c = 0; c < C; c++) den[c] = 0;
    for (int64_t i = 0; i < P; i++) {
        for (int64_t c = 0; c < C; c++) {
            const float d = x[i * C + c] - mu[c];
            den[c] += d * d;
        }
    }
    const float inverse_n = P > 1 ? 1.0f / (float)(P - 1) : 0.0f;
    for (int64_t c = 0; c < C; c++) den[c] = 4.0f * (den[c] * inverse_n + (float)lambda);
}

static lth4sa_status_t simam_process(void *instance, int32_t call, const lth4sa_tensor_t *input, const lth4sa_tensor_t *extracted,
                                     const lth4sa_tensor_t *state_in, lth4sa_tensor_t *attention, lth4sa_tensor_t *state_out,
                                     int32_t training, lth4sa_error_t *error) {
    (void)call; (void)state_in; (void)state_out; (void)training;
    simam_t *s = instance;
    const int64_t B = input->shape[0], P = input->shape[1] * input->shape[2], C = s->base.channels;
    float *den = lth4sa_scratch_get(&s->base.scratch, WORK_DEN, C);
    if (!den) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "simam: out of memory");
    for (int64_t b = 0; b < B; b++) {
        const float *x = input->data + b * P * C, *mu = extracted->data + b * C;
        float *a = attention->data + b * P * C;
        simam_denominators(x, mu, P, C, s->lambda, den);
        for (int64_t i = 0; i < P; i++) {
            for (int64_t c = 0; c < C; c++) {
                const float d = x[i * C + c] - mu[c];
                a[i * C + c] = lth4sa_sigmoid(d * d / den[c] + 0.5f);
            }
        }
    }
    return LTH4SA_OK;
}

/* gy = dA A (1 - A);  G = sum_hw gy d;  gd = gy / den - 4 G / (n den^2);
 * dF += 2 (x - mu) gd;  dmu = -2 sum_hw gd (x - mu) */
static lth4sa_status_t simam_process_backward(void *instance, int32_t call, const lth4sa_tensor_t *input, const lth4sa_tensor_t *extracted,
                                              const lth4sa_tensor_t *d_attention, const lth4sa_tensor_t *d_state_out,
                                              lth4sa_tensor_t *d_extracted, lth4sa_tensor_t *d_state_in, lth4sa_tensor_t *d_input,
                                              lth4sa_error_t *error) {
    (void)call; (void)d_state_out; (void)d_state_in;
    simam_t *s = instance;
    const int64_t B = input->shape[0], P = input->shape[1] * input->shape[2], C = s->base.channels;
    float *den = lth4sa_scratch_get(&s->base.scratch, WORK_DEN, C), *G = lth4sa_scratch_get(&s->base.scratch, WORK_G, C);
    float *dmu = lth4sa_scratch_get(&s->base.scratch, WORK_DS, C);
    if (!den || !G || !dmu) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "simam: out of memory");
    const float inverse_n = P > 1 ? 1.0f / (float)(P - 1) : 0.0f;
    for (int64_t b = 0; b < B; b++) {
        const float *x = input->data + b * P * C, *mu = extracted->data + b * C, *dA = d_attention->data + b * P * C;
        float *dx = d_input->data + b * P * C;
        simam_denominators(x, mu, P, C, s->lambda, den);
        for (int64_t c = 0; c < C; c++) G[c] = dmu[c] = 0;
        for (int64_t i = 0; i < P; i++) {  /* G = sum gy d */
            for (int64_t c = 0; c < C; c++) {
                const float e = x[i * C + c] - mu[c], d = e * e, a = lth4sa_sigmoid(d / den[c] + 0.5f);
                G[c] += dA[i * C + c] * a * (1 - a) * d;
            }
        }
        for (int64_t i = 0; i < P; i++) {
            for (int64_t c = 0; c < C; c++) {
                const float e = x[i * C + c] - mu[c], d = e * e, a = lth4sa_sigmoid(d / den[c] + 0.5f);
                const float gd = dA[i * C + c] * a * (1 - a) / den[c] - 4.0f * G[c] * inverse_n / (den[c] * den[c]);
                dx[i * C + c] += 2.0f * e * gd;
                dmu[c] -= 2.0f * e * gd;
            }
        }
        memcpy(d_extracted->data + b * C, dmu, sizeof(float) * (size_t)C);
    }
    return LTH4SA_OK;
}

static const lth4sa_sam_api_t simam_api = {
    .struct_size = sizeof(lth4sa_sam_api_t),
    .create = simam_create,
    .destroy = lth4sa_base_destroy,
    .param_count = lth4sa_base_param_count,
    .param_info = lth4sa_base_param_info,
    .bind = lth4sa_base_bind,
    .layout = simam_layout,
    .process = simam_process,
    .process_backward = simam_process_backward,
    .prepare = simam_prepare,
    .allocations = lth4sa_base_allocations};

LTH4SA_SINGLE_SAM_ENTRY(simam_descriptor, simam_api)
