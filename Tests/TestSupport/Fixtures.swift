import Foundation

/// Helpers the test targets share.
public enum Fixtures {
    /// The repository's root folder.
    public static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Compiles the C `source` (a path relative to the repository) with `flags` against
    /// SDK/include alone into `folder/name`: a plugin library, or a program when `shared` is
    /// false. Returns the output's path; throws when `cc` fails.
    public static func compile(_ source: String, flags: [String] = [], into folder: URL, name: String? = nil, shared: Bool = true) throws -> String {
        let stem = URL(fileURLWithPath: source).deletingPathExtension().lastPathComponent
        let out = folder.appendingPathComponent(name ?? (shared ? "lib\(stem)\(flags.joined()).so" : stem)).path
        let cc = Process()
        cc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        cc.arguments = ["cc", "-O1"] + (shared ? ["-fPIC", "-shared"] : []) + ["-I", repository.appendingPathComponent("SDK/include").path, "-o", out,
                        repository.appendingPathComponent(source).path, "-lm"] + flags
        try cc.run()
        cc.waitUntilExit()
        guard cc.terminationStatus == 0 else { throw NSError(domain: "cc", code: Int(cc.terminationStatus), userInfo: [NSLocalizedDescriptionKey: "compiling \(source) \(flags) failed"]) }
        return out
    }
}
