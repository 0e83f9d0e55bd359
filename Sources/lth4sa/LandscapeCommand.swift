import ArgumentParser
import Foundation
import Models
import PluginHost
import Search
import Tensor
import Training

/// `lth4sa landscape`: the accuracy of every connection scheme through a trained supernet (or a
/// sample per connection ratio for large L), with ranks, the Top-5% set and connection scores,
/// as JSON and SVG (the paper's Figs. 2 and 3).
struct LandscapeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "landscape", abstract: "Evaluate every scheme (or a sample per ratio) through a trained supernet: distribution, ranks, connection scores.")
    @Option(name: .shortAndLong, help: "Run directory (its supernet/ must hold a trained supernet).") var output: String
    @Option(help: "Enumerate all 2^L schemes up to this many blocks; sample above it.") var maxEnumerate: Int = 16
    @Option(help: "Random schemes per number of connected blocks when sampling.") var perRatio: Int = 50
    @Option(help: "Scheme to rank and mark in the plot (repeatable).") var mark: [String] = []
    @Option(help: "Share of the best (and worst) schemes in the Top set and the connection scores.") var fraction: Double = 0.05
    @Option(help: "Evaluate only N schemes, evenly spaced through the sorted list (benchmarks).") var limit: Int?
    @Flag(help: "Evaluate every scheme from the stem (no prefix sharing; for benchmarks).") var noShare = false
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        guard maxEnumerate >= 1 && maxEnumerate <= 24 else { throw ValidationError("--max-enumerate must be in 1...24, got \(maxEnumerate)") }
        guard perRatio >= 1 else { throw ValidationError("--per-ratio must be at least 1, got \(perRatio)") }
        guard fraction > 0 && fraction <= 0.5 else { throw ValidationError("--fraction must be in (0, 0.5], got \(fraction)") }
        if let l = limit, l < 1 { throw ValidationError("--limit must be at least 1, got \(l)") }
    }

    func run() throws {
        runtime.apply()
        let trainer = try Stages.trainedSupernet(in: output)
        let stages = trainer.net.spec.blocksPerStage
        let marks = try mark.map { try Scheme(parsing: $0, stageSizes: stages) }
        let directory = URL(fileURLWithPath: output).appendingPathComponent(noShare ? "landscape-noshare" : "landscape").path
        let evaluator = try SearchStage.makeEvaluator(trainer)
        let result = try LandscapeStage.run(trainer: trainer, evaluator: evaluator, directory: directory, maxEnumerate: maxEnumerate, perRatio: perRatio,
                                            fraction: fraction, marks: marks.map { ($0.description, $0) }, limit: limit, sharePrefixes: !noShare)
        print(result.summary)
    }
}

/// The landscape stage, shared by `lth4sa landscape` and `lth4sa compare`.
enum LandscapeStage {
    /// The finished chunks of a landscape, tied to the supernet checkpoint they were computed with.
    struct Partial: Codable {
        let supernet: String
        let accuracy: [String: Double]
    }

    struct Result {
        let landscape: Landscape
        let summary: String
    }

    /// Evaluates the schemes in chunks (resumable: finished chunks are kept in
    /// `directory/partial.json`), then writes landscape.json, distribution.svg, scores.svg.
    static func run(trainer: Trainer, evaluator: SchemeEvaluator, directory: String, maxEnumerate: Int = 16, perRatio: Int = 50,
                    fraction: Double = 0.05, marks: [(String, Scheme)] = [], limit: Int? = nil, sharePrefixes: Bool = true) throws -> Result {
        let dir = URL(fileURLWithPath: directory)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let stages = trainer.net.spec.blocksPerStage, L = stages.reduce(0, +)
        let enumerated = L <= maxEnumerate
        var schemes = enumerated ? Landscape.allSchemes(stageSizes: stages)
                                 : Landscape.sampledSchemes(stageSizes: stages, perRatio: perRatio, seed: trainer.config.seed)
        if let l = limit, l < schemes.count {  // evenly spaced through the sorted list: representative of every ratio
            let all = schemes
            schemes = (0..<l).map { all[$0 * all.count / l] }
        }
        // resume finished chunks
        let partialURL = dir.appendingPathComponent("partial.json")
        var accuracy: [String: Double] = [:]
        // results belong to one supernet checkpoint and validation set: anything else starts over
        let attributes = trainer.checkpointPath.flatMap { try? FileManager.default.attributesOfItem(atPath: $0) }
        let identity = "\((attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)-\(attributes?[.size] as? Int ?? 0)-\(evaluator.validationCount)"
        if let data = try? Data(contentsOf: partialURL), let saved = try? JSONDecoder().decode(Partial.self, from: data), saved.supernet == identity {
            accuracy = saved.accuracy
        }
        let todo = schemes.filter { accuracy[$0.description] == nil }
        let line = ProgressLine()
        installStopHandler()
        let start = Date()
        let blocksBefore = evaluator.blocksRun
        var done = 0
        for chunk in stride(from: 0, to: todo.count, by: 256).map({ Array(todo[$0..<min($0 + 256, todo.count)]) }) {
            for (s, a) in zip(chunk, evaluator.accuracies(chunk, sharePrefixes: sharePrefixes)) { accuracy[s.description] = a }
            done += chunk.count
            let elapsed = Date().timeIntervalSince(start)
            line.update(String(format: "landscape: %d/%d schemes (%.1f schemes/s, ETA %@)", schemes.count - todo.count + done, schemes.count,
                               Double(done) / elapsed, formatDuration(elapsed / Double(done) * Double(todo.count - done))))
            try AtomicFile.write(try JSONEncoder().encode(Partial(supernet: identity, accuracy: accuracy)), to: partialURL)
            if Trainer.stopRequested {
                line.finish()
                print("landscape stopped after \(done) schemes; run the same command again to continue")
                throw ExitCode(130)
            }
        }
        line.finish()
        let seconds = Date().timeIntervalSince(start)
        let landscape = Landscape(schemes.map { ($0, accuracy[$0.description]!) })
        let markAccuracies = marks.map { m -> (String, Scheme, Double) in
            (m.0, m.1, accuracy[m.1.description] ?? evaluator.accuracies([m.1])[0])
        }
        let best = landscape.best(fraction), worst = landscape.worst(fraction)
        let bestScores = Landscape.connectionScores(best), worstScores = Landscape.connectionScores(worst)
        let threshold = landscape.topThreshold(fraction)
        let json: [String: Any] = [
            "model": trainer.config.model, "sam": trainer.config.sam ?? "", "attach": trainer.config.attach, "stages": stages,
            "validation_images": evaluator.validationCount, "enumerated": enumerated, "per_ratio": enumerated ? NSNull() : perRatio as Any,
            "schemes": schemes.count, "seconds_this_run": seconds, "blocks_run_this_run": evaluator.blocksRun - blocksBefore,
            "schemes_evaluated_this_run": todo.count, "share_prefixes": sharePrefixes, "top_fraction": fraction, "top_count": landscape.topCount(fraction),
            "top_threshold": threshold,
            "distribution": landscape.distribution().map { ["connected": $0.connected, "ratio": $0.ratio, "count": $0.count, "min": $0.min, "q1": $0.q1,
                                                             "median": $0.median, "q3": $0.q3, "max": $0.max, "mean": $0.mean] },
            "best": best.map { ["scheme": $0.description, "accuracy": accuracy[$0.description]!] },
            "worst": worst.map { ["scheme": $0.description, "accuracy": accuracy[$0.description]!] },
            "best_connection_scores": bestScores, "worst_connection_scores": worstScores,
            "marks": markAccuracies.map { ["label": $0.0, "scheme": $0.1.description, "accuracy": $0.2, "rank": landscape.rank(accuracy: $0.2),
                                           "top": landscape.isTop(accuracy: $0.2, fraction: fraction)] },
            "accuracy": Dictionary(uniqueKeysWithValues: landscape.entries.map { ($0.scheme.description, $0.accuracy) }),
        ]
        try AtomicFile.write(try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]),
                                  to: dir.appendingPathComponent("landscape.json"))
        let name = "\(trainer.config.model) + \(URL(fileURLWithPath: trainer.config.sam ?? "").deletingPathExtension().lastPathComponent)"
        try AtomicFile.write(Data(LandscapePlots.distribution(landscape, fraction: fraction, title: "\(name): \(schemes.count) schemes through the supernet",
                                                                   marks: markAccuracies.map { ($0.0, $0.1.connectionRatio, $0.2) }).utf8),
                                  to: dir.appendingPathComponent("distribution.svg"))
        try AtomicFile.write(Data(LandscapePlots.scores(best: bestScores, worst: worstScores, fraction: fraction, stageSizes: stages,
                                                             title: "\(name): connection scores of the best and worst \(LandscapePlots.percent(fraction))").utf8),
                                  to: dir.appendingPathComponent("scores.svg"))
        let listed = enumerated ? "all" : "\(perRatio) per ratio"
        let coverage = limit.map { "evenly spaced from \(listed)" + " (--limit \($0))" } ?? listed
        var summary = String(format: "landscape: %d schemes of %@ (%@) on %d validation images in %@ (%d evaluated now, %d blocks run, prefix sharing %@)\n",
                             schemes.count, trainer.config.model, coverage, evaluator.validationCount,
                             formatDuration(seconds), todo.count, evaluator.blocksRun - blocksBefore, sharePrefixes ? "on" : "off")
        summary += String(format: "best %@ %.2f%%, worst %@ %.2f%%, Top %g%% threshold %.2f%%\n", landscape.ranked.first!.scheme.description,
                          landscape.ranked.first!.accuracy, landscape.ranked.last!.scheme.description, landscape.ranked.last!.accuracy, fraction * 100, threshold)
        for m in markAccuracies {
            summary += String(format: "%@: %.2f%%, rank %d of %d%@\n", m.0 == m.1.description ? m.0 : "\(m.0) \(m.1)", m.2, landscape.rank(accuracy: m.2), schemes.count,
                              landscape.isTop(accuracy: m.2, fraction: fraction) ? " (Top \(LandscapePlots.percent(fraction)))" : "")
        }
        summary += "written: \(dir.path)/landscape.json, distribution.svg, scores.svg"
        return Result(landscape: landscape, summary: summary)
    }
}
