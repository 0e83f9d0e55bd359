import Tensor

/// Fully connected layer with bias (PyTorch layout: weight [out, in]), GEMMs by OpenBLAS.
///
///     x [N, in] -> y [N, out] = x W^T + b
public final class Linear: Module {
    public let inFeatures: Int, outFeatures: Int
    public let weight: Parameter, bias: Parameter
    private let outputs = BufferPool(), grads = BufferPool()
    private var savedInput: Tensor?

    public var localParameters: [(String, Parameter)] { [("weight", weight), ("bias", bias)] }

    public init(_ inFeatures: Int, _ outFeatures: Int) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        weight = Parameter([outFeatures, inFeatures])
        bias = Parameter([outFeatures])
    }

    /// PyTorch's default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
    public func initialize(_ rng: inout RNG) {
        let bound = 1 / Float(inFeatures).squareRoot()
        rng.fillUniform(weight.value, -bound, bound)
        rng.fillUniform(bias.value, -bound, bound)
    }

    public func forward(_ x: Tensor) -> Tensor {
        precondition(x.shape.count == 2 && x.shape[1] == inFeatures, "linear expects [N,\(inFeatures)], got \(x.shape)")
        let n = x.shape[0]
        let y = outputs.get([n, outFeatures])
        for r in 0..<n { (y.data + r * outFeatures).update(from: bias.value.data, count: outFeatures) }
        BLAS.gemm(false, true, m: n, n: outFeatures, k: inFeatures, x.data, weight.value.data, beta: 1, y.data)
        savedInput = x
        return y
    }

    /// dx = dy W;  dW += dy^T x;  db += sum_n dy
    public func backward(_ dy: Tensor) -> Tensor {
        guard let x = savedInput else { fatalError("linear backward before forward") }
        let n = x.shape[0]
        BLAS.gemm(true, false, m: outFeatures, n: inFeatures, k: n, dy.data, x.data, beta: 1, weight.grad.data)
        // this batch's sum first, then one addition: gradients accumulated over several batches
        // (batch-norm groups) equal the sum of per-batch gradients (data-parallel ranks) exactly
        var sum = [Float](repeating: 0, count: outFeatures)
        for r in 0..<n {
            let row = dy.data + r * outFeatures
            for j in 0..<outFeatures { sum[j] += row[j] }
        }
        for j in 0..<outFeatures { bias.grad[j] += sum[j] }
        let dx = grads.get(x.shape)
        BLAS.gemm(false, false, m: n, n: inFeatures, k: outFeatures, dy.data, weight.value.data, beta: 0, dx.data)
        return dx
    }
}
