import ArgumentParser
import Checkpoint
import Data
import Foundation
import Models
import Tensor
import Training

/// `lth4sa eval`: accuracy of a checkpoint on a data split, optionally saving the logits.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Evaluate a checkpoint on the test, validation or training split.")

    @Option(help: "A checkpoint.safetensors written by `lth4sa train` (or its run directory).") var checkpoint: String
    @Option(help: "Data (default: the data the checkpoint was trained on): \(DataSource.usage).") var data: String?
    @Option(help: "test | val | train.") var split = "test"
    @Option(help: "Batch size.") var batch = 256
    @Option(help: "Write the logits as a float32 [N, classes] .npy file.") var saveLogits: String?
    @Option(help: "For a supernet checkpoint: the sub-network to evaluate (bits per block; default all 1).") var scheme: String?
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        guard ["test", "val", "train"].contains(split) else { throw ValidationError("--split must be test, val or train, got '\(split)'") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch)") }
    }

    func run() throws {
        runtime.apply()
        var path = checkpoint
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            path = URL(fileURLWithPath: path).appendingPathComponent("checkpoint.safetensors").path
        }
        let meta = try ModelCheckpoint.metadata(path)
        guard let configText = meta["config"], let model = meta[ModelCheckpoint.modelKey] else {
            throw LTHError("'\(path)' is not an lth4sa checkpoint (no run configuration in its metadata)")
        }
        let config = try RunConfig.decode(configText)
        let source = try DataSource.load(data ?? config.data, seed: config.seed)
        let net = ResNet(try ModelSpec(model), classes: source.train.classes, seed: 0)
        let attached = try SAMOptions.hook(config, net)
        if let want = meta["sam.id"], attached["sam.id"] != want {
            throw LTHError("'\(path)' was trained with SAM \(want), but \(config.sam ?? "no plugin") provides \(attached["sam.id"] ?? "none")")
        }
        if let opts = meta["sam.options"], let now = attached["sam.options"], opts != now {
            throw LTHError("'\(path)' was trained with \(meta["sam.id"] ?? "") options \(opts), the plugin now resolves \(now)")
        }
        try ModelCheckpoint.load(net, from: path)
        if let text = scheme {
            guard config.keepProb != nil else {
                throw LTHError("--scheme selects a sub-network of a supernet; '\(path)' is an ordinary network (its scheme is \(meta["scheme"] ?? "none"))")
            }
            try Supernet(net).apply(try Scheme(parsing: text, stageSizes: net.spec.blocksPerStage))
        }
        let mean = (meta["normalization.mean"] ?? "").split(separator: ",").compactMap { Float($0) }
        let std = (meta["normalization.std"] ?? "").split(separator: ",").compactMap { Float($0) }
        guard mean.count == source.train.channels, std.count == source.train.channels else {
            throw LTHError("'\(path)': normalisation for \(mean.count) channels in metadata, data has \(source.train.channels)")
        }
        let (dataset, indices): (ImageDataset, [Int])
        switch split {
        case "test": (dataset, indices) = (source.test, Array(0..<source.test.count))
        default:
            let s = try Split(labels: source.train.labels, classes: source.train.classes, perClass: config.valPerClass, seed: config.seed)
            (dataset, indices) = (source.train, split == "val" ? s.validation : s.train)
        }
        let logits = saveLogits.map { _ in Tensor([indices.count, net.classes]) }
        let result = Trainer.evaluate(net, dataset, indices: indices, mean: mean, std: std, batch: batch, logits: logits?.data)
        if let file = saveLogits, let logits {
            try NpyArray.write(path: file, descr: "<f4", shape: logits.shape, bytes: Data(buffer: logits.buffer))
        }
        print(String(format: "%@ on %@ %@ (%d images): accuracy %.2f%%, loss %.4f", model, source.name, split, result.count, result.accuracy, result.loss)
              + (saveLogits.map { ", logits in \($0)" } ?? ""))
    }
}
