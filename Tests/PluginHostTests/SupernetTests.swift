import Foundation
import Models
import NN
import PluginHost
import Tensor
import XCTest

final class SupernetTests: XCTestCase {
    /// A sub-network selected in the supernet computes exactly what a network built with that
    /// scheme and the same weights computes (eval mode), for per-block, shared and stateful SAMs.
    func testSubNetworkEqualsStandAloneNetwork() throws {
        for (plugin, mode) in [("SE", AttachMode.fullSA), ("SE", .fullShare), ("DIA", .fullShare)] {
            let sam = try SAMPlugin(ReferenceTests.repository.appendingPathComponent("plugins/lib\(plugin).so").path)
            let spec = try ModelSpec("resnet-bottleneck-20")  // 2 blocks per stage, 64/128/256 channels
            let big = ResNet(spec, classes: 5, seed: 1)
            try SAMAttacher.attach(sam, to: big, mode: mode, scheme: .all(true, stageSizes: spec.blocksPerStage), seed: 2)
            var rng = RNG(seed: 3)
            for (name, p) in big.namedParameters() where name.contains(".\(sam.id).") { rng.fillNormal(p.value, std: 0.3) }
            let supernet = try Supernet(big)
            // another sub-network first: state chains (DIA) must not leak from one pass into the next
            supernet.apply(try Scheme(parsing: "11-10-10", stageSizes: spec.blocksPerStage))
            let warm = Tensor([2, 32, 32, 3])
            rng.fillNormal(warm, std: 1)
            _ = try big.forward(warm, training: false)
            let scheme = try Scheme(parsing: "10-11-01", stageSizes: spec.blocksPerStage)
            supernet.apply(scheme)
            let small = ResNet(spec, classes: 5, seed: 9)
            try SAMAttacher.attach(sam, to: small, mode: mode, scheme: scheme, seed: 4)
            let bigParams = Dictionary(uniqueKeysWithValues: big.namedParameters().map { ($0.0, $0.1) })
            for (name, p) in small.namedParameters() {
                let source = try XCTUnwrap(bigParams[name], "\(name) missing from the supernet")
                p.value.copy(from: source.value)
                p.touch()
            }
            let x = Tensor([2, 32, 32, 3])
            rng.fillNormal(x, std: 1)
            XCTAssertEqual(supernet.parameterCount(scheme), small.parameterCount, "\(plugin) \(mode.rawValue)")
            let a = try big.forward(x, training: false).clone(), b = try small.forward(x, training: false).clone()
            XCTAssertLessThan(a.maxAbsDiff(b), 1e-5, "\(plugin) \(mode.rawValue)")
            // and the all-zeros scheme is the original network
            supernet.apply(.all(false, stageSizes: spec.blocksPerStage))
            XCTAssertTrue(big.blocks.allSatisfy { $0.attention == nil })
        }
    }

    func testSchemeSamplingRate() throws {
        let sam = try SAMPlugin(ReferenceTests.repository.appendingPathComponent("plugins/libSE.so").path)
        let net = ResNet(try ModelSpec("resnet38"), classes: 10, seed: 0)
        try SAMAttacher.attach(sam, to: net, mode: .fullSA, scheme: .all(true, stageSizes: [4, 4, 4]), seed: 0)
        let supernet = try Supernet(net)
        var rng = RNG(seed: 5)
        for p in [0.2, 0.5, 0.8] {
            let ratio = (0..<2000).map { _ in supernet.sample(keepProbability: p, rng: &rng).connectionRatio }.reduce(0, +) / 2000
            XCTAssertEqual(ratio, p, accuracy: 0.02)
        }
        XCTAssertThrowsError(try Supernet(ResNet(try ModelSpec("resnet38"), classes: 10, seed: 0)))
    }
}
