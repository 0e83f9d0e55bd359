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

    /// Leading blocks a few-shot supernet is split on: 2^fewShotBits supernets.
    public static let fewShotBits = 2

    /// d ~ Bernoulli(keepProbability)^L.
    public func sample(keepProbability p: Double, rng: inout RNG) -> Scheme {
        Scheme(bits: attentions.indices.map { _ in Double(rng.uniform()) < p }, stageSizes: net.spec.blocksPerStage)
    }
}

/// How a supernet is trained: which sub-networks each mini-batch trains, and on what targets.
/// Every strategy draws from the same d ~ Bernoulli(p)^L; they differ in what they add to it.
public enum SupernetSampling: String, CaseIterable, Codable, Sendable, CustomStringConvertible {
    /// The paper's (METHOD.md section 3): one sampled scheme d per mini-batch.
    case bernoulli
    /// BigNAS's sandwich rule: Full-SA, the original network and d, gradients summed.
    case sandwich
    /// FairNAS's strict fairness: d and its complement 1 - d, gradients summed, so every
    /// block's SAM trains on exactly half of the passes.
    case fair
    /// In-place distillation (BigNAS): Full-SA on the labels, then d on Full-SA's softmax
    /// predictions of the same images (no gradient through the teacher), gradients summed.
    case distill
    /// Few-shot supernets (Zhao et al., ICML 2021): one supernet per setting of the first
    /// `Supernet.fewShotBits` blocks, each trained with d on the other bits and those fixed;
    /// a scheme is scored by the supernet of its split. Costs one supernet per split.
    case fewshot

    public var description: String { rawValue }

    /// Forward-backward passes per mini-batch (the strategy's cost relative to `bernoulli`).
    public var passesPerStep: Int {
        switch self {
        case .bernoulli, .fewshot: return 1
        case .fair, .distill: return 2
        case .sandwich: return 3
        }
    }
}

/// One forward-backward pass of a supernet training step: the sub-network it trains and, for
/// in-place distillation, the earlier pass of the same step whose predictions are its targets.
public struct SupernetPass: Equatable, Sendable {
    public let scheme: Scheme
    /// Index of the teacher pass in the step's list (nil: the labels are the targets).
    public let teacher: Int?
}

extension Supernet {
    /// The passes of one training step under `sampling`, with d ~ Bernoulli(keepProbability)^L
    /// drawn from `rng` (one draw of L uniforms for every strategy).
    /// `split` fixes the leading bits of d (a few-shot supernet's split; empty: none).
    public func passes(_ sampling: SupernetSampling, keepProbability p: Double, split: [Bool] = [], rng: inout RNG) -> [SupernetPass] {
        var d = sample(keepProbability: p, rng: &rng)
        let stages = net.spec.blocksPerStage
        if !split.isEmpty {
            precondition(split.count <= d.bits.count, "split of \(split.count) bits for \(d.bits.count) blocks")
            d = Scheme(bits: split + d.bits.dropFirst(split.count), stageSizes: stages)
        }
        switch sampling {
        case .bernoulli, .fewshot:
            return [SupernetPass(scheme: d, teacher: nil)]
        case .sandwich:
            return [SupernetPass(scheme: .all(true, stageSizes: stages), teacher: nil),
                    SupernetPass(scheme: .all(false, stageSizes: stages), teacher: nil),
                    SupernetPass(scheme: d, teacher: nil)]
        case .fair:
            return [SupernetPass(scheme: d, teacher: nil),
                    SupernetPass(scheme: Scheme(bits: d.bits.map { !$0 }, stageSizes: stages), teacher: nil)]
        case .distill:
            return [SupernetPass(scheme: .all(true, stageSizes: stages), teacher: nil), SupernetPass(scheme: d, teacher: 0)]
        }
    }
}
