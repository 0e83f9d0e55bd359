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
}

/// A live one-line progress display on stderr (rewritten in place on a terminal, one line per
/// update otherwise), throttled to a few updates per second.
public final class ProgressLine {
    private let interactive = isatty(STDERR_FILENO) != 0
    private var last = Date.distantPast
    public var enabled = true
    public init() {}

    /// `text` is only built when the line is due (callers format it every step).
    public func update(_ text: @autoclosure () -> String, force: Bool = false) {
        guard enabled else { return }
        let now = Date()
        guard force || now.timeIntervalSince(last) > (interactive ? 0.25 : 10) else { return }
        last = now
        let line = interactive ? "\r\u{1B}[K" + text() : text() + "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    public func finish() {
        if enabled && interactive { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

/// "1h02m", "3m05s", "12s".
public func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "?" }
    let s = Int(seconds.rounded())
    if s >= 3600 { return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) }
    if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
    return "\(s)s"
}
