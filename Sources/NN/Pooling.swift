import CKernels
import Tensor

/// Global average pooling: x [N, H, W, C] -> y [N, C].
public final class GlobalAvgPool: Module {
    private let outputs = BufferPool(), grads = BufferPool()
    private var inputShape: [Int] = []
    /// Where it runs (a network's layers share one).
    public let context: ComputeContext
    public init(context: ComputeContext = ComputeContext()) { self.context = context }

    public func forward(_ x: Tensor) -> Tensor {
        inputShape = x.shape
        let y = outputs.get([x.shape[0], x.shape[3]])
        ChannelOps.of(context).mean(x, into: y)
        return y
    }

    /// dx[n, h, w, c] = dy[n, c] / (H*W)
    public func backward(_ dy: Tensor) -> Tensor {
        let dx = grads.get(inputShape)
        ChannelOps.meanBackward(dy, into: dx, accumulate: false)
        return dx
    }
}

/// Max pooling (the ImageNet stem's 3x3 stride-2 pad-1), computed by oneDNN.
///
///     x [N, H, W, C] -> y [N, Ho, Wo, C],  Ho = (H + 2*pad - k) / stride + 1
public final class MaxPool2d: Module {
    public let kernel: Int, stride: Int, padding: Int
    private var plans: [[Int]: Plan] = [:]
    private var current: Plan?
    /// Where its primitives run (a network's layers share one).
    public let context: ComputeContext
    public init(kernel: Int, stride: Int, padding: Int, context: ComputeContext = ComputeContext()) {
        self.context = context
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
    }

    /// [N, H, W, C] -> [N, Ho, Wo, C].
    public func outputShape(_ x: [Int]) -> [Int] {
        [x[0], (x[1] + 2 * padding - kernel) / stride + 1, (x[2] + 2 * padding - kernel) / stride + 1, x[3]]
    }

    public func forward(_ x: Tensor) -> Tensor {
        let plan = plans[x.shape] ?? Plan(self, x.shape)
        plans[x.shape] = plan
        current = plan
        plan.forward.execute([
            (Int32(DNNL_ARG_SRC), UnsafeMutableRawPointer(x.data)),
            (Int32(DNNL_ARG_DST), UnsafeMutableRawPointer(plan.output.data)),
            (Int32(DNNL_ARG_WORKSPACE), plan.workspace.pointer),
        ])
        return plan.output
    }

    /// dx: dy routed to the arg-max of each window.
    public func backward(_ dy: Tensor) -> Tensor {
        guard let plan = current else { fatalError("max pool backward before forward") }
        plan.backward.execute([
            (Int32(DNNL_ARG_DIFF_DST), UnsafeMutableRawPointer(dy.data)),
            (Int32(DNNL_ARG_DIFF_SRC), UnsafeMutableRawPointer(plan.inputGrad.data)),
            (Int32(DNNL_ARG_WORKSPACE), plan.workspace.pointer),
        ])
        return plan.inputGrad
    }

    final class Plan {
        let forward: Primitive, backward: Primitive
        let workspace: RawBuffer
        let output: Tensor, inputGrad: Tensor
        init(_ p: MaxPool2d, _ xShape: [Int]) {
            let yShape = p.outputShape(xShape)
            var src = DNNL.nhwc(xShape), dst = DNNL.nhwc(yShape)
            let k: [Int64] = [Int64(p.kernel), Int64(p.kernel)], s: [Int64] = [Int64(p.stride), Int64(p.stride)]
            let pad: [Int64] = [Int64(p.padding), Int64(p.padding)], dil: [Int64] = [0, 0]
            var fd = dnnl_pooling_v2_desc_t()
            DNNL.check(dnnl_pooling_v2_forward_desc_init(&fd, dnnl_forward_training, dnnl_pooling_max, &src, &dst, s, k, dil, pad, pad), "pool fwd desc")
            let fwd = withUnsafePointer(to: &fd) { Primitive(desc: $0, context: p.context) }
            forward = fwd
            var bd = dnnl_pooling_v2_desc_t()
            DNNL.check(dnnl_pooling_v2_backward_desc_init(&bd, dnnl_pooling_max, &src, &dst, s, k, dil, pad, pad), "pool bwd desc")
            backward = withUnsafePointer(to: &bd) { Primitive(desc: $0, hint: fwd, context: p.context) }
            workspace = RawBuffer(bytes: DNNL.bytes(fwd.argDesc(Int32(DNNL_ARG_WORKSPACE))))
            output = Tensor(yShape)
            inputGrad = Tensor(xShape)
        }
    }
}
