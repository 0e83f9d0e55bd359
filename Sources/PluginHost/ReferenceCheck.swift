import Data
import Foundation
import Models
import NN
import Tensor

/// Compares a SAM plugin with reference dumps laid out as in `Tests/Fixtures/vectors/README.md`:
/// `manifest.json` (sam, options, B/H/W/C, calls, shared, scheme), `input{k}.npy`,
/// `output{k}.npy`, `dout{k}.npy`, `dinput{k}.npy`, `param_<name>.npy`, `grad_<name>.npy`.
/// Runs the calls forward in order through host sites (one instance when `shared`), then
/// backward in reverse, and reports the relative error max|ours - ref| / max|ref| of every
/// output, input gradient and parameter gradient.
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

    static func relativeError(_ ours: Tensor, _ ref: Tensor) -> Double {
        guard ours.count == ref.count else { return .infinity }
        var diff = 0.0, scale = 0.0
        for i in 0..<ref.count {
            diff = max(diff, Double(abs(ours[i] - ref[i])))
            scale = max(scale, Double(abs(ref[i])))
        }
        return scale > 0 ? diff / scale : diff
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
        var results: [Comparison] = []
        var outputs: [Tensor] = []
        passes.beginForward()
        for k in 0..<m.calls {
            let x = try load(dir, "input\(k)")
            let y = try sites[k].map { try $0.forwardChecked(x, training: true).clone() } ?? x
            outputs.append(y)
            results.append(Comparison(name: "output\(k)", relativeError: relativeError(y, try load(dir, "output\(k)"))))
        }
        passes.beginBackward()
        for k in stride(from: m.calls - 1, through: 0, by: -1) {
            let dy = try load(dir, "dout\(k)")
            let dx = try sites[k].map { try $0.backwardChecked(dy).clone() } ?? dy
            results.append(Comparison(name: "dinput\(k)", relativeError: relativeError(dx, try load(dir, "dinput\(k)"))))
        }
        for (name, _) in instances[0].parameters {
            let total = Tensor(instances[0].parameters.first { $0.0 == name }!.1.grad.shape)
            for inst in instances { total.add(inst.parameters.first { $0.0 == name }!.1.grad) }
            results.append(Comparison(name: "grad_" + name, relativeError: relativeError(total, try load(dir, "grad_" + name))))
        }
        return results
    }
}
