import Foundation
import Tensor

/// An optimizer updates parameters from their gradients (PyTorch semantics) and exposes its
/// state as named tensors so checkpoints can save and restore it.
/// Which optimizer a run uses (written `sgd` / `adam` in run files).
public enum OptimizerKind: String, CaseIterable, Codable, Sendable {
    case sgd, adam
}

public protocol Optimizer: AnyObject {
    var learningRate: Float { get set }
    /// Number of `step()` calls so far.
    var steps: Int { get set }
    func step()
    /// Per-parameter state tensors keyed by parameter name (e.g. `fc.weight.momentum_buffer`).
    func stateTensors() -> [(String, Tensor)]
}

/// SGD with momentum, optional Nesterov, and L2 weight decay added to the gradient:
///     g = grad + wd * w;  buf = m * buf + g (buf = g at the first step);
///     w -= lr * (nesterov ? g + m * buf : buf)
public final class SGD: Optimizer {
    public var learningRate: Float
    public let momentum: Float, weightDecay: Float, nesterov: Bool
    public var steps = 0
    let parameters: [(String, Parameter)]
    let buffers: [Tensor]

    public init(_ parameters: [(String, Parameter)], lr: Float, momentum: Float = 0.9, weightDecay: Float = 0, nesterov: Bool = false) {
        self.parameters = parameters
        learningRate = lr
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        buffers = parameters.map { Tensor($0.1.value.shape) }
    }

    public func step() {
        let (lr, m, wd) = (learningRate, momentum, weightDecay)
        let first = steps == 0
        for (i, (_, p)) in parameters.enumerated() {
            let w = p.value.data, g = p.grad.data, b = buffers[i].data
            for j in 0..<p.value.count {
                let grad = g[j] + wd * w[j]
                if m == 0 { w[j] -= lr * grad; continue }
                b[j] = first ? grad : m * b[j] + grad
                w[j] -= lr * (nesterov ? grad + m * b[j] : b[j])
            }
            p.touch()
        }
        steps += 1
    }

    public func stateTensors() -> [(String, Tensor)] {
        zip(parameters, buffers).map { ($0.0 + ".momentum_buffer", $1) }
    }
}

/// Adam (Kingma & Ba) with bias correction and L2 weight decay added to the gradient.
public final class Adam: Optimizer {
    public var learningRate: Float
    public let beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    public var steps = 0
    let parameters: [(String, Parameter)]
    let m: [Tensor], v: [Tensor]

    public init(_ parameters: [(String, Parameter)], lr: Float, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 0) {
        self.parameters = parameters
        learningRate = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
        m = parameters.map { Tensor($0.1.value.shape) }
        v = parameters.map { Tensor($0.1.value.shape) }
    }

    public func step() {
        steps += 1
        let c1 = 1 - powf(beta1, Float(steps)), c2 = 1 - powf(beta2, Float(steps))
        for (i, (_, p)) in parameters.enumerated() {
            let w = p.value.data, g = p.grad.data, mi = m[i].data, vi = v[i].data
            for j in 0..<p.value.count {
                let grad = g[j] + weightDecay * w[j]
                mi[j] = beta1 * mi[j] + (1 - beta1) * grad
                vi[j] = beta2 * vi[j] + (1 - beta2) * grad * grad
                w[j] -= learningRate * (mi[j] / c1) / ((vi[j] / c2).squareRoot() + eps)
            }
            p.touch()
        }
    }

    public func stateTensors() -> [(String, Tensor)] {
        zip(parameters, m).map { ($0.0 + ".exp_avg", $1) } + zip(parameters, v).map { ($0.0 + ".exp_avg_sq", $1) }
    }
}
