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

    func check(_ plugin: String, _ folder: String) throws {
        let dir = Self.vectors.appendingPathComponent(folder)
        let results = try ReferenceCheck.run(plugin: try Self.plugin(plugin), directory: dir.path)
        XCTAssertGreaterThanOrEqual(results.count, 4)
        for r in results { XCTAssertLessThan(r.relativeError, 1e-4, "\(folder) \(r.name)") }
    }

    func testSE() throws { try check("SE", "se") }
    func testSESharedAcrossTwoCalls() throws { try check("SE", "se_shared") }
    func testSGE() throws { try check("SGE", "sge") }
    func testDIAStatefulWithScheme1011() throws { try check("DIA", "dia") }
}
