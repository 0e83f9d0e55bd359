import Foundation
import Models
import PluginHost
import Search
import Tensor
import TestSupport
import XCTest

/// Searchers on environments with a known optimum (a reward function of the bits, no network).
final class SearchLoopTests: XCTestCase {
    let target: [Bool] = [true, false, true, true, false, false, true, false, true, true, false, true]
    let stages = [4, 4, 4]

    /// Accuracy 50..90 by the share of bits equal to the target: the reward's optimum is the target.
    func accuracies(_ schemes: [Scheme]) -> [Double] {
        schemes.map { s in 50 + 40 * Double(zip(s.bits, target).filter { $0 == $1 }.count) / Double(target.count) }
    }

    var ean: String { ReferenceTests.repository.appendingPathComponent("plugins/libEAN.so").path }

    func makeLoop(directory: String? = nil, seed: UInt64 = 1, settings: [String] = []) throws -> SearchLoop {
        let host = PluginHostContext(seed: seed)
        let searcher = try SearcherPlugin(ean, settings: settings, stageSizes: stages, host: host)
        return SearchLoop(searcher: searcher, stageSizes: stages, reward: try RewardModel(blocks: 12, weights: RewardWeights(), seed: seed),
                          accuracies: { self.accuracies($0) }, directory: directory, rngState: host.rngState)
    }

    /// With its defaults (one sample per step, Adam lr 0.05, RND on), EAN's policy converges
    /// within 300 steps to the optimum for most seeds and otherwise to a scheme one bit away
    /// (measured: 4 of 6 seeds exact); p_bar rises toward 1.
    func testEANFindsTheOptimumAndConverges() throws {
        let optimum = Scheme(bits: target, stageSizes: stages).description
        var exact = 0
        for seed: UInt64 in 1...6 {
            let loop = try makeLoop(seed: seed)
            var pBars: [Double] = []
            try loop.run(steps: 300, progress: { pBars.append($0.pBar ?? 0) })
            let late = loop.records.suffix(20).map { $0.scheme }
            let mode = Dictionary(grouping: late, by: { $0 }).max { $0.value.count < $1.value.count }!.key
            if mode == optimum { exact += 1 }
            let distance = zip(mode, optimum).filter { $0 != $1 }.count
            XCTAssertLessThanOrEqual(distance, 1, "seed \(seed): converged to \(mode)")
            let lateP = pBars.suffix(20).reduce(0, +) / 20, earlyP = pBars.prefix(20).reduce(0, +) / 20
            XCTAssertGreaterThan(lateP, 0.9, "seed \(seed): p_bar of the last 20 steps")
            XCTAssertGreaterThan(lateP, earlyP + 0.2, "seed \(seed): p_bar rises (from \(earlyP) to \(lateP))")
        }
        XCTAssertGreaterThanOrEqual(exact, 4, "seeds converging exactly on the optimum")
    }

    /// A trivial searcher (enumerates every scheme) through the same host loop.
    final class Enumerator: Searcher {
        var next = 0
        let blocks: Int
        init(blocks: Int) { self.blocks = blocks }
        func ask() throws -> [[Bool]] {
            defer { next += 1 }
            return [(0..<blocks).map { (next >> $0) & 1 == 1 }]
        }
        func tell(_ scored: [(bits: [Bool], parts: RewardParts)]) throws -> SearchProgress { SearchProgress() }
        func saveState() throws -> [UInt8] { withUnsafeBytes(of: next) { Array($0) } }
        func loadState(_ state: [UInt8]) throws { next = state.withUnsafeBytes { $0.load(as: Int.self) } }
    }

    func testHostLoopWithATrivialSearcher() throws {
        var w = RewardWeights()
        w.curiosity = 0
        let loop = SearchLoop(searcher: Enumerator(blocks: 12), stageSizes: stages, reward: try RewardModel(blocks: 12, weights: w, seed: 0),
                              accuracies: { self.accuracies($0) }, directory: nil, rngState: PluginHostContext(seed: 0).rngState)
        try loop.run(steps: 4096)
        XCTAssertEqual(loop.best.first?.scheme.bits, target)
        XCTAssertEqual(loop.best.first!.parts.reward, 90 + 2 * Double(target.filter { !$0 }.count) / 12 - 54, accuracy: 1e-9)
        XCTAssertEqual(loop.records.count, 4096)
    }

    /// Two equally accurate, equally sparse optima A (blocks 0-5) and B (blocks 6-11): B's
    /// blocks are 3x cheaper, so with the latency term B must win, without it the tie stays
    /// with A (found first). The latency part of the reward is w_lat * (1 - cost / cost(Full-SA)).
    func testLatencyRewardPrefersTheCheaperOfTwoEquallyAccurateSchemes() throws {
        let a = (0..<12).map { $0 < 6 }, b = (0..<12).map { $0 >= 6 }
        let costs = (0..<12).map { $0 < 6 ? 3.0 : 1.0 }
        func run(latency: Double) throws -> SearchLoop {
            var w = RewardWeights()
            w.curiosity = 0
            w.latency = latency
            let loop = SearchLoop(searcher: Enumerator(blocks: 12), stageSizes: stages,
                                  reward: try RewardModel(blocks: 12, weights: w, seed: 0, blockCosts: costs),
                                  accuracies: { $0.map { $0.bits == a || $0.bits == b ? 90 : 60 } }, directory: nil,
                                  rngState: PluginHostContext(seed: 0).rngState)
            try loop.run(steps: 4096)
            return loop
        }
        XCTAssertEqual(try run(latency: 0).best.first?.scheme.bits, a, "without the latency term the tie stays with the first found")
        let withLatency = try run(latency: 2)
        XCTAssertEqual(withLatency.best.first?.scheme.bits, b, "the cheaper scheme wins")
        let parts = withLatency.best.first!.parts
        XCTAssertEqual(try XCTUnwrap(parts.relativeCost), 6.0 / 24, accuracy: 1e-12)
        XCTAssertEqual(parts.reward, 90 + 2 * 0.5 - 54 + 2 * (1 - 6.0 / 24), accuracy: 1e-9)
        XCTAssertThrowsError(try RewardModel(blocks: 12, weights: { var w = RewardWeights(); w.latency = 1; return w }(), seed: 0)) {
            XCTAssertTrue("\($0)".contains("`reward.latency`"), "\($0)")
        }
    }

    /// A search stopped after 15 steps and resumed ends with exactly the records of an uninterrupted one.
    func testResumedSearchEqualsUninterrupted() throws {
        let straight = try makeLoop(seed: 7)
        try straight.run(steps: 40)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lth4sa-search-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = try makeLoop(directory: dir.path, seed: 7)
        var n = 0
        XCTAssertFalse(try first.run(steps: 40, shouldStop: { n += 1; return n >= 15 }))
        let resumed = try makeLoop(directory: dir.path, seed: 7)
        try resumed.resume()
        XCTAssertEqual(resumed.step, 15)
        try resumed.run(steps: 40)
        XCTAssertEqual(resumed.records, straight.records)
        let log = try String(contentsOf: dir.appendingPathComponent("search.jsonl"), encoding: .utf8)
        XCTAssertEqual(log.split(separator: "\n").count, 40)
    }

    /// The host capabilities (scheme cost, SAM parameters per block) as a plugin sees them.
    func testHostCapabilitiesReachThePlugin() throws {
        let out = try Fixtures.compile("Tests/Fixtures/plugins/capability_probe.c", into: FileManager.default.temporaryDirectory,
                                       name: "libprobe-\(UUID().uuidString).so")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let probe = try SearcherPlugin(out, stageSizes: stages, host: PluginHostContext(seed: 0), parameters: { bits in 1000 + bits.filter { $0 }.count },
                                       blockParameters: { block in block == 1 ? [2.5, 7, 9] : [] })
        let bits = try probe.ask()
        XCTAssertEqual(bits, [Array(repeating: true, count: 12)])
        let report = try probe.tell([(bits[0], RewardParts(reward: 0, accuracy: 0, sparsity: 0, curiosity: 0))])
        XCTAssertEqual(report.pBar, 1012)
        XCTAssertEqual(report.baseline, 3 * 1000 + 2.5)
    }

    func testBadSearcherInput() throws {
        XCTAssertThrowsError(try SearcherPlugin(ReferenceTests.repository.appendingPathComponent("plugins/libSE.so").path, stageSizes: stages, host: PluginHostContext(seed: 0))) {
            XCTAssertTrue("\($0)".contains("holds no searcher"), "\($0)")
        }
        XCTAssertThrowsError(try SAMPlugin(ean)) { XCTAssertTrue("\($0)".contains("holds no SAM"), "\($0)") }
        XCTAssertThrowsError(try SearcherPlugin(ean, settings: ["lr=abc"], stageSizes: stages, host: PluginHostContext(seed: 0))) { XCTAssertTrue("\($0)".contains("`searcherOptions` lr=abc")) }
        let loop = try makeLoop()
        XCTAssertThrowsError(try loop.run(steps: 0)) { XCTAssertTrue("\($0)".contains("at least 1")) }
    }
}
