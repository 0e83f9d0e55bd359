import CKernels
import Tensor

/// Per-channel mean and variance of one batch norm (running statistics, or sums of them).
public struct NormStatistics: Equatable, Sendable {
    public var mean: [Float]
    public var variance: [Float]
    /// Zeros for `channels` channels.
    public init(channels: Int) {
        mean = [Float](repeating: 0, count: channels)
        variance = [Float](repeating: 0, count: channels)
    }
    /// Both divided by `n` (a sum over n batches -> their average).
    public func averaged(over n: Int) -> NormStatistics {
        var s = self
        s.mean = mean.map { $0 / Float(n) }
        s.variance = variance.map { $0 / Float(n) }
        return s
    }
}

/// A batch norm's input gradient not yet formed: the second pass of its backward,
///
///     dx [N, H, W, C] = alpha [N, C] * g + kappa [C] * (x - mean [C]) + delta [N, C]
///
/// (`BatchNorm2d.deferredBackward`), for a consumer that computes dx tile by tile as it reads.
/// The tensors are the batch norm's (valid until its next forward or backward).
public struct DeferredNormGradient {
    public let g: Tensor, x: Tensor, mean: Tensor, alpha: Tensor, kappa: Tensor, delta: Tensor
    let workspace: AttendedNormBackward.Workspace
    let context: ComputeContext

    /// dx written out (the second pass alone) into `dx`.
    public func materialize(into dx: Tensor) -> Tensor {
        context.profiler.measure("bn bwd (pass 2)") { AttendedNormBackward.apply(x: x, g: g, mean: mean, workspace: workspace, into: dx) }
        return dx
    }
}

/// Batch normalisation over the channels of an NHWC tensor, computed by oneDNN, optionally
/// fused with the ReLU that follows it.
///
///     x [N, H, W, C] -> y = gamma * (x - mean) / sqrt(var + eps) + beta      (then ReLU if fused)
///
/// Training mode normalises with the batch statistics (biased variance) and updates the
/// running mean/variance with `momentum` (PyTorch semantics: unbiased variance in the running
/// estimate); eval mode uses the running statistics. Gradients accumulate into gamma/beta.
public final class BatchNorm2d: Module {
    /// Where backward's input gradients come from (shared by the layers of one network).
    let gradients: GradientRing
    public let channels: Int
    public let eps: Float
    public let momentum: Float
    public let fusedReLU: Bool
    public let gamma: Parameter, beta: Parameter
    public let runningMean: Tensor, runningVar: Tensor, batchesTracked: Tensor

    private var plans: [PlanKey: Plan] = [:]
    private var current: Plan?
    private var savedInput: Tensor?
    /// Elements per channel of the last training forward (N * H * W).
    private var lastCount = 0

    public var localParameters: [(String, Parameter)] { [("weight", gamma), ("bias", beta)] }
    public var localBuffers: [(String, Buffer)] {
        [("running_mean", Buffer(runningMean)), ("running_var", Buffer(runningVar)),
         ("num_batches_tracked", Buffer(batchesTracked, integer: true))]
    }

    /// Where its primitives run (a network's layers share one).
    public let context: ComputeContext

    /// `gradients`: the ring input gradients are handed out from (a network shares one);
    /// `context`: the compute context (a network shares one).
    public init(_ channels: Int, fusedReLU: Bool = false, eps: Float = 1e-5, momentum: Float = 0.1,
                gradients: GradientRing = GradientRing(), context: ComputeContext = ComputeContext()) {
        self.gradients = gradients
        self.context = context
        self.channels = channels
        self.eps = eps
        self.momentum = momentum
        self.fusedReLU = fusedReLU
        gamma = Parameter([channels])
        beta = Parameter([channels])
        gamma.value.fill(1)
        runningMean = Tensor([channels])
        runningVar = Tensor([channels])
        runningVar.fill(1)
        batchesTracked = Tensor([])
    }

    /// Normalises `x` into `output` (default: the layer's own buffer). In training mode the
    /// batch statistics are used and kept for backward, with `x`; the output is not kept, so a
    /// network may pass a buffer its next layers overwrite and `recomputeOutput(in:)` later.
    public func forward(_ x: Tensor, training: Bool, into output: Tensor? = nil) -> Tensor {
        precondition(x.shape.count == 4 && x.shape[3] == channels, "batch norm expects [N,H,W,\(channels)], got \(x.shape)")
        precondition(output == nil || output!.shape == x.shape, "batch norm output \(output!.shape) for input \(x.shape)")
        let plan = self.plan(PlanKey(shape: x.shape, training: training))
        let y = output ?? plan.output
        let s = UnsafeMutableRawPointer(gamma.value.data), b = UnsafeMutableRawPointer(beta.value.data)
        if training {
            var args: [(Int32, UnsafeMutableRawPointer)] = [
                (Int32(DNNL_ARG_SRC), UnsafeMutableRawPointer(x.data)), (Int32(DNNL_ARG_DST), UnsafeMutableRawPointer(y.data)),
                (Int32(DNNL_ARG_SCALE), s), (Int32(DNNL_ARG_SHIFT), b),
                (Int32(DNNL_ARG_MEAN), UnsafeMutableRawPointer(plan.mean.data)),
                (Int32(DNNL_ARG_VARIANCE), UnsafeMutableRawPointer(plan.variance.data)),
            ]
            if let ws = plan.workspace { args.append((Int32(DNNL_ARG_WORKSPACE), ws.pointer)) }
            context.profiler.measure("bn fwd") { plan.forward.execute(args) }
            plan.imageMeansValid = false
            keepForBackward(x, plan)
        } else {
            plan.forward.execute([
                (Int32(DNNL_ARG_SRC), UnsafeMutableRawPointer(x.data)), (Int32(DNNL_ARG_DST), UnsafeMutableRawPointer(y.data)),
                (Int32(DNNL_ARG_SCALE), s), (Int32(DNNL_ARG_SHIFT), b),
                (Int32(DNNL_ARG_MEAN), UnsafeMutableRawPointer(runningMean.data)),
                (Int32(DNNL_ARG_VARIANCE), UnsafeMutableRawPointer(runningVar.data)),
            ])
        }
        return y
    }

    /// Whether `forwardStatistics` can take inputs of this layer (channels a multiple of 8).
    public var computesStatisticsAlone: Bool { ChannelStatistics.supports(channels: channels) && !fusedReLU }

    /// A training forward that writes no output: the batch statistics (kept for backward with
    /// `x`; running statistics updated as by `forward`) and the per-channel affine map that
    /// normalises x, y = scale * x + shift, for a network that applies it fused into the next
    /// operation (`AddReLU.forward(normalizing:)`). `backward` then works as after `forward`;
    /// `backward(_:scaledBy: nil, attentionBackward: nil)` is the two-pass one of the same kernels.
    /// The buffers returned stay valid until this layer's next forward.
    /// `imageMeans`: also keep the per-image channel means of x, for `outputChannelMeans` and
    /// `backward(_:scaledBy:attentionBackward:)` (same pass).
    public func forwardStatistics(_ x: Tensor, imageMeans: Bool = false) -> (scale: Tensor, shift: Tensor) {
        precondition(x.shape.count == 4 && x.shape[3] == channels, "batch norm expects [N,H,W,\(channels)], got \(x.shape)")
        precondition(computesStatisticsAlone, "statistics alone need a multiple of 8 channels and no fused ReLU")
        let plan = self.plan(PlanKey(shape: x.shape, training: true))
        context.profiler.measure("bn statistics") {
            ChannelStatistics.compute(x, mean: plan.mean.data, variance: plan.variance.data, imageMeans: imageMeans ? plan.imageMeans.data : nil)
        }
        plan.imageMeansValid = imageMeans
        keepForBackward(x, plan)
        for c in 0..<channels {
            let scale = gamma.value[c] / (plan.variance[c] + eps).squareRoot()
            plan.scale[c] = scale
            plan.shift[c] = beta.value[c] - plan.mean[c] * scale
        }
        return (plan.scale, plan.shift)
    }

    /// The per-image channel means of the output of the last `forwardStatistics(_:imageMeans:)`
    /// (with `imageMeans`), without forming that output: S[n, c] = scale[c] * mean_hw x[n, :, :, c]
    /// + shift[c]. [N, C], valid until this layer's next forward.
    public func outputChannelMeans() -> Tensor {
        guard let plan = current, plan.imageMeansValid else { preconditionFailure("outputChannelMeans needs forwardStatistics(_:imageMeans: true)") }
        let (n, c) = (plan.shape[0], channels)
        let s = plan.outputMeans
        for b in 0..<n {
            for k in 0..<c { s[b * c + k] = plan.imageMeans[b * c + k] * plan.scale[k] + plan.shift[k] }
        }
        return s
    }

    /// Backward of F' = y * A where y is this layer's output (never formed: the last forward was
    /// `forwardStatistics(_:imageMeans: true)`) and A [N, 1, 1, C] an attention computed from
    /// S = `outputChannelMeans()` alone (a squeeze-excitation), in two passes over x and g = dL/dF'
    /// (`AttendedNormBackward`) instead of forming dy. `attentionBackward` maps dA = dL/dA [N, C]
    /// to dS = dL/dS [N, C] (the attention's own parameter gradients accumulate there); gamma and
    /// beta gradients accumulate here. With `a` nil (and no `attentionBackward`): the plain
    /// backward of y itself after `forwardStatistics` (A = 1), the same two passes.
    ///
    ///     g [N, H, W, C], a [N, 1, 1, C] -> dx [N, H, W, C]  (a new buffer of the gradient ring)
    public func backward(_ g: Tensor, scaledBy a: Tensor?, attentionBackward: ((_ dA: Tensor) -> Tensor)?) -> Tensor {
        deferredBackward(g, scaledBy: a, attentionBackward: attentionBackward).materialize(into: gradients.next(g.shape))
    }

    /// `backward(_:scaledBy:attentionBackward:)` without its second pass: pass 1 runs (gamma,
    /// beta and the attention's gradients accumulate) and dx is returned as the map the second
    /// pass would apply, for a consumer that applies it while it reads g and x anyway (a 1x1
    /// convolution's fused backward, `Conv2d.backward(_:throughNormWithReLU:scratch:)`). Valid until this
    /// layer's next backward.
    public func deferredBackward(_ g: Tensor, scaledBy a: Tensor?, attentionBackward: ((_ dA: Tensor) -> Tensor)?) -> DeferredNormGradient {
        guard let plan = current, let x = savedInput, a == nil || plan.imageMeansValid else {
            preconditionFailure("batch norm backward before a training forward (or an attention without forwardStatistics(_:imageMeans: true))")
        }
        precondition(g.shape == x.shape && (a == nil || a!.count == x.shape[0] * channels), "scaled batch norm backward of \(g.shape), A \(a?.shape ?? []) for input \(x.shape)")
        precondition((a == nil) == (attentionBackward == nil), "an attention and its backward go together")
        precondition(!fusedReLU, "two-pass batch norm backward of a batch norm with a fused ReLU")
        let w = plan.attendedWorkspace
        context.profiler.measure(a == nil ? "bn bwd (pass 1)" : "bn scaled bwd (pass 1)") {
            AttendedNormBackward.coefficients(x: x, g: g, attention: a.map { ($0, attentionBackward!, plan.imageMeans) }, mean: plan.mean,
                                              variance: plan.variance, eps: eps, gamma: gamma.value, beta: beta.value,
                                              dGamma: plan.dGamma, dBeta: plan.dBeta, workspace: w)
        }
        gamma.grad.add(plan.dGamma)
        beta.grad.add(plan.dBeta)
        return DeferredNormGradient(g: g, x: x, mean: plan.mean, alpha: w.alpha, kappa: w.kappa, delta: w.delta, workspace: w, context: context)
    }

    /// The last training forward's output again, written into `pool`'s buffer of its shape: the
    /// kept input normalised with that batch's statistics (then ReLU if fused), which equals what
    /// forward wrote. Lets a network keep only a batch norm's input for backward and rebuild the
    /// output the next layer's backward needs (one elementwise pass instead of a stored activation).
    public func recomputeOutput(in pool: BufferPool) -> Tensor {
        guard let plan = current, let x = savedInput, let replay = plan.replay else { fatalError("batch norm recompute before a training forward") }
        let out = pool.get(x.shape)
        context.profiler.measure("bn recompute") {
            replay.execute([
                (Int32(DNNL_ARG_SRC), UnsafeMutableRawPointer(x.data)), (Int32(DNNL_ARG_DST), UnsafeMutableRawPointer(out.data)),
                (Int32(DNNL_ARG_SCALE), UnsafeMutableRawPointer(gamma.value.data)),
                (Int32(DNNL_ARG_SHIFT), UnsafeMutableRawPointer(beta.value.data)),
                (Int32(DNNL_ARG_MEAN), UnsafeMutableRawPointer(plan.mean.data)),
                (Int32(DNNL_ARG_VARIANCE), UnsafeMutableRawPointer(plan.variance.data)),
            ])
        }
        return out
    }

    /// dx from dy (through the fused ReLU if any); gamma.grad, beta.grad accumulate.
    /// `overwriting`: dy is no longer needed by anyone, so dx is written over it (oneDNN's
    /// in-place backward) instead of into a new buffer of the gradient ring.
    public func backward(_ dy: Tensor, overwriting: Bool = false) -> Tensor {
        guard let plan = current, let x = savedInput, let bwd = plan.backward else { fatalError("batch norm backward before a training forward") }
        precondition(dy.shape == x.shape, "batch norm backward of \(dy.shape) for input \(x.shape)")
        let dx = overwriting ? dy : gradients.next(x.shape)
        var args: [(Int32, UnsafeMutableRawPointer)] = [
            (Int32(DNNL_ARG_SRC), UnsafeMutableRawPointer(x.data)),
            (Int32(DNNL_ARG_DIFF_DST), UnsafeMutableRawPointer(dy.data)),
            (Int32(DNNL_ARG_MEAN), UnsafeMutableRawPointer(plan.mean.data)),
            (Int32(DNNL_ARG_VARIANCE), UnsafeMutableRawPointer(plan.variance.data)),
            (Int32(DNNL_ARG_SCALE), UnsafeMutableRawPointer(gamma.value.data)),
            (Int32(DNNL_ARG_SHIFT), UnsafeMutableRawPointer(beta.value.data)),
            (Int32(DNNL_ARG_DIFF_SRC), UnsafeMutableRawPointer(dx.data)),
            (Int32(DNNL_ARG_DIFF_SCALE), UnsafeMutableRawPointer(plan.dGamma.data)),
            (Int32(DNNL_ARG_DIFF_SHIFT), UnsafeMutableRawPointer(plan.dBeta.data)),
        ]
        if fusedReLU {
            // oneDNN needs DST for the fused ReLU's mask (taken from the workspace).
            args.append((Int32(DNNL_ARG_WORKSPACE), plan.workspace!.pointer))
        }
        context.profiler.measure("bn bwd") { bwd.execute(args) }
        gamma.grad.add(plan.dGamma)
        beta.grad.add(plan.dBeta)
        return dx
    }

    /// What a training forward kept for backward: its input and the batch mean and biased
    /// variance it normalised with (valid until the layer's next forward).
    struct TrainingState {
        let input: Tensor, mean: Tensor, variance: Tensor
    }

    /// The last training forward's kept state; nil before one (or after an eval forward).
    var trainingState: TrainingState? {
        guard let plan = current, let x = savedInput, plan.backward != nil else { return nil }
        return TrainingState(input: x, mean: plan.mean, variance: plan.variance)
    }

    /// Adds the last training forward's batch mean and unbiased variance (what a running update
    /// blends in) to `sum`. Used to re-estimate the statistics of a sub-network (BN
    /// recalibration); does nothing before a training forward.
    public func accumulateLastBatchStatistics(into sum: inout NormStatistics) {
        guard let plan = current, lastCount > 0 else { return }
        let unbias = Self.unbiasFactor(lastCount)
        for c in 0..<channels {
            sum.mean[c] += plan.mean[c]
            sum.variance[c] += plan.variance[c] * unbias
        }
    }

    /// Sets the running statistics used by eval mode.
    public func setRunningStatistics(_ s: NormStatistics) {
        precondition(s.mean.count == channels && s.variance.count == channels, "statistics for \(s.mean.count) channels, layer has \(channels)")
        for c in 0..<channels {
            runningMean[c] = s.mean[c]
            runningVar[c] = s.variance[c]
        }
    }

    /// After a training forward has put the batch statistics in `plan`: keeps `x` and the plan
    /// for backward and blends the statistics into the running ones.
    private func keepForBackward(_ x: Tensor, _ plan: Plan) {
        current = plan
        savedInput = x
        lastCount = x.count / channels
        updateRunningStatistics(plan, count: lastCount)
    }

    /// n / (n - 1): the biased batch variance over n elements -> the unbiased estimate.
    static func unbiasFactor(_ n: Int) -> Float { n > 1 ? Float(n) / Float(n - 1) : 1 }

    private func updateRunningStatistics(_ plan: Plan, count n: Int) {
        let m = momentum, unbias = Self.unbiasFactor(n)
        for c in 0..<channels {
            runningMean[c] = (1 - m) * runningMean[c] + m * plan.mean[c]
            runningVar[c] = (1 - m) * runningVar[c] + m * plan.variance[c] * unbias
        }
        batchesTracked[0] += 1
    }

    struct PlanKey: Hashable {
        let shape: [Int]
        let training: Bool
    }

    private func plan(_ key: PlanKey) -> Plan { plans.memoized(key) { Plan(self, key) } }

    final class Plan {
        let forward: Primitive
        let backward: Primitive?
        /// Training plans: the forward again with the kept batch statistics (`recomputeOutput`).
        let replay: Primitive?
        let workspace: RawBuffer?
        let mean: Tensor, variance: Tensor, dGamma: Tensor, dBeta: Tensor
        /// The affine map of the batch statistics (`forwardStatistics`).
        let scale: Tensor, shift: Tensor
        /// The layer's own output, allocated on first use (a network may give every forward a buffer).
        lazy var output = Tensor(shape)
        /// Per-image channel means of the input [N, C] and of the output, of the last
        /// `forwardStatistics(_:imageMeans: true)` (valid when `imageMeansValid`).
        lazy var imageMeans = Tensor([shape[0], shape[3]])
        lazy var outputMeans = Tensor([shape[0], shape[3]])
        var imageMeansValid = false
        /// The coefficients of `backward(_:scaledBy:attentionBackward:)`.
        lazy var attendedWorkspace = AttendedNormBackward.Workspace(images: shape[0], channels: shape[3])
        let shape: [Int]

        init(_ bn: BatchNorm2d, _ key: PlanKey) {
            var data = DNNL.nhwc(key.shape)
            var flags = UInt32(dnnl_use_scale.rawValue | dnnl_use_shift.rawValue)
            if bn.fusedReLU { flags |= UInt32(dnnl_fuse_norm_relu.rawValue) }
            func inference() -> Primitive {
                var d = dnnl_batch_normalization_desc_t()
                DNNL.check(dnnl_batch_normalization_forward_desc_init(
                    &d, dnnl_forward_inference, &data, bn.eps, flags | UInt32(dnnl_use_global_stats.rawValue)), "bn inference desc")
                return withUnsafePointer(to: &d) { Primitive(desc: $0, context: bn.context) }
            }
            let fwd: Primitive
            if key.training {
                var fd = dnnl_batch_normalization_desc_t()
                DNNL.check(dnnl_batch_normalization_forward_desc_init(&fd, dnnl_forward_training, &data, bn.eps, flags), "bn fwd desc")
                fwd = withUnsafePointer(to: &fd) { Primitive(desc: $0, context: bn.context) }
                replay = inference()
            } else {
                fwd = inference()
                replay = nil
            }
            forward = fwd
            if key.training {
                var bd = dnnl_batch_normalization_desc_t()
                DNNL.check(dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, &data, &data, bn.eps, flags), "bn bwd desc")
                backward = withUnsafePointer(to: &bd) { Primitive(desc: $0, hint: fwd, context: bn.context) }
                let wsBytes = DNNL.bytes(fwd.argDesc(Int32(DNNL_ARG_WORKSPACE)))
                workspace = wsBytes > 0 ? RawBuffer(bytes: wsBytes) : nil
            } else {
                backward = nil
                workspace = nil
            }
            shape = key.shape
            mean = Tensor([bn.channels])
            variance = Tensor([bn.channels])
            dGamma = Tensor([bn.channels])
            dBeta = Tensor([bn.channels])
            scale = Tensor([bn.channels])
            shift = Tensor([bn.channels])
        }
    }
}
