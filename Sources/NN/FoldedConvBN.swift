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
        plan.call.refresh(from: self, on: nil)
        var args: [(Int32, UnsafeMutableRawPointer)] = [
            (Int32(DNNL_ARG_SRC), UnsafeMutableRawPointer(x.data)), (Int32(DNNL_ARG_WEIGHTS), plan.call.weights.pointer),
            (Int32(DNNL_ARG_BIAS), UnsafeMutableRawPointer(bias.data)), (Int32(DNNL_ARG_DST), UnsafeMutableRawPointer(plan.output.data)),
        ]
        if let shortcut {
            precondition(shortcut.shape == plan.output.shape, "shortcut \(shortcut.shape) for a conv output \(plan.output.shape)")
            args.append((Int32(DNNL_ARG_ATTR_MULTIPLE_POST_OP_BASE) | Int32(DNNL_ARG_SRC_1), UnsafeMutableRawPointer(shortcut.data)))
        }
        conv.context.profiler.measure("conv+bn infer") { plan.call.execute(args, on: nil) }
        return plan.output
    }

    /// oneDNN's implementation for input `shape` (for tests and benchmarks: a reference
    /// kernel here would mean a slow fallback).
    public func implementation(_ shape: [Int], addingShortcut: Bool, relu: Bool) -> String {
        plan(PlanKey(shape: shape, addsShortcut: addingShortcut, relu: relu)).call.forward.implementation
    }

    struct PlanKey: Hashable {
        let shape: [Int]
        let addsShortcut: Bool
        let relu: Bool
    }

    private func plan(_ key: PlanKey) -> Plan { plans.memoized(key) { Plan(self, key) } }

    /// The fused primitive for one input shape and variant, and its output.
    final class Plan {
        let call: ConvolutionCall
        let output: Tensor
        init(_ f: FoldedConvBN, _ key: PlanKey) {
            call = ConvolutionCall(f.convolution(key))
            output = Tensor(f.conv.outputShape(key.shape))
        }
    }

    /// A folded convolution primitive with the weights in its layout, and for a primitive on
    /// blocked activations (Winograd) the reorders of its input and output.
    final class ConvolutionCall {
        let forward: Primitive, toWeights: Primitive?, weights: RawBuffer
        let blocked: BlockedActivations?
        /// The `FoldedConvBN.version` of the weights laid out (-1: none yet).
        var version = -1
        init(_ primitives: (Primitive, toWeights: Primitive?, blocked: BlockedActivations?)) {
            (forward, toWeights, blocked) = primitives
            weights = RawBuffer(bytes: DNNL.bytes(forward.argDesc(Int32(DNNL_ARG_WEIGHTS))))
        }

        /// Runs the convolution with `args` (NHWC source and destination among them) on `lane`
        /// or the main stream; a blocked primitive reads and writes copies in the lane's (or the
        /// process's) transient buffers.
        func execute(_ args: [(Int32, UnsafeMutableRawPointer)], on lane: ExecutionLane?) {
            func run(_ a: [(Int32, UnsafeMutableRawPointer)]) { if let lane { forward.execute(a, on: lane) } else { forward.execute(a) } }
            guard let blocked else { return run(args) }
            let src = args.first { $0.0 == Int32(DNNL_ARG_SRC) }!.1, dst = args.first { $0.0 == Int32(DNNL_ARG_DST) }!.1
            let input = blocked.input(src, on: lane), output = blocked.outputBuffer(on: lane)
            run(args.map { $0.0 == Int32(DNNL_ARG_SRC) ? ($0.0, input) : $0.0 == Int32(DNNL_ARG_DST) ? ($0.0, output) : $0 })
            blocked.output(output, into: dst, on: lane)
        }

        /// Lays the OIHW weights at `w` out for the primitive (on `lane`, or the main stream).
        func load(_ w: UnsafeMutablePointer<Float>, count: Int, on lane: ExecutionLane?) {
            if let reorder = toWeights {
                let args = [(Int32(DNNL_ARG_FROM), UnsafeMutableRawPointer(w)), (Int32(DNNL_ARG_TO), weights.pointer)]
                if let lane { reorder.execute(args, on: lane) } else { reorder.execute(args) }
            } else {
                weights.pointer.copyMemory(from: w, byteCount: count * 4)
            }
        }

        /// Lays `f`'s folded weights out if they changed since the last time.
        func refresh(from f: FoldedConvBN, on lane: ExecutionLane?) {
            if version == f.version { return }
            load(f.weights.data, count: f.weights.count, on: lane)
            version = f.version
        }
    }

    /// The folded convolution for `key` (bias; shortcut add and ReLU as post-ops), the reorder
    /// of OIHW weights into its layout (nil when it takes OIHW as is) and, for a Winograd
    /// primitive, the reorders of its blocked input and output. Winograd (where oneDNN has it)
    /// only for the shapes `Conv2d.triesWinograd` names inside a block's body (ReLU, no shortcut):
    /// a block's last convolution joins the shortcut, for which oneDNN's Winograd has no post-op,
    /// and must run the same kernel with and without an attention, or dT would measure the
    /// kernels instead of the attention.
    private func convolution(_ key: PlanKey) -> (Primitive, toWeights: Primitive?, blocked: BlockedActivations?) {
        let c = conv
        let yShape = c.outputShape(key.shape)
        let full = DNNL.nhwc(yShape)
        let wDims = [c.outChannels, c.inChannels, c.kernel, c.kernel]
        let strides: [Int64] = [Int64(c.stride), Int64(c.stride)], pads: [Int64] = [Int64(c.padding), Int64(c.padding)]
        func make(_ algorithm: dnnl_alg_kind_t, _ layout: dnnl_format_tag_t, optional: Bool) -> Primitive? {
            var src = DNNL.desc([key.shape[0], key.shape[3], key.shape[1], key.shape[2]], layout)
            var dst = DNNL.desc([yShape[0], yShape[3], yShape[1], yShape[2]], layout), shortcut = full
            var anyW = DNNL.desc(wDims, dnnl_format_tag_any), biasDesc = DNNL.desc([c.outChannels], dnnl_x)
            var d = dnnl_convolution_desc_t()
            let status = dnnl_convolution_forward_desc_init(&d, dnnl_forward_inference, algorithm, &src, &anyW, &biasDesc, &dst, strides, pads, pads)
            if optional && status != dnnl_success { return nil }
            DNNL.check(status, "folded conv desc")
            var ops: dnnl_post_ops_t? = nil
            if key.addsShortcut || key.relu {
                DNNL.check(dnnl_post_ops_create(&ops), "post-ops create")
                if key.addsShortcut { DNNL.check(dnnl_post_ops_append_binary(ops, dnnl_binary_add, &shortcut), "post-op add") }
                if key.relu { DNNL.check(dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_relu, 0, 0), "post-op relu") }
            }
            defer { if let ops { dnnl_post_ops_destroy(ops) } }
            return withUnsafePointer(to: &d) { optional ? Primitive.ifImplemented(desc: $0, postOps: ops, context: c.context) : Primitive(desc: $0, postOps: ops, context: c.context) }
        }
        var blocked: BlockedActivations? = nil
        let forward: Primitive
        if c.triesWinograd && key.relu && !key.addsShortcut, let winograd = make(dnnl_convolution_winograd, dnnl_format_tag_any, optional: true) {
            blocked = BlockedActivations(input: key.shape, blockedInput: winograd.argDesc(Int32(DNNL_ARG_SRC)),
                                         output: yShape, blockedOutput: winograd.argDesc(Int32(DNNL_ARG_DST)), context: c.context)
            forward = winograd
        } else {
            forward = make(dnnl_convolution_direct, dnnl_nhwc, optional: false)!
        }
        let wDesc = forward.argDesc(Int32(DNNL_ARG_WEIGHTS)), oihw = DNNL.desc(wDims, dnnl_oihw)
        return (forward, DNNL.equal(wDesc, oihw) ? nil : Primitive(reorderFrom: oihw, to: wDesc, context: c.context), blocked)
    }

    // MARK: a per-image channel scale inside the convolution (SE-like attentions at inference)

    private let meanBuffers = BufferPool()

    /// Whether `outputChannelMeans` can compute the output's means from the input's.
    public var meansComeFromInput: Bool { conv.kernel == 1 && conv.stride == 1 && conv.padding == 0 }

    /// Per-image channel means of this layer's output, from its input's: a 1x1 stride-1
    /// convolution commutes with the spatial mean (nil for other kernels, whose padded borders
    /// break that). One pass over x instead of one over the (wider) output.
    ///     m[n, o] = sum_i W[o, i] * mean_hw x[n, :, :, i] + b[o]      x [N,H,W,I] -> m [N, O]
    /// The result belongs to the layer until the next call with the same batch size.
    /// `inputMeans`: x's per-image channel means [N, I] when the caller already has them.
    public func outputChannelMeans(_ x: Tensor, inputMeans given: Tensor? = nil) -> Tensor? {
        guard meansComeFromInput else { return nil }
        let n = x.shape[0], (i, o) = (conv.inChannels, conv.outChannels)
        precondition(given == nil || given!.count == n * i, "input means \(given!.shape) for \(x.shape)")
        let inputMeans = given ?? meanBuffers.get([n, i]), means = meanBuffers.get([n, o])
        if given == nil { ChannelOps.of(conv.context).mean(x, into: inputMeans) }
        for b in 0..<n { (means.data + b * o).update(from: bias.data, count: o) }
        BLAS.gemm(false, true, m: n, n: o, k: i, inputMeans.data, weights.data, beta: 1, means.data)
        return means
    }

    // MARK: running on the workers of the pool, a few images at a time

    /// What one worker keeps: its primitives (a primitive's memory objects serve one thread),
    /// the one-image primitive of the scaled weights (by image shape; its weights change every
    /// image) and the buffers of the scaled variants.
    final class Lane {
        var calls: [PlanKey: ConvolutionCall] = [:]
        var scaledCall: [[Int]: ConvolutionCall] = [:]
        var scaledWeights = Tensor([0]), scaledBias = Tensor([0]), branch = Tensor([0])
    }
    private var lanes: [Lane] = []

    /// Makes room for every worker of the pool in `layers` and in oneDNN's execution lanes;
    /// call on the main thread before running them on the workers. Returns the worker count.
    public static func prepareWorkers(_ layers: [FoldedConvBN]) -> Int {
        let count = max(Threads.current, 1)
        for layer in layers { layer.conv.context.prepareExecutionLanes(count) }
        for layer in layers { while layer.lanes.count < count { layer.lanes.append(Lane()) } }
        return count
    }

    /// y = [ReLU](conv_folded(x) [+ shortcut]) for `images` images of `imageShape` ([1,H,W,I])
    /// at x, on worker `worker` of the pool (`prepareWorkers` first); oneDNN runs it on this
    /// thread alone. x [images,H,W,I] -> y [images,Ho,Wo,O]; shortcut like y.
    public func run(_ images: Int, imageShape: [Int], _ x: UnsafeMutablePointer<Float>, adding shortcut: UnsafeMutablePointer<Float>?,
                    relu: Bool, into y: UnsafeMutablePointer<Float>, worker: Int) {
        var shape = imageShape
        shape[0] = images
        let lane = lanes[worker], execution = conv.context.executionLanes[worker]
        let key = PlanKey(shape: shape, addsShortcut: shortcut != nil, relu: relu)
        let call = lane.calls.memoized(key) { ConvolutionCall(convolution(key)) }
        call.refresh(from: self, on: execution)
        var args: [(Int32, UnsafeMutableRawPointer)] = [
            (Int32(DNNL_ARG_SRC), UnsafeMutableRawPointer(x)), (Int32(DNNL_ARG_WEIGHTS), call.weights.pointer),
            (Int32(DNNL_ARG_BIAS), UnsafeMutableRawPointer(bias.data)), (Int32(DNNL_ARG_DST), UnsafeMutableRawPointer(y)),
        ]
        if let shortcut { args.append((Int32(DNNL_ARG_ATTR_MULTIPLE_POST_OP_BASE) | Int32(DNNL_ARG_SRC_1), UnsafeMutableRawPointer(shortcut))) }
        call.execute(args, on: execution)
    }

    /// One image: y = ReLU(conv(x, W * scale) + b * scale + shortcut), the scale applied to the
    /// rows of the OIHW weights and to the bias, shortcut and ReLU as post-ops; on `worker`.
    func runScaled(imageShape: [Int], _ x: UnsafeMutablePointer<Float>, scale: UnsafeMutablePointer<Float>,
                   adding shortcut: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>, worker: Int) {
        let lane = lanes[worker], execution = conv.context.executionLanes[worker]
        let call = lane.scaledCall.memoized(imageShape) { ConvolutionCall(convolution(PlanKey(shape: imageShape, addsShortcut: true, relu: true))) }
        let o = conv.outChannels, perOutput = weights.count / o
        if lane.scaledWeights.count != weights.count { (lane.scaledWeights, lane.scaledBias) = (Tensor(weights.shape), Tensor([o])) }
        let sw = lane.scaledWeights.data, sb = lane.scaledBias.data
        for c in 0..<o {
            let g = scale[c], w = weights.data + c * perOutput, row = sw + c * perOutput
            for k in 0..<perOutput { row[k] = w[k] * g }
            sb[c] = bias[c] * g
        }
        call.load(sw, count: weights.count, on: execution)
        call.execute([
            (Int32(DNNL_ARG_SRC), UnsafeMutableRawPointer(x)), (Int32(DNNL_ARG_WEIGHTS), call.weights.pointer),
            (Int32(DNNL_ARG_BIAS), UnsafeMutableRawPointer(sb)), (Int32(DNNL_ARG_DST), UnsafeMutableRawPointer(y)),
            (Int32(DNNL_ARG_ATTR_MULTIPLE_POST_OP_BASE) | Int32(DNNL_ARG_SRC_1), UnsafeMutableRawPointer(shortcut)),
        ], on: execution)
    }

    private let scaledOutputs = BufferPool()

    /// y[n] = ReLU(a[n] * conv_folded(x[n]) + shortcut[n]) without F * A ever going to memory.
    /// Images run in parallel on the pool, each worker with its own primitives, in one of two
    /// ways (measured: each within ~0.05 ms of the convolution with shortcut and ReLU post-ops
    /// where it is used, the other up to 0.5 ms slower):
    /// - weights at most 1/16 of one image's output (the wide early stages): image by image
    ///   with the weights and bias scaled by a[n, :] (`runScaled`);
    /// - otherwise a few images at a time (at most 256 KB of F, 8 images, a thread's share)
    ///   into the worker's buffer, which stays in its cache, then the scale, shortcut and ReLU
    ///   in one pass from there.
    ///     x [N,H,W,I], a [N,1,1,O] (or [N,O]), shortcut [N,Ho,Wo,O] -> y [N,Ho,Wo,O]
    /// The output belongs to the layer and is reused by the next call with the same shape.
    public func forward(_ x: Tensor, scaledBy a: Tensor, adding shortcut: Tensor) -> Tensor {
        forward(x, scaledBy: a, adding: shortcut, alsoUnscaled: false).scaled
    }

    /// Both joins of one convolution, ReLU(F * a + shortcut) and ReLU(F + shortcut), from the
    /// same F (the worker's cache-sized buffer): an attention's block with and without it at
    /// the cost of one convolution. Outputs as `forward(_:scaledBy:adding:)`'s (the unscaled one
    /// in a buffer of its own).
    public func forwardBothJoins(_ x: Tensor, scaledBy a: Tensor, adding shortcut: Tensor) -> (scaled: Tensor, unscaled: Tensor) {
        let (scaled, unscaled) = forward(x, scaledBy: a, adding: shortcut, alsoUnscaled: true)
        return (scaled, unscaled!)
    }

    private let unscaledOutputs = BufferPool()
    private var ones = Tensor([0])

    private func forward(_ x: Tensor, scaledBy a: Tensor, adding shortcut: Tensor, alsoUnscaled: Bool) -> (scaled: Tensor, unscaled: Tensor?) {
        precondition(x.shape.count == 4 && x.shape[3] == conv.inChannels, "conv expects [N,H,W,\(conv.inChannels)], got \(x.shape)")
        let n = x.shape[0], o = conv.outChannels
        precondition(a.count == n * o, "scale \(a.shape) for \(n) images of \(o) channels")
        let output = scaledOutputs.get(conv.outputShape(x.shape))
        let unscaled = alsoUnscaled ? unscaledOutputs.get(output.shape) : nil
        if alsoUnscaled && ones.count != o {
            ones = Tensor([o])
            ones.fill(1)
        }
        let one = ones.data
        precondition(shortcut.shape == output.shape, "shortcut \(shortcut.shape) for a conv output \(output.shape)")
        let perInput = x.count / n, perOutput = output.count / n
        var imageShape = x.shape
        imageShape[0] = 1
        let workers = FoldedConvBN.prepareWorkers([self])
        let scalesWeights = weights.count * 16 <= perOutput && !alsoUnscaled
        let imagesPerCall = max(1, min((n + workers - 1) / workers, (256 << 10) / (perOutput * 4), 8))
        conv.context.profiler.measure("conv+bn+scale infer") {
            Threads.parallelForWorkers(n, grain: 1) { worker, images in
                if scalesWeights {
                    for i in images {
                        runScaled(imageShape: imageShape, x.data + i * perInput, scale: a.data + i * o, adding: shortcut.data + i * perOutput,
                                  into: output.data + i * perOutput, worker: worker)
                    }
                    return
                }
                let lane = lanes[worker]
                if lane.branch.count < imagesPerCall * perOutput { lane.branch = Tensor([imagesPerCall * perOutput]) }
                for first in stride(from: images.lowerBound, to: images.upperBound, by: imagesPerCall) {
                    let count = min(imagesPerCall, images.upperBound - first), branch = lane.branch.data
                    run(count, imageShape: imageShape, x.data + first * perInput, adding: nil, relu: false, into: branch, worker: worker)
                    for i in first..<(first + count) {
                        let at = i * perOutput
                        Tensor.scaleAddReLU(branch + (i - first) * perOutput, scale: a.data + i * o, channels: o,
                                            adding: shortcut.data + at, into: output.data + at, count: perOutput)
                        if let unscaled {
                            Tensor.scaleAddReLU(branch + (i - first) * perOutput, scale: one, channels: o,
                                                adding: shortcut.data + at, into: unscaled.data + at, count: perOutput)
                        }
                    }
                }
            }
        }
        return (output, unscaled)
    }
}
