import Models
import Training

/// What every study (`run`, `compare`, `correlate`) shares: the configuration its networks
/// start from (model, data, SAM, attach mode, seed, optimizer...), the supernet's epochs and
/// keep probability, and the epochs and seeds of every network trained stand-alone.
public struct Recipe: Codable, Equatable, Sendable {
    public var base: RunConfig
    public var supernetEpochs = 4
    /// Epochs of every network trained from scratch.
    public var epochs = 4
    /// Retaining probability of the supernet's SAMs per mini-batch.
    public var keepProb = 0.5
    /// Seeds of every network trained from scratch: seed, seed + 1, ...
    public var seeds = 1

    public init(base: RunConfig) { self.base = base }

    /// The supernet's configuration.
    public var supernet: RunConfig {
        var c = base
        c.epochs = supernetEpochs
        c.keepProb = keepProb
        return c
    }

    /// The configuration of the stand-alone network with `scheme`.
    public func network(_ scheme: Scheme) -> RunConfig {
        var c = base
        c.epochs = epochs
        c.scheme = scheme.description
        return c
    }
}
