import Dispatch
import Models
import PluginHost
import Tensor
import Training

extension Parallelism {
    /// Lanes for networks with `plugin` (nil: no SAM): one per thread of the pool with `.lanes`
    /// when the plugin declares LTH4SA_PLUGIN_CONCURRENT_INSTANCES, else one.
    public func lanes(for plugin: SAMPlugin?) -> Int {
        guard self == .lanes, plugin?.descriptor.concurrentInstances ?? true else { return 1 }
        return Threads.current
    }
}

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
        try interleavedRounds(try nets.map { net in try InferenceLanes(net, count: 1) { net } }, batch: batch, warmup: warmup, rounds: rounds, seed: seed,
                              folded: folded, onRound: onRound)
    }

    /// `interleavedRounds` of networks run in lanes (`InferenceLanes`; one lane: the network
    /// alone, its operators on every thread of the pool).
    public static func interleavedRounds(_ nets: [InferenceLanes], batch: Int, warmup: Int, rounds: Int, seed: UInt64, folded: Bool = true,
                                         onRound: ((Int, Int) -> Void)? = nil) throws -> [[Double]] {
        guard let first = nets.first else { return [] }
        var rng = RNG(seed: seed)
        let side = first.replicas[0].spec.imageSize
        let x = Tensor([batch, side, side, 3])
        rng.fillNormal(x, std: 1)
        if folded { for net in nets { net.foldBatchNorms() } }
        return try Interleaving.rounds(nets.count, warmup: warmup, rounds: rounds, rng: &rng, onRound: onRound) { i in
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try nets[i].infer(x, folded: folded)
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        }
    }

    /// The networks `lth4sa bench infer` compares: the original, Full-SA, Full-Share and every
    /// other block connected, all with `plugin` and the same weights seed.
    /// `context`: one for all (they run one after another, and one profile covers them).
    public static func benchmarkNetworks(_ spec: ModelSpec, plugin: SAMPlugin, classes: Int, seed: UInt64,
                                         context: ComputeContext = ComputeContext()) throws -> [(label: String, net: ResNet)] {
        let sizes = spec.blocksPerStage
        let half = Scheme(bits: (0..<spec.blockCount).map { $0 % 2 == 0 }, stageSizes: sizes)
        var nets: [(String, ResNet)] = []
        for (label, mode, scheme) in [("original", AttachMode.fullSA, Scheme.all(false, stageSizes: sizes)),
                                      ("Full-SA", .fullSA, .all(true, stageSizes: sizes)),
                                      ("Full-Share", .fullShare, .all(true, stageSizes: sizes)),
                                      ("half \(half)", .fullSA, half)] {
            let net = ResNet(spec, classes: classes, seed: seed, context: context)
            try SAMAttacher.attach(plugin, to: net, mode: mode, scheme: scheme, seed: seed)
            nets.append((label, net))
        }
        return nets
    }

    /// The `benchmarkNetworks` in `lanes` lanes each: lane k of every network shares one compute
    /// context (they run one after another), lane 0's holds the profile.
    public static func benchmarkLanes(_ spec: ModelSpec, plugin: SAMPlugin, classes: Int, seed: UInt64, lanes: Int) throws
        -> [(label: String, lanes: InferenceLanes)] {
        let first = try benchmarkNetworks(spec, plugin: plugin, classes: classes, seed: seed)
        let more = try (1..<max(lanes, 1)).map { _ in try benchmarkNetworks(spec, plugin: plugin, classes: classes, seed: seed) }
        return try first.enumerated().map { i, entry in
            var replicas = more.map { $0[i].net }.makeIterator()
            return (entry.label, try InferenceLanes(entry.net, count: max(lanes, 1)) { replicas.next()! })
        }
    }

    /// The median of every network's `interleavedRounds`.
    public static func interleavedMedians(_ nets: [InferenceLanes], batch: Int, warmup: Int, rounds: Int, seed: UInt64, folded: Bool = true,
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
            c.scheme = s
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

