import Foundation
import Models
import Tensor

/// The SAM a network carries, as its checkpoints record it (`sam.*` metadata keys).
public struct AttachedSAM: Equatable, Sendable {
    /// The plugin's id and version (from its descriptor).
    public var id: String
    public var version: String
    /// Every option with its value: "reduction=16,groups=4".
    public var options: String
    public var attach: AttachMode
    /// The blocks that carry it.
    public var scheme: Scheme

    public init(id: String, version: String, options: String, attach: AttachMode, scheme: Scheme) {
        (self.id, self.version, self.options, self.attach, self.scheme) = (id, version, options, attach, scheme)
    }
}

/// What a training checkpoint's `__metadata__` holds, typed. Stored as the string map
/// safetensors keeps, under the keys files have always used (`epoch`, `step`, `config`,
/// `normalization.mean`, `data`, `scheme`, `sam.id`, ...), so older checkpoints still load.
public struct TrainingCheckpointMetadata: Sendable {
    /// Position: the epoch (0-based, finished epochs) and the step within it.
    public var epoch: Int
    public var step: Int
    public var config: RunConfig
    /// Per-channel normalisation of the training images.
    public var mean: [Float]
    public var std: [Float]
    /// The SAM attached (nil without one).
    public var sam: AttachedSAM?

    public init(epoch: Int, step: Int, config: RunConfig, mean: [Float], std: [Float], sam: AttachedSAM?) {
        (self.epoch, self.step, self.config, self.mean, self.std, self.sam) = (epoch, step, config, mean, std, sam)
    }

    /// Reads the metadata of `path`'s checkpoint; throws naming what is missing.
    public init(path: String) throws {
        try self.init(strings: try ModelCheckpoint.metadata(path), file: path)
    }

    /// Parses the string map of a checkpoint (`file` names it in errors).
    public init(strings meta: [String: String], file: String) throws {
        guard let text = meta["config"] else {
            throw LTHError("'\(file)' has no run configuration in its metadata (not written by lth4sa's training)")
        }
        config = try RunConfig.decode(text)
        epoch = Int(meta[ModelCheckpoint.epochKey] ?? "0") ?? 0
        step = Int(meta["step"] ?? "0") ?? 0
        func floats(_ key: String) -> [Float] { (meta[key] ?? "").split(separator: ",").compactMap { Float($0) } }
        (mean, std) = (floats("normalization.mean"), floats("normalization.std"))
        if let id = meta["sam.id"] {
            // "" when the network carried it at every block (the configuration named no scheme)
            let text = meta["scheme"] ?? ""
            let scheme = text.isEmpty ? Scheme.all(true, stageSizes: try ModelSpec(config.model).blocksPerStage) : try Scheme(unfitted: text)
            sam = AttachedSAM(id: id, version: meta["sam.version"] ?? "", options: meta["sam.options"] ?? "",
                              attach: AttachMode(rawValue: meta["sam.attach"] ?? "") ?? config.attach, scheme: scheme)
        }
    }

    /// The string map written into the checkpoint.
    public func strings() throws -> [String: String] {
        var meta: [String: String] = [
            ModelCheckpoint.epochKey: String(epoch), "step": String(step), "config": try config.json,
            "normalization.mean": mean.map { String($0) }.joined(separator: ","), "normalization.std": std.map { String($0) }.joined(separator: ","),
            "data": config.data, "scheme": config.scheme?.description ?? "",
            "rng": "none kept: batch order and augmentation derive from (seed, epoch)"]
        if let sam {
            (meta["sam.id"], meta["sam.version"], meta["sam.options"], meta["sam.attach"]) = (sam.id, sam.version, sam.options, sam.attach.rawValue)
        }
        return meta
    }
}
