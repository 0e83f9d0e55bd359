import ArgumentParser
import Experiments
import Foundation
import Models
import Terminal

/// `lth4sa [run] --sam S --searcher X`: the whole method (`Pipeline` of the Experiments library).
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The whole pipeline: supernet, search, retraining of the found tickets, report (the default command).")

    @OptionGroup var study: StudyOptions
    @Option(help: "Searcher plugin (path or id).") var searcher: String = "ean"
    @Option(name: .customLong("searcher-opt"), help: "Searcher option key=value (repeatable).") var searcherOptions: [String] = []
    @Option(help: "Paper recipes: cifar100-resnet164 or cifar100-resnet38 (give --data cifar100:PATH; the recipe sets model, batch 128, lr 0.1, epochs, 3 candidates, 1 seed).") var preset: PipelinePreset?
    @Option(parsing: .unconditional, help: "Search steps.") var searchSteps: Int?
    @Option(parsing: .unconditional, help: "Searched schemes retrained from scratch (default 1; presets 3).") var candidates: Int?
    @Option(parsing: .unconditional, help: "Non-inferiority margin of the ticket verdict, accuracy points: yes needs the 95% interval of (scheme - Full-SA) above -margin.") var margin: Double = TicketRule.defaultMargin
    @OptionGroup var reward: RewardOptions
    @OptionGroup var scoring: ScoringOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(name: .shortAndLong, help: "Run directory (default runs/pipeline-<model>-<sam>-<searcher>-s<seed>).", transform: runDirectoryPath) var output: String?

    func validate() throws {
        if let p = preset, !(study.data ?? "").hasPrefix("cifar100:") { throw ValidationError("--preset \(p.rawValue) needs --data cifar100:PATH") }
        try study.requireOneSupernet("run")
    }

    /// The recipe: the preset's (or the default), then every flag given.
    func settings() throws -> Pipeline.Settings {
        var s = Pipeline.Settings(preset: preset, sam: study.sam, samOptions: study.samOptions, attach: study.attach, searcher: searcher, seed: runtime.seed)
        study.apply(to: &s.recipe)
        if let n = searchSteps { s.search.steps = n }
        s.search.options = searcherOptions
        s.search.reward = reward.weights()
        if let b = scoring.bnRecalibrate { s.search.bnRecalibrate = b }  // else the recipe's (Pipeline.Settings)
        if let score = scoring.score { s.search.score = score }
        if let c = candidates { s.candidates = c }
        s.margin = margin
        try s.validate()
        return s
    }

    func run() throws {
        try runtime.apply()
        let s = try settings()
        let dir = try output ?? Pipeline.defaultDirectory(s)
        let result = try Pipeline.run(s, directory: dir, resume: study.resume, context: Console.shared.withStopHandler)
        let root = URL(fileURLWithPath: dir)
        print("\n" + Pipeline.table(result) + "\n" + Pipeline.timing(result)
              + "\nticket (best validation accuracy): \(result.ticket.scheme)"
              + "\nreport: \(root.appendingPathComponent("report.md").path), ticket: \(root.appendingPathComponent(Pipeline.Ticket.fileName).path)")
    }
}

/// `lth4sa compare`: several searchers on one supernet with the same evaluation budget and
/// seed (`Comparison` of the Experiments library).
struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare", abstract: "Compare searchers on one supernet: same budget and seed, best schemes retrained, one table.")

    @OptionGroup var study: StudyOptions
    @Option(help: "Comma-separated searchers (ids or paths).") var searchers: String = "ean,random,ga,enas,darts,hsp,l1,gm"
    @Option(name: .customLong("searcher-opt"), help: "Option of one searcher as id:key=value, e.g. ga:population=10 (repeatable).") var searcherOptions: [String] = []
    @Option(parsing: .unconditional, help: "Evaluation budget: schemes scored per searcher.") var budget: Int = 100
    @Option(parsing: .unconditional, help: "Best schemes (by reward) of each searcher retrained from scratch.") var candidates: Int = 1
    @Option(parsing: .unconditional, help: "Searches per searcher on the same supernet, with seeds --seed, --seed + 1, ...; each pick retrained, compared with Random's pick of the same search seed (paired).") var searchSeeds: Int = 1
    @Option(parsing: .unconditional, help: "Enumerate the landscape for Top 5%? up to this many blocks (0 = never).") var landscapeMaxBlocks: Int = 12
    @Option(parsing: .unconditional, help: "Non-inferiority margin of the ticket verdict, accuracy points: yes needs the 95% interval of (scheme - Full-SA) above -margin.") var margin: Double = TicketRule.defaultMargin
    @OptionGroup var reward: RewardOptions
    @OptionGroup var scoring: ScoringOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(name: .shortAndLong, help: "Run directory (default runs/compare-<model>-<sam>-s<seed>).", transform: runDirectoryPath) var output: String?

    var searcherList: [String] { searchers.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }

    func validate() throws {
        guard !searcherList.isEmpty else { throw ValidationError("--searchers lists no searcher") }
        guard Set(searcherList).count == searcherList.count else { throw ValidationError("--searchers lists a searcher twice: \(searchers)") }
        try study.requireOneSupernet("compare")
        for o in searcherOptions where !o.contains(":") || !o.contains("=") {
            throw ValidationError("--searcher-opt '\(o)' must be id:key=value, e.g. ga:population=10")
        }
    }

    func run() throws {
        try runtime.apply()
        var settings = Comparison.Settings(recipe: study.recipe(seed: runtime.seed))
        settings.searchers = searcherList.map { .init(spec: $0) }
        (settings.budget, settings.candidates, settings.landscapeMaxBlocks, settings.margin, settings.searchSeeds) = (budget, candidates, landscapeMaxBlocks, margin, searchSeeds)
        settings.reward = reward.weights()
        (settings.bnRecalibrate, settings.score) = scoring.resolved
        try settings.validate()  // before any plugin is looked up
        settings.searchers = try Comparison.searcherChoices(searcherList, idOptions: searcherOptions,
                                                            stageSizes: try ModelSpec(settings.recipe.base.model).blocksPerStage)
        let dir = try output ?? Study.defaultDirectory("compare", recipe: settings.recipe)
        let result = try Comparison.run(settings, directory: dir, resume: study.resume, context: Console.shared.withStopHandler)
        print("\n" + Comparison.table(result) + "\n" + Comparison.searcherTable(result) + "\nreport: \(URL(fileURLWithPath: dir).appendingPathComponent("compare.md").path)")
    }
}

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
    @Option(name: .shortAndLong, help: "Run directory (default runs/correlate-<model>-<sam>-s<seed>; a `run` directory reuses its supernet).", transform: runDirectoryPath) var output: String?

    func run() throws {
        try runtime.apply()
        var settings = Correlation.Settings(recipe: study.recipe(seed: runtime.seed), samplings: study.supernetSampling?.values)
        (settings.schemes, settings.bnRecalibrate, settings.topK, settings.resamples) = (schemes, bnRecalibrate, topK, resamples)
        try settings.validate()
        let dir = try output ?? Study.defaultDirectory("correlate", recipe: settings.recipe)
        let result = try Correlation.run(settings, directory: dir, resume: study.resume, context: Console.shared.withStopHandler)
        print("\n" + flagNames.rewrite(Correlation.table(result)) + "\nreport: \(URL(fileURLWithPath: dir).appendingPathComponent("correlate.md").path)")
    }
}
