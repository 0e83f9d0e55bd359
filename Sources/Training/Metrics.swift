import Checkpoint
import Foundation
import Tensor

/// One line of a `metrics.jsonl`: a typed record whose `kind` says what it is ("step",
/// "epoch", "interrupted", "phase", ...). Field names are written in snake case
/// (`trainLoss` -> `train_loss`); nil fields are left out.
public protocol MetricsRecord: Encodable {
    var kind: String { get }
}

/// Where a record of a training log stands: what `MetricsLog.cut` reads back.
public struct MetricsPosition: Decodable, Sendable {
    public let kind: String?
    public let epoch: Int?
    public let step: Int?
}

/// Appends one JSON object per line to `metrics.jsonl`, flushed after every record so that a
/// killed run keeps everything logged so far. Not thread-safe: one writer (the working thread).
public final class MetricsLog {
    private let handle: FileHandle
    private let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.keyEncodingStrategy = .convertToSnakeCase
        return e
    }()

    public init(path: String) throws {
        if !FileManager.default.fileExists(atPath: path) {
            FileManager.default.createFile(atPath: path, contents: nil)
        }
        guard let h = FileHandle(forWritingAtPath: path) else { throw LTHError("cannot open '\(path)' for writing") }
        h.seekToEndOfFile()
        handle = h
    }

    /// Appends `record` (a record JSON cannot hold, e.g. one with NaN, is left out).
    public func write<Record: MetricsRecord>(_ record: Record) {
        guard let data = try? encoder.encode(record) else { return }
        handle.write(data)
        handle.write(Data("\n".utf8))
    }

    deinit { try? handle.close() }

    /// Rewrites the log at `path` (atomically) with only the records `keep` accepts (given
    /// each record's position); a torn last line (a kill in the middle of a write) is dropped
    /// too. Used on resume, so the log ends where the checkpoint does and the resumed steps are
    /// not logged twice.
    public static func cut(path: String, keep: (MetricsPosition) -> Bool) throws {
        guard let data = FileManager.default.contents(atPath: path) else { return }
        var kept = Data()
        let decoder = JSONDecoder()
        for line in data.split(separator: UInt8(ascii: "\n")) {
            guard let position = try? decoder.decode(MetricsPosition.self, from: Data(line)), keep(position) else { continue }
            kept.append(Data(line))
            kept.append(UInt8(ascii: "\n"))
        }
        try SafeTensors.writeAtomically(kept, to: path)
    }
}

/// `metrics.jsonl` of a training: the running figures every 20 steps.
public struct StepRecord: MetricsRecord {
    public let kind = "step"
    public let epoch: Int, step: Int
    public let loss: Double, lr: Double, imagesPerS: Double
}

/// `metrics.jsonl` of a training: one finished epoch (1-based), validation figures when the
/// run holds images out.
public struct EpochRecord: MetricsRecord {
    public let kind = "epoch"
    public let epoch: Int
    public let trainLoss: Double, trainAcc: Double
    public let valAcc: Double?, valLoss: Double?
    public let seconds: Double, imagesPerS: Double
    public let ranks: Int
}

/// `metrics.jsonl` of a training: stopped (checkpoint saved) at this position.
public struct InterruptedRecord: MetricsRecord {
    public let kind = "interrupted"
    public let epoch: Int, step: Int
}

/// What long-running library work reports to the program driving it; the library itself never
/// prints. A command-line program renders `status` as one updating line on a terminal (whole
/// lines, throttled, otherwise) and `phase` and `line` as lines of their own.
public enum ProgressEvent: Equatable, Sendable {
    /// A phase of a multi-phase job begins (`number` of `total`, e.g. 2 of 4: "search ...").
    case phase(number: Int, total: Int, String)
    /// The live status of the work in progress; replaces the previous status.
    case status(String)
    /// A finished line worth keeping (an epoch's summary, a network trained, a search done).
    case line(String)
}

/// Receives progress on the thread doing the work; must return quickly.
public typealias ProgressHandler = (ProgressEvent) -> Void

/// "1h02m", "3m05s", "12s".
public func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "?" }
    let s = Int(seconds.rounded())
    if s >= 3600 { return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) }
    if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
    return "\(s)s"
}
