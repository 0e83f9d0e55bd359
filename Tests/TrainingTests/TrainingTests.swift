import Checkpoint
import Data
import Foundation
import Models
import NN
import Tensor
import Training
import XCTest

final class TrainingTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("lth4sa-train-\(UUID().uuidString)")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// One writer per run directory: a second trainer on it is refused with the holder's PID,
    /// and the lock goes with the holder.
    func testRunDirectoryIsLockedWhileATrainerLives() throws {
        var first: Trainer? = try Trainer(config: smallConfig(epochs: 1), runDirectory: dir.path)
        XCTAssertNotNil(first)
        XCTAssertThrowsError(try Trainer(config: smallConfig(epochs: 1), runDirectory: dir.path)) { error in
            XCTAssertTrue("\(error)".contains("in use by process \(getpid())"), "\(error)")
        }
        // the holder is named from the kernel's lock table, not from a stale PID in the file
        try Data("99999\n".utf8).write(to: dir.appendingPathComponent(".lock"))
        XCTAssertThrowsError(try Trainer(config: smallConfig(epochs: 1), runDirectory: dir.path)) { error in
            XCTAssertTrue("\(error)".contains("in use by process \(getpid())"), "\(error)")
        }
        first = nil
        XCTAssertNoThrow(try Trainer(config: smallConfig(epochs: 1), runDirectory: dir.path))
    }

    func smallConfig(epochs: Int = 2) -> RunConfig {
        var c = RunConfig()
        c.model = "resnet-basic-8"
        c.data = "synthetic:600"
        c.epochs = epochs
        c.batch = 32
        c.lr = 0.05
        c.valPerClass = 10
        return c
    }

    /// A small ResNet on the synthetic data must beat chance (10%) by a wide margin.
    func testLearnsSyntheticData() throws {
        var c = RunConfig()
        c.model = "resnet-basic-8"
        c.data = "synthetic:3000"
        c.epochs = 4
        c.batch = 64
        c.valPerClass = 20
        let t = try Trainer(config: c, runDirectory: nil)
        try t.train()
        let test = try t.evaluate(t.source.test, indices: Array(0..<t.source.test.count))
        print("learning test: test accuracy \(test.accuracy)%")
        XCTAssertGreaterThan(test.accuracy, 40, "test accuracy \(test.accuracy)% after 4 epochs (chance is 10%)")
    }

    func testCheckpointRoundTripGivesIdenticalOutputs() throws {
        let t = try Trainer(config: smallConfig(epochs: 1), runDirectory: dir.path)
        try t.train()
        let x = Tensor([3, 32, 32, 3])
        var rng = RNG(seed: 1)
        rng.fillNormal(x, std: 1)
        let before = try t.net.forward(x, training: false).clone()
        let other = ResNet(try ModelSpec("resnet-basic-8"), classes: 10, seed: 99)
        XCTAssertGreaterThan(try other.forward(x, training: false).maxAbsDiff(before), 1e-3)
        try ModelCheckpoint.load(other, from: t.checkpointPath!)
        XCTAssertEqual(try other.forward(x, training: false).maxAbsDiff(before), 0)
        let meta = try ModelCheckpoint.metadata(t.checkpointPath!)
        XCTAssertEqual(meta["model"], "resnet-basic-8")
        XCTAssertEqual(meta["epoch"], "1")
        XCTAssertNotNil(meta["config"])
    }

    func testCheckpointOfAnotherModelIsRejected() throws {
        let t = try Trainer(config: smallConfig(epochs: 1), runDirectory: dir.path)
        try t.train()
        let other = ResNet(try ModelSpec("resnet20"), classes: 10, seed: 0)
        XCTAssertThrowsError(try ModelCheckpoint.load(other, from: t.checkpointPath!)) {
            XCTAssertTrue("\($0)".contains("resnet-basic-8"), "\($0)")
        }
        let moreClasses = ResNet(try ModelSpec("resnet-basic-8"), classes: 7, seed: 0)
        XCTAssertThrowsError(try ModelCheckpoint.load(moreClasses, from: t.checkpointPath!))
    }

    /// Loading is strict: resnet20's tensors under metadata that names resnet-basic-14 (whose
    /// tensors are a subset of resnet20's) are refused for the tensors left over.
    func testCheckpointWithTensorsLeftOverIsRefused() throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("relabelled.safetensors").path
        let resnet20 = ResNet(try ModelSpec("resnet20"), classes: 10, seed: 0)
        let entries = resnet20.stateEntries().map { SafeTensors.Entry($0.0, $0.1, integer: $0.2) }
        try SafeTensors.write(entries, metadata: [ModelCheckpoint.modelKey: "resnet-basic-14", ModelCheckpoint.classesKey: "10"], to: path)
        let small = ResNet(try ModelSpec("resnet-basic-14"), classes: 10, seed: 0)
        let before = small.stateEntries().map { $0.1.clone() }
        XCTAssertThrowsError(try ModelCheckpoint.load(small, from: path)) {
            XCTAssertTrue("\($0)".contains("tensor(s) that resnet-basic-14") && "\($0)".contains("'layer1.2."), "\($0)")
        }
        for (t, b) in zip(small.stateEntries().map { $0.1 }, before) { XCTAssertEqual(t.maxAbsDiff(b), 0, "unchanged after the refusal") }
    }

    func testCorruptCheckpointsGiveClearErrors() throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("bad.safetensors").path
        let net = ResNet(try ModelSpec("resnet-basic-8"), classes: 10, seed: 0)
        try ModelCheckpoint.save(net, to: path, metadata: [:])
        let good = try Data(contentsOf: URL(fileURLWithPath: path))
        for (bytes, text) in [(good.prefix(good.count - 100), "truncated"), (Data("xx".utf8), "truncated"),
                              (Data(repeating: 0xFF, count: 64), "not a safetensors")] {
            try bytes.write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try ModelCheckpoint.load(net, from: path)) { XCTAssertTrue("\($0)".contains(text), "\($0)") }
        }
        XCTAssertThrowsError(try ModelCheckpoint.load(net, from: dir.appendingPathComponent("none").path)) {
            XCTAssertTrue("\($0)".contains("missing"))
        }
    }

    func testSafetensorsLayoutIsReadableByOthers() throws {
        // header length, JSON with dtype/shape/offsets, raw little-endian data
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("t.safetensors").path
        try SafeTensors.write([.init("a", Tensor([2], [1.5, -2])), .init("n", Tensor([], [7]), integer: true)], metadata: ["k": "v"], to: path)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let n = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<8 + n)) as! [String: Any]
        XCTAssertEqual((header["a"] as! [String: Any])["dtype"] as? String, "F32")
        XCTAssertEqual((header["n"] as! [String: Any])["dtype"] as? String, "I64")
        XCTAssertEqual((header["__metadata__"] as! [String: String])["k"], "v")
        let (tensors, _) = try SafeTensors.read(path)
        XCTAssertEqual(tensors["a"]?.values, [1.5, -2])
        XCTAssertEqual(tensors["n"]?.values, [7])
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains("tmp") }
        XCTAssertEqual(leftovers, [], "no temporary file left behind")
    }

    /// Stopping mid-epoch and resuming gives exactly the weights of an uninterrupted run.
    func testResumeMatchesUninterruptedRun() throws {
        let straight = try Trainer(config: smallConfig(), runDirectory: dir.appendingPathComponent("a").path)
        try straight.train()

        let path = dir.appendingPathComponent("b").path
        do {  // the interrupted run; leaving the scope ends it (and its lock), as a process exit would
            let first = try Trainer(config: smallConfig(), runDirectory: path)
            first.stopAfterSteps = 20  // an interruption in the middle of epoch 2 (500 images / 32 = 15 steps per epoch)
            XCTAssertFalse(try first.train())
        }
        XCTAssertThrowsError(try Trainer(config: smallConfig(), runDirectory: path)) { XCTAssertTrue("\($0)".contains("`resume`")) }
        do {
            let resumed = try Trainer(config: smallConfig(), runDirectory: path, resume: true)
            XCTAssertEqual(resumed.epoch, 1)
            XCTAssertEqual(resumed.stepInEpoch, 5)
            XCTAssertTrue(try resumed.train())
            for ((name, a), (_, b)) in zip(straight.net.namedParameters(), resumed.net.namedParameters()) {
                XCTAssertLessThan(a.value.maxAbsDiff(b.value), 1e-5, name)
            }
        }
        // the resumed log ends where the checkpoint did: every step logged once, as uninterrupted
        func logged(_ run: String) throws -> [String] {
            try String(contentsOfFile: dir.appendingPathComponent("\(run)/metrics.jsonl").path, encoding: .utf8).split(separator: "\n")
                .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                .filter { ["step", "epoch"].contains($0["kind"] as? String) }
                .map { "\($0["kind"]!) \($0["epoch"]!) \($0["step"] ?? "-")" }
        }
        XCTAssertEqual(try logged("b"), try logged("a"))
        var other = smallConfig()
        other.model = "resnet20"
        XCTAssertThrowsError(try Trainer(config: other, runDirectory: path, resume: true)) { XCTAssertTrue("\($0)".contains("resnet-basic-8")) }
    }

    /// A kill between the renames of a checkpoint set (the optimizer of the new pair in place,
    /// its model still pending) or while the new pair is written (a partial `.next`): `--resume`
    /// finds the newest complete pair and ends where an uninterrupted run does.
    func testKilledCheckpointCommitsResumeFromTheNewestCompletePair() throws {
        let straight = try Trainer(config: smallConfig(), runDirectory: dir.appendingPathComponent("a").path)
        try straight.train()
        let run = dir.appendingPathComponent("b")
        let model = run.appendingPathComponent("checkpoint.safetensors"), saved = dir.appendingPathComponent("older-model")
        do {
            let first = try Trainer(config: smallConfig(), runDirectory: run.path)
            first.stopAfterSteps = 10
            XCTAssertFalse(try first.train())
        }
        try FileManager.default.copyItem(at: model, to: saved)  // the pair at epoch 0, step 10
        do {
            let second = try Trainer(config: smallConfig(), runDirectory: run.path, resume: true)
            second.stopAfterSteps = 10  // through the end of epoch 1 into epoch 2: the pair at epoch 1, step 5
            XCTAssertFalse(try second.train())
        }
        // the crash: the new optimizer renamed into place, the new model still pending
        try FileManager.default.moveItem(at: model, to: run.appendingPathComponent("checkpoint.safetensors.next"))
        try FileManager.default.copyItem(at: saved, to: model)
        // and a partial file of an even later commit that never finished
        try Data("truncated".utf8).write(to: run.appendingPathComponent("checkpoint.optim.safetensors.next"))
        XCTAssertThrowsError(try ModelCheckpoint.loadOptimizer(SGD([], lr: 0.1), from: run.appendingPathComponent("checkpoint.optim.safetensors.next").path))
        do {
            let resumed = try Trainer(config: smallConfig(), runDirectory: run.path, resume: true)
            XCTAssertEqual(resumed.epoch, 1)
            XCTAssertEqual(resumed.stepInEpoch, 5)
            XCTAssertTrue(try resumed.train())
            for ((name, a), (_, b)) in zip(straight.net.namedParameters(), resumed.net.namedParameters()) {
                XCTAssertLessThan(a.value.maxAbsDiff(b.value), 1e-5, name)
            }
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: run.path).filter { $0.hasSuffix(".next") }
        XCTAssertEqual(left, [], "no pending file survives recovery")
    }

    /// A checkpoint holding NaN (a diverged run) is refused by every loader, naming the tensor.
    func testCheckpointWithNonFiniteValuesIsRefused() throws {
        let net = ResNet(try ModelSpec("resnet-basic-8"), classes: 10, seed: 1)
        net.fc.weight.value[3] = .nan
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("nan.safetensors").path
        try ModelCheckpoint.save(net, to: path, metadata: [:])
        XCTAssertThrowsError(try ModelCheckpoint.load(ResNet(try ModelSpec("resnet-basic-8"), classes: 10, seed: 2), from: path)) {
            XCTAssertTrue("\($0)".contains("tensor 'fc.weight' holds nan"), "\($0)")
        }
    }

    func testBadConfigurationsAreRejected() throws {
        var c = smallConfig()
        c.lr = -0.1
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("-0.1")) }
        c = smallConfig()
        // the schedule is typed: a bad one is refused where it is read (flag or config.json), named
        let linear = try c.json.replacingOccurrences(of: "\"schedule\":\"cosine\"", with: "\"schedule\":\"linear\"")
        XCTAssertTrue(linear.contains("linear"))
        XCTAssertThrowsError(try RunConfig.decode(linear)) { XCTAssertTrue("\($0)".contains("linear"), "\($0)") }
        let attach = try c.json.replacingOccurrences(of: "\"attach\":\"full-sa\"", with: "\"attach\":\"everywhere\"")
        XCTAssertThrowsError(try RunConfig.decode(attach)) { XCTAssertTrue("\($0)".contains("everywhere") && "\($0)".contains("attach"), "\($0)") }
        XCTAssertEqual(try RunConfig.decode(try c.json), c, "typed fields round-trip through their text")
        c = smallConfig()
        c.model = "vgg16"
        XCTAssertThrowsError(try Trainer(config: c, runDirectory: nil)) { XCTAssertTrue("\($0)".contains("vgg16")) }
    }
}
