/* Small helpers shared by the first-party C plugins: error reporting, per-call saved
 * contexts, option lookup. Header-only; plugins include it next to the SDK headers. */
#ifndef LTH4SA_PLUGIN_UTIL_H
#define LTH4SA_PLUGIN_UTIL_H

#include <lth4sa/lth4sa.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/** Writes a formatted one-line message and returns `status`. */
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

static inline float lth4sa_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/** Saved tensors per call slot: `slots[call][k]` is a float buffer of `sizes[call][k]` floats,
 *  grown on demand and reused across steps. */
#define LTH4SA_MAX_SAVED 12
typedef struct lth4sa_saved {
    int32_t count;
    float *(*buffers)[LTH4SA_MAX_SAVED];
    int64_t (*sizes)[LTH4SA_MAX_SAVED];
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
    }
    return s->buffers[call][k];
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

/** Checks that `count` bound views match the declarations of `declared`. */
static inline lth4sa_status_t lth4sa_check_bind(const lth4sa_param_t *declared, uint32_t expected, const lth4sa_tensor_t *values,
                                                const lth4sa_tensor_t *grads, uint32_t count, lth4sa_error_t *error) {
    if (count != expected) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "bind: %u tensors, expected %u", count, expected);
    for (uint32_t i = 0; i < count; i++) {
        int64_t n = 1;
        for (int32_t d = 0; d < declared[i].ndim; d++) n *= declared[i].shape[d];
        if (!values[i].data || !grads[i].data || lth4sa_tensor_count(&values[i]) != n || lth4sa_tensor_count(&grads[i]) != n)
            return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "bind: tensor %s does not match its declaration", declared[i].name);
    }
    return LTH4SA_OK;
}

#endif
