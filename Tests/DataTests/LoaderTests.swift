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
