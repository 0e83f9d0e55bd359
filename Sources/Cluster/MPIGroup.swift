import Foundation
import Tensor

/// The ranks of a job started by Open MPI's `mpirun`, over MPI_COMM_WORLD.
///
/// Open MPI is loaded with `dlopen` only when the process was started by `mpirun`, so a
/// single-process run needs no MPI library at all. The handles (MPI_COMM_WORLD, MPI_FLOAT,
/// MPI_SUM, ...) are Open MPI's exported objects: another MPI implementation is refused.
/// Create one group per process with `MPIGroup.join()`, before any other thread exists, and
/// call `finalize()` before a normal exit.
public final class MPIGroup: ProcessGroup {
    public let rank: Int
    public let size: Int
    /// Ranks of this job on this machine (they share its cores).
    public let localSize: Int
    private let mpi: OpenMPI
    private var finalized = false

    /// The group of this process: `MPIGroup` when started by Open MPI's `mpirun` (environment
    /// `OMPI_COMM_WORLD_SIZE`), else `SingleProcess`. Throws when the launcher is not Open
    /// MPI's or libmpi cannot be loaded.
    public static func join() throws -> ProcessGroup {
        let env = ProcessInfo.processInfo.environment
        guard env["OMPI_COMM_WORLD_SIZE"] != nil else {
            if env["PMI_SIZE"] != nil || env["PMIX_RANK"] != nil && env["OMPI_COMM_WORLD_RANK"] == nil {
                throw LTHError("started by an MPI launcher other than Open MPI's mpirun; lth4sa supports Open MPI (Debian: apt-get install openmpi-bin libopenmpi-dev)")
            }
            return SingleProcess()
        }
        return try MPIGroup(localSize: Int(env["OMPI_COMM_WORLD_LOCAL_SIZE"] ?? "1") ?? 1)
    }

    private init(localSize: Int) throws {
        mpi = try OpenMPI.load()
        var provided: Int32 = 0
        try mpi.check(mpi.initThread(nil, nil, OpenMPI.threadFunneled, &provided), "MPI_Init_thread")
        var r: Int32 = 0, s: Int32 = 0
        try mpi.check(mpi.commRank(mpi.world, &r), "MPI_Comm_rank")
        try mpi.check(mpi.commSize(mpi.world, &s), "MPI_Comm_size")
        rank = Int(r)
        size = Int(s)
        self.localSize = max(1, localSize)
    }

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        try chunked(count) { offset, n in
            try mpi.check(mpi.allreduce(OpenMPI.inPlace, buffer + offset, n, mpi.float, mpi.sum, mpi.world), "MPI_Allreduce")
        }
    }

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws {
        try chunked(count) { offset, n in
            try mpi.check(mpi.allreduce(OpenMPI.inPlace, buffer + offset, n, mpi.double, mpi.sum, mpi.world), "MPI_Allreduce")
        }
    }

    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) throws {
        try chunked(bytes) { offset, n in
            try mpi.check(mpi.bcast(buffer + offset, n, mpi.byte, Int32(root), mpi.world), "MPI_Bcast")
        }
    }

    public func barrier() throws {
        var request: OpaquePointer? = nil
        try mpi.check(mpi.ibarrier(mpi.world, &request), "MPI_Ibarrier")
        var done: Int32 = 0
        var pause: UInt32 = 50
        while true {
            try mpi.check(mpi.test(&request, &done, nil), "MPI_Test")
            if done != 0 { return }
            usleep(pause)
            pause = min(pause * 2, 5000)  // 50 us .. 5 ms: quick when close, idle when long
        }
    }

    public func startSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws -> PendingSum {
        guard count < 1 << 30 else { throw LTHError("a nonblocking sum of \(count) floats is too large for one MPI call; use smaller buckets") }
        var request: OpaquePointer? = nil
        try mpi.check(mpi.iallreduce(OpenMPI.inPlace, buffer, Int32(count), mpi.float, mpi.sum, mpi.world, &request), "MPI_Iallreduce")
        return PendingSum(request: request)
    }

    public func progress(_ pending: [PendingSum]) throws {
        var done: Int32 = 0
        for p in pending where p.request != nil {
            try mpi.check(mpi.test(&p.request, &done, nil), "MPI_Test")  // a completed request becomes MPI_REQUEST_NULL
            if done != 0 { p.request = nil }
        }
    }

    public func finish(_ pending: PendingSum) throws {
        guard pending.request != nil else { return }
        try mpi.check(mpi.wait(&pending.request, nil), "MPI_Wait")
        pending.request = nil
    }

    public func abort(code: Int32) -> Never {
        _ = mpi.abort(mpi.world, code)
        exit(code)
    }

    /// Ends MPI in this process (once; later calls do nothing). Call before a normal exit:
    /// mpirun reports a rank that exits without it as failed.
    public func finalize() {
        guard !finalized else { return }
        finalized = true
        _ = mpi.finalize()
    }

    /// MPI counts are 32-bit: larger buffers go in pieces of at most 2^30 elements.
    private func chunked(_ count: Int, _ body: (Int, Int32) throws -> Void) throws {
        var offset = 0
        while offset < count {
            let n = min(count - offset, 1 << 30)
            try body(offset, Int32(n))
            offset += n
        }
    }
}

/// The entry points and predefined handles of Open MPI's libmpi, resolved with dlsym.
private struct OpenMPI {
    typealias Handle = OpaquePointer
    static let threadFunneled: Int32 = 1  // MPI_THREAD_FUNNELED in Open MPI's mpi.h
    static var inPlace: UnsafeRawPointer? { UnsafeRawPointer(bitPattern: 1) }  // MPI_IN_PLACE

    let initThread: @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?, Int32, UnsafeMutablePointer<Int32>) -> Int32
    let finalize: @convention(c) () -> Int32
    let commRank: @convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Int32
    let commSize: @convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Int32
    let allreduce: @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer, Int32, Handle, Handle, Handle) -> Int32
    let bcast: @convention(c) (UnsafeMutableRawPointer, Int32, Handle, Int32, Handle) -> Int32
    let ibarrier: @convention(c) (Handle, UnsafeMutablePointer<OpaquePointer?>) -> Int32
    let test: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafeMutablePointer<Int32>, UnsafeMutableRawPointer?) -> Int32
    let iallreduce: @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer, Int32, Handle, Handle, Handle, UnsafeMutablePointer<OpaquePointer?>) -> Int32
    let wait: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafeMutableRawPointer?) -> Int32
    let abort: @convention(c) (Handle, Int32) -> Int32
    let errorString: @convention(c) (Int32, UnsafeMutablePointer<CChar>, UnsafeMutablePointer<Int32>) -> Int32
    let world: Handle, float: Handle, double: Handle, byte: Handle, sum: Handle

    /// Loads libmpi (`$LTH4SA_MPI_LIBRARY`, else libmpi.so.40, else libmpi.so) globally, as
    /// Open MPI's own components need its symbols.
    static func load() throws -> OpenMPI {
        let names = [ProcessInfo.processInfo.environment["LTH4SA_MPI_LIBRARY"], "libmpi.so.40", "libmpi.so"].compactMap { $0 }
        var handle: UnsafeMutableRawPointer? = nil
        var reasons: [String] = []
        for name in names {
            handle = dlopen(name, RTLD_NOW | RTLD_GLOBAL)
            if handle != nil { break }
            reasons.append(String(cString: dlerror()))
        }
        guard let handle else {
            throw LTHError("started by mpirun but Open MPI's libmpi cannot be loaded (\(reasons.joined(separator: "; "))); install it (Debian: apt-get install openmpi-bin libopenmpi-dev) or set LTH4SA_MPI_LIBRARY")
        }
        func symbol<T>(_ name: String, as: T.Type = T.self) throws -> T {
            guard let p = dlsym(handle, name) else {
                throw LTHError("libmpi has no symbol \(name): lth4sa supports Open MPI (4.x) only")
            }
            return unsafeBitCast(p, to: T.self)
        }
        func object(_ name: String) throws -> Handle {
            guard let p = dlsym(handle, name) else { throw LTHError("libmpi has no object \(name): lth4sa supports Open MPI (4.x) only") }
            return Handle(p)
        }
        return OpenMPI(initThread: try symbol("MPI_Init_thread"), finalize: try symbol("MPI_Finalize"),
                       commRank: try symbol("MPI_Comm_rank"), commSize: try symbol("MPI_Comm_size"),
                       allreduce: try symbol("MPI_Allreduce"), bcast: try symbol("MPI_Bcast"), ibarrier: try symbol("MPI_Ibarrier"),
                       test: try symbol("MPI_Test"), iallreduce: try symbol("MPI_Iallreduce"), wait: try symbol("MPI_Wait"), abort: try symbol("MPI_Abort"), errorString: try symbol("MPI_Error_string"),
                       world: try object("ompi_mpi_comm_world"), float: try object("ompi_mpi_float"),
                       double: try object("ompi_mpi_double"), byte: try object("ompi_mpi_byte"), sum: try object("ompi_mpi_op_sum"))
    }

    /// Throws a one-line error naming the call when `code` is not MPI_SUCCESS.
    func check(_ code: Int32, _ call: String) throws {
        guard code != 0 else { return }
        var text = [CChar](repeating: 0, count: 512)
        var length: Int32 = 0
        _ = errorString(code, &text, &length)
        throw LTHError("\(call) failed: \(String(cString: text)) (code \(code))")
    }
}
