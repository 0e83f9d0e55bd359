import Foundation
import Models
import NN
import Tensor

/// Everything that defines a training run; saved as `config.json` in the run directory and
/// in checkpoint metadata, so `--resume` continues with exactly the same settings.
public struct RunConfig: Codable, Equatable, Sendable {
    public var model = "resnet20"
    public var data = "synthetic"
    public var epochs = 5
    public var batch = 128
    public var lr: Float = 0.1
    /// `cosine`, `step:81,122` (x0.1 at each milestone) or `constant`.
    public var schedule = ScheduleSetting.cosine
    public var warmupEpochs: Double = 0
    public var momentum: Float = 0.9
    public var nesterov = false
    public var weightDecay: Float = 5e-4
    public var optimizer = OptimizerKind.sgd
    public var seed: UInt64 = 0
    public var valPerClass = 100
    /// Random crop padding (0 = off) and horizontal flip.
    public var cropPadding = 4
    public var flip = true
    /// The SAM plugin (path or id) attached to the blocks, its `key=value` options, how its
    /// instances are laid out (`full-sa` / `full-share`) and the connection scheme (nil = all).
    public var sam: String? = nil
    public var samOptions: [String] = []
    public var attach = AttachMode.fullSA
    /// As given (`Scheme(unfitted:)`); fitted to the model's stages when attached.
    public var scheme: Scheme? = nil
    /// Supernet training: the retaining probability p of d ~ Bernoulli(p)^L per mini-batch
    /// (nil = an ordinary network).
    public var keepProb: Double? = nil
    /// Supernet training: which sub-networks every mini-batch trains (nil = `bernoulli`, the
    /// paper's one sampled scheme; recorded so a resume continues the same way).
    public var supernetSampling: SupernetSampling? = nil
    /// A few-shot supernet's split: the fixed values (`0`/`1`) of its leading blocks.
    public var supernetSplit: String? = nil
    /// Check what every attention plugin writes, the parameter gradients before each optimizer
    /// step and the parameters after it for NaN/Inf, and stop naming the block or tensor
    /// (nil = on; false: `--no-check-finite`).
    public var checkFinite: Bool? = nil
    /// Batch norm statistics per mini-batch over this many equal groups (ghost batch norm;
    /// nil = 1). Data-parallel ranks each normalise their own part, so N ranks use at least N
    /// groups; the same value gives the same training for any number of ranks dividing it.
    public var bnGroups: Int? = nil
    /// Ranks the run was last trained with (`mpirun -np N`; nil or 1 = one process). Recorded,
    /// not a setting: a resume may use any number.
    public var worldSize: Int? = nil

    public init() {}

    /// Checks ranges; throws a one-line error naming the value and the expectation.
    public func validate() throws {
        guard epochs >= 1 && epochs <= 100_000 else { throw LTHError("`epochs` must be in 1...100000, got \(epochs)") }
        guard cropPadding >= 0 && cropPadding <= 64 else { throw LTHError("`cropPadding` must be in 0...64, got \(cropPadding)") }
        guard batch >= 2 else { throw LTHError("`batch` must be at least 2 (batch norm needs 2 images), got \(batch)") }
        guard lr > 0, lr.isFinite else { throw LTHError("`lr` must be a positive number, got \(lr)") }
        guard weightDecay >= 0 else { throw LTHError("`weightDecay` must be >= 0, got \(weightDecay)") }
        guard momentum >= 0, momentum < 1 else { throw LTHError("`momentum` must be in [0, 1), got \(momentum)") }
        guard valPerClass >= 0 else { throw LTHError("`valPerClass` must be >= 0, got \(valPerClass)") }
        guard warmupEpochs >= 0 else { throw LTHError("`warmupEpochs` must be >= 0, got \(warmupEpochs)") }
        if let g = bnGroups, !(g >= 1 && batch / g >= 2) {
            throw LTHError("`bnGroups` must be in 1...\(batch / 2) (each group needs 2 images of the batch of \(batch)), got \(g)")
        }
        if let p = keepProb, !(p > 0 && p <= 1) { throw LTHError("`keepProb` must be in (0, 1], got \(p)") }
        if keepProb != nil && sam == nil { throw LTHError("supernet training needs a `sam` plugin") }
        if supernetSampling != nil && keepProb == nil { throw LTHError("`supernetSampling` is a supernet setting; use it with `supernet train`, `run`, `compare` or `correlate`") }
        if let split = supernetSplit {
            guard supernetSampling == .fewshot, !split.isEmpty, split.allSatisfy({ $0 == "0" || $0 == "1" }) else {
                throw LTHError("supernet split '\(split)' needs `supernetSampling` fewshot and only the digits 0 and 1")
            }
        }
        if supernetSampling == .fewshot && supernetSplit == nil {
            throw LTHError("`supernetSampling` fewshot trains one split at a time: give `supernetSplit` BITS with it (and only with it)")
        }
        if keepProb != nil && scheme != nil { throw LTHError("a supernet attaches the SAM at every block; drop `scheme`") }
        if let scheme { _ = try scheme.fitted(to: try ModelSpec(model).blocksPerStage) }
    }

    /// Where a training goes when no directory is given: `runs/<prefix><model>-<data>-s<seed>`.
    public func defaultDirectory(prefix: String = "") -> String {
        "runs/\(prefix)\(model)-\(data.replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: ":", with: "-"))-s\(seed)"
    }

    /// The configuration as sorted-key JSON (`config.json`, checkpoint metadata).
    public var json: String {
        get throws {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            return String(decoding: try enc.encode(self), as: UTF8.self)
        }
    }

    public static func decode(_ json: String) throws -> RunConfig {
        do { return try JSONDecoder().decode(RunConfig.self, from: Data(json.utf8)) } catch let error as DecodingError {
            let why: String
            switch error {
            case .dataCorrupted(let c) where c.codingPath.isEmpty: why = "it is not JSON"
            case .dataCorrupted(let c): why = "'\(c.codingPath.map(\.stringValue).joined(separator: "."))': \(c.debugDescription)"
            case .keyNotFound(let key, _): why = "it lacks '\(key.stringValue)'"
            case .typeMismatch(_, let c), .valueNotFound(_, let c):
                why = "'\(c.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type (\(c.debugDescription))"
            @unknown default: why = "\(error)"
            }
            throw LTHError("run configuration is not readable: \(why)")
        } catch {
            throw LTHError("run configuration is not readable: \(error)")
        }
    }
}
