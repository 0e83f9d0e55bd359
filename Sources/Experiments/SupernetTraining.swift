import Checkpoint
import Cluster
import Data
import Foundation
import Models
import Tensor
import Training

/// The weight-sharing supernet (METHOD.md section 3): the Full-SA (or Full-Share) network
/// trained with a fresh scheme d ~ Bernoulli(p)^L per mini-batch.
public enum SupernetTraining {
    /// Trains (or resumes, or reuses when finished) the supernet of `config` in `directory`;
    /// returns it with the Full-SA sub-network selected.
    public static func train(_ config: RunConfig, directory: String, context: ExperimentContext,
                             howToContinue: String = "run the same command again to continue",
                             attach: @escaping AttachHook = SAMAttachment.attach) throws -> TrainedSupernet {
        let dir = URL(fileURLWithPath: directory)
        let trainer = try Trainer(config: config, runDirectory: directory, resume: dir.child("checkpoint.safetensors").exists,
                                  group: context.group, attach: attach)
        let supernet = try sampleSchemes(trainer)
        if AtomicFile.readJSON(TrainingSummary.self, from: dir.child(TrainingSummary.fileName)) == nil || trainer.epoch < config.epochs {
            _ = try NetworkTraining.trainAndSummarize(trainer, context: context, howToContinue: howToContinue)
        }
        supernet.apply(.all(true, stageSizes: trainer.net.spec.blocksPerStage))
        return TrainedSupernet(net: trainer.net, setup: trainer.setup, group: trainer.group, checkpoint: trainer.checkpointPath, attach: attach)
    }

    /// The trained supernet of run directory `runDirectory` (its `folderName(sampling)`; with
    /// `sampling` nil, the only supernet folder it holds).
    public static func trained(in runDirectory: String, sampling: SupernetSampling? = nil, context: ExperimentContext) throws -> TrainedSupernet {
        let root = URL(fileURLWithPath: runDirectory)
        let held = SupernetSampling.allCases.filter { root.child(folderName($0)).child("checkpoint.safetensors").exists }
        let chosen: SupernetSampling
        if let sampling { chosen = sampling } else if held.count > 1 {
            throw LTHError("'\(runDirectory)' holds supernets trained with \(held.map(\.rawValue).joined(separator: ", ")); choose one with `supernetSampling`")
        } else { chosen = held.first ?? .bernoulli }
        let directory = root.child(folderName(chosen)).path
        guard let meta = try? TrainingCheckpointMetadata(path: URL(fileURLWithPath: directory).child("checkpoint.safetensors").path) else {
            throw LTHError("no trained supernet in '\(directory)'; train one there first (a pipeline run, or supernet training with this directory)")
        }
        return try train(meta.config, directory: directory, context: context)
    }

    /// Makes `trainer` train a supernet: before every step, d ~ Bernoulli(keep-prob)^L drawn
    /// from (seed, epoch, step) only, so resumes are exact, and the passes of the config's
    /// `SupernetSampling` (d alone, the sandwich, d and 1 - d, or Full-SA teaching d);
    /// Full-SA for evaluation.
    @discardableResult
    public static func sampleSchemes(_ trainer: Trainer) throws -> Supernet {
        let supernet = try Supernet(trainer.net)
        let p = trainer.config.keepProb ?? 0.5, seed = trainer.config.seed
        let sampling = trainer.config.supernetSampling ?? .bernoulli
        let split = (trainer.config.supernetSplit ?? "").map { $0 == "1" }
        let stages = trainer.net.spec.blocksPerStage
        guard split.count < stages.reduce(0, +) else { throw LTHError("a supernet split of \(split.count) bits leaves no block of \(trainer.net.spec) to sample") }
        trainer.passesOfStep = { epoch, step in
            var rng = RNG(seed: seed ^ (UInt64(epoch + 1) &* 0x9E37_79B9_7F4A_7C15) ^ (UInt64(step + 1) &* 0xC2B2_AE3D_27D4_EB4F))
            return supernet.passes(sampling, keepProbability: p, split: split, rng: &rng).map { pass in
                TrainingPass(select: { supernet.apply(pass.scheme) }, teacher: pass.teacher)
            }
        }
        // validation: Full-SA, or the split's all-ones scheme
        let evaluated = Scheme(bits: split + Array(repeating: true, count: stages.reduce(0, +) - split.count), stageSizes: stages)
        trainer.beforeEvaluation = { supernet.apply(evaluated) }
        return supernet
    }

    /// The folder of a study's supernet inside its run directory: `supernet` for the paper's
    /// Bernoulli sampling (as every earlier run directory has it), `supernet-<sampling>` for
    /// the others, so studies of several strategies share one run directory.
    public static func folderName(_ sampling: SupernetSampling) -> String {
        sampling == .bernoulli ? "supernet" : "supernet-\(sampling)"
    }
}

/// A trained supernet (the Full-SA sub-network selected) with what it was trained on: what
/// search, landscape and scoring take.
public struct TrainedSupernet {
    public let net: ResNet
    /// Its configuration, data, split and normalisation.
    public let setup: TrainingSetup
    /// The ranks that hold it (each a copy).
    public let group: ProcessGroup
    /// Its checkpoint (nil when it was not saved).
    public let checkpoint: String?
    /// How its SAM was attached (to build a copy).
    public let attach: AttachHook

    public var config: RunConfig { setup.config }
    public var split: Split { setup.split }
    public var source: DataSource { setup.source }

    /// The validation images in batches of `batch`, normalised as in training; with `shared`,
    /// only this rank's share of them (`ProcessGroup.share(of:)`).
    public func validationBatches(batch: Int = 250, shared: Bool = false) -> [(images: Tensor, labels: [Int32])] {
        setup.batches(shared ? Array(split.validation[group.share(of: split.validation.count)]) : split.validation, batch: batch)
    }
}
