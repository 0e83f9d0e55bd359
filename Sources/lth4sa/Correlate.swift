import ArgumentParser
import Experiments
import Foundation
import PluginHost

/// `lth4sa correlate`: how well supernet scores (with and without BN recalibration) rank
/// schemes against stand-alone training (`Correlation` of the Experiments library).
struct CorrelateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "correlate", abstract: "Rank correlation of supernet scores with stand-alone accuracy (Kendall tau, Spearman rho, top-k).")

    @OptionGroup var study: StudyOptions
    @Option(parsing: .unconditional, help: "Schemes drawn stratified by connection ratio (Full-SA and the original come on top).") var schemes: Int = 12
    @Option(parsing: .unconditional, help: "Training mini-batches of the recalibrated scoring.") var bnRecalibrate: Int = 10
    @Option(parsing: .unconditional, help: "k of the top-k overlap.") var topK: Int = 3
    @Option(parsing: .unconditional, help: "Bootstrap resamples of the intervals.") var resamples: Int = 2000
    @OptionGroup var runtime: RuntimeOptions
    @Option(name: .shortAndLong, help: "Run directory (default runs/correlate-<model>-<sam>-s<seed>; a `run` directory reuses its supernet).", transform: runDirectoryPath)
    var output: String?

    func validate() throws {
        if schemes < 2 { throw ValidationError("--schemes must be at least 2, got \(schemes)") }
        if bnRecalibrate < 1 { throw ValidationError("--bn-recalibrate must be at least 1, got \(bnRecalibrate)") }
        if topK < 1 { throw ValidationError("--top-k must be at least 1, got \(topK)") }
        if resamples < 100 { throw ValidationError("--resamples must be at least 100, got \(resamples)") }
    }

    func run() throws {
        runtime.apply()
        var settings = Correlation.Settings(recipe: study.recipe(seed: runtime.seed), samplings: study.supernetSampling?.values)
        (settings.schemes, settings.bnRecalibrate, settings.topK, settings.resamples) = (schemes, bnRecalibrate, topK, resamples)
        let dir = try study.directory(output, kind: "correlate", seed: runtime.seed)
        let result = try Correlation.run(settings, directory: dir, resume: study.resume, context: Console.shared.context)
        print("\n" + FlagNames.rewrite(Correlation.table(result)) + "\nreport: \(URL(fileURLWithPath: dir).appendingPathComponent("correlate.md").path)")
    }
}
