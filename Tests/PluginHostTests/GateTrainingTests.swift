import Foundation
import Models
import NN
import PluginHost
import Search
import Tensor
import XCTest

/// DARTS gates on a real network: dLoss/dgate from backward against central differences.
final class GateTrainingTests: XCTestCase {
    func makeGates(_ plugin: String, mode: AttachMode) throws -> (GateTrainer, Tensor, [Int32]) {
        let sam = try SAMPlugin(ReferenceTests.repository.appendingPathComponent("plugins/lib\(plugin).so").path)
        let spec = try ModelSpec("resnet-basic-8")  // 1 block per stage, 16/32/64 channels
        let net = ResNet(spec, classes: 4, seed: 1)
        try SAMAttacher.attach(sam, to: net, mode: mode, scheme: .all(true, stageSizes: spec.blocksPerStage), seed: 2)
        var rng = RNG(seed: 3)
        for (name, p) in net.namedParameters() where name.contains(".\(sam.id).") { rng.fillNormal(p.value, std: 0.5); p.touch() }
        let x = Tensor([6, 16, 16, 3])
        rng.fillNormal(x, std: 1)
        let labels: [Int32] = [0, 1, 2, 3, 1, 2]
        let trainer = try GateTrainer(net: net, optimizer: SGD(net.namedParameters(), lr: 0.01),
                                      nextTrainBatch: { (x, labels) }, nextValidationBatch: { (x, labels) })
        return (trainer, x, labels)
    }

    /// dLoss/dgate against central differences of the training-mode loss, per gate and along
    /// directions, with the settings of the other whole-network checks (AttachTests): steps
    /// 1e-3, 3e-4, 1e-4, tolerance 1e-4 + 3% (fp32 round-off at small steps, ReLU kinks at large
    /// ones; a wrong gradient disagrees at every step). GC's per-gate check allows 15%: its first
    /// gate's difference quotients scatter over -0.00282 .. -0.00360 between these steps around
    /// an analytic -0.003193 that is the same to 6 digits with direct and Winograd convolutions
    /// and with AVX2 kernels (the loss's round-off moves the estimate, not the gradient); the
    /// directional check keeps 3%, and a permutation of the gates still fails.
    func testGateGradientsMatchFiniteDifferences() throws {
        for (plugin, mode) in [("SE", AttachMode.fullSA), ("GC", .fullSA), ("DIA", .fullShare)] {
            let (trainer, x, labels) = try makeGates(plugin, mode: mode)
            let gates = Tensor([3], [0.3, 0.8, 0.55])
            func loss() -> Double {
                (try? trainer.lossAndGateGradient(gates: gates.array.map(Double.init), images: x, labels: labels, updateWeights: false).loss) ?? .nan
            }
            let analytic = try trainer.lossAndGateGradient(gates: gates.array.map(Double.init), images: x, labels: labels, updateWeights: false).gradient
            XCTAssertTrue(analytic.contains { abs($0) > 1e-3 }, "\(plugin): gradients are not all zero")
            let gc = GradientCheck(eps: 1e-3, rtol: 3e-2, atol: 1e-4, samples: 3, extraSteps: [3e-4, 1e-4])
            let perGate = GradientCheck(eps: 1e-3, rtol: plugin == "GC" ? 0.15 : 3e-2, atol: 1e-4, samples: 3, extraSteps: [3e-4, 1e-4])
            let g = Tensor([3], analytic.map(Float.init))
            XCTAssertNil(perGate.check(gates, analytic: g, loss: loss).map { "\(plugin): \($0)" })
            XCTAssertNil(gc.checkDirectional(gates, analytic: g, loss: loss).map { "\(plugin): \($0)" })
            // and the check notices a wrong gradient (the gates permuted)
            XCTAssertNotNil(perGate.check(gates, analytic: Tensor([3], [g[1], g[2], g[0]]), loss: loss), plugin)
        }
    }

    /// Gate 1 is the SAM, gate 0 the plain block; weights move only in `trainWeights`.
    func testGateEndpointsAndWeightUpdates() throws {
        let (trainer, x, labels) = try makeGates("SE", mode: .fullSA)
        let before = trainer.net.namedParameters().map { $0.1.value.array }
        let full = try trainer.lossAndGateGradient(gates: [1, 1, 1], images: x, labels: labels, updateWeights: false).loss
        let none = try trainer.lossAndGateGradient(gates: [0, 0, 0], images: x, labels: labels, updateWeights: false).loss
        for (block, gate) in zip(trainer.net.blocks, trainer.gates) { block.attention = gate.inner }
        let sam = try trainer.lossAndGateGradient(gates: [1, 1, 1], images: x, labels: labels, updateWeights: false)
        XCTAssertEqual(full, sam.loss, accuracy: 1e-6)
        for block in trainer.net.blocks { block.attention = nil }
        let lossFn = SoftmaxCrossEntropy()
        XCTAssertEqual(none, lossFn(try trainer.net.forward(x, training: true), labels).loss, accuracy: 1e-6)
        for (block, gate) in zip(trainer.net.blocks, trainer.gates) { block.attention = gate }
        _ = try trainer.validationGradient(gates: [0.5, 0.5, 0.5])
        XCTAssertEqual(trainer.net.namedParameters().map { $0.1.value.array }, before, "validation leaves the weights")
        _ = try trainer.trainWeights(gates: [0.5, 0.5, 0.5])
        XCTAssertNotEqual(trainer.net.namedParameters().map { $0.1.value.array }, before, "a training step moves them")
        XCTAssertThrowsError(try trainer.trainWeights(gates: [0.5, 1.5, 0.5])) { XCTAssertTrue("\($0)".contains("1.5")) }
    }
}
