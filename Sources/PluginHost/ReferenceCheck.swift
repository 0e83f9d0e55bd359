import Data
import Foundation
import Models
import NN
import Tensor

/// Compares a SAM plugin with reference dumps laid out as in `Tests/Fixtures/vectors/README.md`:
/// `manifest.json` (sam, options, B/H/W/C, calls, shared, scheme), `input{k}.npy`,
/// `output{k}.npy`, `dout{k}.npy`, `dinput{k}.npy`, `param_<name>.npy`, `grad_<name>.npy`,
/// `buffer_<name>.npy` (a SAM with buffers: their values after the training forwards).
/// Runs the calls forward in order through host sites (one instance when `shared`), then
/// backward in reverse, and reports the relative error max|ours - ref| / max|ref| of every
/// output, buffer, input gradient and parameter gradient (`relativeErrors`: a reference that is
/// zero up to rounding is measured against a thousandth of the case's largest value).
public enum ReferenceCheck {
    public struct Comparison: Sendable {
        public let name: String
        public let relativeError: Double
    }

    struct Manifest: Decodable {
        let sam: String
        let options: [String: Double]?
        let B: Int, H: Int, W: Int, C: Int
        let calls: Int
        let shared: Bool
        let scheme: [Int]?
    }

    static func load(_ dir: URL, _ name: String) throws -> Tensor {
        let a = try NpyArray(path: dir.appendingPathComponent(name + ".npy").path)
        guard a.descr == "<f4" else { throw LTHError("reference '\(name).npy' must be float32, is \(a.descr)") }
        let t = Tensor(a.shape)
        try a.floats().withUnsafeBufferPointer { t.data.update(from: $0.baseAddress!, count: t.count) }
        return t
    }

    /// max|ours - ref| and max|ref| of one tensor.
    static func difference(_ ours: Tensor, _ ref: Tensor) -> (diff: Double, scale: Double) {
        guard ours.count == ref.count else { return (.infinity, 0) }
        var diff = 0.0, scale = 0.0
        for i in 0..<ref.count {
            diff = max(diff, Double(abs(ours[i] - ref[i])))
            scale = max(scale, Double(abs(ref[i])))
        }
        return (diff, scale)
    }

    /// Relative errors diff / max(scale, 1e-3 x the largest scale of the case): a reference that
    /// is zero up to rounding (the gradient of a bias a batch norm follows is 1e-15) is
    /// compared with a thousandth of the case's magnitude, not with its own rounding noise.
    static func relativeErrors(_ raw: [(String, (diff: Double, scale: Double))]) -> [Comparison] {
        let floor = 1e-3 * (raw.map(\.1.scale).max() ?? 0)
        return raw.map { name, d in
            let scale = max(d.scale, floor)
            return Comparison(name: name, relativeError: scale > 0 ? d.diff / scale : d.diff)
        }
    }

    /// Runs the check of `plugin` against the case in `directory`.
    public static func run(plugin: SAMPlugin, directory: String) throws -> [Comparison] {
        let dir = URL(fileURLWithPath: directory)
        let manifestData: Data
        do { manifestData = try Data(contentsOf: dir.appendingPathComponent("manifest.json")) } catch {
            throw LTHError("reference folder '\(directory)' has no readable manifest.json")
        }
        let m = try JSONDecoder().decode(Manifest.self, from: manifestData)
        guard m.sam.lowercased() == plugin.id else {
            throw LTHError("reference '\(directory)' is for SAM '\(m.sam)', the plugin is '\(plugin.id)'")
        }
        let settings = (m.options ?? [:]).map { "\($0.key)=\($0.value == $0.value.rounded() ? String(Int($0.value)) : String($0.value))" }
        let configured = try SAMPlugin(library: plugin.library, settings: settings)
        var rng = RNG(seed: 0)
        let scheme = m.scheme ?? Array(repeating: 1, count: m.calls)
        let connected = scheme.enumerated().filter { $0.element == 1 }.map { $0.offset }
        var instances: [SAMInstance] = []
        let chain = StageStateChain(), passes = PassContext(), host = PluginHostContext(seed: 0), context = ComputeContext()
        var sites: [Int: SAMSite] = [:]
        for block in connected {
            if instances.isEmpty || !m.shared { instances.append(try configured.instantiate(channels: m.C, rng: &rng, host: host)) }
            sites[block] = SAMSite(instance: instances.last!, position: block, chain: chain, passes: passes, gradients: GradientRing(), label: "call \(block)",
                                   context: context)
        }
        // parameter values from the reference (every instance gets the same values)
        for inst in instances {
            for (name, p) in inst.parameters {
                let ref = try load(dir, "param_" + name)
                guard ref.count == p.value.count else { throw LTHError("reference param_\(name) has \(ref.shape), plugin declares \(p.value.shape)") }
                p.value.copy(from: ref)
                p.grad.zero()
            }
        }
        var results: [(String, (diff: Double, scale: Double))] = []
        var outputs: [Tensor] = []
        passes.beginForward()
        for k in 0..<m.calls {
            let x = try load(dir, "input\(k)")
            let y = try sites[k].map { try $0.forwardChecked(x, training: true).clone() } ?? x
            outputs.append(y)
            results.append(("output\(k)", difference(y, try load(dir, "output\(k)"))))
        }
        // buffers (running statistics) after every training forward, when the reference has them:
        // one instance's (shared, or a single call)
        if instances.count == 1 {
            for (name, buffer) in instances[0].buffers {
                let file = dir.appendingPathComponent("buffer_\(name).npy").path
                guard FileManager.default.fileExists(atPath: file) else { throw LTHError("reference '\(directory)' lacks buffer_\(name).npy for the plugin's buffer \(name)") }
                results.append(("buffer_" + name, difference(buffer.tensor, try load(dir, "buffer_" + name))))
            }
        }
        passes.beginBackward()
        for k in stride(from: m.calls - 1, through: 0, by: -1) {
            let dy = try load(dir, "dout\(k)")
            let dx = try sites[k].map { try $0.backwardChecked(dy).clone() } ?? dy
            results.append(("dinput\(k)", difference(dx, try load(dir, "dinput\(k)"))))
        }
        for (name, _) in instances[0].parameters {
            let total = Tensor(instances[0].parameters.first { $0.0 == name }!.1.grad.shape)
            for inst in instances { total.add(inst.parameters.first { $0.0 == name }!.1.grad) }
            results.append(("grad_" + name, difference(total, try load(dir, "grad_" + name))))
        }
        return relativeErrors(results)
    }
}
