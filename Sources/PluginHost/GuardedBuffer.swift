import Foundation
import Tensor

/// Memory a plugin writes into that the host can police: `count` bytes filled with `fill`,
/// followed by a slack of the same pattern (as large as the buffer, at most 1 MiB) and then an
/// inaccessible page. A plugin writing a little past its buffer changes the slack (the host
/// refuses the result, naming the plugin); one writing further hits the page and the process
/// ends with the plugin named (`lth4sa_crash_install`) instead of corrupting the heap.
/// Owned by the caller; not thread-safe.
final class GuardedBuffer {
    let count: Int
    let pointer: UnsafeMutablePointer<UInt8>
    private let mapping: UnsafeMutableRawPointer, mappedBytes: Int, slack: Int
    static let fill: UInt8 = 0xA5

    init(count: Int, plugin: String) throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        slack = min(max(count, page), 1 << 20)
        let usable = (count + slack + page - 1) / page * page
        mappedBytes = usable + page
        guard let m = mmap(nil, mappedBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), m != MAP_FAILED else {
            throw LTHError("plugin \(plugin): cannot map \(mappedBytes) bytes for its buffer")
        }
        mapping = m
        guard mprotect(m + usable, page, PROT_NONE) == 0 else {
            munmap(m, mappedBytes)
            throw LTHError("plugin \(plugin): cannot protect the guard page after its buffer")
        }
        // the buffer ends right before the slack; the slack runs up to the guard page
        let start = usable - slack - count
        pointer = (m + start).assumingMemoryBound(to: UInt8.self)
        pointer.initialize(repeating: Self.fill, count: count + slack)
        self.count = count
    }

    deinit { munmap(mapping, mappedBytes) }

    /// Whether the slack after the buffer still holds only the fill pattern.
    var slackIntact: Bool {
        UnsafeBufferPointer(start: pointer + count, count: slack).allSatisfy { $0 == Self.fill }
    }

    var bytes: UnsafeMutableBufferPointer<UInt8> { UnsafeMutableBufferPointer(start: pointer, count: count) }
}
