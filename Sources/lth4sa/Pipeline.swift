import ArgumentParser
import Data
import Foundation
import Models
import NN
import PluginHost
import Search
import Tensor
import Training

/// The stages of the whole method, shared by `lth4sa run` and the stage commands.
enum Stages {
    /// Trains (or resumes, or reuses when finished) the supernet in `dir`.
    static func supernet(_ config: RunConfig, directory dir: String, progress: Bool) throws -> Trainer {
        let done = FileManager.default.fileExists(atPath: URL(fileURLWithPath: dir).appendingPathComponent("summary.json").path)
        let exists = FileManager.default.fileExists(atPath: URL(fileURLWithPath: dir).appendingPathComponent("checkpoint.safetensors").path)
        let trainer = try Trainer(config: config, runDirectory: dir, resume: exists, attach: SAMOptions.hook)
        trainer.progress.enabled = progress
        let supernet = try samplingSchemes(trainer)
        if !done {
            installStopHandler()
            guard try trainer.train() else { throw ExitCode(130) }
            let summary = ["epochs": trainer.config.epochs]
            try JSONSerialization.data(withJSONObject: summary).write(to: URL(fileURLWithPath: dir).appendingPathComponent("summary.json"))
        }
        supernet.apply(.all(true, stageSizes: trainer.net.spec.blocksPerStage))
        return trainer
    }

    /// The trained supernet of run directory `dir` (in `dir/supernet`), for the stage commands.
    static func trainedSupernet(in dir: String) throws -> Trainer {
        let supernetDir = URL(fileURLWithPath: dir).appendingPathComponent("supernet").path
        guard let meta = try? ModelCheckpoint.metadata(URL(fileURLWithPath: supernetDir).appendingPathComponent("checkpoint.safetensors").path),
              let text = meta["config"] else {
            throw LTHError("no trained supernet in '\(supernetDir)'; run `lth4sa run` or `lth4sa supernet train -o \(supernetDir)` first")
        }
        return try Stages.supernet(try RunConfig.decode(text), directory: supernetDir, progress: true)
    }

    /// Makes `trainer` train a supernet: a fresh scheme d ~ Bernoulli(keep-prob)^L before every
    /// step, depending only on (seed, epoch, step) so resumes are exact; Full-SA for evaluation.
    static func samplingSchemes(_ trainer: Trainer) throws -> Supernet {
        let supernet = try Supernet(trainer.net)
        let p = trainer.config.keepProb ?? 0.5, seed = trainer.config.seed
        trainer.beforeTrainingStep = { epoch, step in
            var rng = RNG(seed: seed ^ (UInt64(epoch + 1) &* 0x9E37_79B9_7F4A_7C15) ^ (UInt64(step + 1) &* 0xC2B2_AE3D_27D4_EB4F))
            supernet.apply(supernet.sample(keepProbability: p, rng: &rng))
        }
        trainer.beforeEvaluation = { supernet.apply(.all(true, stageSizes: trainer.net.spec.blocksPerStage)) }
        return supernet
    }

    /// The configuration every network of a run starts from: SAM (paths made absolute, so
    /// checkpoints resolve it from anywhere), attach mode, seed and batch.
    static func baseConfig(sam: String, samOptions: [String], attach: String, seed: UInt64, batch: Int) -> RunConfig {
        var c = RunConfig()
        c.sam = sam.contains("/") ? URL(fileURLWithPath: sam).standardizedFileURL.path : sam
        c.samOptions = samOptions
        c.attach = attach
        c.seed = seed
        c.batch = batch
        return c
    }

    /// Loads and creates the searcher once with placeholder host capabilities, so that a bad
    /// path or option fails before any training.
    static func checkSearcher(_ spec: String, settings: [String], stageSizes: [Int]) throws {
        _ = try SearcherPlugin(spec, settings: settings, stageSizes: stageSizes, parameters: { _ in 0 }, blockParameters: { _ in [1] },
                               gates: { throw LTHError("not available while checking options") })
    }

    /// Trains `config` (its scheme) from scratch in `directory` and measures test accuracy, or
    /// returns the recorded result when that directory finished the same scheme before (a
    /// stopped training resumes from its checkpoint). Returns (accuracy, seconds, trained now).
    static func trainFromScratch(_ config: RunConfig, directory sub: URL) throws -> (accuracy: Double, seconds: Double, fresh: Bool) {
        let summaryURL = sub.appendingPathComponent("summary.json")
        if let data = try? Data(contentsOf: summaryURL), let s = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           let acc = s["test_acc"] as? Double, s["scheme"] as? String == config.scheme {
            return (acc, s["seconds"] as? Double ?? 0, false)
        }
        let exists = FileManager.default.fileExists(atPath: sub.appendingPathComponent("checkpoint.safetensors").path)
        let start = Date()
        let trainer = try Trainer(config: config, runDirectory: sub.path, resume: exists, attach: SAMOptions.hook)
        installStopHandler()
        guard try trainer.train() else { throw ExitCode(130) }
        let test = trainer.evaluate(trainer.source.test, indices: Array(0..<trainer.source.test.count))
        let seconds = Date().timeIntervalSince(start)
        try JSONSerialization.data(withJSONObject: ["test_acc": test.accuracy, "seconds": seconds, "scheme": config.scheme ?? ""]).write(to: summaryURL)
        return (test.accuracy, seconds, true)
    }

    /// The progress line of one network trained (or found trained) by `trainFromScratch`.
    static func trainedLine(_ label: String, accuracy: Double, seconds: Double, fresh: Bool) -> String {
        "   \(label): \(fresh ? "" : "done before, ")test accuracy \(String(format: "%.2f", accuracy))%\(fresh ? " in \(formatDuration(seconds))" : "")"
    }

    /// Validation batches of the trainer's split, normalised as in training.
    static func validationBatches(_ t: Trainer, batch: Int = 250) -> [(images: Tensor, labels: [Int32])] {
        let loader = BatchLoader(dataset: t.source.train, indices: t.split.validation, batchSize: batch, shuffle: false,
                                 augmentation: .none, mean: t.mean, std: t.std, seed: 0, epoch: 0)
        var out: [(Tensor, [Int32])] = []
        while let b = loader.next() { out.append((b.images.clone(), b.labels)) }
        return out
    }

    /// Median forward time (ms) at `batch` of each scheme's network, interleaved in shuffled
    /// order every round, and the increment over the all-zeros scheme (first entry).
    static func inferenceTimes(_ config: RunConfig, classes: Int, schemes: [Scheme], batch: Int = 50, rounds: Int = 30) throws -> [Double] {
        var nets: [ResNet] = []
        for s in schemes {
            let net = ResNet(try ModelSpec(config.model), classes: classes, seed: 0)
            var c = config
            c.scheme = s.description
            c.keepProb = nil
            _ = try SAMOptions.hook(c, net)
            nets.append(net)
        }
        return interleavedForwardMedians(nets, batch: batch, warmup: 3, rounds: rounds, seed: 1)
    }
}

/// `lth4sa search`: the search stage on a run directory holding a trained supernet.
struct SearchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "search", abstract: "Search connection schemes through a trained supernet (run directory of `lth4sa run`).")
    @Option(name: .shortAndLong, help: "Run directory (its supernet/ must hold a trained supernet).") var output: String
    @Option(help: "Searcher plugin (path or id).") var searcher: String = "ean"
    @Option(name: .customLong("searcher-opt"), help: "Searcher option key=value (repeatable).") var searcherOptions: [String] = []
    @Option(help: "Search steps (the evaluation budget).") var steps: Int = 100
    @OptionGroup var reward: RewardOptions
    @Flag(help: "Continue a stopped search from its checkpoint.") var resume = false
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if steps < 1 { throw ValidationError("--steps must be at least 1, got \(steps)") }
    }

    func run() throws {
        runtime.apply()
        let trainer = try Stages.trainedSupernet(in: output)
        let result = try SearchStage.run(trainer: trainer, directory: output, searcher: searcher, searcherOptions: searcherOptions,
                                         steps: steps, weights: try reward.weights(), resume: resume)
        for (i, b) in result.best.prefix(5).enumerated() {
            print(String(format: "%d. %@  reward %.3f  accuracy %.2f%%  sparsity %.3f", i + 1, b.scheme.description, b.parts.reward, b.parts.accuracy, b.parts.sparsity))
        }
    }
}

/// `--reward-acc`, `--reward-sparse`, `--reward-rnd`, `--reward-shift`.
struct RewardOptions: ParsableArguments {
    @Option(help: "Weight of the accuracy term (percent).") var rewardAcc: String = "1"
    @Option(help: "Weight of the sparsity term (share of blocks without a SAM).") var rewardSparse: String = "2"
    @Option(help: "Weight of the RND curiosity term.") var rewardRnd: String = "1"
    @Option(help: "Constant subtracted from every reward.") var rewardShift: String = "54"
    @Option(help: "Adam learning rate of the RND predictor.") var rewardRndLr: String = "0.05"

    func weights() throws -> RewardWeights {
        func number(_ text: String, _ flag: String) throws -> Double {
            guard let v = Double(text), v.isFinite else { throw LTHError("\(flag) '\(text)' is not a number") }
            return v
        }
        var w = RewardWeights()
        w.accuracy = try number(rewardAcc, "--reward-acc")
        w.sparsity = try number(rewardSparse, "--reward-sparse")
        w.curiosity = try number(rewardRnd, "--reward-rnd")
        w.shift = try number(rewardShift, "--reward-shift")
        w.rndLearningRate = try number(rewardRndLr, "--reward-rnd-lr")
        guard w.rndLearningRate > 0 else { throw LTHError("--reward-rnd-lr must be positive, got \(rewardRndLr)") }
        return w
    }

    func validate() throws {
        do { _ = try weights() } catch let e as LTHError { throw ValidationError(e.message) }
    }
}

/// The search stage: supernet evaluator + reward + searcher plugin + host loop.
enum SearchStage {
    /// Searches in `directory` (search.jsonl, search-state.json) for `steps` steps or, when
    /// `evaluations` is given, until that many schemes are scored.
    static func run(trainer: Trainer, directory: String, searcher spec: String, searcherOptions: [String], steps: Int,
                    weights: RewardWeights, resume: Bool, evaluations: Int? = nil, howToContinue: String = "continue with --resume") throws -> SearchLoop {
        let net = trainer.net, config = trainer.config
        let evaluator = try makeEvaluator(trainer)
        let supernet = evaluator.supernet
        let stages = net.spec.blocksPerStage
        HostServices.seed(config.seed)
        let sites = supernet.attentions.map { $0 as? SAMSite }
        let searcher = try SearcherPlugin(
            spec, settings: searcherOptions, stageSizes: stages,
            parameters: { bits in supernet.parameterCount(Scheme(bits: bits, stageSizes: stages)) },
            blockParameters: { block in sites[block].map { $0.instance.parameters.flatMap { $0.1.value.array } } ?? [] },
            gates: { try gateTrainer(copying: trainer) })
        let loop = SearchLoop(searcher: searcher, stageSizes: stages, reward: RewardModel(blocks: stages.reduce(0, +), weights: weights, seed: config.seed),
                              accuracies: { evaluator.accuracies($0) }, directory: directory, rngState: HostServices.rngState)
        loop.evaluationBudget = evaluations
        if resume && FileManager.default.fileExists(atPath: URL(fileURLWithPath: directory).appendingPathComponent("search-state.json").path) {
            try loop.resume()
        } else if !resume {
            try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: directory).appendingPathComponent("search.jsonl").path)
        }
        let line = ProgressLine()
        installStopHandler()
        let start = Date()
        let budget = evaluations.map { "\($0) evaluations" } ?? "\(steps) steps"
        let finished = try loop.run(steps: steps, shouldStop: { Trainer.stopRequested }) { r in
            line.update(String(format: "search %@ step %d (%@)  %@  reward %.2f  acc %.2f%%  p_bar %@  (%d schemes evaluated)", searcher.id, r.step + 1, budget,
                               r.scheme, r.reward, r.accuracy, r.pBar.map { String(format: "%.3f", $0) } ?? "-", evaluator.schemesEvaluated))
        }
        line.finish()
        guard finished else {
            print("search stopped at step \(loop.step); \(howToContinue)")
            throw ExitCode(130)
        }
        print(String(format: "search %@: %d steps, %d schemes scored in %@ (%d distinct schemes evaluated through the supernet so far)", searcher.id, loop.step,
                     loop.records.count, formatDuration(Date().timeIntervalSince(start)), evaluator.schemesEvaluated))
        return loop
    }

    /// The prefix-sharing evaluator on the trainer's supernet and validation set.
    static func makeEvaluator(_ trainer: Trainer) throws -> SchemeEvaluator {
        let supernet = try Supernet(trainer.net)
        let stateful = trainer.net.blocks.contains { ($0.attention as? SAMSite)?.instance.isStateful == true }
        return SchemeEvaluator(supernet: supernet, batches: Stages.validationBatches(trainer), restartAtStage: stateful)
    }

    /// DARTS' gates on a copy of the trained supernet (the evaluator keeps the original): weights
    /// trained with SGD at a tenth of the recipe's learning rate on the sub-training set (cycling
    /// through augmented epochs), gate gradients on validation batches in turn.
    static func gateTrainer(copying trainer: Trainer) throws -> GateTrainer {
        guard let checkpoint = trainer.checkpointPath else { throw LTHError("gate training needs the supernet's checkpoint") }
        let config = trainer.config
        let copy = try Trainer(config: config, runDirectory: nil, source: trainer.source, attach: SAMOptions.hook)
        _ = try ModelCheckpoint.load(copy.net, from: checkpoint)
        let optimizer = SGD(copy.net.namedParameters(), lr: config.lr * 0.1, momentum: config.momentum, weightDecay: config.weightDecay)
        var epoch = 0
        func loader() -> BatchLoader {
            BatchLoader(dataset: trainer.source.train, indices: trainer.split.train, batchSize: config.batch, shuffle: true,
                        augmentation: Augmentation(cropPadding: config.cropPadding, flip: config.flip), mean: trainer.mean, std: trainer.std,
                        seed: config.seed &+ 0xDA27, epoch: epoch, dropLast: true)
        }
        var train = loader()
        let validation = Stages.validationBatches(trainer, batch: config.batch)
        guard !validation.isEmpty else { throw LTHError("gate training needs validation images (--val-per-class > 0)") }
        var next = 0
        return try GateTrainer(net: copy.net, optimizer: optimizer, nextTrainBatch: {
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
