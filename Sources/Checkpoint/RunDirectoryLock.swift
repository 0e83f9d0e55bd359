import Foundation
import Tensor

/// An exclusive lock on a run directory (`flock` on `<dir>/.lock`), held as long as this object
/// lives: a second process (or a second writer in this one) that tries to write into the same
/// directory is refused with the holder's PID instead of mixing files. The kernel releases the
/// lock when the holder exits, however it exits, so a killed run never leaves a stale lock.
public final class RunDirectoryLock {
    /// Throws unless `path` can name a run directory: not empty (it would write into the
    /// current folder), and within the system's limits on paths and names (with the reason,
    /// not "the parent is not writable" later).
    public static func checkPath(_ path: String) throws {
        guard !path.isEmpty else { throw LTHError("an empty run directory would write into the current folder; give a folder name") }
        let bytes = path.utf8.count, limit = Int(PATH_MAX) - 1
        guard bytes <= limit else { throw LTHError("the path has \(bytes) bytes; paths on this system have at most \(limit)") }
        if let long = path.split(separator: "/").first(where: { $0.utf8.count > Int(NAME_MAX) }) {
            throw LTHError("the folder name '\(long.prefix(20))...' has \(long.utf8.count) bytes; names on this system have at most \(NAME_MAX)")
        }
    }

    public let directory: URL
    private let descriptor: Int32

    /// Takes the lock on `directory` (created if missing). Throws a one-line error naming the
    /// holder's PID when another writer has it.
    public init(_ directory: URL) throws {
        self.directory = directory
        created = !FileManager.default.fileExists(atPath: directory.path)
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            var p = directory
            while p.path != "/" {
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: p.path, isDirectory: &isDirectory) && !isDirectory.boolValue {
                    throw LTHError("cannot create run directory '\(directory.path)': '\(p.path)' is a file, not a folder; choose another `directory`")
                }
                p = p.deletingLastPathComponent()
            }
            throw LTHError("cannot create run directory '\(directory.path)' (\(access(directory.deletingLastPathComponent().path, W_OK) == 0 ? "\(error.localizedDescription)" : "the folder above it is not writable")); choose another `directory`")
        }
        let path = directory.appendingPathComponent(".lock").path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LTHError("cannot open '\(path)' to lock the run directory: \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buffer, buffer.count, 0)
            var info = stat()
            let inode = fstat(fd, &info) == 0 ? UInt64(info.st_ino) : nil
            close(fd)
            let recorded = n > 0 ? String(decoding: buffer.prefix(n), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "?"
            // the kernel knows the holder; the file's PID may be a stale one from before it wrote its own
            let holder = inode.flatMap(Self.flockHolder(inode:)).map(String.init) ?? recorded
            throw LTHError("run directory '\(directory.path)' is in use by process \(holder); wait for it to finish or choose another `directory`")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, pid, pid.count, 0)
        descriptor = fd
        RunDirectoryLock.removeAbandonedTemporaries(in: directory)
    }

    /// Whether this lock created the directory (then a command refused before writing anything
    /// leaves no empty directory behind).
    private let created: Bool

    deinit {
        // nothing but the lock file: the command was refused or wrote nothing; leave no trace
        if created, (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) == [".lock"] {
            try? FileManager.default.removeItem(at: directory)
        }
        close(descriptor)  // closing releases the lock
    }

    /// Removes the temporary files of atomic writes that a killed writer left in `directory`
    /// and its subfolders (`.<name>.tmp-<pid>` of `SafeTensors.writeAtomically`, `.dat.nosync*`
    /// of Foundation's atomic writes). Safe under the lock: no other writer is using them.
    static func removeAbandonedTemporaries(in directory: URL) {
        guard let walker = FileManager.default.enumerator(atPath: directory.path) else { return }
        for case let relative as String in walker {
            let name = (relative as NSString).lastPathComponent
            guard (name.hasPrefix(".") && name.contains(".tmp-")) || name.hasPrefix(".dat.nosync") else { continue }
            try? FileManager.default.removeItem(at: directory.appendingPathComponent(relative))
        }
    }

    /// The PID holding a `flock` on the file with `inode`, from `/proc/locks` (Linux); nil
    /// when it cannot be told.
    static func flockHolder(inode: UInt64) -> Int32? {
        guard let text = try? String(contentsOfFile: "/proc/locks", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            // "1: FLOCK  ADVISORY  WRITE 4242 08:01:123456 0 EOF"
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, fields[1] == "FLOCK", let pid = Int32(fields[4]),
                  let file = fields[5].split(separator: ":").last, UInt64(file) == inode else { continue }
            return pid
        }
        return nil
    }
}
