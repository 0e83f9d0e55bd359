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

    /// Runs `body` on contiguous parts of `0..<count`, one part per thread of the OpenMP pool
    /// (the threads oneDNN and OpenBLAS use, so host loops do not compete with their waiting
    /// workers), and returns when every part is done. Fewer threads when the parts would be
    /// smaller than `grain` items; `body` runs on the calling thread alone then. `body` must
    /// only write what its own part owns.
    public static func parallelFor(_ count: Int, grain: Int = 1 << 15, _ body: (Range<Int>) -> Void) {
        let threads = min(current, count / max(grain, 1))
        if threads <= 1 {
            if count > 0 { body(0..<count) }
            return
        }
        withoutActuallyEscaping(body) { body in
            var job = ParallelJob(count: count, body: body)
            withUnsafeMutablePointer(to: &job) { pointer in
                GOMP_parallel({ raw in
                    let job = raw!.assumingMemoryBound(to: ParallelJob.self).pointee
                    let part = Threads.contiguousRange(Int(omp_get_thread_num()), of: Int(omp_get_num_threads()), count: job.count)
                    if !part.isEmpty { job.body(part) }
                }, pointer, UInt32(threads), 0)
            }
        }
    }

    /// Part `index` of `parts` near-equal contiguous parts of `0..<count` (the first ones one longer).
    static func contiguousRange(_ index: Int, of parts: Int, count: Int) -> Range<Int> {
        let base = count / parts, extra = count % parts
        let start = index * base + min(index, extra)
        return start..<(start + base + (index < extra ? 1 : 0))
    }
}

/// What `Threads.parallelFor` hands each thread of the pool.
private struct ParallelJob {
    let count: Int
    let body: (Range<Int>) -> Void
}
