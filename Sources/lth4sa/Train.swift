import ArgumentParser
import Data
import Foundation
import Tensor
import Training

/// The options of a training run (shared by `train` and `supernet train`).
struct TrainingOptions: ParsableArguments {
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var samOptions: SAMOptions
    @Option(help: "Data: \(DataSource.usage) (synthetic:N for N training images).") var data = "synthetic"
    @Option(help: "Epochs.") var epochs = 5
    @Option(help: "Batch size.") var batch = 128
    @Option(help: "Base learning rate.") var lr: Float = 0.1
    @Option(help: "cosine | constant | step:M1,M2,... (x0.1 at each milestone epoch).") var schedule = "cosine"
    @Option(help: "Linear learning-rate warm-up, in epochs.") var warmupEpochs: Double = 0
    @Option(help: "sgd | adam.") var optimizer = "sgd"
    @Option(help: "SGD momentum.") var momentum: Float = 0.9
    @Flag(help: "Nesterov momentum.") var nesterov = false
    @Option(help: "L2 weight decay.") var weightDecay: Float = 5e-4
    @Option(help: "Validation images per class held out of training (stratified, fixed by --seed).") var valPerClass = 100
    @Option(help: "Random-crop padding (0 = no crop).") var cropPadding = 4
    @Flag(help: "No horizontal flips.") var noFlip = false
    @Option(name: .shortAndLong, help: "Run directory (default: runs/<model>-<data>-s<seed>).") var output: String?
    @Flag(help: "Continue the run in --output from its last checkpoint.") var resume = false

    var config: RunConfig {
        var c = RunConfig()
        c.model = modelOptions.model
        c.data = data
        c.epochs = epochs
        c.batch = batch
        c.lr = lr
        c.schedule = schedule
        c.warmupEpochs = warmupEpochs
        c.optimizer = optimizer
        c.momentum = momentum
        c.nesterov = nesterov
        c.weightDecay = weightDecay
        c.seed = runtime.seed
        c.valPerClass = valPerClass
        c.cropPadding = cropPadding
        c.flip = !noFlip
        samOptions.apply(to: &c)
        return c
    }

    func directory(_ prefix: String = "") -> String {
        output ?? "runs/\(prefix)\(modelOptions.model)-\(data.replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: ":", with: "-"))-s\(runtime.seed)"
    }

    func validate() throws {
        do { try config.validate() } catch let e as LTHError { throw ValidationError(e.message) }
    }

    /// Trains with `trainer` (already configured), then evaluates and writes summary.json.
    func trainAndSummarize(_ trainer: Trainer, directory dir: String, command: String) throws {
        installStopHandler()
        let c = trainer.config
        let samText = trainer.extraMetadata["sam.id"].map { " with \($0) (\(trainer.extraMetadata["sam.options"] ?? ""), \(c.attach), scheme \(trainer.extraMetadata["scheme"] ?? ""))" } ?? ""
        print("training \(c.model)\(samText) (\(trainer.net.parameterCount) parameters) on \(trainer.source.name): \(trainer.split.train.count) train / \(trainer.split.validation.count) val / \(trainer.source.test.count) test images, \(trainer.source.train.classes) classes")
        print("run directory: \(dir)" + (trainer.epoch > 0 || trainer.stepInEpoch > 0 ? " (resuming at epoch \(trainer.epoch + 1), step \(trainer.stepInEpoch))" : ""))
        let start = Date()
        guard try trainer.train() else {
            print("stopped; checkpoint saved at epoch \(trainer.epoch + 1) step \(trainer.stepInEpoch). Continue with: lth4sa \(command) --output \(dir) --model \(c.model) --data \(c.data) --resume")
            throw ExitCode(130)
        }
        let test = trainer.evaluate(trainer.source.test, indices: Array(0..<trainer.source.test.count))
        let val = trainer.split.validation.isEmpty ? nil : trainer.evaluate(trainer.source.train, indices: trainer.split.validation)
        let seconds = Date().timeIntervalSince(start)
        let summary: [String: Any] = ["model": c.model, "data": c.data, "epochs": c.epochs, "parameters": trainer.net.parameterCount,
                                      "test_acc": test.accuracy, "test_loss": test.loss, "val_acc": val?.accuracy ?? NSNull(),
                                      "seconds": seconds, "checkpoint": trainer.checkpointPath ?? ""]
        let json = try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys, .prettyPrinted])
        try json.write(to: URL(fileURLWithPath: dir).appendingPathComponent("summary.json"))
        print(String(format: "done in %@: test accuracy %.2f%% (loss %.4f)", formatDuration(seconds), test.accuracy, test.loss)
              + (val.map { String(format: ", validation accuracy %.2f%%", $0.accuracy) } ?? "")
              + ", checkpoint \(trainer.checkpointPath ?? "")")
    }
}

/// `lth4sa train`: train a model on a data source into a run directory (resumable).
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a ResNet; logs, checkpoints and summary go to the run directory.")
    @OptionGroup var options: TrainingOptions

    func run() throws {
        options.runtime.apply()
        let dir = options.directory()
        let trainer = try Trainer(config: options.config, runDirectory: dir, resume: options.resume, attach: SAMOptions.hook)
        try options.trainAndSummarize(trainer, directory: dir, command: "train")
    }
}

/// First SIGINT/SIGTERM: finish the step, checkpoint, exit 130. A second one kills at once.
func installStopHandler() {
    for sig in [SIGINT, SIGTERM] {
        signal(sig) { s in
            if Trainer.stopRequested { signal(s, SIG_DFL); raise(s) }
            Trainer.stopRequested = true
        }
    }
}
