import ArgumentParser
import Data
import Experiments
import Models
import NN
import Tensor
import Terminal
import Training

/// The options of a training run (shared by `train` and `supernet train`).
struct TrainingOptions: ParsableArguments {
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var samOptions: SAMOptions
    @Option(help: "Data: \(DataSource.usage) (synthetic:N, synthetic-context:N for N training images).") var data = "synthetic"
    @Option(parsing: .unconditional, help: "Epochs.") var epochs = 5
    @Option(parsing: .unconditional, help: "Batch size.") var batch = 128
    @Option(parsing: .unconditional, help: "Base learning rate.") var lr: Float = 0.1
    @Option(help: "cosine | constant | step:M1,M2,... (x0.1 at each milestone epoch).", transform: { try ScheduleSetting(parsing: $0) }) var schedule = ScheduleSetting.cosine
    @Option(parsing: .unconditional, help: "Linear learning-rate warm-up, in epochs.") var warmupEpochs: Double = 0
    @Option(help: "sgd | adam.") var optimizer = OptimizerKind.sgd
    @Option(parsing: .unconditional, help: "SGD momentum.") var momentum: Float = 0.9
    @Flag(help: "Nesterov momentum.") var nesterov = false
    @Option(parsing: .unconditional, help: "L2 weight decay.") var weightDecay: Float = 5e-4
    @Option(parsing: .unconditional, help: "Validation images per class held out of training (stratified, fixed by --seed).") var valPerClass = 100
    @Option(parsing: .unconditional, help: "Random-crop padding (0 = no crop).") var cropPadding = 4
    @Flag(help: "No horizontal flips.") var noFlip = false
    @OptionGroup var finiteChecks: FiniteCheckOptions
    @Option(parsing: .unconditional, help: "Batch-norm statistics over N equal groups of each mini-batch (what N data-parallel ranks compute; reproduces an `mpirun -np N` run in one process).") var bnGroups = 1
    @Option(name: .shortAndLong, help: "Run directory (default: runs/<model>-<data>-s<seed>).", transform: runDirectoryPath) var output: String?
    @Flag(help: "Continue the run in --output from its last checkpoint.") var resume = false
    @Option(parsing: .unconditional, help: "Stop after N training steps of this session, with a checkpoint (continue with --resume).") var stopAfterSteps: Int?

    var config: RunConfig {
        var c = RunConfig()
        (c.model, c.data, c.epochs, c.batch, c.lr, c.schedule, c.warmupEpochs) = (modelOptions.model, data, epochs, batch, lr, schedule, warmupEpochs)
        (c.optimizer, c.momentum, c.nesterov, c.weightDecay) = (optimizer, momentum, nesterov, weightDecay)
        (c.seed, c.valPerClass, c.cropPadding, c.flip) = (runtime.seed, valPerClass, cropPadding, !noFlip)
        (c.checkFinite, c.bnGroups) = (finiteChecks.setting, bnGroups > 1 ? bnGroups : nil)
        samOptions.apply(to: &c)
        return c
    }

    func validate() throws {
        do { try config.validate() } catch let e as LTHError { throw ValidationError(e.message) }
        if let n = stopAfterSteps, n < 1 { throw ValidationError("--stop-after-steps must be at least 1, got \(n)") }
        if bnGroups < 1 { throw ValidationError("--bn-groups must be at least 1 (1 = whole-batch statistics), got \(bnGroups)") }
    }

    /// Trains with `trainer` (already configured) through the library, printing what it does.
    func trainAndSummarize(_ trainer: Trainer, directory dir: String, command: String) throws {
        let c = trainer.config
        print(NetworkTraining.description(of: trainer) + "\nrun directory: \(dir)"
              + (trainer.epoch > 0 || trainer.stepInEpoch > 0 ? " (resuming at epoch \(trainer.epoch + 1), step \(trainer.stepInEpoch))" : ""))
        trainer.stopAfterSteps = stopAfterSteps
        let resumeCommand = "Continue with: lth4sa \(command) --output \(dir) --model \(c.model) --data \(c.data) --epochs \(c.epochs) --resume"
        let s = try NetworkTraining.trainAndSummarize(trainer, context: Console.shared.withStopHandler, howToContinue: resumeCommand)
        print(String(format: "done in %@: test accuracy %.2f%% (loss %.4f)", formatDuration(s.seconds), s.testAccuracy, s.testLoss)
              + (s.validationAccuracy.map { String(format: ", validation accuracy %.2f%%", $0) } ?? "")
              + ", checkpoint \(s.checkpoint)")
    }
}

/// `lth4sa train`: train a model on a data source into a run directory (resumable).
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a ResNet; logs, checkpoints and summary go to the run directory.")
    @OptionGroup var options: TrainingOptions

    func run() throws {
        try options.runtime.apply()
        let dir = options.output ?? options.config.defaultDirectory()
        let trainer = try Trainer(config: options.config, runDirectory: dir, resume: options.resume, group: Console.shared.group,
                                  attach: SAMAttachment.attach)
        try options.trainAndSummarize(trainer, directory: dir, command: "train")
    }
}

/// `lth4sa supernet ...`: the weight-sharing supernet of METHOD.md section 3.
struct SupernetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "supernet", abstract: "Train the weight-sharing supernet (evaluate sub-networks with `lth4sa eval --scheme`).",
        subcommands: [SupernetTrain.self])
}

/// `lth4sa supernet train`: the Full-SA (or Full-Share) network trained with a fresh scheme
/// d ~ Bernoulli(p)^L every mini-batch. Validation during training uses the Full-SA sub-network.
struct SupernetTrain: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Pre-train the supernet with random schemes per mini-batch.")
    @OptionGroup var options: TrainingOptions
    @Option(parsing: .unconditional, help: "Retaining probability p of each block's SAM per mini-batch.") var keepProb: Double = 0.5
    @Option(help: ArgumentHelp("How every supernet mini-batch trains: bernoulli (one scheme d ~ Bernoulli(p)^L, the paper), sandwich (Full-SA, original and d), fair (d and 1 - d), distill (Full-SA teaches d), fewshot (correlate only: a supernet per setting of the first 2 blocks).", valueName: "strategy"))
    var supernetSampling: SupernetSampling = .bernoulli
    @Option(help: "With --supernet-sampling fewshot: the fixed values of the leading blocks of this split (e.g. 01).") var supernetSplit: String?

    var config: RunConfig {
        var c = options.config
        (c.keepProb, c.supernetSampling, c.supernetSplit) = (keepProb, supernetSampling == .bernoulli ? nil : supernetSampling, supernetSplit)
        return c
    }

    func validate() throws {
        do { try config.validate() } catch let e as LTHError { throw ValidationError(e.message) }
    }

    func run() throws {
        try options.runtime.apply()
        let dir = options.output ?? config.defaultDirectory(prefix: "supernet-")
        let trainer = try Trainer(config: config, runDirectory: dir, resume: options.resume, group: Console.shared.group, attach: SAMAttachment.attach)
        try SupernetTraining.sampleSchemes(trainer)
        try options.trainAndSummarize(trainer, directory: dir, command: "supernet train")
    }
}
