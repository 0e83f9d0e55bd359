import Checkpoint
import Foundation
import XCTest

/// Data-parallel training and distributed evaluation over Open MPI (`mpirun -np 2`, as root
/// and oversubscribed as CI runs them). Every comparison uses one thread per process, so both
/// sides run the same kernels on the same sub-batches.
final class MPITests: CLITestCase {
    var repository: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }
    var se: String { repository.appendingPathComponent("plugins/libSE.so").path }

    /// Options of every mpirun here: CI runs as root on 2 cores; no cross-memory-attach copies
    /// (containers without ptrace rights refuse them).
    let mpirunOptions = ["--allow-run-as-root", "--oversubscribe", "--mca", "btl_vader_single_copy_mechanism", "none"]

    /// `mpirun -np ranks lth4sa args` (Open MPI's mpirun from PATH or /usr/bin).
    func mpirun(_ ranks: Int, _ args: [String]) throws -> Result {
        try run(mpirunOptions + ["-np", String(ranks), executable.path] + args, program: try mpirunURL())
    }

    func mpirunURL() throws -> URL {
        for folder in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init) + ["/usr/bin"] {
            let url = URL(fileURLWithPath: folder).appendingPathComponent("mpirun")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        XCTFail("mpirun not found: install Open MPI (scripts/setup.sh does: openmpi-bin libopenmpi-dev)")
        throw CocoaError(.fileNoSuchFile)
    }

    /// Largest |a - b| of any parameter over the network's largest |b| (running statistics and
    /// counters compared on their own, `worstStatisticsDifference`), and
    /// the tensor where it occurs. Relative to the network's scale, not each tensor's: a BN
    /// bias gradient is a sum that cancels to ~0, so its own scale says nothing about rounding.
    func worstParameterDifference(_ a: String, _ b: String) throws -> (name: String, relative: Float) {
        let x = try SafeTensors.read(dir.appendingPathComponent(a).path).tensors
        let y = try SafeTensors.read(dir.appendingPathComponent(b).path).tensors
        XCTAssertEqual(Set(x.keys), Set(y.keys))
        let parameters = x.keys.filter { !$0.contains("running_") && !$0.contains("num_batches") }
        let scale = parameters.compactMap { y[$0]?.values.map(abs).max() }.max() ?? 1
        var worst: (String, Float) = ("", 0)
        for name in parameters {
            guard let u = x[name]?.values, let v = y[name]?.values else { continue }
            let d = zip(u, v).map { abs($0 - $1) }.max() ?? 0
            if d / scale > worst.1 { worst = (name, d / scale) }
        }
        return worst
    }

    /// Largest |a - b| / max |b| over each running statistic (the groups of one process are
    /// averaged as the ranks' are); `num_batches_tracked` must be equal.
    func worstStatisticsDifference(_ a: String, _ b: String) throws -> (name: String, relative: Float) {
        let x = try SafeTensors.read(dir.appendingPathComponent(a).path).tensors
        let y = try SafeTensors.read(dir.appendingPathComponent(b).path).tensors
        var worst: (String, Float) = ("", 0)
        for name in x.keys where name.contains("running_") || name.contains("num_batches") {
            guard let u = x[name]?.values, let v = y[name]?.values else { XCTFail("\(name) missing"); continue }
            if name.contains("num_batches") { XCTAssertEqual(u, v, name); continue }
            let d = (zip(u, v).map { abs($0 - $1) }.max() ?? 0) / max(v.map(abs).max() ?? 1, 1e-6)
            if d > worst.1 { worst = (name, d) }
        }
        return worst
    }

    /// 4 steps per epoch at a small learning rate: training from scratch amplifies rounding
    /// differences about tenfold per step at lr 0.1 (one process with 1 or 2 threads differs
    /// by 5e-3 after 12 steps), so the comparison runs few, gentle steps.
    let supernetArgs = ["supernet", "train", "--model", "resnet-basic-8", "--data", "synthetic:512", "--batch", "100", "--lr", "0.02",
                        "--val-per-class", "10", "--schedule", "constant", "--threads", "1"]

    /// Two ranks with the same seed and global batch train the same weights as one process
    /// normalising the batch in the same two groups (SE supernet: a random scheme per step,
    /// augmentation on), within 1e-5 of each tensor's largest value.
    func testTwoRanksTrainTheSameWeightsAsOneProcessWithTwoBatchNormGroups() throws {
        let two = try mpirun(2, supernetArgs + ["--sam", se, "--epochs", "2", "--output", "two"])
        XCTAssertEqual(two.status, 0, two.stderr)
        XCTAssertEqual(two.stdout.components(separatedBy: "done in").count, 2, "rank 0 alone prints: \(two.stdout)")
        let one = try run(supernetArgs + ["--sam", se, "--epochs", "2", "--bn-groups", "2", "--output", "one"])
        XCTAssertEqual(one.status, 0, one.stderr)
        let worst = try worstParameterDifference("two/checkpoint.safetensors", "one/checkpoint.safetensors")
        XCTAssertLessThan(worst.relative, 1e-5, "largest difference in \(worst.name)")
        let statistics = try worstStatisticsDifference("two/checkpoint.safetensors", "one/checkpoint.safetensors")
        XCTAssertLessThan(statistics.relative, 1e-5, "running statistics: largest difference in \(statistics.name)")
        let config = try String(contentsOf: dir.appendingPathComponent("two/config.json"), encoding: .utf8)
        XCTAssertTrue(config.contains("\"worldSize\":2") && config.contains("\"bnGroups\":2"), config)
        let log = try String(contentsOf: dir.appendingPathComponent("two/metrics.jsonl"), encoding: .utf8)
        XCTAssertTrue(log.contains("\"ranks\":2"), log)
    }

    /// A SAM with buffers (coordinate attention's batch norm): over two ranks its running
    /// statistics are averaged like the host's own, so they equal one process's two groups.
    func testRunningStatisticsOfAPluginAreAveragedOverRanks() throws {
        let coordatt = repository.appendingPathComponent("plugins/libCoordAtt.so").path
        let two = try mpirun(2, supernetArgs + ["--sam", coordatt, "--epochs", "1", "--output", "two"])
        XCTAssertEqual(two.status, 0, two.stderr)
        let one = try run(supernetArgs + ["--sam", coordatt, "--epochs", "1", "--bn-groups", "2", "--output", "one"])
        XCTAssertEqual(one.status, 0, one.stderr)
        let keys = try SafeTensors.read(dir.appendingPathComponent("two/checkpoint.safetensors").path).tensors.keys
        XCTAssertTrue(keys.contains("layer1.0.coordatt.bn1.running_var"), "\(keys.sorted())")
        let worst = try worstParameterDifference("two/checkpoint.safetensors", "one/checkpoint.safetensors")
        XCTAssertLessThan(worst.relative, 1e-5, "largest difference in \(worst.name)")
        let statistics = try worstStatisticsDifference("two/checkpoint.safetensors", "one/checkpoint.safetensors")
        XCTAssertLessThan(statistics.relative, 1e-5, "running statistics: largest difference in \(statistics.name)")
    }

    /// A run started on two ranks continues on one (and keeps its batch-norm groups): the
    /// result equals a run trained on one process throughout.
    func testResumeWithAnotherNumberOfRanks() throws {
        let args = supernetArgs + ["--sam", se]
        XCTAssertEqual(try mpirun(2, args + ["--epochs", "1", "--output", "mixed"]).status, 0)
        let resumed = try run(args + ["--epochs", "2", "--output", "mixed", "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("resuming at epoch 2"), resumed.stdout)
        XCTAssertEqual(try run(args + ["--epochs", "2", "--bn-groups", "2", "--output", "single"]).status, 0)
        let worst = try worstParameterDifference("mixed/checkpoint.safetensors", "single/checkpoint.safetensors")
        XCTAssertLessThan(worst.relative, 1e-5, "largest difference in \(worst.name)")
        let statistics = try worstStatisticsDifference("mixed/checkpoint.safetensors", "single/checkpoint.safetensors")
        XCTAssertLessThan(statistics.relative, 1e-5, "running statistics: largest difference in \(statistics.name)")
    }

    /// The landscape split over two ranks (each scores its half of every chunk of schemes on
    /// all validation images) gives exactly the accuracies of one process.
    func testLandscapeOverTwoRanksEqualsOneProcess() throws {
        let trained = try run(supernetArgs + ["--sam", se, "--epochs", "1", "--output", "a/supernet"])
        XCTAssertEqual(trained.status, 0, trained.stderr)
        try FileManager.default.copyItem(at: dir.appendingPathComponent("a"), to: dir.appendingPathComponent("b"))
        let one = try run(["landscape", "-o", "a", "--threads", "1"])
        XCTAssertEqual(one.status, 0, one.stderr)
        let two = try mpirun(2, ["landscape", "-o", "b", "--threads", "1"])
        XCTAssertEqual(two.status, 0, two.stderr)
        func accuracies(_ run: String) throws -> [String: Double] {
            let data = try Data(contentsOf: dir.appendingPathComponent("\(run)/landscape/landscape.json"))
            return try XCTUnwrap((try JSONSerialization.jsonObject(with: data) as? [String: Any])?["accuracy"] as? [String: Double])
        }
        let a = try accuracies("a"), b = try accuracies("b")
        XCTAssertEqual(a.count, 8)
        XCTAssertEqual(a, b)
    }

    /// A search on two ranks (each scores the asked schemes on half the validation images, the
    /// counts and loss sums summed) proposes and scores what one process does: the same schemes
    /// in the same order, with the paper's accuracy exactly, and with the default likelihood
    /// (a sum of float losses in another order) within 1e-6 relative.
    func testSearchOverTwoRanksEqualsOneProcess() throws {
        let trained = try run(supernetArgs + ["--sam", se, "--epochs", "1", "--output", "a/supernet"])
        XCTAssertEqual(trained.status, 0, trained.stderr)
        for copy in ["b", "c", "d"] { try FileManager.default.copyItem(at: dir.appendingPathComponent("a"), to: dir.appendingPathComponent(copy)) }
        let search = ["search", "--searcher", repository.appendingPathComponent("plugins/libEAN.so").path, "--steps", "8", "--threads", "1"]
        func records(_ run: String) throws -> [(scheme: String, score: Double, reward: Double)] {  // every scored scheme, in order
            try String(contentsOf: dir.appendingPathComponent("\(run)/search.jsonl"), encoding: .utf8).split(separator: "\n").map { line in
                let r = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                return (r["scheme"] as? String ?? "", r["accuracy"] as? Double ?? .nan, r["reward"] as? Double ?? .nan)
            }
        }
        for (one, two, scoring, tolerance) in [("a", "b", ["--score", "accuracy", "--bn-recalibrate", "0"], 0.0), ("c", "d", [], 1e-6)] {
            XCTAssertEqual(try run(search + scoring + ["-o", one]).status, 0)
            let ranks = try mpirun(2, search + scoring + ["-o", two])
            XCTAssertEqual(ranks.status, 0, ranks.stderr)
            let a = try records(one), b = try records(two)
            XCTAssertGreaterThanOrEqual(a.count, 8)
            XCTAssertEqual(b.map(\.scheme), a.map(\.scheme), "\(scoring)")
            for (x, y) in zip(a, b) {
                XCTAssertEqual(y.score, x.score, accuracy: tolerance * abs(x.score), "\(scoring) \(x.scheme)")
                XCTAssertEqual(y.reward, x.reward, accuracy: tolerance * max(1, abs(x.reward)), "\(scoring) \(x.scheme)")
            }
        }
    }

    /// The whole pipeline on two ranks: rank 0 alone writes the report and ticket, the search
    /// log holds each step once, and a resume on two ranks reuses every phase.
    func testPipelineOnTwoRanksWritesOnceAndResumes() throws {
        let args = ["run", "--sam", se, "--searcher", repository.appendingPathComponent("plugins/libEAN.so").path, "--model", "resnet-basic-8",
                    "--epochs", "1", "--supernet-epochs", "1", "--search-steps", "3", "--seeds", "1", "--candidates", "1",
                    "--data", "synthetic:400", "--val-per-class", "5", "--batch", "32", "--threads", "1", "-o", "pipeline"]
        let first = try mpirun(2, args)
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertEqual(first.stdout.components(separatedBy: "ticket (best validation accuracy)").count, 2, "printed once: \(first.stdout)")
        for file in ["result.json", "ticket.json", "report.md", "search-state.json", "train/000/summary.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("pipeline/\(file)").path), file)
        }
        let log = try String(contentsOf: dir.appendingPathComponent("pipeline/search.jsonl"), encoding: .utf8)
        let steps = log.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["step"] as? Int
        }
        XCTAssertEqual(Set(steps), [0, 1, 2], log)
        let state = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("pipeline/search-state.json"))) as? [String: Any]
        XCTAssertEqual(steps.count, (state?["records"] as? [Any])?.count, "one line per scored scheme, written by one rank")
        let again = try mpirun(2, args + ["--resume"])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(again.stdout.components(separatedBy: "done before").count - 1, 3, again.stdout)
    }

    /// A rank killed mid-run ends the whole job with a non-zero status and a message naming
    /// it; the last checkpoint stays loadable and the run resumes.
    func testKilledRankEndsTheJobAndKeepsTheLastCheckpoint() throws {
        let job = Process()
        job.executableURL = try mpirunURL()
        job.arguments = mpirunOptions + ["-np", "2", executable.path] + supernetArgs
            + ["--sam", se, "--epochs", "100000", "--output", "killed"]
        job.currentDirectoryURL = dir
        let err = Pipe()
        job.standardOutput = FileHandle.nullDevice
        job.standardError = err
        try job.run()
        defer { if job.isRunning { job.terminate(); job.waitUntilExit() } }
        let checkpoint = dir.appendingPathComponent("killed/checkpoint.safetensors").path
        var waited = 0
        while !FileManager.default.fileExists(atPath: checkpoint) && waited < 1200 { usleep(100_000); waited += 1 }  // the first epoch's end
        let rank1 = try XCTUnwrap(processes(withEnvironment: "OMPI_COMM_WORLD_RANK=1", arguments: "killed").first, "rank 1 not found")
        kill(rank1, SIGKILL)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        job.waitUntilExit()
        XCTAssertNotEqual(job.terminationStatus, 0)
        XCTAssertTrue(stderr.contains("rank 1") && stderr.contains("signal 9"), stderr)
        let eval = try run(["eval", "--checkpoint", "killed", "--split", "val", "--threads", "1"])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        let resumed = try run(supernetArgs + ["--sam", se, "--epochs", "100000", "--output", "killed", "--resume", "--stop-after-steps", "1"])
        XCTAssertTrue(resumed.stdout.contains("resuming at epoch"), resumed.stdout + resumed.stderr)
    }

    /// PIDs of processes whose environment holds `variable` and whose command line holds `arguments`.
    func processes(withEnvironment variable: String, arguments: String) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let env = FileManager.default.contents(atPath: "/proc/\(pid)/environ"),
                  let cmd = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return env.split(separator: 0).contains { String(decoding: $0, as: UTF8.self) == variable }
                && String(decoding: cmd, as: UTF8.self).contains(arguments)
        }
    }
}
