import Cluster
import XCTest

/// The process-group rules that hold without MPI (the collectives themselves are tested under
/// `mpirun` in CLITests/MPITests).
final class ProcessGroupTests: XCTestCase {
    /// Parts cover 0..<count exactly once, in rank order, sizes differing by at most one.
    func testPartsCoverEveryItemOnceInRankOrder() {
        for count in [0, 1, 5, 128, 1001] {
            for parts in [1, 2, 3, 7, 16] {
                let ranges = (0..<parts).map { contiguousPart($0, of: parts, count: count) }
                XCTAssertEqual(ranges.flatMap { Array($0) }, Array(0..<count), "\(count) items in \(parts) parts")
                let sizes = ranges.map(\.count)
                XCTAssertLessThanOrEqual(sizes.max()! - sizes.min()!, 1)
            }
        }
    }

    /// Alone, every collective is the identity and leader-only work runs here, errors included.
    func testSingleProcessCollectivesAreTheIdentity() throws {
        let group = SingleProcess()
        XCTAssertTrue(group.isLeader)
        XCTAssertEqual(try group.sum([1.5, -2]), [1.5, -2])
        XCTAssertTrue(try group.any(true))
        XCTAssertFalse(try group.any(false))
        XCTAssertEqual(try group.leaderOnly { [3, 4] }, [3, 4])
        struct Failure: Error {}
        XCTAssertThrowsError(try group.leaderOnly { () throws -> Int in throw Failure() }) { XCTAssertTrue($0 is Failure) }
        XCTAssertEqual(group.share(of: 10), 0..<10)
    }

    /// Outside mpirun, joining gives this process alone (no MPI library is loaded).
    func testJoinOutsideMPIRunIsThisProcessAlone() throws {
        guard ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] == nil else { return }
        XCTAssertTrue(try MPIGroup.join() is SingleProcess)
    }
}
