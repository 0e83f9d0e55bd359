import Tensor

/// A continuous gate on an attention, for differentiable search (DARTS, METHOD.md section 5):
///
///     F' = w * SAM(F) + (1 - w) * F        (w in [0, 1]; for F * A: F * (w A + 1 - w))
///
/// Backward gives dF = SAM^T(w * dF') + (1 - w) dF' and accumulates
/// dL/dw += sum(dF' * (SAM(F) - F)) into `gateGradient`. Keeps its own buffers (one per
/// shape), so it is used by one block of one network.
public final class GatedAttention: BranchAttention {
    public let inner: BranchAttention
    /// The gate value w.
    public var gate: Double
    /// dLoss/dw accumulated by `backward` since the last `zeroGateGradient`.
    public private(set) var gateGradient = 0.0
    private let outputs = BufferPool(), differences = BufferPool(), scaledGradients = BufferPool(), inputGradients = BufferPool()
    private var difference: Tensor?  // SAM(F) - F of the last training forward

    public init(_ inner: BranchAttention, gate: Double = 1) {
        self.inner = inner
        self.gate = gate
    }

    public func zeroGateGradient() { gateGradient = 0 }

    /// F [N, H, W, C] -> F + w (SAM(F) - F) [N, H, W, C]
    public func forward(_ branch: Tensor, training: Bool) -> Tensor {
        let y = inner.forward(branch, training: training)
        let d = differences.get(branch.shape), out = outputs.get(branch.shape)
        let w = Float(gate)
        for i in 0..<branch.count {
            let delta = y.data[i] - branch.data[i]
            d.data[i] = delta
            out.data[i] = branch.data[i] + w * delta
        }
        difference = training ? d : nil
        return out
    }

    /// dF' [N, H, W, C] -> dF [N, H, W, C]; dL/dw accumulates.
    public func backward(_ gradient: Tensor) -> Tensor {
        guard let d = difference else { preconditionFailure("GatedAttention.backward without a training forward") }
        let w = Float(gate)
        let scaled = scaledGradients.get(gradient.shape), out = inputGradients.get(gradient.shape)
        var dw = 0.0
        for i in 0..<gradient.count {
            dw += Double(gradient.data[i] * d.data[i])
            scaled.data[i] = w * gradient.data[i]
        }
        gateGradient += dw
        let dInner = inner.backward(scaled)
        for i in 0..<gradient.count { out.data[i] = dInner.data[i] + (1 - w) * gradient.data[i] }
        return out
    }
}
