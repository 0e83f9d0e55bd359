import Tensor

/// y = max(x, 0). Keeps its output for backward (the mask is y > 0).
public final class ReLU: Module {
    private let outputs = BufferPool()
    private var savedOutput: Tensor?
    /// Where backward's input gradients come from (shared by the layers of one network).
    let gradients: GradientRing
    /// Where it runs (a network's layers share one).
    public let context: ComputeContext
    public init(gradients: GradientRing = GradientRing(), context: ComputeContext = ComputeContext()) {
        (self.gradients, self.context) = (gradients, context)
    }

    /// x [*] -> y [*]
    public func forward(_ x: Tensor) -> Tensor {
        let y = outputs.get(x.shape)
        let a = x.data, b = y.data
        for i in 0..<x.count { b[i] = max(a[i], 0) }
        savedOutput = y
        return y
    }

    /// dx = dy * (y > 0)
    public func backward(_ dy: Tensor) -> Tensor {
        guard let y = savedOutput else { fatalError("ReLU backward before forward") }
        let dx = gradients.next(dy.shape)
        let g = dy.data, o = y.data, d = dx.data
        context.profiler.measure("relu bwd") { for i in 0..<dy.count { let gi = g[i]; d[i] = o[i] > 0 ? gi : 0 } }
        return dx
    }
}

/// The residual join: y = ReLU(a + b), where a is the (possibly recalibrated) residual branch
/// and b the shortcut. Backward returns one gradient that flows to both inputs. Both passes
/// run as oneDNN primitives (binary add with a ReLU post-op; ReLU backward from the output).
public final class AddReLU: Module {
    private let outputs = BufferPool()
    private var savedOutput: Tensor?
    /// Where backward's input gradients come from (shared by the layers of one network).
    let gradients: GradientRing
    /// Where it runs (a network's layers share one).
    public let context: ComputeContext
    public init(gradients: GradientRing = GradientRing(), context: ComputeContext = ComputeContext()) {
        (self.gradients, self.context) = (gradients, context)
    }

    /// a [N,H,W,C], b [N,H,W,C] -> y [N,H,W,C]. Inference (`training` false) runs one oneDNN
    /// pass on the shared thread pool and keeps nothing for backward.
    public func forward(_ a: Tensor, _ b: Tensor, training: Bool = true) -> Tensor {
        precondition(a.shape == b.shape, "residual add of \(a.shape) and \(b.shape)")
        let y = outputs.get(a.shape)
        context.profiler.measure(training ? "add+relu fwd" : "add+relu infer") { ChannelOps.of(context).addReLU(a, b, into: y) }
        savedOutput = training ? y : nil
        return y
    }

    /// Training: y = ReLU(x * scale + shift + b), the normalisation of a batch norm whose
    /// statistics were computed alone (`BatchNorm2d.forwardStatistics`) fused into the join,
    /// one pass instead of writing the normalised x and reading it back
    /// (`BatchNorm2d.backward(_:scaledBy: nil, attentionBackward: nil)` is its backward).
    /// Backward as after `forward`.
    ///     x, b, y [N, H, W, C];  scale, shift [C]
    public func forward(normalizing x: Tensor, scale: Tensor, shift: Tensor, _ b: Tensor) -> Tensor {
        precondition(scale.count == x.shape[3] && shift.count == x.shape[3], "join of \(x.shape) normalised by scale \(scale.shape)")
        return normalizedJoin(x, scale: scale, shift: shift, perImage: false, b, profiledAs: "bn+add+relu fwd")
    }

    /// Training: y = ReLU(x * scale[n, c] + shift[n, c] + b), a batch norm whose statistics were
    /// computed alone and a per-image channel attention on its output folded into one affine map
    /// per image and channel (`BatchNorm2d.backward(_:scaledBy:attentionBackward:)` is its
    /// backward). Backward as after `forward`.
    ///     x, b, y [N, H, W, C];  scale, shift [N, C]
    public func forward(normalizing x: Tensor, imageScale scale: Tensor, imageShift shift: Tensor, _ b: Tensor) -> Tensor {
        let (n, c) = (x.shape[0], x.shape[3])
        precondition(scale.count == n * c && shift.count == n * c, "attended join of \(x.shape), scale \(scale.shape)")
        return normalizedJoin(x, scale: scale, shift: shift, perImage: true, b, profiledAs: "bn+sam+add+relu fwd")
    }

    /// y = ReLU(x * scale + shift + b), image by image on the pool; scale and shift [N, C] with
    /// `perImage`, else [C] for every image.
    private func normalizedJoin(_ x: Tensor, scale: Tensor, shift: Tensor, perImage: Bool, _ b: Tensor, profiledAs label: String) -> Tensor {
        precondition(x.shape == b.shape, "join of \(x.shape) and \(b.shape)")
        let (n, c) = (x.shape[0], x.shape[3]), pixels = x.count / max(n, 1), stride = perImage ? c : 0
        let y = outputs.get(x.shape)
        context.profiler.measure(label) {
            Threads.parallelFor(n, grain: 1) { images in
                for i in images {
                    Tensor.scaleAddReLU(x.data + i * pixels, scale: scale.data + i * stride, shift: shift.data + i * stride, channels: c,
                                        adding: b.data + i * pixels, into: y.data + i * pixels, count: pixels)
                }
            }
        }
        savedOutput = y
        return y
    }

    /// The buffer `forward` writes y of `shape` into, lent to an attention that computes the
    /// join itself (then `adopt`), so a block's output has one buffer whichever way it joins.
    public func outputBuffer(_ shape: [Int]) -> Tensor { outputs.get(shape) }

    /// Takes `y` = ReLU(a + b) computed elsewhere (an attention fused into the join) as the
    /// output the next backward differentiates.
    public func adopt(output y: Tensor) { savedOutput = y }

    /// d(a) = d(b) = dy * (y > 0)
    public func backward(_ dy: Tensor) -> Tensor {
        guard let y = savedOutput else { fatalError("AddReLU backward before forward") }
        let dx = gradients.next(dy.shape)
        context.profiler.measure("add+relu bwd") { ChannelOps.of(context).reluBackward(dy, output: y, into: dx) }
        return dx
    }
}
