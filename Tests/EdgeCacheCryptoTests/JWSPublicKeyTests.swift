import Crypto
import CryptoExtras
import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheTestSupport
import Testing

/// Which PEM files load as token-signing keys, and which signatures a key verifies.
@Suite struct JWSPublicKeyTests {
    let keys: TokenKeys

    init() throws { keys = try BearerTokenVerifierTests.keys.get() }

    func refusal(_ pem: String) -> String? {
        do {
            _ = try JWSPublicKey(pem: Array(pem.utf8))
            return nil
        } catch {
            return error.message
        }
    }

    @Test func refusesKeysOfOtherCurvesSizesAndKinds() throws {
        #expect(refusal(P521.Signing.PrivateKey().publicKey.pemRepresentation)?.contains("P-256/P-384") == true)
        let small = try _RSA.Signing.PrivateKey(unsafeKeySize: .init(bitCount: 1024)).publicKey.pemRepresentation
        #expect(refusal(small)?.contains("RSA (2048 bits or more)") == true)
        #expect(refusal(P256.Signing.PrivateKey().pemRepresentation)?.contains("not a PEM public key") == true)
        #expect(refusal("not a key")?.contains("not a PEM public key") == true)
    }

    @Test func readsTheFirstPublicKeyAmongOtherText() throws {
        let key = P384.Signing.PrivateKey()
        let text = "# the identity provider's signing key, 2026\n" + key.publicKey.pemRepresentation + "\n"
        #expect(try JWSPublicKey(pem: Array(text.utf8)).kind == .p384)
    }

    @Test func verifiesOnlyItsOwnAlgorithmAndSignatures() throws {
        let key = P256.Signing.PrivateKey()
        let publicKey = try JWSPublicKey(pem: Array(key.publicKey.pemRepresentation.utf8))
        let input = Array("header.payload".utf8)
        let signature = Array(try key.signature(for: input).rawRepresentation)
        #expect(publicKey.verify(.es256, signingInput: input, signature: signature))
        #expect(!publicKey.verify(.es384, signingInput: input, signature: signature))
        #expect(!publicKey.verify(.rs256, signingInput: input, signature: signature))
        #expect(!publicKey.verify(.es256, signingInput: Array("header.payloaD".utf8), signature: signature))
        let other = try JWSPublicKey(pem: Array(P256.Signing.PrivateKey().publicKey.pemRepresentation.utf8))
        #expect(!other.verify(.es256, signingInput: input, signature: signature))
        // DER is what openssl writes; a JWS carries raw r || s, and only that verifies.
        let der = Array(try key.signature(for: input).derRepresentation)
        #expect(!publicKey.verify(.es256, signingInput: input, signature: der))
    }

    @Test func aKeyIDPicksTheKeyWhenBothSidesHaveOne() throws {
        let now: Int64 = 1_800_000_000
        let issuer = TokenIssuer(
            issuer: "https://idp.example", tenant: "a", audience: "edge", keys: [try keys.publicKey("p256", kid: "k1")])
        let verifier = BearerTokenVerifier(issuers: [issuer], clock: FixedClock(millis: now * 1000))
        let claims = #"{"iss":"https://idp.example","aud":"edge","exp":\#(now + 60)}"#
        #expect(throws: Never.self) { try verifier.verify(try keys.token(claims, alg: "ES256", key: "p256", header: #","kid":"k1""#)) }
        #expect(throws: Never.self) { try verifier.verify(try keys.token(claims, alg: "ES256", key: "p256")) }
        #expect(throws: TokenRejection("the token's signature does not verify with the issuer's keys")) {
            try verifier.verify(try keys.token(claims, alg: "ES256", key: "p256", header: #","kid":"k2""#))
        }
    }
}
