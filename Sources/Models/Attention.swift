import Tensor

/// What multiplies (or adds to) a residual branch: the attach point of a self-attention
/// module. A block with an attention computes  x_{l+1} = ReLU(S(x) + attention(F(x))),
/// e.g. `F * A` for SE. SAM plugins implement this protocol through the plugin host.
/// An attention that fails records the error in its network's `PassContext` and returns its
/// input (forward) or its output gradient (backward) so the pass can finish and throw.
public protocol BranchAttention: AnyObject {
    /// F [N, H, W, C] -> recalibrated F' [N, H, W, C].
    func forward(_ branch: Tensor, training: Bool) -> Tensor
    /// dF' -> dF; parameter gradients accumulate inside.
    func backward(_ gradient: Tensor) -> Tensor
    /// The whole join ReLU(shortcut + F') in one pass into `output` (the block's join buffer,
    /// borrowed) when the attention can fuse it, or nil to let the block join as usual. In
    /// training the attention keeps what its backward needs, whose input is then the gradient
    /// of F' (the join's backward needs only this output).
    func joined(_ branch: Tensor, shortcut: Tensor, training: Bool, into output: Tensor) -> Tensor?
    /// When this attention is F' = F * A with A [N,1,1,C] a function of the per-image channel
    /// means of F alone (SE): A from `means()` ([N, C], computed by the caller without forming
    /// F), so that the caller can apply it where F is made (inside the convolution at inference,
    /// inside the batch norm's normalisation in training); nil otherwise (then `joined`/`forward`
    /// run). `means` is called at most once, last: when it has been called and the result is
    /// nil, the attention failed (recorded in its `PassContext`). Training keeps what
    /// `scaleBackward` needs.
    func scale(branchShape: [Int], training: Bool, fromChannelMeans means: () -> Tensor?) -> Tensor?
    /// After a training `scale`: dA = dL/dA [N, C] -> dS = dL/dS [N, C], the gradient of the
    /// channel means; parameter gradients accumulate inside. A failure is recorded like
    /// `backward`'s (zeros are returned).
    func scaleBackward(_ dA: Tensor) -> Tensor
}

extension BranchAttention {
    public func joined(_ branch: Tensor, shortcut: Tensor, training: Bool, into output: Tensor) -> Tensor? { nil }
    public func scale(branchShape: [Int], training: Bool, fromChannelMeans means: () -> Tensor?) -> Tensor? { nil }
    public func scaleBackward(_ dA: Tensor) -> Tensor { preconditionFailure("scaleBackward without a training scale") }
}

/// The bookkeeping of one network's passes, owned by the network (`ResNet.passes`) and shared
/// with its attention sites. It counts forward and backward passes, so that state carried from
/// block to block within a stage (stateful attentions such as DIA) restarts at every pass
/// whatever blocks run, and it holds the first failure of an attention during the pass:
/// layers cannot throw, so a failing plugin records its error here, passes its input through,
/// and the network's `forward`/`backward` throws it at the end of the pass.
/// `ResNet.forward`/`backward` begin a pass; code that runs blocks itself (stand-alone SAM
/// sites, the search's prefix-shared evaluation) begins one and checks it explicitly.
/// Not thread-safe: one pass at a time, like the network itself.
public final class PassContext {
    public private(set) var forward = 0
    public private(set) var backward = 0
    /// The first attention failure since the pass began.
    public private(set) var failure: Error? = nil
    /// Attentions check what their plugin writes (attention, state, extract and recalibrated
    /// outputs, gradients of state and parameters) for NaN/Inf and fail with their block's
    /// name. On by default: one SIMD read pass over each, nothing for the host's own outputs.
    public var checkFinite = true
    /// With `checkFinite`: the plugin's input gradient too (a tensor of the feature map's size,
    /// ~1% of a step). Off by default: a NaN there reaches the gradient of the batch norm before
    /// the SAM, which training checks before every optimizer step; it then replays the step with
    /// this on to name the plugin (`Trainer`).
    public var checkInputGradients = false

    public init(checkInputGradients: Bool = false) {
        self.checkInputGradients = checkInputGradients
    }

    public func beginForward() {
        forward &+= 1
        failure = nil
    }

    public func beginBackward() {
        backward &+= 1
        failure = nil
    }

    /// Records `error` unless an earlier one of this pass is already recorded.
    public func fail(_ error: Error) {
        if failure == nil { failure = error }
    }

    /// Throws (and clears) the failure recorded during the pass, if any.
    public func check() throws {
        if let f = failure {
            failure = nil
            throw f
        }
    }
}
