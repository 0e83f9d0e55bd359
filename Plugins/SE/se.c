/* SE: Squeeze-and-Excitation (Hu et al.), reduction r.
 *   S = GAP(F) [B, C] (host default extract)
 *   z = ReLU(W1 S + b1) [B, C/r];  a = sigmoid(W2 z + b2) [B, C];  F' = F * a (host default recalibrate)
 * Parameters (PyTorch names): fc1.weight [C/r, C], fc1.bias [C/r], fc2.weight [C, C/r], fc2.bias [C]. */
#include "../common/plugin_util.h"

static const lth4sa_option_t se_options[] = {
    {"reduction", LTH4SA_OPTION_INT, 0, 16, 1, 1024, "channel reduction ratio r of the bottleneck (hidden = C / r)"},
};

static const lth4sa_descriptor_t se_descriptor = {
    sizeof(lth4sa_descriptor_t), LTH4SA_KIND_SAM, "se", "Squeeze-and-Excitation", "1.0.0",
    "channel attention: sigmoid(MLP(GAP(F))) scales each channel", "MIT", 1, 0, se_options};

enum { W1, B1, W2, B2, PARAMS };
enum { SAVE_S, SAVE_Z, SAVE_A };

typedef struct se {
    lth4sa_sam_base_t base; /* first: host, channels, parameters, saved contexts */
    int64_t hidden;
} se_t;

static lth4sa_status_t se_create(const lth4sa_host_t *host, int64_t channels, const lth4sa_option_value_t *options, uint32_t count,
                                 void **instance, lth4sa_error_t *error) {
    int64_t r = (int64_t)lth4sa_option(options, count, "reduction", 16);
    if (channels < 1) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "se: channels must be positive, got %lld", (long long)channels);
    if (channels / r < 1)
        return lth4sa_fail(error, LTH4SA_ERR_UNSUPPORTED, "se: %lld channels with reduction %lld leave no hidden unit; use reduction <= %lld",
                           (long long)channels, (long long)r, (long long)channels);
    se_t *s = lth4sa_base_new(sizeof(se_t), host, "se", channels, PARAMS);
    if (!s) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "se: out of memory");
    s->hidden = channels / r;
    lth4sa_declare(&s->base.declared[W1], "fc1.weight", 2, s->hidden, channels, LTH4SA_INIT_LINEAR, (double)channels, 0);
    lth4sa_declare(&s->base.declared[B1], "fc1.bias", 1, s->hidden, 0, LTH4SA_INIT_LINEAR, (double)channels, 0);
    lth4sa_declare(&s->base.declared[W2], "fc2.weight", 2, channels, s->hidden, LTH4SA_INIT_LINEAR, (double)s->hidden, 0);
    lth4sa_declare(&s->base.declared[B2], "fc2.bias", 1, channels, 0, LTH4SA_INIT_LINEAR, (double)s->hidden, 0);
    *instance = s;
    return LTH4SA_OK;
}

static lth4sa_status_t se_layout(void *instance, const lth4sa_tensor_t *input, lth4sa_sam_layout_t *out, lth4sa_error_t *error) {
    return lth4sa_base_layout(instance, input, LTH4SA_COMBINE_MULTIPLY, 0, out, error);
}

/* z = ReLU(S W1^T + b1) [B, h];  a = sigmoid(z W2^T + b2) [B, C] */
static lth4sa_status_t se_process(void *instance, int32_t call, const lth4sa_tensor_t *input, const lth4sa_tensor_t *extracted,
                                  const lth4sa_tensor_t *state_in, lth4sa_tensor_t *attention, lth4sa_tensor_t *state_out,
                                  int32_t training, lth4sa_error_t *error) {
    (void)input; (void)state_in; (void)state_out;
    se_t *s = instance;
    const int64_t B = extracted->shape[0], C = s->base.channels, h = s->hidden;
    float *z = training ? lth4sa_saved_get(&s->base.saved, call, SAVE_Z, B * h) : malloc(sizeof(float) * (size_t)(B * h));
    float *S = training ? lth4sa_saved_get(&s->base.saved, call, SAVE_S, B * C) : NULL;
    if (!z || (training && !S)) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "se: out of memory");
    if (training) memcpy(S, extracted->data, sizeof(float) * (size_t)(B * C));
    for (int64_t b = 0; b < B; b++) memcpy(z + b * h, s->base.value[B1], sizeof(float) * (size_t)h);
    s->base.host->gemm(s->base.host->context, 0, 1, B, h, C, 1.0f, extracted->data, s->base.value[W1], 1.0f, z);
    for (int64_t i = 0; i < B * h; i++) z[i] = z[i] > 0 ? z[i] : 0;
    float *a = attention->data;
    for (int64_t b = 0; b < B; b++) memcpy(a + b * C, s->base.value[B2], sizeof(float) * (size_t)C);
    s->base.host->gemm(s->base.host->context, 0, 1, B, C, h, 1.0f, z, s->base.value[W2], 1.0f, a);
    for (int64_t i = 0; i < B * C; i++) a[i] = lth4sa_sigmoid(a[i]);
    if (training) {
        float *saved_a = lth4sa_saved_get(&s->base.saved, call, SAVE_A, B * C);
        if (!saved_a) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "se: out of memory");
        memcpy(saved_a, a, sizeof(float) * (size_t)(B * C));
    } else {
        free(z);
    }
    return LTH4SA_OK;
}

/* dlogit = da * a(1-a);  dW2 += dlogit^T z;  db2 += sum dlogit;  dz = dlogit W2 * (z > 0);
 * dW1 += dz^T S;  db1 += sum dz;  dS = dz W1 */
static lth4sa_status_t se_process_backward(void *instance, int32_t call, const lth4sa_tensor_t *input, const lth4sa_tensor_t *extracted,
                                           const lth4sa_tensor_t *d_attention, const lth4sa_tensor_t *d_state_out,
                                           lth4sa_tensor_t *d_extracted, lth4sa_tensor_t *d_state_in, lth4sa_tensor_t *d_input,
                                           lth4sa_error_t *error) {
    (void)input; (void)extracted; (void)d_state_out; (void)d_state_in; (void)d_input;
    se_t *s = instance;
    const int64_t B = d_attention->shape[0], C = s->base.channels, h = s->hidden;
    float *S = lth4sa_saved_peek(&s->base.saved, call, SAVE_S), *z = lth4sa_saved_peek(&s->base.saved, call, SAVE_Z);
    float *a = lth4sa_saved_peek(&s->base.saved, call, SAVE_A);
    if (!S || !z || !a) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "se: backward of call %d without a training forward", call);
    float *dlogit = malloc(sizeof(float) * (size_t)(B * C)), *dz = malloc(sizeof(float) * (size_t)(B * h));
    if (!dlogit || !dz) { free(dlogit); free(dz); return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "se: out of memory"); }
    for (int64_t i = 0; i < B * C; i++) dlogit[i] = d_attention->data[i] * a[i] * (1 - a[i]);
    s->base.host->gemm(s->base.host->context, 1, 0, C, h, B, 1.0f, dlogit, z, 1.0f, s->base.grad[W2]);
    for (int64_t b = 0; b < B; b++) for (int64_t c = 0; c < C; c++) s->base.grad[B2][c] += dlogit[b * C + c];
    s->base.host->gemm(s->base.host->context, 0, 0, B, h, C, 1.0f, dlogit, s->base.value[W2], 0.0f, dz);
    for (int64_t i = 0; i < B * h; i++) if (z[i] <= 0) dz[i] = 0;
#ifdef LTH4SA_TEST_BREAK_GRADIENT
    /* a deliberately wrong gradient, compiled only by the test suite to prove the conformance kit fails */
    s->base.host->gemm(s->base.host->context, 1, 0, h, C, B, 2.0f, dz, S, 1.0f, s->base.grad[W1]);
#else
    s->base.host->gemm(s->base.host->context, 1, 0, h, C, B, 1.0f, dz, S, 1.0f, s->base.grad[W1]);
#endif
    for (int64_t b = 0; b < B; b++) for (int64_t j = 0; j < h; j++) s->base.grad[B1][j] += dz[b * h + j];
    s->base.host->gemm(s->base.host->context, 0, 0, B, C, h, 1.0f, dz, s->base.value[W1], 0.0f, d_extracted->data);
    free(dlogit);
    free(dz);
    return LTH4SA_OK;
}

static const lth4sa_sam_api_t se_api = {
    sizeof(lth4sa_sam_api_t), 0, se_create, lth4sa_base_destroy, lth4sa_base_param_count, lth4sa_base_param_info, lth4sa_base_bind, se_layout,
    NULL, NULL, se_process, se_process_backward, NULL, NULL};

LTH4SA_SINGLE_SAM_ENTRY(se_descriptor, se_api)
