import Foundation
import PluginHost
import Tensor
import XCTest

/// Plugins against PyTorch reference vectors (Tests/Fixtures/vectors, regenerated and checked by
/// scripts/reference_vectors.py): relative error < 1e-4.
final class ReferenceTests: XCTestCase {
    static var repository: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    static func plugin(_ name: String) throws -> SAMPlugin {
        let path = repository.appendingPathComponent("plugins/lib\(name).so").path
        guard FileManager.default.fileExists(atPath: path) else {
            throw LTHError("\(path) missing: build the plugins first (make -C Plugins, done by scripts/setup.sh)")
        }
        return try SAMPlugin(path)
    }

    static var vectors: URL { repository.appendingPathComponent("Tests/Fixtures/vectors") }

    /// Every tensor of the case compared: outputs, input gradients, and the gradient of each parameter.
    func check(_ plugin: String, _ folder: String, tensors: Int = 4) throws {
        let dir = Self.vectors.appendingPathComponent(folder)
        let results = try ReferenceCheck.run(plugin: try Self.plugin(plugin), directory: dir.path)
        XCTAssertGreaterThanOrEqual(results.count, tensors)
        for r in results { XCTAssertLessThan(r.relativeError, 1e-4, "\(folder) \(r.name)") }
    }

    func testSE() throws { try check("SE", "se") }
    func testSESharedAcrossTwoCalls() throws { try check("SE", "se_shared") }
    func testSGE() throws { try check("SGE", "sge") }
    func testDIAStatefulWithScheme1011() throws { try check("DIA", "dia") }
    func testECAWithTheAdaptiveKernel() throws { try check("ECA", "eca", tensors: 3) }  // output0, dinput0, grad_conv.weight
    func testECAWithKernel5SharedAcrossTwoCalls() throws { try check("ECA", "eca_k5") }
    func testSimAMParameterFree() throws { try check("SimAM", "simam", tensors: 2) }  // output0, dinput0: no parameter
    /// output0, dinput0, 8 parameter gradients and the 3 buffers after the training forward.
    func testCoordinateAttention() throws { try check("CoordAtt", "coordatt", tensors: 13) }
    /// One instance at two calls with H != W: outputs and input gradients of both calls, the
    /// gradients summed, and the running statistics after two updates (the counter at 2).
    func testCoordinateAttentionSharedAcrossTwoCalls() throws {
        try check("CoordAtt", "coordatt_shared", tensors: 15)
        let results = try ReferenceCheck.run(plugin: try Self.plugin("CoordAtt"), directory: Self.vectors.appendingPathComponent("coordatt_shared").path)
        XCTAssertEqual(Set(results.filter { $0.name.hasPrefix("buffer_") }.map(\.name)),
                       ["buffer_bn1.running_mean", "buffer_bn1.running_var", "buffer_bn1.num_batches_tracked"])
    }
}
