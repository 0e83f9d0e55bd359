import Checkpoint
import Foundation
import Models
import PluginHost
import Search
import Tensor
import Training

/// The paper's recipes for `Pipeline.Settings`.
public enum PipelinePreset: String, CaseIterable, Codable, Sendable {
    case cifar100ResNet164 = "cifar100-resnet164"
    case cifar100ResNet38 = "cifar100-resnet38"
}

/// The whole method: pre-train the supernet, search, train the top candidates, Full-SA and
/// the original network from scratch, measure parameters and dT, write the report and the
/// ticket. Every phase is resumable and reused when finished.
///
/// Run directory: `pipeline.json` (settings), `metrics.jsonl` (phase times), `supernet/`,
/// `search.jsonl`, `search-state.json`, `train/<i>-<label>/`, `report.md`, `ticket.json`,
/// `result.json`.
public enum Pipeline {
    /// Everything that defines a pipeline run (`pipeline.json`).
    public struct Settings: Codable, Equatable, Sendable {
        /// Base configuration, epochs, keep-prob and seeds of the retrainings.
        public var recipe: Recipe
        /// Searched schemes retrained from scratch.
        public var candidates = 3
        public var search: SchemeSearch.Settings
        /// Non-inferiority margin of the verdict, accuracy points (`TicketRule`).
        public var margin = TicketRule.defaultMargin

        /// The default recipe (`Recipe.builtInDefault`: the synthetic-context benchmark, 100
        /// search steps, the best candidate; 5m29s measured on 2 cores with the fair supernet) or a preset's (the
        /// paper's: 3 candidates, 1 seed).
        public init(preset: PipelinePreset? = nil, sam: String = "se", samOptions: [String] = [], attach: AttachMode = .fullSA,
                    searcher: String = "ean", seed: UInt64 = 0) {
            var steps = 100
            switch preset {
            case nil:
                recipe = .builtInDefault(sam: sam, samOptions: samOptions, attach: attach, seed: seed)
                candidates = 1
            case .some(let preset):
                var c = SAMAttachment.baseConfig(sam: sam, samOptions: samOptions, attach: attach, seed: seed, batch: 128)
                c.lr = 0.1; c.weightDecay = 1e-4; c.valPerClass = 100
                let epochs: (supernet: Int, network: Int)
                switch preset {
                case .cifar100ResNet164: c.model = "resnet164"; c.schedule = .step(milestones: [81, 122]); epochs = (150, 164)
                case .cifar100ResNet38: c.model = "resnet38"; c.schedule = .cosine; c.cropPadding = 0; epochs = (150, 100)
                }
                steps = 1000
                recipe = Recipe(base: c)
                (recipe.supernetEpochs, recipe.epochs, recipe.seeds) = (epochs.supernet, epochs.network, 1)
            }
            search = SchemeSearch.Settings(searcher: SAMAttachment.recorded(searcher), steps: steps)
            if preset == nil { (search.bnRecalibrate, search.score) = (Recipe.builtInScoring.bnRecalibrate, Recipe.builtInScoring.score) }
        }

        public static let fileName = "pipeline.json"
    }

    /// One network of the table (`MeasuredNetwork`).
    public typealias NetworkRow = MeasuredNetwork

    /// `ticket.json`: the searched scheme chosen by validation accuracy (never by test accuracy).
    public struct Ticket: Codable, Equatable, Sendable {
        /// The SAM the ticket carries: id (from its descriptor), path, options and attach mode.
        public struct SAM: Codable, Equatable, Sendable {
            public let id: String
            public let path: String
            public let options: [String]
            public let attach: AttachMode
        }
        public let scheme: String
        public let bits: [Int]
        public let stages: [Int]
        public let sam: SAM
        public let model: String
        public let data: String
        /// How the ticket was chosen among the candidates.
        public let selectedBy: String
        public let measured: NetworkRow
        public let fullSa: NetworkRow
        public let original: NetworkRow

        public static let fileName = "ticket.json"
    }

    /// `result.json`: the table and the wall times.
    public struct Result: Codable, Equatable, Sendable {
        public let rows: [NetworkRow]
        public let ticket: Ticket
        public let supernetSeconds: Double
        public let searchSeconds: Double
        public let trainSecondsMean: Double
        /// Search time over the mean training time of one network.
        public let searchToTrain: Double
        public static let fileName = "result.json"
    }

    /// The candidate that becomes the ticket: the best by mean validation accuracy (ties: the
    /// earlier, i.e. the better-rewarded one); Full-SA when the search kept no other scheme.
    /// Test accuracy never decides.
    public static func chooseTicket(_ rows: [NetworkRow]) -> NetworkRow {
        let candidates = rows.filter { $0.verdict != nil }
        var best: NetworkRow? = nil
        for r in candidates where best == nil || (r.validationAccuracy ?? -1) > (best!.validationAccuracy ?? -1) { best = r }
        return best ?? rows.first { $0.label == "Full-SA" }!
    }

    /// Runs (or continues, with `resume`) the pipeline in `directory`.
    public static func run(_ settings: Settings, directory: String, resume: Bool, context: ExperimentContext) throws -> Result {
        let root = URL(fileURLWithPath: directory)
        // decided by rank 0 for all: another rank looking later could see the file rank 0 writes below
        if try context.group.leaderOnly({ root.child(Settings.fileName).exists }) && !resume {
            throw LTHError("'\(directory)' already holds a pipeline run; pass --resume to continue it or choose another --output")
        }
        let base = settings.recipe.base
        let stages = try ModelSpec(base.model).blocksPerStage
        // both plugins and their options are checked before any training starts
        let samId = try SAMPlugin(base.sam ?? "se", settings: base.samOptions).id
        let searcherId = try SchemeSearch.check(settings.search.searcher, options: settings.search.options, stageSizes: stages)
        guard settings.recipe.supernetSampling != .fewshot else {
            throw LTHError("--supernet-sampling fewshot is measured by `correlate` only; searches run on one supernet (choose bernoulli, sandwich, fair or distill)")
        }
        let lock = try context.lock(root)  // one writer per run directory, held to the end
        defer { withExtendedLifetime(lock) {} }
        var phaseLog: MetricsLog? = nil
        if context.writes {
            try AtomicFile.writeJSON(settings, to: root.child(Settings.fileName))
            phaseLog = try MetricsLog(path: root.child("metrics.jsonl").path)
        }
        let again = "continue with --resume -o \(directory)"

        context.progress(.phase(number: 1, total: 4, "supernet: \(base.model) + \(samId) (\(base.attach)), \(settings.recipe.supernetEpochs) epochs, \(settings.recipe.supernetSampling) sampling, keep-prob \(settings.recipe.keepProb)"))
        var clock = Date()
        let supernetTrainer = try SupernetTraining.train(settings.recipe.supernet, directory: root.child(settings.recipe.supernetFolder).path, context: context, howToContinue: again)
        let supernetSeconds = Date().timeIntervalSince(clock)
        phaseLog?.write(["kind": "phase", "phase": "supernet", "seconds": supernetSeconds])

        context.progress(.phase(number: 2, total: 4, "search: \(searcherId), \(settings.search.steps) steps on \(supernetTrainer.split.validation.count) validation images"))
        clock = Date()
        let loop = try SchemeSearch.run(trainer: supernetTrainer, directory: directory, settings: settings.search, resume: resume, context: context,
                                        howToContinue: again)
        let searchSeconds = Date().timeIntervalSince(clock)
        phaseLog?.write(["kind": "phase", "phase": "search", "seconds": searchSeconds])
        let original = Scheme.all(false, stageSizes: stages), full = Scheme.all(true, stageSizes: stages)
        var picked: [(String, Scheme)] = []
        for b in loop.best where picked.count < settings.candidates && !picked.contains(where: { $0.1 == b.scheme }) && b.scheme != original && b.scheme != full {
            picked.append(("candidate \(picked.count + 1)", b.scheme))
        }
        let all: [(String, Scheme)] = [("original", original), ("Full-SA", full)] + picked

        let seedsText = settings.recipe.seeds > 1 ? " x \(settings.recipe.seeds) seeds" : ""
        context.progress(.phase(number: 3, total: 4, "training \(all.count) networks\(seedsText) from scratch, \(settings.recipe.epochs) epochs each"))
        var entries: [NetworkMeasurement.Entry] = []
        for (i, (label, scheme)) in all.enumerated() {
            let c = settings.recipe.network(scheme)
            let outcomes = try NetworkTraining.trainSeeds(c, seeds: settings.recipe.seeds, directory: root.child("train/\(i)-\(label.replacingOccurrences(of: " ", with: "-"))"),
                                                          context: context, howToContinue: again) { k, outcome in
                if outcome.trainedNow {
                    phaseLog?.write(["kind": "phase", "phase": "train", "label": label, "scheme": scheme.description, "seed": Int(c.seed) + k,
                                    "seconds": outcome.summary.seconds, "test_acc": outcome.summary.testAccuracy])
                }
                context.progress(.line(NetworkTraining.line("\(label) \(scheme)" + (settings.recipe.seeds > 1 ? " seed \(Int(c.seed) + k)" : ""), outcome)))
            }
            entries.append(.init(label: label, scheme: scheme, trained: outcomes.map(\.summary), candidate: i >= 2))
        }

        context.progress(.phase(number: 4, total: 4, "measuring parameters and inference time (batch 50, \(NetworkMeasurement.timingRounds) interleaved rounds)"))
        let supernet = try Supernet(supernetTrainer.net)
        let rows = try context.group.leaderOnly {  // timed alone; the other ranks wait
            try NetworkMeasurement.measure(entries, supernet: supernet, config: base, classes: supernetTrainer.source.train.classes, margin: settings.margin)
        }
        let chosen = chooseTicket(rows)
        let chosenScheme = try Scheme(parsing: chosen.scheme, stageSizes: stages)
        let ticket = Ticket(scheme: chosen.scheme, bits: chosenScheme.bits.map { $0 ? 1 : 0 }, stages: stages,
                            sam: .init(id: samId, path: base.sam ?? "", options: base.samOptions, attach: base.attach), model: base.model, data: base.data,
                            selectedBy: "validation accuracy", measured: chosen, fullSa: rows[1], original: rows[0])
        let allTrained = entries.flatMap(\.trained)
        let trainSeconds = allTrained.map(\.seconds).reduce(0, +) / Double(max(allTrained.count, 1))
        let result = Result(rows: rows, ticket: ticket, supernetSeconds: supernetSeconds, searchSeconds: searchSeconds, trainSecondsMean: trainSeconds,
                            searchToTrain: searchSeconds / max(trainSeconds, 1e-9))
        guard context.writes else { return result }
        try AtomicFile.writeJSON(ticket, to: root.child(Ticket.fileName))
        try AtomicFile.writeJSON(result, to: root.child(Result.fileName))
        try AtomicFile.write(report(result, settings: settings, samId: samId, searcherId: searcherId), to: root.child("report.md"))
        phaseLog?.write(["kind": "summary", "search_to_train": result.searchToTrain, "supernet_seconds": supernetSeconds, "search_seconds": searchSeconds,
                        "train_seconds_mean": trainSeconds])
        return result
    }

    /// The paper's table as Markdown (accuracies as mean ± sd over seeds, dT with its 95%
    /// interval, the verdict with the accuracy difference to Full-SA and its 95% interval).
    public static func table(_ result: Result) -> String {
        var table = "| network | scheme | connection ratio | test accuracy (%) | validation accuracy (%) | parameters (M) | dT (%) [95% CI] | ticket? (acc. - Full-SA [95% CI]) |\n"
        table += "|---|---|---|---|---|---|---|---|\n"
        for r in result.rows {
            table += "| \(r.label) | \(r.scheme) | \(String(format: "%.2f", r.connectionRatio)) | \(r.accuracyText) | "
                + "\(r.validationAccuracy.map { String(format: "%.2f", $0) } ?? "-") | \(String(format: "%.4f", Double(r.parameters) / 1e6)) | "
                + "\(r.incrementText) | \(r.verdictText) |\n"
        }
        return table
    }

    /// The wall-time line.
    public static func timing(_ result: Result) -> String {
        String(format: "supernet %@, search %@, training %@ per network on average; search / training of one network = %.2f",
               formatDuration(result.supernetSeconds), formatDuration(result.searchSeconds), formatDuration(result.trainSecondsMean), result.searchToTrain)
    }

    static func report(_ result: Result, settings: Settings, samId: String, searcherId: String) -> String {
        """
        # lth4sa: \(settings.recipe.base.model) + \(samId) searched by \(searcherId)

        Data \(settings.recipe.base.data); supernet \(settings.recipe.supernetEpochs) epochs (\(settings.recipe.supernetSampling) sampling, keep-prob \(settings.recipe.keepProb)); \(settings.search.steps) search steps scored by validation \(settings.search.score ?? .accuracy) \(settings.search.bnRecalibrate > 0 ? "with BN statistics recalibrated on \(settings.search.bnRecalibrate) batches" : "with the supernet's BN statistics"); \(settings.recipe.epochs) epochs per network trained from scratch; seed \(settings.recipe.base.seed).
        Test accuracy: mean ± sd over \(settings.recipe.seeds) seed(s). dT = relative inference-time increment over the original network (the deployed network: batch norms folded into the convolutions; forward, batch 50, median of \(NetworkMeasurement.timingRounds) interleaved rounds; 95% bootstrap interval over rounds).
        Ticket? (the rule of `TicketRule`, \(TicketRule.ruleText(margin: settings.margin, seeds: settings.recipe.seeds))).
        The ticket in ticket.json is the candidate with the best validation accuracy (\(result.ticket.scheme)); test accuracy is reported, never chosen on.

        \(table(result))
        Wall time: \(timing(result)).

        """
    }
}
