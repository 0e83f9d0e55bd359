import Experiments
import Models
import XCTest

/// Rank statistics against SciPy 1.17 (`scipy.stats.kendalltau`, `spearmanr`; values in the
/// comments), and the stratified draw of `correlate`.
final class RankCorrelationTests: XCTestCase {
    func testKendallAndSpearmanMatchSciPy() {
        // kendalltau([1..7], [3,1,2,5,4,7,6]) = 0.6190476190476191; spearmanr = 0.8214285714285715
        let x: [Double] = [1, 2, 3, 4, 5, 6, 7], y: [Double] = [3, 1, 2, 5, 4, 7, 6]
        XCTAssertEqual(RankCorrelation.kendallTau(x, y), 0.6190476190476191, accuracy: 1e-12)
        XCTAssertEqual(RankCorrelation.spearmanRho(x, y), 0.8214285714285715, accuracy: 1e-12)
        // with ties (tau-b): kendalltau([1,2,2,3,4,4,5], [2,1,3,3,5,4,4]) = 0.6842105263157894; spearmanr = 0.8333333333333335
        let a: [Double] = [1, 2, 2, 3, 4, 4, 5], b: [Double] = [2, 1, 3, 3, 5, 4, 4]
        XCTAssertEqual(RankCorrelation.kendallTau(a, b), 0.6842105263157894, accuracy: 1e-12)
        XCTAssertEqual(RankCorrelation.spearmanRho(a, b), 0.8333333333333335, accuracy: 1e-12)
        XCTAssertEqual(RankCorrelation.kendallTau(x, x.reversed()), -1, accuracy: 1e-12)
        XCTAssertEqual(RankCorrelation.spearmanRho(x, x.map { $0 * $0 }), 1, accuracy: 1e-12, "monotone = rank-identical")
        XCTAssertEqual(RankCorrelation.kendallTau(x, [Double](repeating: 3, count: 7)), 0, "a constant side has no ranking")
    }

    func testBootstrapIntervalContainsTheEstimateAndTopOverlap() {
        let x: [Double] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], y: [Double] = [2, 1, 4, 3, 6, 5, 8, 7, 10, 9]
        let e = RankCorrelation.bootstrap(x, y, resamples: 500, seed: 1, RankCorrelation.kendallTau)
        XCTAssertEqual(e.value, RankCorrelation.kendallTau(x, y))
        XCTAssertLessThanOrEqual(e.low, e.value)
        XCTAssertGreaterThanOrEqual(e.high, e.value)
        XCTAssertLessThan(e.low, e.high)
        XCTAssertEqual(RankCorrelation.bootstrap(x, y, resamples: 500, seed: 1, RankCorrelation.kendallTau), e, "seeded")
        XCTAssertEqual(RankCorrelation.topOverlap(x, y, k: 3), 2.0 / 3, accuracy: 1e-12)  // {10,9,8} vs {9,10,7}
        XCTAssertEqual(RankCorrelation.topOverlap(x, y, k: 2), 1)
    }

    func testStratifiedSchemesSpreadOverRatiosAndAreDistinct() {
        let stages = [3, 3, 3]
        let s = Correlation.stratifiedSchemes(stageSizes: stages, count: 12, seed: 0)
        XCTAssertEqual(s.count, 12)
        XCTAssertEqual(Set(s.map(\.bits)).count, 12, "distinct")
        let counts = s.map { $0.bits.filter { $0 }.count }
        XCTAssertTrue(counts.allSatisfy { $0 >= 1 && $0 <= 8 }, "neither the original nor Full-SA: \(counts)")
        XCTAssertEqual(Set(counts), Set(1...8), "every number of connected blocks 1..L-1 is drawn: \(counts)")
        XCTAssertEqual(Correlation.stratifiedSchemes(stageSizes: stages, count: 12, seed: 0), s, "seeded")
        XCTAssertEqual(Correlation.stratifiedSchemes(stageSizes: [1, 1, 1], count: 12, seed: 0).count, 6, "all 2^3 - 2 when fewer exist")
    }

    /// `correlate` says so when the stand-alone accuracies lie within their own noise (the
    /// issue's 1-epoch case: 8.7-12.7%, all at chance) and stays quiet when they separate.
    func testNothingToRankIsDetected() throws {
        // one seed, 300 test images: 2 standard errors of a difference at p = 0.107 = 5.05 points
        let chance = [[8.7], [12.7], [10.3], [11.0]]
        let warning = try XCTUnwrap(Correlation.nothingToRank(chance, testImages: 300, classes: 10))
        XCTAssertTrue(warning.contains("nothing to rank") && warning.contains("near chance"), warning)
        XCTAssertNil(Correlation.nothingToRank([[50.0], [100.0], [75.0]], testImages: 800, classes: 10))
        // seeds: pooled sd 1 over 3 seeds -> 2 sqrt(2 / 3) = 1.63 points; a 1-point spread is noise, a 3-point one is not
        XCTAssertNotNil(Correlation.nothingToRank([[79, 80, 81], [80, 81, 82]], testImages: 2000, classes: 10))
        XCTAssertNil(Correlation.nothingToRank([[79, 80, 81], [82, 83, 84]], testImages: 2000, classes: 10))
    }
}
