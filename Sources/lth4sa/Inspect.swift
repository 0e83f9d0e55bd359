import ArgumentParser
import Data
import Experiments

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

    func run() throws {
        try runtime.apply()
        let outcome = try CheckpointEvaluation.evaluate(checkpoint, data: data, split: split, batch: batch, scheme: scheme, keepLogits: saveLogits != nil)
        if let file = saveLogits { try outcome.writeLogits(to: file) }
        print(outcome.line(split: split) + (saveLogits.map { ", logits in \($0)" } ?? ""))
    }
}

/// `lth4sa info`: layer table and parameter count of a model.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a model's layer table and parameter count.")
    @OptionGroup var modelOptions: ModelOptions
    @Option(parsing: .unconditional, help: "Classes of the classifier.") var classes: Int = 10
    @OptionGroup var samOptions: SAMOptions

    func run() throws {
        print(try ModelReport.lines(model: modelOptions.model, classes: classes, config: samOptions.config).joined(separator: "\n"))
    }
}
