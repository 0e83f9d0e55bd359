import NN
import Tensor

/// Which ResNet to build: CIFAR basic (6n+2) / bottleneck (9n+2), or ImageNet ResNet-50.
public struct ModelSpec: Equatable, Sendable, CustomStringConvertible {
    public enum Family: String, Sendable { case cifarBasic, cifarBottleneck, imagenetBottleneck }
    public let name: String
    public let family: Family
    /// Blocks per stage.
    public let blocksPerStage: [Int]

    public var description: String { name }
    public var isCIFAR: Bool { family != .imagenetBottleneck }
    public var blockCount: Int { blocksPerStage.reduce(0, +) }
    /// Input image side the model is meant for.
    public var imageSize: Int { isCIFAR ? 32 : 224 }

    public static let knownNames = ["resnet20", "resnet38", "resnet56", "resnet110", "resnet164", "resnet50",
                                    "resnet-basic-N (N = 6n+2)", "resnet-bottleneck-N (N = 9n+2)"]

    /// A lower bound of the memory (bytes) training this model at `batch` with `classes` needs:
    /// 2 floats per block-output element per image (every block keeps its last convolution's
    /// output and its join's output for backward; the peak RSS of `bench train` at batch 128 is
    /// 4.5 times that element count in floats for resnet38, 1.07 GB, and 3.0 times for
    /// resnet164, 3.13 GB) plus the classifier's weights, gradients and momentum.
    /// For refusing the impossible up front, not for planning.
    public func trainingMemoryLowerBound(batch: Int, classes: Int) -> Double {
        let cifar = isCIFAR
        let planes: [Double] = cifar ? [16, 32, 64] : [64, 128, 256, 512]
        let expansion: Double = family == .cifarBasic ? 1 : 4
        var side: Double = cifar ? 32 : 56
        var perImage = 0.0
        for (s, blocks) in blocksPerStage.enumerated() {
            if s > 0 { side = (side / 2).rounded(.up) }
            perImage += Double(blocks) * side * side * planes[s] * expansion
        }
        let features = planes.last! * expansion
        return 4 * 2 * perImage * Double(batch) + 4 * 3 * Double(classes) * (features + 1) + 4 * 2 * Double(batch) * Double(classes)
    }

    /// The deepest `resnet-basic-N` / `resnet-bottleneck-N` accepted.
    public static let maxDepth = 2000

    /// Parses `resnet20`, `resnet38`, `resnet56`, `resnet110`, `resnet164`, `resnet50`,
    /// `resnet-basic-N` (N = 6n+2) and `resnet-bottleneck-N` (N = 9n+2).
    public init(_ name: String) throws {
        self.name = name
        let named: [String: (Family, Int)] = [
            "resnet20": (.cifarBasic, 20), "resnet56": (.cifarBasic, 56), "resnet110": (.cifarBasic, 110),
            "resnet38": (.cifarBottleneck, 38), "resnet164": (.cifarBottleneck, 164),
        ]
        var family: Family, depth: Int
        if name == "resnet50" {
            self.family = .imagenetBottleneck
            blocksPerStage = [3, 4, 6, 3]
            return
        } else if let (f, d) = named[name] {
            (family, depth) = (f, d)
        } else if name.hasPrefix("resnet-basic-"), let d = Int(name.dropFirst("resnet-basic-".count)) {
            (family, depth) = (.cifarBasic, d)
        } else if name.hasPrefix("resnet-bottleneck-"), let d = Int(name.dropFirst("resnet-bottleneck-".count)) {
            (family, depth) = (.cifarBottleneck, d)
        } else {
            throw LTHError("unknown model '\(name)'; expected one of \(ModelSpec.knownNames.joined(separator: ", "))")
        }
        let per = family == .cifarBasic ? 6 : 9
        guard depth <= ModelSpec.maxDepth else {
            throw LTHError("model '\(name)': depth \(depth) is beyond the supported \(ModelSpec.maxDepth) layers (ResNet-1001 is the deepest CIFAR ResNet published)")
        }
        guard depth >= per + 2, (depth - 2) % per == 0 else {
            throw LTHError("model '\(name)': depth \(depth) is not \(per)n+2 for n >= 1 (\(family == .cifarBasic ? "basic" : "bottleneck") blocks)")
        }
        self.family = family
        blocksPerStage = Array(repeating: (depth - 2) / per, count: 3)
    }
}

/// A ResNet on NHWC images: stem, stages of residual blocks, global average pool, FC.
/// Module names follow the PyTorch definitions (`conv1`, `bn1`, `layer1.0.conv1`, `fc`), so
/// `state_dict` keys match. Blocks are indexed globally (block 0 first) and per stage.
public final class ResNet: Module {
    public let spec: ModelSpec
    public let classes: Int
    /// Pass counters and the attention-failure slot of this network (shared with its SAM sites).
    public let passes = PassContext()
    /// The gradient buffers every layer of this network (and its SAM sites) hands out.
    public let gradients = GradientRing()
    /// Transient activations shared by all blocks (one buffer per shape): outputs the next
    /// layer consumes at once and backward recomputes, so training keeps about 5/8 of the
    /// activations of storing every layer's output.
    let scratch = BufferPool()
    public let conv1: Conv2d, bn1: BatchNorm2d
    /// The stem's folded inference convolution (`foldBatchNorms()`).
    var foldedStem: FoldedConvBN?
    /// Called during `backward` with the modules whose parameter gradients have just become
    /// final: the classifier, then every stage (the last first), then the stem. Data-parallel
    /// training starts their reduction over the ranks while backward goes on.
    public var onGradientsReady: (([Module]) -> Void)? = nil
    public let maxpool: MaxPool2d?
    public let stages: [Stage]
    public let pool: GlobalAvgPool
    public let fc: Linear

    public var children: [(String, Module)] {
        [("conv1", conv1), ("bn1", bn1)] + stages.enumerated().map { ("layer\($0.offset + 1)", $0.element) } + [("fc", fc)]
    }

    /// All residual blocks in order (block 0 first): where schemes' bits apply.
    public var blocks: [ResidualBlock] { stages.flatMap { $0.blocks } }

    /// Which kernels run the backward of the bottleneck blocks' 1x1 convolutions and the batch
    /// norms around them (`BackwardKernels`); `.fused` by default.
    public var backwardKernels: BackwardKernels {
        get { blocks.contains { ($0 as? Bottleneck)?.fusesPointwiseBackward == false } ? .onednn : .fused }
        set { for case let block as Bottleneck in blocks { block.fusesPointwiseBackward = newValue == .fused } }
    }

    /// The batch norms of each block (branch and projection shortcut), block 0 first.
    public var blockNorms: [[BatchNorm2d]] {
        func norms(_ m: Module) -> [BatchNorm2d] { (m as? BatchNorm2d).map { [$0] } ?? m.children.flatMap { norms($0.1) } }
        return blocks.map(norms)
    }

    /// The compute resources every layer of this network runs on (engine, stream, scratch,
    /// caches, profiler): the network's own unless given.
    public let context: ComputeContext

    public init(_ spec: ModelSpec, classes: Int, seed: UInt64, context: ComputeContext = ComputeContext()) {
        self.spec = spec
        self.classes = classes
        self.context = context
        pool = GlobalAvgPool(context: context)
        let planes: [Int]
        switch spec.family {
        case .cifarBasic, .cifarBottleneck:
            conv1 = Conv2d(3, 16, kernel: 3, padding: 1, gradients: gradients, context: context)
            bn1 = BatchNorm2d(16, fusedReLU: true, gradients: gradients, context: context)
            maxpool = nil
            planes = [16, 32, 64]
        case .imagenetBottleneck:
            conv1 = Conv2d(3, 64, kernel: 7, stride: 2, padding: 3, gradients: gradients, context: context)
            bn1 = BatchNorm2d(64, fusedReLU: true, gradients: gradients, context: context)
            maxpool = MaxPool2d(kernel: 3, stride: 2, padding: 1, context: context)
            planes = [64, 128, 256, 512]
        }
        conv1.needsInputGrad = false
        var inC = conv1.outChannels
        var stages: [Stage] = []
        for (s, n) in spec.blocksPerStage.enumerated() {
            var blocks: [ResidualBlock] = []
            for b in 0..<n {
                let stride = (s > 0 && b == 0) ? 2 : 1
                let block: ResidualBlock = spec.family == .cifarBasic
                    ? BasicBlock(inC, planes[s], stride: stride, gradients: gradients, scratch: scratch, context: context)
                    : Bottleneck(inC, planes[s], stride: stride, gradients: gradients, scratch: scratch, context: context)
                inC = block.outChannels
                blocks.append(block)
            }
            stages.append(Stage(blocks))
        }
        self.stages = stages
        fc = Linear(inC, classes)
        var rng = RNG(seed: seed)
        initialize(&rng)
    }

    /// Conv weights N(0, 2/(k*k*out)), BN gamma 1 / beta 0, FC PyTorch-default uniform.
    public func initialize(_ rng: inout RNG) {
        var convs: [Conv2d] = []
        func collect(_ m: Module) {
            if let c = m as? Conv2d { convs.append(c) }
            for (_, child) in m.children { collect(child) }
        }
        collect(self)
        for c in convs { c.initialize(&rng) }
        fc.initialize(&rng)
    }

    /// images [N, H, W, 3] -> logits [N, classes]. Throws the failure of an attention plugin
    /// during the pass. The logits stay valid until the next forward. `blockOutput`: told each
    /// block's output as it is made (block 0 first; valid until the next forward), for
    /// diagnostics and tests.
    public func forward(_ x: Tensor, training: Bool, blockOutput: ((Int, Tensor) -> Void)? = nil) throws -> Tensor {
        passes.beginForward()
        var h = bn1.forward(conv1.forward(x), training: training)
        if let mp = maxpool { h = mp.forward(h) }
        for (index, block) in blocks.enumerated() {
            h = block.forward(h, training: training)
            blockOutput?(index, h)
        }
        let logits = fc.forward(pool.forward(h))
        try passes.check()
        return logits
    }

    /// dlogits [N, classes] -> parameter gradients (accumulated). Returns the image gradient
    /// only if `conv1.needsInputGrad` was set (off by default: training never needs it).
    @discardableResult
    public func backward(_ dLogits: Tensor) throws -> Tensor? {
        passes.beginBackward()
        var d = pool.backward(fc.backward(dLogits))
        onGradientsReady?([fc])
        // Each block but the first fuses the join ReLU backward of the block before it.
        for (s, stage) in stages.enumerated().reversed() {
            for (b, block) in stage.blocks.enumerated().reversed() {
                let first = s == 0 && b == 0, last = s == stages.count - 1 && b == stage.blocks.count - 1
                d = block.backward(d, outputMasked: !last, maskInput: !first)
            }
            onGradientsReady?([stage])  // a stage's shared modules get gradients from its own blocks only
        }
        if let mp = maxpool { d = mp.backward(d) }
        let dStem = bn1.backward(d, overwriting: true)
        let dx: Tensor?
        if conv1.needsInputGrad { dx = conv1.backward(dStem) } else { conv1.backwardWeights(dStem); dx = nil }
        onGradientsReady?([conv1, bn1])
        try passes.check()
        return dx
    }

    /// One row per layer group for `lth4sa info`: name, kind, output shape (per image),
    /// parameters, and the multiply-adds of one image's forward pass through its convolutions
    /// (direct count: output elements x input channels x kernel area) or the classifier.
    public func layerTable() -> [(name: String, kind: String, output: String, params: Int, multiplyAdds: Int)] {
        var rows: [(String, String, String, Int, Int)] = []
        func count(_ m: Module) -> Int { m.parameterCount }
        func text(_ shape: [Int]) -> String { "\(shape[1])x\(shape[2])x\(shape[3])" }
        var x = [1, spec.imageSize, spec.imageSize, 3]
        let stem = ResNet.multiplyAdds(conv1, x)
        x = stem.output
        rows.append(("conv1+bn1", "conv\(conv1.kernel)x\(conv1.kernel) \(conv1.inChannels)->\(conv1.outChannels)", text(x), count(conv1) + count(bn1), stem.count))
        if let maxpool {
            x = maxpool.outputShape(x)
            rows.append(("maxpool", "max \(maxpool.kernel)x\(maxpool.kernel)/\(maxpool.stride)", text(x), 0, 0))
        }
        for (s, stage) in stages.enumerated() {
            for (b, block) in stage.blocks.enumerated() {
                let (branch, shortcut) = block.convolutions
                var macs = shortcut.map { ResNet.multiplyAdds($0, x).count } ?? 0
                for conv in branch {
                    let step = ResNet.multiplyAdds(conv, x)
                    (x, macs) = (step.output, macs + step.count)
                }
                let kind = (block is BasicBlock ? "basic" : "bottleneck") + (block.stride > 1 ? " /2" : "") + (shortcut != nil ? " +proj" : "")
                rows.append(("layer\(s + 1).\(b)", kind, text(x), count(block), macs))
            }
        }
        rows.append(("fc", "linear \(fc.inFeatures)->\(fc.outFeatures)", "\(classes)", count(fc), fc.inFeatures * fc.outFeatures))
        return rows
    }

    /// Convolution `c` on one image of shape `x` ([1, H, W, C]): its output shape and
    /// multiply-adds (Ho * Wo * out * in * k * k).
    private static func multiplyAdds(_ c: Conv2d, _ x: [Int]) -> (output: [Int], count: Int) {
        let y = c.outputShape(x)
        return (y, y[1] * y[2] * y[3] * c.inChannels * c.kernel * c.kernel)
    }

    /// Multiply-adds of one image's forward pass through every convolution and the classifier
    /// (direct count; batch norms, ReLUs, pooling and attentions are not counted). ResNet-50 at
    /// 224x224: 4.09 G.
    public var forwardMultiplyAdds: Int { layerTable().reduce(0) { $0 + $1.multiplyAdds } }

    /// Floating-point operations of one image's training step through the convolutions and the
    /// classifier: forward, data gradient and weight gradient, 2 per multiply-add each, less
    /// the stem's data gradient, which training never computes.
    public var trainingFLOPs: Int {
        let table = layerTable()
        return 2 * (3 * table.reduce(0) { $0 + $1.multiplyAdds } - table[0].multiplyAdds)
    }
}
