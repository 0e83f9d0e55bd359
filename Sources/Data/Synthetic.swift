import Foundation
import Tensor

/// The built-in dataset: 32x32 RGB images of 10 classes generated from a seed, in memory.
///
/// Class = shape (disk, square) x texture (solid, horizontal stripes, vertical stripes,
/// diagonal stripes, checkerboard). Each image draws the shape at a random position and
/// scale, in two random colours, over a noisy background of a third colour with a random
/// gradient, plus a small distractor blob. Colour and position carry no class information,
/// so a linear model does poorly, while a small ResNet learns it within a few epochs.
public enum SyntheticShapes {
    public static let classNames = ["solid disk", "solid square", "h-striped disk", "h-striped square",
                                    "v-striped disk", "v-striped square", "diagonal disk", "diagonal square",
                                    "checkered disk", "checkered square"]
    public static let side = 32

    public static func make(seed: UInt64, trainCount: Int = 10_000, testCount: Int = 2_000) throws -> DataSource {
        let train = try generate(count: trainCount, seed: seed &* 2 &+ 1)
        let test = try generate(count: testCount, seed: seed &* 2 &+ 2)
        return DataSource(name: "synthetic", train: train, test: test)
    }

    /// `count` images with balanced labels (i mod 10), deterministic in `seed`.
    public static func generate(count: Int, seed: UInt64) throws -> ImageDataset {
        try generate(count: count, seed: seed, classes: 10, side: side) { out, label, rng in draw(into: out, label: label, rng: &rng) }
    }

    /// The seed of image `index` of a set generated with `seed`: images are independent.
    static func imageSeed(_ seed: UInt64, _ index: Int) -> UInt64 { seed ^ (UInt64(index) &* 0x9E37_79B9_7F4A_7C15) }

    /// `count` side x side RGB images, image i of class i mod `classes`, each drawn by `draw`
    /// from its own generator (`imageSeed`), in parallel.
    static func generate(count: Int, seed: UInt64, classes: Int, side: Int,
                         draw: @Sendable (UnsafeMutablePointer<UInt8>, Int, inout RNG) -> Void) throws -> ImageDataset {
        let size = side * side * 3
        var pixels = [UInt8](repeating: 0, count: count * size)
        let workers = max(1, min(count, 8))
        pixels.withUnsafeMutableBufferPointer { buf in
            nonisolated(unsafe) let base = buf.baseAddress!  // each worker writes its own images only
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                for i in stride(from: worker, to: count, by: workers) {
                    var rng = RNG(seed: imageSeed(seed, i))
                    draw(base + i * size, i % classes, &rng)
                }
            }
        }
        let labels = (0..<count).map { Int32($0 % classes) }
        return try ImageDataset(pixels: .bytes(pixels), labels: labels, height: side, width: side, channels: 3, classes: classes)
    }

    static func randomColour(_ rng: inout RNG) -> (Float, Float, Float) {
        (rng.uniform(0, 255), rng.uniform(0, 255), rng.uniform(0, 255))
    }

    /// Inside test for a disk (kind 0) or square (kind 1) of radius `r` centred at the origin.
    static func inside(_ kind: Int, _ x: Float, _ y: Float, _ r: Float) -> Bool {
        kind == 0 ? x * x + y * y <= r * r : abs(x) <= r * 0.85 && abs(y) <= r * 0.85
    }

    /// Texture `t` at pixel (x, y) with stripe period `p`: true = first colour.
    static func texture(_ t: Int, _ x: Int, _ y: Int, _ p: Int) -> Bool {
        switch t {
        case 0: return true
        case 1: return (y / p) % 2 == 0
        case 2: return (x / p) % 2 == 0
        case 3: return ((x + y) / p) % 2 == 0
        default: return ((x / p) + (y / p)) % 2 == 0
        }
    }

    static func draw(into out: UnsafeMutablePointer<UInt8>, label: Int, rng: inout RNG) {
        let kind = label % 2, tex = label / 2
        let bg = randomColour(&rng)
        var fg = randomColour(&rng), fg2 = randomColour(&rng)
        // keep the shape and its texture visible against the background and each other
        func far(_ a: (Float, Float, Float), _ b: (Float, Float, Float)) -> Bool { abs(a.0 - b.0) + abs(a.1 - b.1) + abs(a.2 - b.2) >= 150 }
        for _ in 0..<20 where !far(fg, bg) { fg = randomColour(&rng) }
        for _ in 0..<20 where !(far(fg2, fg) && far(fg2, bg) || tex == 0) { fg2 = randomColour(&rng) }
        let gx = rng.uniform(-1.5, 1.5), gy = rng.uniform(-1.5, 1.5)
        let r = rng.uniform(8, 12)
        let cx = rng.uniform(r, Float(side) - r), cy = rng.uniform(r, Float(side) - r)
        let period = 3 + rng.int(2)
        let blob = (x: rng.uniform(0, Float(side)), y: rng.uniform(0, Float(side)), r: rng.uniform(1.5, 3), c: randomColour(&rng))
        let noise = rng.uniform(4, 12)
        for py in 0..<side {
            for px in 0..<side {
                let x = Float(px) + 0.5, y = Float(py) + 0.5
                var c = (bg.0 + gx * (x - 16), bg.1 + gy * (y - 16), bg.2 + (gx - gy) * (x - y) * 0.5)
                if inside(kind, x - cx, y - cy, r) { c = texture(tex, px, py, period) ? fg : fg2 }
                let bx = x - blob.x, by = y - blob.y
                if bx * bx + by * by <= blob.r * blob.r { c = blob.c }
                let o = (py * side + px) * 3
                out[o] = UInt8(max(0, min(255, c.0 + noise * rng.normal())))
                out[o + 1] = UInt8(max(0, min(255, c.1 + noise * rng.normal())))
                out[o + 2] = UInt8(max(0, min(255, c.2 + noise * rng.normal())))
            }
        }
    }
}
