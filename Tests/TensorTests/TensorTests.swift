import Tensor
import XCTest

final class TensorTests: XCTestCase {
    func testStorageIs64ByteAligned() {
        for n in [1, 3, 17, 1000] { XCTAssertEqual(Int(bitPattern: Tensor([n]).data) % 64, 0) }
    }

    func testRNGIsReproducibleAndRestorable() {
        var a = RNG(seed: 7), b = RNG(seed: 7)
        XCTAssertEqual((0..<5).map { _ in a.next() }, (0..<5).map { _ in b.next() })
        var c = RNG(stateWords: a.stateWords)
        XCTAssertEqual(a.next(), c.next())
        XCTAssertNotEqual(RNG(seed: 8).stateWords, RNG(seed: 7).stateWords)
    }

    func testRNGDistributions() {
        var rng = RNG(seed: 1)
        let n = 100_000
        let u = (0..<n).map { _ in Double(rng.uniform()) }
        XCTAssertEqual(u.reduce(0, +) / Double(n), 0.5, accuracy: 0.01)
        XCTAssertTrue(u.allSatisfy { $0 >= 0 && $0 < 1 })
        let g = (0..<n).map { _ in Double(rng.normal()) }
        let mean = g.reduce(0, +) / Double(n)
        let variance = g.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n)
        XCTAssertEqual(mean, 0, accuracy: 0.02)
        XCTAssertEqual(variance, 1, accuracy: 0.03)
    }

    func testGemmMatchesNaiveProduct() {
        var rng = RNG(seed: 2)
        let (m, n, k) = (5, 7, 3)
        let a = Tensor([m, k]), b = Tensor([n, k]), c = Tensor([m, n])
        rng.fillNormal(a, std: 1)
        rng.fillNormal(b, std: 1)
        BLAS.gemm(false, true, m: m, n: n, k: k, a.data, b.data, c.data)
        for i in 0..<m {
            for j in 0..<n {
                let expected = (0..<k).reduce(Float(0)) { $0 + a[i * k + $1] * b[j * k + $1] }
                XCTAssertEqual(c[i * n + j], expected, accuracy: 1e-5)
            }
        }
    }

    func testThreadCountApplies() {
        Threads.set(1)
        XCTAssertEqual(Threads.current, 1)
        Threads.set(Threads.cores)
        XCTAssertEqual(Threads.current, Threads.cores)
    }

    func testBufferPoolReusesPerShape() {
        let pool = BufferPool()
        XCTAssertTrue(pool.get([2, 3]) === pool.get([2, 3]))
        XCTAssertFalse(pool.get([2, 3]) === pool.get([3, 2]))
    }

    /// The ring's buffers serve every shape: a request gets the storage of the one `depth`
    /// requests earlier, grown when the shape is larger (views handed out before stay valid).
    func testGradientRingSharesItsBuffersAcrossShapes() {
        let ring = GradientRing(depth: 3)
        let a = ring.next([2, 3]), b = ring.next([4, 4]), c = ring.next([1, 5])
        XCTAssertEqual(Set([a.data, b.data, c.data]).count, 3)
        let d = ring.next([3, 2])
        XCTAssertEqual(d.data, a.data)
        XCTAssertEqual(d.shape, [3, 2])
        XCTAssertTrue(ring.next([4, 4]) === b, "a view is made once per slot and shape")
        a.fill(7)
        XCTAssertEqual(d[5], 7, "views of one slot share storage")
        let e = ring.next([10, 10])  // c's slot is too small: new storage
        XCTAssertEqual(e.count, 100)
        XCTAssertNotEqual(e.data, c.data)
        c.fill(1)  // the old storage lives as long as its views
        XCTAssertEqual(c.sum, 5)
    }

    /// (a + b) * (x > 0) in one pass equals the two steps, over the SIMD lanes and the tail
    /// (count not a multiple of 8) and with x exactly 0 masked like ReLU's backward.
    func testAddThenReLUBackward() {
        var rng = RNG(seed: 3)
        for count in [5, 64, 100_003] {
            let a = Tensor([count]), b = Tensor([count]), x = Tensor([count])
            rng.fillNormal(a, std: 1)
            rng.fillNormal(b, std: 1)
            rng.fillNormal(x, std: 1)
            for i in stride(from: 0, to: count, by: 7) { x[i] = 0 }
            let expected = (0..<count).map { x[$0] > 0 ? a[$0] + b[$0] : 0 }
            a.addThenReLUBackward(b, reluOutput: x)
            XCTAssertEqual(a.array, expected, "count \(count)")
        }
    }
}
