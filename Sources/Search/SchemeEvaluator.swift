import Foundation
import Models
import NN
import Tensor

/// Scores schemes through a trained supernet on fixed validation batches, in eval mode and at
/// inference speed (no gradient bookkeeping), with two savings:
/// - a cache: a scheme evaluated once is never evaluated again;
/// - prefix sharing: schemes are evaluated in sorted order per batch, and a scheme restarts
///   from the first block where it differs from the previous one (the activations before it
///   are equal and still in the blocks' buffers). Stateful SAMs restart at that block's stage.
/// The network is left as the whole supernet (Full-SA) after every call.
public final class SchemeEvaluator {
    public let supernet: Supernet
    let batches: [(images: Tensor, labels: [Int32])]
    /// Restart at stage boundaries (stateful SAMs carry state through a stage).
    let restartAtStage: Bool
    private var cache: [String: Double] = [:]
    /// Sum of |logits| per evaluated scheme: a fingerprint of the outputs, for tests.
    public private(set) var logitFingerprint: [String: Double] = [:]
    /// Blocks run so far (for the prefix-sharing statistics).
    public private(set) var blocksRun = 0
    public private(set) var schemesEvaluated = 0

    public init(supernet: Supernet, batches: [(images: Tensor, labels: [Int32])], restartAtStage: Bool = false) {
        self.supernet = supernet
        self.batches = batches
        self.restartAtStage = restartAtStage
    }

    public var validationCount: Int { batches.reduce(0) { $0 + $1.labels.count } }

    /// Cached accuracy (percent) of `scheme`, if evaluated.
    public func cached(_ scheme: Scheme) -> Double? { cache[scheme.description] }

    /// Validation accuracies (percent) of `schemes`, evaluated with prefix sharing unless
    /// `sharePrefixes` is false (every scheme from the stem on; for tests and benchmarks).
    /// Throws an attention plugin's failure (the supernet is left whole).
    public func accuracies(_ schemes: [Scheme], sharePrefixes: Bool = true) throws -> [Double] {
        let missing = Array(Set(schemes.map { $0.description }).filter { cache[$0] == nil }).sorted()
        if !missing.isEmpty {
            let byKey = Dictionary(schemes.map { ($0.description, $0) }, uniquingKeysWith: { a, _ in a })
            let parsed = missing.map { byKey[$0]! }
            var correct = [Int](repeating: 0, count: parsed.count)
            var fingerprint = [Double](repeating: 0, count: parsed.count)
            let net = supernet.net
            let stageStart = stageStarts()
            for batch in batches {
                let stem = stemForward(batch.images)
                var previous: [Bool]? = nil
                for (k, scheme) in parsed.enumerated() {
                    var start = 0
                    if sharePrefixes, let prev = previous {
                        start = zip(prev, scheme.bits).prefix { $0 == $1 }.count
                        if restartAtStage && start < scheme.bits.count { start = stageStart[start] }
                    }
                    supernet.apply(scheme)
                    net.passes.beginForward()  // state chains restart (we restart at a stage start)
                    var h = start == 0 ? stem : lastOutputs[start - 1]
                    for i in start..<net.blocks.count {
                        h = net.blocks[i].forward(h, training: false)
                        lastOutputs[i] = h
                        blocksRun += 1
                    }
                    let logits = net.fc.forward(net.pool.forward(h))
                    do { try net.passes.check() } catch {
                        supernet.apply(.all(true, stageSizes: net.spec.blocksPerStage))
                        throw error
                    }
                    for i in 0..<logits.count { fingerprint[k] += Double(abs(logits[i])) }
                    for (p, label) in zip(SoftmaxCrossEntropy.predictions(logits), batch.labels) where p == Int(label) { correct[k] += 1 }
                    previous = scheme.bits
                }
            }
            supernet.apply(.all(true, stageSizes: net.spec.blocksPerStage))  // leave the supernet whole for other users
            for (k, key) in missing.enumerated() {
                cache[key] = 100 * Double(correct[k]) / Double(max(validationCount, 1))
                logitFingerprint[key] = fingerprint[k]
            }
            schemesEvaluated += missing.count
        }
        return schemes.map { cache[$0.description]! }
    }

    private lazy var lastOutputs: [Tensor] = Array(repeating: Tensor([0]), count: supernet.net.blocks.count)

    private func stemForward(_ x: Tensor) -> Tensor {
        let net = supernet.net
        var h = net.bn1.forward(net.conv1.forward(x), training: false)
        if let mp = net.maxpool { h = mp.forward(h) }
        return h
    }

    private func stageStarts() -> [Int] {
        var starts: [Int] = [], i = 0
        for n in supernet.net.spec.blocksPerStage { for _ in 0..<n { starts.append(i) }; i += n }
        return starts
    }
}
