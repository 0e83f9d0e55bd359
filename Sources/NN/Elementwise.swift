import Tensor

/// y = max(x, 0). Keeps its output for backward (the mask is y > 0).
public final class ReLU: Module {
    private let outputs = BufferPool()
    private var savedOutput: Tensor?
    /// Where backward's input gradients come from (shared by the layers of one network).
    let gradients: GradientRing
    public init(gradients: GradientRing = GradientRing()) { self.gradients = gradients }

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
        Profiler.shared.measure("relu bwd") { for i in 0..<dy.count { let gi = g[i]; d[i] = o[i] > 0 ? gi : 0 } }
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
    public init(gradients: GradientRing = GradientRing()) { self.gradients = gradients }

    /// a [N,H,W,C], b [N,H,W,C] -> y [N,H,W,C]. Inference (`training` false) runs one oneDNN
    /// pass on the shared thread pool and keeps nothing for backward.
    public func forward(_ a: Tensor, _ b: Tensor, training: Bool = true) -> Tensor {
        precondition(a.shape == b.shape, "residual add of \(a.shape) and \(b.shape)")
        let y = outputs.get(a.shape)
        Profiler.shared.measure(training ? "add+relu fwd" : "add+relu infer") { ChannelOps.shared.addReLU(a, b, into: y) }
        savedOutput = training ? y : nil
        return y
    }

    /// Training: y = ReLU(x * scale + shift + b), the normalisation of a batch norm whose
    /// statistics were computed alone (`BatchNorm2d.forwardStatistics`) fused into the join,
    /// one pass instead of writing the normalised x and reading it back. Backward as after `forward`.
    public func forward(normalizing x: Tensor, scale: Tensor, shift: Tensor, _ b: Tensor) -> Tensor {
        let y = outputs.get(x.shape)
        Profiler.shared.measure("bn+add+relu fwd") { ChannelOps.shared.normalizeJoin(x, scale: scale, shift: shift, shortcut: b, into: y) }
        savedOutput = y
        return y
    }

    /// Training: y = ReLU(x * scale[n, c] + shift[n, c] + b), a batch norm whose statistics were
    /// computed alone and a per-image channel attention on its output folded into one affine map
    /// per image and channel (`BatchNorm2d.backward(_:scaledBy:attentionBackward:)` is its
    /// backward). Backward as after `forward`.
    ///     x, b, y [N, H, W, C];  scale, shift [N, C]
    public func forward(normalizing x: Tensor, imageScale scale: Tensor, imageShift shift: Tensor, _ b: Tensor) -> Tensor {
        let (n, c) = (x.shape[0], x.shape[3]), perImage = x.count / max(x.shape[0], 1)
        precondition(x.shape == b.shape && scale.count == n * c && shift.count == n * c, "attended join of \(x.shape), \(b.shape), scale \(scale.shape)")
        let y = outputs.get(x.shape)
        Profiler.shared.measure("bn+sam+add+relu fwd") {
            Threads.parallelFor(n, grain: 1) { images in
                for i in images {
                    Tensor.scaleAddReLU(x.data + i * perImage, scale: scale.data + i * c, shift: shift.data + i * c, channels: c,
                                        adding: b.data + i * perImage, into: y.data + i * perImage, count: perImage)
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
        Profiler.shared.measure("add+relu bwd") { ChannelOps.shared.reluBackward(dy, output: y, into: dx) }
        return dx
    }
}
