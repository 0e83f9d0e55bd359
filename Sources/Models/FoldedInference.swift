import NN
import Tensor

/// The inference path of one residual block with every batch norm folded into its
/// convolution (`FoldedConvBN`): the body convolutions with their ReLUs and the projection
/// shortcut, run a few images at a time per worker (`depthFirst`), and the last convolution
/// either joined with the shortcut and the ReLU in the same primitive (no attention), or with
/// an SE-like attention's per-image channel scale applied inside it
/// (`BranchAttention.scale`, `FoldedConvBN.forward(_:scaledBy:adding:)`), or followed by the
/// attention's join as in eval mode.
/// A copy of the block's values: `refresh()` after any change of weights or statistics.
final class FoldedBlock {
    fileprivate let body: [FoldedConvBN]
    fileprivate let last: FoldedConvBN
    fileprivate let downsample: FoldedConvBN?

    /// `convolutions`: (conv, bn) from the block's input to its branch output, in order.
    init(_ convolutions: [(Conv2d, BatchNorm2d)], downsample: Downsample?) {
        body = convolutions.dropLast().map { FoldedConvBN($0.0, $0.1) }
        last = FoldedConvBN(convolutions.last!.0, convolutions.last!.1)
        self.downsample = downsample.map { FoldedConvBN($0.conv, $0.bn) }
    }

    func refresh() {
        otherVariant = nil
        for f in body { f.refresh() }
        last.refresh()
        downsample?.refresh()
    }

    /// The last call's body output, shortcut and the body output's per-image channel means
    /// when they were taken (valid while the block does not run again).
    private var lastBranch: (body: Tensor, shortcut: Tensor, means: Tensor?)?
    /// The block's outputs, body outputs and projected shortcuts by batch shape, and per worker
    /// the intermediate body outputs of its images (kept in its cache).
    fileprivate let buffers = BufferPool(), bodyOutputs = BufferPool(), shortcuts = BufferPool(), bodyMeans = BufferPool()
    fileprivate var workerBuffers: [[Tensor]] = []

    /// The output of the last call's other variant (with or without `attention`), made in the
    /// same pass for a following call that reuses the branch.
    private var otherVariant: (attention: BranchAttention?, output: Tensor)?

    /// x [N,H,W,in] -> ReLU(S(x) + A(F(x))) [N,H/s,W/s,out]. `reusingBranch`: x is the input of
    /// the previous call, unchanged, so the body convolutions and the shortcut are taken from
    /// it and only the last convolution and the join run, or nothing when the previous call
    /// made this variant (a scheme that differs from the one evaluated before only from this
    /// block on). `toggling`: see `ResidualBlock.forwardFolded`.
    func forward(_ x: Tensor, attention: BranchAttention?, tail: ResidualTail, reusingBranch: Bool, toggling: BranchAttention?) -> Tensor {
        if reusingBranch, let other = otherVariant, other.attention === attention { return other.output }
        otherVariant = nil
        let h: Tensor, shortcut: Tensor, means: Tensor?
        if reusingBranch, let last = lastBranch {
            (h, shortcut, means) = last
        } else {
            let both = toggling != nil && (attention == nil || attention === toggling) && last.meansComeFromInput
            // an attention may take its squeeze from the last convolution's input means
            // (`scale`): taken while each image group is in its worker's cache
            let (b, s, m, y) = depthFirst(x, joining: attention == nil && !both, means: (attention != nil || both) && last.meansComeFromInput)
            lastBranch = (b, s, m)
            if let y { return y }
            (h, shortcut, means) = (b, s, m)
            if both, let toggling,
               let a = toggling.scale(branchShape: last.conv.outputShape(h.shape), training: false,
                                      fromChannelMeans: { last.outputChannelMeans(h, inputMeans: means) }) {
                let (with, without) = last.forwardBothJoins(h, scaledBy: a, adding: shortcut)
                otherVariant = attention == nil ? (toggling, with) : (nil, without)
                return attention == nil ? without : with
            }
        }
        guard let attention else { return last.forward(h, adding: shortcut, relu: true) }
        let fShape = last.conv.outputShape(h.shape)
        if let a = attention.scale(branchShape: fShape, training: false, fromChannelMeans: { last.outputChannelMeans(h, inputMeans: means) }) {
            return last.forward(h, scaledBy: a, adding: shortcut)  // ReLU(F * A + shortcut), F never written
        }
        return tail.inferJoin(last.forward(h, relu: false), shortcut: shortcut, attention: attention)
    }
}

extension FoldedBlock {
    /// The block image group by image group: each worker of the pool runs the body
    /// convolutions (and, `joining`, the last one with the shortcut and ReLU) on a few images at
    /// a time, so that a group's intermediate activations stay in its cache instead of
    /// streaming the whole batch through memory once per convolution. The body output and the
    /// shortcut are also written out batch-wide (for the attention's join, or a later call
    /// that reuses the branch); with `means`, the body output's per-image channel means too.
    ///     x [N,H,W,I] -> body output [N,Ho,Wo,P], shortcut and (joining) y [N,Ho,Wo,O], means [N,P]
    private func depthFirst(_ x: Tensor, joining: Bool, means: Bool) -> (body: Tensor, shortcut: Tensor, means: Tensor?, output: Tensor?) {
        let n = x.shape[0]
        var imageShapes = [[1] + x.shape.dropFirst()]  // per image: the input, then each body output
        for f in body { imageShapes.append(f.conv.outputShape(imageShapes.last!)) }
        let outShape = last.conv.outputShape(imageShapes.last!)
        let batch = { (image: [Int]) in [n] + image.dropFirst() }
        let h = bodyOutputs.get(batch(imageShapes.last!)), y = joining ? buffers.get(batch(outShape)) : nil
        let hMeans = means ? bodyMeans.get([n, imageShapes.last![3]]) : nil
        let s = downsample == nil ? x : shortcuts.get(batch(outShape))
        let perImage = imageShapes.map { $0.reduce(1, *) }, perOutput = outShape.reduce(1, *)
        let workers = FoldedConvBN.prepareWorkers(body + [last] + (downsample.map { [$0] } ?? []))
        // images per call: the block's input and output within ~2 MB, at most 8 images and a
        // worker's share (measured at b50, ResNet-38 and -164: ~4% faster than 512 KB, which
        // is half a core's L2 here; 8 MB no better)
        let imagesPerCall = max(1, min((n + workers - 1) / workers, (2 << 20) / ((perImage[0] + perOutput) * 4), 8))
        // per worker, room for the intermediate body outputs (all but the last) of one call
        let intermediates = perImage.dropFirst().dropLast().map { imagesPerCall * $0 }
        if workerBuffers.count < workers || zip(workerBuffers[0], intermediates).contains(where: { $0.count < $1 }) {
            workerBuffers = (0..<workers).map { _ in intermediates.map { Tensor([$0]) } }
        }
        last.conv.context.profiler.measure("block infer (by image group)") {
            Threads.parallelForWorkers(n, grain: 1) { worker, images in
                for first in stride(from: images.lowerBound, to: images.upperBound, by: imagesPerCall) {
                    let count = min(imagesPerCall, images.upperBound - first)
                    var input = x.data + first * perImage[0]
                    for (k, f) in body.enumerated() {  // the body BNs carry their ReLU
                        let out = k == body.count - 1 ? h.data + first * perImage[k + 1] : workerBuffers[worker][k].data
                        f.run(count, imageShape: imageShapes[k], input, adding: nil, relu: f.bn.fusedReLU, into: out, worker: worker)
                        input = out
                    }
                    if let hMeans {
                        let p = imageShapes.last!, channels = p[3]
                        for i in 0..<count {
                            Tensor.channelMeans(input + i * perImage.last!, pixels: p[1] * p[2], channels: channels, into: hMeans.data + (first + i) * channels)
                        }
                    }
                    let shortcut = s.data + first * perOutput
                    downsample?.run(count, imageShape: imageShapes[0], x.data + first * perImage[0], adding: nil, relu: false,
                                    into: shortcut, worker: worker)
                    if let y {
                        last.run(count, imageShape: imageShapes.last!, input, adding: shortcut, relu: true, into: y.data + first * perOutput, worker: worker)
                    }
                }
            }
        }
        return (h, s, hMeans, y)
    }
}

extension ResNet {
    /// Builds (first call) or refreshes the folded inference path of the stem and every block
    /// from the current weights and running statistics. Call it again after any change of
    /// those (training, loading, BN recalibration) before `inferFolded`.
    public func foldBatchNorms() {
        if let stem = foldedStem { stem.refresh() } else { foldedStem = FoldedConvBN(conv1, bn1) }
        for block in blocks { block.foldBatchNorms() }
    }

    /// Stem (conv + BN + ReLU folded, then the max pool if any): images -> the first block's input.
    public func stemFolded(_ x: Tensor) -> Tensor {
        guard let stem = foldedStem else { preconditionFailure("stemFolded before foldBatchNorms()") }
        let h = stem.forward(x, relu: true)
        return maxpool?.forward(h) ?? h
    }

    /// images [N, H, W, 3] -> logits [N, classes] in eval mode, with every batch norm folded
    /// (equal to `forward(x, training: false)` up to rounding). Requires `foldBatchNorms()`
    /// since the last change of weights or statistics. Throws an attention plugin's failure.
    public func inferFolded(_ x: Tensor) throws -> Tensor {
        passes.beginForward()
        var h = stemFolded(x)
        for block in blocks { h = block.forwardFolded(h) }
        let logits = fc.forward(pool.forward(h))
        try passes.check()
        return logits
    }
}
