import ArgumentParser
import Experiments
import Foundation
import Models
import PluginHost
import Search
import Tensor
import Training

/// `lth4sa [run] --sam S --searcher X`: the whole method (`Pipeline` of the Experiments library).
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The whole pipeline: supernet, search, retraining of the found tickets, report (the default command).")

    @Option(help: "SAM plugin (path or id).") var sam: String = "se"
    @Option(name: .customLong("sam-opt"), help: "SAM option key=value (repeatable).") var samOptions: [String] = []
    @Option(help: "full-sa or full-share supernet (full-share searches Share-EAN schemes).") var attach: AttachMode = .fullSA
    @Option(help: "Searcher plugin (path or id).") var searcher: String = "ean"
    @Option(name: .customLong("searcher-opt"), help: "Searcher option key=value (repeatable).") var searcherOptions: [String] = []
    @Option(help: "Paper recipes: cifar100-resnet164 or cifar100-resnet38 (give --data cifar100:PATH).") var preset: PipelinePreset?
    @Option(help: "Model (default resnet-basic-14; presets set theirs).") var model: String?
    @Option(help: "Data (default synthetic-context:4000, the built-in benchmark; presets need cifar100:PATH).") var data: String?
    @Option(parsing: .unconditional, help: "Supernet epochs.") var supernetEpochs: Int?
    @Option(parsing: .unconditional, help: "Epochs of every network trained from scratch.") var epochs: Int?
    @Option(parsing: .unconditional, help: "Search steps.") var searchSteps: Int?
    @Option(parsing: .unconditional, help: "Retaining probability of the supernet's SAMs per mini-batch.") var keepProb: Double = 0.5
    @Option(help: ArgumentHelp("How every supernet mini-batch trains: bernoulli (one scheme d ~ Bernoulli(p)^L, the paper), sandwich (Full-SA, original and d), fair (d and 1 - d), distill (Full-SA teaches d), fewshot (correlate only: a supernet per setting of the first 2 blocks); default \(Recipe.builtInDefault(sam: "se").supernetSampling)).", valueName: "strategy"))
    var supernetSampling: SupernetSampling?
    @Option(parsing: .unconditional, help: "Searched schemes retrained from scratch (default 1; presets 3).") var candidates: Int?
    @Option(parsing: .unconditional, help: "Seeds of every retraining (candidates, Full-SA, original: the same seeds for all, compared pairwise); tables show mean ± sd (default 3; presets 1).") var seeds: Int?
    @Option(parsing: .unconditional, help: "Validation images per class (the search's proxy data).") var valPerClass: Int?
    @Option(parsing: .unconditional, help: "Batch size (default 32; presets 128).") var batch: Int?
    @Option(parsing: .unconditional, help: "Learning rate (default 0.2; presets 0.1).") var lr: Double?
    @Option(parsing: .unconditional, help: "Non-inferiority margin of the ticket verdict, accuracy points: yes needs the 95% interval of (scheme - Full-SA) above -margin.")
    var margin: Double = TicketRule.defaultMargin
    @OptionGroup var reward: RewardOptions
    @OptionGroup var scoring: ScoringOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(name: .shortAndLong, help: "Run directory (default runs/pipeline-<model>-<sam>-<searcher>-s<seed>).", transform: runDirectoryPath) var output: String?
    @Flag(help: "Continue the run in --output where it stopped.") var resume = false
    @OptionGroup var finiteChecks: FiniteCheckOptions

    func validate() throws {
        if let p = preset, !(data ?? "").hasPrefix("cifar100:") { throw ValidationError("--preset \(p.rawValue) needs --data cifar100:PATH") }
        if let b = batch, b < 1 { throw ValidationError("--batch must be at least 1, got \(b)") }
        if let r = lr, !(r.isFinite && r > 0) { throw ValidationError("--lr must be a positive number, got \(r)") }
        if let s = searchSteps, s < 1 { throw ValidationError("--search-steps must be at least 1, got \(s)") }
        if let c = candidates, c < 1 { throw ValidationError("--candidates must be at least 1, got \(c)") }
        if let s = seeds, s < 1 { throw ValidationError("--seeds must be at least 1, got \(s)") }
        guard margin.isFinite && margin >= 0 else { throw ValidationError("--margin must be a finite number of accuracy points >= 0, got \(margin)") }
        guard keepProb > 0 && keepProb <= 1 else { throw ValidationError("--keep-prob must be in (0, 1], got \(keepProb)") }
    }

    /// The recipe: the preset's (or the default), then every flag given.
    func settings() throws -> Pipeline.Settings {
        var s = Pipeline.Settings(preset: preset, sam: sam, samOptions: samOptions, attach: attach, searcher: searcher, seed: runtime.seed)
        if let b = batch { s.recipe.base.batch = b }
        if let r = lr { s.recipe.base.lr = Float(r) }
        if let m = model { s.recipe.base.model = m }
        if let d = data { s.recipe.base.data = d }
        if let v = valPerClass { s.recipe.base.valPerClass = v }
        s.recipe.base.checkFinite = finiteChecks.setting
        if let e = supernetEpochs { s.recipe.supernetEpochs = e }
        if let e = epochs { s.recipe.epochs = e }
        if let n = searchSteps { s.search.steps = n }
        s.search.options = searcherOptions
        s.search.reward = reward.weights()
        if let b = scoring.bnRecalibrate { s.search.bnRecalibrate = b }  // else the recipe's (Pipeline.Settings)
        if let score = scoring.score { s.search.score = score }
        s.recipe.keepProb = keepProb
        if let m = supernetSampling { s.recipe.supernetSampling = m }
        if let c = candidates { s.candidates = c }
        if let n = seeds { s.recipe.seeds = n }
        s.margin = margin
        return s
    }

    func run() throws {
        runtime.apply()
        let s = try settings()
        let samId = try SAMPlugin(sam, settings: samOptions).id  // ids from the descriptors, not the file names
        let searcherId = try SchemeSearch.check(searcher, options: searcherOptions, stageSizes: try ModelSpec(s.recipe.base.model).blocksPerStage)
        let dir = output ?? "runs/pipeline-\(s.recipe.base.model)-\(samId)-\(searcherId)-s\(runtime.seed)"
        let result = try Pipeline.run(s, directory: dir, resume: resume, context: Console.shared.context)
        let root = URL(fileURLWithPath: dir)
        print("\n" + Pipeline.table(result) + "\n" + Pipeline.timing(result)
              + "\nticket (best validation accuracy): \(result.ticket.scheme)"
              + "\nreport: \(root.appendingPathComponent("report.md").path), ticket: \(root.appendingPathComponent(Pipeline.Ticket.fileName).path)")
    }
}
