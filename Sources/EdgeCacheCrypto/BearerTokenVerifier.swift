import EdgeCacheCore

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
    /// `exp` and `nbf` (epoch seconds): a remembered token is checked against them again.
    package var expiresAt: Int64 = .max
    package var notBefore: Int64? = nil

    /// Whether the token is within its validity window at `now` (epoch seconds), with `leeway`.
    package func isCurrent(now: Int64, leeway: Int64) -> Bool {
        now <= expiresAt &+ leeway && (notBefore.map { now &+ leeway >= $0 } ?? true)
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
package struct BearerTokenVerifier: Sendable {
    package static let maxTokenBytes = 16 * 1024

    package var issuers: [TokenIssuer]
    /// Allowed clock skew for `exp` and `nbf`, in seconds.
    package var leewaySeconds: Int64
    package var clock: any WallClock

    package init(issuers: [TokenIssuer], leewaySeconds: Int64 = 60, clock: any WallClock = SystemWallClock()) {
        self.issuers = issuers
        self.leewaySeconds = leewaySeconds
        self.clock = clock
    }

    /// Checks a token and returns its claims.
    /// - Throws: ``TokenRejection`` naming the failed check.
    package func verify(_ token: String) throws(TokenRejection) -> VerifiedToken {
        guard token.utf8.count <= Self.maxTokenBytes else { throw TokenRejection("the token is too large") }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerBytes = Base64URL.decode(parts[0]), let payloadBytes = Base64URL.decode(parts[1]),
            let signature = Base64URL.decode(parts[2]),
            case .object(let header)? = try? JSONParser.parse(headerBytes, maxDepth: 8),
            case .object(let claims)? = try? JSONParser.parse(payloadBytes, maxDepth: 16)
        else { throw TokenRejection("the token is not a well-formed JWT (compact JWS)") }
        guard let algName = header["alg"]?.stringValue, let algorithm = JWSAlgorithm(rawValue: algName) else {
            throw TokenRejection("the token's signing algorithm is not accepted (only RS256, ES256 and ES384 are)")
        }
        guard header["crit"] == nil else { throw TokenRejection("the token has critical header parameters this node does not understand") }
        guard let iss = claims["iss"]?.stringValue, let issuer = issuers.first(where: { $0.issuer == iss }) else {
            throw TokenRejection("the token's issuer is not trusted by this node")
        }
        let kid = header["kid"]?.stringValue
        let candidates = issuer.keys.filter { $0.algorithm == algorithm && (kid == nil || $0.kid == nil || $0.kid == kid) }
        let signingInput = Array(token.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count))
        guard candidates.contains(where: { $0.verify(algorithm, signingInput: signingInput, signature: signature) }) else {
            throw TokenRejection("the token's signature does not verify with the issuer's keys")
        }
        let now = clock.nowMillis() / 1000
        guard let exp = Self.seconds(claims["exp"]) else { throw TokenRejection("the token has no valid 'exp' (expiry) claim") }
        guard now <= exp + leewaySeconds else { throw TokenRejection("the token has expired") }
        var notBefore: Int64?
        if let nbfValue = claims["nbf"] {
            guard let nbf = Self.seconds(nbfValue) else { throw TokenRejection("the token's 'nbf' claim is not a number") }
            guard now + leewaySeconds >= nbf else { throw TokenRejection("the token is not valid yet") }
            notBefore = nbf
        }
        let audiences: [String]
        switch claims["aud"] {
        case .string(let one)?: audiences = [one]
        case .array(let many)?: audiences = many.compactMap(\.stringValue)
        default: audiences = []
        }
        guard audiences.contains(issuer.audience) else { throw TokenRejection("the token is not meant for this server (audience)") }
        let purpose = claims["purpose_of_use"]?.stringValue
        if let purpose, !(1...32).contains(purpose.utf8.count) || !purpose.utf8.allSatisfy({ $0.isCodeCharacter }) {
            throw TokenRejection("the token's 'purpose_of_use' is not a PurposeOfUse code such as TREAT")
        }
        let scope = claims["scope"]?.stringValue ?? ""
        return VerifiedToken(
            tenant: issuer.tenant, issuer: issuer.issuer, subject: claims["sub"]?.stringValue, scope: scope,
            patient: claims["patient"]?.stringValue, purposeOfUse: purpose, expiresAt: exp, notBefore: notBefore)
    }

    /// A NumericDate (seconds since the epoch; fractions are dropped).
    static func seconds(_ value: JSONValue?) -> Int64? {
        guard case .number(let text)? = value, let number = Double(text), number.isFinite, abs(number) < 1e15 else { return nil }
        return Int64(number)
    }
}

extension UInt8 {
    /// `A-Z`, `0-9`, `_`, `-`: the characters of a v3 code.
    fileprivate var isCodeCharacter: Bool {
        (0x41...0x5A).contains(self) || (0x30...0x39).contains(self) || self == 0x5F || self == 0x2D
    }
}
