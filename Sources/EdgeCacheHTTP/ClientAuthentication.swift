import EdgeCacheCore
import EdgeCacheCrypto
import HTTPTypes
import Hummingbird

/// How a listener authenticates its callers: client certificates, bearer tokens, or both.
///
/// A request with `Authorization: Bearer …` is judged by its token alone (when the listener
/// takes tokens); otherwise by its client certificate (when the listener takes certificates).
public struct ClientAuthentication: Sendable {
    /// Verifies bearer tokens; nil: the listener ignores `Authorization` (certificates only).
    public var bearer: BearerTokenVerifier?
    /// Whether client certificates identify callers.
    public var acceptCertificates: Bool

    public init(bearer: BearerTokenVerifier?, acceptCertificates: Bool) {
        self.bearer = bearer
        self.acceptCertificates = acceptCertificates
    }

    /// Mutual TLS only (the origin's peer listener, and any listener without `auth.issuers`).
    public static let certificatesOnly = ClientAuthentication(bearer: nil, acceptCertificates: true)

    /// The longest break-glass reason kept (longer ones are cut).
    public static let maxBreakGlassReason = 200

    /// The caller of `request`, or the 401 to answer.
    /// - Parameter certificate: the verified client certificate's identity, if one was presented.
    public func identify(_ request: Request, certificate: ClientIdentity?) -> Result<ClientIdentity, FHIRError> {
        if let bearer, let authorization = request.header("Authorization") {
            let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else {
                return .failure(Self.unauthorized("Only bearer tokens are accepted in Authorization", error: "invalid_request"))
            }
            do {
                let token = try bearer.verify(String(parts[1]).trimmingSpaces())
                return .success(
                    ClientIdentity(
                        tenant: token.tenant, role: .client, subject: token.subject, purposeOfUse: token.purposeOfUse,
                        patientContext: token.patient, grant: SMARTGrant(scopeClaim: token.scope)))
            } catch {
                return .failure(Self.unauthorized("Invalid bearer token: \(error.reason)", error: "invalid_token"))
            }
        }
        if let certificate, acceptCertificates { return .success(certificate) }
        let needed =
            bearer == nil ? "A client certificate is required"
            : acceptCertificates ? "A bearer token (Authorization: Bearer) or a client certificate is required"
            : "A bearer token (Authorization: Bearer) is required"
        guard bearer != nil else { return .failure(FHIRError(status: 401, code: "login", needed)) }
        return .failure(Self.unauthorized(needed, error: nil))
    }

    /// A 401 with `WWW-Authenticate: Bearer` (RFC 6750 §3).
    static func unauthorized(_ message: String, error: String?) -> FHIRError {
        var challenge = "Bearer realm=\"edgecache\""
        if let error { challenge += ", error=\"\(error)\"" }
        return FHIRError(status: 401, code: "login", message, headers: [("WWW-Authenticate", challenge)])
    }

    /// The `X-EdgeCache-Break-Glass` reason (trimmed, cut to 200 characters), nil if absent or
    /// empty; a 403 if the caller's purpose of use is not treatment.
    public static func breakGlassReason(_ request: Request, identity: ClientIdentity) -> Result<String?, FHIRError> {
        guard let raw = request.header("X-EdgeCache-Break-Glass") else { return .success(nil) }
        let reason = String(raw.trimmingSpaces().prefix(maxBreakGlassReason))
        guard !reason.isEmpty else { return .success(nil) }
        guard ["TREAT", "ETREAT"].contains(identity.purpose) else {
            return .failure(.forbidden("break-glass is allowed for treatment only"))
        }
        return .success(reason)
    }
}
