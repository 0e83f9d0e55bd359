import Checkpoint
import Foundation
import Tensor

/// Appends one JSON object per line to `metrics.jsonl`, flushed after every record so that a
/// killed run keeps everything logged so far.
public final class MetricsLog {
    private let handle: FileHandle

    public init(path: String) throws {
        if !FileManager.default.fileExists(atPath: path) {
            FileManager.default.createFile(atPath: path, contents: nil)
        }
        guard let h = FileHandle(forWritingAtPath: path) else { throw LTHError("cannot open '\(path)' for writing") }
        h.seekToEndOfFile()
        handle = h
    }

    public func write(_ record: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]) else { return }
        handle.write(data)
        handle.write(Data("\n".utf8))
    }

    deinit { try? handle.close() }

    /// Rewrites the log at `path` (atomically) with only the records `keep` accepts; a torn
    /// last line (a kill in the middle of a write) is dropped too. Used on resume, so the log
    /// ends where the checkpoint does and the resumed steps are not logged twice.
    public static func cut(path: String, keep: ([String: Any]) -> Bool) throws {
        guard let data = FileManager.default.contents(atPath: path) else { return }
        var kept = Data()
        for line in data.split(separator: UInt8(ascii: "\n")) {
            guard let record = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any], keep(record) else { continue }
            kept.append(Data(line))
            kept.append(UInt8(ascii: "\n"))
        }
        try SafeTensors.writeAtomically(kept, to: path)
    }
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
