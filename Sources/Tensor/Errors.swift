import Foundation
/// The one error type users see: a one-line message that names the offending value and the
/// expectation. The CLI prints `error: <message>` and exits non-zero.
public struct LTHError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A one-line description of a Foundation file-system error ("cannot use '/x/y': Not a
/// directory"), or nil for other errors: instead of the raw NSError dump.
public func fileErrorDescription(_ error: Error) -> String? {
    let ns = error as NSError
    guard ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain else { return nil }
    let path = (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
    let posix = (ns.userInfo[NSUnderlyingErrorKey] as? NSError).flatMap { $0.domain == NSPOSIXErrorDomain ? $0.code : nil }
        ?? (ns.domain == NSPOSIXErrorDomain ? ns.code : nil)
    let reason = posix.map { String(cString: strerror(Int32($0))) } ?? ns.localizedDescription
    return "cannot use \(path.map { "'\($0)'" } ?? "a file"): \(reason)"
}
