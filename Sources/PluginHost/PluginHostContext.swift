import Foundation
import LTH4SASDK
import Logging
import Tensor

/// The host services one set of plugin instances draws on (the `lth4sa_host_t` of the ABI):
/// logging, GEMM through OpenBLAS, a seeded random generator and a parallel-for. Each network
/// and each search owns its own context, handed to plugins through the ABI's `context`
/// pointer; nothing is shared between contexts.
///
/// Lifetime: every plugin instance created with `table` retains this context (it must outlive
/// them). Threading: `uniform` is not thread-safe; plugins call it from the thread that called
/// them, as the ABI states.
public final class PluginHostContext {
    /// The generator `host->uniform` draws from.
    var rng: RNG
    /// Where plugin log lines go (swift-log: the program chooses the backend).
    public var logger = Logger(label: "lth4sa.plugin")
    /// The table handed to plugins; `context` points at this object (unretained).
    public let table: UnsafeMutablePointer<lth4sa_host_t>

    public init(seed: UInt64) {
        rng = RNG(seed: seed ^ 0x1A57_4A11)
        table = .allocate(capacity: 1)
        table.initialize(to: lth4sa_host_t(
            struct_size: UInt32(MemoryLayout<lth4sa_host_t>.size),
            abi_version: LTH4SA_ABI_VERSION,
            context: nil,
            log: { context, level, message in
                let host = PluginHostContext.from(context)
                let text = Logger.Message(stringLiteral: String(cString: message))
                switch level {
                case LTH4SA_LOG_WARNING...: host.logger.warning(text)
                case LTH4SA_LOG_INFO: host.logger.info(text)
                default: host.logger.debug(text)
                }
            },
            gemm: { _, ta, tb, m, n, k, alpha, a, b, beta, c in
                BLAS.gemm(ta != 0, tb != 0, m: Int(m), n: Int(n), k: Int(k), alpha: alpha, a, b, beta: beta, c)
            },
            uniform: { context in PluginHostContext.from(context).rng.uniform() },
            parallel_for: { _, count, body, arg in
                // the pool everything else runs on (libgomp's, shared by oneDNN and OpenBLAS)
                Threads.parallelFor(Int(count), grain: 1) { part in for i in part { body(arg, Int64(i)) } }
            }))
        table.pointee.context = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        table.deinitialize(count: 1)
        table.deallocate()
    }

    static func from(_ context: UnsafeMutableRawPointer?) -> PluginHostContext {
        Unmanaged<PluginHostContext>.fromOpaque(context!).takeUnretainedValue()
    }

    /// Saving and restoring the generator plugins draw from, for search checkpoints.
    public var rngState: (save: () -> [UInt64], restore: ([UInt64]) -> Void) {
        (save: { self.rng.stateWords }, restore: { self.rng = RNG(stateWords: $0) })
    }
}

