import Cluster
import Foundation
import Models
import NN
import Tensor

/// What a scheme's supernet score measures on the validation images.
public enum SchemeScore: String, Codable, CaseIterable, Sendable, CustomStringConvertible {
    /// Accuracy in percent (the paper's).
    case accuracy
    /// 100 exp(-mean cross-entropy): the geometric mean of the probability given to the true
    /// class, in percent. Ranks as the validation loss does, finer than accuracy where many
    /// schemes tie near 100%, on the same 0-100 scale as accuracy in the reward.
    case likelihood
    public var description: String { rawValue }
}

/// Scores schemes through a trained supernet on fixed validation batches, in eval mode and at
/// inference speed (no gradient bookkeeping), with two savings:
/// - a cache: a scheme evaluated once is never evaluated again;
/// - prefix sharing: schemes are evaluated in sorted order per batch, and a scheme restarts
///   from the first block where it differs from the previous one (the activations before it
///   are equal and still in the blocks' buffers). Stateful SAMs restart at that block's stage.
/// With calibration images (BN recalibration, as SPOS and Once-for-All do), every scheme is
/// scored with batch-norm statistics re-estimated for its own sub-network: the running
/// statistics are reset and replaced by the average of the train-mode batch statistics over
/// the calibration batches (PyTorch's `momentum=None`), weights untouched. The statistics of
/// the blocks before the first differing block are shared too (they saw the same activations).
/// The network is left as the whole supernet (Full-SA), with its trained statistics, after
/// every call.
///
/// Distributed over the ranks of `group`: each rank holds its share of the validation images
/// (`batches`), evaluates every scheme on it with the same prefix sharing, and the correct
/// counts are summed, so every rank gets the accuracies of the whole set. `accuracies` is then
/// collective.
public final class SchemeEvaluator {
    public let supernet: Supernet
    /// This rank's validation images and labels.
    public let batches: [(images: Tensor, labels: [Int32])]
    /// Training images (normalised, not augmented) for BN recalibration; empty = score with
    /// the supernet's own running statistics (the paper's setting).
    public let calibration: [Tensor]
    /// Restart at stage boundaries (stateful SAMs carry state through a stage).
    let restartAtStage: Bool
    private var cache: [Scheme: Double] = [:]
    /// Mean validation cross-entropy per evaluated scheme (a finer score than accuracy when
    /// many schemes tie near 100%).
    private var lossCache: [Scheme: Double] = [:]
    private let crossEntropy = SoftmaxCrossEntropy()
    /// Sum of |logits| per evaluated scheme: a fingerprint of the outputs, for tests.
    public private(set) var logitFingerprint: [Scheme: Double] = [:]
    /// Blocks run so far (for the prefix-sharing statistics).
    public private(set) var blocksRun = 0
    public private(set) var schemesEvaluated = 0
    /// Train-mode block passes run for BN recalibration so far.
    public private(set) var calibrationBlocksRun = 0

    /// The ranks sharing the validation images.
    public let group: ProcessGroup
    /// Validation images over all ranks.
    public let validationCount: Int

    /// - Parameters:
    ///   - batches: this rank's validation images (all of them when alone).
    ///   - group, validationCount: the ranks and their images in all (nil: `batches` alone).
    public init(supernet: Supernet, batches: [(images: Tensor, labels: [Int32])], restartAtStage: Bool = false, calibration: [Tensor] = [],
                group: ProcessGroup = SingleProcess(), validationCount: Int? = nil) {
        self.supernet = supernet
        self.batches = batches
        self.group = group
        self.validationCount = validationCount ?? batches.reduce(0) { $0 + $1.labels.count }
        self.restartAtStage = restartAtStage
        self.calibration = calibration
    }

    /// Whether schemes are scored with recalibrated batch-norm statistics.
    public var recalibrates: Bool { !calibration.isEmpty }

    /// Score on the deployed network: every batch norm folded into its convolution, and a
    /// block that restarts with an unchanged input reuses its branch (only its last
    /// convolution and join run again). Off: eval-mode blocks (for tests and benchmarks).
    /// With BN recalibration the statistics change per scheme and the eval-mode path is used.
    public var folds = true


    /// Cached accuracy (percent) of `scheme`, if evaluated.
    public func cached(_ scheme: Scheme) -> Double? { cache[scheme] }

    /// Validation accuracies (percent) of `schemes`, evaluated with prefix sharing unless
    /// `sharePrefixes` is false (every scheme from the stem on; for tests and benchmarks).
    /// Throws an attention plugin's failure (the supernet is left whole).
    public func accuracies(_ schemes: [Scheme], sharePrefixes: Bool = true) throws -> [Double] {
        // in text order: neighbours share the longest prefixes
        let missing = Set(schemes).filter { cache[$0] == nil }.sorted { $0.description < $1.description }
        if !missing.isEmpty {
            let parsed = missing
            try checkSameSchemesOnEveryRank(missing.map(\.description))
            var correct = [Int](repeating: 0, count: parsed.count)
            var fingerprint = [Double](repeating: 0, count: parsed.count)
            var lossSum = [Double](repeating: 0, count: parsed.count)
            let net = supernet.net
            defer { supernet.apply(.all(true, stageSizes: net.spec.blocksPerStage)) }  // leave the supernet whole for other users
            let trained = recalibrates ? net.namedBuffers().map { $0.1.tensor.clone() } : []  // the supernet's own statistics
            defer { for ((_, buffer), saved) in zip(net.namedBuffers(), trained) { buffer.tensor.copy(from: saved) } }
            let statistics = recalibrates ? try recalibratedStatistics(parsed, sharePrefixes: sharePrefixes) : nil
            let norms = net.blockNorms
            if let statistics { net.bn1.setRunningStatistics(statistics.stem) }
            let folded = folds && !recalibrates
            if folded { net.foldBatchNorms() }  // from the supernet's current weights and statistics
            let toggles = sharePrefixes && folded ? toggledNext(parsed) : []
            for batch in batches {
                let stem = folded ? net.stemFolded(batch.images) : stemForward(batch.images, training: false)
                var previous: [Bool]? = nil
                for (k, scheme) in parsed.enumerated() {
                    let start = sharePrefixes ? firstBlockToRun(scheme, after: previous) : 0
                    supernet.apply(scheme)
                    if let statistics {  // blocks before `start` hold the previous scheme's, which are this one's
                        for i in start..<net.blocks.count {
                            for (bn, s) in zip(norms[i], statistics.blocks[k][i]) { bn.setRunningStatistics(s) }
                        }
                    }
                    net.passes.beginForward()  // state chains restart (we restart at a stage start)
                    var h = start == 0 ? stem : lastOutputs[start - 1]
                    for i in start..<net.blocks.count {
                        // block `start` last ran on this same input (blocks before it did not run since)
                        h = folded ? net.blocks[i].forwardFolded(h, reusingBranch: sharePrefixes && i == start && previous != nil,
                                                                 toggling: !toggles.isEmpty && toggles[k][i] ? supernet.attentions[i] : nil)
                                   : net.blocks[i].forward(h, training: false)
                        lastOutputs[i] = h
                        blocksRun += 1
                    }
                    let logits = net.fc.forward(net.pool.forward(h))
                    try net.passes.check()
                    for i in 0..<logits.count { fingerprint[k] += Double(abs(logits[i])) }
                    let scored = crossEntropy(logits, batch.labels)
                    correct[k] += scored.correct
                    lossSum[k] += scored.loss * Double(batch.labels.count)
                    previous = scheme.bits
                }
            }
            let counts = try group.sum(correct.map(Double.init) + fingerprint + lossSum)  // the whole validation set's
            for (k, key) in missing.enumerated() {
                cache[key] = 100 * counts[k] / Double(max(validationCount, 1))
                lossCache[key] = counts[2 * missing.count + k] / Double(max(validationCount, 1))
                fingerprint[k] = counts[missing.count + k]
                logitFingerprint[key] = fingerprint[k]
            }
            schemesEvaluated += missing.count
        }
        return schemes.map { cache[$0]! }
    }

    /// The `score` of `schemes` (evaluating those not scored yet).
    public func scores(_ schemes: [Scheme], by score: SchemeScore) throws -> [Double] {
        switch score {
        case .accuracy: return try accuracies(schemes)
        case .likelihood: return try losses(schemes).map { 100 * Foundation.exp(-$0) }
        }
    }

    /// Mean validation cross-entropy of `schemes` (evaluating those not scored yet, as
    /// `accuracies` does).
    public func losses(_ schemes: [Scheme]) throws -> [Double] {
        _ = try accuracies(schemes)
        return schemes.map { lossCache[$0]! }
    }

    /// Throws when the ranks are about to sum counts of different schemes (their searchers or
    /// lists diverged): the sums would silently mix them.
    private func checkSameSchemesOnEveryRank(_ keys: [String]) throws {
        guard group.size > 1 else { return }
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a over the keys, 40 bits: exact in a Double
        for byte in keys.joined(separator: ",").utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
        let mine = [Double(keys.count), Double(hash >> 24)]
        let total = try group.sum(mine)
        guard total[0] == mine[0] * Double(group.size), total[1] == mine[1] * Double(group.size) else {
            throw LTHError("rank \(group.rank): the ranks are evaluating different schemes (\(keys.count) here); every rank must run the same command with the same seed and plugins")
        }
    }

    private lazy var lastOutputs: [Tensor] = Array(repeating: Tensor([0]), count: supernet.net.blocks.count)
    private lazy var calibrationOutputs: [Tensor] = Array(repeating: Tensor([0]), count: supernet.net.blocks.count)

    /// The recalibrated batch-norm statistics of every scheme (per block, per batch norm of the
    /// block) and of the stem: train-mode passes over the calibration images in the same sorted,
    /// prefix-sharing order as scoring; a scheme's blocks before its first differing block take
    /// the previous scheme's statistics (computed from the same activations). Running statistics
    /// are changed by the passes; the caller restores them.
    public func recalibratedStatistics(_ schemes: [Scheme], sharePrefixes: Bool = true) throws
        -> (stem: NormStatistics, blocks: [[[NormStatistics]]]) {
        let net = supernet.net
        let norms = net.blockNorms
        func zeros(_ bn: BatchNorm2d) -> NormStatistics { NormStatistics(channels: bn.channels) }
        var stem = zeros(net.bn1)
        var sums = schemes.map { _ in norms.map { $0.map(zeros) } }
        var starts = [Int](repeating: 0, count: schemes.count)
        defer { supernet.apply(.all(true, stageSizes: net.spec.blocksPerStage)) }
        for images in calibration {
            let h0 = stemForward(images, training: true)
            net.bn1.accumulateLastBatchStatistics(into: &stem)
            var previous: [Bool]? = nil
            for (k, scheme) in schemes.enumerated() {
                let start = sharePrefixes ? firstBlockToRun(scheme, after: previous) : 0
                starts[k] = start
                supernet.apply(scheme)
                net.passes.beginForward()
                var h = start == 0 ? h0 : calibrationOutputs[start - 1]
                for i in start..<net.blocks.count {
                    h = net.blocks[i].forward(h, training: true)
                    calibrationOutputs[i] = h
                    for (j, bn) in norms[i].enumerated() { bn.accumulateLastBatchStatistics(into: &sums[k][i][j]) }
                    calibrationBlocksRun += 1
                }
                try net.passes.check()
                previous = scheme.bits
            }
        }
        for k in schemes.indices.dropFirst() { for i in 0..<starts[k] { sums[k][i] = sums[k - 1][i] } }
        let n = max(calibration.count, 1)
        return (stem.averaged(over: n), sums.map { $0.map { $0.map { $0.averaged(over: n) } } })
    }

    private func stemForward(_ x: Tensor, training: Bool) -> Tensor {
        let net = supernet.net
        var h = net.bn1.forward(net.conv1.forward(x), training: training)
        if let mp = net.maxpool { h = mp.forward(h) }
        return h
    }

    /// The first block `scheme` must run when `previous` ran just before on the same batch:
    /// the first block where they differ (its stage's first block for stateful SAMs), 0 first.
    private func firstBlockToRun(_ scheme: Scheme, after previous: [Bool]?) -> Int {
        guard let previous else { return 0 }
        let start = zip(previous, scheme.bits).prefix { $0 == $1 }.count
        return restartAtStage && start < scheme.bits.count ? stageStart[start] : start
    }

    /// Per scheme and block, whether the block's next call (in this sorted order, prefix
    /// sharing) is the same input with its attention attached: bit i is clear here and some
    /// scheme has the same bits before i with bit i set (it follows this one's group). Never
    /// for stateful attentions (they restart at the stage).
    private func toggledNext(_ sorted: [Scheme]) -> [[Bool]] {
        func key(_ bits: [Bool], through i: Int) -> String { String(bits[...i].map { $0 ? "1" : "0" }) }
        let prefixes = Set(sorted.flatMap { scheme in scheme.bits.indices.map { key(scheme.bits, through: $0) } })
        return sorted.map { scheme in
            scheme.bits.indices.map { i in
                guard !restartAtStage, !scheme.bits[i] else { return false }
                var bits = scheme.bits
                bits[i] = true
                return prefixes.contains(key(bits, through: i))
            }
        }
    }

    /// The first block of each block's stage.
    private lazy var stageStart: [Int] = {
        var starts: [Int] = [], i = 0
        for n in supernet.net.spec.blocksPerStage { for _ in 0..<n { starts.append(i) }; i += n }
        return starts
    }()
}
