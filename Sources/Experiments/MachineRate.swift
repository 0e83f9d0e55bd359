import Dispatch
import Tensor

/// What this machine's cores compute at best, as the yardstick for the networks' figures
/// (`lth4sa bench gemm`): a square single-precision matrix product through OpenBLAS, the
/// best-tuned kernel on the machine, on the threads of the shared pool.
public enum MachineRate {
    /// Seconds of each of `rounds` timed products C = A B of `size` x `size` matrices (after
    /// one untimed product), and the floating-point operations of one (2 size^3).
    public static func sgemmSeconds(size: Int, rounds: Int, seed: UInt64 = 0) throws -> (seconds: [Double], flops: Double) {
        guard size >= 1 && size <= 16384 else { throw LTHError("`size` must be in 1...16384, got \(size)") }
        try SettingCheck.require("rounds", rounds, atLeast: 1)
        var rng = RNG(seed: seed)
        let a = Tensor([size, size]), b = Tensor([size, size]), c = Tensor([size, size])
        rng.fillNormal(a, std: 1)
        rng.fillNormal(b, std: 1)
        func product() -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            BLAS.gemm(false, false, m: size, n: size, k: size, a.data, b.data, c.data)
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        _ = product()
        return ((0..<rounds).map { _ in product() }, 2 * Double(size) * Double(size) * Double(size))
    }
}
