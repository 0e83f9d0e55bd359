import Checkpoint
import Foundation
import Models
import Search
import Tensor
import Training

/// The accuracy of every connection scheme through a trained supernet (or a sample per
/// connection ratio for large L): ranks, the Top set, connection scores, the paper's Figs. 2
/// and 3. Resumable: finished chunks are kept in `partial.json`, tied to the supernet
/// checkpoint they were computed with.
public enum LandscapeSurvey {
    /// What to evaluate and how to summarise it.
    public struct Settings: Sendable {
        /// Enumerate all 2^L schemes up to this many blocks; sample above it.
        public var maxEnumerate = 16
        /// Random schemes per number of connected blocks when sampling.
        public var perRatio = 50
        /// Share of the best (and worst) schemes in the Top set and the connection scores.
        public var fraction = 0.05
        /// Schemes to rank and mark in the figure, with their labels.
        public var marks: [(label: String, scheme: Scheme)] = []
        /// Evaluate only this many schemes, evenly spaced through the list (benchmarks).
        public var limit: Int? = nil
        /// Share the computation of common block prefixes (off: every scheme from the stem).
        public var sharePrefixes = true
        public init() {}

        /// Throws naming the first setting out of range.
        public func validate() throws {
            guard maxEnumerate >= 1 && maxEnumerate <= 24 else { throw LTHError("`maxEnumerate` must be in 1...24, got \(maxEnumerate)") }
            try SettingCheck.require("perRatio", perRatio, atLeast: 1)
            guard fraction > 0 && fraction <= 0.5 else { throw LTHError("`fraction` must be in (0, 0.5], got \(fraction)") }
            if let limit { try SettingCheck.require("limit", limit, atLeast: 1) }
        }
    }

    /// One scheme and its supernet validation accuracy.
    public struct SchemeAccuracy: Codable, Equatable, Sendable {
        public let scheme: String
        public let accuracy: Double
    }

    /// A marked scheme's place in the landscape.
    public struct Mark: Codable, Equatable, Sendable {
        public let label: String
        public let scheme: String
        public let accuracy: Double
        public let rank: Int
        public let top: Bool
    }

    /// `landscape.json`.
    public struct Report: Codable, Sendable {
        public let model: String
        public let sam: String
        public let attach: AttachMode
        public let stages: [Int]
        public let validationImages: Int
        public let enumerated: Bool
        public let perRatio: Int?
        public let schemes: Int
        public let secondsThisRun: Double
        public let blocksRunThisRun: Int
        public let schemesEvaluatedThisRun: Int
        public let sharePrefixes: Bool
        public let topFraction: Double
        public let topCount: Int
        public let topThreshold: Double
        public let distribution: [Landscape.RatioStatistics]
        public let best: [SchemeAccuracy]
        public let worst: [SchemeAccuracy]
        public let bestConnectionScores: [Double]
        public let worstConnectionScores: [Double]
        public let marks: [Mark]
        /// Every scheme's accuracy, by scheme text.
        public let accuracy: [String: Double]
        /// Whether the schemes listed are a `--limit` subset.
        public let limit: Int?
        /// Training mini-batches each scheme's BN statistics were re-estimated on (0 = none).
        public let bnRecalibrate: Int

        public static let fileName = "landscape.json"
    }

    /// The finished chunks of a landscape (`partial.json`).
    struct Partial: Codable {
        let supernet: String
        let accuracy: [String: Double]
    }

    /// The landscape and its report.
    public struct Result {
        public let landscape: Landscape
        public let report: Report
        /// Where landscape.json and the figures are.
        public let directory: URL
    }

    /// The landscape of the trained supernet in run directory `runDirectory` (its `sampling`
    /// one when it holds several), scored with the supernet's BN statistics or recalibrated on
    /// `bnRecalibrate` batches, in its own folder (`landscape[-noshare][-bn<N>]`, locked while
    /// it runs); `marks` are scheme texts to rank and mark. The ranks split the schemes.
    public static func run(in runDirectory: String, sampling: SupernetSampling?, marks: [String], bnRecalibrate: Int, settings: Settings,
                           context: ExperimentContext) throws -> Result {
        try settings.validate()
        try SettingCheck.require("bnRecalibrate", bnRecalibrate, atLeast: 0)
        let supernet = try SupernetTraining.trained(in: runDirectory, sampling: sampling, context: context)
        var settings = settings
        settings.marks = try marks.map { let s = try Scheme(parsing: $0, stageSizes: supernet.net.spec.blocksPerStage); return (s.description, s) }
        let name = (settings.sharePrefixes ? "landscape" : "landscape-noshare") + (bnRecalibrate > 0 ? "-bn\(bnRecalibrate)" : "")
        let directory = URL(fileURLWithPath: runDirectory).child(name)
        let lock = try context.lock(directory)
        defer { withExtendedLifetime(lock) {} }
        let evaluator = try SchemeSearch.makeEvaluator(supernet, bnRecalibrate: bnRecalibrate, splitImages: false)  // the ranks split the schemes
        return try run(supernet: supernet, evaluator: evaluator, directory: directory.path, settings: settings, context: context)
    }

    /// Evaluates the schemes in chunks of 256 (each saved before the next; a stop request is
    /// honoured between chunks with `StoppedError`), then writes landscape.json,
    /// distribution.svg and scores.svg into `directory`.
    ///
    /// With several ranks in `context.group` and an evaluator of this rank alone, every chunk is
    /// split into contiguous parts of the sorted list, one per rank (each evaluated with prefix
    /// sharing on all validation images), and the accuracies are gathered on every rank. An
    /// evaluator that splits the images over the ranks is used as it is.
    public static func run(supernet trainer: TrainedSupernet, evaluator: SchemeEvaluator, directory: String, settings: Settings,
                           context: ExperimentContext) throws -> Result {
        let dir = URL(fileURLWithPath: directory)
        if context.writes { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) }
        let stages = trainer.net.spec.blocksPerStage, L = stages.reduce(0, +)
        let enumerated = L <= settings.maxEnumerate
        var schemes = enumerated ? Landscape.allSchemes(stageSizes: stages)
                                 : Landscape.sampledSchemes(stageSizes: stages, perRatio: settings.perRatio, seed: trainer.config.seed)
        if let l = settings.limit, l < schemes.count {  // evenly spaced through the sorted list: representative of every ratio
            let all = schemes
            schemes = (0..<l).map { all[$0 * all.count / l] }
        }
        // results belong to one supernet checkpoint and validation set: anything else starts over
        let partialURL = dir.child("partial.json")
        let attributes = trainer.checkpoint.flatMap { try? FileManager.default.attributesOfItem(atPath: $0) }
        let identity = "\((attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)-\(attributes?[.size] as? Int ?? 0)-\(evaluator.validationCount)"
            + "-bn\(evaluator.calibration.count)"
        var accuracy: [String: Double] = [:]
        if let saved = AtomicFile.readJSON(Partial.self, from: partialURL), saved.supernet == identity { accuracy = saved.accuracy }
        let todo = schemes.filter { accuracy[$0.description] == nil }
        let start = Date()
        let blocksBefore = evaluator.blocksRun
        let splitSchemes = evaluator.group.size == 1 && context.group.size > 1
        var done = 0
        for chunk in stride(from: 0, to: todo.count, by: 256).map({ Array(todo[$0..<min($0 + 256, todo.count)]) }) {
            var scores: [Double]
            if splitSchemes {  // this rank's part of the chunk; the others' arrive through the sum (x + 0 is exact)
                let mine = context.group.share(of: chunk.count)
                scores = [Double](repeating: 0, count: chunk.count)
                scores.replaceSubrange(mine, with: try evaluator.accuracies(Array(chunk[mine]), sharePrefixes: settings.sharePrefixes))
                scores = try context.group.sum(scores)
            } else {
                scores = try evaluator.accuracies(chunk, sharePrefixes: settings.sharePrefixes)
            }
            for (s, a) in zip(chunk, scores) { accuracy[s.description] = a }
            done += chunk.count
            let elapsed = Date().timeIntervalSince(start)
            context.progress(.status(String(format: "landscape: %d/%d schemes (%.1f schemes/s, ETA %@)", schemes.count - todo.count + done, schemes.count,
                                            Double(done) / elapsed, formatDuration(elapsed / Double(done) * Double(todo.count - done)))))
            if context.writes { try AtomicFile.writeJSON(Partial(supernet: identity, accuracy: accuracy), to: partialURL) }
            if try context.stopRequested() && done < todo.count {
                throw StoppedError("landscape stopped after \(done) schemes; run the same command again to continue")
            }
        }
        let seconds = Date().timeIntervalSince(start)
        let landscape = Landscape(schemes.map { ($0, accuracy[$0.description]!) })
        var marks: [Mark] = []
        for m in settings.marks {
            let a = try accuracy[m.scheme.description] ?? evaluator.accuracies([m.scheme])[0]
            marks.append(Mark(label: m.label, scheme: m.scheme.description, accuracy: a, rank: landscape.rank(accuracy: a),
                              top: landscape.isTop(accuracy: a, fraction: settings.fraction)))
        }
        let fraction = settings.fraction
        let blocksRun = splitSchemes ? Int(try context.group.sum([Double(evaluator.blocksRun - blocksBefore)])[0]) : evaluator.blocksRun - blocksBefore
        let best = landscape.best(fraction), worst = landscape.worst(fraction)
        let report = Report(
            model: trainer.config.model, sam: trainer.config.sam ?? "", attach: trainer.config.attach, stages: stages,
            validationImages: evaluator.validationCount, enumerated: enumerated, perRatio: enumerated ? nil : settings.perRatio,
            schemes: schemes.count, secondsThisRun: seconds, blocksRunThisRun: blocksRun,
            schemesEvaluatedThisRun: todo.count, sharePrefixes: settings.sharePrefixes, topFraction: fraction,
            topCount: landscape.topCount(fraction), topThreshold: landscape.topThreshold(fraction), distribution: landscape.distribution(),
            best: best.map { SchemeAccuracy(scheme: $0.description, accuracy: accuracy[$0.description]!) },
            worst: worst.map { SchemeAccuracy(scheme: $0.description, accuracy: accuracy[$0.description]!) },
            bestConnectionScores: Landscape.connectionScores(best), worstConnectionScores: Landscape.connectionScores(worst),
            marks: marks, accuracy: Dictionary(uniqueKeysWithValues: landscape.entries.map { ($0.scheme.description, $0.accuracy) }),
            limit: settings.limit, bnRecalibrate: evaluator.calibration.count)
        let result = Result(landscape: landscape, report: report, directory: dir)
        guard context.writes else { return result }
        try AtomicFile.writeJSON(report, to: dir.child(Report.fileName))
        let name = "\(trainer.config.model) + \(URL(fileURLWithPath: trainer.config.sam ?? "").deletingPathExtension().lastPathComponent)"
        try AtomicFile.write(LandscapePlots.distribution(landscape, fraction: fraction, title: "\(name): \(schemes.count) schemes through the supernet",
                                                         marks: zip(settings.marks, marks).map { ($1.label, $0.scheme.connectionRatio, $1.accuracy) }),
                             to: dir.child("distribution.svg"))
        try AtomicFile.write(LandscapePlots.scores(best: report.bestConnectionScores, worst: report.worstConnectionScores, fraction: fraction, stageSizes: stages,
                                                   title: "\(name): connection scores of the best and worst \(LandscapePlots.percent(fraction))"),
                             to: dir.child("scores.svg"))
        return result
    }

    /// The summary lines a program shows after a survey.
    public static func summary(_ result: Result) -> String {
        let r = result.report, landscape = result.landscape
        let listed = r.enumerated ? "all" : "\(r.perRatio ?? 0) per ratio"
        let coverage = r.limit.map { "evenly spaced from \(listed) (`limit` \($0))" } ?? listed
        var text = String(format: "landscape: %d schemes of %@ (%@) on %d validation images in %@ (%d evaluated now, %d blocks run, prefix sharing %@, %@)\n",
                          r.schemes, r.model, coverage, r.validationImages, formatDuration(r.secondsThisRun), r.schemesEvaluatedThisRun,
                          r.blocksRunThisRun, r.sharePrefixes ? "on" : "off",
                          r.bnRecalibrate > 0 ? "BN recalibrated on \(r.bnRecalibrate) batches" : "supernet BN statistics")
        text += String(format: "best %@ %.2f%%, worst %@ %.2f%%, Top %g%% threshold %.2f%%\n", landscape.ranked.first!.scheme.description,
                       landscape.ranked.first!.accuracy, landscape.ranked.last!.scheme.description, landscape.ranked.last!.accuracy,
                       r.topFraction * 100, r.topThreshold)
        for m in r.marks {
            text += String(format: "%@: %.2f%%, rank %d of %d%@\n", m.label == m.scheme ? m.label : "\(m.label) \(m.scheme)", m.accuracy, m.rank, r.schemes,
                           m.top ? " (Top \(LandscapePlots.percent(r.topFraction)))" : "")
        }
        text += "written: \(result.directory.path)/landscape.json, distribution.svg, scores.svg"
        return text
    }
}
