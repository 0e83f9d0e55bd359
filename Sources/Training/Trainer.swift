import Checkpoint
import Cluster
import Data
import Foundation
import Models
import NN
import Tensor

/// Accuracy and loss of a model on a set of images.
public struct Evaluation: Sendable {
    public let accuracy: Double
    /// Images classified correctly (accuracy = 100 * correct / count).
    public let correct: Int
    public let loss: Double
    public let count: Int
}

/// One forward-backward pass of a training step (a step's passes sum their gradients).
public struct TrainingPass {
    /// Selects what the pass trains (e.g. a supernet's sub-network); called before its forward.
    public var select: () -> Void
    /// The earlier pass of the same step whose softmax predictions are this pass's targets
    /// (in-place distillation; no gradient reaches the teacher); nil = the labels.
    public var teacher: Int?

    public init(select: @escaping () -> Void = {}, teacher: Int? = nil) {
        self.select = select
        self.teacher = teacher
    }
}

/// Attaches attention modules to a freshly built network (before the optimizer collects its
/// parameters); returns what every checkpoint of the network records of it (nil: nothing attached).
public typealias AttachHook = (RunConfig, ResNet) throws -> AttachedSAM?

/// Trains a ResNet with SGD/Adam on a data source, logging to and checkpointing into a run
/// directory. Resumable: the batch order and augmentation of every epoch depend only on
/// (seed, epoch), and checkpoints hold weights, BN statistics, optimizer state and position.
///
/// Run directory: `config.json`, `metrics.jsonl`, `checkpoint.safetensors` (+ `.optim`),
/// `summary.json`.
///
/// Data-parallel over the ranks of `group` (`mpirun -np N`): every rank builds the same network
/// (parameters broadcast from rank 0), assembles its part of every global mini-batch, and the
/// gradients are summed over ranks before each (identical) optimizer step; batch norm uses each
/// part's own statistics (`RunConfig.bnGroups` reproduces that in one process). Running
/// statistics are averaged over ranks before every evaluation and checkpoint. Rank 0 alone
/// writes files; `train`, `evaluate` and `saveCheckpoint` are collective.
public final class Trainer {
    public let config: RunConfig
    /// Data, split and normalisation.
    public let setup: TrainingSetup
    public let net: ResNet
    public let optimizer: Optimizer
    /// Where logs and checkpoints go (nil: nothing is written).
    public let directory: TrainingRunDirectory?
    /// The ranks training together (`SingleProcess()` when alone).
    public let group: ProcessGroup
    /// Receives the live status (every step) and one line per finished epoch; nil = silent.
    public var onProgress: ProgressHandler? = nil
    /// Checked after every step: when requested, the trainer checkpoints and `train()` returns false.
    public var stopToken: StopToken? = nil
    /// Mid-epoch checkpoint interval in seconds (end-of-epoch checkpoints always happen).
    public var checkpointInterval: Double = 600
    /// Stop (with a checkpoint) after this many steps of this session: simulates a killed run.
    public var stopAfterSteps: Int? = nil
    /// The forward-backward passes of training step (epoch, step in epoch), whose gradients
    /// are summed before the optimizer step (e.g. a supernet's sampled sub-networks); nil = one
    /// pass on the labels. Must depend only on its arguments, for exact resume.
    public var passesOfStep: ((Int, Int) -> [TrainingPass])? = nil
    /// Called before every evaluation (e.g. to select the Full-SA sub-network).
    public var beforeEvaluation: (() -> Void)? = nil

    private(set) public var epoch = 0
    private(set) public var stepInEpoch = 0
    /// When the current epoch (or this session's part of it) began (set by `train`).
    private var epochStarted = Date()
    private let schedule: LRSchedule
    private let loss = SoftmaxCrossEntropy()
    private var metrics: MetricsLog?
    /// The SAM the attach hook attached (id, version, options, scheme), recorded in every checkpoint.
    public let attached: AttachedSAM?

    public var source: DataSource { setup.source }
    public var split: Split { setup.split }
    public var mean: [Float] { setup.mean }
    public var std: [Float] { setup.std }
    public var runDirectory: URL? { directory?.url }
    public var checkpointPath: String? { directory?.checkpointPath }

    /// - Parameters:
    ///   - runDirectory: where logs and checkpoints go (nil: nothing is written).
    ///   - resume: continue the run saved in `runDirectory`.
    ///   - source: preloaded data (else loaded from `config.data`).
    ///   - group: the ranks training together (data parallel); the default trains alone.
    ///   - attach: called with the freshly built network (before the optimizer collects its
    ///     parameters) to attach attention modules; returns what checkpoints record of them.
    public init(config requested: RunConfig, runDirectory: String?, resume: Bool = false, source: DataSource? = nil,
                group: ProcessGroup = SingleProcess(), attach: AttachHook? = nil) throws {
        self.group = group
        // 1. the run directory: locked, recovered; a resume continues with the saved run's settings
        directory = try runDirectory.map { try TrainingRunDirectory($0, group: group) }
        var config = try directory?.configuration(requested, resume: resume) ?? requested
        try directory?.create()
        config.worldSize = group.size > 1 ? group.size : nil
        if group.size > 1 && (config.bnGroups ?? 1) < group.size {
            config.bnGroups = group.size  // recorded: a resume with any number of ranks keeps this run's batch-norm groups
        }
        try config.validate()
        if let g = config.bnGroups, g > group.size, g % group.size != 0 {
            throw LTHError("`bnGroups` \(g) is not a multiple of the \(group.size) ranks; use a multiple of \(group.size) or 1")
        }
        self.config = config
        schedule = config.schedule.schedule(epochs: config.epochs)
        // 2. data, network, optimizer
        setup = try TrainingSetup(config: config, source: source)
        (net, attached) = try setup.network(attach: attach)
        let params = net.namedParameters()
        optimizer = config.optimizer == .adam
            ? Adam(params, lr: config.lr, weightDecay: config.weightDecay)
            : SGD(params, lr: config.lr, momentum: config.momentum, weightDecay: config.weightDecay, nesterov: config.nesterov)
        // 3. the saved state, on every rank alike
        if resume, let directory {
            let ckpt = directory.checkpointPath, opt = directory.optimizerPath
            let meta = try TrainingCheckpointMetadata(strings: try ModelCheckpoint.load(net, from: ckpt), file: ckpt)
            let optMeta = try ModelCheckpoint.loadOptimizer(optimizer, from: opt)
            guard optMeta[ModelCheckpoint.epochKey] == String(meta.epoch), optMeta["step"] == String(meta.step) else {
                throw LTHError("'\(opt)' does not belong to '\(ckpt)' (different epoch stamps); the run cannot resume exactly")
            }
            (epoch, stepInEpoch) = (meta.epoch, meta.step)
        }
        try dataParallel.broadcastState(net)  // every rank starts from rank 0's network
        // 4. written only once a resume has succeeded: a refused resume leaves the directory as it was
        metrics = try directory?.begin(config, resumedAt: resume ? (epoch, stepInEpoch) : nil)
    }

    /// Metadata stored with every checkpoint.
    func checkpointMetadata() throws -> [String: String] {
        try TrainingCheckpointMetadata(epoch: epoch, step: stepInEpoch, config: config, mean: mean, std: std, sam: attached).strings()
    }

    /// Writes weights and optimizer state as one unit (`CheckpointSet`): after a kill at any
    /// moment the directory holds this pair or the previous one, never a mix.
    /// Collective: the ranks' running statistics are averaged first, rank 0 writes.
    public func saveCheckpoint() throws {
        guard let directory else { return }
        try dataParallel.averageRunningStatistics(net)
        guard group.isLeader else { return }
        let meta = try checkpointMetadata()
        try directory.commit(writeModel: { try ModelCheckpoint.save(net, to: $0, metadata: meta) },
                                                 writeOptimizer: { try ModelCheckpoint.saveOptimizer(optimizer, to: $0, metadata: meta) })
    }

    /// Trains the remaining epochs. Returns false when stopped by a signal (checkpoint saved).
    /// Collective: every rank calls it; they stop, checkpoint and finish together.
    ///
    /// The loop: for every epoch, its batches (the same order on every run of the seed); for
    /// every batch one optimizer step (`step`), its report (`report`) and the decision to
    /// checkpoint or stop, made by the ranks together; at an epoch's end, validation, its line
    /// and a checkpoint (`finishEpoch`).
    @discardableResult
    public func train() throws -> Bool {
        let batchesPerEpoch = try checkedBatchesPerEpoch()
        var clock = Clock(steps: batchesPerEpoch * config.epochs, batchesPerEpoch: batchesPerEpoch)
        while epoch < config.epochs {
            let loader = BatchLoader(dataset: source.train, indices: split.train, batchSize: config.batch, shuffle: true,
                                     augmentation: Augmentation(cropPadding: config.cropPadding, flip: config.flip), mean: mean, std: std,
                                     seed: config.seed, epoch: epoch, dropLast: true, part: (group.rank, group.size))
            var totals = Totals()
            epochStarted = Date()
            var toSkip = stepInEpoch  // > 0 only when resuming mid-epoch
            while let batch = loader.next() {
                if toSkip > 0 { toSkip -= 1; continue }
                let figures = try step(batch.images, labels: batch.labels, batchesPerEpoch: batchesPerEpoch)
                stepInEpoch += 1
                clock.stepsDone += 1
                totals.add(figures)
                report(figures, totals, clock)
                if try checkpointOrStop(&clock) {
                    metrics?.write(InterruptedRecord(epoch: epoch, step: stepInEpoch))
                    loader.cancel()
                    return false
                }
            }
            try finishEpoch(totals)
            clock.lastCheckpoint = Date()
        }
        return true
    }

    /// Where a training is in time: its start, its steps, the last checkpoint.
    private struct Clock {
        let steps: Int, batchesPerEpoch: Int
        let started = Date()
        var lastCheckpoint = Date()
        var stepsDone = 0
    }

    /// An epoch's running sums over the whole batches of every rank (loss summed over images).
    private struct Totals {
        var images = 0.0, correct = 0.0, loss = 0.0
        mutating func add(_ step: [Double]) { (loss, correct, images) = (loss + step[0], correct + step[1], images + step[2]) }
        var meanLoss: Double { loss / max(images, 1) }
        var accuracy: Double { 100 * correct / max(images, 1) }
    }

    /// Batches per epoch, after checking that the batch fits the data and the batch-norm groups.
    private func checkedBatchesPerEpoch() throws -> Int {
        let batchesPerEpoch = split.train.count / config.batch
        guard batchesPerEpoch >= 1 else {
            throw LTHError("`batch` \(config.batch) is larger than the \(split.train.count) training images")
        }
        let groupsPerRank = max(1, (config.bnGroups ?? 1) / group.size)
        guard config.batch / (group.size * groupsPerRank) >= 2 else {
            throw LTHError("`batch` \(config.batch) over \(group.size) ranks x \(groupsPerRank) batch-norm groups leaves fewer than 2 images per group; raise `batch`")
        }
        return batchesPerEpoch
    }

    /// One optimizer step on this rank's part of a mini-batch: the learning rate of the
    /// position, the step's passes, gradients summed over the ranks, the finite checks around
    /// the update. Returns the whole batch's [loss sum, correct, images].
    private func step(_ images: Tensor, labels: [Int32], batchesPerEpoch: Int) throws -> [Double] {
        let position = Double(epoch) + Double(stepInEpoch) / Double(batchesPerEpoch)
        optimizer.learningRate = schedule.rate(base: config.lr, epoch: position, warmup: config.warmupEpochs)
        let passes = passesOfStep?(epoch, stepInEpoch) ?? [TrainingPass()]
        let local = try accumulateGradients(images, labels: labels, passes: passes)
        try dataParallel.finishOverlappedSum(of: net)
        let figures = try group.sum([local.loss, local.correct, local.count])  // the whole batch's figures
        if net.passes.checkFinite, let bad = net.firstNonFiniteGradient() {
            try replayNamingThePlugin(images, labels: labels, passes: passes)
            try requireFinite(bad, "gradient")
        }
        optimizer.step()
        try requireFinite(net.firstNonFiniteState(), "value")
        return figures
    }

    /// The live status (leader) and, every 20 steps, a step record.
    private func report(_ figures: [Double], _ totals: Totals, _ clock: Clock) {
        let rate = Double(clock.stepsDone * config.batch) / Date().timeIntervalSince(clock.started)
        let remaining = Double(clock.steps - (epoch * clock.batchesPerEpoch + stepInEpoch)) * Double(config.batch) / rate
        if group.isLeader {
            onProgress?(.status(String(format: "epoch %d/%d  step %d/%d  loss %.4f  acc %.2f%%  lr %.4g  %.0f img/s  ETA %@",
                                       epoch + 1, config.epochs, stepInEpoch, clock.batchesPerEpoch, totals.loss / totals.images,
                                       100 * totals.correct / totals.images, optimizer.learningRate, rate, formatDuration(remaining))))
        }
        if stepInEpoch % 20 == 0 {
            metrics?.write(StepRecord(epoch: epoch, step: stepInEpoch, loss: figures[0] / figures[2], lr: Double(optimizer.learningRate), imagesPerS: rate))
        }
    }

    /// Decided together: a stop asked on any rank (or the session's step budget), a checkpoint
    /// due by rank 0's clock. Checkpoints when either holds; returns whether to stop.
    private func checkpointOrStop(_ clock: inout Clock) throws -> Bool {
        let decision = try group.sum([stopToken?.isRequested == true ? 1 : 0,
                                      group.isLeader && Date().timeIntervalSince(clock.lastCheckpoint) > checkpointInterval ? 1 : 0])
        let stop = decision[0] > 0 || clock.stepsDone == stopAfterSteps
        if stop || decision[1] > 0 {
            try saveCheckpoint()
            clock.lastCheckpoint = Date()
        }
        return stop
    }

    /// The end of an epoch: validation, the epoch's record and line, the ranks' copies made
    /// equal, a checkpoint; the position moves to the next epoch's start.
    private func finishEpoch(_ totals: Totals) throws {
        let val = split.validation.isEmpty ? nil : try evaluate(source.train, indices: split.validation)
        let seconds = Date().timeIntervalSince(epochStarted)
        metrics?.write(EpochRecord(epoch: epoch + 1, trainLoss: totals.meanLoss, trainAcc: totals.accuracy, valAcc: val?.accuracy, valLoss: val?.loss,
                                   seconds: seconds, imagesPerS: totals.images / seconds, ranks: group.size))
        if group.isLeader {
            onProgress?(.line(String(format: "epoch %d/%d  train loss %.4f acc %.2f%%", epoch + 1, config.epochs, totals.meanLoss, totals.accuracy)
                              + (val.map { String(format: "  val acc %.2f%%", $0.accuracy) } ?? "") + "  (\(formatDuration(seconds)))"))
        }
        epoch += 1
        stepInEpoch = 0
        try dataParallel.broadcastState(net)  // guards against any drift between the ranks' copies
        try saveCheckpoint()
    }

    /// With finite checks on (`RunConfig.checkFinite`, the default): throws when `found`, the
    /// first NaN/Inf in a parameter's gradient (before the optimizer step) or in a parameter or
    /// running statistic (after it), names one. Every plugin output was checked during the pass,
    /// so a value found here came from the network itself.
    /// `found` is evaluated only when the checks are on (it reads every parameter).
    private func requireFinite(_ found: @autoclosure () -> (name: String, index: Int, value: Float)?, _ what: String) throws {
        guard net.passes.checkFinite, let found = found() else { return }
        throw LTHError("training produced \(found.value) in the \(what) of \(found.name) (element \(found.index)) at epoch \(epoch + 1) "
                       + "step \(stepInEpoch + 1), while every attention plugin's output was finite: the network diverged; "
                       + "lower `lr` (now \(config.lr)); the last checkpoint is kept")
    }

    /// After a step whose gradients hold NaN/Inf: the same forward and backward on this rank
    /// alone, with the plugins' input gradients checked too, so that a plugin that wrote the
    /// value is named (it throws); returns when none did. The parameters are those of the
    /// failed step (no optimizer step ran).
    private func replayNamingThePlugin(_ images: Tensor, labels: [Int32], passes: [TrainingPass]) throws {
        net.passes.checkInputGradients = true
        defer { net.passes.checkInputGradients = false }
        _ = try accumulateGradients(images, labels: labels, passes: passes, sumOverRanks: false)
    }

    /// Forward and backward of this rank's part of a mini-batch, in `groups` equal batch-norm
    /// groups, once per pass (gradients summed over the passes); parameter gradients are this
    /// rank's share of the global gradient (each group's mean-loss gradient weighted by its
    /// images / the global batch), and with several ranks their sum over the ranks is started
    /// during the last backward (finished by the caller). Returns the labels' cross-entropy
    /// summed over images and passes, correct predictions, and images x passes.
    /// Leaves the parameters' `grad` holding the step's gradient (no optimizer step). With
    /// several ranks it is collective and the caller finishes the sum (as `train` does).
    public func accumulateGradients(_ batchImages: Tensor, labels: [Int32], passes: [TrainingPass] = [TrainingPass()]) throws
        -> (loss: Double, correct: Double, count: Double) {
        try accumulateGradients(batchImages, labels: labels, passes: passes, sumOverRanks: true)
    }

    private func accumulateGradients(_ batchImages: Tensor, labels: [Int32], passes: [TrainingPass], sumOverRanks: Bool) throws
        -> (loss: Double, correct: Double, count: Double) {
        let groups = max(1, (config.bnGroups ?? 1) / group.size)
        let batch = (images: batchImages, labels: labels)
        net.zeroGrad()
        let n = batch.labels.count
        var loss = 0.0, correct = 0.0
        for (p, pass) in passes.enumerated() {
            precondition(pass.teacher.map { $0 < p } ?? true, "pass \(p)'s teacher \(pass.teacher!) does not come before it")
            let keepsTargets = passes.contains { $0.teacher == p }
            pass.select()
            let statistics = groups > 1 ? groupStatistics : nil
            statistics?.beginPass()
            for g in 0..<groups {
                statistics?.beginGroup()
                let range = contiguousPart(g, of: groups, count: n)
                let images: Tensor
                if groups == 1 { images = batch.images } else {
                    let per = batch.images.count / max(n, 1)
                    images = groupImages.get([range.count] + batch.images.shape.dropFirst())
                    images.data.update(from: batch.images.data + range.lowerBound * per, count: range.count * per)
                }
                let logits = try net.forward(images, training: true)
                statistics?.endGroup()
                let out = self.loss(logits, Array(batch.labels[range]))
                guard out.loss.isFinite else {
                    throw LTHError("training diverged at epoch \(epoch + 1) step \(stepInEpoch + 1) (loss \(out.loss)); lower `lr` (now \(config.lr))")
                }
                if keepsTargets { SoftTargetCrossEntropy.softmax(logits, into: targets(pass: p, group: g, shape: logits.shape)) }
                let gradient = pass.teacher.map { softLoss(logits, targets: targets(pass: $0, group: g, shape: logits.shape)).gradient } ?? out.gradient
                let weight = Float(range.count) / Float(config.batch)  // exactly 1 when one process trains whole batches
                if weight != 1 { for i in 0..<gradient.count { gradient[i] *= weight } }
                if sumOverRanks && p == passes.count - 1 && g == groups - 1 { dataParallel.overlapSum(withNextBackwardOf: net) }  // the last gradients are final
                try net.backward(gradient)
                loss += out.loss * Double(range.count)
                correct += Double(out.correct)
            }
            statistics?.finish()
        }
        return (loss, correct, Double(n * passes.count))
    }

    /// Running statistics over batch-norm groups as data-parallel ranks keep them: every group
    /// updates from the statistics before the pass, the results are averaged (what averaging
    /// the ranks' statistics gives, the update being linear) and `num_batches_tracked` grows by
    /// one per pass, so `--bn-groups G` in one process equals `mpirun -np G` in its running
    /// statistics as well as its weights.
    private lazy var groupStatistics = GroupStatistics(net)
    private final class GroupStatistics {
        private let buffers: [Buffer]
        private let before: [Tensor], sum: [Tensor]
        private var groups = 0

        init(_ net: Module) {
            buffers = net.namedBuffers().map { $0.1 }
            before = buffers.map { Tensor($0.tensor.shape) }
            sum = buffers.map { Tensor($0.tensor.shape) }
        }

        /// Keeps the statistics before the pass and clears the sum (buffers reused every pass).
        func beginPass() {
            for (b, t) in zip(buffers, before) { t.copy(from: b.tensor) }
            for s in sum { s.zero() }
            groups = 0
        }

        /// Every buffer back to its value before the pass.
        func beginGroup() {
            if groups > 0 { for (b, t) in zip(buffers, before) { b.tensor.copy(from: t) } }
        }

        /// Adds this group's updated statistics to the sum.
        func endGroup() {
            for (b, s) in zip(buffers, sum) { s.add(b.tensor) }
            groups += 1
        }

        /// The average over the groups (integers: the same count each group reached).
        func finish() {
            guard groups > 0 else { return }
            let inverse = 1 / Float(groups)
            for (b, s) in zip(buffers, sum) {
                let t = b.tensor
                for i in 0..<t.count { t.data[i] = b.integer ? (s.data[i] * inverse).rounded() : s.data[i] * inverse }
            }
        }
    }

    /// A teacher pass's softmax predictions for batch-norm group `group`, kept for the later
    /// passes of the same step.
    private func targets(pass: Int, group: Int, shape: [Int]) -> Tensor {
        let key = [pass, group] + shape
        if let t = teacherTargets[key] { return t }
        let t = Tensor(shape)
        teacherTargets[key] = t
        return t
    }
    private var teacherTargets: [[Int]: Tensor] = [:]
    private let softLoss = SoftTargetCrossEntropy()

    private let groupImages = BufferPool()
    private lazy var dataParallel = DataParallel(group: group)

    /// Eval-mode accuracy and mean loss on `indices` of `dataset`; `logits` receives
    /// [count, classes] row-major logits when given. Collective: with several ranks each
    /// evaluates its share of `indices` (all of them when `logits` is asked for) after the
    /// running statistics are averaged, and every rank returns the whole result.
    public func evaluate(_ dataset: ImageDataset, indices: [Int], logits: UnsafeMutablePointer<Float>? = nil, batch: Int? = nil) throws -> Evaluation {
        beforeEvaluation?()
        try dataParallel.averageRunningStatistics(net)
        let mine = logits == nil ? Array(indices[group.share(of: indices.count)]) : indices
        let local = try Trainer.evaluate(net, dataset, indices: mine, mean: mean, std: std, batch: batch ?? config.batch, logits: logits)
        guard group.size > 1, logits == nil else { return local }
        let total = try group.sum([Double(local.correct), local.loss * Double(local.count)])
        let n = max(indices.count, 1)
        return Evaluation(accuracy: 100 * total[0] / Double(n), correct: Int(total[0]), loss: total[1] / Double(n), count: indices.count)
    }

    /// Eval-mode accuracy and mean loss of `net`; `folded`: on the deployed network (every BN
    /// folded into its convolution, `ResNet.inferFolded`), as `lth4sa eval` does; training's
    /// validation keeps the eval-mode layers (no second set of inference buffers while training).
    public static func evaluate(_ net: ResNet, _ dataset: ImageDataset, indices: [Int], mean: [Float], std: [Float], batch: Int,
                                logits: UnsafeMutablePointer<Float>? = nil, folded: Bool = false) throws -> Evaluation {
        if folded { net.foldBatchNorms() }
        let loader = BatchLoader(dataset: dataset, indices: indices, batchSize: batch, shuffle: false, augmentation: .none,
                                 mean: mean, std: std, seed: 0, epoch: 0)
        let ce = SoftmaxCrossEntropy()
        var correct = 0, lossSum = 0.0, offset = 0
        while let b = loader.next() {
            let out = try folded ? net.inferFolded(b.images) : net.forward(b.images, training: false)
            let r = ce(out, b.labels)
            correct += r.correct
            lossSum += r.loss * Double(b.labels.count)
            if let logits { (logits + offset * net.classes).update(from: out.data, count: out.count) }
            offset += b.labels.count
        }
        let n = max(indices.count, 1)
        return Evaluation(accuracy: 100 * Double(correct) / Double(n), correct: correct, loss: lossSum / Double(n), count: indices.count)
    }
}
