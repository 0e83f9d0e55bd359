import Foundation
import LTH4SASDK
import Tensor

/// The `lth4sa_host_t` handed to every plugin: logging to stderr, GEMM through OpenBLAS, a
/// seeded RNG and a parallel-for. One process-wide table at a stable heap address.
public enum HostServices {
    nonisolated(unsafe) static var rng = RNG(seed: 0x1A57_4A11)

    /// Reseeds the RNG plugins draw from (`uniform`).
    public static func seed(_ seed: UInt64) { rng = RNG(seed: seed ^ 0x1A57_4A11) }

    public static let table: UnsafeMutablePointer<lth4sa_host_t> = {
        let p = UnsafeMutablePointer<lth4sa_host_t>.allocate(capacity: 1)
        p.initialize(to: lth4sa_host_t(
            struct_size: UInt32(MemoryLayout<lth4sa_host_t>.size),
            abi_version: LTH4SA_ABI_VERSION,
            context: nil,
            log: { _, level, message in
                let tag = level >= LTH4SA_LOG_WARNING ? "warning" : level == LTH4SA_LOG_INFO ? "info" : "debug"
                FileHandle.standardError.write(Data("plugin \(tag): \(String(cString: message))\n".utf8))
            },
            gemm: { _, ta, tb, m, n, k, alpha, a, b, beta, c in
                BLAS.gemm(ta != 0, tb != 0, m: Int(m), n: Int(n), k: Int(k), alpha: alpha, a, b, beta: beta, c)
            },
            uniform: { _ in HostServices.rng.uniform() },
            parallel_for: { _, count, body, arg in
                let box = UnsafeSendable(arg)
                DispatchQueue.concurrentPerform(iterations: Int(count)) { i in body(box.value, Int64(i)) }
            }))
        return p
    }()
}

struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
