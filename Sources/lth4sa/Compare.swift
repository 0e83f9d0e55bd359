import ArgumentParser
import Experiments
import Foundation
import Models
import PluginHost
import Search
import Tensor

/// `lth4sa compare`: several searchers on one supernet with the same evaluation budget and
/// seed (`Comparison` of the Experiments library).
struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare", abstract: "Compare searchers on one supernet: same budget and seed, best schemes retrained, one table.")

    @OptionGroup var study: StudyOptions
    @Option(help: "Comma-separated searchers (ids or paths).") var searchers: String = "ean,random,ga,enas,darts,hsp,l1,gm"
    @Option(name: .customLong("searcher-opt"), help: "Option of one searcher as id:key=value, e.g. ga:population=10 (repeatable).")
    var searcherOptions: [String] = []
    @Option(parsing: .unconditional, help: "Evaluation budget: schemes scored per searcher.") var budget: Int = 100
    @Option(parsing: .unconditional, help: "Best schemes (by reward) of each searcher retrained from scratch.") var candidates: Int = 1
    @Option(parsing: .unconditional, help: "Searches per searcher on the same supernet, with seeds --seed, --seed + 1, ...; each pick retrained, compared with Random's pick of the same search seed (paired).")
    var searchSeeds: Int = 1
    @Option(parsing: .unconditional, help: "Enumerate the landscape for Top 5%? up to this many blocks (0 = never).") var landscapeMaxBlocks: Int = 12
    @Option(parsing: .unconditional, help: "Non-inferiority margin of the ticket verdict, accuracy points: yes needs the 95% interval of (scheme - Full-SA) above -margin.")
    var margin: Double = TicketRule.defaultMargin
    @OptionGroup var reward: RewardOptions
    @OptionGroup var scoring: ScoringOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(name: .shortAndLong, help: "Run directory (default runs/compare-<model>-<sam>-s<seed>).", transform: runDirectoryPath) var output: String?

    var searcherList: [String] { searchers.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }

    func validate() throws {
        guard !searcherList.isEmpty else { throw ValidationError("--searchers lists no searcher") }
        guard Set(searcherList).count == searcherList.count else { throw ValidationError("--searchers lists a searcher twice: \(searchers)") }
        if let m = study.supernetSampling, m.values.count > 1 {
            throw ValidationError("compare trains one supernet; give one --supernet-sampling, got \(m.values.map { $0.rawValue }.joined(separator: ","))")
        }
        if searchSeeds < 1 { throw ValidationError("--search-seeds must be at least 1, got \(searchSeeds)") }
        if budget < 1 { throw ValidationError("--budget must be at least 1, got \(budget)") }
        guard margin.isFinite && margin >= 0 else { throw ValidationError("--margin must be a finite number of accuracy points >= 0, got \(margin)") }
        if candidates < 1 { throw ValidationError("--candidates must be at least 1, got \(candidates)") }
        for o in searcherOptions where !o.contains(":") || !o.contains("=") {
            throw ValidationError("--searcher-opt '\(o)' must be id:key=value, e.g. ga:population=10")
        }
    }

    func run() throws {
        runtime.apply()
        var settings = Comparison.Settings(recipe: study.recipe(seed: runtime.seed))
        // --searcher-opt id:key=value goes to the searcher whose descriptor id is `id`
        let stages = try ModelSpec(settings.recipe.base.model).blocksPerStage
        let ids = try searcherList.map { try Comparison.searcherId($0, stageSizes: stages) }
        for o in searcherOptions where !ids.contains(String(o.prefix { $0 != ":" })) {
            throw LTHError("--searcher-opt '\(o)' names no searcher of --searchers (\(ids.joined(separator: ",")))")
        }
        settings.searchers = zip(searcherList, ids).map { spec, id in
            .init(spec: spec, options: searcherOptions.filter { $0.hasPrefix(id + ":") }.map { String($0.dropFirst(id.count + 1)) })
        }
        settings.budget = budget
        settings.candidates = candidates
        settings.landscapeMaxBlocks = landscapeMaxBlocks
        settings.reward = reward.weights()
        (settings.bnRecalibrate, settings.score) = scoring.resolved
        settings.margin = margin
        settings.searchSeeds = searchSeeds
        let dir = try study.directory(output, kind: "compare", seed: runtime.seed)
        let result = try Comparison.run(settings, directory: dir, resume: study.resume, context: Console.shared.context)
        print("\n" + Comparison.table(result) + "\n" + Comparison.searcherTable(result) + "\nreport: \(URL(fileURLWithPath: dir).appendingPathComponent("compare.md").path)")
    }
}
