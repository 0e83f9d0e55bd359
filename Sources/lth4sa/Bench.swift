import ArgumentParser
import Experiments
import Models
import PluginHost
import Tensor
import Terminal
import Training

/// `lth4sa bench ...`: performance figures, printed; never part of the test suite.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure training throughput and inference time.", subcommands: [BenchTrain.self, BenchSAMTraining.self, BenchInfer.self, BenchGEMM.self])

    /// Runs a benchmark with the console's progress and prints its lines.
    static func report(_ benchmark: (@escaping ProgressHandler) throws -> [String]) throws {
        let lines = try benchmark(Console.shared.show)
        Console.shared.endStatus()
        print(lines.joined(separator: "\n"))
    }
}

/// Batch size and classes of the networks a benchmark builds.
struct BenchSizeOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Batch size.") var batch: Int = 128
    @Option(parsing: .unconditional, help: "Classes of the classifier.") var classes: Int = 100
}

/// `lth4sa bench train`: median training images/s (forward + loss + backward + SGD step).
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Median training images/s and peak memory.")
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var samOptions: SAMOptions
    @OptionGroup var sizes: BenchSizeOptions
    @Option(parsing: .unconditional, help: "Warm-up steps (not timed).") var warmup: Int = 3
    @Option(parsing: .unconditional, help: "Timed steps.") var steps: Int = 10
    @Flag(help: "Print time per operation kind.") var profile = false
    @Flag(help: "Supernet training: the SAM at every block, a random sub-network per step (needs --sam).") var supernet = false
    @OptionGroup var finiteChecks: FiniteCheckOptions
    @Option(help: ArgumentHelp("fused: a bottleneck's last 1x1 convolution and the batch norms around it in fused passes (LIBXSMM GEMMs); onednn: oneDNN's separate primitives. Repeat to time both, one step of each per round, in one run.",
                               valueName: "fused|onednn"))
    var backward: [BackwardKernels] = []

    func run() throws {
        try runtime.apply()
        var config = samOptions.config
        config.checkFinite = finiteChecks.setting
        try Bench.report {
            try Benchmarks.training(model: modelOptions.model, config: config, classes: sizes.classes, batch: sizes.batch, supernet: supernet,
                                    warmup: warmup, steps: steps, seed: runtime.seed, profile: profile, kernels: backward,
                                    group: Console.shared.group, progress: $0)
        }
    }
}

/// `lth4sa bench sam-training`: what a SAM costs in training -- the plain network, Full-SA
/// (the SAM at every block) and supernet training (the SAM at every block, a random
/// sub-network per step), one step of each per round in shuffled order in one process.
struct BenchSAMTraining: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sam-training", abstract: "Training step time of the plain network, Full-SA and the supernet, interleaved.")
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var samOptions: SAMOptions
    @OptionGroup var sizes: BenchSizeOptions
    @Option(parsing: .unconditional, help: "Warm-up steps of each network (the supernet takes at least 8: a block sets up each of its two states on first use).") var warmup: Int = 3
    @Option(parsing: .unconditional, help: "Timed rounds (one step of each network per round).") var rounds: Int = 20

    func run() throws {
        try runtime.apply()
        try Bench.report {
            try Benchmarks.samTraining(model: modelOptions.model, config: samOptions.config, classes: sizes.classes, batch: sizes.batch, warmup: warmup,
                                       rounds: rounds, seed: runtime.seed, progress: $0)
        }
    }
}

/// `lth4sa bench infer`: forward time of the original network, Full-SA, Full-Share and a
/// half-connected scheme, measured in one process, interleaved in shuffled order each round,
/// medians; and the relative inference-time increment dT = (T - T_original) / T_original.
struct BenchInfer: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "infer", abstract: "Inference time and its relative increment per connection scheme.")
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "SAM plugin (path or id).") var sam: String
    @Option(name: .customLong("sam-opt"), help: "SAM option key=value (repeatable).") var samOptions: [String] = []
    @Option(parsing: .unconditional, help: "Batch size.") var batch: Int = 50
    @Option(parsing: .unconditional, help: "Classes of the classifier.") var classes: Int = 100
    @Option(parsing: .unconditional, help: "Warm-up rounds (not timed).") var warmup: Int = 3
    @Option(parsing: .unconditional, help: "Timed rounds (one forward of every network per round).") var rounds: Int = 20
    @Flag(help: "Time eval-mode forward with separate batch-norm passes instead of the deployed network (BN folded into the convolutions).") var unfolded = false
    @Flag(help: "Print time per operation kind (all networks together).") var profile = false
    @Option(help: ArgumentHelp("operators: every operator split over the threads; lanes: one whole network per thread, each on its slice of the batch. Repeat to time both interleaved in one run.",
                               valueName: "operators|lanes"))
    var parallelism: [Parallelism] = []

    func run() throws {
        guard Console.shared.group.size == 1 else {
            throw LTHError("bench infer times one process; run it without mpirun (\(Console.shared.group.size) ranks would compete for the cores)")
        }
        try runtime.apply()
        let plugin = try SAMPlugin(sam, settings: samOptions)
        try Bench.report {
            try Benchmarks.inference(model: modelOptions.model, plugin: plugin, classes: classes, batch: batch, warmup: warmup, rounds: rounds,
                                     seed: runtime.seed, unfolded: unfolded, profile: profile, modes: parallelism, progress: $0)
        }
    }
}

/// `lth4sa bench gemm`: the rate of a large single-precision matrix product (OpenBLAS), the
/// yardstick for the GFLOP/s that `bench train` and `bench infer` print.
struct BenchGEMM: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gemm", abstract: "What the cores compute at best: a large SGEMM's GFLOP/s.")
    @OptionGroup var runtime: RuntimeOptions
    @Option(parsing: .unconditional, help: "Matrix size (square).") var size: Int = 2048
    @Option(parsing: .unconditional, help: "Timed products.") var rounds: Int = 10

    func run() throws {
        try runtime.apply()
        let (seconds, flops) = try MachineRate.sgemmSeconds(size: size, rounds: rounds, seed: runtime.seed)
        let med = median(seconds)
        print(String(format: "sgemm %dx%dx%d (OpenBLAS), %d threads: median %.2f ms, %.1f GFLOP/s (best %.1f) over %d products",
                     size, size, size, Threads.current, med * 1000, flops / med / 1e9, flops / seconds.min()! / 1e9, rounds))
    }
}
