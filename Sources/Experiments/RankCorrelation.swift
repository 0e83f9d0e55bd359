import Tensor

/// A statistic with its 95% percentile bootstrap interval.
public struct Estimate: Codable, Equatable, Sendable {
    public let value: Double
    /// 2.5% and 97.5% percentiles over the bootstrap resamples.
    public let low: Double, high: Double
    public init(value: Double, low: Double, high: Double) {
        self.value = value
        self.low = low
        self.high = high
    }
}

/// Rank agreement between two scorings of the same items (supernet score vs stand-alone
/// accuracy): Kendall's tau-b and Spearman's rho (both tie-aware), bootstrap intervals and
/// top-k overlap.
public enum RankCorrelation {
    /// Kendall's tau-b: (C - D) / sqrt((n0 - n1)(n0 - n2)); 0 when either side is constant.
    public static func kendallTau(_ x: [Double], _ y: [Double]) -> Double {
        precondition(x.count == y.count, "\(x.count) against \(y.count) values")
        var concordant = 0.0, discordant = 0.0, tiesX = 0.0, tiesY = 0.0, pairs = 0.0
        for i in 0..<x.count {
            for j in (i + 1)..<max(x.count, i + 1) {
                pairs += 1
                let dx = x[i] - x[j], dy = y[i] - y[j]
                if dx == 0 { tiesX += 1 }
                if dy == 0 { tiesY += 1 }
                if dx == 0 || dy == 0 { continue }
                if (dx > 0) == (dy > 0) { concordant += 1 } else { discordant += 1 }
            }
        }
        let denominator = ((pairs - tiesX) * (pairs - tiesY)).squareRoot()
        return denominator > 0 ? (concordant - discordant) / denominator : 0
    }

    /// Spearman's rho: the Pearson correlation of the (average, for ties) ranks.
    public static func spearmanRho(_ x: [Double], _ y: [Double]) -> Double {
        precondition(x.count == y.count, "\(x.count) against \(y.count) values")
        return pearson(ranks(x), ranks(y))
    }

    /// 1-based ranks, ties sharing their average rank.
    static func ranks(_ v: [Double]) -> [Double] {
        let order = v.indices.sorted { v[$0] < v[$1] }
        var r = [Double](repeating: 0, count: v.count)
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && v[order[j + 1]] == v[order[i]] { j += 1 }
            for k in i...j { r[order[k]] = Double(i + j) / 2 + 1 }
            i = j + 1
        }
        return r
    }

    static func pearson(_ a: [Double], _ b: [Double]) -> Double {
        let n = Double(a.count)
        guard n > 1 else { return 0 }
        let ma = a.reduce(0, +) / n, mb = b.reduce(0, +) / n
        var sab = 0.0, saa = 0.0, sbb = 0.0
        for (x, y) in zip(a, b) {
            sab += (x - ma) * (y - mb)
            saa += (x - ma) * (x - ma)
            sbb += (y - mb) * (y - mb)
        }
        return saa > 0 && sbb > 0 ? sab / (saa * sbb).squareRoot() : 0
    }

    /// `statistic` on (x, y) and its 95% percentile interval over `resamples` resamples of the
    /// pairs with replacement (seeded).
    public static func bootstrap(_ x: [Double], _ y: [Double], resamples: Int = 2000, seed: UInt64 = 0,
                                 _ statistic: ([Double], [Double]) -> Double) -> Estimate {
        var rng = RNG(seed: seed)
        var values: [Double] = []
        for _ in 0..<resamples {
            let pick = x.indices.map { _ in rng.int(x.count) }
            values.append(statistic(pick.map { x[$0] }, pick.map { y[$0] }))
        }
        values.sort()
        func percentile(_ p: Double) -> Double { values.isEmpty ? .nan : values[min(values.count - 1, Int(p * Double(values.count)))] }
        return Estimate(value: statistic(x, y), low: percentile(0.025), high: percentile(0.975))
    }

    /// |top-k of x ∩ top-k of y| / k (items by index; ties broken by index).
    public static func topOverlap(_ x: [Double], _ y: [Double], k: Int) -> Double {
        let k = min(k, x.count)
        guard k > 0 else { return 0 }
        func top(_ v: [Double]) -> Set<Int> { Set(v.indices.sorted { v[$0] != v[$1] ? v[$0] > v[$1] : $0 < $1 }.prefix(k)) }
        return Double(top(x).intersection(top(y)).count) / Double(k)
    }
}
