import ArgumentParser
import Experiments
import Models
import Search
import Terminal

/// `lth4sa search`: the search phase on a run directory holding a trained supernet.
struct SearchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "search", abstract: "Search connection schemes through a trained supernet (run directory of `lth4sa run`).")
    @Option(name: .shortAndLong, help: "Run directory holding a trained supernet (supernet/, or supernet-<sampling>/).", transform: runDirectoryPath) var output: String
    @Option(help: ArgumentHelp("The run directory's supernet trained with this --supernet-sampling (needed only when it holds several).", valueName: "strategy")) var supernetSampling: SupernetSampling?
    @Option(help: "Searcher plugin (path or id).") var searcher: String = "ean"
    @Option(name: .customLong("searcher-opt"), help: "Searcher option key=value (repeatable).") var searcherOptions: [String] = []
    @Option(parsing: .unconditional, help: "Search steps (the evaluation budget).") var steps: Int = 100
    @OptionGroup var reward: RewardOptions
    @OptionGroup var scoring: ScoringOptions
    @Flag(help: "Continue a stopped search from its checkpoint.") var resume = false
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        try runtime.apply()
        let settings = SchemeSearch.Settings(searcher: searcher, options: searcherOptions, steps: steps, reward: reward.weights(),
                                             bnRecalibrate: scoring.resolved.bnRecalibrate, score: scoring.resolved.score)
        let loop = try SchemeSearch.run(in: output, sampling: supernetSampling, settings: settings, resume: resume, context: Console.shared.withStopHandler)
        for (i, b) in loop.best.prefix(5).enumerated() {
            print(String(format: "%d. %@  reward %.3f  accuracy %.2f%%  sparsity %.3f", i + 1, b.scheme.description, b.parts.reward, b.parts.accuracy, b.parts.sparsity))
        }
    }
}

/// How sub-networks are scored through the supernet.
struct ScoringOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Re-estimate each scheme's BN statistics on N training mini-batches (at most those the training split holds) before scoring it (0 = the supernet's own statistics, the paper's setting; default \(Recipe.builtInScoring.bnRecalibrate), with --preset 0).")
    var bnRecalibrate: Int?
    @Option(help: ArgumentHelp("What the reward's accuracy term measures: accuracy (the paper's) or likelihood (100 exp(-validation cross-entropy)); default \(Recipe.builtInScoring.score), with --preset accuracy.", valueName: "score"))
    var score: SchemeScore?

    func validate() throws {
        if let b = bnRecalibrate, b < 0 { throw ValidationError("--bn-recalibrate must be >= 0, got \(b)") }
    }

    /// The scoring asked for, the built-in default's where nothing was given.
    var resolved: (bnRecalibrate: Int, score: SchemeScore) {
        (bnRecalibrate ?? Recipe.builtInScoring.bnRecalibrate, score ?? Recipe.builtInScoring.score)
    }
}

/// `--reward-acc`, `--reward-sparse`, `--reward-rnd`, `--reward-shift`, `--reward-rnd-lr`, `--reward-latency`.
struct RewardOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Weight of the accuracy term (percent).") var rewardAcc: Double = 1
    @Option(parsing: .unconditional, help: "Weight of the sparsity term (share of blocks without a SAM).") var rewardSparse: Double = 2
    @Option(parsing: .unconditional, help: "Weight of the RND curiosity term.") var rewardRnd: Double = 1
    @Option(parsing: .unconditional, help: "Constant subtracted from every reward.") var rewardShift: Double = 54
    @Option(parsing: .unconditional, help: "Adam learning rate of the RND predictor.") var rewardRndLr: Double = 0.05
    @Option(parsing: .unconditional, help: "Weight w of the latency term w * (1 - cost(d) / cost(Full-SA)), cost from a measured per-block SAM time (0 = off, the paper's reward).") var rewardLatency: Double = 0

    func weights() -> RewardWeights {
        var w = RewardWeights()
        (w.accuracy, w.sparsity, w.curiosity, w.shift, w.rndLearningRate, w.latency) = (rewardAcc, rewardSparse, rewardRnd, rewardShift, rewardRndLr, rewardLatency)
        return w
    }

    func validate() throws {
        try weights().validate()
    }
}

/// `lth4sa landscape`: the accuracy of every connection scheme through a trained supernet (or a
/// sample per connection ratio for large L), with ranks, the Top-5% set and connection scores,
/// as JSON and SVG (the paper's Figs. 2 and 3; `LandscapeSurvey` of the Experiments library).
struct LandscapeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "landscape", abstract: "Evaluate every scheme (or a sample per ratio) through a trained supernet: distribution, ranks, connection scores.")
    @Option(name: .shortAndLong, help: "Run directory holding a trained supernet (supernet/, or supernet-<sampling>/).", transform: runDirectoryPath) var output: String
    @Option(help: ArgumentHelp("The run directory's supernet trained with this --supernet-sampling (needed only when it holds several).", valueName: "strategy")) var supernetSampling: SupernetSampling?
    @Option(parsing: .unconditional, help: "Enumerate all 2^L schemes up to this many blocks; sample above it.") var maxEnumerate: Int = 16
    @Option(parsing: .unconditional, help: "Random schemes per number of connected blocks when sampling.") var perRatio: Int = 50
    @Option(help: "Scheme to rank and mark in the plot (repeatable).") var mark: [String] = []
    @Option(parsing: .unconditional, help: "Share of the best (and worst) schemes in the Top set and the connection scores.") var fraction: Double = 0.05
    @Option(parsing: .unconditional, help: "Evaluate only N schemes, evenly spaced through the sorted list (benchmarks).") var limit: Int?
    @Flag(help: "Evaluate every scheme from the stem (no prefix sharing; for benchmarks).") var noShare = false
    @OptionGroup var scoring: ScoringOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if let s = scoring.score, s != .accuracy { throw ValidationError("landscape shows validation accuracies; drop --score \(s)") }
    }

    func run() throws {
        try runtime.apply()
        let context = Console.shared.withStopHandler
        let bnRecalibrate = scoring.bnRecalibrate ?? 0  // a landscape of the supernet's own accuracies unless asked
        var settings = LandscapeSurvey.Settings()
        (settings.maxEnumerate, settings.perRatio, settings.fraction, settings.limit, settings.sharePrefixes) = (maxEnumerate, perRatio, fraction, limit, !noShare)
        let result = try LandscapeSurvey.run(in: output, sampling: supernetSampling, marks: mark, bnRecalibrate: bnRecalibrate, settings: settings, context: context)
        Console.shared.endStatus()
        print(LandscapeSurvey.summary(result))
    }
}
