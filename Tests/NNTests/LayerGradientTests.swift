import NN
import Tensor
import XCTest

/// Finite-difference checks of every layer's backward (fp32: eps 1e-2 for linear maps where
/// the difference is exact up to rounding; tolerances 2e-2 relative + 2e-3 absolute).
final class LayerGradientTests: XCTestCase {
    var rng = RNG(seed: 42)

    func random(_ shape: [Int], std: Float = 1) -> Tensor {
        let t = Tensor(shape)
        rng.fillNormal(t, std: std)
        return t
    }

    func assertPasses(_ f: GradientCheck.Failure?, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNil(f, "\(what): \(f.map { "\($0)" } ?? "")", file: file, line: line)
    }

    func checkConv(inC: Int, outC: Int, k: Int, stride: Int, pad: Int, hw: Int) {
        let conv = Conv2d(inC, outC, kernel: k, stride: stride, padding: pad)
        conv.initialize(&rng)
        let x = random([2, hw, hw, inC])
        let y = conv.forward(x)
        XCTAssertEqual(y.shape, [2, (hw + 2 * pad - k) / stride + 1, (hw + 2 * pad - k) / stride + 1, outC])
        let r = random(y.shape)
        conv.weight.grad.zero()
        let dx = conv.backward(r).clone()
        let dw = conv.weight.grad.clone()
        let loss = { GradientCheck.project(conv.forward(x), r) }
        let gc = GradientCheck()
        assertPasses(gc.check(x, analytic: dx, loss: loss), "conv k\(k) s\(stride) p\(pad) dx")
        assertPasses(gc.check(conv.weight.value, analytic: dw, loss: loss, touch: { conv.weight.touch() }), "conv k\(k) s\(stride) p\(pad) dw")
    }

    func testConvolution3x3() { checkConv(inC: 3, outC: 8, k: 3, stride: 1, pad: 1, hw: 6) }
    func testConvolutionStride2Padding() { checkConv(inC: 4, outC: 6, k: 3, stride: 2, pad: 1, hw: 7) }
    func testConvolution1x1Stride2() { checkConv(inC: 5, outC: 7, k: 1, stride: 2, pad: 0, hw: 6) }
    func testConvolutionStemShape() { checkConv(inC: 3, outC: 16, k: 3, stride: 1, pad: 1, hw: 8) }
    func testConvolution1x1Wide() { checkConv(inC: 16, outC: 16, k: 1, stride: 1, pad: 0, hw: 8) }
    /// Realistic shapes dispatch to oneDNN's JIT kernels (tiny ones may use reference code).
    func testConvolutionJITShapes() {
        checkConv(inC: 16, outC: 16, k: 3, stride: 1, pad: 1, hw: 32)
        checkConv(inC: 16, outC: 32, k: 3, stride: 2, pad: 1, hw: 16)
        checkConv(inC: 64, outC: 16, k: 1, stride: 1, pad: 0, hw: 16)
    }
    /// The shapes where oneDNN's Winograd kernels run on AVX-512 machines (3x3, stride 1, >= 32
    /// channels; direct kernels elsewhere): finite differences, and forward, input and weight
    /// gradients against fp64 loops within 1e-5 of each result's largest value (Winograd's
    /// F(4x4, 3x3) transforms cost some fp32 precision: worst 0.9e-6 .. 1.6e-6 of the largest value
    /// with Winograd, 0.2e-6 .. 0.9e-6 with the direct kernels, measured on these shapes).
    func testConvolutionWinogradShapes() {
        for (c, hw) in [(32, 16), (64, 8)] {
            checkConv(inC: c, outC: c, k: 3, stride: 1, pad: 1, hw: hw)
            let conv = Conv2d(c, c, kernel: 3, stride: 1, padding: 1)
            conv.initialize(&rng)
            let x = random([3, hw, hw, c]), r = random([3, hw, hw, c])
            let y = conv.forward(x).clone()
            conv.weight.grad.zero()
            let dx = conv.backward(r).clone()
            // fp64 loops: y[n,i,j,o] = sum w[o,c,a,b] x[n,i+a-1,j+b-1,c]; dx and dw from r
            let w = conv.weight.value
            var yRef = [Double](repeating: 0, count: y.count), dxRef = [Double](repeating: 0, count: x.count)
            var dwRef = [Double](repeating: 0, count: w.count)
            for n in 0..<3 { for i in 0..<hw { for j in 0..<hw { for a in 0..<3 { for b in 0..<3 {
                let (u, v) = (i + a - 1, j + b - 1)
                guard u >= 0, u < hw, v >= 0, v < hw else { continue }
                for o in 0..<c {
                    let out = ((n * hw + i) * hw + j) * c + o
                    for k in 0..<c {
                        let inp = ((n * hw + u) * hw + v) * c + k, wi = ((o * c + k) * 3 + a) * 3 + b
                        yRef[out] += Double(w[wi]) * Double(x[inp])
                        dxRef[inp] += Double(w[wi]) * Double(r[out])
                        dwRef[wi] += Double(x[inp]) * Double(r[out])
                    }
                }
            } } } } }
            for (name, got, expected) in [("y", y, yRef), ("dx", dx, dxRef), ("dw", conv.weight.grad, dwRef)] {
                let largest = expected.map(abs).max()!
                let worst = (0..<got.count).map { abs(Double(got[$0]) - expected[$0]) }.max()!
                XCTAssertLessThanOrEqual(worst, 1e-5 * largest, "\(c) channels \(hw)x\(hw) \(name)")
            }
        }
    }

    func testConvolution7x7Stride2() { checkConv(inC: 3, outC: 4, k: 7, stride: 2, pad: 3, hw: 9) }

    func checkBatchNorm(fused: Bool, shape: [Int] = [3, 4, 4, 6]) {
        let bn = BatchNorm2d(shape[3], fusedReLU: fused)
        rng.fillNormal(bn.gamma.value, mean: 1, std: 0.3)
        rng.fillNormal(bn.beta.value, std: 0.3)
        let x = random(shape, std: 2)
        let r = random(x.shape)
        _ = bn.forward(x, training: true)
        bn.zeroGrad()
        let dx = bn.backward(r).clone()
        let dg = bn.gamma.grad.clone(), db = bn.beta.grad.clone()
        let loss = { GradientCheck.project(bn.forward(x, training: true), r) }
        let gc = GradientCheck(eps: 1e-3, rtol: 3e-2, atol: 5e-3)
        assertPasses(gc.check(x, analytic: dx, loss: loss), "bn(fused \(fused)) dx")
        assertPasses(gc.check(bn.gamma.value, analytic: dg, loss: loss), "bn dgamma \(shape) fused \(fused)")
        assertPasses(gc.check(bn.beta.value, analytic: db, loss: loss), "bn dbeta \(shape) fused \(fused)")
    }

    func testBatchNormTraining() { checkBatchNorm(fused: false) }
    func testBatchNormFusedReLU() { checkBatchNorm(fused: true) }
    /// Realistic shapes run oneDNN's JIT kernels. Finite differences through a ReLU over
    /// thousands of elements per channel are dominated by kink crossings, so the fused
    /// BN+ReLU is checked against the separately verified BN followed by ReLU instead.
    func testBatchNormJITShapes() {
        checkBatchNorm(fused: false, shape: [16, 16, 16, 16])
        for shape in [[16, 16, 16, 16], [32, 8, 8, 64]] {
            let fused = BatchNorm2d(shape[3], fusedReLU: true), plain = BatchNorm2d(shape[3]), relu = ReLU()
            rng.fillNormal(fused.gamma.value, mean: 1, std: 0.3)
            rng.fillNormal(fused.beta.value, std: 0.3)
            plain.gamma.value.copy(from: fused.gamma.value)
            plain.beta.value.copy(from: fused.beta.value)
            let x = random(shape, std: 2), r = random(shape)
            let y1 = fused.forward(x, training: true).clone()
            let y2 = relu.forward(plain.forward(x, training: true)).clone()
            XCTAssertLessThan(y1.maxAbsDiff(y2), 1e-5)
            let d1 = fused.backward(r).clone(), d2 = plain.backward(relu.backward(r)).clone()
            XCTAssertLessThan(d1.maxAbsDiff(d2), 1e-4)
            XCTAssertLessThan(fused.gamma.grad.maxAbsDiff(plain.gamma.grad), 1e-2)
            XCTAssertLessThan(fused.beta.grad.maxAbsDiff(plain.beta.grad), 1e-2)
        }
    }

    /// A network that keeps only a batch norm's input rebuilds the output for the next layer's
    /// backward (`recomputeOutput`): equal to the training forward's within 1e-6 of its largest
    /// value; a backward written over its input gradient equals one into a new buffer.
    func testBatchNormRecomputedOutputAndInPlaceBackward() {
        for fused in [false, true] {
            let shape = [16, 8, 8, 32]
            let bn = BatchNorm2d(32, fusedReLU: fused)
            rng.fillNormal(bn.gamma.value, mean: 1, std: 0.3)
            rng.fillNormal(bn.beta.value, std: 0.3)
            let x = random(shape, std: 2), r = random(shape)
            let given = Tensor(shape)
            XCTAssertTrue(bn.forward(x, training: true, into: given) === given)
            let y = given.clone()
            given.zero()  // the next layer overwrote the transient output
            let again = bn.recomputeOutput(in: BufferPool())
            let largest = y.buffer.map(abs).max()!
            XCTAssertLessThanOrEqual(again.maxAbsDiff(y), 1e-6 * largest, "fused \(fused)")
            let dx = bn.backward(r).clone()
            let dy = r.clone()
            let dxInPlace = bn.backward(dy, overwriting: true)
            XCTAssertTrue(dxInPlace === dy)
            XCTAssertLessThanOrEqual(dxInPlace.maxAbsDiff(dx), 0, "fused \(fused)")
        }
    }

    /// The batch norm's statistics computed alone (`forwardStatistics`, one shifted pass) and
    /// fused into the join equal the batch norm followed by the join: statistics against an
    /// fp64 two-pass reference (also for a mean 50 standard deviations from zero), the output
    /// within 1e-5 of its largest value, backward and the running statistics alike; and the
    /// statistics do not depend on the thread count.
    func testBatchNormStatisticsAloneFusedIntoTheJoin() {
        for (shape, offset) in [([16, 8, 8, 64], Float(0)), ([4, 16, 16, 32], 50), ([3, 5, 7, 8], -2)] {
            let c = shape[3]
            let fused = BatchNorm2d(c), plain = BatchNorm2d(c)
            rng.fillNormal(fused.gamma.value, mean: 1, std: 0.3)
            rng.fillNormal(fused.beta.value, std: 0.3)
            plain.gamma.value.copy(from: fused.gamma.value)
            plain.beta.value.copy(from: fused.beta.value)
            let x = random(shape, std: 1), shortcut = random(shape), r = random(shape)
            for i in 0..<x.count { x[i] += offset + Float(i % c) * 0.1 }
            XCTAssertTrue(fused.computesStatisticsAlone)
            let (scale, shift) = fused.forwardStatistics(x)
            let joinFused = AddReLU(), joinPlain = AddReLU()
            let y = joinFused.forward(normalizing: x, scale: scale, shift: shift, shortcut).clone()
            let expected = joinPlain.forward(plain.forward(x, training: true), shortcut).clone()
            XCTAssertLessThanOrEqual(y.maxAbsDiff(expected), 1e-5 * expected.buffer.map(abs).max()!, "\(shape)")
            // fp64 two-pass reference of channel 0..C-1
            let rows = x.count / c
            for k in 0..<c {
                var m = 0.0, v = 0.0
                for row in 0..<rows { m += Double(x[row * c + k]) }
                m /= Double(rows)
                for row in 0..<rows { v += (Double(x[row * c + k]) - m) * (Double(x[row * c + k]) - m) }
                v /= Double(rows)
                let unbiased = v * Double(rows) / Double(rows - 1)
                XCTAssertEqual(Double(fused.runningMean[k]), 0.1 * m, accuracy: 1e-6 * max(1, abs(m)), "\(shape) mean \(k)")
                XCTAssertEqual(Double(fused.runningVar[k]), 0.9 + 0.1 * unbiased, accuracy: 1e-5 * max(1, v), "\(shape) variance \(k)")
            }
            let d1 = fused.backward(joinFused.backward(r)).clone(), d2 = plain.backward(joinPlain.backward(r)).clone()
            XCTAssertLessThanOrEqual(d1.maxAbsDiff(d2), 1e-4 * d2.buffer.map(abs).max()!, "\(shape) backward")
            // the same statistics with one thread
            let threads = Threads.current
            Threads.set(1)
            let single = BatchNorm2d(c)
            _ = single.forwardStatistics(x)
            Threads.set(threads)
            XCTAssertEqual(single.runningMean.array, fused.runningMean.array, "\(shape)")
            XCTAssertEqual(single.runningVar.array, fused.runningVar.array, "\(shape)")
        }
    }

    /// Two batch norms of `c` channels with the same random gamma (around 1) and beta.
    func twinBatchNorms(_ c: Int) -> (BatchNorm2d, BatchNorm2d) {
        let a = BatchNorm2d(c), b = BatchNorm2d(c)
        rng.fillNormal(a.gamma.value, mean: 1, std: 0.3)
        rng.fillNormal(a.beta.value, std: 0.3)
        b.gamma.value.copy(from: a.gamma.value)
        b.beta.value.copy(from: a.beta.value)
        return (a, b)
    }

    /// The per-image channel means of a batch norm's output taken from the statistics pass
    /// (`forwardStatistics(_:imageMeans: true)`, `outputChannelMeans`) equal the means of the
    /// output `forward` writes, within 1e-5 of the output's largest value: images whose pixel
    /// count is not a multiple of the 64-row blocks, and images larger than a 1024-row chunk;
    /// the batch statistics are those of the pass without image means.
    func testBatchNormOutputChannelMeansFromTheStatisticsPass() {
        for shape in [[3, 5, 7, 8], [2, 40, 40, 16], [5, 8, 8, 24]] {
            let (n, c) = (shape[0], shape[3]), pixels = shape[1] * shape[2]
            let (bn, plain) = twinBatchNorms(c), alone = BatchNorm2d(c)
            let x = random(shape, std: 1)
            for i in 0..<x.count { x[i] += Float((i / (pixels * c)) % 3) + 2 }  // images differ in mean
            _ = bn.forwardStatistics(x, imageMeans: true)
            _ = alone.forwardStatistics(x)
            let means = bn.outputChannelMeans()
            let y = plain.forward(x, training: true)
            XCTAssertEqual(means.shape, [n, c])
            let largest = y.buffer.map(abs).max()!
            for b in 0..<n {
                for k in 0..<c {
                    var sum = 0.0
                    for p in 0..<pixels { sum += Double(y[(b * pixels + p) * c + k]) }
                    XCTAssertEqual(Double(means[b * c + k]), sum / Double(pixels), accuracy: 1e-5 * Double(largest), "\(shape) image \(b) channel \(k)")
                }
            }
            XCTAssertEqual(bn.runningMean.array, alone.runningMean.array, "\(shape)")
            XCTAssertEqual(bn.runningVar.array, alone.runningVar.array, "\(shape)")
        }
    }

    /// The two-pass backward without attention (after `forwardStatistics`, the plain join's
    /// batch norm backward in training) equals oneDNN's backward after `forward`: the input
    /// gradient within 1e-5 of its largest value, gamma and beta gradients within 1e-5 of theirs;
    /// image sizes that are not multiples of the 64-row blocks, and images above a 1024-row chunk.
    func testTwoPassBatchNormBackwardEqualsOneDNN() {
        for shape in [[3, 5, 7, 8], [2, 40, 40, 16], [5, 8, 8, 24]] {
            let c = shape[3]
            let (twoPass, reference) = twinBatchNorms(c)
            let x = random(shape, std: 1), g = random(shape, std: 1)
            for i in 0..<x.count { x[i] += 2 }  // a mean away from zero: the (x - mu) terms matter
            _ = twoPass.forwardStatistics(x)
            _ = reference.forward(x, training: true)
            let dx = twoPass.backward(g, scaledBy: nil, attentionBackward: nil).clone()
            let expected = reference.backward(g.clone())
            func close(_ a: [Float], _ b: [Float], _ what: String) {
                let scale = b.map(abs).max()!
                XCTAssertGreaterThan(scale, 0, "\(shape) \(what)")
                for (u, v) in zip(a, b) { XCTAssertEqual(u, v, accuracy: 1e-5 * scale, "\(shape) \(what)") }
            }
            close(dx.array, expected.array, "dx")
            close(twoPass.gamma.grad.array, reference.gamma.grad.array, "dgamma")
            close(twoPass.beta.grad.array, reference.beta.grad.array, "dbeta")
        }
    }

    func testBatchNormRunningStatisticsAndEvalMode() {
        let bn = BatchNorm2d(2)
        let x = Tensor([2, 1, 2, 2], [1, 10, 3, 20, 5, 30, 7, 40])
        let y = bn.forward(x, training: true)
        // channel 0: values 1,3,5,7 -> mean 4, biased var 5, unbiased 20/3
        XCTAssertEqual(bn.runningMean[0], 0.4, accuracy: 1e-6)
        XCTAssertEqual(bn.runningVar[0], 0.9 + 0.1 * 20 / 3, accuracy: 1e-5)
        XCTAssertEqual(y[0], (1 - 4) / (5 + 1e-5).squareRoot(), accuracy: 1e-4)
        XCTAssertEqual(bn.batchesTracked[0], 1)
        let e = bn.forward(x, training: false)
        XCTAssertEqual(e[0], (1 - 0.4) / (bn.runningVar[0] + 1e-5).squareRoot(), accuracy: 1e-4)
    }

    func testLinear() {
        let fc = Linear(5, 3)
        fc.initialize(&rng)
        let x = random([4, 5]), r = random([4, 3])
        _ = fc.forward(x)
        fc.zeroGrad()
        let dx = fc.backward(r).clone()
        let loss = { GradientCheck.project(fc.forward(x), r) }
        let gc = GradientCheck()
        assertPasses(gc.check(x, analytic: dx, loss: loss), "linear dx")
        assertPasses(gc.check(fc.weight.value, analytic: fc.weight.grad.clone(), loss: loss), "linear dw")
        assertPasses(gc.check(fc.bias.value, analytic: fc.bias.grad.clone(), loss: loss), "linear db")
    }

    func testReLUAndResidualJoin() {
        let a = random([2, 3, 3, 4]), b = random([2, 3, 3, 4]), r = random([2, 3, 3, 4])
        let join = AddReLU()
        _ = join.forward(a, b)
        let d = join.backward(r).clone()
        let loss = { GradientCheck.project(join.forward(a, b), r) }
        let gc = GradientCheck(eps: 1e-3)
        assertPasses(gc.check(a, analytic: d, loss: loss), "add-relu da")
        assertPasses(gc.check(b, analytic: d, loss: loss), "add-relu db")
        let relu = ReLU()
        _ = relu.forward(a)
        let dr = relu.backward(r).clone()
        assertPasses(gc.check(a, analytic: dr, loss: { GradientCheck.project(relu.forward(a), r) }), "relu")
    }

    func testPooling() {
        let gap = GlobalAvgPool()
        let x = random([2, 3, 3, 4]), r = random([2, 4])
        _ = gap.forward(x)
        let d = gap.backward(r).clone()
        assertPasses(GradientCheck().check(x, analytic: d, loss: { GradientCheck.project(gap.forward(x), r) }), "gap")
        let mp = MaxPool2d(kernel: 3, stride: 2, padding: 1)
        let y = mp.forward(x)
        XCTAssertEqual(y.shape, [2, 2, 2, 4])
        let r2 = random(y.shape)
        let d2 = mp.backward(r2).clone()
        assertPasses(GradientCheck(eps: 1e-3).check(x, analytic: d2, loss: { GradientCheck.project(mp.forward(x), r2) }), "maxpool")
    }

    func testSoftmaxCrossEntropy() {
        let ce = SoftmaxCrossEntropy()
        let logits = random([5, 4]), labels: [Int32] = [0, 3, 1, 2, 3]
        let res = ce(logits, labels)
        let g = res.gradient.clone()
        let f = GradientCheck(eps: 1e-3).check(logits, analytic: g, loss: { ce(logits, labels).loss })
        assertPasses(f, "cross-entropy")
        // uniform logits: loss = log K
        let flat = Tensor([2, 4])
        XCTAssertEqual(ce(flat, [1, 2]).loss, log(4.0), accuracy: 1e-6)
    }

    func testGradientCheckDetectsAWrongGradient() {
        // The checker itself must be able to fail: a gradient off by 10% is reported.
        let fc = Linear(3, 2)
        fc.initialize(&rng)
        let x = random([2, 3]), r = random([2, 2])
        _ = fc.forward(x)
        let dx = fc.backward(r).clone()
        for i in 0..<dx.count { dx[i] *= 1.1 }
        XCTAssertNotNil(GradientCheck().check(x, analytic: dx, loss: { GradientCheck.project(fc.forward(x), r) }))
        // the directional check (used for whole networks) catches a 10% error and a wrong direction,
        // and passes the true gradient
        let exact = fc.backward(r).clone()
        let loss = { GradientCheck.project(fc.forward(x), r) }
        XCTAssertNil(GradientCheck(eps: 1e-3, rtol: 3e-2, atol: 1e-5).checkDirectional(x, analytic: exact, loss: loss))
        XCTAssertNotNil(GradientCheck(eps: 1e-3, rtol: 3e-2, atol: 1e-5).checkDirectional(x, analytic: dx, loss: loss))
        let permuted = exact.clone()
        permuted[0] = exact[1]
        permuted[1] = exact[0]
        XCTAssertNotNil(GradientCheck(eps: 1e-3, rtol: 3e-2, atol: 1e-5).checkDirectional(x, analytic: permuted, loss: loss))
    }
}
