import Foundation
import Tensor

/// Reading and writing safetensors files: an 8-byte little-endian header length, a JSON
/// header (`__metadata__` string map + per-tensor dtype, shape, data_offsets), raw
/// little-endian data. Readable by `safetensors.torch.load_file` with no converter.
public enum SafeTensors {
    /// A tensor to write: fp32 values, stored as F32, or as I64 when `integer` (PyTorch's
    /// `num_batches_tracked`).
    public struct Entry {
        public let name: String
        public let tensor: Tensor
        public let integer: Bool
        public init(_ name: String, _ tensor: Tensor, integer: Bool = false) {
            self.name = name
            self.tensor = tensor
            self.integer = integer
        }
    }

    /// A tensor read back (values converted to Float).
    public struct Loaded {
        public let shape: [Int]
        public let values: [Float]
    }

    /// Writes atomically: a temporary file in the same folder, fsync, rename. A crash at any
    /// point leaves either the old file or the new one, never a partial file.
    public static func write(_ entries: [Entry], metadata: [String: String], to path: String) throws {
        var header: [String: Any] = ["__metadata__": metadata]
        var offset = 0
        for e in entries {
            let bytes = e.tensor.count * (e.integer ? 8 : 4)
            header[e.name] = ["dtype": e.integer ? "I64" : "F32", "shape": e.tensor.shape, "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        json.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8))
        var data = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(json)
        for e in entries {
            if e.integer {
                for i in 0..<e.tensor.count { withUnsafeBytes(of: Int64(e.tensor[i]).littleEndian) { data.append(contentsOf: $0) } }
            } else {
                data.append(UnsafeBufferPointer(start: e.tensor.data, count: e.tensor.count))
            }
        }
        try writeAtomically(data, to: path)
    }

    /// Writes `data` to `path` through a temporary file + fsync + rename.
    public static func writeAtomically(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        guard FileManager.default.createFile(atPath: tmp.path, contents: nil) else {
            throw LTHError("cannot create '\(tmp.path)': check that the folder exists and is writable")
        }
        let handle = try FileHandle(forWritingTo: tmp)
        do {
            try handle.write(contentsOf: data)
            try handle.synchronize()
            try handle.close()
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            throw LTHError("writing '\(path)' failed: \(error.localizedDescription)")
        }
        guard rename(tmp.path, url.path) == 0 else {
            try? FileManager.default.removeItem(at: tmp)
            throw LTHError("cannot rename '\(tmp.path)' to '\(path)': errno \(errno)")
        }
        let dir = open(url.deletingLastPathComponent().path, O_RDONLY)
        if dir >= 0 { fsync(dir); close(dir) }
    }

    /// Reads a whole file. Throws a one-line error for anything that is not a well-formed
    /// safetensors file of F32/I64 tensors.
    public static func read(_ path: String) throws -> (tensors: [String: Loaded], metadata: [String: String]) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LTHError("checkpoint '\(path)' is missing or unreadable")
        }
        guard data.count >= 8 else { throw LTHError("checkpoint '\(path)' is truncated (\(data.count) bytes)") }
        let n = data.prefix(8).withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        guard n > 0, n <= data.count - 8 else { throw LTHError("checkpoint '\(path)' is not a safetensors file (header length \(n))") }
        guard let header = try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<8 + n)) as? [String: Any] else {
            throw LTHError("checkpoint '\(path)' has a corrupt safetensors header")
        }
        let body = data.subdata(in: 8 + n..<data.count)
        var tensors: [String: Loaded] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" { metadata = value as? [String: String] ?? [:]; continue }
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
                throw LTHError("checkpoint '\(path)': malformed entry for '\(name)'")
            }
            let count = shape.reduce(1, *)
            let width = dtype == "F32" ? 4 : dtype == "I64" ? 8 : 0
            guard width > 0 else { throw LTHError("checkpoint '\(path)': tensor '\(name)' has dtype \(dtype); expected F32 or I64") }
            guard offsets[0] >= 0, offsets[1] - offsets[0] == count * width, offsets[1] <= body.count else {
                throw LTHError("checkpoint '\(path)' is truncated or corrupt at tensor '\(name)'")
            }
            let values: [Float] = body.withUnsafeBytes { raw in
                (0..<count).map { i in
                    width == 4 ? raw.loadUnaligned(fromByteOffset: offsets[0] + 4 * i, as: Float.self)
                        : Float(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: offsets[0] + 8 * i, as: Int64.self)))
                }
            }
            tensors[name] = Loaded(shape: shape, values: values)
        }
        return (tensors, metadata)
    }
}
