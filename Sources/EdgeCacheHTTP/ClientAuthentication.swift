import EdgeCacheCore
import EdgeCacheCrypto
import HTTPTypes
import Hummingbird
import Synchronization

/// How a listener authenticates its callers: client certificates, bearer tokens, or both.
///
/// A request with `Authorization: Bearer …` is judged by its token alone (when the listener
/// takes tokens); otherwise by its client certificate (when the listener takes certificates).
package struct ClientAuthentication: Sendable {
    /// Verifies bearer tokens; nil: the listener ignores `Authorization` (certificates only).
    package var bearer: BearerTokenVerifier? { verifier?.withLock { $0 } }
    /// Shared by every copy, so ``replaceIssuers(_:)`` reaches the listener that holds one.
    private let verifier: SharedVerifier?
    /// Whether client certificates identify callers.
    package var acceptCertificates: Bool

    /// Tokens that verified, with the identity they give: a client sends the same token on
    /// every request until it expires, and checking its signature each time was the largest
    /// single cost of a cached read (docs/benchmarks.md). A remembered token is still checked
    /// against its `exp` and `nbf` on every use; only a byte-identical token string matches.
    let verified = VerifiedTokens()

    package init(bearer: BearerTokenVerifier?, acceptCertificates: Bool) {
        self.verifier = bearer.map { SharedVerifier($0) }
        self.acceptCertificates = acceptCertificates
    }

    /// Replaces the trusted issuers and their keys (a reload). Tokens remembered as verified
    /// are forgotten, so a token signed by a key no longer listed stops working at once.
    /// - Returns: false if this listener takes no bearer tokens (nothing to replace).
    @discardableResult
    package func replaceIssuers(_ issuers: [TokenIssuer]) -> Bool {
        guard let verifier else { return false }
        verifier.withLock { $0.issuers = issuers }
        verified.forgetAll()
        return true
    }

    /// Whether `request` is judged by its client certificate (so the caller must look it up).
    package func needsCertificate(_ request: Request) -> Bool {
        !(verifier != nil && request.headers[.authorization] != nil)
    }

    /// Mutual TLS only (the origin's peer listener, and any listener without `auth.issuers`).
    package static let certificatesOnly = ClientAuthentication(bearer: nil, acceptCertificates: true)

    /// The longest break-glass reason kept (longer ones are cut).
    package static let maxBreakGlassReason = 200

    /// The caller of `request`, or the 401 to answer.
    /// - Parameter certificate: the verified client certificate's identity, if one was presented.
    package func identify(_ request: Request, certificate: ClientIdentity?) -> Result<ClientIdentity, FHIRError> {
        if let bearer, let authorization = request.header("Authorization") {
            let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else {
                return .failure(Self.unauthorized("Only bearer tokens are accepted in Authorization", error: "invalid_request"))
            }
            let text = String(parts[1]).trimmingSpaces()
            let now = bearer.clock.nowMillis() / 1000
            if let known = verified.lookup(text, now: now, leeway: bearer.leewaySeconds) { return .success(known) }
            do {
                let token = try bearer.verify(text)
                let identity = ClientIdentity(
                    tenant: token.tenant, role: .client, subject: token.subject, purposeOfUse: token.purposeOfUse,
                    patientContext: token.patient, grant: SMARTGrant(scopeClaim: token.scope))
                verified.remember(text, identity: identity, token: token)
                return .success(identity)
            } catch {
                return .failure(Self.unauthorized("Invalid bearer token: \(error.reason)", error: "invalid_token"))
            }
        }
        if let certificate, acceptCertificates { return .success(certificate) }
        let needed =
            bearer == nil
            ? "A client certificate is required"
            : acceptCertificates
                ? "A bearer token (Authorization: Bearer) or a client certificate is required"
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
    package static func breakGlassReason(_ request: Request, identity: ClientIdentity) -> Result<String?, FHIRError> {
        guard let raw = request.header("X-EdgeCache-Break-Glass") else { return .success(nil) }
        let reason = String(raw.trimmingSpaces().prefix(maxBreakGlassReason))
        guard !reason.isEmpty else { return .success(nil) }
        guard ["TREAT", "ETREAT"].contains(identity.purpose) else {
            return .failure(.forbidden("break-glass is allowed for treatment only"))
        }
        return .success(reason)
    }
}

/// Bearer tokens that verified, and the identity each gives (bounded; process memory only).
final class VerifiedTokens: Sendable {
    struct Entry {
        var identity: ClientIdentity
        var token: VerifiedToken
    }

    static let limit = 10_000
    private let entries = Mutex<[String: Entry]>([:])

    func lookup(_ token: String, now: Int64, leeway: Int64) -> ClientIdentity? {
        entries.withLock { entries in
            guard let entry = entries[token] else { return nil }
            guard entry.token.isCurrent(now: now, leeway: leeway) else {
                // Expired (or the clock went back before nbf): verify again, which says why.
                entries[token] = nil
                return nil
            }
            return entry.identity
        }
    }

    func forgetAll() {
        entries.withLock { $0.removeAll() }
    }

    func remember(_ token: String, identity: ClientIdentity, token verified: VerifiedToken) {
        entries.withLock { entries in
            if entries.count >= Self.limit { entries.removeAll(keepingCapacity: true) }
            entries[token] = Entry(identity: identity, token: verified)
        }
    }
}

/// The bearer token verifier of a listener, shared by every copy of its ``ClientAuthentication``.
final class SharedVerifier: Sendable {
    private let state: Mutex<BearerTokenVerifier>

    init(_ verifier: BearerTokenVerifier) { state = Mutex(verifier) }

    func withLock<T: Sendable>(_ body: (inout BearerTokenVerifier) -> T) -> T { state.withLock { body(&$0) } }
}
