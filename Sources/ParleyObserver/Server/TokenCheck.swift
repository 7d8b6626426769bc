import Hummingbird
import HTTPTypes

/// Lets a request through only if it carries the observer's token (when one is set):
/// `Authorization: Bearer <token>`, the `parley_observer` cookie, or `?token=` (which sets
/// the cookie and redirects to the same page without it, so the token leaves the address
/// bar). Adds the security headers to every response.
struct TokenCheck<Context: RequestContext>: RouterMiddleware {
    let token: String?
    static var cookie: String { "parley_observer" }
    static var actionHeader: HTTPField.Name { HTTPField.Name("X-Parley-Observer")! }

    // @concurrent: Hummingbird's protocol is compiled without NonisolatedNonsendingByDefault.
    @concurrent
    func handle(_ request: Request, context: Context, next: @concurrent (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        if let token, !authorized(request, token) {
            if let given = request.uri.queryParameters["token"], Self.same(String(given), token) {
                response = Response(status: .seeOther, headers: [
                    .location: request.uri.path,
                    .setCookie: "\(Self.cookie)=\(token); Path=/; HttpOnly; SameSite=Strict",
                ])
            } else {
                response = Response(status: .unauthorized, headers: [.contentType: "text/plain; charset=utf-8"],
                                    body: .init(byteBuffer: ByteBuffer(string: "the observer needs its token (?token=…)\n")))
            }
        } else {
            response = try await next(request, context)
        }
        response.headers[.contentSecurityPolicy] =
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        return response
    }

    func authorized(_ request: Request, _ token: String) -> Bool {
        if let auth = request.headers[.authorization], auth.hasPrefix("Bearer "), Self.same(String(auth.dropFirst(7)), token) {
            return true
        }
        for header in request.headers[values: .cookie] {
            for part in header.split(separator: ";") {
                let kv = part.trimmingPrefix(" ")
                if kv.hasPrefix("\(Self.cookie)="), Self.same(String(kv.dropFirst(Self.cookie.count + 1)), token) { return true }
            }
        }
        return false
    }

    /// Compares in time that depends on the lengths only, not on where they differ.
    static func same(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in x.indices { diff |= x[i] ^ y[i] }
        return diff == 0
    }
}
