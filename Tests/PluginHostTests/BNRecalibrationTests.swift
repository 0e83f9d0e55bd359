import Foundation
import Models
import NN
import PluginHost
import Search
import Tensor
import XCTest

/// BN recalibration of sub-networks (SPOS / Once-for-All style) in the scheme evaluator.
final class BNRecalibrationTests: XCTestCase {
    struct Setup {
        let net: ResNet
        let evaluator: SchemeEvaluator
        let batches: [(images: Tensor, labels: [Int32])]
        let calibration: [Tensor]
    }

    /// A 6-block supernet with random SAM parameters and deliberately wrong running statistics.
    func setup(_ plugin: String, mode: AttachMode, calibrate: Bool = true) throws -> Setup {
        let sam = try SAMPlugin(ReferenceTests.repository.appendingPathComponent("plugins/lib\(plugin).so").path, settings: ["reduction=4"])
        let net = ResNet(try ModelSpec("resnet-basic-14"), classes: 4, seed: 1)
        try SAMAttacher.attach(sam, to: net, mode: mode, scheme: .all(true, stageSizes: [2, 2, 2]), seed: 2)
        var rng = RNG(seed: 3)
        for (name, p) in net.namedParameters() where name.contains(".\(sam.id).") { rng.fillNormal(p.value, std: 0.5) }
        for (name, b) in net.namedBuffers() where name.hasSuffix("running_mean") { rng.fillNormal(b.tensor, std: 0.3) }
        for (name, b) in net.namedBuffers() where name.hasSuffix("running_var") { rng.fillUniform(b.tensor, 0.5, 2) }
        let batches: [(images: Tensor, labels: [Int32])] = (0..<2).map { _ in
            let x = Tensor([6, 16, 16, 3])
            rng.fillNormal(x, std: 1)
            return (x, (0..<6).map { _ in Int32(rng.int(4)) })
        }
        let calibration: [Tensor] = (0..<3).map { _ in
            let x = Tensor([5, 16, 16, 3])
            rng.fillNormal(x, mean: 0.2, std: 1.3)
            return x
        }
        let evaluator = SchemeEvaluator(supernet: try Supernet(net), batches: batches, restartAtStage: plugin == "DIA",
                                        calibration: calibrate ? calibration : [])
        return Setup(net: net, evaluator: evaluator, batches: batches, calibration: calibration)
    }

    static let all = (0..<64).map { v in Scheme(bits: (0..<6).map { (v >> $0) & 1 == 1 }, stageSizes: [2, 2, 2]) }

    func state(_ net: ResNet) -> [[Float]] { net.stateEntries().map { $0.1.array } }

    /// Prefix-shared recalibrated scoring equals scoring every scheme from the stem, and both
    /// leave every weight and every running statistic of the supernet as they were.
    func testPrefixSharedRecalibrationEqualsFromScratchAndTouchesNothing() throws {
        for (plugin, mode) in [("SE", AttachMode.fullSA), ("DIA", .fullShare)] {
            let shared = try setup(plugin, mode: mode), plain = try setup(plugin, mode: mode)
            let before = state(shared.net)
            _ = try shared.evaluator.accuracies(Self.all.shuffled())
            let b = try Self.all.map { try plain.evaluator.accuracies([$0], sharePrefixes: false)[0] }
            XCTAssertEqual(Self.all.map { shared.evaluator.cached($0)! }, b, plugin)
            for s in Self.all {
                let fa = shared.evaluator.logitFingerprint[s]!, fb = plain.evaluator.logitFingerprint[s]!
                XCTAssertEqual(fa, fb, accuracy: 1e-6 * max(1, fb), "\(plugin) \(s)")
            }
            XCTAssertEqual(state(shared.net), before, "\(plugin): weights and running statistics untouched")
            XCTAssertLessThan(shared.evaluator.calibrationBlocksRun, plain.evaluator.calibrationBlocksRun, "calibration shares prefixes too")
        }
    }

    /// A scheme's recalibrated score is the eval-mode score after resetting its statistics to
    /// the average train-mode batch statistics of the calibration images (computed here by
    /// whole-network passes, independently of the evaluator), and only the statistics change.
    func testRecalibratedScoreEqualsAReferenceComputation() throws {
        let s = try setup("SE", mode: .fullSA)
        let scheme = try Scheme(parsing: "10-01-11", stageSizes: [2, 2, 2])
        _ = try s.evaluator.accuracies([scheme])
        let withoutRecalibration = try setup("SE", mode: .fullSA, calibrate: false)
        _ = try withoutRecalibration.evaluator.accuracies([scheme])
        XCTAssertNotEqual(s.evaluator.logitFingerprint[scheme]!, withoutRecalibration.evaluator.logitFingerprint[scheme]!,
                          "recalibration changes the sub-network's outputs")
        // the reference: a fresh copy of the same network, statistics re-estimated by hand
        let ref = try setup("SE", mode: .fullSA, calibrate: false)
        let supernet = try Supernet(ref.net)
        supernet.apply(scheme)
        let norms = [ref.net.bn1] + ref.net.blockNorms.flatMap { $0 }
        var sums = norms.map { NormStatistics(channels: $0.channels) }
        let parameters = ref.net.namedParameters().map { $0.1.value.array }
        for x in ref.calibration {
            _ = try ref.net.forward(x, training: true)
            for (k, bn) in norms.enumerated() { bn.accumulateLastBatchStatistics(into: &sums[k]) }
        }
        for (bn, s) in zip(norms, sums) { bn.setRunningStatistics(s.averaged(over: ref.calibration.count)) }
        XCTAssertEqual(ref.net.namedParameters().map { $0.1.value.array }, parameters, "train-mode passes change no weight")
        var fingerprint = 0.0
        for b in ref.batches {
            let logits = try ref.net.forward(b.images, training: false)
            for i in 0..<logits.count { fingerprint += Double(abs(logits[i])) }
        }
        XCTAssertEqual(s.evaluator.logitFingerprint[scheme]!, fingerprint, accuracy: 1e-5 * fingerprint)
    }
}
