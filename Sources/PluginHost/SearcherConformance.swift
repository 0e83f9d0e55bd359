import Foundation
import Search
import Tensor

/// The conformance kit for searcher plugins (`lth4sa plugins check` on a searcher): the
/// contracts the host relies on, each reported with what it measured.
public enum SearcherConformance {
    /// Gate gradients of a fixed quadratic, loss = sum (w_l - 0.8)^2 on even blocks and
    /// (w_l - 0.2)^2 on odd ones: enough for a differentiable searcher to run.
    final class QuadraticGates: GateGradientSource {
        func loss(_ g: [Double]) -> (Double, [Double]) {
            let target = g.indices.map { $0 % 2 == 0 ? 0.8 : 0.2 }
            return (zip(g, target).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }, zip(g, target).map { 2 * ($0 - $1) })
        }
        func trainWeights(gates: [Double]) throws -> Double { loss(gates).0 }
        func validationGradient(gates: [Double]) throws -> (loss: Double, gradient: [Double]) { loss(gates) }
    }

    /// Runs the checks on the searcher in `spec` with option `settings`, on a space of
    /// `stageSizes` blocks per stage. Capabilities the host offers are stubbed (parameters of a
    /// scheme = its connected blocks, every block's SAM parameters = [1, 2, 3], gate gradients
    /// of `QuadraticGates`).
    public static func run(_ spec: String, settings: [String] = [], stageSizes: [Int] = [2, 2, 2],
                           progress: Conformance.Progress = Conformance.Progress()) -> [Conformance.Result] {
        var results: [Conformance.Result] = []
        func record(_ name: String, _ body: () throws -> (Bool, String)) { progress.record(name, into: &results, body) }
        let blocks = stageSizes.reduce(0, +)
        func make(_ seed: UInt64) throws -> SearcherPlugin {
            try SearcherPlugin(spec, settings: settings, stageSizes: stageSizes, host: PluginHostContext(seed: seed),
                               parameters: { $0.filter { $0 }.count }, blockParameters: { _ in [1, 2, 3] }, gates: { QuadraticGates() })
        }
        func score(_ schemes: [[Bool]]) -> [(bits: [Bool], parts: RewardParts)] {
            schemes.map { s in
                let on = Double(s.filter { $0 }.count)
                return (s, RewardParts(reward: 50 + on, accuracy: 50 + on, sparsity: 1 - on / Double(blocks), curiosity: 0))
            }
        }
        record("create, ask, tell for 5 steps (schemes of bytes 0/1 inside the buffer)") {
            let s = try make(1)
            var asked = 0
            for _ in 0..<5 {
                let schemes = try s.ask()
                asked += schemes.count
                _ = try s.tell(score(schemes))
            }
            return (true, "\(asked) scheme(s) of \(blocks) blocks")
        }
        record("save: bounded state written inside its buffer") {
            let s = try make(1)
            _ = try s.tell(score(try s.ask()))
            let state = try s.saveState()
            return (true, "\(state.count) bytes")
        }
        record("save and load resume exactly (same next schemes)") {
            let a = try make(3)
            for _ in 0..<3 { _ = try a.tell(score(try a.ask())) }
            let state = try a.saveState(), rng = a.host.rngState.save()
            let b = try make(99)
            try b.loadState(state)
            b.host.rngState.restore(rng)
            let next = try a.ask(), resumed = try b.ask()
            return (next == resumed, next == resumed ? "identical after 3 steps" : "a resumed searcher asks \(resumed) instead of \(next)")
        }
        return results
    }
}
