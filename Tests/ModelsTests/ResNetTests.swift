import Models
import NN
import Tensor
import XCTest

final class ResNetTests: XCTestCase {
    /// Parameter counts of the standard PyTorch definitions (convs without bias, BN affine, FC with bias).
    func testParameterCountsMatchPyTorch() throws {
        XCTAssertEqual(ResNet(try ModelSpec("resnet38"), classes: 100, seed: 0).parameterCount, 428_980)
        XCTAssertEqual(ResNet(try ModelSpec("resnet164"), classes: 100, seed: 0).parameterCount, 1_727_284)
        XCTAssertEqual(ResNet(try ModelSpec("resnet20"), classes: 10, seed: 0).parameterCount, 272_474)
        XCTAssertEqual(ResNet(try ModelSpec("resnet56"), classes: 10, seed: 0).parameterCount, 855_770)
        XCTAssertEqual(ResNet(try ModelSpec("resnet110"), classes: 10, seed: 0).parameterCount, 1_730_714)
        XCTAssertEqual(ResNet(try ModelSpec("resnet50"), classes: 1000, seed: 0).parameterCount, 25_557_032)
    }

    /// Reference: `scripts/multiply_adds.py` (forward hooks on PyTorch's nn.Conv2d and nn.Linear
    /// of the same architectures; ResNet-50's 4,089,184,256 is also torchvision's published 4.09 G).
    func testMultiplyAddsEqualPyTorchCount() throws {
        XCTAssertEqual(ResNet(try ModelSpec("resnet20"), classes: 10, seed: 0).forwardMultiplyAdds, 40_813_184)
        XCTAssertEqual(ResNet(try ModelSpec("resnet38"), classes: 100, seed: 0).forwardMultiplyAdds, 60_498_944)
        XCTAssertEqual(ResNet(try ModelSpec("resnet164"), classes: 100, seed: 0).forwardMultiplyAdds, 247_669_760)
        let resnet50 = ResNet(try ModelSpec("resnet50"), classes: 1000, seed: 0)
        XCTAssertEqual(resnet50.forwardMultiplyAdds, 4_089_184_256)
        // training: forward, data and weight gradients (2 FLOP per multiply-add), no data gradient for the stem
        XCTAssertEqual(resnet50.trainingFLOPs, 2 * (3 * 4_089_184_256 - 118_013_952))
        XCTAssertEqual(resnet50.layerTable()[0].multiplyAdds, 112 * 112 * 64 * 3 * 7 * 7)
    }

    func testForwardShapesOfEveryNamedModel() throws {
        for name in ["resnet20", "resnet38", "resnet56", "resnet110", "resnet164", "resnet-basic-8", "resnet-bottleneck-11"] {
            let net = ResNet(try ModelSpec(name), classes: 7, seed: 1)
            let y = try net.forward(Tensor([2, 32, 32, 3]), training: false)
            XCTAssertEqual(y.shape, [2, 7], name)
        }
        let r50 = ResNet(try ModelSpec("resnet50"), classes: 5, seed: 1)
        XCTAssertEqual(try r50.forward(Tensor([1, 224, 224, 3]), training: false).shape, [1, 5])
        XCTAssertEqual(r50.blocks.count, 16)
        XCTAssertEqual(ResNet(try ModelSpec("resnet164"), classes: 5, seed: 1).blocks.count, 54)
    }

    func testModelNamesAreValidated() {
        XCTAssertThrowsError(try ModelSpec("resnet21")) { XCTAssertTrue("\($0)".contains("resnet21")) }
        XCTAssertThrowsError(try ModelSpec("resnet-basic-9")) { XCTAssertTrue("\($0)".contains("6n+2")) }
        XCTAssertThrowsError(try ModelSpec("resnet-basic-99999999998")) { XCTAssertTrue("\($0)".contains("beyond the supported 2000"), "\($0)") }
        XCTAssertEqual(try ModelSpec("resnet-bottleneck-38").blocksPerStage, [4, 4, 4])
    }

    func testStateDictNamesFollowPyTorch() throws {
        let net = ResNet(try ModelSpec("resnet38"), classes: 10, seed: 0)
        let names = net.stateEntries().map { $0.0 }
        XCTAssertEqual(names.first, "conv1.weight")
        for expected in ["bn1.running_mean", "bn1.num_batches_tracked", "layer1.0.conv1.weight", "layer1.0.downsample.0.weight",
                         "layer1.0.downsample.1.running_var", "layer3.3.bn3.bias", "fc.weight", "fc.bias"] {
            XCTAssertTrue(names.contains(expected), expected)
        }
        XCTAssertEqual(net.namedParameters().first { $0.0 == "layer2.0.conv2.weight" }?.1.value.shape, [32, 32, 3, 3])
    }

    /// Finite differences through a whole small ResNet (basic and bottleneck, with projection
    /// and identity shortcuts), training mode: the input gradient (via the stem's input) and a
    /// sample of weights. Checks that recomputed batch-norm outputs, in-place batch-norm
    /// backward and the shared gradient ring leave every gradient intact.
    func testWholeNetworkGradients() throws {
        for name in ["resnet-basic-14", "resnet-bottleneck-20"] {
            let net = ResNet(try ModelSpec(name), classes: 3, seed: 3)
            var rng = RNG(seed: 9)
            let x = Tensor([4, 8, 8, 3])
            rng.fillNormal(x, std: 1)
            let labels: [Int32] = [0, 1, 2, 1]
            let ce = SoftmaxCrossEntropy()
            func loss() -> Double { ce(try! net.forward(x, training: true), labels).loss }
            net.conv1.needsInputGrad = true
            net.zeroGrad()
            let dx = try XCTUnwrap(try net.backward(ce(try net.forward(x, training: true), labels).gradient)).clone()
            // Single entries of a whole network cross ReLU kinks, so whole tensors are checked
            // along directions (steps 1e-4..1e-3, tolerance 3% of |g|); entries are checked for fc.
            let gc = GradientCheck(eps: 1e-3, rtol: 3e-2, atol: 1e-5, samples: 8, extraSteps: [3e-4, 1e-4])
            let f = gc.checkDirectional(x, analytic: dx, loss: loss)
            XCTAssertNil(f, "\(name) input gradient: \(f ?? "")")
            for (pname, p) in net.namedParameters() where pname.hasSuffix("conv1.weight") || pname.hasSuffix("conv2.weight") || pname.hasSuffix("conv3.weight")
                || pname.hasSuffix("bn2.weight") || pname.hasSuffix("bn1.bias") || pname.hasSuffix("bn3.weight") {
                let f = gc.checkDirectional(p.value, analytic: p.grad.clone(), loss: loss, touch: { p.touch() })
                XCTAssertNil(f, "\(name) \(pname): \(f ?? "")")
            }
            let fc = net.fc.weight
            XCTAssertNil(GradientCheck(eps: 1e-3, rtol: 3e-2, atol: 2e-4).check(fc.value, analytic: fc.grad.clone(), loss: loss))
        }
    }
}
