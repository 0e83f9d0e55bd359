import Foundation
import Tensor

/// The reward every searcher is scored with (METHOD.md section 4), composed in the host:
///     R = w_acc * R_acc + w_sparse * R_sparse + w_rnd * R_rnd - shift  [+ w_lat * R_lat]
/// R_acc = supernet validation accuracy (percent), R_sparse = 1 - |d|_0 / L, and R_rnd the
/// Random Network Distillation curiosity ||f_target(d) - f_pred(d)||^2 with a fixed random
/// target MLP L->32->32->4L and a predictor L->32->4L trained (Adam) on every scored scheme.
/// Beyond the paper, R_lat = 1 - cost(d) / cost(Full-SA) with cost(d) = sum over connected
/// blocks of a measured per-block SAM time (`--reward-latency`; 0 = off, the paper's reward).
public struct RewardWeights: Codable, Equatable, Sendable {
    public var accuracy = 1.0
    public var sparsity = 2.0
    public var curiosity = 1.0
    public var shift = 54.0
    public var rndLearningRate = 0.05
    /// w_lat, the weight of the measured-latency term (0 = off).
    public var latency = 0.0
    public init() {}

    /// Throws naming the first weight that is not a finite number (or a learning rate <= 0).
    public func validate() throws {
        for (name, v) in [("accuracy", accuracy), ("sparsity", sparsity), ("curiosity", curiosity), ("shift", shift),
                          ("rndLearningRate", rndLearningRate), ("latency", latency)] where !v.isFinite {
            throw LTHError("`reward.\(name)` must be a finite number, got \(v)")
        }
        guard rndLearningRate > 0 else { throw LTHError("`reward.rndLearningRate` must be positive, got \(rndLearningRate)") }
    }
}

/// One scored scheme: the reward and its parts.
public struct RewardParts: Codable, Equatable, Sendable {
    public let reward: Double, accuracy: Double, sparsity: Double, curiosity: Double
    /// cost(d) / cost(Full-SA) when the latency term is on.
    public let relativeCost: Double?
    public init(reward: Double, accuracy: Double, sparsity: Double, curiosity: Double, relativeCost: Double? = nil) {
        self.reward = reward
        self.accuracy = accuracy
        self.sparsity = sparsity
        self.curiosity = curiosity
        self.relativeCost = relativeCost
    }
}

public final class RewardModel {
    public let weights: RewardWeights
    let blocks: Int
    let target: MLP, predictor: MLP
    /// The measured SAM cost of every block (needed when `weights.latency` != 0).
    public let blockCosts: [Double]?

    /// `blockCosts` (one per block, e.g. milliseconds) back the latency term; they must be given,
    /// non-negative with a positive sum, when `weights.latency` != 0.
    public init(blocks: Int, weights: RewardWeights, seed: UInt64, blockCosts: [Double]? = nil) throws {
        if weights.latency != 0 {
            guard let c = blockCosts, c.count == blocks, c.allSatisfy({ $0 >= 0 && $0.isFinite }), c.reduce(0, +) > 0 else {
                throw LTHError("`reward.latency` \(weights.latency) needs a measured cost for each of the \(blocks) blocks, got \(blockCosts.map { "\($0)" } ?? "none")")
            }
        }
        self.blockCosts = blockCosts
        self.blocks = blocks
        self.weights = weights
        var rng = RNG(seed: seed ^ 0x52_4E_44)
        target = MLP([blocks, 32, 32, 4 * blocks], rng: &rng)
        predictor = MLP([blocks, 32, 4 * blocks], rng: &rng)
    }

    /// Scores `bits` with its validation `accuracy`, then trains the predictor on it (one Adam step).
    public func score(_ bits: [Bool], accuracy: Double) -> RewardParts {
        let x = bits.map { $0 ? 1.0 : 0.0 }
        let t = target.forward(x), p = predictor.forward(x)
        var curiosity = 0.0
        var grad = [Double](repeating: 0, count: t.count)
        for i in 0..<t.count { curiosity += (p[i] - t[i]) * (p[i] - t[i]); grad[i] = 2 * (p[i] - t[i]) }
        predictor.backwardAndStep(x, grad, lr: weights.rndLearningRate)
        let sparsity = 1 - Double(bits.filter { $0 }.count) / Double(max(bits.count, 1))
        var reward = weights.accuracy * accuracy + weights.sparsity * sparsity + weights.curiosity * curiosity - weights.shift
        var relativeCost: Double? = nil
        if weights.latency != 0, let costs = blockCosts {
            let cost = zip(bits, costs).reduce(0) { $0 + ($1.0 ? $1.1 : 0) }
            relativeCost = cost / costs.reduce(0, +)
            reward += weights.latency * (1 - relativeCost!)
        }
        return RewardParts(reward: reward, accuracy: accuracy, sparsity: sparsity, curiosity: curiosity, relativeCost: relativeCost)
    }

    /// Predictor weights and Adam state, for checkpoints of the search.
    public var state: [Double] { predictor.state }
    public func restore(_ s: [Double]) throws { try predictor.restore(s) }
}

/// A small ReLU MLP in double precision with an Adam optimizer (RND's networks).
final class MLP {
    var layers: [(w: [Double], b: [Double], n: Int, m: Int)] = []  // w [m, n]
    var adamM: [[Double]] = [], adamV: [[Double]] = []
    var step = 0
    private var activations: [[Double]] = []

    init(_ sizes: [Int], rng: inout RNG) {
        for i in 0..<(sizes.count - 1) {
            let (n, m) = (sizes[i], sizes[i + 1])
            let bound = 1 / Double(n).squareRoot()
            layers.append((w: (0..<n * m).map { _ in Double(rng.uniform(Float(-bound), Float(bound))) },
                           b: (0..<m).map { _ in Double(rng.uniform(Float(-bound), Float(bound))) }, n: n, m: m))
        }
        let total = layers.reduce(0) { $0 + $1.w.count + $1.b.count }
        adamM = [Array(repeating: 0, count: total)]
        adamV = [Array(repeating: 0, count: total)]
    }

    func forward(_ x: [Double]) -> [Double] {
        var h = x
        activations = [x]
        for (k, l) in layers.enumerated() {
            var out = l.b
            for j in 0..<l.m { for i in 0..<l.n { out[j] += l.w[j * l.n + i] * h[i] } }
            if k < layers.count - 1 { out = out.map { max($0, 0) } }
            h = out
            activations.append(h)
        }
        return h
    }

    /// Backward of the last forward with output gradient `g`, then one Adam step.
    func backwardAndStep(_ x: [Double], _ g: [Double], lr: Double) {
        _ = forward(x)
        var grads: [[Double]] = Array(repeating: [], count: layers.count)
        var d = g
        for k in stride(from: layers.count - 1, through: 0, by: -1) {
            let l = layers[k], input = activations[k]
            var gw = [Double](repeating: 0, count: l.w.count)
            for j in 0..<l.m { for i in 0..<l.n { gw[j * l.n + i] = d[j] * input[i] } }
            grads[k] = gw + d
            var dIn = [Double](repeating: 0, count: l.n)
            for j in 0..<l.m { for i in 0..<l.n { dIn[i] += l.w[j * l.n + i] * d[j] } }
            if k > 0 { for i in 0..<l.n where activations[k][i] <= 0 { dIn[i] = 0 } }
            d = dIn
        }
        step += 1
        let (b1, b2, eps) = (0.9, 0.999, 1e-8)
        var offset = 0
        for k in 0..<layers.count {
            let n = layers[k].w.count
            for i in 0..<grads[k].count {
                let gi = grads[k][i]
                adamM[0][offset + i] = b1 * adamM[0][offset + i] + (1 - b1) * gi
                adamV[0][offset + i] = b2 * adamV[0][offset + i] + (1 - b2) * gi * gi
                let update = lr * (adamM[0][offset + i] / (1 - pow(b1, Double(step)))) / ((adamV[0][offset + i] / (1 - pow(b2, Double(step)))).squareRoot() + eps)
                if i < n { layers[k].w[i] -= update } else { layers[k].b[i - n] -= update }
            }
            offset += grads[k].count
        }
    }

    var state: [Double] { [Double(step)] + layers.flatMap { $0.w + $0.b } + adamM[0] + adamV[0] }

    func restore(_ s: [Double]) throws {
        let total = layers.reduce(0) { $0 + $1.w.count + $1.b.count }
        guard s.count == 1 + 3 * total else { throw LTHError("RND state has \(s.count) values, expected \(1 + 3 * total)") }
        step = Int(s[0])
        var o = 1
        for k in 0..<layers.count {
            let (nw, nb) = (layers[k].w.count, layers[k].b.count)
            layers[k].w = Array(s[o..<o + nw]); o += nw
            layers[k].b = Array(s[o..<o + nb]); o += nb
        }
        adamM[0] = Array(s[o..<o + total]); o += total
        adamV[0] = Array(s[o..<o + total])
    }
}
