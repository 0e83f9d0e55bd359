import Data
import Foundation
import Models
import Tensor

/// What a training is set up with, before any network exists: its configuration, the data,
/// the split of the training images (sub-training / validation) and the per-channel
/// normalisation measured on the sub-training images. A plain value: search, scoring and
/// evaluation take it with a network instead of a trainer.
public struct TrainingSetup: Sendable {
    public let config: RunConfig
    public let source: DataSource
    public let split: Split
    public let mean: [Float], std: [Float]

    /// Loads `config.data` (or takes `source`), splits and measures it, and checks that the
    /// model fits the images and this machine's memory.
    public init(config: RunConfig, source: DataSource? = nil) throws {
        self.config = config
        let src = try source ?? DataSource.load(config.data, seed: config.seed)
        self.source = src
        split = try Split(labels: src.train.labels, classes: src.train.classes, perClass: config.valPerClass, seed: config.seed)
        (mean, std) = src.train.channelStatistics(split.train)
        let spec = try ModelSpec(config.model)
        try SystemMemory.require(spec.trainingMemoryLowerBound(batch: config.batch, classes: src.train.classes),
                                 for: "training \(spec) at batch \(config.batch) with \(src.train.classes) classes", fix: "lower `batch` or use a smaller `model`")
        guard src.train.height == spec.imageSize || spec.isCIFAR else {
            throw LTHError("model \(spec) expects \(spec.imageSize)x\(spec.imageSize) images, data has \(src.train.height)x\(src.train.width)")
        }
        guard src.train.channels == 3 else {
            throw LTHError("ResNets here take 3-channel images; data '\(config.data)' has \(src.train.channels) channel(s)")
        }
    }

    /// A fresh network of the configuration's model for the data's classes (initialised from
    /// the seed), with `attach` applied; and what it attached.
    public func network(attach: AttachHook? = nil) throws -> (net: ResNet, attached: AttachedSAM?) {
        let net = ResNet(try ModelSpec(config.model), classes: source.train.classes, seed: config.seed)
        let attached = try attach?(config, net) ?? nil
        net.passes.checkFinite = config.checkFinite ?? true
        return (net, attached)
    }

    /// `indices` of the training images in batches of `batch`, normalised as in training, not
    /// augmented, in order.
    public func batches(_ indices: [Int], batch: Int) -> [(images: Tensor, labels: [Int32])] {
        let loader = BatchLoader(dataset: source.train, indices: indices, batchSize: batch, shuffle: false,
                                 augmentation: .none, mean: mean, std: std, seed: 0, epoch: 0)
        var out: [(Tensor, [Int32])] = []
        while let b = loader.next() { out.append((b.images.clone(), b.labels)) }
        return out
    }

    /// `count` mini-batches (the configuration's batch size) of the sub-training split for BN
    /// recalibration -- at most as many as the split holds: normalised as in training, not
    /// augmented, in an order fixed by the seed.
    public func calibrationBatches(count: Int) throws -> [Tensor] {
        guard count > 0 else { return [] }
        guard split.train.count / config.batch >= 1 else {
            throw LTHError("`bnRecalibrate` \(count) needs a mini-batch of \(config.batch) images; the training split holds \(split.train.count): lower `batch` or use `bnRecalibrate` 0")
        }
        let loader = BatchLoader(dataset: source.train, indices: split.train, batchSize: config.batch, shuffle: true,
                                 augmentation: .none, mean: mean, std: std, seed: config.seed ^ 0xBA7C_4EA1, epoch: 0, dropLast: true)
        var out: [Tensor] = []
        while out.count < count, let b = loader.next() { out.append(b.images.clone()) }
        loader.cancel()
        return out
    }
}
