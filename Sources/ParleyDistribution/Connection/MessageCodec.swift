import Instrumentation
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
        // A metadata comparison first: most messages to other nodes are terms, and the
        // dynamic cast below is slow.
        if let t = exactMessage(message, as: Term.self) { return t }
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

    /// The Swift message a term from the wire becomes for local process `target`, or nil
    /// when it was a call's reply that the caller's reply slot took (a call that went to a
    /// process of this OS process and was answered from another node).
    static func incoming(from term: Term, to target: Pid) -> (any Sendable)? {
        decode(term, to: target, acceptReply: true)
    }

    /// The Swift message a term from the wire becomes for local process `target`.
    static func message(from term: Term, to target: Pid) -> any Sendable {
        decode(term, to: target, acceptReply: false) ?? term
    }

    @inline(__always)
    private static func decode(_ term: Term, to target: Pid, acceptReply: Bool) -> (any Sendable)? {
        guard case .tuple(let items) = term else { return term }
        if items.count == 3, case .atom(genCall) = items[0], case .tuple(let from) = items[1], from.count == 2,
           case .pid(let caller) = from[0], let (tag, aliasForm) = callTag(from[1]) {
            return Gen.CallMessage(from: Gen.From(pid: caller, tag: tag, aliasTag: aliasForm), request: items[2])
        }
        if items.count == 2, case .atom(genCast) = items[0] {
            return Gen.CastMessage(request: items[1])
        }
        if items.count == 2, let (tag, _) = callTag(items[0]), Remote.isActiveAlias(tag, of: target) {
            if acceptReply, Remote.acceptReplyFromWire(tag, items[1], to: target) { return nil }
            return Gen.ReplyMessage(tag: tag, reply: items[1])
        }
        return term
    }

    /// The sequential-trace token that carries a call's trace context to another node
    /// (``Gen/propagatesContext``): `{Flags, Label, Serial, From, LastCnt}`, the shape
    /// `seq_trace:get_token/0` shows, with no trace flags (nothing is traced, the token only
    /// travels) and as label a map of the bootstrapped instrument's headers, binaries to
    /// binaries (`#{<<"traceparent">> => <<"00-…">>}` for W3C trace context). `nil` when the
    /// instrument writes no header (none is bootstrapped).
    static func traceToken(_ context: ServiceContext, from sender: Pid) -> Term? {
        var headers: [String: String] = [:]
        InstrumentationSystem.instrument.inject(context, into: &headers, using: HeaderWriter())
        guard !headers.isEmpty else { return nil }
        var label: [Term: Term] = [:]
        for (k, v) in headers { label[.binary(Array(k.utf8))] = .binary(Array(v.utf8)) }
        return .tuple([.integer(0), .map(label), .integer(0), .pid(sender), .integer(0)])
    }

    /// The trace context in a sequential-trace token from the wire, if its label is a map of
    /// headers (binary or atom keys, binary values) and the instrument finds a
    /// context in them. Tokens with other labels (an Erlang user's own `seq_trace`) carry none.
    static func context(fromTraceToken token: Term) -> ServiceContext? {
        guard case .tuple(let items) = token, items.count >= 2, case .map(let label) = items[1] else { return nil }
        var headers: [String: String] = [:]
        for (k, v) in label {
            let key: String? = switch k {
            case .binary: k.stringValue
            case .atom(let a): a.name
            default: nil
            }
            if let key, let value = v.stringValue { headers[key] = value }
        }
        guard !headers.isEmpty else { return nil }
        var context = ServiceContext.topLevel
        InstrumentationSystem.instrument.extract(headers, into: &context, using: HeaderReader())
        return context.isEmpty ? nil : context
    }

    /// The token a reply from `server` carries back to a caller that sent `token`: the
    /// label and flags kept, the serial one past the caller's, as the BEAM's sends step it
    /// (`{Flags, Label, Serial + 1, Server, Serial}`). nil for a term that is no token.
    static func replyToken(_ token: Term, server: Pid) -> Term? {
        guard case .tuple(let t) = token, t.count == 5, case .integer(let serial) = t[2] else { return nil }
        return .tuple([t[0], t[1], .integer(serial &+ 1), .pid(server), .integer(serial)])
    }

    struct HeaderWriter: Injector {
        func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
    }
    struct HeaderReader: Extractor {
        func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
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
