import NN
import Tensor

/// The inference path of one residual block with every batch norm folded into its
/// convolution (`FoldedConvBN`): the body convolutions with their ReLUs, the projection
/// shortcut, and the last convolution either joined with the shortcut and the ReLU in one
/// primitive (no attention at the block, or an SE-like one whose per-image channel scale is
/// applied to the convolution's weights image by image) or followed by the attention's join
/// as in eval mode.
/// A copy of the block's values: `refresh()` after any change of weights or statistics.
final class FoldedBlock {
    private let body: [FoldedConvBN]
    private let last: FoldedConvBN
    private let downsample: FoldedConvBN?

    /// `convolutions`: (conv, bn) from the block's input to its branch output, in order.
    init(_ convolutions: [(Conv2d, BatchNorm2d)], downsample: Downsample?) {
        body = convolutions.dropLast().map { FoldedConvBN($0.0, $0.1) }
        last = FoldedConvBN(convolutions.last!.0, convolutions.last!.1)
        self.downsample = downsample.map { FoldedConvBN($0.conv, $0.bn) }
    }

    func refresh() {
        for f in body { f.refresh() }
        last.refresh()
        downsample?.refresh()
    }

    /// The last call's body output and shortcut (valid while their layers do not run again).
    private var lastBranch: (body: Tensor, shortcut: Tensor)?

    /// x [N,H,W,in] -> ReLU(S(x) + A(F(x))) [N,H/s,W/s,out]. `reusingBranch`: x is the input of
    /// the previous call, unchanged, so the body convolutions and the shortcut are taken from
    /// it and only the last convolution and the join run (a scheme that differs from the one
    /// evaluated before only from this block on).
    func forward(_ x: Tensor, attention: BranchAttention?, tail: ResidualTail, reusingBranch: Bool) -> Tensor {
        let h: Tensor, shortcut: Tensor
        if reusingBranch, let last = lastBranch {
            (h, shortcut) = last
        } else {
            var b = x
            for f in body { b = f.forward(b, relu: f.bn.fusedReLU) }  // the body BNs carry their ReLU
            (h, shortcut) = (b, downsample?.forward(x, relu: false) ?? x)
            lastBranch = (h, shortcut)
        }
        guard let attention else { return last.forward(h, adding: shortcut, relu: true) }
        let fShape = last.conv.outputShape(h.shape)
        if let a = attention.scale(branchShape: fShape, fromChannelMeans: { last.outputChannelMeans(h) }) {
            return last.forward(h, scaledBy: a, adding: shortcut)  // ReLU(F * A + shortcut), F never written
        }
        return tail.inferJoin(last.forward(h, relu: false), shortcut: shortcut, attention: attention)
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
