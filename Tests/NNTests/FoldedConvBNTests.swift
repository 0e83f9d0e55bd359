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

    /// The per-image scale inside the convolution, y[n] = ReLU(a[n] * F[n] + shortcut[n]), both
    /// ways (scaled weights: 2 -> 8 channels on 12x12, weights 1/72 of an image's output;
    /// images into the worker's buffer, then the join: 6 -> 16 on 7x7, and a strided 3x3),
    /// several images per worker thread; and the output's channel means from the input's for
    /// a 1x1 convolution.
    func testPerImageScaleAndChannelMeans() {
        var rng = RNG(seed: 2)
        for (i, o, size, kernel, stride, padding) in [(2, 8, 12, 1, 1, 0), (6, 16, 7, 1, 1, 0), (6, 16, 7, 3, 2, 1)] {
            let conv = Conv2d(i, o, kernel: kernel, stride: stride, padding: padding), bn = BatchNorm2d(o)
            rng.fillNormal(conv.weight.value, std: 0.5)
            rng.fillUniform(bn.gamma.value, 0.5, 1.5)
            rng.fillNormal(bn.beta.value, std: 0.3)
            rng.fillNormal(bn.runningMean, std: 0.3)
            rng.fillUniform(bn.runningVar, 0.5, 2)
            let x = Tensor([5, size, size, i])
            rng.fillNormal(x, std: 1)
            let folded = FoldedConvBN(conv, bn)
            let f = folded.forward(x, relu: false).clone()
            let (n, c) = (5, o), pixels = f.count / n / c
            let a = Tensor([n, 1, 1, c]), shortcut = Tensor(f.shape)
            rng.fillUniform(a, 0, 1)
            rng.fillNormal(shortcut, std: 1)
            let y = folded.forward(x, scaledBy: a, adding: shortcut)
            var worst: Float = 0
            for b in 0..<n {
                for p in 0..<pixels {
                    for k in 0..<c {
                        let i = (b * pixels + p) * c + k
                        worst = max(worst, abs(y[i] - max(f[i] * a[b * c + k] + shortcut[i], 0)))
                    }
                }
            }
            XCTAssertLessThan(worst, 1e-5, "\(i) -> \(o) kernel \(kernel) stride \(stride)")
            guard kernel == 1 else {
                XCTAssertNil(folded.outputChannelMeans(x), "padded or strided kernels have no means from the input")
                continue
            }
            let means = folded.outputChannelMeans(x)!, direct = Tensor([n, c])
            let context = ComputeContext()
            withExtendedLifetime(context) { ChannelOps.of(context).mean(f, into: direct) }
            XCTAssertLessThan(means.maxAbsDiff(direct), 1e-5)
        }
    }
}
