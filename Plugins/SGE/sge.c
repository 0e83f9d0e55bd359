/* SGE: Spatial Group-wise Enhance (Li et al.), G groups of C/G channels.
 *   S = GAP(F) [B, C] (host default extract)
 *   per sample b, group g, pixel i:  c_i = <S_g, F_g(i)>;  c' = (c - mean_i c) / (std_i c + 1e-5)
 *   (std unbiased over the H*W pixels);  A[b,i,g] = sigmoid(gamma_g c'_i + beta_g)
 *   F' = F * A, A broadcast over the group's channels (host default recalibrate).
 * Parameters: weight = gamma [G] (init 0), bias = beta [G] (init 1). */
#include <lth4sa/helpers.h>

static const lth4sa_option_t sge_options[] = {
    {.name = "groups", .type = LTH4SA_OPTION_INT, .default_value = 4, .min_value = 1, .max_value = 4096, .doc = "number of channel groups G (C must be divisible by G); 4 for CIFAR, 64 for ImageNet"},
};

static const lth4sa_descriptor_t sge_descriptor = {
    .struct_size = sizeof(lth4sa_descriptor_t),
    .kind = LTH4SA_KIND_SAM,
    .id = "sge",
    .name = "Spatial Group-wise Enhance",
    .version = "1.0.0",
    .description = "spatial attention per channel group from the similarity of each pixel to the group's global feature",
    .license = "MIT",
    .option_count = 1,
    .options = sge_options,
    .flags = LTH4SA_PLUGIN_CONCURRENT_INSTANCES}; /* no state outside its instances */

enum { GAMMA, BETA, PARAMS };
enum { SAVE_NORM, SAVE_STD, SAVE_A };
static const float EPS = 1e-5f;

typedef struct sge {
    lth4sa_sam_base_t base; /* first: host, channels, parameters, saved contexts */
    int64_t groups;
} sge_t;

static lth4sa_status_t sge_create(const lth4sa_host_t *host, int64_t channels, const lth4sa_option_value_t *options, uint32_t count,
                                  void **instance, lth4sa_error_t *error) {
    int64_t g = (int64_t)lth4sa_option(options, count, "groups", 4);
    if (g < 1 || channels % g != 0)
        return lth4sa_fail(error, LTH4SA_ERR_UNSUPPORTED, "sge: %lld channels are not divisible by groups=%lld", (long long)channels, (long long)g);
    sge_t *s = lth4sa_base_new(sizeof(sge_t), host, "sge", channels, PARAMS);
    if (!s) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "sge: out of memory");
    s->groups = g;
    lth4sa_declare(&s->base.declared[GAMMA], "weight", 1, g, 0, LTH4SA_INIT_ZEROS, 0, 0);
    lth4sa_declare(&s->base.declared[BETA], "bias", 1, g, 0, LTH4SA_INIT_ONES, 0, 0);
    *instance = s;
    return LTH4SA_OK;
}

static lth4sa_status_t sge_layout(void *instance, const lth4sa_tensor_t *input, lth4sa_sam_layout_t *out, lth4sa_error_t *error) {
    sge_t *s = instance;
    if (input->ndim == 4 && input->shape[1] * input->shape[2] < 2)
        return lth4sa_fail(error, LTH4SA_ERR_UNSUPPORTED, "sge: needs at least 2 pixels to normalise over, got %lldx%lld",
                           (long long)input->shape[1], (long long)input->shape[2]);
    return lth4sa_base_layout(&s->base, input, LTH4SA_COMBINE_MULTIPLY, s->groups, out, error);
}

enum { WORK_NORM, WORK_STD, WORK_DC };

/* Everything process and backward use, for `calls` slots of up to B images of H x W. */
static lth4sa_status_t sge_prepare(void *instance, int32_t calls, int64_t B, int64_t H, int64_t W, lth4sa_error_t *error) {
    sge_t *s = instance;
    const int64_t P = H * W, G = s->groups;
    lth4sa_saved_t *saved = &s->base.saved;
    lth4sa_scratch_t *work = &s->base.scratch;
    if (!lth4sa_saved_reserve(saved, calls, SAVE_NORM, B * P * G) || !lth4sa_saved_reserve(saved, calls, SAVE_STD, B * G) ||
        !lth4sa_saved_reserve(saved, calls, SAVE_A, B * P * G) || !lth4sa_scratch_get(work, WORK_NORM, B * P * G) ||
        !lth4sa_scratch_get(work, WORK_STD, B * G) || !lth4sa_scratch_get(work, WORK_DC, P))
        return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "sge: out of memory preparing for %lld images of %lldx%lld", (long long)B,
                           (long long)H, (long long)W);
    return LTH4SA_OK;
}

static lth4sa_status_t sge_process(void *instance, int32_t call, const lth4sa_tensor_t *input, const lth4sa_tensor_t *extracted,
                                   const lth4sa_tensor_t *state_in, lth4sa_tensor_t *attention, lth4sa_tensor_t *state_out,
                                   int32_t training, lth4sa_error_t *error) {
    (void)state_in; (void)state_out;
    sge_t *s = instance;
    const int64_t B = input->shape[0], P = input->shape[1] * input->shape[2], C = s->base.channels, G = s->groups, K = C / G;
    float *norm = training ? lth4sa_saved_get(&s->base.saved, call, SAVE_NORM, B * P * G) : lth4sa_scratch_get(&s->base.scratch, WORK_NORM, B * P * G);
    float *stdv = training ? lth4sa_saved_get(&s->base.saved, call, SAVE_STD, B * G) : lth4sa_scratch_get(&s->base.scratch, WORK_STD, B * G);
    if (!norm || !stdv) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "sge: out of memory");
    const float *F = input->data, *S = extracted->data;
    float *A = attention->data;
    for (int64_t b = 0; b < B; b++) {
        for (int64_t g = 0; g < G; g++) {
            const float *sg = S + b * C + g * K;
            double sum = 0, sq = 0;
            for (int64_t i = 0; i < P; i++) {
                const float *f = F + (b * P + i) * C + g * K;
                float c = 0;
                for (int64_t k = 0; k < K; k++) c += sg[k] * f[k];
                norm[(b * P + i) * G + g] = c;
                sum += c;
            }
            double mean = sum / (double)P;
            for (int64_t i = 0; i < P; i++) { double d = norm[(b * P + i) * G + g] - mean; sq += d * d; }
            float sd = (float)sqrt(sq / (double)(P - 1));
            stdv[b * G + g] = sd;
            for (int64_t i = 0; i < P; i++) {
                float *n = &norm[(b * P + i) * G + g];
                *n = (float)((*n - mean) / (sd + EPS));
                A[(b * P + i) * G + g] = lth4sa_sigmoid(s->base.value[GAMMA][g] * *n + s->base.value[BETA][g]);
            }
        }
    }
    if (training) {
        float *saved_a = lth4sa_saved_get(&s->base.saved, call, SAVE_A, B * P * G);
        if (!saved_a) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "sge: out of memory");
        memcpy(saved_a, A, sizeof(float) * (size_t)(B * P * G));
    }
    return LTH4SA_OK;
}

/* dt = dA a(1-a);  dgamma += sum dt c';  dbeta += sum dt;  dc' = dt gamma;
 * c' = d / (sd + eps), d = c - mean, sd = sqrt(sum d^2 / (P-1)):
 *   dd_j = dc'_j / (sd+eps) - (sum_i dc'_i d_i) / (sd+eps)^2 * d_j / ((P-1) sd);  dc = dd - mean(dd)
 * c_i = <S_g, F_g(i)>:  dS_g += sum_i dc_i F_g(i);  dF_g(i) += dc_i S_g */
static lth4sa_status_t sge_process_backward(void *instance, int32_t call, const lth4sa_tensor_t *input, const lth4sa_tensor_t *extracted,
                                            const lth4sa_tensor_t *d_attention, const lth4sa_tensor_t *d_state_out,
                                            lth4sa_tensor_t *d_extracted, lth4sa_tensor_t *d_state_in, lth4sa_tensor_t *d_input,
                                            lth4sa_error_t *error) {
    (void)d_state_out; (void)d_state_in;
    sge_t *s = instance;
    const int64_t B = input->shape[0], P = input->shape[1] * input->shape[2], C = s->base.channels, G = s->groups, K = C / G;
    float *norm = lth4sa_saved_peek(&s->base.saved, call, SAVE_NORM), *stdv = lth4sa_saved_peek(&s->base.saved, call, SAVE_STD);
    float *A = lth4sa_saved_peek(&s->base.saved, call, SAVE_A);
    if (!norm || !stdv || !A) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "sge: backward of call %d without a training forward", call);
    float *dc = lth4sa_scratch_get(&s->base.scratch, WORK_DC, P);
    if (!dc) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "sge: out of memory");
    const float *F = input->data, *S = extracted->data, *dA = d_attention->data;
    float *dS = d_extracted->data, *dF = d_input->data;
    memset(dS, 0, sizeof(float) * (size_t)(B * C));
    for (int64_t b = 0; b < B; b++) {
        for (int64_t g = 0; g < G; g++) {
            const float gamma = s->base.value[GAMMA][g], sd = stdv[b * G + g], denom = sd + EPS;
            double dot = 0, mean_dn = 0;
            for (int64_t i = 0; i < P; i++) {
                const int64_t at = (b * P + i) * G + g;
                const float a = A[at], dt = dA[at] * a * (1 - a);
                s->base.grad[GAMMA][g] += dt * norm[at];
                s->base.grad[BETA][g] += dt;
                const float dn = dt * gamma;
                dc[i] = dn;
                dot += (double)dn * norm[at] * denom;  /* sum dc'_i d_i, with d_i = c'_i (sd+eps) */
                mean_dn += dn;
            }
            mean_dn /= (double)P;
            const double coef = sd > 0 ? dot / ((double)denom * denom * (double)(P - 1) * sd) : 0;
            for (int64_t i = 0; i < P; i++) {
                const double d = (double)norm[(b * P + i) * G + g] * denom;
                dc[i] = (float)((dc[i] - mean_dn) / denom - coef * d);
            }
            const float *sg = S + b * C + g * K;
            float *dsg = dS + b * C + g * K;
            for (int64_t i = 0; i < P; i++) {
                const float *f = F + (b * P + i) * C + g * K;
                float *df = dF + (b * P + i) * C + g * K;
                for (int64_t k = 0; k < K; k++) { dsg[k] += dc[i] * f[k]; df[k] += dc[i] * sg[k]; }
            }
        }
    }
    return LTH4SA_OK;
}

static const lth4sa_sam_api_t sge_api = {
    .struct_size = sizeof(lth4sa_sam_api_t),
    .create = sge_create,
    .destroy = lth4sa_base_destroy,
    .param_count = lth4sa_base_param_count,
    .param_info = lth4sa_base_param_info,
    .bind = lth4sa_base_bind,
    .layout = sge_layout,
    .process = sge_process,
    .process_backward = sge_process_backward,
    .prepare = sge_prepare,
    .allocations = lth4sa_base_allocations};

LTH4SA_SINGLE_SAM_ENTRY(sge_descriptor, sge_api)
