import Checkpoint
import Foundation
import Tensor

/// The model and optimizer files of a run committed as one unit, with a roll-forward journal:
///
/// 1. both new files are written completely (temporary file, fsync, rename) as
///    `checkpoint.safetensors.next` and `checkpoint.optim.safetensors.next`;
/// 2. then each is renamed over its current file and the folder is fsynced.
///
/// A kill or a full disk during step 1 leaves the previous pair untouched (the partial `.next`
/// is discarded on recovery); a kill during step 2 leaves a `.next` whose stamp matches the
/// other file, and recovery finishes the renames. `recover()` runs before every resume and
/// every load, so the newest complete pair is always what is found. Stamps are the
/// (epoch, step) in both files' metadata.
public struct CheckpointSet {
    public let model: URL
    public let optimizer: URL

    public init(directory: URL) {
        model = directory.appendingPathComponent("checkpoint.safetensors")
        optimizer = directory.appendingPathComponent("checkpoint.optim.safetensors")
    }

    static func pending(_ url: URL) -> URL { URL(fileURLWithPath: url.path + ".next") }

    /// Writes a new pair: `writeModel` and `writeOptimizer` write to the paths they are given.
    public func commit(writeModel: (String) throws -> Void, writeOptimizer: (String) throws -> Void) throws {
        try writeModel(Self.pending(model).path)
        try writeOptimizer(Self.pending(optimizer).path)
        try rename(Self.pending(optimizer), to: optimizer)
        try rename(Self.pending(model), to: model)
        syncFolder()
    }

    /// Brings the folder to the newest complete pair (see the type's comment). Returns whether
    /// a complete pair exists afterwards.
    @discardableResult
    public func recover() throws -> Bool {
        func stamp(_ url: URL) -> String? {
            guard FileManager.default.fileExists(atPath: url.path), let meta = try? ModelCheckpoint.metadata(url.path),
                  let epoch = meta[ModelCheckpoint.epochKey], let step = meta["step"] else { return nil }
            return "\(epoch)/\(step)"
        }
        let (m, mNext, o, oNext) = (stamp(model), stamp(Self.pending(model)), stamp(optimizer), stamp(Self.pending(optimizer)))
        if let s = mNext, s == oNext ?? o {  // the new pair was complete: finish its renames
            if oNext != nil { try rename(Self.pending(optimizer), to: optimizer) }
            try rename(Self.pending(model), to: model)
        } else if let s = oNext, s == m {   // the model was renamed first (older layout) or the optimizer is pending
            try rename(Self.pending(optimizer), to: optimizer)
        }
        for url in [Self.pending(model), Self.pending(optimizer)] { try? FileManager.default.removeItem(at: url) }
        syncFolder()
        return stamp(model) != nil && stamp(model) == stamp(optimizer)
    }

    private func rename(_ from: URL, to: URL) throws {
        guard Foundation.rename(from.path, to.path) == 0 else {
            throw LTHError("cannot rename '\(from.path)' to '\(to.path)': \(String(cString: strerror(errno)))")
        }
    }

    private func syncFolder() {
        let fd = open(model.deletingLastPathComponent().path, O_RDONLY)
        if fd >= 0 { fsync(fd); close(fd) }
    }
}
