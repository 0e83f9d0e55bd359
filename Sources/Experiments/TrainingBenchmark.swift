import Cluster
import Foundation
import Models
import NN
import Tensor
import Training

/// Training throughput of one network on a random batch: forward + loss + backward + SGD step.
/// Data parallel over the ranks of `group`: each takes its share of the batch and the
/// gradients are summed (the step's communication is timed on its own).
public final class TrainingBenchmark {
    public let net: ResNet
    /// The global batch (over all ranks).
    public let batch: Int
    private let dataParallel: DataParallel
    private let images: Tensor
    private let labels: [Int32]
    private let optimizer: SGD
    private let loss = SoftmaxCrossEntropy()
    /// Supernet training: a random scheme (each block connected with probability 0.5) per step.
    private let supernet: Supernet?
    private var schemeRNG: RNG

    /// A `model` network with `classes` outputs (and the SAM of `config`, if any) on a random
    /// batch drawn from `seed`. `supernet`: the SAM at every block, a random sub-network per
    /// step (what supernet training runs).
    public init(model: String, classes: Int, batch: Int, config: RunConfig, seed: UInt64, supernet: Bool = false,
                group: ProcessGroup = SingleProcess()) throws {
        let spec = try ModelSpec(model)
        guard batch >= 1, classes >= 2 else { throw LTHError("a training benchmark needs a batch >= 1 and >= 2 classes, got \(batch) and \(classes)") }
        try SystemMemory.require(spec.trainingMemoryLowerBound(batch: batch, classes: classes),
                                 for: "training \(spec) at batch \(batch) with \(classes) classes", fix: "lower `batch` or `classes`")
        net = ResNet(spec, classes: classes, seed: seed)
        _ = try SAMAttachment.attach(config, to: net)
        net.passes.checkFinite = config.checkFinite ?? true
        if supernet {
            guard config.sam != nil, config.scheme == nil else { throw LTHError("a supernet benchmark needs a SAM at every block (`sam`, no `scheme`)") }
            self.supernet = try Supernet(net)
        } else {
            self.supernet = nil
        }
        schemeRNG = RNG(seed: seed &+ 0x5C4E3E)
        self.batch = batch
        dataParallel = DataParallel(group: group)
        let local = group.share(of: batch).count
        guard local >= 1 else { throw LTHError("`batch` \(batch) leaves no image for some of the \(group.size) ranks") }
        var rng = RNG(seed: seed &+ UInt64(group.rank))
        images = Tensor([local, spec.imageSize, spec.imageSize, 3])
        rng.fillNormal(images, std: 1)
        labels = (0..<local).map { _ in Int32(rng.int(classes)) }
        optimizer = SGD(net.namedParameters(), lr: 0.01, momentum: 0.9, weightDecay: 1e-4)
    }

    /// One timed training step: seconds in all, of which `communication` waiting for the
    /// gradient sums after backward (started during backward; 0 when alone), and this rank's loss.
    public func step() throws -> (seconds: Double, communication: Double, loss: Double) {
        if let supernet { supernet.apply(supernet.sample(keepProbability: 0.5, rng: &schemeRNG)) }
        let start = DispatchTime.now().uptimeNanoseconds
        net.zeroGrad()
        let out = loss(try net.forward(images, training: true), labels)
        dataParallel.overlapSum(withNextBackwardOf: net)
        try net.backward(out.gradient)
        let exchange = DispatchTime.now().uptimeNanoseconds
        try dataParallel.finishOverlappedSum(of: net)
        let exchanged = DispatchTime.now().uptimeNanoseconds
        let checks = net.passes.checkFinite  // timed as training runs them (on by default)
        if checks, let bad = net.context.profiler.measure("finite check", { net.firstNonFiniteGradient() }) { throw LTHError("the benchmark's gradient of \(bad.name) holds \(bad.value)") }
        optimizer.step()
        if checks, let bad = net.context.profiler.measure("finite check", { net.firstNonFiniteState() }) { throw LTHError("the benchmark's \(bad.name) holds \(bad.value) after the step") }
        let end = DispatchTime.now().uptimeNanoseconds
        return (Double(end - start) / 1e9, Double(exchanged - exchange) / 1e9, out.loss)
    }
}

extension TrainingBenchmark {
    /// Step times (seconds) of several benchmarks in one process, every round each benchmark
    /// once in a shuffled order, so that the machine's drift hits them alike (what
    /// `lth4sa bench sam-training` compares: plain, Full-SA and supernet training). Each first
    /// takes its `warmup` untimed steps. `onRound` is told the round finished (1-based) and
    /// the total. Result: [benchmark][round].
    public static func interleavedRounds(_ benches: [(bench: TrainingBenchmark, warmup: Int)], rounds: Int, seed: UInt64,
                                         onRound: ((Int, Int) -> Void)? = nil) throws -> [[Double]] {
        for (bench, warmup) in benches { for _ in 0..<warmup { _ = try bench.step() } }
        var rng = RNG(seed: seed)
        return try Interleaving.rounds(benches.count, warmup: 0, rounds: rounds, rng: &rng, onRound: onRound) { try benches[$0].bench.step().seconds }
    }
}
