import Foundation
import LTH4SASDK
import Models
import Search
import Tensor

/// A searcher plugin ("lth4sa.searcher/1") adapted to the host loop's `Searcher` protocol.
/// Offers the host capability LTH4SA_HOST_SCHEME_COST when given a parameter counter.
public final class SearcherPlugin: Searcher {
    public let library: PluginLibrary
    /// The host services this searcher was created with.
    public let host: PluginHostContext
    public let descriptor: PluginDescriptor
    public let options: [(String, Double)]
    let api: UnsafePointer<lth4sa_searcher_api_t>
    let handle: UnsafeMutableRawPointer
    let blocks: Int
    private var lastCount = 0
    private let context: Unmanaged<CapabilityBox>

    /// The capabilities offered to the plugin, kept alive as long as the searcher.
    final class CapabilityBox {
        let parameters: (([Bool]) -> Int)?
        let blockParameters: ((Int) -> [Float])?
        let blocks: Int
        /// Made on first use (DARTS only): a copy of the supernet with gates.
        let gateFactory: (() throws -> GateGradientSource)?
        var gateSource: GateGradientSource?
        /// Why the last capability call failed (reported instead of the plugin's message).
        var hostError: String?
        func gates() -> GateGradientSource? {
            if gateSource == nil, let make = gateFactory {
                do { gateSource = try make() } catch { hostError = "\(error)" }
            }
            return gateSource
        }
        func values(_ p: UnsafePointer<Double>) -> [Double] { (0..<blocks).map { p[$0] } }
        var gateTable = lth4sa_gate_gradients_api_t(
            struct_size: UInt32(MemoryLayout<lth4sa_gate_gradients_api_t>.size), reserved: 0,
            train_weights: { ctx, gates in
                let box = Unmanaged<CapabilityBox>.fromOpaque(ctx!).takeUnretainedValue()
                guard let source = box.gates() else { return .nan }
                do { return try source.trainWeights(gates: box.values(gates)) } catch { box.hostError = "\(error)"; return .nan }
            },
            validation_gradient: { ctx, gates, gradient in
                let box = Unmanaged<CapabilityBox>.fromOpaque(ctx!).takeUnretainedValue()
                guard let source = box.gates() else { return .nan }
                do {
                    let (loss, g) = try source.validationGradient(gates: box.values(gates))
                    guard g.count == box.blocks else { throw LTHError("gate gradient of \(g.count) values for \(box.blocks) blocks") }
                    for (i, v) in g.enumerated() { gradient[i] = v }
                    return loss
                } catch { box.hostError = "\(error)"; return .nan }
            })
        var statsTable = lth4sa_sam_parameters_api_t(
            struct_size: UInt32(MemoryLayout<lth4sa_sam_parameters_api_t>.size), reserved: 0,
            count: { ctx, block in
                let box = Unmanaged<CapabilityBox>.fromOpaque(ctx!).takeUnretainedValue()
                guard Int(block) < box.blocks else { return 0 }
                return Int64(box.blockParameters?(Int(block)).count ?? 0)
            },
            copy: { ctx, block, out, capacity in
                let box = Unmanaged<CapabilityBox>.fromOpaque(ctx!).takeUnretainedValue()
                guard Int(block) < box.blocks, let values = box.blockParameters?(Int(block)) else { return 0 }
                let n = min(values.count, Int(capacity))
                for i in 0..<n { out[i] = values[i] }
                return Int64(n)
            })
        var costTable = lth4sa_scheme_cost_api_t(struct_size: UInt32(MemoryLayout<lth4sa_scheme_cost_api_t>.size), reserved: 0,
                                                 parameters: { ctx, bits in
            let box = Unmanaged<CapabilityBox>.fromOpaque(ctx!).takeUnretainedValue()
            let scheme = (0..<box.blocks).map { bits[$0] != 0 }
            return Int64(box.parameters?(scheme) ?? 0)
        })
        init(parameters: (([Bool]) -> Int)?, blockParameters: ((Int) -> [Float])?, gates: (() throws -> GateGradientSource)?, blocks: Int) {
            self.parameters = parameters
            gateFactory = gates
            self.blockParameters = blockParameters
            self.blocks = blocks
        }
    }

    /// Loads the searcher in `spec` (path or id) for a space of `stageSizes` blocks per stage.
    /// `parameters` (a scheme's parameter count) and `blockParameters` (a block's SAM parameter
    /// values) back the host capabilities LTH4SA_HOST_SCHEME_COST and LTH4SA_HOST_SAM_PARAMETERS;
    /// `gates` (made on first use) backs LTH4SA_HOST_GATE_GRADIENTS.
    /// `host` serves the searcher (its generator is what `host.rngState` saves); retained.
    public init(_ spec: String, settings: [String] = [], stageSizes: [Int], host: PluginHostContext, parameters: (([Bool]) -> Int)? = nil,
                blockParameters: ((Int) -> [Float])? = nil, gates: (() throws -> GateGradientSource)? = nil) throws {
        let library = try PluginDiscovery.resolve(spec)
        let (d, api) = try library.table(kind: LTH4SA_KIND_SEARCHER, interface: LTH4SA_SEARCHER_INTERFACE, as: lth4sa_searcher_api_t.self,
                                         role: "searcher", hint: "`searcher` needs a searcher such as libEAN.so")
        self.library = library
        self.host = host
        descriptor = d
        self.api = api
        options = try d.resolveOptions(settings, flag: "`searcherOptions`")
        let blockCount = stageSizes.reduce(0, +)
        blocks = blockCount
        context = Unmanaged.passRetained(CapabilityBox(parameters: parameters, blockParameters: blockParameters, gates: gates, blocks: blockCount))
        let sizes = stageSizes.map { UInt32($0) }
        let names = options.map { strdup($0.0)! }
        defer { names.forEach { free($0) } }
        var values = zip(names, options).map { lth4sa_option_value_t(name: $0.0, value: $0.1.1) }
        var instance: UnsafeMutableRawPointer? = nil
        let ctx = Unmanaged.passUnretained(context.takeUnretainedValue()).toOpaque()
        try sizes.withUnsafeBufferPointer { sizesPtr in
            var space = lth4sa_search_space_t(
                struct_size: UInt32(MemoryLayout<lth4sa_search_space_t>.size), blocks: UInt32(blockCount), stage_count: UInt32(sizes.count),
                reserved: 0, stage_sizes: sizesPtr.baseAddress!,
                host_extension: { ctx, id in
                    let box = Unmanaged<CapabilityBox>.fromOpaque(ctx!).takeUnretainedValue()
                    switch String(cString: id) {
                    case LTH4SA_HOST_SCHEME_COST where box.parameters != nil:
                        return withUnsafePointer(to: &box.costTable) { UnsafeRawPointer($0) }
                    case LTH4SA_HOST_SAM_PARAMETERS where box.blockParameters != nil:
                        return withUnsafePointer(to: &box.statsTable) { UnsafeRawPointer($0) }
                    case LTH4SA_HOST_GATE_GRADIENTS where box.gateFactory != nil:
                        return withUnsafePointer(to: &box.gateTable) { UnsafeRawPointer($0) }
                    default:
                        return nil
                    }
                },
                extension_context: ctx)
            let pluginId = d.id
            try checked(pluginId, "create") { err in
                values.withUnsafeMutableBufferPointer { api.pointee.create(host.table, &space, $0.baseAddress, UInt32($0.count), &instance, err) }
            }
        }
        guard let instance else { throw LTHError("plugin \(d.id): create returned no instance") }
        handle = instance
    }

    deinit {
        api.pointee.destroy(handle)
        context.release()
    }

    public var id: String { descriptor.id }

    /// "<id> <version> <option>=<value>,...": what a saved state belongs to.
    public var identity: String {
        "\(descriptor.id) \(descriptor.version) " + options.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
    }

    /// Schemes of `blocks` bytes each that the searcher proposes. The buffer is a
    /// `GuardedBuffer` filled with 0xA5: every byte of the `count` schemes returned must be
    /// written with 0 or 1, and nothing after them (a scheme of L - 1 or L + 1 bytes is refused
    /// naming the searcher; a write far past the buffer ends the process naming it).
    public func ask() throws -> [[Bool]] {
        let capacity = 4096
        let buffer = try GuardedBuffer(count: capacity * blocks, plugin: id)
        var count: UInt32 = 0
        let box = context.takeUnretainedValue()
        box.hostError = nil
        do {
            try checked(id, "ask") { err in api.pointee.ask(handle, buffer.pointer, UInt32(capacity), &count, err) }
        } catch let e as LTHError {
            throw box.hostError.map { LTHError("\(e.message) (host: \($0))") } ?? e
        }
        guard buffer.slackIntact else {
            throw LTHError("plugin \(id): ask wrote past the \(capacity) x \(blocks) bytes it was given")
        }
        guard count >= 1 && Int(count) <= capacity else { throw LTHError("plugin \(id): ask returned \(count) schemes (expected 1...\(capacity))") }
        let bits = buffer.bytes, used = Int(count) * blocks
        if let at = bits.prefix(used).firstIndex(where: { $0 > 1 }) {
            let bad = bits[at]
            guard bad == GuardedBuffer.fill else {
                throw LTHError("plugin \(id): ask wrote the byte \(bad) into a scheme; every byte must be 0 or 1")
            }
            throw LTHError("plugin \(id): ask left byte \(at % blocks) of scheme \(at / blocks) unwritten; each of the \(count) scheme(s) it returned "
                           + "must fill all \(blocks) bytes (one per block)")
        }
        if let at = bits[used...].firstIndex(where: { $0 != GuardedBuffer.fill }) {
            throw LTHError("plugin \(id): ask returned \(count) scheme(s) of \(blocks) bytes but wrote byte \(at) (past the \(used) it returned); "
                           + "a scheme must be exactly \(blocks) bytes, one per block")
        }
        lastCount = Int(count)
        return (0..<Int(count)).map { j in (0..<blocks).map { bits[j * blocks + $0] != 0 } }
    }

    public func tell(_ scored: [(bits: [Bool], parts: RewardParts)]) throws -> SearchProgress {
        let bytes = scored.map { $0.bits.map { UInt8($0 ? 1 : 0) } }
        var progress = lth4sa_searcher_progress_t(struct_size: UInt32(MemoryLayout<lth4sa_searcher_progress_t>.size), reserved: 0, p_bar: .nan, baseline: .nan)
        try withExtendedLifetime(bytes) {
            var items: [lth4sa_scored_scheme_t] = []
            for (b, s) in zip(bytes, scored) {
                b.withUnsafeBufferPointer { p in
                    items.append(lth4sa_scored_scheme_t(bits: p.baseAddress!, reward: s.parts.reward, accuracy: s.parts.accuracy,
                                                        sparsity: s.parts.sparsity, curiosity: s.parts.curiosity))
                }
            }
            try checked(id, "tell") { err in items.withUnsafeBufferPointer { api.pointee.tell(handle, $0.baseAddress!, UInt32($0.count), &progress, err) } }
        }
        return SearchProgress(pBar: progress.p_bar.isNaN ? nil : progress.p_bar, baseline: progress.baseline.isNaN ? nil : progress.baseline)
    }

    /// The largest searcher state accepted (a state is a few KB to MB in practice).
    public static let maxStateBytes: UInt64 = 1 << 30

    public func saveState() throws -> [UInt8] {
        let reported = api.pointee.state_size(handle)
        guard reported <= Self.maxStateBytes else {
            throw LTHError("plugin \(id): state_size reports \(reported) bytes, more than the \(Self.maxStateBytes) a searcher state may have")
        }
        let size = Int(reported)
        let buffer = try GuardedBuffer(count: size, plugin: id)
        try checked(id, "save") { err in api.pointee.save(handle, buffer.pointer, UInt64(size), err) }
        guard buffer.slackIntact else {
            throw LTHError("plugin \(id): save wrote past the \(size) bytes state_size asked for")
        }
        return Array(buffer.bytes)
    }

    public func loadState(_ state: [UInt8]) throws {
        try checked(id, "load") { err in state.withUnsafeBytes { api.pointee.load(handle, $0.baseAddress!, UInt64(state.count), err) } }
    }
}
