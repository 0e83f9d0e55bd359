import NN
import Tensor
import XCTest

final class OptimizerTests: XCTestCase {
    func testSGDMomentumMatchesPyTorchFormula() {
        let p = Parameter([1])
        p.value[0] = 1
        let sgd = SGD([("w", p)], lr: 0.1, momentum: 0.9, weightDecay: 0.01)
        p.grad[0] = 0.5
        sgd.step()  // g = 0.51, buf = 0.51, w = 1 - 0.051
        XCTAssertEqual(p.value[0], 0.949, accuracy: 1e-6)
        sgd.step()  // g = 0.5 + 0.00949 = 0.50949, buf = 0.9*0.51 + 0.50949 = 0.96849
        XCTAssertEqual(p.value[0], 0.949 - 0.096849, accuracy: 1e-6)
    }

    func testNesterov() {
        let p = Parameter([1])
        let sgd = SGD([("w", p)], lr: 1, momentum: 0.5, nesterov: true)
        p.grad[0] = 1
        sgd.step()  // buf = 1, update = 1 + 0.5 = 1.5
        XCTAssertEqual(p.value[0], -1.5, accuracy: 1e-6)
    }

    func testAdamFirstStepIsLearningRateTimesSign() {
        let p = Parameter([2])
        let adam = Adam([("w", p)], lr: 0.05)
        p.grad[0] = 3; p.grad[1] = -0.2
        adam.step()
        XCTAssertEqual(p.value[0], -0.05, accuracy: 1e-5)
        XCTAssertEqual(p.value[1], 0.05, accuracy: 1e-5)
    }

    func testAdamMinimisesAQuadratic() {
        let p = Parameter([1])
        p.value[0] = 5
        let adam = Adam([("w", p)], lr: 0.1)
        for _ in 0..<500 { p.grad[0] = 2 * (p.value[0] - 2); adam.step() }
        XCTAssertEqual(p.value[0], 2, accuracy: 1e-2)
    }

    func testSchedules() {
        let step = LRSchedule.step(milestones: [81, 122], gamma: 0.1)
        XCTAssertEqual(step.rate(base: 0.1, epoch: 80.9), 0.1, accuracy: 1e-7)
        XCTAssertEqual(step.rate(base: 0.1, epoch: 81), 0.01, accuracy: 1e-7)
        XCTAssertEqual(step.rate(base: 0.1, epoch: 130), 0.001, accuracy: 1e-7)
        let cos = LRSchedule.cosine(epochs: 100)
        XCTAssertEqual(cos.rate(base: 0.1, epoch: 0), 0.1, accuracy: 1e-7)
        XCTAssertEqual(cos.rate(base: 0.1, epoch: 50), 0.05, accuracy: 1e-6)
        XCTAssertEqual(cos.rate(base: 0.1, epoch: 100), 0, accuracy: 1e-7)
        XCTAssertEqual(LRSchedule.constant.rate(base: 0.1, epoch: 0.5, warmup: 1), 0.05, accuracy: 1e-6)
    }
}
