import Checkpoint
import Foundation
import Models
import Tensor
import Training

/// `summary.json` of every trained network (`train`, `supernet train`, the retrainings of
/// `run` and `compare`): one schema for the one file name.
public struct TrainingSummary: Codable, Equatable, Sendable {
    public var model: String
    public var data: String
    public var epochs: Int
    /// The connection scheme trained (nil: no SAM, or a supernet).
    public var scheme: Scheme?
    public var parameters: Int
    public var testAccuracy: Double
    public var testLoss: Double
    /// Accuracy on the validation split (nil when the run held none out).
    public var validationAccuracy: Double?
    /// Wall time of the training (this session's part when resumed) and the evaluations.
    public var seconds: Double
    public var checkpoint: String
    /// Images of the test set (its binomial sampling error enters the ticket rule).
    public var testImages: Int?
    /// The seed the network was trained with.
    public var seed: UInt64?
    /// Classes of the data (nil in files of earlier versions).
    public var classes: Int?

    public static let fileName = "summary.json"
}

/// Training one network to the end and summarising it.
public enum NetworkTraining {
    /// Trains the remaining epochs of `trainer`, evaluates test and validation accuracy and
    /// writes `summary.json` into its run directory. Throws `StoppedError` (checkpoint saved)
    /// when the context's stop token is set; `howToContinue` goes into that error.
    public static func trainAndSummarize(_ trainer: Trainer, context: ExperimentContext, howToContinue: String) throws -> TrainingSummary {
        context.wire(trainer)
        let start = Date()
        guard try trainer.train() else {
            throw StoppedError("stopped; checkpoint saved at epoch \(trainer.epoch + 1) step \(trainer.stepInEpoch). \(howToContinue)")
        }
        let test = try trainer.evaluate(trainer.source.test, indices: Array(0..<trainer.source.test.count))
        let validation = trainer.split.validation.isEmpty ? nil : try trainer.evaluate(trainer.source.train, indices: trainer.split.validation)
        let c = trainer.config
        let summary = TrainingSummary(model: c.model, data: c.data, epochs: c.epochs, scheme: c.scheme, parameters: trainer.net.parameterCount,
                                      testAccuracy: test.accuracy, testLoss: test.loss, validationAccuracy: validation?.accuracy,
                                      seconds: Date().timeIntervalSince(start), checkpoint: trainer.checkpointPath ?? "",
                                      testImages: trainer.source.test.count, seed: c.seed, classes: trainer.source.train.classes)
        if let dir = trainer.runDirectory, trainer.group.isLeader { try AtomicFile.writeJSON(summary, to: dir.child(TrainingSummary.fileName)) }
        return summary
    }

    /// A network trained from scratch by `trainFromScratch`, and whether it was trained now.
    public struct Outcome: Sendable {
        public let summary: TrainingSummary
        public let trainedNow: Bool
    }

    /// Trains `config` (its scheme) from scratch in `directory`, or returns the summary that
    /// directory holds when it finished the same scheme before (a stopped training resumes
    /// from its checkpoint).
    public static func trainFromScratch(_ config: RunConfig, directory: URL, context: ExperimentContext,
                                        howToContinue: String = "run the same command again to continue",
                                        attach: @escaping AttachHook = SAMAttachment.attach) throws -> Outcome {
        if let done = AtomicFile.readJSON(TrainingSummary.self, from: directory.child(TrainingSummary.fileName)), done.scheme == config.scheme,
           done.seed == nil || done.seed == config.seed {
            return Outcome(summary: done, trainedNow: false)
        }
        let exists = directory.child("checkpoint.safetensors").exists
        let trainer = try Trainer(config: config, runDirectory: directory.path, resume: exists, group: context.group, attach: attach)
        return Outcome(summary: try trainAndSummarize(trainer, context: context, howToContinue: howToContinue), trainedNow: true)
    }

    /// Trains `config` from scratch once per seed (`config.seed`, `+1`, ...): seed k in
    /// `directory` (k = 0) or `directory-seed<k>`, each resumable and reused like
    /// `trainFromScratch`. `report` is told each outcome as it finishes.
    public static func trainSeeds(_ config: RunConfig, seeds: Int, directory: URL, context: ExperimentContext,
                                  howToContinue: String = "run the same command again to continue",
                                  attach: @escaping AttachHook = SAMAttachment.attach,
                                  report: (Int, Outcome) -> Void = { _, _ in }) throws -> [Outcome] {
        var outcomes: [Outcome] = []
        for k in 0..<max(seeds, 1) {
            var c = config
            c.seed = config.seed &+ UInt64(k)
            let dir = k == 0 ? directory : directory.deletingLastPathComponent().child(directory.lastPathComponent + "-seed\(k)")
            let outcome = try trainFromScratch(c, directory: dir, context: context, howToContinue: howToContinue, attach: attach)
            report(k, outcome)
            outcomes.append(outcome)
        }
        return outcomes
    }

    /// What `trainer` trains, on what: "training resnet20 with se (reduction=16, full-sa,
    /// scheme 1-1-1) (272474 parameters) on synthetic: 4000 train / 1000 val / 1000 test images, 10 classes".
    public static func description(of trainer: Trainer) -> String {
        let c = trainer.config
        let samText = trainer.attached.map { " with \($0.id) (\($0.options), \($0.attach), scheme \($0.scheme))" } ?? ""
        return "training \(c.model)\(samText) (\(trainer.net.parameterCount) parameters) on \(trainer.source.name): \(trainer.split.train.count) train / "
            + "\(trainer.split.validation.count) val / \(trainer.source.test.count) test images, \(trainer.source.train.classes) classes"
    }

    /// The line reporting one network trained (or found trained) by `trainFromScratch`.
    public static func line(_ label: String, _ outcome: Outcome) -> String {
        let s = outcome.summary
        let validation = s.validationAccuracy.map { String(format: ", validation %.2f%%", $0) } ?? ""
        return "   \(label): \(outcome.trainedNow ? "" : "done before, ")test accuracy \(String(format: "%.2f", s.testAccuracy))%\(validation)"
            + (outcome.trainedNow ? " in \(formatDuration(s.seconds))" : "")
    }
}
