import ArgumentParser
import Data
import Experiments
import Foundation
import Tensor

/// `lth4sa eval`: accuracy of a checkpoint on a data split, optionally saving the logits.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Evaluate a checkpoint on the test, validation or training split.")

    @Option(help: "A checkpoint.safetensors written by `lth4sa train` (or its run directory).") var checkpoint: String
    @Option(help: "Data (default: the data the checkpoint was trained on): \(DataSource.usage).") var data: String?
    @Option(help: "test | val | train.") var split: CheckpointEvaluation.Subset = .test
    @Option(help: "Batch size.") var batch = 256
    @Option(help: "Write the logits as a float32 [N, classes] .npy file.") var saveLogits: String?
    @Option(help: "For a supernet checkpoint: the sub-network to evaluate (bits per block; default all 1).") var scheme: String?
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch)") }
    }

    func run() throws {
        runtime.apply()
        let outcome = try CheckpointEvaluation.evaluate(checkpoint, data: data, split: split, batch: batch, scheme: scheme, keepLogits: saveLogits != nil)
        if let file = saveLogits, let logits = outcome.logits {
            try NpyArray.write(path: file, descr: "<f4", shape: logits.shape, bytes: Foundation.Data(buffer: logits.buffer))
        }
        let r = outcome.evaluation
        print(String(format: "%@ on %@ %@ (%d images): accuracy %.2f%%, loss %.4f", outcome.model, outcome.dataName, split.rawValue, r.count, r.accuracy, r.loss)
              + (saveLogits.map { ", logits in \($0)" } ?? ""))
    }
}
