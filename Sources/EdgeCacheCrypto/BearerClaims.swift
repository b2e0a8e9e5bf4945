import Foundation
import JWTKit

/// The claims of a bearer token as the node reads them, decoded by jwt-kit's parser.
///
/// Each claim is decoded on its own and a malformed one is kept as absent (or, for `nbf`,
/// noted), so ``BearerTokenVerifier`` can say which check failed instead of calling the whole
/// token malformed.
struct BearerClaims: JWTPayload {
    var issuer: IssuerClaim?
    var subject: SubjectClaim?
    var audience: AudienceClaim?
    /// Nil when absent, not a NumericDate, or out of range.
    var expiration: ExpirationClaim?
    var notBefore: NotBeforeClaim?
    /// `nbf` is present but not a NumericDate (so the token is refused, never read as "no nbf").
    var notBeforeIsInvalid = false
    var scope: String?
    var patient: String?
    var purposeOfUse: String?

    enum CodingKeys: String, CodingKey {
        case issuer = "iss", subject = "sub", audience = "aud", expiration = "exp", notBefore = "nbf"
        case scope, patient, purposeOfUse = "purpose_of_use"
    }

    init(from decoder: any Decoder) throws {
        let claims = try decoder.container(keyedBy: CodingKeys.self)
        func lenient<T: Decodable>(_ type: T.Type, _ key: CodingKeys) -> T? {
            try? claims.decodeIfPresent(type, forKey: key)
        }
        issuer = lenient(IssuerClaim.self, .issuer)
        subject = lenient(SubjectClaim.self, .subject)
        audience = lenient(AudienceClaim.self, .audience)
        expiration = lenient(ExpirationClaim.self, .expiration).flatMap { Self.inRange($0.value) ? $0 : nil }
        notBefore = lenient(NotBeforeClaim.self, .notBefore).flatMap { Self.inRange($0.value) ? $0 : nil }
        notBeforeIsInvalid = claims.contains(.notBefore) && notBefore == nil
        scope = lenient(String.self, .scope)
        patient = lenient(String.self, .patient)
        purposeOfUse = lenient(String.self, .purposeOfUse)
    }

    func encode(to encoder: any Encoder) throws {
        var claims = encoder.container(keyedBy: CodingKeys.self)
        try claims.encodeIfPresent(issuer, forKey: .issuer)
        try claims.encodeIfPresent(subject, forKey: .subject)
        try claims.encodeIfPresent(audience, forKey: .audience)
        try claims.encodeIfPresent(expiration, forKey: .expiration)
        try claims.encodeIfPresent(notBefore, forKey: .notBefore)
        try claims.encodeIfPresent(scope, forKey: .scope)
        try claims.encodeIfPresent(patient, forKey: .patient)
        try claims.encodeIfPresent(purposeOfUse, forKey: .purposeOfUse)
    }

    /// jwt-kit's own verification path (`JWTKeyCollection.verify`) would call this. The node
    /// never takes that path: the tenant, audience and clock checks need its configuration and
    /// are made by ``BearerTokenVerifier``. Refusing here keeps these claims from ever being
    /// accepted by a path that skipped them.
    func verify(using algorithm: some JWTAlgorithm) async throws {
        throw JWTError.claimVerificationFailure(failedClaim: nil, reason: "verified by BearerTokenVerifier only")
    }

    /// A NumericDate the node can hold as whole seconds (as before jwt-kit: finite, |t| < 1e15).
    static func inRange(_ date: Date) -> Bool {
        let seconds = date.timeIntervalSince1970
        return seconds.isFinite && abs(seconds) < 1e15
    }
}
