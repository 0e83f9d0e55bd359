import Checkpoint
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import TestSupport
import XCTest

/// Bad plugins (built here from Tests/Fixtures/plugins) and the `plugins` command.
final class PluginCLITests: CLITestCase {
    var repository: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }

    /// Compiles a fixture (or a first-party plugin with extra flags) into `dir`.
    func build(_ source: String, _ name: String, flags: [String] = []) throws -> String {
        try Fixtures.compile(source, flags: flags, into: dir, name: name)
    }

    var se: String { repository.appendingPathComponent("plugins/libSE.so").path }

    func testBadPluginsGiveOneLineErrors() throws {
        try assertFails(["info", "--sam", "nowhere/libX.so"], mentioning: "does not exist")
        try Data("not an ELF file".utf8).write(to: dir.appendingPathComponent("libjunk.so"))
        try assertFails(["info", "--sam", "./libjunk.so"], mentioning: "not a loadable shared library")
        try assertFails(["info", "--sam", "/lib/x86_64-linux-gnu/libm.so.6"], mentioning: "not an lth4sa plugin")
        try assertFails(["info", "--sam", try build("Tests/Fixtures/plugins/future_abi.c", "libfuture.so")], mentioning: "ABI version 99")
        try assertFails(["info", "--sam", try build("Tests/Fixtures/plugins/create_fails.c", "librefuser.so")], mentioning: "deliberately refuses")
        try assertFails(["info", "--sam", try build("Tests/Fixtures/plugins/searcher_kind.c", "libsearch.so")], mentioning: "holds no SAM plugin")
        try assertFails(["info", "--sam", try build("Tests/Fixtures/plugins/process_fails.c", "libnullprocess.so", flags: ["-DNULL_PROCESS"])],
                        mentioning: "its SAM table has no process function (NULL)")
        try assertFails(["info", "--sam", se, "--sam-opt", "bogus=1"], mentioning: "has no option 'bogus'")
        try assertFails(["info", "--sam", se, "--sam-opt", "reduction=0"], mentioning: "out of range")
        try assertFails(["info", "--sam", se, "--sam-opt", "reduction=two"], mentioning: "not a valid int")
        try assertFails(["info", "--model", "resnet38", "--sam", se, "--scheme", "01-01"], mentioning: "12 blocks")
        try assertFails(["info", "--sam", repository.appendingPathComponent("plugins/libSGE.so").path, "--sam-opt", "groups=5"], mentioning: "not divisible")
    }

    /// `scripts/install.sh --prefix P`, then `P/bin/lth4sa plugins` and `--sam se` from `/`,
    /// with no plugin path in the environment and an empty home.
    func testInstalledBinaryFindsItsPluginsFromAnyFolder() throws {
        let prefix = dir.appendingPathComponent("prefix")
        let install = Process()
        install.executableURL = repository.appendingPathComponent("scripts/install.sh")
        install.arguments = ["--prefix", prefix.path]
        install.standardOutput = FileHandle.nullDevice
        try install.run()
        install.waitUntilExit()
        XCTAssertEqual(install.terminationStatus, 0)
        func installed(_ args: [String]) throws -> Result {
            try run(args, program: prefix.appendingPathComponent("bin/lth4sa"), directory: URL(fileURLWithPath: "/"),
                    environment: ["HOME": dir.appendingPathComponent("home").path, "PATH": "/usr/bin:/bin"])
        }
        let list = try installed(["plugins"])
        XCTAssertEqual(list.status, 0, list.stderr)
        let built = try FileManager.default.contentsOfDirectory(atPath: repository.appendingPathComponent("plugins").path).filter { $0.hasSuffix(".so") }.count
        XCTAssertTrue(list.stdout.contains(prefix.appendingPathComponent("lib/lth4sa/plugins").path + "  (\(built) libraries)"), list.stdout)
        for id in ["se", "sge", "dia", "gc", "cbam", "ean", "random", "hsp", "ga", "enas", "darts", "l1", "gm"] {
            XCTAssertTrue(list.stdout.contains("\n" + id + " "), "\(id) listed:\n\(list.stdout)")
        }
        let info = try installed(["info", "--model", "resnet20", "--sam", "se"])
        XCTAssertEqual(info.status, 0, info.stderr)
        XCTAssertTrue(info.stdout.contains("SAM se") && info.stdout.contains(", full-sa, scheme"), info.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: prefix.appendingPathComponent("include/lth4sa/helpers.h").path))
    }

    func testPluginsListShowsBrokenFiles() throws {
        let folder = dir.appendingPathComponent("plugins")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: se, toPath: folder.appendingPathComponent("libSE.so").path)
        try Data("junk".utf8).write(to: folder.appendingPathComponent("libbroken.so"))
        let r = try run(["plugins"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("se ") && r.stdout.contains("Squeeze") || r.stdout.contains("sigmoid"), r.stdout)
        XCTAssertTrue(r.stdout.contains("libbroken.so") && r.stdout.contains("not a loadable"), r.stdout)
        let info = try run(["plugins", "info", "plugins/libSE.so", "--channels", "64"])
        XCTAssertEqual(info.status, 0, info.stderr)
        XCTAssertTrue(info.stdout.contains("fc1.weight") && info.stdout.contains("[4, 64]"), info.stdout)
        XCTAssertTrue(info.stdout.contains("reduction"), info.stdout)
    }

    /// Discovery scans every file in a child process: files that crash, exit or hang while
    /// loading, or are truncated, are listed with the reason, and neither the listing nor an
    /// id look-up dies; the scans are cached by path, size and modification time.
    func testDiscoverySurvivesCrashingExitingAndHangingPlugins() throws {
        let folder = dir.appendingPathComponent("plugins")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: se, toPath: folder.appendingPathComponent("libSE.so").path)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: se))
        try bytes.prefix(bytes.count / 2).write(to: folder.appendingPathComponent("libtruncated.so"))
        let cases = [("CTOR_SEGV", "crashed with SIGSEGV while loading"), ("CTOR_EXIT", "called exit(3) while loading"),
                     ("ENTRY_SEGV", "crashed with SIGSEGV in lth4sa_plugin_entry"), ("ENTRY_EXIT", "called exit(3) in lth4sa_plugin_entry"),
                     ("ENTRY_HANG", "gave no answer in 3 s in lth4sa_plugin_entry"), ("truncated", "is a truncated ELF file")]
        for (flag, _) in cases where flag != "truncated" {
            _ = try Fixtures.compile("Tests/Fixtures/plugins/crashing.c", flags: ["-D\(flag)"], into: folder, name: "lib\(flag).so")
        }
        var environment = ProcessInfo.processInfo.environment
        environment["LTH4SA_PLUGIN_PATH"] = folder.path
        environment["LTH4SA_PLUGIN_SCAN_TIMEOUT"] = "3"  // generous: a loaded CI machine starts the scanner slowly
        environment["XDG_CACHE_HOME"] = dir.appendingPathComponent("cache").path
        let list = try run(["plugins"], environment: environment)
        XCTAssertEqual(list.status, 0, list.stderr)
        for (flag, reason) in cases {
            XCTAssertTrue(list.stdout.contains("lib\(flag).so: plugin '") && list.stdout.contains("lib\(flag).so' \(reason)"), "\(flag):\n\(list.stdout)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("cache/lth4sa/plugin-registry.json").path))
        let again = try run(["plugins"], environment: environment)
        XCTAssertEqual(again.stdout, list.stdout, "the cached scan lists the same")
        let info = try run(["info", "--model", "resnet20", "--sam", "se"], environment: environment)
        XCTAssertEqual(info.status, 0, "an id resolves beside broken files: \(info.stderr)")
        let direct = try run(["info", "--sam", folder.appendingPathComponent("libENTRY_SEGV.so").path], environment: environment)
        XCTAssertNotEqual(direct.status, 0)
        XCTAssertTrue(direct.stderr.contains("crashed with SIGSEGV in lth4sa_plugin_entry") && direct.stderr.split(separator: "\n").count == 1, direct.stderr)
    }

    /// The conformance kit runs in a child process: a plugin that crashes or hangs fails the
    /// check it was in; a crash during training names the plugin, the call and the block.
    func testKitAndTrainingReportPluginCrashes() throws {
        let segv = try build("Tests/Fixtures/plugins/crashing.c", "libsegv.so", flags: ["-DPROCESS_SEGV=1"])
        let crashed = try run(["plugins", "check", segv])
        XCTAssertNotEqual(crashed.status, 0)
        XCTAssertTrue(crashed.stdout.contains("PASS  descriptor") && crashed.stdout.contains("FAIL  gradients (finite differences)")
                      && crashed.stdout.contains("crashed the check's process with SIGSEGV"), crashed.stdout)
        var environment = ProcessInfo.processInfo.environment
        environment["LTH4SA_PLUGIN_CHECK_TIMEOUT"] = "5"  // generous for a loaded machine
        let hangs = try run(["plugins", "check", try build("Tests/Fixtures/plugins/crashing.c", "libhang.so", flags: ["-DCREATE_HANG"])],
                            environment: environment)
        XCTAssertNotEqual(hangs.status, 0)
        XCTAssertTrue(hangs.stdout.contains("FAIL  gradients (finite differences)") && hangs.stdout.contains("no answer in 5 s"), hangs.stdout)
        let later = try build("Tests/Fixtures/plugins/crashing.c", "libsegvlater.so", flags: ["-DPROCESS_SEGV=5"])
        let t = try run(["train", "--model", "resnet-basic-8", "--data", "synthetic:200", "--epochs", "1", "--batch", "16",
                         "--val-per-class", "1", "--output", "run", "--sam", later])
        XCTAssertNotEqual(t.status, 0)
        XCTAssertTrue(t.stderr.contains("lth4sa: plugin crashing crashed with SIGSEGV in process at layer1.0; the checkpoints written so far are intact"),
                      t.stderr)
    }

    func testEveryFirstPartyPluginPassesTheConformanceKit() throws {
        for name in ["SE", "SGE", "DIA", "GC", "CBAM", "ECA", "SimAM", "CoordAtt"] {
            let r = try run(["plugins", "check", repository.appendingPathComponent("plugins/lib\(name).so").path])
            XCTAssertEqual(r.status, 0, "\(name): \(r.stdout)\(r.stderr)")
        }
    }

    /// ECA and SimAM are listed and train end to end; SimAM adds no parameter, only time.
    func testECAAndSimAMTrain() throws {
        let listed = try run(["plugins"])
        XCTAssertTrue(listed.stdout.contains("eca ") && listed.stdout.contains("simam "), listed.stdout)
        var parameters: [String: Int] = [:]
        for (name, id) in [("ECA", "eca"), ("SimAM", "simam")] {
            let r = try run(["train", "--model", "resnet-basic-8", "--data", "synthetic:200", "--epochs", "1", "--batch", "16", "--val-per-class", "1",
                             "--output", "run-\(id)", "--sam", repository.appendingPathComponent("plugins/lib\(name).so").path])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("with \(id) (") && r.stdout.contains("test accuracy"), r.stdout)
            let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("run-\(id)/summary.json"))) as! [String: Any]
            parameters[id] = summary["parameters"] as? Int
        }
        let plain = try run(["info", "--model", "resnet-basic-8"])
        XCTAssertTrue(plain.stdout.contains("total parameters: "), plain.stdout)
        let original = Int(plain.stdout.components(separatedBy: "total parameters: ")[1].prefix { $0.isNumber })
        XCTAssertEqual(parameters["simam"], original, "SimAM is parameter-free")
        XCTAssertEqual(parameters["eca"], original.map { $0 + 3 * 3 }, "one 3-tap kernel per block (k = 3 for 16-64 channels)")
    }

    /// Coordinate attention trains end to end; its batch norm's running statistics are buffers:
    /// in the checkpoint under PyTorch names (the counter as int64), out of the parameter count,
    /// restored on resume (its counter keeps pace with the host's own batch norms).
    func testCoordinateAttentionTrainsAndResumesItsRunningStatistics() throws {
        let listed = try run(["plugins"])
        XCTAssertTrue(listed.stdout.contains("coordatt "), listed.stdout)
        let plugin = repository.appendingPathComponent("plugins/libCoordAtt.so").path
        let flags = ["--model", "resnet-basic-8", "--data", "synthetic:200", "--batch", "16", "--val-per-class", "1", "--output", "run-ca", "--sam", plugin]
        let first = try run(["train", "--epochs", "1"] + flags)
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stdout.contains("with coordatt (") && first.stdout.contains("test accuracy"), first.stdout)
        let more = try run(["train", "--epochs", "2", "--resume"] + flags)
        XCTAssertEqual(more.status, 0, more.stderr)
        let (tensors, _) = try SafeTensors.read(dir.appendingPathComponent("run-ca/checkpoint.safetensors").path)
        let counter = try XCTUnwrap(tensors["layer2.0.coordatt.bn1.num_batches_tracked"])
        XCTAssertEqual(counter.shape, [])
        XCTAssertEqual(counter.values, tensors["layer2.0.bn1.num_batches_tracked"]?.values, "one update per training step, the first epoch's kept")
        XCTAssertGreaterThan(counter.values.first ?? 0, 12)
        let variance = try XCTUnwrap(tensors["layer3.0.coordatt.bn1.running_var"])
        XCTAssertEqual(variance.shape, [8])
        XCTAssertFalse(variance.values.allSatisfy { $0 == 1 }, "the running variance moved from its initial ones")
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("run-ca/summary.json"))) as! [String: Any]
        let plain = try run(["info", "--model", "resnet-basic-8"])
        let original = Int(plain.stdout.components(separatedBy: "total parameters: ")[1].prefix { $0.isNumber })!
        // per block 3 M C + 3 M + 2 C with M = 8: C = 16, 32, 64 -> 440 + 856 + 1688; buffers are not parameters
        XCTAssertEqual(summary["parameters"] as? Int, original + 440 + 856 + 1688)
    }

    /// What a third party has: SDK/include and its own source, nothing else of the repository.
    func testPluginBuiltFromTheSDKAlonePassesTheKit() throws {
        let outside = dir.appendingPathComponent("third-party")
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: repository.appendingPathComponent("SDK/include"), to: outside.appendingPathComponent("include"))
        try FileManager.default.copyItem(at: repository.appendingPathComponent("SDK/examples/cbam/cbam.c"), to: outside.appendingPathComponent("cbam.c"))
        let library = outside.appendingPathComponent("libthirdparty.so").path
        let cc = Process()
        cc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        cc.arguments = ["cc", "-O2", "-fPIC", "-shared", "-Wall", "-Wextra", "-Werror", "-std=c11", "-I", outside.appendingPathComponent("include").path,
                        "-o", library, outside.appendingPathComponent("cbam.c").path, "-lm"]
        try cc.run()
        cc.waitUntilExit()
        XCTAssertEqual(cc.terminationStatus, 0, "the example compiles warning-free from SDK/include alone")
        let r = try run(["plugins", "check", library])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("all checks passed"), r.stdout)
    }

    /// Searchers have a conformance kit too: every first-party one passes, broken ones fail.
    func testSearcherConformanceKit() throws {
        for name in ["EAN", "Random", "HSP", "GA", "ENAS", "DARTS", "L1", "GM"] {
            let r = try run(["plugins", "check", repository.appendingPathComponent("plugins/lib\(name).so").path])
            XCTAssertEqual(r.status, 0, "\(name): \(r.stdout)\(r.stderr)")
            XCTAssertTrue(r.stdout.contains("save and load resume exactly"), r.stdout)
        }
        for (flag, text) in [("-DBAD_BITS", "must be 0 or 1"), ("-DASK_OVERRUN", "wrote past"), ("-DHUGE_STATE", "state_size reports"),
                             ("-DSAVE_OVERRUN", "save wrote past"), ("-DSHORT_SCHEME", "left byte 5 of scheme 0 unwritten"),
                             ("-DLONG_SCHEME", "wrote byte 6 (past the 6 it returned)"), ("-DWRONGLEN_MULTI", "wrote past the 4096 x 6 bytes"),
                             ("-DFAR_OVERRUN", "crashed the check's process with SIGSEGV")] {
            let r = try run(["plugins", "check", try build("Tests/Fixtures/plugins/bad_searcher.c", "libbad\(flag).so", flags: [flag])])
            XCTAssertNotEqual(r.status, 0, flag)
            XCTAssertTrue(r.stdout.contains("FAIL") && r.stdout.contains(text), "\(flag): \(r.stdout)")
        }
        for (flag, text) in [("-DDUPLICATE_NAMES", "named 'fc.weight'"), ("-DNULL_NAME", "NULL name")] {
            let r = try run(["plugins", "check", try build("Tests/Fixtures/plugins/bad_params.c", "libbadparams\(flag).so", flags: [flag])])
            XCTAssertNotEqual(r.status, 0, flag)
            XCTAssertTrue(r.stdout.contains("FAIL") && r.stdout.contains(text), "\(flag): \(r.stdout)")
        }
    }

    func testConformanceKitPassesGoodAndFailsBrokenPlugins() throws {
        let good = try run(["plugins", "check", se])
        XCTAssertEqual(good.status, 0, good.stdout + good.stderr)
        XCTAssertTrue(good.stdout.contains("all checks passed"), good.stdout)
        // SE with its fc1 gradient deliberately doubled
        let broken = try build("Plugins/SE/se.c", "libbrokenSE.so", flags: ["-DLTH4SA_TEST_BREAK_GRADIENT"])
        let bad = try run(["plugins", "check", broken])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stdout.contains("FAIL  gradients"), bad.stdout)
        // SE whose prepare forgets one work buffer: its backward allocates, and the kit says so
        let late = try run(["plugins", "check", try build("Plugins/SE/se.c", "libLateSE.so", flags: ["-DLTH4SA_TEST_FORGET_RESERVE"])])
        XCTAssertNotEqual(late.status, 0)
        XCTAssertTrue(late.stdout.contains("FAIL  no allocation in process or backward after prepare") && late.stdout.contains("made 1"), late.stdout)
        XCTAssertTrue(good.stdout.contains("PASS  no allocation in process or backward after prepare") && good.stdout.contains("made 0"), good.stdout)
        // a plugin built against the first ABI 1 header (a table without prepare) still loads, passes and trains
        let old = try build("Tests/Fixtures/plugins/process_fails.c", "libOldTable.so", flags: ["-DOLD_TABLE", "-DFAIL_AT=1000000"])
        let oldCheck = try run(["plugins", "check", old])
        XCTAssertTrue(oldCheck.stdout.contains("no prepare call"), oldCheck.stdout)
        let trained = try run(["train", "--model", "resnet-basic-8", "--data", "synthetic:100", "--epochs", "1", "--batch", "16",
                               "--val-per-class", "1", "--output", "old", "--sam", old])
        XCTAssertEqual(trained.status, 0, trained.stderr)
        // a plugin that claims LTH4SA_PLUGIN_CONCURRENT_INSTANCES but shares a global buffer fails the kit's lanes check
        let racy = try build("Tests/Fixtures/plugins/process_fails.c", "libRacy.so", flags: ["-DSHARED_SCRATCH"])
        let racyCheck = try run(["plugins", "check", racy])
        XCTAssertTrue(racyCheck.stdout.contains("FAIL  concurrent instances (lanes)") && racyCheck.stdout.contains("differ from serial calls"), racyCheck.stdout)
        XCTAssertTrue(oldCheck.stdout.contains("PASS  concurrent instances (lanes)") && oldCheck.stdout.contains("not declared"), oldCheck.stdout)
        // a plugin that works through the host's parallel_for (run on the shared OpenMP pool)
        let parallel = try build("Tests/Fixtures/plugins/process_fails.c", "libParallel.so", flags: ["-DPARALLEL_FOR", "-DFAIL_AT=1000000"])
        let parallelCheck = try run(["plugins", "check", parallel])
        XCTAssertEqual(parallelCheck.status, 0, parallelCheck.stdout)
    }

    /// A plugin writing NaN or Inf into its outputs or gradients fails the kit, and a supernet
    /// training with it stops naming it (finite checks are on by default) with one line.
    func testNonFinitePluginsFailTheKitAndStopASupernet() throws {
        for (flags, text) in [(["-DNAN_INSTEAD", "-DFAIL_AT=1"], "nan in its attention"), (["-DPARAM_GRADIENT", "-DFAIL_AT=1"], "nan in its gradient of gain"),
                              (["-DGRADIENT_INSTEAD", "-DFAIL_AT=1", "-DBAD_VALUE=INFINITY"], "inf in its input gradient")] {
            let library = try build("Tests/Fixtures/plugins/process_fails.c", "libnonfinite\(flags.joined()).so", flags: flags)
            let r = try run(["plugins", "check", library])
            XCTAssertNotEqual(r.status, 0, "\(flags)")
            XCTAssertTrue(r.stdout.contains("FAIL  gradients (finite differences)") && r.stdout.contains(text), "\(flags): \(r.stdout)")
        }
        let library = try build("Tests/Fixtures/plugins/process_fails.c", "libnanlater.so", flags: ["-DNAN_INSTEAD", "-DFAIL_AT=6"])
        let t = try run(["supernet", "train", "--model", "resnet-basic-8", "--data", "synthetic:200", "--epochs", "2", "--batch", "16",
                         "--val-per-class", "1", "--output", "sn", "--sam", library, "--keep-prob", "0.5"])
        XCTAssertNotEqual(t.status, 0)
        let last = t.stderr.split(separator: "\n").last.map(String.init) ?? ""
        XCTAssertTrue(last.contains("plugin failing at layer") && last.contains("produced nan in its attention"), t.stderr)
    }

    func testEvaluatingWithAnotherSAMIsAnError() throws {
        let path = dir.appendingPathComponent("libX.so").path
        try FileManager.default.copyItem(atPath: se, toPath: path)
        let t = try run(["train", "--model", "resnet-basic-8", "--data", "synthetic:100", "--epochs", "1", "--batch", "16",
                         "--val-per-class", "1", "--output", "run", "--sam", path])
        XCTAssertEqual(t.status, 0, t.stderr)
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.copyItem(atPath: repository.appendingPathComponent("plugins/libSGE.so").path, toPath: path)
        try assertFails(["eval", "--checkpoint", "run"], mentioning: "trained with SAM se")
    }

    func testSupernetTrainThenEvaluateSubNetworks() throws {
        let t = try run(["supernet", "train", "--model", "resnet-basic-8", "--data", "synthetic:100", "--epochs", "1", "--batch", "16",
                         "--val-per-class", "1", "--output", "sn", "--sam", se, "--sam-opt", "reduction=4", "--keep-prob", "0.5"])
        XCTAssertEqual(t.status, 0, t.stderr)
        for scheme in ["1-1-1", "0-0-0", "101"] {
            let e = try run(["eval", "--checkpoint", "sn", "--split", "val", "--scheme", scheme])
            XCTAssertEqual(e.status, 0, e.stderr)
        }
        try assertFails(["eval", "--checkpoint", "sn", "--scheme", "1111"], mentioning: "3 blocks")
        try assertFails(["supernet", "train", "--keep-prob", "1.5", "--sam", se], mentioning: "1.5")
        try assertFails(["supernet", "train", "--model", "resnet-basic-8"], mentioning: "--sam")
    }

    func testTrainAndEvalWithASAM() throws {
        let t = try run(["train", "--model", "resnet-basic-8", "--data", "synthetic:200", "--epochs", "1", "--batch", "32",
                         "--val-per-class", "2", "--output", "run", "--sam", se, "--sam-opt", "reduction=4", "--scheme", "1-0-1"])
        XCTAssertEqual(t.status, 0, t.stderr)
        XCTAssertTrue(t.stdout.contains("with se"), t.stdout)
        let e = try run(["eval", "--checkpoint", "run"])
        XCTAssertEqual(e.status, 0, e.stderr)
        try assertFails(["eval", "--checkpoint", "run", "--scheme", "1-1-1"], mentioning: "ordinary network")
        let header = try String(decoding: Data(contentsOf: dir.appendingPathComponent("run/checkpoint.safetensors")).prefix(20000), as: UTF8.self)
        XCTAssertTrue(header.contains("layer1.0.se.fc1.weight"), "SAM parameters under PyTorch-like names")
        XCTAssertTrue(header.contains("\"sam.id\":\"se\""))
    }
}

/// The whole pipeline on tiny settings, through the real plugins, and its bad input.
final class PipelineCLITests: CLITestCase {
    var repository: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }
    func plugin(_ name: String) -> String { repository.appendingPathComponent("plugins/lib\(name).so").path }
    var tiny: [String] { ["--data", "synthetic:300", "--val-per-class", "5", "--supernet-epochs", "1", "--epochs", "1", "--search-steps", "12",
                          "--batch", "32", "--model", "resnet-basic-8"] }

    func testPipelineEndToEnd() throws {
        let r = try run(["--sam", plugin("SE"), "--sam-opt", "reduction=4", "--searcher", plugin("EAN"), "-o", "p"] + tiny)
        XCTAssertEqual(r.status, 0, r.stderr)
        for f in ["pipeline.json", "metrics.jsonl", "supernet-fair/checkpoint.safetensors", "search.jsonl", "search-state.json", "ticket.json", "report.md"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("p/\(f)").path), f)
        }
        let report = try String(contentsOf: dir.appendingPathComponent("p/report.md"), encoding: .utf8)
        for text in ["| original | 0-0-0", "| Full-SA | 1-1-1", "candidate 1", "ticket?", "search / training of one network"] {
            XCTAssertTrue(report.contains(text), "report lacks '\(text)':\n\(report)")
        }
        let log = try String(contentsOf: dir.appendingPathComponent("p/search.jsonl"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(log.count, 12)
        XCTAssertTrue(log[0].contains("\"pBar\"") && log[0].contains("\"reward\"") && log[0].contains("\"curiosity\""))
        let ticket = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("p/ticket.json"))) as! [String: Any]
        XCTAssertEqual((ticket["bits"] as? [Int])?.count, 3)
        XCTAssertNotNil(ticket["measured"])
        // stages one by one on the same run directory: the search alone, resumed
        let s = try run(["search", "-o", "p", "--searcher", plugin("EAN"), "--steps", "15", "--resume"])
        XCTAssertEqual(s.status, 0, s.stderr)
        XCTAssertEqual(try String(contentsOf: dir.appendingPathComponent("p/search.jsonl"), encoding: .utf8).split(separator: "\n").count, 15)
        // a searcher writing schemes of the wrong length is refused by name; one writing far
        // past its buffer hits the guard page and is named before the process ends
        let long = try Fixtures.compile("Tests/Fixtures/plugins/bad_searcher.c", flags: ["-DLONG_SCHEME"], into: dir)
        try assertFails(["search", "-o", "p", "--searcher", long, "--steps", "3"], mentioning: "plugin badsearcher: ask returned 1 scheme(s) of 3 bytes but wrote byte 3")
        let far = try Fixtures.compile("Tests/Fixtures/plugins/bad_searcher.c", flags: ["-DFAR_OVERRUN"], into: dir)
        let crashed = try run(["search", "-o", "p", "--searcher", far, "--steps", "3"])
        XCTAssertNotEqual(crashed.status, 0)
        XCTAssertTrue(crashed.stderr.contains("lth4sa: plugin badsearcher crashed with SIGSEGV in ask"), crashed.stderr)
        // a run directory of another model
        try assertFails(["--sam", plugin("SE"), "--searcher", plugin("EAN"), "-o", "p", "--resume"] + tiny.dropLast(2) + ["--model", "resnet20"], mentioning: "resnet-basic-8")
    }

    func testPipelineBadInput() throws {
        try assertFails(["--sam", plugin("SE"), "--searcher", plugin("SE"), "-o", "a"] + tiny, mentioning: "holds no searcher")
        try assertFails(["--sam", plugin("EAN"), "--searcher", plugin("EAN"), "-o", "b"] + tiny, mentioning: "holds no SAM")
        try assertFails(["--sam", plugin("SE"), "--search-steps", "0"], mentioning: "at least 1")
        try assertFails(["--sam", plugin("SE"), "--reward-sparse", "lots"], mentioning: "lots")
        try assertFails(["--preset", "imagenet"], mentioning: "imagenet")
        try assertFails(["--preset", "cifar100-resnet38"], mentioning: "cifar100:PATH")
    }
}

/// `lth4sa landscape` and `lth4sa compare` end to end on tiny settings.
final class LandscapeCompareCLITests: CLITestCase {
    var repository: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }
    func plugin(_ name: String) -> String { repository.appendingPathComponent("plugins/lib\(name).so").path }

    func testLandscapeWritesFiguresAndResumes() throws {
        let t = try run(["supernet", "train", "--model", "resnet-basic-14", "--sam", plugin("SE"), "--sam-opt", "reduction=4", "--data", "synthetic:300",
                         "--val-per-class", "5", "--epochs", "1", "--batch", "32", "-o", "r/supernet"])
        XCTAssertEqual(t.status, 0, t.stderr)
        let r = try run(["landscape", "-o", "r", "--mark", "11-00-10"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("64 schemes of resnet-basic-14 (all) on 50 validation images"), r.stdout)
        XCTAssertTrue(r.stdout.contains("11-00-10: "), r.stdout)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("r/landscape/landscape.json"))) as! [String: Any]
        XCTAssertEqual(json["schemes"] as? Int, 64)
        XCTAssertEqual((json["accuracy"] as? [String: Double])?.count, 64)
        XCTAssertEqual((json["best"] as? [[String: Any]])?.count, 4)
        XCTAssertEqual((json["best_connection_scores"] as? [Double])?.count, 6)
        XCTAssertEqual((json["distribution"] as? [[String: Any]])?.count, 7)
        let mark = try XCTUnwrap((json["marks"] as? [[String: Any]])?.first)
        let accuracies = Array((json["accuracy"] as! [String: Double]).values)
        XCTAssertEqual(mark["rank"] as? Int, 1 + accuracies.filter { $0 > (mark["accuracy"] as! Double) }.count)
        for svg in ["distribution.svg", "scores.svg"] {
            let parser = XMLParser(contentsOf: dir.appendingPathComponent("r/landscape/\(svg)"))!
            XCTAssertTrue(parser.parse(), "\(svg) is well-formed XML")
        }
        // finished chunks are kept: a second run evaluates nothing
        let again = try run(["landscape", "-o", "r"])
        XCTAssertTrue(again.stdout.contains("(0 evaluated now"), again.stdout)
        // results of another supernet checkpoint are not reused
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: 60)],
                                              ofItemAtPath: dir.appendingPathComponent("r/supernet/checkpoint.safetensors").path)
        let retrained = try run(["landscape", "-o", "r", "--fraction", "0.1"])
        XCTAssertTrue(retrained.stdout.contains("(64 evaluated now"), retrained.stdout)
        // the figures follow --fraction
        let figure = try String(contentsOf: dir.appendingPathComponent("r/landscape/distribution.svg"), encoding: .utf8)
        let scores = try String(contentsOf: dir.appendingPathComponent("r/landscape/scores.svg"), encoding: .utf8)
        XCTAssertTrue(figure.contains(">Top 10%<"), "threshold label")
        XCTAssertTrue(scores.contains(">best 10%<") && scores.contains(">worst 10%<"), "legend")
        // without prefix sharing: same accuracies, more blocks
        let plain = try run(["landscape", "-o", "r", "--no-share", "--limit", "20"])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        let p = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("r/landscape-noshare/landscape.json"))) as! [String: Any]
        let shared = json["accuracy"] as! [String: Double]
        for (scheme, acc) in p["accuracy"] as! [String: Double] { XCTAssertEqual(acc, shared[scheme], scheme) }
        XCTAssertEqual(p["blocks_run_this_run"] as? Int, 20 * 6 * 1, "every scheme from the stem (50 images: one batch)")
        try assertFails(["landscape", "-o", "r", "--mark", "1111"], mentioning: "1111")
        try assertFails(["landscape", "-o", "nowhere"], mentioning: "no trained supernet")
    }

    func testCompareEndToEnd() throws {
        let r = try run(["compare", "--model", "resnet-basic-8", "--data", "synthetic:300", "--val-per-class", "5", "--supernet-epochs", "1", "--epochs", "1",
                         "--budget", "10", "--batch", "32", "--sam", plugin("SE"), "--sam-opt", "reduction=4", "--searcher-opt", "ga:population=4", "--seeds", "2",
                         "--searchers", ["EAN", "Random", "GA", "ENAS", "DARTS", "HSP", "L1", "GM"].map(plugin).joined(separator: ","), "-o", "c"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let report = try String(contentsOf: dir.appendingPathComponent("c/compare.md"), encoding: .utf8)
        for id in ["ean", "random", "ga", "enas", "darts", "hsp", "l1", "gm"] { XCTAssertTrue(report.contains("| \(id) | "), "row of \(id):\n\(report)") }
        for text in ["| original | 0-0-0 |", "| Full-SA | 1-1-1 |", "Top 5%?", "ticket?", "search time", " ± ", "2 seed(s)"] { XCTAssertTrue(report.contains(text), text) }
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("c/compare.json"))) as! [String: Any]
        let rows = json["rows"] as! [[String: Any]]
        XCTAssertEqual(rows.count, 10)
        for row in rows.dropFirst(2) {
            XCTAssertNotNil(row["search_seconds"] as? Double)
            XCTAssertTrue((row["top5"] as! String).contains("rank"), "\(row)")
        }
        for id in ["ean", "random", "ga", "enas", "darts", "hsp", "l1", "gm"] {
            let log = try String(contentsOf: dir.appendingPathComponent("c/search-\(id)/search.jsonl"), encoding: .utf8).split(separator: "\n")
            XCTAssertGreaterThanOrEqual(log.count, 10, "\(id): the budget of 10 evaluations")
            XCTAssertLessThan(log.count, id == "ga" ? 14 : 11, "\(id) stops at the budget")
        }
        // the directory holds a study: continuing it is asked for (the resume rule of every study)
        try assertFails(["compare", "--model", "resnet-basic-8", "--data", "synthetic:300", "--sam", plugin("SE"), "--searchers", plugin("EAN"), "-o", "c"],
                        mentioning: "already holds a compare study; continue it with --resume")
        // a second run reuses every stage
        let again = try run(["compare", "--model", "resnet-basic-8", "--data", "synthetic:300", "--val-per-class", "5", "--supernet-epochs", "1", "--epochs", "1",
                             "--budget", "10", "--batch", "32", "--sam", plugin("SE"), "--sam-opt", "reduction=4", "--searchers", plugin("EAN"),
                             "--candidates", "2", "--seeds", "2", "-o", "c", "--resume"])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stdout.contains("ean: done before"), again.stdout)
        let rerun = try String(contentsOf: dir.appendingPathComponent("c/compare.md"), encoding: .utf8)
        let mainTable = rerun.components(separatedBy: "## Searchers over search seeds")[0]
        XCTAssertEqual(mainTable.components(separatedBy: "| ean | ").count - 1, 2, "the reused search still offers --candidates 2:\n\(rerun)")
        // another scoring searches again instead of reusing a search scored differently
        let rescored = try run(["compare", "--model", "resnet-basic-8", "--data", "synthetic:300", "--val-per-class", "5", "--supernet-epochs", "1", "--epochs", "1",
                                "--budget", "10", "--batch", "32", "--sam", plugin("SE"), "--sam-opt", "reduction=4", "--searchers", plugin("EAN"),
                                "--seeds", "2", "--score", "accuracy", "--bn-recalibrate", "0", "-o", "c", "--resume"])
        XCTAssertEqual(rescored.status, 0, rescored.stderr)
        XCTAssertFalse(rescored.stdout.contains("ean: done before"), rescored.stdout)
        XCTAssertTrue(rescored.stdout.contains("search ean: "), rescored.stdout)
        // several search seeds on a sandwich supernet: one search folder per (searcher, seed), the picks against Random's
        let seeded = try run(["compare", "--model", "resnet-basic-8", "--data", "synthetic:300", "--val-per-class", "5", "--supernet-epochs", "1", "--epochs", "1",
                              "--budget", "6", "--batch", "32", "--sam", plugin("SE"), "--sam-opt", "reduction=4", "--searchers", "\(plugin("EAN")),\(plugin("Random"))",
                              "--search-seeds", "2", "--seeds", "1", "--supernet-sampling", "sandwich", "-o", "c2"])
        XCTAssertEqual(seeded.status, 0, seeded.stderr)
        for folder in ["supernet-sandwich", "search-ean", "search-ean-seed1", "search-random", "search-random-seed1"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("c2/\(folder)").path), folder)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("c2/supernet").path), "a sandwich supernet is not the Bernoulli one")
        let seededJSON = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("c2/compare.json"))) as! [String: Any]
        let summaries = seededJSON["searchers"] as! [[String: Any]]
        XCTAssertEqual(summaries.map { $0["searcher"] as! String }, ["ean", "random"])
        XCTAssertEqual((summaries[0]["pick_accuracies"] as! [Double]).count, 2)
        XCTAssertEqual((summaries[0]["versus_random"] as! [String: Any])["method"] as? String, "paired t over search seeds, training-seed variance included",
                       "paired over the 2 search seeds")
        XCTAssertEqual((summaries[0]["pick_seed_accuracies"] as! [[Double]]).map(\.count), [1, 1], "2 search seeds x 1 retraining seed")
        XCTAssertNil(summaries[1]["versus_random"], "Random is not compared with itself")
        XCTAssertEqual((seededJSON["rows"] as! [[String: Any]]).count, 6, "original, Full-SA, 2 searchers x 2 search seeds")
        XCTAssertTrue(seeded.stdout.contains("| ean (search seed 1) |"), seeded.stdout)
        XCTAssertTrue(seeded.stdout.contains("regret to the best"), seeded.stdout)
        try assertFails(["compare", "--search-seeds", "0"], mentioning: "--search-seeds")
        try assertFails(["compare", "--supernet-sampling", "fair,sandwich"], mentioning: "one supernet")
        try assertFails(["compare", "--supernet-sampling", "greedy"], mentioning: "supernet-sampling")
        try assertFails(["compare", "--searchers", ","], mentioning: "no searcher")
        try assertFails(["compare", "--margin", "-1"], mentioning: "--margin")
        try assertFails(["run", "--margin", "nan"], mentioning: "--margin")
        try assertFails(["compare", "--searchers", "ean,ean"], mentioning: "twice")
        try assertFails(["compare", "--searcher-opt", "population=3"], mentioning: "id:key=value")
        try assertFails(["compare", "--sam", plugin("SE"), "--searchers", plugin("EAN"), "--searcher-opt", "ga:population=3"], mentioning: "names no searcher")
        try assertFails(["compare", "--sam", plugin("SE"), "--searchers", plugin("GA"), "--searcher-opt", "ga:population=1"], mentioning: "population")
    }
}
