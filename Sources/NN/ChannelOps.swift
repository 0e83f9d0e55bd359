import CKernels
import Tensor

/// Whole-map operations on NHWC tensors computed by oneDNN (JIT, on the shared thread pool):
///
///     mean:         F [B, H, W, C] -> S [B, C]                        (global average pooling)
///     combine:      F, A [B, 1, 1, C] -> F * A or F + A              (A broadcast over H, W)
///     combineJoin:  F, A, shortcut -> ReLU(F * A + shortcut)        (inference, one pass)
///     addReLU:      a, b -> ReLU(a + b);  reluBackward: dy * (y > 0)  (the residual join)
///
/// Primitives are created once per shape and cached, one set per compute context
/// (`ChannelOps.of`). Use from one thread.
public final class ChannelOps {
    /// The context's instance (kept by the context, made on first use).
    public static func of(_ context: ComputeContext) -> ChannelOps { context.cached(ChannelOps.self) { ChannelOps(context: context) } }
    private unowned let context: ComputeContext
    private init(context: ComputeContext) { self.context = context }
    private var means: [[Int]: Primitive] = [:]
    private var binaries: [BinaryKey: Primitive] = [:]
    private var reluBackwards: [[Int]: Primitive] = [:]

    /// A cached binary primitive: `op` of a full map and a second operand, optionally followed
    /// by + a full map (the shortcut) and ReLU, in that order.
    struct BinaryKey: Hashable {
        /// What the second operand is: a full map or [B, C] (per image and channel).
        enum Operand: Hashable { case full, perImageChannel }
        let shape: [Int]
        let add: Bool            // add instead of multiply
        let operand: Operand
        var plusShortcut = false // post-op: + a full map
        var relu = false         // post-op: ReLU
    }

    private func binary(_ key: BinaryKey) -> Primitive {
        binaries.memoized(key) {
            let (n, c) = (key.shape[0], key.shape[3])
            var src0 = DNNL.nhwc(key.shape), dst = DNNL.nhwc(key.shape), full = DNNL.nhwc(key.shape)
            var src1: dnnl_memory_desc_t
            switch key.operand {
            case .full: src1 = full
            case .perImageChannel: src1 = DNNL.desc([n, c, 1, 1], dnnl_nhwc)
            }
            var d = dnnl_binary_desc_t()
            DNNL.check(dnnl_binary_desc_init(&d, key.add ? dnnl_binary_add : dnnl_binary_mul, &src0, &src1, &dst), "binary desc")
            var ops: dnnl_post_ops_t? = nil
            if key.plusShortcut || key.relu {
                DNNL.check(dnnl_post_ops_create(&ops), "post-ops create")
                if key.plusShortcut { DNNL.check(dnnl_post_ops_append_binary(ops, dnnl_binary_add, &full), "post-op add") }
                if key.relu { DNNL.check(dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_relu, 0, 0), "post-op relu") }
            }
            let p = withUnsafePointer(to: &d) { Primitive(desc: $0, postOps: ops, context: context) }
            if let ops { dnnl_post_ops_destroy(ops) }
            return p
        }
    }

    /// Runs a binary primitive; `postOpInputs` are the second operands of its binary post-ops,
    /// in order (post-op k reads DNNL_ARG_ATTR_MULTIPLE_POST_OP(k) | DNNL_ARG_SRC_1).
    private func run(_ p: Primitive, _ a: Tensor, _ b: Tensor, postOpInputs: [Tensor] = [], into out: Tensor) {
        var args: [(Int32, UnsafeMutableRawPointer)] = [
            (Int32(DNNL_ARG_SRC_0), UnsafeMutableRawPointer(a.data)), (Int32(DNNL_ARG_SRC_1), UnsafeMutableRawPointer(b.data)),
            (Int32(DNNL_ARG_DST), UnsafeMutableRawPointer(out.data)),
        ]
        for (k, input) in postOpInputs.enumerated() {
            args.append((Int32(DNNL_ARG_ATTR_MULTIPLE_POST_OP_BASE) * Int32(k + 1) | Int32(DNNL_ARG_SRC_1), UnsafeMutableRawPointer(input.data)))
        }
        p.execute(args)
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
            let prim = withUnsafePointer(to: &d) { Primitive(desc: $0, context: context) }
            means[f.shape] = prim
            return prim
        }()
        p.execute([(Int32(DNNL_ARG_SRC), UnsafeMutableRawPointer(f.data)), (Int32(DNNL_ARG_DST), UnsafeMutableRawPointer(s.data))])
    }

    /// Backward of `mean`: dx[b, i, c] = ds[b, c] / P (or += with `accumulate`).
    public static func meanBackward(_ ds: Tensor, into dx: Tensor, accumulate: Bool) {
        let (n, c) = (dx.shape[0], dx.shape[3])
        let p = dx.shape[1] * dx.shape[2]
        let scale = 1 / Float(p)
        Threads.parallelFor(n, grain: 1) { images in for b in images {
            let g = ds.data + b * c
            for i in 0..<p {
                let row = dx.data + (b * p + i) * c
                if accumulate { for k in 0..<c { row[k] += g[k] * scale } } else { for k in 0..<c { row[k] = g[k] * scale } }
            }
        } }
    }

    /// out = f * a (or f + a), a [B, C] broadcast over the pixels.
    public func combine(_ f: Tensor, _ a: Tensor, add: Bool, into out: Tensor) {
        run(binary(BinaryKey(shape: f.shape, add: add, operand: .perImageChannel)), f, a, into: out)
    }

    /// The inference path of a recalibrated residual join in one pass:
    /// y = ReLU(F * a + shortcut) (or F + a), a [B, C] broadcast over the pixels.
    public func combineJoin(_ f: Tensor, _ a: Tensor, shortcut: Tensor, add: Bool, into out: Tensor) {
        run(binary(BinaryKey(shape: f.shape, add: add, operand: .perImageChannel, plusShortcut: true, relu: true)), f, a,
            postOpInputs: [shortcut], into: out)
    }

    /// y = ReLU(a + b) for same-shaped NHWC maps (the plain residual join).
    public func addReLU(_ a: Tensor, _ b: Tensor, into out: Tensor) {
        run(binary(BinaryKey(shape: a.shape, add: true, operand: .full, relu: true)), a, b, into: out)
    }

    /// dx = dy * (y > 0), from the ReLU's output y (oneDNN eltwise backward, multi-threaded).
    public func reluBackward(_ dy: Tensor, output y: Tensor, into dx: Tensor) {
        let p = reluBackwards[y.shape] ?? {
            var data = DNNL.nhwc(y.shape), diff = DNNL.nhwc(y.shape)
            var f = dnnl_eltwise_desc_t()
            DNNL.check(dnnl_eltwise_forward_desc_init(&f, dnnl_forward_training, dnnl_eltwise_relu_use_dst_for_bwd, &data, 0, 0), "relu fwd desc")
            let hint = withUnsafePointer(to: &f) { Primitive(desc: $0, context: context) }
            var b = dnnl_eltwise_desc_t()
            DNNL.check(dnnl_eltwise_backward_desc_init(&b, dnnl_eltwise_relu_use_dst_for_bwd, &diff, &data, 0, 0), "relu bwd desc")
            let prim = withUnsafePointer(to: &b) { Primitive(desc: $0, hint: hint, context: context) }
            reluBackwards[y.shape] = prim
            return prim
        }()
        p.execute([(Int32(DNNL_ARG_DST), UnsafeMutableRawPointer(y.data)), (Int32(DNNL_ARG_DIFF_DST), UnsafeMutableRawPointer(dy.data)),
                   (Int32(DNNL_ARG_DIFF_SRC), UnsafeMutableRawPointer(dx.data))])
    }
}
