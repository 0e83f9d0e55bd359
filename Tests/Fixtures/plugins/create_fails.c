/* A SAM whose create always fails with a message: the host must report it and exit cleanly. */
#include <lth4sa/helpers.h>
static const lth4sa_descriptor_t d = {
    .struct_size = sizeof(lth4sa_descriptor_t),
    .kind = LTH4SA_KIND_SAM,
    .id = "refuser",
    .name = "Refuser",
    .version = "0.1.0",
    .description = "always refuses",
    .license = "MIT",
    .option_count = 0};
static lth4sa_status_t create(const lth4sa_host_t *h, int64_t c, const lth4sa_option_value_t *o, uint32_t n, void **out, lth4sa_error_t *e) {
    (void)h; (void)c; (void)o; (void)n; (void)out;
    return lth4sa_fail(e, LTH4SA_ERR_UNSUPPORTED, "refuser deliberately refuses every configuration");
}
static void destroy(void *i) { (void)i; }
static uint32_t count(void *i) { (void)i; return 0; }
static lth4sa_status_t info(void *i, uint32_t k, lth4sa_param_t *p, lth4sa_error_t *e) { (void)i; (void)k; (void)p; (void)e; return 1; }
static lth4sa_status_t bind(void *i, const lth4sa_tensor_t *v, const lth4sa_tensor_t *g, uint32_t n, lth4sa_error_t *e) { (void)i; (void)v; (void)g; (void)n; (void)e; return 0; }
static lth4sa_status_t layout(void *i, const lth4sa_tensor_t *x, lth4sa_sam_layout_t *l, lth4sa_error_t *e) { (void)i; (void)x; (void)l; (void)e; return 1; }
static lth4sa_status_t process(void *i, int32_t c, const lth4sa_tensor_t *x, const lth4sa_tensor_t *s, const lth4sa_tensor_t *si, lth4sa_tensor_t *a, lth4sa_tensor_t *so, int32_t t, lth4sa_error_t *e) {
    (void)i; (void)c; (void)x; (void)s; (void)si; (void)a; (void)so; (void)t; (void)e; return 1;
}
static lth4sa_status_t backward(void *i, int32_t c, const lth4sa_tensor_t *x, const lth4sa_tensor_t *s, const lth4sa_tensor_t *da, const lth4sa_tensor_t *dso,
                                lth4sa_tensor_t *ds, lth4sa_tensor_t *dsi, lth4sa_tensor_t *dx, lth4sa_error_t *e) {
    (void)i; (void)c; (void)x; (void)s; (void)da; (void)dso; (void)ds; (void)dsi; (void)dx; (void)e; return 1;
}
static const lth4sa_sam_api_t api = {
    .struct_size = sizeof(lth4sa_sam_api_t),
    .create = create,
    .destroy = destroy,
    .param_count = count,
    .param_info = info,
    .bind = bind,
    .layout = layout,
    .process = process,
    .process_backward = backward};
LTH4SA_SINGLE_SAM_ENTRY(d, api)
