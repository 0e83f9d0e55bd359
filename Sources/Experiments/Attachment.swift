import Foundation
import Models
import PluginHost
import Tensor
import Training

/// Attaching the SAM a `RunConfig` names to a freshly built network: the hook every trainer,
/// evaluator and benchmark of the library uses.
public enum SAMAttachment {
    /// Attaches `config.sam` (with its options, attach mode and scheme; all blocks when the
    /// scheme is nil) to `net`. Returns the metadata stored in checkpoints (plugin id, version,
    /// resolved options, attach mode, scheme); empty without a SAM.
    public static func attach(_ config: RunConfig, to net: ResNet) throws -> [String: String] {
        guard let spec = config.sam else { return [:] }
        let plugin = try SAMPlugin(spec, settings: config.samOptions)
        let stages = net.spec.blocksPerStage
        let scheme = try config.scheme?.fitted(to: stages) ?? .all(true, stageSizes: stages)
        try SAMAttacher.attach(plugin, to: net, mode: config.attach, scheme: scheme, seed: config.seed)
        return ["sam.id": plugin.id, "sam.version": plugin.descriptor.version, "sam.options": plugin.optionsText,
                "sam.attach": config.attach.rawValue, "scheme": scheme.description]
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
