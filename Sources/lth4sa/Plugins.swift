import ArgumentParser
import Foundation
import PluginHost
import ProcessSupport

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
        print(PluginReports.listing(PluginDiscovery.scan(), folders: PluginDiscovery.searchFolders()).joined(separator: "\n"))
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
        print(try PluginReports.info(plugin, channels: channels, options: samOptions).joined(separator: "\n"))
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
        if !inProcess, let scanner = PluginScanner.executable() {  // the kit in a child process: a crash or a silent check fails that check
            let arguments = PluginReports.childArguments(plugin, options: samOptions, channels: channels, references: reference)
            let code = try PluginReports.checkInChild(scanner, arguments: arguments) { print($0); lth4sa_stdout_flush() }
            if code != 0 { throw ExitCode(code) }
            return
        }
        if inProcess { _ = lth4sa_crash_install("") }  // the parent reports the check that crashed
        // every line written at once (unbuffered): a parent reads every line up to a crash
        let failures = try PluginReports.check(plugin, options: samOptions, channels: channels, references: reference, phases: inProcess) {
            FileHandle.standardOutput.write(Data(($0 + "\n").utf8))
        }
        if failures > 0 { throw ExitCode(1) }
    }
}
