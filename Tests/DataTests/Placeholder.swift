import XCTest
final class PlaceholderDataTests: XCTestCase { func testNothing() {} }
