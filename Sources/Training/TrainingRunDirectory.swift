import Checkpoint
import Cluster
import Foundation
import Tensor

/// A training's run directory: one writer (the lock, on the writing rank), recovered to its
/// newest complete checkpoint pair when opened; `config.json`, `metrics.jsonl`,
/// `checkpoint.safetensors` (+ `.optim`).
public final class TrainingRunDirectory {
    public let url: URL
    /// The path as given (in messages).
    public let path: String
    /// Held while the directory is open: no second writer.
    private let lock: RunDirectoryLock?
    private let group: ProcessGroup

    public var checkpointPath: String { url.appendingPathComponent("checkpoint.safetensors").path }
    public var optimizerPath: String { url.appendingPathComponent("checkpoint.optim.safetensors").path }
    public var holdsCheckpoint: Bool { FileManager.default.fileExists(atPath: checkpointPath) }

    /// Takes the directory (collective: the leader locks and recovers, the others wait).
    public init(_ path: String, group: ProcessGroup) throws {
        url = URL(fileURLWithPath: path)
        self.path = path
        self.group = group
        var lock: RunDirectoryLock? = nil
        if group.isLeader {  // before anything is read or written: one writer per directory
            lock = try RunDirectoryLock(url)
            if FileManager.default.fileExists(atPath: url.path) { try CheckpointSet(directory: url).recover() }
        }
        self.lock = lock
        try group.barrier()  // the other ranks read only what the leader has recovered
    }

    /// The configuration a run continues with: with `resume`, the saved run's own (only its
    /// epoch budget may grow, to `config.epochs`), after checking it is the same kind of run;
    /// without, `config`, refused when the directory already holds a run.
    public func configuration(_ config: RunConfig, resume: Bool) throws -> RunConfig {
        let d = path
        guard resume else {
            if holdsCheckpoint { throw LTHError("'\(d)' already holds a run; pass `resume` to continue it or choose another `directory`") }
            return config
        }
        guard holdsCheckpoint else { throw LTHError("`resume`: no checkpoint in '\(d)' (expected \(checkpointPath))") }
        var saved: RunConfig
        do { saved = try TrainingCheckpointMetadata(path: checkpointPath).config } catch let e as LTHError {
            throw LTHError("`resume`: \(e.message); it cannot be resumed")
        }
        if saved.model != config.model || saved.data != config.data {
            throw LTHError("run directory '\(d)' is a run of \(saved.model) on \(saved.data), not \(config.model) on \(config.data)")
        }
        if (saved.sam == nil) != (config.sam == nil) {
            throw LTHError("run directory '\(d)' was trained \(saved.sam.map { "with SAM \($0)" } ?? "without a SAM"); pass the same `sam` to resume it")
        }
        if (saved.supernetSampling ?? .bernoulli) != (config.supernetSampling ?? .bernoulli) && config.keepProb != nil {
            throw LTHError("run directory '\(d)' holds a supernet trained with `supernetSampling` \(saved.supernetSampling ?? .bernoulli), not \(config.supernetSampling ?? .bernoulli); pass the same to resume it or choose another `directory`")
        }
        saved.epochs = max(config.epochs, saved.epochs)
        return saved
    }

    /// Creates the folder (leader).
    public func create() throws {
        if group.isLeader { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) }
    }

    /// Once a run has started or resumed: writes `config.json` and opens `metrics.jsonl` (the
    /// leader; nil elsewhere), cut back to the checkpoint's position `resumedAt` (steps redone
    /// are not logged twice) or started afresh.
    public func begin(_ config: RunConfig, resumedAt position: (epoch: Int, step: Int)?) throws -> MetricsLog? {
        guard group.isLeader else { return nil }
        try SafeTensors.writeAtomically(Data(try config.json.utf8), to: url.appendingPathComponent("config.json").path)
        let log = url.appendingPathComponent("metrics.jsonl").path
        if let (e, s) = position {
            try MetricsLog.cut(path: log) { r in
                let re = r.epoch ?? 0, rs = r.step ?? 0
                switch r.kind {
                case "epoch": return re <= e
                case "step", "interrupted": return re < e || (re == e && rs <= s)
                default: return true
                }
            }
        } else {  // a fresh run starts a fresh log (a run killed before its first checkpoint leaves one behind)
            try? FileManager.default.removeItem(atPath: log)
        }
        return try MetricsLog(path: log)
    }

    /// Writes weights and optimizer state as one unit (`CheckpointSet`): after a kill at any
    /// moment the directory holds this pair or the previous one, never a mix. Leader only.
    public func commit(writeModel: (String) throws -> Void, writeOptimizer: (String) throws -> Void) throws {
        try CheckpointSet(directory: url).commit(writeModel: writeModel, writeOptimizer: writeOptimizer)
    }

    deinit { withExtendedLifetime(lock) {} }
}
