import ArgumentParser
import Foundation
import Models
import PluginHost
import Search
import Tensor
import Training

/// `lth4sa [run] --sam S --searcher X`: the whole method. Pre-train the supernet, search,
/// train the top candidates, Full-SA and the original network from scratch, measure and report.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The whole pipeline: supernet, search, retraining of the found tickets, report (the default command).")

    @Option(help: "SAM plugin (path or id).") var sam: String = "se"
    @Option(name: .customLong("sam-opt"), help: "SAM option key=value (repeatable).") var samOptions: [String] = []
    @Option(help: "full-sa or full-share supernet (full-share searches Share-EAN schemes).") var attach: String = "full-sa"
    @Option(help: "Searcher plugin (path or id).") var searcher: String = "ean"
    @Option(name: .customLong("searcher-opt"), help: "Searcher option key=value (repeatable).") var searcherOptions: [String] = []
    @Option(help: "Paper recipes: cifar100-resnet164 or cifar100-resnet38 (give --data cifar100:PATH).") var preset: String?
    @Option(help: "Model (default resnet20; presets set theirs).") var model: String?
    @Option(help: "Data (default synthetic:4000; presets need cifar100:PATH).") var data: String?
    @Option(help: "Supernet epochs.") var supernetEpochs: Int?
    @Option(help: "Epochs of every network trained from scratch.") var epochs: Int?
    @Option(help: "Search steps.") var searchSteps: Int?
    @Option(help: "Retaining probability of the supernet's SAMs per mini-batch.") var keepProb: Double = 0.5
    @Option(help: "Searched schemes retrained from scratch.") var candidates: Int = 3
    @Option(help: "Validation images per class (the search's proxy data).") var valPerClass: Int?
    @Option(help: "Batch size.") var batch: Int = 128
    @OptionGroup var reward: RewardOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(name: .shortAndLong, help: "Run directory (default runs/pipeline-<model>-<sam>-<searcher>-s<seed>).") var output: String?
    @Flag(help: "Continue the run in --output where it stopped.") var resume = false

    func validate() throws {
        if let p = preset, !["cifar100-resnet164", "cifar100-resnet38"].contains(p) {
            throw ValidationError("--preset '\(p)' unknown; expected cifar100-resnet164 or cifar100-resnet38")
        }
        if preset != nil, !(data ?? "").hasPrefix("cifar100:") { throw ValidationError("--preset \(preset!) needs --data cifar100:PATH") }
        guard AttachMode(rawValue: attach) != nil else { throw ValidationError("--attach must be full-sa or full-share, got '\(attach)'") }
        if let s = searchSteps, s < 1 { throw ValidationError("--search-steps must be at least 1, got \(s)") }
        if candidates < 1 { throw ValidationError("--candidates must be at least 1, got \(candidates)") }
        guard keepProb > 0 && keepProb <= 1 else { throw ValidationError("--keep-prob must be in (0, 1], got \(keepProb)") }
    }

    /// The resolved recipe: (base config, supernet epochs, candidate epochs, search steps).
    func recipe() -> (RunConfig, Int, Int, Int) {
        var c = Stages.baseConfig(sam: sam, samOptions: samOptions, attach: attach, seed: runtime.seed, batch: batch)
        var (sEpochs, tEpochs, steps) = (4, 4, 100)
        switch preset {
        case "cifar100-resnet164":
            c.model = "resnet164"; c.lr = 0.1; c.weightDecay = 1e-4; c.schedule = "step:81,122"; c.valPerClass = 100
            (sEpochs, tEpochs, steps) = (150, 164, 1000)
        case "cifar100-resnet38":
            c.model = "resnet38"; c.lr = 0.1; c.weightDecay = 1e-4; c.schedule = "cosine"; c.cropPadding = 0; c.valPerClass = 100
            (sEpochs, tEpochs, steps) = (150, 100, 1000)
        default:
            c.model = "resnet20"; c.data = "synthetic:4000"; c.valPerClass = 50
        }
        if let m = model { c.model = m }
        if let d = data { c.data = d }
        if let v = valPerClass { c.valPerClass = v }
        return (c, supernetEpochs ?? sEpochs, epochs ?? tEpochs, searchSteps ?? steps)
    }

    func run() throws {
        runtime.apply()
        let (base, sEpochs, tEpochs, steps) = recipe()
        let samId = URL(fileURLWithPath: sam).deletingPathExtension().lastPathComponent.replacingOccurrences(of: "lib", with: "").lowercased()
        let searcherId = URL(fileURLWithPath: searcher).deletingPathExtension().lastPathComponent.replacingOccurrences(of: "lib", with: "").lowercased()
        let dir = output ?? "runs/pipeline-\(base.model)-\(samId)-\(searcherId)-s\(runtime.seed)"
        let root = URL(fileURLWithPath: dir)
        if FileManager.default.fileExists(atPath: root.appendingPathComponent("pipeline.json").path) && !resume {
            throw LTHError("'\(dir)' already holds a pipeline run; pass --resume to continue it or choose another --output")
        }
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let weights = try reward.weights()
        // check both plugins and their options before any training starts
        _ = try SAMPlugin(sam, settings: samOptions)
        try Stages.checkSearcher(searcher, settings: searcherOptions, stageSizes: try ModelSpec(base.model).blocksPerStage)
        let pipelineConfig: [String: Any] = ["base": base.json, "supernet_epochs": sEpochs, "epochs": tEpochs, "search_steps": steps,
                                             "keep_prob": keepProb, "candidates": candidates, "searcher": searcher,
                                             "searcher_options": searcherOptions, "reward": ["accuracy": weights.accuracy, "sparsity": weights.sparsity,
                                                                                               "curiosity": weights.curiosity, "shift": weights.shift]]
        try JSONSerialization.data(withJSONObject: pipelineConfig, options: [.prettyPrinted, .sortedKeys]).write(to: root.appendingPathComponent("pipeline.json"))
        let stageLog = try MetricsLog(path: root.appendingPathComponent("metrics.jsonl").path)

        print("== 1/4 supernet: \(base.model) + \(samId) (\(attach)), \(sEpochs) epochs, keep-prob \(keepProb)")
        var supernetConfig = base
        supernetConfig.epochs = sEpochs
        supernetConfig.keepProb = keepProb
        var clock = Date()
        let supernetTrainer = try Stages.supernet(supernetConfig, directory: root.appendingPathComponent("supernet").path, progress: true)
        let supernetSeconds = Date().timeIntervalSince(clock)
        stageLog.write(["kind": "stage", "stage": "supernet", "seconds": supernetSeconds])

        print("== 2/4 search: \(searcherId), \(steps) steps on \(supernetTrainer.split.validation.count) validation images")
        clock = Date()
        let loop = try SearchStage.run(trainer: supernetTrainer, directory: dir, searcher: searcher, searcherOptions: searcherOptions,
                                       steps: steps, weights: weights, resume: resume)
        let searchSeconds = Date().timeIntervalSince(clock)
        stageLog.write(["kind": "stage", "stage": "search", "seconds": searchSeconds])
        let stages = supernetTrainer.net.spec.blocksPerStage
        let classes = supernetTrainer.source.train.classes
        var picked: [(String, Scheme)] = []
        let reference: [Scheme] = [.all(false, stageSizes: stages), .all(true, stageSizes: stages)]  // in the table anyway
        for b in loop.best where picked.count < candidates && !picked.contains(where: { $0.1 == b.scheme }) && !reference.contains(b.scheme) {
            picked.append(("candidate \(picked.count + 1)", b.scheme))
        }
        let all: [(String, Scheme)] = [("original", .all(false, stageSizes: stages)), ("Full-SA", .all(true, stageSizes: stages))] + picked

        print("== 3/4 training \(all.count) networks from scratch, \(tEpochs) epochs each")
        var results: [(label: String, scheme: Scheme, accuracy: Double, seconds: Double)] = []
        for (i, (label, scheme)) in all.enumerated() {
            var c = base
            c.epochs = tEpochs
            c.scheme = scheme.description
            let sub = root.appendingPathComponent("train/\(i)-\(label.replacingOccurrences(of: " ", with: "-"))")
            let (acc, seconds, fresh) = try Stages.trainFromScratch(c, directory: sub)
            results.append((label, scheme, acc, seconds))
            if fresh {
                stageLog.write(["kind": "stage", "stage": "train", "label": label, "scheme": scheme.description, "seconds": seconds, "test_acc": acc])
            }
            print(Stages.trainedLine("\(label) \(scheme)", accuracy: acc, seconds: seconds, fresh: fresh))
        }

        print("== 4/4 measuring parameters and inference time (batch 50)")
        let supernet = try Supernet(supernetTrainer.net)
        let params = results.map { supernet.parameterCount($0.scheme) }
        let times = try Stages.inferenceTimes(base, classes: classes, schemes: results.map { $0.scheme })
        let full = 1
        var rows: [[String: Any]] = []
        var table = "| network | scheme | connection ratio | test accuracy (%) | parameters (M) | dT (%) | ticket? |\n|---|---|---|---|---|---|---|\n"
        for (i, r) in results.enumerated() {
            let dT = (times[i] - times[0]) / times[0] * 100
            let ticket = i >= 2 && r.accuracy >= results[full].accuracy && params[i] < params[full] && times[i] < times[full]
            table += String(format: "| %@ | %@ | %.2f | %.2f | %.4f | %+.1f | %@ |\n", r.label, r.scheme.description, r.scheme.connectionRatio,
                            r.accuracy, Double(params[i]) / 1e6, dT, i < 2 ? "-" : (ticket ? "yes" : "no"))
            rows.append(["label": r.label, "scheme": r.scheme.description, "ratio": r.scheme.connectionRatio, "test_acc": r.accuracy,
                         "parameters": params[i], "inference_ms": times[i], "dT_percent": dT, "ticket": ticket])
        }
        let trainSeconds = results.map { $0.seconds }.reduce(0, +) / Double(max(results.count, 1))
        let ratio = searchSeconds / max(trainSeconds, 1e-9)
        let timing = String(format: "supernet %@, search %@, training %@ per network on average; search / training of one network = %.2f",
                            formatDuration(supernetSeconds), formatDuration(searchSeconds), formatDuration(trainSeconds), ratio)
        let candidatesOnly = Array(rows.dropFirst(2))
        // the best searched scheme by test accuracy (Full-SA when the search kept only the reference schemes)
        let bestRow = candidatesOnly.max { ($0["test_acc"] as! Double) < ($1["test_acc"] as! Double) } ?? rows[full]
        let ticketJSON: [String: Any] = ["scheme": bestRow["scheme"]!, "bits": (bestRow["scheme"] as! String).filter { $0 != "-" }.map { $0 == "1" ? 1 : 0 },
                                         "stages": stages, "sam": ["id": samId, "path": sam, "options": samOptions, "attach": attach],
                                         "model": base.model, "data": base.data, "measured": bestRow, "full_sa": rows[full], "original": rows[0]]
        try JSONSerialization.data(withJSONObject: ticketJSON, options: [.prettyPrinted, .sortedKeys]).write(to: root.appendingPathComponent("ticket.json"))
        let report = """
        # lth4sa: \(base.model) + \(samId) searched by \(searcherId)

        Data \(base.data); supernet \(sEpochs) epochs (keep-prob \(keepProb)); \(steps) search steps; \(tEpochs) epochs per network trained from scratch; seed \(runtime.seed).
        dT = relative inference-time increment over the original network (forward, batch 50, median, interleaved).
        A searched scheme is a ticket when it keeps Full-SA's accuracy with fewer parameters and less time.

        \(table)
        Wall time: \(timing).

        """
        try report.write(to: root.appendingPathComponent("report.md"), atomically: true, encoding: .utf8)
        stageLog.write(["kind": "summary", "search_to_train": ratio, "supernet_seconds": supernetSeconds, "search_seconds": searchSeconds,
                        "train_seconds_mean": trainSeconds])
        print("\n" + table + "\n" + timing + "\nreport: \(root.appendingPathComponent("report.md").path), ticket: \(root.appendingPathComponent("ticket.json").path)")
    }
}
