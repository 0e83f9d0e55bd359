import Foundation
@_exported import func Tensor.contiguousPart

/// The processes one job runs on: this process alone (`SingleProcess`) or the ranks of an MPI
/// job (`MPIGroup`, started by `mpirun`). Every rank runs the same program (SPMD); rank 0, the
/// leader, alone writes files and measures time.
///
/// Every method except `rank`, `size` and `abort` is collective: all ranks call it in the same
/// order with the same sizes, from the thread that created the group (MPI_THREAD_FUNNELED).
/// Errors are thrown on the calling rank; a rank that throws out of a collective sequence must
/// end the job with `abort` (the others would wait for it forever).
public protocol ProcessGroup: AnyObject {
    /// This process's index, 0..<size.
    var rank: Int { get }
    /// Number of processes in the job.
    var size: Int { get }
    /// Replaces the `count` floats at `buffer` by their sum over all ranks, in place; every
    /// rank receives the same values.
    func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws
    /// The same for doubles.
    func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws
    /// Copies `bytes` bytes at `buffer` on rank `root` into `buffer` on every other rank.
    func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) throws
    /// Returns when every rank has called it. Waits by sleeping, not spinning, so a rank that
    /// measures time alone meanwhile keeps its core to itself.
    func barrier() throws
    /// Ends every rank of the job with exit code `code` (not collective; never returns).
    func abort(code: Int32) -> Never
    /// Starts summing the `count` floats at `buffer` over all ranks, in place, without waiting
    /// (collective: every rank starts the same reductions in the same order). The buffer must
    /// stay untouched until `finish`.
    func startSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws -> PendingSum
    /// Lets the reductions in flight advance (call it while other work goes on).
    func progress(_ pending: [PendingSum]) throws
    /// Waits until `pending` is complete; its buffer then holds the sum.
    func finish(_ pending: PendingSum) throws
}

/// A sum started by `ProcessGroup.startSum` and not yet finished.
public final class PendingSum {
    /// The MPI request (nil: complete).
    var request: OpaquePointer?
    init(request: OpaquePointer?) { self.request = request }
}

/// This process alone: every collective is the identity.
public final class SingleProcess: ProcessGroup {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {}
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws {}
    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) throws {}
    public func barrier() throws {}
    public func abort(code: Int32) -> Never { exit(code) }
    public func startSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws -> PendingSum { PendingSum(request: nil) }
    public func progress(_ pending: [PendingSum]) throws {}
    public func finish(_ pending: PendingSum) throws {}
}

/// A failure reported by the leader to the other ranks of a `leaderOnly` section.
public struct LeaderFailure: Error, CustomStringConvertible {
    public let description: String
}

extension ProcessGroup {
    /// Rank 0: the one that writes files, measures time and talks to the user.
    public var isLeader: Bool { rank == 0 }

    /// The part of `0..<count` this rank takes: contiguous, sizes differing by at most one,
    /// in rank order (rank r gets `count*r/size ..< count*(r+1)/size`).
    public func share(of count: Int) -> Range<Int> { contiguousPart(rank, of: size, count: count) }

    /// `values` summed over all ranks.
    public func sum(_ values: [Double]) throws -> [Double] {
        guard size > 1 else { return values }
        var v = values
        try v.withUnsafeMutableBufferPointer { try allreduceSum($0.baseAddress!, count: $0.count) }
        return v
    }

    /// Whether `flag` is true on any rank (a collective decision, e.g. "stop now").
    public func any(_ flag: Bool) throws -> Bool { try sum([flag ? 1 : 0])[0] > 0 }

    /// Runs `work` on the leader only while the other ranks wait (sleeping); the leader's
    /// result, or its error, reaches every rank (as JSON). Collective.
    public func leaderOnly<T: Codable>(_ work: () throws -> T) throws -> T {
        guard size > 1 else { return try work() }
        var payload = Data()
        var leaderError: Error? = nil
        if isLeader {
            do { payload = try JSONEncoder().encode(try work()) } catch {
                leaderError = error
                payload = Data("\(error)".utf8)
            }
        }
        try barrier()  // the waiting ranks sleep here instead of spinning inside the broadcast
        var header: [Int64] = [Int64(payload.count), leaderError == nil ? 0 : 1]
        try header.withUnsafeMutableBytes { try broadcast($0.baseAddress!, bytes: $0.count, root: 0) }
        var bytes = [UInt8](payload)
        if !isLeader { bytes = [UInt8](repeating: 0, count: Int(header[0])) }
        if !bytes.isEmpty { try bytes.withUnsafeMutableBytes { try broadcast($0.baseAddress!, bytes: $0.count, root: 0) } }
        if let leaderError { throw leaderError }
        if header[1] != 0 { throw LeaderFailure(description: "rank 0 failed: \(String(decoding: bytes, as: UTF8.self))") }
        return try JSONDecoder().decode(T.self, from: Data(bytes))
    }
}
