import Foundation
import Tensor

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

/// The schedule a run asks for, without its length: `cosine` (over the run's epochs),
/// `constant`, or `step:M1,M2,...` (x0.1 at each milestone epoch). Encoded as that text.
public enum ScheduleSetting: Hashable, Sendable, Codable, CustomStringConvertible {
    case cosine, constant
    case step(milestones: [Int])

    public init(parsing text: String) throws {
        switch text {
        case "cosine": self = .cosine
        case "constant": self = .constant
        default:
            let milestones = text.hasPrefix("step:") ? text.dropFirst(5).split(separator: ",", omittingEmptySubsequences: false).map { Int($0) } : []
            guard !milestones.isEmpty, milestones.allSatisfy({ ($0 ?? -1) > 0 }) else {
                throw LTHError("schedule '\(text)' not understood; expected cosine, constant or step:M1,M2,... (epochs, x0.1 each)")
            }
            self = .step(milestones: milestones.map { $0! })
        }
    }

    /// The rate schedule of a run of `epochs` epochs.
    public func schedule(epochs: Int) -> LRSchedule {
        switch self {
        case .cosine: return .cosine(epochs: epochs)
        case .constant: return .constant
        case .step(let milestones): return .step(milestones: milestones, gamma: 0.1)
        }
    }

    public var description: String {
        switch self {
        case .cosine: return "cosine"
        case .constant: return "constant"
        case .step(let milestones): return "step:" + milestones.map(String.init).joined(separator: ",")
        }
    }

    public init(from decoder: Decoder) throws { try self.init(parsing: try decoder.singleValueContainer().decode(String.self)) }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
