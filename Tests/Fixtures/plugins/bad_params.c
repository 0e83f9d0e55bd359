/* A SAM whose parameter declarations are broken: two parameters with one name
 * (-DDUPLICATE_NAMES), a NULL name (-DNULL_NAME), or an absurd size (-DHUGE); or whose buffer
 * declarations are: a buffer named like a parameter (-DBUFFER_CLASH), a parameter with the
 * buffers' counter rule (-DCOUNTER_PARAM), buffers declared without bind_buffers
 * (-DNO_BIND_BUFFERS). The host must refuse each with a message, never drop a tensor from the
 * checkpoint or crash. */
#include <lth4sa/helpers.h>

#ifdef BUFFER_CLASH
#define BUFFER_NAME "fc.weight"
#else
#define BUFFER_NAME "running_mean"
#endif

static const lth4sa_descriptor_t bad_descriptor = {
    .struct_size = sizeof(lth4sa_descriptor_t), .kind = LTH4SA_KIND_SAM, .id = "badparams", .name = "Bad parameters",
    .version = "0.1.0", .description = "declares broken parameters", .license = "MIT"};

static lth4sa_status_t bad_create(const lth4sa_host_t *host, int64_t channels, const lth4sa_option_value_t *options, uint32_t count,
                                  void **instance, lth4sa_error_t *error) {
    (void)options; (void)count;
    lth4sa_sam_base_t *b = lth4sa_base_new(sizeof(lth4sa_sam_base_t), host, "badparams", channels, 2);
    if (!b) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "badparams: out of memory");
    lth4sa_declare(&b->declared[0], "fc.weight", 2, channels, channels, LTH4SA_INIT_ZEROS, 0, 0);
#if defined(DUPLICATE_NAMES)
    lth4sa_declare(&b->declared[1], "fc.weight", 1, channels, 0, LTH4SA_INIT_ZEROS, 0, 0);
#elif defined(NULL_NAME)
    lth4sa_declare(&b->declared[1], NULL, 1, channels, 0, LTH4SA_INIT_ZEROS, 0, 0);
#elif defined(HUGE)
    lth4sa_declare(&b->declared[1], "fc.bias", 2, 1 << 30, 1 << 30, LTH4SA_INIT_ZEROS, 0, 0);
#elif defined(COUNTER_PARAM)
    lth4sa_declare(&b->declared[1], "fc.bias", 1, channels, 0, LTH4SA_INIT_COUNTER, 0, 0);
#else
    lth4sa_declare(&b->declared[1], "fc.bias", 1, channels, 0, LTH4SA_INIT_ZEROS, 0, 0);
#endif
#if defined(BUFFER_CLASH) || defined(NO_BIND_BUFFERS)
    b->buffer_count = 1;
    lth4sa_declare(&b->declared_buffers[0], BUFFER_NAME, 1, channels, 0, LTH4SA_INIT_ZEROS, 0, 0);
#endif
    *instance = b;
    return LTH4SA_OK;
}

static lth4sa_status_t bad_layout(void *instance, const lth4sa_tensor_t *input, lth4sa_sam_layout_t *out, lth4sa_error_t *error) {
    return lth4sa_base_layout(instance, input, LTH4SA_COMBINE_MULTIPLY, 0, out, error);
}

static lth4sa_status_t bad_process(void *instance, int32_t call, const lth4sa_tensor_t *input, const lth4sa_tensor_t *extracted,
                                   const lth4sa_tensor_t *state_in, lth4sa_tensor_t *attention, lth4sa_tensor_t *state_out, int32_t training,
                                   lth4sa_error_t *error) {
    (void)instance; (void)call; (void)input; (void)extracted; (void)state_in; (void)state_out; (void)training; (void)error;
    for (int64_t i = 0; i < lth4sa_tensor_count(attention); i++) attention->data[i] = 1;
    return LTH4SA_OK;
}

static lth4sa_status_t bad_backward(void *instance, int32_t call, const lth4sa_tensor_t *input, const lth4sa_tensor_t *extracted,
                                    const lth4sa_tensor_t *d_attention, const lth4sa_tensor_t *d_state_out, lth4sa_tensor_t *d_extracted,
                                    lth4sa_tensor_t *d_state_in, lth4sa_tensor_t *d_input, lth4sa_error_t *error) {
    (void)instance; (void)call; (void)input; (void)extracted; (void)d_attention; (void)d_state_out; (void)d_state_in; (void)d_input; (void)error;
    memset(d_extracted->data, 0, sizeof(float) * (size_t)lth4sa_tensor_count(d_extracted));
    return LTH4SA_OK;
}

static const lth4sa_sam_api_t bad_api = {
    .struct_size = sizeof(lth4sa_sam_api_t), .create = bad_create, .destroy = lth4sa_base_destroy,
    .param_count = lth4sa_base_param_count, .param_info = lth4sa_base_param_info, .bind = lth4sa_base_bind,
    .layout = bad_layout, .process = bad_process, .process_backward = bad_backward,
    .buffer_count = lth4sa_base_buffer_count, .buffer_info = lth4sa_base_buffer_info,
#ifndef NO_BIND_BUFFERS
    .bind_buffers = lth4sa_base_bind_buffers,
#endif
};

LTH4SA_SINGLE_SAM_ENTRY(bad_descriptor, bad_api)
