import Tensor

/// How a network uses the threads of the pool: `operators` runs one pass with every operator
/// split over the threads (oneDNN's and OpenBLAS's intra-operator parallelism); `lanes` runs one
/// lane per thread, each a whole network on its slice of the batch (`InferenceLanes`).
public enum Parallelism: String, CaseIterable, Sendable {
    case operators, lanes
}

/// Inference in lanes: `count` replicas of one network (same weights, each with its own compute
/// context, activations and SAM instances) run side by side, one per worker of the OpenMP pool,
/// each on its own contiguous slice of the batch. Inside a lane every oneDNN primitive, GEMM and
/// host loop runs on that worker alone (nested parallel regions get one thread), so no operator
/// waits at a barrier for another core; a SAM's per-image attention applies inside the lane's
/// own pass. Replicas are distinct plugin instances, which the SAM ABI already lets run
/// concurrently. Not thread-safe itself: one `infer` at a time.
public final class InferenceLanes {
    /// The networks, one per lane; `replicas[0]` is the one given.
    public let replicas: [ResNet]

    /// `count` lanes over `network` and `count - 1` more networks made by `replica` (each with
    /// its own `ComputeContext`), whose parameters and buffers are then copied from `network`.
    public init(_ network: ResNet, count: Int, replica: () throws -> ResNet) throws {
        precondition(count >= 1, "at least one lane")
        var nets = [network]
        let source = network.stateEntries()
        for _ in 1..<count {
            let copy = try replica()
            let entries = copy.stateEntries()
            guard entries.map(\.0) == source.map(\.0) else {
                throw LTHError("inference lanes: a replica's tensors differ from the network's (\(entries.count) vs \(source.count))")
            }
            for ((_, from, _), (_, to, _)) in zip(source, entries) { to.copy(from: from) }
            for (_, p) in copy.namedParameters() { p.touch() }
            nets.append(copy)
        }
        replicas = nets
    }

    public var count: Int { replicas.count }

    /// Folds every replica's batch norms into its convolutions (`ResNet.foldBatchNorms`).
    public func foldBatchNorms() { for net in replicas { net.foldBatchNorms() } }

    /// Logits [N, classes] of images [N, H, W, 3]: lane k runs its replica on images
    /// `contiguousPart(k, of: lanes, count: N)` (fewer lanes when N < lanes; a single lane runs
    /// on the calling thread with the whole pool); deployed networks (`inferFolded`, which
    /// requires `foldBatchNorms()` since the last change of weights or statistics) when
    /// `folded`, else eval-mode `forward` (one lane only: oneDNN's batch-norm primitive gives
    /// wrong outputs inside a parallel region with its AVX2 kernels, so more lanes throw).
    /// Throws the first lane's failure.
    public func infer(_ x: Tensor, folded: Bool = true) throws -> Tensor {
        let n = x.shape[0], perImage = x.count / max(n, 1)
        let lanes = min(count, n)
        guard folded || lanes == 1 else {
            // measured: oneDNN's batch-norm primitive (AVX2 kernels) run inside a parallel region
            // writes wrong outputs; the deployed networks have no batch-norm primitive left
            throw LTHError("eval-mode forward (batch norms unfolded) runs in one lane only; lanes run the deployed networks")
        }
        let classes = replicas[0].classes
        let logits = Tensor([n, classes])
        var failures = [Error?](repeating: nil, count: lanes)
        failures.withUnsafeMutableBufferPointer { failures in
            Threads.runLanes(lanes) { lane in
                let images = contiguousPart(lane, of: lanes, count: n)
                let slice = Tensor([images.count] + x.shape.dropFirst(), viewing: x, offset: images.lowerBound * perImage)
                do {
                    let net = replicas[lane]
                    let out = folded ? try net.inferFolded(slice) : try net.forward(slice, training: false)
                    (logits.data + images.lowerBound * classes).update(from: out.data, count: images.count * classes)
                } catch { failures[lane] = error }
            }
        }
        if let failure = failures.compactMap({ $0 }).first { throw failure }
        return logits
    }
}
