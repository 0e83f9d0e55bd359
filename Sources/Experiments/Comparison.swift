import Checkpoint
import Foundation
import Models
import PluginHost
import Search
import Tensor
import Training

/// Several searchers on one supernet with the same evaluation budget, seed and reward; each
/// searcher's best schemes retrained from scratch; one table like the paper's Tables I and III
/// (accuracy, parameters, dT, ticket?, Top 5%?) with each searcher's wall time.
///
/// Run directory: `supernet/`, `search-<id>/` (log, state, `search-summary.json`),
/// `landscape/`, `train/<bits>/`, `compare.md`, `compare.json`.
public enum Comparison {
    /// Everything that defines a comparison.
    public struct Settings: Codable, Equatable, Sendable {
        /// Base configuration, epochs, keep-prob and seeds of the retrainings.
        public var recipe: Recipe
        /// Searcher plugins (paths or ids), each with its own `key=value` options.
        public var searchers: [SearcherChoice] = []
        /// Schemes scored per searcher.
        public var budget = 100
        /// Best schemes (by reward) of each searcher retrained from scratch.
        public var candidates = 1
        /// Enumerate the landscape (for Top 5%?) up to this many blocks; 0 = never.
        public var landscapeMaxBlocks = 12
        public var reward = RewardWeights()
        /// Training mini-batches that re-estimate each scheme's BN statistics before scoring
        /// (searches and landscape alike; 0 = the supernet's own statistics).
        public var bnRecalibrate = 0
        /// Non-inferiority margin of the verdict, accuracy points (`TicketRule`).
        public var margin = TicketRule.defaultMargin

        public init(recipe: Recipe) { self.recipe = recipe }
    }

    /// One searcher of a comparison: its plugin (path or id) and `key=value` options.
    public struct SearcherChoice: Codable, Equatable, Sendable {
        public var spec: String
        public var options: [String]
        public init(spec: String, options: [String] = []) {
            self.spec = SAMAttachment.recorded(spec)
            self.options = options
        }
    }

    /// `search-<id>/search-summary.json`: what a finished search of a comparison keeps.
    public struct SearchSummary: Codable, Sendable {
        /// One kept scheme and its reward parts.
        public struct Best: Codable, Sendable {
            public let scheme: String
            public let parts: RewardParts
        }
        public let budget: Int
        public let seconds: Double
        public let evaluations: Int
        /// Every kept best scheme (a re-run may ask for more candidates).
        public let best: [Best]
        public static let fileName = "search-summary.json"
    }

    /// One row of the table: the measured network (its label is the searcher's id, or
    /// "original" / "Full-SA") and what the search said of it.
    public struct Row: Codable, Equatable, Sendable {
        public let network: MeasuredNetwork
        public let supernetValAcc: Double?
        public let reward: Double?
        /// "yes (rank 3)", "no (rank 40)" or "-" without a landscape.
        public let top5: String
        public let searchSeconds: Double?
    }

    /// `compare.json`.
    public struct Result: Codable, Sendable {
        public let settings: Settings
        public let rows: [Row]
        /// Schemes in the landscape (nil when it was skipped).
        public let landscapeSchemes: Int?
        public static let fileName = "compare.json"
    }

    /// The short id of a searcher from its descriptor.
    public static func searcherId(_ spec: String, stageSizes: [Int]) throws -> String {
        try SchemeSearch.check(spec, options: [], stageSizes: stageSizes)
    }

    /// Runs the comparison in `directory`, reusing every finished part.
    public static func run(_ settings: Settings, directory: String, context: ExperimentContext) throws -> Result {
        let base = settings.recipe.base
        let root = URL(fileURLWithPath: directory)
        let stages = try ModelSpec(base.model).blocksPerStage
        guard !settings.searchers.isEmpty else { throw LTHError("no searcher to compare") }
        // every plugin and option is checked before any training
        let samId = try SAMPlugin(base.sam ?? "se", settings: base.samOptions).id
        var ids: [String] = []
        for s in settings.searchers { ids.append(try SchemeSearch.check(s.spec, options: s.options, stageSizes: stages)) }
        guard Set(ids).count == ids.count else { throw LTHError("the searchers \(ids.joined(separator: ",")) name one searcher twice") }
        let lock = try context.lock(root)  // one writer per run directory, held to the end
        defer { withExtendedLifetime(lock) {} }
        let again = "run the same command again to continue"

        context.progress(.phase(number: 1, total: 5, "supernet: \(base.model) + \(samId) (\(base.attach)), \(settings.recipe.supernetEpochs) epochs, keep-prob \(settings.recipe.keepProb)"))
        let trainer = try SupernetTraining.train(settings.recipe.supernet, directory: root.child(settings.recipe.supernetFolder).path, context: context, howToContinue: again)

        context.progress(.phase(number: 2, total: 5, "searching: \(ids.joined(separator: ", ")), \(settings.budget) schemes scored each, seed \(base.seed)"))
        var found: [(searcher: String, schemes: [(Scheme, RewardParts)], seconds: Double)] = []
        for (s, id) in zip(settings.searchers, ids) {
            let dir = root.child("search-\(id)")
            if context.writes { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) }
            let summaryURL = dir.child(SearchSummary.fileName)
            if let done = AtomicFile.readJSON(SearchSummary.self, from: summaryURL), done.budget == settings.budget {
                found.append((id, try done.best.prefix(settings.candidates).map { (try Scheme(parsing: $0.scheme, stageSizes: stages), $0.parts) }, done.seconds))
                context.progress(.line("   \(id): done before (\(formatDuration(done.seconds)))"))
                continue
            }
            // a search stopped before continues from its checkpoint; its wall time adds up
            let elapsedURL = dir.child("elapsed.json")
            let stateExists = dir.child("search-state.json").exists
            let before = stateExists ? (AtomicFile.readJSON([String: Double].self, from: elapsedURL)?["seconds"] ?? 0) : 0
            let start = Date()
            let loop: SearchLoop
            do {
                // a fresh evaluator per searcher: no searcher profits from another's cache in its wall time
                loop = try SchemeSearch.run(trainer: trainer, directory: dir.path,
                                            settings: .init(searcher: s.spec, options: s.options, steps: settings.budget, evaluations: settings.budget,
                                                            reward: settings.reward, bnRecalibrate: settings.bnRecalibrate),
                                            resume: stateExists, context: context, howToContinue: again)
            } catch {
                if context.writes { try? AtomicFile.writeJSON(["seconds": before + Date().timeIntervalSince(start)], to: elapsedURL) }
                throw error
            }
            let seconds = before + Date().timeIntervalSince(start)
            if context.writes {
                try AtomicFile.writeJSON(SearchSummary(budget: settings.budget, seconds: seconds, evaluations: loop.records.count,
                                                       best: loop.best.map { .init(scheme: $0.scheme.description, parts: $0.parts) }), to: summaryURL)
            }
            found.append((id, loop.best.prefix(settings.candidates).map { ($0.scheme, $0.parts) }, seconds))
        }

        let L = stages.reduce(0, +)
        var landscape: Landscape? = nil
        if L <= settings.landscapeMaxBlocks {
            context.progress(.phase(number: 3, total: 5, "landscape: all \(1 << L) schemes through the supernet (for Top 5%?)"))
            var survey = LandscapeSurvey.Settings()
            survey.maxEnumerate = settings.landscapeMaxBlocks
            let evaluator = try SchemeSearch.makeEvaluator(trainer, bnRecalibrate: settings.bnRecalibrate, splitImages: false)
            landscape = try LandscapeSurvey.run(trainer: trainer, evaluator: evaluator,
                                                directory: root.child("landscape").path, settings: survey, context: context).landscape
        } else {
            context.progress(.phase(number: 3, total: 5, "landscape skipped: \(L) blocks > --landscape-max-blocks \(settings.landscapeMaxBlocks) (Top 5%? is '-')"))
        }

        let original = Scheme.all(false, stageSizes: stages), full = Scheme.all(true, stageSizes: stages)
        var unique: [Scheme] = [original, full]
        for f in found { for (s, _) in f.schemes where !unique.contains(s) { unique.append(s) } }
        let seedsText = settings.recipe.seeds > 1 ? " x \(settings.recipe.seeds) seeds" : ""
        context.progress(.phase(number: 4, total: 5, "training \(unique.count) distinct networks\(seedsText) from scratch, \(settings.recipe.epochs) epochs each"))
        var trained: [Scheme: [TrainingSummary]] = [:]
        for s in unique {
            let c = settings.recipe.network(s)
            trained[s] = try NetworkTraining.trainSeeds(c, seeds: settings.recipe.seeds, directory: root.child("train/\(s.bits.map { $0 ? "1" : "0" }.joined())"),
                                                        context: context, howToContinue: again) { k, outcome in
                context.progress(.line(NetworkTraining.line(s.description + (settings.recipe.seeds > 1 ? " seed \(Int(c.seed) + k)" : ""), outcome)))
            }.map(\.summary)
        }

        context.progress(.phase(number: 5, total: 5, "measuring parameters and inference time (batch 50, \(NetworkMeasurement.timingRounds) interleaved rounds)"))
        var entries: [NetworkMeasurement.Entry] = [.init(label: "original", scheme: original, trained: trained[original]!, candidate: false),
                                                   .init(label: "Full-SA", scheme: full, trained: trained[full]!, candidate: false)]
        var searched: [(RewardParts, Double)] = []
        for f in found {
            for (s, parts) in f.schemes {
                entries.append(.init(label: f.searcher, scheme: s, trained: trained[s]!, candidate: true))
                searched.append((parts, f.seconds))
            }
        }
        let supernet = try Supernet(trainer.net)
        let measured = try context.group.leaderOnly {  // timed alone; the other ranks wait
            try NetworkMeasurement.measure(entries, supernet: supernet, config: base, classes: trainer.source.train.classes, margin: settings.margin)
        }
        func top(_ s: String) -> String {
            guard let l = landscape, let entry = l.entries.first(where: { $0.scheme.description == s }) else { return "-" }
            return (l.isTop(accuracy: entry.accuracy) ? "yes" : "no") + " (rank \(l.rank(accuracy: entry.accuracy)))"
        }
        let rows = measured.enumerated().map { i, m in
            Row(network: m, supernetValAcc: i < 2 ? nil : searched[i - 2].0.accuracy, reward: i < 2 ? nil : searched[i - 2].0.reward,
                top5: top(m.scheme), searchSeconds: i < 2 ? nil : searched[i - 2].1)
        }
        let result = Result(settings: settings, rows: rows, landscapeSchemes: landscape?.entries.count)
        guard context.writes else { return result }
        try AtomicFile.write(report(result, samId: samId), to: root.child("compare.md"))
        try AtomicFile.writeJSON(result, to: root.child(Result.fileName))
        return result
    }

    /// The table as Markdown.
    public static func table(_ result: Result) -> String {
        var table = "| searcher | scheme | connection ratio | supernet val acc (%) | test accuracy (%) | parameters (M) | dT (%) [95% CI] | ticket? (acc. - Full-SA [95% CI]) | Top 5%? | search time |\n"
        table += "|---|---|---|---|---|---|---|---|---|---|\n"
        for r in result.rows {
            let m = r.network
            table += "| \(m.label) | \(m.scheme) | \(String(format: "%.2f", m.connectionRatio)) | \(r.supernetValAcc.map { String(format: "%.2f", $0) } ?? "-") | "
                + "\(m.accuracyText) | \(String(format: "%.4f", Double(m.parameters) / 1e6)) | \(m.incrementText) | \(m.verdictText) | \(r.top5) | "
                + "\(r.searchSeconds.map(formatDuration) ?? "-") |\n"
        }
        return table
    }

    static func report(_ result: Result, samId: String) -> String {
        let s = result.settings
        return """
        # lth4sa compare: \(s.recipe.base.model) + \(samId) (\(s.recipe.base.attach))

        Data \(s.recipe.base.data); supernet \(s.recipe.supernetEpochs) epochs (keep-prob \(s.recipe.keepProb)); every searcher scored \(s.budget) schemes through the same supernet with seed \(s.recipe.base.seed) and the same reward; its best \(s.candidates) scheme(s) by reward trained from scratch for \(s.recipe.epochs) epochs with \(s.recipe.seeds) seed(s) (test accuracy: mean ± sd).
        dT = inference-time increment over the original network (the deployed network: batch norms folded into the convolutions; forward, batch 50, median of \(NetworkMeasurement.timingRounds) interleaved rounds, 95% bootstrap interval over rounds). Ticket? follows `TicketRule` (README, "Is it a ticket?": \(TicketRule.ruleText(margin: s.margin, seeds: s.recipe.seeds))). Top 5%?: among the best 5% of all \(result.landscapeSchemes.map { "\($0)" } ?? "-") schemes by supernet validation accuracy (rank in parentheses). Search time: wall time of the searcher's search (fresh evaluation cache for each).

        \(table(result))
        """
    }
}
