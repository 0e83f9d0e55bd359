import Foundation
import Models
import Training

/// One network of a results table, measured: accuracies over seeds, parameters, inference time
/// with its increment interval, and the ticket verdict against Full-SA.
public struct MeasuredNetwork: Codable, Equatable, Sendable {
    /// "original", "Full-SA", "candidate 1", or a searcher's id.
    public let label: String
    /// What the network is in its study (the row's role, not its position).
    public let role: NetworkRole
    public let scheme: Scheme
    public let connectionRatio: Double
    /// Test accuracy (percent) of every seed, their mean and sample standard deviation.
    public let testAccuracies: [Double]
    public let testAccuracy: Double
    public let testAccuracySpread: Double
    /// Mean validation accuracy over seeds (nil when the runs held none out).
    public let validationAccuracy: Double?
    public let parameters: Int
    /// Median forward time (ms, batch 50, interleaved rounds).
    public let inferenceMs: Double
    /// dT over the original network (percent) with its 95% bootstrap interval over rounds.
    public let inferenceIncrement: Estimate
    /// Test accuracy minus Full-SA's with its 95% interval (paired over seeds; see
    /// `AccuracyComparison`); nil for the original and Full-SA.
    public let accuracyDifference: AccuracyComparison?
    /// The ticket verdict (nil for the original and Full-SA).
    public let verdict: Verdict?

    public init(label: String, role: NetworkRole, scheme: Scheme, connectionRatio: Double, testAccuracies: [Double], validationAccuracy: Double?, parameters: Int,
                inferenceMs: Double, inferenceIncrement: Estimate, accuracyDifference: AccuracyComparison? = nil, verdict: Verdict? = nil) {
        self.label = label
        self.role = role
        self.scheme = scheme
        self.connectionRatio = connectionRatio
        self.testAccuracies = testAccuracies
        testAccuracy = Statistics.mean(testAccuracies)
        testAccuracySpread = Statistics.standardDeviation(testAccuracies)
        self.validationAccuracy = validationAccuracy
        self.parameters = parameters
        self.inferenceMs = inferenceMs
        self.inferenceIncrement = inferenceIncrement
        self.accuracyDifference = accuracyDifference
        self.verdict = verdict
    }

    /// "75.62" or "75.62 ± 1.20" (mean ± sd over seeds).
    public var accuracyText: String {
        testAccuracies.count > 1 ? String(format: "%.2f ± %.2f", testAccuracy, testAccuracySpread) : String(format: "%.2f", testAccuracy)
    }

    /// "+3.5 [+2.9, +4.1]".
    public var incrementText: String {
        String(format: "%+.1f [%+.1f, %+.1f]", inferenceIncrement.value, inferenceIncrement.low, inferenceIncrement.high)
    }

    /// "yes", "no", "within noise" or "-", with the accuracy difference to Full-SA, its 95%
    /// interval and how it was taken when there is one: "yes (+0.40 [-0.10, +0.90], paired t)".
    public var verdictText: String {
        guard let verdict else { return "-" }
        return verdict.rawValue + (accuracyDifference.map { " (\($0.text), \($0.method.rawValue))" } ?? "")
    }
}

/// Measuring the networks of a table the same way for `run` and `compare`.
public enum NetworkMeasurement {
    /// Interleaved timing rounds of a table (batch 50): enough for the dT interval to separate
    /// schemes a few SAMs apart (at 30 rounds ResNet-20's candidates were within noise of Full-SA).
    public static let timingRounds = 100

    /// What a table row needs before it is measured: its label, role, scheme and the
    /// summaries of its trainings (one per seed). Candidates are judged.
    public struct Entry {
        public let label: String
        public let role: NetworkRole
        public let scheme: Scheme
        public let trained: [TrainingSummary]
        public init(label: String, role: NetworkRole, scheme: Scheme, trained: [TrainingSummary]) {
            self.label = label
            self.role = role
            self.scheme = scheme
            self.trained = trained
        }
    }

    /// Times every distinct scheme of `entries` in one interleaved measurement (the original
    /// network first), counts parameters through `supernet`, and judges the candidates against
    /// the entry whose scheme is all ones with `TicketRule` and the non-inferiority `margin`
    /// (accuracy points).
    public static func measure(_ entries: [Entry], supernet: Supernet, config: RunConfig, classes: Int, margin: Double,
                               rounds: Int = NetworkMeasurement.timingRounds) throws -> [MeasuredNetwork] {
        let stages = supernet.net.spec.blocksPerStage
        let original = Scheme.all(false, stageSizes: stages), full = Scheme.all(true, stageSizes: stages)
        var distinct: [Scheme] = [original, full]
        for e in entries where !distinct.contains(e.scheme) { distinct.append(e.scheme) }
        let rounds = try InferenceTiming.schemeRounds(config, classes: classes, schemes: distinct, rounds: rounds)
        let times = Dictionary(uniqueKeysWithValues: zip(distinct, rounds))
        func figures(_ e: Entry) -> TicketRule.Figures {
            TicketRule.Figures(accuracies: e.trained.map(\.testAccuracy), testImages: e.trained.first?.testImages ?? 0,
                               parameters: supernet.parameterCount(e.scheme), times: times[e.scheme]!)
        }
        let fullEntry = entries.first { $0.scheme == full }
        return entries.map { e in
            let f = figures(e)
            let validations = e.trained.compactMap(\.validationAccuracy)
            var difference: AccuracyComparison? = nil
            var verdict: Verdict? = nil
            if e.role.isCandidate, let fullEntry {
                difference = TicketRule.accuracyDifference(f, fullSA: figures(fullEntry))
                verdict = e.scheme == original || e.scheme == full ? .no : TicketRule.verdict(f, fullSA: figures(fullEntry), margin: margin)
            }
            return MeasuredNetwork(label: e.label, role: e.role, scheme: e.scheme, connectionRatio: e.scheme.connectionRatio,
                                   testAccuracies: f.accuracies,
                                   validationAccuracy: validations.isEmpty ? nil : validations.reduce(0, +) / Double(validations.count),
                                   parameters: f.parameters, inferenceMs: median(f.times),
                                   inferenceIncrement: InferenceTiming.increment(f.times, over: times[original]!),
                                   accuracyDifference: difference, verdict: verdict)
        }
    }
}
