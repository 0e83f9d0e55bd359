import CKernels
import Tensor

/// 2-D convolution without bias on NHWC activations, computed by oneDNN.
///
///     x [N, H, W, I]  *  weight [O, I, k, k] (PyTorch OIHW)  ->  y [N, Ho, Wo, O]
///     Ho = (H + 2*pad - k) / stride + 1
///
/// Primitives are created once per input shape; the canonical OIHW weights are reordered
/// into oneDNN's preferred layout only when they have changed. Gradients are accumulated
/// into `weight.grad`.
public final class Conv2d: Module {
    /// Where backward's input gradients come from (shared by the layers of one network).
    let gradients: GradientRing
    public let inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int
    public let weight: Parameter
    /// False for a layer whose input needs no gradient (a network's stem): the network then
    /// calls `backwardWeights` instead of `backward` (`ResNet.backward`).
    public var needsInputGrad = true

    private var plans: [[Int]: Plan] = [:]
    private var current: Plan?
    private var savedInput: Tensor?

    public var localParameters: [(String, Parameter)] { [("weight", weight)] }
    /// Where its primitives run (a network's layers share one).
    public let context: ComputeContext

    /// `gradients`: the ring input gradients are handed out from (a network shares one);
    /// `context`: the compute context (a network shares one).
    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                gradients: GradientRing = GradientRing(), context: ComputeContext = ComputeContext()) {
        self.gradients = gradients
        self.context = context
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        weight = Parameter([outChannels, inChannels, kernel, kernel])
    }

    /// He initialisation as in the CIFAR ResNets: N(0, 2 / (k*k*out_channels)).
    public func initialize(_ rng: inout RNG) {
        let std = (2.0 / Float(kernel * kernel * outChannels)).squareRoot()
        rng.fillNormal(weight.value, std: std)
        weight.touch()
    }

    public func outputShape(_ x: [Int]) -> [Int] {
        [x[0], (x[1] + 2 * padding - kernel) / stride + 1, (x[2] + 2 * padding - kernel) / stride + 1, outChannels]
    }

    /// y = conv(x). Keeps a reference to `x` for backward.
    public func forward(_ x: Tensor) -> Tensor {
        precondition(x.shape.count == 4 && x.shape[3] == inChannels, "conv expects [N,H,W,\(inChannels)], got \(x.shape)")
        let plan = self.plan(for: x.shape)
        current = plan
        savedInput = x
        plan.refreshWeights(weight)
        let y = plan.output
        context.profiler.measure("conv fwd") {
            let src = plan.blocked?.input(UnsafeMutableRawPointer(x.data)) ?? UnsafeMutableRawPointer(x.data)
            let dst = plan.blocked?.outputBuffer() ?? UnsafeMutableRawPointer(y.data)
            plan.forward.execute([
                (Int32(DNNL_ARG_SRC), src),
                (Int32(DNNL_ARG_WEIGHTS), plan.fwdWeights.pointer),
                (Int32(DNNL_ARG_DST), dst),
            ])
            plan.blocked?.output(dst, into: UnsafeMutableRawPointer(y.data))
        }
        return y
    }

    /// dy [N,Ho,Wo,O] -> dx [N,H,W,I] = conv_transpose(dy, w), and weight.grad += x (*) dy.
    /// `input`: forward's input again, for a network that let the buffer it passed be
    /// overwritten and rebuilt it (a recomputed batch-norm output); default: the kept reference.
    @discardableResult
    public func backward(_ dy: Tensor, input: Tensor? = nil) -> Tensor {
        let (plan, x) = backwardInputs(input)
        let diffDst = accumulateWeightGradient(dy, x, plan)
        let dx = gradients.next(x.shape)
        context.profiler.measure("conv bwd-data") {
            let diffSrc = plan.blocked?.inputGradientBuffer ?? UnsafeMutableRawPointer(dx.data)
            plan.backwardData.execute([
                (Int32(DNNL_ARG_DIFF_DST), diffDst),
                (Int32(DNNL_ARG_WEIGHTS), plan.bwdWeights.pointer),
                (Int32(DNNL_ARG_DIFF_SRC), diffSrc),
            ])
            plan.blocked?.inputGradient(diffSrc, into: UnsafeMutableRawPointer(dx.data))
        }
        return dx
    }

    /// The backward of this convolution and of the batch norm with a fused ReLU whose output
    /// was its input: the gradient of `norm`'s input, with this layer's weight gradient and
    /// `norm`'s gamma/beta gradients accumulated. Fused (`PointwiseNormBackward`: two passes,
    /// a deferred dy formed per tile) for a 1x1 stride-1 convolution LIBXSMM has kernels for;
    /// otherwise the separate passes (dy formed, `norm`'s output recomputed into `scratch`,
    /// oneDNN's backward of each).
    ///
    ///     dy [N, H, W, O] -> dx [N, H, W, I]  (dx of norm's input; a buffer of the gradient ring)
    public func backward(_ dy: OutputGradient, throughNormWithReLU norm: BatchNorm2d, scratch: BufferPool) -> Tensor {
        precondition(norm.fusedReLU && norm.channels == inChannels, "fused backward through a batch norm of \(norm.channels) channels (fused ReLU \(norm.fusedReLU)) before a convolution of \(inChannels)")
        if kernel == 1, stride == 1, padding == 0, let kept = norm.trainingState, outputShape(kept.input.shape) == dy.shape, let fused = pointwiseBackward {
            let dx = gradients.next(kept.input.shape)
            context.profiler.measure("conv 1x1 + bn bwd (fused)") { fused.run(dy, weight: weight, norm: norm, kept: kept, into: dx) }
            return dx
        }
        let formed: Tensor
        switch dy {
        case .tensor(let t): formed = t
        case .deferred(let d): formed = d.materialize(into: gradients.next(d.g.shape))
        }
        return norm.backward(backward(formed, input: norm.recomputeOutput(in: scratch)), overwriting: true)
    }

    /// Made on first use by a fused backward; nil when LIBXSMM has no kernel for the shape.
    private lazy var pointwiseBackward = PointwiseNormBackward(inChannels: inChannels, outChannels: outChannels)

    /// weight.grad += x (*) dy only, no input gradient (a network's first convolution).
    public func backwardWeights(_ dy: Tensor, input: Tensor? = nil) {
        let (plan, x) = backwardInputs(input)
        _ = accumulateWeightGradient(dy, x, plan)
    }

    /// The plan and input of the last forward (or `input`, checked against it).
    private func backwardInputs(_ input: Tensor?) -> (Plan, Tensor) {
        guard let plan = current, let saved = savedInput else { fatalError("conv backward before forward") }
        precondition(input == nil || input!.shape == saved.shape, "conv backward input \(input!.shape), forward had \(saved.shape)")
        return (plan, input ?? saved)
    }

    /// weight.grad += x (*) dy: oneDNN's weight gradient, reordered to OIHW and accumulated.
    /// Returns dy as the backward-data primitive reads it (a blocked copy under Winograd).
    private func accumulateWeightGradient(_ dy: Tensor, _ x: Tensor, _ plan: Plan) -> UnsafeMutableRawPointer {
        var diffDst = UnsafeMutableRawPointer(dy.data)
        context.profiler.measure("conv bwd-weights") {
            if let blocked = plan.blocked { diffDst = blocked.outputGradient(diffDst) }
            plan.backwardWeights.execute([
                (Int32(DNNL_ARG_SRC), plan.blocked?.input(UnsafeMutableRawPointer(x.data)) ?? UnsafeMutableRawPointer(x.data)),
                (Int32(DNNL_ARG_DIFF_DST), diffDst),
                (Int32(DNNL_ARG_DIFF_WEIGHTS), plan.diffWeights.pointer),
            ])
            if let r = plan.diffWeightsToOIHW {
                r.execute([(Int32(DNNL_ARG_FROM), plan.diffWeights.pointer), (Int32(DNNL_ARG_TO), UnsafeMutableRawPointer(plan.dwOIHW.data))])
                weight.grad.add(plan.dwOIHW)
            } else {
                let g = weight.grad.data, d = plan.diffWeights.pointer.assumingMemoryBound(to: Float.self)
                for i in 0..<weight.grad.count { g[i] += d[i] }
            }
        }
        return diffDst
    }

    private func plan(for shape: [Int]) -> Plan { plans.memoized(shape) { Plan(self, shape) } }

    /// Whether a convolution of this geometry tries oneDNN's Winograd algorithm (F(4x4, 3x3):
    /// 36 instead of 144 multiplications per 4x4 output tile and channel pair, plus the
    /// transforms; oneDNN has it for AVX-512 only, in blocked layouts): 3x3,
    /// stride 1, at least 32 channels in and out. Measured per shape on this machine's
    /// AVX-512 cores at batch 128 (forward / backward-data / backward-weights, ms, 2 threads):
    /// 32 ch 16x16 2.56/2.49/2.54 direct vs 1.34/1.35/1.52 Winograd; 64 ch 8x8 2.26/2.20/2.37 vs
    /// 1.05/1.03/1.23; the reorders to and from the blocked layout 0.03-0.05 ms each; but 16 ch
    /// 32x32 2.85/2.72/2.61 vs 3.67/3.64/2.70 (slower).
    var triesWinograd: Bool { kernel == 3 && stride == 1 && padding == 1 && inChannels >= 32 && outChannels >= 32 }

    /// Everything oneDNN needs for one input shape: three primitives, weight reorders and buffers.
    final class Plan {
        let forward: Primitive, backwardData: Primitive, backwardWeights: Primitive
        /// Set when the primitives work on blocked activations (Winograd): the reorders.
        let blocked: BlockedActivations?
        let toFwdWeights: Primitive?, toBwdWeights: Primitive?, diffWeightsToOIHW: Primitive?
        let fwdWeights: RawBuffer, bwdWeights: RawBuffer, diffWeights: RawBuffer
        let output: Tensor, dwOIHW: Tensor
        var weightsVersion = -1

        init(_ c: Conv2d, _ xShape: [Int]) {
            let yShape = c.outputShape(xShape)
            precondition(yShape[1] > 0 && yShape[2] > 0, "conv output \(yShape) for input \(xShape)")
            var src = DNNL.nhwc(xShape), dst = DNNL.nhwc(yShape)
            let wDims = [c.outChannels, c.inChannels, c.kernel, c.kernel]
            var anyW = DNNL.desc(wDims, dnnl_format_tag_any)
            let oihw = DNNL.desc(wDims, dnnl_oihw)
            let strides: [Int64] = [Int64(c.stride), Int64(c.stride)]
            let pads: [Int64] = [Int64(c.padding), Int64(c.padding)]

            if c.triesWinograd, let w = Plan.winograd(xShape, yShape, anyW, strides, pads, context: c.context) {
                (forward, backwardData, backwardWeights, blocked) = w
            } else {
                (forward, backwardData, backwardWeights) = Plan.direct(c, &src, &dst, anyW, strides, pads)
                blocked = nil
            }
            let (fwd, bwdD, bwdW) = (forward, backwardData, backwardWeights)
            let fwdW = fwd.argDesc(Int32(DNNL_ARG_WEIGHTS))
            let bwdWDesc = bwdD.argDesc(Int32(DNNL_ARG_WEIGHTS))
            let diffW = bwdW.argDesc(Int32(DNNL_ARG_DIFF_WEIGHTS))
            fwdWeights = RawBuffer(bytes: DNNL.bytes(fwdW))
            bwdWeights = RawBuffer(bytes: DNNL.bytes(bwdWDesc))
            diffWeights = RawBuffer(bytes: DNNL.bytes(diffW))
            toFwdWeights = Primitive(reorderFrom: oihw, to: fwdW, context: c.context)
            toBwdWeights = Primitive(reorderFrom: oihw, to: bwdWDesc, context: c.context)
            diffWeightsToOIHW = DNNL.equal(diffW, oihw) ? nil : Primitive(reorderFrom: diffW, to: oihw, context: c.context)
            output = Tensor(yShape)
            dwOIHW = Tensor(wDims)
        }

        /// Winograd primitives with the activations in the layout oneDNN picks (blocked), or nil
        /// when oneDNN has no Winograd kernel for this machine or shape.
        static func winograd(_ xShape: [Int], _ yShape: [Int], _ anyW: dnnl_memory_desc_t, _ strides: [Int64], _ pads: [Int64],
                             context: ComputeContext) -> (Primitive, Primitive, Primitive, BlockedActivations)? {
            var w = anyW
            var src = DNNL.desc([xShape[0], xShape[3], xShape[1], xShape[2]], dnnl_format_tag_any)
            var dst = DNNL.desc([yShape[0], yShape[3], yShape[1], yShape[2]], dnnl_format_tag_any)
            var fd = dnnl_convolution_desc_t(), bd = dnnl_convolution_desc_t(), wd = dnnl_convolution_desc_t()
            guard dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_winograd, &src, &w, nil, &dst,
                                                     strides, pads, pads) == dnnl_success,
                  let fwd = withUnsafePointer(to: &fd, { Primitive.ifImplemented(desc: $0, context: context) }) else { return nil }
            var blockedSrc = fwd.argDesc(Int32(DNNL_ARG_SRC)), blockedDst = fwd.argDesc(Int32(DNNL_ARG_DST))
            guard dnnl_convolution_backward_data_desc_init(&bd, dnnl_convolution_winograd, &blockedSrc, &w, &blockedDst,
                                                           strides, pads, pads) == dnnl_success,
                  let bwdD = withUnsafePointer(to: &bd, { Primitive.ifImplemented(desc: $0, hint: fwd, context: context) }),
                  dnnl_convolution_backward_weights_desc_init(&wd, dnnl_convolution_winograd, &blockedSrc, &w, nil, &blockedDst,
                                                              strides, pads, pads) == dnnl_success,
                  let bwdW = withUnsafePointer(to: &wd, { Primitive.ifImplemented(desc: $0, hint: fwd, context: context) }) else { return nil }
            return (fwd, bwdD, bwdW, BlockedActivations(input: xShape, blockedInput: blockedSrc, output: yShape, blockedOutput: blockedDst, context: context))
        }

        /// oneDNN's direct convolutions on our NHWC activations.
        static func direct(_ c: Conv2d, _ src: inout dnnl_memory_desc_t, _ dst: inout dnnl_memory_desc_t, _ anyW: dnnl_memory_desc_t,
                           _ strides: [Int64], _ pads: [Int64]) -> (Primitive, Primitive, Primitive) {
            var anyW = anyW
            var fd = dnnl_convolution_desc_t()
            DNNL.check(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct,
                                                          &src, &anyW, nil, &dst, strides, pads, pads), "conv fwd desc")
            // oneDNN 2.6's first choice for a 1x1 convolution that reduces the channels
            // (brgconv_1x1) runs the 64 -> 16 channel case at half the speed of its jit_1x1
            // kernel at batch 128 (2.9 vs 1.4 ms, 32x32; measured per implementation, equal
            // for 128 -> 32 and 256 -> 64): take the next implementation for those.
            let reducing1x1 = c.kernel == 1 && c.stride == 1 && c.outChannels < c.inChannels
            let fwd = withUnsafePointer(to: &fd) { Primitive(desc: $0, avoiding: reducing1x1 ? "brgconv_1x1" : nil, context: c.context) }
            var bd = dnnl_convolution_desc_t()
            DNNL.check(dnnl_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &src, &anyW, &dst,
                                                                strides, pads, pads), "conv bwd-data desc")
            let bwdD = withUnsafePointer(to: &bd) { Primitive(desc: $0, hint: fwd, context: c.context) }
            var wd = dnnl_convolution_desc_t()
            DNNL.check(dnnl_convolution_backward_weights_desc_init(&wd, dnnl_convolution_direct, &src, &anyW, nil, &dst,
                                                                   strides, pads, pads), "conv bwd-weights desc")
            // oneDNN 2.6's jit_1x1 backward-weights with a stride and channel counts that are not
            // multiples of 8 returns wrong values now and then (caught by the layer tests):
            // take its next implementation for those shapes.
            let oddStrided1x1 = c.kernel == 1 && c.stride > 1 && (c.inChannels % 8 != 0 || c.outChannels % 8 != 0)
            let bwdW = withUnsafePointer(to: &wd) { Primitive(desc: $0, hint: fwd, avoiding: oddStrided1x1 ? "1x1" : nil, context: c.context) }
            return (fwd, bwdD, bwdW)
        }

        /// Re-lays the OIHW weights out for the forward and backward-data primitives if they changed.
        func refreshWeights(_ w: Parameter) {
            if w.version == weightsVersion { return }
            let src = UnsafeMutableRawPointer(w.value.data)
            toFwdWeights?.execute([(Int32(DNNL_ARG_FROM), src), (Int32(DNNL_ARG_TO), fwdWeights.pointer)])
            toBwdWeights?.execute([(Int32(DNNL_ARG_FROM), src), (Int32(DNNL_ARG_TO), bwdWeights.pointer)])
            weightsVersion = w.version
        }
    }
}

/// The reorders between NHWC activations and the blocked layout of primitives that need one
/// (Winograd), through transient buffers: the process's (`DNNL.transientLayouts`, main thread)
/// or a worker's (`ExecutionLane.transientLayouts`). Slot 0 holds the input's (or the input
/// gradient's, slot 2) blocked copy, slot 1 the output's or its gradient's.
final class BlockedActivations {
    private let inputIn: Primitive, outputOut: Primitive
    /// The backward's reorders (made on first use: inference needs none).
    private lazy var inputOut = Primitive(reorderFrom: blockedInput, to: DNNL.nhwc(inputShape), context: context)
    private lazy var outputIn = Primitive(reorderFrom: DNNL.nhwc(outputShape), to: blockedOutput, context: context)
    private let inputShape: [Int], outputShape: [Int], blockedInput: dnnl_memory_desc_t, blockedOutput: dnnl_memory_desc_t
    private let inputBytes: Int, outputBytes: Int

    private unowned let context: ComputeContext

    /// `input`, `output`: NHWC shapes of the primitive's source and destination.
    init(input: [Int], blockedInput: dnnl_memory_desc_t, output: [Int], blockedOutput: dnnl_memory_desc_t, context: ComputeContext) {
        self.context = context
        (inputShape, outputShape, self.blockedInput, self.blockedOutput) = (input, output, blockedInput, blockedOutput)
        inputIn = Primitive(reorderFrom: DNNL.nhwc(input), to: blockedInput, context: context)
        outputOut = Primitive(reorderFrom: blockedOutput, to: DNNL.nhwc(output), context: context)
        inputBytes = DNNL.bytes(blockedInput)
        outputBytes = DNNL.bytes(blockedOutput)
    }

    private func buffer(_ slot: Int, _ bytes: Int, _ lane: ExecutionLane?) -> UnsafeMutableRawPointer {
        (lane?.transientLayouts ?? context.transientLayouts).slot(slot, bytes: bytes)
    }

    private func reorder(_ p: Primitive, _ from: UnsafeMutableRawPointer, _ to: UnsafeMutableRawPointer, _ lane: ExecutionLane?) {
        let args = [(Int32(DNNL_ARG_FROM), from), (Int32(DNNL_ARG_TO), to)]
        if let lane { p.execute(args, on: lane) } else { p.execute(args) }
    }

    /// NHWC input at x -> its blocked copy (slot 0).
    func input(_ x: UnsafeMutableRawPointer, on lane: ExecutionLane? = nil) -> UnsafeMutableRawPointer {
        let b = buffer(0, inputBytes, lane)
        reorder(inputIn, x, b, lane)
        return b
    }

    /// Where the primitive writes the blocked output (slot 1).
    func outputBuffer(on lane: ExecutionLane? = nil) -> UnsafeMutableRawPointer { buffer(1, outputBytes, lane) }

    /// The blocked output -> NHWC at y.
    func output(_ blocked: UnsafeMutableRawPointer, into y: UnsafeMutableRawPointer, on lane: ExecutionLane? = nil) {
        reorder(outputOut, blocked, y, lane)
    }

    /// NHWC output gradient at dy -> its blocked copy (slot 1, read by both backward primitives).
    func outputGradient(_ dy: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        let b = buffer(1, outputBytes, nil)
        reorder(outputIn, dy, b, nil)
        return b
    }

    /// Where backward-data writes the blocked input gradient (slot 2).
    var inputGradientBuffer: UnsafeMutableRawPointer { buffer(2, inputBytes, nil) }

    /// The blocked input gradient -> NHWC at dx.
    func inputGradient(_ blocked: UnsafeMutableRawPointer, into dx: UnsafeMutableRawPointer) {
        reorder(inputOut, blocked, dx, nil)
    }
}
