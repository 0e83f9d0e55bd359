import CKernels
import Tensor

/// Per-(image, channel) operations on NHWC maps computed by oneDNN (JIT, on the shared thread
/// pool), used by the SAM host for its default extract and recalibrate stages:
///
///     mean:     F [B, H, W, C] -> S [B, C]                      (global average pooling)
///     combine:  F [B, H, W, C], A [B, 1, 1, C] -> F * A or F + A (broadcast over H, W)
///
/// Primitives are created once per shape and cached. Use from one thread.
public final class ChannelOps {
    public static let shared = ChannelOps()
    private var means: [[Int]: Primitive] = [:]
    private var combines: [CombineKey: Primitive] = [:]
    private var joins: [CombineKey: Primitive] = [:]

    struct CombineKey: Hashable {
        let shape: [Int]
        let add: Bool
    }

    /// s[b, c] = mean over pixels of f[b, :, :, c]; `s` holds B*C floats.
    public func mean(_ f: Tensor, into s: Tensor) {
        let p = means[f.shape] ?? {
            let (n, h, w, c) = (f.shape[0], f.shape[1], f.shape[2], f.shape[3])
            // global average pooling (oneDNN's reduction has only a reference kernel in 2.6)
            var src = DNNL.nhwc(f.shape), dst = DNNL.desc([n, c, 1, 1], dnnl_nhwc)
            let k: [Int64] = [Int64(h), Int64(w)], one: [Int64] = [1, 1], zero: [Int64] = [0, 0]
            var d = dnnl_pooling_v2_desc_t()
            DNNL.check(dnnl_pooling_v2_forward_desc_init(&d, dnnl_forward_inference, dnnl_pooling_avg_exclude_padding, &src, &dst,
                                                         one, k, zero, zero, zero), "global pooling desc")
            let prim = withUnsafePointer(to: &d) { Primitive(desc: $0) }
            means[f.shape] = prim
            return prim
        }()
        Profiler.shared.measure("sam mean") {
            p.execute([(Int32(DNNL_ARG_SRC), UnsafeMutableRawPointer(f.data)), (Int32(DNNL_ARG_DST), UnsafeMutableRawPointer(s.data))])
        }
    }

    /// out = f * a (or f + a), a [B, C] broadcast over the pixels.
    public func combine(_ f: Tensor, _ a: Tensor, add: Bool, into out: Tensor) {
        let key = CombineKey(shape: f.shape, add: add)
        let p = combines[key] ?? {
            let (n, c) = (f.shape[0], f.shape[3])
            var src0 = DNNL.nhwc(f.shape), src1 = DNNL.desc([n, c, 1, 1], dnnl_nhwc), dst = DNNL.nhwc(f.shape)
            var d = dnnl_binary_desc_t()
            DNNL.check(dnnl_binary_desc_init(&d, add ? dnnl_binary_add : dnnl_binary_mul, &src0, &src1, &dst), "binary desc")
            let prim = withUnsafePointer(to: &d) { Primitive(desc: $0) }
            combines[key] = prim
            return prim
        }()
        Profiler.shared.measure("sam combine") {
            p.execute([(Int32(DNNL_ARG_SRC_0), UnsafeMutableRawPointer(f.data)), (Int32(DNNL_ARG_SRC_1), UnsafeMutableRawPointer(a.data)),
                       (Int32(DNNL_ARG_DST), UnsafeMutableRawPointer(out.data))])
        }
    }

    /// The inference path of a recalibrated residual join in one pass:
    /// y = ReLU(F * a + shortcut) (or F + a), a [B, C] broadcast over the pixels.
    public func combineJoin(_ f: Tensor, _ a: Tensor, shortcut: Tensor, add: Bool, into out: Tensor) {
        let key = CombineKey(shape: f.shape, add: add)
        let p = joins[key] ?? {
            let (n, c) = (f.shape[0], f.shape[3])
            var src0 = DNNL.nhwc(f.shape), src1 = DNNL.desc([n, c, 1, 1], dnnl_nhwc), dst = DNNL.nhwc(f.shape)
            var full = DNNL.nhwc(f.shape)
            var d = dnnl_binary_desc_t()
            DNNL.check(dnnl_binary_desc_init(&d, add ? dnnl_binary_add : dnnl_binary_mul, &src0, &src1, &dst), "binary desc")
            var ops: dnnl_post_ops_t? = nil
            DNNL.check(dnnl_post_ops_create(&ops), "post-ops create")
            DNNL.check(dnnl_post_ops_append_binary(ops, dnnl_binary_add, &full), "post-op add")
            DNNL.check(dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_relu, 0, 0), "post-op relu")
            let prim = withUnsafePointer(to: &d) { Primitive(desc: $0, postOps: ops) }
            dnnl_post_ops_destroy(ops)
            joins[key] = prim
            return prim
        }()
        let shortcutArg = Int32(DNNL_ARG_ATTR_MULTIPLE_POST_OP_BASE) | Int32(DNNL_ARG_SRC_1)
        Profiler.shared.measure("sam combine+join") {
            p.execute([(Int32(DNNL_ARG_SRC_0), UnsafeMutableRawPointer(f.data)), (Int32(DNNL_ARG_SRC_1), UnsafeMutableRawPointer(a.data)),
                       (shortcutArg, UnsafeMutableRawPointer(shortcut.data)), (Int32(DNNL_ARG_DST), UnsafeMutableRawPointer(out.data))])
        }
    }

    private var addReLUs: [[Int]: Primitive] = [:]

    /// y = ReLU(a + b) for same-shaped NHWC maps (the plain residual join, inference path).
    public func addReLU(_ a: Tensor, _ b: Tensor, into out: Tensor) {
        let p = addReLUs[a.shape] ?? {
            var s0 = DNNL.nhwc(a.shape), s1 = DNNL.nhwc(a.shape), dst = DNNL.nhwc(a.shape)
            var d = dnnl_binary_desc_t()
            DNNL.check(dnnl_binary_desc_init(&d, dnnl_binary_add, &s0, &s1, &dst), "binary desc")
            var ops: dnnl_post_ops_t? = nil
            DNNL.check(dnnl_post_ops_create(&ops), "post-ops create")
            DNNL.check(dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_relu, 0, 0), "post-op relu")
            let prim = withUnsafePointer(to: &d) { Primitive(desc: $0, postOps: ops) }
            dnnl_post_ops_destroy(ops)
            addReLUs[a.shape] = prim
            return prim
        }()
        p.execute([(Int32(DNNL_ARG_SRC_0), UnsafeMutableRawPointer(a.data)), (Int32(DNNL_ARG_SRC_1), UnsafeMutableRawPointer(b.data)),
                   (Int32(DNNL_ARG_DST), UnsafeMutableRawPointer(out.data))])
    }

    private var reluBackwards: [[Int]: Primitive] = [:]

    /// dx = dy * (y > 0), from the ReLU's output y (oneDNN eltwise backward, multi-threaded).
    public func reluBackward(_ dy: Tensor, output y: Tensor, into dx: Tensor) {
        let p = reluBackwards[y.shape] ?? {
            var data = DNNL.nhwc(y.shape), diff = DNNL.nhwc(y.shape)
            var f = dnnl_eltwise_desc_t()
            DNNL.check(dnnl_eltwise_forward_desc_init(&f, dnnl_forward_training, dnnl_eltwise_relu_use_dst_for_bwd, &data, 0, 0), "relu fwd desc")
            let hint = withUnsafePointer(to: &f) { Primitive(desc: $0) }
            var b = dnnl_eltwise_desc_t()
            DNNL.check(dnnl_eltwise_backward_desc_init(&b, dnnl_eltwise_relu_use_dst_for_bwd, &diff, &data, 0, 0), "relu bwd desc")
            let prim = withUnsafePointer(to: &b) { Primitive(desc: $0, hint: hint) }
            reluBackwards[y.shape] = prim
            return prim
        }()
        p.execute([(Int32(DNNL_ARG_DST), UnsafeMutableRawPointer(y.data)), (Int32(DNNL_ARG_DIFF_DST), UnsafeMutableRawPointer(dy.data)),
                   (Int32(DNNL_ARG_DIFF_SRC), UnsafeMutableRawPointer(dx.data))])
    }
}
