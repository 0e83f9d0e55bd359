import ArgumentParser
import Experiments
import Foundation
import Models
import NN
import PluginHost
import Tensor
import Training

/// `lth4sa bench ...`: performance figures, printed; never part of the test suite.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure training throughput and inference time.", subcommands: [BenchTrain.self, BenchSAMTraining.self, BenchInfer.self, BenchGEMM.self])
}

/// Batch size and classes of the networks a training benchmark builds.
struct TrainingSizeOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Batch size.") var batch: Int = 128
    @Option(parsing: .unconditional, help: "Classes of the classifier.") var classes: Int = 100

    func validate() throws {
        if batch < 1 { throw ValidationError("--batch must be at least 1, got \(batch)") }
    }
}

/// `lth4sa bench train`: median training images/s (forward + loss + backward + SGD step).
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Median training images/s and peak memory.")
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var samOptions: SAMOptions
    @OptionGroup var sizes: TrainingSizeOptions
    @Option(parsing: .unconditional, help: "Warm-up steps (not timed).") var warmup: Int = 3
    @Option(parsing: .unconditional, help: "Timed steps.") var steps: Int = 10
    @Flag(help: "Print time per operation kind.") var profile = false
    @Flag(help: "Supernet training: the SAM at every block, a random sub-network per step (needs --sam).") var supernet = false
    @OptionGroup var finiteChecks: FiniteCheckOptions

    func validate() throws {
        if supernet && samOptions.sam == nil { throw ValidationError("--supernet needs --sam") }
        if steps < 1 { throw ValidationError("--steps must be at least 1, got \(steps)") }
    }

    func run() throws {
        runtime.apply()
        var config = RunConfig()
        samOptions.apply(to: &config)
        config.checkFinite = finiteChecks.setting
        let group = Console.shared.group
        let bench = try TrainingBenchmark(model: modelOptions.model, classes: sizes.classes, batch: sizes.batch, config: config, seed: runtime.seed,
                                            supernet: supernet, group: group)
        let side = bench.net.spec.imageSize
        let samText = config.sam.map { " + \($0) (\(config.attach), scheme \(supernet ? "random per step (supernet)" : config.scheme?.description ?? "all"))" } ?? ""
        let ranks = group.size > 1 ? ", \(group.size) ranks (data parallel)" : ""
        print("bench train: \(bench.net.spec)\(samText) (\(bench.net.parameterCount) parameters), batch \(sizes.batch), \(side)x\(side), \(Threads.current) threads\(ranks)")
        for _ in 0..<warmup { _ = try bench.step() }
        var times: [Double] = [], exchanges: [Double] = []
        let profiler = bench.net.context.profiler
        profiler.enabled = profile
        for i in 0..<steps {
            let (seconds, communication, loss) = try bench.step()
            times.append(seconds)
            exchanges.append(communication)
            Console.shared.show(.status("step \(i + 1)/\(steps)  loss \(String(format: "%.3f", loss))  \(String(format: "%.1f", Double(sizes.batch) / seconds)) img/s"))
        }
        Console.shared.endStatus()
        let med = median(times)
        print(String(format: "median step %.1f ms, %.1f images/s (min %.1f ms, max %.1f ms over %d steps)",
                     med * 1000, Double(sizes.batch) / med, times.min()! * 1000, times.max()! * 1000, steps))
        let flops = Double(bench.net.trainingFLOPs)
        print(String(format: "%.1f GFLOP/s in this process (%.3f GFLOP per image: convolutions and classifier, direct count; "
                     + "`lth4sa bench gemm`: what the cores reach at best)", flops * Double(sizes.batch) / med / 1e9, flops / 1e9))
        let memory = try group.sum([Double(peakResidentBytes())])[0]
        if group.size > 1 {
            let volume = Double(bench.net.parameterCount * MemoryLayout<Float>.stride)
            print(String(format: "gradient allreduce (started during backward): median %.2f ms waited per step (%.1f%% of the step), %.2f MB of gradients per rank",
                         median(exchanges) * 1000, median(exchanges) / med * 100, volume / 1e6))
        }
        print(String(format: "peak RSS %.2f GB", memory / 1e9) + (group.size > 1 ? " (sum over the \(group.size) ranks)" : ""))
        if profile {
            let total = times.reduce(0, +)
            print("profile (share of timed steps):")
            for (what, secs, calls) in profiler.report {
                print(String(format: "  %-18@ %7.1f ms/step  %5.1f%%  (%d calls/step)", what as NSString, secs / Double(steps) * 1000, secs / total * 100, calls / steps))
            }
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
    @OptionGroup var sizes: TrainingSizeOptions
    @Option(parsing: .unconditional, help: "Warm-up steps of each network (the supernet takes at least 8: a block sets up each of its two states on first use).") var warmup: Int = 3
    @Option(parsing: .unconditional, help: "Timed rounds (one step of each network per round).") var rounds: Int = 20

    func validate() throws {
        if samOptions.sam == nil { throw ValidationError("sam-training needs --sam (the SAM whose cost it measures)") }
        if samOptions.scheme != nil { throw ValidationError("sam-training compares the SAM at every block: drop --scheme") }
        if rounds < 1 { throw ValidationError("--rounds must be at least 1, got \(rounds)") }
    }

    func run() throws {
        runtime.apply()
        var config = RunConfig()
        samOptions.apply(to: &config)
        var plainConfig = config
        plainConfig.sam = nil
        // the three networks train side by side: each one's check alone would pass
        let spec = try ModelSpec(modelOptions.model)
        try SystemMemory.require(3 * spec.trainingMemoryLowerBound(batch: sizes.batch, classes: sizes.classes),
                                 for: "training three \(spec) networks side by side at batch \(sizes.batch)", fix: "lower --batch or use a smaller --model")
        let make = { (config: RunConfig, supernet: Bool) in
            try TrainingBenchmark(model: modelOptions.model, classes: sizes.classes, batch: sizes.batch, config: config, seed: runtime.seed, supernet: supernet)
        }
        let kinds: [(name: String, bench: TrainingBenchmark, warmup: Int)] = [
            ("plain", try make(plainConfig, false), warmup), ("Full-SA", try make(config, false), warmup),
            ("supernet", try make(config, true), max(warmup, 8))]
        print("bench sam-training: \(spec) + \(config.sam!) (\(config.attach)), batch \(sizes.batch), \(Threads.current) threads, "
              + "\(rounds) rounds of one step each in shuffled order")
        let times = try TrainingBenchmark.interleavedRounds(kinds.map { ($0.bench, $0.warmup) }, rounds: rounds, seed: runtime.seed) { r, total in
            Console.shared.show(.status("round \(r)/\(total)"))
        }
        Console.shared.endStatus()
        for (k, kind) in kinds.enumerated() {
            print(String(format: "%-10@ median step %7.1f ms, %6.1f images/s", kind.name as NSString, median(times[k]) * 1000, Double(sizes.batch) / median(times[k])))
        }
        // the difference of the median step times, with its 95% bootstrap interval over the
        // rounds (resampled in pairs: all kinds ran in the same rounds), as dT is reported
        for (a, b) in [(1, 0), (2, 0), (2, 1)] {
            let d = InferenceTiming.increment(times[a], over: times[b])
            print(String(format: "%@ vs %@: %+.1f%% time per step [95%% CI %+.1f%%, %+.1f%%]",
                         kinds[a].name as NSString, kinds[b].name as NSString, d.value, d.low, d.high))
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

    func validate() throws {
        if batch < 1 { throw ValidationError("--batch must be at least 1, got \(batch)") }
        if rounds < 1 { throw ValidationError("--rounds must be at least 1, got \(rounds)") }
    }

    func run() throws {
        guard Console.shared.group.size == 1 else {
            throw LTHError("bench infer times one process; run it without mpirun (\(Console.shared.group.size) ranks would compete for the cores)")
        }
        runtime.apply()
        let spec = try ModelSpec(modelOptions.model)
        let plugin = try SAMPlugin(sam, settings: samOptions)
        let nets = try InferenceTiming.benchmarkNetworks(spec, plugin: plugin, classes: classes, seed: runtime.seed)
        print("bench infer: \(spec) + \(plugin.id) (\(plugin.optionsText)), batch \(batch), \(Threads.current) threads, \(rounds) interleaved rounds, "
              + (unfolded ? "eval-mode forward (BN passes separate)" : "deployed networks (BN folded into the convolutions)"))
        let medians = try InferenceTiming.interleavedMedians(nets.map { $0.1 }, batch: batch, warmup: warmup, rounds: rounds, seed: runtime.seed,
                                                             folded: !unfolded) { r, n in
            Console.shared.show(.status("round \(r)/\(n)"))
            nets[0].1.context.profiler.enabled = profile && r >= warmup  // the timed rounds only (one context for all)
        }
        Console.shared.endStatus()
        print(pad("network", 36) + pad("params", 11) + pad("median ms", 11) + "dT")
        for (i, (label, net)) in nets.enumerated() {
            let t = medians[i]
            print(pad(label, 36) + pad(String(net.parameterCount), 11) + pad(String(format: "%.2f", t), 11)
                  + (i == 0 ? "-" : String(format: "%+.1f%%", InferenceTiming.incrementPercent(t, original: medians[0]))))
        }
        let flops = 2 * Double(nets[0].1.forwardMultiplyAdds)
        print(String(format: "original: %.1f GFLOP/s (%.3f GFLOP per image: convolutions and classifier, direct count; "
                     + "`lth4sa bench gemm`: what the cores reach at best)", flops * Double(batch) / (medians[0] / 1000) / 1e9, flops / 1e9))  // medians in ms
        if profile {
            print("profile (ms per round, all \(nets.count) networks):")
            for (what, secs, calls) in nets[0].1.context.profiler.report {
                print(String(format: "  %-18@ %8.2f ms  (%d calls per round)", what as NSString, secs / Double(rounds) * 1000, calls / rounds))
            }
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

    func validate() throws {
        if size < 1 || size > 16384 { throw ValidationError("--size must be in 1...16384, got \(size)") }
        if rounds < 1 { throw ValidationError("--rounds must be at least 1, got \(rounds)") }
    }

    func run() throws {
        runtime.apply()
        let (seconds, flops) = MachineRate.sgemmSeconds(size: size, rounds: rounds, seed: runtime.seed)
        let med = median(seconds)
        print(String(format: "sgemm %dx%dx%d (OpenBLAS), %d threads: median %.2f ms, %.1f GFLOP/s (best %.1f) over %d products",
                     size, size, size, Threads.current, med * 1000, flops / med / 1e9, flops / seconds.min()! / 1e9, rounds))
    }
}
