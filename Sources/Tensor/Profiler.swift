import Foundation

/// Accumulates wall time per operation kind (e.g. "conv fwd") when enabled, for
/// `lth4sa bench --profile`; each `ComputeContext` has one. Disabled, `measure` costs one
/// branch. Single-threaded use.
public final class Profiler {
    public var enabled = false
    private var totals: [String: (seconds: Double, calls: Int)] = [:]

    @inline(__always)
    public func measure<T>(_ what: String, _ body: () -> T) -> T {
        guard enabled else { return body() }
        let start = DispatchTime.now().uptimeNanoseconds
        let result = body()
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        let old = totals[what] ?? (0, 0)
        totals[what] = (old.seconds + elapsed, old.calls + 1)
        return result
    }

    /// (operation, seconds, calls), largest first.
    public var report: [(String, Double, Int)] {
        totals.map { ($0.key, $0.value.seconds, $0.value.calls) }.sorted { $0.1 > $1.1 }
    }
}
