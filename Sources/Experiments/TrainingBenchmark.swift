import Foundation
import Models
import NN
import Tensor
import Training

/// Training throughput of one network on a random batch: forward + loss + backward + SGD step.
public final class TrainingBenchmark {
    public let net: ResNet
    public let batch: Int
    private let images: Tensor
    private let labels: [Int32]
    private let optimizer: SGD
    private let loss = SoftmaxCrossEntropy()

    /// A `model` network with `classes` outputs (and the SAM of `config`, if any) on a random
    /// batch drawn from `seed`.
    public init(model: String, classes: Int, batch: Int, config: RunConfig, seed: UInt64) throws {
        let spec = try ModelSpec(model)
        guard batch >= 1, classes >= 2 else { throw LTHError("a training benchmark needs a batch >= 1 and >= 2 classes, got \(batch) and \(classes)") }
        try SystemMemory.require(spec.trainingMemoryLowerBound(batch: batch, classes: classes),
                                 for: "training \(spec) at batch \(batch) with \(classes) classes", fix: "lower --batch or --classes")
        net = ResNet(spec, classes: classes, seed: seed)
        _ = try SAMAttachment.attach(config, to: net)
        self.batch = batch
        var rng = RNG(seed: seed)
        images = Tensor([batch, spec.imageSize, spec.imageSize, 3])
        rng.fillNormal(images, std: 1)
        labels = (0..<batch).map { _ in Int32(rng.int(classes)) }
        optimizer = SGD(net.namedParameters(), lr: 0.01, momentum: 0.9, weightDecay: 1e-4)
    }

    /// One timed training step: (seconds, loss).
    public func step() throws -> (seconds: Double, loss: Double) {
        let start = DispatchTime.now().uptimeNanoseconds
        net.zeroGrad()
        let out = loss(try net.forward(images, training: true), labels)
        try net.backward(out.gradient)
        optimizer.step()
        return (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, out.loss)
    }
}
