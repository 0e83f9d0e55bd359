import ArgumentParser
import Foundation
import Models
import NN
import Tensor

/// `lth4sa bench ...`: performance figures, printed; never part of the test suite.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure training throughput.", subcommands: [BenchTrain.self])
}

/// `lth4sa bench train`: median training images/s (forward + loss + backward + SGD step).
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Median training images/s and peak memory.")
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "Batch size.") var batch: Int = 128
    @Option(help: "Classes of the classifier.") var classes: Int = 100
    @Option(help: "Warm-up steps (not timed).") var warmup: Int = 3
    @Option(help: "Timed steps.") var steps: Int = 10
    @Flag(help: "Print time per operation kind.") var profile = false

    func validate() throws {
        if batch < 1 { throw ValidationError("--batch must be at least 1, got \(batch)") }
        if steps < 1 { throw ValidationError("--steps must be at least 1, got \(steps)") }
    }

    func run() throws {
        runtime.apply()
        let spec = try ModelSpec(modelOptions.model)
        let net = ResNet(spec, classes: classes, seed: runtime.seed)
        let side = spec.imageSize
        var rng = RNG(seed: runtime.seed)
        let x = Tensor([batch, side, side, 3])
        rng.fillNormal(x, std: 1)
        let labels = (0..<batch).map { _ in Int32(rng.int(classes)) }
        let sgd = SGD(net.namedParameters(), lr: 0.01, momentum: 0.9, weightDecay: 1e-4)
        let loss = SoftmaxCrossEntropy()
        func step() -> Double {
            net.zeroGrad()
            let out = loss(net.forward(x, training: true), labels)
            net.backward(out.gradient)
            sgd.step()
            return out.loss
        }
        print("bench train: \(spec) (\(net.parameterCount) parameters), batch \(batch), \(side)x\(side), \(Threads.current) threads")
        for _ in 0..<warmup { _ = step() }
        var times: [Double] = []
        Profiler.shared.enabled = profile
        for i in 0..<steps {
            let start = Date()
            let l = step()
            times.append(Date().timeIntervalSince(start))
            status("\rstep \(i + 1)/\(steps)  loss \(String(format: "%.3f", l))  \(String(format: "%.1f", Double(batch) / times.last!)) img/s   ")
        }
        status("\n")
        let med = median(times)
        print(String(format: "median step %.1f ms, %.1f images/s (min %.1f ms, max %.1f ms over %d steps)",
                     med * 1000, Double(batch) / med, times.min()! * 1000, times.max()! * 1000, steps))
        print(String(format: "peak RSS %.2f GB", Double(peakRSS()) / 1e9))
        if profile {
            let total = times.reduce(0, +)
            print("profile (share of timed steps):")
            for (what, secs, calls) in Profiler.shared.report {
                print(String(format: "  %-18@ %7.1f ms/step  %5.1f%%  (%d calls/step)", what as NSString, secs / Double(steps) * 1000, secs / total * 100, calls / steps))
            }
        }
    }
}
