import ArgumentParser
import Foundation
import Models
import Tensor
import Training

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
    @Option(help: "Retaining probability p of each block's SAM per mini-batch.") var keepProb: Double = 0.5

    func validate() throws {
        guard options.samOptions.sam != nil else { throw ValidationError("supernet train needs --sam PLUGIN") }
        guard keepProb > 0 && keepProb <= 1 else { throw ValidationError("--keep-prob must be in (0, 1], got \(keepProb)") }
        guard options.samOptions.scheme == nil else { throw ValidationError("a supernet attaches the SAM at every block; drop --scheme") }
    }

    func run() throws {
        options.runtime.apply()
        var config = options.config
        config.keepProb = keepProb
        let dir = options.directory("supernet-")
        let trainer = try Trainer(config: config, runDirectory: dir, resume: options.resume, attach: SAMOptions.hook)
        _ = try Stages.samplingSchemes(trainer)
        try options.trainAndSummarize(trainer, directory: dir, command: "supernet train")
    }
}
