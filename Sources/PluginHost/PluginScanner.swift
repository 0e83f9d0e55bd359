import Foundation
import LTH4SASDK

/// What one plugin library holds, as a scan found it: its plugins' descriptors, or why the
/// file cannot be used. Scans run in a helper process when one is available (see
/// `PluginScanner`), so a library that crashes, exits or hangs while loading is reported
/// here instead of taking the host down.
public struct ScannedLibrary: Codable, Sendable {
    public let path: String
    /// The entry table's ABI version (nil when the scan did not get that far).
    public let abiVersion: UInt32?
    public let plugins: [PluginDescriptor]
    /// One line saying why the file cannot be used; nil when it loads.
    public let failure: String?
    /// The file's size and modification time when scanned: the cache's key.
    let size: UInt64, modified: Double

    init(path: String, abiVersion: UInt32?, plugins: [PluginDescriptor], failure: String?, stamp: (size: UInt64, modified: Double)) {
        (self.path, self.abiVersion, self.plugins, self.failure) = (path, abiVersion, plugins, failure)
        (size, modified) = stamp
    }
}

/// Inspects plugin libraries in a child process, like GStreamer's `gst-plugin-scanner`, and
/// caches what it found by path, size and modification time
/// (`$XDG_CACHE_HOME/lth4sa/plugin-registry.json`, else `~/.cache/...`), so that only the
/// library a run chooses is ever opened in the host. The child is `$LTH4SA_PLUGIN_SCANNER`,
/// else the running executable when it is `lth4sa` (hidden subcommand `plugins scan-file`);
/// without one (a program embedding the library, the test runner) files are opened in this
/// process. Each scan has `timeout` seconds (`$LTH4SA_PLUGIN_SCAN_TIMEOUT`, default 10).
/// Thread-safe: no state outside the cache file (written atomically; concurrent writers keep
/// the last complete file).
public enum PluginScanner {
    /// The arguments that make the scanner executable scan one file.
    public static let subcommand = ["plugins", "scan-file"]

    /// The program scans run in (nil: this process).
    public static func executable(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL? {
        if let path = environment["LTH4SA_PLUGIN_SCANNER"], !path.isEmpty { return URL(fileURLWithPath: path) }
        let running = PluginDiscovery.executableURL()
        return running.lastPathComponent == "lth4sa" ? running : nil
    }

    public static func timeout(environment: [String: String] = ProcessInfo.processInfo.environment) -> Double {
        environment["LTH4SA_PLUGIN_SCAN_TIMEOUT"].flatMap(Double.init).flatMap { $0 > 0 ? $0 : nil } ?? 10
    }

    /// The scanner's side (`lth4sa plugins scan-file PATH`): opens `path` in this process and
    /// hands `emit` a line `phase NAME` before every step and a last line `result JSON`.
    public static func scanForParent(_ path: String, emit: (String) -> Void) {
        let stamp = fileStamp(path)
        let result: ScannedLibrary
        do {
            let library = try PluginLibrary(path: path) { emit("phase " + $0) }
            result = ScannedLibrary(path: path, abiVersion: library.entry.pointee.abi_version, plugins: library.plugins, failure: nil, stamp: stamp)
        } catch {
            result = ScannedLibrary(path: path, abiVersion: nil, plugins: [], failure: "\(error)", stamp: stamp)
        }
        let json = (try? JSONEncoder().encode(result)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        emit("result " + json)
    }

    /// Every file of `paths` scanned: from the cache when its size and modification time match,
    /// else now (in a child process when there is a scanner). Updates the cache.
    public static func scan(_ paths: [String]) -> [ScannedLibrary] {
        let environment = ProcessInfo.processInfo.environment
        let scanner = executable(environment: environment)
        let cacheFile = cacheURL(environment: environment)
        let stamp = scannerStamp(scanner)
        var registry = cacheFile.flatMap { try? JSONDecoder().decode(Registry.self, from: Data(contentsOf: $0)) }
        if registry?.scanner != stamp { registry = Registry(scanner: stamp, libraries: [:]) }
        var changed = false
        let results = paths.map { path -> ScannedLibrary in
            let now = fileStamp(path)
            if let cached = registry?.libraries[path], cached.size == now.size, cached.modified == now.modified { return cached }
            let (scanned, cacheable) = scanner.map { inChild(path, scanner: $0, timeout: timeout(environment: environment)) } ?? (inProcess(path), true)
            if cacheable {
                registry?.libraries[path] = scanned
                changed = true
            }
            return scanned
        }
        if changed, let cacheFile, let registry, let data = try? JSONEncoder().encode(registry) {
            try? FileManager.default.createDirectory(at: cacheFile.deletingLastPathComponent(), withIntermediateDirectories: true)
            try? data.write(to: cacheFile, options: .atomic)
        }
        return results
    }

    /// The cache: scans of one scanner build, by path.
    struct Registry: Codable {
        var scanner: String
        var libraries: [String: ScannedLibrary]
    }

    static func cacheURL(environment: [String: String]) -> URL? {
        if let xdg = environment["XDG_CACHE_HOME"], xdg.hasPrefix("/") { return URL(fileURLWithPath: xdg).appendingPathComponent("lth4sa/plugin-registry.json") }
        guard let home = environment["HOME"], home.hasPrefix("/") else { return nil }
        return URL(fileURLWithPath: home).appendingPathComponent(".cache/lth4sa/plugin-registry.json")
    }

    /// What makes cached scans valid: this host's ABI and the scanner build that made them.
    static func scannerStamp(_ scanner: URL?) -> String {
        let build = scanner.map { let s = fileStamp($0.path); return "\($0.path) \(s.size) \(s.modified)" } ?? "in-process"
        return "abi \(LTH4SA_ABI_VERSION) \(build)"
    }

    static func fileStamp(_ path: String) -> (size: UInt64, modified: Double) {
        var info = stat()
        guard stat(path, &info) == 0 else { return (0, 0) }
        return (UInt64(info.st_size), Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) * 1e-9)
    }

    /// Opens `path` in this process (no scanner available).
    static func inProcess(_ path: String) -> ScannedLibrary {
        var result: ScannedLibrary?
        scanForParent(path) { line in
            if line.hasPrefix("result "), let r = try? JSONDecoder().decode(ScannedLibrary.self, from: Data(line.dropFirst(7).utf8)) { result = r }
        }
        return result ?? ScannedLibrary(path: path, abiVersion: nil, plugins: [], failure: "plugin '\(path)': scan gave no result", stamp: fileStamp(path))
    }

    /// Scans `path` in a child `scanner` process with `timeout` seconds. `cacheable` is false
    /// for outcomes that may not repeat (no answer in time, the child not starting).
    static func inChild(_ path: String, scanner: URL, timeout: Double) -> (ScannedLibrary, cacheable: Bool) {
        let stamp = fileStamp(path)
        func failed(_ why: String, cacheable: Bool = true) -> (ScannedLibrary, cacheable: Bool) {
            (ScannedLibrary(path: path, abiVersion: nil, plugins: [], failure: "plugin '\(path)' \(why)", stamp: stamp), cacheable)
        }
        let run: ChildRun
        do { run = try ChildRun(scanner, arguments: subcommand + [path], timeout: timeout) } catch {
            return failed("could not be scanned: starting \(scanner.path) failed: \(error)", cacheable: false)
        }
        let lines = run.output.split(separator: "\n").map(String.init)
        if let last = lines.last(where: { $0.hasPrefix("result ") }),
           let result = try? JSONDecoder().decode(ScannedLibrary.self, from: Data(last.dropFirst(7).utf8)) {
            return (result, true)
        }
        let phase = lines.last(where: { $0.hasPrefix("phase ") }).map { String($0.dropFirst(6)) } ?? "loading"
        let place = phase == "loading" ? "while loading (in dlopen or a constructor)" : "in \(phase)"
        switch run.outcome {
        case .timedOut: return failed("gave no answer in \(Int(timeout)) s \(place)", cacheable: false)
        case .signal(let s): return failed("crashed with \(signalName(s)) \(place)")
        case .exit(let code): return failed("called exit(\(code)) \(place)")
        }
    }

    /// SIGSEGV, SIGBUS, ... for signal number `s`.
    public static func signalName(_ s: Int32) -> String {
        let names: [Int32: String] = [SIGSEGV: "SIGSEGV", SIGBUS: "SIGBUS", SIGABRT: "SIGABRT", SIGFPE: "SIGFPE", SIGILL: "SIGILL",
                                      SIGKILL: "SIGKILL", SIGTERM: "SIGTERM", SIGTRAP: "SIGTRAP"]
        return names[s] ?? "signal \(s)"
    }
}

/// A child process run until it exits or stays silent for `timeout` seconds (no new line on
/// its standard output; then it is killed), its standard output collected and each line told
/// to `onLine` (on a reader thread) as it arrives. Standard error goes to `standardError`
/// (default: discarded). The child gets this process's environment without an MPI launcher's
/// variables. Blocks the calling thread.
public struct ChildRun {
    public enum Outcome: Equatable, Sendable { case exit(Int32), signal(Int32), timedOut }
    public let output: String
    public let outcome: Outcome

    public init(_ executable: URL, arguments: [String], timeout: Double, standardError: FileHandle = .nullDevice,
                onLine: (@Sendable (String) -> Void)? = nil) throws {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        // a helper of one rank is no rank itself: without the launcher's variables it does not join the job
        process.environment = ProcessInfo.processInfo.environment.filter { key, _ in
            !["OMPI_", "PMIX_", "PMI_"].contains { key.hasPrefix($0) }
        }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = standardError
        let exited = DispatchSemaphore(value: 0), drained = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
        let collected = Collected()
        let reader = pipe.fileHandleForReading
        Thread.detachNewThread {
            while true {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                collected.append(chunk, onLine: onLine)
            }
            drained.signal()
        }
        var timedOut = false
        while exited.wait(timeout: .now() + timeout) == .timedOut {
            guard collected.sawProgress() else {  // no line for `timeout` seconds: stuck
                timedOut = true
                kill(process.processIdentifier, SIGKILL)
                exited.wait()
                break
            }
        }
        drained.wait()
        output = collected.text
        if timedOut {
            outcome = .timedOut
        } else if process.terminationReason == .uncaughtSignal {
            outcome = .signal(process.terminationStatus)
        } else {
            outcome = .exit(process.terminationStatus)
        }
    }

    /// Output read so far, and whether a line arrived since the last look.
    private final class Collected: @unchecked Sendable {  // its state is guarded by `lock`
        private let lock = NSLock()
        private var data = Data(), progressed = false, pending = Data()

        func append(_ chunk: Data, onLine: (@Sendable (String) -> Void)?) {
            lock.lock()
            data.append(chunk)
            pending.append(chunk)
            var lines: [String] = []
            while let newline = pending.firstIndex(of: 0x0A) {
                lines.append(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                pending = Data(pending[(newline + 1)...])
                progressed = true
            }
            lock.unlock()
            for line in lines { onLine?(line) }
        }

        func sawProgress() -> Bool {
            lock.lock()
            defer { progressed = false; lock.unlock() }
            return progressed
        }

        var text: String {
            lock.lock()
            defer { lock.unlock() }
            return String(decoding: data, as: UTF8.self)
        }
    }
}
