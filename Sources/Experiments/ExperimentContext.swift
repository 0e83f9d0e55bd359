import Checkpoint
import Cluster
import Foundation
import Tensor
import Training

/// What a program hands the library when it runs an experiment: where progress goes, how
/// to ask for a stop and which processes work together. The library never prints and never
/// exits; it reports through `progress` and throws (`StoppedError` after a requested stop,
/// with everything up to then saved).
///
/// Under MPI every rank runs the same experiment with its own context: trainings are data
/// parallel, scheme evaluations split the validation images, timings run on rank 0 alone, and
/// only rank 0 writes files and reports progress.
public struct ExperimentContext {
    /// Receives phases, live status and finished lines; called on the working thread.
    public var progress: ProgressHandler
    /// Checked at every safe point (training step, search step, chunk of schemes).
    public var stop: StopToken
    /// The ranks running this experiment together (`SingleProcess()` when alone).
    public var group: ProcessGroup

    public init(progress: @escaping ProgressHandler = { _ in }, stop: StopToken = StopToken(), group: ProcessGroup = SingleProcess()) {
        self.progress = progress
        self.stop = stop
        self.group = group
    }

    /// Whether any rank was asked to stop (collective: all ranks call it at the same point).
    public func stopRequested() throws -> Bool { try group.any(stop.isRequested) }

    /// Whether this rank writes the experiment's files.
    var writes: Bool { group.isLeader }

    /// The run directory's lock on the writing rank (one writer per directory); nil elsewhere.
    public func lock(_ directory: URL) throws -> RunDirectoryLock? { writes ? try RunDirectoryLock(directory) : nil }

    /// A trainer wired to this context (progress and stop request).
    func wire(_ trainer: Trainer) {
        trainer.onProgress = progress
        trainer.stopToken = stop
    }
}

/// The median of `xs` (0 when empty).
public func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.isEmpty ? 0 : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
}

/// Peak resident set size of this process in bytes.
public func peakResidentBytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss * 1024
}

extension URL {
    /// `self/component`.
    func child(_ component: String) -> URL { appendingPathComponent(component) }
    /// Whether a file or folder exists at this path.
    var exists: Bool { FileManager.default.fileExists(atPath: path) }
}
