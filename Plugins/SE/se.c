/* SE: Squeeze-and-Excitation (Hu et al.), reduction r.
 *   S = GAP(F) [B, C] (host default extract)
 *   z = ReLU(W1 S + b1) [B, C/r];  a = sigmoid(W2 z + b2) [B, C];  F' = F * a (host default recalibrate)
 * Parameters (PyTorch names): fc1.weight [C/r, C], fc1.bias [C/r], fc2.weight [C, C/r], fc2.bias [C]. */
#include <lth4sa/helpers.h>

static const lth4sa_option_t se_options[] = {
    {.name = "reduction", .type = LTH4SA_OPTION_INT, .default_value = 16, .min_value = 1, .max_value = 1024, .doc = "channel reduction ratio r of the bottleneck (hidden = C / r)"},
};

static const lth4sa_descriptor_t se_descriptor = {
    .struct_size = sizeof(lth4sa_descriptor_t),
    .kind = LTH4SA_KIND_SAM,
    .id = "se",
    .name = "Squeeze-and-Excitation",
    .version = "1.0.0",
    .description = "channel attention: sigmoid(MLP(GAP(F))) scales each channel",
    .license = "MIT",
    .option_count = 1,
    .options = se_options,
    .flags = LTH4SA_PLUGIN_CONCURRENT_INSTANCES}; /* no state outside its instances */

enum { W1, B1, W2, B2, PARAMS };
enum { SAVE_S, SAVE_Z, SAVE_A };
enum { WORK_Z, WORK_DLOGIT, WORK_DZ };

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
    const lth4sa_status_t status = lth4sa_base_layout(instance, input, LTH4SA_COMBINE_MULTIPLY, 0, out, error);
    if (status == LTH4SA_OK) lth4sa_layout_set_flags(out, LTH4SA_SAM_PROCESS_IGNORES_INPUT); /* A = MLP(S) */
    return status;
}

/* Everything process and backward use, for `calls` slots of up to B images (no map sizes:
 * SE works on S = [B, C]). */
static lth4sa_status_t se_prepare(void *instance, int32_t calls, int64_t B, int64_t height, int64_t width, lth4sa_error_t *error) {
    (void)height; (void)width;
    se_t *s = instance;
    const int64_t C = s->base.channels, h = s->hidden;
    lth4sa_saved_t *saved = &s->base.saved;
    if (!lth4sa_saved_reserve(saved, calls, SAVE_S, B * C) || !lth4sa_saved_reserve(saved, calls, SAVE_Z, B * h) ||
        !lth4sa_saved_reserve(saved, calls, SAVE_A, B * C) || !lth4sa_scratch_get(&s->base.scratch, WORK_Z, B * h) ||
        !lth4sa_scratch_get(&s->base.scratch, WORK_DLOGIT, B * C)
#ifndef LTH4SA_TEST_FORGET_RESERVE /* the test suite's proof that the kit sees an allocation in backward */
        || !lth4sa_scratch_get(&s->base.scratch, WORK_DZ, B * h)
#endif
        )
        return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "se: out of memory preparing for %lld images", (long long)B);
    return LTH4SA_OK;
}

/* z = ReLU(S W1^T + b1) [B, h];  a = sigmoid(z W2^T + b2) [B, C] */
/* fc1 -> ReLU -> fc2 over [B, C] */
static lth4sa_mlp_t se_mlp(const se_t *s) {
    const lth4sa_mlp_t p = {s->base.channels, s->hidden, s->base.channels, s->base.value[W1], s->base.value[B1], s->base.value[W2],
                            s->base.value[B2], s->base.grad[W1], s->base.grad[B1], s->base.grad[W2], s->base.grad[B2]};
    return p;
}

static lth4sa_status_t se_process(void *instance, int32_t call, const lth4sa_tensor_t *input, const lth4sa_tensor_t *extracted,
                                  const lth4sa_tensor_t *state_in, lth4sa_tensor_t *attention, lth4sa_tensor_t *state_out,
                                  int32_t training, lth4sa_error_t *error) {
    (void)input; (void)state_in; (void)state_out;
    se_t *s = instance;
    const int64_t B = extracted->shape[0], C = s->base.channels, h = s->hidden;
    float *z = training ? lth4sa_saved_get(&s->base.saved, call, SAVE_Z, B * h) : lth4sa_scratch_get(&s->base.scratch, WORK_Z, B * h);
    float *S = training ? lth4sa_saved_get(&s->base.saved, call, SAVE_S, B * C) : NULL;
    if (!z || (training && !S)) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "se: out of memory");
    if (training) memcpy(S, extracted->data, sizeof(float) * (size_t)(B * C));
    float *a = attention->data;
    const lth4sa_mlp_t mlp = se_mlp(s);
    memset(a, 0, sizeof(float) * (size_t)(B * C));
    lth4sa_mlp_forward(s->base.host, &mlp, extracted->data, B, z, a);
    for (int64_t i = 0; i < B * C; i++) a[i] = lth4sa_sigmoid(a[i]);
    if (training) {
        float *saved_a = lth4sa_saved_get(&s->base.saved, call, SAVE_A, B * C);
        if (!saved_a) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "se: out of memory");
        memcpy(saved_a, a, sizeof(float) * (size_t)(B * C));
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
    float *dlogit = lth4sa_scratch_get(&s->base.scratch, WORK_DLOGIT, B * C), *dz = lth4sa_scratch_get(&s->base.scratch, WORK_DZ, B * h);
    if (!dlogit || !dz) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "se: out of memory");
    for (int64_t i = 0; i < B * C; i++) dlogit[i] = d_attention->data[i] * a[i] * (1 - a[i]);
    const lth4sa_mlp_t mlp = se_mlp(s);
    lth4sa_mlp_backward(s->base.host, &mlp, S, z, dlogit, B, d_extracted->data, dz);
#ifdef LTH4SA_TEST_BREAK_GRADIENT
    /* a deliberately wrong gradient (fc1.weight's counted twice; dz still holds the masked
       hidden gradient), compiled only by the test suite to prove the conformance kit fails */
    s->base.host->gemm(s->base.host->context, 1, 0, h, C, B, 1.0f, dz, S, 1.0f, s->base.grad[W1]);
#endif
    return LTH4SA_OK;
}

static const lth4sa_sam_api_t se_api = {
    .struct_size = sizeof(lth4sa_sam_api_t),
    .create = se_create,
    .destroy = lth4sa_base_destroy,
    .param_count = lth4sa_base_param_count,
    .param_info = lth4sa_base_param_info,
    .bind = lth4sa_base_bind,
    .layout = se_layout,
    .process = se_process,
    .process_backward = se_process_backward,
    .prepare = se_prepare,
    .allocations = lth4sa_base_allocations};

LTH4SA_SINGLE_SAM_ENTRY(se_descriptor, se_api)
