import NN
import Tensor
import XCTest

/// The fused backward of a 1x1 convolution after a batch norm with a fused ReLU
/// (`Conv2d.backward(_:throughNormWithReLU:)`) against the unfused one (oneDNN's convolution
/// backward on the recomputed output, then oneDNN's batch norm backward), which the layer
/// finite-difference tests verify.
final class PointwiseNormBackwardTests: XCTestCase {
    var rng = RNG(seed: 7)

    func random(_ shape: [Int], std: Float = 1, mean: Float = 0) -> Tensor {
        let t = Tensor(shape)
        rng.fillNormal(t, mean: mean, std: std)
        return t
    }

    /// A batch norm + ReLU and a 1x1 convolution with the given channels, and a twin with the
    /// same parameters.
    func twins(_ inC: Int, _ outC: Int) -> [(BatchNorm2d, Conv2d)] {
        let pairs = (0..<2).map { _ in (BatchNorm2d(inC, fusedReLU: true), Conv2d(inC, outC, kernel: 1)) }
        rng.fillNormal(pairs[0].0.gamma.value, mean: 1, std: 0.3)
        rng.fillNormal(pairs[0].0.beta.value, std: 0.3)
        pairs[0].1.initialize(&rng)
        pairs[1].0.gamma.value.copy(from: pairs[0].0.gamma.value)
        pairs[1].0.beta.value.copy(from: pairs[0].0.beta.value)
        pairs[1].1.weight.value.copy(from: pairs[0].1.weight.value)
        pairs[1].1.weight.touch()
        return pairs
    }

    /// Input gradient, weight gradient, gamma and beta gradients within 1e-5 of each one's
    /// largest value (gradients accumulate: both start from the same non-zero values); shapes
    /// whose rows are not a multiple of the 64-row tiles, images across 1024-row chunks, channel
    /// counts LIBXSMM handles with and without vector remainders.
    func testFusedBackwardEqualsTheUnfusedOne() throws {
        for (shape, outC) in [([3, 5, 7, 8], 12), ([2, 40, 40, 16], 64), ([5, 8, 8, 64], 256), ([4, 9, 9, 5], 3)] {
            let inC = shape[3]
            let pairs = twins(inC, outC)
            let x = random(shape, std: 2, mean: 0.5)
            let outShape = [shape[0], shape[1], shape[2], outC]
            let dy = random(outShape)
            var results: [[[Float]]] = []
            for (index, (bn, conv)) in pairs.enumerated() {
                bn.gamma.grad.fill(0.25); bn.beta.grad.fill(-0.5); conv.weight.grad.fill(0.125)
                _ = conv.forward(bn.forward(x, training: true))
                let dx: Tensor
                if index == 0 {
                    dx = conv.backward(.tensor(dy), throughNormWithReLU: bn, scratch: BufferPool())
                } else {
                    _ = conv.forward(bn.forward(x, training: true))
                    dx = bn.backward(conv.backward(dy.clone()))
                }
                results.append([dx.array, conv.weight.grad.array, bn.gamma.grad.array, bn.beta.grad.array])
            }
            for (what, (fused, reference)) in zip(["dx", "dW", "dgamma", "dbeta"], zip(results[0], results[1])) {
                let scale = reference.map(abs).max()!
                XCTAssertGreaterThan(scale, 0, "\(shape) \(what)")
                for (u, v) in zip(fused, reference) { XCTAssertEqual(u, v, accuracy: 1e-5 * scale, "\(shape) -> \(outC) \(what)") }
            }
        }
    }

    /// dy deferred (the second pass of the backward of a batch norm after the convolution,
    /// formed per tile by the fused kernel) equals dy formed first: without an attention and
    /// with a per-image channel attention (a linear stand-in for an SE's backward).
    func testDeferredOutputGradientEqualsTheFormedOne() throws {
        let shape = [3, 10, 10, 16], outC = 64
        let outShape = [3, 10, 10, outC]
        for attended in [false, true] {
            let pairs = twins(16, outC)
            let after = (0..<2).map { _ in BatchNorm2d(outC) }
            rng.fillNormal(after[0].gamma.value, mean: 1, std: 0.3)
            rng.fillNormal(after[0].beta.value, std: 0.3)
            after[1].gamma.value.copy(from: after[0].gamma.value)
            after[1].beta.value.copy(from: after[0].beta.value)
            let x = random(shape, std: 2), g = random(outShape)
            let a = attended ? random([3, outC], std: 0.5, mean: 1) : nil
            let attentionBackward: ((Tensor) -> Tensor)? = attended ? { dA in
                let dS = Tensor(dA.shape)
                for i in 0..<dA.count { dS[i] = 0.5 * dA[i] + 0.1 }
                return dS
            } : nil
            var results: [[Float]] = []
            for index in 0..<2 {
                let (bn, conv) = pairs[index], norm = after[index]
                _ = norm.forwardStatistics(conv.forward(bn.forward(x, training: true)), imageMeans: attended)
                let deferred = norm.deferredBackward(g, scaledBy: a, attentionBackward: attentionBackward)
                let dy: OutputGradient = index == 0 ? .deferred(deferred) : .tensor(deferred.materialize(into: Tensor(outShape)))
                let dx = conv.backward(dy, throughNormWithReLU: bn, scratch: BufferPool())
                results.append(dx.array + conv.weight.grad.array + bn.gamma.grad.array + bn.beta.grad.array + norm.gamma.grad.array)
            }
            let scale = results[1].map(abs).max()!
            for (u, v) in zip(results[0], results[1]) { XCTAssertEqual(u, v, accuracy: 1e-5 * scale, "attended \(attended)") }
        }
    }

    /// The fused backward gives the same gradients, bit for bit, on one thread and on two (chunk
    /// partials are added in chunk order); a strided 1x1 convolution (no fused kernel) takes the
    /// separate passes and gives the gradients they give.
    func testFusedBackwardsDoNotDependOnThreadsAndStridedConvolutionsFallBack() throws {
        let shape = [4, 24, 24, 16]
        let (bn, conv) = twins(16, 64)[0]
        let x = random(shape, std: 1.5), dy = random([4, 24, 24, 64])
        var runs: [[Float]] = []
        let before = Threads.current
        defer { Threads.set(before) }
        for threads in [1, 2] {
            Threads.set(threads)
            bn.zeroGrad(); conv.weight.grad.zero()
            _ = conv.forward(bn.forward(x, training: true))
            let dx = conv.backward(.tensor(dy), throughNormWithReLU: bn, scratch: BufferPool())
            runs.append(dx.array + conv.weight.grad.array + bn.gamma.grad.array + bn.beta.grad.array)
        }
        XCTAssertEqual(runs[0].count, runs[1].count)
        XCTAssertEqual(zip(runs[0], runs[1]).filter { $0 != $1 }.count, 0, "entries that differ between 1 and 2 threads")

        let strided = (0..<2).map { _ in Conv2d(16, 64, kernel: 1, stride: 2) }
        strided[0].initialize(&rng)
        strided[1].weight.value.copy(from: strided[0].weight.value)
        let dyStrided = random([4, 12, 12, 64])
        _ = strided[0].forward(bn.forward(x, training: true))
        let fallback = strided[0].backward(.tensor(dyStrided), throughNormWithReLU: bn, scratch: BufferPool()).array
        _ = strided[1].forward(bn.forward(x, training: true))
        let reference = bn.backward(strided[1].backward(dyStrided)).array
        XCTAssertEqual(zip(fallback, reference).map { abs($0 - $1) }.max(), 0, "strided fallback against the separate passes")
    }
}
