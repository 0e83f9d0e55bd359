import Tensor

/// Measurements of several candidates taken side by side in one process: every round each
/// candidate once, in an order shuffled every round, so that the machine's drift hits them
/// alike (`InferenceTiming.interleavedRounds`, `TrainingBenchmark.interleavedRounds`).
enum Interleaving {
    /// `measure(i)` for every candidate `i < count`, once per round, after `warmup` rounds that
    /// are run the same way but not kept; the order comes from `rng`. `onRound` is told the
    /// round finished (1-based, warm-up included) and the total. Result: [candidate][round].
    static func rounds(_ count: Int, warmup: Int, rounds: Int, rng: inout RNG, onRound: ((Int, Int) -> Void)?,
                       measure: (Int) throws -> Double) rethrows -> [[Double]] {
        var values = [[Double]](repeating: [], count: count)
        for r in 0..<(warmup + rounds) {
            var order = Array(0..<count)
            rng.shuffle(&order)
            for i in order {
                let value = try measure(i)
                if r >= warmup { values[i].append(value) }
            }
            onRound?(r + 1, warmup + rounds)
        }
        return values
    }
}
