import Checkpoint
import Cluster
import Data
import Foundation
import Models
import NN
import PluginHost
import Search
import Tensor
import Training

/// The search phase: the supernet's prefix-sharing evaluator, the reward, a searcher plugin
/// and the host loop, logging into a directory (`search.jsonl`, `search-state.json`).
public enum SchemeSearch {
    /// What to search with.
    public struct Settings: Codable, Equatable, Sendable {
        /// Searcher plugin: a path or an installed id.
        public var searcher: String
        /// The searcher's `key=value` options.
        public var options: [String]
        /// Search steps (the budget when `evaluations` is nil).
        public var steps: Int
        /// Stop once this many schemes are scored (compare's equal budget); nil = steps only.
        public var evaluations: Int?
        public var reward: RewardWeights
        /// Training mini-batches that re-estimate each scheme's BN statistics before it is
        /// scored (0 = the supernet's own statistics, the paper's setting).
        public var bnRecalibrate: Int
        /// The searcher's and the reward's random seed (nil = the supernet's seed).
        public var seed: UInt64?
        /// What the reward's accuracy term measures (nil = accuracy, the paper's).
        public var score: SchemeScore?

        public init(searcher: String, options: [String] = [], steps: Int = 100, evaluations: Int? = nil, reward: RewardWeights = RewardWeights(),
                    bnRecalibrate: Int = 0, seed: UInt64? = nil, score: SchemeScore? = nil) {
            self.seed = seed
            self.score = score
            self.searcher = searcher
            self.options = options
            self.steps = steps
            self.evaluations = evaluations
            self.reward = reward
            self.bnRecalibrate = bnRecalibrate
        }

        /// Throws naming the first setting out of range.
        public func validate() throws {
            try SettingCheck.require("steps", steps, atLeast: 1)
            try SettingCheck.require("bnRecalibrate", bnRecalibrate, atLeast: 0)
            try reward.validate()
        }
    }

    /// Searches through `supernet` in `directory`. With `resume`, a saved
    /// search state there continues; without, the log starts over. Throws `StoppedError`
    /// (state saved) on a stop request.
    public static func run(supernet trained: TrainedSupernet, directory: String, settings: Settings, resume: Bool, context: ExperimentContext,
                           howToContinue: String = "continue with `resume`") throws -> SearchLoop {
        let net = trained.net, config = trained.config
        let evaluator = try makeEvaluator(trained, bnRecalibrate: settings.bnRecalibrate)
        let supernet = evaluator.supernet
        let stages = net.spec.blocksPerStage
        let seed = settings.seed ?? config.seed
        let host = PluginHostContext(seed: seed)
        let sites = supernet.attentions.map { $0 as? SAMSite }
        let searcher = try SearcherPlugin(
            settings.searcher, settings: settings.options, stageSizes: stages, host: host,
            parameters: { bits in supernet.parameterCount(Scheme(bits: bits, stageSizes: stages)) },
            blockParameters: { block in sites[block].map { $0.instance.parameters.flatMap { $0.1.value.array } } ?? [] },
            gates: { try gateTrainer(copying: trained) })
        let dir = URL(fileURLWithPath: directory)
        var costs: BlockCosts.Table? = nil
        if settings.reward.latency != 0 {  // measured once per search directory; a resumed search keeps them
            let file = dir.child(BlockCosts.Table.fileName)
            costs = try context.group.leaderOnly {  // read or timed by rank 0 alone; the other ranks wait and receive them
                if resume, let saved = AtomicFile.readJSON(BlockCosts.Table.self, from: file), saved.milliseconds.count == stages.reduce(0, +) {
                    return saved
                }
                context.progress(.status("measuring the SAM cost of every block (batch \(config.batch), 20 interleaved rounds)"))
                let measured = try BlockCosts.measure(supernet, batch: config.batch, seed: config.seed)
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                try AtomicFile.writeJSON(measured, to: file)
                return measured
            }
            context.progress(.line("SAM cost per block (ms at batch \(config.batch)): " + costs!.milliseconds.map { String(format: "%.2f", $0) }.joined(separator: " ")))
        }
        let loop = SearchLoop(searcher: searcher, stageSizes: stages,
                              reward: try RewardModel(blocks: stages.reduce(0, +), weights: settings.reward, seed: seed,
                                                      blockCosts: costs?.milliseconds),
                              accuracies: { try evaluator.scores($0, by: settings.score ?? .accuracy) }, directory: directory, rngState: host.rngState)
        loop.evaluationBudget = settings.evaluations
        loop.writes = context.writes
        if resume && dir.child("search-state.json").exists {
            try loop.resume()  // the log is cut back to the state's records
        } else if context.writes {  // a fresh search, or one killed before its first state save: no stale log lines
            try? FileManager.default.removeItem(at: dir.child("search.jsonl"))
        }
        let start = Date()
        let budget = settings.evaluations.map { "\($0) evaluations" } ?? "\(settings.steps) steps"
        let finished = try loop.run(steps: settings.steps, shouldStop: { (try? context.stopRequested()) ?? true }) { r in
            context.progress(.status(String(format: "search %@ step %d (%@)  %@  reward %.2f  acc %.2f%%  p_bar %@  (%d schemes evaluated)",
                                            searcher.id, r.step + 1, budget, r.scheme, r.reward, r.accuracy,
                                            r.pBar.map { String(format: "%.3f", $0) } ?? "-", evaluator.schemesEvaluated)))
        }
        guard finished else { throw StoppedError("search stopped at step \(loop.step); \(howToContinue)") }
        context.progress(.line(String(format: "search %@: %d steps, %d schemes scored in %@ (%d distinct schemes evaluated through the supernet so far)",
                                      searcher.id, loop.step, loop.records.count, formatDuration(Date().timeIntervalSince(start)), evaluator.schemesEvaluated)))
        return loop
    }

    /// Searches through the trained supernet of run directory `runDirectory` (its `sampling`
    /// one when it holds several), logging there; the directory is locked while it runs.
    public static func run(in runDirectory: String, sampling: SupernetSampling?, settings: Settings, resume: Bool, context: ExperimentContext) throws -> SearchLoop {
        try settings.validate()
        let lock = try context.lock(URL(fileURLWithPath: runDirectory))
        defer { withExtendedLifetime(lock) {} }
        let supernet = try SupernetTraining.trained(in: runDirectory, sampling: sampling, context: context)
        return try run(supernet: supernet, directory: runDirectory, settings: settings, resume: resume, context: context)
    }

    /// Loads and creates the searcher once with placeholder host capabilities, so that a bad
    /// path or option fails before any training. Returns the searcher's id (from its descriptor).
    @discardableResult
    public static func check(_ spec: String, options: [String], stageSizes: [Int]) throws -> String {
        try SearcherPlugin(spec, settings: options, stageSizes: stageSizes, host: PluginHostContext(seed: 0),
                           parameters: { _ in 0 }, blockParameters: { _ in [1] },
                           gates: { throw LTHError("not available while checking options") }).id
    }

    /// The prefix-sharing evaluator on a trained supernet and its validation set; with
    /// `bnRecalibrate` > 0, each scheme's BN statistics are re-estimated on that many training
    /// mini-batches first. With `splitImages` (the default), the supernet's ranks share the
    /// validation images and every call is collective; without, this rank holds them all and
    /// evaluates alone (the landscape splits the schemes instead).
    public static func makeEvaluator(_ trained: TrainedSupernet, bnRecalibrate: Int = 0, splitImages: Bool = true) throws -> SchemeEvaluator {
        let supernet = try Supernet(trained.net)
        let stateful = trained.net.blocks.contains { ($0.attention as? SAMSite)?.instance.isStateful == true }
        return SchemeEvaluator(supernet: supernet, batches: trained.validationBatches(shared: splitImages), restartAtStage: stateful,
                               calibration: try trained.setup.calibrationBatches(count: bnRecalibrate),
                               group: splitImages ? trained.group : SingleProcess(), validationCount: trained.split.validation.count)
    }

    /// DARTS' gates on a copy of the trained supernet (the evaluator keeps the original): weights
    /// trained with SGD at a tenth of the recipe's learning rate on the sub-training set (cycling
    /// through augmented epochs), gate gradients on validation batches in turn.
    static func gateTrainer(copying trained: TrainedSupernet) throws -> GateTrainer {
        guard let checkpoint = trained.checkpoint else { throw LTHError("gate training needs the supernet's checkpoint") }
        let config = trained.config, setup = trained.setup
        let copy = try setup.network(attach: trained.attach).net
        _ = try ModelCheckpoint.load(copy, from: checkpoint)
        let optimizer = SGD(copy.namedParameters(), lr: config.lr * 0.1, momentum: config.momentum, weightDecay: config.weightDecay)
        var epoch = 0
        func loader() -> BatchLoader {
            BatchLoader(dataset: setup.source.train, indices: setup.split.train, batchSize: config.batch, shuffle: true,
                        augmentation: Augmentation(cropPadding: config.cropPadding, flip: config.flip), mean: setup.mean, std: setup.std,
                        seed: config.seed &+ 0xDA27, epoch: epoch, dropLast: true)
        }
        var train = loader()
        let validation = trained.validationBatches(batch: config.batch)
        guard !validation.isEmpty else { throw LTHError("gate training needs validation images (`valPerClass` > 0)") }
        var next = 0
        return try GateTrainer(net: copy, optimizer: optimizer, nextTrainBatch: {
            if let b = train.next() { return (b.images, b.labels) }
            epoch += 1
            train = loader()
            let b = train.next()!
            return (b.images, b.labels)
        }, nextValidationBatch: {
            defer { next = (next + 1) % validation.count }
            return validation[next]
        })
    }
}
