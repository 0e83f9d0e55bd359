import CKernels

/// Thin wrappers over OpenBLAS for the GEMMs outside oneDNN (linear layers).
public enum BLAS {
    /// C[m,n] = alpha * op(A) * op(B) + beta * C, row-major.
    /// `transA`: A is stored [k,m] instead of [m,k]; `transB`: B is stored [n,k] instead of [k,n].
    public static func gemm(
        _ transA: Bool, _ transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float = 1, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
        beta: Float = 0, _ c: UnsafeMutablePointer<Float>
    ) {
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(transA ? m : k), b, Int32(transB ? k : n),
            beta, c, Int32(n))
    }
}
