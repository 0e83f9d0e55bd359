import Foundation
import LTH4SASDK
import Models
import NN
import Tensor

/// The state a stateful SAM (DIA) carries from block to block within one stage, forward and
/// backward. The first site to run in a pass (see `PassContext`) starts from zero state, and
/// the first to run backward from a zero state gradient.
public final class StageStateChain {
    var forwardPass = -1
    var state: [Tensor]? = nil
    var backwardPass = -1
    var stateGradient: [Tensor]? = nil
    public init() {}
}

/// A SAM attached at one block: the adapter that makes a plugin instance look like any other
/// layer to the model. Runs extract -> process -> recalibrate forward (host defaults for
/// extract = global average pooling and recalibrate = multiply/add with broadcast when the
/// plugin leaves them NULL) and their backwards in reverse.
public final class SAMSite: BranchAttention {
    public let instance: SAMInstance
    /// The instance's call slot for this site (its saved context in the plugin).
    public let slot: Int32
    /// Position of the block within its stage (for the state chain).
    let position: Int
    let chain: StageStateChain?
    /// The network's pass bookkeeping: pass numbers for the chain, the slot for failures.
    let passes: PassContext
    /// The network's gradient ring (dF comes from it).
    let gradients: GradientRing
    /// The network's compute context (the host's channel operations and profiler).
    let context: ComputeContext
    /// Where the site is, for messages ("layer2.1").
    public let label: String
    /// One pool per role so same-shaped intermediates never share storage.
    private let extractedPool = BufferPool(), attentionPool = BufferPool(), outputPool = BufferPool()
    private let dAttentionPool = BufferPool(), dExtractedPool = BufferPool()
    private let statePools = (0..<4).map { _ in BufferPool() }
    private var savedInput: Tensor?
    private var extracted: Tensor?
    private var attention: Tensor?
    private var layout = lth4sa_sam_layout_t()

    init(instance: SAMInstance, position: Int, chain: StageStateChain?, passes: PassContext, gradients: GradientRing, label: String,
         context: ComputeContext) {
        self.label = label
        self.context = context
        self.passes = passes
        self.gradients = gradients
        self.instance = instance
        slot = Int32(instance.slotsAssigned)
        instance.slotsAssigned += 1
        self.position = position
        self.chain = chain
    }

    var api: lth4sa_sam_api_t { instance.plugin.api.pointee }
    var id: String { instance.plugin.id }

    /// F -> F'; a plugin failure is recorded in the network's `PassContext` (thrown by the
    /// network at the end of the pass) and F passes through unchanged.
    public func forward(_ f: Tensor, training: Bool) -> Tensor {
        do { return try forwardChecked(f, training: training) } catch {
            passes.fail(error)
            return f
        }
    }

    /// dF' -> dF; a failure is recorded like forward's and dF' passes through.
    public func backward(_ gradient: Tensor) -> Tensor {
        do { return try backwardChecked(gradient) } catch {
            passes.fail(error)
            return gradient
        }
    }

    /// With the default recalibration and a per-channel attention: extract and process, then
    /// ReLU(F * A + shortcut) in one oneDNN pass (no F' written and read back). Training keeps
    /// F, S and A for `backward` like `forward` does.
    public func joined(_ f: Tensor, shortcut: Tensor, training: Bool, into out: Tensor) -> Tensor? {
        guard api.recalibrate == nil else { return nil }
        do {
            layout = try instance.layout(f.shape)
            try instance.prepare(slot: Int(slot), shape: f.shape)
            guard layout.state_count == 0,
                  dims(layout.attention_ndim, layout.attention_shape) == [f.shape[0], 1, 1, f.shape[3]] else { return nil }
            let (s, a) = try extractAndProcess(f, training: training)
            precondition(out.shape == f.shape, "joined output \(out.shape) for F \(f.shape)")
            context.profiler.measure("sam combine+join") {
                ChannelOps.of(context).combineJoin(f, a, shortcut: shortcut, add: layout.combine == LTH4SA_COMBINE_ADD, into: out)
            }
            if training { keepForBackward(f, s, a) }
            return out
        } catch {
            passes.fail(error)
            return nil
        }
    }

    /// With the host's mean as extract, a multiplying per-channel attention and a plugin that
    /// declares `LTH4SA_SAM_PROCESS_IGNORES_INPUT`: A = process(S = means()), with an input view
    /// of F's shape over zero pages (F is never formed). Training keeps S and A for
    /// `scaleBackward`.
    public func scale(branchShape: [Int], training: Bool, fromChannelMeans means: () -> Tensor?) -> Tensor? {
        guard api.extract == nil, api.recalibrate == nil else { return nil }
        do {
            layout = try instance.layout(branchShape)
            try instance.prepare(slot: Int(slot), shape: branchShape)
            let (n, c) = (branchShape[0], branchShape[3])
            guard layout.flags & LTH4SA_SAM_PROCESS_IGNORES_INPUT != 0, layout.state_count == 0,
                  layout.combine == LTH4SA_COMBINE_MULTIPLY,
                  dims(layout.extract_ndim, layout.extract_shape) == [n, c],
                  dims(layout.attention_ndim, layout.attention_shape) == [n, 1, 1, c],
                  let means = means() else { return nil }
            precondition(means.shape == [n, c], "channel means \(means.shape) for F \(branchShape)")
            let s = extractedPool.get([n, c])
            s.copy(from: means)
            var f = try unformedInput(branchShape)
            let a = attentionPool.get([n, 1, 1, c])
            var sv = view(s), av = view(a)
            try checked(id, "process", at: label) { api.process(instance.handle, slot, &f, &sv, nil, &av, nil, training ? 1 : 0, $0) }
            try requireFinite(a, "attention (process)")
            scaledBranchShape = training ? branchShape : nil
            if training { keepForBackward(nil, s, a) }
            return a
        } catch {
            passes.fail(error)
            return nil
        }
    }

    /// dA [N, C] -> dS [N, C] after a training `scale` (process_backward with the same zero input
    /// view; its d_input, which a flagged plugin never writes, is a writable zero mapping whose
    /// contents are ignored).
    public func scaleBackward(_ dA: Tensor) -> Tensor {
        let dS = dExtractedPool.get(dA.shape)
        do {
            guard let shape = scaledBranchShape, let s = extracted, let a = attention, a.count == dA.count else {
                throw LTHError("plugin \(id): scale backward without a training scale")
            }
            var f = try unformedInput(shape)
            var dF = view(try zeroMapping(&gradientSink, count: shape.reduce(1, *), writable: true), shape: shape)
            var sv = view(s), dAV = view(dA.data, shape: a.shape), dSV = view(dS)
            try checked(id, "process_backward", at: label) { api.process_backward(instance.handle, slot, &f, &sv, &dAV, nil, &dSV, nil, &dF, $0) }
            try requireFinite(dS, "extract gradient (process_backward)")
            for (name, p) in instance.parameters { try requireFinite(p.grad, "gradient of \(name)") }
        } catch {
            passes.fail(error)
            dS.zero()
        }
        return dS
    }

    /// The branch shape of the last training `scale` (nil after a training forward that formed F).
    private var scaledBranchShape: [Int]?

    /// Read-only zero pages standing in for an F that was never formed (a plugin that declares
    /// `LTH4SA_SAM_PROCESS_IGNORES_INPUT` and reads F anyway gets zeros, not a crash; the
    /// conformance kit reports it), and writable ones for the d_input such a plugin never writes.
    /// Mapped, not written: they cost no memory.
    private var zeroPages: (pointer: UnsafeMutableRawPointer, bytes: Int)?, gradientSink: (pointer: UnsafeMutableRawPointer, bytes: Int)?

    /// An input view of `shape` over the read-only zero pages.
    private func unformedInput(_ shape: [Int]) throws -> lth4sa_tensor_t {
        view(try zeroMapping(&zeroPages, count: shape.reduce(1, *), writable: false), shape: shape)
    }

    private func zeroMapping(_ mapping: inout (pointer: UnsafeMutableRawPointer, bytes: Int)?, count: Int, writable: Bool) throws -> UnsafeMutablePointer<Float> {
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        if let z = mapping, z.bytes >= bytes { return z.pointer.assumingMemoryBound(to: Float.self) }
        if let z = mapping { munmap(z.pointer, z.bytes) }
        mapping = nil
        guard let p = mmap(nil, bytes, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
            throw LTHError("plugin \(id) at \(label): cannot map \(bytes) bytes of zero pages standing in for F or its gradient")
        }
        mapping = (p, bytes)
        return p.assumingMemoryBound(to: Float.self)
    }

    deinit {
        for z in [zeroPages, gradientSink].compactMap({ $0 }) { munmap(z.pointer, z.bytes) }
    }

    /// A = process(F, S) at inference, for the conformance kit (which checks declared flags).
    func inferenceAttention(input f: Tensor, extracted s: Tensor) throws -> Tensor {
        layout = try instance.layout(f.shape)
        try instance.prepare(slot: Int(slot), shape: f.shape)
        return try process(f, s, training: false)
    }

    /// S = extract(F) into this site's buffer (plugin stage, or the host's global average pool).
    func extract(_ f: Tensor, training: Bool) throws -> Tensor {
        let s = extractedPool.get(dims(layout.extract_ndim, layout.extract_shape))
        if let extract = api.extract {
            var fv = view(f), sv = view(s)
            try checked(id, "extract", at: label) { extract(instance.handle, slot, &fv, &sv, training ? 1 : 0, $0) }
        } else {
            guard s.shape == [f.shape[0], f.shape[3]] else { throw LTHError("plugin \(id): default extract needs S = [B, C], layout says \(s.shape)") }
            context.profiler.measure("sam mean") { ChannelOps.of(context).mean(f, into: s) }
        }
        return s
    }

    /// A = process(F, S, state): the state comes from (and goes back to) the stage's chain.
    func process(_ f: Tensor, _ s: Tensor, training: Bool) throws -> Tensor {
        let a = attentionPool.get(dims(layout.attention_ndim, layout.attention_shape))
        var fv = view(f), sv = view(s), av = view(a)
        let handle = instance.handle, flag: Int32 = training ? 1 : 0
        let stateCount = Int(layout.state_count)
        guard stateCount > 0 else {
            try checked(id, "process", at: label) { api.process(handle, slot, &fv, &sv, nil, &av, nil, flag, $0) }
            return a
        }
        guard let chain else { throw LTHError("plugin \(id) is stateful; attach it with a per-stage state chain") }
        guard stateCount <= statePools.count else { throw LTHError("plugin \(id): \(stateCount) state tensors, at most \(statePools.count) supported") }
        let stateShape = dims(layout.state_ndim, layout.state_shape)
        if chain.forwardPass != passes.forward || chain.state == nil || chain.state![0].shape != stateShape {
            chain.state = (0..<stateCount).map { _ in Tensor(stateShape) }  // zeros at the stage's first block
        }
        let outs = (0..<stateCount).map { k in statePools[k].get(stateShape) }
        var inViews = chain.state!.map(view), outViews = outs.map(view)
        try checked(id, "process", at: label) { api.process(handle, slot, &fv, &sv, &inViews, &av, &outViews, flag, $0) }
        for (k, t) in outs.enumerated() { try requireFinite(t, "state output \(k) (process)") }
        // fresh tensors for the state handed on, so the next block's outputs never alias ours
        chain.state = outs.map { $0.clone() }
        chain.forwardPass = passes.forward
        return a
    }

    /// With `passes.checkFinite` (the default): fails when `t`, a tensor the plugin wrote, holds
    /// NaN/Inf, naming the plugin, block and stage. One SIMD read pass (`Tensor.firstNonFinite`).
    /// `inputGradient`: `t` is the full-size dF, checked only with `passes.checkInputGradients`.
    func requireFinite(_ t: Tensor, _ what: String, inputGradient: Bool = false) throws {
        if inputGradient && !passes.checkInputGradients { return }
        guard passes.checkFinite, let i = context.profiler.measure("finite check", { t.firstNonFinite() }) else { return }
        throw LTHError("plugin \(id) at \(label) produced \(t.data[i]) in its \(what) (element \(i) of \(t.shape)); "
                       + "stopped before it reached any weight")
    }

    /// F [B,H,W,C] -> F'
    public func forwardChecked(_ f: Tensor, training: Bool) throws -> Tensor {
        layout = try instance.layout(f.shape)
        try instance.prepare(slot: Int(slot), shape: f.shape)
        let (s, a) = try extractAndProcess(f, training: training)
        let out = outputPool.get(f.shape)
        if let recalibrate = api.recalibrate {
            var fv = view(f), av = view(a), ov = view(out)
            try checked(id, "recalibrate", at: label) { recalibrate(instance.handle, slot, &fv, &av, &ov, $0) }
            try requireFinite(out, "recalibrated output")  // the host's own combine needs no check
        } else if a.shape == [f.shape[0], 1, 1, f.shape[3]] {
            context.profiler.measure("sam combine") { ChannelOps.of(context).combine(f, a, add: layout.combine == LTH4SA_COMBINE_ADD, into: out) }
        } else {
            SAMSite.combine(f, a, add: layout.combine == LTH4SA_COMBINE_ADD, into: out)
        }
        if training { keepForBackward(f, s, a) }
        return out
    }

    /// S = extract(F), A = process(F, S), each checked for NaN/Inf when asked (`layout` set).
    private func extractAndProcess(_ f: Tensor, training: Bool) throws -> (extracted: Tensor, attention: Tensor) {
        let s = try extract(f, training: training)
        if api.extract != nil { try requireFinite(s, "extract output") }
        let a = try process(f, s, training: training)
        try requireFinite(a, "attention (process)")
        return (s, a)
    }

    /// What `backward` reads: F, S and A of the last training forward.
    private func keepForBackward(_ f: Tensor?, _ s: Tensor, _ a: Tensor) {
        if f != nil { scaledBranchShape = nil }
        savedInput = f
        extracted = s
        attention = a
    }

    /// dF' -> dF
    public func backwardChecked(_ dOut: Tensor) throws -> Tensor {
        guard let f = savedInput, let s = extracted, let a = attention else { throw LTHError("plugin \(id): backward without a training forward") }
        let handle = instance.handle
        let dF = gradients.next(f.shape)
        let dA = dAttentionPool.get(a.shape)
        let dS = dExtractedPool.get(s.shape)
        var fv = view(f), sv = view(s), av = view(a), dOutV = view(dOut), dFV = view(dF), dAV = view(dA), dSV = view(dS)
        if let rb = api.recalibrate_backward {
            try checked(id, "recalibrate_backward", at: label) { rb(handle, slot, &fv, &av, &dOutV, &dFV, &dAV, $0) }
        } else {
            context.profiler.measure("sam combine bwd") {
                SAMSite.combineBackward(f, a, dOut, add: layout.combine == LTH4SA_COMBINE_ADD, dF: dF, dA: dA)
            }
        }
        let stateCount = Int(layout.state_count)
        if stateCount > 0, let chain {
            let stateShape = dims(layout.state_ndim, layout.state_shape)
            let last = chain.backwardPass != passes.backward || chain.stateGradient == nil
            var dOutState = last ? (0..<stateCount).map { _ in Tensor(stateShape) } : chain.stateGradient!
            let dIn = (0..<stateCount).map { _ in Tensor(stateShape) }
            var dOutViews = dOutState.map(view), dInViews = dIn.map(view)
            try checked(id, "process_backward", at: label) { err in
                api.process_backward(handle, slot, &fv, &sv, &dAV, &dOutViews, &dSV, &dInViews, &dFV, err)
            }
            dOutState = []
            for (k, t) in dIn.enumerated() { try requireFinite(t, "gradient of state input \(k) (process_backward)") }
            chain.stateGradient = dIn
            chain.backwardPass = passes.backward
        } else {
            try checked(id, "process_backward", at: label) { api.process_backward(handle, slot, &fv, &sv, &dAV, nil, &dSV, nil, &dFV, $0) }
        }
        if let eb = api.extract_backward {
            try checked(id, "extract_backward", at: label) { eb(handle, slot, &fv, &dSV, &dFV, $0) }
        } else {
            context.profiler.measure("sam mean bwd") { ChannelOps.meanBackward(dS, into: dF, accumulate: true) }
        }
        try requireFinite(dF, "input gradient (backward)", inputGradient: true)
        for (name, p) in instance.parameters { try requireFinite(p.grad, "gradient of \(name)") }
        return dF
    }

    // MARK: host defaults

    /// out = F * A or F + A, A [B, 1|H, 1|W, G] broadcast (each of the G channels of A covers
    /// C/G consecutive channels of F).
    static func combine(_ f: Tensor, _ a: Tensor, add: Bool, into out: Tensor) {
        let (n, h, w, c) = (f.shape[0], f.shape[1], f.shape[2], f.shape[3])
        let (ah, aw, g) = (a.shape[1], a.shape[2], a.shape[3])
        let k = c / g
        Threads.parallelFor(n, grain: 1) { images in for b in images {
            for y in 0..<h {
                for x in 0..<w {
                    let row = (b * h + y) * w + x
                    let src = f.data + row * c, dst = out.data + row * c
                    let arow = a.data + (((b * ah) + (ah == 1 ? 0 : y)) * aw + (aw == 1 ? 0 : x)) * g
                    if k == 1 {
                        if add { for j in 0..<c { dst[j] = src[j] + arow[j] } } else { for j in 0..<c { dst[j] = src[j] * arow[j] } }
                    } else {
                        for j in 0..<c { dst[j] = add ? src[j] + arow[j / k] : src[j] * arow[j / k] }
                    }
                }
            }
        } }
    }

    /// dF = dOut * A (or dOut); dA = sum over the broadcast of dOut * F (or dOut).
    static func combineBackward(_ f: Tensor, _ a: Tensor, _ dOut: Tensor, add: Bool, dF: Tensor, dA: Tensor) {
        let (n, h, w, c) = (f.shape[0], f.shape[1], f.shape[2], f.shape[3])
        let (ah, aw, g) = (a.shape[1], a.shape[2], a.shape[3])
        let k = c / g
        dA.zero()
        // each image's rows of dA are written by the thread of that image only
        Threads.parallelFor(n, grain: 1) { images in for b in images {
            for y in 0..<h {
                for x in 0..<w {
                    let row = (b * h + y) * w + x
                    let src = f.data + row * c, d = dOut.data + row * c, df = dF.data + row * c
                    let at = (((b * ah) + (ah == 1 ? 0 : y)) * aw + (aw == 1 ? 0 : x)) * g
                    let arow = a.data + at, darow = dA.data + at
                    if add {
                        for j in 0..<c { df[j] = d[j]; darow[j / k] += d[j] }
                    } else if k == 1 {
                        for j in 0..<c { df[j] = d[j] * arow[j]; darow[j] += d[j] * src[j] }
                    } else {
                        for j in 0..<c { df[j] = d[j] * arow[j / k]; darow[j / k] += d[j] * src[j] }
                    }
                }
            }
        } }
    }
}


/// Builds stand-alone sites (tests and the conformance kit): a fresh state chain and pass
/// context each unless given (one checking everything the plugin writes, input gradients too).
public enum SAMSiteFactory {
    public static func make(_ instance: SAMInstance, position: Int, chain: StageStateChain? = StageStateChain(),
                            passes: PassContext = PassContext(checkInputGradients: true), context: ComputeContext = ComputeContext()) -> SAMSite {
        SAMSite(instance: instance, position: position, chain: chain, passes: passes, gradients: GradientRing(), label: "site \(position)",
                context: context)
    }
}
