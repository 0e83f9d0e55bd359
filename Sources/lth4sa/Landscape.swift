import ArgumentParser
import Checkpoint
import Experiments
import Foundation
import Models
import Search

/// `lth4sa landscape`: the accuracy of every connection scheme through a trained supernet (or a
/// sample per connection ratio for large L), with ranks, the Top-5% set and connection scores,
/// as JSON and SVG (the paper's Figs. 2 and 3; `LandscapeSurvey` of the Experiments library).
struct LandscapeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "landscape", abstract: "Evaluate every scheme (or a sample per ratio) through a trained supernet: distribution, ranks, connection scores.")
    @Option(name: .shortAndLong, help: "Run directory holding a trained supernet (supernet/, or supernet-<sampling>/).", transform: runDirectoryPath) var output: String
    @Option(help: ArgumentHelp("The run directory's supernet trained with this --supernet-sampling (needed only when it holds several).", valueName: "strategy"))
    var supernetSampling: SupernetSampling?
    @Option(parsing: .unconditional, help: "Enumerate all 2^L schemes up to this many blocks; sample above it.") var maxEnumerate: Int = 16
    @Option(parsing: .unconditional, help: "Random schemes per number of connected blocks when sampling.") var perRatio: Int = 50
    @Option(help: "Scheme to rank and mark in the plot (repeatable).") var mark: [String] = []
    @Option(parsing: .unconditional, help: "Share of the best (and worst) schemes in the Top set and the connection scores.") var fraction: Double = 0.05
    @Option(parsing: .unconditional, help: "Evaluate only N schemes, evenly spaced through the sorted list (benchmarks).") var limit: Int?
    @Flag(help: "Evaluate every scheme from the stem (no prefix sharing; for benchmarks).") var noShare = false
    @OptionGroup var scoring: ScoringOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        guard maxEnumerate >= 1 && maxEnumerate <= 24 else { throw ValidationError("--max-enumerate must be in 1...24, got \(maxEnumerate)") }
        guard perRatio >= 1 else { throw ValidationError("--per-ratio must be at least 1, got \(perRatio)") }
        guard fraction > 0 && fraction <= 0.5 else { throw ValidationError("--fraction must be in (0, 0.5], got \(fraction)") }
        if let s = scoring.score, s != .accuracy { throw ValidationError("landscape shows validation accuracies; drop --score \(s)") }
        if let l = limit, l < 1 { throw ValidationError("--limit must be at least 1, got \(l)") }
    }

    func run() throws {
        runtime.apply()
        let context = Console.shared.context
        let bnRecalibrate = scoring.bnRecalibrate ?? 0  // a landscape of the supernet's own accuracies unless asked
        let trainer = try SupernetTraining.trained(in: output, sampling: supernetSampling, context: context)
        let stages = trainer.net.spec.blocksPerStage
        var settings = LandscapeSurvey.Settings()
        settings.maxEnumerate = maxEnumerate
        settings.perRatio = perRatio
        settings.fraction = fraction
        settings.marks = try mark.map { let s = try Scheme(parsing: $0, stageSizes: stages); return (s.description, s) }
        settings.limit = limit
        settings.sharePrefixes = !noShare
        let name = (noShare ? "landscape-noshare" : "landscape") + (bnRecalibrate > 0 ? "-bn\(bnRecalibrate)" : "")
        let directory = URL(fileURLWithPath: output).appendingPathComponent(name).path
        let lock = try context.lock(URL(fileURLWithPath: directory))
        defer { withExtendedLifetime(lock) {} }
        let evaluator = try SchemeSearch.makeEvaluator(trainer, bnRecalibrate: bnRecalibrate, splitImages: false)  // the ranks split the schemes
        let result = try LandscapeSurvey.run(trainer: trainer, evaluator: evaluator, directory: directory,
                                             settings: settings, context: context)
        Console.shared.endStatus()
        print(LandscapeSurvey.summary(result))
    }
}
