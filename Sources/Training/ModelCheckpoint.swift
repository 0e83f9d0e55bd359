import Checkpoint
import Foundation
import Models
import NN
import Tensor

/// Saving and loading a model (and optionally its optimizer) as safetensors.
///
/// `model.safetensors`-style files hold exactly PyTorch's `state_dict` of the model (same
/// names, OIHW conv weights, int64 `num_batches_tracked`), so `model.load_state_dict(
/// safetensors.torch.load_file(path))` works; run metadata goes into `__metadata__`.
/// Optimizer state (momentum buffers / Adam moments) goes to a sibling `.optim.safetensors`
/// file with the same epoch stamp, so the model file stays loadable by PyTorch as is.
public enum ModelCheckpoint {
    /// Metadata keys every checkpoint carries.
    public static let formatKey = "lth4sa.format", modelKey = "model", classesKey = "classes", epochKey = "epoch"

    public static func save(_ net: ResNet, to path: String, metadata: [String: String]) throws {
        var meta = metadata
        meta[formatKey] = "1"
        meta[modelKey] = net.spec.name
        meta[classesKey] = String(net.classes)
        let entries = net.stateEntries().map { SafeTensors.Entry($0.0, $0.1, integer: $0.2) }
        try SafeTensors.write(entries, metadata: meta, to: path)
    }

    public static func saveOptimizer(_ opt: Optimizer, to path: String, metadata: [String: String]) throws {
        var meta = metadata
        meta["optimizer.steps"] = String(opt.steps)
        meta["optimizer.lr"] = String(opt.learningRate)
        try SafeTensors.write(opt.stateTensors().map { SafeTensors.Entry($0.0, $0.1) }, metadata: meta, to: path)
    }

    /// Reads a checkpoint's metadata and checks that it is ours.
    public static func metadata(_ path: String) throws -> [String: String] {
        let (_, meta) = try SafeTensors.read(path)
        return meta
    }

    /// Loads weights and buffers into `net`, strictly (as PyTorch's `strict=True`). Fails
    /// (leaving `net` unchanged) when the file is for another model or class count, a tensor is
    /// missing, has another shape or holds a non-finite value, or a tensor is left over.
    @discardableResult
    public static func load(_ net: ResNet, from path: String) throws -> [String: String] {
        let (tensors, meta) = try SafeTensors.read(path)
        if let m = meta[modelKey], m != net.spec.name {
            throw LTHError("checkpoint '\(path)' is of model \(m), not \(net.spec.name)")
        }
        if let c = meta[classesKey], c != String(net.classes) {
            throw LTHError("checkpoint '\(path)' has \(c) classes, the model has \(net.classes)")
        }
        let entries = net.stateEntries()
        for (name, t, _) in entries {
            guard let l = tensors[name] else { throw LTHError("checkpoint '\(path)' lacks tensor '\(name)' of \(net.spec.name)") }
            guard l.shape == t.shape else { throw LTHError("checkpoint '\(path)': tensor '\(name)' has shape \(l.shape), expected \(t.shape)") }
            if let bad = l.values.first(where: { !$0.isFinite }) {
                throw LTHError("checkpoint '\(path)': tensor '\(name)' holds \(bad); a diverged run cannot be evaluated or resumed (use an earlier checkpoint)")
            }
        }
        let expected = Set(entries.map { $0.0 })
        let extra = tensors.keys.filter { !expected.contains($0) }.sorted()
        if let first = extra.first {
            throw LTHError("checkpoint '\(path)' holds \(extra.count) tensor(s) that \(net.spec.name) with this SAM placement "
                           + "does not have (first: '\(first)'); it belongs to another model or scheme, loading is strict")
        }
        for (name, t, _) in entries {
            let l = tensors[name]!
            l.values.withUnsafeBufferPointer { t.data.update(from: $0.baseAddress!, count: t.count) }
        }
        for (_, p) in net.namedParameters() { p.touch() }
        return meta
    }

    /// Restores optimizer state saved by `saveOptimizer`.
    public static func loadOptimizer(_ opt: Optimizer, from path: String) throws -> [String: String] {
        let (tensors, meta) = try SafeTensors.read(path)
        let state = opt.stateTensors()
        for (name, t) in state {
            guard let l = tensors[name], l.shape == t.shape else {
                throw LTHError("optimizer state '\(path)' lacks '\(name)' with shape \(t.shape)")
            }
            l.values.withUnsafeBufferPointer { t.data.update(from: $0.baseAddress!, count: t.count) }
        }
        opt.steps = Int(meta["optimizer.steps"] ?? "0") ?? 0
        return meta
    }
}
