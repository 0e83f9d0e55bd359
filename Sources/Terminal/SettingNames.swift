/// Library messages name a setting by its field in backquotes (`` `valPerClass` ``); a
/// command-line program shows the flag that sets it instead (`--val-per-class`). Backquoted
/// words that are not among `settings` (`` `correlate` ``) stay as they are.
public struct SettingNames: Sendable {
    /// Field -> flag where the flag is not the field's kebab-case name.
    public let exceptions: [String: String]
    /// The fields to rewrite.
    public let settings: Set<String>

    public init(exceptions: [String: String], settings: Set<String>) {
        self.exceptions = exceptions
        self.settings = settings.union(exceptions.keys)
    }

    /// The flag of `field` ("valPerClass" -> "--val-per-class").
    public func flag(_ field: String) -> String {
        exceptions[field] ?? "--" + field.reduce(into: "") { s, c in s += c.isUppercase ? "-" + c.lowercased() : String(c) }
    }

    /// `text` with every backquoted setting replaced by its flag.
    public func rewrite(_ text: String) -> String {
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
