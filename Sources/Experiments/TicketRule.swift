import Foundation

/// A ticket verdict: beyond the measured noise, or not decidable within it.
public enum Verdict: String, Codable, Equatable, Sendable {
    case yes
    case no
    case withinNoise = "within noise"
}

/// The paper's ticket rule as a non-inferiority test, in one place. A searched scheme is a
/// ticket ("yes") when
/// - its accuracy is shown not to be worse than Full-SA's by more than the margin: the lower
///   end of the 95% interval of (scheme - Full-SA) lies above -margin (`AccuracyComparison`:
///   paired over seeds with Student's t, or the test set's binomial error with one seed), and
/// - it has fewer parameters, and
/// - its inference time is lower beyond the timing noise: the 95% bootstrap interval (over the
///   interleaved rounds, paired) of the median-time difference to Full-SA lies below zero.
/// It is not ("no") when the upper end of the accuracy interval lies below -margin, it has no
/// fewer parameters, or it is slower beyond the interval; otherwise "within noise". A noisy
/// comparison therefore never earns "yes": absence of evidence is not evidence.
public enum TicketRule {
    /// The default non-inferiority margin, in accuracy points (`--margin`).
    public static let defaultMargin = 0.5

    /// What the rule compares of one network.
    public struct Figures: Sendable {
        /// Test accuracy (percent) of every seed, in the study's seed order (seed k of every
        /// network is trained with the same seed, so differences pair by index).
        public let accuracies: [Double]
        /// Images of the test set (for its binomial sampling error).
        public let testImages: Int
        public let parameters: Int
        /// Forward time (ms) of every interleaved round.
        public let times: [Double]
        public init(accuracies: [Double], testImages: Int, parameters: Int, times: [Double]) {
            self.accuracies = accuracies
            self.testImages = testImages
            self.parameters = parameters
            self.times = times
        }
    }

    /// The accuracy difference (scheme - Full-SA) with its 95% interval, and how it was taken.
    public static func accuracyDifference(_ c: Figures, fullSA f: Figures) -> AccuracyComparison {
        AccuracyComparison(c.accuracies, f.accuracies, testImages: min(c.testImages, f.testImages))
    }

    /// The 95% bootstrap interval of median(T_candidate) - median(T_Full-SA) over paired rounds.
    public static func timeDifference(_ c: Figures, fullSA f: Figures, resamples: Int = 2000, seed: UInt64 = 0) -> Estimate {
        RankCorrelation.bootstrap(c.times, f.times, resamples: resamples, seed: seed) { median($0) - median($1) }
    }

    /// The accuracy part alone: "yes" when the interval's lower end is above -margin, "no" when
    /// its upper end is below -margin, "within noise" otherwise.
    public static func accuracyVerdict(_ d: AccuracyComparison, margin: Double) -> Verdict {
        if d.difference.low > -margin { return .yes }
        return d.difference.high < -margin ? .no : .withinNoise
    }

    /// The rule in one sentence for reports, naming how the interval is taken with `seeds`.
    public static func ruleText(margin: Double, seeds: Int) -> String {
        let interval = seeds > 1
            ? "paired over the \(seeds) seeds, mean of the per-seed differences ± t(0.975, \(seeds - 1)) = \(String(format: "%.2f", Statistics.studentT975(degreesOfFreedom: seeds - 1))) standard errors"
            : "one seed: the test set's binomial sampling error alone (± 1.96 standard errors), the seed's own effect unmeasured"
        return "non-inferiority with margin \(String(format: "%.2f", margin)) points: yes when the lower end of the 95% interval of "
            + "(scheme - Full-SA) test accuracy is above -\(String(format: "%.2f", margin)) (\(interval)), the scheme has fewer parameters "
            + "and its inference time is below Full-SA's beyond the 95% bootstrap interval of the difference; no when the interval's upper end "
            + "is below -\(String(format: "%.2f", margin)), or parameters or time are not lower; otherwise within noise. "
            + "In parentheses: the mean difference, its 95% interval and how it was taken"
    }

    /// The verdict for `candidate` against Full-SA with the non-inferiority `margin` (points).
    public static func verdict(_ candidate: Figures, fullSA: Figures, margin: Double = defaultMargin) -> Verdict {
        let accuracy = accuracyVerdict(accuracyDifference(candidate, fullSA: fullSA), margin: margin)
        let time = timeDifference(candidate, fullSA: fullSA)
        if accuracy == .no || candidate.parameters >= fullSA.parameters || time.low > 0 { return .no }
        return accuracy == .yes && time.high < 0 ? .yes : .withinNoise
    }
}

/// The difference of two networks' test accuracies (a - b, percent points) with a 95% interval,
/// taken the way the seeds allow:
/// - **paired**: both trained with the same seeds (the same count, in the same order): the
///   per-seed differences d_k, mean ± t(0.975, S-1) sd(d) / sqrt(S). Pairing removes what a
///   seed does to both networks alike (its data order, initialisation and, for generated data,
///   its images). Student's t, not 2: with 2 seeds t = 12.71, with 3 seeds 4.30.
/// - **binomial**: one seed each: only the test set's sampling error is known, mean ± 1.96
///   sqrt(p_a (1 - p_a) / N + p_b (1 - p_b) / N); the seed's own effect is not in it.
/// - **unpaired**: different seed counts: Welch's standard error with the smaller count's
///   degrees of freedom (conservative).
public struct AccuracyComparison: Codable, Equatable, Sendable {
    public enum Method: String, Codable, Sendable {
        case paired = "paired t"
        case binomial = "binomial"
        case unpaired = "unpaired t"
        case twoLevel = "paired t over search seeds, training-seed variance included"
    }
    /// Mean difference (points) and its 95% interval.
    public let difference: Estimate
    public let method: Method
    /// Seeds behind each side (the smaller count when they differ).
    public let seeds: Int

    public init(_ a: [Double], _ b: [Double], testImages: Int) {
        let meanDifference = Statistics.mean(a) - Statistics.mean(b)
        let half: Double
        if a.count == b.count && a.count > 1 {
            let d = zip(a, b).map { $0 - $1 }
            half = Statistics.studentT975(degreesOfFreedom: d.count - 1) * Statistics.standardDeviation(d) / Double(d.count).squareRoot()
            (method, seeds) = (.paired, d.count)
        } else if a.count > 1 && b.count > 1 {
            let se = (Statistics.variance(a) / Double(a.count) + Statistics.variance(b) / Double(b.count)).squareRoot()
            half = Statistics.studentT975(degreesOfFreedom: min(a.count, b.count) - 1) * se
            (method, seeds) = (.unpaired, min(a.count, b.count))
        } else {
            func binomialVariance(_ v: [Double]) -> Double {
                let p = min(max(Statistics.mean(v) / 100, 0), 1)
                return testImages > 0 ? p * (1 - p) / Double(testImages) * 1e4 : 0
            }
            half = 1.96 * (binomialVariance(a) + binomialVariance(b)).squareRoot()
            (method, seeds) = (.binomial, min(a.count, b.count))
        }
        difference = Estimate(value: meanDifference, low: meanDifference - half, high: meanDifference + half)
    }

    /// Two searchers' picks compared over K search seeds x S training seeds each
    /// (`a[k][s] - b[k][s]` pairs by both seeds): the mean difference with a 95% interval
    /// mean ± t(0.975, K - 1) sqrt(v / K), where v, the variance of one search seed's mean
    /// difference, is the larger of its sample variance over the K search seeds and the
    /// pooled training-seed variance / S. The first alone can vanish by chance when the
    /// per-seed outcomes are discrete (every pick finding the gate in 2 of 3 trainings), the
    /// second is what training noise alone puts into each search seed's mean. With K = 1: the
    /// training seeds' paired t. Falls back to the per-seed means when the shapes differ.
    public init(searchSeeds a: [[Double]], _ b: [[Double]], testImages: Int) {
        let shapesMatch = a.count == b.count && zip(a, b).allSatisfy { $0.count == $1.count } && Set(a.map(\.count)).count == 1
        guard shapesMatch, let S = a.first?.count, S > 1 || a.count > 1 else {
            self.init(a.map(Statistics.mean), b.map(Statistics.mean), testImages: testImages)
            return
        }
        let d = zip(a, b).map { zip($0, $1).map { $0 - $1 } }
        let means = d.map(Statistics.mean), K = d.count
        let within = Statistics.mean(d.map(Statistics.variance))  // 0 with one training seed
        let half: Double
        if K == 1 {
            half = Statistics.studentT975(degreesOfFreedom: S - 1) * (within / Double(S)).squareRoot()
        } else {
            let v = max(Statistics.variance(means), within / Double(S))
            half = Statistics.studentT975(degreesOfFreedom: K - 1) * (v / Double(K)).squareRoot()
        }
        let m = Statistics.mean(means)
        self.init(difference: Estimate(value: m, low: m - half, high: m + half), method: .twoLevel, seeds: K)
    }

    private init(difference: Estimate, method: Method, seeds: Int) {
        (self.difference, self.method, self.seeds) = (difference, method, seeds)
    }

    /// "+1.20 [-0.40, +2.80]".
    public var text: String { String(format: "%+.2f [%+.2f, %+.2f]", difference.value, difference.low, difference.high) }
}

/// Small-sample statistics used by the verdicts.
public enum Statistics {
    public static func mean(_ v: [Double]) -> Double { v.reduce(0, +) / Double(max(v.count, 1)) }
    /// Sample variance (n - 1 in the denominator; 0 for fewer than 2 values).
    public static func variance(_ v: [Double]) -> Double {
        guard v.count > 1 else { return 0 }
        let m = mean(v)
        return v.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(v.count - 1)
    }
    public static func standardDeviation(_ v: [Double]) -> Double { variance(v).squareRoot() }

    /// The two-sided 95% quantile of Student's t: exact to 3 decimals up to 30 degrees of
    /// freedom (tabulated), 1.96 + 2.4 / df beyond (within 0.003 of the exact value).
    public static func studentT975(degreesOfFreedom df: Int) -> Double {
        precondition(df >= 1, "Student's t needs at least one degree of freedom")
        let table = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
                     2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
        return df <= table.count ? table[df - 1] : 1.96 + 2.4 / Double(df)
    }
}
