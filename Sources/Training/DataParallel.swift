import Cluster
import Foundation
import Models
import NN
import Tensor

/// The collectives that keep one network's copies on the ranks of `group` in step:
/// gradients summed (overlapped with backward) before each optimizer step, state broadcast from rank 0, batch-norm
/// running statistics averaged. Every method is collective and does nothing when alone.
public final class DataParallel {
    public let group: ProcessGroup
    private let flat = BufferPool()

    public init(group: ProcessGroup) { self.group = group }

    /// Buckets of one backward in flight: each segment's gradients packed at `offset`; the
    /// next free offset; the first failure of a start (thrown by `finishOverlappedSum`).
    private var inFlight: [(parameters: [Parameter], offset: Int, sum: PendingSum)] = []
    private var bucketOffset = 0
    private var failure: Error?

    /// Makes the next `backward` of `net` start summing each segment's gradients (classifier,
    /// stages, stem) over the ranks as soon as they are final, overlapping the communication
    /// with the rest of backward; `finishOverlappedSum` completes it. Nothing to do when alone.
    public func overlapSum(withNextBackwardOf net: ResNet) {
        guard group.size > 1 else { return }
        let buffer = flat.get([net.namedParameters().reduce(0) { $0 + $1.1.grad.count }])
        inFlight = []
        bucketOffset = 0
        net.onGradientsReady = { [unowned self] modules in
            let parameters = modules.flatMap { $0.namedParameters().map(\.1) }
            let count = parameters.reduce(0) { $0 + $1.grad.count }
            var offset = bucketOffset
            for p in parameters { (buffer.data + offset).update(from: p.grad.data, count: p.grad.count); offset += p.grad.count }
            do {
                let sum = try group.startSum(buffer.data + bucketOffset, count: count)
                inFlight.append((parameters, bucketOffset, sum))
                try group.progress(inFlight.map(\.sum))
            } catch { failure = error }
            bucketOffset = offset
        }
    }

    /// Waits for the sums started during backward and writes them into the gradients.
    public func finishOverlappedSum(of net: ResNet) throws {
        guard group.size > 1 else { return }
        net.onGradientsReady = nil
        defer { inFlight = []; failure = nil }
        if let failure { throw failure }
        let buffer = flat.get([bucketOffset])
        guard bucketOffset == net.namedParameters().reduce(0, { $0 + $1.1.grad.count }) else {
            throw LTHError("the overlapped gradient sum covered \(bucketOffset) of the network's gradients")
        }
        for (parameters, start, sum) in inFlight {
            try group.finish(sum)
            var offset = start
            for p in parameters { p.grad.data.update(from: buffer.data + offset, count: p.grad.count); offset += p.grad.count }
        }
    }

    /// Gives every rank rank 0's parameters and buffers.
    public func broadcastState(_ net: Module) throws {
        guard group.size > 1 else { return }
        for t in net.namedParameters().map({ $0.1.value }) + net.namedBuffers().map({ $0.1.tensor }) {
            try group.broadcast(UnsafeMutableRawPointer(t.data), bytes: t.count * MemoryLayout<Float>.stride, root: 0)
        }
    }

    /// Replaces every rank's batch-norm running statistics (the float buffers) by their mean
    /// over the ranks.
    public func averageRunningStatistics(_ net: Module) throws {
        guard group.size > 1 else { return }
        let inverse = 1 / Float(group.size)
        for (_, buffer) in net.namedBuffers() where !buffer.integer {
            let t = buffer.tensor
            try group.allreduceSum(t.data, count: t.count)
            for i in 0..<t.count { t.data[i] *= inverse }
        }
    }
}
