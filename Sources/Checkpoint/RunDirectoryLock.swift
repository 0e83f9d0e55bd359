import Foundation
import Tensor

/// An exclusive lock on a run directory (`flock` on `<dir>/.lock`), held as long as this object
/// lives: a second process (or a second writer in this one) that tries to write into the same
/// directory is refused with the holder's PID instead of mixing files. The kernel releases the
/// lock when the holder exits, however it exits, so a killed run never leaves a stale lock.
public final class RunDirectoryLock {
    public let directory: URL
    private let descriptor: Int32

    /// Takes the lock on `directory` (created if missing). Throws a one-line error naming the
    /// holder's PID when another writer has it.
    public init(_ directory: URL) throws {
        self.directory = directory
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            var p = directory
            while p.path != "/" {
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: p.path, isDirectory: &isDirectory) && !isDirectory.boolValue {
                    throw LTHError("cannot create run directory '\(directory.path)': '\(p.path)' is a file, not a folder; choose another --output")
                }
                p = p.deletingLastPathComponent()
            }
            throw LTHError("cannot create run directory '\(directory.path)' (\(access(directory.deletingLastPathComponent().path, W_OK) == 0 ? "\(error.localizedDescription)" : "the folder above it is not writable")); choose another --output")
        }
        let path = directory.appendingPathComponent(".lock").path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LTHError("cannot open '\(path)' to lock the run directory: \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buffer, buffer.count, 0)
            close(fd)
            let holder = n > 0 ? String(decoding: buffer.prefix(n), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "?"
            throw LTHError("run directory '\(directory.path)' is in use by process \(holder); wait for it to finish or choose another --output")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, pid, pid.count, 0)
        descriptor = fd
    }

    deinit { close(descriptor) }  // closing releases the lock
}
