import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheTestSupport
import Testing

/// A clock standing still at one instant.
struct FixedClock: WallClock {
    let millis: Int64
    func nowMillis() -> Int64 { millis }
}

@Suite struct BearerTokenVerifierTests {
    static let keys = Result { try TokenKeys() }
    let keys: TokenKeys
    let now: Int64 = 1_800_000_000
    let iss = "https://idp.a.example"
    let aud = "https://edge.a.example/fhir"

    init() throws { keys = try Self.keys.get() }

    func verifier(leeway: Int64 = 60) throws -> BearerTokenVerifier {
        let issuer = TokenIssuer(
            issuer: iss, tenant: "a", audience: aud,
            keys: [try keys.publicKey("rsa"), try keys.publicKey("p256"), try keys.publicKey("p384")])
        return BearerTokenVerifier(issuers: [issuer], leewaySeconds: leeway, clock: FixedClock(millis: now * 1000))
    }

    func claims(exp: Int64? = nil, nbf: Int64? = nil, aud: String? = nil, iss: String? = nil, extra: String = "") -> String {
        var members = [
            #""iss":"\#(iss ?? self.iss)""#, #""sub":"nurse-7""#, #""aud":\#(aud ?? "\"\(self.aud)\"")"#,
            #""exp":\#(exp ?? now + 300)"#, #""scope":"patient/Observation.rs launch""#, #""patient":"p1""#,
            #""purpose_of_use":"TREAT""#,
        ]
        if let nbf { members.append(#""nbf":\#(nbf)"#) }
        if !extra.isEmpty { members.append(extra) }
        return "{" + members.joined(separator: ",") + "}"
    }

    func rejection(_ token: String, leeway: Int64 = 60) throws -> String? {
        let verifier = try verifier(leeway: leeway)
        do {
            _ = try verifier.verify(token)
            return nil
        } catch {
            return error.reason
        }
    }

    @Test(arguments: [("RS256", "rsa"), ("ES256", "p256"), ("ES384", "p384")])
    func acceptsEachAlgorithmWithARealSignature(alg: String, key: String) throws {
        let token = try keys.token(claims(), alg: alg, key: key)
        let verified = try verifier().verify(token)
        #expect(verified.tenant == "a" && verified.subject == "nurse-7" && verified.patient == "p1")
        #expect(verified.purposeOfUse == "TREAT" && verified.scope == "patient/Observation.rs launch")
    }

    @Test func refusesOtherAlgorithmsAndKeysOfAnotherKind() throws {
        let good = try keys.token(claims(), alg: "ES256", key: "p256")
        let parts = good.split(separator: ".")
        let none = Base64URL.encode(Array(#"{"alg":"none"}"#.utf8)) + "." + parts[1] + "."
        #expect(try rejection(none)?.contains("algorithm") == true)
        let hs = Base64URL.encode(Array(#"{"alg":"HS256"}"#.utf8)) + "." + parts[1] + "." + parts[2]
        #expect(try rejection(hs)?.contains("algorithm") == true)
        // An ES256 signature relabelled RS256 is checked against the RSA key only: it fails.
        let relabelled = Base64URL.encode(Array(#"{"alg":"RS256"}"#.utf8)) + "." + parts[1] + "." + parts[2]
        #expect(try rejection(relabelled)?.contains("signature") == true)
        // A P-384 key signing while the header says ES256: the lengths and curves differ.
        let mixed = try keys.token(claims(), alg: "ES256", key: "p384")
        #expect(try rejection(mixed)?.contains("signature") == true)
        #expect(try rejection(try keys.token(claims(), alg: "ES256", key: "p256", header: #","crit":["x"]"#)) != nil)
    }

    @Test func tamperedTokensFailTheSignature() throws {
        let token = try keys.token(claims(), alg: "RS256", key: "rsa")
        let parts = token.split(separator: ".").map(String.init)
        let other = Base64URL.encode(Array(claims(extra: #""admin":true"#).utf8))
        #expect(try rejection(parts[0] + "." + other + "." + parts[2])?.contains("signature") == true)
        #expect(try rejection(parts[0] + "." + parts[1])?.contains("well-formed") == true)
        #expect(try rejection("not a token")?.contains("well-formed") == true)
    }

    @Test func checksExpiryNotBeforeAudienceAndIssuer() throws {
        func token(_ c: String) throws -> String { try keys.token(c, alg: "ES256", key: "p256") }
        #expect(try rejection(try token(claims(exp: now - 61)))?.contains("expired") == true)
        #expect(try rejection(try token(claims(exp: now - 30))) == nil)  // within the leeway
        #expect(try rejection(try token(claims(exp: now - 30)), leeway: 0)?.contains("expired") == true)
        #expect(try rejection(try token(claims(nbf: now + 120)))?.contains("not valid yet") == true)
        #expect(try rejection(try token(claims(nbf: now + 30))) == nil)
        #expect(try rejection(try token(claims(aud: "\"https://other.example\"")))?.contains("audience") == true)
        #expect(try rejection(try token(claims(aud: "[\"https://other.example\",\"\(aud)\"]"))) == nil)
        #expect(try rejection(try token(claims(iss: "https://evil.example")))?.contains("issuer") == true)
        #expect(try rejection(try token(#"{"iss":"\#(iss)","aud":"\#(aud)"}"#))?.contains("exp") == true)
        let badPurpose = #"{"iss":"\#(iss)","aud":"\#(aud)","exp":\#(now + 300),"purpose_of_use":"treat me"}"#
        #expect(try rejection(try token(badPurpose))?.contains("purpose_of_use") == true)
    }

    @Test func ecdsaSignaturesConvertBetweenRawAndDER() throws {
        var raw = [UInt8](repeating: 0, count: 64)
        raw[31] = 7  // r = 7
        raw[32] = 0x80  // s has its top bit set: DER needs a leading zero
        let der = try #require(JWSSignature.der(fromRaw: raw, coordinateSize: 32))
        #expect(der[0] == 0x30 && der[2] == 0x02 && der[3] == 1 && der[4] == 7)
        #expect(der[5] == 0x02 && der[6] == 33 && der[7] == 0 && der[8] == 0x80)
        #expect(JWSSignature.raw(fromDER: der, coordinateSize: 32) == raw)
        #expect(JWSSignature.der(fromRaw: Array(raw.prefix(63)), coordinateSize: 32) == nil)
        #expect(JWSSignature.raw(fromDER: [0x30, 0x01], coordinateSize: 32) == nil)
        // A signature too short for ES384 never verifies.
        let token = try keys.token(claims(), alg: "ES384", key: "p384")
        let cut = String(token.dropLast(4))
        #expect(try rejection(cut) != nil)
    }

    @Test func loadsOnlyUsablePublicKeys() throws {
        #expect(try keys.publicKey("rsa").algorithm == .rs256)
        #expect(try keys.publicKey("p256").algorithm == .es256)
        #expect(try keys.publicKey("p384").algorithm == .es384)
        #expect(throws: CryptoError.self) {
            try JWSPublicKey(pem: Array("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".utf8))
        }
        #expect(throws: CryptoError.self) { try JWSPublicKey(pem: []) }
    }

    /// Untrusted bytes: random and mutated tokens are refused, never crash, never pass.
    @Test func garbageAndMutatedTokensAreRefused() throws {
        let verifier = try verifier()
        let good = try keys.token(claims(), alg: "ES256", key: "p256")
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ {}\"".utf8)
        for _ in 0..<500 {
            let length = Int.random(in: 0..<200, using: &generator)
            let text = String(decoding: (0..<length).map { _ in alphabet.randomElement(using: &generator)! }, as: UTF8.self)
            #expect(throws: TokenRejection.self) { try verifier.verify(text) }
        }
        var bytes = Array(good.utf8)
        for _ in 0..<300 {
            let index = Int.random(in: 0..<bytes.count, using: &generator)
            let original = bytes[index]
            bytes[index] = alphabet.randomElement(using: &generator)!
            if bytes[index] != original {
                #expect(throws: TokenRejection.self) { try verifier.verify(String(decoding: bytes, as: UTF8.self)) }
            }
            bytes[index] = original
        }
        #expect(throws: TokenRejection.self) { try verifier.verify(String(repeating: "a", count: 20_000)) }
    }
}
