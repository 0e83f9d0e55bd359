/* A SAM (like SE without parameters: A = 1) that crashes, exits or hangs where a build flag
 * says: -DCTOR_SEGV / -DCTOR_EXIT in a library constructor (while loading), -DENTRY_SEGV /
 * -DENTRY_EXIT / -DENTRY_HANG in lth4sa_plugin_entry, -DCREATE_HANG in create, and
 * -DPROCESS_SEGV in process from its PROCESS_SEGV-th call on. Discovery and `plugins check`
 * must report each without dying; a training run must name the plugin, call and block. */
#include <lth4sa/helpers.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((unused)) static void crash(void) { *(volatile int *)(uintptr_t)8 = 1; }
__attribute__((unused)) static void hang(void) { for (;;) pause(); }

#if defined(CTOR_SEGV) || defined(CTOR_EXIT)
__attribute__((constructor)) static void while_loading(void) {
#ifdef CTOR_SEGV
    crash();
#else
    exit(3);
#endif
}
#endif

static const lth4sa_descriptor_t crashing_descriptor = {
    .struct_size = sizeof(lth4sa_descriptor_t), .kind = LTH4SA_KIND_SAM, .id = "crashing", .name = "Crashing",
    .version = "0.1.0", .description = "crashes, exits or hangs where its build says", .license = "MIT"};

typedef struct crashing {
    lth4sa_sam_base_t base;
    int calls;
} crashing_t;

static lth4sa_status_t crashing_create(const lth4sa_host_t *host, int64_t channels, const lth4sa_option_value_t *options, uint32_t count,
                                       void **instance, lth4sa_error_t *error) {
    (void)options; (void)count;
#ifdef CREATE_HANG
    hang();
#endif
    crashing_t *c = lth4sa_base_new(sizeof(crashing_t), host, "crashing", channels, 0);
    if (!c) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "crashing: out of memory");
    *instance = c;
    return LTH4SA_OK;
}

static lth4sa_status_t crashing_layout(void *instance, const lth4sa_tensor_t *input, lth4sa_sam_layout_t *out, lth4sa_error_t *error) {
    return lth4sa_base_layout(instance, input, LTH4SA_COMBINE_MULTIPLY, 0, out, error);
}

static lth4sa_status_t crashing_process(void *instance, int32_t call, const lth4sa_tensor_t *input, const lth4sa_tensor_t *extracted,
                                        const lth4sa_tensor_t *state_in, lth4sa_tensor_t *attention, lth4sa_tensor_t *state_out,
                                        int32_t training, lth4sa_error_t *error) {
    (void)call; (void)input; (void)extracted; (void)state_in; (void)state_out; (void)training; (void)error;
    crashing_t *c = instance;
    c->calls++;
#ifdef PROCESS_SEGV
    if (c->calls >= PROCESS_SEGV) crash();
#endif
    for (int64_t i = 0; i < lth4sa_tensor_count(attention); i++) attention->data[i] = 1.0f;
    return LTH4SA_OK;
}

static lth4sa_status_t crashing_backward(void *instance, int32_t call, const lth4sa_tensor_t *input, const lth4sa_tensor_t *extracted,
                                         const lth4sa_tensor_t *d_attention, const lth4sa_tensor_t *d_state_out, lth4sa_tensor_t *d_extracted,
                                         lth4sa_tensor_t *d_state_in, lth4sa_tensor_t *d_input, lth4sa_error_t *error) {
    (void)instance; (void)call; (void)input; (void)extracted; (void)d_attention; (void)d_state_out; (void)d_state_in; (void)d_input;
    (void)error;
    memset(d_extracted->data, 0, sizeof(float) * (size_t)lth4sa_tensor_count(d_extracted));
    return LTH4SA_OK;
}

static const lth4sa_sam_api_t crashing_api = {
    .struct_size = sizeof(lth4sa_sam_api_t), .create = crashing_create, .destroy = lth4sa_base_destroy,
    .param_count = lth4sa_base_param_count, .param_info = lth4sa_base_param_info, .bind = lth4sa_base_bind,
    .layout = crashing_layout, .process = crashing_process, .process_backward = crashing_backward};

#if defined(ENTRY_SEGV) || defined(ENTRY_EXIT) || defined(ENTRY_HANG)
static const lth4sa_descriptor_t *crashing_get_descriptor(uint32_t index) { return index == 0 ? &crashing_descriptor : NULL; }
static const void *crashing_get_factory(uint32_t index, const char *interface_id) {
    return (index == 0 && strcmp(interface_id, LTH4SA_SAM_INTERFACE) == 0) ? &crashing_api : NULL;
}
LTH4SA_EXPORT const lth4sa_plugin_entry_t *lth4sa_plugin_entry(void) {
#if defined(ENTRY_SEGV)
    crash();
#elif defined(ENTRY_EXIT)
    exit(3);
#else
    hang();
#endif
    static const lth4sa_plugin_entry_t table = {.struct_size = sizeof(lth4sa_plugin_entry_t), .abi_version = LTH4SA_ABI_VERSION,
                                                .plugin_count = 1, .descriptor = crashing_get_descriptor, .factory = crashing_get_factory};
    return &table;
}
#else
LTH4SA_SINGLE_SAM_ENTRY(crashing_descriptor, crashing_api)
#endif
