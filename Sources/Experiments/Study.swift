import Checkpoint
import Foundation
import Models
import PluginHost
import Tensor
import Training

/// What a network is in a study's table: the row's role, instead of its position.
public enum NetworkRole: Codable, Hashable, Sendable {
    /// The network without attention (every bit 0).
    case original
    /// Attention at every block (every bit 1): the reference a ticket must match.
    case fullSA
    /// A scheme a searcher found: the searcher's id, the search's seed and the scheme's rank
    /// among that search's retrained schemes (1 = its best by reward).
    case candidate(searcher: String, searchSeed: UInt64, rank: Int)

    /// Written as `original`, `full_sa`, `candidate` (run files use snake case).
    enum CodingKeys: String, CodingKey { case original, fullSA = "fullSa", candidate }

    /// Whether the ticket rule judges the network (a searched scheme).
    public var isCandidate: Bool { if case .candidate = self { return true } else { return false } }
}

/// The skeleton every study shares (`Pipeline`, `Comparison`, `Correlation`, and any new
/// one): it checks the SAM plugin once and keeps the resolved handle for every network, takes
/// the run directory's lock, applies the one resume rule, numbers the named phases, trains the
/// supernet(s) and the stand-alone networks in folders named by scheme, and measures a table.
///
/// Run directory: the study's settings file, `metrics.jsonl` (phases and trainings),
/// `supernet*/`, `train/<bits>/` (seed k > 0: `train/<bits>-seed<k>/`).
///
/// **Resume rule** (every study alike): a directory that already holds this study's settings
/// file is continued only when asked (`resume`); then every finished part whose settings
/// match is reused, a stopped training or search continues from its checkpoint, and the rest
/// runs. Without the settings file (a new directory, or a `run` directory whose supernet a
/// `correlate` reuses) the study starts.
public final class Study {
    /// The recipe of every network of the study.
    public let recipe: Recipe
    public let directory: URL
    public let context: ExperimentContext
    /// Blocks per stage of the recipe's model.
    public let stageSizes: [Int]
    /// The SAM every network carries, resolved once.
    public let sam: SAMHandle
    /// The names of the phases in order (`phase(_:_:)` numbers them).
    public let phases: [String]
    /// The study's log (`metrics.jsonl`) on the writing rank; nil elsewhere.
    public let log: MetricsLog?
    /// What a stop error tells the user to do.
    public let howToContinue: String
    private let lock: RunDirectoryLock?

    /// Opens (or creates) the study's run directory.
    /// - Parameters:
    ///   - name: what the study is called in messages ("pipeline", "compare", ...).
    ///   - settings: written to `settingsFile` (the record of what the directory holds).
    ///   - phases: the names of the phases, in the order they run.
    public init<Settings: Encodable>(_ name: String, settings: Settings, settingsFile: String, recipe: Recipe, directory: String, resume: Bool,
                                     phases: [String], context: ExperimentContext) throws {
        let root = URL(fileURLWithPath: directory)
        // decided by rank 0 for all: another rank looking later could see the file rank 0 writes below
        if try context.group.leaderOnly({ root.child(settingsFile).exists }) && !resume {
            throw LTHError("'\(directory)' already holds a \(name) study; continue it with `resume` or choose another directory")
        }
        self.recipe = recipe
        self.directory = root
        self.context = context
        self.phases = phases
        stageSizes = try ModelSpec(recipe.base.model).blocksPerStage
        sam = try SAMHandle(spec: recipe.base.sam ?? "se", options: recipe.base.samOptions)  // checked before any training
        howToContinue = "to continue, run the same study again with `resume` in '\(directory)'"
        lock = try context.lock(root)  // one writer per run directory, held while the study lives
        if context.writes {
            try AtomicFile.writeJSON(settings, to: root.child(settingsFile))
            log = try MetricsLog(path: root.child("metrics.jsonl").path)
        } else {
            log = nil
        }
    }

    /// Where a study of `kind` goes when no directory is given: `runs/<kind>-<model>-<SAM id
    /// from its descriptor>[-<extra>]-s<seed>`.
    public static func defaultDirectory(_ kind: String, recipe: Recipe, extra: String? = nil) throws -> String {
        let samId = try SAMPlugin(recipe.base.sam ?? "se", settings: recipe.base.samOptions).id
        return "runs/\(kind)-\(recipe.base.model)-\(samId)\(extra.map { "-" + $0 } ?? "")-s\(recipe.base.seed)"
    }

    /// Reports the start of phase `name` (one of `phases`) as "phase k/N: text".
    public func phase(_ name: String, _ text: String) {
        guard let k = phases.firstIndex(of: name) else { preconditionFailure("phase '\(name)' is not one of \(phases)") }
        context.progress(.phase(number: k + 1, total: phases.count, text))
    }

    /// The supernet of `recipe` (default: the study's) in its folder: trained, resumed or reused.
    public func supernet(_ recipe: Recipe? = nil) throws -> TrainedSupernet {
        let r = recipe ?? self.recipe
        return try SupernetTraining.train(r.supernet, directory: directory.child(r.supernetFolder).path, context: context,
                                          howToContinue: howToContinue, attach: sam.attach)
    }

    /// The supernet(s) of `recipe` (a few-shot recipe trains one per split).
    public func supernets(_ recipe: Recipe? = nil) throws -> SupernetSet {
        try SupernetSet.train(recipe ?? self.recipe, root: directory, context: context, howToContinue: howToContinue, attach: sam.attach)
    }

    /// The folder of the stand-alone network with `scheme`.
    public func folder(_ scheme: Scheme) -> URL { directory.child("train/" + scheme.bitString) }

    /// Trains every distinct scheme of `schemes` from scratch with the recipe's epochs and
    /// seeds (`train/<bits>`; each resumed or reused), reporting a line per network and
    /// logging it; `label` names a scheme in those lines. Returns every seed's summary by scheme.
    public func train(_ schemes: [Scheme], label: (Scheme) -> String = { $0.description }) throws -> [Scheme: [TrainingSummary]] {
        var trained: [Scheme: [TrainingSummary]] = [:]
        for s in schemes where trained[s] == nil {
            let c = recipe.network(s)
            let name = label(s)
            trained[s] = try NetworkTraining.trainSeeds(c, seeds: recipe.seeds, directory: folder(s), context: context, howToContinue: howToContinue,
                                                        attach: sam.attach) { k, outcome in
                if outcome.trainedNow {
                    log?.write(TrainedRecord(label: name, scheme: s, seed: c.seed &+ UInt64(k), seconds: outcome.summary.seconds,
                                             testAcc: outcome.summary.testAccuracy))
                }
                context.progress(.line(NetworkTraining.line(name + (recipe.seeds > 1 ? " seed \(c.seed &+ UInt64(k))" : ""), outcome)))
            }.map(\.summary)
        }
        return trained
    }

    /// "training N networks x S seeds from scratch, E epochs each".
    public func trainingText(_ count: Int, _ what: String = "networks") -> String {
        "training \(count) \(what)\(recipe.seeds > 1 ? " x \(recipe.seeds) seeds" : "") from scratch, \(recipe.epochs) epochs each"
    }

    /// The table: parameters counted on a network built with the SAM at every block, dT timed
    /// on rank 0 alone (the other ranks wait), candidates judged against Full-SA with the
    /// non-inferiority `margin`. `classes` defaults to what the trainings recorded.
    public func measure(_ entries: [NetworkMeasurement.Entry], margin: Double, classes: Int? = nil) throws -> [MeasuredNetwork] {
        guard let classes = classes ?? entries.lazy.compactMap({ $0.trained.first?.classes }).first else {
            throw LTHError("the trainings of '\(directory.path)' do not record their classes (written by an earlier version); give `classes`")
        }
        let counting = ResNet(try ModelSpec(recipe.base.model), classes: classes, seed: recipe.base.seed)
        _ = try sam.attach(recipe.supernet, to: counting)
        let supernet = try Supernet(counting)
        return try context.group.leaderOnly {
            try NetworkMeasurement.measure(entries, supernet: supernet, config: recipe.base, classes: classes, margin: margin)
        }
    }

    /// The measuring phase's text.
    public static let measuringText = "measuring parameters and inference time (batch 50, \(NetworkMeasurement.timingRounds) interleaved rounds)"

    /// Writes `text` to `name` in the run directory (atomically; the writing rank only).
    public func write(_ text: String, to name: String) throws {
        if context.writes { try AtomicFile.write(text, to: directory.child(name)) }
    }

    /// Writes `value` as JSON to `name` in the run directory (atomically; the writing rank only).
    public func writeJSON<T: Encodable>(_ value: T, to name: String) throws {
        if context.writes { try AtomicFile.writeJSON(value, to: directory.child(name)) }
    }

    deinit { withExtendedLifetime(lock) {} }
}

/// `metrics.jsonl` of a study: one network trained (a record per seed).
struct TrainedRecord: MetricsRecord {
    let kind = "phase", phase = "train"
    let label: String
    let scheme: Scheme
    let seed: UInt64
    let seconds: Double
    let testAcc: Double
}

extension Scheme {
    /// The bits without separators: "0110" (folder names).
    public var bitString: String { bits.map { $0 ? "1" : "0" }.joined() }
}
