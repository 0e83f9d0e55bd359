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

    /// d ~ Bernoulli(keepProbability)^L.
    public func sample(keepProbability p: Double, rng: inout RNG) -> Scheme {
        Scheme(bits: attentions.indices.map { _ in Double(rng.uniform()) < p }, stageSizes: net.spec.blocksPerStage)
    }
}
