import EdgeCacheCore
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The top-level responder of one listener: limits, caller identity and tenant checks, then
/// `/fhir`, `/replication/v1` (origin peer listener) and the operator endpoints.
package struct NodeResponder: HTTPResponder {
    package typealias Context = NodeRequestContext

    /// Which roles of certificate may call this listener.
    package var allowedRoles: Set<ClientIdentity.Role>
    /// The only tenant this node serves (an edge); nil for the multi-tenant origin.
    package var nodeTenant: String?
    package var fhir: FHIRResponder
    /// Present on the origin's peer listener.
    package var replication: ReplicationResponder?
    package var limits: RequestLimits
    /// Serves `/healthz`, `/readyz`, `/status`, `/digest` for (path, caller's tenant); nil for other paths.
    package var operatorEndpoints: @Sendable (String, String) async -> Response?
    /// Told about every answered `/fhir` and `/replication` request (the audit trail).
    package var observer: (@Sendable (AnsweredRequest) -> Void)?
    /// Certificates, bearer tokens or both (default: certificates only).
    package var authentication: ClientAuthentication = .certificatesOnly
    /// Roles that may read the operator endpoints only (`/healthz`, `/readyz`, `/status`,
    /// `/metrics`): the node's own kind of certificate, so that `edgecache status` can run on
    /// the node's host with the node's own certificate. An origin certificate names no tenant.
    package var operatorRoles: Set<ClientIdentity.Role> = []
    package static let operatorPaths: Set<String> = ["/healthz", "/readyz", "/status", "/metrics"]
    /// The base of the absolute URLs this listener writes (`Location`, Bundle links, the
    /// CapabilityStatement), e.g. `https://fhir.stmary.example`; nil: the address the request
    /// came in on (`https://127.0.0.1:8444`). The `Host` header is never used.
    package var publicBaseURL: String?

    package init(
        allowedRoles: Set<ClientIdentity.Role>, nodeTenant: String?, fhir: FHIRResponder, replication: ReplicationResponder?,
        limits: RequestLimits, operatorEndpoints: @escaping @Sendable (String, String) async -> Response?
    ) {
        self.allowedRoles = allowedRoles
        self.nodeTenant = nodeTenant
        self.fhir = fhir
        self.replication = replication
        self.limits = limits
        self.operatorEndpoints = operatorEndpoints
    }

    package func respond(to request: Request, context: NodeRequestContext) async throws -> Response {
        var identity: ClientIdentity?
        var breakGlass: String?
        // Decided once: this value both routes the request and says whether it is audited.
        let target = RequestTarget(path: request.uri.path)
        var facts: FHIRFacts?
        if case .fhir(let segments) = target { facts = FHIRFacts(method: request.method, segments: segments) }
        var response = await answer(
            request, target: target, context: context, identity: &identity, breakGlass: &breakGlass, facts: &facts)
        if response.headers[.requestID] == nil { response.headers[.requestID] = context.id }
        if let observer, target.isAudited {
            var replicationEndpoint: String?
            if case .replication(let segments) = target, segments.count >= 2 { replicationEndpoint = String(segments[1]) }
            observer(
                AnsweredRequest(
                    method: request.method.rawValue, status: response.status.code, identity: identity, requestID: context.id,
                    breakGlassReason: breakGlass, api: target.api, fhir: facts, replicationEndpoint: replicationEndpoint))
        }
        return response
    }

    private func answer(
        _ request: Request, target: RequestTarget, context: NodeRequestContext, identity resolved: inout ClientIdentity?,
        breakGlass: inout String?, facts: inout FHIRFacts?
    ) async -> Response {
        if request.headerBytes > limits.maxHeaderBytes {
            return FHIRHTTP.error(
                FHIRError(status: 431, code: "too-costly", "Request headers exceed the limit of \(limits.maxHeaderBytes) bytes"))
        }
        if target == .nonCanonical {
            return FHIRHTTP.error(
                .invalid("The request path is not canonical (no '//', trailing '/', '.' or '..' segments, '%' or '\\'); nothing was done"))
        }
        if let refusal = Self.refuseTransferCodings(request) { return FHIRHTTP.error(refusal) }
        let path = request.uri.path
        let certificate: ClientIdentity?
        if authentication.needsCertificate(request) {
            certificate = await context.peerIdentity()
        } else {
            certificate = nil  // judged by its bearer token alone
        }
        let identity: ClientIdentity
        switch authentication.identify(request, certificate: certificate) {
        case .success(let who): identity = who
        case .failure(let error): return FHIRHTTP.error(error)
        }
        resolved = identity
        if let role = identity.role, !allowedRoles.contains(role), operatorRoles.contains(role), Self.operatorPaths.contains(path),
            identity.tenant == nodeTenant || role == .origin
        {
            if let response = await operatorEndpoints(path, identity.tenant ?? "") { return response }
        }
        guard let role = identity.role, allowedRoles.contains(role) else {
            return FHIRHTTP.error(.forbidden("This listener does not accept certificates of role '\(identity.role?.rawValue ?? "none")'"))
        }
        guard let tenant = identity.tenant else {
            return FHIRHTTP.error(.forbidden("The client certificate names no tenant (urn:edgecache:tenant:...)"))
        }
        if let nodeTenant, tenant != nodeTenant {
            return FHIRHTTP.error(.forbidden("This node serves another tenant than the caller's"))
        }
        if let claimed = request.header("X-EdgeCache-Tenant"), claimed != tenant {
            return FHIRHTTP.error(.forbidden("The caller's tenant may not act for tenant '\(claimed.prefix(64))'"))
        }
        switch ClientAuthentication.breakGlassReason(request, identity: identity) {
        case .success(let reason): breakGlass = reason
        case .failure(let error): return FHIRHTTP.error(error)
        }
        if let response = await operatorEndpoints(path, tenant) { return response }
        switch target {
        case .fhir(let segments):
            let base = publicBaseURL ?? Self.listenerURL(context.channel.localAddress)
            let caller = FHIRCaller(
                tenant: tenant, identity: identity, baseURL: base + "/fhir", requestID: context.id,
                breakGlassReason: breakGlass)
            let (response, answered) = await fhir.respond(
                to: request, segments: segments, facts: facts ?? FHIRFacts(method: request.method, segments: segments), caller: caller,
                logger: context.logger)
            facts = answered
            return response
        case .replication(let segments):
            if let replication, segments.first == "v1" {
                return await replication.respond(
                    to: request, segments: Array(segments.dropFirst()), tenant: tenant, node: identity.node, logger: context.logger)
            }
        case .other, .nonCanonical:
            break
        }
        return FHIRHTTP.error(.notFound("No such endpoint"))
    }
}

extension NodeResponder {
    /// `https://ip:port` of the local address a connection came in on (IPv6 in brackets).
    static func listenerURL(_ address: SocketAddress?) -> String {
        guard let address, let ip = address.ipAddress, let port = address.port else { return "https://localhost" }
        if case .v6 = address { return "https://[\(ip)]:\(port)" }
        return "https://\(ip):\(port)"
    }

    /// A 501 for a request whose `Transfer-Encoding` names any coding but `chunked` (such a body
    /// would otherwise be read as if it were plain); nil when there is none to refuse.
    static func refuseTransferCodings(_ request: Request) -> FHIRError? {
        let codings = request.headers[values: .transferEncoding].flatMap { $0.split(separator: ",") }
            .map { String($0).trimmingSpaces().lowercased() }
        guard codings.contains(where: { $0 != "chunked" }) else { return nil }
        return FHIRError(
            status: 501, code: "not-supported", "Transfer-Encoding other than chunked is not supported; send the body uncompressed")
    }
}

/// What the audit trail and the metrics learn about one answered request. Holds no resource
/// content.
package struct AnsweredRequest: Sendable {
    package var method: String
    package var status: Int
    package var identity: ClientIdentity?
    package var requestID: String
    /// The `X-EdgeCache-Break-Glass` reason the request was served under.
    package var breakGlassReason: String? = nil
    /// What answered it: `fhir`, `replication`, or `invalid` (a non-canonical path, refused).
    package var api: String = "fhir"
    /// The FHIR request and how it was answered (`api` `fhir`).
    package var fhir: FHIRFacts? = nil
    /// The replication endpoint (`changes`, `snapshot`, `writes`, …) for `api` `replication`.
    package var replicationEndpoint: String? = nil

    package init(
        method: String, status: Int, identity: ClientIdentity?, requestID: String, breakGlassReason: String? = nil, api: String = "fhir",
        fhir: FHIRFacts? = nil, replicationEndpoint: String? = nil
    ) {
        self.method = method
        self.status = status
        self.identity = identity
        self.requestID = requestID
        self.breakGlassReason = breakGlassReason
        self.api = api
        self.fhir = fhir
        self.replicationEndpoint = replicationEndpoint
    }
}
