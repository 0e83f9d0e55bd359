import Foundation
import LTH4SASDK
import Tensor

/// A plugin library opened with `dlopen(RTLD_NOW | RTLD_LOCAL)`, its entry table checked
/// (ABI version first, then struct sizes) and its plugins' static descriptors read.
/// Libraries are never closed: plugins built by SwiftPM link the Swift runtime, which does
/// not support unloading; the handle lives as long as the process.
public final class PluginLibrary {
    public let path: String
    public let entry: UnsafePointer<lth4sa_plugin_entry_t>
    public let plugins: [PluginDescriptor]

    /// Opens and validates `path`. Every failure is a one-line `LTHError` naming the file.
    /// `phase` is told each step before it runs ("loading", "lth4sa_plugin_entry",
    /// "descriptors"), so that a scanner process that dies in one can say where.
    public init(path: String, phase: (String) -> Void = { _ in }) throws {
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else {
            throw LTHError("plugin '\(path)' does not exist")
        }
        if let truncated = ELFFile.truncation(path) { throw LTHError("plugin '\(path)' is a truncated ELF file: \(truncated)") }
        phase("loading")
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown reason"
            throw LTHError("plugin '\(path)' is not a loadable shared library: \(reason)")
        }
        guard let symbol = dlsym(handle, LTH4SA_ENTRY_SYMBOL) else {
            throw LTHError("'\(path)' is a shared library but not an lth4sa plugin (no \(LTH4SA_ENTRY_SYMBOL) symbol)")
        }
        let function = unsafeBitCast(symbol, to: (@convention(c) () -> UnsafePointer<lth4sa_plugin_entry_t>?).self)
        phase(LTH4SA_ENTRY_SYMBOL)
        guard let entry = function() else { throw LTHError("plugin '\(path)': \(LTH4SA_ENTRY_SYMBOL)() returned NULL") }
        // ABI version first: a future table layout must not be read any further.
        let version = entry.withMemoryRebound(to: UInt32.self, capacity: 2) { $0[1] }
        guard version == LTH4SA_ABI_VERSION else {
            throw LTHError("plugin '\(path)' was built for ABI version \(version); this lth4sa speaks version \(LTH4SA_ABI_VERSION)")
        }
        guard entry.pointee.struct_size >= UInt32(MemoryLayout<lth4sa_plugin_entry_t>.size) else {
            throw LTHError("plugin '\(path)': entry table of \(entry.pointee.struct_size) bytes is smaller than the \(MemoryLayout<lth4sa_plugin_entry_t>.size) of ABI \(LTH4SA_ABI_VERSION)")
        }
        self.entry = entry
        phase("descriptors")
        var plugins: [PluginDescriptor] = []
        for i in 0..<entry.pointee.plugin_count {
            guard let d = entry.pointee.descriptor(i) else { throw LTHError("plugin '\(path)': no descriptor for plugin \(i)") }
            let declared = UnsafeRawPointer(d).load(as: UInt32.self)  // struct_size alone: an older descriptor is shorter than ours
            guard declared >= UInt32(PluginDescriptor.firstSize) else {
                throw LTHError("plugin '\(path)': descriptor \(i) of \(declared) bytes is too small")
            }
            plugins.append(PluginDescriptor(library: path, index: i, raw: d))
        }
        guard !plugins.isEmpty else { throw LTHError("plugin '\(path)' declares no plugins") }
        self.plugins = plugins
    }

    /// The table of plugin `index` for `interface` (e.g. LTH4SA_SAM_INTERFACE), or nil.
    public func factory(_ index: UInt32, _ interface: String) -> UnsafeRawPointer? {
        interface.withCString { entry.pointee.factory(index, $0) }
    }

    /// The first plugin of `kind` and its function table for `interface`, checked to be at
    /// least as large as this host's `T`. `role` names the plugin in errors ("SAM",
    /// "searcher"); `hint` says what the option expects.
    /// `minimumSize`: the size of the table's first version (later fields are appended and
    /// read only when `struct_size` covers them); default all of `T`.
    func table<T>(kind: UInt32, interface: String, as _: T.Type, role: String, hint: String, minimumSize: Int? = nil) throws -> (PluginDescriptor, UnsafePointer<T>) {
        guard let d = plugins.first(where: { $0.kind == kind }) else {
            let kinds = plugins.map { "\($0.id) (\($0.kindName))" }.joined(separator: ", ")
            throw LTHError("'\(path)' holds no \(role) plugin (it has \(kinds)); \(hint)")
        }
        guard let raw = factory(d.index, interface) else {
            throw LTHError("plugin \(d.id) in '\(path)' does not implement \(interface)")
        }
        let size = raw.load(as: UInt32.self)  // every table starts with its struct_size
        let needed = minimumSize ?? MemoryLayout<T>.size
        guard size >= UInt32(needed) else {
            throw LTHError("plugin \(d.id): \(role) table of \(size) bytes, ABI \(LTH4SA_ABI_VERSION) needs \(needed)")
        }
        return (d, raw.assumingMemoryBound(to: T.self))
    }
}

/// One declared option of a plugin.
public struct PluginOption: Codable, Sendable {
    public enum Kind: String, Codable, Sendable { case int, float, bool }
    public let name: String, kind: Kind, defaultValue: Double, min: Double, max: Double, doc: String

    /// Parses and range-checks `text` for this option.
    public func parse(_ text: String, plugin: String, flag: String = "`samOptions`") throws -> Double {
        let value: Double?
        switch kind {
        case .int: value = Int(text).map(Double.init)
        case .float: value = Double(text)
        case .bool: value = ["1", "true", "yes", "on"].contains(text.lowercased()) ? 1 : ["0", "false", "no", "off"].contains(text.lowercased()) ? 0 : nil
        }
        guard let v = value, v.isFinite else { throw LTHError("\(flag) \(name)=\(text): not a valid \(kind.rawValue) for plugin \(plugin)") }
        guard v >= min && v <= max else {
            throw LTHError("\(flag) \(name)=\(text) is out of range for plugin \(plugin): expected \(format(min))...\(format(max))")
        }
        return v
    }

    func format(_ v: Double) -> String { kind == .float ? String(v) : String(Int(v)) }
    public var defaultText: String { format(defaultValue) }
    public var rangeText: String { "\(format(min))...\(format(max))" }
}

/// A plugin's static description (copied out of the library's descriptor).
public struct PluginDescriptor: Codable, Sendable {
    public let library: String
    public let index: UInt32
    public let kind: UInt32
    public let id: String, name: String, version: String, description: String, license: String
    public let options: [PluginOption]
    /// LTH4SA_PLUGIN_* capability flags (0 for a descriptor from before them; nil in a plugin
    /// registry cached before them).
    public let flags: UInt32?

    /// The descriptor's size in its first version (up to `options`): plugins built against that
    /// header keep loading.
    static let firstSize = MemoryLayout<lth4sa_descriptor_t>.offset(of: \.flags)!

    /// Whether the plugin declares LTH4SA_PLUGIN_CONCURRENT_INSTANCES (replicas may run in lanes).
    public var concurrentInstances: Bool { (flags ?? 0) & LTH4SA_PLUGIN_CONCURRENT_INSTANCES != 0 }

    init(library: String, index: UInt32, raw: UnsafePointer<lth4sa_descriptor_t>) {
        // copy only what the plugin's descriptor holds (an older one ends before `flags`)
        let size = min(Int(UnsafeRawPointer(raw).load(as: UInt32.self)), MemoryLayout<lth4sa_descriptor_t>.size)  // struct_size, read alone
        let copy = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<lth4sa_descriptor_t>.size, alignment: MemoryLayout<lth4sa_descriptor_t>.alignment)
        defer { copy.deallocate() }
        copy.initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<lth4sa_descriptor_t>.size)
        copy.copyMemory(from: UnsafeRawPointer(raw), byteCount: size)
        let d = copy.load(as: lth4sa_descriptor_t.self)
        flags = d.flags  // 0 from the zeroed copy when the plugin's descriptor ends before it
        self.library = library
        self.index = index
        kind = d.kind
        id = String(cString: d.id)
        name = String(cString: d.name)
        version = String(cString: d.version)
        description = String(cString: d.description)
        license = String(cString: d.license)
        var options: [PluginOption] = []
        if let o = d.options {
            for i in 0..<Int(d.option_count) {
                let raw = o[i]
                let kind: PluginOption.Kind = raw.type == LTH4SA_OPTION_FLOAT ? .float : raw.type == LTH4SA_OPTION_BOOL ? .bool : .int
                options.append(PluginOption(name: String(cString: raw.name), kind: kind, defaultValue: raw.default_value,
                                            min: raw.min_value, max: raw.max_value, doc: String(cString: raw.doc)))
            }
        }
        self.options = options
    }

    public var kindName: String { kind == LTH4SA_KIND_SAM ? "sam" : kind == LTH4SA_KIND_SEARCHER ? "searcher" : "unknown(\(kind))" }

    /// Every declared option with its value: defaults overridden by `key=value` settings.
    public func resolveOptions(_ settings: [String], flag: String = "`samOptions`") throws -> [(String, Double)] {
        var values = Dictionary(uniqueKeysWithValues: options.map { ($0.name, $0.defaultValue) })
        var given = Set<String>()
        for s in settings {
            let parts = s.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else { throw LTHError("\(flag) '\(s)' is not key=value") }
            guard given.insert(parts[0]).inserted else { throw LTHError("\(flag) sets '\(parts[0])' twice; give each option once") }
            guard let option = options.first(where: { $0.name == parts[0] }) else {
                let known = options.map { $0.name }.joined(separator: ", ")
                throw LTHError("plugin \(id) has no option '\(parts[0])'; its options: \(known.isEmpty ? "none" : known)")
            }
            values[option.name] = try option.parse(parts[1], plugin: id, flag: flag)
        }
        return options.map { ($0.name, values[$0.name]!) }
    }
}

/// Where plugins named by id are looked for, in this order (the first match wins):
/// 1. `$LTH4SA_PLUGIN_PATH` (colon-separated folders): what the user asks for explicitly;
/// 2. `./plugins`: a checkout or a project folder;
/// 3. `<prefix>/lib/lth4sa/plugins` where the executable is `<prefix>/bin/lth4sa`
///    (`scripts/install.sh --prefix`);
/// 4. `~/.local/lib/lth4sa/plugins`: the default install folder of `scripts/install.sh`;
/// 5. the `plugins/` of the source checkout when the executable runs from its `.build/`.
/// A path (anything with a `/` or ending in `.so`) is loaded as given.
public enum PluginDiscovery {
    /// The search folders for `environment` (default: this process's), in order.
    public static func searchFolders(environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        var folders: [String] = []
        if let env = environment["LTH4SA_PLUGIN_PATH"] {
            folders += env.split(separator: ":").map(String.init).filter { !$0.isEmpty }
        }
        folders.append("plugins")
        let exe = executableURL()
        let prefix = exe.deletingLastPathComponent().deletingLastPathComponent()
        folders.append(prefix.appendingPathComponent("lib/lth4sa/plugins").path)
        if let home = environment["HOME"], !home.isEmpty {
            folders.append(URL(fileURLWithPath: home).appendingPathComponent(".local/lib/lth4sa/plugins").path)
        }
        // <checkout>/.build/<triple>/release/lth4sa or <checkout>/.build/release/lth4sa
        var up = exe.deletingLastPathComponent()
        while up.path != "/" && up.lastPathComponent != ".build" { up = up.deletingLastPathComponent() }
        if up.lastPathComponent == ".build" { folders.append(up.deletingLastPathComponent().appendingPathComponent("plugins").path) }
        var seen = Set<String>()
        return folders.filter { seen.insert(URL(fileURLWithPath: $0).standardizedFileURL.path).inserted }
    }

    /// The running executable, symlinks resolved (`/proc/self/exe`; argv[0] as a fallback).
    static func executableURL() -> URL {
        if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return URL(fileURLWithPath: path) }
        return URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    }

    /// Every `*.so` in the search folders, in search order, as scanned by `PluginScanner` (in a
    /// child process when there is a scanner, from its cache when the file is unchanged).
    public static func scan() -> [ScannedLibrary] {
        var paths: [String] = [], seen = Set<String>()
        for folder in searchFolders() {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { continue }
            for name in names.sorted() where name.hasSuffix(".so") {
                let path = URL(fileURLWithPath: folder).appendingPathComponent(name).standardizedFileURL.path
                if seen.insert(path).inserted { paths.append(path) }
            }
        }
        return PluginScanner.scan(paths)
    }

    /// Resolves `spec`, a path to a library or a plugin id / file stem found in the search
    /// folders, and opens that one library in this process. Candidates are scanned first
    /// (`scan`), so a file that crashes, exits or hangs while loading is an error naming it,
    /// and no other file is opened here.
    public static func resolve(_ spec: String) throws -> PluginLibrary {
        if spec.contains("/") || spec.hasSuffix(".so") {
            guard FileManager.default.fileExists(atPath: spec) else { throw LTHError("plugin '\(spec)' does not exist") }
            if let failure = PluginScanner.scan([spec]).first?.failure { throw LTHError(failure) }
            return try PluginLibrary(path: spec)
        }
        let id = spec.lowercased()
        for scanned in scan() where scanned.plugins.contains(where: { $0.id == id })
            || URL(fileURLWithPath: scanned.path).lastPathComponent.lowercased() == "lib\(id).so" {
            if let failure = scanned.failure { throw LTHError(failure) }
            return try PluginLibrary(path: scanned.path)
        }
        throw LTHError("no plugin '\(spec)' in \(searchFolders().joined(separator: ", ")); give a path to its .so file")
    }
}
