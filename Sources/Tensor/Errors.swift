/// The one error type users see: a one-line message that names the offending value and the
/// expectation. The CLI prints `error: <message>` and exits non-zero.
public struct LTHError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
