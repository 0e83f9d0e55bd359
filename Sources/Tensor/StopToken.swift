import Synchronization

/// A request to stop long work at the next safe point (after a training step, a search step,
/// a chunk of schemes), owned by whoever drives the work and shared with it. Thread-safe and
/// async-signal-safe to request: a program's SIGINT handler may call `request()`.
public final class StopToken: Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    /// Asks the work to stop at its next safe point (idempotent).
    public func request() { flag.store(true, ordering: .relaxed) }
    /// Whether a stop was requested.
    public var isRequested: Bool { flag.load(ordering: .relaxed) }
}

/// Thrown when work stopped because its `StopToken` asked it to; everything up to the last
/// safe point is saved. `howToContinue` tells the user how to pick the work up again.
public struct StoppedError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
