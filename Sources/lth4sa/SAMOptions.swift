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

/// The recipe flags `compare` and `correlate` share: SAM, supernet, networks trained from scratch.
struct StudyOptions: ParsableArguments {
    @Option(help: "SAM plugin (path or id).") var sam: String = "se"
    @Option(name: .customLong("sam-opt"), help: "SAM option key=value (repeatable).") var samOptions: [String] = []
    @Option(help: "full-sa or full-share supernet.") var attach: AttachMode = .fullSA
    @Option(help: "Model.") var model: String = "resnet20"
    @Option(help: "Data.") var data: String = "synthetic:4000"
    @Option(help: "Supernet epochs.") var supernetEpochs: Int = 4
    @Option(help: "Epochs of every network trained from scratch.") var epochs: Int = 4
    @Option(help: "Seeds of every network trained from scratch (seed, seed + 1, ...); tables show mean ± sd.") var seeds: Int = 1
    @Option(help: "Retaining probability of the supernet's SAMs per mini-batch.") var keepProb: Double = 0.5
    @Option(help: "Validation images per class (the search's proxy data).") var valPerClass: Int = 50
    @Option(help: "Batch size.") var batch: Int = 128
    @Flag(help: "Check every attention output and gradient for NaN/Inf; stop naming the block and plugin.") var checkFinite = false

    func validate() throws {
        if seeds < 1 { throw ValidationError("--seeds must be at least 1, got \(seeds)") }
        guard keepProb > 0 && keepProb <= 1 else { throw ValidationError("--keep-prob must be in (0, 1], got \(keepProb)") }
    }

    /// The study's recipe.
    func recipe(seed: UInt64) -> Recipe {
        var c = SAMAttachment.baseConfig(sam: sam, samOptions: samOptions, attach: attach, seed: seed, batch: batch)
        c.model = model
        c.data = data
        c.valPerClass = valPerClass
        c.checkFinite = checkFinite ? true : nil
        var r = Recipe(base: c)
        (r.supernetEpochs, r.epochs, r.seeds, r.keepProb) = (supernetEpochs, epochs, seeds, keepProb)
        return r
    }

    /// `output`, or `runs/<kind>-<model>-<SAM id from its descriptor>-s<seed>`.
    func directory(_ output: String?, kind: String, seed: UInt64) throws -> String {
        if let output { return output }
        return "runs/\(kind)-\(model)-\(try SAMPlugin(sam, settings: samOptions).id)-s\(seed)"
    }
}
