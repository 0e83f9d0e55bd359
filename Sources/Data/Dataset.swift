import Foundation
import Tensor

/// Labelled images in memory, NHWC, either bytes (0-255) or floats.
/// `classes` is the label range: every label is in 0..<classes.
public struct ImageDataset: Sendable {
    public enum Pixels: Sendable {
        case bytes([UInt8])
        case floats([Float])
    }
    public let pixels: Pixels
    public let labels: [Int32]
    public let height: Int, width: Int, channels: Int
    public let classes: Int

    public var count: Int { labels.count }
    public var imageSize: Int { height * width * channels }

    public init(pixels: Pixels, labels: [Int32], height: Int, width: Int, channels: Int, classes: Int) throws {
        let n = labels.count
        let stored: Int
        switch pixels {
        case .bytes(let b): stored = b.count
        case .floats(let f): stored = f.count
        }
        guard stored == n * height * width * channels else {
            throw LTHError("dataset holds \(stored) pixel values, expected \(n) x \(height) x \(width) x \(channels)")
        }
        if let bad = labels.first(where: { $0 < 0 || Int($0) >= classes }) {
            throw LTHError("label \(bad) out of range: expected 0..<\(classes)")
        }
        if case .floats(let f) = pixels, let i = f.firstIndex(where: { !$0.isFinite }) {
            let size = height * width * channels
            throw LTHError("image \(i / max(size, 1)) holds a non-finite pixel value (\(f[i])); clean the data (e.g. np.nan_to_num) before training")
        }
        self.pixels = pixels
        self.labels = labels
        self.height = height
        self.width = width
        self.channels = channels
        self.classes = classes
    }

    /// Pixel value of image `i` at flat NHWC offset `j` within the image, on the 0-255 scale
    /// for byte data.
    @inline(__always)
    public func value(_ i: Int, _ j: Int) -> Float {
        switch pixels {
        case .bytes(let b): return Float(b[i * imageSize + j])
        case .floats(let f): return f[i * imageSize + j]
        }
    }

    /// Per-channel mean and standard deviation over the images at `indices` (for normalisation).
    public func channelStatistics(_ indices: [Int]) -> (mean: [Float], std: [Float]) {
        var sum = [Double](repeating: 0, count: channels), sq = sum
        let pixelsPerImage = height * width
        for i in indices {
            for p in 0..<pixelsPerImage {
                for c in 0..<channels {
                    let v = Double(value(i, p * channels + c))
                    sum[c] += v
                    sq[c] += v * v
                }
            }
        }
        let n = Double(max(indices.count * pixelsPerImage, 1))
        let mean = sum.map { $0 / n }
        let std = zip(sq, mean).map { max(($0 / n - $1 * $1).squareRoot(), 1e-6) }
        return (mean.map(Float.init), std.map(Float.init))
    }
}

/// A dataset's train and test parts as loaded from a source.
public struct DataSource: Sendable {
    public let name: String
    public let train: ImageDataset
    public let test: ImageDataset
    public init(name: String, train: ImageDataset, test: ImageDataset) {
        self.name = name
        self.train = train
        self.test = test
    }

    /// The spellings accepted on the command line.
    public static let usage = "synthetic | synthetic-context | cifar10:PATH | cifar100:PATH | npy:DIR"
    /// The most classes a dataset may have (labels are 0..K-1).
    public static let maxClasses = 100_000
    /// The most images `synthetic:N` generates (they are made in memory: 3 KB each).
    public static let maxSyntheticImages = 1_000_000

    /// Loads `synthetic`, `synthetic-context`, `cifar10:PATH`, `cifar100:PATH` or `npy:DIR`.
    public static func load(_ spec: String, seed: UInt64 = 0) throws -> DataSource {
        for (name, make) in [("synthetic", SyntheticShapes.make), ("synthetic-context", SyntheticContext.make)] {
            if spec == name { return try make(seed, 10_000, 2_000) }
            if spec.hasPrefix(name + ":") {
                guard let n = Int(spec.dropFirst(name.count + 1)), n >= 20, n <= maxSyntheticImages else {
                    throw LTHError("data '\(spec)': expected \(name):N with 20 <= N <= \(maxSyntheticImages) training images")
                }
                return try make(seed, n, max(n / 5, 20))
            }
        }
        let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[1].isEmpty else {
            throw LTHError("data '\(spec)' not understood; expected \(usage)")
        }
        let source: DataSource
        switch parts[0] {
        case "cifar10": source = try CIFAR.load(directory: parts[1], fine100: false)
        case "cifar100": source = try CIFAR.load(directory: parts[1], fine100: true)
        case "npy": source = try NpyDataset.load(directory: parts[1])
        default: throw LTHError("data kind '\(parts[0])' unknown; expected \(usage)")
        }
        guard source.train.count > 0 else { throw LTHError("data '\(spec)' holds no training images") }
        guard source.test.count > 0 else { throw LTHError("data '\(spec)' holds no test images; an accuracy on nothing would read 0%") }
        return source
    }
}

/// A stratified train/validation split of a training set, fixed by the seed: `perClass`
/// images of every class go to validation, the rest to training.
public struct Split: Sendable {
    public let train: [Int]
    public let validation: [Int]

    public init(labels: [Int32], classes: Int, perClass: Int, seed: UInt64) throws {
        var byClass = [[Int]](repeating: [], count: classes)
        for (i, l) in labels.enumerated() { byClass[Int(l)].append(i) }
        var rng = RNG(seed: seed ^ 0x5EED_5B17)
        var train: [Int] = [], val: [Int] = []
        guard !labels.isEmpty else { throw LTHError("the training data holds no images") }
        for (c, var members) in byClass.enumerated() {
            if members.isEmpty {
                throw LTHError("class \(c) has no training image (a label found only in the test split, or missing); labels must be 0..K-1 with every class in the training data")
            }
            if perClass > 0 && members.count <= perClass {
                throw LTHError("`valPerClass` \(perClass) leaves no training image of class \(c) (it has \(members.count)); use a smaller value")
            }
            rng.shuffle(&members)
            val += members.prefix(perClass)
            train += members.dropFirst(perClass)
        }
        self.train = train.sorted()
        self.validation = val.sorted()
    }
}
