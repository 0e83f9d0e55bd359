import ArgumentParser
import Foundation
import Models
import PluginHost
import Search
import Tensor
import Training

/// `lth4sa compare`: several searchers on one supernet with the same evaluation budget and
/// seed; each searcher's best schemes retrained from scratch; one table like the paper's
/// Tables I and III (accuracy, parameters, dT, ticket?, Top 5%?) with each searcher's wall time.
struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare", abstract: "Compare searchers on one supernet: same budget and seed, best schemes retrained, one table.")

    @Option(help: "SAM plugin (path or id).") var sam: String = "se"
    @Option(name: .customLong("sam-opt"), help: "SAM option key=value (repeatable).") var samOptions: [String] = []
    @Option(help: "full-sa or full-share supernet.") var attach: String = "full-sa"
    @Option(help: "Comma-separated searchers (ids or paths).") var searchers: String = "ean,random,ga,enas,darts,hsp,l1,gm"
    @Option(name: .customLong("searcher-opt"), help: "Option of one searcher as id:key=value, e.g. ga:population=10 (repeatable).")
    var searcherOptions: [String] = []
    @Option(help: "Model.") var model: String = "resnet20"
    @Option(help: "Data.") var data: String = "synthetic:4000"
    @Option(help: "Supernet epochs.") var supernetEpochs: Int = 4
    @Option(help: "Epochs of every network trained from scratch.") var epochs: Int = 4
    @Option(help: "Evaluation budget: schemes scored per searcher.") var budget: Int = 100
    @Option(help: "Best schemes (by reward) of each searcher retrained from scratch.") var candidates: Int = 1
    @Option(help: "Retaining probability of the supernet's SAMs per mini-batch.") var keepProb: Double = 0.5
    @Option(help: "Validation images per class (the search's proxy data).") var valPerClass: Int = 50
    @Option(help: "Batch size.") var batch: Int = 128
    @Option(help: "Enumerate the landscape for Top 5%? up to this many blocks (0 = never).") var landscapeMaxBlocks: Int = 12
    @OptionGroup var reward: RewardOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(name: .shortAndLong, help: "Run directory (default runs/compare-<model>-<sam>-s<seed>).") var output: String?

    var searcherList: [String] { searchers.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }

    func validate() throws {
        guard AttachMode(rawValue: attach) != nil else { throw ValidationError("--attach must be full-sa or full-share, got '\(attach)'") }
        guard !searcherList.isEmpty else { throw ValidationError("--searchers lists no searcher") }
        guard Set(searcherList).count == searcherList.count else { throw ValidationError("--searchers lists a searcher twice: \(searchers)") }
        if budget < 1 { throw ValidationError("--budget must be at least 1, got \(budget)") }
        if candidates < 1 { throw ValidationError("--candidates must be at least 1, got \(candidates)") }
        guard keepProb > 0 && keepProb <= 1 else { throw ValidationError("--keep-prob must be in (0, 1], got \(keepProb)") }
        for o in searcherOptions where !o.contains(":") || !o.contains("=") {
            throw ValidationError("--searcher-opt '\(o)' must be id:key=value, e.g. ga:population=10")
        }
    }

    /// The short id of a searcher spec (file name without lib and .so).
    static func id(_ spec: String) -> String {
        URL(fileURLWithPath: spec).deletingPathExtension().lastPathComponent.replacingOccurrences(of: "lib", with: "").lowercased()
    }

    func run() throws {
        runtime.apply()
        var base = Stages.baseConfig(sam: sam, samOptions: samOptions, attach: attach, seed: runtime.seed, batch: batch)
        base.model = model
        base.data = data
        base.valPerClass = valPerClass
        let samId = Self.id(sam)
        let root = URL(fileURLWithPath: output ?? "runs/compare-\(model)-\(samId)-s\(runtime.seed)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let weights = try reward.weights()
        let stages = try ModelSpec(model).blocksPerStage
        // every plugin and option is checked before any training
        _ = try SAMPlugin(sam, settings: samOptions)
        let ids = searcherList.map(Self.id)
        for o in searcherOptions where !ids.contains(String(o.prefix { $0 != ":" })) {
            throw LTHError("--searcher-opt '\(o)' names no searcher of --searchers (\(ids.joined(separator: ",")))")
        }
        func options(_ id: String) -> [String] { searcherOptions.filter { $0.hasPrefix(id + ":") }.map { String($0.dropFirst(id.count + 1)) } }
        for (spec, id) in zip(searcherList, ids) { try Stages.checkSearcher(spec, settings: options(id), stageSizes: stages) }

        print("== 1/5 supernet: \(model) + \(samId) (\(attach)), \(supernetEpochs) epochs, keep-prob \(keepProb)")
        var supernetConfig = base
        supernetConfig.epochs = supernetEpochs
        supernetConfig.keepProb = keepProb
        let trainer = try Stages.supernet(supernetConfig, directory: root.appendingPathComponent("supernet").path, progress: true)

        print("== 2/5 searching: \(ids.joined(separator: ", ")), \(budget) schemes scored each, seed \(runtime.seed)")
        var found: [(searcher: String, schemes: [(Scheme, RewardParts)], seconds: Double)] = []
        for (spec, id) in zip(searcherList, ids) {
            let dir = root.appendingPathComponent("search-\(id)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let summaryURL = dir.appendingPathComponent("summary.json")
            if let data = try? Data(contentsOf: summaryURL), let s = try? JSONDecoder().decode(SearchSummary.self, from: data), s.budget == budget {
                found.append((id, try s.best.prefix(candidates).map { (try Scheme(parsing: $0.scheme, stageSizes: stages), $0.parts) }, s.seconds))
                print("   \(id): done before (\(formatDuration(s.seconds)))")
                continue
            }
            // a search stopped before continues from its checkpoint; its wall time adds up
            let elapsedURL = dir.appendingPathComponent("elapsed.json")
            let stateExists = FileManager.default.fileExists(atPath: dir.appendingPathComponent("search-state.json").path)
            let before = stateExists ? ((try? JSONDecoder().decode([String: Double].self, from: Data(contentsOf: elapsedURL)))?["seconds"] ?? 0) : 0
            let start = Date()
            let loop: SearchLoop
            do {
                // a fresh evaluator per searcher: no searcher profits from another's cache in its wall time
                loop = try SearchStage.run(trainer: trainer, directory: dir.path, searcher: spec, searcherOptions: options(id), steps: budget,
                                           weights: weights, resume: stateExists, evaluations: budget,
                                           howToContinue: "run the same command again to continue")
            } catch {
                try? AtomicFile.write(try JSONEncoder().encode(["seconds": before + Date().timeIntervalSince(start)]), to: elapsedURL)
                throw error
            }
            let seconds = before + Date().timeIntervalSince(start)
            let summary = SearchSummary(budget: budget, seconds: seconds, evaluations: loop.records.count,  // every kept best: --candidates may change
                                        best: loop.best.map { .init(scheme: $0.scheme.description, parts: $0.parts) })
            try AtomicFile.write(try JSONEncoder().encode(summary), to: summaryURL)
            found.append((id, loop.best.prefix(candidates).map { ($0.scheme, $0.parts) }, seconds))
        }

        let L = stages.reduce(0, +)
        var landscape: Landscape? = nil
        if L <= landscapeMaxBlocks {
            print("== 3/5 landscape: all \(1 << L) schemes through the supernet (for Top 5%?)")
            landscape = try LandscapeStage.run(trainer: trainer, evaluator: try SearchStage.makeEvaluator(trainer),
                                               directory: root.appendingPathComponent("landscape").path, maxEnumerate: landscapeMaxBlocks).landscape
        } else {
            print("== 3/5 landscape skipped: \(L) blocks > --landscape-max-blocks \(landscapeMaxBlocks) (Top 5%? is '-')")
        }

        let original = Scheme.all(false, stageSizes: stages), full = Scheme.all(true, stageSizes: stages)
        var unique: [Scheme] = [original, full]
        for f in found { for (s, _) in f.schemes where !unique.contains(s) { unique.append(s) } }
        print("== 4/5 training \(unique.count) distinct networks from scratch, \(epochs) epochs each")
        var accuracy: [Scheme: Double] = [:]
        for s in unique {
            var c = base
            c.epochs = epochs
            c.scheme = s.description
            let (acc, seconds, fresh) = try Stages.trainFromScratch(c, directory: root.appendingPathComponent("train/\(s.bits.map { $0 ? "1" : "0" }.joined())"))
            accuracy[s] = acc
            print(Stages.trainedLine(s.description, accuracy: acc, seconds: seconds, fresh: fresh))
        }

        print("== 5/5 measuring parameters and inference time (batch 50)")
        let supernet = try Supernet(trainer.net)
        let times = try Stages.inferenceTimes(base, classes: trainer.source.train.classes, schemes: unique)
        let time = Dictionary(uniqueKeysWithValues: zip(unique, times))
        func dT(_ s: Scheme) -> Double { (time[s]! - time[original]!) / time[original]! * 100 }
        func top(_ s: Scheme) -> String {
            guard let l = landscape, let r = l.rank(s) else { return "-" }
            return (l.isTop(accuracy: l.entries.first { $0.scheme == s }!.accuracy) ? "yes" : "no") + " (rank \(r))"
        }
        var table = "| searcher | scheme | connection ratio | supernet val acc (%) | test accuracy (%) | parameters (M) | dT (%) | ticket? | Top 5%? | search time |\n"
        table += "|---|---|---|---|---|---|---|---|---|---|\n"
        var rows: [[String: Any]] = []
        func row(_ label: String, _ s: Scheme, _ parts: RewardParts?, seconds: Double?) {
            let params = supernet.parameterCount(s)
            let ticket = s != original && s != full && accuracy[s]! >= accuracy[full]! && params < supernet.parameterCount(full) && time[s]! < time[full]!
            table += String(format: "| %@ | %@ | %.2f | %@ | %.2f | %.4f | %+.1f | %@ | %@ | %@ |\n", label, s.description, s.connectionRatio,
                            parts.map { String(format: "%.2f", $0.accuracy) } ?? "-", accuracy[s]!, Double(params) / 1e6, dT(s),
                            parts == nil ? "-" : (ticket ? "yes" : "no"), top(s),
                            seconds.map(formatDuration) ?? "-")
            rows.append(["searcher": label, "scheme": s.description, "ratio": s.connectionRatio, "supernet_val_acc": parts?.accuracy ?? NSNull(),
                         "reward": parts?.reward ?? NSNull(), "test_acc": accuracy[s]!, "parameters": params, "inference_ms": time[s]!, "dT_percent": dT(s),
                         "ticket": ticket, "top5": top(s), "search_seconds": seconds ?? NSNull()])
        }
        row("original", original, nil, seconds: nil)
        row("Full-SA", full, nil, seconds: nil)
        for f in found { for (s, parts) in f.schemes { row(f.searcher, s, parts, seconds: f.seconds) } }
        let report = """
        # lth4sa compare: \(model) + \(samId) (\(attach))

        Data \(data); supernet \(supernetEpochs) epochs (keep-prob \(keepProb)); every searcher scored \(budget) schemes through the same supernet with seed \(runtime.seed) and the same reward; its best \(candidates) scheme(s) by reward trained from scratch for \(epochs) epochs.
        dT = inference-time increment over the original network (forward, batch 50, median, interleaved). Ticket: keeps Full-SA's test accuracy with fewer parameters and less time. Top 5%?: among the best 5% of all \(landscape.map { "\($0.entries.count)" } ?? "-") schemes by supernet validation accuracy (rank in parentheses). Search time: wall time of the searcher's search (fresh evaluation cache for each).

        \(table)
        """
        try AtomicFile.write(Data(report.utf8), to: root.appendingPathComponent("compare.md"))
        try AtomicFile.write(try JSONSerialization.data(withJSONObject: ["rows": rows, "budget": budget, "seed": runtime.seed, "model": model, "data": data,
                                                                         "sam": sam, "attach": attach], options: [.prettyPrinted, .sortedKeys]),
                             to: root.appendingPathComponent("compare.json"))
        print("\n" + table + "\nreport: \(root.appendingPathComponent("compare.md").path)")
    }
}

/// What a finished search of `compare` keeps (so a resumed compare skips it).
struct SearchSummary: Codable {
    struct Best: Codable {
        let scheme: String
        let parts: RewardParts
    }
    let budget: Int
    let seconds: Double
    let evaluations: Int
    let best: [Best]
}
