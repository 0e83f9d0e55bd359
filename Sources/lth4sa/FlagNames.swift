import Foundation

/// The library names a setting by its field, in backquotes (`` `valPerClass` ``); the
/// command line shows the flag that sets it (`--val-per-class`). Backquoted words that are no
/// setting (`` `correlate` ``) stay as they are.
enum FlagNames {
    /// Fields whose flag is not their kebab-case name.
    static let exceptions = ["directory": "--output", "samOptions": "--sam-opt", "searcherOptions": "--searcher-opt",
                             "reward.latency": "--reward-latency", "checkFinite": "--no-check-finite"]
    /// Fields named in the library's messages.
    static let settings = Set<String>([
        "batch", "resume", "supernetSampling", "sam", "valPerClass", "scheme", "lr", "bnGroups", "epochs", "bnRecalibrate", "weightDecay",
        "warmupEpochs", "seeds", "searcher", "momentum", "margin", "landscapeMaxBlocks", "keepProb", "cropPadding", "classes", "limit",
        "supernetEpochs", "searchSeeds", "budget", "candidates", "seed", "threads", "model", "data",
    ]).union(exceptions.keys)

    /// The flag of `field` ("valPerClass" -> "--val-per-class").
    static func flag(_ field: String) -> String {
        exceptions[field] ?? "--" + field.reduce(into: "") { s, c in s += c.isUppercase ? "-" + c.lowercased() : String(c) }
    }

    /// `text` with every backquoted setting replaced by its flag.
    static func rewrite(_ text: String) -> String {
        var out = "", rest = Substring(text)
        while let open = rest.firstIndex(of: "`") {
            out += rest[..<open]
            let after = rest[rest.index(after: open)...]
            guard let close = after.firstIndex(of: "`") else { out += rest[open...]; return out }
            let word = String(after[..<close])
            out += settings.contains(word) ? flag(word) : "`" + word + "`"
            rest = after[after.index(after: close)...]
        }
        return out + rest
    }
}
