import Foundation
import Tensor

/// One mini-batch: normalised NHWC float images and their labels. The tensor belongs to the
/// loader and is reused once the next batch is requested.
public struct Batch {
    public let images: Tensor
    public let labels: [Int32]
    public let index: Int
}

/// Augmentation and normalisation applied when batches are assembled.
public struct Augmentation: Sendable {
    /// Random crop with this zero padding (0 = none).
    public var cropPadding: Int
    /// Random horizontal flip.
    public var flip: Bool
    public static let none = Augmentation(cropPadding: 0, flip: false)
    /// The CIFAR recipe: random crop with padding 4 and horizontal flip.
    public static let cifar = Augmentation(cropPadding: 4, flip: true)
    public init(cropPadding: Int, flip: Bool) {
        self.cropPadding = cropPadding
        self.flip = flip
    }
}

/// Assembles batches on a background thread so the compute threads never wait for data.
///
/// The order of an epoch and its augmentation depend only on (seed, epoch), so a resumed run
/// sees exactly the batches an uninterrupted run would. Create one loader per pass; iterate
/// with `next()` from one thread.
public final class BatchLoader: @unchecked Sendable {  // its shared state is guarded by `lock`
    public let batchCount: Int
    private let dataset: ImageDataset
    private let order: [Int]
    private let batchSize: Int
    private let augmentation: Augmentation
    private let mean: [Float], invStd: [Float]
    private let seed: UInt64
    /// Which part of every batch this loader assembles (data-parallel ranks): index and count.
    private let part: (index: Int, count: Int)
    /// Batch b is assembled in slot b % slotCount; the gating on `freeSlots` guarantees the
    /// batch that used the slot before has been handed back.
    private var slots: [Tensor?]
    private let slotCount: Int
    private var ready: [Int: Batch] = [:]
    private let lock = NSCondition()
    private var nextToHand = 0
    private var freeSlots: Int
    private var cancelled = false
    private var thread: Thread?

    /// - Parameters:
    ///   - indices: images of `dataset` in this pass; shuffled with (seed, epoch) when `shuffle`.
    ///   - dropLast: skip a final batch smaller than `batchSize` (training: keeps BN stable).
    ///   - part: assemble only part `index` of `count` equal parts of every batch (images
    ///     `n*index/count ..< n*(index+1)/count` of a batch of n), augmented exactly as in the
    ///     whole batch: what one of `count` data-parallel ranks trains on.
    public init(dataset: ImageDataset, indices: [Int], batchSize: Int, shuffle: Bool, augmentation: Augmentation,
                mean: [Float], std: [Float], seed: UInt64, epoch: Int, dropLast: Bool = false, prefetch: Int = 2,
                part: (index: Int, count: Int) = (0, 1)) {
        precondition(part.count >= 1 && (0..<part.count).contains(part.index), "part \(part.index) of \(part.count)")
        self.part = part
        self.dataset = dataset
        var order = indices
        if shuffle {
            var rng = RNG(seed: seed ^ (UInt64(epoch + 1) &* 0xD1B5_4A32_D192_ED03))
            rng.shuffle(&order)
        }
        self.order = order
        self.batchSize = batchSize
        self.augmentation = augmentation
        self.mean = mean
        self.invStd = std.map { 1 / $0 }
        self.seed = seed ^ (UInt64(epoch + 1) &* 0x8CB9_2BA7_2F3D_8DD7)
        let full = order.count / batchSize, rest = order.count % batchSize
        batchCount = full + ((rest > 0 && !dropLast) ? 1 : 0)
        slotCount = prefetch + 1
        freeSlots = slotCount
        slots = Array(repeating: nil, count: slotCount)
        let t = Thread { [weak self] in self?.produce() }
        t.name = "lth4sa-loader"
        thread = t
        t.start()
    }

    deinit { cancel() }

    /// Stops the background thread (also called on deinit).
    public func cancel() {
        lock.lock()
        cancelled = true
        lock.broadcast()
        lock.unlock()
    }

    /// The next batch, or nil at the end of the pass. Hands the previous batch's buffer back.
    public func next() -> Batch? {
        lock.lock()
        defer { lock.unlock() }
        if nextToHand > 0 {
            freeSlots += 1
            lock.broadcast()
        }
        guard nextToHand < batchCount else { return nil }
        while ready[nextToHand] == nil { lock.wait() }
        let b = ready.removeValue(forKey: nextToHand)!
        nextToHand += 1
        return b
    }

    private func produce() {
        for b in 0..<batchCount {
            lock.lock()
            while freeSlots == 0 && !cancelled { lock.wait() }
            if cancelled { lock.unlock(); return }
            freeSlots -= 1
            lock.unlock()
            let start = b * batchSize, end = min(start + batchSize, order.count)
            let mine = (end - start) * part.index / part.count ..< (end - start) * (part.index + 1) / part.count
            let shape = [mine.count, dataset.height, dataset.width, dataset.channels]
            let slot = b % slotCount
            if slots[slot]?.shape != shape { slots[slot] = Tensor(shape) }
            let images = slots[slot]!
            var rng = RNG(seed: seed ^ (UInt64(b + 1) &* 0x9E37_79B9_7F4A_7C15))
            var labels = [Int32](repeating: 0, count: mine.count)
            for k in 0..<(end - start) {  // every image draws its augmentation: a part sees what the whole batch would
                let crop = drawAugmentation(&rng)
                guard mine.contains(k) else { continue }
                let i = order[start + k]
                labels[k - mine.lowerBound] = dataset.labels[i]
                fill(images.data + (k - mine.lowerBound) * dataset.imageSize, image: i, crop: crop)
            }
            lock.lock()
            ready[b] = Batch(images: images, labels: labels, index: b)
            lock.broadcast()
            lock.unlock()
        }
    }

    /// One image's random crop offset and flip, drawn in a fixed order from `rng`.
    private func drawAugmentation(_ rng: inout RNG) -> (oy: Int, ox: Int, flip: Bool) {
        let pad = augmentation.cropPadding
        let oy = pad > 0 ? rng.int(2 * pad + 1) - pad : 0
        let ox = pad > 0 ? rng.int(2 * pad + 1) - pad : 0
        return (oy, ox, augmentation.flip && rng.int(2) == 1)
    }

    /// Writes image `i`, cropped/flipped as `crop` says and normalised, at `out` (H*W*C floats).
    private func fill(_ out: UnsafeMutablePointer<Float>, image i: Int, crop: (oy: Int, ox: Int, flip: Bool)) {
        let (h, w, c) = (dataset.height, dataset.width, dataset.channels)
        let (oy, ox, flip) = crop
        for y in 0..<h {
            let sy = y + oy
            for x in 0..<w {
                let sx0 = x + ox
                let sx = flip ? (w - 1 - x) + ox : sx0
                let o = (y * w + x) * c
                if sy < 0 || sy >= h || sx < 0 || sx >= w {
                    for ch in 0..<c { out[o + ch] = (0 - mean[ch]) * invStd[ch] }  // zero padding before normalisation
                } else {
                    let src = (sy * w + sx) * c
                    for ch in 0..<c { out[o + ch] = (dataset.value(i, src + ch) - mean[ch]) * invStd[ch] }
                }
            }
        }
    }
}
