import ArgumentParser
import Foundation
import LTH4SASDK
import PluginHost
import Tensor

/// `lth4sa plugins`: list, describe and check plugins (like gst-inspect).
struct Plugins: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List installed plugins, show one, or run the conformance kit on it.",
        subcommands: [PluginsList.self, PluginsInfo.self, PluginsCheck.self], defaultSubcommand: PluginsList.self)
}

/// `lth4sa plugins [list]`: every plugin found, then every file that failed to load.
struct PluginsList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Table of the plugins found in the search folders.")

    func run() throws {
        let (loaded, failed) = PluginDiscovery.scan()
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
            for p in lib.plugins {
                let shadowed = !seenIds.insert(p.id).inserted
                print(pad(p.id, 14) + pad(p.kindName, 10) + pad(p.version, 9) + pad(String(lib.entry.pointee.abi_version), 5)
                      + pad(URL(fileURLWithPath: lib.path).lastPathComponent, 28) + p.description
                      + (shadowed ? "  [shadowed by an earlier folder: \(lib.path)]" : ""))
            }
        }
        if loaded.isEmpty { print("(no plugins found; build them with ./scripts/setup.sh or set LTH4SA_PLUGIN_PATH)") }
        if !failed.isEmpty {
            print("\nfiles that failed to load:")
            for f in failed { print("  \(f.path): \(f.reason)") }
        }
    }
}

/// `lth4sa plugins info X`: descriptor, options, parameter shapes for a channel count.
struct PluginsInfo: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Descriptor, options and parameter shapes of one plugin.")
    @Argument(help: "A plugin .so path or id.") var plugin: String
    @Option(help: "Channel count for the parameter shapes.") var channels: Int = 64
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
    @Option(help: "Channel count to test with.") var channels: Int = 16
    @Option(help: "Also compare with reference dumps (a folder laid out as Tests/Fixtures/vectors/<case>; repeatable).") var reference: [String] = []

    func run() throws {
        let (subject, results) = try PluginCheck.run(plugin, options: samOptions, channels: channels, references: reference)
        print("checking \(subject)")
        for r in results { print("  \(r.passed ? "PASS" : "FAIL")  \(pad(r.name, 72)) \(r.detail)") }
        let failures = results.filter { !$0.passed }.count
        print(failures == 0 ? "all checks passed" : "\(failures) check(s) failed")
        if failures > 0 { throw ExitCode(1) }
    }
}
