import NN
import Tensor
import XCTest

/// The folded convolution + BN (+ shortcut, + ReLU) against the layers run one after the
/// other in eval mode, for every kind of convolution the ResNets use.
final class FoldedConvBNTests: XCTestCase {
    func testFoldedEqualsConvThenBatchNormThenJoin() {
        var rng = RNG(seed: 1)
        for (kernel, stride, padding) in [(1, 1, 0), (3, 1, 1), (3, 2, 1), (1, 2, 0)] {
            let conv = Conv2d(6, 8, kernel: kernel, stride: stride, padding: padding), bn = BatchNorm2d(8)
            rng.fillNormal(conv.weight.value, std: 0.5)
            rng.fillUniform(bn.gamma.value, 0.5, 1.5)
            rng.fillNormal(bn.beta.value, std: 0.3)
            rng.fillNormal(bn.runningMean, std: 0.3)
            rng.fillUniform(bn.runningVar, 0.5, 2)
            let x = Tensor([3, 7, 7, 6])
            rng.fillNormal(x, std: 1)
            let f = bn.forward(conv.forward(x), training: false).clone()
            let shortcut = Tensor(f.shape)
            rng.fillNormal(shortcut, std: 1)
            for (added, relu) in [(false, false), (false, true), (true, true), (true, false)] {
                let folded = FoldedConvBN(conv, bn)
                let y = folded.forward(x, adding: added ? shortcut : nil, relu: relu)
                var worst: Float = 0
                for n in 0..<3 {
                    for p in 0..<(f.count / 3 / 8) {
                        for c in 0..<8 {
                            let i = (n * (f.count / 3 / 8) + p) * 8 + c
                            var v = f[i] + (added ? shortcut[i] : 0)
                            if relu { v = max(v, 0) }
                            worst = max(worst, abs(y[i] - v))
                        }
                    }
                }
                let implementation = folded.implementation(x.shape, addingShortcut: added, relu: relu)
                XCTAssertLessThan(worst, 1e-5, "kernel \(kernel) stride \(stride) add \(added) relu \(relu): \(implementation)")
                XCTAssertFalse(implementation.hasPrefix("ref"), "oneDNN's reference kernel (slow) for \(implementation)")
            }
        }
    }
}
