import ArgumentParser
import Experiments
import PluginHost
import Training

/// `--sam PLUGIN [--sam-opt key=value ...] --attach full-sa|full-share --scheme BITS`.
struct SAMOptions: ParsableArguments {
    @Option(help: "SAM plugin to attach: a .so path or an installed plugin id (see `lth4sa plugins`).")
    var sam: String?

    @Option(name: .customLong("sam-opt"), help: "A SAM option as key=value (repeatable); `lth4sa plugins info X` lists them.")
    var samOptions: [String] = []

    @Option(help: "full-sa (one SAM per connected block) or full-share (one SAM per stage).")
    var attach: AttachMode = .fullSA

    @Option(help: "Connection scheme: one bit per block, block 0 first, stages optionally separated by '-' (default: all 1).")
    var scheme: String?

    func validate() throws {
        if sam == nil && (!samOptions.isEmpty || scheme != nil) {
            throw ValidationError("--sam-opt and --scheme need a --sam plugin")
        }
    }

    func apply(to config: inout RunConfig) {
        config.sam = sam.map(SAMAttachment.recorded)
        config.samOptions = samOptions
        config.attach = attach.rawValue
        config.scheme = scheme
    }
}
