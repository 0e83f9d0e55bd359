import Foundation
import Models
import Tensor

/// The accuracy landscape of connection schemes through a supernet (METHOD.md section 6, the
/// paper's Figs. 2 and 3): every scheme (or a sample) with its validation accuracy, ranks,
/// the Top-5% set and connection scores.
public struct Landscape {
    public let entries: [(scheme: Scheme, accuracy: Double)]
    public let blocks: Int
    /// Entries best first (accuracy descending, ties by scheme text).
    public let ranked: [(scheme: Scheme, accuracy: Double)]

    public init(_ entries: [(scheme: Scheme, accuracy: Double)]) {
        self.entries = entries
        blocks = entries.first?.scheme.bits.count ?? 0
        ranked = entries.sorted { $0.accuracy != $1.accuracy ? $0.accuracy > $1.accuracy : $0.scheme.description < $1.scheme.description }
    }

    /// 1 + the number of schemes with strictly higher accuracy (ties share a rank).
    public func rank(accuracy: Double) -> Int { 1 + entries.filter { $0.accuracy > accuracy }.count }

    /// The rank of `scheme` if it is in the landscape.
    public func rank(_ scheme: Scheme) -> Int? { entries.first { $0.scheme == scheme }.map { rank(accuracy: $0.accuracy) } }

    /// How many schemes the best `fraction` holds: ceil(fraction * n).
    public func topCount(_ fraction: Double) -> Int { Int((fraction * Double(entries.count)).rounded(.up)) }

    /// The accuracy of the last scheme in the best `fraction`.
    public func topThreshold(_ fraction: Double = 0.05) -> Double { ranked[topCount(fraction) - 1].accuracy }

    /// Whether a scheme of this accuracy is among the best `fraction` (its rank is within topCount).
    public func isTop(accuracy: Double, fraction: Double = 0.05) -> Bool { rank(accuracy: accuracy) <= topCount(fraction) }

    /// The best and the worst `fraction` of the schemes.
    public func best(_ fraction: Double = 0.05) -> [Scheme] { ranked.prefix(topCount(fraction)).map { $0.scheme } }
    public func worst(_ fraction: Double = 0.05) -> [Scheme] { ranked.suffix(topCount(fraction)).map { $0.scheme } }

    /// Connection score of a set S: score_l = (1/|S|) sum_{d in S} d_l.
    public static func connectionScores(_ schemes: [Scheme]) -> [Double] {
        guard let first = schemes.first else { return [] }
        var score = [Double](repeating: 0, count: first.bits.count)
        for s in schemes { for (l, on) in s.bits.enumerated() where on { score[l] += 1 } }
        return score.map { $0 / Double(schemes.count) }
    }

    /// Accuracy statistics of the schemes with `connected` blocks on.
    public struct RatioStatistics: Codable, Equatable, Sendable {
        public let connected: Int, ratio: Double, count: Int
        public let min: Double, q1: Double, median: Double, q3: Double, max: Double, mean: Double
    }

    /// One entry per number of connected blocks present (the paper's Fig. 2).
    public func distribution() -> [RatioStatistics] {
        let groups = Dictionary(grouping: entries, by: { $0.scheme.bits.filter { $0 }.count })
        return groups.keys.sorted().map { k in
            let a = groups[k]!.map { $0.accuracy }.sorted()
            func quantile(_ q: Double) -> Double {  // linear interpolation between order statistics
                let x = q * Double(a.count - 1), i = Int(x.rounded(.down)), f = x - Double(i)
                return i + 1 < a.count ? a[i] * (1 - f) + a[i + 1] * f : a[i]
            }
            return RatioStatistics(connected: k, ratio: Double(k) / Double(blocks), count: a.count, min: a.first!, q1: quantile(0.25),
                                   median: quantile(0.5), q3: quantile(0.75), max: a.last!, mean: a.reduce(0, +) / Double(a.count))
        }
    }

    /// Every scheme of `stageSizes` (2^L of them), in lexicographic bit order (which makes
    /// consecutive schemes share long prefixes).
    public static func allSchemes(stageSizes: [Int]) -> [Scheme] {
        let L = stageSizes.reduce(0, +)
        return (0..<(1 << L)).map { n in Scheme(bits: (0..<L).map { (n >> (L - 1 - $0)) & 1 == 1 }, stageSizes: stageSizes) }
    }

    /// `perRatio` distinct random schemes for every number of connected blocks 0...L (all of
    /// them when there are fewer), from `seed`.
    public static func sampledSchemes(stageSizes: [Int], perRatio: Int, seed: UInt64) -> [Scheme] {
        let L = stageSizes.reduce(0, +)
        var rng = RNG(seed: seed)
        var out: [Scheme] = []
        for k in 0...L {
            let available = binomial(L, k)
            var seen = Set<[Bool]>()
            let wanted = Int(min(Double(perRatio), available).rounded())
            while seen.count < wanted {
                var bits = [Bool](repeating: false, count: L)
                var order = Array(0..<L)
                for i in 0..<k {
                    let j = i + rng.int(L - i)
                    order.swapAt(i, j)
                    bits[order[i]] = true
                }
                seen.insert(bits)
            }
            out += seen.sorted { $0.lexicographicallyPrecedes($1) { !$0 && $1 } }.map { Scheme(bits: $0, stageSizes: stageSizes) }
        }
        return out
    }

    static func binomial(_ n: Int, _ k: Int) -> Double {
        var r = 1.0
        for i in 0..<k { r = r * Double(n - i) / Double(i + 1) }
        return r
    }
}
