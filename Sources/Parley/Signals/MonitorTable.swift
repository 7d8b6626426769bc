/// A process's monitors, one side of them: reference to the other process's pid.
///
/// Most processes hold a few monitors at a time, and a call adds one and removes it again on
/// every call that waits (gen.erl's `do_call` monitors the server). Up to
/// ``inlineLimit`` entries live in a small array searched by each reference's unique number,
/// which costs no hashing and, once the array has its capacity, no allocation; a process
/// with more (a registry or a supervisor watching many) moves them to a dictionary.
struct MonitorTable: Sequence, ExpressibleByDictionaryLiteral {
    typealias Element = (key: Reference, value: Pid)

    /// Entries kept in the array before the table becomes a dictionary.
    static let inlineLimit = 8

    private var small: [Element] = []
    private var large: [Reference: Pid]? = nil

    init() {}

    init(dictionaryLiteral elements: (Reference, Pid)...) {
        for (k, v) in elements { self[k] = v }
    }

    var count: Int { large?.count ?? small.count }
    var isEmpty: Bool { count == 0 }

    /// The pids, in no particular order.
    var values: [Pid] { large.map { Array($0.values) } ?? small.map(\.value) }

    private func index(of ref: Reference) -> Int? {
        // The unique number first: a mismatch is one word compared.
        small.firstIndex { $0.key.id == ref.id && $0.key == ref }
    }

    subscript(ref: Reference) -> Pid? {
        get {
            if let large { return large[ref] }
            return index(of: ref).map { small[$0].value }
        }
        set {
            guard let newValue else {
                removeValue(forKey: ref)
                return
            }
            if large != nil {
                large![ref] = newValue
            } else if let i = index(of: ref) {
                small[i].value = newValue
            } else if small.count < Self.inlineLimit {
                small.append((ref, newValue))
            } else {
                var d = [Reference: Pid](minimumCapacity: Self.inlineLimit * 2)
                for e in small { d[e.key] = e.value }
                d[ref] = newValue
                large = d
                small = []
            }
        }
    }

    /// Removes and returns the pid of monitor `ref`, if the table has it.
    @discardableResult
    mutating func removeValue(forKey ref: Reference) -> Pid? {
        if large != nil {
            let v = large!.removeValue(forKey: ref)
            if large!.isEmpty { large = nil }
            return v
        }
        guard let i = index(of: ref) else { return nil }
        let v = small[i].value
        // Order does not matter: the last entry takes the removed one's place.
        small.swapAt(i, small.count - 1)
        small.removeLast()
        return v
    }

    func makeIterator() -> AnyIterator<Element> {
        if let large {
            var it = large.makeIterator()
            return AnyIterator { it.next().map { ($0.key, $0.value) } }
        }
        return AnyIterator(small.makeIterator())
    }
}
