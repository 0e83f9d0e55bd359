import Experiments
import Foundation
import Models
import NN
import PluginHost
import Tensor
import Training
import XCTest

/// The supernet strategies of `--supernet-sampling`: which passes each step makes, and that the
/// trainer sums their gradients and distils exactly as stated.
final class SupernetSamplingTests: XCTestCase {
    /// A trainer of a Full-SE ResNet-8 supernet on a small synthetic set, without a run directory.
    func supernetTrainer(_ sampling: SupernetSampling) throws -> (Trainer, Supernet) {
        var c = RunConfig()
        c.model = "resnet-basic-8"
        c.data = "synthetic-context:200"
        c.valPerClass = 2
        c.batch = 8
        c.sam = PipelineTests.plugin("SE")
        c.samOptions = ["reduction=4"]
        c.keepProb = 0.5
        c.supernetSampling = sampling == .bernoulli ? nil : sampling
        let trainer = try Trainer(config: c, runDirectory: nil, attach: SAMAttachment.attach)
        // non-zero SE weights, so that schemes differ in their outputs and gradients
        var rng = RNG(seed: 11)
        for (name, p) in trainer.net.namedParameters() where name.contains(".se.") { rng.fillNormal(p.value, std: 0.5); p.touch() }
        return (trainer, try SupernetTraining.sampleSchemes(trainer))
    }

    func batch(_ trainer: Trainer) -> (images: Tensor, labels: [Int32]) {
        let x = Tensor([trainer.config.batch, 32, 32, 3])
        var rng = RNG(seed: 3)
        rng.fillNormal(x, std: 1)
        return (x, (0..<trainer.config.batch).map { Int32($0 % trainer.source.train.classes) })
    }

    func gradients(_ trainer: Trainer) -> [String: [Float]] {
        Dictionary(uniqueKeysWithValues: trainer.net.namedParameters().map { ($0.0, Array(UnsafeBufferPointer(start: $0.1.grad.data, count: $0.1.grad.count))) })
    }

    /// Strict fairness: in any window of steps every block's SAM is on in exactly half of the
    /// passes (d and 1 - d in each step); the sandwich trains Full-SA, the original and d; in-place
    /// distillation teaches d with Full-SA; all strategies draw the same d from the same state.
    func testEachStrategyMakesTheStatedPasses() throws {
        let (_, supernet) = try supernetTrainer(.bernoulli)
        let stages = supernet.net.spec.blocksPerStage, L = supernet.attentions.count
        var rng = RNG(seed: 7)
        var on = [Int](repeating: 0, count: L), passes = 0
        for _ in 0..<50 {
            let step = supernet.passes(.fair, keepProbability: 0.5, rng: &rng)
            XCTAssertEqual(step.count, 2)
            XCTAssertEqual(step[1].scheme.bits, step[0].scheme.bits.map { !$0 }, "complementary schemes in one step")
            XCTAssertTrue(step.allSatisfy { $0.teacher == nil })
            for pass in step { for (l, bit) in pass.scheme.bits.enumerated() where bit { on[l] += 1 }; passes += 1 }
        }
        XCTAssertEqual(on, [Int](repeating: passes / 2, count: L), "every block on in exactly half of the passes")

        for p in [0.3, 0.5] {
            var a = RNG(seed: 9), b = RNG(seed: 9), c = RNG(seed: 9), d = RNG(seed: 9)
            let bernoulli = supernet.passes(.bernoulli, keepProbability: p, rng: &a)
            let sandwich = supernet.passes(.sandwich, keepProbability: p, rng: &b)
            let distill = supernet.passes(.distill, keepProbability: p, rng: &c)
            let fair = supernet.passes(.fair, keepProbability: p, rng: &d)
            XCTAssertEqual(bernoulli.count, 1)
            XCTAssertEqual(sandwich.map(\.scheme), [.all(true, stageSizes: stages), .all(false, stageSizes: stages), bernoulli[0].scheme])
            XCTAssertEqual(distill.map(\.scheme), [.all(true, stageSizes: stages), bernoulli[0].scheme])
            XCTAssertEqual(distill.map(\.teacher), [nil, 0], "Full-SA on the labels teaches d")
            XCTAssertEqual(fair[0].scheme, bernoulli[0].scheme)
            // a few-shot split fixes the leading bits and samples the rest like Bernoulli
            var e = RNG(seed: 9)
            let fewshot = supernet.passes(.fewshot, keepProbability: p, split: [false, true], rng: &e)
            XCTAssertEqual(fewshot.map(\.scheme.bits), [[false, true] + bernoulli[0].scheme.bits.dropFirst(2)])
            for s in SupernetSampling.allCases {
                var r = RNG(seed: 9)
                XCTAssertEqual(supernet.passes(s, keepProbability: p, rng: &r).count, s.passesPerStep, "\(s)")
            }
        }
    }

    /// The few-shot splits cover every scheme exactly once.
    func testFewShotSplitsPartitionTheSchemes() {
        XCTAssertEqual(SupernetSet.splits(bits: 2), [[false, false], [false, true], [true, false], [true, true]])
        XCTAssertEqual(SupernetSet.splits(bits: 1), [[false], [true]])
        XCTAssertEqual(Set(SupernetSet.splits(bits: 3)).count, 8)
    }

    /// The sandwich step's gradient is the sum of the three schemes' gradients computed in
    /// separate passes (float32 sums in another order: relative tolerance 1e-4 of the largest).
    func testSandwichGradientIsTheSumOfSeparatePasses() throws {
        let (trainer, supernet) = try supernetTrainer(.sandwich)
        let stages = supernet.net.spec.blocksPerStage
        let (x, labels) = batch(trainer)
        let d = try Scheme(parsing: "101", stageSizes: stages)
        let schemes = [Scheme.all(true, stageSizes: stages), .all(false, stageSizes: stages), d]
        var separate: [String: [Float]] = [:]
        for s in schemes {
            _ = try trainer.accumulateGradients(x, labels: labels, passes: [TrainingPass(select: { supernet.apply(s) })])
            for (name, g) in gradients(trainer) { separate[name] = zip(separate[name] ?? [Float](repeating: 0, count: g.count), g).map(+) }
        }
        let figures = try trainer.accumulateGradients(x, labels: labels, passes: schemes.map { s in TrainingPass(select: { supernet.apply(s) }) })
        XCTAssertEqual(figures.count, Double(3 * labels.count), "figures over images x passes")
        let summed = gradients(trainer)
        var largest: Float = 0, worst: Float = 0
        for (name, g) in summed {
            let want = try XCTUnwrap(separate[name])
            for (a, b) in zip(g, want) { largest = max(largest, abs(b)); worst = max(worst, abs(a - b)) }
        }
        XCTAssertGreaterThan(largest, 0)
        XCTAssertLessThan(worst, 1e-4 * largest, "sandwich gradient = sum of the three passes")
    }

    /// In-place distillation: the student's loss is the cross-entropy against the teacher's
    /// softmax, dlogits = (softmax(student) - softmax(teacher)) / N, checked against a hand
    /// computation in double precision and against finite differences of the loss.
    func testDistillationLossAgainstHandComputation() throws {
        let n = 3, k = 4
        let student = Tensor([n, k]), teacherLogits = Tensor([n, k]), targets = Tensor([n, k])
        var rng = RNG(seed: 2)
        rng.fillNormal(student, std: 2)
        rng.fillNormal(teacherLogits, std: 2)
        SoftTargetCrossEntropy.softmax(teacherLogits, into: targets)
        let out = SoftTargetCrossEntropy()(student, targets: targets)
        func softmax(_ t: Tensor, _ r: Int) -> [Double] {
            let row = (0..<k).map { Double(t[r * k + $0]) }, m = row.max()!
            let e = row.map { Foundation.exp($0 - m) }, z = e.reduce(0, +)
            return e.map { $0 / z }
        }
        var loss = 0.0
        for r in 0..<n {
            let p = softmax(teacherLogits, r), q = softmax(student, r)
            XCTAssertEqual(p.reduce(0, +), 1, accuracy: 1e-6)
            for j in 0..<k {
                XCTAssertEqual(Double(targets[r * k + j]), p[j], accuracy: 1e-6)
                loss -= p[j] * Foundation.log(q[j]) / Double(n)
                XCTAssertEqual(Double(out.gradient[r * k + j]), (q[j] - p[j]) / Double(n), accuracy: 1e-6)
            }
        }
        XCTAssertEqual(out.loss, loss, accuracy: 1e-5)
        // a student equal to its teacher has zero gradient, and its loss is the teacher's entropy
        let same = SoftTargetCrossEntropy()(teacherLogits, targets: targets)
        for i in 0..<same.gradient.count { XCTAssertEqual(same.gradient[i], 0, accuracy: 1e-6) }
        // finite differences of the loss (double-sided, h = 1e-2 on float32 logits)
        for i in [0, 5, 11] {
            let h: Float = 1e-2, keep = student[i]
            student[i] = keep + h
            let up = SoftTargetCrossEntropy()(student, targets: targets).loss
            student[i] = keep - h
            let down = SoftTargetCrossEntropy()(student, targets: targets).loss
            student[i] = keep
            XCTAssertEqual((up - down) / Double(2 * h), Double(out.gradient[i]), accuracy: 2e-3)
        }
    }

    /// The distillation step: Full-SA on the labels plus d on Full-SA's predictions gives the
    /// gradients of those two separate passes summed (the teacher's targets come from the same
    /// images in the same step, with no gradient through them).
    func testDistillationStepEqualsItsTwoPasses() throws {
        let (trainer, supernet) = try supernetTrainer(.distill)
        let stages = supernet.net.spec.blocksPerStage
        let (x, labels) = batch(trainer)
        let d = try Scheme(parsing: "010", stageSizes: stages)
        // the teacher's logits, the student's soft targets
        supernet.apply(.all(true, stageSizes: stages))
        let teacher = try trainer.net.forward(x, training: true).clone()
        let targets = Tensor(teacher.shape)
        SoftTargetCrossEntropy.softmax(teacher, into: targets)
        _ = try trainer.accumulateGradients(x, labels: labels, passes: [TrainingPass(select: { supernet.apply(.all(true, stageSizes: stages)) })])
        var want = gradients(trainer)
        supernet.apply(d)
        trainer.net.zeroGrad()
        let logits = try trainer.net.forward(x, training: true)
        try trainer.net.backward(SoftTargetCrossEntropy()(logits, targets: targets).gradient)
        for (name, g) in gradients(trainer) { want[name] = zip(want[name]!, g).map(+) }
        _ = try trainer.accumulateGradients(x, labels: labels, passes: [TrainingPass(select: { supernet.apply(.all(true, stageSizes: stages)) }),
                                                                         TrainingPass(select: { supernet.apply(d) }, teacher: 0)])
        var largest: Float = 0, worst: Float = 0
        for (name, g) in gradients(trainer) {
            for (a, b) in zip(g, want[name]!) { largest = max(largest, abs(b)); worst = max(worst, abs(a - b)) }
        }
        XCTAssertGreaterThan(largest, 0)
        XCTAssertLessThan(worst, 1e-4 * largest)
    }

    /// `correlate` with several strategies: one supernet folder each (few-shot: one per split),
    /// shared stand-alone trainings, four scorings per strategy, the split-half reliability;
    /// a second run reuses everything.
    func testCorrelateComparesStrategiesOnSharedTrainings() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lth4sa-correlate-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        var recipe = Recipe.builtInDefault(sam: PipelineTests.plugin("SE"), samOptions: ["reduction=4"])
        recipe.base.model = "resnet-basic-8"
        recipe.base.data = "synthetic-context:200"
        recipe.base.valPerClass = 2
        (recipe.supernetEpochs, recipe.epochs, recipe.seeds) = (1, 1, 2)
        var settings = Correlation.Settings(recipe: recipe, samplings: [.bernoulli, .fair, .fewshot])
        (settings.schemes, settings.bnRecalibrate, settings.resamples) = (3, 1, 200)
        let result = try Correlation.run(settings, directory: dir.path, resume: false, context: ExperimentContext())
        for folder in ["supernet", "supernet-fair", "supernet-fewshot/split-00", "supernet-fewshot/split-11", "train/000", "train/000-seed1"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent(folder).path), folder)
        }
        XCTAssertEqual(result.rows.count, 5, "the original, Full-SA and 3 drawn")
        XCTAssertTrue(result.rows.allSatisfy { $0.scores.map(\.sampling) == [.bernoulli, .fair, .fewshot] && $0.standAloneTestAccuracies.count == 2 })
        XCTAssertTrue(result.rows.allSatisfy { $0.scores.allSatisfy { (0...100).contains($0.bnStatistics) && $0.bnStatisticsLoss > 0 } })
        XCTAssertEqual(result.agreements.count, 12, "4 scorings x 3 strategies")
        XCTAssertTrue(result.agreements.allSatisfy { ($0.supernetSeconds ?? 0) > 0 })
        XCTAssertNotNil(result.splitHalfTau)
        XCTAssertTrue(Correlation.table(result).contains("| fewshot | validation loss, BN recalibrated |"))
        // everything reused: no training runs again
        var lines: [String] = []
        XCTAssertThrowsError(try Correlation.run(settings, directory: dir.path, resume: false, context: ExperimentContext())) {
            XCTAssertTrue("\($0)".contains("already holds a correlate study"), "\($0)")
        }
        let again = try Correlation.run(settings, directory: dir.path, resume: true, context: ExperimentContext(progress: { if case .line(let l) = $0 { lines.append(l) } }))
        XCTAssertEqual(again.rows.map(\.standAloneTestAccuracies), result.rows.map(\.standAloneTestAccuracies))
        XCTAssertEqual(again.rows.map(\.scores), result.rows.map(\.scores), "the same supernets give the same scores")
        XCTAssertFalse(lines.contains { $0.contains("epoch 1/1") }, "\(lines)")
    }

    /// A supernet resumed with another strategy is refused, naming both.
    func testResumeWithAnotherStrategyIsRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lth4sa-sampling-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = try supernetTrainer(.fair).0.config
        c.epochs = 1
        do {  // the trainer (and its lock on the directory) ends with this scope
            let t = try Trainer(config: c, runDirectory: dir.path, attach: SAMAttachment.attach)
            try SupernetTraining.sampleSchemes(t)
            t.stopAfterSteps = 2
            XCTAssertFalse(try t.train())
        }
        c.supernetSampling = .sandwich
        XCTAssertThrowsError(try Trainer(config: c, runDirectory: dir.path, resume: true, attach: SAMAttachment.attach)) { e in
            XCTAssertTrue("\(e)".contains("fair") && "\(e)".contains("sandwich"), "\(e)")
        }
    }
}
