import Checkpoint
import Dispatch
import Foundation
import Models
import Tensor

/// The measured inference cost of every block's SAM, for the latency term of the reward:
/// cost_l = median over interleaved rounds of T(block l with its SAM) - T(block l without),
/// eval mode, at the run's batch, on the activations block l really receives (clamped at 0).
public enum BlockCosts {
    /// `block-costs.json` of a search directory: a resumed search reuses the same costs.
    public struct Table: Codable, Equatable, Sendable {
        public let batch: Int
        public let rounds: Int
        /// Milliseconds per block, block 0 first.
        public let milliseconds: [Double]
        public static let fileName = "block-costs.json"
    }

    /// Measures the table on `supernet` (left whole afterwards).
    public static func measure(_ supernet: Supernet, batch: Int, rounds: Int = 20, seed: UInt64) throws -> Table {
        let net = supernet.net
        let stages = net.spec.blocksPerStage
        supernet.apply(.all(true, stageSizes: stages))
        defer { supernet.apply(.all(true, stageSizes: stages)) }
        var rng = RNG(seed: seed ^ 0xC057)
        let x = Tensor([batch, net.spec.imageSize, net.spec.imageSize, 3])
        rng.fillNormal(x, std: 1)
        // the input every block sees in the whole supernet, timed on the deployed (BN-folded) blocks
        net.foldBatchNorms()
        net.passes.beginForward()
        var h = net.stemFolded(x)
        var inputs: [Tensor] = []
        for block in net.blocks {
            inputs.append(h.clone())
            h = block.forwardFolded(h)
        }
        try net.passes.check()
        var differences = [[Double]](repeating: [], count: net.blocks.count)
        for _ in 0..<(rounds + 2) {  // the first two rounds warm up
            var order = Array(0..<(2 * net.blocks.count))
            rng.shuffle(&order)
            var on = [Double](repeating: 0, count: net.blocks.count), off = on
            for k in order {
                let l = k / 2, with = k % 2 == 0
                net.blocks[l].attention = with ? supernet.attentions[l] : nil
                net.passes.beginForward()
                let start = DispatchTime.now().uptimeNanoseconds
                _ = net.blocks[l].forwardFolded(inputs[l])
                let ms = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
                try net.passes.check()
                if with { on[l] = ms } else { off[l] = ms }
                net.blocks[l].attention = supernet.attentions[l]
            }
            for l in 0..<net.blocks.count { differences[l].append(on[l] - off[l]) }
        }
        return Table(batch: batch, rounds: rounds, milliseconds: differences.map { max(0, median(Array($0.dropFirst(2)))) })
    }
}
