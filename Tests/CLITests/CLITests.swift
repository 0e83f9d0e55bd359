import Checkpoint
import Foundation
import Tensor
import XCTest

/// Helpers for end-to-end tests of the `lth4sa` executable (no tests of its own).
class CLITestCase: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("lth4sa-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// The built `lth4sa` sits next to the test bundle.
    var executable: URL {
        let bundleDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return bundleDir.appendingPathComponent("lth4sa")
    }

    struct Result { let status: Int32; let stdout: String; let stderr: String }

    /// Runs `lth4sa` (or `program`) with `args` in the test's folder (or `directory`), with this
    /// process's environment (or `environment`).
    func run(_ args: [String], program: URL? = nil, directory: URL? = nil, environment: [String: String]? = nil) throws -> Result {
        let p = Process()
        p.executableURL = program ?? executable
        p.arguments = args
        p.currentDirectoryURL = directory ?? dir
        if let environment { p.environment = environment }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    func assertFails(_ args: [String], mentioning text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try run(args)
        XCTAssertNotEqual(r.status, 0, "exit status for \(args)", file: file, line: line)
        XCTAssertTrue(r.stderr.contains(text), "stderr '\(r.stderr)' should mention '\(text)'", file: file, line: line)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "one line: \(r.stderr)", file: file, line: line)
        XCTAssertFalse(r.stderr.contains("Fatal error"), "no crash", file: file, line: line)
    }

}

/// End-to-end tests of the `lth4sa` executable: exit codes, one-line errors, files written.
final class CLITests: CLITestCase {
    func testInfoPrintsParameterCount() throws {
        let r = try run(["info", "--model", "resnet38", "--classes", "100"])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(r.stdout.contains("total parameters: 428980"), r.stdout)
        XCTAssertTrue(r.stdout.contains("layer3.3"), r.stdout)
        XCTAssertTrue(r.stdout.contains("multiply-adds per image: 60.50 M forward"), r.stdout)
    }

    /// `bench gemm` prints its rate line; bad sizes are refused with the value.
    func testBenchGEMM() throws {
        let r = try run(["bench", "gemm", "--size", "64", "--rounds", "2", "--threads", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("sgemm 64x64x64 (OpenBLAS), 1 threads: median"), r.stdout)
        XCTAssertTrue(r.stdout.contains("GFLOP/s"), r.stdout)
        try assertFails(["bench", "gemm", "--size", "0"], mentioning: "--size must be in 1...16384, got 0")
        try assertFails(["bench", "gemm", "--rounds", "0"], mentioning: "--rounds must be at least 1, got 0")
    }

    /// `bench infer --parallelism lanes` runs each network as one lane per thread (the SE plugin
    /// declares concurrent instances); an unknown mode is refused with the choices.
    func testBenchInferInLanes() throws {
        let r = try run(["bench", "infer", "--model", "resnet-bottleneck-20", "--sam", "se", "--batch", "5", "--warmup", "1", "--rounds", "2",
                         "--threads", "2", "--parallelism", "lanes"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("2 threads, lanes (2 lanes)") && r.stdout.contains("Full-SA"), r.stdout)
        let both = try run(["bench", "infer", "--model", "resnet-bottleneck-20", "--sam", "se", "--batch", "5", "--warmup", "1", "--rounds", "2",
                            "--threads", "2", "--parallelism", "operators", "--parallelism", "lanes"])
        XCTAssertEqual(both.status, 0, both.stderr)
        XCTAssertTrue(both.stdout.contains("Full-SA (operators)") && both.stdout.contains("Full-SA (lanes)"), both.stdout)
        try assertFails(["bench", "infer", "--sam", "se", "--parallelism", "threads"], mentioning: "threads")
        try assertFails(["bench", "infer", "--sam", "se", "--parallelism", "lanes", "--unfolded"],
                        mentioning: "--parallelism lanes times the deployed networks only (eval-mode batch norms cannot run in lanes); drop --unfolded")
    }

    /// `bench train --backward fused --backward onednn` times both kinds in one process and
    /// prints each one's median and ratio; with `--profile` it is refused (one kind at a time).
    func testBenchTrainComparesBackwardKernels() throws {
        let r = try run(["bench", "train", "--model", "resnet-bottleneck-11", "--batch", "4", "--warmup", "1", "--steps", "2", "--threads", "1",
                         "--backward", "fused", "--backward", "onednn"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("fused: median step") && r.stdout.contains("onednn: median step")
                      && r.stdout.contains("x the fused step's speed"), r.stdout)
        try assertFails(["bench", "train", "--model", "resnet-bottleneck-11", "--backward", "fused", "--backward", "onednn", "--profile"],
                        mentioning: "--profile times one kind of backward at a time; give --backward once")
        try assertFails(["bench", "train", "--backward", "cudnn"], mentioning: "cudnn")
    }

    func testBadInputGivesOneLineErrors() throws {
        try assertFails(["info", "--model", "resnet21"], mentioning: "resnet21")
        try assertFails(["train", "--lr=-0.1"], mentioning: "-0.1")
        try assertFails(["train", "--data", "cifar10:/does/not/exist", "--output", "r"], mentioning: "/does/not/exist")
        try assertFails(["train", "--bogus-option"], mentioning: "bogus")
        try assertFails(["eval", "--checkpoint", "missing.safetensors"], mentioning: "missing.safetensors")
        try Data("garbage".utf8).write(to: dir.appendingPathComponent("bad.safetensors"))
        try assertFails(["eval", "--checkpoint", "bad.safetensors"], mentioning: "bad.safetensors")
        // numbers out of range are named, negative ones too (not "Missing value")
        try assertFails(["train", "--batch", "-1"], mentioning: "got -1")
        try assertFails(["train", "--crop-padding", "-1"], mentioning: "--crop-padding must be in 0...64, got -1")
        try assertFails(["train", "--threads", "100000"], mentioning: "got 100000")
        try assertFails(["train", "--epochs", "100000000000"], mentioning: "got 100000000000")
        try assertFails(["train", "--sam", "se", "--sam-opt", "reduction=4", "--sam-opt", "reduction=8"], mentioning: "sets 'reduction' twice")
        try assertFails(["bench", "train", "--model", "resnet38", "--batch", "100000"], mentioning: "needs at least")
        try assertFails(["bench", "sam-training", "--model", "resnet20"], mentioning: "needs --sam")
        try assertFails(["bench", "sam-training", "--sam", "se", "--scheme", "101"], mentioning: "drop --scheme")
        try assertFails(["bench", "sam-training", "--sam", "se", "--rounds", "0"], mentioning: "--rounds must be at least 1, got 0")
        try assertFails(["bench", "sam-training", "--sam", "se", "--model", "resnet38", "--batch", "30000"], mentioning: "three resnet38 networks side by side")
        try assertFails(["train", "--model", "resnet-basic-99999999998"], mentioning: "beyond the supported")
        try Data("a file".utf8).write(to: dir.appendingPathComponent("afile"))
        try assertFails(["train", "--epochs", "1", "-o", "afile/run"], mentioning: "is a file, not a folder")
        // negative numbers reach the range checks; limits are named
        try assertFails(["train", "--seed", "-1"], mentioning: "a seed is a whole number in 0...")
        try assertFails(["train", "--threads", "-1"], mentioning: "got -1")
        try assertFails(["train", "--stop-after-steps", "-1"], mentioning: "--stop-after-steps must be at least 1, got -1")
        try assertFails(["train", "--bn-groups", "0"], mentioning: "--bn-groups must be at least 1")
        try assertFails(["landscape", "-o", "x", "--per-ratio", "-5"], mentioning: "got -5")
        try assertFails(["search", "-o", "x", "--bn-recalibrate", "-1"], mentioning: "got -1")
        try assertFails(["info", "--classes", "1000000000"], mentioning: "--classes must be in 2...100000")
        try assertFails(["train", "-o", ""], mentioning: "an empty run directory would write into the current folder")
        try assertFails(["train", "-o", String(repeating: "a", count: 5000)], mentioning: "paths on this system have at most")
        // a command refused after taking its run directory leaves no empty directory behind
        try assertFails(["train", "--data", "cifar10:/does/not/exist", "--output", "refused"], mentioning: "/does/not/exist")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("refused").path))
    }

    /// A fresh run over the remains of one killed before its first checkpoint starts a fresh
    /// log; a resumed run removes the temporary files of writes a kill interrupted; a folder as
    /// the logits file and a checkpoint without a run configuration are clear errors.
    func testRemainsOfKilledRunsAreCleanedUp() throws {
        let run = dir.appendingPathComponent("run")
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        try Data("{\"kind\":\"epoch\",\"epoch\":1,\"stale\":true}\n".utf8).write(to: run.appendingPathComponent("metrics.jsonl"))
        let args = ["train", "--model", "resnet-basic-8", "--data", "synthetic:200", "--batch", "32", "--val-per-class", "2", "--output", "run"]
        XCTAssertEqual(try self.run(args + ["--epochs", "1"]).status, 0)
        let log = try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        XCTAssertFalse(log.contains("stale"), log)
        XCTAssertEqual(log.components(separatedBy: "\"kind\":\"epoch\"").count, 2, "epoch 1 recorded once: \(log)")
        for leftover in [".checkpoint.safetensors.tmp-99999", ".dat.nosyncAB12"] {
            try Data("partial".utf8).write(to: run.appendingPathComponent(leftover))
        }
        let resumed = try self.run(args + ["--epochs", "2", "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        let left = try FileManager.default.contentsOfDirectory(atPath: run.path).filter { $0.contains(".tmp-") || $0.contains("nosync") }
        XCTAssertEqual(left, [])
        try assertFails(["eval", "--checkpoint", "run", "--save-logits", "run"], mentioning: "it is a folder; give a file path")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("bare"), withIntermediateDirectories: true)
        try SafeTensors.write([SafeTensors.Entry("w", Tensor([2]))], metadata: [:], to: dir.appendingPathComponent("bare/checkpoint.safetensors").path)
        try assertFails(["train", "--model", "resnet-basic-8", "--data", "synthetic:200", "--output", "bare", "--resume"],
                        mentioning: "has no run configuration in its metadata")
    }

    /// Two processes on one run directory: the second is refused with the first one's PID.
    func testSecondProcessOnARunDirectoryIsRefused() throws {
        let first = Process()
        first.executableURL = executable
        first.arguments = ["train", "--model", "resnet-basic-8", "--data", "synthetic:2000", "--epochs", "50", "--batch", "32", "--output", "run"]
        first.currentDirectoryURL = dir
        first.standardOutput = FileHandle.nullDevice
        first.standardError = FileHandle.nullDevice
        try first.run()
        defer { if first.isRunning { first.terminate(); first.waitUntilExit() } }
        let lock = dir.appendingPathComponent("run/.lock").path
        var waited = 0
        while (try? String(contentsOfFile: lock, encoding: .utf8))?.contains("\(first.processIdentifier)") != true && waited < 600 {
            usleep(100_000)  // until the first process holds the lock (not a timing assertion)
            waited += 1
        }
        try assertFails(["train", "--model", "resnet-basic-8", "--data", "synthetic:2000", "--epochs", "1", "--output", "run"],
                        mentioning: "in use by process \(first.processIdentifier)")
    }

    func testTrainThenEvalWithLogits() throws {
        let t = try run(["train", "--model", "resnet-basic-8", "--data", "synthetic:200", "--epochs", "1", "--batch", "32",
                         "--val-per-class", "2", "--output", "run", "--threads", "1"])
        XCTAssertEqual(t.status, 0, t.stderr)
        for f in ["config.json", "metrics.jsonl", "checkpoint.safetensors", "checkpoint.optim.safetensors", "summary.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("run/\(f)").path), f)
        }
        let metrics = try String(contentsOf: dir.appendingPathComponent("run/metrics.jsonl"), encoding: .utf8)
        XCTAssertTrue(metrics.contains("\"kind\":\"epoch\""))
        let e = try run(["eval", "--checkpoint", "run", "--split", "test", "--save-logits", "logits.npy"])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertTrue(e.stdout.contains("accuracy"), e.stdout)
        let npy = try Data(contentsOf: dir.appendingPathComponent("logits.npy"))
        let header = String(decoding: npy.prefix(128), as: UTF8.self)
        XCTAssertTrue(header.contains("'shape': (40, 10)"), header)
        // a second train into the same directory must not clobber it
        try assertFails(["train", "--model", "resnet-basic-8", "--data", "synthetic:200", "--output", "run"], mentioning: "--resume")
    }
}
