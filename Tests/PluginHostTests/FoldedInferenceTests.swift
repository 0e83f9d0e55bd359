import Foundation
import Models
import NN
import PluginHost
import Search
import Tensor
import TestSupport
import XCTest

/// Inference with every batch norm folded into its convolution (`ResNet.inferFolded`, the
/// evaluator's fast path) against eval-mode `forward`, on networks whose BN statistics,
/// affine parameters and SAM parameters are far from their initial values (as after training).
final class FoldedInferenceTests: XCTestCase {
    /// Random "trained" state: weights, BN gamma/beta/statistics and SAM parameters.
    func randomize(_ net: ResNet, seed: UInt64) {
        var rng = RNG(seed: seed)
        for (name, p) in net.namedParameters() {
            let layer = name.range(of: #"(^|\.)(conv\d|bn\d|downsample\.\d|fc)\.(weight|bias)$"#, options: .regularExpression).map { String(name[$0]) } ?? ""
            if layer.isEmpty {
                rng.fillNormal(p.value, std: 0.5)  // SAM parameters (some start at zero, e.g. GC's last layer)
            } else if layer.contains("bn") || layer.contains("downsample.1") {
                if name.hasSuffix("weight") { rng.fillUniform(p.value, 0.5, 1.5) } else { rng.fillNormal(p.value, std: 0.2) }
            }
            p.touch()
        }
        for (name, b) in net.namedBuffers() where name.hasSuffix("running_mean") { rng.fillNormal(b.tensor, std: 0.3) }
        for (name, b) in net.namedBuffers() where name.hasSuffix("running_var") { rng.fillUniform(b.tensor, 0.5, 2) }
    }

    /// Largest |a - b| over the largest |b|.
    func relativeDifference(_ a: Tensor, _ b: Tensor) -> Float {
        let scale = max(b.array.map(abs).max() ?? 0, 1e-12)
        return zip(a.array, b.array).map { abs($0 - $1) }.max()! / scale
    }

    func input(_ n: Int, seed: UInt64) -> Tensor {
        var rng = RNG(seed: seed)
        let x = Tensor([n, 16, 16, 3])
        rng.fillNormal(x, std: 1)
        return x
    }

    /// Plain basic and bottleneck networks (identity and projection shortcuts), batch 5 and 1.
    func testFoldedEqualsEvalModeWithoutAttention() throws {
        for model in ["resnet-basic-14", "resnet-bottleneck-20"] {
            let net = ResNet(try ModelSpec(model), classes: 6, seed: 1)
            randomize(net, seed: 2)
            net.foldBatchNorms()
            for n in [5, 1] {
                let x = input(n, seed: 3)
                let folded = try net.inferFolded(x).clone(), plain = try net.forward(x, training: false)
                XCTAssertLessThan(relativeDifference(folded, plain), 1e-5, "\(model) batch \(n)")
            }
        }
    }

    /// Lanes (`InferenceLanes`: replicas side by side, each on its slice of the batch) give the
    /// logits of the one network they copy: deployed, 2 and 3 lanes over 7 images
    /// (uneven slices), with every first-party SAM -- a stateful one (DIA), one with buffers
    /// (coordinate attention, its running statistics copied) --; a replica's own state is its own (its weights were
    /// drawn from another seed before the copy). Eval mode (unfolded batch norms) is refused in
    /// more than one lane: oneDNN's batch-norm primitive gives wrong outputs inside a parallel
    /// region with its AVX2 kernels (measured: 4.7 off on a unit-variance input).
    func testLanesGiveTheLogitsOfTheNetworkTheyCopy() throws {
        for plugin in ["SE", "DIA", "CoordAtt", "GC", "SGE", "CBAM", "ECA", "SimAM"] {
            let sam = try SAMPlugin(ReferenceTests.repository.appendingPathComponent("plugins/lib\(plugin).so").path, settings: [])
            func network(seed: UInt64) throws -> ResNet {
                let net = ResNet(try ModelSpec("resnet-bottleneck-20"), classes: 6, seed: seed)
                try SAMAttacher.attach(sam, to: net, mode: .fullSA, scheme: try Scheme(parsing: "10-11-01", stageSizes: [2, 2, 2]), seed: seed)
                randomize(net, seed: seed + 10)
                return net
            }
            let net = try network(seed: 1)
            let x = input(7, seed: 4)
            let plain = try net.forward(x, training: false).clone()
            XCTAssertLessThan(relativeDifference(try InferenceLanes(net, count: 1) { net }.infer(x, folded: false), plain), 1e-6, "one lane: eval mode")
            net.foldBatchNorms()
            let folded = try net.inferFolded(x).clone()
            for count in [2, 3] {
                var seed: UInt64 = 100
                let lanes = try InferenceLanes(net, count: count) { seed += 1; return try network(seed: seed) }
                XCTAssertEqual(lanes.count, count)
                lanes.foldBatchNorms()
                XCTAssertLessThan(relativeDifference(try lanes.infer(x), folded), 1e-5, "\(plugin), \(count) lanes, deployed")
                XCTAssertThrowsError(try lanes.infer(x, folded: false), "eval mode runs in one lane only") {
                    XCTAssertTrue("\($0)".contains("one lane only"), "\($0)")
                }
                XCTAssertLessThan(relativeDifference(try lanes.infer(input(1, seed: 4)), try net.inferFolded(input(1, seed: 4)).clone()), 1e-5,
                                  "\(plugin): one image, one lane")
            }
        }
    }

    /// A plugin failing inside a lane: `infer` throws its error (the other lanes finish).
    func testAFailureInALaneIsThrown() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lth4sa-lanes-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let sam = try SAMPlugin(try Fixtures.compile("Tests/Fixtures/plugins/process_fails.c", flags: ["-DFAIL_AT=1"], into: dir))
        func network() throws -> ResNet {
            let net = ResNet(try ModelSpec("resnet-bottleneck-20"), classes: 6, seed: 1)
            try SAMAttacher.attach(sam, to: net, mode: .fullSA, scheme: .all(true, stageSizes: [2, 2, 2]), seed: 1)
            return net
        }
        let lanes = try InferenceLanes(try network(), count: 2) { try network() }
        lanes.foldBatchNorms()
        XCTAssertThrowsError(try lanes.infer(input(4, seed: 1))) { XCTAssertTrue("\($0)".contains("deliberate failure"), "\($0)") }
    }

    /// Every first-party SAM and the SDK's CBAM, Full-SA and Full-Share, on a mixed scheme
    /// (blocks with and without attention), batch 1 and 4, then again after the weights
    /// changed and the folding was refreshed.
    func testFoldedEqualsEvalModeWithEverySAM() throws {
        for plugin in ["SE", "GC", "SGE", "DIA", "CBAM"] {
            for mode in [AttachMode.fullSA, .fullShare] {
                let sam = try SAMPlugin(ReferenceTests.repository.appendingPathComponent("plugins/lib\(plugin).so").path, settings: [])
                let net = ResNet(try ModelSpec("resnet-bottleneck-20"), classes: 6, seed: 1)
                try SAMAttacher.attach(sam, to: net, mode: mode, scheme: try Scheme(parsing: "10-11-01", stageSizes: [2, 2, 2]), seed: 2)
                randomize(net, seed: 3)
                net.foldBatchNorms()
                let single = input(1, seed: 6)  // one image: the per-image paths without worker threads
                XCTAssertLessThan(relativeDifference(try net.inferFolded(single).clone(), try net.forward(single, training: false)), 1e-5,
                                  "\(plugin) \(mode) batch 1")
                let x = input(4, seed: 4)
                let folded = try net.inferFolded(x).clone(), plain = try net.forward(x, training: false)
                XCTAssertLessThan(relativeDifference(folded, plain), 1e-5, "\(plugin) \(mode)")
                randomize(net, seed: 5)  // new values: a refresh must pick them up
                net.foldBatchNorms()
                let refolded = try net.inferFolded(x).clone(), replain = try net.forward(x, training: false)
                XCTAssertLessThan(relativeDifference(refolded, replain), 1e-5, "\(plugin) \(mode) after refresh")
                XCTAssertGreaterThan(relativeDifference(refolded, folded), 1e-3, "the refresh changed the result")
            }
        }
    }

    /// The landscape of a 6-block supernet (all 64 schemes, prefix sharing and branch reuse)
    /// on the folded path has exactly the accuracies of eval-mode blocks, for SE (Full-SA and
    /// Full-Share) and the stateful DIA; the logits agree to rounding.
    func testFoldedLandscapeEqualsEvalModeExactly() throws {
        for (plugin, mode) in [("SE", AttachMode.fullSA), ("SE", .fullShare), ("DIA", .fullSA), ("GC", .fullSA)] {
            func evaluator(folds: Bool) throws -> SchemeEvaluator {
                let sam = try SAMPlugin(ReferenceTests.repository.appendingPathComponent("plugins/lib\(plugin).so").path, settings: [])
                let net = ResNet(try ModelSpec("resnet-bottleneck-20"), classes: 4, seed: 1)
                try SAMAttacher.attach(sam, to: net, mode: mode, scheme: .all(true, stageSizes: [2, 2, 2]), seed: 2)
                randomize(net, seed: 3)
                var rng = RNG(seed: 4)
                let batches: [(images: Tensor, labels: [Int32])] = (0..<3).map { _ in
                    let x = Tensor([20, 16, 16, 3])
                    rng.fillNormal(x, std: 1)
                    return (x, (0..<20).map { _ in Int32(rng.int(4)) })
                }
                let e = SchemeEvaluator(supernet: try Supernet(net), batches: batches, restartAtStage: plugin == "DIA")
                e.folds = folds
                return e
            }
            let all = (0..<64).map { v in Scheme(bits: (0..<6).map { (v >> $0) & 1 == 1 }, stageSizes: [2, 2, 2]) }
            let fast = try evaluator(folds: true), plain = try evaluator(folds: false)
            let a = try fast.accuracies(all), b = try plain.accuracies(all)
            XCTAssertEqual(a, b, "\(plugin) \(mode)")
            XCTAssertGreaterThan(Set(all.map { plain.logitFingerprint[$0]! }).count, 32, "\(plugin) \(mode): the schemes' logits differ")
            for s in all {
                let fa = fast.logitFingerprint[s]!, fb = plain.logitFingerprint[s]!
                XCTAssertEqual(fa, fb, accuracy: 1e-5 * fb, "\(plugin) \(mode) \(s)")
            }
        }
    }
}
