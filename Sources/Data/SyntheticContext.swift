import Foundation
import Tensor

/// `synthetic-context`: a built-in benchmark task on which attention placement matters, with a
/// known structure (not a substitute for CIFAR).
///
/// Every 32x32 RGB image holds two objects at random non-overlapping positions inside a
/// 3-pixel frame, over a noisy grey gradient: a **solid disk** and a **striped square** (rows
/// alternating between its colour and black), each in one of ten hues, the two hues different.
/// The frame is **light** or **dark**: light means "read the disk", dark "read the square". The
/// class is the hue of the object the frame names. So the label needs a local feature (a hue
/// bound to an object's texture) *gated by a global cue* that lies away from the objects: what
/// an SE-like module computes -- global pooling sees the frame, the gate keeps the channels of
/// the named object's texture. A plain ResNet sees both hues and, without carrying the frame
/// to the objects through its convolutions, can only guess between them (about 50%). Solid
/// versus striped is told apart by the first 3x3 convolutions, so gating pays most in the first
/// stage (full resolution): where the SAMs sit decides the accuracy.
public enum SyntheticContext {
    public static let hueCount = 10
    public static let side = 32
    /// Width of the cue frame in pixels.
    public static let frame = 3

    public static func make(seed: UInt64, trainCount: Int = 10_000, testCount: Int = 2_000) throws -> DataSource {
        let train = try generate(count: trainCount, seed: seed &* 2 &+ 1)
        let test = try generate(count: testCount, seed: seed &* 2 &+ 2)
        return DataSource(name: "synthetic-context", train: train, test: test)
    }

    /// An object: centre (x, y) in pixels and radius (the disk's; the square's half side is
    /// 0.85 of it), and its hue (0 ..< `hueCount`).
    public struct Object: Equatable, Sendable {
        public let x: Float, y: Float, radius: Float
        public let hue: Int
    }

    /// Everything one image shows.
    public struct Scene: Equatable, Sendable {
        /// Light frame, read the disk (true); dark frame, read the square (false).
        public let readsDisk: Bool
        public let disk: Object
        public let square: Object
        /// The class: the hue of the object the frame names.
        public var label: Int { readsDisk ? disk.hue : square.hue }
    }

    /// The scene of image `index` of a set generated with `seed` (its label is `index % 10`).
    public static func scene(index: Int, seed: UInt64) -> Scene {
        var rng = RNG(seed: SyntheticShapes.imageSeed(seed, index))
        return scene(label: index % hueCount, rng: &rng)
    }

    /// `count` images with balanced labels (i mod 10), deterministic in `seed`.
    public static func generate(count: Int, seed: UInt64) throws -> ImageDataset {
        try SyntheticShapes.generate(count: count, seed: seed, classes: hueCount, side: side) { out, label, rng in
            draw(scene(label: label, rng: &rng), into: out, rng: &rng)
        }
    }

    static func scene(label: Int, rng: inout RNG) -> Scene {
        let readsDisk = rng.int(2) == 0
        let other = (label + 1 + rng.int(hueCount - 1)) % hueCount  // any hue but the label's
        // two objects inside the frame, not overlapping (their bounding circles 1 pixel apart)
        let lo = Float(frame), hi = Float(side - frame)
        var rd = rng.uniform(5.5, 7.5), rs = rng.uniform(5.5, 7.5)
        var d = (x: Float(0), y: Float(0)), s = (x: Float(0), y: Float(0))
        var placed = false
        for attempt in 0..<200 where !placed {
            if attempt == 100 { (rd, rs) = (5.5, 5.5) }
            d = (rng.uniform(lo + rd, hi - rd), rng.uniform(lo + rd, hi - rd))
            s = (rng.uniform(lo + rs, hi - rs), rng.uniform(lo + rs, hi - rs))
            placed = ((d.x - s.x) * (d.x - s.x) + (d.y - s.y) * (d.y - s.y)).squareRoot() > rd + rs * 1.2 + 1
        }
        if !placed { (d, s) = ((lo + rd, lo + rd), (hi - rs, hi - rs)) }  // opposite corners: 21 pixels apart, never touching
        return Scene(readsDisk: readsDisk, disk: Object(x: d.x, y: d.y, radius: rd, hue: readsDisk ? label : other),
                     square: Object(x: s.x, y: s.y, radius: rs, hue: readsDisk ? other : label))
    }

    /// The fully saturated colour of hue `k`, jittered by up to a fifth of the hue spacing.
    static func colour(hue k: Int, rng: inout RNG) -> (Float, Float, Float) {
        let h = (Float(k) + rng.uniform(-0.2, 0.2)) / Float(hueCount) * 6
        func channel(_ n: Float) -> Float {
            let a = (n + h + 6).truncatingRemainder(dividingBy: 6)
            return 255 * (1 - max(0, min(a, 4 - a, 1)))
        }
        return (channel(5), channel(3), channel(1))
    }

    static func draw(_ scene: Scene, into out: UnsafeMutablePointer<UInt8>, rng: inout RNG) {
        let f = scene.readsDisk ? rng.uniform(215, 255) : rng.uniform(0, 40)
        let g = rng.uniform(80, 170)
        let background = (g + rng.uniform(-10, 10), g + rng.uniform(-10, 10), g + rng.uniform(-10, 10))
        let gx = rng.uniform(-1.5, 1.5), gy = rng.uniform(-1.5, 1.5)
        let diskColour = colour(hue: scene.disk.hue, rng: &rng), squareColour = colour(hue: scene.square.hue, rng: &rng)
        let noise = rng.uniform(4, 12)
        let half = scene.square.radius * 0.85
        for py in 0..<side {
            for px in 0..<side {
                let x = Float(px) + 0.5, y = Float(py) + 0.5
                var c = (background.0 + gx * (x - 16), background.1 + gy * (y - 16), background.2 + (gx + gy) * (x + y - 32) * 0.5)
                if min(min(px, py), min(side - 1 - px, side - 1 - py)) < frame { c = (f, f, f) }
                let dx = x - scene.disk.x, dy = y - scene.disk.y
                if dx * dx + dy * dy <= scene.disk.radius * scene.disk.radius { c = diskColour }
                if abs(x - scene.square.x) <= half && abs(y - scene.square.y) <= half { c = py % 2 == 0 ? squareColour : (0, 0, 0) }
                let o = (py * side + px) * 3
                out[o] = UInt8(max(0, min(255, c.0 + noise * rng.normal())))
                out[o + 1] = UInt8(max(0, min(255, c.1 + noise * rng.normal())))
                out[o + 2] = UInt8(max(0, min(255, c.2 + noise * rng.normal())))
            }
        }
    }
}
