import NN
import Tensor

/// The weight-sharing supernet (METHOD.md section 3): a network with an attention module
/// attached at every block (Full-SA or Full-Share), any sub-network of which is selected by a
/// connection scheme. Unconnected blocks run without their attention; all parameters stay in
/// the model (and its checkpoints) whatever the scheme.
public final class Supernet {
    public let net: ResNet
    /// The attention of every block, as attached (Full-SA / Full-Share, scheme all ones).
    public let attentions: [BranchAttention]
    public private(set) var scheme: Scheme

    /// Captures the attentions currently attached to every block of `net`.
    public init(_ net: ResNet) throws {
        let all = net.blocks.map { $0.attention }
        guard all.allSatisfy({ $0 != nil }) else {
            throw LTHError("a supernet needs an attention module at every block; attach with the all-ones scheme first")
        }
        self.net = net
        attentions = all.map { $0! }
        scheme = .all(true, stageSizes: net.spec.blocksPerStage)
    }

    /// Selects the sub-network of `scheme`.
    public func apply(_ scheme: Scheme) {
        precondition(scheme.bits.count == attentions.count, "scheme of \(scheme.bits.count) bits for \(attentions.count) blocks")
        for (block, (on, attention)) in zip(net.blocks, zip(scheme.bits, attentions)) { block.attention = on ? attention : nil }
        self.scheme = scheme
    }

    /// Parameters of the stand-alone network of `scheme`: the backbone, the attention modules of
    /// the connected blocks, and a stage's shared module once when any of its blocks is connected.
    public func parameterCount(_ scheme: Scheme) -> Int {
        func count(_ modules: [(String, Module)]) -> Int { modules.reduce(0) { $0 + $1.1.parameterCount } }
        var total = net.parameterCount
        var index = 0
        for stage in net.stages {
            let bits = scheme.bits[index..<index + stage.blocks.count]
            index += stage.blocks.count
            for (block, on) in zip(stage.blocks, bits) where !on { total -= count(block.attachedModules) }
            if !bits.contains(true) { total -= count(stage.attachedModules) }
        }
        return total
    }

    /// d ~ Bernoulli(keepProbability)^L.
    public func sample(keepProbability p: Double, rng: inout RNG) -> Scheme {
        Scheme(bits: attentions.indices.map { _ in Double(rng.uniform()) < p }, stageSizes: net.spec.blocksPerStage)
    }
}
