import Foundation
import Models
import NN
import PluginHost
import Search
import Tensor
import XCTest

final class SearchEnvironmentTests: XCTestCase {
    static func evaluator(_ plugin: String, mode: AttachMode) throws -> SchemeEvaluator {
        let sam = try SAMPlugin(ReferenceTests.repository.appendingPathComponent("plugins/lib\(plugin).so").path, settings: ["reduction=4"])
        let net = ResNet(try ModelSpec("resnet-basic-14"), classes: 4, seed: 1)
        try SAMAttacher.attach(sam, to: net, mode: mode, scheme: .all(true, stageSizes: [2, 2, 2]), seed: 2)
        var rng = RNG(seed: 3)
        for (name, p) in net.namedParameters() where name.contains(".\(sam.id).") { rng.fillNormal(p.value, std: 0.5) }
        let batches: [(images: Tensor, labels: [Int32])] = (0..<2).map { _ in
            let x = Tensor([6, 16, 16, 3])
            rng.fillNormal(x, std: 1)
            return (x, (0..<6).map { _ in Int32(rng.int(4)) })
        }
        return SchemeEvaluator(supernet: try Supernet(net), batches: batches, restartAtStage: plugin == "DIA")
    }

    /// Prefix-shared, cached evaluation gives exactly the outputs of plain evaluation.
    func testPrefixSharingAndCacheEqualPlainEvaluation() throws {
        for (plugin, mode) in [("SE", AttachMode.fullSA), ("DIA", .fullShare)] {
            let all = (0..<64).map { v in Scheme(bits: (0..<6).map { (v >> $0) & 1 == 1 }, stageSizes: [2, 2, 2]) }
            let shared = try Self.evaluator(plugin, mode: mode), plain = try Self.evaluator(plugin, mode: mode)
            let a = try shared.accuracies(all.shuffled())
            _ = a
            let b = try all.map { try plain.accuracies([$0], sharePrefixes: false)[0] }
            XCTAssertEqual(all.map { shared.cached($0)! }, b, plugin)
            for s in all {
                let fa = shared.logitFingerprint[s]!, fb = plain.logitFingerprint[s]!
                XCTAssertEqual(fa, fb, accuracy: 1e-6 * max(1, fb), "\(plugin) \(s)")
            }
            XCTAssertLessThan(shared.blocksRun, plain.blocksRun, "prefix sharing runs fewer blocks")
            let before = shared.blocksRun
            _ = try shared.accuracies(all)
            XCTAssertEqual(shared.blocksRun, before, "cached schemes are not evaluated again")
        }
    }

    /// The evaluator's validation loss is the mean cross-entropy of the scheme's own eval-mode
    /// forward pass (float32 logits; relative tolerance 1e-4), prefix-shared or not.
    func testValidationLossEqualsDirectCrossEntropy() throws {
        let evaluator = try Self.evaluator("SE", mode: .fullSA)
        let schemes = ["10-01-11", "00-00-00", "11-11-11", "10-01-10"].map { try! Scheme(parsing: $0, stageSizes: [2, 2, 2]) }
        let losses = try evaluator.losses(schemes)
        let direct = try Self.evaluator("SE", mode: .fullSA)
        let ce = SoftmaxCrossEntropy()
        for (scheme, loss) in zip(schemes, losses) {
            direct.supernet.apply(scheme)
            var sum = 0.0, count = 0
            for b in direct.batches {
                sum += ce(try direct.supernet.net.forward(b.images, training: false), b.labels).loss * Double(b.labels.count)
                count += b.labels.count
            }
            XCTAssertEqual(loss, sum / Double(count), accuracy: 1e-4 * max(1, abs(loss)), "\(scheme)")
        }
        XCTAssertNotEqual(losses[0], losses[1], "schemes differ in their loss")
        // the likelihood score is 100 exp(-loss): the geometric mean probability of the true class
        for (l, score) in zip(losses, try evaluator.scores(schemes, by: .likelihood)) { XCTAssertEqual(score, 100 * exp(-l), accuracy: 1e-9) }
        XCTAssertEqual(try evaluator.scores(schemes, by: .accuracy), try evaluator.accuracies(schemes))
    }

    func testRewardComposition() throws {
        var w = RewardWeights()
        w.curiosity = 0
        let model = try RewardModel(blocks: 4, weights: w, seed: 1)
        let r = model.score([true, false, false, false], accuracy: 60)
        XCTAssertEqual(r.reward, 60 + 2 * 0.75 - 54, accuracy: 1e-9)
        // RND curiosity shrinks on a scheme seen again and again
        let rnd = try RewardModel(blocks: 4, weights: RewardWeights(), seed: 1)
        let first = rnd.score([true, true, false, false], accuracy: 50).curiosity
        for _ in 0..<50 { _ = rnd.score([true, true, false, false], accuracy: 50) }
        XCTAssertLessThan(rnd.score([true, true, false, false], accuracy: 50).curiosity, first * 0.1)
    }
}
