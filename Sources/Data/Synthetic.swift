import Foundation
import Tensor

/// The built-in dataset: 32x32 RGB images of 10 classes generated from a seed, in memory.
///
/// Class = shape (disk, square, triangle, cross, ring) x fill (solid, striped). Each image
/// draws the shape at a random position and scale, in a random colour, over a noisy
/// background of another random colour with a random gradient, plus a small distractor blob.
/// Colour and position carry no class information, so a linear model does poorly, while a
/// small ResNet learns it in a few epochs.
public enum SyntheticShapes {
    public static let classNames = ["disk", "square", "triangle", "cross", "ring",
                                    "striped disk", "striped square", "striped triangle", "striped cross", "striped ring"]
    public static let side = 32

    public static func make(seed: UInt64, trainCount: Int = 10_000, testCount: Int = 2_000) -> DataSource {
        let train = generate(count: trainCount, seed: seed &* 2 &+ 1)
        let test = generate(count: testCount, seed: seed &* 2 &+ 2)
        return DataSource(name: "synthetic", train: train, test: test)
    }

    /// `count` images with balanced labels (i mod 10), deterministic in `seed`.
    public static func generate(count: Int, seed: UInt64) -> ImageDataset {
        let size = side * side * 3
        var pixels = [UInt8](repeating: 0, count: count * size)
        var labels = [Int32](repeating: 0, count: count)
        pixels.withUnsafeMutableBufferPointer { buf in
            // Images are independent: generate them in parallel, each from its own seed.
            DispatchQueue.concurrentPerform(iterations: max(1, min(count, 8))) { worker in
                var i = worker
                while i < count {
                    var rng = RNG(seed: seed ^ (UInt64(i) &* 0x9E37_79B9_7F4A_7C15))
                    draw(into: buf.baseAddress! + i * size, label: i % 10, rng: &rng)
                    i += max(1, min(count, 8))
                }
            }
        }
        for i in 0..<count { labels[i] = Int32(i % 10) }
        return try! ImageDataset(pixels: .bytes(pixels), labels: labels, height: side, width: side, channels: 3, classes: 10)
    }

    static func randomColour(_ rng: inout RNG) -> (Float, Float, Float) {
        (rng.uniform(0, 255), rng.uniform(0, 255), rng.uniform(0, 255))
    }

    /// Inside test for shape `kind` centred at the origin with radius `r` (coordinates in pixels).
    static func inside(_ kind: Int, _ x: Float, _ y: Float, _ r: Float) -> Bool {
        switch kind {
        case 0: return x * x + y * y <= r * r
        case 1: return abs(x) <= r * 0.8 && abs(y) <= r * 0.8
        case 2: return y <= r * 0.7 && y >= -r && abs(x) <= (y + r) * 0.6
        case 3: return (abs(x) <= r * 0.3 && abs(y) <= r) || (abs(y) <= r * 0.3 && abs(x) <= r)
        default:
            let d = x * x + y * y
            return d <= r * r && d >= (r * 0.55) * (r * 0.55)
        }
    }

    static func draw(into out: UnsafeMutablePointer<UInt8>, label: Int, rng: inout RNG) {
        let kind = label % 5, striped = label >= 5
        let bg = randomColour(&rng)
        var fg = randomColour(&rng)
        // keep the shape visible: push the foreground away from the background colour
        if abs(fg.0 - bg.0) + abs(fg.1 - bg.1) + abs(fg.2 - bg.2) < 180 {
            fg = (bg.0 < 128 ? min(bg.0 + 120, 255) : bg.0 - 120, bg.1 < 128 ? min(bg.1 + 90, 255) : bg.1 - 90, fg.2)
        }
        let gx = rng.uniform(-2, 2), gy = rng.uniform(-2, 2)
        let r = rng.uniform(6, 12)
        let cx = rng.uniform(r, Float(side) - r), cy = rng.uniform(r, Float(side) - r)
        let angle = rng.uniform(0, Float.pi)
        let (ca, sa) = (cos(angle), sin(angle))
        let period = rng.uniform(3, 5)
        let blob = (x: rng.uniform(0, Float(side)), y: rng.uniform(0, Float(side)), r: rng.uniform(1.5, 3.5), c: randomColour(&rng))
        let noise = rng.uniform(10, 30)
        for py in 0..<side {
            for px in 0..<side {
                let x = Float(px) + 0.5, y = Float(py) + 0.5
                var c = (bg.0 + gx * (x - 16), bg.1 + gy * (y - 16), bg.2 + (gx - gy) * (x - y) * 0.5)
                let dx = x - cx, dy = y - cy
                // rotated frame for the shape and its stripes
                let u = ca * dx + sa * dy, v = -sa * dx + ca * dy
                if inside(kind, u, v, r) {
                    let on = !striped || Int(floor((u + 100) / period)) % 2 == 0
                    if on { c = fg } else { c = (bg.0 * 0.5 + fg.0 * 0.5, bg.1 * 0.5 + fg.1 * 0.5, bg.2 * 0.5 + fg.2 * 0.5) }
                }
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
