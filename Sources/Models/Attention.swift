import Tensor

/// What multiplies (or adds to) a residual branch: the attach point of a self-attention
/// module. A block with an attention computes  x_{l+1} = ReLU(S(x) + attention(F(x))),
/// e.g. `F * A` for SE. SAM plugins implement this protocol through the plugin host.
public protocol BranchAttention: AnyObject {
    /// F [N, H, W, C] -> recalibrated F' [N, H, W, C].
    func forward(_ branch: Tensor, training: Bool) -> Tensor
    /// dF' -> dF; parameter gradients accumulate inside.
    func backward(_ gradient: Tensor) -> Tensor
    /// Inference only: the whole join ReLU(shortcut + F') in one pass when the attention can
    /// fuse it, or nil to let the block join as usual.
    func inferJoined(_ branch: Tensor, shortcut: Tensor) -> Tensor?
}

extension BranchAttention {
    public func inferJoined(_ branch: Tensor, shortcut: Tensor) -> Tensor? { nil }
}

/// Counts forward and backward passes, so that state carried from block to block within a
/// stage (stateful attentions such as DIA) restarts at every pass whatever blocks run.
/// `ResNet.forward`/`backward` begin a pass; code that runs blocks itself (stand-alone SAM
/// sites, the search's prefix-shared evaluation) begins one explicitly.
public enum PassCounter {
    nonisolated(unsafe) public private(set) static var forward = 0
    nonisolated(unsafe) public private(set) static var backward = 0
    public static func beginForward() { forward &+= 1 }
    public static func beginBackward() { backward &+= 1 }
}
