import Checkpoint
import Data
import Foundation
import Models
import Tensor
import Training

/// The weight-sharing supernet (METHOD.md section 3): the Full-SA (or Full-Share) network
/// trained with a fresh scheme d ~ Bernoulli(p)^L per mini-batch.
public enum SupernetTraining {
    /// Trains (or resumes, or reuses when finished) the supernet of `config` in `directory`;
    /// returns its trainer with the Full-SA sub-network selected.
    public static func train(_ config: RunConfig, directory: String, context: ExperimentContext,
                             howToContinue: String = "run the same command again to continue",
                             attach: @escaping AttachHook = SAMAttachment.attach) throws -> Trainer {
        let dir = URL(fileURLWithPath: directory)
        let trainer = try Trainer(config: config, runDirectory: directory, resume: dir.child("checkpoint.safetensors").exists,
                                  group: context.group, attach: attach)
        let supernet = try sampleSchemes(trainer)
        if AtomicFile.readJSON(TrainingSummary.self, from: dir.child(TrainingSummary.fileName)) == nil || trainer.epoch < config.epochs {
            _ = try NetworkTraining.trainAndSummarize(trainer, context: context, howToContinue: howToContinue)
        }
        supernet.apply(.all(true, stageSizes: trainer.net.spec.blocksPerStage))
        return trainer
    }

    /// The trained supernet of run directory `runDirectory` (its `folderName(sampling)`; with
    /// `sampling` nil, the only supernet folder it holds).
    public static func trained(in runDirectory: String, sampling: SupernetSampling? = nil, context: ExperimentContext) throws -> Trainer {
        let root = URL(fileURLWithPath: runDirectory)
        let held = SupernetSampling.allCases.filter { root.child(folderName($0)).child("checkpoint.safetensors").exists }
        let chosen: SupernetSampling
        if let sampling { chosen = sampling } else if held.count > 1 {
            throw LTHError("'\(runDirectory)' holds supernets trained with \(held.map(\.rawValue).joined(separator: ", ")); choose one with `supernetSampling`")
        } else { chosen = held.first ?? .bernoulli }
        let directory = root.child(folderName(chosen)).path
        guard let meta = try? ModelCheckpoint.metadata(URL(fileURLWithPath: directory).child("checkpoint.safetensors").path),
              let text = meta["config"] else {
            throw LTHError("no trained supernet in '\(directory)'; train one there first (a pipeline run, or supernet training with this directory)")
        }
        return try train(try RunConfig.decode(text), directory: directory, context: context)
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

    /// `count` mini-batches (the recipe's batch size) of the sub-training split for BN
    /// recalibration -- at most as many as the split holds, so a default of 10 also serves a
    /// small data set: normalised as in training, not augmented, in an order fixed by the seed.
    public static func calibrationBatches(_ t: Trainer, count: Int) throws -> [Tensor] {
        guard count > 0 else { return [] }
        let available = t.split.train.count / t.config.batch
        guard available >= 1 else {
            throw LTHError("`bnRecalibrate` \(count) needs a mini-batch of \(t.config.batch) images; the training split holds \(t.split.train.count): lower `batch` or use `bnRecalibrate` 0")
        }
        let loader = BatchLoader(dataset: t.source.train, indices: t.split.train, batchSize: t.config.batch, shuffle: true,
                                 augmentation: .none, mean: t.mean, std: t.std, seed: t.config.seed ^ 0xBA7C_4EA1, epoch: 0, dropLast: true)
        var out: [Tensor] = []
        while out.count < count, let b = loader.next() { out.append(b.images.clone()) }
        loader.cancel()
        return out
    }

    /// Validation batches of the trainer's split, normalised as in training; with `shared`,
    /// only this rank's share of the images (`ProcessGroup.share(of:)`).
    public static func validationBatches(_ t: Trainer, batch: Int = 250, shared: Bool = false) -> [(images: Tensor, labels: [Int32])] {
        let indices = shared ? Array(t.split.validation[t.group.share(of: t.split.validation.count)]) : t.split.validation
        let loader = BatchLoader(dataset: t.source.train, indices: indices, batchSize: batch, shuffle: false,
                                 augmentation: .none, mean: t.mean, std: t.std, seed: 0, epoch: 0)
        var out: [(Tensor, [Int32])] = []
        while let b = loader.next() { out.append((b.images.clone(), b.labels)) }
        return out
    }
}
