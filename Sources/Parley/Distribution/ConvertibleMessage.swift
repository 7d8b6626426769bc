/// A message that can turn itself into another type on request: how a dynamically typed
/// value from another node (`Term` in `ParleyDistribution`) reaches code that expects a
/// Swift type, such as a GenServer whose `Call` is a `Codable` struct.
///
/// ```swift
/// struct Celsius: ConvertibleMessage {
///     let degrees: Double
///     func converted<T>(to type: T.Type) -> T? {
///         type == Fahrenheit.self ? Fahrenheit(degrees: degrees * 9 / 5 + 32) as? T : nil
///     }
/// }
/// ```
public protocol ConvertibleMessage: Sendable {
    /// This value as a `T`, or nil if it has no such form.
    func converted<T>(to type: T.Type) -> T?
}

/// `message` as a `T`: itself if it is one, else its ``ConvertibleMessage`` conversion.
@inlinable
public func convertMessage<T>(_ message: any Sendable, to type: T.Type) -> T? {
    if let t = exactMessage(message, as: T.self) { return t }
    if let t = message as? T { return t }
    return (message as? any ConvertibleMessage)?.converted(to: type)
}

/// `message` if its dynamic type is exactly `T`: a comparison of type metadata instead of
/// a dynamic cast (which costs tens of nanoseconds on every message of a server's hot
/// path). Nil for anything else, including a subclass or an existential `T`; use `as?` for
/// those.
///
/// ```swift
/// if let n = exactMessage(message, as: Int.self) { total += n }
/// ```
@inlinable
public func exactMessage<T>(_ message: any Sendable, as type: T.Type) -> T? {
    func open<U>(_ u: U) -> T? {
        // The types are equal, so are their sizes: the bit cast is a plain copy.
        U.self == T.self ? unsafeBitCast(u, to: T.self) : nil
    }
    return open(message)
}
