import ArgumentParser
import Foundation
import Models
import PluginHost
import Tensor
import Training

/// `--sam PLUGIN [--sam-opt key=value ...] --attach full-sa|full-share --scheme BITS`.
struct SAMOptions: ParsableArguments {
    @Option(help: "SAM plugin to attach: a .so path or an installed plugin id (see `lth4sa plugins`).")
    var sam: String?

    @Option(name: .customLong("sam-opt"), help: "A SAM option as key=value (repeatable); `lth4sa plugins info X` lists them.")
    var samOptions: [String] = []

    @Option(help: "full-sa (one SAM per connected block) or full-share (one SAM per stage).")
    var attach: String = "full-sa"

    @Option(help: "Connection scheme: one bit per block, block 0 first, stages optionally separated by '-' (default: all 1).")
    var scheme: String?

    func validate() throws {
        guard AttachMode(rawValue: attach) != nil else { throw ValidationError("--attach must be full-sa or full-share, got '\(attach)'") }
        if sam == nil && (!samOptions.isEmpty || scheme != nil) {
            throw ValidationError("--sam-opt and --scheme need a --sam plugin")
        }
    }

    func apply(to config: inout RunConfig) {
        // a path is recorded absolute, so `eval` of the checkpoint works from any folder
        config.sam = sam.map { $0.contains("/") ? URL(fileURLWithPath: $0).standardizedFileURL.path : $0 }
        config.samOptions = samOptions
        config.attach = attach
        config.scheme = scheme
    }

    /// The attach hook for the trainer (nil without --sam).
    static func hook(_ config: RunConfig, _ net: ResNet) throws -> [String: String] {
        guard let spec = config.sam else { return [:] }
        let plugin = try SAMPlugin(spec, settings: config.samOptions)
        let scheme = try config.scheme.map { try Scheme(parsing: $0, stageSizes: net.spec.blocksPerStage) }
            ?? .all(true, stageSizes: net.spec.blocksPerStage)
        try SAMAttacher.attach(plugin, to: net, mode: AttachMode(rawValue: config.attach) ?? .fullSA, scheme: scheme, seed: config.seed)
        return ["sam.id": plugin.id, "sam.version": plugin.descriptor.version, "sam.options": plugin.optionsText,
                "sam.attach": config.attach, "scheme": scheme.description]
    }
}
