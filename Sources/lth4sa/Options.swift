import ArgumentParser
import Checkpoint
import Cluster
import Experiments
import Models
import NN
import Search
import Tensor
import Terminal
import Training

/// `--sam PLUGIN [--sam-opt key=value ...] --attach full-sa|full-share --scheme BITS`.
struct SAMOptions: ParsableArguments {
    @Option(help: "SAM plugin to attach: a .so path or an installed plugin id (see `lth4sa plugins`).") var sam: String?
    @Option(name: .customLong("sam-opt"), help: "A SAM option as key=value (repeatable); `lth4sa plugins info X` lists them.") var samOptions: [String] = []
    @Option(help: "full-sa (one SAM per connected block) or full-share (one SAM per stage).") var attach: AttachMode = .fullSA
    @Option(help: "Connection scheme: one bit per block, block 0 first, stages optionally separated by '-' (default: all 1).",
            transform: { try Scheme(unfitted: $0) })
    var scheme: Scheme?

    func validate() throws {
        if sam == nil && (!samOptions.isEmpty || scheme != nil) {
            throw ValidationError("--sam-opt and --scheme need a --sam plugin")
        }
    }

    /// A configuration with only these settings (the rest RunConfig's defaults).
    var config: RunConfig {
        var c = RunConfig()
        apply(to: &c)
        return c
    }

    func apply(to config: inout RunConfig) {
        (config.sam, config.samOptions, config.attach, config.scheme) = (sam.map(SAMAttachment.recorded), samOptions, attach, scheme)
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
    @Option(parsing: .unconditional, help: "Seeds of every network trained from scratch (seed, seed + 1, ...: the same for all, compared pairwise); tables show mean ± sd (default 3).") var seeds: Int?
    @Option(parsing: .unconditional, help: "Retaining probability of the supernet's SAMs per mini-batch.") var keepProb: Double = 0.5
    @Option(help: ArgumentHelp("How every supernet mini-batch trains: bernoulli (one scheme d ~ Bernoulli(p)^L, the paper), sandwich (Full-SA, original and d), fair (d and 1 - d), distill (Full-SA teaches d), fewshot (correlate only: a supernet per setting of the first 2 blocks); default \(Recipe.builtInDefault(sam: "se").supernetSampling)). `correlate` takes a comma-separated list.", valueName: "strategy"))
    var supernetSampling: SupernetSamplings?
    @Option(parsing: .unconditional, help: "Validation images per class (the search's proxy data; default 50).") var valPerClass: Int?
    @Option(parsing: .unconditional, help: "Batch size (default 32).") var batch: Int?
    @Option(parsing: .unconditional, help: "Learning rate (default 0.2).") var lr: Double?
    @Flag(help: "Continue the study in --output: every finished part is reused, a stopped one continues.") var resume = false
    @OptionGroup var finiteChecks: FiniteCheckOptions

    /// The study's recipe: the built-in default (`Recipe.builtInDefault`), then every flag given.
    func recipe(seed: UInt64) -> Recipe {
        var r = Recipe.builtInDefault(sam: sam, samOptions: samOptions, attach: attach, seed: seed)
        apply(to: &r)
        return r
    }

    /// Every flag given, over `r` (a preset's or the default recipe).
    func apply(to r: inout Recipe) {
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
    }

    /// For the studies that train one supernet: refuses a list of strategies.
    func requireOneSupernet(_ command: String) throws {
        if let m = supernetSampling, m.values.count > 1 {
            throw ValidationError("\(command) trains one supernet; give one --supernet-sampling, got \(m.values.map { $0.rawValue }.joined(separator: ","))")
        }
    }

}

/// The library's setting names and this program's flags (`SettingNames`).
let flagNames = SettingNames(
    exceptions: ["directory": "--output", "samOptions": "--sam-opt", "searcherOptions": "--searcher-opt", "checkFinite": "--no-check-finite",
                 "reward.latency": "--reward-latency", "reward.accuracy": "--reward-acc", "reward.sparsity": "--reward-sparse",
                 "reward.curiosity": "--reward-rnd", "reward.shift": "--reward-shift", "reward.rndLearningRate": "--reward-rnd-lr"],
    settings: ["batch", "resume", "supernetSampling", "sam", "valPerClass", "scheme", "lr", "bnGroups", "epochs", "bnRecalibrate", "weightDecay",
               "warmupEpochs", "seeds", "searcher", "momentum", "margin", "landscapeMaxBlocks", "keepProb", "cropPadding", "classes", "limit",
               "supernetEpochs", "searchSeeds", "budget", "candidates", "seed", "threads", "model", "data", "searchSteps", "schemes", "topK",
               "resamples", "supernetSplit", "steps", "rounds", "maxEnumerate", "perRatio", "fraction", "size", "parallelism", "unfolded", "profile", "backward"])

/// Options every computing subcommand takes.
/// `-o`/`--output`: refused when empty (it would write into the current folder) or longer
/// than the system allows, with the reason (not "the parent is not writable" later).
func runDirectoryPath(_ text: String) throws -> String {
    do { try RunDirectoryLock.checkPath(text) } catch let e as LTHError { throw ValidationError(e.message) }
    return text
}

/// `--seed`: a whole number 0...2^64-1, refused with the range otherwise.
func parseSeed(_ text: String) throws -> UInt64 {
    guard let seed = UInt64(text) else { throw ValidationError("a seed is a whole number in 0...\(UInt64.max)") }
    return seed
}

struct RuntimeOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Threads for oneDNN and OpenBLAS (one shared pool); default: the cores other processes leave free (measured at start), or all cores divided among the ranks of an mpirun job on this machine.")
    var threads: Int?

    @Option(parsing: .unconditional, help: "Seed for initialisation, data order, augmentation and splits.", transform: parseSeed) var seed: UInt64 = 0

    func apply() throws {
        let (count, note) = try Threads.choose(requested: threads, ranksOnMachine: (Console.shared.group as? MPIGroup)?.localSize)
        if let note { print(note) }
        Threads.set(count)
    }
}

/// The model to build.
struct ModelOptions: ParsableArguments {
    @Option(help: "resnet20|resnet38|resnet56|resnet110|resnet164|resnet50|resnet-basic-N|resnet-bottleneck-N") var model: String = "resnet20"
}

extension AttachMode: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
extension SupernetSampling: ExpressibleByArgument {}
extension Parallelism: ExpressibleByArgument {}
extension BackwardKernels: ExpressibleByArgument {}
extension SchemeScore: ExpressibleByArgument {}

/// `--supernet-sampling a,b,...`: one or more supernet strategies (correlate compares several).
struct SupernetSamplings: ExpressibleByArgument {
    let values: [SupernetSampling]
    init?(argument: String) {
        let parts = argument.split(separator: ",").map { SupernetSampling(rawValue: String($0).trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else { return nil }
        values = parts.map { $0! }
    }
    static var allValueStrings: [String] { SupernetSampling.allCases.map { $0.rawValue } }
}
extension PipelinePreset: ExpressibleByArgument {}
extension CheckpointEvaluation.Subset: ExpressibleByArgument {}

