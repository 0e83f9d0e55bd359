import Foundation

/// A learning-rate schedule: the rate at a (fractional) epoch, so it can change every step.
public enum LRSchedule: Equatable, Sendable {
    /// Constant rate.
    case constant
    /// Multiply by `gamma` at each milestone epoch.
    case step(milestones: [Int], gamma: Float)
    /// Cosine from the base rate to 0 over `epochs`.
    case cosine(epochs: Int)

    /// Rate at `epoch` (0-based, fractional), with a linear warm-up over `warmup` epochs.
    public func rate(base: Float, epoch: Double, warmup: Double = 0) -> Float {
        var lr: Float
        switch self {
        case .constant:
            lr = base
        case let .step(milestones, gamma):
            lr = base * powf(gamma, Float(milestones.filter { Double($0) <= epoch }.count))
        case let .cosine(epochs):
            let t = min(max(epoch / Double(max(epochs, 1)), 0), 1)
            lr = base * Float(0.5 * (1 + cos(Double.pi * t)))
        }
        if warmup > 0 && epoch < warmup { lr *= Float((epoch + 1e-9) / warmup) }
        return lr
    }
}
