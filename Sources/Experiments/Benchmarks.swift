import Cluster
import Foundation
import Models
import NN
import PluginHost
import Tensor
import Training

/// The benchmarks of `lth4sa bench`: each runs, reports its live status through `progress`
/// and returns its figures as report lines (the program prints them).
public enum Benchmarks {
    /// What `bench train` measures: median training images/s of `model` with `config`'s SAM
    /// (`supernet`: a random sub-network per step), GFLOP/s, the gradient exchange (several
    /// ranks), peak RSS and, with `profile`, time per operation kind. The first line describes
    /// the setting.
    public static func training(model: String, config: RunConfig, classes: Int, batch: Int, supernet: Bool, warmup: Int, steps: Int, seed: UInt64,
                                profile: Bool, kernels: [BackwardKernels] = [], group: ProcessGroup, progress: ProgressHandler) throws -> [String] {
        try SettingCheck.require("steps", steps, atLeast: 1)
        let kernels = kernels.reduce(into: [BackwardKernels]()) { if !$0.contains($1) { $0.append($1) } }
        if kernels.count > 1 {
            guard !profile else { throw LTHError("`profile` times one kind of backward at a time; give `backward` once") }
            return try trainingKernels(kernels, model: model, config: config, classes: classes, batch: batch, supernet: supernet, warmup: warmup,
                                       rounds: steps, seed: seed, group: group, progress: progress)
        }
        let bench = try TrainingBenchmark(model: model, classes: classes, batch: batch, config: config, seed: seed, supernet: supernet, group: group)
        bench.net.backwardKernels = kernels.first ?? .fused
        let side = bench.net.spec.imageSize
        let samText = config.sam.map { " + \($0) (\(config.attach), scheme \(supernet ? "random per step (supernet)" : config.scheme?.description ?? "all"))" } ?? ""
        let ranks = group.size > 1 ? ", \(group.size) ranks (data parallel)" : ""
        progress(.line("bench train: \(bench.net.spec)\(samText) (\(bench.net.parameterCount) parameters), batch \(batch), \(side)x\(side), \(Threads.current) threads\(ranks), \(bench.net.backwardKernels.rawValue) backward"))
        for _ in 0..<warmup { _ = try bench.step() }
        var times: [Double] = [], exchanges: [Double] = []
        let profiler = bench.net.context.profiler
        profiler.enabled = profile
        for i in 0..<steps {
            let (seconds, communication, loss) = try bench.step()
            times.append(seconds)
            exchanges.append(communication)
            progress(.status(String(format: "step %d/%d  loss %.3f  %.1f img/s", i + 1, steps, loss, Double(bench.batch) / seconds)))
        }
        let med = median(times), images = Double(bench.batch)
        var lines = [String(format: "median step %.1f ms, %.1f images/s (min %.1f ms, max %.1f ms over %d steps)",
                            med * 1000, images / med, times.min()! * 1000, times.max()! * 1000, steps)]
        let flops = Double(bench.net.trainingFLOPs)
        lines.append(String(format: "%.1f GFLOP/s in this process (%.3f GFLOP per image: convolutions and classifier, direct count; "
                            + "`lth4sa bench gemm`: what the cores reach at best)", flops * images / med / 1e9, flops / 1e9))
        let memory = try group.sum([Double(peakResidentBytes())])[0]
        if group.size > 1 {
            let volume = Double(bench.net.parameterCount * MemoryLayout<Float>.stride)
            lines.append(String(format: "gradient allreduce (started during backward): median %.2f ms waited per step (%.1f%% of the step), %.2f MB of gradients per rank",
                                median(exchanges) * 1000, median(exchanges) / med * 100, volume / 1e6))
        }
        lines.append(String(format: "peak RSS %.2f GB", memory / 1e9) + (group.size > 1 ? " (sum over the \(group.size) ranks)" : ""))
        if profile {
            let total = times.reduce(0, +)
            lines.append("profile (share of timed steps):")
            for (what, secs, calls) in profiler.report {
                lines.append(String(format: "  %-18@ %7.1f ms/step  %5.1f%%  (%d calls/step)", what as NSString, secs / Double(steps) * 1000, secs / total * 100, calls / steps))
            }
        }
        return lines
    }

    /// `bench train` with several backward kernels: one network per kind (same seed, same
    /// batch), one step of each per round in shuffled order, medians and each one's ratio to the
    /// first kind's median step.
    static func trainingKernels(_ kernels: [BackwardKernels], model: String, config: RunConfig, classes: Int, batch: Int, supernet: Bool,
                                warmup: Int, rounds: Int, seed: UInt64, group: ProcessGroup, progress: ProgressHandler) throws -> [String] {
        let benches = try kernels.map { kind in
            let bench = try TrainingBenchmark(model: model, classes: classes, batch: batch, config: config, seed: seed, supernet: supernet, group: group)
            bench.net.backwardKernels = kind
            return bench
        }
        progress(.line("bench train: \(benches[0].net.spec), batch \(batch), \(Threads.current) threads; backward \(kernels.map(\.rawValue).joined(separator: " vs ")), one step of each per round, shuffled"))
        let times = try withoutActuallyEscaping(progress) { progress in
            try TrainingBenchmark.interleavedRounds(benches.map { ($0, warmup) }, rounds: rounds, seed: seed) { round, total in
                progress(.status("round \(round)/\(total)"))
            }
        }
        let first = median(times[0])
        return zip(kernels, times).map { kind, t in
            let m = median(t)
            return String(format: "%@: median step %.1f ms, %.1f images/s (min %.1f, max %.1f ms over %d rounds); %.3fx the %@ step's speed",
                          kind.rawValue as NSString, m * 1000, Double(batch) / m, t.min()! * 1000, t.max()! * 1000, rounds, first / m, kernels[0].rawValue as NSString)
        }
    }

    /// What `bench sam-training` measures: the plain network, Full-SA and supernet training
    /// of `config`'s SAM, one step of each per round in shuffled order; medians and the
    /// differences with their 95% bootstrap interval over rounds (resampled in pairs).
    public static func samTraining(model: String, config: RunConfig, classes: Int, batch: Int, warmup: Int, rounds: Int, seed: UInt64,
                                   progress: @escaping ProgressHandler) throws -> [String] {
        guard config.sam != nil else { throw LTHError("sam-training needs `sam` (the SAM whose cost it measures)") }
        guard config.scheme == nil else { throw LTHError("sam-training compares the SAM at every block: drop `scheme`") }
        try SettingCheck.require("rounds", rounds, atLeast: 1)
        var plainConfig = config
        plainConfig.sam = nil
        // the three networks train side by side: each one's check alone would pass
        let spec = try ModelSpec(model)
        try SystemMemory.require(3 * spec.trainingMemoryLowerBound(batch: batch, classes: classes),
                                 for: "training three \(spec) networks side by side at batch \(batch)", fix: "lower `batch` or use a smaller `model`")
        let make = { (config: RunConfig, supernet: Bool) in
            try TrainingBenchmark(model: model, classes: classes, batch: batch, config: config, seed: seed, supernet: supernet)
        }
        let kinds: [(name: String, bench: TrainingBenchmark, warmup: Int)] = [
            ("plain", try make(plainConfig, false), warmup), ("Full-SA", try make(config, false), warmup),
            ("supernet", try make(config, true), max(warmup, 8))]
        progress(.line("bench sam-training: \(spec) + \(config.sam ?? "-") (\(config.attach)), batch \(batch), \(Threads.current) threads, "
                       + "\(rounds) rounds of one step each in shuffled order"))
        let times = try TrainingBenchmark.interleavedRounds(kinds.map { ($0.bench, $0.warmup) }, rounds: rounds, seed: seed) { r, total in
            progress(.status("round \(r)/\(total)"))
        }
        var lines = kinds.indices.map { k in
            String(format: "%-10@ median step %7.1f ms, %6.1f images/s", kinds[k].name as NSString, median(times[k]) * 1000, Double(batch) / median(times[k]))
        }
        for (a, b) in [(1, 0), (2, 0), (2, 1)] {
            let d = InferenceTiming.increment(times[a], over: times[b])
            lines.append(String(format: "%@ vs %@: %+.1f%% time per step [95%% CI %+.1f%%, %+.1f%%]",
                                kinds[a].name as NSString, kinds[b].name as NSString, d.value, d.low, d.high))
        }
        return lines
    }

    /// What `bench infer` measures: forward time of the original network, Full-SA, Full-Share
    /// and a half-connected scheme, interleaved in shuffled order each round (deployed networks
    /// unless `unfolded`), medians, dT and the original's GFLOP/s; with `profile`, time per
    /// operation kind over the timed rounds (the first mode's networks).
    /// `modes`: each network in each mode (`.lanes`: `InferenceLanes`, one lane per thread),
    /// all interleaved in the same rounds, so that the modes compare within one run; dT is
    /// over the original network of the same mode.
    public static func inference(model: String, plugin: SAMPlugin, classes: Int, batch: Int, warmup: Int, rounds: Int, seed: UInt64,
                                 unfolded: Bool, profile: Bool, modes: [Parallelism] = [.operators],
                                 progress: @escaping ProgressHandler) throws -> [String] {
        try SettingCheck.require("batch", batch, atLeast: 1)
        try SettingCheck.require("rounds", rounds, atLeast: 1)
        let modes = modes.isEmpty ? [.operators] : modes.reduce(into: [Parallelism]()) { if !$0.contains($1) { $0.append($1) } }
        if unfolded && modes.contains(.lanes) {
            throw LTHError("`parallelism` lanes times the deployed networks only (eval-mode batch norms cannot run in lanes); drop `unfolded` or use operators")
        }
        let spec = try ModelSpec(model)
        var sets: [(mode: Parallelism, lanes: Int, networks: [(label: String, lanes: InferenceLanes)])] = []
        for mode in modes {
            let lanes = mode.lanes(for: plugin)
            if mode == .lanes && lanes == 1 && Threads.current > 1 {
                progress(.line("note: \(plugin.id) does not declare LTH4SA_PLUGIN_CONCURRENT_INSTANCES; one lane (operators over \(Threads.current) threads)"))
            }
            sets.append((mode, lanes, try InferenceTiming.benchmarkLanes(spec, plugin: plugin, classes: classes, seed: seed, lanes: lanes)))
        }
        let modeText = sets.map { $0.lanes > 1 ? "\($0.mode.rawValue) (\($0.lanes) lanes)" : $0.mode.rawValue }.joined(separator: " and ")
        progress(.line("bench infer: \(spec) + \(plugin.id) (\(plugin.optionsText)), batch \(batch), \(Threads.current) threads, \(modeText), "
                       + "\(rounds) interleaved rounds, "
                       + (unfolded ? "eval-mode forward (BN passes separate)" : "deployed networks (BN folded into the convolutions)")))
        let profiled = sets[0].networks[0].lanes.replicas[0].context  // lane 0 of the first mode: one context for its networks
        let all = sets.flatMap { $0.networks.map(\.lanes) }
        let medians = try InferenceTiming.interleavedMedians(all, batch: batch, warmup: warmup, rounds: rounds, seed: seed, folded: !unfolded) { r, n in
            progress(.status("round \(r)/\(n)"))
            profiled.profiler.enabled = profile && r >= warmup  // the timed rounds only
        }
        var lines = ["network".padded(to: 36) + "params".padded(to: 11) + "median ms".padded(to: 11) + "dT"]
        var offset = 0
        for set in sets {
            let suffix = sets.count > 1 ? " (\(set.mode.rawValue))" : ""
            for (i, (label, lanes)) in set.networks.enumerated() {
                let ms = medians[offset + i], original = medians[offset]
                lines.append((label + suffix).padded(to: 36) + String(lanes.replicas[0].parameterCount).padded(to: 11) + String(format: "%.2f", ms).padded(to: 11)
                             + (i == 0 ? "-" : String(format: "%+.1f%%", InferenceTiming.incrementPercent(ms, original: original))))
            }
            let flops = 2 * Double(set.networks[0].lanes.replicas[0].forwardMultiplyAdds)
            lines.append(String(format: "original\(suffix): %.1f GFLOP/s (%.3f GFLOP per image: convolutions and classifier, direct count; "
                                + "`lth4sa bench gemm`: what the cores reach at best)", flops * Double(batch) / (medians[offset] / 1000) / 1e9, flops / 1e9))
            offset += set.networks.count
        }
        if profile {
            lines.append("profile (ms per round, the \(sets[0].networks.count) networks of \(sets[0].mode.rawValue)):")
            for (what, secs, calls) in profiled.profiler.report {
                lines.append(String(format: "  %-18@ %8.2f ms  (%d calls per round)", what as NSString, secs / Double(rounds) * 1000, calls / rounds))
            }
        }
        return lines
    }
}
