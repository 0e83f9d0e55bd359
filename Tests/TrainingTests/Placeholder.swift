import XCTest
final class PlaceholderTraining: XCTestCase { func testNothing() {} }
