import Checkpoint
import Experiments
import Foundation
import Models
import PluginHost
import Search
import Tensor
import TestSupport
import Training
import XCTest

/// The method driven through the library API (no process spawned): the whole pipeline on a
/// tiny setting, the ticket rule, stop requests and plugin failures reported as errors.
final class PipelineTests: XCTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func plugin(_ name: String) -> String { repository.appendingPathComponent("plugins/lib\(name).so").path }
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("lth4sa-experiments-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func tinySettings() -> Pipeline.Settings {
        var s = Pipeline.Settings(sam: Self.plugin("SE"), samOptions: ["reduction=4"], searcher: Self.plugin("EAN"), seed: 0)
        s.recipe.base.model = "resnet-basic-8"
        s.recipe.base.data = "synthetic:300"
        s.recipe.base.valPerClass = 5
        s.recipe.supernetEpochs = 1
        s.recipe.epochs = 1
        s.search.steps = 12
        s.candidates = 2
        s.recipe.seeds = 2
        s.search.reward.latency = 1
        return s
    }

    /// The built-in default searches with the fair supernet and the recalibrated likelihood;
    /// the paper's presets keep Bernoulli sampling and accuracy with the supernet's statistics.
    func testDefaultsFollowTheMeasurements() {
        let d = Pipeline.Settings()
        XCTAssertEqual(d.recipe.supernetSampling, .fair)
        XCTAssertEqual(d.search.score, .likelihood)
        XCTAssertEqual(d.search.bnRecalibrate, 10)
        XCTAssertEqual(d.recipe.supernetFolder, "supernet-fair")
        let paper = Pipeline.Settings(preset: .cifar100ResNet164)
        XCTAssertEqual(paper.recipe.supernetSampling, .bernoulli)
        XCTAssertNil(paper.search.score)
        XCTAssertEqual(paper.search.bnRecalibrate, 0)
        XCTAssertEqual(paper.recipe.supernetFolder, "supernet")
    }

    /// A searcher's picks over search seeds against Random's, paired by search seed and
    /// retraining seed. Each EAN pick finds the gate in 2 of 3 trainings, each Random pick in
    /// 3 of 3: the search seeds' means agree exactly (variance 0), so the interval comes from
    /// the training seeds: v = var([0, 0, -51]) / 3 = 289, mean -17 ± 4.303 sqrt(289 / 3).
    func testSearchSeedTablePairsWithRandom() {
        let ean: [(scheme: Scheme, accuracies: [Double])] = [(scheme("10-11-00"), [100, 100, 49]), (scheme("10-10-01"), [100, 49, 100]), (scheme("11-00-10"), [49, 100, 100])]
        let random = [[Double]](repeating: [100, 100, 100], count: 3)
        let s = Comparison.searcherSummary("ean", picks: ean, random: random, best: 100, testImages: 800)
        XCTAssertEqual(s.pickAccuracies, [83, 83, 83])
        XCTAssertEqual(s.meanAccuracy, 83, accuracy: 1e-9)
        XCTAssertEqual(s.accuracySpread, 0, accuracy: 1e-9)
        XCTAssertEqual(s.regret, 17, accuracy: 1e-9)
        XCTAssertEqual(s.picks.map(\.description), ["10-11-00", "10-10-01", "11-00-10"])
        let versus = try! XCTUnwrap(s.versusRandom)
        XCTAssertEqual(versus.method, .twoLevel)
        XCTAssertEqual(versus.difference.value, -17, accuracy: 1e-9)
        XCTAssertEqual(versus.difference.high - versus.difference.value, 4.303 * (289.0 / 3).squareRoot(), accuracy: 1e-9)
        XCTAssertEqual(TicketRule.accuracyVerdict(versus, margin: 0), .withinNoise, "6 of 9 against 9 of 9 trainings: not beyond noise")
        // search seeds that disagree: their own variance (833.33) exceeds the training seeds' (0)
        let apart = Comparison.searcherSummary("ean", picks: [(scheme("1"), [100, 100, 100]), (scheme("0"), [50, 50, 50]), (scheme("11"), [100, 100, 100])],
                                               random: [[Double]](repeating: [50, 50, 50], count: 3), best: 100, testImages: 800)
        let d = try! XCTUnwrap(apart.versusRandom)
        XCTAssertEqual(d.difference.value, 100.0 / 3, accuracy: 1e-9)
        XCTAssertEqual(d.difference.high - d.difference.value, 4.303 * (Statistics.variance([50, 0, 50]) / 3).squareRoot(), accuracy: 1e-9)
        // one search seed: the retraining seeds' paired t (2 degrees of freedom)
        let one = Comparison.searcherSummary("ean", picks: [(scheme("1"), [100, 60, 80])], random: [[90, 50, 80]], best: 100, testImages: 800)
        let o = try! XCTUnwrap(one.versusRandom)
        XCTAssertEqual(o.difference.value, 20.0 / 3, accuracy: 1e-9)
        XCTAssertEqual(o.difference.high - o.difference.value, 4.303 * (Statistics.variance([10, 10, 0]) / 3).squareRoot(), accuracy: 1e-9)
        XCTAssertNil(Comparison.searcherSummary("random", picks: [(scheme("1"), [50])], random: nil, best: 100, testImages: 800).versusRandom)
    }

    func testWholePipelineThroughTheLibrary() throws {
        var events: [ProgressEvent] = []
        let context = ExperimentContext(progress: { events.append($0) })
        let run = dir.appendingPathComponent("p").path
        let result = try Pipeline.run(tinySettings(), directory: run, resume: false, context: context)
        XCTAssertEqual(Array(result.rows.prefix(2).map(\.label)), ["original", "Full-SA"])
        XCTAssertEqual(result.rows[0].scheme.description, "0-0-0")
        XCTAssertEqual(result.rows[1].scheme.description, "1-1-1")
        XCTAssertEqual(result.rows.map(\.role).prefix(2), [.original, .fullSA])
        XCTAssertTrue(result.rows.dropFirst(2).allSatisfy(\.role.isCandidate))
        XCTAssertGreaterThanOrEqual(result.rows.count, 3, "at least one searched candidate")
        XCTAssertEqual(result.rows[0].inferenceIncrement.value, 0, accuracy: 1e-12, "dT of the original against itself")
        XCTAssertNil(result.rows[0].verdict)
        XCTAssertNil(result.rows[1].verdict)
        for row in result.rows.dropFirst(2) {
            XCTAssertNotNil(row.verdict, row.label)
            XCTAssertLessThanOrEqual(row.inferenceIncrement.low, row.inferenceIncrement.value)
            XCTAssertGreaterThanOrEqual(row.inferenceIncrement.high, row.inferenceIncrement.value)
            XCTAssertEqual(row.testAccuracies.count, 2, "two seeds")
            XCTAssertEqual(row.accuracyDifference?.method, .paired, "the same two seeds for every network: paired differences")
            XCTAssertTrue(row.verdictText.hasSuffix(", paired t)"), row.verdictText)
            XCTAssertEqual(row.testAccuracy, (row.testAccuracies[0] + row.testAccuracies[1]) / 2, accuracy: 1e-9)
        }
        XCTAssertEqual(result.ticket.measured, Pipeline.chooseTicket(result.rows))
        XCTAssertEqual(result.ticket.selectedBy, "validation accuracy")
        XCTAssertEqual(result.ticket.bits.count, 3)
        XCTAssertTrue(FileManager.default.fileExists(atPath: URL(fileURLWithPath: run).appendingPathComponent("train/111-seed1/summary.json").path),
                      "the second seed of Full-SA")
        let phases = events.compactMap { e -> Int? in if case .phase(let n, 4, _) = e { return n } else { return nil } }
        XCTAssertEqual(phases, [1, 2, 3, 4])
        XCTAssertTrue(events.contains { if case .status = $0 { return true } else { return false } }, "live status reported")
        // every result file in its one schema, readable back
        let root = URL(fileURLWithPath: run)
        XCTAssertEqual(AtomicFile.readJSON(Pipeline.Result.self, from: root.appendingPathComponent(Pipeline.Result.fileName)), result)
        XCTAssertEqual(AtomicFile.readJSON(Pipeline.Ticket.self, from: root.appendingPathComponent(Pipeline.Ticket.fileName)), result.ticket)
        XCTAssertEqual(AtomicFile.readJSON(Pipeline.Settings.self, from: root.appendingPathComponent(Pipeline.Settings.fileName)), tinySettings())
        let costs = try XCTUnwrap(AtomicFile.readJSON(BlockCosts.Table.self, from: root.appendingPathComponent(BlockCosts.Table.fileName)))
        XCTAssertEqual(costs.milliseconds.count, 3)
        XCTAssertTrue(costs.milliseconds.allSatisfy { $0 >= 0 && $0.isFinite } && costs.milliseconds.reduce(0, +) > 0, "\(costs)")
        let log = try String(contentsOf: root.appendingPathComponent("search.jsonl"), encoding: .utf8)
        XCTAssertTrue(log.contains("\"relativeCost\""), "the latency term's relative cost is logged")
        let supernetSummary = try XCTUnwrap(AtomicFile.readJSON(TrainingSummary.self, from: root.appendingPathComponent("supernet-fair/summary.json")), "the default recipe's fair supernet")
        XCTAssertEqual(supernetSummary.epochs, 1)
        // a second run without --resume is refused; with it, every phase is reused
        XCTAssertThrowsError(try Pipeline.run(tinySettings(), directory: run, resume: false, context: ExperimentContext())) {
            XCTAssertTrue("\($0)".contains("`resume`"), "\($0)")
        }
        var again: [ProgressEvent] = []
        let second = try Pipeline.run(tinySettings(), directory: run, resume: true, context: ExperimentContext(progress: { again.append($0) }))
        XCTAssertEqual(second.rows.map(\.testAccuracy), result.rows.map(\.testAccuracy))
        let trained = again.compactMap { e -> String? in if case .line(let t) = e, t.contains("test accuracy") { return t } else { return nil } }
        XCTAssertEqual(trained.count, 2 * result.rows.count)
        XCTAssertTrue(trained.allSatisfy { $0.contains("done before") }, "\(trained)")
    }

    /// The ticket is the candidate with the best validation accuracy, whatever the test set says.
    func testTicketIsChosenOnValidationNeverOnTest() {
        func row(_ label: String, test: Double, validation: Double?, verdict: Verdict?) -> Pipeline.NetworkRow {
            let role: NetworkRole = label == "original" ? .original : label == "Full-SA" ? .fullSA : .candidate(searcher: "ean", searchSeed: 0, rank: 1)
            return MeasuredNetwork(label: label, role: role, scheme: scheme("1"), connectionRatio: 0.5, testAccuracies: [test], validationAccuracy: validation, parameters: 1,
                            inferenceMs: 1, inferenceIncrement: Estimate(value: 0, low: 0, high: 0), verdict: verdict)
        }
        let rows = [row("original", test: 80, validation: 80, verdict: nil), row("Full-SA", test: 81, validation: 81, verdict: nil),
                    row("candidate 1", test: 90, validation: 70, verdict: .yes), row("candidate 2", test: 75, validation: 85, verdict: .no),
                    row("candidate 3", test: 95, validation: 60, verdict: .yes)]
        XCTAssertEqual(Pipeline.chooseTicket(rows).label, "candidate 2")
        XCTAssertEqual(Pipeline.chooseTicket(Array(rows.prefix(2))).label, "Full-SA", "no candidate: Full-SA")
    }

    /// The verdict: non-inferiority of the accuracy (paired over seeds, Student's t) with a
    /// margin, parameters strictly fewer, time lower beyond the bootstrap interval of the difference.
    func testTicketVerdictIsANonInferiorityTest() {
        let fastRounds = (0..<30).map { 9.0 + Double($0 % 3) * 0.01 }, sameRounds = (0..<30).map { 10.0 + Double($0 % 5) * 0.3 }
        let barelyFaster: [Double] = (0..<30).map { (r: Int) -> Double in
            let step = Double((r + 2) % 5)
            return 9.95 + step * 0.3
        }
        let full = TicketRule.Figures(accuracies: [80, 70, 90], testImages: 2000, parameters: 100, times: sameRounds)
        func candidate(_ accuracies: [Double], parameters: Int = 90, times: [Double]? = nil) -> TicketRule.Figures {
            .init(accuracies: accuracies, testImages: 2000, parameters: parameters, times: times ?? fastRounds)
        }
        // paired differences +0.2, +0.4, +0.3: mean +0.3, sd 0.1, half-width 4.303 * 0.1 / sqrt(3) = 0.248
        let tight = TicketRule.accuracyDifference(candidate([80.2, 70.4, 90.3]), fullSA: full)
        XCTAssertEqual(tight.method, .paired)
        XCTAssertEqual(tight.difference.value, 0.3, accuracy: 1e-9)
        XCTAssertEqual(tight.difference.low, 0.3 - 4.303 * 0.1 / 3.0.squareRoot(), accuracy: 1e-9)
        XCTAssertEqual(TicketRule.verdict(candidate([80.2, 70.4, 90.3]), fullSA: full), .yes,
                       "the seeds' shared 20-point spread cancels in the paired differences")
        // unpaired, the same accuracies would be noise: sd 10 per network
        XCTAssertEqual(TicketRule.accuracyVerdict(AccuracyComparison([80.2, 70.4], [80, 70, 90], testImages: 2000), margin: 0.5), .withinNoise)
        // a noisy +4 ± 12 (the finding of the issue) is within noise, never yes
        XCTAssertEqual(TicketRule.verdict(candidate([96, 62, 104]), fullSA: full), .withinNoise)
        XCTAssertEqual(TicketRule.verdict(candidate([78.9, 68.8, 88.7]), fullSA: full), .no, "consistently 1.2 points lower: beyond the 0.5 margin")
        XCTAssertEqual(TicketRule.verdict(candidate([79.7, 69.6, 89.5]), fullSA: full), .withinNoise,
                       "0.4 points lower, interval [-0.65, -0.15]: neither shown within the 0.5 margin nor beyond it")
        XCTAssertEqual(TicketRule.verdict(candidate([79.7, 69.6, 89.5]), fullSA: full, margin: 1), .yes, "a wider margin accepts it")
        XCTAssertEqual(TicketRule.verdict(candidate([79.9, 69.8, 89.7]), fullSA: full), .yes, "0.2 points lower, interval [-0.45, +0.05]: within the margin")
        XCTAssertEqual(TicketRule.verdict(candidate([85, 75, 95], parameters: 100), fullSA: full), .no, "no fewer parameters")
        XCTAssertEqual(TicketRule.verdict(candidate([85, 75, 95], times: barelyFaster), fullSA: full), .withinNoise,
                       "0.05 ms faster against a 0.3 ms spread cannot be told apart")
        XCTAssertEqual(TicketRule.verdict(candidate([85, 75, 95], times: sameRounds.map { $0 + 1 }), fullSA: full), .no, "slower beyond the interval")
        // two seeds: t = 12.71, not 2
        let two = AccuracyComparison([81, 72], [80, 70], testImages: 2000)
        XCTAssertEqual(two.difference.low, 1.5 - 12.706 * 0.5, accuracy: 1e-9, "differences +1, +2: sd 0.707, standard error 0.5")
        // one seed: the binomial error of both test accuracies, 1.96 sqrt(2 * 0.8 * 0.2 / 2000) = 2.48 points
        let one = AccuracyComparison([80], [80], testImages: 2000)
        XCTAssertEqual(one.method, .binomial)
        XCTAssertEqual(one.difference.high, 1.96 * (2 * 0.8 * 0.2 / 2000).squareRoot() * 100, accuracy: 1e-9)
        XCTAssertEqual(Statistics.studentT975(degreesOfFreedom: 1), 12.706)
        XCTAssertEqual(Statistics.studentT975(degreesOfFreedom: 40), 2.021, accuracy: 0.003)
        XCTAssertEqual(Statistics.studentT975(degreesOfFreedom: 120), 1.980, accuracy: 0.003)
        XCTAssertEqual(InferenceTiming.incrementPercent(11, original: 10), 10, accuracy: 1e-12)
        let dT = InferenceTiming.increment(fastRounds.map { $0 * 1.1 }, over: fastRounds)
        XCTAssertEqual(dT.value, 10, accuracy: 1e-9)
        XCTAssertEqual(dT.low, 10, accuracy: 1e-9, "a constant ratio has no spread")
        XCTAssertEqual(dT.high, 10, accuracy: 1e-9)
    }

    /// A stop request ends training at the next step with a checkpoint; the same call then resumes.
    func testStopRequestCheckpointsAndResumes() throws {
        var config = RunConfig()
        config.model = "resnet-basic-8"
        config.data = "synthetic:300"
        config.valPerClass = 5
        config.batch = 32
        config.epochs = 1
        let stop = StopToken()
        var steps = 0
        let context = ExperimentContext(progress: { if case .status = $0 { steps += 1; if steps == 2 { stop.request() } } }, stop: stop)
        let run = dir.appendingPathComponent("t")
        XCTAssertThrowsError(try NetworkTraining.trainFromScratch(config, directory: run, context: context)) { error in
            XCTAssertTrue(error is StoppedError, "\(error)")
        }
        let meta = try ModelCheckpoint.metadata(run.appendingPathComponent("checkpoint.safetensors").path)
        XCTAssertEqual(meta["step"], "2", "stopped after the step that asked")
        let finished = try NetworkTraining.trainFromScratch(config, directory: run, context: ExperimentContext())
        XCTAssertTrue(finished.trainedNow)
        XCTAssertEqual(finished.summary.epochs, 1)
    }

    /// Builds Tests/Fixtures/plugins/process_fails.c with `flags`.
    func failingPlugin(_ flags: [String] = []) throws -> String {
        try Fixtures.compile("Tests/Fixtures/plugins/process_fails.c", flags: flags, into: dir)
    }

    /// Finite checks (on by default): a plugin writing NaN into its attention stops the run with
    /// the plugin and the block named; the checkpoint of the last finished epoch stays loadable.
    func testFiniteChecksNameTheBlockAndKeepTheLastCheckpoint() throws {
        var config = RunConfig()
        (config.model, config.data, config.valPerClass, config.batch, config.epochs) = ("resnet-basic-8", "synthetic:300", 5, 32, 3)
        config.sam = try failingPlugin(["-DNAN_INSTEAD", "-DFAIL_AT=12"])  // 7 training + 1 validation call per epoch: NaN in epoch 2
        let run = dir.appendingPathComponent("nan")
        let trainer = try Trainer(config: config, runDirectory: run.path, attach: SAMAttachment.attach)
        XCTAssertThrowsError(try trainer.train()) {
            XCTAssertTrue("\($0)".contains("plugin failing at layer1.0 produced nan in its attention (process)"), "\($0)")
        }
        let meta = try ModelCheckpoint.metadata(run.appendingPathComponent("checkpoint.safetensors").path)
        XCTAssertEqual(meta[ModelCheckpoint.epochKey], "1", "the checkpoint of epoch 1 is kept")
        let net = ResNet(try ModelSpec("resnet-basic-8"), classes: 10, seed: 0)
        _ = try SAMAttachment.attach(config, to: net)
        XCTAssertNoThrow(try ModelCheckpoint.load(net, from: run.appendingPathComponent("checkpoint.safetensors").path), "finite, loadable")
        XCTAssertNil(net.firstNonFiniteState())
    }

    /// Every way a plugin can hand a non-finite value to training is caught by default and names
    /// the plugin: Inf in the attention, NaN in a parameter's gradient, and NaN in the input
    /// gradient (not checked on every step: found through the batch norm's gradient, then named
    /// on the replay). With the checks turned off the same NaN reaches the weights, which is
    /// what the default prevents.
    func testFiniteChecksCatchEveryPluginOutputByDefault() throws {
        var config = RunConfig()
        (config.model, config.data, config.valPerClass, config.batch, config.epochs) = ("resnet-basic-8", "synthetic:200", 5, 32, 1)
        let cases: [(flags: [String], message: String)] = [
            (["-DNAN_INSTEAD", "-DBAD_VALUE=INFINITY", "-DFAIL_AT=6"], "produced inf in its attention (process)"),
            (["-DPARAM_GRADIENT", "-DFAIL_AT=3"], "produced nan in its gradient of gain"),
            (["-DGRADIENT_INSTEAD", "-DFAIL_AT=3"], "produced nan in its input gradient (backward)"),
        ]
        for (k, c) in cases.enumerated() {
            config.sam = try failingPlugin(c.flags)
            let trainer = try Trainer(config: config, runDirectory: dir.appendingPathComponent("bad\(k)").path, attach: SAMAttachment.attach)
            XCTAssertThrowsError(try trainer.train(), "\(c.flags)") {
                XCTAssertTrue("\($0)".contains("plugin failing at layer") && "\($0)".contains(c.message), "\(c.flags): \($0)")
            }
        }
        config.sam = try failingPlugin(["-DGRADIENT_INSTEAD", "-DFAIL_AT=3"])
        config.checkFinite = false
        let unchecked = try Trainer(config: config, runDirectory: dir.appendingPathComponent("unchecked").path, attach: SAMAttachment.attach)
        _ = try? unchecked.train()
        XCTAssertNotNil(unchecked.net.firstNonFiniteState(), "without the checks the NaN reaches the weights")
    }

    /// A plugin failing in the middle of a pass is an error thrown by the network, not an exit.
    func testFailingPluginThrowsFromForward() throws {
        let library = try failingPlugin()
        let net = ResNet(try ModelSpec("resnet-basic-8"), classes: 10, seed: 0)
        try SAMAttacher.attach(try SAMPlugin(library), to: net, mode: .fullSA, scheme: .all(true, stageSizes: net.spec.blocksPerStage), seed: 0)
        let x = Tensor([2, 32, 32, 3])
        // one instance per block, each failing on its third call: the third pass fails
        XCTAssertNoThrow(try net.forward(x, training: true))
        XCTAssertNoThrow(try net.forward(x, training: false))
        XCTAssertThrowsError(try net.forward(x, training: true)) { XCTAssertTrue("\($0)".contains("deliberate failure on call 3"), "\($0)") }
        XCTAssertThrowsError(try net.forward(x, training: false), "every later pass fails again")
        let plain = ResNet(try ModelSpec("resnet-basic-8"), classes: 10, seed: 0)
        XCTAssertNoThrow(try plain.forward(x, training: false), "networks share no failure state")
    }
}

/// A scheme from its text (stages split at '-').
private func scheme(_ text: String) -> Scheme { try! Scheme(unfitted: text) }
