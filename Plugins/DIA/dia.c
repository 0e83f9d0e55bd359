/* DIA: Dense-and-Implicit Attention (Huang et al.): one LSTM shared by the blocks of a stage.
 *   S_l = GAP(F_l) [B, C] (host default extract)
 *   gates = U(S_l) + V(h_{l-1}),  U, V = Linear(C, C/r) -> ReLU -> Linear(C/r, 4C)
 *   i, f, o = sigmoid, g = tanh (gate order i, f, g, o)
 *   c_l = f * c_{l-1} + i * g;   h_l = o * sigmoid(c_l);   A_l = h_l;   F' = F * A_l
 * State (h, c) [B, C] is carried by the host from block to block (zeros at a stage's start).
 * Parameters: ih.l0.weight [C/r, C], ih.l0.bias, ih.l2.weight [4C, C/r], ih.l2.bias [4C]
 *             (U), and the same under hh. (V). */
#include <lth4sa/helpers.h>

static const lth4sa_option_t dia_options[] = {
    {.name = "reduction", .type = LTH4SA_OPTION_INT, .default_value = 4, .min_value = 1, .max_value = 1024, .doc = "reduction ratio r of the LSTM's input and hidden transforms"},
};

static const lth4sa_descriptor_t dia_descriptor = {
    .struct_size = sizeof(lth4sa_descriptor_t),
    .kind = LTH4SA_KIND_SAM,
    .id = "dia",
    .name = "Dense-and-Implicit Attention",
    .version = "1.0.0",
    .description = "channel attention from an LSTM shared across the blocks of a stage (stateful)",
    .license = "MIT",
    .option_count = 1,
    .options = dia_options,
    .flags = LTH4SA_PLUGIN_CONCURRENT_INSTANCES}; /* no state outside its instances */

enum { U0W, U0B, U2W, U2B, V0W, V0B, V2W, V2B, PARAMS };
enum { SAVE_S, SAVE_H, SAVE_C, SAVE_RU, SAVE_RV, SAVE_GATES, SAVE_CNEW };

typedef struct dia {
    lth4sa_sam_base_t base; /* first: host, channels, parameters, saved contexts */
    int64_t hidden;
} dia_t;

static lth4sa_status_t dia_create(const lth4sa_host_t *host, int64_t channels, const lth4sa_option_value_t *options, uint32_t count,
                                  void **instance, lth4sa_error_t *error) {
    int64_t r = (int64_t)lth4sa_option(options, count, "reduction", 4);
    if (channels < 1 || channels / r < 1)
        return lth4sa_fail(error, LTH4SA_ERR_UNSUPPORTED, "dia: %lld channels with reduction %lld leave no hidden unit", (long long)channels, (long long)r);
    dia_t *s = lth4sa_base_new(sizeof(dia_t), host, "dia", channels, PARAMS);
    if (!s) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "dia: out of memory");
    s->hidden = channels / r;
    const int64_t C = channels, h = s->hidden;
    const char *names[PARAMS] = {"ih.l0.weight", "ih.l0.bias", "ih.l2.weight", "ih.l2.bias", "hh.l0.weight", "hh.l0.bias", "hh.l2.weight", "hh.l2.bias"};
    for (int side = 0; side < 2; side++) {
        int o = side * 4;
        lth4sa_declare(&s->base.declared[o + 0], names[o + 0], 2, h, C, LTH4SA_INIT_LINEAR, (double)C, 0);
        lth4sa_declare(&s->base.declared[o + 1], names[o + 1], 1, h, 0, LTH4SA_INIT_LINEAR, (double)C, 0);
        lth4sa_declare(&s->base.declared[o + 2], names[o + 2], 2, 4 * C, h, LTH4SA_INIT_LINEAR, (double)h, 0);
        lth4sa_declare(&s->base.declared[o + 3], names[o + 3], 1, 4 * C, 0, LTH4SA_INIT_LINEAR, (double)h, 0);
    }
    *instance = s;
    return LTH4SA_OK;
}

static lth4sa_status_t dia_layout(void *instance, const lth4sa_tensor_t *input, lth4sa_sam_layout_t *out, lth4sa_error_t *error) {
    dia_t *s = instance;
    lth4sa_status_t st = lth4sa_base_layout(&s->base, input, LTH4SA_COMBINE_MULTIPLY, 0, out, error);
    if (st != LTH4SA_OK) return st;
    out->state_count = 2;  /* h and c, [B, C] each */
    out->state_ndim = 2;
    out->state_shape[0] = input->shape[0];
    out->state_shape[1] = s->base.channels;
    return LTH4SA_OK;
}

/* U (side 0, applied to S) or V (side 1, applied to h): Linear(C, C/r) -> ReLU -> Linear(C/r, 4C). */
static lth4sa_mlp_t dia_mlp(const dia_t *s, int side) {
    const int o = side * 4;
    const lth4sa_mlp_t p = {s->base.channels, s->hidden, 4 * s->base.channels,
                            s->base.value[o], s->base.value[o + 1], s->base.value[o + 2], s->base.value[o + 3],
                            s->base.grad[o], s->base.grad[o + 1], s->base.grad[o + 2], s->base.grad[o + 3]};
    return p;
}

enum { WORK_FORWARD, WORK_DGATES, WORK_HIDDEN };

/* Everything process and backward use, for `calls` slots of up to B images (DIA works on
 * S = [B, C] and its state). */
static lth4sa_status_t dia_prepare(void *instance, int32_t calls, int64_t B, int64_t height, int64_t width, lth4sa_error_t *error) {
    (void)height; (void)width;
    dia_t *s = instance;
    const int64_t C = s->base.channels, h = s->hidden;
    lth4sa_saved_t *saved = &s->base.saved;
    lth4sa_scratch_t *work = &s->base.scratch;
    const int32_t sizes[][2] = {{SAVE_RU, 0}, {SAVE_RV, 0}, {SAVE_GATES, 1}, {SAVE_S, 2}, {SAVE_H, 2}, {SAVE_C, 2}, {SAVE_CNEW, 2}};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        const int64_t n = sizes[k][1] == 0 ? B * h : sizes[k][1] == 1 ? B * 4 * C : B * C;
        if (!lth4sa_saved_reserve(saved, calls, sizes[k][0], n)) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "dia: out of memory");
    }
    if (!lth4sa_scratch_get(work, WORK_FORWARD, 2 * B * h + B * 4 * C) || !lth4sa_scratch_get(work, WORK_DGATES, B * 4 * C) ||
        !lth4sa_scratch_get(work, WORK_HIDDEN, B * h))
        return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "dia: out of memory preparing for %lld images", (long long)B);
    return LTH4SA_OK;
}

static lth4sa_status_t dia_process(void *instance, int32_t call, const lth4sa_tensor_t *input, const lth4sa_tensor_t *extracted,
                                   const lth4sa_tensor_t *state_in, lth4sa_tensor_t *attention, lth4sa_tensor_t *state_out,
                                   int32_t training, lth4sa_error_t *error) {
    (void)input;
    dia_t *s = instance;
    if (!state_in || !state_out) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "dia: the host must pass the (h, c) state");
    const int64_t B = extracted->shape[0], C = s->base.channels, h = s->hidden;
    float *ru, *rv, *gates;
    if (training) {
        ru = lth4sa_saved_get(&s->base.saved, call, SAVE_RU, B * h);
        rv = lth4sa_saved_get(&s->base.saved, call, SAVE_RV, B * h);
        gates = lth4sa_saved_get(&s->base.saved, call, SAVE_GATES, B * 4 * C);
        float *S = lth4sa_saved_get(&s->base.saved, call, SAVE_S, B * C), *H = lth4sa_saved_get(&s->base.saved, call, SAVE_H, B * C);
        float *Cp = lth4sa_saved_get(&s->base.saved, call, SAVE_C, B * C);
        if (!ru || !rv || !gates || !S || !H || !Cp) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "dia: out of memory");
        memcpy(S, extracted->data, sizeof(float) * (size_t)(B * C));
        memcpy(H, state_in[0].data, sizeof(float) * (size_t)(B * C));
        memcpy(Cp, state_in[1].data, sizeof(float) * (size_t)(B * C));
    } else {
        float *tmp = lth4sa_scratch_get(&s->base.scratch, WORK_FORWARD, 2 * B * h + B * 4 * C);
        if (!tmp) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "dia: out of memory");
        ru = tmp;
        rv = tmp + B * h;
        gates = tmp + 2 * B * h;
    }
    memset(gates, 0, sizeof(float) * (size_t)(B * 4 * C));
    const lth4sa_mlp_t u = dia_mlp(s, 0), v = dia_mlp(s, 1);
    lth4sa_mlp_forward(s->base.host, &u, extracted->data, B, ru, gates);
    lth4sa_mlp_forward(s->base.host, &v, state_in[0].data, B, rv, gates);
    const float *c_prev = state_in[1].data;
    float *h_out = state_out[0].data, *c_out = state_out[1].data, *A = attention->data;
    for (int64_t b = 0; b < B; b++) {
        float *gb = gates + b * 4 * C;
        for (int64_t k = 0; k < C; k++) {
            const float i = lth4sa_sigmoid(gb[k]), f = lth4sa_sigmoid(gb[C + k]), g = tanhf(gb[2 * C + k]), o = lth4sa_sigmoid(gb[3 * C + k]);
            gb[k] = i; gb[C + k] = f; gb[2 * C + k] = g; gb[3 * C + k] = o;  /* keep activations for backward */
            const float c = f * c_prev[b * C + k] + i * g;
            c_out[b * C + k] = c;
            h_out[b * C + k] = o * lth4sa_sigmoid(c);
            A[b * C + k] = h_out[b * C + k];
        }
    }
    if (training) {
        float *cn = lth4sa_saved_get(&s->base.saved, call, SAVE_CNEW, B * C);
        if (!cn) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "dia: out of memory");
        memcpy(cn, c_out, sizeof(float) * (size_t)(B * C));
    }
    return LTH4SA_OK;
}

/* dh = dA + dh_out;  sc = sigmoid(c);  do = dh sc;  dc = dc_out + dh o sc (1 - sc);
 * di = dc g;  df = dc c_prev;  dg = dc i;  dc_prev = dc f;  pre-activation grads through
 * sigmoid / tanh;  then back through U (-> dS) and V (-> dh_prev). */
static lth4sa_status_t dia_process_backward(void *instance, int32_t call, const lth4sa_tensor_t *input, const lth4sa_tensor_t *extracted,
                                            const lth4sa_tensor_t *d_attention, const lth4sa_tensor_t *d_state_out,
                                            lth4sa_tensor_t *d_extracted, lth4sa_tensor_t *d_state_in, lth4sa_tensor_t *d_input,
                                            lth4sa_error_t *error) {
    (void)input; (void)extracted; (void)d_input;
    dia_t *s = instance;
    const int64_t B = d_attention->shape[0], C = s->base.channels, h = s->hidden;
    float *S = lth4sa_saved_peek(&s->base.saved, call, SAVE_S), *H = lth4sa_saved_peek(&s->base.saved, call, SAVE_H);
    float *Cp = lth4sa_saved_peek(&s->base.saved, call, SAVE_C), *ru = lth4sa_saved_peek(&s->base.saved, call, SAVE_RU);
    float *rv = lth4sa_saved_peek(&s->base.saved, call, SAVE_RV), *gates = lth4sa_saved_peek(&s->base.saved, call, SAVE_GATES);
    float *cn = lth4sa_saved_peek(&s->base.saved, call, SAVE_CNEW);
    if (!S || !H || !Cp || !ru || !rv || !gates || !cn)
        return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "dia: backward of call %d without a training forward", call);
    if (!d_state_in) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "dia: the host must pass d_state_in");
    float *dgates = lth4sa_scratch_get(&s->base.scratch, WORK_DGATES, B * 4 * C), *scratch = lth4sa_scratch_get(&s->base.scratch, WORK_HIDDEN, B * h);
    if (!dgates || !scratch) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "dia: out of memory");
    const float *dA = d_attention->data;
    const float *dh_out = d_state_out ? d_state_out[0].data : NULL, *dc_out = d_state_out ? d_state_out[1].data : NULL;
    float *dc_prev = d_state_in[1].data;
    for (int64_t b = 0; b < B; b++) {
        const float *gb = gates + b * 4 * C;
        float *db = dgates + b * 4 * C;
        for (int64_t k = 0; k < C; k++) {
            const int64_t at = b * C + k;
            const float i = gb[k], f = gb[C + k], g = gb[2 * C + k], o = gb[3 * C + k];
            const float sc = lth4sa_sigmoid(cn[at]);
            const float dh = dA[at] + (dh_out ? dh_out[at] : 0);
            const float dc = (dc_out ? dc_out[at] : 0) + dh * o * sc * (1 - sc);
            db[k] = dc * g * i * (1 - i);
            db[C + k] = dc * Cp[at] * f * (1 - f);
            db[2 * C + k] = dc * i * (1 - g * g);
            db[3 * C + k] = dh * sc * o * (1 - o);
            dc_prev[at] = dc * f;
        }
    }
    const lth4sa_mlp_t u = dia_mlp(s, 0), v = dia_mlp(s, 1);
    lth4sa_mlp_backward(s->base.host, &u, S, ru, dgates, B, d_extracted->data, scratch);
    lth4sa_mlp_backward(s->base.host, &v, H, rv, dgates, B, d_state_in[0].data, scratch);
    return LTH4SA_OK;
}

static const lth4sa_sam_api_t dia_api = {
    .struct_size = sizeof(lth4sa_sam_api_t),
    .create = dia_create,
    .destroy = lth4sa_base_destroy,
    .param_count = lth4sa_base_param_count,
    .param_info = lth4sa_base_param_info,
    .bind = lth4sa_base_bind,
    .layout = dia_layout,
    .process = dia_process,
    .process_backward = dia_process_backward,
    .prepare = dia_prepare,
    .allocations = lth4sa_base_allocations};

LTH4SA_SINGLE_SAM_ENTRY(dia_descriptor, dia_api)
