import NN
import Tensor
import XCTest
/// Regression test: oneDNN 2.6's jit_1x1 backward-weights returned wrong values for about 2%
/// of runs with a stride and channel counts not divisible by 8; many repetitions against a
/// naive computation catch it.
final class StridedConvRegressionTests: XCTestCase {
    func testStrided1x1AgainstNaiveLoops() {
      for (cin, cout, stride, hw, n0) in [(5, 7, 1, 6, 2), (5, 7, 2, 6, 2), (16, 32, 2, 8, 4), (64, 128, 2, 16, 8)] {
        var rng = RNG(seed: 42)
        var bad = 0
        for trial in 0..<60 {
            let conv = Conv2d(cin, cout, kernel: 1, stride: stride, padding: 0)
            conv.initialize(&rng)
            let x = Tensor([n0, hw, hw, cin]); rng.fillNormal(x, std: 1)
            let ho = (hw - 1) / stride + 1
            let y = conv.forward(x)
            // naive forward
            var fwdErr: Float = 0
            for n in 0..<n0 { for oy in 0..<ho { for ox in 0..<ho { for o in 0..<cout {
                var acc: Float = 0
                for i in 0..<cin { acc += conv.weight.value[o * cin + i] * x[((n * hw + stride * oy) * hw + stride * ox) * cin + i] }
                fwdErr = max(fwdErr, abs(acc - y[((n * ho + oy) * ho + ox) * cout + o]))
            } } } }
            let r = Tensor(y.shape); rng.fillNormal(r, std: 1)
            conv.weight.grad.zero()
            _ = conv.backward(r)
            var bwdErr: Float = 0, worst = -1
            for o in 0..<cout { for i in 0..<cin {
                var acc: Float = 0
                for n in 0..<n0 { for oy in 0..<ho { for ox in 0..<ho { acc += r[((n * ho + oy) * ho + ox) * cout + o] * x[((n * hw + stride * oy) * hw + stride * ox) * cin + i] } } }
                let e = abs(acc - conv.weight.grad[o * cin + i]) / max(1, abs(acc)); if e > bwdErr { bwdErr = e; worst = o * cin + i }
            } }
            if fwdErr > 1e-4 || bwdErr > 1e-4 { bad += 1; if bad < 2 { print("trial", trial, "forward error", fwdErr, "weight-gradient error", bwdErr, "at", worst) } }
        }
        XCTAssertEqual(bad, 0, "\(cin)->\(cout) stride \(stride): \(bad) of 60 runs wrong")
      }
    }
}
