import Dispatch
import Models
import PluginHost
import Tensor
import Training

/// Inference time of networks measured side by side, and the increment dT every table uses.
public enum InferenceTiming {
    /// Forward time (ms, eval mode) of each network on one random batch, every round: all
    /// networks once per round in a shuffled order (so drift hits them alike), measured in one
    /// process after `warmup` untimed rounds. `onRound` is told the round finished (1-based)
    /// and the total. Result: [network][round]. `folded` (the default): the deployed network,
    /// every batch norm folded into its convolution (`ResNet.inferFolded`); otherwise eval-mode
    /// `forward` with separate batch-norm passes.
    public static func interleavedRounds(_ nets: [ResNet], batch: Int, warmup: Int, rounds: Int, seed: UInt64, folded: Bool = true,
                                         onRound: ((Int, Int) -> Void)? = nil) throws -> [[Double]] {
        guard let first = nets.first else { return [] }
        var rng = RNG(seed: seed)
        let side = first.spec.imageSize
        let x = Tensor([batch, side, side, 3])
        rng.fillNormal(x, std: 1)
        if folded { for net in nets { net.foldBatchNorms() } }
        return try Interleaving.rounds(nets.count, warmup: warmup, rounds: rounds, rng: &rng, onRound: onRound) { i in
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try folded ? nets[i].inferFolded(x) : nets[i].forward(x, training: false)
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        }
    }

    /// The networks `lth4sa bench infer` compares: the original, Full-SA, Full-Share and every
    /// other block connected, all with `plugin` and the same weights seed.
    public static func benchmarkNetworks(_ spec: ModelSpec, plugin: SAMPlugin, classes: Int, seed: UInt64) throws -> [(label: String, net: ResNet)] {
        let sizes = spec.blocksPerStage
        let half = Scheme(bits: (0..<spec.blockCount).map { $0 % 2 == 0 }, stageSizes: sizes)
        var nets: [(String, ResNet)] = []
        for (label, mode, scheme) in [("original", AttachMode.fullSA, Scheme.all(false, stageSizes: sizes)),
                                      ("Full-SA", .fullSA, .all(true, stageSizes: sizes)),
                                      ("Full-Share", .fullShare, .all(true, stageSizes: sizes)),
                                      ("half \(half)", .fullSA, half)] {
            let net = ResNet(spec, classes: classes, seed: seed)
            try SAMAttacher.attach(plugin, to: net, mode: mode, scheme: scheme, seed: seed)
            nets.append((label, net))
        }
        return nets
    }

    /// The median of every network's `interleavedRounds`.
    public static func interleavedMedians(_ nets: [ResNet], batch: Int, warmup: Int, rounds: Int, seed: UInt64, folded: Bool = true,
                                          onRound: ((Int, Int) -> Void)? = nil) throws -> [Double] {
        try interleavedRounds(nets, batch: batch, warmup: warmup, rounds: rounds, seed: seed, folded: folded, onRound: onRound).map(median)
    }

    /// Forward times (ms) at `batch` of the network of `config` with each scheme, interleaved
    /// over `rounds` rounds: [scheme][round]. The first scheme is usually the original network.
    public static func schemeRounds(_ config: RunConfig, classes: Int, schemes: [Scheme], batch: Int = 50, rounds: Int = 30) throws -> [[Double]] {
        var nets: [ResNet] = []
        for s in schemes {
            let net = ResNet(try ModelSpec(config.model), classes: classes, seed: 0)
            var c = config
            c.scheme = s.description
            c.keepProb = nil
            _ = try SAMAttachment.attach(c, to: net)
            nets.append(net)
        }
        return try interleavedRounds(nets, batch: batch, warmup: 3, rounds: rounds, seed: 1)
    }

    /// dT = (T - T_original) / T_original in percent: the relative inference-time increment.
    public static func incrementPercent(_ time: Double, original: Double) -> Double { (time - original) / original * 100 }

    /// dT of `times` over `original` (per-round times of one interleaved measurement) from the
    /// medians, with the 95% percentile bootstrap interval over rounds (resampled in pairs,
    /// since both were timed in the same rounds).
    public static func increment(_ times: [Double], over original: [Double], resamples: Int = 2000, seed: UInt64 = 0) -> Estimate {
        RankCorrelation.bootstrap(times, original, resamples: resamples, seed: seed) { incrementPercent(median($0), original: median($1)) }
    }
}

/// A ticket verdict: beyond the measured noise, or not decidable within it.
public enum Verdict: String, Codable, Equatable, Sendable {
    case yes
    case no
    case withinNoise = "within noise"
}

/// The paper's ticket rule with the noise taken into account, in one place. A searched scheme
/// is a ticket when
/// - its accuracy is not below Full-SA's beyond the noise: the mean test accuracy over seeds
///   differs by more than -2 standard errors, where the standard error of each mean combines
///   the seeds' spread (sd^2 / seeds) and the test set's binomial sampling error
///   (p (1 - p) / test images), and
/// - it has fewer parameters, and
/// - its inference time is lower beyond the timing noise: the 95% bootstrap interval (over the
///   interleaved rounds, paired) of the median-time difference to Full-SA lies below zero.
/// It is not a ticket when its accuracy is below beyond the noise, it has no fewer parameters,
/// or it is slower beyond the interval; otherwise the table says "within noise".
public enum TicketRule {
    /// What the rule compares of one network.
    public struct Figures: Sendable {
        /// Test accuracy (percent) of every seed.
        public let accuracies: [Double]
        /// Images of the test set (for its binomial sampling error).
        public let testImages: Int
        public let parameters: Int
        /// Forward time (ms) of every interleaved round.
        public let times: [Double]
        public init(accuracies: [Double], testImages: Int, parameters: Int, times: [Double]) {
            self.accuracies = accuracies
            self.testImages = testImages
            self.parameters = parameters
            self.times = times
        }

        public var meanAccuracy: Double { accuracies.reduce(0, +) / Double(max(accuracies.count, 1)) }
        /// Sample standard deviation over seeds (0 with one seed).
        public var accuracySpread: Double {
            guard accuracies.count > 1 else { return 0 }
            let m = meanAccuracy
            return (accuracies.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(accuracies.count - 1)).squareRoot()
        }
        /// Standard error (percent points) of the mean accuracy: seeds and test-set sampling.
        public var standardError: Double {
            let p = min(max(meanAccuracy / 100, 0), 1)
            let sampling = testImages > 0 ? p * (1 - p) / Double(testImages) * 1e4 : 0
            return (accuracySpread * accuracySpread / Double(max(accuracies.count, 1)) + sampling).squareRoot()
        }
    }

    /// Mean accuracy difference to Full-SA and its noise (2 standard errors).
    public static func accuracyMargin(_ c: Figures, fullSA f: Figures) -> (difference: Double, noise: Double) {
        (c.meanAccuracy - f.meanAccuracy, 2 * (c.standardError * c.standardError + f.standardError * f.standardError).squareRoot())
    }

    /// The 95% bootstrap interval of median(T_candidate) - median(T_Full-SA) over paired rounds.
    public static func timeDifference(_ c: Figures, fullSA f: Figures, resamples: Int = 2000, seed: UInt64 = 0) -> Estimate {
        RankCorrelation.bootstrap(c.times, f.times, resamples: resamples, seed: seed) { median($0) - median($1) }
    }

    /// The verdict for `candidate` against Full-SA.
    public static func verdict(_ candidate: Figures, fullSA: Figures) -> Verdict {
        let (difference, noise) = accuracyMargin(candidate, fullSA: fullSA)
        let time = timeDifference(candidate, fullSA: fullSA)
        if difference < -noise || candidate.parameters >= fullSA.parameters || time.low > 0 { return .no }
        return time.high < 0 ? .yes : .withinNoise
    }
}
