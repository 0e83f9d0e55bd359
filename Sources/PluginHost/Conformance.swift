import Foundation
import LTH4SASDK
import Models
import NN
import Tensor

/// The conformance kit behind `lth4sa plugins check`: every check a SAM plugin must pass,
/// each reported with what it measured.
public enum Conformance {
    public struct Result: Sendable {
        public let name: String
        public let passed: Bool
        public let detail: String
        public init(name: String, passed: Bool, detail: String) { (self.name, self.passed, self.detail) = (name, passed, detail) }
    }

    /// Told each check's name before it runs and its result after: a kit run in a child
    /// process reports where it was when a plugin crashed or hung.
    public struct Progress {
        public var started: (String) -> Void = { _ in }
        public var finished: (Result) -> Void = { _ in }
        public init(started: @escaping (String) -> Void = { _ in }, finished: @escaping (Result) -> Void = { _ in }) {
            (self.started, self.finished) = (started, finished)
        }

        /// Runs check `name` (a throw fails it with the error's text), reports it, appends it.
        func record(_ name: String, into results: inout [Result], _ body: () throws -> (Bool, String)) {
            started(name)
            let result: Result
            do {
                let (ok, detail) = try body()
                result = Result(name: name, passed: ok, detail: detail)
            } catch {
                result = Result(name: name, passed: false, detail: "\(error)")
            }
            finished(result)
            results.append(result)
        }
    }

    /// Runs all checks on `plugin` (its resolved options) at `channels`, NHWC input `shape`.
    public static func run(_ plugin: SAMPlugin, channels: Int = 16, spatial: Int = 5, batch: Int = 3, progress: Progress = Progress()) -> [Result] {
        var results: [Result] = []
        func record(_ name: String, _ body: () throws -> (Bool, String)) { progress.record(name, into: &results, body) }
        let d = plugin.descriptor
        record("descriptor") {
            var problems: [String] = []
            if d.id.isEmpty || d.id != d.id.lowercased() || d.id.contains(" ") { problems.append("id '\(d.id)' must be lowercase without spaces") }
            if d.version.split(separator: ".").count < 2 { problems.append("version '\(d.version)' is not semantic (x.y.z)") }
            if d.description.isEmpty || d.description.contains("\n") { problems.append("description must be one non-empty line") }
            for o in d.options where !(o.min <= o.defaultValue && o.defaultValue <= o.max) {
                problems.append("option \(o.name): default \(o.defaultValue) outside \(o.rangeText)")
            }
            return (problems.isEmpty, problems.isEmpty ? "id \(d.id), version \(d.version), \(d.options.count) option(s)" : problems.joined(separator: "; "))
        }
        var rng = RNG(seed: 11)
        let host = PluginHostContext(seed: 11)
        let shape = [batch, spatial, spatial, channels]
        func randomize(_ inst: SAMInstance) {
            // random parameters so that every path is exercised (e.g. SGE's gamma starts at 0)
            for (_, p) in inst.parameters { rng.fillNormal(p.value, std: 0.5) }
        }
        func newInstance() throws -> SAMInstance {
            let inst = try plugin.instantiate(channels: channels, rng: &rng, host: host)
            randomize(inst)
            return inst
        }
        record("gradients (finite differences)") {
            let inst = try newInstance()
            let stateful = try inst.layout(shape).state_count > 0
            // two call sites on one instance (one stage of two blocks when stateful)
            let chain = StageStateChain(), passes = PassContext(checkInputGradients: true)
            let sites = [SAMSiteFactory.make(inst, position: 0, chain: chain, passes: passes),
                         SAMSiteFactory.make(inst, position: 1, chain: chain, passes: passes)]
            let xs = (0..<2).map { _ -> Tensor in let t = Tensor(shape); rng.fillNormal(t, std: 1); return t }
            let rs = (0..<2).map { _ -> Tensor in let t = Tensor(shape); rng.fillNormal(t, std: 1); return t }
            func loss() throws -> Double {
                passes.beginForward()
                var total = 0.0
                for k in 0..<2 { total += GradientCheck.project(try sites[k].forwardChecked(xs[k], training: true), rs[k]) }
                return total
            }
            _ = try loss()
            for (_, p) in inst.parameters { p.grad.zero() }
            var dxs: [Tensor] = []
            passes.beginBackward()
            for k in [1, 0] { dxs.insert(try sites[k].backwardChecked(rs[k]).clone(), at: 0) }
            let gc = GradientCheck(eps: 1e-3, rtol: 2e-2, atol: 1e-3, samples: 12, extraSteps: [3e-4, 1e-4])
            var worst: [String] = []
            let loop = { (try? loss()) ?? .nan }
            for k in 0..<2 {
                if let f = gc.check(xs[k], analytic: dxs[k], loss: loop) { worst.append("input of call \(k): \(f)") }
            }
            for (name, p) in inst.parameters {
                if let f = gc.check(p.value, analytic: p.grad.clone(), loss: loop) { worst.append("\(name): \(f)") }
            }
            return (worst.isEmpty, worst.isEmpty ? "inputs of 2 calls\(stateful ? " (state carried)" : "") and \(inst.parameters.count) parameter(s) agree (eps 1e-3, rtol 2e-2)" : worst.joined(separator: "; "))
        }
        record("no allocation in process or backward after prepare") {
            let inst = try newInstance()
            guard inst.plugin.prepare != nil else { return (true, "no prepare call: the plugin allocates on demand (not checked)") }
            try inst.prepare(slot: 1, shape: shape)
            guard let prepared = inst.allocations else { return (true, "prepare implemented; allocations not reported (not checked)") }
            let chain = StageStateChain(), passes = PassContext(checkInputGradients: true)
            let sites = [SAMSiteFactory.make(inst, position: 0, chain: chain, passes: passes),
                         SAMSiteFactory.make(inst, position: 1, chain: chain, passes: passes)]
            let x = Tensor(shape), r = Tensor(shape)
            rng.fillNormal(x, std: 1)
            rng.fillNormal(r, std: 1)
            for round in 0..<2 {  // twice: nothing may be allocated late either
                passes.beginForward()
                for site in sites { _ = try site.forwardChecked(x, training: true) }
                passes.beginBackward()
                for site in sites.reversed() { _ = try site.backwardChecked(r) }
                passes.beginForward()
                for site in sites { _ = try site.forwardChecked(x, training: false) }
                _ = round
            }
            let after = inst.allocations ?? prepared
            return (after == prepared, "prepare made \(prepared) allocation(s); 2 rounds of 2 training calls, their backward and 2 inference calls made "
                    + "\(after - prepared)" + (after == prepared ? "" : " (process/backward must use what prepare reserved)"))
        }
        record("shared instance accumulates over calls") {
            guard try newInstance().layout(shape).state_count == 0 else { return (true, "skipped: stateful SAMs are checked with their state chain above") }
            // one instance called at two sites vs two instances with the same parameters
            let shared = try newInstance(), a = try newInstance(), b = try newInstance()
            for ((_, p), ((_, pa), (_, pb))) in zip(shared.parameters, zip(a.parameters, b.parameters)) {
                pa.value.copy(from: p.value)
                pb.value.copy(from: p.value)
            }
            let x0 = Tensor(shape), x1 = Tensor(shape), r = Tensor(shape)
            rng.fillNormal(x0, std: 1)
            rng.fillNormal(x1, std: 1)
            rng.fillNormal(r, std: 1)
            let s0 = SAMSiteFactory.make(shared, position: 0, chain: nil), s1 = SAMSiteFactory.make(shared, position: 1, chain: nil)
            let sa = SAMSiteFactory.make(a, position: 0, chain: nil), sb = SAMSiteFactory.make(b, position: 0, chain: nil)
            let y0 = try s0.forwardChecked(x0, training: true).clone()
            _ = try s1.forwardChecked(x1, training: true)
            let ya = try sa.forwardChecked(x0, training: true).clone()
            _ = try sb.forwardChecked(x1, training: true)
            for inst in [shared, a, b] { for (_, p) in inst.parameters { p.grad.zero() } }
            _ = try s1.backwardChecked(r)
            let d0 = try s0.backwardChecked(r).clone()
            let da = try sa.backwardChecked(r).clone()
            _ = try sb.backwardChecked(r)
            var err: Float = max(y0.maxAbsDiff(ya), d0.maxAbsDiff(da))
            for ((_, ps), ((_, pa), (_, pb))) in zip(shared.parameters, zip(a.parameters, b.parameters)) {
                let sum = pa.grad.clone()
                sum.add(pb.grad)
                err = max(err, ps.grad.maxAbsDiff(sum))
            }
            return (err < 1e-4, "two calls on one instance vs two instances: max difference \(err)")
        }
        record("determinism and inference path") {
            let inst = try newInstance()
            let x = Tensor(shape)
            rng.fillNormal(x, std: 1)
            let initial = inst.buffers.map { $0.1.tensor.clone() }
            func restoreBuffers() { for ((_, b), t) in zip(inst.buffers, initial) { b.tensor.copy(from: t) } }
            let y1 = try SAMSiteFactory.make(inst, position: 0).forwardChecked(x, training: true).clone()
            let trained = inst.buffers.map { $0.1.tensor.clone() }
            restoreBuffers()
            let y2 = try SAMSiteFactory.make(inst, position: 0).forwardChecked(x, training: true).clone()
            let repeatDiff = y1.maxAbsDiff(y2)
            guard !inst.buffers.isEmpty else {
                let y3 = try SAMSiteFactory.make(inst, position: 0).forwardChecked(x, training: false).clone()
                let inferDiff = y1.maxAbsDiff(y3)
                return (repeatDiff == 0 && inferDiff < 1e-5, "repeat difference \(repeatDiff), inference vs training forward \(inferDiff)")
            }
            // with buffers (running statistics) inference may differ from training; it must be
            // repeatable and leave the buffers as they are
            let before = inst.buffers.map { $0.1.tensor.clone() }
            let y3 = try SAMSiteFactory.make(inst, position: 0).forwardChecked(x, training: false).clone()
            let y4 = try SAMSiteFactory.make(inst, position: 0).forwardChecked(x, training: false).clone()
            let changedByInference = zip(inst.buffers, before).filter { $0.0.1.tensor.maxAbsDiff($0.1) != 0 }.map { $0.0.0 }
            let updated = zip(inst.buffers, zip(initial, trained)).filter { $0.1.0.maxAbsDiff($0.1.1) != 0 }.count
            let inferRepeat = y3.maxAbsDiff(y4)
            let ok = repeatDiff == 0 && inferRepeat == 0 && changedByInference.isEmpty
            return (ok, "repeat difference \(repeatDiff) (training), \(inferRepeat) (inference); "
                    + (changedByInference.isEmpty ? "inference leaves the \(inst.buffers.count) buffer(s) unchanged" : "inference changed \(changedByInference.joined(separator: ", "))")
                    + ", a training forward updated \(updated)")
        }
        record("concurrent instances (lanes)") {
            guard plugin.descriptor.concurrentInstances else {
                return (true, "LTH4SA_PLUGIN_CONCURRENT_INSTANCES not declared: networks with this SAM run in one lane (not checked)")
            }
            // two instances with the same parameters, each with its own host table, driven from
            // two threads at once (as inference and training lanes drive them) must give exactly
            // what they give one after the other: outputs, input and parameter gradients, buffers
            let first = try newInstance()
            let lanes = try (0..<2).map { _ -> SAMInstance in
                let inst = try plugin.instantiate(channels: channels, rng: &rng, host: PluginHostContext(seed: 11))
                for ((_, p), (_, q)) in zip(inst.parameters, first.parameters) { p.value.copy(from: q.value) }
                return inst
            }
            let xs = (0..<2).map { _ -> Tensor in let t = Tensor(shape); rng.fillNormal(t, std: 1); return t }
            let r = Tensor(shape)
            rng.fillNormal(r, std: 1)
            let initialBuffers = lanes.map { $0.buffers.map { $0.1.tensor.clone() } }
            /// One lane's work: two training calls (a stage of two blocks), their backward, one
            /// inference call; everything it produced.
            func work(_ lane: Int) throws -> [Tensor] {
                let inst = lanes[lane]
                for ((_, b), t) in zip(inst.buffers, initialBuffers[lane]) { b.tensor.copy(from: t) }
                for (_, p) in inst.parameters { p.grad.zero() }
                let chain = StageStateChain(), passes = PassContext(checkInputGradients: true)
                let sites = [SAMSiteFactory.make(inst, position: 0, chain: chain, passes: passes),
                             SAMSiteFactory.make(inst, position: 1, chain: chain, passes: passes)]
                passes.beginForward()
                var out = try sites.map { try $0.forwardChecked(xs[lane], training: true).clone() }
                passes.beginBackward()
                out += try sites.reversed().map { try $0.backwardChecked(r).clone() }
                passes.beginForward()
                out.append(try sites[0].forwardChecked(xs[lane], training: false).clone())
                return out + inst.parameters.map { $0.1.grad.clone() } + inst.buffers.map { $0.1.tensor.clone() }
            }
            // serial: both lanes' work on one thread, inside a lane region as the concurrent run (one thread per operator)
            var serialResult: Swift.Result<[[Tensor]], Error>? = nil
            Threads.runLanes(2) { lane in if lane == 0 { serialResult = Swift.Result { try (0..<2).map(work) } } }
            let serial = try serialResult!.get()
            var worst: Float = 0, rounds = 0
            for _ in 0..<8 {
                var results = [Swift.Result<[Tensor], Error>?](repeating: nil, count: 2)
                results.withUnsafeMutableBufferPointer { results in
                    Threads.runLanes(2) { lane in results[lane] = Swift.Result { try work(lane) } }
                }
                for (lane, result) in results.enumerated() {
                    let tensors = try result!.get()
                    for (a, b) in zip(tensors, serial[lane]) { worst = max(worst, a.maxAbsDiff(b)) }
                }
                rounds += 1
            }
            return (worst == 0, "\(rounds) rounds of two instances on two threads at once (training, backward, inference): "
                    + (worst == 0 ? "identical to serial calls" : "differ from serial calls by up to \(worst)"))
        }
        record("declared layout flags hold") {
            let inst = try newInstance()
            guard try inst.layout(shape).flags & LTH4SA_SAM_PROCESS_IGNORES_INPUT != 0 else { return (true, "no flags declared") }
            // process must give the same attention whatever F holds, for the same S
            let x = Tensor(shape), other = Tensor(shape), s = Tensor([batch, channels])
            rng.fillNormal(x, std: 1)
            rng.fillNormal(other, std: 3)
            let context = ComputeContext()
            withExtendedLifetime(context) { ChannelOps.of(context).mean(x, into: s) }
            let site = SAMSiteFactory.make(inst, position: 0)
            let a = try site.inferenceAttention(input: x, extracted: s).clone(), b = try site.inferenceAttention(input: other, extracted: s)
            let diff = a.maxAbsDiff(b)
            guard diff == 0 else { return (false, "PROCESS_IGNORES_INPUT: attention for two different inputs with the same S differs by \(diff)") }
            // training without F (what a network does with the flag: A from S alone, dS from dA,
            // d_input ignored) must give the gradients of the path that forms F
            let r = Tensor(shape)
            rng.fillNormal(r, std: 1)
            for (_, p) in inst.parameters { p.grad.zero() }
            let formed = SAMSiteFactory.make(inst, position: 0)
            _ = try formed.forwardChecked(x, training: true)
            let dF = try formed.backwardChecked(r).clone()
            let grads = inst.parameters.map { $0.1.grad.clone() }
            for (_, p) in inst.parameters { p.grad.zero() }
            let passes = PassContext(checkInputGradients: true), unformed = SAMSiteFactory.make(inst, position: 0, passes: passes)
            let scaled = unformed.scale(branchShape: shape, training: true, fromChannelMeans: { s })
            try passes.check()
            guard let attention = scaled else { return (true, "flag declared; the layout does not allow training without F") }
            // the host's side of that path: dF = dOut * A, dA = sum over pixels of dOut * F, then
            // dF += dS / pixels (the mean's backward)
            let dA = Tensor(attention.shape), dFUnformed = Tensor(shape)
            SAMSite.combineBackward(x, attention, r, add: false, dF: dFUnformed, dA: dA)
            let dS = unformed.scaleBackward(Tensor([batch, channels], viewing: dA))
            try passes.check()
            ChannelOps.meanBackward(dS, into: dFUnformed, accumulate: true)
            var worst = dFUnformed.maxAbsDiff(dF) / max(dF.buffer.map(abs).max()!, 1e-6)
            for ((_, p), g) in zip(inst.parameters, grads) { worst = max(worst, p.grad.maxAbsDiff(g) / max(g.buffer.map(abs).max()!, 1e-6)) }
            return (worst <= 1e-5, "PROCESS_IGNORES_INPUT: attention independent of F; training without F: gradients within \(worst) (relative, limit 1e-5) of the path that forms F")
        }
        record("no NaN/Inf on zero and large inputs") {
            let inst = try newInstance()
            var bad: [String] = []
            for (label, value) in [("zeros", Float(0)), ("1e4", Float(1e4)), ("-1e4", Float(-1e4))] {
                let x = Tensor(shape)
                x.fill(value)
                if value != 0 { for i in stride(from: 0, to: x.count, by: 3) { x[i] = -value } }
                let site = SAMSiteFactory.make(inst, position: 0)
                let y = try site.forwardChecked(x, training: true)
                let r = Tensor(shape)
                r.fill(1)
                let dx = try site.backwardChecked(r)
                if !(y.array + dx.array).allSatisfy({ $0.isFinite }) { bad.append(label) }
            }
            return (bad.isEmpty, bad.isEmpty ? "outputs and gradients finite for zeros, +-1e4" : "non-finite values for \(bad.joined(separator: ", "))")
        }
        record("odd channel counts run or are refused with a message") {
            // a configuration is either refused at create with a message, or it runs with
            // finite outputs; anything else (a silent refusal, NaN/Inf) fails the check
            var outcomes: [String] = [], ok = true
            for c in [1, 3, 7] {
                var local = RNG(seed: 1)
                let inst: SAMInstance
                do { inst = try plugin.instantiate(channels: c, rng: &local, host: host) } catch {
                    let message = "\(error)"
                    let silent = message.hasSuffix(": no message")
                    ok = ok && !silent
                    outcomes.append("C=\(c): refused" + (silent ? " WITHOUT a message" : ""))
                    continue
                }
                let x = Tensor([1, 3, 3, c])
                local.fillNormal(x, std: 1)
                let y = try SAMSiteFactory.make(inst, position: 0).forwardChecked(x, training: false)
                let finite = y.array.allSatisfy { $0.isFinite }
                ok = ok && finite
                outcomes.append("C=\(c): runs" + (finite ? "" : " with non-finite outputs"))
            }
            return (ok, outcomes.joined(separator: ", "))
        }
        return results
    }
}
