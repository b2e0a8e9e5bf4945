import EdgeCacheCore
import Foundation
import JWTKit

/// An identity provider whose tokens a node accepts, and the tenant its users belong to.
package struct TokenIssuer: Sendable {
    /// The exact `iss` value of its tokens.
    package var issuer: String
    /// The tenant every caller of this issuer acts for (never taken from the token itself).
    package var tenant: String
    /// The `aud` value the tokens must carry.
    package var audience: String
    package var keys: [JWSPublicKey]

    package init(issuer: String, tenant: String, audience: String, keys: [JWSPublicKey]) {
        self.issuer = issuer
        self.tenant = tenant
        self.audience = audience
        self.keys = keys
    }
}

/// What a verified bearer token says about its holder.
package struct VerifiedToken: Sendable {
    /// The configured tenant of the token's issuer.
    package var tenant: String
    package var issuer: String
    /// `sub`.
    package var subject: String?
    /// `scope`, space-separated.
    package var scope: String
    /// `patient`: the SMART launch patient.
    package var patient: String?
    /// `purpose_of_use`: an HL7 v3 PurposeOfUse code such as `TREAT`.
    package var purposeOfUse: String?
    /// `exp` and `nbf` (epoch seconds; `exp` rounded down, `nbf` up): a remembered token is
    /// checked against them again.
    package var expiresAt: Int64 = .max
    package var notBefore: Int64? = nil

    /// Whether the token is within its validity window at `now` (epoch seconds), with `leeway`.
    /// The same rule as the first verification (jwt-kit's, after RFC 7519): `exp` is the first
    /// instant the token is refused, `nbf` the last instant before it is accepted.
    package func isCurrent(now: Int64, leeway: Int64) -> Bool {
        now < expiresAt &+ leeway && (notBefore.map { $0 < now &+ leeway } ?? true)
    }
}

/// Why a bearer token was refused. The reason never repeats the token's contents.
package struct TokenRejection: Error, Sendable, Equatable, CustomStringConvertible {
    package let reason: String
    package init(_ reason: String) { self.reason = reason }
    package var description: String { reason }
}

/// Verifies compact JWS bearer tokens (JWTs): signature by a configured issuer's key with RS256,
/// ES256 or ES384, then `exp` (required), `nbf`, `aud` and `iss`, with a leeway for clock skew.
///
/// jwt-kit splits and decodes the token (base64url, the header, the claims) and checks the
/// time and audience claims; the signature is checked by the issuer's ``JWSPublicKey`` with
/// swift-crypto, as jwt-kit's own signers do. jwt-kit's ready-made path, `JWTKeyCollection`,
/// is an actor and only verifies asynchronously, while this runs inside the synchronous
/// authentication step of every request; it would also pick a key by `kid` alone and never
/// refuse an `alg` outside the three this node accepts.
package struct BearerTokenVerifier: Sendable {
    package static let maxTokenBytes = 16 * 1024

    package var issuers: [TokenIssuer]
    /// Allowed clock skew for `exp` and `nbf`, in seconds.
    package var leewaySeconds: Int64
    package var clock: any WallClock

    package init(issuers: [TokenIssuer], leewaySeconds: Int64 = 60, clock: any WallClock) {
        self.issuers = issuers
        self.leewaySeconds = leewaySeconds
        self.clock = clock
    }

    /// Checks a token and returns its claims.
    /// - Throws: ``TokenRejection`` naming the failed check.
    package func verify(_ token: String) throws(TokenRejection) -> VerifiedToken {
        guard token.utf8.count <= Self.maxTokenBytes else { throw TokenRejection("the token is too large") }
        guard let parsed = ParsedToken(Array(token.utf8)) else {
            throw TokenRejection("the token is not a well-formed JWT (compact JWS)")
        }
        let (header, claims) = (parsed.header, parsed.claims)
        guard let algName = header.alg, let algorithm = JWSAlgorithm(rawValue: algName) else {
            throw TokenRejection("the token's signing algorithm is not accepted (only RS256, ES256 and ES384 are)")
        }
        guard header.fields["crit"] == nil else {
            throw TokenRejection("the token has critical header parameters this node does not understand")
        }
        guard let iss = claims.issuer?.value, let issuer = issuers.first(where: { $0.issuer == iss }) else {
            throw TokenRejection("the token's issuer is not trusted by this node")
        }
        let kid = header.kid
        let candidates = issuer.keys.filter { $0.algorithm == algorithm && (kid == nil || $0.kid == nil || $0.kid == kid) }
        guard candidates.contains(where: { $0.verify(algorithm, signingInput: parsed.signingInput, signature: parsed.signature) }) else {
            throw TokenRejection("the token's signature does not verify with the issuer's keys")
        }
        let now = Date(timeIntervalSince1970: Double(clock.nowMillis()) / 1000)
        let leeway = TimeInterval(leewaySeconds)
        guard let exp = claims.expiration else { throw TokenRejection("the token has no valid 'exp' (expiry) claim") }
        do { try exp.verifyNotExpired(currentDate: now - leeway) } catch { throw TokenRejection("the token has expired") }
        if claims.notBeforeIsInvalid { throw TokenRejection("the token's 'nbf' claim is not a number") }
        if let nbf = claims.notBefore {
            do { try nbf.verifyNotBefore(currentDate: now + leeway) } catch { throw TokenRejection("the token is not valid yet") }
        }
        guard let audience = claims.audience, (try? audience.verifyIntendedAudience(includes: issuer.audience)) != nil else {
            throw TokenRejection("the token is not meant for this server (audience)")
        }
        let purpose = claims.purposeOfUse
        if let purpose, !(1...32).contains(purpose.utf8.count) || !purpose.utf8.allSatisfy({ $0.isCodeCharacter }) {
            throw TokenRejection("the token's 'purpose_of_use' is not a PurposeOfUse code such as TREAT")
        }
        return VerifiedToken(
            tenant: issuer.tenant, issuer: issuer.issuer, subject: claims.subject?.value, scope: claims.scope ?? "",
            patient: claims.patient, purposeOfUse: purpose,
            expiresAt: Int64(exp.value.timeIntervalSince1970.rounded(.down)),
            notBefore: claims.notBefore.map { Int64($0.value.timeIntervalSince1970.rounded(.up)) })
    }
}

/// A compact JWS split and decoded by jwt-kit's parser.
struct ParsedToken {
    private static let parser = DefaultJWTParser()

    let header: JWTHeader
    let claims: BearerClaims
    let signature: [UInt8]
    /// `header.payload`, as sent: what the signature covers.
    let signingInput: ArraySlice<UInt8>

    /// Nil unless the token has three parts, each valid base64url, and its header and claims
    /// are JSON objects.
    init?(_ token: [UInt8]) {
        guard let segments = try? Self.parser.getTokenParts(token),
            let parsed = try? Self.parser.parse(token, as: BearerClaims.self)
        else { return nil }
        // jwt-kit's base64url decoder ignores the spare bits of the last character, so one
        // signature has several spellings. Only the canonical one is taken: a changed
        // character never passes, and each token has one string in the remembered tokens.
        let bytes = Array(parsed.signature)
        guard Base64URL.encode(bytes).utf8.elementsEqual(segments.signature) else { return nil }
        self.header = parsed.header
        self.claims = parsed.payload
        self.signature = bytes
        self.signingInput = token.prefix(segments.header.count + 1 + segments.payload.count)
    }
}

extension UInt8 {
    /// `A-Z`, `0-9`, `_`, `-`: the characters of a v3 code.
    fileprivate var isCodeCharacter: Bool {
        (0x41...0x5A).contains(self) || (0x30...0x39).contains(self) || self == 0x5F || self == 0x2D
    }
}
