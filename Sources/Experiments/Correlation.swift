import Checkpoint
import Foundation
import Models
import PluginHost
import Search
import Tensor
import Training

/// Does the supernet rank schemes the way stand-alone training does? K schemes drawn
/// stratified by connection ratio, plus Full-SA and the original network, are scored through
/// the supernet with its own BN statistics and with recalibrated ones, and each is trained
/// stand-alone with the run's recipe; Kendall's tau and Spearman's rho (bootstrap 95%
/// intervals) and the top-k overlap say how well each scoring predicts the stand-alone result.
///
/// Run directory: `supernet/` (a `run` directory's supernet is reused), `train/<bits>/`,
/// `correlate.json`, `correlate.md`, `scatter.svg`. Every training is resumable and reused.
public enum Correlation {
    /// Everything that defines a correlation study.
    public struct Settings: Codable, Equatable, Sendable {
        /// Base configuration, epochs, keep-prob and seeds of the stand-alone trainings (the
        /// reference is their mean test accuracy).
        public var recipe: Recipe
        /// The supernet strategies compared, each with its own supernet (default: the
        /// recipe's); the stand-alone trainings are shared.
        public var samplings: [SupernetSampling]
        /// Schemes drawn stratified by connection ratio (Full-SA and the original come on top).
        public var schemes = 12
        /// Mini-batches of the recalibrated scoring.
        public var bnRecalibrate = 10
        /// k of the top-k overlap.
        public var topK = 3
        /// Bootstrap resamples of the intervals.
        public var resamples = 2000
        public init(recipe: Recipe, samplings: [SupernetSampling]? = nil) {
            self.recipe = recipe
            self.samplings = samplings ?? [recipe.supernetSampling]
        }

        /// Throws naming the first setting out of range.
        public func validate() throws {
            try recipe.validate()
            guard !samplings.isEmpty else { throw LTHError("`supernetSampling` names no supernet strategy") }
            try SettingCheck.require([("schemes", schemes, 2), ("bnRecalibrate", bnRecalibrate, 1), ("topK", topK, 1), ("resamples", resamples, 100)])
        }
    }

    /// One scheme's supernet scores under one supernet strategy.
    public struct Scores: Codable, Equatable, Sendable {
        public let sampling: SupernetSampling
        /// Validation accuracy through the supernet with its own BN statistics.
        public let bnStatistics: Double
        /// Validation accuracy through the supernet with recalibrated BN statistics.
        public let recalibrated: Double
        /// Mean validation cross-entropy with the supernet's and with recalibrated statistics
        /// (lower is better: the scorings rank by its negative).
        public let bnStatisticsLoss: Double
        public let recalibratedLoss: Double
    }

    /// One scheme: its supernet scores (one per strategy) and its stand-alone accuracies.
    public struct Row: Codable, Equatable, Sendable {
        public let scheme: Scheme
        public let connectionRatio: Double
        public let scores: [Scores]
        /// Mean over seeds, and every seed's value.
        public let standAloneTestAccuracy: Double
        public let standAloneTestAccuracies: [Double]
        public let standAloneValidationAccuracy: Double?
    }

    /// How well one scoring of one supernet ranks the schemes (against stand-alone test accuracy).
    public struct Agreement: Codable, Equatable, Sendable {
        public let sampling: SupernetSampling
        public let scoring: String
        public let kendallTau: Estimate
        public let spearmanRho: Estimate
        public let topOverlap: Double
        /// Wall time of the supernet's training (its last session's, when it was resumed).
        public let supernetSeconds: Double?
    }

    /// `correlate.json`.
    public struct Result: Codable, Sendable {
        public let settings: Settings
        public let rows: [Row]
        public let agreements: [Agreement]
        /// Set when the stand-alone accuracies give nothing to rank (`nothingToRank`): the
        /// correlations are then those of noise.
        public let warning: String?
        /// How well the stand-alone results rank themselves: Kendall tau between the mean
        /// accuracies of the first and the second half of the seeds (nil with one seed). No
        /// scoring can be expected to agree with the stand-alone ranking much better than a
        /// second set of seeds does.
        public let splitHalfTau: Estimate?
        public static let fileName = "correlate.json"
    }

    /// Why a set of stand-alone results cannot rank schemes, or nil when it can: when the
    /// spread of the schemes' mean accuracies (max - min) is within 2 standard errors of a
    /// difference of two means (seeds' pooled spread, or the test set's binomial error with
    /// one seed), every order of them is as likely as another.
    public static func nothingToRank(_ accuracies: [[Double]], testImages: Int, classes: Int) -> String? {
        let means = accuracies.map(Statistics.mean)
        guard let lo = means.min(), let hi = means.max(), means.count > 1 else { return nil }
        let seeds = accuracies.map(\.count).min() ?? 1
        let variance: Double
        if seeds > 1 {
            variance = Statistics.mean(accuracies.map(Statistics.variance)) / Double(seeds)
        } else {
            let p = min(max(Statistics.mean(means) / 100, 0), 1)
            variance = testImages > 0 ? p * (1 - p) / Double(testImages) * 1e4 : 0
        }
        let noise = 2 * (2 * variance).squareRoot()
        guard hi - lo <= noise else { return nil }
        let chance = 100 / Double(max(classes, 1))
        let atChance = hi <= chance + noise ? String(format: ", all near chance (%.1f%%): the networks learned nothing", chance) : ""
        return String(format: "nothing to rank: the stand-alone accuracies (%.2f-%.2f%%) lie within their own noise (2 standard errors of a difference, %.2f points)%@; the correlations below are those of noise -- train longer (`epochs`) or with more seeds (`seeds`)",
                      lo, hi, noise, atChance)
    }

    /// Kendall tau (bootstrap 95% interval over schemes) between the mean accuracies of the
    /// first half of the seeds (rounded down) and of the rest; nil with fewer than 2 seeds.
    public static func splitHalf(_ accuracies: [[Double]], resamples: Int, seed: UInt64) -> Estimate? {
        let seeds = accuracies.map(\.count).min() ?? 0
        guard seeds >= 2, accuracies.count >= 3 else { return nil }
        let first = accuracies.map { Statistics.mean(Array($0.prefix(seeds / 2))) }
        let second = accuracies.map { Statistics.mean(Array($0[(seeds / 2)..<seeds])) }
        return RankCorrelation.bootstrap(first, second, resamples: resamples, seed: seed, RankCorrelation.kendallTau)
    }

    /// `count` schemes with evenly spread numbers of connected blocks (1 ... L-1), each a
    /// random scheme with that many blocks on, all distinct, drawn from `seed`.
    public static func stratifiedSchemes(stageSizes: [Int], count: Int, seed: UInt64) -> [Scheme] {
        let L = stageSizes.reduce(0, +)
        var rng = RNG(seed: seed ^ 0xC0AA_E1A7)
        var out: [Scheme] = [], seen = Set<[Bool]>()
        let possible = (1...max(L - 1, 1)).reduce(0.0) { $0 + binomial(L, $1) }
        let wanted = min(count, Int(min(possible, Double(Int.max / 2))))
        var j = 0
        while out.count < wanted && j < wanted * 50 {
            let on = L <= 1 ? 0 : 1 + (j % wanted) * (L - 1) / max(wanted, 1)
            j += 1
            var positions = Array(0..<L)
            rng.shuffle(&positions)
            var bits = [Bool](repeating: false, count: L)
            for p in positions.prefix(on) { bits[p] = true }
            if seen.insert(bits).inserted { out.append(Scheme(bits: bits, stageSizes: stageSizes)) }
        }
        return out
    }

    /// The name of the scoring with the supernet's own batch-norm statistics.
    public static let bnStatisticsScoring = "supernet BN statistics"

    static func binomial(_ n: Int, _ k: Int) -> Double { (0..<k).reduce(1.0) { $0 * Double(n - $1) / Double($1 + 1) } }

    /// The settings file of a correlation study's run directory (the resume rule of `Study`).
    public static let settingsFileName = "correlate-settings.json"

    /// Runs the study in `directory`; with `resume`, continues the one it holds, reusing every
    /// finished part (`Study`; a `run` directory's supernet is reused as it is).
    public static func run(_ settings: Settings, directory: String, resume: Bool, context: ExperimentContext) throws -> Result {
        try settings.validate()
        let base = settings.recipe.base
        let phaseNames = settings.samplings.flatMap { ["supernet \($0)", "score \($0)"] } + ["retrain", "agreement"]
        let study = try Study("correlate", settings: settings, settingsFile: settingsFileName, recipe: settings.recipe, directory: directory, resume: resume,
                              phases: phaseNames, context: context)
        let stages = study.stageSizes, samId = study.sam.id

        let schemes = [Scheme.all(false, stageSizes: stages), .all(true, stageSizes: stages)]
            + stratifiedSchemes(stageSizes: stages, count: settings.schemes, seed: base.seed)
        var scores: [[Scores]] = Array(repeating: [], count: schemes.count)
        var supernetSeconds: [Double?] = []
        var classes = 0
        for sampling in settings.samplings {
            var recipe = settings.recipe
            recipe.supernetSampling = sampling
            study.phase("supernet \(sampling)", "supernet (\(sampling), \(sampling.passesPerStep) pass(es) per step): \(base.model) + \(samId) (\(base.attach)), \(recipe.supernetEpochs) epochs")
            let supernets = try study.supernets(recipe)
            supernetSeconds.append(supernets.seconds)
            classes = supernets.fullSA.source.train.classes
            study.phase("score \(sampling)", "scoring \(schemes.count) schemes through the \(sampling) supernet, with its BN statistics and recalibrated on \(settings.bnRecalibrate) batches")
            let plain = try supernets.scores(schemes)
            let recalibrated = try supernets.scores(schemes, bnRecalibrate: settings.bnRecalibrate)
            for i in schemes.indices {
                scores[i].append(Scores(sampling: sampling, bnStatistics: plain.accuracies[i], recalibrated: recalibrated.accuracies[i],
                                        bnStatisticsLoss: plain.losses[i], recalibratedLoss: recalibrated.losses[i]))
            }
        }

        study.phase("retrain", study.trainingText(schemes.count).replacingOccurrences(of: "from scratch", with: "stand-alone"))
        let trainedByScheme = try study.train(schemes)
        let trained = schemes.map { trainedByScheme[$0]! }

        study.phase("agreement", "rank agreement (\(settings.resamples) bootstrap resamples)")
        let truth = trained.map { Statistics.mean($0.map(\.testAccuracy)) }
        func agreement(_ sampling: Int, _ name: String, _ scores: [Double]) -> Agreement {
            Agreement(sampling: settings.samplings[sampling], scoring: name,
                      kendallTau: RankCorrelation.bootstrap(scores, truth, resamples: settings.resamples, seed: base.seed, RankCorrelation.kendallTau),
                      spearmanRho: RankCorrelation.bootstrap(scores, truth, resamples: settings.resamples, seed: base.seed, RankCorrelation.spearmanRho),
                      topOverlap: RankCorrelation.topOverlap(scores, truth, k: settings.topK), supernetSeconds: supernetSeconds[sampling])
        }
        let rows = schemes.indices.map { i in
            Row(scheme: schemes[i], connectionRatio: schemes[i].connectionRatio, scores: scores[i],
                standAloneTestAccuracy: truth[i], standAloneTestAccuracies: trained[i].map(\.testAccuracy),
                standAloneValidationAccuracy: trained[i].compactMap(\.validationAccuracy).isEmpty ? nil : Statistics.mean(trained[i].compactMap(\.validationAccuracy)))
        }
        let warning = nothingToRank(trained.map { $0.map(\.testAccuracy) }, testImages: trained.first?.first?.testImages ?? 0, classes: classes)
        if let warning { context.progress(.line("warning: " + warning)) }
        let agreements = settings.samplings.indices.flatMap { k in
            [agreement(k, bnStatisticsScoring, scores.map { $0[k].bnStatistics }),
             agreement(k, "BN recalibrated (\(settings.bnRecalibrate) batches)", scores.map { $0[k].recalibrated }),
             agreement(k, "validation loss, supernet BN statistics", scores.map { -$0[k].bnStatisticsLoss }),
             agreement(k, "validation loss, BN recalibrated", scores.map { -$0[k].recalibratedLoss })]
        }
        let reliability = splitHalf(trained.map { $0.map(\.testAccuracy) }, resamples: settings.resamples, seed: base.seed)
        if let r = reliability {
            context.progress(.line(String(format: "split-half reliability of the stand-alone ranking: Kendall tau %.2f [%.2f, %.2f]", r.value, r.low, r.high)))
        }
        let result = Result(settings: settings, rows: rows, agreements: agreements, warning: warning, splitHalfTau: reliability)
        try study.writeJSON(result, to: Result.fileName)
        try study.write(report(result, samId: samId), to: "correlate.md")
        try study.write(CorrelationPlot.scatter(result, title: "\(base.model) + \(samId): supernet score vs stand-alone accuracy"), to: "scatter.svg")
        return result
    }

    /// The agreement table as Markdown (after the warning, when there is one).
    public static func table(_ result: Result) -> String {
        var t = result.warning.map { "**Warning: \($0).**\n\n" } ?? ""
        if let r = result.splitHalfTau {
            let s = result.settings.recipe.seeds
            t += String(format: "Split-half reliability of the stand-alone ranking (mean of the first %d seed(s) against the other %d): Kendall tau %.2f [%.2f, %.2f].\n\n",
                        s / 2, s - s / 2, r.value, r.low, r.high)
        }
        t += "| supernet sampling | scoring | Kendall tau [95% CI] | Spearman rho [95% CI] | top-\(result.settings.topK) overlap | supernet wall time |\n|---|---|---|---|---|---|\n"
        for a in result.agreements {
            t += String(format: "| %@ | %@ | %.2f [%.2f, %.2f] | %.2f [%.2f, %.2f] | %.2f | %@ |\n", a.sampling.rawValue, a.scoring,
                        a.kendallTau.value, a.kendallTau.low, a.kendallTau.high,
                        a.spearmanRho.value, a.spearmanRho.low, a.spearmanRho.high, a.topOverlap, a.supernetSeconds.map(formatDuration) ?? "-")
        }
        return t
    }

    static func report(_ result: Result, samId: String) -> String {
        let s = result.settings
        let columns = s.samplings.flatMap { ["\($0) supernet BN (%)", "\($0) recalibrated (%)"] }
        var rows = "| scheme | ratio | " + columns.joined(separator: " | ") + " | stand-alone test acc (%) |\n|---|---|"
            + String(repeating: "---|", count: columns.count) + "---|\n"
        for r in result.rows {
            rows += String(format: "| %@ | %.2f | ", r.scheme.description, r.connectionRatio)
                + r.scores.map { String(format: "%.2f | %.2f", $0.bnStatistics, $0.recalibrated) }.joined(separator: " | ")
                + String(format: " | %.2f |\n", r.standAloneTestAccuracy)
        }
        return """
        # lth4sa correlate: \(s.recipe.base.model) + \(samId) (\(s.recipe.base.attach))

        Data \(s.recipe.base.data); supernets of \(s.recipe.supernetEpochs) epochs (keep-prob \(s.recipe.keepProb)) trained with \(s.samplings.map(\.rawValue).joined(separator: ", ")) sampling; \(result.rows.count) schemes (the original, Full-SA and \(s.schemes) drawn stratified by connection ratio), each trained stand-alone for \(s.recipe.epochs) epochs with \(s.recipe.seeds) seed(s) from \(s.recipe.base.seed). Supernet scores are validation accuracies (and mean validation cross-entropies, lower ranking higher) through the supernet, with its own BN statistics and with statistics re-estimated on \(s.bnRecalibrate) training mini-batches per scheme; a few-shot supernet scores each scheme with the supernet of its split; the reference is the stand-alone test accuracy (mean over seeds). Intervals: percentile bootstrap over schemes (\(s.resamples) resamples).

        \(table(result))
        \(rows)
        """
    }
}

/// The scatter plot of `correlate`: supernet score (x) against stand-alone accuracy (y), one
/// colour per scoring.
enum CorrelationPlot {
    /// The two scorings of the supernet strategy whose best scoring ranks best (Kendall tau).
    static func scatter(_ result: Correlation.Result, title: String) -> String {
        let best = result.agreements.max { $0.kendallTau.value < $1.kendallTau.value }?.sampling ?? result.settings.samplings.first ?? .bernoulli
        let k = result.settings.samplings.firstIndex(of: best) ?? 0
        let series: [(label: String, color: String, x: (Correlation.Row) -> Double)] = [
            ("\(best): supernet BN statistics", "#1f77b4", { $0.scores[k].bnStatistics }),
            ("\(best): BN recalibrated", "#d62728", { $0.scores[k].recalibrated })]
        let xs = result.rows.flatMap { r in series.map { $0.x(r) } }, ys = result.rows.map(\.standAloneTestAccuracy)
        func padded(_ v: [Double]) -> ClosedRange<Double> {
            let lo = v.min() ?? 0, hi = v.max() ?? 1, pad = max((hi - lo) * 0.05, 0.5)
            return (lo - pad)...(hi + pad)
        }
        var c = SVGCanvas(x: padded(xs), y: padded(ys))
        let step = max(1, Int(((c.xRange.upperBound - c.xRange.lowerBound) / 8).rounded()))
        let ticks = stride(from: Int(c.xRange.lowerBound.rounded(.up)), through: Int(c.xRange.upperBound), by: step).map { (Double($0), "\($0)") }
        c.axes(title: title, xLabel: "supernet validation accuracy (%)", yLabel: "stand-alone test accuracy (%)", xTicks: ticks)
        for s in series {
            for r in result.rows { c.dot(s.x(r), r.standAloneTestAccuracy, radius: 4, fill: s.color, opacity: 0.8) }
        }
        // the original (row 0) and Full-SA (row 1) named beside both of their dots
        for (i, name) in [(0, "original"), (1, "Full-SA")] where i < result.rows.count {
            let r = result.rows[i]
            for s in series { c.text(name, x: c.px(s.x(r)) + 6, y: c.py(r.standAloneTestAccuracy) - 6, anchor: "start", size: 10, pixels: true) }
        }
        // the legend in the bottom margin, below the x axis: never over a point
        for (k, s) in series.enumerated() {
            let x = c.left + Double(k) * 230, y = c.height - 4
            c.add(String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%@\"/>", x + 4, y - 4, s.color))
            c.text(s.label, x: x + 12, y: y, anchor: "start", size: 11, pixels: true)
        }
        return c.svg
    }
}
