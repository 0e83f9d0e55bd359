import Tensor

/// Per-channel mean and biased variance of an NHWC tensor, on the thread pool: what a
/// training batch norm normalises with, computed without writing a normalised output (for a
/// network that fuses the normalisation into the next operation).
///
///     x [N, H, W, C] -> mean [C], variance [C]      (C a multiple of 8)
///
/// One pass over x, shifted by its first row K (so that a mean far from zero does not cancel
/// the variance): sums of d = x - K and d^2 over blocks of at most 64 rows of one image in
/// fp32, over chunks of whole images (about 1024 rows) in fp64, and over the chunks in a fixed
/// order, so the result does not depend on the number of threads. variance = E[d^2] - E[d]^2.
/// Optionally also the per-image channel means (what a squeeze-excitation pools), from the
/// same block sums:
///
///     x [N, H, W, C] -> imageMeans [N, C]
enum ChannelStatistics {
    typealias Lanes = SIMD8<Float>
    static let chunkRows = 1024, blockRows = 64

    static func supports(channels: Int) -> Bool { channels % Lanes.scalarCount == 0 }

    static func compute(_ x: Tensor, mean: UnsafeMutablePointer<Float>, variance: UnsafeMutablePointer<Float>,
                        imageMeans: UnsafeMutablePointer<Float>? = nil) {
        let c = x.shape[3], rows = x.count / c, vectors = c / Lanes.scalarCount
        precondition(supports(channels: c) && rows > 0, "channel statistics need rows and a multiple of 8 channels, got \(x.shape)")
        // chunks of whole images, so that an image's sums are made by one thread
        let imageRows = x.shape[1] * x.shape[2]
        let rowsPerChunk = imageRows * max(1, chunkRows / imageRows)
        let chunks = (rows + rowsPerChunk - 1) / rowsPerChunk
        // per chunk: C sums of d, then C sums of d^2
        let partials = UnsafeMutablePointer<Double>.allocate(capacity: chunks * 2 * c)
        defer { partials.deallocate() }
        let base = UnsafeRawPointer(x.data), rowBytes = c * MemoryLayout<Float>.stride, stride = MemoryLayout<Lanes>.stride
        Threads.parallelFor(chunks, grain: 1) { mine in
            let block = UnsafeMutablePointer<Lanes>.allocate(capacity: 2 * vectors)
            defer { block.deallocate() }
            for chunk in mine {
                let sums = partials + chunk * 2 * c, squares = sums + c
                sums.initialize(repeating: 0, count: 2 * c)
                var row = chunk * rowsPerChunk
                let last = min(row + rowsPerChunk, rows)
                while row < last {
                    let image = row / imageRows
                    let end = min(row + blockRows, (image + 1) * imageRows)
                    block.initialize(repeating: .zero, count: 2 * vectors)
                    for r in row..<end {
                        let line = base + r * rowBytes
                        for v in 0..<vectors {
                            let d = line.loadUnaligned(fromByteOffset: v * stride, as: Lanes.self) - base.loadUnaligned(fromByteOffset: v * stride, as: Lanes.self)
                            block[v] += d
                            block[vectors + v] += d * d
                        }
                    }
                    for v in 0..<vectors {
                        for l in 0..<Lanes.scalarCount {
                            sums[v * Lanes.scalarCount + l] += Double(block[v][l])
                            squares[v * Lanes.scalarCount + l] += Double(block[vectors + v][l])
                        }
                    }
                    if let imageMeans {
                        // sum of d over the image so far (the image's first block starts it)
                        let target = UnsafeMutableRawPointer(imageMeans + image * c)
                        for v in 0..<vectors {
                            let sofar = row == image * imageRows ? Lanes.zero : target.loadUnaligned(fromByteOffset: v * stride, as: Lanes.self)
                            target.storeBytes(of: sofar + block[v], toByteOffset: v * stride, as: Lanes.self)
                        }
                        if end == (image + 1) * imageRows {
                            // the image is complete: sum of d -> mean of x
                            let k = 1 / Float(imageRows)
                            for v in 0..<vectors {
                                let sum = target.loadUnaligned(fromByteOffset: v * stride, as: Lanes.self)
                                target.storeBytes(of: sum * k + base.loadUnaligned(fromByteOffset: v * stride, as: Lanes.self),
                                                  toByteOffset: v * stride, as: Lanes.self)
                            }
                        }
                    }
                    row = end
                }
            }
        }
        for k in 0..<c {
            var sum = 0.0, square = 0.0
            for chunk in 0..<chunks { sum += partials[chunk * 2 * c + k]; square += partials[chunk * 2 * c + c + k] }
            let shift = sum / Double(rows)
            mean[k] = Float(Double(x.data[k]) + shift)
            variance[k] = Float(max(0, square / Double(rows) - shift * shift))
        }
    }
}
