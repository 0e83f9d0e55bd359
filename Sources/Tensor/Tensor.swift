import Foundation

/// A dense fp32 tensor with 64-byte aligned storage, laid out row-major over `shape`.
/// Image tensors are NHWC: `[batch, height, width, channels]`.
///
/// The tensor owns its storage (or, as a view, keeps the tensor owning it alive); `data` stays
/// valid for the tensor's lifetime and never moves, so it can be handed to oneDNN or BLAS
/// directly. Not thread-safe for concurrent writes.
public final class Tensor {
    public let shape: [Int]
    public let count: Int
    public let data: UnsafeMutablePointer<Float>
    /// The tensor whose storage a view shares; nil when this tensor owns its storage.
    private let storageOwner: Tensor?

    /// A zero-filled tensor of `shape`. Storage of at least `Tensor.mappedBytes` comes from its
    /// own anonymous mapping (zero pages the kernel supplies on first touch, returned to the
    /// system when the tensor goes, whatever the malloc settings); smaller ones from malloc.
    public init(_ shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.count = shape.reduce(1, *)
        let bytes = Tensor.storageBytes(count)
        let raw: UnsafeMutableRawPointer
        if bytes >= Tensor.mappedBytes {
            guard let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
                fatalError("out of memory allocating tensor \(shape) (\(bytes) bytes)")
            }
            raw = p
        } else {
            var p: UnsafeMutableRawPointer? = nil
            guard posix_memalign(&p, 64, bytes) == 0, let p else { fatalError("out of memory allocating tensor \(shape) (\(bytes) bytes)") }
            memset(p, 0, bytes)
            raw = p
        }
        self.data = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        storageOwner = nil
    }

    /// Storage size from which a tensor maps its own pages (1 MiB).
    static let mappedBytes = 1 << 20

    /// Bytes of storage for `count` floats: whole 64-byte lines, at least one.
    private static func storageBytes(_ count: Int) -> Int { max(64, (count * MemoryLayout<Float>.stride + 63) / 64 * 64) }

    /// A view of `storage`'s elements from `offset` on (default: the first) as `shape`, e.g. a
    /// slice of images of a batch: writes through either are seen by both.
    public init(_ shape: [Int], viewing storage: Tensor, offset: Int = 0) {
        self.shape = shape
        count = shape.reduce(1, *)
        precondition(offset >= 0 && offset + count <= storage.count, "view \(shape) at \(offset) of \(storage.count) elements")
        data = storage.data + offset
        storageOwner = storage.storageOwner ?? storage
    }

    /// A tensor of `shape` holding `values` (row-major).
    public convenience init(_ shape: [Int], _ values: [Float]) {
        self.init(shape)
        precondition(values.count == count, "\(values.count) values for shape \(shape)")
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
    }

    deinit {
        guard storageOwner == nil else { return }
        let bytes = Tensor.storageBytes(count)
        if bytes >= Tensor.mappedBytes { munmap(data, bytes) } else { free(data) }
    }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: data, count: count) }
    public var array: [Float] { Array(buffer) }

    public subscript(i: Int) -> Float {
        get { data[i] }
        set { data[i] = newValue }
    }

    public func zero() { memset(data, 0, count * MemoryLayout<Float>.stride) }
    public func fill(_ v: Float) { for i in 0..<count { data[i] = v } }

    /// Copies all elements of `other`, which must have the same element count.
    public func copy(from other: Tensor) {
        precondition(other.count == count, "copy of \(other.shape) into \(shape)")
        data.update(from: other.data, count: count)
    }

    /// `self += other` element-wise (on the thread pool when large).
    public func add(_ other: Tensor) {
        precondition(other.count == count, "add of \(other.shape) to \(shape)")
        let a = data, b = other.data
        Threads.parallelFor(count) { part in for i in part { a[i] += b[i] } }
    }

    /// `self = (self + other) * (x > 0)` element-wise on the thread pool: a gradient sum and the
    /// backward of the ReLU whose output is `x`, in one pass.
    public func addThenReLUBackward(_ other: Tensor, reluOutput x: Tensor) {
        precondition(other.count == count && x.count == count, "masked add of \(other.shape) to \(shape) by \(x.shape)")
        let a = UnsafeMutableRawPointer(data), b = UnsafeRawPointer(other.data), y = UnsafeRawPointer(x.data)
        typealias Lanes = SIMD8<Float>
        let width = Lanes.scalarCount, stride = MemoryLayout<Lanes>.stride
        Threads.parallelFor(count / width) { part in  // explicit SIMD: branch-free selects
            for v in part {
                let sum = a.loadUnaligned(fromByteOffset: v * stride, as: Lanes.self) + b.loadUnaligned(fromByteOffset: v * stride, as: Lanes.self)
                a.storeBytes(of: sum.replacing(with: 0, where: y.loadUnaligned(fromByteOffset: v * stride, as: Lanes.self) .<= 0),
                             toByteOffset: v * stride, as: Lanes.self)
            }
        }
        let p = data, q = other.data, r = x.data
        for i in (count / width * width)..<count { p[i] = r[i] > 0 ? p[i] + q[i] : 0 }
    }

    /// y = ReLU(f * scale[channel] (+ shift[channel]) + shortcut) over `count` NHWC elements of
    /// `channels` channels (one image's worth or less, scale and shift per channel), on the
    /// calling thread.
    public static func scaleAddReLU(_ f: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>? = nil, channels: Int,
                                    adding shortcut: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        typealias Lanes = SIMD8<Float>
        let width = Lanes.scalarCount
        guard channels % width == 0 else {
            for i in 0..<count { y[i] = max(f[i] * scale[i % channels] + (shift?[i % channels] ?? 0) + shortcut[i], 0) }
            return
        }
        let fv = UnsafeRawPointer(f), sv = UnsafeRawPointer(shortcut), yv = UnsafeMutableRawPointer(y), gv = UnsafeRawPointer(scale)
        let bv = shift.map(UnsafeRawPointer.init)
        for pixel in stride(from: 0, to: count, by: channels) {
            for c in stride(from: 0, to: channels, by: width) {
                let at = (pixel + c) * 4
                let g = gv.loadUnaligned(fromByteOffset: c * 4, as: Lanes.self)
                var v = fv.loadUnaligned(fromByteOffset: at, as: Lanes.self) * g + sv.loadUnaligned(fromByteOffset: at, as: Lanes.self)
                if let bv { v += bv.loadUnaligned(fromByteOffset: c * 4, as: Lanes.self) }
                yv.storeBytes(of: v.replacing(with: 0, where: v .< 0), toByteOffset: at, as: Lanes.self)
            }
        }
    }

    /// means[c] = mean over `pixels` NHWC rows of `channels` channels at x (one image), on the
    /// calling thread.
    public static func channelMeans(_ x: UnsafePointer<Float>, pixels: Int, channels: Int, into means: UnsafeMutablePointer<Float>) {
        typealias Lanes = SIMD8<Float>
        let width = Lanes.scalarCount, k = 1 / Float(pixels)
        guard channels % width == 0 else {
            for c in 0..<channels { means[c] = 0 }
            for p in 0..<pixels { for c in 0..<channels { means[c] += x[p * channels + c] } }
            for c in 0..<channels { means[c] *= k }
            return
        }
        let xv = UnsafeRawPointer(x), mv = UnsafeMutableRawPointer(means)
        for c in stride(from: 0, to: channels, by: width) {
            var sum = Lanes.zero
            for p in 0..<pixels { sum += xv.loadUnaligned(fromByteOffset: (p * channels + c) * 4, as: Lanes.self) }
            mv.storeBytes(of: sum * k, toByteOffset: c * 4, as: Lanes.self)
        }
    }

    /// Index of the first NaN or +-Inf, nil when every element is finite: one SIMD read pass
    /// (x * 0 is 0 exactly when x is finite), on the thread pool when large.
    public func firstNonFinite() -> Int? {
        let workers = max(Threads.current, 1)
        var firstBad = [Int](repeating: Int.max, count: workers)
        firstBad.withUnsafeMutableBufferPointer { bad in
            Threads.parallelForWorkers(count) { worker, part in
                if let i = Tensor.firstNonFinite(data + part.lowerBound, count: part.count) { bad[worker] = min(bad[worker], part.lowerBound + i) }
            }
        }
        let first = firstBad.min()!
        return first == Int.max ? nil : first
    }

    /// `firstNonFinite` over `count` floats at `p`, on the calling thread.
    public static func firstNonFinite(_ p: UnsafePointer<Float>, count: Int) -> Int? {
        typealias Lanes = SIMD8<Float>
        let width = Lanes.scalarCount, block = 256  // a branch per block of 256 vectors, not per vector
        let raw = UnsafeRawPointer(p), vectors = count / width
        var start = 0
        while start < vectors {
            let end = min(start + block, vectors)
            var zero = Lanes.zero
            for v in start..<end { zero += raw.loadUnaligned(fromByteOffset: v * width * 4, as: Lanes.self) * 0 }
            if zero != Lanes.zero {
                for i in (start * width)..<(end * width) where !p[i].isFinite { return i }
            }
            start = end
        }
        for i in (vectors * width)..<count where !p[i].isFinite { return i }
        return nil
    }

    public func clone() -> Tensor {
        let t = Tensor(shape)
        t.copy(from: self)
        return t
    }

    public var sum: Double {
        var s = 0.0
        for i in 0..<count { s += Double(data[i]) }
        return s
    }

    /// Largest absolute difference to `other` (same count).
    public func maxAbsDiff(_ other: Tensor) -> Float {
        precondition(other.count == count)
        var m: Float = 0
        for i in 0..<count { m = max(m, abs(data[i] - other.data[i])) }
        return m
    }
}

/// Hands out tensors of a given shape, allocating once per shape and reusing afterwards, so
/// that the steady state of training allocates nothing. A buffer handed out for a shape is the
/// same object every time: callers must be done with the previous contents.
public final class BufferPool {
    private var buffers: [[Int]: Tensor] = [:]
    public init() {}

    /// The buffer for `shape` (contents left from its last use; zero on first use).
    public func get(_ shape: [Int]) -> Tensor {
        if let t = buffers[shape] { return t }
        let t = Tensor(shape)
        buffers[shape] = t
        return t
    }

}

/// Gradient buffers shared by the layers of one network (each network owns its ring and hands
/// it to its layers): backward passes hand each gradient to the layer below, which consumes
/// it at once, so a short ring of buffers replaces one buffer per layer. The ring's `depth`
/// buffers serve every shape (each as large as the largest shape asked of it), so its memory
/// is `depth` times the largest gradient, whatever the number of shapes.
/// Not thread-safe: one backward pass of its network at a time. A buffer handed out is reused
/// `depth` requests later, whatever their shapes: a gradient must not be kept across more than
/// `depth - 1` other requests.
public final class GradientRing {
    public let depth: Int
    private var storage: [Tensor] = []
    /// Per slot, the views of its storage handed out so far, by shape.
    private var views: [[[Int]: Tensor]] = []
    private var next = 0

    /// `depth` 5: a residual block keeps the gradient of its shortcut until the end of its
    /// backward, over at most four other requests (the last batch norm's or the attention's,
    /// and one per convolution of a bottleneck branch); the other batch norms' backward
    /// overwrite their input gradient.
    public init(depth: Int = 5) { self.depth = depth }

    /// The next buffer, viewed as `shape` (contents undefined).
    public func next(_ shape: [Int]) -> Tensor {
        let slot = next
        next = (next + 1) % depth
        let count = shape.reduce(1, *)
        if slot == storage.count {
            storage.append(Tensor([count]))
            views.append([:])
        } else if storage[slot].count < count {
            storage[slot] = Tensor([count])  // views handed out earlier keep the old storage alive
            views[slot] = [:]
        }
        return views[slot].memoized(shape) { Tensor(shape, viewing: storage[slot]) }
    }
}

extension Dictionary {
    /// The value for `key`, made by `make` and stored on first use (the per-shape plans of the
    /// layers: oneDNN primitives and their buffers are built once per key).
    public mutating func memoized(_ key: Key, _ make: () -> Value) -> Value {
        if let value = self[key] { return value }
        let value = make()
        self[key] = value
        return value
    }
}
