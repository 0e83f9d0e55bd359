import Foundation
import Tensor

/// CIFAR-10 / CIFAR-100 in their standard binary formats.
///
/// - CIFAR-10 (`cifar10:DIR`): `data_batch_1.bin` ... `data_batch_5.bin` and `test_batch.bin`,
///   each record = 1 label byte + 3072 pixel bytes (1024 R, 1024 G, 1024 B, row-major).
/// - CIFAR-100 (`cifar100:DIR`): `train.bin` and `test.bin`, each record = coarse label byte +
///   fine label byte + 3072 pixel bytes; the fine labels (100 classes) are used.
/// DIR may also be the parent folder holding `cifar-10-batches-bin` / `cifar-100-binary`.
public enum CIFAR {
    static let pixels = 3072

    public static func load(directory: String, fine100: Bool) throws -> DataSource {
        var dir = URL(fileURLWithPath: directory)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDir), isDir.boolValue else {
            throw LTHError("CIFAR directory '\(directory)' does not exist")
        }
        let nested = dir.appendingPathComponent(fine100 ? "cifar-100-binary" : "cifar-10-batches-bin")
        if FileManager.default.fileExists(atPath: nested.path) { dir = nested }
        let trainFiles = fine100 ? ["train.bin"] : (1...5).map { "data_batch_\($0).bin" }
        let testFiles = fine100 ? ["test.bin"] : ["test_batch.bin"]
        let train = try read(trainFiles.map { dir.appendingPathComponent($0) }, fine100: fine100)
        let test = try read(testFiles.map { dir.appendingPathComponent($0) }, fine100: fine100)
        return DataSource(name: fine100 ? "cifar100" : "cifar10", train: train, test: test)
    }

    /// Reads and concatenates record files, converting CHW planes to NHWC.
    static func read(_ files: [URL], fine100: Bool) throws -> ImageDataset {
        let labelBytes = fine100 ? 2 : 1
        let record = labelBytes + pixels
        var images: [UInt8] = [], labels: [Int32] = []
        for url in files {
            guard let data = FileManager.default.contents(atPath: url.path) else {
                throw LTHError("CIFAR file '\(url.path)' is missing or unreadable (expected the binary version of the dataset)")
            }
            guard data.count > 0, data.count % record == 0 else {
                throw LTHError("CIFAR file '\(url.path)' has \(data.count) bytes, not a multiple of the \(record)-byte record: truncated or not a \(fine100 ? "CIFAR-100" : "CIFAR-10") binary file")
            }
            let n = data.count / record
            let start = images.count
            images += [UInt8](repeating: 0, count: n * pixels)
            try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
                let bytes = raw.bindMemory(to: UInt8.self)
                for r in 0..<n {
                    let base = r * record
                    let label = Int32(bytes[base + labelBytes - 1])
                    let limit: Int32 = fine100 ? 100 : 10
                    guard label < limit else {
                        throw LTHError("CIFAR file '\(url.path)': record \(r) has label \(label), expected 0..<\(limit)")
                    }
                    labels.append(label)
                    let out = start + r * pixels
                    for p in 0..<1024 {
                        for c in 0..<3 { images[out + p * 3 + c] = bytes[base + labelBytes + c * 1024 + p] }
                    }
                }
            }
        }
        return try ImageDataset(pixels: .bytes(images), labels: labels, height: 32, width: 32, channels: 3, classes: fine100 ? 100 : 10)
    }
}
