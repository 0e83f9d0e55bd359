import Tensor

/// The backward of a training batch norm whose output y is multiplied by a per-image channel
/// attention A = P(S) of its own channel means S = mean_hw y (a squeeze-excitation on the
/// block's last batch norm), from x and g = dL/d(y * A) alone: y, dy and the mean's backward
/// are never written.
///
///     x, g [N, H, W, C] (P = H*W pixels, M = N*P), A [N, C], mu, sigma^2 [C] (batch statistics)
///     pass 1 (per image):  G1 = sum_p g,  G2 = sum_p g (x - mu)               [N, C]
///     dA = gamma/sigma G2 + beta G1 ;  dS = P^T(dA)  (the caller's attention backward)
///     dy = g A + dS / P   =>   dbeta = sum_n (A G1 + dS),
///                              dgamma = sum_n (A G2 + dS (m - mu)) / sigma   (m: image means of x)
///     pass 2 (per image):  dx = alpha g + kappa (x - mu) + delta
///         alpha = gamma A / sigma,  kappa = -gamma dgamma / (M sigma^2),  delta = gamma/sigma (dS/P - dbeta/M)
///
/// Without an attention (A = 1, dS = 0) the same two passes are the plain batch norm backward
/// of a last batch norm whose normalisation ran inside the join (`AddReLU.forward(normalizing:)`).
///
/// Both passes run over images on the thread pool (each image's rows by one worker, in a fixed
/// order: the result does not depend on the thread count); sums over an image in fp32, over
/// images in fp64. C a multiple of 8.
enum AttendedNormBackward {
    typealias Lanes = SIMD8<Float>
    private static let width = Lanes.scalarCount

    /// The per-image and per-channel coefficients of one call, kept by the caller (a batch
    /// norm's plan) so that a training step allocates nothing.
    final class Workspace {
        let g1: Tensor, g2: Tensor, dA: Tensor, alpha: Tensor, delta: Tensor  // [N, C]
        let kappa: Tensor, sigma: Tensor                                      // [C]
        init(images n: Int, channels c: Int) {
            (g1, g2, dA, alpha, delta) = (Tensor([n, c]), Tensor([n, c]), Tensor([n, c]), Tensor([n, c]), Tensor([n, c]))
            (kappa, sigma) = (Tensor([c]), Tensor([c]))
        }
    }

    /// Pass 1 and what follows it: dGamma, dBeta and pass 2's coefficients alpha, delta [N, C]
    /// and kappa [C], left in `w` (for `apply`, or for a consumer that applies pass 2 itself
    /// while reading g and x, `BatchNorm2d.deferredBackward`). `attention`: A [N, C] and its
    /// backward (dA -> dS) with x's per-image channel means, or nil for A = 1.
    static func coefficients(x: Tensor, g: Tensor, attention: (a: Tensor, backward: (_ dA: Tensor) -> Tensor, imageMeans: Tensor)?,
                             mean: Tensor, variance: Tensor, eps: Float, gamma: Tensor, beta: Tensor, dGamma: Tensor, dBeta: Tensor,
                             workspace w: Workspace) {
        let (n, c) = (x.shape[0], x.shape[3]), pixels = x.shape[1] * x.shape[2]
        precondition(c % width == 0, "attended batch norm backward needs a multiple of 8 channels, got \(x.shape)")
        precondition(w.g1.shape == [n, c], "workspace \(w.g1.shape) for \(x.shape)")
        let (g1, g2, dA, alpha, delta, kappa, sigma) = (w.g1, w.g2, w.dA, w.alpha, w.delta, w.kappa, w.sigma)
        for k in 0..<c { sigma[k] = (variance[k] + eps).squareRoot() }
        // pass 1: G1, G2 per image and channel
        Threads.parallelFor(n, grain: 1) { images in
            let accumulators = UnsafeMutablePointer<Lanes>.allocate(capacity: 2 * c / width)
            defer { accumulators.deallocate() }
            for image in images {
                sums(x.data + image * pixels * c, g.data + image * pixels * c, mean: mean.data, pixels: pixels, channels: c,
                     g1: g1.data + image * c, g2: g2.data + image * c, accumulators: accumulators)
            }
        }
        var dS: Tensor? = nil
        if let attention {
            for b in 0..<n {
                for k in 0..<c { dA[b * c + k] = gamma[k] / sigma[k] * g2[b * c + k] + beta[k] * g1[b * c + k] }
            }
            dS = attention.backward(dA)
            precondition(dS!.count == n * c, "attention backward gave dS \(dS!.shape) for [\(n), \(c)]")
        }
        // parameter gradients and the per-image coefficients of pass 2
        let count = Float(n * pixels), pInverse = 1 / Float(pixels)
        let mu = mean
        for k in 0..<c {
            var sumBeta = 0.0, sumGamma = 0.0
            for b in 0..<n {
                let i = b * c + k
                if let attention, let dS {
                    sumBeta += Double(attention.a[i] * g1[i] + dS[i])
                    sumGamma += Double(attention.a[i] * g2[i] + dS[i] * (attention.imageMeans[i] - mu[k]))
                } else {
                    sumBeta += Double(g1[i])
                    sumGamma += Double(g2[i])
                }
            }
            dBeta[k] = Float(sumBeta)
            dGamma[k] = Float(sumGamma) / sigma[k]
            let gs = gamma[k] / sigma[k]
            kappa[k] = -gs * dGamma[k] / (count * sigma[k])
            for b in 0..<n {
                let i = b * c + k
                alpha[i] = gs * (attention?.a[i] ?? 1)
                delta[i] = gs * ((dS?[i] ?? 0) * pInverse - dBeta[k] / count)
            }
        }
    }

    /// Pass 2: dx = alpha g + kappa (x - mu) + delta with the coefficients `coefficients` left in `w`.
    static func apply(x: Tensor, g: Tensor, mean mu: Tensor, workspace w: Workspace, into dx: Tensor) {
        let (n, c) = (x.shape[0], x.shape[3]), pixels = x.shape[1] * x.shape[2]
        let (alpha, delta, kappa) = (w.alpha, w.delta, w.kappa)
        Threads.parallelFor(n, grain: 1) { images in
            for image in images {
                let at = image * pixels * c
                inputGradient(x.data + at, g.data + at, mean: mu.data, alpha: alpha.data + image * c, kappa: kappa.data,
                              delta: delta.data + image * c, pixels: pixels, channels: c, into: dx.data + at)
            }
        }
    }

    /// One image: g1[c] = sum_p g[p, c], g2[c] = sum_p g[p, c] (x[p, c] - mu[c]), row by row
    /// (sequential reads; the 2C accumulators, the worker's `acc`, stay in L1).
    private static func sums(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, mean: UnsafePointer<Float>, pixels: Int, channels c: Int,
                             g1: UnsafeMutablePointer<Float>, g2: UnsafeMutablePointer<Float>, accumulators acc: UnsafeMutablePointer<Lanes>) {
        let xv = UnsafeRawPointer(x), gv = UnsafeRawPointer(g), muv = UnsafeRawPointer(mean)
        let vectors = c / width
        acc.initialize(repeating: .zero, count: 2 * vectors)
        for p in 0..<pixels {
            for v in 0..<vectors {
                let at = (p * c + v * width) * 4
                let gp = gv.loadUnaligned(fromByteOffset: at, as: Lanes.self)
                acc[v] += gp
                acc[vectors + v] += gp * (xv.loadUnaligned(fromByteOffset: at, as: Lanes.self) - muv.loadUnaligned(fromByteOffset: v * width * 4, as: Lanes.self))
            }
        }
        for v in 0..<vectors {
            UnsafeMutableRawPointer(g1).storeBytes(of: acc[v], toByteOffset: v * width * 4, as: Lanes.self)
            UnsafeMutableRawPointer(g2).storeBytes(of: acc[vectors + v], toByteOffset: v * width * 4, as: Lanes.self)
        }
    }

    /// One image: dx[p, c] = alpha[c] g[p, c] + kappa[c] (x[p, c] - mu[c]) + delta[c], row by row.
    private static func inputGradient(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, mean: UnsafePointer<Float>,
                                      alpha: UnsafePointer<Float>, kappa: UnsafePointer<Float>, delta: UnsafePointer<Float>,
                                      pixels: Int, channels c: Int, into dx: UnsafeMutablePointer<Float>) {
        let xv = UnsafeRawPointer(x), gv = UnsafeRawPointer(g), dv = UnsafeMutableRawPointer(dx)
        func lanes(_ p: UnsafePointer<Float>, _ v: Int) -> Lanes { UnsafeRawPointer(p).loadUnaligned(fromByteOffset: v * 4, as: Lanes.self) }
        for p in 0..<pixels {
            for v in stride(from: 0, to: c, by: width) {
                let at = (p * c + v) * 4
                let xp = xv.loadUnaligned(fromByteOffset: at, as: Lanes.self), gp = gv.loadUnaligned(fromByteOffset: at, as: Lanes.self)
                dv.storeBytes(of: lanes(alpha, v) * gp + lanes(kappa, v) * (xp - lanes(mean, v)) + lanes(delta, v), toByteOffset: at, as: Lanes.self)
            }
        }
    }
}
