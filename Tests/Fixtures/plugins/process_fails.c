/* A SAM that creates and lays out like SE but whose process fails on its FAIL_AT-th call
 * (default 3): the host must turn that into an error thrown by the network's forward, never an
 * exit. With -DNAN_INSTEAD it reports success and writes NaN into its attention instead,
 * which the finite checks (on by default) must catch and name; -DBAD_VALUE=INFINITY writes +Inf
 * instead of NaN. With -DGRADIENT_INSTEAD the forward is fine and the backward writes the bad
 * value into d_extracted from its FAIL_AT-th call on (it reaches the full-size input gradient,
 * which training checks only on a replay); with -DPARAM_GRADIENT it declares one parameter
 * ("gain", [C], ones, unused by the forward) whose gradient receives the bad value instead. With -DFALSE_FLAG it never fails but declares
 * LTH4SA_SAM_PROCESS_IGNORES_INPUT and reads F anyway, A[n, c] = sigmoid(F[n, 0, 0, c]), and
 * writes d_input in its backward: the conformance kit must report the false claim, and the
 * host's paths without F (which hand it read-only zero pages for F and a sink for d_input)
 * must not crash. With -DSHARED_SCRATCH it never fails and declares
 * LTH4SA_PLUGIN_CONCURRENT_INSTANCES, yet computes its attention sigmoid(S) in one process-wide
 * buffer: two instances in process at once overwrite each other's values, which the kit's
 * concurrency check must catch. -DOLD_TABLE also gives the descriptor of that first header. */
#include <lth4sa/helpers.h>
#ifdef SHARED_SCRATCH
#include <unistd.h>
#endif

#ifndef BAD_VALUE
#define BAD_VALUE NAN
#endif
#ifndef FAIL_AT
#define FAIL_AT 3
#endif
#ifdef PARAM_GRADIENT
#define PARAMS 1
#else
#define PARAMS 0
#endif

static const lth4sa_descriptor_t failing_descriptor = {
#ifdef OLD_TABLE
    .struct_size = offsetof(lth4sa_descriptor_t, flags),
#else
    .struct_size = sizeof(lth4sa_descriptor_t),
#endif
#ifdef SHARED_SCRATCH
    .flags = LTH4SA_PLUGIN_CONCURRENT_INSTANCES, /* a false claim */
#endif
    .kind = LTH4SA_KIND_SAM, .id = "failing", .name = "Failing",
    .version = "0.1.0", .description = "fails in process on its third call", .license = "MIT"};

#ifdef SHARED_SCRATCH
static float shared_scratch[1 << 16];
static int writers; /* threads between writing the scratch and reading it back (atomic) */
#endif

typedef struct failing {
    lth4sa_sam_base_t base;
    int calls, backward_calls;
} failing_t;

static lth4sa_status_t failing_create(const lth4sa_host_t *host, int64_t channels, const lth4sa_option_value_t *options, uint32_t count,
                                      void **instance, lth4sa_error_t *error) {
    (void)options; (void)count;
    failing_t *f = lth4sa_base_new(sizeof(failing_t), host, "failing", channels, PARAMS);
    if (!f) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "failing: out of memory");
#ifdef PARAM_GRADIENT
    lth4sa_declare(&f->base.declared[0], "gain", 1, channels, 0, LTH4SA_INIT_ONES, 0, 0);
#endif
    *instance = f;
    return LTH4SA_OK;
}

static lth4sa_status_t failing_layout(void *instance, const lth4sa_tensor_t *input, lth4sa_sam_layout_t *out, lth4sa_error_t *error) {
    const lth4sa_status_t status = lth4sa_base_layout(instance, input, LTH4SA_COMBINE_MULTIPLY, 0, out, error);
#ifdef FALSE_FLAG
    if (status == LTH4SA_OK) lth4sa_layout_set_flags(out, LTH4SA_SAM_PROCESS_IGNORES_INPUT);
#endif
    return status;
}

#ifdef PARALLEL_FOR
/* -DPARALLEL_FOR: the attention is written through the host's parallel_for, one image a call. */
typedef struct fill { float *a; int64_t per_image; } fill_t;
static void fill_image(void *arg, int64_t i) {
    const fill_t *f = arg;
    for (int64_t k = 0; k < f->per_image; k++) f->a[i * f->per_image + k] = 1.0f;
}
#endif

static lth4sa_status_t failing_process(void *instance, int32_t call, const lth4sa_tensor_t *input, const lth4sa_tensor_t *extracted,
                                       const lth4sa_tensor_t *state_in, lth4sa_tensor_t *attention, lth4sa_tensor_t *state_out,
                                       int32_t training, lth4sa_error_t *error) {
    (void)call; (void)input; (void)extracted; (void)state_in; (void)state_out; (void)training;
#ifdef FALSE_FLAG
    const int64_t B = input->shape[0], H = input->shape[1], W = input->shape[2], C = input->shape[3];
    for (int64_t n = 0; n < B; n++)
        for (int64_t c = 0; c < C; c++) attention->data[n * C + c] = lth4sa_sigmoid(input->data[n * H * W * C + c]);
    (void)instance; (void)error;
    return LTH4SA_OK;
#endif
#ifdef SHARED_SCRATCH
    const int64_t count = lth4sa_tensor_count(extracted);
    for (int64_t i = 0; i < count; i++) shared_scratch[i] = lth4sa_sigmoid(extracted->data[i]);
    __atomic_add_fetch(&writers, 1, __ATOMIC_SEQ_CST);
    for (int waited = 0; waited < 100 && __atomic_load_n(&writers, __ATOMIC_SEQ_CST) < 2; waited++) usleep(50); /* up to 5 ms for another */
    for (int64_t i = 0; i < count; i++) attention->data[i] = shared_scratch[i];
    usleep(200); /* the other one has read too before either writes again */
    __atomic_sub_fetch(&writers, 1, __ATOMIC_SEQ_CST);
    (void)instance; (void)error;
    return LTH4SA_OK;
#endif
    failing_t *f = instance;
#if defined(GRADIENT_INSTEAD) || defined(PARAM_GRADIENT)
    const int broken = 0;
#else
    const int broken = ++f->calls >= FAIL_AT;
#endif
#ifndef NAN_INSTEAD
    if (broken) return lth4sa_fail(error, LTH4SA_ERR_INTERNAL, "failing: deliberate failure on call %d", f->calls);
#endif
#ifdef PARALLEL_FOR
    fill_t fill = {attention->data, lth4sa_tensor_count(attention) / attention->shape[0]};
    f->base.host->parallel_for(f->base.host->context, attention->shape[0], fill_image, &fill);
    (void)broken;
#else
    for (int64_t i = 0; i < lth4sa_tensor_count(attention); i++) attention->data[i] = broken ? BAD_VALUE : 1.0f;
#endif
    return LTH4SA_OK;
}

static lth4sa_status_t failing_backward(void *instance, int32_t call, const lth4sa_tensor_t *input, const lth4sa_tensor_t *extracted,
                                        const lth4sa_tensor_t *d_attention, const lth4sa_tensor_t *d_state_out, lth4sa_tensor_t *d_extracted,
                                        lth4sa_tensor_t *d_state_in, lth4sa_tensor_t *d_input, lth4sa_error_t *error) {
    (void)call; (void)input; (void)extracted; (void)d_attention; (void)d_state_out; (void)d_state_in; (void)d_input;
    (void)error;
    failing_t *f = instance;
    const int broken = ++f->backward_calls >= FAIL_AT;
    (void)broken;
    memset(d_extracted->data, 0, sizeof(float) * (size_t)lth4sa_tensor_count(d_extracted));
#ifdef GRADIENT_INSTEAD
    if (broken) d_extracted->data[0] = BAD_VALUE;
#endif
#ifdef PARAM_GRADIENT
    if (broken) f->base.grad[0][0] += BAD_VALUE;
#endif
#ifdef FALSE_FLAG
    for (int64_t i = 0; i < lth4sa_tensor_count(d_input); i++) d_input->data[i] += 1.0f;
#endif
    return LTH4SA_OK;
}

/* -DOLD_TABLE: the table of the first ABI 1 header, which ended before `prepare`. */
static const lth4sa_sam_api_t failing_api = {
#ifdef OLD_TABLE
    .struct_size = offsetof(lth4sa_sam_api_t, prepare),
#else
    .struct_size = sizeof(lth4sa_sam_api_t),
#endif
    .create = failing_create, .destroy = lth4sa_base_destroy,
    .param_count = lth4sa_base_param_count, .param_info = lth4sa_base_param_info, .bind = lth4sa_base_bind,
    .layout = failing_layout,
#ifndef NULL_PROCESS /* -DNULL_PROCESS: a required function left NULL, which the host must refuse */
    .process = failing_process,
#endif
    .process_backward = failing_backward};

LTH4SA_SINGLE_SAM_ENTRY(failing_descriptor, failing_api)
