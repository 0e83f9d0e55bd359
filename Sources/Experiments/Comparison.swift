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
        /// Searches per searcher on the same supernet, with seeds seed, seed + 1, ... (the
        /// searcher's and the reward's randomness; the retraining seeds stay the recipe's).
        public var searchSeeds = 1
        /// What the reward's accuracy term measures (nil = accuracy, the paper's).
        public var score: SchemeScore?

        public init(recipe: Recipe) { self.recipe = recipe }

        /// Throws naming the first setting out of range.
        public func validate() throws {
            try recipe.validate()
            guard !searchers.isEmpty else { throw LTHError("no searcher to compare") }
            try SettingCheck.require([("budget", budget, 1), ("candidates", candidates, 1), ("searchSeeds", searchSeeds, 1),
                                ("landscapeMaxBlocks", landscapeMaxBlocks, 0), ("bnRecalibrate", bnRecalibrate, 0)])
            try reward.validate()
            try SettingCheck.margin(margin)
            guard recipe.supernetSampling != .fewshot else {
                throw LTHError("`supernetSampling` fewshot is measured by `correlate` only; searches run on one supernet (choose bernoulli, sandwich, fair or distill)")
            }
        }
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
            public let scheme: Scheme
            public let parts: RewardParts
        }
        public let budget: Int
        /// The scoring and search seed it ran with (nil in files of earlier versions: not reused).
        public let bnRecalibrate: Int?
        public let score: SchemeScore?
        public let seed: UInt64?
        public let seconds: Double
        public let evaluations: Int
        /// Every kept best scheme (a re-run may ask for more candidates).
        public let best: [Best]
        public static let fileName = "search-summary.json"
    }

    /// One row of the table: the measured network (its label is the searcher's id, with the
    /// search seed when there are several, or "original" / "Full-SA") and what the search said of it.
    public struct Row: Codable, Equatable, Sendable {
        public let network: MeasuredNetwork
        public let supernetValAcc: Double?
        public let reward: Double?
        /// "yes (rank 3)", "no (rank 40)" or "-" without a landscape.
        public let top5: String
        public let searchSeconds: Double?
        /// The searcher's id and search seed (nil for the original and Full-SA).
        public let searcher: String?
        public let searchSeed: UInt64?
    }

    /// One searcher over its search seeds: the stand-alone accuracy of its pick (its best
    /// scheme by reward; mean over the retraining seeds) per search seed, against Random
    /// search's pick with the same search seed and budget, and the regret to the best scheme
    /// any network of the study reached stand-alone.
    public struct SearcherSummary: Codable, Equatable, Sendable {
        public let searcher: String
        /// Per search seed, in seed order: the mean over the retraining seeds, and every one.
        public let pickAccuracies: [Double]
        public let pickSeedAccuracies: [[Double]]
        public let picks: [Scheme]
        /// Mean and sample standard deviation over search seeds.
        public let meanAccuracy: Double
        public let accuracySpread: Double
        /// (this pick - Random's pick), paired over search seeds and retraining seeds
        /// (`AccuracyComparison(searchSeeds:_:testImages:)`); nil for Random itself or without
        /// Random in the study.
        public let versusRandom: AccuracyComparison?
        /// Mean over search seeds of (best stand-alone accuracy of the study - pick's).
        public let regret: Double
    }

    /// `compare.json`.
    public struct Result: Codable, Sendable {
        public let settings: Settings
        public let rows: [Row]
        /// Schemes in the landscape (nil when it was skipped).
        public let landscapeSchemes: Int?
        /// Every searcher over its search seeds (the pick's accuracy, Random, regret).
        public let searchers: [SearcherSummary]?
        /// The best stand-alone mean accuracy among the study's networks, and its scheme.
        public let bestStandAlone: Double?
        public let bestScheme: Scheme?
        public static let fileName = "compare.json"
    }

    /// The searchers `specs` (paths or ids) with their options: `idOptions` are `id:key=value`,
    /// each going to the searcher whose descriptor id is `id` (refused when none is).
    public static func searcherChoices(_ specs: [String], idOptions: [String], stageSizes: [Int]) throws -> [SearcherChoice] {
        let ids = try specs.map { try searcherId($0, stageSizes: stageSizes) }
        for o in idOptions where !ids.contains(String(o.prefix { $0 != ":" })) {
            throw LTHError("`searcherOptions` '\(o)' names no searcher of the compared ones (\(ids.joined(separator: ",")))")
        }
        return zip(specs, ids).map { spec, id in
            .init(spec: spec, options: idOptions.filter { $0.hasPrefix(id + ":") }.map { String($0.dropFirst(id.count + 1)) })
        }
    }

    /// The short id of a searcher from its descriptor.
    public static func searcherId(_ spec: String, stageSizes: [Int]) throws -> String {
        try SchemeSearch.check(spec, options: [], stageSizes: stageSizes)
    }

    /// The settings file of a comparison's run directory (the resume rule of `Study`).
    public static let settingsFileName = "compare-settings.json"

    /// Runs the comparison in `directory`; with `resume`, continues the one it holds, reusing
    /// every finished part (`Study`).
    public static func run(_ settings: Settings, directory: String, resume: Bool, context: ExperimentContext) throws -> Result {
        try settings.validate()
        let stages = try ModelSpec(settings.recipe.base.model).blocksPerStage
        // every plugin and option is checked before any training
        var ids: [String] = []
        for s in settings.searchers { ids.append(try SchemeSearch.check(s.spec, options: s.options, stageSizes: stages)) }
        guard Set(ids).count == ids.count else { throw LTHError("the searchers \(ids.joined(separator: ",")) name one searcher twice") }
        let study = try Study("compare", settings: settings, settingsFile: settingsFileName, recipe: settings.recipe, directory: directory, resume: resume,
                              phases: ["supernet", "search", "landscape", "retrain", "measure"], context: context)
        let base = settings.recipe.base, samId = study.sam.id

        study.phase("supernet", "supernet: \(base.model) + \(samId) (\(base.attach)), \(settings.recipe.supernetEpochs) epochs, \(settings.recipe.supernetSampling) sampling, keep-prob \(settings.recipe.keepProb)")
        let trainer = try study.supernet()

        let seedsSearched = settings.searchSeeds > 1 ? ", \(settings.searchSeeds) search seeds from \(base.seed)" : ", seed \(base.seed)"
        study.phase("search", "searching: \(ids.joined(separator: ", ")), \(settings.budget) schemes scored each\(seedsSearched)")
        var found: [(searcher: String, searchSeed: UInt64, schemes: [(Scheme, RewardParts)], seconds: Double)] = []
        for (s, id) in zip(settings.searchers, ids) {
            for k in 0..<max(settings.searchSeeds, 1) {
                let seed = base.seed + UInt64(k)
                let r = try search(s, id: id, seed: seed, directory: study.directory.child("search-\(id)" + (k > 0 ? "-seed\(k)" : "")), trainer: trainer,
                                   settings: settings, context: context, howToContinue: study.howToContinue)
                found.append((id, seed, r.schemes, r.seconds))
            }
        }

        let L = stages.reduce(0, +)
        var landscape: Landscape? = nil
        if L <= settings.landscapeMaxBlocks {
            study.phase("landscape", "landscape: all \(1 << L) schemes through the supernet (for Top 5%?)")
            var survey = LandscapeSurvey.Settings()
            survey.maxEnumerate = settings.landscapeMaxBlocks
            let evaluator = try SchemeSearch.makeEvaluator(trainer, bnRecalibrate: settings.bnRecalibrate, splitImages: false)
            landscape = try LandscapeSurvey.run(supernet: trainer, evaluator: evaluator,
                                                directory: study.directory.child("landscape").path, settings: survey, context: context).landscape
        } else {
            study.phase("landscape", "landscape skipped: \(L) blocks > `landscapeMaxBlocks` \(settings.landscapeMaxBlocks) (Top 5%? is '-')")
        }

        let original = Scheme.all(false, stageSizes: stages), full = Scheme.all(true, stageSizes: stages)
        var entries: [(label: String, role: NetworkRole, scheme: Scheme, parts: RewardParts?, seconds: Double?)] =
            [("original", .original, original, nil, nil), ("Full-SA", .fullSA, full, nil, nil)]
        for f in found {
            for (rank, (s, parts)) in f.schemes.enumerated() {
                let label = settings.searchSeeds > 1 ? "\(f.searcher) (search seed \(f.searchSeed))" : f.searcher
                entries.append((label, .candidate(searcher: f.searcher, searchSeed: f.searchSeed, rank: rank + 1), s, parts, f.seconds))
            }
        }
        let schemes = entries.map(\.scheme)
        study.phase("retrain", study.trainingText(Set(schemes).count, "distinct networks"))
        let trained = try study.train(schemes)

        study.phase("measure", Study.measuringText)
        let measured = try study.measure(entries.map { .init(label: $0.label, role: $0.role, scheme: $0.scheme, trained: trained[$0.scheme]!) },
                                         margin: settings.margin, classes: trainer.source.train.classes)
        let supernetAccuracy = Dictionary(landscape?.entries.map { ($0.scheme, $0.accuracy) } ?? [], uniquingKeysWith: { a, _ in a })
        func top(_ s: Scheme) -> String {
            guard let l = landscape, let accuracy = supernetAccuracy[s] else { return "-" }
            return (l.isTop(accuracy: accuracy) ? "yes" : "no") + " (rank \(l.rank(accuracy: accuracy)))"
        }
        let rows = zip(entries, measured).map { e, m in
            var searcher: String? = nil, searchSeed: UInt64? = nil
            if case .candidate(let id, let seed, _) = e.role { (searcher, searchSeed) = (id, seed) }
            return Row(network: m, supernetValAcc: e.parts?.accuracy, reward: e.parts?.reward, top5: top(m.scheme), searchSeconds: e.seconds,
                       searcher: searcher, searchSeed: searchSeed)
        }
        let seedAccuracies = trained.mapValues { $0.map(\.testAccuracy) }
        let best = seedAccuracies.mapValues(Statistics.mean).max { $0.value < $1.value || ($0.value == $1.value && $0.key.description > $1.key.description) }
        let picks = ids.map { id in found.filter { $0.searcher == id }.compactMap { $0.schemes.first?.0 } }
        let randomPicks = ids.firstIndex(of: "random").map { picks[$0] }
        let summaries = zip(ids, picks).map { id, p in
            searcherSummary(id, picks: p.map { ($0, seedAccuracies[$0]!) },
                            random: id == "random" ? nil : randomPicks?.map { seedAccuracies[$0]! },
                            best: best?.value ?? 0, testImages: trained[original]!.first?.testImages ?? 0)
        }
        let result = Result(settings: settings, rows: rows, landscapeSchemes: landscape?.entries.count, searchers: summaries,
                            bestStandAlone: best?.value, bestScheme: best?.key)
        try study.write(report(result, samId: samId), to: "compare.md")
        try study.writeJSON(result, to: Result.fileName)
        return result
    }

    /// One searcher's picks (scheme and stand-alone accuracies of every retraining seed, per
    /// search seed) against Random's with the same search seeds (paired over both seeds), and
    /// their regret to `best`.
    public static func searcherSummary(_ id: String, picks: [(scheme: Scheme, accuracies: [Double])], random: [[Double]]?, best: Double,
                                       testImages: Int) -> SearcherSummary {
        let means = picks.map { Statistics.mean($0.accuracies) }
        return SearcherSummary(searcher: id, pickAccuracies: means, pickSeedAccuracies: picks.map(\.accuracies), picks: picks.map(\.scheme),
                               meanAccuracy: Statistics.mean(means), accuracySpread: Statistics.standardDeviation(means),
                               versusRandom: random.map { AccuracyComparison(searchSeeds: picks.map(\.accuracies), $0, testImages: testImages) },
                               regret: Statistics.mean(means.map { best - $0 }))
    }

    /// Runs (or reuses, or continues) one search of `choice` with `seed` in `directory`;
    /// returns its best `settings.candidates` schemes and its wall time.
    static func search(_ choice: SearcherChoice, id: String, seed: UInt64, directory dir: URL, trainer: TrainedSupernet, settings: Settings,
                       context: ExperimentContext, howToContinue again: String) throws -> (schemes: [(Scheme, RewardParts)], seconds: Double) {
        let stages = trainer.net.spec.blocksPerStage
        let name = settings.searchSeeds > 1 ? "\(id) (search seed \(seed))" : id
        if context.writes { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) }
        let summaryURL = dir.child(SearchSummary.fileName)
        if let done = AtomicFile.readJSON(SearchSummary.self, from: summaryURL), done.budget == settings.budget,
           done.bnRecalibrate == settings.bnRecalibrate, (done.score ?? .accuracy) == (settings.score ?? .accuracy), done.seed == seed {
            context.progress(.line("   \(name): done before (\(formatDuration(done.seconds)))"))
            return (try done.best.prefix(settings.candidates).map { (try $0.scheme.fitted(to: stages), $0.parts) }, done.seconds)
        }
        // a search stopped before continues from its checkpoint; its wall time adds up
        let elapsedURL = dir.child("elapsed.json")
        // a search finished with other settings starts over; a stopped one with these continues
        let stateExists = dir.child("search-state.json").exists && !summaryURL.exists
        let before = stateExists ? (AtomicFile.readJSON([String: Double].self, from: elapsedURL)?["seconds"] ?? 0) : 0
        let start = Date()
        let loop: SearchLoop
        do {
            // a fresh evaluator per search: no searcher profits from another's cache in its wall time
            loop = try SchemeSearch.run(supernet: trainer, directory: dir.path,
                                        settings: .init(searcher: choice.spec, options: choice.options, steps: settings.budget, evaluations: settings.budget,
                                                        reward: settings.reward, bnRecalibrate: settings.bnRecalibrate, seed: seed,
                                                        score: settings.score),
                                        resume: stateExists, context: context, howToContinue: again)
        } catch {
            if context.writes { try? AtomicFile.writeJSON(["seconds": before + Date().timeIntervalSince(start)], to: elapsedURL) }
            throw error
        }
        let seconds = before + Date().timeIntervalSince(start)
        if context.writes {
            try AtomicFile.writeJSON(SearchSummary(budget: settings.budget, bnRecalibrate: settings.bnRecalibrate, score: settings.score, seed: seed,
                                                   seconds: seconds, evaluations: loop.records.count,
                                                   best: loop.best.map { .init(scheme: $0.scheme, parts: $0.parts) }), to: summaryURL)
        }
        return (loop.best.prefix(settings.candidates).map { ($0.scheme, $0.parts) }, seconds)
    }

    /// The searchers over their search seeds as Markdown.
    public static func searcherTable(_ result: Result) -> String {
        guard let summaries = result.searchers, !summaries.isEmpty else { return "" }
        var t = "| searcher | picks (per search seed) | pick's stand-alone test acc. (%), mean ± sd over search seeds | - Random's pick [95% CI] | regret to the best (\(result.bestScheme?.description ?? "-"), \(result.bestStandAlone.map { String(format: "%.2f", $0) } ?? "-")%) |\n"
        t += "|---|---|---|---|---|\n"
        for s in summaries {
            let versus = s.versusRandom.map { "\($0.text) (\($0.method.rawValue))" } ?? "-"
            t += String(format: "| %@ | %@ | %.2f ± %.2f | %@ | %.2f |\n", s.searcher, s.picks.map(\.description).joined(separator: ", "), s.meanAccuracy, s.accuracySpread,
                        versus, s.regret)
        }
        return t
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

        Data \(s.recipe.base.data); supernet \(s.recipe.supernetEpochs) epochs (\(s.recipe.supernetSampling) sampling, keep-prob \(s.recipe.keepProb)); every searcher scored \(s.budget) schemes through the same supernet (validation \(s.score ?? .accuracy)\(s.bnRecalibrate > 0 ? ", BN statistics recalibrated on \(s.bnRecalibrate) batches" : "")) with seed \(s.recipe.base.seed) and the same reward; its best \(s.candidates) scheme(s) by reward trained from scratch for \(s.recipe.epochs) epochs with \(s.recipe.seeds) seed(s) (test accuracy: mean ± sd).
        dT = inference-time increment over the original network (the deployed network: batch norms folded into the convolutions; forward, batch 50, median of \(NetworkMeasurement.timingRounds) interleaved rounds, 95% bootstrap interval over rounds). Ticket? follows `TicketRule` (README, "Is it a ticket?": \(TicketRule.ruleText(margin: s.margin, seeds: s.recipe.seeds))). Top 5%?: among the best 5% of all \(result.landscapeSchemes.map { "\($0)" } ?? "-") schemes by supernet validation accuracy (rank in parentheses). Search time: wall time of the searcher's search (fresh evaluation cache for each).

        \(table(result))
        ## Searchers over search seeds

        Each searcher searched \(s.searchSeeds) time(s) on the same supernet (search seeds \(s.recipe.base.seed)...\(s.recipe.base.seed + UInt64(max(s.searchSeeds, 1) - 1))); its pick is its best scheme by reward, its accuracy the mean over the \(s.recipe.seeds) retraining seed(s). "- Random's pick": the difference to Random search's pick with the same search seed and budget, paired over search seeds and retraining seeds: mean ± t(0.975, K - 1) sqrt(v / K) over K search seeds, v the larger of the search seeds' variance and the pooled retraining-seed variance / S (one search seed: the retraining seeds' paired t; one of each: the test set's binomial error). Regret: the study's best stand-alone accuracy minus the pick's, mean over search seeds.

        \(searcherTable(result))
        """
    }
}
