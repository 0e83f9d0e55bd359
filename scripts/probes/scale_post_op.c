/*
 * Probe: can oneDNN apply an SE attention's per-(image, channel) scale inside a convolution?
 *
 *     y[n, h, w, o] = ReLU(a[n, o] * (sum_i W[o, i] x[n, h, w, i] + b[o]) + s[n, h, w, o])
 *
 * A 1x1 convolution (NHWC, fp32, forward inference) with the post-ops binary mul by
 * a [N, O, 1, 1], binary add of s [N, O, H, W] and ReLU, run two ways:
 *   batched:   one call over N images, a as [N, O, 1, 1] (a per-(image, channel) operand);
 *   per image: N calls over one image each, a[n] as [1, O, 1, 1] (a per-channel operand);
 * and, for reference, the batched call without the mul (the plain block's convolution).
 * Prints, for each: oneDNN's implementation, the largest error against fp64 loops, and the
 * best of 50 timed calls on one thread. Builds against oneDNN 2.x (Debian 12's 2.6) or 3.x.
 * Usage: scale_post_op N IN OUT HW
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_version.h>

#define CHECK(call) do { dnnl_status_t s_ = (call); if (s_ != dnnl_success) { \
    fprintf(stderr, "%s failed: status %d\n", #call, (int)s_); exit(1); } } while (0)

static double seconds(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static float *floats(long count) { float *p = malloc(count * sizeof(float)); for (long i = 0; i < count; i++) p[i] = (float)rand() / RAND_MAX - 0.5f; return p; }

static dnnl_engine_t engine;
static dnnl_stream_t stream;

/* Memory descriptors: a struct passed by address in oneDNN 2.x, a handle in 3.x. */
#if DNNL_VERSION_MAJOR >= 3
typedef dnnl_memory_desc_t Desc;
typedef const_dnnl_memory_desc_t QueriedDesc;
#define DESC(d) (d)
static Desc desc(int dims, const dnnl_dims_t sizes, dnnl_format_tag_t tag) {
    Desc d; CHECK(dnnl_memory_desc_create_with_tag(&d, dims, sizes, dnnl_f32, tag)); return d;
}
#else
typedef dnnl_memory_desc_t Desc;
typedef const dnnl_memory_desc_t *QueriedDesc;
#define DESC(d) (&(d))
static Desc desc(int dims, const dnnl_dims_t sizes, dnnl_format_tag_t tag) {
    Desc d; CHECK(dnnl_memory_desc_init_by_tag(&d, dims, sizes, dnnl_f32, tag)); return d;
}
#endif

/* One convolution primitive over `images` images; `mul`: with the scale post-op first. */
typedef struct { dnnl_primitive_t conv; dnnl_memory_t src, weights, bias, dst, scale, shortcut; const char *impl; int mul; } Call;

static Call make(int images, int in, int out, int hw, int mul, const float *oihw) {
    Call c = { .mul = mul };
    dnnl_dims_t s = {images, in, hw, hw}, w = {out, in, 1, 1}, b = {out}, d = {images, out, hw, hw}, a = {images, out, 1, 1};
    Desc src = desc(4, s, dnnl_nhwc), any = desc(4, w, dnnl_format_tag_any), oihwDesc = desc(4, w, dnnl_oihw);
    Desc bias = desc(1, b, dnnl_x), dst = desc(4, d, dnnl_nhwc), scale = desc(4, a, dnnl_nhwc);
    dnnl_dims_t strides = {1, 1}, pads = {0, 0};
    dnnl_post_ops_t ops; dnnl_primitive_attr_t attr;
    CHECK(dnnl_post_ops_create(&ops));
    if (mul) CHECK(dnnl_post_ops_append_binary(ops, dnnl_binary_mul, DESC(scale)));
    CHECK(dnnl_post_ops_append_binary(ops, dnnl_binary_add, DESC(dst)));
    CHECK(dnnl_primitive_attr_create(&attr));
    dnnl_primitive_desc_t pd;
#if DNNL_VERSION_MAJOR >= 3
    CHECK(dnnl_post_ops_append_eltwise(ops, dnnl_eltwise_relu, 0, 0));
    CHECK(dnnl_primitive_attr_set_post_ops(attr, ops));
    CHECK(dnnl_convolution_forward_primitive_desc_create(&pd, engine, dnnl_forward_inference, dnnl_convolution_direct, src, any, bias, dst,
                                                         strides, NULL, pads, pads, attr));
#else
    CHECK(dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_relu, 0, 0));
    CHECK(dnnl_primitive_attr_set_post_ops(attr, ops));
    dnnl_convolution_desc_t conv;
    CHECK(dnnl_convolution_forward_desc_init(&conv, dnnl_forward_inference, dnnl_convolution_direct, &src, &any, &bias, &dst, strides, pads, pads));
    CHECK(dnnl_primitive_desc_create(&pd, &conv, attr, engine, NULL));
#endif
    CHECK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &c.impl));
    CHECK(dnnl_primitive_create(&c.conv, pd));
    /* the weights' layout: a pointer to a descriptor in 2.x, a handle in 3.x; passed as is */
    QueriedDesc laid = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    CHECK(dnnl_memory_create(&c.src, DESC(src), engine, DNNL_MEMORY_NONE));
    CHECK(dnnl_memory_create(&c.weights, laid, engine, DNNL_MEMORY_ALLOCATE));
    CHECK(dnnl_memory_create(&c.bias, DESC(bias), engine, DNNL_MEMORY_NONE));
    CHECK(dnnl_memory_create(&c.dst, DESC(dst), engine, DNNL_MEMORY_NONE));
    CHECK(dnnl_memory_create(&c.scale, DESC(scale), engine, DNNL_MEMORY_NONE));
    CHECK(dnnl_memory_create(&c.shortcut, DESC(dst), engine, DNNL_MEMORY_NONE));
    /* the weights into the primitive's layout */
    dnnl_memory_t plain; dnnl_primitive_desc_t rpd; dnnl_primitive_t reorder;
    CHECK(dnnl_memory_create(&plain, DESC(oihwDesc), engine, (void *)oihw));
    CHECK(dnnl_reorder_primitive_desc_create(&rpd, DESC(oihwDesc), engine, laid, engine, NULL));
    CHECK(dnnl_primitive_create(&reorder, rpd));
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, plain}, {DNNL_ARG_TO, c.weights}};
    CHECK(dnnl_primitive_execute(reorder, stream, 2, args));
    CHECK(dnnl_stream_wait(stream));
    return c;
}

static void run(Call *c, float *x, float *bias, float *a, float *s, float *y) {
    CHECK(dnnl_memory_set_data_handle(c->src, x)); CHECK(dnnl_memory_set_data_handle(c->bias, bias));
    CHECK(dnnl_memory_set_data_handle(c->dst, y)); CHECK(dnnl_memory_set_data_handle(c->scale, a));
    CHECK(dnnl_memory_set_data_handle(c->shortcut, s));
    dnnl_exec_arg_t args[6] = {{DNNL_ARG_SRC, c->src}, {DNNL_ARG_WEIGHTS, c->weights}, {DNNL_ARG_BIAS, c->bias}, {DNNL_ARG_DST, c->dst},
        {DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, c->mul ? c->scale : c->shortcut},
        {DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1, c->shortcut}};
    CHECK(dnnl_primitive_execute(c->conv, stream, c->mul ? 6 : 5, args));
}

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: %s N IN OUT HW\n", argv[0]); return 2; }
    int n = atoi(argv[1]), in = atoi(argv[2]), out = atoi(argv[3]), hw = atoi(argv[4]);
    long pixels = (long)hw * hw, perIn = pixels * in, perOut = pixels * out;
    CHECK(dnnl_engine_create(&engine, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    float *x = floats(n * perIn), *w = floats((long)out * in), *b = floats(out), *a = floats((long)n * out);
    float *s = floats(n * perOut), *y = floats(n * perOut);
    Call batched = make(n, in, out, hw, 1, w), perImage = make(1, in, out, hw, 1, w), plain = make(n, in, out, hw, 0, w);
    for (int k = 0; k < 3; k++) {
        const char *name = k == 0 ? "batched, a [N,O,1,1]" : k == 1 ? "per image, a [1,O,1,1]" : "batched, no scale";
        Call *c = k == 0 ? &batched : k == 1 ? &perImage : &plain;
        double best = 1e30;
        for (int r = 0; r < 50; r++) {
            double t = seconds();
            if (k == 1) for (int i = 0; i < n; i++) run(c, x + i * perIn, b, a + (long)i * out, s + i * perOut, y + i * perOut);
            else run(c, x, b, a, s, y);
            CHECK(dnnl_stream_wait(stream));
            t = seconds() - t;
            if (t < best) best = t;
        }
        double worst = 0, largest = 0;
        for (int i = 0; i < n; i++) for (long p = 0; p < pixels; p++) for (int o = 0; o < out; o++) {
            double f = b[o];
            for (int j = 0; j < in; j++) f += (double)w[(long)o * in + j] * x[i * perIn + p * in + j];
            double r = (k == 2 ? 1.0 : a[(long)i * out + o]) * f + s[i * perOut + p * out + o];
            r = r > 0 ? r : 0;
            double e = fabs(r - y[i * perOut + p * out + o]);
            if (e > worst) worst = e;
            if (fabs(r) > largest) largest = fabs(r);
        }
        printf("%-24s %-28s max error %.1e (largest value %.2f)  best %.1f us\n", name, c->impl, worst, largest, best * 1e6);
    }
    return 0;
}
