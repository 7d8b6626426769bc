// TEMPORARY: replaced by the Codable branch on merge.
public protocol TermConvertible: Sendable { var term: Term { get } }
public struct TermEncoder { public init() {}; public func encode<T: Encodable>(_ v: T) throws -> Term { .nil } }
