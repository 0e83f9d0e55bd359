import Checkpoint
import Experiments
import Foundation
import Models
import Tensor
import Training
import XCTest

/// A new study built from the runner: the original and Full-SA, 2 seeds each, in one table.
final class StudyTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("lth4sa-study-\(UUID().uuidString)")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// The whole study: a recipe, two phases, two calls.
    func originalVersusFullSA(_ recipe: Recipe, resume: Bool, progress: @escaping ProgressHandler = { _ in }) throws -> [MeasuredNetwork] {
        let study = try Study("baseline", settings: recipe, settingsFile: "study.json", recipe: recipe, directory: dir.path, resume: resume,
                              phases: ["retrain", "measure"], context: ExperimentContext(progress: progress))
        let networks: [(String, NetworkRole, Scheme)] = [("original", .original, .all(false, stageSizes: study.stageSizes)),
                                                         ("Full-SA", .fullSA, .all(true, stageSizes: study.stageSizes))]
        study.phase("retrain", study.trainingText(networks.count))
        let trained = try study.train(networks.map(\.2))
        study.phase("measure", Study.measuringText)
        return try study.measure(networks.map { .init(label: $0.0, role: $0.1, scheme: $0.2, trained: trained[$0.2]!) }, margin: 0.5)
    }

    func testANewStudyInAFewLines() throws {
        var recipe = Recipe.builtInDefault(sam: PipelineTests.plugin("SE"), samOptions: ["reduction=4"])
        recipe.base.model = "resnet-basic-8"
        recipe.base.data = "synthetic:200"
        recipe.base.valPerClass = 2
        (recipe.epochs, recipe.seeds) = (1, 2)
        var events: [ProgressEvent] = []
        let rows = try originalVersusFullSA(recipe, resume: false) { events.append($0) }

        XCTAssertEqual(rows.map(\.role), [.original, .fullSA])
        XCTAssertEqual(rows.map(\.testAccuracies.count), [2, 2], "two seeds each")
        XCTAssertGreaterThan(rows[1].parameters, rows[0].parameters, "Full-SA carries the SE parameters")
        XCTAssertEqual(rows[0].inferenceIncrement.value, 0, accuracy: 1e-12, "dT of the original against itself")
        let phases = events.compactMap { e -> String? in if case .phase(let n, let total, let text) = e { return "\(n)/\(total) \(text)" } else { return nil } }
        XCTAssertEqual(phases.count, 2)
        XCTAssertTrue(phases[0].hasPrefix("1/2 training 2 networks x 2 seeds"), phases[0])
        XCTAssertTrue(phases[1].hasPrefix("2/2 measuring"), phases[1])
        // folders named by scheme, one per seed; the settings file and the study's log
        for folder in ["train/000", "train/000-seed1", "train/111", "train/111-seed1"] {
            XCTAssertNotNil(AtomicFile.readJSON(TrainingSummary.self, from: dir.appendingPathComponent(folder).appendingPathComponent(TrainingSummary.fileName)), folder)
        }
        XCTAssertEqual(AtomicFile.readJSON(Recipe.self, from: dir.appendingPathComponent("study.json")), recipe)
        let log = try String(contentsOf: dir.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        XCTAssertEqual(log.split(separator: "\n").filter { $0.contains("\"phase\":\"train\"") }.count, 4, log)

        // the resume rule: a directory holding the study is continued only when asked
        XCTAssertThrowsError(try originalVersusFullSA(recipe, resume: false)) {
            XCTAssertTrue("\($0)".contains("already holds a baseline study; continue it with `resume`"), "\($0)")
        }
        var lines: [String] = []
        let again = try originalVersusFullSA(recipe, resume: true) { if case .line(let l) = $0 { lines.append(l) } }
        XCTAssertEqual(again.map(\.testAccuracies), rows.map(\.testAccuracies), "every training reused")
        XCTAssertEqual(lines.filter { $0.contains("done before") }.count, 4, "\(lines)")

        // a stopped training continues where it stopped: remove one seed's summary (its checkpoint stays)
        try FileManager.default.removeItem(at: dir.appendingPathComponent("train/111-seed1/\(TrainingSummary.fileName)"))
        lines = []
        let resumed = try originalVersusFullSA(recipe, resume: true) { if case .line(let l) = $0 { lines.append(l) } }
        XCTAssertEqual(lines.filter { $0.contains("done before") }.count, 3, "\(lines)")
        XCTAssertEqual(resumed[1].testAccuracies, rows[1].testAccuracies, "the finished checkpoint evaluates as before")
    }
}
