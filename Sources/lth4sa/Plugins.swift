import ArgumentParser
import Foundation
import LTH4SASDK
import PluginHost
import ProcessSupport
import Tensor

/// `lth4sa plugins`: list, describe and check plugins (like gst-inspect).
struct Plugins: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List installed plugins, show one, or run the conformance kit on it.",
        subcommands: [PluginsList.self, PluginsInfo.self, PluginsCheck.self, PluginsScanFile.self], defaultSubcommand: PluginsList.self)
}

/// `lth4sa plugins [list]`: every plugin found, then every file that failed to load.
struct PluginsList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Table of the plugins found in the search folders.")

    func run() throws {
        let scanned = PluginDiscovery.scan()
        let loaded = scanned.filter { $0.failure == nil }, failed = scanned.filter { $0.failure != nil }
        print("searched, in order (an id resolves to its first match):")
        for folder in PluginDiscovery.searchFolders() {
            let absolute = URL(fileURLWithPath: folder).standardizedFileURL.path
            let count = loaded.filter { URL(fileURLWithPath: $0.path).deletingLastPathComponent().path == absolute }.count
            let exists = FileManager.default.fileExists(atPath: absolute)
            print("  \(absolute)  " + (exists ? "(\(count) \(count == 1 ? "library" : "libraries"))" : "(missing)"))
        }
        print(pad("id", 14) + pad("kind", 10) + pad("version", 9) + pad("abi", 5) + pad("file", 28) + "description")
        var seenIds = Set<String>()
        for lib in loaded {
            let file = URL(fileURLWithPath: lib.path).lastPathComponent, abi = lib.abiVersion.map(String.init) ?? "?"
            for p in lib.plugins {
                let shadowed = !seenIds.insert(p.id).inserted
                let row = pad(p.id, 14) + pad(p.kindName, 10) + pad(p.version, 9) + pad(abi, 5) + pad(file, 28) + p.description
                print(row + (shadowed ? "  [shadowed by an earlier folder: \(lib.path)]" : ""))
            }
        }
        if loaded.isEmpty { print("(no plugins found; build them with ./scripts/setup.sh or set LTH4SA_PLUGIN_PATH)") }
        if !failed.isEmpty {
            print("\nfiles that cannot be used (scanned in a separate process; nothing else is affected):")
            for f in failed { print("  \(f.path): \(f.failure!)") }
        }
    }
}

/// `lth4sa plugins scan-file PATH` (hidden): what the plugin scanner's child process runs.
struct PluginsScanFile: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "scan-file", abstract: "Scan one plugin file for a parent process.",
                                                    shouldDisplay: false)
    @Argument var path: String

    func run() {
        PluginScanner.scanForParent(path) { FileHandle.standardOutput.write(Data(($0 + "\n").utf8)) }
    }
}

/// `lth4sa plugins info X`: descriptor, options, parameter shapes for a channel count.
struct PluginsInfo: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Descriptor, options and parameter shapes of one plugin.")
    @Argument(help: "A plugin .so path or id.") var plugin: String
    @Option(parsing: .unconditional, help: "Channel count for the parameter shapes.") var channels: Int = 64
    @Option(name: .customLong("sam-opt"), help: "Option settings key=value.") var samOptions: [String] = []

    func run() throws {
        let lib = try PluginDiscovery.resolve(plugin)
        for d in lib.plugins {
            print("\(d.name) (\(d.id)) \(d.version), \(d.kindName) plugin, ABI \(lib.entry.pointee.abi_version), license \(d.license)")
            print("  file: \(lib.path)")
            print("  \(d.description)")
            print("  options:" + (d.options.isEmpty ? " none" : ""))
            for o in d.options {
                print("    " + pad(o.name, 12) + pad(o.kind.rawValue, 6) + pad("default \(o.defaultText)", 14) + pad("range \(o.rangeText)", 18) + o.doc)
            }
        }
        guard lib.plugins.contains(where: { $0.kind == LTH4SA_KIND_SAM }) else { return }  // searchers have no parameters to show
        let sam = try SAMPlugin(library: lib, settings: samOptions)
        var rng = RNG(seed: 0)
        let inst = try sam.instantiate(channels: channels, rng: &rng, host: PluginHostContext(seed: 0))
        print("  parameters for \(channels) channels (\(sam.optionsText)): \(inst.parameterCount) in all")
        for (name, p) in inst.parameters { print("    " + pad(name, 16) + "\(p.value.shape)") }
    }
}

/// `lth4sa plugins check X`: the conformance kit; exits non-zero on any failure.
struct PluginsCheck: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check", abstract: "Conformance checks for plugin authors (non-zero exit on failure).")
    @Argument(help: "A plugin .so path or id.") var plugin: String
    @Option(name: [.customLong("sam-opt"), .customLong("opt")], help: "Option settings key=value (of the SAM or searcher).") var samOptions: [String] = []
    @Option(parsing: .unconditional, help: "Channel count to test with.") var channels: Int = 16
    @Option(help: "Also compare with reference dumps (a folder laid out as Tests/Fixtures/vectors/<case>; repeatable).") var reference: [String] = []

    @Flag(help: .hidden) var inProcess = false

    func run() throws {
        if !inProcess, let scanner = PluginScanner.executable() { return try runInChild(scanner) }
        if inProcess { _ = lth4sa_crash_install("") }  // the parent reports the check that crashed
        let progress = Conformance.Progress(started: { if inProcess { emit("phase " + $0) } }, finished: { emit(line($0)) })
        let (_, results) = try PluginCheck.run(plugin, options: samOptions, channels: channels, references: reference,
                                               subject: { emit("checking " + $0) }, progress: progress)
        let failures = results.filter { !$0.passed }.count
        print(failures == 0 ? "all checks passed" : "\(failures) check(s) failed")
        if failures > 0 { throw ExitCode(1) }
    }

    func line(_ r: Conformance.Result) -> String { "  \(r.passed ? "PASS" : "FAIL")  \(pad(r.name, 72)) \(r.detail)" }

    /// Written at once (unbuffered): a parent reads every line up to a crash.
    func emit(_ text: String) { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }

    /// The kit in a child process (the plugin is loaded only there): its lines relayed, a crash
    /// or a check without an answer for 120 s (`$LTH4SA_PLUGIN_CHECK_TIMEOUT`) reported as that
    /// check's failure.
    func runInChild(_ scanner: URL) throws {
        let limit = ProcessInfo.processInfo.environment["LTH4SA_PLUGIN_CHECK_TIMEOUT"].flatMap(Double.init).flatMap { $0 > 0 ? $0 : nil } ?? 120
        var arguments = ["plugins", "check", plugin, "--channels", String(channels), "--in-process"]
        for o in samOptions { arguments += ["--opt", o] }
        for r in reference { arguments += ["--reference", r] }
        let phase = PhaseBox()
        let run = try ChildRun(scanner, arguments: arguments, timeout: limit, standardError: .standardError) { text in
            if text.hasPrefix("phase ") { phase.set(String(text.dropFirst(6))) } else { print(text); lth4sa_stdout_flush() }
        }
        switch run.outcome {
        case .exit(0): return
        case .exit(let code): throw ExitCode(code)
        case .signal(let s):
            let name = phase.get() ?? "loading the plugin"
            print(line(.init(name: name, passed: false, detail: "the plugin crashed the check's process with \(PluginScanner.signalName(s))")))
        case .timedOut:
            print(line(.init(name: phase.get() ?? "loading the plugin", passed: false, detail: "no answer in \(Int(limit)) s; the check's process was killed")))
        }
        print("the kit stopped: a plugin that crashes or hangs fails")
        throw ExitCode(1)
    }
}

/// The last phase a child reported (set on the reader thread, read after it exits).
final class PhaseBox: @unchecked Sendable {  // its value is guarded by `lock`
    private let lock = NSLock()
    private var value: String?
    func set(_ v: String) { lock.lock(); value = v; lock.unlock() }
    func get() -> String? { lock.lock(); defer { lock.unlock() }; return value }
}
