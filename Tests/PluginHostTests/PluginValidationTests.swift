import Foundation
import Models
import PluginHost
import Search
import Tensor
import TestSupport
import XCTest

/// Everything a plugin hands back is validated: parameter declarations (unique, non-NULL names,
/// bounded sizes), schemes (bytes 0/1, inside the buffer), searcher states (bounded, inside the
/// buffer, loaded only into the searcher that wrote them).
final class PluginValidationTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("lth4sa-validation-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// Compiles a fixture of Tests/Fixtures/plugins with `flags` into this test's folder.
    func fixture(_ source: String, _ flags: [String]) throws -> String {
        try Fixtures.compile("Tests/Fixtures/plugins/\(source).c", flags: flags, into: dir)
    }

    /// The host's `parallel_for` runs every body exactly once on the shared pool: a plugin that
    /// writes A = 1 one image per body gives F' = F exactly (an image left out would read the
    /// pool's stale memory; 40 images over the workers).
    func testParallelForRunsEveryBody() throws {
        let plugin = try SAMPlugin(try fixture("process_fails", ["-DPARALLEL_FOR", "-DFAIL_AT=1000000"]))
        var rng = RNG(seed: 3)
        let instance = try plugin.instantiate(channels: 8, rng: &rng, host: PluginHostContext(seed: 0))
        let site = SAMSiteFactory.make(instance, position: 0)
        let x = Tensor([40, 3, 3, 8])
        rng.fillNormal(x, std: 1)
        for _ in 0..<3 {
            let y = try site.forwardChecked(x, training: false)
            XCTAssertEqual(y.maxAbsDiff(x), 0)
        }
    }

    func assertRefused(_ body: () throws -> Void, mentioning text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { XCTAssertTrue("\($0)".contains(text), "'\($0)' should mention '\(text)'", file: file, line: line) }
    }

    func testBrokenParameterDeclarationsAreRefused() throws {
        var rng = RNG(seed: 0)
        for (flag, text) in [("-DDUPLICATE_NAMES", "two parameters are named 'fc.weight'"), ("-DNULL_NAME", "NULL name"), ("-DHUGE", "more than 268435456 elements"),
                             ("-DBUFFER_CLASH", "buffer 'fc.weight' has the name of a parameter or another buffer"),
                             ("-DCOUNTER_PARAM", "parameter fc.bias has the counter init rule, which is for buffers only"),
                             ("-DNO_BIND_BUFFERS", "declares 1 buffer(s) but its SAM table has no buffer_info or bind_buffers function")] {
            let sam = try SAMPlugin(try fixture("bad_params", [flag]))
            assertRefused({ _ = try sam.instantiate(channels: 8, rng: &rng, host: PluginHostContext(seed: 0)) }, mentioning: text)
            // the conformance kit reports it as a failure too
            let results = Conformance.run(sam, channels: 8)
            XCTAssertTrue(results.contains { !$0.passed && $0.detail.contains(text) }, "\(flag): \(results.map { "\($0.name): \($0.detail)" })")
        }
    }

    /// A plugin that declares LTH4SA_SAM_PROCESS_IGNORES_INPUT, reads F anyway and writes
    /// d_input: the conformance kit reports it, and the deployed network's path and training
    /// (zero pages for F, a sink for d_input) run to the end with finite values instead of crashing.
    func testFalseProcessIgnoresInputClaimIsReportedNotFatal() throws {
        let sam = try SAMPlugin(try fixture("process_fails", ["-DFALSE_FLAG"]))
        let results = Conformance.run(sam, channels: 8)
        let flags = try XCTUnwrap(results.first { $0.name == "declared layout flags hold" })
        XCTAssertFalse(flags.passed, flags.detail)
        let net = ResNet(try ModelSpec("resnet-bottleneck-20"), classes: 4, seed: 1)
        try SAMAttacher.attach(sam, to: net, mode: .fullSA, scheme: .all(true, stageSizes: [2, 2, 2]), seed: 2)
        net.foldBatchNorms()
        var rng = RNG(seed: 3)
        let x = Tensor([2, 16, 16, 3])
        rng.fillNormal(x, std: 1)
        XCTAssertTrue(try net.inferFolded(x).array.allSatisfy { $0.isFinite })
        // training without F (the SE folded into the batch norm) runs too
        let logits = try net.forward(x, training: true)
        XCTAssertTrue(logits.array.allSatisfy { $0.isFinite })
        let dLogits = Tensor(logits.shape)
        dLogits.fill(0.1)
        _ = try net.backward(dLogits)
        XCTAssertTrue(net.namedParameters().allSatisfy { $0.1.grad.array.allSatisfy { $0.isFinite } })
    }

    func testBrokenSearcherOutputsAreRefused() throws {
        func searcher(_ flag: String) throws -> SearcherPlugin {
            try SearcherPlugin(try fixture("bad_searcher", [flag]), stageSizes: [2, 2, 2], host: PluginHostContext(seed: 0))
        }
        assertRefused({ _ = try searcher("-DBAD_BITS").ask() }, mentioning: "must be 0 or 1")
        assertRefused({ _ = try searcher("-DASK_OVERRUN").ask() }, mentioning: "wrote past")
        assertRefused({ _ = try searcher("-DHUGE_STATE").saveState() }, mentioning: "state_size reports 1125899906842624 bytes")
        assertRefused({ _ = try searcher("-DSAVE_OVERRUN").saveState() }, mentioning: "save wrote past")
        XCTAssertEqual(try searcher("-DNONE").saveState().count, 8, "a well-behaved save is accepted")
    }

    /// A search checkpoint is only loaded into the searcher (id, version, options) that wrote it.
    func testSearchStateOfAnotherSearcherIsRefused() throws {
        let stages = [2, 2, 2]
        func loop(_ spec: String, _ settings: [String] = []) throws -> SearchLoop {
            let host = PluginHostContext(seed: 0)
            return SearchLoop(searcher: try SearcherPlugin(spec, settings: settings, stageSizes: stages, host: host), stageSizes: stages,
                              reward: try RewardModel(blocks: 6, weights: RewardWeights(), seed: 0),
                              accuracies: { $0.map { Double($0.bits.filter { $0 }.count) } }, directory: dir.path, rngState: host.rngState)
        }
        let random = ReferenceTests.repository.appendingPathComponent("plugins/libRandom.so").path
        let ga = ReferenceTests.repository.appendingPathComponent("plugins/libGA.so").path
        try loop(random).run(steps: 3)
        assertRefused({ try loop(ga, ["population=4"]).resume() }, mentioning: "belongs to searcher 'random 1.0.0")
        assertRefused({ try loop(random, ["ratio=0.5"]).resume() }, mentioning: "ratio=0.5")
        XCTAssertNoThrow(try loop(random).resume())
    }
}
