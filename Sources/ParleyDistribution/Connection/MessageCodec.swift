@_spi(Distribution) import Parley

/// How Swift messages become terms on the way out, and terms become Swift messages on the
/// way in. OTP's protocol messages keep their meaning across the boundary: a `Gen.CallMessage`
/// is `{'$gen_call', {Pid, Tag}, Request}` on the wire and back, so GenServers on either
/// side call each other.
enum MessageCodec {
    static let genCall: Atom = "$gen_call"
    static let genCast: Atom = "$gen_cast"
    static let alias: Atom = "alias"

    /// The term for an outgoing message.
    /// - Throws: ``TermEncodingError/notEncodable(_:)`` for a value with no term form.
    static func term(for message: any Sendable) throws(TermEncodingError) -> Term {
        switch message {
        case let t as Term: return t
        case let c as Gen.CallMessage:
            let tag: Term = c.from.aliasTag ? .improperList([.atom(alias)], tail: .reference(c.from.tag)) : .reference(c.from.tag)
            return .tuple([.atom(genCall), .tuple([.pid(c.from.pid), tag]), try term(for: c.request)])
        case let c as Gen.CastMessage:
            return .tuple([.atom(genCast), try term(for: c.request)])
        case let r as Gen.ReplyMessage:
            let tag: Term = r.aliasTag ? .improperList([.atom(alias)], tail: .reference(r.tag)) : .reference(r.tag)
            return .tuple([tag, try term(for: r.reply)])
        case let r as Gen.Rejected:
            return .tuple([.atom(.error), .tuple([.atom("bad_request"), .string(r.reason)])])
        case let d as DownMessage:
            return .tuple([.atom("DOWN"), .reference(d.ref), .atom("process"), .pid(d.pid), reasonTerm(d.reason)])
        case let e as ExitMessage:
            return .tuple([.atom("EXIT"), .pid(e.from), reasonTerm(e.reason)])
        case let r as ExitReason:
            return reasonTerm(r)
        case let c as any TermConvertible:
            return c.term
        case let e as any Encodable:
            do {
                return try TermEncoder().encode(e)
            } catch {
                throw .notEncodable("\(type(of: message)): \(error)")
            }
        default:
            throw .notEncodable("\(type(of: message))")
        }
    }

    /// The Swift message a term from the wire becomes for local process `target`.
    static func message(from term: Term, to target: Pid) -> any Sendable {
        guard case .tuple(let items) = term else { return term }
        if items.count == 3, case .atom(genCall) = items[0], case .tuple(let from) = items[1], from.count == 2,
           case .pid(let caller) = from[0], let (tag, aliasForm) = callTag(from[1]) {
            return Gen.CallMessage(from: Gen.From(pid: caller, tag: tag, aliasTag: aliasForm), request: items[2])
        }
        if items.count == 2, case .atom(genCast) = items[0] {
            return Gen.CastMessage(request: items[1])
        }
        if items.count == 2, let (tag, _) = callTag(items[0]), Remote.isActiveAlias(tag, of: target) {
            return Gen.ReplyMessage(tag: tag, reply: items[1])
        }
        return term
    }

    /// A call tag: `[alias | Ref]` (OTP 24+) or a plain reference.
    static func callTag(_ t: Term) -> (Reference, Bool)? {
        switch t {
        case .reference(let r): return (r, false)
        case .improperList(let head, .reference(let r)) where head == [.atom(alias)]: return (r, true)
        default: return nil
        }
    }

    /// An exit reason as Erlang writes it.
    static func reasonTerm(_ r: ExitReason) -> Term {
        switch r {
        case .normal: return .atom("normal")
        case .shutdown: return .atom("shutdown")
        case .shutdownWith(let x): return .tuple([.atom("shutdown"), (try? term(for: x)) ?? .string("\(x)")])
        case .kill: return .atom("kill")
        case .killed: return .atom("killed")
        case .noproc: return .atom("noproc")
        case .noconnection: return .atom("noconnection")
        case .mailboxOverflow: return .atom("mailbox_overflow")
        case .error(let e): return .tuple([.atom("swift_error"), .string("\(e)")])
        case .custom(let x): return (try? term(for: x)) ?? .string("\(x)")
        }
    }

    /// An exit reason from the wire.
    static func reason(_ t: Term) -> ExitReason {
        switch t {
        case .atom("normal"): return .normal
        case .atom("shutdown"): return .shutdown
        case .atom("kill"): return .kill
        case .atom("killed"): return .killed
        case .atom("noproc"): return .noproc
        case .atom("noconnection"): return .noconnection
        case .tuple(let items) where items.count == 2 && items[0] == .atom("shutdown"): return .shutdownWith(items[1])
        default: return .custom(t)
        }
    }
}
