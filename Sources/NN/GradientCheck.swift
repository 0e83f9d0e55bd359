import Tensor

/// Finite-difference gradient checking, used by the test suite and by plugin conformance checks.
///
/// The checked scalar is `loss = sum(y * r)` for a fixed random projection `r`, so the upstream
/// gradient is `r`. Central differences with step `eps`; an entry passes when
/// |analytic - numeric| <= atol + rtol * |numeric|. For whole networks (ReLU kinks on one side,
/// fp32 round-off on the other) `extraSteps` adds more step sizes and an entry passes if any
/// of them agrees; a wrong gradient disagrees at every step.
public struct GradientCheck {
    public var eps: Float = 1e-2
    public var rtol: Double = 2e-2
    public var atol: Double = 2e-3
    /// At most this many entries of each tensor are probed (chosen by seed).
    public var samples = 40
    public var seed: UInt64 = 7
    public var extraSteps: [Float] = []

    public init(eps: Float = 1e-2, rtol: Double = 2e-2, atol: Double = 2e-3, samples: Int = 40, extraSteps: [Float] = []) {
        self.eps = eps
        self.extraSteps = extraSteps
        self.rtol = rtol
        self.atol = atol
        self.samples = samples
    }

    /// The worst failing entry, or nil when all probed entries pass.
    public struct Failure: CustomStringConvertible {
        public let index: Int, analytic: Double, numeric: Double
        public var description: String { "entry \(index): analytic \(analytic) vs numeric \(numeric)" }
    }

    /// Probes `wrt` (a tensor the loss depends on) and compares with `analytic`.
    /// `loss` must recompute the scalar from the current contents of `wrt`.
    public func check(_ wrt: Tensor, analytic: Tensor, loss: () -> Double, touch: () -> Void = {}) -> Failure? {
        var rng = RNG(seed: seed)
        let indices = wrt.count <= samples ? Array(0..<wrt.count) : (0..<samples).map { _ in rng.int(wrt.count) }
        var worst: (Double, Failure)? = nil
        for i in indices {
            let saved = wrt[i]
            let a = Double(analytic[i])
            var best: (Double, Double)? = nil  // (excess, numeric)
            for step in [eps] + extraSteps {
                wrt[i] = saved + step; touch()
                let plus = loss()
                wrt[i] = saved - step; touch()
                let minus = loss()
                wrt[i] = saved; touch()
                let numeric = (plus - minus) / (2 * Double(step))
                let excess = abs(a - numeric) - (atol + rtol * abs(numeric))
                if best == nil || excess < best!.0 { best = (excess, numeric) }
                if excess <= 0 { break }
            }
            if let (excess, numeric) = best, excess > 0, excess > (worst?.0 ?? 0) {
                worst = (excess, Failure(index: i, analytic: a, numeric: numeric))
            }
        }
        return worst?.1
    }

    /// sum(y * r) in double precision.
    public static func project(_ y: Tensor, _ r: Tensor) -> Double {
        var s = 0.0
        for i in 0..<y.count { s += Double(y[i]) * Double(r[i]) }
        return s
    }

    /// Directional check for whole networks, where single entries cross ReLU kinks: along the
    /// analytic gradient's own direction u = g/|g| the derivative must be |g|, and along a
    /// random unit direction r it must be <g, r>, both within `rtol * |g|`.
    /// Returns a message for the first disagreement, nil when both agree.
    public func checkDirectional(_ wrt: Tensor, analytic g: Tensor, loss: () -> Double, touch: () -> Void = {}) -> String? {
        var rng = RNG(seed: seed)
        let norm = (0..<g.count).reduce(0.0) { $0 + Double(g[$1]) * Double(g[$1]) }.squareRoot()
        if norm == 0 {
            // a zero gradient (e.g. a dead ReLU path) must be zero numerically too
            let saved = wrt.clone(), dir = Tensor(wrt.shape)
            rng.fillNormal(dir, std: 1 / Float(wrt.count).squareRoot())
            for i in 0..<wrt.count { wrt[i] = saved[i] + eps * dir[i] }
            touch()
            let plus = loss()
            for i in 0..<wrt.count { wrt[i] = saved[i] - eps * dir[i] }
            touch()
            let minus = loss()
            wrt.copy(from: saved)
            touch()
            let numeric = (plus - minus) / (2 * Double(eps))
            return abs(numeric) <= max(atol, 1e-5) ? nil : "analytic gradient is zero, numeric derivative \(numeric)"
        }
        let along = Tensor(g.shape), random = Tensor(g.shape)
        for i in 0..<g.count { along[i] = Float(Double(g[i]) / norm) }
        rng.fillNormal(random, std: 1)
        let rnorm = (0..<random.count).reduce(0.0) { $0 + Double(random[$1]) * Double(random[$1]) }.squareRoot()
        for i in 0..<random.count { random[i] = Float(Double(random[i]) / rnorm) }
        let saved = wrt.clone()
        for (name, dir) in [("gradient direction", along), ("random direction", random)] {
            let expected = (0..<g.count).reduce(0.0) { $0 + Double(g[$1]) * Double(dir[$1]) }
            var bestError = Double.infinity, bestNumeric = 0.0
            for step in [eps] + extraSteps {
                for i in 0..<wrt.count { wrt[i] = saved[i] + step * dir[i] }
                touch()
                let plus = loss()
                for i in 0..<wrt.count { wrt[i] = saved[i] - step * dir[i] }
                touch()
                let minus = loss()
                let numeric = (plus - minus) / (2 * Double(step))
                if abs(numeric - expected) < bestError { (bestError, bestNumeric) = (abs(numeric - expected), numeric) }
            }
            wrt.copy(from: saved)
            touch()
            if bestError > atol + rtol * norm { return "\(name): analytic \(expected) vs numeric \(bestNumeric) (|g| = \(norm))" }
        }
        return nil
    }
}
