import Foundation
import Tensor

/// Whole-file writes that a kill can never leave half-written: a temporary file beside the
/// target, fsync, rename, fsync of the folder. Every result file of a run goes through here.
public enum AtomicFile {
    /// Writes `data` to `url` atomically.
    public static func write(_ data: Data, to url: URL) throws { try SafeTensors.writeAtomically(data, to: url.path) }

    /// Writes `text` (UTF-8) to `url` atomically.
    public static func write(_ text: String, to url: URL) throws { try write(Data(text.utf8), to: url) }

    /// The one JSON style of every result file: snake_case keys, sorted, indented.
    public static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return e
    }

    /// Writes `value` as JSON (see `encoder`) to `url` atomically.
    public static func writeJSON<T: Encodable>(_ value: T, to url: URL) throws { try write(encoder.encode(value), to: url) }

    /// Reads a JSON file written by `writeJSON`; nil when it is missing or of another schema.
    public static func readJSON<T: Decodable>(_ type: T.Type, from url: URL) -> T? {
        guard let data = try? Data(contentsOf: url) else { return nil }
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return try? d.decode(type, from: data)
    }
}
