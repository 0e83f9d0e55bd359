import Foundation
import Tensor

/// Softmax cross-entropy averaged over the batch, with its gradient.
///
///     logits [N, K], labels [N] -> loss = -(1/N) sum_n log softmax(logits_n)[label_n]
///     dlogits = (softmax - onehot) / N
public final class SoftmaxCrossEntropy {
    private let grads = BufferPool()
    public init() {}

    public struct Result {
        public let loss: Double
        public let correct: Int
        public let gradient: Tensor
    }

    public func callAsFunction(_ logits: Tensor, _ labels: [Int32]) -> Result {
        let (n, k) = (logits.shape[0], logits.shape[1])
        precondition(labels.count == n, "\(labels.count) labels for \(n) logits")
        let d = grads.get(logits.shape)
        var loss = 0.0, correct = 0
        for r in 0..<n {
            let row = logits.data + r * k, g = d.data + r * k
            var mx = row[0], arg = 0
            for j in 1..<k where row[j] > mx { mx = row[j]; arg = j }
            var z: Float = 0
            for j in 0..<k { g[j] = expf(row[j] - mx); z += g[j] }
            let label = Int(labels[r])
            loss -= Double(row[label] - mx) - Double(logf(z))
            if arg == label { correct += 1 }
            let inv = 1 / (z * Float(n))
            for j in 0..<k { g[j] *= inv }
            g[label] -= 1 / Float(n)
        }
        return Result(loss: loss / Double(n), correct: correct, gradient: d)
    }

    /// Per-row arg-max (the predicted class).
    public static func predictions(_ logits: Tensor) -> [Int] {
        let (n, k) = (logits.shape[0], logits.shape[1])
        return (0..<n).map { r in
            let row = logits.data + r * k
            var arg = 0
            for j in 1..<k where row[j] > row[arg] { arg = j }
            return arg
        }
    }
}

/// Cross-entropy against soft targets (in-place distillation: a teacher's softmax
/// predictions), averaged over the batch, with its gradient; no gradient reaches the teacher.
///
///     logits [N, K], targets [N, K] (rows sum to 1)
///       -> loss = -(1/N) sum_n sum_k targets_nk log softmax(logits_n)_k
///     dlogits = (softmax(logits) - targets) / N
public final class SoftTargetCrossEntropy {
    private let grads = BufferPool()
    public init() {}

    public func callAsFunction(_ logits: Tensor, targets: Tensor) -> (loss: Double, gradient: Tensor) {
        let (n, k) = (logits.shape[0], logits.shape[1])
        precondition(targets.shape == logits.shape, "targets \(targets.shape) for logits \(logits.shape)")
        let d = grads.get(logits.shape)
        var loss = 0.0
        for r in 0..<n {
            let row = logits.data + r * k, t = targets.data + r * k, g = d.data + r * k
            var mx = row[0]
            for j in 1..<k where row[j] > mx { mx = row[j] }
            var z: Float = 0
            for j in 0..<k { g[j] = expf(row[j] - mx); z += g[j] }
            let logZ = logf(z)
            for j in 0..<k {
                loss -= Double(t[j]) * Double(row[j] - mx - logZ)
                g[j] = (g[j] / z - t[j]) / Float(n)
            }
        }
        return (loss / Double(n), d)
    }

    /// Row-wise softmax of `logits` into `out` (same shape): the targets a teacher's logits give.
    public static func softmax(_ logits: Tensor, into out: Tensor) {
        let (n, k) = (logits.shape[0], logits.shape[1])
        precondition(out.shape == logits.shape)
        for r in 0..<n {
            let row = logits.data + r * k, o = out.data + r * k
            var mx = row[0]
            for j in 1..<k where row[j] > mx { mx = row[j] }
            var z: Float = 0
            for j in 0..<k { o[j] = expf(row[j] - mx); z += o[j] }
            for j in 0..<k { o[j] /= z }
        }
    }
}
