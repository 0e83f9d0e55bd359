import CKernels
import Tensor

/// Inference only: a convolution and the batch norm that follows it folded into one oneDNN
/// convolution with bias, optionally adding the residual shortcut and applying the ReLU in the
/// same primitive (post-ops), so the activation is written once instead of three times. One
/// copy of the folded weights serves every variant (with or without shortcut and ReLU).
///
///     g = gamma / sqrt(running_var + eps)                                   per output channel
///     y = [ReLU]( conv(x, weight * g) + (beta - running_mean * g) [+ shortcut] )
///     x [N, H, W, I] -> y [N, Ho, Wo, O];  shortcut [N, Ho, Wo, O]
///
/// The folded weights are a copy: `refresh()` recomputes them from the layers' current
/// weights and running statistics, and must be called after any change of those (the layers
/// themselves are never modified). Outputs belong to the layer and are reused by the next call
/// with the same shape. Use from one thread.
public final class FoldedConvBN {
    public let conv: Conv2d, bn: BatchNorm2d
    /// Folded weights [O, I, k, k] (OIHW) and bias [O].
    let weights: Tensor, bias: Tensor
    private var version = 0
    private var plans: [PlanKey: Plan] = [:]

    public init(_ conv: Conv2d, _ bn: BatchNorm2d) {
        precondition(conv.outChannels == bn.channels, "conv with \(conv.outChannels) outputs folded into a BN of \(bn.channels) channels")
        self.conv = conv
        self.bn = bn
        weights = Tensor(conv.weight.value.shape)
        bias = Tensor([conv.outChannels])
        refresh()
    }

    /// Recomputes the folded weights and bias from the current conv weights, BN parameters and
    /// running statistics.
    public func refresh() {
        let perOutput = conv.inChannels * conv.kernel * conv.kernel
        for o in 0..<conv.outChannels {
            let g = bn.gamma.value[o] / (bn.runningVar[o] + bn.eps).squareRoot()
            let w = conv.weight.value.data + o * perOutput, f = weights.data + o * perOutput
            for i in 0..<perOutput { f[i] = w[i] * g }
            bias[o] = bn.beta.value[o] - bn.runningMean[o] * g
        }
        version &+= 1
    }

    /// y = [ReLU](conv_folded(x) [+ shortcut]); each variant has its own output buffer.
    public func forward(_ x: Tensor, adding shortcut: Tensor? = nil, relu: Bool) -> Tensor {
        precondition(x.shape.count == 4 && x.shape[3] == conv.inChannels, "conv expects [N,H,W,\(conv.inChannels)], got \(x.shape)")
        let plan = self.plan(PlanKey(shape: x.shape, addsShortcut: shortcut != nil, relu: relu))
        if plan.version != version {  // the folded weights changed since this shape last ran: re-lay them out
            plan.toWeights?.execute([(Int32(DNNL_ARG_FROM), UnsafeMutableRawPointer(weights.data)), (Int32(DNNL_ARG_TO), plan.weights.pointer)])
            if plan.toWeights == nil { plan.weights.pointer.copyMemory(from: weights.data, byteCount: weights.count * 4) }
            plan.version = version
        }
        var args: [(Int32, UnsafeMutableRawPointer)] = [
            (Int32(DNNL_ARG_SRC), UnsafeMutableRawPointer(x.data)), (Int32(DNNL_ARG_WEIGHTS), plan.weights.pointer),
            (Int32(DNNL_ARG_BIAS), UnsafeMutableRawPointer(bias.data)), (Int32(DNNL_ARG_DST), UnsafeMutableRawPointer(plan.output.data)),
        ]
        if let shortcut {
            precondition(shortcut.shape == plan.output.shape, "shortcut \(shortcut.shape) for a conv output \(plan.output.shape)")
            args.append((Int32(DNNL_ARG_ATTR_MULTIPLE_POST_OP_BASE) | Int32(DNNL_ARG_SRC_1), UnsafeMutableRawPointer(shortcut.data)))
        }
        Profiler.shared.measure("conv+bn infer") { plan.forward.execute(args) }
        return plan.output
    }

    /// oneDNN's implementation for input `shape` (for tests and benchmarks: a reference
    /// kernel here would mean a slow fallback).
    public func implementation(_ shape: [Int], addingShortcut: Bool, relu: Bool) -> String {
        plan(PlanKey(shape: shape, addsShortcut: addingShortcut, relu: relu)).forward.implementation
    }

    struct PlanKey: Hashable {
        let shape: [Int]
        let addsShortcut: Bool
        let relu: Bool
    }

    private func plan(_ key: PlanKey) -> Plan { plans.memoized(key) { Plan(self, key) } }

    /// The fused primitive for one input shape and variant, and the weights in its layout.
    final class Plan {
        let forward: Primitive
        let toWeights: Primitive?
        let weights: RawBuffer
        let output: Tensor
        var version = -1

        init(_ f: FoldedConvBN, _ key: PlanKey) {
            let c = f.conv
            let yShape = c.outputShape(key.shape)
            var src = DNNL.nhwc(key.shape), dst = DNNL.nhwc(yShape), full = DNNL.nhwc(yShape)
            let wDims = [c.outChannels, c.inChannels, c.kernel, c.kernel]
            var anyW = DNNL.desc(wDims, dnnl_format_tag_any), biasDesc = DNNL.desc([c.outChannels], dnnl_x)
            let strides: [Int64] = [Int64(c.stride), Int64(c.stride)], pads: [Int64] = [Int64(c.padding), Int64(c.padding)]
            var d = dnnl_convolution_desc_t()
            DNNL.check(dnnl_convolution_forward_desc_init(&d, dnnl_forward_inference, dnnl_convolution_direct,
                                                          &src, &anyW, &biasDesc, &dst, strides, pads, pads), "folded conv desc")
            var ops: dnnl_post_ops_t? = nil
            if key.addsShortcut || key.relu {
                DNNL.check(dnnl_post_ops_create(&ops), "post-ops create")
                if key.addsShortcut { DNNL.check(dnnl_post_ops_append_binary(ops, dnnl_binary_add, &full), "post-op add") }
                if key.relu { DNNL.check(dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_relu, 0, 0), "post-op relu") }
            }
            forward = withUnsafePointer(to: &d) { Primitive(desc: $0, postOps: ops) }
            if let ops { dnnl_post_ops_destroy(ops) }
            let wDesc = forward.argDesc(Int32(DNNL_ARG_WEIGHTS))
            weights = RawBuffer(bytes: DNNL.bytes(wDesc))
            let oihw = DNNL.desc(wDims, dnnl_oihw)
            toWeights = DNNL.equal(wDesc, oihw) ? nil : Primitive(reorderFrom: oihw, to: wDesc)
            output = Tensor(yShape)
        }
    }
}
