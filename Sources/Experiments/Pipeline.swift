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

        /// Throws naming the first setting out of range.
        public func validate() throws {
            try recipe.validate()
            try SettingCheck.require([("candidates", candidates, 1), ("searchSteps", search.steps, 1), ("bnRecalibrate", search.bnRecalibrate, 0)])
            try search.reward.validate()
            try SettingCheck.margin(margin)
            guard recipe.supernetSampling != .fewshot else {
                throw LTHError("`supernetSampling` fewshot is measured by `correlate` only; searches run on one supernet (choose bernoulli, sandwich, fair or distill)")
            }
        }
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
        public let scheme: Scheme
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
        var best: NetworkRow? = nil
        for r in rows where r.role.isCandidate && (best == nil || (r.validationAccuracy ?? -1) > (best!.validationAccuracy ?? -1)) { best = r }
        return best ?? rows.first { $0.role == .fullSA }!
    }

    /// Where a pipeline run goes when no directory is given:
    /// `runs/pipeline-<model>-<SAM id>-<searcher id>-s<seed>` (ids from the descriptors).
    public static func defaultDirectory(_ settings: Settings) throws -> String {
        let stages = try ModelSpec(settings.recipe.base.model).blocksPerStage
        let searcherId = try SchemeSearch.check(settings.search.searcher, options: settings.search.options, stageSizes: stages)
        return try Study.defaultDirectory("pipeline", recipe: settings.recipe, extra: searcherId)
    }

    /// The phases of a pipeline run.
    static let phases = ["supernet", "search", "retrain", "measure"]

    /// Runs (or continues, with `resume`) the pipeline in `directory`.
    public static func run(_ settings: Settings, directory: String, resume: Bool, context: ExperimentContext) throws -> Result {
        try settings.validate()
        let stages = try ModelSpec(settings.recipe.base.model).blocksPerStage
        let searcherId = try SchemeSearch.check(settings.search.searcher, options: settings.search.options, stageSizes: stages)  // before any training
        let study = try Study("pipeline", settings: settings, settingsFile: Settings.fileName, recipe: settings.recipe, directory: directory, resume: resume,
                              phases: phases, context: context)
        let base = settings.recipe.base, samId = study.sam.id

        study.phase("supernet", "supernet: \(base.model) + \(samId) (\(base.attach)), \(settings.recipe.supernetEpochs) epochs, \(settings.recipe.supernetSampling) sampling, keep-prob \(settings.recipe.keepProb)")
        var clock = Date()
        let supernet = try study.supernet()
        let supernetSeconds = Date().timeIntervalSince(clock)
        study.log?.write(PhaseRecord(phase: "supernet", seconds: supernetSeconds))

        study.phase("search", "search: \(searcherId), \(settings.search.steps) steps on \(supernet.split.validation.count) validation images")
        clock = Date()
        let loop = try SchemeSearch.run(supernet: supernet, directory: directory, settings: settings.search, resume: resume, context: context,
                                        howToContinue: study.howToContinue)
        let searchSeconds = Date().timeIntervalSince(clock)
        study.log?.write(PhaseRecord(phase: "search", seconds: searchSeconds))
        let original = Scheme.all(false, stageSizes: stages), full = Scheme.all(true, stageSizes: stages)
        var all: [(label: String, role: NetworkRole, scheme: Scheme)] = [("original", .original, original), ("Full-SA", .fullSA, full)]
        for b in loop.best where all.count - 2 < settings.candidates && !all.contains(where: { $0.scheme == b.scheme }) {
            let rank = all.count - 1
            all.append(("candidate \(rank)", .candidate(searcher: searcherId, searchSeed: settings.search.seed ?? base.seed, rank: rank), b.scheme))
        }

        study.phase("retrain", study.trainingText(all.count))
        for (i, n) in all.enumerated() { try adoptLegacyFolder("train/\(i)-\(n.label.replacingOccurrences(of: " ", with: "-"))", of: n.scheme, in: study) }
        let trained = try study.train(all.map(\.scheme)) { s in all.first { $0.scheme == s }.map { "\($0.label) \(s)" } ?? s.description }

        study.phase("measure", Study.measuringText)
        let entries = all.map { NetworkMeasurement.Entry(label: $0.label, role: $0.role, scheme: $0.scheme, trained: trained[$0.scheme]!) }
        let rows = try study.measure(entries, margin: settings.margin, classes: supernet.source.train.classes)
        let chosen = chooseTicket(rows)
        let ticket = Ticket(scheme: chosen.scheme, bits: chosen.scheme.bits.map { $0 ? 1 : 0 }, stages: stages,
                            sam: .init(id: samId, path: base.sam ?? "", options: base.samOptions, attach: base.attach), model: base.model, data: base.data,
                            selectedBy: "validation accuracy", measured: chosen, fullSa: rows.first { $0.role == .fullSA }!,
                            original: rows.first { $0.role == .original }!)
        let allTrained = trained.values.flatMap { $0 }
        let trainSeconds = allTrained.map(\.seconds).reduce(0, +) / Double(max(allTrained.count, 1))
        let result = Result(rows: rows, ticket: ticket, supernetSeconds: supernetSeconds, searchSeconds: searchSeconds, trainSecondsMean: trainSeconds,
                            searchToTrain: searchSeconds / max(trainSeconds, 1e-9))
        try study.writeJSON(ticket, to: Ticket.fileName)
        try study.writeJSON(result, to: Result.fileName)
        try study.write(report(result, settings: settings, samId: samId, searcherId: searcherId), to: "report.md")
        study.log?.write(SummaryRecord(searchToTrain: result.searchToTrain, supernetSeconds: supernetSeconds, searchSeconds: searchSeconds,
                                       trainSecondsMean: trainSeconds))
        return result
    }

    /// Run directories of earlier versions kept the pipeline's networks in `train/<i>-<label>`
    /// (and `-seed<k>`): renamed to the study's `train/<bits>` so that they are reused.
    static func adoptLegacyFolder(_ legacy: String, of scheme: Scheme, in study: Study) throws {
        guard study.context.writes else { return }
        let fm = FileManager.default
        for k in 0..<max(study.recipe.seeds, 1) {
            let suffix = k == 0 ? "" : "-seed\(k)"
            let old = study.directory.child(legacy + suffix), new = study.directory.child("train/" + scheme.bitString + suffix)
            if old.exists && !new.exists { try fm.moveItem(at: old, to: new) }
        }
    }

    /// `metrics.jsonl` of a pipeline: a phase's wall time.
    struct PhaseRecord: MetricsRecord {
        let kind = "phase"
        let phase: String
        let seconds: Double
    }

    /// `metrics.jsonl` of a pipeline: the wall times at the end.
    struct SummaryRecord: MetricsRecord {
        let kind = "summary"
        let searchToTrain: Double, supernetSeconds: Double, searchSeconds: Double, trainSecondsMean: Double
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
