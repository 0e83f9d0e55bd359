import Dispatch
import Models
import Tensor
import Training

/// Inference time of networks measured side by side, and the increment dT every table uses.
public enum InferenceTiming {
    /// Median forward time (ms, eval mode) of each network on one random batch, measured in
    /// one process, all networks once per round in a shuffled order so drift hits them alike.
    /// `onRound` is told the round just finished (1-based) and the total.
    public static func interleavedMedians(_ nets: [ResNet], batch: Int, warmup: Int, rounds: Int, seed: UInt64,
                                          onRound: ((Int, Int) -> Void)? = nil) throws -> [Double] {
        guard let first = nets.first else { return [] }
        var rng = RNG(seed: seed)
        let side = first.spec.imageSize
        let x = Tensor([batch, side, side, 3])
        rng.fillNormal(x, std: 1)
        var times = [[Double]](repeating: [], count: nets.count)
        for r in 0..<(warmup + rounds) {
            var order = Array(nets.indices)
            rng.shuffle(&order)
            for i in order {
                let start = DispatchTime.now().uptimeNanoseconds
                _ = try nets[i].forward(x, training: false)
                if r >= warmup { times[i].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6) }
            }
            onRound?(r + 1, warmup + rounds)
        }
        return times.map(median)
    }

    /// Median forward time (ms) at `batch` of the network of `config` with each scheme,
    /// interleaved over `rounds` rounds. The first scheme is usually the original network.
    public static func schemeTimes(_ config: RunConfig, classes: Int, schemes: [Scheme], batch: Int = 50, rounds: Int = 30) throws -> [Double] {
        var nets: [ResNet] = []
        for s in schemes {
            let net = ResNet(try ModelSpec(config.model), classes: classes, seed: 0)
            var c = config
            c.scheme = s.description
            c.keepProb = nil
            _ = try SAMAttachment.attach(c, to: net)
            nets.append(net)
        }
        return try interleavedMedians(nets, batch: batch, warmup: 3, rounds: rounds, seed: 1)
    }

    /// dT = (T - T_original) / T_original in percent: the relative inference-time increment.
    public static func incrementPercent(_ time: Double, original: Double) -> Double { (time - original) / original * 100 }
}

/// The paper's ticket rule, in one place: a searched scheme is a ticket when it keeps
/// Full-SA's accuracy with fewer parameters and less inference time.
public enum TicketRule {
    /// What the rule compares of one network.
    public struct Figures: Sendable {
        public let accuracy: Double
        public let parameters: Int
        public let inferenceMs: Double
        public init(accuracy: Double, parameters: Int, inferenceMs: Double) {
            self.accuracy = accuracy
            self.parameters = parameters
            self.inferenceMs = inferenceMs
        }
    }

    /// Whether `candidate` is a ticket against Full-SA.
    public static func isTicket(_ candidate: Figures, fullSA: Figures) -> Bool {
        candidate.accuracy >= fullSA.accuracy && candidate.parameters < fullSA.parameters && candidate.inferenceMs < fullSA.inferenceMs
    }
}
