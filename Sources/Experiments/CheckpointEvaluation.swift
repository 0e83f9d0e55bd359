import Checkpoint
import Data
import Foundation
import Models
import Tensor
import Training

/// Evaluating a saved checkpoint on a data split, with the SAM and normalisation it was
/// trained with.
public enum CheckpointEvaluation {
    /// Which images to evaluate on.
    public enum Subset: String, CaseIterable, Sendable {
        case test, val, train
    }

    /// The outcome of `evaluate`.
    public struct Outcome {
        public let model: String
        public let dataName: String
        public let evaluation: Evaluation
        /// [count, classes] logits when asked for.
        public let logits: Tensor?

        /// "resnet20 on synthetic test (1000 images): accuracy 91.20%, loss 0.3012".
        public func line(split: Subset) -> String {
            String(format: "%@ on %@ %@ (%d images): accuracy %.2f%%, loss %.4f", model, dataName, split.rawValue, evaluation.count, evaluation.accuracy, evaluation.loss)
        }

        /// Writes the logits as a float32 [count, classes] .npy file (NumPy's format).
        public func writeLogits(to path: String) throws {
            guard let logits else { throw LTHError("no logits kept; evaluate with keepLogits") }
            try NpyArray.write(path: path, descr: "<f4", shape: logits.shape, bytes: Foundation.Data(buffer: logits.buffer))
        }
    }

    /// Loads `path` (a checkpoint file or a run directory), rebuilds its network with its SAM
    /// (and, for a supernet, the sub-network `scheme`), and evaluates it on `split` of `data`
    /// (default: the data it was trained on).
    public static func evaluate(_ path: String, data: String? = nil, split: Subset = .test, batch: Int = 256, scheme: String? = nil,
                                keepLogits: Bool = false) throws -> Outcome {
        try SettingCheck.require("batch", batch, atLeast: 1)
        var path = path
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            path = URL(fileURLWithPath: path).child("checkpoint.safetensors").path
        }
        let strings = try ModelCheckpoint.metadata(path)
        guard strings["config"] != nil, let model = strings[ModelCheckpoint.modelKey] else {
            throw LTHError("'\(path)' is not an lth4sa checkpoint (no run configuration in its metadata)")
        }
        let meta = try TrainingCheckpointMetadata(strings: strings, file: path)
        let config = meta.config
        let source = try DataSource.load(data ?? config.data, seed: config.seed)
        let net = ResNet(try ModelSpec(model), classes: source.train.classes, seed: 0)
        let attached = try SAMAttachment.attach(config, to: net)
        if let want = meta.sam, attached?.id != want.id {
            throw LTHError("'\(path)' was trained with SAM \(want.id), but \(config.sam ?? "no plugin") provides \(attached?.id ?? "none")")
        }
        if let saved = meta.sam?.options, let now = attached?.options, saved != now {
            throw LTHError("'\(path)' was trained with \(meta.sam?.id ?? "") options \(saved), the plugin now resolves \(now)")
        }
        try ModelCheckpoint.load(net, from: path)
        if let text = scheme {
            guard config.keepProb != nil else {
                throw LTHError("`scheme` selects a sub-network of a supernet; '\(path)' is an ordinary network (its scheme is \(meta.sam?.scheme.description ?? "none"))")
            }
            try Supernet(net).apply(try Scheme(parsing: text, stageSizes: net.spec.blocksPerStage))
        }
        let (mean, std) = (meta.mean, meta.std)
        guard mean.count == source.train.channels, std.count == source.train.channels else {
            throw LTHError("'\(path)': normalisation for \(mean.count) channels in metadata, data has \(source.train.channels)")
        }
        let (dataset, indices): (ImageDataset, [Int])
        switch split {
        case .test: (dataset, indices) = (source.test, Array(0..<source.test.count))
        case .val, .train:
            let s = try Split(labels: source.train.labels, classes: source.train.classes, perClass: config.valPerClass, seed: config.seed)
            (dataset, indices) = (source.train, split == .val ? s.validation : s.train)
        }
        let logits = keepLogits ? Tensor([indices.count, net.classes]) : nil
        let evaluation = try Trainer.evaluate(net, dataset, indices: indices, mean: mean, std: std, batch: batch, logits: logits?.data, folded: true)
        return Outcome(model: model, dataName: source.name, evaluation: evaluation, logits: logits)
    }
}
