import NN
import Tensor

/// A residual block  x_{l+1} = ReLU(S(x) + A(F(x))): F the residual branch, S the shortcut
/// (identity or 1x1 conv + BN), A the optional attention attached at this block.
public protocol ResidualBlock: Module {
    /// Channels of F(x) (where an attention attaches) = output channels.
    var outChannels: Int { get }
    var stride: Int { get }
    /// The attention on this block's branch; nil = plain block.
    var attention: BranchAttention? { get set }
    /// The branch's convolutions from the block's input to F, in order, and the projection
    /// shortcut's (nil: identity).
    var convolutions: (branch: [Conv2d], shortcut: Conv2d?) { get }
    /// Modules owning the attention's parameters, listed among the block's children (e.g.
    /// `("se", instance)` -> `layer1.0.se.fc1.weight`).
    var attachedModules: [(String, Module)] { get set }
    func forward(_ x: Tensor, training: Bool) -> Tensor
    /// dy (gradient of the output) -> dx (gradient of the input) after a training forward.
    /// `outputMasked`: dy has already been through the backward of this block's join ReLU (the
    /// block after fused it). `maskInput`: the input is the output of the block before, whose
    /// join ReLU backward is fused here: dx is masked by x > 0 in the pass that adds the
    /// shortcut's gradient.
    func backward(_ dy: Tensor, outputMasked: Bool, maskInput: Bool) -> Tensor
    /// Builds or refreshes the folded inference path from the current weights and statistics.
    func foldBatchNorms()
    /// Eval-mode forward with every BN folded into its convolution (`foldBatchNorms()` first).
    /// `reusingBranch`: `x` is the unchanged input of the previous call; only the last
    /// convolution and the join (with the current attention) run again, or nothing when that
    /// call already made this variant. `toggling`: the next call on this input
    /// (`reusingBranch`) will ask for the block with this attention toggled (attached if the
    /// current one is nil, none if it is this one): made in the same pass when that costs no
    /// extra convolution (an SE-like attention, `BranchAttention.scale`).
    func forwardFolded(_ x: Tensor, reusingBranch: Bool, toggling: BranchAttention?) -> Tensor
}

extension ResidualBlock {
    /// Eval-mode forward with every BN folded (`foldBatchNorms()` first).
    public func forwardFolded(_ x: Tensor) -> Tensor { forwardFolded(x, reusingBranch: false, toggling: nil) }
}

/// Which kernels run a training backward where a fused pass exists: `fused` the host's passes
/// that join a bottleneck's last 1x1 convolution's GEMMs (LIBXSMM) with the backward of the
/// batch norms before and after it, tile by tile in cache (`Conv2d.backward(_:throughNormWithReLU:scratch:)`);
/// `onednn` oneDNN's separate primitives (what every step ran before; kept for comparisons).
public enum BackwardKernels: String, CaseIterable, Sendable {
    case fused, onednn
}

/// The projection shortcut `downsample` = 1x1 conv (stride) + BN, named `0` and `1` like
/// PyTorch's `nn.Sequential`.
public final class Downsample: Module {
    public let conv: Conv2d, bn: BatchNorm2d
    public var children: [(String, Module)] { [("0", conv), ("1", bn)] }
    init(_ inC: Int, _ outC: Int, stride: Int, gradients: GradientRing, context: ComputeContext) {
        conv = Conv2d(inC, outC, kernel: 1, stride: stride, gradients: gradients, context: context)
        bn = BatchNorm2d(outC, gradients: gradients, context: context)
    }
    func forward(_ x: Tensor, training: Bool) -> Tensor { bn.forward(conv.forward(x), training: training) }
    func backward(_ dy: Tensor) -> Tensor { conv.backward(bn.backward(dy)) }
}

/// The end of every residual block: the attention on the branch (if any), the shortcut, and
/// the join ReLU(S(x) + A(F)). Backward returns the gradients of F and of x via the shortcut.
final class ResidualTail {
    private let join: AddReLU
    /// The block's input at the last training forward (owned by the layer before; `maskInput`).
    private var input: Tensor?
    init(gradients: GradientRing, context: ComputeContext) { join = AddReLU(gradients: gradients, context: context) }

    /// dx += dShortcut, then with `maskInput` dx *= (x > 0) for the block's input x (the ReLU
    /// backward of the block before), in one pass.
    func addShortcutGradient(_ dShortcut: Tensor, to dx: Tensor, maskInput: Bool) {
        join.context.profiler.measure("shortcut grad add") {
            if maskInput, let x = input { dx.addThenReLUBackward(dShortcut, reluOutput: x) } else { dx.add(dShortcut) }
        }
    }

    /// Whether F must stay in a buffer of its own: an attention keeps F for its backward (the
    /// join itself keeps only its output).
    func branchIsKept(_ attention: BranchAttention?, training: Bool) -> Bool { training && attention != nil }

    func forward(_ f: Tensor, input x: Tensor, attention: BranchAttention?, downsample: Downsample?, training: Bool) -> Tensor {
        normalizedInJoin = false
        input = training ? x : nil
        let s = downsample?.forward(x, training: training) ?? x
        if let a = attention, let y = a.joined(f, shortcut: s, training: training, into: join.outputBuffer(f.shape)) {
            if training { join.adopt(output: y) }
            return y
        }
        let branch = attention?.forward(f, training: training) ?? f
        return join.forward(branch, s, training: training)
    }

    /// Whether the last training forward normalised the branch's last batch norm inside the
    /// join (`forwardNormalizing`), and the attention A [N, 1, 1, C] it folded into that
    /// normalisation (an SE-like attention; nil: none).
    private var normalizedInJoin = false
    private var foldedAttention: Tensor?
    private let imageScales = BufferPool(), imageShifts = BufferPool()

    /// Training, when the branch's last batch norm computes its statistics alone: that batch
    /// norm's normalisation and the join in one pass, F is never written. Without an attention
    /// ReLU(x * scale + shift + s); with an attention F * A of F's channel means alone
    /// (`BranchAttention.scale`: S from the statistics pass, A folded into the per-channel map)
    /// ReLU(x * (scale A) + shift A + s). nil when the batch norm or the attention cannot (the
    /// block runs `forward`).
    func forwardNormalizing(_ c: Tensor, with norm: BatchNorm2d, input x: Tensor, attention: BranchAttention?,
                            downsample: Downsample?, training: Bool) -> Tensor? {
        normalizedInJoin = false
        guard training, norm.computesStatisticsAlone else { return nil }
        foldedAttention = nil
        var affine: (scale: Tensor, shift: Tensor)?
        var attentionScale: Tensor?
        if let attention {
            attentionScale = attention.scale(branchShape: c.shape, training: true, fromChannelMeans: {
                affine = norm.forwardStatistics(c, imageMeans: true)
                return norm.outputChannelMeans()
            })
            // nil before the statistics: the attention cannot fold (the block forms F);
            // nil after them: it failed (recorded; the pass throws), so join without it
            guard affine != nil else { return nil }
        } else {
            affine = norm.forwardStatistics(c)
        }
        input = x
        let s = downsample?.forward(x, training: true) ?? x
        let (scale, shift) = affine!
        normalizedInJoin = true
        guard let a = attentionScale else { return join.forward(normalizing: c, scale: scale, shift: shift, s) }
        let (n, channels) = (c.shape[0], c.shape[3])
        let imageScale = imageScales.get([n, channels]), imageShift = imageShifts.get([n, channels])
        for b in 0..<n {
            for k in 0..<channels {
                imageScale[b * channels + k] = scale[k] * a[b * channels + k]
                imageShift[b * channels + k] = shift[k] * a[b * channels + k]
            }
        }
        foldedAttention = a
        return join.forward(normalizing: c, imageScale: imageScale, imageShift: imageShift, s)
    }

    /// dF -> the gradient of the branch's last convolution output, through its batch norm
    /// `norm` (and the attention, when `forwardNormalizing` folded it there): after
    /// `forwardNormalizing` the two-pass backward that matches its join (same kernels with and
    /// without an attention, so plain, attended and supernet steps cost alike), else oneDNN's.
    /// `dF` is also the shortcut's gradient unless an attention made its own, so it is
    /// overwritten only then.
    func normalizationBackward(_ dF: Tensor, through norm: BatchNorm2d, attention: BranchAttention?) -> Tensor {
        if normalizedInJoin {
            guard let a = foldedAttention, let attention else { return norm.backward(dF, scaledBy: nil, attentionBackward: nil) }
            return norm.backward(dF, scaledBy: a, attentionBackward: attention.scaleBackward)
        }
        return norm.backward(dF, overwriting: attention != nil)
    }

    /// `normalizationBackward` with its last pass deferred to the consumer (`BatchNorm2d.deferredBackward`)
    /// after `forwardNormalizing`; nil otherwise (oneDNN's backward: run `normalizationBackward`).
    func deferredNormalizationBackward(_ dF: Tensor, through norm: BatchNorm2d, attention: BranchAttention?) -> DeferredNormGradient? {
        guard normalizedInJoin else { return nil }
        guard let a = foldedAttention, let attention else { return norm.deferredBackward(dF, scaledBy: nil, attentionBackward: nil) }
        return norm.deferredBackward(dF, scaledBy: a, attentionBackward: attention.scaleBackward)
    }

    /// Inference: ReLU(shortcut + A(f)) for a block with an attention, fused when it can be.
    func inferJoin(_ f: Tensor, shortcut s: Tensor, attention a: BranchAttention) -> Tensor {
        a.joined(f, shortcut: s, training: false, into: join.outputBuffer(f.shape)) ?? join.forward(a.forward(f, training: false), s, training: false)
    }

    func backward(_ dy: Tensor, outputMasked: Bool, attention: BranchAttention?, downsample: Downsample?) -> (branch: Tensor, shortcut: Tensor) {
        let g = outputMasked ? dy : join.backward(dy)
        let dShortcut = downsample?.backward(g) ?? g
        // a folded attention's backward runs inside `normalizationBackward`
        return (foldedAttention == nil ? attention?.backward(g) ?? g : g, dShortcut)
    }
}

/// Basic block (two 3x3 convs, expansion 1):
///     F = bn2(conv2(relu(bn1(conv1(x)))))      x [N,H,W,in] -> [N,H/s,W/s,planes]
public final class BasicBlock: ResidualBlock {
    public let conv1: Conv2d, bn1: BatchNorm2d, conv2: Conv2d, bn2: BatchNorm2d
    public let downsample: Downsample?
    public var attention: BranchAttention?
    public var attachedModules: [(String, Module)] = []
    public let outChannels: Int, stride: Int
    private let tail: ResidualTail
    /// Transient outputs shared with the network's other blocks: the batch norms' outputs the
    /// next layer consumes at once; backward recomputes them (`recomputeOutput`).
    private let scratch: BufferPool

    public var children: [(String, Module)] {
        var c: [(String, Module)] = [("conv1", conv1), ("bn1", bn1), ("conv2", conv2), ("bn2", bn2)]
        if let d = downsample { c.append(("downsample", d)) }
        return c + attachedModules
    }

    /// `gradients`, `scratch`: the gradient ring and transient buffers of the network the block
    /// belongs to.
    public init(_ inC: Int, _ planes: Int, stride: Int, gradients: GradientRing = GradientRing(), scratch: BufferPool = BufferPool(),
                context: ComputeContext = ComputeContext()) {
        self.scratch = scratch
        conv1 = Conv2d(inC, planes, kernel: 3, stride: stride, padding: 1, gradients: gradients, context: context)
        bn1 = BatchNorm2d(planes, fusedReLU: true, gradients: gradients, context: context)
        conv2 = Conv2d(planes, planes, kernel: 3, padding: 1, gradients: gradients, context: context)
        bn2 = BatchNorm2d(planes, gradients: gradients, context: context)
        downsample = (stride != 1 || inC != planes) ? Downsample(inC, planes, stride: stride, gradients: gradients, context: context) : nil
        tail = ResidualTail(gradients: gradients, context: context)
        outChannels = planes
        self.stride = stride
    }

    public var convolutions: (branch: [Conv2d], shortcut: Conv2d?) { ([conv1, conv2], downsample?.conv) }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let c1 = conv1.forward(x)
        var f = bn1.forward(c1, training: training, into: scratch.get(c1.shape))
        let c2 = conv2.forward(f)
        if let y = tail.forwardNormalizing(c2, with: bn2, input: x, attention: attention, downsample: downsample, training: training) { return y }
        f = bn2.forward(c2, training: training, into: tail.branchIsKept(attention, training: training) ? nil : scratch.get(c2.shape))
        return tail.forward(f, input: x, attention: attention, downsample: downsample, training: training)
    }

    public func backward(_ dy: Tensor, outputMasked: Bool, maskInput: Bool) -> Tensor {
        let (dF, dShortcut) = tail.backward(dy, outputMasked: outputMasked, attention: attention, downsample: downsample)
        let d = conv2.backward(tail.normalizationBackward(dF, through: bn2, attention: attention), input: bn1.recomputeOutput(in: scratch))
        let dx = conv1.backward(bn1.backward(d, overwriting: true))
        tail.addShortcutGradient(dShortcut, to: dx, maskInput: maskInput)
        return dx
    }

    private var folded: FoldedBlock?
    public func foldBatchNorms() {
        if let folded { folded.refresh() } else { folded = FoldedBlock([(conv1, bn1), (conv2, bn2)], downsample: downsample) }
    }
    public func forwardFolded(_ x: Tensor, reusingBranch: Bool, toggling: BranchAttention?) -> Tensor {
        guard let folded else { preconditionFailure("forwardFolded before foldBatchNorms()") }
        return folded.forward(x, attention: attention, tail: tail, reusingBranch: reusingBranch, toggling: toggling)
    }
}

/// Bottleneck block (1x1 planes, 3x3 planes with the stride, 1x1 4*planes):
///     F = bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x))))))))   x [N,H,W,in] -> [N,H/s,W/s,4*planes]
public final class Bottleneck: ResidualBlock {
    public static let expansion = 4
    public let conv1: Conv2d, bn1: BatchNorm2d, conv2: Conv2d, bn2: BatchNorm2d, conv3: Conv2d, bn3: BatchNorm2d
    public let downsample: Downsample?
    public var attention: BranchAttention?
    public var attachedModules: [(String, Module)] = []
    public let outChannels: Int, stride: Int
    private let tail: ResidualTail
    /// Transient outputs shared with the network's other blocks: the batch norms' outputs the
    /// next layer consumes at once; backward recomputes them (`recomputeOutput`).
    private let scratch: BufferPool
    /// Whether backward runs bn3's second pass, conv3 and bn2 as fused passes
    /// (`Conv2d.backward(_:throughNormWithReLU:scratch:)`) where it can; false: oneDNN's separate
    /// primitives (for comparisons).
    public var fusesPointwiseBackward = true

    public var children: [(String, Module)] {
        var c: [(String, Module)] = [("conv1", conv1), ("bn1", bn1), ("conv2", conv2), ("bn2", bn2), ("conv3", conv3), ("bn3", bn3)]
        if let d = downsample { c.append(("downsample", d)) }
        return c + attachedModules
    }

    /// `gradients`, `scratch`: the gradient ring and transient buffers of the network the block
    /// belongs to.
    public init(_ inC: Int, _ planes: Int, stride: Int, gradients: GradientRing = GradientRing(), scratch: BufferPool = BufferPool(),
                context: ComputeContext = ComputeContext()) {
        self.scratch = scratch
        let outC = planes * Bottleneck.expansion
        conv1 = Conv2d(inC, planes, kernel: 1, gradients: gradients, context: context)
        bn1 = BatchNorm2d(planes, fusedReLU: true, gradients: gradients, context: context)
        conv2 = Conv2d(planes, planes, kernel: 3, stride: stride, padding: 1, gradients: gradients, context: context)
        bn2 = BatchNorm2d(planes, fusedReLU: true, gradients: gradients, context: context)
        conv3 = Conv2d(planes, outC, kernel: 1, gradients: gradients, context: context)
        bn3 = BatchNorm2d(outC, gradients: gradients, context: context)
        downsample = (stride != 1 || inC != outC) ? Downsample(inC, outC, stride: stride, gradients: gradients, context: context) : nil
        tail = ResidualTail(gradients: gradients, context: context)
        outChannels = outC
        self.stride = stride
    }

    public var convolutions: (branch: [Conv2d], shortcut: Conv2d?) { ([conv1, conv2, conv3], downsample?.conv) }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let c1 = conv1.forward(x)
        var f = bn1.forward(c1, training: training, into: scratch.get(c1.shape))
        let c2 = conv2.forward(f)
        f = bn2.forward(c2, training: training, into: scratch.get(c2.shape))
        let c3 = conv3.forward(f)
        if let y = tail.forwardNormalizing(c3, with: bn3, input: x, attention: attention, downsample: downsample, training: training) { return y }
        f = bn3.forward(c3, training: training, into: tail.branchIsKept(attention, training: training) ? nil : scratch.get(c3.shape))
        return tail.forward(f, input: x, attention: attention, downsample: downsample, training: training)
    }

    public func backward(_ dy: Tensor, outputMasked: Bool, maskInput: Bool) -> Tensor {
        let (dF, dShortcut) = tail.backward(dy, outputMasked: outputMasked, attention: attention, downsample: downsample)
        var d: Tensor
        if fusesPointwiseBackward {
            let dc3 = tail.deferredNormalizationBackward(dF, through: bn3, attention: attention).map { OutputGradient.deferred($0) }
                ?? .tensor(tail.normalizationBackward(dF, through: bn3, attention: attention))
            d = conv3.backward(dc3, throughNormWithReLU: bn2, scratch: scratch)
        } else {
            let dc3 = tail.normalizationBackward(dF, through: bn3, attention: attention)
            d = bn2.backward(conv3.backward(dc3, input: bn2.recomputeOutput(in: scratch)), overwriting: true)
        }
        d = conv2.backward(d, input: bn1.recomputeOutput(in: scratch))
        let dx = conv1.backward(bn1.backward(d, overwriting: true))
        tail.addShortcutGradient(dShortcut, to: dx, maskInput: maskInput)
        return dx
    }

    private var folded: FoldedBlock?
    public func foldBatchNorms() {
        if let folded { folded.refresh() } else { folded = FoldedBlock([(conv1, bn1), (conv2, bn2), (conv3, bn3)], downsample: downsample) }
    }
    public func forwardFolded(_ x: Tensor, reusingBranch: Bool, toggling: BranchAttention?) -> Tensor {
        guard let folded else { preconditionFailure("forwardFolded before foldBatchNorms()") }
        return folded.forward(x, attention: attention, tail: tail, reusingBranch: reusingBranch, toggling: toggling)
    }
}

/// A stage (`layer1`, `layer2`, ...): blocks named `0`, `1`, ... like `nn.Sequential`.
public final class Stage: Module {
    public let blocks: [ResidualBlock]
    /// Modules shared by the stage's blocks (a Full-Share SAM: `layer1.se.fc1.weight`).
    public var attachedModules: [(String, Module)] = []
    public var children: [(String, Module)] { blocks.enumerated().map { (String($0.offset), $0.element) } + attachedModules }
    init(_ blocks: [ResidualBlock]) { self.blocks = blocks }
}
