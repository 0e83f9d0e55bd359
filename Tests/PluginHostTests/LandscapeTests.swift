import Foundation
import Models
import PluginHost
import Search
import Tensor
import XCTest

/// The landscape: prefix-shared evaluation of every scheme equals plain evaluation; ranks,
/// Top 5%, distributions and connection scores match a direct computation.
final class LandscapeTests: XCTestCase {
    func testLandscapeOfATinyNetworkMatchesDirectComputation() throws {
        let stages = [2, 2, 2]
        let all = Landscape.allSchemes(stageSizes: stages)
        XCTAssertEqual(all.count, 64)
        XCTAssertEqual(Set(all.map { $0.description }).count, 64)
        XCTAssertEqual(all[1].description, "00-00-01", "lexicographic order: neighbours share long prefixes")
        let shared = try SearchEnvironmentTests.evaluator("SE", mode: .fullSA), plain = try SearchEnvironmentTests.evaluator("SE", mode: .fullSA)
        let a = try shared.accuracies(all)
        let b = try all.map { try plain.accuracies([$0], sharePrefixes: false)[0] }
        XCTAssertEqual(a, b)
        for s in all { XCTAssertEqual(shared.logitFingerprint[s]!, plain.logitFingerprint[s]!, accuracy: 1e-6 * max(1, plain.logitFingerprint[s]!)) }
        // sorted enumeration: every scheme restarts at its first differing block: 2^7 - 2 blocks instead of 64 * 6 (per batch)
        XCTAssertEqual(shared.blocksRun, 2 * (128 - 2))
        XCTAssertEqual(plain.blocksRun, 2 * 64 * 6)

        let landscape = Landscape(Array(zip(all, a)))
        for (s, acc) in zip(all, a) {
            XCTAssertEqual(landscape.rank(s), 1 + a.filter { $0 > acc }.count, "rank of \(s)")
        }
        let top = landscape.topCount(0.05)
        XCTAssertEqual(top, 4, "ceil(0.05 * 64)")
        let order = zip(all, a).sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0.description < $1.0.description }
        XCTAssertEqual(landscape.best().map { $0.description }, order.prefix(4).map { $0.0.description })
        XCTAssertEqual(landscape.worst().map { $0.description }, order.suffix(4).map { $0.0.description })
        XCTAssertEqual(landscape.topThreshold(), order[3].1)
        XCTAssertEqual(landscape.topThreshold(0.1), order[6].1, "ceil(6.4) = 7 schemes")
        for (s, acc) in zip(all, a) {
            XCTAssertEqual(landscape.isTop(accuracy: acc), order.filter { $0.1 > acc }.count < 4, "Top 5%? of \(s)")
        }
        var direct = [Double](repeating: 0, count: 6)
        for s in order.prefix(4) { for l in 0..<6 where s.0.bits[l] { direct[l] += 0.25 } }
        XCTAssertEqual(Landscape.connectionScores(landscape.best()), direct)
        for stats in landscape.distribution() {
            let group = zip(all, a).filter { $0.0.bits.filter { $0 }.count == stats.connected }.map { $0.1 }.sorted()
            XCTAssertEqual(stats.count, group.count)
            XCTAssertEqual(stats.min, group.first)
            XCTAssertEqual(stats.max, group.last)
            XCTAssertEqual(stats.mean, group.reduce(0, +) / Double(group.count), accuracy: 1e-9)
            XCTAssertEqual(stats.median, group.count % 2 == 1 ? group[group.count / 2] : (group[group.count / 2 - 1] + group[group.count / 2]) / 2, accuracy: 1e-9)
        }
        XCTAssertEqual(landscape.distribution().map { $0.count }, [1, 6, 15, 20, 15, 6, 1])
    }

    func testSampledSchemesPerRatio() {
        let stages = [6, 6, 6]
        let sample = Landscape.sampledSchemes(stageSizes: stages, perRatio: 30, seed: 4)
        let byCount = Dictionary(grouping: sample, by: { $0.bits.filter { $0 }.count })
        XCTAssertEqual(byCount.keys.sorted(), Array(0...18))
        XCTAssertEqual(byCount[0]?.count, 1, "only one scheme has no block on")
        XCTAssertEqual(byCount[1]?.count, 18, "all 18 when there are fewer than 30")
        XCTAssertEqual(byCount[9]?.count, 30)
        XCTAssertEqual(Set(sample.map { $0.description }).count, sample.count, "distinct")
        XCTAssertEqual(sample.map { $0.description }, Landscape.sampledSchemes(stageSizes: stages, perRatio: 30, seed: 4).map { $0.description }, "seeded")
    }
}
