/* lth4sa SDK: header-only helpers for SAM plugins, used by every first-party plugin (Plugins/)
 * and by the CBAM example (SDK/examples) alike. Nothing here is part of the ABI: it compiles
 * into the plugin, so a plugin built against an older copy keeps working.
 *
 *   lth4sa_fail              one-line error message (printf-checked) + status
 *   lth4sa_option            option lookup by name
 *   lth4sa_sigmoid           common activations
 *   lth4sa_saved_*           per-call-slot saved tensors (a SAM instance serves several blocks)
 *   lth4sa_scratch_*         per-call work buffers, reserved in `prepare` so calls never allocate
 *   lth4sa_declare[4]        parameter declarations (and lth4sa_declared_count)
 *   lth4sa_mlp_*             a two-layer MLP forward/backward through the host's GEMM
 *   lth4sa_sam_base_t        the instance base: parameters, buffers, binding, default layout
 *   LTH4SA_SINGLE_SAM_ENTRY  the exported entry of a one-plugin library
 *
 * Threading: the helpers keep no global state; an instance's helpers run on the thread that
 * calls the instance, as the ABI's [main thread] tags state. */
#ifndef LTH4SA_HELPERS_H
#define LTH4SA_HELPERS_H

#include <lth4sa/lth4sa.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

/** Writes a formatted one-line message into `error` and returns `status`. */
static inline lth4sa_status_t lth4sa_fail(lth4sa_error_t *error, lth4sa_status_t status, const char *format, ...) LTH4SA_PRINTF(3, 4);
static inline lth4sa_status_t lth4sa_fail(lth4sa_error_t *error, lth4sa_status_t status, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(error->message, sizeof error->message, format, args);
    va_end(args);
    return status;
}

/** The value of option `name`, or `fallback` when absent. */
static inline double lth4sa_option(const lth4sa_option_value_t *options, uint32_t count, const char *name, double fallback) {
    for (uint32_t i = 0; i < count; i++)
        if (strcmp(options[i].name, name) == 0) return options[i].value;
    return fallback;
}

/** 1 / (1 + e^-x). */
static inline float lth4sa_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/** max(x, 0). */
static inline float lth4sa_relu(float x) { return x > 0 ? x : 0; }

/** Saved tensors per call slot: `slots[call][k]` is a float buffer of `sizes[call][k]` floats,
 *  grown on demand and reused across steps. */
#define LTH4SA_MAX_SAVED 12
typedef struct lth4sa_saved {
    int32_t count;
    float *(*buffers)[LTH4SA_MAX_SAVED];
    int64_t (*sizes)[LTH4SA_MAX_SAVED];
    uint64_t allocations; /* heap (re)allocations made, for the `allocations` ABI call */
} lth4sa_saved_t;

/** Buffer `k` of slot `call` with room for `n` floats (NULL when out of memory). */
static inline float *lth4sa_saved_get(lth4sa_saved_t *s, int32_t call, int32_t k, int64_t n) {
    if (call < 0 || k < 0 || k >= LTH4SA_MAX_SAVED) return NULL;
    if (call >= s->count) {
        int32_t grown = call + 1;
        void *b = realloc(s->buffers, sizeof *s->buffers * (size_t)grown);
        if (!b) return NULL;
        s->buffers = b;
        void *z = realloc(s->sizes, sizeof *s->sizes * (size_t)grown);
        if (!z) return NULL;
        s->sizes = z;
        s->allocations += 2;
        for (int32_t c = s->count; c < grown; c++) {
            memset(s->buffers[c], 0, sizeof s->buffers[c]);
            memset(s->sizes[c], 0, sizeof s->sizes[c]);
        }
        s->count = grown;
    }
    if (s->sizes[call][k] < n) {
        float *p = realloc(s->buffers[call][k], sizeof(float) * (size_t)n);
        if (!p) return NULL;
        s->buffers[call][k] = p;
        s->sizes[call][k] = n;
        s->allocations++;
    }
    return s->buffers[call][k];
}

/** Work buffers of one call, not kept between calls (what `process` or a backward would
 *  otherwise malloc and free): buffer `k` has room for `sizes[k]` floats. Reserve them in
 *  `prepare`; `lth4sa_scratch_get` then never allocates. */
typedef struct lth4sa_scratch {
    float *buffers[LTH4SA_MAX_SAVED];
    int64_t sizes[LTH4SA_MAX_SAVED];
    uint64_t allocations;
} lth4sa_scratch_t;

/** Work buffer `k` with room for `n` floats, grown on demand (NULL when out of memory). */
static inline float *lth4sa_scratch_get(lth4sa_scratch_t *s, int32_t k, int64_t n) {
    if (k < 0 || k >= LTH4SA_MAX_SAVED) return NULL;
    if (s->sizes[k] < n) {
        float *p = realloc(s->buffers[k], sizeof(float) * (size_t)(n > 0 ? n : 1));
        if (!p) return NULL;
        s->buffers[k] = p;
        s->sizes[k] = n;
        s->allocations++;
    }
    return s->buffers[k];
}

static inline void lth4sa_scratch_free(lth4sa_scratch_t *s) {
    for (int32_t k = 0; k < LTH4SA_MAX_SAVED; k++) free(s->buffers[k]);
    memset(s, 0, sizeof *s);
}

/** The buffer saved by the forward of `call` (NULL if that forward did not save it). */
static inline float *lth4sa_saved_peek(const lth4sa_saved_t *s, int32_t call, int32_t k) {
    if (call < 0 || call >= s->count || k < 0 || k >= LTH4SA_MAX_SAVED) return NULL;
    return s->buffers[call][k];
}

static inline void lth4sa_saved_free(lth4sa_saved_t *s) {
    for (int32_t c = 0; c < s->count; c++)
        for (int32_t k = 0; k < LTH4SA_MAX_SAVED; k++) free(s->buffers[c][k]);
    free(s->buffers);
    free(s->sizes);
    memset(s, 0, sizeof *s);
}

/** Fills a parameter declaration. */
static inline void lth4sa_declare(lth4sa_param_t *p, const char *name, int32_t ndim, int64_t d0, int64_t d1, int32_t init, double a, double b) {
    memset(p, 0, sizeof *p);
    p->name = name;
    p->ndim = ndim;
    p->shape[0] = d0;
    p->shape[1] = d1;
    p->init = init;
    p->init_a = a;
    p->init_b = b;
}

/** Fills a 4-D parameter declaration (e.g. a conv weight [O, I, kh, kw]). */
static inline void lth4sa_declare4(lth4sa_param_t *p, const char *name, int64_t d0, int64_t d1, int64_t d2, int64_t d3, int32_t init,
                                   double a, double b) {
    lth4sa_declare(p, name, 4, d0, d1, init, a, b);
    p->shape[2] = d2;
    p->shape[3] = d3;
}

/** Elements of a declared parameter or buffer (1 for a scalar, `ndim` 0). */
static inline int64_t lth4sa_declared_count(const lth4sa_param_t *p) {
    int64_t n = 1;
    for (int32_t d = 0; d < p->ndim; d++) n *= p->shape[d];
    return n;
}

/** Checks that `count` bound views match the declarations of `declared`. */
static inline lth4sa_status_t lth4sa_check_bind(const lth4sa_param_t *declared, uint32_t expected, const lth4sa_tensor_t *values,
                                                const lth4sa_tensor_t *grads, uint32_t count, lth4sa_error_t *error) {
    if (count != expected) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "bind: %u tensors, expected %u", count, expected);
    for (uint32_t i = 0; i < count; i++) {
        const int64_t n = lth4sa_declared_count(&declared[i]);
        if (!values[i].data || !grads[i].data || lth4sa_tensor_count(&values[i]) != n || lth4sa_tensor_count(&grads[i]) != n)
            return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "bind: tensor %s does not match its declaration", declared[i].name);
    }
    return LTH4SA_OK;
}

/* ---- a two-layer MLP (Linear -> ReLU -> Linear), PyTorch weight layout [out, in] --------- */

/** The parameters of `x [B, n] -> hidden [B, h] -> out [B, m]`: w0 [h, n], b0 [h], w1 [m, h], b1 [m],
 *  and where their gradients accumulate. */
typedef struct lth4sa_mlp {
    int64_t n, h, m;
    const float *w0, *b0, *w1, *b1;
    float *gw0, *gb0, *gw1, *gb1;
} lth4sa_mlp_t;

/** hidden = ReLU(x w0^T + b0);  out += hidden w1^T + b1 (`out` is accumulated into). */
static inline void lth4sa_mlp_forward(const lth4sa_host_t *host, const lth4sa_mlp_t *p, const float *x, int64_t B, float *hidden, float *out) {
    for (int64_t b = 0; b < B; b++) memcpy(hidden + b * p->h, p->b0, sizeof(float) * (size_t)p->h);
    host->gemm(host->context, 0, 1, B, p->h, p->n, 1.0f, x, p->w0, 1.0f, hidden);
    for (int64_t i = 0; i < B * p->h; i++) hidden[i] = hidden[i] > 0 ? hidden[i] : 0;
    for (int64_t b = 0; b < B; b++) for (int64_t j = 0; j < p->m; j++) out[b * p->m + j] += p->b1[j];
    host->gemm(host->context, 0, 1, B, p->m, p->h, 1.0f, hidden, p->w1, 1.0f, out);
}

/** From dout [B, m]: gw1 += dout^T hidden, gb1 += sum dout, dh = dout w1 * (hidden > 0),
 *  gw0 += dh^T x, gb0 += sum dh, dx = dh w0 (overwritten). `scratch` holds B*h floats. */
static inline void lth4sa_mlp_backward(const lth4sa_host_t *host, const lth4sa_mlp_t *p, const float *x, const float *hidden,
                                       const float *dout, int64_t B, float *dx, float *scratch) {
    host->gemm(host->context, 1, 0, p->m, p->h, B, 1.0f, dout, hidden, 1.0f, p->gw1);
    for (int64_t b = 0; b < B; b++) for (int64_t j = 0; j < p->m; j++) p->gb1[j] += dout[b * p->m + j];
    host->gemm(host->context, 0, 0, B, p->h, p->m, 1.0f, dout, p->w1, 0.0f, scratch);
    for (int64_t i = 0; i < B * p->h; i++) if (hidden[i] <= 0) scratch[i] = 0;
    host->gemm(host->context, 1, 0, p->h, p->n, B, 1.0f, scratch, x, 1.0f, p->gw0);
    for (int64_t b = 0; b < B; b++) for (int64_t j = 0; j < p->h; j++) p->gb0[j] += scratch[b * p->h + j];
    host->gemm(host->context, 0, 0, B, p->n, p->h, 1.0f, scratch, p->w0, 0.0f, dx);
}

/* ---- the part every first-party SAM shares ---------------------------------------- */

#define LTH4SA_MAX_PARAMS 16
#define LTH4SA_MAX_BUFFERS 8

/** The first member of every first-party SAM instance: host, channels, declared parameters
 *  and buffers, their host-owned storage once bound, and the saved per-call contexts. */
typedef struct lth4sa_sam_base {
    const lth4sa_host_t *host;
    const char *id;
    int64_t channels;
    uint32_t param_count;
    lth4sa_param_t declared[LTH4SA_MAX_PARAMS];
    float *value[LTH4SA_MAX_PARAMS], *grad[LTH4SA_MAX_PARAMS];
    lth4sa_saved_t saved;
    lth4sa_scratch_t scratch;
    uint32_t buffer_count; /* set after `lth4sa_base_new` by a SAM with buffers */
    lth4sa_param_t declared_buffers[LTH4SA_MAX_BUFFERS];
    float *buffer[LTH4SA_MAX_BUFFERS];
} lth4sa_sam_base_t;

/** Allocates an instance of `size` bytes whose first member is the base. */
static inline void *lth4sa_base_new(size_t size, const lth4sa_host_t *host, const char *id, int64_t channels, uint32_t param_count) {
    lth4sa_sam_base_t *b = calloc(1, size);
    if (!b) return NULL;
    b->host = host;
    b->id = id;
    b->channels = channels;
    b->param_count = param_count;
    return b;
}

static inline void lth4sa_base_destroy(void *instance) {
    lth4sa_sam_base_t *b = instance;
    lth4sa_saved_free(&b->saved);
    lth4sa_scratch_free(&b->scratch);
    free(b);
}

/** The `allocations` ABI call for instances built on the base: what `lth4sa_saved_get` and
 *  `lth4sa_scratch_get` allocated (a SAM that mallocs elsewhere must count that too). */
static inline uint64_t lth4sa_base_allocations(void *instance) {
    const lth4sa_sam_base_t *b = instance;
    return b->saved.allocations + b->scratch.allocations;
}

/** Reserves saved buffer `k` of `n` floats in every call slot < `calls` (for `prepare`);
 *  0 when out of memory. */
static inline int lth4sa_saved_reserve(lth4sa_saved_t *s, int32_t calls, int32_t k, int64_t n) {
    for (int32_t c = 0; c < calls; c++)
        if (!lth4sa_saved_get(s, c, k, n)) return 0;
    return 1;
}

static inline uint32_t lth4sa_base_param_count(void *instance) { return ((lth4sa_sam_base_t *)instance)->param_count; }

static inline lth4sa_status_t lth4sa_base_param_info(void *instance, uint32_t index, lth4sa_param_t *out, lth4sa_error_t *error) {
    lth4sa_sam_base_t *b = instance;
    if (index >= b->param_count) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "%s: no parameter %u", b->id, index);
    *out = b->declared[index];
    return LTH4SA_OK;
}

static inline lth4sa_status_t lth4sa_base_bind(void *instance, const lth4sa_tensor_t *values, const lth4sa_tensor_t *grads, uint32_t count,
                                               lth4sa_error_t *error) {
    lth4sa_sam_base_t *b = instance;
    lth4sa_status_t st = lth4sa_check_bind(b->declared, b->param_count, values, grads, count, error);
    if (st != LTH4SA_OK) return st;
    for (uint32_t i = 0; i < count; i++) { b->value[i] = values[i].data; b->grad[i] = grads[i].data; }
    return LTH4SA_OK;
}

static inline uint32_t lth4sa_base_buffer_count(void *instance) { return ((lth4sa_sam_base_t *)instance)->buffer_count; }

static inline lth4sa_status_t lth4sa_base_buffer_info(void *instance, uint32_t index, lth4sa_param_t *out, lth4sa_error_t *error) {
    lth4sa_sam_base_t *b = instance;
    if (index >= b->buffer_count) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "%s: no buffer %u", b->id, index);
    *out = b->declared_buffers[index];
    return LTH4SA_OK;
}

static inline lth4sa_status_t lth4sa_base_bind_buffers(void *instance, const lth4sa_tensor_t *values, uint32_t count, lth4sa_error_t *error) {
    lth4sa_sam_base_t *b = instance;
    if (count != b->buffer_count) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "bind_buffers: %u tensors, expected %u", count, b->buffer_count);
    for (uint32_t i = 0; i < count; i++) {
        if (!values[i].data || lth4sa_tensor_count(&values[i]) != lth4sa_declared_count(&b->declared_buffers[i]))
            return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "bind_buffers: buffer %s does not match its declaration", b->declared_buffers[i].name);
    }
    for (uint32_t i = 0; i < count; i++) b->buffer[i] = values[i].data;
    return LTH4SA_OK;
}

/** Checks `input` is [B, H, W, C] and fills a layout with S = [B, C] and, when
 *  `spatial_groups` is 0, A = [B, 1, 1, C], else A = [B, H, W, spatial_groups]. */
static inline lth4sa_status_t lth4sa_base_layout(const lth4sa_sam_base_t *b, const lth4sa_tensor_t *input, uint32_t combine,
                                                 int64_t spatial_groups, lth4sa_sam_layout_t *out, lth4sa_error_t *error) {
    if (input->ndim != 4 || input->shape[3] != b->channels)
        return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "%s: input must be [B,H,W,%lld]", b->id, (long long)b->channels);
    size_t room = out->struct_size ? out->struct_size : offsetof(lth4sa_sam_layout_t, flags);
    if (room > sizeof *out) room = sizeof *out;
    memset(out, 0, room);
    out->struct_size = (uint32_t)room;
    out->combine = combine;
    out->extract_ndim = 2;
    out->extract_shape[0] = input->shape[0];
    out->extract_shape[1] = b->channels;
    out->attention_ndim = 4;
    out->attention_shape[0] = input->shape[0];
    out->attention_shape[1] = spatial_groups ? input->shape[1] : 1;
    out->attention_shape[2] = spatial_groups ? input->shape[2] : 1;
    out->attention_shape[3] = spatial_groups ? spatial_groups : b->channels;
    return LTH4SA_OK;
}

/** Sets `flags` (LTH4SA_SAM_*) when the host's layout struct has room for them (after
 *  `lth4sa_base_layout`); an older host never sees them. */
static inline void lth4sa_layout_set_flags(lth4sa_sam_layout_t *out, uint32_t flags) {
    if (out->struct_size >= offsetof(lth4sa_sam_layout_t, flags) + sizeof out->flags) out->flags = flags;
}

/** Defines the exported entry of a library holding one plugin `descriptor` with table `api`
 *  for interface `interface_id`. */
#define LTH4SA_SINGLE_ENTRY(the_descriptor, the_interface, the_api)                                              \
    static const lth4sa_descriptor_t *lth4sa_get_descriptor(uint32_t index) { return index == 0 ? &(the_descriptor) : NULL; } \
    static const void *lth4sa_get_factory(uint32_t index, const char *interface_id) {                             \
        return (index == 0 && strcmp(interface_id, the_interface) == 0) ? &(the_api) : NULL;                    \
    }                                                                                                             \
    static const lth4sa_plugin_entry_t lth4sa_entry_table = {                                                     \
        .struct_size = sizeof(lth4sa_plugin_entry_t),                                                             \
        .abi_version = LTH4SA_ABI_VERSION,                                                                        \
        .plugin_count = 1,                                                                                        \
        .descriptor = lth4sa_get_descriptor,                                                                      \
        .factory = lth4sa_get_factory};                                                                           \
    LTH4SA_EXPORT const lth4sa_plugin_entry_t *lth4sa_plugin_entry(void) { return &lth4sa_entry_table; }

/** The entry of a library holding the one SAM `the_descriptor` with table `the_api`. */
#define LTH4SA_SINGLE_SAM_ENTRY(the_descriptor, the_api) LTH4SA_SINGLE_ENTRY(the_descriptor, LTH4SA_SAM_INTERFACE, the_api)

/** The entry of a library holding the one searcher `the_descriptor` with table `the_api`. */
#define LTH4SA_SINGLE_SEARCHER_ENTRY(the_descriptor, the_api) LTH4SA_SINGLE_ENTRY(the_descriptor, LTH4SA_SEARCHER_INTERFACE, the_api)

#endif
