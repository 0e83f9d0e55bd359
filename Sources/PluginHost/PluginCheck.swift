import Foundation
import LTH4SASDK
import Tensor

/// `lth4sa plugins check`: the right conformance kit for what a library holds (a SAM, else a
/// searcher), plus comparisons with reference dumps for a SAM.
public enum PluginCheck {
    /// Tolerance of the comparison with reference dumps (max |a - b| / max |b| per tensor).
    public static let referenceTolerance = 1e-4

    /// What was checked (one line, told to `subject` before the checks run) and every check's
    /// result (each also told to `progress`).
    public static func run(_ spec: String, options: [String], channels: Int, references: [String],
                           subject: (String) -> Void = { _ in }, progress: Conformance.Progress = Conformance.Progress()) throws
        -> (subject: String, results: [Conformance.Result]) {
        let library = try PluginDiscovery.resolve(spec)
        if !library.plugins.contains(where: { $0.kind == LTH4SA_KIND_SAM }), let d = library.plugins.first(where: { $0.kind == LTH4SA_KIND_SEARCHER }) {
            let what = "searcher \(d.id) \(d.version) from \(library.path) on a space of 2-2-2 blocks"
            subject(what)
            return (what, SearcherConformance.run(library.path, settings: options, progress: progress))
        }
        let sam = try SAMPlugin(library: library, settings: options)
        let what = "\(sam.id) \(sam.descriptor.version) from \(sam.library.path) with \(sam.optionsText.isEmpty ? "no options" : sam.optionsText), \(channels) channels"
        subject(what)
        var results = Conformance.run(sam, channels: channels, progress: progress)
        for dir in references {
            let name = "reference \(URL(fileURLWithPath: dir).lastPathComponent)"
            progress.started(name)
            do {
                let compared = try ReferenceCheck.run(plugin: sam, directory: dir)
                guard let worst = compared.max(by: { $0.relativeError < $1.relativeError }) else { throw LTHError("no tensors compared in '\(dir)'") }
                results.append(.init(name: name, passed: worst.relativeError < referenceTolerance,
                                     detail: String(format: "%d tensors, worst relative error %.2e (%@), tolerance %.0e", compared.count, worst.relativeError,
                                                    worst.name, referenceTolerance)))
            } catch {
                results.append(.init(name: name, passed: false, detail: "\(error)"))
            }
            progress.finished(results.last!)
        }
        return (what, results)
    }
}
