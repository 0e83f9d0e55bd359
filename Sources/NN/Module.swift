import Tensor

/// A trainable tensor: its value and its gradient, both owned by the host.
/// `version` increases whenever `value` changes (layers use it to refresh cached reorders).
public final class Parameter: @unchecked Sendable {
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

    public var parameterCount: Int { namedParameters().reduce(0) { $0 + $1.1.value.count } }

    public func zeroGrad() { for (_, p) in namedParameters() { p.grad.zero() } }
}
