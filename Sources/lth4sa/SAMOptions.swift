import ArgumentParser
import Experiments
import Models
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

    @Option(help: "Connection scheme: one bit per block, block 0 first, stages optionally separated by '-' (default: all 1).",
            transform: { try Scheme(unfitted: $0) })
    var scheme: Scheme?

    func validate() throws {
        if sam == nil && (!samOptions.isEmpty || scheme != nil) {
            throw ValidationError("--sam-opt and --scheme need a --sam plugin")
        }
    }

    func apply(to config: inout RunConfig) {
        config.sam = sam.map(SAMAttachment.recorded)
        config.samOptions = samOptions
        config.attach = attach
        config.scheme = scheme
    }
}

/// `--check-finite` (the default) / `--no-check-finite`.
struct FiniteCheckOptions: ParsableArguments {
    @Flag(inversion: .prefixedNo,
          help: "Check what every attention plugin writes, the gradients before each optimizer step and the weights after it for NaN/Inf; stop naming the plugin and block, or the tensor.")
    var checkFinite = true

    /// What `RunConfig.checkFinite` records: nil for the default (on), false when turned off.
    var setting: Bool? { checkFinite ? nil : false }
}

/// The recipe flags `compare` and `correlate` share: SAM, supernet, networks trained from scratch.
struct StudyOptions: ParsableArguments {
    @Option(help: "SAM plugin (path or id).") var sam: String = "se"
    @Option(name: .customLong("sam-opt"), help: "SAM option key=value (repeatable).") var samOptions: [String] = []
    @Option(help: "full-sa or full-share supernet.") var attach: AttachMode = .fullSA
    @Option(help: "Model (default resnet-basic-14).") var model: String?
    @Option(help: "Data (default synthetic-context:4000, the built-in benchmark).") var data: String?
    @Option(parsing: .unconditional, help: "Supernet epochs (default 10).") var supernetEpochs: Int?
    @Option(parsing: .unconditional, help: "Epochs of every network trained from scratch (default 5).") var epochs: Int?
    @Option(parsing: .unconditional, help: "Seeds of every network trained from scratch (seed, seed + 1, ...: the same for all, compared pairwise); tables show mean ± sd (default 3).")
    var seeds: Int?
    @Option(parsing: .unconditional, help: "Retaining probability of the supernet's SAMs per mini-batch.") var keepProb: Double = 0.5
    @Option(help: ArgumentHelp("How every supernet mini-batch trains: bernoulli (one scheme d ~ Bernoulli(p)^L, the paper), sandwich (Full-SA, original and d), fair (d and 1 - d), distill (Full-SA teaches d), fewshot (correlate only: a supernet per setting of the first 2 blocks); default \(Recipe.builtInDefault(sam: "se").supernetSampling)). `correlate` takes a comma-separated list.", valueName: "strategy"))
    var supernetSampling: SupernetSamplings?
    @Option(parsing: .unconditional, help: "Validation images per class (the search's proxy data; default 50).") var valPerClass: Int?
    @Option(parsing: .unconditional, help: "Batch size (default 32).") var batch: Int?
    @Option(parsing: .unconditional, help: "Learning rate (default 0.2).") var lr: Double?
    @Flag(help: "Continue the study in --output: every finished part is reused, a stopped one continues.") var resume = false
    @OptionGroup var finiteChecks: FiniteCheckOptions

    func validate() throws {
        if let s = seeds, s < 1 { throw ValidationError("--seeds must be at least 1, got \(s)") }
        if let b = batch, b < 1 { throw ValidationError("--batch must be at least 1, got \(b)") }
        if let r = lr, !(r.isFinite && r > 0) { throw ValidationError("--lr must be a positive number, got \(r)") }
        guard keepProb > 0 && keepProb <= 1 else { throw ValidationError("--keep-prob must be in (0, 1], got \(keepProb)") }
    }

    /// The study's recipe: the built-in default (`Recipe.builtInDefault`), then every flag given.
    func recipe(seed: UInt64) -> Recipe {
        var r = Recipe.builtInDefault(sam: sam, samOptions: samOptions, attach: attach, seed: seed)
        if let m = model { r.base.model = m }
        if let d = data { r.base.data = d }
        if let v = valPerClass { r.base.valPerClass = v }
        if let b = batch { r.base.batch = b }
        if let l = lr { r.base.lr = Float(l) }
        r.base.checkFinite = finiteChecks.setting
        if let e = supernetEpochs { r.supernetEpochs = e }
        if let e = epochs { r.epochs = e }
        if let s = seeds { r.seeds = s }
        r.keepProb = keepProb
        if let first = supernetSampling?.values.first { r.supernetSampling = first }
        return r
    }

    /// `output`, or `runs/<kind>-<model>-<SAM id from its descriptor>-s<seed>`.
    func directory(_ output: String?, kind: String, seed: UInt64) throws -> String {
        if let output { return output }
        return "runs/\(kind)-\(recipe(seed: seed).base.model)-\(try SAMPlugin(sam, settings: samOptions).id)-s\(seed)"
    }
}
