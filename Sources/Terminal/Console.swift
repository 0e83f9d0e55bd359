import Cluster
import Experiments
import Foundation
import Tensor
import Training

/// Renders the library's progress for a command-line program: the live status on stderr (one
/// updating line on a terminal, a whole line every 10 s otherwise), phases and finished lines
/// on stdout; only the leading rank of `group` speaks. Holds the stop token the program's
/// signal handler sets. For programs, not libraries: it prints.
///
/// Threading: `show` is called on the working thread (the library reports there); `stop` may
/// be requested from any thread or a signal handler.
public final class Console: @unchecked Sendable {  // configured on the main thread before any work; the stop token is atomic
    /// Set by the program (SIGINT/SIGTERM); checked by the work at its safe points.
    public let stop = StopToken()
    /// The ranks of the job (set once, before any work).
    public var group: ProcessGroup = SingleProcess()
    /// Applied to every phase and line before it is printed (e.g. library setting names to flags).
    private let rewrite: @Sendable (String) -> String
    private let interactive = isatty(STDERR_FILENO) != 0
    private var lastStatus = Date.distantPast
    private var statusShown = false

    public init(rewrite: @escaping @Sendable (String) -> String = { $0 }) { self.rewrite = rewrite }

    /// The context every library call of the program gets.
    public var context: ExperimentContext {
        ExperimentContext(progress: { [unowned self] in self.show($0) }, stop: stop, group: group)
    }

    public func show(_ event: ProgressEvent) {
        guard group.isLeader else { return }
        switch event {
        case .status(let text):
            let now = Date()
            guard now.timeIntervalSince(lastStatus) > (interactive ? 0.25 : 10) else { return }
            lastStatus = now
            FileHandle.standardError.write(Data((interactive ? "\r\u{1B}[K" + text : text + "\n").utf8))
            statusShown = interactive
        case .line(let text):
            endStatus()
            print(rewrite(text))
        case .phase(let number, let total, let text):
            endStatus()
            print("== \(number)/\(total) \(rewrite(text))")
        }
    }

    /// Clears the live status line so the next output starts on a fresh line.
    public func endStatus() {
        if statusShown { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        statusShown = false
        lastStatus = .distantPast
    }
}
