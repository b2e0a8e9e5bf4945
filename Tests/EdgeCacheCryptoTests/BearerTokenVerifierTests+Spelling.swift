import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheTestSupport
import Testing

/// A signature has one spelling: jwt-kit's base64url decoder alone would also take a last
/// character with other spare bits, or padding, for the same bytes.
@Suite struct BearerTokenSpellingTests {
    let keys: TokenKeys
    let now: Int64 = 1_800_000_000

    init() throws { keys = try BearerTokenVerifierTests.keys.get() }

    func verifier() throws -> BearerTokenVerifier {
        let issuer = TokenIssuer(issuer: "https://idp.example", tenant: "a", audience: "edge", keys: [try keys.publicKey("p256")])
        return BearerTokenVerifier(issuers: [issuer], clock: FixedClock(millis: now * 1000))
    }

    @Test func onlyTheCanonicalSpellingOfASignatureIsAccepted() throws {
        let verifier = try verifier()
        let token = try keys.token(#"{"iss":"https://idp.example","aud":"edge","exp":\#(now + 60)}"#, alg: "ES256", key: "p256")
        _ = try verifier.verify(token)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        // 64 signature bytes take 86 characters; the last one carries 2 bits and 4 spare ones.
        let last = try #require(token.last.flatMap { alphabet.firstIndex(of: $0) })
        let respelled = String(token.dropLast()) + String(alphabet[last ^ 1])
        let malformed = TokenRejection("the token is not a well-formed JWT (compact JWS)")
        #expect(throws: malformed) { try verifier.verify(respelled) }
        #expect(throws: malformed) { try verifier.verify(token + "==") }
    }
}
