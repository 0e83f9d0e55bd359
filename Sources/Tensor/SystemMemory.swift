import Foundation

/// What the machine can give a process, for up-front refusals of work that cannot fit.
public enum SystemMemory {
    /// `MemAvailable` of /proc/meminfo in bytes (nil where it cannot be read).
    public static func availableBytes() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let kb = line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
            return kb.map { $0 * 1024 }
        }
        return nil
    }

    /// "1.8 TB", "512.0 MB".
    public static func text(_ bytes: Double) -> String {
        let units = ["B", "KB", "MB", "GB", "TB", "PB", "EB"]
        var v = bytes, u = 0
        while v >= 1000 && u < units.count - 1 { v /= 1000; u += 1 }
        return String(format: "%.1f %@", v, units[u])
    }

    /// Throws a one-line error when `needed` bytes (a lower-bound estimate of `what`) exceed
    /// the memory available now; `fix` says which flag changes it.
    public static func require(_ needed: Double, for what: String, fix: String) throws {
        guard let available = availableBytes(), needed > Double(available) else { return }
        throw LTHError("\(what) needs at least \(text(needed)) of memory, the machine has \(text(Double(available))) available; \(fix)")
    }
}
