/* ECA: Efficient Channel Attention (Wang et al., CVPR 2020), kernel size k from the channels.
 *   S = GAP(F) [B, C] (host default extract)
 *   y[b, c] = sum_j w[j] S[b, c + j - p]  (1-D cross-correlation over channels, zero padding p = (k - 1) / 2, no bias)
 *   a = sigmoid(y) [B, C];  F' = F * a (host default recalibrate)
 *   k = t if t is odd else t + 1, t = int(|log2(C) + b| / gamma)  (gamma = 2, b = 1), or the `k_size` option
 * Parameter (PyTorch names, nn.Conv1d(1, 1, k, padding=p, bias=False)): conv.weight [1, 1, k]. */
#include <lth4sa/helpers.h>
#include <math.h>

static const lth4sa_option_t eca_options[] = {
    {.name = "k_size", .type = LTH4SA_OPTION_INT, .default_value = 0, .min_value = 0, .max_value = 63, .doc = "kernel size over channels (odd; 0 = from the channel count with gamma and b)"},
    {.name = "gamma", .type = LTH4SA_OPTION_FLOAT, .default_value = 2, .min_value = 0.125, .max_value = 64, .doc = "gamma of the adaptive kernel size"},
    {.name = "b", .type = LTH4SA_OPTION_FLOAT, .default_value = 1, .min_value = -64, .max_value = 64, .doc = "b of the adaptive kernel size"},
};

static const lth4sa_descriptor_t eca_descriptor = {
    .struct_size = sizeof(lth4sa_descriptor_t),
    .kind = LTH4SA_KIND_SAM,
    .id = "eca",
    .name = "Efficient Channel Attention",
    .version = "1.0.0",
    .description = "channel attention: sigmoid(1-D convolution across the channels of GAP(F)) scales each channel",
    .license = "MIT",
    .option_count = 3,
    .options = eca_options,
    .flags = LTH4SA_PLUGIN_CONCURRENT_INSTANCES}; /* no state outside its instances */

enum { WEIGHT, PARAMS };
enum { SAVE_S, SAVE_A };
enum { WORK_DY };

typedef struct eca {
    lth4sa_sam_base_t base; /* first: host, channels, parameters, saved contexts */
    int64_t k;
} eca_t;

/* ECA's adaptive kernel size for `channels`. */
static int64_t eca_kernel(int64_t channels, double gamma, double b) {
    const int64_t t = (int64_t)fabs((log2((double)channels) + b) / gamma);
    return t % 2 ? t : t + 1;
}

static lth4sa_status_t eca_create(const lth4sa_host_t *host, int64_t channels, const lth4sa_option_value_t *options, uint32_t count,
                                  void **instance, lth4sa_error_t *error) {
    if (channels < 1) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "eca: channels must be positive, got %lld", (long long)channels);
    int64_t k = (int64_t)lth4sa_option(options, count, "k_size", 0);
    if (k == 0) k = eca_kernel(channels, lth4sa_option(options, count, "gamma", 2), lth4sa_option(options, count, "b", 1));
    if (k % 2 == 0) return lth4sa_fail(error, LTH4SA_ERR_UNSUPPORTED, "eca: k_size must be odd, got %lld", (long long)k);
    eca_t *s = lth4sa_base_new(sizeof(eca_t), host, "eca", channels, PARAMS);
    if (!s) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "eca: out of memory");
    s->k = k;
    /* PyTorch's Conv1d default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = k */
    lth4sa_declare(&s->base.declared[WEIGHT], "conv.weight", 3, 1, 1, LTH4SA_INIT_LINEAR, (double)k, 0);
    s->base.declared[WEIGHT].shape[2] = k;
    *instance = s;
    return LTH4SA_OK;
}

static lth4sa_status_t eca_layout(void *instance, const lth4sa_tensor_t *input, lth4sa_sam_layout_t *out, lth4sa_error_t *error) {
    const lth4sa_status_t status = lth4sa_base_layout(instance, input, LTH4SA_COMBINE_MULTIPLY, 0, out, error);
    if (status == LTH4SA_OK) lth4sa_layout_set_flags(out, LTH4SA_SAM_PROCESS_IGNORES_INPUT); /* A = conv(S) */
    return status;
}

/* S and a per call slot (backward), dy as scratch: [B, C] each. */
static lth4sa_status_t eca_prepare(void *instance, int32_t calls, int64_t B, int64_t height, int64_t width, lth4sa_error_t *error) {
    (void)height; (void)width;
    eca_t *s = instance;
    const int64_t n = B * s->base.channels;
    if (!lth4sa_saved_reserve(&s->base.saved, calls, SAVE_S, n) || !lth4sa_saved_reserve(&s->base.saved, calls, SAVE_A, n) ||
        !lth4sa_scratch_get(&s->base.scratch, WORK_DY, n))
        return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "eca: out of memory preparing for %lld images", (long long)B);
    return LTH4SA_OK;
}

/* a[b, c] = sigmoid(sum_j w[j] S[b, c + j - p]) */
static lth4sa_status_t eca_process(void *instance, int32_t call, const lth4sa_tensor_t *input, const lth4sa_tensor_t *extracted,
                                   const lth4sa_tensor_t *state_in, lth4sa_tensor_t *attention, lth4sa_tensor_t *state_out,
                                   int32_t training, lth4sa_error_t *error) {
    (void)input; (void)state_in; (void)state_out;
    eca_t *s = instance;
    const int64_t B = extracted->shape[0], C = s->base.channels, k = s->k, p = (k - 1) / 2;
    const float *S = extracted->data, *w = s->base.value[WEIGHT];
    float *a = attention->data;
    for (int64_t b = 0; b < B; b++) {
        for (int64_t c = 0; c < C; c++) {
            float y = 0;
            for (int64_t j = 0; j < k; j++) {
                const int64_t i = c + j - p;
                if (i >= 0 && i < C) y += w[j] * S[b * C + i];
            }
            a[b * C + c] = lth4sa_sigmoid(y);
        }
    }
    if (training) {
        float *saved_s = lth4sa_saved_get(&s->base.saved, call, SAVE_S, B * C), *saved_a = lth4sa_saved_get(&s->base.saved, call, SAVE_A, B * C);
        if (!saved_s || !saved_a) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "eca: out of memory");
        memcpy(saved_s, S, sizeof(float) * (size_t)(B * C));
        memcpy(saved_a, a, sizeof(float) * (size_t)(B * C));
    }
    return LTH4SA_OK;
}

/* dy = da a (1 - a);  dS[b, i] = sum_j w[j] dy[b, i - j + p];  dw[j] += sum_{b,c} dy[b, c] S[b, c + j - p] */
static lth4sa_status_t eca_process_backward(void *instance, int32_t call, const lth4sa_tensor_t *input, const lth4sa_tensor_t *extracted,
                                            const lth4sa_tensor_t *d_attention, const lth4sa_tensor_t *d_state_out,
                                            lth4sa_tensor_t *d_extracted, lth4sa_tensor_t *d_state_in, lth4sa_tensor_t *d_input,
                                            lth4sa_error_t *error) {
    (void)input; (void)extracted; (void)d_state_out; (void)d_state_in; (void)d_input;
    eca_t *s = instance;
    const int64_t B = d_attention->shape[0], C = s->base.channels, k = s->k, p = (k - 1) / 2;
    const float *S = lth4sa_saved_peek(&s->base.saved, call, SAVE_S), *a = lth4sa_saved_peek(&s->base.saved, call, SAVE_A);
    if (!S || !a) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "eca: backward of call %d without a training forward", call);
    float *dy = lth4sa_scratch_get(&s->base.scratch, WORK_DY, B * C);
    if (!dy) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "eca: out of memory");
    const float *w = s->base.value[WEIGHT];
    float *dw = s->base.grad[WEIGHT], *dS = d_extracted->data;
    for (int64_t i = 0; i < B * C; i++) dy[i] = d_attention->data[i] * a[i] * (1 - a[i]);
    for (int64_t b = 0; b < B; b++) {
        for (int64_t i = 0; i < C; i++) {
            float g = 0;
            for (int64_t j = 0; j < k; j++) {
                const int64_t c = i - j + p;
                if (c >= 0 && c < C) g += w[j] * dy[b * C + c];
            }
            dS[b * C + i] = g;
        }
    }
    for (int64_t j = 0; j < k; j++) {
        double g = 0;
        for (int64_t b = 0; b < B; b++) {
            for (int64_t c = 0; c < C; c++) {
                const int64_t i = c + j - p;
                if (i >= 0 && i < C) g += (double)dy[b * C + c] * S[b * C + i];
            }
        }
        dw[j] += (float)g;
    }
    return LTH4SA_OK;
}

static const lth4sa_sam_api_t eca_api = {
    .struct_size = sizeof(lth4sa_sam_api_t),
    .create = eca_create,
    .destroy = lth4sa_base_destroy,
    .param_count = lth4sa_base_param_count,
    .param_info = lth4sa_base_param_info,
    .bind = lth4sa_base_bind,
    .layout = eca_layout,
    .process = eca_process,
    .process_backward = eca_process_backward,
    .prepare = eca_prepare,
    .allocations = lth4sa_base_allocations};

LTH4SA_SINGLE_SAM_ENTRY(eca_descriptor, eca_api)
