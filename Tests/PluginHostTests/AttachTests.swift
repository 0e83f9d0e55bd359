import Foundation
import Models
import NN
import PluginHost
import Tensor
import XCTest

final class AttachTests: XCTestCase {
    func net(_ name: String, classes: Int = 100) throws -> ResNet { ResNet(try ModelSpec(name), classes: classes, seed: 0) }

    /// Parameter counts equal PyTorch's (SE reduction 16 with biases).
    func testParameterCountsWithSE() throws {
        let se = try ReferenceTests.plugin("SE")
        for (model, fullSA, fullShare) in [("resnet38", 473_892, 440_208), ("resnet164", 1_929_388, 1_738_512)] {
            let a = try net(model)
            try SAMAttacher.attach(se, to: a, mode: .fullSA, scheme: .all(true, stageSizes: a.spec.blocksPerStage), seed: 0)
            XCTAssertEqual(a.parameterCount, fullSA, "\(model) Full-SA")
            let b = try net(model)
            try SAMAttacher.attach(se, to: b, mode: .fullShare, scheme: .all(true, stageSizes: b.spec.blocksPerStage), seed: 0)
            XCTAssertEqual(b.parameterCount, fullShare, "\(model) Full-Share")
        }
        let a = try net("resnet38")
        try SAMAttacher.attach(se, to: a, mode: .fullSA, scheme: try Scheme(parsing: "1000-0000-0001", stageSizes: [4, 4, 4]), seed: 0)
        XCTAssertEqual(a.parameterCount, 428_980 + 580 + 8464)
        let names = a.namedParameters().map { $0.0 }
        XCTAssertTrue(names.contains("layer1.0.se.fc1.weight"), "\(names.filter { $0.contains("se") })")
        XCTAssertTrue(names.contains("layer3.3.se.fc2.bias"))
        let b = try net("resnet38")
        try SAMAttacher.attach(se, to: b, mode: .fullShare, scheme: .all(true, stageSizes: [4, 4, 4]), seed: 0)
        XCTAssertTrue(b.namedParameters().map { $0.0 }.contains("layer2.se.fc1.weight"))
    }

    func testSchemeParsing() throws {
        let s = try Scheme(parsing: "0110-1010-0001", stageSizes: [4, 4, 4])
        XCTAssertEqual(s, try Scheme(parsing: "011010100001", stageSizes: [4, 4, 4]))
        XCTAssertEqual(s.description, "0110-1010-0001")
        XCTAssertEqual(s.connectionRatio, 5.0 / 12.0, accuracy: 1e-12)
        XCTAssertThrowsError(try Scheme(parsing: "0110", stageSizes: [4, 4, 4])) { XCTAssertTrue("\($0)".contains("12 blocks"), "\($0)") }
        XCTAssertThrowsError(try Scheme(parsing: "01x0-1010-0001", stageSizes: [4, 4, 4])) { XCTAssertTrue("\($0)".contains("'x'")) }
        XCTAssertThrowsError(try Scheme(parsing: "01101-010-0001", stageSizes: [4, 4, 4])) { XCTAssertTrue("\($0)".contains("5-3-4")) }
    }

    /// Finite differences through a small network with each SAM attached (Full-SA, Full-Share
    /// and a partial scheme), training mode: input gradient and SAM parameter gradients.
    func testGradientsThroughNetworksWithSAMs() throws {
        for (plugin, mode, scheme) in [("SE", AttachMode.fullSA, "11-11-11"), ("SE", .fullShare, "11-01-11"),
                                       ("SGE", .fullSA, "11-10-01"), ("DIA", .fullShare, "11-01-11"),
                                       ("CBAM", .fullSA, "10-01-11"), ("GC", .fullShare, "11-11-01")] {
            let sam = try SAMPlugin(ReferenceTests.repository.appendingPathComponent("plugins/lib\(plugin).so").path,
                                    settings: ["SE", "CBAM", "GC"].contains(plugin) ? ["reduction=4"] : [])
            let net = ResNet(try ModelSpec("resnet-basic-14"), classes: 3, seed: 5)
            try SAMAttacher.attach(sam, to: net, mode: mode, scheme: try Scheme(parsing: scheme, stageSizes: [2, 2, 2]), seed: 1)
            // random SAM parameters, so that zero-initialised ones (SGE's gamma, GC's last
            // conv) do not hide a path
            var rng = RNG(seed: 2)
            for (name, p) in net.namedParameters() where name.contains(".\(sam.id).") { rng.fillNormal(p.value, std: 0.4) }
            let x = Tensor([4, 8, 8, 3])
            rng.fillNormal(x, std: 1)
            let labels: [Int32] = [0, 1, 2, 1]
            let ce = SoftmaxCrossEntropy()
            func loss() -> Double { ce(try! net.forward(x, training: true), labels).loss }
            net.conv1.needsInputGrad = true
            net.zeroGrad()
            let dx = try XCTUnwrap(try net.backward(ce(try net.forward(x, training: true), labels).gradient)).clone()
            // atol 1e-4: fp32 round-off of the loss divided by the step
            let gc = GradientCheck(eps: 1e-3, rtol: 3e-2, atol: 1e-4, samples: 8, extraSteps: [3e-4, 1e-4])
            let what = "\(plugin) \(mode.rawValue) \(scheme)"
            XCTAssertNil(gc.checkDirectional(x, analytic: dx, loss: loss).map { "\(what) input: \($0)" })
            let samParams = net.namedParameters().filter { $0.0.contains(".\(sam.id).") }
            XCTAssertFalse(samParams.isEmpty, what)
            for (name, p) in samParams {
                if name.hasSuffix("conv_mask.bias") {
                    // GC's softmax over positions is shift-invariant: the loss does not depend on
                    // this bias at all, so its gradient is exactly zero. A finite difference sees
                    // only the loss's fp32 round-off (a few ulps / step, 1e-4 and more here).
                    XCTAssertLessThan(p.grad.buffer.map(abs).max()!, 1e-6, "\(what) \(name): the gradient must be zero")
                    continue
                }
                let f = gc.checkDirectional(p.value, analytic: p.grad.clone(), loss: loss)
                XCTAssertNil(f, "\(what) \(name): \(f ?? "")")
            }
        }
    }

    /// Training with SE folded into the branch's last batch norm (S from the statistics pass,
    /// A inside the normalisation, `BatchNorm2d.backward(_:scaledBy:attentionBackward:)`) equals
    /// the path that forms F and runs the SAM on it: logits within 1e-5, every parameter gradient
    /// and the input gradient within 1e-4 of its largest value, the running statistics within
    /// 1e-5; bottleneck and basic blocks, Full-SA and Full-Share (a stage's blocks share one SE),
    /// a partial scheme. The folded path must really run: the unfolded net keeps F for the SE
    /// (`SAMSite.forward`/`joined`), which a wrapper without `scale` forces. The reference runs
    /// oneDNN's backward kernels; the folded and the unfolded net with the fused ones (the last
    /// batch norm's second pass deferred into conv3's fused backward, or given) and the folded one
    /// with oneDNN's are each compared with it. The paths round differently, so a pre-activation
    /// within ~1e-6 of zero can leave a ReLU open in one and closed in the other, which changes
    /// every gradient upstream beyond these bounds (a kink, not an error: 1 of 27,648 outputs did
    /// for scheme 01-00-00): each comparison uses the first of five input batches on which every
    /// block output's ReLU mask agrees with the reference's, and there must be one.
    func testTrainingWithSEFoldedIntoTheBatchNormEqualsUnfolded() throws {
        /// Hides `scale`, so that blocks form F and call `joined`/`forward`/`backward`.
        final class Unfolded: BranchAttention {
            let inner: BranchAttention
            init(_ inner: BranchAttention) { self.inner = inner }
            func forward(_ branch: Tensor, training: Bool) -> Tensor { inner.forward(branch, training: training) }
            func backward(_ gradient: Tensor) -> Tensor { inner.backward(gradient) }
            func joined(_ branch: Tensor, shortcut: Tensor, training: Bool, into output: Tensor) -> Tensor? {
                inner.joined(branch, shortcut: shortcut, training: training, into: output)
            }
        }
        let sam = try SAMPlugin(ReferenceTests.repository.appendingPathComponent("plugins/libSE.so").path, settings: ["reduction=4"])
        for (model, mode, scheme) in [("resnet-bottleneck-20", AttachMode.fullSA, "11-11-11"), ("resnet-bottleneck-20", .fullShare, "10-11-01"),
                                      ("resnet-bottleneck-20", .fullSA, "01-00-00"),
                                      ("resnet-basic-14", .fullSA, "01-11-10")] {
            let what = "\(model) \(mode.rawValue) \(scheme)"
            func build(unfolded: Bool, kernels: BackwardKernels) throws -> ResNet {
                let net = ResNet(try ModelSpec(model), classes: 5, seed: 3)
                net.backwardKernels = kernels
                try SAMAttacher.attach(sam, to: net, mode: mode, scheme: try Scheme(parsing: scheme, stageSizes: [2, 2, 2]), seed: 4)
                var rng = RNG(seed: 6)
                // random batch-norm affines and SE weights, so that no term vanishes
                for (name, p) in net.namedParameters() where name.contains("bn") || name.contains(".\(sam.id).") { rng.fillNormal(p.value, mean: 0.5, std: 0.5) }
                if unfolded { for block in net.blocks where block.attention != nil { block.attention = Unfolded(block.attention!) } }
                net.conv1.needsInputGrad = true
                net.zeroGrad()
                return net
            }
            let labels: [Int32] = [0, 1, 2, 3, 4, 0]
            let ce = SoftmaxCrossEntropy()
            func train(_ net: ResNet, seed: UInt64) throws -> (logits: Tensor, dx: Tensor, outputs: [Tensor]) {
                var rng = RNG(seed: seed)
                let x = Tensor([6, 12, 12, 3])
                rng.fillNormal(x, std: 1)
                net.zeroGrad()
                var result: (logits: Tensor, dx: Tensor, outputs: [Tensor])?
                for _ in 0..<2 {  // twice: buffers reused, gradients accumulate
                    var outputs: [Tensor] = []
                    let logits = try net.forward(x, training: true, blockOutput: { outputs.append($1.clone()) }).clone()
                    result = (logits, try XCTUnwrap(try net.backward(ce(logits, labels).gradient)).clone(), outputs)
                }
                return result!
            }
            let scale = { (t: Tensor) in max(t.buffer.map(abs).max()!, 1e-6) }
            for (unfolded, kernels) in [(false, BackwardKernels.fused), (false, .onednn), (true, .fused)] {
                let candidate = "\(what) (\(unfolded ? "unfolded" : "folded"), \(kernels.rawValue) backward)"
                let net = try build(unfolded: unfolded, kernels: kernels), reference = try build(unfolded: true, kernels: .onednn)
                var agreeing: (result: (logits: Tensor, dx: Tensor, outputs: [Tensor]), expected: (logits: Tensor, dx: Tensor, outputs: [Tensor]))?
                for seed in UInt64(7)..<12 {
                    let expected = try train(reference, seed: seed), result = try train(net, seed: seed)
                    let flips = zip(result.outputs, expected.outputs).reduce(0) { total, pair in
                        total + (0..<pair.0.count).filter { (pair.0[$0] > 0) != (pair.1[$0] > 0) }.count
                    }
                    if flips == 0 { agreeing = (result, expected); break }
                }
                guard let (result, expectedResult) = agreeing else { XCTFail("\(candidate): ReLU masks differ from the reference's on every batch"); continue }
                XCTAssertLessThanOrEqual(result.logits.maxAbsDiff(expectedResult.logits), 1e-5 * scale(expectedResult.logits), "\(candidate) logits")
                XCTAssertLessThanOrEqual(result.dx.maxAbsDiff(expectedResult.dx), 1e-4 * scale(expectedResult.dx), "\(candidate) input gradient")
                let expected = Dictionary(uniqueKeysWithValues: reference.namedParameters().map { ($0.0, $0.1) })
                let got = net.namedParameters()
                XCTAssertEqual(got.count, expected.count, candidate)
                XCTAssertTrue(got.contains { $0.0.contains(".\(sam.id).") }, candidate)
                for (name, p) in got {
                    let e = try XCTUnwrap(expected[name], name).grad
                    XCTAssertLessThanOrEqual(p.grad.maxAbsDiff(e), 1e-4 * scale(e), "\(candidate) gradient of \(name)")
                }
                for ((name, b), (_, e)) in zip(net.namedBuffers(), reference.namedBuffers()) where name.hasSuffix("running_var") || name.hasSuffix("running_mean") {
                    XCTAssertLessThanOrEqual(b.tensor.maxAbsDiff(e.tensor), 1e-5 * scale(e.tensor), "\(candidate) \(name)")
                }
            }
        }
    }

    /// The fused inference join ReLU(F * A + shortcut) (and F + A for GC) equals the unfused path.
    func testFusedInferenceJoinMatchesUnfused() throws {
        for plugin in ["SE", "GC"] {
            let sam = try SAMPlugin(ReferenceTests.repository.appendingPathComponent("plugins/lib\(plugin).so").path, settings: ["reduction=4"])
            let inst = try sam.instantiate(channels: 32, rng: &rngForTests, host: PluginHostContext(seed: 0))
            for (_, p) in inst.parameters { rngForTests.fillNormal(p.value, std: 0.5) }
            let f = Tensor([3, 5, 5, 32]), shortcut = Tensor([3, 5, 5, 32])
            rngForTests.fillNormal(f, std: 1)
            rngForTests.fillNormal(shortcut, std: 1)
            let fused = try XCTUnwrap(SAMSiteFactory.make(inst, position: 0, chain: nil).joined(f, shortcut: shortcut, training: false, into: Tensor(f.shape))).clone()
            let recalibrated = SAMSiteFactory.make(inst, position: 0, chain: nil).forward(f, training: false)
            let expected = AddReLU().forward(recalibrated, shortcut, training: true)
            XCTAssertLessThan(fused.maxAbsDiff(expected), 1e-5, plugin)
        }
        let a = Tensor([2, 3, 3, 8]), b = Tensor([2, 3, 3, 8])
        rngForTests.fillNormal(a, std: 1)
        rngForTests.fillNormal(b, std: 1)
        let oneDNN = AddReLU().forward(a, b, training: false).clone()
        XCTAssertEqual(oneDNN.maxAbsDiff(AddReLU().forward(a, b, training: true)), 0)
    }

    func testInferencePathEqualsTrainingForwardInEvalMode() throws {
        // the SAM's inference path (training = 0) gives the same output as its training path
        for plugin in ["SE", "SGE", "DIA"] {
            let sam = try SAMPlugin(ReferenceTests.repository.appendingPathComponent("plugins/lib\(plugin).so").path)
            let inst = try sam.instantiate(channels: 16, rng: &rngForTests, host: PluginHostContext(seed: 0))
            for (_, p) in inst.parameters { rngForTests.fillNormal(p.value, std: 0.5) }
            let site1 = SAMSiteFactory.make(inst, position: 0), site2 = SAMSiteFactory.make(inst, position: 0)
            let f = Tensor([2, 4, 4, 16])
            rngForTests.fillNormal(f, std: 1)
            let a = site1.forward(f, training: true).clone()
            let b = site2.forward(f, training: false).clone()
            XCTAssertLessThan(a.maxAbsDiff(b), 1e-6, plugin)
        }
    }
}

nonisolated(unsafe) var rngForTests = RNG(seed: 77)
