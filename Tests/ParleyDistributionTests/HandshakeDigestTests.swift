import Testing
@testable import ParleyDistribution

/// The handshake's challenge digest is `md5(Cookie ++ integer_to_list(Challenge))`
/// (erl_dist_protocol, "Handshake"); Parley computes MD5 itself (RFC 1321).
@Suite("Handshake digest (MD5)")
struct HandshakeDigestTests {
    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }

    /// RFC 1321, appendix A.5, "test suite".
    @Test("RFC 1321's test suite", arguments: [
        ("", "d41d8cd98f00b204e9800998ecf8427e"),
        ("a", "0cc175b9c0f1b6a831c399e269772661"),
        ("abc", "900150983cd24fb0d6963f7d28e17f72"),
        ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
        ("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
        ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"),
        ("12345678901234567890123456789012345678901234567890123456789012345678901234567890", "57edf4a22be3c955ac49da2e2107b67a"),
    ])
    func rfc1321(input: String, digest: String) {
        #expect(Self.hex(MD5.hash(Array(input.utf8))) == digest)
    }

    /// Each digest computed by OTP 25's `erlang:md5/1` on the bytes `[X rem 251 || X <-
    /// lists:seq(0, N - 1)]`: lengths on both sides of the padding's 56- and 64-byte edges.
    @Test("the same digests as Erlang's erlang:md5 across the padding edges", arguments: [
        (55, "6912ee65fff2d9f9ce2508cddf8bcda0"),
        (56, "51fdd1acda72405dfdfa03fcb85896d7"),
        (63, "48a6295221902e8e0938f773a7185e72"),
        (64, "b2d3f56bc197fd985d5965079b5e7148"),
        (65, "8bd7053801c768420faf816fadba971c"),
        (1000, "a24f1e3ef66950e1327f210e3997ba2c"),
    ])
    func erlangMD5(length: Int, digest: String) {
        #expect(Self.hex(MD5.hash((0..<length).map { UInt8($0 % 251) })) == digest)
    }

    /// `erlang:md5("secret" ++ integer_to_list(3735928559))` in OTP 25.
    @Test("the challenge digest is md5(cookie ++ the challenge in decimal), as Erlang computes it")
    func challengeDigest() {
        #expect(Self.hex(HandshakeMachine.digest(cookie: Array("secret".utf8), challenge: 3_735_928_559)) == "c3939b31d7a913d82e2ace09247c7b41")
    }
}
