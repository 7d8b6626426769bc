/// Channels are equal only to themselves, so that they can be dictionary keys (the map of
/// ``Mix/toggle(_:)``) and set members, as core.async's channels are map keys.
///
/// ```swift
/// let a = Channel<Int>(), b = Channel<Int>()
/// let names: [Channel<Int>: String] = [a: "a", b: "b"]
/// print(a == a, a == b, names[b]!)   // true false b
/// ```
extension Chan: Hashable {
    /// Whether `lhs` and `rhs` are the same channel.
    ///
    /// ```swift
    /// let ch = Channel<Int>()
    /// print(ch == ch, ch == Channel<Int>())   // true false
    /// ```
    public static func == (lhs: Chan, rhs: Chan) -> Bool { lhs === rhs }
    /// Hashes the channel's identity.
    ///
    /// ```swift
    /// var seen = Set<Channel<Int>>()
    /// seen.insert(ch)
    /// ```
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
}
