import Checkpoint
import Foundation
import Models
import Search
import Tensor
import Training

/// The trained supernet(s) of a study: one supernet, or one per split of a few-shot supernet
/// (`SupernetSampling.fewshot`), each scheme scored by the supernet of its split.
public struct SupernetSet {
    /// Every supernet with the leading bits it fixes (empty: the only supernet, all schemes).
    public let parts: [(split: [Bool], supernet: TrainedSupernet)]
    /// Wall time of the supernets' training, summed (their last sessions', when resumed); nil
    /// when a part's summary is missing.
    public let seconds: Double?

    /// The supernet holding Full-SA (the split of all ones, or the only one).
    public var fullSA: TrainedSupernet { parts.first { $0.split.allSatisfy { $0 } }!.supernet }

    /// The splits of a few-shot supernet over `bits` leading blocks: 00, 01, 10, 11 for 2.
    public static func splits(bits: Int) -> [[Bool]] {
        (0..<(1 << bits)).map { v in (0..<bits).map { v >> (bits - 1 - $0) & 1 == 1 } }
    }

    /// Trains (or resumes, or reuses) the supernet(s) of `recipe` in `root`/`recipe.supernetFolder`
    /// (few-shot: `split-<bits>` folders inside it, one after the other).
    public static func train(_ recipe: Recipe, root: URL, context: ExperimentContext,
                             howToContinue: String = "run the same command again to continue",
                             attach: @escaping AttachHook = SAMAttachment.attach) throws -> SupernetSet {
        let folder = root.child(recipe.supernetFolder)
        guard recipe.supernetSampling == .fewshot else {
            let supernet = try SupernetTraining.train(recipe.supernet, directory: folder.path, context: context, howToContinue: howToContinue, attach: attach)
            return SupernetSet(parts: [([], supernet)], seconds: AtomicFile.readJSON(TrainingSummary.self, from: folder.child(TrainingSummary.fileName))?.seconds)
        }
        var parts: [(split: [Bool], supernet: TrainedSupernet)] = []
        var seconds: Double? = 0
        for split in splits(bits: Supernet.fewShotBits) {
            let name = split.map { $0 ? "1" : "0" }.joined()
            var config = recipe.supernet
            config.supernetSplit = name
            context.progress(.line("few-shot supernet \(parts.count + 1)/\(1 << Supernet.fewShotBits): leading blocks fixed to \(name)"))
            let dir = folder.child("split-\(name)")
            parts.append((split, try SupernetTraining.train(config, directory: dir.path, context: context, howToContinue: howToContinue, attach: attach)))
            let s = AtomicFile.readJSON(TrainingSummary.self, from: dir.child(TrainingSummary.fileName))?.seconds
            seconds = s.flatMap { t in seconds.map { $0 + t } }
        }
        return SupernetSet(parts: parts, seconds: seconds)
    }

    /// Validation accuracies and mean cross-entropies of `schemes`, each through the supernet
    /// of its split (with `bnRecalibrate` mini-batches of BN recalibration per scheme when > 0).
    public func scores(_ schemes: [Scheme], bnRecalibrate: Int = 0) throws -> (accuracies: [Double], losses: [Double]) {
        var accuracies = [Double](repeating: .nan, count: schemes.count), losses = accuracies
        for part in parts {
            let mine = schemes.indices.filter { schemes[$0].bits.starts(with: part.split) }
            guard !mine.isEmpty else { continue }
            let evaluator = try SchemeSearch.makeEvaluator(part.supernet, bnRecalibrate: bnRecalibrate)
            let chosen = mine.map { schemes[$0] }
            for (i, (a, l)) in zip(mine, zip(try evaluator.accuracies(chosen), try evaluator.losses(chosen))) { (accuracies[i], losses[i]) = (a, l) }
        }
        return (accuracies, losses)
    }
}
