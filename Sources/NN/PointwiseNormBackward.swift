import FusedKernels
import Tensor

/// The fused backward of a 1x1 convolution (stride 1, no padding) whose input is the output of
/// a training batch norm with a fused ReLU, y = conv(ReLU(BN(x))), tile by tile (64 rows) while
/// the tile is in cache; the GEMMs are LIBXSMM's JIT kernels. The recomputed h, the
/// convolution's data and weight gradients and pass 1 of the batch norm backward run in one
/// pass, its pass 2 in another (instead of five passes: the recomputed output, oneDNN's data and
/// weight gradients, oneDNN's two batch-norm passes). dy may be deferred
/// (`OutputGradient.deferred`): the second pass of the backward of the batch norm after the
/// convolution, formed per tile, never written.
///
///     pass 1:  h = ReLU(BN(x)), dh = dy W, g = dh * (h > 0), dW += h^T dy, sums of g, g * xhat
///     pass 2:  dx = gamma * invstd * (g - mean(g) - xhat * mean(g * xhat))
///
///     dy [N, H, W, O], x [N, H, W, I] -> dx [N, H, W, I]
///
/// Rows are cut into chunks of whole tiles independent of the thread count, each chunk's sums
/// and weight gradient kept apart and added in chunk order: results do not depend on the number
/// of threads. gamma, beta and the convolution's weight gradients accumulate as the unfused
/// backward's do.
final class PointwiseNormBackward {
    static let tileRows = 64, chunkRows = 1024

    private var plan = lth4sa_pointwise_plan()
    let inChannels: Int, outChannels: Int

    /// A 1x1 convolution of `inChannels` -> `outChannels`; nil when LIBXSMM has no kernel for
    /// these channels on this CPU (the caller keeps the unfused backward).
    init?(inChannels: Int, outChannels: Int) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        guard lth4sa_pointwise_plan_init(&plan, Int32(inChannels), Int32(outChannels), Int32(Self.tileRows)) == 0 else { return nil }
    }

    /// dy: the gradient of the convolution's output; `weight` [O, I, 1, 1]; `norm`: the batch
    /// norm whose output was the convolution's input, `kept` its training state; dx of the batch
    /// norm's input into `g`.
    func run(_ dy: OutputGradient, weight: Parameter, norm: BatchNorm2d, kept: BatchNorm2d.TrainingState, into g: Tensor) {
        let (i, o) = (inChannels, outChannels), x = kept.input
        let rows = x.count / i
        precondition(dy.shape == [x.shape[0], x.shape[1], x.shape[2], o] && g.count == x.count, "pointwise backward of \(dy.shape) for input \(x.shape)")
        var output = lth4sa_output_gradient()
        switch dy {
        case .tensor(let t):
            output.given = UnsafePointer(t.data)
        case .deferred(let d):
            (output.g, output.y, output.alpha, output.delta) = (UnsafePointer(d.g.data), UnsafePointer(d.x.data), UnsafePointer(d.alpha.data), UnsafePointer(d.delta.data))
            (output.kappa, output.mean, output.pixels) = (UnsafePointer(d.kappa.data), UnsafePointer(d.mean.data), x.shape[1] * x.shape[2])
        }
        let affine = NormAffine(norm, kept)
        let sums = affine.withConstants { constants in
            chunked(rows: rows, weight: weight, sums: 2 * i) { begin, end, scratch, weights, sums in
                lth4sa_pointwise_norm_relu_backward(&plan, constants, &output, weight.value.data, x.data, g.data, begin, end, scratch, weights, sums)
            }
        }
        affine.applyPass2(sums: sums, rows: rows, norm: norm, to: g)
    }

    /// Runs `body(begin, end, scratch, weights, sums)` over chunks of rows on the thread pool:
    /// `scratch` (2 I + O) * tile floats per thread, `weights` the chunk's zeroed [I, O] partial
    /// of dW^T, `sums` its zeroed `sums` doubles. Adds the weight partials to `weight.grad`
    /// (transposed) and returns the sums added over chunks, both in chunk order.
    private func chunked(rows: Int, weight: Parameter, sums width: Int,
                         _ body: (Int, Int, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Double>) -> Void) -> [Double] {
        let (i, o) = (inChannels, outChannels)
        let chunks = (rows + Self.chunkRows - 1) / Self.chunkRows
        let partialWeights = UnsafeMutablePointer<Float>.allocate(capacity: chunks * i * o)
        let partialSums = UnsafeMutablePointer<Double>.allocate(capacity: max(1, chunks * width))
        defer { partialWeights.deallocate(); partialSums.deallocate() }
        Threads.parallelFor(chunks, grain: 1) { mine in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: (2 * i + o) * Self.tileRows)
            defer { scratch.deallocate() }
            for chunk in mine {
                let weights = partialWeights + chunk * i * o, sums = partialSums + chunk * width
                weights.initialize(repeating: 0, count: i * o)
                sums.initialize(repeating: 0, count: width)
                let begin = chunk * Self.chunkRows
                body(begin, min(rows, begin + Self.chunkRows), scratch, weights, sums)
            }
        }
        let grad = weight.grad.data
        for chunk in 0..<chunks {
            let weights = partialWeights + chunk * i * o
            for c in 0..<i { for k in 0..<o { grad[k * i + c] += weights[c * o + k] } }
        }
        return Self.sumChunks(partialSums, chunks: chunks, width: width)
    }

    /// Per-chunk partials [chunks, width] added in chunk order.
    private static func sumChunks(_ partials: UnsafeMutablePointer<Double>, chunks: Int, width: Int) -> [Double] {
        var total = [Double](repeating: 0, count: width)
        for chunk in 0..<chunks { for k in 0..<width { total[k] += partials[chunk * width + k] } }
        return total
    }
}

/// A training batch norm's per-channel constants: invstd, scale = gamma * invstd and shift =
/// beta - mean * scale (ReLU(BN(x)) = max(0, scale x + shift)), and its backward's pass 2.
private struct NormAffine {
    let mean: Tensor, invstd: [Float], scale: [Float], shift: [Float]
    let channels: Int

    init(_ norm: BatchNorm2d, _ kept: BatchNorm2d.TrainingState) {
        channels = norm.channels
        mean = kept.mean
        invstd = (0..<norm.channels).map { 1 / (kept.variance[$0] + norm.eps).squareRoot() }
        scale = (0..<norm.channels).map { [invstd] in norm.gamma.value[$0] * invstd[$0] }
        shift = (0..<norm.channels).map { [scale] in norm.beta.value[$0] - kept.mean[$0] * scale[$0] }
    }

    func withConstants<R>(_ body: (UnsafePointer<lth4sa_norm_relu>) -> R) -> R {
        invstd.withUnsafeBufferPointer { invstd in
            scale.withUnsafeBufferPointer { scale in
                shift.withUnsafeBufferPointer { shift in
                    var constants = lth4sa_norm_relu(mean: mean.data, invstd: invstd.baseAddress, scale: scale.baseAddress, shift: shift.baseAddress)
                    return body(&constants)
                }
            }
        }
    }

    /// From pass 1's sums [sum g (C), sum g * xhat (C)] over `rows`: beta.grad += sum g,
    /// gamma.grad += sum g * xhat, and pass 2's coefficients [factor, mean_g, mean_gxhat] (3C).
    func pass2Coefficients(sums: [Double], rows: Int, norm: BatchNorm2d) -> [Float] {
        let c = channels
        var coefficients = [Float](repeating: 0, count: 3 * c)
        for k in 0..<c {
            norm.beta.grad[k] += Float(sums[k])
            norm.gamma.grad[k] += Float(sums[c + k])
            coefficients[k] = scale[k]
            coefficients[c + k] = Float(sums[k] / Double(rows))
            coefficients[2 * c + k] = Float(sums[c + k] / Double(rows))
        }
        return coefficients
    }

    /// Pass 2 over g (the masked gradient of the output, [rows, C]) in place, the batch norm's
    /// input kept by `mean`'s forward read from `x`.
    func applyPass2(sums: [Double], rows: Int, norm: BatchNorm2d, to g: Tensor) {
        guard let x = norm.trainingState?.input else { preconditionFailure("batch norm pass 2 before a training forward") }
        let coefficients = pass2Coefficients(sums: sums, rows: rows, norm: norm)
        invstd.withUnsafeBufferPointer { invstd in
            coefficients.withUnsafeBufferPointer { coefficients in
                Threads.parallelFor(rows, grain: PointwiseNormBackward.chunkRows) { part in
                    lth4sa_norm_backward_apply(Int32(channels), mean.data, invstd.baseAddress, coefficients.baseAddress, x.data, g.data,
                                               part.lowerBound, part.upperBound)
                }
            }
        }
    }
}

/// A convolution's output gradient for a fused backward: a tensor, or the second pass of the
/// backward of the batch norm after the convolution, not yet applied (`DeferredNormGradient`).
public enum OutputGradient {
    case tensor(Tensor)
    case deferred(DeferredNormGradient)

    public var shape: [Int] {
        switch self {
        case .tensor(let t): t.shape
        case .deferred(let d): d.g.shape
        }
    }
}
