import Foundation
import LTH4SASDK
import Tensor

/// The text of `lth4sa plugins`, `plugins info` and `plugins check` (the program prints it).
public enum PluginReports {
    /// The search folders, every plugin found (shadowed ids marked) and every file that
    /// failed to load, with the reason.
    public static func listing(_ scanned: [ScannedLibrary], folders: [String]) -> [String] {
        let loaded = scanned.filter { $0.failure == nil }, failed = scanned.filter { $0.failure != nil }
        var lines = ["searched, in order (an id resolves to its first match):"]
        for folder in folders {
            let absolute = URL(fileURLWithPath: folder).standardizedFileURL.path
            let count = loaded.filter { URL(fileURLWithPath: $0.path).deletingLastPathComponent().path == absolute }.count
            let exists = FileManager.default.fileExists(atPath: absolute)
            lines.append("  \(absolute)  " + (exists ? "(\(count) \(count == 1 ? "library" : "libraries"))" : "(missing)"))
        }
        lines.append("id".padded(to: 14) + "kind".padded(to: 10) + "version".padded(to: 9) + "abi".padded(to: 5) + "file".padded(to: 28) + "description")
        var seenIds = Set<String>()
        for lib in loaded {
            let file = URL(fileURLWithPath: lib.path).lastPathComponent, abi = lib.abiVersion.map(String.init) ?? "?"
            for p in lib.plugins {
                let shadowed = !seenIds.insert(p.id).inserted
                let row = p.id.padded(to: 14) + p.kindName.padded(to: 10) + p.version.padded(to: 9) + abi.padded(to: 5) + file.padded(to: 28) + p.description
                lines.append(row + (shadowed ? "  [shadowed by an earlier folder: \(lib.path)]" : ""))
            }
        }
        if loaded.isEmpty { lines.append("(no plugins found; build them with ./scripts/setup.sh or set LTH4SA_PLUGIN_PATH)") }
        if !failed.isEmpty {
            lines.append("\nfiles that cannot be used (scanned in a separate process; nothing else is affected):")
            for f in failed { lines.append("  \(f.path): \(f.failure!)") }
        }
        return lines
    }

    /// Descriptor and options of every plugin in `spec`'s library; for a SAM, its parameter
    /// shapes for `channels` channels with `options` set.
    public static func info(_ spec: String, channels: Int, options: [String]) throws -> [String] {
        let lib = try PluginDiscovery.resolve(spec)
        var lines: [String] = []
        for d in lib.plugins {
            lines += ["\(d.name) (\(d.id)) \(d.version), \(d.kindName) plugin, ABI \(lib.entry.pointee.abi_version), license \(d.license)",
                      "  file: \(lib.path)", "  \(d.description)", "  options:" + (d.options.isEmpty ? " none" : "")]
            for o in d.options {
                lines.append("    " + o.name.padded(to: 12) + o.kind.rawValue.padded(to: 6) + "default \(o.defaultText)".padded(to: 14) + "range \(o.rangeText)".padded(to: 18) + o.doc)
            }
        }
        guard lib.plugins.contains(where: { $0.kind == LTH4SA_KIND_SAM }) else { return lines }  // searchers have no parameters to show
        let sam = try SAMPlugin(library: lib, settings: options)
        var rng = RNG(seed: 0)
        let inst = try sam.instantiate(channels: channels, rng: &rng, host: PluginHostContext(seed: 0))
        lines.append("  parameters for \(channels) channels (\(sam.optionsText)): \(inst.parameterCount) in all")
        for (name, p) in inst.parameters { lines.append("    " + name.padded(to: 16) + "\(p.value.shape)") }
        if !inst.buffers.isEmpty {
            lines.append("  buffers (not trained; saved in checkpoints, updated by training forwards):")
            for (name, b) in inst.buffers { lines.append("    " + name.padded(to: 24) + "\(b.tensor.shape)" + (b.integer ? " (counter)" : "")) }
        }
        return lines
    }

    /// How long a check in a child process may stay silent: `$LTH4SA_PLUGIN_CHECK_TIMEOUT`
    /// seconds, 120 by default.
    public static func checkTimeout(environment: [String: String] = ProcessInfo.processInfo.environment) -> Double {
        environment["LTH4SA_PLUGIN_CHECK_TIMEOUT"].flatMap(Double.init).flatMap { $0 > 0 ? $0 : nil } ?? 120
    }

    /// One check's line of `plugins check`.
    public static func line(_ r: Conformance.Result) -> String { "  \(r.passed ? "PASS" : "FAIL")  \(r.name.padded(to: 72)) \(r.detail)" }

    /// The kit on `spec` in this process, each line written to `emit` as soon as it is known
    /// (with `phases`, also "phase X" before each check, for a parent process relaying them).
    /// Returns the number of failed checks; the last line says it.
    public static func check(_ spec: String, options: [String], channels: Int, references: [String], phases: Bool,
                             emit: @escaping (String) -> Void) throws -> Int {
        let progress = Conformance.Progress(started: { if phases { emit("phase " + $0) } }, finished: { emit(line($0)) })
        let (_, results) = try PluginCheck.run(spec, options: options, channels: channels, references: references,
                                               subject: { emit("checking " + $0) }, progress: progress)
        let failures = results.filter { !$0.passed }.count
        emit(failures == 0 ? "all checks passed" : "\(failures) check(s) failed")
        return failures
    }

    /// The arguments of `lth4sa plugins check` that run the kit in a child process.
    public static func childArguments(_ spec: String, options: [String], channels: Int, references: [String]) -> [String] {
        ["plugins", "check", spec, "--channels", String(channels), "--in-process"] + options.flatMap { ["--opt", $0] } + references.flatMap { ["--reference", $0] }
    }

    /// Runs `executable arguments` (the kit on one plugin, in a child process: the plugin is
    /// loaded only there), relaying its lines to `output` except "phase X" lines, which name
    /// the check in progress. A crash, or a check silent for `timeout` seconds, is reported as
    /// that check's failure. Returns the child's exit status (1 after a crash or a time-out).
    public static func checkInChild(_ executable: URL, arguments: [String], timeout: Double = checkTimeout(),
                                    output: @escaping @Sendable (String) -> Void) throws -> Int32 {
        let phase = PhaseBox()
        let run = try ChildRun(executable, arguments: arguments, timeout: timeout, standardError: .standardError) { text in
            if text.hasPrefix("phase ") { phase.set(String(text.dropFirst(6))) } else { output(text) }
        }
        switch run.outcome {
        case .exit(let code): return code
        case .signal(let s):
            output(line(.init(name: phase.get() ?? "loading the plugin", passed: false,
                              detail: "the plugin crashed the check's process with \(PluginScanner.signalName(s))")))
        case .timedOut:
            output(line(.init(name: phase.get() ?? "loading the plugin", passed: false, detail: "no answer in \(Int(timeout)) s; the check's process was killed")))
        }
        output("the kit stopped: a plugin that crashes or hangs fails")
        return 1
    }

}

/// The last phase a child reported (set on the reader thread, read after it exits).
final class PhaseBox: @unchecked Sendable {  // its value is guarded by `lock`
    private let lock = NSLock()
    private var value: String?
    func set(_ v: String) { lock.lock(); value = v; lock.unlock() }
    func get() -> String? { lock.lock(); defer { lock.unlock() }; return value }
}
