import ArgumentParser
import Experiments
import Foundation
import Models
import PluginHost
import Tensor

/// `lth4sa compare`: several searchers on one supernet with the same evaluation budget and
/// seed (`Comparison` of the Experiments library).
struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare", abstract: "Compare searchers on one supernet: same budget and seed, best schemes retrained, one table.")

    @Option(help: "SAM plugin (path or id).") var sam: String = "se"
    @Option(name: .customLong("sam-opt"), help: "SAM option key=value (repeatable).") var samOptions: [String] = []
    @Option(help: "full-sa or full-share supernet.") var attach: AttachMode = .fullSA
    @Option(help: "Comma-separated searchers (ids or paths).") var searchers: String = "ean,random,ga,enas,darts,hsp,l1,gm"
    @Option(name: .customLong("searcher-opt"), help: "Option of one searcher as id:key=value, e.g. ga:population=10 (repeatable).")
    var searcherOptions: [String] = []
    @Option(help: "Model.") var model: String = "resnet20"
    @Option(help: "Data.") var data: String = "synthetic:4000"
    @Option(help: "Supernet epochs.") var supernetEpochs: Int = 4
    @Option(help: "Epochs of every network trained from scratch.") var epochs: Int = 4
    @Option(help: "Evaluation budget: schemes scored per searcher.") var budget: Int = 100
    @Option(help: "Best schemes (by reward) of each searcher retrained from scratch.") var candidates: Int = 1
    @Option(help: "Seeds of every retraining: tables show mean ± sd.") var seeds: Int = 1
    @Option(help: "Retaining probability of the supernet's SAMs per mini-batch.") var keepProb: Double = 0.5
    @Option(help: "Validation images per class (the search's proxy data).") var valPerClass: Int = 50
    @Option(help: "Batch size.") var batch: Int = 128
    @Option(help: "Enumerate the landscape for Top 5%? up to this many blocks (0 = never).") var landscapeMaxBlocks: Int = 12
    @OptionGroup var reward: RewardOptions
    @OptionGroup var scoring: ScoringOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(name: .shortAndLong, help: "Run directory (default runs/compare-<model>-<sam>-s<seed>).") var output: String?

    var searcherList: [String] { searchers.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }

    func validate() throws {
        guard !searcherList.isEmpty else { throw ValidationError("--searchers lists no searcher") }
        guard Set(searcherList).count == searcherList.count else { throw ValidationError("--searchers lists a searcher twice: \(searchers)") }
        if budget < 1 { throw ValidationError("--budget must be at least 1, got \(budget)") }
        if candidates < 1 { throw ValidationError("--candidates must be at least 1, got \(candidates)") }
        if seeds < 1 { throw ValidationError("--seeds must be at least 1, got \(seeds)") }
        guard keepProb > 0 && keepProb <= 1 else { throw ValidationError("--keep-prob must be in (0, 1], got \(keepProb)") }
        for o in searcherOptions where !o.contains(":") || !o.contains("=") {
            throw ValidationError("--searcher-opt '\(o)' must be id:key=value, e.g. ga:population=10")
        }
    }

    func run() throws {
        runtime.apply()
        var base = SAMAttachment.baseConfig(sam: sam, samOptions: samOptions, attach: attach, seed: runtime.seed, batch: batch)
        base.model = model
        base.data = data
        base.valPerClass = valPerClass
        var settings = Comparison.Settings(base: base)
        // --searcher-opt id:key=value goes to the searcher whose descriptor id is `id`
        let stages = try ModelSpec(model).blocksPerStage
        let ids = try searcherList.map { try Comparison.searcherId($0, stageSizes: stages) }
        for o in searcherOptions where !ids.contains(String(o.prefix { $0 != ":" })) {
            throw LTHError("--searcher-opt '\(o)' names no searcher of --searchers (\(ids.joined(separator: ",")))")
        }
        settings.searchers = zip(searcherList, ids).map { spec, id in
            .init(spec: spec, options: searcherOptions.filter { $0.hasPrefix(id + ":") }.map { String($0.dropFirst(id.count + 1)) })
        }
        settings.supernetEpochs = supernetEpochs
        settings.epochs = epochs
        settings.budget = budget
        settings.candidates = candidates
        settings.seeds = seeds
        settings.keepProb = keepProb
        settings.landscapeMaxBlocks = landscapeMaxBlocks
        settings.reward = try reward.weights()
        settings.bnRecalibrate = scoring.bnRecalibrate
        let samId = try SAMPlugin(sam, settings: samOptions).id
        let dir = output ?? "runs/compare-\(model)-\(samId)-s\(runtime.seed)"
        let result = try Comparison.run(settings, directory: dir, context: Console.shared.context)
        print("\n" + Comparison.table(result) + "\nreport: \(URL(fileURLWithPath: dir).appendingPathComponent("compare.md").path)")
    }
}
