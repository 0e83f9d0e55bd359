import Checkpoint
import Foundation
import Models
import Tensor

/// A searcher as the host loop sees it (plugins are adapted to this by the plugin host).
public protocol Searcher: AnyObject {
    /// The schemes to score this step.
    func ask() throws -> [[Bool]]
    /// The scores of the last `ask`, in its order.
    func tell(_ scored: [(bits: [Bool], parts: RewardParts)]) throws -> SearchProgress
    /// The whole searcher state, for checkpoints.
    func saveState() throws -> [UInt8]
    func loadState(_ state: [UInt8]) throws
    /// What the saved state belongs to (e.g. "ean 1.0.0 hidden=50,lr=0.05"): a checkpoint is
    /// only loaded into a searcher of the same identity.
    var identity: String { get }
}

extension Searcher {
    public var identity: String { String(describing: type(of: self)) }
}

/// What a searcher reports after a step.
public struct SearchProgress: Codable, Equatable, Sendable {
    public var pBar: Double?
    public var baseline: Double?
    public init(pBar: Double? = nil, baseline: Double? = nil) {
        self.pBar = pBar
        self.baseline = baseline
    }
}

/// One line of the search log (`search.jsonl`).
public struct SearchRecord: Codable, Equatable, Sendable {
    public let step: Int
    public let scheme: String
    public let reward: Double, accuracy: Double, sparsity: Double, curiosity: Double
    public let pBar: Double?
    /// cost(d) / cost(Full-SA) when the latency term is on.
    public var relativeCost: Double? = nil
}

/// The host-driven search loop: ask the searcher, score every scheme with the same reward
/// (accuracy from `accuracies`, sparsity, RND), tell it back, log, keep the best schemes and
/// checkpoint. The same for every searcher. Resumable: with the same seed, a killed search
/// resumed from its checkpoint ends with the same schemes as an uninterrupted one.
public final class SearchLoop {
    public let searcher: Searcher
    public let stageSizes: [Int]
    public let reward: RewardModel
    let accuracies: ([Scheme]) throws -> [Double]
    let logURL: URL?, stateURL: URL?
    /// Saving and restoring the random generator the searcher draws from (the host's).
    let rngState: (save: () -> [UInt64], restore: ([UInt64]) -> Void)
    public private(set) var step = 0
    public private(set) var records: [SearchRecord] = []
    /// Best distinct schemes by reward, best first.
    public private(set) var best: [(scheme: Scheme, parts: RewardParts)] = []
    public var keepBest = 10
    /// Checkpoint every this many steps (and at the end).
    public var checkpointEvery = 25
    /// Stop once this many schemes have been scored (the evaluation budget that makes
    /// searchers asking different numbers of schemes per step comparable); nil = steps only.
    public var evaluationBudget: Int? = nil
    /// Whether this loop writes its log and state (false on the ranks other than 0 of an MPI
    /// job: they run the same search, reading what rank 0 wrote).
    public var writes = true
    /// Whether the budget (steps or evaluations) is used up.
    public func finished(steps: Int) -> Bool { step >= steps || evaluationBudget.map { records.count >= $0 } == true }

    public init(searcher: Searcher, stageSizes: [Int], reward: RewardModel, accuracies: @escaping ([Scheme]) throws -> [Double],
                directory: String?, rngState: (save: () -> [UInt64], restore: ([UInt64]) -> Void)) {
        self.searcher = searcher
        self.stageSizes = stageSizes
        self.reward = reward
        self.accuracies = accuracies
        logURL = directory.map { URL(fileURLWithPath: $0).appendingPathComponent("search.jsonl") }
        stateURL = directory.map { URL(fileURLWithPath: $0).appendingPathComponent("search-state.json") }
        self.rngState = rngState
    }

    struct State: Codable {
        let step: Int
        let searcher: String  // base64
        let rnd: [Double]
        let rng: [UInt64]
        let records: [SearchRecord]
        /// The searcher's identity (absent in checkpoints of older versions).
        var identity: String? = nil
    }

    /// Restores a checkpoint written by `checkpoint()` (the log is rewritten to match it).
    public func resume() throws {
        guard let url = stateURL, let data = try? Data(contentsOf: url) else { throw LTHError("`resume`: no search checkpoint (search-state.json) in the run directory") }
        let s: State
        do { s = try JSONDecoder().decode(State.self, from: data) } catch { throw LTHError("search checkpoint '\(url.path)' is corrupt: \(error)") }
        guard let bytes = Data(base64Encoded: s.searcher) else { throw LTHError("search checkpoint '\(url.path)' is corrupt (searcher state)") }
        if let saved = s.identity, saved != searcher.identity {
            throw LTHError("search checkpoint '\(url.path)' belongs to searcher '\(saved)', not '\(searcher.identity)'; resume with the same searcher and options or choose another `directory`")
        }
        try searcher.loadState([UInt8](bytes))
        try reward.restore(s.rnd)
        rngState.restore(s.rng)
        step = s.step
        records = s.records
        best = []
        for r in records { remember(try Scheme(parsing: r.scheme, stageSizes: stageSizes), RewardParts(reward: r.reward, accuracy: r.accuracy, sparsity: r.sparsity, curiosity: r.curiosity, relativeCost: r.relativeCost)) }
        if let log = logURL, writes { try writeAtomically(records.map(jsonLine).joined(), to: log) }
    }

    public func checkpoint() throws {
        guard let url = stateURL, writes else { return }
        let s = State(step: step, searcher: Data(try searcher.saveState()).base64EncodedString(), rnd: reward.state, rng: rngState.save(), records: records,
                      identity: searcher.identity)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        try writeAtomically(String(decoding: try enc.encode(s), as: UTF8.self), to: url)
    }

    /// Runs until `steps` steps are done in all; `progress` is called after every step.
    /// Returns false when `shouldStop` turned true (a checkpoint is written first).
    @discardableResult
    public func run(steps: Int, shouldStop: () -> Bool = { false }, progress: ((SearchRecord) -> Void)? = nil) throws -> Bool {
        guard steps >= 1 else { throw LTHError("the search budget must be at least 1 step, got \(steps)") }
        let log = try logURL.flatMap { url -> FileHandle? in
            guard writes else { return nil }
            if !FileManager.default.fileExists(atPath: url.path) { FileManager.default.createFile(atPath: url.path, contents: nil) }
            guard let h = FileHandle(forWritingAtPath: url.path) else { throw LTHError("cannot write '\(url.path)'") }
            h.seekToEndOfFile()
            return h
        }
        defer { try? log?.close() }
        while !finished(steps: steps) {
            let asked = try searcher.ask()
            let schemes = try asked.map { bits -> Scheme in
                guard bits.count == stageSizes.reduce(0, +) else { throw LTHError("the searcher proposed \(bits.count) bits for \(stageSizes.reduce(0, +)) blocks") }
                return Scheme(bits: bits, stageSizes: stageSizes)
            }
            let accs = try accuracies(schemes)
            let scored = zip(schemes, accs).map { (bits: $0.0.bits, parts: reward.score($0.0.bits, accuracy: $0.1)) }
            let report = try searcher.tell(scored)
            for (scheme, s) in zip(schemes, scored) {
                var record = SearchRecord(step: step, scheme: scheme.description, reward: s.parts.reward, accuracy: s.parts.accuracy,
                                          sparsity: s.parts.sparsity, curiosity: s.parts.curiosity, pBar: report.pBar)
                record.relativeCost = s.parts.relativeCost
                records.append(record)
                log?.write(Data(try jsonLine(record).utf8))
                remember(scheme, s.parts)
                progress?(record)
            }
            step += 1
            if step % checkpointEvery == 0 || finished(steps: steps) { try checkpoint() }
            if shouldStop() && !finished(steps: steps) {
                try checkpoint()
                return false
            }
        }
        return true
    }

    private func remember(_ scheme: Scheme, _ parts: RewardParts) {
        if let i = best.firstIndex(where: { $0.scheme == scheme }) {
            if parts.reward <= best[i].parts.reward { return }
            best.remove(at: i)
        }
        best.append((scheme, parts))
        best.sort { $0.parts.reward > $1.parts.reward }
        if best.count > keepBest { best.removeLast(best.count - keepBest) }
    }

    private func jsonLine(_ r: SearchRecord) throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return String(decoding: try enc.encode(r), as: UTF8.self) + "\n"
    }
}

/// Temporary file, fsync, rename: a killed process never leaves a half-written file.
func writeAtomically(_ text: String, to url: URL) throws {
    try SafeTensors.writeAtomically(Data(text.utf8), to: url.path)
}
