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

    /// The thread count a process should use: `requested` when given; else its share of the
    /// cores among `ranksOnMachine` processes of a job; else the cores other processes leave
    /// free (measured now), with a note saying so when some are busy.
    public static func choose(requested: Int?, ranksOnMachine: Int?) throws -> (count: Int, note: String?) {
        if let requested {
            guard requested >= 1 && requested <= 4 * cores else { throw LTHError("`threads` must be in 1...\(4 * cores) (this machine has \(cores) cores), got \(requested)") }
            return (requested, nil)
        }
        if let ranks = ranksOnMachine { return (max(1, cores / max(ranks, 1)), nil) }
        let free = cores == 1 ? 1 : min(cores, freeCores() ?? cores)  // one core: nothing to choose, no sampling
        let note = free < cores ? "note: \(cores - free) of \(cores) cores busy with other work; using \(max(1, free)) thread\(free > 1 ? "s" : "") (--threads \(cores) to use all)" : nil
        return (max(1, free), note)
    }

    /// How many of the CPUs this process may run on other processes leave free: each CPU's
    /// busy time over `interval` seconds (from /proc/stat, while this thread sleeps); a CPU
    /// busy more than half of it counts as taken. nil where /proc cannot be read. OpenMP
    /// threads on a taken core wait for each other at every barrier, so fewer threads than
    /// cores is faster there.
    public static func freeCores(interval: Double = 0.25) -> Int? {
        guard let allowed = allowedCPUs(), let before = cpuTimes() else { return nil }
        Thread.sleep(forTimeInterval: interval)
        guard let after = cpuTimes() else { return nil }
        return allowed.filter { cpu in
            guard let b = before[cpu], let a = after[cpu], a.total > b.total else { return true }
            return Double(a.busy - b.busy) / Double(a.total - b.total) < 0.5
        }.count
    }

    /// The CPU numbers of `Cpus_allowed_list` in /proc/self/status ("0-3,6").
    static func allowedCPUs() -> [Int]? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }) else { return nil }
        var cpus: [Int] = []
        for part in line.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces).split(separator: ",") {
            let ends = part.split(separator: "-").compactMap { Int($0) }
            guard let first = ends.first, let last = ends.last, first <= last else { return nil }
            cpus += Array(first...last)
        }
        return cpus.isEmpty ? nil : cpus
    }

    /// Per CPU, the busy and total jiffies of /proc/stat (busy = all but idle and iowait).
    static func cpuTimes() -> [Int: (busy: Int, total: Int)]? {
        guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        var times: [Int: (busy: Int, total: Int)] = [:]
        for line in stat.split(separator: "\n") where line.hasPrefix("cpu") && !line.hasPrefix("cpu ") {
            let fields = line.split(separator: " ")
            guard let cpu = Int(fields[0].dropFirst(3)) else { continue }
            let values = fields.dropFirst().compactMap { Int($0) }
            guard values.count >= 5 else { continue }
            let total = values.prefix(8).reduce(0, +)  // guest time is already in user time
            times[cpu] = (total - values[3] - values[4], total)
        }
        return times.isEmpty ? nil : times
    }

    /// Runs `body` on contiguous parts of `0..<count`, one part per thread of the OpenMP pool
    /// (the threads oneDNN and OpenBLAS use, so host loops do not compete with their waiting
    /// workers), and returns when every part is done. Fewer threads when the parts would be
    /// smaller than `grain` items; `body` runs on the calling thread alone then. `body` must
    /// only write what its own part owns.
    public static func parallelFor(_ count: Int, grain: Int = 1 << 15, _ body: (Range<Int>) -> Void) {
        parallelForWorkers(count, grain: grain) { _, part in body(part) }
    }

    /// `parallelFor` that also tells `body` which worker of the pool runs it (0 ..< `current`;
    /// 0 on the calling thread alone), for state kept per worker.
    public static func parallelForWorkers(_ count: Int, grain: Int = 1 << 15, _ body: (_ worker: Int, _ part: Range<Int>) -> Void) {
        let threads = min(current, count / max(grain, 1))
        if threads <= 1 {
            if count > 0 { body(0, 0..<count) }
            return
        }
        withoutActuallyEscaping(body) { body in
            var job = ParallelJob(count: count, body: body)
            withUnsafeMutablePointer(to: &job) { pointer in
                GOMP_parallel({ raw in
                    let job = raw!.assumingMemoryBound(to: ParallelJob.self).pointee
                    let worker = Int(omp_get_thread_num())
                    let part = contiguousPart(worker, of: Int(omp_get_num_threads()), count: job.count)
                    if !part.isEmpty { job.body(worker, part) }
                }, pointer, UInt32(threads), 0)
            }
        }
    }
}

extension Threads {
    /// Runs `body(lane)` for lane 0 ..< `count` at once, one thread of the OpenMP pool each
    /// (`count` threads whatever the pool's size; the calling thread runs lane 0), and returns
    /// when all are done. Inside a lane every oneDNN primitive, OpenBLAS call and `parallelFor`
    /// runs on that lane's thread alone (nested regions get one thread). `body` must only touch
    /// what its lane owns.
    public static func runLanes(_ count: Int, _ body: (_ lane: Int) -> Void) {
        if count <= 1 {
            if count == 1 { body(0) }
            return
        }
        withoutActuallyEscaping(body) { body in
            var job = LaneJob(body: body)
            withUnsafeMutablePointer(to: &job) { pointer in
                GOMP_parallel({ raw in
                    raw!.assumingMemoryBound(to: LaneJob.self).pointee.body(Int(omp_get_thread_num()))
                }, pointer, UInt32(count), 0)
            }
        }
    }
}

/// What `Threads.runLanes` hands each lane's thread.
private struct LaneJob {
    let body: (Int) -> Void
}

/// What `Threads.parallelForWorkers` hands each thread of the pool.
private struct ParallelJob {
    let count: Int
    let body: (Int, Range<Int>) -> Void
}

/// Part `index` of `parts` contiguous parts of `0..<count`, sizes differing by at most one:
/// `count*index/parts ..< count*(index+1)/parts` (threads' shares, ranks' shares, batch-norm groups).
public func contiguousPart(_ index: Int, of parts: Int, count: Int) -> Range<Int> {
    (count * index / parts)..<(count * (index + 1) / parts)
}
