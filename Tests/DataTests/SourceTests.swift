import Data
import Foundation
import Tensor
import XCTest

/// Loaders on small files written here in each format, including every bad-input case.
final class SourceTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("lth4sa-data-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func assertError(_ spec: String, contains text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try DataSource.load(spec), file: file, line: line) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains(text), "'\(message)' should mention '\(text)'", file: file, line: line)
            XCTAssertFalse(message.contains("\n"), "one line", file: file, line: line)
        }
    }

    /// A CIFAR record: label byte(s) then R, G, B planes; pixel p of plane c = (p + c) % 256.
    func cifarRecords(_ labels: [[UInt8]]) -> Data {
        var d = Data()
        for l in labels {
            d.append(contentsOf: l)
            for c in 0..<3 { for p in 0..<1024 { d.append(UInt8((p + c * 7) % 256)) } }
        }
        return d
    }

    func testCIFAR10() throws {
        for b in 1...5 { try cifarRecords([[UInt8(b)], [9]]).write(to: URL(fileURLWithPath: path("data_batch_\(b).bin"))) }
        try cifarRecords([[3]]).write(to: URL(fileURLWithPath: path("test_batch.bin")))
        let src = try DataSource.load("cifar10:\(dir.path)")
        XCTAssertEqual(src.train.count, 10)
        XCTAssertEqual(src.test.count, 1)
        XCTAssertEqual(src.train.labels.prefix(4), [1, 9, 2, 9])
        XCTAssertEqual(src.train.classes, 10)
        // NHWC: pixel p channel c at p*3 + c
        XCTAssertEqual(src.train.value(0, 5 * 3 + 2), Float((5 + 14) % 256))
    }

    func testCIFAR100UsesFineLabels() throws {
        try cifarRecords([[1, 57], [19, 99]]).write(to: URL(fileURLWithPath: path("train.bin")))
        try cifarRecords([[0, 3]]).write(to: URL(fileURLWithPath: path("test.bin")))
        let src = try DataSource.load("cifar100:\(dir.path)")
        XCTAssertEqual(src.train.labels, [57, 99])
        XCTAssertEqual(src.train.classes, 100)
    }

    func testCIFARBadInput() throws {
        assertError("cifar10:\(path("nope"))", contains: "does not exist")
        try cifarRecords([[1]]).write(to: URL(fileURLWithPath: path("data_batch_1.bin")))
        assertError("cifar10:\(dir.path)", contains: "data_batch_2.bin")
        for b in 2...5 { try cifarRecords([[1]]).write(to: URL(fileURLWithPath: path("data_batch_\(b).bin"))) }
        try cifarRecords([[1]]).prefix(1000).write(to: URL(fileURLWithPath: path("test_batch.bin")))
        assertError("cifar10:\(dir.path)", contains: "truncated")
        try cifarRecords([[12]]).write(to: URL(fileURLWithPath: path("test_batch.bin")))
        assertError("cifar10:\(dir.path)", contains: "label 12")
    }

    func writeNpy(_ name: String, _ descr: String, _ shape: [Int], _ bytes: Data) throws {
        try NpyArray.write(path: path(name), descr: descr, shape: shape, bytes: bytes)
    }

    func testNpyUint8NHWCAndFloatNCHW() throws {
        // train: uint8 NHWC 4 images 2x2x3; test: float32 NCHW 2 images 3x2x2
        try writeNpy("train_x.npy", "|u1", [4, 2, 2, 3], Data((0..<48).map { UInt8($0) }))
        try writeNpy("train_y.npy", "<i8", [4], Data([0, 1, 2, 1].flatMap { withUnsafeBytes(of: Int64($0)) { Array($0) } }))
        let nchw: [Float] = (0..<24).map(Float.init)
        try writeNpy("test_x.npy", "<f4", [2, 3, 2, 2], nchw.withUnsafeBufferPointer { Data(buffer: $0) })
        try writeNpy("test_y.npy", "|u1", [2], Data([2, 0]))
        let src = try DataSource.load("npy:\(dir.path)")
        XCTAssertEqual(src.train.classes, 3)
        XCTAssertEqual(src.train.value(1, 0), 12)
        // NCHW -> NHWC: image 0, pixel 1, channel 2 = src[(0*3+2)*4 + 1] = 9
        XCTAssertEqual(src.test.value(0, 1 * 3 + 2), 9)
        XCTAssertEqual(src.test.labels, [2, 0])
    }

    func testNpyBadInput() throws {
        try writeNpy("train_x.npy", "|u1", [2, 2, 2, 3], Data(count: 24))
        try writeNpy("train_y.npy", "<i4", [2], Data(count: 8))
        try writeNpy("test_x.npy", "|u1", [1, 2, 2, 3], Data(count: 12))
        try writeNpy("test_y.npy", "<i4", [1], Data(count: 4))
        XCTAssertNoThrow(try DataSource.load("npy:\(dir.path)"))
        try writeNpy("test_x.npy", "<f8", [1, 2, 2, 3], Data(count: 96))
        assertError("npy:\(dir.path)", contains: "uint8 or float32")
        try writeNpy("test_x.npy", "|u1", [1, 2, 2, 5], Data(count: 20))
        assertError("npy:\(dir.path)", contains: "channel axis")
        try writeNpy("test_x.npy", "|u1", [12], Data(count: 12))
        assertError("npy:\(dir.path)", contains: "4-D")
        try writeNpy("test_x.npy", "|u1", [1, 2, 2, 3], Data(count: 5))
        assertError("npy:\(dir.path)", contains: "truncated")
        try Data("not numpy at all".utf8).write(to: URL(fileURLWithPath: path("test_x.npy")))
        assertError("npy:\(dir.path)", contains: "not a .npy file")
        try writeNpy("test_x.npy", "|u1", [1, 2, 2, 3], Data(count: 12))
        try writeNpy("test_y.npy", "<f4", [1], Data(count: 4))
        assertError("npy:\(dir.path)", contains: "integer dtype")
        try writeNpy("test_y.npy", "<i4", [1], withUnsafeBytes(of: Int32(-3)) { Data($0) })
        assertError("npy:\(dir.path)", contains: "-3")
        try writeNpy("test_y.npy", "<i4", [1], Data(count: 4))
        let nan: [Float] = [1, 2, .nan, 4] + [Float](repeating: 0, count: 8)
        try writeNpy("test_x.npy", "<f4", [1, 2, 2, 3], nan.withUnsafeBytes { Data($0) })
        assertError("npy:\(dir.path)", contains: "non-finite pixel value (nan)")
        try writeNpy("test_x.npy", "|u1", [1, 2, 2, 3], Data(count: 12))
        try writeNpy("test_y.npy", "<i4", [1], withUnsafeBytes(of: Int32(1_000_000_000)) { Data($0) })
        assertError("npy:\(dir.path)", contains: "more than 100000 classes")
        try writeNpy("test_y.npy", "<i4", [1], Data(count: 4))
        // sizes read from a header are overflow-checked before anything is read
        try writeNpy("test_x.npy", "|u1", [1 << 31, 1 << 31, 1 << 31, 3], Data(count: 12))
        assertError("npy:\(dir.path)", contains: "more bytes than can exist")
        // found by scripts/fuzz.sh: a ')' before the '(' of the shape crashed the header parser
        var bad = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, 46, 0])
        bad.append(Data("{'descr': '|u1', 'shape': 2,), (}            \n".utf8))
        try bad.write(to: URL(fileURLWithPath: path("test_x.npy")))
        assertError("npy:\(dir.path)", contains: "without shape")
        try writeNpy("test_x.npy", "|u1", [1, -2, 2, 3], Data(count: 12))
        assertError("npy:\(dir.path)", contains: "not a non-negative integer")
        try FileManager.default.removeItem(atPath: path("train_y.npy"))
        assertError("npy:\(dir.path)", contains: "train_y.npy")
    }

    func testDataSpecErrors() {
        assertError("imagenet:/x", contains: "unknown")
        assertError("cifar10", contains: "not understood")
        assertError("synthetic:3", contains: "synthetic:N")
        assertError("synthetic:100000000", contains: "N <= 1000000")
    }

    /// Missing classes and empty splits are named for what they are, not blamed on --val-per-class.
    func testEmptySplitsAndTestOnlyLabelsAreExplained() throws {
        XCTAssertThrowsError(try Split(labels: [0, 0, 0], classes: 2, perClass: 0, seed: 0)) {
            XCTAssertTrue("\($0)".contains("class 1 has no training image"), "\($0)")
        }
        XCTAssertThrowsError(try Split(labels: [], classes: 2, perClass: 1, seed: 0)) { XCTAssertTrue("\($0)".contains("no images"), "\($0)") }
        try writeNpy("train_x.npy", "|u1", [2, 2, 2, 3], Data(count: 24))
        try writeNpy("train_y.npy", "<i4", [2], Data(count: 8))
        try writeNpy("test_x.npy", "|u1", [0, 2, 2, 3], Data())
        try writeNpy("test_y.npy", "<i4", [0], Data())
        assertError("npy:\(dir.path)", contains: "no test images")
    }

    func testLabelRangeChecked() {
        XCTAssertThrowsError(try ImageDataset(pixels: .bytes([0, 0, 0]), labels: [4], height: 1, width: 1, channels: 3, classes: 3)) {
            XCTAssertTrue("\($0)".contains("label 4 out of range"))
        }
    }

    func testSyntheticIsDeterministicAndBalanced() throws {
        let a = try SyntheticShapes.generate(count: 40, seed: 3), b = try SyntheticShapes.generate(count: 40, seed: 3)
        let c = try SyntheticShapes.generate(count: 40, seed: 4)
        guard case .bytes(let pa) = a.pixels, case .bytes(let pb) = b.pixels, case .bytes(let pc) = c.pixels else { return XCTFail() }
        XCTAssertEqual(pa, pb)
        XCTAssertNotEqual(pa, pc)
        XCTAssertEqual((0..<10).map { k in a.labels.filter { $0 == k }.count }, Array(repeating: 4, count: 10))
    }

    /// `synthetic-context` is deterministic in its seed, balanced, and every image shows its
    /// rule: a light frame with the label's hue on the solid disk, or a dark frame with it on
    /// the striped square (hues decoded back from the pixels).
    func testSyntheticContextFollowsItsRule() throws {
        let count = 60, seed: UInt64 = 5
        let set = try SyntheticContext.generate(count: count, seed: seed)
        guard case .bytes(let pixels) = set.pixels, case .bytes(let again) = try SyntheticContext.generate(count: count, seed: seed).pixels,
              case .bytes(let other) = try SyntheticContext.generate(count: count, seed: seed + 1).pixels else { return XCTFail() }
        XCTAssertEqual(pixels, again)
        XCTAssertNotEqual(pixels, other)
        XCTAssertEqual((0..<10).map { k in set.labels.filter { $0 == k }.count }, Array(repeating: 6, count: 10))
        let side = SyntheticContext.side
        var readsDisk = 0
        for i in 0..<count {
            let scene = SyntheticContext.scene(index: i, seed: seed)
            XCTAssertEqual(scene.label, Int(set.labels[i]))
            XCTAssertNotEqual(scene.disk.hue, scene.square.hue)
            if scene.readsDisk { readsDisk += 1 }
            let image = Array(pixels[(i * side * side * 3)..<((i + 1) * side * side * 3)])
            // mean RGB over the pixels a predicate selects
            func mean(_ inside: (Int, Int) -> Bool) -> (Double, Double, Double) {
                var sum = (0.0, 0.0, 0.0), n = 0.0
                for y in 0..<side { for x in 0..<side where inside(x, y) {
                    let o = (y * side + x) * 3
                    sum = (sum.0 + Double(image[o]), sum.1 + Double(image[o + 1]), sum.2 + Double(image[o + 2]))
                    n += 1
                } }
                XCTAssertGreaterThan(n, 0)
                return (sum.0 / n, sum.1 / n, sum.2 / n)
            }
            func hue(_ c: (Double, Double, Double)) -> Int {
                let mx = max(c.0, c.1, c.2), mn = min(c.0, c.1, c.2), d = max(mx - mn, 1e-9)
                var h = mx == c.0 ? (c.1 - c.2) / d : mx == c.1 ? 2 + (c.2 - c.0) / d : 4 + (c.0 - c.1) / d
                if h < 0 { h += 6 }
                return Int((h / 6 * 10).rounded()) % 10
            }
            let frame = mean { x, y in min(x, y, side - 1 - x, side - 1 - y) < SyntheticContext.frame }
            XCTAssertEqual((frame.0 + frame.1 + frame.2) / 3 > 128, scene.readsDisk, "image \(i): light frame = read the disk")
            let d = scene.disk, q = scene.square, half = q.radius * 0.85
            func inDisk(_ x: Int, _ y: Int) -> Bool {
                let dx = Float(x) + 0.5 - d.x, dy = Float(y) + 0.5 - d.y
                return dx * dx + dy * dy <= d.radius * d.radius
            }
            func inSquare(_ x: Int, _ y: Int) -> Bool { abs(Float(x) + 0.5 - q.x) <= half && abs(Float(y) + 0.5 - q.y) <= half }
            XCTAssertEqual(hue(mean(inDisk)), d.hue, "image \(i): the disk's hue")
            XCTAssertEqual(hue(mean { x, y in inSquare(x, y) && y % 2 == 0 }), q.hue, "image \(i): the square's hue")
            let stripes = mean { x, y in inSquare(x, y) && y % 2 == 1 }
            XCTAssertLessThan(max(stripes.0, stripes.1, stripes.2), 40, "image \(i): the square's odd rows are black")
            for o in [d, q] {
                XCTAssertGreaterThanOrEqual(min(o.x, o.y) - o.radius, Float(SyntheticContext.frame) - 1e-4, "image \(i): inside the frame")
                XCTAssertLessThanOrEqual(max(o.x, o.y) + o.radius, Float(side - SyntheticContext.frame) + 1e-4)
            }
            for y in 0..<side { for x in 0..<side { XCTAssertFalse(inDisk(x, y) && inSquare(x, y), "image \(i): the objects overlap") } }
        }
        XCTAssertGreaterThan(readsDisk, 15, "both cues occur")
        XCTAssertLessThan(readsDisk, 45)
        let source = try DataSource.load("synthetic-context:200", seed: 1)
        XCTAssertEqual(source.train.count, 200)
        XCTAssertEqual(source.test.count, 40)
        XCTAssertThrowsError(try DataSource.load("synthetic-context:5")) { XCTAssertTrue("\($0)".contains("synthetic-context:N"), "\($0)") }
    }

    func testStratifiedSplit() throws {
        let labels = (0..<100).map { Int32($0 % 4) }
        let s = try Split(labels: labels, classes: 4, perClass: 5, seed: 1)
        XCTAssertEqual(s.validation.count, 20)
        XCTAssertEqual(s.train.count, 80)
        XCTAssertEqual(Set(s.train).intersection(s.validation).count, 0)
        for k in 0..<4 { XCTAssertEqual(s.validation.filter { labels[$0] == Int32(k) }.count, 5) }
        XCTAssertEqual(try Split(labels: labels, classes: 4, perClass: 5, seed: 1).validation, s.validation)
        XCTAssertNotEqual(try Split(labels: labels, classes: 4, perClass: 5, seed: 2).validation, s.validation)
        XCTAssertThrowsError(try Split(labels: labels, classes: 4, perClass: 25, seed: 1))
    }
}
