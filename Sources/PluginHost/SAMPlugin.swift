import Foundation
import LTH4SASDK
import NN
import ProcessSupport
import Tensor

/// A SAM plugin: its descriptor, its function table (size-checked) and resolved options.
public final class SAMPlugin {
    public let library: PluginLibrary
    public let descriptor: PluginDescriptor
    public let api: UnsafePointer<lth4sa_sam_api_t>
    /// Every declared option with its value (defaults + `--sam-opt` settings).
    public let options: [(String, Double)]

    /// Loads the SAM from `spec` (path or id) with `key=value` option settings.
    public convenience init(_ spec: String, settings: [String] = []) throws {
        try self.init(library: PluginDiscovery.resolve(spec), settings: settings)
    }

    public init(library: PluginLibrary, settings: [String] = []) throws {
        let (d, api) = try library.table(kind: LTH4SA_KIND_SAM, interface: LTH4SA_SAM_INTERFACE, as: lth4sa_sam_api_t.self,
                                         role: "SAM", hint: "`sam` needs a self-attention module", minimumSize: SAMPlugin.firstTableSize)
        self.library = library
        descriptor = d
        self.api = api
        options = try d.resolveOptions(settings)
        // the functions the ABI requires must be there: a NULL one is refused, never called
        let required: [(String, PartialKeyPath<lth4sa_sam_api_t>)] = [
            ("create", \.create), ("destroy", \.destroy), ("param_count", \.param_count), ("param_info", \.param_info),
            ("bind", \.bind), ("layout", \.layout), ("process", \.process), ("process_backward", \.process_backward)]
        for (name, field) in required {
            let offset = MemoryLayout<lth4sa_sam_api_t>.offset(of: field)!
            guard UnsafeRawPointer(api).load(fromByteOffset: offset, as: UnsafeRawPointer?.self) != nil else {
                throw LTHError("plugin \(d.id): its SAM table has no \(name) function (NULL); the ABI requires it")
            }
        }
        // fields appended after the first version, present only when the table is large enough
        let size = Int(api.pointee.struct_size)
        func has<F>(_ field: KeyPath<lth4sa_sam_api_t, F>) -> Bool {
            size >= MemoryLayout<lth4sa_sam_api_t>.offset(of: field)! + MemoryLayout<F>.size
        }
        prepare = has(\.prepare) ? api.pointee.prepare : nil
        allocations = has(\.allocations) ? api.pointee.allocations : nil
        bufferCount = has(\.buffer_count) ? api.pointee.buffer_count : nil
        bufferInfo = has(\.buffer_info) ? api.pointee.buffer_info : nil
        bindBuffers = has(\.bind_buffers) ? api.pointee.bind_buffers : nil
    }

    /// The SAM table's size in its first version (up to `recalibrate_backward`): plugins built
    /// against that header keep loading.
    static let firstTableSize = MemoryLayout<lth4sa_sam_api_t>.offset(of: \.prepare)!

    /// The optional `prepare` call (nil: not in the plugin's table, or NULL).
    let prepare: (@convention(c) (UnsafeMutableRawPointer, Int32, Int64, Int64, Int64, UnsafeMutablePointer<lth4sa_error_t>) -> lth4sa_status_t)?
    /// The optional `allocations` report (nil: not in the plugin's table, or NULL).
    let allocations: (@convention(c) (UnsafeMutableRawPointer) -> UInt64)?

    /// The optional buffer calls (nil: not in the plugin's table, or NULL; then no buffers).
    let bufferCount: (@convention(c) (UnsafeMutableRawPointer) -> UInt32)?
    let bufferInfo: (@convention(c) (UnsafeMutableRawPointer, UInt32, UnsafeMutablePointer<lth4sa_param_t>, UnsafeMutablePointer<lth4sa_error_t>) -> lth4sa_status_t)?
    let bindBuffers: (@convention(c) (UnsafeMutableRawPointer, UnsafePointer<lth4sa_tensor_t>, UInt32, UnsafeMutablePointer<lth4sa_error_t>) -> lth4sa_status_t)?

    public var id: String { descriptor.id }

    /// "reduction=16,groups=4" style summary for metadata and tables.
    public var optionsText: String {
        options.map { name, v in "\(name)=\(v == v.rounded() ? String(Int(v)) : String(v))" }.joined(separator: ",")
    }

    /// Creates an instance for `channels` served by `host` (retained by the instance),
    /// allocates and initialises its parameters from `rng` and binds them. Throws the plugin's
    /// own message when it refuses.
    public func instantiate(channels: Int, rng: inout RNG, host: PluginHostContext) throws -> SAMInstance {
        try SAMInstance(plugin: self, channels: channels, rng: &rng, host: host)
    }
}

/// Calls a plugin function that reports errors through `lth4sa_error_t`, turning a failure
/// into a one-line LTHError.
func checked(_ plugin: String, _ what: String, at site: String = "", _ call: (UnsafeMutablePointer<lth4sa_error_t>) -> lth4sa_status_t) throws {
    var error = lth4sa_error_t()
    // recorded for a crash report (`lth4sa_crash_install`): which plugin, function and block
    let status = plugin.withCString { p in what.withCString { w in site.withCString { s in
        lth4sa_crash_enter(p, w, s)
        defer { lth4sa_crash_leave() }
        return withUnsafeMutablePointer(to: &error) { call($0) }
    } } }
    guard status == LTH4SA_OK else {
        let message = withUnsafeBytes(of: error.message) { raw -> String in
            let bytes = raw.bindMemory(to: CChar.self)
            let n = bytes.firstIndex(of: 0) ?? bytes.count
            return String(decoding: raw.prefix(n), as: UTF8.self)
        }
        throw LTHError("plugin \(plugin): \(what) failed (status \(status)): \(message.isEmpty ? "no message" : message)")
    }
}

/// A contiguous view of `t` for the ABI (borrowed: valid while `t` lives).
func view(_ t: Tensor) -> lth4sa_tensor_t { view(t.data, shape: t.shape) }

/// A contiguous view of `data` as `dims` (borrowed: valid while the memory lives).
func view(_ data: UnsafeMutablePointer<Float>?, shape dims: [Int]) -> lth4sa_tensor_t {
    var v = lth4sa_tensor_t()
    v.data = data
    v.ndim = Int32(dims.count)
    var step = 1
    withUnsafeMutableBytes(of: &v.shape) { s in
        withUnsafeMutableBytes(of: &v.strides) { st in
            let shape = s.bindMemory(to: Int64.self), strides = st.bindMemory(to: Int64.self)
            for d in stride(from: dims.count - 1, through: 0, by: -1) {
                shape[d] = Int64(dims[d])
                strides[d] = Int64(step)
                step *= dims[d]
            }
        }
    }
    return v
}

func dims(_ ndim: Int32, _ tuple: (Int64, Int64, Int64, Int64)) -> [Int] {
    Array([Int(tuple.0), Int(tuple.1), Int(tuple.2), Int(tuple.3)].prefix(Int(ndim)))
}

/// A placeholder name (never written through) for `param_info` to overwrite.
nonisolated(unsafe) private let noName: UnsafePointer<CChar> = UnsafePointer(strdup("")!)

/// One SAM instance = one set of host-owned parameters, usable at several call sites.
/// Implements `Module` so the parameters appear in the model's state dict under the name
/// the instance is attached with (e.g. `layer1.0.se.fc1.weight`).
public final class SAMInstance: Module {
    public let plugin: SAMPlugin
    public let channels: Int
    let handle: UnsafeMutableRawPointer
    public let parameters: [(String, Parameter)]
    /// The most elements one plugin parameter may have (2^28 floats = 1 GiB).
    public static let maxParameterElements = 1 << 28
    private var layouts: [[Int]: lth4sa_sam_layout_t] = [:]
    /// Number of call slots handed out so far (one per attached block).
    var slotsAssigned = 0

    /// Non-trainable tensors the plugin keeps (its batch norm's running statistics): saved,
    /// restored and averaged over ranks like the host's own, never optimised.
    public let buffers: [(String, Buffer)]

    public var localParameters: [(String, Parameter)] { parameters }
    public var localBuffers: [(String, Buffer)] { buffers }

    /// The host services this instance was created with (kept alive as long as the instance).
    public let host: PluginHostContext

    init(plugin: SAMPlugin, channels: Int, rng: inout RNG, host: PluginHostContext) throws {
        self.plugin = plugin
        self.host = host
        self.channels = channels
        let api = plugin.api.pointee
        let names = plugin.options.map { strdup($0.0)! }
        defer { names.forEach { free($0) } }
        var values = zip(names, plugin.options).map { lth4sa_option_value_t(name: $0.0, value: $0.1.1) }
        var instance: UnsafeMutableRawPointer? = nil
        try checked(plugin.id, "create for \(channels) channels") { err in
            values.withUnsafeMutableBufferPointer { api.create(host.table, Int64(channels), $0.baseAddress, UInt32($0.count), &instance, err) }
        }
        guard let instance else { throw LTHError("plugin \(plugin.id): create returned no instance") }
        handle = instance
        var params: [(String, Parameter)] = []
        for i in 0..<api.param_count(instance) {
            let (name, shape, info) = try SAMInstance.declaration(plugin, instance, i, kind: "parameter", taken: params.map(\.0)) {
                api.param_info(instance, i, $0, $1)
            }
            guard info.`init` != LTH4SA_INIT_COUNTER else {
                throw LTHError("plugin \(plugin.id): parameter \(name) has the counter init rule, which is for buffers only")
            }
            let p = Parameter(shape)
            try SAMInstance.initialise(p.value, info, rng: &rng, what: "parameter \(name)", plugin: plugin.id)
            params.append((name, p))
        }
        parameters = params
        var buffers: [(String, Buffer)] = []
        let bufferCount = plugin.bufferCount?(instance) ?? 0
        if bufferCount > 0 {
            guard let info = plugin.bufferInfo, plugin.bindBuffers != nil else {
                throw LTHError("plugin \(plugin.id): declares \(bufferCount) buffer(s) but its SAM table has no buffer_info or bind_buffers function")
            }
            for i in 0..<bufferCount {
                let (name, shape, declared) = try SAMInstance.declaration(plugin, instance, i, kind: "buffer", taken: params.map(\.0) + buffers.map(\.0)) {
                    info(instance, i, $0, $1)
                }
                guard [LTH4SA_INIT_ZEROS, LTH4SA_INIT_ONES, LTH4SA_INIT_CONSTANT, LTH4SA_INIT_COUNTER].contains(declared.`init`) else {
                    throw LTHError("plugin \(plugin.id): buffer \(name) has init rule \(declared.`init`); buffers start as zeros, ones, a constant or a counter")
                }
                let t = Tensor(shape)
                try SAMInstance.initialise(t, declared, rng: &rng, what: "buffer \(name)", plugin: plugin.id)
                buffers.append((name, Buffer(t, integer: declared.`init` == LTH4SA_INIT_COUNTER)))
            }
        }
        self.buffers = buffers
        try bind()
        try bindBuffers()
    }

    /// Reads declaration `index` through `call` (`param_info` or `buffer_info`) and validates
    /// everything the plugin hands back: name, rank, sizes, uniqueness against `taken`.
    private static func declaration(_ plugin: SAMPlugin, _ instance: UnsafeMutableRawPointer, _ index: UInt32, kind: String, taken: [String],
                                    _ call: (UnsafeMutablePointer<lth4sa_param_t>, UnsafeMutablePointer<lth4sa_error_t>) -> lth4sa_status_t) throws
        -> (name: String, shape: [Int], info: lth4sa_param_t) {
        var info = lth4sa_param_t(name: noName, ndim: 0, init: 0, shape: (0, 0, 0, 0), init_a: 0, init_b: 0)
        let what = kind == "parameter" ? "param_info" : "buffer_info"
        try checked(plugin.id, "\(what)(\(index))") { call(&info, $0) }
        let rawName = withUnsafeBytes(of: &info) { $0.load(fromByteOffset: 0, as: UnsafePointer<CChar>?.self) }
        guard let rawName else { throw LTHError("plugin \(plugin.id): \(kind) \(index) has a NULL name") }
        let name = String(cString: rawName)
        guard !name.isEmpty else { throw LTHError("plugin \(plugin.id): \(kind) \(index) has an empty name") }
        guard !taken.contains(name) else {
            let what = kind == "parameter" ? "two parameters are named '\(name)'" : "buffer '\(name)' has the name of a parameter or another buffer"
            throw LTHError("plugin \(plugin.id): \(what); names must be unique (they are the checkpoint's keys)")
        }
        let ranks: ClosedRange<Int32> = kind == "buffer" ? 0...4 : 1...4  // a buffer may be a scalar (a counter)
        guard ranks.contains(info.ndim) else { throw LTHError("plugin \(plugin.id): \(kind) \(name) has \(info.ndim) dimensions (\(ranks.lowerBound)...4 allowed)") }
        let shape = dims(info.ndim, info.shape)
        guard shape.allSatisfy({ $0 > 0 }) else { throw LTHError("plugin \(plugin.id): \(kind) \(name) has shape \(shape)") }
        var elements = 1
        for d in shape {
            let (product, overflow) = elements.multipliedReportingOverflow(by: d)
            guard !overflow, product <= SAMInstance.maxParameterElements else {
                throw LTHError("plugin \(plugin.id): \(kind) \(name) of shape \(shape) has more than \(SAMInstance.maxParameterElements) elements")
            }
            elements = product
        }
        return (name, shape, info)
    }

    /// Fills `t` by the declaration's init rule.
    private static func initialise(_ t: Tensor, _ info: lth4sa_param_t, rng: inout RNG, what: String, plugin: String) throws {
        switch info.`init` {
        case LTH4SA_INIT_ZEROS, LTH4SA_INIT_COUNTER: t.zero()
        case LTH4SA_INIT_ONES: t.fill(1)
        case LTH4SA_INIT_CONSTANT: t.fill(Float(info.init_a))
        case LTH4SA_INIT_UNIFORM: rng.fillUniform(t, Float(info.init_a), Float(info.init_b))
        case LTH4SA_INIT_NORMAL: rng.fillNormal(t, mean: Float(info.init_a), std: Float(info.init_b))
        case LTH4SA_INIT_LINEAR:
            let bound = Float(1 / max(info.init_a, 1).squareRoot())
            rng.fillUniform(t, -bound, bound)
        default: throw LTHError("plugin \(plugin): \(what) has unknown init rule \(info.`init`)")
        }
    }


    deinit { plugin.api.pointee.destroy(handle) }

    /// What the last `prepare` covered: call slots, images, height, width (nil: not prepared).
    private var prepared: (calls: Int, batch: Int, height: Int, width: Int)?

    /// Calls the plugin's `prepare` (when it has one) so that call `slot` on an input of
    /// `shape` [B, H, W, C] finds everything allocated: again only when a size grows (each to
    /// the largest seen).
    func prepare(slot: Int, shape: [Int]) throws {
        guard let prepare = plugin.prepare else { return }
        let need = (calls: max(slot + 1, slotsAssigned, prepared?.calls ?? 0), batch: max(shape[0], prepared?.batch ?? 0),
                    height: max(shape[1], prepared?.height ?? 0), width: max(shape[2], prepared?.width ?? 0))
        if let p = prepared, p == need { return }
        try checked(plugin.id, "prepare for \(need.calls) call(s) of [\(need.batch), \(need.height), \(need.width), \(channels)]") {
            prepare(handle, Int32(need.calls), Int64(need.batch), Int64(need.height), Int64(need.width), $0)
        }
        prepared = need
    }

    /// Heap allocations the plugin reports for this instance (nil: it does not report them).
    public var allocations: UInt64? { plugin.allocations.map { $0(handle) } }

    /// Whether the SAM carries state from block to block (DIA).
    public var isStateful: Bool {
        guard let l = try? layout([1, 8, 8, channels]) else { return false }
        return l.state_count > 0
    }

    /// Hands the parameter storage to the plugin (again after the host replaced tensors).
    public func bind() throws {
        let values = parameters.map { view($0.1.value) }, grads = parameters.map { view($0.1.grad) }
        try checked(plugin.id, "bind") { err in
            values.withUnsafeBufferPointer { v in grads.withUnsafeBufferPointer { g in
                plugin.api.pointee.bind(handle, v.baseAddress!, g.baseAddress!, UInt32(parameters.count), err)
            } }
        }
    }

    /// Hands the buffer storage to the plugin (nothing when it declares none).
    public func bindBuffers() throws {
        guard !buffers.isEmpty, let bindBuffers = plugin.bindBuffers else { return }
        let values = buffers.map { view($0.1.tensor) }
        try checked(plugin.id, "bind_buffers") { err in
            values.withUnsafeBufferPointer { bindBuffers(handle, $0.baseAddress!, UInt32(buffers.count), err) }
        }
    }

    /// The plugin's intermediate shapes for an input shape (cached).
    func layout(_ shape: [Int]) throws -> lth4sa_sam_layout_t {
        if let l = layouts[shape] { return l }
        var input = view(Tensor([0]))
        input.data = nil
        input.ndim = 4
        input.shape = (Int64(shape[0]), Int64(shape[1]), Int64(shape[2]), Int64(shape[3]))
        var out = lth4sa_sam_layout_t()
        out.struct_size = UInt32(MemoryLayout<lth4sa_sam_layout_t>.size)  // what this host knows (the plugin writes no further)
        try checked(plugin.id, "layout for \(shape)") { plugin.api.pointee.layout(handle, &input, &out, $0) }
        if Int(out.struct_size) < MemoryLayout<lth4sa_sam_layout_t>.offset(of: \.flags)! + 4 { out.flags = 0 }  // an older plugin
        let attention = dims(out.attention_ndim, out.attention_shape)
        guard attention.count == 4, attention[0] == shape[0],
              [1, shape[1]].contains(attention[1]), [1, shape[2]].contains(attention[2]),
              attention[3] >= 1, shape[3] % attention[3] == 0 else {
            throw LTHError("plugin \(plugin.id): attention shape \(attention) does not broadcast against \(shape)")
        }
        layouts[shape] = out
        return out
    }
}
