import Foundation
import Tensor

/// NumPy `.npy` arrays, so any dataset can be brought in.
///
/// `npy:DIR` expects `train_x.npy`, `train_y.npy`, `test_x.npy`, `test_y.npy` in DIR.
/// Images: uint8 (0-255) or float32, shape (N, H, W, C) or (N, C, H, W) with C in {1, 3}
/// (NHWC is assumed when the last axis is 1 or 3). Labels: 1-D integer array (int8/16/32/64,
/// uint8/16/32) with values in 0..<K; K = max label + 1 over train and test.
public enum NpyDataset {
    public static func load(directory: String) throws -> DataSource {
        let dir = URL(fileURLWithPath: directory)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDir), isDir.boolValue else {
            throw LTHError("npy directory '\(directory)' does not exist")
        }
        let trainX = try NpyArray(path: dir.appendingPathComponent("train_x.npy").path)
        let trainY = try NpyArray(path: dir.appendingPathComponent("train_y.npy").path)
        let testX = try NpyArray(path: dir.appendingPathComponent("test_x.npy").path)
        let testY = try NpyArray(path: dir.appendingPathComponent("test_y.npy").path)
        let trainLabels = try trainY.labels(), testLabels = try testY.labels()
        let classes = Int(max(trainLabels.max() ?? 0, testLabels.max() ?? 0)) + 1
        if let neg = (trainLabels + testLabels).first(where: { $0 < 0 }) {
            throw LTHError("npy labels must be in 0..<K, found \(neg)")
        }
        guard classes <= DataSource.maxClasses else {
            throw LTHError("npy labels go up to \(classes - 1): more than \(DataSource.maxClasses) classes; labels must be 0..K-1 with K <= \(DataSource.maxClasses)")
        }
        let train = try trainX.images(labels: trainLabels, classes: classes)
        let test = try testX.images(labels: testLabels, classes: classes)
        guard (train.height, train.width, train.channels) == (test.height, test.width, test.channels) else {
            throw LTHError("npy train images are \(train.height)x\(train.width)x\(train.channels) but test images are \(test.height)x\(test.width)x\(test.channels)")
        }
        return DataSource(name: "npy:\(directory)", train: train, test: test)
    }
}

/// One parsed `.npy` file (format versions 1-3, little-endian, C order).
public struct NpyArray {
    public let path: String
    public let descr: String
    public let shape: [Int]
    let payload: Data

    public init(path: String) throws {
        self.path = path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LTHError("npy file '\(path)' is missing or unreadable")
        }
        guard data.count >= 10, data.prefix(6) == Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]) else {
            throw LTHError("'\(path)' is not a .npy file (bad magic)")
        }
        let major = data[6]
        let headerLength: Int, headerStart: Int
        if major == 1 {
            headerLength = Int(data[8]) | Int(data[9]) << 8
            headerStart = 10
        } else if major == 2 || major == 3, data.count >= 12 {
            headerLength = Int(data[8]) | Int(data[9]) << 8 | Int(data[10]) << 16 | Int(data[11]) << 24
            headerStart = 12
        } else {
            throw LTHError("'\(path)': unsupported .npy format version \(major)")
        }
        guard data.count >= headerStart + headerLength,
              let header = String(data: data.subdata(in: headerStart..<headerStart + headerLength), encoding: .ascii) else {
            throw LTHError("'\(path)': truncated .npy header")
        }
        func field(_ key: String) -> String? {
            guard let r = header.range(of: "'\(key)':") else { return nil }
            return String(header[r.upperBound...]).trimmingCharacters(in: .whitespaces)
        }
        guard let d = field("descr"), let q1 = d.firstIndex(of: "'"),
              let q2 = d[d.index(after: q1)...].firstIndex(of: "'") else {
            throw LTHError("'\(path)': .npy header without descr")
        }
        descr = String(d[d.index(after: q1)..<q2])
        if let f = field("fortran_order"), f.hasPrefix("True") {
            throw LTHError("'\(path)': Fortran-ordered arrays are not supported; save with np.ascontiguousarray")
        }
        guard let s = field("shape"), let open = s.firstIndex(of: "("), let close = s[open...].firstIndex(of: ")") else {
            throw LTHError("'\(path)': .npy header without shape")
        }
        var dims: [Int] = []
        for text in s[s.index(after: open)..<close].split(separator: ",") {
            let t = text.trimmingCharacters(in: .whitespaces)
            guard let d = Int(t), d >= 0 else { throw LTHError("'\(path)': .npy shape entry '\(t)' is not a non-negative integer") }
            dims.append(d)
        }
        shape = dims
        payload = data.subdata(in: headerStart + headerLength..<data.count)
        // sizes come from the file: every product is overflow-checked before anything is read
        var expected = try itemSize()
        for d in shape {
            let (product, overflow) = expected.multipliedReportingOverflow(by: d)
            guard !overflow else { throw LTHError("'\(path)': .npy shape \(shape) describes more bytes than can exist") }
            expected = product
        }
        guard payload.count >= expected else {
            throw LTHError("'\(path)': truncated: \(payload.count) data bytes for shape \(shape) of \(descr) (needs \(expected))")
        }
    }

    func itemSize() throws -> Int {
        let sizes = ["|u1": 1, "|i1": 1, "<u2": 2, "<i2": 2, "<u4": 4, "<i4": 4, "<i8": 8, "<u8": 8, "<f4": 4, "<f8": 8]
        guard let s = sizes[descr] else {
            throw LTHError("'\(path)': unsupported dtype '\(descr)'; expected uint8 or float32 images and integer labels")
        }
        return s
    }

    /// The array as integer labels (1-D integer dtype).
    public func labels() throws -> [Int32] {
        guard shape.count == 1 else { throw LTHError("'\(path)': labels must be 1-D, got shape \(shape)") }
        let n = shape[0]
        return try payload.withUnsafeBytes { raw -> [Int32] in
            func read<T: FixedWidthInteger>(_: T.Type) -> [Int32] {
                (0..<n).map { Int32(truncatingIfNeeded: raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self)) }
            }
            switch descr {
            case "|u1": return read(UInt8.self)
            case "|i1": return read(Int8.self)
            case "<u2": return read(UInt16.self)
            case "<i2": return read(Int16.self)
            case "<u4": return read(UInt32.self)
            case "<i4": return read(Int32.self)
            case "<i8": return read(Int64.self)
            default: throw LTHError("'\(path)': labels must have an integer dtype, got '\(descr)'")
            }
        }
    }

    /// The array as NHWC images with `labels`.
    public func images(labels: [Int32], classes: Int) throws -> ImageDataset {
        guard shape.count == 4 else { throw LTHError("'\(path)': images must be 4-D (N,H,W,C) or (N,C,H,W), got shape \(shape)") }
        guard shape[0] == labels.count else {
            throw LTHError("'\(path)': \(shape[0]) images but \(labels.count) labels")
        }
        let nchw = !(shape[3] == 1 || shape[3] == 3) && (shape[1] == 1 || shape[1] == 3)
        guard nchw || shape[3] == 1 || shape[3] == 3 else {
            throw LTHError("'\(path)': shape \(shape) has no channel axis of size 1 or 3 (expected NHWC or NCHW)")
        }
        let (n, h, w, c) = nchw ? (shape[0], shape[2], shape[3], shape[1]) : (shape[0], shape[1], shape[2], shape[3])
        let count = n * h * w * c
        func toNHWC<T>(_ src: [T]) -> [T] {
            guard nchw else { return src }
            var out = src
            for i in 0..<n { for ch in 0..<c { for p in 0..<h * w { out[(i * h * w + p) * c + ch] = src[(i * c + ch) * h * w + p] } } }
            return out
        }
        switch descr {
        case "|u1":
            let bytes = [UInt8](payload.prefix(count))
            return try ImageDataset(pixels: .bytes(toNHWC(bytes)), labels: labels, height: h, width: w, channels: c, classes: classes)
        case "<f4":
            let floats = payload.withUnsafeBytes { raw in (0..<count).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
            return try ImageDataset(pixels: .floats(toNHWC(floats)), labels: labels, height: h, width: w, channels: c, classes: classes)
        default:
            throw LTHError("'\(path)': images must be uint8 or float32, got dtype '\(descr)'")
        }
    }

    /// The array as float32 values (dtype '<f4').
    public func floats() throws -> [Float] {
        guard descr == "<f4" else { throw LTHError("'\(path)': expected float32, got '\(descr)'") }
        let n = shape.reduce(1, *)
        return payload.withUnsafeBytes { raw in (0..<n).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
    }

    /// Writes a little-endian C-order `.npy` file (version 1) with `descr` and `shape`.
    public static func write(path: String, descr: String, shape: [Int], bytes: Data) throws {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        let total = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
        var data = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
        let len = UInt16(header.utf8.count)
        data.append(contentsOf: [UInt8(len & 0xFF), UInt8(len >> 8)])
        data.append(header.data(using: .ascii)!)
        data.append(bytes)
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
            throw LTHError("cannot write '\(path)': it is a folder; give a file path, e.g. '\(URL(fileURLWithPath: path).appendingPathComponent("logits.npy").path)'")
        }
        do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
            let why = !FileManager.default.fileExists(atPath: parent) ? "its folder '\(parent)' does not exist"
                : access(parent, W_OK) != 0 ? "its folder '\(parent)' is not writable" : (fileErrorDescription(error) ?? "\(error)")
            throw LTHError("cannot write '\(path)': \(why)")
        }
    }
}
