import Foundation
import Tensor

/// A connection scheme d in {0,1}^L: block l carries its SAM iff bit l is 1 (block 0 first).
/// Written as a bit string, optionally with `-` between stages (`0110-1010-0001`).
public struct Scheme: Hashable, Sendable, CustomStringConvertible, Codable {
    public let bits: [Bool]
    public let stageSizes: [Int]

    public init(bits: [Bool], stageSizes: [Int]) {
        precondition(bits.count == stageSizes.reduce(0, +))
        self.bits = bits
        self.stageSizes = stageSizes
    }

    /// All ones (Full-SA) or all zeros (the original network).
    public static func all(_ on: Bool, stageSizes: [Int]) -> Scheme {
        Scheme(bits: Array(repeating: on, count: stageSizes.reduce(0, +)), stageSizes: stageSizes)
    }

    /// Parses `text` for a model with `stageSizes` blocks per stage. Rejects wrong lengths,
    /// characters other than 0/1/-, and stage groups that do not match the model.
    public init(parsing text: String, stageSizes: [Int]) throws {
        let expected = stageSizes.reduce(0, +)
        let layout = stageSizes.map { String(repeating: "x", count: $0) }.joined(separator: "-")
        if let bad = text.first(where: { !"01-".contains($0) }) {
            throw LTHError("scheme '\(text)' contains '\(bad)'; use only 0, 1 and - (expected \(expected) bits, stages \(stageSizes.map(String.init).joined(separator: "+")): \(layout))")
        }
        let digits = text.filter { $0 != "-" }
        guard digits.count == expected else {
            throw LTHError("scheme '\(text)' has \(digits.count) bits; this model has \(expected) blocks in stages of \(stageSizes.map(String.init).joined(separator: "+")) (\(layout))")
        }
        if text.contains("-") {
            let groups = text.components(separatedBy: "-").map { $0.count }
            guard groups == stageSizes else {
                throw LTHError("scheme '\(text)' groups its bits as \(groups.map(String.init).joined(separator: "-")); the model's stages have \(stageSizes.map(String.init).joined(separator: "-")) blocks (\(layout))")
            }
        }
        bits = digits.map { $0 == "1" }
        self.stageSizes = stageSizes
    }

    /// Parses `text` without a model: the stages are the `-`-separated groups (one stage when
    /// there is no `-`). `fitted(to:)` matches it to a model's stages.
    public init(unfitted text: String) throws {
        guard !text.isEmpty, text.allSatisfy({ "01-".contains($0) }) else {
            throw LTHError("scheme '\(text)' must be bits 0/1, stages optionally separated by '-' (e.g. 0110-1010-0001)")
        }
        let groups = text.components(separatedBy: "-").map(\.count)
        guard !groups.contains(0) else { throw LTHError("scheme '\(text)' has an empty stage between its '-'") }
        try self.init(parsing: text, stageSizes: groups)
    }

    /// This scheme for a model with `stageSizes` blocks per stage: the same bits, checked as
    /// `init(parsing:stageSizes:)` checks a text (a scheme written without `-` fits any stages
    /// of its length).
    public func fitted(to stageSizes: [Int]) throws -> Scheme {
        if stageSizes == self.stageSizes { return self }
        return try Scheme(parsing: description, stageSizes: stageSizes)
    }

    /// Encoded as its text (`0110-1010-0001`), as run files have always held it.
    public init(from decoder: Decoder) throws {
        try self.init(unfitted: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    /// `0110-1010-0001`
    public var description: String {
        var out = "", i = 0
        for (s, n) in stageSizes.enumerated() {
            if s > 0 { out += "-" }
            for _ in 0..<n { out += bits[i] ? "1" : "0"; i += 1 }
        }
        return out
    }

    /// Share of blocks with a SAM.
    public var connectionRatio: Double { Double(bits.filter { $0 }.count) / Double(max(bits.count, 1)) }

    /// (stage, block-in-stage, global index) of every block.
    public var positions: [(stage: Int, block: Int, index: Int)] {
        var out: [(Int, Int, Int)] = [], i = 0
        for (s, n) in stageSizes.enumerated() { for b in 0..<n { out.append((s, b, i)); i += 1 } }
        return out
    }
}

/// How SAM instances are laid over the blocks.
public enum AttachMode: String, CaseIterable, Codable, Sendable, CustomStringConvertible {
    /// One instance per connected block (Full-SA when every bit is 1).
    case fullSA = "full-sa"
    /// One instance per stage, shared by the stage's connected blocks (Full-Share).
    case fullShare = "full-share"

    /// `full-sa` / `full-share`, as flags and run files write it.
    public var description: String { rawValue }
}
