import ArgumentParser
import Experiments
import Foundation
import PluginHost

/// `lth4sa correlate`: how well supernet scores (with and without BN recalibration) rank
/// schemes against stand-alone training (`Correlation` of the Experiments library).
struct CorrelateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "correlate", abstract: "Rank correlation of supernet scores with stand-alone accuracy (Kendall tau, Spearman rho, top-k).")

    @Option(help: "SAM plugin (path or id).") var sam: String = "se"
    @Option(name: .customLong("sam-opt"), help: "SAM option key=value (repeatable).") var samOptions: [String] = []
    @Option(help: "full-sa or full-share supernet.") var attach: AttachMode = .fullSA
    @Option(help: "Model.") var model: String = "resnet20"
    @Option(help: "Data.") var data: String = "synthetic:4000"
    @Option(help: "Supernet epochs.") var supernetEpochs: Int = 4
    @Option(help: "Epochs of every stand-alone training.") var epochs: Int = 4
    @Option(help: "Schemes drawn stratified by connection ratio (Full-SA and the original come on top).") var schemes: Int = 12
    @Option(help: "Training mini-batches of the recalibrated scoring.") var bnRecalibrate: Int = 10
    @Option(help: "k of the top-k overlap.") var topK: Int = 3
    @Option(help: "Bootstrap resamples of the intervals.") var resamples: Int = 2000
    @Option(help: "Retaining probability of the supernet's SAMs per mini-batch.") var keepProb: Double = 0.5
    @Option(help: "Validation images per class.") var valPerClass: Int = 50
    @Option(help: "Batch size.") var batch: Int = 128
    @OptionGroup var runtime: RuntimeOptions
    @Option(name: .shortAndLong, help: "Run directory (default runs/correlate-<model>-<sam>-s<seed>; a `run` directory reuses its supernet).")
    var output: String?

    func validate() throws {
        if schemes < 2 { throw ValidationError("--schemes must be at least 2, got \(schemes)") }
        if bnRecalibrate < 1 { throw ValidationError("--bn-recalibrate must be at least 1, got \(bnRecalibrate)") }
        if topK < 1 { throw ValidationError("--top-k must be at least 1, got \(topK)") }
        if resamples < 100 { throw ValidationError("--resamples must be at least 100, got \(resamples)") }
        guard keepProb > 0 && keepProb <= 1 else { throw ValidationError("--keep-prob must be in (0, 1], got \(keepProb)") }
    }

    func run() throws {
        runtime.apply()
        var base = SAMAttachment.baseConfig(sam: sam, samOptions: samOptions, attach: attach, seed: runtime.seed, batch: batch)
        base.model = model
        base.data = data
        base.valPerClass = valPerClass
        var settings = Correlation.Settings(base: base)
        settings.supernetEpochs = supernetEpochs
        settings.epochs = epochs
        settings.keepProb = keepProb
        settings.schemes = schemes
        settings.bnRecalibrate = bnRecalibrate
        settings.topK = topK
        settings.resamples = resamples
        let samId = try SAMPlugin(sam, settings: samOptions).id
        let dir = output ?? "runs/correlate-\(model)-\(samId)-s\(runtime.seed)"
        let result = try Correlation.run(settings, directory: dir, context: Console.shared.context)
        print("\n" + Correlation.table(result) + "\nreport: \(URL(fileURLWithPath: dir).appendingPathComponent("correlate.md").path)")
    }
}
