import CKernels
import Foundation

/// The one thread pool of the process: libgomp's, shared by oneDNN and the OpenMP build of
/// OpenBLAS. Set it once, before any work, with `Threads.set(_:)`.
public enum Threads {
    /// Number of online cores.
    public static var cores: Int { ProcessInfo.processInfo.activeProcessorCount }

    /// Sets the thread count of oneDNN and OpenBLAS together (they share libgomp's pool).
    public static func set(_ n: Int) {
        let n = max(1, n)
        omp_set_num_threads(Int32(n))
        openblas_set_num_threads(Int32(n))
    }

    public static var current: Int { Int(omp_get_max_threads()) }
}
