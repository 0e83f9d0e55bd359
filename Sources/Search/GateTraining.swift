import Models
import NN
import Tensor

/// What differentiable searchers (DARTS) need from the host: weight steps and validation
/// gradients with continuous gates w_l in [0, 1] on the blocks' attentions.
public protocol GateGradientSource: AnyObject {
    /// One weight step on the next sub-training batch with `gates`; returns its loss.
    func trainWeights(gates: [Double]) throws -> Double
    /// The next validation batch's loss and dLoss/dgate (weights unchanged).
    func validationGradient(gates: [Double]) throws -> (loss: Double, gradient: [Double])
}

/// First-order DARTS on a supernet (METHOD.md section 5): every block's attention wrapped in a
/// `GatedAttention`, the weights trained on sub-training batches with the current gates, and
/// the validation loss differentiated with respect to the gates. Works on the network it is
/// given, which must be a copy of the supernet (the search's evaluator must keep the original).
/// Used by the host capability LTH4SA_HOST_GATE_GRADIENTS; one thread at a time.
public final class GateTrainer: GateGradientSource {
    public let net: ResNet
    public let gates: [GatedAttention]
    let optimizer: Optimizer
    let nextTrainBatch: () -> (images: Tensor, labels: [Int32])
    let nextValidationBatch: () -> (images: Tensor, labels: [Int32])
    private let loss = SoftmaxCrossEntropy()

    /// Wraps the attentions of `net` (every block must have one: a Full-SA or Full-Share
    /// supernet). `optimizer` updates `net`'s parameters; the batch closures cycle through the
    /// sub-training and validation sets.
    public init(net: ResNet, optimizer: Optimizer, nextTrainBatch: @escaping () -> (images: Tensor, labels: [Int32]),
                nextValidationBatch: @escaping () -> (images: Tensor, labels: [Int32])) throws {
        let attached = net.blocks.map { $0.attention }
        guard attached.allSatisfy({ $0 != nil }) else { throw LTHError("gate training needs a supernet with an attention at every block") }
        gates = attached.map { GatedAttention($0!) }
        for (block, gate) in zip(net.blocks, gates) { block.attention = gate }
        self.net = net
        self.optimizer = optimizer
        self.nextTrainBatch = nextTrainBatch
        self.nextValidationBatch = nextValidationBatch
    }

    /// The training-mode loss of (images, labels) with `gates` and its gradient with respect
    /// to every gate; with `updateWeights` the weights then take one optimizer step.
    public func lossAndGateGradient(gates values: [Double], images: Tensor, labels: [Int32], updateWeights: Bool) throws -> (loss: Double, gradient: [Double]) {
        guard values.count == gates.count else { throw LTHError("\(values.count) gate values for \(gates.count) blocks") }
        for (gate, w) in zip(gates, values) {
            guard w.isFinite && w >= 0 && w <= 1 else { throw LTHError("gate value \(w) is outside [0, 1]") }
            gate.gate = w
            gate.zeroGateGradient()
        }
        net.zeroGrad()
        let out = loss(try net.forward(images, training: true), labels)
        guard out.loss.isFinite else { throw LTHError("gate training diverged (loss \(out.loss)); lower the weight learning rate") }
        try net.backward(out.gradient)
        if updateWeights { optimizer.step() }
        return (out.loss, gates.map { $0.gateGradient })
    }

    /// One weight step on the next sub-training batch; returns its loss.
    public func trainWeights(gates values: [Double]) throws -> Double {
        let b = nextTrainBatch()
        return try lossAndGateGradient(gates: values, images: b.images, labels: b.labels, updateWeights: true).loss
    }

    /// The next validation batch's loss and dLoss/dgate (weights unchanged).
    public func validationGradient(gates values: [Double]) throws -> (loss: Double, gradient: [Double]) {
        let b = nextValidationBatch()
        return try lossAndGateGradient(gates: values, images: b.images, labels: b.labels, updateWeights: false)
    }
}
