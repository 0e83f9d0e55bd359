import Foundation
import Models
import PluginHost
import Tensor
import Training

/// Attaching the SAM a `RunConfig` names to a freshly built network: the hook every trainer,
/// evaluator and benchmark of the library uses.
public enum SAMAttachment {
    /// Attaches `config.sam` (with its options, attach mode and scheme; all blocks when the
    /// scheme is nil) to `net`, resolving the plugin for this one network. Returns what
    /// checkpoints record (plugin id, version, resolved options, attach mode, scheme); nil
    /// without a SAM. Studies resolve once instead (`SAMHandle`).
    public static func attach(_ config: RunConfig, to net: ResNet) throws -> AttachedSAM? {
        guard let spec = config.sam else { return nil }
        return try SAMHandle(spec: spec, options: config.samOptions).attach(config, to: net)
    }

    /// The form a plugin spec is recorded in: paths absolute (so a checkpoint resolves its
    /// plugin from any folder), ids as given.
    public static func recorded(_ spec: String) -> String {
        spec.contains("/") ? URL(fileURLWithPath: spec).standardizedFileURL.path : spec
    }

    /// The configuration every network of a run starts from: SAM, attach mode, seed and batch.
    public static func baseConfig(sam: String, samOptions: [String], attach: AttachMode, seed: UInt64, batch: Int) -> RunConfig {
        var c = RunConfig()
        c.sam = recorded(sam)
        c.samOptions = samOptions
        c.attach = attach
        c.seed = seed
        c.batch = batch
        return c
    }
}

/// A SAM plugin resolved once (discovery, scan and `dlopen` done, options checked): what every
/// network of a study attaches, so that building a network does not look the plugin up again.
public struct SAMHandle {
    /// The spec as recorded in configurations (`SAMAttachment.recorded`) and its option settings.
    public let spec: String
    public let options: [String]
    public let plugin: SAMPlugin

    public init(spec: String, options: [String]) throws {
        self.spec = SAMAttachment.recorded(spec)
        self.options = options
        plugin = try SAMPlugin(spec, settings: options)
    }

    /// The plugin's id (from its descriptor).
    public var id: String { plugin.id }

    /// Attaches this plugin to `net` as `config` says (attach mode, scheme, seed): the hook a
    /// `Trainer` takes. A configuration naming another SAM (or none) is attached as it says.
    public func attach(_ config: RunConfig, to net: ResNet) throws -> AttachedSAM? {
        guard let wanted = config.sam else { return nil }
        guard SAMAttachment.recorded(wanted) == spec && config.samOptions == options else { return try SAMAttachment.attach(config, to: net) }
        let stages = net.spec.blocksPerStage
        let scheme = try config.scheme?.fitted(to: stages) ?? .all(true, stageSizes: stages)
        try SAMAttacher.attach(plugin, to: net, mode: config.attach, scheme: scheme, seed: config.seed)
        return AttachedSAM(id: plugin.id, version: plugin.descriptor.version, options: plugin.optionsText, attach: config.attach, scheme: scheme)
    }
}
