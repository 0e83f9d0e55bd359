import Data
import Tensor
import XCTest

final class LoaderTests: XCTestCase {
    /// Image i is filled with the value i, label i % 7: every batch must pair them correctly,
    /// cover each index once, and be reproducible per (seed, epoch).
    func testShuffledBatchesKeepImagesWithTheirLabels() throws {
        let n = 103
        var pixels = [Float](repeating: 0, count: n * 4 * 4 * 3)
        for i in 0..<n { for j in 0..<48 { pixels[i * 48 + j] = Float(i) } }
        let ds = try ImageDataset(pixels: .floats(pixels), labels: (0..<n).map { Int32($0 % 7) }, height: 4, width: 4, channels: 3, classes: 7)
        func pass(epoch: Int) -> [Int] {
            let loader = BatchLoader(dataset: ds, indices: Array(0..<n), batchSize: 10, shuffle: true, augmentation: .none,
                                     mean: [0, 0, 0], std: [1, 1, 1], seed: 5, epoch: epoch)
            var seen: [Int] = []
            while let b = loader.next() {
                for k in 0..<b.labels.count {
                    let v = b.images[k * 48]
                    XCTAssertEqual(Int(v) % 7, Int(b.labels[k]))
                    for j in 0..<48 { XCTAssertEqual(b.images[k * 48 + j], v) }
                    seen.append(Int(v))
                }
            }
            XCTAssertEqual(loader.batchCount, 11)
            return seen
        }
        let e0 = pass(epoch: 0)
        XCTAssertEqual(e0.sorted(), Array(0..<n))
        XCTAssertNotEqual(e0, Array(0..<n), "shuffled")
        XCTAssertEqual(pass(epoch: 0), e0, "same order for the same (seed, epoch)")
        XCTAssertNotEqual(pass(epoch: 1), e0, "a new order each epoch")
    }

    /// The parts a data-parallel rank assembles (3 parts here, batches of 10 and a last of 3)
    /// put together are exactly the whole batch: same images, labels and random crops/flips.
    func testPartsOfABatchTogetherAreTheWholeBatch() throws {
        let n = 23
        var rng = RNG(seed: 9)
        let image = Tensor([n, 6, 6, 3])
        rng.fillNormal(image, std: 1)
        let ds = try ImageDataset(pixels: .floats(image.array), labels: (0..<n).map { Int32($0 % 5) }, height: 6, width: 6, channels: 3, classes: 5)
        func batches(part: (Int, Int)) -> [(images: [Float], labels: [Int32])] {
            let loader = BatchLoader(dataset: ds, indices: Array(0..<n), batchSize: 10, shuffle: true, augmentation: .cifar,
                                     mean: [0.1, 0.2, 0.3], std: [1, 2, 3], seed: 4, epoch: 2, part: part)
            var out: [([Float], [Int32])] = []
            while let b = loader.next() { out.append((b.images.array, b.labels)) }
            return out
        }
        let whole = batches(part: (0, 1))
        let parts = (0..<3).map { batches(part: ($0, 3)) }
        XCTAssertEqual(whole.count, 3)
        for b in whole.indices {
            XCTAssertEqual(parts.map { $0[b].labels.count }, b == 2 ? [1, 1, 1] : [3, 3, 4], "images n*i/3 ..< n*(i+1)/3 of a batch of n")
            XCTAssertEqual(parts.flatMap { $0[b].labels }, whole[b].labels)
            XCTAssertEqual(parts.flatMap { $0[b].images }, whole[b].images)
        }
    }

    func testCropAndFlip() throws {
        // 1 image 2x2x1 [[1,2],[3,4]]; flip only -> [[2,1],[4,3]] or unchanged
        let ds = try ImageDataset(pixels: .floats([1, 2, 3, 4]), labels: [0], height: 2, width: 2, channels: 1, classes: 1)
        var flipped = 0
        for epoch in 0..<20 {
            let l = BatchLoader(dataset: ds, indices: [0], batchSize: 1, shuffle: false, augmentation: Augmentation(cropPadding: 0, flip: true),
                                mean: [0], std: [1], seed: 1, epoch: epoch)
            let img = l.next()!.images.array
            XCTAssertTrue(img == [1, 2, 3, 4] || img == [2, 1, 4, 3], "\(img)")
            if img == [2, 1, 4, 3] { flipped += 1 }
        }
        XCTAssertTrue(flipped > 2 && flipped < 18, "flips about half the time, got \(flipped)/20")
        // crop with padding 1: every output pixel is an input pixel or the zero padding
        let l = BatchLoader(dataset: ds, indices: [0], batchSize: 1, shuffle: false, augmentation: Augmentation(cropPadding: 1, flip: false),
                            mean: [0], std: [1], seed: 3, epoch: 0)
        for v in l.next()!.images.array { XCTAssertTrue([0, 1, 2, 3, 4].contains(v)) }
    }
}
