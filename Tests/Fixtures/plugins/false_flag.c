/* A SAM that declares LTH4SA_SAM_PROCESS_IGNORES_INPUT but whose process reads F anyway:
 * A[n, c] = sigmoid(F[n, 0, 0, c]). The conformance kit must report the false claim, and the
 * host's inference path (which hands it zero pages instead of F) must not crash. */
#include <lth4sa/helpers.h>

static const lth4sa_descriptor_t false_descriptor = {
    .struct_size = sizeof(lth4sa_descriptor_t), .kind = LTH4SA_KIND_SAM, .id = "falseflag", .name = "False flag",
    .version = "0.1.0", .description = "claims its process ignores F, reads it", .license = "MIT"};

static lth4sa_status_t false_create(const lth4sa_host_t *host, int64_t channels, const lth4sa_option_value_t *options, uint32_t count,
                                    void **instance, lth4sa_error_t *error) {
    (void)options; (void)count;
    lth4sa_sam_base_t *b = lth4sa_base_new(sizeof(lth4sa_sam_base_t), host, "falseflag", channels, 0);
    if (!b) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "falseflag: out of memory");
    *instance = b;
    return LTH4SA_OK;
}

static lth4sa_status_t false_layout(void *instance, const lth4sa_tensor_t *input, lth4sa_sam_layout_t *out, lth4sa_error_t *error) {
    const lth4sa_status_t status = lth4sa_base_layout(instance, input, LTH4SA_COMBINE_MULTIPLY, 0, out, error);
    if (status == LTH4SA_OK) lth4sa_layout_set_flags(out, LTH4SA_SAM_PROCESS_IGNORES_INPUT);
    return status;
}

static lth4sa_status_t false_process(void *instance, int32_t call, const lth4sa_tensor_t *input, const lth4sa_tensor_t *extracted,
                                     const lth4sa_tensor_t *state_in, lth4sa_tensor_t *attention, lth4sa_tensor_t *state_out, int32_t training,
                                     lth4sa_error_t *error) {
    (void)instance; (void)call; (void)extracted; (void)state_in; (void)state_out; (void)training; (void)error;
    const int64_t B = input->shape[0], H = input->shape[1], W = input->shape[2], C = input->shape[3];
    for (int64_t n = 0; n < B; n++)
        for (int64_t c = 0; c < C; c++) attention->data[n * C + c] = lth4sa_sigmoid(input->data[n * H * W * C + c]);
    return LTH4SA_OK;
}

static lth4sa_status_t false_backward(void *instance, int32_t call, const lth4sa_tensor_t *input, const lth4sa_tensor_t *extracted,
                                      const lth4sa_tensor_t *d_attention, const lth4sa_tensor_t *d_state_out, lth4sa_tensor_t *d_extracted,
                                      lth4sa_tensor_t *d_state_in, lth4sa_tensor_t *d_input, lth4sa_error_t *error) {
    (void)instance; (void)call; (void)input; (void)extracted; (void)d_attention; (void)d_state_out; (void)d_state_in; (void)d_input; (void)error;
    memset(d_extracted->data, 0, sizeof(float) * (size_t)lth4sa_tensor_count(d_extracted));
    return LTH4SA_OK;
}

static const lth4sa_sam_api_t false_api = {
    .struct_size = sizeof(lth4sa_sam_api_t), .create = false_create, .destroy = lth4sa_base_destroy,
    .param_count = lth4sa_base_param_count, .param_info = lth4sa_base_param_info, .bind = lth4sa_base_bind,
    .layout = false_layout, .process = false_process, .process_backward = false_backward};

LTH4SA_SINGLE_SAM_ENTRY(false_descriptor, false_api)
