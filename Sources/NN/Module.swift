import Tensor

// Ownership of the tensors that flow through a network -- the one rule every layer follows
// (the way llm.c declares every saved activation once):
//
// - Outputs. A layer's forward writes into a buffer the layer owns (a `BufferPool` keyed by
//   shape) and returns it. The output stays valid until the same layer's next forward; a caller
//   that keeps it longer (a cache across passes, a test comparing two passes) `clone()`s it.
//   A batch norm may instead write into a buffer its network passes (`ResNet.scratch`, shared
//   by all blocks): valid only until the next layer has read it; backward rebuilds it with
//   `recomputeOutput` when it needs it.
// - Saved activations. In training mode, forward keeps references to what its backward needs
//   (its input -- owned by the layer below, so valid for the same pass -- or its own output);
//   inference keeps nothing. Backward before a training forward is a programming error.
// - Gradients. Backward takes dY (borrowed) and returns dX from its network's `GradientRing`:
//   the layer below must consume it at once, since the ring reuses a buffer `depth` requests
//   of the same shape later. Parameter gradients accumulate (+=) into `Parameter.grad`.
// - Parameters. Values and gradients are owned by `Parameter`, also those of SAM plugins
//   (the host allocates them and binds views); optimizers and checkpoints see only these.
// - Per network, never per process. A network owns its gradient ring, its `PassContext` and
//   its `ComputeContext` (oneDNN engine and stream, scratchpad, cached channel primitives via
//   `ChannelOps.of`, profiler), which every layer is given at construction; networks that run
//   one after another may share a context (`ResNet(..., context:)`). Nothing is process-wide.

/// A trainable tensor: its value and its gradient, both owned by the host.
/// `version` increases whenever `value` changes (layers use it to refresh cached reorders).
public final class Parameter {
    public let value: Tensor
    public let grad: Tensor
    public var version = 0
    public init(_ shape: [Int]) {
        value = Tensor(shape)
        grad = Tensor(shape)
    }
    /// Call after writing `value` outside an optimizer.
    public func touch() { version &+= 1 }
}

/// A non-trainable tensor kept in the state dict (BN running statistics). `integer` marks
/// counters that PyTorch stores as int64 (`num_batches_tracked`).
public struct Buffer {
    public let tensor: Tensor
    public let integer: Bool
    public init(_ tensor: Tensor, integer: Bool = false) {
        self.tensor = tensor
        self.integer = integer
    }
}

/// A node of the model tree. Names follow PyTorch's `state_dict` so checkpoints load there.
public protocol Module: AnyObject {
    /// Own parameters, in PyTorch registration order (e.g. `weight`, `bias`).
    var localParameters: [(String, Parameter)] { get }
    /// Own buffers (e.g. `running_mean`).
    var localBuffers: [(String, Buffer)] { get }
    /// Child modules with their attribute names (e.g. `layer1`, `0`, `conv1`).
    var children: [(String, Module)] { get }
}

extension Module {
    public var localParameters: [(String, Parameter)] { [] }
    public var localBuffers: [(String, Buffer)] { [] }
    public var children: [(String, Module)] { [] }

    /// Every parameter of the subtree with its dotted name.
    public func namedParameters(prefix: String = "") -> [(String, Parameter)] {
        var out = localParameters.map { (prefix + $0.0, $0.1) }
        for (name, child) in children { out += child.namedParameters(prefix: prefix + name + ".") }
        return out
    }

    /// Every buffer of the subtree with its dotted name.
    public func namedBuffers(prefix: String = "") -> [(String, Buffer)] {
        var out = localBuffers.map { (prefix + $0.0, $0.1) }
        for (name, child) in children { out += child.namedBuffers(prefix: prefix + name + ".") }
        return out
    }

    /// Parameters and buffers together in PyTorch `state_dict` order (each module's own
    /// parameters, then its buffers, then its children).
    public func stateEntries(prefix: String = "") -> [(String, Tensor, Bool)] {
        var out: [(String, Tensor, Bool)] = localParameters.map { (prefix + $0.0, $0.1.value, false) }
        out += localBuffers.map { (prefix + $0.0, $0.1.tensor, $0.1.integer) }
        for (name, child) in children { out += child.stateEntries(prefix: prefix + name + ".") }
        return out
    }

    /// The first parameter whose gradient holds NaN/Inf (its dotted name, the element and its
    /// value); nil when every gradient is finite.
    public func firstNonFiniteGradient() -> (name: String, index: Int, value: Float)? {
        for (name, p) in namedParameters() { if let i = p.grad.firstNonFinite() { return (name, i, p.grad.data[i]) } }
        return nil
    }

    /// The first parameter or buffer (running statistics) holding NaN/Inf; nil when all finite.
    public func firstNonFiniteState() -> (name: String, index: Int, value: Float)? {
        for (name, t, _) in stateEntries() { if let i = t.firstNonFinite() { return (name, i, t.data[i]) } }
        return nil
    }

    public var parameterCount: Int { namedParameters().reduce(0) { $0 + $1.1.value.count } }

    public func zeroGrad() { for (_, p) in namedParameters() { p.grad.zero() } }
}
