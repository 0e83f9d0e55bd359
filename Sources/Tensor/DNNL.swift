import CKernels
import Foundation

/// The compute resources a network runs on, owned by the network (or given to it) rather than
/// held process-wide (ggml's `ggml_context` is the model): the oneDNN CPU engine and stream,
/// the scratchpad every primitive shares (they run one after another), one execution lane per
/// worker of the pool, transient layout buffers, the profiler, and caches that higher layers
/// keep per context (`cached`). Not thread-safe: one thread at a time, like the network.
public final class ComputeContext {
    public let engine: dnnl_engine_t
    public let stream: dnnl_stream_t
    /// Scratch memory shared by every primitive; grows to the largest request.
    private var scratch: UnsafeMutableRawPointer? = nil
    private var scratchBytes = 0
    /// Wall time per operation kind when enabled (`lth4sa bench --profile`).
    public let profiler = Profiler()
    private var caches: [ObjectIdentifier: AnyObject] = [:]

    public init() {
        var e: dnnl_engine_t? = nil
        DNNL.check(dnnl_engine_create(&e, dnnl_cpu, 0), "engine create")
        engine = e!
        var s: dnnl_stream_t? = nil
        DNNL.check(dnnl_stream_create(&s, engine, UInt32(dnnl_stream_default_flags.rawValue)), "stream create")
        stream = s!
    }

    deinit {
        caches.removeAll()          // their primitives first
        executionLanes.removeAll()  // their streams before the engine
        dnnl_stream_destroy(stream)
        dnnl_engine_destroy(engine)
        free(scratch)
    }

    /// One execution lane per worker of the pool (`Primitive.execute(_:on:)`); grown by
    /// `prepareExecutionLanes` on the main thread, read by the workers.
    public private(set) var executionLanes: [ExecutionLane] = []

    /// Makes room for `count` workers (main thread).
    public func prepareExecutionLanes(_ count: Int) {
        while executionLanes.count < count { executionLanes.append(ExecutionLane(engine: engine)) }
    }

    /// A scratchpad pointer of at least `bytes` bytes.
    func scratchpad(_ bytes: Int) -> UnsafeMutableRawPointer? { growScratch(&scratch, &scratchBytes, to: bytes) }

    /// Transient copies of activations in a primitive's own layout (a blocked layout around a
    /// Winograd convolution), main thread only: see `TransientBuffers`.
    public let transientLayouts = TransientBuffers(slots: 3)

    /// The object of type `T` this context keeps for a higher layer (e.g. `ChannelOps`' cached
    /// primitives), made by `make` on first use.
    public func cached<T: AnyObject>(_ type: T.Type, _ make: () -> T) -> T {
        if let c = caches[ObjectIdentifier(type)] as? T { return c }
        let c = make()
        caches[ObjectIdentifier(type)] = c
        return c
    }
}

/// oneDNN helpers: status checks and memory descriptors. oneDNN uses logical NCHW dims
/// whatever the physical layout; our activations are NHWC.
public enum DNNL {
    /// Aborts with the oneDNN status: a failure here is a bug in lth4sa (shapes are checked
    /// before primitives are created), never a user error.
    public static func check(_ status: dnnl_status_t, _ what: String) {
        if status != dnnl_success { fatalError("oneDNN \(what) failed: status \(status.rawValue)") }
    }

    // MARK: memory descriptors

    /// A descriptor with logical `dims` and physical layout `tag`.
    public static func desc(_ dims: [Int], _ tag: dnnl_format_tag_t) -> dnnl_memory_desc_t {
        var md = dnnl_memory_desc_t()
        let d = dims.map { Int64($0) }
        check(dnnl_memory_desc_init_by_tag(&md, Int32(d.count), d, dnnl_f32, tag), "memory desc \(dims)")
        return md
    }

    /// NHWC activation `[n, h, w, c]` (our shape order) as a oneDNN descriptor.
    public static func nhwc(_ shape: [Int]) -> dnnl_memory_desc_t {
        precondition(shape.count == 4, "NHWC tensor expected, got \(shape)")
        return desc([shape[0], shape[3], shape[1], shape[2]], dnnl_nhwc)
    }

    public static func bytes(_ md: dnnl_memory_desc_t) -> Int {
        var m = md
        return dnnl_memory_desc_get_size(&m)
    }

    public static func equal(_ a: dnnl_memory_desc_t, _ b: dnnl_memory_desc_t) -> Bool {
        var x = a, y = b
        return dnnl_memory_desc_equal(&x, &y) != 0
    }
}

/// Grows `buffer` (64-byte aligned, `size` bytes) to at least `bytes`; nil for 0 bytes.
private func growScratch(_ buffer: inout UnsafeMutableRawPointer?, _ size: inout Int, to bytes: Int) -> UnsafeMutableRawPointer? {
    if bytes == 0 { return nil }
    if bytes > size {
        free(buffer)
        var raw: UnsafeMutableRawPointer? = nil
        posix_memalign(&raw, 64, bytes)
        buffer = raw
        size = bytes
    }
    return buffer
}

/// A stream and a scratchpad of one's own, for primitives run by one worker thread of the
/// OpenMP pool while the other workers run theirs (`Primitive.execute(_:on:)`). Used by one
/// thread at a time; owns its stream and scratch memory.
public final class ExecutionLane {
    let stream: dnnl_stream_t
    private var scratch: UnsafeMutableRawPointer? = nil
    private var scratchBytes = 0

    init(engine: dnnl_engine_t) {
        var s: dnnl_stream_t? = nil
        DNNL.check(dnnl_stream_create(&s, engine, UInt32(dnnl_stream_default_flags.rawValue)), "stream create")
        stream = s!
    }

    deinit {
        dnnl_stream_destroy(stream)
        free(scratch)
    }

    func scratchpad(_ bytes: Int) -> UnsafeMutableRawPointer? { growScratch(&scratch, &scratchBytes, to: bytes) }

    /// This lane's transient layout copies (`DNNL.transientLayouts`' role, for its worker).
    public let transientLayouts = TransientBuffers(slots: 2)
}

/// A few raw buffers, each grown to the largest request made of it and freed with the owner:
/// transient copies of activations in a primitive's layout (slot k valid until slot k is asked
/// for again). Used by one thread at a time.
public final class TransientBuffers {
    private var buffers: [(pointer: UnsafeMutableRawPointer?, bytes: Int)]
    init(slots: Int) { buffers = Array(repeating: (nil, 0), count: slots) }
    deinit { for b in buffers { free(b.pointer) } }

    /// Slot `slot`'s buffer, at least `bytes` (64-byte aligned).
    public func slot(_ slot: Int, bytes: Int) -> UnsafeMutableRawPointer {
        growScratch(&buffers[slot].pointer, &buffers[slot].bytes, to: max(bytes, 64))!
    }
}

/// One oneDNN primitive with its memory objects, created once for a shape and executed many
/// times with fresh data pointers. Owns the primitive and descriptor; destroyed with it.
public final class Primitive {
    /// The context whose engine made it and whose stream and scratchpad run it (it must outlive
    /// the primitive: layers hold both).
    unowned let context: ComputeContext
    public let pd: dnnl_primitive_desc_t
    let primitive: dnnl_primitive_t
    private var memories: [Int32: dnnl_memory_t] = [:]
    private var scratchBytes = 0

    /// Creates the primitive from an op descriptor (`desc` points to e.g. a
    /// `dnnl_convolution_desc_t`), optionally with a forward hint for backward primitives.
    /// `avoiding`: skip implementations whose name contains this text (oneDNN's first choice
    /// is taken otherwise).
    /// `postOps`: fused operations applied to the result (ownership stays with the caller).
    public convenience init(desc: UnsafeRawPointer, hint: Primitive? = nil, avoiding: String? = nil, postOps: dnnl_post_ops_t? = nil,
                            context: ComputeContext) {
        self.init(desc: desc, hint: hint, avoiding: avoiding, postOps: postOps, optional: false, context: context)!
    }

    /// The primitive when oneDNN implements `desc` on this machine (e.g. a Winograd
    /// convolution, which oneDNN has only for AVX-512), else nil.
    public static func ifImplemented(desc: UnsafeRawPointer, hint: Primitive? = nil, postOps: dnnl_post_ops_t? = nil,
                                     context: ComputeContext) -> Primitive? {
        Primitive(desc: desc, hint: hint, avoiding: nil, postOps: postOps, optional: true, context: context)
    }

    private init?(desc: UnsafeRawPointer, hint: Primitive?, avoiding: String?, postOps: dnnl_post_ops_t?, optional: Bool, context: ComputeContext) {
        self.context = context
        let dnnl = context
        var attr: dnnl_primitive_attr_t? = nil
        DNNL.check(dnnl_primitive_attr_create(&attr), "attr create")
        defer { dnnl_primitive_attr_destroy(attr) }
        DNNL.check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad mode")
        if let postOps { DNNL.check(dnnl_primitive_attr_set_post_ops(attr, postOps), "post-ops") }
        var p: dnnl_primitive_desc_t? = nil
        if let avoiding {
            var it: dnnl_primitive_desc_iterator_t? = nil
            DNNL.check(dnnl_primitive_desc_iterator_create(&it, desc, attr, dnnl.engine, hint?.pd), "primitive iterator")
            repeat {
                guard let candidate = dnnl_primitive_desc_iterator_fetch(it) else { break }
                var name: UnsafePointer<CChar>? = nil
                dnnl_primitive_desc_query(candidate, dnnl_query_impl_info_str, 0, &name)
                if name.map({ !String(cString: $0).contains(avoiding) }) ?? true { p = candidate; break }
                dnnl_primitive_desc_destroy(candidate)
            } while dnnl_primitive_desc_iterator_next(it) == dnnl_success
            dnnl_primitive_desc_iterator_destroy(it)
        }
        if p == nil {
            let status = dnnl_primitive_desc_create(&p, desc, attr, dnnl.engine, hint?.pd)
            if optional && status != dnnl_success { return nil }
            DNNL.check(status, "primitive descriptor")
        }
        pd = p!
        var prim: dnnl_primitive_t? = nil
        DNNL.check(dnnl_primitive_create(&prim, pd), "primitive create")
        primitive = prim!
        self.scratchBytes = DNNL.bytes(query(dnnl_query_scratchpad_md))
    }

    /// The name of the implementation oneDNN chose (e.g. `jit:avx2`, `ref:any`).
    public var implementation: String {
        var name: UnsafePointer<CChar>? = nil
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name)
        return name.map { String(cString: $0) } ?? "?"
    }

    /// A reorder from `src` to `dst` layout.
    public init(reorderFrom src: dnnl_memory_desc_t, to dst: dnnl_memory_desc_t, context: ComputeContext) {
        self.context = context
        let dnnl = context
        var s = src, d = dst
        var attr: dnnl_primitive_attr_t? = nil
        DNNL.check(dnnl_primitive_attr_create(&attr), "attr create")
        DNNL.check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad mode")
        var p: dnnl_primitive_desc_t? = nil
        DNNL.check(dnnl_reorder_primitive_desc_create(&p, &s, dnnl.engine, &d, dnnl.engine, attr), "reorder descriptor")
        dnnl_primitive_attr_destroy(attr)
        pd = p!
        var prim: dnnl_primitive_t? = nil
        DNNL.check(dnnl_primitive_create(&prim, pd), "reorder create")
        primitive = prim!
        self.scratchBytes = DNNL.bytes(query(dnnl_query_scratchpad_md))
    }

    deinit {
        for m in memories.values { dnnl_memory_destroy(m) }
        dnnl_primitive_destroy(primitive)
        dnnl_primitive_desc_destroy(pd)
    }

    /// The memory descriptor the primitive expects for `what` (e.g. `dnnl_query_weights_md`).
    public func query(_ what: dnnl_query_t, _ index: Int32 = 0) -> dnnl_memory_desc_t {
        guard let md = dnnl_primitive_desc_query_md(pd, what, index) else { return dnnl_memory_desc_t() }
        return md.pointee
    }

    /// The descriptor for execution argument `arg` (DNNL_ARG_*).
    public func argDesc(_ arg: Int32) -> dnnl_memory_desc_t {
        query(dnnl_query_exec_arg_md, arg)
    }

    /// Runs the primitive with `args` (DNNL_ARG_* -> data pointer) and waits for it, on the
    /// context's stream and scratchpad (main thread).
    public func execute(_ args: [(Int32, UnsafeMutableRawPointer)]) {
        execute(args, stream: context.stream, scratchpad: context.scratchpad(scratchBytes))
    }

    /// Runs the primitive on `lane`'s stream and scratchpad: for a worker thread of the pool
    /// running its own primitives (oneDNN then runs them single-threaded). The primitive's
    /// memory objects are its own, so a primitive is used by one lane only.
    public func execute(_ args: [(Int32, UnsafeMutableRawPointer)], on lane: ExecutionLane) {
        execute(args, stream: lane.stream, scratchpad: lane.scratchpad(scratchBytes))
    }

    private func execute(_ args: [(Int32, UnsafeMutableRawPointer)], stream: dnnl_stream_t, scratchpad: UnsafeMutableRawPointer?) {
        var list: [dnnl_exec_arg_t] = []
        list.reserveCapacity(args.count + 1)
        for (arg, ptr) in args {
            let mem = memory(arg)
            dnnl_memory_set_data_handle(mem, ptr)
            list.append(dnnl_exec_arg_t(arg: arg, memory: mem))
        }
        if scratchBytes > 0, let sp = scratchpad {
            let mem = memory(Int32(DNNL_ARG_SCRATCHPAD))
            dnnl_memory_set_data_handle(mem, sp)
            list.append(dnnl_exec_arg_t(arg: Int32(DNNL_ARG_SCRATCHPAD), memory: mem))
        }
        let status = dnnl_primitive_execute(primitive, stream, Int32(list.count), list)
        if status != dnnl_success {
            let described = args.map { "\($0.0):\(DNNL.bytes(argDesc($0.0)))B" }.joined(separator: " ")
            DNNL.check(status, "execute (args \(described))")
        }
        DNNL.check(dnnl_stream_wait(stream), "stream wait")
    }

    private func memory(_ arg: Int32) -> dnnl_memory_t {
        if let m = memories[arg] { return m }
        var md = argDesc(arg)
        var m: dnnl_memory_t? = nil
        // A non-null placeholder handle; the real pointer is set before every execution.
        DNNL.check(dnnl_memory_create(&m, &md, context.engine, UnsafeMutableRawPointer(bitPattern: 64)), "memory create")
        memories[arg] = m!
        return m!
    }
}

/// 64-byte aligned raw storage for data in a oneDNN-chosen layout (e.g. blocked weights).
public final class RawBuffer {
    public let bytes: Int
    public let pointer: UnsafeMutableRawPointer
    public init(bytes: Int) {
        self.bytes = bytes
        var raw: UnsafeMutableRawPointer? = nil
        posix_memalign(&raw, 64, max(bytes, 64))
        pointer = raw!
        memset(pointer, 0, max(bytes, 64))
    }
    deinit { free(pointer) }
}
