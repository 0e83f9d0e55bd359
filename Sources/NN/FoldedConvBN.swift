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
            (forward, toWeights) = f.convolution(key)
            weights = RawBuffer(bytes: DNNL.bytes(forward.argDesc(Int32(DNNL_ARG_WEIGHTS))))
            output = Tensor(f.conv.outputShape(key.shape))
        }
    }

    /// The folded convolution for `key` (bias; shortcut add and ReLU as post-ops) and the
    /// reorder of OIHW weights into its layout (nil when it takes OIHW as is).
    private func convolution(_ key: PlanKey) -> (Primitive, toWeights: Primitive?) {
        let c = conv
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
        let forward = withUnsafePointer(to: &d) { Primitive(desc: $0, postOps: ops) }
        if let ops { dnnl_post_ops_destroy(ops) }
        let wDesc = forward.argDesc(Int32(DNNL_ARG_WEIGHTS)), oihw = DNNL.desc(wDims, dnnl_oihw)
        return (forward, DNNL.equal(wDesc, oihw) ? nil : Primitive(reorderFrom: oihw, to: wDesc))
    }

    // MARK: a per-image channel scale inside the convolution (SE-like attentions at inference)

    private let meanBuffers = BufferPool()

    /// Per-image channel means of this layer's output, from its input's: a 1x1 stride-1
    /// convolution commutes with the spatial mean (nil for other kernels, whose padded borders
    /// break that). One pass over x instead of one over the (wider) output.
    ///     m[n, o] = sum_i W[o, i] * mean_hw x[n, :, :, i] + b[o]      x [N,H,W,I] -> m [N, O]
    /// The result belongs to the layer until the next call with the same batch size.
    public func outputChannelMeans(_ x: Tensor) -> Tensor? {
        guard conv.kernel == 1, conv.stride == 1, conv.padding == 0 else { return nil }
        let n = x.shape[0], (i, o) = (conv.inChannels, conv.outChannels)
        let inputMeans = meanBuffers.get([n, i]), means = meanBuffers.get([n, o])
        ChannelOps.shared.mean(x, into: inputMeans)
        for b in 0..<n { (means.data + b * o).update(from: bias.data, count: o) }
        BLAS.gemm(false, true, m: n, n: o, k: i, inputMeans.data, weights.data, beta: 1, means.data)
        return means
    }

    private var scaledPlans: [[Int]: ScaledPlan] = [:]

    /// y[n] = ReLU(a[n] * conv_folded(x[n]) + shortcut[n]) without F * A ever going to memory.
    /// Images run in parallel on the pool, each worker with its own primitives and
    /// `ExecutionLane`, in one of two ways (measured: each within ~0.05 ms of the convolution
    /// with shortcut and ReLU post-ops where it is used, the other up to 0.5 ms slower):
    /// - weights small next to one image's output (the wide early stages): image by image with
    ///   the weights and bias scaled by a[n, :], shortcut and ReLU as post-ops;
    /// - otherwise a few images at a time into the worker's buffer, which stays in its cache,
    ///   then the scale, shortcut and ReLU in one pass from there.
    ///     x [N,H,W,I], a [N,1,1,O] (or [N,O]), shortcut [N,Ho,Wo,O] -> y [N,Ho,Wo,O]
    /// The output belongs to the layer and is reused by the next call with the same shape.
    public func forward(_ x: Tensor, scaledBy a: Tensor, adding shortcut: Tensor) -> Tensor {
        precondition(x.shape.count == 4 && x.shape[3] == conv.inChannels, "conv expects [N,H,W,\(conv.inChannels)], got \(x.shape)")
        let n = x.shape[0], o = conv.outChannels
        precondition(a.count == n * o, "scale \(a.shape) for \(n) images of \(o) channels")
        var plan = scaledPlans.memoized(x.shape) { ScaledPlan(self, x.shape) }
        if plan.lanes.count < Threads.current {  // the pool grew since the plan was made
            plan = ScaledPlan(self, x.shape)
            scaledPlans[x.shape] = plan
        }
        precondition(shortcut.shape == plan.output.shape, "shortcut \(shortcut.shape) for a conv output \(plan.output.shape)")
        let perInput = x.count / n, perOutput = plan.output.count / n
        Profiler.shared.measure("conv+bn+scale infer") {
            Threads.parallelFor(n, grain: 1) { images in
                let lane = plan.lanes[Int(omp_get_thread_num())]
                if plan.scalesWeights {
                    for i in images {
                        lane.convolveScaled(self, x.data + i * perInput, scale: a.data + i * o, adding: shortcut.data + i * perOutput,
                                            into: plan.output.data + i * perOutput)
                    }
                    return
                }
                for first in stride(from: images.lowerBound, to: images.upperBound, by: plan.imagesPerCall) {
                    let count = min(plan.imagesPerCall, images.upperBound - first)
                    let branch = lane.convolve(self, count, x.data + first * perInput)  // [count, Ho, Wo, O], in cache
                    for i in first..<(first + count) {
                        let at = i * perOutput
                        Tensor.scaleAddReLU(branch + (i - first) * perOutput, scale: a.data + i * o, channels: o,
                                            adding: shortcut.data + at, into: plan.output.data + at, count: perOutput)
                    }
                }
            }
        }
        return plan.output
    }

    /// The scaled convolution for one input shape: the batch output, the way it runs (scaled
    /// weights where they are at most 1/16 of an image's output; else images per call: at
    /// most 256 KB of F, 8 images, a thread's share) and one lane per thread of the pool.
    final class ScaledPlan {
        let output: Tensor
        let imagesPerCall: Int
        let scalesWeights: Bool
        let lanes: [ScaledLane]
        init(_ f: FoldedConvBN, _ xShape: [Int]) {
            let yShape = f.conv.outputShape(xShape)
            output = Tensor(yShape)
            scalesWeights = f.weights.count * 16 <= yShape[1] * yShape[2] * yShape[3]
            let threads = max(Threads.current, 1), perThread = (xShape[0] + threads - 1) / threads
            imagesPerCall = max(1, min(perThread, (256 << 10) / (yShape[1] * yShape[2] * yShape[3] * 4), 8))
            lanes = (0..<threads).map { _ in ScaledLane(xShape) }
        }
    }

    /// One worker's primitives (by images per call, each with the folded weights in its
    /// layout), stream, scratchpad and branch buffer.
    final class ScaledLane {
        let execution = ExecutionLane()
        let imageShape: [Int]
        private var calls: [Int: Call] = [:]
        private var branch = Tensor([0])

        init(_ xShape: [Int]) {
            var image = xShape
            image[0] = 1
            imageShape = image
        }

        final class Call {
            let forward: Primitive, toWeights: Primitive?, weights: RawBuffer
            var version = -1
            init(_ primitives: (Primitive, toWeights: Primitive?)) {
                (forward, toWeights) = primitives
                weights = RawBuffer(bytes: DNNL.bytes(forward.argDesc(Int32(DNNL_ARG_WEIGHTS))))
            }
        }

        private var scaledWeights = Tensor([0]), scaledBias = Tensor([0])

        /// One image: y = ReLU(conv(x, W * scale) + b * scale + shortcut), the scale applied
        /// to the rows of the OIHW weights and the bias, the shortcut and ReLU as post-ops.
        func convolveScaled(_ f: FoldedConvBN, _ x: UnsafeMutablePointer<Float>, scale: UnsafeMutablePointer<Float>,
                            adding shortcut: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>) {
            let call = calls.memoized(0) { Call(f.convolution(PlanKey(shape: imageShape, addsShortcut: true, relu: true))) }
            let o = f.conv.outChannels, perOutput = f.weights.count / o
            if scaledWeights.count != f.weights.count { (scaledWeights, scaledBias) = (Tensor(f.weights.shape), Tensor([o])) }
            for c in 0..<o {
                let g = scale[c], w = f.weights.data + c * perOutput, sw = scaledWeights.data + c * perOutput
                for k in 0..<perOutput { sw[k] = w[k] * g }
                scaledBias[c] = f.bias[c] * g
            }
            load(scaledWeights.data, count: scaledWeights.count, into: call)
            call.forward.execute([
                (Int32(DNNL_ARG_SRC), UnsafeMutableRawPointer(x)), (Int32(DNNL_ARG_WEIGHTS), call.weights.pointer),
                (Int32(DNNL_ARG_BIAS), UnsafeMutableRawPointer(scaledBias.data)), (Int32(DNNL_ARG_DST), UnsafeMutableRawPointer(y)),
                (Int32(DNNL_ARG_ATTR_MULTIPLE_POST_OP_BASE) | Int32(DNNL_ARG_SRC_1), UnsafeMutableRawPointer(shortcut)),
            ], on: execution)
        }

        /// Lays OIHW `weights` out for `call`.
        private func load(_ weights: UnsafeMutablePointer<Float>, count: Int, into call: Call) {
            if let reorder = call.toWeights {
                reorder.execute([(Int32(DNNL_ARG_FROM), UnsafeMutableRawPointer(weights)), (Int32(DNNL_ARG_TO), call.weights.pointer)], on: execution)
            } else {
                call.weights.pointer.copyMemory(from: weights, byteCount: count * 4)
            }
        }

        /// F = conv_folded(x) for `images` images into the lane's buffer (valid until its next call).
        func convolve(_ f: FoldedConvBN, _ images: Int, _ x: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
            let call = calls.memoized(images) {
                var shape = imageShape
                shape[0] = images
                return Call(f.convolution(PlanKey(shape: shape, addsShortcut: false, relu: false)))
            }
            if call.version != f.version {  // the folded weights changed: lay them out again
                load(f.weights.data, count: f.weights.count, into: call)
                call.version = f.version
            }
            let needed = images * f.conv.outputShape(imageShape).reduce(1, *)
            if branch.count < needed { branch = Tensor([needed]) }
            call.forward.execute([
                (Int32(DNNL_ARG_SRC), UnsafeMutableRawPointer(x)), (Int32(DNNL_ARG_WEIGHTS), call.weights.pointer),
                (Int32(DNNL_ARG_BIAS), UnsafeMutableRawPointer(f.bias.data)), (Int32(DNNL_ARG_DST), UnsafeMutableRawPointer(branch.data)),
            ], on: execution)
            return branch.data
        }
    }
}
